//! The kubelet on real containerd, runc and CNI plugins: `rkube server --enable-node`
//! starts its own containerd (own root, state and socket in the test's temp dir), and a
//! busybox image built offline runs as a real pod.
//!
//! Needs root and what `scripts/install-deps.sh` installs (containerd, runc, CNI plugins,
//! busybox-static, umoci, skopeo); installs nothing itself.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Cluster;

use rkube_testkit::images::BUSYBOX;

fn run(cmd: &mut Command) -> String {
    rkube_testkit::images::run(cmd)
}

fn busybox_archive() -> PathBuf {
    rkube_testkit::images::busybox_archive()
}

/// A random tag for this test's names (bridge, node, pod range).
fn random() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ (std::process::id() << 8)
}

/// A server running a local node on its own containerd. On drop — success or failure —
/// removes everything the node made outside its temp dir: runc containers, the
/// processes started from the temp dir (server, containerd, shims), mounts (rootfs,
/// shm, network namespaces), the CNI bridge and its masquerade rules.
struct Node {
    cluster: Cluster,
    name: String,
    bridge: String,
    cidr: String,
}

impl Node {
    fn start() -> Node {
        let r = random();
        let name = format!("kubelet-e2e-{:06x}", r & 0xffffff);
        let bridge = format!("rkt{:08x}", r);
        let cidr = format!("10.{}.{}.0/24", 100 + r % 100, (r >> 8) % 256);
        let cluster = Cluster::start(&[
            "--enable-node",
            "--kubelet-port",
            "0",
            "--node-ip",
            "127.0.0.1",
            "--node-name",
            &name,
            "--cni-bridge",
            &bridge,
            "--pod-cidr",
            &cidr,
        ]);
        Node {
            cluster,
            name,
            bridge,
            cidr,
        }
    }

    fn socket(&self) -> PathBuf {
        self.cluster.data_dir().join("containerd/containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> String {
        run(Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args))
    }

    /// Polls `f` until it returns `Some`, up to `timeout`.
    fn wait<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        support::poll(what, timeout, f, || {
            format!(
                "--- events ---\n{}\n--- server log ---\n{}\n--- containerd log ---\n{}",
                String::from_utf8_lossy(&self.cluster.kubectl(&["get", "events", "-A"]).stdout),
                self.cluster.log(),
                std::fs::read_to_string(self.cluster.data_dir().join("containerd/containerd.log"))
                    .unwrap_or_default()
            )
        })
    }

    /// Waits until the node is Ready.
    fn wait_ready(&self) {
        self.wait("the node to be Ready", Duration::from_secs(60), || {
            let reason = self.jsonpath(
                &["get", "node", &self.name],
                r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
            );
            (reason == "KubeletReady").then_some(())
        });
    }

    /// The kubelet's events about `pod` in `default`, as `TYPE REASON: MESSAGE`.
    fn events(&self, pod: &str) -> Vec<String> {
        let list: serde_json::Value = serde_json::from_str(
            &self
                .cluster
                .ok(&["get", "events", "-n", "default", "-o", "json"]),
        )
        .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["name"] == pod && e["source"]["component"] == "kubelet")
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e["type"].as_str().unwrap(),
                    e["reason"].as_str().unwrap(),
                    e["message"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Waits for an event (they are posted in the background).
    fn has_event(&self, pod: &str, want: &str) {
        self.wait(
            &format!("event {want:?} about {pod}"),
            Duration::from_secs(10),
            || self.events(pod).iter().any(|e| e == want).then_some(()),
        )
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut a = args.to_vec();
        let p = format!("jsonpath={path}");
        a.extend(["-o", &p]);
        let out = self.cluster.kubectl(&a);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        rkube_testkit::node::clean_up(self.cluster.data_dir(), &self.bridge, &self.cidr);
    }
}

#[test]
fn pod_runs_on_containerd_and_terminates_gracefully() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;

    // The node registers, turns Ready with upstream's reason, and holds a Lease.
    node.wait_ready();
    let info = node.jsonpath(
        &["get", "node", &node.name],
        "{.status.nodeInfo.containerRuntimeVersion} {.metadata.labels.kubernetes\\.io/os} {.status.capacity.pods}",
    );
    assert!(info.starts_with("containerd://1."), "{info}");
    assert!(info.ends_with(" linux 110"), "{info}");
    c.ok(&["get", "lease", "-n", "kube-node-lease", &node.name]);

    // The locally built pause image is there; the test's busybox image is imported
    // (no registry anywhere).
    assert!(node
        .ctr(&["images", "ls", "-q"])
        .contains("rkube.local/pause:1"));
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");

    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hello, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: polite, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: absent, namespace: default}}
spec:
  containers:
  - name: main
    image: local.test/absent:1
    imagePullPolicy: Never
