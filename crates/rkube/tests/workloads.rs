//! The workload controllers end to end: `rkube server` (controller manager and scheduler
//! in-process) with hollow nodes, driven by kubectl 1.37 — ReplicaSets and
//! ReplicationControllers keep their replicas, Deployments roll out, scale, pause, resume
//! and undo.

mod support;

use std::time::Duration;

use support::{wait_for, wait_for_within, Cluster, HollowNodes};

fn cluster_with_nodes(nodes: &str) -> (Cluster, HollowNodes) {
    let c = Cluster::start(&[]);
    let hollow = HollowNodes::start(&c, &["--count", nodes]);
    c.wait_for_default_sa("default");
    (c, hollow)
}

fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a)
}

/// Names of running pods with label selector `sel`.
fn pod_names(c: &Cluster, sel: &str) -> Vec<String> {
    jsonpath(c, &["get", "pods", "-l", sel], "{.items[*].metadata.name}")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: 3
  selector:
    matchLabels:
      app: frontend
  template:
    metadata:
      labels:
        app: frontend
    spec:
      containers:
      - name: web
        image: nginx
"#;

#[test]
fn replicaset_keeps_replicas_adopts_releases_and_reports_status() {
    let (c, _hollow) = cluster_with_nodes("2");
    c.create(RS);
    wait_for(
        &c,
        &["get", "rs", "frontend", "-o", "jsonpath={.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.fullyLabeledReplicas}/{.status.observedGeneration}"],
        "3 ready replicas",
        |o| o == "3/3/3/3/1",
    );
    let pods = pod_names(&c, "app=frontend");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(pods.iter().all(|p| p.starts_with("frontend-")), "{pods:?}");
    let owner = jsonpath(
        &c,
        &["get", "pod", &pods[0]],
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}",
    );
    assert_eq!(owner, "ReplicaSet/frontend/true");

    // A deleted pod is replaced.
    c.ok(&["delete", "pod", &pods[0], "--wait=false"]);
    wait_for(
        &c,
        &["get", "pods", "-l", "app=frontend", "-o", "name"],
        "a replacement pod",
        |o| o.lines().count() == 3 && !o.contains(&pods[0]),
    );

    // Scale down and up with kubectl scale.
    c.ok(&["scale", "rs", "frontend", "--replicas=1"]);
    wait_for(
        &c,
        &["get", "pods", "-l", "app=frontend", "-o", "name"],
        "1 pod",
        |o| o.lines().count() == 1,
    );
    wait_for(
        &c,
        &["get", "rs", "frontend", "-o", "jsonpath={.status.replicas}"],
        "status 1",
        |o| o == "1",
    );

    // A pod that stops matching is released and replaced; a matching orphan is adopted.
    let keep = pod_names(&c, "app=frontend").remove(0);
    c.ok(&["label", "pod", &keep, "app=other", "--overwrite"]);
    wait_for(
        &c,
        &[
            "get",
            "pod",
            &keep,
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ],
        "release",
        |o| o.is_empty() || o == "[]",
    );
    wait_for(
        &c,
        &["get", "pods", "-l", "app=frontend", "-o", "name"],
        "a replacement",
        |o| o.lines().count() == 1,
    );
    c.ok(&["scale", "rs", "frontend", "--replicas=2"]);
    c.ok(&["label", "pod", &keep, "app=frontend", "--overwrite"]);
    wait_for(
        &c,
        &[
            "get",
            "pod",
            &keep,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}",
        ],
        "adoption",
        |o| o == "frontend",
    );
    wait_for(
        &c,
        &["get", "pods", "-l", "app=frontend", "-o", "name"],
        "2 pods",
        |o| o.lines().count() == 2,
    );

    // Events in upstream wording.
    let events = wait_for(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=ReplicaSet",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        "events",
        |o| o.contains("SuccessfulDelete: Deleted pod: frontend-"),
    );
    assert!(
        events.contains("SuccessfulCreate: Created pod: frontend-"),
        "{events}"
    );
}

