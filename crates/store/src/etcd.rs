//! The etcd v3 backend: the [`Store`] over a real etcd cluster.
//!
//! Each operation maps onto one etcd request, so its atomicity is etcd's:
//!
//! - `create` is a transaction `If(create_revision(key) == 0) Then(Put)`;
//! - `update` and a conditional `delete` are `If(mod_revision(key) == expected, key exists)
//!   Then(write) Else(Get key)`, the `Else` telling "not found" from "conflict";
//! - reads are linearizable ranges (optionally at a past revision);
//! - a watch is an etcd watch with `prev_kv`, re-established from the last revision it
//!   received when its stream breaks (a member died, lost its leader, or a connection
//!   dropped), so its consumer sees neither a gap nor a duplicate. It covers the whole
//!   key space and filters by prefix here, which makes its progress reports exact on
//!   etcd 3.4 (see the `watcher` module).
//!
//! Every call has a deadline ([`EtcdOptions::timeout`], reported as [`Error::Timeout`]).
//! Within it, reads are sent again while the cluster is unavailable (an election, a dead
//! member). A write is sent again only if no connection could be made for it: once sent,
//! a write whose answer is lost may or may not have been applied, and only the caller can
//! decide what to do about that. Members that refuse connections are taken out of the
//! client's rotation until they accept them again (the `endpoints` module).
//!
//! etcd reports neither the compacted revision with a "compacted" error nor the current
//! revision with a "future revision" error; this backend asks for them with a follow-up
//! request (a probe watch, a revision read) so the errors carry the same numbers as the
//! SQLite backend's.
//!
//! The etcd members must accept requests larger than [`crate::MAX_VALUE_SIZE`]
//! (`--max-request-bytes` above about 1.6 MiB); etcd's default of exactly 1.5 MiB
//! rejects the largest values the store allows.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, GetResponse, KvClient,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::keys::prefix_end;
use crate::{
    check_value_size, continue_token, DeleteResult, Error, GetResult, KeyValue, ListOptions,
    ListResult, Result, Revision, Store, WatchStream, DEFAULT_TIMEOUT,
};

mod endpoints;
mod watcher;

use endpoints::Endpoints;
use watcher::Watcher;

/// The result of one etcd request.
type EtcdResult<T> = std::result::Result<T, etcd_client::Error>;

/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 keep-alive pings, so a silently dead member is noticed (etcd refuses pings
/// more often than every 5 s).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a keep-alive ping may go unanswered.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest pause between two attempts of a retried request or watch.
const RETRY_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(25), Duration::from_millis(1000));
/// How long to wait for etcd to report its compacted revision to a probe watch.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of [`EtcdStore::connect`].
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Deadline of each call to etcd (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A store kept in an etcd v3 cluster.
///
/// One client balances requests over every endpoint given to [`EtcdStore::connect`]
/// and keeps working while a minority of members is down.
pub struct EtcdStore {
    endpoints: Arc<Endpoints>,
    kv: KvClient,
    watch: WatchClient,
    timeout: Duration,
    health: JoinHandle<()>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints.all())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.health.abort();
    }
}

/// Why an etcd request failed, as far as the store's callers care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// "mvcc: required revision has been compacted"
    Compacted,
    /// "mvcc: required revision is a future revision"
    FutureRevision,
    /// No connection to a member could be made, so the request was never sent and
    /// any request, a write too, can be sent again.
    Unreachable,
    /// The cluster could not answer (no leader, an election, a connection that broke
    /// mid-request): a write may or may not have been applied; a read can try again.
    Unavailable,
    /// Anything else.
    Other,
}

fn classify(err: &etcd_client::Error) -> Refusal {
    use tonic::Code;
    let status = match err {
        etcd_client::Error::GRpcStatus(status) => status,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            return Refusal::Unavailable
        }
        _ => return Refusal::Other,
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        return Refusal::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return Refusal::FutureRevision;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return Refusal::Unreachable;
        }
        source = err.source();
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
            Refusal::Unavailable
        }
        _ => Refusal::Other,
    }
}

/// Converts an etcd key-value it owns.
fn key_value(kv: etcd_client::KeyValue) -> KeyValue {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: key_string(key),
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    }
}

