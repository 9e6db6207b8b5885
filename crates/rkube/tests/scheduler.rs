//! The scheduler end to end: `rkube server` (scheduler in-process) with hollow nodes
//! from `rkube hollow-nodes`, driven by kubectl. Pods land by node affinity, taints and
//! tolerations and host ports; a pod that fits nowhere stays Pending with upstream's
//! FailedScheduling message until a node that fits is added.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{node_of, wait_for, wait_nodes_ready, Cluster, HollowNodes};

fn pod_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}  containers:\n  - name: c\n    image: busybox\n"
    )
}

fn pod_with_container(name: &str, spec: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}  containers:\n  - name: c\n    image: busybox\n{container_extra}"
    )
}

fn failed_scheduling_message(c: &Cluster, pod: &str, expected: &str) {
    let condition = wait_for(
        c,
        &[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='PodScheduled')].message}",
        ],
        &format!("pod {pod}'s PodScheduled condition"),
        // The scheduler's view of the nodes may lag a write just made (a taint): its first
        // verdict can predate it, and the pod is retried on the node update.
        |out| out == expected,
    );
    assert_eq!(condition, expected);
    let reason = c.ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='PodScheduled')].reason}",
    ]);
    assert_eq!(reason, "Unschedulable");
    let events = wait_for(
        c,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod},reason=FailedScheduling"),
            "--sort-by=.lastTimestamp",
            "-o",
            "jsonpath={range .items[*]}{.type} {.source.component}: {.message}{\"\\n\"}{end}",
        ],
        &format!("a FailedScheduling event for {pod}"),
        |out| out.lines().last() == Some(&format!("Warning default-scheduler: {expected}")),
    );
    // The latest FailedScheduling event carries the scheduler's current verdict.
    assert_eq!(
        events.lines().last().unwrap(),
        format!("Warning default-scheduler: {expected}")
    );
    let describe = c.ok(&["describe", "pod", pod]);
    assert!(
        describe.contains("FailedScheduling") && describe.contains(expected),
        "{describe}"
    );
}

#[test]
fn pods_land_by_node_affinity_taints_and_host_ports() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3"]);
    wait_nodes_ready(&c, 3);
    c.ok(&["label", "node", "hollow-node-0", "disk=ssd"]);
    c.ok(&["taint", "node", "hollow-node-1", "dedicated=gpu:NoSchedule"]);

    // nodeSelector and required node affinity.
    c.create(&pod_yaml("on-ssd", "  nodeSelector:\n    disk: ssd\n"));
    c.create(&pod_yaml(
        "on-two",
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: kubernetes.io/hostname, operator: In, values: [hollow-node-2]}\n",
    ));
    // Preferred node affinity pulls the pod to its node.
    c.create(&pod_yaml(
        "prefers-ssd",
        "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        preference:\n          matchExpressions:\n          - {key: disk, operator: In, values: [ssd]}\n",
    ));
    // A toleration opens the tainted node.
    c.create(&pod_yaml(
        "tolerates-gpu",
        "  nodeSelector:\n    kubernetes.io/hostname: hollow-node-1\n  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n",
    ));
    assert_eq!(node_of(&c, "on-ssd"), "hollow-node-0");
    assert_eq!(node_of(&c, "on-two"), "hollow-node-2");
    assert_eq!(node_of(&c, "prefers-ssd"), "hollow-node-0");
    assert_eq!(node_of(&c, "tolerates-gpu"), "hollow-node-1");

    // Pods without the toleration never land on the tainted node.
    for i in 0..4 {
        c.create(&pod_yaml(&format!("plain-{i}"), ""));
    }
    for i in 0..4 {
        assert_ne!(node_of(&c, &format!("plain-{i}")), "hollow-node-1");
    }

    // Hollow nodes run what lands on them: Running, Ready, with a pod IP.
    let running = wait_for(
        &c,
        &[
            "get",
            "pod",
            "on-ssd",
            "-o",
            "jsonpath={.status.phase} {.status.podIP} {.status.conditions[?(@.type=='Ready')].status}",
        ],
        "on-ssd to run",
        |out| out.starts_with("Running "),
    );
    assert!(running.ends_with(" True"), "{running}");
    // Events are posted in the background, as upstream's broadcaster does.
    let events = wait_for(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=on-ssd,reason=Scheduled",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        "the Scheduled event of on-ssd",
        |out| !out.is_empty(),
    );
    assert_eq!(
        events,
        "Successfully assigned default/on-ssd to hollow-node-0"
    );

    // Host ports: one pod per node for the same port; the third finds none free.
    let port = "    ports:\n    - {containerPort: 80, hostPort: 8080}\n";
    c.create(&pod_with_container("port-a", "", port));
    c.create(&pod_with_container("port-b", "", port));
    let (a, b) = (node_of(&c, "port-a"), node_of(&c, "port-b"));
    assert_ne!(a, b);
    assert!(![&a, &b].contains(&&"hollow-node-1".to_owned()));
    c.create(&pod_with_container("port-c", "", port));
    failed_scheduling_message(
        &c,
        "port-c",
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), \
         2 node(s) didn't have free ports for the requested pod ports. \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
    );
    // Freeing the port lets it land.
    c.ok(&["delete", "pod", "port-a", "--wait=false"]);
    assert_eq!(node_of(&c, "port-c"), a);
}

