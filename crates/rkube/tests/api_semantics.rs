//! API semantics checked over raw HTTPS (curl with the admin client certificate), where
//! kubectl would hide the details: status codes and Status bodies for bad input, optimistic
//! concurrency, watch resourceVersion semantics, bookmarks and streaming initial events.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{curl, Cluster};

fn status(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status ({e}): {body}"))
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[test]
fn bad_input_gets_upstream_errors_and_writes_nothing() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(b"{not json"), &[]);
    assert_eq!(code, 400, "{body}");
    assert_eq!(status(&body)["reason"], "BadRequest");

    let big = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}})).unwrap();
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&big), &[]);
    assert_eq!(code, 413, "{body}");
    assert_eq!(status(&body)["reason"], "RequestEntityTooLarge");

    let secret = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .unwrap();
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&secret), &[]);
    assert_eq!(code, 400, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .contains("does not match the expected kind"),
        "{body}"
    );

    let (code, body) = curl(
        &c,
        "POST",
        CMS,
        "application/vnd.kubernetes.protobuf",
        Some(b"k8s\0\x0a\xff"),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("error decoding protobuf request body"),
        "{body}"
    );
    let (code, body) = curl(&c, "POST", CMS, "application/cbor", Some(b"\xa0"), &[]);
    assert_eq!(code, 415, "{body}");
    assert_eq!(status(&body)["reason"], "UnsupportedMediaType");

    let (code, body) = curl(
        &c,
        "GET",
        "/api/v1/namespaces/default/nosuchthings",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 404, "{body}");

    let (code, body) = curl(&c, "GET", CMS, "application/json", None, &[]);
    assert_eq!(code, 200);
    assert_eq!(status(&body)["items"], json!([]), "nothing was written");
}

