//! Why the scheduler places a pod where it does (`rkube explain pod`): the cluster as the
//! scheduler's watches would see it, read once through the API, put through the default
//! profile's PreFilter, Filter, PreScore, Score and NormalizeScore — the same framework
//! and plugins a scheduling cycle runs — with every node's verdict and every plugin's
//! score kept for printing.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::ListParams;
use kube::{Api, Client};
use thiserror::Error;

use crate::cache::Cache;
use crate::framework::{
    AllNodes, Code, CycleState, Framework, NominatedPods, PodInfo, ScoreTable, Snapshot, Status,
};
use crate::listers::Listers;
use crate::plugins::{default_profile, Handle, DEFAULT_SCHEDULER_NAME};
use crate::schedule_one::{filter_with_nominated, num_feasible_nodes_to_find};

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an explanation could not be made.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot get pod {namespace}/{name}: {source}")]
    GetPodFailed {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list {what}: {source}")]
    ListFailed {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the API server did not answer within {secs} s while reading {what}")]
    TimedOut { what: &'static str, secs: u64 },
    #[error("the configuration has no profile for scheduler {0:?} (profiles: {1}); a scheduler running it leaves this pod alone")]
    NoProfile(String, String),
    #[error("building the {0:?} profile: {1}")]
    Profile(String, crate::config::ConfigError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One node's Filter verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub node: String,
    /// Success, or the first plugin's rejection (plugin name and upstream's reasons).
    pub status: Status,
}

/// What the framework made of a pod over a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// The PreEnqueue plugin that keeps the pod out of the queue (scheduling gates).
    pub pre_enqueue: Option<Status>,
    /// A PreFilter rejection or error: no node was filtered.
    pub pre_filter: Option<Status>,
    /// Every node's verdict, in name order.
    pub verdicts: Vec<Verdict>,
    /// The feasible nodes' scores (empty when fewer than two are feasible: the
    /// scheduler does not score then).
    pub scores: ScoreTable,
    /// A PreScore or Score failure.
    pub score_error: Option<Status>,
    /// The nodes with the best total (the scheduler picks one of them at random); the
    /// only feasible node when there is one.
    pub best: Vec<String>,
}

/// Runs the scheduling algorithm's decision points on `pod` over every node of
/// `snapshot` (not the adaptive share a cycle filters in large clusters, so every node
/// gets a verdict). Pods nominated to a node count there, as in a cycle.
pub fn evaluate(
    fw: &Framework,
    snapshot: &Arc<Snapshot>,
    pod: &PodInfo,
    nominated: Option<NominatedPods>,
) -> Evaluation {
    let mut out = Evaluation::default();
    let pre_enqueue = fw.run_pre_enqueue(&pod.pod);
    if !pre_enqueue.is_success() {
        out.pre_enqueue = Some(pre_enqueue);
    }
    let mut state = CycleState::default();
    state.write(AllNodes(snapshot.clone()));
    if let Some(n) = nominated {
        state.write(n);
    }
    let nodes = snapshot.nodes();
    let pre = fw.run_pre_filter(&mut state, pod, nodes);
    if !pre.is_success() {
        out.verdicts = nodes
            .iter()
            .map(|n| Verdict {
                node: n.name().to_owned(),
                status: pre.clone(),
            })
            .collect();
        out.pre_filter = Some(pre);
        return out;
    }
    let filters = fw.filters(&state);
    let nominated = state.read::<NominatedPods>();
    let mut feasible = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let status = filter_with_nominated(&filters, nominated, &state, pod, node);
        if status.is_success() {
            feasible.push(i);
        }
        out.verdicts.push(Verdict {
            node: node.name().to_owned(),
            status,
        });
    }
    drop(filters);
    match feasible.len() {
        0 => return out,
        1 => {
            out.best = vec![nodes[feasible[0]].name().to_owned()];
            return out;
        }
        _ => {}
    }
    let pre_score = fw.run_pre_score(&mut state, pod, &snapshot.at(&feasible));
    if !pre_score.is_success() {
        out.score_error = Some(pre_score);
        return out;
    }
    match fw.run_score(&state, pod, snapshot, feasible) {
        Ok(scores) => {
            let top = scores.totals.iter().copied().max().unwrap_or(0);
            out.best = (0..scores.len())
                .filter(|i| scores.totals[*i] == top)
                .map(|i| scores.name(i).to_owned())
                .collect();
            out.scores = scores;
        }
        Err(s) => out.score_error = Some(s),
    }
    out
}

/// A pod's explanation: what the API says about it and what the framework makes of it.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// `namespace/name`.
    pub pod: String,
    pub scheduler_name: String,
    /// `spec.nodeName`, when bound.
    pub node: Option<String>,
    pub nominated_node: Option<String>,
    /// The PodScheduled condition: status, reason, message.
    pub pod_scheduled: Option<(String, String, String)>,
    /// The latest FailedScheduling event's message.
    pub failed_scheduling: Option<String>,
    /// Whether the evaluated profile came from a given configuration (else the built-in
    /// default profile).
    pub from_config: bool,
    pub evaluation: Evaluation,
}

