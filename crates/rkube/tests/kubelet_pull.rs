//! The kubelet's image pulls with credentials, pods' resolv.conf and static pods, on real
//! containerd: a real `docker-registry` (TLS from a test CA given to containerd through
//! `certs.d`, htpasswd or token auth with a small token server) on random loopback
//! ports, started and stopped by the test.
//!
//! Needs root and what `scripts/install-deps.sh` installs (containerd, runc, CNI plugins,
//! busybox-static, umoci, skopeo, docker-registry, apache2-utils, openssl, python3-jwt).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;

use rkube_testkit::images::{busybox_archive, run, BUSYBOX};

fn random() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ (std::process::id() << 8)
}

/// A process the test started, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `port`.
fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A token server for the distribution token auth spec: GET with Basic auth (skopeo)
/// and POST with an OAuth2 password grant (containerd); RS256 JWTs with the signing
/// certificate in `x5c`. Logs every token it issues (user, method) to stderr.
const TOKEN_SERVER: &str = r#"
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
port, key_file, cert_file, user, password = sys.argv[1:6]
KEY = open(key_file, 'rb').read()
CERT = x509.load_pem_x509_certificate(open(cert_file, 'rb').read())
X5C = base64.b64encode(CERT.public_bytes(serialization.Encoding.DER)).decode()
def token(sub, scopes, service):
    access = []
    for s in scopes:
        parts = s.split(':')
        access.append({'type': parts[0], 'name': ':'.join(parts[1:-1]), 'actions': parts[-1].split(',')})
    now = int(time.time())
    claims = {'iss': 'rkube-test', 'sub': sub, 'aud': service, 'exp': now + 300, 'nbf': now - 10,
              'iat': now, 'jti': str(uuid.uuid4()), 'access': access}
    return jwt.encode(claims, KEY, algorithm='RS256', headers={'x5c': [X5C]})
class H(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        a = self.headers.get('Authorization', '')
        u, _, p = base64.b64decode(a[6:]).decode().partition(':') if a.startswith('Basic ') else ('', '', '')
        if (u, p) != (user, password):
            sys.stderr.write(f'DENIED GET user={u}\n'); sys.stderr.flush()
            return self.reply(401, {'error': 'bad credentials'})
        sys.stderr.write(f'TOKEN GET user={u}\n'); sys.stderr.flush()
        t = token(u, q.get('scope', []), q.get('service', [''])[0])
        self.reply(200, {'token': t, 'access_token': t, 'expires_in': 300})
    def do_POST(self):
        f = parse_qs(self.rfile.read(int(self.headers.get('Content-Length', 0))).decode())
        u, p = f.get('username', [''])[0], f.get('password', [''])[0]
        if f.get('grant_type', [''])[0] != 'password' or (u, p) != (user, password):
            sys.stderr.write(f'DENIED POST user={u}\n'); sys.stderr.flush()
            return self.reply(401, {'error': 'bad credentials'})
        sys.stderr.write(f'TOKEN POST user={u}\n'); sys.stderr.flush()
        scopes = ' '.join(f.get('scope', [])).split()
        self.reply(200, {'access_token': token(u, scopes, f.get('service', [''])[0]), 'expires_in': 300})
    def log_message(self, *args):
        pass
HTTPServer(('127.0.0.1', int(port)), H).serve_forever()
"#;

/// How the registry checks clients.
enum Auth {
    Htpasswd,
    Token,
}

/// A TLS registry on a random loopback port holding `team/busybox:1`, user `alice`.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    _procs: Vec<Proc>,
}

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

