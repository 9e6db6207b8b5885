//! Hollow kubelets (upstream's kubemark): N instances of the real kubelet in one
//! process, each on its own in-memory [`SimRuntime`]. Registration, the Lease, node
//! status, the PLEG, pod workers, probes, restarts with back-off and graceful
//! termination are the kubelet's own code; only the runtime and the machine are
//! simulated. All nodes share one API client (one connection pool) and the process's
//! tokio workers; each node watches its own pods (`spec.nodeName` field selector).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use rkube_kubelet::node::{HostFacts, Machine};
use rkube_kubelet::sim::{SimOptions, SimRuntime};
use rkube_kubelet::{Backend, Options};

use crate::{node_addresses, node_name, Error, HollowOptions};

/// How long a node waits before registering again after a failed attempt.
const REGISTER_RETRY: Duration = Duration::from_secs(2);

/// The machine a hollow node offers: the options' capacity. Memory must be a
/// quantity (`8Gi`), pods a count.
pub fn machine(opts: &HollowOptions) -> Result<Machine, Error> {
    let memory = rkube_api::quantity::value(&opts.memory)
        .ok()
        .filter(|b| *b >= 0)
        .ok_or_else(|| Error::InvalidCapacity {
            resource: "memory",
            value: opts.memory.clone(),
            want: "a quantity such as 8Gi",
        })?;
    rkube_api::quantity::milli_value(&opts.cpu)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| Error::InvalidCapacity {
            resource: "cpu",
            value: opts.cpu.clone(),
            want: "a positive quantity such as 4 or 500m",
        })?;
    let max_pods = opts.pods.parse().map_err(|_| Error::InvalidCapacity {
        resource: "pods",
        value: opts.pods.clone(),
        want: "a count such as 110",
    })?;
    Ok(Machine {
        cpu: opts.cpu.clone(),
        memory_ki: memory as u64 / 1024,
        max_pods,
    })
}

/// The kubelet options of hollow node `index`: its name, labels, address and pod range.
pub fn kubelet_options(opts: &HollowOptions, index: usize) -> Options {
    let name = node_name(opts, index);
    let (ip, cidr) = node_addresses(index);
    let mut o = Options::new(name.clone(), PathBuf::from(format!("/hollow/{name}")));
    o.node_ip = Some(ip);
    o.pod_cidr = format!("{cidr}.0/24");
    o.kubelet_port = 0;
    o.node_labels = BTreeMap::from([("node.rkube.io/hollow".to_owned(), "true".to_owned())]);
    o.node_labels.extend(opts.labels.clone());
    // No host resolv.conf: pods get the cluster DNS settings only.
    o.dns.resolv_conf = None;
    o
}

/// Node `index`'s identity in node info.
fn host_facts(index: usize) -> HostFacts {
    HostFacts {
        os_image: "rkube hollow node".into(),
        kernel_version: String::new(),
        machine_id: format!("{index:032x}"),
        system_uuid: String::new(),
        boot_id: String::new(),
    }
}

/// Runs one hollow kubelet until the process stops, registering again after a failure.
async fn run_one(client: Client, opts: Options, machine: Machine, index: usize) {
    loop {
        let runtime = Arc::new(SimRuntime::new(SimOptions {
            pod_cidr: opts.pod_cidr.clone(),
            timeout: opts.runtime_request_timeout,
            ..Default::default()
        }));
        let backend = Backend::Simulated {
            runtime,
            machine: machine.clone(),
            host: host_facts(index),
        };
        match rkube_kubelet::run_on(
            client.clone(),
            opts.clone(),
            backend,
            std::future::pending(),
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(node.name = %opts.node_name, error = %e, "hollow kubelet stopped; starting it again");
                tokio::time::sleep(REGISTER_RETRY).await;
            }
        }
    }
}

/// Runs `opts.count` hollow kubelets until `shutdown` resolves.
pub async fn run(
    client: Client,
    opts: HollowOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let machine = machine(&opts)?;
    let mut nodes = tokio::task::JoinSet::new();
    for i in 0..opts.count {
        nodes.spawn(run_one(
            client.clone(),
            kubelet_options(&opts, i),
            machine.clone(),
            i,
        ));
    }
    tracing::info!(count = opts.count, "hollow kubelets started");
    shutdown.await;
    nodes.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_give_each_node_its_capacity_address_and_range() {
        let opts = HollowOptions {
            cpu: "500m".into(),
            memory: "8Gi".into(),
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            ..Default::default()
        };
        let m = machine(&opts).unwrap();
        assert_eq!(m.capacity()["cpu"], "500m");
        assert_eq!(m.capacity()["memory"], "8388608Ki");
        assert_eq!(m.capacity()["pods"], "110");
        let o = kubelet_options(&opts, 257);
        assert_eq!(o.node_name, "hollow-node-257");
        assert_eq!(o.node_ip.as_deref(), Some("172.16.1.2"));
        assert_eq!(o.pod_cidr, "10.65.1.0/24");
        assert_eq!(o.node_labels["zone"], "a");
        assert_eq!(o.node_labels["node.rkube.io/hollow"], "true");
        assert!(o.dns.resolv_conf.is_none());
        let bad = HollowOptions {
            memory: "lots".into(),
            ..Default::default()
        };
        assert_eq!(
            machine(&bad).unwrap_err().to_string(),
            "invalid memory capacity \"lots\": want a quantity such as 8Gi"
        );
    }
}
