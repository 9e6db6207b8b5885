//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints).
//!
//! Kinds with a printer here get upstream's columns and cells (`kubectl get` and `-o wide`
//! print what upstream prints); every other kind gets upstream's default columns (Name,
//! Created At). Columns are data: a name, a type, a priority (1 = `-o wide` only) and a
//! function from the object to its cell.

use rkube_api::resources::ResourceInfo;
use serde_json::{json, Value};

use crate::query::Query;

/// One column: name, type, priority, and how to compute its cell.
struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: fn(&Value) -> Value,
}

const fn col(name: &'static str, priority: u8, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "string",
        priority,
        cell,
    }
}

const fn int_col(name: &'static str, priority: u8, cell: fn(&Value) -> Value) -> Column {
    Column {
        name,
        kind: "integer",
        priority,
        cell,
    }
}

fn name(o: &Value) -> Value {
    o["metadata"]["name"].clone()
}

/// How long ago an RFC 3339 timestamp was, as kubectl shows ages; `None` if unparsable.
fn since(timestamp: Option<&str>) -> Option<String> {
    let t = crate::meta::parse_rfc3339(timestamp?)?;
    Some(human_duration(crate::meta::now_secs() - t))
}

fn age(o: &Value) -> Value {
    json!(since(o["metadata"]["creationTimestamp"].as_str()).unwrap_or_else(|| "<unknown>".into()))
}

