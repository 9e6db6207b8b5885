//! Subresources the kubelet serves: `pods/log` is proxied to the kubelet of the pod's
//! node (`https://<InternalIP>:<kubeletEndpoint.Port>/containerLogs/...`), streamed
//! through, as the API server authenticates to kubelets with its own client certificate.
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
#[derive(Debug)]
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
            let _ = conn.await;
        });
        let req = hyper::Request::get(path_and_query)
            .header("host", format!("{host}:{port}"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
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

/// `GET pods/<name>/log`.
pub async fn pod_log(
    state: &ApiState,
    ns: &str,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let pod = read(state, "pods", Some(ns), name).await?;
    let containers = names(&pod, "containers");
    let init = names(&pod, "initContainers");
    let container = match query.get("container") {
        Some(c) if !c.is_empty() => {
            if !containers.iter().chain(&init).any(|n| n == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_owned()
        }
        _ if containers.len() == 1 => containers[0].clone(),
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
            return Err(ApiError::bad_request(msg));
        }
    };
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
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
        .get(&host, port as u16, &path)
        .await
        .map_err(|e| ApiError::internal(format!("Get \"https://{host}:{port}{path}\": {e}")))
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
    #[test]
    fn encodes_query_values() {
        assert_eq!(
            super::encode("2026-01-01T00:00:00Z"),
            "2026-01-01T00%3A00%3A00Z"
        );
    }
}
