//! `rkube server`: the all-in-one process. Today: the store and the API server over
//! HTTPS, with a cluster CA and an admin kubeconfig made on first start. The scheduler,
//! controllers and node agent join it as their issues land.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use rkube_apiserver::auth::service_account::ServiceAccounts;
use rkube_apiserver::auth::StaticTokens;
use rkube_apiserver::{tls, ApiState};
use rkube_pki::{ClusterPki, ServingNames};

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
    /// The store backend: `sqlite` (embedded, the default) or `etcd` (with --etcd-servers).
    #[arg(long, value_parser = ["sqlite", "etcd"])]
    store: Option<String>,
    /// Comma-separated etcd client URLs, for `--store etcd` (upstream's flag name).
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Address the API server listens on (HTTPS).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The Service IP range; the `kubernetes` Service takes its first address.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cluster_ip_range: String,
    /// The port range NodePort and LoadBalancer Services get node ports from
    /// (`30000-32767`, `30000+2768` or one port).
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// The address the `kubernetes` Service's endpoints advertise (default: the --listen
    /// address, or 127.0.0.1 when that is unspecified).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Static bearer tokens, upstream's CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// The `iss` of service-account tokens this server mints and accepts.
    #[arg(long, default_value = rkube_apiserver::auth::service_account::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// Audiences the API server accepts in tokens (default: the issuer).
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// Revisions of history each resource's watch cache keeps for watch replays.
    #[arg(long, default_value_t = rkube_apiserver::watch_cache::DEFAULT_WINDOW)]
    default_watch_cache_size: usize,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// A kubescheduler.config.k8s.io/v1 KubeSchedulerConfiguration (YAML or JSON) for
    /// the in-process scheduler: its profiles, plugins, plugin args and leader election.
    #[arg(long, value_name = "FILE", conflicts_with = "disable_scheduler")]
    scheduler_config: Option<std::path::PathBuf>,
    /// Do not run the controller manager in this process.
    #[arg(long)]
    disable_controller_manager: bool,
    /// An apiserver.config.k8s.io/v1 EncryptionConfiguration: how resources are
    /// encrypted at rest (aescbc, aesgcm, secretbox, identity).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// How often the aggregator re-checks every APIService's backend (upstream: 30 s).
    #[arg(long, default_value_t = 30, hide = true)]
    apiservice_recheck_seconds: u64,
    #[command(flatten)]
    controllers: crate::components::ControllerFlags,
    /// Also run a kubelet for this machine (containerd, CNI, real pods). Off by default so
    /// a plain server needs no container runtime.
    #[arg(long)]
    enable_node: bool,
    #[command(flatten)]
    kubelet: crate::kubelet::KubeletFlags,
}

/// The store the flags name: `--store`/`--etcd-servers`, or `--datastore-endpoint`.
fn datastore_endpoint(args: &ServerArgs) -> Result<String> {
    match (args.store.as_deref(), args.etcd_servers.is_empty()) {
        (Some("etcd"), true) => anyhow::bail!("--store etcd needs --etcd-servers URL[,URL...]"),
        (Some("etcd"), false) => {
            if !args.datastore_endpoint.is_empty() {
                anyhow::bail!(
                    "use either --store etcd --etcd-servers or --datastore-endpoint, not both"
                );
            }
            Ok(args.etcd_servers.join(","))
        }
        (_, false) => anyhow::bail!("--etcd-servers is only used with --store etcd"),
        (Some(_), true) => Ok(args.datastore_endpoint.clone()),
        (None, true) => Ok(args.datastore_endpoint.clone()),
    }
}

