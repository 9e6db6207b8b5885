//! DefaultPreemption (PostFilter): when no node fits, finds nodes where evicting
//! lower-priority pods makes room, keeps as few victims as possible on each (reprieving
//! the most important first), picks one node as upstream does, and nominates the pod
//! there. Otherwise it explains, per node, why preemption cannot help.
//! PodDisruptionBudgets are not consulted yet.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{
    Code, CycleState, Framework, NodeInfo, Nomination, Plugin, PodInfo, PostFilterInput,
    PostFilterPlugin, Status,
};
use crate::schedule_one::fit_error_message;

pub const NAME: &str = "DefaultPreemption";
/// For nodes whose rejection eviction cannot fix.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// For nodes without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// For a pod whose earlier preemption is still under way.
pub const TERMINATING_ON_NOMINATED: &str =
    "not eligible due to a terminating pod on the nominated node.";

/// The PostFilter plugin.
#[derive(Default)]
pub struct DefaultPreemption;

impl DefaultPreemption {
    pub fn new() -> Self {
        DefaultPreemption
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

/// A node where preemption makes room, with the pods it evicts.
struct Candidate {
    node: String,
    victims: Vec<PodInfo>,
}

fn start_time(p: &PodInfo) -> Option<String> {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
}

/// Upstream's `MoreImportantPod`: higher priority, then started earlier.
fn more_important(a: &PodInfo, b: &PodInfo) -> std::cmp::Ordering {
    b.priority()
        .cmp(&a.priority())
        .then_with(|| match (start_time(a), start_time(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
}

/// The fewest lower-priority pods to evict from `node` for `pod` to fit, or why none.
fn select_victims(
    fw: &Framework,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<Vec<PodInfo>, Status> {
    let priority = pod.priority();
    let mut potential: Vec<PodInfo> = node
        .pods
        .iter()
        .filter(|p| p.priority() < priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    let mut trial = node.clone();
    for p in &potential {
        trial.remove_pod(p.uid());
    }
    let fits = fw.run_filter(state, pod, &trial);
    if !fits.is_success() {
        return Err(fits);
    }
    // Give back as many as possible, most important first.
    potential.sort_by(more_important);
    let mut victims = Vec::new();
    for p in potential {
        trial.add_pod(p.clone());
        if !fw.run_filter(state, pod, &trial).is_success() {
            trial.remove_pod(p.uid());
            victims.push(p);
        }
    }
    Ok(victims)
}

/// Upstream's `pickOneNodeForPreemption` (without PDBs): the lowest highest-priority
/// victim, then the smallest sum of victim priorities, then the fewest victims.
fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates.into_iter().min_by_key(|c| {
        let highest = c
            .victims
            .iter()
            .map(|v| v.priority())
            .max()
            .unwrap_or(i32::MIN);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority()) + i64::from(i32::MAX) + 1)
            .sum();
        (highest, sum, c.victims.len())
    })
}

/// Whether an earlier preemption for this pod is still evicting on its nominated node.
fn waiting_on_nominated_node(pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> bool {
    let Some(nominated) = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return false;
    };
    let priority = pod.priority();
    nodes.iter().filter(|n| n.name() == nominated).any(|n| {
        n.pods
            .iter()
            .any(|p| p.pod.metadata.deletion_timestamp.is_some() && p.priority() < priority)
    })
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(&self, input: &PostFilterInput<'_>) -> (Status, Option<Nomination>) {
        let pod = input.pod;
        let policy = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref());
        if policy == Some("Never") {
            return (
                Status::unschedulable("not eligible due to preemptionPolicy=Never."),
                None,
            );
        }
        if waiting_on_nominated_node(pod, input.nodes) {
            return (Status::unschedulable(TERMINATING_ON_NOMINATED), None);
        }
        let mut statuses = Vec::with_capacity(input.statuses.len());
        let mut candidates = Vec::new();
        for (name, status) in input.statuses {
            if status.code() == Code::UnschedulableAndUnresolvable {
                statuses.push((name.clone(), Status::unresolvable(NOT_HELPFUL)));
                continue;
            }
            let Some(node) = input.nodes.iter().find(|n| n.name() == name) else {
                continue;
            };
            match select_victims(input.framework, input.state, pod, node) {
                Ok(victims) => candidates.push(Candidate {
                    node: name.clone(),
                    victims,
                }),
                Err(s) => statuses.push((name.clone(), s)),
            }
        }
        match pick(candidates) {
            Some(c) => (
                Status::success(),
                Some(Nomination {
                    node: c.node,
                    victims: c
                        .victims
                        .into_iter()
                        .map(|v| v.pod)
                        .collect::<Vec<Arc<Pod>>>(),
                }),
            ),
            None => (
                Status::unschedulable(format!(
                    "preemption: {}",
                    fit_error_message(input.nodes.len(), "", &statuses, "")
                )),
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::Snapshot;
    use crate::plugins::helper::test_util::{node, pod, pod_named};
    use crate::plugins::{default_profile, Handle};
    use crate::schedule_one::{schedule_pod, ScheduleError};

    fn prio(name: &str, priority: i32, cpu: &str) -> PodInfo {
        pod_named(
            name,
            json!({"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}),
        )
    }

    fn preempt(incoming: &PodInfo, nodes: Vec<NodeInfo>) -> Option<Nomination> {
        let fw = default_profile(&Handle::default());
        let nodes = Arc::new(Snapshot::new(nodes.into_iter().map(Arc::new).collect()));
        match schedule_pod(
            &fw,
            &mut CycleState::default(),
            incoming,
            &nodes,
            &mut 0,
            &mut |_| 0,
        ) {
            Err(ScheduleError::Fit(fit)) => fit.nomination,
            other => panic!("expected a fit error, got {other:?}"),
        }
    }

    fn four_cpus(name: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let mut a = four_cpus("a");
        a.add_pod(prio("low-1", 1, "1"));
        a.add_pod(prio("low-2", 2, "1"));
        a.add_pod(prio("high", 100, "2"));
        // Needs 1 cpu more than is free: evicting the priority-1 pod is enough.
        let n = preempt(&prio("incoming", 50, "1"), vec![a.clone()]).expect("a nomination");
        assert_eq!(n.node, "a");
        let names: Vec<_> = n
            .victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["low-1"]);
        // Needs 2 cpus: both low pods go; the higher-priority one never does.
        let n = preempt(&prio("incoming", 50, "2"), vec![a]).unwrap();
        let mut names: Vec<_> = n
            .victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["low-1", "low-2"]);
    }

    #[test]
    fn prefers_the_node_whose_victims_matter_least() {
        let mut a = four_cpus("a");
        a.add_pod(prio("a-mid", 10, "4"));
        let mut b = four_cpus("b");
        b.add_pod(prio("b-low", 1, "4"));
        let n = preempt(&prio("incoming", 50, "2"), vec![a, b]).unwrap();
        assert_eq!(n.node, "b");
    }

    #[test]
    fn nothing_to_evict_explains_itself() {
        let mut a = four_cpus("a");
        a.add_pod(prio("same", 50, "4"));
        let fw = default_profile(&Handle::default());
        let nodes = Arc::new(Snapshot::new(vec![Arc::new(a)]));
        let err = schedule_pod(
            &fw,
            &mut CycleState::default(),
            &prio("incoming", 50, "1"),
            &nodes,
            &mut 0,
            &mut |_| 0,
        )
        .unwrap_err();
        assert!(err.to_string().ends_with("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."), "{err}");
        let never = pod(json!({"priority": 100, "preemptionPolicy": "Never",
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}));
        let err = schedule_pod(
            &fw,
            &mut CycleState::default(),
            &never,
            &nodes,
            &mut 0,
            &mut |_| 0,
        )
        .unwrap_err();
        assert!(
            err.to_string().ends_with(
                "no new claims to deallocate, not eligible due to preemptionPolicy=Never."
            ),
            "{err}"
        );
    }
}