"#
    ));
    let prefix = node.cidr.trim_end_matches("0/24").to_owned();
    for pod in ["hello", "polite"] {
        let ip = node.wait(&format!("pod {pod} to run"), Duration::from_secs(60), || {
            let s = node.jsonpath(
                &["get", "pod", pod],
                r#"{.status.phase} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status}"#,
            );
            let parts: Vec<&str> = s.split(' ').collect();
            (parts.len() == 3 && parts[0] == "Running" && parts[2] == "True")
                .then(|| parts[1].to_owned())
        });
        assert!(ip.starts_with(&prefix), "pod IP {ip} not in {}", node.cidr);
        let status = node.jsonpath(
            &["get", "pod", pod],
            "{.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].containerID} {.status.hostIP} {.status.qosClass}",
        );
        let parts: Vec<&str> = status.split(' ').collect();
        assert_eq!(parts.len(), 4, "{status}");
        assert!(parts[1].starts_with("containerd://"), "{status}");
        assert!(!parts[2].is_empty() && parts[3] == "BestEffort", "{status}");
    }
    // What the container wrote reached its CRI log file.
    let logs = node.wait("hello's log", Duration::from_secs(10), || {
        let uid = node.jsonpath(&["get", "pod", "hello"], "{.metadata.uid}");
        let path = c
            .data_dir()
            .join(format!("pod-logs/default_hello_{uid}/main/0.log"));
        std::fs::read_to_string(path)
            .ok()
            .filter(|l| l.contains("hello"))
    });
    assert!(logs.contains(" stdout F hello"), "{logs}");

    // kubectl logs: the API server proxies pods/log to the node's kubelet.
    assert_eq!(c.ok(&["logs", "hello"]), "hello\n");
    assert_eq!(
        c.ok(&["logs", "hello", "-c", "main", "--tail=1"]),
        "hello\n"
    );
    assert!(c
        .ok(&["logs", "hello", "--timestamps"])
        .ends_with("Z hello\n"));
    let err = c.fails(&["logs", "hello", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod hello"),
        "{err}"
    );
    let followed = c.data_dir().join("follow.out");
    let mut follow = Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["logs", "-f", "hello"])
        .stdout(std::fs::File::create(&followed).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    node.wait("kubectl logs -f to print", Duration::from_secs(10), || {
        (std::fs::read_to_string(&followed).unwrap_or_default() == "hello\n").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        follow.try_wait().unwrap().is_none(),
        "logs -f ended while the container runs"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // The kubelet's HTTPS server serves them to cluster-CA client certificates that
    // its SubjectAccessReview allows (nodes/proxy).
    let port = node.jsonpath(
        &["get", "node", &node.name],
        "{.status.daemonEndpoints.kubeletEndpoint.Port}",
    );
    assert!(port.parse::<u16>().unwrap() > 0, "{port}");
    let pki = c.data_dir().join("pki");
    let kubelet_curl = |cert: &str, path: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-k", "-w", "\n%{http_code}"])
            .arg("--cert")
            .arg(c.data_dir().join(format!("{cert}.crt")))
            .arg("--key")
            .arg(c.data_dir().join(format!("{cert}.key")))
            .args(extra)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    std::fs::copy(pki.join("admin.crt"), c.data_dir().join("admin.crt")).unwrap();
    std::fs::copy(pki.join("admin.key"), c.data_dir().join("admin.key")).unwrap();
    let (body, _) = kubelet_curl("admin", "/containerLogs/default/hello/main", &[]);
    assert_eq!(body, "hello\n\n200");
    let (body, _) = kubelet_curl(
        "admin",
        "/containerLogs/default/hello/main?timestamps=true",
        &[],
    );
    assert!(body.ends_with("Z hello\n\n200"), "{body}");
    // follow streams until the container stops: here curl gives up first.
    let (body, code) = kubelet_curl(
        "admin",
        "/containerLogs/default/hello/main?follow=true",
        &["--max-time", "2"],
    );
    assert_eq!((body.as_str(), code), ("hello\n\n200", Some(28)));
    c.user_kubeconfig("alice", &[]);
    let (body, _) = kubelet_curl("alice", "/containerLogs/default/hello/main", &[]);
    assert!(
        body.ends_with("403") && body.contains("user=alice"),
        "{body}"
    );
    let (body, _) = kubelet_curl("admin", "/containerLogs/default/nope/main", &[]);
    assert!(body.ends_with("404"), "{body}");
    let out = Command::new("curl")
        .args(["-sS", "-k"])
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a client without a certificate got in"
    );
    // An image that is not there with pull policy Never: waiting, upstream's reason and
    // message, and the event saying so.
    let waiting = node.wait("absent to report its image", Duration::from_secs(30), || {
        let s = node.jsonpath(
            &["get", "pod", "absent"],
            "{.status.phase}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        );
        s.contains("ErrImageNeverPull").then_some(s)
    });
    assert_eq!(
        waiting,
        r#"Pending|ErrImageNeverPull|Container image "local.test/absent:1" is not present with pull policy of Never"#
    );
    // Three sandboxes, two containers.
    assert_eq!(node.ctr(&["containers", "ls", "-q"]).lines().count(), 5);
    node.has_event(
        "hello",
        r#"Normal Pulled: Container image "local.test/busybox:1" already present on machine"#,
    );
    node.has_event("hello", "Normal Created: Created container: main");
    node.has_event("hello", "Normal Started: Started container main");
    node.has_event("absent", "Warning Failed: Error: ErrImageNeverPull");
    c.ok(&["delete", "pod", "absent"]);

    // `sh` as PID 1 ignores SIGTERM: the kubelet waits out the grace period, then kills.
    let started = Instant::now();
    c.ok(&["delete", "pod", "hello", "--grace-period=3"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(20),
        "deleting with a 3 s grace period took {took:?}"
    );
    // A container that handles SIGTERM ends at once, well within the default 30 s.
    let started = Instant::now();
    c.ok(&["delete", "pod", "polite"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "a polite container took {took:?} to stop"
    );
    assert!(c.fails(&["get", "pod", "hello"]).contains("NotFound"));
    node.has_event("hello", "Normal Killing: Stopping container main");
    // Containers and sandboxes are gone from the runtime.
    node.wait("the runtime to be empty", Duration::from_secs(10), || {
        node.ctr(&["containers", "ls", "-q"])
            .trim()
            .is_empty()
            .then_some(())
    });
}

/// `rkube kubelet` on a machine without containerd registers its Node anyway and reports
/// it NotReady, saying how to install the runtime.
#[test]
fn missing_containerd_makes_the_node_not_ready_with_install_hint() {
    let cluster = Cluster::start(&[]);
    let name = format!("kubelet-e2e-bare-{:06x}", random() & 0xffffff);
    let data = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(data.path().join("kubelet.log")).unwrap();
    let mut kubelet = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("kubelet")
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["--node-name", &name])
        .arg("--data-dir")
        .arg(data.path())
        .env("PATH", data.path().join("empty-bin"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, reason, message) = loop {
        let out = cluster.kubectl(&[
            "get",
            "node",
            &name,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}"#,
        ]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let parts: Vec<String> = s.splitn(3, '|').map(str::to_owned).collect();
        if parts.len() == 3 && !parts[0].is_empty() {
            break (parts[0].clone(), parts[1].clone(), parts[2].clone());
        }
        assert!(
            Instant::now() < deadline,
            "no node status: {}",
            std::fs::read_to_string(data.path().join("kubelet.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = kubelet.kill();
    let _ = kubelet.wait();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "KubeletNotReady")
    );
    assert!(
        message.starts_with("container runtime is down: containerd was not found in PATH")
            && message.contains("apt-get install containerd runc containernetworking-plugins"),
        "{message}"
    );
}

/// `rkube kubelet` beside a server, as the node (a `system:node:<name>` client
/// certificate) with its own containerd. Killed on drop; what it made outside its data
/// dir (processes, mounts, the CNI bridge and its rules) is removed.
struct Standalone {
    process: std::process::Child,
    data: tempfile::TempDir,
    bridge: String,
    cidr: String,
}

impl Standalone {
    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("kubelet.log")).unwrap_or_default()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        rkube_testkit::node::clean_up(self.data.path(), &self.bridge, &self.cidr);
    }
}

/// A standalone `rkube kubelet` without `--client-ca-file` trusts the API server's client
/// CA (from `kube-system/extension-apiserver-authentication`), which signs the API
/// server's kubelet-client certificate: `kubectl logs` and `exec` through the API server
/// reach it.
#[test]
fn standalone_kubelet_trusts_the_api_servers_client_ca() {
    let image = busybox_archive();
    let cluster = Cluster::start(&[]);
    let r = random();
    let name = format!("kubelet-e2e-alone-{:06x}", r & 0xffffff);
    let kubeconfig = cluster.user_kubeconfig(&format!("system:node:{name}"), &["system:nodes"]);
    let data = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(data.path().join("kubelet.log")).unwrap();
    let bridge = format!("rka{r:08x}");
    let cidr = format!("10.{}.{}.0/24", 100 + r % 100, (r >> 8) % 256);
    let process = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("kubelet")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--data-dir")
        .arg(data.path())
        .args(["--node-name", &name, "--node-ip", "127.0.0.1"])
        .args([
            "--kubelet-port",
            "0",
            "--cni-bridge",
            &bridge,
            "--pod-cidr",
            &cidr,
        ])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let kubelet = Standalone {
        process,
        data,
        bridge,
        cidr,
    };
    let wait = |what: &str, f: &mut dyn FnMut() -> Option<String>| {
        support::poll(what, Duration::from_secs(60), f, || {
            format!(
                "--- kubelet log ---\n{}\n--- server log ---\n{}",
                kubelet.log(),
                cluster.log()
            )
        })
    };
    wait("the node to be Ready", &mut || {
        let out = cluster.kubectl(&[
            "get",
            "node",
            &name,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
        ]);
        (String::from_utf8_lossy(&out.stdout) == "KubeletReady").then(String::new)
    });
    run(Command::new("ctr")
        .arg("--address")
        .arg(kubelet.data.path().join("containerd/containerd.sock"))
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&image));
    cluster.wait_for_default_sa("default");
    cluster.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: alone, namespace: default}}
spec:
  nodeName: {name}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from a standalone kubelet; exec sleep 3600"]
"#
    ));
    let logs = wait("the pod's log through the API server", &mut || {
        let out = cluster.kubectl(&["logs", "alone"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    });
    assert_eq!(logs, "hello from a standalone kubelet\n");
    assert_eq!(
        cluster.ok(&["exec", "alone", "--", "sh", "-c", "echo $((6*7))"]),
        "42\n"
    );
    cluster.ok(&["delete", "pod", "alone", "--timeout=60s"]);

    // Credentials that may not read the client CA, and no saved copy: a clear error.
    let stranger = cluster.user_kubeconfig("stranger", &[]);
    let empty = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("kubelet")
        .arg("--kubeconfig")
        .arg(&stranger)
        .arg("--data-dir")
        .arg(empty.path())
        .args(["--node-name", "stranger"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot read the API server's client CA from the client-ca-file key of the kube-system/extension-apiserver-authentication ConfigMap")
            && stderr.contains("pass --client-ca-file"),
        "{stderr}"
    );
}

/// Restart policies: a crashing container is restarted with back-off (CrashLoopBackOff,
/// restart count, last state), a `Never` pod ends Failed or Succeeded by exit code;
/// init containers run in order before the app containers.
#[test]
fn restart_policies_crash_loop_back_off_and_init_containers() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    let pod = |name: &str, policy: &str, script: &str| {
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  restartPolicy: {policy}
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "{script}"]
"#
        )
    };
    c.create(
        &[
            pod("crasher", "Always", "echo boom; exit 3"),
            pod("fails", "Never", "exit 7"),
            pod("succeeds", "Never", "exit 0"),
            pod("retries", "OnFailure", "exit 0"),
        ]
        .join("---\n"),
    );

    let crash = node.wait("crasher to back off", Duration::from_secs(60), || {
        let s = node.jsonpath(
            &["get", "pod", "crasher"],
            "{.status.phase}|{.status.containerStatuses[0].restartCount}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].lastState.terminated.exitCode}|{.status.containerStatuses[0].lastState.terminated.reason}",
        );
        s.contains("CrashLoopBackOff").then_some(s)
    });
    let parts: Vec<&str> = crash.split('|').collect();
    assert_eq!(parts[0], "Running", "{crash}");
    assert!(parts[1].parse::<u32>().unwrap() >= 1, "{crash}");
    assert_eq!(&parts[2..], ["CrashLoopBackOff", "3", "Error"], "{crash}");
    assert_eq!(c.ok(&["logs", "crasher"]), "boom\n");
    assert_eq!(c.ok(&["logs", "crasher", "--previous"]), "boom\n");
    // Ask only once its one container has run (the pod may still be starting).
    node.wait("fails to fail", Duration::from_secs(60), || {
        (node.jsonpath(&["get", "pod", "fails"], "{.status.phase}") == "Failed").then_some(())
    });
    let err = c.fails(&["logs", "fails", "--previous"]);
    assert!(
        err.contains("previous terminated container \"main\" in pod \"fails\" not found"),
        "{err}"
    );
    let uid = node.jsonpath(&["get", "pod", "crasher"], "{.metadata.uid}");
    node.has_event(
        "crasher",
        &format!("Warning BackOff: Back-off restarting failed container main in pod crasher_default({uid})"),
    );

    for (name, phase, exit, reason) in [
        ("fails", "Failed", "7", "Error"),
        ("succeeds", "Succeeded", "0", "Completed"),
        ("retries", "Succeeded", "0", "Completed"),
    ] {
        let s = node.wait(&format!("{name} to finish"), Duration::from_secs(60), || {
            let s = node.jsonpath(
                &["get", "pod", name],
                r#"{.status.phase}|{.status.containerStatuses[0].state.terminated.exitCode}|{.status.containerStatuses[0].state.terminated.reason}|{.status.containerStatuses[0].restartCount}|{.status.conditions[?(@.type=="Ready")].reason}"#,
            );
            (s.starts_with("Succeeded") || s.starts_with("Failed")).then_some(s)
        });
        assert_eq!(
            s,
            format!("{phase}|{exit}|{reason}|0|PodCompleted"),
            "{name}"
        );
    }
    // Init containers run in order, to completion, before the app container; a failed
    // one fails a pod that never restarts.
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: inits, namespace: default}}
spec:
  initContainers:
  - {{name: first, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["sh", "-c", "sleep 2"]}}
  - {{name: second, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["true"]}}
  containers:
  - {{name: main, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: badinit, namespace: default}}
