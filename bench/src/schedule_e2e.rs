//! `bench schedule`: the scheduler end to end. Starts the set-up upstream's figures were
//! measured with (kbench's `sched`, scheduler_perf): an API server with its store
//! (`rkube server` without its in-process scheduler and controller manager) and
//! `rkube scheduler` as its own process. With `--controller-manager` the server also runs
//! its controller manager; with `--in-process` the server alone runs everything, its
//! scheduler included; with `--kubeconfig` it targets a running cluster. It registers
//! `--nodes` hollow nodes as real Node objects (no heartbeats: the run is shorter than the
//! node grace period, which the started server gets as 1 h), creates `--pods` pods from
//! `--clients` concurrent clients, and measures pods/s from the first create until every
//! pod is seen bound through a watch (so the binding is persisted), the p50/p99 latency
//! from each pod's create to its binding, and the scheduler's resident memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::WatchEvent;
use kube::{Client, Config};
use serde_json::json;

use crate::stats::{ms, CpuTimes, Summary};

const NAMESPACE: &str = "bench-schedule";
const HIGH_PRIORITY: i32 = 1000;

/// What the pods (and nodes) look like.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// 100m cpu / 128 MiB pods on 4-cpu nodes.
    Basic,
    /// Half the nodes carry a NoSchedule taint; half the pods tolerate it.
    Taints,
    /// Pods in groups of 3 with required anti-affinity to their group (hostname).
    AntiAffinity,
    /// Pods in 10 groups, each spread over 10 zones with maxSkew 1 (DoNotSchedule).
    TopologySpread,
    /// Every node is first filled by a low-priority pod; then the measured pods (one per
    /// node at most) each need a node's whole cpu, so each one preempts.
    Preemption,
}

#[derive(clap::Args, Debug)]
pub struct ScheduleE2eArgs {
    /// Nodes to register.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to create and wait for (at most --nodes for `preemption`).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    #[arg(long, value_enum, default_value_t = Variant::Basic)]
    variant: Variant,
    /// Concurrent clients creating pods (and nodes).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// The rkube binary (default: `rkube` next to this binary).
    #[arg(long)]
    rkube: Option<PathBuf>,
    /// Target this cluster instead of starting one (its scheduler must be running;
    /// give its pid with --scheduler-pid for the memory figure).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long)]
    scheduler_pid: Option<u32>,
    /// Run the scheduler inside `rkube server` (its default) instead of as its own
    /// process; the memory figure is then the whole server's (API server, store,
    /// scheduler and controllers).
    #[arg(long)]
    in_process: bool,
    /// Also run the server's controller manager (upstream's figures were measured
    /// without one; `--in-process` always runs it).
    #[arg(long)]
    controller_manager: bool,
    /// Send the bench's requests over HTTP/1.1, one connection per request in flight
    /// (kube-rs's client, as kbench), instead of HTTP/2 on one connection (client-go, as
    /// upstream's scheduler_perf creates its pods).
    #[arg(long)]
    http1: bool,
    /// Give up waiting for bindings after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/schedule.json")]
    out: PathBuf,
}

