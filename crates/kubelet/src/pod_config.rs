//! Pod spec → CRI configs (pure): the sandbox config, each container's config with its
//! environment, command, resources and the labels by which the kubelet finds its
//! containers again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cri::api;

pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
const GRACE_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";

/// CRI namespace modes.
const NS_POD: i32 = 0;
const NS_CONTAINER: i32 = 1;
const NS_NODE: i32 = 2;

/// The name, namespace and uid of a pod.
pub fn pod_ref(pod: &Pod) -> (&str, &str, &str) {
    let m = &pod.metadata;
    (
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or("default"),
        m.uid.as_deref().unwrap_or_default(),
    )
}

/// Whether the pod uses the node's network namespace.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's log directory (upstream: `/var/log/pods/<ns>_<name>_<uid>`).
pub fn log_directory(logs_root: &Path, pod: &Pod) -> std::path::PathBuf {
    let (name, ns, uid) = pod_ref(pod);
    logs_root.join(format!("{ns}_{name}_{uid}"))
}

/// The sandbox config of a pod.
pub fn sandbox_config(pod: &Pod, attempt: u32, logs_root: &Path) -> api::PodSandboxConfig {
    let (name, ns, uid) = pod_ref(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME_LABEL.into(), name.into());
    labels.insert(POD_NAMESPACE_LABEL.into(), ns.into());
    labels.insert(POD_UID_LABEL.into(), uid.into());
    let hostname = if host_network(pod) {
        String::new()
    } else {
        spec.hostname.clone().unwrap_or_else(|| name.to_owned())
    };
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| api::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp as i32,
                Some("SCTP") => api::Protocol::Sctp as i32,
                _ => api::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(logs_root, pod).display().to_string(),
        dns_config: None,
        port_mappings,
        labels,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: if host_network(pod) { NS_NODE } else { NS_POD },
                    pid: if spec.host_pid == Some(true) {
                        NS_NODE
                    } else {
                        NS_CONTAINER
                    },
                    ipc: if spec.host_ipc == Some(true) {
                        NS_NODE
                    } else {
                        NS_POD
                    },
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        windows: None,
    }
}

/// What env vars can read besides the pod: its IPs, and the ConfigMaps and Secrets
/// (name → data; Secrets decoded) they reference, fetched beforehand.
#[derive(Debug, Clone, Default)]
pub struct Downward {
    pub pod_ip: String,
    pub host_ip: String,
    pub config_maps: HashMap<String, BTreeMap<String, String>>,
    pub secrets: HashMap<String, BTreeMap<String, String>>,
}

/// A referenced ConfigMap or Secret: its name and whether the reference is optional.
pub type Source = (String, bool);

/// The ConfigMaps and Secrets container `c`'s environment references, with whether
/// each reference is optional: (config maps, secrets).
pub fn env_sources(c: &Container) -> (Vec<Source>, Vec<Source>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push((r.name.clone(), r.optional.unwrap_or(false)));
        }
        if let Some(r) = &from.secret_ref {
            secrets.push((r.name.clone(), r.optional.unwrap_or(false)));
        }
    }
    for var in c.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            cms.push((r.name.clone(), r.optional.unwrap_or(false)));
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.push((r.name.clone(), r.optional.unwrap_or(false)));
        }
    }
    (cms, secrets)
}