fn count(v: &Value) -> usize {
    v.as_object()
        .map(|m| m.len())
        .or_else(|| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn str_or(v: &Value, default: &str) -> Value {
    json!(v.as_str().filter(|s| !s.is_empty()).unwrap_or(default))
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

fn pod_ready(o: &Value) -> Value {
    let statuses = o["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = o["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    json!(format!("{ready}/{total}"))
}

fn pod_status(o: &Value) -> Value {
    if o["metadata"]["deletionTimestamp"].is_string() {
        return json!("Terminating");
    }
    let mut reason = o["status"]["reason"]
        .as_str()
        .or_else(|| o["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_owned();
    for s in o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = s["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_owned();
        } else if let Some(r) = s["state"]["terminated"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = r.to_owned();
        }
    }
    json!(reason)
}

fn pod_restarts(o: &Value) -> Value {
    let n: i64 = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    json!(n)
}

fn service_ports(o: &Value) -> Value {
    let ports: Vec<String> = o["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(n) => format!("{}:{n}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    json!(if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    })
}

fn node_status(o: &Value) -> Value {
    let ready = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let mut status = match ready.and_then(|c| c["status"].as_str()) {
        Some("True") => "Ready".to_owned(),
        _ => "NotReady".to_owned(),
    };
    if o["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn node_roles(o: &Value) -> Value {
    let mut roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_owned)
        })
        .collect();
    roles.sort();
    json!(if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    })
}

/// Access modes in kubectl's short form (`RWO,ROX`).
fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The printer of a kind, if it has one.
fn columns(info: &ResourceInfo) -> Option<Vec<Column>> {
    let c = match (info.group, info.plural) {
        ("", "configmaps") => vec![
            col("Name", 0, name),
            int_col("Data", 0, |o| {
                json!(count(&o["data"]) + count(&o["binaryData"]))
            }),
            col("Age", 0, age),
        ],
        ("", "secrets") => vec![
            col("Name", 0, name),
            col("Type", 0, |o| str_or(&o["type"], "Opaque")),
            int_col("Data", 0, |o| json!(count(&o["data"]))),
            col("Age", 0, age),
        ],
        ("", "namespaces") => vec![
            col("Name", 0, name),
            col("Status", 0, |o| o["status"]["phase"].clone()),
            col("Age", 0, age),
        ],
        ("", "serviceaccounts") => vec![
            col("Name", 0, name),
            int_col("Secrets", 0, |o| json!(count(&o["secrets"]))),
            col("Age", 0, age),
        ],
        ("", "pods") => vec![
            col("Name", 0, name),
            col("Ready", 0, pod_ready),
            col("Status", 0, pod_status),
            int_col("Restarts", 0, pod_restarts),
            col("Age", 0, age),
            col("IP", 1, |o| str_or(&o["status"]["podIP"], "<none>")),
            col("Node", 1, |o| str_or(&o["spec"]["nodeName"], "<none>")),
            col("Nominated Node", 1, |o| {
                str_or(&o["status"]["nominatedNodeName"], "<none>")
            }),
            col("Readiness Gates", 1, |o| {
                json!(if count(&o["spec"]["readinessGates"]) == 0 {
                    "<none>".to_owned()
                } else {
                    format!("0/{}", count(&o["spec"]["readinessGates"]))
                })
            }),
        ],
        ("", "services") => vec![
            col("Name", 0, name),
            col("Type", 0, |o| str_or(&o["spec"]["type"], "ClusterIP")),
            col("Cluster-IP", 0, |o| {
                str_or(&o["spec"]["clusterIP"], "<none>")
            }),
            col("External-IP", 0, |o| {
                let ips: Vec<String> = o["spec"]["externalIPs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                json!(if ips.is_empty() {
                    "<none>".to_owned()
                } else {
                    ips.join(",")
                })
            }),
            col("Port(s)", 0, service_ports),
            col("Age", 0, age),
            col("Selector", 1, |o| {
                let sel: Vec<String> = o["spec"]["selector"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                json!(if sel.is_empty() {
                    "<none>".to_owned()
                } else {
                    sel.join(",")
                })
            }),
        ],
        ("", "nodes") => vec![
            col("Name", 0, name),
            col("Status", 0, node_status),
            col("Roles", 0, node_roles),
            col("Age", 0, age),
            col("Version", 0, |o| {
                o["status"]["nodeInfo"]["kubeletVersion"].clone()
            }),
            col("Internal-IP", 1, |o| {
                let ip = o["status"]["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == "InternalIP")
                    .and_then(|a| a["address"].as_str());
                json!(ip.unwrap_or("<none>"))
            }),
        ],
        ("apps", "deployments") => vec![
            col("Name", 0, name),
            col("Ready", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                ))
            }),
            int_col("Up-to-date", 0, |o| {
                json!(o["status"]["updatedReplicas"].as_i64().unwrap_or(0))
            }),
            int_col("Available", 0, |o| {
                json!(o["status"]["availableReplicas"].as_i64().unwrap_or(0))
            }),
            col("Age", 0, age),
        ],
        ("apps", "replicasets") | ("", "replicationcontrollers") => vec![
            col("Name", 0, name),
            int_col("Desired", 0, |o| {
                json!(o["spec"]["replicas"].as_i64().unwrap_or(1))
            }),
            int_col("Current", 0, |o| {
                json!(o["status"]["replicas"].as_i64().unwrap_or(0))
            }),
            int_col("Ready", 0, |o| {
                json!(o["status"]["readyReplicas"].as_i64().unwrap_or(0))
            }),
            col("Age", 0, age),
        ],
        ("apps", "statefulsets") => vec![
            col("Name", 0, name),
            col("Ready", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                ))
            }),
            col("Age", 0, age),
        ],
        ("apps", "daemonsets") => vec![
            col("Name", 0, name),
            int_col("Desired", 0, |o| {
                json!(o["status"]["desiredNumberScheduled"].as_i64().unwrap_or(0))
            }),
            int_col("Current", 0, |o| {
                json!(o["status"]["currentNumberScheduled"].as_i64().unwrap_or(0))
            }),
            int_col("Ready", 0, |o| {
                json!(o["status"]["numberReady"].as_i64().unwrap_or(0))
            }),
            int_col("Up-to-date", 0, |o| {
                json!(o["status"]["updatedNumberScheduled"].as_i64().unwrap_or(0))
            }),
            int_col("Available", 0, |o| {
                json!(o["status"]["numberAvailable"].as_i64().unwrap_or(0))
            }),
            col("Node Selector", 0, |o| {
                let sel: Vec<String> = o["spec"]["template"]["spec"]["nodeSelector"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                json!(if sel.is_empty() {
                    "<none>".to_owned()
                } else {
                    sel.join(",")
                })
            }),
            col("Age", 0, age),
        ],
        ("batch", "jobs") => vec![
            col("Name", 0, name),
            col("Status", 0, |o| {
                let conditions = o["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let has = |t: &str| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == t && c["status"] == "True")
                };
                json!(if has("Complete") {
                    "Complete"
                } else if has("Failed") {
                    "Failed"
                } else if o["spec"]["suspend"] == true {
                    "Suspended"
                } else {
                    "Running"
                })
            }),
            col("Completions", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["succeeded"].as_i64().unwrap_or(0),
                    o["spec"]["completions"].as_i64().unwrap_or(1)
                ))
            }),
            col("Age", 0, age),
        ],
        ("coordination.k8s.io", "leases") => vec![
            col("Name", 0, name),
            col("Holder", 0, |o| str_or(&o["spec"]["holderIdentity"], "")),
            col("Age", 0, age),
        ],
        ("", "endpoints") => vec![
            col("Name", 0, name),
            col("Endpoints", 0, |o| {
                let mut eps = Vec::new();
                for subset in o["subsets"].as_array().into_iter().flatten() {
                    for a in subset["addresses"].as_array().into_iter().flatten() {
                        for p in subset["ports"].as_array().into_iter().flatten() {
                            eps.push(format!("{}:{}", a["ip"].as_str().unwrap_or(""), p["port"]));
                        }
                    }
                }
                json!(if eps.is_empty() {
                    "<none>".to_owned()
                } else {
                    eps.join(",")
                })
            }),
            col("Age", 0, age),
        ],
        ("batch", "cronjobs") => vec![
            col("Name", 0, name),
            col("Schedule", 0, |o| o["spec"]["schedule"].clone()),
            col("Timezone", 0, |o| str_or(&o["spec"]["timeZone"], "<none>")),
            col("Suspend", 0, |o| {
                json!(if o["spec"]["suspend"] == true {
                    "True"
                } else {
                    "False"
                })
            }),
            int_col("Active", 0, |o| json!(count(&o["status"]["active"]))),
            col("Last Schedule", 0, |o| {
                json!(since(o["status"]["lastScheduleTime"].as_str())
                    .unwrap_or_else(|| "<none>".into()))
            }),
            col("Age", 0, age),
        ],
        ("", "persistentvolumeclaims") => vec![
            col("Name", 0, name),
            col("Status", 0, |o| str_or(&o["status"]["phase"], "Pending")),
            col("Volume", 0, |o| str_or(&o["spec"]["volumeName"], "")),
            col("Capacity", 0, |o| {
                str_or(&o["status"]["capacity"]["storage"], "")
            }),
            col("Access Modes", 0, |o| {
                json!(access_modes(&o["status"]["accessModes"]))
            }),
            col("StorageClass", 0, |o| {
                str_or(&o["spec"]["storageClassName"], "<unset>")
            }),
            col("Age", 0, age),
        ],
        ("", "persistentvolumes") => vec![
            col("Name", 0, name),
            col("Capacity", 0, |o| {
                str_or(&o["spec"]["capacity"]["storage"], "")
            }),
            col("Access Modes", 0, |o| {
                json!(access_modes(&o["spec"]["accessModes"]))
            }),
            col("Reclaim Policy", 0, |o| {
                str_or(&o["spec"]["persistentVolumeReclaimPolicy"], "Retain")
            }),
            col("Status", 0, |o| str_or(&o["status"]["phase"], "Pending")),
            col("Claim", 0, |o| {
                let c = &o["spec"]["claimRef"];
                json!(if c.is_object() {
                    format!(
                        "{}/{}",
                        c["namespace"].as_str().unwrap_or(""),
                        c["name"].as_str().unwrap_or("")
                    )
                } else {
                    String::new()
                })
            }),
            col("StorageClass", 0, |o| {
                str_or(&o["spec"]["storageClassName"], "")
            }),
            col("Age", 0, age),
        ],
        ("storage.k8s.io", "storageclasses") => vec![
            col("Name", 0, |o| {
                let default = o["metadata"]["annotations"]
                    ["storageclass.kubernetes.io/is-default-class"]
                    == "true";
                json!(if default {
                    format!("{} (default)", o["metadata"]["name"].as_str().unwrap_or(""))
                } else {
                    o["metadata"]["name"].as_str().unwrap_or("").to_owned()
                })
            }),
            col("Provisioner", 0, |o| o["provisioner"].clone()),
            col("ReclaimPolicy", 0, |o| {
                str_or(&o["reclaimPolicy"], "Delete")
            }),
            col("VolumeBindingMode", 0, |o| {
                str_or(&o["volumeBindingMode"], "Immediate")
            }),
            col("AllowVolumeExpansion", 0, |o| {
                json!(o["allowVolumeExpansion"] == true)
            }),
            col("Age", 0, age),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            col("Name", 0, name),
            col("Class", 0, |o| {
                str_or(&o["spec"]["ingressClassName"], "<none>")
            }),
            col("Hosts", 0, |o| {
                let hosts: Vec<String> = o["spec"]["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["host"].as_str().map(str::to_owned))
                    .collect();
                json!(if hosts.is_empty() {
                    "*".to_owned()
                } else {
                    hosts.join(",")
                })
            }),
            col("Address", 0, |o| {
                let ips: Vec<String> = o["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| {
                        i["ip"]
                            .as_str()
                            .or_else(|| i["hostname"].as_str())
                            .map(str::to_owned)
                    })
                    .collect();
                json!(ips.join(","))
            }),
            col("Ports", 0, |o| {
                json!(if count(&o["spec"]["tls"]) > 0 {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            col("Age", 0, age),
        ],
        ("policy", "poddisruptionbudgets") => vec![
            col("Name", 0, name),
            col("Min Available", 0, |o| {
                json!(o["spec"]["minAvailable"]
                    .as_i64()
                    .map(|v| v.to_string())
                    .or_else(|| o["spec"]["minAvailable"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "N/A".into()))
            }),
            col("Max Unavailable", 0, |o| {
                json!(o["spec"]["maxUnavailable"]
                    .as_i64()
                    .map(|v| v.to_string())
                    .or_else(|| o["spec"]["maxUnavailable"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "N/A".into()))
            }),
            int_col("Allowed Disruptions", 0, |o| {
                json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0))
            }),
            col("Age", 0, age),
        ],
        ("scheduling.k8s.io", "priorityclasses") => vec![
            col("Name", 0, name),
            int_col("Value", 0, |o| json!(o["value"].as_i64().unwrap_or(0))),
            col("Global-Default", 0, |o| json!(o["globalDefault"] == true)),
            col("Age", 0, age),
            col("PreemptionPolicy", 0, |o| {
                str_or(&o["preemptionPolicy"], "PreemptLowerPriority")
            }),
        ],
        ("rbac.authorization.k8s.io", "rolebindings")
        | ("rbac.authorization.k8s.io", "clusterrolebindings") => vec![
            col("Name", 0, name),
            col("Role", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["roleRef"]["kind"].as_str().unwrap_or(""),
                    o["roleRef"]["name"].as_str().unwrap_or("")
                ))
            }),
            col("Age", 0, age),
        ],
        ("autoscaling", "horizontalpodautoscalers") => vec![
            col("Name", 0, name),
            col("Reference", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["spec"]["scaleTargetRef"]["kind"].as_str().unwrap_or(""),
                    o["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("")
                ))
            }),
            col("Targets", 0, |o| json!(hpa_targets(o))),
            col("MinPods", 0, |o| {
                json!(o["spec"]["minReplicas"]
                    .as_i64()
                    .map_or_else(|| "<unset>".to_owned(), |n| n.to_string()))
            }),
            int_col("MaxPods", 0, |o| {
                json!(o["spec"]["maxReplicas"].as_i64().unwrap_or(0))
            }),
            int_col("Replicas", 0, |o| {
                json!(o["status"]["currentReplicas"].as_i64().unwrap_or(0))
            }),
            col("Age", 0, age),
        ],
        ("", "events") => vec![
            col("Last Seen", 0, |o| {
                let ts = o["lastTimestamp"]
                    .as_str()
                    .or_else(|| o["eventTime"].as_str());
                json!(since(ts).unwrap_or_else(|| "<unknown>".into()))
            }),
            col("Type", 0, |o| o["type"].clone()),
            col("Reason", 0, |o| o["reason"].clone()),
            col("Object", 0, |o| {
                json!(format!(
                    "{}/{}",
                    o["involvedObject"]["kind"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase(),
                    o["involvedObject"]["name"].as_str().unwrap_or("")
                ))
            }),
            col("Message", 0, |o| o["message"].clone()),
        ],
        _ => return None,
    };
    Some(c)
}

