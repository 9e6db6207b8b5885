//! The kubelet: registers the Node, renews its Lease, reports node status, and runs the
//! pods bound to the node on a CRI v1 runtime (containerd, started and configured by
//! rkube unless an endpoint is given). Every runtime call has a deadline (`cri`).
//!
//! Modules: `bootstrap` (joining with a bootstrap token: TLS bootstrap), `cri` (the [`cri::Runtime`] trait and the gRPC client), `containerd` (the
//! managed runtime), `pause` (the locally built pause image), `cni` (the pod network
//! config), `node` (registration, Lease, status), `pleg` (relisting), `pod_config` and
//! `pod_status` (pure spec → CRI and observation → status), `worker` (pod workers),
//! `sim` (the simulated runtime hollow nodes run this same kubelet on, [`Backend`]).
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod certificate;
pub mod cni;
pub mod containerd;
pub mod credentials;
pub mod cri;
pub mod dns;
pub mod events;
pub mod grpc_probe;
pub mod logs;
pub mod masquerade;
pub mod node;
pub mod pause;
pub mod pleg;
pub mod pod_config;
pub mod pod_status;
pub mod probe;
pub mod server;
pub mod sim;
pub mod static_pods;
pub mod stats;
pub mod streaming;
pub mod time;
pub mod volumes;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client};
use thiserror::Error;

use crate::cri::Runtime;
use crate::worker::Worker;

/// The field manager the kubelet writes as.
pub const FIELD_MANAGER: &str = "kubelet";

/// How the kubelet runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub node_name: String,
    /// Where the managed containerd's config and state, CNI config and pod logs live.
    pub data_dir: PathBuf,
    /// A CRI endpoint (`unix:///path`) to use instead of starting containerd.
    pub container_runtime_endpoint: Option<String>,
    /// The node's InternalIP (default: the source address of the default route).
    pub node_ip: Option<String>,
    /// The pod range when the Node has no `spec.podCIDR`.
    pub pod_cidr: String,
    /// The CNI bridge's name.
    pub cni_bridge: String,
    pub max_pods: u32,
    pub node_labels: BTreeMap<String, String>,
    /// The HTTPS server's port (0: any free one; the Node advertises the one taken).
    pub kubelet_port: u16,
    /// The CA whose client certificates the server accepts; no server without it.
    pub client_ca_pem: Option<String>,
    /// Cluster DNS and the host resolv.conf pods get (`--cluster-dns`, `--cluster-domain`,
    /// `--resolv-conf`).
    pub dns: dns::Settings,
    /// The folder of static pod manifests (`--pod-manifest-path`).
    pub pod_manifest_path: Option<PathBuf>,
    /// How often the manifest folder is read (`--file-check-frequency`).
    pub file_check_frequency: Duration,
    /// The deadline of runtime calls (upstream's `--runtime-request-timeout`).
    pub runtime_request_timeout: Duration,
    /// How old the PLEG's last relist may be before the node is NotReady.
    pub pleg_relist_threshold: Duration,
    /// Where the managed containerd finds CNI plugins (default /usr/lib/cni).
    pub cni_bin_dir: Option<PathBuf>,
    /// The CNI config dir of the managed containerd; when given, its config is the
    /// operator's and rkube writes none (default: `<data-dir>/cni/net.d`, written).
    pub cni_conf_dir: Option<PathBuf>,
}

impl Options {
    pub fn new(node_name: impl Into<String>, data_dir: PathBuf) -> Self {
        Options {
            node_name: node_name.into(),
            data_dir,
            container_runtime_endpoint: None,
            node_ip: None,
            pod_cidr: cni::DEFAULT_POD_CIDR.into(),
            cni_bridge: "cni0".into(),
            max_pods: 110,
            node_labels: BTreeMap::new(),
            kubelet_port: 10250,
            client_ca_pem: None,
            dns: dns::Settings::default(),
            pod_manifest_path: None,
            file_check_frequency: static_pods::DEFAULT_FILE_CHECK_FREQUENCY,
            runtime_request_timeout: cri::RUNTIME_REQUEST_TIMEOUT,
            pleg_relist_threshold: pleg::RELIST_THRESHOLD,
            cni_bin_dir: None,
            cni_conf_dir: None,
        }
    }