impl ScheduleE2eArgs {
    /// Whether the started server runs its controller manager.
    fn controller_manager_runs(&self) -> bool {
        self.in_process || self.controller_manager
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes this run started (server, and scheduler unless it runs in the server)
/// and their directory.
struct Started {
    dir: tempfile::TempDir,
    server: Proc,
    scheduler: Option<Proc>,
}

fn spawn(rkube: &Path, args: &[&str], log: &Path) -> Result<Proc> {
    let log = std::fs::File::create(log)?;
    let child = Command::new(rkube)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", rkube.display()))?;
    Ok(Proc(child))
}

/// Starts the cluster: `rkube server` with the components `args` ask for in it, and
/// `rkube scheduler` unless the server runs its own.
fn start(rkube: &Path, args: &ScheduleE2eArgs) -> Result<Started> {
    let in_process = args.in_process;
    let controller_manager_runs = args.controller_manager_runs();
    let dir = tempfile::tempdir()?;
    let addr = format!("127.0.0.1:{}", rkube_testkit::free_port());
    let data = dir.path().to_str().context("a UTF-8 temp dir")?.to_owned();
    let mut args = vec![
        "server",
        "--data-dir",
        &data,
        "--listen",
        &addr,
        "--node-monitor-grace-period",
        "1h",
    ];
    if !in_process {
        args.push("--disable-scheduler");
    }
    if !controller_manager_runs {
        args.push("--disable-controller-manager");
    }
    let server = spawn(rkube, &args, &dir.path().join("server.log"))?;
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kubeconfig.exists() {
        if Instant::now() > deadline {
            bail!("rkube server wrote no kubeconfig in 60 s; see {data}/server.log");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let scheduler = if in_process {
        None
    } else {
        Some(spawn(
            rkube,
            &[
                "scheduler",
                "--kubeconfig",
                kubeconfig.to_str().context("a UTF-8 path")?,
                "--leader-elect=false",
            ],
            &dir.path().join("scheduler.log"),
        )?)
    };
    Ok(Started {
        dir,
        server,
        scheduler,
    })
}

async fn client(kubeconfig: &Path, http1: bool) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(if http1 {
        Client::try_from(config)?
    } else {
        rkube_client::http2(config)?
    })
}

/// Retries `f` until it succeeds or `within` passes.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("{what} (gave up after {within:?})"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn node(variant: Variant, i: usize) -> Node {
    let opts = rkube_hollow::HollowOptions {
        name_prefix: "bench-node".into(),
        cpu: if variant == Variant::Preemption {
            "1".into()
        } else {
            "4".into()
        },
        memory: "32Gi".into(),
        ..Default::default()
    };
    let mut n = rkube_hollow::node_object(&opts, i);
    let labels = n.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(
        "topology.kubernetes.io/zone".into(),
        format!("zone-{}", i % 10),
    );
    if variant == Variant::Taints && i % 2 == 1 {
        n.spec.get_or_insert_with(Default::default).taints = Some(vec![serde_json::from_value(
            json!({"key": "bench/dedicated", "value": "batch", "effect": "NoSchedule"}),
        )
        .expect("a taint")]);
    }
    n
}

fn node_status(variant: Variant, i: usize) -> serde_json::Value {
    let opts = rkube_hollow::HollowOptions {
        name_prefix: "bench-node".into(),
        cpu: if variant == Variant::Preemption {
            "1".into()
        } else {
            "4".into()
        },
        memory: "32Gi".into(),
        ..Default::default()
    };
    rkube_hollow::node_status(&opts, i)
}

/// A pod's JSON, as sent.
fn pod(variant: Variant, name: &str, i: usize, high: bool) -> Vec<u8> {
    let mut spec = json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]});
    let mut labels = json!({"bench": "schedule"});
    match variant {
        Variant::Basic => {}
        Variant::Taints => {
            if i % 2 == 1 {
                spec["tolerations"] = json!([{"key": "bench/dedicated", "operator": "Equal",
                    "value": "batch", "effect": "NoSchedule"}]);
            }
        }
        Variant::AntiAffinity => {
            let group = format!("g{}", i / 3);
            labels["group"] = json!(group);
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}});
        }
        Variant::TopologySpread => {
            let group = format!("g{}", i % 10);
            labels["group"] = json!(group);
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"group": group}}}]);
        }
        Variant::Preemption => {
            spec["containers"][0]["resources"]["requests"]["cpu"] = json!("1");
            if high {
                spec["priorityClassName"] = json!("bench-high");
                spec["priority"] = json!(HIGH_PRIORITY);
            }
        }
    }
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels}, "spec": spec}))
    .expect("a pod")
}

