//! The node IPAM controller (upstream `node-ipam-controller`, range allocator): with
//! `--cluster-cidr`, every node gets a `--node-cidr-mask-size` podCIDR (one per cluster
//! CIDR, for dual stack) in `spec.podCIDR`/`spec.podCIDRs`, set once. A deleted node's
//! ranges are released; at start the ranges of existing nodes are marked in use first,
//! so a restart never hands out a range twice. When the cluster CIDR is exhausted the
//! node gets upstream's `CIDRNotAvailable` event.

pub mod cidrset;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::streams::touched;
use crate::Context;
use cidrset::{Cidr, CidrError, CidrSet};

/// The allocator: one CIDR set per cluster CIDR, and what each node (by name) holds.
pub struct RangeAllocator {
    sets: Vec<CidrSet>,
    held: HashMap<String, Vec<Cidr>>,
}

impl RangeAllocator {
    /// From `--cluster-cidr` (comma-separated, at most one per family) and the node mask
    /// sizes (IPv4 from the flag, IPv6 /64 as upstream's default).
    pub fn new(cluster_cidr: &str, ipv4_mask: u8) -> Result<RangeAllocator, String> {
        let mut sets = Vec::new();
        for part in cluster_cidr.split(',').filter(|p| !p.trim().is_empty()) {
            let cidr: Cidr = part.parse()?;
            let mask = if cidr.addr.is_ipv4() { ipv4_mask } else { 64 };
            sets.push(CidrSet::new(cidr, mask).map_err(|e| format!("--cluster-cidr {cidr}: {e}"))?);
        }
        if sets.is_empty() {
            return Err("--cluster-cidr is empty".into());
        }
        Ok(RangeAllocator {
            sets,
            held: HashMap::new(),
        })
    }

    /// Marks a node's existing podCIDRs in use; ones outside the cluster CIDRs are
    /// reported and ignored.
    pub fn occupy(&mut self, node: &str, pod_cidrs: &[String]) {
        let mut held = Vec::new();
        for c in pod_cidrs {
            let Ok(cidr) = c.parse::<Cidr>() else {
                tracing::warn!(node, cidr = c, "node has an unparsable podCIDR");
                continue;
            };
            let set = self
                .sets
                .iter_mut()
                .find(|s| s.cluster().addr.is_ipv4() == cidr.addr.is_ipv4());
            match set.map(|s| s.occupy(&cidr)) {
                Some(Ok(())) => held.push(cidr),
                Some(Err(e)) => {
                    tracing::warn!(node, error = %e, "cannot mark the node's podCIDR in use")
                }
                None => {}
            }
        }
        if !held.is_empty() {
            self.held.insert(node.to_owned(), held);
        }
    }

    /// The ranges for a node without podCIDRs: those it was given already (a write that
    /// may not have landed), else one new range from each cluster CIDR.
    pub fn allocate(&mut self, node: &str) -> Result<Vec<Cidr>, CidrError> {
        if let Some(h) = self.held.get(node) {
            return Ok(h.clone());
        }
        let mut got = Vec::new();
        for i in 0..self.sets.len() {
            match self.sets[i].allocate_next() {
                Ok(c) => got.push(c),
                Err(e) => {
                    for (set, c) in self.sets.iter_mut().zip(&got) {
                        let _ = set.release(c);
                    }
                    return Err(e);
                }
            }
        }
        self.held.insert(node.to_owned(), got.clone());
        Ok(got)
    }

    /// Releases what a deleted node held.
    pub fn release(&mut self, node: &str) {
        for c in self.held.remove(node).unwrap_or_default() {
            for set in &mut self.sets {
                let _ = set.release(&c);
            }
        }
    }
}

struct Ctx {
    cx: Context,
    alloc: Mutex<RangeAllocator>,
    recorder: Recorder,
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    let list = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if !list.is_empty() {
        return list;
    }
    spec.and_then(|s| s.pod_cidr.clone())
        .filter(|c| !c.is_empty())
        .into_iter()
        .collect()
}

