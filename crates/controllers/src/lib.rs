//! rkube's controller manager: upstream kube-controller-manager's controllers, each one
//! module built on kube-runtime (watchers, reflector stores, `Controller`), listed in
//! [`registry::CONTROLLERS`]. Controllers are level-triggered — watch, cache, enqueue a key,
//! reconcile idempotently — and read and write the cluster only through the API.
//!
//! Controllers share no mutable state: each gets a [`Context`] (its own client, the
//! manager's configuration) and runs until the manager stops.
#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod certificates;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoint_util;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod events;
pub mod garbagecollector;
pub mod history;
pub mod hpa;
pub mod job;
pub mod metrics;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod podutil;
pub mod registry;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod serviceaccounttoken;
pub mod statefulset;
pub mod streams;
pub mod tainteviction;
pub mod ttlafterfinished;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::Client;
use rkube_scheduler::leader_election::{self, LeaderElection};

/// Makes the client a controller talks to the API with. With
/// `--use-service-account-credentials` (what `rkube server` does), each controller acts as
/// its own service account `system:serviceaccount:kube-system:<name>`, authorized by its
/// `system:controller:<name>` ClusterRole; otherwise every controller shares one client.
pub type ClientFactory = Arc<dyn Fn(&str) -> Client + Send + Sync>;

/// The controller manager's configuration (upstream's kube-controller-manager flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--cluster-cidr`: the pod network node IPAM carves per-node ranges from.
    pub cluster_cidr: Option<String>,
    /// `--node-cidr-mask-size` (IPv4): the prefix length of each node's podCIDR.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-grace-period`: how long a node may go without heartbeats before
    /// it is marked Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-eviction-rate`: nodes per second tainted for eviction in a healthy zone.
    pub node_eviction_rate: f64,
    /// The cluster CA bundle (PEM) published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: Option<String>,
    /// The service-account token signing key (`pki/sa.key`), for legacy token Secrets.
    pub service_account_key: Option<Arc<rkube_pki::ServiceAccountKey>>,
    /// The API server's URL, written into `cluster-info`'s kubeconfig.
    pub server_url: Option<String>,
    /// The CA the CSR signer signs with (upstream's `--cluster-signing-cert-file`): the
    /// client CA, whose certificates the API server accepts. PEM; the first certificate
    /// of a bundle signs.
    pub signing_ca_pem: Option<String>,
    /// That CA's private key (PEM, `--cluster-signing-key-file`).
    pub ca_key_pem: Option<String>,
    /// `--cluster-signing-duration`: the longest lifetime of a signed certificate (a
    /// CSR's `expirationSeconds` may ask for less).
    pub cluster_signing_duration: Duration,
    /// The `--horizontal-pod-autoscaler-*` settings.
    pub hpa: hpa::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: None,
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(50),
            node_monitor_period: Duration::from_secs(5),
            node_eviction_rate: 0.1,
            root_ca_pem: None,
            service_account_key: None,
            server_url: None,
            signing_ca_pem: None,
            ca_key_pem: None,
            cluster_signing_duration: certificates::signer::DEFAULT_TTL,
            hpa: hpa::Settings::default(),
        }
    }
}

/// What a controller gets when it starts.
#[derive(Clone)]
pub struct Context {
    /// The client this controller writes (and gets) with: its own service account's
    /// credentials, authorized by its `system:controller:<name>` role, as upstream.
    pub client: Client,
    /// The client its watchers list and watch with: the manager's own identity
    /// (`system:kube-controller-manager` may list and watch everything), as upstream's
    /// shared informers do.
    pub watch_client: Client,
    /// The manager's shared informers (one watch and store per kind, fed through
    /// `watch_client`): what a controller reads other kinds from.
    pub informers: Arc<streams::Informers>,
    pub config: Arc<Config>,
}

/// One entry of the registry: a controller's upstream name (as `--controllers` takes it),
/// the service account it acts as, and how to start it.
#[derive(Debug)]
pub struct ControllerDef {
    /// Upstream's name, e.g. `serviceaccount-controller`.
    pub name: &'static str,
    /// Upstream's short alias, e.g. `serviceaccount`.
    pub alias: &'static str,
    /// The kube-system service account it uses with per-controller credentials.
    pub service_account: &'static str,
    /// Whether it runs when `--controllers` says `*`.
    pub enabled_by_default: bool,
    /// Runs the controller until its future is dropped.
    pub start: fn(Context) -> BoxFuture<'static, ()>,
}

