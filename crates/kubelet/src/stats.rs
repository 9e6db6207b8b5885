//! The kubelet's `/metrics` (Prometheus text: a few of upstream's `kubelet_*` series)
//! and `/stats/summary` (upstream's `stats/v1alpha1` Summary: the node's CPU and memory
//! from the root cgroup and `/proc/meminfo`, each pod's and container's from the
//! runtime's `ListContainerStats`, which containerd reads from the containers' cgroups).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::cri::api;
use crate::pod_config::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};
use crate::server::{authorize, status, Client};
use crate::time::rfc3339_from_nanos;
use crate::Shared;

/// Upstream's buckets for `kubelet_pleg_relist_duration_seconds`.
const RELIST_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    inner: Mutex<HistogramData>,
}

#[derive(Debug, Default, Clone)]
struct HistogramData {
    counts: [u64; RELIST_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, le) in RELIST_BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The series of `name` in the text format.
    fn render(&self, name: &str, help: &str, out: &mut String) {
        let h = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, le) in RELIST_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
    }
}

/// The `nodes/<subresource>` a request must be allowed.
async fn admit(shared: &Shared, client: Option<Client>, subresource: &str) -> Result<(), Response> {
    let Some(client) = client else {
        return Err(status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        ));
    };
    authorize(shared, &client, "get", subresource).await
}

fn container_state_name(state: i32) -> &'static str {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => "created",
        Ok(api::ContainerState::ContainerRunning) => "running",
        Ok(api::ContainerState::ContainerExited) => "exited",
        _ => "unknown",
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>, req: Request<Body>) -> Response {
    let client = req.extensions().get::<Client>().cloned();
    drop(req);
    if let Err(denied) = admit(&shared, client, "metrics").await {
        return denied;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP kubelet_node_name [ALPHA] The node's name. The count is always 1.\n\
         # TYPE kubelet_node_name gauge\nkubelet_node_name{{node=\"{}\"}} 1",
        shared.node_name
    );
    if let Some(runtime) = &shared.runtime {
        let (sandboxes, containers) = tokio::join!(
            runtime.list_pod_sandboxes(None),
            runtime.list_containers(None)
        );
        if let Ok(sandboxes) = sandboxes {
            let running = sandboxes
                .iter()
                .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
                .count();
            let _ = writeln!(
                out,
                "# HELP kubelet_running_pods [ALPHA] Number of pods that have a running pod sandbox\n\
                 # TYPE kubelet_running_pods gauge\nkubelet_running_pods {running}"
            );
        }
        if let Ok(containers) = containers {
            let mut by_state: BTreeMap<&str, usize> = ["created", "exited", "running", "unknown"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
            for c in &containers {
                *by_state.entry(container_state_name(c.state)).or_default() += 1;
            }
            let _ = writeln!(
                out,
                "# HELP kubelet_running_containers [ALPHA] Number of containers currently running\n\
                 # TYPE kubelet_running_containers gauge"
            );
            for (state, n) in by_state {
                let _ = writeln!(
                    out,
                    "kubelet_running_containers{{container_state=\"{state}\"}} {n}"
                );
            }
        }
    }
    shared.pleg.relist_durations.render(
        "kubelet_pleg_relist_duration_seconds",
        "[ALPHA] Duration in seconds for relisting pods in PLEG.",
        &mut out,
    );
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

/// The node's cumulative CPU time in nanoseconds (root cgroup, v1 or v2).
fn node_cpu_nanos() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/sys/fs/cgroup/cpuacct/cpuacct.usage") {
        return s.trim().parse().ok();
    }
    let stat = std::fs::read_to_string("/sys/fs/cgroup/cpu.stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|us| us * 1000)
}

/// A `key value` file (`/proc/meminfo` in kB, `memory.stat` in bytes).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(char::is_whitespace)?;
        (k.trim_end_matches(':') == key)
            .then(|| v.split_whitespace().next()?.parse().ok())
            .flatten()
    })
}

/// The node's memory: `availableBytes`, `usageBytes`, `workingSetBytes` as cAdvisor
/// computes them for the root cgroup (working set = usage - inactive file pages).
fn node_memory(now: &str) -> Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = field(&meminfo, "MemTotal").map(|k| k * 1024);
    let (usage, inactive) =
        match std::fs::read_to_string("/sys/fs/cgroup/memory/memory.usage_in_bytes") {
            Ok(u) => {
                let stat = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.stat")
                    .unwrap_or_default();
                (
                    u.trim().parse::<u64>().ok(),
                    field(&stat, "total_inactive_file").unwrap_or(0),
                )
            }
            Err(_) => {
                // cgroup v2 has no root usage file: what /proc/meminfo says is in use.
                let free = field(&meminfo, "MemFree").map(|k| k * 1024);
                let inactive = field(&meminfo, "Inactive(file)").map_or(0, |k| k * 1024);
                (total.zip(free).map(|(t, f)| t.saturating_sub(f)), inactive)
            }
        };
    let mut m = Map::new();
    m.insert("time".into(), json!(now));
    if let Some(usage) = usage {
        let working_set = usage.saturating_sub(inactive);
        m.insert("usageBytes".into(), json!(usage));
        m.insert("workingSetBytes".into(), json!(working_set));
        if let Some(total) = total {
            m.insert(
                "availableBytes".into(),
                json!(total.saturating_sub(working_set)),
            );
        }
    }
    Value::Object(m)
}

