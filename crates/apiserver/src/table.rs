//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints).
//!
//! Kinds with a printer here get upstream's columns and cells (`kubectl get` and `-o wide`
//! print what upstream prints); every other kind gets upstream's default columns (Name,
//! Created At). Columns are data: a name, a type, a priority (1 = `-o wide` only) and a
//! function from the object to its cell. As upstream's server does, every cell is always
//! computed (wide ones included); kubectl drops priority-1 columns unless `-o wide`.

use std::collections::BTreeSet;

use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::query::Query;

/// One column: name, type, format, priority, and how to compute its cell.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
}

impl Column {
    /// The same column with another `format` (upstream marks a few columns oddly).
    const fn format(mut self, format: &'static str) -> Column {
        self.format = format;
        self
    }
}

const fn column(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
) -> Column {
    // Upstream marks its Name columns with the "name" format.
    let is_name = matches!(name.as_bytes(), b"Name");
    Column {
        name,
        kind,
        format: if is_name { "name" } else { "" },
        priority,
        cell,
    }
}

/// A string column shown by `kubectl get`.
const fn col(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, "string", 0, cell)
}

/// A string column shown only by `kubectl get -o wide`.
const fn wide(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, "string", 1, cell)
}

/// An integer column.
const fn int_col(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, "integer", 0, cell)
}

/// A boolean column.
const fn bool_col(name: &'static str, cell: fn(&Value) -> Value) -> Column {
    column(name, "boolean", 0, cell)
}

// ---- shared formatting -------------------------------------------------------------------

const NONE: &str = "<none>";
const UNSET: &str = "<unset>";
const UNKNOWN: &str = "<unknown>";