/// Resolves one env var: `Ok(None)` when an optional source lacks it.
fn env_value(pod: &Pod, var: &EnvVar, downward: &Downward) -> Result<Option<String>, String> {
    if let Some(v) = &var.value {
        return Ok(Some(v.clone()));
    }
    let ns = pod_ref(pod).1;
    let Some(from) = var.value_from.as_ref() else {
        return Ok(Some(String::new()));
    };
    let key_ref = |maps: &HashMap<String, BTreeMap<String, String>>,
                   name: &str,
                   key: &str,
                   optional: bool,
                   kind: &str| {
        match maps.get(name).and_then(|m| m.get(key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {kind} {ns}/{name}")),
        }
    };
    if let Some(r) = &from.config_map_key_ref {
        return key_ref(
            &downward.config_maps,
            &r.name,
            &r.key,
            r.optional.unwrap_or(false),
            "ConfigMap",
        );
    }
    if let Some(r) = &from.secret_key_ref {
        return key_ref(
            &downward.secrets,
            &r.name,
            &r.key,
            r.optional.unwrap_or(false),
            "Secret",
        );
    }
    Ok(field_value(pod, var, downward))
}

/// A `fieldRef` env var; `None` for sources this kubelet does not read yet.
fn field_value(pod: &Pod, var: &EnvVar, downward: &Downward) -> Option<String> {
    let field = var.value_from.as_ref()?.field_ref.as_ref()?;
    let (name, ns, uid) = pod_ref(pod);
    let spec = pod.spec.as_ref();
    Some(match field.field_path.as_str() {
        "metadata.name" => name.into(),
        "metadata.namespace" => ns.into(),
        "metadata.uid" => uid.into(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => downward.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => downward.host_ip.clone(),
        path => {
            let key = path
                .strip_prefix("metadata.labels['")
                .map(|k| (k, &pod.metadata.labels))
                .or_else(|| {
                    path.strip_prefix("metadata.annotations['")
                        .map(|k| (k, &pod.metadata.annotations))
                });
            let (k, map) = key?;
            map.as_ref()?.get(k.strip_suffix("']")?)?.clone()
        }
    })
}

/// Expands `$(VAR)` references as upstream does (`$$` escapes; unknown stay verbatim).
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in order, with `$(VAR)` references expanded.
pub fn environment(
    pod: &Pod,
    c: &Container,
    downward: &Downward,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => downward.config_maps.get(&r.name),
            (_, Some(r)) => downward.secrets.get(&r.name),
            _ => None,
        };
        for (k, v) in data.into_iter().flatten() {
            let name = format!("{prefix}{k}");
            vars.retain(|(n, _)| n != &name);
            vars.push((name, v.clone()));
        }
    }
    for var in c.env.iter().flatten() {
        if let Some(v) = env_value(pod, var, downward)? {
            let v = if var.value.is_some() {
                expand(&v, &vars)
            } else {
                v
            };
            vars.retain(|(k, _)| k != &var.name);
            vars.push((var.name.clone(), v));
        }
    }
    Ok(vars)
}

fn quantity_millis(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse().ok();
    }
    s.parse::<f64>().ok().map(|v| (v * 1000.0).round() as i64)
}

/// Bytes of a memory quantity (decimal and binary suffixes).
pub fn quantity_bytes(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in SUFFIXES {
        if let Some(n) = s.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| (v * mult) as i64);
        }
    }
    if let Some(n) = s.strip_suffix('m') {
        return n.parse::<f64>().ok().map(|v| (v / 1000.0) as i64);
    }
    s.parse::<f64>().ok().map(|v| v as i64)
}

/// CPU and memory of a container as CRI Linux resources (upstream's conversion:
/// shares from requests, quota from limits over a 100 ms period).
pub fn linux_resources(c: &Container) -> api::LinuxContainerResources {
    let res = c.resources.clone().unwrap_or_default();
    let get = |m: &Option<std::collections::BTreeMap<String, Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).cloned()
    };
    let cpu_request = get(&res.requests, "cpu").or_else(|| get(&res.limits, "cpu"));
    let shares = cpu_request
        .and_then(|q| quantity_millis(&q))
        .map(|m| (m * 1024 / 1000).max(2))
        .unwrap_or(2);
    let mut r = api::LinuxContainerResources {
        cpu_shares: shares,
        ..Default::default()
    };
    if let Some(limit) = get(&res.limits, "cpu").and_then(|q| quantity_millis(&q)) {
        r.cpu_period = 100_000;
        r.cpu_quota = (limit * 100_000 / 1000).max(1000);
    }
    if let Some(mem) = get(&res.limits, "memory").and_then(|q| quantity_bytes(&q)) {
        r.memory_limit_in_bytes = mem;
    }
    r
}

