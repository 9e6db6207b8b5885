//! Client-certificate rotation (upstream's `--rotate-certificates`: client-go's
//! certificate manager as the kubelet uses it). At a random point between 70% and 90% of
//! the certificate's lifetime the node makes a new key, asks for a `system:node:<name>`
//! certificate by a `kubernetes.io/kube-apiserver-client-kubelet` CSR (named `csr-…`,
//! sent with the current certificate, so the approver's `selfnodeclient` check applies),
//! waits for it, writes it and the key atomically (into the kubeconfig, or the files it
//! names), and moves the node's API client onto it: requests from then on are sent
//! over new connections that present the new certificate, and responses still streaming
//! on the old ones (watches) are ended so their callers reconnect, as upstream closes the
//! old connections. A failure is logged with its cause and retried with back-off while
//! the current certificate stays in use. Every API call has a deadline.

use std::future::Future as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures::future::BoxFuture;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rkube_pki::bootstrap::{self as tokens, Validity};
use serde_json::Value;
use thiserror::Error;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::bootstrap::{self, CsrName};

/// Where in a certificate's lifetime rotation starts (upstream's jittered deadline:
/// 70% plus up to 20%).
const ROTATION_START: f64 = 0.7;
const ROTATION_JITTER: f64 = 0.2;
/// Upstream's wait for a renewal's certificate.
const CERTIFICATE_WAIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The first retry after a failed rotation, doubled up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(128);
/// The prefix of a renewal's CSR name (upstream's `csr-`).
const RENEWAL_CSR_PREFIX: &str = "csr-";

