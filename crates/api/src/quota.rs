//! Quota usage as upstream's quota evaluators compute it (pure; tested here): what each
//! pod, service and claim charges against the resource names a quota limits, which pods
//! a quota's scopes select, and quantities summed and printed in upstream's canonical
//! form.

use std::collections::BTreeMap;

use crate::quantity::milli_value;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, Pod, ResourceQuotaSpec, ScopedResourceSelectorRequirement,
    Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

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
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        // Unknown scopes (refused by validation) select nothing.
        _ => false,
    }
}

/// Whether some pod (anti-)affinity term of `pod` reaches beyond its namespace
/// (`namespaces` or a `namespaceSelector`).
fn cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let crosses = |t: &k8s_openapi::api::core::v1::PodAffinityTerm| {
        t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
    };
    let terms =
        |required: Option<&Vec<k8s_openapi::api::core::v1::PodAffinityTerm>>,
         preferred: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            required.into_iter().flatten().any(crosses)
                || preferred
                    .into_iter()
                    .flatten()
                    .any(|w| crosses(&w.pod_affinity_term))
        };
    affinity.pod_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || affinity.pod_anti_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
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

/// An object being created, as the quota evaluators see it.
pub enum Admitted<'a> {
    Pod(&'a Pod),
    Service(&'a Service),
    Claim(&'a PersistentVolumeClaim),
    /// Any other kind: counted by `count/<plural>[.<group>]` (and a legacy core name).
    Other {
        plural: &'a str,
        group: &'a str,
    },
}

impl Admitted<'_> {
    /// Whether quota resource `name` is one this object's evaluator charges (upstream's
    /// `MatchingResources`).
    pub fn charges(&self, name: &str) -> bool {
        match self {
            Admitted::Pod(_) => pod_usage(name, &[]).is_some(),
            Admitted::Service(_) => service_usage(name, &[]).is_some(),
            Admitted::Claim(_) => claim_usage(name, &[]).is_some(),
            Admitted::Other { plural, group } => {
                counted_resource(name).is_some_and(|(p, g)| p == *plural && g == *group)
            }
        }
    }

    /// Whether a quota with `spec`'s scopes applies: scopes select pods only.
    fn selected_by(&self, spec: &ResourceQuotaSpec) -> bool {
        match self {
            Admitted::Pod(pod) => selects_pod(spec, pod),
            _ => !has_scopes(spec),
        }
    }

    /// What the object adds to each of `names` it charges, zeros left out (upstream's
    /// `Usage`, masked to the quota and with `RemoveZeros`).
    fn usage<'n>(&self, names: impl Iterator<Item = &'n String>) -> BTreeMap<String, Amount> {
        let names: Vec<&String> = names.filter(|n| self.charges(n)).collect();
        let mut out = BTreeMap::new();
        for name in names {
            let amount = match self {
                Admitted::Pod(pod) => pod_usage(name, &[pod]),
                Admitted::Service(s) => service_usage(name, &[s]),
                Admitted::Claim(c) => claim_usage(name, &[c]),
                Admitted::Other { .. } => Some(Amount::count(1)),
            };
            if let Some(a) = amount.filter(|a| a.milli != 0) {
                out.insert(name.clone(), a);
            }
        }
        out
    }

    /// Upstream's pod constraint: when a quota limits cpu or memory, every container
    /// (init containers included) must declare it (`requests.cpu for: a,b; limits.memory
    /// for: a`).
    fn missing_compute(&self, restricted: &[&String]) -> Option<String> {
        let Admitted::Pod(pod) = self else {
            return None;
        };
        let spec = pod.spec.as_ref()?;
        const VALIDATED: [&str; 6] = [
            "cpu",
            "memory",
            "requests.cpu",
            "requests.memory",
            "limits.cpu",
            "limits.memory",
        ];
        let required: Vec<&str> = restricted
            .iter()
            .map(|n| n.as_str())
            .filter(|n| VALIDATED.contains(n))
            .collect();
        let mut missing: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let declared = |part: &str, res: &str| {
                c.resources
                    .as_ref()
                    .and_then(|r| {
                        if part == "requests" {
                            r.requests.as_ref()
                        } else {
                            r.limits.as_ref()
                        }
                    })
                    .is_some_and(|m| m.contains_key(res))
            };
            for name in &required {
                let has = match name.split_once('.') {
                    Some((part, res)) => declared(part, res),
                    None => declared("requests", name),
                };
                if !has {
                    missing.entry(name).or_default().insert(&c.name);
                }
            }
        }
        (!missing.is_empty()).then(|| {
            let parts: Vec<String> = missing
                .iter()
                .map(|(res, names)| {
                    format!(
                        "{res} for: {}",
                        names.iter().copied().collect::<Vec<_>>().join(",")
                    )
                })
                .collect();
            format!("must specify {}", parts.join("; "))
        })
    }
}

