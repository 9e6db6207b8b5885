//! The taint eviction controller (upstream `taint-eviction-controller`): a pod on a node
//! with `NoExecute` taints it does not tolerate is deleted at once; one tolerating them
//! all with `tolerationSeconds` is deleted that long after the taints were seen (the
//! shortest such toleration wins); one tolerating them forever stays. Each eviction is
//! announced with upstream's `TaintManagerEviction` event and marks the pod with a
//! `DisruptionTarget` condition before the delete; a scheduled eviction whose taints go
//! away is cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use rkube_scheduler::plugins::helper::tolerates;
use serde_json::json;

use crate::streams::touched;
use crate::Context;

struct Ctx {
    cx: Context,
    nodes: Store<Node>,
    /// When each pod's (by uid) pending eviction was first scheduled.
    scheduled: Arc<Mutex<HashMap<String, Instant>>>,
    recorder: Recorder,
}

/// The `NoExecute` taints of a node, the only ones this controller acts on.
fn no_execute_taints(node: &Node) -> Vec<&Taint> {
    node.spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

/// Whether a pod event can matter (upstream's taint manager only looks at pods on
/// nodes with `NoExecute` taints): the pod's node has such taints, or an eviction of
/// the pod is pending and may need cancelling. Every other pod event (the bulk of them
/// in a healthy cluster) is dropped before it reaches the queue.
fn pod_matters(
    pod: &Pod,
    nodes: &Store<Node>,
    scheduled: &Mutex<HashMap<String, Instant>>,
) -> bool {
    let on_tainted_node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .and_then(|n| nodes.get(&ObjectRef::new(n)))
        .is_some_and(|node| !no_execute_taints(&node).is_empty());
    on_tainted_node
        || pod
            .metadata
            .uid
            .as_ref()
            .is_some_and(|uid| scheduled.lock().unwrap().contains_key(uid))
}

/// Remembers each node's `NoExecute` taints and says whether a node event changed
/// them: only then can the verdicts of the node's pods change.
#[derive(Default)]
struct TaintMemory(Mutex<HashMap<String, Vec<Taint>>>);

impl TaintMemory {
    fn changed(&self, node: &Node) -> bool {
        let name = node.name_any();
        let now: Vec<Taint> = if node.metadata.deletion_timestamp.is_some() {
            Vec::new()
        } else {
            no_execute_taints(node).into_iter().cloned().collect()
        };
        let mut seen = self.0.lock().unwrap();
        match seen.get(&name) {
            Some(before) if *before == now => false,
            None if now.is_empty() => {
                seen.insert(name, now);
                false
            }
            _ => {
                seen.insert(name, now);
                true
            }
        }
    }
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (pods, pod_events) = cx.informers.all::<Pod>(Default::default()).await;
    let (nodes, node_events) = cx.informers.all::<Node>(Default::default()).await;
    let recorder = crate::events::recorder(&cx, "taint-eviction-controller");
    let scheduled: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let ctx = Arc::new(Ctx {
        cx,
        nodes: nodes.clone(),
        scheduled: scheduled.clone(),
        recorder,
    });
    let pod_store = pods.clone();
    let relevant = touched(pod_events)
        .filter(move |pod| futures::future::ready(pod_matters(pod, &nodes, &scheduled)));
    let taints = TaintMemory::default();
    let node_changes =
        touched(node_events).filter(move |node| futures::future::ready(taints.changed(node)));
    Controller::for_shared_stream(crate::metrics::queue().trigger(relevant), pods)
        .watches_shared_stream(node_changes, move |node: Arc<Node>| {
            let name = node.name_any();
            pod_store
                .state()
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
                .map(|p| ObjectRef::from_obj(&**p))
                .collect::<Vec<_>>()
        })
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// What to do with a pod given its node's `NoExecute` taints.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taints, or all tolerated forever.
    Keep,
    /// Delete now: a taint is not tolerated (or a toleration allows 0 s).
    EvictNow,
    /// Delete after this long, unless the taints go.
    EvictAfter(Duration),
}

/// Upstream's decision: every NoExecute taint must be tolerated; the shortest
/// `tolerationSeconds` of the tolerations used bounds the stay (none: forever).
pub fn verdict(taints: &[Taint], tolerations: &[Toleration]) -> Verdict {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Verdict::Keep;
    }
    let mut used: Vec<&Toleration> = Vec::new();
    for taint in &no_execute {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Verdict::EvictNow;
        }
        used.extend(matching);
    }
    let min = used.iter().filter_map(|t| t.toleration_seconds).min();
    match min {
        None => Verdict::Keep,
        Some(s) if s <= 0 => Verdict::EvictNow,
        Some(s) => Verdict::EvictAfter(Duration::from_secs(s as u64)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot evict pod {pod}: {source}")]
struct Error {
    pod: String,
    source: kube::Error,
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let uid = pod.uid().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", pod.name_any());
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .and_then(|n| ctx.nodes.get(&ObjectRef::new(&n)));
    let (Some(node), None) = (node, &pod.metadata.deletion_timestamp) else {
        ctx.scheduled.lock().unwrap().remove(&uid);
        return Ok(Action::await_change());
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let now = Instant::now();
    let due = match verdict(&taints, &tolerations) {
        Verdict::Keep => {
            let was = ctx.scheduled.lock().unwrap().remove(&uid).is_some();
            if was {
                let note = format!("Cancelling deletion of Pod {key}");
                crate::events::publish(
                    &ctx.recorder,
                    &*pod,
                    EventType::Normal,
                    "TaintManagerEviction",
                    note,
                )
                .await;
            }
            return Ok(Action::await_change());
        }
        Verdict::EvictNow => now,
        Verdict::EvictAfter(d) => {
            *ctx.scheduled
                .lock()
                .unwrap()
                .entry(uid.clone())
                .or_insert(now)
                + d
        }
    };
    if due > now {
        return Ok(Action::requeue(due - now));
    }
    let note = format!("Marking for deletion Pod {key}");
    crate::events::publish(
        &ctx.recorder,
        &*pod,
        EventType::Normal,
        "TaintManagerEviction",
        note,
    )
    .await;
    let api: Api<Pod> = Api::namespaced(ctx.cx.client.clone(), &ns);
    let err = |source| Error {
        pod: key.clone(),
        source,
    };
    let now_time = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": now_time}]}});
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
        Err(e) => return Err(err(e)),
    }
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(err(e)),
    }
    ctx.scheduled.lock().unwrap().remove(&uid);
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Pod>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "taint-eviction-controller");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn taints(v: serde_json::Value) -> Vec<Taint> {
        serde_json::from_value(v).unwrap()
    }

    fn tols(v: serde_json::Value) -> Vec<Toleration> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn verdicts_like_upstream() {
        let unreachable = taints(json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "other", "effect": "NoSchedule"}]));
        let cases = [
            (json!([]), Verdict::EvictNow),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]),
                Verdict::Keep,
            ),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}]),
                Verdict::EvictAfter(Duration::from_secs(3)),
            ),
            (
                json!([{"operator": "Exists", "tolerationSeconds": 10},
                       {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 5}]),
                Verdict::EvictAfter(Duration::from_secs(5)),
            ),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 0}]),
                Verdict::EvictNow,
            ),
            (
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}]),
                Verdict::EvictNow,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(verdict(&unreachable, &tols(t.clone())), want, "{t}");
        }
        assert_eq!(
            verdict(&taints(json!([{"key": "a", "effect": "NoSchedule"}])), &[]),
            Verdict::Keep
        );
    }

    fn node(name: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"taints": taints}}))
            .unwrap()
    }

    #[test]
    fn node_events_matter_only_when_no_execute_taints_change() {
        let memory = TaintMemory::default();
        assert!(
            !memory.changed(&node("a", json!([]))),
            "first sight, untainted"
        );
        assert!(!memory.changed(&node("a", json!([{"key": "k", "effect": "NoSchedule"}]))));
        assert!(memory.changed(&node("a", json!([{"key": "k", "effect": "NoExecute"}]))));
        assert!(!memory.changed(&node("a", json!([{"key": "k", "effect": "NoExecute"}]))));
        assert!(memory.changed(&node(
            "a",
            json!([{"key": "k", "value": "v", "effect": "NoExecute"}])
        )));
        assert!(memory.changed(&node("a", json!([]))), "taint removed");
        assert!(
            memory.changed(&node("b", json!([{"key": "k", "effect": "NoExecute"}]))),
            "first sight, tainted"
        );
    }

    #[test]
    fn only_pods_on_no_execute_nodes_or_with_pending_evictions_matter() {
        let (nodes, mut writer) = kube::runtime::reflector::store::<Node>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(node(
            "tainted",
            json!([{"key": "k", "effect": "NoExecute"}]),
        )));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(node(
            "clean",
            json!([{"key": "k", "effect": "NoSchedule"}]),
        )));
        let pod = |uid: &str, node: Option<&str>| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": uid, "uid": uid},
                "spec": {"containers": [], "nodeName": node}}))
            .unwrap()
        };
        let scheduled = Mutex::new(HashMap::from([("pending".to_owned(), Instant::now())]));
        assert!(pod_matters(&pod("p1", Some("tainted")), &nodes, &scheduled));
        assert!(!pod_matters(&pod("p2", Some("clean")), &nodes, &scheduled));
        assert!(!pod_matters(&pod("p3", None), &nodes, &scheduled));
        assert!(!pod_matters(
            &pod("p4", Some("unknown")),
            &nodes,
            &scheduled
        ));
        assert!(pod_matters(
            &pod("pending", Some("clean")),
            &nodes,
            &scheduled
        ));
    }
}