async fn call<T, F>(what: &'static str, f: F) -> Result<T>
where
    F: Future<Output = Result<T, kube::Error>>,
{
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(|source| Error::ListFailed { what, source }),
        Err(_) => Err(Error::TimedOut {
            what,
            secs: CALL_TIMEOUT.as_secs(),
        }),
    }
}

/// Every object of a kind, in every namespace.
async fn list<K>(client: &Client, what: &'static str) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + fmt::Debug + k8s_openapi::serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    Ok(call(what, api.list(&ListParams::default())).await?.items)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Reads the cluster through `client` and explains pod `namespace/name`: a bound pod is
/// evaluated as if it were still pending, without itself on its node. With a scheduler
/// `config`, the profile the pod's schedulerName names is evaluated; without one, the
/// built-in default profile.
pub async fn explain(
    client: &Client,
    namespace: &str,
    name: &str,
    config: Option<&crate::config::Configuration>,
) -> Result<Explanation> {
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let target = match tokio::time::timeout(CALL_TIMEOUT, pods_api.get(name)).await {
        Ok(r) => r.map_err(|source| Error::GetPodFailed {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?,
        Err(_) => {
            return Err(Error::TimedOut {
                what: "the pod",
                secs: CALL_TIMEOUT.as_secs(),
            })
        }
    };
    let (nodes, pods) =
        tokio::try_join!(list::<Node>(client, "nodes"), list::<Pod>(client, "pods"),)?;
    let listers = Arc::new(Listers::default());
    let (pvcs, scs, nss, svcs, rcs, rss, sts) = tokio::try_join!(
        list::<PersistentVolumeClaim>(client, "persistentvolumeclaims"),
        list::<StorageClass>(client, "storageclasses"),
        list::<Namespace>(client, "namespaces"),
        list::<Service>(client, "services"),
        list::<ReplicationController>(client, "replicationcontrollers"),
        list::<ReplicaSet>(client, "replicasets"),
        list::<StatefulSet>(client, "statefulsets"),
    )?;
    listers.pvcs.replace(pvcs);
    listers.storage_classes.replace(scs);
    listers.namespaces.replace(nss);
    listers.services.replace(svcs);
    listers.replication_controllers.replace(rcs);
    listers.replica_sets.replace(rss);
    listers.stateful_sets.replace(sts);
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let events = call(
        "events",
        events.list(&ListParams::default().fields(&format!(
            "involvedObject.name={name},reason=FailedScheduling"
        ))),
    )
    .await?
    .items;

    let uid = target.metadata.uid.clone().unwrap_or_default();
    let mut explanation = describe(&target, &events);
    let handle = Handle {
        client: Some(client.clone()),
        listers,
    };
    let fw = match config {
        None => default_profile(&handle),
        Some(config) => {
            let wanted = &explanation.scheduler_name;
            let profile = config
                .profiles
                .iter()
                .find(|p| &p.scheduler_name == wanted)
                .ok_or_else(|| {
                    let names: Vec<&str> = config
                        .profiles
                        .iter()
                        .map(|p| p.scheduler_name.as_str())
                        .collect();
                    Error::NoProfile(wanted.clone(), names.join(", "))
                })?;
            explanation.from_config = true;
            profile
                .build(&crate::plugins::in_tree_registry(), &handle)
                .map_err(|e| Error::Profile(wanted.clone(), e))?
        }
    };
    let (snapshot, nominated) = snapshot_without(nodes, pods, &uid);
    let mut pending = target;
    if let Some(spec) = pending.spec.as_mut() {
        spec.node_name = None;
    }
    let info = PodInfo::new(Arc::new(pending));
    explanation.evaluation = evaluate(&fw, &snapshot, &info, nominated);
    Ok(explanation)
}

/// The scheduler's cache built from listed nodes and pods (bound, unfinished pods on
/// their nodes), leaving out the pod `uid`; and the pods nominated by preemption.
pub fn snapshot_without(
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    uid: &str,
) -> (Arc<Snapshot>, Option<NominatedPods>) {
    let mut cache = Cache::new();
    for n in nodes {
        cache.upsert_node(n);
    }
    let mut nominated: HashMap<String, Vec<PodInfo>> = HashMap::new();
    for p in pods {
        if p.metadata.uid.as_deref() == Some(uid) || is_terminal(&p) {
            continue;
        }
        if node_name(&p).is_some() {
            cache.upsert_pod(Arc::new(p));
        } else if let Some(node) = p
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty())
        {
            nominated
                .entry(node)
                .or_default()
                .push(PodInfo::new(Arc::new(p)));
        }
    }
    let nominated = (!nominated.is_empty()).then_some(NominatedPods(nominated));
    (cache.snapshot(), nominated)
}

/// What the API says about the pod's scheduling (its evaluation left empty).
fn describe(pod: &Pod, events: &[Event]) -> Explanation {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref();
    let pod_scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        });
    let uid = pod.metadata.uid.as_deref();
    let failed_scheduling = events
        .iter()
        .filter(|e| e.involved_object.uid.is_none() || e.involved_object.uid.as_deref() == uid)
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.message.clone());
    Explanation {
        pod: format!("{ns}/{name}"),
        scheduler_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_owned()),
        node: node_name(pod).map(str::to_owned),
        nominated_node: status
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty()),
        pod_scheduled,
        failed_scheduling,
        from_config: false,
        evaluation: Evaluation::default(),
    }
}

