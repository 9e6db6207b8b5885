//! NodePorts: a pod's host ports must be free on the node (same protocol and port on
//! the same IP, or either side on 0.0.0.0, conflict).

use std::sync::Arc;

use crate::framework::node_info::HostPort;
use crate::framework::{
    ClusterEvent, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin, Status,
};

pub const NAME: &str = "NodePorts";
/// The Filter reason.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// The Filter plugin.
#[derive(Default)]
pub struct NodePorts;

impl NodePorts {
    pub fn new() -> Self {
        NodePorts
    }
}

fn conflicts(want: &HostPort, used: &HostPort) -> bool {
    let any = |ip: &str| ip == "0.0.0.0" || ip == "::";
    want.1 == used.1 && want.2 == used.2 && (want.0 == used.0 || any(&want.0) || any(&used.0))
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::UnscheduledPodUpdate,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodePorts {
    /// Skip (no Filter this cycle) when the pod asks for no host port, as upstream.
    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        if pod.host_ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let taken = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| conflicts(want, used)));
        if taken {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::helper::test_util::{plain_node, pod, pod_named};

    fn ports(ports: serde_json::Value) -> serde_json::Value {
        json!({"containers": [{"name": "c", "ports": ports}]})
    }

    #[test]
    fn pre_filter_skips_pods_without_host_ports() {
        let mut st = CycleState::default();
        let pl = NodePorts::new();
        assert!(pl
            .pre_filter(&mut st, &pod(ports(json!([{"containerPort": 80}]))), &[])
            .is_skip());
        assert!(pl
            .pre_filter(
                &mut st,
                &pod(ports(json!([{"containerPort": 80, "hostPort": 8080}]))),
                &[]
            )
            .is_success());
    }

    #[test]
    fn host_ports_conflict_as_upstream() {
        let pl = NodePorts::new();
        let st = CycleState::default();
        let cases = [
            // (used on node, wanted by pod, fits)
            (
                json!([]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                false,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080}]),
                json!([{"containerPort": 80, "hostPort": 8081}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}]),
                true,
            ),
            (
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]),
                json!([{"containerPort": 80, "hostPort": 8080}]),
                false,
            ),
            (
                json!([{"containerPort": 80}]),
                json!([{"containerPort": 80}]),
                true,
            ),
        ];
        for (used, wanted, fits) in cases {
            let mut node = plain_node("n");
            node.add_pod(pod_named("existing", ports(used.clone())));
            let s = pl.filter(&st, &pod(ports(wanted.clone())), &node);
            assert_eq!(s.is_success(), fits, "{used} {wanted}");
            if !fits {
                assert_eq!(s.code(), Code::Unschedulable);
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }
}
