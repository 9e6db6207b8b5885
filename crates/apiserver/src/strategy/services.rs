//! Services: upstream's defaults (type, session affinity, port protocol and target port,
//! traffic policies), the REST layer's clusterIP/clusterIPs normalisation, the carry-over
//! of allocated values on update and the wiping of fields a type change leaves unused
//! (`patchAllocatedValues`, `normalizeClusterIPs`, `dropTypeDependentFields`), and
//! validation of ports and cluster IPs. Allocation itself is `crate::service_alloc`,
//! which the generic handler calls after validation.

use std::collections::HashSet;

use rkube_api::field_error::BadValue;
use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{set_default, KindStrategy};
use crate::service_alloc::{needs_cluster_ip, needs_health_check, needs_node_port, strings};

pub struct Services;

/// Upstream's `SetDefaults_Service` for the spec.
fn defaults(spec: &mut Value) {
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    if kind != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "NodePort" || kind == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for port in super::list_mut(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        if port.get("targetPort").is_none_or(Value::is_null) {
            port["targetPort"] = port["port"].clone();
        }
    }
}

fn ips(svc: &Value) -> Vec<String> {
    strings(&svc["spec"]["clusterIPs"])
}

fn cluster_ip(svc: &Value) -> &str {
    svc["spec"]["clusterIP"].as_str().unwrap_or("")
}

fn set_or_remove(spec: &mut Value, field: &str, value: Option<Value>) {
    match value {
        Some(v) => spec[field] = v,
        None => {
            if let Some(m) = spec.as_object_mut() {
                m.remove(field);
            }
        }
    }
}

