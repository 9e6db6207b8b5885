//! Joining a cluster with a bootstrap token (kubeadm's token discovery and upstream's
//! kubelet TLS bootstrap): read `kube-public/cluster-info` without trusting the server,
//! verify its JWS with the token and take the cluster CA from it (checked against
//! `sha256:` pins when given), check the server against that CA, then ask for a
//! `system:node:<name>` client certificate by CertificateSigningRequest
//! (`kubernetes.io/kube-apiserver-client-kubelet`, auto-approved for the token's group),
//! wait for it and write the node's kubeconfig. A kubeconfig whose certificate is still
//! valid is reused without the token. Every API call has a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Config};
use rkube_pki::bootstrap::{self as tokens, Token};
use thiserror::Error;

/// The namespace and name of the signed cluster information.
const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
const CLUSTER_INFO: &str = "cluster-info";
/// Where the API server publishes the CA of the client certificates it accepts.
const AUTHENTICATION_CONFIGMAP: &str = "extension-apiserver-authentication";
/// The deadline of one API call during the join.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How often discovery and the certificate wait ask again.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Upstream's wait for the certificate (one hour).
pub const CERTIFICATE_TIMEOUT: Duration = Duration::from_secs(3600);
/// kubeadm's default discovery timeout.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(300);

/// A failed join, each saying what to do.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    TokenMalformed(#[source] tokens::Error),
    #[error("invalid discovery token CA certificate hash: {0}")]
    PinMalformed(#[source] tokens::Error),
    #[error("no usable kubeconfig at {0} and no bootstrap token to join with: pass --token (make one with `rkube token create` on the server)")]
    NoToken(PathBuf),
    #[error("invalid API server URL {url:?}: {cause}")]
    ServerUrl { url: String, cause: String },
    #[error("cannot build an API client: {0}")]
    ClientBuildFailed(#[source] kube::Error),
    #[error("cannot reach the API server at {server} within {timeout:?}: failed to request the cluster-info ConfigMap: {cause}")]
    ClusterInfoUnreachable {
        server: String,
        timeout: Duration,
        cause: String,
    },
    #[error("could not find a JWS signature in the cluster-info ConfigMap for token ID {0:?}: the token is unknown to this cluster, expired, or not for signing; create a new one with `rkube token create` on the server")]
    SignatureMissing(String),
    #[error("failed to verify JWS signature of received cluster info object, can't trust this API Server (is the token's secret right?)")]
    SignatureInvalid,
    #[error("there is no kubeconfig key in the cluster-info ConfigMap. This API Server isn't set up for token bootstrapping, can't connect")]
    KubeconfigMissing,
    #[error("couldn't parse the kubeconfig file in the cluster-info ConfigMap: {0}")]
    KubeconfigUnparsable(String),
    #[error("cluster CA found in cluster-info ConfigMap is invalid: {0}")]
    CaNotPinned(#[source] tokens::Error),
    #[error("the API server at {server} does not present a certificate from the cluster CA (the CA mismatches: wrong server, or the cluster was re-created): {cause}")]
    CaMismatch { server: String, cause: String },
    #[error("the second kubeconfig from the cluster-info ConfigMap (using validated TLS) was different from the first")]
    ClusterInfoChanged,
    #[error("cannot make the certificate request: {0}")]
    RequestFailed(#[source] tokens::Error),
    #[error("cannot create the certificate signing request {name}: {cause}")]
    CsrCreateFailed { name: String, cause: String },
    #[error("certificate signing request is denied, reason: {reason}, message: {message}")]
    CsrDenied { reason: String, message: String },
    #[error("certificate signing request failed, reason: {reason}, message: {message}")]
    CsrFailed { reason: String, message: String },
    #[error("timed out after {timeout:?} waiting for certificate signing request {name} to be approved and signed (last error: {last})")]
    CsrTimeout {
        name: String,
        timeout: Duration,
        last: String,
    },
    #[error("cannot write {path}: {cause}")]
    WriteFailed { path: PathBuf, cause: String },
}

/// A result whose error is this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The API server, `https://HOST:PORT`.
    pub server: String,
    /// The bootstrap token; only needed when there is no usable kubeconfig.
    pub token: Option<String>,
    /// `sha256:` pins of the cluster CA's public key (kubeadm's
    /// `--discovery-token-ca-cert-hash`); empty trusts the JWS alone.
    pub ca_cert_hashes: Vec<String>,
    pub node_name: String,
    /// The node's kubeconfig: reused when its certificate is valid, else written.
    pub kubeconfig: PathBuf,
    /// The key of a request in flight, kept so a retry asks under the same name.
    pub pending_key: PathBuf,
    pub discovery_timeout: Duration,
    pub certificate_timeout: Duration,
}

/// What the join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kubeconfig's certificate is still valid: nothing asked.
    Reused,
    /// A certificate was requested, issued and written into the kubeconfig.
    Bootstrapped,
}

/// Runs the join unless the kubeconfig is still usable; afterwards the kubeconfig at
/// `cfg.kubeconfig` names the node.
pub async fn load_or_bootstrap(cfg: &JoinConfig) -> Result<Outcome> {
    if kubeconfig_still_valid(&cfg.kubeconfig) {
        tracing::info!(kubeconfig = %cfg.kubeconfig.display(), "the node's kubeconfig is valid; no bootstrap needed");
        return Ok(Outcome::Reused);
    }
    let Some(token) = &cfg.token else {
        return Err(Error::NoToken(cfg.kubeconfig.clone()));
    };
    let token = Token::parse(token).map_err(Error::TokenMalformed)?;
    for pin in &cfg.ca_cert_hashes {
        tokens::check_pin_form(pin).map_err(Error::PinMalformed)?;
    }
    let ca_pem = discover(cfg, &token).await?;
    tracing::info!(server = %cfg.server, "cluster-info verified with the bootstrap token");
    let client = client(&cfg.server, Trust::Ca(&ca_pem), Some(&token.expose()))?;
    let key_pem = std::fs::read_to_string(&cfg.pending_key).ok();
    let request =
        tokens::node_csr(&cfg.node_name, key_pem.as_deref()).map_err(Error::RequestFailed)?;
    if key_pem.is_none() {
        write_private(&cfg.pending_key, &request.key_pem)?;
    }
    let cert_pem = request_certificate(&client, &request, cfg.certificate_timeout).await?;
    let user = format!("system:node:{}", cfg.node_name);
    rkube_pki::write_kubeconfig(
        &cfg.kubeconfig,
        &rkube_pki::KubeconfigSpec {
            cluster_name: "rkube",
            server_url: &cfg.server,
            ca_pem: &ca_pem,
            user_name: &user,
            client_cert_pem: &cert_pem,
            client_key_pem: &request.key_pem,
            namespace: None,
        },
    )
    .map_err(|e| Error::WriteFailed {
        path: cfg.kubeconfig.clone(),
        cause: error_chain(&e),
    })?;
    let _ = std::fs::remove_file(&cfg.pending_key);
    tracing::info!(kubeconfig = %cfg.kubeconfig.display(), csr = %request.name, "the node's client certificate was issued");
    Ok(Outcome::Bootstrapped)
}

/// Whether the kubeconfig exists and every certificate of its user is unexpired
/// (upstream's `isClientConfigStillValid`).
pub fn kubeconfig_still_valid(path: &Path) -> bool {
    let Ok(kubeconfig) = kube::config::Kubeconfig::read_from(path) else {
        return false;
    };
    let Some(data) = kubeconfig
        .auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.client_certificate_data.clone())
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .is_ok_and(|pem| tokens::certificates_unexpired(&String::from_utf8_lossy(&pem)))
}

