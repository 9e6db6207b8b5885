//! Discovery of every served resource through the API (built-in, CRDs, aggregated APIs),
//! tolerant of failing groups as client-go's `ServerPreferredResources` is: the groups
//! that answered are returned together with the ones that did not.

use std::collections::BTreeMap;
use std::fmt;

use kube::discovery::ApiResource;
use kube::Client;

/// One discovered resource at its group's preferred version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    /// Whether the resource supports every one of `verbs`.
    pub fn supports(&self, verbs: &[&str]) -> bool {
        verbs.iter().all(|v| self.verbs.iter().any(|s| s == v))
    }
}

/// The groups discovery could not read, as client-go's `ErrGroupDiscoveryFailed`:
/// group version → the error's message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDiscoveryFailed(pub BTreeMap<String, String>);

impl fmt::Display for GroupDiscoveryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.0.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
        write!(
            f,
            "unable to retrieve the complete list of server APIs: {}",
            groups.join(", ")
        )
    }
}

/// The result of one discovery pass.
#[derive(Debug, Default)]
pub struct Discovered {
    pub resources: Vec<Resource>,
    /// Groups that failed (empty when discovery was complete).
    pub failed: GroupDiscoveryFailed,
}

impl Discovered {
    /// The resource serving `api_version`/`kind`, if discovered.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.api.api_version == api_version && r.api.kind == kind)
            .or_else(|| {
                // Another version of the same group serves the kind (ownerReferences may
                // name an older version).
                let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                self.resources
                    .iter()
                    .find(|r| r.api.group == group && r.api.kind == kind)
            })
    }
}

/// The message client-go gives an error from a discovery request.
pub fn error_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(s) => match s.code {
            // client-go's generic messages for bodies that are not a Status (an
            // aggregated API that is down answers 503 in plain text).
            503 if s.reason.is_empty() || s.reason == "Failed to parse error data" => {
                "the server is currently unable to handle the request".to_owned()
            }
            404 if s.reason.is_empty() || s.reason == "Failed to parse error data" => {
                "the server could not find the requested resource".to_owned()
            }
            _ if s.message.is_empty() => format!(
                "an error on the server ({}) has prevented the request from succeeding",
                s.code
            ),
            _ => s.message.clone(),
        },
        other => other.to_string(),
    }
}

/// Discovers every resource (subresources excluded) at each group's preferred version.
/// Fails only when the group lists themselves cannot be read.
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let mut out = Discovered::default();
    let core = client.list_core_api_versions().await?;
    let mut versions: Vec<(String, String)> = core
        .versions
        .first()
        .map(|v| (String::new(), v.clone()))
        .into_iter()
        .collect();
    for g in client.list_api_groups().await?.groups {
        let Some(v) = g.preferred_version.as_ref().or_else(|| g.versions.first()) else {
            continue;
        };
        versions.push((g.name.clone(), v.version.clone()));
    }
    for (group, version) in versions {
        let gv = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let list = if group.is_empty() {
            client.list_core_api_resources(&version).await
        } else {
            client.list_api_group_resources(&gv).await
        };
        let list = match list {
            Ok(l) => l,
            Err(e) => {
                out.failed.0.insert(gv, error_message(&e));
                continue;
            }
        };
        for r in list.resources {
            if r.name.contains('/') {
                continue;
            }
            out.resources.push(Resource {
                api: ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    api_version: gv.clone(),
                    kind: r.kind,
                    plural: r.name,
                },
                namespaced: r.namespaced,
                verbs: r.verbs,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_failure_reads_like_client_go() {
        let mut failed = GroupDiscoveryFailed::default();
        failed.0.insert(
            "metrics.k8s.io/v1beta1".into(),
            "the server is currently unable to handle the request".into(),
        );
        assert_eq!(
            failed.to_string(),
            "unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
    }

    #[test]
    fn plain_text_503_is_service_unavailable() {
        let status =
            kube::core::Status::failure("service unavailable", "Failed to parse error data")
                .with_code(503);
        assert_eq!(
            error_message(&kube::Error::Api(status.boxed())),
            "the server is currently unable to handle the request"
        );
    }
}
