//! The EndpointSlice mirroring controller (upstream `endpointslice-mirroring-controller`):
//! a Service without a selector whose Endpoints were written by hand gets EndpointSlices
//! mirroring them, labelled `endpointslice.kubernetes.io/managed-by:
//! endpointslicemirroring-controller.k8s.io` and owned by the Service. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"` (the API server's own `kubernetes`
//! endpoints) and Services with a selector are left alone, and their mirrored slices go.
//! At most [`MAX_ENDPOINTS_PER_SUBSET`] addresses of each subset are mirrored, as
//! upstream's `--mirroring-max-endpoints-per-subset` default.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::endpointslice::{MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use crate::streams::touched;
use crate::Context;

/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";
/// The label that opts an Endpoints object out of mirroring.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// `--mirroring-max-endpoints-per-subset`'s default: addresses mirrored per subset, and
/// endpoints per slice.
pub const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
/// Annotations of the Endpoints that are not copied onto its slices.
const UNCOPIED_ANNOTATIONS: [&str; 2] = [
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
];

struct Ctx {
    cx: Context,
    endpoints: Store<Endpoints>,
    slices: Store<EndpointSlice>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot mirror endpoints {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: String,
    source: kube::Error,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let (endpoints, ep_events) = cx.informers.all::<Endpoints>(Default::default()).await;
    let (services, svc_events) = cx.informers.all::<Service>(Default::default()).await;
    let (slices, slice_events) = cx.informers.all::<EndpointSlice>(managed).await;
    let ctx = Arc::new(Ctx {
        cx,
        endpoints,
        slices,
    });
    // Keyed by Service (an Endpoints object mirrors only with its Service); a deleted
    // Service's slices go with it through their owner reference.
    Controller::for_shared_stream(
        crate::metrics::queue().trigger(touched(svc_events)),
        services,
    )
    .watches_shared_stream(touched(ep_events), |ep: Arc<Endpoints>| {
        Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace()?))
    })
    .watches_shared_stream(touched(slice_events), |s: Arc<EndpointSlice>| {
        let name = s.labels().get(SERVICE_NAME_LABEL)?;
        Some(ObjectRef::new(name).within(&s.namespace()?))
    })
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        ctx,
    )
    .for_each(|_| async {})
    .await;
}

/// Whether `ep` of `svc` is mirrored (upstream's `shouldMirror` and Service check).
fn should_mirror(ep: Option<&Endpoints>, svc: &Service) -> bool {
    let Some(ep) = ep else {
        return false;
    };
    let skip = ep.labels().get(SKIP_MIRROR_LABEL).map(String::as_str) == Some("true");
    let selector = svc.spec.as_ref().and_then(|s| s.selector.as_ref());
    !skip && selector.is_none() && svc.metadata.deletion_timestamp.is_none()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.endpoints.wait_until_ready().await;
    let _ = ctx.slices.wait_until_ready().await;
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let err = |source| Error {
        namespace: ns.clone(),
        name: name.clone(),
        source,
    };
    let ep = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    let desired = match ep.as_deref() {
        Some(ep) if should_mirror(Some(ep), &svc) => desired_slices(ep, &svc),
        _ => Vec::new(),
    };
    let existing = ctx.slices.state_filter(|s| {
        s.namespace().as_deref() == Some(ns.as_str())
            && s.labels().get(SERVICE_NAME_LABEL) == Some(&name)
    });
    let api: Api<EndpointSlice> = Api::namespaced(ctx.cx.client.clone(), &ns);
    // Reuse existing slices of the same address type and ports, update those that
    // differ, create the rest, delete what is left over.
    let mut unused: Vec<Arc<EndpointSlice>> = existing;
    unused.sort_by_key(|s| s.name_any());
    for want in desired {
        let pos = unused
            .iter()
            .position(|s| s.address_type == want.address_type && s.ports == want.ports);
        match pos {
            Some(i) => {
                let have = unused.remove(i);
                if have.endpoints != want.endpoints
                    || have.metadata.labels != want.metadata.labels
                    || have.metadata.annotations != want.metadata.annotations
                {
                    let mut updated = (*have).clone();
                    updated.endpoints = want.endpoints;
                    updated.metadata.labels = want.metadata.labels;
                    updated.metadata.annotations = want.metadata.annotations;
                    updated.metadata.owner_references = want.metadata.owner_references;
                    api.replace(&have.name_any(), &PostParams::default(), &updated)
                        .await
                        .map_err(err)?;
                }
            }
            None => {
                api.create(&PostParams::default(), &want)
                    .await
                    .map_err(err)?;
            }
        }
    }
    for s in unused {
        match api.delete(&s.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::await_change())
}

/// The slices that mirror `ep` (a selector-less `svc`'s Endpoints): per subset and
/// address family, at most [`MAX_ENDPOINTS_PER_SUBSET`] addresses, ready then not ready,
/// chunked into slices of at most that many endpoints.
pub fn desired_slices(ep: &Endpoints, svc: &Service) -> Vec<EndpointSlice> {
    // (address type, ports) → endpoints, merged across subsets with equal ports.
    let mut groups: BTreeMap<(String, String), (Vec<EndpointPort>, Vec<Endpoint>)> =
        BTreeMap::new();
    for subset in ep.subsets.iter().flatten() {
        let ports = slice_ports(subset);
        let port_key = serde_json::to_string(&ports).unwrap_or_default();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        for (address, is_ready) in ready.chain(not_ready).take(MAX_ENDPOINTS_PER_SUBSET) {
            let Some(address_type) = address_type(&address.ip) else {
                continue;
            };
            let entry = groups
                .entry((address_type.to_owned(), port_key.clone()))
                .or_insert_with(|| (ports.clone(), Vec::new()));
            let endpoint = to_endpoint(address, is_ready);
            if !entry.1.iter().any(|e| e.addresses == endpoint.addresses) {
                entry.1.push(endpoint);
            }
        }
    }
    let mut out = Vec::new();
    for ((address_type, _), (ports, endpoints)) in groups {
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SUBSET) {
            out.push(EndpointSlice {
                metadata: slice_meta(ep, svc),
                address_type: address_type.clone(),
                endpoints: Some(chunk.to_vec()),
                ports: Some(ports.clone()),
            });
        }
    }
    out
}

