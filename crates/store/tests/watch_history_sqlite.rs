//! Property test: random concurrent writes on SQLite; watches from random revisions see
//! exactly the committed history after them — no gap, no duplicate, no reordering.
mod support;

use std::sync::Arc;

use proptest::prelude::*;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use support::history::{check, Step, WatchPoint};

fn step() -> impl Strategy<Value = Step> {
    (0..3u8, 0..6usize).prop_map(|(op, key)| match op {
        0 => Step::Create(key),
        1 => Step::Update(key),
        _ => Step::Delete(key),
    })
}

fn point() -> impl Strategy<Value = WatchPoint> {
    (0..15u64, 0.0..=1.0f64).prop_map(|(delay_ms, fraction)| WatchPoint { delay_ms, fraction })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn watches_see_exactly_the_committed_history(
        writers in prop::collection::vec(prop::collection::vec(step(), 5..40), 1..6),
        points in prop::collection::vec(point(), 1..6),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("state.db"), SqliteOptions { compaction_interval: None }).unwrap();
            check(Arc::new(store), "/p/", writers, points, true).await;
        });
    }
}
