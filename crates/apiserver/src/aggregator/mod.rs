//! API aggregation (upstream's kube-aggregator inside the API server).
//!
//! `apiregistration.k8s.io/v1` APIServices name who serves each `/apis/<group>/<version>`:
//! `spec.service: null` is this server (the local APIServices for every built-in and CRD
//! group/version are kept by [`controller`]); otherwise requests under that path are
//! authenticated and authorized here, then proxied ([`proxy`]) over TLS to the Service's
//! backend, verified with `caBundle` (or not, with `insecureSkipTLSVerify`), presenting
//! the front-proxy client certificate and the caller in `X-Remote-*` headers.
//!
//! The Service is resolved to one ready address of its EndpointSlices (upstream's
//! `--enable-aggregator-routing`): a one-host cluster has no kube-proxy to route a
//! ClusterIP. [`controller`] keeps each APIService's `Available` condition with
//! upstream's reasons and fetches the backend's discovery document, which
//! [`crate::discovery`] merges into `/apis` and aggregated discovery. Everything the
//! request path reads is the in-memory [`Aggregator`] table the controller rebuilds.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use serde_json::Value;

pub mod controller;
pub mod proxy;
pub mod request_header;

/// Upstream's availability re-check period.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the aggregator needs from the server's PKI.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster CA (PEM): `client-ca-file` of `extension-apiserver-authentication`.
    pub client_ca_pem: String,
    /// The front-proxy CA, DER and PEM (`requestheader-client-ca-file`).
    pub front_proxy_ca_der: Vec<u8>,
    pub front_proxy_ca_pem: String,
    /// The proxy client certificate and key (PEM), CN `front-proxy-client`.
    pub proxy_cert_pem: String,
    pub proxy_key_pem: String,
    /// How often every APIService is re-checked.
    pub recheck: Duration,
}

/// Configures the aggregator, publishes `kube-system/extension-apiserver-authentication`,
/// registers the local APIServices and starts the availability controller.
pub async fn start(state: &Arc<crate::ApiState>, config: &Config) -> Result<(), String> {
    let a = &state.aggregator;
    let _ = a.identity.set(proxy::ProxyIdentity::from_pem(
        &config.proxy_cert_pem,
        &config.proxy_key_pem,
    )?);
    let _ = a.front_proxy_ca.set(config.front_proxy_ca_der.clone());
    let _ = a.interval.set(config.recheck);
    publish_authentication_config(state, config).await?;
    controller::start(state).await;
    Ok(())
}

/// Upstream's `extension-apiserver-authentication` ConfigMap, from which extension API
/// servers learn how to verify this server's clients and proxied requests.
async fn publish_authentication_config(
    state: &Arc<crate::ApiState>,
    config: &Config,
) -> Result<(), String> {
    let list = |items: &[&str]| serde_json::to_string(items).unwrap_or_default();
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": {
            "client-ca-file": config.client_ca_pem,
            "requestheader-client-ca-file": config.front_proxy_ca_pem,
            "requestheader-allowed-names": list(request_header::ALLOWED_NAMES),
            "requestheader-username-headers": list(&[request_header::USERNAME_HEADER]),
            "requestheader-uid-headers": list(&[request_header::UID_HEADER]),
            "requestheader-group-headers": list(&[request_header::GROUP_HEADER]),
            "requestheader-extra-headers-prefix": list(&[request_header::EXTRA_PREFIX]),
        },
    });
    let (code, answer) = crate::internal_apply(
        state,
        "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication?fieldManager=kube-apiserver&force=true",
        &body,
    )
    .await;
    if code.is_success() {
        Ok(())
    } else {
        Err(format!(
            "cannot publish kube-system/extension-apiserver-authentication: {code} {answer}"
        ))
    }
}

/// The group/versions served by remote backends, and how to reach them.
pub struct Aggregator {
    remotes: RwLock<Arc<Vec<Arc<Remote>>>>,
    identity: OnceLock<proxy::ProxyIdentity>,
    front_proxy_ca: OnceLock<Vec<u8>>,
    interval: OnceLock<Duration>,
    /// Wakes the availability controller (APIService, Service or EndpointSlice changes).
    pub(crate) wake: tokio::sync::Notify,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator {
            remotes: RwLock::new(Arc::new(Vec::new())),
            identity: OnceLock::new(),
            front_proxy_ca: OnceLock::new(),
            interval: OnceLock::new(),
            wake: tokio::sync::Notify::new(),
        }
    }
}

/// One APIService with a `spec.service`, as the request path needs it.
#[derive(Debug)]
pub struct Remote {
    /// The APIService's name (`<version>.<group>`).
    pub name: String,
    pub group: String,
    pub version: String,
    pub group_priority_minimum: i64,
    pub version_priority: i64,
    /// `Available=True`.
    pub available: bool,
    /// Where requests go (`host:port` of a ready endpoint), and how to speak TLS to it.
    pub(crate) backend: Option<proxy::Backend>,
    /// The backend's `APIResourceList.resources`, from its last successful discovery.
    pub resources: Option<Vec<Value>>,
}

