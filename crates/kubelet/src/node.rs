//! The Node: registration (labels, capacity and allocatable from the machine), the Lease
//! heartbeat, and node status (conditions with upstream's reasons and messages,
//! addresses, node info).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::time::{now_micro_rfc3339, now_rfc3339};

/// How often the Lease is renewed (upstream: a quarter of the lease duration).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// The Lease duration the node announces.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// How often node status is computed (`--node-status-update-frequency`).
pub const NODE_STATUS_UPDATE_FREQUENCY: Duration = Duration::from_secs(10);
/// How often status is sent even when unchanged (`--node-status-report-frequency`).
pub const NODE_STATUS_REPORT_FREQUENCY: Duration = Duration::from_secs(300);
/// The kubelet version reported in node info.
pub const KUBELET_VERSION: &str = "v1.37.0";
/// Memory kept back from allocatable: upstream's default hard eviction threshold.
const EVICTION_HARD_MEMORY_KI: u64 = 100 * 1024;
/// How many images node status lists at most (upstream's `--node-status-max-images`).
pub const NODE_STATUS_MAX_IMAGES: usize = 50;

/// What the machine offers, read from /proc (or given, for a simulated node).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// CPU capacity as a quantity (`"2"`, `"500m"`).
    pub cpu: String,
    pub memory_ki: u64,
    pub max_pods: u32,
}

impl Machine {
    /// Reads the machine's CPUs and memory.
    pub fn detect(max_pods: u32) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory_ki = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total_ki(&m))
            .unwrap_or(0);
        Machine {
            cpu: cpus.to_string(),
            memory_ki,
            max_pods,
        }
    }

    pub fn capacity(&self) -> Value {
        json!({"cpu": self.cpu, "memory": format!("{}Ki", self.memory_ki),
               "pods": self.max_pods.to_string(), "hugepages-1Gi": "0", "hugepages-2Mi": "0"})
    }

    pub fn allocatable(&self) -> Value {
        let memory = self.memory_ki.saturating_sub(EVICTION_HARD_MEMORY_KI);
        json!({"cpu": self.cpu, "memory": format!("{memory}Ki"),
               "pods": self.max_pods.to_string(), "hugepages-1Gi": "0", "hugepages-2Mi": "0"})
    }
}

/// `MemTotal` of /proc/meminfo, in KiB.
pub fn mem_total_ki(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of an os-release file.
pub fn os_image(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| Some(l.strip_prefix("PRETTY_NAME=")?.trim_matches('"').to_owned()))
}

/// The node's labels (upstream's well-known ones).
pub fn labels(node_name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), node_name.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "kubernetes.io/arch".to_owned(),
            crate::pause::oci_arch(std::env::consts::ARCH).to_owned(),
        ),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "beta.kubernetes.io/arch".to_owned(),
            crate::pause::oci_arch(std::env::consts::ARCH).to_owned(),
        ),
    ]);
    labels.extend(extra.clone());
    labels
}

/// Why the node is not ready, or `None` when it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// Upstream's runtime-state errors, e.g. `container runtime is down`.
    pub errors: Vec<String>,
}

impl Health {
    /// The Ready condition's (status, reason, message).
    pub fn ready(&self) -> (&'static str, &'static str, String) {
        match self.errors.as_slice() {
            [] => (
                "True",
                "KubeletReady",
                "kubelet is posting ready status".into(),
            ),
            [one] => ("False", "KubeletNotReady", one.clone()),
            many => ("False", "KubeletNotReady", format!("[{}]", many.join(", "))),
        }
    }
}

/// The host's identity in node info, read once at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    pub os_image: String,
    pub kernel_version: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
}

impl HostFacts {
    /// Reads them from /etc and /proc.
    pub fn read() -> Self {
        HostFacts {
            os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default())
                .unwrap_or_else(|| "Linux".into()),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            machine_id: read_trimmed("/etc/machine-id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// Static facts of the node status: addresses and node info.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_name: String,
    pub internal_ip: String,
    pub runtime_version: String,
    /// The port of the kubelet's HTTPS server (0: none).
    pub kubelet_port: u16,
    pub host: HostFacts,
}

/// Node status' `images`: the largest [`NODE_STATUS_MAX_IMAGES`] images, each with its
/// digests and tags as names (upstream's order).
pub fn images(list: &[crate::cri::api::Image]) -> Value {
    let mut sorted: Vec<&crate::cri::api::Image> = list.iter().collect();
    sorted.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
    Value::Array(
        sorted
            .into_iter()
            .take(NODE_STATUS_MAX_IMAGES)
            .map(|i| {
                let names: Vec<&String> = i.repo_digests.iter().chain(&i.repo_tags).collect();
                json!({"names": names, "sizeBytes": i.size})
            })
            .collect(),
    )
}

/// The status the node reports (a merge patch of `status`), without times when
/// `now` is empty (for comparing two statuses).
pub fn status(
    machine: &Machine,
    info: &NodeInfo,
    health: &Health,
    images: &Value,
    now: &str,
) -> Value {
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let (ready, reason, message) = health.ready();
    let arch = crate::pause::oci_arch(std::env::consts::ARCH);
    json!({"status": {
        "capacity": machine.capacity(), "allocatable": machine.allocatable(),
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", ready, reason, &message),
        ],
        "addresses": [{"type": "InternalIP", "address": info.internal_ip},
                      {"type": "Hostname", "address": info.node_name}],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "containerRuntimeVersion": info.runtime_version,
            "operatingSystem": "linux", "architecture": arch,
            "osImage": info.host.os_image,
            "kernelVersion": info.host.kernel_version,
            "machineID": info.host.machine_id,
            "systemUUID": info.host.system_uuid,
            "bootID": info.host.boot_id,
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.kubelet_port}},
        "images": images,
    }})
}

