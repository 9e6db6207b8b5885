//! Workloads with a pod template and a label selector (Deployments, ReplicaSets,
//! StatefulSets, DaemonSets): upstream's defaults, the selector must select the template's
//! labels and may not change, replicas may not be negative, and the template is a valid
//! pod spec.

use std::collections::BTreeMap;

use rkube_api::field_error::BadValue;
use rkube_api::{FieldError, LabelSelector};
use serde_json::{json, Value};

use super::pods::{default_pod_spec, validate_pod_spec};
use super::{set_default, KindStrategy};

/// Which workload, for the defaults that differ.
#[derive(Clone, Copy)]
pub enum Workload {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
}

/// Go's `%#v` of a string map, as upstream prints template labels in this error.
fn go_map(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{:?}:{:?}", k, v))
        .collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

impl KindStrategy for Workload {
    fn prepare_for_create(&self, obj: &mut Value) {
        if !obj["spec"].is_object() {
            return;
        }
        let spec = &mut obj["spec"];
        if !matches!(self, Workload::DaemonSet) {
            set_default(spec, "replicas", json!(1));
        }
        match self {
            Workload::Deployment => {
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                );
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
            }
            Workload::StatefulSet => {
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            Workload::DaemonSet => {
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
                set_default(spec, "revisionHistoryLimit", json!(10));
            }
            Workload::ReplicaSet => {}
        }
        if spec["template"]["spec"].is_object() {
            default_pod_spec(&mut spec["template"]["spec"]);
        }
    }

    /// Upstream defaults every object it decodes, updates too.
    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.prepare_for_create(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let spec = &obj["spec"];
        if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
            errors.push(FieldError::invalid(
                "spec.replicas",
                spec["replicas"].as_i64().unwrap_or(0),
                "must be greater than or equal to 0",
            ));
        }
        let template_labels = crate::meta::labels(&spec["template"]);
        match LabelSelector::from_json(&spec["selector"]) {
            _ if spec["selector"].is_null() => errors.push(FieldError::required("spec.selector", "")),
            Ok(Some(selector)) if selector.is_empty() => errors.push(FieldError::invalid("spec.selector", BadValue::Raw("v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}".into()), "empty selector is invalid for deployment")),
            Ok(Some(selector)) => {
                if !selector.matches(&template_labels) {
                    errors.push(FieldError::invalid("spec.template.metadata.labels", BadValue::Raw(go_map(&template_labels)), "`selector` does not match template `labels`"));
                }
            }
            Ok(None) => errors.push(FieldError::required("spec.selector", "")),
            Err(e) => errors.push(FieldError::invalid("spec.selector", BadValue::Raw(spec["selector"].to_string()), &e.to_string())),
        }
        if let Some(old) = old {
            if old["spec"]["selector"] != spec["selector"] {
                errors.push(FieldError::invalid(
                    "spec.selector",
                    BadValue::Raw(spec["selector"].to_string()),
                    "field is immutable",
                ));
            }
        }
        errors.extend(validate_pod_spec(
            &spec["template"]["spec"],
            "spec.template.spec",
        ));
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"metadata": {"name": "d"}, "spec": {"selector": selector, "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn defaults() {
        let mut d = deployment(json!({"matchLabels": {"app": "x"}}), json!({"app": "x"}));
        Workload::Deployment.prepare_for_create(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn selector_rules() {
        let ok = deployment(
            json!({"matchLabels": {"app": "x"}}),
            json!({"app": "x", "tier": "web"}),
        );
        assert!(Workload::Deployment.validate(&ok, None).is_empty());
        let mismatch = deployment(json!({"matchLabels": {"app": "y"}}), json!({"app": "x"}));
        let errs = Workload::Deployment.validate(&mismatch, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#
        );
        let missing = deployment(Value::Null, json!({"app": "x"}));
        assert_eq!(
            Workload::Deployment.validate(&missing, None)[0].to_string(),
            "spec.selector: Required value"
        );
        let moved = deployment(
            json!({"matchLabels": {"app": "x", "v": "2"}}),
            json!({"app": "x", "v": "2"}),
        );
        let errs = Workload::Deployment.validate(&moved, Some(&ok));
        assert!(
            errs.iter()
                .any(|e| e.to_string().ends_with("field is immutable")),
            "{errs:?}"
        );
    }
}
