//! The pod lifecycle event generator: relists the runtime's sandboxes and containers
//! every second, and tells the worker of each pod whose containers changed. Its health
//! (the time of the last completed relist) gates pod sync and the node's Ready
//! condition, with upstream's message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cri::Runtime;
use crate::pod_config::POD_UID_LABEL;

/// How often the runtime is relisted.
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);
/// A relist older than this makes the node NotReady (upstream's constant; rkube's
/// `--pleg-relist-threshold` changes it, e.g. for tests).
pub const RELIST_THRESHOLD: Duration = Duration::from_secs(180);

/// Go's `time.Duration.String()` for non-negative durations, e.g. `3m0s`, `1.5s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let total_secs = d.as_secs();
    let (h, m) = (total_secs / 3600, (total_secs / 60) % 60);
    let secs = frac(
        (total_secs % 60) as u128 * 1_000_000_000 + d.subsec_nanos() as u128,
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// `n / div` with the fraction's trailing zeros trimmed.
fn frac(n: u128, div: u128) -> String {
    let (whole, rest) = (n / div, n % div);
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rest:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// The relister's state.
pub struct Pleg {
    /// How old the last relist may be before the PLEG counts as unhealthy.
    threshold: Duration,
    last_active: Mutex<Instant>,
    /// Container id → (pod uid, state) at the last relist.
    seen: Mutex<HashMap<String, (String, i32)>>,
    /// `kubelet_pleg_relist_duration_seconds`.
    pub relist_durations: crate::stats::Histogram,
}

impl Default for Pleg {
    fn default() -> Self {
        Pleg::new(RELIST_THRESHOLD)
    }
}

impl Pleg {
    pub fn new(threshold: Duration) -> Self {
        Pleg {
            threshold,
            last_active: Mutex::new(Instant::now()),
            seen: Mutex::new(HashMap::new()),
            relist_durations: crate::stats::Histogram::default(),
        }
    }

    /// The error the node reports when relisting stalled, as upstream words it.
    pub fn health_error(&self) -> Option<String> {
        let since = self
            .last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        (since > self.threshold).then(|| {
            format!(
                "PLEG is not healthy: pleg was last seen active {} ago; threshold is {}",
                go_duration(since),
                go_duration(self.threshold)
            )
        })
    }

    pub fn healthy(&self) -> bool {
        self.health_error().is_none()
    }

    /// Relists once; returns the uids of pods whose containers or sandboxes changed.
    pub async fn relist(&self, runtime: &dyn Runtime) -> crate::cri::Result<Vec<String>> {
        let started = Instant::now();
        let containers = runtime.list_containers(None).await?;
        let sandboxes = runtime.list_pod_sandboxes(None).await?;
        self.relist_durations.observe(started.elapsed());
        let now: HashMap<String, (String, i32)> = containers
            .into_iter()
            .map(|c| {
                let uid = c.labels.get(POD_UID_LABEL).cloned().unwrap_or_default();
                (c.id, (uid, c.state))
            })
            .chain(sandboxes.into_iter().map(|s| {
                let uid = s.labels.get(POD_UID_LABEL).cloned().unwrap_or_default();
                (format!("sandbox/{}", s.id), (uid, s.state))
            }))
            .collect();
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed: Vec<String> = now
            .iter()
            .filter(|(id, v)| seen.get(*id) != Some(v))
            .map(|(_, (uid, _))| uid.clone())
            .chain(
                seen.iter()
                    .filter(|(id, _)| !now.contains_key(*id))
                    .map(|(_, (uid, _))| uid.clone()),
            )
            .filter(|uid| !uid.is_empty())
            .collect();
        changed.sort();
        changed.dedup();
        *seen = now;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_as_go_does() {
        assert_eq!(go_duration(Duration::from_secs(180)), "3m0s");
        assert_eq!(go_duration(Duration::from_millis(185_500)), "3m5.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn stale_relist_reports_upstreams_message() {
        let p = Pleg::default();
        assert!(p.healthy());
        *p.last_active.lock().unwrap() = Instant::now() - Duration::from_secs(200);
        let msg = p.health_error().unwrap();
        assert!(
            msg.starts_with("PLEG is not healthy: pleg was last seen active 3m20"),
            "{msg}"
        );
        assert!(msg.ends_with("ago; threshold is 3m0s"), "{msg}");
    }

    #[test]
    fn the_configured_threshold_is_printed_as_go_does() {
        let p = Pleg::new(Duration::from_millis(2500));
        assert!(p.healthy());
        *p.last_active.lock().unwrap() = Instant::now() - Duration::from_secs(3);
        let msg = p.health_error().unwrap();
        assert!(msg.ends_with("ago; threshold is 2.5s"), "{msg}");
    }
}