enum Trust<'a> {
    /// kubeadm's insecure discovery client: the server is not yet known.
    Nothing,
    Ca(&'a str),
}

fn client(server: &str, trust: Trust<'_>, token: Option<&str>) -> Result<Client> {
    let url: axum::http::Uri =
        server
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| Error::ServerUrl {
                url: server.into(),
                cause: e.to_string(),
            })?;
    if url.scheme_str() != Some("https") || url.host().is_none() {
        return Err(Error::ServerUrl {
            url: server.into(),
            cause: "want https://HOST:PORT".into(),
        });
    }
    let mut config = Config::new(url);
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(CALL_TIMEOUT);
    config.default_retry = false;
    match trust {
        Trust::Nothing => config.accept_invalid_certs = true,
        Trust::Ca(pem) => {
            config.root_cert = Some(tokens::certificates_der(pem).map_err(Error::CaNotPinned)?)
        }
    }
    if let Some(token) = token {
        config.auth_info =
            serde_json::from_value(serde_json::json!({ "token": token })).unwrap_or_default();
    }
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static("kubelet/v1.37.0 (linux/amd64) kubernetes/rkube"),
    ));
    Client::try_from(config).map_err(Error::ClientBuildFailed)
}

/// One API call under [`CALL_TIMEOUT`], its error as text.
async fn call<T>(
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(kube::Error::Service(
            format!("no answer within {CALL_TIMEOUT:?}").into(),
        )),
    }
}

