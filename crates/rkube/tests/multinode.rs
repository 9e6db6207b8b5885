//! A second, real node on the same machine: `rkube agent` in its own network namespace
//! (reached over a veth pair the test makes) joins the server with a bootstrap token from
//! `rkube token create`, runs its own containerd, and runs a pod that kubectl reads the
//! logs of and execs into through the API server.
//!
//! Needs root and what `scripts/install-deps.sh` installs (containerd, runc, CNI plugins,
//! busybox-static, umoci, skopeo, iproute2); installs nothing itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rkube_testkit::images::BUSYBOX;
use support::Cluster;

fn run(cmd: &mut Command) -> String {
    rkube_testkit::images::run(cmd)
}

/// A random tag for this test's names and addresses.
fn random() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ (std::process::id() << 8)
}

/// A network namespace joined to the host by a veth pair (`host_ip` on the host side,
/// `node_ip` inside, a /30 of 10.250.0.0/14): the node's "machine". Deleted on drop,
/// which also removes the veth pair, the CNI bridge and every iptables rule made inside.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    node_ip: String,
}

impl Netns {
    fn create(tag: u32) -> Netns {
        let name = format!("rkmn-{tag:08x}");
        let host_if = format!("rkh{tag:08x}");
        let node_if = format!("rkn{tag:08x}");
        let base = format!(
            "10.{}.{}.{}",
            250 + (tag % 4),
            (tag >> 2) % 256,
            ((tag >> 10) % 64) * 4
        );
        let prefix = base.rsplit_once('.').unwrap().0.to_owned();
        let last: u32 = base.rsplit_once('.').unwrap().1.parse().unwrap();
        let ns = Netns {
            name,
            host_if,
            host_ip: format!("{prefix}.{}", last + 1),
            node_ip: format!("{prefix}.{}", last + 2),
        };
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &node_if,
        ]);
        ip(&["link", "set", &node_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{}/30", ns.node_ip),
            "dev",
            &node_if,
        ]);
        ip(&["-n", &ns.name, "link", "set", &node_if, "up"]);
        ns
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        // Gone with its peer; in case the namespace was not.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// `rkube agent` running inside the namespace (through `nsenter --net`, which keeps the
/// host's mounts and cgroups: `ip netns exec` would remount /sys and break runc).
struct Agent {
    child: Child,
    dir: PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the agent (and the containerd it stops) to exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "rkube agent ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `rkube agent` in `netns` with `args` appended to the common ones: the log goes
/// to `<dir>/agent.log` (appended).
fn agent_command(netns: &Netns, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.path()))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_rkube"))
        .arg("agent")
        .arg("--data-dir")
        .arg(dir)
        .args(args);
    cmd
}

fn start_agent(netns: &Netns, dir: &Path, args: &[&str]) -> Agent {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    let child = agent_command(netns, dir, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn nsenter rkube agent");
    Agent {
        child,
        dir: dir.to_owned(),
    }
}

/// Runs an agent that must fail; its stderr.
fn agent_fails(netns: &Netns, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    agent_fails_in(netns, dir.path(), args)
}

/// [`agent_fails`] with the data dir `dir`.
fn agent_fails_in(netns: &Netns, dir: &Path, args: &[&str]) -> String {
    let child = agent_command(netns, dir, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "rkube agent {args:?} should fail: {stderr}"
    );
    stderr
}

/// The whole second node: server on the veth's host address, the namespace, the agent's
/// data dir. On drop — success or failure — stops the agent and everything it started
/// (by the data dir on their command lines), unmounts under the data dir, deletes the
/// namespace, then stops the server.
struct TwoNodes {
    agent: Option<Agent>,
    node_dir: tempfile::TempDir,
    netns: Netns,
    cluster: Cluster,
}

impl TwoNodes {
    /// A server listening on the namespace's host side (with `server_args`), and a
    /// directory for the second node; the agent is started by the test.
    fn start(netns: Netns, server_args: &[&str]) -> TwoNodes {
        let cluster = Cluster::start_listening(
            tempfile::tempdir().unwrap(),
            &netns.host_ip.clone(),
            server_args,
            &[],
        );
        TwoNodes {
            agent: None,
            node_dir: tempfile::tempdir().unwrap(),
            netns,
            cluster,
        }
    }
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(a) = &self.agent {
                eprintln!("--- agent log ---\n{}", a.log());
            }
            eprintln!("--- server log ---\n{}", self.cluster.log());
            eprintln!(
                "--- node containerd log ---\n{}",
                std::fs::read_to_string(self.node_dir.path().join("containerd/containerd.log"))
                    .unwrap_or_default()
            );
        }
        self.agent.take();
        rkube_testkit::node::stop(self.node_dir.path());
    }
}

