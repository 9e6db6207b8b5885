//! Hollow nodes (upstream's name; KWOK is the peer): many simulated nodes in one
//! process. Two modes:
//! - [`kubelets`] (the default): the real kubelet per node on an in-memory container
//!   runtime (`rkube_kubelet::sim`), as upstream's kubemark;
//! - paper ([`run`] with [`PaperRuntime`]): no kubelet at all; one loop registers the
//!   Nodes with capacity, labels and a Ready condition, renews their Leases and reports
//!   pods Running and Ready with a pod IP. It costs a fraction of the kubelet mode, for
//!   scheduler benchmarks at thousands of nodes.
//!
//! Everything goes through the API.
#![forbid(unsafe_code)]

pub mod kubelets;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{json, Value};
use thiserror::Error;

/// How often each node renews its Lease (the kubelet's default).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// The Lease duration nodes announce (the kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The field manager hollow nodes write as.
pub const FIELD_MANAGER: &str = "rkube-hollow-node";
/// A pod annotation both modes read as "the containers exit with this code once
/// running" (the pod turns Succeeded for 0; Failed otherwise under `restartPolicy:
/// Never`), so Jobs can complete on hollow nodes. Without it pods run forever. (The
/// paper runtime keeps a failed container of another restart policy running; the
/// kubelet restarts it with back-off.)
pub use rkube_kubelet::sim::EXIT_CODE_ANNOTATION;

/// What the hollow nodes look like.
#[derive(Debug, Clone)]
pub struct HollowOptions {
    /// How many nodes.
    pub count: usize,
    /// Node names are `<prefix>-<index>`.
    pub name_prefix: String,
    /// Capacity (= allocatable) per node.
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    /// Extra labels on every node.
    pub labels: BTreeMap<String, String>,
}

impl Default for HollowOptions {
    fn default() -> Self {
        HollowOptions {
            count: 1,
            name_prefix: "hollow-node".into(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: "110".into(),
            labels: BTreeMap::new(),
        }
    }
}

/// A failure that stops the hollow nodes.
#[derive(Debug, Error)]
pub enum Error {
    #[error("registering node {node} failed")]
    RegisterFailed {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid {resource} capacity {value:?}: want {want}")]
    InvalidCapacity {
        resource: &'static str,
        value: String,
        want: &'static str,
    },
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    k8s_openapi::jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now_micro_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    k8s_openapi::jiff::Timestamp::new(d.as_secs() as i64, (d.subsec_micros() * 1000) as i32)
        .map(|t| format!("{t:.6}"))
        .unwrap_or_default()
}

/// The name of node `index`.
pub fn node_name(opts: &HollowOptions, index: usize) -> String {
    format!("{}-{index}", opts.name_prefix)
}

/// Node `index`'s internal IP (from 172.16.0.1 up) and pod CIDR prefix (`10.<hi>.<lo>`),
/// unique per index.
pub(crate) fn node_addresses(index: usize) -> (String, String) {
    let (hi, lo) = ((index / 256) % 256, index % 256);
    let ip = std::net::Ipv4Addr::from(
        u32::from(std::net::Ipv4Addr::new(172, 16, 0, 0)) + 1 + (index as u32 % 0xF_FFFE),
    );
    (ip.to_string(), format!("10.{}.{lo}", 64 + hi % 64))
}

/// The Node object a hollow node registers (its status is sent separately).
pub fn node_object(opts: &HollowOptions, index: usize) -> Node {
    let name = node_name(opts, index);
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("node.rkube.io/hollow".to_owned(), "true".to_owned()),
    ]);
    labels.extend(opts.labels.clone());
    let (_, cidr) = node_addresses(index);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": format!("{cidr}.0/24"), "podCIDRs": [format!("{cidr}.0/24")]},
    }))
    .expect("a valid node")
}

/// The status a hollow node reports: capacity = allocatable, Ready, its address.
pub fn node_status(opts: &HollowOptions, index: usize) -> Value {
    let now = now_rfc3339();
    let resources = json!({"cpu": opts.cpu, "memory": opts.memory, "pods": opts.pods,
                           "ephemeral-storage": "100Gi"});
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let (ip, _) = node_addresses(index);
    json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node_name(opts, index)}],
        "nodeInfo": {"kubeletVersion": "v1.37.0-rkube-hollow", "kubeProxyVersion": "", "containerRuntimeVersion": "hollow://0.1.0",
                     "operatingSystem": "linux", "architecture": "amd64", "osImage": "rkube hollow node",
                     "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
    }})
}

