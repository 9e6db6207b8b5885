//! The garbage collector (upstream `garbage-collector-controller`): watches the metadata
//! of every deletable resource (found by discovery, re-discovered every 30 s so CRDs and
//! aggregated APIs join), keeps the ownership [`graph`] from `ownerReferences`, and
//! carries out deletion propagation:
//! - Background: once an owner is gone, dependents whose owners are all gone are deleted;
//! - Foreground: an owner holding the `foregroundDeletion` finalizer has its dependents
//!   deleted and loses the finalizer when no `blockOwnerDeletion` dependent is left;
//! - Orphan: an owner holding the `orphan` finalizer has its dependents' references to it
//!   removed, then the finalizer.
//!
//! Dependents whose owner does not exist (absent, or a different uid) are deleted.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use self::graph::{Graph, ObjectId, Work, FOREGROUND, ORPHAN};
use crate::discovery::{self, Discovered, Resource};
use crate::Context;

/// How often the set of watched resources is re-discovered (upstream's default).
const RESYNC: Duration = Duration::from_secs(30);
/// How long the worker waits for the first listing of every resource (a resource that
/// cannot be listed, e.g. of an aggregated API that is down, must not stop collection).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Resources the collector never watches (upstream's ignored resources).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// A watch event, as the graph builder receives it.
enum GraphEvent {
    Apply(ObjectId, PartialObjectMeta<DynamicObject>),
    Delete(String),
    /// A (re)list of one resource begins / ends: objects not listed are gone.
    Init(String, String),
    InitApply(ObjectId, PartialObjectMeta<DynamicObject>),
    InitDone(String, String),
    /// The first discovery started this many watches.
    Started(usize),
}

struct Shared {
    cx: Context,
    graph: Mutex<Graph>,
    discovered: Mutex<Discovered>,
    work: mpsc::UnboundedSender<Work>,
    /// Wakes the monitor loop for an early re-discovery (an owner of an unknown kind).
    rediscover: tokio::sync::Notify,
    /// Set once every resource watched from the start has been listed: the worker
    /// waits for it, so that orphaning and foreground deletion see every dependent.
    synced: tokio::sync::watch::Sender<bool>,
}

/// Runs the collector until dropped.
pub async fn run(cx: Context) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<GraphEvent>();
    let (work_tx, work_rx) = mpsc::unbounded_channel::<Work>();
    let shared = Arc::new(Shared {
        cx,
        graph: Mutex::default(),
        discovered: Mutex::default(),
        work: work_tx,
        rediscover: tokio::sync::Notify::new(),
        synced: tokio::sync::watch::Sender::new(false),
    });
    let monitors = tokio::spawn(monitor_resources(shared.clone(), events_tx));
    let builder = {
        let shared = shared.clone();
        async move {
            // Listed-but-not-yet-done sets per resource, to find objects deleted while
            // a watch was down.
            let mut relisting: HashMap<(String, String), HashSet<String>> = HashMap::new();
            let mut initial: Option<usize> = None;
            let mut listed: HashSet<(String, String)> = HashSet::new();
            while let Some(ev) = events_rx.recv().await {
                if let GraphEvent::InitDone(av, kind) = &ev {
                    listed.insert((av.clone(), kind.clone()));
                }
                if let GraphEvent::Started(n) = &ev {
                    initial = Some(*n);
                }
                if initial.is_some_and(|n| listed.len() >= n) {
                    shared.synced.send_replace(true);
                }
                let work = {
                    let mut g = shared.graph.lock().expect("graph lock");
                    match ev {
                        GraphEvent::Apply(id, meta) => observe(&mut g, id, &meta),
                        GraphEvent::InitApply(id, meta) => {
                            if let Some(seen) =
                                relisting.get_mut(&(id.api_version.clone(), id.kind.clone()))
                            {
                                seen.insert(id.uid.clone());
                            }
                            observe(&mut g, id, &meta)
                        }
                        GraphEvent::Delete(uid) => g.remove(&uid),
                        GraphEvent::Started(_) => Vec::new(),
                        GraphEvent::Init(av, kind) => {
                            relisting.insert((av, kind), HashSet::new());
                            Vec::new()
                        }
                        GraphEvent::InitDone(av, kind) => {
                            let seen = relisting.remove(&(av.clone(), kind.clone()));
                            let mut work = Vec::new();
                            if let Some(seen) = seen {
                                for uid in g.uids_of(&av, &kind) {
                                    if !seen.contains(&uid) {
                                        work.extend(g.remove(&uid));
                                    }
                                }
                            }
                            work
                        }
                    }
                };
                for w in work {
                    let _ = shared.work.send(w);
                }
            }
        }
    };
    let worker = process_work(shared.clone(), work_rx);
    tokio::select! {
        _ = builder => {}
        _ = worker => {}
    }
    monitors.abort();
}

