//! The cluster CA: created once, loaded afterwards, never replaced automatically.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use crate::error::{Error, Result};
use crate::material::{self, CertCount};

/// The CA certificate's file name in the PKI directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA key's file name in the PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// The CA's common name.
pub const CA_COMMON_NAME: &str = "rkube-ca";

/// How far before "now" certificates start, so that nodes whose clocks lag a little
/// still accept them.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// The loaded CA: its certificate and an issuer holding its key.
pub(crate) struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// Loads `ca.crt` and `ca.key` from `dir`, or creates them when both are absent.
    ///
    /// When only `ca.key` exists (a crash between writing the key and the certificate on
    /// first start), the certificate is made again from that key: nothing can trust a
    /// certificate that was never written, and the same key keeps any leaf valid.
    pub(crate) fn load_or_create(
        dir: &Path,
        now: OffsetDateTime,
        validity: Duration,
        renew_before: Duration,
    ) -> Result<Self> {
        Self::load_or_create_named(dir, "ca", CA_COMMON_NAME, now, validity, renew_before)
    }

    /// [`load_or_create`](Self::load_or_create) for another CA of the cluster, kept in
    /// `<stem>.crt`/`<stem>.key` with common name `common_name` (the front-proxy CA).
    pub(crate) fn load_or_create_named(
        dir: &Path,
        stem: &str,
        common_name: &str,
        now: OffsetDateTime,
        validity: Duration,
        renew_before: Duration,
    ) -> Result<Self> {
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        let cert_bytes = material::read_optional(&cert_path)?;
        let key_bytes = material::read_optional(&key_path)?;
        let (cert_pem, key) = match (cert_bytes, key_bytes) {
            (Some(cert), Some(key)) => {
                let (key, _) = material::read_key_pem(&key_path, &key)?;
                (String::from_utf8_lossy(&cert).into_owned(), key)
            }
            (Some(_), None) => {
                return Err(Error::CaKeyMissing {
                    cert_path,
                    key_path,
                })
            }
            (None, key) => {
                let key = match key {
                    Some(key) => {
                        tracing::info!(
                            cert.path = %cert_path.display(),
                            "CA key exists without its certificate; making the certificate again from the key"
                        );
                        material::read_key_pem(&key_path, &key)?.0
                    }
                    None => {
                        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                            .map_err(Error::KeyGenerationFailed)?;
                        material::write_key(&key_path, &key.serialize_pem())?;
                        key
                    }
                };
                let cert = ca_params(common_name, now, validity)
                    .self_signed(&key)
                    .map_err(|source| Error::SigningFailed {
                        subject: common_name.into(),
                        source,
                    })?;
                material::write_cert(&cert_path, &cert.pem())?;
                tracing::info!(cert.path = %cert_path.display(), ca = common_name, "created CA");
                (cert.pem(), key)
            }
        };
        Self::from_parts(cert_path, key_path, cert_pem, key, now, renew_before)
    }

    fn from_parts(
        cert_path: PathBuf,
        key_path: PathBuf,
        cert_pem: String,
        key: KeyPair,
        now: OffsetDateTime,
        renew_before: Duration,
    ) -> Result<Self> {
        let cert_der =
            material::read_cert_pem(&cert_path, cert_pem.as_bytes(), CertCount::ExactlyOne)?;
        let cert = material::parse_cert(&cert_path, &cert_der)?;
        if !cert.is_ca() {
            return Err(Error::CaNotCa { path: cert_path });
        }
        if !material::key_matches(&key, &cert) {
            return Err(Error::CaKeyMismatch {
                cert_path,
                key_path,
            });
        }
        let not_after = cert.validity().not_after.to_datetime();
        if not_after <= now {
            return Err(Error::CaExpired {
                path: cert_path,
                not_after: rfc3339(not_after),
            });
        }
        if not_after <= now + renew_before {
            tracing::warn!(
                cert.path = %cert_path.display(),
                not_after = %rfc3339(not_after),
                "cluster CA expires soon; rotate it before then"
            );
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|source| {
            Error::CaIssuerLoadFailed {
                path: cert_path.clone(),
                source,
            }
        })?;
        Ok(Self {
            cert_pem,
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM, as stored in `ca.crt`.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Signs a certificate for `params` and the subject key `key`.
    pub(crate) fn sign(
        &self,
        params: &CertificateParams,
        key: &KeyPair,
    ) -> Result<Certificate, rcgen::Error> {
        params.signed_by(key, &self.issuer)
    }

    /// Whether `cert` was issued by this CA: issuer name and signature both match.
    pub(crate) fn issued(&self, cert: &X509Certificate<'_>) -> bool {
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.cert_der) else {
            return false;
        };
        cert.issuer().as_raw() == ca.subject().as_raw()
            && cert.verify_signature(Some(ca.public_key())).is_ok()
    }
}

/// Parameters common to every certificate: a random serial, validity from an hour ago
/// to `validity` after `now`.
pub(crate) fn base_params(now: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    params
}

fn ca_params(common_name: &str, now: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut params = base_params(now, validity);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params
}

/// A random, positive, 16-byte serial number (RFC 5280 allows up to 20).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, and no leading zero byte so the encoding keeps all 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Formats a time as RFC 3339 for messages.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
