//! Quota usage as upstream's quota evaluators compute it (pure; tested here): what each
//! pod, service and claim charges against the resource names a quota limits, which pods
//! a quota's scopes select, and quantities summed and printed in upstream's canonical
//! form.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, ResourceQuotaSpec, ScopedResourceSelectorRequirement,
    Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_scheduler::quantity::milli_value;

/// A sum of quantities in thousandths, remembering whether to print it with binary
/// (`Ki`, `Mi`, ...) suffixes, as a Quantity keeps the format of its first operand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub milli: i64,
    pub binary: bool,
}

impl Amount {
    pub fn count(n: usize) -> Amount {
        Amount {
            milli: n as i64 * 1000,
            binary: false,
        }
    }

    fn of(q: &Quantity) -> Amount {
        Amount {
            milli: milli_value(&q.0).unwrap_or(0),
            binary: q.0.ends_with('i'),
        }
    }

    fn add(&mut self, other: Amount) {
        if self.milli == 0 && other.milli != 0 {
            self.binary = other.binary;
        }
        self.milli = self.milli.saturating_add(other.milli);
    }

    /// Upstream's canonical string: `0`, `1500m`, `2k`, `192Mi`, `1536`.
    pub fn to_quantity(self) -> Quantity {
        Quantity(format_milli(self.milli, self.binary))
    }
}

fn format_milli(milli: i64, binary: bool) -> String {
    if milli == 0 {
        return "0".into();
    }
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let v = milli / 1000;
    if binary {
        for (suffix, p) in [
            ("Ei", 60),
            ("Pi", 50),
            ("Ti", 40),
            ("Gi", 30),
            ("Mi", 20),
            ("Ki", 10),
        ] {
            let unit = 1i64 << p;
            if v % unit == 0 {
                return format!("{}{suffix}", v / unit);
            }
        }
        return v.to_string();
    }
    for (suffix, p) in [
        ("E", 18),
        ("P", 15),
        ("T", 12),
        ("G", 9),
        ("M", 6),
        ("k", 3),
    ] {
        let unit = 10i64.pow(p);
        if v % unit == 0 {
            return format!("{}{suffix}", v / unit);
        }
    }
    v.to_string()
}

/// Compute resources a pod asks for: per resource, the larger of its containers' sum
/// and its largest init container, plus its overhead (upstream's `PodRequests`).
fn pod_resources(pod: &Pod, limits: bool) -> BTreeMap<String, Amount> {
    let Some(spec) = &pod.spec else {
        return BTreeMap::new();
    };
    let of = |c: &Container| {
        c.resources
            .as_ref()
            .and_then(|r| {
                if limits {
                    r.limits.clone()
                } else {
                    r.requests.clone()
                }
            })
            .unwrap_or_default()
    };
    let mut sum: BTreeMap<String, Amount> = BTreeMap::new();
    for c in &spec.containers {
        for (k, q) in of(c) {
            sum.entry(k).or_default().add(Amount::of(&q));
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, q) in of(c) {
            let a = Amount::of(&q);
            let e = sum.entry(k).or_default();
            if a.milli > e.milli {
                *e = a;
            }
        }
    }
    for (k, q) in spec.overhead.clone().unwrap_or_default() {
        sum.entry(k).or_default().add(Amount::of(&q));
    }
    sum
}

/// Whether the pod still counts against quota: not terminated, and not past its
/// deletion grace period.
pub fn pod_counts(pod: &Pod, now_secs: i64) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return false;
    }
    if let (Some(ts), Some(grace)) = (
        &pod.metadata.deletion_timestamp,
        pod.metadata.deletion_grace_period_seconds,
    ) {
        if now_secs > ts.0.as_second() + grace {
            return false;
        }
    }
    true
}

fn best_effort(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return true };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| {
            let r = c.resources.as_ref();
            let empty = |m: Option<&BTreeMap<String, Quantity>>| {
                m.is_none_or(|m| !m.keys().any(|k| k == "cpu" || k == "memory"))
            };
            empty(r.and_then(|r| r.requests.as_ref())) && empty(r.and_then(|r| r.limits.as_ref()))
        })
}

fn scope_matches(scope: &str, pod: &Pod, req: Option<&ScopedResourceSelectorRequirement>) -> bool {
    let spec = pod.spec.as_ref();
    match scope {
        "Terminating" => spec
            .and_then(|s| s.active_deadline_seconds)
            .is_some_and(|d| d >= 0),
        "NotTerminating" => !scope_matches("Terminating", pod, None),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "PriorityClass" => {
            let class = spec.and_then(|s| s.priority_class_name.as_deref());
            let Some(req) = req else {
                return class.is_some();
            };
            let values = req.values.clone().unwrap_or_default();
            match req.operator.as_str() {
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                _ => false,
            }
        }
        // CrossNamespacePodAffinity and unknown scopes select nothing we count.
        _ => false,
    }
}