spec:
  restartPolicy: Never
  initContainers:
  - {{name: setup, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["sh", "-c", "exit 2"]}}
  containers:
  - {{name: main, image: {BUSYBOX}, imagePullPolicy: IfNotPresent, command: ["sleep", "3600"]}}
"#
    ));
    let pending = node.wait("inits to start initializing", Duration::from_secs(60), || {
        let s = node.jsonpath(
            &["get", "pod", "inits"],
            r#"{.status.phase}|{.status.conditions[?(@.type=="Initialized")].message}|{.status.initContainerStatuses[0].state.running.startedAt}|{.status.containerStatuses[0].state.waiting.reason}"#,
        );
        s.split('|').nth(2).is_some_and(|t| !t.is_empty()).then_some(s)
    });
    let parts: Vec<&str> = pending.split('|').collect();
    assert_eq!(parts[0], "Pending", "{pending}");
    assert_eq!(
        parts[1], "containers with incomplete status: [first second]",
        "{pending}"
    );
    assert_eq!(parts[3], "PodInitializing", "{pending}");
    let table = c.ok(&["get", "pod", "inits", "--no-headers"]);
    assert!(table.contains("Init:0/2"), "{table}");
    node.wait("inits to run", Duration::from_secs(60), || {
        (node.jsonpath(&["get", "pod", "inits"], "{.status.phase}") == "Running").then_some(())
    });
    let order = node.jsonpath(
        &["get", "pod", "inits"],
        "{.status.initContainerStatuses[0].state.terminated.reason} {.status.initContainerStatuses[1].state.terminated.reason} {.status.initContainerStatuses[0].state.terminated.finishedAt} {.status.initContainerStatuses[1].state.terminated.startedAt}",
    );
    let parts: Vec<&str> = order.split(' ').collect();
    assert_eq!(&parts[..2], ["Completed", "Completed"], "{order}");
    assert!(
        parts[2] <= parts[3],
        "second started before first finished: {order}"
    );
    let failed = node.wait("badinit to fail", Duration::from_secs(60), || {
        let s = node.jsonpath(
            &["get", "pod", "badinit"],
            "{.status.phase}|{.status.initContainerStatuses[0].state.terminated.exitCode}|{.status.containerStatuses[0].state.waiting.reason}",
        );
        s.starts_with("Failed").then_some(s)
    });
    assert_eq!(failed, "Failed|2|PodInitializing");

    // Finished pods give their sandbox back; all go away on delete.
    c.ok(&["delete", "pod", "--all", "--grace-period=1"]);
    node.wait("the runtime to be empty", Duration::from_secs(20), || {
        node.ctr(&["containers", "ls", "-q"])
            .trim()
            .is_empty()
            .then_some(())
    });
}

