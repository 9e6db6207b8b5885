//! Pod workers: one task per pod bound to this node. Each brings the runtime to the pod's
//! spec (sandbox, image, containers, restarts with back-off), reports the pod's status,
//! and on deletion stops the containers within the grace period (SIGTERM, then SIGKILL),
//! removes them and completes the API's graceful delete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::cri::{api, Runtime, RuntimeError};
use crate::events::{NORMAL, WARNING};
use crate::pod_config::{self, pod_ref, CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::pod_status::{self, ContainerView, Observed, CONTAINER_EXITED, CONTAINER_RUNNING};
use crate::Shared;

/// How often a worker syncs its pod without being told to.
const RESYNC_PERIOD: Duration = Duration::from_secs(10);
/// Restart back-off (upstream: 10 s doubling to 5 min).
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A CRI sandbox state.
const SANDBOX_READY: i32 = 0;

/// The handle the pod watcher keeps per pod.
pub struct Worker {
    pub pod: watch::Sender<Option<Pod>>,
    pub poke: Arc<Notify>,
}

impl Worker {
    /// Starts the worker of `pod`.
    pub fn spawn(shared: Arc<Shared>, pod: Pod) -> Worker {
        let (tx, rx) = watch::channel(Some(pod));
        let poke = Arc::new(Notify::new());
        tokio::spawn(run(shared, rx, poke.clone()));
        Worker { pod: tx, poke }
    }

    /// Whether the task still runs.
    pub fn alive(&self) -> bool {
        !self.pod.is_closed()
    }
}

/// Back-off of one container or image.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    since: Instant,
}

impl Backoff {
    fn waiting(b: Option<&Backoff>) -> Option<Duration> {
        b.filter(|b| b.since.elapsed() < b.delay).map(|b| b.delay)
    }

    fn next(b: Option<&Backoff>) -> Backoff {
        let delay = b.map_or(BACKOFF_INITIAL, |b| (b.delay * 2).min(BACKOFF_MAX));
        Backoff {
            delay,
            since: Instant::now(),
        }
    }
}

#[derive(Default)]
struct WorkerState {
    last_status: Option<Value>,
    restart_backoff: HashMap<String, Backoff>,
    pull_backoff: HashMap<String, (Backoff, String)>,
    prober: crate::probe::Prober,
}

async fn run(shared: Arc<Shared>, mut rx: watch::Receiver<Option<Pod>>, poke: Arc<Notify>) {
    let mut state = WorkerState::default();
    'pod: loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            // Gone from the API without our final delete: make sure nothing runs.
            break;
        };
        let (name, ns, _) = pod_ref(&pod);
        let key = format!("{ns}/{name}");
        if pod.metadata.deletion_timestamp.is_some() {
            match terminate(&shared, &pod).await {
                Ok(()) => {
                    tracing::info!(pod = %key, "pod terminated");
                    break;
                }
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "cannot terminate the pod; retrying")
                }
            }
        } else if !shared.pleg.healthy() {
            tracing::debug!(pod = %key, "skipping pod sync: PLEG is not healthy");
        } else {
            let observed = sync(&shared, &pod, &mut state).await;
            report(&shared, &pod, &observed, &mut state).await;
        }
        let wake = state
            .prober
            .next_due()
            .map_or(RESYNC_PERIOD, |t| {
                t.saturating_duration_since(Instant::now())
            })
            .min(RESYNC_PERIOD);
        let until = tokio::time::Instant::now() + wake;
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        break 'pod;
                    }
                    // As upstream's config source: a status-only update (usually our own
                    // report) is no reason to sync again; it would cut short the time
                    // a waiting reason such as ErrImagePull is shown.
                    if rx.borrow().as_ref().is_some_and(|new| same_config(new, &pod)) {
                        continue;
                    }
                }
                _ = poke.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
            break;
        }
    }
    if let Some(uid) = rx.borrow().as_ref().and_then(|p| p.metadata.uid.clone()) {
        tracing::debug!(pod.uid = %uid, "pod worker stopped");
    }
}

/// Whether two versions of a pod differ only in status (and bookkeeping metadata).
fn same_config(a: &Pod, b: &Pod) -> bool {
    let (ma, mb) = (&a.metadata, &b.metadata);
    a.spec == b.spec
        && ma.labels == mb.labels
        && ma.annotations == mb.annotations
        && ma.deletion_timestamp == mb.deletion_timestamp
        && ma.deletion_grace_period_seconds == mb.deletion_grace_period_seconds
        && ma.uid == mb.uid
}

