//! NodeResourcesFit: the pod's requests (containers, init and sidecar containers,
//! overhead) must fit in what the node has left of its allocatable (Filter), except
//! extended resources its args ignore; scored with the args' strategy (LeastAllocated by
//! default, MostAllocated, RequestedToCapacityRatio).

use std::sync::Arc;

use super::requested_to_capacity_ratio::ShapePoint;
use super::{
    default_resources, least_allocated, most_allocated, requested_to_capacity_ratio, ResourceSpec,
};
use crate::framework::{
    ClusterEvent, Code, CycleState, FilterPlugin, NodeInfo, Plugin, PodInfo, PreFilterPlugin,
    ScorePlugin, Status,
};

pub const NAME: &str = "NodeResourcesFit";

/// How Fit scores nodes (upstream's `ScoringStrategy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoringStrategy {
    LeastAllocated(Vec<ResourceSpec>),
    MostAllocated(Vec<ResourceSpec>),
    RequestedToCapacityRatio(Vec<ResourceSpec>, Vec<ShapePoint>),
}

/// The Filter and Score plugin, configured by `NodeResourcesFitArgs`.
pub struct Fit {
    strategy: ScoringStrategy,
    /// Extended resources the Filter does not check (`ignoredResources`).
    ignored: Vec<String>,
    /// Groups (`example.com` of `example.com/gpu`) of extended resources not checked.
    ignored_groups: Vec<String>,
}

impl Default for Fit {
    fn default() -> Self {
        Self::new()
    }
}

impl Fit {
    /// Upstream's default args: LeastAllocated over cpu and memory, nothing ignored.
    pub fn new() -> Self {
        Self::with_args(
            ScoringStrategy::LeastAllocated(default_resources()),
            Vec::new(),
            Vec::new(),
        )
    }

    pub fn with_args(
        strategy: ScoringStrategy,
        ignored: Vec<String>,
        ignored_groups: Vec<String>,
    ) -> Self {
        Fit {
            strategy,
            ignored,
            ignored_groups,
        }
    }

    fn ignores(&self, resource: &str) -> bool {
        self.ignored.iter().any(|r| r == resource)
            || resource
                .split_once('/')
                .is_some_and(|(group, _)| self.ignored_groups.iter().any(|g| g == group))
    }
}

/// One resource the pod does not fit on a node for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsufficientResource {
    pub resource: String,
    pub reason: String,
    pub requested: i64,
    pub used: i64,
    pub capacity: i64,
    /// The request exceeds the node's whole allocatable: no eviction can help.
    pub unresolvable: bool,
}

/// Every resource the pod does not fit the node for, in upstream's order (pods, cpu,
/// memory, ephemeral-storage, then scalar resources).
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<InsufficientResource> {
    insufficient_resources_ignoring(pod, node, |_| false)
}

/// [`insufficient_resources`], not checking the extended resources `ignored` says.
pub fn insufficient_resources_ignoring(
    pod: &PodInfo,
    node: &NodeInfo,
    ignored: impl Fn(&str) -> bool,
) -> Vec<InsufficientResource> {
    let mut out = Vec::new();
    // The pod count, cpu and memory from the node's Hot block; the rest (rarely
    // requested) from the full amounts, only when the pod requests it.
    let hot = node.hot();
    let allowed = hot.allowed_pod_number;
    let pods = i64::from(hot.pods);
    if pods + 1 > allowed {
        out.push(InsufficientResource {
            resource: "pods".into(),
            reason: "Too many pods".into(),
            requested: 1,
            used: pods,
            capacity: allowed,
            unresolvable: false,
        });
    }
    let req = &pod.requests;
    if req.is_zero() {
        return out;
    }
    let mut check = |name: &str, want: i64, used: i64, capacity: i64| {
        if want > 0 && want > capacity - used {
            out.push(InsufficientResource {
                resource: name.into(),
                reason: format!("Insufficient {name}"),
                requested: want,
                used,
                capacity,
                unresolvable: want > capacity,
            });
        }
    };
    check(
        "cpu",
        req.milli_cpu,
        hot.requested_milli_cpu,
        hot.allocatable_milli_cpu,
    );
    check(
        "memory",
        req.memory,
        hot.requested_memory,
        hot.allocatable_memory,
    );
    if req.ephemeral_storage == 0 && req.scalar.is_empty() {
        return out;
    }
    let alloc = node.allocatable();
    let used = node.requested();
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        used.ephemeral_storage,
        alloc.ephemeral_storage,
    );
    for (name, want) in &req.scalar {
        if ignored(name) {
            continue;
        }
        check(
            name,
            *want,
            used.scalar.get(name).copied().unwrap_or(0),
            alloc.scalar.get(name).copied().unwrap_or(0),
        );
    }
    out
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::AssignedPodUpdate,
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
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for Fit {
    fn pre_filter(&self, _: &mut CycleState, _: &PodInfo, _: &[Arc<NodeInfo>]) -> Status {
        // The pod's requests are computed once in its PodInfo.
        Status::success()
    }
}

