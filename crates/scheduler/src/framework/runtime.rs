//! A profile's plugins in order, with their score weights, and the loops that run each
//! extension point over them (upstream's `frameworkImpl`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::interface::{
    ClusterEvent, CycleState, FilterPlugin, NodeScore, Nomination, Plugin, PostFilterInput,
    MAX_NODE_SCORE,
};
use super::node_info::{NodeInfo, PodInfo};
use super::snapshot::Snapshot;
use super::status::{Code, Status};

/// The extension points a profile configures plugins at, in upstream's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionPoint {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
    PostBind,
}

impl ExtensionPoint {
    pub const ALL: [ExtensionPoint; 12] = [
        ExtensionPoint::PreEnqueue,
        ExtensionPoint::QueueSort,
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Permit,
        ExtensionPoint::PreBind,
        ExtensionPoint::Bind,
        ExtensionPoint::PostBind,
    ];

    /// The field of `plugins` in KubeSchedulerConfiguration (`preFilter`).
    pub fn field(self) -> &'static str {
        match self {
            ExtensionPoint::PreEnqueue => "preEnqueue",
            ExtensionPoint::QueueSort => "queueSort",
            ExtensionPoint::PreFilter => "preFilter",
            ExtensionPoint::Filter => "filter",
            ExtensionPoint::PostFilter => "postFilter",
            ExtensionPoint::PreScore => "preScore",
            ExtensionPoint::Score => "score",
            ExtensionPoint::Reserve => "reserve",
            ExtensionPoint::Permit => "permit",
            ExtensionPoint::PreBind => "preBind",
            ExtensionPoint::Bind => "bind",
            ExtensionPoint::PostBind => "postBind",
        }
    }

    /// Upstream's interface name, as its errors say (`FilterPlugin`).
    pub fn interface(self) -> &'static str {
        match self {
            ExtensionPoint::PreEnqueue => "PreEnqueuePlugin",
            ExtensionPoint::QueueSort => "QueueSortPlugin",
            ExtensionPoint::PreFilter => "PreFilterPlugin",
            ExtensionPoint::Filter => "FilterPlugin",
            ExtensionPoint::PostFilter => "PostFilterPlugin",
            ExtensionPoint::PreScore => "PreScorePlugin",
            ExtensionPoint::Score => "ScorePlugin",
            ExtensionPoint::Reserve => "ReservePlugin",
            ExtensionPoint::Permit => "PermitPlugin",
            ExtensionPoint::PreBind => "PreBindPlugin",
            ExtensionPoint::Bind => "BindPlugin",
            ExtensionPoint::PostBind => "PostBindPlugin",
        }
    }

    /// Whether `p` implements this extension point.
    pub fn implemented_by(self, p: &dyn Plugin) -> bool {
        match self {
            ExtensionPoint::PreEnqueue => p.as_pre_enqueue().is_some(),
            ExtensionPoint::QueueSort => p.as_queue_sort().is_some(),
            ExtensionPoint::PreFilter => p.as_pre_filter().is_some(),
            ExtensionPoint::Filter => p.as_filter().is_some(),
            ExtensionPoint::PostFilter => p.as_post_filter().is_some(),
            ExtensionPoint::PreScore => p.as_pre_score().is_some(),
            ExtensionPoint::Score => p.as_score().is_some(),
            ExtensionPoint::Reserve => p.as_reserve().is_some(),
            ExtensionPoint::Permit => p.as_permit().is_some(),
            ExtensionPoint::PreBind => p.as_pre_bind().is_some(),
            ExtensionPoint::Bind => p.as_bind().is_some(),
            ExtensionPoint::PostBind => p.as_post_bind().is_some(),
        }
    }
}

/// One scheduling profile: its `schedulerName`, the plugins at each extension point (in
/// order) with score weights, and how many nodes a cycle looks for.
pub struct Framework {
    scheduler_name: String,
    /// Every plugin of the profile, each once.
    plugins: Vec<Arc<dyn Plugin>>,
    /// The plugins run at each extension point, indexed like [`ExtensionPoint::ALL`].
    points: Vec<Vec<Arc<dyn Plugin>>>,
    weights: HashMap<&'static str, i64>,
    /// The profile's `percentageOfNodesToScore` (`None`: adaptive).
    percentage_of_nodes_to_score: Option<u32>,
}

/// The scheduler's profiles, by `schedulerName` (all share one QueueSort).
pub struct Profiles(Vec<Arc<Framework>>);