pub(crate) async fn run(args: ServerArgs) -> Result<()> {
    let started = Instant::now();
    let endpoint = datastore_endpoint(&args)?;
    rkube_controllers::selected(&args.controllers.controllers)?;
    // A bad scheduler configuration stops the server before anything starts.
    let scheduler_config = match &args.scheduler_config {
        Some(path) => rkube_scheduler::config::load_file(path)
            .map_err(|e| anyhow::anyhow!("bad --scheduler-config {}: {e}", path.display()))?,
        None => rkube_scheduler::config::Configuration::default(),
    };
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = crate::datastore::open(&endpoint, &data_dir).await?;
    let store = match &args.encryption_provider_config {
        Some(path) => rkube_apiserver::encryption::wrap(
            store,
            rkube_apiserver::encryption::EncryptionConfig::load(path)
                .map_err(|e| anyhow::anyhow!("bad --encryption-provider-config: {e}"))?,
        ),
        None => store,
    };

    let service_ip = rkube_apiserver::kubernetes_service::first_ip(&args.service_cluster_ip_range)
        .map_err(|e| anyhow::anyhow!("bad --service-cluster-ip-range: {e}"))?;
    let allocators = rkube_apiserver::service_alloc::Allocators::from_ranges(
        rkube_apiserver::service_alloc::IpRange::parse(&args.service_cluster_ip_range)
            .map_err(|e| anyhow::anyhow!("bad --service-cluster-ip-range: {e}"))?,
        rkube_apiserver::service_alloc::PortRange::parse(&args.service_node_port_range)
            .map_err(|e| anyhow::anyhow!("bad --service-node-port-range: {e}"))?,
    );
    // Upstream's repair interval and leak grace; the environment shortens them for tests.
    let repair_interval = crate::certs::env_duration("RKUBE_SERVICE_REPAIR_INTERVAL")?
        .unwrap_or(rkube_apiserver::service_alloc::repair::DEFAULT_INTERVAL);
    let allocation_grace = crate::certs::env_duration("RKUBE_SERVICE_ALLOCATION_GRACE")?
        .unwrap_or(rkube_apiserver::service_alloc::repair::DEFAULT_GRACE);
    let mut names = ServingNames::new(crate::certs::hostname()).with_ip(service_ip);
    if let Some(ip) = args.advertise_address {
        names = names.with_ip(ip);
    }
    if !args.listen.ip().is_unspecified() {
        names = names.with_ip(args.listen.ip());
    }
    let pki_dir = data_dir.join("pki");
    let pki_options = crate::certs::pki_options()?;
    let pki = ClusterPki::load_or_create_with(&pki_dir, &names, pki_options)
        .context("cannot set up the cluster PKI")?;
    let client_ip = if args.listen.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        args.listen.ip()
    };
    let server_url = format!("https://{}", SocketAddr::new(client_ip, args.listen.port()));
    let kubeconfig = data_dir.join("admin.kubeconfig");
    pki.write_kubeconfigs(&data_dir, &server_url)
        .context("cannot write the kubeconfigs")?;

    let tokens = match &args.token_auth_file {
        Some(path) => StaticTokens::load(path).map_err(anyhow::Error::msg)?,
        None => StaticTokens::default(),
    };
    let service_accounts = ServiceAccounts::new(
        Some(pki.service_account_key().clone()),
        args.service_account_issuer.clone(),
        args.api_audiences.clone(),
    );
    let state = ApiState::new(
        store.clone(),
        tokens,
        service_accounts,
        SocketAddr::new(client_ip, args.listen.port()).to_string(),
        args.default_watch_cache_size,
    );
    // The API server's identity towards kubelets (pods/log), upstream's
    // kube-apiserver-kubelet-client.
    let kubelet_client = pki
        .issue_client_cert(
            "kube-apiserver-kubelet-client",
            &[rkube_pki::identity::MASTERS_GROUP],
            std::time::Duration::from_secs(365 * 24 * 3600),
        )
        .context("cannot issue the kubelet client certificate")?;
    let _ = state.kubelet_client.set(
        rkube_apiserver::kubelet_proxy::KubeletClient::new(
            vec![kubelet_client.cert_der().clone()],
            kubelet_client.key_der(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    rkube_apiserver::ensure_default_namespaces(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the default namespaces: {}", e.0.message))?;
    rkube_apiserver::crd::controller::start(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the custom resource definitions: {e}"))?;
    rkube_apiserver::authz::start(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the RBAC policy: {e}"))?;
    rkube_apiserver::authz::policy::reconcile(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reconcile the default RBAC policy: {e}"))?;
    rkube_apiserver::admission::ensure_system_priority_classes(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the system priority classes: {e}"))?;
    let advertise_address =
        args.advertise_address
            .unwrap_or(if args.listen.ip().is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                args.listen.ip()
            });
    // Services get cluster IPs and node ports from here on; the default ServiceCIDR is
    // made by the repair loop's first pass, below.
    let _ = state.service_alloc.set(allocators);
    rkube_apiserver::kubernetes_service::start(
        &state,
        rkube_apiserver::kubernetes_service::Config {
            service_cidr: args.service_cluster_ip_range.clone(),
            advertise_address,
            secure_port: args.listen.port(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot set up the kubernetes service: {e}"))?;
    // Records match Services before the first client request (upstream runs its repair
    // loops before the API server is ready).
    rkube_apiserver::service_alloc::repair::start(&state, repair_interval, allocation_grace).await;
    // What `kubeadm init` sets up for token joins (`rkube agent`).
    let loopback = in_process_client(
        &state,
        rkube_apiserver::auth::UserInfo::new(
            "system:apiserver",
            vec!["system:masters".into(), "system:authenticated".into()],
        ),
        crate::user_agent::header_value("kube-apiserver", None),
    );
    crate::token::ensure_join_rbac(&loopback)
        .await
        .context("cannot create the RBAC for joining nodes")?;
    rkube_apiserver::authz::aggregation::pass(&state).await;
    rkube_apiserver::authz::aggregation::start(&state);
    state.authz.sync(&*state.store).await;
    let front_proxy = rkube_pki::front_proxy::FrontProxyPki::load_or_create(
        &data_dir.join("pki"),
        rkube_pki::PkiOptions::default(),
    )
    .context("cannot set up the front-proxy PKI")?;
    rkube_apiserver::aggregator::start(
        &state,
        &rkube_apiserver::aggregator::Config {
            client_ca_pem: pki.client_ca_pem().to_owned(),
            front_proxy_ca_der: front_proxy.ca_cert_der().to_vec(),
            front_proxy_ca_pem: front_proxy.ca_cert_pem().to_owned(),
            proxy_cert_pem: front_proxy.client_cert().cert_pem().to_owned(),
            proxy_key_pem: front_proxy.client_cert().key_pem().to_owned(),
            recheck: std::time::Duration::from_secs(args.apiservice_recheck_seconds.max(1)),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the API aggregator: {e}"))?;
    let tls = tls::DynamicTls::new(crate::certs::tls_material(&pki)).map_err(anyhow::Error::msg)?;
    let renewal = crate::certs::spawn_renewal(
        crate::certs::Renewal {
            pki_dir,
            data_dir: data_dir.clone(),
            names,
            options: pki_options,
            server_url: server_url.clone(),
            interval: crate::certs::check_interval()?,
        },
        tls.clone(),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let stop_scheduler = std::sync::Arc::new(tokio::sync::Notify::new());
    let scheduler = (!args.disable_scheduler)
        .then(|| start_scheduler(&state, scheduler_config, stop_scheduler.clone()));
    let stop_controllers = std::sync::Arc::new(tokio::sync::Notify::new());
    let controllers = (!args.disable_controller_manager).then(|| {
        let mut config = args.controllers.config(Some(pki.ca_cert_pem().to_owned()));
        config.service_account_key = Some(pki.service_account_key().clone());
        config.server_url = Some(server_url.clone());
        // The signer issues client certificates: the client CA signs them.
        config.signing_ca_pem = Some(pki.client_ca_pem().to_owned());
        config.ca_key_pem = std::fs::read_to_string(pki.dir().join("client-ca.key")).ok();
        start_controller_manager(&state, &args.controllers, config, stop_controllers.clone())
    });
    let stop_kubelet = std::sync::Arc::new(tokio::sync::Notify::new());
    let kubelet = args
        .enable_node
        .then(|| {
            let mut options = args.kubelet.options(data_dir.clone());
            options.client_ca_pem = args
                .kubelet
                .client_ca(Some(pki.client_ca_pem().to_owned()))?;
            anyhow::Ok(start_kubelet(&state, options, stop_kubelet.clone()))
        })
        .transpose()?;
    tracing::info!(listen = %listener.local_addr()?, data_dir = %data_dir.display(), elapsed = ?started.elapsed(), "rkube server ready");
    eprintln!(
        "rkube server is ready at {server_url}\n  export KUBECONFIG={}\n  kubectl get namespaces",
        kubeconfig.display()
    );
    tls::serve(
        listener,
        Some(tls),
        rkube_apiserver::router(state),
        shutdown_signal(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    renewal.abort();
    tracing::info!("rkube server stopped");
    if let Some(scheduler) = scheduler {
        // Let it release its Lease so a restarted server schedules at once.
        stop_scheduler.notify_one();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), scheduler).await;
    }
    if let Some(controllers) = controllers {
        stop_controllers.notify_one();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), controllers).await;
    }
    if let Some(kubelet) = kubelet {
        // Stops the containerd it started; the pods' containers stay, as on a restart.
        stop_kubelet.notify_one();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), kubelet).await;
    }
    drop(store);
    Ok(())
}

/// Runs the scheduler in-process as user `system:kube-scheduler`, over the API server's
/// router with no socket: the same authentication, authorization and handlers as any
/// client.
fn start_scheduler(
    state: &std::sync::Arc<ApiState>,
    config: rkube_scheduler::config::Configuration,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let user = rkube_apiserver::auth::UserInfo::new(
        "system:kube-scheduler",
        vec!["system:authenticated".into()],
    );
    let client = in_process_client(
        state,
        user,
        crate::user_agent::header_value("kube-scheduler", None),
    );
    tokio::spawn(async move {
        let stop = stop.notified();
        let options = rkube_scheduler::SchedulerOptions {
            leader_election: rkube_scheduler::leader_election::LeaderElection::from_config(
                &config.leader_election,
                crate::components::leader_identity(),
            ),
            config,
        };
        if let Err(e) = rkube_scheduler::run(client, options, stop).await {
            tracing::error!(error = %e, "the scheduler stopped");
        }
    })
}

/// Runs the local node's kubelet in-process as `system:node:<name>`. Until the Node
/// authorizer lands it is also in `system:masters`, as RBAC alone grants nodes nothing.
fn start_kubelet(
    state: &std::sync::Arc<ApiState>,
    options: rkube_kubelet::Options,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let client = in_process_client(
        state,
        rkube_apiserver::auth::UserInfo::new(
            format!("system:node:{}", options.node_name),
            vec![
                "system:nodes".into(),
                "system:masters".into(),
                "system:authenticated".into(),
            ],
        ),
        crate::user_agent::header_value("kubelet", None),
    );
    tokio::spawn(async move {
        if let Err(e) = rkube_kubelet::run(client, options, stop.notified()).await {
            tracing::error!(error = %e, "the kubelet stopped");
        }
    })
}

/// A client over the API server's router with no socket, authenticated as `user`, sending
/// `agent` as its User-Agent (the default field manager of its writes).
fn in_process_client(
    state: &std::sync::Arc<ApiState>,
    user: rkube_apiserver::auth::UserInfo,
    agent: axum::http::HeaderValue,
) -> kube::Client {
    let router = rkube_apiserver::router(state.clone()).layer(axum::Extension(tls::CertUser(user)));
    kube::Client::new(crate::user_agent::layer(router, agent), "default")
}

/// Runs the controller manager in-process: its watchers and Lease as
/// `system:kube-controller-manager`, each controller's writes as its own service account
/// in kube-system (upstream's `--use-service-account-credentials`).
fn start_controller_manager(
    state: &std::sync::Arc<ApiState>,
    flags: &crate::components::ControllerFlags,
    config: rkube_controllers::Config,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    let manager = in_process_client(
        state,
        rkube_apiserver::auth::UserInfo::new(
            "system:kube-controller-manager",
            vec!["system:authenticated".into()],
        ),
        crate::user_agent::header_value("kube-controller-manager", None),
    );
    let st = state.clone();
    let clients: rkube_controllers::ClientFactory = std::sync::Arc::new(move |sa: &str| {
        in_process_client(
            &st,
            rkube_apiserver::auth::UserInfo::new(
                format!("system:serviceaccount:kube-system:{sa}"),
                vec![
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:kube-system".into(),
                    "system:authenticated".into(),
                ],
            ),
            crate::user_agent::header_value("kube-controller-manager", Some(sa)),
        )
    });
    let options = rkube_controllers::Options {
        controllers: flags.controllers.clone(),
        config,
        leader_election: Some(rkube_controllers::leader_election(
            crate::components::leader_identity(),
        )),
    };
    // Its workqueue series are served on the API server's /metrics.
    state
        .metrics
        .add_source(Box::new(rkube_controllers::metrics::render));
    tokio::spawn(async move {
        if let Err(e) = rkube_controllers::run(manager, clients, options, stop.notified()).await {
            tracing::error!(error = %e, "the controller manager stopped");
        }
    })
}

pub(crate) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
