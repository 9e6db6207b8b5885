//! Leader election on a `coordination.k8s.io` Lease (upstream's `kube-system/kube-scheduler`):
//! only the holder schedules; it renews every retry period and stops scheduling if it
//! cannot renew within the renew deadline; it releases the Lease when it stops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Where and how to elect a leader.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity (`<hostname>_<unique>`).
    pub identity: String,
    /// How long a Lease holds without renewal (upstream's 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews (2 s).
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Upstream kube-scheduler's defaults for `identity`.
    pub fn new(identity: impl Into<String>) -> LeaderElection {
        LeaderElection {
            namespace: "kube-system".into(),
            name: "kube-scheduler".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderElection {
    /// As a configuration's `leaderElection` says; `None` when `leaderElect` is false.
    pub fn from_config(
        config: &crate::config::LeaderElectionConfig,
        identity: impl Into<String>,
    ) -> Option<LeaderElection> {
        config.leader_elect.then(|| LeaderElection {
            namespace: config.resource_namespace.clone(),
            name: config.resource_name.clone(),
            identity: identity.into(),
            lease_duration: config.lease_duration,
            renew_deadline: config.renew_deadline,
            retry_period: config.retry_period,
        })
    }
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_micros() as i32 * 1000)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Whether `me` may take (or keep) the Lease at `now`: it is ours, unheld, or expired.
pub fn can_acquire(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else {
        return true;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == me {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref() else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.0.as_second() + duration < now.as_second()
}

/// One attempt to take or renew the Lease; whether we hold it afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, le: &LeaderElection) -> bool {
    let now = now();
    let duration = le.lease_duration.as_secs() as i32;
    let current = match api.get_opt(&le.name).await {
        Ok(current) => current,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the leader lease");
            return false;
        }
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(le.name.clone()),
                namespace: Some(le.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(le.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return api.create(&PostParams::default(), &lease).await.is_ok();
    };
    if !can_acquire(lease.spec.as_ref(), &le.identity, now) {
        return false;
    }
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(le.identity.as_str()) {
        spec.holder_identity = Some(le.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(duration);
    spec.renew_time = Some(MicroTime(now));
    // The update carries the resourceVersion read: a concurrent candidate gets a 409.
    api.replace(&le.name, &PostParams::default(), &lease)
        .await
        .is_ok()
}

/// Waits until this candidate holds the Lease.
pub async fn acquire(client: &Client, le: &LeaderElection) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    loop {
        if try_acquire_or_renew(&api, le).await {
            tracing::info!(lease = %format!("{}/{}", le.namespace, le.name), identity = %le.identity, "became leader");
            return;
        }
        tokio::time::sleep(le.retry_period).await;
    }
}

/// Renews the Lease until a renewal fails for longer than the renew deadline; returns
/// when leadership is lost.
pub async fn hold(client: &Client, le: &LeaderElection) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(le.retry_period).await;
        if try_acquire_or_renew(&api, le).await {
            last_renewed = tokio::time::Instant::now();
        } else if last_renewed.elapsed() > le.renew_deadline {
            tracing::error!(identity = %le.identity, "leader election lost");
            return;
        }
    }
}

/// Gives the Lease up (so a successor need not wait for it to expire).
pub async fn release(client: &Client, le: &LeaderElection) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &le.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&le.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(le.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    let _ = api.replace(&le.name, &PostParams::default(), &lease).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_at: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
            lease_duration_seconds: Some(duration),
            ..Default::default()
        }
    }

    #[test]
    fn leases_are_taken_only_when_free_ours_or_expired() {
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(can_acquire(None, "me", at(100)));
        assert!(can_acquire(Some(&spec("", 99, 15)), "me", at(100)));
        assert!(can_acquire(Some(&spec("me", 99, 15)), "me", at(100)));
        assert!(!can_acquire(Some(&spec("other", 99, 15)), "me", at(100)));
        assert!(!can_acquire(Some(&spec("other", 85, 15)), "me", at(100)));
        assert!(can_acquire(Some(&spec("other", 84, 15)), "me", at(100)));
    }
}