/// A failed step of rotation, each with its cause.
#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {cause}")]
    KubeconfigUnreadable { path: PathBuf, cause: String },
    #[error("kubeconfig {0} has no client certificate for its current user")]
    NoClientCertificate(PathBuf),
    #[error("cannot read the client certificate: {0}")]
    CertificateUnreadable(#[source] tokens::Error),
    #[error("cannot make the certificate request: {0}")]
    RequestFailed(#[source] tokens::Error),
    #[error(transparent)]
    Csr(#[from] bootstrap::Error),
    #[error("the issued certificate has already expired (notAfter {0})")]
    IssuedExpired(i64),
    #[error("cannot write {path}: {cause}")]
    WriteFailed { path: PathBuf, cause: String },
    #[error("cannot build an API client from {path}: {cause}")]
    ClientBuildFailed { path: PathBuf, cause: String },
}

/// A result whose error is this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When to rotate a certificate valid from `not_before` to `not_after` (Unix seconds):
/// `jitter` (in `[0, 1]`) of the way from 70% to 90% of its lifetime.
pub fn rotation_deadline(not_before: i64, not_after: i64, jitter: f64) -> SystemTime {
    let start = UNIX_EPOCH + Duration::from_secs(not_before.max(0) as u64);
    let total = (not_after - not_before).max(0) as f64;
    let fraction = ROTATION_START + ROTATION_JITTER * jitter.clamp(0.0, 1.0);
    start + Duration::from_secs_f64(total * fraction)
}

/// How long to wait at `now` before rotating: until the deadline of the certificate
/// (`None`: unreadable, so at once), zero when it has passed.
pub fn wait_before_rotation(now: SystemTime, validity: Option<&Validity>, jitter: f64) -> Duration {
    match validity {
        Some(v) => rotation_deadline(v.not_before, v.not_after, jitter)
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
        None => Duration::ZERO,
    }
}

/// The back-off after `failures` consecutive failed rotations (2 s, doubling, at most
/// 128 s).
pub fn backoff(failures: u32) -> Duration {
    INITIAL_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// A number in `[0, 1]` from the system's randomness.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// The current user's entry of a kubeconfig read as plain data, with the file's
/// directory (relative paths are relative to it).
struct UserEntry {
    doc: Value,
    index: usize,
    dir: PathBuf,
}

fn read_user(path: &Path) -> Result<UserEntry> {
    let unreadable = |cause: String| Error::KubeconfigUnreadable {
        path: path.to_owned(),
        cause,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    let context = doc["current-context"].as_str().unwrap_or_default();
    let contexts = doc["contexts"].as_array().cloned().unwrap_or_default();
    let user = contexts
        .iter()
        .find(|c| c["name"].as_str() == Some(context))
        .or_else(|| contexts.first())
        .and_then(|c| c["context"]["user"].as_str())
        .map(str::to_owned);
    let users = doc["users"].as_array().cloned().unwrap_or_default();
    let index = users
        .iter()
        .position(|u| user.is_none() || u["name"].as_str() == user.as_deref())
        .ok_or_else(|| Error::NoClientCertificate(path.to_owned()))?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Ok(UserEntry { doc, index, dir })
}

impl UserEntry {
    fn user(&self) -> &Value {
        &self.doc["users"][self.index]["user"]
    }

    fn file(&self, field: &str) -> Option<PathBuf> {
        self.user()[field]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(|p| self.dir.join(p))
    }
}

/// The client certificate (PEM) of the kubeconfig's current user.
pub fn client_certificate(path: &Path) -> Result<String> {
    let entry = read_user(path)?;
    if let Some(data) = entry.user()["client-certificate-data"].as_str() {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| Error::KubeconfigUnreadable {
                path: path.to_owned(),
                cause: format!("client-certificate-data: {e}"),
            })?;
        return Ok(String::from_utf8_lossy(&pem).into_owned());
    }
    let file = entry
        .file("client-certificate")
        .ok_or_else(|| Error::NoClientCertificate(path.to_owned()))?;
    std::fs::read_to_string(&file).map_err(|e| Error::KubeconfigUnreadable {
        path: file,
        cause: e.to_string(),
    })
}

/// Writes the new certificate and key where the kubeconfig's current user has them:
/// the files it names (one file holding both when both name the same, as upstream's
/// `kubelet-client-current.pem`), else inline in the kubeconfig. Each file is replaced
/// atomically.
pub fn write_credentials(path: &Path, cert_pem: &str, key_pem: &str) -> Result<()> {
    let mut entry = read_user(path)?;
    match (entry.file("client-certificate"), entry.file("client-key")) {
        (Some(cert), Some(key)) if cert == key => {
            write_atomic(&cert, format!("{cert_pem}{key_pem}").as_bytes())
        }
        (Some(cert), Some(key)) => {
            // The key first: until the certificate follows, the old pair still matches
            // nothing new, and a reader retries on a mismatched pair.
            write_atomic(&key, key_pem.as_bytes())?;
            write_atomic(&cert, cert_pem.as_bytes())
        }
        _ => {
            let b64 = |s: &str| Value::String(base64::engine::general_purpose::STANDARD.encode(s));
            let user = &mut entry.doc["users"][entry.index]["user"];
            if let Some(map) = user.as_object_mut() {
                map.remove("client-certificate");
                map.remove("client-key");
                map.insert("client-certificate-data".into(), b64(cert_pem));
                map.insert("client-key-data".into(), b64(key_pem));
            }
            let yaml = serde_saphyr::to_string(&entry.doc).map_err(|e| Error::WriteFailed {
                path: path.to_owned(),
                cause: e.to_string(),
            })?;
            write_atomic(path, yaml.as_bytes())
        }
    }
}

/// Writes `contents` to a temporary file beside `path` (mode 0600), syncs it and renames
/// it over `path`: a reader sees the old file or the whole new one.
fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let fail = |e: std::io::Error| Error::WriteFailed {
        path: path.to_owned(),
        cause: e.to_string(),
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(contents).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// An API client built from the kubeconfig as it is now.
async fn build_client(path: &Path, user_agent: &axum::http::HeaderValue) -> Result<Client> {
    let fail = |cause: String| Error::ClientBuildFailed {
        path: path.to_owned(),
        cause,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))?;
    config
        .headers
        .push((axum::http::header::USER_AGENT, user_agent.clone()));
    Client::try_from(config).map_err(|e| fail(bootstrap::error_chain(&e)))
}

/// The client of the current certificate and the signal that ends its streams.
struct Current {
    client: Client,
    retired: CancellationToken,
}

/// A `tower::Service` sending each request through the current certificate's client.
#[derive(Clone)]
struct Rotating(Arc<RwLock<Current>>);

impl tower::Service<axum::http::Request<kube::client::Body>> for Rotating {
    type Response = axum::http::Response<RetiringBody>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<kube::client::Body>) -> Self::Future {
        let (client, retired) = {
            let current = self.0.read().unwrap_or_else(|e| e.into_inner());
            (current.client.clone(), current.retired.clone())
        };
        Box::pin(async move {
            let response = client.send(request).await?;
            Ok(response.map(|body| RetiringBody {
                body,
                retired: Box::pin(retired.cancelled_owned()),
                ended: false,
            }))
        })
    }
}

/// A response body that ends with an error once its certificate is retired.
struct RetiringBody {
    body: kube::client::Body,
    retired: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl http_body::Body for RetiringBody {
    type Data = Bytes;
    type Error = kube::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, kube::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.retired.as_mut().poll(cx).is_ready() {
            self.ended = true;
            return Poll::Ready(Some(Err(kube::Error::Service(
                "connection closed: the client certificate was rotated".into(),
            ))));
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }
}

/// Rotates the node's client certificate in the background (see the module docs).
pub struct Rotator {
    kubeconfig: PathBuf,
    node_name: String,
    user_agent: axum::http::HeaderValue,
    current: Arc<RwLock<Current>>,
    /// The rotating client itself: renewals are sent with the current certificate.
    client: Client,
}

/// The node's API client from `kubeconfig`, which follows the certificate the returned
/// [`Rotator`] (when run) renews.
pub async fn client(
    kubeconfig: &Path,
    node_name: &str,
    user_agent: axum::http::HeaderValue,
) -> Result<(Client, Rotator)> {
    let inner = build_client(kubeconfig, &user_agent).await?;
    let namespace = inner.default_namespace().to_owned();
    let current = Arc::new(RwLock::new(Current {
        client: inner,
        retired: CancellationToken::new(),
    }));
    let client = Client::new(Rotating(current.clone()), namespace);
    let rotator = Rotator {
        kubeconfig: kubeconfig.to_owned(),
        node_name: node_name.to_owned(),
        user_agent,
        current,
        client: client.clone(),
    };
    Ok((client, rotator))
}

impl Rotator {
    /// Rotates the certificate before each deadline, forever.
    pub async fn run(self) {
        loop {
            let validity = client_certificate(&self.kubeconfig).and_then(|pem| {
                tokens::certificate_validity(&pem).map_err(Error::CertificateUnreadable)
            });
            let wait = match &validity {
                Ok(v) => {
                    let wait = wait_before_rotation(SystemTime::now(), Some(v), random_fraction());
                    tracing::info!(
                        not_after = v.not_after,
                        serial = %v.serial,
                        rotation_in = ?wait,
                        "certificate rotation deadline set"
                    );
                    wait
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the current client certificate; rotating it now");
                    Duration::ZERO
                }
            };
            tokio::time::sleep(wait).await;
            let mut failures = 0;
            loop {
                match self.rotate().await {
                    Ok(v) => {
                        tracing::info!(serial = %v.serial, not_after = v.not_after, "client certificate rotated");
                        break;
                    }
                    Err(e) => {
                        failures += 1;
                        let delay = backoff(failures);
                        tracing::warn!(error = %e, retry_in = ?delay, "certificate rotation failed; the current certificate stays in use");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }

    /// One rotation: new key, CSR, certificate, files, client.
    async fn rotate(&self) -> Result<Validity> {
        let request = tokens::node_csr(&self.node_name, None).map_err(Error::RequestFailed)?;
        let name = bootstrap::create_csr(
            &self.client,
            CsrName::Generated(RENEWAL_CSR_PREFIX),
            &request,
        )
        .await?;
        let cert_pem =
            bootstrap::await_certificate(&self.client, &name, CERTIFICATE_WAIT_TIMEOUT).await?;
        let validity =
            tokens::certificate_validity(&cert_pem).map_err(Error::CertificateUnreadable)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        if validity.not_after <= now {
            return Err(Error::IssuedExpired(validity.not_after));
        }
        write_credentials(&self.kubeconfig, &cert_pem, &request.key_pem)?;
        let client = build_client(&self.kubeconfig, &self.user_agent).await?;
        let old = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(
                &mut *current,
                Current {
                    client,
                    retired: CancellationToken::new(),
                },
            )
        };
        old.retired.cancel();
        tracing::info!(csr = %name, "the node's client certificate was renewed; new connections present it");
        Ok(validity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_deadline_falls_between_70_and_90_percent_of_the_lifetime() {
        // Valid for 1000 s from t=10000.
        assert_eq!(rotation_deadline(10_000, 11_000, 0.0), at(10_700));
        assert_eq!(rotation_deadline(10_000, 11_000, 1.0), at(10_900));
        assert_eq!(rotation_deadline(10_000, 11_000, 0.5), at(10_800));
        // Out-of-range jitter is clamped; a backwards certificate is due at its start.
        assert_eq!(rotation_deadline(10_000, 11_000, 7.0), at(10_900));
        assert_eq!(rotation_deadline(10_000, 11_000, -1.0), at(10_700));
        assert_eq!(rotation_deadline(10_000, 9_000, 0.5), at(10_000));
        for _ in 0..100 {
            let d = rotation_deadline(0, 1_000_000, random_fraction());
            assert!(d >= at(700_000) && d <= at(900_000), "{d:?}");
        }
    }

    #[test]
    fn rotation_waits_for_the_deadline_and_is_at_once_when_due_or_unreadable() {
        let v = Validity {
            not_before: 1_000,
            not_after: 2_000,
            serial: "01".into(),
        };
        // Early in the lifetime: wait until 70%..90%.
        assert_eq!(
            wait_before_rotation(at(1_100), Some(&v), 0.0),
            Duration::from_secs(600)
        );
        assert_eq!(
            wait_before_rotation(at(1_100), Some(&v), 1.0),
            Duration::from_secs(800)
        );
        // Past the deadline, or expired: now.
        assert_eq!(
            wait_before_rotation(at(1_850), Some(&v), 0.0),
            Duration::ZERO
        );
        assert_eq!(
            wait_before_rotation(at(5_000), Some(&v), 1.0),
            Duration::ZERO
        );
        assert_eq!(wait_before_rotation(at(1_100), None, 0.5), Duration::ZERO);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_cap() {
        let got: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 32, 64, 128, 128, 128]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    fn key_and_cert() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn credentials_are_replaced_inline_in_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.kubeconfig");
        let (cert, key) = key_and_cert();
        rkube_pki::write_kubeconfig(
            &path,
            &rkube_pki::KubeconfigSpec {
                cluster_name: "rkube",
                server_url: "https://10.0.0.1:6443",
                ca_pem: &cert,
                user_name: "system:node:n1",
                client_cert_pem: &cert,
                client_key_pem: &key,
                namespace: None,
            },
        )
        .unwrap();
        assert_eq!(client_certificate(&path).unwrap(), cert);
        let (cert2, key2) = key_and_cert();
        write_credentials(&path, &cert2, &key2).unwrap();
        assert_eq!(client_certificate(&path).unwrap(), cert2);
        // Still a kubeconfig kube reads, with the same server and CA.
        let kc = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://10.0.0.1:6443")
        );
        assert_eq!(kc.current_context.as_deref(), Some("system:node:n1@rkube"));
        // What a restart reads: reused (unexpired), and the server found.
        assert!(bootstrap::kubeconfig_still_valid(&path));
        assert_eq!(
            rkube_pki::kubeconfig::server_url(&path).as_deref(),
            Some("https://10.0.0.1:6443")
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn credentials_go_to_the_files_the_kubeconfig_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.conf");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443\nusers:\n- name: other\n  user:\n    token: x\n- name: node\n  user:\n    client-certificate: pki/current.pem\n    client-key: pki/current.pem\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: node\ncurrent-context: ctx\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("pki")).unwrap();
        let (cert, key) = key_and_cert();
        write_credentials(&path, &cert, &key).unwrap();
        let combined = std::fs::read_to_string(dir.path().join("pki/current.pem")).unwrap();
        assert_eq!(combined, format!("{cert}{key}"));
        assert!(client_certificate(&path).unwrap().contains(cert.trim()));
        // The kubeconfig itself is untouched.
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("client-key: pki/current.pem"));
        let e = client_certificate(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().starts_with("cannot read kubeconfig"), "{e}");
    }
}
