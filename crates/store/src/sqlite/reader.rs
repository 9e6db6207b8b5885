//! Reads: point gets, ranged lists (latest or at a past revision), counts, and the
//! log scans that let a watch catch up. Each read runs in one snapshot.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::schema::{self, MetaRevisions, KIND_CREATE, KIND_DELETE, KIND_UPDATE};
use crate::keys::prefix_end;
use crate::{
    continue_token, Error, Event, EventKind, GetResult, KeyValue, ListOptions, ListResult, Result,
    Revision,
};

/// Idle read connections, opened on demand. WAL lets them read while the writer commits.
/// At most [`MAX_READERS`] reads run at once, so the pool never opens (and parses the
/// schema of) more connections than it keeps: many concurrent requests queue briefly
/// instead of churning connections.
pub(crate) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

/// How many reads run at once, and how many idle connections are kept.
const MAX_READERS: usize = 16;
const MAX_IDLE: usize = MAX_READERS;

impl ReadPool {
    pub(crate) fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_READERS),
        }
    }

    /// Runs `f` on a pooled connection in a blocking thread.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.run_blocking(f))
            .await
            .map_err(|_| Error::Closed)?
    }

    pub(crate) fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match conn {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE && conn.is_autocommit() {
            idle.push(conn);
        }
        result
    }
}

/// Checks that `revision` can be read in a snapshot with these meta revisions.
fn check_readable(meta: &MetaRevisions, revision: Revision) -> Result<()> {
    if revision > meta.current {
        return Err(Error::FutureRevision {
            requested: revision,
            current: meta.current,
        });
    }
    if revision < meta.compacted {
        return Err(Error::Compacted {
            requested: revision,
            compacted: meta.compacted,
        });
    }
    Ok(())
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Maps `key, value, create_revision, revision` columns to a `KeyValue`.
fn row_kv(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(0)?)?,
        value: Bytes::from(row.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

pub(crate) fn get(
    conn: &mut Connection,
    key: &str,
    revision: Option<Revision>,
) -> Result<GetResult> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let meta = schema::meta_revisions(&tx)?;
    let kv = match revision {
        None => super::writer::current(&tx, key)?,
        Some(revision) => {
            check_readable(&meta, revision)?;
            tx.prepare_cached(
                "SELECT key, value, create_revision, revision, kind FROM log \
                 WHERE key = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT 1",
            )?
            .query_row(rusqlite::params![key.as_bytes(), revision], |r| {
                Ok((row_kv(r)?, r.get::<_, i64>(4)?))
            })
            .optional()?
            .and_then(|(kv, kind)| (kind != KIND_DELETE).then_some(kv))
        }
    };
    Ok(GetResult {
        revision: revision.unwrap_or(meta.current),
        kv,
    })
}

pub(crate) fn count(conn: &mut Connection, prefix: &str) -> Result<u64> {
    let end = prefix_end(prefix.as_bytes());
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM current WHERE key >= ?1 AND (?2 IS NULL OR key < ?2)",
        )?
        .query_row(rusqlite::params![prefix.as_bytes(), end], |r| r.get(0))?;
    Ok(n as u64)
}