    /// The managed containerd's directories, with the CNI dirs given.
    pub fn layout(&self) -> containerd::Layout {
        let mut l = containerd::Layout::new(&self.data_dir);
        if let Some(d) = &self.cni_bin_dir {
            l.cni_bin_dir = d.clone();
        }
        if let Some(d) = &self.cni_conf_dir {
            l.cni_conf_dir = d.clone();
        }
        l
    }

    /// Whether rkube writes the CNI config (it manages containerd and no CNI config
    /// dir was given).
    fn writes_cni_config(&self) -> bool {
        self.container_runtime_endpoint.is_none() && self.cni_conf_dir.is_none()
    }
}

/// What the kubelet runs pods on.
pub enum Backend {
    /// This machine: containerd (started by rkube, or at `container_runtime_endpoint`),
    /// the CNI config, volumes and logs under the data dir, the HTTPS server, probes
    /// over the pod network.
    Host,
    /// A simulated machine (a hollow node): the given runtime (a [`sim::SimRuntime`])
    /// with the given capacity and identity; nothing outside memory is touched — no
    /// containerd, CNI, files, server or host reads. `opts.node_ip` is the node's
    /// address and `opts.pod_cidr` its pod range until the Node has one.
    Simulated {
        runtime: Arc<dyn Runtime>,
        machine: node::Machine,
        host: node::HostFacts,
    },
}

/// A failure that stops the kubelet.
#[derive(Debug, Error)]
pub enum Error {
    #[error("registering node {node} failed: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid pod CIDR {0:?}: want an IPv4 CIDR such as 10.42.0.0/24")]
    PodCidr(String),
    #[error("cannot write the CNI config: {0}")]
    Cni(std::io::Error),
}

/// What every part of the running kubelet shares.
pub struct Shared {
    pub client: Client,
    pub node_name: String,
    pub host_ip: String,
    pub runtime: Option<Arc<dyn Runtime>>,
    /// Why there is no runtime.
    pub runtime_error: Option<String>,
    pub pleg: pleg::Pleg,
    pub runtime_state: Mutex<RuntimeState>,
    pub pod_logs_dir: PathBuf,
    /// Per-pod state on the node (volumes), `<pods_dir>/<uid>`.
    pub pods_dir: PathBuf,
    pub events: events::Recorder,
    /// How pods' resolv.conf is formed.
    pub dns: dns::Settings,
    /// The UIDs of the static pods running (their workers are not the API's to stop).
    pub static_pods: Mutex<std::collections::HashSet<String>>,
    /// Wakes the static pod manager: a mirror pod changed.
    pub static_pods_changed: tokio::sync::Notify,
    /// Whether pods run on this machine (false: a simulated node, which writes no pod
    /// logs directories and sets up no volumes on disk).
    pub on_host: bool,
    workers: Mutex<HashMap<String, Worker>>,
}

/// The runtime: the given endpoint, or a containerd rkube starts.
async fn setup_runtime(
    opts: &Options,
) -> (
    Option<containerd::Containerd>,
    Result<Arc<dyn Runtime>, String>,
) {
    if let Some(endpoint) = &opts.container_runtime_endpoint {
        return match cri::CriRuntime::connect_with_timeout(endpoint, opts.runtime_request_timeout) {
            Ok(r) => (None, Ok(Arc::new(r) as Arc<dyn Runtime>)),
            Err(e) => (None, Err(e.to_string())),
        };
    }
    match containerd::Containerd::start(opts.layout(), opts.runtime_request_timeout).await {
        Ok((c, r)) => (Some(c), Ok(Arc::new(r) as Arc<dyn Runtime>)),
        Err(e) => (None, Err(e.to_string())),
    }
}

