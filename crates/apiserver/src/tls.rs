//! The HTTPS listener: rustls with optional client certificates, one task per
//! connection, HTTP/1.1 and HTTP/2. The serving certificate and the client CA bundle can
//! be swapped while serving ([`DynamicTls`]). A client certificate is verified after the
//! handshake against the current bundle: a verified one becomes the user of its
//! connection's requests (while it is valid), one that does not verify makes them 401.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::UserInfo;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS identity and the CAs its clients' certificates must chain to.
pub struct TlsMaterial {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The client CA bundle: during a CA rotation, the new and the old CA.
    pub client_cas: Vec<CertificateDer<'static>>,
}

/// The listener's TLS state, swappable while it serves: the serving certificate (picked
/// per handshake by a [`ResolvesServerCert`]) and the client CA bundle (read per
/// connection). [`DynamicTls::update`] takes effect on the next handshake; open
/// connections keep going.
pub struct DynamicTls {
    certified: RwLock<Arc<CertifiedKey>>,
    client_cas: RwLock<Arc<Vec<CertificateDer<'static>>>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for DynamicTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicTls").finish_non_exhaustive()
    }
}

impl DynamicTls {
    pub fn new(material: TlsMaterial) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = certified_key(&provider, material.cert_chain, material.key)?;
        Ok(Arc::new(Self {
            certified: RwLock::new(Arc::new(certified)),
            client_cas: RwLock::new(Arc::new(material.client_cas)),
            provider,
        }))
    }

    /// Serves `material` from the next handshake on.
    pub fn update(&self, material: TlsMaterial) -> Result<(), String> {
        let certified = certified_key(&self.provider, material.cert_chain, material.key)?;
        *self.certified.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        *self.client_cas.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(material.client_cas);
        Ok(())
    }

    /// The serving certificate chain now served.
    pub fn serving_chain(&self) -> Vec<CertificateDer<'static>> {
        self.certified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .cert
            .clone()
    }

    /// The client CA bundle now trusted.
    pub fn client_cas(&self) -> Arc<Vec<CertificateDer<'static>>> {
        self.client_cas
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The rustls configuration: client certificates requested, their handshake
    /// signatures checked (proof of the key), their chain verified per connection
    /// against the current client CA bundle (a failure is a 401 with upstream's x509
    /// message, as upstream's authenticator does, not a failed handshake); h2 and
    /// http/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(RequestClientCert {
                provider: self.provider.clone(),
            }))
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("bad serving key: {e}"))?;
    let certified = CertifiedKey::new(chain, key);
    certified
        .keys_match()
        .map_err(|e| format!("bad serving certificate: {e}"))?;
    Ok(certified)
}

#[derive(Debug)]
struct Resolver(Arc<DynamicTls>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .certified
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Go's `tls.RequestClientCert`: asks for a certificate, accepts any (or none) at the TLS
/// layer but checks the handshake signature, so the peer holds the certificate's key.
/// The chain is verified after the handshake by [`rkube_pki::identity::verify_client_cert`].
#[derive(Debug)]
struct RequestClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a connection's client certificate proved.
#[derive(Clone, Debug)]
enum ClientCert {
    /// Verified at the handshake; valid between these times.
    Verified {
        user: UserInfo,
        not_before: SystemTime,
        not_after: SystemTime,
    },
    /// Not accepted, with upstream's reason.
    Rejected(String),
}

fn client_cert(tls: &DynamicTls, leaf: &CertificateDer<'_>) -> ClientCert {
    let roots = tls.client_cas();
    match rkube_pki::identity::verify_client_cert(leaf, &roots, SystemTime::now()) {
        Ok(id) => {
            let not_before = rkube_pki::identity::validity_of(leaf)
                .map(|(nb, _)| nb)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            ClientCert::Verified {
                user: UserInfo::new(id.user, id.groups).authenticated(),
                not_before,
                not_after: id.not_after,
            }
        }
        Err(reason) => ClientCert::Rejected(reason),
    }
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<DynamicTls>>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let acceptor = match &tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(tls.server_config()?)),
        None => None,
    };
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
            () = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let tls = tls.clone();
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
                    let peer = stream.get_ref().1.peer_certificates();
                    let cert = match (&tls, peer) {
                        (Some(tls), Some([leaf, ..])) => Some(client_cert(tls, leaf)),
                        _ => None,
                    };
                    let leaf = peer
                        .and_then(|certs| certs.first())
                        .map(|leaf| PeerCertificate {
                            der: leaf.clone().into_owned(),
                            front_proxy: Default::default(),
                        });
                    serve_connection(TokioIo::new(stream), app, cert, leaf).await;
                }
                None => serve_connection(TokioIo::new(tcp), app, None, None).await,
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    app: axum::Router,
    cert: Option<ClientCert>,
    leaf: Option<PeerCertificate>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            match &cert {
                Some(ClientCert::Verified {
                    user,
                    not_before,
                    not_after,
                }) => {
                    // A long-lived connection outlives its certificate: check every request.
                    match rkube_pki::identity::validity_error(
                        *not_before,
                        *not_after,
                        SystemTime::now(),
                    ) {
                        None => {
                            req.extensions_mut().insert(CertUser(user.clone()));
                        }
                        Some(reason) => {
                            req.extensions_mut().insert(CertRejected(reason));
                        }
                    }
                }
                Some(ClientCert::Rejected(reason)) => {
                    req.extensions_mut().insert(CertRejected(reason.clone()));
                }
                None => {}
            }
            if let Some(leaf) = &leaf {
                req.extensions_mut().insert(leaf.clone());
            }
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(err) = builder.serve_connection_with_upgrades(io, service).await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// A connection's client certificate, verified or not (request extension): request-header
/// authentication checks it against the front-proxy CA.
#[derive(Clone, Debug)]
pub struct PeerCertificate {
    pub der: CertificateDer<'static>,
    /// What the front-proxy check found, once per connection.
    pub front_proxy:
        Arc<std::sync::OnceLock<Option<crate::aggregator::request_header::FrontProxyCert>>>,
}

/// Why a connection's client certificate was not accepted (request extension): the
/// request is a 401 unless a bearer token authenticates it, as with upstream's union of
/// authenticators.
#[derive(Clone, Debug)]
pub struct CertRejected(pub String);

/// The user of a connection's verified client certificate (request extension).
#[derive(Clone, Debug)]
pub struct CertUser(pub UserInfo);
