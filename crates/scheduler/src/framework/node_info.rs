//! What the scheduler knows of a node (its object, pods, requested resources and used
//! host ports) and of a pod (its effective requests), computed once per object.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements};

use crate::quantity;

/// The cpu request a container without one counts as for scoring (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory request a container without one counts as for scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for. `repr(C)`: the amounts the
/// filters compare come first, in one or two cache lines (see [`NodeInfo`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Pods a node admits (only meaningful for allocatable).
    pub allowed_pod_number: i64,
    /// Extended and hugepages resources, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// The resources of a `ResourceList` (cpu in millicores, the rest in units).
    pub fn from_list(
        list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => r.milli_cpu = quantity::milli_value(&q.0).unwrap_or(0),
                "memory" => r.memory = quantity::value(&q.0).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage = quantity::value(&q.0).unwrap_or(0),
                "pods" => r.allowed_pod_number = quantity::value(&q.0).unwrap_or(0),
                other if is_scalar(other) => {
                    r.scalar
                        .insert(other.to_owned(), quantity::value(&q.0).unwrap_or(0));
                }
                _ => {}
            }
        }
        r
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// Whether nothing at all is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// Extended resources (`example.com/gpu`), hugepages and attachable volumes are scalar.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let requests = c
        .resources
        .as_ref()
        .and_then(|r: &ResourceRequirements| r.requests.as_ref());
    let mut r = Resource::from_list(requests);
    if non_zero {
        let has = |k: &str| requests.is_some_and(|m| m.contains_key(k));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A pod's effective requests, as upstream's `PodRequests`: the containers' sum plus
/// restartable (sidecar) init containers, at least each regular init container's request
/// (plus the sidecars started before it), plus the pod overhead. With `non_zero`, a
/// container without a cpu or memory request counts as the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut sum = Resource::default();
    for c in &spec.containers {
        sum.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            // A sidecar runs alongside every later init container and the app containers.
            init_max.set_max(&sidecars);
        } else {
            let mut during = sidecars.clone();
            during.add(&r);
            init_max.set_max(&during);
        }
    }
    sum.add(&sidecars);
    sum.set_max(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum.add(&Resource::from_list(Some(overhead)));
    }
    sum
}

/// `name:latest` when an image name has no tag (no `:` after the last `/`).
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':').map(|i| i as isize).unwrap_or(-1);
    let slash = name.rfind('/').map(|i| i as isize).unwrap_or(-1);
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_owned()
    }
}

/// A host port a pod uses: (host IP, protocol, port).
pub type HostPort = (String, String, i32);

/// The host ports a pod's containers ask for (`hostIP` defaults to 0.0.0.0, protocol to TCP).
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            Some((
                p.host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port,
            ))
        })
        .collect()
}

/// A pod with what the scheduler computes from it once.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    /// Effective requests (for Filter).
    pub requests: Resource,
    /// Requests with scoring defaults for containers that request nothing.
    pub non_zero_requests: Resource,
    pub host_ports: Vec<HostPort>,
    /// Whether the pod has any pod affinity or anti-affinity.
    pub has_affinity: bool,
    /// Whether the pod has required pod anti-affinity.
    pub has_required_anti_affinity: bool,
    /// Whether the pod has terms that score other pods' placement: required pod
    /// affinity (upstream's hard pod affinity weight), preferred pod affinity or
    /// preferred anti-affinity. InterPodAffinity's PreScore skips the rest without
    /// reading their (cold) pod objects.
    pub has_scoring_terms: bool,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let has_affinity =
            affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        fn some<T>(terms: &Option<Vec<T>>) -> bool {
            terms.as_ref().is_some_and(|t| !t.is_empty())
        }
        let affinity_terms = affinity.and_then(|a| a.pod_affinity.as_ref());
        let anti_affinity_terms = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let has_required_anti_affinity = anti_affinity_terms
            .is_some_and(|a| some(&a.required_during_scheduling_ignored_during_execution));
        let has_scoring_terms = affinity_terms.is_some_and(|a| {
            some(&a.required_during_scheduling_ignored_during_execution)
                || some(&a.preferred_during_scheduling_ignored_during_execution)
        }) || anti_affinity_terms
            .is_some_and(|a| some(&a.preferred_during_scheduling_ignored_during_execution));
        PodInfo {
            has_affinity,
            has_required_anti_affinity,
            has_scoring_terms,
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            host_ports: pod_host_ports(&pod),
            pod,
        }
    }

    /// The pod's UID (its identity in the cache and the queue).
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }

    /// The pod's priority (`spec.priority`, 0 when unset).
    pub fn priority(&self) -> i32 {
        pod_priority(&self.pod)
    }
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// `spec.priority`, 0 when unset.
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// What the default Filter and Score plugins read of every node they look at, in one
/// 64-byte block at the front of its [`NodeInfo`]: the flags, the pod count, and the
/// cpu, memory and pod amounts (copies of `allocatable`, `requested` and
/// `non_zero_requested`, which every change to the node info keeps equal).
///
/// At 5,000 nodes a cycle reads hundreds of NodeInfos that are cold in the core's cache,
/// so it is bound by how many cache lines those reads touch: one or two with this block,
/// against three or four across the full [`Resource`]s (whose scalar maps sit between
/// the amounts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Hot {
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// Whether `spec.taints` has any (an untainted node's object need not be read).
    pub tainted: bool,
    /// Whether the node reports any image (ImageLocality scores others 0).
    pub has_images: bool,
    /// Pods on the node.
    pub pods: u32,
    pub allocatable_milli_cpu: i64,
    pub allocatable_memory: i64,
    pub allowed_pod_number: i64,
    pub requested_milli_cpu: i64,
    pub requested_memory: i64,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
}