/// How to run the controller manager.
pub struct Options {
    /// `--controllers`: `*` for the defaults, `name` to add, `-name` to remove.
    pub controllers: Vec<String>,
    pub config: Config,
    /// Run only while holding the `kube-system/kube-controller-manager` Lease.
    pub leader_election: Option<LeaderElection>,
}

/// An error starting the controller manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown controller {0:?} in --controllers (known: {1})")]
    UnknownController(String, String),
    #[error("leader election lost")]
    LeadershipLost,
}

/// Which registry entries `--controllers` selects, in registry order.
pub fn selected(spec: &[String]) -> Result<Vec<&'static ControllerDef>, Error> {
    let spec: Vec<&str> = if spec.is_empty() {
        vec!["*"]
    } else {
        spec.iter().map(String::as_str).collect()
    };
    let known = |n: &str| {
        registry::CONTROLLERS
            .iter()
            .find(|c| c.name == n || c.alias == n)
    };
    for s in &spec {
        let n = s.trim_start_matches('-');
        if n != "*" && known(n).is_none() {
            let names: Vec<&str> = registry::CONTROLLERS.iter().map(|c| c.name).collect();
            return Err(Error::UnknownController(n.to_owned(), names.join(", ")));
        }
    }
    let named = |c: &ControllerDef, n: &str| c.name == n || c.alias == n;
    Ok(registry::CONTROLLERS
        .iter()
        .filter(|c| {
            if spec
                .iter()
                .any(|s| s.strip_prefix('-').is_some_and(|n| named(c, n)))
            {
                return false;
            }
            spec.iter().any(|s| named(c, s)) || (c.enabled_by_default && spec.contains(&"*"))
        })
        .collect())
}

/// Runs the selected controllers until `shutdown` resolves (or leadership is lost).
/// `manager_client` (the manager's own identity) holds the Lease and feeds the watchers;
/// `clients` makes each controller's writing client.
pub async fn run(
    manager_client: Client,
    clients: ClientFactory,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let chosen = selected(&options.controllers)?;
    let mut shutdown = std::pin::pin!(shutdown);
    let election = options.leader_election;
    if let Some(le) = &election {
        tokio::select! {
            _ = leader_election::acquire(&manager_client, le) => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
    let config = Arc::new(options.config);
    let informers = Arc::new(streams::Informers::new(manager_client.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for def in chosen {
        let cx = Context {
            client: clients(def.service_account),
            watch_client: manager_client.clone(),
            informers: informers.clone(),
            config: config.clone(),
        };
        tracing::info!(controller = def.name, "starting controller");
        tasks.spawn(metrics::CONTROLLER.scope(def.name, (def.start)(cx)));
    }
    let lost = async {
        match &election {
            Some(le) => leader_election::hold(&manager_client, le).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        _ = lost => Err(Error::LeadershipLost),
        _ = &mut shutdown => Ok(()),
    };
    tasks.shutdown().await;
    if let (Some(le), Ok(())) = (&election, &result) {
        leader_election::release(&manager_client, le).await;
    }
    result
}

/// Upstream kube-controller-manager's Lease for `identity`.
pub fn leader_election(identity: impl Into<String>) -> LeaderElection {
    LeaderElection {
        name: "kube-controller-manager".into(),
        ..LeaderElection::new(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &[&str]) -> Vec<&'static str> {
        let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        selected(&spec).unwrap().iter().map(|c| c.name).collect()
    }

    #[test]
    fn controllers_flag_selects_like_upstream() {
        assert!(names(&["*"]).contains(&"serviceaccount-controller"));
        assert!(names(&[]).contains(&"serviceaccount-controller"));
        assert!(!names(&["*", "-serviceaccount"]).contains(&"serviceaccount-controller"));
        assert_eq!(
            names(&["serviceaccount"]),
            vec!["serviceaccount-controller"]
        );
        let err = selected(&["nope".to_string()]).unwrap_err().to_string();
        assert!(err.contains("unknown controller \"nope\""), "{err}");
    }
}
