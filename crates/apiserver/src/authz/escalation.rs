//! Escalation prevention on RBAC writes (upstream's policy-based role and binding
//! storage): a user may write a Role or ClusterRole only with rules they already hold
//! (unless allowed to `escalate` it), and bind a role only if they hold its rules (unless
//! allowed to `bind` it). Members of `system:masters` are exempt. Runs before validation,
//! as upstream's does, and a refusal writes nothing.

use rkube_api::resources::ResourceInfo;
use rkube_api::{GroupResource, Status};
use serde_json::Value;

use super::attributes::Attributes;
use super::rbac::{self, PolicyRule, ResolveError, RoleRef};
use super::{is_privileged, Authorizer};
use crate::auth::UserInfo;
use crate::error::ApiError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What may grant anything: `*` on every resource and URL.
fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule::resources(&["*"], &["*"], &["*"]),
        PolicyRule::urls(&["*"], &["*"]),
    ]
}

/// Upstream's check that the user holds `rules` in `namespace`; the error text if not.
fn confirm_no_escalation(
    authz: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (owner, errors) = authz.rules_for(user, namespace);
    let (covered, missing) = rbac::covers(&owner, rules);
    if covered {
        return Ok(());
    }
    let mut described: Vec<String> = rbac::compact(missing)
        .iter()
        .map(PolicyRule::compact_string)
        .collect();
    described.sort();
    described.dedup();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        rbac::go_quote(&user.name),
        rbac::go_quoted_list(&user.groups),
        described.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!(
            "; resolution errors: [{}]",
            registry_errors(&errors)
        ));
    }
    Err(msg)
}

/// Resolution errors as the registry words them (plural resource names).
fn registry_errors(errors: &[ResolveError]) -> String {
    let one = |e: &ResolveError| match e {
        ResolveError::RoleNotFound { kind, name } => format!(
            "{}s.rbac.authorization.k8s.io {} not found",
            kind.to_ascii_lowercase(),
            rbac::go_quote(name)
        ),
        other => other.lister_message(),
    };
    match errors {
        [e] => one(e),
        many => format!("[{}]", many.iter().map(one).collect::<Vec<_>>().join(", ")),
    }
}

/// Whether only the fields the garbage collector writes (owner references, finalizers)
/// differ between `obj` and `old`.
fn only_gc_fields_changed(obj: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
            ] {
                meta.remove(f);
            }
        }
        v
    };
    strip(obj) == strip(old)
}

fn allowed(authz: &Authorizer, a: &Attributes) -> bool {
    authz.authorize(a).allowed()
}

fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
    Status::forbidden(&GroupResource::new(info.group, info.plural), name, why).into()
}

