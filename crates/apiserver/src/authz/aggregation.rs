//! The ClusterRole aggregation controller (upstream's `clusterroleaggregation`): a
//! ClusterRole with an `aggregationRule` gets as its rules the rules of every other
//! ClusterRole its `clusterRoleSelectors` select (by name order, each distinct rule
//! once), applied server-side as the `clusterrole-aggregation-controller` field manager.
//! It runs inside the server, woken by every change the authorizer's index sees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rkube_api::LabelSelector;
use serde_json::{json, Value};

use super::rbac::{ClusterRoleEntry, PolicyRule};
use crate::ApiState;

/// The field manager of the rules it writes.
pub const FIELD_MANAGER: &str = "clusterrole-aggregation-controller";
/// Pause before retrying a failed write.
const RETRY: Duration = Duration::from_millis(500);

/// The rules each aggregated ClusterRole should have, where they differ from its current
/// ones.
pub fn wanted_changes(
    roles: &BTreeMap<&String, &ClusterRoleEntry>,
) -> Vec<(String, Vec<PolicyRule>)> {
    let mut changes = Vec::new();
    for (name, role) in roles {
        let Some(selectors) = &role.aggregation else {
            continue;
        };
        let mut rules: Vec<PolicyRule> = Vec::new();
        for selector in selectors {
            let Ok(Some(selector)) = LabelSelector::from_json(selector) else {
                continue;
            };
            for (other, entry) in roles {
                if other == name || !selector.matches(&entry.labels) {
                    continue;
                }
                for rule in entry.rules.iter() {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        if rules.as_slice() != &*role.rules {
            changes.push(((*name).clone(), rules));
        }
    }
    changes
}

/// Runs one pass now, then one after every RBAC change.
pub fn start(state: &Arc<ApiState>) {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            if !pass(&state).await {
                tokio::time::sleep(RETRY).await;
                continue;
            }
            state.aggregation.notified().await;
        }
    });
}

/// Applies every needed change; false if one failed.
pub async fn pass(state: &Arc<ApiState>) -> bool {
    let changes = {
        let index = state.authz.index();
        let sorted: BTreeMap<&String, &ClusterRoleEntry> = index.cluster_roles().iter().collect();
        wanted_changes(&sorted)
    };
    let mut ok = true;
    for (name, rules) in changes {
        let body = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules.iter().map(PolicyRule::to_json).collect::<Vec<Value>>(),
        });
        let path = format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}?fieldManager={FIELD_MANAGER}&force=true"
        );
        let (code, out) = crate::internal_apply(state, &path, &body).await;
        match code {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NOT_FOUND => {}
            other => {
                tracing::warn!(clusterrole = name, code = %other, response = %out, "aggregation failed");
                ok = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::rbac::Index;

    #[test]
    fn aggregates_selected_rules_once_in_name_order() {
        let mut idx = Index::default();
        let role = |name: &str, labels: Value, rules: Value| json!({"metadata": {"name": name, "labels": labels}, "rules": rules});
        let key = |n: &str| format!("/registry/rbac.authorization.k8s.io/clusterroles/{n}");
        idx.apply(&key("view"), Some(&json!({"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}})));
        idx.apply(
            &key("b"),
            Some(&role(
                "b",
                json!({"agg": "true"}),
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
            )),
        );
        idx.apply(&key("a"), Some(&role("a", json!({"agg": "true"}), json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]))));
        idx.apply(
            &key("c"),
            Some(&role(
                "c",
                json!({}),
                json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]),
            )),
        );
        let sorted: BTreeMap<&String, &ClusterRoleEntry> = idx.cluster_roles().iter().collect();
        let changes = wanted_changes(&sorted);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, "view");
        assert_eq!(
            changes[0].1,
            vec![
                PolicyRule::resources(&["list"], &[""], &["pods"]),
                PolicyRule::resources(&["get"], &[""], &["pods"]),
            ]
        );
    }
}
