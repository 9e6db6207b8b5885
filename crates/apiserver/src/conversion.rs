//! Conversion between versions of one built-in resource that share storage.
//!
//! Upstream serves some objects in two versions from one stored form: core `v1` Events and
//! `events.k8s.io/v1` Events (stored as core `v1`), `autoscaling/v1` and `autoscaling/v2`
//! HorizontalPodAutoscalers (stored as `v2`). Each such kind has one [`Conversion`] here:
//! objects are written at the storage version and converted on the way out, so a client of
//! either version sees every object, with upstream's field mapping. Fields only one version
//! can hold survive a round trip through the other in annotations, as upstream keeps them.

use serde_json::{json, Map, Value};

use rkube_api::resources::ResourceInfo;

use crate::codec::encode_for_store;

/// Converts objects of one kind between its served versions.
pub struct Conversion {
    /// The apiVersion objects are stored at.
    pub storage_version: &'static str,
    /// The other apiVersion, and the conversions to and from it.
    other_version: &'static str,
    to_other: fn(&mut Map<String, Value>),
    from_other: fn(&mut Map<String, Value>),
}

static EVENTS: Conversion = Conversion {
    storage_version: "v1",
    other_version: "events.k8s.io/v1",
    to_other: events::core_to_events,
    from_other: events::events_to_core,
};

static HPA: Conversion = Conversion {
    storage_version: "autoscaling/v2",
    other_version: "autoscaling/v1",
    to_other: hpa::v2_to_v1,
    from_other: hpa::v1_to_v2,
};

/// The conversion of a resource whose storage it shares with another version.
pub fn for_resource(info: &ResourceInfo) -> Option<&'static Conversion> {
    match (info.group, info.kind) {
        ("" | "events.k8s.io", "Event") => Some(&EVENTS),
        ("autoscaling", "HorizontalPodAutoscaler") => Some(&HPA),
        _ => None,
    }
}

impl Conversion {
    /// Converts `obj` (at whichever version it is) to `api_version`.
    pub fn convert(&self, obj: &mut Value, api_version: &str) {
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        let from = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if from == api_version {
            return;
        }
        if from == self.storage_version && api_version == self.other_version {
            (self.to_other)(map);
        } else if from == self.other_version && api_version == self.storage_version {
            (self.from_other)(map);
        } else {
            return;
        }
        map.insert("apiVersion".into(), json!(api_version));
    }

    /// A stored object as `api_version` serves it (same layout as stored bytes).
    pub fn served(&self, stored: &[u8], api_version: &str) -> Vec<u8> {
        let Ok(mut obj) = serde_json::from_slice::<Value>(stored) else {
            return stored.to_vec();
        };
        if obj["apiVersion"] == api_version {
            return stored.to_vec();
        }
        self.convert(&mut obj, api_version);
        encode_for_store(&obj)
    }

    /// Converts an object to the storage version before it is written.
    pub fn to_storage(&self, obj: &mut Value) {
        self.convert(obj, self.storage_version);
    }
}

/// The resource and objects a Table is computed from: objects of a converted version are
/// shown as their storage version is (upstream prints both from one internal form).
pub fn table_view(
    info: &'static ResourceInfo,
    objects: &[Value],
) -> (&'static ResourceInfo, Vec<Value>) {
    let Some(conv) = for_resource(info) else {
        return (info, objects.to_vec());
    };
    if info.api_version() == conv.storage_version {
        return (info, objects.to_vec());
    }
    let storage_info =
        rkube_api::resources::find_by_api_version_kind(conv.storage_version, info.kind)
            .unwrap_or(info);
    let converted = objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            conv.to_storage(&mut o);
            o
        })
        .collect();
    (storage_info, converted)
}

/// Moves `from` to `to` in `map` when present.
fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        if !v.is_null() {
            map.insert(to.into(), v);
        }
    }
}

mod events {
    use super::*;

    /// Core field ↔ events.k8s.io field (upstream's `events/v1` conversion).
    const FIELDS: &[(&str, &str)] = &[
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("reportingComponent", "reportingController"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ];

    pub fn core_to_events(map: &mut Map<String, Value>) {
        for (core, events) in FIELDS {
            rename(map, core, events);
        }
    }

    pub fn events_to_core(map: &mut Map<String, Value>) {
        for (core, events) in FIELDS {
            rename(map, events, core);
        }
    }
}

mod hpa {
    use super::*;

    const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
    const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
    const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
    const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

    fn is_cpu_utilization(metric: &Value, target: &str) -> bool {
        metric["type"] == "Resource"
            && metric["resource"]["name"] == "cpu"
            && metric["resource"][target]["type"] == "Utilization"
    }

    fn annotations(map: &mut Map<String, Value>) -> &mut Map<String, Value> {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("metadata is an object");
        meta.entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("annotations are an object")
    }

    fn take_annotation(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
        let meta = map.get_mut("metadata")?.as_object_mut()?;
        let annotations = meta.get_mut("annotations")?.as_object_mut()?;
        let value = annotations.remove(key)?;
        if annotations.is_empty() {
            meta.remove("annotations");
        }
        serde_json::from_str(value.as_str()?).ok()
    }

    fn keep_in_annotation(map: &mut Map<String, Value>, key: &str, value: Vec<Value>) {
        if !value.is_empty() {
            annotations(map).insert(key.into(), json!(Value::Array(value).to_string()));
        }
    }