/// The last node CPU sample, to give `usageNanoCores` as a rate.
static LAST_CPU: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

async fn node_cpu(now: &str) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(now));
    let Some(first) = node_cpu_nanos() else {
        return Value::Object(m);
    };
    let at = Instant::now();
    let previous = LAST_CPU
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .filter(|(t, _)| at.duration_since(*t) < Duration::from_secs(60));
    let (since, base, total) = match previous {
        Some((t, v)) if at.duration_since(t) >= Duration::from_millis(50) => {
            (at.duration_since(t), v, first)
        }
        _ => {
            // No recent sample: take a second one shortly.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let second = node_cpu_nanos().unwrap_or(first);
            (at.elapsed(), first, second)
        }
    };
    *LAST_CPU.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), total));
    let rate = total.saturating_sub(base) as f64 / since.as_secs_f64().max(1e-3);
    m.insert("usageCoreNanoSeconds".into(), json!(total));
    m.insert("usageNanoCores".into(), json!(rate as u64));
    Value::Object(m)
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

fn cpu_json(c: &api::CpuUsage) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339_from_nanos(c.timestamp)));
    if let Some(v) = value(&c.usage_nano_cores) {
        m.insert("usageNanoCores".into(), json!(v));
    }
    if let Some(v) = value(&c.usage_core_nano_seconds) {
        m.insert("usageCoreNanoSeconds".into(), json!(v));
    }
    Value::Object(m)
}

