//! Proxying to an aggregated API server: one HTTP/1.1 connection over TLS per request,
//! the front-proxy client certificate, the caller as request headers, and a deadline on
//! connecting and on the response headers (never on a response body: watches stream).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::auth::UserInfo;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the backend may take to send its response headers.
const HEADERS_TIMEOUT: Duration = Duration::from_secs(60);

/// The front-proxy client certificate chain and key.
pub(crate) struct ProxyIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ProxyIdentity {
    pub(crate) fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("bad proxy client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("bad proxy client key: {e}"))?;
        Ok(ProxyIdentity { chain, key })
    }
}

/// Where one APIService's requests go and how to speak TLS to it.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    /// `host:port` to connect to.
    pub(crate) address: String,
    /// The name the backend's certificate must carry: `<service>.<namespace>.svc`.
    pub(crate) server_name: ServerName<'static>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// The TLS client configuration for an APIService: trust `ca_bundle` (PEM) or, with
/// `insecure`, anything; present the proxy identity when there is one.
pub(crate) fn client_config(
    identity: Option<&ProxyIdentity>,
    ca_bundle: &[u8],
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_bundle) {
            let cert = cert.map_err(|e| format!("bad caBundle: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad caBundle certificate: {e}"))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| format!("bad proxy client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `insecureSkipTLSVerify` (and the kubelet client without a kubelet CA): any server
/// certificate, but handshake signatures still checked.
#[derive(Debug)]
pub(crate) struct AnyServer(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends `req` (origin-form URI) to `backend`; the response body streams.
pub(crate) async fn send(
    backend: &Backend,
    mut req: Request,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(&backend.address)
            .await
            .map_err(|e| format!("dial tcp {}: {}", backend.address, dial_error(&e)))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(backend.tls.clone())
            .connect(backend.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("dial tcp {}: i/o timeout", backend.address))??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "aggregated API connection ended");
        }
    });
    let host = HeaderValue::from_str(&backend.address).map_err(|e| e.to_string())?;
    req.headers_mut().insert(header::HOST, host);
    tokio::time::timeout(HEADERS_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| "timeout awaiting response headers".to_owned())?
        .map_err(|e| e.to_string())
}

/// Go's words for the common dial failures (what upstream's messages carry).
fn dial_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// Headers never forwarded: hop-by-hop ones, and the caller's credentials (the backend
/// learns the caller from the request headers this server sets, never from them).
fn dropped_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    hop_by_hop(name)
        || n == "authorization"
        || n == "host"
        || n.starts_with("impersonate-")
        || n.starts_with("x-remote-")
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Upstream's request-header names for the user (`transport.SetAuthProxyHeaders`).
pub(crate) fn set_user_headers(headers: &mut HeaderMap, user: &UserInfo) {
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    put("x-remote-user", &user.name);
    if !user.uid.is_empty() {
        put("x-remote-uid", &user.uid);
    }
    for g in &user.groups {
        put("x-remote-group", g);
    }
    for (key, values) in &user.extra {
        let name = format!("x-remote-extra-{}", escape_extra_key(key));
        for v in values {
            put(&name, v);
        }
    }
}

/// Extra keys are percent-encoded in header names, as upstream does.
fn escape_extra_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Upstream's answer when the proxy cannot serve: a plain-text 503, which clients
/// render as "the server is currently unable to handle the request".
pub(crate) fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// Proxies an authorized request to the remote serving it.
pub(crate) async fn forward(remote: &super::Remote, req: Request, user: &UserInfo) -> Response {
    if !remote.available {
        return unavailable("service unavailable");
    }
    let Some(backend) = &remote.backend else {
        return unavailable("service unavailable");
    };
    let (parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query);
    if let Some(headers) = out.headers_mut() {
        for (name, value) in &parts.headers {
            if !dropped_request_header(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        set_user_headers(headers, user);
    }
    let Ok(out) = out.body(body) else {
        return unavailable("error trying to reach service: bad request");
    };
    match send(backend, out).await {
        Ok(response) => {
            let (mut parts, incoming) = response.into_parts();
            let names: Vec<HeaderName> = parts
                .headers
                .keys()
                .filter(|n| hop_by_hop(n))
                .cloned()
                .collect();
            for n in names {
                parts.headers.remove(n);
            }
            Response::from_parts(parts, Body::new(incoming))
        }
        Err(e) => {
            tracing::info!(
                apiservice = remote.name,
                error = e,
                "proxy to aggregated API failed"
            );
            unavailable(&format!("error trying to reach service: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_headers() {
        let mut user = UserInfo::new("alice", vec!["dev".into(), "system:authenticated".into()]);
        user.extra
            .insert("example.com/scopes x".into(), vec!["a".into(), "b".into()]);
        let mut h = HeaderMap::new();
        set_user_headers(&mut h, &user);
        assert_eq!(h["x-remote-user"], "alice");
        assert!(h.get("x-remote-uid").is_none());
        let groups: Vec<_> = h.get_all("x-remote-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        let extra: Vec<_> = h
            .get_all("x-remote-extra-example.com%2Fscopes%20x")
            .iter()
            .collect();
        assert_eq!(extra, ["a", "b"]);
    }

    #[test]
    fn credentials_are_not_forwarded() {
        for n in [
            "authorization",
            "impersonate-user",
            "x-remote-user",
            "connection",
            "host",
        ] {
            assert!(dropped_request_header(&HeaderName::from_static(n)), "{n}");
        }
        for n in ["accept", "content-type", "user-agent", "content-length"] {
            assert!(!dropped_request_header(&HeaderName::from_static(n)), "{n}");
        }
    }
}
