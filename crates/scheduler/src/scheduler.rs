//! The running scheduler: watches nodes and pods through the API (kube-rs watchers) into
//! the cache and the queue, runs one scheduling cycle at a time with the profile the
//! pod's `schedulerName` names (pods naming no profile are left alone), binds
//! asynchronously, and reports failures as a FailedScheduling Event (from the profile's
//! scheduler name) and a PodScheduled=False condition.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use thiserror::Error;
use tracing::Instrument;

use crate::cache::Cache;
use crate::config::Configuration;
use crate::events::Recorder;
use crate::framework::{
    AllNodes, ClusterEvent, CycleState, Framework, NominatedPods, PodInfo, Profiles,
};
use crate::leader_election::{self, LeaderElection};
use crate::listers::{Lister, Listers};
use crate::plugins::default_preemption::Pdbs;
use crate::plugins::Handle;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::schedule_one::{schedule_pod, ScheduleError, ScheduleResult};

/// How the scheduler runs.
#[derive(Debug, Clone, Default)]
pub struct SchedulerOptions {
    /// The profiles (each serving its `schedulerName`), backoff and node share; its
    /// `leaderElection` is applied by the caller into `leader_election`.
    pub config: Configuration,
    /// Schedule only while holding this Lease (`None`: always).
    pub leader_election: Option<LeaderElection>,
}

/// A scheduler failure that stops it.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the watch of {what} ended")]
    WatchEnded { what: &'static str },
    #[error("leader election lost")]
    LeadershipLost,
}

struct Scheduler {
    client: Client,
    profiles: Arc<Profiles>,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    /// Posts events in the background.
    events: Recorder,
    /// Unbound pods nominated to a node by preemption: pod UID → (node, pod).
    nominated: Mutex<HashMap<String, (String, PodInfo)>>,
    /// PodDisruptionBudgets by `namespace/name`, and the list cycles read.
    pdbs: Mutex<(HashMap<String, PodDisruptionBudget>, Pdbs)>,
    /// Binding cycles making API calls at once ([`MAX_BINDING_CALLS`]).
    binding: tokio::sync::Semaphore,
}

/// How many binding cycles may talk to the API server at once; the others wait (their
/// pods stay assumed, so scheduling goes on). Over HTTP/1.1 each call in flight is a
/// connection: unbounded, a burst of thousands of binds opened hundreds of TLS
/// connections, and the handshakes and the overloaded server cost more than the binds
/// (upstream bounds the same calls with its client's QPS limit). Measured with
/// `bench schedule` (1000 nodes, 5000 pods): 256 gave ~1,790 pods/s against ~1,480
/// unbounded and ~1,630 with 128, with ~15% less CPU in the server and the scheduler.
const MAX_BINDING_CALLS: usize = 256;

