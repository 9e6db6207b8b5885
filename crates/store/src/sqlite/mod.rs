//! The embedded SQLite backend, rkube's default store.
//!
//! Design (see `ARCHITECTURE.md`): one append-only `log` table, one row per revision
//! (kine's layout), plus a `current` index of live keys. All writes go through one
//! thread that commits concurrent requests in groups ([`writer`]); watch events come
//! straight from that commit path ([`hub`]) rather than from polling; reads run on a
//! pool of WAL readers ([`reader`]). History is compacted in the background so the file
//! stays bounded under churn.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::OptionalExtension;
use tokio::sync::oneshot;

mod checkpointer;
mod hub;
mod reader;
mod schema;
mod writer;

use checkpointer::Checkpointer;
use hub::{Hub, WatchTask};
use reader::ReadPool;
use writer::{Op, Outcome, Request, Shared, Writer};

use crate::{
    check_value_size, DeleteResult, Error, GetResult, KeyValue, ListOptions, ListResult, Result,
    Revision, Store, WatchStream,
};

/// Settings of [`SqliteStore::open`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// How often history is compacted; each run discards what was older than the
    /// previous run's revision, so about one to two intervals of history stay readable
    /// (the apiserver's own compaction cadence upstream). `None` disables it.
    pub compaction_interval: Option<Duration>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            compaction_interval: Some(Duration::from_secs(300)),
        }
    }
}

/// A store in one SQLite file. Cheap to share behind an `Arc`; dropping the last handle
/// stops its threads and releases the file.
pub struct SqliteStore {
    path: PathBuf,
    /// The only strong handle to the writer's queue: dropping it stops the writer.
    writes: Arc<std_mpsc::Sender<Request>>,
    writer: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    pool: Arc<ReadPool>,
    compactor: Option<tokio::task::JoinHandle<()>>,
    checkpointer: Option<Checkpointer>,
    _lock: File,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating it if the file does not exist.
    ///
    /// Refuses, without writing to it, a file that is not an rkube store, is corrupt,
    /// or is held by another process. Must be called within a tokio runtime when
    /// background compaction is enabled.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let (conn, lock) = schema::open_or_create(&path)?;
        let meta = schema::meta_revisions(&conn)?;
        let physical: Revision = conn
            .query_row(
                "SELECT value FROM rkube_meta WHERE name = 'compact_physical'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            revision: meta.current.into(),
            compacted: meta.compacted.into(),
        });
        let hub = Arc::new(Hub::new(meta.current));
        let resume = (physical < meta.compacted).then_some((physical, meta.compacted));
        let writer = Writer::new(conn, shared.clone(), hub.clone(), resume);
        let (writes, rx) = std_mpsc::channel();
        let writes = Arc::new(writes);
        let writer = std::thread::Builder::new()
            .name("rkube-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::OpenFailed {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        let compactor = options.compaction_interval.map(|interval| {
            tokio::spawn(compact_periodically(
                Arc::downgrade(&writes),
                shared.clone(),
                interval,
            ))
        });
        let checkpointer = Checkpointer::start(&path, shared.clone())?;
        tracing::info!(path = %path.display(), revision = meta.current, compacted = meta.compacted, "store opened");
        Ok(SqliteStore {
            pool: Arc::new(ReadPool::new(path.clone())),
            path,
            writes,
            writer: Some(writer),
            shared,
            hub,
            compactor,
            checkpointer: Some(checkpointer),
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The revision of the last compaction.
    pub fn compacted_revision(&self) -> Revision {
        self.shared.compacted.load(Ordering::Acquire)
    }

    /// Checks the invariants between the log and the live-key index (used by tests and
    /// by `rkube` diagnostics): every live key points at its newest log row, which is
    /// not a delete, and every key whose newest row is not a delete is live.
    pub async fn check_consistency(&self) -> Result<Vec<String>> {
        self.pool
            .run(|conn| {
                let mut problems = Vec::new();
                let mut stmt = conn.prepare(
                    "SELECT quote(c.key), c.revision, (SELECT max(revision) FROM log WHERE key = c.key), \
                     (SELECT kind FROM log WHERE revision = c.revision) FROM current c",
                )?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?)))?;
                for row in rows {
                    let (key, revision, newest, kind) = row?;
                    if Some(revision) != newest || kind.is_none() || kind == Some(schema::KIND_DELETE) {
                        problems.push(format!("live key {key} points at revision {revision}, newest row {newest:?}, kind {kind:?}"));
                    }
                }
                let orphans: i64 = conn.query_row(
                    "SELECT count(*) FROM log l WHERE l.kind != 2 AND l.revision = (SELECT max(revision) FROM log WHERE key = l.key) \
                     AND NOT EXISTS (SELECT 1 FROM current c WHERE c.key = l.key)",
                    [],
                    |r| r.get(0),
                )?;
                if orphans > 0 {
                    problems.push(format!("{orphans} keys are live in the log but missing from the index"));
                }
                let (max, meta): (Option<i64>, i64) = conn.query_row(
                    "SELECT (SELECT max(revision) FROM log), (SELECT value FROM rkube_meta WHERE name = 'revision')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if max.unwrap_or(0) > meta {
                    problems.push(format!("log holds revision {max:?} beyond the recorded revision {meta}"));
                }
                Ok(problems)
            })
            .await
    }

    async fn write(&self, op: Op) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(Request { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for SqliteStore {
    /// Stops the writer after the writes already queued, and waits (bounded) for it to
    /// close the database so that the file is released when the store is gone.
    fn drop(&mut self) {
        if let Some(task) = self.compactor.take() {
            task.abort();
        }
        drop(self.checkpointer.take());
        let (closed, _) = std_mpsc::channel();
        drop(std::mem::replace(&mut self.writes, Arc::new(closed)));
        if let Some(writer) = self.writer.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !writer.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if writer.is_finished() {
                let _ = writer.join();
            }
        }
    }
}

/// Every `interval`, compacts to the revision seen one interval earlier.
async fn compact_periodically(
    writes: std::sync::Weak<std_mpsc::Sender<Request>>,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut previous = shared.revision.load(Ordering::Acquire);
    loop {
        ticker.tick().await;
        if previous > shared.compacted.load(Ordering::Acquire) {
            let (reply, rx) = oneshot::channel();
            let Some(writes) = writes.upgrade() else {
                return;
            };
            if writes
                .send(Request {
                    op: Op::Compact { revision: previous },
                    reply,
                })
                .is_err()
            {
                return;
            }
            drop(writes);
            match rx.await {
                Ok(Ok(_)) => tracing::debug!(revision = previous, "store compacted"),
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, revision = previous, "store compaction failed")
                }
                Err(_) => return,
            }
        }
        previous = shared.revision.load(Ordering::Acquire);
    }
}

