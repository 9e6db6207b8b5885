//! The single writer: group commit and incremental compaction.
//!
//! Every write goes to one thread that owns the writing connection. It takes the first
//! waiting request, drains whatever else is queued (up to [`MAX_GROUP`]), applies them
//! all in one transaction, commits once (one fsync for the group), then answers each
//! request and hands the group's events to the watch hub. Concurrency therefore turns
//! into larger groups instead of more fsyncs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::hub::Hub;
use super::schema::{KIND_CREATE, KIND_DELETE, KIND_UPDATE};
use crate::{DeleteResult, Error, Event, EventKind, KeyValue, Result, Revision};

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Log rows examined per compaction step (one short transaction each).
const COMPACT_STEP: i64 = 2000;

/// A write, as queued to the writer thread.
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

/// What a successful write returns.
pub(crate) enum Outcome {
    Put(KeyValue),
    Deleted(DeleteResult),
    Compacted,
}

pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Outcome>>,
}

/// State shared between the writer and the readers of the store.
pub(crate) struct Shared {
    /// Last committed revision.
    pub(crate) revision: AtomicI64,
    /// Revision of the last compaction.
    pub(crate) compacted: AtomicI64,
}

pub(crate) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    hub: Arc<Hub>,
    /// Physical compaction still to do: rows up to `.1` whose superseding rows lie in
    /// `(.0, .1]` are removed step by step between groups.
    pending_compaction: Option<(Revision, Revision)>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        shared: Arc<Shared>,
        hub: Arc<Hub>,
        resume_compaction: Option<(Revision, Revision)>,
    ) -> Self {
        Writer {
            conn,
            shared,
            hub,
            pending_compaction: resume_compaction,
        }
    }

    /// Serves requests until every sender is gone.
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        loop {
            let first = if self.pending_compaction.is_some() {
                match rx.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => {
                        self.compact_step();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
            if self.pending_compaction.is_some() {
                self.compact_step();
            }
        }
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        let start = self.shared.revision.load(Ordering::Acquire);
        let mut revision = start;
        let mut results = Vec::with_capacity(group.len());
        let mut events = Vec::new();
        let mut compaction = None;
        let mut compacted = self.shared.compacted.load(Ordering::Acquire);
        let committed = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for req in &group {
                let result = match &req.op {
                    Op::Compact { revision: target } => {
                        apply_compact(&tx, *target, revision, compacted).map(|()| {
                            compacted = *target;
                            compaction = Some(*target);
                            Outcome::Compacted
                        })
                    }
                    op => apply(&tx, op, revision + 1).map(|event| {
                        revision += 1;
                        let outcome = match event.kind {
                            EventKind::Delete => Outcome::Deleted(DeleteResult {
                                revision: event.kv.mod_revision,
                                prev_kv: event
                                    .prev_kv
                                    .clone()
                                    .expect("a delete has a previous value"),
                            }),
                            _ => Outcome::Put(event.kv.clone()),
                        };
                        events.push(event);
                        outcome
                    }),
                };
                // A failed precondition wrote nothing; a database error aborts the group.
                if let Err(Error::Sqlite(e)) = result {
                    return Err(Error::Sqlite(e));
                }
                results.push(result);
            }
            if revision != start {
                tx.prepare_cached("UPDATE rkube_meta SET value = ?1 WHERE name = 'revision'")?
                    .execute([revision])?;
            }
            tx.commit()?;
            Ok(())
        })();
        match committed {
            Ok(()) => {
                if let Some(target) = compaction {
                    let from = self
                        .pending_compaction
                        .map(|(from, _)| from)
                        .unwrap_or(self.shared.compacted.load(Ordering::Acquire));
                    self.shared.compacted.store(target, Ordering::Release);
                    self.pending_compaction = Some((from, target));
                }
                if revision != start {
                    self.shared.revision.store(revision, Ordering::Release);
                    self.hub.publish(events);
                }
                for (req, result) in group.into_iter().zip(results) {
                    let _ = req.reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = group.len(), "store group commit failed");
                let message = err.to_string();
                for req in group {
                    let _ = req.reply.send(Err(Error::CommitFailed {
                        reason: message.clone(),
                    }));
                }
            }
        }
    }

    /// Removes one step of superseded rows and tombstones; when done, checkpoints the WAL
    /// and returns free pages to the file system.
    fn compact_step(&mut self) {
        let Some((from, to)) = self.pending_compaction else {
            return;
        };
        let upto = (from + COMPACT_STEP).min(to);
        let step = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // A row is superseded by the row naming it as prev_revision; a tombstone at or
            // below the compaction revision has nothing left to tell.
            tx.prepare_cached(
                "DELETE FROM log WHERE revision IN \
                 (SELECT prev_revision FROM log WHERE revision > ?1 AND revision <= ?2 AND prev_revision > 0)",
            )?
            .execute([from, upto])?;
            tx.prepare_cached(
                "DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND kind = 2",
            )?
            .execute([from, upto])?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rkube_meta (name, value) VALUES ('compact_physical', ?1)",
            )?
            .execute([upto])?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(err) = step {
            tracing::warn!(error = %err, "store compaction step failed; will retry");
            return;
        }
        if upto < to {
            self.pending_compaction = Some((upto, to));
            return;
        }
        self.pending_compaction = None;
        let _ = self.conn.execute_batch("PRAGMA incremental_vacuum;");
        if let Err(err) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %err, "wal checkpoint deferred");
        }
        tracing::debug!(revision = to, "store compaction finished");
    }
}

