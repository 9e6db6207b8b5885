//! NodeRestriction: a kubelet (`system:node:<name>` in `system:nodes`) may only change
//! its own Node (not its taints, nor labels outside the kubelet's set), the status of
//! pods bound to it, mirror pods bound to it, and its own Lease; it may only delete or
//! evict pods bound to it and request tokens bound to them.

use std::sync::Arc;

use serde_json::Value;

use super::{lookup, resource, Operation, Plugin, Request, Verdict};
use crate::error::ApiError;
use crate::meta::labels;

const NODE_PREFIX: &str = "system:node:";
const NODES_GROUP: &str = "system:nodes";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Labels a kubelet may set on its Node (upstream's `kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

pub struct NodeRestriction;

/// The node a user is, if it is one (`Some("")`: a node user without a name).
fn node_identity(r: &Request) -> Option<&str> {
    let name = r.user.name.strip_prefix(NODE_PREFIX)?;
    r.user
        .groups
        .iter()
        .any(|g| g == NODES_GROUP)
        .then_some(name)
}

impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            let Some(node) = node_identity(r) else {
                return Ok(());
            };
            if node.is_empty() {
                return Err(r.forbidden(format!(
                    "could not determine node from user \"{}\"",
                    r.user.name
                )));
            }
            let node = node.to_owned();
            match (r.info.group, r.info.plural) {
                ("", "pods") => match r.subresource.as_str() {
                    "" => admit_pod(&node, r).await,
                    "status" => admit_pod_status(&node, r),
                    "eviction" => admit_pod_eviction(&node, r).await,
                    other => Err(r.forbidden(format!(
                        "unexpected pod subresource \"{other}\", only 'status' and 'eviction' are allowed"
                    ))),
                },
                ("", "nodes") => admit_node(&node, r),
                ("", "persistentvolumeclaims") if r.subresource != "status" => {
                    Err(r.forbidden("may only update PVC status"))
                }
                ("", "serviceaccounts") => admit_token_request(&node, r).await,
                ("coordination.k8s.io", "leases") => admit_lease(&node, r),
                ("storage.k8s.io", "csinodes") => {
                    if subject_name(r) != node {
                        return Err(r.forbidden(
                            "can only access CSINode with the same name as the requesting node",
                        ));
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        })
    }
}

/// The name of the object a request is about (a create's from its object).
fn subject_name(r: &Request) -> String {
    if r.operation == Operation::Create {
        if let Some(obj) = &r.object {
            return crate::meta::meta_str(obj, "name").unwrap_or("").to_owned();
        }
    }
    r.name.clone()
}

/// The pod named `name` in the request's namespace, or 404.
async fn existing_pod(r: &Request, name: &str) -> Result<Arc<Value>, ApiError> {
    let pods = resource("", "v1", "pods");
    lookup(&r.state, pods, Some(&r.namespace), name)
        .await?
        .ok_or_else(|| ApiError::not_found(pods, name))
}

fn node_name_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or("")
}

async fn admit_pod(node: &str, r: &Request) -> Result<(), ApiError> {
    match r.operation {
        Operation::Create => {
            let pod = r.object.as_ref().expect("a create has an object");
            check_mirror_pod(node, pod).map_err(|why| r.forbidden(why))?;
            let owner = &pod["metadata"]["ownerReferences"][0];
            let nodes = resource("", "v1", "nodes");
            let Some(node_obj) = lookup(&r.state, nodes, None, node).await? else {
                return Err(ApiError::not_found(nodes, node));
            };
            let want = node_obj["metadata"]["uid"].as_str().unwrap_or("");
            let got = owner["uid"].as_str().unwrap_or("");
            if got != want {
                return Err(r.forbidden(format!(
                    "node {node} UID mismatch: expected {got} got {want}"
                )));
            }
            Ok(())
        }
        Operation::Delete => {
            let pod = existing_pod(r, &r.name).await?;
            if node_name_of(&pod) != node {
                return Err(r.forbidden(format!(
                    "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        other => Err(r.forbidden(format!(
            "unexpected operation \"{}\", node \"{node}\" can only create and delete mirror pods",
            other.as_str()
        ))),
    }
}

/// The rules for a mirror pod a node creates (all but the owner's UID).
fn check_mirror_pod(node: &str, pod: &Value) -> Result<(), String> {
    if !pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
        return Err(format!("pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"));
    }
    if node_name_of(pod) != node {
        return Err(format!(
            "node \"{node}\" can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match owners.as_slice() {
        [] => {
            return Err(format!(
                "node \"{node}\" can only create pods with an owner reference set to itself"
            ))
        }
        [owner] => {
            if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
                return Err(format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                ));
            }
            if owner["controller"] != true {
                return Err(format!("node \"{node}\" can only create pods with a controller owner reference set to itself"));
            }
            if owner["blockOwnerDeletion"] == true {
                return Err(format!(
                    "node \"{node}\" must not set blockOwnerDeletion on an owner reference"
                ));
            }
        }
        _ => {
            return Err(format!(
                "node \"{node}\" can only create pods with a single owner reference set to itself"
            ))
        }
    }
    let spec = &pod["spec"];
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(format!(
            "node \"{node}\" can not create pods that reference a service account"
        ));
    }
    let references = |kind: &str| references(spec, kind);
    if references("secret") {
        return Err(format!(
            "node \"{node}\" can not create pods that reference secrets"
        ));
    }
    if references("configMap") {
        return Err(format!(
            "node \"{node}\" can not create pods that reference configmaps"
        ));
    }
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    if volumes.iter().any(|v| {
        v["projected"]["sources"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| !s["clusterTrustBundle"].is_null()))
    }) {
        return Err(format!(
            "node \"{node}\" can not create pods that reference clustertrustbundles"
        ));
    }
    if volumes
        .iter()
        .any(|v| !v["persistentVolumeClaim"].is_null())
    {
        return Err(format!(
            "node \"{node}\" can not create pods that reference persistentvolumeclaims"
        ));
    }
    Ok(())
}

