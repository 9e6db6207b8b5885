//! `rkube server` as a user runs it: starts, answers its health endpoints, keeps data
//! across restarts, refuses a data dir that is not its own, and stops on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rkube server`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> (Child, String) {
        let addr = format!("127.0.0.1:{}", rkube_testkit::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["server", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rkube");
        (child, addr)
    }

    fn start_ready(data_dir: &Path, extra: &[&str]) -> Server {
        let (child, addr) = Self::start(data_dir, extra);
        let server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some((200, _)) = http_get(&server.addr, "/readyz") {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("rkube server did not become ready");
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "rkube server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[test]
fn serves_health_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_ready(dir.path(), &[]);
    assert_eq!(
        http_get(&server.addr, "/healthz"),
        Some((200, "ok".to_owned()))
    );
    assert_eq!(http_get(&server.addr, "/livez").map(|r| r.0), Some(200));
    let (status, body) = http_get(&server.addr, "/readyz?verbose").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("[+]etcd ok"), "{body}");
    let (status, body) = http_get(&server.addr, "/version").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\"major\":\"1\"") && body.contains("\"minor\":\"37\""),
        "{body}"
    );
    assert!(
        dir.path().join("db/state.db").exists(),
        "the embedded store lives in the data dir"
    );
    assert!(server.terminate().success(), "SIGTERM is a clean stop");
    // The store was released: a second start on the same data dir works.
    let again = Server::start_ready(dir.path(), &[]);
    assert!(again.terminate().success());
}

#[test]
fn refuses_a_database_that_is_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db")).unwrap();
    let db = dir.path().join("db/state.db");
    std::fs::write(&db, b"not a database").unwrap();
    let (child, _) = Server::start(dir.path(), &[]);
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not an rkube store") && stderr.contains("state.db"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), b"not a database");
}

#[test]
fn runs_on_etcd() {
    let cluster = rkube_testkit::EtcdCluster::start(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoints = cluster.client_endpoints().join(",");
    let server = Server::start_ready(dir.path(), &["--datastore-endpoint", &endpoints]);
    assert_eq!(http_get(&server.addr, "/readyz").map(|r| r.0), Some(200));
    assert!(
        !dir.path().join("db/state.db").exists(),
        "no SQLite file when etcd is the store"
    );
    assert!(server.terminate().success());
}

#[test]
fn rejects_an_unknown_datastore_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let output = Server::start(dir.path(), &["--datastore-endpoint", "mysql://db:3306"])
        .0
        .wait_with_output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported datastore endpoint"),
        "{stderr}"
    );
}
