//! Priority: a pod's `priorityClassName` (or the global default class) resolves to its
//! `priority` and `preemptionPolicy`; only one PriorityClass may be the global default.
//! The two system classes are created when the server starts.

use std::sync::Arc;

use axum::http::Method;
use serde_json::{json, Value};

use super::{is_pod_create, list, lookup, resource, Operation, Plugin, Request, Verdict};
use crate::ApiState;

/// Upstream's built-in classes: name, value, description.
const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

pub struct Priority;

impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if !is_pod_create(r) {
                return Ok(());
            }
            let classes = resource("scheduling.k8s.io", "v1", "priorityclasses");
            let named = r.object.as_ref().expect("pod")["spec"]["priorityClassName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let (class_name, value, preemption) = match named {
                Some(name) => match lookup(&r.state, classes, None, &name).await? {
                    Some(pc) => (
                        name,
                        pc["value"].as_i64().unwrap_or(0),
                        pc["preemptionPolicy"]
                            .as_str()
                            .unwrap_or(DEFAULT_PREEMPTION)
                            .to_owned(),
                    ),
                    None => {
                        return Err(
                            r.forbidden(format!("no PriorityClass with name {name} was found"))
                        )
                    }
                },
                None => match global_default(&list(&r.state, classes, None).await?) {
                    Some(pc) => (
                        pc["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                        pc["value"].as_i64().unwrap_or(0),
                        pc["preemptionPolicy"]
                            .as_str()
                            .unwrap_or(DEFAULT_PREEMPTION)
                            .to_owned(),
                    ),
                    None => (String::new(), 0, DEFAULT_PREEMPTION.to_owned()),
                },
            };
            let spec = &r.object.as_ref().expect("pod")["spec"];
            if let Some(given) = spec["priority"].as_i64() {
                if given != value {
                    return Err(r.forbidden(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name")));
                }
            }
            if let Some(given) = spec["preemptionPolicy"].as_str() {
                if given != preemption {
                    return Err(r.forbidden(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {preemption} from the given PriorityClass name")));
                }
            }
            let spec = &mut r.object.as_mut().expect("pod")["spec"];
            if !class_name.is_empty() {
                spec["priorityClassName"] = json!(class_name);
            }
            spec["priority"] = json!(value);
            spec["preemptionPolicy"] = json!(preemption);
            Ok(())
        })
    }

    fn validate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            let writes_class = r.is("scheduling.k8s.io", "priorityclasses", "")
                && matches!(r.operation, Operation::Create | Operation::Update);
            if !writes_class {
                return Ok(());
            }
            let Some(obj) = r.object.as_ref() else {
                return Ok(());
            };
            if obj["globalDefault"] != true {
                return Ok(());
            }
            let classes = resource("scheduling.k8s.io", "v1", "priorityclasses");
            let existing = list(&r.state, classes, None).await?;
            if let Some(other) = existing
                .iter()
                .find(|pc| pc["globalDefault"] == true && pc["metadata"]["name"] != r.name.as_str())
            {
                let other = other["metadata"]["name"].as_str().unwrap_or("");
                return Err(r.forbidden(format!(
                    "PriorityClass {other} is already marked as default. Only one default can exist"
                )));
            }
            Ok(())
        })
    }
}

/// The global default class; with several, the one of lowest value (as upstream picks).
fn global_default(classes: &[Arc<Value>]) -> Option<&Value> {
    classes
        .iter()
        .filter(|pc| pc["globalDefault"] == true)
        .min_by_key(|pc| pc["value"].as_i64().unwrap_or(0))
        .map(|pc| &**pc)
}

/// Creates the system priority classes that do not exist yet (through the API, as the
/// server itself).
pub async fn ensure_system_priority_classes(state: &Arc<ApiState>) -> Result<(), String> {
    for (name, value, description) in SYSTEM_CLASSES {
        let body = json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": DEFAULT_PREEMPTION,
        });
        let (code, answer) = crate::internal_request(
            state,
            Method::POST,
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            Some(&body),
        )
        .await;
        if !code.is_success() && code.as_u16() != 409 {
            return Err(format!("cannot create PriorityClass {name}: {answer}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_global_default_wins() {
        let classes = [
            json!({"metadata": {"name": "a"}, "value": 10, "globalDefault": true}),
            json!({"metadata": {"name": "b"}, "value": 5, "globalDefault": true}),
            json!({"metadata": {"name": "c"}, "value": 1}),
        ]
        .map(Arc::new);
        assert_eq!(global_default(&classes).unwrap()["metadata"]["name"], "b");
        assert!(global_default(&classes[2..]).is_none());
    }
}
