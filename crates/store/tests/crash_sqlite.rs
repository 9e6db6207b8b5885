//! Crash safety: a child process writes and acknowledges; the parent kills it with
//! SIGKILL at random moments; after reopening, every acknowledged write is there and
//! the store is consistent. The child is this test binary re-run on `crash_child`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rkube_store::sqlite::{SqliteOptions, SqliteStore};
use rkube_store::{ListOptions, Store};

const CHILD_DB: &str = "RKUBE_CRASH_CHILD_DB";
const TRIALS: usize = 30;
const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 16;

/// The child: writes forever from several tasks, printing `ACK <kind> <key> <revision> <value>`
/// after each acknowledged write. Run only by `acknowledged_writes_survive_kill_9`.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
fn crash_child() {
    let path = std::env::var(CHILD_DB).expect("run by the crash test");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(
            SqliteStore::open(
                &path,
                SqliteOptions {
                    compaction_interval: None,
                },
            )
            .unwrap(),
        );
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (store, out) = (store.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                let prefix = format!("/crash/{w}/");
                let mut live: HashMap<String, i64> = store
                    .list(&prefix, ListOptions::default())
                    .await
                    .unwrap()
                    .kvs
                    .into_iter()
                    .map(|kv| (kv.key, kv.mod_revision))
                    .collect();
                let mut n: u64 = 0;
                loop {
                    n += 1;
                    let (key, delete) = {
                        let mut rng = rand::rng();
                        (
                            format!("{prefix}{}", rng.random_range(0..KEYS_PER_WRITER)),
                            rng.random_bool(0.2),
                        )
                    };
                    let size = if n.is_multiple_of(7) { 20_000 } else { 100 };
                    let value = format!("{key}#{n}#{}", "v".repeat(size));
                    let line = match live.get(&key).copied() {
                        None => {
                            let kv = store
                                .create(&key, Bytes::from(value.clone()))
                                .await
                                .unwrap();
                            live.insert(key.clone(), kv.mod_revision);
                            format!("ACK put {key} {} {value}", kv.mod_revision)
                        }
                        Some(rev) if delete => {
                            let d = store.delete(&key, Some(rev)).await.unwrap();
                            live.remove(&key);
                            format!("ACK delete {key} {} -", d.revision)
                        }
                        Some(rev) => {
                            let kv = store
                                .update(&key, Bytes::from(value.clone()), rev)
                                .await
                                .unwrap();
                            live.insert(key.clone(), kv.mod_revision);
                            format!("ACK put {key} {} {value}", kv.mod_revision)
                        }
                    };
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{line}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

struct Ack {
    kind: String,
    key: String,
    revision: i64,
    value: String,
}

fn parse(line: &str) -> Option<Ack> {
    let mut parts = line.splitn(5, ' ');
    if parts.next()? != "ACK" {
        return None;
    }
    Some(Ack {
        kind: parts.next()?.to_owned(),
        key: parts.next()?.to_owned(),
        revision: parts.next()?.parse().ok()?,
        value: parts.next()?.to_owned(),
    })
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut total_acks = 0;
    for trial in 0..TRIALS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DB, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ack) = parse(&line) {
                    if acks.is_empty() {
                        let _ = first_tx.send(());
                    }
                    acks.push(ack);
                }
            }
            acks
        });
        // Kill at a random moment once writing has begun.
        let started = first_rx.recv_timeout(Duration::from_secs(30));
        assert!(
            started.is_ok(),
            "trial {trial}: the child never acknowledged a write"
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        child.kill().unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        total_acks += acks.len();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = SqliteStore::open(
                &db,
                SqliteOptions {
                    compaction_interval: None,
                },
            )
            .unwrap_or_else(|e| panic!("trial {trial}: reopen after kill -9 failed: {e}"));
            let current = store.current_revision().await.unwrap();
            for ack in &acks {
                assert!(
                    current >= ack.revision,
                    "trial {trial}: revision {current} behind acknowledged {}",
                    ack.revision
                );
                let got = store.get(&ack.key, Some(ack.revision)).await.unwrap();
                match ack.kind.as_str() {
                    "put" => {
                        let kv = got.kv.unwrap_or_else(|| {
                            panic!(
                                "trial {trial}: acknowledged write of {} at {} lost",
                                ack.key, ack.revision
                            )
                        });
                        assert_eq!(kv.mod_revision, ack.revision, "trial {trial}: {}", ack.key);
                        assert_eq!(
                            kv.value,
                            Bytes::from(ack.value.clone()),
                            "trial {trial}: {}",
                            ack.key
                        );
                    }
                    _ => assert_eq!(
                        got.kv, None,
                        "trial {trial}: acknowledged delete of {} at {} lost",
                        ack.key, ack.revision
                    ),
                }
            }
            let problems = store.check_consistency().await.unwrap();
            assert!(
                problems.is_empty(),
                "trial {trial}: inconsistent store: {problems:?}"
            );
            // Still writable, and revisions go on from where they were.
            let kv = store
                .create(&format!("/after/{trial}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
            assert_eq!(kv.mod_revision, current + 1);
        });
    }
    assert!(
        total_acks > TRIALS * 10,
        "too few acknowledged writes ({total_acks}) to mean anything"
    );
}
