//! Watch fan-out for the SQLite backend, fed from the commit path.
//!
//! The writer publishes each committed group's events once, on a broadcast ring.
//! Every watch runs a task that filters the ring by prefix. A watch that starts in the
//! past, or falls so far behind that the ring overwrote batches it had not read, reads
//! the missing revisions from the log and then rejoins the ring, skipping what it has
//! already delivered — so a slow watcher is never dropped and never sees a gap or a
//! duplicate (unless its history was compacted, which ends it with `Compacted`).

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc, Notify};

use super::reader::{self, ReadPool};
use crate::keys::prefix_end;
use crate::{Event, Result, Revision, WatchResponse};

/// Committed groups kept on the ring.
const RING: usize = 1024;
/// Log rows read per catch-up query.
const CATCH_UP_PAGE: usize = 1000;

/// A committed group's events, in revision order.
type Batch = Arc<Vec<Event>>;

pub(crate) struct Hub {
    inner: Mutex<HubState>,
}

struct HubState {
    tx: broadcast::Sender<Batch>,
    /// Revision of the last published event.
    revision: Revision,
}

impl Hub {
    pub(crate) fn new(revision: Revision) -> Self {
        let (tx, _) = broadcast::channel(RING);
        Hub {
            inner: Mutex::new(HubState { tx, revision }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a committed group (called by the writer, in commit order).
    pub(crate) fn publish(&self, events: Vec<Event>) {
        let Some(last) = events.last().map(Event::revision) else {
            return;
        };
        let mut state = self.state();
        state.revision = last;
        let _ = state.tx.send(Arc::new(events));
    }

    /// Subscribes; the ring then carries every event after the returned revision.
    fn subscribe(&self) -> (broadcast::Receiver<Batch>, Revision) {
        let state = self.state();
        (state.tx.subscribe(), state.revision)
    }
}

/// One watch's producer task.
pub(crate) struct WatchTask {
    pub(crate) hub: Arc<Hub>,
    pub(crate) pool: Arc<ReadPool>,
    pub(crate) prefix: String,
    /// Every event up to here has been delivered (or precedes the watch).
    pub(crate) delivered: Revision,
}

impl WatchTask {
    pub(crate) async fn run(
        mut self,
        tx: mpsc::Sender<Result<WatchResponse>>,
        progress: Arc<Notify>,
    ) {
        let (mut ring, published) = self.hub.subscribe();
        if let Err(err) = self.catch_up(&tx, published).await {
            let _ = tx.send(Err(err)).await;
            return;
        }
        loop {
            tokio::select! {
                batch = ring.recv() => match batch {
                    Ok(batch) => {
                        if !self.forward(&tx, &batch).await {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let upto = self.hub.state().revision;
                        if let Err(err) = self.catch_up(&tx, upto).await {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                () = progress.notified() => {
                    if !self.report_progress(&tx, &mut ring).await {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    }

    /// Delivers the matching events of `batch` that are after `delivered`.
    async fn forward(&mut self, tx: &mpsc::Sender<Result<WatchResponse>>, batch: &[Event]) -> bool {
        let events: Vec<Event> = batch
            .iter()
            .filter(|e| e.revision() > self.delivered && e.kv.key.starts_with(&self.prefix))
            .cloned()
            .collect();
        if let Some(last) = batch.last() {
            self.delivered = self.delivered.max(last.revision());
        }
        events.is_empty() || tx.send(Ok(WatchResponse::Events(events))).await.is_ok()
    }

    /// Delivers from the log everything in `(delivered, upto]`.
    async fn catch_up(
        &mut self,
        tx: &mpsc::Sender<Result<WatchResponse>>,
        upto: Revision,
    ) -> Result<()> {
        let start = self.prefix.as_bytes().to_vec();
        let end = prefix_end(&start);
        while self.delivered < upto {
            let (after, start, end) = (self.delivered, start.clone(), end.clone());
            let events = self
                .pool
                .run(move |conn| {
                    reader::events(conn, &start, end.as_deref(), after, upto, CATCH_UP_PAGE)
                })
                .await?;
            let full = events.len() == CATCH_UP_PAGE;
            self.delivered = match events.last() {
                Some(last) if full => last.revision(),
                _ => upto,
            };
            if !events.is_empty() && tx.send(Ok(WatchResponse::Events(events))).await.is_err() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Sends a progress notification once every published event has been delivered.
    async fn report_progress(
        &mut self,
        tx: &mpsc::Sender<Result<WatchResponse>>,
        ring: &mut broadcast::Receiver<Batch>,
    ) -> bool {
        loop {
            // Under the hub lock nothing can be published, so an empty ring means the
            // watch has seen everything up to the hub's revision.
            let (pending, revision) = {
                let state = self.hub.state();
                let mut pending = Vec::new();
                let mut lagged = false;
                loop {
                    match ring.try_recv() {
                        Ok(batch) => pending.push(batch),
                        Err(TryRecvError::Lagged(_)) => {
                            lagged = true;
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    }
                }
                (pending, (!lagged).then_some(state.revision))
            };
            for batch in pending {
                if !self.forward(tx, &batch).await {
                    return false;
                }
            }
            match revision {
                Some(revision) => {
                    self.delivered = self.delivered.max(revision);
                    return tx
                        .send(Ok(WatchResponse::Progress(self.delivered)))
                        .await
                        .is_ok();
                }
                None => {
                    let upto = self.hub.state().revision;
                    if let Err(err) = self.catch_up(tx, upto).await {
                        let _ = tx.send(Err(err)).await;
                        return false;
                    }
                }
            }
        }
    }
}
