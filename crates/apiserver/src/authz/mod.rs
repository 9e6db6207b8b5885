//! Authorization: whether the authenticated user may do what a request asks.
//!
//! Every request is authorized in `handle` before any handler runs, on the
//! [`Attributes`] parsed from it as upstream's `RequestInfo`. The chain is upstream's
//! default: members of `system:masters` may do everything (the privileged group), then
//! RBAC decides from the in-memory [`rbac::Index`] of roles and bindings, which a store
//! watch of the RBAC prefix keeps current (no store read per request). A denial is a 403
//! with upstream's message and writes nothing.
//!
//! The rest of the module serves RBAC's other duties: the default [`policy`] reconciled
//! at start, the [`aggregation`] controller, [`escalation`] checks on role and binding
//! writes, the access [`review`] APIs and [`impersonation`].

use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use rkube_api::{GroupResource, Status};
use rkube_store::{EventKind, ListOptions, Revision, Store, WatchResponse};
use serde_json::Value;

pub mod aggregation;
pub mod attributes;
pub mod escalation;
pub mod impersonation;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod review;

pub use attributes::Attributes;
use rbac::{Index, PolicyRule, ResolveError};

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::ApiState;

/// The group whose members may do everything (upstream's `system:masters`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// How long a write to an RBAC object waits for the authorizer to see it.
const SYNC_WAIT: Duration = Duration::from_secs(3);
/// Pause before re-watching after the store watch failed.
const RETRY: Duration = Duration::from_millis(200);

/// An authorization decision and upstream's reason for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    /// No authorizer allowed it; the reason is empty or names resolution errors.
    Deny(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

/// The authorizer: the privileged group, the Node authorizer, then RBAC over the index.
pub struct Authorizer {
    index: RwLock<Index>,
    /// What each node's pods reference (the Node authorizer's graph).
    node_graph: RwLock<node::Graph>,
    /// The store revision the index reflects.
    revision: tokio::sync::watch::Sender<Revision>,
    /// Asks the follower for a store progress report now.
    progress_request: tokio::sync::Notify,
}

impl Default for Authorizer {
    fn default() -> Self {
        Authorizer {
            index: RwLock::default(),
            node_graph: RwLock::default(),
            revision: tokio::sync::watch::channel(0).0,
            progress_request: tokio::sync::Notify::new(),
        }
    }
}

/// Whether `user` is in the privileged group.
pub fn is_privileged(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == PRIVILEGED_GROUP)
}

impl Authorizer {
    /// The index, for reading.
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The Node authorizer's graph, for writing (its store watches, tests).
    pub fn node_graph_mut(&self) -> std::sync::RwLockWriteGuard<'_, node::Graph> {
        self.node_graph.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts one stored RBAC object (`None`: deleted) under its storage `key` into the
    /// index directly (benchmarks and tests; the server feeds it from the store watch).
    pub fn apply(&self, key: &str, obj: Option<&Value>) {
        self.index_mut().apply(key, obj);
    }

    /// Decides a request (an allowing decision without its reason: see [`Self::explain`]).
    pub fn authorize(&self, a: &Attributes) -> Decision {
        self.decide(a, false)
    }

    /// Decides a request with upstream's reason either way (access reviews report it).
    pub fn explain(&self, a: &Attributes) -> Decision {
        self.decide(a, true)
    }

    fn decide(&self, a: &Attributes, explain: bool) -> Decision {
        if is_privileged(&a.user) {
            return Decision::Allow(String::new());
        }
        let node_reason = match node::authorize(&self.node_graph, a) {
            node::Verdict::Allow => return Decision::Allow(String::new()),
            node::Verdict::NoOpinion(reason) => reason,
        };
        match self.index().authorize(a, explain) {
            Ok(reason) => Decision::Allow(reason),
            // Upstream's union authorizer joins the reasons of every authorizer.
            Err(reason) if node_reason.is_empty() => Decision::Deny(reason),
            Err(reason) if reason.is_empty() => Decision::Deny(node_reason),
            Err(reason) => Decision::Deny(format!("{node_reason}\n{reason}")),
        }
    }

    /// The rules `user` holds in `namespace` (cluster-wide ones included), as the
    /// authorizer chain would enumerate them: the privileged group's `*` rules first.
    pub fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Vec<ResolveError>) {
        let (mut rules, errors) = self.index().rules_for(user, namespace);
        if is_privileged(user) {
            rules.insert(0, PolicyRule::resources(&["*"], &["*"], &["*"]));
            rules.insert(1, PolicyRule::urls(&["*"], &["*"]));
        }
        (rules, errors)
    }

    /// Waits (bounded) until the index reflects every write the store has acknowledged,
    /// so that a client that changed RBAC sees the change take effect at once.
    pub async fn sync(&self, store: &dyn Store) {
        let Ok(current) = store.current_revision().await else {
            return;
        };
        let mut rx = self.revision.subscribe();
        self.progress_request.notify_one();
        let _ = tokio::time::timeout(SYNC_WAIT, rx.wait_for(|&r| r >= current)).await;
    }

    fn advance(&self, revision: Revision) {
        self.revision.send_if_modified(|r| {
            if revision > *r {
                *r = revision;
                true
            } else {
                false
            }
        });
    }
}

