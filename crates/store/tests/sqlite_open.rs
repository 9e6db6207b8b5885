//! Opening the SQLite store: bad files are refused untouched, data survives reopening,
//! and compaction keeps the file bounded under churn.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::{Error, ListOptions, Store};

fn no_compaction() -> SqliteOptions {
    SqliteOptions {
        compaction_interval: None,
    }
}

/// Opens `path` expecting a refusal whose message contains `needle`, and checks that
/// the file is byte-for-byte unchanged and no WAL was created.
fn assert_refused(path: &Path, needle: &str) {
    let before = std::fs::read(path).unwrap();
    match SqliteStore::open(path, no_compaction()) {
        Err(e @ Error::OpenFailed { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "message {msg:?} should contain {needle:?}"
            );
            assert!(
                msg.contains(&path.display().to_string()),
                "message {msg:?} should name the file"
            );
        }
        other => panic!("expected OpenFailed, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "the refused file must not change"
    );
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists(),
        "no WAL may be created"
    );
}

#[tokio::test]
async fn refuses_a_file_that_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(
        &path,
        b"these are somebody's precious notes, not a database\n".repeat(100),
    )
    .unwrap();
    assert_refused(&path, "not a SQLite database");
    std::fs::write(&path, b"").unwrap();
    assert_refused(&path, "not a SQLite database");
}

#[tokio::test]
async fn refuses_a_sqlite_database_of_another_program() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO kine (name) VALUES ('x');").unwrap();
    }
    assert_refused(&path, "not an rkube store");
}

#[tokio::test]
async fn refuses_a_corrupt_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = SqliteStore::open(&path, no_compaction()).unwrap();
        for i in 0..300 {
            store
                .create(&format!("/k/{i:04}"), Bytes::from(vec![b'v'; 512]))
                .await
                .unwrap();
        }
    }
    // Scribble over the pages in the middle of the file.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 16 * 4096,
        "the store should span many pages, has {}",
        bytes.len()
    );
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid..mid + 4 * 4096] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_refused(&path, "corrupt");
}

#[tokio::test]
async fn refuses_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = SqliteStore::open(&path, no_compaction()).unwrap();
    first.create("/k", Bytes::from_static(b"v")).await.unwrap();
    match SqliteStore::open(&path, no_compaction()) {
        Err(e @ Error::OpenFailed { .. }) => assert!(e.to_string().contains("in use"), "{e}"),
        other => panic!("expected OpenFailed, got {other:?}"),
    }
    // The first handle is unaffected, and once it is gone the file opens again.
    assert!(first.get("/k", None).await.unwrap().kv.is_some());
    drop(first);
    SqliteStore::open(&path, no_compaction()).unwrap();
}

#[tokio::test]
async fn data_and_revisions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/state.db");
    let (rev, kv) = {
        let store = SqliteStore::open(&path, no_compaction()).unwrap();
        let a = store.create("/a", Bytes::from_static(b"1")).await.unwrap();
        let kv = store
            .update("/a", Bytes::from_static(b"2"), a.mod_revision)
            .await
            .unwrap();
        store.create("/b", Bytes::from_static(b"1")).await.unwrap();
        store.delete("/b", None).await.unwrap();
        store.compact(kv.mod_revision).await.unwrap();
        (store.current_revision().await.unwrap(), kv)
    };
    let store = SqliteStore::open(&path, no_compaction()).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), rev);
    assert_eq!(store.compacted_revision(), kv.mod_revision);
    assert_eq!(store.get("/a", None).await.unwrap().kv, Some(kv.clone()));
    assert_eq!(store.get("/b", None).await.unwrap().kv, None);
    assert!(matches!(
        store.get("/a", Some(kv.mod_revision - 1)).await,
        Err(Error::Compacted { .. })
    ));
    assert_eq!(
        store
            .create("/c", Bytes::from_static(b"1"))
            .await
            .unwrap()
            .mod_revision,
        rev + 1
    );
    assert!(store.check_consistency().await.unwrap().is_empty());
}

fn file_sizes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", path.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// A node lease renewed every 10 s for a day is 8,640 updates of one key; with
/// automatic compaction the database must stay small instead of growing with history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_bounds_the_file_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(
        &path,
        SqliteOptions {
            compaction_interval: Some(Duration::from_millis(100)),
        },
    )
    .unwrap();
    let lease = Bytes::from(vec![b'l'; 400]);
    let mut kv = store.create("/leases/node-1", lease.clone()).await.unwrap();
    let mut peak = 0;
    for i in 0..8640 {
        kv = store
            .update("/leases/node-1", lease.clone(), kv.mod_revision)
            .await
            .unwrap();
        if i % 500 == 0 {
            peak = peak.max(file_sizes(&path));
        }
    }
    // Let the last compaction pass run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        store.compacted_revision() > 8000,
        "compaction should have run, at {}",
        store.compacted_revision()
    );
    let total = file_sizes(&path);
    // 8,640 revisions of 400 bytes would be well over 3.5 MB of history.
    assert!(total < 2 * 1024 * 1024, "store files grew to {total} bytes");
    assert!(peak < 8 * 1024 * 1024, "store files peaked at {peak} bytes");
    let list = store
        .list("/leases/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(list.kvs, vec![kv]);
    assert!(store.check_consistency().await.unwrap().is_empty());
}
