//! `bench deployment`: a real `rkube server` (controller manager and scheduler
//! in-process) with `--nodes` hollow nodes; one Deployment of `--replicas` replicas is
//! created with kubectl and timed until every replica is Ready, then a new image is set
//! and timed until the rollout completes. The server's CPU time and RSS (it hosts the
//! controller manager) are read from /proc around each phase.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct DeploymentArgs {
    /// The rkube binary to run (build it with `cargo build --release -p rkube`).
    #[arg(long, default_value = "target/release/rkube")]
    rkube: PathBuf,
    /// kubectl to drive it with.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// How the hollow nodes run pods: `kubelet` (the real kubelet on a simulated
    /// runtime) or `paper`.
    #[arg(long, default_value = "kubelet")]
    hollow_mode: String,
    /// Deployment replicas.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/deployment.json")]
    out: PathBuf,
}

/// A child process killed when dropped.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) and RSS / peak RSS (MiB) of a process.
pub(crate) fn usage(pid: u32) -> Result<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the comm.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        ticks / 100.0,
        kib("VmRSS:") / 1024.0,
        kib("VmHWM:") / 1024.0,
    ))
}

fn kubectl(args: &DeploymentArgs, kubeconfig: &Path, a: &[&str]) -> Result<String> {
    let out = Command::new(&args.kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(a)
        .output()
        .with_context(|| format!("running {}", args.kubectl.display()))?;
    if !out.status.success() {
        bail!("kubectl {a:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls the deployment's status until `done(replicas, updated, ready, available)`.
fn wait(
    args: &DeploymentArgs,
    kc: &Path,
    what: &str,
    done: impl Fn(usize, usize, usize, usize) -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let out = kubectl(
            args,
            kc,
            &[
                "get",
                "deployment",
                "bench",
                "-o",
                "jsonpath={.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas} {.status.observedGeneration} {.metadata.generation}",
            ],
        )?;
        let v: Vec<usize> = out
            .split(' ')
            .map(|x| x.trim().parse().unwrap_or(0))
            .collect();
        if v.len() == 6 && v[4] >= v[5] && done(v[0], v[1], v[2], v[3]) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(args.timeout) {
            bail!("{what}: timed out, last status {out:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn run(args: DeploymentArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let server = Proc(
        Command::new(&args.rkube)
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", args.rkube.display()))?,
    );
    let kc = dir.path().join("admin.kubeconfig");
    let start = Instant::now();
    while kubectl(&args, &kc, &["get", "--raw", "/readyz"]).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("server not ready");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _hollow = Proc(
        Command::new(&args.rkube)
            .args(["hollow-nodes", "--kubeconfig"])
            .arg(&kc)
            .args([
                "--count",
                &args.nodes.to_string(),
                "--mode",
                &args.hollow_mode,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let n = args.nodes;
    loop {
        let out = kubectl(&args, &kc, &["get", "nodes", "-o", "name"])?;
        if out.lines().count() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    while kubectl(&args, &kc, &["get", "sa", "default"]).is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = server.0.id();
    let r = args.replicas;
    let (cpu0, _, _) = usage(pid)?;
    kubectl(
        &args,
        &kc,
        &[
            "create",
            "deployment",
            "bench",
            "--image=nginx",
            &format!("--replicas={r}"),
        ],
    )?;
    let create = wait(&args, &kc, "all ready", |total, updated, ready, _| {
        total == r && updated == r && ready == r
    })?;
    let (cpu1, rss1, _) = usage(pid)?;
    println!("deployment of {r} on {n} hollow nodes: all Ready in {:.1} s (server CPU {:.1} s, RSS {rss1:.0} MiB)", create.as_secs_f64(), cpu1 - cpu0);
    kubectl(
        &args,
        &kc,
        &["set", "image", "deployment/bench", "nginx=nginx:1.27"],
    )?;
    let rollout = wait(&args, &kc, "rollout", |total, updated, _, available| {
        total == r && updated == r && available == r
    })?;
    let (cpu2, rss2, hwm) = usage(pid)?;
    println!("new image rolled out in {:.1} s (server CPU {:.1} s, RSS {rss2:.0} MiB, peak {hwm:.0} MiB)", rollout.as_secs_f64(), cpu2 - cpu1);
    let doc = json!({
        "nodes": n, "hollowMode": args.hollow_mode, "replicas": r, "binary": args.rkube.display().to_string(),
        "allReadySeconds": create.as_secs_f64(), "rolloutSeconds": rollout.as_secs_f64(),
        "serverCpuSecondsCreate": cpu1 - cpu0, "serverCpuSecondsRollout": cpu2 - cpu1,
        "serverRssMiB": rss2, "serverPeakRssMiB": hwm,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