/// Polls `f` until it returns `Some`, up to `timeout`.
fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    String::from_utf8_lossy(&c.kubectl(&a).stdout).into_owned()
}

/// Whether `ip` is inside the IPv4 `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let ip: u32 = ip.parse::<std::net::Ipv4Addr>().unwrap().into();
    let net: u32 = net.parse::<std::net::Ipv4Addr>().unwrap().into();
    let bits: u32 = bits.parse().unwrap();
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    ip & mask == net & mask
}

#[test]
fn agent_joins_from_its_own_network_namespace_and_runs_pods() {
    let image = rkube_testkit::images::busybox_archive();
    let tag = random();
    let netns = Netns::create(tag);
    let cluster_cidr = format!("10.{}.0.0/16", 200 + (tag >> 12) % 40);
    let mut nodes = TwoNodes::start(netns, &["--cluster-cidr", &cluster_cidr]);
    let c = &nodes.cluster;
    let dir = nodes.node_dir.path().to_owned();
    let node = format!("mn-{:06x}", tag & 0xffffff);

    // The join command, as `kubeadm token create --print-join-command` prints it.
    let out = run(Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "token",
            "create",
            "--print-join-command",
            "--description",
            "e2e",
        ])
        .arg("--kubeconfig")
        .arg(&c.kubeconfig));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&words[..3], ["rkube", "agent", "--server"], "{out}");
    let server = format!("https://{}", c.addr);
    assert_eq!(words[3], server, "{out}");
    assert_eq!(words[4], "--token", "{out}");
    let token = words[5].to_owned();
    assert_eq!(words[6], "--discovery-token-ca-cert-hash", "{out}");
    let pin = words[7].to_owned();
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{out}");
    let (token_id, _) = token.split_once('.').unwrap();
    let listed = run(Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["token", "list", "--kubeconfig"])
        .arg(&c.kubeconfig));
    assert!(
        listed.contains(&format!("{token_id}.<secret>"))
            && listed.contains("authentication,signing")
            && listed.contains("system:bootstrappers:kubeadm:default-node-token"),
        "{listed}"
    );

    // Joins that cannot work say why, and quickly.
    let quick = ["--discovery-timeout", "2s", "--node-name", &node];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = quick.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let fails = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        agent_fails(&nodes.netns, &args)
    };
    let err = fails(&["--server", &server, "--token", "nosuch.0123456789abcdef"]);
    assert!(
        err.contains(
            "could not find a JWS signature in the cluster-info ConfigMap for token ID \"nosuch\""
        ),
        "{err}"
    );
    let wrong_secret = format!("{token_id}.0123456789abcdef");
    let err = fails(&["--server", &server, "--token", &wrong_secret]);
    assert!(
        err.contains("failed to verify JWS signature of received cluster info object, can't trust this API Server"),
        "{err}"
    );
    let other_pin = format!("sha256:{}", "ab".repeat(32));
    let err = fails(&[
        "--server",
        &server,
        "--token",
        &token,
        "--discovery-token-ca-cert-hash",
        &other_pin,
    ]);
    assert!(
        err.contains(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys"
        ),
        "{err}"
    );
    let closed = format!("https://{}:1", nodes.netns.host_ip);
    let err = fails(&["--server", &closed, "--token", &token]);
    assert!(
        err.contains(&format!(
            "cannot reach the API server at {closed} within 2s"
        )),
        "{err}"
    );
    let err = fails(&["--server", &server, "--token", "not-a-token"]);
    assert!(
        err.contains("the bootstrap token \"not-a-token\" was not of the form"),
        "{err}"
    );
    let err = fails(&["--server", &server]);
    assert!(err.contains("no bootstrap token to join with"), "{err}");

    // The real join: the node registers from inside the namespace, with its own
    // containerd, kubelet server on its InternalIP, podCIDR from node IPAM.
    let node_ip = nodes.netns.node_ip.clone();
    let agent_args = [
        "--server",
        &server,
        "--node-name",
        &node,
        "--node-ip",
        &node_ip,
    ];
    let mut first: Vec<&str> = agent_args.to_vec();
    first.extend(["--token", &token, "--discovery-token-ca-cert-hash", &pin]);
    nodes.agent = Some(start_agent(&nodes.netns, &dir, &first));
    let c = &nodes.cluster;
    wait(
        "the joined node to be Ready",
        Duration::from_secs(60),
        || {
            let reason = jsonpath(
                c,
                &["get", "node", &node],
                r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
            );
            (reason == "KubeletReady").then_some(())
        },
    );
    let addresses = jsonpath(
        c,
        &["get", "node", &node],
        r#"{.status.addresses[?(@.type=="InternalIP")].address} {.status.daemonEndpoints.kubeletEndpoint.Port}"#,
    );
    assert_eq!(addresses, format!("{node_ip} 10250"));
    let pod_cidr = jsonpath(c, &["get", "node", &node], "{.spec.podCIDR}");
    assert!(
        in_cidr(pod_cidr.split('/').next().unwrap(), &cluster_cidr),
        "{pod_cidr}"
    );

    // The certificate came by an auto-approved CSR from the token's user, and names the
    // node.
    let csrs = c.ok(&["get", "csr", "-o", "json"]);
    let csrs: serde_json::Value = serde_json::from_str(&csrs).unwrap();
    let csrs = csrs["items"].as_array().unwrap();
    assert_eq!(csrs.len(), 1, "{csrs:?}");
    let csr = &csrs[0];
    assert!(csr["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("node-csr-"));
    assert_eq!(
        csr["spec"]["username"],
        format!("system:bootstrap:{token_id}")
    );
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(csr["status"]["conditions"][0]["reason"], "AutoApproved");
    let kubeconfig = dir.join("kubelet.kubeconfig");
    let who = c.kubectl_as(
        &kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
    );
    let who = String::from_utf8_lossy(&who.stdout).into_owned();
    assert!(who.starts_with(&format!("system:node:{node} ")), "{who}");
    assert!(who.contains("system:nodes"), "{who}");
    assert!(!who.contains("system:masters"), "{who}");

    // A restart reuses the kubeconfig: no token, no second CSR.
    nodes.agent.take().unwrap().stop();
    nodes.agent = Some(start_agent(&nodes.netns, &dir, &agent_args));
    let c = &nodes.cluster;
    wait("the restarted kubelet", Duration::from_secs(30), || {
        let log = nodes.agent.as_ref().unwrap().log();
        (log.matches("kubelet started").count() == 2).then_some(())
    });
    let log = nodes.agent.as_ref().unwrap().log();
    assert!(log.contains("no bootstrap needed"), "{log}");
    assert_eq!(
        jsonpath(
            c,
            &["get", "csr"],
            "{range .items[*]}{.metadata.name}{\"\\n\"}{end}"
        )
        .lines()
        .count(),
        1
    );

    // A kubeconfig whose CA does not verify the server (another cluster's, here the
    // client CA) is refused with the fix.
    let other = tempfile::tempdir().unwrap();
    let b64 = |p: &Path| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())
    };
    let pki = c.data_dir().join("pki");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let swapped = text.replace(&b64(&pki.join("ca.crt")), &b64(&pki.join("client-ca.crt")));
    assert_ne!(swapped, text);
    std::fs::write(other.path().join("kubelet.kubeconfig"), swapped).unwrap();
    let err = agent_fails_in(&nodes.netns, other.path(), &agent_args);
    assert!(
        err.contains(&format!(
            "the API server at {server} does not present a certificate from the cluster CA"
        )),
        "{err}"
    );
    assert!(err.contains("join again with a new token"), "{err}");

    // The token is no longer needed: deleted, it is gone from the list.
    let out = run(Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["token", "delete", &token, "--kubeconfig"])
        .arg(&c.kubeconfig));
    assert_eq!(out, format!("bootstrap token {token_id:?} deleted\n"));
    let listed = run(Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["token", "list", "--kubeconfig"])
        .arg(&c.kubeconfig));
    assert!(!listed.contains(token_id), "{listed}");

    // A pod pinned to the node runs there from the node's own image store.
    run(Command::new("ctr")
        .arg("--address")
        .arg(dir.join("containerd/containerd.sock"))
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&image));
    c.create(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: far, namespace: default}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from $(hostname); exec sleep 3600"]