#[test]
fn an_oversized_pod_stays_pending_until_a_node_fits() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3", "--cpu", "4"]);
    wait_nodes_ready(&c, 3);
    c.ok(&["taint", "node", "hollow-node-1", "dedicated=gpu:NoSchedule"]);
    c.ok(&["taint", "node", "hollow-node-2", "dedicated=gpu:NoSchedule"]);
    let big = "    resources:\n      requests: {cpu: \"8\", memory: 1Gi}\n";
    c.create(&pod_with_container("big", "", big));
    failed_scheduling_message(
        &c,
        "big",
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling.",
    );
    let phase = c.ok(&["get", "pod", "big", "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Pending");

    // A node large enough joins: the pod is retried on the NodeAdd event and lands.
    let _large = HollowNodes::start(
        &c,
        &["--count", "1", "--name-prefix", "large", "--cpu", "16"],
    );
    assert_eq!(node_of(&c, "big"), "large-0");
    wait_for(
        &c,
        &["get", "pod", "big", "-o", "jsonpath={.status.phase}"],
        "big to run",
        |out| out == "Running",
    );
}

#[test]
fn the_scheduler_can_be_disabled_and_run_standalone() {
    let c = Cluster::start(&["--disable-scheduler"]);
    let _nodes = HollowNodes::start(&c, &["--count", "1"]);
    wait_nodes_ready(&c, 1);
    c.create(&pod_yaml("waits", ""));
    std::thread::sleep(Duration::from_millis(500));
    let node = c.ok(&["get", "pod", "waits", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, "", "no scheduler runs in the server");

    // `rkube scheduler` as system:kube-scheduler, with a certificate from the cluster CA.
    let kubeconfig = c.user_kubeconfig("system:kube-scheduler", &[]);
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("scheduler")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rkube scheduler");
    let landed = std::panic::catch_unwind(|| node_of(&c, "waits"));
    // It speaks HTTP/2, as kube-scheduler does: its watches, bindings and events share one
    // connection (over HTTP/1.1 each watch alone holds one).
    let port: u16 = c.addr.rsplit(':').next().unwrap().parse().unwrap();
    let connections = connections_to(scheduler.id(), port);
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    assert_eq!(landed.expect("the pod is scheduled"), "hollow-node-0");
    assert_eq!(
        connections, 1,
        "the scheduler's established connections to the API server"
    );
}

/// Established TCP connections of process `pid` to `port` on loopback (its socket inodes
/// from /proc/PID/fd, matched against /proc/net/tcp).
fn connections_to(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // remote address, state (01 = ESTABLISHED), inode
            f.len() > 9
                && f[2].ends_with(&format!(":{port:04X}"))
                && f[3] == "01"
                && inodes.contains(f[9])
        })
        .count()
}

