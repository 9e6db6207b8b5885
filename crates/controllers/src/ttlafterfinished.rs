//! The TTL-after-finished controller (upstream `ttl-after-finished-controller`): a
//! finished Job (Complete or Failed) with `ttlSecondsAfterFinished` is deleted, with
//! foreground propagation and a UID precondition, that many seconds after it finished.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use crate::Context;

/// Runs the controller until dropped.
pub async fn run(cx: Context) {
    Controller::new(
        Api::<Job>::all(cx.watch_client.clone()),
        watcher::Config::default(),
    )
    .run(
        crate::metrics::queue().reconciler(reconcile),
        crate::metrics::queue().error_policy(error_policy),
        Arc::new(cx),
    )
    .for_each(|_| async {})
    .await;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot clean up job: {0}")]
struct Error(#[from] kube::Error);

fn error_policy(_: Arc<Job>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(controller = "ttl-after-finished-controller", %error);
    Action::requeue(Duration::from_secs(2))
}

/// When the Job expires: its finish time (the Complete or Failed condition's transition,
/// else completionTime) plus the TTL. None: no TTL, not finished, or being deleted.
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let status = job.status.as_ref()?;
    let finished = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    let at = finished
        .last_transition_time
        .as_ref()
        .or(status.completion_time.as_ref())
        .map(|t| t.0)?;
    Some(at + Duration::from_secs(ttl.max(0) as u64))
}

async fn reconcile(job: Arc<Job>, cx: Arc<Context>) -> Result<Action, Error> {
    let Some(at) = expires_at(&job) else {
        return Ok(Action::await_change());
    };
    let now = Timestamp::now();
    if at > now {
        let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        return Ok(Action::requeue(wait + Duration::from_millis(50)));
    }
    let ns = job.namespace().unwrap_or_default();
    // Look again before deleting: the TTL may have changed (upstream does the same).
    let fresh: Api<Job> = Api::namespaced(cx.client.clone(), &ns);
    let Some(current) = fresh.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if expires_at(&current).is_none_or(|t| t > now) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let api: Api<Job> = Api::namespaced(cx.client.clone(), &ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: current.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&job.name_any(), &dp).await {
        Ok(_) => tracing::debug!(job = %job.name_any(), "deleted finished job past its TTL"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(ttl: Option<i32>, condition: Option<(&str, &str)>) -> Job {
        let conditions: Vec<_> = condition
            .into_iter()
            .map(|(t, s)| json!({"type": t, "status": s, "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"ttlSecondsAfterFinished": ttl, "template": {}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn expiry_counts_from_the_finish() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let cases = [
            (
                job(Some(100), Some(("Complete", "True"))),
                Some(t0 + Duration::from_secs(100)),
            ),
            (job(Some(0), Some(("Failed", "True"))), Some(t0)),
            (job(None, Some(("Complete", "True"))), None),
            (job(Some(5), Some(("Complete", "False"))), None),
            (job(Some(5), None), None),
        ];
        for (j, want) in cases {
            assert_eq!(expires_at(&j), want);
        }
    }
}
