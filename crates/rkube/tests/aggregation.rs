//! API aggregation end to end: a tiny extension API server (rustls, a certificate from
//! rcgen) behind a Service and an EndpointSlice on loopback, registered by an APIService
//! with its caBundle. Checks availability with upstream's reasons as the backend comes
//! and goes, the merged discovery kubectl reads, proxied `kubectl get` carrying the
//! caller in request headers over the front-proxy client certificate, authorization
//! before proxying, the 503 of an unavailable APIService, the local APIServices, the
//! `extension-apiserver-authentication` ConfigMap, and request-header authentication
//! on rkube's own port.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use support::Cluster;

const GROUP: &str = "wardle.example.com";
const VERSION: &str = "v1alpha1";

/// What the extension server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    client_cn: Option<String>,
    user: Option<String>,
    groups: Vec<String>,
}

/// The extension API server: serves discovery and `flunders` in every namespace.
struct Extension {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Extension {
    /// Starts serving on a free loopback port with a certificate for
    /// `<service>.<namespace>.svc`, trusting client certificates of `client_ca_pem`.
    fn start(service_dns: &str, client_ca_pem: &str) -> Extension {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wardle-ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![service_dns.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let config = Arc::new(config);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, seen) = (config.clone(), seen.clone());
                    std::thread::spawn(move || serve_one(stream, config, seen));
                }
            })
        };
        Extension {
            port,
            ca_pem: ca_cert.pem(),
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops accepting: the port refuses connections afterwards.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 request over TLS, answered with `Connection: close`.
fn serve_one(tcp: TcpStream, config: Arc<rustls::ServerConfig>, seen: Arc<Mutex<Vec<Seen>>>) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    drop(reader);
    let client_cn = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| rkube_pki::identity_from_der(der).ok())
        .map(|id| id.user);
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let path_only = path.split('?').next().unwrap_or("").to_owned();
    seen.lock().unwrap().push(Seen {
        path: path_only.clone(),
        client_cn,
        user: headers
            .iter()
            .find(|(k, _)| k == "x-remote-user")
            .map(|(_, v)| v.clone()),
        groups: headers
            .iter()
            .filter(|(k, _)| k == "x-remote-group")
            .map(|(_, v)| v.clone())
            .collect(),
    });
    if path.contains("watch=1") || path.contains("watch=true") {
        // A watch: two events, a moment apart, then the end of the stream.
        let ns = path_only.split('/').nth(5).unwrap_or("default").to_owned();
        let _ = tls.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        );
        for (i, kind) in ["ADDED", "MODIFIED"].iter().enumerate() {
            let mut obj = flunder(&ns);
            obj["metadata"]["resourceVersion"] = serde_json::json!(format!("{}", i + 1));
            let line = serde_json::json!({"type": kind, "object": obj}).to_string() + "\n";
            let _ = tls.write_all(line.as_bytes());
            let _ = tls.flush();
            std::thread::sleep(Duration::from_millis(300));
        }
        tls.conn.send_close_notify();
        let _ = tls.flush();
        return;
    }
    let method = request_line.split_whitespace().next().unwrap_or("");
    let (code, doc) = if method == "POST" {
        // Creation echoes what was sent, as a server that stored it would.
        let mut obj: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        obj["metadata"]["uid"] = serde_json::json!("3f1c0e6a-0000-4000-8000-000000000002");
        (201, obj)
    } else {
        respond(&path_only)
    };
    let body = serde_json::to_vec(&doc).unwrap();
    let reason = match code {
        200 => "OK",
        201 => "Created",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(&body);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn flunder(ns: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "Flunder", "metadata": {"name": "my-flunder", "namespace": ns, "uid": "3f1c0e6a-0000-4000-8000-000000000001", "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "1"}})
}

fn respond(path: &str) -> (u16, serde_json::Value) {
    let base = format!("/apis/{GROUP}/{VERSION}");
    if path == base {
        return (
            200,
            serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"), "resources": [
                {"name": "flunders", "singularName": "flunder", "namespaced": true, "kind": "Flunder", "verbs": ["create", "get", "list", "watch"], "shortNames": ["fl"]},
                {"name": "flunders/status", "singularName": "", "namespaced": true, "kind": "Flunder", "verbs": ["get"]}
            ]}),
        );
    }
    let rest: Vec<&str> = path
        .strip_prefix(&format!("{base}/namespaces/"))
        .map(|r| r.split('/').collect())
        .unwrap_or_default();
    match rest.as_slice() {
        [ns, "flunders"] => (
            200,
            serde_json::json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": "FlunderList", "metadata": {"resourceVersion": "1"}, "items": [flunder(ns)]}),
        ),
        [ns, "flunders", "my-flunder"] => (200, flunder(ns)),
        _ => (
            404,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
        ),
    }
}

/// Polls `f` every 100 ms for up to 20 s.
fn wait_for(c: &Cluster, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for {what}\n--- server log ---\n{}",
        c.log()
    );
}

