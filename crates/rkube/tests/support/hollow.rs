//! Hollow nodes and polling for the controller tests: a `rkube hollow-nodes` process
//! (killed by PID when dropped, which stops its nodes' heartbeats) and `wait_json`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Cluster;

/// A `rkube hollow-nodes` process, killed (by PID) when dropped or [`HollowNodes::kill`]ed.
pub struct HollowNodes(Child);

impl HollowNodes {
    pub fn start(c: &Cluster, extra: &[&str]) -> HollowNodes {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.data_dir().join("hollow.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("hollow-nodes")
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rkube hollow-nodes");
        HollowNodes(child)
    }

    /// Stops the nodes: no more Lease renewals or pod status updates.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `kubectl <args> -o json` (up to `secs` seconds) until `check` holds for the
/// parsed object; returns it. Panics with the last output and the logs otherwise.
pub fn wait_json(
    c: &Cluster,
    args: &[&str],
    secs: u64,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["-o", "json"]);
    loop {
        let out = c.kubectl(&full);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if check(&v) {
                    return v;
                }
            }
        }
        if Instant::now() > deadline {
            let hollow =
                std::fs::read_to_string(c.data_dir().join("hollow.log")).unwrap_or_default();
            panic!(
                "timed out waiting for {what}: last output {text} {}\n--- server log ---\n{}\n--- hollow nodes ---\n{hollow}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