/// The raw request that creates a pod in the bench's namespace from its JSON `body`.
fn pod_create(body: Vec<u8>) -> http::Request<Vec<u8>> {
    http::Request::post(format!("/api/v1/namespaces/{NAMESPACE}/pods"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a valid request")
}

/// Runs `count` jobs on `clients` concurrent tasks; the first error stops the run.
async fn concurrently<F, Fut>(count: usize, clients: usize, job: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (job, next) = (job.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                job(i).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Binding times by pod name, filled by a watch of the namespace's bound pods; pods
/// marked for deletion (preemption victims) are deleted at once, as their kubelet would.
#[derive(Default)]
struct Bound {
    at: Mutex<HashMap<String, Instant>>,
}

/// The fields of a pod the bench reads from its watch; the rest of each event is
/// skipped unparsed, so the harness takes little of the CPU it measures.
#[derive(Clone, serde::Deserialize)]
struct WatchedPod {
    metadata: WatchedMeta,
    #[serde(default)]
    spec: WatchedSpec,
}

#[derive(Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedSpec {
    #[serde(default)]
    node_name: String,
}

#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

/// Watches the namespace's pods and records when each was first seen naming a node.
/// Resumes from the last resource version when the watch ends; starts over when that
/// version is gone.
///
/// The watch is the scheduler's own (every pod, without managedFields), so the server
/// renders each event once for both and evaluates no field selector for the harness: a
/// `spec.nodeName!=` selector sent half the events but cost the server a parse of every
/// pod version (~4% of its CPU), more than the harness spends skipping the creates.
async fn watch_bindings(client: Client, bound: Arc<Bound>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let mut version = String::new();
    loop {
        let url = format!(
            "/api/v1/namespaces/{NAMESPACE}/pods?watch=true&allowWatchBookmarks=true\
             &timeoutSeconds=300&resourceVersion={version}"
        );
        let request = http::Request::get(url)
            .header(rkube_apiserver::OMIT_MANAGED_FIELDS, "true")
            .body(Vec::new())
            .expect("a valid request");
        let events = match client.request_events::<WatchedPod>(request).await {
            Ok(events) => events,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let mut events = std::pin::pin!(events);
        loop {
            match events.try_next().await {
                Ok(Some(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    version = p.metadata.resource_version;
                    let name = p.metadata.name;
                    if p.metadata.deletion_timestamp.is_some() {
                        let pods = pods.clone();
                        tokio::spawn(async move {
                            let _ = pods
                                .delete(&name, &DeleteParams::default().grace_period(0))
                                .await;
                        });
                        continue;
                    }
                    if p.spec.node_name.is_empty() {
                        continue;
                    }
                    let mut at = bound.at.lock().unwrap_or_else(|e| e.into_inner());
                    at.entry(name).or_insert_with(Instant::now);
                }
                Ok(Some(WatchEvent::Deleted(p))) => version = p.metadata.resource_version,
                Ok(Some(WatchEvent::Bookmark(b))) => version = b.metadata.resource_version,
                Ok(Some(WatchEvent::Error(e))) => {
                    if e.code == 410 {
                        version.clear();
                    } else {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
        }
    }
}

/// Resident memory of a process: (current, peak) in bytes.
fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Waits until every name in `names` is bound, or the deadline.
async fn wait_bound(bound: &Bound, names: &[String], deadline: Instant) -> usize {
    loop {
        let done = {
            let at = bound.at.lock().unwrap_or_else(|e| e.into_inner());
            names.iter().filter(|n| at.contains_key(*n)).count()
        };
        if done == names.len() || Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: ScheduleE2eArgs) -> Result<()> {
    let started = match &args.kubeconfig {
        Some(_) => None,
        None => {
            let rkube = match &args.rkube {
                Some(p) => p.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .context("the bench binary's directory")?
                    .join("rkube"),
            };
            Some(start(&rkube, &args)?)
        }
    };
    let kubeconfig = match (&args.kubeconfig, &started) {
        (Some(k), _) => k.clone(),
        (None, Some(s)) => s.dir.path().join("admin.kubeconfig"),
        (None, None) => unreachable!("a cluster was started"),
    };
    let scheduler_pid = args
        .scheduler_pid
        .or(started.as_ref().map(|s| match &s.scheduler {
            Some(scheduler) => scheduler.0.id(),
            None => s.server.0.id(),
        }));
    let memory_of = if args.in_process {
        "server (with its scheduler)"
    } else {
        "scheduler"
    };
    let client = client(&kubeconfig, args.http1).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(Duration::from_secs(60), "the API server", || async {
        namespaces.list(&Default::default()).await
    })
    .await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    // Without a controller manager nothing makes the namespace's default service account
    // (which pod admission requires): the bench makes it, as kbench does.
    if started.is_some() && !args.controller_manager_runs() {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}}))?;
        sas.create(&PostParams::default(), &sa).await?;
    }
    eventually(
        Duration::from_secs(30),
        "the default service account",
        || sas.get("default"),
    )
    .await?;
    if args.variant == Variant::Preemption {
        let pc: PriorityClass = serde_json::from_value(
            json!({"metadata": {"name": "bench-high"}, "value": HIGH_PRIORITY}),
        )?;
        Api::<PriorityClass>::all(client.clone())
            .create(&PostParams::default(), &pc)
            .await?;
    }

    // Nodes.
    let t = Instant::now();
    let variant = args.variant;
    {
        let client = client.clone();
        concurrently(args.nodes, args.clients, move |i| {
            let nodes: Api<Node> = Api::all(client.clone());
            async move {
                let n = node(variant, i);
                let name = n.metadata.name.clone().unwrap_or_default();
                nodes.create(&PostParams::default(), &n).await?;
                nodes
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(node_status(variant, i)),
                    )
                    .await?;
                Ok(())
            }
        })
        .await?;
    }
    println!(
        "registered {} nodes in {:.1} s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );

    let bound = Arc::new(Bound::default());
    tokio::spawn(watch_bindings(client.clone(), bound.clone()));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let clients = args.clients;
    let create_pods = |prefix: &'static str, count: usize, high: bool| {
        let client = client.clone();
        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
        let job_created = created.clone();
        let job_names = names.clone();
        // The bodies are rendered when the job is made, before the clock starts, so the
        // harness's share of the two cores goes to sending them, not to building JSON.
        let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| pod(variant, name, i, high))
                .collect(),
        );
        async move {
            // Created with raw requests whose answers are not decoded: decoding each
            // returned pod into a typed object cost the harness more CPU than the
            // create cost it to send.
            concurrently(count, clients, move |i| {
                let client = client.clone();
                let created = job_created.clone();
                let name = job_names[i].clone();
                let body = bodies[i].clone();
                async move {
                    let request = pod_create(body);
                    created
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), Instant::now());
                    client
                        .request_text(request)
                        .await
                        .with_context(|| format!("cannot create pod {name}"))?;
                    Ok(())
                }
            })
            .await?;
            Ok::<_, anyhow::Error>((names, created))
        }
    };

    // The clock starts once the scheduler schedules: a started scheduler is still
    // connecting (retrying until the server listens) and listing when a small run's nodes
    // are registered, and its start-up is not what pods/s measures. One plain pod, bound
    // before the measured ones are created, shows it is ready (the preemption variant's
    // filler pods do that, and need every node whole).
    if variant != Variant::Preemption {
        let name = "warmup-0".to_owned();
        let request = pod_create(pod(Variant::Basic, &name, 0, false));
        client
            .request_text(request)
            .await
            .context("cannot create the warm-up pod")?;
        if wait_bound(&bound, std::slice::from_ref(&name), deadline).await == 0 {
            bail!("the warm-up pod was not bound within {} s", args.timeout);
        }
    }

    // Preemption: fill every node first, unmeasured.
    let mut pods = args.pods;
    if variant == Variant::Preemption {
        pods = pods.min(args.nodes);
        let (names, _) = create_pods("low", args.nodes, false).await?;
        let done = wait_bound(&bound, &names, deadline).await;
        if done < names.len() {
            bail!("only {done} of {} filler pods were bound", names.len());
        }
        println!("filled {} nodes with low-priority pods", args.nodes);
    }

    let job = create_pods("pod", pods, true);
    let cpu_at_start = CpuTimes::now();
    let first = Instant::now();
    let (names, created) = job.await?;
    let created_in = first.elapsed();
    let done = wait_bound(&bound, &names, deadline).await;
    let cpu = cpu_at_start.zip(CpuTimes::now()).map(|(a, b)| b.since(&a));
    let (latencies, last) = {
        let at = bound.at.lock().unwrap_or_else(|e| e.into_inner());
        let created = created.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = first;
        let lat: Vec<Duration> = names
            .iter()
            .filter_map(|n| {
                let b = *at.get(n)?;
                last = last.max(b);
                Some(b.saturating_duration_since(*created.get(n)?))
            })
            .collect();
        (lat, last)
    };
    let elapsed = last.saturating_duration_since(first);
    let memory = scheduler_pid.and_then(rss);
    if done < names.len() {
        bail!(
            "only {done} of {} pods were bound within {} s",
            names.len(),
            args.timeout
        );
    }
    let s = Summary::of(latencies);
    let rate = pods as f64 / elapsed.as_secs_f64();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "schedule {:?}: {} nodes, {} pods, {} clients: {:.0} pods/s (created in {:.1} s, all bound after {:.1} s), \
         latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}",
        variant,
        args.nodes,
        pods,
        args.clients,
        rate,
        created_in.as_secs_f64(),
        elapsed.as_secs_f64(),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        memory
            .map(|(now, peak)| format!(", {memory_of} RSS {:.0} MiB (peak {:.0} MiB)", mib(now), mib(peak)))
            .unwrap_or_default()
    );
    if let Some(cpu) = &cpu {
        println!("machine CPU while measured: {cpu}");
    }
    let doc = json!({"variant": format!("{variant:?}"), "nodes": args.nodes, "pods": pods,
        "clients": args.clients, "podsPerSecond": rate, "elapsedMs": ms(elapsed),
        "createdMs": ms(created_in), "p50Ms": ms(s.p50), "p99Ms": ms(s.p99), "maxMs": ms(s.max),
        "inProcess": args.in_process,
        "controllerManager": args.controller_manager_runs(), "http1": args.http1,
        "schedulerRssBytes": memory.map(|m| m.0), "schedulerPeakRssBytes": memory.map(|m| m.1),
        "machineCpuPercent": cpu});
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    if let Some(s) = started {
        drop(s.scheduler);
        drop(s.server);
    }
    Ok(())
}
