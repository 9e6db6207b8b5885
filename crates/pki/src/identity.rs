//! Who a client certificate says it is: user from the subject CN, groups from the subject O.
//!
//! This mirrors upstream's x509 authenticator (`CommonNameUserConversion`): after the API
//! server has verified a client certificate against the cluster CA, the subject's common name
//! is the user name and each organization is a group. This module does not verify the chain;
//! the TLS layer does that.

use std::time::SystemTime;

use x509_parser::prelude::{FromDer, X509Certificate, X509Error};

/// The user of a client certificate that has the `system:masters` group: full access.
pub const ADMIN_USER: &str = "admin";
/// The group that RBAC grants every permission to (upstream `system:masters`).
pub const MASTERS_GROUP: &str = "system:masters";
/// The scheduler's user name.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The controller manager's user name.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The proxy's user name.
pub const KUBE_PROXY_USER: &str = "system:kube-proxy";
/// The group every kubelet belongs to (the Node authorizer acts on it).
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a kubelet's user name: `system:node:<node name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The user name a kubelet uses on node `node_name`: `system:node:<node_name>`.
pub fn node_user(node_name: &str) -> String {
    format!("{NODE_USER_PREFIX}{node_name}")
}

/// Errors from reading an identity out of a certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a DER X.509 certificate.
    #[error("parse client certificate")]
    CertificateParseFailed(#[source] X509Error),
    /// A subject attribute (CN or O) is not a string.
    #[error("read client certificate subject")]
    SubjectReadFailed(#[source] X509Error),
    /// The subject has no common name, so there is no user (upstream refuses these too).
    #[error("client certificate subject has no common name")]
    MissingCommonName,
}

/// A result whose error is this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The user a client certificate authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The user name: the subject's common name.
    pub user: String,
    /// The groups: the subject's organizations, in certificate order.
    pub groups: Vec<String>,
    /// When the certificate stops being valid; the API server must not accept it after.
    pub not_after: SystemTime,
}

/// Reads the identity from a DER-encoded client certificate.
///
/// With several common names the last one wins, as in Go's `pkix.Name` that upstream uses.
pub fn identity_from_der(cert_der: &[u8]) -> Result<ClientIdentity> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|err| {
        Error::CertificateParseFailed(match err {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
            x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
        })
    })?;
    identity_from_certificate(&cert)
}

/// Reads the identity from an already parsed certificate.
pub(crate) fn identity_from_certificate(cert: &X509Certificate<'_>) -> Result<ClientIdentity> {
    let subject = cert.subject();
    let mut user = None;
    for cn in subject.iter_common_name() {
        user = Some(cn.as_str().map_err(Error::SubjectReadFailed)?.to_owned());
    }
    let user = user
        .filter(|user| !user.is_empty())
        .ok_or(Error::MissingCommonName)?;
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::SubjectReadFailed)?;
    Ok(ClientIdentity {
        user,
        groups,
        not_after: cert.validity().not_after.to_datetime().into(),
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;

    fn self_signed(cn: Option<&str>, orgs: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        for org in orgs {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *org);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn node_identity() {
        let der = self_signed(Some(&node_user("n1")), &[NODES_GROUP]);
        let id = identity_from_der(&der).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, vec!["system:nodes"]);
        assert!(id.not_after > SystemTime::now());
    }

    /// Made with `openssl req -x509 -subj "/O=dev/O=ops/CN=ignored/CN=alice"` (rcgen 0.14
    /// cannot repeat an attribute type), valid until 2126.
    const TWO_ORGS_TWO_CNS: &str = "\
-----BEGIN CERTIFICATE-----
MIIB0zCCAXmgAwIBAgIUbITORYpMbTX0Rlvm7ckVuZJSda0wCgYIKoZIzj0EAwIw
PjEMMAoGA1UECgwDZGV2MQwwCgYDVQQKDANvcHMxEDAOBgNVBAMMB2lnbm9yZWQx
DjAMBgNVBAMMBWFsaWNlMCAXDTI2MTEyNzEyMDYzN1oYDzIxMjYxMTAzMTIwNjM3
WjA+MQwwCgYDVQQKDANkZXYxDDAKBgNVBAoMA29wczEQMA4GA1UEAwwHaWdub3Jl
ZDEOMAwGA1UEAwwFYWxpY2UwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATe0Fcf
QI1KgxTzTzdjFzVGfZ6VsSuWjALZoQoTCDWXBFxEo0ccbTuSqHwrVQecHGmaJ2e0
l02uewbDUnt+HVUVo1MwUTAdBgNVHQ4EFgQUQonrVak3Ca2JlaYO1KlbpSUC5MUw
HwYDVR0jBBgwFoAUQonrVak3Ca2JlaYO1KlbpSUC5MUwDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNIADBFAiEAzHPdTOnmcO5yzdl/k45A3O5ViYHjb1ERIhSi
TFLPbi0CIBGmWDXbvVh0E/SzjcTuNHWxbytdN1kJV5nAUBKA90yr
-----END CERTIFICATE-----
";

    #[test]
    fn several_groups_keep_order_and_the_last_common_name_wins() {
        use rustls_pki_types::pem::PemObject;
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(TWO_ORGS_TWO_CNS.as_bytes()).unwrap();
        let id = identity_from_der(&der).unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, vec!["dev", "ops"]);
    }

    #[test]
    fn no_groups() {
        let id = identity_from_der(&self_signed(Some("bob"), &[])).unwrap();
        assert!(id.groups.is_empty());
    }

    #[test]
    fn missing_common_name_is_refused() {
        let err = identity_from_der(&self_signed(None, &["dev"])).unwrap_err();
        assert!(matches!(err, Error::MissingCommonName), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let err = identity_from_der(b"not a certificate").unwrap_err();
        assert!(matches!(err, Error::CertificateParseFailed(_)), "{err}");
    }
}