pub(crate) fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::from_second(now.as_secs() as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Scheduler {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn responsible_for(&self, pod: &Pod) -> bool {
        self.profiles.for_pod(pod).is_some()
    }

    fn on_node(&self, event: watcher::Event<Node>, listed: &mut Option<HashSet<String>>) {
        match event {
            watcher::Event::Init => *listed = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let Some(l) = listed.as_mut() {
                    l.insert(node.metadata.name.clone().unwrap_or_default());
                }
                self.cache().upsert_node(node);
                self.queue.move_all(ClusterEvent::NodeAdd);
            }
            watcher::Event::InitDone => {
                let seen = listed.take().unwrap_or_default();
                let mut cache = self.cache();
                for name in cache.node_names() {
                    if !seen.contains(&name) {
                        cache.remove_node(&name);
                    }
                }
            }
            watcher::Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                let existed = self.cache().has_node(&name);
                self.cache().upsert_node(node);
                self.queue.move_all(if existed {
                    ClusterEvent::NodeUpdate
                } else {
                    ClusterEvent::NodeAdd
                });
            }
            watcher::Event::Delete(node) => {
                self.cache()
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
                self.queue.move_all(ClusterEvent::NodeDelete);
            }
        }
    }

    fn on_pdb(&self, event: watcher::Event<PodDisruptionBudget>) {
        let key = |p: &PodDisruptionBudget| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            )
        };
        let mut pdbs = self.pdbs.lock().unwrap_or_else(|e| e.into_inner());
        let (by_key, list) = &mut *pdbs;
        match event {
            // A relist replaces everything at InitDone.
            watcher::Event::Init => by_key.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                by_key.insert(key(&p), p);
            }
            watcher::Event::Delete(p) => {
                by_key.remove(&key(&p));
            }
            watcher::Event::InitDone => {}
        }
        *list = Pdbs(Arc::new(by_key.values().cloned().collect()));
    }

    fn nominated(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, PodInfo)>> {
        self.nominated.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pod_changed(&self, mut pod: Pod) {
        let uid = uid(&pod);
        let nominated_to = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        match nominated_to {
            Some(node) if !assigned(&pod) && !is_terminal(&pod) => {
                let info = PodInfo::new(Arc::new(pod.clone()));
                self.nominated().insert(uid.clone(), (node, info));
            }
            _ => {
                self.nominated().remove(&uid);
            }
        }
        if assigned(&pod) {
            self.queue.delete(&uid);
            if is_terminal(&pod) {
                self.cache().remove_pod(&uid);
                self.queue.move_all(ClusterEvent::AssignedPodDelete);
                return;
            }
            let before = self.cache().pod(&uid);
            // Status-only changes (a kubelet's reports) cannot help any pod fit.
            let relevant = before
                .as_ref()
                .map(|old| crate::queue::bound_change_relevant(old, &mut pod));
            self.cache().upsert_pod(Arc::new(pod));
            match relevant {
                None => self.queue.move_all(ClusterEvent::AssignedPodAdd),
                Some(true) => self.queue.move_all(ClusterEvent::AssignedPodUpdate),
                Some(false) => {}
            }
        } else if self.responsible_for(&pod)
            && !is_terminal(&pod)
            && pod.metadata.deletion_timestamp.is_none()
        {
            self.queue.add_or_update(Arc::new(pod));
        } else {
            self.queue.delete(&uid);
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        let uid = uid(pod);
        self.nominated().remove(&uid);
        self.queue.delete(&uid);
        self.events.forget(&uid);
        if self.cache().has_pod(&uid) {
            self.cache().remove_pod(&uid);
            self.queue.move_all(ClusterEvent::AssignedPodDelete);
        }
    }

    fn on_pod(&self, event: watcher::Event<Pod>, listed: &mut Option<Vec<Pod>>) {
        match event {
            watcher::Event::Init => *listed = Some(Vec::new()),
            watcher::Event::InitApply(pod) => match listed.as_mut() {
                Some(l) => l.push(pod),
                None => self.pod_changed(pod),
            },
            watcher::Event::InitDone => {
                let mut pods = listed.take().unwrap_or_default();
                // Pending pods enter the queue in creation order.
                pods.sort_by(|a, b| {
                    a.metadata
                        .creation_timestamp
                        .cmp(&b.metadata.creation_timestamp)
                });
                for pod in pods {
                    self.pod_changed(pod);
                }
            }
            watcher::Event::Apply(pod) => self.pod_changed(pod),
            watcher::Event::Delete(pod) => self.pod_deleted(&pod),
        }
    }

    /// One scheduling cycle; the binding cycle runs on its own task.
    async fn schedule_one(self: &Arc<Self>, qp: QueuedPod, next_start: &mut usize, rng: &mut u64) {
        let pod = qp.info.clone();
        let Some(fw) = self.profiles.for_pod(&pod.pod).cloned() else {
            // Its schedulerName changed to one we do not serve.
            self.queue.done(pod.uid());
            return;
        };
        let span = tracing::debug_span!("schedule_pod", object.ref = %pod.key());
        let _enter = span.enter();
        let nodes = self.cache().snapshot();
        let mut state = CycleState::default();
        state.write(
            self.pdbs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .clone(),
        );
        {
            let nominated = self.nominated();
            if !nominated.is_empty() {
                let mut by_node: HashMap<String, Vec<PodInfo>> = HashMap::new();
                for (node, info) in nominated.values() {
                    by_node.entry(node.clone()).or_default().push(info.clone());
                }
                state.write(NominatedPods(by_node));
            }
        }
        let mut tiebreak = |n: usize| {
            // xorshift: cheap, good enough to spread ties.
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            (*rng % n.max(1) as u64) as usize
        };
        let result = schedule_pod(&fw, &mut state, &pod, &nodes, next_start, &mut tiebreak);
        let result = match result {
            Ok(r) => r,
            Err(err) => {
                drop(_enter);
                self.handle_failure(&fw, qp, err).await;
                return;
            }
        };
        for (i, total) in result.scores.totals.iter().enumerate() {
            tracing::trace!(pod = %pod.key(), node = %result.scores.name(i), score = total,
                "Calculated node's final score for pod");
        }
        let ScheduleResult {
            node,
            evaluated,
            feasible,
            scores,
        } = result;
        tracing::debug!(node.name = %node, evaluated, feasible, "pod placed");
        // Let go of the snapshot (and the scored nodes) first, so the cache patches the
        // chosen node in place instead of copying it.
        drop(scores);
        drop(nodes);
        state.take::<AllNodes>();
        self.cache().assume_pod(&pod, &node);
        let reserve = fw.run_reserve(&state, &pod, &node);
        if !reserve.is_success() {
            self.cache().forget_pod(pod.uid());
            drop(_enter);
            self.handle_failure(&fw, qp, ScheduleError::Internal(reserve))
                .await;
            return;
        }
        let (permit, _) = fw.run_permit(&state, &pod, &node);
        if !permit.is_success() {
            fw.run_unreserve(&state, &pod, &node);
            self.cache().forget_pod(pod.uid());
            drop(_enter);
            self.handle_failure(&fw, qp, ScheduleError::Internal(permit))
                .await;
            return;
        }
        drop(_enter);
        let this = self.clone();
        tokio::spawn(async move { this.bind(fw, qp, state, node).await }.instrument(span.clone()));
    }

    /// The binding cycle: PreBind, Bind, PostBind; on failure the pod is forgotten and
    /// retried after backoff.
    async fn bind(
        self: Arc<Self>,
        fw: Arc<Framework>,
        qp: QueuedPod,
        state: CycleState,
        node: String,
    ) {
        let Ok(_calls) = self.binding.acquire().await else {
            return;
        };
        let pod: &PodInfo = &qp.info;
        let mut status = fw.run_pre_bind(&pod.pod, &node).await;
        if status.is_success() {
            status = fw.run_bind(&pod.pod, &node).await;
        }
        if !status.is_success() {
            tracing::info!(object.ref = %pod.key(), node.name = %node, error = %status.message(), "binding failed");
            fw.run_unreserve(&state, pod, &node);
            self.cache().forget_pod(pod.uid());
            self.handle_failure(&fw, qp, ScheduleError::Internal(status))
                .await;
            return;
        }
        self.queue.done(pod.uid());
        fw.run_post_bind(&pod.pod, &node);
        let ns = pod.pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.pod.metadata.name.as_deref().unwrap_or_default();
        tracing::debug!(object.ref = %pod.key(), node.name = %node, "bound");
        self.events.record(
            fw.scheduler_name(),
            &pod.pod,
            "Normal",
            "Scheduled",
            &format!("Successfully assigned {ns}/{name} to {node}"),
        );
    }

    async fn handle_failure(&self, fw: &Framework, qp: QueuedPod, err: ScheduleError) {
        let message = err.to_string();
        let rejectors = match &err {
            ScheduleError::Fit(fit) => fit.rejectors.clone(),
            ScheduleError::NoNodes => vec![crate::plugins::node_resources::fit::NAME],
            ScheduleError::Internal(_) => Vec::new(),
        };
        let pod = qp.info.pod.clone();
        tracing::info!(object.ref = %qp.info.key(), reason = %message, "unable to schedule pod");
        if let ScheduleError::Fit(fit) = &err {
            if let Some(nomination) = &fit.nomination {
                self.preempt(fw.scheduler_name(), &pod, nomination).await;
            }
        }
        self.queue.add_unschedulable(qp, rejectors);
        let reason = match err {
            ScheduleError::Internal(_) => "SchedulerError",
            _ => "Unschedulable",
        };
        self.events.record(
            fw.scheduler_name(),
            &pod,
            "Warning",
            "FailedScheduling",
            &message,
        );
        self.set_unschedulable(&pod, reason, &message).await;
    }

    /// Evicts the victims preemption chose and nominates the pod for their node; the
    /// pod is retried when their deletion frees the room.
    async fn preempt(&self, component: &str, pod: &Pod, nomination: &crate::framework::Nomination) {
        let node = &nomination.node;
        tracing::info!(object.ref = %crate::framework::node_info::pod_key(pod), node.name = %node,
            victims = nomination.victims.len(), "preempting");
        for victim in &nomination.victims {
            let ns = victim.metadata.namespace.as_deref().unwrap_or("default");
            let name = victim.metadata.name.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            match api.delete(name, &kube::api::DeleteParams::default()).await {
                Ok(_) => {
                    let message = format!(
                        "Preempted by pod {} on node {node}",
                        pod.metadata.uid.as_deref().unwrap_or_default()
                    );
                    self.events
                        .record(component, victim, "Normal", "Preempted", &message);
                }
                Err(e) => {
                    tracing::info!(object.ref = %format!("{ns}/{name}"), error = %e, "cannot preempt victim")
                }
            }
        }
        self.nominated().insert(
            uid(pod),
            (node.clone(), PodInfo::new(Arc::new(pod.clone()))),
        );
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let patch = json!({"status": {"nominatedNodeName": node}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::debug!(object.ref = %format!("{ns}/{name}"), error = %e, "cannot set nominatedNodeName");
        }
    }

    /// Sets PodScheduled=False with the reason and message (status subresource).
    async fn set_unschedulable(&self, pod: &Pod, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        }) {
            return;
        }
        let transition = match current {
            Some(c) if c.status == "False" => c
                .last_transition_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(now_rfc3339),
            _ => now_rfc3339(),
        };
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": reason, "message": message,
            "lastProbeTime": null, "lastTransitionTime": transition,
        }]}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::debug!(object.ref = %format!("{ns}/{name}"), error = %e, "cannot update the PodScheduled condition");
        }
    }
}

