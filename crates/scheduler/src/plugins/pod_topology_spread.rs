//! PodTopologySpread: `topologySpreadConstraints` keep matching pods evenly spread over
//! topology domains. `DoNotSchedule` constraints filter (a node whose domain would exceed
//! `maxSkew` over the least-loaded domain is rejected); `ScheduleAnyway` ones score
//! (fewer matching pods, higher score). A pod without constraints of its own that
//! belongs to a Service, ReplicationController, ReplicaSet or StatefulSet is scored by
//! the system defaults: hostname maxSkew 3 and zone maxSkew 5, ScheduleAnyway, over the
//! pods its owners select (upstream's `DefaultSelector`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::helper::tolerated;
use super::inter_pod_affinity::selector_matches;
use super::node_affinity::required_matches;
use crate::framework::{
    AllNodes, ClusterEvent, CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo,
    PreFilterPlugin, PreScorePlugin, ScorePlugin, Snapshot, Status, MAX_NODE_SCORE,
};
use crate::listers::Listers;

pub const NAME: &str = "PodTopologySpread";
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// The Filter and Score plugin. `defaults` is its args' `defaultConstraints` under
/// `defaultingType: List` (`None`: `System`, upstream's built-in defaults).
#[derive(Default)]
pub struct PodTopologySpread {
    listers: Arc<Listers>,
    defaults: Option<Vec<TopologySpreadConstraint>>,
}

impl PodTopologySpread {
    pub fn new(listers: Arc<Listers>) -> Self {
        PodTopologySpread {
            listers,
            defaults: None,
        }
    }

    /// With `defaultingType: List` and these `defaultConstraints`.
    pub fn with_defaults(listers: Arc<Listers>, defaults: Vec<TopologySpreadConstraint>) -> Self {
        PodTopologySpread {
            listers,
            defaults: Some(defaults),
        }
    }

    /// The default constraints (of `when` type) for a pod without constraints of its
    /// own, selecting what its Services and controller select: none when nothing does.
    fn default_constraints(&self, pod: &Pod, when: &str) -> Vec<Constraint> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        if own {
            return Vec::new();
        }
        if let Some(list) = &self.defaults {
            if !list.iter().any(|c| c.when_unsatisfiable == when) {
                return Vec::new();
            }
            let Some(selector) = default_selector(&self.listers, pod) else {
                return Vec::new();
            };
            return list
                .iter()
                .filter(|c| c.when_unsatisfiable == when)
                .map(|c| Constraint {
                    max_skew: i64::from(c.max_skew),
                    key: c.topology_key.clone(),
                    selector: Some(selector.clone()),
                    min_domains: c.min_domains,
                    honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                })
                .collect();
        }
        if when != "ScheduleAnyway" {
            return Vec::new();
        }
        let Some(selector) = default_selector(&self.listers, pod) else {
            return Vec::new();
        };
        [(HOSTNAME, 3), (ZONE, 5)]
            .into_iter()
            .map(|(key, max_skew)| Constraint {
                max_skew,
                key: key.to_owned(),
                selector: Some(selector.clone()),
                min_domains: None,
                honor_affinity: true,
                honor_taints: false,
            })
            .collect()
    }
}

/// Upstream's `DefaultSelector`: the selectors of the Services selecting the pod, merged,
/// and of its controller when that is a ReplicationController, ReplicaSet or
/// StatefulSet; `None` when that selects nothing.
fn default_selector(listers: &Listers, pod: &Pod) -> Option<LabelSelector> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let labels = pod.metadata.labels.as_ref();
    let mut match_labels = std::collections::BTreeMap::new();
    for svc in listers.services.in_namespace(ns) {
        let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        if sel.is_empty() {
            continue;
        }
        if sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            match_labels.extend(sel.clone());
        }
    }
    let mut match_expressions = Vec::new();
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(o) = owner {
        let group = o.api_version.split_once('/').map_or("", |(g, _)| g);
        match (group, o.kind.as_str()) {
            ("", "ReplicationController") => {
                if let Some(rc) = listers.replication_controllers.get(ns, &o.name) {
                    if let Some(sel) = rc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                        match_labels.extend(sel.clone());
                    }
                }
            }
            ("apps", "ReplicaSet" | "StatefulSet") => {
                let sel = if o.kind == "ReplicaSet" {
                    listers
                        .replica_sets
                        .get(ns, &o.name)
                        .map(|rs| rs.spec.selector.clone())
                } else {
                    listers
                        .stateful_sets
                        .get(ns, &o.name)
                        .map(|ss| ss.spec.selector.clone())
                };
                if let Some(sel) = sel {
                    for (k, v) in sel.match_labels.into_iter().flatten() {
                        match_expressions.push(LabelSelectorRequirement {
                            key: k,
                            operator: "In".into(),
                            values: Some(vec![v]),
                        });
                    }
                    match_expressions.extend(sel.match_expressions.into_iter().flatten());
                }
            }
            _ => {}
        }
    }
    if match_labels.is_empty() && match_expressions.is_empty() {
        return None;
    }
    Some(LabelSelector {
        match_labels: Some(match_labels),
        match_expressions: Some(match_expressions),
    })
}