    /// autoscaling/v2 → v1: a CPU utilization target becomes
    /// `targetCPUUtilizationPercentage`; other metrics, behavior and conditions are kept in
    /// upstream's annotations.
    pub fn v2_to_v1(map: &mut Map<String, Value>) {
        let mut spec = map.remove("spec").unwrap_or_else(|| json!({}));
        let mut other_metrics = Vec::new();
        if let Some(Value::Array(metrics)) = spec.as_object_mut().and_then(|s| s.remove("metrics"))
        {
            for m in metrics {
                if is_cpu_utilization(&m, "target")
                    && spec.get("targetCPUUtilizationPercentage").is_none()
                {
                    spec["targetCPUUtilizationPercentage"] =
                        m["resource"]["target"]["averageUtilization"].clone();
                } else {
                    other_metrics.push(m);
                }
            }
        }
        let behavior = spec.as_object_mut().and_then(|s| s.remove("behavior"));
        map.insert("spec".into(), spec);
        keep_in_annotation(map, METRICS, other_metrics);
        if let Some(b) = behavior.filter(|b| !b.is_null()) {
            annotations(map).insert(BEHAVIOR.into(), json!(b.to_string()));
        }
        if let Some(mut status) = map.remove("status") {
            let mut other_current = Vec::new();
            if let Some(Value::Array(current)) = status
                .as_object_mut()
                .and_then(|s| s.remove("currentMetrics"))
            {
                for m in current {
                    if is_cpu_utilization(&m, "current")
                        || (m["type"] == "Resource"
                            && m["resource"]["name"] == "cpu"
                            && m["resource"]["current"]["averageUtilization"].is_number())
                    {
                        status["currentCPUUtilizationPercentage"] =
                            m["resource"]["current"]["averageUtilization"].clone();
                    } else {
                        other_current.push(m);
                    }
                }
            }
            let conditions = match status.as_object_mut().and_then(|s| s.remove("conditions")) {
                Some(Value::Array(c)) => c,
                _ => Vec::new(),
            };
            map.insert("status".into(), status);
            keep_in_annotation(map, CURRENT_METRICS, other_current);
            keep_in_annotation(map, CONDITIONS, conditions);
        }
    }

    /// autoscaling/v1 → v2: the inverse of [`v2_to_v1`].
    pub fn v1_to_v2(map: &mut Map<String, Value>) {
        let mut metrics = match take_annotation(map, METRICS) {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        let behavior = take_annotation(map, BEHAVIOR);
        let mut spec = map.remove("spec").unwrap_or_else(|| json!({}));
        if let Some(cpu) = spec
            .as_object_mut()
            .and_then(|s| s.remove("targetCPUUtilizationPercentage"))
            .filter(|v| !v.is_null())
        {
            metrics.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}),
            );
        }
        if !metrics.is_empty() {
            spec["metrics"] = Value::Array(metrics);
        }
        if let Some(b) = behavior {
            spec["behavior"] = b;
        }
        map.insert("spec".into(), spec);
        let current = take_annotation(map, CURRENT_METRICS);
        let conditions = take_annotation(map, CONDITIONS);
        if let Some(mut status) = map.remove("status") {
            let mut current = match current {
                Some(Value::Array(c)) => c,
                _ => Vec::new(),
            };
            if let Some(cpu) = status
                .as_object_mut()
                .and_then(|s| s.remove("currentCPUUtilizationPercentage"))
                .filter(|v| !v.is_null())
            {
                current.insert(
                    0,
                    json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}),
                );
            }
            if !current.is_empty() {
                status["currentMetrics"] = Value::Array(current);
            }
            if let Some(c) = conditions {
                status["conditions"] = c;
            }
            map.insert("status".into(), status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        rkube_api::resources::find(group, version, plural).unwrap()
    }

    #[test]
    fn events_map_fields_both_ways() {
        let conv = for_resource(info("events.k8s.io", "v1", "events")).unwrap();
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "hi", "reason": "Started",
            "source": {"component": "kubelet"}, "count": 3, "type": "Normal",
            "firstTimestamp": "2026-01-01T00:00:00Z", "reportingComponent": "kubelet"});
        let mut served = core.clone();
        conv.convert(&mut served, "events.k8s.io/v1");
        assert_eq!(
            served,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
                "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "Started",
                "deprecatedSource": {"component": "kubelet"}, "deprecatedCount": 3, "type": "Normal",
                "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z", "reportingController": "kubelet"})
        );
        conv.to_storage(&mut served);
        assert_eq!(served, core);
    }

    #[test]
    fn hpa_cpu_target_and_other_metrics_round_trip() {
        let conv = for_resource(info("autoscaling", "v1", "horizontalpodautoscalers")).unwrap();
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}
                ]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let mut v1 = v2.clone();
        conv.convert(&mut v1, "autoscaling/v1");
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        let kept: Value = serde_json::from_str(
            v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(kept[0]["resource"]["name"], "memory");
        let mut back = v1.clone();
        conv.to_storage(&mut back);
        assert_eq!(back, v2);
    }

    #[test]
    fn other_kinds_have_no_conversion() {
        assert!(for_resource(info("apps", "v1", "deployments")).is_none());
    }
}
