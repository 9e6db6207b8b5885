//! Watch streams: `?watch=true` answered from the watch cache as a chunked stream of
//! JSON event lines (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), or for protobuf clients
//! of length-delimited `WatchEvent` frames ([`crate::proto::watch_frame`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use rkube_api::resources::ResourceInfo;
use rkube_store::EventKind;
use serde_json::{json, Value};
use tokio::sync::broadcast;

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
// One parameter per part of the request; a struct would only restate them.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    state: Arc<ApiState>,
    info: &'static ResourceInfo,
    prefix: String,
    exact: bool,
    filter: Filter,
    query: &Query,
    format: Format,
    custom: Option<Arc<crate::crd::CustomVersion>>,
    lean: bool,
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
    let sub = match cache.subscribe(&prefix, after).await {
        Ok(sub) => sub,
        Err(crate::watch_cache::CacheError::TooOld { requested, oldest }) => {
            // Upstream answers 200 and an ERROR event carrying 410 Gone.
            let status = rkube_api::Status::too_old_resource_version(requested, oldest);
            let status = serde_json::to_value(&status).unwrap_or_default();
            let line = value_event(format, "ERROR", &status);
            return Ok(stream_response(format, futures::stream::iter([Ok(line)])));
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
        query: query.clone(),
        custom,
        lean,
    };
    let end_bookmark = initial && send_initial == Some(true);
    Ok(stream_response(
        format,
        stream.lines(sub, end_bookmark, timeout),
    ))
}

fn stream_response(
    format: Format,
    lines: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    let content_type = match format {
        Format::Protobuf => crate::proto::WATCH_MEDIA_TYPE,
        _ => "application/json",
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(lines))
        .expect("valid response")
}

/// An event whose object is built here (bookmarks, errors), in the stream's format.
fn value_event(format: Format, kind: &str, object: &Value) -> Bytes {
    if format == Format::Protobuf {
        return protobuf_event(kind, object).into();
    }
    event_line(kind, &serde_json::to_vec(object).unwrap_or_default()).into()
}

/// A protobuf watch frame; an object that cannot be encoded becomes an ERROR event
/// carrying a 500 Status, so the client re-lists instead of missing it silently.
fn protobuf_event(kind: &str, object: &Value) -> Vec<u8> {
    match crate::proto::encode_object(object) {
        Ok(body) => crate::proto::watch_frame(kind, &body),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode a watch event as protobuf");
            let status =
                rkube_api::Status::internal_error(&format!("unable to encode watch object: {e}"));
            let body = serde_json::to_value(&status)
                .map_err(|e| e.to_string())
                .and_then(|v| crate::proto::encode_object(&v))
                .unwrap_or_default();
            crate::proto::watch_frame("ERROR", &body)
        }
    }
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

/// Most waiting events one write of a watch carries.
const BATCH: usize = 64;

struct Stream {
    info: &'static ResourceInfo,
    prefix: String,
    exact: bool,
    filter: Filter,
    format: Format,
    bookmarks: bool,
    query: Query,
    /// For custom resources: converts stored objects to the watched version.
    custom: Option<Arc<crate::crd::CustomVersion>>,
    /// Objects are sent without `metadata.managedFields` ([`crate::codec::OMIT_MANAGED_FIELDS`]).
    lean: bool,
}

/// Where a watch stream is: initial objects, the end-of-initial-events bookmark, the
/// replay of events after the requested resourceVersion, then live events.
struct Cursor {
    initial: std::collections::VecDeque<Arc<CachedObject>>,
    end_bookmark: bool,
    replay: std::collections::VecDeque<Arc<CacheEvent>>,
    sub: crate::watch_cache::Subscription,
    revision: i64,
    bookmarked: i64,
    ticker: tokio::time::Interval,
    /// The watch's end, one timer for its whole life (not one per event).
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The watch fell behind while batching: it ends once the batch is sent.
    ended: bool,
}

impl Stream {
    /// The body of the watch: a stream pulled by the connection itself (no task per watch),
    /// ending at the deadline, when the client goes, or when the watch falls behind.
    fn lines(
        self,
        mut sub: crate::watch_cache::Subscription,
        end_bookmark: bool,
        timeout: Duration,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let now = tokio::time::Instant::now();
        let cursor = Cursor {
            initial: std::mem::take(&mut sub.initial).into(),
            end_bookmark,
            replay: std::mem::take(&mut sub.replay).into(),
            revision: sub.revision,
            bookmarked: sub.revision,
            sub,
            ticker: tokio::time::interval_at(now + BOOKMARK_EVERY, BOOKMARK_EVERY),
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
            ended: false,
        };
        futures::stream::unfold((self, cursor), |(stream, mut c)| async move {
            let line = stream.next_line(&mut c).await?;
            Some((Ok(line), (stream, c)))
        })
    }

    /// The next line to send, or `None` when the watch ends.
    async fn next_line(&self, c: &mut Cursor) -> Option<Bytes> {
        while let Some(obj) = c.initial.pop_front() {
            if self.covers(&obj.key) && self.filter.matches_cached(&obj) {
                return Some(self.object_line("ADDED", &obj, obj.revision));
            }
        }
        if std::mem::take(&mut c.end_bookmark) {
            let bookmark = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": c.revision.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            return Some(value_event(self.format, "BOOKMARK", &bookmark));
        }
        while let Some(event) = c.replay.pop_front() {
            c.revision = event.revision;
            if let Some(line) = self
                .covers(&event.object.key)
                .then(|| self.event_line_for(&event))
                .flatten()
            {
                return Some(line);
            }
        }
        if c.ended {
            return None;
        }
        loop {
            tokio::select! {
                event = c.sub.live.recv() => match event {
                    Ok(event) => {
                        if let Some(line) = self.live_line(c, &event) {
                            return Some(self.with_ready_events(c, line));
                        }
                    }
                    // Too slow to keep up, or the cache was reset: end the watch so the
                    // client re-watches from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return None,
                },
                _ = c.ticker.tick(), if self.bookmarks => {
                    let current = (*c.sub.progress.borrow()).max(c.revision);
                    if current > c.bookmarked {
                        c.bookmarked = current;
                        let bookmark = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": current.to_string()}});
                        return Some(value_event(self.format, "BOOKMARK", &bookmark));
                    }
                }
                _ = &mut c.deadline => return None,
            }
        }
    }

