//! What the Endpoints and EndpointSlice controllers share (upstream's
//! `pkg/controller/util/endpoint` and `endpointslice/util`): which pods a Service selects,
//! whether a pod belongs in its endpoints, its address, a service port resolved against the
//! pod's container ports, its hostname, and the last-change trigger time.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// The annotation with the time of the last change that triggered an endpoints update.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The label marking headless services' endpoints.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The service's selector when it has one; selector-less services' endpoints are managed
/// by someone else and left alone.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether `svc` (with a selector) selects `pod`.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = selector(svc) else {
        return false;
    };
    if svc.namespace() != pod.namespace() {
        return false;
    }
    let labels = pod.labels();
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The services (from a reflector store) that select `pod`.
pub fn services_selecting(
    services: &kube::runtime::reflector::Store<Service>,
    pod: &Pod,
) -> std::collections::HashSet<kube::runtime::reflector::ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| selects(s, pod))
        .map(|s| kube::runtime::reflector::ObjectRef::from_obj(&**s))
        .collect()
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod belongs in a service's endpoints at all (upstream
/// `ShouldPodBeInEndpoints`): it has an IP, is not terminal for its restart policy, and
/// is not terminating unless terminating pods are included.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    if !include_terminating && pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => phase != "Failed" && phase != "Succeeded",
        Some("OnFailure") => phase != "Succeeded",
        _ => true,
    }
}

/// The service's address family: `IPv6` when its first IP family is, else `IPv4`.
pub fn address_type(svc: &Service) -> &'static str {
    let family = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(String::as_str);
    if family == Some("IPv6") {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The pod's IP of the given family (`IPv4` / `IPv6`), if it has one.
pub fn pod_ip(pod: &Pod, address_type: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let want_v6 = address_type == "IPv6";
    let matches = |ip: &str| {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_ipv6() == want_v6)
    };
    status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .chain(status.pod_ip.as_deref())
        .find(|ip| matches(ip))
        .map(str::to_owned)
}

/// The port a service port reaches on `pod` (upstream `FindPort`): a numeric targetPort
/// as is (the service port when unset), a named one looked up in the pod's containers
/// (and restartable init containers) by name and protocol.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(0)) => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// A service port resolved for one pod: the port endpoints list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

impl PortKey {
    /// As an Endpoints port (an empty name is left out).
    pub fn endpoints_port(self) -> k8s_openapi::api::core::v1::EndpointPort {
        k8s_openapi::api::core::v1::EndpointPort {
            name: Some(self.name).filter(|n| !n.is_empty()),
            port: self.port,
            protocol: Some(self.protocol),
            app_protocol: self.app_protocol,
        }
    }

    /// As an EndpointSlice port (the name always present, as upstream writes it).
    pub fn slice_port(self) -> k8s_openapi::api::discovery::v1::EndpointPort {
        k8s_openapi::api::discovery::v1::EndpointPort {
            name: Some(self.name),
            port: Some(self.port),
            protocol: Some(self.protocol),
            app_protocol: self.app_protocol,
        }
    }
}

