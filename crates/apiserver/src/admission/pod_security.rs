//! PodSecurity: the Pod Security Standards (baseline and restricted, at the latest
//! version) applied per namespace by its `pod-security.kubernetes.io/<mode>` labels:
//! `enforce` refuses pods that violate the level, `warn` answers with `Warning`
//! headers (also for workloads' pod templates), `audit` annotates.

use serde_json::Value;

use super::{lookup, resource, Operation, Plugin, Request, Verdict};

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

pub struct PodSecurity;

/// The pod spec a request carries: a pod's, or a workload's pod template's.
fn pod_spec<'a>(r: &Request, obj: &'a Value) -> Option<(&'a Value, bool)> {
    pod_template(r, obj).map(|(_, spec, is_pod)| (spec, is_pod))
}

/// The pod (or pod template) metadata and spec a request carries, and whether it is a pod.
fn pod_template<'a>(r: &Request, obj: &'a Value) -> Option<(&'a Value, &'a Value, bool)> {
    let template = match (r.info.group, r.info.plural) {
        ("", "pods") => return Some((&obj["metadata"], &obj["spec"], true)),
        ("", "podtemplates") => &obj["template"],
        ("", "replicationcontrollers")
        | ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => &obj["spec"]["template"],
        ("batch", "cronjobs") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    Some((&template["metadata"], &template["spec"], false))
}

impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    fn validate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if !matches!(r.operation, Operation::Create | Operation::Update)
                || !r.subresource.is_empty()
                || r.namespace.is_empty()
            {
                return Ok(());
            }
            let Some(obj) = r.object.as_ref() else {
                return Ok(());
            };
            let Some((spec, is_pod)) = pod_spec(r, obj) else {
                return Ok(());
            };
            if !spec.is_object() {
                return Ok(());
            }
            // Updates that leave the pod spec alone are not evaluated again.
            if let Some(old) = r.old.as_ref() {
                if pod_spec(r, old).map(|(s, _)| s) == Some(spec) {
                    return Ok(());
                }
            }
            let namespaces = resource("", "v1", "namespaces");
            let Some(ns) = lookup(&r.state, namespaces, None, &r.namespace).await? else {
                return Ok(());
            };
            let level = |mode: &str| {
                ns["metadata"]["labels"][format!("{LABEL_PREFIX}{mode}")]
                    .as_str()
                    .and_then(Level::parse)
                    .unwrap_or(Level::Privileged)
            };
            // The checks are always the latest version's; a pinned version is named in
            // the messages as upstream names it.
            let version = |mode: &str| {
                ns["metadata"]["labels"][format!("{LABEL_PREFIX}{mode}-version")]
                    .as_str()
                    .filter(|v| {
                        v.strip_prefix("v1.")
                            .is_some_and(|minor| minor.parse::<u32>().is_ok())
                    })
                    .unwrap_or("latest")
                    .to_owned()
            };
            let (enforce, warn, audit) = (level("enforce"), level("warn"), level("audit"));
            if [enforce, warn, audit] == [Level::Privileged; 3] {
                // Nothing is evaluated at `privileged` (every namespace without labels).
                return Ok(());
            }
            let spec = spec.clone();
            let meta = pod_template(r, obj)
                .map(|(m, _, _)| m.clone())
                .unwrap_or(Value::Null);
            if is_pod && enforce > Level::Privileged {
                let violations = evaluate(enforce, &meta, &spec);
                if !violations.is_empty() {
                    return Err(r.forbidden(format!(
                        "violates PodSecurity \"{}:{}\": {}",
                        enforce.as_str(),
                        version("enforce"),
                        violations.join(", ")
                    )));
                }
            }
            if warn > Level::Privileged {
                let violations = evaluate(warn, &meta, &spec);
                if !violations.is_empty() {
                    r.warnings.push(format!(
                        "would violate PodSecurity \"{}:{}\": {}",
                        warn.as_str(),
                        version("warn"),
                        violations.join(", ")
                    ));
                }
            }
            if audit > Level::Privileged {
                let violations = evaluate(audit, &meta, &spec);
                if !violations.is_empty() {
                    r.annotations.insert(
                        "pod-security.kubernetes.io/audit-violations".into(),
                        format!(
                            "would violate PodSecurity \"{}:{}\": {}",
                            audit.as_str(),
                            version("audit"),
                            violations.join(", ")
                        ),
                    );
                }
            }
            Ok(())
        })
    }
}

