//! The watch-ordering property: concurrent writers, watches opened at random revisions,
//! and every watch must see exactly the committed history after its start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rkube_store::{
    Error, Event, EventKind, KeyValue, ListOptions, Revision, Store, WatchResponse, WatchStream,
};

/// One write a writer attempts.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Create(usize),
    Update(usize),
    Delete(usize),
}

/// When to open one watch: after `delay_ms`, at a revision `fraction` of the way from
/// the start of the run to the current revision.
#[derive(Clone, Copy, Debug)]
pub struct WatchPoint {
    pub delay_ms: u64,
    pub fraction: f64,
}

#[derive(Clone, Debug)]
struct Committed {
    revision: Revision,
    kind: EventKind,
    key: String,
    value: Bytes,
}

async fn run_writer(
    store: Arc<dyn Store>,
    prefix: String,
    writer: usize,
    steps: Vec<Step>,
) -> Vec<Committed> {
    let mut done = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        let value = Bytes::from(format!("w{writer}-{i}"));
        let (key, kind, result) = match step {
            Step::Create(k) => {
                let key = format!("{prefix}{k}");
                let r = store
                    .create(&key, value.clone())
                    .await
                    .map(|kv| kv.mod_revision);
                (key, EventKind::Create, r)
            }
            Step::Update(k) => {
                let key = format!("{prefix}{k}");
                let r = match store.get(&key, None).await.expect("get").kv {
                    Some(kv) => store
                        .update(&key, value.clone(), kv.mod_revision)
                        .await
                        .map(|kv| kv.mod_revision),
                    None => Err(Error::NotFound { key: key.clone() }),
                };
                (key, EventKind::Update, r)
            }
            Step::Delete(k) => {
                let key = format!("{prefix}{k}");
                let r = store.delete(&key, None).await.map(|d| d.revision);
                (key, EventKind::Delete, r)
            }
        };
        match result {
            Ok(revision) => done.push(Committed {
                revision,
                kind,
                key,
                value: if kind == EventKind::Delete {
                    Bytes::new()
                } else {
                    value
                },
            }),
            Err(Error::AlreadyExists { .. } | Error::NotFound { .. } | Error::Conflict { .. }) => {}
            Err(e) => panic!("write failed: {e}"),
        }
    }
    done
}

/// Receives until the watch reports progress at or past `until`.
async fn drain(mut watch: WatchStream, until: Revision) -> Vec<Event> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    watch.request_progress();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(200), watch.recv());
        match tokio::time::timeout_at(deadline, next)
            .await
            .expect("watch drained in time")
        {
            Ok(Some(Ok(WatchResponse::Events(batch)))) => events.extend(batch),
            Ok(Some(Ok(WatchResponse::Progress(revision)))) => {
                if revision >= until {
                    return events;
                }
                watch.request_progress();
            }
            Ok(Some(Err(e))) => panic!("watch failed: {e}"),
            Ok(None) => panic!("watch ended early"),
            Err(_) => watch.request_progress(),
        }
    }
}

/// Runs the writers and watches, then checks every watch against the history.
/// `exclusive`: the store holds nothing but this run, so revisions must be contiguous.
pub async fn check(
    store: Arc<dyn Store>,
    prefix: &str,
    writers: Vec<Vec<Step>>,
    points: Vec<WatchPoint>,
    exclusive: bool,
) {
    let start = store.current_revision().await.unwrap();
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, steps)| tokio::spawn(run_writer(store.clone(), prefix.to_owned(), i, steps)))
        .collect();
    let mut watches = Vec::new();
    for point in points {
        tokio::time::sleep(Duration::from_millis(point.delay_ms)).await;
        let now = store.current_revision().await.unwrap();
        let after = start + ((now - start) as f64 * point.fraction) as Revision;
        watches.push((after, store.watch(prefix, after).await.unwrap()));
    }
    let mut history = Vec::new();
    for task in tasks {
        history.extend(task.await.unwrap());
    }
    history.sort_by_key(|c| c.revision);
    let end = store.current_revision().await.unwrap();
    if exclusive {
        let revisions: Vec<_> = history.iter().map(|c| c.revision).collect();
        let contiguous: Vec<_> = (start + 1..=end).collect();
        assert_eq!(
            revisions, contiguous,
            "every acknowledged write has its own revision, with no gap"
        );
    }

    // Replay the history into the events a watch must deliver, and the final state.
    let mut live: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut expected = Vec::new();
    for c in &history {
        let prev = live.get(&c.key).cloned();
        let create_revision = match c.kind {
            EventKind::Create => c.revision,
            _ => {
                prev.as_ref()
                    .expect("update/delete of a live key")
                    .create_revision
            }
        };
        let kv = KeyValue {
            key: c.key.clone(),
            value: c.value.clone(),
            create_revision,
            mod_revision: c.revision,
        };
        match c.kind {
            EventKind::Delete => live.remove(&c.key),
            _ => live.insert(c.key.clone(), kv.clone()),
        };
        expected.push(Event {
            kind: c.kind,
            kv,
            prev_kv: prev,
        });
    }

    for (after, watch) in watches {
        let got = drain(watch, end).await;
        let want: Vec<_> = expected
            .iter()
            .filter(|e| e.revision() > after)
            .cloned()
            .collect();
        assert_eq!(got.len(), want.len(), "watch after {after}: event count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "watch after {after}");
        }
    }

    let list = store
        .list(
            prefix,
            ListOptions {
                revision: Some(end),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        list.kvs,
        live.into_values().collect::<Vec<_>>(),
        "final state"
    );
}
