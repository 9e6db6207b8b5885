//! The ResourceQuota controller (upstream `resourcequota-controller`): keeps every
//! quota's `status.hard` (a copy of `spec.hard`) and `status.used` (what the namespace's
//! objects charge, see [`usage`]) current. A quota is recomputed when it changes, when
//! pods, services, claims, ConfigMaps or Secrets of its namespace change, and every 30 s for object counts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::discovery;
use crate::streams::touched;
use crate::Context;
use rkube_api::quota::{self as usage, Contents};

/// How often every quota is recomputed regardless of events.
const RESYNC: Duration = Duration::from_secs(30);

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let quotas: Api<ResourceQuota> = Api::all(cx.watch_client.clone());
    let controller = Controller::new(quotas, watcher::Config::default());
    let store = controller.store();
    let cfg = watcher::Config::default;
    let informers = &cx.informers;
    controller
        .watches_shared_stream(
            touched(informers.all::<Pod>(cfg()).await.1),
            quotas_in(store.clone()),
        )
        .watches_shared_stream(
            touched(informers.all::<Service>(cfg()).await.1),
            quotas_in(store.clone()),
        )
        .watches_shared_stream(
            touched(informers.all::<PersistentVolumeClaim>(cfg()).await.1),
            quotas_in(store.clone()),
        )
        .watches_shared_stream(
            touched(informers.all::<ConfigMap>(cfg()).await.1),
            quotas_in(store.clone()),
        )
        .watches_shared_stream(
            touched(informers.all::<Secret>(cfg()).await.1),
            quotas_in(store),
        )
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            Arc::new(cx),
        )
        .for_each(|_| async {})
        .await;
}

/// Maps an object to the quotas of its namespace (upstream's replenishment).
fn quotas_in<K: ResourceExt>(
    store: Store<ResourceQuota>,
) -> impl Fn(Arc<K>) -> Vec<ObjectRef<ResourceQuota>> {
    move |obj| {
        let ns = obj.namespace();
        store
            .state()
            .into_iter()
            .filter(|q| q.namespace() == ns)
            .map(|q| ObjectRef::from_obj(&*q))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("resource quota {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: String,
    source: kube::Error,
}

async fn reconcile(quota: Arc<ResourceQuota>, cx: Arc<Context>) -> Result<Action, Error> {
    let ns = quota.namespace().unwrap_or_default();
    let name = quota.name_any();
    let err = |source| Error {
        namespace: ns.clone(),
        name: name.clone(),
        source,
    };
    let spec = quota.spec.clone().unwrap_or_default();
    let hard = spec.hard.clone().unwrap_or_default();
    let lp = ListParams::default();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(cx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err)?
        .items
        .into_iter()
        .filter(|p| usage::pod_counts(p, now))
        .collect();
    let services = Api::<Service>::namespaced(cx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err)?
        .items;
    let claims = Api::<PersistentVolumeClaim>::namespaced(cx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(err)?
        .items;
    let mut counts = BTreeMap::new();
    let wanted: Vec<(String, (String, String))> = hard
        .keys()
        .filter_map(|k| usage::counted_resource(k).map(|r| (k.clone(), r)))
        .collect();
    if !wanted.is_empty() {
        let found = discovery::discover(&cx.client).await.map_err(err)?;
        for (key, (plural, group)) in wanted {
            let Some(r) = found
                .resources
                .iter()
                .find(|r| r.namespaced && r.api.plural == plural && r.api.group == group)
            else {
                continue;
            };
            let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), &ns, &r.api);
            let n = api.list_metadata(&lp).await.map_err(err)?.items.len();
            counts.insert(key, n);
        }
    }
    let contents = Contents {
        pods: pods.iter().collect(),
        services: services.iter().collect(),
        claims: claims.iter().collect(),
        counts,
    };
    let used = usage::used(&spec, &contents);
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    if quota.status.as_ref() != Some(&status) {
        let mut updated = (*quota).clone();
        updated.status = Some(status);
        let api: Api<ResourceQuota> = Api::namespaced(cx.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Changed meanwhile: the watch brings the new version.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::requeue(RESYNC))
}

fn error_policy(_: Arc<ResourceQuota>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "resourcequota-controller");
    Action::requeue(Duration::from_secs(5))
}
