//! Impersonation (`kubectl --as`, `--as-group`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-*` headers switch the
//! request's user, each one allowed only if the requester may `impersonate` it (users,
//! groups, service accounts, uids, user extras), as upstream's impersonation filter does.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::attributes::Attributes;
use super::{forbidden, Authorizer};
use crate::auth::UserInfo;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// One thing the request asks to act as.
#[derive(Debug)]
enum Target {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Uid(String),
    Extra { key: String, value: String },
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::User(n) => format!("{{User  {n}  }}"),
            Target::ServiceAccount { namespace, name } => {
                format!("{{ServiceAccount {namespace} {name}  }}")
            }
            Target::Group(n) => format!("{{Group  {n}  }}"),
            Target::Uid(u) => format!("{{UID  {u}  }}"),
            Target::Extra { key, value } => {
                format!("{{UserExtra  {value} authentication.k8s.io/v1 {key}}}")
            }
        }
    }
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user a request acts as: `user` itself when it asks for no impersonation, the
/// impersonated user when every part is allowed, else the error response.
pub fn resolve(
    authz: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
    path: &str,
) -> Result<UserInfo, Box<Response>> {
    let mut targets = Vec::new();
    let requested_user = headers
        .get(USER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !requested_user.is_empty() {
        let sa = requested_user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'));
        targets.push(match sa {
            Some((ns, name)) => Target::ServiceAccount {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            },
            None => Target::User(requested_user.to_owned()),
        });
    }
    let groups_specified = headers.contains_key(GROUP);
    for g in header_values(headers, GROUP) {
        targets.push(Target::Group(g.to_owned()));
    }
    let mut has_extra = false;
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            has_extra = true;
            if let Ok(value) = value.to_str() {
                targets.push(Target::Extra {
                    key: percent_decode(&key.to_ascii_lowercase()),
                    value: value.to_owned(),
                });
            }
        }
    }
    let uid = headers.get(UID).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !uid.is_empty() {
        targets.push(Target::Uid(uid.to_owned()));
    }
    if targets.is_empty() {
        return Ok(user);
    }
    if requested_user.is_empty() && (groups_specified || has_extra || !uid.is_empty()) {
        let described: Vec<String> = targets.iter().map(Target::describe).collect();
        let message = format!(
            "Internal Server Error: {}: requested [{}] without impersonating a user",
            super::rbac::go_quote(path),
            described.join(" ")
        );
        return Err(Box::new(
            (StatusCode::INTERNAL_SERVER_ERROR, message).into_response(),
        ));
    }

    let mut name = String::new();
    let mut groups: Vec<String> = Vec::new();
    let mut impersonated_uid = String::new();
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for target in &targets {
        let mut a = Attributes {
            user: user.clone(),
            verb: "impersonate".into(),
            resource_request: true,
            ..Default::default()
        };
        match target {
            Target::ServiceAccount {
                namespace,
                name: sa,
            } => {
                a.resource = "serviceaccounts".into();
                a.namespace = namespace.clone();
                a.name = sa.clone();
                name = format!("system:serviceaccount:{namespace}:{sa}");
                if !groups_specified {
                    groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Target::User(u) => {
                a.resource = "users".into();
                a.name = u.clone();
                name = u.clone();
            }
            Target::Group(g) => {
                a.resource = "groups".into();
                a.name = g.clone();
                groups.push(g.clone());
            }
            Target::Uid(u) => {
                impersonated_uid = u.clone();
                a.api_group = "authentication.k8s.io".into();
                a.resource = "uids".into();
                a.name = u.clone();
            }
            Target::Extra { key, value } => {
                extra.entry(key.clone()).or_default().push(value.clone());
                a.api_group = "authentication.k8s.io".into();
                a.resource = "userextras".into();
                a.subresource = key.clone();
                a.name = value.clone();
            }
        }
        let decision = authz.authorize(&a);
        if !decision.allowed() {
            return Err(Box::new(forbidden(&a, decision.reason()).into_response()));
        }
    }
    if name == "system:anonymous" {
        if !groups.iter().any(|g| g == "system:unauthenticated") {
            groups.push("system:unauthenticated".into());
        }
    } else if !groups
        .iter()
        .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name,
        uid: impersonated_uid,
        groups,
        extra,
    })
}

/// Upstream percent-encodes extra keys in `Impersonate-Extra-<key>` header names.
fn percent_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && key.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
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

    #[test]
    fn impersonates_only_when_allowed() {
        let authz = Authorizer::default();
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            ..Default::default()
        };
        let as_alice = resolve(
            &authz,
            admin.clone(),
            &headers(&[("impersonate-user", "alice"), ("impersonate-group", "devs")]),
            "/",
        )
        .unwrap();
        assert_eq!(
            as_alice,
            UserInfo {
                name: "alice".into(),
                groups: vec!["devs".into(), "system:authenticated".into()],
                ..Default::default()
            }
        );
        let sa = resolve(
            &authz,
            admin.clone(),
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
        assert!(resolve(
            &authz,
            admin.clone(),
            &headers(&[("impersonate-group", "devs")]),
            "/"
        )
        .is_err());
        let bob = UserInfo {
            name: "bob".into(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        let denied =
            resolve(&authz, bob, &headers(&[("impersonate-user", "alice")]), "/").unwrap_err();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        let unchanged = resolve(&authz, admin.clone(), &HeaderMap::new(), "/").unwrap();
        assert_eq!(unchanged, admin);
    }
}
