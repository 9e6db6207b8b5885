//! One scheduling cycle for one pod, without IO: PreFilter, Filter over the nodes (an
//! adaptive share of them in large clusters), PostFilter when none fits, then PreScore,
//! Score and the choice of host. A failure carries upstream's diagnosis, rendered as
//! the FailedScheduling message.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::framework::{
    AllNodes, Code, CycleState, Filters, Framework, NodeInfo, NominatedPods, Nomination, PodInfo,
    PostFilterInput, ScoreTable, Snapshot, Status,
};

/// Upstream's message when the cluster has no nodes at all.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Where the pod goes, and how the choice was made.
#[derive(Debug, Clone)]
pub struct ScheduleResult {
    pub node: String,
    /// Nodes filtered this cycle.
    pub evaluated: usize,
    /// Nodes that passed every filter.
    pub feasible: usize,
    /// Each feasible node's scores (empty when only one node was feasible).
    pub scores: ScoreTable,
}

/// Why no node fits: every node's rejection and the PreFilter/PostFilter messages.
#[derive(Debug, Clone)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub pre_filter_msg: String,
    /// (node, rejection), in node order.
    pub statuses: Vec<(String, Status)>,
    pub post_filter_msg: String,
    /// The plugins that rejected the pod (for requeueing on their events).
    pub rejectors: Vec<&'static str>,
    /// Where preemption made room, and whom it evicts for it.
    pub nomination: Option<Nomination>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fit_error_message(
            self.num_all_nodes,
            &self.pre_filter_msg,
            &self.statuses,
            &self.post_filter_msg,
        ))
    }
}

/// Upstream's FitError text: `0/N nodes are available: <count reason, ...>.` sorted as
/// strings, or the PreFilter message instead, then the PostFilter message.
pub fn fit_error_message(
    num_all_nodes: usize,
    pre_filter_msg: &str,
    statuses: &[(String, Status)],
    post_filter_msg: &str,
) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !pre_filter_msg.is_empty() {
        msg.push_str(&format!(" {pre_filter_msg}."));
    } else {
        let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in statuses {
            for r in s.reasons() {
                *histogram.entry(r).or_default() += 1;
            }
        }
        let mut reasons: Vec<String> = histogram
            .into_iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        reasons.sort();
        if !reasons.is_empty() {
            msg.push_str(&format!(" {}.", reasons.join(", ")));
        }
    }
    if !post_filter_msg.is_empty() {
        msg.push(' ');
        msg.push_str(post_filter_msg);
    }
    msg
}

/// Why a cycle failed.
#[derive(Debug, Clone)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    NoNodes,
    /// No node fits.
    Fit(Box<FitError>),
    /// A plugin failed; retried after backoff.
    Internal(Status),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::NoNodes => f.write_str(NO_NODES_AVAILABLE),
            ScheduleError::Fit(e) => e.fmt(f),
            ScheduleError::Internal(s) => {
                if s.plugin().is_empty() {
                    f.write_str(&s.message())
                } else {
                    write!(f, "running {:?} plugin: {}", s.plugin(), s.message())
                }
            }
        }
    }
}

/// Upstream's adaptive `percentageOfNodesToScore`: all nodes up to 100, then 50% less
/// 1% per 125 nodes, at least 5% and at least 100 nodes.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    num_feasible_nodes_to_find_with(None, num_all_nodes)
}

