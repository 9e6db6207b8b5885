//! `bench store`: N concurrent writers creating 1 KiB values, against the SQLite
//! backend (durable), the etcd backend, and a raw etcd client putting the same values.
//! A watch on the benchmark prefix records how long each event took to arrive after
//! its write was acknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rkube_store::etcd::{EtcdOptions, EtcdStore};
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::{Store, WatchResponse};
use rkube_testkit::EtcdCluster;
use serde_json::json;

use crate::stats::{ms, Summary};

#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// Writer counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    writers: Vec<usize>,
    /// Creates per run.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Backends: sqlite, etcd, etcd-raw.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,etcd,etcd-raw")]
    backends: Vec<String>,
    /// Directory for the SQLite files and etcd data (must be on a real disk).
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/store.json")]
    out: PathBuf,
}

/// One backend under load.
enum Target {
    Store(Arc<dyn Store>),
    Raw(Box<etcd_client::KvClient>),
}

struct Run {
    backend: String,
    writers: usize,
    elapsed: Duration,
    write: Summary,
    errors: usize,
    /// Watch receipt after the write's acknowledgement.
    delivery: Option<Summary>,
    /// Watch receipt after the write was sent.
    end_to_end: Option<Summary>,
    missed: usize,
}

pub async fn run(args: StoreArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut runs = Vec::new();
    for backend in &args.backends {
        for &writers in &args.writers {
            // A fresh store per run, so runs do not inherit each other's data.
            let tmp = tempfile::Builder::new()
                .prefix("rkube-bench-")
                .tempdir_in(&args.dir)?;
            let mut cluster = None;
            let target = match backend.as_str() {
                "sqlite" => Target::Store(Arc::new(SqliteStore::open(
                    tmp.path().join("state.db"),
                    SqliteOptions::default(),
                )?)),
                "etcd" | "etcd-raw" => {
                    let c = EtcdCluster::start(1)?;
                    let endpoints = c.client_endpoints();
                    cluster = Some(c);
                    if backend == "etcd" {
                        Target::Store(Arc::new(
                            EtcdStore::connect(&endpoints, EtcdOptions::default()).await?,
                        ))
                    } else {
                        let client = etcd_client::Client::connect(&endpoints, None).await?;
                        Target::Raw(Box::new(client.kv_client()))
                    }
                }
                other => bail!("unknown backend {other:?} (sqlite, etcd, etcd-raw)"),
            };
            let run = measure(backend, target, writers, args.count, args.value_size).await?;
            print_row(&run);
            runs.push(run);
            drop(cluster);
        }
    }
    print_table(&runs);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let results: Vec<_> = runs
        .iter()
        .map(|r| {
            json!({
                "backend": r.backend, "writers": r.writers, "count": r.write.count, "errors": r.errors,
                "ops_per_sec": r.write.count as f64 / r.elapsed.as_secs_f64(),
                "p50_ms": ms(r.write.p50), "p99_ms": ms(r.write.p99), "max_ms": ms(r.write.max),
                "watch_p50_ms": r.delivery.map(|d| ms(d.p50)), "watch_p99_ms": r.delivery.map(|d| ms(d.p99)),
                "watch_max_ms": r.delivery.map(|d| ms(d.max)), "watch_missed": r.missed,
                "watch_from_send_p50_ms": r.end_to_end.map(|d| ms(d.p50)), "watch_from_send_p99_ms": r.end_to_end.map(|d| ms(d.p99)),
            })
        })
        .collect();
    let doc = json!({ "benchmark": "store", "value_size": args.value_size, "count": args.count, "runs": results });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}