/// Upstream's `normalizeClusterIPs`: keeps `clusterIP` and `clusterIPs` in step for
/// clients that set only one of them.
fn normalize_cluster_ips(svc: &mut Value, old: Option<&Value>) {
    let Some(old) = old else {
        if !cluster_ip(svc).is_empty() && ips(svc).is_empty() {
            svc["spec"]["clusterIPs"] = json!([cluster_ip(svc)]);
        }
        return;
    };
    if !ips(old).is_empty() && ips(svc).is_empty() && cluster_ip(old) == cluster_ip(svc) {
        svc["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
    }
    if cluster_ip(old) != cluster_ip(svc) {
        let same = ips(old) == ips(svc);
        if !cluster_ip(old).is_empty() && cluster_ip(svc).is_empty() {
            if same {
                set_or_remove(&mut svc["spec"], "clusterIPs", None);
            }
        } else if same {
            svc["spec"]["clusterIPs"] = json!([cluster_ip(svc)]);
        }
    }
}

/// Upstream's `patchAllocatedValues`: an update that leaves out allocated values keeps
/// them (clients that PUT what they once sent, without the server's additions).
fn patch_allocated_values(svc: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(svc) {
        if cluster_ip(svc).is_empty() && !cluster_ip(old).is_empty() {
            svc["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
        }
        if ips(svc).is_empty() && !ips(old).is_empty() {
            svc["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
    }
    if needs_node_port(old) && needs_node_port(svc) {
        let old_used = crate::service_alloc::node_ports(old);
        let new_used = crate::service_alloc::node_ports(svc);
        let by_name: Vec<(String, i64)> = old["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_owned(),
                    p["nodePort"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        for p in super::list_mut(&mut svc["spec"], "ports") {
            if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                continue;
            }
            let name = p["name"].as_str().unwrap_or("");
            let Some(&(_, old_value)) = by_name.iter().rev().find(|(n, _)| n == name) else {
                continue;
            };
            let used = old_used.contains(&old_value) && new_used.contains(&old_value);
            if old_value != 0 && !used {
                p["nodePort"] = json!(old_value);
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(svc)
        && svc["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0) == 0
        && old["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0) != 0
    {
        svc["spec"]["healthCheckNodePort"] = old["spec"]["healthCheckNodePort"].clone();
    }
}

/// Upstream's `dropTypeDependentFields`: a type change wipes what only the old type used,
/// unless the user changed it too (then validation speaks).
fn drop_type_dependent_fields(svc: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && !needs_cluster_ip(svc) {
        if ips(old) == ips(svc) && cluster_ip(old) == cluster_ip(svc) {
            set_or_remove(&mut svc["spec"], "clusterIP", None);
            set_or_remove(&mut svc["spec"], "clusterIPs", None);
        }
        if old["spec"].get("ipFamilies") == svc["spec"].get("ipFamilies") {
            set_or_remove(&mut svc["spec"], "ipFamilies", None);
        }
        if old["spec"].get("ipFamilyPolicy") == svc["spec"].get("ipFamilyPolicy") {
            set_or_remove(&mut svc["spec"], "ipFamilyPolicy", None);
        }
    }
    if needs_node_port(old)
        && !needs_node_port(svc)
        && crate::service_alloc::node_ports(old) == crate::service_alloc::node_ports(svc)
    {
        for p in super::list_mut(&mut svc["spec"], "ports") {
            if let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    let old_type = old["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let new_type = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if old_type == "LoadBalancer"
        && new_type != "LoadBalancer"
        && old["spec"].get("allocateLoadBalancerNodePorts")
            == svc["spec"].get("allocateLoadBalancerNodePorts")
    {
        set_or_remove(&mut svc["spec"], "allocateLoadBalancerNodePorts", None);
    }
    if needs_health_check(old)
        && !needs_health_check(svc)
        && old["spec"].get("healthCheckNodePort") == svc["spec"].get("healthCheckNodePort")
    {
        set_or_remove(&mut svc["spec"], "healthCheckNodePort", None);
    }
    if needs_node_port(old)
        && !needs_node_port(svc)
        && old["spec"].get("externalTrafficPolicy") == svc["spec"].get("externalTrafficPolicy")
    {
        set_or_remove(&mut svc["spec"], "externalTrafficPolicy", None);
    }
}

impl KindStrategy for Services {
    fn prepare_for_create(&self, obj: &mut Value) {
        if obj["spec"].is_object() {
            defaults(&mut obj["spec"]);
            normalize_cluster_ips(obj, None);
        }
        obj["status"] = json!({"loadBalancer": {}});
    }

    fn prepare_for_update(&self, obj: &mut Value, old: &Value) {
        if obj["spec"].is_object() {
            patch_allocated_values(obj, old);
            normalize_cluster_ips(obj, Some(old));
            drop_type_dependent_fields(obj, old);
            defaults(&mut obj["spec"]);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let spec = &obj["spec"];
        let kind = spec["type"].as_str().unwrap_or("ClusterIP");
        let supported = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
        if !supported.contains(&kind) {
            errors.push(FieldError::not_supported("spec.type", kind, &supported));
        }
        let ports = spec["ports"].as_array().cloned().unwrap_or_default();
        let headless = spec["clusterIP"] == "None";
        if ports.is_empty() && kind != "ExternalName" && !headless {
            errors.push(FieldError::required("spec.ports", ""));
        }
        let mut names = HashSet::new();
        for (i, port) in ports.iter().enumerate() {
            let name = port["name"].as_str().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errors.push(FieldError::required(&format!("spec.ports[{i}].name"), ""));
            }
            if !name.is_empty() && !names.insert(name.to_owned()) {
                errors.push(FieldError::duplicate(
                    &format!("spec.ports[{i}].name"),
                    name,
                ));
            }
            match port["port"].as_i64() {
                Some(p) if (1..=65535).contains(&p) => {}
                Some(p) => errors.push(FieldError::invalid(
                    &format!("spec.ports[{i}].port"),
                    p,
                    "must be between 1 and 65535, inclusive",
                )),
                None => errors.push(FieldError::required(&format!("spec.ports[{i}].port"), "")),
            }
            let protocol = port["protocol"].as_str().unwrap_or("TCP");
            if !["TCP", "UDP", "SCTP"].contains(&protocol) {
                errors.push(FieldError::not_supported(
                    &format!("spec.ports[{i}].protocol"),
                    protocol,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        validate_node_ports(obj, &mut errors);
        validate_cluster_ips(obj, &mut errors);
        if let Some(old) = old {
            validate_cluster_ips_update(obj, old, &mut errors);
        }
        errors
    }
}

/// Node ports only where a type uses them, within port bounds, not twice per protocol.
fn validate_node_ports(svc: &Value, errors: &mut Vec<FieldError>) {
    let kind = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let mut seen: Vec<(String, i64)> = Vec::new();
    for (i, port) in svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(node_port) = port["nodePort"].as_i64().filter(|p| *p != 0) else {
            continue;
        };
        let path = format!("spec.ports[{i}].nodePort");
        if kind == "ClusterIP" {
            errors.push(FieldError::forbidden(
                &path,
                "may not be used when `type` is 'ClusterIP'",
            ));
            continue;
        }
        if !(1..=65535).contains(&node_port) {
            errors.push(FieldError::invalid(
                &path,
                node_port,
                "must be between 1 and 65535, inclusive",
            ));
            continue;
        }
        let protocol = port["protocol"].as_str().unwrap_or("TCP").to_owned();
        let key = (protocol, node_port);
        if seen.contains(&key) {
            errors.push(FieldError::duplicate(&path, node_port));
        }
        seen.push(key);
    }
}

/// Upstream's `ValidateServiceClusterIPsRelatedFields` (and the ExternalName rules).
fn validate_cluster_ips(svc: &Value, errors: &mut Vec<FieldError>) {
    let spec = &svc["spec"];
    if spec["type"] == "ExternalName" {
        if !cluster_ip(svc).is_empty() {
            errors.push(FieldError::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        if !strings(&spec["ipFamilies"]).is_empty() {
            errors.push(FieldError::forbidden(
                "spec.ipFamilies",
                "may not be set for ExternalName services",
            ));
        }
        if spec["ipFamilyPolicy"].is_string() {
            errors.push(FieldError::forbidden(
                "spec.ipFamilyPolicy",
                "may not be set for ExternalName services",
            ));
        }
        return;
    }
    let list = ips(svc);
    let value = || BadValue::string_slice(Some(&list));
    if !cluster_ip(svc).is_empty() {
        if list.is_empty() {
            errors.push(FieldError::required("spec.clusterIPs", ""));
        } else if list[0] != cluster_ip(svc) {
            errors.push(FieldError::invalid(
                "spec.clusterIPs",
                value(),
                "first value must match `clusterIP`",
            ));
        }
    } else if !list.is_empty() {
        errors.push(FieldError::invalid(
            "spec.clusterIPs",
            value(),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = strings(&spec["ipFamilies"]);
    let mut seen = HashSet::new();
    for (i, family) in families.iter().enumerate() {
        let path = format!("spec.ipFamilies[{i}]");
        if family != "IPv4" && family != "IPv6" {
            errors.push(FieldError::not_supported(
                &path,
                family.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family.clone()) {
            errors.push(FieldError::duplicate(&path, family.as_str()));
        }
    }
    if let Some(policy) = spec["ipFamilyPolicy"].as_str() {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&policy) {
            errors.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                policy,
                &supported,
            ));
        }
    }
    let mut bad_ips = false;
    for (i, ip) in list.iter().enumerate() {
        if i == 0 && ip == "None" {
            if list.len() > 1 {
                bad_ips = true;
                errors.push(FieldError::invalid(
                    "spec.clusterIPs",
                    value(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !is_canonical_ip(ip) {
            bad_ips = true;
            errors.push(FieldError::invalid(
                &format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if list.len() > 2 {
        errors.push(FieldError::invalid(
            "spec.clusterIPs",
            value(),
            "may only hold up to 2 values",
        ));
    }
    if bad_ips {
        return;
    }
    if list.len() > 1 {
        let v6 = list.iter().filter(|ip| ip.contains(':')).count();
        if v6 != 1 {
            errors.push(FieldError::invalid(
                "spec.clusterIPs",
                value(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if list.first().map(String::as_str) != Some("None") {
        for (i, (ip, family)) in list.iter().zip(&families).enumerate() {
            let v6 = ip.contains(':');
            if family == "IPv4" && v6 {
                errors.push(FieldError::invalid(
                    &format!("spec.clusterIPs[{i}]"),
                    ip.as_str(),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !v6 {
                errors.push(FieldError::invalid(
                    &format!("spec.clusterIPs[{i}]"),
                    ip.as_str(),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// An IP address in the form Go's strict parser accepts (no leading zeros, no zone).
fn is_canonical_ip(ip: &str) -> bool {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => ip
            .split('.')
            .all(|part| part == "0" || !part.starts_with('0')),
        Ok(std::net::IpAddr::V6(_)) => true,
        Err(_) => false,
    }
}

/// Upstream's `validateUpgradeDowngradeClusterIPs` for a single-family cluster: cluster
/// IPs are immutable except when changing from, to or on ExternalName.
fn validate_cluster_ips_update(svc: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    if svc["spec"]["type"] == "ExternalName" || old["spec"]["type"] == "ExternalName" {
        return;
    }
    let (new, was) = (ips(svc), ips(old));
    let headless = |l: &[String]| l.len() == 1 && l[0] == "None";
    if headless(&new) && headless(&was) {
        return;
    }
    let value = || BadValue::string_slice(Some(&new));
    if new.len() == was.len() {
        for (i, ip) in was.iter().enumerate() {
            if *ip != new[i] {
                errors.push(FieldError::invalid(
                    &format!("spec.clusterIPs[{i}]"),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if was.len() > new.len() {
        if new.is_empty() {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                value(),
                "primary clusterIP can not be unset",
            ));
        } else if !was.is_empty() && new[0] != was[0] {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                value(),
                "may not change once set",
            ));
        }
    } else if !was.is_empty() && new[0] != was[0] {
        errors.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            value(),
            "may not change once set",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}});
        Services.prepare_for_create(&mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let mut np =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}});
        Services.prepare_for_create(&mut np);
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
    }

    #[test]
    fn port_rules() {
        let svc = json!({"spec": {"ports": [{"port": 80}, {"port": 70000, "name": "b"}]}});
        let errs: Vec<String> = Services
            .validate(&svc, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
            ]
        );
        let none = json!({"spec": {}});
        assert_eq!(
            Services.validate(&none, None)[0].to_string(),
            "spec.ports: Required value"
        );
        let headless = json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        assert!(Services.validate(&headless, None).is_empty());
    }

    fn errors(svc: &Value, old: Option<&Value>) -> Vec<String> {
        Services
            .validate(svc, old)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn cluster_ip_rules() {
        let mut svc = json!({"spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 80}]}});
        Services.prepare_for_create(&mut svc);
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        assert!(errors(&svc, None).is_empty());
        let bad = json!({"spec": {"clusterIP": "10.43.0.09", "clusterIPs": ["10.43.0.09"], "ports": [{"port": 80}]}});
        assert_eq!(
            errors(&bad, None),
            ["spec.clusterIPs[0]: Invalid value: \"10.43.0.09\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
        );
        let mismatch = json!({"spec": {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.8"], "ports": [{"port": 80}]}});
        assert_eq!(
            errors(&mismatch, None),
            ["spec.clusterIPs: Invalid value: []string{\"10.43.0.8\"}: first value must match `clusterIP`"]
        );
        let ext = json!({"spec": {"type": "ExternalName", "clusterIP": "10.43.0.9", "externalName": "a.b"}});
        assert_eq!(
            errors(&ext, None),
            ["spec.clusterIPs: Forbidden: may not be set for ExternalName services"]
        );
        let np_on_cluster_ip = json!({"spec": {"ports": [{"port": 80, "nodePort": 30001}]}});
        assert_eq!(
            errors(&np_on_cluster_ip, None),
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
        // Immutable once set.
        let old = json!({"spec": {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"], "ports": [{"port": 80}]}});
        let changed = json!({"spec": {"clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"], "ports": [{"port": 80}]}});
        assert_eq!(
            errors(&changed, Some(&old)),
            ["spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.7\"}: may not change once set"]
        );
    }

    #[test]
    fn updates_keep_allocated_values_and_type_changes_wipe_them() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "externalTrafficPolicy": "Cluster", "ports": [{"name": "a", "port": 80, "nodePort": 30001}]}});
        // A PUT without the allocated values keeps them.
        let mut put = json!({"spec": {"type": "NodePort", "ports": [{"name": "a", "port": 80}]}});
        Services.prepare_for_update(&mut put, &old);
        assert_eq!(put["spec"]["clusterIPs"], json!(["10.43.0.9"]));
        assert_eq!(put["spec"]["ports"][0]["nodePort"], 30001);
        // NodePort → ClusterIP drops the node ports and the traffic policy.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        Services.prepare_for_update(&mut to_cluster_ip, &old);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(to_cluster_ip["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.43.0.9");
        // → ExternalName drops the addresses too.
        let mut to_ext = old.clone();
        to_ext["spec"]["type"] = json!("ExternalName");
        to_ext["spec"]["externalName"] = json!("a.b");
        Services.prepare_for_update(&mut to_ext, &old);
        assert!(
            to_ext["spec"].get("clusterIP").is_none() && to_ext["spec"].get("clusterIPs").is_none()
        );
        assert!(errors(&to_ext, Some(&old)).is_empty());
        // Clearing clusterIP alone (old clients) clears clusterIPs with it.
        let mut cleared = old.clone();
        cleared["spec"]["clusterIP"] = json!("");
        normalize_cluster_ips(&mut cleared, Some(&old));
        assert!(cleared["spec"].get("clusterIPs").is_none());
    }
}