/// Sends the pod's status when it changed.
async fn report(shared: &Shared, pod: &Pod, observed: &Observed, state: &mut WorkerState) {
    let patch = pod_status::status(pod, observed, &crate::time::now_rfc3339());
    if state.last_status.as_ref() == Some(&patch) {
        return;
    }
    let (name, ns, _) = pod_ref(pod);
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(patch.clone()))
        .await
    {
        Ok(_) => state.last_status = Some(patch),
        Err(e) => {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot report pod status")
        }
    }
}

/// CRI filter: the sandboxes of pod `uid` (as upstream's `GetPodStatus`: the runtime
/// selects them, so a sync costs the same with 1 pod or 100 on the node).
fn pod_sandboxes(uid: &str) -> Option<api::PodSandboxFilter> {
    Some(api::PodSandboxFilter {
        label_selector: [(POD_UID_LABEL.to_owned(), uid.to_owned())].into(),
        ..Default::default()
    })
}

/// CRI filter: the containers of pod `uid`, of sandbox `sandbox` when given.
fn pod_containers(uid: &str, sandbox: Option<&str>) -> Option<api::ContainerFilter> {
    Some(api::ContainerFilter {
        label_selector: [(POD_UID_LABEL.to_owned(), uid.to_owned())].into(),
        pod_sandbox_id: sandbox.unwrap_or_default().to_owned(),
        ..Default::default()
    })
}

fn sandboxes_of<'a>(all: &'a [api::PodSandbox], uid: &str) -> Vec<&'a api::PodSandbox> {
    let mut v: Vec<_> = all
        .iter()
        .filter(|s| s.labels.get(POD_UID_LABEL).map(String::as_str) == Some(uid))
        .collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    v
}

