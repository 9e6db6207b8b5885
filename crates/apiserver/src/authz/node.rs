//! The Node authorizer (upstream's `--authorization-mode=Node`, first in the chain):
//! a kubelet, user `system:node:<name>` in `system:nodes`, reads only the secrets,
//! configmaps, PVCs, PVs, VolumeAttachments, ResourceClaims and service-account tokens
//! its own pods need, and writes only its own Lease; everything else it may do is
//! upstream's node rules (the `system:node` role's rules).
//!
//! The [`Graph`] of which objects each node's pods reference is fed by store watches of
//! pods, PersistentVolumes and VolumeAttachments ([`start`]); decisions read memory only.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use rkube_store::{EventKind, ListOptions, WatchResponse};
use serde_json::Value;

use super::rbac::PolicyRule;
use super::Attributes;
use crate::ApiState;

/// The group every node is in.
pub const NODES_GROUP: &str = "system:nodes";
const NODE_USER_PREFIX: &str = "system:node:";

/// What the Node authorizer decides; `NoOpinion` (with upstream's reason) leaves it to
/// the next authorizer. Like upstream's, it never denies outright.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    NoOpinion(String),
}

type NsName = (String, String);

/// What one bound pod references.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PodRefs {
    node: String,
    secrets: BTreeSet<String>,
    configmaps: BTreeSet<String>,
    pvcs: BTreeSet<String>,
    service_account: String,
    resource_claims: BTreeSet<String>,
}

/// What one PersistentVolume references.
#[derive(Clone, Debug, Default)]
struct PvRefs {
    claim: Option<NsName>,
    secrets: Vec<NsName>,
}

/// Which objects each node's pods reference.
#[derive(Debug, Default)]
pub struct Graph {
    pods: HashMap<NsName, PodRefs>,
    pods_by_node: HashMap<String, BTreeSet<NsName>>,
    pvs: HashMap<String, PvRefs>,
    /// VolumeAttachment name → node.
    attachments: HashMap<String, String>,
}

