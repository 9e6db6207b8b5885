//! InterPodAffinity: required pod affinity and anti-affinity — the pod's own and the
//! existing pods' anti-affinity toward it — decide which nodes fit (per topology domain:
//! nodes sharing the term's `topologyKey` label value); preferred terms (both ways) and
//! existing pods' required affinity score the domains.
//!
//! Terms select pods in the pod's own namespace (no `namespaces`, no
//! `namespaceSelector`), else in the listed `namespaces` plus those whose labels the
//! `namespaceSelector` matches (an empty selector: every namespace).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::framework::{
    AllNodes, ClusterEvent, CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo,
    PreFilterPlugin, PreScorePlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::listers::Listers;

pub const NAME: &str = "InterPodAffinity";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// The weight existing pods' required affinity terms count with when scoring
/// (upstream's default `hardPodAffinityWeight`).
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// The Filter and Score plugin; `hard_pod_affinity_weight` is its args'
/// `hardPodAffinityWeight`.
pub struct InterPodAffinity {
    listers: Arc<Listers>,
    hard_pod_affinity_weight: i64,
}

impl InterPodAffinity {
    pub fn new(listers: Arc<Listers>) -> Self {
        Self::with_args(listers, HARD_POD_AFFINITY_WEIGHT)
    }

    pub fn with_args(listers: Arc<Listers>, hard_pod_affinity_weight: i64) -> Self {
        InterPodAffinity {
            listers,
            hard_pod_affinity_weight,
        }
    }

    /// Whether `term` (declared by a pod in `owner_ns`) selects `pod`.
    fn term_matches(&self, term: &PodAffinityTerm, owner_ns: &str, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let listed = term.namespaces.as_deref().unwrap_or_default();
        let ns_ok = match &term.namespace_selector {
            None if listed.is_empty() => ns == owner_ns,
            None => listed.iter().any(|n| n == ns),
            Some(sel) => {
                listed.iter().any(|n| n == ns)
                    || selector_matches(
                        Some(sel),
                        self.listers
                            .namespaces
                            .get("", ns)
                            .as_deref()
                            .and_then(|n| n.metadata.labels.as_ref()),
                    )
                    || is_empty_selector(sel)
            }
        };
        ns_ok && selector_matches(term.label_selector.as_ref(), pod.metadata.labels.as_ref())
    }
}

fn is_empty_selector(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
}

