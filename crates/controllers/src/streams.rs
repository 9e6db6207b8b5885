//! Shared informers: one watch and one reflector store per kind (and scope) for all the
//! controllers of a manager, as upstream's `SharedInformerFactory`. Each controller that
//! asks for a kind gets the shared [`Store`] and its own stream of the watch events, which
//! a `Controller` drives ([`touched`] objects into `for_shared_stream` /
//! `watches_shared_stream`).
//!
//! Without sharing, every controller that reads Pods (a dozen of them) held its own watch:
//! the API server encoded and encrypted each pod event a dozen times and the manager
//! decoded and cached each pod a dozen times — most of the manager's CPU and memory under
//! pod churn. Now a pod is decoded once, cached once (without `managedFields`, which no
//! controller reads: upstream's informer transform), and handed to each subscriber as one
//! shared `Arc` (the store's own where it has one): a subscriber costs a pointer per
//! event, not a deep copy of the object.
//!
//! Invariants: an event reaches subscribers only after the shared store applied it (a
//! reconcile triggered by it sees at least that state); a subscriber that joins late first
//! receives the current contents as a relist (`Init`, `InitApply`…, `InitDone`); the watch
//! runs while the [`Informers`] that started it lives; all informers watch through the one
//! client the [`Informers`] were made with (the manager's identity).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, store::Writer, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// A subscriber's stream of watch events. Every subscriber of an informer receives the
/// same `Arc` for an event's object; the stream never fails (the informer logs watch
/// errors and retries with backoff itself).
pub type Events<K> = futures::stream::BoxStream<'static, watcher::Event<Arc<K>>>;

/// What a controller gets for a kind: the shared store and its own event stream.
pub type Reflected<K> = (Store<K>, Events<K>);

/// The objects an event stream applies or deletes (kube-runtime's `touched_objects`), for
/// `Controller::for_shared_stream` and `watches_shared_stream`.
pub fn touched<K, S>(events: S) -> impl Stream<Item = Arc<K>> + Send
where
    S: Stream<Item = watcher::Event<Arc<K>>> + Send,
    K: Send + Sync,
{
    events.filter_map(|event| {
        futures::future::ready(match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                Some(o)
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        })
    })
}