"#
    ));
    let pod_ip = wait("the pod to run", Duration::from_secs(60), || {
        let s = jsonpath(c, &["get", "pod", "far"], "{.status.phase} {.status.podIP}");
        match s.split_once(' ') {
            Some(("Running", ip)) if !ip.is_empty() => Some(ip.to_owned()),
            _ => None,
        }
    });
    assert!(in_cidr(&pod_ip, &pod_cidr), "{pod_ip} not in {pod_cidr}");
    assert_eq!(
        jsonpath(c, &["get", "pod", "far"], "{.status.hostIP}"),
        node_ip
    );
    // logs and exec go API server → the node's kubelet at its InternalIP.
    let logs = wait("the pod's log", Duration::from_secs(20), || {
        let out = c.kubectl(&["logs", "far"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    });
    assert_eq!(logs, "hello from far\n");
    let exec = c.ok(&[
        "exec",
        "far",
        "--",
        "sh",
        "-c",
        "echo $((6*7)); ip -4 -o addr show eth0",
    ]);
    let mut lines = exec.lines();
    assert_eq!(lines.next(), Some("42"), "{exec}");
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .contains(&format!("inet {pod_ip}/")),
        "{exec}"
    );

    c.ok(&["delete", "pod", "far", "--timeout=60s"]);
    let gone = c.kubectl(&["get", "pod", "far"]);
    assert!(!gone.status.success());
    // The node stopped its containers.
    wait(
        "the pod's containers removed",
        Duration::from_secs(30),
        || {
            let out = run(Command::new("ctr")
                .arg("--address")
                .arg(dir.join("containerd/containerd.sock"))
                .args(["--namespace", "k8s.io", "containers", "ls", "-q"]));
            out.trim().is_empty().then_some(())
        },
    );
}

