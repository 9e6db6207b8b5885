//! Shared helpers for the store's integration tests.
#![allow(dead_code)]

pub mod cases;
pub mod history;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::{Event, Store, WatchResponse, WatchStream};

/// A store under test and whatever must live as long as it (temp dir, etcd cluster).
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub _guard: Box<dyn Any + Send>,
}

/// A fresh SQLite store in a temp dir, without background compaction.
pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(
        dir.path().join("state.db"),
        SqliteOptions {
            compaction_interval: None,
        },
    )
    .expect("open store");
    Harness {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

/// A fresh one-member etcd and an `EtcdStore` on it.
pub async fn etcd() -> Harness {
    let cluster = rkube_testkit::EtcdCluster::start(1).expect("start etcd");
    let store =
        rkube_store::etcd::EtcdStore::connect(&cluster.client_endpoints(), Default::default())
            .await
            .expect("connect to etcd");
    Harness {
        store: Arc::new(store),
        _guard: Box::new(cluster),
    }
}

/// Receives until `n` events have arrived (progress messages skipped), or panics after 10 s.
pub async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < n {
        match tokio::time::timeout_at(deadline, watch.recv()).await {
            Ok(Some(Ok(WatchResponse::Events(batch)))) => events.extend(batch),
            Ok(Some(Ok(WatchResponse::Progress(_)))) => {}
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", events.len()),
            Ok(None) => panic!("watch ended after {} of {n} events", events.len()),
            Err(_) => panic!("timed out after {} of {n} events: {events:?}", events.len()),
        }
    }
    assert_eq!(events.len(), n, "more events than expected: {events:?}");
    events
}

/// Asserts nothing arrives on the watch for a short while.
pub async fn assert_quiet(watch: &mut WatchStream) {
    match tokio::time::timeout(Duration::from_millis(300), watch.recv()).await {
        Err(_) | Ok(Some(Ok(WatchResponse::Progress(_)))) => {}
        Ok(other) => panic!("expected no event, got {other:?}"),
    }
}

/// Instantiates every conformance case as a test against the harness built by `$make`.
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            create_then_get, create_existing_fails, update_compare_and_swap, delete_with_and_without_precondition,
            revisions_are_global_and_monotonic, get_at_past_and_future_revisions, list_by_prefix,
            list_pages_with_continue_tokens, list_pages_are_a_consistent_snapshot, list_at_past_revision,
            invalid_continue_tokens, count_by_prefix, watch_from_current_revision, watch_from_old_revision,
            watch_from_future_revision, watch_filters_by_prefix, watch_progress_reports_revision,
            compaction_errors_and_keeps_state, value_size_limit, many_watchers_see_the_same_history,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $make.await;
                support::cases::$case(&*harness.store).await;
            }
        )*
    };
}