/// [`num_feasible_nodes_to_find`] with a configured `percentageOfNodesToScore` (0 or
/// `None`: adaptive); never fewer than 100 nodes.
pub fn num_feasible_nodes_to_find_with(percentage: Option<u32>, num_all_nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_all_nodes < MIN_FEASIBLE {
        return num_all_nodes;
    }
    let percentage = match percentage {
        Some(p) if p > 0 => p as usize,
        _ => 50usize.saturating_sub(num_all_nodes / 125).max(5),
    };
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// Filter, counting pods nominated to the node (by preemption) with at least this pod's
/// priority as if they ran there, so no one takes the room they were promised; a node
/// fits only if it also fits without them (upstream runs both passes).
pub(crate) fn filter_with_nominated(
    filters: &Filters<'_>,
    nominated: Option<&NominatedPods>,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    let Some(waiting) = nominated.and_then(|n| n.0.get(node.name())) else {
        return filters.run(state, pod, node);
    };
    let priority = pod.priority();
    let ahead: Vec<&PodInfo> = waiting
        .iter()
        .filter(|p| p.uid() != pod.uid() && p.priority() >= priority)
        .collect();
    if ahead.is_empty() {
        return filters.run(state, pod, node);
    }
    let mut with = node.clone();
    for p in ahead {
        with.add_pod(p.clone());
    }
    let s = filters.run(state, pod, &with);
    if !s.is_success() {
        return s;
    }
    filters.run(state, pod, node)
}

/// The scheduling cycle's algorithm: where `pod` goes among the snapshot's nodes.
/// `next_start` is where filtering starts (rotated between cycles so every node gets its
/// turn); `tiebreak` picks among equally scored nodes. The snapshot stays in `state` as
/// [`AllNodes`]: take it out before changing the cache.
pub fn schedule_pod(
    fw: &Framework,
    state: &mut CycleState,
    pod: &PodInfo,
    snapshot: &Arc<Snapshot>,
    next_start: &mut usize,
    tiebreak: &mut dyn FnMut(usize) -> usize,
) -> Result<ScheduleResult, ScheduleError> {
    let nodes: &[Arc<NodeInfo>] = snapshot.nodes();
    if nodes.is_empty() {
        return Err(ScheduleError::NoNodes);
    }
    state.write(AllNodes(snapshot.clone()));
    let fail = |statuses: Vec<(String, Status)>, pre_filter_msg: String, state: &CycleState| {
        let mut rejectors: Vec<&'static str> = Vec::new();
        for (_, s) in &statuses {
            if !s.plugin().is_empty() && !rejectors.contains(&s.plugin()) {
                rejectors.push(s.plugin());
            }
        }
        let (post, nomination) = fw.run_post_filter(&PostFilterInput {
            framework: fw,
            state,
            pod,
            nodes,
            statuses: &statuses,
        });
        ScheduleError::Fit(Box::new(FitError {
            num_all_nodes: nodes.len(),
            pre_filter_msg,
            post_filter_msg: if post.is_success() {
                String::new()
            } else {
                post.message()
            },
            statuses,
            rejectors,
            nomination,
        }))
    };

    let pre = fw.run_pre_filter(state, pod, nodes);
    match pre.code() {
        Code::Success => {}
        Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
            let statuses = nodes
                .iter()
                .map(|n| (n.name().to_owned(), pre.clone()))
                .collect();
            return Err(fail(statuses, pre.message(), state));
        }
        _ => return Err(ScheduleError::Internal(pre)),
    }

    // A pod nominated by an earlier preemption tries its node first.
    let nominated_node = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    let filters = fw.filters(state);
    let nominated = state.read::<NominatedPods>();
    if let Some(node) = nominated_node.and_then(|n| nodes.iter().find(|x| x.name() == n)) {
        if filter_with_nominated(&filters, nominated, state, pod, node).is_success() {
            return Ok(ScheduleResult {
                node: node.name().to_owned(),
                evaluated: 1,
                feasible: 1,
                scores: ScoreTable::default(),
            });
        }
    }

    let want = num_feasible_nodes_to_find_with(fw.percentage_of_nodes_to_score(), nodes.len());
    // Positions in the snapshot, not counted references (two atomic operations a node).
    let mut feasible: Vec<usize> = Vec::with_capacity(want);
    let mut statuses: Vec<(String, Status)> = Vec::new();
    let mut evaluated = 0;
    let start = *next_start % nodes.len();
    for i in 0..nodes.len() {
        let at = (start + i) % nodes.len();
        let node = &nodes[at];
        evaluated += 1;
        let s = filter_with_nominated(&filters, nominated, state, pod, node);
        match s.code() {
            Code::Success => feasible.push(at),
            Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                tracing::trace!(pod = %pod.key(), node = %node.name(), plugin = s.plugin(),
                    reason = %s.message(), "Node is filtered out");
                statuses.push((node.name().to_owned(), s))
            }
            _ => return Err(ScheduleError::Internal(s)),
        }
        if feasible.len() >= want {
            break;
        }
    }
    *next_start = (start + evaluated) % nodes.len();

    if feasible.is_empty() {
        return Err(fail(statuses, String::new(), state));
    }
    if feasible.len() == 1 {
        return Ok(ScheduleResult {
            node: nodes[feasible[0]].name().to_owned(),
            evaluated,
            feasible: 1,
            scores: ScoreTable::default(),
        });
    }
    let pre_score = fw.run_pre_score(state, pod, &snapshot.at(&feasible));
    if !pre_score.is_success() {
        return Err(ScheduleError::Internal(pre_score));
    }
    let count = feasible.len();
    let scores = fw
        .run_score(state, pod, snapshot, feasible)
        .map_err(ScheduleError::Internal)?;
    let feasible = count;
    let best = scores.totals.iter().copied().max().unwrap_or(0);
    let top: Vec<usize> = (0..scores.len())
        .filter(|i| scores.totals[*i] == best)
        .collect();
    let pick = top[tiebreak(top.len()) % top.len()];
    Ok(ScheduleResult {
        node: scores.name(pick).to_owned(),
        evaluated,
        feasible,
        scores,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::{node, pod, pod_named};
    use crate::plugins::{default_profile, Handle};

    fn run(pod: &PodInfo, nodes: Vec<NodeInfo>) -> Result<ScheduleResult, ScheduleError> {
        let fw = default_profile(&Handle::default());
        let nodes = Arc::new(Snapshot::new(nodes.into_iter().map(Arc::new).collect()));
        schedule_pod(
            &fw,
            &mut CycleState::default(),
            pod,
            &nodes,
            &mut 0,
            &mut |_| 0,
        )
    }

    fn sized(name: &str, cpu: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({}),
            json!({"cpu": cpu, "memory": "8Gi", "pods": "110"}),
        )
    }

    fn tainted(name: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
            json!({"cpu": "64", "memory": "8Gi", "pods": "110"}),
        )
    }

    fn cpu(c: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": c}}}]})
    }

    #[test]
    fn the_failed_scheduling_message_is_upstreams() {
        let err = run(
            &pod(cpu("8")),
            vec![sized("a", "4"), tainted("b"), tainted("c")],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s). \
             no new claims to deallocate, preemption: 0/3 nodes are available: \
             3 Preemption is not helpful for scheduling."
        );
        let ScheduleError::Fit(fit) = err else {
            panic!()
        };
        assert_eq!(fit.rejectors, ["NodeResourcesFit", "TaintToleration"]);
    }

    #[test]
    fn preemption_distinguishes_nodes_without_victims() {
        // 3 cpus free of 4: the pod could fit after evictions, but nothing has lower
        // priority.
        let mut a = sized("a", "4");
        a.add_pod(pod_named("busy", cpu("2")));
        let err = run(&pod(cpu("3")), vec![a, tainted("b")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s). \
             no new claims to deallocate, preemption: 0/2 nodes are available: \
             1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn nominated_pods_keep_their_room() {
        let fw = default_profile(&Handle::default());
        let nodes = Arc::new(Snapshot::new(vec![
            Arc::new(sized("a", "4")),
            Arc::new(sized("b", "4")),
        ]));
        let mut state = CycleState::default();
        let waiting = pod_named(
            "preemptor",
            json!({"priority": 100,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}),
        );
        state.write(NominatedPods(
            [("a".to_owned(), vec![waiting])].into_iter().collect(),
        ));
        let r = schedule_pod(&fw, &mut state, &pod(cpu("2")), &nodes, &mut 0, &mut |_| 0).unwrap();
        assert_eq!((r.node.as_str(), r.feasible), ("b", 1));
        // A nominated pod goes back to its node first.
        let back = pod(json!({"containers": [{"name": "c"}]}));
        let mut p = (*back.pod).clone();
        p.status = Some(serde_json::from_value(json!({"nominatedNodeName": "b"})).unwrap());
        let p = PodInfo::new(Arc::new(p));
        let r = schedule_pod(
            &fw,
            &mut CycleState::default(),
            &p,
            &nodes,
            &mut 0,
            &mut |_| 0,
        )
        .unwrap();
        assert_eq!((r.node.as_str(), r.evaluated), ("b", 1));
    }

    #[test]
    fn no_nodes() {
        assert_eq!(
            run(&pod(json!({})), vec![]).unwrap_err().to_string(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn the_least_allocated_node_wins() {
        let mut busy = sized("busy", "4");
        busy.add_pod(pod_named("x", cpu("3")));
        let r = run(&pod(cpu("500m")), vec![busy, sized("idle", "4")]).unwrap();
        assert_eq!(r.node, "idle");
        assert_eq!(r.feasible, 2);
        let idle = r.scores.position("idle").unwrap();
        assert!(r
            .scores
            .weighted(idle)
            .any(|s| s == ("TaintToleration", 300)));
    }

    #[test]
    fn preferred_affinity_outweighs_free_resources() {
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}},
            "containers": [{"name": "c"}]}),
        );
        let mut ssd = node(
            "ssd",
            json!({"disk": "ssd"}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        );
        ssd.add_pod(pod_named("x", cpu("2")));
        let r = run(&p, vec![sized("plain", "4"), ssd]).unwrap();
        assert_eq!(r.node, "ssd");
    }

    #[test]
    fn adaptive_share_of_nodes() {
        assert_eq!(num_feasible_nodes_to_find(50), 50);
        assert_eq!(num_feasible_nodes_to_find(100), 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(5000), 500);
        assert_eq!(num_feasible_nodes_to_find_with(Some(30), 1000), 300);
        assert_eq!(num_feasible_nodes_to_find_with(Some(5), 1000), 100);
        assert_eq!(num_feasible_nodes_to_find_with(Some(100), 1000), 1000);
        assert_eq!(num_feasible_nodes_to_find_with(Some(0), 1000), 420);
    }
}
