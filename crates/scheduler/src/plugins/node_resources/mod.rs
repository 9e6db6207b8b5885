//! The NodeResources family: Fit (Filter, and scoring by the LeastAllocated,
//! MostAllocated or RequestedToCapacityRatio strategy) and BalancedAllocation.

pub mod balanced_allocation;
pub mod fit;
pub mod least_allocated;
pub mod most_allocated;
pub mod requested_to_capacity_ratio;

use crate::framework::{NodeInfo, PodInfo};

/// Requested (node plus pod) and allocatable amounts of one scored resource; cpu and
/// memory come from the node's [`Hot`](crate::framework::node_info::Hot) block.
pub(crate) fn requested_and_allocatable(
    resource: &str,
    pod: &PodInfo,
    node: &NodeInfo,
    use_requested: bool,
) -> (i64, i64) {
    let hot = node.hot();
    let pod_req = if use_requested {
        &pod.requests
    } else {
        &pod.non_zero_requests
    };
    let (node_cpu, node_memory) = if use_requested {
        (hot.requested_milli_cpu, hot.requested_memory)
    } else {
        (hot.non_zero_milli_cpu, hot.non_zero_memory)
    };
    match resource {
        "cpu" => (node_cpu + pod_req.milli_cpu, hot.allocatable_milli_cpu),
        "memory" => (node_memory + pod_req.memory, hot.allocatable_memory),
        other => {
            let node_req = if use_requested {
                node.requested()
            } else {
                node.non_zero_requested()
            };
            let alloc = node.allocatable();
            if other == "ephemeral-storage" {
                return (
                    node_req.ephemeral_storage + pod_req.ephemeral_storage,
                    alloc.ephemeral_storage,
                );
            }
            (
                node_req.scalar.get(other).copied().unwrap_or(0)
                    + pod_req.scalar.get(other).copied().unwrap_or(0),
                alloc.scalar.get(other).copied().unwrap_or(0),
            )
        }
    }
}

/// A scored resource and its weight (upstream's `ResourceSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    pub name: String,
    pub weight: i64,
}

/// The default scored resources as [`ResourceSpec`]s.
pub fn default_resources() -> Vec<ResourceSpec> {
    DEFAULT_SCORED_RESOURCES
        .iter()
        .map(|(name, weight)| ResourceSpec {
            name: (*name).into(),
            weight: *weight,
        })
        .collect()
}

/// The resources scored by default, with their weights (upstream's cpu:1, memory:1).
pub const DEFAULT_SCORED_RESOURCES: &[(&str, i64)] = &[("cpu", 1), ("memory", 1)];

/// The weighted mean over `resources` of `share(requested, allocatable)` (requests with
/// scoring defaults); resources the node has none of are left out, as upstream's
/// resource allocation scorers do. At trace level (`-v 10`) it logs what upstream's
/// scorer logs: each resource's allocatable and requested amounts and the score.
pub(crate) fn weighted_mean(
    scorer: &'static str,
    resources: &[ResourceSpec],
    pod: &PodInfo,
    node: &NodeInfo,
    share: fn(i64, i64) -> i64,
) -> i64 {
    let mut total = 0;
    let mut weights = 0;
    for r in resources {
        let (requested, allocatable) = requested_and_allocatable(&r.name, pod, node, false);
        if allocatable == 0 {
            continue;
        }
        total += share(requested, allocatable) * r.weight;
        weights += r.weight;
    }
    let score = if weights == 0 { 0 } else { total / weights };
    if tracing::enabled!(tracing::Level::TRACE) {
        let amounts: Vec<(i64, i64)> = resources
            .iter()
            .map(|r| requested_and_allocatable(&r.name, pod, node, false))
            .collect();
        let allocatable: Vec<i64> = amounts.iter().map(|a| a.1).collect();
        let requested: Vec<i64> = amounts.iter().map(|a| a.0).collect();
        tracing::trace!(
            pod = %pod.key(),
            node = %node.name(),
            resourceAllocationScorer = scorer,
            allocatableResource = ?allocatable,
            requestedResource = ?requested,
            resourceScore = score,
            "Listed internal info for allocatable resources, requested resources and score"
        );
    }
    score
}
