//! Turning a URL path into what it addresses (upstream's `RequestInfo`).

/// What an API path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/api` or `/apis`: the list of versions or groups.
    Root { legacy: bool },
    /// `/apis/<group>`.
    Group { group: String },
    /// `/api/v1` or `/apis/<group>/<version>`: the resource list.
    Version { group: String, version: String },
    /// A resource collection, object or subresource.
    Resource(ResourcePath),
}

/// A path under a group version that names resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// The plural resource name, e.g. `pods`.
    pub resource: String,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// The subresource, e.g. `status`.
    pub subresource: Option<String>,
    /// The deprecated `/watch/` path prefix was used.
    pub legacy_watch: bool,
}

/// Parses a request path. `is_namespace_subresource` tells whether a third segment
/// under `/namespaces/<name>/` is a subresource of the namespace (`status`, `finalize`)
/// rather than a namespaced resource.
pub fn parse(path: &str, is_namespace_subresource: impl Fn(&str) -> bool) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Some(Target::Root { legacy: true }),
        ["apis"] => return Some(Target::Root { legacy: false }),
        ["apis", group] => {
            return Some(Target::Group {
                group: (*group).to_owned(),
            })
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let mut path = ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        resource: String::new(),
        namespace: None,
        name: None,
        subresource: None,
        legacy_watch,
    };
    match rest {
        [] if !legacy_watch => {
            return Some(Target::Version {
                group: group.to_owned(),
                version: version.to_owned(),
            })
        }
        [] => return None,
        ["namespaces", ns, resource, tail @ ..] if !is_namespace_subresource(resource) => {
            path.namespace = Some((*ns).to_owned());
            path.resource = (*resource).to_owned();
            match tail {
                [] => {}
                [name] => path.name = Some((*name).to_owned()),
                [name, sub] => {
                    path.name = Some((*name).to_owned());
                    path.subresource = Some((*sub).to_owned());
                }
                _ => return None,
            }
        }
        [resource, tail @ ..] => {
            path.resource = (*resource).to_owned();
            match tail {
                [] => {}
                [name] => path.name = Some((*name).to_owned()),
                [name, sub] => {
                    path.name = Some((*name).to_owned());
                    path.subresource = Some((*sub).to_owned());
                }
                _ => return None,
            }
        }
    }
    Some(Target::Resource(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Option<Target> {
        parse(path, |s| s == "status" || s == "finalize")
    }

    fn res(
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Option<Target> {
        Some(Target::Resource(ResourcePath {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
            legacy_watch: false,
        }))
    }

    #[test]
    fn parses_upstream_paths() {
        assert_eq!(p("/api"), Some(Target::Root { legacy: true }));
        assert_eq!(p("/apis/"), Some(Target::Root { legacy: false }));
        assert_eq!(
            p("/apis/apps"),
            Some(Target::Group {
                group: "apps".into()
            })
        );
        assert_eq!(
            p("/api/v1"),
            Some(Target::Version {
                group: "".into(),
                version: "v1".into()
            })
        );
        assert_eq!(p("/api/v1/pods"), res("", "pods", None, None, None));
        assert_eq!(
            p("/api/v1/namespaces"),
            res("", "namespaces", None, None, None)
        );
        assert_eq!(
            p("/api/v1/namespaces/ns1"),
            res("", "namespaces", None, Some("ns1"), None)
        );
        assert_eq!(
            p("/api/v1/namespaces/ns1/status"),
            res("", "namespaces", None, Some("ns1"), Some("status"))
        );
        assert_eq!(
            p("/api/v1/namespaces/ns1/pods"),
            res("", "pods", Some("ns1"), None, None)
        );
        assert_eq!(
            p("/api/v1/namespaces/ns1/pods/a/log"),
            res("", "pods", Some("ns1"), Some("a"), Some("log"))
        );
        assert_eq!(
            p("/api/v1/nodes/n1/status"),
            res("", "nodes", None, Some("n1"), Some("status"))
        );
        assert_eq!(
            p("/apis/apps/v1/namespaces/d/deployments/x/scale"),
            res("apps", "deployments", Some("d"), Some("x"), Some("scale"))
        );
        let Some(Target::Resource(w)) = p("/api/v1/watch/namespaces/d/pods") else {
            panic!()
        };
        assert!(w.legacy_watch);
        assert_eq!(p("/api/v1/namespaces/a/pods/b/c/d"), None);
        assert_eq!(p("/foo"), None);
        assert_eq!(p("/api/v1//pods"), None);
    }
}