fn attempt(s: &api::PodSandbox) -> u32 {
    s.metadata.as_ref().map_or(0, |m| m.attempt)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Brings the runtime to the pod's spec and returns what it observed.
async fn sync(shared: &Shared, pod: &Pod, state: &mut WorkerState) -> Observed {
    let (name, ns, uid) = pod_ref(pod);
    let key = format!("{ns}/{name}");
    let spec = pod.spec.clone().unwrap_or_default();
    let mut observed = Observed {
        host_ip: shared.host_ip.clone(),
        containers: spec
            .containers
            .iter()
            .map(|c| ContainerView {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                ..Default::default()
            })
            .collect(),
        // Until the init containers are seen: initialized only without any.
        initialized: spec.init_containers.as_ref().is_none_or(|v| v.is_empty()),
        init_pending: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect(),
        ..Default::default()
    };
    let Some(runtime) = shared.runtime.as_deref() else {
        return observed;
    };
    let sandboxes = match runtime.list_pod_sandboxes(pod_sandboxes(uid)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(pod = %key, error = %e, "cannot list sandboxes");
            return observed;
        }
    };
    let mine = sandboxes_of(&sandboxes, uid);
    let terminal = is_terminal(pod);
    let sandbox = match mine.first() {
        Some(s) if s.state == SANDBOX_READY => Some((s.id.clone(), attempt(s))),
        Some(_) if terminal => None,
        old => {
            if terminal {
                None
            } else {
                let next_attempt = old.map_or(0, |s| attempt(s) + 1);
                if let Some(old) = old {
                    tracing::info!(pod = %key, sandbox = %old.id, "sandbox is not ready; creating a new one");
                    shared.events.pod(
                        pod,
                        None,
                        NORMAL,
                        "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.".into(),
                    );
                    kill_sandbox_and_containers(runtime, uid, Some(&old.id), Duration::ZERO).await;
                }
                let mut config =
                    pod_config::sandbox_config(pod, next_attempt, &shared.pod_logs_dir);
                match shared.dns.host() {
                    Ok(host) => {
                        let (dns, warnings) = shared.dns.pod_dns(pod, host);
                        for (reason, message) in warnings {
                            shared.events.pod(pod, None, WARNING, reason, message);
                        }
                        config.dns_config = Some(dns);
                    }
                    Err(e) => {
                        let path = shared
                            .dns
                            .resolv_conf
                            .as_deref()
                            .unwrap_or_else(|| std::path::Path::new(""));
                        shared.events.pod(
                            pod,
                            None,
                            WARNING,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: open {}: {e}", path.display()),
                        );
                        return observed;
                    }
                }
                if shared.on_host {
                    let _ = std::fs::create_dir_all(&config.log_directory);
                }
                match runtime.run_pod_sandbox(config).await {
                    Ok(id) => Some((id, next_attempt)),
                    Err(e) => {
                        tracing::warn!(pod = %key, error = %e, "Failed to create pod sandbox");
                        shared.events.pod(
                            pod,
                            None,
                            WARNING,
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {}", e.message()),
                        );
                        return observed;
                    }
                }
            }
        }
    };
    let sandbox_id = match (&sandbox, mine.first()) {
        (Some((id, _)), _) => id.clone(),
        (None, Some(s)) => s.id.clone(),
        (None, None) => return observed,
    };
    if let Some((_, sandbox_attempt)) = &sandbox {
        match runtime.pod_sandbox_status(&sandbox_id).await {
            Ok(s) => {
                observed.sandbox_ready = s.state == SANDBOX_READY;
                observed.pod_ip = s
                    .network
                    .map(|n| n.ip)
                    .filter(|ip| !ip.is_empty())
                    .or_else(|| pod_config::host_network(pod).then(|| shared.host_ip.clone()));
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, attempt = sandbox_attempt, "cannot read sandbox status")
            }
        }
    }
    // This sandbox's containers by name, newest attempt first.
    let containers = match runtime
        .list_containers(pod_containers(uid, Some(&sandbox_id)))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(pod = %key, error = %e, "cannot list containers");
            return observed;
        }
    };
    let mut by_name: HashMap<&str, Vec<&api::Container>> = HashMap::new();
    for c in containers.iter().filter(|c| c.pod_sandbox_id == sandbox_id) {
        if let Some(n) = c.labels.get(CONTAINER_NAME_LABEL) {
            by_name.entry(n.as_str()).or_default().push(c);
        }
    }
    for list in by_name.values_mut() {
        list.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
    }
    let downward = pod_config::Downward {
        pod_ip: observed.pod_ip.clone().unwrap_or_default(),
        host_ip: shared.host_ip.clone(),
        ..Default::default()
    };
    let ctx = SyncCtx {
        shared,
        runtime,
        pod,
        key: &key,
        sandbox: sandbox.clone(),
        sandbox_id: &sandbox_id,
        downward: &downward,
    };
    let policy = pod_status::restart_policy(pod).to_owned();
    // Init containers run one after another to completion (sidecars, restartPolicy
    // Always, only need to be running); the app containers wait for all of them.
    let mut initialized = true;
    let mut init_done: Vec<String> = Vec::new();
    for ic in spec.init_containers.iter().flatten() {
        let sidecar = ic.restart_policy.as_deref() == Some("Always");
        let init_policy = match (sidecar, policy.as_str()) {
            (true, _) => "Always",
            (false, "Never") => "Never",
            (false, _) => "OnFailure",
        };
        let mut view = ContainerView {
            name: ic.name.clone(),
            image: ic.image.clone().unwrap_or_default(),
            ..Default::default()
        };
        let existing = by_name.get(ic.name.as_str()).cloned().unwrap_or_default();
        sync_container(
            &ctx,
            ic,
            &mut view,
            &existing,
            init_policy,
            initialized,
            state,
        )
        .await;
        let done = match &view.current {
            Some(s) if sidecar => s.state == CONTAINER_RUNNING && view.waiting.is_none(),
            Some(s) => s.state == CONTAINER_EXITED && s.exit_code == 0,
            None => false,
        };
        if !done {
            if initialized {
                observed.init_failed = init_policy == "Never"
                    && view
                        .current
                        .as_ref()
                        .is_some_and(|s| s.state == CONTAINER_EXITED && s.exit_code != 0);
            }
            initialized = false;
        } else {
            init_done.push(ic.name.clone());
        }
        observed.init_containers.push(view);
    }
    observed.initialized = initialized;
    observed.init_pending.retain(|n| {
        observed
            .init_containers
            .iter()
            .any(|v| &v.name == n && !init_done.contains(n))
    });
    for (view, c) in observed.containers.iter_mut().zip(&spec.containers) {
        let existing = by_name.get(c.name.as_str()).cloned().unwrap_or_default();
        sync_container(&ctx, c, view, &existing, &policy, initialized, state).await;
    }
    for (view, c) in observed.containers.iter_mut().zip(&spec.containers) {
        probe_container(shared, runtime, pod, c, view, &downward.pod_ip, state).await;
    }
    // A pod that finished for good gives its sandbox (and pod IP) back.
    let phase = pod_status::pod_phase(pod, &observed);
    if (phase == "Succeeded" || phase == "Failed") && observed.sandbox_ready {
        if let Err(e) = runtime.stop_pod_sandbox(&sandbox_id).await {
            tracing::warn!(pod = %key, error = %e, "cannot stop the sandbox of a finished pod");
        }
        observed.sandbox_ready = false;
    }
    observed
}