fn memory_json(mem: &api::MemoryUsage) -> Value {
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339_from_nanos(mem.timestamp)));
    for (k, v) in [
        ("availableBytes", &mem.available_bytes),
        ("usageBytes", &mem.usage_bytes),
        ("workingSetBytes", &mem.working_set_bytes),
        ("rssBytes", &mem.rss_bytes),
        ("pageFaults", &mem.page_faults),
        ("majorPageFaults", &mem.major_page_faults),
    ] {
        if let Some(v) = value(v) {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// Adds up the numeric fields of the containers' `cpu`/`memory` (a pod's totals).
fn sum(parts: &[&Value]) -> Value {
    let mut m = Map::new();
    for p in parts {
        for (k, v) in p.as_object().into_iter().flatten() {
            match v.as_u64() {
                Some(n) => {
                    let total = m.get(k).and_then(Value::as_u64).unwrap_or(0) + n;
                    m.insert(k.clone(), json!(total));
                }
                None => {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    Value::Object(m)
}

/// The pods' entries of the summary from the runtime's container stats.
pub(crate) fn pod_stats(
    stats: &[api::ContainerStats],
    containers: &[api::Container],
    sandboxes: &[api::PodSandbox],
) -> Vec<Value> {
    let created: BTreeMap<&str, i64> = containers
        .iter()
        .map(|c| (c.id.as_str(), c.created_at))
        .collect();
    // (namespace, name, uid) → containers.
    let mut pods: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    for sandbox in sandboxes
        .iter()
        .filter(|s| s.state == api::PodSandboxState::SandboxReady as i32)
    {
        let label = |k: &str| sandbox.labels.get(k).cloned().unwrap_or_default();
        pods.entry((
            label(POD_NAMESPACE_LABEL),
            label(POD_NAME_LABEL),
            label(POD_UID_LABEL),
        ))
        .or_default();
    }
    for s in stats {
        let Some(attrs) = &s.attributes else { continue };
        let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
        let key = (
            label(POD_NAMESPACE_LABEL),
            label(POD_NAME_LABEL),
            label(POD_UID_LABEL),
        );
        let Some(entry) = pods.get_mut(&key) else {
            continue;
        };
        let mut c = Map::new();
        c.insert("name".into(), json!(label(CONTAINER_NAME_LABEL)));
        if let Some(t) = created.get(attrs.id.as_str()) {
            c.insert("startTime".into(), json!(rfc3339_from_nanos(*t)));
        }
        if let Some(cpu) = &s.cpu {
            c.insert("cpu".into(), cpu_json(cpu));
        }
        if let Some(mem) = &s.memory {
            c.insert("memory".into(), memory_json(mem));
        }
        entry.push(Value::Object(c));
    }
    let started: BTreeMap<&str, i64> = sandboxes
        .iter()
        .filter_map(|s| Some((s.labels.get(POD_UID_LABEL)?.as_str(), s.created_at)))
        .collect();
    pods.into_iter()
        .map(|((namespace, name, uid), containers)| {
            let cpus: Vec<&Value> = containers.iter().filter_map(|c| c.get("cpu")).collect();
            let mems: Vec<&Value> = containers.iter().filter_map(|c| c.get("memory")).collect();
            let mut pod = json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "containers": containers,
            });
            if let Some(t) = started.get(uid.as_str()) {
                pod["startTime"] = json!(rfc3339_from_nanos(*t));
            }
            if !cpus.is_empty() {
                pod["cpu"] = sum(&cpus);
            }
            if !mems.is_empty() {
                pod["memory"] = sum(&mems);
            }
            pod
        })
        .collect()
}

/// `GET /stats/summary`.
pub(crate) async fn summary(State(shared): State<Arc<Shared>>, req: Request<Body>) -> Response {
    let client = req.extensions().get::<Client>().cloned();
    drop(req);
    if let Err(denied) = admit(&shared, client, "stats").await {
        return denied;
    }
    let now = crate::time::now_rfc3339();
    let mut pods = Vec::new();
    if let Some(runtime) = &shared.runtime {
        let (stats, containers, sandboxes) = tokio::join!(
            runtime.list_container_stats(),
            runtime.list_containers(None),
            runtime.list_pod_sandboxes(None)
        );
        match (stats, containers, sandboxes) {
            (Ok(s), Ok(c), Ok(p)) => pods = pod_stats(&s, &c, &p),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!("failed to get pod stats: {e}"),
                )
            }
        }
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| field(&s, "btime"))
        .map(|secs| rfc3339_from_nanos(secs as i64 * 1_000_000_000));
    let mut node = json!({
        "nodeName": shared.node_name,
        "cpu": node_cpu(&now).await,
        "memory": node_memory(&now),
    });
    if let Some(boot) = boot {
        node["startTime"] = json!(boot);
    }
    let body = json!({"node": node, "pods": pods});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(70));
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.1\"} 2\n"), "{out}");
        assert!(
            out.contains("x_bucket{le=\"+Inf\"} 2\nx_sum 0.073"),
            "{out}"
        );
        assert!(out.contains("x_count 2\n"), "{out}");
    }

    #[test]
    fn reads_key_value_files() {
        let meminfo = "MemTotal:       16384 kB\nMemFree:  100 kB\nInactive(file):  7 kB\n";
        assert_eq!(field(meminfo, "MemTotal"), Some(16384));
        assert_eq!(field(meminfo, "Inactive(file)"), Some(7));
        assert_eq!(
            field("total_inactive_file 42\n", "total_inactive_file"),
            Some(42)
        );
        assert_eq!(field("garbage", "MemTotal"), None);
    }

    #[test]
    fn sums_pod_stats_per_pod() {
        let labels = |c: &str| -> HashMap<String, String> {
            [
                (POD_NAMESPACE_LABEL, "ns"),
                (POD_NAME_LABEL, "p"),
                (POD_UID_LABEL, "u1"),
                (CONTAINER_NAME_LABEL, c),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        let stat = |id: &str, name: &str, cpu: u64, mem: u64| api::ContainerStats {
            attributes: Some(api::ContainerAttributes {
                id: id.into(),
                labels: labels(name),
                ..Default::default()
            }),
            cpu: Some(api::CpuUsage {
                timestamp: 1,
                usage_core_nano_seconds: Some(api::UInt64Value { value: cpu }),
                ..Default::default()
            }),
            memory: Some(api::MemoryUsage {
                timestamp: 1,
                working_set_bytes: Some(api::UInt64Value { value: mem }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sandbox = api::PodSandbox {
            id: "s".into(),
            labels: labels(""),
            state: api::PodSandboxState::SandboxReady as i32,
            created_at: 5,
            ..Default::default()
        };
        let pods = pod_stats(
            &[stat("a", "one", 10, 100), stat("b", "two", 5, 50)],
            &[],
            &[sandbox],
        );
        assert_eq!(pods.len(), 1);
        let p = &pods[0];
        assert_eq!(
            p["podRef"],
            json!({"name": "p", "namespace": "ns", "uid": "u1"})
        );
        assert_eq!(p["cpu"]["usageCoreNanoSeconds"], 15);
        assert_eq!(p["memory"]["workingSetBytes"], 150);
        assert_eq!(p["containers"].as_array().unwrap().len(), 2);
        assert_eq!(p["containers"][0]["name"], "one");
    }
}