#[test]
fn updates_use_optimistic_concurrency() {
    let c = Cluster::start(&[]);
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&cm("a")), &[]);
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();

    let mut missing_rv = created.clone();
    missing_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (code, body) = curl(
        &c,
        "PUT",
        &format!("{CMS}/a"),
        "application/json",
        Some(&serde_json::to_vec(&missing_rv).unwrap()),
        &[],
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        status(&body)["message"].as_str().unwrap().contains(
            "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        ),
        "{body}"
    );

    let mut update = created.clone();
    update["data"]["k"] = json!("v2");
    let (code, body) = curl(
        &c,
        "PUT",
        &format!("{CMS}/a"),
        "application/json",
        Some(&serde_json::to_vec(&update).unwrap()),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let updated: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_ne!(
        updated["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // The same stale resourceVersion again: 409 with upstream's message.
    let (code, body) = curl(
        &c,
        "PUT",
        &format!("{CMS}/a"),
        "application/json",
        Some(&serde_json::to_vec(&update).unwrap()),
        &[],
    );
    assert_eq!(code, 409, "{body}");
    let s = status(&body);
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(s["message"], "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again");

    // generateName, and dryRun writes nothing.
    let gen = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
    )
    .unwrap();
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&gen), &[]);
    assert_eq!(code, 201, "{body}");
    let name = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    let (code, _) = curl(
        &c,
        "POST",
        &format!("{CMS}?dryRun=All"),
        "application/json",
        Some(&cm("dry")),
        &[],
    );
    assert_eq!(code, 201);
    let (code, _) = curl(
        &c,
        "GET",
        &format!("{CMS}/dry"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 404, "a dry run writes nothing");
}

/// Streams `url` with curl (admin certificate) on a thread until the server ends it.
fn watch_in_background(c: &Cluster, url: String) -> std::thread::JoinHandle<String> {
    watch_in_background_with(c, url, &[])
}

/// [`watch_in_background`] with extra curl arguments (headers).
fn watch_in_background_with(
    c: &Cluster,
    url: String,
    extra: &[&str],
) -> std::thread::JoinHandle<String> {
    let pki = c.data_dir().join("pki");
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let out = Command::new("curl")
            .args(["-sS", "-N"])
            .args(&extra)
            .arg("--cacert")
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// Reads a finished watch stream into its events.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

#[test]
fn watch_semantics() {
    // A two-revision replay window, so that an old resourceVersion falls out of it.
    let c = Cluster::start(&[
        "--default-watch-cache-size",
        "2",
        support::WITHOUT_ROOT_CA_CONFIGMAPS[0],
    ]);
    let (_, body) = curl(&c, "POST", CMS, "application/json", Some(&cm("one")), &[]);
    let one_rv: i64 = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    curl(&c, "POST", CMS, "application/json", Some(&cm("two")), &[]);

    // Without a resourceVersion a watch starts with the current objects.
    let (code, body) = curl(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200);
    let evs = events(&body);
    let added: Vec<_> = evs
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(added, [("ADDED", "one"), ("ADDED", "two")]);

    // From a resourceVersion: only what came after it.
    let (_, body) = curl(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1&resourceVersion={one_rv}"),
        "application/json",
        None,
        &[],
    );
    let evs = events(&body);
    assert_eq!(evs.len(), 1, "{body}");
    assert_eq!(evs[0]["object"]["metadata"]["name"], "two");

    // Older than the watch cache's window: one ERROR event carrying 410 Expired.
    let (code, body) = curl(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1&resourceVersion=1"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200);
    let evs = events(&body);
    assert_eq!(evs.len(), 1, "{body}");
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
    assert!(
        evs[0]["object"]["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version: 1 ("),
        "{body}"
    );

    // Streaming lists: initial events, then a bookmark marking their end.
    let (_, body) = curl(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        "application/json",
        None,
        &[],
    );
    let evs = events(&body);
    assert_eq!(evs.len(), 3, "{body}");
    assert_eq!(evs[2]["type"], "BOOKMARK");
    assert_eq!(
        evs[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // Label selectors apply to watches, with transitions reported as ADDED/DELETED.
    let watch = watch_in_background(&c, format!("https://{}{CMS}?watch=true&timeoutSeconds=4&labelSelector=team%3Dblue&resourceVersion={one_rv}", c.addr));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let label = |v: &str| format!(r#"{{"metadata":{{"labels":{{"team":"{v}"}}}}}}"#);
    curl(
        &c,
        "PATCH",
        &format!("{CMS}/one"),
        "application/merge-patch+json",
        Some(label("blue").as_bytes()),
        &[],
    );
    curl(
        &c,
        "PATCH",
        &format!("{CMS}/one"),
        "application/merge-patch+json",
        Some(label("red").as_bytes()),
        &[],
    );
    let body = watch.join().unwrap();
    let kinds: Vec<_> = events(&body)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["ADDED", "DELETED"], "{body}");
}

#[test]
fn bookmarks_report_progress() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let (_, body) = curl(&c, "GET", CMS, "application/json", None, &[]);
    let rv = serde_json::from_str::<Value>(&body).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = watch_in_background(&c, format!("https://{}{CMS}?watch=true&timeoutSeconds=13&allowWatchBookmarks=true&resourceVersion={rv}", c.addr));
    // A write elsewhere moves the revision without an event for this watch.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, _) = curl(
        &c,
        "POST",
        "/api/v1/namespaces/kube-system/configmaps",
        "application/json",
        Some(&cm("elsewhere")),
        &[],
    );
    assert_eq!(code, 201);
    let body = watch.join().unwrap();
    let evs = events(&body);
    let bookmark = evs
        .iter()
        .find(|e| e["type"] == "BOOKMARK")
        .unwrap_or_else(|| panic!("no bookmark in {body}"));
    let at: i64 = bookmark["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at > rv.parse::<i64>().unwrap(), "{body}");
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");
    assert!(
        evs.iter().all(|e| e["type"] == "BOOKMARK"),
        "only bookmarks: {body}"
    );
}

/// Creates pod `name` (one busybox container) in `default`.
fn create_pod(c: &Cluster, name: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, body) = curl(
        c,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        Some(&serde_json::to_vec(&pod).unwrap()),
        &[],
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn binding_assigns_a_pod_once() {
    let c = Cluster::start(&[]);
    let pods = "/api/v1/namespaces/default/pods";
    create_pod(&c, "p");
    let binding = |node: &str| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}})).unwrap()
    };
    let (code, body) = curl(
        &c,
        "POST",
        &format!("{pods}/p/binding"),
        "application/json",
        Some(&binding("node-1")),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(status(&body)["status"], "Success");
    let (_, body) = curl(
        &c,
        "GET",
        &format!("{pods}/p"),
        "application/json",
        None,
        &[],
    );
    let got = status(&body);
    assert_eq!(got["spec"]["nodeName"], "node-1");
    assert!(
        got["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "{body}"
    );
    let (code, body) = curl(
        &c,
        "POST",
        &format!("{pods}/p/binding"),
        "application/json",
        Some(&binding("node-2")),
        &[],
    );
    assert_eq!(code, 409, "{body}");
    assert_eq!(status(&body)["message"], "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"node-1\"");
}

#[test]
fn binding_right_after_another_write_keeps_it() {
    // The bind starts from the watch cache's copy of the pod, which may not have the
    // write just before it yet: the compare-and-swap must then refuse it and the bind
    // retry on the stored pod, so neither write is lost.
    let c = Cluster::start(&[]);
    let pods = "/api/v1/namespaces/default/pods";
    for i in 0..20 {
        let name = format!("p{i}");
        create_pod(&c, &name);
        let label =
            serde_json::to_vec(&json!({"metadata": {"labels": {"written": "before-bind"}}}))
                .unwrap();
        let (code, body) = curl(
            &c,
            "PATCH",
            &format!("{pods}/{name}"),
            "application/merge-patch+json",
            Some(&label),
            &[],
        );
        assert_eq!(code, 200, "{body}");
        let binding = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"kind": "Node", "name": "node-1"}})).unwrap();
        let (code, body) = curl(
            &c,
            "POST",
            &format!("{pods}/{name}/binding"),
            "application/json",
            Some(&binding),
            &[],
        );
        assert_eq!(code, 201, "{body}");
        let (_, body) = curl(
            &c,
            "GET",
            &format!("{pods}/{name}"),
            "application/json",
            None,
            &[],
        );
        let got = status(&body);
        assert_eq!(got["spec"]["nodeName"], "node-1", "{body}");
        assert_eq!(
            got["metadata"]["labels"]["written"], "before-bind",
            "{body}"
        );
    }
}

