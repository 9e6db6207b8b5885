//! The disruption controller (upstream `disruption-controller`): keeps every
//! PodDisruptionBudget's status ([`budget`]) current from the pods its selector matches
//! and, for percentages and `maxUnavailable`, the scale of the controllers owning them
//! (read through their `scale` subresource; a ReplicaSet owned by a Deployment counts
//! as the Deployment). The eviction subresource in the API server spends the allowance
//! this controller computes.

pub mod budget;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::discovery;
use crate::streams::touched;
use crate::Context;

/// Recomputed at least this often (disrupted pods expire, scales change).
const RESYNC: Duration = Duration::from_secs(30);

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let pdbs: Api<PodDisruptionBudget> = Api::all(cx.watch_client.clone());
    let controller = Controller::new(pdbs, watcher::Config::default());
    let store: Store<PodDisruptionBudget> = controller.store();
    controller
        .watches_shared_stream(
            touched(cx.informers.all::<Pod>(watcher::Config::default()).await.1),
            move |pod: Arc<Pod>| {
                let ns = pod.namespace();
                store
                    .state()
                    .into_iter()
                    .filter(|p| p.namespace() == ns)
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            Arc::new(cx),
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
#[error("pod disruption budget {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: String,
    source: kube::Error,
}

/// A label selector as a list selector string; None when it selects nothing.
fn selector_string(sel: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, cx: Arc<Context>) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let err = |source| Error {
        namespace: ns.clone(),
        name: name.clone(),
        source,
    };
    let selector = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(selector_string);
    let pods = match &selector {
        Some(sel) => {
            Api::<Pod>::namespaced(cx.watch_client.clone(), &ns)
                .list(&ListParams::default().labels(sel))
                .await
                .map_err(err)?
                .items
        }
        None => Vec::new(),
    };
    let refs: Vec<&Pod> = pods.iter().collect();
    let scale = if budget::needs_scale(&pdb) {
        Some(expected_scale(&cx, &ns, &refs).await)
    } else {
        None
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let status = budget::status(&pdb, &refs, scale, &now);
    if pdb.status.as_ref() != Some(&status) {
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(cx.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// The summed `spec.replicas` of the controllers owning `pods` (each counted once).
async fn expected_scale(cx: &Context, ns: &str, pods: &[&Pod]) -> Result<i32, String> {
    let mut controllers: HashMap<String, i32> = HashMap::new();
    let mut found = None;
    for pod in pods {
        let Some(owner) = pod
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true))
            .cloned()
        else {
            return Err(format!("found no controllers for pod {:?}", pod.name_any()));
        };
        if controllers.contains_key(&owner.uid) {
            continue;
        }
        let mut target = owner.clone();
        if owner.kind == "ReplicaSet" && owner.api_version.starts_with("apps/") {
            let rs = Api::<ReplicaSet>::namespaced(cx.client.clone(), ns)
                .get_opt(&owner.name)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(d) = rs.as_ref().and_then(|rs| {
                rs.owner_references()
                    .iter()
                    .find(|r| r.controller == Some(true) && r.kind == "Deployment")
            }) {
                target = d.clone();
            }
        }
        if found.is_none() {
            found = Some(
                discovery::discover(&cx.client)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let d = found.as_ref().expect("discovered above");
        let Some(r) = d.by_kind(&target.api_version, &target.kind) else {
            return Err(format!("found no controllers for pod {:?}", pod.name_any()));
        };
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(cx.client.clone(), ns, &r.api);
        let scale: k8s_openapi::api::autoscaling::v1::Scale = match api
            .get_subresource("scale", &target.name)
            .await
        {
            Ok(s) => serde_json::from_value(serde_json::to_value(s).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(format!("found no controllers for pod {:?}", pod.name_any()))
            }
            Err(e) => return Err(e.to_string()),
        };
        controllers.insert(
            owner.uid.clone(),
            scale.spec.and_then(|s| s.replicas).unwrap_or(0),
        );
    }
    Ok(controllers.values().sum())
}

fn error_policy(_: Arc<PodDisruptionBudget>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "disruption-controller");
    Action::requeue(Duration::from_secs(5))
}