fn observe(g: &mut Graph, id: ObjectId, meta: &PartialObjectMeta<DynamicObject>) -> Vec<Work> {
    let m = &meta.metadata;
    g.observe(
        id,
        m.owner_references.clone().unwrap_or_default(),
        m.deletion_timestamp.is_some(),
        m.finalizers.clone().unwrap_or_default(),
    )
}

/// Keeps one metadata watch per deletable resource, re-discovering every [`RESYNC`].
async fn monitor_resources(shared: Arc<Shared>, events: mpsc::UnboundedSender<GraphEvent>) {
    let mut monitors: HashMap<(String, String), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut first = true;
    loop {
        match discovery::discover(&shared.cx.client).await {
            Ok(found) => {
                if !found.failed.0.is_empty() {
                    tracing::warn!(error = %found.failed, "garbage-collector: discovery incomplete");
                }
                let wanted: Vec<Resource> = found
                    .resources
                    .iter()
                    .filter(|r| r.supports(&["delete", "list", "watch"]))
                    .filter(|r| {
                        !IGNORED
                            .iter()
                            .any(|(g, p)| *g == r.api.group && *p == r.api.plural)
                    })
                    .cloned()
                    .collect();
                let keys: HashSet<(String, String)> = wanted
                    .iter()
                    .map(|r| (r.api.group.clone(), r.api.plural.clone()))
                    .collect();
                monitors.retain(|k, task| {
                    let keep = keys.contains(k);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for r in wanted {
                    let key = (r.api.group.clone(), r.api.plural.clone());
                    if monitors.contains_key(&key) {
                        continue;
                    }
                    let task = tokio::spawn(monitor(shared.cx.clone(), r, events.clone()));
                    monitors.insert(key, task);
                }
                if first {
                    first = false;
                    let _ = events.send(GraphEvent::Started(monitors.len()));
                }
                // Keep a failed group's last known resources for owner lookups.
                let mut d = shared.discovered.lock().expect("discovery lock");
                let mut resources = found.resources;
                for old in &d.resources {
                    let failed_gv = found.failed.0.contains_key(&old.api.api_version);
                    if failed_gv && !resources.iter().any(|r| r.api == old.api) {
                        resources.push(old.clone());
                    }
                }
                *d = Discovered {
                    resources,
                    failed: found.failed,
                };
            }
            Err(e) => tracing::warn!(error = %e, "garbage-collector: discovery failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RESYNC) => {}
            _ = shared.rediscover.notified() => {}
        }
    }
}

/// One resource's metadata watch, feeding the graph builder.
async fn monitor(cx: Context, r: Resource, events: mpsc::UnboundedSender<GraphEvent>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(cx.watch_client.clone(), &r.api);
    let id = |m: &PartialObjectMeta<DynamicObject>| ObjectId {
        api_version: r.api.api_version.clone(),
        kind: r.api.kind.clone(),
        namespace: m.metadata.namespace.clone(),
        name: m.name_any(),
        uid: m.metadata.uid.clone().unwrap_or_default(),
    };
    let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(Event::Apply(m)) => GraphEvent::Apply(id(&m), m),
            Ok(Event::InitApply(m)) => GraphEvent::InitApply(id(&m), m),
            Ok(Event::Delete(m)) => GraphEvent::Delete(m.metadata.uid.unwrap_or_default()),
            Ok(Event::Init) => GraphEvent::Init(r.api.api_version.clone(), r.api.kind.clone()),
            Ok(Event::InitDone) => {
                GraphEvent::InitDone(r.api.api_version.clone(), r.api.kind.clone())
            }
            Err(e) => {
                tracing::debug!(error = %e, resource = %r.api.plural, "garbage-collector watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if events.send(ev).is_err() {
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot map {0} {1} to a resource")]
    Unmapped(String, String),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// The worker: processes work items one at a time, retrying failures with backoff.
async fn process_work(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Work>) {
    let mut failures: HashMap<Work, u32> = HashMap::new();
    let mut synced = shared.synced.subscribe();
    if tokio::time::timeout(SYNC_TIMEOUT, synced.wait_for(|s| *s))
        .await
        .is_err()
    {
        tracing::warn!("garbage-collector: not every resource could be listed; collecting anyway");
    }
    while let Some(w) = rx.recv().await {
        let result = match &w {
            Work::AttemptToDelete(uid) => attempt_to_delete(&shared, uid).await,
            Work::Orphan(uid) => orphan_dependents(&shared, uid).await,
        };
        match result {
            Ok(()) => {
                failures.remove(&w);
            }
            Err(e) => {
                if matches!(e, Error::Unmapped(..)) {
                    shared.rediscover.notify_one();
                }
                let n = failures.entry(w.clone()).or_default();
                *n = n.saturating_add(1);
                let delay = Duration::from_millis(200u64 << (*n - 1).min(8));
                tracing::debug!(error = %e, ?w, ?delay, "garbage-collector: retrying");
                let tx = shared.work.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(w);
                });
            }
        }
    }
}

/// The API of `id`'s resource (namespaced if the resource is), for the collector's own
/// writes, and whether the resource is namespaced.
fn api_for(
    shared: &Shared,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Result<(Api<DynamicObject>, bool), Error> {
    let d = shared.discovered.lock().expect("discovery lock");
    let r = d
        .by_kind(api_version, kind)
        .ok_or_else(|| Error::Unmapped(api_version.to_owned(), kind.to_owned()))?;
    let client = shared.cx.client.clone();
    Ok(match (r.namespaced, namespace) {
        (true, Some(ns)) => (Api::namespaced_with(client, ns, &r.api), true),
        (true, None) => (Api::all_with(client, &r.api), true),
        (false, _) => (Api::all_with(client, &r.api), false),
    })
}

/// The ownerReferences left, or null (removing the field) when none is, as upstream's
/// patches leave it.
fn refs_or_null(kept: &[&OwnerReference]) -> serde_json::Value {
    if kept.is_empty() {
        serde_json::Value::Null
    } else {
        json!(kept)
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Reads the object `id` names; None when absent or replaced (another uid).
async fn get_live(
    shared: &Shared,
    id: &ObjectId,
) -> Result<Option<PartialObjectMeta<DynamicObject>>, Error> {
    let (api, _) = api_for(shared, &id.api_version, &id.kind, id.namespace.as_deref())?;
    match api.get_metadata_opt(&id.name).await? {
        Some(m) if m.metadata.uid.as_deref() == Some(id.uid.as_str()) => Ok(Some(m)),
        _ => Ok(None),
    }
}

/// How one owner reference of a dependent stands.
enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Absent, or another object with the same name.
    Dangling,
    /// Being deleted in the foreground: waits for its dependents.
    WaitingForDependents,
}

async fn owner_state(
    shared: &Shared,
    dependent_ns: Option<&str>,
    r: &OwnerReference,
) -> Result<OwnerState, Error> {
    let (api, _) = api_for(shared, &r.api_version, &r.kind, dependent_ns)?;
    match api.get_metadata_opt(&r.name).await {
        Ok(Some(m)) if m.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
            let foreground = m.metadata.deletion_timestamp.is_some()
                && m.finalizers().iter().any(|f| f == FOREGROUND);
            Ok(if foreground {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            })
        }
        Ok(_) => Ok(OwnerState::Dangling),
        Err(e) => Err(e.into()),
    }
}

async fn attempt_to_delete(shared: &Shared, uid: &str) -> Result<(), Error> {
    let Some(node) = shared.graph.lock().expect("graph lock").get(uid).cloned() else {
        return Ok(());
    };
    if node.virtual_ {
        // An owner only known from references: does it exist?
        let (api, _) = api_for(
            shared,
            &node.id.api_version,
            &node.id.kind,
            node.id.namespace.as_deref(),
        )?;
        let exists = match api.get_metadata_opt(&node.id.name).await? {
            Some(m) => m.metadata.uid.as_deref() == Some(uid),
            None => false,
        };
        if !exists {
            let work = shared.graph.lock().expect("graph lock").absent(uid);
            for w in work {
                let _ = shared.work.send(w);
            }
        }
        return Ok(());
    }
    let Some(live) = get_live(shared, &node.id).await? else {
        // Gone: the watch will say so.
        return Ok(());
    };
    let deleting = live.metadata.deletion_timestamp.is_some();
    if deleting {
        if live.finalizers().iter().any(|f| f == FOREGROUND) {
            return process_deleting_dependents(shared, &node.id, &live).await;
        }
        return Ok(());
    }
    let owners = live.metadata.owner_references.clone().unwrap_or_default();
    if owners.is_empty() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for r in &owners {
        match owner_state(shared, node.id.namespace.as_deref(), r).await? {
            OwnerState::Solid => solid.push(r.uid.clone()),
            OwnerState::Dangling => dangling.push(r.uid.clone()),
            OwnerState::WaitingForDependents => waiting.push(r.uid.clone()),
        }
    }
    let (api, _) = api_for(
        shared,
        &node.id.api_version,
        &node.id.kind,
        node.id.namespace.as_deref(),
    )?;
    if !solid.is_empty() {
        // Still owned: only drop the references to owners that are gone or going.
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let kept: Vec<_> = owners
            .iter()
            .filter(|r| !dangling.contains(&r.uid) && !waiting.contains(&r.uid))
            .collect();
        let patch = json!({"metadata": {"uid": uid, "ownerReferences": refs_or_null(&kept)}});
        return match api
            .patch(
                &node.id.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    // Every owner is gone or deleting in the foreground: delete the dependent, in the
    // foreground too if an owner waits for it and it has dependents of its own.
    let has_dependents = !node.dependents.is_empty();
    let finalizers = live.finalizers();
    let policy = if !waiting.is_empty() && has_dependents {
        DeleteParams::foreground()
    } else if finalizers.iter().any(|f| f == ORPHAN) {
        DeleteParams::orphan()
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        DeleteParams::foreground()
    } else {
        DeleteParams::background()
    };
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..policy
    };
    tracing::debug!(object = %node.id.name, kind = %node.id.kind, "garbage-collector: deleting dependent");
    match api.delete(&node.id.name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An owner deleting in the foreground: delete its blocking dependents; once none is
/// left, remove its `foregroundDeletion` finalizer.
async fn process_deleting_dependents(
    shared: &Shared,
    id: &ObjectId,
    live: &PartialObjectMeta<DynamicObject>,
) -> Result<(), Error> {
    let blocking: Vec<(String, bool)> = {
        let g = shared.graph.lock().expect("graph lock");
        g.blocking_dependents(&id.uid)
            .iter()
            .map(|n| (n.id.uid.clone(), n.deleting))
            .collect()
    };
    if blocking.is_empty() {
        return remove_finalizer(shared, id, live, FOREGROUND).await;
    }
    for (uid, deleting) in blocking {
        if !deleting {
            let _ = shared.work.send(Work::AttemptToDelete(uid));
        }
    }
    Ok(())
}

/// Removes `finalizer` from the object (a merge patch carrying its resourceVersion, so
/// a concurrent change of the finalizers conflicts and is retried).
async fn remove_finalizer(
    shared: &Shared,
    id: &ObjectId,
    live: &PartialObjectMeta<DynamicObject>,
    finalizer: &str,
) -> Result<(), Error> {
    let (api, _) = api_for(shared, &id.api_version, &id.kind, id.namespace.as_deref())?;
    let rest: Vec<&String> = live
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    if rest.len() == live.finalizers().len() {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "uid": id.uid,
        "resourceVersion": live.metadata.resource_version,
        "finalizers": rest,
    }});
    match api
        .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An owner deleted with orphaning: its dependents drop their references to it, then
/// it loses the `orphan` finalizer.
async fn orphan_dependents(shared: &Shared, uid: &str) -> Result<(), Error> {
    let Some(node) = shared.graph.lock().expect("graph lock").get(uid).cloned() else {
        return Ok(());
    };
    let Some(live) = get_live(shared, &node.id).await? else {
        return Ok(());
    };
    if !live.finalizers().iter().any(|f| f == ORPHAN) {
        return Ok(());
    }
    let dependents: Vec<ObjectId> = {
        let g = shared.graph.lock().expect("graph lock");
        node.dependents
            .iter()
            .filter_map(|d| g.get(d))
            .filter(|d| !d.virtual_)
            .map(|d| d.id.clone())
            .collect()
    };
    for d in dependents {
        let Some(dep) = get_live(shared, &d).await? else {
            continue;
        };
        let refs = dep.metadata.owner_references.clone().unwrap_or_default();
        if !refs.iter().any(|r| r.uid == uid) {
            continue;
        }
        let kept: Vec<_> = refs.iter().filter(|r| r.uid != uid).collect();
        let (api, _) = api_for(shared, &d.api_version, &d.kind, d.namespace.as_deref())?;
        let patch = json!({"metadata": {"uid": d.uid, "ownerReferences": refs_or_null(&kept)}});
        match api
            .patch(&d.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    remove_finalizer(shared, &node.id, &live, ORPHAN).await
}
