//! Container probes (startup, liveness, readiness) by exec (CRI ExecSync), tcpSocket,
//! httpGet and grpc (`grpc_probe`), with upstream's defaults, thresholds and failure messages. Each probe's state
//! belongs to one container instance and starts over when the container restarts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::Runtime;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }

    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Startup => c.startup_probe.as_ref(),
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
        }
    }

    /// The result before the first probe: only liveness starts out healthy.
    fn initial(self) -> bool {
        matches!(self, Kind::Liveness)
    }
}

/// The outcome of one probe run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    Failure(String),
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

/// A probe's timing and thresholds with upstream's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: i32,
    pub failure_threshold: i32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
        }
    }
}

/// One probe of one container instance.
#[derive(Debug, Clone)]
struct State {
    container_id: String,
    result: bool,
    successes: i32,
    failures: i32,
    next: Instant,
}

/// What a container's probes say now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Verdict {
    /// `None` without a readiness probe.
    pub ready: Option<bool>,
    /// `None` without a startup probe.
    pub started: Option<bool>,
    /// The probe (liveness or startup) whose failures mean the container must restart.
    pub restart: Option<Kind>,
}

/// The probe states of one pod's containers.
#[derive(Debug, Default)]
pub struct Prober {
    states: HashMap<(String, Kind), State>,
}

impl Prober {
    /// The earliest time a probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.states.values().map(|s| s.next).min()
    }

    /// Runs the due probes of running container `c` (instance `container_id`, started
    /// at `started`) and returns the verdict; failures and successes are reported
    /// through `unhealthy` (kind, message) as they happen.
    #[allow(clippy::too_many_arguments)]
    pub async fn probe(
        &mut self,
        runtime: &dyn Runtime,
        c: &Container,
        container_id: &str,
        started: Instant,
        pod_ip: &str,
        mut unhealthy: impl FnMut(Kind, &str),
    ) -> Verdict {
        let mut verdict = Verdict::default();
        for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
            let Some(probe) = kind.of(c) else {
                self.states.remove(&(c.name.clone(), kind));
                continue;
            };
            let timing = Timing::of(probe);
            let key = (c.name.clone(), kind);
            let state = self.states.entry(key).or_insert_with(|| State {
                container_id: String::new(),
                result: kind.initial(),
                successes: 0,
                failures: 0,
                next: started,
            });
            if state.container_id != container_id {
                *state = State {
                    container_id: container_id.to_owned(),
                    result: kind.initial(),
                    successes: 0,
                    failures: 0,
                    next: started + timing.initial_delay,
                };
            }
            // Liveness and readiness wait until the startup probe succeeded.
            let gated = kind != Kind::Startup && verdict.started == Some(false);
            // A startup probe that succeeded is not run again for this instance.
            let done = kind == Kind::Startup && state.result;
            if !gated && !done && Instant::now() >= state.next {
                state.next = Instant::now() + timing.period;
                match run(runtime, probe, c, container_id, pod_ip, timing.timeout).await {
                    Outcome::Success => {
                        state.failures = 0;
                        state.successes += 1;
                        if state.successes >= timing.success_threshold {
                            state.result = true;
                        }
                    }
                    Outcome::Failure(msg) => {
                        state.successes = 0;
                        state.failures += 1;
                        unhealthy(kind, &msg);
                        if state.failures >= timing.failure_threshold {
                            state.result = false;
                        }
                    }
                }
            }
            match kind {
                Kind::Startup => {
                    verdict.started = Some(state.result);
                    if !state.result && state.failures >= timing.failure_threshold {
                        verdict.restart = Some(Kind::Startup);
                    }
                }
                Kind::Liveness => {
                    if !state.result {
                        verdict.restart = verdict.restart.or(Some(Kind::Liveness));
                    }
                }
                Kind::Readiness => verdict.ready = Some(state.result && !gated),
            }
        }
        if verdict.restart.is_some() {
            // The container is about to be killed: its next instance starts over.
            self.states.retain(|(name, _), _| name != &c.name);
        }
        verdict
    }
}

/// A named or numbered port of `c`.
fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port: {name} in container {}", c.name)),
    }
}

/// Runs one probe with its timeout.
pub async fn run(
    runtime: &dyn Runtime,
    probe: &Probe,
    c: &Container,
    container_id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> Outcome {
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return match runtime.exec_sync(container_id, cmd.clone(), timeout).await {
            Ok(r) if r.exit_code == 0 => Outcome::Success,
            Ok(r) => {
                let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                out.push_str(&String::from_utf8_lossy(&r.stderr));
                Outcome::Failure(out)
            }
            Err(crate::cri::RuntimeError::DeadlineExceeded { .. }) => {
                Outcome::Failure(format!("command {:?} timed out", cmd.join(" ")))
            }
            Err(e) => Outcome::Failure(e.message()),
        };
    }
    if probe.tcp_socket.is_some() || probe.http_get.is_some() || probe.grpc.is_some() {
        // A simulated pod network: the runtime answers for the pod's address.
        if let Some(r) = runtime.simulated_network_probe(container_id).await {
            return match r {
                Ok(()) => Outcome::Success,
                Err(msg) => Outcome::Failure(msg),
            };
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match resolve_port(&tcp.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_owned());
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {}", io_reason(&e))),
            Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(http) = &probe.http_get {
        let port = match resolve_port(&http.port, c) {
            Ok(p) => p,
            Err(e) => return Outcome::Failure(e),
        };
        if http.scheme.as_deref() == Some("HTTPS") {
            return Outcome::Failure("HTTPS probes are not supported by this kubelet yet".into());
        }
        let host = http.host.clone().unwrap_or_else(|| pod_ip.to_owned());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{host}:{port}{path}");
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return match tokio::time::timeout(timeout, http_get(&host, port, &path, &headers)).await {
            Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
            Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
            Ok(Err(e)) => Outcome::Failure(format!(
                "Get \"{url}\": dial tcp {host}:{port}: connect: {}",
                io_reason(&e)
            )),
            Err(_) => Outcome::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
        };
    }
    if let Some(grpc) = &probe.grpc {
        let Ok(port) = u16::try_from(grpc.port) else {
            return Outcome::Failure(format!("invalid port number: {}", grpc.port));
        };
        let service = grpc.service.as_deref().unwrap_or_default();
        return crate::grpc_probe::check(pod_ip, port, service, timeout).await;
    }
    Outcome::Failure("missing probe handler".into())
}

/// Go's wording of common connect errors.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// A plain HTTP/1.1 GET as the prober sends it; the status code.
async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("User-Agent") {
        req.push_str("User-Agent: kube-probe/1.37\r\n");
    }
    if !has("Accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status(&buf).ok_or_else(|| std::io::Error::other("malformed HTTP response"))
}

/// The status code of an HTTP/1.x status line.
fn parse_status(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_upstreams() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        assert_eq!(t.initial_delay, Duration::ZERO);
    }

    #[test]
    fn ports_resolve_by_name_or_number() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]}))
        .unwrap();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("x".into()), &c),
            Err("couldn't find port: x in container c".into())
        );
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 500 oops\r\n"), Some(500));
        assert_eq!(parse_status(b"SSH-2.0\r\n"), None);
    }

    #[tokio::test]
    async fn http_probe_reads_the_status_from_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200, 503] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).contains("User-Agent: kube-probe/1.37"));
                let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(
            http_get("127.0.0.1", port, "/healthz", &[]).await.unwrap(),
            200
        );
        assert_eq!(
            http_get("127.0.0.1", port, "/healthz", &[]).await.unwrap(),
            503
        );
    }
}