async fn measure(
    backend: &str,
    target: Target,
    writers: usize,
    count: usize,
    value_size: usize,
) -> Result<Run> {
    let prefix = "/bench/";
    let clock = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());

    // The watcher, for the store backends.
    let watcher = match &target {
        Target::Store(store) => {
            let mut watch = store.watch(prefix, store.current_revision().await?).await?;
            let received = received.clone();
            Some(tokio::spawn(async move {
                let mut seen = 0;
                while seen < count {
                    match tokio::time::timeout(Duration::from_secs(30), watch.recv()).await {
                        Ok(Some(Ok(WatchResponse::Events(events)))) => {
                            let now = clock.elapsed().as_nanos() as u64;
                            for e in events {
                                if let Some(i) =
                                    e.kv.key
                                        .strip_prefix(prefix)
                                        .and_then(|k| k.parse::<usize>().ok())
                                {
                                    received[i].store(now, Ordering::Relaxed);
                                    seen += 1;
                                }
                            }
                        }
                        Ok(Some(Ok(WatchResponse::Progress(_)))) => {}
                        _ => break,
                    }
                }
            }))
        }
        Target::Raw(_) => None,
    };

    let target = Arc::new(target);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (target, next, sent, acked) =
                (target.clone(), next.clone(), sent.clone(), acked.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut raw = match &*target {
                    Target::Raw(kv) => Some((**kv).clone()),
                    Target::Store(_) => None,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= count {
                        break;
                    }
                    let key = format!("{prefix}{i:08}");
                    let value = Bytes::from(vec![b'x'; value_size]);
                    let t = Instant::now();
                    sent[i].store(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    let ok = match (&*target, raw.as_mut()) {
                        (Target::Store(store), _) => store.create(&key, value).await.is_ok(),
                        (Target::Raw(_), Some(kv)) => {
                            kv.put(key, value.to_vec(), None).await.is_ok()
                        }
                        _ => unreachable!(),
                    };
                    if ok {
                        latencies.push(t.elapsed());
                        acked[i].store(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();

    let (delivery, end_to_end, missed) = match watcher {
        Some(w) => {
            let _ = tokio::time::timeout(Duration::from_secs(60), w).await;
            let mut delivered = Vec::with_capacity(count);
            let mut end_to_end = Vec::with_capacity(count);
            let mut missed = 0;
            for i in 0..count {
                let (s, a, r) = (
                    sent[i].load(Ordering::Relaxed),
                    acked[i].load(Ordering::Relaxed),
                    received[i].load(Ordering::Relaxed),
                );
                match (a, r) {
                    (0, _) => {}
                    (_, 0) => missed += 1,
                    (a, r) => {
                        // The event may even arrive before the writer sees its ack.
                        delivered.push(Duration::from_nanos(r.saturating_sub(a)));
                        end_to_end.push(Duration::from_nanos(r.saturating_sub(s)));
                    }
                }
            }
            (
                Some(Summary::of(delivered)),
                Some(Summary::of(end_to_end)),
                missed,
            )
        }
        None => (None, None, 0),
    };
    Ok(Run {
        backend: backend.to_owned(),
        writers,
        elapsed,
        write: Summary::of(latencies),
        errors,
        delivery,
        end_to_end,
        missed,
    })
}

fn print_row(r: &Run) {
    eprintln!(
        "{:<9} writers={:<3} {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
        r.backend,
        r.writers,
        r.write.count as f64 / r.elapsed.as_secs_f64(),
        ms(r.write.p50),
        ms(r.write.p99),
        r.delivery
            .map(|d| format!("  watch p99 {:.2} ms", ms(d.p99)))
            .unwrap_or_default()
    );
}

fn print_table(runs: &[Run]) {
    println!("\n| backend | writers | creates/s | p50 ms | p99 ms | errors | watch after ack p50/p99 ms | watch after send p50/p99 ms | watch missed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let pair = |s: Option<Summary>| {
        s.map(|d| format!("{:.2} / {:.2}", ms(d.p50), ms(d.p99)))
            .unwrap_or_else(|| "–".into())
    };
    for r in runs {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
            r.backend,
            r.writers,
            r.write.count as f64 / r.elapsed.as_secs_f64(),
            ms(r.write.p50),
            ms(r.write.p99),
            r.errors,
            pair(r.delivery),
            pair(r.end_to_end),
            r.missed
        );
    }
}