/// Every container of a pod spec: init, regular and ephemeral.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |f| spec[f].as_array().into_iter().flatten())
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or("")
}

fn pluralize(singular: &str, plural: &str, n: usize) -> String {
    if n == 1 { singular } else { plural }.to_owned()
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// A check: its upstream ID and the function of the pod's metadata and spec returning the
/// forbidden reason and detail.
type Check = (&'static str, fn(&Value, &Value) -> Option<(String, String)>);

/// The checks of a level in upstream's order (by check ID, baseline before restricted).
fn checks(level: Level) -> Vec<Check> {
    let baseline: [Check; 12] = [
        ("appArmorProfile", app_armor_profile),
        ("capabilities_baseline", |_, s| capabilities_baseline(s)),
        ("hostNamespaces", |_, s| host_namespaces(s)),
        ("hostPathVolumes", |_, s| host_path_volumes(s)),
        ("hostPorts", |_, s| host_ports(s)),
        ("hostProbesAndHostLifecycle", |_, s| {
            host_probes_and_lifecycle(s)
        }),
        ("privileged", |_, s| privileged(s)),
        ("procMount", |_, s| proc_mount(s)),
        ("seLinuxOptions", |_, s| se_linux_options(s)),
        ("seccompProfile_baseline", |_, s| seccomp_baseline(s)),
        ("sysctls", |_, s| sysctls(s)),
        ("windowsHostProcess", |_, s| windows_host_process(s)),
    ];
    let restricted: [Check; 6] = [
        ("allowPrivilegeEscalation", |_, s| {
            allow_privilege_escalation(s)
        }),
        ("capabilities_restricted", |_, s| capabilities_restricted(s)),
        ("restrictedVolumes", |_, s| restricted_volumes(s)),
        ("runAsNonRoot", |_, s| run_as_non_root(s)),
        ("runAsUser", |_, s| run_as_user(s)),
        ("seccompProfile_restricted", |_, s| seccomp_restricted(s)),
    ];
    // The restricted checks that replace baseline ones.
    const OVERRIDDEN: [&str; 2] = ["hostPathVolumes", "seccompProfile_baseline"];
    match level {
        Level::Privileged => Vec::new(),
        Level::Baseline => baseline.to_vec(),
        Level::Restricted => baseline
            .into_iter()
            .filter(|(id, _)| !OVERRIDDEN.contains(id))
            .chain(restricted)
            .collect(),
    }
}

/// The violations of a pod (`meta`, `spec`) at `level`: `reason (detail)` each.
fn evaluate(level: Level, meta: &Value, spec: &Value) -> Vec<String> {
    checks(level)
        .into_iter()
        .filter_map(|(_, check)| check(meta, spec))
        .map(|(reason, detail)| format!("{reason} ({detail})"))
        .collect()
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(c: &Value) -> Vec<&str> {
    c["securityContext"]["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn capabilities_baseline(spec: &Value) -> Option<(String, String)> {
    let mut bad_containers = Vec::new();
    let mut bad: Vec<&str> = Vec::new();
    for c in containers(spec) {
        let extra: Vec<&str> = added_capabilities(c)
            .into_iter()
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .collect();
        if !extra.is_empty() {
            bad_containers.push(name(c));
            bad.extend(extra);
        }
    }
    bad.sort_unstable();
    bad.dedup();
    (!bad_containers.is_empty()).then(|| {
        (
            "non-default capabilities".into(),
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&bad_containers),
                join_quote(&bad)
            ),
        )
    })
}

/// Who sets a forbidden value: `pod`, `container "a"`, `pod and containers "a", "b"`.
fn setters(pod: bool, containers: &[&str]) -> Vec<String> {
    let mut who = Vec::new();
    if pod {
        who.push("pod".to_owned());
    }
    if !containers.is_empty() {
        who.push(containers_phrase(containers));
    }
    who
}

const APP_ARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor_profile(meta: &Value, spec: &Value) -> Option<(String, String)> {
    let unconfined = |sc: &Value| sc["appArmorProfile"]["type"] == "Unconfined";
    let pod = unconfined(&spec["securityContext"]);
    let bad: Vec<&str> = containers(spec)
        .filter(|c| unconfined(&c["securityContext"]))
        .map(name)
        .collect();
    let mut annotations: Vec<String> = meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            let allowed = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (k.starts_with(APP_ARMOR_ANNOTATION_PREFIX) && !allowed)
                .then(|| format!("\"{k}=\"{v}\"\""))
        })
        .collect();
    annotations.sort();
    let mut details = Vec::new();
    let who = setters(pod, &bad);
    if !who.is_empty() {
        details.push(format!(
            "{} must not set AppArmor profile type to \"Unconfined\"",
            who.join(" and ")
        ));
    }
    if !annotations.is_empty() {
        details.push(format!(
            "annotations must not set AppArmor profile type to {}",
            annotations.join(", ")
        ));
    }
    let count = usize::from(pod) + bad.len() + annotations.len();
    (!details.is_empty()).then(|| {
        (
            pluralize(
                "forbidden AppArmor profile",
                "forbidden AppArmor profiles",
                count,
            ),
            details.join(", "),
        )
    })
}

