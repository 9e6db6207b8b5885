//! The watch cache: one store watch per resource, fanned out to every client watch.
//!
//! Each resource's cache lists its prefix once, then follows one store watch. It keeps
//! the current objects (for `resourceVersion=0` lists and the initial events of a watch)
//! and a window of recent events, so a client watch from a recent resourceVersion is a
//! replay from memory followed by live events. A watch from before the window gets
//! upstream's 410 "too old resource version".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rkube_store::{EventKind, ListOptions, Revision, Store, WatchResponse};
use tokio::sync::{broadcast, watch};

/// Events kept per resource for replays, unless configured otherwise.
pub const DEFAULT_WINDOW: usize = 10_000;
/// Live events buffered per client watch before it is cut off as too slow.
const FANOUT: usize = 8_192;
/// How often the cache asks the store how far it has seen (drives bookmarks).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a watch or list from a resourceVersion the cache has not reached waits.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// An object as the cache holds it: the stored JSON and what filters need.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub revision: Revision,
    pub stored: Bytes,
    /// Its labels, read on first need ([`CachedObject::labels`]): most watches select
    /// by no label, and reading them was a pass over every object stored.
    labels: std::sync::OnceLock<BTreeMap<String, String>>,
    /// The stored JSON parsed, on first need ([`CachedObject::value`]).
    parsed: std::sync::OnceLock<Option<Arc<serde_json::Value>>>,
    /// What field selectors read of it, on first need ([`CachedObject::selectable`]).
    selectable: std::sync::OnceLock<Option<serde_json::Value>>,
}

impl CachedObject {
    fn new(key: String, revision: Revision, stored: Bytes) -> Self {
        CachedObject {
            key,
            revision,
            stored,
            labels: std::sync::OnceLock::new(),
            parsed: std::sync::OnceLock::new(),
            selectable: std::sync::OnceLock::new(),
        }
    }

    /// The object's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.labels
            .get_or_init(|| crate::meta::labels_of_stored(&self.stored))
    }

    /// The object parsed (`None`: its stored bytes are not JSON). Parsed once and shared:
    /// admission reads the same namespace, service account and classes for every pod
    /// created, and each parse was a full pass over the object.
    pub fn value(&self) -> Option<Arc<serde_json::Value>> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.stored).ok().map(Arc::new))
            .clone()
    }

    /// The part of the object field selectors read (`info` is its resource;
    /// [`rkube_api::fields::selectable_part`]), made once: every watch with a field
    /// selector tests each event's object and its previous state against it.
    pub fn selectable(
        &self,
        info: &rkube_api::resources::ResourceInfo,
    ) -> Option<&serde_json::Value> {
        self.selectable
            .get_or_init(|| rkube_api::fields::selectable_part(info, &self.stored))
            .as_ref()
    }
}

/// One change as client watches see it.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub revision: Revision,
    /// The object after the change (for a delete: as it was, at the delete's revision).
    pub object: Arc<CachedObject>,
    /// The object before the change, if any.
    pub prev: Option<Arc<CachedObject>>,
    /// The event lines and frames rendered for it, shared by every watcher (see
    /// [`Rendered`]).
    rendered: Rendered,
}

/// An event's rendered forms, one per format (JSON line, protobuf frame,
/// PartialObjectMetadata line), event type (ADDED, MODIFIED, DELETED) and whether
/// `managedFields` is left out ([`crate::codec::OMIT_MANAGED_FIELDS`]): made once for
/// all the watchers that send it, and forgotten once the event is [`HOT_EVENTS`] behind
/// the newest — by then every watcher that keeps up has sent it, and holding them for the
/// whole replay window would keep about two extra copies of every recent object.
#[derive(Debug, Default)]
struct Rendered(Mutex<[Option<Bytes>; 19]>);

/// The slot of the served object without `managedFields` (no event type around it): the
/// costly part of a lean JSON line, shared by the lines of different types (one watch
/// sees a binding as MODIFIED, another, whose field selector it now matches, as ADDED).
const LEAN_BODY: usize = 18;

/// How many of the newest events keep their rendered forms.
const HOT_EVENTS: usize = 1024;

impl Rendered {
    /// Rendered outside the lock (a render may read another slot); of two watchers that
    /// render the same slot at once, the first to finish is kept.
    fn get_or_render(&self, slot: usize, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        let lock = || self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = &lock()[slot] {
            return done.clone();
        }
        let made = Bytes::from(render());
        lock()[slot].get_or_insert(made).clone()
    }

    fn forget(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
    }
}

