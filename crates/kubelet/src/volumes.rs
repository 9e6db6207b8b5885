//! Pod volumes on the node, under `<data-dir>/pods/<uid>/volumes`: emptyDir, hostPath,
//! configMap, secret, downwardAPI and projected (with the service-account token from
//! TokenRequest), read through the API when a container starts; and the CRI mounts of a
//! container's volumeMounts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use crate::cri::api;
use crate::pod_config::pod_ref;

/// A pod's directory on the node.
pub fn pod_dir(pods_dir: &Path, pod: &Pod) -> PathBuf {
    pods_dir.join(pod_ref(pod).2)
}

/// Writes `files` (relative path → content) into `dir`, replacing what was there.
fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (rel, content) in files {
        if rel.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(format!("invalid path {rel:?}"));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Keys to files: all keys, or the listed `items` (key → path).
fn project(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    what: &str,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    match items {
        None => Ok(data),
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|v| (i.path.clone(), v.clone()))
                    .ok_or_else(|| match what {
                        "secret" => format!("references non-existent secret key: {}", i.key),
                        _ => format!("configmap references non-existent config key: {}", i.key),
                    })
            })
            .collect(),
    }
}

async fn config_map_files(
    client: &Client,
    ns: &str,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(cm)) => {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            project(data, items, "configmap")
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("configmap \"{name}\" not found")),
        Err(e) => Err(e.to_string()),
    }
}

async fn secret_files(
    client: &Client,
    ns: &str,
    name: &str,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(s)) => {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .string_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            project(data, items, "secret")
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("secret \"{name}\" not found")),
        Err(e) => Err(e.to_string()),
    }
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let (name, ns, uid) = pod_ref(pod);
    let map_text = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    items
        .iter()
        .map(|i| {
            let Some(f) = &i.field_ref else {
                return Err(format!(
                    "downwardAPI item {}: only fieldRef is supported",
                    i.path
                ));
            };
            let value = match f.field_path.as_str() {
                "metadata.name" => name.to_owned(),
                "metadata.namespace" => ns.to_owned(),
                "metadata.uid" => uid.to_owned(),
                "metadata.labels" => map_text(&pod.metadata.labels),
                "metadata.annotations" => map_text(&pod.metadata.annotations),
                other => return Err(format!("unsupported fieldPath {other}")),
            };
            Ok((i.path.clone(), value.into_bytes()))
        })
        .collect()
}

/// A bound service-account token for the pod (TokenRequest).
async fn token(
    client: &Client,
    pod: &Pod,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<Vec<u8>, String> {
    let (name, ns, uid) = pod_ref(pod);
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let mut spec = json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": name, "uid": uid},
                          "expirationSeconds": expiration.unwrap_or(3607)});
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([a]);
    }
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let resp: serde_json::Value = api
        .create_subresource("token", &sa, &PostParams::default(), &body)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    resp["status"]["token"]
        .as_str()
        .map(|t| t.as_bytes().to_vec())
        .ok_or_else(|| "failed to fetch token: no token in the answer".into())
}

/// Sets up volume `v` of `pod`; its host path.
async fn set_up(client: &Client, pod: &Pod, v: &Volume, base: &Path) -> Result<PathBuf, String> {
    let ns = pod_ref(pod).1;
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(|e| e.to_string())?,
            "FileOrCreate" if !path.exists() => {
                std::fs::write(&path, b"").map_err(|e| e.to_string())?
            }
            "Directory" if !path.is_dir() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    h.path
                ))
            }
            "File" if !path.is_file() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a file",
                    h.path
                ))
            }
            _ => {}
        }
        return Ok(path);
    }
    let dir = |kind: &str| base.join(kind).join(&v.name);
    if v.empty_dir.is_some() {
        let d = dir("kubernetes.io~empty-dir");
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        return Ok(d);
    }
    let (kind, files) = if let Some(cm) = &v.config_map {
        let files = config_map_files(
            client,
            ns,
            &cm.name,
            cm.items.as_ref(),
            cm.optional.unwrap_or(false),
        )
        .await?;
        ("kubernetes.io~configmap", files)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let files = secret_files(
            client,
            ns,
            &name,
            s.items.as_ref(),
            s.optional.unwrap_or(false),
        )
        .await?;
        ("kubernetes.io~secret", files)
    } else if let Some(d) = &v.downward_api {
        (
            "kubernetes.io~downward-api",
            downward_files(pod, d.items.as_deref().unwrap_or_default())?,
        )
    } else if let Some(p) = &v.projected {
        let mut files = BTreeMap::new();
        for src in p.sources.iter().flatten() {
            if let Some(cm) = &src.config_map {
                files.extend(
                    config_map_files(
                        client,
                        ns,
                        &cm.name,
                        cm.items.as_ref(),
                        cm.optional.unwrap_or(false),
                    )
                    .await?,
                );
            }
            if let Some(s) = &src.secret {
                files.extend(
                    secret_files(
                        client,
                        ns,
                        &s.name,
                        s.items.as_ref(),
                        s.optional.unwrap_or(false),
                    )
                    .await?,
                );
            }
            if let Some(d) = &src.downward_api {
                files.extend(downward_files(pod, d.items.as_deref().unwrap_or_default())?);
            }
            if let Some(t) = &src.service_account_token {
                let tok = token(client, pod, t.audience.as_deref(), t.expiration_seconds).await?;
                files.insert(t.path.clone(), tok);
            }
        }
        ("kubernetes.io~projected", files)
    } else {
        return Err("unsupported volume type".into());
    };
    let d = dir(kind);
    write_files(&d, &files)?;
    Ok(d)
}