impl Profiles {
    /// At least one profile.
    pub fn new(profiles: Vec<Arc<Framework>>) -> Profiles {
        assert!(!profiles.is_empty(), "a scheduler has at least one profile");
        Profiles(profiles)
    }

    /// The first profile (whose QueueSort orders the queue).
    pub fn first(&self) -> &Arc<Framework> {
        &self.0[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Framework>> {
        self.0.iter()
    }

    /// The profile named by the pod's `spec.schedulerName` (`default-scheduler` when
    /// unset); `None` when no profile has that name: the pod is not ours.
    pub fn for_pod(&self, pod: &Pod) -> Option<&Arc<Framework>> {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or(crate::plugins::DEFAULT_SCHEDULER_NAME);
        self.0.iter().find(|f| f.scheduler_name() == name)
    }
}

/// A cycle's Filter plugins, from [`Framework::filters`].
pub struct Filters<'a>(Vec<(&'static str, &'a dyn FilterPlugin)>);

impl Filters<'_> {
    /// Filter: the first plugin that rejects the node decides.
    pub fn run(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for (name, pl) in &self.0 {
            let s = pl.filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(name);
            }
        }
        Status::success()
    }
}

/// Every feasible node's scores from every Score plugin that ran: raw, normalized and
/// weighted, and each node's total (what a decision is explained with). Stored by plugin,
/// a column of one score per node, so a cycle allocates a few vectors, not one per node.
///
/// The nodes are positions in the cycle's snapshot, which the table holds: a cycle
/// scores hundreds of nodes, and a counted reference to each was two atomic operations
/// per node. Drop the table before changing the cache.
#[derive(Clone, Default)]
pub struct ScoreTable {
    pub snapshot: Arc<Snapshot>,
    /// The nodes, in the order scored: positions in `snapshot`.
    pub feasible: Vec<usize>,
    /// The plugins that scored, in order, with their weights.
    pub plugins: Vec<(&'static str, i64)>,
    /// Scores before NormalizeScore, plugin by plugin (`plugin * nodes + node`).
    pub raw: Vec<i64>,
    /// Scores after NormalizeScore, before weights, laid out as `raw`.
    pub normalized: Vec<i64>,
    /// Each node's weighted sum.
    pub totals: Vec<i64>,
}

impl std::fmt::Debug for ScoreTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoreTable")
            .field(
                "nodes",
                &(0..self.len()).map(|i| self.name(i)).collect::<Vec<_>>(),
            )
            .field("plugins", &self.plugins)
            .field("raw", &self.raw)
            .field("normalized", &self.normalized)
            .field("totals", &self.totals)
            .finish()
    }
}

impl ScoreTable {
    /// How many nodes were scored.
    pub fn len(&self) -> usize {
        self.feasible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.feasible.is_empty()
    }

    /// The name of node `i`.
    pub fn name(&self, i: usize) -> &str {
        self.snapshot.nodes()[self.feasible[i]].name()
    }

    /// Node `i`'s weighted score from each plugin.
    pub fn weighted(&self, i: usize) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        let n = self.len();
        self.plugins
            .iter()
            .enumerate()
            .map(move |(p, (name, weight))| (*name, self.normalized[p * n + i] * weight))
    }

    /// The position of the node named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        (0..self.len()).position(|i| self.name(i) == name)
    }
}