#[test]
fn a_higher_priority_pod_preempts_a_lower_priority_one() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "1", "--cpu", "4"]);
    wait_nodes_ready(&c, 1);
    c.create(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 1\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
    );
    let cpu = |n: &str| format!("    resources:\n      requests: {{cpu: \"{n}\"}}\n");
    c.create(&pod_with_container(
        "victim",
        "  priorityClassName: low\n  priority: 1\n",
        &cpu("3"),
    ));
    assert_eq!(node_of(&c, "victim"), "hollow-node-0");
    c.create(&pod_with_container(
        "preemptor",
        "  priorityClassName: high\n  priority: 1000\n",
        &cpu("2"),
    ));
    assert_eq!(node_of(&c, "preemptor"), "hollow-node-0");
    wait_for(
        &c,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
        "the victim to be gone",
        |out| out == "preemptor",
    );
    let uid = c.ok(&["get", "pod", "preemptor", "-o", "jsonpath={.metadata.uid}"]);
    let preempted = wait_for(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=victim,reason=Preempted",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        "the Preempted event of the victim",
        |out| !out.is_empty(),
    );
    assert_eq!(
        preempted,
        format!("Preempted by pod {uid} on node hollow-node-0")
    );
}

/// Preemption respects PodDisruptionBudgets as upstream does: of two nodes where
/// eviction makes room, the one whose victim a budget does not protect is chosen, even
/// though the protected victim has the lower priority (which would otherwise decide).
#[test]
fn preemption_prefers_victims_no_disruption_budget_protects() {
    let c = Cluster::start(&[]);
    c.wait_for_default_sa("default");
    let _nodes = HollowNodes::start(&c, &["--count", "2", "--cpu", "4"]);
    wait_nodes_ready(&c, 2);
    c.create(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: low}\nvalue: 1\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: mid}\nvalue: 10\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: guarded}\n\
         spec:\n  minAvailable: 1\n  selector: {matchLabels: {app: guarded}}\n",
    );
    let labeled = |name: &str, app: &str, class: &str, priority: u32, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: {app}}}\n\
             spec:\n  priorityClassName: {class}\n  priority: {priority}\n  containers:\n  - name: c\n    image: busybox\n\
             \x20   resources:\n      requests: {{cpu: \"{cpu}\"}}\n"
        )
    };
    // Each takes 3 of a node's 4 cpus, so they land on different nodes.
    c.create(&labeled("guarded", "guarded", "low", 1, "3"));
    let guarded_node = node_of(&c, "guarded");
    c.create(&labeled("spare", "spare", "mid", 10, "3"));
    let spare_node = node_of(&c, "spare");
    assert_ne!(guarded_node, spare_node);
    c.create(&labeled("preemptor", "preemptor", "high", 1000, "2"));
    assert_eq!(node_of(&c, "preemptor"), spare_node);
    let left = wait_for(
        &c,
        &["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
        "the unprotected victim to be gone",
        |out| !out.split(' ').any(|n| n == "spare"),
    );
    assert_eq!(left, "guarded preemptor");
    assert_eq!(node_of(&c, "guarded"), guarded_node);
}

/// A pod's claims must exist and be bound (VolumeBinding): a missing claim and an
/// unbound claim without delayed binding keep it Pending with upstream's messages; the
/// claim's arrival, bound, lets it schedule.
#[test]
fn pods_wait_for_their_persistent_volume_claims() {
    let c = Cluster::start(&[]);
    c.wait_for_default_sa("default");
    let _nodes = HollowNodes::start(&c, &["--count", "1"]);
    wait_nodes_ready(&c, 1);
    let claimant = |name: &str, claim: &str| {
        pod_yaml(
            name,
            &format!(
                "  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: {claim}}}\n"
            ),
        )
    };
    c.create(&claimant("needs-data", "data"));
    failed_scheduling_message(
        &c,
        "needs-data",
        "0/1 nodes are available: persistentvolumeclaim \"data\" not found. \
         no new claims to deallocate, preemption: 0/1 nodes are available: \
         1 Preemption is not helpful for scheduling.",
    );
    c.create(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: unbound}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n\
         \x20 resources: {requests: {storage: 1Gi}}\n",
    );
    c.create(&claimant("needs-unbound", "unbound"));
    failed_scheduling_message(
        &c,
        "needs-unbound",
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. \
         no new claims to deallocate, preemption: 0/1 nodes are available: \
         1 Preemption is not helpful for scheduling.",
    );
    // The claim appears, already bound to its volume (which exists: VolumeZone reads its
    // zone labels): the waiting pod schedules.
    c.create(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: pv-data}\n\
         spec:\n  capacity: {storage: 1Gi}\n  accessModes: [ReadWriteOnce]\n\
         \x20 hostPath: {path: /tmp/pv-data}\n  claimRef: {namespace: default, name: data}\n",
    );
    c.create(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  volumeName: pv-data\n\
         \x20 resources: {requests: {storage: 1Gi}}\n",
    );
    assert_eq!(node_of(&c, "needs-data"), "hollow-node-0");
}