/// Whether a pod spec references a Secret (`kind` = `secret`) or ConfigMap
/// (`configMap`): volumes, projected sources, env and envFrom, image pull secrets.
fn references(spec: &Value, kind: &str) -> bool {
    if kind == "secret"
        && spec["imagePullSecrets"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    {
        return true;
    }
    let volumes = spec["volumes"].as_array().into_iter().flatten();
    let in_volumes = volumes.clone().any(|v| !v[kind].is_null())
        || volumes.into_iter().any(|v| {
            v["projected"]["sources"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| !s[kind].is_null()))
        });
    let (env_ref, from_ref) = match kind {
        "secret" => ("secretKeyRef", "secretRef"),
        _ => ("configMapKeyRef", "configMapRef"),
    };
    let in_containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().into_iter().flatten())
        .any(|c| {
            c["env"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| !e["valueFrom"][env_ref].is_null()))
                || c["envFrom"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| !e[from_ref].is_null()))
        });
    in_volumes || in_containers
}

fn admit_pod_status(node: &str, r: &Request) -> Result<(), ApiError> {
    if r.operation != Operation::Update {
        return Err(r.forbidden(format!("unexpected operation \"{}\"", r.operation.as_str())));
    }
    let (Some(old), Some(new)) = (&r.old, &r.object) else {
        return Ok(());
    };
    if node_name_of(old) != node {
        return Err(r.forbidden(format!(
            "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
        )));
    }
    if labels(old) != labels(new) {
        return Err(r.forbidden(format!(
            "node \"{node}\" cannot update labels through pod status"
        )));
    }
    if old["status"]["resourceClaimStatuses"] != new["status"]["resourceClaimStatuses"] {
        return Err(r.forbidden(format!(
            "node \"{node}\" cannot update resource claim statues"
        )));
    }
    Ok(())
}

async fn admit_pod_eviction(node: &str, r: &Request) -> Result<(), ApiError> {
    if r.operation != Operation::Create {
        return Err(r.forbidden(format!("unexpected operation {}", r.operation.as_str())));
    }
    let pod = existing_pod(r, &r.name).await?;
    if node_name_of(&pod) != node {
        return Err(r.forbidden(format!(
            "node {node} can only evict pods with spec.nodeName set to itself"
        )));
    }
    Ok(())
}

