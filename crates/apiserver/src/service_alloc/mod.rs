//! Service ClusterIP and NodePort allocation (upstream's service REST allocators,
//! `pkg/registry/core/service/storage/alloc.go`), called by the generic handler for
//! Services only, after validation and admission and before the write.
//!
//! **ClusterIPs** are recorded as `networking.k8s.io/v1` IPAddress objects (name = the
//! address, `parentRef` = the Service, label `ipaddress.kubernetes.io/managed-by:
//! ipallocator.k8s.io`), created through the API path as the server itself. Creating the
//! IPAddress is the lock: the store's create-if-absent makes one writer win on SQLite and
//! on etcd alike. The range comes from `--service-cluster-ip-range`, published as the
//! default ServiceCIDR `kubernetes` ([`service_cidr`]).
//!
//! **NodePorts** are recorded one store key per port, `/registry/ranges/servicenodeports/
//! <port>` (upstream keeps one RangeAllocation bitmap there; one key per port makes every
//! allocation a single create-if-absent, with no read-modify-write of a shared bitmap).
//! The value names the Service and the time, for the repair loop.
//!
//! An allocation is a [`Pending`] change: [`Pending::revert`] releases what it allocated
//! when the Service write fails, [`Pending::commit`] releases what the update gave up once
//! the write succeeded. Dry runs check everything and write nothing. [`repair`] keeps the
//! records and the Services in agreement after crashes and by-hand edits.

pub mod ip_range;
pub mod port_range;
pub mod repair;
pub mod service_cidr;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use rkube_api::field_error::BadValue;
use rkube_api::resources::{self, ResourceInfo};
use rkube_api::FieldError;
use serde_json::{json, Value};

pub use ip_range::IpRange;
use port_range::PortError;
pub use port_range::PortRange;

use crate::error::ApiError;
use crate::ApiState;

/// Upstream's allocator name (`ipallocator.ControllerName`).
pub const IP_MANAGER: &str = "ipallocator.k8s.io";
/// Label naming who manages an IPAddress.
pub const LABEL_MANAGED_BY: &str = "ipaddress.kubernetes.io/managed-by";
/// Label with an IPAddress's family.
pub const LABEL_FAMILY: &str = "ipaddress.kubernetes.io/ip-family";
/// Where node port records live.
pub const NODE_PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
const IP_ADDRESSES: &str = "/apis/networking.k8s.io/v1/ipaddresses";

/// The ranges Services are allocated from, and what this server has seen in use.
#[derive(Debug)]
pub struct Allocators {
    pub ips: IpRange,
    pub ports: PortRange,
    /// Addresses and ports known to be recorded (this server's claims and releases, the
    /// repair loop's listings, records met while allocating): dynamic allocation skips
    /// them instead of trying each. Only a hint — the store's create-if-absent decides —
    /// so another API server's records cost one failed create, and a stale entry one
    /// fresh listing when the range looks full.
    used: std::sync::Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    ips: HashSet<IpAddr>,
    ports: HashSet<i64>,
}

impl Allocators {
    pub fn new(service_cidr: &str, node_ports: &str) -> Result<Self, String> {
        Ok(Self::from_ranges(
            IpRange::parse(service_cidr)?,
            PortRange::parse(node_ports)?,
        ))
    }

    pub fn from_ranges(ips: IpRange, ports: PortRange) -> Self {
        Allocators {
            ips,
            ports,
            used: Default::default(),
        }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ip_used(&self, ip: IpAddr) -> bool {
        self.used().ips.contains(&ip)
    }

    fn port_used(&self, port: i64) -> bool {
        self.used().ports.contains(&port)
    }

    fn mark_ip(&self, ip: IpAddr, used: bool) {
        let mut u = self.used();
        if used {
            u.ips.insert(ip);
        } else {
            u.ips.remove(&ip);
        }
    }

    fn mark_port(&self, port: i64, used: bool) {
        let mut u = self.used();
        if used {
            u.ports.insert(port);
        } else {
            u.ports.remove(&port);
        }
    }

    /// Replaces the hints with what the store holds (the repair loop's listing).
    pub(crate) fn reset_used(
        &self,
        ips: impl Iterator<Item = IpAddr>,
        ports: impl Iterator<Item = i64>,
    ) {
        let mut u = self.used();
        u.ips = ips.collect();
        u.ports = ports.collect();
    }
}

/// The store key of a node port's record.
pub fn node_port_key(port: i64) -> String {
    format!("{NODE_PORT_PREFIX}{port}")
}

fn services() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services are built in")
}