/// The node's client certificate as (serial, notBefore, notAfter) from its kubeconfig.
fn node_certificate(kubeconfig: &Path) -> (String, i64, i64) {
    let parsed = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let data = parsed.auth_infos[0]
        .auth_info
        .as_ref()
        .and_then(|a| a.client_certificate_data.clone())
        .expect("client-certificate-data in the node's kubeconfig");
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .unwrap();
    let v = rkube_pki::bootstrap::certificate_validity(&String::from_utf8(pem).unwrap()).unwrap();
    (v.serial, v.not_before, v.not_after)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// With the signer's certificates valid for 30 s (`--cluster-signing-duration`), the
/// joined node renews its client certificate at 70–90% of its lifetime, before it
/// expires, by a CSR of its own that the approver auto-approves (`selfnodeclient`); the
/// kubeconfig then holds the new certificate, and the node keeps heartbeating and stays
/// Ready past the old one's expiry.
#[test]
fn agent_rotates_its_client_certificate_before_it_expires() {
    let tag = random();
    let netns = Netns::create(tag);
    let mut nodes = TwoNodes::start(netns, &["--cluster-signing-duration", "30s"]);
    let c = &nodes.cluster;
    let dir = nodes.node_dir.path().to_owned();
    let node = format!("rot-{:06x}", tag & 0xffffff);
    let token = run(Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["token", "create", "--kubeconfig"])
        .arg(&c.kubeconfig))
    .trim()
    .to_owned();
    let server = format!("https://{}", c.addr);
    let node_ip = nodes.netns.node_ip.clone();
    nodes.agent = Some(start_agent(
        &nodes.netns,
        &dir,
        &[
            "--server",
            &server,
            "--token",
            &token,
            "--node-name",
            &node,
            "--node-ip",
            &node_ip,
        ],
    ));
    let c = &nodes.cluster;
    let ready = || {
        jsonpath(
            c,
            &["get", "node", &node],
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
        ) == "KubeletReady"
    };
    wait(
        "the joined node to be Ready",
        Duration::from_secs(60),
        || ready().then_some(()),
    );
    let kubeconfig = dir.join("kubelet.kubeconfig");
    let (serial, not_before, not_after) = node_certificate(&kubeconfig);
    let lifetime = not_after - not_before;
    assert!((25..=35).contains(&lifetime), "lifetime {lifetime}s");

    // Renewed before the old certificate expires, with a later expiry.
    let (new_serial, new_not_before, new_not_after) = wait(
        "the client certificate to be renewed",
        Duration::from_secs(40),
        || Some(node_certificate(&kubeconfig)).filter(|(s, ..)| *s != serial),
    );
    assert!(new_not_after > not_after, "{new_not_after} <= {not_after}");
    assert!(
        new_not_before >= not_before + lifetime * 7 / 10 - 1 && new_not_before < not_after,
        "renewed at {new_not_before}, the old certificate valid {not_before}..{not_after}"
    );
    assert_ne!(new_serial, serial);
    let log = nodes.agent.as_ref().unwrap().log();
    assert!(log.contains("client certificate rotated"), "{log}");

    // The renewal's CSR: the node's own, auto-approved as a self-renewal, signed.
    let csrs: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "csr", "-o", "json"])).unwrap();
    let renewal = csrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|csr| {
            csr["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("csr-")
        })
        .unwrap_or_else(|| panic!("no renewal CSR: {csrs}"));
    assert_eq!(renewal["spec"]["username"], format!("system:node:{node}"));
    assert_eq!(
        renewal["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert_eq!(renewal["status"]["conditions"][0]["reason"], "AutoApproved");
    assert_eq!(
        renewal["status"]["conditions"][0]["message"],
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    );
    assert!(renewal["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    // The new kubeconfig is the node.
    let who = c.kubectl_as(
        &kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&who.stdout),
        format!("system:node:{node}")
    );

    // Heartbeats go on past the old certificate's expiry: the Lease is renewed after it,
    // and the node stays Ready.
    wait(
        "a Lease renewal after the old certificate expired",
        Duration::from_secs(40),
        || {
            let renewed = jsonpath(
                c,
                &["get", "lease", "-n", "kube-node-lease", &node],
                "{.spec.renewTime}",
            );
            let at = renewed.parse::<k8s_openapi::jiff::Timestamp>().ok()?;
            (at.as_second() > not_after).then_some(())
        },
    );
    assert!(unix_now() > not_after);
    assert!(ready(), "the node is not Ready after the rotation");
}
