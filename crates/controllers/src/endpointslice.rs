//! The EndpointSlice controller (upstream `endpointslice-controller`): every Service with
//! a selector gets EndpointSlices (at most [`MAX_ENDPOINTS_PER_SLICE`] endpoints each,
//! one set per distinct resolved port list) listing its pods with their `ready`,
//! `serving` and `terminating` conditions, node and zone. Slices are owned by the Service
//! and labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`;
//! a Service without endpoints keeps one empty placeholder slice. Updates keep endpoints
//! in the slice they are in, to limit churn, as upstream's reconciler does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::endpoint_util::{self as util, PortKey, TriggerTimeTracker};
use crate::streams::touched;
use crate::Context;

/// `--max-endpoints-per-slice`'s default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

struct Ctx {
    cx: Context,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    triggers: Mutex<TriggerTimeTracker>,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    let (services, svc_events) = cx.informers.all::<Service>(Default::default()).await;
    let (pods, pod_events) = cx.informers.all::<Pod>(Default::default()).await;
    let (nodes, node_events) = cx.informers.all::<Node>(Default::default()).await;
    let (slices, slice_events) = cx.informers.all::<EndpointSlice>(managed).await;
    let (deleted_tx, deleted_rx) = futures::channel::mpsc::unbounded();
    let svc_events = svc_events.inspect(move |ev| {
        if let watcher::Event::Delete(svc) = ev {
            let _ = deleted_tx.unbounded_send(svc.clone());
        }
    });
    let ctx = Arc::new(Ctx {
        cx,
        pods,
        nodes,
        slices: slices.clone(),
        triggers: Mutex::default(),
    });
    let svc_store = services.clone();
    let slice_store = slices.clone();
    let node_svcs = services.clone();
    let controller = Controller::for_shared_stream(
        crate::metrics::queue().trigger(touched(svc_events)),
        services,
    )
    .watches_shared_stream(touched(pod_events), move |pod: Arc<Pod>| {
        let mut refs = util::services_selecting(&svc_store, &pod);
        let uid = pod.uid();
        for s in slice_store.state() {
            let lists = slice_eps(&s)
                .iter()
                .any(|e| e.target_ref.as_ref().and_then(|r| r.uid.as_ref()) == uid.as_ref());
            if lists && s.namespace() == pod.namespace() {
                refs.extend(service_of(&s));
            }
        }
        refs.into_iter().collect::<Vec<_>>()
    })
    .watches_shared_stream(touched(slice_events), |s: Arc<EndpointSlice>| {
        service_of(&s)
    })
    // A node's zone label is on its endpoints: resync every service when nodes change.
    .watches_shared_stream(touched(node_events), move |_: Arc<Node>| {
        node_svcs
            .state()
            .iter()
            .filter(|s| util::selector(s).is_some())
            .map(|s| ObjectRef::from_obj(&**s))
            .collect::<Vec<_>>()
    })
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        ctx.clone(),
    )
    .for_each(|_| async {});
    let cleanup = deleted_rx.for_each(|svc| {
        let ctx = ctx.clone();
        async move {
            let ns = svc.namespace().unwrap_or_default();
            ctx.triggers.lock().unwrap().forget(&ns, &svc.name_any());
            for s in owned_slices(&ctx.slices, &ns, &svc.name_any()) {
                delete_slice(&ctx, &s).await;
            }
        }
    });
    tokio::join!(controller, cleanup);
}

fn service_of(s: &EndpointSlice) -> Option<ObjectRef<Service>> {
    let name = s.labels().get(SERVICE_NAME_LABEL)?;
    Some(ObjectRef::new(name).within(&s.namespace()?))
}

fn owned_slices(slices: &Store<EndpointSlice>, ns: &str, svc: &str) -> Vec<Arc<EndpointSlice>> {
    slices.state_filter(|s| {
        s.namespace().as_deref() == Some(ns)
            && s.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(svc)
            && s.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
    })
}

async fn delete_slice(ctx: &Ctx, s: &EndpointSlice) {
    let ns = s.namespace().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.cx.client.clone(), &ns);
    match api.delete(&s.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            tracing::warn!(namespace = ns, name = s.name_any(), error = %e, "cannot delete endpointslice")
        }
    }
}

