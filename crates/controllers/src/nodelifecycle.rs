//! The node lifecycle controller (upstream `node-lifecycle-controller`). Every
//! `--node-monitor-period` each node's health is checked: a node whose kubelet has posted
//! neither a new Ready heartbeat nor a Lease renewal (in `kube-node-lease`) for
//! `--node-monitor-grace-period` gets its conditions set to Unknown (`NodeStatusUnknown`,
//! "Kubelet stopped posting node status."), a `NodeNotReady` event, and its pods marked
//! not Ready. Nodes are tainted from their conditions: `NoSchedule` taints as upstream's
//! TaintNodesByCondition, and `node.kubernetes.io/unreachable` / `not-ready` `NoExecute`
//! taints — added at `--node-eviction-rate` nodes per second per zone, slower or not at
//! all in disrupted zones, never while every zone is fully disrupted — which the
//! taint-eviction controller acts on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::streams::touched;
use crate::Context;

/// The taint of nodes whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of nodes whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// How long a new node may take to post its first status (`--node-startup-grace-period`).
const STARTUP_GRACE: Duration = Duration::from_secs(60);
/// `--unhealthy-zone-threshold`.
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// `--large-cluster-size-threshold`.
const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// `--secondary-node-eviction-rate`.
const SECONDARY_EVICTION_RATE: f64 = 0.01;
/// The conditions the kubelet posts, set Unknown when it stops.
const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller last saw of a node's heartbeats.
struct Health {
    probe: Instant,
    heartbeat: Option<Time>,
    lease_renew: Option<String>,
}

/// A token bucket with burst 1 (upstream's per-zone rate limiter).
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, rate: f64, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(1.0);
        self.last = now;
        if rate > 0.0 && self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Ctx {
    cx: Context,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: Mutex<HashMap<String, Health>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    recorder: Recorder,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (nodes, node_events) = cx.informers.all::<Node>(Default::default()).await;
    let (leases, lease_events) = cx
        .informers
        .namespaced::<Lease>("kube-node-lease", Default::default())
        .await;
    // Pods are only read from their store.
    let pods = cx.informers.store::<Pod>(Default::default()).await;
    let recorder = crate::events::recorder(&cx, "node-controller");
    let ctx = Arc::new(Ctx {
        cx,
        nodes: nodes.clone(),
        leases,
        pods,
        health: Mutex::default(),
        buckets: Mutex::default(),
        recorder,
    });
    let forget = ctx.clone();
    let node_events = node_events.inspect(move |ev| {
        if let watcher::Event::Delete(n) = ev {
            forget.health.lock().unwrap().remove(&n.name_any());
        }
    });
    Controller::for_shared_stream(crate::metrics::queue().trigger(touched(node_events)), nodes)
        .watches_shared_stream(touched(lease_events), |l: Arc<Lease>| {
            Some(ObjectRef::new(&l.name_any()))
        })
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready_status(node: &Node) -> Option<&str> {
    condition(node, "Ready").map(|c| c.status.as_str())
}

/// The conditions to write when the kubelet stopped posting (`never_posted`: it never
/// did): each kubelet condition not already Unknown becomes Unknown.
pub fn unknown_conditions(node: &Node, never_posted: bool, now: &Time) -> Vec<NodeCondition> {
    let mut out = Vec::new();
    for &type_ in KUBELET_CONDITIONS {
        match condition(node, type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) if !never_posted => out.push(NodeCondition {
                status: "Unknown".into(),
                reason: Some("NodeStatusUnknown".into()),
                message: Some("Kubelet stopped posting node status.".into()),
                last_transition_time: Some(now.clone()),
                ..c.clone()
            }),
            _ => out.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(now.clone()),
            }),
        }
    }
    out
}

/// The NoSchedule taints a node's conditions call for (upstream TaintNodesByCondition).
pub fn no_schedule_taints(node: &Node) -> Vec<&'static str> {
    let mut out = Vec::new();
    match ready_status(node) {
        Some("False") => out.push(TAINT_NOT_READY),
        Some("Unknown") => out.push(TAINT_UNREACHABLE),
        _ => {}
    }
    for (type_, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        (
            "NetworkUnavailable",
            "node.kubernetes.io/network-unavailable",
        ),
    ] {
        if condition(node, type_).is_some_and(|c| c.status == "True") {
            out.push(key);
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push("node.kubernetes.io/unschedulable");
    }
    out
}

/// Taint keys this controller owns, per effect.
const NO_SCHEDULE_KEYS: &[&str] = &[
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/unschedulable",
];
const NO_EXECUTE_KEYS: &[&str] = &[TAINT_NOT_READY, TAINT_UNREACHABLE];

