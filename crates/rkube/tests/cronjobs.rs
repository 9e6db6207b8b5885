//! The CronJob controller end to end: `rkube server` with hollow nodes, driven by kubectl
//! 1.37. A CronJob is made due at once the way upstream allows — its
//! `status.lastScheduleTime` a few minutes back and the missed activation within
//! `startingDeadlineSeconds` — so no test waits for the clock to reach a minute.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{wait_for, wait_for_within, Cluster, HollowNodes};

fn cluster() -> (Cluster, HollowNodes) {
    let c = Cluster::start(&[]);
    let hollow = HollowNodes::start(&c, &["--count", "1"]);
    c.wait_for_default_sa("default");
    (c, hollow)
}

fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a)
}

/// RFC 3339 (UTC, whole seconds) for `secs_ago` seconds before now.
fn rfc3339_ago(secs_ago: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - secs_ago;
    let (days, rem) = (t / 86_400, t % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Makes the CronJob due now: its last activation three minutes back.
fn make_due(c: &Cluster, name: &str, active: &str) {
    let patch = format!(
        r#"{{"status":{{"lastScheduleTime":"{}","active":{active}}}}}"#,
        rfc3339_ago(180)
    );
    c.ok(&[
        "patch",
        "cronjob",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

fn events(c: &Cluster, name: &str) -> String {
    jsonpath(
        c,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ],
        "{range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    )
}

fn wait_event(c: &Cluster, name: &str, want: &str) -> String {
    wait_for_within(
        c,
        Duration::from_secs(40),
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        want,
        |o| o.contains(want),
    )
}

const TICK: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  timeZone: Europe/Berlin
  suspend: true
  startingDeadlineSeconds: 300
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata:
      labels:
        app: tick
    spec:
      template:
        metadata:
          annotations:
            hollow.rkube.io/exit-code: "0"
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
"#;

#[test]
fn cronjob_validates_fires_records_and_prunes_history() {
    let (c, _hollow) = cluster();

    // Validation as upstream.
    let err = c.fails(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=invalid",
    ]);
    assert!(
        err.contains(r#"spec.schedule: Invalid value: "invalid": expected exactly 5 fields, found 1: [invalid]"#),
        "{err}"
    );
    let err = c.fails(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=TZ=UTC */5 * * * *",
    ]);
    assert!(
        err.contains("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        "{err}"
    );
    let bad_zone = TICK.replace("Europe/Berlin", "Mars/Base");
    let out = c.kubectl_with(&["create", "-f", "-"], Some(&bad_zone), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                r#"spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base"#
            ),
        "{err}"
    );

    // Suspended: nothing fires even when due.
    c.create(TICK);
    make_due(&c, "tick", "null");
    let uid = jsonpath(&c, &["get", "cronjob", "tick"], "{.metadata.uid}");
    c.ok(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);

    // Resumed: the missed activation (within the deadline) fires at once.
    let created = wait_event(&c, "tick", "SuccessfulCreate: Created job tick-");
    let job = created
        .lines()
        .find_map(|l| l.strip_prefix("SuccessfulCreate: Created job "))
        .unwrap()
        .to_owned();
    // Suspended again so the next minute adds no job of its own to the history.
    c.ok(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    let minutes: u64 = job.strip_prefix("tick-").unwrap().parse().unwrap();
    let now_minutes = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    assert!(minutes <= now_minutes && minutes + 5 > now_minutes, "{job}");
    let meta = jsonpath(
        &c,
        &["get", "job", &job],
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid}/{.metadata.labels.app}/{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    let parts: Vec<&str> = meta.split('/').collect();
    assert_eq!(&parts[..3], ["CronJob", uid.as_str(), "tick"], "{meta}");
    // Scheduled time in the CronJob's zone, on a whole minute.
    assert!(
        parts[3].ends_with(":00+01:00") || parts[3].ends_with(":00+02:00"),
        "{meta}"
    );

    // It completes: the controller notices and records lastSuccessfulTime.
    wait_event(
        &c,
        "tick",
        &format!("SawCompletedJob: Saw completed job: {job}, condition: Complete"),
    );
    wait_for(
        &c,
        &[
            "get",
            "cronjob",
            "tick",
            "-o",
            "jsonpath={.status.lastSuccessfulTime}|{.status.active}|{.status.lastScheduleTime}",
        ],
        "lastSuccessfulTime set, nothing active",
        |o| {
            let f: Vec<&str> = o.split('|').collect();
            f.len() == 3 && !f[0].is_empty() && f[1].is_empty() && !f[2].is_empty()
        },
    );

    // Jobs created from it (kubectl's --from) are its own; finished ones beyond the
    // history limit (1) are deleted, oldest first.
    // Start times have one-second resolution and ties go by name ("manual" < "tick-…"),
    // so let a second pass for "manual" to be the newer job, as the test means it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    let owner = jsonpath(
        &c,
        &["get", "job", "manual"],
        "{.metadata.ownerReferences[0].uid}",
    );
    assert_eq!(owner, uid);
    let out = c.kubectl(&[
        "wait",
        "--for=condition=Complete",
        "job/manual",
        "--timeout=40s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_event(&c, "tick", &format!("SuccessfulDelete: Deleted job {job}"));
    wait_for(
        &c,
        &["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"],
        "only the newest finished job kept",
        |o| o == "manual",
    );
    let all = events(&c, "tick");
    assert!(!all.contains("MissSchedule"), "{all}");
}

#[test]
fn cronjob_concurrency_forbid_and_replace() {
    let (c, _hollow) = cluster();
    c.ok(&[
        "create",
        "cronjob",
        "slow",
        "--image=busybox",
        "--schedule=*/1 * * * *",
    ]);
    c.ok(&[
        "patch",
        "cronjob",
        "slow",
        "--type=merge",
        "-p",
        r#"{"spec":{"concurrencyPolicy":"Forbid","startingDeadlineSeconds":300}}"#,
    ]);
    // A run that never ends (hollow pods without an exit code run forever), made the
    // CronJob's active one.
    c.ok(&["create", "job", "first", "--from=cronjob/slow"]);
    let job_uid = jsonpath(&c, &["get", "job", "first"], "{.metadata.uid}");
    let active = format!(
        r#"[{{"apiVersion":"batch/v1","kind":"Job","name":"first","namespace":"default","uid":"{job_uid}"}}]"#
    );
    make_due(&c, "slow", &active);
    wait_event(
        &c,
        "slow",
        "JobAlreadyActive: Not starting job because prior execution is running and concurrency policy is Forbid",
    );
    assert_eq!(
        jsonpath(&c, &["get", "cronjob", "slow"], "{.status.active[*].name}"),
        "first"
    );

    // Replace: the running job is deleted and the due one started.
    c.ok(&[
        "patch",
        "cronjob",
        "slow",
        "--type=merge",
        "-p",
        r#"{"spec":{"concurrencyPolicy":"Replace"}}"#,
    ]);
    wait_event(&c, "slow", "SuccessfulDelete: Deleted job first");
    c.ok(&[
        "patch",
        "cronjob",
        "slow",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    wait_for(
        &c,
        &[
            "get",
            "cronjob",
            "slow",
            "-o",
            "jsonpath={.status.active[*].name}",
        ],
        "the replacement active",
        |o| o.starts_with("slow-") && !o.contains(' '),
    );
}