/// The CRI config of container `c` of `pod`, its `attempt`th run.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    image_ref: &str,
    attempt: u32,
    downward: &Downward,
) -> Result<api::ContainerConfig, String> {
    let (name, ns, uid) = pod_ref(pod);
    let env = environment(pod, c, downward)?;
    let labels = HashMap::from([
        (POD_NAME_LABEL.to_owned(), name.to_owned()),
        (POD_NAMESPACE_LABEL.to_owned(), ns.to_owned()),
        (POD_UID_LABEL.to_owned(), uid.to_owned()),
        (CONTAINER_NAME_LABEL.to_owned(), c.name.clone()),
    ]);
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations = HashMap::from([
        (RESTART_COUNT_ANNOTATION.to_owned(), attempt.to_string()),
        (GRACE_ANNOTATION.to_owned(), grace.to_string()),
    ]);
    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(api::ImageSpec {
            image: image_ref.into(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: c
            .command
            .iter()
            .flatten()
            .map(|s| expand(s, &env))
            .collect(),
        args: c.args.iter().flatten().map(|s| expand(s, &env)).collect(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: env
            .into_iter()
            .map(|(key, value)| api::KeyValue { key, value })
            .collect(),
        labels,
        annotations,
        log_path: format!("{}/{attempt}.log", c.name),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_resources(c)),
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: if host_network(pod) { NS_NODE } else { NS_POD },
                    pid: NS_CONTAINER,
                    ipc: NS_POD,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u1", "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c", "image": "busybox:1", "command": ["sh", "-c"], "args": ["echo $(GREETING) $$(X)"],
                "env": [{"name": "WHO", "value": "world"}, {"name": "GREETING", "value": "hello $(WHO)"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
                "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn sandbox_config_names_the_pod() {
        let c = sandbox_config(&pod(), 0, Path::new("/logs"));
        let m = c.metadata.unwrap();
        assert_eq!(
            (m.name.as_str(), m.namespace.as_str(), m.uid.as_str()),
            ("web", "ns1", "u1")
        );
        assert_eq!(c.hostname, "web");
        assert_eq!(c.log_directory, "/logs/ns1_web_u1");
        assert_eq!(c.labels[POD_UID_LABEL], "u1");
        assert_eq!(c.labels["app"], "a");
        assert_eq!(c.port_mappings[0].host_port, 8080);
    }

    #[test]
    fn container_config_expands_env_and_converts_resources() {
        let p = pod();
        let d = Downward {
            pod_ip: "10.42.0.5".into(),
            host_ip: "192.168.1.2".into(),
            ..Default::default()
        };
        let c = container_config(
            &p,
            &p.spec.as_ref().unwrap().containers[0],
            "sha256:x",
            2,
            &d,
        )
        .unwrap();
        let env: Vec<_> = c
            .envs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("WHO", "world"),
                ("GREETING", "hello world"),
                ("POD", "web"),
                ("IP", "10.42.0.5"),
                ("APP", "a")
            ]
        );
        assert_eq!(c.args, ["echo hello world $(X)"]);
        assert_eq!(c.log_path, "c/2.log");
        assert_eq!(c.labels[CONTAINER_NAME_LABEL], "c");
        let r = c.linux.unwrap().resources.unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.cpu_period),
            (256, 50_000, 100_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn env_from_config_maps_and_secrets() {
        let p = pod();
        let c: Container = serde_json::from_value(json!({"name": "c",
            "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s"}, "prefix": "S_"}],
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                    {"name": "O", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope", "optional": true}}}]}))
        .unwrap();
        let mut d = Downward::default();
        d.config_maps.insert(
            "cm".into(),
            BTreeMap::from([("k".into(), "v".into()), ("a".into(), "1".into())]),
        );
        d.secrets
            .insert("s".into(), BTreeMap::from([("pw".into(), "x".into())]));
        let env = environment(&p, &c, &d).unwrap();
        assert_eq!(
            env,
            [
                ("a".into(), "1".into()),
                ("k".into(), "v".into()),
                ("S_pw".into(), "x".into()),
                ("K".into(), "v".into())
            ]
        );
        let missing: Container = serde_json::from_value(json!({"name": "c",
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "zz"}}}]}))
        .unwrap();
        assert_eq!(
            environment(&p, &missing, &d).unwrap_err(),
            "couldn't find key zz in ConfigMap ns1/cm"
        );
    }

    #[test]
    fn expansion_keeps_unknown_references() {
        assert_eq!(
            expand("$(A)-$(B)-$$-$", &[("A".into(), "1".into())]),
            "1-$(B)-$-$"
        );
    }
}