#[test]
fn rkube_components_may_ask_for_objects_without_managed_fields() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&cm("one")), &[]);
    assert_eq!(code, 201, "{body}");
    assert!(
        !status(&body)["metadata"]["managedFields"].is_null(),
        "{body}"
    );
    let omit = ["-H", "x-rkube-omit-managed-fields: true"];
    let metadata = [
        "-H",
        "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    ];
    // Lists: JSON and PartialObjectMetadata, with and without the header.
    for (extra, has) in [(&[][..], true), (&omit[..], false)] {
        let (_, body) = curl(&c, "GET", CMS, "application/json", None, extra);
        let item = &status(&body)["items"][0];
        assert_eq!(item["metadata"]["name"], "one", "{body}");
        assert_eq!(!item["metadata"]["managedFields"].is_null(), has, "{body}");
        let mut with_meta = extra.to_vec();
        with_meta.extend_from_slice(&metadata);
        let (_, body) = curl(&c, "GET", CMS, "application/json", None, &with_meta);
        let item = &status(&body)["items"][0];
        assert_eq!(item["kind"], "PartialObjectMetadata", "{body}");
        assert_eq!(!item["metadata"]["managedFields"].is_null(), has, "{body}");
    }
    // Watches: the initial object and a live change, with and without the header.
    let url = |c: &Cluster| format!("https://{}{CMS}?watch=true&timeoutSeconds=3", c.addr);
    let plain = watch_in_background(&c, url(&c));
    let lean = watch_in_background_with(&c, url(&c), &omit);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, body) = curl(&c, "POST", CMS, "application/json", Some(&cm("two")), &[]);
    assert_eq!(code, 201, "{body}");
    for (stream, has) in [(plain, true), (lean, false)] {
        let body = stream.join().unwrap();
        let seen = events(&body);
        let names: Vec<&Value> = seen
            .iter()
            .map(|e| &e["object"]["metadata"]["name"])
            .collect();
        assert_eq!(names, [&json!("one"), &json!("two")], "{body}");
        for e in &seen {
            assert_eq!(
                !e["object"]["metadata"]["managedFields"].is_null(),
                has,
                "{body}"
            );
            assert!(
                !e["object"]["metadata"]["resourceVersion"].is_null(),
                "{body}"
            );
        }
    }
    // A GET is never changed.
    let (_, body) = curl(
        &c,
        "GET",
        &format!("{CMS}/one"),
        "application/json",
        None,
        &omit,
    );
    assert!(
        !status(&body)["metadata"]["managedFields"].is_null(),
        "{body}"
    );
}