impl Framework {
    /// A profile from plugins (in extension-point order) and score weights by plugin
    /// name; a Score plugin without a weight counts with weight 1.
    pub fn new(
        scheduler_name: impl Into<String>,
        plugins: Vec<Arc<dyn Plugin>>,
        weights: &[(&'static str, i64)],
    ) -> Framework {
        let points = ExtensionPoint::ALL
            .iter()
            .map(|e| {
                plugins
                    .iter()
                    .filter(|p| e.implemented_by(p.as_ref()))
                    .cloned()
                    .collect()
            })
            .collect();
        Framework {
            scheduler_name: scheduler_name.into(),
            plugins,
            points,
            weights: weights.iter().copied().collect(),
            percentage_of_nodes_to_score: None,
        }
    }

    /// A profile from the plugins at each extension point (what a configuration's
    /// profile resolves to) and score weights.
    pub fn from_points(
        scheduler_name: impl Into<String>,
        plugins: Vec<Arc<dyn Plugin>>,
        points: Vec<(ExtensionPoint, Vec<Arc<dyn Plugin>>)>,
        weights: HashMap<&'static str, i64>,
        percentage_of_nodes_to_score: Option<u32>,
    ) -> Framework {
        let mut by_point: Vec<Vec<Arc<dyn Plugin>>> = vec![Vec::new(); ExtensionPoint::ALL.len()];
        for (e, list) in points {
            if let Some(i) = ExtensionPoint::ALL.iter().position(|x| *x == e) {
                by_point[i] = list;
            }
        }
        Framework {
            scheduler_name: scheduler_name.into(),
            plugins,
            points: by_point,
            weights,
            percentage_of_nodes_to_score,
        }
    }

    /// The plugins run at `point`, in order.
    pub fn at(&self, point: ExtensionPoint) -> &[Arc<dyn Plugin>] {
        let i = ExtensionPoint::ALL
            .iter()
            .position(|x| *x == point)
            .unwrap_or(0);
        &self.points[i]
    }

    /// A plugin's score weight (1 when none was configured).
    pub fn weight(&self, plugin: &str) -> i64 {
        self.weights.get(plugin).copied().unwrap_or(1)
    }

    /// The profile's `percentageOfNodesToScore` (`None`: upstream's adaptive share).
    pub fn percentage_of_nodes_to_score(&self) -> Option<u32> {
        self.percentage_of_nodes_to_score
    }

    /// The `spec.schedulerName` this profile serves.
    pub fn scheduler_name(&self) -> &str {
        &self.scheduler_name
    }

    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// The events a pod rejected by `plugins` waits for (every event when none is named).
    pub fn events_for(&self, plugins: &[&'static str]) -> Vec<ClusterEvent> {
        if plugins.is_empty() {
            return super::interface::ALL_EVENTS.to_vec();
        }
        let mut events = Vec::new();
        for p in self.plugins.iter().filter(|p| plugins.contains(&p.name())) {
            for e in p.events_to_register() {
                if !events.contains(e) {
                    events.push(*e);
                }
            }
        }
        events
    }

    /// PreEnqueue: the first plugin that does not admit the pod.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for p in self.at(ExtensionPoint::PreEnqueue) {
            if let Some(pl) = p.as_pre_enqueue() {
                let s = pl.pre_enqueue(pod);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// QueueSort: whether `a` goes before `b`.
    pub fn less(&self, a: &PodInfo, a_at: u64, b: &PodInfo, b_at: u64) -> bool {
        for p in self.at(ExtensionPoint::QueueSort) {
            if let Some(pl) = p.as_queue_sort() {
                return pl.less(a, a_at, b, b_at);
            }
        }
        a_at < b_at
    }

    /// PreFilter: Skip marks the plugin's Filter as skipped; the first rejection or
    /// error ends the cycle.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Status {
        for p in self.at(ExtensionPoint::PreFilter) {
            if let Some(pl) = p.as_pre_filter() {
                let s = pl.pre_filter(state, pod, nodes);
                match s.code() {
                    Code::Success => {}
                    Code::Skip => state.skip_filter.push(p.name()),
                    _ => return s.with_plugin(p.name()),
                }
            }
        }
        Status::success()
    }

    /// The Filter plugins that run this cycle (those whose PreFilter did not Skip), in
    /// order: looked up once per cycle rather than once per node.
    pub fn filters(&self, state: &CycleState) -> Filters<'_> {
        Filters(
            self.at(ExtensionPoint::Filter)
                .iter()
                .filter(|p| !state.skip_filter.contains(&p.name()))
                .filter_map(|p| Some((p.name(), p.as_filter()?)))
                .collect(),
        )
    }

    /// Filter: the first plugin that rejects the node decides.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        self.filters(state).run(state, pod, node)
    }

    /// PostFilter: the first success wins; otherwise every plugin's reasons, in order.
    pub fn run_post_filter(&self, input: &PostFilterInput<'_>) -> (Status, Option<Nomination>) {
        let mut reasons = Vec::new();
        let mut rejector = "";
        let mut ran = false;
        for p in self.at(ExtensionPoint::PostFilter) {
            let Some(pl) = p.as_post_filter() else {
                continue;
            };
            ran = true;
            let (s, nomination) = pl.post_filter(input);
            match s.code() {
                Code::Success => return (s.with_plugin(p.name()), nomination),
                Code::Unschedulable => {}
                _ => return (s.with_plugin(p.name()), None),
            }
            reasons.extend(s.reasons().iter().cloned());
            if rejector.is_empty() {
                rejector = p.name();
            }
        }
        if !ran {
            return (Status::unresolvable("no PostFilter plugin"), None);
        }
        (
            Status::new(Code::Unschedulable, reasons).with_plugin(rejector),
            None,
        )
    }

    /// PreScore over the feasible nodes; Skip marks the plugin's Score as skipped.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
    ) -> Status {
        for p in self.at(ExtensionPoint::PreScore) {
            if let Some(pl) = p.as_pre_score() {
                let s = pl.pre_score(state, pod, nodes);
                match s.code() {
                    Code::Success => {}
                    Code::Skip => state.skip_score.push(p.name()),
                    _ => return s.with_plugin(p.name()),
                }
            }
        }
        Status::success()
    }