/// Label keys whose values differ between `a` and `b`.
fn modified_labels(a: &Value, b: Option<&Value>) -> Vec<String> {
    let a = labels(a);
    let b = b.map(labels).unwrap_or_default();
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .chain(b.iter().filter(|(k, v)| a.get(*k) != Some(*v)))
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Labels a kubelet may not add, change or remove.
fn forbidden_labels(modified: Vec<String>) -> Vec<String> {
    let in_namespace = |ns: &str, base: &str| ns == base || ns.ends_with(&format!(".{base}"));
    modified
        .into_iter()
        .filter(|label| {
            let ns = label.split_once('/').map_or("", |(ns, _)| ns);
            let restricted = in_namespace(ns, "node-restriction.kubernetes.io");
            let kubernetes = in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io");
            let kubelet = KUBELET_LABELS.contains(&label.as_str())
                || KUBELET_LABEL_NAMESPACES.iter().any(|b| in_namespace(ns, b));
            restricted || (kubernetes && !kubelet)
        })
        .collect()
}

fn admit_node(node: &str, r: &Request) -> Result<(), ApiError> {
    let requested = subject_name(r);
    if requested != node {
        return Err(r.forbidden(format!(
            "node \"{node}\" is not allowed to modify node \"{requested}\""
        )));
    }
    match (r.operation, &r.object) {
        (Operation::Create, Some(obj)) => {
            if !obj["spec"]["configSource"].is_null() {
                return Err(r.forbidden(format!(
                    "node \"{node}\" is not allowed to create pods with a non-nil configSource"
                )));
            }
            let forbidden = forbidden_labels(modified_labels(obj, None));
            if !forbidden.is_empty() {
                return Err(r.forbidden(format!(
                    "node \"{node}\" is not allowed to set the following labels: {}",
                    forbidden.join(", ")
                )));
            }
        }
        (Operation::Update, Some(obj)) => {
            let old = r.old.as_ref().expect("an update has the old object");
            let source = &obj["spec"]["configSource"];
            if !source.is_null() && *source != old["spec"]["configSource"] {
                return Err(r.forbidden(format!(
                    "node \"{node}\" is not allowed to update configSource to a new non-nil configSource"
                )));
            }
            let taints = |o: &Value| o["spec"]["taints"].as_array().cloned().unwrap_or_default();
            if taints(obj) != taints(old) {
                return Err(r.forbidden(format!("node \"{node}\" is not allowed to modify taints")));
            }
            let forbidden = forbidden_labels(modified_labels(obj, Some(old)));
            if !forbidden.is_empty() {
                return Err(r.forbidden(format!(
                    "is not allowed to modify labels: {}",
                    forbidden.join(", ")
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

async fn admit_token_request(node: &str, r: &Request) -> Result<(), ApiError> {
    if r.operation != Operation::Create || r.subresource != "token" {
        return Ok(());
    }
    let Some(request) = &r.object else {
        return Ok(());
    };
    let reference = &request["spec"]["boundObjectRef"];
    if reference["apiVersion"] != "v1"
        || reference["kind"] != "Pod"
        || reference["name"].as_str().is_none_or(str::is_empty)
    {
        return Err(r.forbidden("node requested token not bound to a pod"));
    }
    let uid = reference["uid"].as_str().unwrap_or("");
    if uid.is_empty() {
        return Err(r.forbidden("node requested token with a pod binding without a uid"));
    }
    let pod = existing_pod(r, reference["name"].as_str().unwrap_or("")).await?;
    if pod["metadata"]["uid"] != uid {
        return Err(r.forbidden(format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated")));
    }
    if node_name_of(&pod) != node {
        return Err(
            r.forbidden("node requested token bound to a pod scheduled on a different node")
        );
    }
    Ok(())
}

fn admit_lease(node: &str, r: &Request) -> Result<(), ApiError> {
    if r.namespace != NODE_LEASE_NAMESPACE {
        return Err(r.forbidden(format!(
            "can only access leases in the \"{NODE_LEASE_NAMESPACE}\" system namespace"
        )));
    }
    if subject_name(r) != node {
        return Err(
            r.forbidden("can only access node lease with the same name as the requesting node")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mirror_pods() {
        let owner = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u", "controller": true}]);
        let pod = |annotated: bool, node: &str, owners: Value, spec_extra: Value| {
            let mut spec = json!({"nodeName": node, "containers": [{"name": "c"}]});
            for (k, v) in spec_extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let mut meta = json!({"name": "p", "ownerReferences": owners});
            if annotated {
                meta["annotations"] = json!({MIRROR_ANNOTATION: "x"});
            }
            json!({"metadata": meta, "spec": spec})
        };
        let cases = [
            (pod(true, "n1", owner.clone(), json!({})), None),
            (pod(false, "n1", owner.clone(), json!({})), Some("pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods")),
            (pod(true, "n2", owner.clone(), json!({})), Some("node \"n1\" can only create pods with spec.nodeName set to itself")),
            (pod(true, "n1", json!([]), json!({})), Some("node \"n1\" can only create pods with an owner reference set to itself")),
            (pod(true, "n1", owner.clone(), json!({"serviceAccountName": "sa"})), Some("node \"n1\" can not create pods that reference a service account")),
            (pod(true, "n1", owner.clone(), json!({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]})), Some("node \"n1\" can not create pods that reference secrets")),
            (pod(true, "n1", owner.clone(), json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "x"}}]}]})), Some("node \"n1\" can not create pods that reference configmaps")),
            (pod(true, "n1", owner, json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "x"}}]})), Some("node \"n1\" can not create pods that reference persistentvolumeclaims")),
        ];
        for (p, want) in cases {
            assert_eq!(check_mirror_pod("n1", &p).err().as_deref(), want, "{p}");
        }
    }

    #[test]
    fn node_labels() {
        let old = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n1", "team": "a"}}});
        let new = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n1", "team": "b", "node-role.kubernetes.io/master": "", "node.kubernetes.io/exclude": "x", "node-restriction.kubernetes.io/pool": "p", "topology.kubernetes.io/zone": "z"}}});
        assert_eq!(
            forbidden_labels(modified_labels(&new, Some(&old))),
            vec![
                "node-restriction.kubernetes.io/pool",
                "node-role.kubernetes.io/master"
            ]
        );
    }
}