/// The manager's shared informers, started on first use and stopped when dropped. They
/// list and watch through the client they were made with.
pub struct Informers {
    client: Client,
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
    /// Informers that list and watch through `client`.
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            entries: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    /// The shared store of the `K`s of all namespaces matching `config`'s selectors, and
    /// a new subscriber's stream of watch events (the store fills whether or not this
    /// stream is polled; the stream buffers what its controller has not consumed yet).
    ///
    /// Returns once the informer's first list completed (upstream's `WaitForCacheSync`):
    /// kube-runtime's `Store::wait_until_ready` wakes only the last of several concurrent
    /// waiters, so a shared store must be ready before controllers hold it.
    pub async fn all<K>(&self, config: watcher::Config) -> Reflected<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        reflected(self.shared(Api::all(self.client.clone()), config)).await
    }

    /// As [`Informers::all`], for the `K`s of namespace `ns` only.
    pub async fn namespaced<K>(&self, ns: &str, config: watcher::Config) -> Reflected<K>
    where
        K: Resource<Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        reflected(self.shared(Api::namespaced(self.client.clone(), ns), config)).await
    }

    /// Only the shared store of the `K`s of all namespaces matching `config`'s selectors
    /// (for a controller that reads it and needs no events), once synced.
    pub async fn store<K>(&self, config: watcher::Config) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    {
        let shared = self.shared(Api::all(self.client.clone()), config);
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

/// `shared`'s store and a new subscriber, once its first list completed.
async fn reflected<K>(shared: Arc<Shared<K>>) -> Reflected<K>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    shared.synced().await;
    (shared.store.clone(), shared.subscribe().boxed())
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
    subscribers: Vec<mpsc::UnboundedSender<watcher::Event<Arc<K>>>>,
    /// The objects of a list in progress (between `Init` and `InitDone`).
    listing: Option<Vec<Arc<K>>>,
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

    fn subscribe(&self) -> mpsc::UnboundedReceiver<watcher::Event<Arc<K>>> {
        let (tx, rx) = mpsc::unbounded();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Whether a list has completed (the store holds a full state); set under `inner`.
        let listed = *self.synced.borrow();
        if listed || inner.listing.is_some() {
            let _ = tx.unbounded_send(watcher::Event::Init);
            if listed {
                for obj in self.store.state() {
                    let _ = tx.unbounded_send(watcher::Event::InitApply(obj));
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
        // The writer keeps its own copy (its API takes the event by reference).
        inner.writer.apply_watcher_event(&event);
        let event = match event {
            // Share the copy the store now holds: the writer is only used under `inner`,
            // so the store's entry for the key is this object.
            watcher::Event::Apply(obj) => {
                let stored = self.store.get(&ObjectRef::from_obj(&obj));
                watcher::Event::Apply(stored.unwrap_or_else(|| Arc::new(obj)))
            }
            watcher::Event::Delete(obj) => watcher::Event::Delete(Arc::new(obj)),
            watcher::Event::Init => {
                inner.listing = Some(Vec::new());
                watcher::Event::Init
            }
            watcher::Event::InitApply(obj) => {
                // The writer buffers a list until `InitDone`, out of reach: one `Arc` for
                // the listing buffer and the subscribers.
                let obj = Arc::new(obj);
                if let Some(l) = inner.listing.as_mut() {
                    l.push(obj.clone());
                }
                watcher::Event::InitApply(obj)
            }
            watcher::Event::InitDone => {
                inner.listing = None;
                self.synced.send_replace(true);
                watcher::Event::InitDone
            }
        };
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("default".into());
        c
    }

    fn name(o: &ConfigMap) -> &str {
        o.metadata.name.as_deref().unwrap()
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<watcher::Event<Arc<ConfigMap>>>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(match ev {
                watcher::Event::Init => "init".to_owned(),
                watcher::Event::InitApply(o) => format!("list {}", name(&o)),
                watcher::Event::InitDone => "done".to_owned(),
                watcher::Event::Apply(o) => format!("apply {}", name(&o)),
                watcher::Event::Delete(o) => format!("delete {}", name(&o)),
            });
        }
        out
    }

    fn object(ev: watcher::Event<Arc<ConfigMap>>) -> Arc<ConfigMap> {
        match ev {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                o
            }
            watcher::Event::Init | watcher::Event::InitDone => panic!("not an object event"),
        }
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

    #[test]
    fn subscribers_share_one_allocation_per_event() {
        let s = Shared::<ConfigMap>::new();
        let mut a = s.subscribe();
        let mut b = s.subscribe();
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(cm("x")));
        s.apply(watcher::Event::InitDone);
        s.apply(watcher::Event::Apply(cm("y")));
        s.apply(watcher::Event::Delete(cm("x")));
        let objects = |rx: &mut mpsc::UnboundedReceiver<_>| -> Vec<Arc<ConfigMap>> {
            std::iter::from_fn(|| rx.try_recv().ok())
                .filter(|e| !matches!(e, watcher::Event::Init | watcher::Event::InitDone))
                .map(object)
                .collect()
        };
        let (a, b) = (objects(&mut a), objects(&mut b));
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert!(Arc::ptr_eq(x, y), "{} was copied per subscriber", name(x));
        }
        // An applied object is the store's own copy, not one more.
        let y = s.store.get(&ObjectRef::new("y").within("default")).unwrap();
        assert!(Arc::ptr_eq(&a[1], &y));
        // A late joiner's relist hands out the store's objects themselves.
        let mut late = s.subscribe();
        assert!(matches!(late.try_recv(), Ok(watcher::Event::Init)));
        assert!(Arc::ptr_eq(&object(late.try_recv().unwrap()), &y));
        assert!(matches!(late.try_recv(), Ok(watcher::Event::InitDone)));
    }

    #[tokio::test]
    async fn touched_yields_applied_listed_and_deleted_objects() {
        let events: Events<ConfigMap> = futures::stream::iter([
            watcher::Event::Init,
            watcher::Event::InitApply(Arc::new(cm("a"))),
            watcher::Event::InitDone,
            watcher::Event::Apply(Arc::new(cm("b"))),
            watcher::Event::Delete(Arc::new(cm("a"))),
        ])
        .boxed();
        let names: Vec<String> = touched(events).map(|o| name(&o).to_owned()).collect().await;
        assert_eq!(names, ["a", "b", "a"]);
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

    /// A fake API server: a ConfigMap list answers one object (with managedFields) at
    /// resourceVersion 1 and counts as a list; a watch never answers.
    fn fake_client(lists: Arc<AtomicUsize>) -> Client {
        let api = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let lists = lists.clone();
            async move {
                if req.uri().query().unwrap_or_default().contains("watch=true") {
                    futures::future::pending::<()>().await;
                }
                lists.fetch_add(1, Ordering::SeqCst);
                let list = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMapList",
                    "metadata": {"resourceVersion": "1"},
                    "items": [{
                        "metadata": {
                            "name": "a",
                            "namespace": "default",
                            "managedFields": [{"manager": "kubectl"}],
                        },
                    }],
                });
                Ok::<_, std::convert::Infallible>(http::Response::new(list.to_string()))
            }
        });
        Client::new(api, "default")
    }

    async fn wait<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(std::time::Duration::from_secs(10), f)
            .await
            .expect("the informer synced")
    }

    #[tokio::test]
    async fn one_informer_per_kind_scope_and_selectors_through_its_own_client() {
        let lists = Arc::new(AtomicUsize::new(0));
        let informers = Informers::new(fake_client(lists.clone()));
        let (store, mut events) = wait(informers.all::<ConfigMap>(Default::default())).await;
        // Handed out after the first list, cached without managedFields.
        let a = store.state();
        assert_eq!(a.len(), 1);
        assert!(a[0].metadata.managed_fields.is_none());
        // The subscriber starts with a relist of the store's own objects.
        assert!(matches!(events.next().await, Some(watcher::Event::Init)));
        assert!(Arc::ptr_eq(&object(events.next().await.unwrap()), &a[0]));
        assert!(matches!(
            events.next().await,
            Some(watcher::Event::InitDone)
        ));
        // The same kind, scope and selectors: the same informer, no second list.
        let again = wait(informers.store::<ConfigMap>(Default::default())).await;
        assert!(Arc::ptr_eq(&again.state()[0], &a[0]));
        assert_eq!(lists.load(Ordering::SeqCst), 1);
        // Another scope or selector: an informer of its own.
        let (one_ns, _) =
            wait(informers.namespaced::<ConfigMap>("default", Default::default())).await;
        assert!(!Arc::ptr_eq(&one_ns.state()[0], &a[0]));
        assert_eq!(lists.load(Ordering::SeqCst), 2);
        let (labelled, _) =
            wait(informers.all::<ConfigMap>(watcher::Config::default().labels("app=x"))).await;
        assert!(!Arc::ptr_eq(&labelled.state()[0], &a[0]));
        assert_eq!(lists.load(Ordering::SeqCst), 3);
        assert_eq!(informers.entries.lock().unwrap().len(), 3);
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
