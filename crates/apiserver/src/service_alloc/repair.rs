//! The repair loops (upstream's `ipallocator/controller/repairip.go` and the node port
//! `repair.go`): at start and every interval, Services and allocation records are brought
//! back into agreement.
//!
//! - A Service's cluster IP or node port without a record gets one (`ClusterIPNotAllocated`
//!   / `PortNotAllocated` Events), an IPAddress naming another Service that also holds the
//!   address is a duplicate (`ClusterIPAlreadyAllocated`; ports: `PortAlreadyAllocated`),
//!   addresses and ports outside the ranges are reported (`ClusterIPOutOfRange`,
//!   `PortOutOfRange`).
//! - A record whose Service is gone, or no longer holds it, is released — but only once it
//!   is older than the grace period (upstream: 60 s, the request timeout), so an allocation
//!   racing its own Service write is never freed.
//!
//! [`plan`] decides from listed objects alone (pure, unit-tested); [`pass`] lists, plans and
//! acts through the API (Events, IPAddresses) and the store (node port records).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use super::{
    health_check_port, ip_address_object, ip_range::family_of, needs_cluster_ip,
    needs_health_check, node_port_key, node_ports, Allocators, IP_MANAGER, LABEL_FAMILY,
    LABEL_MANAGED_BY, NODE_PORT_PREFIX,
};
use crate::ApiState;

/// Upstream's grace before an unreferenced record is released.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Upstream's repair interval (`RepairServicesInterval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(180);

/// A Service as the repair loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub cluster_ips: Vec<String>,
    pub node_ports: Vec<i64>,
}

