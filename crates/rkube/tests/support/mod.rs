//! A real `rkube server` for end-to-end tests, driven by the real kubectl 1.37 and the
//! Python `kubernetes` client from the venv that `scripts/install-deps.sh` creates.
#![allow(dead_code)]

pub mod hollow;

#[allow(unused_imports)]
pub use hollow::HollowNodes;

/// Server flags for tests that count a namespace's ConfigMaps: every namespace otherwise
/// has the `kube-root-ca.crt` ConfigMap the root CA publisher makes, as upstream.
pub const WITHOUT_ROOT_CA_CONFIGMAPS: &[&str] = &["--controllers=*,-root-ca-cert-publisher"];

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The venv with kubectl and the Python client.
pub fn venv() -> PathBuf {
    PathBuf::from(std::env::var("RKUBE_VENV").unwrap_or_else(|_| "/var/cache/rkube-venv".into()))
}

pub fn kubectl_path() -> PathBuf {
    let path = venv().join("bin/kubectl");
    assert!(
        path.exists(),
        "kubectl not found at {} (run scripts/install-deps.sh)",
        path.display()
    );
    path
}

/// A running server, killed (by PID) when dropped.
///
/// With `RKUBE_TEST_DATASTORE=etcd` every cluster runs on its own real etcd (started and
/// stopped here) instead of the embedded SQLite store, so the whole suite can be run
/// against both backends.
pub struct Cluster {
    child: Child,
    etcd: Option<rkube_testkit::EtcdCluster>,
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub fn start(extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Cluster {
        Self::start_with_env(dir, extra, &[])
    }

    /// [`Cluster::start_in`] with extra environment variables for the server.
    pub fn start_with_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        Self::start_listening(dir, "127.0.0.1", extra, env)
    }

    /// A server listening on `ip` (an address of an interface the test made, such as a
    /// veth towards a node's network namespace) instead of loopback.
    pub fn start_listening(
        dir: tempfile::TempDir,
        ip: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Cluster {
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let etcd = match std::env::var("RKUBE_TEST_DATASTORE").as_deref() {
            Ok("etcd")
                if !extra.contains(&"--datastore-endpoint") && !extra.contains(&"--store") =>
            {
                Some(rkube_testkit::EtcdCluster::start(1).expect("start etcd"))
            }
            _ => None,
        };
        // The server's port is picked once etcd holds its own, so the two cannot draw the
        // same free port (this collided once in CI).
        let addr = format!("{ip}:{}", rkube_testkit::free_port());
        let endpoints = etcd.as_ref().map(|e| e.client_endpoints().join(","));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
        cmd.args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &addr])
            .args(extra)
            .envs(env.iter().copied());
        if let Some(endpoints) = &endpoints {
            cmd.args(["--datastore-endpoint", endpoints]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rkube");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let mut cluster = Cluster {
            child,
            etcd,
            dir,
            addr,
            kubeconfig,
        };
        cluster.wait_ready();
        // Pods need their namespace's `default` ServiceAccount (the ServiceAccount
        // admission), which the in-process serviceaccount-controller makes just after
        // start: wait for it in `default`, as a cluster is not usable before.
        let controllers_off = extra.contains(&"--disable-controller-manager")
            || extra
                .iter()
                .any(|a| a.contains("--controllers") && a.contains("serviceaccount"))
            || extra
                .windows(2)
                .any(|w| w[0] == "--controllers" && w[1].contains("serviceaccount"));
        if !controllers_off {
            cluster.wait_for_default_sa("default");
        }
        cluster
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("rkube server exited with {status}: {}", self.log());
            }
            if self.kubeconfig.exists()
                && self.kubectl(&["get", "--raw", "/readyz"]).status.success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rkube server did not become ready: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None, &[])
    }

    /// Runs kubectl with optional stdin and extra environment.
    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .envs(env.iter().copied());
        cmd.env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        wait_with_timeout(child, Duration::from_secs(60))
    }

    /// Runs kubectl and returns stdout, panicking with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Waits (up to 20 s) until namespace `ns` has its `default` ServiceAccount, which the
    /// serviceaccount-controller makes; pods can only be created after it exists.
    pub fn wait_for_default_sa(&self, ns: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if self
                .kubectl(&["get", "serviceaccount", "default", "-n", ns])
                .status
                .success()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "namespace {ns} has no default service account after 20 s\n--- server log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail, printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Applies YAML from stdin with `kubectl create -f -`.
    pub fn create(&self, yaml: &str) -> String {
        let out = self.kubectl_with(&["create", "-f", "-"], Some(yaml), &[]);
        assert!(
            out.status.success(),
            "kubectl create failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a kubeconfig for user `name` in `groups` (at most one), with a client
    /// certificate issued by this cluster's CA (also written as `<name>.crt`/`.key` in the
    /// data dir, `:` replaced by `_`); returns its path.
    pub fn user_kubeconfig(&self, name: &str, groups: &[&str]) -> PathBuf {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let pki = rkube_pki::ClusterPki::load_or_create(
            &self.dir.path().join("pki"),
            &rkube_pki::ServingNames::new(hostname),
        )
        .expect("load the cluster PKI");
        let cert = pki
            .issue_client_cert(name, groups, Duration::from_secs(3600))
            .expect("issue a client certificate");
        let stem = name.replace(':', "_");
        std::fs::write(self.dir.path().join(format!("{stem}.crt")), cert.cert_pem()).unwrap();
        std::fs::write(self.dir.path().join(format!("{stem}.key")), cert.key_pem()).unwrap();
        let path = self.dir.path().join(format!("{stem}.kubeconfig"));
        rkube_pki::write_kubeconfig(
            &path,
            &rkube_pki::KubeconfigSpec {
                cluster_name: "rkube",
                server_url: &format!("https://{}", self.addr),
                ca_pem: pki.ca_cert_pem(),
                user_name: name,
                client_cert_pem: cert.cert_pem(),
                client_key_pem: cert.key_pem(),
                namespace: None,
            },
        )
        .expect("write the kubeconfig");
        path
    }

    /// Runs kubectl with another kubeconfig (a user's, from [`Cluster::user_kubeconfig`]).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = Command::new(kubectl_path());
        cmd.args(&all)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_with_timeout(cmd.spawn().expect("spawn kubectl"), Duration::from_secs(60))
    }

    /// Whether this cluster runs on etcd (see [`Cluster`]).
    pub fn on_etcd(&self) -> bool {
        self.etcd.is_some()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGTERM and waits for a clean exit.
    /// Hands back the data dir too.
    pub fn stop(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
                return (status, dir);
            }
            assert!(Instant::now() < deadline, "rkube server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The etcd cluster (if any) stops after the server, when its field drops.
    }
}

/// Extra server flags for a test that restarts its server: in etcd mode, the etcd it must
/// keep across restarts (hold the returned guard) and the flag pointing at it.
pub fn persistent_datastore() -> (Option<rkube_testkit::EtcdCluster>, Vec<String>) {
    match std::env::var("RKUBE_TEST_DATASTORE").as_deref() {
        Ok("etcd") => {
            let etcd = rkube_testkit::EtcdCluster::start(1).expect("start etcd");
            let flags = vec![
                "--datastore-endpoint".to_owned(),
                etcd.client_endpoints().join(","),
            ];
            (Some(etcd), flags)
        }
        _ => (None, Vec::new()),
    }
}

/// Polls `f` every 200 ms until it returns `Some`; after `timeout`, fails with
/// `diagnostics`.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    diagnostics: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for a child, killing it after `timeout`.
pub fn wait_with_timeout(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait for child"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("command (pid {pid}) did not finish within {timeout:?}");
        }
    }
}

