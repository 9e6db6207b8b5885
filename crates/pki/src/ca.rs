//! Certificate authorities: created once, loaded afterwards, replaced only by an explicit
//! rotation ([`ClusterCa::rotate`]).
//!
//! A CA's certificate file may hold a trust bundle: the CA that signs now first, then the
//! CA it replaced, still trusted until the time in `<stem>.overlap-until` (RFC 3339). Once
//! that time passes (or the old CA expires) the old certificate is dropped from the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use crate::error::{Error, Result};
use crate::material;

/// The cluster (server) CA certificate's file name in the PKI directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The cluster (server) CA key's file name in the PKI directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// The cluster (server) CA's common name.
pub const CA_COMMON_NAME: &str = "rkube-ca";

/// Longest time certificates start before "now", so that nodes whose clocks lag a little
/// still accept them (a tenth of the validity for short-lived certificates).
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Which CA: its file stem (`<stem>.crt`, `<stem>.key`) and common name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CaSpec {
    pub(crate) stem: &'static str,
    pub(crate) common_name: &'static str,
}

/// The loaded CA: its certificate, the bundle it is trusted in, and an issuer holding its key.
pub(crate) struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    bundle_der: Vec<CertificateDer<'static>>,
    cross_der: Option<CertificateDer<'static>>,
    issuer: Issuer<'static, KeyPair>,
}

/// The file holding, during a rotation's overlap, the new CA certificate signed by the old
/// CA: served after a leaf of the new CA, it lets clients that trust only the old CA
/// verify the new serving certificate.
pub(crate) fn cross_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.cross.crt"))
}

/// The file holding the end of a rotation's overlap.
pub(crate) fn overlap_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.overlap-until"))
}

impl ClusterCa {
    /// Loads `<stem>.crt` and `<stem>.key` from `dir`, or creates them when both are absent.
    ///
    /// When only the key exists (a crash between writing the key and the certificate on
    /// first start), the certificate is made again from that key: nothing can trust a
    /// certificate that was never written, and the same key keeps any leaf valid.
    pub(crate) fn load_or_create(
        dir: &Path,
        spec: CaSpec,
        now: OffsetDateTime,
        validity: Duration,
        renew_before: Duration,
    ) -> Result<Self> {
        let cert_path = dir.join(format!("{}.crt", spec.stem));
        let key_path = dir.join(format!("{}.key", spec.stem));
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
                let cert = ca_params(spec.common_name, now, validity)
                    .self_signed(&key)
                    .map_err(|source| Error::SigningFailed {
                        subject: spec.common_name.into(),
                        source,
                    })?;
                material::write_cert(&cert_path, &cert.pem())?;
                tracing::info!(cert.path = %cert_path.display(), "created CA");
                (cert.pem(), key)
            }
        };
        let cert_pem = prune_bundle(dir, spec.stem, &cert_path, cert_pem, now)?;
        let mut ca = Self::from_parts(cert_path, key_path, cert_pem, key, now, renew_before)?;
        if ca.bundle_der.len() > 1 {
            let path = cross_path(dir, spec.stem);
            if let Some(bytes) = material::read_optional(&path)? {
                let der = material::read_cert_pem(&path, &bytes, material::CertCount::First)?;
                let cross = material::parse_cert(&path, &der)?;
                // Only a certificate of this CA's key, still valid, is worth serving.
                let own = material::parse_cert(&path, &ca.cert_der)?;
                if cross.public_key().raw == own.public_key().raw
                    && cross.validity().not_after.to_datetime() > now
                {
                    ca.cross_der = Some(der);
                }
            }
        }
        Ok(ca)
    }

    /// Loads the CA `spec` from `dir` when its certificate exists; never creates one.
    pub(crate) fn load_existing(
        dir: &Path,
        spec: CaSpec,
        now: OffsetDateTime,
        renew_before: Duration,
    ) -> Result<Option<Self>> {
        if !dir.join(format!("{}.crt", spec.stem)).exists() {
            return Ok(None);
        }
        Self::load_or_create(dir, spec, now, Duration::ZERO, renew_before).map(Some)
    }

    fn from_parts(
        cert_path: PathBuf,
        key_path: PathBuf,
        cert_pem: String,
        key: KeyPair,
        now: OffsetDateTime,
        renew_before: Duration,
    ) -> Result<Self> {
        let bundle_der = read_bundle(&cert_path, cert_pem.as_bytes())?;
        let cert_der = bundle_der[0].clone();
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
        let not_before = cert.validity().not_before.to_datetime();
        if not_before > now {
            return Err(Error::CaNotYetValid {
                path: cert_path,
                not_before: rfc3339(not_before),
            });
        }
        if not_after <= now + renew_before {
            tracing::warn!(
                cert.path = %cert_path.display(),
                not_after = %rfc3339(not_after),
                "CA expires soon; rotate it with `rkube certs rotate --ca` before then"
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
            bundle_der,
            cross_der: None,
            issuer,
        })
    }

    /// Replaces the CA in `dir` with a new one (common name `<cn>@<unix time>`), keeping the
    /// current CA in the bundle until `now + overlap`. Returns the new CA's certificate PEM.
    ///
    /// The caller holds the directory lock; leaves are re-issued by the next load, as they
    /// are no longer signed by the CA that signs.
    pub(crate) fn rotate(
        dir: &Path,
        spec: CaSpec,
        now: OffsetDateTime,
        validity: Duration,
        overlap: Duration,
    ) -> Result<String> {
        let cert_path = dir.join(format!("{}.crt", spec.stem));
        let key_path = dir.join(format!("{}.key", spec.stem));
        let old = material::read_optional(&cert_path)?
            .map(|bytes| read_bundle(&cert_path, &bytes))
            .transpose()?;
        let old_key = material::read_optional(&key_path)?
            .map(|bytes| material::read_key_pem(&key_path, &bytes))
            .transpose()?
            .map(|(key, _)| key);
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(Error::KeyGenerationFailed)?;
        let common_name = format!("{}@{}", spec.common_name, now.unix_timestamp());
        let cert = ca_params(&common_name, now, validity)
            .self_signed(&key)
            .map_err(|source| Error::SigningFailed {
                subject: common_name.clone(),
                source,
            })?;
        let mut bundle = cert.pem();
        // The CA that signed until now stays trusted during the overlap; older ones go.
        if let Some(old) = old.as_ref().and_then(|certs| certs.first()) {
            let old_ok = material::parse_cert(&cert_path, old)
                .map(|c| c.validity().not_after.to_datetime() > now)
                .unwrap_or(false);
            if old_ok && !overlap.is_zero() {
                bundle.push_str(&pem_of(old));
                material::write_cert(
                    &overlap_path(dir, spec.stem),
                    &format!("{}\n", rfc3339(now + overlap)),
                )?;
                // The new CA signed by the old one, for clients that trust only the old.
                if let Some(old_key) = old_key {
                    let old_issuer = Issuer::from_ca_cert_der(old, old_key).map_err(|source| {
                        Error::CaIssuerLoadFailed {
                            path: cert_path.clone(),
                            source,
                        }
                    })?;
                    let mut params = ca_params(&common_name, now, overlap);
                    params.use_authority_key_identifier_extension = true;
                    let cross = params.signed_by(&key, &old_issuer).map_err(|source| {
                        Error::SigningFailed {
                            subject: common_name.clone(),
                            source,
                        }
                    })?;
                    material::write_cert(&cross_path(dir, spec.stem), &cross.pem())?;
                }
            }
        }
        if bundle == cert.pem() {
            remove_if_exists(&overlap_path(dir, spec.stem))?;
            remove_if_exists(&cross_path(dir, spec.stem))?;
        }
        // Key and bundle are written under the directory lock; a crash between the two
        // writes leaves a key that does not match, which load reports by name.
        material::write_key(&key_path, &key.serialize_pem())?;
        material::write_cert(&cert_path, &bundle)?;
        tracing::info!(cert.path = %cert_path.display(), %common_name, "rotated CA");
        Ok(cert.pem())
    }

    /// The CA certificate file's content: the signing CA, then any CA still trusted.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The signing CA certificate, DER.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Every trusted CA certificate, DER: the signing CA first.
    pub(crate) fn bundle_der(&self) -> &[CertificateDer<'static>] {
        &self.bundle_der
    }

    /// During a rotation's overlap, this CA's certificate signed by the CA it replaced.
    pub(crate) fn cross_der(&self) -> Option<&CertificateDer<'static>> {
        self.cross_der.as_ref()
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
        issued_by(cert, &self.cert_der)
    }
}

