//! The CronJob controller (upstream `cronjob-controller`, its v2 design): a CronJob is
//! synced when it or one of its Jobs changes, and requeued for its next activation (plus
//! 100 ms) rather than polled. A sync creates the Job of the most recent unmet activation
//! — named `<cronjob>-<scheduled time in minutes>`, so a retry can never make two —
//! within `startingDeadlineSeconds`, honouring `suspend`, `timeZone` and
//! `concurrencyPolicy` (Allow, Forbid, Replace); it keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, prunes finished Jobs past the history
//! limits, and records upstream's events.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use rkube_api::cron::{self, Missed, Schedule};
use tracing::Instrument;

use crate::streams::touched;
use crate::{podutil, Context};

const CONTROLLER: &str = "cronjob-controller";
/// The annotation carrying a Job's scheduled time (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream requeues this long after the activation time, to absorb clock skew.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

struct Shared {
    cx: Context,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    events: podutil::Events,
}

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    let (jobs, job_events) = cx.informers.all::<Job>(watcher::Config::default()).await;
    let controller = Controller::new(
        Api::<CronJob>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    );
    let cronjobs = controller.store();
    let controller = controller.watches_shared_stream(touched(job_events), |job: Arc<Job>| {
        let ns = job.namespace().unwrap_or_default();
        podutil::controller_of(&job.metadata)
            .filter(|r| r.kind == "CronJob")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
    });
    let shared = Arc::new(Shared {
        events: podutil::Events::new(cx.client.clone(), CONTROLLER),
        cx,
        cronjobs,
        jobs,
    });
    controller
        .run(
            crate::metrics::queue().reconciler(|cj: Arc<CronJob>, s: Arc<Shared>| async move {
                if s.jobs.wait_until_ready().await.is_err() {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                reconcile(cj, s).await
            }),
            crate::metrics::queue().error_policy(error_policy),
            shared,
        )
        .for_each(|_| async {})
        .await;
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot get job {0}: {1}")]
    GetJobFailed(String, #[source] kube::Error),
    #[error("could not replace job {0}")]
    ReplaceFailed(String),
    #[error("cannot create job: {0}")]
    CreateJobFailed(#[source] kube::Error),
    #[error("job {0} already exists and is not controlled by this cronjob")]
    NotOurs(String),
    #[error("cannot update cronjob status: {0}")]
    UpdateStatusFailed(#[source] kube::Error),
}

fn error_policy(cj: Arc<CronJob>, error: &Error, _: Arc<Shared>) -> Action {
    tracing::warn!(controller = CONTROLLER, object.ref = %format!("{}/{}", cj.namespace().unwrap_or_default(), cj.name_any()), %error, "sync failed");
    Action::requeue(Duration::from_secs(1))
}

// ---- pure helpers ------------------------------------------------------------------

/// The Job's finished condition type (`Complete` or `Failed`), if it has finished.
pub fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// The name of the Job for an activation: the CronJob's name and the scheduled time in
/// minutes since the epoch (upstream `getJobName`).
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 rendering (`Z` for a zero offset) of `t` in `tz`.
pub fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let offset = z.offset().seconds();
    let base = z.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if offset == 0 {
        format!("{base}Z")
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.abs();
        format!("{base}{sign}{:02}:{:02}", o / 3600, (o % 3600) / 60)
    }
}

/// Go's `time.RFC1123Z`: `Mon, 02 Jan 2006 15:04:05 -0700`, in UTC.
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Upstream `getJobFromTemplate2`.
pub fn job_from_template(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let template = cj.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![podutil::controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Upstream's `byJobStartTime`: started Jobs oldest first, unstarted last, then by name.
fn by_start_time(a: &Job, b: &Job) -> Ordering {
    let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.clone());
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x == y => a.name_any().cmp(&b.name_any()),
        (Some(x), Some(y)) => x.0.cmp(&y.0),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.name_any().cmp(&b.name_any()),
    }
}

/// Where the search for unmet activations starts: the last scheduled time (else the
/// creation time), moved up to `now - startingDeadlineSeconds` when asked.
fn earliest(cj: &CronJob, now: Timestamp, with_deadline: bool) -> Timestamp {
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if with_deadline {
        if let Some(d) = cj.spec.starting_deadline_seconds {
            let deadline = now - Duration::from_secs(d.max(0) as u64);
            if deadline > earliest {
                earliest = deadline;
            }
        }
    }
    earliest
}

/// Upstream `nextScheduleTimeDuration`: how long until the next activation (+100 ms);
/// `None` when the schedule never fires again.
pub fn requeue_after(
    cj: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    tz: &TimeZone,
) -> Option<Duration> {
    let from = earliest(cj, now, false);
    let base = match cron::most_recent(schedule, from, now, tz) {
        Err(_) => now,
        Ok((Some(t), _)) => t,
        Ok((None, Missed::None)) => from,
        Ok((None, _)) => now,
    };
    let next = schedule.next(base, tz)?;
    let wait = next.duration_since(now).as_secs_f64().max(0.0);
    Some(Duration::from_secs_f64(wait) + NEXT_SCHEDULE_DELTA)
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Go's `time.LoadLocation` over the system zone database.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" | "Local" => Ok(TimeZone::UTC),
        _ => jiff::tz::db()
            .get(name)
            .map_err(|_| format!("unknown time zone {name}")),
    }
}

// ---- the sync ----------------------------------------------------------------------

/// What a sync decided: requeue after, and whether the status changed.
struct Outcome {
    requeue: Option<Duration>,
    update_status: bool,
}

async fn reconcile(cj: Arc<CronJob>, s: Arc<Shared>) -> Result<Action, Error> {
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let Some(cached) = s.cronjobs.get(&ObjectRef::new(&name).within(&ns)) else {
        return Ok(Action::await_change());
    };
    let mut cj = (*cached).clone();
    let uid = cj.uid().unwrap_or_default();
    let mut jobs: Vec<Job> = s
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| podutil::controlled_by(&j.metadata, &uid))
        .map(|j| (*j).clone())
        .collect();
    let status_before = cj.status.clone();
    let span = tracing::debug_span!("reconcile", controller = CONTROLLER, object.ref = %format!("{ns}/{name}"));
    let result = sync(&mut cj, &jobs, Timestamp::now(), &s)
        .instrument(span)
        .await;
    let mut outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // Still record what was learned (e.g. completed jobs) before retrying.
            if cj.status != status_before {
                update_status(&s, &cj).await?;
            }
            return Err(e);
        }
    };
    if cj.metadata.deletion_timestamp.is_none() {
        // Jobs created by this sync are not finished; the cached list suffices.
        jobs.retain(|j| finished_condition(j).is_some());
        if cleanup_finished_jobs(&s, &mut cj, &jobs).await {
            outcome.update_status = true;
        }
    }
    if outcome.update_status && cj.status != status_before {
        update_status(&s, &cj).await?;
    }
    Ok(match outcome.requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

async fn update_status(s: &Shared, cj: &CronJob) -> Result<(), Error> {
    // An update (not a patch), as upstream: its role may only update cronjobs/status,
    // and a stale copy fails with a conflict and is retried from the cache.
    let mut cj = cj.clone();
    if let Some(st) = cj.status.as_mut() {
        st.active = st.active.take().filter(|a| !a.is_empty());
    }
    let api: Api<CronJob> =
        Api::namespaced(s.cx.client.clone(), &cj.namespace().unwrap_or_default());
    api.replace_status(&cj.name_any(), &PostParams::default(), &cj)
        .await
        .map_err(Error::UpdateStatusFailed)?;
    Ok(())
}

fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    cj.status
        .iter()
        .flat_map(|s| s.active.iter().flatten())
        .any(|r| r.uid.as_deref() == Some(uid))
}

fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(active) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

async fn event(s: &Shared, cj: &CronJob, warning: bool, reason: &str, note: String) {
    podutil::event(&s.events, cj, warning, reason, note).await;
}

/// Upstream `syncCronJob`.
async fn sync(
    cj: &mut CronJob,
    jobs: &[Job],
    now: Timestamp,
    s: &Shared,
) -> Result<Outcome, Error> {
    let ns = cj.namespace().unwrap_or_default();
    let job_api: Api<Job> = Api::namespaced(s.cx.client.clone(), &ns);
    let mut update = false;
    let mut children = std::collections::HashSet::new();
    for j in jobs {
        let juid = j.uid().unwrap_or_default();
        children.insert(juid.clone());
        let found = in_active_list(cj, &juid);
        let finished = finished_condition(j);
        if !found && finished.is_none() {
            // Our status may be older than the Job: re-read before complaining.
            let api: Api<CronJob> = Api::namespaced(s.cx.client.clone(), &ns);
            if let Ok(fresh) = api.get(&cj.name_any()).await {
                if in_active_list(&fresh, &juid) {
                    cj.status = fresh.status;
                    continue;
                }
            }
            event(
                s,
                cj,
                true,
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.name_any()
                ),
            )
            .await;
        } else if let (true, Some(condition)) = (found, finished) {
            delete_from_active_list(cj, &juid);
            event(
                s,
                cj,
                false,
                "SawCompletedJob",
                format!(
                    "Saw completed job: {}, condition: {condition}",
                    j.name_any()
                ),
            )
            .await;
            update = true;
        }
        if finished == Some("Complete") {
            let completion = j.status.as_ref().and_then(|st| st.completion_time.clone());
            let st = cj.status.get_or_insert_default();
            match (&st.last_successful_time, completion) {
                (None, c) => {
                    st.last_successful_time = c;
                    update = true;
                }
                (Some(last), Some(c)) if c.0 > last.0 => {
                    st.last_successful_time = Some(c);
                    update = true;
                }
                _ => {}
            }
        }
    }
    // Active references whose Job no longer exists.
    let active: Vec<ObjectReference> = cj
        .status
        .as_ref()
        .and_then(|st| st.active.clone())
        .unwrap_or_default();
    for r in active {
        let ruid = r.uid.clone().unwrap_or_default();
        if children.contains(&ruid) {
            continue;
        }
        let rname = r.name.clone().unwrap_or_default();
        match job_api.get_opt(&rname).await {
            Ok(None) => {
                event(
                    s,
                    cj,
                    false,
                    "MissingJob",
                    format!("Active job went missing: {rname}"),
                )
                .await;
                delete_from_active_list(cj, &ruid);
                update = true;
            }
            Ok(Some(_)) => {}
            Err(e) => return Err(Error::GetJobFailed(rname, e)),
        }
    }

    let done = |update| {
        Ok(Outcome {
            requeue: None,
            update_status: update,
        })
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return done(update);
    }
    let spec = cj.spec.clone();
    let tz = match spec.time_zone.as_deref() {
        Some(name) => match load_location(name) {
            Ok(tz) => tz,
            Err(e) => {
                event(
                    s,
                    cj,
                    true,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {}: {e}", go_quote(name)),
                )
                .await;
                return done(update);
            }
        },
        None => TimeZone::UTC,
    };
    if spec.suspend == Some(true) {
        return done(update);
    }
    if spec.schedule.contains("TZ") {
        event(s, cj, true, "UnsupportedSchedule", format!("CRON_TZ or TZ used in schedule {} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", go_quote(&spec.schedule))).await;
    }
    let schedule = match cron::parse_standard(&spec.schedule, &load_location) {
        Ok(s) => s,
        Err(e) => {
            event(
                s,
                cj,
                true,
                "UnparseableSchedule",
                format!("unparseable schedule: {} : {e}", go_quote(&spec.schedule)),
            )
            .await;
            return done(update);
        }
    };
    let requeue = |cj: &CronJob| requeue_after(cj, now, &schedule, &tz);
    let scheduled = match cron::most_recent(&schedule, earliest(cj, now, true), now, &tz) {
        Err(e) => {
            event(
                s,
                cj,
                true,
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            )
            .await;
            return done(update);
        }
        Ok((None, _)) => {
            return Ok(Outcome {
                requeue: requeue(cj),
                update_status: update,
            });
        }
        Ok((Some(t), missed)) => {
            if missed == Missed::Many {
                event(s, cj, true, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into()).await;
            }
            t
        }
    };
    if let Some(d) = spec.starting_deadline_seconds {
        if scheduled + Duration::from_secs(d.max(0) as u64) < now {
            event(
                s,
                cj,
                true,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc1123z(scheduled)
                ),
            )
            .await;
            return Ok(Outcome {
                requeue: requeue(cj),
                update_status: update,
            });
        }
    }
    let name = job_name(&cj.name_any(), scheduled);
    let status = cj.status.clone().unwrap_or_default();
    let already = status
        .active
        .iter()
        .flatten()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return Ok(Outcome {
            requeue: requeue(cj),
            update_status: update,
        });
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && status.active.as_ref().is_some_and(|a| !a.is_empty()) {
        event(
            s,
            cj,
            false,
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        )
        .await;
        return Ok(Outcome {
            requeue: requeue(cj),
            update_status: update,
        });
    }
    if policy == "Replace" {
        for r in status.active.iter().flatten() {
            let rname = r.name.clone().unwrap_or_default();
            let job = match job_api.get(&rname).await {
                Ok(j) => j,
                Err(e) => {
                    event(s, cj, true, "FailedGet", format!("Get job: {e}")).await;
                    return Err(Error::GetJobFailed(rname, e));
                }
            };
            if !delete_job(s, cj, &job).await {
                return Err(Error::ReplaceFailed(format!("{ns}/{rname}")));
            }
            // The active list changed; the status is written below in any case.
        }
    }
    let want = job_from_template(cj, scheduled, &tz);
    let created = match job_api.create(&PostParams::default(), &want).await {
        Ok(job) => {
            event(
                s,
                cj,
                false,
                "SuccessfulCreate",
                format!("Created job {}", job.name_any()),
            )
            .await;
            job
        }
        Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
            // Created before (a retry, or our status was stale): adopt it if it is ours.
            let job = job_api
                .get(&name)
                .await
                .map_err(|e| Error::GetJobFailed(name.clone(), e))?;
            if !podutil::controlled_by(&job.metadata, &cj.uid().unwrap_or_default()) {
                return Err(Error::NotOurs(name));
            }
            job
        }
        Err(e) => {
            if !matches!(&e, kube::Error::Api(ae) if ae.reason == "Forbidden" && ae.message.contains("is being terminated"))
            {
                event(
                    s,
                    cj,
                    true,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                )
                .await;
            }
            return Err(Error::CreateJobFailed(e));
        }
    };
    let st = cj.status.get_or_insert_default();
    let active = st.active.get_or_insert_default();
    if !active.iter().any(|r| r.uid == created.metadata.uid) {
        active.push(job_ref(&created));
    }
    st.last_schedule_time = Some(Time(scheduled));
    Ok(Outcome {
        requeue: requeue(cj),
        update_status: true,
    })
}

fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Deletes a Job in the background and drops it from the active list (upstream
/// `deleteJob`); false when the delete failed.
async fn delete_job(s: &Shared, cj: &mut CronJob, job: &Job) -> bool {
    let api: Api<Job> = Api::namespaced(s.cx.client.clone(), &job.namespace().unwrap_or_default());
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => {
            event(s, cj, true, "FailedDelete", format!("Deleted job: {e}")).await;
            return false;
        }
    }
    delete_from_active_list(cj, &job.uid().unwrap_or_default());
    event(
        s,
        cj,
        false,
        "SuccessfulDelete",
        format!("Deleted job {}", job.name_any()),
    )
    .await;
    true
}

/// Upstream `cleanupFinishedJobs`: the oldest finished Jobs beyond the history limits
/// are deleted. True when the status changed.
async fn cleanup_finished_jobs(s: &Shared, cj: &mut CronJob, finished: &[Job]) -> bool {
    let spec = cj.spec.clone();
    let mut update = false;
    for (condition, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut js: Vec<&Job> = finished
            .iter()
            .filter(|j| finished_condition(j) == Some(condition))
            .collect();
        let excess = js.len().saturating_sub(limit.max(0) as usize);
        if excess == 0 {
            continue;
        }
        js.sort_by(|a, b| by_start_time(a, b));
        for j in js.into_iter().take(excess) {
            if delete_job(s, cj, j).await {
                update = true;
            }
        }
    }
    update
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus, JobTemplateSpec};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(schedule: &str, created: &str, last: Option<&str>) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("hello".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: CronJobSpec {
                schedule: schedule.into(),
                job_template: JobTemplateSpec::default(),
                ..Default::default()
            },
            status: Some(CronJobStatus {
                last_schedule_time: last.map(|l| Time(ts(l))),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn job_names_and_annotations() {
        let t = ts("2026-01-01T10:05:00Z");
        assert_eq!(
            job_name("hello", t),
            format!("hello-{}", t.as_second() / 60)
        );
        let ny = load_location("America/New_York").unwrap();
        assert_eq!(rfc3339_in(t, &ny), "2026-01-01T05:05:00-05:00");
        assert_eq!(rfc3339_in(t, &TimeZone::UTC), "2026-01-01T10:05:00Z");
        assert_eq!(rfc1123z(t), "Thu, 01 Jan 2026 10:05:00 +0000");
        let job = job_from_template(
            &cronjob("*/5 * * * *", "2026-01-01T10:00:00Z", None),
            t,
            &ny,
        );
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CronJob", "u-1", Some(true))
        );
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP],
            "2026-01-01T05:05:00-05:00"
        );
        assert_eq!(
            load_location("Mars/Base").unwrap_err(),
            "unknown time zone Mars/Base"
        );
    }

    #[test]
    fn requeue_at_the_next_activation() {
        let s = cron::parse_standard("*/5 * * * *", &load_location).unwrap();
        let cj = cronjob("*/5 * * * *", "2026-01-01T10:00:30Z", None);
        // Created 10:00:30, now 10:02:00: next is 10:05:00, plus 100 ms.
        assert_eq!(
            requeue_after(&cj, ts("2026-01-01T10:02:00Z"), &s, &TimeZone::UTC),
            Some(Duration::from_millis(180_100))
        );
        // Just scheduled 10:05: next is 10:10.
        let cj = cronjob(
            "*/5 * * * *",
            "2026-01-01T10:00:30Z",
            Some("2026-01-01T10:05:00Z"),
        );
        assert_eq!(
            requeue_after(&cj, ts("2026-01-01T10:05:01Z"), &s, &TimeZone::UTC),
            Some(Duration::from_millis(299_100))
        );
        let never = cron::parse_standard("0 0 30 2 *", &load_location).unwrap();
        assert_eq!(
            requeue_after(&cj, ts("2026-01-01T10:05:01Z"), &never, &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn starting_deadline_moves_the_search_start() {
        let mut cj = cronjob(
            "*/1 * * * *",
            "2026-01-01T09:00:00Z",
            Some("2026-01-01T09:00:00Z"),
        );
        let now = ts("2026-01-01T10:00:30Z");
        assert_eq!(earliest(&cj, now, true), ts("2026-01-01T09:00:00Z"));
        cj.spec.starting_deadline_seconds = Some(200);
        assert_eq!(earliest(&cj, now, true), ts("2026-01-01T09:57:10Z"));
        assert_eq!(earliest(&cj, now, false), ts("2026-01-01T09:00:00Z"));
    }

    #[test]
    fn oldest_started_jobs_go_first() {
        let job = |name: &str, start: Option<&str>| Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::batch::v1::JobStatus {
                start_time: start.map(|s| Time(ts(s))),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut js = [
            job("c", None),
            job("b", Some("2026-01-01T10:00:00Z")),
            job("a", Some("2026-01-01T10:00:00Z")),
            job("d", Some("2026-01-01T09:00:00Z")),
        ];
        js.sort_by(by_start_time);
        let names: Vec<String> = js.iter().map(|j| j.name_any()).collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
    }
}