impl Registry {
    fn start(auth: Auth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(d).args(args));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=rkube-test-registry-ca",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "reg.key",
            "-out",
            "reg.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "reg.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "reg.crt",
            "-days",
            "1",
            "-extfile",
            "ext",
        ]);
        let port = rkube_testkit::free_port();
        let mut procs = Vec::new();
        let auth_yaml = match auth {
            Auth::Htpasswd => {
                let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(d.join("htpasswd"), line).unwrap();
                format!(
                    "  htpasswd:\n    realm: rkube-test\n    path: {}\n",
                    d.join("htpasswd").display()
                )
            }
            Auth::Token => {
                openssl(&[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "tok.key",
                    "-out",
                    "tok.crt",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=rkube-test-token-signer",
                ]);
                std::fs::write(d.join("token_server.py"), TOKEN_SERVER).unwrap();
                let token_port = rkube_testkit::free_port();
                let log = std::fs::File::create(d.join("token.log")).unwrap();
                let child = Command::new("/usr/bin/python3")
                    .current_dir(d)
                    .args([
                        "token_server.py",
                        &token_port.to_string(),
                        "tok.key",
                        "tok.crt",
                    ])
                    .args([USER, PASSWORD])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("python3 (with python3-jwt) for the token server");
                procs.push(Proc(child));
                wait_listening(token_port, "the token server", &d.join("token.log"));
                format!(
                    "  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: rkube-test-registry\n    issuer: rkube-test\n    rootcertbundle: {}\n",
                    d.join("tok.crt").display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {crt}\n    key: {key}\nauth:\n{auth_yaml}",
            data = d.join("data").display(),
            crt = d.join("reg.crt").display(),
            key = d.join("reg.key").display(),
        );
        std::fs::write(d.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(d.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", "config.yml"])
            .current_dir(d)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (run scripts/install-deps.sh)");
        procs.push(Proc(child));
        wait_listening(port, "the registry", &d.join("registry.log"));
        let r = Registry {
            dir,
            port,
            _procs: procs,
        };
        // skopeo reads every `*.key` in its cert dir as a client key: give it the CA alone.
        let trust = d.join("skopeo-certs");
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(d.join("ca.crt"), trust.join("ca.crt")).unwrap();
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-creds",
            &format!("{USER}:{PASSWORD}"),
            "--dest-cert-dir",
            &trust.display().to_string(),
            &format!("docker-archive:{}", busybox_archive().display()),
            &format!("docker://{}", r.image()),
        ]));
        r
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn image(&self) -> String {
        format!("{}/team/busybox:1", self.host())
    }

    /// Tells the node's containerd to trust the test CA for this registry.
    fn trust_on(&self, node: &Node) {
        let dir = node
            .cluster
            .data_dir()
            .join("containerd/certs.d")
            .join(self.host());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"https://{h}\"\n\n[host.\"https://{h}\"]\n  ca = \"{ca}\"\n",
                h = self.host(),
                ca = self.dir.path().join("ca.crt").display()
            ),
        )
        .unwrap();
    }

    fn token_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token.log")).unwrap_or_default()
    }
}

/// A server running a local node on its own containerd; cleans up as kubelet.rs's does.
struct Node {
    cluster: Cluster,
    name: String,
    bridge: String,
    cidr: String,
}

impl Node {
    fn start(extra: &[&str]) -> Node {
        let r = random();
        let name = format!("pull-e2e-{:06x}", r & 0xffffff);
        let bridge = format!("rkp{:08x}", r);
        let cidr = format!("10.{}.{}.0/24", 100 + r % 100, (r >> 8) % 256);
        let mut args = vec![
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
        ];
        args.extend(extra);
        let cluster = Cluster::start(&args);
        let node = Node {
            cluster,
            name,
            bridge,
            cidr,
        };
        node.wait("the node to be Ready", Duration::from_secs(60), || {
            let reason = node.jsonpath(
                &["get", "node", &node.name],
                r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
            );
            (reason == "KubeletReady").then_some(())
        });
        node
    }