#[test]
fn deleting_a_namespace_waits_for_its_finalizer() {
    // This test plays the namespace controller itself.
    let c = Cluster::start(&["--controllers=*,-namespace-controller"]);
    let ns = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .unwrap();
    let (code, body) = curl(
        &c,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        Some(&ns),
        &[],
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(status(&body)["spec"]["finalizers"], json!(["kubernetes"]));
    let (code, body) = curl(
        &c,
        "DELETE",
        "/api/v1/namespaces/doomed",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = curl(
        &c,
        "GET",
        "/api/v1/namespaces/doomed",
        "application/json",
        None,
        &[],
    );
    let got = status(&body);
    assert_eq!(got["status"]["phase"], "Terminating");
    // Nothing new may be created in it.
    let (code, body) = curl(
        &c,
        "POST",
        "/api/v1/namespaces/doomed/configmaps",
        "application/json",
        Some(&cm("late")),
        &[],
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .contains("because it is being terminated"),
        "{body}"
    );
    // Removing the finalizer (the namespace controller's last step) removes the namespace.
    let mut finalize = got.clone();
    finalize["spec"]["finalizers"] = json!([]);
    let (code, body) = curl(
        &c,
        "PUT",
        "/api/v1/namespaces/doomed/finalize",
        "application/json",
        Some(&serde_json::to_vec(&finalize).unwrap()),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = curl(
        &c,
        "GET",
        "/api/v1/namespaces/doomed",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 404);
}

#[test]
fn content_negotiation() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    curl(&c, "POST", CMS, "application/json", Some(&cm("neg")), &[]);
    let (code, body) = curl(
        &c,
        "GET",
        &format!("{CMS}/neg"),
        "application/json",
        None,
        &["-H", "Accept: application/yaml"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("kind: ConfigMap") && body.contains("name: neg"),
        "{body}"
    );

    // Nothing servable: 406. (Protobuf is covered in tests/protobuf.rs.)
    let (code, body) = curl(
        &c,
        "GET",
        &format!("{CMS}/neg"),
        "application/json",
        None,
        &["-H", "Accept: application/cbor"],
    );
    assert_eq!(code, 406, "{body}");
    assert_eq!(status(&body)["reason"], "NotAcceptable");
    // JSON first, protobuf second: JSON.
    let (code, body) = curl(
        &c,
        "GET",
        &format!("{CMS}/neg"),
        "application/json",
        None,
        &[
            "-H",
            "Accept: application/json, application/vnd.kubernetes.protobuf",
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(status(&body)["kind"], "ConfigMap");

    let accept =
        "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
    let (code, body) = curl(&c, "GET", CMS, "application/json", None, &["-H", accept]);
    assert_eq!(code, 200, "{body}");
    let list = status(&body);
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(list["items"][0]["metadata"]["name"], "neg");
    assert!(list["items"][0].get("data").is_none(), "{body}");
}

#[test]
fn unknown_fields_warn_by_default() {
    let c = Cluster::start(&[]);
    let body = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "dta": {"k": "v"}})).unwrap();
    let headers = tempfile::NamedTempFile::new().unwrap();
    let (code, _) = curl(
        &c,
        "POST",
        CMS,
        "application/json",
        Some(&body),
        &["-D", headers.path().to_str().unwrap()],
    );
    assert_eq!(code, 201);
    let headers = std::fs::read_to_string(headers.path())
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("warning: 299 - \"unknown field \\\"dta\\\"\""),
        "{headers}"
    );
    let (code, body) = curl(&c, "POST", &format!("{CMS}?fieldValidation=Ignore"), "application/json", Some(&serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "i"}, "dta": {}})).unwrap()), &[]);
    assert_eq!(code, 201, "{body}");
    let (code, body) = curl(
        &c,
        "POST",
        &format!("{CMS}?fieldValidation=Sometimes"),
        "application/json",
        Some(&cm("x")),
        &[],
    );
    assert_eq!(code, 400, "{body}");
}

#[test]
fn wrongly_typed_fields_are_rejected_not_crashed_on() {
    let c = Cluster::start(&[]);
    let ns = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "typed"}, "spec": "not an object"})).unwrap();
    let (code, body) = curl(
        &c,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        Some(&ns),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        status(&body)["message"]
            .as_str()
            .unwrap()
            .contains("cannot unmarshal string into Go struct field Namespace.spec"),
        "{body}"
    );
    let pod = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": ["c"]}})).unwrap();
    let (code, body) = curl(
        &c,
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        Some(&pod),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    // A merge patch cannot smuggle a wrong type in either.
    curl(&c, "POST", CMS, "application/json", Some(&cm("typed")), &[]);
    let (code, body) = curl(
        &c,
        "PATCH",
        &format!("{CMS}/typed"),
        "application/merge-patch+json",
        Some(br#"{"metadata":{"labels":"x"}}"#),
        &[],
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = curl(
        &c,
        "GET",
        "/api/v1/namespaces/typed",
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 404, "nothing was written");
}

/// A burst of writes reaches a live watch complete and in order, one event per line, even
/// when the server sends several waiting events in one write.
#[test]
fn a_burst_of_writes_reaches_a_watch_in_order() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let (_, list) = curl(&c, "GET", CMS, "application/json", None, &[]);
    let rv = serde_json::from_str::<Value>(&list).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let watch = watch_in_background(
        &c,
        format!(
            "https://{}{CMS}?watch=true&timeoutSeconds=8&resourceVersion={rv}",
            c.addr
        ),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let items: Vec<Value> = (0..150)
        .map(|i| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("burst-{i}")}, "data": {"i": i.to_string()}}))
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    c.create(&list.to_string());
    let evs = events(&watch.join().unwrap());
    let names: Vec<&str> = evs
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..150).map(|i| format!("burst-{i}")).collect();
    assert_eq!(names, want);
    let revisions: Vec<i64> = evs
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
}