    /// Score, NormalizeScore and weights over the feasible nodes (positions in
    /// `snapshot`): the score table, which keeps them.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Arc<Snapshot>,
        feasible: Vec<usize>,
    ) -> Result<ScoreTable, Status> {
        let mut table = ScoreTable {
            totals: vec![0; feasible.len()],
            ..ScoreTable::default()
        };
        let nodes = snapshot.at(&feasible);
        // One list of names for every plugin; only the scores are rewritten.
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name(),
                score: 0,
            })
            .collect();
        for p in self.at(ExtensionPoint::Score) {
            if state.skip_score.contains(&p.name()) {
                continue;
            }
            let Some(pl) = p.as_score() else {
                continue;
            };
            for (slot, n) in scores.iter_mut().zip(&nodes) {
                let n: &NodeInfo = n;
                slot.score = pl
                    .score(state, pod, n)
                    .map_err(|s| s.with_plugin(p.name()))?;
            }
            table.raw.extend(scores.iter().map(|s| s.score));
            pl.normalize_score(state, pod, &mut scores);
            let weight = self.weight(p.name());
            for (total, s) in table.totals.iter_mut().zip(&scores) {
                if !(0..=MAX_NODE_SCORE).contains(&s.score) {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [0, {MAX_NODE_SCORE}] after normalizing",
                        p.name(),
                        s.score
                    )));
                }
                let weighted = s.score * weight;
                tracing::trace!(pod = %pod.key(), plugin = p.name(), node = %s.name, score = weighted,
                    "Plugin scored node for pod");
                *total += weighted;
            }
            table.normalized.extend(scores.iter().map(|s| s.score));
            table.plugins.push((p.name(), weight));
        }
        drop(scores);
        drop(nodes);
        table.snapshot = snapshot.clone();
        table.feasible = feasible;
        Ok(table)
    }

    /// Reserve in order; on failure every plugin is unreserved (in reverse).
    pub fn run_reserve(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in self.at(ExtensionPoint::Reserve) {
            if let Some(pl) = p.as_reserve() {
                let s = pl.reserve(state, pod, node);
                if !s.is_success() {
                    self.run_unreserve(state, pod, node);
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &CycleState, pod: &PodInfo, node: &str) {
        for p in self.at(ExtensionPoint::Reserve).iter().rev() {
            if let Some(pl) = p.as_reserve() {
                pl.unreserve(state, pod, node);
            }
        }
    }

    /// Permit: the first rejection decides; Wait holds the pod for the longest timeout.
    pub fn run_permit(&self, state: &CycleState, pod: &PodInfo, node: &str) -> (Status, Duration) {
        let mut wait = None;
        for p in self.at(ExtensionPoint::Permit) {
            if let Some(pl) = p.as_permit() {
                let (s, timeout) = pl.permit(state, pod, node);
                match s.code() {
                    Code::Success => {}
                    Code::Wait => wait = Some(wait.unwrap_or(Duration::ZERO).max(timeout)),
                    _ => return (s.with_plugin(p.name()), Duration::ZERO),
                }
            }
        }
        match wait {
            Some(d) => (Status::new(Code::Wait, Vec::<String>::new()), d),
            None => (Status::success(), Duration::ZERO),
        }
    }

    pub async fn run_pre_bind(&self, pod: &Pod, node: &str) -> Status {
        for p in self.at(ExtensionPoint::PreBind) {
            if let Some(pl) = p.as_pre_bind() {
                let s = pl.pre_bind(pod, node).await;
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// Bind: the first plugin that does not Skip binds.
    pub async fn run_bind(&self, pod: &Pod, node: &str) -> Status {
        for p in self.at(ExtensionPoint::Bind) {
            if let Some(pl) = p.as_bind() {
                let s = pl.bind(pod, node).await;
                if !s.is_skip() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::error("no bind plugin bound the pod")
    }

    pub fn run_post_bind(&self, pod: &Pod, node: &str) {
        for p in self.at(ExtensionPoint::PostBind) {
            if let Some(pl) = p.as_post_bind() {
                pl.post_bind(pod, node);
            }
        }
    }
}
