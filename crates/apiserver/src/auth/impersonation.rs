//! Impersonation (`kubectl --as`, `--as-group`, `--as-uid`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers make a
//! request act as another user, each part allowed only if the requester may
//! `impersonate` it ([`may_impersonate`]), as upstream's impersonation filter does.

use axum::http::HeaderMap;
use rkube_api::resources::GroupResource;
use rkube_api::Status;

use super::{UserInfo, AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP};
use crate::error::ApiError;

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
/// The group whose members may do anything, impersonation included.
const MASTERS_GROUP: &str = "system:masters";

/// What a request asks to act as; each is checked on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impersonated {
    /// A user name (resource `users`).
    User,
    /// A service account `system:serviceaccount:<namespace>:<name>` (resource
    /// `serviceaccounts` in the namespace; the name is the account's).
    ServiceAccount { namespace: String },
    /// A group (resource `groups`).
    Group,
    /// A uid (resource `uids` in `authentication.k8s.io`).
    Uid,
    /// One value of an extra key (resource `userextras/<key>` in `authentication.k8s.io`).
    Extra { key: String },
}

impl Impersonated {
    fn group_resource(&self) -> (GroupResource, String) {
        match self {
            Impersonated::User => (GroupResource::new("", "users"), "users".into()),
            Impersonated::ServiceAccount { .. } => (
                GroupResource::new("", "serviceaccounts"),
                "serviceaccounts".into(),
            ),
            Impersonated::Group => (GroupResource::new("", "groups"), "groups".into()),
            Impersonated::Uid => (
                GroupResource::new("authentication.k8s.io", "uids"),
                "uids".into(),
            ),
            Impersonated::Extra { key } => (
                GroupResource::new("authentication.k8s.io", "userextras"),
                format!("userextras/{key}"),
            ),
        }
    }
}

/// Whether `user` may impersonate `name` as `kind`.
///
/// This is the hook the RBAC authorizer plugs into: it becomes a check of the
/// `impersonate` verb on the resource [`Impersonated`] names (`users`, `groups`,
/// `serviceaccounts` in their namespace, `uids` and `userextras/<key>` in
/// `authentication.k8s.io`) with `name` as the resource name. Until then only members of
/// `system:masters` (who may do anything) may impersonate.
pub fn may_impersonate(user: &UserInfo, kind: &Impersonated, name: &str) -> bool {
    let _ = (kind, name);
    user.groups.iter().any(|g| g == MASTERS_GROUP)
}

/// Upstream's refusal: `users "alice" is forbidden: User "bob" cannot impersonate
/// resource "users" in API group "" at the cluster scope`.
fn forbidden(user: &UserInfo, kind: &Impersonated, name: &str) -> ApiError {
    let (gr, resource) = kind.group_resource();
    let scope = match kind {
        Impersonated::ServiceAccount { namespace } => format!("in the namespace \"{namespace}\""),
        _ => "at the cluster scope".into(),
    };
    let why = format!(
        "User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, gr.group
    );
    Status::forbidden(&gr, name, &why).into()
}