fn verdict_text(s: &Status) -> String {
    match s.code() {
        Code::Success => "feasible".to_owned(),
        code => {
            let plugin = if s.plugin().is_empty() {
                "-"
            } else {
                s.plugin()
            };
            format!("{plugin} ({code:?}): {}", s.reasons().join(", "))
        }
    }
}

/// Left-aligned columns separated by three spaces, as kubectl prints tables.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.evaluation;
        writeln!(f, "Pod:                {}", self.pod)?;
        writeln!(f, "Scheduler:          {}", self.scheduler_name)?;
        writeln!(
            f,
            "Node:               {}",
            self.node.as_deref().unwrap_or("<none>")
        )?;
        if let Some(n) = &self.nominated_node {
            writeln!(f, "Nominated node:     {n}")?;
        }
        match &self.pod_scheduled {
            Some((status, reason, message)) => {
                let mut line = status.clone();
                if !reason.is_empty() {
                    let _ = write!(line, " ({reason})");
                }
                if !message.is_empty() {
                    let _ = write!(line, ": {message}");
                }
                writeln!(f, "PodScheduled:       {line}")?
            }
            None => writeln!(f, "PodScheduled:       <none>")?,
        }
        writeln!(
            f,
            "FailedScheduling:   {}",
            self.failed_scheduling.as_deref().unwrap_or("<none>")
        )?;
        if self.from_config {
            writeln!(
                f,
                "Profile:            {} (from the given configuration)",
                self.scheduler_name
            )?;
        } else if self.scheduler_name != DEFAULT_SCHEDULER_NAME {
            writeln!(
                f,
                "Note: the pod asks for scheduler {:?}; this is the {DEFAULT_SCHEDULER_NAME} profile's view.",
                self.scheduler_name
            )?;
        }
        if let Some(s) = &e.pre_enqueue {
            writeln!(
                f,
                "Not queued: {} (the scheduler does not try the pod until this clears)",
                verdict_text(s)
            )?;
        }
        writeln!(f)?;
        let evaluated_as = if self.node.is_some() {
            "as if unscheduled, without itself on its node"
        } else {
            "as pending"
        };
        writeln!(
            f,
            "Filter ({} nodes, evaluated {evaluated_as}):",
            e.verdicts.len()
        )?;
        if let Some(s) = &e.pre_filter {
            writeln!(f, "PreFilter rejected the pod: {}", verdict_text(s))?;
        }
        let mut rows = vec![vec!["NODE".to_owned(), "VERDICT".to_owned()]];
        rows.extend(
            e.verdicts
                .iter()
                .map(|v| vec![v.node.clone(), verdict_text(&v.status)]),
        );
        f.write_str(&table(&rows))?;
        let want = num_feasible_nodes_to_find(e.verdicts.len());
        if want < e.verdicts.len() {
            writeln!(
                f,
                "(In a cycle the scheduler stops filtering after {want} feasible nodes, starting where its last cycle stopped, so it may pick another feasible node.)"
            )?;
        }
        writeln!(f)?;
        if let Some(s) = &e.score_error {
            writeln!(f, "Scoring failed: {}", verdict_text(s))?;
        }
        let sc = &e.scores;
        if !sc.is_empty() {
            writeln!(f, "Scores (normalized score × weight = weighted):")?;
            let mut head = vec!["NODE".to_owned()];
            head.extend(sc.plugins.iter().map(|(p, w)| format!("{p}(×{w})")));
            head.push("TOTAL".to_owned());
            let mut rows = vec![head];
            let n = sc.len();
            for i in 0..n {
                let mut row = vec![sc.name(i).to_owned()];
                for (p, (_, w)) in sc.plugins.iter().enumerate() {
                    let s = sc.normalized[p * n + i];
                    row.push(format!("{s}×{w}={}", s * w));
                }
                row.push(sc.totals[i].to_string());
                rows.push(row);
            }
            f.write_str(&table(&rows))?;
            writeln!(f)?;
        }
        match e.best.as_slice() {
            [] => writeln!(
                f,
                "Would pick: <none> (no node passes every filter; the scheduler tries preemption next)"
            ),
            [one] => writeln!(f, "Would pick: {one}"),
            many => writeln!(
                f,
                "Would pick: one of {} (tied; the scheduler breaks ties at random)",
                many.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::helper::test_util::pod_named;

    fn node(name: &str, cpu: &str, taint: bool) -> Node {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
                       "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}});
        if taint {
            n["spec"] =
                json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]});
        }
        serde_json::from_value(n).unwrap()
    }

    fn cpu(c: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": c}}}]})
    }

    fn bound(name: &str, uid: &str, node: &str, c: &str) -> Pod {
        let mut p = (*pod_named(name, cpu(c)).pod).clone();
        p.metadata.uid = Some(uid.into());
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p
    }

    #[test]
    fn every_node_gets_its_rejection() {
        let fw = default_profile(&Handle::default());
        let (snap, nominated) = snapshot_without(
            vec![node("a", "4", false), node("b", "64", true)],
            vec![],
            "",
        );
        let e = evaluate(&fw, &snap, &pod_named("big", cpu("8")), nominated);
        let verdicts: Vec<String> = e.verdicts.iter().map(|v| verdict_text(&v.status)).collect();
        assert_eq!(
            verdicts,
            [
                "NodeResourcesFit (UnschedulableAndUnresolvable): Insufficient cpu",
                "TaintToleration (UnschedulableAndUnresolvable): node(s) had untolerated taint(s)"
            ]
        );
        assert!(e.best.is_empty() && e.scores.is_empty());
    }

    #[test]
    fn a_bound_pod_is_evaluated_without_itself() {
        let fw = default_profile(&Handle::default());
        // The pod fills node a; were it counted, b (empty) would win.
        let me = bound("me", "u1", "a", "3");
        let other = bound("other", "u2", "b", "1");
        let (snap, nominated) = snapshot_without(
            vec![node("a", "4", false), node("b", "4", false)],
            vec![me.clone(), other],
            "u1",
        );
        let mut pending = me;
        pending.spec.as_mut().unwrap().node_name = None;
        let e = evaluate(&fw, &snap, &PodInfo::new(Arc::new(pending)), nominated);
        assert_eq!(e.best, ["a"]);
        assert_eq!(e.scores.len(), 2);
        let a = e.scores.position("a").unwrap();
        assert_eq!(
            e.scores.totals[a],
            e.scores.weighted(a).map(|(_, s)| s).sum::<i64>()
        );
        let text = Explanation {
            pod: "default/me".into(),
            scheduler_name: DEFAULT_SCHEDULER_NAME.into(),
            node: Some("a".into()),
            nominated_node: None,
            pod_scheduled: None,
            failed_scheduling: None,
            from_config: false,
            evaluation: e,
        }
        .to_string();
        assert!(text.contains("Would pick: a\n"), "{text}");
        assert!(text.contains("NodeResourcesFit(×1)"), "{text}");
    }
}
