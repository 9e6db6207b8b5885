//! The root CA publisher (upstream `root-ca-certificate-publisher-controller`): every
//! active namespace has a `kube-root-ca.crt` ConfigMap whose `ca.crt` is the cluster CA
//! bundle, so pods can verify the API server; one edited or deleted is put back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};

use crate::streams::touched;
use crate::Context;

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its data key.
pub const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Ctx {
    cx: Context,
    ca: String,
}

/// Runs the controller until dropped (at once without a CA bundle to publish).
pub async fn run(cx: Context) {
    let Some(ca) = cx.config.root_ca_pem.clone() else {
        tracing::info!("root-ca-certificate-publisher-controller: no CA bundle to publish");
        return;
    };
    let wc = cx.watch_client.clone();
    let (namespaces, ns_events) = cx.informers.all::<Namespace>(Default::default()).await;
    // ConfigMap changes only trigger a namespace's reconcile, which reads the ConfigMap
    // live: its decision never waits on (or trusts) a second cache.
    let map_events = watcher(
        Api::<ConfigMap>::all(wc),
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
    )
    .default_backoff();
    let ctx = Arc::new(Ctx { cx, ca });
    Controller::for_shared_stream(
        crate::metrics::queue().trigger(touched(ns_events)),
        namespaces,
    )
    .watches_stream(map_events.touched_objects(), |cm: ConfigMap| {
        cm.namespace().map(|ns| ObjectRef::new(&ns))
    })
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        ctx,
    )
    .for_each(|result| async move {
        // Reconcile errors are logged by `error_policy`; anything else (an object gone
        // from the store, a broken trigger stream) would otherwise pass unseen.
        if let Err(e) = result {
            if !matches!(e, kube::runtime::controller::Error::ReconcilerFailed(..)) {
                tracing::info!(error = %e, "root-ca-certificate-publisher-controller");
            }
        }
    })
    .await;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot publish {CONFIG_MAP} in namespace {namespace}: {source}")]
struct Error {
    namespace: String,
    source: kube::Error,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let namespace = ns.name_any();
    let err = |source| Error {
        namespace: namespace.clone(),
        source,
    };
    let data = BTreeMap::from([(KEY.to_owned(), ctx.ca.clone())]);
    let api: Api<ConfigMap> = Api::namespaced(ctx.cx.client.clone(), &namespace);
    // Read as the manager, as upstream's lister does: the controller's own role may only
    // create and update ConfigMaps.
    let reader: Api<ConfigMap> = Api::namespaced(ctx.cx.watch_client.clone(), &namespace);
    let current = match reader.get_opt(CONFIG_MAP).await {
        Ok(cm) => cm,
        Err(e) => return Err(err(e)),
    };
    let result = match current {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP.into()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_owned(),
                        DESCRIPTION.to_owned(),
                    )])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            api.create(&PostParams::default(), &cm).await.map(drop)
        }
        Some(cm) => {
            let described = cm
                .annotations()
                .get(DESCRIPTION_ANNOTATION)
                .is_some_and(|d| !d.is_empty());
            if cm.data.as_ref() == Some(&data) && described {
                return Ok(Action::await_change());
            }
            let mut cm = cm;
            cm.data = Some(data);
            cm.binary_data = None;
            cm.metadata.managed_fields = None;
            cm.annotations_mut()
                .entry(DESCRIPTION_ANNOTATION.to_owned())
                .or_insert_with(|| DESCRIPTION.to_owned());
            api.replace(CONFIG_MAP, &PostParams::default(), &cm)
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // Made or changed meanwhile, or the namespace began terminating: try again
        // soon, but say so, since a refusal that never ends would otherwise be invisible.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {
            tracing::info!(%namespace, code = e.code, message = %e.message,
                "root-ca-certificate-publisher-controller: retrying");
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Err(e) => Err(err(e)),
    }
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "root-ca-certificate-publisher-controller");
    Action::requeue(Duration::from_secs(2))
}
