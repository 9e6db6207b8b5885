//! The conformance suite: every backend must pass each case unchanged.

use bytes::Bytes;
use rkube_store::{Error, EventKind, ListOptions, Store, WatchResponse, MAX_VALUE_SIZE};

use super::{assert_quiet, next_events};

fn v(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub async fn create_then_get(store: &dyn Store) {
    let before = store.current_revision().await.unwrap();
    let kv = store.create("/a/one", v("1")).await.unwrap();
    assert_eq!(kv.key, "/a/one");
    assert_eq!(kv.value, v("1"));
    assert_eq!(kv.mod_revision, before + 1);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(store.current_revision().await.unwrap(), kv.mod_revision);

    let got = store.get("/a/one", None).await.unwrap();
    assert_eq!(got.kv, Some(kv.clone()));
    assert_eq!(got.revision, kv.mod_revision);

    let missing = store.get("/a/two", None).await.unwrap();
    assert_eq!(missing.kv, None);
    assert_eq!(missing.revision, kv.mod_revision);
}

pub async fn create_existing_fails(store: &dyn Store) {
    store.create("/k", v("1")).await.unwrap();
    let rev = store.current_revision().await.unwrap();
    match store.create("/k", v("2")).await {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, "/k"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev,
        "a failed create must not write"
    );
    assert_eq!(
        store.get("/k", None).await.unwrap().kv.unwrap().value,
        v("1")
    );
}

pub async fn update_compare_and_swap(store: &dyn Store) {
    let created = store.create("/k", v("1")).await.unwrap();
    let updated = store
        .update("/k", v("2"), created.mod_revision)
        .await
        .unwrap();
    assert_eq!(updated.value, v("2"));
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.mod_revision, created.mod_revision + 1);

    let rev = store.current_revision().await.unwrap();
    match store.update("/k", v("3"), created.mod_revision).await {
        Err(Error::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, "/k");
            assert_eq!(expected, created.mod_revision);
            assert_eq!(*current, updated, "a conflict carries the current value");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    match store.update("/missing", v("3"), 1).await {
        Err(Error::NotFound { key }) => assert_eq!(key, "/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev,
        "failed updates must not write"
    );
    assert_eq!(store.get("/k", None).await.unwrap().kv, Some(updated));
}

pub async fn delete_with_and_without_precondition(store: &dyn Store) {
    let a = store.create("/a", v("a")).await.unwrap();
    let deleted = store.delete("/a", None).await.unwrap();
    assert_eq!(deleted.prev_kv, a);
    assert_eq!(deleted.revision, a.mod_revision + 1);
    assert_eq!(store.get("/a", None).await.unwrap().kv, None);

    let b = store.create("/b", v("b")).await.unwrap();
    let rev = store.current_revision().await.unwrap();
    match store.delete("/b", Some(b.mod_revision - 1)).await {
        Err(Error::Conflict { current, .. }) => assert_eq!(*current, b),
        other => panic!("expected Conflict, got {other:?}"),
    }
    match store.delete("/nope", None).await {
        Err(Error::NotFound { key }) => assert_eq!(key, "/nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.delete("/nope", Some(3)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev,
        "failed deletes must not write"
    );
    let deleted = store.delete("/b", Some(b.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev_kv, b);

    // A key created again starts a new life.
    let again = store.create("/a", v("a2")).await.unwrap();
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > a.create_revision);
}

pub async fn revisions_are_global_and_monotonic(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let mut expected = start;
    for i in 0..5 {
        let kv = store.create(&format!("/r/{i}"), v("x")).await.unwrap();
        expected += 1;
        assert_eq!(kv.mod_revision, expected);
    }
    let kv = store.update("/r/0", v("y"), start + 1).await.unwrap();
    assert_eq!(kv.mod_revision, expected + 1);
    let d = store.delete("/r/1", None).await.unwrap();
    assert_eq!(d.revision, expected + 2);
    assert_eq!(store.current_revision().await.unwrap(), expected + 2);
}

pub async fn get_at_past_and_future_revisions(store: &dyn Store) {
    let c = store.create("/h", v("1")).await.unwrap();
    let u = store.update("/h", v("2"), c.mod_revision).await.unwrap();
    let d = store.delete("/h", None).await.unwrap();

    assert_eq!(
        store.get("/h", Some(c.mod_revision)).await.unwrap().kv,
        Some(c.clone())
    );
    assert_eq!(
        store.get("/h", Some(u.mod_revision)).await.unwrap().kv,
        Some(u.clone())
    );
    let at_delete = store.get("/h", Some(d.revision)).await.unwrap();
    assert_eq!(at_delete.kv, None);
    assert_eq!(at_delete.revision, d.revision);
    assert_eq!(
        store.get("/h", Some(c.mod_revision - 1)).await.unwrap().kv,
        None
    );
    // Revision 0 means the latest, as in etcd.
    let latest = store.get("/h", Some(0)).await.unwrap();
    assert_eq!((latest.kv, latest.revision), (None, d.revision));

    match store.get("/h", Some(d.revision + 10)).await {
        Err(Error::FutureRevision { requested, current }) => {
            assert_eq!(requested, d.revision + 10);
            assert_eq!(current, d.revision);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn list_by_prefix(store: &dyn Store) {
    for key in ["/a/2", "/a/1", "/ab", "/b/1", "/a/3"] {
        store.create(key, v(key)).await.unwrap();
    }
    store.delete("/a/3", None).await.unwrap();
    let rev = store.current_revision().await.unwrap();
    let list = store.list("/a/", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/1", "/a/2"]);
    assert_eq!(list.kvs[0].value, v("/a/1"));
    assert_eq!(list.revision, rev);
    assert_eq!(list.continue_token, None);
    assert_eq!(list.remaining, 0);

    let all = store.list("", ListOptions::default()).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/1", "/a/2", "/ab", "/b/1"]);
    assert!(store
        .list("/zzz/", ListOptions::default())
        .await
        .unwrap()
        .kvs
        .is_empty());
}

pub async fn list_pages_with_continue_tokens(store: &dyn Store) {
    for i in 0..5 {
        store.create(&format!("/p/{i}"), v("x")).await.unwrap();
    }
    store.create("/q", v("outside")).await.unwrap();
    let mut seen = Vec::new();
    let mut remaining = Vec::new();
    let mut options = ListOptions {
        limit: Some(2),
        ..Default::default()
    };
    let mut revisions = Vec::new();
    loop {
        let page = store.list("/p/", options.clone()).await.unwrap();
        assert!(page.kvs.len() <= 2);
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        remaining.push(page.remaining);
        revisions.push(page.revision);
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => break,
        }
    }
    assert_eq!(seen, ["/p/0", "/p/1", "/p/2", "/p/3", "/p/4"]);
    assert_eq!(remaining, [3, 1, 0]);
    assert!(revisions.windows(2).all(|w| w[0] == w[1]));

    // A limit that covers everything gives no token.
    let page = store
        .list(
            "/p/",
            ListOptions {
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 5);
    assert_eq!(page.continue_token, None);
}

pub async fn list_pages_are_a_consistent_snapshot(store: &dyn Store) {
    for i in 0..4 {
        store.create(&format!("/s/{i}"), v("old")).await.unwrap();
    }
    let first = store
        .list(
            "/s/",
            ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Changes after the first page are not visible in later pages.
    store.delete("/s/3", None).await.unwrap();
    store.create("/s/2a", v("new")).await.unwrap();
    let kv = store.get("/s/2", None).await.unwrap().kv.unwrap();
    store
        .update("/s/2", v("new"), kv.mod_revision)
        .await
        .unwrap();
    let second = store
        .list(
            "/s/",
            ListOptions {
                limit: Some(10),
                continue_token: first.continue_token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(second.revision, first.revision);
    let got: Vec<_> = second
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(got, [("/s/2", v("old")), ("/s/3", v("old"))]);
    assert_eq!(second.continue_token, None);
}

pub async fn list_at_past_revision(store: &dyn Store) {
    store.create("/l/a", v("1")).await.unwrap();
    let b = store.create("/l/b", v("1")).await.unwrap();
    let past = b.mod_revision;
    store.update("/l/b", v("2"), b.mod_revision).await.unwrap();
    store.delete("/l/a", None).await.unwrap();
    store.create("/l/c", v("1")).await.unwrap();

    let then = store
        .list(
            "/l/",
            ListOptions {
                revision: Some(past),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<_> = then
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(got, [("/l/a", v("1")), ("/l/b", v("1"))]);
    assert_eq!(then.revision, past);

    let paged = store
        .list(
            "/l/",
            ListOptions {
                revision: Some(past),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(paged.kvs.len(), 1);
    assert_eq!(paged.remaining, 1);
    let rest = store
        .list(
            "/l/",
            ListOptions {
                continue_token: paged.continue_token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rest.kvs
            .iter()
            .map(|kv| kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/l/b"]
    );

    let now = store.current_revision().await.unwrap();
    match store
        .list(
            "/l/",
            ListOptions {
                revision: Some(now + 1),
                ..Default::default()
            },
        )
        .await
    {
        Err(Error::FutureRevision { .. }) => {}
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn invalid_continue_tokens(store: &dyn Store) {
    for i in 0..3 {
        store.create(&format!("/t/{i}"), v("x")).await.unwrap();
    }
    let page = store
        .list(
            "/t/",
            ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let token = page.continue_token.unwrap();
    for (prefix, token) in [
        ("/t/", "not a token"),
        ("/t/", "Zm9v"),
        ("/other/", token.as_str()),
    ] {
        match store
            .list(
                prefix,
                ListOptions {
                    continue_token: Some(token.to_owned()),
                    ..Default::default()
                },
            )
            .await
        {
            Err(Error::InvalidContinue { .. }) => {}
            other => panic!("expected InvalidContinue for {token:?} on {prefix}, got {other:?}"),
        }
    }
}

pub async fn count_by_prefix(store: &dyn Store) {
    for key in ["/c/1", "/c/2", "/c/3", "/d/1"] {
        store.create(key, v("x")).await.unwrap();
    }
    store.delete("/c/2", None).await.unwrap();
    assert_eq!(store.count("/c/").await.unwrap(), 2);
    assert_eq!(store.count("/d/").await.unwrap(), 1);
    assert_eq!(store.count("/e/").await.unwrap(), 0);
    assert_eq!(store.count("").await.unwrap(), 3);
}

pub async fn watch_from_current_revision(store: &dyn Store) {
    store.create("/w/old", v("0")).await.unwrap();
    let rev = store.current_revision().await.unwrap();
    let mut watch = store.watch("/w/", rev).await.unwrap();
    let c = store.create("/w/a", v("1")).await.unwrap();
    let u = store.update("/w/a", v("2"), c.mod_revision).await.unwrap();
    let d = store.delete("/w/a", None).await.unwrap();
    let events = next_events(&mut watch, 3).await;

    assert_eq!(events[0].kind, EventKind::Create);
    assert_eq!(events[0].kv, c);
    assert_eq!(events[0].prev_kv, None);

    assert_eq!(events[1].kind, EventKind::Update);
    assert_eq!(events[1].kv, u);
    assert_eq!(events[1].prev_kv, Some(c.clone()));

    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(events[2].kv.key, "/w/a");
    assert_eq!(events[2].kv.mod_revision, d.revision);
    assert_eq!(events[2].kv.create_revision, c.create_revision);
    assert!(events[2].kv.value.is_empty());
    assert_eq!(events[2].prev_kv, Some(u));
    assert_quiet(&mut watch).await;
}

pub async fn watch_from_old_revision(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(
            store
                .create(&format!("/o/{i:02}"), v("x"))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    // From the beginning, and from the middle of the history.
    let mut watch = store.watch("/o/", start).await.unwrap();
    let events = next_events(&mut watch, 20).await;
    assert_eq!(
        events.iter().map(|e| e.revision()).collect::<Vec<_>>(),
        written
    );

    let mut watch = store.watch("/o/", written[9]).await.unwrap();
    let events = next_events(&mut watch, 10).await;
    assert_eq!(
        events.iter().map(|e| e.revision()).collect::<Vec<_>>(),
        written[10..]
    );
    // It carries on live after the replay.
    let live = store.create("/o/live", v("y")).await.unwrap();
    assert_eq!(next_events(&mut watch, 1).await[0].kv, live);
}

pub async fn watch_from_future_revision(store: &dyn Store) {
    let rev = store.current_revision().await.unwrap();
    let mut watch = store.watch("/f/", rev + 2).await.unwrap();
    store.create("/f/1", v("x")).await.unwrap();
    store.create("/f/2", v("x")).await.unwrap();
    let third = store.create("/f/3", v("x")).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv, third);
}

pub async fn watch_filters_by_prefix(store: &dyn Store) {
    let rev = store.current_revision().await.unwrap();
    let mut watch = store.watch("/x/", rev).await.unwrap();
    store.create("/xy", v("no")).await.unwrap();
    store.create("/y/1", v("no")).await.unwrap();
    let yes = store.create("/x/1", v("yes")).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv, yes);
    assert_quiet(&mut watch).await;
}

pub async fn watch_progress_reports_revision(store: &dyn Store) {
    let rev = store.current_revision().await.unwrap();
    let mut watch = store.watch("/pg/", rev).await.unwrap();
    store.create("/pg/1", v("x")).await.unwrap();
    // A write outside the prefix moves the revision without an event for this watch.
    let last = store.create("/other", v("x")).await.unwrap();
    watch.request_progress();
    let mut got_event = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, watch.recv())
            .await
            .expect("progress in time")
        {
            Some(Ok(WatchResponse::Events(events))) => {
                assert_eq!(events[0].kv.key, "/pg/1");
                got_event = true;
            }
            Some(Ok(WatchResponse::Progress(revision))) => {
                assert!(got_event, "progress must come after the events before it");
                assert!(
                    revision >= last.mod_revision,
                    "progress {revision} < last write {}",
                    last.mod_revision
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

pub async fn compaction_errors_and_keeps_state(store: &dyn Store) {
    let a = store.create("/cp/a", v("1")).await.unwrap();
    let b = store.create("/cp/b", v("1")).await.unwrap();
    let paged = store
        .list(
            "/cp/",
            ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let a2 = store.update("/cp/a", v("2"), a.mod_revision).await.unwrap();
    store.delete("/cp/b", None).await.unwrap();
    let keep = store.create("/cp/c", v("1")).await.unwrap();
    let compact_at = keep.mod_revision;
    store
        .update("/cp/c", v("2"), keep.mod_revision)
        .await
        .unwrap();

    store.compact(compact_at).await.unwrap();

    // The state at the compaction revision stays readable.
    let list = store
        .list(
            "/cp/",
            ListOptions {
                revision: Some(compact_at),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(list.kvs, vec![a2.clone(), keep.clone()]);
    assert_eq!(
        store.get("/cp/c", Some(compact_at)).await.unwrap().kv,
        Some(keep)
    );
    // Latest reads are unaffected.
    assert_eq!(store.get("/cp/a", None).await.unwrap().kv, Some(a2));

    let older = compact_at - 1;
    match store.get("/cp/a", Some(older)).await {
        Err(Error::Compacted { requested, .. }) => assert_eq!(requested, older),
        other => panic!("expected Compacted, got {other:?}"),
    }
    match store
        .list(
            "/cp/",
            ListOptions {
                revision: Some(b.mod_revision),
                ..Default::default()
            },
        )
        .await
    {
        Err(Error::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    match store
        .list(
            "/cp/",
            ListOptions {
                continue_token: paged.continue_token,
                ..Default::default()
            },
        )
        .await
    {
        Err(Error::Compacted { .. }) => {}
        other => panic!("expected Compacted for an old continue token, got {other:?}"),
    }
    match store.watch("/cp/", a.mod_revision).await {
        Err(Error::Compacted { .. }) => {}
        Ok(mut watch) => match watch.recv().await {
            Some(Err(Error::Compacted { .. })) => {}
            other => panic!("expected the watch to fail with Compacted, got {other:?}"),
        },
        Err(other) => panic!("expected Compacted, got {other:?}"),
    }
    // Watching from the compaction revision on still works.
    let mut watch = store.watch("/cp/", compact_at).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.value, v("2"));

    match store.compact(compact_at).await {
        Err(Error::Compacted { .. }) => {}
        other => panic!("compacting twice to the same revision: expected Compacted, got {other:?}"),
    }
    let now = store.current_revision().await.unwrap();
    match store.compact(now + 5).await {
        Err(Error::FutureRevision { .. }) => {}
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn value_size_limit(store: &dyn Store) {
    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    let kv = store.create("/big/ok", big.clone()).await.unwrap();
    assert_eq!(
        store.get("/big/ok", None).await.unwrap().kv.unwrap().value,
        big
    );

    let rev = store.current_revision().await.unwrap();
    let too_big = Bytes::from(vec![b'x'; MAX_VALUE_SIZE + 1]);
    match store.create("/big/no", too_big.clone()).await {
        Err(Error::ValueTooLarge { size, limit, .. }) => {
            assert_eq!(size, MAX_VALUE_SIZE + 1);
            assert_eq!(limit, MAX_VALUE_SIZE);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    match store.update("/big/ok", too_big, kv.mod_revision).await {
        Err(Error::ValueTooLarge { .. }) => {}
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev,
        "nothing written"
    );
    assert_eq!(store.get("/big/no", None).await.unwrap().kv, None);
}

pub async fn many_watchers_see_the_same_history(store: &dyn Store) {
    let rev = store.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(store.watch("/m/", rev).await.unwrap());
    }
    let mut expected = Vec::new();
    for i in 0..50 {
        expected.push(
            store
                .create(&format!("/m/{i}"), v("x"))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    for watch in &mut watches {
        let events = next_events(watch, 50).await;
        assert_eq!(
            events.iter().map(|e| e.revision()).collect::<Vec<_>>(),
            expected
        );
    }
}
