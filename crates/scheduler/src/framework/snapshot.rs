//! What one scheduling cycle sees of the cluster: every node's info in name order, plus
//! cluster-wide aggregates kept up to date as nodes change (upstream's
//! `HavePodsWithAffinityList`), so a plugin can skip a whole-cluster scan when nothing
//! in the cluster could matter to it.

use std::ops::Deref;
use std::sync::Arc;

use super::node_info::NodeInfo;

/// The nodes of one cycle and their aggregates. Shared as `Arc<Snapshot>`; the cache
/// patches it in place (copy-on-write) when one node changes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    nodes: Vec<Arc<NodeInfo>>,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
}

impl Snapshot {
    /// A snapshot of `nodes`, in the order given.
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        let mut s = Snapshot {
            nodes,
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        for n in &s.nodes {
            s.pods_with_affinity += n.pods_with_affinity;
            s.pods_with_required_anti_affinity += n.pods_with_required_anti_affinity;
        }
        s
    }

    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }

    /// The nodes at `positions` (a cycle's feasible nodes), as PreScore and Score see them.
    pub fn at(&self, positions: &[usize]) -> Vec<&NodeInfo> {
        positions.iter().map(|&i| &*self.nodes[i]).collect()
    }

    /// Whether any pod in the cluster has pod affinity or anti-affinity.
    pub fn have_pods_with_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    /// Whether any pod in the cluster has required pod anti-affinity.
    pub fn have_pods_with_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    /// Replaces the node at `i`, keeping the aggregates true; returns the node it held.
    pub fn replace(&mut self, i: usize, info: Arc<NodeInfo>) -> Arc<NodeInfo> {
        let old = &self.nodes[i];
        self.pods_with_affinity =
            self.pods_with_affinity - old.pods_with_affinity + info.pods_with_affinity;
        self.pods_with_required_anti_affinity = self.pods_with_required_anti_affinity
            - old.pods_with_required_anti_affinity
            + info.pods_with_required_anti_affinity;
        std::mem::replace(&mut self.nodes[i], info)
    }
}

impl Deref for Snapshot {
    type Target = [Arc<NodeInfo>];

    fn deref(&self) -> &[Arc<NodeInfo>] {
        &self.nodes
    }
}

impl From<Vec<Arc<NodeInfo>>> for Snapshot {
    fn from(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        Snapshot::new(nodes)
    }
}