impl ServiceView {
    pub fn from_object(svc: &Value) -> Self {
        let cluster_ips = if needs_cluster_ip(svc) {
            super::strings(&svc["spec"]["clusterIPs"])
                .into_iter()
                .filter(|ip| ip != "None" && !ip.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        let mut ports = node_ports(svc);
        if needs_health_check(svc) && health_check_port(svc) > 0 {
            ports.push(health_check_port(svc));
        }
        ports.sort_unstable();
        ports.dedup();
        ServiceView {
            namespace: svc["metadata"]["namespace"].as_str().unwrap_or("").into(),
            name: svc["metadata"]["name"].as_str().unwrap_or("").into(),
            cluster_ips,
            node_ports: ports,
        }
    }

    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// A record (IPAddress or node port): who it names and how old it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `None` when it does not name a Service (`parentRef` to something else).
    pub owner: Option<(String, String)>,
    /// Managed by the allocator (IPAddresses of other managers are left alone).
    pub managed: bool,
    /// Labels as the allocator writes them.
    pub labels_ok: bool,
    pub age: Duration,
}

impl Record {
    /// An IPAddress object.
    pub fn from_ip_address(obj: &Value, now: i64) -> Self {
        let r = &obj["spec"]["parentRef"];
        let owner = (r["group"].as_str().unwrap_or("").is_empty() && r["resource"] == "services")
            .then(|| {
                (
                    r["namespace"].as_str().unwrap_or("").to_owned(),
                    r["name"].as_str().unwrap_or("").to_owned(),
                )
            });
        let labels = &obj["metadata"]["labels"];
        let managed = labels[LABEL_MANAGED_BY] == IP_MANAGER;
        let family = obj["metadata"]["name"]
            .as_str()
            .and_then(|n| n.parse::<IpAddr>().ok())
            .map(family_of);
        let labels_ok = managed && family.is_some_and(|f| labels[LABEL_FAMILY] == f);
        Record {
            owner,
            managed,
            labels_ok,
            age: age(obj["metadata"]["creationTimestamp"].as_str(), now),
        }
    }

    /// A node port record.
    pub fn from_node_port(value: &Value, now: i64) -> Self {
        let s = &value["service"];
        Record {
            owner: Some((
                s["namespace"].as_str().unwrap_or("").to_owned(),
                s["name"].as_str().unwrap_or("").to_owned(),
            )),
            managed: true,
            labels_ok: true,
            age: age(value["creationTimestamp"].as_str(), now),
        }
    }
}

fn age(created: Option<&str>, now: i64) -> Duration {
    let created = created.and_then(crate::meta::parse_rfc3339).unwrap_or(now);
    Duration::from_secs(now.saturating_sub(created).max(0) as u64)
}

/// What a pass does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record `ip` for the Service (create; `recreate` deletes a wrong record first).
    RecordIp {
        ip: String,
        service: (String, String),
        recreate: bool,
    },
    /// Delete the IPAddress.
    ReleaseIp { ip: String },
    /// Record `port` for the Service.
    RecordPort {
        port: i64,
        service: (String, String),
    },
    /// Delete the node port record.
    ReleasePort { port: i64 },
    /// An Event on a Service (`None`: on the IPAddress named in `ip`).
    Event {
        service: Option<(String, String)>,
        ip: Option<String>,
        reason: &'static str,
        action: &'static str,
        note: String,
    },
}

/// Decides a pass from what was listed. `ips` and `ports` must be listed *before*
/// `services`, so a record created for a Service that was already written is matched.
pub fn plan(
    al: &Allocators,
    services: &[ServiceView],
    ips: &BTreeMap<String, Record>,
    ports: &BTreeMap<i64, Record>,
    grace: Duration,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let by_key: BTreeMap<(String, String), &ServiceView> =
        services.iter().map(|s| (s.key(), s)).collect();
    let holds_ip = |owner: &(String, String), ip: &str| {
        by_key
            .get(owner)
            .is_some_and(|s| s.cluster_ips.iter().any(|i| i == ip))
    };
    let holds_port = |owner: &(String, String), port: i64| {
        by_key
            .get(owner)
            .is_some_and(|s| s.node_ports.contains(&port))
    };
    let mut recorded_ips: BTreeSet<String> = BTreeSet::new();
    let mut recorded_ports: BTreeSet<i64> = BTreeSet::new();
    for svc in services {
        let me = svc.key();
        for ip in &svc.cluster_ips {
            let Ok(addr) = ip.parse::<IpAddr>() else {
                actions.push(Action::Event {
                    service: Some(me.clone()),
                    ip: None,
                    reason: "ClusterIPNotValid",
                    action: "ClusterIPValidation",
                    note: format!("Cluster IP {ip} is not a valid IP; please recreate Service"),
                });
                continue;
            };
            let family = family_of(addr);
            if !al.ips.contains(addr) {
                actions.push(Action::Event {
                    service: Some(me.clone()),
                    ip: None,
                    reason: "ClusterIPOutOfRange",
                    action: "ClusterIPAllocation",
                    note: format!("Cluster IP [{family}]: {ip} is not within any configured Service CIDR; please recreate service"),
                });
                continue;
            }
            match ips.get(ip) {
                None if recorded_ips.contains(ip) => actions.push(duplicate_ip(&me, family, ip)),
                None => {
                    actions.push(Action::Event {
                        service: Some(me.clone()),
                        ip: None,
                        reason: "ClusterIPNotAllocated",
                        action: "ClusterIPAllocation",
                        note: format!("Cluster IP [{family}]: {ip} is not allocated; repairing"),
                    });
                    actions.push(Action::RecordIp {
                        ip: ip.clone(),
                        service: me.clone(),
                        recreate: false,
                    });
                }
                Some(record) => match &record.owner {
                    Some(owner) if *owner == me => {
                        if !record.labels_ok {
                            actions.push(Action::RecordIp {
                                ip: ip.clone(),
                                service: me.clone(),
                                recreate: true,
                            });
                        }
                    }
                    Some(owner) if holds_ip(owner, ip) => {
                        actions.push(duplicate_ip(&me, family, ip));
                    }
                    _ => {
                        actions.push(Action::Event {
                            service: Some(me.clone()),
                            ip: None,
                            reason: "ClusterIPNotAllocated",
                            action: "ClusterIPAllocation",
                            note: format!("the ClusterIP [{family}]: {ip} for Service {}/{} has a wrong reference; repairing", me.0, me.1),
                        });
                        actions.push(Action::RecordIp {
                            ip: ip.clone(),
                            service: me.clone(),
                            recreate: true,
                        });
                    }
                },
            }
            recorded_ips.insert(ip.clone());
        }
        for &port in &svc.node_ports {
            if !al.ports.contains(port) {
                actions.push(Action::Event {
                    service: Some(me.clone()),
                    ip: None,
                    reason: "PortOutOfRange",
                    action: "PortAllocation",
                    note: format!(
                        "Port {port} is not within the port range {}; please recreate service",
                        al.ports
                    ),
                });
                continue;
            }
            let duplicate = recorded_ports.contains(&port)
                || ports
                    .get(&port)
                    .and_then(|r| r.owner.as_ref())
                    .is_some_and(|o| *o != me && holds_port(o, port));
            if duplicate {
                actions.push(Action::Event {
                    service: Some(me.clone()),
                    ip: None,
                    reason: "PortAlreadyAllocated",
                    action: "PortAllocation",
                    note: format!(
                        "Port {port} was assigned to multiple services; please recreate service"
                    ),
                });
            } else if !ports.contains_key(&port) {
                actions.push(Action::Event {
                    service: Some(me.clone()),
                    ip: None,
                    reason: "PortNotAllocated",
                    action: "PortAllocation",
                    note: format!("Port {port} is not allocated; repairing"),
                });
                actions.push(Action::RecordPort {
                    port,
                    service: me.clone(),
                });
            }
            recorded_ports.insert(port);
        }
    }
    for (ip, record) in ips {
        // Addresses some Service holds were settled above.
        if !record.managed || recorded_ips.contains(ip) {
            continue;
        }
        match &record.owner {
            None => {
                actions.push(Action::Event {
                    service: None,
                    ip: Some(ip.clone()),
                    reason: "IPAddressNotAllocated",
                    action: "IPAddressAllocation",
                    note: format!("IPAddress {ip} appears to have been modified, not referencing a Service: cleaning up"),
                });
                actions.push(Action::ReleaseIp { ip: ip.clone() });
            }
            Some(owner) if !by_key.contains_key(owner) => {
                if record.age >= grace {
                    actions.push(Action::Event {
                        service: None,
                        ip: Some(ip.clone()),
                        reason: "IPAddressNotAllocated",
                        action: "IPAddressAllocation",
                        note: format!(
                            "IPAddress: {ip} for Service {}/{} appears to have leaked: cleaning up",
                            owner.0, owner.1
                        ),
                    });
                    actions.push(Action::ReleaseIp { ip: ip.clone() });
                }
            }
            Some(owner) if !holds_ip(owner, ip) && record.age >= grace => {
                actions.push(Action::Event {
                    service: None,
                    ip: Some(ip.clone()),
                    reason: "IPAddressWrongReference",
                    action: "IPAddressAllocation",
                    note: format!(
                        "IPAddress: {ip} for Service {}/{} has a wrong reference; cleaning up",
                        owner.0, owner.1
                    ),
                });
                actions.push(Action::ReleaseIp { ip: ip.clone() });
            }
            Some(_) => {}
        }
    }
    for (&port, record) in ports {
        if recorded_ports.contains(&port) || record.age < grace {
            continue;
        }
        tracing::warn!(port, "the node port appears to have leaked: cleaning up");
        actions.push(Action::ReleasePort { port });
    }
    actions
}

fn duplicate_ip(me: &(String, String), family: &str, ip: &str) -> Action {
    Action::Event {
        service: Some(me.clone()),
        ip: None,
        reason: "ClusterIPAlreadyAllocated",
        action: "ClusterIPAllocation",
        note: format!(
            "Cluster IP [{family}]:{ip} was assigned to multiple services; please recreate service"
        ),
    }
}

async fn list_values(state: &Arc<ApiState>, prefix: &str) -> Result<Vec<(String, Value)>, String> {
    let listed = state
        .store
        .list(prefix, Default::default())
        .await
        .map_err(|e| format!("cannot list {prefix}: {e}"))?;
    Ok(listed
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let value = serde_json::from_slice(&kv.value).ok()?;
            Some((kv.key, value))
        })
        .collect())
}