/// The service's ports resolved on `pod`, sorted; ports that do not resolve are left
/// out, and `None` when none does.
pub fn resolve_ports(pod: &Pod, ports: &[ServicePort]) -> Option<Vec<PortKey>> {
    let mut resolved: Vec<PortKey> = ports
        .iter()
        .filter_map(|p| {
            Some(PortKey {
                name: p.name.clone().unwrap_or_default(),
                port: find_port(pod, p)?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect();
    resolved.sort();
    resolved.dedup();
    (!resolved.is_empty()).then_some(resolved)
}

/// The hostname the pod's endpoint carries (upstream `ShouldSetHostname`): its
/// `spec.hostname` when its `spec.subdomain` names this service in its namespace.
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| hostname.to_owned())
}

/// Whether the service is headless (`clusterIP: None`).
pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The labels endpoints objects get from their service: the service's own, plus the
/// headless marker for headless services.
pub fn endpoint_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// Tracks, per service, the change times it has already accounted for, to compute the
/// `last-change-trigger-time` of the next update (upstream `TriggerTimeTracker`): the
/// earliest change not yet reflected — the service's creation when first seen, or a pod's
/// last Ready transition (or creation) that changed since the previous sync.
#[derive(Default)]
pub struct TriggerTimeTracker {
    seen: HashMap<(String, String), HashMap<String, Time>>,
}

impl TriggerTimeTracker {
    /// The trigger time for syncing `svc` with `pods`, recording them as accounted for.
    pub fn compute(&mut self, svc: &Service, pods: &[&Pod]) -> Option<Time> {
        let key = (svc.namespace().unwrap_or_default(), svc.name_any());
        let first = !self.seen.contains_key(&key);
        let state = self.seen.entry(key).or_default();
        let mut min: Option<Time> = None;
        let mut consider = |t: &Time| {
            if min.as_ref().is_none_or(|m| t.0 < m.0) {
                min = Some(t.clone());
            }
        };
        if first {
            if let Some(t) = &svc.metadata.creation_timestamp {
                consider(t);
            }
        }
        let mut now_seen = HashMap::new();
        for pod in pods {
            let t = ready_condition(pod)
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| pod.metadata.creation_timestamp.clone());
            let Some(t) = t else { continue };
            if state.get(&pod.name_any()) != Some(&t) {
                consider(&t);
            }
            now_seen.insert(pod.name_any(), t);
        }
        *state = now_seen;
        min
    }

    /// Forgets a deleted service.
    pub fn forget(&mut self, namespace: &str, name: &str) {
        self.seen.remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// Formats a trigger time as upstream does (RFC 3339 with nanoseconds when present).
pub fn format_time(t: &Time) -> String {
    t.0.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn finds_ports_like_upstream() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}],
            "initContainers": [{"name": "side", "restartPolicy": "Always",
                                "ports": [{"name": "metrics", "containerPort": 9090}]},
                               {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]}]}}));
        let cases = [
            (json!({"port": 80}), Some(80)),
            (json!({"port": 80, "targetPort": 81}), Some(81)),
            (json!({"port": 80, "targetPort": "http"}), Some(8080)),
            (json!({"port": 80, "targetPort": "dns"}), None),
            (
                json!({"port": 80, "targetPort": "dns", "protocol": "UDP"}),
                Some(53),
            ),
            (json!({"port": 80, "targetPort": "metrics"}), Some(9090)),
            (json!({"port": 80, "targetPort": "setup"}), None),
            (json!({"port": 80, "targetPort": "nope"}), None),
        ];
        for (sp, want) in cases {
            assert_eq!(find_port(&p, &port(sp.clone())), want, "{sp}");
        }
    }

    #[test]
    fn pods_in_endpoints_like_upstream() {
        let base = |policy: &str, phase: &str, ip: Option<&str>, deleting: bool| {
            let mut v = json!({"metadata": {"name": "p"}, "spec": {"containers": [], "restartPolicy": policy},
                               "status": {"phase": phase}});
            if let Some(ip) = ip {
                v["status"]["podIP"] = json!(ip);
            }
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            pod(v)
        };
        let cases = [
            (
                base("Always", "Running", Some("10.0.0.1"), false),
                false,
                true,
            ),
            (base("Always", "Pending", None, false), false, false),
            (
                base("Always", "Running", Some("10.0.0.1"), true),
                false,
                false,
            ),
            (
                base("Always", "Running", Some("10.0.0.1"), true),
                true,
                true,
            ),
            (
                base("Never", "Failed", Some("10.0.0.1"), false),
                false,
                false,
            ),
            (
                base("Never", "Succeeded", Some("10.0.0.1"), false),
                false,
                false,
            ),
            (
                base("OnFailure", "Failed", Some("10.0.0.1"), false),
                false,
                true,
            ),
            (
                base("OnFailure", "Succeeded", Some("10.0.0.1"), false),
                false,
                false,
            ),
            (
                base("Always", "Failed", Some("10.0.0.1"), false),
                false,
                true,
            ),
        ];
        for (i, (p, incl, want)) in cases.iter().enumerate() {
            assert_eq!(should_pod_be_in_endpoints(p, *incl), *want, "case {i}");
        }
    }

    #[test]
    fn hostname_only_for_the_services_subdomain() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "a"}})).unwrap();
        let p = |ns: &str, sub: &str| {
            pod(json!({"metadata": {"name": "p", "namespace": ns},
                       "spec": {"containers": [], "hostname": "h", "subdomain": sub}}))
        };
        assert_eq!(hostname(&p("a", "web"), &svc).as_deref(), Some("h"));
        assert_eq!(hostname(&p("a", "other"), &svc), None);
        assert_eq!(hostname(&p("b", "web"), &svc), None);
    }

    #[test]
    fn pod_ip_by_family() {
        let p = pod(json!({"metadata": {"name": "p"}, "status": {
            "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]}}));
        assert_eq!(pod_ip(&p, "IPv4").as_deref(), Some("10.0.0.1"));
        assert_eq!(pod_ip(&p, "IPv6").as_deref(), Some("fd00::1"));
    }

    #[test]
    fn trigger_time_is_the_earliest_unaccounted_change() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "a",
            "creationTimestamp": "2026-01-01T00:00:00Z"}}))
            .unwrap();
        let p = |name: &str, t: &str| {
            pod(
                json!({"metadata": {"name": name, "creationTimestamp": "2025-01-01T00:00:00Z"},
                       "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": t}]}}),
            )
        };
        let mut tr = TriggerTimeTracker::default();
        let a = p("a", "2026-01-02T00:00:00Z");
        let t = tr.compute(&svc, &[&a]).unwrap();
        assert_eq!(format_time(&t), "2026-01-01T00:00:00Z");
        assert!(tr.compute(&svc, &[&a]).is_none());
        let b = p("b", "2026-01-03T00:00:00Z");
        let a2 = p("a", "2026-01-04T00:00:00Z");
        let t = tr.compute(&svc, &[&a2, &b]).unwrap();
        assert_eq!(format_time(&t), "2026-01-03T00:00:00Z");
    }
}