/// What syncing one pod's containers shares.
struct SyncCtx<'a> {
    shared: &'a Shared,
    runtime: &'a dyn Runtime,
    pod: &'a Pod,
    key: &'a str,
    /// The ready sandbox and its attempt, if any.
    sandbox: Option<(String, u32)>,
    sandbox_id: &'a str,
    downward: &'a pod_config::Downward,
}

/// Observes container `c` (its runtime containers newest first in `existing`) into
/// `view`, and starts or restarts it as `policy` says when `may_start`.
async fn sync_container(
    ctx: &SyncCtx<'_>,
    c: &Container,
    view: &mut ContainerView,
    existing: &[&api::Container],
    policy: &str,
    may_start: bool,
    state: &mut WorkerState,
) {
    let SyncCtx {
        shared,
        runtime,
        pod,
        key,
        sandbox,
        sandbox_id,
        downward,
    } = ctx;
    let (shared, runtime, pod, key, sandbox_id, downward) =
        (*shared, *runtime, *pod, *key, *sandbox_id, *downward);
    let (name, ns, uid) = pod_ref(pod);
    let mut current = None;
    if let Some(latest) = existing.first() {
        match runtime.container_status(&latest.id).await {
            Ok(s) => current = Some(s),
            Err(e) => {
                tracing::warn!(pod = %key, container = %c.name, error = %e, "cannot read container status")
            }
        }
    }
    if let Some(prev) = existing.get(1) {
        view.previous = runtime.container_status(&prev.id).await.ok();
    }
    let latest_attempt = existing
        .first()
        .and_then(|l| l.metadata.as_ref())
        .map(|m| m.attempt);
    view.restart_count = latest_attempt.unwrap_or(0);
    let start_attempt = match &current {
        None if existing.is_empty() => (sandbox.is_some() && may_start).then_some(0),
        Some(s) if s.state == CONTAINER_EXITED && sandbox.is_some() && may_start => {
            let restart = match policy {
                "Never" => false,
                "OnFailure" => s.exit_code != 0,
                _ => true,
            };
            if !restart {
                None
            } else if let Some(delay) = Backoff::waiting(state.restart_backoff.get(&c.name)) {
                shared.events.pod(
                    pod,
                    Some(&c.name),
                    WARNING,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {name}_{ns}({uid})",
                        c.name
                    ),
                );
                view.waiting = Some((
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {} restarting failed container={} pod={name}_{ns}({uid})",
                        crate::pleg::go_duration(delay),
                        c.name
                    ),
                ));
                None
            } else {
                let b = Backoff::next(state.restart_backoff.get(&c.name));
                state.restart_backoff.insert(c.name.clone(), b);
                // Keep only the one dead container that becomes `lastState`.
                for old in existing.iter().skip(1) {
                    let _ = runtime.remove_container(&old.id).await;
                }
                Some(latest_attempt.unwrap_or(0) + 1)
            }
        }
        _ => None,
    };
    view.current = current.clone();
    if let Some(attempt) = start_attempt {
        if current.is_some() {
            view.previous = current;
        }
        let sandbox_config = pod_config::sandbox_config(
            pod,
            sandbox.as_ref().map_or(0, |s| s.1),
            &shared.pod_logs_dir,
        );
        match start_container(
            shared,
            runtime,
            pod,
            c,
            attempt,
            sandbox_id,
            sandbox_config,
            downward,
            state,
        )
        .await
        {
            Ok(status) => {
                view.current = Some(status);
                view.restart_count = attempt;
            }
            Err(waiting) => view.waiting = Some(waiting),
        }
    }
    if !may_start && view.current.is_none() && view.waiting.is_none() {
        view.waiting = Some(("PodInitializing".into(), String::new()));
    }
}