/// The endpoints a service's slices should hold for `pods` (those it selects), grouped
/// by their resolved port list. `zone_of` gives a node's zone.
pub fn desired_endpoints(
    svc: &Service,
    pods: &[&Pod],
    zone_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<Vec<PortKey>, Vec<Endpoint>> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let address_type = util::address_type(svc);
    let ports = spec.ports.unwrap_or_default();
    let mut groups: BTreeMap<Vec<PortKey>, Vec<Endpoint>> = BTreeMap::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = util::pod_ip(pod, address_type) else {
            continue;
        };
        let resolved = if ports.is_empty() {
            Vec::new()
        } else {
            match util::resolve_ports(pod, &ports) {
                Some(p) => p,
                None => continue,
            }
        };
        let serving = util::pod_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let endpoint = Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(publish_not_ready || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: util::hostname(pod, svc),
            zone: node_name.as_deref().and_then(&zone_of),
            node_name,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..Default::default()
            }),
            ..Default::default()
        };
        groups.entry(resolved).or_default().push(endpoint);
    }
    for eps in groups.values_mut() {
        eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    groups
}

fn slice_eps(s: &EndpointSlice) -> &[Endpoint] {
    s.endpoints.as_deref().unwrap_or_default()
}

/// An endpoint's identity across updates: its pod, else its address.
fn endpoint_key(e: &Endpoint) -> String {
    e.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_else(|| e.addresses.join(","))
}

fn ports_of(s: &EndpointSlice) -> Vec<EndpointPort> {
    let mut p = s.ports.clone().unwrap_or_default();
    p.sort_by(|a, b| {
        (&a.name, a.port, &a.protocol, &a.app_protocol).cmp(&(
            &b.name,
            b.port,
            &b.protocol,
            &b.app_protocol,
        ))
    });
    p
}

/// What to do with a service's slices.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New slices: ports and endpoints.
    pub create: Vec<(Vec<EndpointPort>, Vec<Endpoint>)>,
    /// Existing slices (by name) with their new endpoints.
    pub update: Vec<(String, Vec<Endpoint>)>,
    /// Existing slices to delete (by name).
    pub delete: Vec<String>,
}

