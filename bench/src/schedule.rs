//! `bench schedule-algorithm`: the scheduling cycle alone, in memory — snapshot, the
//! default profile's PreFilter/Filter/Score over `--nodes` nodes, and assuming the pod —
//! for `--pods` pods, with no API server. The end-to-end bench (pods created through the
//! API until every binding is persisted) is still to come; this isolates the algorithm.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::core::v1::{Node, Pod};
use rkube_scheduler::cache::Cache;
use rkube_scheduler::framework::{CycleState, PodInfo};
use rkube_scheduler::plugins::{default_profile, Handle};
use rkube_scheduler::schedule_one::schedule_pod;
use serde_json::json;

use crate::stats::{ms, Summary};

#[derive(clap::Args, Debug)]
pub struct ScheduleArgs {
    /// Nodes in the cluster (4 cpu, 32 GiB, 110 pods each, 10 zones).
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to schedule (100m cpu, 128 MiB each).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Give every pod a required anti-affinity to its own group of 3 (hostname).
    #[arg(long)]
    anti_affinity: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/schedule-algorithm.json")]
    out: PathBuf,
}

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i:05}"), "labels": {
            "kubernetes.io/hostname": format!("node-{i:05}"),
            "topology.kubernetes.io/zone": format!("zone-{}", i % 10)}},
        "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"}},
    }))
    .expect("a node")
}

fn pod(i: usize, anti_affinity: bool) -> Pod {
    let group = format!("g{}", i / 3);
    let affinity = if anti_affinity {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}})
    } else {
        json!(null)
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
                     "labels": {"group": group}},
        "spec": {"affinity": affinity, "containers": [{"name": "c", "image": "pause",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    }))
    .expect("a pod")
}

pub fn run(args: ScheduleArgs) -> Result<()> {
    let fw = default_profile(&Handle::default());
    let mut cache = Cache::new();
    for i in 0..args.nodes {
        cache.upsert_node(node(i));
    }
    let pods: Vec<PodInfo> = (0..args.pods)
        .map(|i| PodInfo::new(Arc::new(pod(i, args.anti_affinity))))
        .collect();
    let mut latencies = Vec::with_capacity(pods.len());
    let mut next_start = 0;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut failed = 0;
    let started = Instant::now();
    for p in &pods {
        let t = Instant::now();
        let nodes = cache.snapshot();
        let mut state = CycleState::default();
        let mut tiebreak = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let result = schedule_pod(&fw, &mut state, p, &nodes, &mut next_start, &mut tiebreak);
        // As the scheduler does: the cycle lets go of the snapshot before assuming.
        drop(nodes);
        drop(state);
        match result {
            Ok(r) => {
                // The result's score table holds the scored nodes: let go of it too.
                drop(r.scores);
                cache.assume_pod(p, &r.node)
            }
            Err(_) => failed += 1,
        }
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let s = Summary::of(latencies);
    let rate = args.pods as f64 / elapsed.as_secs_f64();
    println!(
        "schedule-algorithm: {} nodes, {} pods{}: {:.0} pods/s, cycle p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, {} unschedulable",
        args.nodes,
        args.pods,
        if args.anti_affinity { " (anti-affinity)" } else { "" },
        rate,
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        failed
    );
    let doc = json!({"nodes": args.nodes, "pods": args.pods, "antiAffinity": args.anti_affinity,
        "podsPerSecond": rate, "p50Ms": ms(s.p50), "p99Ms": ms(s.p99), "maxMs": ms(s.max),
        "unschedulable": failed, "elapsedMs": ms(elapsed.max(Duration::ZERO))});
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
