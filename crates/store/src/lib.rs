//! The rkube store: a versioned key-value store with etcd v3's semantics.
//!
//! Everything rkube persists goes through [`Store`]. Two backends implement it:
//! [`sqlite::SqliteStore`] (embedded, the default) and [`etcd::EtcdStore`] (a real etcd
//! cluster). Both give the same guarantees, checked by one conformance suite:
//!
//! - one global revision, incremented by every successful write;
//! - each key carries `create_revision` and `mod_revision`;
//! - `update` and `delete` can compare-and-swap on `mod_revision`;
//! - reads can be served at a past revision until it is compacted;
//! - a watch delivers every change after a revision, in order, with the previous value;
//! - an acknowledged write survives `kill -9` of the process.
//!
//! The store knows nothing of Kubernetes: keys are strings, values are bytes.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

mod continue_token;
pub mod error;
pub mod etcd;
mod keys;
pub mod sqlite;
pub mod watch;

pub use error::{Error, Result};
pub use watch::{WatchResponse, WatchStream};

/// A store revision: the value of the global write counter after some write.
pub type Revision = i64;

/// The largest value a write may carry: 1.5 MiB, etcd's default request limit.
pub const MAX_VALUE_SIZE: usize = 1536 * 1024;

/// Default deadline for one call to a remote backend.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value; empty in the `kv` of a delete event.
    pub value: Bytes,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last write to the key (for a delete event: the delete's revision).
    pub mod_revision: Revision,
}

/// What a change did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key did not exist before.
    Create,
    /// The key existed and got a new value.
    Update,
    /// The key was removed.
    Delete,
}

/// One committed change, as a watch delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, an empty value, the deleted
    /// object's `create_revision` and the delete's revision as `mod_revision`.
    pub kv: KeyValue,
    /// The key before the change (`None` for a create).
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision this change was committed at.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// Options of [`Store::list`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this revision; `None` (or, as in etcd, `Some(0)`) reads the latest. Ignored with a continue token, which
    /// carries the revision of the first page.
    pub revision: Option<Revision>,
    /// Return at most this many keys; `None` or `Some(0)` returns all.
    pub limit: Option<usize>,
    /// Resume a paginated list where the previous page stopped.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// The keys in the page, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the list was served at (the same for every page of one list).
    pub revision: Revision,
    /// Set when more keys follow; pass it back in [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
    /// How many keys follow this page (0 when `continue_token` is `None`).
    pub remaining: u64,
}

/// The answer of [`Store::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The revision the read was served at.
    pub revision: Revision,
    /// The key, if it existed at that revision.
    pub kv: Option<KeyValue>,
}

/// The answer of [`Store::delete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteResult {
    /// The revision of the delete.
    pub revision: Revision,
    /// The key as it was just before the delete.
    pub prev_kv: KeyValue,
}

/// A versioned key-value store with etcd's semantics.
///
/// Every method is a single atomic operation. Errors are [`Error`]; the precondition
/// failures (`AlreadyExists`, `NotFound`, `Conflict`) write nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`Error::AlreadyExists`] if it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Reads `key` at `revision` (`None`, or as in etcd `Some(0)`: the latest).
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResult>;

    /// Lists the keys starting with `prefix`, in key order.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// Counts the keys starting with `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Replaces the value of `key` if its `mod_revision` is `expected_mod_revision`.
    ///
    /// Fails with [`Error::NotFound`] if the key does not exist and [`Error::Conflict`]
    /// (carrying the current value) if it was modified since.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue>;

    /// Deletes `key`, if given only when its `mod_revision` is `expected_mod_revision`.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult>;

    /// Watches the keys starting with `prefix`, delivering every change committed after
    /// `after_revision` (which may be in the future) in revision order.
    ///
    /// Fails with [`Error::Compacted`] if changes after `after_revision` were compacted.
    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream>;

    /// Discards the history before `revision`: reads below it and watches starting
    /// before it then fail with [`Error::Compacted`]. The state at `revision` stays readable.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the last committed write.
    async fn current_revision(&self) -> Result<Revision>;
}

pub(crate) fn check_value_size(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(Error::ValueTooLarge {
            key: key.to_owned(),
            size: value.len(),
            limit: MAX_VALUE_SIZE,
        });
    }
    Ok(())
}
