//! The HTTPS listener: rustls with optional client certificates, one task per
//! connection, HTTP/1.1 and HTTP/2. The verified client certificate of a connection
//! becomes the user of its requests.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::UserInfo;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS identity and the CA its clients' certificates must chain to.
pub struct TlsMaterial {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_ca: CertificateDer<'static>,
    /// More CAs client certificates may chain to (the front-proxy CA, whose
    /// certificates carry no user of their own: see `aggregator::request_header`).
    pub extra_client_cas: Vec<CertificateDer<'static>>,
}

/// Builds the rustls configuration: client certificates optional but verified when
/// presented; h2 and http/1.1 by ALPN.
pub fn server_config(material: TlsMaterial) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(material.client_ca)
        .map_err(|e| format!("bad client CA: {e}"))?;
    for ca in material.extra_client_cas {
        roots.add(ca).map_err(|e| format!("bad client CA: {e}"))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| format!("cannot build the client verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.cert_chain, material.key)
        .map_err(|e| format!("bad serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|leaf| leaf.clone().into_owned());
                    let user = leaf
                        .as_ref()
                        .and_then(|leaf| rkube_pki::identity::identity_from_der(leaf).ok())
                        .map(|id| UserInfo::new(id.user, id.groups).authenticated());
                    serve_connection(TokioIo::new(stream), app, user, leaf).await;
                }
                None => serve_connection(TokioIo::new(tcp), app, None, None).await,
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    app: axum::Router,
    user: Option<UserInfo>,
    leaf: Option<CertificateDer<'static>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            if let Some(user) = &user {
                req.extensions_mut().insert(CertUser(user.clone()));
            }
            if let Some(leaf) = &leaf {
                req.extensions_mut().insert(PeerCertificate(leaf.clone()));
            }
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(err) = builder.serve_connection_with_upgrades(io, service).await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// A connection's verified client certificate (request extension).
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub CertificateDer<'static>);

/// The user of a connection's verified client certificate (request extension).
#[derive(Clone, Debug)]
pub struct CertUser(pub UserInfo);
