//! The DaemonSet controller (upstream `daemonset-controller`): one pod on every node the
//! DaemonSet's node selector, node affinity and tolerations admit. Each pod is pinned to
//! its node by a required node-affinity term on `metadata.name` (the scheduler binds it)
//! and gets upstream's default daemon tolerations. Templates are recorded as
//! ControllerRevisions (`<ds>-<hash>`, pods labelled `controller-revision-hash`), so
//! `kubectl rollout history/undo/status` work; RollingUpdate (maxUnavailable / maxSurge)
//! and OnDelete update strategies; status counts as upstream.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use rkube_scheduler::plugins::helper;

use crate::history::{self, REVISION_HASH};
use crate::podutil::{self, Expectations};
use crate::streams::touched;
use crate::Context;

const CONTROLLER: &str = "daemonset-controller";

struct Shared {
    cx: Context,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    expectations: Expectations,
    events: podutil::Events,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (pods, pod_events) = cx.informers.all::<Pod>(watcher::Config::default()).await;
    let (nodes, node_events) = cx.informers.all::<Node>(watcher::Config::default()).await;
    let controller = Controller::new(
        Api::<DaemonSet>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let (for_pods, for_nodes) = (sets.clone(), sets.clone());
    let controller = controller
        .watches_shared_stream(touched(pod_events), move |pod: Arc<Pod>| {
            owners_of(&for_pods, &pod)
        })
        .watches_shared_stream(touched(node_events), move |_node: Arc<Node>| {
            // A node change can change where every DaemonSet should run.
            for_nodes
                .state()
                .iter()
                .map(|d| ObjectRef::from_obj(d.as_ref()))
                .collect::<Vec<_>>()
        });
    let shared = Arc::new(Shared {
        events: podutil::Events::new(cx.client.clone(), CONTROLLER),
        cx,
        sets,
        pods,
        nodes,
        expectations: Expectations::default(),
    });
    controller
        .run(
            crate::metrics::queue().reconciler(|ds: Arc<DaemonSet>, s: Arc<Shared>| async move {
                if s.pods.wait_until_ready().await.is_err()
                    || s.nodes.wait_until_ready().await.is_err()
                {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                reconcile(ds, s).await
            }),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

fn owners_of(store: &Store<DaemonSet>, pod: &Pod) -> Vec<ObjectRef<DaemonSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = podutil::controller_of(&pod.metadata) {
        if r.kind == "DaemonSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| podutil::selector_matches(Some(&d.spec.selector), pod.metadata.labels.as_ref()))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

fn error_policy(ds: Arc<DaemonSet>, error: &Error, _: Arc<Shared>) -> Action {
    tracing::warn!(controller = CONTROLLER, name = %ds.name_any(), %error, "sync failed");
    Action::requeue(Duration::from_secs(1))
}

// ---- pure helpers ------------------------------------------------------------------

/// Upstream's default daemon tolerations (`AddOrUpdateDaemonPodTolerations`).
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut out = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    out
}

/// The template with the default tolerations added (those not already there).
fn with_tolerations(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    let spec = t.spec.get_or_insert_default();
    let host_network = spec.host_network == Some(true);
    let tol = spec.tolerations.get_or_insert_default();
    for d in default_tolerations(host_network) {
        if !tol.iter().any(|x| x.key == d.key && x.effect == d.effect) {
            tol.push(d);
        }
    }
    t
}

/// Whether a daemon pod from `template` should run on `node` (upstream
/// `NodeShouldRunDaemonPod`): node selector, required node affinity, and NoSchedule /
/// NoExecute taints all tolerated.
pub fn should_run(template: &PodTemplateSpec, node: &Node) -> bool {
    let t = with_tolerations(template);
    let spec = t.spec.unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if !helper::selector_matches(sel, node) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(req) = required {
        if !req
            .node_selector_terms
            .iter()
            .any(|term| helper::term_matches(term, node))
        {
            return false;
        }
    }
    let tolerations = spec.tolerations.unwrap_or_default();
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|taint| taint.effect == "NoSchedule" || taint.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| helper::tolerates(t, taint)))
}

/// The pod template for `node`: default tolerations, the revision hash label, and a
/// required node-affinity term on the node's name replacing any other (upstream
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pod_template_for(template: &PodTemplateSpec, hash: &str, node: &str) -> PodTemplateSpec {
    let mut t = with_tolerations(template);
    t.metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(REVISION_HASH.into(), hash.into());
    let spec = t.spec.get_or_insert_default();
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    t
}

fn revision_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The node a daemon pod is for: its node name, else its affinity term's name.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

// ---- the sync ----------------------------------------------------------------------

async fn reconcile(ds: Arc<DaemonSet>, s: Arc<Shared>) -> Result<Action, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let key = format!("{ns}/{name}");
    let Some(ds) = s.sets.get(&ObjectRef::new(&name).within(&ns)) else {
        s.expectations.forget(&key);
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pod_api: Api<Pod> = Api::namespaced(s.cx.client.clone(), &ns);
    let in_ns: Vec<Arc<Pod>> = s
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let needs_sync = s.expectations.satisfied(&key, |n| {
        in_ns
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .map(|p| p.metadata.deletion_timestamp.is_some())
    });
    // Failed daemon pods are deleted (and remade); the others are claimed.
    let candidates: Vec<&Pod> = in_ns
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let owner = podutil::controller_ref(ds.as_ref());
    let claimed =
        podutil::claim_pods(&pod_api, &owner, &ds.spec.selector, candidates, true).await?;
    let hash = ensure_revision(&s, &ds).await?;

    let mut by_node: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in &claimed {
        if let Some(n) = node_of(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let nodes = s.nodes.state();
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let mut to_create: Vec<String> = Vec::new();
    let mut to_delete: Vec<&Pod> = Vec::new();
    for node in &nodes {
        let node_name = node.name_any();
        let run = should_run(&ds.spec.template, node);
        let mut pods = by_node.remove(&node_name).unwrap_or_default();
        let (failed, mut live): (Vec<&Pod>, Vec<&Pod>) = pods
            .drain(..)
            .partition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        to_delete.extend(failed);
        if !run {
            to_delete.extend(live);
            continue;
        }
        if live.is_empty() {
            to_create.push(node_name);
            continue;
        }
        // One daemon pod per node: keep the oldest (upstream keeps the oldest running).
        live.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let updated: Vec<&&Pod> = live
            .iter()
            .filter(|p| revision_hash(p) == Some(hash.as_str()))
            .collect();
        if live.len() > 1 {
            // During a surge the old and the new coexist; otherwise extras go.
            let surge = updated.len() == 1 && live.len() == 2;
            if !surge {
                to_delete.extend(live.iter().skip(1));
            }
        }
    }
    // Pods on nodes that no longer exist.
    for (_, pods) in by_node {
        to_delete.extend(pods);
    }

    if needs_sync {
        rolling_update(
            &ds,
            &hash,
            &nodes,
            &claimed,
            min_ready,
            now,
            &mut to_create,
            &mut to_delete,
        );
        sync_nodes(&s, &ds, &key, &hash, &pod_api, to_create, to_delete).await?;
    }
    update_status(&s, &ds, &hash, &nodes, &claimed, min_ready, now).await?;
    // Look again when a ready pod turns available.
    let next = claimed
        .iter()
        .filter_map(|p| podutil::available_at(p, min_ready))
        .filter(|t| *t > now)
        .min();
    Ok(match next {
        Some(t) => Action::requeue(
            Duration::try_from(t.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(50),
        ),
        None => Action::await_change(),
    })
}

/// Adds RollingUpdate's deletions (and surge creations) of out-of-date pods, within
/// maxUnavailable / maxSurge (upstream `rollingUpdate`).
#[allow(clippy::too_many_arguments)]
fn rolling_update<'a>(
    ds: &DaemonSet,
    hash: &str,
    nodes: &[Arc<Node>],
    pods: &[&'a Pod],
    min_ready: i32,
    now: Timestamp,
    to_create: &mut Vec<String>,
    to_delete: &mut Vec<&'a Pod>,
) {
    let strategy = ds.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return;
    }
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let desired = nodes
        .iter()
        .filter(|n| should_run(&ds.spec.template, n))
        .count() as i32;
    let max_surge = podutil::scaled(ru.and_then(|r| r.max_surge.as_ref()), "0", desired, true);
    let max_unavailable = podutil::scaled(
        ru.and_then(|r| r.max_unavailable.as_ref()),
        "1",
        desired,
        true,
    )
    .max(if max_surge == 0 { 1 } else { 0 });
    let available = |p: &Pod| podutil::is_available(p, min_ready, now);
    let mut on_node: BTreeMap<String, Vec<&'a Pod>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = node_of(p) {
            on_node.entry(n).or_default().push(p);
        }
    }
    let mut unavailable = 0;
    let mut candidates: Vec<(String, &'a Pod)> = Vec::new();
    let mut surging = 0;
    for node in nodes.iter().filter(|n| should_run(&ds.spec.template, n)) {
        let name = node.name_any();
        let Some(ps) = on_node.get(&name) else {
            unavailable += 1;
            continue;
        };
        let new = ps.iter().find(|p| revision_hash(p) == Some(hash));
        let old = ps.iter().find(|p| revision_hash(p) != Some(hash));
        match (old, new) {
            (Some(o), None) => {
                if !available(o) {
                    unavailable += 1;
                    // An old pod that is not available anyway goes at once.
                    to_delete.push(o);
                } else {
                    candidates.push((name, o));
                }
            }
            (Some(o), Some(n)) => {
                surging += 1;
                if available(n) {
                    to_delete.push(o);
                }
            }
            (None, Some(n)) => {
                if !available(n) {
                    unavailable += 1;
                }
            }
            (None, None) => unavailable += 1,
        }
    }
    for (node, old) in candidates {
        if max_surge > 0 {
            if surging < max_surge {
                surging += 1;
                to_create.push(node);
            }
        } else if unavailable < max_unavailable {
            unavailable += 1;
            to_delete.push(old);
        }
    }
}

/// Ensures the ControllerRevision for the current template; returns its hash.
async fn ensure_revision(s: &Shared, ds: &DaemonSet) -> Result<String, Error> {
    let uid = ds.uid().unwrap_or_default();
    let in_use: Vec<String> = s
        .pods
        .state()
        .iter()
        .filter(|p| podutil::controlled_by(&p.metadata, &uid))
        .filter_map(|p| revision_hash(p).map(str::to_owned))
        .collect();
    let cur = history::sync(
        &s.cx.client,
        ds,
        &ds.spec.template,
        ds.status.as_ref().and_then(|st| st.collision_count),
        ds.spec.revision_history_limit,
        |_, hash| in_use.iter().any(|h| h == hash),
    )
    .await?;
    Ok(cur.hash)
}

async fn sync_nodes(
    s: &Shared,
    ds: &DaemonSet,
    key: &str,
    hash: &str,
    api: &Api<Pod>,
    to_create: Vec<String>,
    to_delete: Vec<&Pod>,
) -> Result<(), Error> {
    let owner = podutil::controller_ref(ds);
    let prefix = format!("{}-", ds.name_any());
    let nodes = std::sync::Mutex::new(to_create.into_iter().take(podutil::BURST_REPLICAS));
    let count = nodes.lock().map(|n| n.len()).unwrap_or(0);
    let (made, err) = podutil::slow_start(count, || {
        let node = nodes
            .lock()
            .ok()
            .and_then(|mut n| n.next())
            .unwrap_or_default();
        let template = pod_template_for(&ds.spec.template, hash, &node);
        let pod = podutil::pod_from_template(&template, &prefix, owner.clone());
        async move { api.create(&PostParams::default(), &pod).await }
    })
    .await;
    let names: Vec<String> = made.iter().map(|p| p.name_any()).collect();
    s.expectations.expect(key, names.clone(), Vec::new());
    for n in names {
        podutil::event(
            &s.events,
            ds,
            false,
            "SuccessfulCreate",
            format!("Created pod: {n}"),
        )
        .await;
    }
    if let Some(e) = &err {
        podutil::event(
            &s.events,
            ds,
            true,
            "FailedCreate",
            format!("Error creating: {e}"),
        )
        .await;
    }
    let mut deleted = Vec::new();
    let mut del_err = None;
    for p in to_delete.into_iter().take(podutil::BURST_REPLICAS) {
        let n = p.name_any();
        match api.delete(&n, &DeleteParams::default()).await {
            Ok(_) => deleted.push(n),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                podutil::event(
                    &s.events,
                    ds,
                    true,
                    "FailedDelete",
                    format!("Error deleting: {e}"),
                )
                .await;
                del_err.get_or_insert(e);
            }
        }
    }
    s.expectations.expect(key, Vec::new(), deleted.clone());
    for n in deleted {
        podutil::event(
            &s.events,
            ds,
            false,
            "SuccessfulDelete",
            format!("Deleted pod: {n}"),
        )
        .await;
    }
    match err.or(del_err) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn update_status(
    s: &Shared,
    ds: &DaemonSet,
    hash: &str,
    nodes: &[Arc<Node>],
    pods: &[&Pod],
    min_ready: i32,
    now: Timestamp,
) -> Result<(), Error> {
    let mut on_node: HashMap<String, Vec<&Pod>> = HashMap::new();
    for p in pods {
        if let Some(n) = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        {
            on_node.entry(n).or_default().push(p);
        }
    }
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    for node in nodes {
        let run = should_run(&ds.spec.template, node);
        let ps = on_node.get(&node.name_any());
        if run {
            desired += 1;
        }
        let Some(ps) = ps.filter(|ps| !ps.is_empty()) else {
            continue;
        };
        if !run {
            misscheduled += 1;
            continue;
        }
        current += 1;
        // The newest pod on the node speaks for it.
        let p = ps
            .iter()
            .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .copied()
            .unwrap_or(ps[0]);
        if podutil::is_ready(p) {
            ready += 1;
            if podutil::is_available(p, min_ready, now) {
                available += 1;
            }
        }
        if revision_hash(p) == Some(hash) {
            updated += 1;
        }
    }
    let old = ds.status.clone().unwrap_or_default();
    let status = DaemonSetStatus {
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: (available != 0).then_some(available),
        number_unavailable: (desired - available > 0).then_some(desired - available),
        updated_number_scheduled: (updated != 0).then_some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    if status == old {
        return Ok(());
    }
    let mut upd = ds.clone();
    upd.status = Some(status);
    let api: Api<DaemonSet> =
        Api::namespaced(s.cx.client.clone(), &ds.namespace().unwrap_or_default());
    match api
        .replace_status(&ds.name_any(), &PostParams::default(), &upd)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, PodSpec, Taint};
    use kube::api::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| Taint {
                            key: k.to_string(),
                            effect: e.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn template(selector: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                node_selector: (!selector.is_empty()).then(|| {
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn eligibility_follows_selector_and_taints() {
        let cases = [
            (node("a", &[], &[]), template(&[]), true),
            (
                node("b", &[("disk", "ssd")], &[]),
                template(&[("disk", "ssd")]),
                true,
            ),
            (node("c", &[], &[]), template(&[("disk", "ssd")]), false),
            (
                node("d", &[], &[("dedicated", "NoSchedule")]),
                template(&[]),
                false,
            ),
            (
                node("e", &[], &[("dedicated", "PreferNoSchedule")]),
                template(&[]),
                true,
            ),
            // Default tolerations cover the node-condition taints.
            (
                node(
                    "f",
                    &[],
                    &[("node.kubernetes.io/unschedulable", "NoSchedule")],
                ),
                template(&[]),
                true,
            ),
            (
                node("g", &[], &[("node.kubernetes.io/not-ready", "NoExecute")]),
                template(&[]),
                true,
            ),
        ];
        for (n, t, want) in cases {
            assert_eq!(should_run(&t, &n), want, "{}", n.name_any());
        }
    }

    #[test]
    fn daemon_pods_are_pinned_by_node_affinity() {
        let t = pod_template_for(&template(&[]), "abc", "node-1");
        let spec = t.spec.unwrap();
        let terms = spec
            .affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        let f = &terms[0].match_fields.as_ref().unwrap()[0];
        assert_eq!(
            (f.key.as_str(), f.operator.as_str()),
            ("metadata.name", "In")
        );
        assert_eq!(f.values, Some(vec!["node-1".to_string()]));
        assert_eq!(spec.tolerations.unwrap().len(), 6);
        assert_eq!(t.metadata.unwrap().labels.unwrap()[REVISION_HASH], "abc");
    }
}
