//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! similar proportions after placing the pod.

use super::{default_resources, requested_and_allocatable, ResourceSpec};
use crate::framework::{
    ClusterEvent, CycleState, NodeInfo, Plugin, PodInfo, ScorePlugin, Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// The Score plugin, over the resources of its args (`NodeResourcesBalancedAllocationArgs`).
pub struct BalancedAllocation {
    resources: Vec<ResourceSpec>,
}

impl Default for BalancedAllocation {
    fn default() -> Self {
        Self::new()
    }
}

impl BalancedAllocation {
    /// Scoring cpu and memory (upstream's default args).
    pub fn new() -> Self {
        Self::with_resources(default_resources())
    }

    pub fn with_resources(resources: Vec<ResourceSpec>) -> Self {
        BalancedAllocation { resources }
    }
}

/// `(1 - std) * 100` over cpu's and memory's requested fraction of allocatable.
pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    score_resources(&default_resources(), pod, node)
}

/// `(1 - std) * 100` over each resource's requested fraction of allocatable (at most 1);
/// resources the node has none of are left out.
pub fn score_resources(resources: &[ResourceSpec], pod: &PodInfo, node: &NodeInfo) -> i64 {
    // On the stack for the usual few resources: this runs per node per cycle.
    let mut buf = [0.0; 8];
    let mut heap = Vec::new();
    let mut len = 0;
    for r in resources {
        let (requested, allocatable) = requested_and_allocatable(&r.name, pod, node, true);
        if allocatable == 0 {
            continue;
        }
        let f = (requested as f64 / allocatable as f64).min(1.0);
        match buf.get_mut(len) {
            Some(slot) => *slot = f,
            None => {
                if heap.is_empty() {
                    heap.extend_from_slice(&buf);
                }
                heap.push(f);
            }
        }
        len += 1;
    }
    let fractions = if heap.is_empty() {
        &buf[..len]
    } else {
        &heap[..]
    };
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
        resourceAllocationScorer = "BalancedAllocation",
        fractions = ?fractions,
        resourceScore = score,
        "Scoring resources"
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
        Ok(score_resources(&self.resources, pod, node))
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