/// What a node does with the pods bound to it.
pub trait PodRuntime: Send + Sync {
    /// The status patch (JSON merge patch of `status`) that reports `pod` running on
    /// `node` (index `index`), or `None` when its status already says so.
    fn sync_pod(&self, pod: &Pod, node: &str, index: usize) -> Option<Value>;
}

/// Runs nothing: reports every pod Running and Ready with an IP from its node's range.
#[derive(Default)]
pub struct PaperRuntime {
    next_ip: Mutex<HashMap<String, u32>>,
}

impl PaperRuntime {
    fn allocate_ip(&self, node: &str, index: usize) -> String {
        let mut next = self.next_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = next.entry(node.to_owned()).or_insert(1);
        *n += 1;
        let host = 2 + (*n - 2) % 250;
        let (_, cidr) = node_addresses(index);
        format!("{cidr}.{host}")
    }
}

/// Whether the pod already reports Running with an IP.
fn reported_running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref() == Some("Running") && status.pod_ip.is_some()
}

/// The status patch for a running pod whose containers exit with `code`, if the
/// annotation asks for it and the pod has not finished yet.
fn exit_patch(pod: &Pod) -> Option<Value> {
    let code: i32 = pod
        .metadata
        .annotations
        .as_ref()?
        .get(EXIT_CODE_ANNOTATION)?
        .parse()
        .ok()?;
    let spec = pod.spec.as_ref()?;
    if code != 0 && spec.restart_policy.as_deref() != Some("Never") {
        // A real kubelet would restart the container; the paper one keeps it running.
        return None;
    }
    let now = now_rfc3339();
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
                   "imageID": "", "containerID": format!("hollow://{}", c.name),
                   "ready": false, "started": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": code, "reason": reason,
                                            "startedAt": now, "finishedAt": now}}})
        })
        .collect();
    let condition = |type_: &str| json!({"type": type_, "status": "False", "reason": "PodCompleted", "lastProbeTime": null, "lastTransitionTime": now});
    Some(json!({"status": {
        "phase": phase,
        "conditions": [condition("Ready"), condition("ContainersReady")],
        "containerStatuses": containers,
    }}))
}

impl PodRuntime for PaperRuntime {
    fn sync_pod(&self, pod: &Pod, node: &str, index: usize) -> Option<Value> {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            return None;
        }
        if reported_running(pod) {
            return exit_patch(pod);
        }
        let spec = pod.spec.as_ref()?;
        let now = now_rfc3339();
        let ip = self.allocate_ip(node, index);
        let (host_ip, _) = node_addresses(index);
        let condition = |type_: &str| json!({"type": type_, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let containers: Vec<Value> = spec
            .containers
            .iter()
            .map(|c| {
                json!({"name": c.name, "image": c.image.clone().unwrap_or_default(),
                       "imageID": "", "containerID": format!("hollow://{}", c.name),
                       "ready": true, "started": true, "restartCount": 0,
                       "state": {"running": {"startedAt": now}}})
            })
            .collect();
        Some(json!({"status": {
            "phase": "Running",
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
                           condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": now,
            "containerStatuses": containers,
        }}))
    }
}

fn lease(name: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name, "namespace": "kube-node-lease"},
           "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                    "renewTime": now_micro_rfc3339()}})
}

async fn register(client: &Client, opts: &HollowOptions, index: usize) -> Result<(), Error> {
    let name = node_name(opts, index);
    let nodes: Api<Node> = Api::all(client.clone());
    let failed = |source| Error::RegisterFailed {
        node: name.clone(),
        source,
    };
    match nodes
        .create(&PostParams::default(), &node_object(opts, index))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(failed(e)),
    }
    nodes
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(node_status(opts, index)),
        )
        .await
        .map_err(failed)?;
    Ok(())
}

async fn renew_leases(client: &Client, names: &[String]) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for name in names {
        if let Err(e) = leases
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(lease(name)),
            )
            .await
        {
            tracing::warn!(node.name = %name, error = %e, "cannot renew the node lease");
        }
    }
}

