//! DefaultBinder: binds a pod by creating its `pods/binding` subresource.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::framework::{BindPlugin, Plugin, Status};

pub const NAME: &str = "DefaultBinder";

/// The Bind plugin.
pub struct DefaultBinder {
    client: Option<Client>,
}

impl DefaultBinder {
    /// A binder that posts through `client` (without one, every bind fails).
    pub fn new(client: Option<Client>) -> Self {
        DefaultBinder { client }
    }
}

/// The Binding object that assigns `pod` to `node`.
pub fn binding(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

#[async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, pod: &Pod, node: &str) -> Status {
        let Some(client) = self.client.clone() else {
            return Status::error("no API client to bind with");
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client, ns);
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding(pod, node),
            )
            .await
        {
            Ok(_) => Status::success(),
            Err(e) => Status::error(format!("binding rejected: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_targets_the_node() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let b = serde_json::to_value(binding(&pod, "n1")).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"apiVersion": "v1", "kind": "Binding",
                               "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                               "target": {"kind": "Node", "name": "n1"}})
        );
    }
}
