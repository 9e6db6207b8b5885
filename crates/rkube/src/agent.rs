//! `rkube agent --server URL --token TOKEN`: joins this machine to a cluster as a node
//! (k3s-style). The first start verifies the cluster through the signed `cluster-info`
//! and gets the node's client certificate by the kubelet's TLS bootstrap
//! (`rkube_kubelet::bootstrap`); later starts reuse the kubeconfig it wrote. Then it
//! runs the kubelet, with its own containerd unless `--container-runtime-endpoint`,
//! renewing its client certificate before it expires (`--rotate-certificates`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use rkube_kubelet::bootstrap::{self, JoinConfig};

/// Flags of `rkube agent`.
#[derive(clap::Args, Debug)]
pub(crate) struct AgentArgs {
    /// The API server to join, https://HOST:PORT.
    #[arg(long)]
    server: String,
    /// A bootstrap token `<id>.<secret>` (`rkube token create` on the server); only
    /// needed until the node has its certificate.
    #[arg(long, env = "RKUBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bootstrap token.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The cluster CA's public key pin, `sha256:<hex>` (kubeadm's flag; `rkube token
    /// create --print-join-command` prints it); repeatable. Without it the token's
    /// signature on cluster-info alone vouches for the CA.
    #[arg(long)]
    discovery_token_ca_cert_hash: Vec<String>,
    /// How long to wait for the server and the token's cluster-info signature.
    #[arg(long, default_value = "5m", value_parser = crate::components::parse_duration)]
    discovery_timeout: std::time::Duration,
    /// Where the agent keeps its kubeconfig, keys, containerd, CNI config and pods
    /// (default: `agent/` in the rkube data dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Renew the node's client certificate by CSR at 70–90% of its lifetime (upstream's
    /// kubelet flag; on for a node that joined by TLS bootstrap).
    #[arg(long, num_args = 0..=1, default_value = "true", default_missing_value = "true", action = clap::ArgAction::Set)]
    rotate_certificates: bool,
    #[command(flatten)]
    kubelet: crate::kubelet::KubeletFlags,
}

/// The node's kubeconfig in the agent's data dir.
pub(crate) const KUBECONFIG: &str = "kubelet.kubeconfig";

pub(crate) async fn run(args: AgentArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir().join("agent"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => args.token.clone(),
    };
    let node_name = args
        .kubelet
        .node_name
        .clone()
        .unwrap_or_else(crate::certs::hostname);
    let kubeconfig = data_dir.join(KUBECONFIG);
    let join = JoinConfig {
        server: args.server.trim_end_matches('/').to_owned(),
        token,
        ca_cert_hashes: args.discovery_token_ca_cert_hash.clone(),
        node_name: node_name.clone(),
        kubeconfig: kubeconfig.clone(),
        pending_key: data_dir.join("pki").join("kubelet-client.key.tmp"),
        discovery_timeout: args.discovery_timeout,
        certificate_timeout: bootstrap::CERTIFICATE_TIMEOUT,
    };
    bootstrap::load_or_bootstrap(&join)
        .await
        .map_err(|e| anyhow::anyhow!("cannot join the cluster at {}: {e}", join.server))?;
    let (client, rotator) = crate::kubelet::node_client(&kubeconfig, &node_name).await?;
    if args.rotate_certificates {
        tokio::spawn(rotator.run());
    }
    let server = rkube_pki::kubeconfig::server_url(&kubeconfig).unwrap_or(join.server.clone());
    bootstrap::check_server(&client, &server)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; remove {} and join again with a new token",
                kubeconfig.display()
            )
        })?;
    let mut options = args.kubelet.options(data_dir.clone());
    options.client_ca_pem = match &args.kubelet.client_ca_file {
        Some(_) => args.kubelet.client_ca(None)?,
        None => bootstrap::client_ca(&client, &data_dir.join("pki").join("client-ca.crt")).await,
    };
    tracing::info!(node = %node_name, server = %server, data_dir = %data_dir.display(), "rkube agent joined; starting the kubelet");
    rkube_kubelet::run(client, options, crate::server::shutdown_signal()).await?;
    Ok(())
}
