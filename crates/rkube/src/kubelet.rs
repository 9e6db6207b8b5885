//! `rkube kubelet` and the local node of `rkube server --enable-node`: the kubelet's
//! flags and how they become `rkube_kubelet::Options`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

/// The kubelet's flags, shared by `rkube kubelet` and `rkube server --enable-node`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KubeletFlags {
    /// The Node's name (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// A running CRI runtime (unix:///path/to/socket); without it rkube writes a
    /// containerd config into the data dir and starts containerd itself.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// The node's InternalIP (default: the source address of the default route).
    #[arg(long)]
    pub node_ip: Option<String>,
    /// The pod range used when the Node has no spec.podCIDR.
    #[arg(long, default_value = rkube_kubelet::cni::DEFAULT_POD_CIDR)]
    pub pod_cidr: String,
    /// The name of the CNI bridge pods attach to.
    #[arg(long, default_value = "cni0")]
    pub cni_bridge: String,
    /// Labels to add to the Node (KEY=VALUE, comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = crate::components::parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// The most pods this node runs.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The port of the kubelet's HTTPS server (logs); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The CA of the client certificates the kubelet's server accepts (default: the API
    /// server's client CA, read from kube-system/extension-apiserver-authentication).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// The cluster DNS server IPs pods with dnsPolicy ClusterFirst use (comma-separated);
    /// without it such pods get the host's resolv.conf.
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster's DNS domain, searched by pods after their namespace's.
    #[arg(long, default_value = rkube_kubelet::dns::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// The resolv.conf pods with dnsPolicy Default get ("" for none).
    #[arg(long, default_value = rkube_kubelet::dns::DEFAULT_RESOLV_CONF)]
    pub resolv_conf: String,
    /// A folder of static pod manifests (YAML or JSON, one pod per file) the kubelet runs
    /// without the API server, mirrored into the API.
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// How often the pod manifest path is read for changes (e.g. 20s, 500ms).
    #[arg(long, default_value = "20s", value_parser = crate::components::parse_duration)]
    pub file_check_frequency: std::time::Duration,
    /// The deadline of every container runtime call except image pulls.
    #[arg(long, default_value = "2m", value_parser = crate::components::parse_duration)]
    pub runtime_request_timeout: std::time::Duration,
    /// How long the pod lifecycle event generator may go without a successful relist
    /// before the node is NotReady and pod sync stops (upstream's fixed 3m0s).
    #[arg(long, default_value = "3m", value_parser = crate::components::parse_duration)]
    pub pleg_relist_threshold: std::time::Duration,
    /// Where the managed containerd looks for CNI plugins.
    #[arg(long)]
    pub cni_bin_dir: Option<PathBuf>,
    /// The managed containerd's CNI config dir; the operator's config is used as is
    /// (without it rkube writes a bridge config under the data dir).
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
}

impl KubeletFlags {
    pub(crate) fn options(&self, data_dir: PathBuf) -> rkube_kubelet::Options {
        let name = self
            .node_name
            .clone()
            .unwrap_or_else(crate::certs::hostname);
        let mut o = rkube_kubelet::Options::new(name, data_dir);
        o.container_runtime_endpoint = self.container_runtime_endpoint.clone();
        o.node_ip = self.node_ip.clone();
        o.pod_cidr = self.pod_cidr.clone();
        o.cni_bridge = self.cni_bridge.clone();
        o.max_pods = self.max_pods;
        o.node_labels = self.node_labels.iter().cloned().collect::<BTreeMap<_, _>>();
        o.kubelet_port = self.kubelet_port;
        o.dns = rkube_kubelet::dns::Settings {
            cluster_dns: self.cluster_dns.iter().map(ToString::to_string).collect(),
            cluster_domain: self.cluster_domain.clone(),
            resolv_conf: (!self.resolv_conf.is_empty()).then(|| self.resolv_conf.clone().into()),
        };
        o.pod_manifest_path = self.pod_manifest_path.clone();
        o.file_check_frequency = self.file_check_frequency;
        o.runtime_request_timeout = self.runtime_request_timeout;
        o.pleg_relist_threshold = self.pleg_relist_threshold;
        o.cni_bin_dir = self.cni_bin_dir.clone();
        o.cni_conf_dir = self.cni_conf_dir.clone();
        o
    }

    /// The client CA: `--client-ca-file`, else `default`.
    pub(crate) fn client_ca(&self, default: Option<String>) -> Result<Option<String>> {
        match &self.client_ca_file {
            Some(path) => Ok(Some(std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read --client-ca-file {}: {e}", path.display())
            })?)),
            None => Ok(default),
        }
    }
}

/// Flags of `rkube kubelet`.
#[derive(clap::Args, Debug)]
pub(crate) struct KubeletArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Where the kubelet keeps containerd's config and state, CNI config and pod logs
    /// (default: the rkube data dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Renew the kubeconfig's client certificate by CSR at 70–90% of its lifetime,
    /// writing the new one where the kubeconfig keeps it (upstream's default: off).
    #[arg(long, num_args = 0..=1, default_value = "false", default_missing_value = "true", action = clap::ArgAction::Set)]
    rotate_certificates: bool,
    #[command(flatten)]
    flags: KubeletFlags,
}

/// The node's API client from its kubeconfig, and the rotator that renews the
/// kubeconfig's client certificate when run.
pub(crate) async fn node_client(
    kubeconfig: &std::path::Path,
    node_name: &str,
) -> Result<(kube::Client, rkube_kubelet::certificate::Rotator)> {
    rkube_kubelet::certificate::client(
        kubeconfig,
        node_name,
        crate::user_agent::header_value("kubelet", None),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) async fn run(args: KubeletArgs) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let mut options = args.flags.options(data_dir.clone());
    let client = if args.rotate_certificates {
        let (client, rotator) = node_client(&args.kubeconfig, &options.node_name).await?;
        tokio::spawn(rotator.run());
        client
    } else {
        crate::components::client_from_kubeconfig(&args.kubeconfig, "kubelet").await?
    };
    // The API server calls the kubelet (logs, exec) with a certificate of its client CA,
    // which it publishes in extension-apiserver-authentication, as `rkube agent` reads it.
    options.client_ca_pem = match &args.flags.client_ca_file {
        Some(_) => args.flags.client_ca(None)?,
        None => {
            let cache = data_dir.join("pki").join("client-ca.crt");
            let ca = rkube_kubelet::bootstrap::client_ca(&client, &cache).await;
            Some(ca.ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot read the API server's client CA from the client-ca-file key of the kube-system/extension-apiserver-authentication ConfigMap (nor a copy saved at {}): pass --client-ca-file",
                    cache.display()
                )
            })?)
        }
    };
    rkube_kubelet::run(client, options, crate::server::shutdown_signal()).await?;
    Ok(())
}
