//! The ServiceAccount controller (upstream `serviceaccount-controller`): every active
//! namespace has a `default` ServiceAccount; one deleted is made again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::Context;

/// The service accounts every namespace gets.
const MANAGED: &[&str] = &["default"];

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let namespaces: Api<Namespace> = Api::all(cx.watch_client.clone());
    let accounts: Api<ServiceAccount> = Api::all(cx.watch_client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            accounts,
            watcher::Config::default().fields("metadata.name=default"),
            |sa| sa.namespace().map(|ns| ObjectRef::new(&ns)),
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
#[error("cannot ensure service account {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: &'static str,
    source: kube::Error,
}

async fn reconcile(ns: Arc<Namespace>, cx: Arc<Context>) -> Result<Action, Error> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let namespace = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced(cx.client.clone(), &namespace);
    let lister: Api<ServiceAccount> = Api::namespaced(cx.watch_client.clone(), &namespace);
    for &name in MANAGED {
        let err = |source| Error {
            namespace: namespace.clone(),
            name,
            source,
        };
        if lister.get_opt(name).await.map_err(err)?.is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::debug!(namespace, name, "created service account"),
            // Made meanwhile, or the namespace began terminating: both fine.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "serviceaccount-controller");
    Action::requeue(Duration::from_secs(5))
}
