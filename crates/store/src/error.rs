//! The store's errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::{KeyValue, Revision};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` of a key that exists.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// A read, update or delete of a key that does not exist.
    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// A compare-and-swap whose expected `mod_revision` is stale.
    #[error("key {key:?} was modified: expected mod revision {expected}, found {}", current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<KeyValue>,
    },

    /// A read or watch at a revision older than the last compaction.
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },

    /// A read at a revision that has not been written yet.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },

    /// A write whose value exceeds [`crate::MAX_VALUE_SIZE`].
    #[error("value of key {key:?} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        key: String,
        size: usize,
        limit: usize,
    },

    /// A continue token this store did not issue, or issued for another prefix.
    #[error("invalid continue token: {reason}")]
    InvalidContinue { reason: String },

    /// The database file cannot be used; nothing was written to it.
    #[error("cannot open store database {}: {reason}", path.display())]
    OpenFailed { path: PathBuf, reason: String },

    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The transaction carrying this write failed to commit; nothing of it was written.
    #[error("commit failed: {reason}")]
    CommitFailed { reason: String },

    /// etcd reported an error or could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),

    /// A call to the backend did not finish within its deadline.
    #[error("{operation} did not finish within {timeout:?}")]
    Timeout {
        operation: &'static str,
        timeout: Duration,
    },

    /// The store was shut down.
    #[error("the store is closed")]
    Closed,

    /// A value transform layered over the store (encryption at rest) could not read or
    /// write the value of `key`; nothing was written.
    #[error("{reason}")]
    ValueTransform { key: String, reason: String },
}

/// Result of store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