/// The error with its causes, `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether the call failed because the server's certificate did not verify.
fn is_certificate_error(e: &kube::Error) -> bool {
    let text = error_chain(e);
    text.contains("invalid peer certificate") || text.contains("UnknownIssuer")
}

async fn cluster_info(client: &Client) -> Result<ConfigMap, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CLUSTER_INFO_NAMESPACE);
    call(api.get(CLUSTER_INFO)).await
}

/// kubeadm's token discovery: the cluster CA (PEM) the token vouches for.
async fn discover(cfg: &JoinConfig, token: &Token) -> Result<String> {
    let insecure = client(&cfg.server, Trust::Nothing, None)?;
    let deadline = Instant::now() + cfg.discovery_timeout;
    // The signer adds a new token's signature a moment after the token appears.
    let info = loop {
        let last = match cluster_info(&insecure).await {
            Ok(cm) => {
                let signed = cm
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&signature_key(&token.id)));
                if signed {
                    break cm;
                }
                Error::SignatureMissing(token.id.clone())
            }
            Err(e) => Error::ClusterInfoUnreachable {
                server: cfg.server.clone(),
                timeout: cfg.discovery_timeout,
                cause: error_chain(&e),
            },
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tracing::debug!(error = %last, "cluster-info not usable yet; retrying");
        tokio::time::sleep(RETRY_INTERVAL).await;
    };
    let data = info.data.unwrap_or_default();
    let kubeconfig = data
        .get("kubeconfig")
        .filter(|k| !k.is_empty())
        .ok_or(Error::KubeconfigMissing)?;
    let signature = data
        .get(&signature_key(&token.id))
        .cloned()
        .unwrap_or_default();
    if !tokens::signature_is_valid(&signature, kubeconfig, &token.id, &token.secret) {
        return Err(Error::SignatureInvalid);
    }
    let ca_pem = cluster_ca(kubeconfig)?;
    if !cfg.ca_cert_hashes.is_empty() {
        tokens::check_pins(&ca_pem, &cfg.ca_cert_hashes).map_err(Error::CaNotPinned)?;
    }
    // Ask again trusting only that CA: the server must hold a certificate from it.
    let secure = client(&cfg.server, Trust::Ca(&ca_pem), None)?;
    let again = cluster_info(&secure).await.map_err(|e| {
        if is_certificate_error(&e) {
            Error::CaMismatch {
                server: cfg.server.clone(),
                cause: error_chain(&e),
            }
        } else {
            Error::ClusterInfoUnreachable {
                server: cfg.server.clone(),
                timeout: CALL_TIMEOUT,
                cause: error_chain(&e),
            }
        }
    })?;
    if again.data.as_ref().and_then(|d| d.get("kubeconfig")) != Some(kubeconfig) {
        return Err(Error::ClusterInfoChanged);
    }
    Ok(ca_pem)
}

fn signature_key(id: &str) -> String {
    format!("jws-kubeconfig-{id}")
}

