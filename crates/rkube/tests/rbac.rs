//! RBAC over the real HTTPS port, driven by kubectl 1.37 as users whose client
//! certificates the cluster CA issued: denials with upstream's messages, role and cluster
//! role bindings, aggregated roles, resourceNames, subresources, non-resource URLs,
//! escalation prevention, `kubectl auth can-i` (with `--list` and `--as`), anonymous
//! requests, and the admin (system:masters) keeping every right.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::Cluster;

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubectl as a user; panics on failure.
fn ok_as(c: &Cluster, kc: &Path, args: &[&str]) -> String {
    let (ok, out, err) = text(&c.kubectl_as(kc, args));
    assert!(
        ok,
        "kubectl {args:?} failed: {err}\n--- server log ---\n{}",
        c.log()
    );
    out
}

/// kubectl as a user, expecting failure; returns stderr.
fn fails_as(c: &Cluster, kc: &Path, args: &[&str]) -> String {
    let (ok, out, err) = text(&c.kubectl_as(kc, args));
    assert!(!ok, "kubectl {args:?} should fail, printed {out}");
    err
}

/// `kubectl auth can-i` as a user: the printed answer (`yes`/`no`).
fn can_i(c: &Cluster, kc: &Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (ok, out, _) = text(&c.kubectl_as(kc, &all));
    let answer = out.trim().to_owned();
    assert_eq!(
        ok,
        answer == "yes",
        "exit status matches the answer for {args:?}"
    );
    answer
}

/// curl with a user's certificate (or none: anonymous); returns (code, body).
fn curl_as(c: &Cluster, user: Option<&str>, method: &str, path: &str) -> (u16, String) {
    let dir = c.data_dir();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(dir.join("pki/ca.crt"));
    if let Some(user) = user {
        cmd.arg("--cert")
            .arg(dir.join(format!("{user}.crt")))
            .arg("--key")
            .arg(dir.join(format!("{user}.key")));
    }
    let out = cmd
        .arg(format!("https://{}{path}", c.addr))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Waits until `check` holds (controllers act asynchronously).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn user(c: &Cluster, name: &str, groups: &[&str]) -> PathBuf {
    c.user_kubeconfig(name, groups)
}

#[test]
fn users_without_bindings_are_refused_with_upstreams_messages() {
    let c = Cluster::start(&[]);
    let alice = user(&c, "alice", &["devs"]);
    c.ok(&[
        "create",
        "configmap",
        "existing",
        "-n",
        "default",
        "--from-literal=a=b",
    ]);

    let cases: &[(&[&str], &str)] = &[
        (&["get", "configmaps", "-n", "default"],
            "Error from server (Forbidden): configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        (&["get", "configmap", "existing", "-n", "default"],
            "Error from server (Forbidden): configmaps \"existing\" is forbidden: User \"alice\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        (&["create", "configmap", "mine", "-n", "default", "--from-literal=a=b"],
            "error: failed to create configmap: configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        (&["delete", "configmap", "existing", "-n", "default"],
            "Error from server (Forbidden): configmaps \"existing\" is forbidden: User \"alice\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        (&["get", "nodes"],
            "Error from server (Forbidden): nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"),
        (&["get", "clusterroles"],
            "Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io is forbidden: User \"alice\" cannot list resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"),
        (&["get", "--raw", "/metrics"],
            "Error from server (Forbidden): forbidden: User \"alice\" cannot get path \"/metrics\""),
    ];
    for (args, want) in cases {
        let err = fails_as(&c, &alice, args);
        assert!(err.contains(want), "kubectl {args:?}:\n{err}\nwant: {want}");
    }
    // Nothing was written or deleted.
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "existing",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    assert!(!c
        .kubectl(&["get", "cm", "mine", "-n", "default"])
        .status
        .success());

    // The Status as upstream sends it.
    let (code, body) = curl_as(
        &c,
        Some("alice"),
        "GET",
        "/apis/apps/v1/namespaces/default/deployments/d/scale",
    );
    assert_eq!(code, 403);
    assert_eq!(
        json(&body),
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "deployments.apps \"d\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\"",
            "reason": "Forbidden", "details": {"name": "d", "group": "apps", "kind": "deployments"}, "code": 403})
    );

    // Every authenticated user may discover the API and review itself.
    ok_as(&c, &alice, &["api-resources"]);
    assert_eq!(
        can_i(
            &c,
            &alice,
            &["create", "selfsubjectaccessreviews.authorization.k8s.io"]
        ),
        "yes"
    );
    assert_eq!(can_i(&c, &alice, &["list", "pods"]), "no");

    // Anonymous: health and version only (system:public-info-viewer).
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        assert_eq!(curl_as(&c, None, "GET", path).0, 200, "{path}");
    }
    for (path, message) in [
        ("/api/v1/namespaces/default/pods", "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        ("/metrics", "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""),
        ("/api", "forbidden: User \"system:anonymous\" cannot get path \"/api\""),
        ("/healthz/etcd", "forbidden: User \"system:anonymous\" cannot get path \"/healthz/etcd\""),
    ] {
        let (code, body) = curl_as(&c, None, "GET", path);
        assert_eq!(code, 403, "{path}: {body}");
        assert_eq!(json(&body)["message"], message);
    }

    // The admin (system:masters) still does everything.
    assert_eq!(c.ok(&["auth", "can-i", "*", "*"]).trim(), "yes");
    let list = c.ok(&["auth", "can-i", "--list"]);
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["*.*", "[]", "[]", "[*]"]),
        "{list}"
    );
    c.ok(&["get", "--raw", "/metrics"]);
}