impl FilterPlugin for Fit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let insufficient = if self.ignored.is_empty() && self.ignored_groups.is_empty() {
            insufficient_resources(pod, node)
        } else {
            insufficient_resources_ignoring(pod, node, |r| self.ignores(r))
        };
        if insufficient.is_empty() {
            return Status::success();
        }
        let code = if insufficient.iter().any(|r| r.unresolvable) {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        };
        Status::new(code, insufficient.into_iter().map(|r| r.reason))
    }
}

impl ScorePlugin for Fit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(match &self.strategy {
            ScoringStrategy::LeastAllocated(r) => least_allocated::score_resources(r, pod, node),
            ScoringStrategy::MostAllocated(r) => most_allocated::score(r, pod, node),
            ScoringStrategy::RequestedToCapacityRatio(r, shape) => {
                requested_to_capacity_ratio::score(r, shape, pod, node)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod, pod_named};

    fn req(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
    }

    /// A 10-cpu, 20-byte, 32-pod node already running a 5-cpu/19-byte pod.
    fn busy_node() -> NodeInfo {
        let mut n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "10", "memory": "20", "pods": "32"}),
        );
        n.add_pod(pod_named("e", req("5", "19")));
        n
    }

    #[test]
    fn filter_reports_every_insufficient_resource() {
        let pl = Fit::new();
        let st = CycleState::default();
        let cases: Vec<(serde_json::Value, Code, Vec<&str>)> = vec![
            (req("1", "1"), Code::Success, vec![]),
            (req("6", "1"), Code::Unschedulable, vec!["Insufficient cpu"]),
            (
                req("1", "2"),
                Code::Unschedulable,
                vec!["Insufficient memory"],
            ),
            (
                req("6", "2"),
                Code::Unschedulable,
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            // More than the node's whole allocatable: preemption cannot help.
            (
                req("11", "1"),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient cpu"],
            ),
            // Init containers count at their maximum.
            (
                json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "6"}}}],
                       "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}),
                Code::Unschedulable,
                vec!["Insufficient cpu"],
            ),
            // Overhead counts too.
            (
                json!({"overhead": {"memory": "1"}, "containers": [{"name": "c", "resources": {"requests": {"memory": "1"}}}]}),
                Code::Unschedulable,
                vec!["Insufficient memory"],
            ),
            (
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient example.com/gpu"],
            ),
        ];
        for (spec, code, reasons) in cases {
            let s = pl.filter(&st, &pod(spec.clone()), &busy_node());
            assert_eq!(s.code(), code, "{spec}");
            assert_eq!(s.reasons(), reasons.as_slice(), "{spec}");
        }
    }

    #[test]
    fn filter_counts_pods() {
        let mut n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "10", "memory": "20", "pods": "1"}),
        );
        n.add_pod(pod_named("e", json!({})));
        let s = Fit::new().filter(&CycleState::default(), &pod(json!({})), &n);
        assert_eq!(s.reasons(), ["Too many pods"]);
        assert_eq!(s.code(), Code::Unschedulable);
    }
}