/// Whether the quota's scopes (`scopes` and `scopeSelector`) select `pod`.
pub fn selects_pod(spec: &ResourceQuotaSpec, pod: &Pod) -> bool {
    spec.scopes
        .iter()
        .flatten()
        .all(|s| scope_matches(s, pod, None))
        && spec
            .scope_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .into_iter()
            .flatten()
            .all(|r| scope_matches(&r.scope_name, pod, Some(r)))
}

fn has_scopes(spec: &ResourceQuotaSpec) -> bool {
    spec.scopes.as_ref().is_some_and(|s| !s.is_empty())
        || spec
            .scope_selector
            .as_ref()
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|m| !m.is_empty())
}

/// What a namespace holds, for quota.
#[derive(Default)]
pub struct Contents<'a> {
    pub pods: Vec<&'a Pod>,
    pub services: Vec<&'a Service>,
    pub claims: Vec<&'a PersistentVolumeClaim>,
    /// Object counts by quota resource name (`count/deployments.apps`, `configmaps`).
    pub counts: BTreeMap<String, usize>,
}

/// `status.used` for a quota with `spec` over `contents`: every resource name in
/// `spec.hard`, computed. Pods already filtered by [`pod_counts`].
pub fn used(spec: &ResourceQuotaSpec, contents: &Contents) -> BTreeMap<String, Quantity> {
    let hard = spec.hard.clone().unwrap_or_default();
    let pods: Vec<&Pod> = contents
        .pods
        .iter()
        .copied()
        .filter(|p| selects_pod(spec, p))
        .collect();
    let scoped = has_scopes(spec);
    let mut used = BTreeMap::new();
    for name in hard.keys() {
        let amount = if let Some(a) = pod_usage(name, &pods) {
            Some(a)
        } else if scoped {
            // Scopes only select pods.
            None
        } else if let Some(a) = service_usage(name, &contents.services) {
            Some(a)
        } else if let Some(a) = claim_usage(name, &contents.claims) {
            Some(a)
        } else {
            contents.counts.get(name).map(|n| Amount::count(*n))
        };
        if let Some(a) = amount {
            used.insert(name.clone(), a.to_quantity());
        }
    }
    used
}

fn sum(pods: &[&Pod], resource: &str, limits: bool) -> Amount {
    let mut total = Amount::default();
    for p in pods {
        if let Some(a) = pod_resources(p, limits).get(resource) {
            total.add(*a);
        }
    }
    total
}

fn pod_usage(name: &str, pods: &[&Pod]) -> Option<Amount> {
    Some(match name {
        "pods" | "count/pods" => Amount::count(pods.len()),
        "cpu" | "memory" | "ephemeral-storage" => sum(pods, name, false),
        _ => {
            if let Some(r) = name.strip_prefix("requests.") {
                if r == "storage" {
                    return None;
                }
                sum(pods, r, false)
            } else if let Some(r) = name.strip_prefix("limits.") {
                sum(pods, r, true)
            } else if name.starts_with("hugepages-") {
                sum(pods, name, false)
            } else {
                return None;
            }
        }
    })
}

fn service_usage(name: &str, services: &[&Service]) -> Option<Amount> {
    let of_type = |t: &str| {
        services
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some(t))
            .count()
    };
    Some(match name {
        "services" | "count/services" => Amount::count(services.len()),
        "services.loadbalancers" => Amount::count(of_type("LoadBalancer")),
        "services.nodeports" => Amount::count(
            services
                .iter()
                .filter_map(|s| s.spec.as_ref())
                .filter(|s| matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer")))
                .map(|s| s.ports.as_ref().map_or(0, Vec::len))
                .sum(),
        ),
        _ => return None,
    })
}

const CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

fn claim_usage(name: &str, claims: &[&PersistentVolumeClaim]) -> Option<Amount> {
    let storage = |c: &&&PersistentVolumeClaim| {
        c.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(Amount::of)
            .unwrap_or_default()
    };
    let total = |cs: Vec<&&PersistentVolumeClaim>| {
        let mut t = Amount::default();
        for c in &cs {
            t.add(storage(c));
        }
        t
    };
    match name {
        "persistentvolumeclaims" | "count/persistentvolumeclaims" => {
            Some(Amount::count(claims.len()))
        }
        "requests.storage" => Some(total(claims.iter().collect())),
        _ => {
            let (class, what) = name.split_once(CLASS_SUFFIX)?;
            let of_class: Vec<&&PersistentVolumeClaim> = claims
                .iter()
                .filter(|c| {
                    c.spec
                        .as_ref()
                        .and_then(|s| s.storage_class_name.as_deref())
                        == Some(class)
                })
                .collect();
            match what {
                "requests.storage" => Some(total(of_class)),
                "persistentvolumeclaims" => Some(Amount::count(of_class.len())),
                _ => None,
            }
        }
    }
}

