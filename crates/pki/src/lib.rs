//! The rkube PKI: the cluster CA, serving and client certificates, kubeconfig files, and the
//! identity a client certificate carries.
//!
//! [`ClusterPki`] keeps the server and client CAs and every component's certificate (the
//! table in [`inventory`]) in the data dir's `pki/` directory, creating them on first
//! start, re-issuing leaves that are due for renewal or lack a name, and rotating CAs with
//! an overlap on request; [`check`] reports on them.
//! [`kubeconfig`] writes kubeconfig files from its material; [`identity`] maps a verified
//! client certificate to a user and groups, as upstream's x509 authenticator does.
//! [`bootstrap`] is bootstrap tokens, the `cluster-info` JWS, CA pins and the kubelet's
//! client certificate request. [`service_account`] keeps the key that signs service-account tokens ([`jwt`]: ES256
//! compact JWS) and the token claims' stateless checks.
//!
//! Keys are ECDSA P-256 (rcgen's ring backend). This crate reads and writes files only in the
//! directories it is given, and never touches the network.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootstrap;
mod ca;
pub mod check;
mod cluster;
pub mod error;
mod files;
pub mod front_proxy;
pub mod identity;
pub mod inventory;
pub mod jwt;
pub mod kubeconfig;
mod leaf;
mod material;
mod names;
pub mod service_account;

pub use ca::{CA_CERT_FILE, CA_COMMON_NAME, CA_KEY_FILE};
pub use cluster::{ClusterPki, PkiOptions, ADMIN_NAME, SERVING_COMMON_NAME, SERVING_NAME};
pub use error::{Error, Result};
pub use identity::{identity_from_der, ClientIdentity};
pub use kubeconfig::{write_kubeconfig, KubeconfigSpec};
pub use leaf::IssuedCert;
pub use names::{ServingNames, DEFAULT_DNS_NAMES, DEFAULT_IPS};
pub use service_account::ServiceAccountKey;
