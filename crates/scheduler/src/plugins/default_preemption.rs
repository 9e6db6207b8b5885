//! DefaultPreemption (PostFilter): when no node fits, finds nodes where evicting
//! lower-priority pods makes room, keeps as few victims as possible on each (reprieving
//! the most important first), picks one node as upstream does, and nominates the pod
//! there. Otherwise it explains, per node, why preemption cannot help.
//! PodDisruptionBudgets (given to the cycle as [`Pdbs`]) are respected as upstream does:
//! pods whose eviction would violate a budget are reprieved first, and the node with the
//! fewest violations wins.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

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

/// The PostFilter plugin, configured by `DefaultPreemptionArgs`: it stops looking once it
/// has `max(nodes * minCandidateNodesPercentage / 100, minCandidateNodesAbsolute)`
/// candidates.
pub struct DefaultPreemption {
    min_candidate_nodes_percentage: u32,
    min_candidate_nodes_absolute: u32,
}

impl Default for DefaultPreemption {
    fn default() -> Self {
        Self::new()
    }
}

impl DefaultPreemption {
    /// Upstream's defaults: 10% and 100 nodes.
    pub fn new() -> Self {
        Self::with_args(10, 100)
    }

    pub fn with_args(percentage: u32, absolute: u32) -> Self {
        DefaultPreemption {
            min_candidate_nodes_percentage: percentage,
            min_candidate_nodes_absolute: absolute,
        }
    }

    /// How many candidates to look for among `nodes` (upstream's `calculateNumCandidates`).
    pub fn num_candidates(&self, nodes: usize) -> usize {
        let n = nodes * self.min_candidate_nodes_percentage as usize / 100;
        n.max(self.min_candidate_nodes_absolute as usize).min(nodes)
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

/// The cluster's PodDisruptionBudgets, as the scheduler last saw them (per cycle).
#[derive(Default, Clone)]
pub struct Pdbs(pub Arc<Vec<PodDisruptionBudget>>);

/// A node where preemption makes room, with the pods it evicts.
struct Candidate {
    node: String,
    victims: Vec<PodInfo>,
    /// Victims whose eviction violates a PodDisruptionBudget.
    pdb_violations: usize,
}

/// Upstream's `filterPodsWithPDBViolation`: splits `pods` (in order) into those whose
/// eviction would take some matching budget below its `disruptionsAllowed`, and the
/// rest. Budgets select pods in their namespace; an empty selector selects none; a pod
/// the budget already lists as disrupted is not counted again.
fn split_by_pdb_violation(
    pods: Vec<PodInfo>,
    pdbs: &[PodDisruptionBudget],
) -> (Vec<PodInfo>, Vec<PodInfo>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.disruptions_allowed)
                .unwrap_or(0)
        })
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.pod.metadata.name.as_deref().unwrap_or("");
        let mut violates = false;
        for (i, pdb) in pdbs.iter().enumerate() {
            if pdb.metadata.namespace.as_deref().unwrap_or("") != ns {
                continue;
            }
            let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                continue;
            };
            let empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
            if empty
                || !crate::plugins::inter_pod_affinity::selector_matches(
                    Some(sel),
                    pod.pod.metadata.labels.as_ref(),
                )
            {
                continue;
            }
            let disrupted = pdb
                .status
                .as_ref()
                .and_then(|s| s.disrupted_pods.as_ref())
                .is_some_and(|d| d.contains_key(name));
            if disrupted {
                continue;
            }
            allowed[i] -= 1;
            if allowed[i] < 0 {
                violates = true;
            }
        }
        if violates {
            violating.push(pod);
        } else {
            fine.push(pod);
        }
    }
    (violating, fine)
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

