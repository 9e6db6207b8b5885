//! The User-Agent each rkube client sends, in client-go's form, so the API server names
//! the field manager of its writes as upstream does (`kube-controller-manager`,
//! `kube-scheduler`, `kubelet`, ...).

use axum::http::{header, HeaderValue};

/// client-go's default agent for `component`: `NAME/VERSION (OS/ARCH) kubernetes/COMMIT`,
/// with `/SUFFIX` appended as `rest.AddUserAgent` does (the controller manager adds each
/// controller's service account name).
pub(crate) fn user_agent(component: &str, suffix: Option<&str>) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut agent = format!(
        "{component}/v1.37.0+rkube.{} ({}/{arch}) kubernetes/rkube",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS
    );
    if let Some(suffix) = suffix {
        agent.push('/');
        agent.push_str(suffix);
    }
    agent
}

/// The header value of [`user_agent`]; falls back to the bare component name should the
/// suffix hold characters a header cannot.
pub(crate) fn header_value(component: &str, suffix: Option<&str>) -> HeaderValue {
    HeaderValue::from_str(&user_agent(component, suffix))
        .unwrap_or_else(|_| HeaderValue::from_static("rkube"))
}

/// Sets `agent` as the User-Agent of every request through an in-process router that
/// does not carry one (kube's client sends none of its own), and asks for lists and
/// watches without `managedFields`, which rkube's components never read.
pub(crate) fn layer(router: axum::Router, agent: HeaderValue) -> axum::Router {
    router.layer(axum::middleware::map_request(
        move |mut request: axum::extract::Request| {
            let agent = agent.clone();
            async move {
                let headers = request.headers_mut();
                headers.entry(header::USER_AGENT).or_insert(agent);
                headers
                    .entry(rkube_apiserver::OMIT_MANAGED_FIELDS)
                    .or_insert(HeaderValue::from_static("true"));
                request
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_manager_is_the_component_name() {
        let agent = user_agent("kube-controller-manager", Some("replicaset-controller"));
        assert_eq!(agent.split('/').next(), Some("kube-controller-manager"));
        assert!(
            agent.ends_with("kubernetes/rkube/replicaset-controller"),
            "{agent}"
        );
        assert!(user_agent("kube-scheduler", None).starts_with("kube-scheduler/v1.37.0"));
    }
}
