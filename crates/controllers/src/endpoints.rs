//! The Endpoints controller (upstream `endpoints-controller`): every Service with a
//! selector has an Endpoints object of the same name listing its pods' addresses — ready
//! ones under `addresses`, the rest under `notReadyAddresses` (all under `addresses` with
//! `publishNotReadyAddresses`) — grouped into subsets by the ports they resolve. Endpoints
//! of a deleted Service are deleted; selector-less Services' Endpoints are left alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::endpoint_util::{self as util, PortKey, TriggerTimeTracker};
use crate::streams::touched;
use crate::Context;

/// The most addresses one Endpoints object holds; beyond it the list is truncated.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation marking truncated Endpoints.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints carrying this annotation belong to leader election, never to a Service.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

struct Ctx {
    cx: Context,
    recorder: kube::runtime::events::Recorder,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    triggers: Mutex<TriggerTimeTracker>,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (services, svc_events) = cx.informers.all::<Service>(Default::default()).await;
    let (pods, pod_events) = cx.informers.all::<Pod>(Default::default()).await;
    let (endpoints, ep_events) = cx.informers.all::<Endpoints>(Default::default()).await;
    let (deleted_tx, deleted_rx) = futures::channel::mpsc::unbounded();
    let svc_events = svc_events.inspect(move |ev| {
        if let watcher::Event::Delete(svc) = ev {
            let _ = deleted_tx.unbounded_send(svc.clone());
        }
    });
    let ctx = Arc::new(Ctx {
        recorder: crate::events::recorder(&cx, "endpoint-controller"),
        cx,
        pods,
        endpoints: endpoints.clone(),
        triggers: Mutex::default(),
    });
    let svc_store = services.clone();
    let ep_store = endpoints.clone();
    let controller = Controller::for_shared_stream(
        crate::metrics::queue().trigger(touched(svc_events)),
        services.clone(),
    )
    .watches_shared_stream(touched(pod_events), move |pod: Arc<Pod>| {
        services_for_pod(&svc_store, &ep_store, &pod)
    })
    .watches_shared_stream(touched(ep_events), |ep: Arc<Endpoints>| {
        Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default()))
    })
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        ctx.clone(),
    )
    .for_each(|_| async {});
    tokio::join!(controller, cleanup(ctx, services, deleted_rx));
}

/// The services whose endpoints a pod event may change: those selecting it now, and
/// those whose Endpoints still list it (its labels may have changed).
fn services_for_pod(
    services: &Store<Service>,
    endpoints: &Store<Endpoints>,
    pod: &Pod,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let uid = pod.uid();
    let mut refs = util::services_selecting(services, pod);
    for ep in endpoints.state() {
        if ep.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let lists_pod = ep.subsets.iter().flatten().any(|s| {
            s.addresses
                .iter()
                .chain(s.not_ready_addresses.iter())
                .flatten()
                .any(|a| a.target_ref.as_ref().and_then(|r| r.uid.as_ref()) == uid.as_ref())
        });
        if lists_pod {
            refs.insert(ObjectRef::new(&ep.name_any()).within(&ns));
        }
    }
    refs.into_iter().collect()
}

/// Deletes the Endpoints of deleted Services, and at start those left over from Services
/// deleted while the controller was down (upstream `checkLeftoverEndpoints`).
async fn cleanup(
    ctx: Arc<Ctx>,
    services: Store<Service>,
    deleted: futures::channel::mpsc::UnboundedReceiver<Arc<Service>>,
) {
    if services.wait_until_ready().await.is_ok() && ctx.endpoints.wait_until_ready().await.is_ok() {
        for ep in ctx.endpoints.state() {
            let ns = ep.namespace().unwrap_or_default();
            let leader = ep.annotations().contains_key(LEADER_ANNOTATION);
            let svc = ObjectRef::<Service>::new(&ep.name_any()).within(&ns);
            if !leader && services.get(&svc).is_none() {
                delete_endpoints(&ctx, &ns, &ep.name_any()).await;
            }
        }
    }
    deleted
        .for_each(|svc| {
            let ctx = ctx.clone();
            async move {
                let ns = svc.namespace().unwrap_or_default();
                ctx.triggers.lock().unwrap().forget(&ns, &svc.name_any());
                delete_endpoints(&ctx, &ns, &svc.name_any()).await;
            }
        })
        .await;
}