/// A zone's state (upstream `ComputeZoneState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// The state of a zone with `ready` and `not_ready` nodes.
pub fn zone_state(ready: usize, not_ready: usize) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// A node's zone key (upstream `GetZoneKey`).
fn zone_of(node: &Node) -> String {
    let l = node.labels();
    let region = l
        .get("topology.kubernetes.io/region")
        .cloned()
        .unwrap_or_default();
    let zone = l
        .get("topology.kubernetes.io/zone")
        .cloned()
        .unwrap_or_default();
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot update node {node}: {source}")]
struct Error {
    node: String,
    source: kube::Error,
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.leases.wait_until_ready().await;
    let _ = ctx.pods.wait_until_ready().await;
    let config = &ctx.cx.config;
    let requeue = Action::requeue(config.node_monitor_period);
    let name = node.name_any();
    let err = |source| Error {
        node: name.clone(),
        source,
    };
    let now = Instant::now();
    let now_time = Time(k8s_openapi::jiff::Timestamp::now());
    let heartbeat = condition(&node, "Ready").and_then(|c| c.last_heartbeat_time.clone());
    let lease_renew = ctx
        .leases
        .get(&ObjectRef::new(&name).within("kube-node-lease"))
        .and_then(|l| {
            l.spec
                .as_ref()?
                .renew_time
                .as_ref()
                .map(|t| t.0.to_string())
        });
    let expired = {
        let mut health = ctx.health.lock().unwrap();
        let h = health.entry(name.clone()).or_insert(Health {
            probe: now,
            heartbeat: heartbeat.clone(),
            lease_renew: lease_renew.clone(),
        });
        if h.heartbeat != heartbeat {
            h.heartbeat = heartbeat;
            h.probe = now;
        }
        if lease_renew.is_some() && h.lease_renew != lease_renew {
            h.lease_renew = lease_renew;
            h.probe = now;
        }
        now.duration_since(h.probe) > config.node_monitor_grace_period
    };

    // Health: conditions go Unknown once the kubelet is silent for the grace period (or
    // never posted within the startup grace period).
    let observed_ready = ready_status(&node).map(str::to_owned);
    let never_posted = observed_ready.is_none();
    let silent = if never_posted {
        let age = node
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        age > STARTUP_GRACE.max(config.node_monitor_grace_period)
    } else {
        expired
    };
    let mut node = (*node).clone();
    if silent {
        let changed = unknown_conditions(&node, never_posted, &now_time);
        if !changed.is_empty() {
            let api: Api<Node> = Api::all(ctx.cx.client.clone());
            let patch = json!({"status": {"conditions": changed}});
            node = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(err)?;
        }
    }
    let current_ready = ready_status(&node).map(str::to_owned);
    if observed_ready.as_deref() == Some("True") && current_ready.as_deref() != Some("True") {
        let note = format!("Node {name} status is now: NodeNotReady");
        crate::events::publish(
            &ctx.recorder,
            &node,
            EventType::Normal,
            "NodeNotReady",
            note,
        )
        .await;
    }
    if current_ready.as_deref() == Some("Unknown") {
        mark_pods_not_ready(&ctx, &name, &now_time).await;
    }

    // Taints.
    let wanted_no_schedule = no_schedule_taints(&node);
    let wanted_no_execute = match current_ready.as_deref() {
        Some("False") => Some(TAINT_NOT_READY),
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => None,
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let has = |key: &str, effect: &str| taints.iter().any(|t| t.key == key && t.effect == effect);
    let has_no_execute = NO_EXECUTE_KEYS.iter().any(|k| has(k, "NoExecute"));
    // Zone states cost a pass over every node: only computed when NoExecute taints matter.
    let (states, all_disrupted) = if wanted_no_execute.is_some() || has_no_execute {
        zone_states(&ctx.nodes, &node)
    } else {
        (HashMap::new(), false)
    };
    let zone = zone_of(&node);
    let mut wait = None;
    let no_execute = if all_disrupted {
        // Every zone down: most likely the control plane's own network; evict nothing.
        None
    } else {
        match wanted_no_execute {
            Some(k) if has(k, "NoExecute") => Some(k),
            // A swap between the two (not-ready <-> unreachable) is not rate-limited.
            Some(k) if has_no_execute => Some(k),
            Some(k) => {
                let (state, size) = states.get(&zone).copied().unwrap_or((ZoneState::Normal, 1));
                let rate = match state {
                    ZoneState::Normal | ZoneState::FullDisruption => config.node_eviction_rate,
                    ZoneState::PartialDisruption if size > LARGE_CLUSTER_THRESHOLD => {
                        SECONDARY_EVICTION_RATE
                    }
                    ZoneState::PartialDisruption => 0.0,
                };
                let mut buckets = ctx.buckets.lock().unwrap();
                let bucket = buckets.entry(zone.clone()).or_insert(Bucket {
                    tokens: 1.0,
                    last: now,
                });
                if bucket.take(rate, now) {
                    Some(k)
                } else {
                    wait = Some(if rate > 0.0 {
                        Duration::from_secs_f64(1.0 / rate).min(config.node_monitor_period)
                    } else {
                        config.node_monitor_period
                    });
                    None
                }
            }
            None => None,
        }
    };
    let mut new: Vec<Taint> = taints
        .iter()
        .filter(|t| match t.effect.as_str() {
            "NoSchedule" if NO_SCHEDULE_KEYS.contains(&t.key.as_str()) => {
                wanted_no_schedule.contains(&t.key.as_str())
            }
            "NoExecute" if NO_EXECUTE_KEYS.contains(&t.key.as_str()) => {
                no_execute == Some(t.key.as_str())
            }
            _ => true,
        })
        .cloned()
        .collect();
    for key in &wanted_no_schedule {
        if !has(key, "NoSchedule") {
            new.push(Taint {
                key: (*key).into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    if let Some(key) = no_execute {
        if !has(key, "NoExecute") {
            new.push(Taint {
                key: key.into(),
                effect: "NoExecute".into(),
                time_added: Some(now_time.clone()),
                ..Default::default()
            });
        }
    }
    if new != taints {
        let api: Api<Node> = Api::all(ctx.cx.client.clone());
        let patch = json!({"spec": {"taints": new}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(err)?;
    }
    Ok(match wait {
        Some(w) => Action::requeue(w),
        None => requeue,
    })
}

/// Each zone's state and size, and whether every zone is fully disrupted; `current` is
/// taken as just updated.
fn zone_states(nodes: &Store<Node>, current: &Node) -> (HashMap<String, (ZoneState, usize)>, bool) {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for n in nodes.state() {
        let n: &Node = if n.name_any() == current.name_any() {
            current
        } else {
            &n
        };
        let c = counts.entry(zone_of(n)).or_default();
        if ready_status(n) == Some("True") {
            c.0 += 1;
        } else {
            c.1 += 1;
        }
    }
    let states: HashMap<String, (ZoneState, usize)> = counts
        .into_iter()
        .map(|(z, (r, nr))| (z, (zone_state(r, nr), r + nr)))
        .collect();
    let all = !states.is_empty()
        && states
            .values()
            .all(|(s, _)| *s == ZoneState::FullDisruption);
    (states, all)
}

/// Sets Ready=False on the node's pods that still say Ready (upstream `MarkPodsNotReady`),
/// each with a `NodeNotReady` warning.
async fn mark_pods_not_ready(ctx: &Ctx, node: &str, now: &Time) {
    for pod in ctx.pods.state() {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node)
            || !crate::endpoint_util::pod_ready(&pod)
        {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(ctx.cx.client.clone(), &ns);
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now}]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {
                let note = "Node is not ready".to_owned();
                crate::events::publish(
                    &ctx.recorder,
                    &*pod,
                    EventType::Warning,
                    "NodeNotReady",
                    note,
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(pod = pod.name_any(), error = %e, "cannot mark pod not ready"),
        }
    }
}

fn error_policy(_: Arc<Node>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "node-lifecycle-controller");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zone_states_like_upstream() {
        assert_eq!(zone_state(3, 0), ZoneState::Normal);
        assert_eq!(zone_state(0, 1), ZoneState::FullDisruption);
        assert_eq!(zone_state(1, 1), ZoneState::Normal);
        assert_eq!(zone_state(1, 2), ZoneState::Normal);
        assert_eq!(zone_state(2, 3), ZoneState::PartialDisruption);
        assert_eq!(zone_state(3, 3), ZoneState::Normal);
        assert_eq!(zone_state(0, 0), ZoneState::Normal);
    }

    #[test]
    fn silent_kubelet_conditions_go_unknown() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(2_000_000_000).unwrap());
        let n = node(
            json!({"metadata": {"name": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "2026-01-02T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "Unknown"}]}}),
        );
        let got = serde_json::to_value(unknown_conditions(&n, false, &now)).unwrap();
        assert_eq!(
            got,
            json!([
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status.",
                 "lastHeartbeatTime": "2026-01-02T00:00:00Z", "lastTransitionTime": "2033-05-18T03:33:20Z"},
                {"type": "MemoryPressure", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status.", "lastTransitionTime": "2033-05-18T03:33:20Z"},
                {"type": "PIDPressure", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                 "message": "Kubelet never posted node status.",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2033-05-18T03:33:20Z"},
            ])
        );
    }

    #[test]
    fn no_schedule_taints_follow_conditions() {
        let n = node(
            json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"},
                                      {"type": "DiskPressure", "status": "True"}]}}),
        );
        assert_eq!(
            no_schedule_taints(&n),
            vec![
                TAINT_UNREACHABLE,
                "node.kubernetes.io/disk-pressure",
                "node.kubernetes.io/unschedulable"
            ]
        );
        let n = node(json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(no_schedule_taints(&n), vec![TAINT_NOT_READY]);
    }

    #[test]
    fn bucket_allows_a_burst_of_one_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket {
            tokens: 1.0,
            last: t0,
        };
        assert!(b.take(0.1, t0));
        assert!(!b.take(0.1, t0 + Duration::from_secs(5)));
        assert!(b.take(0.1, t0 + Duration::from_secs(10)));
        assert!(!b.take(0.0, t0 + Duration::from_secs(100)));
    }
}
