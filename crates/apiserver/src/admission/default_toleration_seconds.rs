//! DefaultTolerationSeconds: pods tolerate `not-ready` and `unreachable` NoExecute
//! taints for 300 s unless they say otherwise, so they are evicted from a lost node.

use serde_json::{json, Value};

use super::{is_pod_create, Plugin, Request, Verdict};

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Upstream's `--default-not-ready-toleration-seconds` and `-unreachable-`.
const SECONDS: i64 = 300;

pub struct DefaultTolerationSeconds;

impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    fn mutate<'a>(&'a self, r: &'a mut Request) -> Verdict<'a> {
        Box::pin(async move {
            if is_pod_create(r) {
                if let Some(pod) = r.object.as_mut() {
                    add_tolerations(&mut pod["spec"]);
                }
            }
            Ok(())
        })
    }
}

fn add_tolerations(spec: &mut Value) {
    let existing = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let tolerates = |key: &str| {
        existing.iter().any(|t| {
            let t_key = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (t_key == key || t_key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let mut added = Vec::new();
    for key in [NOT_READY, UNREACHABLE] {
        if !tolerates(key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": SECONDS}));
        }
    }
    if added.is_empty() {
        return;
    }
    match spec["tolerations"].as_array_mut() {
        Some(t) => t.extend(added),
        None => spec["tolerations"] = Value::Array(added),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let cases = [
            (json!({}), 2),
            (
                json!({"tolerations": [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}]}),
                2,
            ),
            (json!({"tolerations": [{"operator": "Exists"}]}), 1),
            (
                json!({"tolerations": [{"key": UNREACHABLE, "operator": "Exists"}]}),
                2,
            ),
            (
                json!({"tolerations": [{"key": "other", "operator": "Exists", "effect": "NoSchedule"}]}),
                3,
            ),
        ];
        for (mut spec, want) in cases {
            let before = spec.clone();
            add_tolerations(&mut spec);
            let t = spec["tolerations"].as_array().unwrap();
            assert_eq!(t.len(), want, "{before}");
            for added in t.iter().filter(|t| t["tolerationSeconds"] == SECONDS) {
                assert_eq!(added["effect"], "NoExecute");
            }
        }
    }
}
