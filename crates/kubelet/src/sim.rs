//! A simulated container runtime: [`SimRuntime`] implements [`Runtime`] in memory, so
//! the real kubelet (registration, Lease, node status, PLEG, pod workers, probes, status
//! reports, graceful termination) runs hollow nodes without touching the machine. No OS
//! call is made: sandboxes get IPs from the node's pod CIDR in memory, containers go
//! through created → running → exited as CRI says, images are pulled at once.
//!
//! What the containers do is read from the pod's annotations (the sandbox config carries
//! them, as CRI's does):
//! - [`EXIT_CODE_ANNOTATION`] `N`: every container exits with `N` right after it started
//!   (without it a container runs until stopped), so Jobs complete and `restartPolicy`,
//!   restarts and CrashLoopBackOff are exercised;
//! - [`EXEC_EXIT_CODE_ANNOTATION`] `N`: every exec (exec probes included) exits with `N`,
//!   and network probes (tcpSocket, httpGet, grpc) fail when `N` is not 0;
//! - [`TERMINATION_SECONDS_ANNOTATION`] `S`: a container needs `S` seconds to exit after
//!   SIGTERM (killed at the grace period with 137); without it, it exits at once (143).
//!
//! An image from a registry whose host ends in `.invalid` (RFC 2606) is one the
//! registry does not have: its pull fails with containerd's `not found` message, so
//! ErrImagePull and the pull back-off are exercised.
//!
//! Every call goes through the same deadline as the real runtime's: a configurable
//! latency is waited under the call's timeout, and a call slower than its deadline fails
//! with [`RuntimeError::DeadlineExceeded`].

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::cri::{api, Result, Runtime, RuntimeError, IMAGE_PULL_TIMEOUT};
use crate::pod_status::{CONTAINER_CREATED, CONTAINER_EXITED, CONTAINER_RUNNING};
use crate::time::now_nanos;

/// A pod annotation: the containers exit with this code once started.
pub const EXIT_CODE_ANNOTATION: &str = "hollow.rkube.io/exit-code";
/// A pod annotation: execs in the pod's containers (exec probes too) exit with this
/// code; network probes fail unless it is 0.
pub const EXEC_EXIT_CODE_ANNOTATION: &str = "hollow.rkube.io/exec-exit-code";
/// A pod annotation: seconds a container takes to exit after SIGTERM.
pub const TERMINATION_SECONDS_ANNOTATION: &str = "hollow.rkube.io/termination-seconds";
/// The runtime's name in `containerRuntimeVersion` (`rkube-sim://<version>`).
pub const RUNTIME_NAME: &str = "rkube-sim";

const SANDBOX_READY: i32 = 0;
const SANDBOX_NOTREADY: i32 = 1;
/// The exit codes of a process ended by SIGTERM and by SIGKILL.
const EXIT_SIGTERM: i32 = 128 + 15;
const EXIT_SIGKILL: i32 = 128 + 9;

/// How a simulated runtime behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The range pod IPs come from until the kubelet says otherwise
    /// ([`Runtime::update_pod_cidr`]).
    pub pod_cidr: String,
    /// The deadline of ordinary calls (`--runtime-request-timeout`).
    pub timeout: Duration,
    /// How long every call takes (zero: answered at once).
    pub latency: Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            pod_cidr: crate::cni::DEFAULT_POD_CIDR.into(),
            timeout: crate::cri::RUNTIME_REQUEST_TIMEOUT,
            latency: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
struct Sandbox {
    id: String,
    config: api::PodSandboxConfig,
    state: i32,
    created_at: i64,
    /// The pod IP (empty: the node's network).
    ip: String,
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    sandbox_id: String,
    config: api::ContainerConfig,
    image_ref: String,
    state: i32,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
    /// Exits with this code once started (the exit-code annotation).
    exits_with: Option<i32>,
    /// Seconds it needs to exit after SIGTERM.
    termination: Duration,
    /// Every exec's exit code.
    exec_exit_code: i32,
}

