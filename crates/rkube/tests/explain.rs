//! `rkube explain pod`: against a server with hollow nodes, a pod that fits nowhere gets
//! each node's failing plugin and upstream reason, and a scheduled pod's explained choice
//! is the node the scheduler bound it to.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::hollow::HollowNodes;
use support::{wait_for, wait_nodes_ready, wait_with_timeout, Cluster};

/// Runs `rkube explain pod NAME` with the admin kubeconfig; returns its output.
fn explain(c: &Cluster, pod: &str) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["explain", "pod", pod, "-n", "default", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rkube explain");
    let out = wait_with_timeout(child, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "rkube explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The verdict column of `node`'s row in the Filter table.
fn verdict<'a>(out: &'a str, node: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(node).filter(|r| r.starts_with(' ')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no row for {node} in:\n{out}"))
}

#[test]
fn a_pod_that_fits_nowhere_gets_each_nodes_rejection() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3", "--cpu", "4"]);
    wait_nodes_ready(&c, 3);
    c.ok(&["taint", "node", "hollow-node-1", "dedicated=gpu:NoSchedule"]);
    c.ok(&["taint", "node", "hollow-node-2", "dedicated=gpu:NoSchedule"]);
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {cpu: \"8\", memory: 1Gi}\n",
    );
    let expected =
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling.";
    wait_for(
        &c,
        &[
            "get",
            "pod",
            "big",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='PodScheduled')].message}",
        ],
        "big's PodScheduled condition",
        |out| out == expected,
    );
    // The event is written with the condition; wait until explain sees both.
    let mut out = explain(&c, "big");
    for _ in 0..100 {
        if out.contains(&format!("FailedScheduling:   {expected}")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = explain(&c, "big");
    }
    assert!(out.contains("Node:               <none>\n"), "{out}");
    assert!(
        out.contains(&format!(
            "PodScheduled:       False (Unschedulable): {expected}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("FailedScheduling:   {expected}")),
        "{out}"
    );
    assert_eq!(
        verdict(&out, "hollow-node-0"),
        "NodeResourcesFit (UnschedulableAndUnresolvable): Insufficient cpu"
    );
    for n in ["hollow-node-1", "hollow-node-2"] {
        assert_eq!(
            verdict(&out, n),
            "TaintToleration (UnschedulableAndUnresolvable): node(s) had untolerated taint(s)"
        );
    }
    assert!(out.contains("Would pick: <none>"), "{out}");

    // A pod that is not there gets the API's answer.
    let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["explain", "pod", "nope", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let missing = wait_with_timeout(child, Duration::from_secs(60));
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
}

#[test]
fn a_scheduled_pods_explained_choice_is_its_node() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3"]);
    wait_nodes_ready(&c, 3);
    c.ok(&["label", "node", "hollow-node-2", "disk=ssd"]);
    // Wait for the scheduler to see the label before creating the pod: it is what makes
    // hollow-node-2 the one best node.
    wait_for(
        &c,
        &["get", "nodes", "-l", "disk=ssd", "-o", "name"],
        "the label",
        |out| out.trim() == "node/hollow-node-2",
    );
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: prefers-ssd\nspec:\n  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        preference:\n          matchExpressions:\n          - {key: disk, operator: In, values: [ssd]}\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {cpu: 500m, memory: 256Mi}\n",
    );
    let node = wait_for(
        &c,
        &[
            "get",
            "pod",
            "prefers-ssd",
            "-o",
            "jsonpath={.spec.nodeName}",
        ],
        "prefers-ssd to be bound",
        |out| !out.is_empty(),
    );
    let out = explain(&c, "prefers-ssd");
    assert!(
        out.contains(&format!("Node:               {node}\n")),
        "{out}"
    );
    assert!(out.contains("PodScheduled:       True"), "{out}");
    assert!(
        out.contains("evaluated as if unscheduled, without itself on its node"),
        "{out}"
    );
    for n in ["hollow-node-0", "hollow-node-1", "hollow-node-2"] {
        assert_eq!(
            verdict(&out, n).split_whitespace().next(),
            Some("feasible"),
            "{out}"
        );
    }
    // Every feasible node is scored, NodeAffinity weighted 2, and the pick is the node
    // the scheduler chose.
    assert!(out.contains("NodeAffinity(×2)"), "{out}");
    assert!(out.contains("100×2=200"), "{out}");
    assert!(out.contains(&format!("Would pick: {node}\n")), "{out}");
    assert_eq!(node, "hollow-node-2");
}

/// The seed's chapter-4 view: at `-v 10` the scheduler logs, per node, what the resource
/// scorer saw (allocatable, requested) and the score, and each plugin's score.
#[test]
fn at_v10_the_scheduler_logs_each_nodes_resource_scores() {
    let c = Cluster::start(&["-v", "10"]);
    let _nodes = HollowNodes::start(&c, &["--count", "2", "--cpu", "4"]);
    wait_nodes_ready(&c, 2);
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: logged\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {cpu: \"1\", memory: 256Mi}\n",
    );
    wait_for(
        &c,
        &["get", "pod", "logged", "-o", "jsonpath={.spec.nodeName}"],
        "logged to be bound",
        |out| !out.is_empty(),
    );
    let log = c.log();
    for node in ["hollow-node-0", "hollow-node-1"] {
        let line = log
            .lines()
            .find(|l| {
                l.contains("Listed internal info for allocatable resources")
                    && l.contains("LeastAllocated")
                    && l.contains("default/logged")
                    && l.contains(node)
            })
            .unwrap_or_else(|| panic!("no LeastAllocated line for {node} in the log"));
        // cpu: 4 cores allocatable, the pod's 1 core requested (in millicores).
        assert!(line.contains("allocatableResource=[4000, "), "{line}");
        assert!(line.contains("requestedResource=[1000, "), "{line}");
        assert!(
            log.lines().any(|l| l.contains("default/logged")
                && l.contains(node)
                && l.contains("NodeResourcesBalancedAllocation")),
            "no per-plugin score for {node}"
        );
    }
}
