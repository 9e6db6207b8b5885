//! Shared informers: one watch and one reflector store per kind (and scope) for all the
//! controllers of a manager, as upstream's `SharedInformerFactory`. Each controller that
//! asks for a kind gets the shared [`Store`] and its own stream of the watch events, which
//! a `Controller` drives (`for_stream` / `watches_stream`).
//!
//! Without sharing, every controller that reads Pods (a dozen of them) held its own watch:
//! the API server encoded and encrypted each pod event a dozen times and the manager
//! decoded and cached each pod a dozen times — most of the manager's CPU and memory under
//! pod churn. Now a pod is decoded once, cached once (without `managedFields`, which no
//! controller reads: upstream's informer transform), and handed to each subscriber.
//!
//! Invariants: an event reaches subscribers only after the shared store applied it (a
//! reconcile triggered by it sees at least that state); a subscriber that joins late first
//! receives the current contents as a relist (`Init`, `InitApply`…, `InitDone`); the watch
//! runs while the [`Informers`] that started it lives.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::StreamExt;
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// What a controller gets for a kind: the shared store and its own event stream.
pub type Reflected<K> = (
    Store<K>,
    futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
);

/// The manager's shared informers, started on first use and stopped when dropped.
#[derive(Default)]
pub struct Informers {
    entries: Mutex<HashMap<Key, Box<dyn Any + Send + Sync>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or_default();
        f.debug_struct("Informers").field("informers", &n).finish()
    }
}

impl Drop for Informers {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// One informer per kind, URL (all namespaces or one) and selectors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: TypeId,
    url: String,
    labels: Option<String>,
    fields: Option<String>,
}

impl Informers {
    /// The shared store of `api`'s objects matching `config`'s selectors, and a new
    /// subscriber's stream of watch events (the store fills whether or not this stream is
    /// polled; the stream buffers what its controller has not consumed yet).
    ///
    /// Returns once the informer's first list completed (upstream's `WaitForCacheSync`):
    /// kube-runtime's `Store::wait_until_ready` wakes only the last of several concurrent
    /// waiters, so a shared store must be ready before controllers hold it.
    pub async fn reflected<K>(&self, api: Api<K>, config: watcher::Config) -> Reflected<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let shared = self.shared(api, config);
        shared.synced().await;
        (shared.store.clone(), shared.subscribe().map(Ok).boxed())
    }

    /// Only the shared store of `api`'s objects matching `config`'s selectors (for a
    /// controller that reads it periodically and needs no events), once synced.
    pub async fn store<K>(&self, api: Api<K>, config: watcher::Config) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let shared = self.shared(api, config);
        shared.synced().await;
        shared.store.clone()
    }

    /// The informer for `api` and `config`, started if it is the first ask.
    fn shared<K>(&self, api: Api<K>, config: watcher::Config) -> Arc<Shared<K>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let key = Key {
            kind: TypeId::of::<K>(),
            url: api.resource_url().to_owned(),
            labels: config.label_selector.clone(),
            fields: config.field_selector.clone(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(any) = entries.get(&key) {
            return any
                .downcast_ref::<Arc<Shared<K>>>()
                .expect("an informer's entry has its key's type")
                .clone();
        }
        let shared = Arc::new(Shared::new());
        entries.insert(key, Box::new(shared.clone()));
        let task = tokio::spawn(feed(shared.clone(), api, config));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task.abort_handle());
        shared
    }
}

/// One informer: the store's writer and the subscribers, under one lock so that a new
/// subscriber's snapshot and the live events after it never overlap or leave a gap.
struct Shared<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    inner: Mutex<Inner<K>>,
    /// Set once the first list completed.
    synced: tokio::sync::watch::Sender<bool>,
}

struct Inner<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<watcher::Event<K>>>,
    /// The objects of a list in progress (between `Init` and `InitDone`).
    listing: Option<Vec<K>>,
}

