//! Helpers the workload controllers share (upstream's `pkg/controller` utilities): pod
//! readiness and availability, controller references, adoption and release of pods,
//! expectations, pod-template hashing, pods made from templates, the deletion ranking,
//! slow-start batches and Events.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

pub use rkube_scheduler::plugins::inter_pod_affinity::selector_matches;

/// The label (and ReplicaSet name suffix) a Deployment's template hash goes in.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation that ranks pods for deletion when scaling down (lower goes first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Upstream's `burstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;
/// Upstream's `SlowStartInitialBatchSize`.
const SLOW_START_INITIAL_BATCH: usize = 1;
/// How long expectations wait for the cache before a sync goes ahead anyway.
const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

/// Whether a pod counts: not terminal and not being deleted (upstream `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed"))
        && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's `Ready` condition, if True.
fn ready_since(pod: &Pod) -> Option<Option<&Time>> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref())
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When a Ready pod becomes available under `min_ready_seconds` (None: not Ready).
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<Timestamp> {
    let since = ready_since(pod)?;
    if min_ready_seconds <= 0 {
        return Some(Timestamp::UNIX_EPOCH);
    }
    let since = since.map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH);
    Some(since + Duration::from_secs(min_ready_seconds as u64))
}

/// Whether the pod is available: Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    available_at(pod, min_ready_seconds).is_some_and(|t| t <= now)
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` (`controller` and `blockOwnerDeletion` set).
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// Upstream's `ComputeHash`: FNV-32a over the template (and the collision count), in
/// the alphabet names use. Stable for equal templates.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).ok().and_then(prune_zero);
    let mut data = serde_json::to_vec(&value).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&c.to_le_bytes());
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    safe_encode(&h.to_string())
}

/// `v` without null, false, 0, "" and empty lists and maps, recursively: Go's zero
/// values, which upstream's semantic equality does not tell from unset fields.
pub fn prune_zero(v: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .map(|x| prune_zero(x).unwrap_or(Value::Null))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune_zero(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        v => Some(v),
    }
}

/// Whether two objects are equal as upstream's semantic equality sees them (zero
/// values equal to unset).
pub fn semantically_equal<T: serde::Serialize>(a: &T, b: &T) -> bool {
    let norm = |x: &T| serde_json::to_value(x).ok().and_then(prune_zero);
    norm(a) == norm(b)
}

/// Upstream's `rand.SafeEncodeString`: maps each byte to a consonant or digit that
/// cannot spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// A pod for `owner` from `template` (upstream `GetPodFromTemplate`): the template's
/// labels, annotations, finalizers and spec, named `<prefix>` + random suffix.
pub fn pod_from_template(template: &PodTemplateSpec, prefix: &str, owner: OwnerReference) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix.to_owned()),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Upstream's `ActivePodsWithRanks.Less`: the order pods are deleted in when scaling
/// down (first = deleted first). `rank` is how many related pods share the pod's node.
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let cost = |p: &Pod| -> i32 {
        p.annotations()
            .get(POD_DELETION_COST)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let ready_time = |p: &Pod| ready_since(p).flatten().map(|t| t.0);
    let restarts = |p: &Pod| -> i32 {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
            .unwrap_or(0)
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    node(a)
        .cmp(&node(b))
        .then_with(|| phase(a).cmp(&phase(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| cost(a).cmp(&cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(
            || match (is_ready(a) && is_ready(b), ready_time(a), ready_time(b)) {
                // Ready for less time goes first.
                (true, Some(x), Some(y)) => y.cmp(&x),
                (true, None, Some(_)) => Ordering::Less,
                (true, Some(_), None) => Ordering::Greater,
                _ => Ordering::Equal,
            },
        )
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| match (created(a), created(b)) {
            // Newer goes first.
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
}

/// The `n` pods to delete from `pods`, ranked by [`deletion_order`] with the rank counted
/// among `related` pods on the same node.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], n: usize) -> Vec<&'a Pod> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| per_node.get(n).copied())
            .unwrap_or(0)
    };
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

/// Upstream's `slowStartBatch` sizes: 1, 2, 4, ... summing to `count`.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut batch = SLOW_START_INITIAL_BATCH.min(remaining);
    while batch > 0 {
        out.push(batch);
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    out
}

/// Runs `make` for `count` items in slow-start batches, stopping after the first batch
/// with a failure. Returns the successes and the first error.
pub async fn slow_start<T, E, F, Fut>(count: usize, make: F) -> (Vec<T>, Option<E>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut done = Vec::new();
    for batch in slow_start_batches(count) {
        let results = futures::future::join_all((0..batch).map(|_| make())).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(v) => done.push(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_some() {
            return (done, first_err);
        }
    }
    (done, None)
}

/// What one controller expects to see in its pod cache after its own creations and
/// deletions (upstream `ControllerExpectations`), by object key. Until the cache shows
/// them, the controller does not act on the object again (it would act twice); after
/// five minutes it goes ahead anyway. Per controller, never shared.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    adds: HashSet<String>,
    dels: HashSet<String>,
    since: Instant,
}

impl Expectations {
    /// Records names just created (`adds`) or deleted (`dels`) for `key`.
    pub fn expect(&self, key: &str, adds: Vec<String>, dels: Vec<String>) {
        if adds.is_empty() && dels.is_empty() {
            return;
        }
        let mut m = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = m.entry(key.to_owned()).or_insert_with(|| Pending {
            adds: HashSet::new(),
            dels: HashSet::new(),
            since: Instant::now(),
        });
        p.adds.extend(adds);
        p.dels.extend(dels);
        p.since = Instant::now();
    }

    /// Whether the cache has caught up for `key`; `cached(name)` says whether the cache
    /// has the named object (`Some(true)` if it is being deleted).
    pub fn satisfied(&self, key: &str, cached: impl Fn(&str) -> Option<bool>) -> bool {
        let mut m = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = m.get_mut(key) else {
            return true;
        };
        p.adds.retain(|n| cached(n).is_none());
        p.dels.retain(|n| cached(n) == Some(false));
        if (p.adds.is_empty() && p.dels.is_empty()) || p.since.elapsed() > EXPECTATIONS_TTL {
            m.remove(key);
            return true;
        }
        false
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&self, key: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Adopts the orphan `pod` for `owner` (strategic-merge patch with a UID precondition).
pub async fn adopt(api: &Api<Pod>, pod: &Pod, owner: OwnerReference) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [owner],
        "uid": pod.metadata.uid,
    }});
    api.patch(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
    .map(|_| ())
}

/// Releases `pod` from the controller with `owner_uid` (removes its owner reference).
pub async fn release(api: &Api<Pod>, pod: &Pod, owner_uid: &str) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
        "uid": pod.metadata.uid,
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone or changed: nothing to release.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Which of `pods` the controller owns after adoption and release (upstream
/// `ClaimPods`): its own pods that still match, plus orphans that match (adopted).
/// `can_adopt` is false while the owner is being deleted.
pub async fn claim_pods<'a>(
    api: &Api<Pod>,
    owner: &OwnerReference,
    selector: &LabelSelector,
    pods: Vec<&'a Pod>,
    can_adopt: bool,
) -> Result<Vec<&'a Pod>, kube::Error> {
    let mut claimed = Vec::new();
    for pod in pods {
        let matches = selector_matches(Some(selector), pod.metadata.labels.as_ref());
        match controller_of(&pod.metadata) {
            Some(r) if r.uid == owner.uid => {
                if matches {
                    claimed.push(pod);
                } else if can_adopt {
                    release(api, pod, &owner.uid).await?;
                }
            }
            Some(_) => {}
            None => {
                if matches && can_adopt && pod.metadata.deletion_timestamp.is_none() {
                    match adopt(api, pod, owner.clone()).await {
                        Ok(()) => claimed.push(pod),
                        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 422 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(claimed)
}

/// Where a controller's Events go: its own client, reporting as the controller.
///
/// Each Event is published through a fresh kube-runtime `Recorder`: a long-lived one
/// merges every Event with the same reason into one series and keeps the first message,
/// while upstream's messages ("Scaled up replica set ... from 0 to 3") carry the news.
#[derive(Clone)]
pub struct Events {
    client: Client,
    controller: String,
}

impl Events {
    pub fn new(client: Client, controller: &str) -> Events {
        Events {
            client,
            controller: controller.to_owned(),
        }
    }
}

/// Publishes an Event about `obj`; failures are logged, never fatal (as upstream).
pub async fn event<K: Resource<DynamicType = ()>>(
    events: &Events,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    let rec = Recorder::new(
        events.client.clone(),
        Reporter {
            controller: events.controller.clone(),
            instance: None,
        },
    );
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(note),
        action: reason.to_owned(),
        secondary: None,
    };
    if let Err(e) = rec.publish(&ev, &obj.object_ref(&())).await {
        tracing::debug!(error = %e, reason, "cannot record event");
    }
}

/// Whether every label of `want` is on `labels` (upstream's "fully labeled").
pub fn has_labels(
    labels: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> bool {
    want.into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// An int-or-percent against `total`, rounding up or down (upstream
/// `GetScaledValueFromIntOrPercent`). Bad percents count as 0.
pub fn scaled(v: Option<&IntOrString>, default: &str, total: i32, round_up: bool) -> i32 {
    let s = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s.as_str(),
        None => default,
    };
    let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return s.parse().unwrap_or(0);
    };
    let prod = pct * i64::from(total);
    (if round_up {
        (prod + 99) / 100
    } else {
        prod / 100
    }) as i32
}

/// The current time as an API timestamp.
pub fn now() -> Time {
    Time(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), vec![1, 2, 4, 8]);
    }

    #[test]
    fn deletion_prefers_unscheduled_pending_unready() {
        let running = pod("running", Some("n1"), "Running", true);
        let unready = pod("unready", Some("n1"), "Running", false);
        let pending = pod("pending", Some("n1"), "Pending", false);
        let unsched = pod("unsched", None, "Pending", false);
        let all = [&running, &unready, &pending, &unsched];
        let order: Vec<String> = pods_to_delete(&all, &all, 4)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(order, ["unsched", "pending", "unready", "running"]);
    }

    #[test]
    fn deletion_cost_and_doubled_up_nodes() {
        let mut cheap = pod("cheap", Some("a"), "Running", true);
        cheap
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(POD_DELETION_COST.into(), "-5".into());
        let crowded = pod("crowded", Some("b"), "Running", true);
        let crowded2 = pod("crowded2", Some("b"), "Running", true);
        let alone = pod("alone", Some("c"), "Running", true);
        let all = [&alone, &crowded, &cheap, &crowded2];
        let order: Vec<String> = pods_to_delete(&all, &all, 2)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(order[0], "cheap");
        assert!(order[1].starts_with("crowded"), "{order:?}");
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let mut p = pod("p", Some("n"), "Running", true);
        let t = Timestamp::from_second(1_000).unwrap();
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(Time(t));
        assert!(is_available(&p, 0, t));
        assert!(!is_available(&p, 10, t + Duration::from_secs(9)));
        assert!(is_available(&p, 10, t + Duration::from_secs(10)));
        assert!(!is_available(&pod("q", None, "Pending", false), 0, t));
    }

    #[test]
    fn template_hash_is_stable_and_safe() {
        let t = PodTemplateSpec::default();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
    }

    #[test]
    fn expectations_wait_for_the_cache() {
        let e = Expectations::default();
        e.expect("ns/a", vec!["p1".into()], vec!["p2".into()]);
        assert!(!e.satisfied("ns/a", |n| (n == "p2").then_some(false)));
        assert!(!e.satisfied("ns/a", |_| Some(false)));
        assert!(e.satisfied("ns/a", |n| (n == "p1").then_some(false)));
        assert!(e.satisfied("ns/b", |_| None));
    }
}
