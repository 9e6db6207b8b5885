//! The certificate lifecycle against the real binary: client certificates that do not
//! verify are a 401 with upstream's x509 message in the server log, short-lived serving
//! certificates are renewed and hot-reloaded while clients keep working, `rkube certs
//! check` reports and fails, `rkube certs rotate` (leaves and CAs) with a running server,
//! and a server whose CA expired says how to fix it.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rkube_pki::{ClusterPki, IssuedCert, PkiOptions, ServingNames};
use support::Cluster;

const DAY: Duration = Duration::from_secs(86_400);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn rkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rkube")
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `cert` as `<name>.crt`/`.key` in `dir`; returns their paths.
fn write_cert(dir: &Path, name: &str, cert: &IssuedCert) -> (String, String) {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&crt, cert.cert_pem()).unwrap();
    std::fs::write(&key, cert.key_pem()).unwrap();
    (
        crt.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}

/// GET `path` with a client certificate (cert, key paths), trusting `pki/ca.crt`.
fn curl_cert(c: &Cluster, cert: Option<&(String, String)>, path: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
        .arg("--cacert")
        .arg(c.data_dir().join("pki/ca.crt"));
    if let Some((crt, key)) = cert {
        cmd.args(["--cert", crt, "--key", key]);
    }
    let out = cmd
        .arg(format!("https://{}{path}", c.addr))
        .output()
        .expect("curl");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// The serial and issuer of the certificate the server presents now (openssl s_client),
/// after checking it verifies against `pki/ca.crt`.
fn served_cert(c: &Cluster) -> Option<(String, String)> {
    let ca = c.data_dir().join("pki/ca.crt");
    let script = format!(
        "openssl s_client -connect {addr} -servername localhost -CAfile {ca} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial -issuer",
        addr = c.addr,
        ca = ca.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let serial = stdout.lines().find_map(|l| l.strip_prefix("serial="))?;
    let issuer = stdout.lines().find_map(|l| l.strip_prefix("issuer="))?;
    Some((serial.to_owned(), issuer.trim().to_owned()))
}

/// Polls `f` until it returns `Some` or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cluster_pki(c: &Cluster) -> ClusterPki {
    ClusterPki::load_or_create(&c.data_dir().join("pki"), &ServingNames::new(hostname()))
        .expect("load the cluster PKI")
}

#[test]
fn client_certificates_that_do_not_verify_are_401_with_upstreams_message() {
    let c = Cluster::start(&[]);
    let dir = c.data_dir();
    let pki = cluster_pki(&c);
    let now = SystemTime::now();
    let good = write_cert(
        dir,
        "good",
        &pki.issue_client_cert("admin", &["system:masters"], DAY)
            .unwrap(),
    );
    let expired = write_cert(
        dir,
        "expired",
        &pki.issue_client_cert_at("admin", &["system:masters"], now - 2 * DAY, DAY)
            .unwrap(),
    );
    let future = write_cert(
        dir,
        "future",
        &pki.issue_client_cert_at("admin", &["system:masters"], now + 2 * DAY, DAY)
            .unwrap(),
    );
    let other_dir = tempfile::tempdir().unwrap();
    let other = ClusterPki::load_or_create(other_dir.path(), &ServingNames::new("x")).unwrap();
    let foreign = write_cert(
        dir,
        "foreign",
        &other
            .issue_client_cert("admin", &["system:masters"], DAY)
            .unwrap(),
    );

    let (code, body) = curl_cert(&c, Some(&good), "/api/v1/namespaces");
    assert_eq!(code, 200, "{body}");
    for (cert, wanted) in [
        (
            &expired,
            "x509: certificate has expired or is not yet valid: current time ",
        ),
        (
            &future,
            "x509: certificate has expired or is not yet valid: current time ",
        ),
        (&foreign, "x509: certificate signed by unknown authority"),
    ] {
        let (code, body) = curl_cert(&c, Some(cert), "/api/v1/namespaces");
        assert_eq!(code, 401, "{}: {body}", cert.0);
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["reason"], "Unauthorized", "{body}");
        assert_eq!(status["message"], "Unauthorized", "{body}");
        // Not even the health endpoints: a bad certificate is no anonymous request.
        assert_eq!(curl_cert(&c, Some(cert), "/version").0, 401);
        assert!(
            c.log().contains(wanted),
            "{wanted:?} not logged:\n{}",
            c.log()
        );
    }
    let log = c.log();
    assert!(log.contains(" is after "), "{log}");
    assert!(log.contains(" is before "), "{log}");
    assert!(log.contains("verifying certificate SN="), "{log}");

    // kubectl says what upstream's says.
    let kc = dir.join("expired.kubeconfig");
    rkube_pki::write_kubeconfig(
        &kc,
        &rkube_pki::KubeconfigSpec {
            cluster_name: "rkube",
            server_url: &format!("https://{}", c.addr),
            ca_pem: pki.ca_cert_pem(),
            user_name: "admin",
            client_cert_pem: &std::fs::read_to_string(&expired.0).unwrap(),
            client_key_pem: &std::fs::read_to_string(&expired.1).unwrap(),
            namespace: None,
        },
    )
    .unwrap();
    let (ok, _, err) = text(&c.kubectl_as(&kc, &["get", "namespaces"]));
    assert!(!ok);
    // Which of upstream's two wordings kubectl prints depends on whether its discovery
    // cache for this server is warm: a failed discovery request says the first, the
    // request itself (our 401 Status, as upstream's) the second.
    assert!(
        err.contains(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
        ) || err.contains("error: You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
    // Without a certificate the request is anonymous, as before.
    assert_eq!(curl_cert(&c, None, "/version").0, 200);
}

#[test]
fn short_lived_serving_certificates_renew_without_dropping_clients() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start_with_env(
        dir,
        &[],
        &[
            ("RKUBE_LEAF_CERT_VALIDITY", "15s"),
            ("RKUBE_CERT_CHECK_INTERVAL", "1s"),
        ],
    );
    // A watch opened now stays open across every renewal.
    let mut watch = Command::new(support::kubectl_path())
        .args(["--kubeconfig", c.kubeconfig.to_str().unwrap()])
        .args(["get", "namespaces", "--watch", "-o", "name"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let first = served_cert(&c).expect("the served certificate verifies against ca.crt");
    let mut serials = vec![first.0.clone()];
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(25) {
        let (ok, out, err) = text(&c.kubectl(&["get", "namespace", "default", "-o", "name"]));
        assert!(
            ok,
            "request {requests} failed after {:?}: {err}\n{}",
            started.elapsed(),
            c.log()
        );
        assert_eq!(out.trim(), "namespace/default");
        requests += 1;
        if let Some((serial, _)) = served_cert(&c) {
            if serials.last() != Some(&serial) {
                serials.push(serial);
            }
        }
    }
    assert!(
        serials.len() >= 2,
        "the serving certificate was never renewed: {serials:?}\n{}",
        c.log()
    );
    assert!(
        watch.try_wait().unwrap().is_none(),
        "the watch connection was dropped"
    );
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        c.log().contains("reloaded the TLS certificates"),
        "{}",
        c.log()
    );
    // The renewed admin kubeconfig carries a fresh certificate.
    let (ok, _, err) = text(&c.kubectl(&["auth", "whoami"]));
    assert!(ok, "{err}");
}

#[test]
fn certs_check_reports_and_fails_on_the_threshold() {
    let c = Cluster::start(&[]);
    let d = c.data_dir().to_str().unwrap().to_owned();
    let (ok, out, err) = text(&rkube(&["certs", "check", "--data-dir", &d]));
    assert!(ok, "{out}{err}");
    for wanted in [
        "FILE",
        "DAYS LEFT",
        "ca.crt",
        "client-ca.crt",
        "CN=kube-apiserver",
        "CN=admin, O=system:masters",
        "CN=system:kube-scheduler",
        "CN=system:kube-controller-manager",
        "CN=system:kube-proxy",
        "O=system:nodes",
        "front-proxy-client.crt",
        "front-proxy-ca.crt",
        "sa.key",
    ] {
        assert!(out.contains(wanted), "{wanted:?} missing:\n{out}");
    }
    // Every component kubeconfig authenticates as its component.
    let node = rkube_pki::inventory::node_name(Some(&hostname()));
    for (file, user, groups) in [
        ("admin.kubeconfig", "admin".to_owned(), "system:masters"),
        (
            "scheduler.kubeconfig",
            "system:kube-scheduler".to_owned(),
            "",
        ),
        (
            "controller-manager.kubeconfig",
            "system:kube-controller-manager".to_owned(),
            "",
        ),
        ("kube-proxy.kubeconfig", "system:kube-proxy".to_owned(), ""),
        (
            "kubelet.kubeconfig",
            format!("system:node:{node}"),
            "system:nodes",
        ),
    ] {
        let path = c.data_dir().join(file);
        assert_eq!(file_mode(&path), 0o600, "{file}");
        let (ok, out, err) = text(&c.kubectl_as(
            &path,
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
            ],
        ));
        assert!(ok, "{file}: {err}");
        assert!(out.starts_with(&format!("{user} ")), "{file}: {out}");
        assert!(out.contains(groups), "{file}: {out}");
    }
    assert_eq!(file_mode(&c.data_dir().join("pki")), 0o700);
    let admin = out.lines().find(|l| l.starts_with("admin.crt")).unwrap();
    assert!(admin.contains(" 36") && admin.ends_with("ok"), "{admin}");

    let (ok, out, err) = text(&rkube(&[
        "certs",
        "check",
        "--data-dir",
        &d,
        "--warn-within",
        "400d",
    ]));
    assert!(!ok);
    assert!(out.contains("expires soon"), "{out}");
    assert!(
        err.contains("need attention") && err.contains("admin.crt (expires soon)"),
        "{err}"
    );
    assert!(!err.contains("ca.crt (expires soon)"), "{err}");

    std::fs::write(c.data_dir().join("pki/kube-proxy.crt"), "garbage").unwrap();
    let (ok, out, _) = text(&rkube(&["certs", "check", "--data-dir", &d]));
    assert!(!ok);
    assert!(out.contains("UNREADABLE"), "{out}");

    let (ok, _, err) = text(&rkube(&[
        "certs",
        "check",
        "--data-dir",
        "/nonexistent/rkube",
    ]));
    assert!(!ok);
    assert!(err.contains("no PKI in /nonexistent/rkube/pki"), "{err}");
    let (ok, _, err) = text(&rkube(&["certs", "check", "--warn-within", "soon"]));
    assert!(!ok);
    assert!(err.contains("invalid duration"), "{err}");
}

#[test]
fn certs_rotate_reissues_leaves_that_a_running_server_picks_up() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start_with_env(dir, &[], &[("RKUBE_CERT_CHECK_INTERVAL", "1s")]);
    let d = c.data_dir().to_str().unwrap().to_owned();
    let (before, _) = served_cert(&c).unwrap();
    let admin_before = std::fs::read(c.data_dir().join("admin.kubeconfig")).unwrap();
    let (ok, out, err) = text(&rkube(&["certs", "rotate", "--data-dir", &d]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("re-issued the leaf certificates"), "{out}");
    assert!(out.contains("admin.kubeconfig"), "{out}");
    assert_ne!(
        std::fs::read(c.data_dir().join("admin.kubeconfig")).unwrap(),
        admin_before
    );
    let after = wait_for(Duration::from_secs(15), || {
        served_cert(&c).filter(|(serial, _)| *serial != before)
    });
    assert!(
        after.is_some(),
        "the server kept its old certificate:\n{}",
        c.log()
    );
    let (ok, out, err) = text(&c.kubectl(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert!(ok, "{err}");
    assert_eq!(out, "admin");
    let (ok, out, err) = text(&c.kubectl_as(
        &c.data_dir().join("scheduler.kubeconfig"),
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    ));
    assert!(ok, "{err}");
    assert_eq!(out, "system:kube-scheduler");
}

#[test]
fn ca_rotation_trusts_old_client_certificates_during_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start_with_env(dir, &[], &[("RKUBE_CERT_CHECK_INTERVAL", "1s")]);
    let d = c.data_dir().to_str().unwrap().to_owned();
    let pki = cluster_pki(&c);
    let old_admin = write_cert(c.data_dir(), "old-admin", pki.admin_cert());
    assert_eq!(curl_cert(&c, Some(&old_admin), "/api/v1/namespaces").0, 200);
    let (_, old_issuer) = served_cert(&c).unwrap();
    assert!(old_issuer.ends_with("CN = rkube-ca"), "{old_issuer}");

    let admin_kc_before = std::fs::read_to_string(c.data_dir().join("admin.kubeconfig")).unwrap();
    // A copy made before the rotation: old client certificate, old CA only.
    let old_kc = c.data_dir().join("old-admin.kubeconfig");
    std::fs::write(&old_kc, &admin_kc_before).unwrap();
    let (ok, out, err) = text(&rkube(&[
        "certs",
        "rotate",
        "--ca",
        "--overlap",
        "12s",
        "--data-dir",
        &d,
    ]));
    let rotated = Instant::now();
    assert!(ok, "{out}{err}");
    assert!(out.contains("rotated the CAs"), "{out}");
    // The server now serves a certificate of the new CA (ca.crt is the bundle).
    let new_issuer = wait_for(Duration::from_secs(10), || {
        served_cert(&c)
            .map(|(_, issuer)| issuer)
            .filter(|i| i.contains("rkube-ca@"))
    });
    assert!(new_issuer.is_some(), "{}", c.log());
    // The server rewrote the kubeconfigs: new client certificate, bundle as CA.
    let admin_kc = wait_for(Duration::from_secs(10), || {
        let kc = std::fs::read_to_string(c.data_dir().join("admin.kubeconfig")).ok()?;
        (kc != admin_kc_before).then_some(kc)
    });
    assert!(
        admin_kc.is_some(),
        "admin.kubeconfig not rewritten:\n{}",
        c.log()
    );
    let (ok, out, err) = text(&c.kubectl(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]));
    assert!(ok, "{err}\n{}", c.log());
    assert_eq!(out, "admin");
    // A kubeconfig from before the rotation keeps working during the overlap: its client
    // certificate is trusted, and the new serving certificate comes with the new CA
    // cross-signed by the old one.
    let (ok, _, err) = text(&c.kubectl_as(&old_kc, &["get", "namespaces"]));
    assert!(ok, "{err}\n{}", c.log());
    // During the overlap the old CA's client certificate is still accepted.
    assert_eq!(
        curl_cert(&c, Some(&old_admin), "/api/v1/namespaces").0,
        200,
        "{}",
        c.log()
    );
    // After it, the old CA is dropped and its certificates are refused.
    let refused = wait_for(Duration::from_secs(25), || {
        (curl_cert(&c, Some(&old_admin), "/api/v1/namespaces").0 == 401).then_some(())
    });
    assert!(
        refused.is_some(),
        "the old CA is still trusted:\n{}",
        c.log()
    );
    assert!(
        rotated.elapsed() >= Duration::from_secs(11),
        "dropped before the overlap ended"
    );
    assert!(c
        .log()
        .contains("x509: certificate signed by unknown authority"));
    let (ok, _, err) = text(&c.kubectl(&["get", "namespaces"]));
    assert!(ok, "{err}");
    let (ok, _, _) = text(&c.kubectl_as(&old_kc, &["get", "namespaces"]));
    assert!(
        !ok,
        "the pre-rotation kubeconfig still works after the overlap"
    );
    let ca = std::fs::read_to_string(c.data_dir().join("pki/client-ca.crt")).unwrap();
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1);
}