/// Which rendered form: JSON line, protobuf frame or PartialObjectMetadata line.
#[derive(Debug, Clone, Copy)]
enum Form {
    Line = 0,
    Frame = 3,
    MetaLine = 6,
}

impl CacheEvent {
    fn new(
        kind: EventKind,
        revision: Revision,
        object: Arc<CachedObject>,
        prev: Option<Arc<CachedObject>>,
    ) -> Self {
        CacheEvent {
            kind,
            revision,
            object,
            prev,
            rendered: Rendered::default(),
        }
    }

    /// The watch event line `{"type":T,"object":…}` for this change, shared by every
    /// client watch that sends it with the same type.
    pub fn line(&self, event_type: &str, lean: bool, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.shared(Form::Line, event_type, lean, render)
    }

    /// The protobuf watch frame for this change, shared likewise.
    pub fn frame(&self, event_type: &str, lean: bool, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.shared(Form::Frame, event_type, lean, render)
    }

    /// The PartialObjectMetadata (JSON) event line for this change, shared likewise.
    pub fn meta_line(
        &self,
        event_type: &str,
        lean: bool,
        render: impl FnOnce() -> Vec<u8>,
    ) -> Bytes {
        self.shared(Form::MetaLine, event_type, lean, render)
    }

    /// The served object without `metadata.managedFields`, as JSON, shared likewise.
    pub fn lean_body(&self, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.rendered.get_or_render(LEAN_BODY, render)
    }

    /// `lean`: the form without `metadata.managedFields`.
    fn shared(
        &self,
        form: Form,
        event_type: &str,
        lean: bool,
        render: impl FnOnce() -> Vec<u8>,
    ) -> Bytes {
        let kind = match event_type {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        };
        let lean = if lean { 9 } else { 0 };
        self.rendered
            .get_or_render(form as usize + kind + lean, render)
    }
}

/// Why a cache read failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld {
        requested: Revision,
        oldest: Revision,
    },
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge {
        requested: Revision,
        current: Revision,
    },
    #[error("the watch cache is not ready: {0}")]
    NotReady(String),
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    events: VecDeque<Arc<CacheEvent>>,
    /// Every change up to here has been applied.
    revision: Revision,
    /// Every event after this revision is in `events`.
    window_start: Revision,
    /// Live fan-out; replaced on reset, which ends every current subscription.
    live: broadcast::Sender<Arc<CacheEvent>>,
}

/// The cache of one resource prefix.
pub struct ResourceCache {
    state: Mutex<State>,
    /// Events kept for replays.
    window: usize,
    /// Asks the follower for a store progress report now (someone waits for a revision).
    progress_request: Arc<tokio::sync::Notify>,
    progress: watch::Sender<Revision>,
}

/// What a client watch starts from: the events to replay, then the live stream.
pub struct Subscription {
    pub replay: Vec<Arc<CacheEvent>>,
    pub initial: Vec<Arc<CachedObject>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    pub progress: watch::Receiver<Revision>,
    /// The revision the replay or initial state is at.
    pub revision: Revision,
}

impl ResourceCache {
    /// Lists `prefix` and starts following it; returns once the cache is filled.
    async fn start(
        store: Arc<dyn Store>,
        prefix: String,
        window: usize,
    ) -> rkube_store::Result<Arc<Self>> {
        let (objects, revision) = list_all(&*store, &prefix).await?;
        let (events, window_start) = history(&*store, &prefix, revision, window).await;
        let (live, _) = broadcast::channel(FANOUT);
        let (progress, _) = watch::channel(revision);
        let progress_request = Arc::new(tokio::sync::Notify::new());
        let cache = Arc::new(ResourceCache {
            window,
            progress_request: progress_request.clone(),
            state: Mutex::new(State {
                objects,
                events,
                revision,
                window_start,
                live,
            }),
            progress,
        });
        tokio::spawn(follow(
            Arc::downgrade(&cache),
            store,
            prefix,
            progress_request,
        ));
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The revision up to which the cache is current.
    pub fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Waits (bounded) until the cache has seen `revision`.
    async fn wait_for(&self, revision: Revision) -> Result<(), CacheError> {
        let mut rx = self.progress.subscribe();
        self.progress_request.notify_one();
        let reached = tokio::time::timeout(CATCH_UP_WAIT, rx.wait_for(|&r| r >= revision))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            Ok(())
        } else {
            Err(CacheError::TooLarge {
                requested: revision,
                current: self.revision(),
            })
        }
    }

