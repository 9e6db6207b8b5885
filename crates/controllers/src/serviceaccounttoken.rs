//! The legacy service-account token controller (upstream `serviceaccount-token-controller`):
//! a Secret of type `kubernetes.io/service-account-token` annotated
//! `kubernetes.io/service-account.name` gets `token` (a legacy JWT signed with the
//! service-account key), `ca.crt` and `namespace`, and the account's uid annotation; token
//! Secrets whose service account is gone are deleted. As upstream, it writes with the
//! manager's own credentials (`system:kube-controller-manager`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use rkube_pki::service_account::{LegacyClaims, ServiceAccountKey, LEGACY_ISSUER};

use crate::streams::touched;
use crate::Context;

/// The Secret type this controller fills.
pub const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the Secret's service account.
pub const SA_NAME: &str = "kubernetes.io/service-account.name";
/// The annotation with the service account's uid.
pub const SA_UID: &str = "kubernetes.io/service-account.uid";

struct Ctx {
    cx: Context,
    key: Arc<ServiceAccountKey>,
    accounts: Store<ServiceAccount>,
}

/// Runs the controller until dropped (at once without a signing key).
pub async fn run(cx: Context) {
    let Some(key) = cx.config.service_account_key.clone() else {
        tracing::info!("serviceaccount-token-controller: no service-account signing key");
        return;
    };
    let (secrets, secret_events) = cx.informers.all::<Secret>(Default::default()).await;
    let (accounts, sa_events) = cx.informers.all::<ServiceAccount>(Default::default()).await;
    let ctx = Arc::new(Ctx { cx, key, accounts });
    let secret_store = secrets.clone();
    Controller::for_shared_stream(
        crate::metrics::queue().trigger(touched(secret_events)),
        secrets,
    )
    .watches_shared_stream(touched(sa_events), move |sa: Arc<ServiceAccount>| {
        let ns = sa.namespace();
        secret_store
            .state()
            .iter()
            .filter(|s| {
                s.namespace() == ns
                    && s.annotations().get(SA_NAME).map(String::as_str) == Some(&sa.name_any())
            })
            .map(|s| ObjectRef::from_obj(&**s))
            .collect::<Vec<_>>()
    })
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        ctx,
    )
    .for_each(|_| async {})
    .await;
}

/// The legacy token for `secret` of service account `sa` (upstream's
/// `serviceaccount.LegacyClaims`).
pub fn legacy_token(
    key: &ServiceAccountKey,
    namespace: &str,
    secret: &str,
    sa: &str,
    sa_uid: &str,
) -> Result<String, String> {
    let claims = LegacyClaims {
        iss: LEGACY_ISSUER.into(),
        sub: format!("system:serviceaccount:{namespace}:{sa}"),
        namespace: namespace.into(),
        secret_name: secret.into(),
        service_account_name: sa.into(),
        service_account_uid: sa_uid.into(),
    };
    let value = serde_json::to_value(claims).map_err(|e| e.to_string())?;
    key.signer().sign(&value).map_err(|e| e.to_string())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sync token secret {secret}: {reason}")]
struct Error {
    secret: String,
    reason: String,
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if secret.type_.as_deref() != Some(TOKEN_TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(sa_name) = secret.annotations().get(SA_NAME).cloned() else {
        return Ok(Action::await_change());
    };
    let _ = ctx.accounts.wait_until_ready().await;
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let fail = |reason: String| Error {
        secret: format!("{ns}/{name}"),
        reason,
    };
    // The cache may lag a just-created account: ask the API before concluding it is gone.
    let mut sa = ctx
        .accounts
        .get(&ObjectRef::new(&sa_name).within(&ns))
        .map(|a| (*a).clone());
    if sa.is_none() {
        let api: Api<ServiceAccount> = Api::namespaced(ctx.cx.watch_client.clone(), &ns);
        sa = api
            .get_opt(&sa_name)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    let wanted_uid = secret.annotations().get(SA_UID).filter(|u| !u.is_empty());
    let sa = sa.filter(|a| wanted_uid.is_none_or(|u| a.uid().as_ref() == Some(u)));
    let api: Api<Secret> = Api::namespaced(ctx.cx.watch_client.clone(), &ns);
    let Some(sa) = sa else {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => tracing::info!(
                namespace = ns,
                secret = name,
                "deleted token secret of a deleted service account"
            ),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        return Ok(Action::await_change());
    };
    let data = secret.data.clone().unwrap_or_default();
    let ca = ctx.cx.config.root_ca_pem.clone().unwrap_or_default();
    let has = |k: &str| data.get(k).is_some_and(|v| !v.0.is_empty());
    let needs_ca =
        !ca.is_empty() && data.get("ca.crt").map(|v| v.0.as_slice()) != Some(ca.as_bytes());
    let needs_token = !has("token");
    let needs_namespace = !has("namespace");
    let sa_uid = sa.uid().unwrap_or_default();
    let needs_uid = wanted_uid.is_none();
    if !(needs_ca || needs_token || needs_namespace || needs_uid) {
        return Ok(Action::await_change());
    }
    let mut updated = (*secret).clone();
    updated.metadata.managed_fields = None;
    let mut data: BTreeMap<String, ByteString> = data;
    if needs_ca {
        data.insert("ca.crt".into(), ByteString(ca.into_bytes()));
    }
    if needs_namespace {
        data.insert("namespace".into(), ByteString(ns.clone().into_bytes()));
    }
    if needs_token {
        let token = legacy_token(&ctx.key, &ns, &name, &sa_name, &sa_uid).map_err(fail)?;
        data.insert("token".into(), ByteString(token.into_bytes()));
    }
    updated.data = Some(data);
    updated.string_data = None;
    updated.annotations_mut().insert(SA_UID.into(), sa_uid);
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

fn error_policy(_: Arc<Secret>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "serviceaccount-token-controller");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tokens_carry_upstreams_claims() {
        let key = ServiceAccountKey::generate().unwrap();
        let token = legacy_token(&key, "ns", "tok", "robot", "u-1").unwrap();
        let (_, claims) = key.verifier().verify(&token).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "kubernetes/serviceaccount",
                "sub": "system:serviceaccount:ns:robot",
                "kubernetes.io/serviceaccount/namespace": "ns",
                "kubernetes.io/serviceaccount/secret.name": "tok",
                "kubernetes.io/serviceaccount/service-account.name": "robot",
                "kubernetes.io/serviceaccount/service-account.uid": "u-1",
            })
        );
    }
}