#[test]
fn replicationcontroller_keeps_replicas() {
    let (c, _hollow) = cluster_with_nodes("1");
    c.create(
        r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: web
        image: nginx
"#,
    );
    wait_for(
        &c,
        &[
            "get",
            "rc",
            "legacy",
            "-o",
            "jsonpath={.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}",
        ],
        "2 ready replicas",
        |o| o == "2/2/2",
    );
    let owner = jsonpath(
        &c,
        &["get", "pods", "-l", "app=legacy"],
        "{.items[0].metadata.ownerReferences[0].kind}",
    );
    assert_eq!(owner, "ReplicationController");
    c.ok(&["scale", "rc", "legacy", "--replicas=0"]);
    wait_for(
        &c,
        &["get", "pods", "-l", "app=legacy", "-o", "name"],
        "no pods",
        |o| o.trim().is_empty(),
    );
}

fn rollout_status(c: &Cluster, d: &str) {
    let out = c.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{d}"),
        "--timeout=50s",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("successfully rolled out"),
        "rollout status: {text} {}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
}

/// `name=replicas` per ReplicaSet of the deployment `app=<d>`, sorted by name.
fn replica_sets(c: &Cluster, d: &str) -> Vec<(String, String, String)> {
    let out = jsonpath(
        c,
        &["get", "rs", "-l", &format!("app={d}")],
        "{range .items[*]}{.metadata.name} {.spec.replicas} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}{\"\\n\"}{end}",
    );
    let mut v: Vec<(String, String, String)> = out
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace().map(str::to_owned);
            (
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
                it.next().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn deployment_rolls_out_scales_undoes_pauses_and_restarts() {
    let (c, _hollow) = cluster_with_nodes("3");
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
    ]);
    rollout_status(&c, "web");
    let sets = replica_sets(&c, "web");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (first, n, rev) = sets[0].clone();
    assert_eq!((n.as_str(), rev.as_str()), ("3", "1"));
    let hash = first.strip_prefix("web-").unwrap().to_owned();
    let pods = jsonpath(
        &c,
        &["get", "pods", "-l", &format!("pod-template-hash={hash}")],
        "{.items[*].metadata.name}",
    );
    assert_eq!(pods.split_whitespace().count(), 3, "{pods}");
    let status = jsonpath(
        &c,
        &["get", "deployment", "web"],
        "{.status.replicas}/{.status.updatedReplicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    );
    assert_eq!(status, "3/3/3/3/1");
    let conds = jsonpath(
        &c,
        &["get", "deployment", "web"],
        "{range .status.conditions[*]}{.type}={.reason};{end}",
    );
    assert!(
        conds.contains("Available=MinimumReplicasAvailable"),
        "{conds}"
    );
    assert!(
        conds.contains("Progressing=NewReplicaSetAvailable"),
        "{conds}"
    );
    let events = wait_for(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Deployment",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        "scaling event",
        |o| {
            o.contains(&format!(
                "ScalingReplicaSet: Scaled up replica set {first} from 0 to 3"
            ))
        },
    );
    assert!(!events.is_empty());

    // kubectl scale.
    c.ok(&["scale", "deployment", "web", "--replicas=5"]);
    rollout_status(&c, "web");
    wait_for(
        &c,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        "5 ready",
        |o| o == "5",
    );

    // A new image rolls out to a second ReplicaSet; the first drains.
    c.ok(&[
        "annotate",
        "deployment",
        "web",
        "kubernetes.io/change-cause=move to 1.27",
    ]);
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    rollout_status(&c, "web");
    let sets = replica_sets(&c, "web");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let old = sets.iter().find(|s| s.0 == first).unwrap();
    assert_eq!((old.1.as_str(), old.2.as_str()), ("0", "1"), "{sets:?}");
    let second = sets.iter().find(|s| s.0 != first).unwrap().clone();
    assert_eq!(
        (second.1.as_str(), second.2.as_str()),
        ("5", "2"),
        "{sets:?}"
    );
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("move to 1.27"), "{history}");
    let rev2 = c.ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(rev2.contains("nginx:1.27"), "{rev2}");

    // Undo goes back to the first template: its ReplicaSet becomes revision 3.
    c.ok(&["rollout", "undo", "deployment/web"]);
    rollout_status(&c, "web");
    let sets = replica_sets(&c, "web");
    let back = sets.iter().find(|s| s.0 == first).unwrap();
    assert_eq!((back.1.as_str(), back.2.as_str()), ("5", "3"), "{sets:?}");
    let image = jsonpath(
        &c,
        &["get", "deployment", "web"],
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "nginx");

    // Paused: a template change makes no ReplicaSet until resumed.
    c.ok(&["rollout", "pause", "deployment/web"]);
    c.ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    wait_for(
        &c,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Progressing')].reason}",
        ],
        "DeploymentPaused",
        |o| o == "DeploymentPaused",
    );
    assert_eq!(replica_sets(&c, "web").len(), 2);
    c.ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(&c, "web");
    assert_eq!(replica_sets(&c, "web").len(), 3);

    // Restart: a new template (restartedAt annotation), new ReplicaSet, revision 5.
    c.ok(&["rollout", "restart", "deployment/web"]);
    rollout_status(&c, "web");
    let sets = replica_sets(&c, "web");
    assert_eq!(sets.len(), 4, "{sets:?}");
    assert!(sets.iter().any(|s| s.1 == "5" && s.2 == "5"), "{sets:?}");
    let ready = wait_for_within(
        &c,
        Duration::from_secs(60),
        &["get", "pods", "-l", "app=web", "-o", "name"],
        "old pods gone",
        |o| o.lines().count() == 5,
    );
    assert_eq!(ready.lines().count(), 5);
}

