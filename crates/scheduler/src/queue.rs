//! The scheduling queue: the active queue (QueueSort order: priority, then time queued),
//! the backoff queue (1 s doubling to 10 s per failed attempt), the unschedulable pods
//! (moved back only by a cluster event a plugin that rejected them registered), and
//! pods held by PreEnqueue (scheduling gates).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::framework::{ClusterEvent, PodInfo, Profiles};

/// The first retry's delay.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without any event before it is retried anyway.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// The backoff after `attempts` failed attempts: 1 s, 2 s, 4 s, 8 s, then 10 s.
pub fn backoff(attempts: u32) -> Duration {
    backoff_between(INITIAL_BACKOFF, MAX_BACKOFF, attempts)
}

/// The backoff after `attempts` failed attempts, doubling from `initial` up to `max`
/// (`podInitialBackoffSeconds`, `podMaxBackoffSeconds`).
pub fn backoff_between(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let mut d = initial;
    for _ in 1..attempts {
        d *= 2;
        if d > max {
            return max;
        }
    }
    d.min(max)
}

/// Whether a pod changed in a way that can change where it fits (its spec, labels,
/// annotations or deletion), as opposed to status and bookkeeping fields.
pub fn scheduling_relevant_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
}

/// [`scheduling_relevant_change`] for a bound pod's update against its cached copy. An
/// assumed pod is cached as it was queued, without the node its binding names
/// (`Cache::assume_pod`): that difference is no change. `new` is as given on return.
pub fn bound_change_relevant(old: &Pod, new: &mut Pod) -> bool {
    let assumed = old.spec.as_ref().is_some_and(|s| s.node_name.is_none());
    let named = match (assumed, new.spec.as_mut()) {
        (true, Some(spec)) => spec.node_name.take(),
        _ => None,
    };
    let relevant = scheduling_relevant_change(old, new);
    if let (Some(n), Some(spec)) = (named, new.spec.as_mut()) {
        spec.node_name = Some(n);
    }
    relevant
}

/// A pod waiting in the queue, with its scheduling history.
#[derive(Clone)]
pub struct QueuedPod {
    pub info: PodInfo,
    /// Scheduling attempts so far.
    pub attempts: u32,
    /// When it (re-)entered the queue, as a sequence number (QueueSort's tiebreak).
    queued_at: u64,
    /// When it last failed (for backoff).
    failed_at: Option<Instant>,
    /// The plugins that rejected it last.
    rejectors: Vec<&'static str>,
    /// The move-request counter when it was popped.
    popped_at_move: u64,
}

impl QueuedPod {
    fn new(info: PodInfo, seq: u64) -> QueuedPod {
        QueuedPod {
            info,
            attempts: 0,
            queued_at: seq,
            failed_at: None,
            rejectors: Vec::new(),
            popped_at_move: 0,
        }
    }

    fn backoff_expiry(&self, (initial, max): (Duration, Duration)) -> Option<Instant> {
        self.failed_at
            .map(|t| t + backoff_between(initial, max, self.attempts))
    }

    fn backing_off(&self, now: Instant, bounds: (Duration, Duration)) -> bool {
        self.backoff_expiry(bounds).is_some_and(|e| e > now)
    }
}

#[derive(Default)]
struct Inner {
    active: Vec<QueuedPod>,
    backoff: Vec<QueuedPod>,
    unschedulable: HashMap<String, QueuedPod>,
    gated: HashMap<String, QueuedPod>,
    in_flight: HashSet<String>,
    seq: u64,
    moves: u64,
    closed: bool,
}

/// The queue of pods waiting to be scheduled, for every profile (they share one
/// QueueSort; PreEnqueue and the events a pod waits for are its profile's).
pub struct SchedulingQueue {
    profiles: Arc<Profiles>,
    /// The initial and the longest backoff.
    backoff: (Duration, Duration),
    inner: Mutex<Inner>,
    notify: Notify,
}

impl SchedulingQueue {
    /// A queue with upstream's default backoff (1 s doubling to 10 s).
    pub fn new(profiles: Arc<Profiles>) -> SchedulingQueue {
        Self::with_backoff(profiles, INITIAL_BACKOFF, MAX_BACKOFF)
    }