/// One constraint, with its selector completed by `matchLabelKeys`.
struct Constraint {
    max_skew: i64,
    key: String,
    selector: Option<LabelSelector>,
    min_domains: Option<i32>,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &Pod, when: &str) -> Vec<Constraint> {
    let labels = pod.metadata.labels.as_ref();
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c: &&TopologySpreadConstraint| c.when_unsatisfiable == when)
        .map(|c| {
            let mut selector = c.label_selector.clone();
            if let (Some(sel), Some(keys)) = (selector.as_mut(), c.match_label_keys.as_ref()) {
                for key in keys {
                    if let Some(value) = labels.and_then(|l| l.get(key)) {
                        sel.match_expressions.get_or_insert_with(Vec::new).push(
                            LabelSelectorRequirement {
                                key: key.clone(),
                                operator: "In".into(),
                                values: Some(vec![value.clone()]),
                            },
                        );
                    }
                }
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains,
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether the node takes part in counting for these constraints.
fn eligible(pod: &PodInfo, node: &NodeInfo, cs: &[Constraint]) -> bool {
    if cs.iter().any(|c| label(node, &c.key).is_none()) {
        return false;
    }
    if cs.iter().any(|c| c.honor_affinity) && !required_matches(pod, &node.node) {
        return false;
    }
    if cs.iter().any(|c| c.honor_taints) {
        let tolerations = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let taints = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        if taints.iter().any(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
        }) {
            return false;
        }
    }
    true
}

/// Pods on the node in the pod's namespace, not terminating, that the selector matches.
fn count_matching(pod: &PodInfo, node: &NodeInfo, selector: Option<&LabelSelector>) -> i64 {
    let ns = pod.pod.metadata.namespace.as_deref();
    node.pods
        .iter()
        .filter(|p| {
            p.pod.metadata.namespace.as_deref() == ns
                && p.pod.metadata.deletion_timestamp.is_none()
                && selector_matches(selector, p.pod.metadata.labels.as_ref())
        })
        .count() as i64
}

/// Per `DoNotSchedule` constraint: matching pods per domain value.
struct PreFilterState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    fn min_match(&self, i: usize) -> i64 {
        let counts = &self.counts[i];
        if let Some(min_domains) = self.constraints[i].min_domains {
            if counts.len() < min_domains.max(0) as usize {
                return 0;
            }
        }
        counts.values().copied().min().unwrap_or(0)
    }
}

/// Per `ScheduleAnyway` constraint: domain counts, weights, and nodes left out.
struct PreScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    ignored: HashSet<String>,
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUpdate,
            ClusterEvent::NodeDelete,
            ClusterEvent::UnscheduledPodUpdate,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status {
        let mut cs = constraints(&pod.pod, "DoNotSchedule");
        if cs.is_empty() {
            cs = self.default_constraints(&pod.pod, "DoNotSchedule");
        }
        if cs.is_empty() {
            return Status::skip();
        }
        let mut counts = vec![HashMap::new(); cs.len()];
        for node in nodes.iter().filter(|n| eligible(pod, n, &cs)) {
            for (i, c) in cs.iter().enumerate() {
                let value = label(node, &c.key).unwrap_or_default().to_owned();
                *counts[i].entry(value).or_default() +=
                    count_matching(pod, node, c.selector.as_ref());
            }
        }
        state.write(PreFilterState {
            constraints: cs,
            counts,
        });
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::success();
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = label(node, &c.key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(selector_matches(
                c.selector.as_ref(),
                pod.pod.metadata.labels.as_ref(),
            ));
            let matching = s.counts[i].get(value).copied().unwrap_or(0);
            if matching + self_match - s.min_match(i) > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, feasible: &[&NodeInfo]) -> Status {
        let mut cs = constraints(&pod.pod, "ScheduleAnyway");
        if cs.is_empty() {
            cs = self.default_constraints(&pod.pod, "ScheduleAnyway");
        }
        if cs.is_empty() {
            return Status::skip();
        }
        let mut ignored = HashSet::new();
        let mut domains: Vec<HashSet<String>> = vec![HashSet::new(); cs.len()];
        for node in feasible {
            if cs.iter().any(|c| label(node, &c.key).is_none()) {
                ignored.insert(node.name().to_owned());
                continue;
            }
            for (i, c) in cs.iter().enumerate() {
                domains[i].insert(label(node, &c.key).unwrap_or_default().to_owned());
            }
        }
        let considered = feasible.len() - ignored.len();
        let weights = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.key == HOSTNAME {
                    considered
                } else {
                    domains[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let all = state
            .read::<AllNodes>()
            .map(|a| a.0.clone())
            .unwrap_or_else(|| {
                // (Without the cycle's snapshot: only the feasible nodes are known.)
                let copies = feasible.iter().map(|n| Arc::new((*n).clone())).collect();
                Arc::new(Snapshot::new(copies))
            });
        let mut counts = vec![HashMap::new(); cs.len()];
        for node in all.iter().filter(|n| eligible(pod, n, &cs)) {
            for (i, c) in cs.iter().enumerate() {
                if c.key == HOSTNAME {
                    continue;
                }
                let value = label(node, &c.key).unwrap_or_default();
                if domains[i].contains(value) {
                    *counts[i].entry(value.to_owned()).or_default() +=
                        count_matching(pod, node, c.selector.as_ref());
                }
            }
        }
        state.write(PreScoreState {
            constraints: cs,
            counts,
            weights,
            ignored,
        });
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>() else {
            return Ok(0);
        };
        if s.ignored.contains(node.name()) {
            return Ok(0);
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let count = if c.key == HOSTNAME {
                count_matching(pod, node, c.selector.as_ref())
            } else {
                let value = label(node, &c.key).unwrap_or_default();
                s.counts[i].get(value).copied().unwrap_or(0)
            };
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        Ok(score.round() as i64)
    }

    fn normalize_score(&self, state: &CycleState, _: &PodInfo, scores: &mut [NodeScore]) {
        let Some(s) = state.read::<PreScoreState>() else {
            return;
        };
        let counted = scores.iter().filter(|x| !s.ignored.contains(x.name));
        let min = counted.clone().map(|x| x.score).min().unwrap_or(0);
        let max = counted.map(|x| x.score).max().unwrap_or(0);
        for x in scores.iter_mut() {
            x.score = if s.ignored.contains(x.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - x.score) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plugins::helper::test_util::scored;

    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::node;

    fn pod(name: &str, spec: serde_json::Value) -> PodInfo {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c"}]);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}},
            "spec": spec}))
        .unwrap();
        PodInfo::new(Arc::new(p))
    }

    fn zone_node(name: &str, zone: Option<&str>, web_pods: usize) -> Arc<NodeInfo> {
        let labels = match zone {
            Some(z) => json!({"zone": z, "kubernetes.io/hostname": name}),
            None => json!({"kubernetes.io/hostname": name}),
        };
        let mut n = node(name, labels, json!({}), json!({"cpu": "4", "pods": "110"}));
        for i in 0..web_pods {
            n.add_pod(pod(&format!("{name}-{i}"), json!({})));
        }
        Arc::new(n)
    }

    #[test]
    fn system_defaults_spread_pods_their_owners_select() {
        // Zone-labelled nodes (the default zone key) with 2, 0 and 1 web pods.
        let zoned = |name: &str, zone: &str, pods: usize| {
            let mut n = node(
                name,
                json!({"topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name}),
                json!({}),
                json!({"cpu": "4", "pods": "110"}),
            );
            for i in 0..pods {
                n.add_pod(pod(&format!("{name}-{i}"), json!({})));
            }
            Arc::new(n)
        };
        let nodes = vec![
            zoned("a1", "a", 2),
            zoned("b1", "b", 0),
            zoned("c1", "c", 1),
        ];
        let score = |listers: Listers, p: &PodInfo| {
            let pl = PodTopologySpread::new(Arc::new(listers));
            let mut st = CycleState::default();
            st.write(AllNodes::of(nodes.clone()));
            scored(&pl, &mut st, p, &nodes).map(|(_, normalized)| normalized)
        };
        let with_service = || {
            let l = Listers::default();
            l.services.upsert(
                serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"selector": {"app": "web"}}}))
                .unwrap(),
            );
            l
        };
        // Selected by a Service: the emptier domains score higher.
        let got = score(with_service(), &pod("new", json!({}))).expect("default constraints apply");
        assert!(got[1] > got[2] && got[2] > got[0], "{got:?}");
        // Nothing selects the pod, or it has constraints of its own: no defaults.
        assert_eq!(score(Listers::default(), &pod("new", json!({}))), None);
        let own = pod("new", spread(1, "zone", "DoNotSchedule"));
        assert_eq!(score(with_service(), &own), None);
        // A ReplicaSet controller's selector counts too.
        let l = Listers::default();
        l.replica_sets.upsert(
            serde_json::from_value(json!({"metadata": {"name": "rs", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}}}))
            .unwrap(),
        );
        let mut owned = (*pod("new", json!({})).pod).clone();
        owned.metadata.owner_references = Some(vec![serde_json::from_value(json!(
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}))
        .unwrap()]);
        assert!(score(l, &PodInfo::new(Arc::new(owned))).is_some());
    }

    fn spread(max_skew: i32, key: &str, when: &str) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": key,
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    #[test]
    fn do_not_schedule_keeps_skew_within_max() {
        // Zone a holds 2 matching pods, zone b 0: with maxSkew 1 only zone b fits.
        let nodes = vec![
            zone_node("a1", Some("a"), 2),
            zone_node("b1", Some("b"), 0),
            zone_node("none", None, 0),
        ];
        let p = pod("new", spread(1, "zone", "DoNotSchedule"));
        let pl = PodTopologySpread::new(Arc::default());
        let mut st = CycleState::default();
        assert!(pl.pre_filter(&mut st, &p, &nodes).is_success());
        let got: Vec<Status> = nodes.iter().map(|n| pl.filter(&st, &p, n)).collect();
        assert_eq!(got[0].message(), ERR_REASON_CONSTRAINTS_NOT_MATCH);
        assert_eq!(got[0].code(), Code::Unschedulable);
        assert!(got[1].is_success());
        assert_eq!(got[2].message(), ERR_REASON_NODE_LABEL_NOT_MATCH);
        assert_eq!(got[2].code(), Code::UnschedulableAndUnresolvable);
        // maxSkew 3 admits zone a too.
        let p = pod("new", spread(3, "zone", "DoNotSchedule"));
        let mut st = CycleState::default();
        pl.pre_filter(&mut st, &p, &nodes);
        assert!(pl.filter(&st, &p, &nodes[0]).is_success());
    }

    #[test]
    fn min_domains_counts_missing_domains_as_empty() {
        let nodes = vec![zone_node("a1", Some("a"), 1), zone_node("a2", Some("a"), 0)];
        let mut spec = spread(1, "zone", "DoNotSchedule");
        spec["topologySpreadConstraints"][0]["minDomains"] = json!(2);
        let p = pod("new", spec);
        let pl = PodTopologySpread::new(Arc::default());
        let mut st = CycleState::default();
        pl.pre_filter(&mut st, &p, &nodes);
        // One domain of two required: the global minimum is 0, so 1 + 1 - 0 > 1.
        assert!(!pl.filter(&st, &p, &nodes[1]).is_success());
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let nodes = vec![
            zone_node("a1", Some("a"), 3),
            zone_node("b1", Some("b"), 1),
            zone_node("c1", Some("c"), 0),
        ];
        let p = pod("new", spread(1, "zone", "ScheduleAnyway"));
        let pl = PodTopologySpread::new(Arc::default());
        let mut st = CycleState::default();
        st.write(AllNodes::of(nodes.clone()));
        let (raw, normalized) = scored(&pl, &mut st, &p, &nodes).unwrap();
        // weight ln(3 + 2) ≈ 1.609: raw 5, 2, 0 → normalized 100 * (5 + 0 - s) / 5.
        assert_eq!(raw, [5, 2, 0]);
        assert_eq!(normalized, [0, 60, 100]);
    }
}
