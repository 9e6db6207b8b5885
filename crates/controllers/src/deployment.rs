//! The Deployment controller (upstream `deployment-controller`): one ReplicaSet per pod
//! template revision, named `<deployment>-<pod-template-hash>`, carrying the revision
//! annotations `kubectl rollout history/undo` read; RollingUpdate (maxSurge /
//! maxUnavailable) and Recreate rollouts; proportional scaling; paused deployments;
//! revisionHistoryLimit cleanup; and the status and conditions `kubectl rollout status`
//! reads (`Available`, `Progressing` with its deadline, `ReplicaFailure`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::podutil::{self, POD_TEMPLATE_HASH};
use crate::streams::touched;
use crate::Context;

const CONTROLLER: &str = "deployment-controller";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations never copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

struct Shared {
    cx: Context,
    sets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    recorder: podutil::Events,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (sets, rs_events) = cx
        .informers
        .all::<ReplicaSet>(watcher::Config::default())
        .await;
    let controller = Controller::new(
        Api::<Deployment>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let mapper_store = deployments.clone();
    let controller = controller
        .watches_shared_stream(touched(rs_events), move |rs: Arc<ReplicaSet>| {
            owners_of(&mapper_store, &rs)
        });
    let shared = Arc::new(Shared {
        recorder: podutil::Events::new(cx.client.clone(), CONTROLLER),
        cx,
        sets,
        deployments,
    });
    controller
        .run(
            crate::metrics::queue().reconciler(|d: Arc<Deployment>, s: Arc<Shared>| async move {
                if s.sets.wait_until_ready().await.is_err() {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                reconcile(d, s).await
            }),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

fn owners_of(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = podutil::controller_of(&rs.metadata) {
        if r.kind == "Deployment" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| podutil::selector_matches(Some(&d.spec.selector), rs.metadata.labels.as_ref()))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("hash collision for replica set {0}; collisionCount raised")]
    Collision(String),
}

fn error_policy(d: Arc<Deployment>, error: &Error, _: Arc<Shared>) -> Action {
    tracing::warn!(controller = CONTROLLER, name = %d.name_any(), %error, "sync failed");
    Action::requeue(Duration::from_millis(500))
}

// ---- pure helpers ------------------------------------------------------------------

fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// maxSurge and maxUnavailable resolved against the replicas (upstream
/// `ResolveFenceposts`: both 0 would block, so unavailable becomes 1).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let n = replicas(d);
    let surge = podutil::scaled(ru.and_then(|r| r.max_surge.as_ref()), "25%", n, true);
    let unavailable = podutil::scaled(ru.and_then(|r| r.max_unavailable.as_ref()), "25%", n, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn max_surge(d: &Deployment) -> i32 {
    if is_rolling(d) {
        fenceposts(d).0
    } else {
        0
    }
}

fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn annotation_i32(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// Whether two templates are equal but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(POD_TEMPLATE_HASH);
                if l.is_empty() {
                    m.labels = None;
                }
            }
        }
        t
    };
    podutil::semantically_equal(&strip(a), &strip(b))
}

/// Upstream `NewRSNewReplicas`: how big the new ReplicaSet may be now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    if !is_rolling(d) {
        return replicas(d);
    }
    let current: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let max_total = replicas(d) + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(replicas(d) - rs_replicas(new_rs));
    rs_replicas(new_rs) + up.max(0)
}

fn condition<'a>(st: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = podutil::now();
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Upstream `SetDeploymentCondition`: same status and reason leave it as is; same status
/// keeps the transition time.
fn set_condition(st: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = condition(st, c.type_.as_deref().unwrap_or_default()) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(st, c.type_.as_deref().unwrap_or_default());
    st.conditions.get_or_insert_default().push(c);
}

