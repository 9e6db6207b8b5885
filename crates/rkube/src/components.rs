//! `rkube scheduler` and `rkube hollow-nodes`: components that run against an API
//! server named by a kubeconfig.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// `rkube scheduler --help`'s description.
pub(crate) const SCHEDULER_LONG_ABOUT: &str =
    "Runs the scheduler against an API server. Without --config it runs one \
profile, default-scheduler, with upstream's default plugins and weights. With --config \
FILE (a kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration, YAML or JSON) it runs \
every profile the file lists: a pod is scheduled by the profile its spec.schedulerName \
names, and pods naming no profile are left Pending for another scheduler. Supported: \
profiles[] (schedulerName, percentageOfNodesToScore, plugins per extension point and \
multiPoint with enabled/disabled, '*' and score weights, pluginConfig args of \
NodeResourcesFit, NodeResourcesBalancedAllocation, InterPodAffinity, PodTopologySpread, \
NodeAffinity, DefaultPreemption, VolumeBinding), percentageOfNodesToScore, parallelism, \
podInitialBackoffSeconds, podMaxBackoffSeconds and leaderElection. The file is decoded \
strictly and validated as upstream does; a bad file exits non-zero before anything starts.";

/// Flags of `rkube scheduler`.
#[derive(clap::Args, Debug)]
pub(crate) struct SchedulerArgs {
    /// The kubeconfig to reach the API server with (user system:kube-scheduler or admin).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The `spec.schedulerName` the default profile serves (without --config).
    #[arg(long, conflicts_with = "config")]
    scheduler_name: Option<String>,
    /// Schedule only while holding the Lease (default: the configuration's
    /// leaderElection.leaderElect, true).
    #[arg(long, action = clap::ArgAction::Set)]
    leader_elect: Option<bool>,
}

/// A leader-election identity unique to this process: `<hostname>_<uuid>`.
pub(crate) fn leader_identity() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{}_{}",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/uuid")
    )
}

/// Flags of `rkube controller-manager`.
#[derive(clap::Args, Debug)]
pub(crate) struct ControllerManagerArgs {
    /// The kubeconfig to reach the API server with (user system:kube-controller-manager
    /// or admin); every controller acts with it.
    #[arg(long)]
    kubeconfig: PathBuf,
    #[command(flatten)]
    controllers: ControllerFlags,
    /// Run controllers only while holding the kube-system/kube-controller-manager Lease.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The HTTPS port serving /healthz and /metrics (upstream's default; 0 turns it off).
    #[arg(long, default_value_t = 10257)]
    secure_port: u16,
    /// The address the secure port listens on. Upstream listens on 0.0.0.0 behind
    /// delegated authentication; rkube does not delegate yet, so loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
}

/// Serves `/healthz` and `/metrics` (every controller's workqueue series) over HTTPS with
/// a self-signed certificate made at start, as upstream does without `--tls-cert-file`.
async fn serve_controller_manager_status(
    address: std::net::SocketAddr,
) -> Result<impl std::future::Future<Output = ()>> {
    let mut names = vec!["localhost".to_owned(), crate::certs::hostname()];
    names.push(address.ip().to_string());
    let cert = rcgen::generate_simple_self_signed(names)
        .context("cannot make the controller manager's serving certificate")?;
    let tls = rkube_apiserver::tls::DynamicTls::new(rkube_apiserver::tls::TlsMaterial {
        cert_chain: vec![cert.cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        client_cas: Vec::new(),
    })
    .map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (--bind-address/--secure-port)"))?;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    rkube_controllers::metrics::render(),
                )
            }),
        );
    tracing::info!(%address, "controller manager serving /healthz and /metrics");
    Ok(async move {
        if let Err(e) =
            rkube_apiserver::tls::serve(listener, Some(tls), app, std::future::pending()).await
        {
            tracing::error!(error = %e, "the controller manager's status server stopped");
        }
    })
}

/// The controller manager's flags that `rkube server` shares.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ControllerFlags {
    /// Controllers to run: `*` for the defaults, `NAME` to add, `-NAME` to remove.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// The pod network; nodes get a podCIDR from it when set.
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// The prefix length of each node's podCIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// How long a node may miss heartbeats before it is marked Unknown (e.g. 50s).
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How often node health is checked (e.g. 5s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: std::time::Duration,
    /// Nodes per second tainted for eviction in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// The longest lifetime of a certificate the CSR signer issues (e.g. 8760h0m0s); a
    /// CSR's spec.expirationSeconds may ask for less.
    #[arg(long, default_value = "8760h0m0s", value_parser = parse_duration)]
    pub cluster_signing_duration: std::time::Duration,
    /// How often each HorizontalPodAutoscaler is synced.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// How far back an autoscaler looks for a higher recommendation before scaling down.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: std::time::Duration,
    /// The usage-to-target ratio's distance from 1 under which an autoscaler does not scale.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// How long after a pod starts its CPU samples may predate its readiness.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: std::time::Duration,
    /// How long after a pod starts an unready pod counts as not yet ready rather than unready.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: std::time::Duration,
}

impl ControllerFlags {
    pub(crate) fn config(&self, root_ca_pem: Option<String>) -> rkube_controllers::Config {
        rkube_controllers::Config {
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_monitor_period: self.node_monitor_period,
            node_eviction_rate: self.node_eviction_rate,
            root_ca_pem,
            service_account_key: None,
            server_url: None,
            signing_ca_pem: None,
            ca_key_pem: None,
            cluster_signing_duration: self.cluster_signing_duration,
            hpa: rkube_controllers::hpa::Settings {
                sync_period: self.horizontal_pod_autoscaler_sync_period,
                downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
                tolerance: self.horizontal_pod_autoscaler_tolerance,
                cpu_initialization_period: self.horizontal_pod_autoscaler_cpu_initialization_period,
                initial_readiness_delay: self.horizontal_pod_autoscaler_initial_readiness_delay,
            },
        }
    }
}

