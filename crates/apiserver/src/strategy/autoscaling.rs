//! HorizontalPodAutoscalers (autoscaling/v2, also served as v1): upstream's defaults — one
//! minimum replica, and a CPU utilization target of 80% when no metric is given — and its
//! validation of the replica bounds and the scale target.

use rkube_api::FieldError;
use serde_json::{json, Value};

use super::{set_default, KindStrategy};

pub struct HorizontalPodAutoscalers;

/// Upstream's default CPU utilization target.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// Upstream's `SetDefaults_HorizontalPodAutoscalerBehavior`: a `behavior` that is set gets
/// both directions' rules, each unset field from the defaults (scale up: no window, 4 pods
/// or 100% per 15 s, `Max`; scale down: 100% per 15 s, `Max`, and no window — the
/// controller's `--horizontal-pod-autoscaler-downscale-stabilization` applies).
fn default_behavior(spec: &mut Value) {
    let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) else {
        return;
    };
    let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]});
    let down = json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]});
    for (direction, defaults) in [("scaleUp", up), ("scaleDown", down)] {
        let mut rules = defaults;
        if let Some(given) = behavior[direction].as_object() {
            for (k, v) in given {
                if !v.is_null() {
                    rules[k] = v.clone();
                }
            }
        }
        behavior[direction] = rules;
    }
}

impl KindStrategy for HorizontalPodAutoscalers {
    fn prepare_for_create(&self, obj: &mut Value) {
        let v1 = obj["apiVersion"] == "autoscaling/v1";
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
            return;
        };
        set_default(spec, "minReplicas", json!(1));
        if v1 {
            set_default(
                spec,
                "targetCPUUtilizationPercentage",
                json!(DEFAULT_CPU_UTILIZATION),
            );
        } else {
            if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]);
            }
            default_behavior(spec);
        }
    }

    fn prepare_for_update(&self, obj: &mut Value, _old: &Value) {
        self.prepare_for_create(obj);
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let spec = &obj["spec"];
        let mut errors = Vec::new();
        for field in ["kind", "name"] {
            if spec["scaleTargetRef"][field]
                .as_str()
                .is_none_or(str::is_empty)
            {
                errors.push(FieldError::required(
                    &format!("spec.scaleTargetRef.{field}"),
                    "",
                ));
            }
        }
        let min = spec["minReplicas"].as_i64().unwrap_or(1);
        if min < 1 {
            errors.push(FieldError::invalid(
                "spec.minReplicas",
                min,
                "must be greater than or equal to 1",
            ));
        }
        let max = spec["maxReplicas"].as_i64().unwrap_or(0);
        if max < min {
            errors.push(FieldError::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behavior_defaults_as_upstream() {
        let mut hpa = json!({"apiVersion": "autoscaling/v2", "spec": {"maxReplicas": 3,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}}}});
        HorizontalPodAutoscalers.prepare_for_create(&mut hpa);
        assert_eq!(
            hpa["spec"]["behavior"],
            json!({
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 1, "periodSeconds": 30}]}
            })
        );
        // Without a behavior none is made up.
        let mut hpa = json!({"apiVersion": "autoscaling/v2", "spec": {"maxReplicas": 3}});
        HorizontalPodAutoscalers.prepare_for_create(&mut hpa);
        assert!(hpa["spec"].get("behavior").is_none());
    }
}
