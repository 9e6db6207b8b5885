//! Endpoint health: keeps the client's balanced channel to the members that accept
//! connections.
//!
//! The channel balances requests over its endpoints by load, and a dead member looks
//! idle, so without this it would keep getting (and failing) a large share of requests.
//! A request that could not connect reports it here; the members are then probed with
//! a plain TCP connect, unreachable ones taken out of the channel, and probed again
//! every [`RECHECK_INTERVAL`] until they are back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::Client;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How often members taken out of the channel are probed.
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a probe may take to connect.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The endpoints of one client and which of them are out of its channel.
pub(super) struct Endpoints {
    client: Client,
    all: Vec<String>,
    removed: Mutex<HashSet<String>>,
    recheck: Notify,
}

impl Endpoints {
    pub(super) fn new(client: Client, all: Vec<String>) -> Arc<Self> {
        Arc::new(Endpoints {
            client,
            all,
            removed: Mutex::new(HashSet::new()),
            recheck: Notify::new(),
        })
    }

    /// Every endpoint, in or out of the channel.
    pub(super) fn all(&self) -> &[String] {
        &self.all
    }

    /// Reports that a request could not connect to its member.
    pub(super) fn report_unreachable(&self) {
        self.recheck.notify_one();
    }

    fn removed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.removed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probes the members when asked to, and while some are out, every
    /// [`RECHECK_INTERVAL`]. Runs until aborted.
    pub(super) async fn run(self: Arc<Self>) {
        loop {
            let degraded = !self.removed().is_empty();
            tokio::select! {
                () = self.recheck.notified() => {}
                () = tokio::time::sleep(RECHECK_INTERVAL), if degraded => {}
            }
            for endpoint in &self.all {
                let up = reachable(endpoint).await;
                let (out, in_channel) = {
                    let removed = self.removed();
                    (removed.contains(endpoint), self.all.len() - removed.len())
                };
                if up && out {
                    if self.client.add_endpoint(endpoint).await.is_ok() {
                        self.removed().remove(endpoint);
                        tracing::info!(endpoint, "etcd member reachable again");
                    }
                } else if !up && !out && in_channel > 1 {
                    // The last endpoint stays, so requests fail fast while all are down.
                    if self.client.remove_endpoint(endpoint).await.is_ok() {
                        self.removed().insert(endpoint.clone());
                        tracing::warn!(
                            endpoint,
                            "etcd member unreachable, no longer sending it requests"
                        );
                    }
                }
            }
        }
    }
}

/// Whether the member at `endpoint` (`scheme://host:port`) accepts TCP connections.
async fn reachable(endpoint: &str) -> bool {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(authority)).await,
        Ok(Ok(_))
    )
}
