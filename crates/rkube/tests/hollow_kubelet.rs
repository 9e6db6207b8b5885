//! Hollow nodes run the real kubelet on a simulated container runtime: what the paper
//! nodes never did — restarts with back-off (CrashLoopBackOff, `restartCount`, the
//! `BackOff` event), probes deciding readiness, failed pulls (ErrImagePull), graceful
//! termination on delete (`Killing`, the pod kept until its containers stopped), and
//! node status with the runtime's version and images — driven by kubectl 1.37.

mod support;

use support::hollow::{wait_json, HollowNodes};
use support::Cluster;

fn cluster() -> (Cluster, HollowNodes) {
    let c = Cluster::start(&[]);
    let hollow = HollowNodes::start(&c, &["--count", "1"]);
    c.wait_for_default_sa("default");
    (c, hollow)
}

fn pod(name: &str, annotations: &[(&str, &str)], extra_spec: &str, container: &str) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n");
    if !annotations.is_empty() {
        yaml.push_str("  annotations:\n");
        for (k, v) in annotations {
            yaml.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    yaml.push_str(&format!(
        "spec:\n{extra_spec}  containers:\n  - name: c\n    image: busybox\n{container}"
    ));
    yaml
}

fn events(c: &Cluster, pod: &str, reason: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod},reason={reason}"),
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ])
}

fn wait_event(c: &Cluster, pod: &str, reason: &str, check: impl Fn(&str) -> bool) -> String {
    let what = format!("a {reason} event of {pod}");
    let v = wait_json(
        c,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod},reason={reason}"),
        ],
        40,
        &what,
        |l| {
            l["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["message"].as_str().is_some_and(&check))
        },
    );
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str())
        .find(|m| check(m))
        .unwrap()
        .to_owned()
}

fn container_status(p: &serde_json::Value) -> &serde_json::Value {
    &p["status"]["containerStatuses"][0]
}

