//! Helpers shared by the rkube-pki integration tests.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;

use rkube_pki::ServingNames;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The first service IP every test cluster asks for.
pub const SERVICE_IP: &str = "10.43.0.1";
/// A node IP (TEST-NET-1: used only as a certificate name, never contacted).
pub const NODE_IP: &str = "192.0.2.10";
/// The node hostname.
pub const HOSTNAME: &str = "node-1";

/// Serving names as `rkube server` would pass them.
pub fn names() -> ServingNames {
    ServingNames::new(HOSTNAME)
        .with_ip(SERVICE_IP.parse().unwrap())
        .with_ip(NODE_IP.parse().unwrap())
}

/// Parses a DER certificate, panicking on failure.
pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der)
        .expect("certificate parses")
        .1
}

/// The DNS names and IPs among a certificate's SANs.
pub fn sans(der: &[u8]) -> (Vec<String>, Vec<IpAddr>) {
    use x509_parser::extensions::GeneralName;
    let cert = parse(der);
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
    {
        match name {
            GeneralName::DNSName(n) => dns.push(n.to_string()),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
            _ => {}
        }
    }
    (dns, ips)
}

/// Reads a file, panicking with its name on failure.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Installs rustls' ring provider as the process default (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
