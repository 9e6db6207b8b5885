//! One watch's producer task: forwards etcd's events for a prefix, answers progress
//! requests, and re-establishes the etcd watch when its stream breaks.
//!
//! The etcd watch covers the whole key space and the prefix is filtered here. That costs
//! bandwidth, but it makes progress exact: every revision is some key's change, so once
//! the events of revision `r` have arrived, every change up to `r` has. A progress
//! request is answered by reading the cluster's current revision and reporting once the
//! watch has received that far. etcd's own progress requests cannot be trusted for this:
//! before 3.4.24 and 3.5.8 the answer is sent out of band and overtakes events still
//! queued on the server (always, for a watch replaying history), and later versions do
//! not answer at all while a watch replays.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{EventType, GetOptions, KvClient, WatchClient, WatchOptions};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::endpoints::Endpoints;
use super::{
    classify, header_revision, key_string, key_value_ref, EtcdResult, Refusal, PROBE_KEY,
    RETRY_BACKOFF,
};
use crate::{Error, Event, EventKind, KeyValue, Result, Revision, WatchResponse};

/// How long a broken watch keeps trying to re-establish itself before it ends with
/// the last error.
const RECONNECT_WINDOW: Duration = Duration::from_secs(30);

/// Why a watch's etcd stream stopped delivering.
enum Stop {
    /// The consumer dropped the stream.
    ConsumerGone,
    /// etcd compacted history the watch had not delivered yet.
    Compacted(Revision),
    /// The stream failed or ended; it can be re-established.
    Broken(String),
}

/// An etcd watch: the request side (kept open for the stream's life) and the responses.
pub(super) type EtcdWatch = (
    etcd_client::WatchRequestSender,
    etcd_client::WatchResponseStream,
);

/// One watch's state.
pub(super) struct Watcher {
    pub(super) client: WatchClient,
    pub(super) kv: KvClient,
    pub(super) endpoints: Arc<Endpoints>,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    /// Every change up to here (to any key) has been received, and those under the
    /// prefix delivered; a new etcd watch starts after it.
    pub(super) seen: Revision,
    /// The highest revision reported in a progress notification.
    pub(super) progressed: Revision,
    /// The consumer asked for progress that has not been reported yet.
    pub(super) progress_wanted: bool,
    /// The highest current revision read for a progress request: progress is reported
    /// once every read has finished and the watch has received this far.
    pub(super) progress_target: Revision,
}

impl Watcher {
    /// Starts an etcd watch at `seen + 1` and waits until etcd confirms it.
    async fn open(&self) -> EtcdResult<EtcdWatch> {
        let options = WatchOptions::new()
            .with_from_key()
            .with_start_revision(self.seen + 1)
            .with_prev_key();
        let mut client = self.client.clone();
        // From the empty key on: the whole key space.
        let (sender, mut responses) = client.watch("", Some(options)).await?.split();
        match responses.message().await? {
            Some(resp) if resp.created() && !resp.canceled() => Ok((sender, responses)),
            Some(resp) => Err(etcd_client::Error::WatchError(format!(
                "watch not created: {}",
                resp.cancel_reason()
            ))),
            None => Err(etcd_client::Error::WatchError(
                "watch stream ended before it was created".into(),
            )),
        }
    }

