//! KubeSchedulerConfiguration end to end: `rkube scheduler --config` against `rkube server
//! --disable-scheduler` with hollow nodes runs two profiles (a pod is placed by the
//! profile its schedulerName names, its events come from that name, a pod naming no
//! profile stays Pending), invalid files stop `rkube scheduler` and `rkube server
//! --scheduler-config` with upstream's errors, and VolumeZone keeps pods with their
//! volumes' zone under the in-process scheduler configured by file.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{node_of, wait_for, wait_nodes_ready, wait_with_timeout, Cluster, HollowNodes};

/// A `rkube scheduler` process, killed (by PID) when dropped.
struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pod(name: &str, scheduler: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  schedulerName: {scheduler}\n  \
         containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: \"{cpu}\"}}}}\n"
    )
}

const HEAD: &str = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

/// `rkube explain pod NAME --config FILE`'s output (it must succeed).
fn explain_with_config(c: &Cluster, pod: &str, config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["explain", "pod", pod, "--kubeconfig"])
        .arg(&c.kubeconfig)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run rkube explain");
    assert!(
        out.status.success(),
        "rkube explain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_profile_schedules_the_pods_that_name_it() {
    let c = Cluster::start(&["--disable-scheduler"]);
    let _nodes = HollowNodes::start(&c, &["--count", "2", "--cpu", "4"]);
    wait_nodes_ready(&c, 2);
    // The default profile spreads (LeastAllocated); "packer" scores only by
    // MostAllocated, so it fills the busier node. Its own Lease name is honoured.
    let config = c.dir.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        format!(
            "{HEAD}leaderElection:\n  leaderElect: true\n  resourceName: cfg-scheduler\n\
             profiles:\n- schedulerName: default-scheduler\n- schedulerName: packer\n  plugins:\n    \
             score:\n      disabled: [{{name: \"*\"}}]\n      enabled: [{{name: NodeResourcesFit, weight: 1}}]\n  \
             pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        \
             type: MostAllocated\n        resources: [{{name: cpu, weight: 1}}]\n"
        ),
    )
    .unwrap();
    // Nothing schedules yet: the pod naming no profile is queued before any other.
    c.create(&pod("orphan", "no-such-scheduler", "100m"));
    c.create(&pod("filler", "default-scheduler", "2"));
    let log = std::fs::File::create(c.dir.path().join("scheduler.log")).unwrap();
    let _scheduler = Scheduler(
        Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["scheduler", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rkube scheduler"),
    );
    let busy = node_of(&c, "filler");
    let idle = if busy == "hollow-node-0" {
        "hollow-node-1"
    } else {
        "hollow-node-0"
    };
    c.create(&pod("packed", "packer", "1"));
    assert_eq!(node_of(&c, "packed"), busy, "MostAllocated packs");
    c.create(&pod("spread", "default-scheduler", "1"));
    assert_eq!(node_of(&c, "spread"), idle, "LeastAllocated spreads");

    // `rkube explain --config` evaluates the profile the pod names: "packer" scores with
    // NodeResourcesFit alone and would pick the busy node again; a pod naming no profile
    // gets an error saying so.
    let explained = explain_with_config(&c, "packed", &config);
    assert!(
        explained.contains("Profile:            packer (from the given configuration)"),
        "{explained}"
    );
    assert!(explained.contains("NodeResourcesFit(×1)"), "{explained}");
    assert!(
        !explained.contains("NodeResourcesBalancedAllocation"),
        "{explained}"
    );
    assert!(
        explained.contains(&format!("Would pick: {busy}\n")),
        "{explained}"
    );
    let orphan = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(["explain", "pod", "orphan", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!orphan.status.success());
    let err = String::from_utf8_lossy(&orphan.stderr);
    assert!(
        err.contains("the configuration has no profile for scheduler \"no-such-scheduler\" (profiles: default-scheduler, packer)"),
        "{err}"
    );

    // Each Scheduled event comes from its profile's name.
    for (p, component) in [
        ("filler", "default-scheduler"),
        ("packed", "packer"),
        ("spread", "default-scheduler"),
    ] {
        wait_for(
            &c,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={p},reason=Scheduled"),
                "-o",
                "jsonpath={range .items[*]}{.source.component} {.reportingComponent}{\"\\n\"}{end}",
            ],
            &format!("{p}'s Scheduled event from {component}"),
            |out| out.trim() == format!("{component} {component}"),
        );
    }
    // The pod naming no profile was seen before the others were bound, and left alone:
    // no node, no condition, no event.
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "orphan",
            "-o",
            "jsonpath={.spec.nodeName}|{.status.phase}|{.status.conditions}"
        ]),
        "|Pending|"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=orphan",
            "-o",
            "jsonpath={.items}"
        ]),
        "[]"
    );
    // leaderElection.resourceName names the Lease the scheduler holds.
    let holder = wait_for(
        &c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "cfg-scheduler",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        "the cfg-scheduler Lease",
        |out| !out.is_empty(),
    );
    assert!(!holder.is_empty());
}