/// The ConfigMaps and Secrets container `c`'s environment reads, for
/// [`crate::pod_config::Downward`]; a missing one that is not optional is an error.
pub async fn env_data(
    client: &Client,
    pod: &Pod,
    c: &Container,
) -> Result<
    (
        HashMap<String, BTreeMap<String, String>>,
        HashMap<String, BTreeMap<String, String>>,
    ),
    String,
> {
    let ns = pod_ref(pod).1;
    let (cms, secrets) = crate::pod_config::env_sources(c);
    let text = |m: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
        m.into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    };
    let mut out = (HashMap::new(), HashMap::new());
    for (name, optional) in cms {
        if let std::collections::hash_map::Entry::Vacant(e) = out.0.entry(name) {
            let data = config_map_files(client, ns, e.key(), None, optional).await?;
            e.insert(text(data));
        }
    }
    for (name, optional) in secrets {
        if let std::collections::hash_map::Entry::Vacant(e) = out.1.entry(name) {
            let data = secret_files(client, ns, e.key(), None, optional).await?;
            e.insert(text(data));
        }
    }
    Ok(out)
}

/// Sets up the volumes container `c` mounts; volume name → host path, or
/// upstream's `MountVolume.SetUp failed for volume "<name>" : <cause>`.
pub async fn prepare(
    client: &Client,
    pod: &Pod,
    c: &Container,
    pods_dir: &Path,
) -> Result<HashMap<String, PathBuf>, String> {
    let base = pod_dir(pods_dir, pod).join("volumes");
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut paths = HashMap::new();
    for m in c.volume_mounts.iter().flatten() {
        if paths.contains_key(&m.name) {
            continue;
        }
        let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
            return Err(format!("volume {:?} is not defined in the pod", m.name));
        };
        let path = set_up(client, pod, v, &base)
            .await
            .map_err(|e| format!("MountVolume.SetUp failed for volume \"{}\" : {e}", v.name))?;
        paths.insert(v.name.clone(), path);
    }
    Ok(paths)
}

/// The CRI mounts of `c`'s volumeMounts.
pub fn mounts(c: &Container, paths: &HashMap<String, PathBuf>) -> Vec<api::Mount> {
    c.volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let mut host = paths.get(&m.name)?.clone();
            if let Some(sub) = m
                .sub_path
                .as_deref()
                .filter(|s| !s.is_empty() && !s.contains(".."))
            {
                host = host.join(sub);
                if !host.exists() {
                    let _ = std::fs::create_dir_all(&host);
                }
            }
            Some(api::Mount {
                container_path: m.mount_path.clone(),
                host_path: host.display().to_string(),
                readonly: m.read_only.unwrap_or(false),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_items_and_refuses_escapes() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let items = vec![KeyToPath {
            key: "a".into(),
            path: "dir/x".into(),
            ..Default::default()
        }];
        let files = project(data.clone(), Some(&items), "configmap").unwrap();
        assert_eq!(files, BTreeMap::from([("dir/x".to_owned(), b"1".to_vec())]));
        let missing = vec![KeyToPath {
            key: "z".into(),
            path: "z".into(),
            ..Default::default()
        }];
        assert_eq!(
            project(data, Some(&missing), "configmap").unwrap_err(),
            "configmap references non-existent config key: z"
        );
        let dir = tempfile::tempdir().unwrap();
        let bad = BTreeMap::from([("../x".to_owned(), vec![])]);
        assert!(write_files(&dir.path().join("v"), &bad).is_err());
    }

    #[test]
    fn downward_files_render_labels() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "a"}}}),
        )
        .unwrap();
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]))
        .unwrap();
        let files = downward_files(&pod, &items).unwrap();
        assert_eq!(files["labels"], b"app=\"a\"\n");
        assert_eq!(files["name"], b"p");
    }
}
