//! The ownership graph (upstream's GraphBuilder `uidToNode`): every object the collector
//! watches is a node keyed by uid, linked to its owners and dependents through
//! `ownerReferences`. Owners named by a reference but not (yet) observed are *virtual*
//! nodes that must be verified against the API. Applying a watch event returns the work
//! the event makes necessary (pure; tested here).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer a foreground deletion leaves on the owner until its blocking
/// dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer an orphaning deletion leaves on the owner until its dependents no
/// longer reference it.
pub const ORPHAN: &str = "orphan";

/// Identifies an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    /// The namespace of a namespaced object (for a virtual owner: its dependent's
    /// namespace, corrected once the owner's scope is known).
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

/// One object as the collector sees it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: ObjectId,
    pub owners: Vec<OwnerReference>,
    /// uids of the objects that name this one as an owner.
    pub dependents: BTreeSet<String>,
    /// deletionTimestamp is set.
    pub deleting: bool,
    pub finalizers: Vec<String>,
    /// Only known from a dependent's ownerReference; not observed yet.
    pub virtual_: bool,
}

impl Node {
    /// Being deleted in the foreground: waiting for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    /// Being deleted with orphaning: its dependents must drop their references to it.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }
}

/// What the collector's worker must do after an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Check the object (by uid): delete it if all its owners are gone or deleting in
    /// the foreground, drop references to absent owners, verify a virtual node, or
    /// release an owner's `foregroundDeletion` finalizer.
    AttemptToDelete(String),
    /// Remove the references of the object's dependents to it, then its `orphan`
    /// finalizer.
    Orphan(String),
}

/// The ownership graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// uids of observed nodes of `api_version`/`kind`.
    pub fn uids_of(&self, api_version: &str, kind: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| !n.virtual_ && n.id.api_version == api_version && n.id.kind == kind)
            .map(|n| n.id.uid.clone())
            .collect()
    }

    /// The dependents that block `uid`'s foreground deletion (their reference to it
    /// has `blockOwnerDeletion: true`).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(owner) = self.nodes.get(uid) else {
            return Vec::new();
        };
        owner
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// An object was added or changed.
    pub fn observe(
        &mut self,
        id: ObjectId,
        owners: Vec<OwnerReference>,
        deleting: bool,
        finalizers: Vec<String>,
    ) -> Vec<Work> {
        let uid = id.uid.clone();
        let mut work = Vec::new();
        let (old_owners, was_deleting_dependents, was_orphaning, had_node) =
            match self.nodes.get(&uid) {
                Some(n) if !n.virtual_ => (
                    n.owners.clone(),
                    n.deleting_dependents(),
                    n.orphaning(),
                    true,
                ),
                Some(_) => (Vec::new(), false, false, true),
                None => (Vec::new(), false, false, false),
            };
        let dependents = self
            .nodes
            .get(&uid)
            .map(|n| n.dependents.clone())
            .unwrap_or_default();
        let node = Node {
            id: id.clone(),
            owners: owners.clone(),
            dependents,
            deleting,
            finalizers,
            virtual_: false,
        };
        let deleting_dependents = node.deleting_dependents();
        let orphaning = node.orphaning();
        self.nodes.insert(uid.clone(), node);
        let _ = had_node;

        // Owners removed from the references: they lose this dependent.
        for old in &old_owners {
            if owners.iter().any(|o| o.uid == old.uid) {
                continue;
            }
            if let Some(owner) = self.nodes.get_mut(&old.uid) {
                owner.dependents.remove(&uid);
                if owner.deleting_dependents() {
                    work.push(Work::AttemptToDelete(old.uid.clone()));
                }
            }
        }
        // A reference no longer blocking its owner's foreground deletion.
        for old in &old_owners {
            let unblocked = old.block_owner_deletion == Some(true)
                && owners
                    .iter()
                    .any(|o| o.uid == old.uid && o.block_owner_deletion != Some(true));
            if unblocked
                && self
                    .nodes
                    .get(&old.uid)
                    .is_some_and(Node::deleting_dependents)
            {
                work.push(Work::AttemptToDelete(old.uid.clone()));
            }
        }
        // Owners named now: link them, as virtual nodes when not observed yet.
        let mut needs_check = false;
        for r in &owners {
            match self.nodes.get_mut(&r.uid) {
                Some(owner) => {
                    owner.dependents.insert(uid.clone());
                    if owner.virtual_ || owner.deleting {
                        needs_check = true;
                    }
                }
                None => {
                    let mut dependents = BTreeSet::new();
                    dependents.insert(uid.clone());
                    self.nodes.insert(
                        r.uid.clone(),
                        Node {
                            id: ObjectId {
                                api_version: r.api_version.clone(),
                                kind: r.kind.clone(),
                                namespace: id.namespace.clone(),
                                name: r.name.clone(),
                                uid: r.uid.clone(),
                            },
                            owners: Vec::new(),
                            dependents,
                            deleting: false,
                            finalizers: Vec::new(),
                            virtual_: true,
                        },
                    );
                    work.push(Work::AttemptToDelete(r.uid.clone()));
                    needs_check = true;
                }
            }
        }
        if needs_check {
            work.push(Work::AttemptToDelete(uid.clone()));
        }
        if orphaning && !was_orphaning {
            work.push(Work::Orphan(uid.clone()));
        }
        if deleting_dependents {
            if !was_deleting_dependents {
                // Start deleting the dependents.
                if let Some(n) = self.nodes.get(&uid) {
                    for d in &n.dependents {
                        work.push(Work::AttemptToDelete(d.clone()));
                    }
                }
            }
            work.push(Work::AttemptToDelete(uid.clone()));
        }
        dedup(work)
    }

    /// An object was deleted (or a virtual node was found not to exist).
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        // Its dependents may now be dangling.
        for d in &node.dependents {
            work.push(Work::AttemptToDelete(d.clone()));
        }
        for r in &node.owners {
            if let Some(owner) = self.nodes.get_mut(&r.uid) {
                owner.dependents.remove(uid);
                if owner.deleting_dependents() {
                    work.push(Work::AttemptToDelete(r.uid.clone()));
                }
                if owner.virtual_ && owner.dependents.is_empty() {
                    self.nodes.remove(&r.uid);
                }
            }
        }
        if !node.dependents.is_empty() {
            // Keep the dependents' links: they still name the uid; a virtual node
            // stands for the absent owner until they are gone or updated.
            let mut ghost = node;
            ghost.virtual_ = true;
            ghost.owners.clear();
            ghost.deleting = false;
            ghost.finalizers.clear();
            let uid = ghost.id.uid.clone();
            self.nodes.insert(uid, ghost);
        }
        dedup(work)
    }

    /// Forgets a virtual node confirmed absent, keeping it marked absent for its
    /// dependents: returns their checks.
    pub fn absent(&mut self, uid: &str) -> Vec<Work> {
        match self.nodes.get(uid) {
            Some(n) if n.virtual_ => dedup(
                n.dependents
                    .iter()
                    .map(|d| Work::AttemptToDelete(d.clone()))
                    .collect(),
            ),
            _ => Vec::new(),
        }
    }
}