impl Aggregator {
    /// Request-header authentication of a connection's verified client certificate (its
    /// chain is checked against the front-proxy CA on the connection's first request).
    pub fn request_header_user(
        &self,
        peer: &crate::tls::PeerCertificate,
        headers: &axum::http::HeaderMap,
    ) -> request_header::Outcome {
        let Some(ca) = self.front_proxy_ca.get() else {
            return request_header::Outcome::NotFrontProxy;
        };
        let cert = peer
            .front_proxy
            .get_or_init(|| request_header::front_proxy_cert(ca, &peer.der));
        request_header::authenticate(cert.as_ref(), headers)
    }

    pub(crate) fn identity(&self) -> Option<&proxy::ProxyIdentity> {
        self.identity.get()
    }

    pub(crate) fn check_interval(&self) -> Duration {
        self.interval
            .get()
            .copied()
            .unwrap_or(DEFAULT_CHECK_INTERVAL)
    }

    /// Every remote group/version now.
    pub fn remotes(&self) -> Arc<Vec<Arc<Remote>>> {
        self.remotes.read().expect("aggregator lock").clone()
    }

    pub(crate) fn replace(&self, remotes: Vec<Arc<Remote>>) {
        *self.remotes.write().expect("aggregator lock") = Arc::new(remotes);
    }

    /// The remote serving `path` (`/apis/<group>/<version>[/...]`), if any.
    pub fn remote_for(&self, path: &str) -> Option<Arc<Remote>> {
        let mut parts = path.strip_prefix("/apis/")?.splitn(3, '/');
        let group = parts.next()?;
        let version = parts.next()?;
        if group.is_empty() || version.is_empty() {
            return None;
        }
        self.remotes
            .read()
            .expect("aggregator lock")
            .iter()
            .find(|r| r.group == group && r.version == version)
            .cloned()
    }

    /// Remote groups with their versions, highest `versionPriority` first, groups by
    /// `groupPriorityMinimum` (highest first) then name.
    pub fn groups(&self) -> Vec<(String, Vec<Arc<Remote>>)> {
        let mut by_group: BTreeMap<String, Vec<Arc<Remote>>> = BTreeMap::new();
        for r in self.remotes().iter() {
            by_group.entry(r.group.clone()).or_default().push(r.clone());
        }
        let mut groups: Vec<(String, Vec<Arc<Remote>>)> = by_group.into_iter().collect();
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| {
                b.version_priority
                    .cmp(&a.version_priority)
                    .then_with(|| kube_version_order(&b.version, &a.version))
            });
        }
        groups.sort_by(|(ga, a), (gb, b)| {
            let pa = a.iter().map(|r| r.group_priority_minimum).max();
            let pb = b.iter().map(|r| r.group_priority_minimum).max();
            pb.cmp(&pa).then_with(|| ga.cmp(gb))
        });
        groups
    }
}

/// Upstream's version ordering (GA > beta > alpha, then by number), for ties in
/// `versionPriority`: `Greater` when `a` sorts first.
fn kube_version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, u64, u64, String) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0, v.to_owned());
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(major) = digits.parse::<u64>() else {
            return (0, 0, 0, v.to_owned());
        };
        let tail = &rest[digits.len()..];
        let (level, n) = if tail.is_empty() {
            (3, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (2, n.parse().unwrap_or(0))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n.parse().unwrap_or(0))
        } else {
            return (0, 0, 0, v.to_owned());
        };
        (level, major, n, String::new())
    }
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0)
        .then(ka.1.cmp(&kb.1))
        .then(ka.2.cmp(&kb.2))
        .then_with(|| kb.3.cmp(&ka.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(group: &str, version: &str, gp: i64, vp: i64) -> Arc<Remote> {
        Arc::new(Remote {
            name: format!("{version}.{group}"),
            group: group.into(),
            version: version.into(),
            group_priority_minimum: gp,
            version_priority: vp,
            available: true,
            backend: None,
            resources: None,
        })
    }

    #[test]
    fn lookup_and_order() {
        let a = Aggregator::default();
        a.replace(vec![
            remote("b.example.com", "v1beta1", 100, 10),
            remote("b.example.com", "v1", 100, 10),
            remote("b.example.com", "v2alpha1", 100, 10),
            remote("a.example.com", "v1", 100, 5),
            remote("metrics.k8s.io", "v1beta1", 200, 15),
        ]);
        assert_eq!(
            a.remote_for("/apis/b.example.com/v1/namespaces/x/things")
                .unwrap()
                .name,
            "v1.b.example.com"
        );
        assert!(a.remote_for("/apis/b.example.com").is_none());
        assert!(a.remote_for("/apis/b.example.com/v3").is_none());
        assert!(a.remote_for("/api/v1").is_none());
        let groups: Vec<(String, Vec<String>)> = a
            .groups()
            .into_iter()
            .map(|(g, v)| (g, v.iter().map(|r| r.version.clone()).collect()))
            .collect();
        assert_eq!(
            groups,
            vec![
                ("metrics.k8s.io".into(), vec!["v1beta1".into()]),
                ("a.example.com".into(), vec!["v1".into()]),
                (
                    "b.example.com".into(),
                    vec!["v1".into(), "v1beta1".into(), "v2alpha1".into()]
                ),
            ]
        );
    }
}
