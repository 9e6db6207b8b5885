//! What the kubelet observed → the pod's status (pure): container states with restart
//! counts and last states, the phase by upstream's rules, and the conditions
//! PodReadyToStartContainers, Initialized, ContainersReady and Ready.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::cri::api;
use crate::time::rfc3339_from_nanos;

/// CRI container states.
pub const CONTAINER_CREATED: i32 = 0;
pub const CONTAINER_RUNNING: i32 = 1;
pub const CONTAINER_EXITED: i32 = 2;

/// One container as the kubelet last saw it.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    /// The newest runtime container for this name in the current sandbox.
    pub current: Option<api::ContainerStatus>,
    /// The one before it, for `lastState`.
    pub previous: Option<api::ContainerStatus>,
    /// Why the kubelet is waiting (image pull errors, back-off), overriding `current`.
    pub waiting: Option<(String, String)>,
    pub restart_count: u32,
    /// The readiness probe's verdict (`None`: no readiness probe).
    pub ready: Option<bool>,
    /// The startup probe's verdict (`None`: no startup probe).
    pub started: Option<bool>,
}

/// What the kubelet observed of a pod.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub containers: Vec<ContainerView>,
    pub init_containers: Vec<ContainerView>,
    /// Whether every init container completed (sidecars: started).
    pub initialized: bool,
    /// Init containers not done yet, in order.
    pub init_pending: Vec<String>,
    /// An init container failed and the pod never restarts it.
    pub init_failed: bool,
}

fn terminated(s: &api::ContainerStatus) -> Value {
    let reason = if s.reason.is_empty() {
        if s.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    } else {
        s.reason.as_str()
    };
    let mut t = json!({"exitCode": s.exit_code, "reason": reason,
                       "startedAt": rfc3339_from_nanos(s.started_at),
                       "finishedAt": rfc3339_from_nanos(s.finished_at),
                       "containerID": format!("containerd://{}", s.id)});
    if !s.message.is_empty() {
        t["message"] = json!(s.message);
    }
    json!({ "terminated": t })
}

fn waiting(reason: &str, message: &str) -> Value {
    if message.is_empty() {
        json!({"waiting": {"reason": reason}})
    } else {
        json!({"waiting": {"reason": reason, "message": message}})
    }
}

/// A container's status entry; `(running, exited_ok, exited_failed, waiting)` flags.
fn container_status(v: &ContainerView) -> (Value, ContainerPhase) {
    let mut status = json!({"name": v.name, "image": v.image, "imageID": "",
                            "ready": false, "started": false, "restartCount": v.restart_count,
                            "lastState": {}});
    let phase;
    if let Some(cur) = &v.current {
        status["containerID"] = json!(format!("containerd://{}", cur.id));
        status["imageID"] = json!(cur.image_ref);
    }
    let last = match (&v.waiting, &v.current) {
        (Some(_), Some(cur)) if cur.state == CONTAINER_EXITED => Some(cur),
        _ => v.previous.as_ref().filter(|p| p.state == CONTAINER_EXITED),
    };
    if let Some(last) = last {
        status["lastState"] = terminated(last);
    }
    match (&v.waiting, &v.current) {
        (Some((reason, message)), _) => {
            status["state"] = waiting(reason, message);
            phase = if last.is_some() {
                ContainerPhase::Restarting
            } else {
                ContainerPhase::Waiting
            };
        }
        (None, Some(cur)) if cur.state == CONTAINER_RUNNING => {
            status["state"] = json!({"running": {"startedAt": rfc3339_from_nanos(cur.started_at)}});
            let started = v.started.unwrap_or(true);
            status["ready"] = json!(started && v.ready.unwrap_or(true));
            status["started"] = json!(started);
            phase = ContainerPhase::Running;
        }
        (None, Some(cur)) if cur.state == CONTAINER_EXITED => {
            status["state"] = terminated(cur);
            phase = if cur.exit_code == 0 {
                ContainerPhase::Succeeded
            } else {
                ContainerPhase::Failed
            };
        }
        _ => {
            status["state"] = waiting("ContainerCreating", "");
            phase = ContainerPhase::Waiting;
        }
    }
    (status, phase)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ContainerPhase {
    Waiting,
    /// Waiting to be restarted after it terminated.
    Restarting,
    Running,
    Succeeded,
    Failed,
}

/// The pod phase from its containers' phases (upstream's `getPhase`).
fn phase(restart_policy: &str, phases: &[ContainerPhase]) -> &'static str {
    use ContainerPhase::*;
    let count = |p: ContainerPhase| phases.iter().filter(|&&x| x == p).count();
    let (waiting, running) = (count(Waiting), count(Running));
    let stopped = count(Restarting) + count(Succeeded) + count(Failed);
    let succeeded = count(Succeeded);
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// The pod's phase, for deciding whether it still runs.
pub fn pod_phase(pod: &Pod, observed: &Observed) -> &'static str {
    let phases: Vec<_> = observed
        .containers
        .iter()
        .map(|c| container_status(c).1)
        .collect();
    phase_of(pod, observed, &phases)
}

