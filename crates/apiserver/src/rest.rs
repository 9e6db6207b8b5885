//! The generic REST handlers: every built-in resource is served by this one code path.
//! Kinds differ only through their table row (`rkube_api::resources`) and strategy
//! (`crate::strategy`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rkube_api::field_error::BadValue;
use rkube_api::resources::ResourceInfo;
use rkube_api::ssa;
use rkube_api::FieldError;
use serde_json::{json, Value};

use crate::admission::{self, Operation};
use crate::auth::UserInfo;
use crate::codec::{decode_served, encode_for_store, write_served};
use crate::crd::{CustomVersion, Snapshot};
use crate::error::{from_store, ApiError};
use crate::filter::Filter;
use crate::meta::{self, meta_str, metadata_mut};
use crate::negotiate::Format;
use crate::query::Query;
use crate::request::ResourcePath;
use crate::{codec, conversion, negotiate, strategy, table, watch, ApiState};

/// Most attempts of a read-modify-write (patch) that keeps losing to other writers.
const MAX_PATCH_ATTEMPTS: usize = 8;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// Serves one resource request; errors are answered in the negotiated format.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    state: Arc<ApiState>,
    served: &Snapshot,
    user: UserInfo,
    method: Method,
    path: ResourcePath,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let found = served.find(&path.group, &path.version, &path.resource);
    let mut negotiated = negotiate::response_format(&headers);
    if let (Ok(Format::Protobuf), Some((info, _))) = (&negotiated, &found) {
        if !crate::proto::can_encode(info.api_version(), info.kind) {
            negotiated = negotiate::response_format_without_protobuf(&headers);
        }
    }
    let error_format = match negotiated {
        Ok(Format::Protobuf) => Format::Protobuf,
        _ => Format::Json,
    };
    serve_resource(
        state, user, method, path, query, headers, body, found, negotiated,
    )
    .await
    .or_else(|e| Ok(e.into_response_as(error_format)))
}

#[allow(clippy::too_many_arguments)]
async fn serve_resource(
    state: Arc<ApiState>,
    user: UserInfo,
    method: Method,
    path: ResourcePath,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
    found: Option<(&'static ResourceInfo, Option<Arc<CustomVersion>>)>,
    negotiated: Result<Format, ApiError>,
) -> ApiResult {
    let (info, custom) = found.ok_or_else(ApiError::page_not_found)?;
    if info.namespaced {
        if path.namespace.is_none() && path.name.is_some() {
            return Err(ApiError::page_not_found());
        }
    } else if path.namespace.is_some() {
        return Err(ApiError::page_not_found());
    }
    if let Some(sub) = &path.subresource {
        if !info.subresources.iter().any(|s| s.name == sub) {
            return Err(ApiError::page_not_found());
        }
        let proxied = sub == "log" && info.group.is_empty() && info.plural == "pods";
        if !proxied
            && ![
                "status", "scale", "binding", "finalize", "token", "approval", "eviction",
            ]
            .contains(&sub.as_str())
        {
            return Err(ApiError::not_implemented(format!(
                "the {sub} subresource of {} is not implemented yet",
                info.plural
            )));
        }
    }
    let watch = path.legacy_watch || query.flag("watch");
    let verb = match (&method, path.name.is_some(), watch) {
        (&Method::GET, false, true) => "watch",
        (&Method::GET, true, true) => "watch",
        (&Method::GET, true, false) => "get",
        (&Method::GET, false, false) => "list",
        (&Method::POST, false, _) => "create",
        (&Method::POST, true, _) if path.subresource.is_some() => "create",
        (&Method::PUT, true, _) => "update",
        (&Method::PATCH, true, _) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed(info, method.as_str())),
    };
    let allowed = match &path.subresource {
        Some(sub) => info
            .subresources
            .iter()
            .find(|s| s.name == sub)
            .is_some_and(|s| s.verbs.contains(&verb)),
        None => info.verbs.contains(&verb),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(info, verb));
    }
    if verb == "create" && custom.as_ref().is_some_and(|c| c.terminating) {
        let mut err = ApiError::method_not_allowed(info, verb);
        err.0.message = "create not allowed while custom resource definition is terminating".into();
        return Err(err);
    }
    // Negotiated above; a 406 comes after the 404s and 405s, as upstream's does.
    let format = negotiated?;
    let ctx = Ctx {
        format,
        state,
        user,
        info,
        custom,
        path,
        query,
        headers,
    };
    if verb == "create" && info.group == "authorization.k8s.io" && info.is_virtual() {
        return ctx.access_review(body);
    }
    if verb == "create" && info.group == "authentication.k8s.io" && info.is_virtual() {
        return ctx.authentication_review(body).await;
    }
    match (verb, ctx.path.subresource.as_deref()) {
        ("create", Some("binding")) => return ctx.bind(body).await,
        ("create", Some("token")) => return ctx.token_request(body).await,
        ("create", Some("eviction")) if ctx.info.plural == "pods" => return ctx.evict(body).await,
        ("get", Some("scale")) => return ctx.get_scale().await,
        ("update" | "patch", Some("scale")) => {
            return ctx.update_scale(body, verb == "patch").await
        }
        ("update", Some("finalize")) => return ctx.finalize(body).await,
        ("get", Some("log")) => {
            let ns = ctx.path.namespace.as_deref().unwrap_or("default");
            return crate::kubelet_proxy::pod_log(&ctx.state, ns, ctx.name(), &ctx.query).await;
        }
        _ => {}
    }
    match verb {
        "get" => ctx.get().await,
        "list" => ctx.list().await,
        "watch" => ctx.watch().await,
        "create" => ctx.create(body).await,
        "update" => ctx.update(body).await,
        "patch" => ctx.patch(body).await,
        "delete" => ctx.delete(body).await,
        "deletecollection" => ctx.delete_collection(body).await,
        _ => unreachable!("verbs are matched above"),
    }
}