    fn wait<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        support::poll(what, timeout, f, || {
            format!(
                "--- events ---\n{}\n--- pods ---\n{}\n--- server log ---\n{}\n--- containerd log ---\n{}",
                String::from_utf8_lossy(&self.cluster.kubectl(&["get", "events", "-A"]).stdout),
                String::from_utf8_lossy(&self.cluster.kubectl(&["get", "pods", "-A", "-o", "yaml"]).stdout),
                self.cluster.log(),
                std::fs::read_to_string(self.cluster.data_dir().join("containerd/containerd.log"))
                    .unwrap_or_default()
            )
        })
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut a = args.to_vec();
        let p = format!("jsonpath={path}");
        a.extend(["-o", &p]);
        String::from_utf8_lossy(&self.cluster.kubectl(&a).stdout).into_owned()
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
                    e["type"].as_str().unwrap_or_default(),
                    e["reason"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    fn has_event(&self, pod: &str, f: impl Fn(&str) -> bool, what: &str) -> String {
        self.wait(
            &format!("event {what} about {pod}"),
            Duration::from_secs(20),
            || self.events(pod).into_iter().find(|e| f(e)),
        )
    }

    fn wait_phase(&self, pod: &str, phase: &str) {
        self.wait(
            &format!("pod {pod} to be {phase}"),
            Duration::from_secs(45),
            || (self.jsonpath(&["get", "pod", pod], "{.status.phase}") == phase).then_some(()),
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        rkube_testkit::node::clean_up(self.cluster.data_dir(), &self.bridge, &self.cidr);
    }
}

/// Every waiting reason pods in `default` show, from a `kubectl get pods --watch`
/// started before they exist: short-lived states (ErrImagePull) cannot be missed.
struct WaitingWatch {
    /// Killed on drop.
    _child: Proc,
    lines: std::sync::mpsc::Receiver<String>,
}

impl WaitingWatch {
    fn start(node: &Node) -> WaitingWatch {
        let mut child = Command::new(support::kubectl_path())
            .arg("--kubeconfig")
            .arg(&node.cluster.kubeconfig)
            .args([
                "get",
                "pods",
                "--watch",
                "-o",
                r#"jsonpath={.metadata.name}|{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}{"\n"}"#,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        WaitingWatch {
            _child: Proc(child),
            lines,
        }
    }

    /// The message of `pod`'s first update waiting with `reason`.
    fn wait(&self, node: &Node, pod: &str, reason: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(45);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let mut parts = line.splitn(3, '|');
                    let (name, r, msg) = (parts.next(), parts.next(), parts.next());
                    if name == Some(pod) && r == Some(reason) {
                        return msg.unwrap_or_default().to_owned();
                    }
                    seen.push(line);
                }
                Err(_) => {
                    node.wait(
                        &format!("{pod} waiting with {reason} (watched: {seen:#?})"),
                        Duration::ZERO,
                        || None::<()>,
                    );
                }
            }
        }
    }
}

