//! The kubelet when its runtime or its network plugin hangs, on real containerd: a
//! runtime that stops answering makes the node NotReady with upstream's PLEG message and
//! pauses pod sync until it answers again; a CNI plugin that never returns fails the
//! sandbox at the runtime deadline while the node and its other pods carry on.
//!
//! Needs root and what `scripts/install-deps.sh` installs; installs nothing itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rkube_testkit::images::{busybox_archive, run, BUSYBOX};
use support::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

fn random() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ (std::process::id() << 8)
}

/// Copies `r` to `w`, holding bytes back while `hung` is true.
async fn pipe(
    mut r: impl AsyncReadExt + Unpin,
    mut w: impl AsyncWriteExt + Unpin,
    mut hung: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hung.wait_for(|h| !*h).await.is_err() || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// A Unix-socket proxy in front of containerd's CRI socket that can stop answering.
async fn cri_proxy(listener: UnixListener, target: PathBuf, hung: watch::Receiver<bool>) {
    while let Ok((conn, _)) = listener.accept().await {
        let (target, hung) = (target.clone(), hung.clone());
        tokio::spawn(async move {
            let Ok(upstream) = UnixStream::connect(&target).await else {
                return;
            };
            let (cr, cw) = conn.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::join!(pipe(cr, uw, hung.clone()), pipe(ur, cw, hung));
        });
    }
}

/// `rkube kubelet` against a cluster, in its own data dir, with its own containerd
/// (started by the kubelet, or by the test behind a proxy). On drop kills the kubelet
/// and containerd and removes what they left outside the dir.
struct Kubelet {
    name: String,
    data: tempfile::TempDir,
    bridge: String,
    cidr: String,
    process: Child,
    rt: Option<tokio::runtime::Runtime>,
    containerd: Option<rkube_kubelet::containerd::Containerd>,
}

impl Kubelet {
    fn socket(&self) -> PathBuf {
        self.data.path().join("containerd/containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> String {
        run(Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("kubelet.log")).unwrap_or_default()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let (Some(rt), Some(c)) = (self.rt.take(), self.containerd.take()) {
            rt.block_on(c.stop());
            rt.shutdown_background();
        }
        rkube_testkit::node::clean_up(self.data.path(), &self.bridge, &self.cidr);
    }
}

fn spawn_kubelet(
    cluster: &Cluster,
    data: &Path,
    name: &str,
    bridge: &str,
    cidr: &str,
    extra: &[&str],
) -> Child {
    let log = std::fs::File::create(data.join("kubelet.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rkube"))
        .arg("kubelet")
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--node-name",
            name,
            "--node-ip",
            "127.0.0.1",
            "--kubelet-port",
            "0",
        ])
        .args(["--cni-bridge", bridge, "--pod-cidr", cidr])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn names() -> (String, String, String) {
    let r = random();
    (
        format!("resilience-{:06x}", r & 0xffffff),
        format!("rkr{:08x}", r),
        format!("10.{}.{}.0/24", 100 + r % 100, (r >> 8) % 256),
    )
}

/// Polls `f` until it returns `Some`, up to `timeout`.
fn wait<T>(
    cluster: &Cluster,
    k: &Kubelet,
    what: &str,
    timeout: Duration,
    f: impl FnMut() -> Option<T>,
) -> T {
    support::poll(what, timeout, f, || {
        format!(
            "--- events ---\n{}\n--- kubelet log ---\n{}",
            String::from_utf8_lossy(&cluster.kubectl(&["get", "events", "-A"]).stdout),
            k.log()
        )
    })
}

fn jsonpath(cluster: &Cluster, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    String::from_utf8_lossy(&cluster.kubectl(&a).stdout).into_owned()
}

/// The node's Ready condition as (status, reason, message).
fn ready(cluster: &Cluster, node: &str) -> (String, String, String) {
    let s = jsonpath(
        cluster,
        &["get", "node", node],
        r#"{.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}"#,
    );
    let mut parts = s.splitn(3, '|').map(str::to_owned);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

fn lease_renew_time(cluster: &Cluster, node: &str) -> String {
    jsonpath(
        cluster,
        &["get", "lease", "-n", "kube-node-lease", node],
        "{.spec.renewTime}",
    )
}

fn pod_yaml(name: &str, node: &str, host_network: bool) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default}}
spec:
  nodeName: {node}
  hostNetwork: {host_network}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, "3600"]