fn remove_condition(st: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = st.conditions.as_mut() {
        cs.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

/// A count as upstream serializes it (`omitempty`: zero is absent).
fn nz(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// Upstream `calculateStatus`.
fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let st = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total: i32 = all.iter().map(|r| st(r).replicas).sum();
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nz(total),
        updated_replicas: nz(new_rs.map(|r| st(r).replicas).unwrap_or(0)),
        ready_replicas: nz(all.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum()),
        available_replicas: nz(available),
        unavailable_replicas: nz((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    status
}

/// Upstream `DeploymentComplete`.
pub fn complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let n = replicas(d);
    let g = |v: Option<i32>| v.unwrap_or(0);
    g(st.updated_replicas) == n
        && g(st.replicas) == n
        && g(st.available_replicas) == n
        && st.observed_generation >= d.metadata.generation
}

/// Upstream `DeploymentProgressing`.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    match d.spec.progress_deadline_seconds {
        Some(i32::MAX) => None,
        Some(s) => Some(s),
        None => Some(600),
    }
}

/// When the deployment times out (None: it cannot, or the rollout is done).
fn timeout_at(d: &Deployment, st: &DeploymentStatus) -> Option<Timestamp> {
    let secs = progress_deadline(d)?;
    let c = condition(st, "Progressing")?;
    if c.reason.as_deref() == Some("NewReplicaSetAvailable")
        || c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0;
    Some(from + Duration::from_secs(secs.max(0) as u64))
}

/// Upstream `GetReplicaSetProportion` (via `getReplicaSetFraction`).
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if replicas(d) == 0 {
        -rs_replicas(rs)
    } else {
        let deployment_replicas = replicas(d) + max_surge(d);
        let annotated = annotation_i32(rs, MAX_REPLICAS)
            .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if annotated == 0 {
            0
        } else {
            let size = (f64::from(rs_replicas(rs)) * f64::from(deployment_replicas)
                / f64::from(annotated))
            .round() as i32;
            size - rs_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

// ---- the sync ----------------------------------------------------------------------

/// One sync's view: the deployment and its ReplicaSets, with the writes it makes.
struct Sync<'a> {
    s: &'a Shared,
    d: Deployment,
    ns: String,
}

impl Sync<'_> {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.s.cx.client.clone(), &self.ns)
    }

    /// Scales `rs` to `n` (and stamps the replicas annotations), with an Event.
    async fn scale(&self, rs: &mut ReplicaSet, n: i32) -> Result<bool, Error> {
        let desired = replicas(&self.d).to_string();
        let max = (replicas(&self.d) + max_surge(&self.d)).to_string();
        let from = rs_replicas(rs);
        let ann = rs.metadata.annotations.get_or_insert_default();
        let ann_changed =
            ann.get(DESIRED_REPLICAS) != Some(&desired) || ann.get(MAX_REPLICAS) != Some(&max);
        if from == n && !ann_changed {
            return Ok(false);
        }
        ann.insert(DESIRED_REPLICAS.into(), desired);
        ann.insert(MAX_REPLICAS.into(), max);
        rs.spec.replicas = Some(n);
        *rs = self
            .rs_api()
            .replace(&rs.name_any(), &PostParams::default(), rs)
            .await?;
        if from != n {
            let dir = if n > from { "up" } else { "down" };
            podutil::event(
                &self.s.recorder,
                &self.d,
                false,
                "ScalingReplicaSet",
                format!(
                    "Scaled {dir} replica set {} from {from} to {n}",
                    rs.name_any()
                ),
            )
            .await;
        }
        Ok(from != n)
    }

    /// The ReplicaSets this deployment owns, after adoption and release (upstream
    /// `getReplicaSetsForDeployment`).
    async fn claim(&self) -> Result<Vec<ReplicaSet>, Error> {
        let uid = self.d.uid().unwrap_or_default();
        let owner = podutil::controller_ref(&self.d);
        let mut out = Vec::new();
        for rs in self.s.sets.state() {
            if rs.namespace().as_deref() != Some(self.ns.as_str()) {
                continue;
            }
            let matches =
                podutil::selector_matches(Some(&self.d.spec.selector), rs.metadata.labels.as_ref());
            match podutil::controller_of(&rs.metadata) {
                Some(r) if r.uid == uid => {
                    if matches {
                        out.push((*rs).clone());
                    } else {
                        let mut released = (*rs).clone();
                        if let Some(refs) = released.metadata.owner_references.as_mut() {
                            refs.retain(|r| r.uid != uid);
                        }
                        self.rs_api()
                            .replace(&rs.name_any(), &PostParams::default(), &released)
                            .await?;
                    }
                }
                None if matches
                    && rs.metadata.deletion_timestamp.is_none()
                    && self.d.metadata.deletion_timestamp.is_none() =>
                {
                    let mut adopted = (*rs).clone();
                    adopted
                        .metadata
                        .owner_references
                        .get_or_insert_default()
                        .push(owner.clone());
                    out.push(
                        self.rs_api()
                            .replace(&rs.name_any(), &PostParams::default(), &adopted)
                            .await?,
                    );
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Splits the ReplicaSets into the new one (template equal to the deployment's) and
    /// the old ones; with `create`, makes the new one when missing. Syncs revisions.
    async fn new_and_old(
        &mut self,
        mut sets: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        sets.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        let pos = sets.iter().position(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|t| equal_ignore_hash(t, &self.d.spec.template))
        });
        let existing = pos.map(|i| sets.remove(i));
        let old = sets;
        let max_old = old
            .iter()
            .map(|r| revision_of(&r.metadata))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let new_rs = match existing {
            Some(mut rs) => {
                let mut changed = copy_annotations(&self.d, &mut rs);
                let cur = revision_of(&rs.metadata);
                if cur < new_revision {
                    let ann = rs.metadata.annotations.get_or_insert_default();
                    if cur > 0 {
                        let hist = ann.get(REVISION_HISTORY).cloned().unwrap_or_default();
                        let hist = if hist.is_empty() {
                            cur.to_string()
                        } else {
                            format!("{hist},{cur}")
                        };
                        ann.insert(REVISION_HISTORY.into(), hist);
                    }
                    ann.insert(REVISION.into(), new_revision.to_string());
                    changed = true;
                }
                if rs.spec.min_ready_seconds != self.d.spec.min_ready_seconds {
                    rs.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                    changed = true;
                }
                if changed {
                    rs = self
                        .rs_api()
                        .replace(&rs.name_any(), &PostParams::default(), &rs)
                        .await?;
                }
                Some(rs)
            }
            None if create => Some(self.create_new(&old, new_revision).await?),
            None => None,
        };
        if let Some(rs) = &new_rs {
            self.set_revision(rs).await?;
            if progress_deadline(&self.d).is_some()
                && condition(
                    self.d.status.as_ref().unwrap_or(&Default::default()),
                    "Progressing",
                )
                .is_none()
            {
                let mut st = self.d.status.clone().unwrap_or_default();
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        format!("Found new replica set \"{}\"", rs.name_any()),
                    ),
                );
                self.d.status = Some(st);
            }
        }
        Ok((new_rs, old))
    }

    /// Records the new ReplicaSet's revision on the deployment.
    async fn set_revision(&mut self, rs: &ReplicaSet) -> Result<(), Error> {
        let rev = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .cloned()
            .unwrap_or_default();
        let ann = self.d.metadata.annotations.get_or_insert_default();
        if rev.is_empty() || ann.get(REVISION) == Some(&rev) {
            return Ok(());
        }
        ann.insert(REVISION.into(), rev);
        let api: Api<Deployment> = Api::namespaced(self.s.cx.client.clone(), &self.ns);
        let status = self.d.status.clone();
        self.d = api
            .replace(&self.d.name_any(), &PostParams::default(), &self.d)
            .await?;
        self.d.status = status;
        Ok(())
    }

    async fn create_new(&mut self, old: &[ReplicaSet], revision: i64) -> Result<ReplicaSet, Error> {
        let d = &self.d;
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = podutil::template_hash(&d.spec.template, collision);
        let mut template = d.spec.template.clone();
        template
            .metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", d.name_any());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![podutil::controller_ref(d)]),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        copy_annotations(d, &mut rs);
        let ann = rs.metadata.annotations.get_or_insert_default();
        ann.insert(REVISION.into(), revision.to_string());
        ann.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
        ann.insert(
            MAX_REPLICAS.into(),
            (replicas(d) + max_surge(d)).to_string(),
        );
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&rs)).collect();
        let n = new_rs_new_replicas(d, &all, &rs);
        rs.spec.replicas = Some(n);
        let created = match self.rs_api().create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.rs_api().get(&name).await?;
                let ours = podutil::controlled_by(&existing.metadata, &d.uid().unwrap_or_default());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| equal_ignore_hash(t, &d.spec.template));
                if ours && same {
                    return Ok(existing);
                }
                // A collision: the next hash differs.
                let mut st = d.status.clone().unwrap_or_default();
                st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                let mut upd = d.clone();
                upd.status = Some(st);
                let api: Api<Deployment> = Api::namespaced(self.s.cx.client.clone(), &self.ns);
                api.replace_status(&d.name_any(), &PostParams::default(), &upd)
                    .await?;
                return Err(Error::Collision(name));
            }
            Err(e) => {
                if progress_deadline(d).is_some() {
                    let mut st = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut st,
                        new_condition(
                            "Progressing",
                            "False",
                            "ReplicaSetCreateError",
                            format!("Failed to create new replica set \"{name}\": {e}"),
                        ),
                    );
                    let mut upd = d.clone();
                    upd.status = Some(st);
                    let api: Api<Deployment> = Api::namespaced(self.s.cx.client.clone(), &self.ns);
                    let _ = api
                        .replace_status(&d.name_any(), &PostParams::default(), &upd)
                        .await;
                }
                return Err(e.into());
            }
        };
        if n > 0 {
            podutil::event(
                &self.s.recorder,
                d,
                false,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {n}"),
            )
            .await;
        }
        if progress_deadline(d).is_some() {
            let mut st = self.d.status.clone().unwrap_or_default();
            set_condition(
                &mut st,
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{name}\""),
                ),
            );
            self.d.status = Some(st);
        }
        Ok(created)
    }

    /// Upstream `scale`: a scaling event while paused or mid-rollout, proportionally.
    async fn scale_proportionally(
        &self,
        new_rs: &mut Option<ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> Result<(), Error> {
        let d = &self.d;
        let n = replicas(d);
        // One active ReplicaSet (or none): it takes all the replicas.
        let mut active: Vec<&mut ReplicaSet> = new_rs
            .iter_mut()
            .chain(old.iter_mut())
            .filter(|r| rs_replicas(r) > 0)
            .collect();
        if active.len() <= 1 {
            let target = match active.pop() {
                Some(r) => r,
                None => match new_rs.as_mut() {
                    Some(r) => r,
                    None => match old.last_mut() {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                },
            };
            if rs_replicas(target) != n {
                self.scale(target, n).await?;
            }
            return Ok(());
        }
        drop(active);
        // The new ReplicaSet is saturated: the old ones go.
        if let Some(rs) = new_rs.as_ref() {
            if annotation_i32(rs, DESIRED_REPLICAS) == Some(n)
                && rs_replicas(rs) == n
                && rs_available(rs) == n
            {
                for rs in old.iter_mut().filter(|r| rs_replicas(r) > 0) {
                    self.scale(rs, 0).await?;
                }
                return Ok(());
            }
        }
        if !is_rolling(d) {
            return Ok(());
        }
        let mut all: Vec<&mut ReplicaSet> = new_rs
            .iter_mut()
            .chain(old.iter_mut())
            .filter(|r| rs_replicas(r) > 0)
            .collect();
        let total: i32 = all.iter().map(|r| rs_replicas(r)).sum();
        let allowed = if n > 0 { n + max_surge(d) } else { 0 };
        let to_add = allowed - total;
        if to_add == 0 {
            return Ok(());
        }
        // Largest first (newer first scaling up, older first scaling down).
        all.sort_by(|a, b| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| {
                if to_add > 0 {
                    tb.cmp(&ta)
                } else {
                    ta.cmp(&tb)
                }
            })
        });
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::new();
        for rs in all.iter() {
            let p = proportion(rs, d, to_add, added);
            sizes.push(rs_replicas(rs) + p);
            added += p;
        }
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in all.into_iter().zip(sizes) {
            self.scale(rs, size).await?;
        }
        Ok(())
    }

    /// Upstream `rolloutRolling`'s two halves; true when something was scaled.
    async fn rolling(
        &self,
        new_rs: &mut ReplicaSet,
        old: &mut [ReplicaSet],
    ) -> Result<bool, Error> {
        let d = &self.d;
        let n = replicas(d);
        // Scale the new ReplicaSet up (or down to the target).
        if rs_replicas(new_rs) != n {
            let target = if rs_replicas(new_rs) > n {
                n
            } else {
                let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&*new_rs)).collect();
                new_rs_new_replicas(d, &all, new_rs)
            };
            if self.scale(new_rs, target).await? {
                return Ok(true);
            }
        }
        // Scale old ReplicaSets down as far as availability allows.
        let old_count: i32 = old.iter().map(rs_replicas).sum();
        if old_count == 0 {
            return Ok(false);
        }
        let all_count = old_count + rs_replicas(new_rs);
        let min_available = n - max_unavailable(d);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // First the old pods that are unavailable anyway, oldest ReplicaSet first.
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_scaled_down {
                break;
            }
            let unhealthy = rs_replicas(rs) - rs_available(rs);
            if rs_replicas(rs) == 0 || unhealthy <= 0 {
                continue;
            }
            let down = (max_scaled_down - total).min(unhealthy);
            let to = rs_replicas(rs) - down;
            self.scale(rs, to).await?;
            total += down;
        }
        // Then available ones, keeping minAvailable.
        let available: i32 = old
            .iter()
            .map(|r| rs_available(r).min(rs_replicas(r)))
            .sum::<i32>()
            + rs_available(new_rs);
        if available > min_available {
            let mut budget = available - min_available;
            for rs in old.iter_mut() {
                if budget <= 0 {
                    break;
                }
                if rs_replicas(rs) == 0 {
                    continue;
                }
                let down = rs_replicas(rs).min(budget);
                let to = rs_replicas(rs) - down;
                self.scale(rs, to).await?;
                budget -= down;
                total += down;
            }
        }
        Ok(total > 0)
    }

    /// Upstream `cleanupDeployment`: old, empty ReplicaSets beyond revisionHistoryLimit.
    async fn cleanup(&self, old: &[ReplicaSet]) -> Result<(), Error> {
        let limit = self.d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        let diff = cleanable.len() - limit;
        cleanable.sort_by_key(|r| revision_of(&r.metadata));
        for rs in cleanable.into_iter().take(diff) {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation > st.observed_generation
            {
                continue;
            }
            match self
                .rs_api()
                .delete(&rs.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the status and conditions (upstream `syncRolloutStatus`); returns when to
    /// look again for the progress deadline.
    async fn rollout_status(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        paused_sync: bool,
    ) -> Result<Action, Error> {
        let d = &self.d;
        let all: Vec<&ReplicaSet> = new_rs.into_iter().chain(old.iter()).collect();
        let mut st = calculate_status(d, &all, new_rs);
        let paused = d.spec.paused == Some(true);
        if progress_deadline(d).is_none() {
            remove_condition(&mut st, "Progressing");
        } else if !paused_sync {
            let cur = condition(&st, "Progressing").cloned();
            let done = st.replicas == st.updated_replicas
                && cur.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
            if !done {
                let name = new_rs.map(|r| r.name_any()).unwrap_or_default();
                if complete(d, &st) {
                    set_condition(
                        &mut st,
                        new_condition(
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            format!("ReplicaSet \"{name}\" has successfully progressed."),
                        ),
                    );
                } else if progressing(d, &st) {
                    let mut c = new_condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        format!("ReplicaSet \"{name}\" is progressing."),
                    );
                    if let Some(cur) = cur.as_ref().filter(|c| c.status.as_deref() == Some("True"))
                    {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut st, "Progressing");
                    st.conditions.get_or_insert_default().push(c);
                } else if timeout_at(d, &st).is_some_and(|t| t <= Timestamp::now()) {
                    set_condition(
                        &mut st,
                        new_condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{name}\" has timed out progressing."),
                        ),
                    );
                    podutil::event(
                        &self.s.recorder,
                        d,
                        true,
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{name}\" has timed out progressing."),
                    )
                    .await;
                }
            }
        }
        // Paused / resumed.
        if progress_deadline(d).is_some() {
            let reason = condition(&st, "Progressing").and_then(|c| c.reason.clone());
            if paused && reason.as_deref() != Some("DeploymentPaused") {
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "Unknown",
                        "DeploymentPaused",
                        "Deployment is paused".into(),
                    ),
                );
            } else if !paused && reason.as_deref() == Some("DeploymentPaused") {
                set_condition(
                    &mut st,
                    new_condition(
                        "Progressing",
                        "Unknown",
                        "DeploymentResumed",
                        "Deployment is resumed".into(),
                    ),
                );
            }
        }
        // ReplicaFailure from the ReplicaSets.
        let failure = all.iter().find_map(|r| {
            r.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| {
                    c.type_.as_deref() == Some("ReplicaFailure")
                        && c.status.as_deref() == Some("True")
                })
                .cloned()
        });
        match failure {
            Some(c) => set_condition(
                &mut st,
                new_condition(
                    "ReplicaFailure",
                    "True",
                    c.reason.as_deref().unwrap_or_default(),
                    c.message.unwrap_or_default(),
                ),
            ),
            None => remove_condition(&mut st, "ReplicaFailure"),
        }
        if d.status.as_ref() != Some(&st) {
            let mut upd = d.clone();
            upd.status = Some(st.clone());
            let api: Api<Deployment> = Api::namespaced(self.s.cx.client.clone(), &self.ns);
            match api
                .replace_status(&d.name_any(), &PostParams::default(), &upd)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
                Err(e) => return Err(e.into()),
            }
        }
        // Requeue at the progress deadline.
        let now = Timestamp::now();
        Ok(match timeout_at(d, &st) {
            Some(t) if !complete(d, &st) && !paused => {
                let wait = Duration::try_from(t.duration_since(now)).unwrap_or_default();
                Action::requeue(wait + Duration::from_secs(1))
            }
            _ => Action::await_change(),
        })
    }
}

