//! The cluster PKI directory: the CA, the API server's serving certificate, client certificates.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::ca::ClusterCa;
use crate::error::{Error, Result};
use crate::files;
use crate::inventory::{cert_files, node_name, CertFile, CertKind, CLIENT_CA, SERVER_CA};
use crate::kubeconfig::{render_kubeconfig, KubeconfigSpec};
use crate::leaf::{self, IssuedCert, LeafRequest, Usage};
use crate::material;
use crate::names::ServingNames;
use crate::service_account::ServiceAccountKey;

/// The serving certificate's file stem: `apiserver.crt`, `apiserver.key`.
pub const SERVING_NAME: &str = "apiserver";
/// The admin client certificate's file stem: `admin.crt`, `admin.key`.
pub const ADMIN_NAME: &str = "admin";
/// The serving certificate's common name (upstream's).
pub const SERVING_COMMON_NAME: &str = "kube-apiserver";
/// The lock file that serializes processes sharing the PKI directory.
const LOCK_FILE: &str = ".lock";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Validity periods and renewal policy; [`Default`] is what a cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PkiOptions {
    /// How long a new CA is valid: 10 years.
    pub ca_validity: Duration,
    /// How long a new serving, admin or component certificate is valid: 1 year.
    pub leaf_validity: Duration,
    /// A leaf is re-issued on load when less than this, or a third of its lifetime,
    /// remains (the shorter of the two): 90 days.
    pub renew_before: Duration,
    /// The time to act at; `None` is the system clock. Tests set it to make expired
    /// certificates.
    pub now: Option<SystemTime>,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            ca_validity: 3650 * DAY,
            leaf_validity: 365 * DAY,
            renew_before: 90 * DAY,
            now: None,
        }
    }
}

impl PkiOptions {
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from(self.now.unwrap_or_else(SystemTime::now))
    }
}

/// The cluster's CAs and every component's certificate, kept in one directory.
///
/// Files, all PEM (keys PKCS#8 ECDSA P-256, mode 0600; certificates mode 0644; the
/// directory mode 0700), one row each of [`cert_files`](crate::inventory::cert_files):
/// `ca.crt`/`ca.key` (the server CA), `client-ca.crt`/`client-ca.key` (the client CA),
/// `apiserver.crt`/`apiserver.key`, `admin`, `kube-scheduler`, `kube-controller-manager`,
/// `kube-proxy` and `kubelet` client certificates, `sa.key`/`sa.pub` (the service-account
/// token signing key), and `<name>.crt`/`<name>.key` per
/// [`client_identity_files`](Self::client_identity_files).
pub struct ClusterPki {
    dir: PathBuf,
    options: PkiOptions,
    ca: ClusterCa,
    client_ca: ClusterCa,
    serving: IssuedCert,
    clients: Vec<(CertFile, IssuedCert)>,
    service_account: Arc<ServiceAccountKey>,
}

impl ClusterPki {
    /// Loads the PKI in `pki_dir`, creating whatever is missing, with default validity.
    ///
    /// On first call this creates the server CA (CN `rkube-ca`) and the client CA (CN
    /// `rkube-client-ca`), 10 years each, the API server's serving certificate (1 year,
    /// SANs from `names`, from the server CA) and the client certificates of the admin (CN
    /// `admin`, O `system:masters`) and the components (from the client CA). Later calls
    /// load them, and re-issue a leaf from the same CA when it lacks a SAN of `names`, has
    /// expired or is due for renewal. A file that exists but cannot be read or parsed is
    /// an error naming it; a CA is never replaced here (see [`rotate_ca`](Self::rotate_ca)).
    pub fn load_or_create(pki_dir: &Path, names: &ServingNames) -> Result<Self> {
        Self::load_or_create_with(pki_dir, names, PkiOptions::default())
    }

    /// [`load_or_create`](Self::load_or_create) with explicit validity and renewal policy.
    pub fn load_or_create_with(
        pki_dir: &Path,
        names: &ServingNames,
        options: PkiOptions,
    ) -> Result<Self> {
        Self::load(pki_dir, names, options, false)
    }

