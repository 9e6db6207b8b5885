//! The admission chain: upstream's admission plugins in upstream's order, run by the
//! generic REST handler on every write after decoding and before storing.
//!
//! As upstream's `admission.Interface`, a plugin may mutate ([`Plugin::mutate`], the
//! `MutationInterface`) and/or validate ([`Plugin::validate`], the
//! `ValidationInterface`). The chain runs every plugin's mutation in order, then every
//! plugin's validation in order; the first error denies the request and nothing is
//! written. Each plugin is one module; [`Chain::default`] is the registry.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rkube_api::resources::ResourceInfo;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::{from_store, ApiError};
use crate::ApiState;

mod default_toleration_seconds;
mod limit_ranger;
mod namespace_lifecycle;
mod node_restriction;
mod pod_security;
mod priority;
mod resource_quota;
mod service_account;
pub mod webhook;

pub use priority::ensure_system_priority_classes;

/// What a request does to an object (upstream's `admission.Operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// Upstream's spelling (`CREATE`, ...), as webhooks and rules use it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// One request as admission sees it (upstream's `admission.Attributes`), plus what the
/// plugins hand back: warnings for the client and audit annotations.
pub struct Request {
    pub state: Arc<ApiState>,
    pub info: &'static ResourceInfo,
    /// The subresource (`status`, `binding`, ...), empty for the main resource.
    pub subresource: String,
    pub operation: Operation,
    pub namespace: String,
    pub name: String,
    pub user: UserInfo,
    pub dry_run: bool,
    /// The object after the request (none for a delete).
    pub object: Option<Value>,
    /// The object before the request (update and delete).
    pub old: Option<Value>,
    /// Warnings for the client (`Warning` headers).
    pub warnings: Vec<String>,
    /// Audit annotations (`<plugin-key>/<name>` → value).
    pub annotations: BTreeMap<String, String>,
}

impl Request {
    /// Whether this request is about `group`/`plural` (any version) and `subresource`.
    pub fn is(&self, group: &str, plural: &str, subresource: &str) -> bool {
        self.info.group == group && self.info.plural == plural && self.subresource == subresource
    }

    /// Upstream's `admission.NewForbidden`: 403 `<resource> "<name>" is forbidden: <why>`.
    pub fn forbidden(&self, why: impl AsRef<str>) -> ApiError {
        let name = if self.name.is_empty() {
            self.object
                .as_ref()
                .and_then(|o| crate::meta::meta_str(o, "generateName"))
                .unwrap_or("")
        } else {
            &self.name
        };
        ApiError::forbidden(self.info, name, why.as_ref())
    }

    /// The object of the request (for a delete: the object being deleted).
    pub fn subject(&self) -> Option<&Value> {
        self.object.as_ref().or(self.old.as_ref())
    }
}

/// The result of one admission step.
pub type Verdict<'a> = BoxFuture<'a, Result<(), ApiError>>;

/// An admission plugin. Both phases default to admitting everything.
pub trait Plugin: Send + Sync {
    /// Upstream's plugin name (`NamespaceLifecycle`, ...).
    fn name(&self) -> &'static str;

    /// The mutating phase: may change `request.object`.
    fn mutate<'a>(&'a self, _request: &'a mut Request) -> Verdict<'a> {
        Box::pin(async { Ok(()) })
    }

    /// The validating phase: may not change the object.
    fn validate<'a>(&'a self, _request: &'a mut Request) -> Verdict<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// The plugins in upstream's order.
pub struct Chain {
    plugins: Vec<Box<dyn Plugin>>,
}

impl Default for Chain {
    /// Upstream's default chain (`AllOrderedPlugins`, restricted to the plugins enabled by
    /// default that rkube implements).
    fn default() -> Self {
        Chain {
            plugins: vec![
                Box::new(namespace_lifecycle::NamespaceLifecycle),
                Box::new(limit_ranger::LimitRanger),
                Box::new(service_account::ServiceAccount),
                Box::new(node_restriction::NodeRestriction),
                Box::new(pod_security::PodSecurity),
                Box::new(priority::Priority),
                Box::new(default_toleration_seconds::DefaultTolerationSeconds),
                Box::new(webhook::MutatingWebhook::default()),
                Box::new(webhook::ValidatingWebhook::default()),
                Box::new(resource_quota::ResourceQuota),
            ],
        }
    }
}

impl Chain {
    /// The names of the plugins, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs every plugin's mutating phase in order.
    pub async fn mutate(&self, request: &mut Request) -> Result<(), ApiError> {
        for plugin in &self.plugins {
            plugin.mutate(request).await?;
        }
        Ok(())
    }

    /// Runs every plugin's validating phase in order.
    pub async fn validate(&self, request: &mut Request) -> Result<(), ApiError> {
        for plugin in &self.plugins {
            plugin.validate(request).await?;
        }
        Ok(())
    }
}

/// The built-in row of `group`/`plural`.
pub(crate) fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    rkube_api::resources::find(group, version, plural).expect("a built-in resource")
}

/// An object as the server has it: from the resource's watch cache (parsed once, shared),
/// else (not seen by the cache yet) from the store, as upstream's plugins fall back to a
/// live lookup.
pub(crate) async fn lookup(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Arc<Value>>, ApiError> {
    let key = info.key(namespace, name);
    if let Ok(cache) = state.caches.get(&state.store, info.storage_prefix()).await {
        if let Some(o) = cache.get_object(&key) {
            return o
                .value()
                .map(Some)
                .ok_or_else(|| ApiError::internal(format!("{key}: stored object is not JSON")));
        }
    }
    let got = state
        .store
        .get(&key, None)
        .await
        .map_err(|e| from_store(e, info, name))?;
    match got.kv {
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(|v| Some(Arc::new(v)))
            .map_err(ApiError::internal),
        None => Ok(None),
    }
}

/// The objects of a resource (in `namespace`, or all) from its watch cache, each parsed
/// once and shared.
pub(crate) async fn list(
    state: &ApiState,
    info: &ResourceInfo,
    namespace: Option<&str>,
) -> Result<Vec<Arc<Value>>, ApiError> {
    let cache = state
        .caches
        .get(&state.store, info.storage_prefix())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let prefix = match namespace {
        Some(ns) => info.namespace_prefix(ns),
        None => info.storage_prefix().to_owned(),
    };
    let (objects, _) = cache
        .list(&prefix, 0)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(objects.iter().filter_map(|o| o.value()).collect())
}

/// Whether a request is a pod create of the main resource (what most pod plugins act on).
pub(crate) fn is_pod_create(r: &Request) -> bool {
    r.operation == Operation::Create && r.is("", "pods", "") && r.object.is_some()
}