/// An autoscaler's metrics as upstream prints them: `cpu: 40%/60%, memory: <unknown>/1Gi`,
/// at most two, then `+ N more...`.
fn hpa_targets(o: &Value) -> String {
    const MAX: usize = 2;
    let Some(metrics) = o["spec"]["metrics"].as_array().filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let current = o["status"]["currentMetrics"].as_array();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let list: Vec<String> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let kind = m["type"].as_str().unwrap_or("");
            let key = match kind {
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                "Pods" => "pods",
                "Object" => "object",
                "External" => "external",
                _ => "",
            };
            let spec = &m[key];
            let status = current
                .and_then(|c| c.get(i))
                .filter(|c| c["type"] == kind)
                .map(|c| &c[key]["current"]);
            let target = &spec["target"];
            let label = spec["name"]
                .as_str()
                .or_else(|| spec["metric"]["name"].as_str())
                .unwrap_or("");
            let (cur, want) = if let Some(u) = target["averageUtilization"].as_i64() {
                let cur = status
                    .and_then(|s| s["averageUtilization"].as_i64())
                    .map_or_else(|| "<unknown>".to_owned(), |c| format!("{c}%"));
                (cur, format!("{u}%"))
            } else {
                let field = if target["averageValue"].is_null() {
                    "value"
                } else {
                    "averageValue"
                };
                let cur = status
                    .map(|s| text(&s[field]))
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "<unknown>".to_owned());
                (cur, text(&target[field]))
            };
            if label.is_empty() {
                format!("{cur}/{want}")
            } else {
                format!("{label}: {cur}/{want}")
            }
        })
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
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
    let rows: Vec<Value> = objects
        .iter()
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
            .map(|c| json!({"name": c.name, "type": c.kind, "format": if c.name == "Name" { "name" } else { "" }, "description": "", "priority": c.priority}))
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

    #[test]
    fn configmap_rows_count_their_data() {
        let info = rkube_api::resources::find("", "v1", "configmaps").unwrap();
        let obj = json!({"metadata": {"name": "a", "creationTimestamp": crate::meta::now_rfc3339()}, "data": {"x": "1", "y": "2"}, "binaryData": {"z": ""}});
        let t = for_objects(info, &[obj], "5", &Query::default());
        assert_eq!(t["rows"][0]["cells"], json!(["a", 3, "0s"]));
        let names: Vec<_> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
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
    }

    fn cells(group: &str, plural: &str, obj: Value) -> Value {
        let info = rkube_api::resources::builtin()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap();
        for_objects(info, &[obj], "1", &Query::default())["rows"][0]["cells"].clone()
    }

    #[test]
    fn workload_rows() {
        let now = crate::meta::now_rfc3339();
        let rs = json!({"metadata": {"name": "r", "creationTimestamp": now}, "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 2}});
        assert_eq!(
            cells("apps", "replicasets", rs),
            json!(["r", 3, 3, 2, "0s"])
        );
        let job = json!({"metadata": {"name": "j", "creationTimestamp": now}, "spec": {"completions": 2}, "status": {"succeeded": 2, "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells("batch", "jobs", job),
            json!(["j", "Complete", "2/2", "0s"])
        );
        let svc = json!({"metadata": {"name": "s", "creationTimestamp": now}, "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("", "services", svc),
            json!([
                "s",
                "NodePort",
                "10.43.0.10",
                "<none>",
                "80:30080/TCP,53/UDP",
                "0s",
                "<none>"
            ])
        );
        let pvc = json!({"metadata": {"name": "data", "creationTimestamp": now}, "spec": {"volumeName": "pv1", "storageClassName": "fast"}, "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]}});
        assert_eq!(
            cells("", "persistentvolumeclaims", pvc),
            json!(["data", "Bound", "pv1", "1Gi", "RWO,ROX", "fast", "0s"])
        );
        let rb = json!({"metadata": {"name": "rb", "creationTimestamp": now}, "roleRef": {"kind": "ClusterRole", "name": "view"}});
        assert_eq!(
            cells("rbac.authorization.k8s.io", "rolebindings", rb),
            json!(["rb", "ClusterRole/view", "0s"])
        );
        let sc = json!({"metadata": {"name": "local", "creationTimestamp": now, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path"});
        assert_eq!(
            cells("storage.k8s.io", "storageclasses", sc)[0],
            "local (default)"
        );
    }
}