/// Copies the deployment's annotations (but the controller's own) to the ReplicaSet.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let ann = rs.metadata.annotations.get_or_insert_default();
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || ann.get(k) == Some(v) {
            continue;
        }
        ann.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Whether a ReplicaSet's desired-replicas annotation disagrees with the deployment's
/// replicas (upstream `isScalingEvent`).
fn is_scaling_event(d: &Deployment, sets: &[&ReplicaSet]) -> bool {
    sets.iter()
        .filter(|r| rs_replicas(r) > 0)
        .any(|r| annotation_i32(r, DESIRED_REPLICAS).is_some_and(|n| n != replicas(d)))
}

async fn reconcile(d: Arc<Deployment>, s: Arc<Shared>) -> Result<Action, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let Some(d) = s.deployments.get(&ObjectRef::new(&name).within(&ns)) else {
        return Ok(Action::await_change());
    };
    let empty_selector = d
        .spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && d.spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty);
    if empty_selector {
        podutil::event(
            &s.recorder,
            d.as_ref(),
            true,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let mut sync = Sync {
        s: &s,
        d: (*d).clone(),
        ns,
    };
    let sets = sync.claim().await?;
    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old) = sync.new_and_old(sets, false).await?;
        return sync.rollout_status(new_rs.as_ref(), &old, true).await;
    }
    let set_refs: Vec<&ReplicaSet> = sets.iter().collect();
    let scaling = is_scaling_event(&d, &set_refs);
    let paused = d.spec.paused == Some(true);
    if paused || scaling {
        let (mut new_rs, mut old) = sync.new_and_old(sets, false).await?;
        sync.scale_proportionally(&mut new_rs, &mut old).await?;
        if paused {
            sync.cleanup(&old).await?;
        }
        return sync.rollout_status(new_rs.as_ref(), &old, true).await;
    }
    if is_rolling(&d) {
        let (new_rs, mut old) = sync.new_and_old(sets, true).await?;
        let Some(mut new_rs) = new_rs else {
            return Ok(Action::await_change());
        };
        if sync.rolling(&mut new_rs, &mut old).await? {
            return sync.rollout_status(Some(&new_rs), &old, false).await;
        }
        let all: Vec<&ReplicaSet> = std::iter::once(&new_rs).chain(old.iter()).collect();
        if complete(&d, &calculate_status(&d, &all, Some(&new_rs))) {
            sync.cleanup(&old).await?;
        }
        return sync.rollout_status(Some(&new_rs), &old, false).await;
    }
    // Recreate: old pods all gone before the new ReplicaSet scales up.
    let (new_rs, mut old) = sync.new_and_old(sets, false).await?;
    let mut scaled_down = false;
    for rs in old.iter_mut().filter(|r| rs_replicas(r) > 0) {
        scaled_down |= sync.scale(rs, 0).await?;
    }
    let old_running = old
        .iter()
        .any(|r| r.status.as_ref().is_some_and(|st| st.replicas > 0));
    if scaled_down || old_running {
        return sync.rollout_status(new_rs.as_ref(), &old, false).await;
    }
    let (new_rs, old) = match new_rs {
        Some(rs) => (rs, old),
        None => {
            let sets = sync.claim().await?;
            let (n, o) = sync.new_and_old(sets, true).await?;
            match n {
                Some(n) => (n, o),
                None => return Ok(Action::await_change()),
            }
        }
    };
    let mut new_rs = new_rs;
    let n = replicas(&d);
    sync.scale(&mut new_rs, n).await?;
    let all: Vec<&ReplicaSet> = std::iter::once(&new_rs).chain(old.iter()).collect();
    if complete(&d, &calculate_status(&d, &all, Some(&new_rs))) {
        sync.cleanup(&old).await?;
    }
    sync.rollout_status(Some(&new_rs), &old, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn deployment(n: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: DeploymentSpec {
                replicas: Some(n),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn rs(spec: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            spec: ReplicaSetSpec {
                replicas: Some(spec),
                ..Default::default()
            },
            status: Some(ReplicaSetStatus {
                replicas: spec,
                available_replicas: Some(available),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_like_upstream() {
        // (replicas, surge, unavailable) -> (surge, unavailable)
        let cases = [
            (10, pct("25%"), pct("25%"), (3, 2)),
            (1, pct("25%"), pct("25%"), (1, 0)),
            (4, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (3, IntOrString::Int(2), pct("50%"), (2, 1)),
        ];
        for (n, s, u, want) in cases {
            assert_eq!(fenceposts(&deployment(n, s, u)), want, "{n}");
        }
        let d = deployment(1, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 1);
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(10, pct("25%"), pct("25%"));
        let old = rs(10, 10);
        let new = rs(0, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
        let old = rs(8, 8);
        let new = rs(3, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 5);
        let old = rs(10, 10);
        let new = rs(3, 0);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
    }

    #[test]
    fn status_and_completion() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.metadata.generation = Some(2);
        let new = rs(3, 3);
        let st = calculate_status(&d, &[&new], Some(&new));
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.available_replicas,
                st.unavailable_replicas
            ),
            (Some(3), Some(3), Some(3), None)
        );
        assert!(complete(&d, &st));
        let avail = condition(&st, "Available").unwrap();
        assert_eq!(avail.reason.as_deref(), Some("MinimumReplicasAvailable"));
        let old = rs(3, 1);
        let new = rs(1, 0);
        let st = calculate_status(&d, &[&new, &old], Some(&new));
        assert!(!complete(&d, &st));
        assert_eq!(
            condition(&st, "Available").unwrap().reason.as_deref(),
            Some("MinimumReplicasUnavailable")
        );
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut a = PodTemplateSpec::default();
        let mut b = PodTemplateSpec::default();
        b.metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default()
            .insert(POD_TEMPLATE_HASH.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        a.metadata
            .get_or_insert_default()
            .labels
            .get_or_insert_default()
            .insert("x".into(), "y".into());
        assert!(!equal_ignore_hash(&a, &b));
    }

    #[test]
    fn proportional_scaling_follows_max_replicas() {
        let mut d = deployment(20, IntOrString::Int(0), IntOrString::Int(1));
        let mut a = rs(5, 5);
        a.metadata.annotations = Some([(MAX_REPLICAS.to_string(), "10".to_string())].into());
        assert_eq!(proportion(&a, &d, 10, 0), 5);
        assert_eq!(proportion(&a, &d, 3, 0), 3);
        d.spec.replicas = Some(0);
        assert_eq!(proportion(&a, &d, -10, 0), -5);
    }
}