fn probe_hosts(handler: &Value) -> Vec<String> {
    ["httpGet", "tcpSocket"]
        .into_iter()
        .filter_map(|h| handler[h]["host"].as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

fn host_probes_and_lifecycle(spec: &Value) -> Option<(String, String)> {
    let mut bad = std::collections::BTreeSet::new();
    let mut hosts = std::collections::BTreeSet::new();
    for c in containers(spec) {
        let handlers = ["livenessProbe", "readinessProbe", "startupProbe"]
            .into_iter()
            .map(|p| &c[p])
            .chain(
                ["postStart", "preStop"]
                    .into_iter()
                    .map(|h| &c["lifecycle"][h]),
            );
        for found in handlers.map(probe_hosts).filter(|h| !h.is_empty()) {
            bad.insert(name(c));
            hosts.extend(found);
        }
    }
    (!bad.is_empty()).then(|| {
        let bad: Vec<&str> = bad.into_iter().collect();
        let hosts: Vec<String> = hosts.into_iter().collect();
        (
            "probe or lifecycle host".into(),
            format!(
                "{} {} {} {}",
                containers_phrase(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize(
                    "probe or lifecycle host",
                    "probe or lifecycle hosts",
                    hosts.len()
                ),
                join_quote(&hosts)
            ),
        )
    })
}

const SE_LINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn se_linux_options(spec: &Value) -> Option<(String, String)> {
    let mut data = std::collections::BTreeSet::new();
    let mut forbidden = |sc: &Value| {
        let opts = &sc["seLinuxOptions"];
        let mut bad = false;
        let ty = opts["type"].as_str().unwrap_or("");
        if !SE_LINUX_TYPES.contains(&ty) {
            data.insert(format!("type \"{ty}\""));
            bad = true;
        }
        for field in ["user", "role"] {
            if let Some(v) = opts[field].as_str().filter(|v| !v.is_empty()) {
                data.insert(format!("{field} \"{v}\""));
                bad = true;
            }
        }
        bad
    };
    let pod = forbidden(&spec["securityContext"]);
    let bad: Vec<&str> = containers(spec)
        .filter(|c| forbidden(&c["securityContext"]))
        .map(name)
        .collect();
    (pod || !bad.is_empty()).then(|| {
        (
            "seLinuxOptions".into(),
            format!(
                "{} set forbidden securityContext.seLinuxOptions: {}",
                setters(pod, &bad).join(" and "),
                data.into_iter().collect::<Vec<_>>().join("; ")
            ),
        )
    })
}

fn windows_host_process(spec: &Value) -> Option<(String, String)> {
    let host_process = |sc: &Value| sc["windowsOptions"]["hostProcess"] == true;
    let pod = host_process(&spec["securityContext"]);
    let bad: Vec<&str> = containers(spec)
        .filter(|c| host_process(&c["securityContext"]))
        .map(name)
        .collect();
    (pod || !bad.is_empty()).then(|| {
        (
            "hostProcess".into(),
            format!(
                "{} must not set securityContext.windowsOptions.hostProcess=true",
                setters(pod, &bad).join(" and ")
            ),
        )
    })
}

fn host_namespaces(spec: &Value) -> Option<(String, String)> {
    let set: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| spec[*f] == true)
        .map(|f| format!("{f}=true"))
        .collect();
    (!set.is_empty()).then(|| ("host namespaces".into(), set.join(", ")))
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(spec: &Value) -> Option<(String, String)> {
    let bad: Vec<&str> = volumes(spec)
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "hostPath volumes".into(),
            format!(
                "{} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad)
            ),
        )
    })
}

