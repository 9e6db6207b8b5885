//! TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not
//! tolerate them (Filter); untolerated PreferNoSchedule taints lower a node's score.

use k8s_openapi::api::core::v1::Toleration;

use super::helper::{normalize, tolerated};
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, NodeInfo, NodeScore, Plugin, PodInfo, PreScorePlugin,
    ScorePlugin, Status,
};

pub const NAME: &str = "TaintToleration";
/// The Filter reason (upstream no longer names the taint).
pub const ERR_REASON_NOT_MATCH: &str = "node(s) had untolerated taint(s)";

/// The Filter and Score plugin.
#[derive(Default)]
pub struct TaintToleration;

impl TaintToleration {
    pub fn new() -> Self {
        TaintToleration
    }
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// The pod's tolerations that can tolerate PreferNoSchedule (written at PreScore).
struct PreferNoScheduleTolerations(Vec<Toleration>);

impl Plugin for TaintToleration {
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

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.tainted() {
            return Status::success();
        }
        let taints = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        let tolerations = tolerations(pod);
        let untolerated = taints.iter().any(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
        });
        if untolerated {
            Status::unresolvable(ERR_REASON_NOT_MATCH)
        } else {
            Status::success()
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo]) -> Status {
        let prefer = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        state.write(PreferNoScheduleTolerations(prefer));
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        if !node.tainted() {
            return Ok(0);
        }
        let tolerations = state
            .read::<PreferNoScheduleTolerations>()
            .map(|t| t.0.as_slice())
            .unwrap_or_default();
        let taints = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        Ok(taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations, t))
            .count() as i64)
    }

    fn normalize_score(&self, _: &CycleState, _: &PodInfo, scores: &mut [NodeScore]) {
        normalize(true, scores);
    }
}

#[cfg(test)]
mod tests {
    use crate::plugins::helper::test_util::scored;

    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::{node, pod};

    fn tainted(name: &str, taints: serde_json::Value) -> Arc<NodeInfo> {
        Arc::new(node(name, json!({}), json!({"taints": taints}), json!({})))
    }

    #[test]
    fn filter_rejects_untolerated_no_schedule_and_no_execute() {
        let p = TaintToleration::new();
        let st = CycleState::default();
        let cases = [
            (json!([]), json!([]), true),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([]),
                false,
            ),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
                json!([]),
                false,
            ),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}]),
                json!([]),
                true,
            ),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
                true,
            ),
            (
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                json!([{"key": "dedicated", "operator": "Equal", "value": "cpu"}]),
                false,
            ),
        ];
        for (taints, tols, fits) in cases {
            let s = p.filter(
                &st,
                &pod(json!({"tolerations": tols})),
                &tainted("n", taints.clone()),
            );
            assert_eq!(s.is_success(), fits, "{taints} {tols}");
            if !fits {
                assert_eq!(s.code(), Code::UnschedulableAndUnresolvable);
                assert_eq!(s.message(), "node(s) had untolerated taint(s)");
            }
        }
    }

    #[test]
    fn score_prefers_nodes_with_fewer_untolerated_prefer_no_schedule_taints() {
        // Upstream's "the node with fewer intolerable PreferNoSchedule taints wins" case.
        let pl = TaintToleration::new();
        let pod = pod(
            json!({"tolerations": [{"key": "foo", "operator": "Equal", "value": "bar", "effect": "PreferNoSchedule"}]}),
        );
        let nodes = vec![
            tainted("a", json!([])),
            tainted(
                "b",
                json!([{"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"}]),
            ),
            tainted(
                "c",
                json!([
                {"key": "cpu-type", "value": "arm64", "effect": "PreferNoSchedule"},
                {"key": "disk-type", "value": "ssd", "effect": "PreferNoSchedule"}]),
            ),
            tainted(
                "d",
                json!([{"key": "foo", "value": "bar", "effect": "PreferNoSchedule"}]),
            ),
        ];
        let mut st = CycleState::default();
        let (_, normalized) = scored(&pl, &mut st, &pod, &nodes).unwrap();
        assert_eq!(normalized, [100, 50, 0, 100]);
    }
}