fn condition(p: &serde_json::Value, type_: &str) -> String {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn hollow_kubelets_restart_probe_and_pull_like_the_real_one() {
    let (c, _hollow) = cluster();

    // The node is the kubelet's: registered, Ready, on the simulated runtime, with a
    // Lease owned by the Node.
    let node = wait_json(
        &c,
        &["get", "node", "hollow-node-0"],
        30,
        "node Ready",
        |n| condition(n, "Ready") == "True",
    );
    assert_eq!(
        node["status"]["nodeInfo"]["containerRuntimeVersion"],
        format!("rkube-sim://{}", env!("CARGO_PKG_VERSION")),
        "{node}"
    );
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.37.0");
    assert_eq!(node["metadata"]["labels"]["node.rkube.io/hollow"], "true");
    let lease = c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        "hollow-node-0",
        "-o",
        "jsonpath={.spec.holderIdentity}/{.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(lease, "hollow-node-0/Node");

    // Containers that exit 1 under restartPolicy Always: restarts, then back-off.
    c.create(&pod(
        "crasher",
        &[("hollow.rkube.io/exit-code", "1")],
        "",
        "",
    ));
    // A readiness probe that fails (every exec exits 1) and one that succeeds.
    let readiness_exec = "    readinessProbe:\n      exec:\n        command: [\"cat\", \"/ready\"]\n      periodSeconds: 1\n";
    c.create(&pod(
        "unready",
        &[("hollow.rkube.io/exec-exit-code", "1")],
        "",
        readiness_exec,
    ));
    let readiness_tcp =
        "    readinessProbe:\n      tcpSocket:\n        port: 8080\n      periodSeconds: 1\n";
    c.create(&pod("ready", &[], "", readiness_tcp));
    // An image the registry does not have.
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: missing\nspec:\n  containers:\n  - name: c\n    image: registry.invalid/app:1\n",
    );

    let crasher = wait_json(
        &c,
        &["get", "pod", "crasher"],
        40,
        "crasher in CrashLoopBackOff",
        |p| {
            let s = container_status(p);
            s["restartCount"].as_i64().unwrap_or(0) >= 1
                && s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        },
    );
    let s = container_status(&crasher);
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 1, "{crasher}");
    assert_eq!(s["lastState"]["terminated"]["reason"], "Error", "{crasher}");
    assert_eq!(crasher["status"]["phase"], "Running", "{crasher}");
    let uid = crasher["metadata"]["uid"].as_str().unwrap();
    let msg = wait_event(&c, "crasher", "BackOff", |m| {
        m.starts_with("Back-off restarting failed container")
    });
    assert_eq!(
        msg,
        format!("Back-off restarting failed container c in pod crasher_default({uid})")
    );
    let waiting = s["state"]["waiting"]["message"].as_str().unwrap();
    assert!(
        waiting.starts_with("back-off ")
            && waiting.ends_with(&format!(
                " restarting failed container=c pod=crasher_default({uid})"
            )),
        "{crasher}"
    );

    let unready = wait_json(
        &c,
        &["get", "pod", "unready"],
        30,
        "unready running and probed",
        |p| {
            p["status"]["phase"] == "Running"
                && container_status(p)["started"] == true
                && !events(&c, "unready", "Unhealthy").is_empty()
        },
    );
    assert_eq!(condition(&unready, "Ready"), "False", "{unready}");
    assert_eq!(container_status(&unready)["ready"], false, "{unready}");
    let unhealthy = events(&c, "unready", "Unhealthy");
    assert!(
        unhealthy.starts_with("Readiness probe failed: cat: simulated exit code 1"),
        "{unhealthy}"
    );

    let ready = wait_json(&c, &["get", "pod", "ready"], 30, "ready Ready", |p| {
        condition(p, "Ready") == "True"
    });
    let ip = ready["status"]["podIP"].as_str().unwrap();
    assert!(
        ip.starts_with("10.64.0."),
        "an IP of the node's range: {ready}"
    );
    assert_eq!(ready["status"]["hostIP"], "172.16.0.1", "{ready}");

    let missing = wait_json(&c, &["get", "pod", "missing"], 30, "missing image", |p| {
        matches!(
            container_status(p)["state"]["waiting"]["reason"].as_str(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    });
    assert_eq!(missing["status"]["phase"], "Pending", "{missing}");
    let failed = wait_event(&c, "missing", "Failed", |m| m.starts_with("Failed to pull"));
    assert_eq!(
        failed,
        "Failed to pull image \"registry.invalid/app:1\": rpc error: code = NotFound desc = failed to pull and unpack image \"registry.invalid/app:1\": failed to resolve reference \"registry.invalid/app:1\": registry.invalid/app:1: not found"
    );

    // Node status lists the images pulled.
    wait_json(
        &c,
        &["get", "node", "hollow-node-0"],
        40,
        "busybox in node images",
        |n| {
            n["status"]["images"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|i| {
                    i["names"].as_array().is_some_and(|ns| {
                        ns.iter().any(|x| x == "docker.io/library/busybox:latest")
                    }) && i["sizeBytes"].as_i64().unwrap_or(0) > 0
                })
        },
    );
}

#[test]
fn hollow_kubelets_terminate_pods_gracefully() {
    let (c, _hollow) = cluster();
    // The container needs 8 s to exit after SIGTERM; the grace period allows 30.
    c.create(&pod(
        "slow",
        &[("hollow.rkube.io/termination-seconds", "8")],
        "  terminationGracePeriodSeconds: 30\n",
        "",
    ));
    // This one exits at once on SIGTERM.
    c.create(&pod("quick", &[], "", ""));
    for name in ["slow", "quick"] {
        wait_json(&c, &["get", "pod", name], 30, "running", |p| {
            p["status"]["phase"] == "Running" && condition(p, "Ready") == "True"
        });
    }
    c.ok(&["delete", "pod", "slow", "quick", "--wait=false"]);
    // The kubelet stops the containers (Killing) and keeps the slow pod until its
    // container exited.
    let slow = wait_json(&c, &["get", "pod", "slow"], 30, "slow terminating", |p| {
        p["metadata"]["deletionTimestamp"].is_string()
    });
    assert_eq!(slow["metadata"]["deletionGracePeriodSeconds"], 30, "{slow}");
    wait_event(&c, "slow", "Killing", |m| m == "Stopping container c");
    wait_event(&c, "quick", "Killing", |m| m == "Stopping container c");
    for name in ["quick", "slow"] {
        wait_json(&c, &["get", "pods"], 40, &format!("{name} gone"), |l| {
            !l["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["metadata"]["name"] == name)
        });
    }
}

/// Whether `ip` is inside the IPv4 `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let ip: u32 = ip.parse::<std::net::Ipv4Addr>().unwrap().into();
    let net: u32 = net.parse::<std::net::Ipv4Addr>().unwrap().into();
    let bits: u32 = bits.parse().unwrap();
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    ip & mask == net & mask
}

/// A podCIDR that node IPAM assigns after the hollow node registered (with a range of
/// its own from the options) is followed, as the real kubelet follows its Node's: once
/// the kubelet has seen it (a status tick, every 10 s), new pods get addresses from it.
#[test]
fn hollow_kubelets_follow_a_pod_cidr_assigned_after_registration() {
    let c = Cluster::start(&["--cluster-cidr", "10.99.0.0/16"]);
    let _hollow = HollowNodes::start(&c, &["--count", "1"]);
    c.wait_for_default_sa("default");
    let node = wait_json(
        &c,
        &["get", "node", "hollow-node-0"],
        30,
        "a podCIDR from node IPAM",
        |n| n["spec"]["podCIDR"].as_str().is_some_and(|s| !s.is_empty()),
    );
    let cidr = node["spec"]["podCIDR"].as_str().unwrap().to_owned();
    assert!(
        in_cidr(cidr.split('/').next().unwrap(), "10.99.0.0/16"),
        "{cidr}"
    );
    let started = std::time::Instant::now();
    let mut outside = Vec::new();
    for i in 0.. {
        let name = format!("p{i}");
        c.create(&pod(&name, &[], "", ""));
        let p = wait_json(&c, &["get", "pod", &name], 30, "a pod IP", |p| {
            p["status"]["podIP"].as_str().is_some_and(|s| !s.is_empty())
        });
        let ip = p["status"]["podIP"].as_str().unwrap().to_owned();
        if in_cidr(&ip, &cidr) {
            break;
        }
        // Only before the kubelet's next status tick may a pod get the old range.
        outside.push(ip);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "pods keep getting addresses outside the node's podCIDR {cidr}: {outside:?}\n--- hollow nodes ---\n{}",
            std::fs::read_to_string(c.data_dir().join("hollow.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