#[test]
fn role_bindings_grant_in_their_namespace_only() {
    let c = Cluster::start(&[]);
    let alice = user(&c, "alice", &["devs"]);
    let bob = user(&c, "bob", &[]);
    for ns in ["team", "other"] {
        c.ok(&["create", "namespace", ns]);
        c.ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            ns,
            "--from-literal=k=v",
        ]);
        c.ok(&[
            "create",
            "secret",
            "generic",
            "token",
            "-n",
            ns,
            "--from-literal=k=v",
        ]);
    }
    c.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "team",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "devs-edit",
        "--clusterrole=edit",
        "--group=devs",
        "-n",
        "other",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "-n",
        "team",
    ]);

    // view: read in team, but no writes, no secrets, nothing in default.
    assert!(ok_as(&c, &alice, &["get", "configmaps", "-n", "team"]).contains("settings"));
    assert_eq!(
        ok_as(
            &c,
            &alice,
            &[
                "get",
                "cm",
                "settings",
                "-n",
                "team",
                "-o",
                "jsonpath={.data.k}"
            ]
        ),
        "v"
    );
    let (code, _) = curl_as(
        &c,
        Some("alice"),
        "GET",
        "/api/v1/namespaces/team/configmaps?watch=true&timeoutSeconds=1",
    );
    assert_eq!(code, 200);
    let err = fails_as(
        &c,
        &alice,
        &[
            "create",
            "configmap",
            "new",
            "-n",
            "team",
            "--from-literal=a=b",
        ],
    );
    assert!(err.contains("User \"alice\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"team\""), "{err}");
    let err = fails_as(&c, &alice, &["get", "secrets", "-n", "team"]);
    assert!(err.contains("cannot list resource \"secrets\""), "{err}");
    let err = fails_as(&c, &alice, &["get", "configmaps", "-n", "default"]);
    assert!(err.contains("in the namespace \"default\""), "{err}");

    // edit through the group: writes configmaps and secrets, not RBAC.
    ok_as(
        &c,
        &alice,
        &[
            "create",
            "configmap",
            "new",
            "-n",
            "other",
            "--from-literal=a=b",
        ],
    );
    ok_as(&c, &alice, &["delete", "secret", "token", "-n", "other"]);
    let err = fails_as(
        &c,
        &alice,
        &[
            "create",
            "role",
            "r",
            "--verb=get",
            "--resource=pods",
            "-n",
            "other",
        ],
    );
    assert!(
        err.contains("cannot create resource \"roles\" in API group \"rbac.authorization.k8s.io\""),
        "{err}"
    );

    // admin: RBAC in its namespace too.
    ok_as(
        &c,
        &bob,
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "team",
        ],
    );
    ok_as(
        &c,
        &bob,
        &[
            "create",
            "rolebinding",
            "carol-reads",
            "--role=pod-reader",
            "--user=carol",
            "-n",
            "team",
        ],
    );
    let err = fails_as(
        &c,
        &bob,
        &[
            "create",
            "clusterrole",
            "x",
            "--verb=get",
            "--resource=pods",
        ],
    );
    assert!(
        err.contains("cannot create resource \"clusterroles\""),
        "{err}"
    );

    // kubectl auth can-i, --list and --as.
    assert_eq!(can_i(&c, &alice, &["list", "pods", "-n", "team"]), "yes");
    assert_eq!(
        can_i(&c, &alice, &["watch", "configmaps", "-n", "team"]),
        "yes"
    );
    assert_eq!(can_i(&c, &alice, &["create", "pods", "-n", "team"]), "no");
    assert_eq!(can_i(&c, &alice, &["list", "pods", "-n", "default"]), "no");
    assert_eq!(
        can_i(
            &c,
            &alice,
            &["get", "pods", "--subresource=log", "-n", "team"]
        ),
        "yes"
    );
    let list = ok_as(&c, &alice, &["auth", "can-i", "--list", "-n", "team"]);
    let row = |name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(
        row("configmaps"),
        Some(vec!["configmaps", "[]", "[]", "[get", "list", "watch]"]),
        "{list}"
    );
    assert_eq!(
        row("selfsubjectaccessreviews.authorization.k8s.io"),
        Some(vec![
            "selfsubjectaccessreviews.authorization.k8s.io",
            "[]",
            "[]",
            "[create]"
        ]),
        "{list}"
    );
    assert!(row("secrets").is_none(), "{list}");
    assert!(list.contains("[/api/*]"), "{list}");
    assert_eq!(
        c.ok(&["auth", "can-i", "list", "pods", "-n", "team", "--as", "alice"])
            .trim(),
        "yes"
    );
    let out = c.kubectl(&[
        "auth", "can-i", "list", "pods", "-n", "team", "--as", "dave",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    assert_eq!(
        c.ok(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            "other",
            "--as",
            "dave",
            "--as-group",
            "devs"
        ])
        .trim(),
        "yes"
    );
    // Impersonating needs the impersonate verb.
    let err = fails_as(&c, &alice, &["get", "pods", "-n", "team", "--as", "bob"]);
    assert!(err.contains("users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"), "{err}");

    // Removing the binding takes the access away at once.
    c.ok(&["delete", "rolebinding", "alice-view", "-n", "team"]);
    fails_as(&c, &alice, &["get", "configmaps", "-n", "team"]);
}

