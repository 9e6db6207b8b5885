//! The `default/kubernetes` Service and its endpoints: upstream's kubernetesservice
//! controller plus the lease-less endpoint reconciler of a single API server.
//!
//! The Service gets the first IP of the service CIDR and port 443 `https` pointing at the
//! secure port; its Endpoints (labelled `endpointslice.kubernetes.io/skip-mirror`, so the
//! mirroring controller leaves them alone) and EndpointSlice (`kubernetes.io/service-name`
//! only, as upstream's EndpointsAdapter writes it) carry the advertise address. Every write
//! goes through the full API path as the server itself (field manager `kube-apiserver`).
//! A pass runs at start, on every change of the three objects and every 10 s (upstream's
//! endpoint reconciler interval), so a deleted or edited object comes back at once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use rkube_api::resources;
use serde_json::{json, Value};

use crate::ApiState;

/// The Service's namespace and name.
pub const NAMESPACE: &str = "default";
/// The Service's name.
pub const NAME: &str = "kubernetes";
/// Upstream's `EndpointReconcilerInterval`.
const INTERVAL: Duration = Duration::from_secs(10);
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where the Service points.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service IP range, `10.43.0.0/16`; the Service takes its first address.
    pub service_cidr: String,
    /// The address other hosts reach this API server at.
    pub advertise_address: IpAddr,
    /// The port this API server serves HTTPS on.
    pub secure_port: u16,
}

/// The first usable address of `cidr` (network address + 1), as upstream's
/// `ServiceIPRange` picks the API server's service IP.
pub fn first_ip(cidr: &str) -> Result<IpAddr, String> {
    let bad = || format!("invalid service CIDR {cidr:?}: expected e.g. 10.43.0.0/16");
    let (ip, bits) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    match ip {
        IpAddr::V4(v4) => {
            if bits > 30 {
                return Err(format!("service CIDR {cidr:?} is too small (at most /30)"));
            }
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            Ok(IpAddr::V4((u32::from(v4) & mask).wrapping_add(1).into()))
        }
        IpAddr::V6(v6) => {
            if bits > 126 {
                return Err(format!("service CIDR {cidr:?} is too small (at most /126)"));
            }
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            Ok(IpAddr::V6((u128::from(v6) & mask).wrapping_add(1).into()))
        }
    }
}

/// Runs the first pass (so the Service exists once the server is ready), then keeps the
/// objects in shape in the background.
pub async fn start(state: &Arc<ApiState>, config: Config) -> Result<(), String> {
    let service_ip = first_ip(&config.service_cidr)?;
    let reconciler = Arc::new(Reconciler { config, service_ip });
    reconciler.pass(state).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    for (group, plural) in [
        ("", "services"),
        ("", "endpoints"),
        ("discovery.k8s.io", "endpointslices"),
    ] {
        let info = resources::find(group, "v1", plural).expect("a built-in resource");
        tokio::spawn(follow(
            state.clone(),
            info.key(Some(NAMESPACE), NAME),
            wake.clone(),
        ));
    }
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = wake.notified() => {
                    // Let a burst of changes (our own writes too) settle into one pass.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                () = tokio::time::sleep(INTERVAL) => {}
            }
            reconciler.pass(&st).await;
        }
    });
    Ok(())
}

/// Wakes the loop on every change of the object at `key`.
async fn follow(state: Arc<ApiState>, key: String, wake: Arc<tokio::sync::Notify>) {
    loop {
        let watch = match state.store.current_revision().await {
            Ok(rev) => state.store.watch(&key, rev).await,
            Err(e) => Err(e),
        };
        match watch {
            Ok(mut w) => {
                while let Some(Ok(_)) = w.recv().await {
                    wake.notify_one();
                }
            }
            Err(e) => tracing::debug!(key, error = %e, "kubernetes service: watch failed"),
        }
        wake.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Reconciler {
    config: Config,
    service_ip: IpAddr,
}

impl Reconciler {
    async fn pass(&self, state: &Arc<ApiState>) {
        for (what, desired, path) in [
            (
                "service",
                self.service(),
                "/api/v1/namespaces/default/services",
            ),
            (
                "endpoints",
                self.endpoints(),
                "/api/v1/namespaces/default/endpoints",
            ),
            (
                "endpointslice",
                self.endpoint_slice(),
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            ),
        ] {
            if let Err(e) = ensure(state, path, desired).await {
                tracing::warn!(object.ref = "default/kubernetes", kind = what, error = %e, "cannot reconcile the kubernetes service");
            }
        }
    }

    fn service(&self) -> Value {
        let family = if self.service_ip.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": self.service_ip.to_string(),
                "clusterIPs": [self.service_ip.to_string()],
                "ipFamilies": [family],
                "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ports": [{
                    "name": "https",
                    "port": 443,
                    "protocol": "TCP",
                    "targetPort": self.config.secure_port,
                }],
            },
        })
    }

    fn endpoints(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {SKIP_MIRROR: "true"},
            },
            "subsets": [{
                "addresses": [{"ip": self.config.advertise_address.to_string()}],
                "ports": [{"name": "https", "port": self.config.secure_port, "protocol": "TCP"}],
            }],
        })
    }

    fn endpoint_slice(&self) -> Value {
        let address_type = if self.config.advertise_address.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        };
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {SERVICE_NAME_LABEL: NAME},
            },
            "addressType": address_type,
            "endpoints": [{
                "addresses": [self.config.advertise_address.to_string()],
                "conditions": {"ready": true},
            }],
            "ports": [{"name": "https", "port": self.config.secure_port, "protocol": "TCP"}],
        })
    }
}