/// What creating an object means for one quota (upstream's quota admission check).
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// The quota does not constrain the object (nothing it charges, other scopes, or no
    /// status yet: a quota is enforced once its controller has written `status.hard`).
    NotApplicable,
    /// Refused: upstream's message after `forbidden: `.
    Refused(String),
    /// Admitted: the quota's `status.used` afterwards.
    Charge(BTreeMap<String, Quantity>),
}

/// Checks creating `obj` against quota `name` (its `spec` and `status`).
pub fn admit(
    name: &str,
    spec: &ResourceQuotaSpec,
    status: Option<&k8s_openapi::api::core::v1::ResourceQuotaStatus>,
    obj: &Admitted,
) -> Verdict {
    let empty = BTreeMap::new();
    let hard = status.and_then(|s| s.hard.as_ref()).unwrap_or(&empty);
    let used = status.and_then(|s| s.used.as_ref()).unwrap_or(&empty);
    let mut restricted: Vec<&String> = hard.keys().filter(|n| obj.charges(n)).collect();
    restricted.sort();
    if restricted.is_empty() || !obj.selected_by(spec) {
        return Verdict::NotApplicable;
    }
    if let Some(missing) = obj.missing_compute(&restricted) {
        return Verdict::Refused(format!("failed quota: {name}: {missing}"));
    }
    if restricted.iter().any(|n| !used.contains_key(*n)) {
        let names: Vec<&str> = restricted.iter().map(|n| n.as_str()).collect();
        return Verdict::Refused(format!(
            "status unknown for quota: {name}, resources: {}",
            names.join(",")
        ));
    }
    let requested = obj.usage(restricted.into_iter());
    if requested.is_empty() {
        return Verdict::NotApplicable;
    }
    let mut new_used: BTreeMap<String, Amount> = used
        .iter()
        .map(|(k, q)| (k.clone(), Amount::of(q)))
        .collect();
    for (k, a) in &requested {
        new_used.entry(k.clone()).or_default().add(*a);
    }
    let exceeded: Vec<&String> = requested
        .keys()
        .filter(|k| {
            hard.get(*k)
                .is_some_and(|h| new_used[*k].milli > Amount::of(h).milli)
        })
        .collect();
    if !exceeded.is_empty() {
        let show = |value: &dyn Fn(&String) -> String| {
            exceeded
                .iter()
                .map(|k| format!("{k}={}", value(k)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let canonical = |q: &Quantity| Amount::of(q).to_quantity().0;
        return Verdict::Refused(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            show(&|k| requested[k].to_quantity().0),
            show(&|k| canonical(&used[k])),
            show(&|k| canonical(&hard[k])),
        ));
    }
    Verdict::Charge(
        new_used
            .into_iter()
            .map(|(k, a)| (k, a.to_quantity()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        PodSpec, ResourceQuotaStatus, ResourceRequirements, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

    fn status(hard: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceQuotaStatus {
        let map =
            |kv: &[(&str, &str)]| Some(kv.iter().map(|(k, v)| (k.to_string(), q(v))).collect());
        ResourceQuotaStatus {
            hard: map(hard),
            used: map(used),
        }
    }

    #[test]
    fn admission_charges_refuses_and_explains_like_upstream() {
        let p = pod(
            vec![container(&[("cpu", "250m")], &[("cpu", "500m")])],
            vec![],
            None,
        );
        let obj = Admitted::Pod(&p);
        let spec = ResourceQuotaSpec::default();
        // No status yet: not enforced.
        assert_eq!(admit("q", &spec, None, &obj), Verdict::NotApplicable);
        // Charged: used grows, other names kept.
        let st = status(
            &[("pods", "2"), ("requests.cpu", "1"), ("configmaps", "1")],
            &[("pods", "1"), ("requests.cpu", "500m"), ("configmaps", "0")],
        );
        let Verdict::Charge(used) = admit("q", &spec, Some(&st), &obj) else {
            panic!("not charged");
        };
        assert_eq!(
            show(used),
            vec!["configmaps=0", "pods=2", "requests.cpu=750m"]
        );
        // Exceeded: only the exceeded names are listed.
        let st = status(
            &[("pods", "1"), ("requests.cpu", "1")],
            &[("pods", "1"), ("requests.cpu", "0")],
        );
        assert_eq!(
            admit("q", &spec, Some(&st), &obj),
            Verdict::Refused(
                "exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1".into()
            )
        );
        // Usage not computed yet for a limited name.
        let st = status(&[("pods", "5"), ("requests.cpu", "1")], &[("pods", "1")]);
        assert_eq!(
            admit("q", &spec, Some(&st), &obj),
            Verdict::Refused("status unknown for quota: q, resources: pods,requests.cpu".into())
        );
        // Limited compute resources must be declared by every container.
        let st = status(
            &[("limits.memory", "1Gi"), ("cpu", "2")],
            &[("limits.memory", "0"), ("cpu", "0")],
        );
        assert_eq!(
            admit("q", &spec, Some(&st), &obj),
            Verdict::Refused("failed quota: q: must specify limits.memory for: c".into())
        );
        // Scoped quotas select pods only.
        let best_effort = ResourceQuotaSpec {
            scopes: Some(vec!["BestEffort".into()]),
            ..Default::default()
        };
        let st = status(&[("pods", "0")], &[("pods", "0")]);
        assert_eq!(
            admit("q", &best_effort, Some(&st), &obj),
            Verdict::NotApplicable
        );
        let idle = pod(vec![container(&[], &[])], vec![], None);
        assert!(matches!(
            admit("q", &best_effort, Some(&st), &Admitted::Pod(&idle)),
            Verdict::Refused(_)
        ));
        let cm = Admitted::Other {
            plural: "configmaps",
            group: "",
        };
        let st = status(
            &[("count/configmaps", "1"), ("pods", "1")],
            &[("count/configmaps", "1"), ("pods", "5")],
        );
        assert_eq!(
            admit("q", &spec, Some(&st), &cm),
            Verdict::Refused("exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1".into())
        );
        assert_eq!(
            admit("q", &best_effort, Some(&st), &cm),
            Verdict::NotApplicable
        );
        let deploy = Admitted::Other {
            plural: "deployments",
            group: "apps",
        };
        assert_eq!(
            admit("q", &spec, Some(&st), &deploy),
            Verdict::NotApplicable
        );
    }

    #[test]
    fn cross_namespace_affinity_scope() {
        use k8s_openapi::api::core::v1::{Affinity, PodAffinityTerm, PodAntiAffinity};
        let mut p = pod(vec![container(&[], &[])], vec![], None);
        let spec = ResourceQuotaSpec {
            scopes: Some(vec!["CrossNamespacePodAffinity".into()]),
            ..Default::default()
        };
        assert!(!selects_pod(&spec, &p));
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    namespaces: Some(vec!["other".into()]),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(selects_pod(&spec, &p));
    }
}