/// Converts a borrowed etcd key-value (watch events only lend theirs).
fn key_value_ref(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: key_string(kv.key().to_vec()),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

/// Keys are written by this store, so they are UTF-8; anything else is shown lossily.
fn key_string(key: Vec<u8>) -> String {
    String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision())
}

/// The first response of a transaction's branch.
fn first_op(resp: &TxnResponse) -> Option<TxnOpResponse> {
    resp.op_responses().into_iter().next()
}

/// A range ending where the keys starting with `prefix` end (the whole key space for an
/// empty prefix); the request's key says where it starts.
fn range_options(prefix: &str) -> GetOptions {
    match prefix_end(prefix.as_bytes()) {
        Some(end) => GetOptions::new().with_range(end),
        None => GetOptions::new().with_from_key(),
    }
}

/// A key to aim requests at that only need a revision (current revision, compaction
/// checks): the smallest possible key, which the store never writes.
const PROBE_KEY: &[u8] = b"\0";

impl EtcdStore {
    /// Connects to the etcd cluster serving `endpoints` (`http://host:port`; `host:port`
    /// means `http://`) and checks that it answers within `options.timeout`.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore> {
        let timeout = options.timeout;
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let connect = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(true)
            // A member that lost its leader refuses requests and cancels watches
            // instead of serving stale data or going quiet.
            .with_require_leader(true);
        let client =
            match tokio::time::timeout(timeout, Client::connect(&endpoints, Some(connect))).await {
                Ok(client) => client?,
                Err(_) => {
                    return Err(Error::Timeout {
                        operation: "connect",
                        timeout,
                    })
                }
            };
        // Lists and watch batches may carry many values of up to 1.5 MiB each.
        let kv = client.kv_client().max_decoding_message_size(usize::MAX);
        let watch = client.watch_client().max_decoding_message_size(usize::MAX);
        let endpoints = Endpoints::new(client, endpoints);
        let health = tokio::spawn(endpoints.clone().run());
        let store = EtcdStore {
            endpoints,
            kv,
            watch,
            timeout,
            health,
        };
        let revision = store.current_revision().await?;
        tracing::info!(endpoints = ?store.endpoints.all(), revision, "connected to etcd");
        Ok(store)
    }

    /// The endpoints this store was connected with.
    pub fn endpoints(&self) -> &[String] {
        self.endpoints.all()
    }

    /// Runs a request within the deadline. It is sent again when it could not reach a
    /// member, and, if `idempotent`, while the cluster is unavailable; a write that may
    /// have been applied is never sent twice.
    async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        idempotent: bool,
        mut attempt: F,
    ) -> Result<EtcdResult<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = EtcdResult<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = RETRY_BACKOFF.0;
        loop {
            let result = tokio::time::timeout_at(deadline, attempt())
                .await
                .map_err(|_| Error::Timeout {
                    operation,
                    timeout: self.timeout,
                })?;
            let Err(err) = &result else { return Ok(result) };
            let retry = match classify(err) {
                Refusal::Unreachable => {
                    self.endpoints.report_unreachable();
                    true
                }
                Refusal::Unavailable => idempotent,
                _ => false,
            };
            if !retry || Instant::now() + backoff >= deadline {
                return Ok(result);
            }
            tracing::debug!(operation, error = %err, "etcd request failed, sending it again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF.1);
        }
    }

    /// Runs a transaction (a write) with [`EtcdStore::call`].
    async fn txn(&self, operation: &'static str, txn: impl Fn() -> Txn) -> Result<TxnResponse> {
        Ok(self
            .call(operation, false, || {
                let (mut kv, txn) = (self.kv.clone(), txn());
                async move { kv.txn(txn).await }
            })
            .await??)
    }

    /// A range read; a refused revision becomes [`Error::Compacted`] or
    /// [`Error::FutureRevision`] for `requested`.
    async fn range(
        &self,
        operation: &'static str,
        key: &[u8],
        options: GetOptions,
        requested: Option<Revision>,
    ) -> Result<GetResponse> {
        let mut options = options;
        if let Some(revision) = requested {
            options = options.with_revision(revision);
        }
        loop {
            let result = self
                .call(operation, true, || {
                    let (mut kv, key, options) = (self.kv.clone(), key.to_vec(), options.clone());
                    async move { kv.get(key, Some(options)).await }
                })
                .await?;
            let err = match result {
                Ok(resp) => return Ok(resp),
                Err(err) => err,
            };
            let requested = requested.unwrap_or(0);
            match classify(&err) {
                Refusal::Compacted => {
                    let compacted = self
                        .compacted_revision_above(requested)
                        .await
                        .unwrap_or(requested);
                    return Err(Error::Compacted {
                        requested,
                        compacted,
                    });
                }
                Refusal::FutureRevision => {
                    let current = self.current_revision().await?;
                    // The revision was written in the meantime: read again.
                    if current < requested {
                        return Err(Error::FutureRevision { requested, current });
                    }
                }
                _ => return Err(Error::Etcd(err)),
            }
        }
    }

    /// etcd's compacted revision if it is above `revision`, asked of a watch starting
    /// there (etcd answers such a watch with its compacted revision). `None` when etcd
    /// does not answer within a short deadline, as when nothing above `revision` was
    /// compacted.
    async fn compacted_revision_above(&self, revision: Revision) -> Option<Revision> {
        if revision < 1 {
            return None;
        }
        let probe = async {
            let mut client = self.watch.clone();
            let options = WatchOptions::new().with_start_revision(revision);
            let mut stream = client.watch(PROBE_KEY, Some(options)).await.ok()?;
            while let Some(resp) = stream.message().await.ok()? {
                if resp.compact_revision() != 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() {
                    return None;
                }
            }
            None
        };
        tokio::time::timeout(PROBE_TIMEOUT.min(self.timeout), probe)
            .await
            .ok()
            .flatten()
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        check_value_size(key, &value)?;
        let resp = self
            .txn("create", || {
                Txn::new()
                    .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value.to_vec(), None)])
            })
            .await?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_owned(),
            });
        }
        let revision = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResult> {
        let revision = revision.filter(|&r| r > 0);
        let mut resp = self
            .range("get", key.as_bytes(), GetOptions::new(), revision)
            .await?;
        let revision = revision.unwrap_or_else(|| header_revision(resp.header()));
        Ok(GetResult {
            revision,
            kv: resp.take_kvs().into_iter().next().map(key_value),
        })
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let (requested, start) = match &options.continue_token {
            Some(token) => {
                let (revision, start) = continue_token::decode(token, prefix)?;
                (Some(revision), start)
            }
            None => (options.revision.filter(|&r| r > 0), prefix.to_owned()),
        };
        let mut range = range_options(prefix);
        if let Some(limit) = options.limit.filter(|&l| l > 0) {
            range = range.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut resp = self
            .range("list", start.as_bytes(), range, requested)
            .await?;
        let revision = requested.unwrap_or_else(|| header_revision(resp.header()));
        let (more, count) = (resp.more(), resp.count());
        let kvs: Vec<KeyValue> = resp.take_kvs().into_iter().map(key_value).collect();
        let (continue_token, remaining) = match kvs.last() {
            Some(last) if more => {
                let remaining = u64::try_from(count)
                    .unwrap_or(0)
                    .saturating_sub(kvs.len() as u64);
                (Some(continue_token::encode(revision, &last.key)), remaining)
            }
            _ => (None, 0),
        };
        Ok(ListResult {
            kvs,
            revision,
            continue_token,
            remaining,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let range = range_options(prefix).with_count_only();
        let resp = self.range("count", prefix.as_bytes(), range, None).await?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        check_value_size(key, &value)?;
        let resp = self
            .txn("update", || {
                Txn::new()
                    .when(if_unchanged(key, expected_mod_revision))
                    .and_then([TxnOp::put(
                        key,
                        value.to_vec(),
                        Some(PutOptions::new().with_prev_key()),
                    )])
                    .or_else([TxnOp::get(key, None)])
            })
            .await?;
        if !resp.succeeded() {
            return Err(precondition_failed(key, expected_mod_revision, &resp));
        }
        let create_revision = match first_op(&resp) {
            Some(TxnOpResponse::Put(put)) => {
                put.prev_key().map_or(0, |prev| prev.create_revision())
            }
            _ => 0,
        };
        let revision = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<Revision>,
    ) -> Result<DeleteResult> {
        let delete = DeleteOptions::new().with_prev_key();
        let (revision, prev_kvs) = match expected_mod_revision {
            None => {
                let mut resp = self
                    .call("delete", false, || {
                        let (mut kv, delete) = (self.kv.clone(), delete.clone());
                        async move { kv.delete(key, Some(delete)).await }
                    })
                    .await??;
                (header_revision(resp.header()), resp.take_prev_kvs())
            }
            Some(expected) => {
                let resp = self
                    .txn("delete", || {
                        Txn::new()
                            .when(if_unchanged(key, expected))
                            .and_then([TxnOp::delete(key, Some(delete.clone()))])
                            .or_else([TxnOp::get(key, None)])
                    })
                    .await?;
                if !resp.succeeded() {
                    return Err(precondition_failed(key, expected, &resp));
                }
                let prev_kvs = match first_op(&resp) {
                    Some(TxnOpResponse::Delete(mut deleted)) => deleted.take_prev_kvs(),
                    _ => Vec::new(),
                };
                (header_revision(resp.header()), prev_kvs)
            }
        };
        match prev_kvs.into_iter().next() {
            Some(prev) => Ok(DeleteResult {
                revision,
                prev_kv: key_value(prev),
            }),
            None => Err(Error::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<WatchStream> {
        // Fail now, like the SQLite backend, if history after `after_revision` is gone.
        // A read at that revision is refused exactly when it is below the compacted one.
        let check = GetOptions::new().with_count_only();
        match self
            .range("watch", PROBE_KEY, check, Some(after_revision.max(1)))
            .await
        {
            Ok(_) | Err(Error::FutureRevision { .. }) => {}
            Err(Error::Compacted { compacted, .. }) => {
                return Err(Error::Compacted {
                    requested: after_revision,
                    compacted,
                });
            }
            Err(err) => return Err(err),
        }
        let watcher = Watcher {
            client: self.watch.clone(),
            kv: self.kv.clone(),
            endpoints: self.endpoints.clone(),
            prefix: prefix.to_owned(),
            timeout: self.timeout,
            seen: after_revision.max(0),
            progressed: after_revision.max(0),
            progress_wanted: false,
            progress_target: 0,
        };
        let stream = watcher
            .open_with_retry(Instant::now() + self.timeout)
            .await?;
        Ok(WatchStream::start(|tx, progress| {
            tokio::spawn(watcher.run(stream, tx, progress))
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Not sent again after an ambiguous failure: a repeated compaction is refused,
        // which would report a compaction that happened as an error.
        let result = self
            .call("compact", false, || {
                let mut kv = self.kv.clone();
                async move {
                    kv.compact(
                        revision,
                        Some(etcd_client::CompactionOptions::new().with_physical()),
                    )
                    .await
                }
            })
            .await?;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match classify(&err) {
            Refusal::Compacted => {
                // etcd refuses revisions at or below its compacted one; if nothing above
                // `revision - 1` is reported compacted, the compacted revision is `revision`.
                let compacted = self
                    .compacted_revision_above(revision - 1)
                    .await
                    .unwrap_or(revision);
                Err(Error::Compacted {
                    requested: revision,
                    compacted,
                })
            }
            Refusal::FutureRevision => {
                let current = self.current_revision().await?;
                Err(Error::FutureRevision {
                    requested: revision,
                    current,
                })
            }
            _ => Err(Error::Etcd(err)),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .range(
                "current_revision",
                PROBE_KEY,
                GetOptions::new().with_count_only(),
                None,
            )
            .await?;
        Ok(header_revision(resp.header()))
    }
}

/// The compare of a compare-and-swap: `key` exists and was last written at `expected`.
fn if_unchanged(key: &str, expected: Revision) -> [Compare; 2] {
    [
        Compare::mod_revision(key, CompareOp::Equal, expected),
        // A missing key compares as mod revision 0; it must not be created here.
        Compare::create_revision(key, CompareOp::Greater, 0),
    ]
}

/// The error of a compare-and-swap whose `Else` branch read the key.
fn precondition_failed(key: &str, expected: Revision, resp: &TxnResponse) -> Error {
    let current = match first_op(resp) {
        Some(TxnOpResponse::Get(mut get)) => get.take_kvs().into_iter().next(),
        _ => None,
    };
    match current {
        Some(current) => Error::Conflict {
            key: key.to_owned(),
            expected,
            current: Box::new(key_value(current)),
        },
        None => Error::NotFound {
            key: key.to_owned(),
        },
    }
}
