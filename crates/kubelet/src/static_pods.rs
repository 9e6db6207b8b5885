//! Static pods: manifests in `--pod-manifest-path` (YAML or JSON, one pod per file) that
//! the kubelet runs without the API server, re-read every `--file-check-frequency`.
//! Each gets upstream's name (`<name>-<node>`), a UID hashed from its file, the
//! `kubernetes.io/config.{hash,source,seen}` annotations and a mirror pod in the API
//! (annotation `kubernetes.io/config.mirror`, owned by the Node) that carries its status.
//! A mirror pod that is deleted or stale is replaced; removing the file stops the pod
//! and deletes its mirror.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::Api;
use serde_json::Value;

use crate::worker::Worker;
use crate::Shared;

/// Names the config hash of the static pod a mirror pod stands for.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Where a pod's config came from (`file` for static pods, `api` otherwise).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The hash of a static pod's config (its UID).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// When the kubelet first saw the config.
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// upstream's `--file-check-frequency` default.
pub const DEFAULT_FILE_CHECK_FREQUENCY: Duration = Duration::from_secs(20);
/// The deadline of each API call the static pod manager makes.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `pod` is a mirror pod (the kubelet does not run it: its static pod runs).
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR_ANNOTATION).is_some()
}

/// Whether `pod` came from a manifest file (and is not its mirror).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, SOURCE_ANNOTATION) == Some("file") && !is_mirror(pod)
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The static pod a manifest describes, named and annotated for `node`.
pub fn from_manifest(text: &str, path: &Path, node: &str, seen: &str) -> Result<Pod, String> {
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    if value["kind"] != "Pod" || value["apiVersion"] != "v1" {
        return Err(format!(
            "want apiVersion v1, kind Pod, got {}, {}",
            value["apiVersion"], value["kind"]
        ));
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("invalid pod: name is needed for the pod")?;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("host:{node}\nfile:{}\n{text}", path.display()).as_bytes(),
    );
    let hash: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    pod.metadata.name = Some(format!("{name}-{}", node.to_lowercase()));
    pod.metadata.namespace = Some(
        pod.metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
    );
    pod.metadata.uid = Some(hash.clone());
    pod.metadata.resource_version = None;
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HASH_ANNOTATION.into(), hash);
    annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(SEEN_ANNOTATION.into(), seen.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    // Static pods tolerate every NoExecute taint, as upstream makes them.
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    pod.status = None;
    Ok(pod)
}

/// The static pods of `dir` (files starting with `.` are skipped), by UID; files that do
/// not parse are logged and skipped.
pub fn read_dir(dir: &Path, node: &str, seen: &str) -> HashMap<String, Pod> {
    let mut pods = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "unable to read the pod manifest path");
            return pods;
        }
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let hidden = path
            .file_name()
            .is_none_or(|n| n.to_string_lossy().starts_with('.'));
        if hidden || !path.is_file() {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| from_manifest(&text, &path, node, seen));
        match parsed {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                pods.insert(uid, pod);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not process the manifest file")
            }
        }
    }
    pods
}

/// Runs the static pods of `dir`: reads it every `period` (or when poked: a mirror pod
/// changed), starts and stops their workers and keeps their mirror pods.
pub async fn run(shared: Arc<Shared>, dir: PathBuf, period: Duration) {
    let mut running: HashMap<String, Pod> = HashMap::new();
    let mut node_uid: Option<String> = None;
    loop {
        let seen = crate::time::now_rfc3339();
        let mut desired = read_dir(&dir, &shared.node_name, &seen);
        // A pod keeps the time it was first seen.
        for (uid, pod) in desired.iter_mut() {
            if let Some(old) = running.get(uid) {
                *pod = old.clone();
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|uid| !desired.contains_key(*uid))
            .cloned()
            .collect();
        for uid in gone {
            let Some(pod) = running.remove(&uid) else {
                continue;
            };
            stop(&shared, pod.clone());
            // A new version of the file under the same name brings its own mirror.
            if let Err(e) = delete_mirror(&shared, &pod, None).await {
                tracing::warn!(pod = %uid, error = %e, "cannot delete the mirror pod");
            }
        }
        for (uid, pod) in &desired {
            if !running.contains_key(uid) {
                start(&shared, pod.clone());
                running.insert(uid.clone(), pod.clone());
            }
        }
        if node_uid.is_none() {
            let nodes: Api<Node> = Api::all(shared.client.clone());
            if let Ok(Ok(n)) = tokio::time::timeout(API_TIMEOUT, nodes.get(&shared.node_name)).await
            {
                node_uid = n.metadata.uid;
            }
        }
        if let Some(node_uid) = &node_uid {
            for pod in running.values() {
                if let Err(e) = ensure_mirror(&shared, pod, node_uid).await {
                    tracing::warn!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), error = %e, "cannot sync the mirror pod");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shared.static_pods_changed.notified() => {}
        }
    }
}

fn start(shared: &Arc<Shared>, pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), pod.uid = %uid, "starting a static pod");
    shared
        .static_pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid.clone());
    let worker = Worker::spawn(shared.clone(), pod);
    shared
        .workers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid, worker);
}