struct Ctx {
    state: Arc<ApiState>,
    /// Who the request is from (after impersonation).
    user: UserInfo,
    format: Format,
    info: &'static ResourceInfo,
    /// The CRD version serving this request, for custom resources.
    custom: Option<Arc<CustomVersion>>,
    path: ResourcePath,
    query: Query,
    headers: HeaderMap,
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl Ctx {
    fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    /// The access reviews of `authorization.k8s.io`: computed, never stored.
    fn access_review(&self, body: Bytes) -> ApiResult {
        let obj = self.decode_body(&body)?;
        let reviewed = crate::authz::review::create(
            &self.state.authz,
            self.info,
            &self.user,
            self.path.namespace.as_deref(),
            obj,
        )?;
        self.respond_value(StatusCode::CREATED, &reviewed)
    }

    /// Refuses RBAC writes that would grant what the user does not hold.
    fn check_escalation(&self, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        crate::authz::escalation::check_write(
            &self.state.authz,
            &self.user,
            self.info,
            self.path.namespace.as_deref().unwrap_or(""),
            self.name(),
            obj,
            old,
        )
    }

    /// The reviews of `authentication.k8s.io` (TokenReview, SelfSubjectReview): computed,
    /// never stored.
    async fn authentication_review(&self, body: Bytes) -> ApiResult {
        let obj = self.decode_body(&body)?;
        let reviewed = match self.info.plural {
            "tokenreviews" => crate::auth::review::token_review(&self.state, obj).await?,
            "selfsubjectreviews" => crate::auth::review::self_subject_review(&self.user, obj)?,
            _ => return Err(ApiError::method_not_allowed(self.info, "create")),
        };
        self.respond_value(StatusCode::CREATED, &reviewed)
    }

    /// `serviceaccounts/token`: a TokenRequest, answered with a freshly signed token.
    async fn token_request(&self, body: Bytes) -> ApiResult {
        let mut obj = negotiate::decode_body(&self.headers, &body)?;
        for (field, value) in [
            ("kind", "TokenRequest"),
            ("apiVersion", "authentication.k8s.io/v1"),
        ] {
            if obj[field].as_str().is_none_or(str::is_empty) {
                obj[field] = json!(value);
            }
        }
        let (obj, _, _) = self
            .admit(Operation::Create, obj, None, |_, _| Ok(()))
            .await?;
        let answered = crate::auth::review::token_request(
            &self.state,
            self.path.namespace.as_deref().unwrap_or(""),
            self.name(),
            obj,
        )
        .await?;
        self.respond_value(StatusCode::CREATED, &answered)
    }

    fn key(&self, name: &str) -> String {
        self.info.key(self.path.namespace.as_deref(), name)
    }

    /// The prefix of the collection this request lists or watches.
    fn collection_prefix(&self) -> String {
        match &self.path.namespace {
            Some(ns) => self.info.namespace_prefix(ns),
            None => self.info.storage_prefix().to_owned(),
        }
    }

    /// Whether the request writes status: the status subresource, or a
    /// CertificateSigningRequest's approval (which writes only `status.conditions`).
    fn is_status(&self) -> bool {
        matches!(
            self.path.subresource.as_deref(),
            Some("status" | "approval")
        )
    }

    fn wants_table(&self) -> bool {
        self.format == Format::Table
    }

    /// Sends a JSON body in the negotiated format (YAML and protobuf are converted here).
    fn send(&self, code: StatusCode, json_body: Vec<u8>) -> ApiResult {
        self.send_as(self.format, code, json_body)
    }

    fn send_as(&self, format: Format, code: StatusCode, json_body: Vec<u8>) -> ApiResult {
        match format {
            Format::Json | Format::Table | Format::PartialMetadata => {
                Ok(json_response(code, json_body))
            }
            Format::Yaml => {
                let value: Value =
                    serde_json::from_slice(&json_body).map_err(ApiError::internal)?;
                let yaml = serde_saphyr::to_string(&value).map_err(ApiError::internal)?;
                Ok((code, [(header::CONTENT_TYPE, "application/yaml")], yaml).into_response())
            }
            Format::Protobuf => {
                let value: Value =
                    serde_json::from_slice(&json_body).map_err(ApiError::internal)?;
                self.send_protobuf(code, &value)
            }
        }
    }

    /// Sends an object as protobuf; one that cannot be encoded goes in the next format the
    /// client accepts.
    fn send_protobuf(&self, code: StatusCode, obj: &Value) -> ApiResult {
        match crate::proto::encode_object(obj) {
            Ok(body) => Ok((
                code,
                [(header::CONTENT_TYPE, crate::proto::MEDIA_TYPE)],
                body,
            )
                .into_response()),
            Err(e) => {
                tracing::warn!(error = %e, kind = self.info.kind, "cannot encode as protobuf; answering in another format");
                let format = negotiate::response_format_without_protobuf(&self.headers)?;
                self.send_as(
                    format,
                    code,
                    serde_json::to_vec(obj).map_err(ApiError::internal)?,
                )
            }
        }
    }

    /// A stored object as this request's version serves it (custom resources are
    /// converted from their storage version and defaulted).
    fn served_form<'a>(&self, stored: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match (&self.custom, conversion::for_resource(self.info)) {
            (Some(custom), _) => std::borrow::Cow::Owned(custom.from_storage(stored)),
            (None, Some(conv)) => {
                std::borrow::Cow::Owned(conv.served(stored, self.info.api_version()))
            }
            (None, None) => std::borrow::Cow::Borrowed(stored),
        }
    }

    /// `decode_served` of this request's served form.
    fn decode(&self, stored: &[u8], revision: i64) -> Result<Value, ApiError> {
        decode_served(&self.served_form(stored), revision).map_err(ApiError::internal)
    }

    /// The stored form of an object (custom resources at their storage version).
    fn encode(&self, obj: &Value) -> Vec<u8> {
        match (&self.custom, conversion::for_resource(self.info)) {
            (Some(custom), _) => {
                let mut stored = obj.clone();
                custom.to_storage(&mut stored);
                encode_for_store(&stored)
            }
            (None, Some(conv)) => {
                let mut stored = obj.clone();
                conv.to_storage(&mut stored);
                encode_for_store(&stored)
            }
            (None, None) => encode_for_store(obj),
        }
    }

    /// A Table of objects, with the CRD's printer columns for custom resources.
    fn table(&self, objects: &[Value], resource_version: &str) -> Value {
        match &self.custom {
            Some(custom) => custom.table(objects, resource_version, &self.query),
            None => {
                let (info, objects) = conversion::table_view(self.info, objects);
                table::for_objects(info, &objects, resource_version, &self.query)
            }
        }
    }

    fn respond_object(&self, code: StatusCode, stored: &[u8], revision: i64) -> ApiResult {
        let stored = &*self.served_form(stored);
        match self.format {
            Format::Table | Format::PartialMetadata => {
                let obj = decode_served(stored, revision).map_err(ApiError::internal)?;
                let out = match self.format {
                    Format::Table => self.table(&[obj], &revision.to_string()),
                    _ => negotiate::partial_metadata(&obj),
                };
                self.send(code, serde_json::to_vec(&out).map_err(ApiError::internal)?)
            }
            Format::Protobuf => {
                let obj = decode_served(stored, revision).map_err(ApiError::internal)?;
                self.send_protobuf(code, &obj)
            }
            Format::Json | Format::Yaml => {
                let mut out = Vec::with_capacity(stored.len() + 32);
                write_served(&mut out, stored, revision);
                self.send(code, out)
            }
        }
    }

    fn respond_value(&self, code: StatusCode, obj: &Value) -> ApiResult {
        let obj = match (self.format, obj.get("kind").and_then(Value::as_str)) {
            (Format::PartialMetadata, Some(kind)) if kind == self.info.kind => {
                negotiate::partial_metadata(obj)
            }
            (Format::Protobuf, _) => return self.send_protobuf(code, obj),
            _ => obj.clone(),
        };
        self.send(code, serde_json::to_vec(&obj).map_err(ApiError::internal)?)
    }

    /// Reads the named object as JSON with its store revision.
    async fn current(&self) -> Result<(Value, i64), ApiError> {
        let name = self.name();
        let got = self
            .state
            .store
            .get(&self.key(name), None)
            .await
            .map_err(|e| from_store(e, self.info, name))?;
        let kv = got.kv.ok_or_else(|| ApiError::not_found(self.info, name))?;
        Ok((self.decode(&kv.value, kv.mod_revision)?, kv.mod_revision))
    }

    /// `pods/eviction`: deletes the pod unless that would violate its
    /// PodDisruptionBudget, whose allowance it takes (upstream's eviction REST).
    async fn evict(&self, body: Bytes) -> ApiResult {
        let name = self.name().to_owned();
        let eviction = negotiate::decode_body(&self.headers, &body)?;
        if meta_str(&eviction, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let delete_body = match &eviction["deleteOptions"] {
            Value::Null => Vec::new(),
            v => serde_json::to_vec(v).map_err(ApiError::internal)?,
        };
        let options = DeleteOptions::parse(&HeaderMap::new(), &delete_body, &self.query)?;
        let (pod, _) = self.current().await?;
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        let ignores_budget = meta_str(&pod, "deletionTimestamp").is_some()
            || matches!(phase, "Succeeded" | "Failed" | "Pending");
        if !ignores_budget {
            crate::eviction::take_disruption(&self.state, &pod, options.dry_run).await?;
        }
        match self.delete_with(options).await {
            Ok(_) => {}
            Err(e) if e.0.code == 404 => {}
            Err(e) => return Err(e),
        }
        self.respond_value(StatusCode::CREATED, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
    }

    /// `pods/binding`: assigns a pod to a node (the scheduler's write).
    async fn bind(&self, body: Bytes) -> ApiResult {
        let name = self.name().to_owned();
        let binding = negotiate::decode_body(&self.headers, &body)?;
        let target = binding["target"]["name"].as_str().unwrap_or("").to_owned();
        if target.is_empty() {
            return Err(ApiError::invalid(
                self.info,
                &name,
                &[FieldError::required("target.name", "")],
            ));
        }
        if binding["target"]["kind"]
            .as_str()
            .is_some_and(|k| !k.is_empty() && k != "Node")
        {
            return Err(ApiError::invalid(
                self.info,
                &name,
                &[FieldError::not_supported(
                    "target.kind",
                    binding["target"]["kind"].as_str().unwrap_or(""),
                    &["Node"],
                )],
            ));
        }
        let (binding, _, _) = self
            .admit(Operation::Create, binding, None, |_, _| Ok(()))
            .await?;
        let target = binding["target"]["name"].as_str().unwrap_or("").to_owned();
        let binding_resource = rkube_api::GroupResource::new("", "pods/binding");
        let refused = |message: String| -> ApiError {
            rkube_api::Status::conflict(&binding_resource, &name, &message).into()
        };
        let key = self.key(&name);
        // The first attempt edits the watch cache's copy, as upstream's GuaranteedUpdate
        // starts from a cached object: the compare-and-swap on its revision refuses a stale
        // copy, and the next attempt reads the store. What a stale copy can refuse for
        // (deleting, already assigned) never reverts, so those refusals stand.
        let mut cached = match self
            .state
            .caches
            .get(&self.state.store, self.info.storage_prefix())
            .await
        {
            Ok(cache) => cache
                .get_object(&key)
                .map(|o| (o.stored.clone(), o.revision)),
            Err(_) => None,
        };
        for _ in 0..MAX_PATCH_ATTEMPTS {
            let (value, mod_revision) = match cached.take() {
                Some(guess) => guess,
                None => {
                    let got = self
                        .state
                        .store
                        .get(&key, None)
                        .await
                        .map_err(|e| from_store(e, self.info, &name))?;
                    let kv = got
                        .kv
                        .ok_or_else(|| ApiError::not_found(self.info, &name))?;
                    (kv.value, kv.mod_revision)
                }
            };
            let now = meta::now_rfc3339();
            let fast = if matches!(self.served_form(&value), std::borrow::Cow::Borrowed(_)) {
                codec::bind_stored_pod(&value, &target, &now)
            } else {
                None
            };
            // Not in our stored form: decode, edit and re-encode.
            let binding = match fast {
                Some(binding) => binding,
                None => codec::bind_decoded_pod(self.decode(&value, mod_revision)?, &target, &now),
            };
            let edited = match binding {
                codec::PodBinding::Bound(stored) => stored,
                codec::PodBinding::Deleting => {
                    return Err(refused(format!(
                        "pod {name} is being deleted, cannot be assigned to a host"
                    )))
                }
                codec::PodBinding::Assigned(node) => {
                    return Err(refused(format!(
                        "pod {name} is already assigned to node \"{node}\""
                    )))
                }
            };
            let written = self.query.dry_run()?
                || match self
                    .state
                    .store
                    .update(&key, edited.into(), mod_revision)
                    .await
                {
                    Ok(_) => true,
                    Err(rkube_store::Error::Conflict { .. }) => false,
                    Err(e) => return Err(from_store(e, self.info, &name)),
                };
            if written {
                return self.respond_value(StatusCode::CREATED, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}));
            }
        }
        // Every attempt lost its compare-and-swap to another writer.
        Err(ApiError::conflict(self.info, &name))
    }

    /// The `autoscaling/v1` Scale view of a scalable object.
    fn scale_of(&self, obj: &Value) -> Value {
        if let Some(custom) = &self.custom {
            return custom.scale_of(obj);
        }
        let selector = match &obj["spec"]["selector"] {
            Value::Object(m)
                if m.contains_key("matchLabels") || m.contains_key("matchExpressions") =>
            {
                rkube_api::LabelSelector::from_json(&obj["spec"]["selector"])
                    .ok()
                    .flatten()
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            }
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        };
        let meta = &obj["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
            "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
            "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
        })
    }

    async fn get_scale(&self) -> ApiResult {
        let (obj, _) = self.current().await?;
        self.respond_value(StatusCode::OK, &self.scale_of(&obj))
    }

    /// PUT or PATCH of `<workload>/scale`: changes `spec.replicas` only.
    async fn update_scale(&self, body: Bytes, patch: bool) -> ApiResult {
        let name = self.name().to_owned();
        let root = rkube_api::schema::for_kind("autoscaling/v1", "Scale");
        // The patch is decoded once, after the object is known to exist.
        let mut decoded: Option<(negotiate::PatchKind, Value)> = None;
        for _ in 0..MAX_PATCH_ATTEMPTS {
            let (obj, revision) = self.current().await?;
            let current = self.scale_of(&obj);
            let wanted = if patch {
                if decoded.is_none() {
                    decoded = Some((
                        negotiate::patch_type(&self.headers, root)?,
                        negotiate::decode_patch(&body)?,
                    ));
                }
                let (kind, patch) = decoded.as_ref().expect("decoded above");
                negotiate::apply_patch(*kind, &current, patch, root)?
            } else {
                negotiate::decode_body(&self.headers, &body)?
            };
            if let Some(rv) = meta_str(&wanted, "resourceVersion").filter(|rv| !rv.is_empty()) {
                if rv != revision.to_string() {
                    return Err(ApiError::conflict(self.info, &name));
                }
            }
            let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                let err = FieldError::invalid(
                    "spec.replicas",
                    replicas,
                    "must be greater than or equal to 0",
                );
                return Err(rkube_api::Status::invalid(
                    &rkube_api::GroupKind::new("autoscaling", "Scale"),
                    &name,
                    &[err],
                )
                .into());
            }
            let mut updated = obj.clone();
            match &self.custom {
                Some(custom) => custom.set_replicas(&mut updated, replicas),
                None => updated["spec"]["replicas"] = json!(replicas),
            }
            // Admission sees the Scale objects (a webhook may change the replicas).
            let (scale, _, _) = self
                .admit(
                    Operation::Update,
                    self.scale_of(&updated),
                    Some(self.scale_of(&obj)),
                    |_, _| Ok(()),
                )
                .await?;
            if let Some(admitted) = scale["spec"]["replicas"].as_i64() {
                if admitted != replicas && admitted >= 0 {
                    match &self.custom {
                        Some(custom) => custom.set_replicas(&mut updated, admitted),
                        None => updated["spec"]["replicas"] = json!(admitted),
                    }
                }
            }
            strategy::prepare_for_update(self.info, &mut updated, &obj, false);
            self.record_update(Some(&obj), &mut updated)?;
            if self.query.dry_run()? {
                return self.respond_value(StatusCode::OK, &self.scale_of(&updated));
            }
            match self
                .state
                .store
                .update(&self.key(&name), self.encode(&updated).into(), revision)
                .await
            {
                Ok(kv) => {
                    let served = self.decode(&kv.value, kv.mod_revision)?;
                    return self.respond_value(StatusCode::OK, &self.scale_of(&served));
                }
                Err(rkube_store::Error::Conflict { .. })
                    if meta_str(&wanted, "resourceVersion").is_none_or(str::is_empty) =>
                {
                    continue
                }
                Err(e) => return Err(from_store(e, self.info, &name)),
            }
        }
        Err(ApiError::conflict(self.info, &name))
    }

    /// `namespaces/finalize`: replaces `spec.finalizers`; a deleting namespace with none
    /// left is removed.
    async fn finalize(&self, body: Bytes) -> ApiResult {
        let name = self.name().to_owned();
        let wanted = self.decode_body(&body)?;
        let (mut obj, revision) = self.current().await?;
        obj["spec"]["finalizers"] = wanted["spec"]["finalizers"].clone();
        if obj["spec"]["finalizers"].is_null() {
            obj["spec"]["finalizers"] = json!([]);
        }
        let done = meta_str(&obj, "deletionTimestamp").is_some()
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(Vec::is_empty)
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if self.query.dry_run()? {
            return self.respond_value(StatusCode::OK, &obj);
        }
        if done {
            let deleted = self
                .state
                .store
                .delete(&self.key(&name), Some(revision))
                .await
                .map_err(|e| from_store(e, self.info, &name))?;
            return self.respond_object(StatusCode::OK, &encode_for_store(&obj), deleted.revision);
        }
        let kv = self
            .state
            .store
            .update(&self.key(&name), encode_for_store(&obj).into(), revision)
            .await
            .map_err(|e| from_store(e, self.info, &name))?;
        self.respond_object(StatusCode::OK, &kv.value, kv.mod_revision)
    }

    async fn get(&self) -> ApiResult {
        let name = self.name();
        let revision = match self.query.resource_version()? {
            Some(0) | None => None,
            Some(r) => Some(r),
        };
        let got = self
            .state
            .store
            .get(&self.key(name), revision)
            .await
            .map_err(|e| from_store(e, self.info, name))?;
        let kv = got.kv.ok_or_else(|| ApiError::not_found(self.info, name))?;
        self.respond_object(StatusCode::OK, &kv.value, kv.mod_revision)
    }

    fn filter(&self) -> Result<Filter, ApiError> {
        Filter::new(
            self.info,
            self.query.get("labelSelector"),
            self.query.get("fieldSelector"),
        )
    }

    async fn list(&self) -> ApiResult {
        let filter = self.filter()?;
        let limit = self
            .query
            .int("limit")?
            .filter(|l| *l > 0)
            .map(|l| l as usize);
        let continue_token = self.query.get("continue").map(str::to_owned);
        let rv = self.query.resource_version()?;
        let rv_match = self.query.get("resourceVersionMatch");
        if continue_token.is_some() && rv.is_some_and(|r| r != 0) {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if rv_match.is_some() && rv.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        let prefix = self.collection_prefix();
        let mut items: Vec<(Bytes, i64)> = Vec::new();
        // Served from the watch cache: resourceVersion=0 / NotOlderThan (any state at least
        // that new), and unpaginated lists at the latest revision (upstream's consistent
        // list from cache: wait until the cache has caught up with the store's revision).
        let cache_min = match (rv, rv_match, &continue_token) {
            (Some(r), None | Some("NotOlderThan"), None)
                if r == 0 || rv_match == Some("NotOlderThan") || limit.is_none() =>
            {
                Some(r)
            }
            (None, None, None) if limit.is_none() => Some(
                self.state
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| from_store(e, self.info, ""))?,
            ),
            _ => None,
        };
        let (list_revision, next, remaining) = match (rv, rv_match, &continue_token) {
            _ if cache_min.is_some() => {
                let cache = self
                    .state
                    .caches
                    .get(&self.state.store, self.info.storage_prefix())
                    .await
                    .map_err(cache_error)?;
                let (objects, revision) = cache
                    .list(&prefix, cache_min.unwrap_or(0))
                    .await
                    .map_err(cache_error)?;
                for o in objects {
                    if filter.matches_cached(&o) {
                        items.push((o.stored.clone(), o.revision));
                    }
                }
                (revision, None, None)
            }
            (Some(_), Some(other), _) if other != "Exact" && other != "NotOlderThan" => {
                return Err(ApiError::bad_request(format!("resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\"")));
            }
            _ => {
                // A consistent read from the store, exact revision or latest, paginated.
                let mut options = rkube_store::ListOptions {
                    revision: rv.filter(|r| *r > 0),
                    limit: limit.map(|l| l.max(1)),
                    continue_token: continue_token.clone(),
                };
                let (revision, next, remaining) = loop {
                    let page = self
                        .state
                        .store
                        .list(&prefix, options.clone())
                        .await
                        .map_err(|e| list_store_error(e, self.info, &continue_token))?;
                    for kv in page.kvs {
                        if filter.matches_stored(&kv.value) {
                            items.push((kv.value, kv.mod_revision));
                        }
                    }
                    let full = limit.is_some_and(|l| items.len() >= l);
                    match page.continue_token {
                        Some(token) if !full => {
                            options = rkube_store::ListOptions {
                                continue_token: Some(token),
                                ..Default::default()
                            }
                        }
                        token => break (page.revision, token, page.remaining),
                    }
                };
                (
                    revision,
                    next,
                    (remaining > 0)
                        .then_some(remaining)
                        .filter(|_| filter.is_empty()),
                )
            }
        };
        if self.wants_table() {
            let objects: Result<Vec<Value>, _> =
                items.iter().map(|(s, r)| self.decode(s, *r)).collect();
            let mut t = self.table(&objects?, &list_revision.to_string());
            if let Some(next) = &next {
                t["metadata"]["continue"] = json!(next);
            }
            return self.respond_value(StatusCode::OK, &t);
        }
        if self.format == Format::PartialMetadata {
            let lean = self.omits_managed_fields();
            let items: Result<Vec<Value>, _> = items
                .iter()
                .map(|(s, r)| {
                    self.decode(s, *r).map(|mut o| {
                        if lean {
                            if let Some(m) = o["metadata"].as_object_mut() {
                                m.remove("managedFields");
                            }
                        }
                        negotiate::partial_metadata(&o)
                    })
                })
                .collect();
            let mut list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": list_revision.to_string()}, "items": items?});
            if let Some(next) = &next {
                list["metadata"]["continue"] = json!(next);
            }
            return self.send(
                StatusCode::OK,
                serde_json::to_vec(&list).map_err(ApiError::internal)?,
            );
        }
        if self.format == Format::Protobuf {
            let mut metadata = json!({"resourceVersion": list_revision.to_string()});
            if let Some(next) = &next {
                metadata["continue"] = json!(next);
            }
            if let Some(remaining) = remaining {
                metadata["remainingItemCount"] = json!(remaining);
            }
            let items: Result<Vec<Value>, _> =
                items.iter().map(|(s, r)| self.decode(s, *r)).collect();
            let list = json!({"kind": format!("{}List", self.info.kind), "apiVersion": self.info.api_version(), "metadata": metadata, "items": items?});
            return self.send_protobuf(StatusCode::OK, &list);
        }
        let mut out =
            Vec::with_capacity(items.iter().map(|(s, _)| s.len() + 32).sum::<usize>() + 256);
        let list_kind = match &self.custom {
            Some(custom) => custom.list_kind.clone(),
            None => format!("{}List", self.info.kind),
        };
        out.extend_from_slice(format!("{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{list_revision}\"", self.info.api_version()).as_bytes());
        if let Some(next) = &next {
            out.extend_from_slice(b",\"continue\":");
            out.extend_from_slice(&serde_json::to_vec(next).map_err(ApiError::internal)?);
        }
        if let Some(remaining) = remaining {
            out.extend_from_slice(format!(",\"remainingItemCount\":{remaining}").as_bytes());
        }
        out.extend_from_slice(b"},\"items\":[");
        let lean = self.omits_managed_fields();
        for (i, (stored, revision)) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if lean {
                let mut item = Vec::with_capacity(stored.len() + 32);
                write_served(&mut item, &self.served_form(stored), *revision);
                match codec::without_managed_fields(&item) {
                    Some(cut) => out.extend_from_slice(&cut),
                    None => out.extend_from_slice(&item),
                }
            } else {
                write_served(&mut out, &self.served_form(stored), *revision);
            }
        }
        out.extend_from_slice(b"]}");
        self.send(StatusCode::OK, out)
    }

    async fn watch(&self) -> ApiResult {
        let filter = self.filter()?;
        let (prefix, exact) = match &self.path.name {
            Some(name) => (self.key(name), true),
            None => (self.collection_prefix(), false),
        };
        watch::serve(
            self.state.clone(),
            self.info,
            prefix,
            exact,
            filter,
            &self.query,
            self.format,
            self.custom.clone(),
            self.omits_managed_fields(),
        )
        .await
    }

    /// Whether the client asked for objects without `metadata.managedFields` in lists
    /// and watches ([`codec::OMIT_MANAGED_FIELDS`]).
    fn omits_managed_fields(&self) -> bool {
        self.headers
            .get(codec::OMIT_MANAGED_FIELDS)
            .is_some_and(|v| v.as_bytes() == b"true")
    }

    /// Reads and checks a request body as an object of this resource. Missing `kind` and
    /// `apiVersion` default to the endpoint's, as upstream's decoder does; others must match.
    fn decode_body(&self, body: &Bytes) -> Result<Value, ApiError> {
        self.of_this_kind(negotiate::decode_body(&self.headers, body)?)
    }

    /// Checks a decoded object's `kind` and `apiVersion` against the endpoint's, filling
    /// them in when missing.
    fn of_this_kind(&self, mut obj: Value) -> Result<Value, ApiError> {
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !kind.is_empty() && kind != self.info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                self.info.kind
            )));
        }
        if !api_version.is_empty() && api_version != self.info.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                self.info.api_version()
            )));
        }
        obj["kind"] = json!(self.info.kind);
        obj["apiVersion"] = json!(self.info.api_version());
        Ok(obj)
    }

    /// Checks the body's namespace against the URL's, filling it in when empty.
    fn settle_namespace(&self, obj: &mut Value) -> Result<(), ApiError> {
        let body_ns = meta_str(obj, "namespace").unwrap_or("").to_owned();
        match &self.path.namespace {
            Some(ns) => {
                if !body_ns.is_empty() && &body_ns != ns {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
                metadata_mut(obj).insert("namespace".into(), json!(ns));
            }
            None => {
                metadata_mut(obj).remove("namespace");
            }
        }
        Ok(())
    }

    /// Passes a write through admission: the mutating phase, then `check` (the kind's
    /// preparation and validation of the admitted object), then the validating phase.
    /// Returns the admitted object, the old one, and the warnings for the client.
    async fn admit(
        &self,
        operation: Operation,
        obj: Value,
        old: Option<Value>,
        check: impl Fn(&mut Value, Option<&Value>) -> Result<(), ApiError>,
    ) -> Result<(Value, Option<Value>, Vec<String>), ApiError> {
        let name = match operation {
            Operation::Create if self.path.subresource.is_none() => {
                meta_str(&obj, "name").unwrap_or("").to_owned()
            }
            _ => self.name().to_owned(),
        };
        let mut request = self.admission_request(operation, name, Some(obj), old)?;
        self.state.admission.mutate(&mut request).await?;
        let mut obj = request.object.take().expect("admission keeps the object");
        check(&mut obj, request.old.as_ref())?;
        request.object = Some(obj);
        self.state.admission.validate(&mut request).await?;
        let obj = request.object.take().expect("admission keeps the object");
        Ok((obj, request.old.take(), request.warnings))
    }

    /// Passes a delete of `obj` through admission.
    async fn admit_delete(&self, obj: &Value, dry_run: bool) -> Result<(), ApiError> {
        let name = meta_str(obj, "name").unwrap_or("").to_owned();
        let mut request =
            self.admission_request(Operation::Delete, name, None, Some(obj.clone()))?;
        request.dry_run = dry_run;
        self.state.admission.mutate(&mut request).await?;
        self.state.admission.validate(&mut request).await
    }

    fn admission_request(
        &self,
        operation: Operation,
        name: String,
        object: Option<Value>,
        old: Option<Value>,
    ) -> Result<admission::Request, ApiError> {
        Ok(admission::Request {
            state: self.state.clone(),
            info: self.info,
            subresource: self.path.subresource.clone().unwrap_or_default(),
            operation,
            namespace: self.path.namespace.clone().unwrap_or_default(),
            name,
            user: self.user.clone(),
            dry_run: self.query.dry_run()?,
            object,
            old,
            warnings: Vec::new(),
            annotations: Default::default(),
        })
    }

    /// Applies `fieldValidation` to a request's object: Strict rejects unknown fields with
    /// upstream's strict-decoding error, Warn (upstream's default) returns them as
    /// warnings, Ignore skips the check.
    ///
    /// A custom resource is pruned and defaulted here (upstream does both while decoding):
    /// the fields pruning removes are its unknown fields.
    fn check_fields(&self, obj: &mut Value) -> Result<Vec<String>, ApiError> {
        let mode = self.query.get("fieldValidation").unwrap_or("Warn");
        if !["Strict", "Warn", "Ignore"].contains(&mode) {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {mode}"
            )));
        }
        if let Some(custom) = &self.custom {
            let unknown: Vec<String> = custom
                .decode(obj)
                .into_iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            let kind = self.info.kind;
            return match mode {
                "Ignore" => Ok(Vec::new()),
                "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
                    "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
                    self.info.version,
                    unknown.join(", ")
                ))),
                _ => Ok(unknown),
            };
        }
        let Some(schema) = crate::openapi::kind_schema(self.info) else {
            return Ok(Vec::new());
        };
        // Whatever the mode, a value of the wrong JSON type cannot be decoded (upstream's
        // typed decoding fails with a 400), and nothing further may rely on it.
        let unknown = match schema.check(obj) {
            Ok(unknown) => unknown,
            Err((path, found, expected)) => {
                let kind = self.info.kind;
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{}\" cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct field {kind}.{path} of type {expected}",
                    self.info.version
                )));
            }
        };
        if mode == "Ignore" {
            return Ok(Vec::new());
        }
        let unknown: Vec<String> = unknown
            .into_iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        if mode == "Strict" && !unknown.is_empty() {
            let kind = self.info.kind;
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
                self.info.version,
                unknown.join(", ")
            )));
        }
        Ok(unknown)
    }

    async fn create(&self, body: Bytes) -> ApiResult {
        let mut obj = self.decode_body(&body)?;
        let warnings = self.check_fields(&mut obj)?;
        self.create_checked(obj, warnings, true).await
    }

    /// Creates `obj`; `record` attributes its fields to this request's manager (an apply
    /// that creates has attributed them already).
    async fn create_checked(
        &self,
        mut obj: Value,
        mut warnings: Vec<String>,
        record: bool,
    ) -> ApiResult {
        self.settle_namespace(&mut obj)?;
        self.check_escalation(&obj, None)?;
        let dry_run = self.query.dry_run()?;
        {
            let meta = metadata_mut(&mut obj);
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let generate = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if name.is_empty() && !generate.is_empty() {
                meta.insert(
                    "name".into(),
                    json!(rkube_api::names::generate_name(
                        &generate,
                        rand::random::<u64>
                    )),
                );
            }
            if meta.contains_key("resourceVersion") {
                meta.remove("resourceVersion");
            }
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(field);
            }
            meta.insert("uid".into(), json!(meta::new_uid()));
            meta.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        }
        strategy::prepare_for_create(self.info, &mut obj);
        if self.info.group == "certificates.k8s.io"
            && self.info.plural == "certificatesigningrequests"
        {
            // The requester is who created it (upstream's csrStrategy.PrepareForCreate).
            obj["spec"]["username"] = json!(self.user.name);
            obj["spec"]["groups"] = json!(self.user.groups);
            if self.user.uid.is_empty() {
                if let Some(spec) = obj["spec"].as_object_mut() {
                    spec.remove("uid");
                }
            } else {
                obj["spec"]["uid"] = json!(self.user.uid);
            }
            if self.user.extra.is_empty() {
                if let Some(spec) = obj["spec"].as_object_mut() {
                    spec.remove("extra");
                }
            } else {
                obj["spec"]["extra"] = json!(self.user.extra);
            }
        }
        let (mut obj, _, admission_warnings) = self
            .admit(Operation::Create, obj, None, |obj, _| {
                // Again, for what admission added (defaults, QoS).
                strategy::prepare_for_create(self.info, obj);
                strategy::validate(self.info, obj, None)?;
                self.validate_custom(obj)
            })
            .await?;
        warnings.extend(admission_warnings);
        if record {
            self.record_update(None, &mut obj)?;
        }
        // Cluster IPs and node ports, after everything that may refuse the object.
        let allocation = if self.allocates() {
            Some(crate::service_alloc::allocate_create(&self.state, &mut obj, dry_run).await?)
        } else {
            None
        };
        let name = meta_str(&obj, "name").unwrap_or("").to_owned();
        let stored = self.encode(&obj);
        if dry_run {
            let exists = self
                .state
                .store
                .get(&self.key(&name), None)
                .await
                .map_err(|e| from_store(e, self.info, &name))?
                .kv
                .is_some();
            if exists {
                return Err(ApiError::already_exists(self.info, &name));
            }
            return self
                .respond_value(StatusCode::CREATED, &obj)
                .map(|r| with_warnings(r, &warnings));
        }
        // Freed now, while the tree is still in this core's cache: freed after the
        // store's await it took ~3% of the server's CPU in cache misses.
        drop(obj);
        let created = self
            .state
            .store
            .create(&self.key(&name), stored.into())
            .await;
        if let Some(allocation) = allocation {
            match &created {
                Ok(_) => allocation.commit(&self.state).await,
                Err(_) => allocation.revert(&self.state).await,
            }
        }
        let kv = created.map_err(|e| from_store(e, self.info, &name))?;
        self.respond_object(StatusCode::CREATED, &kv.value, kv.mod_revision)
            .map(|r| with_warnings(r, &warnings))
    }

    async fn update(&self, body: Bytes) -> ApiResult {
        let mut obj = self.decode_body(&body)?;
        let warnings = self.check_fields(&mut obj)?;
        let response = self.update_checked(&mut obj).await;
        response.map(|r| with_warnings(r, &warnings))
    }

    async fn update_checked(&self, obj: &mut Value) -> ApiResult {
        let mut obj = std::mem::take(obj);
        self.settle_namespace(&mut obj)?;
        let name = self.name().to_owned();
        let body_name = meta_str(&obj, "name").unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let expected =
            match meta_str(&obj, "resourceVersion") {
                None | Some("") => None,
                Some(rv) => Some(rv.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv:?}"))
                })?),
            };
        let current = self
            .state
            .store
            .get(&self.key(&name), None)
            .await
            .map_err(|e| from_store(e, self.info, &name))?;
        let current = current
            .kv
            .ok_or_else(|| ApiError::not_found(self.info, &name))?;
        let Some(expected) = expected else {
            let error = FieldError::invalid(
                "metadata.resourceVersion",
                BadValue::Raw("0x0".into()),
                "must be specified for an update",
            );
            return Err(ApiError::invalid(self.info, &name, &[error]));
        };
        if expected != current.mod_revision {
            return Err(ApiError::conflict(self.info, &name));
        }
        let old = self.decode(&current.value, current.mod_revision)?;
        self.write_update(old, obj, current.mod_revision, true)
            .await
    }

    /// Applies the update rules (immutable metadata, status split, generation) and writes
    /// with compare-and-swap on `revision`.
    async fn write_update(
        &self,
        old: Value,
        mut obj: Value,
        revision: i64,
        record: bool,
    ) -> ApiResult {
        self.check_escalation(&obj, Some(&old))?;
        if self.path.subresource.as_deref() == Some("approval") {
            // Approval changes the conditions only (upstream's csrApprovalStrategy).
            let conditions = obj.pointer("/status/conditions").cloned();
            let mut status = old.get("status").cloned().unwrap_or_else(|| json!({}));
            match conditions {
                Some(c) => status["conditions"] = c,
                None => {
                    if let Some(s) = status.as_object_mut() {
                        s.remove("conditions");
                    }
                }
            }
            obj["status"] = status;
        }
        let status_only = self.is_status();
        strategy::prepare_for_update(self.info, &mut obj, &old, status_only);
        let (obj, old, warnings) = self
            .admit(Operation::Update, obj, Some(old), |obj, old| {
                let old = old.expect("an update has the old object");
                strategy::prepare_for_update(self.info, obj, old, status_only);
                strategy::validate(self.info, obj, Some(old))?;
                self.validate_custom(obj)
            })
            .await?;
        let old = old.expect("an update has the old object");
        self.store_update(old, obj, revision, record)
            .await
            .map(|r| with_warnings(r, &warnings))
    }

    /// Stores an admitted update.
    async fn store_update(
        &self,
        old: Value,
        mut obj: Value,
        revision: i64,
        record: bool,
    ) -> ApiResult {
        let name = self.name().to_owned();
        if record {
            self.record_update(Some(&old), &mut obj)?;
        }
        let dry_run = self.query.dry_run()?;
        // An object being deleted goes once its last finalizer is removed.
        let finalizers_left = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if meta_str(&obj, "deletionTimestamp").is_some()
            && !finalizers_left
            && !strategy::has_spec_finalizers(self.info, &obj)
        {
            if dry_run {
                return self.respond_value(StatusCode::OK, &obj);
            }
            let deleted = self
                .state
                .store
                .delete(&self.key(&name), Some(revision))
                .await
                .map_err(|e| from_store(e, self.info, &name))?;
            self.after_delete(&old).await;
            return self.respond_object(StatusCode::OK, &self.encode(&obj), deleted.revision);
        }
        let allocation = if self.allocates() && !self.is_status() {
            Some(crate::service_alloc::allocate_update(&self.state, &mut obj, &old, dry_run).await?)
        } else {
            None
        };
        if dry_run {
            // Nothing was written: the object keeps its resourceVersion.
            metadata_mut(&mut obj).insert("resourceVersion".into(), json!(revision.to_string()));
            return self.respond_value(StatusCode::OK, &obj);
        }
        let updated = self
            .state
            .store
            .update(&self.key(&name), self.encode(&obj).into(), revision)
            .await;
        if let Some(allocation) = allocation {
            match &updated {
                Ok(_) => allocation.commit(&self.state).await,
                Err(_) => allocation.revert(&self.state).await,
            }
        }
        let kv = updated.map_err(|e| from_store(e, self.info, &name))?;
        self.respond_object(StatusCode::OK, &kv.value, kv.mod_revision)
    }

    /// Whether writes of this resource allocate (Services, once the ranges are set).
    fn allocates(&self) -> bool {
        self.info.group.is_empty()
            && self.info.plural == "services"
            && self.state.service_alloc.get().is_some()
    }

    /// Releases what a deleted object held (a Service's cluster IPs and node ports).
    async fn after_delete(&self, obj: &Value) {
        if self.allocates() {
            crate::service_alloc::release_all(&self.state, obj).await;
        }
    }

    /// The field manager of this request: `fieldManager`, else the first word of the
    /// User-Agent, as upstream defaults it.
    fn manager_name(&self) -> Result<String, ApiError> {
        if let Some(name) = self.query.get("fieldManager") {
            if name.len() > 128 {
                return Err(patch_options_invalid(FieldError::too_long(
                    "fieldManager",
                    128,
                )));
            }
            if name.chars().any(|c| c.is_control()) {
                return Err(patch_options_invalid(FieldError::invalid(
                    "fieldManager",
                    name,
                    "must only contain printable characters",
                )));
            }
            return Ok(name.to_owned());
        }
        let agent = self
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let prefix = agent.split('/').next().unwrap_or("");
        Ok(prefix.chars().take(128).collect())
    }

    /// The merge type of this resource's objects (from the schema table).
    fn merge_type(&self) -> ssa::Ty<'_> {
        if let Some(custom) = &self.custom {
            return ssa::Ty::of_schema(&custom.schema);
        }
        rkube_api::schema::for_kind(self.info.api_version(), self.info.kind)
            .map_or(ssa::Ty::Untyped, ssa::Ty::of_message)
    }

    fn ssa_scope(&self) -> ssa::Scope {
        match self.path.subresource.as_deref() {
            Some("status") => ssa::Scope::Status,
            Some("scale") => ssa::Scope::Scale,
            _ => ssa::Scope::Main {
                status_subresource: self.info.subresource("status").is_some(),
            },
        }
    }

    /// This request's field manager `name` doing `operation` at `time`.
    fn manager<'a>(
        &self,
        name: &'a str,
        operation: ssa::Operation,
        time: &'a str,
    ) -> ssa::Manager<'a> {
        ssa::Manager {
            name,
            operation,
            api_version: self.info.api_version(),
            time,
            scope: self.ssa_scope(),
        }
    }

    /// Attributes the fields an Update changes to this request's field manager.
    fn record_update(&self, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
        let name = self.manager_name()?;
        let now = meta::now_rfc3339();
        let manager = self.manager(&name, ssa::Operation::Update, &now);
        ssa::record_update(old, obj, self.merge_type(), &manager);
        Ok(())
    }

    /// PATCH with `application/apply-patch+yaml`: merges the configuration as its field
    /// manager's, creating the object when it does not exist.
    async fn server_side_apply(&self, body: &[u8]) -> ApiResult {
        let name = self.name().to_owned();
        if self.query.get("fieldManager").is_none() {
            return Err(patch_options_invalid(FieldError::required(
                "fieldManager",
                "is required for apply patch",
            )));
        }
        let manager_name = self.manager_name()?;
        let force = match self.query.get("force") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid boolean value for force: {other:?}"
                )))
            }
        };
        let mut config = negotiate::decode_apply(body)?;
        for (field, what) in [("apiVersion", "APIVersion"), ("kind", "Kind")] {
            if config
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(ApiError::bad_request(format!(
                    "Object '{what}' is missing in '{}'",
                    String::from_utf8_lossy(body).trim()
                )));
            }
        }
        config = self.of_this_kind(config)?;
        let config_name = meta_str(&config, "name").unwrap_or("").to_owned();
        if !config_name.is_empty() && config_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        metadata_mut(&mut config).insert("name".into(), json!(name));
        if !config["metadata"]["managedFields"].is_null() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        self.settle_namespace(&mut config)?;
        let warnings = self.check_fields(&mut config)?;
        let now = meta::now_rfc3339();
        let manager = self.manager(&manager_name, ssa::Operation::Apply, &now);
        let ty = self.merge_type();
        for _ in 0..MAX_PATCH_ATTEMPTS {
            let current = self
                .state
                .store
                .get(&self.key(&name), None)
                .await
                .map_err(|e| from_store(e, self.info, &name))?;
            let Some(current) = current.kv else {
                if self.is_status() {
                    return Err(ApiError::not_found(self.info, &name));
                }
                let obj = ssa::apply(None, &config, ty, &manager, force).map_err(apply_conflict)?;
                return self.create_checked(obj, warnings, false).await;
            };
            let old = self.decode(&current.value, current.mod_revision)?;
            let merged =
                ssa::apply(Some(&old), &config, ty, &manager, force).map_err(apply_conflict)?;
            match self
                .write_update(old, merged, current.mod_revision, false)
                .await
            {
                Err(e) if e.code() == 409 && e.reason() == "Conflict" => continue,
                other => return other.map(|r| with_warnings(r, &warnings)),
            }
        }
        Err(ApiError::conflict(self.info, &name))
    }

    /// Validates a custom resource against its CRD's schema.
    fn validate_custom(&self, obj: &Value) -> Result<(), ApiError> {
        let Some(custom) = &self.custom else {
            return Ok(());
        };
        let errors = custom.validate(obj);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                self.info,
                meta_str(obj, "name").unwrap_or(""),
                &errors,
            ))
        }
    }

    async fn patch(&self, body: Bytes) -> ApiResult {
        let name = self.name().to_owned();
        let root = rkube_api::schema::for_kind(self.info.api_version(), self.info.kind);
        let kind = negotiate::patch_type(&self.headers, root)?;
        if kind == negotiate::PatchKind::Apply {
            return self.server_side_apply(&body).await;
        }
        if self.query.has("force") {
            return Err(patch_options_invalid(FieldError::forbidden(
                "force",
                "may not be specified for non-apply patch",
            )));
        }
        let patch = negotiate::decode_patch(&body)?;
        for _ in 0..MAX_PATCH_ATTEMPTS {
            let current = self
                .state
                .store
                .get(&self.key(&name), None)
                .await
                .map_err(|e| from_store(e, self.info, &name))?;
            let current = current
                .kv
                .ok_or_else(|| ApiError::not_found(self.info, &name))?;
            let old = self.decode(&current.value, current.mod_revision)?;
            let mut patched = negotiate::apply_patch(kind, &old, &patch, root)?;
            self.check_fields(&mut patched)?;
            // A resourceVersion in the patch is a precondition.
            let wanted = meta_str(&patched, "resourceVersion").map(str::to_owned);
            if let Some(rv) = wanted {
                if rv != current.mod_revision.to_string() {
                    return Err(ApiError::conflict(self.info, &name));
                }
            }
            for field in ["kind", "apiVersion"] {
                if patched.get(field) != old.get(field) {
                    patched[field] = old[field].clone();
                }
            }
            match self
                .write_update(old, patched, current.mod_revision, true)
                .await
            {
                Err(e)
                    if e.code() == 409
                        && meta_str(&patch, "resourceVersion").is_none()
                        && e.reason() == "Conflict" =>
                {
                    continue
                }
                other => return other,
            }
        }
        Err(ApiError::conflict(self.info, &name))
    }

    async fn delete(&self, body: Bytes) -> ApiResult {
        let options = DeleteOptions::parse(&self.headers, &body, &self.query)?;
        self.delete_with(options).await
    }

    async fn delete_with(&self, options: DeleteOptions) -> ApiResult {
        let name = self.name().to_owned();
        match self
            .delete_object(&self.key(&name), &name, &options)
            .await?
        {
            Deleted::Pending(obj, _) if options.dry_run => self.respond_value(StatusCode::OK, &obj),
            Deleted::Pending(_, kv) => {
                self.respond_object(StatusCode::OK, &kv.value, kv.mod_revision)
            }
            Deleted::Now(obj) => {
                let mut details = json!({"name": name, "kind": self.info.plural, "uid": meta_str(&obj, "uid").unwrap_or("")});
                if !self.info.group.is_empty() {
                    details["group"] = json!(self.info.group);
                }
                self.respond_value(StatusCode::OK, &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}))
            }
        }
    }

    /// Deletes (or starts the graceful deletion of) the object at `key` as upstream's
    /// `GuaranteedUpdate` does: read, check the preconditions, admit, then write by
    /// compare-and-swap; a write that lost a race with another writer (a kubelet's status
    /// update, say) is retried on the new object, so only the caller's own preconditions
    /// make it a 409.
    async fn delete_object(
        &self,
        key: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self
                .state
                .store
                .get(key, None)
                .await
                .map_err(|e| from_store(e, self.info, name))?;
            let current = current
                .kv
                .ok_or_else(|| ApiError::not_found(self.info, name))?;
            let mut obj = self.decode(&current.value, current.mod_revision)?;
            if let Some(uid) = &options.precondition_uid {
                let actual = meta_str(&obj, "uid").unwrap_or("");
                if uid != actual {
                    return Err(ApiError::conflict_message(self.info, name, &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}")));
                }
            }
            if let Some(rv) = &options.precondition_rv {
                if *rv != current.mod_revision.to_string() {
                    return Err(ApiError::conflict_message(self.info, name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", current.mod_revision)));
                }
            }
            self.admit_delete(&obj, options.dry_run).await?;
            let written = match strategy::begin_delete(self.info, &mut obj, options) {
                strategy::Deletion::Pending if options.dry_run => {
                    return Ok(Deleted::Pending(obj, current))
                }
                strategy::Deletion::Now if options.dry_run => return Ok(Deleted::Now(obj)),
                strategy::Deletion::Pending => self
                    .state
                    .store
                    .update(key, self.encode(&obj).into(), current.mod_revision)
                    .await
                    .map(|kv| Deleted::Pending(Value::Null, kv)),
                strategy::Deletion::Now => self
                    .state
                    .store
                    .delete(key, Some(current.mod_revision))
                    .await
                    .map(|_| Deleted::Now(Value::Null)),
            };
            match written {
                Ok(Deleted::Pending(_, kv)) => return Ok(Deleted::Pending(obj, kv)),
                Ok(Deleted::Now(_)) => {
                    self.after_delete(&obj).await;
                    return Ok(Deleted::Now(obj));
                }
                Err(rkube_store::Error::Conflict { .. }) if attempt < DELETE_ATTEMPTS => continue,
                Err(e) => return Err(from_store(e, self.info, name)),
            }
        }
    }

    async fn delete_collection(&self, body: Bytes) -> ApiResult {
        let filter = self.filter()?;
        let options = DeleteOptions::parse(&self.headers, &body, &self.query)?;
        let listed = self
            .state
            .store
            .list(&self.collection_prefix(), Default::default())
            .await
            .map_err(|e| from_store(e, self.info, ""))?;
        let mut deleted = Vec::new();
        for kv in listed.kvs {
            if !filter.matches_stored(&kv.value) {
                continue;
            }
            // Each listed object is deleted by name, as upstream's DeleteCollection does:
            // a concurrent write to it is no reason to skip it, one deleted meanwhile is.
            let obj = self.decode(&kv.value, kv.mod_revision)?;
            let name = meta_str(&obj, "name").unwrap_or("").to_owned();
            match self.delete_object(&kv.key, &name, &options).await {
                Ok(Deleted::Pending(obj, _) | Deleted::Now(obj)) => deleted.push(obj),
                Err(e) if e.0.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let list_kind = match &self.custom {
            Some(custom) => custom.list_kind.clone(),
            None => format!("{}List", self.info.kind),
        };
        let body = json!({"kind": list_kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": listed.revision.to_string()}, "items": deleted});
        self.respond_value(StatusCode::OK, &body)
    }
}

/// How often a delete is tried again after losing a compare-and-swap race.
const DELETE_ATTEMPTS: usize = 16;

/// What a delete did: set `deletionTimestamp` (the object as stored, and its store
/// entry) or removed the object (as it was).
enum Deleted {
    Pending(Value, rkube_store::KeyValue),
    Now(Value),
}

/// Adds upstream-style `Warning` headers (code 299) to a response.
/// 422 for bad patch options, as upstream words it (`PatchOptions.meta.k8s.io "" is invalid`).
fn patch_options_invalid(error: FieldError) -> ApiError {
    rkube_api::Status::invalid(
        &rkube_api::GroupKind::new("meta.k8s.io", "PatchOptions"),
        "",
        &[error],
    )
    .into()
}

/// 409 for apply conflicts, with one `FieldManagerConflict` cause per field.
fn apply_conflict(conflicts: ssa::Conflicts) -> ApiError {
    let causes = conflicts
        .conflicts
        .iter()
        .map(|(manager, field)| rkube_api::status::StatusCause {
            cause_type: "FieldManagerConflict".into(),
            message: format!("conflict with {manager}"),
            field: field.clone(),
        })
        .collect();
    rkube_api::Status::failure(
        409,
        "Conflict",
        conflicts.message(),
        Some(rkube_api::status::StatusDetails {
            causes,
            ..Default::default()
        }),
    )
    .into()
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let value = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            response.headers_mut().append("warning", v);
        }
    }
    response
}

fn cache_error(e: crate::watch_cache::CacheError) -> ApiError {
    use crate::watch_cache::CacheError as C;
    match e {
        C::TooOld { .. } => ApiError::expired(e.to_string()),
        C::TooLarge { .. } => ApiError::timeout(e.to_string()),
        C::NotReady(_) => ApiError::unavailable(e.to_string()),
    }
}

fn list_store_error(
    e: rkube_store::Error,
    info: &ResourceInfo,
    continue_token: &Option<String>,
) -> ApiError {
    match e {
        rkube_store::Error::Compacted { .. } if continue_token.is_some() => ApiError::expired(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        ),
        rkube_store::Error::InvalidContinue { .. } => ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"),
        other => from_store(other, info, ""),
    }
}

/// `DeleteOptions` from a body and/or the query.
#[derive(Debug, Default)]
pub(crate) struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    fn parse(headers: &HeaderMap, body: &[u8], query: &Query) -> Result<Self, ApiError> {
        let mut o = DeleteOptions {
            grace_period_seconds: query.int("gracePeriodSeconds")?,
            propagation_policy: query.get("propagationPolicy").map(str::to_owned),
            dry_run: query.dry_run()?,
            ..Default::default()
        };
        if !body.iter().all(u8::is_ascii_whitespace) {
            let protobuf = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(crate::proto::MEDIA_TYPE));
            let v: Value = if protobuf {
                crate::proto::decode_object(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding DeleteOptions: {e}"))
                })?
            } else {
                serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding DeleteOptions: {e}"))
                })?
            };
            if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
                o.grace_period_seconds = Some(g);
            }
            if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation_policy = Some(p.to_owned());
            }
            if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
                && o.propagation_policy.is_none()
            {
                o.propagation_policy = Some("Orphan".into());
            }
            o.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_owned);
            o.precondition_rv = v["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned);
            if v.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All"))
            {
                o.dry_run = true;
            }
        }
        if let Some(p) = &o.propagation_policy {
            if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
                let error = FieldError::not_supported(
                    "propagationPolicy",
                    p.as_str(),
                    &["Foreground", "Background", "Orphan", "nil"],
                );
                return Err(rkube_api::Status::invalid(
                    &rkube_api::GroupKind::new("", "DeleteOptions"),
                    "",
                    &[error],
                )
                .into());
            }
        }
        Ok(o)
    }
}