    /// Opens the etcd watch, trying again while etcd is unavailable until `deadline`.
    pub(super) async fn open_with_retry(&self, deadline: Instant) -> Result<EtcdWatch> {
        let mut backoff = RETRY_BACKOFF.0;
        loop {
            let attempt_deadline = deadline.min(Instant::now() + self.timeout);
            let err = match tokio::time::timeout_at(attempt_deadline, self.open()).await {
                Ok(Ok(watch)) => return Ok(watch),
                Ok(Err(err)) => match classify(&err) {
                    Refusal::Unreachable => {
                        self.endpoints.report_unreachable();
                        Error::Etcd(err)
                    }
                    Refusal::Unavailable => Error::Etcd(err),
                    _ => return Err(Error::Etcd(err)),
                },
                Err(_) => Error::Timeout {
                    operation: "watch",
                    timeout: self.timeout,
                },
            };
            if Instant::now() + backoff >= deadline {
                return Err(err);
            }
            tracing::debug!(prefix = %self.prefix, error = %err, "etcd watch not established, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF.1);
        }
    }

    /// Runs until the consumer drops the stream or the watch fails for good.
    pub(super) async fn run(
        mut self,
        watch: EtcdWatch,
        tx: mpsc::Sender<Result<WatchResponse>>,
        progress: Arc<Notify>,
    ) {
        let (mut sender, mut responses) = watch;
        // Reads of the current revision for progress requests, across reconnects.
        let mut reads = JoinSet::new();
        loop {
            let reason = match self.pump(&mut responses, &tx, &progress, &mut reads).await {
                Stop::ConsumerGone => return,
                Stop::Compacted(compacted) => {
                    let compacted = Error::Compacted {
                        requested: self.seen,
                        compacted,
                    };
                    let _ = tx.send(Err(compacted)).await;
                    return;
                }
                Stop::Broken(reason) => reason,
            };
            tracing::warn!(prefix = %self.prefix, revision = self.seen, reason, "etcd watch broke, re-establishing it");
            match self
                .open_with_retry(Instant::now() + RECONNECT_WINDOW)
                .await
            {
                Ok(watch) => {
                    drop(sender);
                    (sender, responses) = watch;
                }
                Err(err) => {
                    tracing::warn!(prefix = %self.prefix, error = %err, "etcd watch could not be re-established");
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            }
        }
    }

    /// Forwards responses and answers progress requests until the stream stops.
    async fn pump(
        &mut self,
        responses: &mut etcd_client::WatchResponseStream,
        tx: &mpsc::Sender<Result<WatchResponse>>,
        progress: &Notify,
        reads: &mut JoinSet<Revision>,
    ) -> Stop {
        loop {
            let resp = tokio::select! {
                resp = responses.message() => resp,
                () = progress.notified() => {
                    // Read anew for each request, so the answer is no older than it.
                    self.progress_wanted = true;
                    reads.spawn(current_revision(self.kv.clone(), self.endpoints.clone(), self.timeout));
                    continue;
                }
                Some(read) = reads.join_next() => {
                    if let Ok(revision) = read {
                        self.progress_target = self.progress_target.max(revision);
                    }
                    if !self.report_progress(tx, reads).await {
                        return Stop::ConsumerGone;
                    }
                    continue;
                }
                () = tx.closed() => return Stop::ConsumerGone,
            };
            let resp = match resp {
                Ok(Some(resp)) => resp,
                Ok(None) => return Stop::Broken("stream ended".into()),
                Err(err) => return Stop::Broken(err.to_string()),
            };
            if resp.compact_revision() != 0 {
                return Stop::Compacted(resp.compact_revision());
            }
            if resp.canceled() {
                return Stop::Broken(format!("canceled: {}", resp.cancel_reason()));
            }
            let mut events = Vec::new();
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                // Skip what an earlier etcd watch of this one already received.
                if kv.mod_revision() <= self.seen {
                    continue;
                }
                if kv.key().starts_with(self.prefix.as_bytes()) {
                    events.extend(event(e));
                }
            }
            // A response holds whole revisions, in order.
            if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                self.seen = self.seen.max(last.mod_revision());
            }
            if !events.is_empty() && tx.send(Ok(WatchResponse::Events(events))).await.is_err() {
                return Stop::ConsumerGone;
            }
            if !self.report_progress(tx, reads).await {
                return Stop::ConsumerGone;
            }
        }
    }

    /// Reports progress if it was asked for, every read for it has finished, and the
    /// watch has received that far. `false` when the consumer is gone.
    async fn report_progress(
        &mut self,
        tx: &mpsc::Sender<Result<WatchResponse>>,
        reads: &JoinSet<Revision>,
    ) -> bool {
        // Revision 1 is a new cluster's and no change has it: nothing to wait for.
        let reached = if self.progress_target <= 1 {
            self.seen.max(self.progress_target)
        } else {
            self.seen
        };
        if !self.progress_wanted || !reads.is_empty() || reached < self.progress_target {
            return true;
        }
        self.progress_wanted = false;
        self.progressed = self.progressed.max(reached);
        tx.send(Ok(WatchResponse::Progress(self.progressed)))
            .await
            .is_ok()
    }
}

/// The cluster's current revision (a linearizable read), trying until it gets it; the
/// task is dropped with its watch.
async fn current_revision(
    mut kv: KvClient,
    endpoints: Arc<Endpoints>,
    timeout: Duration,
) -> Revision {
    let mut backoff = RETRY_BACKOFF.0;
    loop {
        let read = kv.get(PROBE_KEY, Some(GetOptions::new().with_count_only()));
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(resp)) => return header_revision(resp.header()),
            Ok(Err(err)) if classify(&err) == Refusal::Unreachable => {
                endpoints.report_unreachable()
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF.1);
    }
}

/// Converts an etcd watch event.
fn event(event: &etcd_client::Event) -> Option<Event> {
    let kv = event.kv()?;
    let prev_kv = event.prev_kv().map(key_value_ref);
    Some(match event.event_type() {
        EventType::Put => {
            let kind = if kv.create_revision() == kv.mod_revision() {
                EventKind::Create
            } else {
                EventKind::Update
            };
            Event {
                kind,
                kv: key_value_ref(kv),
                prev_kv,
            }
        }
        EventType::Delete => Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key_string(kv.key().to_vec()),
                value: Bytes::new(),
                create_revision: prev_kv.as_ref().map_or(0, |prev| prev.create_revision),
                mod_revision: kv.mod_revision(),
            },
            prev_kv,
        },
    })
}
