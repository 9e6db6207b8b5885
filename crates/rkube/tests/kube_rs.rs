//! kube-rs (the Rust client) against `rkube server` over mutual TLS: typed CRUD, a
//! reflector fed by a watcher (list+watch and streaming lists), recovery from 410 Gone
//! when its resourceVersion falls out of the watch cache, and a Controller.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::Action;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Config};
use support::Cluster;

async fn client(c: &Cluster) -> Client {
    let kubeconfig = Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Default::default()
    }
}

/// Waits until `check` holds, polling every 50 ms, for at most `secs`.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn typed_crud() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    runtime().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        let created = api
            .create(&PostParams::default(), &cm("kube"))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some());
        let patched = api
            .patch(
                "kube",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"k": "v2"}})),
            )
            .await
            .unwrap();
        assert_eq!(patched.data.unwrap()["k"], "v2");
        let listed = api.list(&ListParams::default().labels("")).await.unwrap();
        assert_eq!(listed.items.len(), 1);
        assert!(listed.metadata.resource_version.is_some());
        match api.create(&PostParams::default(), &cm("kube")).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"))
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        api.delete("kube", &DeleteParams::default()).await.unwrap();
        match api.get("kube").await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
            other => panic!("expected NotFound, got {other:?}"),
        }
    });
}

#[test]
fn server_side_apply() {
    let c = Cluster::start(&[]);
    runtime().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa", "labels": {"owner": "kube-rs"}},
            "data": {"a": "1", "b": "2"}
        });
        let params = PatchParams::apply("kube-rs-test");
        let created = api.patch("ssa", &params, &Patch::Apply(&config)).await.unwrap();
        let fields = created.metadata.managed_fields.clone().unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].manager.as_deref(), Some("kube-rs-test"));
        assert_eq!(fields[0].operation.as_deref(), Some("Apply"));

        // Re-applying without "b" removes it.
        let mut less = config.clone();
        less["data"] = serde_json::json!({"a": "1"});
        let applied = api.patch("ssa", &params, &Patch::Apply(&less)).await.unwrap();
        assert_eq!(applied.data.unwrap().len(), 1);

        // Another manager changing "a" conflicts, then forces.
        let other = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "9"}});
        match api
            .patch("ssa", &PatchParams::apply("intruder"), &Patch::Apply(&other))
            .await
        {
            Err(kube::Error::Api(s)) => {
                assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
                assert_eq!(
                    s.message,
                    "Apply failed with 1 conflict: conflict with \"kube-rs-test\": .data.a"
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        let forced = api
            .patch("ssa", &PatchParams::apply("intruder").force(), &Patch::Apply(&other))
            .await
            .unwrap();
        assert_eq!(forced.data.unwrap()["a"], "9");
    });
}

async fn reflect(c: &Cluster, config: watcher::Config) {
    let client = client(c).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api.clone(), config)).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    let names = || {
        let mut n: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        n.sort();
        n
    };
    eventually(10, "the initial list", || names() == ["before"]).await;
    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    eventually(10, "the created object", || names() == ["after", "before"]).await;
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the deletion", || names() == ["after"]).await;
    task.abort();
}

#[test]
fn reflector_with_list_and_watch() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    runtime().block_on(reflect(&c, watcher::Config::default()));
}

#[test]
fn reflector_with_streaming_lists() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    runtime().block_on(reflect(&c, watcher::Config::default().streaming_lists()));
}

#[test]
fn watcher_recovers_from_410_gone() {
    // A tiny replay window: after writes elsewhere, the watcher's resourceVersion is too
    // old when its 1 s watches end and restart, so it must relist (410 Gone) and go on.
    let c = Cluster::start(&["--default-watch-cache-size", "3"]);
    runtime().block_on(async {
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let elsewhere: Api<ConfigMap> = Api::namespaced(client, "kube-system");
        let (reader, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(api.clone(), watcher::Config::default().timeout(1)),
        );
        let task = tokio::spawn(stream.for_each(|_| async {}));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..10 {
            elsewhere
                .create(&PostParams::default(), &cm(&format!("noise-{i}")))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        api.create(&PostParams::default(), &cm("seen"))
            .await
            .unwrap();
        eventually(15, "the object created after the 410", || {
            reader
                .state()
                .iter()
                .any(|o| o.metadata.name.as_deref() == Some("seen"))
        })
        .await;
        task.abort();
    });
}

#[test]
fn controller_reconciles() {
    let c = Cluster::start(&[]);
    runtime().block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "default");
        async fn reconcile(
            obj: Arc<ConfigMap>,
            api: Arc<Api<ConfigMap>>,
        ) -> Result<Action, kube::Error> {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if obj
                .metadata
                .annotations
                .as_ref()
                .is_none_or(|a| !a.contains_key("reconciled"))
            {
                let patch = serde_json::json!({"metadata": {"annotations": {"reconciled": "yes"}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
            }
            Ok(Action::await_change())
        }
        fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Api<ConfigMap>>) -> Action {
            Action::requeue(Duration::from_millis(200))
        }
        let controller = Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, error_policy, Arc::new(api.clone()))
            .for_each(|_| async {});
        let task = tokio::spawn(controller);
        api.create(&PostParams::default(), &cm("managed"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = api.get("managed").await.unwrap();
            if got
                .metadata
                .annotations
                .is_some_and(|a| a.get("reconciled").map(String::as_str) == Some("yes"))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the controller never reconciled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        task.abort();
    });
}