impl<K> Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    fn new() -> Self {
        let (store, writer) = reflector::store();
        Shared {
            store,
            synced: tokio::sync::watch::Sender::new(false),
            inner: Mutex::new(Inner {
                writer,
                subscribers: Vec::new(),
                listing: None,
            }),
        }
    }

    /// Waits until the first list completed.
    async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<watcher::Event<K>> {
        let (tx, rx) = mpsc::unbounded();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Whether a list has completed (the store holds a full state); set under `inner`.
        let listed = *self.synced.borrow();
        if listed || inner.listing.is_some() {
            let _ = tx.unbounded_send(watcher::Event::Init);
            if listed {
                for obj in self.store.state() {
                    let _ = tx.unbounded_send(watcher::Event::InitApply((*obj).clone()));
                }
            }
            for obj in inner.listing.iter().flatten() {
                let _ = tx.unbounded_send(watcher::Event::InitApply(obj.clone()));
            }
            if inner.listing.is_none() {
                let _ = tx.unbounded_send(watcher::Event::InitDone);
            }
        }
        inner.subscribers.push(tx);
        rx
    }

    fn apply(&self, event: watcher::Event<K>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.writer.apply_watcher_event(&event);
        match &event {
            watcher::Event::Init => inner.listing = Some(Vec::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(l) = inner.listing.as_mut() {
                    l.push(obj.clone());
                }
            }
            watcher::Event::InitDone => {
                inner.listing = None;
                self.synced.send_replace(true);
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {}
        }
        inner
            .subscribers
            .retain(|tx| tx.unbounded_send(event.clone()).is_ok());
    }
}

/// Runs one informer's watch (with upstream's backoff) into its store and subscribers.
async fn feed<K>(shared: Arc<Shared<K>>, api: Api<K>, config: watcher::Config)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let url = api.resource_url().to_owned();
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(item) = events.next().await {
        match item {
            Ok(mut event) => {
                if matches!(event, watcher::Event::InitDone) {
                    tracing::debug!(informer = %url, "informer synced");
                }
                strip(&mut event);
                shared.apply(event);
            }
            Err(e) => tracing::warn!(informer = %url, error = %e, "watch failed; retrying"),
        }
    }
}

/// Drops what no controller reads from a watched object (`managedFields`).
fn strip<K: Resource>(event: &mut watcher::Event<K>) {
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
            o.meta_mut().managed_fields = None
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("default".into());
        c
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<watcher::Event<ConfigMap>>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(match ev {
                watcher::Event::Init => "init".to_owned(),
                watcher::Event::InitApply(o) => format!("list {}", o.metadata.name.unwrap()),
                watcher::Event::InitDone => "done".to_owned(),
                watcher::Event::Apply(o) => format!("apply {}", o.metadata.name.unwrap()),
                watcher::Event::Delete(o) => format!("delete {}", o.metadata.name.unwrap()),
            });
        }
        out
    }

    #[test]
    fn every_subscriber_sees_each_event_after_the_store_applied_it() {
        let s = Shared::<ConfigMap>::new();
        let mut early = s.subscribe();
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(cm("a")));
        // Joins in the middle of the first list: gets what was listed so far.
        let mut middle = s.subscribe();
        s.apply(watcher::Event::InitApply(cm("b")));
        s.apply(watcher::Event::InitDone);
        assert_eq!(s.store.state().len(), 2);
        s.apply(watcher::Event::Apply(cm("c")));
        s.apply(watcher::Event::Delete(cm("a")));
        // Joins after: a relist of the store's contents, then live events.
        let mut late = s.subscribe();
        s.apply(watcher::Event::Apply(cm("d")));

        assert_eq!(
            drain(&mut early),
            ["init", "list a", "list b", "done", "apply c", "delete a", "apply d"]
        );
        assert_eq!(
            drain(&mut middle),
            ["init", "list a", "list b", "done", "apply c", "delete a", "apply d"]
        );
        let mut late = drain(&mut late);
        late[1..3].sort();
        assert_eq!(late, ["init", "list b", "list c", "done", "apply d"]);
        let mut names: Vec<_> = s
            .store
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["b", "c", "d"]);
    }

    #[tokio::test]
    async fn the_store_is_ready_after_the_first_list() {
        let s = Shared::<ConfigMap>::new();
        let store = s.store.clone();
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(5), store.wait_until_ready())
            .await
            .expect("ready")
            .unwrap();
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let s = Shared::<ConfigMap>::new();
        let rx = s.subscribe();
        drop(rx);
        s.apply(watcher::Event::Apply(cm("a")));
        assert!(s.inner.lock().unwrap().subscribers.is_empty());
    }

    #[test]
    fn managed_fields_are_dropped() {
        let mut c = cm("a");
        c.metadata.managed_fields = Some(vec![Default::default()]);
        let mut ev = watcher::Event::Apply(c);
        strip(&mut ev);
        let watcher::Event::Apply(c) = ev else {
            unreachable!()
        };
        assert!(c.metadata.managed_fields.is_none());
    }
}
