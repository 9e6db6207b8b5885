//! Per-controller metrics with upstream's workqueue names (`workqueue_depth`,
//! `workqueue_adds_total`, `workqueue_queue_duration_seconds`,
//! `workqueue_work_duration_seconds`, `workqueue_retries_total`, label `name`) plus
//! reconcile counts by result, rendered as Prometheus text.
//!
//! Instrumentation wraps what every controller hands kube-runtime: its trigger streams
//! ([`Queue::trigger`]), its reconcile function ([`Queue::reconciler`]) and its error
//! policy ([`Queue::error_policy`]). The queue is the one of the controller the current
//! task runs ([`CONTROLLER`] is set by the manager around each controller's future).
//! kube-runtime merges duplicate pending requests before a worker sees them, as
//! upstream's workqueue does; an add the wrappers did not see (a controller's internal
//! watcher) is counted when its request reaches the worker.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::Resource;

tokio::task_local! {
    /// The name of the controller the current task runs (upstream's workqueue name).
    pub static CONTROLLER: &'static str;
}

/// Upstream's workqueue latency buckets: 10ns × 10^i for i in 0..12.
const BUCKETS: [f64; 12] = [
    1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }
}

#[derive(Default)]
struct Series {
    adds: u64,
    retries: u64,
    reconcile_success: u64,
    reconcile_error: u64,
    queue_duration: Histogram,
    work_duration: Histogram,
    /// Keys added and not yet handed to a worker, with when they were first added.
    pending: HashMap<String, Instant>,
}

/// One controller's workqueue instrumentation.
pub struct Queue {
    name: &'static str,
    series: Mutex<Series>,
}

fn queues() -> &'static Mutex<BTreeMap<&'static str, Arc<Queue>>> {
    static QUEUES: OnceLock<Mutex<BTreeMap<&'static str, Arc<Queue>>>> = OnceLock::new();
    QUEUES.get_or_init(Default::default)
}

/// The queue of the controller the current task runs (`unnamed` outside the manager,
/// as in unit tests).
pub fn queue() -> Arc<Queue> {
    named(CONTROLLER.try_with(|n| *n).unwrap_or("unnamed"))
}

/// The queue called `name`.
pub fn named(name: &'static str) -> Arc<Queue> {
    let mut all = queues().lock().unwrap_or_else(|e| e.into_inner());
    all.entry(name)
        .or_insert_with(|| {
            Arc::new(Queue {
                name,
                series: Mutex::default(),
            })
        })
        .clone()
}