fn ipaddresses() -> &'static ResourceInfo {
    resources::find("networking.k8s.io", "v1", "ipaddresses").expect("ipaddresses are built in")
}

/// The store key of an IPAddress.
pub fn ip_address_key(ip: &str) -> String {
    ipaddresses().key(None, ip)
}

// ---- the Service fields allocation reads (upstream's helper predicates) ----

pub(crate) fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

/// ClusterIP, NodePort and LoadBalancer Services have cluster IPs.
pub(crate) fn needs_cluster_ip(svc: &Value) -> bool {
    matches!(svc_type(svc), "ClusterIP" | "NodePort" | "LoadBalancer")
}

pub(crate) fn needs_node_port(svc: &Value) -> bool {
    matches!(svc_type(svc), "NodePort" | "LoadBalancer")
}

/// A LoadBalancer with `externalTrafficPolicy: Local` (upstream's `NeedsHealthCheck`).
pub(crate) fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == "LoadBalancer" && svc["spec"]["externalTrafficPolicy"] == "Local"
}

fn should_allocate_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        "NodePort" => true,
        "LoadBalancer" => svc["spec"]["allocateLoadBalancerNodePorts"] != false,
        _ => false,
    }
}

pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    strings(&svc["spec"]["clusterIPs"])
}

fn is_headless(svc: &Value) -> bool {
    cluster_ips(svc).first().map(String::as_str) == Some("None")
}

/// Every nodePort a Service holds (upstream's `collectServiceNodePorts`).
pub(crate) fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .filter(|p| *p != 0)
        .collect()
}

