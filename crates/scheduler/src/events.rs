//! The scheduler's event recorder. As upstream's event broadcaster, recording an event
//! never blocks scheduling or binding: events are queued (at most [`QUEUE`]; when full,
//! new ones are dropped with a log line, as upstream drops them) and a background task
//! posts them with at most [`SENDERS`] calls in flight. A repeat of an event (same pod,
//! reason and message) bumps the earlier event's count instead of creating another
//! (upstream's event correlation).
//!
//! Before, each binding cycle posted its `Scheduled` event itself: under a burst of
//! thousands of binds that doubled the calls each cycle made and the connections the
//! scheduler held open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

/// Events waiting to be posted; more are dropped.
pub(crate) const QUEUE: usize = 10_000;
/// Event calls in flight at once.
pub(crate) const SENDERS: usize = 8;
/// Correlation entries kept before the oldest generation is forgotten.
const REMEMBERED: usize = 10_000;

/// An event's identity for correlation: (pod UID, reason, message).
type EventKey = (String, String, String);

/// One event to post about a pod.
#[derive(Debug)]
struct Note {
    component: String,
    namespace: String,
    name: String,
    uid: Option<String>,
    resource_version: Option<String>,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

struct Shared {
    client: Client,
    /// Events already posted, by key: their name and count.
    recorded: Mutex<HashMap<EventKey, (String, i32)>>,
}

/// Queues events for the background task that posts them; dropping the last
/// `Recorder` ends the task once the queue is drained.
pub(crate) struct Recorder {
    tx: mpsc::Sender<Note>,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts the posting task (on the current Tokio runtime).
    pub(crate) fn start(client: Client) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Note>(QUEUE);
        let shared = Arc::new(Shared {
            client,
            recorded: Mutex::default(),
        });
        let task = shared.clone();
        tokio::spawn(async move {
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .for_each_concurrent(SENDERS, |note| {
                    let task = task.clone();
                    async move { task.post(note).await }
                })
                .await;
        });
        Recorder { tx, shared }
    }

    /// Records an event about `pod` from `component` (the profile's scheduler name, as
    /// upstream's per-profile recorders); it is posted in the background.
    pub(crate) fn record(
        &self,
        component: &str,
        pod: &Pod,
        type_: &'static str,
        reason: &'static str,
        message: &str,
    ) {
        let note = Note {
            component: component.to_owned(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            type_,
            reason,
            message: message.to_owned(),
        };
        if let Err(mpsc::error::TrySendError::Full(note)) = self.tx.try_send(note) {
            tracing::warn!(object.ref = %format!("{}/{}", note.namespace, note.name),
                reason = note.reason, "event dropped: {QUEUE} events are waiting to be posted");
        }
    }

    /// Forgets the events of a deleted pod.
    pub(crate) fn forget(&self, uid: &str) {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.0 != uid);
    }
}

impl Shared {
    async fn post(&self, note: Note) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let now = crate::scheduler::now_rfc3339();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &note.namespace);
        let key = (
            note.uid.clone().unwrap_or_default(),
            note.reason.to_owned(),
            note.message.clone(),
        );
        let seen = self
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((event_name, count)) = seen {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if api
                .patch(&event_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                self.remember(key, event_name, count + 1);
                return;
            }
        }
        let event_name = format!("{}.{nanos:x}", note.name);
        let mut event = json!({
            "metadata": {"name": event_name, "namespace": note.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": note.namespace,
                "name": note.name, "uid": note.uid, "resourceVersion": note.resource_version},
            "reason": note.reason, "message": note.message, "type": note.type_,
            "source": {"component": note.component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": note.component, "reportingInstance": note.component,
            "action": if note.reason == "Scheduled" { "Binding" } else { "Scheduling" },
        });
        // Posted as JSON, and the answer not decoded: no typed Event is built either way.
        // A pod without uid or resourceVersion sends those fields unset, not null.
        if let Some(o) = event["involvedObject"].as_object_mut() {
            o.retain(|_, v| !v.is_null());
        }
        let request = http::Request::post(format!("/api/v1/namespaces/{}/events", note.namespace))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&event).unwrap_or_default());
        let Ok(request) = request else {
            return;
        };
        match self.client.request_text(request).await {
            Ok(_) => self.remember(key, event_name, 1),
            Err(e) => {
                tracing::debug!(object.ref = %format!("{}/{}", note.namespace, note.name),
                    error = %e, "cannot record event")
            }
        }
    }

    fn remember(&self, key: EventKey, event_name: String, count: i32) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if recorded.len() > REMEMBERED {
            recorded.clear();
        }
        recorded.insert(key, (event_name, count));
    }
}