fn put(outcome: Outcome) -> KeyValue {
    match outcome {
        Outcome::Put(kv) => kv,
        _ => unreachable!("the writer answers a put with a key-value"),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        check_value_size(key, &value)?;
        self.write(Op::Create {
            key: key.to_owned(),
            value,
        })
        .await
        .map(put)
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResult> {
        let key = key.to_owned();
        // As in etcd, revision 0 (or less) means the latest.
        let revision = revision.filter(|&r| r > 0);
        self.pool
            .run(move |conn| reader::get(conn, &key, revision))
            .await
    }

    async fn list(&self, prefix: &str, mut options: ListOptions) -> Result<ListResult> {
        options.revision = options.revision.filter(|&r| r > 0);
        let prefix = prefix.to_owned();
        self.pool
            .run(move |conn| reader::list(conn, &prefix, &options))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_owned();
        self.pool
            .run(move |conn| reader::count(conn, &prefix))
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        check_value_size(key, &value)?;
        self.write(Op::Update {
            key: key.to_owned(),
            value,
            expected: expected_mod_revision,
        })
        .await
        .map(put)
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult> {
        match self
            .write(Op::Delete {
                key: key.to_owned(),
                expected: expected_mod_revision,
            })
            .await?
        {
            Outcome::Deleted(d) => Ok(d),
            _ => unreachable!("the writer answers a delete with the deleted key"),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after_revision < compacted {
            return Err(Error::Compacted {
                requested: after_revision,
                compacted,
            });
        }
        let task = WatchTask {
            hub: self.hub.clone(),
            pool: self.pool.clone(),
            prefix: prefix.to_owned(),
            delivered: after_revision,
        };
        Ok(WatchStream::start(|tx, progress| {
            tokio::spawn(task.run(tx, progress))
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(Op::Compact { revision }).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }
}