impl Container {
    fn exit(&mut self, code: i32, at: i64) {
        self.state = CONTAINER_EXITED;
        self.exit_code = code;
        self.finished_at = at;
        self.reason = if code == 0 { "Completed" } else { "Error" }.into();
    }

    fn status(&self) -> api::ContainerStatus {
        api::ContainerStatus {
            id: self.id.clone(),
            metadata: self.config.metadata.clone(),
            state: self.state,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            image: self.config.image.clone(),
            image_ref: self.image_ref.clone(),
            image_id: self.image_ref.clone(),
            reason: self.reason.clone(),
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
            log_path: self.config.log_path.clone(),
            ..Default::default()
        }
    }

    fn summary(&self) -> api::Container {
        api::Container {
            id: self.id.clone(),
            pod_sandbox_id: self.sandbox_id.clone(),
            metadata: self.config.metadata.clone(),
            image: self.config.image.clone(),
            image_ref: self.image_ref.clone(),
            image_id: self.image_ref.clone(),
            state: self.state,
            created_at: self.created_at,
            labels: self.config.labels.clone(),
            annotations: self.config.annotations.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    /// Pulled images by normalized reference.
    images: BTreeMap<String, api::Image>,
    /// The pod network: base address, prefix length, and the host numbers in use.
    network: (u32, u8),
    used_ips: std::collections::HashSet<u32>,
}

impl State {
    fn id(&mut self, seed: &str) -> String {
        self.next_id += 1;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{seed}/{}", self.next_id).as_bytes(),
        );
        hex(digest.as_ref())
    }

    fn allocate_ip(&mut self) -> std::result::Result<String, String> {
        let (base, prefix) = self.network;
        let hosts = if prefix >= 31 {
            0
        } else {
            (1u64 << (32 - prefix)) - 2
        };
        // .1 is the bridge (as host-local's gateway); pods from .2 up.
        for n in 2..=hosts as u32 {
            if self.used_ips.insert(n) {
                return Ok(Ipv4Addr::from(base + n).to_string());
            }
        }
        let first = Ipv4Addr::from(base + 1);
        let last = Ipv4Addr::from(base + hosts as u32);
        Err(format!(
            "failed to allocate for range 0: no IP addresses available in range set: {first}-{last}"
        ))
    }

    fn release_ip(&mut self, ip: &str) {
        if let Ok(addr) = ip.parse::<Ipv4Addr>() {
            let n = u32::from(addr).wrapping_sub(self.network.0);
            self.used_ips.remove(&n);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `10.1.2.0/24` → (base address, prefix).
fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (ip, prefix) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some((u32::from(ip) & mask, prefix))
}

/// An image reference as containerd names it: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_host {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    } else if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// The registry host of a normalized reference.
fn registry_host(normalized: &str) -> &str {
    normalized.split('/').next().unwrap_or_default()
}

fn not_found(op: &'static str, what: &str, id: &str) -> RuntimeError {
    RuntimeError::Rpc {
        op,
        code: tonic::Code::NotFound,
        message: format!("an error occurred when try to find {what} {id:?}: not found"),
    }
}

fn annotation<T: std::str::FromStr>(annotations: &HashMap<String, String>, key: &str) -> Option<T> {
    annotations.get(key).and_then(|v| v.trim().parse().ok())
}

/// The in-memory runtime of a hollow node.
#[derive(Debug)]
pub struct SimRuntime {
    opts: SimOptions,
    state: Mutex<State>,
}

impl SimRuntime {
    pub fn new(opts: SimOptions) -> Self {
        let network =
            parse_cidr(&opts.pod_cidr).unwrap_or((u32::from(Ipv4Addr::new(10, 42, 0, 0)), 24));
        SimRuntime {
            opts,
            state: Mutex::new(State {
                network,
                ..Default::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits the configured latency under the call's deadline, as a remote call would.
    async fn call(&self, op: &'static str, timeout: Duration) -> Result<()> {
        if self.opts.latency.is_zero() {
            return Ok(());
        }
        tokio::time::timeout(timeout, tokio::time::sleep(self.opts.latency))
            .await
            .map_err(|_| RuntimeError::DeadlineExceeded { op, timeout })
    }

    /// Brings containers whose exit is due to the exited state.
    fn settle(state: &mut State) {
        for c in state.containers.values_mut() {
            if c.state == CONTAINER_RUNNING {
                if let Some(code) = c.exits_with {
                    let at = c.started_at;
                    c.exit(code, at);
                }
            }
        }
    }

    fn running_container(&self, op: &'static str, id: &str) -> Result<Container> {
        let mut state = self.state();
        Self::settle(&mut state);
        let c = state
            .containers
            .get(id)
            .ok_or_else(|| not_found(op, "container", id))?;
        if c.state != CONTAINER_RUNNING {
            return Err(RuntimeError::Rpc {
                op,
                code: tonic::Code::Unknown,
                message: format!(
                    "container {id} is not running: {}",
                    match c.state {
                        CONTAINER_CREATED => "CONTAINER_CREATED",
                        CONTAINER_EXITED => "CONTAINER_EXITED",
                        _ => "CONTAINER_UNKNOWN",
                    }
                ),
            });
        }
        Ok(c.clone())
    }

    fn image_of(state: &State, image: &str) -> Option<api::Image> {
        if let Some(img) = state.images.get(&normalize_image(image)) {
            return Some(img.clone());
        }
        state
            .images
            .values()
            .find(|i| i.id == image || i.repo_digests.iter().any(|d| d == image))
            .cloned()
    }
}

#[async_trait]
impl Runtime for SimRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        self.call("version", self.opts.timeout).await?;
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        self.call("status", self.opts.timeout).await?;
        let ready = |t: &str| api::RuntimeCondition {
            r#type: t.into(),
            status: true,
            ..Default::default()
        };
        Ok(api::RuntimeStatus {
            conditions: vec![ready("RuntimeReady"), ready("NetworkReady")],
        })
    }

    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<()> {
        self.call("update_runtime_config", self.opts.timeout)
            .await?;
        let network = parse_cidr(pod_cidr).ok_or_else(|| RuntimeError::Rpc {
            op: "update_runtime_config",
            code: tonic::Code::InvalidArgument,
            message: format!("invalid CIDR address: {pod_cidr}"),
        })?;
        let mut state = self.state();
        if state.network != network {
            state.network = network;
            state.used_ips.clear();
        }
        Ok(())
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        self.call("run_pod_sandbox", self.opts.timeout).await?;
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .is_some_and(|n| n.network == api::NamespaceMode::Node as i32);
        let mut state = self.state();
        let uid = config
            .metadata
            .as_ref()
            .map(|m| m.uid.clone())
            .unwrap_or_default();
        let ip = if host_network {
            String::new()
        } else {
            state.allocate_ip().map_err(|e| RuntimeError::Rpc {
                op: "run_pod_sandbox",
                code: tonic::Code::Unknown,
                message: format!(
                    "failed to setup network for sandbox: plugin type=\"host-local\" failed (add): {e}"
                ),
            })?
        };
        let id = state.id(&uid);
        state.sandboxes.insert(
            id.clone(),
            Sandbox {
                id: id.clone(),
                config,
                state: SANDBOX_READY,
                created_at: now_nanos(),
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.call("stop_pod_sandbox", self.opts.timeout).await?;
        let mut state = self.state();
        let Some(sandbox) = state.sandboxes.get_mut(id) else {
            // CRI: stopping a sandbox that is gone succeeds.
            return Ok(());
        };
        sandbox.state = SANDBOX_NOTREADY;
        let ip = std::mem::take(&mut sandbox.ip);
        state.release_ip(&ip);
        let now = now_nanos();
        for c in state.containers.values_mut() {
            if c.sandbox_id == id && c.state == CONTAINER_RUNNING {
                c.exit(EXIT_SIGKILL, now);
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.call("remove_pod_sandbox", self.opts.timeout).await?;
        let mut state = self.state();
        if let Some(sandbox) = state.sandboxes.remove(id) {
            state.release_ip(&sandbox.ip);
        }
        state.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        self.call("pod_sandbox_status", self.opts.timeout).await?;
        let state = self.state();
        let s = state
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("pod_sandbox_status", "sandbox", id))?;
        Ok(api::PodSandboxStatus {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state,
            created_at: s.created_at,
            network: Some(api::PodSandboxNetworkStatus {
                ip: s.ip.clone(),
                additional_ips: Vec::new(),
            }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        self.call("list_pod_sandbox", self.opts.timeout).await?;
        let state = self.state();
        Ok(state
            .sandboxes
            .values()
            .filter(|s| filter.as_ref().is_none_or(|f| sandbox_selected(f, s)))
            .map(|s| api::PodSandbox {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: s.state,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: String::new(),
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        self.call("create_container", self.opts.timeout).await?;
        let mut state = self.state();
        let Some(sandbox) = state.sandboxes.get(sandbox_id) else {
            return Err(not_found("create_container", "sandbox", sandbox_id));
        };
        if sandbox.state != SANDBOX_READY {
            return Err(RuntimeError::Rpc {
                op: "create_container",
                code: tonic::Code::Unknown,
                message: format!("sandbox container {sandbox_id:?} is not running"),
            });
        }
        let image = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let Some(img) = Self::image_of(&state, &image) else {
            return Err(RuntimeError::Rpc {
                op: "create_container",
                code: tonic::Code::NotFound,
                message: format!(
                    "failed to get image {:?}: image {:?}: not found",
                    image,
                    normalize_image(&image)
                ),
            });
        };
        let pod = &sandbox_config.annotations;
        let exits_with = annotation(pod, EXIT_CODE_ANNOTATION);
        let termination = Duration::from_secs(
            annotation::<u64>(pod, TERMINATION_SECONDS_ANNOTATION).unwrap_or(0),
        );
        let exec_exit_code = annotation(pod, EXEC_EXIT_CODE_ANNOTATION).unwrap_or(0);
        let id = state.id(sandbox_id);
        state.containers.insert(
            id.clone(),
            Container {
                id: id.clone(),
                sandbox_id: sandbox_id.into(),
                config,
                image_ref: img.id,
                state: CONTAINER_CREATED,
                created_at: now_nanos(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                exits_with,
                termination,
                exec_exit_code,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.call("start_container", self.opts.timeout).await?;
        let mut state = self.state();
        let c = state
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("start_container", "container", id))?;
        if c.state != CONTAINER_CREATED {
            return Err(RuntimeError::Rpc {
                op: "start_container",
                code: tonic::Code::Unknown,
                message: format!("container {id} is not in created state"),
            });
        }
        c.state = CONTAINER_RUNNING;
        c.started_at = now_nanos();
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let timeout = self.opts.timeout + grace;
        self.call("stop_container", timeout).await?;
        let termination = {
            let mut state = self.state();
            Self::settle(&mut state);
            let c = state
                .containers
                .get(id)
                .ok_or_else(|| not_found("stop_container", "container", id))?;
            if c.state != CONTAINER_RUNNING {
                return Ok(());
            }
            c.termination
        };
        // SIGTERM; the process takes its time to exit, SIGKILL at the grace period.
        let (wait, code) = if termination < grace {
            (termination, EXIT_SIGTERM)
        } else {
            (grace, EXIT_SIGKILL)
        };
        if !wait.is_zero() {
            tokio::time::timeout(timeout, tokio::time::sleep(wait))
                .await
                .map_err(|_| RuntimeError::DeadlineExceeded {
                    op: "stop_container",
                    timeout,
                })?;
        }
        let mut state = self.state();
        if let Some(c) = state.containers.get_mut(id) {
            if c.state == CONTAINER_RUNNING {
                c.exit(code, now_nanos());
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.call("remove_container", self.opts.timeout).await?;
        // CRI: removing a container that is gone succeeds.
        self.state().containers.remove(id);
        Ok(())
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        self.call("list_containers", self.opts.timeout).await?;
        let mut state = self.state();
        Self::settle(&mut state);
        Ok(state
            .containers
            .values()
            .map(Container::summary)
            .filter(|c| filter.as_ref().is_none_or(|f| container_selected(f, c)))
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        self.call("container_status", self.opts.timeout).await?;
        let mut state = self.state();
        Self::settle(&mut state);
        state
            .containers
            .get(id)
            .map(Container::status)
            .ok_or_else(|| not_found("container_status", "container", id))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        self.call("exec_sync", timeout + Duration::from_secs(2))
            .await?;
        let c = self.running_container("exec_sync", id)?;
        let stderr = if c.exec_exit_code == 0 {
            Vec::new()
        } else {
            format!(
                "{}: simulated exit code {}\n",
                cmd.first().map(String::as_str).unwrap_or_default(),
                c.exec_exit_code
            )
            .into_bytes()
        };
        Ok(api::ExecSyncResponse {
            stdout: Vec::new(),
            stderr,
            exit_code: c.exec_exit_code,
        })
    }

    async fn simulated_network_probe(
        &self,
        container_id: &str,
    ) -> Option<std::result::Result<(), String>> {
        Some(match self.running_container("probe", container_id) {
            Ok(c) if c.exec_exit_code == 0 => Ok(()),
            Ok(_) => Err("connect: connection refused".into()),
            Err(e) => Err(e.message()),
        })
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        self.call("image_status", self.opts.timeout).await?;
        Ok(Self::image_of(&self.state(), image))
    }

    async fn pull_image(&self, image: &str, _auth: Option<api::AuthConfig>) -> Result<String> {
        self.call("pull_image", IMAGE_PULL_TIMEOUT).await?;
        let reference = normalize_image(image);
        if registry_host(&reference).ends_with(".invalid") {
            return Err(RuntimeError::Rpc {
                op: "pull_image",
                code: tonic::Code::NotFound,
                message: format!(
                    "failed to pull and unpack image {reference:?}: failed to resolve reference {reference:?}: {reference}: not found"
                ),
            });
        }
        let mut state = self.state();
        if let Some(img) = state.images.get(&reference) {
            return Ok(img.id.clone());
        }
        let digest =
            hex(ring::digest::digest(&ring::digest::SHA256, reference.as_bytes()).as_ref());
        let repo = reference
            .split_once('@')
            .map_or_else(
                || {
                    reference
                        .rsplit_once(':')
                        .map_or(reference.as_str(), |(r, _)| r)
                },
                |(r, _)| r,
            )
            .to_owned();
        let img = api::Image {
            id: format!("sha256:{digest}"),
            repo_tags: if reference.contains('@') {
                Vec::new()
            } else {
                vec![reference.clone()]
            },
            repo_digests: vec![format!("{repo}@sha256:{digest}")],
            // 1 to 64 MiB, fixed per image.
            size: (u64::from_str_radix(&digest[..6], 16).unwrap_or(0) % 64 + 1) << 20,
            ..Default::default()
        };
        let id = img.id.clone();
        state.images.insert(reference, img);
        Ok(id)
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        self.call("list_images", self.opts.timeout).await?;
        Ok(self.state().images.values().cloned().collect())
    }

    async fn exec(&self, _req: api::ExecRequest) -> Result<String> {
        Err(no_streaming("exec"))
    }

    async fn attach(&self, _req: api::AttachRequest) -> Result<String> {
        Err(no_streaming("attach"))
    }

    async fn port_forward(&self, _req: api::PortForwardRequest) -> Result<String> {
        Err(no_streaming("port_forward"))
    }

    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
        self.call("list_container_stats", self.opts.timeout).await?;
        let mut state = self.state();
        Self::settle(&mut state);
        let now = now_nanos();
        Ok(state
            .containers
            .values()
            .filter(|c| c.state == CONTAINER_RUNNING)
            .map(|c| {
                // A steady 1 millicore and 4 MiB per running container.
                let running = (now - c.started_at).max(0) as u64;
                api::ContainerStats {
                    attributes: Some(api::ContainerAttributes {
                        id: c.id.clone(),
                        metadata: c.config.metadata.clone(),
                        labels: c.config.labels.clone(),
                        annotations: c.config.annotations.clone(),
                    }),
                    cpu: Some(api::CpuUsage {
                        timestamp: now,
                        usage_core_nano_seconds: Some(api::UInt64Value {
                            value: running / 1000,
                        }),
                        usage_nano_cores: Some(api::UInt64Value { value: 1_000_000 }),
                    }),
                    memory: Some(api::MemoryUsage {
                        timestamp: now,
                        working_set_bytes: Some(api::UInt64Value { value: 4 << 20 }),
                        usage_bytes: Some(api::UInt64Value { value: 4 << 20 }),
                        rss_bytes: Some(api::UInt64Value { value: 4 << 20 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            })
            .collect())
    }
}

/// Whether `labels` has every pair of a CRI `label_selector`.
fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether CRI's ListPodSandbox `filter` selects `s` (every field set must match).
fn sandbox_selected(f: &api::PodSandboxFilter, s: &Sandbox) -> bool {
    (f.id.is_empty() || f.id == s.id)
        && f.state.as_ref().is_none_or(|st| st.state == s.state)
        && labels_match(&s.config.labels, &f.label_selector)
}

/// Whether CRI's ListContainers `filter` selects `c` (every field set must match).
fn container_selected(f: &api::ContainerFilter, c: &api::Container) -> bool {
    (f.id.is_empty() || f.id == c.id)
        && (f.pod_sandbox_id.is_empty() || f.pod_sandbox_id == c.pod_sandbox_id)
        && f.state.as_ref().is_none_or(|st| st.state == c.state)
        && labels_match(&c.labels, &f.label_selector)
}

fn no_streaming(op: &'static str) -> RuntimeError {
    RuntimeError::Rpc {
        op,
        code: tonic::Code::Unimplemented,
        message: "the simulated runtime of a hollow node has no streaming server".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox_config(uid: &str, annotations: &[(&str, &str)]) -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "p".into(),
                uid: uid.into(),
                namespace: "d".into(),
                attempt: 0,
            }),
            labels: HashMap::from([(crate::pod_config::POD_UID_LABEL.into(), uid.into())]),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn container_config(image: &str) -> api::ContainerConfig {
        api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn sim(cidr: &str) -> SimRuntime {
        SimRuntime::new(SimOptions {
            pod_cidr: cidr.into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn lists_honour_cri_filters() {
        let rt = sim("10.9.0.0/24");
        rt.pull_image("busybox", None).await.unwrap();
        let (cfg1, cfg2) = (sandbox_config("u1", &[]), sandbox_config("u2", &[]));
        let sb1 = rt.run_pod_sandbox(cfg1.clone()).await.unwrap();
        let sb2 = rt.run_pod_sandbox(cfg2.clone()).await.unwrap();
        let mut cc = container_config("busybox");
        cc.labels = cfg1.labels.clone();
        let c1 = rt.create_container(&sb1, cc, cfg1).await.unwrap();
        let mut cc = container_config("busybox");
        cc.labels = cfg2.labels.clone();
        let c2 = rt.create_container(&sb2, cc, cfg2).await.unwrap();
        rt.start_container(&c2).await.unwrap();

        let uid = |u: &str| HashMap::from([(crate::pod_config::POD_UID_LABEL.into(), u.into())]);
        let ids = |v: Vec<api::PodSandbox>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
        let cids = |v: Vec<api::Container>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(rt.list_pod_sandboxes(None).await.unwrap().len(), 2);
        let by_uid = api::PodSandboxFilter {
            label_selector: uid("u2"),
            ..Default::default()
        };
        assert_eq!(
            ids(rt.list_pod_sandboxes(Some(by_uid)).await.unwrap()),
            std::slice::from_ref(&sb2)
        );
        let by_id = api::PodSandboxFilter {
            id: sb1.clone(),
            ..Default::default()
        };
        assert_eq!(
            ids(rt.list_pod_sandboxes(Some(by_id)).await.unwrap()),
            std::slice::from_ref(&sb1)
        );
        let none = api::PodSandboxFilter {
            id: sb1.clone(),
            label_selector: uid("u2"),
            ..Default::default()
        };
        assert!(rt.list_pod_sandboxes(Some(none)).await.unwrap().is_empty());

        assert_eq!(rt.list_containers(None).await.unwrap().len(), 2);
        let in_sb1 = api::ContainerFilter {
            pod_sandbox_id: sb1.clone(),
            ..Default::default()
        };
        assert_eq!(
            cids(rt.list_containers(Some(in_sb1)).await.unwrap()),
            std::slice::from_ref(&c1)
        );
        let of_u2 = api::ContainerFilter {
            label_selector: uid("u2"),
            ..Default::default()
        };
        assert_eq!(
            cids(rt.list_containers(Some(of_u2)).await.unwrap()),
            std::slice::from_ref(&c2)
        );
        let running = api::ContainerFilter {
            state: Some(api::ContainerStateValue {
                state: CONTAINER_RUNNING,
            }),
            ..Default::default()
        };
        assert_eq!(cids(rt.list_containers(Some(running)).await.unwrap()), [c2]);
        let mismatch = api::ContainerFilter {
            pod_sandbox_id: sb2,
            label_selector: uid("u1"),
            ..Default::default()
        };
        assert!(rt.list_containers(Some(mismatch)).await.unwrap().is_empty());
    }

    #[test]
    fn normalizes_references_as_containerd() {
        assert_eq!(
            normalize_image("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(normalize_image("a/b:1"), "docker.io/a/b:1");
        assert_eq!(
            normalize_image("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            normalize_image("reg.invalid/x@sha256:ab"),
            "reg.invalid/x@sha256:ab"
        );
    }

    #[tokio::test]
    async fn containers_run_exit_and_stop_as_cri_says() {
        let rt = sim("10.9.0.0/24");
        let img = rt.pull_image("busybox", None).await.unwrap();
        assert!(img.starts_with("sha256:"));
        assert_eq!(
            rt.image_status("docker.io/library/busybox:latest")
                .await
                .unwrap()
                .unwrap()
                .id,
            img
        );
        let cfg = sandbox_config("u1", &[]);
        let sb = rt.run_pod_sandbox(cfg.clone()).await.unwrap();
        let st = rt.pod_sandbox_status(&sb).await.unwrap();
        assert_eq!(st.network.unwrap().ip, "10.9.0.2");
        let c = rt
            .create_container(&sb, container_config("busybox"), cfg.clone())
            .await
            .unwrap();
        assert_eq!(
            rt.container_status(&c).await.unwrap().state,
            CONTAINER_CREATED
        );
        rt.start_container(&c).await.unwrap();
        assert_eq!(
            rt.container_status(&c).await.unwrap().state,
            CONTAINER_RUNNING
        );
        assert_eq!(
            rt.exec_sync(&c, vec!["true".into()], Duration::from_secs(1))
                .await
                .unwrap()
                .exit_code,
            0
        );
        assert_eq!(rt.simulated_network_probe(&c).await, Some(Ok(())));
        rt.stop_container(&c, Duration::from_secs(30))
            .await
            .unwrap();
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(
            (s.state, s.exit_code, s.reason.as_str()),
            (CONTAINER_EXITED, 143, "Error")
        );
        rt.stop_pod_sandbox(&sb).await.unwrap();
        rt.remove_pod_sandbox(&sb).await.unwrap();
        assert!(rt.list_containers(None).await.unwrap().is_empty());
        assert!(rt.container_status(&c).await.unwrap_err().is_not_found());
        // The IP went back to the pool.
        let sb2 = rt.run_pod_sandbox(sandbox_config("u2", &[])).await.unwrap();
        assert_eq!(
            rt.pod_sandbox_status(&sb2)
                .await
                .unwrap()
                .network
                .unwrap()
                .ip,
            "10.9.0.2"
        );
    }

    #[tokio::test]
    async fn annotations_drive_exits_execs_and_termination() {
        let rt = sim("10.9.0.0/24");
        rt.pull_image("busybox:1", None).await.unwrap();
        let cfg = sandbox_config(
            "u1",
            &[
                (EXIT_CODE_ANNOTATION, "3"),
                (EXEC_EXIT_CODE_ANNOTATION, "1"),
            ],
        );
        let sb = rt.run_pod_sandbox(cfg.clone()).await.unwrap();
        let c = rt
            .create_container(&sb, container_config("busybox:1"), cfg)
            .await
            .unwrap();
        rt.start_container(&c).await.unwrap();
        let s = rt.container_status(&c).await.unwrap();
        assert_eq!(
            (s.state, s.exit_code, s.reason.as_str()),
            (CONTAINER_EXITED, 3, "Error")
        );
        assert!(rt
            .exec_sync(&c, vec!["true".into()], Duration::from_secs(1))
            .await
            .is_err());

        let cfg = sandbox_config(
            "u2",
            &[
                (EXEC_EXIT_CODE_ANNOTATION, "1"),
                (TERMINATION_SECONDS_ANNOTATION, "100"),
            ],
        );
        let sb = rt.run_pod_sandbox(cfg.clone()).await.unwrap();
        let c = rt
            .create_container(&sb, container_config("busybox:1"), cfg)
            .await
            .unwrap();
        rt.start_container(&c).await.unwrap();
        let r = rt
            .exec_sync(&c, vec!["check".into()], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(r.exit_code, 1);
        assert_eq!(
            rt.simulated_network_probe(&c).await,
            Some(Err("connect: connection refused".into()))
        );
        // Ignores SIGTERM longer than the grace period: SIGKILL.
        rt.stop_container(&c, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(rt.container_status(&c).await.unwrap().exit_code, 137);
    }

    #[tokio::test]
    async fn missing_images_and_exhausted_ranges_fail_as_the_real_ones() {
        let rt = sim("10.9.0.0/30");
        let e = rt
            .pull_image("registry.invalid/app:1", None)
            .await
            .unwrap_err();
        assert_eq!(
            e.message(),
            "rpc error: code = NotFound desc = failed to pull and unpack image \"registry.invalid/app:1\": failed to resolve reference \"registry.invalid/app:1\": registry.invalid/app:1: not found"
        );
        let sb = rt.run_pod_sandbox(sandbox_config("u1", &[])).await.unwrap();
        // A /30 has one pod address after the gateway.
        let e = rt
            .run_pod_sandbox(sandbox_config("u2", &[]))
            .await
            .unwrap_err();
        assert!(
            e.message()
                .contains("no IP addresses available in range set: 10.9.0.1-10.9.0.2"),
            "{e}"
        );
        let e = rt
            .create_container(&sb, container_config("nope"), sandbox_config("u1", &[]))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        rt.update_pod_cidr("10.8.0.0/24").await.unwrap();
        let sb = rt.run_pod_sandbox(sandbox_config("u3", &[])).await.unwrap();
        assert_eq!(
            rt.pod_sandbox_status(&sb)
                .await
                .unwrap()
                .network
                .unwrap()
                .ip,
            "10.8.0.2"
        );
    }

    #[tokio::test]
    async fn slow_calls_fail_at_their_deadline() {
        let rt = SimRuntime::new(SimOptions {
            timeout: Duration::from_millis(20),
            latency: Duration::from_millis(500),
            ..Default::default()
        });
        let e = rt.version().await.unwrap_err();
        assert!(
            matches!(e, RuntimeError::DeadlineExceeded { op: "version", .. }),
            "{e}"
        );
    }
}
