//! Errors of the cluster PKI directory: each names the step and the file it failed on.

use std::io;
use std::path::PathBuf;

/// Why loading, creating or issuing a certificate in the PKI directory failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The PKI directory could not be created or its mode set.
    #[error("create pki directory {path}")]
    DirCreateFailed {
        /// The directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The lock that serializes processes sharing the PKI directory could not be taken.
    #[error("lock pki directory {path}")]
    LockFailed {
        /// The lock file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A file exists but could not be read.
    #[error("read {path}")]
    ReadFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A certificate file holds no readable PEM certificate.
    #[error("read certificate PEM from {path}")]
    CertificatePemReadFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file holds the wrong number of certificates.
    #[error("read certificate PEM from {path}: expected exactly one certificate, found {found}")]
    CertificateCountWrong {
        /// The file.
        path: PathBuf,
        /// How many certificates it holds.
        found: usize,
    },
    /// A certificate's DER is not a valid X.509 certificate.
    #[error("parse certificate {path}")]
    CertificateParseFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: x509_parser::error::X509Error,
    },
    /// A key file holds no readable PKCS#8 PEM private key.
    #[error("read private key PEM from {path}")]
    KeyPemReadFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A key file's PKCS#8 key is not a key rcgen can sign with (ECDSA, Ed25519).
    #[error("parse private key {path}")]
    KeyParseFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },
    /// `ca.crt` exists but `ca.key` does not: the CA cannot sign, and must not be replaced.
    #[error("CA certificate {cert_path} exists but its key {key_path} is missing")]
    CaKeyMissing {
        /// The CA certificate.
        cert_path: PathBuf,
        /// The missing key.
        key_path: PathBuf,
    },
    /// `ca.key` is not the key of `ca.crt`.
    #[error("CA key {key_path} does not match CA certificate {cert_path}")]
    CaKeyMismatch {
        /// The CA certificate.
        cert_path: PathBuf,
        /// The CA key.
        key_path: PathBuf,
    },
    /// `ca.crt` is not a CA certificate.
    #[error("{path} is not a CA certificate")]
    CaNotCa {
        /// The certificate.
        path: PathBuf,
    },
    /// The CA certificate parsed but could not be turned into an issuer for signing.
    #[error("load CA certificate {path} for signing")]
    CaIssuerLoadFailed {
        /// The CA certificate.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },
    /// The CA has expired; rotating a CA is an explicit operation, never an automatic one.
    #[error("CA certificate {path} expired at {not_after}: x509: certificate has expired or is not yet valid; make a new CA and re-issue every certificate with `rkube certs rotate --ca`")]
    CaExpired {
        /// The CA certificate.
        path: PathBuf,
        /// When it expired (RFC 3339).
        not_after: String,
    },
    /// The CA is not valid yet: the clock is behind the time the CA was made.
    #[error("CA certificate {path} is not valid before {not_before}: x509: certificate has expired or is not yet valid; check this machine's clock (or make a new CA with `rkube certs rotate --ca`)")]
    CaNotYetValid {
        /// The CA certificate.
        path: PathBuf,
        /// When it becomes valid (RFC 3339).
        not_before: String,
    },
    /// A kubeconfig could not be rendered or written.
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::Error),
    /// A key pair could not be generated.
    #[error("generate key pair")]
    KeyGenerationFailed(#[source] rcgen::Error),
    /// A certificate's subject cannot be built as asked.
    #[error("build certificate subject: {reason}")]
    SubjectBuildFailed {
        /// What is wrong with it.
        reason: String,
    },
    /// A subject alternative name is not valid (DNS names must be ASCII).
    #[error("build subject alternative name {name:?}")]
    SanBuildFailed {
        /// The name.
        name: String,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },
    /// Signing a certificate failed.
    #[error("sign certificate for {subject}")]
    SigningFailed {
        /// The certificate's common name.
        subject: String,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },
    /// A key or certificate file could not be written.
    #[error("write {path}")]
    WriteFailed {
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The service-account key is not a P-256 key that can sign ES256 tokens.
    #[error("service-account signing key {path}: {reason}")]
    SigningKeyInvalid {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A client identity file name is reserved or not a plain file name.
    #[error("client identity name {name:?} is invalid: {reason}")]
    IdentityNameInvalid {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A result whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