    /// The object at `key` as the cache has it now (possibly a little behind the store).
    pub fn get_object(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.lock().objects.get(key).cloned()
    }

    /// The current objects under `prefix` (a sub-prefix of the cache's), at a revision
    /// not older than `min_revision`.
    pub async fn list(
        &self,
        prefix: &str,
        min_revision: Revision,
    ) -> Result<(Vec<Arc<CachedObject>>, Revision), CacheError> {
        if min_revision > self.revision() {
            self.wait_for(min_revision).await?;
        }
        let state = self.lock();
        let objects = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.clone())
            .collect();
        Ok((objects, state.revision))
    }

    /// Subscribes for changes after `after` (`None`: start with the current objects as
    /// initial state, then changes after them).
    pub async fn subscribe(
        &self,
        prefix: &str,
        after: Option<Revision>,
    ) -> Result<Subscription, CacheError> {
        if let Some(after) = after {
            if after > self.revision() {
                self.wait_for(after).await?;
            }
        }
        let state = self.lock();
        let live = state.live.subscribe();
        let progress = self.progress.subscribe();
        match after {
            None => {
                let initial = state
                    .objects
                    .range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(Subscription {
                    replay: Vec::new(),
                    initial,
                    live,
                    progress,
                    revision: state.revision,
                })
            }
            Some(after) => {
                if after < state.window_start {
                    return Err(CacheError::TooOld {
                        requested: after,
                        oldest: state.window_start + 1,
                    });
                }
                let replay = state
                    .events
                    .iter()
                    .filter(|e| e.revision > after && e.object.key.starts_with(prefix))
                    .cloned()
                    .collect();
                Ok(Subscription {
                    replay,
                    initial: Vec::new(),
                    live,
                    progress,
                    revision: state.revision.max(after),
                })
            }
        }
    }

    fn apply(&self, events: Vec<rkube_store::Event>) {
        let mut state = self.lock();
        for e in events {
            let revision = e.revision();
            let prev = state.objects.get(&e.kv.key).cloned();
            let object = match e.kind {
                EventKind::Delete => {
                    state.objects.remove(&e.kv.key);
                    let last = e.prev_kv.map(|p| p.value).unwrap_or_default();
                    Arc::new(CachedObject::new(e.kv.key.clone(), revision, last))
                }
                _ => {
                    let obj = Arc::new(CachedObject::new(e.kv.key.clone(), revision, e.kv.value));
                    state.objects.insert(e.kv.key.clone(), obj.clone());
                    obj
                }
            };
            let event = Arc::new(CacheEvent::new(e.kind, revision, object, prev));
            if state.events.len() >= self.window {
                if let Some(old) = state.events.pop_front() {
                    state.window_start = old.revision;
                }
            }
            state.events.push_back(event.clone());
            if let Some(cooled) = state.events.len().checked_sub(HOT_EVENTS + 1) {
                state.events[cooled].rendered.forget();
            }
            state.revision = revision;
            let _ = state.live.send(event);
        }
        let revision = state.revision;
        drop(state);
        self.progress.send_replace(revision);
    }

    fn advance(&self, revision: Revision) {
        let mut state = self.lock();
        if revision > state.revision {
            state.revision = revision;
            drop(state);
            self.progress.send_replace(revision);
        }
    }

    /// Replaces the contents after the store watch was lost (e.g. compacted away).
    /// Current client watches are cut off so that they re-watch.
    fn reset(&self, objects: BTreeMap<String, Arc<CachedObject>>, revision: Revision) {
        let mut state = self.lock();
        let (live, _) = broadcast::channel(FANOUT);
        *state = State {
            objects,
            events: VecDeque::new(),
            revision,
            window_start: revision,
            live,
        };
        drop(state);
        self.progress.send_replace(revision);
    }
}