/// Terminates a static pod whose file is gone: its worker gets it marked for deletion.
fn stop(shared: &Arc<Shared>, mut pod: Pod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), pod.uid = %uid, "stopping a static pod: its manifest is gone");
    pod.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    if let Some(w) = shared
        .workers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uid)
    {
        let _ = w.pod.send(Some(pod));
    }
    shared
        .static_pods
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&uid);
}

fn pods_api(shared: &Shared, pod: &Pod) -> Api<Pod> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Api::namespaced(shared.client.clone(), ns)
}

/// Deletes `pod`'s mirror (the one with `uid`, or whichever has its name and its hash).
async fn delete_mirror(shared: &Shared, pod: &Pod, uid: Option<String>) -> Result<(), String> {
    let api = pods_api(shared, pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = match uid {
        Some(u) => u,
        None => match tokio::time::timeout(API_TIMEOUT, api.get_opt(&name)).await {
            Ok(Ok(Some(m))) if annotation(&m, MIRROR_ANNOTATION) == pod.metadata.uid.as_deref() => {
                m.metadata.uid.unwrap_or_default()
            }
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("reading the mirror pod timed out".into()),
        },
    };
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    match tokio::time::timeout(API_TIMEOUT, api.delete(&name, &params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 || e.code == 409 => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("deleting the mirror pod timed out".into()),
    }
}

/// Creates `pod`'s mirror when it is missing, and replaces one that is being deleted or
/// stands for another version of the file.
async fn ensure_mirror(shared: &Shared, pod: &Pod, node_uid: &str) -> Result<(), String> {
    let api = pods_api(shared, pod);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hash = pod.metadata.uid.clone().unwrap_or_default();
    let current = match tokio::time::timeout(API_TIMEOUT, api.get_opt(&name)).await {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(_) => return Err("reading the mirror pod timed out".into()),
    };
    if let Some(m) = current {
        let ok = m.metadata.deletion_timestamp.is_none()
            && annotation(&m, MIRROR_ANNOTATION) == Some(hash.as_str());
        if ok {
            return Ok(());
        }
        tracing::info!(pod = %name, "deleting a mirror pod that is stale or being deleted");
        delete_mirror(shared, pod, m.metadata.uid.clone()).await?;
    }
    let mut mirror = pod.clone();
    mirror.metadata.uid = None;
    mirror
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MIRROR_ANNOTATION.into(), hash);
    mirror.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: shared.node_name.clone(),
        uid: node_uid.into(),
        controller: Some(true),
        ..Default::default()
    }]);
    tracing::info!(pod = %name, "creating a mirror pod");
    match tokio::time::timeout(API_TIMEOUT, api.create(&PostParams::default(), &mirror)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(e))) if e.code == 409 => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("creating the mirror pod timed out".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_named_annotated_static_pods() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let p = from_manifest(yaml, Path::new("/m/web.yaml"), "Node-1", "t").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(annotation(&p, HASH_ANNOTATION), Some(uid.as_str()));
        assert_eq!(annotation(&p, SOURCE_ANNOTATION), Some("file"));
        assert!(is_static(&p) && !is_mirror(&p));
        let spec = p.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        assert_eq!(
            spec.tolerations.unwrap()[0].effect.as_deref(),
            Some("NoExecute")
        );

        // JSON works; another node or content gives another UID.
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"kube-system"},"spec":{"containers":[]}}"#;
        let j = from_manifest(json, Path::new("/m/web.json"), "Node-1", "t").unwrap();
        assert_eq!(j.metadata.namespace.as_deref(), Some("kube-system"));
        assert_ne!(j.metadata.uid.as_deref(), Some(uid.as_str()));
        let other = from_manifest(yaml, Path::new("/m/web.yaml"), "node-2", "t").unwrap();
        assert_ne!(other.metadata.uid.as_deref(), Some(uid.as_str()));

        for (bad, want) in [
            (
                "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
                "kind Pod",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {}\n",
                "name is needed",
            ),
            ("{", "EOF"),
        ] {
            let e = from_manifest(bad, Path::new("/m/x"), "n", "t").unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn read_dir_skips_hidden_and_broken_files() {
        let d = tempfile::tempdir().unwrap();
        let pod = |n: &str| {
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {n}\nspec:\n  containers: []\n")
        };
        std::fs::write(d.path().join("a.yaml"), pod("a")).unwrap();
        std::fs::write(d.path().join(".b.yaml"), pod("b")).unwrap();
        std::fs::write(d.path().join("c.yaml"), "kind: [").unwrap();
        let pods = read_dir(d.path(), "n1", "t");
        let names: Vec<_> = pods
            .values()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a-n1"]);
    }
}
