//! Subresources the kubelet serves: `pods/log` is proxied to the kubelet of the pod's
//! node (`https://<InternalIP>:<kubeletEndpoint.Port>/containerLogs/...`), streamed
//! through, as the API server authenticates to kubelets with its own client certificate.
//! `pods/exec`, `pods/attach` and `pods/portforward` are upgrade requests proxied the
//! same way (the kubelet in turn proxies them to the runtime's streaming server), and
//! the upgraded connection is relayed byte for byte: the client and the runtime agree
//! on SPDY/3.1 or a WebSocket `channel.k8s.io` protocol end to end. `nodes/proxy`
//! forwards any path to the node's kubelet (`/stats/summary`, `/metrics`, ...).
//! Like upstream without `--kubelet-certificate-authority`, the kubelet's (self-signed)
//! serving certificate is not verified.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;

use crate::error::ApiError;
use crate::query::Query;
use crate::streamtranslator;
use crate::ApiState;

/// How long connecting to a kubelet may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The log options passed through to the kubelet.
const LOG_OPTIONS: [&str; 7] = [
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// The API server's TLS client to kubelets.
#[derive(Debug, Clone)]
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// A client presenting `cert_chain`/`key` (upstream's `--kubelet-client-certificate`).
    pub fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::aggregator::proxy::AnyServer(
                provider,
            )))
            .with_client_auth_cert(cert_chain, key)
            .map_err(|e| format!("bad kubelet client certificate: {e}"))?;
        Ok(KubeletClient {
            tls: Arc::new(config),
        })
    }

    /// GETs `path_and_query` from the kubelet at `host:port`; the response streams.
    async fn get(&self, host: &str, port: u16, path_and_query: &str) -> Result<Response, String> {
        let req = hyper::Request::get(path_and_query)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        self.send(host, port, req).await
    }

    /// Sends `req` to the kubelet at `host:port`; the response streams and a
    /// `101 Switching Protocols` answer keeps the connection for the upgrade.
    pub(crate) async fn send(
        &self,
        host: &str,
        port: u16,
        mut req: hyper::Request<Body>,
    ) -> Result<Response, String> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| format!("dial tcp {host}:{port}: i/o timeout"))?
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("TLS handshake with {host}:{port} timed out"))?
        .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let authority = format!("{host}:{port}")
            .parse()
            .map_err(|e| format!("bad kubelet address {host}:{port}: {e}"))?;
        req.headers_mut().insert(hyper::header::HOST, authority);
        let resp = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| format!("the kubelet at {host}:{port} did not answer in time"))?
            .map_err(|e| e.to_string())?;
        Ok(resp.map(Body::new))
    }
}

