//! The NodeResources family: Fit (Filter, and LeastAllocated scoring) and
//! BalancedAllocation.

pub mod balanced_allocation;
pub mod fit;
pub mod least_allocated;

use crate::framework::{NodeInfo, PodInfo};

/// Requested (node plus pod) and allocatable amounts of one scored resource.
pub(crate) fn requested_and_allocatable(
    resource: &str,
    pod: &PodInfo,
    node: &NodeInfo,
    use_requested: bool,
) -> (i64, i64) {
    let (node_req, pod_req) = if use_requested {
        (&node.requested, &pod.requests)
    } else {
        (&node.non_zero_requested, &pod.non_zero_requests)
    };
    match resource {
        "cpu" => (
            node_req.milli_cpu + pod_req.milli_cpu,
            node.allocatable.milli_cpu,
        ),
        "memory" => (node_req.memory + pod_req.memory, node.allocatable.memory),
        "ephemeral-storage" => (
            node_req.ephemeral_storage + pod_req.ephemeral_storage,
            node.allocatable.ephemeral_storage,
        ),
        other => (
            node_req.scalar.get(other).copied().unwrap_or(0)
                + pod_req.scalar.get(other).copied().unwrap_or(0),
            node.allocatable.scalar.get(other).copied().unwrap_or(0),
        ),
    }
}

/// The resources scored by default, with their weights (upstream's cpu:1, memory:1).
pub const DEFAULT_SCORED_RESOURCES: &[(&str, i64)] = &[("cpu", 1), ("memory", 1)];
