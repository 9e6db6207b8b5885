//! The kubelet's streaming endpoints: `/exec`, `/attach` and `/portForward`. As
//! upstream's kubelet does, each asks the runtime (CRI `Exec`/`Attach`/`PortForward`)
//! for a URL on the runtime's own streaming server and proxies the client's upgrade
//! request to it: the upgraded connection (SPDY/3.1 or WebSocket `channel.k8s.io`,
//! whatever the client and the runtime agree on) is then relayed byte for byte.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use crate::cri::{api, Runtime};
use crate::pod_config::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};
use crate::server::{authorize, status, Client};
use crate::Shared;

/// How long connecting to the runtime's streaming server and its answer may take.
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);

/// The streams an exec or attach asks for (upstream's `remotecommand.Options`).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl StreamOptions {
    /// Reads the query as upstream's kubelet does (`stdin=1`; `true` is accepted too).
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut o = StreamOptions::default();
        let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "input" | "stdin" => o.stdin = on(&v),
                "output" | "stdout" => o.stdout = on(&v),
                "error" | "stderr" => o.stderr = on(&v),
                "tty" => o.tty = on(&v),
                _ => {}
            }
        }
        if o.tty && o.stderr {
            // A terminal merges stderr into stdout.
            o.stderr = false;
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// The ports of a port-forward query (`port=80&port=8080`).
fn parse_ports(query: Option<&str>) -> Result<Vec<i32>, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "port")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .map(i32::from)
                        .ok_or_else(|| format!("invalid port {p:?}"))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Authenticated and authorized (`nodes/proxy`, verb from the method as upstream's).
async fn admit(
    shared: &Shared,
    client: Option<Client>,
    method: Method,
) -> Result<Arc<dyn Runtime>, Response> {
    let Some(client) = client else {
        return Err(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        ));
    };
    let verb = if method == Method::POST {
        "create"
    } else {
        "get"
    };
    authorize(shared, &client, verb, "proxy").await?;
    shared.runtime.clone().ok_or_else(|| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "container runtime is down".into(),
        )
    })
}

/// An error as upstream's `streaming.WriteError`: the runtime's text, 404 for NotFound.
fn runtime_error(e: crate::cri::RuntimeError) -> Response {
    let code = if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (code, e.to_string()).into_response()
}

/// The running container `name` of pod `ns/pod` (of `uid` when given).
async fn find_container(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
    name: &str,
) -> Result<String, Response> {
    let containers = runtime.list_containers(None).await.map_err(runtime_error)?;
    let of_pod: Vec<_> = containers
        .iter()
        .filter(|c| {
            c.labels.get(POD_NAMESPACE_LABEL).map(String::as_str) == Some(ns)
                && c.labels.get(POD_NAME_LABEL).map(String::as_str) == Some(pod)
                && uid.is_none_or(|u| c.labels.get(POD_UID_LABEL).map(String::as_str) == Some(u))
        })
        .collect();
    if of_pod.is_empty() {
        return Err((StatusCode::NOT_FOUND, "pod does not exist").into_response());
    }
    of_pod
        .iter()
        .filter(|c| {
            c.labels.get(CONTAINER_NAME_LABEL).map(String::as_str) == Some(name)
                && c.state == api::ContainerState::ContainerRunning as i32
        })
        .max_by_key(|c| c.created_at)
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("container not found ({name:?})"),
            )
                .into_response()
        })
}

/// `/exec/{ns}/{pod}/{container}` (GET or POST, with an upgrade).
pub(crate) async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request<Body>,
) -> Response {
    remote_command(shared, ns, pod, None, container, req, true).await
}

/// `/exec/{ns}/{pod}/{uid}/{container}`.
pub(crate) async fn exec_uid(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    req: Request<Body>,
) -> Response {
    remote_command(shared, ns, pod, Some(uid), container, req, true).await
}

/// `/attach/{ns}/{pod}/{container}`.
pub(crate) async fn attach(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    req: Request<Body>,
) -> Response {
    remote_command(shared, ns, pod, None, container, req, false).await
}

/// `/attach/{ns}/{pod}/{uid}/{container}`.
pub(crate) async fn attach_uid(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, uid, container)): Path<(String, String, String, String)>,
    req: Request<Body>,
) -> Response {
    remote_command(shared, ns, pod, Some(uid), container, req, false).await
}