/// The 403 upstream's authorization filter answers with.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let user = rbac::go_quote(&a.user.name);
    let mut message = if !a.resource_request {
        format!(
            "User {user} cannot {} path {}",
            a.verb,
            rbac::go_quote(&a.path)
        )
    } else {
        let resource = rbac::go_quote(&a.combined_resource());
        let group = rbac::go_quote(&a.api_group);
        if a.namespace.is_empty() {
            format!(
                "User {user} cannot {} resource {resource} in API group {group} at the cluster scope",
                a.verb
            )
        } else {
            format!(
                "User {user} cannot {} resource {resource} in API group {group} in the namespace {}",
                a.verb,
                rbac::go_quote(&a.namespace)
            )
        }
    };
    // Upstream keeps errors from looking like HTML.
    message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    Status::forbidden(
        &GroupResource::new(&a.api_group, &a.resource),
        &a.name,
        &message,
    )
    .into()
}

/// Loads the index and keeps following the store, before the server serves.
pub async fn start(state: &Arc<ApiState>) -> Result<(), rkube_store::Error> {
    let revision = load(&state.authz, &*state.store).await?;
    tokio::spawn(follow(state.clone(), revision));
    node::start(state).await;
    Ok(())
}

/// Lists every RBAC object into a fresh index; returns the revision of the list.
async fn load(authz: &Authorizer, store: &dyn Store) -> Result<Revision, rkube_store::Error> {
    let mut objects = Vec::new();
    let mut options = ListOptions {
        limit: Some(1000),
        ..Default::default()
    };
    let revision = loop {
        let page = store.list(rbac::PREFIX, options.clone()).await?;
        for kv in page.kvs {
            if let Ok(v) = serde_json::from_slice::<Value>(&kv.value) {
                objects.push((kv.key, v));
            }
        }
        match page.continue_token {
            Some(token) => {
                options = ListOptions {
                    revision: Some(page.revision),
                    limit: Some(1000),
                    continue_token: Some(token),
                }
            }
            None => break page.revision,
        }
    };
    {
        let mut index = authz.index_mut();
        index.clear();
        for (key, obj) in &objects {
            index.apply(key, Some(obj));
        }
    }
    authz.advance(revision);
    Ok(revision)
}

async fn follow(state: Arc<ApiState>, mut revision: Revision) {
    let authz = &state.authz;
    loop {
        let mut watch = match state.store.watch(rbac::PREFIX, revision).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "authorizer: watch of RBAC objects failed; relisting");
                tokio::time::sleep(RETRY).await;
                if let Ok(r) = load(authz, &*state.store).await {
                    revision = r;
                }
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                msg = watch.recv() => msg,
                () = authz.progress_request.notified() => {
                    watch.request_progress();
                    continue;
                }
            };
            match msg {
                Some(Ok(WatchResponse::Events(events))) => {
                    let mut last = revision;
                    {
                        let mut index = authz.index_mut();
                        for e in events {
                            last = e.revision();
                            match e.kind {
                                EventKind::Delete => index.apply(&e.kv.key, None),
                                _ => match serde_json::from_slice::<Value>(&e.kv.value) {
                                    Ok(v) => index.apply(&e.kv.key, Some(&v)),
                                    Err(_) => index.apply(&e.kv.key, None),
                                },
                            }
                        }
                    }
                    revision = last;
                    authz.advance(revision);
                    state.aggregation.notify_one();
                }
                Some(Ok(WatchResponse::Progress(r))) => {
                    revision = revision.max(r);
                    authz.advance(r);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "authorizer: RBAC watch ended; relisting");
                    break;
                }
                None => break,
            }
        }
        // Lost the watch (compaction, store restart): list again, then re-watch.
        loop {
            match load(authz, &*state.store).await {
                Ok(r) => {
                    revision = r;
                    state.aggregation.notify_one();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "authorizer: relist failed");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            groups: vec!["devs".into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    fn status(a: &Attributes, reason: &str) -> Value {
        serde_json::to_value(&*forbidden(a, reason).0).unwrap()
    }

    #[test]
    fn forbidden_messages_are_upstreams() {
        let list = Attributes::from_request(
            alice(),
            "GET",
            "/api/v1/namespaces/default/configmaps",
            None,
        );
        let s = status(&list, "");
        assert_eq!(s["message"], "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"");
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(s["code"], 403);
        assert_eq!(s["details"], serde_json::json!({"kind": "configmaps"}));

        let get = Attributes::from_request(
            alice(),
            "GET",
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            None,
        );
        let s = status(&get, "");
        assert_eq!(s["message"], "deployments.apps \"d\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"x\"");
        assert_eq!(
            s["details"],
            serde_json::json!({"name": "d", "group": "apps", "kind": "deployments"})
        );

        let nodes = Attributes::from_request(alice(), "GET", "/api/v1/nodes", None);
        assert_eq!(status(&nodes, "")["message"], "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope");

        let path = Attributes::from_request(UserInfo::anonymous(), "GET", "/metrics", None);
        let s = status(&path, "");
        assert_eq!(
            s["message"],
            "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
        );
        assert_eq!(s["details"], serde_json::json!({}));

        let html = Attributes::from_request(alice(), "GET", "/<b>", None);
        assert_eq!(
            status(&html, "")["message"],
            "forbidden: User \"alice\" cannot get path \"/&lt;b&gt;\""
        );

        let with_reason = status(
            &list,
            "RBAC: role.rbac.authorization.k8s.io \"r\" not found",
        );
        assert!(with_reason["message"].as_str().unwrap().ends_with(
            "in the namespace \"default\": RBAC: role.rbac.authorization.k8s.io \"r\" not found"
        ));
    }

    #[test]
    fn privileged_group_may_do_everything() {
        let authz = Authorizer::default();
        let mut a = Attributes::from_request(alice(), "DELETE", "/api/v1/nodes/n", None);
        assert!(!authz.authorize(&a).allowed());
        a.user.groups.push(PRIVILEGED_GROUP.into());
        assert!(authz.authorize(&a).allowed());
    }
}