/// One repair pass.
pub async fn pass(state: &Arc<ApiState>, grace: Duration) -> Result<(), String> {
    let Some(al) = state.service_alloc.get() else {
        return Ok(());
    };
    let now = crate::meta::now_secs();
    // Records first, then Services: see `plan`.
    let ip_prefix = super::ip_address_key("");
    let ips: BTreeMap<String, Record> = list_values(state, &ip_prefix)
        .await?
        .into_iter()
        .filter_map(|(key, v)| {
            let name = key.strip_prefix(&ip_prefix)?.to_owned();
            Some((name, Record::from_ip_address(&v, now)))
        })
        .collect();
    let ports: BTreeMap<i64, Record> = list_values(state, NODE_PORT_PREFIX)
        .await?
        .into_iter()
        .filter_map(|(key, v)| {
            let port = key.strip_prefix(NODE_PORT_PREFIX)?.parse().ok()?;
            Some((port, Record::from_node_port(&v, now)))
        })
        .collect();
    al.reset_used(
        ips.keys().filter_map(|ip| ip.parse().ok()),
        ports.keys().copied(),
    );
    let svc_prefix = super::services().key(Some(""), "");
    let svc_prefix = svc_prefix.trim_end_matches('/').to_owned() + "/";
    let services: Vec<ServiceView> = list_values(state, &svc_prefix)
        .await?
        .iter()
        .map(|(_, v)| ServiceView::from_object(v))
        .collect();
    for action in plan(al, &services, &ips, &ports, grace) {
        if let Err(e) = act(state, action).await {
            tracing::warn!(error = %e, "service allocation repair");
        }
    }
    Ok(())
}