/// The CA of cluster-info's kubeconfig (its first cluster), PEM.
fn cluster_ca(kubeconfig: &str) -> Result<String> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| Error::KubeconfigUnparsable(e.to_string()))?;
    let data = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .ok_or_else(|| Error::KubeconfigUnparsable("no certificate-authority-data".into()))?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::KubeconfigUnparsable(format!("certificate-authority-data: {e}")))?;
    String::from_utf8(pem)
        .map_err(|_| Error::KubeconfigUnparsable("certificate-authority-data is not PEM".into()))
}

/// Creates (or finds) the node's CSR and waits until it is signed; the certificate PEM.
async fn request_certificate(
    client: &Client,
    request: &tokens::NodeCsr,
    timeout: Duration,
) -> Result<String> {
    let name = create_csr(client, CsrName::Fixed(&request.name), request).await?;
    await_certificate(client, &name, timeout).await
}

/// How a node's CSR is named.
pub(crate) enum CsrName<'a> {
    /// The bootstrap's digested name: a restart mid-join finds its request.
    Fixed(&'a str),
    /// A name the server generates from this prefix (a renewal, upstream's `csr-`).
    Generated(&'a str),
}

/// Creates the node's `kube-apiserver-client-kubelet` CSR (or finds the one of the same
/// fixed name); the name it has.
pub(crate) async fn create_csr(
    client: &Client,
    name: CsrName<'_>,
    request: &tokens::NodeCsr,
) -> Result<String> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let (fixed, generated) = match name {
        CsrName::Fixed(n) => (Some(n.to_owned()), None),
        CsrName::Generated(prefix) => (None, Some(prefix.to_owned())),
    };
    let shown = fixed
        .clone()
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: fixed.clone(),
            generate_name: generated,
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.request_pem.clone().into_bytes()),
            signer_name: tokens::KUBELET_CLIENT_SIGNER.into(),
            usages: Some(
                tokens::KUBELET_CLIENT_USAGES
                    .iter()
                    .map(|u| (*u).to_owned())
                    .collect(),
            ),
            ..Default::default()
        },
        status: None,
    };
    match call(api.create(&PostParams::default(), &csr)).await {
        Ok(created) => {
            let name = created.metadata.name.unwrap_or(shown);
            tracing::info!(csr = %name, "certificate signing request created; waiting for its certificate");
            Ok(name)
        }
        // The same key asked before (a restart mid-join): its name is a digest of the key,
        // subject and usages, so that request is this one.
        Err(kube::Error::Api(e)) if e.code == 409 && fixed.is_some() => {
            tracing::info!(csr = %shown, "certificate signing request exists; waiting for its certificate");
            Ok(shown)
        }
        Err(e) => Err(Error::CsrCreateFailed {
            name: shown,
            cause: error_chain(&e),
        }),
    }
}

