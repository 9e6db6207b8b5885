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

/// Verifies a client certificate the TLS layer accepted unverified, as upstream's x509
/// authenticator does, and reads its identity.
///
/// The certificate must be valid at `now`, directly signed by one of `roots` (the client
/// CA bundle: during a CA rotation, the new and the old CA) which is itself valid at `now`,
/// and, when it restricts its extended key usage, allow client authentication. Errors carry
/// upstream's wording: `verifying certificate SN=…, SKID=…, AKID=… failed: x509: …`.
/// Never panics on any input.
pub fn verify_client_cert(
    cert_der: &[u8],
    roots: &[impl AsRef<[u8]>],
    now: SystemTime,
) -> std::result::Result<ClientIdentity, String> {
    let cert = match X509Certificate::from_der(cert_der) {
        Ok((_, cert)) => cert,
        Err(err) => return Err(format!("x509: malformed certificate: {err}")),
    };
    let failed = |reason: String| {
        format!(
            "verifying certificate {} failed: {reason}",
            certificate_identifier(&cert)
        )
    };
    check_validity(&cert, now).map_err(failed)?;
    let mut issuer_found = None;
    for root in roots {
        let Ok((_, ca)) = X509Certificate::from_der(root.as_ref()) else {
            continue;
        };
        if cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok()
        {
            issuer_found = Some(check_validity(&ca, now));
            if issuer_found == Some(Ok(())) {
                break;
            }
        }
    }
    match issuer_found {
        None => {
            return Err(failed(
                "x509: certificate signed by unknown authority".into(),
            ))
        }
        Some(Err(reason)) => return Err(failed(reason)),
        Some(Ok(())) => {}
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if !eku.value.client_auth && !eku.value.any {
            return Err(failed(
                "x509: certificate specifies an incompatible key usage".into(),
            ));
        }
    }
    identity_from_certificate(&cert).map_err(|e| failed(e.to_string()))
}

/// Go's message for a certificate outside its validity period at `now`.
fn check_validity(cert: &X509Certificate<'_>, now: SystemTime) -> std::result::Result<(), String> {
    match validity_error(
        cert.validity().not_before.to_datetime().into(),
        cert.validity().not_after.to_datetime().into(),
        now,
    ) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Upstream's `SN=<decimal>, SKID=<hex>, AKID=<hex>` naming of a certificate in errors.
fn certificate_identifier(cert: &X509Certificate<'_>) -> String {
    use x509_parser::extensions::ParsedExtension;
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut skid = String::new();
    let mut akid = String::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => skid = hex(id.0),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                if let Some(id) = &aki.key_identifier {
                    akid = hex(id.0);
                }
            }
            _ => {}
        }
    }
    format!("SN={}, SKID={skid}, AKID={akid}", cert.serial)
}

/// When a client certificate's validity period begins and ends.
pub fn validity_of(cert_der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    Some((
        cert.validity().not_before.to_datetime().into(),
        cert.validity().not_after.to_datetime().into(),
    ))
}

/// Go's message for a client certificate whose validity ended (or has not begun) since
/// its connection was verified; `None` while it is valid.
pub fn validity_error(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
) -> Option<String> {
    let fmt = |t: SystemTime| {
        let t = time::OffsetDateTime::from(t);
        t.replace_nanosecond(0)
            .unwrap_or(t)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if now < not_before {
        Some(format!(
            "x509: certificate has expired or is not yet valid: current time {} is before {}",
            fmt(now),
            fmt(not_before)
        ))
    } else if now > not_after {
        Some(format!(
            "x509: certificate has expired or is not yet valid: current time {} is after {}",
            fmt(now),
            fmt(not_after)
        ))
    } else {
        None
    }
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