/// The recent history of `prefix` up to `revision` (the cache's starting point), so that
/// watches from a resourceVersion a client saw before the cache existed can be served:
/// up to `window` revisions back, or to the store's compaction. Returns the events and
/// the revision after which the window is complete; on any failure, no history.
async fn history(
    store: &dyn Store,
    prefix: &str,
    revision: Revision,
    window: usize,
) -> (VecDeque<Arc<CacheEvent>>, Revision) {
    let mut from = (revision - window as Revision).max(0);
    let mut watch = match store.watch(prefix, from).await {
        Ok(w) => w,
        Err(rkube_store::Error::Compacted { compacted, .. }) if compacted <= revision => {
            match store.watch(prefix, compacted).await {
                Ok(w) => {
                    from = compacted;
                    w
                }
                Err(_) => return (VecDeque::new(), revision),
            }
        }
        Err(_) => return (VecDeque::new(), revision),
    };
    let mut events = VecDeque::new();
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    watch.request_progress();
    loop {
        match tokio::time::timeout_at(deadline, watch.recv()).await {
            Ok(Some(Ok(WatchResponse::Events(batch)))) => {
                for e in batch {
                    if e.revision() > revision {
                        return (events, from);
                    }
                    let object = match e.kind {
                        EventKind::Delete => e
                            .prev_kv
                            .as_ref()
                            .map(|p| p.value.clone())
                            .unwrap_or_default(),
                        _ => e.kv.value.clone(),
                    };
                    let prev = e
                        .prev_kv
                        .map(|p| Arc::new(CachedObject::new(p.key, p.mod_revision, p.value)));
                    events.push_back(Arc::new(CacheEvent::new(
                        e.kind,
                        e.kv.mod_revision,
                        Arc::new(CachedObject::new(e.kv.key, e.kv.mod_revision, object)),
                        prev,
                    )));
                    if events.len() > window {
                        if let Some(old) = events.pop_front() {
                            from = old.revision;
                        }
                    }
                }
            }
            Ok(Some(Ok(WatchResponse::Progress(r)))) if r >= revision => return (events, from),
            Ok(Some(Ok(WatchResponse::Progress(_)))) => watch.request_progress(),
            _ => return (VecDeque::new(), revision),
        }
    }
}

async fn list_all(
    store: &dyn Store,
    prefix: &str,
) -> rkube_store::Result<(BTreeMap<String, Arc<CachedObject>>, Revision)> {
    let mut objects = BTreeMap::new();
    let mut options = ListOptions {
        limit: Some(1000),
        ..Default::default()
    };
    loop {
        let page = store.list(prefix, options.clone()).await?;
        for kv in page.kvs {
            objects.insert(
                kv.key.clone(),
                Arc::new(CachedObject::new(kv.key, kv.mod_revision, kv.value)),
            );
        }
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => return Ok((objects, page.revision)),
        }
    }
}