async fn remote_command(
    shared: Arc<Shared>,
    ns: String,
    pod: String,
    uid: Option<String>,
    container: String,
    req: Request<Body>,
    is_exec: bool,
) -> Response {
    let client = req.extensions().get::<Client>().cloned();
    let runtime = match admit(&shared, client, req.method().clone()).await {
        Ok(r) => r,
        Err(denied) => return denied,
    };
    let opts = match StreamOptions::parse(req.uri().query()) {
        Ok(o) => o,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if is_exec && opts.command.is_empty() {
        return (StatusCode::BAD_REQUEST, "you must specify a command").into_response();
    }
    let id = match find_container(&*runtime, &ns, &pod, uid.as_deref(), &container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let url = if is_exec {
        runtime
            .exec(api::ExecRequest {
                container_id: id,
                cmd: opts.command,
                tty: opts.tty,
                stdin: opts.stdin,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    } else {
        runtime
            .attach(api::AttachRequest {
                container_id: id,
                stdin: opts.stdin,
                tty: opts.tty,
                stdout: opts.stdout,
                stderr: opts.stderr,
            })
            .await
    };
    match url {
        Ok(url) => relay(req, &url).await,
        Err(e) => runtime_error(e),
    }
}

/// `/portForward/{ns}/{pod}`.
pub(crate) async fn port_forward(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    forward(shared, ns, pod, None, req).await
}

/// `/portForward/{ns}/{pod}/{uid}`.
pub(crate) async fn port_forward_uid(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, uid)): Path<(String, String, String)>,
    req: Request<Body>,
) -> Response {
    forward(shared, ns, pod, Some(uid), req).await
}

async fn forward(
    shared: Arc<Shared>,
    ns: String,
    pod: String,
    uid: Option<String>,
    req: Request<Body>,
) -> Response {
    let client = req.extensions().get::<Client>().cloned();
    let runtime = match admit(&shared, client, req.method().clone()).await {
        Ok(r) => r,
        Err(denied) => return denied,
    };
    let ports = match parse_ports(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let sandboxes = match runtime.list_pod_sandboxes(None).await {
        Ok(s) => s,
        Err(e) => return runtime_error(e),
    };
    let sandbox = sandboxes
        .iter()
        .filter(|s| {
            s.labels.get(POD_NAMESPACE_LABEL) == Some(&ns)
                && s.labels.get(POD_NAME_LABEL) == Some(&pod)
                && uid
                    .as_ref()
                    .is_none_or(|u| s.labels.get(POD_UID_LABEL) == Some(u))
                && s.state == api::PodSandboxState::SandboxReady as i32
        })
        .max_by_key(|s| s.created_at);
    let Some(sandbox) = sandbox else {
        return (StatusCode::NOT_FOUND, "pod does not exist").into_response();
    };
    match runtime
        .port_forward(api::PortForwardRequest {
            pod_sandbox_id: sandbox.id.clone(),
            port: ports,
        })
        .await
    {
        Ok(url) => relay(req, &url).await,
        Err(e) => runtime_error(e),
    }
}

/// Whether a request asks for a protocol upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Proxies an upgrade request to `url` on the runtime's (plain HTTP, loopback)
/// streaming server and, once it switches protocols, relays both directions until
/// either side closes (upstream's `UpgradeAwareHandler`).
async fn relay(mut req: Request<Body>, url: &str) -> Response {
    if !is_upgrade(req.headers()) {
        return (StatusCode::BAD_REQUEST, "Upgrade request required").into_response();
    }
    let uri: hyper::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the runtime returned a bad streaming URL {url:?}: {e}"),
            )
                .into_response()
        }
    };
    if uri.scheme_str() != Some("http") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unsupported streaming URL {url:?}: only http is relayed"),
        )
            .into_response();
    }
    let (Some(host), Some(port)) = (uri.host().map(str::to_owned), uri.port_u16()) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the streaming URL {url:?} has no host and port"),
        )
            .into_response();
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let connected = tokio::time::timeout(
        RELAY_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    let tcp = match connected {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("error dialing the runtime's streaming server {host}:{port}: {e}"),
            )
                .into_response()
        }
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("dialing the runtime's streaming server {host}:{port} timed out"),
            )
                .into_response()
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(h) => h,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path = uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let mut out = hyper::Request::builder()
        .method(req.method().clone())
        .uri(path);
    for (k, v) in req.headers() {
        if k != header::HOST && k != header::CONTENT_LENGTH && k != header::TRANSFER_ENCODING {
            out = out.header(k, v);
        }
    }
    let out = match out
        .header(header::HOST, format!("{host}:{port}"))
        .body(Body::empty())
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let answered = tokio::time::timeout(RELAY_TIMEOUT, sender.send_request(out)).await;
    let mut resp = match answered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the runtime's streaming server failed: {e}"),
            )
                .into_response()
        }
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the runtime's streaming server did not answer in time",
            )
                .into_response()
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return resp.map(Body::new);
    }
    let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in resp.headers() {
        answer = answer.header(k, v);
    }
    let runtime_side = hyper::upgrade::on(&mut resp);
    let client_side = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let (Ok(client), Ok(runtime)) = (client_side.await, runtime_side.await) else {
            tracing::debug!("a streaming upgrade did not complete");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut runtime = TokioIo::new(runtime);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut runtime).await {
            tracing::debug!(error = %e, "a streaming session ended with an error");
        }
    });
    answer.body(Body::empty()).unwrap_or_else(|_| {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stream_options_as_upstream() {
        let o = StreamOptions::parse(Some(
            "command=sh&command=-c&command=echo+a%26b&stdin=1&stdout=true&stderr=1&tty=1",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert!(o.stdin && o.stdout && o.tty);
        assert!(!o.stderr, "a terminal has no separate stderr");
        assert_eq!(
            StreamOptions::parse(Some("command=ls")).unwrap_err(),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(StreamOptions::parse(None).is_err());
    }

    #[test]
    fn parses_ports() {
        assert_eq!(
            parse_ports(Some("port=80&port=8080,9090")).unwrap(),
            [80, 8080, 9090]
        );
        assert_eq!(parse_ports(None).unwrap(), Vec::<i32>::new());
        assert_eq!(
            parse_ports(Some("port=0")).unwrap_err(),
            "invalid port \"0\""
        );
        assert!(parse_ports(Some("port=70000")).is_err());
        assert!(parse_ports(Some("port=x")).is_err());
    }

    #[test]
    fn recognizes_upgrades() {
        let mut h = HeaderMap::new();
        assert!(!is_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&h));
    }
}
