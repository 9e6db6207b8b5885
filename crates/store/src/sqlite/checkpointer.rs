//! WAL checkpoints off the write path.
//!
//! A checkpoint run by a commit stalls every write queued behind it. This thread copies
//! committed WAL frames into the database file with passive checkpoints, which block
//! neither the writer nor readers, so the commit-time checkpoint (the backstop, see
//! `schema::WAL_AUTOCHECKPOINT_PAGES`) finds little left to do, and an idle store's WAL
//! is folded into the database file within one period.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::Shared;
use crate::Result;

/// How often the thread looks for new commits.
const PERIOD: Duration = Duration::from_millis(50);

/// The running checkpointer; stopped and joined on drop.
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, shared: Arc<Shared>) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rkube-store-checkpoint".into())
            .spawn(move || run(conn, &shared.revision, &flag))
            .map_err(|e| crate::Error::CommitFailed {
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

fn run(conn: Connection, revision: &AtomicI64, stop: &AtomicBool) {
    let mut checkpointed = revision.load(Ordering::Acquire);
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(PERIOD);
        let now = revision.load(Ordering::Acquire);
        if now == checkpointed {
            continue;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => checkpointed = now,
            Err(err) => tracing::debug!(error = %err, "passive wal checkpoint deferred"),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