#[test]
fn invalid_configurations_stop_the_scheduler_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown plugin",
            format!("{HEAD}profiles:\n- plugins:\n    filter:\n      enabled: [{{name: Nope}}]\n"),
            "initializing profiles: creating profile for scheduler name default-scheduler: FilterPlugin \"Nope\" does not exist",
        ),
        (
            "unknown field",
            format!("{HEAD}profiles:\n- schedulerName: a\n  pluginz: {{}}\n"),
            "strict decoding error: unknown field \"profiles[0].pluginz\"",
        ),
        (
            "duplicate profile",
            format!("{HEAD}profiles:\n- schedulerName: a\n- schedulerName: a\n"),
            "profiles[1].schedulerName: Duplicate value: {}",
        ),
        (
            "wrong version",
            "apiVersion: kubescheduler.config.k8s.io/v1beta1\nkind: KubeSchedulerConfiguration\n".to_owned(),
            "no kind \"KubeSchedulerConfiguration\" is registered for version \"kubescheduler.config.k8s.io/v1beta1\"",
        ),
    ];
    for (case, text, want) in cases {
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, text).unwrap();
        // The configuration is checked before connecting: no server is needed, and none
        // is reached.
        let scheduler = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["scheduler", "--kubeconfig"])
            .arg(dir.path().join("no.kubeconfig"))
            .arg("--config")
            .arg(&file)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_timeout(scheduler, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: accepted");
        assert!(
            stderr.contains(&format!("bad --config {}: {want}", file.display())),
            "{case}: {stderr}"
        );
        // `rkube server --scheduler-config` refuses it before opening its store.
        let data = dir.path().join("data");
        let server = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["server", "--data-dir"])
            .arg(&data)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", rkube_testkit::free_port()),
            ])
            .arg("--scheduler-config")
            .arg(&file)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_with_timeout(server, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: the server started");
        assert!(
            stderr.contains(&format!(
                "bad --scheduler-config {}: {want}",
                file.display()
            )),
            "{case}: {stderr}"
        );
        assert!(!data.join("admin.kubeconfig").exists(), "{case}");
    }
}

#[test]
fn volume_zone_keeps_pods_in_their_volumes_zone() {
    // The in-process scheduler, configured by file (its defaults include VolumeZone).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scheduler.yaml");
    std::fs::write(
        &config,
        format!(
            "{HEAD}percentageOfNodesToScore: 100\nprofiles:\n- schedulerName: default-scheduler\n"
        ),
    )
    .unwrap();
    let c = Cluster::start_in(dir, &["--scheduler-config", config.to_str().unwrap()]);
    let _nodes = HollowNodes::start(&c, &["--count", "2"]);
    wait_nodes_ready(&c, 2);
    c.ok(&[
        "label",
        "node",
        "hollow-node-0",
        "topology.kubernetes.io/zone=zone-a",
    ]);
    c.ok(&[
        "label",
        "node",
        "hollow-node-1",
        "topology.kubernetes.io/zone=zone-b",
    ]);
    for (pv, zone) in [("pv-b", "zone-b"), ("pv-c", "zone-c")] {
        c.create(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\n  labels: {{topology.kubernetes.io/zone: {zone}}}\n\
             spec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: /tmp/{pv}}}\n"
        ));
        c.create(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {pv}-claim}}\n\
             spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  volumeName: {pv}\n\
             \x20 resources: {{requests: {{storage: 1Gi}}}}\n"
        ));
    }
    let claimant = |name: &str, claim: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  volumes:\n  - name: data\n    \
             persistentVolumeClaim: {{claimName: {claim}}}\n  containers:\n  - name: c\n    image: busybox\n"
        )
    };
    c.create(&claimant("in-b", "pv-b-claim"));
    assert_eq!(node_of(&c, "in-b"), "hollow-node-1");
    c.create(&claimant("in-c", "pv-c-claim"));
    wait_for(
        &c,
        &[
            "get",
            "pod",
            "in-c",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='PodScheduled')].message}",
        ],
        "in-c's PodScheduled condition",
        |out| out.starts_with("0/2 nodes are available: 2 node(s) had no available volume zone."),
    );
    assert_eq!(
        c.ok(&["get", "pod", "in-c", "-o", "jsonpath={.spec.nodeName}"]),
        ""
    );
}
