//! The namespace controller (upstream `namespace-controller`): when a namespace is
//! deleted (deletionTimestamp set, phase Terminating, `kubernetes` in `spec.finalizers`),
//! it discovers every namespaced resource — built-in, CRDs, aggregated APIs — deletes
//! the namespace's objects (deletecollection where served, else one by one), waits for
//! them to be gone, and then removes the `kubernetes` finalizer through
//! `namespaces/<name>/finalize`. Each pass is recorded as upstream's deletion conditions
//! on the namespace status ([`conditions`]); a namespace whose content cannot be removed
//! (a failing aggregated API, a finalizer nobody removes) stays Terminating, says why,
//! and is retried with backoff.

pub mod conditions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use self::conditions::Pass;
use crate::discovery::{self, Resource};
use crate::Context;

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// Upstream's estimate for content held by finalizers (seconds).
const FINALIZER_ESTIMATE: i64 = 15;
/// The longest wait between passes over a namespace with content left.
const MAX_RETRY: Duration = Duration::from_secs(8);

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let namespaces: Api<Namespace> = Api::all(cx.watch_client.clone());
    let state = Arc::new(State {
        cx,
        attempts: Mutex::default(),
    });
    Controller::new(namespaces, watcher::Config::default())
        .run(
            crate::metrics::queue().reconciler(reconcile),
            crate::metrics::queue().error_policy(error_policy),
            state,
        )
        .for_each(|_| async {})
        .await;
}

struct State {
    cx: Context,
    /// Passes so far per deleting namespace (for the retry backoff).
    attempts: Mutex<HashMap<String, u32>>,
}

impl State {
    /// The next retry delay for `ns`: 0.5 s doubling up to [`MAX_RETRY`].
    fn backoff(&self, ns: &str) -> Duration {
        let mut attempts = self.attempts.lock().expect("attempts lock");
        let n = attempts.entry(ns.to_owned()).or_default();
        *n = n.saturating_add(1);
        Duration::from_millis(500u64.saturating_mul(1 << (*n - 1).min(5))).min(MAX_RETRY)
    }

    fn forget(&self, ns: &str) {
        self.attempts.lock().expect("attempts lock").remove(ns);
    }
}

/// Why a pass did not finish the namespace.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("namespace {0}: {1}")]
    Api(String, #[source] kube::Error),
    #[error("namespace {0}: content deletion failed: {1}")]
    ContentFailed(String, String),
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    let name = ns.name_any();
    if ns.metadata.deletion_timestamp.is_none() {
        state.forget(&name);
        return Ok(Action::await_change());
    }
    let api: Api<Namespace> = Api::all(state.cx.client.clone());
    let err = |e| Error::Api(name.clone(), e);
    // Several parties edit a terminating namespace: work from its latest state.
    let Some(mut ns) = api.get_opt(&name).await.map_err(err)? else {
        state.forget(&name);
        return Ok(Action::await_change());
    };
    let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
        return Ok(Action::await_change());
    };
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        state.forget(&name);
        return Ok(Action::await_change());
    }
    let (pass, estimate) = delete_content(&state.cx, &name, &deleted_at).await;
    let status = ns.status.get_or_insert_with(Default::default);
    let mut changed = status.phase.as_deref() != Some("Terminating");
    status.phase = Some("Terminating".into());
    let conds = status.conditions.get_or_insert_with(Vec::new);
    changed |= conditions::update(conds, &pass, &Time(k8s_openapi::jiff::Timestamp::now()));
    if changed {
        ns = api
            .replace_status(&name, &PostParams::default(), &ns)
            .await
            .map_err(err)?;
    }
    if pass.failed() {
        let mut reasons = pass.failures();
        reasons.retain(|(t, ..)| {
            matches!(
                *t,
                "NamespaceDeletionDiscoveryFailure"
                    | "NamespaceDeletionGroupVersionParsingFailure"
                    | "NamespaceDeletionContentFailure"
            )
        });
        let msg: Vec<String> = reasons.into_iter().map(|(_, _, m)| m).collect();
        return Err(Error::ContentFailed(name, msg.join("; ")));
    }
    if estimate > 0 {
        let wait = Duration::from_secs((estimate / 2 + 1) as u64).min(state.backoff(&name));
        tracing::debug!(namespace = %name, ?wait, "content remains in the namespace");
        return Ok(Action::requeue(wait));
    }
    // Everything is gone: release our finalizer.
    let mut finalized = ns.clone();
    let spec = finalized.spec.get_or_insert_with(Default::default);
    let mut rest: Vec<String> = finalizers.into_iter().filter(|f| f != FINALIZER).collect();
    rest.sort();
    rest.dedup();
    spec.finalizers = Some(rest);
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(err(e)),
    }
    tracing::info!(namespace = %name, "namespace content removed; finalized");
    state.forget(&name);
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, error: &Error, state: Arc<State>) -> Action {
    tracing::warn!(%error, "namespace-controller");
    Action::requeue(state.backoff(&ns.name_any()))
}

