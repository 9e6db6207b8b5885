//! The Job controller (upstream `job-controller`): runs pods until `completions`
//! succeed (NonIndexed, or Indexed with one success per index — completion-index
//! annotation, label, `JOB_COMPLETION_INDEX` env and hostname), at most `parallelism` at
//! once, with exponential backoff after failures; fails the Job past `backoffLimit`
//! (BackoffLimitExceeded), `activeDeadlineSeconds` (DeadlineExceeded) or a
//! podFailurePolicy FailJob rule (PodFailurePolicy); suspends and resumes. Terminated
//! pods are counted through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods`, as upstream, so none is counted twice or lost.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobStatus, PodFailurePolicyRule, UncountedTerminatedPods,
};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::podutil::{self, Expectations};
use crate::streams::touched;
use crate::Context;

const CONTROLLER: &str = "job-controller";
/// The finalizer that keeps a terminated pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

struct Shared {
    cx: Context,
    jobs: Store<Job>,
    pods: Store<Pod>,
    expectations: Expectations,
    events: podutil::Events,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (pods, pod_events) = cx.informers.all::<Pod>(watcher::Config::default()).await;
    let controller = Controller::new(
        Api::<Job>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let jobs = controller.store();
    let controller = controller.watches_shared_stream(touched(pod_events), |pod: Arc<Pod>| {
        let ns = pod.namespace().unwrap_or_default();
        podutil::controller_of(&pod.metadata)
            .filter(|r| r.kind == "Job")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
    });
    let shared = Arc::new(Shared {
        events: podutil::Events::new(cx.client.clone(), CONTROLLER),
        cx,
        jobs,
        pods,
        expectations: Expectations::default(),
    });
    controller
        .run(
            crate::metrics::queue().reconciler(|job: Arc<Job>, s: Arc<Shared>| async move {
                if s.pods.wait_until_ready().await.is_err() {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                reconcile(job, s).await
            }),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Api(#[from] kube::Error),
}

fn error_policy(job: Arc<Job>, error: &Error, _: Arc<Shared>) -> Action {
    tracing::warn!(controller = CONTROLLER, name = %job.name_any(), %error, "sync failed");
    Action::requeue(Duration::from_millis(500))
}

// ---- pure helpers ------------------------------------------------------------------

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

fn finished(job: &Job) -> bool {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn index_of(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// Upstream's compressed index list: `0-2,4`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The inverse of [`format_indexes`].
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<i32>().ok()),
        }
    }
    set
}

/// Upstream's pod backoff: 10 s doubled per failure, at most 6 min.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(16) as u32;
    (BACKOFF_BASE * 2u32.pow(shift)).min(BACKOFF_MAX)
}

/// What a podFailurePolicy says about a failed pod.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Count,
    Ignore,
    FailJob(String),
}

/// Upstream `matchPodFailurePolicy`: the first rule matching the pod's exit codes or
/// conditions decides.
pub fn match_policy(rules: &[PodFailurePolicyRule], pod: &Pod) -> Verdict {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let terminated: Vec<(String, i32)> = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| {
            Some((
                c.name.clone(),
                c.state.as_ref()?.terminated.as_ref()?.exit_code,
            ))
        })
        .filter(|(_, code)| *code != 0)
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let mut message = None;
        if let Some(req) = &rule.on_exit_codes {
            for (c, code) in &terminated {
                if req.container_name.as_ref().is_some_and(|n| n != c) {
                    continue;
                }
                let listed = req.values.contains(code);
                if (req.operator == "In") == listed {
                    message = Some(format!("Container {c} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}", rule.action));
                    break;
                }
            }
        }
        for pat in rule.on_pod_conditions.iter().flatten() {
            let has = pod
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| {
                    c.type_ == pat.type_
                        && c.status == pat.status.clone().unwrap_or_else(|| "True".into())
                });
            if has {
                message = Some(format!(
                    "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                    pat.type_, rule.action
                ));
                break;
            }
        }
        if let Some(m) = message {
            return match rule.action.as_str() {
                "FailJob" => Verdict::FailJob(m),
                "Ignore" => Verdict::Ignore,
                _ => Verdict::Count,
            };
        }
    }
    Verdict::Count
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    let now = podutil::now();
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn set_condition(st: &mut JobStatus, c: JobCondition) {
    let cs = st.conditions.get_or_insert_default();
    if let Some(cur) = cs.iter_mut().find(|x| x.type_ == c.type_) {
        if cur.status != c.status || cur.reason != c.reason {
            *cur = c;
        }
    } else {
        cs.push(c);
    }
}

// ---- the sync ----------------------------------------------------------------------

