//! LeastAllocated: NodeResourcesFit's default scoring strategy — the more of a node's
//! allocatable remains free after placing the pod, the higher its score.

use super::ResourceSpec;
use crate::framework::{NodeInfo, PodInfo, MAX_NODE_SCORE};

/// `(allocatable - requested) * 100 / allocatable`, 0 when over-committed or empty.
fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

/// The weighted mean of each configured resource's free share (requests with scoring
/// defaults); resources the node has none of are left out, as upstream.
pub fn score_resources(resources: &[ResourceSpec], pod: &PodInfo, node: &NodeInfo) -> i64 {
    super::weighted_mean(
        "LeastAllocated",
        resources,
        pod,
        node,
        least_requested_score,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod, pod_named};
    use crate::plugins::node_resources::default_resources;

    fn requests(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
    }

    #[test]
    fn least_allocated_scores_as_upstream() {
        // Upstream: node 4000m/10000, pod requests 3000m/5000 → cpu 25, memory 50 → 37.
        let n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "10000"}),
        );
        assert_eq!(
            score_resources(&default_resources(), &pod(requests("3", "5000")), &n),
            37
        );
        // Node 6000m/10000 with an existing 3000m/0 pod (memory defaults to 200Mi,
        // over capacity → 0), incoming 3000m/5000: cpu 0, memory 0.
        let mut n2 = node(
            "n2",
            json!({}),
            json!({}),
            json!({"cpu": "6", "memory": "10000"}),
        );
        n2.add_pod(pod_named(
            "e",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}),
        ));
        assert_eq!(
            score_resources(&default_resources(), &pod(requests("3", "5000")), &n2),
            0
        );
    }

    #[test]
    fn the_seeds_overcommitted_node_scores_zero_for_cpu() {
        // The seed's node: 4 cores / 7,153,864,704 bytes allocatable with 6.25 cores
        // already requested. cpu is over-committed (0); memory: 2 GiB + 256 MiB of
        // 7,153,864,704 bytes requested → 66% free. (0 + 66) / 2 = 33.
        let mut n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "7153864704"}),
        );
        n.add_pod(pod_named("e", requests("6250m", "2Gi")));
        assert_eq!(
            score_resources(&default_resources(), &pod(requests("100m", "256Mi")), &n),
            33
        );
    }
}