#[test]
fn deployment_recreate_and_history_limit() {
    let (c, _hollow) = cluster_with_nodes("2");
    c.create(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: batch
spec:
  replicas: 2
  revisionHistoryLimit: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app: batch
  template:
    metadata:
      labels:
        app: batch
    spec:
      containers:
      - name: app
        image: busybox
"#,
    );
    rollout_status(&c, "batch");
    for tag in ["1.36", "1.37"] {
        c.ok(&[
            "set",
            "image",
            "deployment/batch",
            &format!("app=busybox:{tag}"),
        ]);
        rollout_status(&c, "batch");
    }
    // Three revisions, one old kept.
    wait_for(
        &c,
        &["get", "rs", "-l", "app=batch", "-o", "name"],
        "2 replica sets",
        |o| o.lines().count() == 2,
    );
    let sets = replica_sets(&c, "batch");
    assert!(sets.iter().any(|s| s.1 == "2" && s.2 == "3"), "{sets:?}");
    assert!(sets.iter().any(|s| s.1 == "0" && s.2 == "2"), "{sets:?}");
}

#[test]
fn daemonset_runs_one_pod_per_node_and_rolls_out() {
    let (c, _hollow) = cluster_with_nodes("3");
    wait_for(&c, &["get", "nodes", "-o", "name"], "3 nodes", |o| {
        o.lines().count() == 3
    });
    c.create(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: busybox
"#,
    );
    let rollout = |c: &Cluster| {
        let out = c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=50s"]);
        assert!(
            out.status.success(),
            "{} {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
    };
    rollout(&c);
    let status = jsonpath(
        &c,
        &["get", "ds", "agent"],
        "{.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberReady}/{.status.numberAvailable}/{.status.updatedNumberScheduled}/{.status.numberMisscheduled}",
    );
    assert_eq!(status, "3/3/3/3/3/0");
    let nodes = jsonpath(
        &c,
        &["get", "pods", "-l", "app=agent"],
        "{.items[*].spec.nodeName}",
    );
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one pod per node: {nodes:?}");
    let pinned = jsonpath(
        &c,
        &["get", "pods", "-l", "app=agent"],
        "{.items[0].spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}",
    );
    assert_eq!(pinned, "metadata.name");

    // A new image rolls out node by node; the history has two revisions.
    c.ok(&["set", "image", "daemonset/agent", "agent=busybox:1.37"]);
    rollout(&c);
    let images = jsonpath(
        &c,
        &["get", "pods", "-l", "app=agent"],
        "{.items[*].spec.containers[0].image}",
    );
    wait_for(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
        "new image everywhere",
        |o| o.split_whitespace().count() == 3 && o.split_whitespace().all(|i| i == "busybox:1.37"),
    );
    let _ = images;
    let history = c.ok(&["rollout", "history", "daemonset/agent"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    assert_eq!(
        c.ok(&["get", "controllerrevisions", "-o", "name"])
            .lines()
            .count(),
        2
    );
}

#[test]
fn statefulset_orders_pods_claims_and_partitions_updates() {
    let (c, _hollow) = cluster_with_nodes("2");
    // No provisioner runs here: claims of a WaitForFirstConsumer class let the scheduler
    // place the pods (its VolumeBinding plugin holds pods whose immediate claims are unbound).
    c.create(
        r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"#,
    );
    c.create(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      storageClassName: local
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 1Gi
"#,
    );
    let rollout = |c: &Cluster| {
        let out = c.kubectl(&["rollout", "status", "statefulset/db", "--timeout=50s"]);
        assert!(
            out.status.success(),
            "{} {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
    };
    rollout(&c);
    // OrderedReady: each pod was created after its predecessor was Ready.
    let created = jsonpath(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=db",
            "--sort-by=.metadata.creationTimestamp",
        ],
        "{.items[*].metadata.name}",
    );
    assert_eq!(created, "db-0 db-1 db-2");
    let events = jsonpath(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=StatefulSet",
            "--sort-by=.metadata.creationTimestamp",
        ],
        "{range .items[*]}{.message}{\"\\n\"}{end}",
    );
    let order: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("create Pod"))
        .collect();
    assert_eq!(
        order,
        [
            "create Pod db-0 in StatefulSet db successful",
            "create Pod db-1 in StatefulSet db successful",
            "create Pod db-2 in StatefulSet db successful"
        ],
        "{events}"
    );
    let claims = jsonpath(&c, &["get", "pvc"], "{.items[*].metadata.name}");
    assert_eq!(claims, "data-db-0 data-db-1 data-db-2");
    let identity = jsonpath(
        &c,
        &["get", "pod", "db-1"],
        "{.spec.hostname}/{.spec.subdomain}/{.metadata.labels.apps\\.kubernetes\\.io/pod-index}",
    );
    assert_eq!(identity, "db-1/db/1");

    // A partitioned update only replaces ordinals >= 2.
    c.ok(&[
        "patch",
        "statefulset",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]);
    c.ok(&["set", "image", "statefulset/db", "db=postgres:17"]);
    wait_for(
        &c,
        &[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.status.updatedReplicas}/{.status.readyReplicas}",
        ],
        "1 updated",
        |o| o == "1/3",
    );
    let images = jsonpath(
        &c,
        &["get", "pods", "-l", "app=db", "--sort-by=.metadata.name"],
        "{.items[*].spec.containers[0].image}",
    );
    assert_eq!(images, "postgres postgres postgres:17");
    c.ok(&[
        "patch",
        "statefulset",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    rollout(&c);
    wait_for(
        &c,
        &[
            "get",
            "sts",
            "db",
            "-o",
            "jsonpath={.status.currentRevision}={.status.updateRevision} {.status.updatedReplicas}",
        ],
        "all updated",
        |o| {
            let (revs, n) = o.split_once(' ').unwrap_or_default();
            let (a, b) = revs.split_once('=').unwrap_or_default();
            a == b && !a.is_empty() && n == "3"
        },
    );

    // Scale down removes the highest ordinals; claims stay (Retain).
    c.ok(&["scale", "statefulset", "db", "--replicas=1"]);
    wait_for(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=db",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        "db-0 only",
        |o| o == "db-0",
    );
    assert_eq!(
        jsonpath(&c, &["get", "pvc"], "{.items[*].metadata.name}"),
        "data-db-0 data-db-1 data-db-2"
    );
}

/// A Job whose pods the hollow nodes' paper runtime exits with `code`
/// (`hollow.rkube.io/exit-code`).
fn job_yaml(name: &str, code: i32, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}
  template:
    metadata:
      annotations:
        hollow.rkube.io/exit-code: "{code}"
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
"#
    )
}

