//! Service creates through the whole API path (in process, no TLS), to see what cluster IP
//! and node port allocation adds: ConfigMaps as the baseline, Services with allocation
//! switched off, ClusterIP Services (one IPAddress recorded each) and NodePort Services
//! (an IPAddress and a node port record each). Every case runs on a fresh embedded store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::http::Method;
use clap::Args;
use rkube_apiserver::auth::service_account::ServiceAccounts;
use rkube_apiserver::auth::StaticTokens;
use rkube_apiserver::service_alloc::Allocators;
use rkube_apiserver::ApiState;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::Store;
use serde_json::{json, Value};

use crate::stats::{ms, Summary};

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Objects created per case (at most 2,700: NodePort Services use the default range).
    #[arg(long, default_value_t = 2_000)]
    count: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-services.json")]
    out: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    ConfigMap,
    ServiceNoAllocation,
    ClusterIp,
    NodePort,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::ConfigMap => "ConfigMap (baseline)",
            Case::ServiceNoAllocation => "Service, allocation off",
            Case::ClusterIp => "Service ClusterIP",
            Case::NodePort => "Service NodePort",
        }
    }

    fn request(self, i: usize) -> (&'static str, Value) {
        match self {
            Case::ConfigMap => (
                "/api/v1/namespaces/bench/configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}, "data": {"k": "v"}}),
            ),
            _ => (
                "/api/v1/namespaces/bench/services",
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")},
                    "spec": {"type": if self == Case::NodePort { "NodePort" } else { "ClusterIP" },
                        "selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
            ),
        }
    }
}

async fn state(dir: &std::path::Path, allocate: bool) -> Result<Arc<ApiState>> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.join("state.db"),
        SqliteOptions::default(),
    )?);
    let tokens_file = dir.join("tokens.csv");
    std::fs::write(&tokens_file, "")?;
    let state = ApiState::new(
        store.clone(),
        StaticTokens::load(&tokens_file).map_err(anyhow::Error::msg)?,
        ServiceAccounts::new(None, "https://kubernetes.default.svc".into(), Vec::new()),
        "127.0.0.1:6443".into(),
        100,
    );
    let info = rkube_api::resources::find("", "v1", "namespaces").context("namespaces")?;
    store
        .create(
            &info.key(None, "bench"),
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}, "status": {"phase": "Active"}}))?.into(),
        )
        .await?;
    if allocate {
        let _ = state
            .service_alloc
            .set(Allocators::new("10.43.0.0/16", "30000-32767").map_err(anyhow::Error::msg)?);
    }
    Ok(state)
}

async fn run_case(case: Case, args: &ServicesArgs) -> Result<(f64, Summary)> {
    let dir = tempfile::tempdir()?;
    let state = state(dir.path(), case != Case::ServiceNoAllocation).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (state, next, count) = (state.clone(), next.clone(), args.count);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let (path, body) = case.request(i);
                let t = Instant::now();
                let (code, answer) =
                    rkube_apiserver::internal_request(&state, Method::POST, path, Some(&body))
                        .await;
                anyhow::ensure!(code.is_success(), "create {i}: {code} {answer}");
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((args.count as f64 / elapsed, Summary::of(all)))
}

pub async fn run(args: ServicesArgs) -> Result<()> {
    anyhow::ensure!(
        args.count <= 2_700,
        "--count at most 2700 (NodePort Services fill the default node port range)"
    );
    let mut rows = Vec::new();
    for case in [
        Case::ConfigMap,
        Case::ServiceNoAllocation,
        Case::ClusterIp,
        Case::NodePort,
    ] {
        let (rate, summary) = run_case(case, &args).await?;
        rows.push((case.label(), rate, summary));
    }
    println!(
        "{:<26} {:>10} {:>9} {:>9}   ({} creates, {} writers, embedded store)",
        "case", "creates/s", "p50 ms", "p99 ms", args.count, args.concurrency
    );
    for (label, rate, s) in &rows {
        println!(
            "{label:<26} {rate:>10.0} {:>9.2} {:>9.2}",
            ms(s.p50),
            ms(s.p99)
        );
    }
    let out: serde_json::Map<String, Value> = rows
        .iter()
        .map(|(label, rate, s)| {
            (
                label.to_string(),
                json!({"creates_per_second": rate, "p50_ms": ms(s.p50), "p99_ms": ms(s.p99)}),
            )
        })
        .collect();
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}
