//! Protobuf responses and watch streams (`application/vnd.kubernetes.protobuf`), as
//! client-go's typed clients and kubectl's typed commands (`kubectl create namespace`,
//! `create configmap`, `create secret`) ask for them.

mod support;

use rkube_apiserver::proto;
use serde_json::{json, Value};
use support::{curl, curl_bytes, Cluster};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn accept(media: &str) -> String {
    format!("Accept: {media}")
}

/// The response's Content-Type, from a `curl -D` header dump.
fn content_type(headers: &tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(headers.path())
        .unwrap()
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

#[test]
fn kubectl_typed_commands_get_protobuf_responses() {
    let c = Cluster::start(&[]);
    let out = c.kubectl(&["create", "namespace", "team-a", "-v=8"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", c.log());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/team-a created\n"
    );
    // What kubectl 1.37 sends (a protobuf body, protobuf then JSON accepted) and what it
    // got back.
    let request = stderr.split("\"Response\"").next().unwrap();
    assert!(
        request.contains("Accept: application/vnd.kubernetes.protobuf,application/json")
            && request.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{stderr}"
    );
    let response = stderr
        .split("\"Response\" status=\"201 Created\"")
        .nth(1)
        .unwrap_or("");
    assert!(
        response.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{stderr}"
    );

    assert_eq!(
        c.ok(&[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "--from-literal=colour=blue"
        ]),
        "configmap/cfg created\n"
    );
    assert_eq!(
        c.ok(&[
            "create",
            "secret",
            "generic",
            "pw",
            "-n",
            "team-a",
            "--from-literal=password=hunter2"
        ]),
        "secret/pw created\n"
    );
    // The objects round-tripped through protobuf both ways.
    assert_eq!(
        c.ok(&[
            "get",
            "configmap",
            "cfg",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.colour}"
        ]),
        "blue"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "secret",
            "pw",
            "-n",
            "team-a",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMg=="
    );
    // An error answered in protobuf reaches kubectl as upstream's message.
    let err = c.fails(&["create", "namespace", "team-a"]);
    assert!(
        err.contains("namespaces \"team-a\" already exists"),
        "{err}"
    );
}

#[test]
fn objects_lists_and_errors_in_protobuf() {
    let c = Cluster::start(support::WITHOUT_ROOT_CA_CONFIGMAPS);
    let cm = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb", "labels": {"app": "x"}}, "data": {"k": "v"}})).unwrap();
    let headers = tempfile::NamedTempFile::new().unwrap();
    let dump = ["-D", headers.path().to_str().unwrap()];

    // Create with a JSON body, answered in protobuf.
    let (code, body) = curl_bytes(
        &c,
        "POST",
        CMS,
        "application/json",
        Some(&cm),
        &["-H", &accept(PROTOBUF), dump[0], dump[1]],
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type(&headers), PROTOBUF);
    let created = proto::decode_object(&body).unwrap();
    assert_eq!(created["metadata"]["name"], "pb");

    // Get: `k8s\0` + the envelope, decoding to the object.
    let (code, body) = curl_bytes(
        &c,
        "GET",
        &format!("{CMS}/pb"),
        "application/json",
        None,
        &["-H", &accept(PROTOBUF), dump[0], dump[1]],
    );
    assert_eq!(code, 200);
    assert_eq!(content_type(&headers), PROTOBUF);
    assert!(body.starts_with(b"k8s\0"), "{body:?}");
    let (api_version, kind, _) = proto::decode_envelope(&body).unwrap();
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    let got = proto::decode_object(&body).unwrap();
    assert_eq!(got["data"], json!({"k": "v"}));
    assert_eq!(got["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(got["metadata"]["uid"], created["metadata"]["uid"]);
    assert!(got["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|rv| !rv.is_empty()));
    assert!(got["metadata"]["creationTimestamp"].is_string());
    // The same object as JSON.
    let (_, json_body) = curl(
        &c,
        "GET",
        &format!("{CMS}/pb"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(got, serde_json::from_str::<Value>(&json_body).unwrap());

    // List: a ConfigMapList with the list's resourceVersion.
    let (code, body) = curl_bytes(
        &c,
        "GET",
        CMS,
        "application/json",
        None,
        &["-H", &accept(&format!("{PROTOBUF}, application/json"))],
    );
    assert_eq!(code, 200);
    let list = proto::decode_object(&body).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"][0]["metadata"]["name"], "pb");
    assert!(list["metadata"]["resourceVersion"].is_string());

    // Errors are protobuf Statuses (`v1` `Status` in the envelope).
    let (code, body) = curl_bytes(
        &c,
        "GET",
        &format!("{CMS}/nope"),
        "application/json",
        None,
        &["-H", &accept(PROTOBUF), dump[0], dump[1]],
    );
    assert_eq!(code, 404);
    assert_eq!(content_type(&headers), PROTOBUF);
    let (api_version, kind, _) = proto::decode_envelope(&body).unwrap();
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "Status"));
    let status = proto::decode_object(&body).unwrap();
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    assert_eq!(status["message"], "configmaps \"nope\" not found");
    assert_eq!(
        status["details"],
        json!({"name": "nope", "kind": "configmaps"})
    );

    // DeleteOptions may come as protobuf too (typed clients send them so).
    let options = proto::encode_object(
        &json!({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": "wrong"}}),
    )
    .unwrap();
    let (code, body) = curl_bytes(
        &c,
        "DELETE",
        &format!("{CMS}/pb"),
        PROTOBUF,
        Some(&options),
        &["-H", &accept(PROTOBUF)],
    );
    assert_eq!(code, 409);
    let status = proto::decode_object(&body).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: wrong"),
        "{status}"
    );

    // Delete answers with the deleted object's Status, in protobuf too.
    let (code, body) = curl_bytes(
        &c,
        "DELETE",
        &format!("{CMS}/pb"),
        "application/json",
        None,
        &["-H", &accept(PROTOBUF)],
    );
    assert_eq!(code, 200);
    assert_eq!(proto::decode_object(&body).unwrap()["status"], "Success");

    // Table and partial metadata stay JSON: protobuf with `as=` goes to the next type.
    let (code, body) = curl(
        &c,
        "GET",
        CMS,
        "application/json",
        None,
        &[
            "-H",
            &accept(&format!(
                "{PROTOBUF};as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io"
            )),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["kind"],
        "Table"
    );
    // Only a conversion protobuf cannot carry: 406 naming the served types.
    let (code, body) = curl(
        &c,
        "GET",
        CMS,
        "application/json",
        None,
        &[
            "-H",
            &accept(&format!("{PROTOBUF};as=Table;v=v1;g=meta.k8s.io")),
        ],
    );
    assert_eq!(code, 406, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["message"],
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
}

/// The frames of a finished protobuf watch stream: (event type, object).
fn frames(mut body: &[u8]) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    while !body.is_empty() {
        let len = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
        let frame = &body[4..4 + len];
        body = &body[4 + len..];
        // WatchEvent{1: type, 2: RawExtension{1: object}}, read with a minimal reader.
        let (event_type, rest) = field(frame, 1);
        let (raw_ext, _) = field(rest, 2);
        let (object, _) = field(raw_ext, 1);
        events.push((
            String::from_utf8(event_type.to_vec()).unwrap(),
            proto::decode_object(object).unwrap(),
        ));
    }
    events
}

/// A length-delimited field with a one-byte key at the start of `b`: (payload, rest).
fn field(b: &[u8], tag: u8) -> (&[u8], &[u8]) {
    assert_eq!(b[0], tag << 3 | 2, "field {tag}");
    let (mut len, mut i) = (0usize, 1);
    loop {
        len |= usize::from(b[i] & 0x7f) << (7 * (i - 1));
        i += 1;
        if b[i - 1] < 0x80 {
            break;
        }
    }
    (&b[i..i + len], &b[i + len..])
}

#[test]
fn watch_streams_protobuf_frames() {
    let c = Cluster::start(&[
        "--default-watch-cache-size",
        "2",
        support::WITHOUT_ROOT_CA_CONFIGMAPS[0],
    ]);
    for name in ["w1", "w2"] {
        let cm =
            serde_json::to_vec(&json!({"metadata": {"name": name}, "data": {"n": name}})).unwrap();
        let (code, _) = curl(&c, "POST", CMS, "application/json", Some(&cm), &[]);
        assert_eq!(code, 201);
    }
    let headers = tempfile::NamedTempFile::new().unwrap();
    let (code, body) = curl_bytes(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1"),
        "application/json",
        None,
        &[
            "-H",
            &accept(&format!("{PROTOBUF};stream=watch")),
            "-D",
            headers.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 200);
    assert_eq!(content_type(&headers), format!("{PROTOBUF};stream=watch"));
    let events = frames(&body);
    let names: Vec<_> = events
        .iter()
        .map(|(t, o)| (t.as_str(), o["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("ADDED", "w1"), ("ADDED", "w2")]);
    assert_eq!(events[1].1["kind"], "ConfigMap");
    assert_eq!(events[1].1["data"], json!({"n": "w2"}));

    // client-go asks with plain protobuf: the same stream; live events and the
    // end-of-initial-events bookmark are frames too.
    let url = format!(
        "{CMS}?watch=true&timeoutSeconds=2&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
    );
    let watcher = {
        let addr = c.addr.clone();
        let pki = c.data_dir().join("pki");
        std::thread::spawn(move || {
            let out = std::process::Command::new("curl")
                .args([
                    "-sS",
                    "-H",
                    &format!("Accept: {PROTOBUF}, application/json"),
                ])
                .arg("--cacert")
                .arg(pki.join("ca.crt"))
                .arg("--cert")
                .arg(pki.join("admin.crt"))
                .arg("--key")
                .arg(pki.join("admin.key"))
                .arg(format!("https://{addr}{url}"))
                .output()
                .unwrap();
            out.stdout
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (code, _) = curl(
        &c,
        "DELETE",
        &format!("{CMS}/w1"),
        "application/json",
        None,
        &[],
    );
    assert_eq!(code, 200);
    let events = frames(&watcher.join().unwrap());
    let kinds: Vec<_> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        ["ADDED", "ADDED", "BOOKMARK", "DELETED"],
        "{events:?}"
    );
    assert_eq!(
        events[2].1["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(events[3].1["metadata"]["name"], "w1");

    // Too old a resourceVersion: one ERROR frame carrying a 410 Status.
    let (_, body) = curl_bytes(
        &c,
        "GET",
        &format!("{CMS}?watch=true&timeoutSeconds=1&resourceVersion=1"),
        "application/json",
        None,
        &["-H", &accept(PROTOBUF)],
    );
    let events = frames(&body);
    let [(kind, status)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(kind, "ERROR");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
}