/// Runs the due probes of a running container, records their verdict in `view`, and
/// kills the container when its liveness (or startup) probe failed for good.
async fn probe_container(
    shared: &Shared,
    runtime: &dyn Runtime,
    pod: &Pod,
    c: &Container,
    view: &mut ContainerView,
    pod_ip: &str,
    state: &mut WorkerState,
) {
    let Some(cur) = view
        .current
        .as_ref()
        .filter(|s| s.state == CONTAINER_RUNNING)
    else {
        return;
    };
    if view.waiting.is_some()
        || (c.startup_probe.is_none() && c.liveness_probe.is_none() && c.readiness_probe.is_none())
    {
        return;
    }
    let age = Duration::from_nanos((crate::time::now_nanos() - cur.started_at).max(0) as u64);
    let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let id = cur.id.clone();
    let verdict = state
        .prober
        .probe(runtime, c, &id, started, pod_ip, |kind, msg| {
            shared.events.pod(
                pod,
                Some(&c.name),
                WARNING,
                "Unhealthy",
                format!("{} probe failed: {msg}", kind.name()),
            )
        })
        .await;
    view.ready = verdict.ready;
    view.started = verdict.started;
    if let Some(kind) = verdict.restart {
        shared.events.pod(
            pod,
            Some(&c.name),
            NORMAL,
            "Killing",
            format!(
                "Container {} failed {} probe, will be restarted",
                c.name,
                kind.name().to_lowercase()
            ),
        );
        let grace = kind
            .of(c)
            .and_then(|p| p.termination_grace_period_seconds)
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        if let Err(e) = runtime
            .stop_container(&id, Duration::from_secs(grace.max(0) as u64))
            .await
        {
            tracing::warn!(container = %id, error = %e, "cannot stop an unhealthy container");
        }
        view.ready = Some(false);
    }
}

/// The pull policy, defaulted as the API server does.
fn pull_policy(c: &Container) -> &str {
    if let Some(p) = c.image_pull_policy.as_deref() {
        return p;
    }
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || (last.contains(':') && !last.ends_with(":latest")) {
        "IfNotPresent"
    } else {
        "Always"
    }
}

/// The image to run `c` with (its id), pulling it as its policy says; or the waiting
/// reason and message.
async fn ensure_image(
    shared: &Shared,
    runtime: &dyn Runtime,
    pod: &Pod,
    c: &Container,
    state: &mut WorkerState,
) -> Result<String, (String, String)> {
    let image = c.image.clone().unwrap_or_default();
    let event = |type_: &str, reason: &str, message: String| {
        shared
            .events
            .pod(pod, Some(&c.name), type_, reason, message)
    };
    let present = runtime
        .image_status(&image)
        .await
        .map_err(|e| ("ErrImageInspect".to_owned(), e.message()))?;
    let policy = pull_policy(c);
    match (policy, present) {
        ("Never", None) => {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            event(WARNING, "ErrImageNeverPull", msg.clone());
            event(WARNING, "Failed", "Error: ErrImageNeverPull".into());
            Err(("ErrImageNeverPull".into(), msg))
        }
        ("Never" | "IfNotPresent", Some(img)) => {
            event(
                NORMAL,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            Ok(img.id)
        }
        _ => {
            if let Some((b, msg)) = state.pull_backoff.get(&image) {
                if Backoff::waiting(Some(b)).is_some() {
                    event(
                        NORMAL,
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    );
                    event(WARNING, "Failed", "Error: ImagePullBackOff".into());
                    return Err((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image \"{image}\": {msg}"),
                    ));
                }
            }
            let (keyring, failed) = crate::credentials::pod_keyring(&shared.client, pod).await;
            if !failed.is_empty() {
                shared.events.pod(
                    pod,
                    None,
                    WARNING,
                    "FailedToRetrieveImagePullSecret",
                    format!(
                        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                        failed.join(", ")
                    ),
                );
            }
            event(NORMAL, "Pulling", format!("Pulling image \"{image}\""));
            let started = Instant::now();
            match pull_with_credentials(runtime, &image, &keyring).await {
                Ok(r) => {
                    state.pull_backoff.remove(&image);
                    let took = crate::pleg::go_duration(started.elapsed());
                    let size = match runtime.image_status(&r).await {
                        Ok(Some(img)) => img.size,
                        _ => 0,
                    };
                    event(
                        NORMAL,
                        "Pulled",
                        format!("Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."),
                    );
                    Ok(r)
                }
                Err(msg) => {
                    event(
                        WARNING,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {msg}"),
                    );
                    event(WARNING, "Failed", "Error: ErrImagePull".into());
                    let b = Backoff::next(state.pull_backoff.get(&image).map(|(b, _)| b));
                    state.pull_backoff.insert(image.clone(), (b, msg.clone()));
                    Err(("ErrImagePull".into(), msg))
                }
            }
        }
    }
}

