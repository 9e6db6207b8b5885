//! `rkube server`: the all-in-one process. Today it opens the store and serves the
//! health endpoints; the API server, scheduler, controllers and agent join it as their
//! issues land.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use rkube_store::Store;

/// Flags of `rkube server`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServerArgs {
    /// Where rkube keeps its state (default /var/lib/rkube as root, else ~/.local/share/rkube).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The store: empty for embedded SQLite in the data dir, sqlite://PATH, or
    /// comma-separated etcd client URLs (http://127.0.0.1:2379,...).
    #[arg(long, default_value = "")]
    datastore_endpoint: String,
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
}

#[derive(Clone)]
struct Health {
    store: Arc<dyn Store>,
}

pub(crate) async fn run(args: ServerArgs) -> Result<()> {
    let started = Instant::now();
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = crate::datastore::open(&args.datastore_endpoint, &data_dir).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let app = Router::new()
        .route("/healthz", get(check))
        .route("/livez", get(check))
        .route("/readyz", get(check))
        .route("/version", get(version))
        .with_state(Health {
            store: store.clone(),
        });
    tracing::info!(listen = %listener.local_addr()?, data_dir = %data_dir.display(), elapsed = ?started.elapsed(), "rkube server ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("rkube server stopped");
    drop(store);
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `/healthz`, `/livez`, `/readyz`: `ok`, or 500 naming the failed check; `?verbose`
/// lists the checks as upstream does.
async fn check(
    State(health): State<Health>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> (StatusCode, String) {
    let store = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        health.store.current_revision(),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the store did not answer within 5s".to_owned()),
    };
    let verbose = query.contains_key("verbose");
    match store {
        Ok(()) if verbose => (
            StatusCode::OK,
            "[+]ping ok\n[+]etcd ok\nhealthz check passed\n".to_owned(),
        ),
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(reason) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[+]ping ok\n[-]etcd failed: {reason}\nhealthz check failed\n"),
        ),
    }
}

async fn version() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "major": "1",
        "minor": "37",
        "gitVersion": concat!("v1.37.0-rkube.", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

/// The architecture as Go (and so Kubernetes) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
