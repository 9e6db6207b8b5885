//! The pod garbage collector (upstream `pod-garbage-collector-controller`): every 20 s it
//! deletes terminated pods beyond `--terminated-pod-gc-threshold` (oldest first), pods
//! bound to nodes that no longer exist (after a 40 s quarantine and a fresh check of the
//! node; they are first marked Failed with a `DisruptionTarget` condition), and pods
//! being deleted that were never scheduled.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::Context;

/// How often the collector runs (upstream's `gcCheckPeriod`).
const PERIOD: Duration = Duration::from_secs(20);
/// How long a node must be missing before its pods are collected (upstream's
/// `quarantineTime`).
const QUARANTINE: Duration = Duration::from_secs(40);
/// Upstream's default `--terminated-pod-gc-threshold`.
pub const DEFAULT_THRESHOLD: usize = 12500;

/// Runs the collector until dropped.
pub async fn run(cx: Context) {
    let pods = cx.informers.store::<Pod>(Default::default()).await;
    let nodes = cx.informers.store::<Node>(Default::default()).await;
    // Both stores are synced: the informers hand them out only then.
    let mut missing_since: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        let all_pods = pods.state();
        let node_names: HashSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        gc(&cx, &all_pods, &node_names, &mut missing_since).await;
    }
}

async fn gc(
    cx: &Context,
    pods: &[Arc<Pod>],
    nodes: &HashSet<String>,
    missing_since: &mut HashMap<String, Instant>,
) {
    for pod in terminated_excess(pods, DEFAULT_THRESHOLD) {
        delete(cx, pod, None).await;
    }
    // Orphaned pods: their node must stay missing through the quarantine and be
    // confirmed absent by the API.
    let orphans = orphaned(pods, nodes);
    let missing: HashSet<&str> = orphans.iter().filter_map(|p| node_name(p)).collect();
    missing_since.retain(|n, _| missing.contains(n.as_str()));
    let now = Instant::now();
    let node_api: Api<Node> = Api::all(cx.client.clone());
    let mut gone: HashSet<&str> = HashSet::new();
    for node in missing {
        let since = *missing_since.entry(node.to_owned()).or_insert(now);
        if now.duration_since(since) < QUARANTINE {
            continue;
        }
        match node_api.get_opt(node).await {
            Ok(None) => {
                gone.insert(node);
            }
            Ok(Some(_)) => {
                missing_since.remove(node);
            }
            Err(e) => tracing::warn!(node, error = %e, "pod-garbage-collector: cannot check node"),
        }
    }
    for pod in orphans {
        if node_name(pod).is_some_and(|n| gone.contains(n)) {
            delete(
                cx,
                pod,
                Some(("DeletionByPodGC", "PodGC: node no longer exists")),
            )
            .await;
        }
    }
    for pod in unscheduled_terminating(pods) {
        delete(cx, pod, None).await;
    }
}

/// Force-deletes `pod`, first marking it Failed with a `DisruptionTarget` condition
/// (`reason`, `message`) if it had not terminated.
async fn delete(cx: &Context, pod: &Pod, condition: Option<(&str, &str)>) {
    let name = pod.name_any();
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(cx.client.clone(), &ns);
    if let Some((reason, message)) = condition {
        if !terminated(pod) {
            let patch = json!({"status": {
                "phase": "Failed",
                "conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                }],
            }});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod-garbage-collector: cannot mark pod failed");
                return;
            }
        }
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{ns}/{name}"), "pod-garbage-collector: deleted pod")
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod-garbage-collector: cannot delete pod")
        }
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed" | "Succeeded")
    )
}

/// Terminated pods beyond `threshold` (0 disables), oldest first.
pub fn terminated_excess<P: Borrow<Pod>>(pods: &[P], threshold: usize) -> Vec<&Pod> {
    let mut done: Vec<&Pod> = pods
        .iter()
        .map(Borrow::borrow)
        .filter(|p| terminated(p))
        .collect();
    if threshold == 0 || done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by(|a, b| {
        let key = |p: &Pod| (p.metadata.creation_timestamp.clone(), p.name_any());
        key(a).cmp(&key(b))
    });
    let excess = done.len() - threshold;
    done.truncate(excess);
    done
}

/// Pods bound to a node that is not among `nodes`.
pub fn orphaned<'a, P: Borrow<Pod>>(pods: &'a [P], nodes: &HashSet<String>) -> Vec<&'a Pod> {
    pods.iter()
        .map(Borrow::borrow)
        .filter(|p| node_name(p).is_some_and(|n| !nodes.contains(n)))
        .collect()
}

/// Pods being deleted that were never scheduled.
pub fn unscheduled_terminating<P: Borrow<Pod>>(pods: &[P]) -> Vec<&Pod> {
    pods.iter()
        .map(Borrow::borrow)
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(name: &str, created: i64, phase: &str, node: &str, deleting: bool) -> Pod {
        let t = |s| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap());
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(t(created)),
                deletion_timestamp: deleting.then(|| t(created + 1)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_owned()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn names(pods: Vec<&Pod>) -> Vec<String> {
        pods.into_iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn terminated_pods_over_the_threshold_go_oldest_first() {
        let pods = vec![
            pod("new-done", 30, "Succeeded", "n1", false),
            pod("running", 1, "Running", "n1", false),
            pod("old-failed", 10, "Failed", "n1", false),
            pod("mid-done", 20, "Succeeded", "n1", false),
        ];
        assert_eq!(
            names(terminated_excess(&pods, 1)),
            vec!["old-failed", "mid-done"]
        );
        assert!(terminated_excess(&pods, 3).is_empty());
        assert!(terminated_excess(&pods, 0).is_empty(), "0 disables");
    }

    #[test]
    fn pods_on_missing_nodes_are_orphans() {
        let pods = vec![
            pod("a", 1, "Running", "gone", false),
            pod("b", 1, "Running", "here", false),
            pod("c", 1, "Pending", "", false),
        ];
        let nodes: HashSet<String> = ["here".to_owned()].into();
        assert_eq!(names(orphaned(&pods, &nodes)), vec!["a"]);
    }

    #[test]
    fn unscheduled_terminating_pods_are_collected() {
        let pods = vec![
            pod("a", 1, "Pending", "", true),
            pod("b", 1, "Running", "n1", true),
            pod("c", 1, "Pending", "", false),
        ];
        assert_eq!(names(unscheduled_terminating(&pods)), vec!["a"]);
    }
}