/// Pulls `image` with each credential the keyring has for its registry, in order, until
/// one works; anonymously when it has none (as upstream: no anonymous retry after
/// credentials were refused). The error of every attempt, aggregated as upstream does.
async fn pull_with_credentials(
    runtime: &dyn Runtime,
    image: &str,
    keyring: &crate::credentials::Keyring,
) -> Result<String, String> {
    let repository = crate::credentials::repository(image);
    let creds = keyring.lookup(&repository);
    if creds.is_empty() {
        return runtime
            .pull_image(image, None)
            .await
            .map_err(|e| e.message());
    }
    let mut errors = Vec::new();
    for c in &creds {
        match runtime.pull_image(image, Some(c.auth_config())).await {
            Ok(r) => return Ok(r),
            Err(e) => errors.push(e.message()),
        }
    }
    Err(if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    })
}

#[allow(clippy::too_many_arguments)]
async fn start_container(
    shared: &Shared,
    runtime: &dyn Runtime,
    pod: &Pod,
    c: &Container,
    attempt: u32,
    sandbox_id: &str,
    sandbox_config: api::PodSandboxConfig,
    downward: &pod_config::Downward,
    state: &mut WorkerState,
) -> Result<api::ContainerStatus, (String, String)> {
    let image = ensure_image(shared, runtime, pod, c, state).await?;
    let event = |type_: &str, reason: &str, message: String| {
        shared
            .events
            .pod(pod, Some(&c.name), type_, reason, message)
    };
    // A simulated node mounts nothing (its runtime runs no processes to see files).
    let paths = if shared.on_host {
        crate::volumes::prepare(&shared.client, pod, c, &shared.pods_dir)
            .await
            .map_err(|e| {
                event(WARNING, "FailedMount", e.clone());
                ("ContainerCreating".to_owned(), String::new())
            })?
    } else {
        HashMap::new()
    };
    let config_error = |e: String| {
        event(WARNING, "Failed", format!("Error: {e}"));
        ("CreateContainerConfigError".to_owned(), e)
    };
    let (config_maps, secrets) = crate::volumes::env_data(&shared.client, pod, c)
        .await
        .map_err(config_error)?;
    let downward = pod_config::Downward {
        config_maps,
        secrets,
        ..downward.clone()
    };
    let mut config =
        pod_config::container_config(pod, c, &image, attempt, &downward).map_err(config_error)?;
    config.mounts = crate::volumes::mounts(c, &paths);
    let id = runtime
        .create_container(sandbox_id, config, sandbox_config)
        .await
        .map_err(|e| {
            event(WARNING, "Failed", format!("Error: {}", e.message()));
            ("CreateContainerError".to_owned(), e.message())
        })?;
    event(NORMAL, "Created", format!("Created container: {}", c.name));
    runtime.start_container(&id).await.map_err(|e| {
        event(WARNING, "Failed", format!("Error: {}", e.message()));
        ("RunContainerError".to_owned(), e.message())
    })?;
    event(NORMAL, "Started", format!("Started container {}", c.name));
    runtime
        .container_status(&id)
        .await
        .map_err(|e| ("RunContainerError".to_owned(), e.message()))
}