    /// Re-issues every leaf certificate now (`rkube certs rotate`), from the same CAs,
    /// including the front proxy's client certificate when it exists.
    pub fn rotate_leaves(
        pki_dir: &Path,
        names: &ServingNames,
        options: PkiOptions,
    ) -> Result<Self> {
        let names = with_existing_sans(pki_dir, names);
        Self::load(pki_dir, &names, options, true)
    }

    /// Starts a CA rotation (`rkube certs rotate --ca`): new server and client CAs, each
    /// file a bundle of the new CA and the one it replaces (still trusted until `overlap`
    /// from now, recorded in `<stem>.overlap-until`), and every leaf re-issued from the new
    /// CAs. A CA that has already expired is replaced with no overlap.
    pub fn rotate_ca(
        pki_dir: &Path,
        names: &ServingNames,
        options: PkiOptions,
        overlap: Duration,
    ) -> Result<Self> {
        files::ensure_private_dir(pki_dir).map_err(|source| Error::DirCreateFailed {
            path: pki_dir.to_owned(),
            source,
        })?;
        {
            let _lock = lock_dir(pki_dir)?;
            for spec in [SERVER_CA, CLIENT_CA] {
                ClusterCa::rotate(pki_dir, spec, options.now(), options.ca_validity, overlap)?;
            }
        }
        let names = with_existing_sans(pki_dir, names);
        Self::load(pki_dir, &names, options, false)
    }

    fn load(
        pki_dir: &Path,
        names: &ServingNames,
        options: PkiOptions,
        force: bool,
    ) -> Result<Self> {
        files::ensure_private_dir(pki_dir).map_err(|source| Error::DirCreateFailed {
            path: pki_dir.to_owned(),
            source,
        })?;
        let _lock = lock_dir(pki_dir)?;
        let now = options.now();
        let load_ca = |spec| {
            ClusterCa::load_or_create(
                pki_dir,
                spec,
                now,
                options.ca_validity,
                options.renew_before,
            )
        };
        let ca = load_ca(SERVER_CA)?;
        let client_ca = load_ca(CLIENT_CA)?;
        let node = node_name(names.hostname.as_deref());
        let mut serving = None;
        let mut clients = Vec::new();
        for row in cert_files(&node) {
            let usage = match row.kind {
                CertKind::Serving => Usage::Server {
                    dns_names: names.all_dns_names(),
                    ips: names.all_ips(),
                },
                CertKind::Client => Usage::Client,
                CertKind::Ca | CertKind::SigningKey => continue,
            };
            let request = LeafRequest {
                common_name: row.common_name.clone(),
                organizations: row.organization.iter().map(|o| o.to_string()).collect(),
                usage,
                validity: options.leaf_validity,
            };
            let issued = if row.managed {
                let issuer = match row.issuer {
                    Some(stem) if stem == SERVER_CA.stem => &ca,
                    _ => &client_ca,
                };
                leaf::load_or_issue(
                    issuer,
                    pki_dir,
                    row.stem,
                    &request,
                    now,
                    options.renew_before,
                    force,
                )?
            } else {
                // Another component owns it: re-issued on rotation when it and its CA exist.
                let present = pki_dir.join(row.cert_file()).exists();
                if force && present {
                    let spec = crate::ca::CaSpec {
                        stem: row.issuer.unwrap_or_default(),
                        common_name: "",
                    };
                    if let Some(issuer) =
                        ClusterCa::load_existing(pki_dir, spec, now, options.renew_before)?
                    {
                        leaf::load_or_issue(
                            &issuer,
                            pki_dir,
                            row.stem,
                            &request,
                            now,
                            options.renew_before,
                            true,
                        )?;
                    }
                }
                continue;
            };
            match row.kind {
                CertKind::Serving => serving = Some(issued),
                _ => clients.push((row, issued)),
            }
        }
        let serving = serving.expect("the inventory has a serving certificate row");
        let service_account = Arc::new(ServiceAccountKey::load_or_create(pki_dir)?);
        Ok(Self {
            dir: pki_dir.to_owned(),
            options,
            ca,
            client_ca,
            serving,
            clients,
            service_account,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server CA file's content, PEM, as stored in `ca.crt`: the CA that signs the
    /// serving certificate, then during a rotation the old one (what kubeconfigs embed).
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The server CA certificate, DER (what a rustls root store takes).
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        self.ca.cert_der()
    }

    /// The client CA certificate that signs client certificates now, DER.
    pub fn client_ca_cert_der(&self) -> &CertificateDer<'static> {
        self.client_ca.cert_der()
    }

    /// Every CA the API server trusts for client certificates, DER: the client CA and,
    /// during a rotation's overlap, the one it replaced.
    pub fn client_ca_bundle_der(&self) -> &[CertificateDer<'static>] {
        self.client_ca.bundle_der()
    }

    /// The client CA file's content, PEM (`client-ca.crt`).
    pub fn client_ca_pem(&self) -> &str {
        self.client_ca.cert_pem()
    }

    /// The API server's serving certificate and key.
    pub fn serving_cert(&self) -> &IssuedCert {
        &self.serving
    }

    /// The serving certificate chain for rustls: the leaf alone, since clients trust the CA
    /// directly and sending it again would only lengthen every handshake. During a CA
    /// rotation's overlap the new CA cross-signed by the old one follows, so clients that
    /// still trust only the old CA verify the new serving certificate.
    pub fn serving_cert_chain_der(&self) -> Vec<CertificateDer<'static>> {
        let mut chain = vec![self.serving.cert_der().clone()];
        chain.extend(self.ca.cross_der().cloned());
        chain
    }