#[test]
fn names_subresources_urls_and_aggregation() {
    let c = Cluster::start(&[]);
    let dave = user(&c, "dave", &[]);
    c.ok(&["create", "namespace", "app"]);
    for name in ["a", "b"] {
        c.ok(&[
            "create",
            "configmap",
            name,
            "-n",
            "app",
            "--from-literal=k=v",
        ]);
    }
    // resourceNames
    c.ok(&[
        "create",
        "role",
        "only-a",
        "--verb=get",
        "--resource=configmaps",
        "--resource-name=a",
        "-n",
        "app",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "dave-a",
        "--role=only-a",
        "--user=dave",
        "-n",
        "app",
    ]);
    ok_as(&c, &dave, &["get", "configmap", "a", "-n", "app"]);
    let err = fails_as(&c, &dave, &["get", "configmap", "b", "-n", "app"]);
    assert!(
        err.contains(
            "configmaps \"b\" is forbidden: User \"dave\" cannot get resource \"configmaps\""
        ),
        "{err}"
    );
    fails_as(&c, &dave, &["get", "configmaps", "-n", "app"]);

    // Subresources: pods/log is not pods.
    c.ok(&[
        "create",
        "role",
        "logs",
        "--verb=get",
        "--resource=pods/log",
        "-n",
        "app",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "dave-logs",
        "--role=logs",
        "--user=dave",
        "-n",
        "app",
    ]);
    assert_eq!(
        can_i(
            &c,
            &dave,
            &["get", "pods", "--subresource=log", "-n", "app"]
        ),
        "yes"
    );
    assert_eq!(can_i(&c, &dave, &["get", "pods", "-n", "app"]), "no");
    let (code, body) = curl_as(&c, Some("dave"), "GET", "/api/v1/namespaces/app/pods/p");
    assert_eq!((code, json(&body)["message"].as_str().unwrap().to_owned()), (403, "pods \"p\" is forbidden: User \"dave\" cannot get resource \"pods\" in API group \"\" in the namespace \"app\"".to_owned()));
    let (code, _) = curl_as(&c, Some("dave"), "GET", "/api/v1/namespaces/app/pods/p/log");
    assert_ne!(
        code, 403,
        "pods/log is allowed, whatever the handler answers"
    );

    // Non-resource URLs.
    fails_as(&c, &dave, &["get", "--raw", "/metrics"]);
    c.ok(&[
        "create",
        "clusterrole",
        "metrics-reader",
        "--verb=get",
        "--non-resource-url=/metrics",
        "--non-resource-url=/healthz/*",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "dave-metrics",
        "--clusterrole=metrics-reader",
        "--user=dave",
    ]);
    assert!(ok_as(&c, &dave, &["get", "--raw", "/metrics"]).contains("apiserver_request_total"));
    assert_eq!(curl_as(&c, Some("dave"), "GET", "/healthz/etcd").0, 200);
    assert_eq!(curl_as(&c, Some("dave"), "POST", "/metrics").0, 403);

    // Aggregation: a ClusterRole labelled aggregate-to-view joins view (and edit, admin).
    c.ok(&[
        "create",
        "rolebinding",
        "dave-view",
        "--clusterrole=view",
        "--user=dave",
        "-n",
        "app",
    ]);
    assert_eq!(can_i(&c, &dave, &["get", "secrets", "-n", "app"]), "no");
    c.create("{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"secret-peek\",\"labels\":{\"rbac.authorization.k8s.io/aggregate-to-view\":\"true\"}},\"rules\":[{\"apiGroups\":[\"\"],\"resources\":[\"secrets\"],\"verbs\":[\"get\"]},{\"apiGroups\":[\"widgets.example.com\"],\"resources\":[\"widgets\"],\"verbs\":[\"list\"]}]}");
    eventually("view to aggregate secret-peek", || {
        can_i(&c, &dave, &["get", "secrets", "-n", "app"]) == "yes"
    });
    for role in ["view", "edit", "admin"] {
        let rules = c.ok(&[
            "get",
            "clusterrole",
            role,
            "-o",
            "jsonpath={.rules[*].resources}",
        ]);
        assert!(rules.contains("widgets"), "{role}: {rules}");
    }
    let managers = c.ok(&[
        "get",
        "clusterrole",
        "view",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
        "--show-managed-fields",
    ]);
    assert!(
        managers.contains("clusterrole-aggregation-controller"),
        "{managers}"
    );
    c.ok(&["delete", "clusterrole", "secret-peek"]);
    eventually("view to drop secret-peek", || {
        can_i(&c, &dave, &["get", "secrets", "-n", "app"]) == "no"
    });
}