    pub fn with_backoff(
        profiles: Arc<Profiles>,
        initial: Duration,
        max: Duration,
    ) -> SchedulingQueue {
        SchedulingQueue {
            profiles,
            backoff: (initial, max),
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_active(&self, inner: &mut Inner, mut qp: QueuedPod) {
        inner.seq += 1;
        qp.queued_at = inner.seq;
        let fw = self.profiles.first();
        let at = inner
            .active
            .partition_point(|x| !fw.less(&qp.info, qp.queued_at, &x.info, x.queued_at));
        inner.active.insert(at, qp);
        self.notify.notify_one();
    }

    /// Admits (PreEnqueue) a pod to the active queue, or holds it as gated.
    fn enqueue(&self, inner: &mut Inner, qp: QueuedPod) {
        let admitted = self
            .profiles
            .for_pod(&qp.info.pod)
            .is_none_or(|fw| fw.run_pre_enqueue(&qp.info.pod).is_success());
        if admitted {
            self.push_active(inner, qp);
        } else {
            inner.gated.insert(qp.info.uid().to_owned(), qp);
        }
    }

    fn remove_everywhere(inner: &mut Inner, uid: &str) -> Option<QueuedPod> {
        if let Some(i) = inner.active.iter().position(|q| q.info.uid() == uid) {
            return Some(inner.active.remove(i));
        }
        if let Some(i) = inner.backoff.iter().position(|q| q.info.uid() == uid) {
            return Some(inner.backoff.remove(i));
        }
        inner
            .unschedulable
            .remove(uid)
            .or_else(|| inner.gated.remove(uid))
    }

    /// A new or changed pod that waits for scheduling.
    pub fn add_or_update(&self, pod: Arc<Pod>) {
        let info = PodInfo::new(pod);
        let uid = info.uid().to_owned();
        let mut inner = self.lock();
        if inner.in_flight.contains(&uid) {
            return;
        }
        let waiting = inner
            .unschedulable
            .get(&uid)
            .or_else(|| inner.gated.get(&uid))
            .map(|qp| scheduling_relevant_change(&qp.info.pod, &info.pod));
        if waiting == Some(false) {
            // Only status or bookkeeping changed (often our own condition update): the
            // pod keeps waiting for a cluster event.
            if let Some(qp) = inner.unschedulable.get_mut(&uid) {
                qp.info = info;
            } else if let Some(qp) = inner.gated.get_mut(&uid) {
                qp.info = info;
            }
            return;
        }
        match Self::remove_everywhere(&mut inner, &uid) {
            None => {
                let seq = inner.seq;
                self.enqueue(&mut inner, QueuedPod::new(info, seq));
            }
            Some(mut qp) => {
                qp.info = info;
                // The pod itself changed: whatever rejected it may now accept it.
                if qp.backing_off(Instant::now(), self.backoff) {
                    inner.backoff.push(qp);
                } else {
                    self.enqueue(&mut inner, qp);
                }
            }
        }
    }

    /// Forgets a pod (deleted, or bound). A pod in the middle of its cycle is not
    /// requeued when the cycle ends.
    pub fn delete(&self, uid: &str) {
        let mut inner = self.lock();
        inner.in_flight.remove(uid);
        Self::remove_everywhere(&mut inner, uid);
    }

    /// Waits for the next pod to schedule; `None` once closed.
    pub async fn pop(&self) -> Option<QueuedPod> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                if !inner.active.is_empty() {
                    let mut qp = inner.active.remove(0);
                    qp.attempts += 1;
                    qp.popped_at_move = inner.moves;
                    inner.in_flight.insert(qp.info.uid().to_owned());
                    if !inner.active.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(qp);
                }
            }
            notified.await;
        }
    }

    /// The cycle for this pod is over (bound, or deleted meanwhile).
    pub fn done(&self, uid: &str) {
        self.lock().in_flight.remove(uid);
    }

    /// A pod that failed its cycle: rejected by `rejectors` (none for an error). It
    /// waits in backoff if a cluster event arrived meanwhile or it failed on an error;
    /// otherwise it waits for an event its rejectors registered.
    pub fn add_unschedulable(&self, mut qp: QueuedPod, rejectors: Vec<&'static str>) {
        let uid = qp.info.uid().to_owned();
        let mut inner = self.lock();
        if !inner.in_flight.remove(&uid) {
            return; // deleted while in flight
        }
        qp.failed_at = Some(Instant::now());
        let moved = inner.moves != qp.popped_at_move;
        let error = rejectors.is_empty();
        qp.rejectors = rejectors;
        if error || moved {
            inner.backoff.push(qp);
        } else {
            inner.unschedulable.insert(uid, qp);
        }
    }

    /// A cluster event: unschedulable pods whose rejectors care go back (to backoff if
    /// still backing off).
    pub fn move_all(&self, event: ClusterEvent) {
        let mut inner = self.lock();
        inner.moves += 1;
        let profiles = &self.profiles;
        let uids: Vec<String> = inner
            .unschedulable
            .iter()
            .filter(|(_, qp)| {
                profiles
                    .for_pod(&qp.info.pod)
                    .is_none_or(|fw| fw.events_for(&qp.rejectors).contains(&event))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        self.requeue(&mut inner, uids);
    }

    fn requeue(&self, inner: &mut Inner, uids: Vec<String>) {
        let now = Instant::now();
        for uid in uids {
            if let Some(qp) = inner.unschedulable.remove(&uid) {
                if qp.backing_off(now, self.backoff) {
                    inner.backoff.push(qp);
                } else {
                    self.push_active(inner, qp);
                }
            }
        }
    }

    /// Moves pods whose backoff has expired to the active queue, and retries pods left
    /// unschedulable for too long. Called every second.
    pub fn flush(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.backoff)
            .into_iter()
            .partition(|qp| !qp.backing_off(now, self.backoff));
        inner.backoff = waiting;
        for qp in ready {
            self.push_active(&mut inner, qp);
        }
        let stale: Vec<String> = inner
            .unschedulable
            .iter()
            .filter(|(_, qp)| qp.failed_at.is_some_and(|t| now - t > MAX_IN_UNSCHEDULABLE))
            .map(|(uid, _)| uid.clone())
            .collect();
        self.requeue(&mut inner, stale);
    }

    /// Stops `pop`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Pods in (active, backoff, unschedulable, gated).
    pub fn lens(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        (
            inner.active.len(),
            inner.backoff.len(),
            inner.unschedulable.len(),
            inner.gated.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::{default_profile, Handle};

    #[test]
    fn confirming_an_assumed_binding_is_no_change() {
        let queued: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c"}]}}))
            .unwrap();
        let mut bound = queued.clone();
        bound.spec.as_mut().unwrap().node_name = Some("n1".into());
        assert!(!bound_change_relevant(&queued, &mut bound));
        assert_eq!(
            bound.spec.as_ref().unwrap().node_name.as_deref(),
            Some("n1")
        );
        // Anything else that changed still counts.
        let mut relabelled = bound.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "2".to_string())].into());
        assert!(bound_change_relevant(&queued, &mut relabelled));
        assert_eq!(
            relabelled.spec.as_ref().unwrap().node_name.as_deref(),
            Some("n1")
        );
        // A cached bound pod moved to another node (deleted and recreated) does count.
        let mut moved = bound.clone();
        moved.spec.as_mut().unwrap().node_name = Some("n2".into());
        assert!(bound_change_relevant(&bound, &mut moved));
        let mut same = bound.clone();
        assert!(!bound_change_relevant(&bound, &mut same));
    }

    fn pod(name: &str, priority: i32, gates: bool) -> Arc<Pod> {
        let gates = if gates {
            json!([{"name": "g"}])
        } else {
            json!([])
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "uid": name},
                "spec": {"priority": priority, "schedulingGates": gates, "containers": [{"name": "c"}]}}))
            .unwrap(),
        )
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Arc::new(Profiles::new(vec![Arc::new(default_profile(
            &Handle::default(),
        ))])))
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(
            (1..=4)
                .map(
                    |a| backoff_between(Duration::from_secs(2), Duration::from_secs(5), a)
                        .as_secs()
                )
                .collect::<Vec<_>>(),
            [2, 4, 5, 5]
        );
        let secs: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test]
    async fn active_queue_orders_by_priority_then_arrival() {
        let q = queue();
        q.add_or_update(pod("low", 1, false));
        q.add_or_update(pod("high", 10, false));
        q.add_or_update(pod("low2", 1, false));
        q.add_or_update(pod("gated", 100, true));
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(q.pop().await.unwrap().info.key());
        }
        assert_eq!(order, ["d/high", "d/low", "d/low2"]);
        assert_eq!(q.lens(), (0, 0, 0, 1));
        // Removing the gate admits the pod.
        q.add_or_update(pod("gated", 100, false));
        assert_eq!(q.pop().await.unwrap().info.key(), "d/gated");
    }

    #[tokio::test]
    async fn unschedulable_pods_return_only_on_events_their_rejectors_registered() {
        let q = queue();
        q.add_or_update(pod("p", 0, false));
        let qp = q.pop().await.unwrap();
        q.add_unschedulable(qp, vec!["NodeAffinity"]);
        assert_eq!(q.lens(), (0, 0, 1, 0));
        q.move_all(ClusterEvent::AssignedPodDelete);
        assert_eq!(
            q.lens(),
            (0, 0, 1, 0),
            "NodeAffinity does not wait for pod deletions"
        );
        q.move_all(ClusterEvent::NodeAdd);
        // Still within its 1 s backoff.
        assert_eq!(q.lens(), (0, 1, 0, 0));
    }

    #[tokio::test]
    async fn an_event_during_the_cycle_sends_the_pod_to_backoff() {
        let q = queue();
        q.add_or_update(pod("p", 0, false));
        let qp = q.pop().await.unwrap();
        q.move_all(ClusterEvent::NodeAdd);
        q.add_unschedulable(qp, vec!["NodeResourcesFit"]);
        assert_eq!(q.lens(), (0, 1, 0, 0));
    }

    #[tokio::test]
    async fn a_pod_deleted_during_its_cycle_is_not_requeued() {
        let q = queue();
        q.add_or_update(pod("p", 0, false));
        let qp = q.pop().await.unwrap();
        q.delete("p");
        q.add_unschedulable(qp, vec![]);
        assert_eq!(q.lens(), (0, 0, 0, 0));
    }

    #[tokio::test]
    async fn status_updates_do_not_requeue_but_spec_updates_do() {
        let q = queue();
        q.add_or_update(pod("p", 0, false));
        let qp = q.pop().await.unwrap();
        q.add_unschedulable(qp, vec!["NodeAffinity"]);
        let mut with_status = (*pod("p", 0, false)).clone();
        with_status.status = Some(Default::default());
        q.add_or_update(Arc::new(with_status));
        assert_eq!(q.lens(), (0, 0, 1, 0));
        q.add_or_update(pod("p", 5, false));
        assert_eq!(
            q.lens(),
            (0, 1, 0, 0),
            "a changed spec leaves unschedulable (into backoff)"
        );
    }
}
