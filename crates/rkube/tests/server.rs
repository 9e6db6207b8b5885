//! `rkube server` as a user runs it: first start makes the PKI and admin kubeconfig,
//! health endpoints answer (anonymously too), data survives restarts, a data dir that is
//! not rkube's is refused, and SIGTERM stops it cleanly.

mod support;

use std::process::{Command, Stdio};

use support::Cluster;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_owned(), code.to_owned())
}

#[test]
fn first_start_makes_pki_and_serves_health() {
    let c = Cluster::start(&[]);
    for file in [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/apiserver.crt",
        "pki/admin.crt",
        "admin.kubeconfig",
    ] {
        assert!(c.data_dir().join(file).exists(), "{file} missing");
    }
    assert_eq!(
        c.data_dir().join("db/state.db").exists(),
        !c.on_etcd(),
        "the embedded store lives in the data dir"
    );
    assert_eq!(c.ok(&["get", "--raw", "/healthz"]), "ok");
    let verbose = c.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(verbose.contains("[+]etcd ok"), "{verbose}");

    // Anonymous users may read health and version, nothing else.
    let ca = c.data_dir().join("pki/ca.crt");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca, &format!("https://{}/livez", c.addr)]),
        ("ok".into(), "200".into())
    );
    let (body, code) = curl(&["--cacert", ca, &format!("https://{}/version", c.addr)]);
    assert_eq!(code, "200");
    assert!(body.contains("\"minor\":\"37\""), "{body}");
    let (body, code) = curl(&[
        "--cacert",
        ca,
        &format!("https://{}/api/v1/namespaces", c.addr),
    ]);
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("system:anonymous"), "{body}");
}

#[test]
fn data_survives_a_restart() {
    let (_etcd, flags) = support::persistent_datastore();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let c = Cluster::start(&flags);
    c.create("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"keep\",\"namespace\":\"default\"},\"data\":{\"a\":\"b\"}}");
    let ca_before = std::fs::read(c.data_dir().join("pki/ca.crt")).unwrap();
    let (status, dir) = c.stop();
    assert!(status.success(), "SIGTERM is a clean stop");
    let c = Cluster::start_in(dir, &flags);
    assert_eq!(
        std::fs::read(c.data_dir().join("pki/ca.crt")).unwrap(),
        ca_before,
        "the CA is kept"
    );
    assert_eq!(
        c.ok(&["get", "cm", "keep", "-o", "jsonpath={.data.a}"]),
        "b"
    );
}

#[test]
fn refuses_a_database_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    let db = dir.path().join("db/state.db");
    std::fs::write(&db, b"not a database").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{}", rkube_testkit::free_port()),
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not an rkube store") && stderr.contains("state.db"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), b"not a database");
}

#[test]
fn runs_on_etcd() {
    let etcd = rkube_testkit::EtcdCluster::start(1).unwrap();
    let endpoints = etcd.client_endpoints().join(",");
    let c = Cluster::start(&["--store", "etcd", "--etcd-servers", &endpoints]);
    assert!(
        !c.data_dir().join("db/state.db").exists(),
        "no SQLite file when etcd is the store"
    );
    c.create("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"on-etcd\",\"namespace\":\"default\"},\"data\":{\"a\":\"b\"}}");
    assert_eq!(
        c.ok(&["get", "cm", "on-etcd", "-o", "jsonpath={.data.a}"]),
        "b"
    );
    assert!(c.stop().0.success());
}

#[test]
fn store_flags_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, message) in [
        (
            &["--store", "etcd"][..],
            "--store etcd needs --etcd-servers",
        ),
        (
            &["--etcd-servers", "http://127.0.0.1:1"][..],
            "--etcd-servers is only used with --store etcd",
        ),
        (
            &["--store", "mysql"][..],
            "invalid value 'mysql' for '--store <STORE>'",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}

#[test]
fn rejects_an_unknown_datastore_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args(["--datastore-endpoint", "mysql://db:3306"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsupported datastore endpoint"),
        "{stderr}"
    );
}
