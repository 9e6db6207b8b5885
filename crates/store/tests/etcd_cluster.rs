//! The etcd backend on a 3-member cluster: acknowledged writes and a running watch
//! survive `kill -9` of the leader; and the backend's etcd-specific error details.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_store::etcd::{EtcdOptions, EtcdStore};
use rkube_store::{Error, Event, EventKind, Revision, Store, WatchResponse, WatchStream};
use rkube_testkit::EtcdCluster;
use tokio::sync::watch;
use tokio::time::Instant;

const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 4;
const PREFIX: &str = "/cluster/";

/// One write a writer made: acknowledged, or with an unknown outcome (it timed out or
/// its connection broke, so it may or may not have been applied).
#[derive(Clone, Debug)]
struct Write {
    key: String,
    value: Bytes,
    /// The revision etcd acknowledged; `None` when the outcome is unknown.
    revision: Option<Revision>,
    at: Instant,
}

/// What a writer did.
#[derive(Debug, Default)]
struct WriterLog {
    writes: Vec<Write>,
    errors: usize,
}

/// Creates and then updates its own keys until `stop`; each value is unique.
async fn writer(store: Arc<EtcdStore>, id: usize, stop: watch::Receiver<bool>) -> WriterLog {
    let mut log = WriterLog::default();
    // The mod revision this writer believes each key has (`None`: not created yet,
    // or unknown after an ambiguous write).
    let mut known: Vec<Option<Option<Revision>>> = vec![Some(None); KEYS_PER_WRITER];
    let padding = "x".repeat(200);
    let mut seq = 0usize;
    while !*stop.borrow() {
        let k = seq % KEYS_PER_WRITER;
        let key = format!("{PREFIX}w{id}/k{k}");
        let value = Bytes::from(format!("w{id}-{seq}-{padding}"));
        seq += 1;
        let state = match known[k] {
            Some(state) => state,
            None => match store.get(&key, None).await {
                // Resynchronise after an ambiguous write.
                Ok(got) => got.kv.map(|kv| kv.mod_revision),
                Err(_) => {
                    log.errors += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let result = match state {
            None => store.create(&key, value.clone()).await,
            Some(revision) => store.update(&key, value.clone(), revision).await,
        };
        let at = Instant::now();
        match result {
            Ok(kv) => {
                assert_eq!(kv.value, value);
                known[k] = Some(Some(kv.mod_revision));
                log.writes.push(Write {
                    key,
                    value,
                    revision: Some(kv.mod_revision),
                    at,
                });
            }
            Err(Error::Conflict { current, .. }) => {
                // An earlier ambiguous write was applied after all.
                known[k] = Some(Some(current.mod_revision));
            }
            Err(Error::AlreadyExists { .. }) => known[k] = None,
            Err(err @ (Error::Etcd(_) | Error::Timeout { .. })) => {
                log.errors += 1;
                known[k] = None;
                log.writes.push(Write {
                    key,
                    value,
                    revision: None,
                    at,
                });
                report(id, &err);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("writer {id}: unexpected error {other}"),
        }
    }
    log
}

/// Errors are expected while the cluster elects a new leader; shown on request.
fn report(id: usize, err: &Error) {
    if std::env::var_os("RKUBE_TEST_VERBOSE").is_some() {
        eprintln!("writer {id}: {err}");
    }
}

/// Collects the watch's events until it reports progress at or past the revision sent
/// on `until`; fails the test if the watch fails or ends.
async fn collect(
    mut watch: WatchStream,
    mut until: watch::Receiver<Option<Revision>>,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            msg = watch.recv() => match msg {
                Some(Ok(WatchResponse::Events(batch))) => events.extend(batch),
                Some(Ok(WatchResponse::Progress(revision))) => {
                    if until.borrow().is_some_and(|end| revision >= end) {
                        return events;
                    }
                }
                Some(Err(err)) => panic!("watch failed after {} events: {err}", events.len()),
                None => panic!("watch ended after {} events", events.len()),
            },
            _ = tick.tick() => {
                if until.borrow_and_update().is_some() {
                    watch.request_progress();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_and_watch_survive_leader_kill() {
    let mut cluster = EtcdCluster::start(3).expect("start etcd");
    let options = EtcdOptions {
        timeout: Duration::from_secs(2),
    };
    let store = Arc::new(
        EtcdStore::connect(&cluster.client_endpoints(), options)
            .await
            .expect("connect"),
    );
    let start = store.current_revision().await.unwrap();
    let (until_tx, until_rx) = watch::channel(None);
    let collector = tokio::spawn(collect(store.watch(PREFIX, start).await.unwrap(), until_rx));

    let (stop_tx, stop_rx) = watch::channel(false);
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(store.clone(), id, stop_rx.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = tokio::task::block_in_place(|| cluster.leader_index()).expect("leader");
    cluster.kill_member(leader);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop_tx.send(true).unwrap();

    let mut logs = Vec::new();
    for task in writers {
        logs.push(task.await.expect("writer"));
    }
    let end = store
        .current_revision()
        .await
        .expect("the store answers after the election");
    until_tx.send(Some(end)).unwrap();
    let events = tokio::time::timeout(Duration::from_secs(30), collector)
        .await
        .expect("watch drained")
        .unwrap();

    // The backend recovered: every writer got writes acknowledged soon after the kill.
    for (id, log) in logs.iter().enumerate() {
        let first_after = log
            .writes
            .iter()
            .filter(|w| w.revision.is_some() && w.at > killed_at)
            .map(|w| w.at)
            .min();
        let first_after = first_after
            .unwrap_or_else(|| panic!("writer {id}: no write acknowledged after the kill"));
        let recovery = first_after - killed_at;
        eprintln!(
            "writer {id}: {} writes, {} errors, wrote again {recovery:?} after the kill",
            log.writes.len(),
            log.errors
        );
        assert!(
            recovery < Duration::from_secs(10),
            "writer {id} needed {recovery:?} to write again"
        );
        assert!(
            log.writes
                .iter()
                .any(|w| w.revision.is_some() && w.at < killed_at),
            "writer {id} wrote before"
        );
    }
    let writes: Vec<&Write> = logs.iter().flat_map(|l| &l.writes).collect();
    let acked: Vec<&Write> = writes
        .iter()
        .copied()
        .filter(|w| w.revision.is_some())
        .collect();
    let errors: usize = logs.iter().map(|l| l.errors).sum();
    eprintln!(
        "{} writes acknowledged, {} ambiguous, {errors} errors",
        acked.len(),
        writes.len() - acked.len()
    );

    // Every acknowledged write is readable at its revision.
    for w in &acked {
        let revision = w.revision.unwrap();
        let got = store
            .get(&w.key, Some(revision))
            .await
            .unwrap()
            .kv
            .expect("acknowledged write present");
        assert_eq!(
            (got.mod_revision, &got.value),
            (revision, &w.value),
            "{}",
            w.key
        );
    }

    // The watch saw each revision of the run exactly once, in order, with no gap
    // (only this test writes to the cluster).
    let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
    assert_eq!(
        revisions,
        (start + 1..=end).collect::<Vec<_>>(),
        "watch revisions"
    );

    // Each event is one of the writes; every acknowledged one is there with its revision.
    let by_value: HashMap<&Bytes, &Write> = writes.iter().map(|w| (&w.value, *w)).collect();
    let mut seen = HashMap::new();
    for e in &events {
        let w = by_value
            .get(&e.kv.value)
            .unwrap_or_else(|| panic!("event for an unknown write: {e:?}"));
        assert_eq!(e.kv.key, w.key);
        if let Some(revision) = w.revision {
            assert_eq!(e.revision(), revision, "acknowledged revision of {}", w.key);
        }
        seen.insert(e.kv.value.clone(), e.revision());
    }
    for w in &acked {
        assert!(
            seen.contains_key(&w.value),
            "the watch missed {} at {:?}",
            w.key,
            w.revision
        );
    }

    // Per key, the events form an unbroken chain, and replaying them gives the final state.
    let mut state: BTreeMap<String, rkube_store::KeyValue> = BTreeMap::new();
    for e in &events {
        let prev = state.get(&e.kv.key);
        match e.kind {
            EventKind::Create => {
                assert!(prev.is_none(), "create of a live key: {e:?}");
                assert_eq!(e.kv.create_revision, e.kv.mod_revision);
            }
            EventKind::Update => {
                let prev = prev.unwrap_or_else(|| panic!("update of a missing key: {e:?}"));
                assert_eq!(
                    e.prev_kv.as_ref(),
                    Some(prev),
                    "previous value of {}",
                    e.kv.key
                );
                assert_eq!(e.kv.create_revision, prev.create_revision);
            }
            EventKind::Delete => panic!("nobody deletes: {e:?}"),
        }
        state.insert(e.kv.key.clone(), e.kv.clone());
    }
    let list = store.list(PREFIX, Default::default()).await.unwrap();
    assert_eq!(list.revision, end);
    assert_eq!(
        list.kvs,
        state.into_values().collect::<Vec<_>>(),
        "final state"
    );

    // The killed member comes back and catches up.
    tokio::task::block_in_place(|| cluster.restart_member(leader)).expect("restart");
    let single = EtcdStore::connect(
        &cluster.client_endpoints()[leader..=leader],
        EtcdOptions::default(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while single.current_revision().await.unwrap() < end {
        assert!(
            Instant::now() < deadline,
            "restarted member did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(single.count(PREFIX).await.unwrap(), list.kvs.len() as u64);
}

/// Creates `key`, finding out whether a create whose answer was lost was applied.
async fn create_surely(store: &EtcdStore, key: &str, value: &str) -> rkube_store::KeyValue {
    let value = Bytes::copy_from_slice(value.as_bytes());
    for _ in 0..10 {
        match store.create(key, value.clone()).await {
            Ok(kv) => return kv,
            // The connection to the killed member broke under this request.
            Err(Error::Etcd(_) | Error::Timeout { .. }) => {
                if let Ok(got) = store.get(key, None).await {
                    if let Some(kv) = got.kv {
                        return kv;
                    }
                }
            }
            Err(err) => panic!("create {key}: {err}"),
        }
    }
    panic!("create {key} kept failing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_its_member_restarts() {
    let mut cluster = EtcdCluster::start(3).expect("start etcd");
    let endpoints = cluster.client_endpoints();
    let options = EtcdOptions {
        timeout: Duration::from_secs(2),
    };
    let writer = EtcdStore::connect(&endpoints, options.clone())
        .await
        .unwrap();
    // The watch's only way in is a follower, so killing that must break the watch
    // (and no election slows the writes down).
    let follower =
        (tokio::task::block_in_place(|| cluster.leader_index()).expect("leader") + 1) % 3;
    let watcher = EtcdStore::connect(&endpoints[follower..=follower], options)
        .await
        .unwrap();
    let start = writer.current_revision().await.unwrap();
    let mut watch = watcher.watch("/resume/", start).await.unwrap();

    let mut written = Vec::new();
    for i in 0..30 {
        if i == 10 {
            cluster.kill_member(follower);
        }
        if i == 20 {
            tokio::task::block_in_place(|| cluster.restart_member(follower)).expect("restart");
        }
        written.push(create_surely(&writer, &format!("/resume/{i:02}"), &format!("v{i}")).await);
        // Writes outside the prefix move the revision without events for the watch.
        create_surely(&writer, &format!("/other/{i:02}"), "x").await;
    }
    let end = writer.current_revision().await.unwrap();

    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    watch.request_progress();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), watch.recv());
        match tokio::time::timeout_at(deadline, next)
            .await
            .expect("watch caught up in time")
        {
            Ok(Some(Ok(WatchResponse::Events(batch)))) => events.extend(batch),
            Ok(Some(Ok(WatchResponse::Progress(revision)))) if revision >= end => break,
            Ok(Some(Ok(WatchResponse::Progress(_)))) | Err(_) => watch.request_progress(),
            Ok(Some(Err(err))) => panic!("watch failed after {} events: {err}", events.len()),
            Ok(None) => panic!("watch ended after {} events", events.len()),
        }
    }
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.kv.clone())).collect();
    let want: Vec<_> = written
        .into_iter()
        .map(|kv| (EventKind::Create, kv))
        .collect();
    assert_eq!(
        got, want,
        "every change exactly once, in order, across the member's restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_errors_carry_etcd_numbers() {
    let cluster = EtcdCluster::start(1).expect("start etcd");
    let options = EtcdOptions {
        timeout: Duration::from_secs(2),
    };
    let store = EtcdStore::connect(&cluster.client_endpoints(), options)
        .await
        .unwrap();
    let first = store
        .create("/e/a", Bytes::from_static(b"1"))
        .await
        .unwrap();
    let second = store
        .update("/e/a", Bytes::from_static(b"2"), first.mod_revision)
        .await
        .unwrap();
    let third = store
        .update("/e/a", Bytes::from_static(b"3"), second.mod_revision)
        .await
        .unwrap();
    store.compact(third.mod_revision).await.unwrap();

    let expect_compacted = |result: Result<(), Error>, requested: Revision| match result {
        Err(Error::Compacted {
            requested: r,
            compacted,
        }) => {
            assert_eq!((r, compacted), (requested, third.mod_revision));
        }
        other => panic!("expected Compacted, got {other:?}"),
    };
    expect_compacted(
        store.get("/e/a", Some(first.mod_revision)).await.map(drop),
        first.mod_revision,
    );
    expect_compacted(store.compact(third.mod_revision).await, third.mod_revision);
    expect_compacted(
        store.compact(second.mod_revision).await,
        second.mod_revision,
    );
    expect_compacted(
        store.watch("/e/", second.mod_revision).await.map(drop),
        second.mod_revision,
    );
    // Watching from the compacted revision on is allowed, as with the SQLite backend.
    drop(store.watch("/e/", third.mod_revision).await.unwrap());

    match store.get("/e/a", Some(third.mod_revision + 5)).await {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!(
                (requested, current),
                (third.mod_revision + 5, third.mod_revision)
            );
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    // A call that cannot finish in time reports the deadline.
    drop(cluster);
    let options = EtcdOptions {
        timeout: Duration::from_millis(300),
    };
    match store.create("/e/b", Bytes::from_static(b"1")).await {
        Err(Error::Timeout { .. } | Error::Etcd(_)) => {}
        other => panic!("expected an error with etcd gone, got {other:?}"),
    }
    let started = Instant::now();
    match EtcdStore::connect(&["http://127.0.0.1:9".to_owned()], options).await {
        Err(Error::Timeout { .. } | Error::Etcd(_)) => {}
        other => panic!("expected an error connecting to nothing, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "connect gave up after its deadline"
    );
}
