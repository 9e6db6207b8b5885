//! The per-write cost of field ownership and patching: `managedFields` bookkeeping on a
//! create and an update, a strategic merge patch and a server-side apply, on a 1 KiB
//! ConfigMap (the API benchmark's object) and a Deployment.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use rkube_api::schema;
use rkube_api::ssa::{self, Manager, Operation, Scope, Ty};
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Iterations per case.
    #[arg(long, default_value_t = 20_000)]
    iterations: u32,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-merge.json")]
    out: String,
}

fn configmap() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm-1", "namespace": "default", "uid": "u", "labels": {"app": "kbench"}},
        "data": {"payload": "x".repeat(1024)}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
                {"name": "log", "image": "busybox", "args": ["tail", "-f", "/var/log/app.log"]}]}}}})
}

fn manager(operation: Operation) -> Manager<'static> {
    Manager {
        name: "bench",
        operation,
        api_version: "v1",
        time: "2026-01-01T00:00:00Z",
        scope: Scope::Main {
            status_subresource: false,
        },
    }
}

/// Runs `f` `n` times; returns µs per call.
fn time(n: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

pub fn run(args: MergeArgs) -> Result<()> {
    let n = args.iterations;
    let mut rows: Vec<(&str, f64)> = Vec::new();
    for (label, obj, api_version, kind) in [
        ("configmap", configmap(), "v1", "ConfigMap"),
        ("deployment", deployment(), "apps/v1", "Deployment"),
    ] {
        let root = schema::for_kind(api_version, kind).expect("built-in");
        let ty = Ty::of_message(root);
        let create = time(n, || {
            let mut o = obj.clone();
            ssa::record_update(None, &mut o, ty, &manager(Operation::Update));
        });
        let mut live = obj.clone();
        ssa::record_update(None, &mut live, ty, &manager(Operation::Update));
        let mut changed = live.clone();
        changed["metadata"]["labels"]["rev"] = json!("2");
        let update = time(n, || {
            let mut o = changed.clone();
            ssa::record_update(Some(&live), &mut o, ty, &manager(Operation::Update));
        });
        let patch = json!({"metadata": {"labels": {"rev": "3"}}});
        let smp = time(n, || {
            let _ = rkube_api::smp::apply(live.clone(), patch.clone(), root);
        });
        let apply = time(n, || {
            let _ = ssa::apply(Some(&live), &obj, ty, &manager(Operation::Apply), false);
        });
        let clone = time(n, || {
            std::hint::black_box(obj.clone());
        });
        rows.push((
            leak(format!("{label} create (managedFields)")),
            create - clone,
        ));
        rows.push((
            leak(format!("{label} update (managedFields)")),
            update - clone,
        ));
        rows.push((leak(format!("{label} strategic merge patch")), smp - clone));
        rows.push((leak(format!("{label} server-side apply")), apply));
    }
    println!("{:<40} {:>10}", "case", "µs/op");
    for (case, us) in &rows {
        println!("{case:<40} {us:>10.2}");
    }
    let json: Vec<Value> = rows
        .iter()
        .map(|(case, us)| json!({"case": case, "us_per_op": us}))
        .collect();
    std::fs::write(&args.out, serde_json::to_vec_pretty(&json)?)?;
    Ok(())
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