/// Keeps conditions' `lastTransitionTime` from `old` where their status did not change.
fn keep_transition_times(new: &mut Value, old: &Node) {
    let Some(old_conds) = old.status.as_ref().and_then(|s| s.conditions.as_ref()) else {
        return;
    };
    let Some(conds) = new["status"]["conditions"].as_array_mut() else {
        return;
    };
    for c in conds {
        if let Some(o) = old_conds
            .iter()
            .find(|o| Some(o.type_.as_str()) == c["type"].as_str())
        {
            if Some(o.status.as_str()) == c["status"].as_str() {
                if let Some(t) = &o.last_transition_time {
                    c["lastTransitionTime"] = json!(t.0.to_string());
                }
            }
        }
    }
}

/// Registers the Node (creating it, or adopting an existing one) and returns it.
pub async fn register(
    client: &Client,
    node_name: &str,
    extra_labels: &BTreeMap<String, String>,
) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node_name, "labels": labels(node_name, extra_labels),
                     "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
    }))
    .expect("a valid node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => Ok(n),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels(node_name, extra_labels)}});
            nodes
                .patch(node_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
        }
        Err(e) => Err(e),
    }
}

/// Sends node status when it changed, or every report period.
pub struct StatusReporter {
    client: Client,
    last_sent: Option<(Value, Instant)>,
}

impl StatusReporter {
    pub fn new(client: Client) -> Self {
        StatusReporter {
            client,
            last_sent: None,
        }
    }

    pub async fn report(
        &mut self,
        machine: &Machine,
        info: &NodeInfo,
        health: &Health,
        images: &Value,
    ) -> Result<(), kube::Error> {
        let timeless = status(machine, info, health, images, "");
        if let Some((last, at)) = &self.last_sent {
            if *last == timeless && at.elapsed() < NODE_STATUS_REPORT_FREQUENCY {
                return Ok(());
            }
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut patch = status(machine, info, health, images, &now_rfc3339());
        if let Ok(old) = nodes.get(&info.node_name).await {
            keep_transition_times(&mut patch, &old);
        }
        nodes
            .patch_status(
                &info.node_name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        self.last_sent = Some((timeless, Instant::now()));
        Ok(())
    }
}

/// Renews (or creates) the node's Lease in `kube-node-lease`, owned by the Node.
pub async fn renew_lease(client: &Client, node: &Node) -> Result<(), kube::Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease",
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                          "uid": node.metadata.uid}]},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": now_micro_rfc3339()}});
    leases
        .patch(
            &name,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(lease),
        )
        .await
        .map(drop)
}

/// The host's primary IPv4 address: the source address of the default route (found by
/// connecting a UDP socket, which sends nothing), or loopback.
pub fn detect_node_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpu: "2".into(),
            memory_ki: 4_000_000,
            max_pods: 110,
        }
    }

    #[test]
    fn parses_meminfo_and_os_release() {
        assert_eq!(
            mem_total_ki("MemTotal:        8136496 kB\nMemFree: 1 kB\n"),
            Some(8136496)
        );
        assert_eq!(
            os_image("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn node_status_lists_the_largest_images_with_digests_first() {
        let img = |id: &str, size: u64| crate::cri::api::Image {
            id: id.into(),
            repo_tags: vec![format!("docker.io/library/{id}:1")],
            repo_digests: vec![format!("docker.io/library/{id}@sha256:{id}")],
            size,
            ..Default::default()
        };
        let mut list: Vec<_> = (0..60).map(|i| img(&format!("i{i:02}"), i)).collect();
        list.push(img("big", 1 << 30));
        let v = images(&list);
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), NODE_STATUS_MAX_IMAGES);
        assert_eq!(
            v[0],
            json!({"names": ["docker.io/library/big@sha256:big", "docker.io/library/big:1"],
                   "sizeBytes": 1u64 << 30})
        );
        assert_eq!(v[49]["sizeBytes"], 11);
    }

    #[test]
    fn allocatable_keeps_back_the_eviction_threshold() {
        let m = machine();
        assert_eq!(m.capacity()["memory"], "4000000Ki");
        assert_eq!(m.allocatable()["memory"], "3897600Ki");
        assert_eq!(m.allocatable()["pods"], "110");
    }

    #[test]
    fn ready_condition_uses_upstream_reasons() {
        let info = NodeInfo {
            node_name: "n1".into(),
            internal_ip: "10.0.0.1".into(),
            runtime_version: "containerd://1.6.20".into(),
            kubelet_port: 10250,
            host: HostFacts::default(),
        };
        let s = status(&machine(), &info, &Health::default(), &json!([]), "t");
        assert_eq!(s["status"]["conditions"][3]["reason"], "KubeletReady");
        assert_eq!(
            s["status"]["conditions"][3]["message"],
            "kubelet is posting ready status"
        );
        let sick = Health {
            errors: vec!["container runtime is down".into()],
        };
        let s = status(&machine(), &info, &sick, &json!([]), "t");
        assert_eq!(s["status"]["conditions"][3]["status"], "False");
        assert_eq!(s["status"]["conditions"][3]["reason"], "KubeletNotReady");
        assert_eq!(
            s["status"]["conditions"][3]["message"],
            "container runtime is down"
        );
        assert_eq!(
            s["status"]["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.6.20"
        );
        let two = Health {
            errors: vec!["a".into(), "b".into()],
        };
        assert_eq!(two.ready().2, "[a, b]");
    }
}
