//! Latency summaries, and how the machine's CPUs spent a measured window.

use std::time::Duration;

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(mut samples: Vec<Duration>) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Summary {
            count: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The machine's CPU time counters (`/proc/stat`'s `cpu` line, in ticks): a reading at
/// each end of a measured window tells whether the run was held back by the CPUs (little
/// idle) or by waiting, such as on the disk (idle or iowait), which pods/s alone cannot.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    user: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    steal: u64,
}

impl CpuTimes {
    /// The counters now; `None` where `/proc/stat` is not there.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        Some(CpuTimes {
            user: at(0) + at(1),
            system: at(2) + at(5) + at(6),
            idle: at(3),
            iowait: at(4),
            steal: at(7),
        })
    }

    /// Shares of the window since `start`, in percent: user, system (with interrupts),
    /// idle, iowait and steal.
    pub fn since(&self, start: &CpuTimes) -> CpuSplit {
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let parts = [
            d(self.user, start.user),
            d(self.system, start.system),
            d(self.idle, start.idle),
            d(self.iowait, start.iowait),
            d(self.steal, start.steal),
        ];
        let total = parts.iter().sum::<f64>().max(1.0);
        let pct = |i: usize| 100.0 * parts[i] / total;
        CpuSplit {
            user: pct(0),
            system: pct(1),
            idle: pct(2),
            iowait: pct(3),
            steal: pct(4),
        }
    }
}

/// How the machine's CPUs spent a window, in percent.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct CpuSplit {
    pub user: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub steal: f64,
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:.0}%, system {:.0}%, idle {:.0}%, iowait {:.0}%",
            self.user, self.system, self.idle, self.iowait
        )?;
        if self.steal >= 0.5 {
            write!(f, ", steal {:.0}%", self.steal)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_split_is_the_share_of_each_counter_over_the_window() {
        let a = CpuTimes::parse("cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = CpuTimes::parse("cpu  160 10 70 800 10 0 10 0 0 0\n").unwrap();
        let s = b.since(&a);
        assert_eq!((s.user, s.system, s.idle, s.iowait), (70.0, 30.0, 0.0, 0.0));
        assert!(CpuTimes::parse("intr 1 2\n").is_none());
        assert!(CpuTimes::parse("cpu  1 x 3\n").is_none());
    }

    #[test]
    fn percentiles() {
        let s = Summary::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!(
            (s.count, s.p50, s.p99, s.max),
            (
                100,
                Duration::from_millis(50),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
        assert_eq!(Summary::of(vec![]).count, 0);
    }
}
