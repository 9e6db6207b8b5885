//! Pod startup on a real node: `rkube server --enable-node` with its own containerd
//! (in a temp dir), an image already present, N pods created at once or at a uniform
//! rate (`--qps`, as ClusterLoader2 paces its pod-startup SLO tests); the latency from
//! each create to the watch event that shows it Ready (p50/p99), and the RSS of the
//! server (API server + kubelet in one process) and of containerd, idle and with the
//! pods. Needs root, containerd, runc and the CNI plugins (scripts/install-deps.sh) and
//! an image archive (the kubelet e2e tests cache one in /var/cache/rkube-images).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

use crate::stats::{ms, Summary};

#[derive(Args, Debug)]
pub struct PodsArgs {
    /// How many pods.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// The rkube binary (default: next to this one).
    #[arg(long)]
    rkube: Option<PathBuf>,
    /// A `docker save` archive of the image the pods run (must have `sleep`).
    #[arg(long, default_value = "/var/cache/rkube-images/busybox-2.tar")]
    image_archive: PathBuf,
    /// The image's name in the archive.
    #[arg(long, default_value = "local.test/busybox:1")]
    image: String,
    /// Pods created per second, evenly spaced (0: all at once). ClusterLoader2's
    /// one-node throughput test creates 100 pods at 1 qps; density's latency pods use 5.
    #[arg(long, default_value_t = 0.0)]
    qps: f64,
    /// Copy the server's log (API server, scheduler, kubelet; its level from
    /// `RKUBE_LOG`, e.g. `rkube_kubelet=debug`) here when done.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-pods.json")]
    out: String,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The pid of a process whose command line contains `needle`.
fn find_pid(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd);
        let argv0 = cmd.split('\0').next().unwrap_or("");
        (argv0.ends_with("containerd") && cmd.contains(needle)).then_some(pid)
    })
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(args: PodsArgs) -> Result<()> {
    if !args.image_archive.exists() {
        bail!(
            "no image archive at {} (run `cargo nextest run -p rkube --test kubelet` once to build it)",
            args.image_archive.display()
        );
    }
    let rkube = match &args.rkube {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("rkube"),
    };
    let dir = tempfile::tempdir()?;
    let port = rkube_testkit::free_port();
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut server = Command::new(&rkube)
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--enable-node",
            "--node-name",
            "bench-node",
            "--kubelet-port",
            "0",
        ])
        .args(["--node-ip", "127.0.0.1", "--cni-bridge", "rkbench0"])
        .args(["--pod-cidr", "10.198.0.0/24", "--max-pods", "250"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot run {}", rkube.display()))?;
    let result = measure(&args, dir.path(), server.id()).await;
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    if let Some(to) = &args.server_log {
        if let Err(e) = std::fs::copy(dir.path().join("server.log"), to) {
            eprintln!("cannot copy the server log to {}: {e}", to.display());
        }
    }
    // Whatever the run left (a failure, pods still stopping): runc containers, shims,
    // mounts, the bridge and its masquerade rules.
    rkube_testkit::node::clean_up(dir.path(), "rkbench0", "10.198.0.0/24");
    result
}

async fn measure(args: &PodsArgs, dir: &Path, server_pid: u32) -> Result<()> {
    let kubeconfig = dir.join("admin.kubeconfig");
    wait_for("the server", Duration::from_secs(30), || {
        let exists = kubeconfig.exists();
        async move { exists }
    })
    .await?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &Default::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get_opt("bench-node")
                .await
                .ok()
                .flatten()
                .is_some_and(|n| {
                    n.status
                        .and_then(|s| s.conditions)
                        .into_iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        }
    })
    .await?;
    let socket = dir.join("containerd/containerd.sock");
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&args.image_archive)
        .output()?;
    if !out.status.success() {
        bail!("ctr import: {}", String::from_utf8_lossy(&out.stderr));
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    wait_for(
        "the default service account",
        Duration::from_secs(30),
        || {
            let sas = sas.clone();
            async move { sas.get_opt("default").await.ok().flatten().is_some() }
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let containerd_pid = find_pid(&dir.display().to_string()).unwrap_or(0);
    let idle = (rss_kib(server_pid), rss_kib(containerd_pid));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = {
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut stream = Box::pin(watcher(pods, watcher::Config::default()));
            while let Ok(Some(ev)) = stream.try_next().await {
                if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
                    let ready = p
                        .status
                        .and_then(|s| s.conditions)
                        .into_iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if ready {
                        let _ = tx.send((p.metadata.name.unwrap_or_default(), Instant::now()));
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut created = HashMap::new();
    let started = Instant::now();
    let start_at = tokio::time::Instant::now();
    for i in 0..args.pods {
        if args.qps > 0.0 {
            tokio::time::sleep_until(start_at + Duration::from_secs_f64(i as f64 / args.qps)).await;
        }
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "main", "image": args.image, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"]}]}}))?;
        created.insert(name, Instant::now());
        pods.create(&PostParams::default(), &pod).await?;
    }
    let mut ready = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while ready.len() < args.pods {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((name, at))) => {
                ready.entry(name).or_insert(at);
            }
            _ => bail!("only {} of {} pods became Ready", ready.len(), args.pods),
        }
    }
    let all = started.elapsed();
    watch.abort();
    let loaded = (rss_kib(server_pid), rss_kib(containerd_pid));
    let latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(n, at)| ready.get(n).map(|r| r.duration_since(*at)))
        .collect();
    let s = Summary::of(latencies);
    let rate = if args.qps > 0.0 {
        format!("at {} pods/s", args.qps)
    } else {
        "at once".to_owned()
    };
    println!(
        "pod startup, {} pods created {rate}, image present",
        args.pods
    );
    println!(
        "  create → Ready: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; all Ready after {:.1} s",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        all.as_secs_f64()
    );
    println!(
        "  RSS idle: server {} MiB, containerd {} MiB; with the pods: server {} MiB, containerd {} MiB",
        idle.0 / 1024,
        idle.1 / 1024,
        loaded.0 / 1024,
        loaded.1 / 1024
    );
    std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&json!({
            "pods": args.pods, "qps": args.qps, "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max),
            "all_ready_s": all.as_secs_f64(),
            "rss_kib": {"idle": {"server": idle.0, "containerd": idle.1},
                        "loaded": {"server": loaded.0, "containerd": loaded.1}},
        }))?,
    )?;
    // Clean up through the kubelet so sandboxes, netns and CNI state go away.
    pods.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_for("the pods to be deleted", Duration::from_secs(300), || {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default())
                .await
                .is_ok_and(|l| l.items.is_empty())
        }
    })
    .await?;
    Ok(())
}
