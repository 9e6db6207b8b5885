//! A webhook's `rules`: which operations on which resources it is sent.

use serde_json::Value;

use super::super::{Operation, Request};

/// One `RuleWithOperations`.
#[derive(Debug, Default, PartialEq)]
pub struct Rule {
    operations: Vec<String>,
    api_groups: Vec<String>,
    api_versions: Vec<String>,
    resources: Vec<String>,
    /// `*` (default), `Cluster` or `Namespaced`.
    scope: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    pub fn parse(rule: &Value) -> Rule {
        Rule {
            operations: strings(&rule["operations"]),
            api_groups: strings(&rule["apiGroups"]),
            api_versions: strings(&rule["apiVersions"]),
            resources: strings(&rule["resources"]),
            scope: rule["scope"].as_str().unwrap_or("*").to_owned(),
        }
    }

    pub fn matches(&self, r: &Request) -> bool {
        self.matches_parts(
            r.operation,
            r.info.group,
            r.info.version,
            r.info.plural,
            &r.subresource,
            r.info.namespaced,
        )
    }

    fn matches_parts(
        &self,
        operation: Operation,
        group: &str,
        version: &str,
        resource: &str,
        subresource: &str,
        namespaced: bool,
    ) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|x| x == "*" || x == value);
        let scope_ok = match self.scope.as_str() {
            "Cluster" => !namespaced,
            "Namespaced" => namespaced,
            _ => true,
        };
        scope_ok
            && any(&self.operations, operation.as_str())
            && any(&self.api_groups, group)
            && any(&self.api_versions, version)
            && self.resources.iter().any(|pattern| {
                let (res, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
                (res == "*" || res == resource) && (sub == "*" || sub == subresource)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cases() {
        let rule = |resources: Value, scope: &str| {
            Rule::parse(
                &json!({"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources, "scope": scope}),
            )
        };
        let cases = [
            (
                rule(json!(["pods"]), "*"),
                Operation::Create,
                "pods",
                "",
                true,
                true,
            ),
            (
                rule(json!(["pods"]), "*"),
                Operation::Create,
                "pods",
                "status",
                true,
                false,
            ),
            (
                rule(json!(["pods"]), "*"),
                Operation::Delete,
                "pods",
                "",
                true,
                false,
            ),
            (
                rule(json!(["pods/*"]), "*"),
                Operation::Update,
                "pods",
                "status",
                true,
                true,
            ),
            (
                rule(json!(["pods/status"]), "*"),
                Operation::Update,
                "pods",
                "",
                true,
                false,
            ),
            (
                rule(json!(["*"]), "*"),
                Operation::Create,
                "configmaps",
                "",
                true,
                true,
            ),
            (
                rule(json!(["*"]), "*"),
                Operation::Create,
                "pods",
                "binding",
                true,
                false,
            ),
            (
                rule(json!(["*/*"]), "*"),
                Operation::Create,
                "pods",
                "binding",
                true,
                true,
            ),
            (
                rule(json!(["*/status"]), "*"),
                Operation::Update,
                "nodes",
                "status",
                false,
                true,
            ),
            (
                rule(json!(["*"]), "Namespaced"),
                Operation::Create,
                "nodes",
                "",
                false,
                false,
            ),
            (
                rule(json!(["*"]), "Cluster"),
                Operation::Create,
                "nodes",
                "",
                false,
                true,
            ),
            (
                rule(json!(["*"]), "Cluster"),
                Operation::Create,
                "pods",
                "",
                true,
                false,
            ),
        ];
        for (rule, op, res, sub, namespaced, want) in cases {
            assert_eq!(
                rule.matches_parts(op, "", "v1", res, sub, namespaced),
                want,
                "{rule:?} {op:?} {res}/{sub}"
            );
        }
        let groups = Rule::parse(
            &json!({"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["*"], "resources": ["deployments"]}),
        );
        assert!(groups.matches_parts(Operation::Delete, "apps", "v1", "deployments", "", true));
        assert!(!groups.matches_parts(Operation::Delete, "", "v1", "deployments", "", true));
    }
}