async fn act(state: &Arc<ApiState>, action: Action) -> Result<(), String> {
    match action {
        Action::RecordIp {
            ip,
            service,
            recreate,
        } => {
            let path = format!("/apis/networking.k8s.io/v1/ipaddresses/{ip}");
            if recreate {
                let (code, answer) =
                    crate::nested_request(state, Method::DELETE, &path, None).await;
                if !code.is_success() && code != StatusCode::NOT_FOUND {
                    return Err(format!(
                        "delete IPAddress {ip}: {code} {}",
                        answer["message"]
                    ));
                }
            }
            let family = ip.parse::<IpAddr>().map(family_of).unwrap_or("IPv4");
            let body = ip_address_object(&ip, family, &service.0, &service.1);
            let (code, answer) = crate::nested_request(
                state,
                Method::POST,
                "/apis/networking.k8s.io/v1/ipaddresses",
                Some(&body),
            )
            .await;
            if code.is_success() {
                Ok(())
            } else {
                Err(format!(
                    "create IPAddress {ip}: {code} {}",
                    answer["message"]
                ))
            }
        }
        Action::ReleaseIp { ip } => {
            super::release_ip(state, &ip).await;
            Ok(())
        }
        Action::RecordPort { port, service } => {
            let record = json!({
                "port": port,
                "service": {"namespace": service.0, "name": service.1},
                "creationTimestamp": crate::meta::now_rfc3339(),
            });
            if let Some(al) = state.service_alloc.get() {
                al.mark_port(port, true);
            }
            match state
                .store
                .create(
                    &node_port_key(port),
                    serde_json::to_vec(&record).unwrap_or_default().into(),
                )
                .await
            {
                Ok(_) | Err(rkube_store::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(format!("record node port {port}: {e}")),
            }
        }
        Action::ReleasePort { port } => {
            super::release_port(state, port).await;
            Ok(())
        }
        Action::Event {
            service,
            ip,
            reason,
            action,
            note,
        } => {
            tracing::warn!(reason, "{note}");
            event(state, service, ip, reason, action, &note).await
        }
    }
}

/// Writes an `events.k8s.io/v1` Event from `ipallocator-repair-controller`.
async fn event(
    state: &Arc<ApiState>,
    service: Option<(String, String)>,
    ip: Option<String>,
    reason: &str,
    action: &str,
    note: &str,
) -> Result<(), String> {
    let (namespace, regarding) = match (&service, &ip) {
        (Some((ns, name)), _) => (
            ns.clone(),
            json!({"kind": "Service", "apiVersion": "v1", "namespace": ns, "name": name}),
        ),
        (None, Some(ip)) => (
            "default".to_owned(),
            json!({"kind": "IPAddress", "apiVersion": "networking.k8s.io/v1", "name": ip}),
        ),
        (None, None) => return Ok(()),
    };
    let object = regarding["name"].as_str().unwrap_or("").to_owned();
    let now = crate::meta::now_rfc3339();
    let micro = now.trim_end_matches('Z').to_owned() + ".000000Z";
    let body = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": format!("{object}.{:016x}", rand::random::<u64>()), "namespace": namespace},
        "eventTime": micro,
        "reportingController": "ipallocator-repair-controller",
        "reportingInstance": "ipallocator-repair-controller",
        "action": action,
        "reason": reason,
        "regarding": regarding,
        "note": note,
        "type": "Warning",
    });
    let (code, answer) = crate::nested_request(
        state,
        Method::POST,
        &format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
        Some(&body),
    )
    .await;
    if code.is_success() {
        Ok(())
    } else {
        Err(format!("event {reason}: {code} {}", answer["message"]))
    }
}

