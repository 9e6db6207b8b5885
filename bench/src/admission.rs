//! The admission chain's cost per pod create (mutating and validating phases, dryRun so
//! nothing is charged): the bare chain, with a LimitRange and a ResourceQuota in the
//! namespace, and with many webhook configurations that do not match pods (no webhook
//! is called: what every write pays for having webhooks configured).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use rkube_apiserver::admission::{Operation, Request};
use rkube_apiserver::auth::service_account::ServiceAccounts;
use rkube_apiserver::auth::{StaticTokens, UserInfo};
use rkube_apiserver::ApiState;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::Store;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct AdmissionArgs {
    /// Iterations per case.
    #[arg(long, default_value_t = 5_000)]
    iterations: u32,
    /// Webhook configurations in the last case.
    #[arg(long, default_value_t = 50)]
    webhooks: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-admission.json")]
    out: String,
}

async fn put(
    store: &dyn Store,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    obj: Value,
) -> Result<()> {
    let info = rkube_api::resources::find(group, "v1", plural).context("built in")?;
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
    store
        .create(&info.key(ns, &name), serde_json::to_vec(&obj)?.into())
        .await
        .with_context(|| format!("create {plural}/{name}"))?;
    Ok(())
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "bench"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}})
}

async fn admit_pods(state: &Arc<ApiState>, n: u32) -> Result<f64> {
    let info = rkube_api::resources::find("", "v1", "pods").context("pods")?;
    let user = UserInfo::new("bench", vec!["system:authenticated".into()]);
    let start = Instant::now();
    for _ in 0..n {
        let mut request = Request {
            state: state.clone(),
            info,
            subresource: String::new(),
            operation: Operation::Create,
            namespace: "bench".into(),
            name: "p".into(),
            user: user.clone(),
            dry_run: true,
            object: Some(pod()),
            old: None,
            warnings: Vec::new(),
            annotations: Default::default(),
        };
        state
            .admission
            .mutate(&mut request)
            .await
            .map_err(|e| anyhow::anyhow!(e.0.message))?;
        state
            .admission
            .validate(&mut request)
            .await
            .map_err(|e| anyhow::anyhow!(e.0.message))?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}

pub async fn run(args: AdmissionArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("state.db"),
        SqliteOptions::default(),
    )?);
    let tokens_file = dir.path().join("tokens.csv");
    std::fs::write(&tokens_file, "")?;
    let state = ApiState::new(
        store.clone(),
        StaticTokens::load(&tokens_file).map_err(anyhow::Error::msg)?,
        ServiceAccounts::new(None, "https://kubernetes.default.svc".into(), Vec::new()),
        "127.0.0.1:6443".into(),
        100,
    );
    put(&*store, "", "namespaces", None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}, "status": {"phase": "Active"}})).await?;
    put(&*store, "", "serviceaccounts", Some("bench"), json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "bench"}})).await?;
    let n = args.iterations;
    let mut rows: Vec<(String, f64)> = Vec::new();
    admit_pods(&state, 10).await?;
    rows.push((
        "pod create, bare chain".into(),
        admit_pods(&state, n).await?,
    ));

    put(&*store, "", "limitranges", Some("bench"), json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "bench"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "2"}}]}})).await?;
    put(&*store, "", "resourcequotas", Some("bench"), json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "bench"},
        "spec": {"hard": {"pods": "1000000", "requests.cpu": "100000"}},
        // As the resourcequota controller would have computed it: admission checks and
        // charges against the status.
        "status": {"hard": {"pods": "1000000", "requests.cpu": "100000"}, "used": {"pods": "0", "requests.cpu": "0"}}})).await?;
    admit_pods(&state, 10).await?;
    rows.push((
        "+ LimitRange, ResourceQuota".into(),
        admit_pods(&state, n).await?,
    ));

    for i in 0..args.webhooks {
        let name = format!("hook-{i}.bench.rkube");
        put(&*store, "admissionregistration.k8s.io", "validatingwebhookconfigurations", None, json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": name},
            "webhooks": [{"name": name, "clientConfig": {"url": "https://127.0.0.1:1/x"}, "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]}]})).await?;
    }
    admit_pods(&state, 10).await?;
    rows.push((
        format!("+ {} unmatched webhooks", args.webhooks),
        admit_pods(&state, n).await?,
    ));

    println!("{:<36} {:>12}", "case", "µs/admission");
    for (label, v) in &rows {
        println!("{label:<36} {v:>12.1}");
    }
    let out: serde_json::Map<String, Value> =
        rows.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}