/// Whether `cert` was issued by the CA certificate `ca_der`: issuer name and signature match.
pub(crate) fn issued_by(cert: &X509Certificate<'_>, ca_der: &[u8]) -> bool {
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Reads a CA file: one or more certificates, the first being the CA that signs.
fn read_bundle(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::CertificatePemReadFailed {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::CertificateCountWrong {
            path: path.to_owned(),
            found: 0,
        });
    }
    Ok(certs)
}

/// Drops the old CAs from the bundle in `cert_path` once the overlap has ended or they
/// expired, rewriting the file; returns the (possibly shorter) bundle PEM.
fn prune_bundle(
    dir: &Path,
    stem: &str,
    cert_path: &Path,
    cert_pem: String,
    now: OffsetDateTime,
) -> Result<String> {
    let certs = read_bundle(cert_path, cert_pem.as_bytes())?;
    if certs.len() == 1 {
        return Ok(cert_pem);
    }
    let until_path = overlap_path(dir, stem);
    let until = material::read_optional(&until_path)?.and_then(|bytes| {
        OffsetDateTime::parse(
            String::from_utf8_lossy(&bytes).trim(),
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    });
    let overlap_over = until.is_none_or(|until| until <= now);
    let mut kept = pem_of(&certs[0]);
    let mut dropped = 0;
    for old in &certs[1..] {
        let expired = material::parse_cert(cert_path, old)
            .map(|c| c.validity().not_after.to_datetime() <= now)
            .unwrap_or(true);
        if overlap_over || expired {
            dropped += 1;
        } else {
            kept.push_str(&pem_of(old));
        }
    }
    if dropped == 0 {
        return Ok(cert_pem);
    }
    material::write_cert(cert_path, &kept)?;
    if overlap_over {
        remove_if_exists(&until_path)?;
        remove_if_exists(&cross_path(dir, stem))?;
    }
    tracing::info!(cert.path = %cert_path.display(), dropped, "rotation overlap ended; old CA no longer trusted");
    Ok(kept)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::WriteFailed {
            path: path.to_owned(),
            source,
        }),
    }
}

/// PEM text of one DER certificate.
pub(crate) fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Parameters common to every certificate: a random serial, validity from a little before
/// `now` (an hour, or a tenth of `validity` when that is shorter) to `validity` after it.
pub(crate) fn base_params(now: OffsetDateTime, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(random_serial());
    params.not_before = now - BACKDATE.min(validity / 10);
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