/// A Go-style duration: `300ms`, `50s`, `5m`, `1h`, `1m30s`.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. 500ms, 40s, 5m, 1h30m)");
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

/// How hollow nodes run their pods.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HollowMode {
    /// The real kubelet per node on a simulated container runtime.
    Kubelet,
    /// No kubelet: one loop reports every pod Running (for scheduler benchmarks at
    /// thousands of nodes).
    Paper,
}

/// Flags of `rkube hollow-nodes`.
#[derive(clap::Args, Debug)]
pub(crate) struct HollowArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// kubelet: each node runs the real kubelet on a simulated runtime; paper: pods are
    /// reported Running without a kubelet.
    #[arg(long, value_enum, default_value_t = HollowMode::Kubelet)]
    mode: HollowMode,
    /// Node names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "hollow-node")]
    name_prefix: String,
    /// Each node's cpu capacity.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Each node's memory capacity.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// How many pods each node admits.
    #[arg(long, default_value = "110")]
    pods: String,
    /// Extra node labels, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// How a component's client talks HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Http {
    /// kube-rs's client: HTTP/1.1, one connection per request in flight.
    Http1,
    /// HTTP/2 when the server offers it, as client-go speaks (see [`rkube_client::http2`]).
    Http2,
}

/// A client for the API server a kubeconfig names, sending `component`'s User-Agent.
pub(crate) async fn client_from_kubeconfig(path: &Path, component: &str) -> Result<Client> {
    client_with(path, component, Http::Http1).await
}

/// [`client_from_kubeconfig`] speaking `http`.
pub(crate) async fn client_with(path: &Path, component: &str, http: Http) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
    config.headers.push((
        axum::http::header::USER_AGENT,
        crate::user_agent::header_value(component, None),
    ));
    // rkube's components never read managedFields: lists and watches leave them out.
    config.headers.push((
        axum::http::HeaderName::from_static(rkube_apiserver::OMIT_MANAGED_FIELDS),
        axum::http::HeaderValue::from_static("true"),
    ));
    match http {
        Http::Http1 => Client::try_from(config),
        Http::Http2 => rkube_client::http2(config),
    }
    .context("cannot build an API client")
}

/// The standalone scheduler's runtime: the main thread runs the scheduler's loop and its
/// watches (one future, see `rkube_scheduler::run`), and one worker thread the rest —
/// the API connection (HTTP/2: one connection, so one task does all its reads, writes
/// and TLS) and the binding and event requests, which only wait on it. More workers
/// only added cross-thread wake-ups: on this 2-core machine, a worker per core made the
/// scheduler switch context three times as often and cost it 7% more CPU
/// (`bench schedule`).
pub(crate) fn scheduler_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
}

pub(crate) async fn run_scheduler(args: SchedulerArgs) -> Result<()> {
    // The configuration first: a bad one stops us before we connect.
    let mut config = match &args.config {
        Some(path) => rkube_scheduler::config::load_file(path)
            .map_err(|e| anyhow::anyhow!("bad --config {}: {e}", path.display()))?,
        None => rkube_scheduler::config::Configuration::default(),
    };
    if let Some(name) = args.scheduler_name {
        config.profiles[0].scheduler_name = name;
    }
    if let Some(elect) = args.leader_elect {
        config.leader_election.leader_elect = elect;
    }
    let client = client_with(&args.kubeconfig, "kube-scheduler", Http::Http2).await?;
    rkube_scheduler::run(
        client,
        rkube_scheduler::SchedulerOptions {
            leader_election: rkube_scheduler::leader_election::LeaderElection::from_config(
                &config.leader_election,
                leader_identity(),
            ),
            config,
        },
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

pub(crate) async fn run_controller_manager(args: ControllerManagerArgs) -> Result<()> {
    let client = client_from_kubeconfig(&args.kubeconfig, "kube-controller-manager").await?;
    if args.secure_port != 0 {
        let status = serve_controller_manager_status(std::net::SocketAddr::new(
            args.bind_address,
            args.secure_port,
        ))
        .await?;
        tokio::spawn(status);
    }
    let shared = client.clone();
    rkube_controllers::run(
        client,
        Arc::new(move |_| shared.clone()),
        rkube_controllers::Options {
            controllers: args.controllers.controllers.clone(),
            config: args.controllers.config(None),
            leader_election: args
                .leader_elect
                .then(|| rkube_controllers::leader_election(leader_identity())),
        },
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

pub(crate) async fn run_hollow_nodes(args: HollowArgs) -> Result<()> {
    // Kubelets write as `kubelet`, as upstream's hollow kubelets do.
    let component = match args.mode {
        HollowMode::Kubelet => "kubelet",
        HollowMode::Paper => "hollow-node",
    };
    let client = client_from_kubeconfig(&args.kubeconfig, component).await?;
    let opts = rkube_hollow::HollowOptions {
        count: args.count,
        name_prefix: args.name_prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
    };
    match args.mode {
        HollowMode::Kubelet => {
            rkube_hollow::kubelets::run(client, opts, crate::server::shutdown_signal()).await?
        }
        HollowMode::Paper => {
            rkube_hollow::run(
                client,
                opts,
                Arc::new(rkube_hollow::PaperRuntime::default()),
                crate::server::shutdown_signal(),
            )
            .await?
        }
    }
    Ok(())
}