/// The resource (plural, group) an object-count quota name counts: `count/<resource>`
/// or `count/<resource>.<group>`, and the legacy core names.
pub fn counted_resource(name: &str) -> Option<(String, String)> {
    if let Some(r) = name.strip_prefix("count/") {
        return Some(match r.split_once('.') {
            Some((plural, group)) => (plural.to_owned(), group.to_owned()),
            None => (r.to_owned(), String::new()),
        });
    }
    matches!(
        name,
        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
    )
    .then(|| (name.to_owned(), String::new()))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements, ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn container(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), q(v))).collect())
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(req),
                limits: map(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(containers: Vec<Container>, init: Vec<Container>, deadline: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta::default(),
            spec: Some(PodSpec {
                containers,
                init_containers: (!init.is_empty()).then_some(init),
                active_deadline_seconds: deadline,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn hard(names: &[&str]) -> ResourceQuotaSpec {
        ResourceQuotaSpec {
            hard: Some(names.iter().map(|n| (n.to_string(), q("100"))).collect()),
            ..Default::default()
        }
    }

    fn show(used: BTreeMap<String, Quantity>) -> Vec<String> {
        used.into_iter()
            .map(|(k, v)| format!("{k}={}", v.0))
            .collect()
    }

    #[test]
    fn quantities_print_canonically() {
        let cases = [
            (0, false, "0"),
            (1500, false, "1500m"),
            (2000, false, "2"),
            (2_000_000, false, "2k"),
            (192 * 1024 * 1024 * 1000, true, "192Mi"),
            (1536 * 1000, true, "1536"),
            (1024 * 1000, true, "1Ki"),
        ];
        for (milli, binary, want) in cases {
            assert_eq!(format_milli(milli, binary), want, "{milli} {binary}");
        }
    }

    #[test]
    fn pods_charge_requests_and_limits() {
        let a = pod(
            vec![
                container(
                    &[("cpu", "100m"), ("memory", "64Mi")],
                    &[("cpu", "1"), ("memory", "128Mi")],
                ),
                container(&[("cpu", "200m"), ("memory", "64Mi")], &[]),
            ],
            // The init container's 500m exceeds the containers' 300m.
            vec![container(&[("cpu", "500m")], &[])],
            None,
        );
        let b = pod(vec![container(&[], &[])], vec![], Some(30));
        let contents = Contents {
            pods: vec![&a, &b],
            ..Default::default()
        };
        let spec = hard(&[
            "pods",
            "requests.cpu",
            "cpu",
            "requests.memory",
            "limits.cpu",
            "limits.memory",
            "count/pods",
        ]);
        assert_eq!(
            show(used(&spec, &contents)),
            vec![
                "count/pods=2",
                "cpu=500m",
                "limits.cpu=1",
                "limits.memory=128Mi",
                "pods=2",
                "requests.cpu=500m",
                "requests.memory=128Mi",
            ]
        );
        // Scopes select pods: b is BestEffort and Terminating.
        let scoped = |scopes: &[&str]| ResourceQuotaSpec {
            scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
            ..hard(&["pods"])
        };
        for (scopes, want) in [
            (&["BestEffort"][..], "pods=1"),
            (&["NotBestEffort"][..], "pods=1"),
            (&["Terminating"][..], "pods=1"),
            (&["NotTerminating", "NotBestEffort"][..], "pods=1"),
            (&["Terminating", "NotBestEffort"][..], "pods=0"),
        ] {
            assert_eq!(
                show(used(&scoped(scopes), &contents)),
                vec![want],
                "{scopes:?}"
            );
        }
    }

    #[test]
    fn services_claims_and_counts() {
        let svc = |t: &str, ports: usize| Service {
            spec: Some(ServiceSpec {
                type_: Some(t.into()),
                ports: Some(vec![
                    ServicePort {
                        port: 80,
                        ..Default::default()
                    };
                    ports
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (a, b, c) = (
            svc("ClusterIP", 1),
            svc("NodePort", 2),
            svc("LoadBalancer", 1),
        );
        let mut counts = BTreeMap::new();
        counts.insert("count/deployments.apps".to_string(), 3);
        counts.insert("configmaps".to_string(), 2);
        let contents = Contents {
            services: vec![&a, &b, &c],
            counts,
            ..Default::default()
        };
        let spec = hard(&[
            "services",
            "services.nodeports",
            "services.loadbalancers",
            "count/deployments.apps",
            "configmaps",
            "secrets",
        ]);
        assert_eq!(
            show(used(&spec, &contents)),
            vec![
                "configmaps=2",
                "count/deployments.apps=3",
                "services=3",
                "services.loadbalancers=1",
                "services.nodeports=3",
            ]
        );
        assert_eq!(
            counted_resource("count/deployments.apps"),
            Some(("deployments".into(), "apps".into()))
        );
        assert_eq!(
            counted_resource("secrets"),
            Some(("secrets".into(), String::new()))
        );
        assert_eq!(counted_resource("requests.cpu"), None);
    }
}
