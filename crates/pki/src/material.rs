//! Reading and writing PEM certificates and keys in the PKI directory, errors naming the file.

use std::path::Path;

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate, X509Error};

use crate::error::{Error, Result};
use crate::files;

/// Reads `path`, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    files::read_if_exists(path).map_err(|source| Error::ReadFailed {
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key: mode 0600, atomically.
pub(crate) fn write_key(path: &Path, pem: &str) -> Result<()> {
    write(path, pem, files::SECRET_MODE)
}

/// Writes a certificate: mode 0644, atomically.
pub(crate) fn write_cert(path: &Path, pem: &str) -> Result<()> {
    write(path, pem, files::PUBLIC_MODE)
}

fn write(path: &Path, pem: &str, mode: u32) -> Result<()> {
    files::write_atomic(path, pem.as_bytes(), mode).map_err(|source| Error::WriteFailed {
        path: path.to_owned(),
        source,
    })
}

/// Which certificates of a PEM file to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CertCount {
    /// Exactly one.
    #[allow(dead_code)]
    ExactlyOne,
    /// The first of one or more (a leaf, possibly followed by its chain).
    First,
}

/// Reads the certificate(s) in PEM `bytes` read from `path`, returning the first one's DER.
pub(crate) fn read_cert_pem(
    path: &Path,
    bytes: &[u8],
    count: CertCount,
) -> Result<CertificateDer<'static>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::CertificatePemReadFailed {
            path: path.to_owned(),
            source,
        })?;
    match (certs.len(), count) {
        (1, _) => {}
        (n, CertCount::First) if n > 1 => {}
        (found, _) => {
            return Err(Error::CertificateCountWrong {
                path: path.to_owned(),
                found,
            })
        }
    }
    Ok(certs.into_iter().next().expect("count checked above"))
}

/// Parses DER certificate `der` that was read from `path`.
pub(crate) fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|err| Error::CertificateParseFailed {
            path: path.to_owned(),
            source: match err {
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
                x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
            },
        })
}

/// Reads the PKCS#8 private key in PEM `bytes` read from `path`.
pub(crate) fn read_key_pem(
    path: &Path,
    bytes: &[u8],
) -> Result<(KeyPair, PrivatePkcs8KeyDer<'static>)> {
    let der =
        PrivatePkcs8KeyDer::from_pem_slice(bytes).map_err(|source| Error::KeyPemReadFailed {
            path: path.to_owned(),
            source,
        })?;
    let key = KeyPair::try_from(&der).map_err(|source| Error::KeyParseFailed {
        path: path.to_owned(),
        source,
    })?;
    Ok((key, der))
}

/// Whether `key` is the private key of `cert`.
pub(crate) fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.subject_public_key_info() == cert.public_key().raw
}
