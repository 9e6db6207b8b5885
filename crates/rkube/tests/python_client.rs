//! The official Python `kubernetes` client against `rkube server`: version (with the
//! trailing slash it sends), ConfigMap CRUD, list with selectors, and a watch.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::Cluster;

const SCRIPT: &str = r#"
import sys, threading, time
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

version = client.VersionApi().get_code()
assert version.major == "1" and version.minor == "37", version

body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"k": "v"})
created = v1.create_namespaced_config_map("default", body)
assert created.metadata.uid and created.metadata.resource_version

try:
    v1.create_namespaced_config_map("default", body)
    raise SystemExit("duplicate create succeeded")
except ApiException as e:
    assert e.status == 409, e.status
    assert "already exists" in e.body, e.body

got = v1.read_namespaced_config_map("py", "default")
assert got.data == {"k": "v"}, got.data
got.data["k"] = "v2"
replaced = v1.replace_namespaced_config_map("py", "default", got)
assert replaced.data["k"] == "v2"

# A stale update is a 409 Conflict.
got.data["k"] = "v3"
try:
    v1.replace_namespaced_config_map("py", "default", got)
    raise SystemExit("stale replace succeeded")
except ApiException as e:
    assert e.status == 409 and "the object has been modified" in e.body, e.body

v1.patch_namespaced_config_map("py", "default", {"metadata": {"labels": {"patched": "yes"}}}, _content_type="application/merge-patch+json")

# Server-side apply: the JSON body is YAML too; the manager owns what it applied.
applied = v1.patch_namespaced_config_map("py-ssa", "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"x": "1"}}, field_manager="python", _content_type="application/apply-patch+yaml")
assert [(m.manager, m.operation) for m in applied.metadata.managed_fields] == [("python", "Apply")], applied.metadata.managed_fields
try:
    v1.patch_namespaced_config_map("py-ssa", "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"x": "2"}}, field_manager="other", _content_type="application/apply-patch+yaml")
    raise SystemExit("conflicting apply succeeded")
except ApiException as e:
    assert e.status == 409 and 'conflict with \\"python\\": .data.x' in e.body, e.body
v1.delete_namespaced_config_map("py-ssa", "default")
items = v1.list_namespaced_config_map("default", label_selector="from=python,patched=yes").items
assert [i.metadata.name for i in items] == ["py"], items
assert v1.list_namespaced_config_map("default", label_selector="from=elsewhere").items == []

lst = v1.list_namespaced_config_map("default")
rv = lst.metadata.resource_version
events = []
def watcher():
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            w.stop()
t = threading.Thread(target=watcher)
t.start()
time.sleep(0.5)
v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py2")))
v1.delete_namespaced_config_map("py", "default")
t.join(15)
assert events == [("ADDED", "py2"), ("DELETED", "py")], events

try:
    v1.read_namespaced_config_map("py", "default")
    raise SystemExit("deleted object still readable")
except ApiException as e:
    assert e.status == 404, e.status
print("python client ok")
"#;

#[test]
fn python_client_crud_list_watch() {
    let c = Cluster::start(&[]);
    let python = support::venv().join("bin/python");
    let child = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(&c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = support::wait_with_timeout(child, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client ok"));
}
