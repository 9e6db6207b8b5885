//! The `rkube` binary: parses the command line and runs the chosen component.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod agent;
mod certs;
mod components;
mod datastore;
mod explain;
mod kubelet;
mod server;
mod token;
mod user_agent;

/// jemalloc instead of glibc's malloc: under API load glibc's allocator took over a quarter
/// of the server's CPU (arena locks, chunk consolidation); jemalloc's thread caches cut the
/// server's CPU per scheduled pod by about a third (see the closing notes of issue 6).
/// Its options are compiled in: `.cargo/config.toml`.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// rkube: Kubernetes, written in Rust.
#[derive(Parser, Debug)]
#[command(name = "rkube", version, about)]
struct Cli {
    /// Log verbosity, as klog's -v: 0 info, 4 debug, 6+ trace.
    #[arg(short = 'v', long = "v", global = true, default_value_t = 0)]
    verbosity: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the all-in-one server (for now: the store and its health endpoints).
    Server(Box<server::ServerArgs>),
    /// Runs the scheduler against an API server.
    #[command(long_about = components::SCHEDULER_LONG_ABOUT)]
    Scheduler(components::SchedulerArgs),
    /// Runs the controller manager against an API server.
    ControllerManager(components::ControllerManagerArgs),
    /// Simulates nodes: the real kubelet per node on a simulated container runtime (or,
    /// with --mode paper, pods reported Running without a kubelet).
    HollowNodes(components::HollowArgs),
    /// Runs a kubelet: registers this machine as a Node and runs its pods on containerd.
    Kubelet(Box<kubelet::KubeletArgs>),
    /// Joins this machine to a cluster as a node with a bootstrap token (TLS bootstrap),
    /// then runs its kubelet.
    Agent(Box<agent::AgentArgs>),
    /// Creates, lists and deletes bootstrap tokens for joining nodes.
    Token(token::TokenArgs),
    /// Checks and rotates the cluster's certificates.
    Certs(certs::CertsArgs),
    /// Explains the scheduler's decision for a pod: each node's filter verdict and the
    /// feasible nodes' scores per plugin.
    Explain(explain::ExplainArgs),
    /// Runs a benchmark (the same ones as `cargo run -p bench --`).
    #[command(subcommand)]
    Bench(bench::Command),
    /// Prints the version.
    Version,
}

fn init_logging(verbosity: u8) {
    // -v raises our own crates' level; libraries (hyper, h2, rustls, kube) stay at info
    // unless RKUBE_LOG says otherwise, so `-v 10` shows the scheduler's per-node scoring
    // rather than every frame on the wire.
    let level = match verbosity {
        0..=3 => "info",
        4..=5 => "info,rkube=debug",
        _ => "info,rkube=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RKUBE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs redirected to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The data dir when none is given: `/var/lib/rkube` as root, else `~/.local/share/rkube`.
pub(crate) fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/share/rkube"),
        _ => PathBuf::from("/var/lib/rkube"),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbosity);
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Server(args) => runtime()?.block_on(server::run(*args)),
        Command::Scheduler(args) => {
            components::scheduler_runtime()?.block_on(components::run_scheduler(args))
        }
        Command::ControllerManager(args) => {
            runtime()?.block_on(components::run_controller_manager(args))
        }
        Command::HollowNodes(args) => runtime()?.block_on(components::run_hollow_nodes(args)),
        Command::Kubelet(args) => runtime()?.block_on(kubelet::run(*args)),
        Command::Agent(args) => runtime()?.block_on(agent::run(*args)),
        Command::Token(args) => runtime()?.block_on(token::run(args)),
        Command::Certs(args) => certs::run(args),
        Command::Explain(args) => runtime()?.block_on(explain::run(args)),
        Command::Bench(command) => bench::run(command),
        Command::Version => {
            println!("rkube {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}
