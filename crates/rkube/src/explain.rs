//! `rkube explain pod NAME`: prints why the scheduler places (or cannot place) a pod —
//! every node's Filter verdict and every feasible node's scores — from the scheduler
//! crate's `explain` module, against the API server a kubeconfig names.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Flags of `rkube explain`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExplainArgs {
    #[command(subcommand)]
    what: ExplainCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ExplainCommand {
    /// A pending or scheduled pod: each node's filter verdict, the feasible nodes'
    /// scores per plugin, and the node the scheduler would pick.
    Pod(PodArgs),
}

#[derive(clap::Args, Debug)]
struct PodArgs {
    /// The pod's name.
    name: String,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The kubeconfig to reach the API server with (default: $KUBECONFIG, else the data
    /// dir's admin.kubeconfig).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The data dir whose admin.kubeconfig is used when no kubeconfig is named.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The KubeSchedulerConfiguration the scheduler runs with (`rkube scheduler
    /// --config`): the pod's schedulerName picks the profile evaluated. Without it, the
    /// built-in default profile.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: ExplainArgs) -> Result<()> {
    let ExplainCommand::Pod(args) = args.what;
    let kubeconfig = match (args.kubeconfig, std::env::var_os("KUBECONFIG")) {
        (Some(k), _) => k,
        (None, Some(k)) if !k.is_empty() => PathBuf::from(k),
        _ => args
            .data_dir
            .unwrap_or_else(crate::default_data_dir)
            .join("admin.kubeconfig"),
    };
    let config = match &args.config {
        Some(path) => Some(
            rkube_scheduler::config::load_file(path)
                .with_context(|| format!("bad --config {}", path.display()))?,
        ),
        None => None,
    };
    let client = crate::components::client_from_kubeconfig(&kubeconfig, "kubectl").await?;
    let explanation =
        rkube_scheduler::explain::explain(&client, &args.namespace, &args.name, config.as_ref())
            .await
            .with_context(|| format!("cannot explain pod {}/{}", args.namespace, args.name))?;
    print!("{explanation}");
    Ok(())
}