async fn read(
    state: &ApiState,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let info = rkube_api::resources::find("", "v1", plural).expect("a core resource");
    let got = state
        .store
        .get(&info.key(ns, name), None)
        .await
        .map_err(ApiError::internal)?;
    let kv = got.kv.ok_or_else(|| ApiError::not_found(info, name))?;
    serde_json::from_slice(&kv.value).map_err(ApiError::internal)
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The container a request names (or the only one), as upstream validates it.
fn choose_container(pod: &Value, name: &str, requested: Option<&str>) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    match requested {
        Some(c) if !c.is_empty() => {
            if !containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|n| n == c)
            {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            Ok(c.to_owned())
        }
        _ if containers.len() == 1 => Ok(containers[0].clone()),
        _ => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            if !ephemeral.is_empty() {
                msg.push_str(&format!(
                    " or one of the ephemeral containers: [{}]",
                    ephemeral.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// `GET pods/<name>/log`.
pub async fn pod_log(
    state: &ApiState,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let pod = read(state, "pods", Some(ns), name).await?;
    let container = choose_container(&pod, name, query.get("container"))?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let (client, host, port) = kubelet_of(state, node_name).await?;
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    let params: Vec<String> = LOG_OPTIONS
        .iter()
        .filter_map(|k| query.get(k).map(|v| format!("{k}={}", encode(v))))
        .collect();
    if !params.is_empty() {
        path.push('?');
        path.push_str(&params.join("&"));
    }
    client
        .get(&host, port, &path)
        .await
        .map_err(|e| ApiError::internal(format!("Get \"https://{host}:{port}{path}\": {e}")))
}

/// The kubelet client and the address of `node_name`'s kubelet.
async fn kubelet_of<'a>(
    state: &'a ApiState,
    node_name: &str,
) -> Result<(&'a KubeletClient, String, u16), ApiError> {
    let node = read(state, "nodes", None, node_name).await?;
    let host = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(str::to_owned);
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0 && *p <= u16::MAX as u64);
    let (Some(host), Some(port)) = (host, port) else {
        return Err(ApiError::internal(format!(
            "node {node_name} has no kubelet address or port"
        )));
    };
    let Some(client) = state.kubelet_client.get() else {
        return Err(ApiError::internal(
            "this API server has no kubelet client credentials",
        ));
    };
    Ok((client, host, port as u16))
}

/// A request for a kubelet-served connect subresource.
#[derive(Debug, PartialEq)]
pub enum Connect {
    /// `pods/{exec,attach,portforward}`.
    Pod {
        namespace: String,
        name: String,
        subresource: String,
    },
    /// `nodes/<name>/proxy/<path>`.
    NodeProxy { node: String, path: String },
}

impl Connect {
    /// Recognizes `/api/v1/namespaces/<ns>/pods/<name>/<exec|attach|portforward>` and
    /// `/api/v1/nodes/<name>/proxy[/<path>]`.
    pub fn parse(path: &str) -> Option<Connect> {
        let rest = path.strip_prefix("/api/v1/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["namespaces", ns, "pods", name, sub]
                if !ns.is_empty()
                    && !name.is_empty()
                    && matches!(*sub, "exec" | "attach" | "portforward") =>
            {
                Some(Connect::Pod {
                    namespace: (*ns).to_owned(),
                    name: (*name).to_owned(),
                    subresource: (*sub).to_owned(),
                })
            }
            ["nodes", node, "proxy", tail @ ..] if !node.is_empty() => Some(Connect::NodeProxy {
                node: (*node).to_owned(),
                path: format!("/{}", tail.join("/")),
            }),
            _ => None,
        }
    }
}

/// The kubelet query of an exec/attach (`command=...&stdin=1...`) from the client's
/// `PodExecOptions`/`PodAttachOptions`, and the container named.
fn stream_params(query: Option<&str>) -> (String, Option<String>) {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut container = None;
    let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "command" => {
                out.append_pair("command", &v);
            }
            "stdin" | "stdout" | "stderr" | "tty" if on(&v) => {
                out.append_pair(&k, "1");
            }
            "container" => container = Some(v.into_owned()),
            _ => {}
        }
    }
    (out.finish(), container)
}

/// The kubelet query of a port-forward (its `ports`).
fn port_params(query: Option<&str>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "ports" || k == "port" {
            out.append_pair("port", &v);
        }
    }
    out.finish()
}

