//! PodDisruptionBudgets end to end: the in-process disruption-controller keeps a
//! budget's status (expected, desired and current healthy pods, disruptions allowed,
//! the DisruptionAllowed condition), and `pods/eviction` refuses with upstream's 429
//! when an eviction would violate the budget, and evicts (taking one disruption) when
//! it would not.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;

fn ready_pod(c: &Cluster, name: &str) {
    c.create(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: web}}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"
    ));
    c.ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=strategic",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
}

/// Waits until the budget's status reads `want` (expected desired current allowed
/// observedGeneration condition-status/reason).
fn wait_status(c: &Cluster, want: &str) {
    let jsonpath = "jsonpath={.status.expectedPods} {.status.desiredHealthy} {.status.currentHealthy} {.status.disruptionsAllowed} {.status.observedGeneration} {.status.conditions[?(@.type==\"DisruptionAllowed\")].status}/{.status.conditions[?(@.type==\"DisruptionAllowed\")].reason}";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = c.ok(&["get", "pdb", "web", "-o", jsonpath]);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pdb status {got:?}, want {want:?}\n--- server log ---\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn evict(c: &Cluster, pod: &str) -> std::process::Output {
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    c.kubectl_with(
        &[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
            "-f",
            "-",
        ],
        Some(&body),
        &[],
    )
}

#[test]
fn budget_status_and_eviction() {
    let c = Cluster::start(&[]);
    c.wait_for_default_sa("default");
    ready_pod(&c, "web-1");
    ready_pod(&c, "web-2");
    c.create(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web, namespace: default}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: web}}\n",
    );
    wait_status(&c, "2 2 2 0 1 False/InsufficientPods");
    // kubectl's columns read the status.
    let row = c.ok(&["get", "pdb", "web", "--no-headers"]);
    assert_eq!(
        row.split_whitespace().take(4).collect::<Vec<_>>(),
        ["web", "2", "N/A", "0"],
        "{row}"
    );

    let out = evict(&c, "web-1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    c.ok(&["get", "pod", "web-1"]);

    c.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    wait_status(&c, "2 1 2 1 2 True/SufficientPods");
    let out = evict(&c, "web-1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !c.kubectl(&["get", "pod", "web-1"]).status.success(),
        "the evicted pod is gone"
    );
    wait_status(&c, "1 1 1 0 2 False/InsufficientPods");
    // The budget is spent: the other pod stays.
    assert!(!evict(&c, "web-2").status.success());
}