#[test]
fn a_server_whose_ca_expired_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let past = PkiOptions {
        ca_validity: DAY,
        leaf_validity: DAY,
        now: Some(SystemTime::now() - 10 * DAY),
        ..PkiOptions::default()
    };
    ClusterPki::load_or_create_with(
        &dir.path().join("pki"),
        &ServingNames::new(hostname()),
        past,
    )
    .unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let port = rkube_testkit::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--data-dir", &d, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(30));
    let (ok, _, err) = text(&out);
    assert!(!ok);
    assert!(
        err.contains("cannot set up the cluster PKI")
            && err.contains("ca.crt expired at")
            && err.contains("rkube certs rotate --ca"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let (ok, out, _) = text(&rkube(&["certs", "check", "--data-dir", &d]));
    assert!(!ok);
    assert!(out.contains("EXPIRED"), "{out}");
    let (ok, out, err) = text(&rkube(&["certs", "rotate", "--ca", "--data-dir", &d]));
    assert!(ok, "{out}{err}");
    let c = Cluster::start_in(dir, &[]);
    assert_eq!(c.ok(&["get", "--raw", "/healthz"]), "ok");
    let (ok, out, err) = text(&rkube(&["certs", "check", "--data-dir", &d]));
    assert!(ok, "{out}{err}");
}