/// Lists again after the store watch was lost and resets the cache to the result.
async fn relist(weak: &std::sync::Weak<ResourceCache>, store: &dyn Store, prefix: &str) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        match list_all(store, prefix).await {
            Ok((objects, revision)) => {
                if let Some(cache) = weak.upgrade() {
                    cache.reset(objects, revision);
                }
                return;
            }
            Err(err) => {
                tracing::warn!(prefix, error = %err, "watch cache relist failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Follows the store watch for as long as the cache is in use.
async fn follow(
    weak: std::sync::Weak<ResourceCache>,
    store: Arc<dyn Store>,
    prefix: String,
    progress_request: Arc<tokio::sync::Notify>,
) {
    loop {
        let Some(from) = weak.upgrade().map(|c| c.revision()) else {
            return;
        };
        let mut watch = match store.watch(&prefix, from).await {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(prefix, error = %err, "watch cache lost its store watch; relisting");
                relist(&weak, &*store, &prefix).await;
                continue;
            }
        };
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        loop {
            tokio::select! {
                msg = watch.recv() => {
                    let Some(cache) = weak.upgrade() else { return };
                    match msg {
                        Some(Ok(WatchResponse::Events(events))) => cache.apply(events),
                        Some(Ok(WatchResponse::Progress(revision))) => cache.advance(revision),
                        Some(Err(err)) => {
                            tracing::warn!(prefix, error = %err, "watch cache store watch failed; relisting");
                            drop(cache);
                            relist(&weak, &*store, &prefix).await;
                            break;
                        }
                        None => break,
                    }
                }
                _ = ticker.tick() => {
                    if weak.strong_count() == 0 {
                        return;
                    }
                    watch.request_progress();
                }
                () = progress_request.notified() => watch.request_progress(),
            }
        }
    }
}

/// The caches of every resource, started on first use.
pub struct WatchCaches {
    caches: tokio::sync::Mutex<HashMap<String, Arc<ResourceCache>>>,
    window: usize,
}

impl Default for WatchCaches {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl WatchCaches {
    /// Caches that keep `window` events per resource for replays (upstream's
    /// `--default-watch-cache-size`).
    pub fn new(window: usize) -> Self {
        WatchCaches {
            caches: Default::default(),
            window: window.max(1),
        }
    }

    /// The cache of `prefix`, listing and starting it if this is its first use.
    pub async fn get(
        &self,
        store: &Arc<dyn Store>,
        prefix: &str,
    ) -> Result<Arc<ResourceCache>, CacheError> {
        let mut caches = self.caches.lock().await;
        if let Some(cache) = caches.get(prefix) {
            return Ok(cache.clone());
        }
        let cache = ResourceCache::start(store.clone(), prefix.to_owned(), self.window)
            .await
            .map_err(|e| CacheError::NotReady(e.to_string()))?;
        caches.insert(prefix.to_owned(), cache.clone());
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: Revision) -> CacheEvent {
        let object = Arc::new(CachedObject::new(
            format!("/registry/configmaps/default/c{revision}"),
            revision,
            Bytes::from_static(br#"{"metadata":{"name":"c","labels":{"a":"b"}}}"#),
        ));
        CacheEvent::new(EventKind::Create, revision, object, None)
    }

    #[test]
    fn rendered_forms_are_shared_per_format_and_type_until_forgotten() {
        let e = event(1);
        let renders = std::cell::Cell::new(0);
        let render = |what: &str| {
            renders.set(renders.get() + 1);
            what.as_bytes().to_vec()
        };
        assert_eq!(e.line("ADDED", false, || render("a")), "a");
        assert_eq!(e.line("ADDED", false, || render("again")), "a");
        assert_eq!(e.line("MODIFIED", false, || render("m")), "m");
        assert_eq!(e.frame("ADDED", false, || render("f")), "f");
        assert_eq!(e.meta_line("ADDED", false, || render("meta")), "meta");
        assert_eq!(e.line("ADDED", true, || render("lean")), "lean");
        assert_eq!(
            e.meta_line("ADDED", true, || render("lean meta")),
            "lean meta"
        );
        assert_eq!(e.line("ADDED", true, || render("again")), "lean");
        assert_eq!(e.line("ADDED", false, || render("again")), "a");
        assert_eq!(renders.get(), 6);
        assert_eq!(e.object.labels().get("a").map(String::as_str), Some("b"));
        e.rendered.forget();
        assert_eq!(e.line("ADDED", false, || render("fresh")), "fresh");
        assert_eq!(renders.get(), 7);
    }

    #[test]
    fn a_lean_body_is_rendered_once_for_lines_of_every_type() {
        let e = event(1);
        let bodies = std::cell::Cell::new(0);
        let line = |kind: &str| {
            e.line(kind, true, || {
                let body = e.lean_body(|| {
                    bodies.set(bodies.get() + 1);
                    b"{\"o\":1}".to_vec()
                });
                [kind.as_bytes(), &body].concat()
            })
        };
        // A render reads another slot of the same event (no deadlock), once for both.
        assert_eq!(line("MODIFIED"), "MODIFIED{\"o\":1}");
        assert_eq!(line("ADDED"), "ADDED{\"o\":1}");
        assert_eq!(line("ADDED"), "ADDED{\"o\":1}");
        assert_eq!(bodies.get(), 1);
    }

    #[tokio::test]
    async fn the_cache_forgets_renders_of_events_past_the_hot_ones() {
        let (live, _) = broadcast::channel(16);
        let cache = ResourceCache {
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
                window_start: 0,
                live,
            }),
            window: DEFAULT_WINDOW,
            progress_request: Arc::new(tokio::sync::Notify::new()),
            progress: watch::channel(0).0,
        };
        let put = |revision: Revision| rkube_store::Event {
            kind: EventKind::Create,
            kv: rkube_store::KeyValue {
                key: format!("/registry/configmaps/default/c{revision}"),
                value: Bytes::from_static(br#"{"metadata":{"name":"c"}}"#),
                create_revision: revision,
                mod_revision: revision,
            },
            prev_kv: None,
        };
        cache.apply(vec![put(1)]);
        let first = cache.lock().events[0].clone();
        first.line("ADDED", false, || b"first".to_vec());
        cache.apply((2..=HOT_EVENTS as Revision).map(put).collect());
        assert_eq!(
            first.line("ADDED", false, || b"re-rendered".to_vec()),
            "first"
        );
        cache.apply(vec![put(HOT_EVENTS as Revision + 1)]);
        assert_eq!(
            first.line("ADDED", false, || b"re-rendered".to_vec()),
            "re-rendered",
            "the oldest event's render should be forgotten once {HOT_EVENTS} newer events came"
        );
        let newest = cache.lock().events.back().cloned().unwrap();
        newest.line("ADDED", false, || b"newest".to_vec());
        assert_eq!(newest.line("ADDED", false, || b"other".to_vec()), "newest");
    }
}
