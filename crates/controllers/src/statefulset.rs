//! The StatefulSet controller (upstream `statefulset-controller`): pods with stable
//! names `<sts>-<ordinal>` (hostname, subdomain, `statefulset.kubernetes.io/pod-name` and
//! `apps.kubernetes.io/pod-index` labels), their PersistentVolumeClaims
//! `<template>-<sts>-<ordinal>` from volumeClaimTemplates (kept or deleted per
//! persistentVolumeClaimRetentionPolicy), OrderedReady (one at a time, in order) or
//! Parallel pod management, ControllerRevisions, RollingUpdate with partition (highest
//! ordinal first) or OnDelete, and status with currentRevision / updateRevision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::history::{self, REVISION_HASH};
use crate::podutil::{self, Expectations};
use crate::streams::touched;
use crate::Context;

const CONTROLLER: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct Shared {
    cx: Context,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: podutil::Events,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (pods, pod_events) = cx.informers.all::<Pod>(watcher::Config::default()).await;
    let controller = Controller::new(
        Api::<StatefulSet>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let mapper = sets.clone();
    let controller = controller.watches_shared_stream(touched(pod_events), move |pod: Arc<Pod>| {
        owners_of(&mapper, &pod)
    });
    let shared = Arc::new(Shared {
        events: podutil::Events::new(cx.client.clone(), CONTROLLER),
        cx,
        sets,
        pods,
        expectations: Expectations::default(),
    });
    controller
        .run(
            crate::metrics::queue().reconciler(
                |sts: Arc<StatefulSet>, s: Arc<Shared>| async move {
                    if s.pods.wait_until_ready().await.is_err() {
                        return Ok(Action::requeue(Duration::from_secs(1)));
                    }
                    reconcile(sts, s).await
                },
            ),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

fn owners_of(store: &Store<StatefulSet>, pod: &Pod) -> Vec<ObjectRef<StatefulSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = podutil::controller_of(&pod.metadata) {
        if r.kind == "StatefulSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| podutil::selector_matches(Some(&d.spec.selector), pod.metadata.labels.as_ref()))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

fn error_policy(sts: Arc<StatefulSet>, error: &Error, _: Arc<Shared>) -> Action {
    tracing::warn!(controller = CONTROLLER, name = %sts.name_any(), %error, "sync failed");
    Action::requeue(Duration::from_secs(1))
}

// ---- pure helpers ------------------------------------------------------------------

/// The ordinal of a pod named `<sts>-<ordinal>`.
pub fn ordinal_of(sts: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(sts)?.strip_prefix('-')?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    rest.parse().ok()
}

/// A claim's name: `<template>-<sts>-<ordinal>`.
pub fn claim_name(template: &str, sts: &str, ordinal: i32) -> String {
    format!("{template}-{sts}-{ordinal}")
}

/// The pod for `ordinal` from `template` at revision `revision` (upstream
/// `newVersionedStatefulSetPod`): identity, labels, and claim volumes.
pub fn pod_for(sts: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let name = format!("{}-{ordinal}", sts.name_any());
    let mut pod = podutil::pod_from_template(template, "", podutil::controller_ref(sts));
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.into());
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = sts.spec.service_name.clone().filter(|s| !s.is_empty());
    let volumes = spec.volumes.get_or_insert_default();
    for t in sts.spec.volume_claim_templates.iter().flatten() {
        let tname = t.name_any();
        volumes.retain(|v| v.name != tname);
        volumes.push(Volume {
            name: tname.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&tname, &sts.name_any(), ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if volumes.is_empty() {
        spec.volumes = None;
    }
    pod
}

fn healthy(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && podutil::is_ready(p)
}

fn revision_of(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

// ---- the sync ----------------------------------------------------------------------

async fn reconcile(sts: Arc<StatefulSet>, s: Arc<Shared>) -> Result<Action, Error> {
    let ns = sts.namespace().unwrap_or_default();
    let name = sts.name_any();
    let key = format!("{ns}/{name}");
    let Some(sts) = s.sets.get(&ObjectRef::new(&name).within(&ns)) else {
        s.expectations.forget(&key);
        return Ok(Action::await_change());
    };
    if sts.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pod_api: Api<Pod> = Api::namespaced(s.cx.client.clone(), &ns);
    let in_ns: Vec<Arc<Pod>> = s
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let satisfied = s.expectations.satisfied(&key, |n| {
        in_ns
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .map(|p| p.metadata.deletion_timestamp.is_some())
    });
    let owner = podutil::controller_ref(sts.as_ref());
    let claimed = podutil::claim_pods(
        &pod_api,
        &owner,
        &sts.spec.selector,
        in_ns.iter().map(AsRef::as_ref).collect(),
        true,
    )
    .await?;
    let uid = sts.uid().unwrap_or_default();
    let in_use: Vec<String> = claimed
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_owned))
        .collect();
    let update = history::sync(
        &s.cx.client,
        sts.as_ref(),
        &sts.spec.template,
        sts.status.as_ref().and_then(|st| st.collision_count),
        sts.spec.revision_history_limit,
        |name, _| in_use.iter().any(|r| r == name),
    )
    .await?;
    let _ = uid;
    let status = sts.status.clone().unwrap_or_default();
    let current_name = status
        .current_revision
        .clone()
        .unwrap_or_else(|| update.name.clone());
    let current_template = update
        .all
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(current_name.as_str()))
        .and_then(history::template_of)
        .unwrap_or_else(|| sts.spec.template.clone());

    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    for p in &claimed {
        if let Some(o) = ordinal_of(&name, &p.name_any()) {
            by_ordinal.insert(o, p);
        }
    }
    let replicas = sts.spec.replicas.unwrap_or(1).max(0);
    if satisfied {
        sync_pods(
            &s,
            &sts,
            &key,
            &pod_api,
            &by_ordinal,
            replicas,
            &update.name,
            &current_name,
            &current_template,
        )
        .await?;
    }

    // Status.
    let min_ready = sts.spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let live: Vec<&&Pod> = by_ordinal
        .values()
        .filter(|p| podutil::is_active(p))
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let ready = count(&|p| podutil::is_ready(p));
    let available = count(&|p| podutil::is_available(p, min_ready, now));
    let updated = count(&|p| revision_of(p) == Some(update.name.as_str()));
    let mut current = count(&|p| revision_of(p) == Some(current_name.as_str()));
    let mut current_revision = current_name.clone();
    if updated == replicas && live.len() as i32 == replicas && ready == replicas {
        current_revision = update.name.clone();
        current = updated;
    }
    let nz = |n: i32| (n != 0).then_some(n);
    let new_status = StatefulSetStatus {
        replicas: live.len() as i32,
        ready_replicas: nz(ready),
        available_replicas: Some(available),
        current_replicas: nz(current),
        updated_replicas: nz(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update.name.clone()),
        observed_generation: sts.metadata.generation,
        collision_count: status.collision_count,
        conditions: status.conditions.clone(),
    };
    if sts.status.as_ref() != Some(&new_status) {
        let mut upd = (*sts).clone();
        upd.status = Some(new_status);
        let api: Api<StatefulSet> = Api::namespaced(s.cx.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &upd)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let next = live
        .iter()
        .filter_map(|p| podutil::available_at(p, min_ready))
        .filter(|t| *t > now)
        .min();
    Ok(match next {
        Some(t) => Action::requeue(
            Duration::try_from(t.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(50),
        ),
        None => Action::await_change(),
    })
}

/// Creates, deletes and updates pods (upstream `updateStatefulSet`, one step at a time
/// under OrderedReady).
#[allow(clippy::too_many_arguments)]
async fn sync_pods(
    s: &Shared,
    sts: &StatefulSet,
    key: &str,
    api: &Api<Pod>,
    pods: &BTreeMap<i32, &Pod>,
    replicas: i32,
    update_revision: &str,
    current_revision: &str,
    current_template: &PodTemplateSpec,
) -> Result<(), Error> {
    let name = sts.name_any();
    let parallel = sts.spec.pod_management_policy.as_deref() == Some("Parallel");
    let strategy = sts.spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    // Failed pods are deleted (and made again).
    for p in pods.values() {
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
            && p.metadata.deletion_timestamp.is_none()
        {
            delete_pod(s, sts, key, api, p).await?;
            if !parallel {
                return Ok(());
            }
        }
    }
    // Missing pods, in order.
    for ord in 0..replicas {
        match pods.get(&ord) {
            None => {
                // Pods below the partition keep the current revision.
                let (template, rev) =
                    if !on_delete && ord < partition && current_revision != update_revision {
                        (current_template, current_revision)
                    } else {
                        (&sts.spec.template, update_revision)
                    };
                ensure_claims(s, sts, ord).await?;
                let pod = pod_for(sts, template, rev, ord);
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => {
                        s.expectations.expect(key, vec![pod.name_any()], Vec::new());
                        podutil::event(
                            &s.events,
                            sts,
                            false,
                            "SuccessfulCreate",
                            format!(
                                "create Pod {} in StatefulSet {name} successful",
                                pod.name_any()
                            ),
                        )
                        .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => {
                        podutil::event(
                            &s.events,
                            sts,
                            true,
                            "FailedCreate",
                            format!(
                                "create Pod {} in StatefulSet {name} failed error: {e}",
                                pod.name_any()
                            ),
                        )
                        .await;
                        return Err(e.into());
                    }
                }
                if !parallel {
                    return Ok(());
                }
            }
            Some(p) if !parallel && !healthy(p) => return Ok(()),
            Some(_) => {}
        }
    }
    // Condemned pods, highest ordinal first.
    let condemned: Vec<&&Pod> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
    for p in condemned {
        if p.metadata.deletion_timestamp.is_some() {
            if !parallel {
                return Ok(());
            }
            continue;
        }
        let ord = ordinal_of(&name, &p.name_any()).unwrap_or(0);
        delete_pod(s, sts, key, api, p).await?;
        let when_scaled = sts
            .spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|r| r.when_scaled.as_deref());
        if when_scaled == Some("Delete") {
            delete_claims(s, sts, ord).await?;
        }
        if !parallel {
            return Ok(());
        }
    }
    if on_delete {
        return Ok(());
    }
    // RollingUpdate: once all are healthy, replace outdated pods from the top down to
    // the partition, one at a time.
    if pods.range(..replicas).any(|(_, p)| !healthy(p))
        || (pods.range(..replicas).count() as i32) < replicas
    {
        return Ok(());
    }
    for ord in (partition..replicas).rev() {
        if let Some(p) = pods.get(&ord) {
            if revision_of(p) != Some(update_revision) {
                delete_pod(s, sts, key, api, p).await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn delete_pod(
    s: &Shared,
    sts: &StatefulSet,
    key: &str,
    api: &Api<Pod>,
    p: &Pod,
) -> Result<(), Error> {
    let n = p.name_any();
    match api.delete(&n, &DeleteParams::default()).await {
        Ok(_) => {
            s.expectations.expect(key, Vec::new(), vec![n.clone()]);
            podutil::event(
                &s.events,
                sts,
                false,
                "SuccessfulDelete",
                format!(
                    "delete Pod {n} in StatefulSet {} successful",
                    sts.name_any()
                ),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => {
            podutil::event(
                &s.events,
                sts,
                true,
                "FailedDelete",
                format!(
                    "delete Pod {n} in StatefulSet {} failed error: {e}",
                    sts.name_any()
                ),
            )
            .await;
            Err(e.into())
        }
    }
}

/// Creates the ordinal's claims that do not exist (upstream `createPersistentVolumeClaims`).
async fn ensure_claims(s: &Shared, sts: &StatefulSet, ord: i32) -> Result<(), Error> {
    let ns = sts.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(s.cx.client.clone(), &ns);
    let delete_with_set = sts
        .spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|r| r.when_deleted.as_deref())
        == Some("Delete");
    for t in sts.spec.volume_claim_templates.iter().flatten() {
        let cname = claim_name(&t.name_any(), &sts.name_any(), ord);
        if api.get_opt(&cname).await?.is_some() {
            continue;
        }
        let mut labels = t.metadata.labels.clone().unwrap_or_default();
        labels.extend(sts.spec.selector.match_labels.clone().unwrap_or_default());
        let mut owner = podutil::controller_ref(sts);
        owner.controller = None;
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(cname.clone()),
                labels: Some(labels),
                annotations: t.metadata.annotations.clone(),
                owner_references: delete_with_set.then(|| vec![owner]),
                ..Default::default()
            },
            spec: t.spec.clone(),
            status: None,
        };
        let pod = format!("{}-{ord}", sts.name_any());
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                podutil::event(
                    &s.events,
                    sts,
                    false,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {cname} Pod {pod} in StatefulSet {} success",
                        sts.name_any()
                    ),
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                podutil::event(
                    &s.events,
                    sts,
                    true,
                    "FailedCreate",
                    format!(
                        "create Claim {cname} for Pod {pod} in StatefulSet {} failed error: {e}",
                        sts.name_any()
                    ),
                )
                .await;
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Deletes the ordinal's claims (retention policy `whenScaled: Delete`).
async fn delete_claims(s: &Shared, sts: &StatefulSet, ord: i32) -> Result<(), Error> {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(s.cx.client.clone(), &sts.namespace().unwrap_or_default());
    for t in sts.spec.volume_claim_templates.iter().flatten() {
        let cname = claim_name(&t.name_any(), &sts.name_any(), ord);
        match api.delete(&cname, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;

    #[test]
    fn ordinals_parse_only_exact_names() {
        let cases = [
            ("web-0", Some(0)),
            ("web-12", Some(12)),
            ("web-01", None),
            ("web-", None),
            ("web-x", None),
            ("webby-1", None),
            ("web-1-2", None),
        ];
        for (pod, want) in cases {
            assert_eq!(ordinal_of("web", pod), want, "{pod}");
        }
    }

    #[test]
    fn pods_get_identity_and_claims() {
        let sts = StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: StatefulSetSpec {
                service_name: Some("nginx".into()),
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("www".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            },
            status: None,
        };
        let pod = pod_for(&sts, &PodTemplateSpec::default(), "web-abc", 2);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels[POD_NAME_LABEL], "web-2");
        assert_eq!(labels[POD_INDEX_LABEL], "2");
        assert_eq!(labels[REVISION_HASH], "web-abc");
        let spec = pod.spec.unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("web-2"), Some("nginx"))
        );
        let vol = &spec.volumes.unwrap()[0];
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
    }
}