fn dedup(mut work: Vec<Work>) -> Vec<Work> {
    let mut seen = std::collections::HashSet::new();
    work.retain(|w| seen.insert(w.clone()));
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str, uid: &str) -> ObjectId {
        ObjectId {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("owner-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: Some(true),
        }
    }

    fn ad(uid: &str) -> Work {
        Work::AttemptToDelete(uid.into())
    }

    #[test]
    fn unseen_owner_is_virtual_and_checked() {
        let mut g = Graph::default();
        let w = g.observe(
            id("Pod", "p", "d1"),
            vec![owner("o1", false)],
            false,
            vec![],
        );
        assert_eq!(w, vec![ad("o1"), ad("d1")]);
        assert!(g.get("o1").unwrap().virtual_);
        // The owner shows up: it becomes real and keeps its dependent.
        let w = g.observe(id("ConfigMap", "owner-o1", "o1"), vec![], false, vec![]);
        assert!(w.is_empty(), "{w:?}");
        let o = g.get("o1").unwrap();
        assert!(!o.virtual_);
        assert!(o.dependents.contains("d1"));
    }

    #[test]
    fn owner_removed_makes_dependents_checked() {
        let mut g = Graph::default();
        g.observe(id("ConfigMap", "owner-o1", "o1"), vec![], false, vec![]);
        let w = g.observe(
            id("Pod", "p", "d1"),
            vec![owner("o1", false)],
            false,
            vec![],
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(g.remove("o1"), vec![ad("d1")]);
        // The dependent still names it: a virtual stand-in remains.
        assert!(g.get("o1").unwrap().virtual_);
        // Once the dependent is gone, so is the stand-in.
        g.remove("d1");
        assert!(g.is_empty());
    }

    #[test]
    fn foreground_deletion_checks_dependents_then_owner() {
        let mut g = Graph::default();
        g.observe(id("ConfigMap", "owner-o1", "o1"), vec![], false, vec![]);
        g.observe(id("Pod", "a", "d1"), vec![owner("o1", true)], false, vec![]);
        g.observe(
            id("Pod", "b", "d2"),
            vec![owner("o1", false)],
            false,
            vec![],
        );
        let w = g.observe(
            id("ConfigMap", "owner-o1", "o1"),
            vec![],
            true,
            vec![FOREGROUND.into()],
        );
        assert_eq!(w, vec![ad("d1"), ad("d2"), ad("o1")]);
        let blocking: Vec<&str> = g
            .blocking_dependents("o1")
            .iter()
            .map(|n| n.id.uid.as_str())
            .collect();
        assert_eq!(blocking, vec!["d1"]);
        // The blocking dependent going re-checks the owner.
        assert_eq!(g.remove("d1"), vec![ad("o1")]);
        assert!(g.blocking_dependents("o1").is_empty());
    }

    #[test]
    fn orphan_finalizer_asks_for_orphaning_once() {
        let mut g = Graph::default();
        g.observe(id("ConfigMap", "owner-o1", "o1"), vec![], false, vec![]);
        g.observe(id("Pod", "a", "d1"), vec![owner("o1", true)], false, vec![]);
        let w = g.observe(
            id("ConfigMap", "owner-o1", "o1"),
            vec![],
            true,
            vec![ORPHAN.into()],
        );
        assert_eq!(w, vec![Work::Orphan("o1".into())]);
        let w = g.observe(
            id("ConfigMap", "owner-o1", "o1"),
            vec![],
            true,
            vec![ORPHAN.into()],
        );
        assert!(w.is_empty(), "{w:?}");
        // The dependent drops its reference: the owner loses it.
        g.observe(id("Pod", "a", "d1"), vec![], false, vec![]);
        assert!(g.get("o1").unwrap().dependents.is_empty());
    }

    #[test]
    fn a_new_dependent_of_a_deleting_owner_is_checked() {
        let mut g = Graph::default();
        g.observe(
            id("ConfigMap", "owner-o1", "o1"),
            vec![],
            true,
            vec![FOREGROUND.into()],
        );
        let w = g.observe(id("Pod", "a", "d1"), vec![owner("o1", true)], false, vec![]);
        assert_eq!(w, vec![ad("d1")]);
    }
}