fn health_check_port(svc: &Value) -> i64 {
    svc["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0)
}

fn name_of(svc: &Value) -> (String, String) {
    (
        svc["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        svc["metadata"]["name"].as_str().unwrap_or("").to_owned(),
    )
}

fn invalid(svc: &Value, errors: Vec<FieldError>) -> ApiError {
    ApiError::invalid(services(), &name_of(svc).1, &errors)
}

fn cluster_ips_value(svc: &Value) -> BadValue {
    BadValue::string_slice(Some(&cluster_ips(svc)))
}

// ---- IP families (upstream's initIPFamilyFields, for a single-family cluster) ----

/// Defaults `ipFamilyPolicy` and `ipFamilies` and refuses families this cluster lacks.
fn init_ip_families(al: &Allocators, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    if svc_type(svc) == "ExternalName" {
        return Ok(());
    }
    let family = al.ips.family();
    let selectorless = svc["spec"]["selector"]
        .as_object()
        .is_none_or(|m| m.is_empty());
    let headless_selectorless = svc["spec"]["clusterIP"] == "None" && selectorless;
    if svc["spec"]["ipFamilyPolicy"].as_str().is_none() {
        let policy = match old.and_then(|o| o["spec"]["ipFamilyPolicy"].as_str()) {
            Some(p) => p.to_owned(),
            None if headless_selectorless => "RequireDualStack".into(),
            None => "SingleStack".into(),
        };
        svc["spec"]["ipFamilyPolicy"] = json!(policy);
    }
    let policy = svc["spec"]["ipFamilyPolicy"]
        .as_str()
        .unwrap_or("SingleStack")
        .to_owned();
    let ips = cluster_ips(svc);
    let mut families = strings(&svc["spec"]["ipFamilies"]);
    let mut errors = Vec::new();
    if policy == "SingleStack" {
        if ips.len() == 2 {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy.as_str(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if families.len() == 2 {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                policy.as_str(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let Ok(addr) = ip.parse::<IpAddr>() else {
            break;
        };
        let fam = ip_range::family_of(addr);
        if i >= families.len() {
            if fam != family {
                errors.push(FieldError::invalid(
                    &format!("spec.clusterIPs[{i}]"),
                    cluster_ips_value(svc),
                    &format!("{fam} is not configured on this cluster"),
                ));
            } else {
                families.push(fam.to_owned());
            }
        }
    }
    if !errors.is_empty() {
        return Err(invalid(svc, errors));
    }
    if headless_selectorless {
        if families.is_empty() {
            families.push(family.to_owned());
        }
        if families.len() < 2 && policy != "SingleStack" {
            let alt = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(alt.to_owned());
        }
        svc["spec"]["ipFamilies"] = json!(families);
        return Ok(());
    }
    if policy == "RequireDualStack" {
        errors.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            policy.as_str(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if f != family {
            errors.push(FieldError::invalid(
                &format!("spec.ipFamilies[{i}]"),
                f.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(invalid(svc, errors));
    }
    if families.is_empty() {
        families.push(family.to_owned());
    }
    svc["spec"]["ipFamilies"] = json!(families);
    Ok(())
}

// ---- the pending change ----

/// What one Service write allocated, and what it gives up once written.
#[derive(Debug, Default)]
#[must_use = "a pending allocation must be committed or reverted"]
pub struct Pending {
    allocated_ips: Vec<String>,
    allocated_ports: Vec<i64>,
    release_ips: Vec<String>,
    release_ports: Vec<i64>,
    dry_run: bool,
}

impl Pending {
    /// The Service was written: release what it no longer holds.
    pub async fn commit(self, state: &Arc<ApiState>) {
        if self.dry_run {
            return;
        }
        if !self.allocated_ips.is_empty() {
            tracing::info!(cluster_ips = ?self.allocated_ips, "allocated clusterIPs");
        }
        release(state, &self.release_ips, &self.release_ports).await;
    }

    /// The Service write failed: release what was allocated for it.
    pub async fn revert(self, state: &Arc<ApiState>) {
        if self.dry_run {
            return;
        }
        release(state, &self.allocated_ips, &self.allocated_ports).await;
    }
}

/// Releases IPs and ports; failures are logged (the repair loop catches what is left).
pub async fn release(state: &Arc<ApiState>, ips: &[String], ports: &[i64]) {
    for ip in ips {
        release_ip(state, ip).await;
    }
    for port in ports {
        release_port(state, *port).await;
    }
}

async fn release_ip(state: &Arc<ApiState>, ip: &str) {
    if let (Some(al), Ok(addr)) = (state.service_alloc.get(), ip.parse()) {
        al.mark_ip(addr, false);
    }
    let (code, answer) =
        crate::nested_request(state, Method::DELETE, &format!("{IP_ADDRESSES}/{ip}"), None).await;
    if !code.is_success() && code != StatusCode::NOT_FOUND {
        tracing::warn!(ip, code = %code, error = %answer["message"], "cannot release a cluster IP; the repair loop will");
    }
}

async fn release_port(state: &Arc<ApiState>, port: i64) {
    if let Some(al) = state.service_alloc.get() {
        al.mark_port(port, false);
    }
    match state.store.delete(&node_port_key(port), None).await {
        Ok(_) | Err(rkube_store::Error::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot release a node port; the repair loop will")
        }
    }
}

/// Releases everything a deleted Service held (upstream's `releaseAllocatedResources`).
pub async fn release_all(state: &Arc<ApiState>, svc: &Value) {
    if state.service_alloc.get().is_none() {
        return;
    }
    let ips = if needs_cluster_ip(svc) && !is_headless(svc) {
        cluster_ips(svc)
    } else {
        Vec::new()
    };
    let mut ports = node_ports(svc);
    if needs_health_check(svc) && health_check_port(svc) > 0 {
        ports.push(health_check_port(svc));
    }
    release(state, &ips, &ports).await;
}

// ---- allocation ----

/// The IPAddress recording `ip` for `svc`.
pub fn ip_address_object(ip: &str, family: &str, namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {
            "name": ip,
            "labels": {LABEL_FAMILY: family, LABEL_MANAGED_BY: IP_MANAGER},
        },
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": namespace, "name": name}},
    })
}

/// Outcome of trying to record one address.
enum Claim {
    Won,
    Taken,
}

async fn claim_ip(
    state: &Arc<ApiState>,
    ip: IpAddr,
    namespace: &str,
    name: &str,
) -> Result<Claim, ApiError> {
    let body = ip_address_object(&ip.to_string(), ip_range::family_of(ip), namespace, name);
    let (code, answer) =
        crate::nested_request(state, Method::POST, IP_ADDRESSES, Some(&body)).await;
    let mark = |used| {
        if let Some(al) = state.service_alloc.get() {
            al.mark_ip(ip, used);
        }
    };
    match code {
        c if c.is_success() => {
            mark(true);
            Ok(Claim::Won)
        }
        StatusCode::CONFLICT if answer["reason"] == "AlreadyExists" => {
            mark(true);
            Ok(Claim::Taken)
        }
        c => Err(ApiError::internal(format!(
            "failed to allocate a serviceIP: cannot record IPAddress {ip}: {c} {}",
            answer["message"].as_str().unwrap_or_default()
        ))),
    }
}

/// Re-reads which addresses and ports are recorded (when the hints say the range is
/// full: they may be stale).
async fn refresh_used(state: &Arc<ApiState>, al: &Allocators) -> Result<(), ApiError> {
    let failed =
        |e: rkube_store::Error| ApiError::internal(format!("cannot list allocations: {e}"));
    let ip_prefix = ipaddresses().key(None, "");
    let ips = state
        .store
        .list(&ip_prefix, Default::default())
        .await
        .map_err(failed)?;
    let ports = state
        .store
        .list(NODE_PORT_PREFIX, Default::default())
        .await
        .map_err(failed)?;
    al.reset_used(
        ips.kvs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(&ip_prefix)?.parse().ok()),
        ports
            .kvs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(NODE_PORT_PREFIX)?.parse().ok()),
    );
    Ok(())
}

/// Allocates the cluster IP a Service asks for, or the next free one.
async fn allocate_cluster_ips(
    state: &Arc<ApiState>,
    al: &Allocators,
    svc: &mut Value,
    pending: &mut Pending,
) -> Result<(), ApiError> {
    if svc_type(svc) == "ExternalName" || is_headless(svc) {
        return Ok(());
    }
    let (namespace, name) = name_of(svc);
    let requested = cluster_ips(svc).into_iter().next().unwrap_or_default();
    let ip = if requested.is_empty() {
        if pending.dry_run {
            // Upstream's dry-run allocator answers the range's network address.
            al.ips.network()
        } else {
            allocate_next_ip(state, al, &namespace, &name).await?
        }
    } else {
        let failed = |svc: &Value, why: String| {
            invalid(
                svc,
                vec![FieldError::invalid(
                    "spec.clusterIPs",
                    cluster_ips_value(svc),
                    &format!("failed to allocate IP {requested}: {why}"),
                )],
            )
        };
        let ip: IpAddr = requested
            .parse()
            .map_err(|_| ApiError::internal(format!("failed to parse service IP {requested:?}")))?;
        if let Err(e) = al.ips.check(ip) {
            return Err(failed(svc, e.to_string()));
        }
        if !pending.dry_run {
            match claim_ip(state, ip, &namespace, &name).await? {
                Claim::Won => {}
                Claim::Taken => {
                    return Err(failed(svc, "provided IP is already allocated".into()));
                }
            }
        }
        ip
    };
    if !pending.dry_run {
        pending.allocated_ips.push(ip.to_string());
    }
    svc["spec"]["clusterIP"] = json!(ip.to_string());
    svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
    Ok(())
}

async fn allocate_next_ip(
    state: &Arc<ApiState>,
    al: &Allocators,
    namespace: &str,
    name: &str,
) -> Result<IpAddr, ApiError> {
    for fresh in [false, true] {
        if fresh {
            refresh_used(state, al).await?;
        }
        for ip in al.ips.candidates(rand::random::<u128>()) {
            if al.ip_used(ip) {
                continue;
            }
            match claim_ip(state, ip, namespace, name).await? {
                Claim::Won => return Ok(ip),
                // Lost a race, or recorded by someone this server has not heard of.
                Claim::Taken => {}
            }
        }
    }
    Err(ApiError::internal(
        "failed to allocate a serviceIP: range is full",
    ))
}

/// Records `port` for the Service, or says why not.
async fn claim_port(
    state: &Arc<ApiState>,
    al: &Allocators,
    port: i64,
    svc: &Value,
    pending: &mut Pending,
) -> Result<(), PortError> {
    al.ports.check(port)?;
    if pending.dry_run {
        return Ok(());
    }
    let (namespace, name) = name_of(svc);
    let record = json!({
        "port": port,
        "service": {"namespace": namespace, "name": name},
        "creationTimestamp": crate::meta::now_rfc3339(),
    });
    match state
        .store
        .create(
            &node_port_key(port),
            serde_json::to_vec(&record).unwrap_or_default().into(),
        )
        .await
    {
        Ok(_) => {
            al.mark_port(port, true);
            pending.allocated_ports.push(port);
            Ok(())
        }
        Err(rkube_store::Error::AlreadyExists { .. }) => {
            al.mark_port(port, true);
            Err(PortError::Allocated)
        }
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot record a node port");
            Err(PortError::Full)
        }
    }
}

async fn next_port(
    state: &Arc<ApiState>,
    al: &Allocators,
    svc: &Value,
    pending: &mut Pending,
) -> Result<i64, ApiError> {
    for fresh in [false, true] {
        if fresh {
            refresh_used(state, al).await?;
        }
        for port in al.ports.candidates(rand::random::<u64>()) {
            if al.port_used(port) {
                continue;
            }
            if pending.dry_run {
                let exists = state
                    .store
                    .get(&node_port_key(port), None)
                    .await
                    .map_err(|e| ApiError::internal(format!("failed to allocate a nodePort: {e}")))?
                    .kv
                    .is_some();
                if !exists {
                    return Ok(port);
                }
                continue;
            }
            match claim_port(state, al, port, svc, pending).await {
                Ok(()) => return Ok(port),
                Err(PortError::Allocated) => {}
                Err(e) => {
                    return Err(ApiError::internal(format!(
                        "failed to allocate a nodePort: {e}"
                    )))
                }
            }
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate a nodePort: {}",
        PortError::Full
    )))
}

fn port_invalid(svc: &Value, i: usize, port: i64, e: PortError) -> ApiError {
    invalid(
        svc,
        vec![FieldError::invalid(
            &format!("spec.ports[{i}].nodePort"),
            port,
            &e.to_string(),
        )],
    )
}

/// Upstream's `initNodePorts`: every port gets a nodePort (the same one for ports that
/// share a port number), requested ones are claimed.
async fn init_node_ports(
    state: &Arc<ApiState>,
    al: &Allocators,
    svc: &mut Value,
    pending: &mut Pending,
) -> Result<(), ApiError> {
    let allocate = should_allocate_node_ports(svc);
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut by_port: HashMap<i64, i64> = HashMap::new();
    for (i, p) in ports.iter().enumerate() {
        let node_port = p["nodePort"].as_i64().unwrap_or(0);
        if node_port == 0 && !allocate {
            continue;
        }
        let number = p["port"].as_i64().unwrap_or(0);
        match by_port.get(&number).copied() {
            None => {
                let requested = ports
                    .iter()
                    .find(|q| {
                        q["port"].as_i64() == Some(number)
                            && q["nodePort"].as_i64().unwrap_or(0) != 0
                    })
                    .and_then(|q| q["nodePort"].as_i64())
                    .unwrap_or(0);
                let chosen = if requested != 0 {
                    claim_port(state, al, requested, svc, pending)
                        .await
                        .map_err(|e| port_invalid(svc, i, requested, e))?;
                    requested
                } else {
                    next_port(state, al, svc, pending).await?
                };
                svc["spec"]["ports"][i]["nodePort"] = json!(chosen);
                by_port.insert(number, chosen);
            }
            Some(allocated) if node_port != allocated => {
                if node_port == 0 {
                    svc["spec"]["ports"][i]["nodePort"] = json!(allocated);
                } else {
                    claim_port(state, al, node_port, svc, pending)
                        .await
                        .map_err(|e| port_invalid(svc, i, node_port, e))?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

async fn allocate_health_check_port(
    state: &Arc<ApiState>,
    al: &Allocators,
    svc: &mut Value,
    pending: &mut Pending,
) -> Result<(), ApiError> {
    let requested = health_check_port(svc);
    if requested != 0 {
        claim_port(state, al, requested, svc, pending)
            .await
            .map_err(|e| {
                ApiError::internal(format!(
                    "failed to allocate requested HealthCheck NodePort {requested}: {e}"
                ))
            })?;
    } else {
        let port = next_port(state, al, svc, pending).await?;
        svc["spec"]["healthCheckNodePort"] = json!(port);
    }
    Ok(())
}

/// Allocates a new Service's cluster IPs, node ports and health check port.
pub async fn allocate_create(
    state: &Arc<ApiState>,
    svc: &mut Value,
    dry_run: bool,
) -> Result<Pending, ApiError> {
    let mut pending = Pending {
        dry_run,
        ..Default::default()
    };
    let Some(al) = state.service_alloc.get() else {
        return Ok(pending);
    };
    init_ip_families(al, svc, None)?;
    let result = async {
        allocate_cluster_ips(state, al, svc, &mut pending).await?;
        if needs_node_port(svc) {
            init_node_ports(state, al, svc, &mut pending).await?;
        }
        if needs_health_check(svc) {
            allocate_health_check_port(state, al, svc, &mut pending).await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(pending),
        Err(e) => {
            pending.revert(state).await;
            Err(e)
        }
    }
}

/// Upstream's `updateNodePorts`: claims the nodePorts the old Service did not hold and
/// gives up (on commit) those the new one dropped.
async fn update_node_ports(
    state: &Arc<ApiState>,
    al: &Allocators,
    svc: &mut Value,
    old: &Value,
    pending: &mut Pending,
) -> Result<(), ApiError> {
    let old_ports = node_ports(old);
    let allocate = should_allocate_node_ports(svc);
    let ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut claimed = BTreeSet::new();
    let mut seen: Vec<(String, i64)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let mut node_port = p["nodePort"].as_i64().unwrap_or(0);
        if node_port == 0 && !allocate {
            continue;
        }
        if node_port != 0 {
            if !old_ports.contains(&node_port) && !claimed.contains(&node_port) {
                claim_port(state, al, node_port, svc, pending)
                    .await
                    .map_err(|e| port_invalid(svc, i, node_port, e))?;
                claimed.insert(node_port);
            }
        } else {
            node_port = next_port(state, al, svc, pending).await?;
            svc["spec"]["ports"][i]["nodePort"] = json!(node_port);
        }
        let entry = (
            p["protocol"].as_str().unwrap_or("TCP").to_owned(),
            node_port,
        );
        if seen.contains(&entry) {
            return Err(ApiError::internal(format!(
                "duplicate nodePort: {{{} {}}}",
                entry.0, entry.1
            )));
        }
        seen.push(entry);
    }
    let new_ports = node_ports(svc);
    pending
        .release_ports
        .extend(old_ports.into_iter().filter(|p| !new_ports.contains(p)));
    Ok(())
}

/// Allocates and releases for an update (upstream's `allocateUpdate`): type changes from
/// and to ExternalName, node ports, the health check port.
pub async fn allocate_update(
    state: &Arc<ApiState>,
    svc: &mut Value,
    old: &Value,
    dry_run: bool,
) -> Result<Pending, ApiError> {
    let mut pending = Pending {
        dry_run,
        ..Default::default()
    };
    let Some(al) = state.service_alloc.get() else {
        return Ok(pending);
    };
    init_ip_families(al, svc, Some(old))?;
    let result = async {
        let (old_type, new_type) = (svc_type(old).to_owned(), svc_type(svc).to_owned());
        let unallocated = needs_cluster_ip(old)
            && needs_cluster_ip(svc)
            && cluster_ips(old).is_empty()
            && cluster_ips(svc).is_empty();
        if (old_type == "ExternalName" && new_type != "ExternalName") || unallocated {
            // The second case is a Service stored before allocation existed: it gets its
            // address with its next update.
            allocate_cluster_ips(state, al, svc, &mut pending).await?;
        } else if !is_headless(old) && old_type != "ExternalName" && new_type == "ExternalName" {
            pending.release_ips.extend(
                cluster_ips(old)
                    .into_iter()
                    .filter(|ip| ip.parse::<IpAddr>().is_ok()),
            );
        }
        if needs_node_port(old) && matches!(new_type.as_str(), "ExternalName" | "ClusterIP") {
            pending.release_ports.extend(node_ports(old));
        }
        if needs_node_port(svc) {
            update_node_ports(state, al, svc, old, &mut pending).await?;
        }
        match (needs_health_check(old), needs_health_check(svc)) {
            (false, true) => allocate_health_check_port(state, al, svc, &mut pending).await?,
            (true, false) if health_check_port(old) > 0 => {
                pending.release_ports.push(health_check_port(old))
            }
            _ => {}
        }
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(pending),
        Err(e) => {
            pending.revert(state).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn al() -> Allocators {
        Allocators::new("10.43.0.0/16", "30000-32767").unwrap()
    }

    fn families(mut svc: Value, old: Option<&Value>) -> Result<Value, String> {
        init_ip_families(&al(), &mut svc, old).map_err(|e| e.0.message.clone())?;
        Ok(svc)
    }

    #[test]
    fn ip_family_defaults() {
        let svc = families(
            json!({"metadata": {"name": "a"}, "spec": {"selector": {"a": "b"}}}),
            None,
        )
        .unwrap();
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        // Headless without a selector asks for both families, as upstream.
        let svc = families(json!({"metadata": {"name": "a"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}), None).unwrap();
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        // An update keeps the old policy.
        let old = json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}});
        let svc = families(
            json!({"metadata": {"name": "a"}, "spec": {"selector": {"a": "b"}}}),
            Some(&old),
        )
        .unwrap();
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "PreferDualStack");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        // ExternalName gets nothing.
        let svc = families(
            json!({"metadata": {"name": "a"}, "spec": {"type": "ExternalName"}}),
            None,
        )
        .unwrap();
        assert!(svc["spec"].get("ipFamilies").is_none());
    }

    #[test]
    fn ip_family_errors() {
        let e = families(json!({"metadata": {"name": "a"}, "spec": {"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"]}}), None).unwrap_err();
        assert_eq!(e, "Service \"a\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"fd00::5\"}: IPv6 is not configured on this cluster");
        let e = families(json!({"metadata": {"name": "a"}, "spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}}}), None).unwrap_err();
        assert_eq!(e, "Service \"a\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services");
        let e = families(
            json!({"metadata": {"name": "a"}, "spec": {"ipFamilies": ["IPv6"]}}),
            None,
        )
        .unwrap_err();
        assert_eq!(e, "Service \"a\" is invalid: spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster");
    }

    #[test]
    fn predicates() {
        let lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": false, "healthCheckNodePort": 30100,
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 81}]}});
        assert!(
            needs_node_port(&lb) && needs_health_check(&lb) && !should_allocate_node_ports(&lb)
        );
        assert_eq!(node_ports(&lb), vec![30001]);
        assert_eq!(health_check_port(&lb), 30100);
        assert!(!needs_cluster_ip(
            &json!({"spec": {"type": "ExternalName"}})
        ));
    }
}
