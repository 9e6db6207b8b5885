//! The token cleaner (upstream `token-cleaner-controller`): bootstrap token Secrets in
//! `kube-system` are deleted once their `expiration` has passed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::{time_left, NAMESPACE, TOKEN_TYPE};
use crate::Context;

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let api: Api<Secret> = Api::namespaced(cx.watch_client.clone(), NAMESPACE);
    Controller::new(
        api,
        watcher::Config::default().fields(&format!("type={TOKEN_TYPE}")),
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
#[error("cannot delete expired bootstrap token {0}: {1}")]
struct Error(String, kube::Error);

async fn reconcile(secret: Arc<Secret>, cx: Arc<Context>) -> Result<Action, Error> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(left) = time_left(&secret, k8s_openapi::jiff::Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(100)));
    }
    let name = secret.name_any();
    let api: Api<Secret> = Api::namespaced(cx.client.clone(), NAMESPACE);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(secret = name, "deleted expired bootstrap token");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(Error(name, e)),
    }
}

fn error_policy(_: Arc<Secret>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "token-cleaner-controller");
    Action::requeue(Duration::from_secs(2))
}
