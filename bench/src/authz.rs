//! `bench authz`: the cost of one authorization decision. Loads the default policy plus
//! `--bindings` RoleBindings (spread over namespaces, each granting a user or a group a
//! default or custom role) and `--bindings / 10` ClusterRoleBindings into the RBAC index,
//! then times decisions that are allowed by a RoleBinding, allowed by a ClusterRoleBinding,
//! denied after looking at everything that applies, and made for `system:masters`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use rkube_apiserver::auth::UserInfo;
use rkube_apiserver::authz::{policy, Attributes, Authorizer};
use serde_json::json;

use crate::stats::{ms, Summary};

#[derive(clap::Args, Debug)]
pub struct AuthzArgs {
    /// RoleBindings to load.
    #[arg(long, default_value_t = 500)]
    bindings: usize,
    /// Decisions per case.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/authz.json")]
    out: PathBuf,
}

const PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

fn load(authz: &Authorizer, bindings: usize) {
    for role in policy::CLUSTER_ROLES {
        let obj = role.to_object();
        authz.apply(&format!("{PREFIX}clusterroles/{}", role.name), Some(&obj));
    }
    for b in policy::CLUSTER_ROLE_BINDINGS {
        let obj = b.to_object();
        authz.apply(
            &format!("{PREFIX}clusterrolebindings/{}", b.role),
            Some(&obj),
        );
    }
    // The aggregated roles as the controller would fill them.
    authz.apply(
        &format!("{PREFIX}clusterroles/view"),
        Some(&json!({"metadata": {"name": "view"}, "rules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps", "endpoints", "pods", "services"]},
            {"verbs": ["get", "list", "watch"], "apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"]}]})),
    );
    for i in 0..bindings {
        let ns = format!("ns-{}", i % 50);
        let role = format!("role-{i}");
        authz.apply(
            &format!("{PREFIX}roles/{ns}/{role}"),
            Some(&json!({"metadata": {"name": role, "namespace": ns}, "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": [format!("s-{i}")]},
                {"verbs": ["create"], "apiGroups": ["batch"], "resources": ["jobs"]}]})),
        );
        let (kind, name) = match i % 3 {
            0 => ("Group", format!("team-{}", i % 40)),
            _ => ("User", format!("user-{i}")),
        };
        let role_ref = if i % 2 == 0 {
            json!({"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"})
        } else {
            json!({"kind": "Role", "name": role, "apiGroup": "rbac.authorization.k8s.io"})
        };
        authz.apply(
            &format!("{PREFIX}rolebindings/{ns}/rb-{i}"),
            Some(&json!({"metadata": {"name": format!("rb-{i}"), "namespace": ns}, "roleRef": role_ref,
                "subjects": [{"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}]})),
        );
    }
    for i in 0..bindings / 10 {
        authz.apply(
            &format!("{PREFIX}clusterrolebindings/crb-{i}"),
            Some(&json!({"metadata": {"name": format!("crb-{i}")},
                "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "User", "name": format!("reader-{i}")}]})),
        );
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    groups.push("system:authenticated".into());
    UserInfo::new(name, groups)
}

fn time(authz: &Authorizer, a: &Attributes, count: usize, want: bool) -> (Summary, Duration) {
    assert_eq!(authz.authorize(a).allowed(), want, "{a:?}");
    // Per-decision samples in batches of 100 (one decision is below the clock's grain).
    let mut samples = Vec::with_capacity(count / 100 + 1);
    let started = Instant::now();
    for _ in 0..count.div_ceil(100) {
        let t = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(authz.authorize(std::hint::black_box(a)));
        }
        samples.push(t.elapsed() / 100);
    }
    (Summary::of(samples), started.elapsed())
}

pub fn run(args: AuthzArgs) -> Result<()> {
    let authz = Authorizer::default();
    let t = Instant::now();
    load(&authz, args.bindings);
    println!(
        "loaded {} rolebindings and {} clusterrolebindings (+ defaults) in {:.1} ms",
        args.bindings,
        args.bindings / 10,
        ms(t.elapsed())
    );
    let req =
        |u: UserInfo, method: &str, path: &str| Attributes::from_request(u, method, path, None);
    let cases = [
        (
            "rolebinding allows (user)",
            req(
                user("user-7", &[]),
                "POST",
                "/apis/batch/v1/namespaces/ns-7/jobs",
            ),
            true,
        ),
        (
            "rolebinding allows (group, view)",
            req(
                user("someone", &["team-6"]),
                "GET",
                "/api/v1/namespaces/ns-6/pods",
            ),
            true,
        ),
        (
            "clusterrolebinding allows",
            req(
                user("reader-3", &[]),
                "GET",
                "/api/v1/namespaces/ns-1/configmaps",
            ),
            true,
        ),
        (
            "denied",
            req(
                user("user-7", &["team-6"]),
                "DELETE",
                "/api/v1/namespaces/ns-7/secrets/x",
            ),
            false,
        ),
        (
            "non-resource URL",
            req(user("x", &[]), "GET", "/apis/apps/v1"),
            true,
        ),
        (
            "system:masters",
            req(
                user("admin", &["system:masters"]),
                "DELETE",
                "/api/v1/nodes/n",
            ),
            true,
        ),
    ];
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>14}",
        "case", "p50 ns", "p99 ns", "max ns", "decisions/s"
    );
    let mut results = Vec::new();
    for (name, a, want) in &cases {
        let (s, elapsed) = time(&authz, a, args.count, *want);
        let per_sec = args.count as f64 / elapsed.as_secs_f64();
        println!(
            "{name:<36} {:>10} {:>10} {:>10} {per_sec:>14.0}",
            s.p50.as_nanos(),
            s.p99.as_nanos(),
            s.max.as_nanos()
        );
        results.push(json!({"case": name, "p50_ns": s.p50.as_nanos() as u64, "p99_ns": s.p99.as_nanos() as u64,
            "max_ns": s.max.as_nanos() as u64, "decisions_per_sec": per_sec}));
    }
    let doc = json!({"benchmark": "authz", "rolebindings": args.bindings, "clusterrolebindings": args.bindings / 10, "count": args.count, "runs": results});
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}
