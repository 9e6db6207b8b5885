//! Pods: upstream's defaults (restart and DNS policy, grace period, scheduler, image pull
//! policy from the tag, …), phase Pending and QoS class on create, required containers,
//! which spec fields an update may change, and graceful deletion of pods on a node.

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{list_mut, set_default, KindStrategy};
use crate::rest::DeleteOptions;

pub struct Pods;

/// Upstream's `terminationGracePeriodSeconds` default.
const DEFAULT_GRACE: i64 = 30;

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (digests count as pinned).
pub fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("").to_owned();
    set_default(c, "imagePullPolicy", json!(default_pull_policy(&image)));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    for port in list_mut(c, "ports") {
        set_default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(get) = p.get_mut("httpGet").filter(|g| g.is_object()) {
                set_default(get, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Upstream's QoS class: BestEffort without any request or limit, Guaranteed when every
/// container limits cpu and memory with requests equal to limits, else Burstable.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().into_iter().flatten())
        .collect();
    let any = containers.iter().any(|c| {
        c["resources"]["requests"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
            || c["resources"]["limits"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let limits = &c["resources"]["limits"];
        let requests = &c["resources"]["requests"];
        ["cpu", "memory"].iter().all(|r| {
            limits[*r].is_string() && (requests[*r].is_null() || requests[*r] == limits[*r])
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

impl KindStrategy for Pods {
    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj["spec"].is_object() {
            return;
        }
        default_pod_spec(&mut obj["spec"]);
        let qos = qos_class(&obj["spec"]);
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    /// Upstream defaults every object it decodes: an update is defaulted before it is
    /// compared with the pod it replaces.
    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        if obj["spec"].is_object() {
            default_pod_spec(&mut obj["spec"]);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = validate_pod_spec(&obj["spec"], "spec");
        if let Some(old) = old {
            if !only_mutable_fields_changed(&old["spec"], &obj["spec"]) {
                errors.push(FieldError::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        errors
    }

    fn grace_period(&self, obj: &Value, options: &DeleteOptions) -> i64 {
        // A pod not yet on a node has nobody to confirm its end: it goes at once.
        if obj["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            return 0;
        }
        options
            .grace_period_seconds
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(DEFAULT_GRACE)
    }
}

/// Upstream's defaults of a pod spec (also used for workload templates).
pub fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(DEFAULT_GRACE));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    for field in ["initContainers", "containers"] {
        for c in list_mut(spec, field) {
            default_container(c);
        }
    }
}

/// Validates a pod spec found at `path` (`spec`, or `spec.template.spec` in workloads).
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let containers = spec["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(&format!("{path}.containers"), ""));
    }
    for (field, list) in [
        (
            format!("{path}.initContainers"),
            spec["initContainers"].as_array(),
        ),
        (format!("{path}.containers"), containers),
    ] {
        for (i, c) in list.into_iter().flatten().enumerate() {
            match c["name"].as_str().unwrap_or("") {
                "" => errors.push(FieldError::required(&format!("{field}[{i}].name"), "")),
                name => {
                    for msg in rkube_api::names::is_dns1123_label(name) {
                        errors.push(FieldError::invalid(
                            &format!("{field}[{i}].name"),
                            name,
                            &msg,
                        ));
                    }
                }
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                errors.push(FieldError::required(&format!("{field}[{i}].image"), ""));
            }
        }
    }
    errors
}

/// Whether `new` differs from `old` only in the fields upstream lets a pod update change.
fn only_mutable_fields_changed(old: &Value, new: &Value) -> bool {
    let strip = |spec: &Value| {
        let mut s = spec.clone();
        for field in ["initContainers", "containers"] {
            for c in list_mut(&mut s, field) {
                c["image"] = Value::Null;
            }
        }
        if let Some(map) = s.as_object_mut() {
            map.remove("activeDeadlineSeconds");
            map.remove("tolerations");
            map.remove("terminationGracePeriodSeconds");
        }
        s
    };
    strip(old) == strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, want) in [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("registry:5000/team/app", "Always"),
            ("registry:5000/team/app:v2", "IfNotPresent"),
            ("app@sha256:abcd", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn defaults_and_qos() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}], "livenessProbe": {"httpGet": {"path": "/", "port": 80}}},
            {"name": "d", "image": "nginx"}
        ]}});
        Pods.prepare_for_create(&mut pod);
        assert_eq!(
            pod["spec"]["containers"][0]["livenessProbe"],
            json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert!(pod["spec"]["containers"][1].get("ports").is_none());
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            spec["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert!(
            spec.get("initContainers").is_none(),
            "no null fields: {spec}"
        );
        assert_eq!(
            pod["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );

        let guaranteed =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&guaranteed), "Guaranteed");
        let burstable = json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class(&burstable), "Burstable");
    }

    #[test]
    fn validation_and_immutability() {
        let no_containers = json!({"spec": {}});
        let errs = Pods.validate(&no_containers, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "spec.containers: Required value");

        let old =
            json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "nodeName": "n1"}});
        let image_change =
            json!({"spec": {"containers": [{"name": "c", "image": "a:2"}], "nodeName": "n1"}});
        assert!(Pods.validate(&image_change, Some(&old)).is_empty());
        let node_change =
            json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "nodeName": "n2"}});
        let errs = Pods.validate(&node_change, Some(&old));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .to_string()
                .starts_with("spec: Forbidden: pod updates may not change fields other than"),
            "{}",
            errs[0]
        );
    }
}
