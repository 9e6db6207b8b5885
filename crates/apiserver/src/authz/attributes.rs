//! What a request asks to do, in authorization terms (upstream's `RequestInfo` and
//! authorizer `Attributes`): the verb (`get`, `list`, `watch`, `create`, …, or the lowercase
//! HTTP method for non-resource paths), API group, resource, subresource, name and
//! namespace, or the path of a non-resource request.

use crate::auth::UserInfo;
use crate::query::Query;

/// The attributes one authorization decision is made on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    /// A request for an API resource (else a non-resource path like `/healthz`).
    pub resource_request: bool,
    /// The URL path (used for non-resource requests).
    pub path: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
}

/// Subresources of a namespace, told apart from namespaced resources after
/// `/namespaces/<name>/`.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Whether a name from a field selector may stand for the object's name in a path
/// (upstream's `IsValidPathSegmentName`).
fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

impl Attributes {
    /// Parses a request as upstream's `RequestInfoFactory` does (API prefixes `api` and
    /// `apis`, the former without a group).
    pub fn from_request(user: UserInfo, method: &str, path: &str, query: Option<&str>) -> Self {
        let mut a = Attributes {
            user,
            verb: method.to_ascii_lowercase(),
            path: path.to_owned(),
            ..Default::default()
        };
        let trimmed = path.trim_matches('/');
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        if parts.len() < 3 {
            return a;
        }
        let mut rest: &[&str] = match parts[0] {
            "api" => &parts[1..],
            "apis" if parts.len() >= 4 => {
                a.api_group = parts[1].to_owned();
                &parts[2..]
            }
            _ => return a,
        };
        a.resource_request = true;
        a.api_version = rest[0].to_owned();
        rest = &rest[1..];
        if matches!(rest[0], "watch" | "proxy") {
            a.verb = rest[0].to_owned();
            if rest.len() < 2 {
                // Upstream fails here; the request is refused as the bare verb.
                return a;
            }
            rest = &rest[1..];
        } else {
            a.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            a.namespace = rest[1].to_owned();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        if rest.len() >= 3 && a.verb != "proxy" {
            a.subresource = rest[2].to_owned();
        }
        if rest.len() >= 2 {
            a.name = rest[1].to_owned();
        }
        a.resource = rest[0].to_owned();
        if a.name.is_empty() && a.verb == "get" {
            let query = Query::parse(query);
            a.verb = match query.get("watch") {
                Some(w) if !matches!(w.to_ascii_lowercase().as_str(), "false" | "0") => "watch",
                _ => "list",
            }
            .to_owned();
            if let Some(selector) = query.get("fieldSelector") {
                if let Ok(fs) = rkube_api::FieldSelector::parse(selector) {
                    if let Some(name) = fs.requires_exact_match("metadata.name") {
                        if valid_path_segment(name) {
                            a.name = name.to_owned();
                        }
                    }
                }
            }
        }
        if a.name.is_empty() && a.verb == "delete" {
            a.verb = "deletecollection".into();
        }
        a
    }

    /// The resource with its subresource, as rules and messages name it (`pods/log`).
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(method: &str, url: &str) -> Attributes {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        Attributes::from_request(UserInfo::anonymous(), method, path, query)
    }

    /// (method, url, resource request, verb, group, namespace, resource, subresource, name)
    type Case = (
        &'static str,
        &'static str,
        bool,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    #[test]
    fn parses_requests_as_upstream() {
        // (method, url, resource request, verb, group, namespace, resource, subresource, name)
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("GET", "/api/v1/namespaces", true, "list", "", "", "namespaces", "", ""),
            ("GET", "/api/v1/namespaces/other", true, "get", "", "other", "namespaces", "", "other"),
            ("GET", "/api/v1/namespaces/other/pods", true, "list", "", "other", "pods", "", ""),
            ("GET", "/api/v1/namespaces/other/pods/foo", true, "get", "", "other", "pods", "", "foo"),
            ("HEAD", "/api/v1/namespaces/other/pods/foo", true, "get", "", "other", "pods", "", "foo"),
            ("GET", "/api/v1/pods", true, "list", "", "", "pods", "", ""),
            ("GET", "/api/v1/namespaces/other/pods/foo/log", true, "get", "", "other", "pods", "log", "foo"),
            ("PUT", "/api/v1/namespaces/other/finalize", true, "update", "", "other", "namespaces", "finalize", "other"),
            ("PATCH", "/api/v1/namespaces/other/status", true, "patch", "", "other", "namespaces", "status", "other"),
            ("GET", "/api/v1/watch/pods", true, "watch", "", "", "pods", "", ""),
            ("GET", "/api/v1/pods?watch=true", true, "watch", "", "", "pods", "", ""),
            ("GET", "/api/v1/pods?watch=false", true, "list", "", "", "pods", "", ""),
            ("GET", "/api/v1/pods?watch=0", true, "list", "", "", "pods", "", ""),
            ("GET", "/api/v1/namespaces/a/pods/x?watch=true", true, "get", "", "a", "pods", "", "x"),
            ("GET", "/api/v1/watch/namespaces/other/pods", true, "watch", "", "other", "pods", "", ""),
            ("GET", "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dx", true, "list", "", "a", "pods", "", "x"),
            ("GET", "/api/v1/namespaces/a/pods?watch=1&fieldSelector=metadata.name%3Dx", true, "watch", "", "a", "pods", "", "x"),
            ("GET", "/api/v1/namespaces/a/pods?fieldSelector=metadata.name!%3Dx", true, "list", "", "a", "pods", "", ""),
            ("GET", "/api/v1/proxy/namespaces/a/pods/x/y", true, "proxy", "", "a", "pods", "", "x"),
            ("POST", "/api/v1/namespaces/other/pods", true, "create", "", "other", "pods", "", ""),
            ("POST", "/api/v1/namespaces/other/pods/x/binding", true, "create", "", "other", "pods", "binding", "x"),
            ("DELETE", "/api/v1/namespaces/other/pods/x", true, "delete", "", "other", "pods", "", "x"),
            ("DELETE", "/api/v1/namespaces/other/pods", true, "deletecollection", "", "other", "pods", "", ""),
            ("GET", "/apis/apps/v1/namespaces/a/deployments/d/scale", true, "get", "apps", "a", "deployments", "scale", "d"),
            ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", true, "list", "rbac.authorization.k8s.io", "", "clusterroles", "", ""),
            ("OPTIONS", "/api/v1/pods", true, "", "", "", "pods", "", ""),
            // Non-resource paths keep the lowercase method as their verb.
            ("GET", "/", false, "get", "", "", "", "", ""),
            ("GET", "/healthz", false, "get", "", "", "", "", ""),
            ("GET", "/healthz/etcd", false, "get", "", "", "", "", ""),
            ("GET", "/api", false, "get", "", "", "", "", ""),
            ("GET", "/api/v1", false, "get", "", "", "", "", ""),
            ("GET", "/apis", false, "get", "", "", "", "", ""),
            ("GET", "/apis/apps", false, "get", "", "", "", "", ""),
            ("GET", "/apis/apps/v1", false, "get", "", "", "", "", ""),
            ("GET", "/openapi/v3/apis/apps/v1", false, "get", "", "", "", "", ""),
            ("POST", "/metrics", false, "post", "", "", "", "", ""),
        ];
        for &(method, url, resource_request, verb, group, ns, resource, sub, name) in cases {
            let a = parse(method, url);
            assert_eq!(
                (
                    a.resource_request,
                    a.verb.as_str(),
                    a.api_group.as_str(),
                    a.namespace.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.name.as_str()
                ),
                (resource_request, verb, group, ns, resource, sub, name),
                "{method} {url}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(method in "(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|X)", path in "(/[a-z0-9.%*:]{0,6}){0,8}/?", query in proptest::option::of("[a-z=&%0-9.!]{0,30}")) {
            let a = Attributes::from_request(UserInfo::anonymous(), &method, &path, query.as_deref());
            let _ = a.combined_resource();
        }

        #[test]
        fn never_panics_on_any_text(path in "\\PC{0,60}", query in "\\PC{0,40}") {
            let _ = Attributes::from_request(UserInfo::anonymous(), "GET", &path, Some(&query));
        }
    }
}