    /// The serving certificate's private key for rustls.
    pub fn serving_key_der(&self) -> PrivateKeyDer<'static> {
        self.serving.key_der()
    }

    /// The admin client certificate (CN `admin`, O `system:masters`) and key.
    pub fn admin_cert(&self) -> &IssuedCert {
        self.client_cert(ADMIN_NAME)
            .expect("the inventory has an admin row")
    }

    /// The client certificate of inventory row `stem` (`admin`, `kube-scheduler`,
    /// `kube-controller-manager`, `kube-proxy`, `kubelet`).
    pub fn client_cert(&self, stem: &str) -> Option<&IssuedCert> {
        self.clients
            .iter()
            .find(|(row, _)| row.stem == stem)
            .map(|(_, cert)| cert)
    }

    /// The key that signs and verifies service-account tokens (`sa.key`, `sa.pub`).
    pub fn service_account_key(&self) -> &Arc<ServiceAccountKey> {
        &self.service_account
    }

    /// Writes the kubeconfig of every client certificate that has one (`admin.kubeconfig`,
    /// `scheduler.kubeconfig`, `controller-manager.kubeconfig`, `kube-proxy.kubeconfig`,
    /// `kubelet.kubeconfig`) into `dir`, pointing at `server_url` and trusting `ca.crt`
    /// (the whole bundle). A file whose content would not change is left alone. Returns
    /// the files written.
    pub fn write_kubeconfigs(&self, dir: &Path, server_url: &str) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (row, cert) in &self.clients {
            let Some(file) = row.kubeconfig else { continue };
            let path = dir.join(file);
            let spec = KubeconfigSpec {
                cluster_name: "rkube",
                server_url,
                ca_pem: self.ca_cert_pem(),
                user_name: user_entry_name(row),
                client_cert_pem: cert.cert_pem(),
                client_key_pem: cert.key_pem(),
                namespace: None,
            };
            let yaml = render_kubeconfig(&spec)?;
            if material::read_optional(&path)?.as_deref() == Some(yaml.as_bytes()) {
                continue;
            }
            files::write_atomic(&path, yaml.as_bytes(), files::SECRET_MODE).map_err(|source| {
                Error::WriteFailed {
                    path: path.clone(),
                    source,
                }
            })?;
            written.push(path);
        }
        Ok(written)
    }

    /// Issues a new client certificate from the client CA, not stored anywhere, for user
    /// `common_name` in groups `organizations`, valid for `validity`.
    ///
    /// Components use `system:kube-scheduler`, `system:kube-controller-manager`,
    /// `system:kube-proxy`, and `system:node:<name>` in `system:nodes` (see
    /// [`crate::identity`]). At most one organization is supported (an rcgen 0.14 limit);
    /// more is a [`Error::SubjectBuildFailed`].
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
        validity: Duration,
    ) -> Result<IssuedCert> {
        self.issue_client_cert_at(
            common_name,
            organizations,
            self.options.now().into(),
            validity,
        )
    }

    /// [`issue_client_cert`](Self::issue_client_cert) as if issued at `issued_at`: valid
    /// from a little before it for `validity`. Tests make expired and not-yet-valid
    /// certificates with it.
    pub fn issue_client_cert_at(
        &self,
        common_name: &str,
        organizations: &[&str],
        issued_at: SystemTime,
        validity: Duration,
    ) -> Result<IssuedCert> {
        let request = client_request(common_name, organizations, validity);
        leaf::issue(&self.client_ca, &request, issued_at.into())
    }

    /// Loads `<name>.crt`/`<name>.key` from the PKI directory, issuing them from the client
    /// CA (with the default leaf validity) when missing, due for renewal, or for a
    /// different subject than `common_name`/`organizations`.
    ///
    /// `name` is a plain file stem (lowercase letters, digits, `-`, `_`, `.`); the stems of
    /// the inventory (`ca`, `apiserver`, `admin`, ...) are reserved.
    pub fn client_identity_files(
        &self,
        name: &str,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<IssuedCert> {
        check_identity_name(name)?;
        let _lock = lock_dir(&self.dir)?;
        let request = client_request(common_name, organizations, self.options.leaf_validity);
        leaf::load_or_issue(
            &self.client_ca,
            &self.dir,
            name,
            &request,
            self.options.now(),
            self.options.renew_before,
            false,
        )
    }
}