/// The fewest lower-priority pods to evict from `node` for `pod` to fit, with how many
/// of them violate a PodDisruptionBudget, or why none. As upstream's
/// `SelectVictimsOnNode`: remove every lower-priority pod, then give back as many as
/// still let the pod fit, most important first — budget-protected pods before the rest.
fn select_victims(
    fw: &Framework,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(Vec<PodInfo>, usize), Status> {
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
    potential.sort_by(more_important);
    let pdbs = state.read::<Pdbs>().cloned().unwrap_or_default();
    let (violating, fine) = split_by_pdb_violation(potential, &pdbs.0);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (group, counts) in [(violating, true), (fine, false)] {
        for p in group {
            trial.add_pod(p.clone());
            if !fw.run_filter(state, pod, &trial).is_success() {
                trial.remove_pod(p.uid());
                victims.push(p);
                violations += usize::from(counts);
            }
        }
    }
    // Upstream returns the victims most important first.
    victims.sort_by(more_important);
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption`: the fewest PodDisruptionBudget violations,
/// then the lowest highest-priority victim, then the smallest sum of victim priorities,
/// then the fewest victims, then the latest start among the highest-priority victims;
/// the first node on a tie.
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
        // The earliest start among the highest-priority victims; later is better, so
        // the key is reversed (no start time counts as the latest).
        let earliest = c
            .victims
            .iter()
            .filter(|v| v.priority() == highest)
            .map(start_time)
            .min_by(|a, b| match (a, b) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .flatten();
        (
            c.pdb_violations,
            highest,
            sum,
            c.victims.len(),
            std::cmp::Reverse(earliest.map(Latest::At).unwrap_or(Latest::Never)),
        )
    })
}

/// A start time ordered so that "not started" comes after every time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Latest {
    At(String),
    Never,
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
        let wanted = self.num_candidates(input.statuses.len());
        for (name, status) in input.statuses {
            if candidates.len() >= wanted {
                break;
            }
            if status.code() == Code::UnschedulableAndUnresolvable {
                statuses.push((name.clone(), Status::unresolvable(NOT_HELPFUL)));
                continue;
            }
            let Some(node) = input.nodes.iter().find(|n| n.name() == name) else {
                continue;
            };
            match select_victims(input.framework, input.state, pod, node) {
                Ok((victims, pdb_violations)) => candidates.push(Candidate {
                    node: name.clone(),
                    victims,
                    pdb_violations,
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

    fn labeled(name: &str, priority: i32, cpu: &str, app: &str) -> PodInfo {
        let mut p = (*prio(name, priority, cpu).pod).clone();
        p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        PodInfo::new(Arc::new(p))
    }

    fn pdb(app: &str, allowed: i32) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": format!("pdb-{app}"), "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}}},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}))
        .unwrap()
    }

    fn preempt_with(
        incoming: &PodInfo,
        nodes: Vec<NodeInfo>,
        pdbs: Vec<PodDisruptionBudget>,
    ) -> Nomination {
        let fw = default_profile(&Handle::default());
        let nodes = Arc::new(Snapshot::new(nodes.into_iter().map(Arc::new).collect()));
        let mut state = CycleState::default();
        state.write(Pdbs(Arc::new(pdbs)));
        match schedule_pod(&fw, &mut state, incoming, &nodes, &mut 0, &mut |_| 0) {
            Err(ScheduleError::Fit(fit)) => fit.nomination.expect("a nomination"),
            other => panic!("expected a fit error, got {other:?}"),
        }
    }

    fn victim_names(n: &Nomination) -> Vec<String> {
        n.victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn pod_disruption_budgets_steer_victims_and_nodes() {
        // (case, nodes as [(node, [(pod, priority, cpu, app)])], budgets as
        // [(app, disruptionsAllowed)], incoming cpu, expected node, expected victims)
        type Pods = &'static [(&'static str, i32, &'static str, &'static str)];
        type Case = (
            &'static str,
            &'static [(&'static str, Pods)],
            &'static [(&'static str, i32)],
            &'static str,
            &'static str,
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (
                "the node without violations wins over lower-priority victims",
                &[
                    ("a", &[("a-low", 1, "4", "web")]),
                    ("b", &[("b-mid", 10, "4", "db")]),
                ],
                &[("web", 0)],
                "2",
                "b",
                &["b-mid"],
            ),
            (
                "a budget with room allows the eviction",
                &[
                    ("a", &[("a-low", 1, "4", "web")]),
                    ("b", &[("b-mid", 10, "4", "db")]),
                ],
                &[("web", 1)],
                "2",
                "a",
                &["a-low"],
            ),
            (
                "protected pods are reprieved before unprotected ones",
                &[("a", &[("protected", 1, "2", "web"), ("free", 5, "2", "db")])],
                &[("web", 0)],
                "2",
                "a",
                &["free"],
            ),
            (
                "a violation is still allowed when every node needs one",
                &[("a", &[("a-low", 1, "4", "web")])],
                &[("web", 0)],
                "2",
                "a",
                &["a-low"],
            ),
            (
                "budgets of other labels do not count",
                &[
                    ("a", &[("a-low", 1, "4", "web")]),
                    ("b", &[("b-mid", 10, "4", "db")]),
                ],
                &[("cache", 0)],
                "2",
                "a",
                &["a-low"],
            ),
        ];
        for (case, nodes, budgets, cpu, want_node, want_victims) in cases {
            let nodes = nodes
                .iter()
                .map(|(name, pods)| {
                    let mut n = four_cpus(name);
                    for (p, prio, cpu, app) in pods.iter() {
                        n.add_pod(labeled(p, *prio, cpu, app));
                    }
                    n
                })
                .collect();
            let pdbs = budgets
                .iter()
                .map(|(app, allowed)| pdb(app, *allowed))
                .collect();
            let n = preempt_with(&prio("incoming", 50, cpu), nodes, pdbs);
            assert_eq!(n.node, *want_node, "{case}");
            assert_eq!(victim_names(&n), *want_victims, "{case}");
        }
    }

    #[test]
    fn pdb_violations_are_counted_per_budget_and_skip_disrupted_pods() {
        let pods = vec![
            labeled("w1", 1, "1", "web"),
            labeled("w2", 1, "1", "web"),
            labeled("w3", 1, "1", "web"),
            labeled("d1", 1, "1", "db"),
        ];
        let (violating, fine) = split_by_pdb_violation(pods.clone(), &[pdb("web", 2)]);
        let names = |v: &[PodInfo]| {
            v.iter()
                .map(|p| p.pod.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&violating), ["w3"]);
        assert_eq!(names(&fine), ["w1", "w2", "d1"]);
        // A pod the budget already counts as disrupted is not counted again.
        let mut disrupted = pdb("web", 0);
        disrupted.status.as_mut().unwrap().disrupted_pods = Some(
            [(
                "w1".to_owned(),
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
            )]
            .into(),
        );
        let (violating, _) = split_by_pdb_violation(pods.clone(), &[disrupted]);
        assert_eq!(names(&violating), ["w2", "w3"]);
        // An empty selector selects nothing; other namespaces do not count.
        let mut empty = pdb("web", 0);
        empty.spec.as_mut().unwrap().selector = Some(Default::default());
        let mut elsewhere = pdb("web", 0);
        elsewhere.metadata.namespace = Some("other".into());
        let (violating, _) = split_by_pdb_violation(pods, &[empty, elsewhere]);
        assert!(violating.is_empty());
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
    fn candidate_counts_follow_the_args() {
        let d = DefaultPreemption::new();
        assert_eq!(d.num_candidates(50), 50);
        assert_eq!(d.num_candidates(5000), 500);
        let d = DefaultPreemption::with_args(0, 2);
        assert_eq!(d.num_candidates(50), 2);
        let d = DefaultPreemption::with_args(50, 0);
        assert_eq!(d.num_candidates(50), 25);
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