/// Runs the controller until dropped (at once when `--cluster-cidr` is unset, as
/// upstream's `--allocate-node-cidrs=false`).
pub async fn run(cx: Context) {
    let Some(cluster_cidr) = cx.config.cluster_cidr.clone() else {
        tracing::info!("node-ipam-controller: no --cluster-cidr, nodes get no podCIDR");
        return;
    };
    let mut alloc = match RangeAllocator::new(&cluster_cidr, cx.config.node_cidr_mask_size) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "node-ipam-controller cannot start");
            return;
        }
    };
    // Every existing node's ranges are in use before any is handed out.
    let api: Api<Node> = Api::all(cx.watch_client.clone());
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for n in &list.items {
                    alloc.occupy(&n.name_any(), &pod_cidrs(n));
                }
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "node-ipam-controller: cannot list nodes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let recorder = crate::events::recorder(&cx, "cidrAllocator");
    let ctx = Arc::new(Ctx {
        cx,
        alloc: Mutex::new(alloc),
        recorder,
    });
    let (nodes, events) = ctx
        .cx
        .informers
        .all::<Node>(watcher::Config::default())
        .await;
    let releaser = ctx.clone();
    let events = events.inspect(move |ev| {
        if let watcher::Event::Delete(node) = ev {
            releaser.alloc.lock().unwrap().release(&node.name_any());
        }
    });
    Controller::for_shared_stream(crate::metrics::queue().trigger(touched(events)), nodes)
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("failed to allocate cidr for node {0}: {1}")]
    Exhausted(String, CidrError),
    #[error("failed to set podCIDRs of node {0}: {1}")]
    Patch(String, kube::Error),
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let existing = pod_cidrs(&node);
    if !existing.is_empty() {
        ctx.alloc.lock().unwrap().occupy(&name, &existing);
        return Ok(Action::await_change());
    }
    let allocated = ctx.alloc.lock().unwrap().allocate(&name);
    let cidrs = match allocated {
        Ok(c) => c,
        Err(e) => {
            let note = format!("Node {name} status is now: CIDRNotAvailable");
            crate::events::publish(
                &ctx.recorder,
                &*node,
                EventType::Normal,
                "CIDRNotAvailable",
                note,
            )
            .await;
            return Err(Error::Exhausted(name, e));
        }
    };
    let strings: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
    let patch = json!({"spec": {"podCIDR": strings[0], "podCIDRs": strings}});
    let api: Api<Node> = Api::all(ctx.cx.client.clone());
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node = name, cidrs = ?strings, "set node podCIDRs");
            Ok(Action::await_change())
        }
        // Gone meanwhile: its range is released with the delete event.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            ctx.alloc.lock().unwrap().release(&name);
            Ok(Action::await_change())
        }
        Err(e) => Err(Error::Patch(name, e)),
    }
}

fn error_policy(_: Arc<Node>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "node-ipam-controller");
    match error {
        // Retried as nodes are deleted (their events requeue nothing, so poll).
        Error::Exhausted(..) => Action::requeue(Duration::from_secs(10)),
        Error::Patch(..) => Action::requeue(Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_rebuilds_from_existing_nodes() {
        let mut a = RangeAllocator::new("10.244.0.0/22", 24).unwrap();
        a.occupy("n0", &["10.244.0.0/24".into()]);
        a.occupy("n2", &["10.244.2.0/24".into()]);
        let got = |a: &mut RangeAllocator, n: &str| a.allocate(n).unwrap()[0].to_string();
        assert_eq!(got(&mut a, "n1"), "10.244.1.0/24");
        // Asked again before its write landed: the same range.
        assert_eq!(got(&mut a, "n1"), "10.244.1.0/24");
        assert_eq!(got(&mut a, "n3"), "10.244.3.0/24");
        assert_eq!(a.allocate("n4").unwrap_err(), CidrError::NoCidrsRemaining);
        a.release("n2");
        assert_eq!(got(&mut a, "n4"), "10.244.2.0/24");
    }

    #[test]
    fn dual_stack_gets_one_range_per_family() {
        let mut a = RangeAllocator::new("10.0.0.0/16,fd00::/56", 24).unwrap();
        let got: Vec<String> = a
            .allocate("n")
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.0/24", "fd00::/64"]);
        assert!(RangeAllocator::new("10.0.0.0/16", 8).is_err());
        assert!(RangeAllocator::new("nonsense", 24).is_err());
    }
}
