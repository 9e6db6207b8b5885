//! The container runtime as the kubelet sees it: [`Runtime`], CRI-shaped (sandboxes,
//! containers, images), and [`CriRuntime`], the CRI v1 gRPC client over a unix socket.
//! Every call carries a deadline, both as gRPC's `grpc-timeout` and as a local timer,
//! so a runtime that stops answering fails the call instead of hanging the caller.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint, Uri};

/// The deadline of ordinary runtime calls (upstream's `--runtime-request-timeout`).
pub const RUNTIME_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The deadline of an image pull.
pub const IMAGE_PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// The deadline of connecting to the runtime's socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed runtime call.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{op}: the container runtime did not answer within {timeout:?}")]
    DeadlineExceeded { op: &'static str, timeout: Duration },
    #[error("{op}: rpc error: code = {code:?} desc = {message}")]
    Rpc {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("cannot connect to the container runtime at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
}

impl RuntimeError {
    /// Whether the runtime said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RuntimeError::Rpc {
                code: tonic::Code::NotFound,
                ..
            }
        )
    }
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// A container runtime: the CRI v1 runtime and image services, in the kubelet's terms.
/// The real one is [`CriRuntime`]; a simulated one (hollow nodes) implements the same.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The runtime's name and version.
    async fn version(&self) -> Result<api::VersionResponse>;
    /// The runtime's conditions (RuntimeReady, NetworkReady).
    async fn status(&self) -> Result<api::RuntimeStatus>;

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String>;
    async fn stop_pod_sandbox(&self, id: &str) -> Result<()>;
    async fn remove_pod_sandbox(&self, id: &str) -> Result<()>;
    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus>;
    /// The sandboxes `filter` selects (all without one), as CRI's ListPodSandbox.
    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>>;

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stops a container: SIGTERM (or its stop signal), SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// The containers `filter` selects (all without one), as CRI's ListContainers.
    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>>;
    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus>;
    /// Runs `cmd` in a container, killing it after `timeout`; its exit code and output.
    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse>;

    /// The image if the runtime has it.
    async fn image_status(&self, image: &str) -> Result<Option<api::Image>>;
    /// Pulls an image; returns its reference (digest).
    async fn pull_image(&self, image: &str, auth: Option<api::AuthConfig>) -> Result<String>;
    async fn list_images(&self) -> Result<Vec<api::Image>>;

    /// A streaming URL on the runtime's server for an exec (CRI `Exec`).
    async fn exec(&self, req: api::ExecRequest) -> Result<String>;
    /// A streaming URL for attaching to a container (CRI `Attach`).
    async fn attach(&self, req: api::AttachRequest) -> Result<String>;
    /// A streaming URL for forwarding ports of a sandbox (CRI `PortForward`).
    async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String>;
    /// CPU and memory of every container (CRI `ListContainerStats`).
    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>>;
    /// Tells the runtime the node's pod CIDR (CRI `UpdateRuntimeConfig`).
    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<()>;
    /// The outcome of a network probe (tcpSocket, httpGet, grpc) of a container, when
    /// the runtime simulates the pod network and so answers it itself (`Err`: the
    /// failure's message); `None`: the kubelet probes the pod's address for real.
    async fn simulated_network_probe(
        &self,
        _container_id: &str,
    ) -> Option<std::result::Result<(), String>> {
        None
    }
}

/// The CRI v1 client of a runtime listening on a unix socket (containerd).
#[derive(Clone)]
pub struct CriRuntime {
    endpoint: String,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    /// The deadline of ordinary calls (`--runtime-request-timeout`).
    timeout: Duration,
}

impl std::fmt::Debug for CriRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriRuntime")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The socket path of an endpoint given as `unix:///path` or `/path`.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

impl CriRuntime {
    /// Connects to the runtime's socket (lazily: the first call dials, with a deadline).
    pub fn connect(endpoint: &str) -> Result<Self> {
        Self::connect_with_timeout(endpoint, RUNTIME_REQUEST_TIMEOUT)
    }