#[test]
fn pod_anti_affinity_spreads_replicas_one_per_node() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3"]);
    wait_nodes_ready(&c, 3);
    let spec = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels: {app: web}\n        topologyKey: kubernetes.io/hostname\n";
    let web = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: web}}\nspec:\n{spec}  containers:\n  - name: c\n    image: busybox\n"
        )
    };
    let mut seen = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        c.create(&web(&name));
        // One at a time, so each sees the ones before it bound.
        seen.push(node_of(&c, &name));
    }
    seen.sort();
    assert_eq!(seen, ["hollow-node-0", "hollow-node-1", "hollow-node-2"]);
    c.create(&web("web-3"));
    failed_scheduling_message(
        &c,
        "web-3",
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod.",
    );
    // A pod the replicas' anti-affinity selects is kept away from them too.
    c.create(&pod_yaml("plain-web", "").replace(
        "metadata:\n  name: plain-web\n",
        "metadata:\n  name: plain-web\n  labels: {app: web}\n",
    ));
    failed_scheduling_message(
        &c,
        "plain-web",
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 No preemption victims found for incoming pod.",
    );
    // Deleting a replica frees its node (for web-3 alone: plain-web goes first).
    c.ok(&["delete", "pod", "plain-web", "--wait=false"]);
    c.ok(&["delete", "pod", "web-0", "--wait=false"]);
    node_of(&c, "web-3");
}

#[test]
fn topology_spread_keeps_zones_even() {
    let c = Cluster::start(&[]);
    let _nodes = HollowNodes::start(&c, &["--count", "3"]);
    wait_nodes_ready(&c, 3);
    c.ok(&["label", "node", "hollow-node-0", "zone=a"]);
    c.ok(&["label", "node", "hollow-node-1", "zone=a"]);
    c.ok(&["label", "node", "hollow-node-2", "zone=b"]);
    let spec = "  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector:\n      matchLabels: {app: spread}\n";
    let mut zones = Vec::new();
    for i in 0..4 {
        let name = format!("spread-{i}");
        c.create(&pod_yaml(&name, spec).replace(
            &format!("metadata:\n  name: {name}\n"),
            &format!("metadata:\n  name: {name}\n  labels: {{app: spread}}\n"),
        ));
        let node = node_of(&c, &name);
        zones.push(if node == "hollow-node-2" { "b" } else { "a" });
    }
    zones.sort();
    assert_eq!(zones, ["a", "a", "b", "b"]);
}

#[test]
fn the_scheduler_holds_its_lease_against_a_standby() {
    // The in-process scheduler takes kube-system/kube-scheduler; a standalone one waits.
    let c = Cluster::start(&[]);
    let holder = wait_for(
        &c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-scheduler",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        "the scheduler's lease",
        |out| !out.is_empty(),
    );
    let kubeconfig = c.user_kubeconfig("system:kube-scheduler", &[]);
    let mut standby = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("scheduler")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rkube scheduler");
    std::thread::sleep(Duration::from_millis(2500));
    let now = c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    let _ = standby.kill();
    let _ = standby.wait();
    assert_eq!(now, holder, "the holder keeps its lease while it renews");
}