/// Readiness (exec, httpGet) gates READY n/m; a failing liveness probe restarts the
/// container with upstream's events. Probe traffic goes to the pod's IP on the test's
/// own bridge.
#[test]
fn probes_gate_readiness_and_restart_unhealthy_containers() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: probed, namespace: default}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /index.html, port: http}}, periodSeconds: 1}}
    livenessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1, initialDelaySeconds: 2}}
  - name: gate
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 5; touch /tmp/ready; exec sleep 3600"]
    readinessProbe: {{exec: {{command: ["test", "-f", "/tmp/ready"]}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: dying, namespace: default}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600"]
    livenessProbe: {{exec: {{command: ["cat", "/tmp/alive"]}}, periodSeconds: 1, failureThreshold: 2}}
"#
    ));
    let ready = |pod: &str| {
        node.jsonpath(
            &["get", "pod", pod],
            r#"{.status.phase}|{.status.containerStatuses[*].ready}|{.status.conditions[?(@.type=="Ready")].message}"#,
        )
    };
    // web turns ready through its HTTP probe while gate still waits for its file.
    let half = node.wait("web ready, gate not", Duration::from_secs(60), || {
        let s = ready("probed");
        (s == "Running|false true|containers with unready status: [gate]"
            || s == "Running|true false|containers with unready status: [gate]")
            .then_some(s)
    });
    assert!(half.contains("[gate]"), "{half}");
    node.wait("both ready", Duration::from_secs(30), || {
        let s = ready("probed");
        (s == "Running|true true|").then_some(())
    });
    let table = c.ok(&["get", "pod", "probed", "--no-headers"]);
    assert!(table.split_whitespace().nth(1) == Some("2/2"), "{table}");

    // dying's liveness probe fails twice once the file is gone: killed and restarted.
    node.wait("dying to restart", Duration::from_secs(60), || {
        let n = node.jsonpath(
            &["get", "pod", "dying"],
            "{.status.containerStatuses[0].restartCount}",
        );
        (n.parse::<u32>().unwrap_or(0) >= 1).then_some(())
    });
    node.has_event("dying", "Warning Unhealthy: Liveness probe failed: cat: can't open '/tmp/alive': No such file or directory\n");
    node.has_event(
        "dying",
        "Normal Killing: Container main failed liveness probe, will be restarted",
    );
    // The healthy pod never restarted.
    assert_eq!(
        node.jsonpath(
            &["get", "pod", "probed"],
            "{.status.containerStatuses[*].restartCount}"
        ),
        "0 0"
    );
    c.ok(&["delete", "pod", "--all", "--grace-period=1"]);
    node.wait("the runtime to be empty", Duration::from_secs(20), || {
        node.ctr(&["containers", "ls", "-q"])
            .trim()
            .is_empty()
            .then_some(())
    });
}