/// The deadline of the status loop's read of the Node (its podCIDR).
const NODE_GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the runtime's status is asked for (upstream: every 5 s).
const RUNTIME_STATUS_PERIOD: Duration = Duration::from_secs(5);
/// A runtime whose status was last read longer ago than this is down (upstream's
/// `maxWaitForContainerRuntime`).
const RUNTIME_DOWN_THRESHOLD: Duration = Duration::from_secs(30);

/// What the last runtime status check found; read by the node status loop, which so
/// never waits on the runtime itself.
#[derive(Default)]
pub struct RuntimeState {
    /// When the runtime last answered `Status`.
    last_sync: Option<std::time::Instant>,
    /// Its unready conditions then, in upstream's words.
    condition_errors: Vec<String>,
    /// Node status' `images`, from the runtime's image list.
    images: serde_json::Value,
}

/// Asks the runtime for its status (with the runtime's deadline) and records it.
async fn update_runtime_state(shared: &Shared, runtime: &dyn Runtime) {
    match runtime.status().await {
        Err(e) => tracing::warn!(error = %e, "container runtime status check failed"),
        Ok(status) => {
            let mut errors = Vec::new();
            for (kind, label) in [
                ("RuntimeReady", "container runtime not ready"),
                ("NetworkReady", "container runtime network not ready"),
            ] {
                if let Some(c) = status.conditions.iter().find(|c| c.r#type == kind) {
                    if !c.status {
                        errors.push(format!(
                            "{label}: {kind}=false reason:{} message:{}",
                            c.reason, c.message
                        ));
                    }
                }
            }
            let mut state = shared
                .runtime_state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            state.last_sync = Some(std::time::Instant::now());
            state.condition_errors = errors;
        }
    }
    match runtime.list_images().await {
        Ok(list) => {
            let images = node::images(&list);
            shared
                .runtime_state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .images = images;
        }
        Err(e) => tracing::warn!(error = %e, "cannot list images"),
    }
}

/// The node's health from the runtime's and the relister's point of view, from what
/// the runtime status loop and the PLEG recorded (never calls the runtime).
fn health(shared: &Shared) -> node::Health {
    let mut errors = Vec::new();
    if let Some(e) = &shared.runtime_error {
        errors.push(format!("container runtime is down: {e}"));
        return node::Health { errors };
    }
    let state = shared
        .runtime_state
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match state.last_sync {
        None => errors.push("container runtime status check may not have completed yet".into()),
        Some(t) if t.elapsed() >= RUNTIME_DOWN_THRESHOLD => {
            errors.push("container runtime is down".into())
        }
        Some(_) => {}
    }
    errors.extend(shared.pleg.health_error());
    errors.extend(state.condition_errors.iter().cloned());
    node::Health { errors }
}

/// Runs the kubelet on this machine until `shutdown` resolves; a containerd it started
/// is stopped then.
pub async fn run(
    client: Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    run_on(client, opts, Backend::Host, shutdown).await
}

