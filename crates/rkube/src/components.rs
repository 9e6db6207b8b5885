//! `rkube scheduler` and `rkube hollow-nodes`: components that run against an API
//! server named by a kubeconfig.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Flags of `rkube scheduler`.
#[derive(clap::Args, Debug)]
pub(crate) struct SchedulerArgs {
    /// The kubeconfig to reach the API server with (user system:kube-scheduler or admin).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The `spec.schedulerName` to serve.
    #[arg(long, default_value = rkube_scheduler::plugins::DEFAULT_SCHEDULER_NAME)]
    scheduler_name: String,
    /// Schedule only while holding the kube-system/kube-scheduler Lease.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
}

/// A leader-election identity unique to this process: `<hostname>_<uuid>`.
pub(crate) fn leader_identity() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "{}_{}",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/random/uuid")
    )
}

/// Flags of `rkube hollow-nodes`.
#[derive(clap::Args, Debug)]
pub(crate) struct HollowArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Node names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "hollow-node")]
    name_prefix: String,
    /// Each node's cpu capacity.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Each node's memory capacity.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// How many pods each node admits.
    #[arg(long, default_value = "110")]
    pods: String,
    /// Extra node labels, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// A client for the API server a kubeconfig names.
pub(crate) async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
    Client::try_from(config).context("cannot build an API client")
}

pub(crate) async fn run_scheduler(args: SchedulerArgs) -> Result<()> {
    let client = client_from_kubeconfig(&args.kubeconfig).await?;
    rkube_scheduler::run(
        client,
        rkube_scheduler::SchedulerOptions {
            scheduler_name: args.scheduler_name,
            leader_election: args
                .leader_elect
                .then(|| rkube_scheduler::leader_election::LeaderElection::new(leader_identity())),
        },
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

pub(crate) async fn run_hollow_nodes(args: HollowArgs) -> Result<()> {
    let client = client_from_kubeconfig(&args.kubeconfig).await?;
    let opts = rkube_hollow::HollowOptions {
        count: args.count,
        name_prefix: args.name_prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
    };
    rkube_hollow::run(
        client,
        opts,
        Arc::new(rkube_hollow::PaperRuntime::default()),
        crate::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