pub(crate) fn list(
    conn: &mut Connection,
    prefix: &str,
    options: &ListOptions,
) -> Result<ListResult> {
    let end = prefix_end(prefix.as_bytes());
    let (requested, start) = match &options.continue_token {
        Some(token) => {
            let (revision, start) = continue_token::decode(token, prefix)?;
            (Some(revision), start)
        }
        None => (options.revision, prefix.to_owned()),
    };
    let limit = options.limit.filter(|&l| l > 0);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let meta = schema::meta_revisions(&tx)?;
    if let Some(revision) = requested {
        check_readable(&meta, revision)?;
    }
    let revision = requested.unwrap_or(meta.current);
    // One more row than asked tells whether another page follows.
    let fetch = limit.map(|l| l as i64 + 1).unwrap_or(-1);
    let mut kvs: Vec<KeyValue> = if revision == meta.current {
        tx.prepare_cached(
            "SELECT l.key, l.value, l.create_revision, l.revision FROM current c \
             JOIN log l ON l.revision = c.revision \
             WHERE c.key >= ?1 AND (?2 IS NULL OR c.key < ?2) ORDER BY c.key LIMIT ?3",
        )?
        .query_map(rusqlite::params![start.as_bytes(), end, fetch], row_kv)?
        .collect::<rusqlite::Result<_>>()?
    } else {
        tx.prepare_cached(
            "SELECT l.key, l.value, l.create_revision, l.revision FROM log l \
             WHERE l.key >= ?1 AND (?2 IS NULL OR l.key < ?2) AND l.kind != 2 AND l.revision = \
               (SELECT max(m.revision) FROM log m WHERE m.key = l.key AND m.revision <= ?3) \
             ORDER BY l.key LIMIT ?4",
        )?
        .query_map(
            rusqlite::params![start.as_bytes(), end, revision, fetch],
            row_kv,
        )?
        .collect::<rusqlite::Result<_>>()?
    };
    let mut continue_token = None;
    let mut remaining = 0;
    if let Some(limit) = limit {
        if kvs.len() > limit {
            kvs.truncate(limit);
            let last = &kvs[limit - 1].key;
            continue_token = Some(continue_token::encode(revision, last));
            remaining = count_after(
                &tx,
                last,
                end.as_deref(),
                revision,
                revision == meta.current,
            )?;
        }
    }
    Ok(ListResult {
        kvs,
        revision,
        continue_token,
        remaining,
    })
}

/// Counts the keys after `last` (and before `end`) that exist at `revision`.
fn count_after(
    conn: &Connection,
    last: &str,
    end: Option<&[u8]>,
    revision: Revision,
    latest: bool,
) -> Result<u64> {
    let n: i64 = if latest {
        conn.prepare_cached(
            "SELECT count(*) FROM current WHERE key > ?1 AND (?2 IS NULL OR key < ?2)",
        )?
        .query_row(rusqlite::params![last.as_bytes(), end], |r| r.get(0))?
    } else {
        conn.prepare_cached(
            "SELECT count(*) FROM log l WHERE l.key > ?1 AND (?2 IS NULL OR l.key < ?2) AND l.kind != 2 \
             AND l.revision = (SELECT max(m.revision) FROM log m WHERE m.key = l.key AND m.revision <= ?3)",
        )?
        .query_row(rusqlite::params![last.as_bytes(), end, revision], |r| r.get(0))?
    };
    Ok(n as u64)
}

/// Reads up to `limit` changes in `(after, upto]` to keys in `[start, end)`, in
/// revision order, with their previous values. Fails if `after` was compacted.
pub(crate) fn events(
    conn: &mut Connection,
    start: &[u8],
    end: Option<&[u8]>,
    after: Revision,
    upto: Revision,
    limit: usize,
) -> Result<Vec<Event>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let meta = schema::meta_revisions(&tx)?;
    if after < meta.compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted: meta.compacted,
        });
    }
    let mut stmt = tx.prepare_cached(
        "SELECT l.key, l.value, l.create_revision, l.revision, l.kind, \
                p.value, p.create_revision, p.revision \
         FROM log l LEFT JOIN log p ON p.revision = l.prev_revision AND l.prev_revision > 0 \
         WHERE l.revision > ?1 AND l.revision <= ?2 AND l.key >= ?3 AND (?4 IS NULL OR l.key < ?4) \
         ORDER BY l.revision LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![after, upto, start, end, limit as i64],
        |r| {
            let kv = row_kv(r)?;
            let kind = match r.get::<_, i64>(4)? {
                KIND_CREATE => EventKind::Create,
                KIND_UPDATE => EventKind::Update,
                _ => EventKind::Delete,
            };
            let prev_kv = match r.get::<_, Option<i64>>(7)? {
                Some(prev_revision) => Some(KeyValue {
                    key: kv.key.clone(),
                    value: Bytes::from(r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default()),
                    create_revision: r.get(6)?,
                    mod_revision: prev_revision,
                }),
                None => None,
            };
            Ok(Event { kind, kv, prev_kv })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