/// Whether a label selector matches labels (nil selects nothing, empty everything).
pub fn selector_matches(
    sel: Option<&LabelSelector>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(sel) = sel else {
        return false;
    };
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    sel.match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v.as_str()))
        && sel.match_expressions.iter().flatten().all(|r| {
            let values = r.values.as_deref().unwrap_or_default();
            let value = get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Preferred terms with their sign: affinity +weight, anti-affinity -weight.
fn preferred(pod: &Pod) -> Vec<(&PodAffinityTerm, i64)> {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return Vec::new();
    };
    let pos = affinity
        .pod_affinity
        .as_ref()
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
        .iter()
        .map(|w| (&w.pod_affinity_term, i64::from(w.weight)));
    let neg = affinity
        .pod_anti_affinity
        .as_ref()
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
        .iter()
        .map(|w| (&w.pod_affinity_term, -i64::from(w.weight)));
    pos.chain(neg).collect()
}

/// Counts per topology domain: topology key → label value → count. Nested so that a
/// lookup borrows the key and value (a filter looks up hundreds of nodes per cycle; a
/// `(String, String)` key made two copies per lookup).
#[derive(Default, Debug)]
struct DomainCounts(HashMap<String, HashMap<String, i64>>);

impl DomainCounts {
    fn add(&mut self, key: &str, value: &str, by: i64) {
        let values = match self.0.get_mut(key) {
            Some(values) => values,
            None => self.0.entry(key.to_owned()).or_default(),
        };
        match values.get_mut(value) {
            Some(n) => *n += by,
            None => {
                values.insert(value.to_owned(), by);
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(HashMap::is_empty)
    }
}

fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Counts per topology domain, computed once per cycle at PreFilter.
#[derive(Default)]
struct PreFilterState {
    /// Domains holding pods that match all of the pod's required affinity terms.
    affinity: DomainCounts,
    /// Domains holding pods matched by one of the pod's required anti-affinity terms.
    anti_affinity: DomainCounts,
    /// Domains of existing pods whose required anti-affinity selects this pod.
    existing_anti_affinity: DomainCounts,
}

/// Domain scores, computed at PreScore.
struct PreScoreState(DomainCounts);

impl Plugin for InterPodAffinity {
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

fn bump(map: &mut DomainCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(value) = label(node, key) {
        map.add(key, value, by);
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status {
        let me = &*pod.pod;
        let my_ns = namespace(me);
        let affinity = required_affinity(me);
        let anti = required_anti_affinity(me);
        let own_terms = !affinity.is_empty() || !anti.is_empty();
        let cluster_anti = match state.read::<AllNodes>() {
            Some(all) => all.0.have_pods_with_required_anti_affinity(),
            None => nodes.iter().any(|n| n.pods_with_required_anti_affinity > 0),
        };
        if !own_terms && !cluster_anti {
            return Status::skip();
        }
        let mut s = PreFilterState::default();
        for node in nodes {
            if !own_terms && node.pods_with_required_anti_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                let other = &*existing.pod;
                if !affinity.is_empty()
                    && affinity.iter().all(|t| self.term_matches(t, my_ns, other))
                {
                    for t in affinity {
                        bump(&mut s.affinity, node, &t.topology_key, 1);
                    }
                }
                for t in anti {
                    if self.term_matches(t, my_ns, other) {
                        bump(&mut s.anti_affinity, node, &t.topology_key, 1);
                    }
                }
                if !existing.has_required_anti_affinity {
                    continue;
                }
                for t in required_anti_affinity(other) {
                    if self.term_matches(t, namespace(other), me) {
                        bump(&mut s.existing_anti_affinity, node, &t.topology_key, 1);
                    }
                }
            }
        }
        if affinity.is_empty() && anti.is_empty() && s.existing_anti_affinity.is_empty() {
            return Status::skip();
        }
        state.write(s);
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>() else {
            return Status::success();
        };
        let me = &*pod.pod;
        let affinity = required_affinity(me);
        if !affinity.is_empty() {
            let mut pods_exist = true;
            for t in affinity {
                match label(node, &t.topology_key) {
                    None => return Status::unresolvable(ERR_REASON_AFFINITY),
                    Some(v) => {
                        if s.affinity.get(&t.topology_key, v) <= 0 {
                            pods_exist = false;
                        }
                    }
                }
            }
            // The first pod of a group with affinity to itself may go anywhere.
            let first_of_group = s.affinity.is_empty()
                && affinity
                    .iter()
                    .all(|t| self.term_matches(t, namespace(me), me));
            if !pods_exist && !first_of_group {
                return Status::unresolvable(ERR_REASON_AFFINITY);
            }
        }
        for t in required_anti_affinity(me) {
            if let Some(v) = label(node, &t.topology_key) {
                if s.anti_affinity.get(&t.topology_key, v) > 0 {
                    return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
                }
            }
        }
        let labels = node.node.metadata.labels.iter().flatten();
        for (k, v) in labels {
            if s.existing_anti_affinity.get(k, v) > 0 {
                return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo]) -> Status {
        // Scores come from every pod in the cluster, not only those on feasible nodes.
        let Some(all) = state.read::<AllNodes>().map(|a| a.0.clone()) else {
            return Status::skip();
        };
        let me = &*pod.pod;
        let mine = preferred(me);
        if mine.is_empty() && !all.have_pods_with_affinity() {
            return Status::skip();
        }
        let mut scores = DomainCounts::default();
        let mut any = false;
        for node in all.iter() {
            if mine.is_empty() && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                let other = &*existing.pod;
                for (t, w) in &mine {
                    if self.term_matches(t, namespace(me), other) {
                        bump(&mut scores, node, &t.topology_key, *w);
                        any = true;
                    }
                }
                if !existing.has_scoring_terms {
                    continue;
                }
                for t in required_affinity(other) {
                    if self.hard_pod_affinity_weight > 0
                        && self.term_matches(t, namespace(other), me)
                    {
                        bump(
                            &mut scores,
                            node,
                            &t.topology_key,
                            self.hard_pod_affinity_weight,
                        );
                        any = true;
                    }
                }
                for (t, w) in preferred(other) {
                    if self.term_matches(t, namespace(other), me) {
                        bump(&mut scores, node, &t.topology_key, w);
                        any = true;
                    }
                }
            }
        }
        if !any {
            return Status::skip();
        }
        state.write(PreScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>() else {
            return Ok(0);
        };
        Ok(node
            .node
            .metadata
            .labels
            .iter()
            .flatten()
            .map(|(k, v)| s.0.get(k, v))
            .sum())
    }

    fn normalize_score(&self, _: &CycleState, _: &PodInfo, scores: &mut [NodeScore]) {
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
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

    fn pod(name: &str, labels: serde_json::Value, affinity: serde_json::Value) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": {"affinity": affinity, "containers": [{"name": "c"}]}}))
        .unwrap();
        PodInfo::new(Arc::new(p))
    }

    fn zone_node(name: &str, zone: &str, pods: Vec<PodInfo>) -> Arc<NodeInfo> {
        let mut n = node(
            name,
            json!({"zone": zone, "kubernetes.io/hostname": name}),
            json!({}),
            json!({"cpu": "4", "pods": "110"}),
        );
        for p in pods {
            n.add_pod(p);
        }
        Arc::new(n)
    }

    fn required(kind: &str, app: &str, key: &str) -> serde_json::Value {
        json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}})
    }

    fn filter(p: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Vec<Status> {
        let pl = InterPodAffinity::new(Arc::default());
        let mut st = CycleState::default();
        let pre = pl.pre_filter(&mut st, p, nodes);
        if pre.is_skip() {
            return nodes.iter().map(|_| Status::success()).collect();
        }
        nodes.iter().map(|n| pl.filter(&st, p, n)).collect()
    }

    #[test]
    fn required_affinity_follows_matching_pods_by_zone() {
        let db = pod("db", json!({"app": "db"}), json!(null));
        let nodes = vec![
            zone_node("a1", "a", vec![db]),
            zone_node("a2", "a", vec![]),
            zone_node("b1", "b", vec![]),
        ];
        let web = pod(
            "web",
            json!({"app": "web"}),
            required("podAffinity", "db", "zone"),
        );
        let got: Vec<bool> = filter(&web, &nodes)
            .iter()
            .map(Status::is_success)
            .collect();
        assert_eq!(got, [true, true, false]);
        let s = &filter(&web, &nodes)[2];
        assert_eq!(
            (s.code(), s.message().as_str()),
            (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY)
        );
        // Nothing matches yet, but the pod matches its own term: the first of a group.
        let first = pod(
            "first",
            json!({"app": "cache"}),
            required("podAffinity", "cache", "zone"),
        );
        assert!(filter(&first, &nodes).iter().all(Status::is_success));
    }

    #[test]
    fn namespace_selectors_pick_namespaces_by_label() {
        let l = Listers::default();
        for (ns, env) in [("prod", "prod"), ("dev", "dev")] {
            l.namespaces.upsert(
                serde_json::from_value(json!({"metadata": {"name": ns, "labels": {"env": env}}}))
                    .unwrap(),
            );
        }
        let pl = InterPodAffinity::new(Arc::new(l));
        let mut db = (*pod("db", json!({"app": "db"}), json!(null)).pod).clone();
        db.metadata.namespace = Some("prod".into());
        let nodes = vec![
            zone_node("a1", "a", vec![PodInfo::new(Arc::new(db))]),
            zone_node("b1", "b", vec![]),
        ];
        // (namespaceSelector, namespaces, fits per node)
        let cases = [
            (
                json!({"matchLabels": {"env": "prod"}}),
                json!(null),
                [true, false],
            ),
            (json!({}), json!(null), [true, false]),
            (
                json!({"matchLabels": {"env": "dev"}}),
                json!(["prod"]),
                [true, false],
            ),
            (
                json!({"matchLabels": {"env": "dev"}}),
                json!(null),
                [false, false],
            ),
            (json!(null), json!(null), [false, false]),
        ];
        for (selector, namespaces, want) in cases {
            let web = pod(
                "web",
                json!({"app": "web"}),
                json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone",
                     "namespaceSelector": selector, "namespaces": namespaces}]}}),
            );
            let mut st = CycleState::default();
            let got: Vec<bool> = if pl.pre_filter(&mut st, &web, &nodes).is_skip() {
                vec![true; nodes.len()]
            } else {
                nodes
                    .iter()
                    .map(|n| pl.filter(&st, &web, n).is_success())
                    .collect()
            };
            assert_eq!(got, want, "{selector} {namespaces}");
        }
    }

    #[test]
    fn required_anti_affinity_both_ways() {
        let one = pod(
            "one",
            json!({"app": "web"}),
            required("podAntiAffinity", "web", "kubernetes.io/hostname"),
        );
        let nodes = vec![
            zone_node("a1", "a", vec![one]),
            zone_node("a2", "a", vec![]),
        ];
        // The incoming pod's own anti-affinity.
        let two = pod(
            "two",
            json!({"app": "web"}),
            required("podAntiAffinity", "web", "kubernetes.io/hostname"),
        );
        let s = filter(&two, &nodes);
        assert_eq!(s[0].message(), ERR_REASON_ANTI_AFFINITY);
        assert_eq!(s[0].code(), Code::Unschedulable);
        assert!(s[1].is_success());
        // An existing pod's anti-affinity keeps matching pods away.
        let plain = pod("plain", json!({"app": "web"}), json!(null));
        let s = filter(&plain, &nodes);
        assert_eq!(s[0].message(), ERR_REASON_EXISTING_ANTI_AFFINITY);
        assert!(s[1].is_success());
        // Zone-wide anti-affinity blocks the whole zone.
        let zonal = pod(
            "zonal",
            json!({}),
            required("podAntiAffinity", "web", "zone"),
        );
        assert!(filter(&zonal, &nodes).iter().all(|s| !s.is_success()));
    }

    #[test]
    fn preferred_terms_score_domains() {
        let db = pod("db", json!({"app": "db"}), json!(null));
        let nodes = vec![
            zone_node("a1", "a", vec![db]),
            zone_node("b1", "b", vec![]),
            zone_node("a2", "a", vec![]),
        ];
        let p = pod(
            "web",
            json!({}),
            json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}),
        );
        let pl = InterPodAffinity::new(Arc::default());
        let mut st = CycleState::default();
        st.write(AllNodes::of(nodes.clone()));
        let (_, normalized) = scored(&pl, &mut st, &p, &nodes).unwrap();
        assert_eq!(normalized, [100, 0, 100]);
    }
}