fn host_ports(spec: &Value) -> Option<(String, String)> {
    let mut bad_containers = Vec::new();
    let mut ports: Vec<i64> = Vec::new();
    for c in containers(spec) {
        let used: Vec<i64> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["hostPort"].as_i64())
            .filter(|p| *p != 0)
            .collect();
        if !used.is_empty() {
            bad_containers.push(name(c));
            ports.extend(used);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    (!bad_containers.is_empty()).then(|| {
        let ports: Vec<String> = ports.iter().map(i64::to_string).collect();
        (
            "hostPort".into(),
            format!(
                "{} {} {} {}",
                containers_phrase(&bad_containers),
                pluralize("uses", "use", bad_containers.len()),
                pluralize("hostPort", "hostPorts", ports.len()),
                ports.join(", ")
            ),
        )
    })
}

fn privileged(spec: &Value) -> Option<(String, String)> {
    let bad: Vec<&str> = containers(spec)
        .filter(|c| c["securityContext"]["privileged"] == true)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "privileged".into(),
            format!(
                "{} must not set securityContext.privileged=true",
                containers_phrase(&bad)
            ),
        )
    })
}

fn proc_mount(spec: &Value) -> Option<(String, String)> {
    // With user namespaces (hostUsers: false) any procMount is allowed.
    if spec["hostUsers"] == false {
        return None;
    }
    let mut bad = Vec::new();
    let mut values: Vec<&str> = Vec::new();
    for c in containers(spec) {
        if let Some(m) = c["securityContext"]["procMount"].as_str() {
            if m != "Default" {
                bad.push(name(c));
                values.push(m);
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    (!bad.is_empty()).then(|| {
        (
            "procMount".into(),
            format!(
                "{} must not set securityContext.procMount to {}",
                containers_phrase(&bad),
                join_quote(&values)
            ),
        )
    })
}

fn seccomp_type(sc: &Value) -> Option<&str> {
    sc["seccompProfile"]["type"].as_str()
}

fn seccomp_baseline(spec: &Value) -> Option<(String, String)> {
    let mut setters = Vec::new();
    if seccomp_type(&spec["securityContext"]) == Some("Unconfined") {
        setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = containers(spec)
        .filter(|c| seccomp_type(&c["securityContext"]) == Some("Unconfined"))
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    (!setters.is_empty()).then(|| {
        (
            "seccompProfile".into(),
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                setters.join(" and ")
            ),
        )
    })
}

const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

fn sysctls(spec: &Value) -> Option<(String, String)> {
    let bad: Vec<&str> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .collect();
    (!bad.is_empty()).then(|| ("forbidden sysctls".into(), bad.join(", ")))
}

fn windows(spec: &Value) -> bool {
    spec["os"]["name"] == "windows"
}

fn allow_privilege_escalation(spec: &Value) -> Option<(String, String)> {
    if windows(spec) {
        return None;
    }
    let bad: Vec<&str> = containers(spec)
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"] != false)
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        (
            "allowPrivilegeEscalation != false".into(),
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers_phrase(&bad)
            ),
        )
    })
}

