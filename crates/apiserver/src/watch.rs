//! Watch streams: `?watch=true` answered from the watch cache as a chunked stream of
//! JSON event lines (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use rkube_api::resources::ResourceInfo;
use rkube_store::EventKind;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::codec::write_served;
use crate::error::ApiError;
use crate::filter::Filter;
use crate::negotiate::Format;
use crate::query::Query;
use crate::watch_cache::{CacheEvent, CachedObject};
use crate::ApiState;

/// How often a quiet watch gets a BOOKMARK when it asked for them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// Default watch length when the client sets none (upstream: 30–60 min, randomised).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Starts a watch and returns the streaming response.
pub async fn serve(
    state: Arc<ApiState>,
    info: &'static ResourceInfo,
    prefix: String,
    exact: bool,
    filter: Filter,
    query: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let rv = query.resource_version()?;
    let send_initial = query.get("sendInitialEvents").map(|v| v == "true");
    let bookmarks = query.flag("allowWatchBookmarks");
    if send_initial.is_some() && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        let error = rkube_api::FieldError::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan");
        return Err(rkube_api::Status::invalid(
            &rkube_api::GroupKind::new("meta.k8s.io", "ListOptions"),
            "",
            &[error],
        )
        .into());
    }
    let timeout = query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let cache = state
        .caches
        .get(&state.store, info.storage_prefix())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    // Legacy semantics: no resourceVersion or "0" starts with the current objects.
    let initial = match (send_initial, rv) {
        (Some(true), _) => true,
        (Some(false), _) => false,
        (None, None | Some(0)) => true,
        (None, Some(_)) => false,
    };
    let after = if initial { None } else { rv };
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    let sub = match cache.subscribe(&prefix, after).await {
        Ok(sub) => sub,
        Err(crate::watch_cache::CacheError::TooOld { requested, oldest }) => {
            // Upstream answers 200 and an ERROR event carrying 410 Gone.
            let status = rkube_api::Status::too_old_resource_version(requested, oldest);
            let line = event_line("ERROR", &status.to_json());
            let _ = tx.send(Ok(line.into())).await;
            drop(tx);
            return Ok(stream_response(rx));
        }
        Err(e) => return Err(ApiError::timeout(e.to_string())),
    };
    let stream = Stream {
        info,
        prefix,
        exact,
        filter,
        format,
        bookmarks,
        tx,
        query: query.clone(),
    };
    tokio::spawn(stream.run(sub, initial && send_initial == Some(true), timeout));
    Ok(stream_response(rx))
}

fn stream_response(rx: mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>) -> Response {
    let body = Body::from_stream(tokio_stream_from(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(body)
        .expect("valid response")
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn event_line(kind: &str, object: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    out
}

struct Stream {
    info: &'static ResourceInfo,
    prefix: String,
    exact: bool,
    filter: Filter,
    format: Format,
    bookmarks: bool,
    tx: mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    query: Query,
}

impl Stream {
    async fn run(
        self,
        mut sub: crate::watch_cache::Subscription,
        initial_end_bookmark: bool,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut revision = sub.revision;
        for obj in std::mem::take(&mut sub.initial) {
            if self.covers(&obj.key)
                && self.filter.matches_cached(&obj)
                && !self.send("ADDED", &obj, obj.revision).await
            {
                return;
            }
        }
        if initial_end_bookmark {
            let bookmark = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": revision.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !self
                .send_raw(
                    "BOOKMARK",
                    &serde_json::to_vec(&bookmark).unwrap_or_default(),
                )
                .await
            {
                return;
            }
        }
        for event in std::mem::take(&mut sub.replay) {
            revision = event.revision;
            if self.covers(&event.object.key) && !self.deliver(&event).await {
                return;
            }
        }
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        let mut bookmarked = revision;
        loop {
            tokio::select! {
                event = sub.live.recv() => match event {
                    Ok(event) => {
                        if event.revision <= revision || !self.covers(&event.object.key) {
                            continue;
                        }
                        revision = event.revision;
                        if !self.deliver(&event).await {
                            return;
                        }
                    }
                    // Too slow to keep up, or the cache was reset: end the watch so the
                    // client re-watches from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if self.bookmarks => {
                    let current = (*sub.progress.borrow()).max(revision);
                    if current > bookmarked {
                        bookmarked = current;
                        let bookmark = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": current.to_string()}});
                        if !self.send_raw("BOOKMARK", &serde_json::to_vec(&bookmark).unwrap_or_default()).await {
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Whether a key is in this watch's collection (or is its one object).
    fn covers(&self, key: &str) -> bool {
        if self.exact {
            key == self.prefix
        } else {
            key.starts_with(&self.prefix)
        }
    }

    /// Sends one cache event, translating label/field transitions as upstream does.
    async fn deliver(&self, event: &CacheEvent) -> bool {
        let now = event.kind != EventKind::Delete && self.filter.matches_cached(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|p| self.filter.matches_cached(p));
        let kind = match (event.kind, before, now) {
            (EventKind::Delete, true, _) => "DELETED",
            (EventKind::Delete, false, _) => return true,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return true,
        };
        if matches!(self.format, Format::Table | Format::PartialMetadata) {
            return self.send(kind, &event.object, event.revision).await;
        }
        let line = event.line(kind, || {
            let mut body = Vec::with_capacity(event.object.stored.len() + 32);
            write_served(&mut body, &event.object.stored, event.revision);
            event_line(kind, &body)
        });
        self.tx.send(Ok(line)).await.is_ok()
    }

    async fn send(&self, kind: &str, obj: &CachedObject, revision: i64) -> bool {
        let mut body = Vec::with_capacity(obj.stored.len() + 32);
        write_served(&mut body, &obj.stored, revision);
        if matches!(self.format, Format::Table | Format::PartialMetadata) {
            let Ok(value) = serde_json::from_slice::<Value>(&body) else {
                return true;
            };
            let converted = match self.format {
                Format::Table => crate::table::for_objects(
                    self.info,
                    &[value],
                    &revision.to_string(),
                    &self.query,
                ),
                _ => crate::negotiate::partial_metadata(&value),
            };
            body = serde_json::to_vec(&converted).unwrap_or_default();
        }
        self.send_raw(kind, &body).await
    }

    async fn send_raw(&self, kind: &str, object: &[u8]) -> bool {
        self.tx
            .send(Ok(event_line(kind, object).into()))
            .await
            .is_ok()
    }
}