/// The fields this reconciler owns on each kind (upstream repairs the Service's ports and
/// type, the Endpoints' subsets and labels, the slice's endpoints, ports and labels).
fn owned_fields(kind: &str) -> &'static [&'static [&'static str]] {
    match kind {
        "Service" => &[&["spec", "type"], &["spec", "ports"]],
        "Endpoints" => &[&["subsets"], &["metadata", "labels"]],
        _ => &[
            &["endpoints"],
            &["ports"],
            &["addressType"],
            &["metadata", "labels"],
        ],
    }
}

fn field<'a>(obj: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(obj, |v, k| &v[*k])
}

/// Whether `current` differs from `desired` in any owned field: labels exactly (upstream
/// resets them), the rest on the keys we set, as the server defaults others.
fn needs_update(kind: &str, current: &Value, desired: &Value) -> bool {
    owned_fields(kind).iter().any(|path| {
        let want = field(desired, path);
        let have = field(current, path);
        if path.last() == Some(&"labels") {
            have != want
        } else {
            !covers(have, want)
        }
    })
}

/// `have` holds everything `want` says (objects on `want`'s keys, arrays element by
/// element with equal length).
fn covers(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| covers(hv, v))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| covers(a, b))
        }
        _ => have == want,
    }
}

/// Creates the object if missing, else puts back the owned fields if they drifted.
async fn ensure(state: &Arc<ApiState>, collection: &str, desired: Value) -> Result<(), String> {
    let path = format!("{collection}/{NAME}");
    let kind = desired["kind"].as_str().unwrap_or_default().to_owned();
    let (code, current) = crate::internal_request(state, Method::GET, &path, None).await;
    if code == StatusCode::NOT_FOUND {
        let (code, answer) =
            crate::internal_request(state, Method::POST, collection, Some(&desired)).await;
        return match code {
            c if c.is_success() || c == StatusCode::CONFLICT => Ok(()),
            c => Err(format!("create {path}: {c} {}", answer["message"])),
        };
    }
    if !code.is_success() {
        return Err(format!("get {path}: {code} {}", current["message"]));
    }
    if !needs_update(&kind, &current, &desired) {
        return Ok(());
    }
    let mut updated = current.clone();
    for path in owned_fields(&kind) {
        let value = field(&desired, path).clone();
        let (last, parents) = path.split_last().expect("non-empty field path");
        let mut target = &mut updated;
        for p in parents {
            target = &mut target[*p];
        }
        target[*last] = value;
    }
    tracing::warn!(object.ref = "default/kubernetes", kind, "resetting the kubernetes service object");
    let (code, answer) = crate::internal_request(state, Method::PUT, &path, Some(&updated)).await;
    match code {
        // A concurrent writer wins; the next pass looks again.
        c if c.is_success() || c == StatusCode::CONFLICT => Ok(()),
        c => Err(format!("update {path}: {c} {}", answer["message"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ip_of_the_range() {
        assert_eq!(first_ip("10.43.0.0/16").unwrap().to_string(), "10.43.0.1");
        assert_eq!(first_ip("10.0.0.0/24").unwrap().to_string(), "10.0.0.1");
        assert_eq!(first_ip("10.96.5.7/12").unwrap().to_string(), "10.96.0.1");
        assert_eq!(first_ip("fd00::/108").unwrap().to_string(), "fd00::1");
        assert!(first_ip("10.0.0.0/31").is_err());
        assert!(first_ip("nonsense").is_err());
    }

    #[test]
    fn drift_is_detected_on_owned_fields_only() {
        let r = Reconciler {
            config: Config {
                service_cidr: "10.43.0.0/16".into(),
                advertise_address: "192.0.2.1".parse().unwrap(),
                secure_port: 6443,
            },
            service_ip: "10.43.0.1".parse().unwrap(),
        };
        let mut svc = r.service();
        svc["metadata"]["labels"]["extra"] = json!("x");
        svc["spec"]["ports"][0]["appProtocol"] = json!("https");
        assert!(!needs_update("Service", &svc, &r.service()));
        svc["spec"]["ports"][0]["port"] = json!(8443);
        assert!(needs_update("Service", &svc, &r.service()));

        let mut eps = r.endpoints();
        assert!(!needs_update("Endpoints", &eps, &r.endpoints()));
        eps["metadata"]["labels"]["extra"] = json!("x");
        assert!(needs_update("Endpoints", &eps, &r.endpoints()));

        let mut slice = r.endpoint_slice();
        assert!(!needs_update("EndpointSlice", &slice, &r.endpoint_slice()));
        slice["endpoints"][0]["addresses"][0] = json!("192.0.2.9");
        assert!(needs_update("EndpointSlice", &slice, &r.endpoint_slice()));
    }
}