/// The phase, with upstream's rules for init containers first.
fn phase_of(pod: &Pod, observed: &Observed, phases: &[ContainerPhase]) -> &'static str {
    if observed.init_failed {
        return "Failed";
    }
    if !observed.initialized {
        return "Pending";
    }
    phase(restart_policy(pod), phases)
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The pod conditions the kubelet owns.
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// The status patch (JSON merge patch of `status`: lists are replaced whole, so no
/// stale condition message or container state survives) of what was observed; `now` is
/// used for transition times of conditions whose status changed.
pub fn status(pod: &Pod, observed: &Observed, now: &str) -> Value {
    let (statuses, phases): (Vec<Value>, Vec<ContainerPhase>) =
        observed.containers.iter().map(container_status).unzip();
    let phase = phase_of(pod, observed, &phases);
    let unready: Vec<&str> = observed
        .containers
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| s["ready"] != json!(true))
        .map(|(c, _)| c.name.as_str())
        .collect();
    let old = pod.status.as_ref();
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let previous = old
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
        let since = match previous {
            Some(p) if p.status == status => p
                .last_transition_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| now.to_owned()),
            _ => now.to_owned(),
        };
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null,
                           "lastTransitionTime": since});
        if let Some(r) = reason {
            c["reason"] = json!(r);
        }
        if let Some(m) = message {
            c["message"] = json!(m);
        }
        c
    };
    let ready = unready.is_empty() && phase == "Running";
    let (reason, message) = if ready {
        (None, None)
    } else if phase == "Succeeded" || phase == "Failed" {
        (Some("PodCompleted"), None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let initialized_reason = completed.then_some("PodCompleted");
    let start_time = old
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| now.to_owned());
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            observed.sandbox_ready,
            None,
            None,
        ),
        if observed.initialized {
            condition("Initialized", true, initialized_reason, None)
        } else {
            condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: [{}]",
                    observed.init_pending.join(" ")
                )),
            )
        },
        condition("ContainersReady", ready, reason, message.clone()),
        condition("Ready", ready, reason, message),
    ];
    // Conditions others own (PodScheduled, readiness gates) stay as they are: the patch
    // replaces the whole list.
    for c in old
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        if !KUBELET_CONDITIONS.contains(&c.type_.as_str()) {
            conditions.push(serde_json::to_value(c).unwrap_or_default());
        }
    }
    let mut s = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": observed.host_ip, "hostIPs": [{"ip": observed.host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
    });
    if !observed.init_containers.is_empty() {
        let init: Vec<Value> = observed
            .init_containers
            .iter()
            .map(|c| container_status(c).0)
            .collect();
        s["initContainerStatuses"] = json!(init);
    }
    if let Some(ip) = &observed.pod_ip {
        s["podIP"] = json!(ip);
        s["podIPs"] = json!([{ "ip": ip }]);
    }
    json!({ "status": s })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "i"}]}}))
        .unwrap()
    }

    fn runtime(state: i32, exit_code: i32) -> api::ContainerStatus {
        api::ContainerStatus {
            id: "abc".into(),
            state,
            exit_code,
            started_at: 1_700_000_000_000_000_000,
            finished_at: 1_700_000_001_000_000_000,
            image_ref: "sha256:img".into(),
            ..Default::default()
        }
    }

    fn observed(view: ContainerView) -> Observed {
        Observed {
            sandbox_ready: true,
            initialized: true,
            pod_ip: Some("10.42.0.7".into()),
            host_ip: "192.168.0.2".into(),
            containers: vec![ContainerView {
                name: "a".into(),
                image: "i".into(),
                ..view
            }],
            ..Default::default()
        }
    }

    #[test]
    fn running_container_makes_a_ready_running_pod() {
        let o = observed(ContainerView {
            current: Some(runtime(CONTAINER_RUNNING, 0)),
            ..Default::default()
        });
        let s = status(&pod("Always"), &o, "now");
        let s = &s["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.7");
        assert_eq!(s["conditions"][3]["type"], "Ready");
        assert_eq!(s["conditions"][3]["status"], "True");
        assert!(s["conditions"][3].get("message").is_none());
        let c = &s["containerStatuses"][0];
        assert_eq!(c["containerID"], "containerd://abc");
        assert_eq!(c["state"]["running"]["startedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(c["ready"], true);
    }

    #[test]
    fn init_containers_hold_the_pod_pending() {
        let mut o = observed(ContainerView {
            waiting: Some(("PodInitializing".into(), String::new())),
            ..Default::default()
        });
        o.initialized = false;
        o.init_pending = vec!["setup".into()];
        o.init_containers = vec![ContainerView {
            name: "setup".into(),
            image: "i".into(),
            current: Some(runtime(CONTAINER_RUNNING, 0)),
            ..Default::default()
        }];
        let s = status(&pod("Always"), &o, "now");
        let s = &s["status"];
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["conditions"][1]["status"], "False");
        assert_eq!(s["conditions"][1]["reason"], "ContainersNotInitialized");
        assert_eq!(
            s["conditions"][1]["message"],
            "containers with incomplete status: [setup]"
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["running"]["startedAt"],
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        o.init_failed = true;
        assert_eq!(
            status(&pod("Never"), &o, "now")["status"]["phase"],
            "Failed"
        );
    }

    #[test]
    fn conditions_of_others_are_kept() {
        let mut p = pod("Always");
        p.status = serde_json::from_value(json!({"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "old"}]}))
        .unwrap();
        let s = status(&p, &observed(ContainerView::default()), "now");
        let types: Vec<_> = s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "ContainersReady",
                "Ready",
                "PodScheduled"
            ]
        );
    }

    #[test]
    fn probes_decide_readiness() {
        let running = |ready, started| {
            observed(ContainerView {
                current: Some(runtime(CONTAINER_RUNNING, 0)),
                ready,
                started,
                ..Default::default()
            })
        };
        let ready = |o: &Observed| {
            let s = status(&pod("Always"), o, "now");
            let c = &s["status"]["containerStatuses"][0];
            (
                c["ready"].as_bool().unwrap(),
                c["started"].as_bool().unwrap(),
                s["status"]["conditions"][3]["status"].clone(),
            )
        };
        assert_eq!(
            ready(&running(Some(false), None)),
            (false, true, json!("False"))
        );
        assert_eq!(
            ready(&running(Some(true), None)),
            (true, true, json!("True"))
        );
        assert_eq!(
            ready(&running(Some(true), Some(false))),
            (false, false, json!("False"))
        );
        let s = status(&pod("Always"), &running(Some(false), None), "now");
        assert_eq!(s["status"]["phase"], "Running");
    }

    #[test]
    fn creating_container_is_pending_with_upstream_message() {
        let o = observed(ContainerView::default());
        let s = status(&pod("Always"), &o, "now");
        let s = &s["status"];
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(s["conditions"][2]["reason"], "ContainersNotReady");
        assert_eq!(
            s["conditions"][2]["message"],
            "containers with unready status: [a]"
        );
    }

    #[test]
    fn exited_containers_follow_the_restart_policy() {
        let done = |code| {
            observed(ContainerView {
                current: Some(runtime(CONTAINER_EXITED, code)),
                ..Default::default()
            })
        };
        assert_eq!(
            status(&pod("Never"), &done(0), "n")["status"]["phase"],
            "Succeeded"
        );
        assert_eq!(
            status(&pod("Never"), &done(1), "n")["status"]["phase"],
            "Failed"
        );
        assert_eq!(
            status(&pod("OnFailure"), &done(0), "n")["status"]["phase"],
            "Succeeded"
        );
        let s = status(&pod("Never"), &done(1), "n");
        assert_eq!(
            s["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
        assert_eq!(s["status"]["conditions"][3]["reason"], "PodCompleted");
        // Back-off after a crash: waiting, with the crash as lastState, and still Running.
        let backoff = observed(ContainerView {
            current: Some(runtime(CONTAINER_EXITED, 2)),
            waiting: Some(("CrashLoopBackOff".into(), "back-off 10s".into())),
            restart_count: 1,
            ..Default::default()
        });
        let s = status(&pod("Always"), &backoff, "n");
        assert_eq!(s["status"]["phase"], "Running");
        let c = &s["status"]["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(c["restartCount"], 1);
    }
}