    /// As [`CriRuntime::connect`], with `timeout` as the deadline of ordinary calls.
    pub fn connect_with_timeout(endpoint: &str, timeout: Duration) -> Result<Self> {
        let path = socket_path(endpoint);
        let channel = Endpoint::try_from("http://[::]:50051")
            .map_err(|e| RuntimeError::Connect {
                endpoint: endpoint.to_owned(),
                message: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout.max(IMAGE_PULL_TIMEOUT))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        tokio::net::UnixStream::connect(path),
                    )
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }));
        Ok(CriRuntime {
            endpoint: endpoint.to_owned(),
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            timeout,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Runs one call with a deadline: `grpc-timeout` on the request and a local timer.
async fn call<T, F, Fut>(op: &'static str, timeout: Duration, req: T, f: F) -> Result<Fut::Output>
where
    F: FnOnce(tonic::Request<T>) -> Fut,
    Fut: std::future::Future,
{
    let mut request = tonic::Request::new(req);
    request.set_timeout(timeout);
    tokio::time::timeout(timeout + Duration::from_millis(500), f(request))
        .await
        .map_err(|_| RuntimeError::DeadlineExceeded { op, timeout })
}

fn rpc(op: &'static str, timeout: Duration) -> impl FnOnce(tonic::Status) -> RuntimeError {
    move |s| {
        // tonic reports its own expired deadline as `Cancelled: Timeout expired`.
        if s.code() == tonic::Code::DeadlineExceeded
            || (s.code() == tonic::Code::Cancelled && s.message() == "Timeout expired")
        {
            return RuntimeError::DeadlineExceeded { op, timeout };
        }
        RuntimeError::Rpc {
            op,
            code: s.code(),
            message: s.message().to_owned(),
        }
    }
}

macro_rules! cri {
    ($self:ident, $svc:ident, $method:ident, $timeout:expr, $req:expr) => {{
        let mut client = $self.$svc.clone();
        let timeout = $timeout;
        call(stringify!($method), timeout, $req, |r| async move {
            client.$method(r).await
        })
        .await?
        .map(|r| r.into_inner())
        .map_err(rpc(stringify!($method), timeout))
    }};
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        cri!(
            self,
            runtime,
            version,
            self.timeout,
            api::VersionRequest {
                version: "v1".into()
            }
        )
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        let r = cri!(
            self,
            runtime,
            status,
            self.timeout,
            api::StatusRequest { verbose: false }
        )?;
        Ok(r.status.unwrap_or_default())
    }

    async fn run_pod_sandbox(&self, config: api::PodSandboxConfig) -> Result<String> {
        let r = cri!(
            self,
            runtime,
            run_pod_sandbox,
            self.timeout,
            api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            }
        )?;
        Ok(r.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        cri!(
            self,
            runtime,
            stop_pod_sandbox,
            self.timeout,
            api::StopPodSandboxRequest {
                pod_sandbox_id: id.into()
            }
        )
        .map(drop)
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        cri!(
            self,
            runtime,
            remove_pod_sandbox,
            self.timeout,
            api::RemovePodSandboxRequest {
                pod_sandbox_id: id.into()
            }
        )
        .map(drop)
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let r = cri!(
            self,
            runtime,
            pod_sandbox_status,
            self.timeout,
            api::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false
            }
        )?;
        Ok(r.status.unwrap_or_default())
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let r = cri!(
            self,
            runtime,
            list_pod_sandbox,
            self.timeout,
            api::ListPodSandboxRequest { filter }
        )?;
        Ok(r.items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let r = cri!(
            self,
            runtime,
            create_container,
            self.timeout,
            api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }
        )?;
        Ok(r.container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        cri!(
            self,
            runtime,
            start_container,
            self.timeout,
            api::StartContainerRequest {
                container_id: id.into()
            }
        )
        .map(drop)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        // Upstream: the runtime gets the grace period plus the request timeout.
        cri!(
            self,
            runtime,
            stop_container,
            self.timeout + grace,
            api::StopContainerRequest {
                container_id: id.into(),
                timeout: grace.as_secs() as i64,
            }
        )
        .map(drop)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        cri!(
            self,
            runtime,
            remove_container,
            self.timeout,
            api::RemoveContainerRequest {
                container_id: id.into()
            }
        )
        .map(drop)
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let r = cri!(
            self,
            runtime,
            list_containers,
            self.timeout,
            api::ListContainersRequest { filter }
        )?;
        Ok(r.containers)
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let r = cri!(
            self,
            runtime,
            container_status,
            self.timeout,
            api::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false
            }
        )?;
        Ok(r.status.unwrap_or_default())
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse> {
        // The runtime kills the command at `timeout`; the call itself gets a little more.
        cri!(
            self,
            runtime,
            exec_sync,
            timeout + Duration::from_secs(2),
            api::ExecSyncRequest {
                container_id: id.into(),
                cmd,
                timeout: timeout.as_secs().max(1) as i64,
            }
        )
    }

    async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let r = cri!(
            self,
            images,
            image_status,
            self.timeout,
            api::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false
            }
        )?;
        Ok(r.image)
    }

    async fn pull_image(&self, image: &str, auth: Option<api::AuthConfig>) -> Result<String> {
        let r = cri!(
            self,
            images,
            pull_image,
            IMAGE_PULL_TIMEOUT,
            api::PullImageRequest {
                image: Some(image_spec(image)),
                auth,
                sandbox_config: None
            }
        )?;
        Ok(r.image_ref)
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        let r = cri!(
            self,
            images,
            list_images,
            self.timeout,
            api::ListImagesRequest { filter: None }
        )?;
        Ok(r.images)
    }

    async fn exec(&self, req: api::ExecRequest) -> Result<String> {
        Ok(cri!(self, runtime, exec, RUNTIME_REQUEST_TIMEOUT, req)?.url)
    }

    async fn attach(&self, req: api::AttachRequest) -> Result<String> {
        Ok(cri!(self, runtime, attach, RUNTIME_REQUEST_TIMEOUT, req)?.url)
    }

    async fn port_forward(&self, req: api::PortForwardRequest) -> Result<String> {
        Ok(cri!(self, runtime, port_forward, RUNTIME_REQUEST_TIMEOUT, req)?.url)
    }

    async fn list_container_stats(&self) -> Result<Vec<api::ContainerStats>> {
        let r = cri!(
            self,
            runtime,
            list_container_stats,
            RUNTIME_REQUEST_TIMEOUT,
            api::ListContainerStatsRequest { filter: None }
        )?;
        Ok(r.stats)
    }

    async fn update_pod_cidr(&self, pod_cidr: &str) -> Result<()> {
        cri!(
            self,
            runtime,
            update_runtime_config,
            self.timeout,
            api::UpdateRuntimeConfigRequest {
                runtime_config: Some(api::RuntimeConfig {
                    network_config: Some(api::NetworkConfig {
                        pod_cidr: pod_cidr.into()
                    })
                })
            }
        )
        .map(drop)
    }
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

/// Waits until the runtime at `endpoint` answers `Version`, up to `timeout`.
pub async fn wait_ready(runtime: &dyn Runtime, socket: &Path, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let err = if socket.exists() {
            match runtime.version().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            }
        } else {
            RuntimeError::Connect {
                endpoint: socket.display().to_string(),
                message: "no such socket".into(),
            }
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(err);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
