//! The cost of authenticating a request's bearer token: an ES256 signature check alone,
//! a service-account JWT through the whole authenticator (cold: signature checked; warm:
//! the verification cache hit plus the service account's point read), a pod-bound token
//! (one more read), a bootstrap token and a static token, on the embedded SQLite store;
//! and a client certificate's verification against the client CA bundle.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rkube_apiserver::auth::service_account::ServiceAccounts;
use rkube_apiserver::auth::{authenticate_token, StaticTokens};
use rkube_apiserver::ApiState;
use rkube_pki::service_account::{KubernetesClaims, ObjectRef, TokenClaims};
use rkube_pki::ServiceAccountKey;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::Store;
use serde_json::json;

#[derive(Args, Debug)]
pub struct AuthnArgs {
    /// Iterations per case.
    #[arg(long, default_value_t = 5_000)]
    iterations: u32,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-authn.json")]
    out: String,
}

async fn put(store: &dyn Store, key: &str, obj: serde_json::Value) -> Result<()> {
    store
        .create(key, serde_json::to_vec(&obj)?.into())
        .await
        .with_context(|| format!("create {key}"))?;
    Ok(())
}

pub async fn run(args: AuthnArgs) -> Result<()> {
    let n = args.iterations;
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("state.db"),
        SqliteOptions::default(),
    )?);
    let key = Arc::new(ServiceAccountKey::generate().map_err(anyhow::Error::msg)?);
    let issuer = "https://kubernetes.default.svc.cluster.local".to_owned();
    let tokens_file = dir.path().join("tokens.csv");
    std::fs::write(&tokens_file, "static-token,alice,1\n")?;
    let state = ApiState::new(
        store.clone(),
        StaticTokens::load(&tokens_file).map_err(anyhow::Error::msg)?,
        ServiceAccounts::new(Some(key.clone()), issuer.clone(), Vec::new()),
        "127.0.0.1:6443".into(),
        100,
    );
    put(&*store, &key_of("serviceaccounts", Some("default"), "default"),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default", "uid": "sa-uid"}})).await?;
    put(&*store, &key_of("pods", Some("default"), "p"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "pod-uid"}, "spec": {"serviceAccountName": "default"}})).await?;
    put(&*store, &key_of("secrets", Some("kube-system"), "bootstrap-token-abcdef"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system", "uid": "s"},
            "data": {"token-id": "YWJjZGVm", "token-secret": "MDEyMzQ1Njc4OWFiY2RlZg==", "usage-bootstrap-authentication": "dHJ1ZQ=="}})).await?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let claims = |pod: bool| TokenClaims {
        iss: issuer.clone(),
        sub: "system:serviceaccount:default:default".into(),
        aud: vec![issuer.clone()],
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: format!("j-{pod}"),
        kubernetes: KubernetesClaims {
            namespace: "default".into(),
            serviceaccount: ObjectRef {
                name: "default".into(),
                uid: "sa-uid".into(),
            },
            pod: pod.then(|| ObjectRef {
                name: "p".into(),
                uid: "pod-uid".into(),
            }),
            ..Default::default()
        },
    };
    let token = state
        .service_accounts
        .sign(&claims(false))
        .map_err(anyhow::Error::msg)?;
    let bound = state
        .service_accounts
        .sign(&claims(true))
        .map_err(anyhow::Error::msg)?;

    let mut rows: Vec<(&str, f64)> = Vec::new();
    let start = Instant::now();
    for _ in 0..n {
        key.verifier()
            .verify(&token)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    rows.push(("ES256 signature check", us(start, n)));

    // Cold: a distinct token each time, so every call checks a signature.
    let cold: Vec<String> = (0..n)
        .map(|i| {
            let mut c = claims(false);
            c.jti = format!("cold-{i}");
            state.service_accounts.sign(&c).expect("sign")
        })
        .collect();
    let start = Instant::now();
    for t in &cold {
        authenticate_token(&state, t, None)
            .await
            .map_err(|e| anyhow::anyhow!(e.0))?;
    }
    rows.push(("service-account JWT, cold", us(start, n)));
    for (label, t) in [
        ("service-account JWT, warm", token.as_str()),
        ("pod-bound JWT, warm", bound.as_str()),
        ("bootstrap token", "abcdef.0123456789abcdef"),
        ("static token", "static-token"),
    ] {
        authenticate_token(&state, t, None)
            .await
            .map_err(|e| anyhow::anyhow!(e.0))?;
        let start = Instant::now();
        for _ in 0..n {
            authenticate_token(&state, t, None)
                .await
                .map_err(|e| anyhow::anyhow!(e.0))?;
        }
        rows.push((label, us(start, n)));
    }
    let start = Instant::now();
    for _ in 0..n {
        let _ = authenticate_token(&state, "nope.nope.nope", None).await;
    }
    rows.push(("invalid token", us(start, n)));

    // Client certificates: verified once per TLS connection against the client CA bundle
    // (one CA, or two during a CA rotation's overlap), and a certificate of another CA.
    let pki_dir = dir.path().join("pki");
    let names = rkube_pki::ServingNames::new("bench");
    rkube_pki::ClusterPki::load_or_create(&pki_dir, &names)?;
    let old_admin = rkube_pki::ClusterPki::load_or_create(&pki_dir, &names)?
        .admin_cert()
        .clone();
    let other = rkube_pki::ClusterPki::load_or_create(&dir.path().join("other"), &names)?;
    let rotated = rkube_pki::ClusterPki::rotate_ca(
        &pki_dir,
        &names,
        rkube_pki::PkiOptions::default(),
        std::time::Duration::from_secs(3600),
    )?;
    let one_ca = &rotated.client_ca_bundle_der()[..1];
    for (label, cert, roots) in [
        ("client cert, 1 CA", rotated.admin_cert().cert_der(), one_ca),
        (
            "client cert, old of 2 CAs",
            old_admin.cert_der(),
            rotated.client_ca_bundle_der(),
        ),
        (
            "client cert, other CA",
            other.admin_cert().cert_der(),
            rotated.client_ca_bundle_der(),
        ),
    ] {
        let start = Instant::now();
        for _ in 0..n {
            let _ =
                rkube_pki::identity::verify_client_cert(cert, roots, std::time::SystemTime::now());
        }
        rows.push((label, us(start, n)));
    }

    println!("{:<28} {:>10}", "case", "µs/auth");
    for (label, v) in &rows {
        println!("{label:<28} {v:>10.1}");
    }
    let out: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}

fn key_of(plural: &str, namespace: Option<&str>, name: &str) -> String {
    rkube_api::resources::find("", "v1", plural)
        .expect("built in")
        .key(namespace, name)
}

fn us(start: Instant, n: u32) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}