fn key_of<K: Resource>(obj: &K) -> String
where
    K::DynamicType: Default,
{
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn key_of_ref<K: Resource>(r: &ObjectRef<K>) -> String {
    format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name)
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `key` was enqueued.
    pub fn add(&self, key: String) {
        let mut s = self.lock();
        s.adds += 1;
        s.pending.entry(key).or_insert_with(Instant::now);
    }

    /// Counts every object of a (shared) trigger stream as an add of its key.
    pub fn trigger<K, S>(self: &Arc<Self>, stream: S) -> impl Stream<Item = Arc<K>>
    where
        S: Stream<Item = Arc<K>>,
        K: Resource,
        K::DynamicType: Default,
    {
        let q = self.clone();
        stream.inspect(move |obj| q.add(key_of(&**obj)))
    }

    /// Counts every key a watch mapper yields as an add.
    pub fn mapper<T, K, I>(
        self: &Arc<Self>,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> impl Fn(T) -> Vec<ObjectRef<K>> + Send + Sync + 'static
    where
        K: Resource,
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let q = self.clone();
        move |obj| {
            let refs: Vec<_> = f(obj).into_iter().collect();
            for r in &refs {
                q.add(key_of_ref(r));
            }
            refs
        }
    }

    /// Wraps a reconcile function: its request leaves the queue (queue duration), its
    /// run is timed (work duration) and counted by result.
    pub fn reconciler<K, C, F, Fut, E>(
        self: &Arc<Self>,
        reconcile: F,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> futures::future::BoxFuture<'static, Result<Action, E>>
    where
        K: Resource + Send + Sync + 'static,
        K::DynamicType: Default,
        C: Send + Sync + 'static,
        F: FnMut(Arc<K>, Arc<C>) -> Fut,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Send + 'static,
    {
        let q = self.clone();
        let mut reconcile = reconcile;
        move |obj, ctx| {
            let key = key_of(&*obj);
            {
                let mut s = q.lock();
                match s.pending.remove(&key) {
                    Some(since) => s.queue_duration.observe(since.elapsed()),
                    None => s.adds += 1,
                }
            }
            let fut = reconcile(obj, ctx);
            let q = q.clone();
            Box::pin(async move {
                let started = Instant::now();
                let result = fut.await;
                let mut s = q.lock();
                s.work_duration.observe(started.elapsed());
                if result.is_ok() {
                    s.reconcile_success += 1;
                } else {
                    s.reconcile_error += 1;
                }
                result
            })
        }
    }

    /// Wraps an error policy: each failed reconcile is a rate-limited re-add (a retry).
    pub fn error_policy<K, C, E>(
        self: &Arc<Self>,
        policy: impl Fn(Arc<K>, &E, Arc<C>) -> Action,
    ) -> impl Fn(Arc<K>, &E, Arc<C>) -> Action
    where
        K: Resource,
        K::DynamicType: Default,
    {
        let q = self.clone();
        move |obj, error, ctx| {
            {
                let mut s = q.lock();
                s.retries += 1;
            }
            q.add(key_of(&*obj));
            policy(obj, error, ctx)
        }
    }
}

struct Snapshot {
    name: &'static str,
    depth: usize,
    adds: u64,
    retries: u64,
    success: u64,
    error: u64,
    queue_duration: Histogram,
    work_duration: Histogram,
}

/// Every controller's series, as Prometheus text (exposition format 0.0.4).
pub fn render() -> String {
    let all: Vec<Arc<Queue>> = queues()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let snapshot: Vec<Snapshot> = all
        .iter()
        .map(|q| {
            let s = q.lock();
            Snapshot {
                name: q.name,
                depth: s.pending.len(),
                adds: s.adds,
                retries: s.retries,
                success: s.reconcile_success,
                error: s.reconcile_error,
                queue_duration: s.queue_duration.clone(),
                work_duration: s.work_duration.clone(),
            }
        })
        .collect();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        lines(&mut out);
    };
    family(
        "workqueue_adds_total",
        "counter",
        "Total number of adds handled by workqueue",
        &mut |out| {
            for s in &snapshot {
                let _ = writeln!(
                    out,
                    "workqueue_adds_total{{name=\"{}\"}} {}",
                    s.name, s.adds
                );
            }
        },
    );
    family(
        "workqueue_depth",
        "gauge",
        "Current depth of workqueue",
        &mut |out| {
            for s in &snapshot {
                let _ = writeln!(out, "workqueue_depth{{name=\"{}\"}} {}", s.name, s.depth);
            }
        },
    );
    family(
        "workqueue_retries_total",
        "counter",
        "Total number of retries handled by workqueue",
        &mut |out| {
            for s in &snapshot {
                let _ = writeln!(
                    out,
                    "workqueue_retries_total{{name=\"{}\"}} {}",
                    s.name, s.retries
                );
            }
        },
    );
    for (metric, help, queue) in [
        (
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            true,
        ),
        (
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            false,
        ),
    ] {
        family(metric, "histogram", help, &mut |out| {
            for s in &snapshot {
                let h = if queue {
                    &s.queue_duration
                } else {
                    &s.work_duration
                };
                let name = s.name;
                for (le, count) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "{metric}_bucket{{name=\"{name}\",le=\"{le:e}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{metric}_bucket{{name=\"{name}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "{metric}_sum{{name=\"{name}\"}} {}", h.sum);
                let _ = writeln!(out, "{metric}_count{{name=\"{name}\"}} {}", h.count);
            }
        });
    }
    family(
        "controller_reconcile_total",
        "counter",
        "Reconciliations per controller, by result (success or error).",
        &mut |out| {
            for s in &snapshot {
                let _ = writeln!(
                    out,
                    "controller_reconcile_total{{name=\"{}\",result=\"success\"}} {}",
                    s.name, s.success
                );
                let _ = writeln!(
                    out,
                    "controller_reconcile_total{{name=\"{}\",result=\"error\"}} {}",
                    s.name, s.error
                );
            }
        },
    );
    out.push_str(&crate::hpa::monitor::render());
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::*;

    #[tokio::test]
    async fn queue_counts_adds_retries_and_reconciles() {
        let q = named("test-controller");
        let cm = Arc::new(ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        q.add("ns/a".into());
        q.add("ns/a".into());
        let mut reconcile =
            q.reconciler(|_: Arc<ConfigMap>, _: Arc<()>| async { Err::<Action, &str>("boom") });
        assert!(reconcile(cm.clone(), Arc::new(())).await.is_err());
        let policy = q.error_policy(|_: Arc<ConfigMap>, _: &&str, _: Arc<()>| {
            Action::requeue(Duration::from_secs(1))
        });
        policy(cm, &"boom", Arc::new(()));
        let text = render();
        for line in [
            "workqueue_adds_total{name=\"test-controller\"} 3",
            "workqueue_retries_total{name=\"test-controller\"} 1",
            "workqueue_depth{name=\"test-controller\"} 1",
            "workqueue_queue_duration_seconds_count{name=\"test-controller\"} 1",
            "workqueue_work_duration_seconds_count{name=\"test-controller\"} 1",
            "controller_reconcile_total{name=\"test-controller\",result=\"error\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