/// Watches every object of a kind, handing each event to `on_event`; a failed watch is
/// retried after a second (the watcher relists).
async fn watch_all<K>(
    api: Api<K>,
    what: &'static str,
    mut on_event: impl FnMut(watcher::Event<K>),
) -> Result<(), Error>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    let mut stream = watcher(api, watcher::Config::default())
        .map_ok(|e| e.modify(strip_managed_fields))
        .boxed();
    while let Some(event) = stream.try_next().await.transpose() {
        match event {
            Ok(e) => on_event(e),
            Err(e) => {
                tracing::warn!(error = %e, "{what} watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Err(Error::WatchEnded { what })
}

/// Drops an object's managedFields as it arrives, as upstream's scheduler informers do:
/// nothing here reads them, and they are often the larger part of a pod or node.
fn strip_managed_fields<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// What the scheduler keeps of a watched pod: everything its plugins, queue and cache read,
/// without what none of them does (managedFields; containers' env, commands, mounts,
/// probes, lifecycle and security context; ephemeral containers; config/secret/projected/
/// downward-API/emptyDir volumes; container statuses), in a copy with exact-size vectors
/// (JSON decoding leaves vectors with spare capacity). A decoded pod is several KiB of
/// k8s-openapi structs, most of it such fields; the scheduler holds every pod of the
/// cluster. The scheduler only patches pods, so nothing trimmed is ever written back.
pub(crate) fn trim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(spec) = pod.spec.as_mut() {
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            *c = Container {
                name: std::mem::take(&mut c.name),
                image: c.image.take(),
                ports: c.ports.take(),
                resources: c.resources.take(),
                resize_policy: c.resize_policy.take(),
                restart_policy: c.restart_policy.take(),
                ..Default::default()
            };
        }
        spec.ephemeral_containers = None;
        if let Some(volumes) = spec.volumes.as_mut() {
            volumes.retain(|v| {
                v.config_map.is_none()
                    && v.secret.is_none()
                    && v.projected.is_none()
                    && v.downward_api.is_none()
                    && v.empty_dir.is_none()
            });
        }
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
    }
    *pod = pod.clone();
}

/// Applies a watch event to a lister (a relist replaces it whole at its end); whether
/// objects changed.
fn feed<K>(lister: &Lister<K>, event: watcher::Event<K>, listed: &mut Vec<K>) -> bool
where
    K: k8s_openapi::Metadata<Ty = kube::api::ObjectMeta>,
{
    match event {
        watcher::Event::Init => {
            listed.clear();
            false
        }
        watcher::Event::InitApply(o) => {
            listed.push(o);
            false
        }
        watcher::Event::InitDone => {
            lister.replace(std::mem::take(listed));
            true
        }
        watcher::Event::Apply(o) => {
            lister.upsert(o);
            true
        }
        watcher::Event::Delete(o) => {
            lister.remove(&o);
            false
        }
    }
}

/// Runs the scheduler until `shutdown` resolves or a watch fails for good.
pub async fn run(
    client: Client,
    options: SchedulerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // A configuration the framework refuses stops us before anything starts.
    let listers = Arc::new(Listers::default());
    let handle = Handle {
        client: Some(client.clone()),
        listers: listers.clone(),
    };
    let config = &options.config;
    let profiles = Arc::new(Profiles::new(
        config.build(&handle)?.into_iter().map(Arc::new).collect(),
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    let election = options.leader_election.clone();
    if let Some(le) = &election {
        tokio::select! {
            _ = leader_election::acquire(&client, le) => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
    let lost = async {
        match &election {
            Some(le) => leader_election::hold(&client, le).await,
            None => std::future::pending().await,
        }
    };
    let sched = Arc::new(Scheduler {
        client: client.clone(),
        queue: SchedulingQueue::with_backoff(
            profiles.clone(),
            config.pod_initial_backoff,
            config.pod_max_backoff,
        ),
        profiles,
        cache: Mutex::new(Cache::new()),
        events: Recorder::start(client.clone()),
        nominated: Mutex::new(HashMap::new()),
        pdbs: Mutex::default(),
        binding: tokio::sync::Semaphore::new(MAX_BINDING_CALLS),
    });

    let nodes = {
        let sched = sched.clone();
        let api: Api<Node> = Api::all(client.clone());
        async move {
            let mut listed = None;
            let mut stream = watcher(api, watcher::Config::default())
                .map_ok(|e| e.modify(strip_managed_fields))
                .boxed();
            while let Some(event) = stream.try_next().await.transpose() {
                match event {
                    Ok(e) => sched.on_node(e, &mut listed),
                    Err(e) => {
                        tracing::warn!(error = %e, "node watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Err::<(), _>(Error::WatchEnded { what: "nodes" })
        }
    };
    let pods = {
        let sched = sched.clone();
        let api: Api<Pod> = Api::all(client.clone());
        async move {
            let mut listed = None;
            let mut stream = watcher(api, watcher::Config::default())
                .map_ok(|e| e.modify(trim_pod))
                .boxed();
            while let Some(event) = stream.try_next().await.transpose() {
                match event {
                    Ok(e) => sched.on_pod(e, &mut listed),
                    Err(e) => {
                        tracing::warn!(error = %e, "pod watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            Err::<(), _>(Error::WatchEnded { what: "pods" })
        }
    };
    let pdbs = {
        let sched = sched.clone();
        watch_all(
            Api::<PodDisruptionBudget>::all(client.clone()),
            "poddisruptionbudgets",
            move |e| sched.on_pdb(e),
        )
    };
    let pvcs = {
        let (sched, listers) = (sched.clone(), listers.clone());
        let mut listed = Vec::new();
        watch_all(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            "persistentvolumeclaims",
            move |e| {
                if feed(&listers.pvcs, e, &mut listed) {
                    sched.queue.move_all(ClusterEvent::PvcChange);
                }
            },
        )
    };
    let pvs = {
        let (sched, listers) = (sched.clone(), listers.clone());
        let mut listed = Vec::new();
        watch_all(
            Api::<PersistentVolume>::all(client.clone()),
            "persistentvolumes",
            move |e| {
                if feed(&listers.pvs, e, &mut listed) {
                    sched.queue.move_all(ClusterEvent::PvChange);
                }
            },
        )
    };
    // Objects plugins only read (namespace labels, the owners default spreading
    // selects by): kept current, no requeue.
    let others = {
        let l = listers.clone();
        let c = client.clone();
        async move {
            macro_rules! keep {
                ($kind:ty, $field:ident, $what:literal) => {{
                    let l = l.clone();
                    let mut listed = Vec::new();
                    watch_all(Api::<$kind>::all(c.clone()), $what, move |e| {
                        feed(&l.$field, e, &mut listed);
                    })
                }};
            }
            tokio::try_join!(
                keep!(Namespace, namespaces, "namespaces"),
                keep!(Service, services, "services"),
                keep!(
                    ReplicationController,
                    replication_controllers,
                    "replicationcontrollers"
                ),
                keep!(ReplicaSet, replica_sets, "replicasets"),
                keep!(StatefulSet, stateful_sets, "statefulsets"),
            )
            .map(|_| ())
        }
    };
    let storage_classes = {
        let (sched, listers) = (sched.clone(), listers.clone());
        let mut listed = Vec::new();
        watch_all(
            Api::<StorageClass>::all(client.clone()),
            "storageclasses",
            move |e| {
                if feed(&listers.storage_classes, e, &mut listed) {
                    sched.queue.move_all(ClusterEvent::StorageClassChange);
                }
            },
        )
    };
    let flush = {
        let sched = sched.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                sched.queue.flush();
            }
        }
    };
    let schedule = {
        let sched = sched.clone();
        async move {
            let mut next_start = 0;
            let mut rng: u64 = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1;
            while let Some(qp) = sched.queue.pop().await {
                sched.schedule_one(qp, &mut next_start, &mut rng).await;
            }
        }
    };
    tracing::info!(profiles = ?sched.profiles.iter().map(|p| p.scheduler_name()).collect::<Vec<_>>(), "scheduler started");
    let result = tokio::select! {
        r = nodes => r,
        r = pods => r,
        r = pdbs => r,
        r = pvcs => r,
        r = pvs => r,
        r = storage_classes => r,
        r = others => r,
        _ = flush => Ok(()),
        _ = schedule => Ok(()),
        _ = lost => Err(Error::LeadershipLost),
        _ = &mut shutdown => Ok(()),
    };
    sched.queue.close();
    if let Some(le) = &election {
        if result.is_ok() {
            leader_election::release(&client, le).await;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::framework::node_info::pod_requests;

    #[test]
    fn a_trimmed_pod_keeps_what_scheduling_reads() {
        let full: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"},
                "annotations": {"k": "v"}, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "r", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update"}]},
            "spec": {
                "schedulerName": "default-scheduler", "priority": 5, "nodeSelector": {"d": "s"},
                "tolerations": [{"key": "t", "operator": "Exists"}],
                "overhead": {"cpu": "50m"},
                "initContainers": [
                    {"name": "init", "image": "busybox", "command": ["true"],
                     "resources": {"requests": {"cpu": "2"}}},
                    {"name": "sidecar", "image": "envoy", "restartPolicy": "Always",
                     "env": [{"name": "E", "value": "1"}],
                     "resources": {"requests": {"memory": "64Mi"}}}],
                "containers": [{"name": "c", "image": "nginx:1.27", "args": ["-g"],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "env": [{"name": "E", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/d"}],
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}},
                    {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "tok", "projected": {"sources": []}},
                    {"name": "cm", "configMap": {"name": "cm"}},
                    {"name": "scratch", "emptyDir": {}}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "a"}},
                     "topologyKey": "kubernetes.io/hostname"}]}},
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule"}],
                "schedulingGates": [{"name": "g"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "n1",
                "conditions": [{"type": "PodScheduled", "status": "False"}],
                "containerStatuses": [{"name": "c", "image": "nginx", "imageID": "",
                    "ready": false, "restartCount": 0}]}
        }))
        .unwrap();
        let mut trimmed = full.clone();
        trim_pod(&mut trimmed);

        for non_zero in [false, true] {
            assert_eq!(
                format!("{:?}", pod_requests(&trimmed, non_zero)),
                format!("{:?}", pod_requests(&full, non_zero))
            );
        }
        assert_eq!(trimmed.metadata.managed_fields, None);
        let mut meta = full.metadata.clone();
        meta.managed_fields = None;
        assert_eq!(trimmed.metadata, meta);
        let (spec, full_spec) = (trimmed.spec.as_ref().unwrap(), full.spec.as_ref().unwrap());
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
        assert_eq!(c.ports, full_spec.containers[0].ports);
        assert_eq!(c.resources, full_spec.containers[0].resources);
        assert!(c.env.is_none() && c.args.is_none() && c.volume_mounts.is_none());
        assert!(c.readiness_probe.is_none());
        let init = spec.init_containers.as_ref().unwrap();
        assert_eq!(init[1].restart_policy.as_deref(), Some("Always"));
        assert!(init[0].command.is_none() && init[1].env.is_none());
        let volumes: Vec<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["data", "eph"]);
        for same in [
            (
                format!("{:?}", spec.affinity),
                format!("{:?}", full_spec.affinity),
            ),
            (
                format!("{:?}", spec.tolerations),
                format!("{:?}", full_spec.tolerations),
            ),
            (
                format!("{:?}", spec.node_selector),
                format!("{:?}", full_spec.node_selector),
            ),
            (
                format!("{:?}", spec.overhead),
                format!("{:?}", full_spec.overhead),
            ),
            (
                format!("{:?}", spec.topology_spread_constraints),
                format!("{:?}", full_spec.topology_spread_constraints),
            ),
            (
                format!("{:?}", spec.scheduling_gates),
                format!("{:?}", full_spec.scheduling_gates),
            ),
            (
                format!("{:?}", spec.priority),
                format!("{:?}", full_spec.priority),
            ),
        ] {
            assert_eq!(same.0, same.1);
        }
        let status = trimmed.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.nominated_node_name.as_deref(), Some("n1"));
        assert_eq!(status.conditions, full.status.as_ref().unwrap().conditions);
        assert!(status.container_statuses.is_none());
    }
}