/// The APIService's `Available` condition: (status, reason, message).
fn available(c: &Cluster, name: &str) -> (String, String, String) {
    let out = c.kubectl(&["get", "apiservice", name, "-o", "json"]);
    if !out.status.success() {
        return Default::default();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cond = v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Available").cloned())
        .unwrap_or_default();
    let s = |k: &str| cond[k].as_str().unwrap_or_default().to_owned();
    (s("status"), s("reason"), s("message"))
}

fn curl_with_cert(
    c: &Cluster,
    cert: &str,
    key: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(c.data_dir().join("pki/ca.crt"))
        .args(["--cert", cert, "--key", key]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(format!("https://{}{path}", c.addr));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn extension_api_server_through_the_aggregator() {
    let c = Cluster::start(&["--apiservice-recheck-seconds", "1"]);
    let name = format!("{VERSION}.{GROUP}");

    // Local APIServices for the built-in groups, and what extension servers read.
    let table = c.ok(&["get", "apiservices"]);
    let header = table.lines().next().unwrap();
    assert!(
        header
            .split_whitespace()
            .eq(["NAME", "SERVICE", "AVAILABLE", "AGE"]),
        "{table}"
    );
    for local in ["v1.", "v1.apps", "v1.rbac.authorization.k8s.io"] {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().take(3).eq([local, "Local", "True"])),
            "{local} missing:\n{table}"
        );
    }
    let cm = c.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]);
    let cm: serde_json::Value = serde_json::from_str(&cm).unwrap();
    let front_proxy_ca =
        std::fs::read_to_string(c.data_dir().join("pki/front-proxy-ca.crt")).unwrap();
    assert_eq!(
        cm["data"]["requestheader-client-ca-file"],
        front_proxy_ca.as_str()
    );
    assert_eq!(
        cm["data"]["requestheader-allowed-names"],
        r#"["front-proxy-client"]"#
    );
    assert_eq!(
        cm["data"]["requestheader-username-headers"],
        r#"["X-Remote-User"]"#
    );
    assert!(cm["data"]["client-ca-file"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    let mut ext = Extension::start("wardle-api.ext.svc", &front_proxy_ca);
    c.ok(&["create", "namespace", "ext"]);
    c.create(&format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: wardle-api, namespace: ext}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-api-1
  namespace: ext
  labels: {{kubernetes.io/service-name: wardle-api}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {name}}}
spec:
  group: {GROUP}
  version: {VERSION}
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {{namespace: ext, name: wardle-api, port: 443}}
  caBundle: {ca}
"#,
        port = ext.port,
        ca = base64::engine::general_purpose::STANDARD.encode(&ext.ca_pem),
    ));
    wait_for(&c, "Available=True", || available(&c, &name).0 == "True");
    assert_eq!(
        available(&c, &name),
        ("True".into(), "Passed".into(), "all checks passed".into())
    );
    let row = c.ok(&["get", "apiservice", &name, "--no-headers"]);
    assert!(
        row.split_whitespace()
            .take(3)
            .eq([name.as_str(), "ext/wardle-api", "True"]),
        "{row}"
    );

    // Discovery: legacy and aggregated, as kubectl reads it.
    let apis = c.ok(&["get", "--raw", "/apis"]);
    let apis: serde_json::Value = serde_json::from_str(&apis).unwrap();
    let group = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == GROUP)
        .unwrap_or_else(|| panic!("{GROUP} not in /apis: {apis}"));
    assert_eq!(group["preferredVersion"]["version"], VERSION);
    let group_doc = c.ok(&["get", "--raw", &format!("/apis/{GROUP}")]);
    assert!(group_doc.contains(r#""kind":"APIGroup""#), "{group_doc}");
    let resources = c.ok(&["api-resources", "--api-group", GROUP]);
    assert!(
        resources.lines().any(|l| l.split_whitespace().eq([
            "flunders",
            "fl",
            &format!("{GROUP}/{VERSION}"),
            "true",
            "Flunder"
        ])),
        "{resources}"
    );

    // Proxied reads: the backend sees the caller, vouched for by the front-proxy cert.
    let listed = c.ok(&["get", "flunders", "-n", "ext"]);
    assert!(listed.contains("my-flunder"), "{listed}");
    let one = c.ok(&[
        "get",
        "fl",
        "my-flunder",
        "-n",
        "ext",
        "-o",
        "jsonpath={.kind}",
    ]);
    assert_eq!(one, "Flunder");
    let seen = ext.seen();
    let proxied: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.ends_with("/flunders") || s.path.ends_with("/my-flunder"))
        .collect();
    assert!(!proxied.is_empty(), "{seen:?}");
    for s in &proxied {
        assert_eq!(s.user.as_deref(), Some("admin"), "{s:?}");
        assert!(s.groups.iter().any(|g| g == "system:masters"), "{s:?}");
        assert_eq!(s.client_cn.as_deref(), Some("front-proxy-client"), "{s:?}");
    }
    let checks: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path == format!("/apis/{GROUP}/{VERSION}"))
        .collect();
    assert!(checks
        .iter()
        .any(|s| s.user.as_deref() == Some("system:kube-aggregator")));

    // Bodies pass through both ways; watches stream.
    let created = c.create(&format!(
        "apiVersion: {GROUP}/{VERSION}\nkind: Flunder\nmetadata: {{name: new-flunder, namespace: ext}}\nspec: {{size: 3}}\n"
    ));
    assert!(
        created.contains("flunder.wardle.example.com/new-flunder created"),
        "{created}"
    );
    let (code, events) = support::curl(
        &c,
        "GET",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/ext/flunders?watch=1"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200, "{events}");
    let types: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED"], "{events}");

    // Authorization happens here, before proxying.
    let alice = c.user_kubeconfig("alice", &[]);
    let before = ext.seen().len();
    let out = c.kubectl_as(&alice, &["get", "flunders", "-n", "ext"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"flunders.wardle.example.com is forbidden: User "alice" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "ext""#),
        "{err}"
    );
    assert!(ext
        .seen()
        .iter()
        .skip(before)
        .all(|s| s.user.as_deref() != Some("alice")));

    // The backend stops: Available=False with upstream's reason, and requests get 503.
    let port = ext.port;
    ext.stop();
    wait_for(&c, "Available=False", || available(&c, &name).0 == "False");
    let (_, reason, message) = available(&c, &name);
    assert_eq!(reason, "FailedDiscoveryCheck");
    let url = format!("https://127.0.0.1:{port}/apis/{GROUP}/{VERSION}");
    assert_eq!(
        message,
        format!(
            "failing or missing response from {url}: Get {url:?}: dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    let err = c.fails(&["get", "flunders", "-n", "ext"]);
    assert!(
        err.contains("the server is currently unable to handle the request"),
        "{err}"
    );
    let (code, body) = support::curl(
        &c,
        "GET",
        &format!("/apis/{GROUP}/{VERSION}/namespaces/ext/flunders"),
        "application/json",
        None,
        &[],
    );
    assert_eq!((code, body.trim()), (503, "service unavailable"));

    // No Service: ServiceNotFound.
    c.ok(&["delete", "service", "-n", "ext", "wardle-api"]);
    wait_for(&c, "ServiceNotFound", || {
        available(&c, &name).1 == "ServiceNotFound"
    });
    assert_eq!(
        available(&c, &name).2,
        r#"service/wardle-api in "ext" is not present"#
    );

    // Deleting the APIService removes the group from discovery.
    c.ok(&["delete", "apiservice", &name]);
    wait_for(&c, "the group to leave /apis", || {
        !c.ok(&["get", "--raw", "/apis"]).contains(GROUP)
    });
}

#[test]
fn request_header_authentication() {
    let c = Cluster::start(&[]);
    let pki = c.data_dir().join("pki");
    let cert = pki.join("front-proxy-client.crt");
    let key = pki.join("front-proxy-client.key");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // The front-proxy client vouches for the user in the headers.
    let (code, body) = curl_with_cert(
        &c,
        cert,
        key,
        "/api/v1/namespaces/default",
        &["X-Remote-User: carol", "X-Remote-Group: system:masters"],
    );
    assert_eq!(code, 200, "{body}");
    let whoami = Command::new("curl")
        .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json"])
        .arg("--cacert")
        .arg(pki.join("ca.crt"))
        .args(["--cert", cert, "--key", key])
        .args(["-H", "X-Remote-User: carol", "-H", "X-Remote-Group: devs"])
        .args(["-H", "X-Remote-Extra-Example.com%2Fteam: blue"])
        .args([
            "--data-binary",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ])
        .arg(format!(
            "https://{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            c.addr
        ))
        .output()
        .unwrap();
    let review: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    let info = &review["status"]["userInfo"];
    assert_eq!(info["username"], "carol", "{review}");
    assert_eq!(
        info["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );
    assert_eq!(
        info["extra"]["example.com/team"],
        serde_json::json!(["blue"])
    );

    // Without a user header the certificate names nobody.
    let (code, body) = curl_with_cert(&c, cert, key, "/api/v1/namespaces/default", &[]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(r#"User \"system:anonymous\""#), "{body}");

    // A front-proxy certificate with a name not allowed is no proxy.
    let fp =
        rkube_pki::front_proxy::FrontProxyPki::load_or_create(&pki, Default::default()).unwrap();
    let intruder = fp
        .issue_client_cert("intruder", Default::default())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("i.crt"), intruder.cert_pem()).unwrap();
    std::fs::write(dir.path().join("i.key"), intruder.key_pem()).unwrap();
    let (code, body) = curl_with_cert(
        &c,
        dir.path().join("i.crt").to_str().unwrap(),
        dir.path().join("i.key").to_str().unwrap(),
        "/api/v1/namespaces/default",
        &["X-Remote-User: carol", "X-Remote-Group: system:masters"],
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains(r#"User \"system:anonymous\""#), "{body}");
}