/// A JSON string, or "" (what Go's zero value prints).
fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `text`, or `default` when it is empty.
fn or(text: &str, default: &str) -> Value {
    json!(if text.is_empty() { default } else { text })
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn count(v: &Value) -> usize {
    v.as_object()
        .map(|m| m.len())
        .or_else(|| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn name(o: &Value) -> Value {
    json!(s(&o["metadata"]["name"]))
}

/// How long ago an RFC 3339 timestamp was (upstream's `translateTimestampSince`).
fn since(timestamp: &Value) -> Option<String> {
    let t = crate::meta::parse_rfc3339(timestamp.as_str()?)?;
    Some(human_duration(crate::meta::now_secs() - t))
}

fn since_or_unknown(timestamp: &Value) -> String {
    since(timestamp).unwrap_or_else(|| UNKNOWN.into())
}

fn age(o: &Value) -> Value {
    json!(since_or_unknown(&o["metadata"]["creationTimestamp"]))
}

fn seconds(timestamp: &Value) -> Option<i64> {
    crate::meta::parse_rfc3339(timestamp.as_str()?)
}

/// Upstream's `duration.HumanDuration`, as `kubectl get` shows ages.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{d}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The first `max` of `list` joined with `,`, then ` + N more...` when `total` exceeds `max`
/// (upstream's lists of endpoints, ports and hosts).
fn with_more(list: &[String], total: usize, max: usize) -> String {
    let shown = list[..list.len().min(max)].join(",");
    if total > max {
        format!("{shown} + {} more...", total - max)
    } else {
        shown
    }
}

/// Upstream's `listWithMoreString`: like [`with_more`] (at most 3), `<unset>` when empty.
fn list_or_unset(list: &[String]) -> String {
    let text = with_more(list, list.len(), 3);
    if text.is_empty() {
        UNSET.into()
    } else {
        text
    }
}

/// A quantity as upstream prints it (`Quantity.String()`); a missing one is zero.
fn quantity(v: &Value) -> String {
    match v {
        Value::String(q) => q.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    }
}

/// A `*Quantity` printed with `%s`-style `String()`: `<nil>` when absent.
fn quantity_ptr(v: &Value) -> String {
    if v.is_null() {
        "<nil>".into()
    } else {
        quantity(v)
    }
}

/// Upstream's `printBoolPtr`.
fn bool_ptr(v: &Value) -> Value {
    json!(match v.as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => UNSET,
    })
}

/// A label map as `labels.FormatLabels` writes it: `k=v` sorted by key, or `<none>`.
fn labels_text(map: &Value) -> String {
    let pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    if pairs.is_empty() {
        NONE.into()
    } else {
        pairs.join(",")
    }
}

/// A label selector as `LabelSelectorAsSelector(..).String()` writes it: requirements sorted
/// by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. Empty (or absent) is "".
fn selector_text(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", s(v))));
    }
    for e in items(&sel["matchExpressions"]) {
        let key = s(&e["key"]);
        let values: BTreeSet<&str> = items(&e["values"]).iter().map(s).collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let text = match s(&e["operator"]) {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_owned(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector's text, or `<none>`.
fn selector_or_none(sel: &Value) -> Value {
    or(&selector_text(sel), NONE)
}

/// A `*metav1.LabelSelector` printed with its generated `String()` method (what upstream's
/// admission policy binding printer shows for a parameter selector).
fn selector_go_string(sel: &Value) -> String {
    let labels: String = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {},", s(v)))
        .collect();
    let exprs: String = items(&sel["matchExpressions"])
        .iter()
        .map(|e| {
            let values: Vec<&str> = items(&e["values"]).iter().map(s).collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                s(&e["key"]),
                s(&e["operator"]),
                values.join(" ")
            )
        })
        .collect();
    format!("&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")
}

/// Upstream's `layoutContainerCells`: container names and images, each joined with `,`.
fn containers(pod_spec: &Value) -> (String, String) {
    let list = items(&pod_spec["containers"]);
    let names: Vec<&str> = list.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn container_names(pod_spec: &Value) -> Value {
    json!(containers(pod_spec).0)
}

fn container_images(pod_spec: &Value) -> Value {
    json!(containers(pod_spec).1)
}

/// Whether a condition of `kind` is present with status True.
fn condition_true(conditions: &Value, kind: &str) -> bool {
    items(conditions)
        .iter()
        .find(|c| c["type"] == kind)
        .is_some_and(|c| c["status"] == "True")
}

/// `a/b` of two fields.
fn slash(a: &Value, b: &Value) -> Value {
    json!(format!("{}/{}", s(a), s(b)))
}

/// Access modes in upstream's short form and fixed order (`RWO,ROX,RWX,RWOP`).
fn access_modes(modes: &Value) -> String {
    let modes: Vec<&str> = items(modes).iter().map(s).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.contains(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A volume's or claim's class: the beta annotation, else `spec.storageClassName`.
fn storage_class(o: &Value) -> Value {
    let beta = s(&o["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]);
    json!(if beta.is_empty() {
        s(&o["spec"]["storageClassName"])
    } else {
        beta
    })
}

/// The name, with ` (default)` when `annotation` (or, if given, `beta`) is "true".
fn name_default(o: &Value, annotations: &[&str]) -> Value {
    let meta = &o["metadata"];
    let default = annotations
        .iter()
        .any(|a| meta["annotations"][*a] == "true");
    json!(if default {
        format!("{} (default)", s(&meta["name"]))
    } else {
        s(&meta["name"]).to_owned()
    })
}

// ---- per-kind cells ----------------------------------------------------------------------

/// Upstream's `printPod`: READY, STATUS and RESTARTS (with the last restart's age).
fn pod_summary(pod: &Value) -> (String, String, String) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let phase = s(&status["phase"]);
    let mut reason = if s(&status["reason"]).is_empty() {
        phase.to_owned()
    } else {
        s(&status["reason"]).to_owned()
    };
    if items(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = items(&spec["initContainers"]);
    let restartable = |name: &Value| {
        init_specs
            .iter()
            .any(|c| c["name"] == *name && c["restartPolicy"] == "Always")
    };
    let total = items(&spec["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| c["restartPolicy"] == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut last_sidecar_restart: Option<i64> = None;
    let later = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    let init_statuses = items(&status["initContainerStatuses"]);
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int(&c["restartCount"]);
        let finished = seconds(&c["lastState"]["terminated"]["finishedAt"]);
        last_restart = later(last_restart, finished);
        let sidecar = restartable(&c["name"]);
        if sidecar {
            sidecar_restarts += int(&c["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = &c["state"]["terminated"];
        let waiting = &c["state"]["waiting"];
        if terminated.is_object() && int(&terminated["exitCode"]) == 0 {
            continue;
        }
        if sidecar && c["started"] == true {
            if c["ready"] == true {
                ready += 1;
            }
            continue;
        }
        if terminated.is_object() {
            reason = if !s(&terminated["reason"]).is_empty() {
                format!("Init:{}", s(&terminated["reason"]))
            } else if int(&terminated["signal"]) != 0 {
                format!("Init:Signal:{}", int(&terminated["signal"]))
            } else {
                format!("Init:ExitCode:{}", int(&terminated["exitCode"]))
            };
        } else if waiting.is_object()
            && !s(&waiting["reason"]).is_empty()
            && waiting["reason"] != "PodInitializing"
        {
            reason = format!("Init:{}", s(&waiting["reason"]));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(&status["conditions"], "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in items(&status["containerStatuses"]).iter().rev() {
            restarts += int(&c["restartCount"]);
            last_restart = later(
                last_restart,
                seconds(&c["lastState"]["terminated"]["finishedAt"]),
            );
            let terminated = &c["state"]["terminated"];
            let waiting = &c["state"]["waiting"];
            if !s(&waiting["reason"]).is_empty() {
                reason = s(&waiting["reason"]).to_owned();
            } else if !s(&terminated["reason"]).is_empty() {
                reason = s(&terminated["reason"]).to_owned();
            } else if terminated.is_object() {
                reason = if int(&terminated["signal"]) != 0 {
                    format!("Signal:{}", int(&terminated["signal"]))
                } else {
                    format!("ExitCode:{}", int(&terminated["exitCode"]))
                };
            } else if c["ready"] == true && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(&status["conditions"], "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if pod["metadata"]["deletionTimestamp"].is_string() {
        if status["reason"] == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(crate::meta::now_secs() - t)
        ),
        _ => restarts.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_text)
}

fn pod_readiness_gates(pod: &Value) -> Value {
    let gates = items(&pod["spec"]["readinessGates"]);
    if gates.is_empty() {
        return json!(NONE);
    }
    let conditions = &pod["status"]["conditions"];
    let ok = gates
        .iter()
        .filter(|g| condition_true(conditions, s(&g["conditionType"])))
        .count();
    json!(format!("{ok}/{}", gates.len()))
}

/// Upstream's `formatEndpoints`: `ip:port` of every address and port (just the ip when a
/// subset has no ports), at most three.
fn endpoints_text(o: &Value) -> String {
    let subsets = items(&o["subsets"]);
    if subsets.is_empty() {
        return NONE.into();
    }
    let mut list = Vec::new();
    for ss in subsets {
        let addresses = items(&ss["addresses"]);
        let ports = items(&ss["ports"]);
        if ports.is_empty() {
            list.extend(addresses.iter().map(|a| s(&a["ip"]).to_owned()));
            continue;
        }
        for p in ports {
            for a in addresses {
                list.push(host_port(s(&a["ip"]), int(&p["port"])));
            }
        }
    }
    with_more(&list, list.len(), 3)
}

/// Go's `net.JoinHostPort`.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Load-balancer ingress points: IPs or hostnames, sorted and deduplicated, joined with `,`.
fn load_balancer(status: &Value) -> String {
    let set: BTreeSet<&str> = items(&status["ingress"])
        .iter()
        .filter_map(|i| {
            [s(&i["ip"]), s(&i["hostname"])]
                .into_iter()
                .find(|v| !v.is_empty())
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(o: &Value) -> Value {
    let spec = &o["spec"];
    let external: Vec<&str> = items(&spec["externalIPs"]).iter().map(s).collect();
    let text = match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                NONE.to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer(&o["status"]["loadBalancer"]);
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|v| !v.is_empty()).collect();
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(&spec["externalName"]).to_owned(),
        _ => UNKNOWN.to_owned(),
    };
    json!(text)
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = items(&o["spec"]["ports"])
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match int(&p["nodePort"]) {
                n if n > 0 => format!("{}:{n}/{proto}", int(&p["port"])),
                _ => format!("{}/{proto}", int(&p["port"])),
            }
        })
        .collect();
    or(&ports.join(","), NONE)
}

fn node_status(o: &Value) -> Value {
    let ready = items(&o["status"]["conditions"])
        .iter()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready {
        Some(c) if c["status"] == "True" => "Ready".to_owned(),
        Some(_) => "NotReady".to_owned(),
        None => "Unknown".to_owned(),
    };
    if o["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn node_roles(o: &Value) -> Value {
    let mut roles = BTreeSet::new();
    for (k, v) in o["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_owned());
            }
        } else if k == "kubernetes.io/role" && !s(v).is_empty() {
            roles.insert(s(v).to_owned());
        }
    }
    or(&roles.into_iter().collect::<Vec<_>>().join(","), NONE)
}

fn node_address(o: &Value, kind: &str) -> Value {
    let address = items(&o["status"]["addresses"])
        .iter()
        .find(|a| a["type"] == kind)
        .map(|a| s(&a["address"]));
    json!(address.unwrap_or(NONE))
}

fn job_status(o: &Value) -> Value {
    let c = &o["status"]["conditions"];
    json!(if condition_true(c, "Complete") {
        "Complete"
    } else if condition_true(c, "Failed") {
        "Failed"
    } else if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if condition_true(c, "Suspended") {
        "Suspended"
    } else if condition_true(c, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(c, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    })
}

fn job_completions(o: &Value) -> Value {
    let succeeded = int(&o["status"]["succeeded"]);
    let parallelism = int(&o["spec"]["parallelism"]);
    json!(match o["spec"]["completions"].as_i64() {
        Some(n) => format!("{succeeded}/{n}"),
        None if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
        None => format!("{succeeded}/1"),
    })
}

fn job_duration(o: &Value) -> Value {
    let status = &o["status"];
    json!(match (
        seconds(&status["startTime"]),
        seconds(&status["completionTime"])
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(crate::meta::now_secs() - start),
        (Some(start), Some(end)) => human_duration(end - start),
    })
}

/// Upstream's `formatHPAMetrics`: each metric's current value against its target, at most
/// two, then `+ N more...`. A metric's status is the one at the same index.
fn hpa_targets(o: &Value) -> String {
    const MAX: usize = 2;
    let specs = items(&o["spec"]["metrics"]);
    if specs.is_empty() {
        return NONE.into();
    }
    let statuses = items(&o["status"]["currentMetrics"]);
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i).unwrap_or(&Value::Null);
            match s(&spec["type"]) {
                kind @ ("External" | "Object") => {
                    let key = if kind == "External" {
                        "external"
                    } else {
                        "object"
                    };
                    let target = &spec[key]["target"];
                    let current = &status[key];
                    if !target["averageValue"].is_null() {
                        let cur = if current.is_object()
                            && !current["current"]["averageValue"].is_null()
                        {
                            quantity(&current["current"]["averageValue"])
                        } else {
                            UNKNOWN.into()
                        };
                        format!("{cur}/{} (avg)", quantity(&target["averageValue"]))
                    } else {
                        let cur = if current.is_object() {
                            quantity_ptr(&current["current"]["value"])
                        } else {
                            UNKNOWN.into()
                        };
                        format!("{cur}/{}", quantity_ptr(&target["value"]))
                    }
                }
                "Pods" => {
                    let cur = if status["pods"].is_object() {
                        quantity_ptr(&status["pods"]["current"]["averageValue"])
                    } else {
                        UNKNOWN.into()
                    };
                    format!(
                        "{cur}/{}",
                        quantity_ptr(&spec["pods"]["target"]["averageValue"])
                    )
                }
                kind @ ("Resource" | "ContainerResource") => {
                    let key = if kind == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let source = &spec[key];
                    let current = &status[key];
                    let label = s(&source["name"]);
                    let target = &source["target"];
                    if !target["averageValue"].is_null() {
                        let cur = if current.is_object() {
                            quantity_ptr(&current["current"]["averageValue"])
                        } else {
                            UNKNOWN.into()
                        };
                        format!("{label}: {cur}/{}", quantity(&target["averageValue"]))
                    } else {
                        let cur = match current["current"]["averageUtilization"].as_i64() {
                            Some(u) if current.is_object() => format!("{u}%"),
                            _ => UNKNOWN.into(),
                        };
                        let want = target["averageUtilization"]
                            .as_i64()
                            .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                        format!("{label}: {cur}/{want}")
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

/// Upstream's `printEvent` timestamps and count: (last seen, first seen, count).
fn event_times(o: &Value) -> (String, String, i64) {
    let first = match since(&o["firstTimestamp"]) {
        Some(t) => t,
        None => since_or_unknown(&o["eventTime"]),
    };
    let mut last = since(&o["lastTimestamp"]).unwrap_or_else(|| first.clone());
    let mut n = int(&o["count"]);
    if o["series"].is_object() {
        last = since_or_unknown(&o["series"]["lastObservedTime"]);
        n = int(&o["series"]["count"]);
    } else if n == 0 {
        n = 1;
    }
    (last, first, n)
}

fn event_object(o: &Value) -> Value {
    let obj = &o["involvedObject"];
    let kind = s(&obj["kind"]).to_lowercase();
    json!(if s(&obj["name"]).is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(&obj["name"]))
    })
}

fn event_source(o: &Value) -> Value {
    let first = |a: &str, b: &Value| {
        if a.is_empty() {
            s(b).to_owned()
        } else {
            a.to_owned()
        }
    };
    let component = first(s(&o["source"]["component"]), &o["reportingComponent"]);
    let instance = first(s(&o["source"]["host"]), &o["reportingInstance"]);
    json!(if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    })
}

/// `rbac.SubjectsStrings`: (users, groups, service accounts), each joined with `, `.
fn subjects(o: &Value, kind: &str) -> Value {
    let names: Vec<String> = items(&o["subjects"])
        .iter()
        .filter(|x| x["kind"] == kind)
        .map(|x| {
            let ns = s(&x["namespace"]);
            if kind == "ServiceAccount" && !ns.is_empty() {
                format!("{ns}/{}", s(&x["name"]))
            } else {
                s(&x["name"]).to_owned()
            }
        })
        .collect();
    json!(names.join(", "))
}

fn csr_condition(o: &Value) -> Value {
    let conditions = items(&o["status"]["conditions"]);
    let has = |t: &str| conditions.iter().any(|c| c["type"] == t);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !s(&o["status"]["certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    json!(status)
}

/// The controller owner as `kind.group/name` in lower case (upstream's `formatResourceName`).
fn controller_of(o: &Value) -> Value {
    let Some(owner) = items(&o["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"] == true)
    else {
        return json!(NONE);
    };
    let group = s(&owner["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    let kind = s(&owner["kind"]);
    let name = s(&owner["name"]).to_owned();
    json!(match (group, kind) {
        ("", "") => name,
        ("", k) => format!("{}/{name}", k.to_lowercase()),
        (g, k) => format!("{}/{name}", format!("{k}.{g}").to_lowercase()),
    })
}

/// A quota's `used/hard` for each resource (sorted), split into requests and limits.
fn quota_column(o: &Value, limits: bool) -> Value {
    let status = &o["status"];
    let parts: Vec<String> = status["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(r, _)| {
            let is_limit = r
                .split_once('.')
                .is_some_and(|(first, _)| first == "limits");
            is_limit == limits
        })
        .map(|(r, hard)| format!("{r}: {}/{}", quantity(&status["used"][r]), quantity(hard)))
        .collect();
    json!(parts.join(", "))
}

fn param_kind(o: &Value) -> Value {
    let pk = &o["spec"]["paramKind"];
    json!(if pk.is_object() {
        format!("{}/{}", s(&pk["apiVersion"]), s(&pk["kind"]))
    } else {
        UNSET.to_owned()
    })
}

fn param_ref(o: &Value) -> Value {
    let pr = &o["spec"]["paramRef"];
    json!(if !pr.is_object() {
        UNSET.to_owned()
    } else if !s(&pr["name"]).is_empty() {
        let ns = s(&pr["namespace"]);
        format!(
            "{}/{}",
            if ns.is_empty() { "*" } else { ns },
            s(&pr["name"])
        )
    } else if pr["selector"].is_object() {
        selector_go_string(&pr["selector"])
    } else {
        UNSET.to_owned()
    })
}

fn resource_claim_state(o: &Value) -> Value {
    let deleted = o["metadata"]["deletionTimestamp"].is_string();
    let mut states = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if !o["status"]["allocation"].is_object() {
        if !deleted {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if count(&o["status"]["reservedFor"]) > 0 {
            states.push("reserved");
        }
    }
    json!(states.join(","))
}

/// A number, or `<none>` (the priority level printer's optional integers).
fn int_or_none(v: &Value) -> Value {
    if v.is_i64() {
        v.clone()
    } else {
        json!(NONE)
    }
}

fn plc_queuing(o: &Value, field: &str) -> Value {
    let limited = &o["spec"]["limited"];
    if !limited.is_object() {
        return json!(NONE);
    }
    int_or_none(&limited["limitResponse"]["queuing"][field])
}

// ---- printers ----------------------------------------------------------------------------

/// The printer of a kind, if upstream has one.
fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let c = match (info.group, info.plural) {
        ("", "pods") => vec![
            col("Name", name),
            col("Ready", |o| json!(pod_summary(o).0)),
            col("Status", |o| json!(pod_summary(o).1)),
            col("Restarts", |o| json!(pod_summary(o).2)),
            col("Age", age),
            wide("IP", |o| or(s(&o["status"]["podIPs"][0]["ip"]), NONE)),
            wide("Node", |o| or(s(&o["spec"]["nodeName"]), NONE)),
            wide("Nominated Node", |o| {
                or(s(&o["status"]["nominatedNodeName"]), NONE)
            }),
            wide("Readiness Gates", pod_readiness_gates),
        ],
        ("", "podtemplates") => vec![
            col("Name", name),
            col("Containers", |o| container_names(&o["template"]["spec"])),
            col("Images", |o| container_images(&o["template"]["spec"])),
            col("Pod Labels", |o| {
                json!(labels_text(&o["template"]["metadata"]["labels"]))
            }),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            col("Name", name),
            col("Min Available", |o| {
                int_or_string(&o["spec"]["minAvailable"])
            }),
            col("Max Unavailable", |o| {
                int_or_string(&o["spec"]["maxUnavailable"])
            }),
            int_col("Allowed Disruptions", |o| {
                json!(int(&o["status"]["disruptionsAllowed"]))
            }),
            col("Age", age),
        ],
        ("", "replicationcontrollers") => vec![
            col("Name", name),
            int_col("Desired", |o| json!(int(&o["spec"]["replicas"]))),
            int_col("Current", |o| json!(int(&o["status"]["replicas"]))),
            int_col("Ready", |o| json!(int(&o["status"]["readyReplicas"]))),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| json!(labels_text(&o["spec"]["selector"]))),
        ],
        ("apps", "replicasets") => vec![
            col("Name", name),
            int_col("Desired", |o| json!(int(&o["spec"]["replicas"]))),
            int_col("Current", |o| json!(int(&o["status"]["replicas"]))),
            int_col("Ready", |o| json!(int(&o["status"]["readyReplicas"]))),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| selector_or_none(&o["spec"]["selector"])),
        ],
        ("apps", "daemonsets") => vec![
            col("Name", name),
            int_col("Desired", |o| {
                json!(int(&o["status"]["desiredNumberScheduled"]))
            }),
            int_col("Current", |o| {
                json!(int(&o["status"]["currentNumberScheduled"]))
            }),
            int_col("Ready", |o| json!(int(&o["status"]["numberReady"]))),
            int_col("Up-to-date", |o| {
                json!(int(&o["status"]["updatedNumberScheduled"]))
            }),
            int_col("Available", |o| json!(int(&o["status"]["numberAvailable"]))),
            col("Node Selector", |o| {
                json!(labels_text(&o["spec"]["template"]["spec"]["nodeSelector"]))
            }),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| selector_or_none(&o["spec"]["selector"])),
        ],
        ("batch", "jobs") => vec![
            col("Name", name),
            col("Status", job_status),
            col("Completions", job_completions),
            col("Duration", job_duration),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| selector_or_none(&o["spec"]["selector"])),
        ],
        ("batch", "cronjobs") => vec![
            col("Name", name),
            col("Schedule", |o| json!(s(&o["spec"]["schedule"]))),
            col("Timezone", |o| {
                json!(o["spec"]["timeZone"].as_str().unwrap_or(NONE))
            }),
            column("Suspend", "boolean", 0, |o| bool_ptr(&o["spec"]["suspend"])),
            int_col("Active", |o| json!(count(&o["status"]["active"]))),
            col("Last Schedule", |o| {
                json!(since(&o["status"]["lastScheduleTime"]).unwrap_or_else(|| NONE.into()))
            }),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| {
                selector_or_none(&o["spec"]["jobTemplate"]["spec"]["selector"])
            }),
        ],
        ("", "services") => vec![
            col("Name", name),
            col("Type", |o| {
                json!(o["spec"]["type"].as_str().unwrap_or("ClusterIP"))
            }),
            col("Cluster-IP", |o| or(s(&o["spec"]["clusterIPs"][0]), NONE)),
            col("External-IP", service_external_ip),
            col("Port(s)", service_ports),
            col("Age", age),
            wide("Selector", |o| json!(labels_text(&o["spec"]["selector"]))),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            col("Name", name),
            col("Class", |o| {
                json!(o["spec"]["ingressClassName"].as_str().unwrap_or(NONE))
            }),
            col("Hosts", ingress_hosts),
            col("Address", |o| {
                json!(load_balancer(&o["status"]["loadBalancer"]))
            }),
            col("Ports", |o| {
                json!(if count(&o["spec"]["tls"]) > 0 {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            col("Age", age),
        ],
        ("networking.k8s.io", "ingressclasses") => vec![
            col("Name", |o| {
                name_default(o, &["ingressclass.kubernetes.io/is-default-class"])
            }),
            col("Controller", |o| json!(s(&o["spec"]["controller"]))),
            col("Parameters", |o| {
                let p = &o["spec"]["parameters"];
                json!(if !p.is_object() {
                    NONE.to_owned()
                } else if p["apiGroup"].is_string() {
                    format!("{}.{}/{}", s(&p["kind"]), s(&p["apiGroup"]), s(&p["name"]))
                } else {
                    format!("{}/{}", s(&p["kind"]), s(&p["name"]))
                })
            }),
            col("Age", age),
        ],
        ("apps", "statefulsets") => vec![
            col("Name", name),
            col("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    int(&o["status"]["readyReplicas"]),
                    int(&o["spec"]["replicas"])
                ))
            }),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
        ],
        ("", "endpoints") => vec![
            col("Name", name),
            col("Endpoints", |o| json!(endpoints_text(o))),
            col("Age", age),
        ],
        ("", "nodes") => vec![
            col("Name", name),
            col("Status", node_status),
            col("Roles", node_roles),
            col("Age", age),
            col("Version", |o| {
                json!(s(&o["status"]["nodeInfo"]["kubeletVersion"]))
            }),
            wide("Internal-IP", |o| node_address(o, "InternalIP")),
            wide("External-IP", |o| node_address(o, "ExternalIP")),
            wide("OS-Image", |o| {
                or(s(&o["status"]["nodeInfo"]["osImage"]), UNKNOWN)
            }),
            wide("Kernel-Version", |o| {
                or(s(&o["status"]["nodeInfo"]["kernelVersion"]), UNKNOWN)
            }),
            wide("Container-Runtime", |o| {
                or(
                    s(&o["status"]["nodeInfo"]["containerRuntimeVersion"]),
                    UNKNOWN,
                )
            }),
        ],
        // events.k8s.io Events are converted to core ones before printing (conversion.rs).
        ("", "events") => vec![
            col("Last Seen", |o| json!(event_times(o).0)),
            col("Type", |o| json!(s(&o["type"]))),
            col("Reason", |o| json!(s(&o["reason"]))),
            col("Object", event_object),
            wide("Subobject", |o| json!(s(&o["involvedObject"]["fieldPath"]))),
            wide("Source", event_source),
            col("Message", |o| json!(s(&o["message"]).trim())),
            wide("First Seen", |o| json!(event_times(o).1)),
            wide("Count", |o| json!(event_times(o).2)),
            wide("Name", name),
        ],
        ("", "namespaces") => vec![
            col("Name", name),
            col("Status", |o| json!(s(&o["status"]["phase"]))),
            col("Age", age),
        ],
        ("", "secrets") => vec![
            col("Name", name),
            col("Type", |o| json!(s(&o["type"]))),
            col("Data", |o| json!(count(&o["data"]))),
            col("Age", age),
        ],
        ("", "serviceaccounts") => vec![
            col("Name", name),
            col("Secrets", |o| json!(count(&o["secrets"]))),
            col("Age", age),
        ],
        ("", "persistentvolumes") => vec![
            col("Name", name),
            col("Capacity", |o| {
                json!(quantity(&o["spec"]["capacity"]["storage"]))
            }),
            col("Access Modes", |o| {
                json!(access_modes(&o["spec"]["accessModes"]))
            }),
            col("Reclaim Policy", |o| {
                json!(s(&o["spec"]["persistentVolumeReclaimPolicy"]))
            }),
            col("Status", volume_phase),
            col("Claim", |o| {
                let c = &o["spec"]["claimRef"];
                json!(if c.is_object() {
                    format!("{}/{}", s(&c["namespace"]), s(&c["name"]))
                } else {
                    String::new()
                })
            }),
            col("StorageClass", storage_class),
            col("VolumeAttributesClass", |o| {
                json!(o["spec"]["volumeAttributesClassName"]
                    .as_str()
                    .unwrap_or(UNSET))
            }),
            col("Reason", |o| json!(s(&o["status"]["reason"]))),
            col("Age", age),
            wide("VolumeMode", |o| {
                json!(o["spec"]["volumeMode"].as_str().unwrap_or(UNSET))
            }),
        ],
        ("", "persistentvolumeclaims") => vec![
            col("Name", name),
            col("Status", volume_phase),
            col("Volume", |o| json!(s(&o["spec"]["volumeName"]))),
            col("Capacity", |o| {
                json!(if s(&o["spec"]["volumeName"]).is_empty() {
                    String::new()
                } else {
                    quantity(&o["status"]["capacity"]["storage"])
                })
            }),
            col("Access Modes", |o| {
                json!(if s(&o["spec"]["volumeName"]).is_empty() {
                    String::new()
                } else {
                    access_modes(&o["status"]["accessModes"])
                })
            }),
            col("StorageClass", storage_class),
            col("VolumeAttributesClass", |o| {
                json!(o["spec"]["volumeAttributesClassName"]
                    .as_str()
                    .unwrap_or(UNSET))
            }),
            col("Age", age),
            wide("VolumeMode", |o| {
                json!(o["spec"]["volumeMode"].as_str().unwrap_or(UNSET))
            }),
        ],
        ("", "componentstatuses") => vec![
            col("Name", name),
            col("Status", |o| json!(component_health(o).0)),
            col("Message", |o| json!(component_health(o).1)),
            col("Error", |o| json!(component_health(o).2)),
        ],
        ("apps", "deployments") => vec![
            col("Name", name),
            col("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    int(&o["status"]["readyReplicas"]),
                    int(&o["spec"]["replicas"])
                ))
            }),
            col("Up-to-date", |o| {
                json!(int(&o["status"]["updatedReplicas"]))
            }),
            col("Available", |o| {
                json!(int(&o["status"]["availableReplicas"]))
            }),
            col("Age", age),
            wide("Containers", |o| {
                container_names(&o["spec"]["template"]["spec"])
            }),
            wide("Images", |o| {
                container_images(&o["spec"]["template"]["spec"])
            }),
            wide("Selector", |o| json!(selector_text(&o["spec"]["selector"]))),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            col("Name", name),
            col("Reference", |o| {
                slash(
                    &o["spec"]["scaleTargetRef"]["kind"],
                    &o["spec"]["scaleTargetRef"]["name"],
                )
            }),
            col("Targets", |o| json!(hpa_targets(o))),
            col("MinPods", |o| {
                json!(o["spec"]["minReplicas"]
                    .as_i64()
                    .map_or_else(|| UNSET.to_owned(), |n| n.to_string()))
            }),
            col("MaxPods", |o| json!(int(&o["spec"]["maxReplicas"]))),
            col("Replicas", |o| json!(int(&o["status"]["currentReplicas"]))),
            col("Age", age),
        ],
        ("", "configmaps") => vec![
            col("Name", name),
            col("Data", |o| {
                json!(count(&o["data"]) + count(&o["binaryData"]))
            }),
            col("Age", age),
        ],
        ("networking.k8s.io", "networkpolicies") => vec![
            col("Name", name),
            col("Pod-Selector", |o| {
                selector_or_none(&o["spec"]["podSelector"])
            }),
            col("Age", age),
        ],
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            col("Name", name),
            col("Role", |o| {
                slash(&o["roleRef"]["kind"], &o["roleRef"]["name"])
            }),
            col("Age", age),
            wide("Users", |o| subjects(o, "User")),
            wide("Groups", |o| subjects(o, "Group")),
            wide("ServiceAccounts", |o| subjects(o, "ServiceAccount")),
        ],
        ("certificates.k8s.io", "certificatesigningrequests") => vec![
            col("Name", name),
            col("Age", age),
            col("SignerName", |o| or(s(&o["spec"]["signerName"]), NONE)),
            col("Requestor", |o| json!(s(&o["spec"]["username"]))),
            col("RequestedDuration", |o| {
                json!(o["spec"]["expirationSeconds"]
                    .as_i64()
                    .map_or_else(|| NONE.to_owned(), human_duration))
            }),
            col("Condition", csr_condition),
        ],
        ("certificates.k8s.io", "clustertrustbundles") => vec![
            col("Name", name),
            col("SignerName", |o| or(s(&o["spec"]["signerName"]), NONE)),
        ],
        ("coordination.k8s.io", "leases") => vec![
            col("Name", name),
            col("Holder", |o| json!(s(&o["spec"]["holderIdentity"]))),
            col("Age", age),
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            col("Name", |o| {
                name_default(
                    o,
                    &[
                        "storageclass.kubernetes.io/is-default-class",
                        "storageclass.beta.kubernetes.io/is-default-class",
                    ],
                )
            }),
            col("Provisioner", |o| json!(s(&o["provisioner"]))),
            col("ReclaimPolicy", |o| {
                json!(o["reclaimPolicy"].as_str().unwrap_or("Delete"))
            }),
            col("VolumeBindingMode", |o| {
                json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate"))
            }),
            col("AllowVolumeExpansion", |o| {
                json!(o["allowVolumeExpansion"] == true)
            }),
            col("Age", age),
        ],
        ("storage.k8s.io", "volumeattributesclasses") => vec![
            col("Name", |o| {
                name_default(
                    o,
                    &["volumeattributesclass.alpha.kubernetes.io/is-default-class"],
                )
            }),
            col("DriverName", |o| json!(s(&o["driverName"]))),
            col("Age", age),
        ],
        ("apps", "controllerrevisions") => vec![
            col("Name", name),
            col("Controller", controller_of),
            col("Revision", |o| json!(int(&o["revision"]))),
            col("Age", age),
        ],
        ("", "resourcequotas") => vec![
            col("Name", name),
            col("Request", |o| quota_column(o, false)),
            col("Limit", |o| quota_column(o, true)),
            col("Age", age),
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            col("Name", name),
            int_col("Value", |o| json!(int(&o["value"]))),
            bool_col("Global-Default", |o| json!(o["globalDefault"] == true)),
            col("Age", age),
            col("PreemptionPolicy", |o| json!(s(&o["preemptionPolicy"]))),
        ],
        ("node.k8s.io", "runtimeclasses") => vec![
            col("Name", name),
            col("Handler", |o| json!(s(&o["handler"]))),
            col("Age", age),
        ],
        ("storage.k8s.io", "volumeattachments") => vec![
            col("Name", name),
            col("Attacher", |o| json!(s(&o["spec"]["attacher"]))).format("name"),
            col("PV", |o| {
                json!(s(&o["spec"]["source"]["persistentVolumeName"]))
            }),
            col("Node", |o| json!(s(&o["spec"]["nodeName"]))),
            bool_col("Attached", |o| json!(o["status"]["attached"] == true)),
            col("Age", age),
        ],
        ("discovery.k8s.io", "endpointslices") => vec![
            col("Name", name),
            col("AddressType", |o| json!(s(&o["addressType"]))),
            col("Ports", |o| {
                let ports: Vec<String> = items(&o["ports"])
                    .iter()
                    .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(name)) => name.to_owned(),
                        (None, None) => "*".to_owned(),
                    })
                    .collect();
                json!(list_or_unset(&ports))
            }),
            col("Endpoints", |o| {
                let addresses: Vec<String> = items(&o["endpoints"])
                    .iter()
                    .flat_map(|e| items(&e["addresses"]).iter().map(|a| s(a).to_owned()))
                    .collect();
                json!(list_or_unset(&addresses))
            }),
            col("Age", age),
        ],
        ("storage.k8s.io", "csinodes") => vec![
            col("Name", name),
            int_col("Drivers", |o| json!(count(&o["spec"]["drivers"]))),
            col("Age", age),
        ],
        ("storage.k8s.io", "csidrivers") => vec![
            col("Name", name),
            bool_col("AttachRequired", |o| {
                json!(o["spec"]["attachRequired"] != false)
            }),
            bool_col("PodInfoOnMount", |o| {
                json!(o["spec"]["podInfoOnMount"] == true)
            }),
            bool_col("StorageCapacity", |o| {
                json!(o["spec"]["storageCapacity"] == true)
            }),
            col("TokenRequests", |o| {
                let requests = &o["spec"]["tokenRequests"];
                json!(if requests.is_array() {
                    items(requests)
                        .iter()
                        .map(|t| s(&t["audience"]))
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    UNSET.to_owned()
                })
            }),
            bool_col("RequiresRepublish", |o| {
                json!(o["spec"]["requiresRepublish"] == true)
            }),
            col("Modes", |o| {
                let modes: Vec<&str> = items(&o["spec"]["volumeLifecycleModes"])
                    .iter()
                    .map(s)
                    .collect();
                or(&modes.join(","), NONE)
            }),
            col("Age", age),
        ],
        ("storage.k8s.io", "csistoragecapacities") => vec![
            col("Name", name),
            col("StorageClassName", |o| json!(s(&o["storageClassName"]))),
            col("Capacity", |o| {
                json!(if o["capacity"].is_null() {
                    UNSET.to_owned()
                } else {
                    quantity(&o["capacity"])
                })
            }),
        ],
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
        | ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => vec![
            col("Name", name),
            int_col("Webhooks", |o| json!(count(&o["webhooks"]))),
            col("Age", age),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => vec![
            col("Name", name),
            int_col("Validations", |o| json!(count(&o["spec"]["validations"]))),
            col("ParamKind", param_kind),
            col("Age", age),
        ],
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => vec![
            col("Name", name),
            int_col("Mutations", |o| json!(count(&o["spec"]["mutations"]))),
            col("ParamKind", param_kind),
            col("Age", age),
        ],
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
        | ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => vec![
            col("Name", name),
            col("PolicyName", |o| json!(s(&o["spec"]["policyName"]))),
            col("ParamRef", param_ref),
            col("Age", age),
        ],
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => vec![
            col("Name", name),
            col("PriorityLevel", |o| {
                json!(s(&o["spec"]["priorityLevelConfiguration"]["name"]))
            }),
            col("MatchingPrecedence", |o| {
                json!(int(&o["spec"]["matchingPrecedence"]))
            }),
            col("DistinguisherMethod", |o| {
                let d = &o["spec"]["distinguisherMethod"];
                json!(if d.is_object() { s(&d["type"]) } else { NONE })
            }),
            col("Age", age),
            col("MissingPL", |o| {
                let dangling = items(&o["status"]["conditions"])
                    .iter()
                    .find(|c| c["type"] == "Dangling")
                    .map(|c| s(&c["status"]));
                json!(dangling.unwrap_or("?"))
            }),
        ],
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => vec![
            col("Name", name),
            col("Type", |o| json!(s(&o["spec"]["type"]))),
            col("NominalConcurrencyShares", |o| {
                let limited = &o["spec"]["limited"];
                if limited.is_object() {
                    json!(int(&limited["nominalConcurrencyShares"]))
                } else {
                    json!(NONE)
                }
            }),
            col("Queues", |o| plc_queuing(o, "queues")),
            col("HandSize", |o| plc_queuing(o, "handSize")),
            col("QueueLengthLimit", |o| plc_queuing(o, "queueLengthLimit")),
            col("Age", age),
        ],
        ("resource.k8s.io", "deviceclasses" | "resourceclaimtemplates") => {
            vec![col("Name", name), col("Age", age)]
        }
        ("resource.k8s.io", "resourceclaims") => vec![
            col("Name", name),
            col("State", resource_claim_state),
            col("Age", age),
        ],
        ("resource.k8s.io", "resourceslices") => vec![
            col("Name", name),
            col("Node", |o| json!(s(&o["spec"]["nodeName"]))),
            col("Driver", |o| json!(s(&o["spec"]["driver"]))),
            col("Pool", |o| json!(s(&o["spec"]["pool"]["name"]))),
            col("Age", age),
        ],
        ("networking.k8s.io", "servicecidrs") => vec![
            col("Name", name),
            col("CIDRs", |o| {
                json!(items(&o["spec"]["cidrs"])
                    .iter()
                    .map(s)
                    .collect::<Vec<_>>()
                    .join(","))
            }),
            col("Age", age),
        ],
        ("networking.k8s.io", "ipaddresses") => vec![
            col("Name", name),
            col("ParentRef", |o| {
                let p = &o["spec"]["parentRef"];
                if !p.is_object() {
                    return json!(NONE);
                }
                let group = s(&p["group"]);
                let mut text = if group.is_empty() {
                    s(&p["resource"]).to_lowercase()
                } else {
                    format!("{}.{group}", s(&p["resource"])).to_lowercase()
                };
                if !s(&p["namespace"]).is_empty() {
                    text = format!("{text}/{}", s(&p["namespace"]));
                }
                json!(format!("{text}/{}", s(&p["name"])))
            }),
            // Upstream's row carries the age too, though no column names it.
            col("", age),
        ],
        ("storagemigration.k8s.io", "storageversionmigrations") => vec![
            col("Name", name).format(""),
            col("Resource", |o| {
                let r = &o["spec"]["resource"];
                json!(format!("{}.{}", s(&r["resource"]), s(&r["group"])))
            }),
        ],
        ("apiregistration.k8s.io", "apiservices") => vec![
            col("Name", name),
            col("Service", |o| {
                let svc = &o["spec"]["service"];
                json!(if svc.is_object() {
                    format!("{}/{}", s(&svc["namespace"]), s(&svc["name"]))
                } else {
                    "Local".to_owned()
                })
            }),
            col("Available", |o| {
                let available = items(&o["status"]["conditions"])
                    .iter()
                    .find(|c| c["type"] == "Available");
                json!(match available {
                    None => "Unknown".to_owned(),
                    Some(c) if c["status"] == "True" => "True".to_owned(),
                    Some(c) => format!("{} ({})", s(&c["status"]), s(&c["reason"])),
                })
            }),
            col("Age", age),
        ],
        _ => return None,
    };
    Some(c)
}

/// An IntOrString as upstream's `String()` prints it, or `N/A` when unset.
fn int_or_string(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.to_string()),
        Value::String(t) => json!(t),
        _ => json!("N/A"),
    }
}

/// Upstream's `formatHosts`: the first three hosts of the rules, `+ N more...` counting the
/// rules beyond three, `*` when no rule names a host.
fn ingress_hosts(o: &Value) -> Value {
    let rules = items(&o["spec"]["rules"]);
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == 3 {
            more = true;
        }
        if !more && !s(&rule["host"]).is_empty() {
            list.push(s(&rule["host"]).to_owned());
        }
    }
    json!(if list.is_empty() {
        "*".to_owned()
    } else if more {
        format!("{} + {} more...", list.join(","), rules.len() - 3)
    } else {
        list.join(",")
    })
}

fn volume_phase(o: &Value) -> Value {
    if o["metadata"]["deletionTimestamp"].is_string() {
        json!("Terminating")
    } else {
        json!(s(&o["status"]["phase"]))
    }
}

/// (status, message, error) of a component's Healthy condition.
fn component_health(o: &Value) -> (String, String, String) {
    match items(&o["conditions"])
        .iter()
        .find(|c| c["type"] == "Healthy")
    {
        Some(c) => (
            if c["status"] == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            }
            .to_owned(),
            s(&c["message"]).to_owned(),
            s(&c["error"]).to_owned(),
        ),
        None => ("Unknown".to_owned(), String::new(), String::new()),
    }
}

/// Rows in upstream's list order where it is not the store's (flow schemas by precedence).
fn sort_rows(info: &ResourceInfo, objects: &mut [&Value]) {
    if (info.group, info.plural) == ("flowcontrol.apiserver.k8s.io", "flowschemas") {
        objects.sort_by(|a, b| {
            int(&a["spec"]["matchingPrecedence"])
                .cmp(&int(&b["spec"]["matchingPrecedence"]))
                .then_with(|| s(&a["metadata"]["name"]).cmp(s(&b["metadata"]["name"])))
        });
    }
}

/// Builds a Table of `objects`.
pub fn for_objects(
    info: &ResourceInfo,
    objects: &[Value],
    resource_version: &str,
    query: &Query,
) -> Value {
    let include = query.get("includeObject").unwrap_or("Metadata");
    let printer = columns(info);
    let mut ordered: Vec<&Value> = objects.iter().collect();
    sort_rows(info, &mut ordered);
    let rows: Vec<Value> = ordered
        .into_iter()
        .map(|obj| {
            let cells = match &printer {
                Some(cols) => Value::Array(cols.iter().map(|c| (c.cell)(obj)).collect()),
                None => json!([obj["metadata"]["name"], obj["metadata"]["creationTimestamp"]]),
            };
            let object = match include {
                "None" => Value::Null,
                "Object" => obj.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
            };
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    let column_definitions = match &printer {
        Some(cols) => cols
            .iter()
            // A nameless column is a cell upstream sends without defining a column for it.
            .filter(|c| !c.name.is_empty())
            .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": "", "priority": c.priority}))
            .collect(),
        None => vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0}),
            json!({"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "priority": 0}),
        ],
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_upstream() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400 * 5, "3y5d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    /// A timestamp `secs` seconds ago.
    fn ago(secs: i64) -> String {
        crate::meta::rfc3339(crate::meta::now_secs() - secs)
    }

    fn info(group: &str, plural: &str) -> &'static ResourceInfo {
        rkube_api::resources::builtin()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap_or_else(|| panic!("{group}/{plural} is served"))
    }

    fn table(group: &str, plural: &str, obj: Value) -> Value {
        for_objects(info(group, plural), &[obj], "1", &Query::default())
    }

    fn cells(group: &str, plural: &str, obj: Value) -> Value {
        table(group, plural, obj)["rows"][0]["cells"].clone()
    }

    /// The columns as kubectl heads them: (name, priority).
    fn heads(group: &str, plural: &str) -> Vec<(String, u64)> {
        table(group, plural, json!({"metadata": {"name": "x"}}))["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["priority"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Each case: kind, object, expected cells (every column, wide ones included).
    fn check(cases: Vec<(&str, &str, Value, Value)>) {
        for (group, plural, obj, want) in cases {
            let got = cells(group, plural, obj.clone());
            assert_eq!(got, want, "{group}/{plural} of {obj}");
        }
    }

    #[test]
    fn every_printer_has_upstreams_columns() {
        let names = |group: &str, plural: &str| -> String {
            heads(group, plural)
                .iter()
                .map(|(n, p)| if *p == 1 { format!("[{n}]") } else { n.clone() })
                .collect::<Vec<_>>()
                .join("|")
        };
        for (group, plural, want) in [
            ("", "pods", "Name|Ready|Status|Restarts|Age|[IP]|[Node]|[Nominated Node]|[Readiness Gates]"),
            ("", "podtemplates", "Name|Containers|Images|Pod Labels"),
            ("", "replicationcontrollers", "Name|Desired|Current|Ready|Age|[Containers]|[Images]|[Selector]"),
            ("apps", "deployments", "Name|Ready|Up-to-date|Available|Age|[Containers]|[Images]|[Selector]"),
            ("apps", "statefulsets", "Name|Ready|Age|[Containers]|[Images]"),
            ("apps", "daemonsets", "Name|Desired|Current|Ready|Up-to-date|Available|Node Selector|Age|[Containers]|[Images]|[Selector]"),
            ("batch", "jobs", "Name|Status|Completions|Duration|Age|[Containers]|[Images]|[Selector]"),
            ("batch", "cronjobs", "Name|Schedule|Timezone|Suspend|Active|Last Schedule|Age|[Containers]|[Images]|[Selector]"),
            ("", "nodes", "Name|Status|Roles|Age|Version|[Internal-IP]|[External-IP]|[OS-Image]|[Kernel-Version]|[Container-Runtime]"),
            ("", "events", "Last Seen|Type|Reason|Object|[Subobject]|[Source]|Message|[First Seen]|[Count]|[Name]"),
            ("events.k8s.io", "events", "Name|Created At"),
            ("", "persistentvolumes", "Name|Capacity|Access Modes|Reclaim Policy|Status|Claim|StorageClass|VolumeAttributesClass|Reason|Age|[VolumeMode]"),
            ("", "persistentvolumeclaims", "Name|Status|Volume|Capacity|Access Modes|StorageClass|VolumeAttributesClass|Age|[VolumeMode]"),
            ("rbac.authorization.k8s.io", "rolebindings", "Name|Role|Age|[Users]|[Groups]|[ServiceAccounts]"),
            ("rbac.authorization.k8s.io", "roles", "Name|Created At"),
            ("rbac.authorization.k8s.io", "clusterroles", "Name|Created At"),
            ("", "limitranges", "Name|Created At"),
            ("", "resourcequotas", "Name|Request|Limit|Age"),
            ("", "componentstatuses", "Name|Status|Message|Error"),
            ("certificates.k8s.io", "certificatesigningrequests", "Name|Age|SignerName|Requestor|RequestedDuration|Condition"),
            ("certificates.k8s.io", "clustertrustbundles", "Name|SignerName"),
            ("storage.k8s.io", "csidrivers", "Name|AttachRequired|PodInfoOnMount|StorageCapacity|TokenRequests|RequiresRepublish|Modes|Age"),
            ("storage.k8s.io", "csistoragecapacities", "Name|StorageClassName|Capacity"),
            ("flowcontrol.apiserver.k8s.io", "flowschemas", "Name|PriorityLevel|MatchingPrecedence|DistinguisherMethod|Age|MissingPL"),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", "Name|Type|NominalConcurrencyShares|Queues|HandSize|QueueLengthLimit|Age"),
            ("networking.k8s.io", "ipaddresses", "Name|ParentRef"),
            ("storagemigration.k8s.io", "storageversionmigrations", "Name|Resource"),
            ("apiregistration.k8s.io", "apiservices", "Name|Service|Available|Age"),
            ("resource.k8s.io", "resourceslices", "Name|Node|Driver|Pool|Age"),
        ] {
            assert_eq!(names(group, plural), want, "{group}/{plural}");
        }
        // Upstream's column types and formats, where they are not plain strings.
        let defs =
            table("storage.k8s.io", "volumeattachments", json!({}))["columnDefinitions"].clone();
        assert_eq!(defs[1]["format"], "name");
        assert_eq!(defs[4]["type"], "boolean");
        let defs = table(
            "storagemigration.k8s.io",
            "storageversionmigrations",
            json!({}),
        )["columnDefinitions"]
            .clone();
        assert_eq!(defs[0]["format"], "");
        let defs = table("", "pods", json!({}))["columnDefinitions"].clone();
        assert_eq!(
            (defs[0]["format"].as_str(), defs[3]["type"].as_str()),
            (Some("name"), Some("string"))
        );
    }

    #[test]
    fn pod_rows_as_upstream() {
        let now = ago(0);
        let pod = |status: Value| json!({"metadata": {"name": "p", "creationTimestamp": now}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": status});
        check(vec![
            // Running, one container ready, restarts with the age of the last one.
            (
                "",
                "pods",
                pod(
                    json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}], "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 3, "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": ago(300)}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
                ),
                json!([
                    "p",
                    "1/2",
                    "Running",
                    "3 (5m ago)",
                    "0s",
                    "10.0.0.5",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            // A waiting container's reason wins; restarts without a recorded end are a number.
            (
                "",
                "pods",
                pod(json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "state": {"terminated": {"exitCode": 1}}}]})),
                json!([
                    "p",
                    "0/2",
                    "CrashLoopBackOff",
                    "2",
                    "0s",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            // A terminated container without a reason shows its signal or exit code.
            (
                "",
                "pods",
                pod(json!({"phase": "Running", "containerStatuses": [
                {"name": "b", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})),
                json!(["p", "0/2", "Signal:9", "0", "0s", "<none>", "<none>", "<none>", "<none>"]),
            ),
            // Scheduling gates.
            (
                "",
                "pods",
                pod(
                    json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                json!([
                    "p",
                    "0/2",
                    "SchedulingGated",
                    "0",
                    "0s",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
        ]);
        // Init containers: the first unfinished one names the status.
        let init = json!({"metadata": {"name": "i", "creationTimestamp": now}, "spec": {"initContainers": [{"name": "x"}, {"name": "y"}], "containers": [{"name": "a"}], "nodeName": "n1", "readinessGates": [{"conditionType": "g1"}, {"conditionType": "g2"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "n2", "conditions": [{"type": "g1", "status": "True"}], "initContainerStatuses": [
                {"name": "x", "state": {"terminated": {"exitCode": 0}}},
                {"name": "y", "restartCount": 1, "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(
            cells("", "pods", init),
            json!(["i", "0/1", "Init:1/2", "1", "0s", "<none>", "n1", "n2", "1/2"])
        );
        // A started sidecar counts towards READY and its restarts are kept.
        let sidecar = json!({"metadata": {"name": "s", "creationTimestamp": now}, "spec": {"initContainers": [{"name": "log", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}], "initContainerStatuses": [{"name": "log", "started": true, "ready": true, "restartCount": 4, "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}});
        let c = cells("", "pods", sidecar);
        assert_eq!(
            (&c[1], &c[2], &c[3]),
            (&json!("2/2"), &json!("Running"), &json!("4"))
        );
        // Deleting: Terminating, except once finished; NodeLost reads Unknown.
        let deleting = |phase: &str, reason: &str| json!({"metadata": {"name": "d", "creationTimestamp": now, "deletionTimestamp": now}, "spec": {"containers": []}, "status": {"phase": phase, "reason": reason}});
        assert_eq!(cells("", "pods", deleting("Running", ""))[2], "Terminating");
        assert_eq!(cells("", "pods", deleting("Succeeded", ""))[2], "Succeeded");
        assert_eq!(
            cells("", "pods", deleting("Running", "NodeLost"))[2],
            "Unknown"
        );
        // A completed container next to a running one: Running when ready, NotReady otherwise.
        let mixed = |ready: &str| {
            json!({"metadata": {"name": "m", "creationTimestamp": now}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}], "containerStatuses": [
                {"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}},
                {"name": "b", "ready": true, "state": {"running": {}}}]}})
        };
        assert_eq!(cells("", "pods", mixed("True"))[2], "Running");
        assert_eq!(cells("", "pods", mixed("False"))[2], "NotReady");
    }

    #[test]
    fn workload_rows_as_upstream() {
        let now = ago(0);
        let template = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}});
        let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}, {"key": "canary", "operator": "DoesNotExist"}]});
        check(vec![
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "d", "creationTimestamp": ago(600)}, "spec": {"replicas": 3, "selector": selector, "template": template}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
                json!([
                    "d",
                    "2/3",
                    3,
                    2,
                    "10m",
                    "web,log",
                    "nginx:1,busybox",
                    "app=web,!canary,env in (dev,prod)"
                ]),
            ),
            (
                "apps",
                "replicasets",
                json!({"metadata": {"name": "r", "creationTimestamp": now}, "spec": {"replicas": 3, "template": template}, "status": {"replicas": 3, "readyReplicas": 2}}),
                json!(["r", 3, 3, 2, "0s", "web,log", "nginx:1,busybox", "<none>"]),
            ),
            (
                "",
                "replicationcontrollers",
                json!({"metadata": {"name": "rc", "creationTimestamp": now}, "spec": {"replicas": 1, "selector": {"b": "2", "a": "1"}, "template": template}, "status": {"replicas": 1}}),
                json!(["rc", 1, 1, 0, "0s", "web,log", "nginx:1,busybox", "a=1,b=2"]),
            ),
            (
                "apps",
                "statefulsets",
                json!({"metadata": {"name": "s", "creationTimestamp": now}, "spec": {"replicas": 2, "template": template}, "status": {"readyReplicas": 1}}),
                json!(["s", "1/2", "0s", "web,log", "nginx:1,busybox"]),
            ),
            (
                "apps",
                "daemonsets",
                json!({"metadata": {"name": "ds", "creationTimestamp": now}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "i"}]}}},
                "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}}),
                json!(["ds", 2, 2, 1, 2, 1, "disk=ssd", "0s", "c", "i", "app=web"]),
            ),
            (
                "",
                "podtemplates",
                json!({"metadata": {"name": "pt"}, "template": template}),
                json!(["pt", "web,log", "nginx:1,busybox", "app=web,tier=fe"]),
            ),
        ]);
    }

    #[test]
    fn job_rows_as_upstream() {
        let now = ago(0);
        let job = |spec: Value, status: Value| json!({"metadata": {"name": "j", "creationTimestamp": now}, "spec": spec, "status": status});
        check(vec![
            (
                "batch",
                "jobs",
                job(
                    json!({"completions": 2, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}),
                    json!({"succeeded": 2, "startTime": ago(200), "completionTime": ago(50), "conditions": [{"type": "Complete", "status": "True"}]}),
                ),
                json!([
                    "j",
                    "Complete",
                    "2/2",
                    "2m30s",
                    "0s",
                    "c",
                    "i",
                    "batch.kubernetes.io/controller-uid=u"
                ]),
            ),
            (
                "batch",
                "jobs",
                job(
                    json!({"parallelism": 3}),
                    json!({"succeeded": 1, "startTime": ago(30)}),
                ),
                json!(["j", "Running", "1/1 of 3", "30s", "0s", "", "", "<none>"]),
            ),
            (
                "batch",
                "jobs",
                job(
                    json!({}),
                    json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
                ),
                json!(["j", "Suspended", "0/1", "", "0s", "", "", "<none>"]),
            ),
            (
                "batch",
                "jobs",
                job(
                    json!({}),
                    json!({"conditions": [{"type": "FailureTarget", "status": "True"}]}),
                ),
                json!(["j", "FailureTarget", "0/1", "", "0s", "", "", "<none>"]),
            ),
            (
                "batch",
                "jobs",
                job(
                    json!({}),
                    json!({"conditions": [{"type": "Failed", "status": "True"}]}),
                ),
                json!(["j", "Failed", "0/1", "", "0s", "", "", "<none>"]),
            ),
            (
                "batch",
                "cronjobs",
                json!({"metadata": {"name": "cj", "creationTimestamp": now}, "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}}, "status": {"lastScheduleTime": ago(90), "active": [{}]}}),
                json!([
                    "cj",
                    "*/5 * * * *",
                    "<none>",
                    "False",
                    1,
                    "90s",
                    "0s",
                    "c",
                    "i",
                    "<none>"
                ]),
            ),
        ]);
    }

    #[test]
    fn service_and_network_rows_as_upstream() {
        let now = ago(0);
        let svc = |spec: Value, status: Value| json!({"metadata": {"name": "s", "creationTimestamp": now}, "spec": spec, "status": status});
        check(vec![
            (
                "",
                "services",
                svc(
                    json!({"type": "NodePort", "clusterIPs": ["10.43.0.10"], "selector": {"app": "web"}, "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
                    json!({}),
                ),
                json!([
                    "s",
                    "NodePort",
                    "10.43.0.10",
                    "<none>",
                    "80:30080/TCP,53/UDP",
                    "0s",
                    "app=web"
                ]),
            ),
            (
                "",
                "services",
                svc(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.43.0.11"], "ports": []}),
                    json!({}),
                ),
                json!([
                    "s",
                    "LoadBalancer",
                    "10.43.0.11",
                    "<pending>",
                    "<none>",
                    "0s",
                    "<none>"
                ]),
            ),
            (
                "",
                "services",
                svc(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.43.0.11"], "externalIPs": ["1.1.1.1"]}),
                    json!({"loadBalancer": {"ingress": [{"ip": "3.3.3.3"}, {"hostname": "lb.example.com"}, {"ip": "2.2.2.2"}]}}),
                ),
                json!([
                    "s",
                    "LoadBalancer",
                    "10.43.0.11",
                    "2.2.2.2,3.3.3.3,lb.example.com,1.1.1.1",
                    "<none>",
                    "0s",
                    "<none>"
                ]),
            ),
            (
                "",
                "services",
                svc(
                    json!({"type": "ExternalName", "externalName": "db.example.com"}),
                    json!({}),
                ),
                json!([
                    "s",
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "0s",
                    "<none>"
                ]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e", "creationTimestamp": now}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "ports": [{"port": 80}, {"port": 443}]}]}),
                json!([
                    "e",
                    "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more...",
                    "0s"
                ]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e", "creationTimestamp": now}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}),
                json!(["e", "10.0.0.1", "0s"]),
            ),
            (
                "",
                "endpoints",
                json!({"metadata": {"name": "e", "creationTimestamp": now}}),
                json!(["e", "<none>", "0s"]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "es", "creationTimestamp": now}, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}, {}, {"port": 9}],
                "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]}),
                json!([
                    "es",
                    "IPv4",
                    "80,dns,* + 1 more...",
                    "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
                    "0s"
                ]),
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": {"name": "es", "creationTimestamp": now}, "addressType": "IPv6"}),
                json!(["es", "IPv6", "<unset>", "<unset>", "0s"]),
            ),
            (
                "networking.k8s.io",
                "ingresses",
                json!({"metadata": {"name": "i", "creationTimestamp": now}, "spec": {"ingressClassName": "nginx", "tls": [{}], "rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "5.5.5.5"}]}}}),
                json!([
                    "i",
                    "nginx",
                    "a,b,c + 2 more...",
                    "5.5.5.5",
                    "80, 443",
                    "0s"
                ]),
            ),
            (
                "networking.k8s.io",
                "ingressclasses",
                json!({"metadata": {"name": "nginx", "creationTimestamp": now, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}, "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}),
                json!([
                    "nginx (default)",
                    "k8s.io/ingress-nginx",
                    "IngressParameters.k8s.example.com/external-lb",
                    "0s"
                ]),
            ),
            (
                "networking.k8s.io",
                "ingressclasses",
                json!({"metadata": {"name": "plain", "creationTimestamp": now}, "spec": {"controller": "c"}}),
                json!(["plain", "c", "<none>", "0s"]),
            ),
            (
                "networking.k8s.io",
                "networkpolicies",
                json!({"metadata": {"name": "np", "creationTimestamp": now}, "spec": {"podSelector": {}}}),
                json!(["np", "<none>", "0s"]),
            ),
            (
                "networking.k8s.io",
                "networkpolicies",
                json!({"metadata": {"name": "np", "creationTimestamp": now}, "spec": {"podSelector": {"matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["db"]}]}}}),
                json!(["np", "role notin (db)", "0s"]),
            ),
            (
                "networking.k8s.io",
                "servicecidrs",
                json!({"metadata": {"name": "kubernetes", "creationTimestamp": now}, "spec": {"cidrs": ["10.43.0.0/16", "fd00::/108"]}}),
                json!(["kubernetes", "10.43.0.0/16,fd00::/108", "0s"]),
            ),
            (
                "networking.k8s.io",
                "ipaddresses",
                json!({"metadata": {"name": "10.43.0.1", "creationTimestamp": now}, "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}}),
                json!(["10.43.0.1", "services/default/kubernetes", "0s"]),
            ),
            (
                "networking.k8s.io",
                "ipaddresses",
                json!({"metadata": {"name": "10.43.0.2", "creationTimestamp": now}, "spec": {"parentRef": {"group": "Gateway.networking.k8s.io", "resource": "Gateways", "name": "gw"}}}),
                json!(["10.43.0.2", "gateways.gateway.networking.k8s.io/gw", "0s"]),
            ),
        ]);
    }

    #[test]
    fn node_event_and_storage_rows_as_upstream() {
        let now = ago(0);
        check(vec![
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n", "creationTimestamp": now, "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "", "kubernetes.io/role": "etcd"}},
                "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}], "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian"}, "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}}),
                json!([
                    "n",
                    "NotReady,SchedulingDisabled",
                    "control-plane,etcd",
                    "0s",
                    "v1.37.0",
                    "192.168.1.2",
                    "<none>",
                    "Debian",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
            (
                "",
                "nodes",
                json!({"metadata": {"name": "n", "creationTimestamp": now}}),
                json!([
                    "n",
                    "Unknown",
                    "<none>",
                    "0s",
                    "",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>"
                ]),
            ),
            (
                "",
                "events",
                json!({"metadata": {"name": "ev"}, "type": "Normal", "reason": "Pulled", "message": " pulled \n", "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
                "source": {"component": "kubelet", "host": "n1"}, "firstTimestamp": ago(600), "lastTimestamp": ago(60), "count": 4}),
                json!([
                    "60s",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "spec.containers{web}",
                    "kubelet, n1",
                    "pulled",
                    "10m",
                    4,
                    "ev"
                ]),
            ),
            (
                "",
                "events",
                json!({"metadata": {"name": "ev"}, "type": "Warning", "reason": "R", "involvedObject": {"kind": "Node"}, "reportingComponent": "ctrl", "eventTime": "2000-01-01T00:00:00.000000Z", "series": {"count": 7, "lastObservedTime": ago(5)}}),
                json!([
                    "5s",
                    "Warning",
                    "R",
                    "node",
                    "",
                    "ctrl",
                    "",
                    human_duration(
                        crate::meta::now_secs()
                            - crate::meta::parse_rfc3339("2000-01-01T00:00:00Z").unwrap()
                    ),
                    7,
                    "ev"
                ]),
            ),
            (
                "",
                "persistentvolumes",
                json!({"metadata": {"name": "pv", "creationTimestamp": now, "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}}, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "new", "claimRef": {"namespace": "ns", "name": "c"}, "volumeMode": "Filesystem"}, "status": {"phase": "Bound"}}),
                json!([
                    "pv",
                    "5Gi",
                    "RWO,RWX",
                    "Retain",
                    "Bound",
                    "ns/c",
                    "old",
                    "<unset>",
                    "",
                    "0s",
                    "Filesystem"
                ]),
            ),
            (
                "",
                "persistentvolumeclaims",
                json!({"metadata": {"name": "c", "creationTimestamp": now}, "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeAttributesClassName": "gold"}, "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany", "ReadWriteOnce"]}}),
                json!(["c", "Bound", "pv1", "1Gi", "RWO,ROX", "fast", "gold", "0s", "<unset>"]),
            ),
            (
                "",
                "persistentvolumeclaims",
                json!({"metadata": {"name": "c", "creationTimestamp": now, "deletionTimestamp": now}, "spec": {}, "status": {"phase": "Pending", "capacity": {"storage": "1Gi"}}}),
                json!([
                    "c",
                    "Terminating",
                    "",
                    "",
                    "",
                    "",
                    "<unset>",
                    "0s",
                    "<unset>"
                ]),
            ),
            (
                "storage.k8s.io",
                "storageclasses",
                json!({"metadata": {"name": "local", "creationTimestamp": now, "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
                json!([
                    "local (default)",
                    "rancher.io/local-path",
                    "Delete",
                    "WaitForFirstConsumer",
                    false,
                    "0s"
                ]),
            ),
            (
                "storage.k8s.io",
                "volumeattributesclasses",
                json!({"metadata": {"name": "gold", "creationTimestamp": now}, "driverName": "csi.example.com"}),
                json!(["gold", "csi.example.com", "0s"]),
            ),
            (
                "storage.k8s.io",
                "volumeattachments",
                json!({"metadata": {"name": "va", "creationTimestamp": now}, "spec": {"attacher": "csi.example.com", "nodeName": "n1", "source": {"persistentVolumeName": "pv1"}}, "status": {"attached": true}}),
                json!(["va", "csi.example.com", "pv1", "n1", true, "0s"]),
            ),
            (
                "storage.k8s.io",
                "csinodes",
                json!({"metadata": {"name": "n1", "creationTimestamp": now}, "spec": {"drivers": [{"name": "a"}, {"name": "b"}]}}),
                json!(["n1", 2, "0s"]),
            ),
            (
                "storage.k8s.io",
                "csidrivers",
                json!({"metadata": {"name": "d", "creationTimestamp": now}, "spec": {"podInfoOnMount": true, "tokenRequests": [{"audience": "a"}, {"audience": "b"}], "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
                json!([
                    "d",
                    true,
                    true,
                    false,
                    "a,b",
                    false,
                    "Persistent,Ephemeral",
                    "0s"
                ]),
            ),
            (
                "storage.k8s.io",
                "csidrivers",
                json!({"metadata": {"name": "d", "creationTimestamp": now}, "spec": {"attachRequired": false}}),
                json!(["d", false, false, false, "<unset>", false, "<none>", "0s"]),
            ),
            (
                "storage.k8s.io",
                "csistoragecapacities",
                json!({"metadata": {"name": "cap"}, "storageClassName": "fast", "capacity": "10Gi"}),
                json!(["cap", "fast", "10Gi"]),
            ),
            (
                "storage.k8s.io",
                "csistoragecapacities",
                json!({"metadata": {"name": "cap"}, "storageClassName": "fast"}),
                json!(["cap", "fast", "<unset>"]),
            ),
        ]);
    }

    #[test]
    fn policy_and_cluster_rows_as_upstream() {
        let now = ago(0);
        check(vec![
            (
                "",
                "configmaps",
                json!({"metadata": {"name": "a", "creationTimestamp": now}, "data": {"x": "1", "y": "2"}, "binaryData": {"z": ""}}),
                json!(["a", 3, "0s"]),
            ),
            (
                "",
                "secrets",
                json!({"metadata": {"name": "s", "creationTimestamp": now}, "type": "Opaque", "data": {"k": ""}}),
                json!(["s", "Opaque", 1, "0s"]),
            ),
            (
                "",
                "resourcequotas",
                json!({"metadata": {"name": "q", "creationTimestamp": now}, "status": {"hard": {"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi", "limits.cpu": "4"}, "used": {"pods": "3", "limits.cpu": "500m"}}}),
                json!([
                    "q",
                    "pods: 3/10, requests.cpu: 0/2",
                    "limits.cpu: 500m/4, limits.memory: 0/2Gi",
                    "0s"
                ]),
            ),
            (
                "",
                "componentstatuses",
                json!({"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}),
                json!(["etcd-0", "Healthy", "ok", ""]),
            ),
            (
                "",
                "componentstatuses",
                json!({"metadata": {"name": "scheduler"}, "conditions": [{"type": "Healthy", "status": "False", "error": "refused"}]}),
                json!(["scheduler", "Unhealthy", "", "refused"]),
            ),
            (
                "policy",
                "poddisruptionbudgets",
                json!({"metadata": {"name": "pdb", "creationTimestamp": now}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}),
                json!(["pdb", "50%", "N/A", 1, "0s"]),
            ),
            (
                "scheduling.k8s.io",
                "priorityclasses",
                json!({"metadata": {"name": "high", "creationTimestamp": now}, "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"}),
                json!(["high", 1000, true, "0s", "Never"]),
            ),
            (
                "node.k8s.io",
                "runtimeclasses",
                json!({"metadata": {"name": "gvisor", "creationTimestamp": now}, "handler": "runsc"}),
                json!(["gvisor", "runsc", "0s"]),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": "l", "creationTimestamp": now}, "spec": {"holderIdentity": "me"}}),
                json!(["l", "me", "0s"]),
            ),
            (
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                json!({"metadata": {"name": "rb", "creationTimestamp": now}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"}]}),
                json!([
                    "rb",
                    "ClusterRole/view",
                    "0s",
                    "alice, bob",
                    "devs",
                    "ns/sa"
                ]),
            ),
            (
                "apps",
                "controllerrevisions",
                json!({"metadata": {"name": "web-7d", "creationTimestamp": now, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]}, "revision": 2}),
                json!(["web-7d", "statefulset.apps/web", 2, "0s"]),
            ),
            (
                "apps",
                "controllerrevisions",
                json!({"metadata": {"name": "orphan", "creationTimestamp": now}, "revision": 1}),
                json!(["orphan", "<none>", 1, "0s"]),
            ),
            (
                "autoscaling",
                "horizontalpodautoscalers",
                json!({"metadata": {"name": "h", "creationTimestamp": now}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]}, "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}}),
                json!(["h", "Deployment/web", "cpu: 40%/60%", "<unset>", 5, 2, "0s"]),
            ),
        ]);
    }

    #[test]
    fn autoscaler_targets_as_upstream() {
        let hpa = json!({"spec": {"metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}
        ]}, "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}});
        assert_eq!(
            hpa_targets(&hpa),
            "cpu: 40%/60%, memory: <unknown>/1Gi + 1 more..."
        );
        assert_eq!(hpa_targets(&json!({"spec": {}})), "<none>");
        let hpa = json!({"spec": {"metrics": [
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "30"}}}
        ]}, "status": {"currentMetrics": [{"type": "Pods", "pods": {"current": {"averageValue": "7"}}}]}});
        assert_eq!(hpa_targets(&hpa), "7/10, <unknown>/30 (avg)");
        let hpa = json!({"spec": {"metrics": [
            {"type": "Object", "object": {"target": {"type": "Value", "value": "5"}}},
            {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "c", "target": {"type": "Utilization"}}}
        ]}, "status": {"currentMetrics": [{"type": "Object", "object": {"current": {"value": "3"}}}]}});
        assert_eq!(hpa_targets(&hpa), "3/5, cpu: <unknown>/<auto>");
    }

    #[test]
    fn api_machinery_rows_as_upstream() {
        let now = ago(0);
        check(vec![
            ("certificates.k8s.io", "certificatesigningrequests", json!({"metadata": {"name": "csr", "creationTimestamp": now}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
                "status": {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}], "certificate": "Y2VydA=="}}),
             json!(["csr", "0s", "kubernetes.io/kube-apiserver-client", "alice", "24h", "Approved,Failed,Issued"])),
            ("certificates.k8s.io", "certificatesigningrequests", json!({"metadata": {"name": "csr", "creationTimestamp": now}, "spec": {"username": "bob"}, "status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}]}}),
             json!(["csr", "0s", "<none>", "bob", "<none>", "Denied"])),
            ("certificates.k8s.io", "clustertrustbundles", json!({"metadata": {"name": "ctb"}, "spec": {"signerName": "example.com/s"}}), json!(["ctb", "example.com/s"])),
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations", json!({"metadata": {"name": "w", "creationTimestamp": now}, "webhooks": [{}, {}]}), json!(["w", 2, "0s"])),
            ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", json!({"metadata": {"name": "w", "creationTimestamp": now}}), json!(["w", 0, "0s"])),
            ("admissionregistration.k8s.io", "validatingadmissionpolicies", json!({"metadata": {"name": "vap", "creationTimestamp": now}, "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}, "validations": [{}]}}), json!(["vap", 1, "v1/ConfigMap", "0s"])),
            ("admissionregistration.k8s.io", "mutatingadmissionpolicies", json!({"metadata": {"name": "map", "creationTimestamp": now}, "spec": {"mutations": [{}, {}]}}), json!(["map", 2, "<unset>", "0s"])),
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", json!({"metadata": {"name": "b", "creationTimestamp": now}, "spec": {"policyName": "vap", "paramRef": {"name": "cfg", "namespace": "ns"}}}), json!(["b", "vap", "ns/cfg", "0s"])),
            ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", json!({"metadata": {"name": "b", "creationTimestamp": now}, "spec": {"policyName": "vap", "paramRef": {"name": "cfg"}}}), json!(["b", "vap", "*/cfg", "0s"])),
            ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings", json!({"metadata": {"name": "b", "creationTimestamp": now}, "spec": {"policyName": "map", "paramRef": {"selector": {"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "k", "operator": "In", "values": ["x", "y"]}]}}}}),
             json!(["b", "map", "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[x y],},},}", "0s"])),
            ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings", json!({"metadata": {"name": "b", "creationTimestamp": now}, "spec": {"policyName": "map"}}), json!(["b", "map", "<unset>", "0s"])),
            ("flowcontrol.apiserver.k8s.io", "flowschemas", json!({"metadata": {"name": "fs", "creationTimestamp": now}, "spec": {"priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 9000, "distinguisherMethod": {"type": "ByUser"}}, "status": {"conditions": [{"type": "Dangling", "status": "False"}]}}),
             json!(["fs", "workload-low", 9000, "ByUser", "0s", "False"])),
            ("flowcontrol.apiserver.k8s.io", "flowschemas", json!({"metadata": {"name": "exempt", "creationTimestamp": now}, "spec": {"priorityLevelConfiguration": {"name": "exempt"}, "matchingPrecedence": 1}}),
             json!(["exempt", "exempt", 1, "<none>", "0s", "?"])),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", json!({"metadata": {"name": "global-default", "creationTimestamp": now}, "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 20, "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}}),
             json!(["global-default", "Limited", 20, 128, 6, 50, "0s"])),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", json!({"metadata": {"name": "catch-all", "creationTimestamp": now}, "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5, "limitResponse": {"type": "Reject"}}}}),
             json!(["catch-all", "Limited", 5, "<none>", "<none>", "<none>", "0s"])),
            ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", json!({"metadata": {"name": "exempt", "creationTimestamp": now}, "spec": {"type": "Exempt", "exempt": {}}}),
             json!(["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "0s"])),
            ("apiregistration.k8s.io", "apiservices", json!({"metadata": {"name": "v1.apps", "creationTimestamp": now}, "spec": {"group": "apps"}, "status": {"conditions": [{"type": "Available", "status": "True"}]}}), json!(["v1.apps", "Local", "True", "0s"])),
            ("apiregistration.k8s.io", "apiservices", json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "creationTimestamp": now}, "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}}, "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}}),
             json!(["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "False (MissingEndpoints)", "0s"])),
            ("storagemigration.k8s.io", "storageversionmigrations", json!({"metadata": {"name": "m"}, "spec": {"resource": {"group": "apps", "resource": "deployments"}}}), json!(["m", "deployments.apps"])),
            ("resource.k8s.io", "deviceclasses", json!({"metadata": {"name": "gpu", "creationTimestamp": now}}), json!(["gpu", "0s"])),
            ("resource.k8s.io", "resourceclaimtemplates", json!({"metadata": {"name": "t", "creationTimestamp": now}}), json!(["t", "0s"])),
            ("resource.k8s.io", "resourceclaims", json!({"metadata": {"name": "c", "creationTimestamp": now}}), json!(["c", "pending", "0s"])),
            ("resource.k8s.io", "resourceclaims", json!({"metadata": {"name": "c", "creationTimestamp": now}, "status": {"allocation": {}, "reservedFor": [{}]}}), json!(["c", "allocated,reserved", "0s"])),
            ("resource.k8s.io", "resourceclaims", json!({"metadata": {"name": "c", "creationTimestamp": now, "deletionTimestamp": now}}), json!(["c", "deleted", "0s"])),
            ("resource.k8s.io", "resourceslices", json!({"metadata": {"name": "rs", "creationTimestamp": now}, "spec": {"nodeName": "n1", "driver": "gpu.example.com", "pool": {"name": "p"}}}), json!(["rs", "n1", "gpu.example.com", "p", "0s"])),
        ]);
    }

    #[test]
    fn flow_schemas_list_by_precedence() {
        let fs = |name: &str, p: i64| json!({"metadata": {"name": name}, "spec": {"matchingPrecedence": p}});
        let t = for_objects(
            info("flowcontrol.apiserver.k8s.io", "flowschemas"),
            &[fs("b", 500), fs("z", 10), fs("a", 500)],
            "1",
            &Query::default(),
        );
        let names: Vec<_> = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cells"][0].clone())
            .collect();
        assert_eq!(names, [json!("z"), json!("a"), json!("b")]);
    }

    #[test]
    fn ipaddress_rows_carry_an_unnamed_age() {
        let t = table(
            "networking.k8s.io",
            "ipaddresses",
            json!({"metadata": {"name": "10.0.0.1", "creationTimestamp": ago(0)}}),
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 2);
        assert_eq!(t["rows"][0]["cells"], json!(["10.0.0.1", "<none>", "0s"]));
    }
}
