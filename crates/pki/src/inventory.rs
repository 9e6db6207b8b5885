//! The table of every certificate and key in the PKI directory: what each file is, which
//! CA issues it, who it names, and which kubeconfig carries it. Creating, renewing,
//! checking and rotating all walk this table, so a new certificate is one row.

use crate::ca::CaSpec;
use crate::identity::{
    node_user, ADMIN_USER, CONTROLLER_MANAGER_USER, KUBE_PROXY_USER, MASTERS_GROUP, NODES_GROUP,
    SCHEDULER_USER,
};

/// The cluster (server) CA: signs the API server's serving certificate; clients trust it.
pub(crate) const SERVER_CA: CaSpec = CaSpec {
    stem: "ca",
    common_name: crate::ca::CA_COMMON_NAME,
};
/// The client CA: signs every client certificate the API server accepts (k3s's
/// `client-ca`, upstream's `--client-ca-file`).
pub(crate) const CLIENT_CA: CaSpec = CaSpec {
    stem: "client-ca",
    common_name: "rkube-client-ca",
};
/// The front-proxy (request-header) CA's file stem; made by the aggregation layer.
pub const FRONT_PROXY_CA_STEM: &str = "front-proxy-ca";

/// What a file in the PKI directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertKind {
    /// A certificate authority (`<stem>.crt` may be a bundle during a rotation).
    Ca,
    /// A TLS server certificate.
    Serving,
    /// A TLS client certificate.
    Client,
    /// A signing key pair with no certificate (`sa.key`/`sa.pub`).
    SigningKey,
}

impl CertKind {
    /// Lowercase name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ca => "ca",
            Self::Serving => "serving",
            Self::Client => "client",
            Self::SigningKey => "signing-key",
        }
    }
}

/// One row: a certificate (or key) file pair in the PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    /// File stem: `<stem>.crt` and `<stem>.key`.
    pub stem: &'static str,
    /// What it is.
    pub kind: CertKind,
    /// The stem of the CA that issues it (`None` for CAs and keys).
    pub issuer: Option<&'static str>,
    /// The subject's common name (a client certificate's user).
    pub common_name: String,
    /// The subject's organization (a client certificate's group), if any.
    pub organization: Option<&'static str>,
    /// The kubeconfig in the data dir that carries this client certificate.
    pub kubeconfig: Option<&'static str>,
    /// Whether [`ClusterPki`](crate::ClusterPki) creates and renews it. Rows it does not
    /// own (the front proxy's) are checked and rotated when present, never created.
    pub managed: bool,
}

impl CertFile {
    /// The certificate's file name (`sa.pub` for the signing key).
    pub fn cert_file(&self) -> String {
        match self.kind {
            CertKind::SigningKey => format!("{}.pub", self.stem),
            _ => format!("{}.crt", self.stem),
        }
    }

    /// The key's file name.
    pub fn key_file(&self) -> String {
        format!("{}.key", self.stem)
    }
}

/// The node name of this machine's kubelet: the hostname, lowercased (as the kubelet
/// derives it), or `localhost`.
pub fn node_name(hostname: Option<&str>) -> String {
    hostname
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_lowercase)
        .unwrap_or_else(|| "localhost".into())
}

/// Every file of the PKI directory, for a cluster whose local node is `node_name`.
pub fn cert_files(node_name: &str) -> Vec<CertFile> {
    let ca = |spec: CaSpec, managed| CertFile {
        stem: spec.stem,
        kind: CertKind::Ca,
        issuer: None,
        common_name: spec.common_name.into(),
        organization: None,
        kubeconfig: None,
        managed,
    };
    let client = |stem, cn: &str, org, kubeconfig| CertFile {
        stem,
        kind: CertKind::Client,
        issuer: Some(CLIENT_CA.stem),
        common_name: cn.into(),
        organization: org,
        kubeconfig,
        managed: true,
    };
    vec![
        ca(SERVER_CA, true),
        ca(CLIENT_CA, true),
        ca(
            CaSpec {
                stem: FRONT_PROXY_CA_STEM,
                common_name: "front-proxy-ca",
            },
            false,
        ),
        CertFile {
            stem: crate::cluster::SERVING_NAME,
            kind: CertKind::Serving,
            issuer: Some(SERVER_CA.stem),
            common_name: crate::cluster::SERVING_COMMON_NAME.into(),
            organization: None,
            kubeconfig: None,
            managed: true,
        },
        client(
            crate::cluster::ADMIN_NAME,
            ADMIN_USER,
            Some(MASTERS_GROUP),
            Some("admin.kubeconfig"),
        ),
        client(
            "kube-scheduler",
            SCHEDULER_USER,
            None,
            Some("scheduler.kubeconfig"),
        ),
        client(
            "kube-controller-manager",
            CONTROLLER_MANAGER_USER,
            None,
            Some("controller-manager.kubeconfig"),
        ),
        client(
            "kube-proxy",
            KUBE_PROXY_USER,
            None,
            Some("kube-proxy.kubeconfig"),
        ),
        client(
            "kubelet",
            &node_user(node_name),
            Some(NODES_GROUP),
            Some("kubelet.kubeconfig"),
        ),
        CertFile {
            stem: "front-proxy-client",
            kind: CertKind::Client,
            issuer: Some(FRONT_PROXY_CA_STEM),
            common_name: "front-proxy-client".into(),
            organization: None,
            kubeconfig: None,
            managed: false,
        },
        CertFile {
            stem: crate::service_account::SA_KEY_FILE.trim_end_matches(".key"),
            kind: CertKind::SigningKey,
            issuer: None,
            common_name: String::new(),
            organization: None,
            kubeconfig: None,
            managed: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_unique_and_issuers_are_cas_of_the_table() {
        let files = cert_files("node-1");
        let mut stems: Vec<_> = files.iter().map(|f| f.stem).collect();
        stems.sort_unstable();
        stems.dedup();
        assert_eq!(stems.len(), files.len());
        for f in &files {
            if let Some(issuer) = f.issuer {
                let ca = files.iter().find(|c| c.stem == issuer).expect("issuer row");
                assert_eq!(ca.kind, CertKind::Ca, "{}", f.stem);
            }
        }
        let kubelet = files.iter().find(|f| f.stem == "kubelet").unwrap();
        assert_eq!(kubelet.common_name, "system:node:node-1");
        assert_eq!(kubelet.organization, Some("system:nodes"));
    }

    #[test]
    fn node_names_are_lowercased_hostnames() {
        assert_eq!(node_name(Some("Host-A\n")), "host-a");
        assert_eq!(node_name(Some("")), "localhost");
        assert_eq!(node_name(None), "localhost");
    }
}