/// The user a request acts as: `user` itself without impersonation headers, else the
/// impersonated user when every part is allowed; a refused part is a 403, and groups,
/// uid or extras without a user a 500, as upstream answers.
pub fn resolve(user: UserInfo, headers: &HeaderMap, path: &str) -> Result<UserInfo, ApiError> {
    let text = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    };
    let name = text(USER_HEADER).into_iter().next().unwrap_or_default();
    let groups = text(GROUP_HEADER);
    let uid = text(UID_HEADER).into_iter().next().unwrap_or_default();
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (header, value) in headers {
        if let (Some(key), Ok(value)) = (header.as_str().strip_prefix(EXTRA_PREFIX), value.to_str())
        {
            extra
                .entry(percent_decode(key).to_ascii_lowercase())
                .or_default()
                .push(value.to_owned());
        }
    }
    if name.is_empty() {
        if groups.is_empty() && uid.is_empty() && extra.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::internal(format!(
            "{path:?}: requested impersonation of groups, uid or extra without impersonating a user"
        )));
    }

    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'));
    let mut checks: Vec<(Impersonated, String)> = Vec::new();
    match service_account {
        Some((namespace, sa)) => checks.push((
            Impersonated::ServiceAccount {
                namespace: namespace.to_owned(),
            },
            sa.to_owned(),
        )),
        None => checks.push((Impersonated::User, name.clone())),
    }
    checks.extend(groups.iter().map(|g| (Impersonated::Group, g.clone())));
    if !uid.is_empty() {
        checks.push((Impersonated::Uid, uid.clone()));
    }
    for (key, values) in &extra {
        for v in values {
            checks.push((Impersonated::Extra { key: key.clone() }, v.clone()));
        }
    }
    for (kind, target) in &checks {
        if !may_impersonate(&user, kind, target) {
            return Err(forbidden(&user, kind, target));
        }
    }

    let mut out_groups = groups;
    if let (Some((namespace, _)), true) = (service_account, out_groups.is_empty()) {
        out_groups = vec![
            super::service_account::ALL_SERVICE_ACCOUNTS_GROUP.into(),
            format!(
                "{}:{namespace}",
                super::service_account::ALL_SERVICE_ACCOUNTS_GROUP
            ),
        ];
    }
    let implied = if name == "system:anonymous" {
        UNAUTHENTICATED_GROUP
    } else {
        AUTHENTICATED_GROUP
    };
    if !out_groups.iter().any(|g| g == implied) {
        out_groups.push(implied.into());
    }
    Ok(UserInfo {
        name,
        uid,
        groups: out_groups,
        extra,
    })
}

/// Header names carry extra keys percent-encoded (`Impersonate-Extra-example.com%2fkey`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn admin() -> UserInfo {
        UserInfo::new(
            "admin",
            vec![MASTERS_GROUP.into(), AUTHENTICATED_GROUP.into()],
        )
    }

    #[test]
    fn masters_impersonate_users_groups_uids_and_extras() {
        let alice = resolve(
            admin(),
            &headers(&[
                ("impersonate-user", "alice"),
                ("impersonate-group", "devs"),
                ("impersonate-uid", "u-1"),
                ("impersonate-extra-scopes", "view"),
                ("impersonate-extra-example.com%2fteam", "blue"),
            ]),
            "/",
        )
        .unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "u-1");
        assert_eq!(alice.groups, ["devs", "system:authenticated"]);
        assert_eq!(alice.extra["scopes"], ["view"]);
        assert_eq!(alice.extra["example.com/team"], ["blue"]);
        let sa = resolve(
            admin(),
            &headers(&[("impersonate-user", "system:serviceaccount:ns:robot")]),
            "/",
        )
        .unwrap();
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        let anon = resolve(
            admin(),
            &headers(&[("impersonate-user", "system:anonymous")]),
            "/",
        )
        .unwrap();
        assert_eq!(anon.groups, ["system:unauthenticated"]);
        assert_eq!(resolve(admin(), &HeaderMap::new(), "/").unwrap(), admin());
        let groups_only = resolve(admin(), &headers(&[("impersonate-group", "devs")]), "/");
        assert_eq!(groups_only.unwrap_err().code(), 500);
    }

    #[test]
    fn others_are_refused_with_upstreams_message() {
        let bob = UserInfo::new("bob", vec![AUTHENTICATED_GROUP.into()]);
        let err =
            resolve(bob.clone(), &headers(&[("impersonate-user", "alice")]), "/").unwrap_err();
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.0.message,
            r#"users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let err = resolve(
            bob,
            &headers(&[("impersonate-user", "system:serviceaccount:ns:robot")]),
            "/",
        )
        .unwrap_err();
        assert_eq!(
            err.0.message,
            r#"serviceaccounts "robot" is forbidden: User "bob" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "ns""#
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
    }
}
