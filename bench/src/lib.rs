//! rkube's benchmark harness. Each subcommand measures one hot path and prints a table
//! plus a JSON file; numbers are for comparing builds on one machine, never asserted.
//! The `bench` binary and `rkube bench` both parse [`Command`] and call [`run`].

use anyhow::Result;
use clap::Subcommand;

mod admission;
mod authn;
mod authz;
mod deployment;
mod hollow;
mod merge;
mod pods;
mod schedule;
mod schedule_e2e;
mod services;
mod spdy;
mod stats;
mod store;

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Concurrent creates against the store backends, with watch delivery latency.
    Store(store::StoreArgs),
    /// Authorization decisions against an RBAC index of many bindings.
    Authz(authz::AuthzArgs),
    /// Field ownership and patch costs per write (managedFields, SMP, server-side apply).
    Merge(merge::MergeArgs),
    /// Bearer-token authentication: service-account JWTs cold and warm, bootstrap and
    /// static tokens.
    Authn(authn::AuthnArgs),
    /// The scheduling cycle alone, in memory, over many nodes.
    ScheduleAlgorithm(schedule::ScheduleArgs),
    /// The scheduler end to end: rkube server and scheduler, hollow nodes, pods created
    /// through the API until every binding is persisted.
    Schedule(schedule_e2e::ScheduleE2eArgs),
    /// A Deployment on hollow nodes through a real server: time to all Ready and to roll
    /// out a new image, with the server's (controller manager's) CPU and RSS.
    Deployment(deployment::DeploymentArgs),
    /// What hollow nodes cost: time to N nodes Ready, then idle CPU and RSS of the
    /// hollow-nodes process and the server (`--mode kubelet|paper`).
    Hollow(hollow::HollowArgs),
    /// Pod startup latency and RSS on a real node (containerd; needs root).
    Pods(pods::PodsArgs),
    /// The admission chain per pod create: bare, with LimitRange and ResourceQuota, with
    /// many webhook configurations.
    Admission(admission::AdmissionArgs),
    /// Service creates through the API path: what cluster IP and node port allocation
    /// add over a ConfigMap create.
    Services(services::ServicesArgs),
    /// The API server's SPDY/3.1 client on the exec data path: stream throughput each
    /// way and the cost of a header block.
    Spdy(spdy::SpdyArgs),
}

/// Runs one benchmark on a runtime of its own (call it outside any runtime).
pub fn run(command: Command) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        Command::Store(args) => rt.block_on(store::run(args)),
        Command::Authz(args) => authz::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Authn(args) => rt.block_on(authn::run(args)),
        Command::ScheduleAlgorithm(args) => schedule::run(args),
        Command::Schedule(args) => rt.block_on(schedule_e2e::run(args)),
        Command::Deployment(args) => deployment::run(args),
        Command::Hollow(args) => hollow::run(args),
        Command::Pods(args) => rt.block_on(pods::run(args)),
        Command::Admission(args) => rt.block_on(admission::run(args)),
        Command::Services(args) => rt.block_on(services::run(args)),
        Command::Spdy(args) => rt.block_on(spdy::run(args)),
    }
}