async fn delete_endpoints(ctx: &Ctx, ns: &str, name: &str) {
    let api: Api<Endpoints> = Api::namespaced(ctx.cx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => tracing::debug!(namespace = ns, name, "deleted endpoints"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(namespace = ns, name, error = %e, "cannot delete endpoints"),
    }
}

/// The subsets a service's Endpoints should hold for `pods` (already those it selects),
/// and whether they were truncated to [`MAX_CAPACITY`].
pub fn desired_subsets(svc: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let address_type = util::address_type(svc);
    let ports = spec.ports.unwrap_or_default();
    // Addresses grouped by the exact port set they resolve (upstream's RepackSubsets).
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = util::pod_ip(pod, address_type) else {
            continue;
        };
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let address = EndpointAddress {
            ip,
            hostname: util::hostname(pod, svc),
            node_name,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..Default::default()
            }),
        };
        let resolved = if ports.is_empty() {
            if !util::is_headless(svc) {
                continue;
            }
            Vec::new()
        } else {
            match util::resolve_ports(pod, &ports) {
                Some(p) => p,
                None => continue,
            }
        };
        let group = groups.entry(resolved).or_default();
        if publish_not_ready || util::pod_ready(pod) {
            group.0.push(address);
        } else {
            group.1.push(address);
        }
    }
    let total: usize = groups.values().map(|(r, n)| r.len() + n.len()).sum();
    let truncated = total > MAX_CAPACITY;
    if truncated {
        truncate(&mut groups, total);
    }
    let subsets = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            let key = |a: &EndpointAddress| {
                (
                    a.ip.clone(),
                    a.target_ref.as_ref().and_then(|r| r.uid.clone()),
                )
            };
            ready.sort_by_key(key);
            not_ready.sort_by_key(key);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty())
                    .then(|| ports.into_iter().map(PortKey::endpoints_port).collect()),
            }
        })
        .collect();
    (subsets, truncated)
}

