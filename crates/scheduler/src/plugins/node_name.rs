//! NodeName: a pod that names its node (`spec.nodeName`) fits only that node.

use crate::framework::{ClusterEvent, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, Status};

pub const NAME: &str = "NodeName";
/// The Filter reason.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The Filter plugin.
#[derive(Default)]
pub struct NodeName;

impl NodeName {
    pub fn new() -> Self {
        NodeName
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[ClusterEvent::NodeAdd, ClusterEvent::UnscheduledPodUpdate]
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(wanted) if !wanted.is_empty() && wanted != node.name() => {
                Status::unresolvable(ERR_REASON)
            }
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{plain_node, pod};

    #[test]
    fn only_the_named_node_fits() {
        let st = CycleState::default();
        let p = NodeName::new();
        assert!(p
            .filter(&st, &pod(json!({})), &plain_node("a"))
            .is_success());
        assert!(p
            .filter(&st, &pod(json!({"nodeName": "a"})), &plain_node("a"))
            .is_success());
        let s = p.filter(&st, &pod(json!({"nodeName": "b"})), &plain_node("a"));
        assert_eq!(s.message(), ERR_REASON);
    }
}