/// Volumes: emptyDir shared with an init container, configMap, secret, downwardAPI and a
/// projected service-account token are mounted; a missing ConfigMap holds the pod in
/// ContainerCreating with upstream's FailedMount event.
#[test]
fn volumes_are_mounted_into_containers() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    c.create(&format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg, namespace: default}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec, namespace: default}}
data: {{password: c2VjcmV0}}
---
apiVersion: v1
kind: Pod
metadata: {{name: mounted, namespace: default, labels: {{app: vol}}}}
spec:
  initContainers:
  - name: prep
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-init > /data/note"]
    volumeMounts: [{{name: scratch, mountPath: /data}}]
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo $(cat /etc/cfg/greeting) $(cat /etc/sec/password) $(cat /etc/pod/name) $(cat /data/note); echo env $GREETING $S_password; test -s /var/run/secrets/tokens/token && echo token-ok; exec sleep 3600"]
    env: [{{name: GREETING, valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}}}]
    envFrom: [{{secretRef: {{name: sec}}, prefix: S_}}]
    volumeMounts:
    - {{name: scratch, mountPath: /data}}
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: sec, mountPath: /etc/sec, readOnly: true}}
    - {{name: info, mountPath: /etc/pod}}
    - {{name: token, mountPath: /var/run/secrets/tokens}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: sec, secret: {{secretName: sec}}}}
  - {{name: info, downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}}}
  - name: token
    projected:
      sources: [{{serviceAccountToken: {{path: token, expirationSeconds: 3600}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: unmounted, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    volumeMounts: [{{name: cfg, mountPath: /etc/cfg}}]
  volumes:
  - {{name: cfg, configMap: {{name: missing}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: noenv, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    env: [{{name: X, valueFrom: {{configMapKeyRef: {{name: cfg, key: nope}}}}}}]
"#
    ));
    let logs = node.wait(
        "mounted to print its volumes",
        Duration::from_secs(60),
        || {
            let out = c.kubectl(&["logs", "mounted", "-c", "main"]);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            s.contains("token-ok").then_some(s)
        },
    );
    assert_eq!(
        logs,
        "hello secret mounted from-init\nenv hello secret\ntoken-ok\n"
    );
    let noenv = node.wait("noenv to fail its config", Duration::from_secs(30), || {
        let s = node.jsonpath(
            &["get", "pod", "noenv"],
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        );
        s.starts_with("CreateContainerConfigError").then_some(s)
    });
    assert_eq!(
        noenv,
        "CreateContainerConfigError|couldn't find key nope in ConfigMap default/cfg"
    );
    node.has_event(
        "unmounted",
        r#"Warning FailedMount: MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found"#,
    );
    assert_eq!(
        node.jsonpath(
            &["get", "pod", "unmounted"],
            "{.status.phase} {.status.containerStatuses[0].state.waiting.reason}"
        ),
        "Pending ContainerCreating"
    );
    c.ok(&["delete", "pod", "--all", "--grace-period=1"]);
    node.wait("the runtime to be empty", Duration::from_secs(20), || {
        node.ctr(&["containers", "ls", "-q"])
            .trim()
            .is_empty()
            .then_some(())
    });
    let pods_dir = c.data_dir().join("pods");
    let left: Vec<_> = std::fs::read_dir(&pods_dir).into_iter().flatten().collect();
    assert!(left.is_empty(), "pod dirs left: {left:?}");
}

/// Resource limits reach the container's cgroup; a container over its memory limit is
/// OOM-killed and reported so.
#[test]
fn limits_reach_the_cgroup_and_oom_kills_are_reported() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: limited, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max; exec sleep 3600"]
    resources: {{limits: {{memory: 64Mi, cpu: 250m}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: hog, namespace: default}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "x=a; while true; do x=$x$x; done"]
    resources: {{limits: {{memory: 16Mi}}}}
"#
    ));
    let limits = node.wait(
        "limited to print its cgroup limits",
        Duration::from_secs(60),
        || {
            let out = c.kubectl(&["logs", "limited"]);
            let s = String::from_utf8_lossy(&out.stdout).into_owned();
            (s.lines().count() >= 2).then_some(s)
        },
    );
    let lines: Vec<&str> = limits.lines().collect();
    assert_eq!(lines[0], "67108864", "{limits}");
    assert!(
        lines[1] == "25000" || lines[1] == "25000 100000",
        "{limits}"
    );
    assert_eq!(
        node.jsonpath(&["get", "pod", "limited"], "{.status.qosClass}"),
        "Guaranteed"
    );
    let oom = node.wait("hog to be OOM-killed", Duration::from_secs(60), || {
        let s = node.jsonpath(
            &["get", "pod", "hog"],
            "{.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
        );
        s.starts_with("Failed").then_some(s)
    });
    assert_eq!(oom, "Failed OOMKilled 137");
    c.ok(&["delete", "pod", "--all", "--grace-period=1"]);
    node.wait("the runtime to be empty", Duration::from_secs(20), || {
        node.ctr(&["containers", "ls", "-q"])
            .trim()
            .is_empty()
            .then_some(())
    });
}

/// The Python client's `stream()` exec (WebSocket `v4.channel.k8s.io`): output, exit
/// code from the status channel, and a terminal with a resize message.
const PY_EXEC: &str = r#"
import json, sys, time
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
resp = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="main",
              command=["sh", "-c", "echo py-out; echo py-err >&2; exit 2"],
              stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
resp.run_forever(timeout=30)
out, err = resp.read_stdout(), resp.read_stderr()
assert out == "py-out\n", repr(out)
assert err == "py-err\n", repr(err)
assert resp.returncode == 2, resp.returncode
resp.close()
resp = stream(v1.connect_get_namespaced_pod_exec, "shell", "default", container="main",
              # The runtime applies a resize asynchronously, and one sent before the
              # process exists may be lost: the client re-sends it until the shell sees it.
              command=["sh", "-c", "read l; for i in $(seq 300); do s=$(stty size 2>/dev/null) && [ \"$s\" = \"13 77\" ] && break; sleep 0.1; done; echo size:$s; echo got:$l"],
              stderr=True, stdin=True, stdout=True, tty=True, _preload_content=False)
resp.write_stdin("hi\n")
out = ""
deadline = time.time() + 30
while resp.is_open() and time.time() < deadline:
    if "size:" not in out:
        resp.write_channel(4, json.dumps({"Width": 77, "Height": 13}))
    resp.update(timeout=0.3)
    out += resp.read_stdout() if resp.peek_stdout() else ""
out += resp.read_stdout() if resp.peek_stdout() else ""
assert "size:13 77" in out and "got:hi" in out, repr(out)
assert resp.returncode == 0, resp.returncode
resp.close()
print("python exec ok")
"#;

/// kubectl's `-v=6` log of an exec/attach: WebSocket `v5.channel.k8s.io` was negotiated
/// and kubectl did not fall back to SPDY (client-go logs "RemoteCommand fallback").
fn assert_websocket_v5(log: &str) {
    assert!(
        !log.contains("RemoteCommand fallback")
            && log.contains(r#""Subprotocol negotiated" protocol="v5.channel.k8s.io""#),
        "{log}"
    );
}

#[test]
fn exec_attach_port_forward_and_stats_through_the_kubelet() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();
    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: shell, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir /www && echo pf-ok > /www/index.html && httpd -p 8080 -h /www && (nc -ll -p 9090 -e cat &) && sleep 3600"]
  - name: ticker
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: reader, namespace: default}}
spec:
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    stdin: true
    command: ["sh", "-c", "while read l; do echo got:$l; done"]
"#
    ));
    for pod in ["shell", "reader"] {
        node.wait(
            &format!("pod {pod} to run"),
            Duration::from_secs(60),
            || {
                let s = node.jsonpath(
                    &["get", "pod", pod],
                    r#"{.status.phase} {.status.conditions[?(@.type=="Ready")].status}"#,
                );
                (s == "Running True").then_some(())
            },
        );
    }

    // exec: stdout and stderr apart, the command's exit code becomes kubectl's. kubectl
    // speaks WebSocket v5.channel.k8s.io to the API server (which speaks SPDY to the
    // kubelet) and does not fall back to SPDY (its -v=6 log says which it used).
    let out = c.kubectl(&[
        "-v=6",
        "exec",
        "shell",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref(),
            stderr.lines().any(|l| l == "err")
        ),
        (Some(3), "out\n", true),
        "{stderr}\n{}",
        c.log()
    );
    assert_websocket_v5(&stderr);
    // stdin is carried and its end (v5's close signal) reaches the command.
    let out = c.kubectl_with(
        &[
            "-v=6",
            "exec",
            "-i",
            "shell",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ],
        Some("one\ntwo\n"),
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\ndone\n");
    assert_websocket_v5(&stderr);
    let out = c.kubectl_with(&["exec", "-i", "shell", "--", "cat"], Some("hi\n"), &[]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "hi\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A command the container lacks: the runtime's error, as upstream's translator
    // wraps it.
    let err = c.fails(&["exec", "shell", "-c", "main", "--", "/no-such-command"]);
    assert!(
        err.contains("Internal error occurred:") && err.contains("/no-such-command"),
        "{err}"
    );
    // A terminal (kubectl -t under a pty of 13x77): the size reaches the command
    // through the resize stream.
    let mut tty = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "stty rows 13 cols 77; {} --kubeconfig {} -v=6 exec -it shell -c main -- sh -c \
             'for i in $(seq 300); do s=$(stty size) && [ \"$s\" = \"13 77\" ] && break; sleep 0.1; done; echo size:$s'",
            support::kubectl_path().display(),
            c.kubeconfig.display()
        ))
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let keep_open = tty.stdin.take();
    let out = support::wait_with_timeout(tty, Duration::from_secs(60));
    drop(keep_open);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("size:13 77"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_websocket_v5(&text);
    // A container the pod does not have: upstream's message.
    let err = c.fails(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(
        err.contains("container nope is not valid for pod shell")
            || err.contains("container nope not found in pod shell"),
        "{err}"
    );

    // The Python client over WebSocket v4.channel.k8s.io.
    let py = Command::new(support::venv().join("bin/python"))
        .args(["-c", PY_EXEC])
        .arg(&c.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(py, Duration::from_secs(60));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("python exec ok"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // attach: the running container's output, and stdin into one that reads it.
    let attached = c.data_dir().join("attach.out");
    let mut attach = Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["-v=6", "attach", "shell", "-c", "ticker"])
        .stdout(std::fs::File::create(&attached).unwrap())
        .stderr(std::fs::File::create(c.data_dir().join("attach.err")).unwrap())
        .spawn()
        .unwrap();
    node.wait(
        "kubectl attach to print ticks",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&attached).unwrap_or_default();
            (text.matches("tick ").count() >= 2).then_some(())
        },
    );
    let _ = attach.kill();
    let _ = attach.wait();
    assert_websocket_v5(&std::fs::read_to_string(c.data_dir().join("attach.err")).unwrap());
    let piped = c.data_dir().join("attach-in.out");
    let mut attach = Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args(["-v=6", "attach", "-i", "reader"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&piped).unwrap())
        .stderr(std::fs::File::create(c.data_dir().join("attach-in.err")).unwrap())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = attach.stdin.take().unwrap();
        stdin.write_all(b"ping\n").unwrap();
        node.wait(
            "attached stdin to be echoed",
            Duration::from_secs(20),
            || {
                std::fs::read_to_string(&piped)
                    .unwrap_or_default()
                    .contains("got:ping")
                    .then_some(())
            },
        );
    }
    let _ = attach.kill();
    let _ = attach.wait();
    assert_websocket_v5(&std::fs::read_to_string(c.data_dir().join("attach-in.err")).unwrap());

    // port-forward: an HTTP request in, the pod's answer back, tunnelled through a
    // WebSocket (SPDY/3.1+portforward.k8s.io) without falling back to SPDY.
    let pf_out = c.data_dir().join("pf.out");
    let mut pf = Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .args([
            "-v=6",
            "port-forward",
            "pod/shell",
            ":8080",
            ":9090",
            "--address",
            "127.0.0.1",
        ])
        .stdout(std::fs::File::create(&pf_out).unwrap())
        .stderr(std::fs::File::create(c.data_dir().join("pf.err")).unwrap())
        .spawn()
        .unwrap();
    let local_port = |remote: &str| {
        node.wait(
            "kubectl port-forward to listen",
            Duration::from_secs(20),
            || {
                let text = std::fs::read_to_string(&pf_out).unwrap_or_default();
                text.lines()
                    .filter_map(|l| l.strip_prefix("Forwarding from 127.0.0.1:"))
                    .find_map(|l| l.strip_suffix(&format!(" -> {remote}")))
                    .map(str::to_owned)
            },
        )
    };
    let local = local_port("8080");
    let echo: u16 = local_port("9090").parse().unwrap();
    let fetched = node.wait(
        "a response through the forward",
        Duration::from_secs(20),
        || {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "5"])
                .arg(format!("http://127.0.0.1:{local}/index.html"))
                .output()
                .unwrap();
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    );
    assert_eq!(fetched, "pf-ok\n");
    // A MiB each way through an echo server in the pod.
    {
        use std::io::{Read, Write};
        let payload: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", echo)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut writer = conn.try_clone().unwrap();
        let sent = payload.clone();
        let writing = std::thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut echoed = vec![0u8; payload.len()];
        conn.read_exact(&mut echoed).unwrap();
        writing.join().unwrap();
        assert!(echoed == payload, "the echo differs from what was sent");
    }
    let _ = pf.kill();
    let _ = pf.wait();
    let pf_log = std::fs::read_to_string(c.data_dir().join("pf.err")).unwrap();
    assert!(
        pf_log.contains(r#""Negotiation complete" protocol="portforward.k8s.io""#),
        "{pf_log}"
    );

    // RBAC: reading pods is not exec; `get` on pods/exec without `create` is not either.
    let bob = c.user_kubeconfig("bob", &[]);
    c.create(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: viewer, namespace: default}
rules:
- {apiGroups: [""], resources: ["pods"], verbs: ["get", "list"]}
- {apiGroups: [""], resources: ["pods/exec"], verbs: ["get"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-viewer, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
"#,
    );
    let out = c.kubectl_as(&bob, &["exec", "shell", "-c", "main", "--", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bob could exec");
    assert!(
        err.contains(r#"User "bob" cannot create resource "pods/exec" in API group "" in the namespace "default""#),
        "{err}"
    );

    // The kubelet's stats and metrics through nodes/proxy.
    let summary: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{}/proxy/stats/summary", node.name),
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], node.name.as_str());
    assert!(
        summary["node"]["cpu"]["usageCoreNanoSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        summary["node"]["memory"]["workingSetBytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "shell")
        .unwrap_or_else(|| panic!("no shell pod in {summary}"));
    assert_eq!(pod["podRef"]["namespace"], "default");
    assert_eq!(pod["containers"].as_array().unwrap().len(), 2, "{pod}");
    assert!(
        pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0,
        "{pod}"
    );
    assert!(
        pod["memory"]["workingSetBytes"].as_u64().unwrap() > 0,
        "{pod}"
    );
    let metrics = c.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{}/proxy/metrics", node.name),
    ]);
    assert!(metrics.contains("kubelet_running_pods 2\n"), "{metrics}");
    assert!(
        metrics.contains("kubelet_running_containers{container_state=\"running\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE kubelet_pleg_relist_duration_seconds histogram"),
        "{metrics}"
    );
    let err = String::from_utf8_lossy(
        &c.kubectl_as(
            &bob,
            &[
                "get",
                "--raw",
                &format!("/api/v1/nodes/{}/proxy/metrics", node.name),
            ],
        )
        .stderr,
    )
    .into_owned();
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
}

/// An "outside" host for a test: its own network namespace joined to this one by a
/// veth pair (`HOST_IP` here, `OUTSIDE_IP` inside, a default route back). Deleting
/// the namespace on drop removes both ends.
struct OutsideHost {
    netns: String,
    host_ip: String,
    outside_ip: String,
}

impl OutsideHost {
    fn create() -> OutsideHost {
        let r = random();
        let netns = format!("rkout{:08x}", r);
        let veth = format!("rko{:08x}", r);
        // 198.18.0.0/15 is the benchmarking range: nothing real lives there.
        let net = format!("198.18.{}", r % 256);
        let (host_ip, outside_ip) = (format!("{net}.1"), format!("{net}.2"));
        let h = OutsideHost {
            netns: netns.clone(),
            host_ip: host_ip.clone(),
            outside_ip: outside_ip.clone(),
        };
        let ip = |args: &[&str]| {
            run(Command::new("ip").args(args));
        };
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{outside_ip}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        // A route back to anything, so an unmasqueraded pod address would connect too
        // (and the test would see it).
        ip(&["-n", &netns, "route", "add", "default", "via", &host_ip]);
        h
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Pod traffic to an address outside the pod range leaves with the node's address:
/// the kubelet's one masquerade rule for its pod CIDR (no per-pod CNI chains); a
/// listener on an "outside" host sees the node's address, not the pod's. The rule is
/// gone after the node's clean-up.
#[test]
fn pod_traffic_leaving_the_node_is_masqueraded() {
    let image = busybox_archive();
    let node = Node::start();
    let c = &node.cluster;
    node.wait_ready();

    // One rule for the node's range, jumped from POSTROUTING.
    let rules = run(Command::new("iptables").args(["-w", "5", "-t", "nat", "-S"]));
    let rule = format!(
        "-A RKUBE-POD-MASQ -s {0} ! -d {0} -m addrtype ! --dst-type MULTICAST -m comment --comment \"rkube: masquerade pods of bridge {1}\" -j MASQUERADE",
        node.cidr, node.bridge
    );
    assert!(rules.lines().any(|l| l == rule), "{rule}\nnot in\n{rules}");
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("-A POSTROUTING") && l.ends_with("-j RKUBE-POD-MASQ")),
        "{rules}"
    );

    let outside = OutsideHost::create();
    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.bind(('{}', 8080))\n\
         s.listen(1)\n\
         s.settimeout(50)\n\
         print('listening', flush=True)\n\
         conn, peer = s.accept()\n\
         conn.settimeout(10)\n\
         print(peer[0], conn.recv(100).decode().strip(), flush=True)\n",
        outside.outside_ip
    );
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &outside.netns, "python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(listener.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "listening");

    node.ctr(&["images", "import", &image.to_string_lossy()]);
    c.wait_for_default_sa("default");
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: leaves, namespace: default}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo from-pod | nc -w 10 {} 8080"]
"#,
        outside.outside_ip
    ));
    let out = support::wait_with_timeout(listener, Duration::from_secs(60));
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut seen).unwrap();
    assert!(
        out.status.success(),
        "listener: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    let pod_ip = node.wait("the pod's IP", Duration::from_secs(30), || {
        let ip = node.jsonpath(&["get", "pod", "leaves"], "{.status.podIP}");
        (!ip.is_empty()).then_some(ip)
    });
    assert_eq!(
        seen.trim(),
        format!("{} from-pod", outside.host_ip),
        "the outside host saw the pod as {seen:?} (pod IP {pod_ip})"
    );

    // The node's clean-up removes its rule.
    let (cidr, bridge) = (node.cidr.clone(), node.bridge.clone());
    drop(node);
    let rules = run(Command::new("iptables").args(["-w", "5", "-t", "nat", "-S"]));
    assert!(
        !rules.contains(&format!("bridge {bridge}\"")) && !rules.contains(&cidr),
        "{rules}"
    );
}