#[test]
fn escalation_is_refused_and_writes_nothing() {
    let c = Cluster::start(&[]);
    let carol = user(&c, "carol", &[]);
    c.ok(&["create", "namespace", "esc"]);
    c.ok(&[
        "create",
        "rolebinding",
        "carol-admin",
        "--clusterrole=admin",
        "--user=carol",
        "-n",
        "esc",
    ]);

    // Rules she holds: fine. Rules she does not: refused with upstream's message.
    ok_as(
        &c,
        &carol,
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,secrets",
            "-n",
            "esc",
        ],
    );
    let err = fails_as(
        &c,
        &carol,
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes,pods",
            "-n",
            "esc",
        ],
    );
    assert!(
        err.contains("roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
        "{err}"
    );
    assert!(
        !c.kubectl(&["get", "role", "node-reader", "-n", "esc"])
            .status
            .success(),
        "nothing written"
    );

    // Widening an existing role is refused too.
    let err = fails_as(&c, &carol, &["patch", "role", "reader", "-n", "esc", "--type=json",
        "-p", "[{\"op\":\"add\",\"path\":\"/rules/-\",\"value\":{\"apiGroups\":[\"\"],\"resources\":[\"nodes\"],\"verbs\":[\"list\"]}}]"]);
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "role",
            "reader",
            "-n",
            "esc",
            "-o",
            "jsonpath={.rules[*].resources}"
        ]),
        "[\"pods\",\"secrets\"]"
    );

    // Binding a role whose rules she holds: fine; cluster-admin: refused, nothing written.
    ok_as(
        &c,
        &carol,
        &[
            "create",
            "rolebinding",
            "dave-view",
            "--clusterrole=view",
            "--user=dave",
            "-n",
            "esc",
        ],
    );
    let err = fails_as(
        &c,
        &carol,
        &[
            "create",
            "rolebinding",
            "dave-root",
            "--clusterrole=cluster-admin",
            "--user=dave",
            "-n",
            "esc",
        ],
    );
    assert!(
        err.contains(
            "rolebindings.rbac.authorization.k8s.io \"dave-root\" is forbidden: user \"carol\""
        ),
        "{err}"
    );
    assert!(
        err.contains("{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"),
        "{err}"
    );
    assert!(!c
        .kubectl(&["get", "rolebinding", "dave-root", "-n", "esc"])
        .status
        .success());
    let err = fails_as(
        &c,
        &carol,
        &[
            "create",
            "rolebinding",
            "ghost",
            "--role=missing",
            "--user=dave",
            "-n",
            "esc",
        ],
    );
    assert!(
        err.contains("roles.rbac.authorization.k8s.io \"missing\" not found"),
        "{err}"
    );

    // The bind and escalate verbs lift the checks.
    c.ok(&[
        "create",
        "clusterrole",
        "grantor",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=cluster-admin",
    ]);
    c.create("{\"apiVersion\":\"rbac.authorization.k8s.io/v1\",\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"escalator\"},\"rules\":[{\"apiGroups\":[\"rbac.authorization.k8s.io\"],\"resources\":[\"roles\"],\"verbs\":[\"escalate\"]}]}");
    c.ok(&[
        "create",
        "rolebinding",
        "carol-grantor",
        "--clusterrole=grantor",
        "--user=carol",
        "-n",
        "esc",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "carol-escalator",
        "--clusterrole=escalator",
        "--user=carol",
        "-n",
        "esc",
    ]);
    ok_as(
        &c,
        &carol,
        &[
            "create",
            "rolebinding",
            "dave-root",
            "--clusterrole=cluster-admin",
            "--user=dave",
            "-n",
            "esc",
        ],
    );
    ok_as(
        &c,
        &carol,
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "esc",
        ],
    );

    // system:masters may grant anything.
    c.ok(&[
        "create",
        "clusterrolebinding",
        "erin-root",
        "--clusterrole=cluster-admin",
        "--user=erin",
    ]);
}
