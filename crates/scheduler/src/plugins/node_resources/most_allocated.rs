//! MostAllocated: a NodeResourcesFit scoring strategy — the more of a node's allocatable
//! is requested once the pod is placed, the higher its score (bin packing).

use super::ResourceSpec;
use crate::framework::{NodeInfo, PodInfo, MAX_NODE_SCORE};

/// `requested * 100 / allocatable`, capped at 100; 0 for a resource the node lacks.
fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

/// The weighted mean of each scored resource's requested share (non-zero defaults for
/// requests); resources the node has none of are left out.
pub fn score(resources: &[ResourceSpec], pod: &PodInfo, node: &NodeInfo) -> i64 {
    super::weighted_mean("MostAllocated", resources, pod, node, most_requested_score)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod};

    #[test]
    fn most_allocated_scores_as_upstream() {
        let spec = |name: &str, weight| ResourceSpec {
            name: name.into(),
            weight,
        };
        // Upstream's table: node 4000m/10000, pod 3000m/5000 → cpu 75, memory 50 → 62.
        let n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "10000"}),
        );
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "5000"}}}]}),
        );
        let resources = [spec("cpu", 1), spec("memory", 1)];
        assert_eq!(score(&resources, &p, &n), 62);
        // cpu weighted 3: (75*3 + 50) / 4 = 68.
        assert_eq!(score(&[spec("cpu", 3), spec("memory", 1)], &p, &n), 68);
        // A resource the node lacks does not count.
        assert_eq!(
            score(&[spec("cpu", 1), spec("example.com/gpu", 5)], &p, &n),
            75
        );
    }
}