fn names<'a, I: Iterator<Item = &'a Value>>(
    values: I,
) -> impl Iterator<Item = String> + use<'a, I> {
    values
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The parts of a stored pod [`PodRefs::of`] reads; serde skips the rest (images,
/// probes, resources, most of the status) without building it. Every pod write passes
/// through the graph: parsing whole pods was ≈4% of the server's CPU in a pod burst.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PodView {
    metadata: MetaView,
    spec: SpecView,
    status: StatusView,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct MetaView {
    name: Value,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SpecView {
    node_name: Value,
    service_account_name: Value,
    image_pull_secrets: Value,
    volumes: Value,
    init_containers: Option<Vec<ContainerView>>,
    containers: Option<Vec<ContainerView>>,
    ephemeral_containers: Option<Vec<ContainerView>>,
    resource_claims: Value,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ContainerView {
    env: Value,
    env_from: Value,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StatusView {
    resource_claim_statuses: Value,
}

/// A stored pod reduced to what the graph reads, in the pod's own shape; `None` when it
/// does not parse, or (without parsing it) when it has no `nodeName` key anywhere: an
/// unscheduled pod relates to no node, and half of all pod writes are creates.
fn slim_pod(stored: &[u8]) -> Option<Value> {
    memchr::memmem::find(stored, b"\"nodeName\"")?;
    let v: PodView = serde_json::from_slice(stored).ok()?;
    let containers = |list: Option<Vec<ContainerView>>| -> Value {
        list.into_iter()
            .flatten()
            .map(|c| serde_json::json!({"env": c.env, "envFrom": c.env_from}))
            .collect()
    };
    let spec = v.spec;
    Some(serde_json::json!({
        "metadata": {"name": v.metadata.name},
        "spec": {
            "nodeName": spec.node_name,
            "serviceAccountName": spec.service_account_name,
            "imagePullSecrets": spec.image_pull_secrets,
            "volumes": spec.volumes,
            "initContainers": containers(spec.init_containers),
            "containers": containers(spec.containers),
            "ephemeralContainers": containers(spec.ephemeral_containers),
            "resourceClaims": spec.resource_claims,
        },
        "status": {"resourceClaimStatuses": v.status.resource_claim_statuses},
    }))
}

/// A stored object of `resource` as the graph reads it.
fn parse(resource: &str, stored: &[u8]) -> Option<Value> {
    if resource == "pods" {
        slim_pod(stored)
    } else {
        serde_json::from_slice(stored).ok()
    }
}

impl PodRefs {
    /// The references of a pod (upstream's `graph_populator`/`podutil.VisitPod*`).
    fn of(pod: &Value) -> Self {
        let spec = &pod["spec"];
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let mut r = PodRefs {
            node: spec["nodeName"].as_str().unwrap_or_default().to_owned(),
            service_account: spec["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned(),
            ..Default::default()
        };
        r.secrets.extend(names(
            array(&spec["imagePullSecrets"]).iter().map(|s| &s["name"]),
        ));
        for volume in array(&spec["volumes"]) {
            r.secrets
                .extend(names([&volume["secret"]["secretName"]].into_iter()));
            r.configmaps
                .extend(names([&volume["configMap"]["name"]].into_iter()));
            for source in array(&volume["projected"]["sources"]) {
                r.secrets
                    .extend(names([&source["secret"]["name"]].into_iter()));
                r.configmaps
                    .extend(names([&source["configMap"]["name"]].into_iter()));
            }
            r.pvcs.extend(names(
                [&volume["persistentVolumeClaim"]["claimName"]].into_iter(),
            ));
            if volume["ephemeral"].is_object() {
                let volume_name = volume["name"].as_str().unwrap_or_default();
                r.pvcs.insert(format!("{pod_name}-{volume_name}"));
            }
            // Plugin credentials: `secretRef` (cephfs, flexVolume, iscsi, rbd, scaleIO,
            // storageos) and `nodePublishSecretRef` (csi).
            if let Some(source) = volume.as_object() {
                for plugin in source.values() {
                    r.secrets.extend(names(
                        [
                            &plugin["secretRef"]["name"],
                            &plugin["nodePublishSecretRef"]["name"],
                        ]
                        .into_iter(),
                    ));
                    r.secrets
                        .extend(names([&plugin["secretName"]].into_iter()).filter(|_| {
                            // azureFile's secretName; `secret` volumes are handled above.
                            plugin.get("shareName").is_some()
                        }));
                }
            }
        }
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in array(&spec[list]) {
                for env in array(&c["env"]) {
                    let from = &env["valueFrom"];
                    r.secrets
                        .extend(names([&from["secretKeyRef"]["name"]].into_iter()));
                    r.configmaps
                        .extend(names([&from["configMapKeyRef"]["name"]].into_iter()));
                }
                for env in array(&c["envFrom"]) {
                    r.secrets
                        .extend(names([&env["secretRef"]["name"]].into_iter()));
                    r.configmaps
                        .extend(names([&env["configMapRef"]["name"]].into_iter()));
                }
            }
        }
        r.resource_claims.extend(names(
            array(&spec["resourceClaims"])
                .iter()
                .map(|c| &c["resourceClaimName"]),
        ));
        r.resource_claims.extend(names(
            array(&pod["status"]["resourceClaimStatuses"])
                .iter()
                .map(|c| &c["resourceClaimName"]),
        ));
        r
    }
}

impl PvRefs {
    fn of(pv: &Value) -> Self {
        let spec = &pv["spec"];
        let claim = spec["claimRef"]["name"].as_str().map(|name| {
            let ns = spec["claimRef"]["namespace"].as_str().unwrap_or_default();
            (ns.to_owned(), name.to_owned())
        });
        let claim_ns = claim.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        let mut secrets = Vec::new();
        if let Some(sources) = spec.as_object() {
            for source in sources.values().filter(|v| v.is_object()) {
                for (key, r) in source.as_object().into_iter().flatten() {
                    if key == "secretRef" || key.ends_with("SecretRef") {
                        if let Some(name) = r["name"].as_str() {
                            let ns = r["namespace"].as_str().unwrap_or(&claim_ns);
                            secrets.push((ns.to_owned(), name.to_owned()));
                        }
                    }
                }
                // azureFile: secretName in secretNamespace (default: the claim's).
                if let Some(name) = source["secretName"].as_str() {
                    let ns = source["secretNamespace"].as_str().unwrap_or(&claim_ns);
                    secrets.push((ns.to_owned(), name.to_owned()));
                }
            }
        }
        PvRefs { claim, secrets }
    }
}

/// The kinds of object the graph relates to nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secret,
    ConfigMap,
    PersistentVolumeClaim,
    PersistentVolume,
    ServiceAccount,
    VolumeAttachment,
    ResourceClaim,
}

impl Graph {
    /// Adds or replaces a pod (removed when it is not bound to a node).
    pub fn set_pod(&mut self, namespace: &str, name: &str, pod: Option<&Value>) {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(old) = self.pods.remove(&key) {
            if let Some(set) = self.pods_by_node.get_mut(&old.node) {
                set.remove(&key);
                if set.is_empty() {
                    self.pods_by_node.remove(&old.node);
                }
            }
        }
        let Some(refs) = pod.map(PodRefs::of).filter(|r| !r.node.is_empty()) else {
            return;
        };
        self.pods_by_node
            .entry(refs.node.clone())
            .or_default()
            .insert(key.clone());
        self.pods.insert(key, refs);
    }

    pub fn set_pv(&mut self, name: &str, pv: Option<&Value>) {
        match pv {
            Some(pv) => {
                self.pvs.insert(name.to_owned(), PvRefs::of(pv));
            }
            None => {
                self.pvs.remove(name);
            }
        }
    }

    pub fn set_attachment(&mut self, name: &str, va: Option<&Value>) {
        match va.and_then(|v| v["spec"]["nodeName"].as_str()) {
            Some(node) => {
                self.attachments.insert(name.to_owned(), node.to_owned());
            }
            None => {
                self.attachments.remove(name);
            }
        }
    }

    /// Whether a pod bound to `node` references the object.
    pub fn related(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        if kind == Kind::VolumeAttachment {
            return self.attachments.get(name).is_some_and(|n| n == node);
        }
        let Some(pods) = self.pods_by_node.get(node) else {
            return false;
        };
        let refs = pods
            .iter()
            .filter_map(|key| self.pods.get(key).map(|r| (key, r)));
        let node_pvcs = || {
            refs.clone()
                .flat_map(|((ns, _), r)| r.pvcs.iter().map(move |c| (ns.clone(), c.clone())))
        };
        let node_pvs = || {
            let claims: BTreeSet<NsName> = node_pvcs().collect();
            self.pvs
                .iter()
                .filter(move |(_, pv)| pv.claim.as_ref().is_some_and(|c| claims.contains(c)))
        };
        let in_ns =
            |f: &dyn Fn(&PodRefs) -> bool| refs.clone().any(|((ns, _), r)| ns == namespace && f(r));
        match kind {
            Kind::Secret => {
                in_ns(&|r| r.secrets.contains(name))
                    || node_pvs().any(|(_, pv)| {
                        pv.secrets
                            .iter()
                            .any(|(ns, n)| ns == namespace && n == name)
                    })
            }
            Kind::ConfigMap => in_ns(&|r| r.configmaps.contains(name)),
            Kind::PersistentVolumeClaim => in_ns(&|r| r.pvcs.contains(name)),
            Kind::ServiceAccount => in_ns(&|r| r.service_account == name),
            Kind::ResourceClaim => in_ns(&|r| r.resource_claims.contains(name)),
            Kind::PersistentVolume => node_pvs().any(|(pv, _)| pv == name),
            Kind::VolumeAttachment => false,
        }
    }
}

/// Upstream's node rules: what any node may do beyond the graph-checked objects.
static NODE_RULES: LazyLock<Vec<PolicyRule>> = LazyLock::new(|| {
    super::policy::CLUSTER_ROLES
        .iter()
        .find(|r| r.name == "system:node")
        .map(|r| r.rules.iter().map(|rule| rule.to_policy_rule()).collect())
        .unwrap_or_default()
});

/// The node a user is, when it is one (`system:node:<name>` in `system:nodes`).
pub fn node_name(user: &crate::auth::UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

fn no_relationship(node: &str) -> Verdict {
    Verdict::NoOpinion(format!(
        "no relationship found between node '{node}' and this object"
    ))
}

/// The Node authorizer's decision.
pub fn authorize(graph: &RwLock<Graph>, a: &Attributes) -> Verdict {
    let Some(node) = node_name(&a.user) else {
        return Verdict::NoOpinion(String::new());
    };
    if !a.resource_request {
        return rules(a);
    }
    let graph = || graph.read().unwrap_or_else(|e| e.into_inner());
    let read_object = |kind: Kind| {
        if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
            return Verdict::NoOpinion("can only read resources of this type".into());
        }
        if !a.subresource.is_empty() {
            return Verdict::NoOpinion("cannot read subresource".into());
        }
        if a.name.is_empty() {
            return Verdict::NoOpinion("No Object name found".into());
        }
        if graph().related(node, kind, &a.namespace, &a.name) {
            Verdict::Allow
        } else {
            no_relationship(node)
        }
    };
    let get_object = |kind: Kind| {
        if a.verb != "get" {
            return Verdict::NoOpinion("can only get individual resources of this type".into());
        }
        if !a.subresource.is_empty() {
            return Verdict::NoOpinion("cannot get subresource".into());
        }
        if a.name.is_empty() {
            return Verdict::NoOpinion("No Object name found".into());
        }
        if graph().related(node, kind, &a.namespace, &a.name) {
            Verdict::Allow
        } else {
            no_relationship(node)
        }
    };
    match (a.api_group.as_str(), a.resource.as_str()) {
        ("", "secrets") => read_object(Kind::Secret),
        ("", "configmaps") => read_object(Kind::ConfigMap),
        ("", "persistentvolumeclaims") if a.subresource == "status" => {
            if !matches!(a.verb.as_str(), "update" | "patch") {
                return Verdict::NoOpinion(
                    "can only get, update, or patch persistentvolumeclaims/status".into(),
                );
            }
            if graph().related(node, Kind::PersistentVolumeClaim, &a.namespace, &a.name) {
                Verdict::Allow
            } else {
                no_relationship(node)
            }
        }
        ("", "persistentvolumeclaims") => get_object(Kind::PersistentVolumeClaim),
        ("", "persistentvolumes") => get_object(Kind::PersistentVolume),
        ("storage.k8s.io", "volumeattachments") => get_object(Kind::VolumeAttachment),
        ("resource.k8s.io", "resourceclaims") => get_object(Kind::ResourceClaim),
        ("", "serviceaccounts") => {
            if a.verb != "create" || a.subresource != "token" || a.name.is_empty() {
                return Verdict::NoOpinion(
                    "can only create tokens for individual service accounts".into(),
                );
            }
            if graph().related(node, Kind::ServiceAccount, &a.namespace, &a.name) {
                Verdict::Allow
            } else {
                no_relationship(node)
            }
        }
        ("coordination.k8s.io", "leases") => {
            if !matches!(
                a.verb.as_str(),
                "get" | "create" | "update" | "patch" | "delete"
            ) {
                return Verdict::NoOpinion(
                    "can only get, create, update, patch, or delete a node lease".into(),
                );
            }
            if a.namespace != "kube-node-lease" {
                return Verdict::NoOpinion(
                    "can only access leases in the \"kube-node-lease\" system namespace".into(),
                );
            }
            if a.verb != "create" && a.name != node {
                return Verdict::NoOpinion(
                    "can only access node lease with the same name as the requesting node".into(),
                );
            }
            Verdict::Allow
        }
        _ => rules(a),
    }
}

fn rules(a: &Attributes) -> Verdict {
    if NODE_RULES.iter().any(|r| r.allows(a)) {
        Verdict::Allow
    } else {
        Verdict::NoOpinion(String::new())
    }
}

/// What the graph watches: (resource, store prefix).
fn sources() -> [(&'static str, &'static str); 3] {
    let prefix = |g: &str, p: &str| {
        rkube_api::resources::find(g, "v1", p)
            .expect("a built-in resource")
            .storage_prefix()
    };
    [
        ("pods", prefix("", "pods")),
        ("persistentvolumes", prefix("", "persistentvolumes")),
        (
            "volumeattachments",
            prefix("storage.k8s.io", "volumeattachments"),
        ),
    ]
}

fn apply(graph: &mut Graph, resource: &str, key: &str, prefix: &str, obj: Option<&Value>) {
    let Some(rest) = key.strip_prefix(prefix) else {
        return;
    };
    match resource {
        "pods" => {
            if let Some((ns, name)) = rest.split_once('/') {
                graph.set_pod(ns, name, obj);
            }
        }
        "persistentvolumes" => graph.set_pv(rest, obj),
        _ => graph.set_attachment(rest, obj),
    }
}

/// Loads the graph (before the server serves, so a restarted server's kubelets are
/// not refused) and keeps it current with one store watch per source.
pub async fn start(state: &Arc<ApiState>) {
    for (resource, prefix) in sources() {
        let mut revision = load(state, resource, prefix).await;
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                if let Some(rev) = revision {
                    follow(&st, resource, prefix, rev).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // The watch ended (compaction, store restart): list again.
                revision = load(&st, resource, prefix).await;
            }
        });
    }
}

/// Lists `prefix` into the graph, replacing what it held of that resource; returns the
/// revision of the list.
async fn load(
    state: &Arc<ApiState>,
    resource: &str,
    prefix: &str,
) -> Option<rkube_store::Revision> {
    let page = match state.store.list(prefix, ListOptions::default()).await {
        Ok(page) => page,
        Err(e) => {
            tracing::warn!(resource, error = %e, "node authorizer: list failed");
            return None;
        }
    };
    let mut g = state.authz.node_graph_mut();
    match resource {
        "pods" => {
            g.pods.clear();
            g.pods_by_node.clear();
        }
        "persistentvolumes" => g.pvs.clear(),
        _ => g.attachments.clear(),
    }
    for kv in &page.kvs {
        let obj = parse(resource, &kv.value);
        apply(&mut g, resource, &kv.key, prefix, obj.as_ref());
    }
    Some(page.revision)
}

/// Applies the store watch of `prefix` after `revision` until it ends.
async fn follow(
    state: &Arc<ApiState>,
    resource: &str,
    prefix: &str,
    revision: rkube_store::Revision,
) {
    let Ok(mut watch) = state.store.watch(prefix, revision).await else {
        return;
    };
    while let Some(Ok(msg)) = watch.recv().await {
        if let WatchResponse::Events(events) = msg {
            let mut g = state.authz.node_graph_mut();
            for e in events {
                let obj = match e.kind {
                    EventKind::Delete => None,
                    _ => parse(resource, &e.kv.value),
                };
                apply(&mut g, resource, &e.kv.key, prefix, obj.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::UserInfo;

    fn node_user(n: &str) -> UserInfo {
        UserInfo::new(
            format!("system:node:{n}"),
            vec![NODES_GROUP.into(), "system:authenticated".into()],
        )
    }

    fn pod(node: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "nodeName": node,
            "serviceAccountName": "runner",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "s", "secret": {"secretName": "mounted"}},
                {"name": "c", "configMap": {"name": "conf"}},
                {"name": "pr", "projected": {"sources": [{"secret": {"name": "proj-s"}}, {"configMap": {"name": "proj-c"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "x", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-cred"}}}
            ],
            "containers": [{"name": "a", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}}], "envFrom": [{"configMapRef": {"name": "env-c"}}]}],
            "resourceClaims": [{"name": "gpu", "resourceClaimName": "claim-1"}]
        }})
    }

    #[test]
    fn a_slim_parse_finds_every_reference_a_full_parse_does() {
        let mut full = pod("n1");
        full["spec"]["containers"][0]["image"] = json!("busybox");
        full["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
        full["spec"]["initContainers"] =
            json!([{"name": "i", "envFrom": [{"secretRef": {"name": "init-s"}}]}]);
        full["spec"]["ephemeralContainers"] = json!([{"name": "dbg", "env": [{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "dbg-c", "key": "k"}}}]}]);
        full["status"] = json!({"phase": "Running", "resourceClaimStatuses": [{"name": "x", "resourceClaimName": "claim-2"}]});
        let stored = serde_json::to_vec(&full).unwrap();
        let slim = parse("pods", &stored).unwrap();
        let refs = PodRefs::of(&slim);
        assert_eq!(refs, PodRefs::of(&full));
        assert!(refs.secrets.contains("init-s") && refs.configmaps.contains("dbg-c"));
        assert!(refs.resource_claims.contains("claim-2") && refs.pvcs.contains("p-e"));
        assert_eq!(refs.node, "n1");
        assert!(parse("pods", b"{\"spec\": 3, \"nodeName\": 1}").is_none());
        // Not scheduled: no parse, nothing related.
        assert!(parse("pods", br#"{"spec": {"containers": []}}"#).is_none());
        let mut unbound = full.clone();
        unbound["spec"].as_object_mut().unwrap().remove("nodeName");
        assert!(parse("pods", &serde_json::to_vec(&unbound).unwrap()).is_none());
        // A key of that name elsewhere only costs the parse.
        let mut env = unbound.clone();
        env["spec"]["containers"][0]["env"] = json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}, {"name": "nodeName"}]);
        env["metadata"]["labels"] = json!({"nodeName": "n1"});
        let slim = parse("pods", &serde_json::to_vec(&env).unwrap()).unwrap();
        assert_eq!(PodRefs::of(&slim).node, "");
    }

    #[test]
    fn graph_relates_a_nodes_pods_references() {
        let mut g = Graph::default();
        g.set_pod("ns", "p", Some(&pod("n1")));
        g.set_pv("pv1", Some(&json!({"spec": {"claimRef": {"namespace": "ns", "name": "data"}, "csi": {"driver": "d", "nodeStageSecretRef": {"name": "stage", "namespace": "storage"}}}})));
        g.set_pv(
            "pv2",
            Some(&json!({"spec": {"claimRef": {"namespace": "ns", "name": "other"}}})),
        );
        g.set_attachment("va1", Some(&json!({"spec": {"nodeName": "n1"}})));
        use Kind::*;
        for (kind, ns, name) in [
            (Secret, "ns", "mounted"),
            (Secret, "ns", "pull"),
            (Secret, "ns", "proj-s"),
            (Secret, "ns", "env-s"),
            (Secret, "ns", "csi-cred"),
            (Secret, "storage", "stage"),
            (ConfigMap, "ns", "conf"),
            (ConfigMap, "ns", "proj-c"),
            (ConfigMap, "ns", "env-c"),
            (PersistentVolumeClaim, "ns", "data"),
            (PersistentVolumeClaim, "ns", "p-e"),
            (PersistentVolume, "", "pv1"),
            (ServiceAccount, "ns", "runner"),
            (ResourceClaim, "ns", "claim-1"),
            (VolumeAttachment, "", "va1"),
        ] {
            assert!(g.related("n1", kind, ns, name), "{kind:?} {ns}/{name}");
            assert!(!g.related("n2", kind, ns, name), "n2 {kind:?} {ns}/{name}");
        }
        for (kind, ns, name) in [
            (Secret, "ns", "other"),
            (Secret, "elsewhere", "mounted"),
            (ConfigMap, "ns", "mounted"),
            (PersistentVolume, "", "pv2"),
            (ServiceAccount, "ns", "default"),
        ] {
            assert!(!g.related("n1", kind, ns, name), "{kind:?} {ns}/{name}");
        }
        // Moving, unbinding and deleting the pod follow.
        g.set_pod("ns", "p", Some(&pod("n2")));
        assert!(!g.related("n1", Secret, "ns", "mounted"));
        assert!(g.related("n2", Secret, "ns", "mounted"));
        g.set_pod("ns", "p", None);
        assert!(!g.related("n2", Secret, "ns", "mounted"));
        assert!(g.pods_by_node.is_empty());
        let mut unbound = pod("");
        unbound["spec"]["nodeName"] = json!(null);
        g.set_pod("ns", "p", Some(&unbound));
        assert!(g.pods.is_empty());
    }

    #[test]
    fn decisions() {
        let graph = RwLock::new(Graph::default());
        graph.write().unwrap().set_pod("ns", "p", Some(&pod("n1")));
        let decide = |user: UserInfo, method: &str, path: &str| {
            authorize(&graph, &Attributes::from_request(user, method, path, None))
        };
        let n1 = node_user("n1");
        assert_eq!(
            decide(n1.clone(), "GET", "/api/v1/namespaces/ns/secrets/mounted"),
            Verdict::Allow
        );
        assert_eq!(
            decide(n1.clone(), "GET", "/api/v1/namespaces/ns/secrets/other"),
            Verdict::NoOpinion("no relationship found between node 'n1' and this object".into())
        );
        assert_eq!(
            decide(n1.clone(), "GET", "/api/v1/namespaces/ns/secrets"),
            Verdict::NoOpinion("No Object name found".into())
        );
        assert_eq!(
            decide(
                n1.clone(),
                "DELETE",
                "/api/v1/namespaces/ns/secrets/mounted"
            ),
            Verdict::NoOpinion("can only read resources of this type".into())
        );
        assert_eq!(
            authorize(
                &graph,
                &Attributes::from_request(
                    n1.clone(),
                    "GET",
                    "/api/v1/namespaces/ns/configmaps",
                    Some("watch=1&fieldSelector=metadata.name%3Dconf")
                )
            ),
            Verdict::Allow
        );
        assert_eq!(
            decide(
                n1.clone(),
                "POST",
                "/api/v1/namespaces/ns/serviceaccounts/runner/token"
            ),
            Verdict::Allow
        );
        assert!(matches!(
            decide(
                n1.clone(),
                "POST",
                "/api/v1/namespaces/ns/serviceaccounts/default/token"
            ),
            Verdict::NoOpinion(_)
        ));
        assert_eq!(
            decide(
                n1.clone(),
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
            ),
            Verdict::Allow
        );
        assert_eq!(
            decide(
                n1.clone(),
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2"
            ),
            Verdict::NoOpinion(
                "can only access node lease with the same name as the requesting node".into()
            )
        );
        // The node rules.
        for (m, p) in [
            ("GET", "/api/v1/pods"),
            ("PATCH", "/api/v1/namespaces/ns/pods/p/status"),
            ("PATCH", "/api/v1/nodes/n1/status"),
            ("POST", "/api/v1/namespaces/ns/events"),
            (
                "POST",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            ),
            ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),
        ] {
            assert_eq!(decide(n1.clone(), m, p), Verdict::Allow, "{m} {p}");
        }
        assert_eq!(
            decide(n1.clone(), "DELETE", "/api/v1/namespaces/ns"),
            Verdict::NoOpinion(String::new())
        );
        // Not a node: no opinion, whatever the name says.
        let mut fake = node_user("n1");
        fake.groups.retain(|g| g != NODES_GROUP);
        assert_eq!(
            decide(fake, "GET", "/api/v1/namespaces/ns/secrets/mounted"),
            Verdict::NoOpinion(String::new())
        );
    }
}