"#
    )
}

fn phase(cluster: &Cluster, pod: &str) -> String {
    jsonpath(cluster, &["get", "pod", pod], "{.status.phase}")
}

/// Checks the PLEG message: `pleg was last seen active <Go duration> ago; threshold is 5s`.
fn is_pleg_message(msg: &str) -> bool {
    let Some(rest) = msg.strip_prefix("PLEG is not healthy: pleg was last seen active ") else {
        return false;
    };
    let Some(d) = rest.strip_suffix(" ago; threshold is 5s") else {
        return false;
    };
    // A Go duration of at least 5 s: e.g. 7.123456789s or 1m2.5s.
    !d.is_empty()
        && d.ends_with('s')
        && !d.ends_with("ms")
        && d.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'm' | 's' | 'h'))
}

/// containerd stops answering (a proxy in front of its socket holds every byte): once
/// the last relist is older than the threshold (5 s here), the node turns NotReady with
/// upstream's PLEG message while the Lease keeps being renewed, a new pod is not synced;
/// when containerd answers again the node is Ready and the pod runs.
#[test]
fn hung_runtime_makes_the_node_not_ready_until_it_answers() {
    let cluster = Cluster::start(&[]);
    let (name, bridge, cidr) = names();
    let data = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let layout = rkube_kubelet::containerd::Layout::new(data.path());
    let (containerd, _) = rt
        .block_on(rkube_kubelet::containerd::Containerd::start(
            layout.clone(),
            Duration::from_secs(10),
        ))
        .expect("containerd starts (run scripts/install-deps.sh)");
    rkube_kubelet::cni::write(
        &layout.cni_conf_dir,
        &cidr,
        &bridge,
        &data.path().join("cni/ipam"),
    )
    .unwrap();
    let proxy_socket = data.path().join("cri-proxy.sock");
    let (hang, hung) = watch::channel(false);
    let listener = {
        let _guard = rt.enter();
        UnixListener::bind(&proxy_socket).unwrap()
    };
    rt.spawn(cri_proxy(listener, layout.socket.clone(), hung));
    let endpoint = format!("unix://{}", proxy_socket.display());
    let process = spawn_kubelet(
        &cluster,
        data.path(),
        &name,
        &bridge,
        &cidr,
        &[
            "--container-runtime-endpoint",
            &endpoint,
            "--pleg-relist-threshold",
            "5s",
            "--runtime-request-timeout",
            "3s",
        ],
    );
    let k = Kubelet {
        name: name.clone(),
        data,
        bridge,
        cidr,
        process,
        rt: Some(rt),
        containerd: Some(containerd),
    };
    k.ctr(&["images", "import", busybox_archive().to_str().unwrap()]);
    wait(
        &cluster,
        &k,
        "the node to be Ready",
        Duration::from_secs(60),
        || (ready(&cluster, &k.name).1 == "KubeletReady").then_some(()),
    );
    cluster.create(&pod_yaml("before", &k.name, false));
    wait(
        &cluster,
        &k,
        "pod before to run",
        Duration::from_secs(60),
        || (phase(&cluster, "before") == "Running").then_some(()),
    );

    hang.send_replace(true);
    let (_, reason, message) = wait(
        &cluster,
        &k,
        "the node to be NotReady",
        Duration::from_secs(60),
        || Some(ready(&cluster, &k.name)).filter(|r| r.0 == "False"),
    );
    assert_eq!(reason, "KubeletNotReady");
    assert!(is_pleg_message(&message), "{message}");

    // The Lease and node status loops do not wait on the runtime; a new pod is not synced.
    cluster.create(&pod_yaml("during", &k.name, false));
    let renewed = lease_renew_time(&cluster, &k.name);
    wait(
        &cluster,
        &k,
        "a lease renewal",
        Duration::from_secs(40),
        || (lease_renew_time(&cluster, &k.name) != renewed).then_some(()),
    );
    assert_eq!(ready(&cluster, &k.name).0, "False");
    assert_eq!(
        jsonpath(
            &cluster,
            &["get", "pod", "during"],
            "{.status.containerStatuses}"
        ),
        "",
        "the kubelet synced a pod while the PLEG was unhealthy"
    );

    hang.send_replace(false);
    wait(
        &cluster,
        &k,
        "the node to be Ready again",
        Duration::from_secs(60),
        || (ready(&cluster, &k.name).1 == "KubeletReady").then_some(()),
    );
    wait(
        &cluster,
        &k,
        "pod during to run",
        Duration::from_secs(60),
        || (phase(&cluster, "during") == "Running").then_some(()),
    );
    assert_eq!(phase(&cluster, "before"), "Running");
    cluster.ok(&["delete", "pod", "before", "during", "--timeout=60s"]);
}

