//! ImageLocality: prefers nodes that already have the pod's container images, weighted
//! by image size and by how widely the image is spread over the cluster (an image on
//! every node says little about any one of them).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::framework::{
    AllNodes, ClusterEvent, CycleState, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Status, MAX_NODE_SCORE,
};

pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
/// Below this much image data on a node, the score is 0.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, at and above this much the score is the maximum.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The Score plugin.
#[derive(Default)]
pub struct ImageLocality;

impl ImageLocality {
    pub fn new() -> Self {
        ImageLocality
    }
}

pub use crate::framework::node_info::normalized_image_name;

fn pod_images(pod: &PodInfo) -> Vec<String> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.as_deref())
        .map(normalized_image_name)
        .collect()
}

/// The size of the image on the node, if present.
fn node_image_size(node: &NodeInfo, image: &str) -> Option<i64> {
    node.images()
        .iter()
        .find(|(n, _)| n == image)
        .map(|(_, s)| *s)
}

/// The pod's images, and (computed on first need) how many nodes have each.
struct Spread {
    images: Vec<String>,
    nodes_with: OnceLock<HashMap<String, i64>>,
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        &[]
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for ImageLocality {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[&NodeInfo]) -> Status {
        state.write(Spread {
            images: pod_images(pod),
            nodes_with: OnceLock::new(),
        });
        Status::success()
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(spread) = state.read::<Spread>() else {
            return Ok(0);
        };
        if !node.hot().has_images {
            // Nothing cached here: the minimum score.
            return Ok(0);
        }
        let all = state
            .read::<AllNodes>()
            .map(|a| a.0.nodes())
            .unwrap_or_default();
        let nodes_with = spread.nodes_with.get_or_init(|| {
            let mut counts = HashMap::new();
            for n in all.iter().filter(|n| n.hot().has_images) {
                for image in &spread.images {
                    if node_image_size(n, image).is_some() {
                        *counts.entry(image.clone()).or_default() += 1;
                    }
                }
            }
            counts
        });
        let total = all.len().max(1) as f64;
        let mut sum = 0i64;
        for image in &spread.images {
            if let Some(size) = node_image_size(node, image) {
                let with = nodes_with.get(image).copied().unwrap_or(0);
                sum += (size as f64 * (with as f64 / total)) as i64;
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * spread.images.len().max(1) as i64;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        Ok(MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::pod;

    fn node_with(name: &str, images: serde_json::Value) -> Arc<NodeInfo> {
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4"}, "images": images}}))
        .unwrap();
        Arc::new(NodeInfo::new(Arc::new(n)))
    }

    #[test]
    fn names_without_a_tag_mean_latest() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.27"), "nginx:1.27");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalized_image_name("gcr.io/a/b@sha256:abc"),
            "gcr.io/a/b@sha256:abc"
        );
    }

    #[test]
    fn scores_as_upstream() {
        // Upstream's case: a 250 MB image on one of two nodes, spread 1/2 → 125 MB;
        // (125 - 23) * 100 / (1000 - 23) = 10.
        let nodes = vec![
            node_with(
                "a",
                json!([{"names": ["gcr.io/250:latest"], "sizeBytes": 250 * MB}]),
            ),
            node_with(
                "b",
                json!([{"names": ["gcr.io/other:latest"], "sizeBytes": 10 * MB}]),
            ),
        ];
        let p = pod(json!({"containers": [{"name": "c", "image": "gcr.io/250"}]}));
        let pl = ImageLocality::new();
        let mut st = CycleState::default();
        st.write(AllNodes::of(nodes.clone()));
        pl.pre_score(
            &mut st,
            &p,
            &crate::plugins::helper::test_util::refs(&nodes),
        );
        assert_eq!(pl.score(&st, &p, &nodes[0]).unwrap(), 10);
        assert_eq!(pl.score(&st, &p, &nodes[1]).unwrap(), 0);
    }
}