fn address_type(ip: &str) -> Option<&'static str> {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => Some("IPv4"),
        Ok(std::net::IpAddr::V6(_)) => Some("IPv6"),
        // Upstream skips addresses that are not IPs.
        Err(_) => None,
    }
}

fn slice_ports(subset: &EndpointSubset) -> Vec<EndpointPort> {
    subset
        .ports
        .iter()
        .flatten()
        .map(|p| EndpointPort {
            name: p.name.clone(),
            port: Some(p.port),
            protocol: p.protocol.clone(),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

fn to_endpoint(a: &EndpointAddress, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        hostname: a.hostname.clone(),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    }
}

/// A new slice's metadata: `<endpoints>-` generated name, owned by the Service, the
/// Endpoints' labels and annotations plus the service-name and managed-by labels.
fn slice_meta(ep: &Endpoints, svc: &Service) -> ObjectMeta {
    let name = ep.name_any();
    let mut labels = ep.labels().clone();
    labels.remove(SKIP_MIRROR_LABEL);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let mut annotations = ep.annotations().clone();
    for a in UNCOPIED_ANNOTATIONS {
        annotations.remove(a);
    }
    ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: ep.namespace(),
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Service".into(),
            name: svc.name_any(),
            uid: svc.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        ..Default::default()
    }
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    let conflict = matches!(&error.source, kube::Error::Api(e) if e.code == 409);
    if !conflict {
        tracing::warn!(%error, "endpointslice-mirroring-controller");
    }
    Action::requeue(Duration::from_millis(if conflict { 200 } else { 2000 }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn svc(selector: Option<serde_json::Value>) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "ns", "uid": "u1"},
            "spec": {"selector": selector, "ports": [{"port": 80}]},
        }))
        .unwrap()
    }

    fn endpoints(labels: serde_json::Value, subsets: serde_json::Value) -> Endpoints {
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "ns", "labels": labels,
                "annotations": {"team": "a", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "subsets": subsets,
        }))
        .unwrap()
    }

    #[test]
    fn mirrors_only_selectorless_services_without_skip_mirror() {
        let ep = endpoints(json!({}), json!([]));
        assert!(should_mirror(Some(&ep), &svc(None)));
        assert!(!should_mirror(Some(&ep), &svc(Some(json!({"app": "x"})))));
        assert!(!should_mirror(None, &svc(None)));
        let skip = endpoints(json!({SKIP_MIRROR_LABEL: "true"}), json!([]));
        assert!(!should_mirror(Some(&skip), &svc(None)));
    }

    #[test]
    fn slices_per_family_and_ports_with_labels_and_owner() {
        let ep = endpoints(
            json!({"app": "db"}),
            json!([
                {"addresses": [{"ip": "10.0.0.1", "hostname": "a"}, {"ip": "fd00::1"}, {"ip": "10.0.0.1"}],
                 "notReadyAddresses": [{"ip": "10.0.0.2"}],
                 "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.0.0.4"}], "ports": [{"port": 9000}]},
            ]),
        );
        let slices = desired_slices(&ep, &svc(None));
        let summary: Vec<(String, Vec<(String, bool)>)> = slices
            .iter()
            .map(|s| {
                let eps = s
                    .endpoints
                    .iter()
                    .flatten()
                    .map(|e| {
                        (
                            e.addresses[0].clone(),
                            e.conditions.as_ref().unwrap().ready.unwrap(),
                        )
                    })
                    .collect();
                (s.address_type.clone(), eps)
            })
            .collect();
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert!(summary.contains(&(
            "IPv4".into(),
            vec![
                ("10.0.0.1".into(), true),
                ("10.0.0.2".into(), false),
                ("10.0.0.3".into(), true)
            ]
        )));
        assert!(summary.contains(&("IPv6".into(), vec![("fd00::1".into(), true)])));
        assert!(summary.contains(&("IPv4".into(), vec![("10.0.0.4".into(), true)])));
        let s = &slices[0];
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels[SERVICE_NAME_LABEL], "ext");
        assert_eq!(labels["app"], "db");
        let annotations = s.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.len(), 1, "{annotations:?}");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Service", "u1"));
        assert_eq!(s.metadata.generate_name.as_deref(), Some("ext-"));
    }

    #[test]
    fn at_most_max_endpoints_per_subset() {
        let addresses: Vec<_> = (0..1200)
            .map(|i| json!({"ip": format!("10.1.{}.{}", i / 250, i % 250)}))
            .collect();
        let ep = endpoints(
            json!({}),
            json!([{"addresses": addresses, "ports": [{"port": 1}]}]),
        );
        let slices = desired_slices(&ep, &svc(None));
        assert_eq!(slices.len(), 1);
        assert_eq!(
            slices[0].endpoints.as_ref().unwrap().len(),
            MAX_ENDPOINTS_PER_SUBSET
        );
    }
}