/// A CNI plugin that never returns: containerd's RunPodSandbox hangs in it, the
/// kubelet's runtime deadline (4 s here) fails the sandbox with upstream's event, the
/// plugin is killed, and the node stays Ready with its host-network pod running.
#[test]
fn hung_cni_plugin_fails_the_sandbox_at_the_deadline() {
    let cluster = Cluster::start(&[]);
    let (name, bridge, cidr) = names();
    let data = tempfile::tempdir().unwrap();
    let bin = data.path().join("cni-bin");
    let conf = data.path().join("cni-conf");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    std::os::unix::fs::symlink("/usr/lib/cni/loopback", bin.join("loopback")).unwrap();
    let plugin = bin.join("hang");
    std::fs::write(
        &plugin,
        r#"#!/bin/sh
case "$CNI_COMMAND" in
ADD) while true; do sleep 1; done ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        conf.join("10-hang.conflist"),
        r#"{"cniVersion":"1.0.0","name":"hang","plugins":[{"type":"hang"}]}"#,
    )
    .unwrap();
    let process = spawn_kubelet(
        &cluster,
        data.path(),
        &name,
        &bridge,
        &cidr,
        &[
            "--cni-bin-dir",
            bin.to_str().unwrap(),
            "--cni-conf-dir",
            conf.to_str().unwrap(),
            "--runtime-request-timeout",
            "4s",
        ],
    );
    let k = Kubelet {
        name: name.clone(),
        data,
        bridge,
        cidr,
        process,
        rt: None,
        containerd: None,
    };
    wait(
        &cluster,
        &k,
        "the node to be Ready",
        Duration::from_secs(60),
        || (ready(&cluster, &k.name).1 == "KubeletReady").then_some(()),
    );
    k.ctr(&["images", "import", busybox_archive().to_str().unwrap()]);
    cluster.create(&pod_yaml("steady", &k.name, true));
    wait(
        &cluster,
        &k,
        "pod steady to run",
        Duration::from_secs(60),
        || (phase(&cluster, "steady") == "Running").then_some(()),
    );

    cluster.create(&pod_yaml("stuck", &k.name, false));
    // Retries while containerd still tears down the first attempt are refused with
    // "failed to reserve sandbox name"; the first attempt's event is the deadline's:
    // the kubelet's own, or containerd's when its answer comes first.
    let is_deadline = |e: &str| {
        e == "Warning kubelet: Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
            || (e.starts_with("Warning kubelet: Failed to create pod sandbox: rpc error: code = ")
                && e.ends_with("context deadline exceeded"))
    };
    wait(
        &cluster,
        &k,
        "a FailedCreatePodSandBox event at the deadline",
        Duration::from_secs(60),
        || {
            let list: serde_json::Value = serde_json::from_str(&cluster.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=stuck,reason=FailedCreatePodSandBox",
                "-o",
                "json",
            ]))
            .unwrap();
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{} {}: {}",
                        e["type"].as_str().unwrap_or_default(),
                        e["source"]["component"].as_str().unwrap_or_default(),
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .any(|e| is_deadline(&e))
                .then_some(())
        },
    );
    assert_eq!(phase(&cluster, "stuck"), "Pending");
    let (status, reason, message) = ready(&cluster, &k.name);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "KubeletReady"),
        "{message}"
    );
    assert_eq!(phase(&cluster, "steady"), "Running");

    // Deleting the pod ends the retries; containerd killed the plugin at the deadline.
    cluster.ok(&["delete", "pod", "stuck", "--timeout=60s"]);
    let plugin = plugin.display().to_string();
    wait(
        &cluster,
        &k,
        "no hung plugin left",
        Duration::from_secs(30),
        || {
            let left = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                String::from_utf8_lossy(
                    &std::fs::read(e.path().join("cmdline")).unwrap_or_default(),
                )
                .contains(&plugin)
            });
            (!left).then_some(())
        },
    );
    assert_eq!(phase(&cluster, "steady"), "Running");
    cluster.ok(&["delete", "pod", "steady", "--timeout=60s"]);
}