/// Keeps [`MAX_CAPACITY`] addresses, each subset keeping its share, ready ones first
/// (upstream `truncateEndpoints`).
fn truncate(
    groups: &mut BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)>,
    total: usize,
) {
    let mut left = MAX_CAPACITY;
    let n = groups.len();
    for (i, (ready, not_ready)) in groups.values_mut().enumerate() {
        let size = ready.len() + not_ready.len();
        let keep = if i + 1 == n {
            left
        } else {
            (size * MAX_CAPACITY / total).min(left)
        };
        left -= keep;
        let keep_ready = keep.min(ready.len());
        ready.truncate(keep_ready);
        not_ready.truncate(keep - keep_ready);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sync endpoints {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: String,
    source: kube::Error,
}

fn normalized(subsets: &Option<Vec<EndpointSubset>>) -> serde_json::Value {
    match subsets {
        Some(s) if !s.is_empty() => serde_json::to_value(s).unwrap_or_default(),
        _ => serde_json::Value::Null,
    }
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if util::selector(&svc).is_none() {
        return Ok(Action::await_change());
    }
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.endpoints.wait_until_ready().await;
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let pods = ctx.pods.state();
    let selected: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| util::selects(&svc, p))
        .collect();
    let (subsets, truncated) = desired_subsets(&svc, &selected);
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&namespace));
    let labels = util::endpoint_labels(&svc);
    let subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(cur) = &current {
        let same = normalized(&cur.subsets) == normalized(&subsets)
            && cur.labels() == &labels
            && cur.annotations().contains_key(OVER_CAPACITY) == truncated;
        if same {
            return Ok(Action::await_change());
        }
    }
    let trigger = ctx.triggers.lock().unwrap().compute(&svc, &selected);
    let mut annotations = current
        .as_ref()
        .map(|c| c.annotations().clone())
        .unwrap_or_default();
    match &trigger {
        Some(t) => annotations.insert(util::LAST_CHANGE_TRIGGER_TIME.into(), util::format_time(t)),
        None => annotations.remove(util::LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let desired = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            resource_version: current.as_ref().and_then(|c| c.resource_version()),
            ..Default::default()
        },
        subsets,
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.cx.client.clone(), &namespace);
    let result = match &current {
        None => api.create(&PostParams::default(), &desired).await.map(drop),
        Some(_) => api
            .replace(&name, &PostParams::default(), &desired)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // The namespace is being deleted: nothing to keep.
        Err(kube::Error::Api(e)) if current.is_none() && e.code == 403 => {
            Ok(Action::await_change())
        }
        Err(source) => {
            let conflict = matches!(&source, kube::Error::Api(e) if e.code == 409);
            if !conflict {
                let (reason, note) = match current {
                    None => (
                        "FailedToCreateEndpoint",
                        format!(
                            "Failed to create endpoint for service {namespace}/{name}: {source}"
                        ),
                    ),
                    Some(_) => (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {namespace}/{name}: {source}"),
                    ),
                };
                let warning = kube::runtime::events::EventType::Warning;
                crate::events::publish(&ctx.recorder, &*svc, warning, reason, note).await;
            }
            Err(Error {
                namespace,
                name,
                source,
            })
        }
    }
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    let conflict = matches!(&error.source, kube::Error::Api(e) if e.code == 409);
    if !conflict {
        tracing::warn!(%error, "endpoints-controller");
    }
    Action::requeue(Duration::from_millis(if conflict { 200 } else { 2000 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": spec}),
        )
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}}))
        .unwrap()
    }

    fn json_of(subsets: &[EndpointSubset]) -> Value {
        serde_json::to_value(subsets).unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let s = svc(json!({"selector": {"app": "web"},
                           "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let a = pod(
            "a",
            "10.0.0.2",
            true,
            json!([{"name": "http", "containerPort": 8080}]),
        );
        let b = pod(
            "b",
            "10.0.0.1",
            false,
            json!([{"name": "http", "containerPort": 8080}]),
        );
        let c = pod(
            "c",
            "10.0.0.3",
            true,
            json!([{"name": "http", "containerPort": 9090}]),
        );
        let d = pod("d", "10.0.0.4", true, json!([]));
        let (subsets, truncated) = desired_subsets(&s, &[&a, &b, &c, &d]);
        assert!(!truncated);
        assert_eq!(
            json_of(&subsets),
            json!([
                {"addresses": [{"ip": "10.0.0.2", "nodeName": "n1",
                                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}],
                 "notReadyAddresses": [{"ip": "10.0.0.1", "nodeName": "n1",
                                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b", "uid": "uid-b"}}],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
                {"addresses": [{"ip": "10.0.0.3", "nodeName": "n1",
                                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "c", "uid": "uid-c"}}],
                 "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]},
            ])
        );
    }

    #[test]
    fn publish_not_ready_addresses_lists_every_pod_ready() {
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                           "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
        );
        let b = pod("b", "10.0.0.1", false, json!([]));
        let (subsets, _) = desired_subsets(&s, &[&b]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 1);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn headless_without_ports_lists_addresses_without_ports() {
        let s = svc(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let a = pod("a", "10.0.0.2", true, json!([]));
        let (subsets, _) = desired_subsets(&s, &[&a]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        let not_headless = svc(json!({"selector": {"app": "web"}}));
        assert!(desired_subsets(&not_headless, &[&a]).0.is_empty());
    }

    #[test]
    fn over_capacity_truncates_to_the_maximum() {
        let s =
            svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}));
        let pods: Vec<Pod> = (0..1100)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.1.{}.{}", i / 250, i % 250),
                    i % 2 == 0,
                    json!([]),
                )
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let (subsets, truncated) = desired_subsets(&s, &refs);
        assert!(truncated);
        let n: usize = subsets
            .iter()
            .map(|s| {
                s.addresses.as_ref().map_or(0, Vec::len)
                    + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
            })
            .sum();
        assert_eq!(n, MAX_CAPACITY);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 550);
    }
}
