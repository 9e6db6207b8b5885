//! The extension points: one small trait each, as upstream's `framework` interfaces,
//! and the typed per-cycle state plugins share between them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;

use super::node_info::{NodeInfo, PodInfo};
use super::runtime::Framework;
use super::snapshot::Snapshot;
use super::status::Status;

/// The highest score a Score plugin gives after normalization.
pub const MAX_NODE_SCORE: i64 = 100;

/// A change in the cluster that may make a rejected pod schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate,
    NodeDelete,
    AssignedPodAdd,
    AssignedPodUpdate,
    AssignedPodDelete,
    /// The rejected pod itself changed.
    UnscheduledPodUpdate,
    /// A PersistentVolumeClaim was added or changed.
    PvcChange,
    /// A StorageClass was added or changed.
    StorageClassChange,
    /// A PersistentVolume was added or changed.
    PvChange,
}

/// Every cluster event (for plugins that any change may satisfy).
pub const ALL_EVENTS: &[ClusterEvent] = &[
    ClusterEvent::NodeAdd,
    ClusterEvent::NodeUpdate,
    ClusterEvent::NodeDelete,
    ClusterEvent::AssignedPodAdd,
    ClusterEvent::AssignedPodUpdate,
    ClusterEvent::AssignedPodDelete,
    ClusterEvent::UnscheduledPodUpdate,
    ClusterEvent::PvcChange,
    ClusterEvent::StorageClassChange,
    ClusterEvent::PvChange,
];

/// Data plugins write in one extension point and read in a later one of the same
/// scheduling cycle, keyed by its Rust type (no string keys, no runtime casts by name).
/// A handful of entries, read once per node per plugin: a linear scan of a vector beats
/// hashing the key every time.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
    /// Plugins whose PreFilter returned Skip: their Filter does not run.
    pub skip_filter: Vec<&'static str>,
    /// Plugins whose PreScore returned Skip: their Score does not run.
    pub skip_score: Vec<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, value: T) {
        let key = TypeId::of::<T>();
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: Any + Send + Sync>(&self) -> Option<&T> {
        let key = TypeId::of::<T>();
        self.data.iter().find(|(k, _)| *k == key)?.1.downcast_ref()
    }

    /// Takes a value out (the binding cycle drops the snapshot this way, so the cache
    /// can patch it in place instead of copying it).
    pub fn take<T: Any + Send + Sync>(&mut self) -> Option<T> {
        let key = TypeId::of::<T>();
        let i = self.data.iter().position(|(k, _)| *k == key)?;
        self.data.swap_remove(i).1.downcast().ok().map(|b| *b)
    }
}

/// The cycle's whole snapshot (written before PreFilter), for plugins that count pods
/// anywhere in the cluster (PreScore itself sees only the feasible nodes) or that skip
/// work by its aggregates.
pub struct AllNodes(pub Arc<Snapshot>);

impl AllNodes {
    /// A snapshot of `nodes` (for tests and callers without a cache).
    pub fn of(nodes: Vec<Arc<NodeInfo>>) -> AllNodes {
        AllNodes(Arc::new(Snapshot::new(nodes)))
    }
}

/// Pods nominated to nodes by preemption and not yet bound, by node name.
#[derive(Default)]
pub struct NominatedPods(pub HashMap<String, Vec<PodInfo>>);

/// A node's score from one plugin. The name is borrowed from the node's info: a cycle
/// scores hundreds of nodes, and a shared (counted) name cost two atomic operations on a
/// cold cache line per node and plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore<'a> {
    pub name: &'a str,
    pub score: i64,
}

/// A plugin: its name, the extension points it implements, and the cluster events that
/// can make a pod it rejected schedulable again.
pub trait Plugin: Send + Sync {
    /// Upstream's plugin name (`NodeResourcesFit`).
    fn name(&self) -> &'static str;

    /// Events after which a pod this plugin rejected is worth retrying.
    fn events_to_register(&self) -> &'static [ClusterEvent] {
        ALL_EVENTS
    }

    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }
}

/// Decides whether a pod may enter the active queue at all.
pub trait PreEnqueuePlugin {
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// Orders the active queue.
pub trait QueueSortPlugin {
    /// Whether `a` is scheduled before `b`.
    fn less(&self, a: &PodInfo, a_queued_at: u64, b: &PodInfo, b_queued_at: u64) -> bool;
}

/// Runs once per cycle before filtering; may reject the pod for every node or Skip.
pub trait PreFilterPlugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Status;
}

/// Decides whether the pod fits one node.
pub trait FilterPlugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// What a PostFilter plugin sees: the cycle, the nodes, and why each one was rejected.
pub struct PostFilterInput<'a> {
    pub framework: &'a Framework,
    pub state: &'a CycleState,
    pub pod: &'a PodInfo,
    pub nodes: &'a [Arc<NodeInfo>],
    /// Every node's rejection, in `nodes` order.
    pub statuses: &'a [(String, Status)],
}

/// What a successful PostFilter (preemption) decided: the node the pod is nominated
/// for, and the pods to evict there to make room.
#[derive(Debug, Clone)]
pub struct Nomination {
    pub node: String,
    pub victims: Vec<Arc<Pod>>,
}

/// Runs when no node fits (preemption); Success (with a nomination) means it found room.
pub trait PostFilterPlugin {
    fn post_filter(&self, input: &PostFilterInput<'_>) -> (Status, Option<Nomination>);
}

/// Runs once per cycle before scoring, over the feasible nodes.
pub trait PreScorePlugin {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, nodes: &[&NodeInfo]) -> Status;
}

/// Scores one feasible node; `normalize_score` then rescales every node's score.
pub trait ScorePlugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;

    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [NodeScore]) {}
}

/// Claims (and on failure releases) what the pod will use on its node.
pub trait ReservePlugin {
    fn reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status;
    fn unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str);
}

/// Approves, rejects or holds (Wait, up to the duration) a pod before binding.
pub trait PermitPlugin {
    fn permit(&self, state: &CycleState, pod: &PodInfo, node: &str) -> (Status, Duration);
}

/// Prepares the binding (volumes); runs in the binding cycle.
#[async_trait]
pub trait PreBindPlugin: Sync {
    async fn pre_bind(&self, pod: &Pod, node: &str) -> Status;
}

/// Binds the pod to its node; Skip hands over to the next Bind plugin.
#[async_trait]
pub trait BindPlugin: Sync {
    async fn bind(&self, pod: &Pod, node: &str) -> Status;
}

/// Informational, after a successful bind.
pub trait PostBindPlugin {
    fn post_bind(&self, pod: &Pod, node: &str);
}
