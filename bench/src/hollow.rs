//! `bench hollow`: what hollow nodes cost. A real `rkube server` and `rkube hollow-nodes
//! --count N --mode kubelet|paper`; timed until every node is Ready, then, after the
//! start-up burst settles, the CPU both processes use over an idle window and their RSS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::deployment::{usage, Proc};

#[derive(clap::Args, Debug)]
pub struct HollowArgs {
    /// The rkube binary to run (build it with `cargo build --release -p rkube`).
    #[arg(long, default_value = "target/release/rkube")]
    rkube: PathBuf,
    /// kubectl to drive it with.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// `kubelet` (the real kubelet on a simulated runtime) or `paper`.
    #[arg(long, default_value = "kubelet")]
    mode: String,
    /// Seconds to let the start-up burst settle before measuring.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    /// Seconds of the idle window CPU is measured over.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Give up waiting for the nodes after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/hollow.json")]
    out: PathBuf,
}

fn kubectl(args: &HollowArgs, kubeconfig: &Path, a: &[&str]) -> Result<String> {
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

pub fn run(args: HollowArgs) -> Result<()> {
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
    let hollow_log = std::fs::File::create(dir.path().join("hollow.log"))?;
    let n = args.nodes;
    let start = Instant::now();
    let hollow = Proc(
        Command::new(&args.rkube)
            .args(["hollow-nodes", "--kubeconfig"])
            .arg(&kc)
            .args(["--count", &n.to_string(), "--mode", &args.mode])
            .stdout(Stdio::null())
            .stderr(hollow_log)
            .spawn()?,
    );
    loop {
        let out = kubectl(
            &args,
            &kc,
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ],
        )?;
        if out.lines().filter(|l| *l == "True").count() >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(args.timeout) {
            bail!("{n} nodes not Ready after {} s", args.timeout);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let ready = start.elapsed();
    println!(
        "{n} hollow nodes ({}) Ready in {:.1} s",
        args.mode,
        ready.as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(args.settle));
    let (spid, hpid) = (server.0.id(), hollow.0.id());
    let (s0, _, _) = usage(spid)?;
    let (h0, _, _) = usage(hpid)?;
    std::thread::sleep(Duration::from_secs(args.idle));
    let (s1, srss, _) = usage(spid)?;
    let (h1, hrss, hhwm) = usage(hpid)?;
    let idle = args.idle as f64;
    let (hcpu, scpu) = ((h1 - h0) / idle * 100.0, (s1 - s0) / idle * 100.0);
    println!(
        "idle: hollow-nodes {hcpu:.1}% CPU, RSS {hrss:.0} MiB (peak {hhwm:.0}); server {scpu:.1}% CPU, RSS {srss:.0} MiB"
    );
    let doc = json!({
        "nodes": n, "mode": args.mode, "binary": args.rkube.display().to_string(),
        "allReadySeconds": ready.as_secs_f64(), "idleSeconds": args.idle,
        "hollowCpuPercent": hcpu, "hollowRssMiB": hrss, "hollowPeakRssMiB": hhwm,
        "serverCpuPercent": scpu, "serverRssMiB": srss,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
