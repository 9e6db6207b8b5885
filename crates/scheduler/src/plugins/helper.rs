//! Matching shared by several plugins: node selector terms, tolerations, and the default
//! score normalization.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};

use crate::framework::{NodeScore, MAX_NODE_SCORE};

/// Whether one requirement holds for `value` (the label's or field's value, if any).
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if op == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches the node: all its expressions and fields
/// (`metadata.name` only) hold; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// Whether the node's labels contain every `nodeSelector` pair.
pub fn selector_matches(selector: &BTreeMap<String, String>, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether a toleration tolerates a taint (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// Scales scores to [0, MAX_NODE_SCORE] by the highest (upstream's
/// `DefaultNormalizeScore`); with `reverse`, a higher raw score becomes a lower one.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut score = max_priority * s.score / max;
        if reverse {
            score = max_priority - score;
        }
        s.score = score;
    }
}

/// [`default_normalize_score`] with [`MAX_NODE_SCORE`].
pub fn normalize(reverse: bool, scores: &mut [NodeScore]) {
    default_normalize_score(MAX_NODE_SCORE, reverse, scores)
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Builders for plugin tests.
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    use crate::framework::{CycleState, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin};

    /// The nodes as PreScore sees them.
    pub fn refs(nodes: &[Arc<NodeInfo>]) -> Vec<&NodeInfo> {
        nodes.iter().map(|n| &**n).collect()
    }

    /// PreScore over `nodes`, then each node's Score and the plugin's NormalizeScore:
    /// the raw and the normalized scores in node order; `None` when PreScore skips.
    pub fn scored<P: PreScorePlugin + ScorePlugin>(
        pl: &P,
        st: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Option<(Vec<i64>, Vec<i64>)> {
        let s = pl.pre_score(st, pod, &refs(nodes));
        if s.is_skip() {
            return None;
        }
        assert!(s.is_success(), "PreScore: {s:?}");
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name(),
                score: pl.score(st, pod, n).unwrap(),
            })
            .collect();
        let raw = scores.iter().map(|s| s.score).collect();
        pl.normalize_score(st, pod, &mut scores);
        Some((raw, scores.iter().map(|s| s.score).collect()))
    }

    pub fn pod(spec: Value) -> PodInfo {
        pod_named("p", spec)
    }

    pub fn pod_named(name: &str, spec: Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": spec,
        }))
        .unwrap();
        PodInfo::new(Arc::new(p))
    }

    /// A node from its metadata labels, spec and allocatable resources.
    pub fn node(name: &str, labels: Value, spec: Value, allocatable: Value) -> NodeInfo {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"allocatable": allocatable, "capacity": allocatable},
        }))
        .unwrap();
        NodeInfo::new(Arc::new(n))
    }

    pub fn plain_node(name: &str) -> NodeInfo {
        node(
            name,
            json!({}),
            json!({}),
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tolerations_match_taints_as_upstream() {
        let taint: Taint =
            serde_json::from_value(json!({"key": "k", "value": "v", "effect": "NoSchedule"}))
                .unwrap();
        let cases = [
            (
                json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "k", "value": "other"}), false),
            (
                json!({"key": "k", "value": "v", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
        ];
        for (t, want) in cases {
            let t: Toleration = serde_json::from_value(t.clone()).unwrap();
            assert_eq!(tolerates(&t, &taint), want, "{t:?}");
        }
    }

    #[test]
    fn normalize_scales_and_reverses() {
        let mut s = vec![
            NodeScore {
                name: "a",
                score: 0,
            },
            NodeScore {
                name: "b",
                score: 2,
            },
            NodeScore {
                name: "c",
                score: 4,
            },
        ];
        normalize(true, &mut s);
        assert_eq!(s.iter().map(|s| s.score).collect::<Vec<_>>(), [100, 50, 0]);
        let mut z = vec![NodeScore {
            name: "a",
            score: 0,
        }];
        normalize(false, &mut z);
        assert_eq!(z[0].score, 0);
        normalize(true, &mut z);
        assert_eq!(z[0].score, 100);
    }
}
