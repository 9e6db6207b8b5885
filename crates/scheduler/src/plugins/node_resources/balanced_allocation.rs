//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! similar proportions after placing the pod.

use super::{requested_and_allocatable, DEFAULT_SCORED_RESOURCES};
use crate::framework::{
    ClusterEvent, CycleState, NodeInfo, Plugin, PodInfo, ScorePlugin, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// The Score plugin.
#[derive(Default)]
pub struct BalancedAllocation;

impl BalancedAllocation {
    pub fn new() -> Self {
        BalancedAllocation
    }
}

/// `(1 - std) * 100` over each resource's requested fraction of allocatable (at most 1).
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut buf = [0.0; DEFAULT_SCORED_RESOURCES.len()];
    let mut len = 0;
    let mut allocatable_all = [0; DEFAULT_SCORED_RESOURCES.len()];
    let mut requested_all = [0; DEFAULT_SCORED_RESOURCES.len()];
    for (i, (resource, _)) in DEFAULT_SCORED_RESOURCES.iter().enumerate() {
        let (requested, allocatable) = requested_and_allocatable(resource, pod, node, true);
        allocatable_all[i] = allocatable;
        requested_all[i] = requested;
        if allocatable == 0 {
            continue;
        }
        buf[len] = (requested as f64 / allocatable as f64).min(1.0);
        len += 1;
    }
    let fractions = &buf[..len];
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
        }
    };
    let score = ((1.0 - std) * MAX_NODE_SCORE as f64) as i64;
    tracing::trace!(
        pod = %pod.key(),
        node = %node.name(),
        resourceAllocationScorer = NAME,
        allocatableResource = ?allocatable_all,
        requestedResource = ?requested_all,
        fractions = ?fractions,
        resourceScore = score,
        "Listed internal info for allocatable resources, requested resources and score"
    );
    score
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[]
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(score(pod, node))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod};

    #[test]
    fn balanced_allocation_scores_as_upstream() {
        let n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "10000"}),
        );
        // cpu 3000/4000 = 0.75, memory 5000/10000 = 0.5 → std 0.125 → 87.
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "5000"}}}]}),
        );
        assert_eq!(score(&p, &n), 87);
        // Equal fractions are perfectly balanced.
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "5000"}}}]}),
        );
        assert_eq!(score(&p, &n), 100);
    }
}