fn capabilities_restricted(spec: &Value) -> Option<(String, String)> {
    if windows(spec) {
        return None;
    }
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden: Vec<&str> = Vec::new();
    for c in containers(spec) {
        let drops_all = c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            missing_drop.push(name(c));
        }
        let extra: Vec<&str> = added_capabilities(c)
            .into_iter()
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            adding.push(name(c));
            forbidden.extend(extra);
        }
    }
    forbidden.sort_unstable();
    forbidden.dedup();
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities".into(), details.join("; ")))
}

const ALLOWED_VOLUME_TYPES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn restricted_volumes(spec: &Value) -> Option<(String, String)> {
    let mut bad = Vec::new();
    let mut types: Vec<&str> = Vec::new();
    for v in volumes(spec) {
        let Some(source) = v.as_object() else {
            continue;
        };
        let kinds: Vec<&str> = source
            .iter()
            .filter(|(k, val)| *k != "name" && !val.is_null())
            .map(|(k, _)| k.as_str())
            .filter(|k| !ALLOWED_VOLUME_TYPES.contains(k))
            .collect();
        if !kinds.is_empty() {
            bad.push(name(v));
            types.extend(kinds);
        }
    }
    types.sort_unstable();
    types.dedup();
    (!bad.is_empty()).then(|| {
        (
            "restricted volume types".into(),
            format!(
                "{} {} {} restricted volume {} {}",
                pluralize("volume", "volumes", bad.len()),
                join_quote(&bad),
                pluralize("uses", "use", bad.len()),
                pluralize("type", "types", types.len()),
                join_quote(&types)
            ),
        )
    })
}