async fn reconcile(job: Arc<Job>, s: Arc<Shared>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let key = format!("{ns}/{name}");
    let Some(job) = s.jobs.get(&ObjectRef::new(&name).within(&ns)) else {
        s.expectations.forget(&key);
        return Ok(Action::await_change());
    };
    let pod_api: Api<Pod> = Api::namespaced(s.cx.client.clone(), &ns);
    let api: Api<Job> = Api::namespaced(s.cx.client.clone(), &ns);
    let in_ns: Vec<Arc<Pod>> = s
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let satisfied = s.expectations.satisfied(&key, |n| {
        in_ns
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
            .map(|p| p.metadata.deletion_timestamp.is_some())
    });
    let Some(selector) = job.spec.as_ref().and_then(|sp| sp.selector.clone()) else {
        return Ok(Action::await_change());
    };
    let owner = podutil::controller_ref(job.as_ref());
    let pods = podutil::claim_pods(
        &pod_api,
        &owner,
        &selector,
        in_ns.iter().map(AsRef::as_ref).collect(),
        !finished(&job),
    )
    .await?;
    let spec = job.spec.clone().unwrap_or_default();
    let mut st = job.status.clone().unwrap_or_default();
    let now = Timestamp::now();

    // 1. Terminated pods still holding the finalizer are counted (via uncounted).
    let uncounted = st.uncounted_terminated_pods.get_or_insert_default();
    let known: HashSet<String> = uncounted
        .succeeded
        .iter()
        .flatten()
        .chain(uncounted.failed.iter().flatten())
        .cloned()
        .collect();
    let mut to_release: Vec<&Pod> = Vec::new();
    let mut fail_job: Option<String> = None;
    let wind_down = finished(&job)
        || st.conditions.iter().flatten().any(|c| {
            (c.type_ == "SuccessCriteriaMet" || c.type_ == "FailureTarget") && c.status == "True"
        });
    let rules = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| p.rules.clone())
        .unwrap_or_default();
    for p in &pods {
        let has_finalizer = p
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING_FINALIZER);
        let ph = phase(p);
        let terminal = matches!(ph, Some("Succeeded") | Some("Failed"));
        let uid = p.uid().unwrap_or_default();
        if !has_finalizer {
            continue;
        }
        if !terminal && p.metadata.deletion_timestamp.is_none() {
            continue;
        }
        to_release.push(p);
        if known.contains(&uid) {
            continue;
        }
        // Pods the controller itself removed (suspended or finishing Job) are not failures.
        if !terminal && (wind_down || spec.suspend == Some(true)) {
            continue;
        }
        if ph == Some("Succeeded") {
            uncounted.succeeded.get_or_insert_default().push(uid);
        } else {
            match match_policy(&rules, p) {
                Verdict::Ignore => {}
                Verdict::FailJob(m) => {
                    fail_job.get_or_insert(m);
                    uncounted.failed.get_or_insert_default().push(uid);
                }
                Verdict::Count => uncounted.failed.get_or_insert_default().push(uid),
            }
        }
    }
    let uncounted_succeeded = uncounted.succeeded.as_ref().map_or(0, Vec::len) as i32;
    let uncounted_failed = uncounted.failed.as_ref().map_or(0, Vec::len) as i32;
    let succeeded = st.succeeded.unwrap_or(0) + uncounted_succeeded;
    let failed = st.failed.unwrap_or(0) + uncounted_failed;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let mut completed = parse_indexes(st.completed_indexes.as_deref().unwrap_or_default());
    if indexed {
        let ok: HashSet<&String> = uncounted.succeeded.iter().flatten().collect();
        for p in &pods {
            if p.uid().is_some_and(|u| ok.contains(&u))
                || (phase(p) == Some("Succeeded")
                    && !p
                        .metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == TRACKING_FINALIZER))
            {
                completed.extend(index_of(p));
            }
        }
    }
    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| podutil::is_active(p))
        .collect();
    let suspended = spec.suspend == Some(true);
    let completions = spec.completions;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);

    // 2. What the Job's state is.
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let deadline_hit = match (spec.active_deadline_seconds, st.start_time.as_ref()) {
        (Some(ads), Some(start)) if !suspended => {
            start.0 + Duration::from_secs(ads.max(0) as u64) <= now
        }
        _ => false,
    };
    let failure = if let Some(m) = fail_job {
        Some(("PodFailurePolicy".to_owned(), m))
    } else if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded".into(),
            "Job has reached the specified backoff limit".into(),
        ))
    } else if deadline_hit {
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into(),
        ))
    } else {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget" && c.status == "True")
            .map(|c| {
                (
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            })
    };
    let complete = match (indexed, completions) {
        (true, Some(c)) => completed.len() as i32 >= c,
        (false, Some(c)) => succeeded >= c,
        (_, None) => succeeded > 0 && active.is_empty(),
    };

    // 3. Pods to create or delete.
    let mut requeue = None;
    let mut to_delete: Vec<&Pod> = Vec::new();
    if finished(&job) {
        // Nothing more runs.
    } else if failure.is_some() || suspended || complete {
        to_delete.extend(active.iter().copied());
    } else if satisfied {
        if st.start_time.is_none() {
            st.start_time = Some(podutil::now());
        }
        let want = match (indexed, completions) {
            (false, Some(c)) => parallelism.min(c - succeeded).max(0),
            (false, None) => {
                if succeeded > 0 {
                    0
                } else {
                    parallelism
                }
            }
            (true, _) => parallelism,
        };
        let delay = backoff(failed).saturating_sub(last_failure_age(&pods, now));
        if (active.len() as i32) < want && failed > 0 && !delay.is_zero() {
            requeue = Some(delay);
        } else if (active.len() as i32) < want {
            let n = (want - active.len() as i32) as usize;
            let indexes: Vec<Option<i32>> = if indexed {
                let running: HashSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
                (0..completions.unwrap_or(0))
                    .filter(|i| !completed.contains(i) && !running.contains(i))
                    .take(n)
                    .map(Some)
                    .collect()
            } else {
                vec![None; n]
            };
            create_pods(&s, &job, &key, &pod_api, indexes).await?;
        } else if (active.len() as i32) > want {
            let mut extra = active.clone();
            extra.sort_by_key(|p| {
                std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            });
            to_delete.extend(extra.into_iter().take(active.len() - want as usize));
        }
        if let Some(ads) = spec.active_deadline_seconds {
            let start = st.start_time.as_ref().map(|t| t.0).unwrap_or(now);
            let left = Duration::try_from(
                (start + Duration::from_secs(ads.max(0) as u64)).duration_since(now),
            )
            .unwrap_or_default();
            requeue =
                Some(requeue.map_or(left, |r: Duration| r.min(left)) + Duration::from_millis(100));
        }
    }
    for p in &to_delete {
        match pod_api
            .delete(&p.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {
                podutil::event(
                    &s.events,
                    job.as_ref(),
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                )
                .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }

    // 4. Status, in upstream's order: record uncounted, release finalizers, count.
    st.active = (active.len() as i32 - to_delete.len() as i32 > 0)
        .then_some(active.len() as i32 - to_delete.len() as i32);
    st.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    let mut job_now = (*job).clone();
    if suspended && !finished(&job) {
        let mut c = condition("Suspended", "JobSuspended", "Job suspended");
        if st
            .conditions
            .iter()
            .flatten()
            .all(|x| x.type_ != "Suspended" || x.status != "True")
        {
            podutil::event(
                &s.events,
                job.as_ref(),
                false,
                "Suspended",
                "Job suspended".into(),
            )
            .await;
        }
        c.status = "True".into();
        set_condition(&mut st, c);
        st.start_time = None;
    } else if st
        .conditions
        .iter()
        .flatten()
        .any(|x| x.type_ == "Suspended" && x.status == "True")
    {
        let mut c = condition("Suspended", "JobResumed", "Job resumed");
        c.status = "False".into();
        set_condition(&mut st, c);
        podutil::event(
            &s.events,
            job.as_ref(),
            false,
            "Resumed",
            "Job resumed".into(),
        )
        .await;
    }
    if Some(&st) != job.status.as_ref() {
        job_now.status = Some(st.clone());
        job_now = write_status(&api, &job_now).await?;
    }
    for p in &to_release {
        let finalizers: Vec<String> = p
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != TRACKING_FINALIZER)
            .cloned()
            .collect();
        let finalizers = if finalizers.is_empty() {
            json!(null)
        } else {
            json!(finalizers)
        };
        let patch = json!({"metadata": {"finalizers": finalizers}});
        match pod_api
            .patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut st = job_now.status.clone().unwrap_or_default();
    st.succeeded = Some(succeeded).filter(|n| *n > 0);
    st.failed = Some(failed).filter(|n| *n > 0);
    st.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    if indexed {
        st.completed_indexes = Some(format_indexes(&completed));
    }
    let no_active = st.active.is_none();
    if !finished(&job) {
        if let Some((reason, message)) = &failure {
            set_condition(&mut st, condition("FailureTarget", reason, message));
            if no_active {
                set_condition(&mut st, condition("Failed", reason, message));
                podutil::event(&s.events, job.as_ref(), true, reason, message.clone()).await;
            }
        } else if complete {
            let msg = "Reached expected number of succeeded pods";
            set_condition(
                &mut st,
                condition("SuccessCriteriaMet", "CompletionsReached", msg),
            );
            if no_active {
                set_condition(&mut st, condition("Complete", "CompletionsReached", msg));
                st.completion_time = Some(podutil::now());
                podutil::event(
                    &s.events,
                    job.as_ref(),
                    false,
                    "Completed",
                    "Job completed".into(),
                )
                .await;
            }
        }
    }
    if Some(&st) != job_now.status.as_ref() {
        job_now.status = Some(st);
        write_status(&api, &job_now).await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

async fn write_status(api: &Api<Job>, job: &Job) -> Result<Job, Error> {
    Ok(api
        .replace_status(&job.name_any(), &PostParams::default(), job)
        .await?)
}

/// How long ago the newest failed pod finished (zero if none is known).
fn last_failure_age(pods: &[&Pod], now: Timestamp) -> Duration {
    let newest = pods
        .iter()
        .filter(|p| phase(p) == Some("Failed"))
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
        .max();
    match newest {
        Some(t) => Duration::try_from(now.duration_since(t)).unwrap_or_default(),
        None => Duration::MAX,
    }
}

async fn create_pods(
    s: &Shared,
    job: &Job,
    key: &str,
    api: &Api<Pod>,
    indexes: Vec<Option<i32>>,
) -> Result<(), Error> {
    let Some(template) = job.spec.as_ref().map(|sp| sp.template.clone()) else {
        return Ok(());
    };
    let owner = podutil::controller_ref(job);
    let queue = std::sync::Mutex::new(indexes.clone().into_iter());
    let (made, err) = podutil::slow_start(indexes.len(), || {
        let index = queue.lock().ok().and_then(|mut q| q.next()).flatten();
        let prefix = match index {
            Some(i) => format!("{}-{i}-", job.name_any()),
            None => format!("{}-", job.name_any()),
        };
        let mut pod = podutil::pod_from_template(&template, &prefix, owner.clone());
        pod.metadata
            .finalizers
            .get_or_insert_default()
            .push(TRACKING_FINALIZER.into());
        if let Some(i) = index {
            pod.metadata
                .annotations
                .get_or_insert_default()
                .insert(COMPLETION_INDEX.into(), i.to_string());
            pod.metadata
                .labels
                .get_or_insert_default()
                .insert(COMPLETION_INDEX.into(), i.to_string());
            let spec = pod.spec.get_or_insert_default();
            spec.hostname = Some(format!("{}-{i}", job.name_any()));
            for c in &mut spec.containers {
                c.env.get_or_insert_default().push(EnvVar {
                    name: "JOB_COMPLETION_INDEX".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        }),
                        ..Default::default()
                    }),
                });
            }
        }
        async move { api.create(&PostParams::default(), &pod).await }
    })
    .await;
    let names: Vec<String> = made.iter().map(|p| p.name_any()).collect();
    s.expectations.expect(key, names.clone(), Vec::new());
    for n in names {
        podutil::event(
            &s.events,
            job,
            false,
            "SuccessfulCreate",
            format!("Created pod: {n}"),
        )
        .await;
    }
    if let Some(e) = err {
        podutil::event(
            &s.events,
            job,
            true,
            "FailedCreate",
            format!("Error creating: {e}"),
        )
        .await;
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::PodFailurePolicyOnExitCodesRequirement;

    #[test]
    fn indexes_round_trip_compressed() {
        for s in ["", "0", "0-2", "0-2,4", "1,3,5-7"] {
            assert_eq!(format_indexes(&parse_indexes(s)), s);
        }
        assert_eq!(format_indexes(&[3, 1, 2, 7].into_iter().collect()), "1-3,7");
    }

    #[test]
    fn backoff_doubles_to_six_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(10), Duration::from_secs(360));
    }

    #[test]
    fn pod_failure_policy_matches_exit_codes() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "main", "image": "x", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 42}}}]}}))
        .unwrap();
        let rule = |action: &str, op: &str, values: Vec<i32>| PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values,
            }),
            on_pod_conditions: None,
        };
        assert_eq!(
            match_policy(&[rule("Ignore", "In", vec![1])], &pod),
            Verdict::Count
        );
        assert_eq!(
            match_policy(&[rule("Ignore", "In", vec![42])], &pod),
            Verdict::Ignore
        );
        assert_eq!(
            match_policy(&[rule("Ignore", "In", vec![1]), rule("FailJob", "NotIn", vec![0])], &pod),
            Verdict::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
    }
}