/// Checks a create (`old` is `None`) or update of an RBAC object by `user`.
/// `url_name` is the name in the request path; `namespace` the request's.
pub fn check_write(
    authz: &Authorizer,
    user: &UserInfo,
    info: &ResourceInfo,
    namespace: &str,
    url_name: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if info.group != RBAC_GROUP || is_privileged(user) {
        return Ok(());
    }
    if old.is_some_and(|old| only_gc_fields_changed(obj, old)) {
        return Ok(());
    }
    let name = crate::meta::meta_str(obj, "name").unwrap_or("");
    match info.plural {
        "roles" | "clusterroles" => {
            let escalate = Attributes {
                user: user.clone(),
                verb: "escalate".into(),
                resource_request: true,
                api_group: info.group.into(),
                api_version: "*".into(),
                resource: info.plural.into(),
                name: url_name.into(),
                namespace: namespace.into(),
                ..Default::default()
            };
            if allowed(authz, &escalate) {
                return Ok(());
            }
            let rules = PolicyRule::list_from_json(&obj["rules"]);
            confirm_no_escalation(authz, user, namespace, &rules)
                .map_err(|why| forbidden(info, name, &why))?;
            let aggregated = |v: &Value| v.get("aggregationRule").is_some_and(|a| !a.is_null());
            if info.plural == "clusterroles"
                && (aggregated(obj) || old.is_some_and(aggregated))
                && confirm_no_escalation(authz, user, namespace, &full_authority()).is_err()
            {
                return Err(forbidden(
                    info,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = RoleRef::from_json(&obj["roleRef"]);
            let resource = match role_ref.kind.as_str() {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(resource) = resource {
                let bind = Attributes {
                    user: user.clone(),
                    verb: "bind".into(),
                    resource_request: true,
                    api_group: role_ref.api_group.clone(),
                    resource: resource.into(),
                    name: role_ref.name.clone(),
                    namespace: namespace.into(),
                    ..Default::default()
                };
                if allowed(authz, &bind) {
                    return Ok(());
                }
            }
            let rules =
                authz
                    .index()
                    .role_ref_rules(&role_ref, namespace)
                    .map_err(|e| match e {
                        ResolveError::RoleNotFound { kind, name } => {
                            let plural = if kind == "Role" {
                                "roles"
                            } else {
                                "clusterroles"
                            };
                            ApiError::from(Status::not_found(
                                &GroupResource::new(RBAC_GROUP, plural),
                                &name,
                            ))
                        }
                        other => ApiError::internal(other),
                    })?;
            confirm_no_escalation(authz, user, namespace, &rules)
                .map_err(|why| forbidden(info, name, &why))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn info(plural: &str) -> &'static ResourceInfo {
        rkube_api::resources::find(RBAC_GROUP, "v1", plural).unwrap()
    }

    fn authz_with(objects: &[(&str, Value)]) -> Authorizer {
        let authz = Authorizer::default();
        {
            let mut idx = authz.index_mut();
            for (key, obj) in objects {
                idx.apply(&format!("{}{key}", rbac::PREFIX), Some(obj));
            }
        }
        authz
    }

    #[test]
    fn refuses_rules_the_user_does_not_hold() {
        let authz = authz_with(&[
            (
                "clusterroles/pod-reader",
                json!({"metadata": {"name": "pod-reader"}, "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}),
            ),
            (
                "clusterroles/admin-ish",
                json!({"metadata": {"name": "admin-ish"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
            (
                "rolebindings/ns/alice",
                json!({"metadata": {"name": "alice", "namespace": "ns"}, "roleRef": {"kind": "ClusterRole", "name": "pod-reader", "apiGroup": RBAC_GROUP}, "subjects": [{"kind": "User", "name": "alice"}]}),
            ),
        ]);
        let alice = UserInfo {
            name: "alice".into(),
            groups: vec!["devs".into(), "system:authenticated".into()],
            ..Default::default()
        };
        let held = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        assert!(check_write(&authz, &alice, info("roles"), "ns", "", &held, None).is_ok());
        // Not in another namespace.
        let err = check_write(&authz, &alice, info("roles"), "other", "", &held, None).unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.0.message,
            "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"alice\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}"
        );
        let binding = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "admin-ish", "apiGroup": RBAC_GROUP}, "subjects": [{"kind": "User", "name": "bob"}]});
        let err = check_write(
            &authz,
            &alice,
            info("rolebindings"),
            "ns",
            "",
            &binding,
            None,
        )
        .unwrap_err();
        assert!(
            err.0.message.starts_with(
                "rolebindings.rbac.authorization.k8s.io \"b\" is forbidden: user \"alice\""
            ),
            "{}",
            err.0.message
        );
        let own = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "pod-reader", "apiGroup": RBAC_GROUP}});
        assert!(check_write(&authz, &alice, info("rolebindings"), "ns", "", &own, None).is_ok());
        let missing = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "nope", "apiGroup": RBAC_GROUP}});
        let err = check_write(
            &authz,
            &alice,
            info("rolebindings"),
            "ns",
            "",
            &missing,
            None,
        )
        .unwrap_err();
        assert_eq!(
            (err.code(), err.0.message.as_str()),
            (404, "roles.rbac.authorization.k8s.io \"nope\" not found")
        );
        // system:masters may grant anything.
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        assert!(check_write(
            &authz,
            &admin,
            info("rolebindings"),
            "ns",
            "",
            &binding,
            None
        )
        .is_ok());
    }

    #[test]
    fn bind_and_escalate_verbs_lift_the_check() {
        let authz = authz_with(&[
            (
                "clusterroles/binder",
                json!({"metadata": {"name": "binder"}, "rules": [
                {"verbs": ["bind"], "apiGroups": [RBAC_GROUP], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"]},
                {"verbs": ["escalate"], "apiGroups": [RBAC_GROUP], "resources": ["roles"]}]}),
            ),
            (
                "clusterrolebindings/carol",
                json!({"metadata": {"name": "carol"}, "roleRef": {"kind": "ClusterRole", "name": "binder"}, "subjects": [{"kind": "User", "name": "carol"}]}),
            ),
        ]);
        let carol = UserInfo {
            name: "carol".into(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        let bind_admin = json!({"metadata": {"name": "x"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin", "apiGroup": RBAC_GROUP}});
        assert!(check_write(
            &authz,
            &carol,
            info("clusterrolebindings"),
            "",
            "",
            &bind_admin,
            None
        )
        .is_ok());
        let role = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]});
        assert!(check_write(&authz, &carol, info("roles"), "ns", "", &role, None).is_ok());
        let err =
            check_write(&authz, &carol, info("clusterroles"), "", "", &role, None).unwrap_err();
        assert_eq!(err.code(), 403);
        // Touching only owner references is not a grant.
        let mut owned = role.clone();
        owned["metadata"]["ownerReferences"] = json!([{"name": "o"}]);
        assert!(check_write(
            &authz,
            &carol,
            info("clusterroles"),
            "",
            "r",
            &owned,
            Some(&role)
        )
        .is_ok());
    }
}
