//! Events as controllers record them: one recorder per controller, named as upstream's
//! event source component, and a best-effort publish (an event that cannot be written is
//! logged, never an error of the reconcile).

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;

use crate::Context;

/// A recorder writing with the controller's own client as `component`.
pub fn recorder(cx: &Context, component: &str) -> Recorder {
    Recorder::new(
        cx.client.clone(),
        Reporter {
            controller: component.into(),
            instance: None,
        },
    )
}

/// Records an event about `obj`.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(reason, error = %e, "cannot record event");
    }
}
