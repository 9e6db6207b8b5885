//! The PKI's files as real tools read them: `openssl verify` and kubectl's kubeconfig loader.
//! Each test is skipped, saying why, only when its tool is not installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rkube_pki::{write_kubeconfig, ClusterPki, KubeconfigSpec};
use support::names;

/// Finds `tool` on PATH (or, for kubectl, in the project venv), or says why the test skips.
fn find_tool(tool: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let venv = std::env::var_os("RKUBE_VENV").unwrap_or_else(|| "/var/cache/rkube-venv".into());
    dirs.push(Path::new(&venv).join("bin"));
    let found = dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: `{tool}` is not installed (not on PATH nor in $RKUBE_VENV/bin)");
    }
    found
}

fn run(tool: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_verifies_the_chain_and_names() {
    let Some(openssl) = find_tool("openssl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    ClusterPki::load_or_create(tmp.path(), &names()).unwrap();
    let dir = tmp.path();

    let out = run(
        &openssl,
        &["verify", "-CAfile", "ca.crt", "apiserver.crt"],
        dir,
    );
    assert_ok(&out, "openssl verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("apiserver.crt: OK"), "{stdout}");
    let out = run(
        &openssl,
        &[
            "verify",
            "-CAfile",
            "client-ca.crt",
            "admin.crt",
            "kubelet.crt",
        ],
        dir,
    );
    assert_ok(&out, "openssl verify (client CA)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("admin.crt: OK") && stdout.contains("kubelet.crt: OK"),
        "{stdout}"
    );

    for args in [
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "kubernetes.default.svc",
            "apiserver.crt",
        ][..],
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "-verify_ip",
            support::SERVICE_IP,
            "apiserver.crt",
        ],
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslserver",
            "-verify_ip",
            "::1",
            "apiserver.crt",
        ],
        &[
            "verify",
            "-CAfile",
            "client-ca.crt",
            "-purpose",
            "sslclient",
            "admin.crt",
        ],
        &["x509", "-in", "ca.crt", "-noout", "-checkend", "300000000"],
        &["pkey", "-in", "ca.key", "-noout", "-check"],
        &["pkey", "-in", "apiserver.key", "-noout", "-check"],
        &["pkey", "-in", "admin.key", "-noout", "-check"],
    ] {
        assert_ok(
            &run(&openssl, args, dir),
            &format!("openssl {}", args.join(" ")),
        );
    }

    // And what must fail does.
    for args in [
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "evil.example",
            "apiserver.crt",
        ][..],
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-purpose",
            "sslclient",
            "apiserver.crt",
        ],
        &[
            "verify",
            "-CAfile",
            "client-ca.crt",
            "-purpose",
            "sslserver",
            "admin.crt",
        ],
        &["verify", "-CAfile", "ca.crt", "admin.crt"],
    ] {
        let out = run(&openssl, args, dir);
        assert!(
            !out.status.success(),
            "openssl {} should fail",
            args.join(" ")
        );
    }

    // The key file's public key is the certificate's.
    let cert_pub = run(
        &openssl,
        &["x509", "-in", "apiserver.crt", "-noout", "-pubkey"],
        dir,
    );
    let key_pub = run(&openssl, &["pkey", "-in", "apiserver.key", "-pubout"], dir);
    assert_ok(&cert_pub, "openssl x509 -pubkey");
    assert_eq!(cert_pub.stdout, key_pub.stdout);

    // The admin subject, as openssl reads it.
    let out = run(
        &openssl,
        &[
            "x509",
            "-in",
            "admin.crt",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ],
        dir,
    );
    assert_ok(&out, "openssl x509 -subject");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "subject=O=system:masters,CN=admin"
    );
}

