//! The watch stream both backends hand out.
//!
//! A backend runs one task per watch that pushes [`WatchResponse`]s into a bounded
//! channel; the stream is the receiving end. Dropping the stream stops the task.

use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::{Event, Result, Revision};

/// How many responses a watch buffers before its producer waits for the consumer.
pub(crate) const WATCH_BUFFER: usize = 256;

/// One message of a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchResponse {
    /// Changes, in revision order (one batch never spans a gap).
    Events(Vec<Event>),
    /// Every change up to and including this revision has been delivered (answers
    /// [`WatchStream::request_progress`]; the apiserver turns it into a BOOKMARK).
    Progress(Revision),
}

/// A running watch. Receive with [`WatchStream::recv`]; drop to cancel.
#[derive(Debug)]
pub struct WatchStream {
    rx: mpsc::Receiver<Result<WatchResponse>>,
    progress: Arc<Notify>,
    task: JoinHandle<()>,
}

impl WatchStream {
    /// Creates the channel pair: the stream, and the sender and progress signal the
    /// backend's task uses. `spawn` receives them and returns the task.
    pub(crate) fn start(
        spawn: impl FnOnce(mpsc::Sender<Result<WatchResponse>>, Arc<Notify>) -> JoinHandle<()>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let progress = Arc::new(Notify::new());
        let task = spawn(tx, progress.clone());
        WatchStream { rx, progress, task }
    }

    /// The next response; `None` once the watch has ended. An `Err` (such as
    /// [`crate::Error::Compacted`]) is the last item. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<WatchResponse>> {
        self.rx.recv().await
    }

    /// A stream forwarding this one's responses through `f`, with progress requests
    /// passed back: for layers over a store that change values (encryption at rest).
    pub fn map(
        mut self,
        f: impl Fn(WatchResponse) -> Result<WatchResponse> + Send + 'static,
    ) -> WatchStream {
        WatchStream::start(move |tx, progress| {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        msg = self.recv() => {
                            let Some(msg) = msg else { return };
                            let last = msg.is_err();
                            if tx.send(msg.and_then(&f)).await.is_err() || last {
                                return;
                            }
                        }
                        () = progress.notified() => self.request_progress(),
                    }
                }
            })
        })
    }

    /// Asks for a [`WatchResponse::Progress`] carrying the revision up to which this
    /// watch has delivered every change, sent after any events before it.
    pub fn request_progress(&self) {
        self.progress.notify_one();
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
