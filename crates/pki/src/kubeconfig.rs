//! Kubeconfig files: one cluster, one client-certificate user, one context, written atomically.

use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::files;

/// Errors from rendering or writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be rendered as YAML.
    #[error("render kubeconfig")]
    RenderFailed(#[source] serde_saphyr::SerializeError),
    /// The kubeconfig file could not be written.
    #[error("write kubeconfig {path}")]
    WriteFailed {
        /// The file being written.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// A result whose error is this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What goes into a kubeconfig: where the API server is, how to trust it, who the user is.
#[derive(Debug, Clone, Copy)]
pub struct KubeconfigSpec<'a> {
    /// The cluster entry's name (e.g. `rkube`).
    pub cluster_name: &'a str,
    /// The API server's URL (e.g. `https://127.0.0.1:6443`).
    pub server_url: &'a str,
    /// The cluster CA certificate, PEM.
    pub ca_pem: &'a str,
    /// The user entry's name (e.g. `admin`).
    pub user_name: &'a str,
    /// The user's client certificate, PEM.
    pub client_cert_pem: &'a str,
    /// The user's private key, PEM.
    pub client_key_pem: &'a str,
    /// The context's default namespace; `None` leaves it to the client (`default`).
    pub namespace: Option<&'a str>,
}

impl KubeconfigSpec<'_> {
    /// The context's name: `<user>@<cluster>`, as kubeadm names it.
    pub fn context_name(&self) -> String {
        format!("{}@{}", self.user_name, self.cluster_name)
    }
}

/// Renders `spec` as kubeconfig YAML (`apiVersion: v1`, `kind: Config`), with the
/// certificates and key inlined as base64 `*-data` fields.
pub fn render_kubeconfig(spec: &KubeconfigSpec<'_>) -> Result<String> {
    let context_name = spec.context_name();
    let config = Kubeconfig {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            name: spec.cluster_name.into(),
            cluster: Cluster {
                server: spec.server_url.into(),
                certificate_authority_data: BASE64.encode(spec.ca_pem),
            },
        }],
        users: vec![NamedUser {
            name: spec.user_name.into(),
            user: User {
                client_certificate_data: BASE64.encode(spec.client_cert_pem),
                client_key_data: BASE64.encode(spec.client_key_pem),
            },
        }],
        contexts: vec![NamedContext {
            name: context_name.clone(),
            context: Context {
                cluster: spec.cluster_name.into(),
                user: spec.user_name.into(),
                namespace: spec.namespace.map(str::to_owned),
            },
        }],
        current_context: context_name,
        preferences: Preferences {},
    };
    serde_saphyr::to_string(&config).map_err(Error::RenderFailed)
}

/// Writes the kubeconfig for `spec` to `path` with mode 0600, atomically (a reader sees the
/// old file or the complete new one). The parent directory must exist.
pub fn write_kubeconfig(path: &Path, spec: &KubeconfigSpec<'_>) -> Result<()> {
    let yaml = render_kubeconfig(spec)?;
    files::write_atomic(path, yaml.as_bytes(), files::SECRET_MODE).map_err(|source| {
        Error::WriteFailed {
            path: path.to_owned(),
            source,
        }
    })
}

/// The server URL of the first cluster of the kubeconfig at `path`, if it can be read.
pub fn server_url(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let config: Kubeconfig = serde_saphyr::from_str(&text).ok()?;
    config.clusters.into_iter().next().map(|c| c.cluster.server)
}

// The subset of upstream's `clientcmd/api/v1.Config` that rkube writes.

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    clusters: Vec<NamedCluster>,
    users: Vec<NamedUser>,
    contexts: Vec<NamedContext>,
    current_context: String,
    preferences: Preferences,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Preferences {}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority_data: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NamedUser {
    name: String,
    user: User,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: String,
    client_key_data: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Context {
    cluster: String,
    user: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n";

    fn spec(namespace: Option<&str>) -> KubeconfigSpec<'_> {
        KubeconfigSpec {
            cluster_name: "rkube",
            server_url: "https://127.0.0.1:6443",
            ca_pem: CA,
            user_name: "admin",
            client_cert_pem: CERT,
            client_key_pem: KEY,
            namespace,
        }
    }

    fn decode(b64: &str) -> String {
        String::from_utf8(BASE64.decode(b64).unwrap()).unwrap()
    }

    #[test]
    fn written_kubeconfig_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.kubeconfig");
        write_kubeconfig(&path, &spec(Some("kube-system"))).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let text = std::fs::read_to_string(&path).unwrap();
        let config: Kubeconfig = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(config.api_version, "v1");
        assert_eq!(config.kind, "Config");
        assert_eq!(config.current_context, "admin@rkube");
        assert_eq!(config.clusters.len(), 1);
        assert_eq!(config.clusters[0].name, "rkube");
        assert_eq!(config.clusters[0].cluster.server, "https://127.0.0.1:6443");
        assert_eq!(
            decode(&config.clusters[0].cluster.certificate_authority_data),
            CA
        );
        assert_eq!(config.users[0].name, "admin");
        assert_eq!(decode(&config.users[0].user.client_certificate_data), CERT);
        assert_eq!(decode(&config.users[0].user.client_key_data), KEY);
        assert_eq!(config.contexts[0].name, "admin@rkube");
        assert_eq!(config.contexts[0].context.cluster, "rkube");
        assert_eq!(config.contexts[0].context.user, "admin");
        assert_eq!(
            config.contexts[0].context.namespace.as_deref(),
            Some("kube-system")
        );
    }

    #[test]
    fn field_names_are_upstreams() {
        let yaml = render_kubeconfig(&spec(None)).unwrap();
        for field in [
            "apiVersion: v1",
            "kind: Config",
            "certificate-authority-data:",
            "client-certificate-data:",
            "client-key-data:",
            "current-context: admin@rkube",
            "server: https://127.0.0.1:6443",
        ] {
            assert!(yaml.contains(field), "missing {field:?} in\n{yaml}");
        }
        assert!(!yaml.contains("namespace"), "{yaml}");
    }

    #[test]
    fn write_into_missing_dir_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("x.kubeconfig");
        let err = write_kubeconfig(&path, &spec(None)).unwrap_err();
        assert!(err.to_string().contains("x.kubeconfig"), "{err}");
    }
}
