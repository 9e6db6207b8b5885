//! Test and benchmark support: free ports and real etcd clusters on loopback.
//!
//! [`EtcdCluster`] runs `etcd` (found on `PATH`, or at `$RKUBE_ETCD_BIN`) as child
//! processes, each member in its own temporary data dir with its output logged to a file
//! there. Dropping the cluster kills every process it started and removes the dirs, so a
//! test cleans up whether it passes or panics; on a panic the tail of each member's log is
//! printed to stderr first.

pub mod images;
pub mod node;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

/// Raft heartbeat interval, ms: fast, so elections finish within a fraction of a second,
/// but with headroom for a loaded 2-core machine.
const HEARTBEAT_MS: u32 = 20;
/// Raft election timeout, ms (etcd wants at least 5 heartbeats).
const ELECTION_TIMEOUT_MS: u32 = 200;
/// Request size limit: above the store's 1.5 MiB value limit plus key and framing.
const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// How long a cluster (or a restarted member) may take to become healthy.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often a start is retried with fresh ports when a member exits early (a port race).
const START_ATTEMPTS: usize = 3;
/// Timeout of one HTTP request to a member.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind 127.0.0.1:0")
}

/// One etcd member: its ports, data dir and (while running) process.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn client_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// Starts the process; the cluster flags only matter on the first start (a restart
    /// finds its membership in the data dir).
    fn spawn(&mut self, initial_cluster: &str, token: &str) -> anyhow::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let bin = std::env::var_os("RKUBE_ETCD_BIN").unwrap_or_else(|| "etcd".into());
        let child = Command::new(&bin)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", token])
            .args(["--heartbeat-interval", &HEARTBEAT_MS.to_string()])
            .args(["--election-timeout", &ELECTION_TIMEOUT_MS.to_string()])
            .args(["--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
            .arg("--pre-vote")
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", Path::new(&bin).display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process (SIGKILL) and reaps it; a no-op when it is not running.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Err` when the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "etcd member {} exited with {status}; log:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
        }
        Ok(())
    }

    fn healthy(&self) -> bool {
        match http_request(self.client_addr(), "GET", "/health", None) {
            Ok((200, body)) => body.contains("\"health\":\"true\""),
            _ => false,
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A real etcd cluster of child processes on loopback, torn down on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    // Last, so the dir is removed after the processes are gone.
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts a cluster of `members` members with random free ports and fast raft timing,
    /// and waits until every member reports itself healthy.
    pub fn start(members: usize) -> anyhow::Result<Self> {
        if members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(members) {
                Ok(cluster) => return Ok(cluster),
                // Most likely a port that was taken between `free_port` and etcd's bind.
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    fn try_start(count: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("rkube-etcd-").tempdir()?;
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}")),
                log_path: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token,
            dir,
        };
        for i in 0..count {
            let (initial_cluster, token) = (cluster.initial_cluster.clone(), cluster.token.clone());
            cluster.members[i].spawn(&initial_cluster, &token)?;
        }
        cluster.wait_healthy(0..count)?;
        Ok(cluster)
    }

    /// Waits until the given members answer `/health` with `true` (they see a leader).
    fn wait_healthy(&mut self, indices: std::ops::Range<usize>) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let mut pending: Vec<usize> = indices.collect();
        while !pending.is_empty() {
            for &i in &pending {
                self.members[i].check_running()?;
            }
            pending.retain(|&i| !self.members[i].healthy());
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = pending
                    .iter()
                    .map(|&i| {
                        format!(
                            "{}:\n{}",
                            self.members[i].name,
                            self.members[i].log_tail(30)
                        )
                    })
                    .collect();
                bail!(
                    "etcd members {pending:?} not healthy within {START_DEADLINE:?}; logs:\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The client URLs (`http://127.0.0.1:PORT`) of every member, running or not.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// The process id of each member, `None` for a member that is not running.
    pub fn member_pids(&self) -> Vec<Option<u32>> {
        self.members
            .iter()
            .map(|m| m.child.as_ref().map(Child::id))
            .collect()
    }

    /// The directory holding the members' data dirs and logs (`m<i>/`, `m<i>.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills member `i` with SIGKILL and reaps it. Its data dir stays for a restart.
    pub fn kill_member(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again with its data dir and ports, and waits until it is healthy.
    pub fn restart_member(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].kill();
        let (initial_cluster, token) = (self.initial_cluster.clone(), self.token.clone());
        self.members[i].spawn(&initial_cluster, &token)?;
        self.wait_healthy(i..i + 1)
    }

    /// The index of the current leader, asking each running member's
    /// `/v3/maintenance/status`. Waits up to 10 s for an election to finish.
    pub fn leader_index(&self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut last_error = anyhow!("no member is running");
            for (i, member) in self.members.iter().enumerate() {
                if member.child.is_none() {
                    continue;
                }
                match member_status(member.client_addr()) {
                    Ok((id, leader)) if id == leader && leader != 0 => return Ok(i),
                    Ok(_) => last_error = anyhow!("no running member is the leader"),
                    Err(err) => last_error = err,
                }
            }
            if Instant::now() > deadline {
                return Err(last_error.context("find the etcd leader"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for member in &mut self.members {
            member.kill();
            if panicking {
                eprintln!(
                    "--- etcd member {} log (tail) ---\n{}",
                    member.name,
                    member.log_tail(20)
                );
            }
        }
    }
}

/// `(member_id, leader)` from a member's status, as the gRPC gateway reports them.
fn member_status(addr: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let (code, body) = http_request(addr, "POST", "/v3/maintenance/status", Some("{}"))?;
    if code != 200 {
        bail!("status of {addr}: HTTP {code}: {body}");
    }
    let status: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("status of {addr}"))?;
    // The gateway renders uint64 as JSON strings.
    let number = |v: &serde_json::Value| -> u64 {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    Ok((
        number(&status["header"]["member_id"]),
        number(&status["leader"]),
    ))
}

/// A minimal HTTP/1.0 request (so the answer is never chunked); returns status and body.
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("malformed HTTP status line"))?;
    Ok((code, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).expect("port is free");
    }

    #[test]
    fn three_member_cluster_elects_leader_and_survives_leader_kill() {
        let mut cluster = EtcdCluster::start(3).expect("start");
        assert_eq!(cluster.client_endpoints().len(), 3);
        assert!(cluster.member_pids().iter().all(Option::is_some));
        let dir = cluster.dir().to_owned();
        let leader = cluster.leader_index().expect("leader");
        cluster.kill_member(leader);
        assert_eq!(cluster.member_pids()[leader], None);
        let new_leader = cluster.leader_index().expect("new leader");
        assert_ne!(new_leader, leader);
        cluster.restart_member(leader).expect("restart");
        assert!(cluster.member_pids()[leader].is_some());
        drop(cluster);
        assert!(!dir.exists(), "temp dir removed on drop");
    }
}