fn pod_yaml(name: &str, image: &str, secret: Option<&str>, policy: &str) -> String {
    let secrets = secret.map_or(String::new(), |s| {
        format!("  imagePullSecrets:\n  - name: {s}\n")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{secrets}  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    imagePullPolicy: {policy}\n    command: [sleep, '3600']\n"
    )
}

fn create_secret(node: &Node, name: &str, server: &str, password: &str) {
    node.cluster.ok(&[
        "create",
        "secret",
        "docker-registry",
        name,
        &format!("--docker-server={server}"),
        &format!("--docker-username={USER}"),
        &format!("--docker-password={password}"),
    ]);
}

#[test]
fn pulls_with_image_pull_secrets_and_backs_off_on_bad_credentials() {
    let registry = Registry::start(Auth::Htpasswd);
    let node = Node::start(&[]);
    registry.trust_on(&node);
    let image = registry.image();

    // The pod's own secret (https:// and a /v2/ path are the same location).
    create_secret(
        &node,
        "regcred",
        &format!("https://{}/v2/", registry.host()),
        PASSWORD,
    );
    node.cluster
        .create(&pod_yaml("with-secret", &image, Some("regcred"), "Always"));
    node.wait_phase("with-secret", "Running");
    node.has_event(
        "with-secret",
        |e| e == format!("Normal Pulling: Pulling image \"{image}\""),
        "Pulling",
    );
    node.has_event(
        "with-secret",
        |e| {
            e.starts_with(&format!(
                "Normal Pulled: Successfully pulled image \"{image}\" in "
            ))
        },
        "Pulled",
    );

    // Without credentials the registry refuses: ErrImagePull with its message.
    let watch = WaitingWatch::start(&node);
    node.cluster
        .create(&pod_yaml("anonymous", &image, None, "Always"));
    let msg = watch.wait(&node, "anonymous", "ErrImagePull");
    assert!(msg.contains("401 Unauthorized"), "{msg}");

    // The default ServiceAccount's imagePullSecrets reach new pods (admission) and work.
    node.cluster.ok(&[
        "patch",
        "serviceaccount",
        "default",
        "-p",
        r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
    ]);
    node.cluster
        .create(&pod_yaml("via-sa", &image, None, "Always"));
    assert_eq!(
        node.jsonpath(
            &["get", "pod", "via-sa"],
            "{.spec.imagePullSecrets[0].name}"
        ),
        "regcred"
    );
    node.wait_phase("via-sa", "Running");

    // A wrong password: the registry's refusal, then back-off with it.
    create_secret(&node, "badcred", &registry.host(), "wrong");
    node.cluster
        .create(&pod_yaml("bad-secret", &image, Some("badcred"), "Always"));
    let msg = watch.wait(&node, "bad-secret", "ErrImagePull");
    assert!(
        msg.starts_with("rpc error: code = Unknown desc = failed to pull and unpack image"),
        "{msg}"
    );
    assert!(msg.contains("401 Unauthorized"), "{msg}");
    let failed = node.has_event(
        "bad-secret",
        |e| {
            e.starts_with(&format!(
                "Warning Failed: Failed to pull image \"{image}\": "
            ))
        },
        "Failed",
    );
    assert!(failed.contains("401 Unauthorized"), "{failed}");
    node.has_event(
        "bad-secret",
        |e| e == "Warning Failed: Error: ErrImagePull",
        "Error: ErrImagePull",
    );
    let backoff = watch.wait(&node, "bad-secret", "ImagePullBackOff");
    assert!(
        backoff.starts_with(&format!("Back-off pulling image \"{image}\": ")),
        "{backoff}"
    );
    assert!(backoff.contains("401 Unauthorized"), "{backoff}");
    node.has_event(
        "bad-secret",
        |e| e == format!("Normal BackOff: Back-off pulling image \"{image}\""),
        "BackOff",
    );

    // A secret that does not exist is reported, and the pull goes on without it.
    node.cluster
        .create(&pod_yaml("missing-secret", &image, Some("nope"), "Always"));
    node.has_event(
        "missing-secret",
        |e| e == "Warning FailedToRetrieveImagePullSecret: Unable to retrieve some image pull secrets (nope); attempting to pull the image may not succeed.",
        "FailedToRetrieveImagePullSecret",
    );
}

#[test]
fn token_auth_registry_gets_the_secrets_credentials() {
    let registry = Registry::start(Auth::Token);
    let node = Node::start(&[]);
    registry.trust_on(&node);
    let image = registry.image();
    // A wildcard-free host entry with the credentials in `auth` only (base64).
    create_secret(&node, "tokcred", &registry.host(), PASSWORD);
    node.cluster
        .create(&pod_yaml("token-pull", &image, Some("tokcred"), "Always"));
    node.wait_phase("token-pull", "Running");
    // containerd did the token dance with the secret's user (an OAuth2 password grant).
    let log = registry.token_log();
    assert!(log.contains(&format!("TOKEN POST user={USER}")), "{log}");

    create_secret(&node, "badtok", &registry.host(), "wrong");
    let watch = WaitingWatch::start(&node);
    node.cluster
        .create(&pod_yaml("token-bad", &image, Some("badtok"), "Always"));
    let msg = watch.wait(&node, "token-bad", "ErrImagePull");
    assert!(msg.contains("failed to pull and unpack image"), "{msg}");
    let log = registry.token_log();
    assert!(log.contains(&format!("DENIED POST user={USER}")), "{log}");
}

#[test]
fn resolv_conf_follows_the_dns_policy() {
    let image = busybox_archive();
    let node = Node::start(&["--cluster-dns", "10.43.0.10"]);
    run(Command::new("ctr")
        .arg("--address")
        .arg(node.cluster.data_dir().join("containerd/containerd.sock"))
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&image));
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n{extra}  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [cat, /etc/resolv.conf]\n"
        )
    };
    node.cluster.create(&pod("cluster-first", ""));
    node.cluster.create(&pod(
        "none",
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.53]\n    searches: [corp.example]\n    options:\n    - name: ndots\n      value: '2'\n    - name: edns0\n",
    ));
    node.cluster.create(&pod(
        "merged",
        "  dnsConfig:\n    nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3]\n",
    ));
    for p in ["cluster-first", "none", "merged"] {
        node.wait_phase(p, "Succeeded");
    }
    let logs = |p: &str| node.cluster.ok(&["logs", p]);
    let cf = logs("cluster-first");
    assert!(cf.contains("nameserver 10.43.0.10\n"), "{cf}");
    assert!(
        cf.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{cf}"
    );
    assert!(cf.contains("options ndots:5"), "{cf}");
    assert_eq!(cf.matches("nameserver").count(), 1, "{cf}");
    let none = logs("none");
    assert!(none.contains("nameserver 192.0.2.53\n"), "{none}");
    assert!(none.contains("search corp.example\n"), "{none}");
    assert!(none.contains("options edns0 ndots:2"), "{none}");
    let merged = logs("merged");
    assert_eq!(merged.matches("nameserver").count(), 3, "{merged}");
    node.has_event(
        "merged",
        |e| e == "Warning DNSConfigForming: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.43.0.10 192.0.2.1 192.0.2.2",
        "DNSConfigForming",
    );
}