#[test]
fn kubectl_reads_the_kubeconfig() {
    let Some(kubectl) = find_tool("kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tmp.path().join("pki"), &names()).unwrap();
    let path = tmp.path().join("admin.kubeconfig");
    let admin = pki.admin_cert();
    write_kubeconfig(
        &path,
        &KubeconfigSpec {
            cluster_name: "rkube",
            server_url: "https://127.0.0.1:6443",
            ca_pem: pki.ca_cert_pem(),
            user_name: "admin",
            client_cert_pem: admin.cert_pem(),
            client_key_pem: admin.key_pem(),
            namespace: Some("kube-system"),
        },
    )
    .unwrap();

    let path_arg = path.to_str().unwrap();
    let jsonpath = "{.current-context}|{.contexts[0].context.namespace}|{.clusters[0].cluster.server}|{.users[0].name}";
    let out = run(
        &kubectl,
        &[
            "--kubeconfig",
            path_arg,
            "config",
            "view",
            "--minify",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ],
        tmp.path(),
    );
    assert_ok(&out, "kubectl config view");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "admin@rkube|kube-system|https://127.0.0.1:6443|admin"
    );

    // --raw shows the inlined data; kubectl decodes nothing, so it round-trips as written.
    let out = run(
        &kubectl,
        &[
            "--kubeconfig",
            path_arg,
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.client-key-data}",
        ],
        tmp.path(),
    );
    assert_ok(&out, "kubectl config view --raw");
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(&out.stdout)
        .unwrap();
    assert_eq!(key, admin.key_pem().as_bytes());
}

/// Serves HTTPS on a loopback port with the PKI's serving certificate, requiring a client
/// certificate from its CA, answering every request with a `/version` body and recording
/// the client's user. Stops when `stop` is set, or after 60 s.
struct VersionServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    users: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const VERSION_BODY: &str = r#"{"major":"1","minor":"37","gitVersion":"v1.37.0-pki-test"}"#;

impl VersionServer {
    fn start(pki: &ClusterPki) -> Self {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        use std::time::{Duration, Instant};

        support::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.client_ca_cert_der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.serving_cert_chain_der(), pki.serving_key_der())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let users = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, users) = (stop.clone(), users.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let tcp = match listener.accept() {
                        Ok((tcp, _)) => tcp,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(e) => panic!("accept: {e}"),
                    };
                    tcp.set_nonblocking(false).unwrap();
                    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut reader = BufReader::new(&mut tls);
                    let mut line = String::new();
                    // Read the request head; a failed handshake ends the connection here.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    if let Some(peer) = tls.conn.peer_certificates() {
                        let id = rkube_pki::identity_from_der(&peer[0]).unwrap();
                        users.lock().unwrap().push(id.user);
                        let _ = write!(
                            tls,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{VERSION_BODY}",
                            VERSION_BODY.len()
                        );
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                }
            })
        };
        Self {
            port,
            stop,
            users,
            thread: Some(thread),
        }
    }
}

impl Drop for VersionServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn kubectl_talks_mutual_tls_with_the_pki() {
    let Some(kubectl) = find_tool("kubectl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(&tmp.path().join("pki"), &names()).unwrap();
    let server = VersionServer::start(&pki);
    let admin = pki.admin_cert();
    let path = tmp.path().join("admin.kubeconfig");
    // kubectl (Go TLS) checks the IP SAN for one and the DNS SAN for the other.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}", server.port);
        write_kubeconfig(
            &path,
            &KubeconfigSpec {
                cluster_name: "rkube",
                server_url: &url,
                ca_pem: pki.ca_cert_pem(),
                user_name: "admin",
                client_cert_pem: admin.cert_pem(),
                client_key_pem: admin.key_pem(),
                namespace: None,
            },
        )
        .unwrap();
        let out = run(
            &kubectl,
            &[
                "--kubeconfig",
                path.to_str().unwrap(),
                "--request-timeout",
                "20s",
                "get",
                "--raw",
                "/version",
            ],
            tmp.path(),
        );
        assert_ok(&out, &format!("kubectl get --raw /version against {url}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), VERSION_BODY);
    }
    let users = server.users.lock().unwrap().clone();
    assert!(
        !users.is_empty() && users.iter().all(|u| u == "admin"),
        "{users:?}"
    );
}