/// Registers the nodes, then keeps their Leases fresh and their pods running until
/// `shutdown` resolves.
pub async fn run(
    client: Client,
    opts: HollowOptions,
    runtime: Arc<dyn PodRuntime>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let mut index_of = HashMap::new();
    for i in 0..opts.count {
        register(&client, &opts, i).await?;
        index_of.insert(node_name(&opts, i), i);
    }
    let names: Vec<String> = (0..opts.count).map(|i| node_name(&opts, i)).collect();
    tracing::info!(count = opts.count, "hollow nodes registered");
    let leases = {
        let client = client.clone();
        async move {
            let mut tick = tokio::time::interval(LEASE_RENEW_INTERVAL);
            loop {
                tick.tick().await;
                renew_leases(&client, &names).await;
            }
        }
    };
    let pods = {
        let client = client.clone();
        async move {
            let api: Api<Pod> = Api::all(client.clone());
            loop {
                let mut stream = Box::pin(watcher(api.clone(), watcher::Config::default()));
                loop {
                    match stream.try_next().await {
                        Ok(Some(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                            sync(&client, &*runtime, &index_of, &pod).await
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "pod watch failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = leases => {}
        _ = pods => {}
        _ = shutdown => {}
    }
    Ok(())
}

async fn sync(
    client: &Client,
    runtime: &dyn PodRuntime,
    index_of: &HashMap<String, usize>,
    pod: &Pod,
) {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
        return;
    };
    let Some(index) = index_of.get(node) else {
        return;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if pod.metadata.deletion_timestamp.is_some() {
        // Nothing runs, so the pod is gone at once (the kubelet's final delete).
        let _ = api
            .delete(name, &DeleteParams::default().grace_period(0))
            .await;
        return;
    }
    if let Some(patch) = runtime.sync_pod(pod, node, *index) {
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            tracing::debug!(object.ref = %format!("{ns}/{name}"), error = %e, "cannot report pod status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_have_unique_names_addresses_and_ranges() {
        let opts = HollowOptions {
            count: 300,
            labels: BTreeMap::from([("zone".into(), "a".into())]),
            ..Default::default()
        };
        let n = node_object(&opts, 257);
        assert_eq!(n.metadata.name.as_deref(), Some("hollow-node-257"));
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-node-257");
        assert_eq!(n.spec.unwrap().pod_cidr.as_deref(), Some("10.65.1.0/24"));
        let status = node_status(&opts, 257);
        assert_eq!(status["status"]["allocatable"]["cpu"], "4");
        assert_eq!(status["status"]["addresses"][0]["address"], "172.16.1.2");
        assert_eq!(status["status"]["conditions"][3]["type"], "Ready");
    }

    #[test]
    fn paper_runtime_reports_running_once() {
        let rt = PaperRuntime::default();
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {"nodeName": "hollow-node-0", "containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
        let patch = rt.sync_pod(&pod, "hollow-node-0", 0).unwrap();
        assert_eq!(patch["status"]["phase"], "Running");
        assert_eq!(patch["status"]["podIP"], "10.64.0.2");
        assert_eq!(patch["status"]["containerStatuses"][0]["ready"], true);
        let status: Value = patch["status"].clone();
        pod.status = Some(serde_json::from_value(status).unwrap());
        assert!(rt.sync_pod(&pod, "hollow-node-0", 0).is_none());
        assert!(now_micro_rfc3339().ends_with('Z'));
    }

    #[test]
    fn paper_runtime_exits_pods_that_ask_for_it() {
        let rt = PaperRuntime::default();
        for (code, policy, want) in [
            ("0", "Never", Some("Succeeded")),
            ("1", "Never", Some("Failed")),
            ("1", "OnFailure", None),
        ] {
            let mut pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "d", "annotations": {EXIT_CODE_ANNOTATION: code}},
                "spec": {"nodeName": "hollow-node-0", "restartPolicy": policy,
                         "containers": [{"name": "c", "image": "busybox"}]}}))
            .unwrap();
            let running = rt.sync_pod(&pod, "hollow-node-0", 0).unwrap();
            assert_eq!(running["status"]["phase"], "Running");
            pod.status = Some(serde_json::from_value(running["status"].clone()).unwrap());
            let done = rt.sync_pod(&pod, "hollow-node-0", 0);
            assert_eq!(
                done.as_ref()
                    .map(|p| p["status"]["phase"].as_str().unwrap()),
                want,
                "{code} {policy}"
            );
            if let Some(done) = done {
                let exit =
                    &done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"];
                assert_eq!(exit.to_string(), code);
            }
        }
    }
}