/// Plans the slices for `desired` given the `existing` ones (of the right address type):
/// endpoints stay in the slice they are in when it still fits, new ones fill the slices
/// with room, then new slices of at most `max` each; slices left empty are deleted, and
/// an empty placeholder slice is kept when there are no endpoints at all.
pub fn plan(
    desired: BTreeMap<Vec<PortKey>, Vec<Endpoint>>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let mut used: Vec<bool> = vec![false; existing.len()];
    if desired.values().all(Vec::is_empty) {
        // A placeholder: one slice with no endpoints and no ports.
        let keep = existing
            .iter()
            .position(|s| slice_eps(s).is_empty() && ports_of(s).is_empty());
        match keep {
            Some(i) => used[i] = true,
            None => plan.create.push((Vec::new(), Vec::new())),
        }
    }
    for (ports, eps) in desired {
        if eps.is_empty() {
            continue;
        }
        let ports: Vec<EndpointPort> = ports.into_iter().map(PortKey::slice_port).collect();
        let mut wanted: HashMap<String, Endpoint> =
            eps.iter().map(|e| (endpoint_key(e), e.clone())).collect();
        let mut order: Vec<String> = eps.iter().map(endpoint_key).collect();
        // Existing slices with these ports keep the endpoints they have.
        let mut kept: Vec<(usize, Vec<Endpoint>, bool)> = Vec::new();
        for (i, s) in existing.iter().enumerate() {
            if used[i] || ports_of(s) != ports || slice_eps(s).is_empty() {
                continue;
            }
            used[i] = true;
            let mut changed = false;
            let mut now = Vec::new();
            for e in slice_eps(s) {
                match wanted.remove(&endpoint_key(e)) {
                    Some(w) => {
                        changed |= &w != e;
                        now.push(w);
                    }
                    None => changed = true,
                }
            }
            kept.push((i, now, changed));
        }
        order.retain(|k| wanted.contains_key(k));
        let mut rest = order
            .into_iter()
            .filter_map(|k| wanted.remove(&k))
            .peekable();
        // Fill the fullest slices with room first.
        kept.sort_by_key(|(_, eps, _)| std::cmp::Reverse(eps.len()));
        for (_, eps, changed) in kept.iter_mut() {
            while eps.len() < max && !eps.is_empty() {
                match rest.next() {
                    Some(e) => {
                        eps.push(e);
                        *changed = true;
                    }
                    None => break,
                }
            }
        }
        for (i, eps, changed) in kept {
            if eps.is_empty() {
                plan.delete.push(existing[i].name_any());
            } else if changed {
                plan.update.push((existing[i].name_any(), eps));
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(max) {
            plan.create.push((ports.clone(), chunk.to_vec()));
        }
    }
    for (i, s) in existing.iter().enumerate() {
        if !used[i] {
            plan.delete.push(s.name_any());
        }
    }
    plan
}

/// The labels a service's slices carry (upstream `setEndpointSliceLabels`).
fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = util::endpoint_labels(svc);
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sync endpointslices of {namespace}/{name}: {source}")]
struct Error {
    namespace: String,
    name: String,
    source: kube::Error,
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if util::selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.nodes.wait_until_ready().await;
    let _ = ctx.slices.wait_until_ready().await;
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let err = |source| Error {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let pods = ctx.pods.state();
    let selected: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| util::selects(&svc, p))
        .collect();
    let zone_of = |node: &str| {
        ctx.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
    };
    let desired = desired_endpoints(&svc, &selected, zone_of);
    let address_type = util::address_type(&svc);
    let labels = slice_labels(&svc);
    let owner = owner(&svc);
    let all = owned_slices(&ctx.slices, &namespace, &name);
    let (existing, foreign): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| {
        s.address_type == address_type
            && s.owner_references()
                .iter()
                .any(|o| o.uid == owner.uid && o.controller == Some(true))
    });
    let mut plan = plan(desired, &existing, MAX_ENDPOINTS_PER_SLICE);
    plan.delete.extend(foreign.iter().map(|s| s.name_any()));
    // Slices whose labels drifted from the service's are rewritten too.
    for s in &existing {
        let listed = plan.update.iter().any(|(n, _)| *n == s.name_any())
            || plan.delete.contains(&s.name_any());
        if !listed && s.labels() != &labels {
            plan.update.push((s.name_any(), slice_eps(s).to_vec()));
        }
    }
    if plan == Plan::default() {
        return Ok(Action::await_change());
    }
    let trigger = ctx.triggers.lock().unwrap().compute(&svc, &selected);
    let annotations = trigger.map(|t| {
        BTreeMap::from([(
            util::LAST_CHANGE_TRIGGER_TIME.to_owned(),
            util::format_time(&t),
        )])
    });
    let api: Api<EndpointSlice> = Api::namespaced(ctx.cx.client.clone(), &namespace);
    let pp = PostParams::default();
    for (name, endpoints) in plan.update {
        let Some(cur) = existing.iter().find(|s| s.name_any() == name) else {
            continue;
        };
        let mut s = (**cur).clone();
        s.endpoints = Some(endpoints);
        s.metadata.labels = Some(labels.clone());
        let mut ann = s.metadata.annotations.take().unwrap_or_default();
        ann.remove(util::LAST_CHANGE_TRIGGER_TIME);
        ann.extend(annotations.clone().unwrap_or_default());
        s.metadata.annotations = (!ann.is_empty()).then_some(ann);
        s.metadata.managed_fields = None;
        api.replace(&name, &pp, &s).await.map_err(err)?;
    }
    for (ports, endpoints) in plan.create {
        let s = EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{name}-")),
                namespace: Some(namespace.clone()),
                labels: Some(labels.clone()),
                annotations: annotations.clone(),
                owner_references: Some(vec![owner.clone()]),
                ..Default::default()
            },
            address_type: address_type.into(),
            endpoints: Some(endpoints),
            ports: (!ports.is_empty()).then_some(ports),
        };
        match api.create(&pp, &s).await {
            Ok(_) => {}
            // The namespace is being deleted.
            Err(kube::Error::Api(e)) if e.code == 403 => return Ok(Action::await_change()),
            Err(e) => return Err(err(e)),
        }
    }
    for name in plan.delete {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Ctx>) -> Action {
    let conflict = matches!(&error.source, kube::Error::Api(e) if e.code == 409);
    if !conflict {
        tracing::warn!(%error, "endpointslice-controller");
    }
    Action::requeue(Duration::from_millis(if conflict { 200 } else { 2000 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn svc(spec: Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid"}, "spec": spec}),
        )
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, deleting: bool) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "hostname": "h", "subdomain": "web",
                     "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn endpoint_conditions_like_upstream() {
        let s = svc(json!({"selector": {"app": "web"},
                           "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let pods = [
            pod("a", "10.0.0.1", true, false),
            pod("b", "10.0.0.2", false, false),
            pod("c", "10.0.0.3", true, true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let groups = desired_endpoints(&s, &refs, |_| Some("z1".into()));
        assert_eq!(groups.len(), 1);
        let (ports, eps) = groups.into_iter().next().unwrap();
        assert_eq!(ports[0].port, 8080);
        let conds: Vec<Value> = eps
            .iter()
            .map(|e| serde_json::to_value(e.conditions.as_ref().unwrap()).unwrap())
            .collect();
        assert_eq!(
            conds,
            vec![
                json!({"ready": true, "serving": true, "terminating": false}),
                json!({"ready": false, "serving": false, "terminating": false}),
                json!({"ready": false, "serving": true, "terminating": true}),
            ]
        );
        assert_eq!(eps[0].zone.as_deref(), Some("z1"));
        assert_eq!(eps[0].hostname.as_deref(), Some("h"));
        assert_eq!(eps[0].node_name.as_deref(), Some("n1"));
        // publishNotReadyAddresses: every endpoint ready.
        let s = svc(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                           "ports": [{"port": 80, "protocol": "TCP"}]}),
        );
        let groups = desired_endpoints(&s, &refs, |_| None);
        assert!(groups
            .values()
            .flatten()
            .all(|e| e.conditions.as_ref().unwrap().ready == Some(true)));
    }

    fn endpoints(n: usize, from: usize) -> Vec<Endpoint> {
        (from..from + n)
            .map(|i| Endpoint {
                addresses: vec![format!("10.0.{}.{}", i / 200, i % 200)],
                ..Default::default()
            })
            .collect()
    }

    fn slice(
        name: &str,
        eps: Vec<Endpoint>,
        ports: Option<Vec<EndpointPort>>,
    ) -> Arc<EndpointSlice> {
        Arc::new(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(eps),
            ports,
        })
    }

    fn key(port: i32) -> Vec<PortKey> {
        vec![PortKey {
            name: String::new(),
            port,
            protocol: "TCP".into(),
            app_protocol: None,
        }]
    }

    #[test]
    fn plans_slices_of_at_most_max_and_keeps_endpoints_in_place() {
        // 250 new endpoints: three slices of 100, 100, 50.
        let p = plan(BTreeMap::from([(key(80), endpoints(250, 0))]), &[], 100);
        let sizes: Vec<usize> = p.create.iter().map(|(_, e)| e.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        assert!(p.update.is_empty() && p.delete.is_empty());

        let ports = Some(key(80).into_iter().map(PortKey::slice_port).collect());
        let a = slice("a", endpoints(100, 0), ports.clone());
        let b = slice("b", endpoints(50, 100), ports.clone());
        // Unchanged: nothing to do.
        let p = plan(
            BTreeMap::from([(key(80), endpoints(150, 0))]),
            &[a.clone(), b.clone()],
            100,
        );
        assert_eq!(p, Plan::default());
        // One more endpoint goes into the slice with room.
        let p = plan(
            BTreeMap::from([(key(80), endpoints(151, 0))]),
            &[a.clone(), b.clone()],
            100,
        );
        assert!(p.create.is_empty() && p.delete.is_empty());
        assert_eq!(p.update.len(), 1);
        assert_eq!(p.update[0].0, "b");
        assert_eq!(p.update[0].1.len(), 51);
        // The second slice's endpoints gone: it is deleted, the first untouched.
        let p = plan(
            BTreeMap::from([(key(80), endpoints(100, 0))]),
            &[a.clone(), b.clone()],
            100,
        );
        assert_eq!(p.delete, vec!["b".to_string()]);
        assert!(p.update.is_empty() && p.create.is_empty());
        // Ports changed: new slices, old ones deleted.
        let p = plan(BTreeMap::from([(key(81), endpoints(10, 0))]), &[a, b], 100);
        assert_eq!(p.create.len(), 1);
        assert_eq!(p.delete.len(), 2);
    }

    #[test]
    fn no_endpoints_keeps_one_placeholder() {
        let p = plan(BTreeMap::new(), &[], 100);
        assert_eq!(p.create, vec![(Vec::new(), Vec::new())]);
        let placeholder = slice("p", vec![], None);
        let ports = Some(key(80).into_iter().map(PortKey::slice_port).collect());
        let old = slice("o", endpoints(3, 0), ports);
        let p = plan(BTreeMap::new(), &[old, placeholder], 100);
        assert!(p.create.is_empty() && p.update.is_empty());
        assert_eq!(p.delete, vec!["o".to_string()]);
    }
}