fn run_as_non_root(spec: &Value) -> Option<(String, String)> {
    if spec["hostUsers"] == false {
        return None;
    }
    let mut setters = Vec::new();
    let pod_value = &spec["securityContext"]["runAsNonRoot"];
    if *pod_value == false {
        setters.push("pod".to_owned());
    }
    let pod_ok = *pod_value == true;
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match &c["securityContext"]["runAsNonRoot"] {
            Value::Bool(false) => explicit.push(name(c)),
            Value::Bool(true) => {}
            _ if !pod_ok => implicit.push(name(c)),
            _ => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    let reason = "runAsNonRoot != true".to_owned();
    if !setters.is_empty() {
        return Some((
            reason,
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            reason,
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        )
    })
}

fn run_as_user(spec: &Value) -> Option<(String, String)> {
    if spec["hostUsers"] == false {
        return None;
    }
    let mut setters = Vec::new();
    if spec["securityContext"]["runAsUser"] == 0 {
        setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = containers(spec)
        .filter(|c| c["securityContext"]["runAsUser"] == 0)
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    (!setters.is_empty()).then(|| {
        (
            "runAsUser=0".into(),
            format!("{} must not set runAsUser=0", setters.join(" and ")),
        )
    })
}

fn seccomp_restricted(spec: &Value) -> Option<(String, String)> {
    if windows(spec) {
        return None;
    }
    let valid = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut setters = Vec::new();
    let mut bad_values: Vec<&str> = Vec::new();
    let mut pod_set = false;
    if let Some(t) = seccomp_type(&spec["securityContext"]) {
        if valid(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_owned());
            bad_values.push(t);
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match seccomp_type(&c["securityContext"]) {
            Some(t) if !valid(t) => {
                explicit.push(name(c));
                bad_values.push(t);
            }
            Some(_) => {}
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    bad_values.sort_unstable();
    bad_values.dedup();
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return Some((
            "seccompProfile".into(),
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&bad_values)
            ),
        ));
    }
    (!implicit.is_empty()).then(|| {
        (
            "seccompProfile".into(),
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_violations_of_a_plain_pod() {
        let spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        assert_eq!(
            evaluate(Level::Restricted, &Value::Null, &spec).join(", "),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(evaluate(Level::Baseline, &Value::Null, &spec).is_empty());
        assert!(evaluate(Level::Privileged, &Value::Null, &spec).is_empty());
    }

    #[test]
    fn compliant_restricted_pod() {
        let spec = json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "t", "projected": {"sources": []}}],
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        });
        assert_eq!(
            evaluate(Level::Restricted, &Value::Null, &spec),
            Vec::<String>::new()
        );
    }

    #[test]
    fn baseline_cases() {
        let cases = [
            (json!({"hostNetwork": true, "hostPID": true, "containers": []}), "host namespaces (hostNetwork=true, hostPID=true)"),
            (json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}, {"name": "b", "securityContext": {"privileged": true}}]}), "privileged (containers \"a\", \"b\" must not set securityContext.privileged=true)"),
            (json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]}), "non-default capabilities (container \"a\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)"),
            (json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}], "containers": []}), "hostPath volumes (volume \"h\")"),
            (json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}), "hostPort (container \"a\" uses hostPort 8080)"),
            (json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": []}), "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"),
            (json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "containers": []}), "forbidden sysctls (kernel.msgmax)"),
        ];
        for (spec, want) in cases {
            assert_eq!(
                evaluate(Level::Baseline, &Value::Null, &spec),
                vec![want.to_owned()],
                "{spec}"
            );
        }
    }

    #[test]
    fn restricted_volume_types() {
        let spec = json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "x"}}], "containers": []});
        let v = evaluate(Level::Restricted, &Value::Null, &spec);
        assert_eq!(v, vec!["restricted volume types (volumes \"h\", \"n\" use restricted volume types \"hostPath\", \"nfs\")"]);
    }

    #[test]
    fn baseline_app_armor_se_linux_host_probes_and_host_process() {
        let none = Value::Null;
        let cases = [
            (none.clone(), json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []}),
                "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\")"),
            (none.clone(), json!({"initContainers": [{"name": "bar", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}], "containers": [{"name": "foo", "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}]}),
                "forbidden AppArmor profile (container \"bar\" must not set AppArmor profile type to \"Unconfined\")"),
            (json!({"annotations": {
                    "container.apparmor.security.beta.kubernetes.io/": "bogus",
                    "container.apparmor.security.beta.kubernetes.io/a": "",
                    "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
                    "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
                    "container.apparmor.security.beta.kubernetes.io/e": "unconfined"}}),
                json!({"containers": []}),
                "forbidden AppArmor profiles (annotations must not set AppArmor profile type to \"container.apparmor.security.beta.kubernetes.io/=\"bogus\"\", \"container.apparmor.security.beta.kubernetes.io/e=\"unconfined\"\")"),
            (none.clone(), json!({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}, "containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"user": "u", "role": "r", "type": "container_t"}}}]}),
                "seLinuxOptions (pod and container \"a\" set forbidden securityContext.seLinuxOptions: role \"r\"; type \"spc_t\"; user \"u\")"),
            (none.clone(), json!({"containers": [{"name": "a", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}, "lifecycle": {"preStop": {"tcpSocket": {"host": "example.com", "port": 1}}}}]}),
                "probe or lifecycle host (container \"a\" uses probe or lifecycle hosts \"10.0.0.1\", \"example.com\")"),
            (none.clone(), json!({"securityContext": {"windowsOptions": {"hostProcess": true}}, "containers": [{"name": "w", "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
                "hostProcess (pod and container \"w\" must not set securityContext.windowsOptions.hostProcess=true)"),
        ];
        for (meta, spec, want) in cases {
            assert_eq!(
                evaluate(Level::Baseline, &meta, &spec),
                vec![want.to_owned()],
                "{spec}"
            );
        }
        // Allowed values pass.
        let ok = json!({"securityContext": {"seLinuxOptions": {"type": "container_init_t", "level": "s0:c1"}, "appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "readinessProbe": {"httpGet": {"port": 80}}}]});
        assert!(evaluate(Level::Baseline, &none, &ok).is_empty());
    }
}
