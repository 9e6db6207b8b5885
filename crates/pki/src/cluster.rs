//! The cluster PKI directory: the CA, the API server's serving certificate, client certificates.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::ca::{self, ClusterCa};
use crate::error::{Error, Result};
use crate::files;
use crate::identity::{ADMIN_USER, MASTERS_GROUP};
use crate::leaf::{self, IssuedCert, LeafRequest, Usage};
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
    /// A leaf that expires within this is re-issued on load: 30 days.
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
            renew_before: 30 * DAY,
            now: None,
        }
    }
}

impl PkiOptions {
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from(self.now.unwrap_or_else(SystemTime::now))
    }
}

/// The cluster's CA and the certificates the API server needs, kept in one directory.
///
/// Files, all PEM (keys PKCS#8 ECDSA P-256, mode 0600; certificates mode 0644; the
/// directory mode 0700): `ca.crt`/`ca.key`, `apiserver.crt`/`apiserver.key`,
/// `admin.crt`/`admin.key`, `sa.key`/`sa.pub` (the service-account token signing key),
/// and `<name>.crt`/`<name>.key` per
/// [`client_identity_files`](Self::client_identity_files).
pub struct ClusterPki {
    dir: PathBuf,
    options: PkiOptions,
    ca: ClusterCa,
    serving: IssuedCert,
    admin: IssuedCert,
    service_account: Arc<ServiceAccountKey>,
}

impl ClusterPki {
    /// Loads the PKI in `pki_dir`, creating whatever is missing, with default validity.
    ///
    /// On first call this creates the CA (CN `rkube-ca`, 10 years), the API server's serving
    /// certificate (1 year, SANs from `names`) and the admin client certificate (CN `admin`,
    /// O `system:masters`, 1 year). Later calls load them, and re-issue a leaf with the same
    /// CA when it lacks a SAN of `names`, has expired or expires within 30 days. A file that
    /// exists but cannot be read or parsed is an error naming it; the CA is never replaced.
    pub fn load_or_create(pki_dir: &Path, names: &ServingNames) -> Result<Self> {
        Self::load_or_create_with(pki_dir, names, PkiOptions::default())
    }

    /// [`load_or_create`](Self::load_or_create) with explicit validity and renewal policy.
    pub fn load_or_create_with(
        pki_dir: &Path,
        names: &ServingNames,
        options: PkiOptions,
    ) -> Result<Self> {
        files::ensure_private_dir(pki_dir).map_err(|source| Error::DirCreateFailed {
            path: pki_dir.to_owned(),
            source,
        })?;
        let _lock = lock_dir(pki_dir)?;
        let now = options.now();
        let ca =
            ClusterCa::load_or_create(pki_dir, now, options.ca_validity, options.renew_before)?;
        let serving_request = LeafRequest {
            common_name: SERVING_COMMON_NAME.into(),
            organizations: Vec::new(),
            usage: Usage::Server {
                dns_names: names.all_dns_names(),
                ips: names.all_ips(),
            },
            validity: options.leaf_validity,
        };
        let serving = leaf::load_or_issue(
            &ca,
            pki_dir,
            SERVING_NAME,
            &serving_request,
            now,
            options.renew_before,
        )?;
        let admin_request = client_request(ADMIN_USER, &[MASTERS_GROUP], options.leaf_validity);
        let admin = leaf::load_or_issue(
            &ca,
            pki_dir,
            ADMIN_NAME,
            &admin_request,
            now,
            options.renew_before,
        )?;
        let service_account = Arc::new(ServiceAccountKey::load_or_create(pki_dir)?);
        Ok(Self {
            dir: pki_dir.to_owned(),
            options,
            ca,
            serving,
            admin,
            service_account,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, PEM, as stored in `ca.crt` (what kubeconfigs embed).
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA certificate, DER (what a rustls root store or client verifier takes).
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        self.ca.cert_der()
    }

    /// The API server's serving certificate and key.
    pub fn serving_cert(&self) -> &IssuedCert {
        &self.serving
    }

    /// The serving certificate chain for rustls: the leaf alone, since clients trust the CA
    /// directly and sending it again would only lengthen every handshake.
    pub fn serving_cert_chain_der(&self) -> Vec<CertificateDer<'static>> {
        vec![self.serving.cert_der().clone()]
    }

    /// The serving certificate's private key for rustls.
    pub fn serving_key_der(&self) -> PrivateKeyDer<'static> {
        self.serving.key_der()
    }

    /// The admin client certificate (CN `admin`, O `system:masters`) and key.
    pub fn admin_cert(&self) -> &IssuedCert {
        &self.admin
    }

    /// The key that signs and verifies service-account tokens (`sa.key`, `sa.pub`).
    pub fn service_account_key(&self) -> &Arc<ServiceAccountKey> {
        &self.service_account
    }

    /// Issues a new client certificate, not stored anywhere, for user `common_name` in
    /// groups `organizations`, valid for `validity`.
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
        let request = client_request(common_name, organizations, validity);
        leaf::issue(&self.ca, &request, self.options.now())
    }

    /// Loads `<name>.crt`/`<name>.key` from the PKI directory, issuing them (with the
    /// default leaf validity) when missing, expiring within the renewal window, or for a
    /// different subject than `common_name`/`organizations`.
    ///
    /// `name` is a plain file stem (lowercase letters, digits, `-`, `_`, `.`); `ca`,
    /// `apiserver` and `admin` are reserved.
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
            &self.ca,
            &self.dir,
            name,
            &request,
            self.options.now(),
            self.options.renew_before,
        )
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
    if [
        ca::CA_CERT_FILE.trim_end_matches(".crt"),
        crate::service_account::SA_KEY_FILE.trim_end_matches(".key"),
        SERVING_NAME,
        ADMIN_NAME,
    ]
    .contains(&name)
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
        for ok in ["kube-scheduler", "kubelet.node-1", "proxy_2"] {
            check_identity_name(ok).unwrap();
        }
        for bad in [
            "",
            "ca",
            "apiserver",
            "admin",
            "../x",
            "a/b",
            ".hidden",
            "Upper",
        ] {
            assert!(check_identity_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