/// `names` plus the names the current serving certificate has, so that a rotation run
/// outside the server keeps the addresses the server was started with.
fn with_existing_sans(pki_dir: &Path, names: &ServingNames) -> ServingNames {
    let mut names = names.clone();
    let path = pki_dir.join(format!("{SERVING_NAME}.crt"));
    let Ok(Some(bytes)) = material::read_optional(&path) else {
        return names;
    };
    let Ok(der) = material::read_cert_pem(&path, &bytes, material::CertCount::First) else {
        return names;
    };
    let Ok(cert) = material::parse_cert(&path, &der) else {
        return names;
    };
    let (dns, ips) = leaf::subject_alt_names(&cert);
    names.dns_names.extend(dns);
    names.ips.extend(ips);
    names
}

/// A kubeconfig's user entry name: `admin` for the admin, else the certificate's user.
fn user_entry_name(row: &CertFile) -> &str {
    if row.stem == ADMIN_NAME {
        ADMIN_NAME
    } else {
        &row.common_name
    }
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn client_request(common_name: &str, organizations: &[&str], validity: Duration) -> LeafRequest {
    LeafRequest {
        common_name: common_name.to_owned(),
        organizations: organizations.iter().map(|o| o.to_string()).collect(),
        usage: Usage::Client,
        validity,
    }
}

/// Takes an exclusive lock on the PKI directory, so two processes starting at once do not
/// both create a CA. Released when the returned file is dropped.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let lock_failed = |source| Error::LockFailed {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_failed)?;
    file.lock().map_err(lock_failed)?;
    Ok(file)
}

fn check_identity_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::IdentityNameInvalid {
            name: name.to_owned(),
            reason,
        })
    };
    if cert_files("")
        .iter()
        .any(|row| row.managed && row.stem == name)
    {
        return invalid("reserved");
    }
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if name.is_empty()
        || !name.chars().all(valid_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return invalid(
            "want lowercase letters, digits, '-', '_' or '.', starting with a letter or digit",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names() {
        for ok in ["my-scheduler", "kubelet.node-1", "proxy_2"] {
            check_identity_name(ok).unwrap();
        }
        for bad in [
            "",
            "ca",
            "apiserver",
            "admin",
            "client-ca",
            "kube-scheduler",
            "../x",
            "a/b",
            ".hidden",
            "Upper",
        ] {
            assert!(check_identity_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
