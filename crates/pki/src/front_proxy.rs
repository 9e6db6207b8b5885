//! The front-proxy PKI: the CA that extension API servers trust for request-header
//! authentication, and the client certificate the API server presents when it proxies
//! a request to one (upstream's `--requestheader-client-ca-file` and
//! `--proxy-client-cert-file`).
//!
//! Files in the PKI directory: `front-proxy-ca.crt`/`.key` (CN `front-proxy-ca`) and
//! `front-proxy-client.crt`/`.key` (CN `front-proxy-client`), made on first start;
//! the client certificate is re-issued when it expires within the renewal window.

use std::path::Path;

use rustls_pki_types::CertificateDer;

use crate::ca::ClusterCa;
use crate::cluster::PkiOptions;
use crate::error::Result;
use crate::leaf::{self, IssuedCert, LeafRequest, Usage};

/// The front-proxy CA's file stem: `front-proxy-ca.crt`, `front-proxy-ca.key`.
pub const FRONT_PROXY_CA_NAME: &str = "front-proxy-ca";
/// The proxy client certificate's file stem and common name (upstream's).
pub const FRONT_PROXY_CLIENT_NAME: &str = "front-proxy-client";

/// The front-proxy CA and the API server's proxy client certificate.
pub struct FrontProxyPki {
    ca: ClusterCa,
    client: IssuedCert,
}

impl FrontProxyPki {
    /// Loads the front-proxy CA and client certificate from `pki_dir`, creating whatever
    /// is missing (the CA is never replaced; the client certificate is re-issued when it
    /// expires within the renewal window or was not signed by the CA).
    pub fn load_or_create(pki_dir: &Path, options: PkiOptions) -> Result<Self> {
        let now = options.now();
        let ca = ClusterCa::load_or_create(
            pki_dir,
            crate::ca::CaSpec {
                stem: FRONT_PROXY_CA_NAME,
                common_name: FRONT_PROXY_CA_NAME,
            },
            now,
            options.ca_validity,
            options.renew_before,
        )?;
        let request = LeafRequest {
            common_name: FRONT_PROXY_CLIENT_NAME.into(),
            organizations: Vec::new(),
            usage: Usage::Client,
            validity: options.leaf_validity,
        };
        let client = leaf::load_or_issue(
            &ca,
            pki_dir,
            FRONT_PROXY_CLIENT_NAME,
            &request,
            now,
            options.renew_before,
            false,
        )?;
        Ok(Self { ca, client })
    }

    /// The front-proxy CA certificate, PEM (`requestheader-client-ca-file`).
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The front-proxy CA certificate, DER.
    pub fn ca_cert_der(&self) -> &CertificateDer<'static> {
        self.ca.cert_der()
    }

    /// The proxy client certificate (CN `front-proxy-client`) and key.
    pub fn client_cert(&self) -> &IssuedCert {
        &self.client
    }

    /// Issues a client certificate signed by the front-proxy CA, not stored anywhere
    /// (for tests of request-header authentication).
    pub fn issue_client_cert(&self, common_name: &str, options: PkiOptions) -> Result<IssuedCert> {
        let request = LeafRequest {
            common_name: common_name.into(),
            organizations: Vec::new(),
            usage: Usage::Client,
            validity: options.leaf_validity,
        };
        leaf::issue(&self.ca, &request, options.now())
    }
}

/// The common name of `leaf` (DER) when it was issued by the CA `ca` (DER): issuer
/// name and signature both match; `None` otherwise or when either does not parse.
pub fn issued_by(ca: &[u8], leaf: &[u8]) -> Option<String> {
    // Chain and validity period, as for any client certificate.
    crate::identity::verify_client_cert(leaf, &[ca], std::time::SystemTime::now())
        .ok()
        .map(|id| id.user)
}

impl std::fmt::Debug for FrontProxyPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontProxyPki").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = FrontProxyPki::load_or_create(dir.path(), PkiOptions::default()).unwrap();
        for f in [
            "front-proxy-ca.crt",
            "front-proxy-ca.key",
            "front-proxy-client.crt",
            "front-proxy-client.key",
        ] {
            assert!(dir.path().join(f).exists(), "{f} missing");
        }
        let again = FrontProxyPki::load_or_create(dir.path(), PkiOptions::default()).unwrap();
        assert_eq!(first.ca_cert_pem(), again.ca_cert_pem());
        assert_eq!(
            first.client_cert().cert_pem(),
            again.client_cert().cert_pem()
        );
        let id = crate::identity_from_der(again.client_cert().cert_der()).unwrap();
        assert_eq!(id.user, "front-proxy-client");
        // Not the cluster CA.
        let cluster = crate::ClusterPki::load_or_create(
            dir.path(),
            &crate::ServingNames::new("h".to_owned()),
        )
        .unwrap();
        assert_ne!(cluster.ca_cert_pem(), first.ca_cert_pem());
        let ca = again.ca_cert_der();
        assert_eq!(
            issued_by(ca, again.client_cert().cert_der()).as_deref(),
            Some("front-proxy-client")
        );
        assert_eq!(issued_by(ca, cluster.admin_cert().cert_der()), None);
        assert_eq!(issued_by(ca, b"junk"), None);
    }
}