/// Runs the kubelet on `backend` until `shutdown` resolves.
pub async fn run_on(
    client: Client,
    opts: Options,
    backend: Backend,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let on_host = matches!(backend, Backend::Host);
    let registered = node::register(&client, &opts.node_name, &opts.node_labels)
        .await
        .map_err(|source| Error::Register {
            node: opts.node_name.clone(),
            source,
        })?;
    let pod_cidr = registered
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .unwrap_or_else(|| opts.pod_cidr.clone());
    if !cni::valid_cidr(&pod_cidr) {
        return Err(Error::PodCidr(pod_cidr));
    }
    if on_host && opts.writes_cni_config() {
        let layout = opts.layout();
        cni::write(
            &layout.cni_conf_dir,
            &pod_cidr,
            &opts.cni_bridge,
            &opts.data_dir.join("cni/ipam"),
        )
        .map_err(Error::Cni)?;
    }
    let (containerd, runtime, machine, host_facts) = match backend {
        Backend::Host => {
            let (containerd, runtime) = setup_runtime(&opts).await;
            let machine = node::Machine::detect(opts.max_pods);
            (containerd, runtime, machine, node::HostFacts::read())
        }
        Backend::Simulated {
            runtime,
            machine,
            host,
        } => (None, Ok(runtime), machine, host),
    };
    let (runtime, runtime_error) = match runtime {
        Ok(r) => (Some(r), None),
        Err(e) => {
            tracing::error!(error = %e, "no container runtime: the node stays NotReady");
            (None, Some(e))
        }
    };
    // The node's masquerade rule, with the conflist rkube wrote; no pods run without a
    // runtime, whose absence is then the node's one complaint. Retried by the status
    // loop, which reports a failure on the Ready condition.
    let masquerade_cidr =
        (on_host && opts.writes_cni_config() && runtime.is_some()).then(|| pod_cidr.clone());
    if masquerade_cidr.is_some() {
        if let Err(e) = masquerade::ensure(&pod_cidr, &opts.cni_bridge).await {
            tracing::error!(error = %e, "cannot install the pod masquerade rule");
        }
    }
    if let Some(rt) = &runtime {
        if let Err(e) = rt.update_pod_cidr(&pod_cidr).await {
            tracing::warn!(error = %e, "cannot tell the runtime the pod CIDR");
        }
    }
    let runtime_version = match &runtime {
        Some(rt) => rt
            .version()
            .await
            .map(|v| format!("{}://{}", v.runtime_name, v.runtime_version))
            .unwrap_or_default(),
        None => String::new(),
    };
    let host_ip = opts.node_ip.clone().unwrap_or_else(node::detect_node_ip);
    let shared = Arc::new(Shared {
        client: client.clone(),
        node_name: opts.node_name.clone(),
        host_ip: host_ip.clone(),
        runtime,
        runtime_error,
        pleg: pleg::Pleg::new(opts.pleg_relist_threshold),
        runtime_state: Mutex::new(RuntimeState::default()),
        pod_logs_dir: opts.data_dir.join("pod-logs"),
        pods_dir: opts.data_dir.join("pods"),
        events: events::Recorder::new(client.clone(), opts.node_name.clone()),
        dns: opts.dns.clone(),
        static_pods: Mutex::default(),
        static_pods_changed: tokio::sync::Notify::new(),
        on_host,
        workers: Mutex::new(HashMap::new()),
    });
    if let Some(rt) = &shared.runtime {
        update_runtime_state(&shared, &**rt).await;
    }
    let (server, kubelet_port) = if on_host {
        start_server(&shared, &opts).await
    } else {
        (None, 0)
    };
    let info = node::NodeInfo {
        node_name: opts.node_name.clone(),
        internal_ip: host_ip,
        runtime_version,
        kubelet_port,
        host: host_facts,
    };
    tracing::info!(node = %opts.node_name, pod_cidr = %pod_cidr, "kubelet started");

    // The Node had no podCIDR yet: follow the one the node IPAM controller assigns, as
    // upstream's kubelet takes it from its Node on each status update (CNI config on a
    // host, the runtime's pod range on every backend). Once set it cannot change.
    let mut follow_cidr = registered
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_none()
        .then(|| (opts.clone(), pod_cidr.clone()));
    // The pod range whose masquerade rule the status loop keeps in place.
    let mut masquerade_cidr = masquerade_cidr;
    let cni_bridge = opts.cni_bridge.clone();
    let status_loop = {
        let shared = shared.clone();
        let client = client.clone();
        async move {
            let mut reporter = node::StatusReporter::new(client.clone());
            let mut tick = tokio::time::interval(node::NODE_STATUS_UPDATE_FREQUENCY);
            // Asked at once, then ever less often (10 s doubling to 5 min): node IPAM
            // assigns within seconds of registration, and in a cluster without it (no
            // --cluster-cidr) thousands of hollow nodes must not each GET every 10 s.
            let mut cidr_check_every = node::NODE_STATUS_UPDATE_FREQUENCY;
            let mut next_cidr_check = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                let cidr_check_due = tokio::time::Instant::now() >= next_cidr_check;
                if let Some((opts, current)) = follow_cidr.as_ref().filter(|_| cidr_check_due) {
                    next_cidr_check = tokio::time::Instant::now() + cidr_check_every;
                    cidr_check_every =
                        (cidr_check_every * 2).min(node::NODE_STATUS_REPORT_FREQUENCY);
                    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
                    // From the watch cache (resourceVersion 0), as upstream's status GET.
                    let assigned = tokio::time::timeout(
                        NODE_GET_TIMEOUT,
                        nodes.get_with(&opts.node_name, &kube::api::GetParams::any()),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|n| n.spec.and_then(|s| s.pod_cidr))
                    .filter(|c| cni::valid_cidr(c));
                    if let Some(cidr) = assigned {
                        if &cidr != current {
                            tracing::info!(node = %opts.node_name, pod_cidr = %cidr, "the node got a podCIDR; pods get addresses from it");
                        }
                        if &cidr != current && on_host && opts.writes_cni_config() {
                            let layout = opts.layout();
                            if let Err(e) = cni::write(
                                &layout.cni_conf_dir,
                                &cidr,
                                &opts.cni_bridge,
                                &opts.data_dir.join("cni/ipam"),
                            ) {
                                tracing::warn!(error = %e, "cannot rewrite the CNI config");
                            }
                        }
                        if let Some(rt) = &shared.runtime {
                            if let Err(e) = rt.update_pod_cidr(&cidr).await {
                                tracing::warn!(error = %e, "cannot tell the runtime the pod CIDR");
                            }
                        }
                        if masquerade_cidr.is_some() {
                            masquerade_cidr = Some(cidr);
                        }
                        follow_cidr = None;
                    }
                }
                let mut health = health(&shared);
                if let Some(cidr) = &masquerade_cidr {
                    if let Err(e) = masquerade::ensure(cidr, &cni_bridge).await {
                        tracing::warn!(error = %e, "cannot install the pod masquerade rule");
                        health.errors.push(format!(
                            "pod network not ready: cannot masquerade traffic from {cidr}: {e}"
                        ));
                    }
                }
                let images = shared
                    .runtime_state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .images
                    .clone();
                if let Err(e) = reporter.report(&machine, &info, &health, &images).await {
                    tracing::warn!(error = %e, "cannot update node status");
                }
            }
        }
    };
    let lease_loop = {
        let client = client.clone();
        async move {
            let mut tick = tokio::time::interval(node::LEASE_RENEW_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(e) = node::renew_lease(&client, &registered).await {
                    tracing::warn!(error = %e, "cannot renew the node lease");
                }
            }
        }
    };
    let synced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pleg_loop = {
        let shared = shared.clone();
        let synced = synced.clone();
        async move {
            let Some(runtime) = shared.runtime.clone() else {
                return std::future::pending().await;
            };
            let mut tick = tokio::time::interval(pleg::RELIST_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                match shared.pleg.relist(&*runtime).await {
                    Ok(changed) => {
                        let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                        for uid in changed {
                            if let Some(w) = workers.get(&uid) {
                                w.poke.notify_one();
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "PLEG relist failed"),
                }
                if n.is_multiple_of(10) && synced.load(std::sync::atomic::Ordering::Acquire) {
                    housekeeping(&shared, &*runtime).await;
                }
            }
        }
    };
    let runtime_status_loop = {
        let shared = shared.clone();
        async move {
            let Some(runtime) = shared.runtime.clone() else {
                return std::future::pending().await;
            };
            let mut tick = tokio::time::interval(RUNTIME_STATUS_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                update_runtime_state(&shared, &*runtime).await;
            }
        }
    };
    let pods_loop = watch_pods(shared.clone(), synced);
    let static_loop = {
        let shared = shared.clone();
        let dir = opts.pod_manifest_path.clone();
        let period = opts.file_check_frequency;
        async move {
            match dir {
                Some(dir) => static_pods::run(shared, dir, period).await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::select! {
        _ = status_loop => {}
        _ = lease_loop => {}
        _ = pleg_loop => {}
        _ = runtime_status_loop => {}
        _ = pods_loop => {}
        _ = static_loop => {}
        _ = shutdown => {}
    }
    if let Some(server) = server {
        server.abort();
    }
    if let Some(c) = containerd {
        c.stop().await;
    }
    tracing::info!(node = %opts.node_name, "kubelet stopped");
    Ok(())
}

/// Starts the HTTPS server when a client CA is known; its task and the port taken.
async fn start_server(
    shared: &Arc<Shared>,
    opts: &Options,
) -> (Option<tokio::task::JoinHandle<()>>, u16) {
    let Some(ca) = &opts.client_ca_pem else {
        tracing::warn!("no client CA: the kubelet serves no HTTPS (logs are unavailable)");
        return (None, 0);
    };
    let bind_ip: std::net::IpAddr = opts
        .node_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let mut names = vec![opts.node_name.clone(), shared.host_ip.clone()];
    names.dedup();
    let tls = match server::tls_config(names, ca) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "the kubelet server cannot start");
            return (None, 0);
        }
    };
    let listener = match tokio::net::TcpListener::bind(std::net::SocketAddr::new(
        bind_ip,
        opts.kubelet_port,
    ))
    .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(port = opts.kubelet_port, error = %e, "the kubelet server cannot listen");
            return (None, 0);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tracing::info!(port, "kubelet server listening");
    let task = tokio::spawn(server::serve(
        shared.clone(),
        listener,
        tls,
        std::future::pending::<()>(),
    ));
    (Some(task), port)
}

/// Removes sandboxes of pods this node no longer has (deleted while the kubelet was
/// away, or force-deleted).
async fn housekeeping(shared: &Shared, runtime: &dyn Runtime) {
    let Ok(sandboxes) = runtime.list_pod_sandboxes(None).await else {
        return;
    };
    let orphans: Vec<String> = {
        let workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
        sandboxes
            .iter()
            .filter_map(|s| s.labels.get(pod_config::POD_UID_LABEL))
            .filter(|uid| !workers.contains_key(*uid))
            .cloned()
            .collect()
    };
    for uid in orphans {
        tracing::info!(pod.uid = %uid, "removing the sandbox of a pod that no longer exists");
        worker::kill_sandbox_and_containers(runtime, &uid, None, Duration::from_secs(2)).await;
    }
}

/// Watches the pods bound to this node and feeds their workers.
async fn watch_pods(shared: Arc<Shared>, synced: Arc<std::sync::atomic::AtomicBool>) {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node_name));
    let mut stream = Box::pin(watcher(api, config));
    // The pods of a (re)list in progress: workers of pods missing from it are stopped.
    let mut listed: Option<std::collections::HashSet<String>> = None;
    loop {
        match stream.try_next().await {
            Ok(Some(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if static_pods::is_mirror(&pod) {
                    // Its static pod runs; the static pod manager keeps the mirror.
                    if pod.metadata.deletion_timestamp.is_some() {
                        shared.static_pods_changed.notify_one();
                    }
                    continue;
                }
                if let Some(listed) = listed.as_mut() {
                    listed.insert(uid.clone());
                }
                let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                match workers.get(&uid) {
                    Some(w) if w.alive() => {
                        let _ = w.pod.send(Some(pod));
                    }
                    _ => {
                        workers.insert(uid, Worker::spawn(shared.clone(), pod));
                    }
                }
            }
            Ok(Some(watcher::Event::Delete(pod))) => {
                if static_pods::is_mirror(&pod) {
                    shared.static_pods_changed.notify_one();
                    continue;
                }
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    let w = shared
                        .workers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(uid);
                    if let Some(w) = w {
                        let _ = w.pod.send(None);
                    }
                }
            }
            Ok(Some(watcher::Event::InitDone)) => {
                if let Some(listed) = listed.take() {
                    let statics = shared
                        .static_pods
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
                    workers.retain(|uid, w| {
                        let keep = listed.contains(uid) || statics.contains(uid);
                        if !keep {
                            let _ = w.pod.send(None);
                        }
                        keep
                    });
                }
                synced.store(true, std::sync::atomic::Ordering::Release);
            }
            Ok(Some(watcher::Event::Init)) => listed = Some(Default::default()),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
