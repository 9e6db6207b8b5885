//! The bootstrap signer (upstream `bootstrap-signer-controller`): the `cluster-info`
//! ConfigMap in `kube-public` carries, for every valid bootstrap token with
//! `usage-bootstrap-signing`, a `jws-kubeconfig-<token id>` key with the detached JWS of
//! its `kubeconfig`; signatures of tokens gone or expired are removed. When nothing has
//! made `cluster-info`, it is created with a kubeconfig holding the cluster CA and the
//! server URL, as kubeadm would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::{jws, parse, NAMESPACE};
use crate::streams::touched;
use crate::Context;

/// The namespace of `cluster-info`.
pub const PUBLIC_NAMESPACE: &str = "kube-public";
/// The ConfigMap signed.
pub const CLUSTER_INFO: &str = "cluster-info";
/// Prefix of the signature keys.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";

struct Ctx {
    cx: Context,
    secrets: Store<Secret>,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (maps, map_events) = cx
        .informers
        .namespaced::<ConfigMap>(
            PUBLIC_NAMESPACE,
            watcher::Config::default().fields(&format!("metadata.name={CLUSTER_INFO}")),
        )
        .await;
    let (secrets, secret_events) = cx
        .informers
        .namespaced::<Secret>(NAMESPACE, Default::default())
        .await;
    let ctx = Arc::new(Ctx { cx, secrets });
    create_cluster_info(&ctx).await;
    let target = || ObjectRef::<ConfigMap>::new(CLUSTER_INFO).within(PUBLIC_NAMESPACE);
    Controller::for_shared_stream(crate::metrics::queue().trigger(touched(map_events)), maps)
        .watches_shared_stream(touched(secret_events), move |s: Arc<Secret>| {
            (s.type_.as_deref() == Some(super::TOKEN_TYPE)).then(target)
        })
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            ctx,
        )
        .for_each(|_| async {})
        .await;
}

/// cluster-info's kubeconfig: the cluster's CA and server, no credentials.
pub fn cluster_info_kubeconfig(ca_pem: &str, server: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

async fn create_cluster_info(ctx: &Ctx) {
    let (Some(ca), Some(server)) = (&ctx.cx.config.root_ca_pem, &ctx.cx.config.server_url) else {
        return;
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.cx.client.clone(), PUBLIC_NAMESPACE);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CLUSTER_INFO.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "kubeconfig".to_owned(),
            cluster_info_kubeconfig(ca, server),
        )])),
        ..Default::default()
    };
    for _ in 0..10 {
        match api.create(&PostParams::default(), &cm).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create cluster-info; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The data `cluster-info` should have: its own, with a signature of its kubeconfig per
/// signing token (`id` → `secret`) and no other signatures. `None` when it has no
/// kubeconfig to sign.
pub fn signed_data(
    data: &BTreeMap<String, String>,
    tokens: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let content = data.get("kubeconfig")?;
    let mut out: BTreeMap<String, String> = data
        .iter()
        .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (id, secret) in tokens {
        out.insert(
            format!("{SIGNATURE_PREFIX}{id}"),
            jws::detached_signature(content, id, secret),
        );
    }
    Some(out)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign cluster-info: {0}")]
struct Error(kube::Error);

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.secrets.wait_until_ready().await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut next_expiry: Option<Duration> = None;
    let mut tokens = BTreeMap::new();
    for s in ctx.secrets.state() {
        if s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(t) = parse(&s) else { continue };
        if !t.signing {
            continue;
        }
        if let Some(exp) = t.expiration {
            let Ok(left) = Duration::try_from(exp.duration_since(now)) else {
                continue;
            };
            if left.is_zero() {
                continue;
            }
            next_expiry = Some(next_expiry.map_or(left, |n: Duration| n.min(left)));
        }
        tokens.insert(t.id, t.secret);
    }
    // Re-sign when the next token expires.
    let done = match next_expiry {
        Some(d) => Action::requeue(d + Duration::from_millis(100)),
        None => Action::await_change(),
    };
    let data = cm.data.clone().unwrap_or_default();
    let Some(wanted) = signed_data(&data, &tokens) else {
        return Ok(done);
    };
    if wanted == data {
        return Ok(done);
    }
    let mut updated = (*cm).clone();
    updated.data = Some(wanted);
    updated.metadata.managed_fields = None;
    let api: Api<ConfigMap> = Api::namespaced(ctx.cx.client.clone(), PUBLIC_NAMESPACE);
    match api
        .replace(&cm.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(done),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Err(e) => Err(Error(e)),
    }
}

fn error_policy(_: Arc<ConfigMap>, error: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(%error, "bootstrap-signer-controller");
    Action::requeue(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_every_token_and_drops_stale_signatures() {
        let data = BTreeMap::from([
            ("kubeconfig".to_owned(), "cfg".to_owned()),
            ("jws-kubeconfig-gone00".to_owned(), "old".to_owned()),
        ]);
        let tokens = BTreeMap::from([("abcdef".to_owned(), "0123456789abcdef".to_owned())]);
        let got = signed_data(&data, &tokens).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["jws-kubeconfig-abcdef", "kubeconfig"]
        );
        assert!(jws::is_valid(
            &got["jws-kubeconfig-abcdef"],
            "cfg",
            "abcdef",
            "0123456789abcdef"
        ));
        assert!(signed_data(&BTreeMap::new(), &tokens).is_none());
        let kc = cluster_info_kubeconfig("PEM", "https://127.0.0.1:6443");
        assert!(kc.contains("certificate-authority-data: UEVN\n"), "{kc}");
        assert!(kc.contains("server: https://127.0.0.1:6443\n"), "{kc}");
    }
}