#[test]
fn static_pods_run_with_mirror_pods() {
    let image = busybox_archive();
    let manifests = tempfile::tempdir().unwrap();
    let dir = manifests.path().display().to_string();
    let node = Node::start(&["--pod-manifest-path", &dir, "--file-check-frequency", "1s"]);
    run(Command::new("ctr")
        .arg("--address")
        .arg(node.cluster.data_dir().join("containerd/containerd.sock"))
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(&image));
    std::fs::write(
        manifests.path().join("web.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"),
    )
    .unwrap();
    let mirror = format!("web-{}", node.name);
    node.wait_phase(&mirror, "Running");
    let meta = |path: &str| node.jsonpath(&["get", "pod", &mirror], path);
    assert_eq!(
        meta("{.metadata.annotations.kubernetes\\.io/config\\.source}"),
        "file"
    );
    let hash = meta("{.metadata.annotations.kubernetes\\.io/config\\.hash}");
    assert_eq!(hash.len(), 32, "{hash}");
    assert_eq!(
        meta("{.metadata.annotations.kubernetes\\.io/config\\.mirror}"),
        hash
    );
    assert_eq!(
        meta("{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"),
        format!("Node/{}", node.name)
    );
    assert_eq!(meta("{.spec.nodeName}"), node.name);
    let first_uid = meta("{.metadata.uid}");

    // Deleting the mirror pod brings a new one; the static pod keeps running.
    node.cluster.ok(&["delete", "pod", &mirror, "--wait=false"]);
    node.wait("a new mirror pod", Duration::from_secs(30), || {
        let uid = meta("{.metadata.uid}");
        (!uid.is_empty() && uid != first_uid && meta("{.status.phase}") == "Running").then_some(())
    });

    // Removing the file stops the pod and deletes the mirror.
    std::fs::remove_file(manifests.path().join("web.yaml")).unwrap();
    node.wait("the mirror pod to go", Duration::from_secs(30), || {
        let out = node.cluster.kubectl(&["get", "pod", &mirror]);
        (!out.status.success()).then_some(())
    });
    let socket = node.cluster.data_dir().join("containerd/containerd.sock");
    node.wait(
        "the static pod's containers to stop",
        Duration::from_secs(30),
        || {
            let list = run(Command::new("ctr").arg("--address").arg(&socket).args([
                "--namespace",
                "k8s.io",
                "tasks",
                "list",
            ]));
            (!list.contains("RUNNING")).then_some(())
        },
    );
}