/// Runs curl with the admin certificate; returns (HTTP code, body).
pub fn curl(
    c: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&[u8]>,
    extra: &[&str],
) -> (u16, String) {
    let (code, body) = curl_bytes(c, method, path, content_type, body, extra);
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// [`curl`] for binary bodies (protobuf): returns (HTTP code, body bytes).
pub fn curl_bytes(
    c: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&[u8]>,
    extra: &[&str],
) -> (u16, Vec<u8>) {
    let pki = c.data_dir().join("pki");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .arg("--cert")
        .arg(pki.join("admin.crt"))
        .arg("--key")
        .arg(pki.join("admin.key"))
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(extra);
    let body_file = tempfile::NamedTempFile::new().unwrap();
    if let Some(body) = body {
        std::fs::write(body_file.path(), body).unwrap();
        cmd.arg("--data-binary")
            .arg(format!("@{}", body_file.path().display()));
    }
    cmd.arg(format!("https://{}{path}", c.addr));
    let out = cmd.output().expect("curl");
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&text[(split + 1).min(text.len())..])
        .trim()
        .parse()
        .unwrap_or(0);
    (code, text[..split].to_vec())
}

/// Runs curl with only the cluster CA (no client certificate) and, when given, a bearer
/// token; returns (HTTP code, body).
pub fn curl_token(
    c: &Cluster,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    extra_headers: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(c.data_dir().join("pki").join("ca.crt"))
        .args(["-H", "Content-Type: application/json"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    for h in extra_headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = body {
        cmd.args(["--data-binary", body]);
    }
    cmd.arg(format!("https://{}{path}", c.addr));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

impl Cluster {
    /// Runs kubectl with a kubeconfig that has the server and CA but no credentials, and
    /// `--token token`.
    pub fn kubectl_token(&self, token: &str, args: &[&str]) -> Output {
        let path = self.dir.path().join("token.kubeconfig");
        if !path.exists() {
            let ca = self.dir.path().join("pki").join("ca.crt");
            std::fs::write(
                &path,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://{}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n",
                    self.addr,
                    ca.display()
                ),
            )
            .unwrap();
        }
        let mut cmd = Command::new(kubectl_path());
        cmd.arg("--kubeconfig")
            .arg(&path)
            .arg("--token")
            .arg(token)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_with_timeout(cmd.spawn().expect("spawn kubectl"), Duration::from_secs(60))
    }
}

/// Waits (up to 30 s) until at least `n` nodes report Ready=True.
pub fn wait_nodes_ready(c: &Cluster, n: usize) {
    wait_for(
        c,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{\"\\n\"}{end}",
        ],
        &format!("{n} ready nodes"),
        |out| out.lines().filter(|l| *l == "True").count() >= n,
    );
}

/// Waits (up to 30 s) until pod `pod` (default namespace) is bound; returns its node.
pub fn node_of(c: &Cluster, pod: &str) -> String {
    wait_for(
        c,
        &["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"],
        &format!("pod {pod} to be bound"),
        |out| !out.is_empty(),
    )
}

/// Polls `kubectl args` until its output satisfies `check` (up to 30 s); returns the
/// last output.
pub fn wait_for(c: &Cluster, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
    wait_for_within(c, Duration::from_secs(30), args, what, check)
}

/// [`wait_for`] with a chosen timeout.
pub fn wait_for_within(
    c: &Cluster,
    timeout: Duration,
    args: &[&str],
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = c.kubectl(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && check(&text) {
            return text;
        }
        if Instant::now() > deadline {
            let hollow =
                std::fs::read_to_string(c.data_dir().join("hollow.log")).unwrap_or_default();
            panic!(
                "timed out waiting for {what}: last output {text:?} {}\n--- server log ---\n{}\n--- hollow nodes ---\n{hollow}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