/// Whether a request asks for a protocol upgrade.
fn is_upgrade(headers: &hyper::HeaderMap) -> bool {
    headers.contains_key(hyper::header::UPGRADE)
        && headers
            .get_all(hyper::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers a proxy does not forward (hop-by-hop), but for an upgrade's own.
fn forwarded(name: &hyper::header::HeaderName, upgrade: bool) -> bool {
    use hyper::header;
    if name == header::HOST || name == header::AUTHORIZATION || name == header::CONTENT_LENGTH {
        return false;
    }
    if name == header::CONNECTION || name == header::UPGRADE {
        return upgrade;
    }
    !matches!(
        name.as_str(),
        "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "impersonate-user"
            | "impersonate-group"
            | "impersonate-uid"
    )
}

/// Serves a [`Connect`] request: proxies it to the kubelet and, for an upgrade, relays
/// the upgraded connection.
pub async fn connect(
    state: &ApiState,
    target: Connect,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let query = req.uri().query().map(str::to_owned);
    let (node_name, path) = match &target {
        Connect::Pod {
            namespace,
            name,
            subresource,
        } => {
            if !matches!(*req.method(), hyper::Method::GET | hyper::Method::POST) {
                let info = rkube_api::resources::find("", "v1", "pods").expect("a core resource");
                return Err(ApiError::method_not_allowed(info, req.method().as_str()));
            }
            let pod = read(state, "pods", Some(namespace), name).await?;
            let path = if subresource == "portforward" {
                format!(
                    "/portForward/{namespace}/{name}?{}",
                    port_params(query.as_deref())
                )
            } else {
                let (params, requested) = stream_params(query.as_deref());
                let container = choose_container(&pod, name, requested.as_deref())?;
                if subresource == "exec" && !params.contains("command=") {
                    return Err(ApiError::bad_request(
                        "you must specify a command for an exec",
                    ));
                }
                format!("/{subresource}/{namespace}/{name}/{container}?{params}")
            };
            let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            };
            (node.to_owned(), path)
        }
        Connect::NodeProxy { node, path } => {
            // `<name>:<port>` names a port; the kubelet's is the only one served.
            let node = node.split(':').next().unwrap_or(node).to_owned();
            let path = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            (node, path)
        }
    };
    let (client, host, port) = kubelet_of(state, &node_name).await?;
    let (mut parts, body) = req.into_parts();
    let upgrade = is_upgrade(&parts.headers);
    if matches!(target, Connect::Pod { .. }) && !upgrade {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    if let Connect::Pod { subresource, .. } = &target {
        // WebSocket v5 exec/attach and tunnelled port-forward are served here, the
        // kubelet spoken to in SPDY; other protocols are relayed as they are.
        let backend = |path: String| streamtranslator::Backend {
            client: client.clone(),
            host: host.clone(),
            port,
            path,
        };
        match streamtranslator::websocket_mode(&parts.headers) {
            streamtranslator::WebSocketMode::V5 if subresource != "portforward" => {
                let options = streamtranslator::Options::parse(query.as_deref());
                return Ok(streamtranslator::serve_v5(&mut parts, backend(path), options).await);
            }
            streamtranslator::WebSocketMode::Tunnel(protocols) if subresource == "portforward" => {
                return streamtranslator::serve_tunnel(
                    &mut parts,
                    backend(path.clone()),
                    protocols,
                )
                .await
                .map_err(|e| {
                    ApiError::internal(format!(
                        "error dialing backend: POST \"https://{host}:{port}{path}\": {e}"
                    ))
                });
            }
            _ => {}
        }
    }
    let mut out = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(path.as_str());
    for (k, v) in &parts.headers {
        if forwarded(k, upgrade) {
            out = out.header(k, v);
        }
    }
    let body = if upgrade { Body::empty() } else { body };
    let out = out.body(body).map_err(ApiError::internal)?;
    let mut resp = client.send(&host, port, out).await.map_err(|e| {
        ApiError::internal(format!(
            "error dialing backend: {} \"https://{host}:{port}{path}\": {e}",
            parts.method
        ))
    })?;
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let kubelet_side = hyper::upgrade::on(&mut resp);
    let Some(client_side) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(ApiError::internal("this connection cannot be upgraded"));
    };
    tokio::spawn(async move {
        let (Ok(client), Ok(kubelet)) = (client_side.await, kubelet_side.await) else {
            tracing::debug!("a streaming upgrade did not complete");
            return;
        };
        let mut client = TokioIo::new(client);
        let mut kubelet = TokioIo::new(kubelet);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            tracing::debug!(error = %e, "a streaming session ended with an error");
        }
    });
    Ok(resp)
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_connect_paths() {
        assert_eq!(
            Connect::parse("/api/v1/namespaces/ns/pods/p/exec"),
            Some(Connect::Pod {
                namespace: "ns".into(),
                name: "p".into(),
                subresource: "exec".into()
            })
        );
        assert_eq!(Connect::parse("/api/v1/namespaces/ns/pods/p/log"), None);
        assert_eq!(Connect::parse("/api/v1/namespaces/ns/pods/p/status"), None);
        assert_eq!(
            Connect::parse("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(Connect::NodeProxy {
                node: "n1".into(),
                path: "/stats/summary".into()
            })
        );
        assert_eq!(
            Connect::parse("/api/v1/nodes/n1/proxy"),
            Some(Connect::NodeProxy {
                node: "n1".into(),
                path: "/".into()
            })
        );
        assert_eq!(Connect::parse("/api/v1/nodes/n1/status"), None);
    }

    #[test]
    fn translates_exec_options_for_the_kubelet() {
        let (q, c) = stream_params(Some(
            "command=sh&command=-c&command=exit+3&container=main&stdin=true&stdout=true&stderr=false&tty=false",
        ));
        assert_eq!(q, "command=sh&command=-c&command=exit+3&stdin=1&stdout=1");
        assert_eq!(c.as_deref(), Some("main"));
        assert_eq!(
            port_params(Some("ports=8080&ports=9090")),
            "port=8080&port=9090"
        );
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("2026-01-01T00:00:00Z"), "2026-01-01T00%3A00%3A00Z");
    }
}
