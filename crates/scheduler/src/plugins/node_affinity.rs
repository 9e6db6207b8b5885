//! NodeAffinity: `nodeSelector` and required node affinity decide which nodes fit
//! (Filter); preferred node affinity terms add their weights to a node's score.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeAffinity as Affinity};

use super::helper::{normalize, selector_matches, term_matches};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Status,
};

pub const NAME: &str = "NodeAffinity";
/// The Filter reason.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

/// The Filter reason for nodes outside the args' `addedAffinity`.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";

/// The Filter and Score plugin; `added` is its args' `addedAffinity`, applied to every
/// pod on top of the pod's own.
#[derive(Default)]
pub struct NodeAffinity {
    added: Option<Affinity>,
}

impl NodeAffinity {
    pub fn new() -> Self {
        NodeAffinity { added: None }
    }

    pub fn with_added_affinity(added: Option<Affinity>) -> Self {
        NodeAffinity { added }
    }

    fn added_preferred(&self) -> &[k8s_openapi::api::core::v1::PreferredSchedulingTerm] {
        self.added
            .as_ref()
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default()
    }
}

fn affinity(pod: &PodInfo) -> Option<&Affinity> {
    pod.pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()
}

/// Whether the node satisfies the pod's `nodeSelector` and required node affinity.
pub fn required_matches(pod: &PodInfo, node: &Node) -> bool {
    if let Some(selector) = pod.pod.spec.as_ref().and_then(|s| s.node_selector.as_ref()) {
        if !selector_matches(selector, node) {
            return false;
        }
    }
    match affinity(pod).and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    }) {
        Some(required) => required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
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

impl PreFilterPlugin for NodeAffinity {
    /// Skip (no Filter this cycle) when neither the pod (`nodeSelector`, required node
    /// affinity) nor the args' `addedAffinity` constrains nodes, as upstream.
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        let required = affinity(pod).is_some_and(|a| {
            a.required_during_scheduling_ignored_during_execution
                .is_some()
        });
        let selector = pod
            .pod
            .spec
            .as_ref()
            .is_some_and(|s| s.node_selector.is_some());
        let enforced = self.added.as_ref().is_some_and(|a| {
            a.required_during_scheduling_ignored_during_execution
                .is_some()
        });
        if required || selector || enforced {
            Status::success()
        } else {
            Status::skip()
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let enforced = self.added.as_ref().and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
        if let Some(required) = enforced {
            if !required
                .node_selector_terms
                .iter()
                .any(|t| term_matches(t, &node.node))
            {
                return Status::unresolvable(ERR_REASON_ENFORCED);
            }
        }
        if required_matches(pod, &node.node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo]) -> Status {
        let has_preferred = affinity(pod)
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|p| !p.is_empty());
        if has_preferred || !self.added_preferred().is_empty() {
            Status::success()
        } else {
            Status::skip()
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let preferred = affinity(pod)
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        Ok(preferred
            .iter()
            .chain(self.added_preferred())
            .filter(|p| p.weight != 0 && term_matches(&p.preference, &node.node))
            .map(|p| i64::from(p.weight))
            .sum())
    }

    fn normalize_score(&self, _: &CycleState, _: &PodInfo, scores: &mut [NodeScore]) {
        normalize(false, scores);
    }
}

#[cfg(test)]
mod tests {
    use crate::plugins::helper::test_util::scored;

    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod};

    fn labelled(name: &str, labels: serde_json::Value) -> Arc<NodeInfo> {
        Arc::new(node(name, labels, json!({}), json!({})))
    }

    fn required(exprs: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn pre_filter_skips_pods_nothing_constrains() {
        let mut st = CycleState::default();
        let free = pod(json!({"containers": [{"name": "c"}]}));
        assert!(NodeAffinity::new()
            .pre_filter(&mut st, &free, &[])
            .is_skip());
        // Preferred terms alone constrain nothing at Filter.
        let preferred = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}}),
        );
        assert!(NodeAffinity::new()
            .pre_filter(&mut st, &preferred, &[])
            .is_skip());
        for constrained in [
            pod(json!({"nodeSelector": {"disk": "ssd"}})),
            pod(required(json!([{"key": "a", "operator": "Exists"}]))),
        ] {
            assert!(NodeAffinity::new()
                .pre_filter(&mut st, &constrained, &[])
                .is_success());
        }
        let added: Affinity = serde_json::from_value(json!({
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}]}}))
        .unwrap();
        let pl = NodeAffinity::with_added_affinity(Some(added));
        assert!(pl.pre_filter(&mut st, &free, &[]).is_success());
    }

    #[test]
    fn added_affinity_is_enforced_and_scored() {
        let added: Affinity = serde_json::from_value(json!({
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["x", "y"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [
                    {"key": "pool", "operator": "In", "values": ["y"]}]}}],
        }))
        .unwrap();
        let pl = NodeAffinity::with_added_affinity(Some(added));
        let st = CycleState::default();
        let p = pod(json!({}));
        let x = labelled("x", json!({"pool": "x"}));
        let y = labelled("y", json!({"pool": "y"}));
        let z = labelled("z", json!({"pool": "z"}));
        assert!(pl.filter(&st, &p, &x).is_success());
        let s = pl.filter(&st, &p, &z);
        assert_eq!(
            s.code(),
            crate::framework::Code::UnschedulableAndUnresolvable
        );
        assert_eq!(s.reasons(), [ERR_REASON_ENFORCED]);
        let mut st2 = CycleState::default();
        assert!(pl.pre_score(&mut st2, &p, &[]).is_success());
        assert_eq!(pl.score(&st, &p, &x).unwrap(), 0);
        assert_eq!(pl.score(&st, &p, &y).unwrap(), 5);
    }

    #[test]
    fn filter_follows_node_selector_and_required_terms() {
        let pl = NodeAffinity::new();
        let st = CycleState::default();
        let zone_a = labelled("a", json!({"zone": "a", "gen": "5"}));
        let cases = [
            (json!({}), true),
            (json!({"nodeSelector": {"zone": "a"}}), true),
            (json!({"nodeSelector": {"zone": "b"}}), false),
            (
                required(json!([{"key": "zone", "operator": "In", "values": ["a", "c"]}])),
                true,
            ),
            (
                required(json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])),
                false,
            ),
            (
                required(json!([{"key": "zone", "operator": "Exists"}])),
                true,
            ),
            (
                required(json!([{"key": "gpu", "operator": "DoesNotExist"}])),
                true,
            ),
            (
                required(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])),
                true,
            ),
            (
                required(json!([{"key": "gen", "operator": "Lt", "values": ["4"]}])),
                false,
            ),
            (required(json!([])), false),
            (
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}}),
                true,
            ),
        ];
        for (spec, fits) in cases {
            let s = pl.filter(&st, &pod(spec.clone()), &zone_a);
            assert_eq!(s.is_success(), fits, "{spec}");
            if !fits {
                assert_eq!(s.message(), ERR_REASON_POD);
            }
        }
    }

    #[test]
    fn score_sums_matching_preferred_weights_then_normalizes() {
        let pl = NodeAffinity::new();
        let pod = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}]}},
            {"weight": 4, "preference": {"matchExpressions": [{"key": "key", "operator": "In", "values": ["value"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [
                {"key": "foo", "operator": "In", "values": ["bar"]},
                {"key": "key", "operator": "In", "values": ["value"]},
                {"key": "az", "operator": "In", "values": ["az1"]}]}}]}}}),
        );
        let nodes = vec![
            labelled("1", json!({"foo": "bar"})),
            labelled("2", json!({"foo": "bar", "key": "value", "az": "az1"})),
            labelled("3", json!({"foo": "bar", "key": "value"})),
        ];
        let mut st = CycleState::default();
        let (_, normalized) = scored(&pl, &mut st, &pod, &nodes).unwrap();
        // Upstream's "all machines matches the preferred scheduling requirements of pod
        // but with different priorities" case: 18, 100, 54.
        assert_eq!(normalized, [18, 100, 54]);
    }
}
