//! The scheduler's cache: every node with the pods bound to it, plus *assumed* pods —
//! pods the scheduler has placed but whose binding the API has not yet confirmed — so the
//! next cycle already accounts for them.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::{NodeInfo, PodInfo, Snapshot};

struct PodState {
    node: String,
    assumed: bool,
}

struct NodeEntry {
    /// Shared with snapshots; written copy-on-write, so a snapshot costs one pointer
    /// per node and only changed nodes are ever copied — and only when a cycle still
    /// holds them ([`Cache::change_node`]).
    info: Arc<NodeInfo>,
    /// False for a placeholder holding pods of a node not (or no longer) known.
    present: bool,
}

/// Nodes and the pods on them.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeEntry>,
    pods: HashMap<String, PodState>,
    /// The present nodes in name order with each one's position: rebuilt when the node
    /// set changes, patched in place when one node changes (copied first only if a
    /// cycle still holds it).
    snap: Option<Indexed>,
}

/// The snapshot, and each node name's position in it.
type Indexed = (Arc<Snapshot>, HashMap<String, usize>);

/// What a snapshot slot holds while its node is being changed.
static VACANT: std::sync::LazyLock<Arc<NodeInfo>> =
    std::sync::LazyLock::new(|| Arc::new(NodeInfo::new(Arc::new(Node::default()))));

fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn placeholder(name: &str) -> NodeEntry {
    let node = Node {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    NodeEntry {
        info: Arc::new(NodeInfo::new(Arc::new(node))),
        present: false,
    }
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Changes a known node's info in place. The cache entry and the cached snapshot
    /// share it, so the snapshot's reference is let go for the change: otherwise each
    /// change (two or three per pod scheduled) copied the node's whole info, pods
    /// included, to a new place in memory. It is still copied when a scheduling cycle
    /// holds it, so the cycle's view does not change under it.
    fn change_node(&mut self, name: &str, change: impl FnOnce(&mut NodeInfo)) {
        let Some(entry) = self.nodes.get_mut(name) else {
            return;
        };
        let slot = self
            .snap
            .as_mut()
            .and_then(|(snapshot, index)| Some((snapshot, *index.get(name)?)));
        match slot {
            Some((snapshot, i)) => {
                // Copies the node list first if a cycle holds the snapshot.
                let snapshot = Arc::make_mut(snapshot);
                drop(snapshot.replace(i, VACANT.clone()));
                change(Arc::make_mut(&mut entry.info));
                snapshot.replace(i, entry.info.clone());
            }
            None => change(Arc::make_mut(&mut entry.info)),
        }
    }

    /// Adds or replaces a node, keeping the pods already on it.
    pub fn upsert_node(&mut self, node: Node) {
        let name = node_name(&node);
        let node = Arc::new(node);
        match self.nodes.get_mut(&name) {
            Some(entry) => {
                if !entry.present {
                    entry.present = true;
                    self.snap = None;
                }
                self.change_node(&name, |info| info.set_node(node));
            }
            None => {
                self.nodes.insert(
                    name,
                    NodeEntry {
                        info: Arc::new(NodeInfo::new(node)),
                        present: true,
                    },
                );
                self.snap = None;
            }
        }
    }

    /// Removes a node (its pods stay accounted until they are deleted).
    pub fn remove_node(&mut self, name: &str) {
        self.snap = None;
        if let Some(entry) = self.nodes.get_mut(name) {
            if entry.info.pods.is_empty() {
                self.nodes.remove(name);
            } else {
                entry.present = false;
            }
        }
    }

    /// Whether the cache knows the node (and it is present).
    pub fn has_node(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|e| e.present)
    }

    /// The names of the nodes the cache knows.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, e)| e.present)
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn attach(&mut self, pod: PodInfo, node: &str, assumed: bool) {
        let uid = pod.uid().to_owned();
        self.nodes
            .entry(node.to_owned())
            .or_insert_with(|| placeholder(node));
        self.change_node(node, |info| info.add_pod(pod));
        self.pods.insert(
            uid,
            PodState {
                node: node.to_owned(),
                assumed,
            },
        );
    }

    fn detach(&mut self, uid: &str) -> bool {
        let Some(state) = self.pods.remove(uid) else {
            return false;
        };
        self.change_node(&state.node, |info| {
            info.remove_pod(uid);
        });
        if self
            .nodes
            .get(&state.node)
            .is_some_and(|e| !e.present && e.info.pods.is_empty())
        {
            self.nodes.remove(&state.node);
        }
        true
    }

    /// A pod the API reports bound (`spec.nodeName` set): added, replaced, or — when it
    /// was assumed — confirmed.
    pub fn upsert_pod(&mut self, pod: Arc<Pod>) {
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return;
        };
        let info = PodInfo::new(pod);
        // Still on the same node (an assumed pod's binding confirmed, a status report):
        // one change of that node in place.
        if let Some(state) = self.pods.get_mut(info.uid()).filter(|s| s.node == node) {
            state.assumed = false;
            let uid = info.uid().to_owned();
            self.change_node(&node, |n| {
                n.remove_pod(&uid);
                n.add_pod(info);
            });
            return;
        }
        self.detach(info.uid());
        self.attach(info, &node, false);
    }

    /// Removes a pod (deleted, or finished and no longer using its node).
    pub fn remove_pod(&mut self, uid: &str) {
        self.detach(uid);
    }

    /// Places `pod` on `node` before the binding is confirmed. The cached pod object is
    /// the queued one, shared: it does not name the node (the cache records where it
    /// is), so assuming copies nothing — upstream deep-copies the pod to set
    /// `spec.nodeName`, which here was most of an assume's cost.
    pub fn assume_pod(&mut self, pod: &PodInfo, node: &str) {
        self.detach(pod.uid());
        self.attach(pod.clone(), node, true);
    }

    /// Drops an assumed pod whose binding failed.
    pub fn forget_pod(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|s| s.assumed) {
            self.detach(uid);
        }
    }

    /// Whether the pod is assumed (placed, binding not yet seen).
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// The cached copy of a pod.
    pub fn pod(&self, uid: &str) -> Option<Arc<Pod>> {
        let state = self.pods.get(uid)?;
        let entry = self.nodes.get(&state.node)?;
        entry
            .info
            .pods
            .iter()
            .find(|p| p.uid() == uid)
            .map(|p| p.pod.clone())
    }

    /// Whether the pod is in the cache at all.
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The known nodes with their pods, in name order: what one scheduling cycle sees.
    /// Later changes to the cache do not show through. Costs one pointer copy; drop it
    /// before changing the cache, or the next change copies the node list.
    pub fn snapshot(&mut self) -> Arc<Snapshot> {
        let nodes = &self.nodes;
        let (snapshot, _) = self.snap.get_or_insert_with(|| {
            let mut present: Vec<Arc<NodeInfo>> = nodes
                .values()
                .filter(|e| e.present)
                .map(|e| e.info.clone())
                .collect();
            present.sort_by(|a, b| a.name().cmp(b.name()));
            let index = present
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name().to_owned(), i))
                .collect();
            (Arc::new(Snapshot::new(present)), index)
        });
        snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}}))
        .unwrap()
    }

    fn pod(uid: &str, node: Option<&str>, cpu: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut c = Cache::new();
        c.upsert_node(node("a"));
        let p = PodInfo::new(pod("u1", None, "500m"));
        c.assume_pod(&p, "a");
        assert!(c.is_assumed("u1"));
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 500);
        // The API confirms the binding.
        c.upsert_pod(pod("u1", Some("a"), "500m"));
        assert!(!c.is_assumed("u1"));
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 500);
        c.forget_pod("u1");
        assert_eq!(
            c.snapshot()[0].requested().milli_cpu,
            500,
            "confirmed pods are not forgotten"
        );
        // A failed binding is forgotten.
        c.assume_pod(&PodInfo::new(pod("u2", None, "1")), "a");
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 1500);
        c.forget_pod("u2");
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 500);
        let before = c.snapshot();
        c.remove_pod("u1");
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 0);
        assert_eq!(
            before[0].requested().milli_cpu,
            500,
            "snapshots do not change"
        );
    }

    #[test]
    fn nodes_change_in_place_unless_a_cycle_holds_them() {
        let mut c = Cache::new();
        c.upsert_node(node("a"));
        c.upsert_node(node("b"));
        let at = |c: &mut Cache, i: usize| Arc::as_ptr(&c.snapshot()[i]) as usize;
        let (a, b) = (at(&mut c, 0), at(&mut c, 1));
        c.assume_pod(&PodInfo::new(pod("u1", None, "1")), "a");
        c.upsert_pod(pod("u1", Some("a"), "1"));
        c.upsert_node(node("a"));
        assert_eq!((at(&mut c, 0), at(&mut c, 1)), (a, b), "changed in place");
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 1000);
        // A cycle's snapshot keeps what it saw; the cache moves on with a copy.
        let held = c.snapshot();
        c.remove_pod("u1");
        assert_eq!(held[0].requested().milli_cpu, 1000);
        assert_eq!(Arc::as_ptr(&held[0]) as usize, a);
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 0);
        assert_ne!(at(&mut c, 0), a);
        assert_eq!(at(&mut c, 1), b, "unchanged nodes are shared, not copied");
        assert!(!c.snapshot().have_pods_with_affinity());
    }

    #[test]
    fn pods_of_unknown_nodes_wait_for_their_node() {
        let mut c = Cache::new();
        c.upsert_pod(pod("u1", Some("b"), "1"));
        assert!(c.snapshot().is_empty());
        c.upsert_node(node("b"));
        assert_eq!(c.snapshot()[0].requested().milli_cpu, 1000);
        c.remove_node("b");
        assert!(c.snapshot().is_empty());
        c.upsert_node(node("b"));
        assert_eq!(c.snapshot()[0].pods.len(), 1);
    }
}
