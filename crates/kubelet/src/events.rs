//! Events the kubelet records about pods (core/v1 Events, source `kubelet`), with
//! upstream's reasons and messages. A repeat of the same event updates its count and
//! last timestamp instead of adding another, as client-go's event correlator does.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::pod_config::pod_ref;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";
/// How many distinct events are remembered for aggregation.
const MAX_REMEMBERED: usize = 4096;

/// What makes two events the same: namespace, pod uid, container, reason, message.
type EventKey = (String, String, String, String, String);

/// Posts events in the background so a slow API never holds up a pod worker.
pub struct Recorder {
    client: Client,
    node: String,
    /// (namespace, uid, container, reason, message) → (event name, count).
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: Client, node: String) -> Self {
        Recorder {
            client,
            node,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `pod` (and one of its containers, if named).
    pub fn pod(
        &self,
        pod: &Pod,
        container: Option<&str>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let (name, ns, uid) = pod_ref(pod);
        let key = (
            ns.to_owned(),
            uid.to_owned(),
            container.unwrap_or_default().to_owned(),
            reason.to_owned(),
            message.clone(),
        );
        let now = crate::time::now_rfc3339();
        let (event_name, count) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            let nanos = crate::time::now_nanos();
            let entry = seen
                .entry(key)
                .or_insert_with(|| (format!("{name}.{nanos:x}"), 0));
            entry.1 += 1;
            entry.clone()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        if count > 1 {
            let patch = json!({"count": count, "lastTimestamp": now});
            tokio::spawn(async move {
                if let Err(e) = api
                    .patch(&event_name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::debug!(event = %event_name, error = %e, "cannot update event");
                }
            });
            return;
        }
        let mut involved = json!({"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name,
                                  "uid": uid, "resourceVersion": pod.metadata.resource_version});
        if let Some(c) = container {
            involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
        }
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "eventTime": null,
            "reportingComponent": "kubelet", "reportingInstance": self.node,
        });
        let Ok(event) = serde_json::from_value::<Event>(event) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "cannot record event");
            }
        });
    }
}