/// Syncs the default ServiceCIDR and runs a pass now (the caller awaits both before
/// serving), then keeps the ServiceCIDR every 10 s (upstream's interval) and repairs
/// every `interval`.
pub async fn start(state: &Arc<ApiState>, interval: Duration, grace: Duration) {
    let Some(cidr) = state
        .service_alloc
        .get()
        .map(|al| al.ips.prefix().to_owned())
    else {
        return;
    };
    let sync_cidr = |state: Arc<ApiState>, cidr: String| async move {
        if let Err(e) = super::service_cidr::ensure(&state, &cidr).await {
            tracing::warn!(error = %e, "cannot sync the default ServiceCIDR");
        }
    };
    sync_cidr(state.clone(), cidr.clone()).await;
    if let Err(e) = pass(state, grace).await {
        tracing::warn!(error = %e, "service allocation repair failed");
    }
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            sync_cidr(st.clone(), cidr.clone()).await;
        }
    });
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = pass(&st, grace).await {
                tracing::warn!(error = %e, "service allocation repair failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn al() -> Allocators {
        Allocators::new("10.43.0.0/16", "30000-32767").unwrap()
    }

    fn svc(name: &str, ips: &[&str], ports: &[i64]) -> ServiceView {
        ServiceView {
            namespace: "ns".into(),
            name: name.into(),
            cluster_ips: ips.iter().map(|s| s.to_string()).collect(),
            node_ports: ports.to_vec(),
        }
    }

    fn rec(owner: &str, age: u64) -> Record {
        Record {
            owner: Some(("ns".into(), owner.into())),
            managed: true,
            labels_ok: true,
            age: Duration::from_secs(age),
        }
    }

    fn reasons(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Event { reason, .. } => reason.to_string(),
                Action::RecordIp { ip, recreate, .. } => format!("record {ip} {recreate}"),
                Action::ReleaseIp { ip } => format!("release {ip}"),
                Action::RecordPort { port, .. } => format!("record {port}"),
                Action::ReleasePort { port } => format!("release {port}"),
            })
            .collect()
    }

    #[test]
    fn in_agreement_nothing_happens() {
        let services = [svc("a", &["10.43.1.1"], &[30001])];
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("a", 500))]);
        let ports = BTreeMap::from([(30001, rec("a", 500))]);
        assert!(plan(&al(), &services, &ips, &ports, DEFAULT_GRACE).is_empty());
    }

    #[test]
    fn missing_records_are_made() {
        let services = [svc("a", &["10.43.1.1"], &[30001])];
        let a = plan(
            &al(),
            &services,
            &BTreeMap::new(),
            &BTreeMap::new(),
            DEFAULT_GRACE,
        );
        assert_eq!(
            reasons(&a),
            [
                "ClusterIPNotAllocated",
                "record 10.43.1.1 false",
                "PortNotAllocated",
                "record 30001"
            ]
        );
        let Action::Event { note, .. } = &a[0] else {
            unreachable!()
        };
        assert_eq!(
            note,
            "Cluster IP [IPv4]: 10.43.1.1 is not allocated; repairing"
        );
    }

    #[test]
    fn leaks_are_freed_only_after_the_grace() {
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("gone", 5))]);
        let ports = BTreeMap::from([(30001, rec("gone", 5))]);
        assert!(plan(&al(), &[], &ips, &ports, DEFAULT_GRACE).is_empty());
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("gone", 61))]);
        let ports = BTreeMap::from([(30001, rec("gone", 61))]);
        assert_eq!(
            reasons(&plan(&al(), &[], &ips, &ports, DEFAULT_GRACE)),
            [
                "IPAddressNotAllocated",
                "release 10.43.1.1",
                "release 30001"
            ]
        );
        // A zero grace frees even a record created this second.
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("gone", 0))]);
        assert_eq!(
            reasons(&plan(&al(), &[], &ips, &BTreeMap::new(), Duration::ZERO)),
            ["IPAddressNotAllocated", "release 10.43.1.1"]
        );
        // Records of other managers are not ours to free.
        let mut foreign = rec("gone", 600);
        foreign.managed = false;
        let ips = BTreeMap::from([("10.43.1.1".to_string(), foreign)]);
        assert!(plan(&al(), &[], &ips, &BTreeMap::new(), DEFAULT_GRACE).is_empty());
    }

    #[test]
    fn duplicates_and_out_of_range_are_reported() {
        let services = [
            svc("a", &["10.43.1.1"], &[30001]),
            svc("b", &["10.43.1.1"], &[30001]),
            svc("c", &["192.168.0.1"], &[80]),
        ];
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("a", 500))]);
        let ports = BTreeMap::from([(30001, rec("a", 500))]);
        assert_eq!(
            reasons(&plan(&al(), &services, &ips, &ports, DEFAULT_GRACE)),
            [
                "ClusterIPAlreadyAllocated",
                "PortAlreadyAllocated",
                "ClusterIPOutOfRange",
                "PortOutOfRange"
            ]
        );
    }

    #[test]
    fn wrong_references_are_fixed() {
        // The record names a Service that does not hold the address: re-point it.
        let services = [svc("a", &["10.43.1.1"], &[]), svc("b", &[], &[])];
        let ips = BTreeMap::from([("10.43.1.1".to_string(), rec("b", 500))]);
        assert_eq!(
            reasons(&plan(
                &al(),
                &services,
                &ips,
                &BTreeMap::new(),
                DEFAULT_GRACE
            )),
            ["ClusterIPNotAllocated", "record 10.43.1.1 true"]
        );
        // Bad labels are rewritten.
        let mut bad = rec("a", 500);
        bad.labels_ok = false;
        let ips = BTreeMap::from([("10.43.1.1".to_string(), bad)]);
        assert_eq!(
            reasons(&plan(
                &al(),
                &services[..1],
                &ips,
                &BTreeMap::new(),
                DEFAULT_GRACE
            )),
            ["record 10.43.1.1 true"]
        );
    }
}
