//! The ReplicaSet controller (upstream `replicaset-controller`) and, with the same logic
//! over a different kind, the ReplicationController controller (`replication-controller`):
//! keep `spec.replicas` active pods matching the selector — adopting orphans, releasing
//! pods that stopped matching, creating in slow-start batches, deleting the lowest-ranked
//! first — and report replicas, fully labeled, ready and available counts, the observed
//! generation and the `ReplicaFailure` condition.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::podutil::{self, Expectations};
use crate::streams::touched;
use crate::Context;

/// What the controller needs from a replicated kind.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Upstream's controller name (Events' reporting controller).
    const CONTROLLER: &'static str;
    fn selector(&self) -> Option<LabelSelector>;
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn replica_status(&self) -> ReplicaSetStatus;
    fn set_replica_status(&mut self, status: ReplicaSetStatus);
}

impl Replicated for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset-controller";
    fn selector(&self) -> Option<LabelSelector> {
        Some(self.spec.selector.clone())
    }
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }
    fn replica_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }
    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl Replicated for ReplicationController {
    const CONTROLLER: &'static str = "replication-controller";
    fn selector(&self) -> Option<LabelSelector> {
        let spec = self.spec.as_ref()?;
        // An empty selector defaults to the template's labels, as upstream's defaulting.
        let labels = match &spec.selector {
            Some(s) if !s.is_empty() => s.clone(),
            _ => spec.template.as_ref()?.metadata.as_ref()?.labels.clone()?,
        };
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn replica_status(&self) -> ReplicaSetStatus {
        let s = self.status.clone().unwrap_or_default();
        ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| ReplicaSetCondition {
                        type_: Some(c.type_),
                        status: Some(c.status),
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
            terminating_replicas: None,
        }
    }
    fn set_replica_status(&mut self, s: ReplicaSetStatus) {
        self.status = Some(ReplicationControllerStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| ReplicationControllerCondition {
                        type_: c.type_.unwrap_or_default(),
                        status: c.status.unwrap_or_default(),
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
        });
    }
}

struct Shared<K: Replicated> {
    cx: Context,
    pods: Store<Pod>,
    owners: Store<K>,
    expectations: Expectations,
    recorder: podutil::Events,
}

/// Runs the ReplicaSet controller until dropped.
pub async fn run_replicasets(cx: Context) {
    run::<ReplicaSet>(cx).await
}

/// Runs the ReplicationController controller until dropped.
pub async fn run_replication_controllers(cx: Context) {
    run::<ReplicationController>(cx).await
}

async fn run<K: Replicated>(cx: Context) {
    let (pods, pod_events) = cx.informers.all::<Pod>(watcher::Config::default()).await;
    let controller = Controller::new(
        Api::<K>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let owners = controller.store();
    let mapper_owners = owners.clone();
    let controller = controller.watches_shared_stream(touched(pod_events), move |pod: Arc<Pod>| {
        owners_of::<K>(&mapper_owners, &pod)
    });
    let shared = Arc::new(Shared {
        recorder: podutil::Events::new(cx.client.clone(), K::CONTROLLER),
        cx,
        pods: pods.clone(),
        owners,
        expectations: Expectations::default(),
    });
    controller
        .run(
            crate::metrics::queue().reconciler(|obj: Arc<K>, s: Arc<Shared<K>>| async move {
                // Never act on an incomplete pod cache: it would create pods that exist.
                if s.pods.wait_until_ready().await.is_err() {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                reconcile(obj, s).await
            }),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

/// The owners a pod event concerns: its controller if of kind `K`, else (an orphan) every
/// `K` in its namespace whose selector matches it.
fn owners_of<K: Replicated>(owners: &Store<K>, pod: &Pod) -> Vec<ObjectRef<K>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = podutil::controller_of(&pod.metadata) {
        if r.kind == K::kind(&()) && r.api_version == K::api_version(&()) {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    owners
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(ns.as_str()))
        .filter(|o| podutil::selector_matches(o.selector().as_ref(), pod.metadata.labels.as_ref()))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

fn error_policy<K: Replicated>(obj: Arc<K>, error: &Error, s: Arc<Shared<K>>) -> Action {
    tracing::warn!(controller = K::CONTROLLER, name = %obj.name_any(), %error, "sync failed");
    let _ = s;
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile<K: Replicated>(obj: Arc<K>, s: Arc<Shared<K>>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let key = format!("{ns}/{name}");
    // The object may have been deleted since it was queued.
    let Some(obj) = s
        .owners
        .get(&ObjectRef::new(&name).within(&ns))
        .filter(|o| o.uid() == obj.uid())
    else {
        s.expectations.forget(&key);
        return Ok(Action::await_change());
    };
    let Some(selector) = obj.selector() else {
        return Ok(Action::await_change());
    };
    let pod_api: Api<Pod> = Api::namespaced(s.cx.client.clone(), &ns);
    let in_ns: Vec<Arc<Pod>> = s
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let needs_sync = s.expectations.satisfied(&key, |n| {
        in_ns
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .map(|p| p.metadata.deletion_timestamp.is_some())
    });
    let active: Vec<&Pod> = in_ns
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| podutil::is_active(p))
        .collect();
    let owner_ref = podutil::controller_ref(obj.as_ref());
    let deleting = obj.meta().deletion_timestamp.is_some();
    let claimed = podutil::claim_pods(&pod_api, &owner_ref, &selector, active, !deleting).await?;

    let mut manage_err = None;
    if needs_sync && !deleting {
        manage_err = manage_replicas(&s, obj.as_ref(), &key, &claimed, &pod_api).await;
    }

    let now = Timestamp::now();
    let min_ready = obj.min_ready_seconds();
    let old = obj.replica_status();
    let mut status = calculate_status(obj.as_ref(), &claimed, manage_err.as_ref(), now);
    // Keep a condition's transition time while it holds.
    if let (Some(new), Some(prev)) = (&mut status.conditions, &old.conditions) {
        for c in new.iter_mut() {
            if let Some(p) = prev
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
            {
                c.last_transition_time = p.last_transition_time.clone();
            }
        }
    }
    if status != old {
        let mut updated = (*obj).clone();
        updated.set_replica_status(status.clone());
        let api: Api<K> = Api::namespaced(s.cx.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(100)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = manage_err {
        return Err(e.into());
    }
    // Look again when a ready pod turns available.
    let next_available = claimed
        .iter()
        .filter_map(|p| podutil::available_at(p, min_ready))
        .filter(|t| *t > now)
        .min();
    Ok(match next_available {
        Some(t) => Action::requeue(
            Duration::try_from(t.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(50),
        ),
        None => Action::await_change(),
    })
}

/// Creates or deletes pods so that `replicas` are active (upstream `manageReplicas`).
async fn manage_replicas<K: Replicated>(
    s: &Shared<K>,
    obj: &K,
    key: &str,
    pods: &[&Pod],
    api: &Api<Pod>,
) -> Option<kube::Error> {
    let want = obj.replicas().max(0) as usize;
    let have = pods.len();
    if have < want {
        let count = (want - have).min(podutil::BURST_REPLICAS);
        let template = obj.template().cloned().unwrap_or_default();
        let prefix = format!("{}-", obj.name_any());
        let owner = podutil::controller_ref(obj);
        let (made, err) = podutil::slow_start(count, || {
            let pod = podutil::pod_from_template(&template, &prefix, owner.clone());
            async move { api.create(&PostParams::default(), &pod).await }
        })
        .await;
        let names: Vec<String> = made.iter().map(|p| p.name_any()).collect();
        s.expectations.expect(key, names.clone(), Vec::new());
        for n in names {
            podutil::event(
                &s.recorder,
                obj,
                false,
                "SuccessfulCreate",
                format!("Created pod: {n}"),
            )
            .await;
        }
        if let Some(e) = &err {
            podutil::event(
                &s.recorder,
                obj,
                true,
                "FailedCreate",
                format!("Error creating: {e}"),
            )
            .await;
        }
        return err;
    }
    if have > want {
        let count = (have - want).min(podutil::BURST_REPLICAS);
        let victims = podutil::pods_to_delete(pods, pods, count);
        let results = futures::future::join_all(victims.iter().map(|p| async move {
            let name = p.name_any();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(name),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(name),
                Err(e) => Err(e),
            }
        }))
        .await;
        let mut first_err = None;
        let mut deleted = Vec::new();
        for r in results {
            match r {
                Ok(n) => deleted.push(n),
                Err(e) => {
                    podutil::event(
                        &s.recorder,
                        obj,
                        true,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    )
                    .await;
                    first_err.get_or_insert(e);
                }
            }
        }
        s.expectations.expect(key, Vec::new(), deleted.clone());
        for n in deleted {
            podutil::event(
                &s.recorder,
                obj,
                false,
                "SuccessfulDelete",
                format!("Deleted pod: {n}"),
            )
            .await;
        }
        return first_err;
    }
    None
}

/// The status the pods give (upstream `calculateStatus`).
fn calculate_status<K: Replicated>(
    obj: &K,
    pods: &[&Pod],
    manage_err: Option<&kube::Error>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels = obj
        .template()
        .and_then(|t| t.metadata.as_ref()?.labels.as_ref());
    let min_ready = obj.min_ready_seconds();
    let count = |f: &dyn Fn(&Pod) -> bool| pods.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled =
        count(&|p| podutil::has_labels(p.metadata.labels.as_ref(), template_labels));
    let ready = count(&|p| podutil::is_ready(p));
    let available = count(&|p| podutil::is_available(p, min_ready, now));
    let mut conditions: Vec<ReplicaSetCondition> = obj
        .replica_status()
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_.as_deref() != Some("ReplicaFailure"))
        .collect();
    if let Some(e) = manage_err {
        let reason = if (pods.len() as i32) < obj.replicas() {
            "FailedCreate"
        } else {
            "FailedDelete"
        };
        conditions.push(ReplicaSetCondition {
            type_: Some("ReplicaFailure".into()),
            status: Some("True".into()),
            reason: Some(reason.into()),
            message: Some(e.to_string()),
            last_transition_time: Some(podutil::now()),
        });
    }
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: (fully_labeled != 0).then_some(fully_labeled),
        ready_replicas: (ready != 0).then_some(ready),
        available_replicas: (available != 0).then_some(available),
        observed_generation: obj.meta().generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, ReplicationControllerSpec};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    match_expressions: None,
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            },
            status: None,
        }
    }

    fn pod(l: &[(&str, &str)], ready_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(labels(l)),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(
                            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                                Timestamp::from_second(t).unwrap(),
                            ),
                        ),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn status_counts_like_upstream() {
        let full = [("app", "web"), ("tier", "fe")];
        let a = pod(&full, Some(100));
        let b = pod(&full, Some(195));
        let c = pod(&[("app", "web")], None);
        let now = Timestamp::from_second(200).unwrap();
        let st = calculate_status(&rs(3, 10), &[&a, &b, &c], None, now);
        assert_eq!(st.replicas, 3);
        assert_eq!(st.fully_labeled_replicas, Some(2));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(st.conditions, None);
    }

    #[test]
    fn replica_failure_condition_names_the_failed_action() {
        let err = kube::Error::Api(
            kube::core::Status::failure("pods \"x\" is forbidden: exceeded quota", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let now = Timestamp::from_second(0).unwrap();
        let st = calculate_status(&rs(2, 0), &[], Some(&err), now);
        let c = &st.conditions.unwrap()[0];
        assert_eq!(c.type_.as_deref(), Some("ReplicaFailure"));
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
        assert!(c.message.as_deref().unwrap().contains("exceeded quota"));
    }

    #[test]
    fn rc_selector_defaults_to_template_labels_and_status_round_trips() {
        let mut rc = ReplicationController {
            spec: Some(ReplicationControllerSpec {
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "x")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = rc.selector().unwrap();
        assert_eq!(sel.match_labels, Some(labels(&[("app", "x")])));
        assert_eq!(rc.replicas(), 1);
        let st = ReplicaSetStatus {
            replicas: 2,
            ready_replicas: Some(1),
            ..Default::default()
        };
        rc.set_replica_status(st.clone());
        assert_eq!(rc.replica_status(), st);
    }
}