    /// The line for a live event this watch has not sent yet and sees, if any.
    fn live_line(&self, c: &mut Cursor, event: &CacheEvent) -> Option<Bytes> {
        if event.revision <= c.revision || !self.covers(&event.object.key) {
            return None;
        }
        c.revision = event.revision;
        self.event_line_for(event)
    }

    /// `first` followed by the live events already waiting (at most [`BATCH`]), so a watch
    /// that fell behind catches up in one write instead of one write per event.
    fn with_ready_events(&self, c: &mut Cursor, first: Bytes) -> Bytes {
        let mut batch: Option<Vec<u8>> = None;
        for _ in 0..BATCH {
            match c.sub.live.try_recv() {
                Ok(event) => {
                    if let Some(line) = self.live_line(c, &event) {
                        batch
                            .get_or_insert_with(|| first.to_vec())
                            .extend_from_slice(&line);
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                // The watch ends after what it has: the client re-watches from there.
                Err(_) => {
                    c.ended = true;
                    break;
                }
            }
        }
        batch.map_or(first, Bytes::from)
    }

    /// Whether a key is in this watch's collection (or is its one object).
    fn covers(&self, key: &str) -> bool {
        if self.exact {
            key == self.prefix
        } else {
            key.starts_with(&self.prefix)
        }
    }

    /// The line for one cache event, translating label/field transitions as upstream
    /// does; `None` when this watch does not see it.
    fn event_line_for(&self, event: &CacheEvent) -> Option<Bytes> {
        let now = event.kind != EventKind::Delete && self.filter.matches_cached(&event.object);
        let before = event
            .prev
            .as_ref()
            .is_some_and(|p| self.filter.matches_cached(p));
        let kind = match (event.kind, before, now) {
            (EventKind::Delete, true, _) => "DELETED",
            (EventKind::Delete, false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        let per_version =
            self.custom.is_some() || crate::conversion::for_resource(self.info).is_some();
        if self.format == Format::PartialMetadata && !per_version {
            // The same for every metadata watch (the garbage collector's, on every kind).
            return Some(event.meta_line(kind, self.lean, || {
                self.object_line(kind, &event.object, event.revision).into()
            }));
        }
        if per_version || matches!(self.format, Format::Table | Format::PartialMetadata) {
            // Per-watch rendering: formats and versions differ between watches.
            return Some(self.object_line(kind, &event.object, event.revision));
        }
        if self.format == Format::Protobuf {
            return Some(event.frame(kind, self.lean, || {
                self.object_line(kind, &event.object, event.revision).into()
            }));
        }
        Some(event.line(kind, self.lean, || {
            if self.lean {
                let body = event.lean_body(|| self.served(&event.object, event.revision));
                event_line(kind, &body)
            } else {
                self.object_line(kind, &event.object, event.revision).into()
            }
        }))
    }

    /// An object as this watch serves it in JSON (converted to its version, with its
    /// resourceVersion, and without `managedFields` when the watch is lean).
    fn served(&self, obj: &CachedObject, revision: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(obj.stored.len() + 32);
        match (&self.custom, crate::conversion::for_resource(self.info)) {
            (Some(custom), _) => {
                write_served(&mut body, &custom.from_storage(&obj.stored), revision)
            }
            (None, Some(conv)) => write_served(
                &mut body,
                &conv.served(&obj.stored, self.info.api_version()),
                revision,
            ),
            (None, None) => write_served(&mut body, &obj.stored, revision),
        }
        if self.lean {
            if let Some(lean) = crate::codec::without_managed_fields(&body) {
                body = lean;
            }
        }
        body
    }

    /// The line for one object in this watch's format.
    fn object_line(&self, kind: &str, obj: &CachedObject, revision: i64) -> Bytes {
        let mut body = self.served(obj, revision);
        if self.format == Format::Protobuf {
            let value = serde_json::from_slice::<Value>(&body).unwrap_or_default();
            return protobuf_event(kind, &value).into();
        }
        if self.format == Format::PartialMetadata {
            if let Some(meta) = crate::negotiate::partial_metadata_json(&body) {
                return event_line(kind, &meta).into();
            }
        }
        if matches!(self.format, Format::Table | Format::PartialMetadata) {
            if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                let converted = match (self.format, &self.custom) {
                    (Format::Table, Some(custom)) => {
                        custom.table(&[value], &revision.to_string(), &self.query)
                    }
                    (Format::Table, None) => {
                        let (info, objects) = crate::conversion::table_view(self.info, &[value]);
                        crate::table::for_objects(
                            info,
                            &objects,
                            &revision.to_string(),
                            &self.query,
                        )
                    }
                    _ => crate::negotiate::partial_metadata(&value),
                };
                body = serde_json::to_vec(&converted).unwrap_or_default();
            }
        }
        event_line(kind, &body).into()
    }
}