/// A node and the pods on it (bound or assumed), with their totals. `repr(C)`: the
/// [`Hot`] block comes first.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct NodeInfo {
    hot: Hot,
    pub pods: Vec<PodInfo>,
    /// Changed only with the pods (`add_pod`/`remove_pod`), so that [`Hot`] stays equal.
    allocatable: Resource,
    requested: Resource,
    non_zero_requested: Resource,
    pub used_ports: Vec<HostPort>,
    pub node: Arc<Node>,
    /// The node's name (shared by the copies a snapshot held by a cycle forces).
    name: Arc<str>,
    /// Images the node reports: (normalized name, size in bytes), one entry per name.
    images: Vec<(String, i64)>,
    /// Pods here with any pod (anti-)affinity.
    pub pods_with_affinity: usize,
    /// Pods here with required pod anti-affinity.
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let allocatable = Resource::from_list(
            node.status
                .as_ref()
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
        );
        let images: Vec<(String, i64)> = node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names
                    .iter()
                    .flatten()
                    .map(move |n| (normalized_image_name(n), size))
            })
            .collect();
        let spec = node.spec.as_ref();
        let mut info = NodeInfo {
            hot: Hot {
                has_images: !images.is_empty(),
                unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
                tainted: spec
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| !t.is_empty()),
                ..Hot::default()
            },
            images,
            name: node.metadata.name.as_deref().unwrap_or("").into(),
            node,
            pods: Vec::new(),
            allocatable,
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            used_ports: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
        };
        info.refresh_hot();
        info
    }

    /// Copies the amounts into the [`Hot`] block (after every change to them).
    fn refresh_hot(&mut self) {
        let h = &mut self.hot;
        h.pods = u32::try_from(self.pods.len()).unwrap_or(u32::MAX);
        h.allocatable_milli_cpu = self.allocatable.milli_cpu;
        h.allocatable_memory = self.allocatable.memory;
        h.allowed_pod_number = self.allocatable.allowed_pod_number;
        h.requested_milli_cpu = self.requested.milli_cpu;
        h.requested_memory = self.requested.memory;
        h.non_zero_milli_cpu = self.non_zero_requested.milli_cpu;
        h.non_zero_memory = self.non_zero_requested.memory;
    }

    /// Images the node reports: (normalized name, size in bytes), one entry per name.
    pub fn images(&self) -> &[(String, i64)] {
        &self.images
    }

    /// What the node offers pods (`status.allocatable`, else its capacity).
    pub fn allocatable(&self) -> &Resource {
        &self.allocatable
    }

    /// The sum of its pods' requests.
    pub fn requested(&self) -> &Resource {
        &self.requested
    }

    /// The sum of its pods' requests with the scoring defaults.
    pub fn non_zero_requested(&self) -> &Resource {
        &self.non_zero_requested
    }

    /// The flags and amounts every default Filter and Score reads (see [`Hot`]).
    pub fn hot(&self) -> &Hot {
        &self.hot
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn unschedulable(&self) -> bool {
        self.hot.unschedulable
    }

    /// Whether the node has any taints (`spec.taints`).
    pub fn tainted(&self) -> bool {
        self.hot.tainted
    }

    /// Replaces the node object, keeping its pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let pods = std::mem::take(&mut self.pods);
        *self = NodeInfo::new(node);
        for p in pods {
            self.add_pod(p);
        }
    }

    pub fn add_pod(&mut self, pod: PodInfo) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods_with_affinity += usize::from(pod.has_affinity);
        self.pods_with_required_anti_affinity += usize::from(pod.has_required_anti_affinity);
        self.pods.push(pod);
        self.refresh_hot();
    }

    /// Removes the pod with `uid`; whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.uid() == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        self.pods_with_affinity -= usize::from(pod.has_affinity);
        self.pods_with_required_anti_affinity -= usize::from(pod.has_required_anti_affinity);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        self.refresh_hot();
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn cordon_and_taints_follow_the_node_object() {
        let node = |spec: serde_json::Value| -> Arc<Node> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec})).unwrap(),
            )
        };
        let mut info = NodeInfo::new(node(json!({})));
        assert!(!info.unschedulable() && !info.tainted());
        info.set_node(node(
            json!({"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}),
        ));
        assert!(info.unschedulable() && info.tainted());
        info.set_node(node(json!({"unschedulable": false, "taints": []})));
        assert!(!info.unschedulable() && !info.tainted());
    }

    #[test]
    fn affinity_flags() {
        let term = json!({"labelSelector": {"matchLabels": {"a": "b"}}, "topologyKey": "k"});
        let flags = |affinity: serde_json::Value| {
            let p = PodInfo::new(Arc::new(pod(json!({"affinity": affinity}))));
            (
                p.has_affinity,
                p.has_required_anti_affinity,
                p.has_scoring_terms,
            )
        };
        assert_eq!(flags(json!(null)), (false, false, false));
        assert_eq!(
            flags(
                json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
            ),
            (true, true, false)
        );
        assert_eq!(
            flags(
                json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "podAffinityTerm": term}]}})
            ),
            (true, false, true)
        );
        assert_eq!(
            flags(
                json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
            ),
            (true, false, true)
        );
        assert_eq!(
            flags(json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}})),
            (true, false, false)
        );
    }

    #[test]
    fn the_hot_block_follows_every_change() {
        let node: Arc<Node> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "n"},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}))
            .unwrap(),
        );
        let agrees = |info: &NodeInfo| {
            let h = info.hot();
            assert_eq!(h.pods as usize, info.pods.len());
            assert_eq!(
                (
                    h.allocatable_milli_cpu,
                    h.allocatable_memory,
                    h.allowed_pod_number
                ),
                (
                    info.allocatable().milli_cpu,
                    info.allocatable().memory,
                    info.allocatable().allowed_pod_number
                )
            );
            assert_eq!(
                (h.requested_milli_cpu, h.requested_memory),
                (info.requested().milli_cpu, info.requested().memory)
            );
            assert_eq!(
                (h.non_zero_milli_cpu, h.non_zero_memory),
                (
                    info.non_zero_requested().milli_cpu,
                    info.non_zero_requested().memory
                )
            );
        };
        let mut info = NodeInfo::new(node.clone());
        agrees(&info);
        assert_eq!(
            (info.hot().allocatable_milli_cpu, info.hot().pods),
            (4000, 0)
        );
        let with_uid = |uid: &str, spec: serde_json::Value| {
            let mut p = pod(spec);
            p.metadata.uid = Some(uid.into());
            PodInfo::new(Arc::new(p))
        };
        info.add_pod(with_uid(
            "a",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
        ));
        info.add_pod(with_uid("b", json!({"containers": [{"name": "c"}]})));
        agrees(&info);
        assert_eq!(
            (
                info.hot().requested_milli_cpu,
                info.hot().non_zero_milli_cpu,
                info.hot().pods
            ),
            (1000, 1100, 2)
        );
        assert!(info.remove_pod("a"));
        agrees(&info);
        info.set_node(node);
        agrees(&info);
        assert_eq!((info.hot().pods, info.hot().non_zero_milli_cpu), (1, 100));
    }

    #[test]
    fn requests_include_init_containers_sidecars_and_overhead() {
        let cases = [
            // (spec, cpu millis, memory bytes)
            (
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "250m"}}}]}),
                750,
                1 << 30,
            ),
            (
                json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "10Mi"}}}],
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "20Mi"}}}]}),
                2000,
                20 << 20,
            ),
            (
                json!({"initContainers": [
                        {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                        {"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}),
                1500,
                0,
            ),
            (
                json!({"overhead": {"cpu": "100m", "memory": "64Mi"},
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}),
                1100,
                64 << 20,
            ),
        ];
        for (spec, cpu, mem) in cases {
            let r = pod_requests(&pod(spec.clone()), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{spec}");
        }
    }

    #[test]
    fn non_zero_requests_default_missing_cpu_and_memory() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&p, false).memory == 0);
    }
}