/// The live row of a key (`?1`). Written as a subquery rather than a join: SQLite
/// marks the join form's plan as depending on the bound key, so every reuse from the
/// statement cache (which clears the bindings) re-prepared it, ≈4% of the server's CPU
/// under write load.
const CURRENT_ROW: &str = "SELECT create_revision, revision, value FROM log \
     WHERE revision = (SELECT revision FROM current WHERE key = ?1)";

/// The live row of `key`: (create_revision, mod_revision, value).
pub(crate) fn current(tx: &Connection, key: &str) -> Result<Option<KeyValue>> {
    Ok(tx
        .prepare_cached(CURRENT_ROW)?
        .query_row([key.as_bytes()], |r| {
            Ok(KeyValue {
                key: key.to_owned(),
                create_revision: r.get(0)?,
                mod_revision: r.get(1)?,
                value: Bytes::from(r.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default()),
            })
        })
        .optional()?)
}

fn append(
    tx: &Connection,
    revision: Revision,
    key: &str,
    kind: i64,
    create_revision: Revision,
    prev: Revision,
    value: Option<&[u8]>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO log (revision, key, kind, create_revision, prev_revision, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(rusqlite::params![revision, key.as_bytes(), kind, create_revision, prev, value])?;
    if kind == KIND_DELETE {
        tx.prepare_cached("DELETE FROM current WHERE key = ?1")?
            .execute([key.as_bytes()])?;
    } else {
        tx.prepare_cached("INSERT OR REPLACE INTO current (key, revision) VALUES (?1, ?2)")?
            .execute(rusqlite::params![key.as_bytes(), revision])?;
    }
    Ok(())
}

/// Applies one write at `revision`, returning its event; checks preconditions first so
/// that a failed one writes nothing.
fn apply(tx: &Connection, op: &Op, revision: Revision) -> Result<Event> {
    match op {
        Op::Create { key, value } => {
            let exists = tx
                .prepare_cached("SELECT 1 FROM current WHERE key = ?1")?
                .exists([key.as_bytes()])?;
            if exists {
                return Err(Error::AlreadyExists { key: key.clone() });
            }
            append(tx, revision, key, KIND_CREATE, revision, 0, Some(value))?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            };
            Ok(Event {
                kind: EventKind::Create,
                kv,
                prev_kv: None,
            })
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let prev = current(tx, key)?.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if prev.mod_revision != *expected {
                return Err(Error::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    current: Box::new(prev),
                });
            }
            append(
                tx,
                revision,
                key,
                KIND_UPDATE,
                prev.create_revision,
                prev.mod_revision,
                Some(value),
            )?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            Ok(Event {
                kind: EventKind::Update,
                kv,
                prev_kv: Some(prev),
            })
        }
        Op::Delete { key, expected } => {
            let prev = current(tx, key)?.ok_or_else(|| Error::NotFound { key: key.clone() })?;
            if let Some(expected) = expected {
                if prev.mod_revision != *expected {
                    return Err(Error::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Box::new(prev),
                    });
                }
            }
            append(
                tx,
                revision,
                key,
                KIND_DELETE,
                prev.create_revision,
                prev.mod_revision,
                None,
            )?;
            let kv = KeyValue {
                key: key.clone(),
                value: Bytes::new(),
                create_revision: prev.create_revision,
                mod_revision: revision,
            };
            Ok(Event {
                kind: EventKind::Delete,
                kv,
                prev_kv: Some(prev),
            })
        }
        Op::Compact { .. } => unreachable!("compaction is applied by apply_compact"),
    }
}

/// Records a compaction to `target` (the rows go later, step by step).
fn apply_compact(
    tx: &Connection,
    target: Revision,
    current: Revision,
    compacted: Revision,
) -> Result<()> {
    if target <= compacted {
        return Err(Error::Compacted {
            requested: target,
            compacted,
        });
    }
    if target > current {
        return Err(Error::FutureRevision {
            requested: target,
            current,
        });
    }
    tx.prepare_cached("UPDATE rkube_meta SET value = ?1 WHERE name = 'compact_revision'")?
        .execute([target])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point reads run on every write and every GET: a reuse from the statement cache
    /// must not re-prepare them (the join form of `CURRENT_ROW` did, on each call).
    #[test]
    fn point_reads_are_not_re_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, _lock) = super::super::schema::open_or_create(&dir.path().join("db")).unwrap();
        conn.execute_batch(
            "INSERT INTO log (revision, key, kind, create_revision, prev_revision, value) \
             VALUES (1, 'a', 0, 1, 0, x'01'), (2, 'b', 0, 2, 0, x'02');
             INSERT INTO current (key, revision) VALUES (CAST('a' AS BLOB), 1), (CAST('b' AS BLOB), 2);",
        )
        .unwrap();
        for key in ["a", "b", "missing", "a", "b"] {
            let row = current(&conn, key).unwrap();
            assert_eq!(row.is_some(), key != "missing", "{key}");
        }
        let b = current(&conn, "b").unwrap().unwrap();
        assert_eq!(
            (b.create_revision, b.mod_revision, &b.value[..]),
            (2, 2, &[2u8][..])
        );
        let reprepared = conn
            .prepare_cached(CURRENT_ROW)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare);
        assert_eq!(reprepared, 0);
    }
}
