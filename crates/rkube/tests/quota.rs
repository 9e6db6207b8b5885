//! ResourceQuota status end to end: the in-process resourcequota-controller copies
//! `spec.hard` to `status.hard` and keeps `status.used` current as pods, services and
//! Secrets come and go, with scopes selecting which pods count.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

const QUOTAS: &str = r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: q}
spec:
  hard:
    pods: "5"
    requests.cpu: "2"
    requests.memory: 1Gi
    limits.memory: 2Gi
    services: "3"
    count/secrets: "10"
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: terminating, namespace: q}
spec:
  hard: {pods: "5"}
  scopes: [Terminating]
"#;

fn pod(name: &str, cpu: &str, memory: &str, deadline: Option<u32>) -> String {
    let deadline = deadline.map_or(String::new(), |d| format!("  activeDeadlineSeconds: {d}\n"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: q}}\nspec:\n{deadline}  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {{cpu: {cpu}, memory: {memory}}}\n      limits: {{cpu: {cpu}, memory: {memory}}}\n"
    )
}

/// Waits until the quota's `status.used` (as JSON) satisfies `want`.
fn wait_used(c: &Cluster, quota: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c.ok(&[
            "get",
            "resourcequota",
            quota,
            "-n",
            "q",
            "-o",
            "jsonpath={.status.used}",
        ]);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "quota {quota}: used {got}, want {want}\n--- server log ---\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn quota_status_follows_the_namespace_contents() {
    let c = Cluster::start(&[]);
    c.ok(&["create", "namespace", "q"]);
    c.wait_for_default_sa("q");
    c.create(QUOTAS);
    wait_used(
        &c,
        "compute",
        r#"{"count/secrets":"0","limits.memory":"0","pods":"0","requests.cpu":"0","requests.memory":"0","services":"0"}"#,
    );
    assert_eq!(
        c.ok(&[
            "get",
            "resourcequota",
            "compute",
            "-n",
            "q",
            "-o",
            "jsonpath={.status.hard}"
        ]),
        r#"{"count/secrets":"10","limits.memory":"2Gi","pods":"5","requests.cpu":"2","requests.memory":"1Gi","services":"3"}"#
    );
    c.create(&pod("a", "500m", "256Mi", None));
    c.create(&pod("b", "250m", "128Mi", Some(60)));
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "web",
        "-n",
        "q",
        "--tcp=80:80",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "q",
        "--from-literal=a=b",
    ]);
    wait_used(
        &c,
        "compute",
        r#"{"count/secrets":"1","limits.memory":"384Mi","pods":"2","requests.cpu":"750m","requests.memory":"384Mi","services":"1"}"#,
    );
    // Only the pod with an active deadline is in the Terminating scope.
    wait_used(&c, "terminating", r#"{"pods":"1"}"#);
    // kubectl's own view of it.
    let described = c.ok(&["describe", "resourcequota", "compute", "-n", "q"]);
    let line = described
        .lines()
        .find(|l| l.starts_with("requests.cpu"))
        .unwrap_or_default();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["requests.cpu", "750m", "2"],
        "{described}"
    );
    // Deleting content releases it.
    c.ok(&["delete", "pod", "a", "-n", "q", "--wait=false"]);
    wait_used(
        &c,
        "compute",
        r#"{"count/secrets":"1","limits.memory":"128Mi","pods":"1","requests.cpu":"250m","requests.memory":"128Mi","services":"1"}"#,
    );
}