/// Waits until CSR `name` is signed (or denied, or failed); the certificate PEM.
pub(crate) async fn await_certificate(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<String> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let last = match call(api.get(name)).await {
            Ok(csr) => {
                let status = csr.status.unwrap_or_default();
                for c in status.conditions.unwrap_or_default() {
                    let reason = c.reason.unwrap_or_default();
                    let message = c.message.unwrap_or_default();
                    match c.type_.as_str() {
                        "Denied" => return Err(Error::CsrDenied { reason, message }),
                        "Failed" => return Err(Error::CsrFailed { reason, message }),
                        _ => {}
                    }
                }
                if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
                    return String::from_utf8(cert.0).map_err(|_| Error::CsrFailed {
                        reason: "InvalidCertificate".into(),
                        message: "the issued certificate is not PEM".into(),
                    });
                }
                "not yet approved and signed".to_owned()
            }
            Err(e) => error_chain(&e),
        };
        if Instant::now() >= deadline {
            return Err(Error::CsrTimeout {
                name: name.to_owned(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |e: std::io::Error| Error::WriteFailed {
        path: path.to_owned(),
        cause: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(contents.as_bytes()).map_err(fail)
}

/// Checks the server with the node's kubeconfig before the kubelet starts: a server
/// whose certificate the kubeconfig's CA does not verify is a clear error rather than
/// a kubelet that retries forever. Unreachable servers are left to the kubelet's retries.
pub async fn check_server(client: &Client, server: &str) -> Result<()> {
    match call(client.apiserver_version()).await {
        Err(e) if is_certificate_error(&e) => Err(Error::CaMismatch {
            server: server.into(),
            cause: error_chain(&e),
        }),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "the API server does not answer yet; the kubelet keeps trying");
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// The CA of the client certificates the API server accepts (the
/// `extension-apiserver-authentication` ConfigMap's `client-ca-file`), which the
/// kubelet's server trusts for the API server's calls (logs, exec). Saved at `cache`,
/// which is used when the API cannot be asked.
pub async fn client_ca(client: &Client, cache: &Path) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    match call(api.get(AUTHENTICATION_CONFIGMAP)).await {
        Ok(cm) => {
            if let Some(ca) = cm.data.and_then(|d| d.get("client-ca-file").cloned()) {
                if let Err(e) = write_private(cache, &ca) {
                    tracing::warn!(error = %e, "cannot save the client CA");
                }
                return Some(ca);
            }
            tracing::warn!("{AUTHENTICATION_CONFIGMAP} has no client-ca-file");
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "cannot read the API server's client CA; using the saved one")
        }
    }
    std::fs::read_to_string(cache).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ca_is_read_from_cluster_info() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        let kubeconfig = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
        );
        assert_eq!(cluster_ca(&kubeconfig).unwrap(), pem);
        assert!(matches!(
            cluster_ca("apiVersion: v1\nkind: Config\nclusters: []\n"),
            Err(Error::KubeconfigUnparsable(_))
        ));
    }

    #[test]
    fn missing_or_unreadable_kubeconfigs_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.kubeconfig");
        assert!(!kubeconfig_still_valid(&path));
        std::fs::write(&path, "not yaml: [").unwrap();
        assert!(!kubeconfig_still_valid(&path));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        rkube_pki::write_kubeconfig(
            &path,
            &rkube_pki::KubeconfigSpec {
                cluster_name: "rkube",
                server_url: "https://10.0.0.1:6443",
                ca_pem: &cert.pem(),
                user_name: "system:node:n1",
                client_cert_pem: &cert.pem(),
                client_key_pem: &key.serialize_pem(),
                namespace: None,
            },
        )
        .unwrap();
        assert!(kubeconfig_still_valid(&path));
    }

    #[tokio::test]
    async fn joins_fail_clearly_before_any_network_call() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = JoinConfig {
            server: "https://127.0.0.1:1".into(),
            token: None,
            ca_cert_hashes: vec![],
            node_name: "n1".into(),
            kubeconfig: dir.path().join("kubelet.kubeconfig"),
            pending_key: dir.path().join("pki/kubelet-client.key.tmp"),
            discovery_timeout: Duration::from_millis(100),
            certificate_timeout: Duration::from_millis(100),
        };
        let e = load_or_bootstrap(&cfg).await.unwrap_err();
        assert!(matches!(e, Error::NoToken(_)), "{e}");
        cfg.token = Some("abcdef:nope".into());
        let e = load_or_bootstrap(&cfg).await.unwrap_err().to_string();
        assert!(
            e.starts_with("the bootstrap token \"abcdef:nope\" was not of the form"),
            "{e}"
        );
        cfg.token = Some("abcdef.0123456789abcdef".into());
        cfg.ca_cert_hashes = vec!["sha256:xyz".into()];
        let e = load_or_bootstrap(&cfg).await.unwrap_err();
        assert!(matches!(e, Error::PinMalformed(_)), "{e}");
        cfg.ca_cert_hashes.clear();
        cfg.server = "http://127.0.0.1:1".into();
        let e = load_or_bootstrap(&cfg).await.unwrap_err().to_string();
        assert!(e.contains("want https://HOST:PORT"), "{e}");
        // Nothing listens on port 1: unreachable, after the discovery timeout.
        cfg.server = "https://127.0.0.1:1".into();
        let e = load_or_bootstrap(&cfg).await.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot reach the API server at https://127.0.0.1:1 within 100ms: failed to request the cluster-info ConfigMap:"),
            "{e}"
        );
    }
}
