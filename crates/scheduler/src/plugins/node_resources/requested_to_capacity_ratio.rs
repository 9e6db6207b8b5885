//! RequestedToCapacityRatio: a NodeResourcesFit scoring strategy — each resource's
//! utilization after placing the pod is mapped through a broken-line `shape`
//! (utilization 0–100 → score 0–10, scaled to 0–100).

use super::{requested_and_allocatable, ResourceSpec};
use crate::framework::{NodeInfo, PodInfo, MAX_NODE_SCORE};

/// A point of the shape: utilization in percent, score 0–10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapePoint {
    pub utilization: i64,
    pub score: i64,
}

/// Upstream's `MaxCustomPriorityScore`: shape scores are 0–10.
pub const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;

/// The broken line through the (scaled) points, flat before the first and after the last.
fn broken_linear(shape: &[ShapePoint], p: i64) -> i64 {
    for (i, point) in shape.iter().enumerate() {
        if p <= point.utilization {
            if i == 0 {
                return point.score;
            }
            let prev = shape[i - 1];
            return prev.score
                + (point.score - prev.score) * (p - prev.utilization)
                    / (point.utilization - prev.utilization);
        }
    }
    shape.last().map(|p| p.score).unwrap_or(0)
}

/// The weighted mean (rounded) of each resource's shaped utilization; a resource the node
/// lacks does not count, one over-committed scores as fully used.
pub fn score(
    resources: &[ResourceSpec],
    shape: &[ShapePoint],
    pod: &PodInfo,
    node: &NodeInfo,
) -> i64 {
    let scaled: Vec<ShapePoint> = shape
        .iter()
        .map(|p| ShapePoint {
            utilization: p.utilization,
            score: p.score * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
        })
        .collect();
    let mut total = 0;
    let mut weights = 0;
    for r in resources {
        let (requested, allocatable) = requested_and_allocatable(&r.name, pod, node, false);
        if allocatable == 0 {
            continue;
        }
        let utilization = if requested > allocatable {
            100
        } else {
            requested * 100 / allocatable
        };
        total += broken_linear(&scaled, utilization) * r.weight;
        weights += r.weight;
    }
    if weights == 0 {
        0
    } else {
        (total as f64 / weights as f64).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod};

    #[test]
    fn shapes_and_scores_as_upstream() {
        let pt = |utilization, score| ShapePoint { utilization, score };
        let shape = [pt(10, 1), pt(50, 5), pt(100, 10)];
        for (p, want) in [
            (0, 1),
            (10, 1),
            (30, 3),
            (50, 5),
            (75, 7),
            (100, 10),
            (120, 10),
        ] {
            assert_eq!(broken_linear(&shape, p), want, "utilization {p}");
        }
        // Packing shape (0→0, 100→10): node 4000m/10000, pod 3000m/5000 → 75 and 50 → 63.
        let n = node(
            "n",
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "10000"}),
        );
        let p = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "5000"}}}]}),
        );
        let res = [
            ResourceSpec {
                name: "cpu".into(),
                weight: 1,
            },
            ResourceSpec {
                name: "memory".into(),
                weight: 1,
            },
        ];
        assert_eq!(score(&res, &[pt(0, 0), pt(100, 10)], &p, &n), 63);
        // Spreading shape (0→10, 100→0): 25 and 50 → 38 (rounded).
        assert_eq!(score(&res, &[pt(0, 10), pt(100, 0)], &p, &n), 38);
    }
}