#[test]
fn job_runs_to_completion_indexed_and_fails_past_backoff_limit() {
    let (c, _hollow) = cluster_with_nodes("2");
    c.create(&job_yaml(
        "ok",
        0,
        "  completions: 3\n  parallelism: 2\n  completionMode: Indexed",
    ));
    let out = c.kubectl(&[
        "wait",
        "--for=condition=Complete",
        "job/ok",
        "--timeout=50s",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    let status = jsonpath(
        &c,
        &["get", "job", "ok"],
        "{.status.succeeded}/{.status.completedIndexes}/{.status.conditions[?(@.type=='Complete')].reason}",
    );
    assert_eq!(status, "3/0-2/CompletionsReached");
    let idx = jsonpath(
        &c,
        &["get", "pods", "-l", "job-name=ok"],
        "{range .items[*]}{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}{\" \"}{end}",
    );
    let mut idx: Vec<&str> = idx.split_whitespace().collect();
    idx.sort();
    assert_eq!(idx, ["0", "1", "2"]);
    let finalizers = jsonpath(
        &c,
        &["get", "pods", "-l", "job-name=ok"],
        "{.items[*].metadata.finalizers}",
    );
    assert!(
        finalizers.trim().is_empty(),
        "tracking finalizers removed: {finalizers}"
    );

    // backoffLimit 0: the first failure fails the Job.
    c.create(&job_yaml("bad", 1, "  backoffLimit: 0"));
    let out = c.kubectl(&["wait", "--for=condition=Failed", "job/bad", "--timeout=50s"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    let status = jsonpath(
        &c,
        &["get", "job", "bad"],
        "{.status.failed}/{.status.conditions[?(@.type=='Failed')].reason}/{.status.conditions[?(@.type=='Failed')].message}",
    );
    assert_eq!(
        status,
        "1/BackoffLimitExceeded/Job has reached the specified backoff limit"
    );

    // Suspended: no pods until resumed.
    c.create(&job_yaml("later", 0, "  suspend: true"));
    wait_for(
        &c,
        &[
            "get",
            "job",
            "later",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Suspended')].reason}",
        ],
        "JobSuspended",
        |o| o == "JobSuspended",
    );
    assert!(pod_names(&c, "job-name=later").is_empty());
    c.ok(&[
        "patch",
        "job",
        "later",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let out = c.kubectl(&[
        "wait",
        "--for=condition=Complete",
        "job/later",
        "--timeout=50s",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
}

#[test]
fn finished_jobs_are_deleted_after_their_ttl() {
    let (c, _hollow) = cluster_with_nodes("1");
    c.create(&job_yaml("short", 0, "  ttlSecondsAfterFinished: 1"));
    c.create(&job_yaml("kept", 0, "  ttlSecondsAfterFinished: 3600"));
    for j in ["job/short", "job/kept"] {
        let out = c.kubectl(&["wait", "--for=condition=Complete", j, "--timeout=50s"]);
        if j == "job/short" && String::from_utf8_lossy(&out.stderr).contains("NotFound") {
            // Finished and already collected (1 s TTL, then the garbage collector).
            continue;
        }
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
    }
    // Deleted with foreground propagation: gone, or terminating until its pods are.
    wait_for(
        &c,
        &["get", "jobs", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.deletionTimestamp}{\"\\n\"}{end}"],
        "short deleted",
        |o| o.lines().all(|l| !l.starts_with("short=") || l.len() > "short=".len()),
    );
    let kept = jsonpath(&c, &["get", "job", "kept"], "{.metadata.deletionTimestamp}");
    assert!(kept.is_empty(), "{kept}");
}