/// One pass: deletes every namespaced object in `ns` and reports what is left, with an
/// estimate (seconds) of how long until it is gone (0 when nothing is left).
async fn delete_content(cx: &Context, ns: &str, deleted_at: &Time) -> (Pass, i64) {
    let mut pass = Pass::default();
    let discovered = match discovery::discover(&cx.client).await {
        Ok(d) => d,
        Err(e) => {
            // Not even the group lists: nothing can be deleted this pass.
            pass.discovery_failed
                .insert(String::new(), discovery::error_message(&e));
            return (pass, 0);
        }
    };
    pass.discovery_failed = discovered.failed.0.clone();
    let mut estimate = 0;
    for r in discovered
        .resources
        .iter()
        .filter(|r| r.namespaced && r.supports(&["delete"]))
    {
        match delete_resource(cx, r, ns, deleted_at).await {
            Ok(left) => {
                estimate = estimate.max(left.estimate);
                if left.count > 0 {
                    pass.remaining
                        .insert(format!("{}.{}", r.api.plural, r.api.group), left.count);
                    for (f, n) in left.finalizers {
                        *pass.finalizers.entry(f).or_default() += n;
                    }
                }
            }
            Err(e) => {
                estimate = estimate.max(e.estimate);
                pass.content_errors.push(e.message);
            }
        }
    }
    (pass, estimate)
}

/// What is left of one resource after deleting it.
#[derive(Default)]
struct Left {
    estimate: i64,
    count: usize,
    finalizers: HashMap<String, usize>,
}

struct ContentError {
    estimate: i64,
    message: String,
}

async fn delete_resource(
    cx: &Context,
    r: &Resource,
    ns: &str,
    deleted_at: &Time,
) -> Result<Left, ContentError> {
    let api: Api<DynamicObject> = Api::namespaced_with(cx.client.clone(), ns, &r.api);
    let mut estimate = 0;
    let fail = |estimate, e: kube::Error| ContentError {
        estimate,
        message: discovery::error_message(&e),
    };
    if r.api.group.is_empty() && r.api.plural == "pods" {
        estimate = pods_estimate(cx, ns, deleted_at)
            .await
            .map_err(|e| fail(0, e))?;
    }
    // Background propagation: the namespace controller removes everything itself and
    // must not make the garbage collector orphan anything.
    let dp = DeleteParams::background();
    let unsupported =
        |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 405 || s.code == 404);
    let mut collected = false;
    if r.supports(&["deletecollection"]) {
        match api.delete_collection(&dp, &ListParams::default()).await {
            Ok(_) => collected = true,
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(fail(estimate, e)),
        }
    }
    if !r.supports(&["list"]) {
        return Ok(Left {
            estimate,
            ..Left::default()
        });
    }
    if !collected {
        let items = match api.list_metadata(&ListParams::default()).await {
            Ok(l) => l.items,
            Err(e) if unsupported(&e) => return Ok(Left::default()),
            Err(e) => return Err(fail(estimate, e)),
        };
        for item in items {
            match api.delete(&item.name_any(), &dp).await {
                Ok(_) => {}
                Err(e) if unsupported(&e) => {}
                Err(e) => return Err(fail(estimate, e)),
            }
        }
    }
    let items = match api.list_metadata(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) if unsupported(&e) => return Ok(Left::default()),
        Err(e) => return Err(fail(estimate, e)),
    };
    if items.is_empty() {
        return Ok(Left::default());
    }
    let mut finalizers: HashMap<String, usize> = HashMap::new();
    for item in &items {
        for f in item.finalizers() {
            *finalizers.entry(f.clone()).or_default() += 1;
        }
    }
    let left = |estimate| Left {
        estimate,
        count: items.len(),
        finalizers: finalizers.clone(),
    };
    if estimate > 0 {
        return Ok(left(estimate));
    }
    if !finalizers.is_empty() {
        return Ok(left(FINALIZER_ESTIMATE));
    }
    Err(ContentError {
        estimate,
        message: format!(
            "unexpected items still remain in namespace: {ns} for gvr: {}/{}, Resource={}",
            r.api.group, r.api.version, r.api.plural
        ),
    })
}

/// How long (seconds) until the namespace's pods have used their grace periods, counted
/// from the namespace's deletion, as upstream estimates it.
async fn pods_estimate(cx: &Context, ns: &str, deleted_at: &Time) -> Result<i64, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), ns);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let elapsed = now - deleted_at.0.as_second();
    let mut estimate = 0;
    for pod in pods.list(&ListParams::default()).await? {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Failed" | "Succeeded")) {
            continue;
        }
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        estimate = estimate.max(grace - elapsed);
    }
    Ok(estimate.max(0))
}
