//! Calls one webhook: an `AdmissionReview` POSTed over HTTPS (rustls, trusting only the
//! configuration's `caBundle`), within the webhook's deadline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

/// The largest response a webhook may send.
const MAX_RESPONSE: usize = 3 * 1024 * 1024;

/// Where a webhook is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub address: String,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// The path (with query) of the request.
    pub path: String,
    /// The URL as upstream reports it in errors (`https://host:port/path?timeout=10s`).
    pub url: String,
}

impl Endpoint {
    /// A `clientConfig.url` (`https://host[:port][/path]`).
    pub fn from_url(url: &str, timeout: Duration) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook URL {url:?} must use the https scheme"));
        }
        let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Self::new(&host, port, host.clone(), &path, timeout))
    }

    /// A service reference resolved to `host:port`; the certificate is checked for
    /// `<service>.<namespace>.svc`.
    pub fn for_service(
        host: &str,
        port: u16,
        server_name: String,
        path: &str,
        timeout: Duration,
    ) -> Self {
        Self::new(host, port, server_name, path, timeout)
    }

    fn new(host: &str, port: u16, server_name: String, path: &str, timeout: Duration) -> Self {
        let address = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let path = if path.is_empty() { "/" } else { path };
        let separator = if path.contains('?') { '&' } else { '?' };
        let path = format!("{path}{separator}timeout={}s", timeout.as_secs());
        let shown_host = if port == 443 {
            address.trim_end_matches(":443").to_owned()
        } else {
            address.clone()
        };
        Endpoint {
            url: format!("https://{shown_host}{path}"),
            address,
            server_name,
            path,
        }
    }
}

/// Why a call failed, worded as Go's HTTP client words it (after `Post "<url>": `).
#[derive(Debug)]
pub struct CallError(pub String);

/// POSTs `review` to `endpoint` and returns the decoded response body; the whole call
/// (connect, handshake, request, response) must finish within `timeout`.
pub async fn call(
    endpoint: &Endpoint,
    ca_bundle: &[u8],
    review: &Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    match tokio::time::timeout(timeout, exchange(endpoint, ca_bundle, review)).await {
        Ok(result) => result,
        Err(_) => Err(CallError("context deadline exceeded".into())),
    }
}

async fn exchange(
    endpoint: &Endpoint,
    ca_bundle: &[u8],
    review: &Value,
) -> Result<Value, CallError> {
    let config = client_config(ca_bundle)?;
    let server_name = ServerName::try_from(endpoint.server_name.clone()).map_err(|e| {
        CallError(format!(
            "invalid server name {:?}: {e}",
            endpoint.server_name
        ))
    })?;
    let tcp = tokio::net::TcpStream::connect(&endpoint.address)
        .await
        .map_err(|e| CallError(dial_error(&endpoint.address, &e)))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| CallError(format!("tls: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| CallError(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let body = serde_json::to_vec(review).map_err(|e| CallError(e.to_string()))?;
    let request = Request::post(endpoint.path.as_str())
        .header(header::HOST, endpoint.address.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body))
        .map_err(|e| CallError(e.to_string()))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CallError(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_RESPONSE)
            .await
            .map_err(|e| CallError(e.to_string()))?;
        if !status.is_success() {
            return Err(CallError(format!(
                "the server responded with the status code {} but did not return more information",
                status.as_u16()
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CallError(format!("failed to decode the response: {e}")))
    }
    .await;
    driver.abort();
    result
}

/// Go's wording of a failed dial.
fn dial_error(address: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        _ => e.to_string(),
    };
    format!("dial tcp {address}: {what}")
}

/// A client configuration that trusts the PEM certificates of `ca_bundle` only.
fn client_config(ca_bundle: &[u8]) -> Result<Arc<rustls::ClientConfig>, CallError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_bundle) {
        let cert = cert.map_err(|e| CallError(format!("invalid caBundle: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| CallError(format!("invalid caBundle: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CallError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Duration::from_secs(10);
        let e = Endpoint::from_url("https://127.0.0.1:8443/mutate", t).unwrap();
        assert_eq!(e.address, "127.0.0.1:8443");
        assert_eq!(e.server_name, "127.0.0.1");
        assert_eq!(e.path, "/mutate?timeout=10s");
        assert_eq!(e.url, "https://127.0.0.1:8443/mutate?timeout=10s");
        let e = Endpoint::from_url("https://hook.example", t).unwrap();
        assert_eq!(e.address, "hook.example:443");
        assert_eq!(e.url, "https://hook.example/?timeout=10s");
        assert!(Endpoint::from_url("http://127.0.0.1/x", t).is_err());
    }
}