/// Stops every container of pod `uid` (SIGTERM, SIGKILL after `grace`) and its
/// sandboxes; removes them all.
pub async fn kill_sandbox_and_containers(
    runtime: &dyn Runtime,
    uid: &str,
    only_sandbox: Option<&str>,
    grace: Duration,
) {
    let containers = runtime
        .list_containers(pod_containers(uid, only_sandbox))
        .await
        .unwrap_or_default();
    let mine: Vec<_> = containers
        .iter()
        .filter(|c| c.labels.get(POD_UID_LABEL).map(String::as_str) == Some(uid))
        .filter(|c| only_sandbox.is_none_or(|s| c.pod_sandbox_id == s))
        .collect();
    futures::future::join_all(
        mine.iter()
            .filter(|c| c.state == CONTAINER_RUNNING)
            .map(|c| runtime.stop_container(&c.id, grace)),
    )
    .await;
    for c in &mine {
        if let Err(e) = runtime.remove_container(&c.id).await {
            if !e.is_not_found() {
                tracing::warn!(container = %c.id, error = %e, "cannot remove container");
            }
        }
    }
    let sandboxes = runtime
        .list_pod_sandboxes(pod_sandboxes(uid))
        .await
        .unwrap_or_default();
    for s in sandboxes_of(&sandboxes, uid) {
        if only_sandbox.is_some_and(|id| id != s.id) {
            continue;
        }
        if let Err(e) = runtime.stop_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "cannot stop sandbox");
        }
        if let Err(e) = runtime.remove_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, error = %e, "cannot remove sandbox");
        }
    }
}

/// The grace period of a deleted pod: what the delete asked for, else the spec's.
fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// Graceful termination: stops the pod's containers within its grace period, removes
/// them and the sandbox, then deletes the pod from the API (grace 0, same uid).
async fn terminate(shared: &Shared, pod: &Pod) -> Result<(), String> {
    let (name, ns, uid) = pod_ref(pod);
    if let Some(runtime) = shared.runtime.as_deref() {
        let grace = grace_period(pod);
        tracing::info!(pod = %format!("{ns}/{name}"), grace = ?grace, "killing the pod's containers");
        for c in runtime
            .list_containers(pod_containers(uid, None))
            .await
            .unwrap_or_default()
        {
            if c.state == CONTAINER_RUNNING
                && c.labels.get(POD_UID_LABEL).map(String::as_str) == Some(uid)
            {
                if let Some(cname) = c.labels.get(CONTAINER_NAME_LABEL) {
                    shared.events.pod(
                        pod,
                        Some(cname),
                        NORMAL,
                        "Killing",
                        format!("Stopping container {cname}"),
                    );
                }
            }
        }
        kill_sandbox_and_containers(runtime, uid, None, grace).await;
    }
    if shared.on_host {
        let _ = std::fs::remove_dir_all(pod_config::log_directory(&shared.pod_logs_dir, pod));
        let _ = std::fs::remove_dir_all(crate::volumes::pod_dir(&shared.pods_dir, pod));
    }
    if crate::static_pods::is_static(pod) {
        // Not in the API: the static pod manager deletes its mirror.
        return Ok(());
    }
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), ns);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl RuntimeError {
    /// The message a pod's status shows, as gRPC errors read in upstream's statuses.
    pub fn message(&self) -> String {
        match self {
            RuntimeError::Rpc { code, message, .. } => {
                format!("rpc error: code = {code:?} desc = {message}")
            }
            // What a Go client says when its context's deadline passes.
            RuntimeError::DeadlineExceeded { .. } => {
                "rpc error: code = DeadlineExceeded desc = context deadline exceeded".into()
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn pull_policy_defaults_like_the_api_server() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:1", None)), "IfNotPresent");
        assert_eq!(
            pull_policy(&container("localhost:5000/busybox", None)),
            "Always"
        );
        assert_eq!(pull_policy(&container("busybox:1", Some("Never"))), "Never");
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let mut b = Backoff::next(None);
        assert_eq!(b.delay, BACKOFF_INITIAL);
        assert!(Backoff::waiting(Some(&b)).is_some());
        for _ in 0..10 {
            b = Backoff::next(Some(&b));
        }
        assert_eq!(b.delay, BACKOFF_MAX);
        let old = Backoff {
            delay: Duration::from_millis(1),
            since: Instant::now() - Duration::from_secs(1),
        };
        assert!(Backoff::waiting(Some(&old)).is_none());
    }

    #[test]
    fn grace_period_prefers_the_delete_request() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"}, "spec": {"containers": [], "terminationGracePeriodSeconds": 20}}))
        .unwrap();
        assert_eq!(grace_period(&pod), Duration::from_secs(20));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(grace_period(&pod), Duration::from_secs(2));
    }
}
