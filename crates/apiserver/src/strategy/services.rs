//! Services: upstream's defaults (type, session affinity, port protocol and target port,
//! traffic policies) and validation of ports. ClusterIP and NodePort allocation are not
//! done here yet (the service-plumbing issue).

use std::collections::HashSet;

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{set_default, KindStrategy};

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
    for port in super::list_mut(spec, "ports") {
        set_default(port, "protocol", json!("TCP"));
        if port.get("targetPort").is_none_or(Value::is_null) {
            port["targetPort"] = port["port"].clone();
        }
    }
}

impl KindStrategy for Services {
    fn prepare_for_create(&self, obj: &mut Value) {
        if obj["spec"].is_object() {
            defaults(&mut obj["spec"]);
        }
        obj["status"] = json!({"loadBalancer": {}});
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        if obj["spec"].is_object() {
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
        if let Some(old) = old {
            let old_ip = old["spec"]["clusterIP"].as_str().unwrap_or("");
            let new_ip = spec["clusterIP"].as_str().unwrap_or("");
            if !old_ip.is_empty() && old_ip != new_ip && kind != "ExternalName" {
                errors.push(FieldError::invalid(
                    "spec.clusterIPs[0]",
                    new_ip,
                    "may not change once set",
                ));
            }
        }
        errors
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
        let headless = json!({"spec": {"clusterIP": "None"}});
        assert!(Services.validate(&headless, None).is_empty());
    }
}
