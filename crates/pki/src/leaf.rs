//! Leaf certificates signed by the cluster CA: issuing them, and deciding when to re-issue.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use crate::ca::{self, ClusterCa};
use crate::error::{Error, Result};
use crate::material::{self, CertCount};

/// A certificate and its private key, both PEM and DER.
pub struct IssuedCert {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl IssuedCert {
    /// The certificate, PEM (as stored: a leaf file may be followed by its chain).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key, PKCS#8 DER, as rustls takes it.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// Splits into `(cert_pem, key_pem)`.
    pub fn into_pems(self) -> (String, String) {
        (self.cert_pem, self.key_pem)
    }
}

impl Clone for IssuedCert {
    fn clone(&self) -> Self {
        Self {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            cert_der: self.cert_der.clone(),
            key_der: self.key_der.clone_key(),
        }
    }
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub(crate) enum Usage {
    /// TLS server authentication for these names.
    Server {
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    },
    /// TLS client authentication.
    Client,
}

/// The certificate a caller wants.
#[derive(Debug, Clone)]
pub(crate) struct LeafRequest {
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
    pub(crate) usage: Usage,
    pub(crate) validity: Duration,
}

/// Issues a fresh key and certificate for `request`, signed by `ca`.
pub(crate) fn issue(
    ca: &ClusterCa,
    request: &LeafRequest,
    now: OffsetDateTime,
) -> Result<IssuedCert> {
    let mut params = ca::base_params(now, request.validity);
    params
        .distinguished_name
        .push(DnType::CommonName, request.common_name.as_str());
    match request.organizations.as_slice() {
        [] => {}
        [org] => params
            .distinguished_name
            .push(DnType::OrganizationName, org.as_str()),
        orgs => {
            // rcgen 0.14 keeps one value per attribute type (rustls/rcgen#81): refuse rather
            // than silently drop groups.
            return Err(Error::SubjectBuildFailed {
                reason: format!("at most one organization is supported, got {}", orgs.len()),
            });
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    match &request.usage {
        Usage::Server { dns_names, ips } => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            for name in dns_names {
                let ia5 = name
                    .as_str()
                    .try_into()
                    .map_err(|source| Error::SanBuildFailed {
                        name: name.clone(),
                        source,
                    })?;
                params.subject_alt_names.push(SanType::DnsName(ia5));
            }
            params
                .subject_alt_names
                .extend(ips.iter().copied().map(SanType::IpAddress));
        }
        Usage::Client => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(Error::KeyGenerationFailed)?;
    let cert = ca
        .sign(&params, &key)
        .map_err(|source| Error::SigningFailed {
            subject: request.common_name.clone(),
            source,
        })?;
    Ok(IssuedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
        key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
    })
}

/// Loads `<name>.crt` and `<name>.key` from `dir`, or issues them anew when they are
/// missing, do not match each other, were not signed by `ca`, are due for renewal (see
/// [`renewal_due`]), or do not match `request` (subject, usage, missing SANs); `force`
/// re-issues them whatever their state.
///
/// Files that exist but cannot be parsed are an error: they are never silently replaced.
pub(crate) fn load_or_issue(
    ca: &ClusterCa,
    dir: &Path,
    name: &str,
    request: &LeafRequest,
    now: OffsetDateTime,
    renew_before: Duration,
    force: bool,
) -> Result<IssuedCert> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    let cert_bytes = material::read_optional(&cert_path)?;
    let key_bytes = material::read_optional(&key_path)?;
    let reason = match (cert_bytes, key_bytes) {
        (Some(cert_bytes), Some(key_bytes)) => {
            let cert_der = material::read_cert_pem(&cert_path, &cert_bytes, CertCount::First)?;
            let cert = material::parse_cert(&cert_path, &cert_der)?;
            let (key, key_der) = material::read_key_pem(&key_path, &key_bytes)?;
            let reason = if force {
                Some("rotation requested".to_owned())
            } else {
                reissue_reason(ca, request, &cert, &key, now, renew_before)
            };
            match reason {
                None => {
                    return Ok(IssuedCert {
                        cert_pem: String::from_utf8_lossy(&cert_bytes).into_owned(),
                        key_pem: String::from_utf8_lossy(&key_bytes).into_owned(),
                        cert_der,
                        key_der,
                    })
                }
                Some(reason) => reason,
            }
        }
        (None, None) => "absent".to_owned(),
        (Some(_), None) => format!("{} is missing", key_path.display()),
        (None, Some(_)) => format!("{} is missing", cert_path.display()),
    };
    let issued = issue(ca, request, now)?;
    // Key first: a crash between the two writes leaves a key that does not match the old
    // certificate, which the next start detects and re-issues.
    material::write_key(&key_path, issued.key_pem())?;
    material::write_cert(&cert_path, issued.cert_pem())?;
    tracing::info!(
        cert.path = %cert_path.display(),
        cert.subject = %request.common_name,
        %reason,
        "issued certificate"
    );
    Ok(issued)
}

/// Why the stored certificate cannot be kept, or `None` when it can.
fn reissue_reason(
    ca: &ClusterCa,
    request: &LeafRequest,
    cert: &X509Certificate<'_>,
    key: &KeyPair,
    now: OffsetDateTime,
    renew_before: Duration,
) -> Option<String> {
    if !material::key_matches(key, cert) {
        return Some("key does not match certificate".into());
    }
    if !ca.issued(cert) {
        return Some("not signed by the cluster CA".into());
    }
    let not_after = cert.validity().not_after.to_datetime();
    if not_after <= now {
        return Some(format!("expired at {}", ca::rfc3339(not_after)));
    }
    let not_before = cert.validity().not_before.to_datetime();
    if renewal_due(not_before, not_after, now, renew_before) {
        return Some(format!("expires soon, at {}", ca::rfc3339(not_after)));
    }
    let subject = cert.subject();
    let common_names: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    let organizations: Vec<&str> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .collect();
    if common_names != [request.common_name.as_str()] || organizations != request.organizations {
        return Some(format!(
            "subject is CN={common_names:?} O={organizations:?}, want CN={:?} O={:?}",
            request.common_name, request.organizations
        ));
    }
    let eku = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|ext| ext.value);
    match &request.usage {
        Usage::Server { dns_names, ips } => {
            if !eku.is_some_and(|eku| eku.server_auth) {
                return Some("lacks extended key usage serverAuth".into());
            }
            let (have_dns, have_ips) = subject_alt_names(cert);
            let missing: Vec<String> = dns_names
                .iter()
                .filter(|name| !have_dns.iter().any(|have| have.eq_ignore_ascii_case(name)))
                .cloned()
                .chain(
                    ips.iter()
                        .filter(|ip| !have_ips.contains(ip))
                        .map(IpAddr::to_string),
                )
                .collect();
            if !missing.is_empty() {
                return Some(format!(
                    "lacks subject alternative names {}",
                    missing.join(", ")
                ));
            }
        }
        Usage::Client => {
            if !eku.is_some_and(|eku| eku.client_auth) {
                return Some("lacks extended key usage clientAuth".into());
            }
        }
    }
    None
}

/// Whether a leaf valid from `not_before` to `not_after` is due for renewal at `now`: when
/// less than a third of its lifetime, or less than `renew_before`, remains (whichever is
/// the shorter window, so a 1-year certificate renews 90 days ahead and a 30-second one
/// 10 seconds ahead).
pub(crate) fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    renew_before: Duration,
) -> bool {
    let lifetime: time::Duration = (not_after - not_before).max(time::Duration::ZERO);
    let third: time::Duration = lifetime / 3;
    let window = third.min(time::Duration::try_from(renew_before).unwrap_or(lifetime));
    not_after - now <= window
}

/// The DNS names and IP addresses among `cert`'s subject alternative names.
pub(crate) fn subject_alt_names(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(name) => dns.push(name.to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets));
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets).to_canonical());
                    }
                }
                _ => {}
            }
        }
    }
    (dns, ips)
}
