//! The kubelet's HTTPS server (`--kubelet-port`, upstream's :10250): clients present a
//! certificate of the cluster CA (the API server does), each request is authorized by
//! a SubjectAccessReview on the `nodes/<subresource>` it touches, as upstream's
//! webhook authorizer does. Serves `/healthz`, `/containerLogs/{ns}/{pod}/{container}`
//! (the CRI log files, `follow` included), the streaming endpoints of
//! [`crate::streaming`] and `/metrics` and `/stats/summary` of [`crate::stats`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::PostParams;
use kube::Api;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tower::ServiceExt;

use crate::cri::Runtime;
use crate::logs::{self, LogOptions};
use crate::pod_config::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL, POD_UID_LABEL};
use crate::{stats, streaming, Shared};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The verified client of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub user: String,
    pub groups: Vec<String>,
}

/// TLS for the server: a self-signed serving certificate for `names` (as upstream's
/// kubelet makes without `--tls-cert-file`) and client certificates required from `ca_pem`.
pub fn tls_config(names: Vec<String>, ca_pem: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = rustls_pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| format!("bad client CA: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).map_err(|e| format!("bad client CA: {e}"))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("cannot build the client verifier: {e}"))?;
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot make the serving certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(cert.cert.der().to_vec())], key)
        .map_err(|e| format!("bad serving certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(streaming::exec).post(streaming::exec),
        )
        .route(
            "/exec/{ns}/{pod}/{uid}/{container}",
            get(streaming::exec_uid).post(streaming::exec_uid),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(streaming::attach).post(streaming::attach),
        )
        .route(
            "/attach/{ns}/{pod}/{uid}/{container}",
            get(streaming::attach_uid).post(streaming::attach_uid),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(streaming::port_forward).post(streaming::port_forward),
        )
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            get(streaming::port_forward_uid).post(streaming::port_forward_uid),
        )
        .route("/metrics", get(stats::metrics))
        .route("/stats/summary", get(stats::summary))
        .with_state(shared);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let client = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| rkube_pki::identity::identity_from_der(leaf).ok())
                .map(|id| Client {
                    user: id.user,
                    groups: id.groups,
                });
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    if let Some(c) = &client {
                        req.extensions_mut().insert(c.clone());
                    }
                    app.clone().oneshot(req.map(Body::new))
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "kubelet server: connection ended with an error");
            }
        });
    }
}

pub(crate) fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Asks the API server whether `client` may `verb` `nodes/<subresource>` of this node.
pub(crate) async fn authorize(
    shared: &Shared,
    client: &Client,
    verb: &str,
    subresource: &str,
) -> Result<(), Response> {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": client.user, "groups": client.groups,
                 "resourceAttributes": {"verb": verb, "resource": "nodes",
                                        "subresource": subresource, "name": shared.node_name}}}))
    .expect("a valid review");
    let api: Api<SubjectAccessReview> = Api::all(shared.client.clone());
    let decided = tokio::time::timeout(
        Duration::from_secs(10),
        api.create(&PostParams::default(), &review),
    )
    .await;
    match decided {
        Ok(Ok(r)) if r.status.as_ref().is_some_and(|s| s.allowed) => Ok(()),
        Ok(Ok(_)) => Err(status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                client.user
            ),
        )),
        Ok(Err(e)) => Err(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Authorization error (user={}, verb={verb}, resource=nodes, subresource={subresource}): {e}", client.user),
        )),
        Err(_) => Err(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Authorization error: the API server did not answer in time".into(),
        )),
    }
}

fn parse_options(q: &HashMap<String, String>) -> Result<LogOptions, String> {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let num = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {k}: {v:?}")))
            .transpose()
    };
    let since = match (q.get("sinceTime"), num("sinceSeconds")?) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(s)) if s > 0 => {
            let now = k8s_openapi::jiff::Timestamp::now();
            Some((now - k8s_openapi::jiff::SignedDuration::from_secs(s)).to_string())
        }
        (None, Some(_)) => return Err("sinceSeconds must be greater than 0".into()),
        (None, None) => None,
    };
    Ok(LogOptions {
        follow: flag("follow"),
        previous: flag("previous"),
        timestamps: flag("timestamps"),
        tail_lines: num("tailLines")?.map(|n| n.max(0) as usize),
        since,
        limit_bytes: num("limitBytes")?.map(|n| n.max(0) as usize),
    })
}

/// `GET /containerLogs/{ns}/{pod}/{container}`.
async fn container_logs(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    req: Request<Body>,
) -> Response {
    let Some(client) = req.extensions().get::<Client>().cloned() else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        );
    };
    if let Err(denied) = authorize(&shared, &client, "get", "proxy").await {
        return denied;
    }
    let opts = match parse_options(&q) {
        Ok(o) => o,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e),
    };
    let Some(runtime) = shared.runtime.clone() else {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "container runtime is down".into(),
        );
    };
    let containers = runtime.list_containers(None).await.unwrap_or_default();
    // The pod's newest runs of this container, newest first.
    let mut runs: Vec<_> = containers
        .iter()
        .filter(|c| {
            c.labels.get(POD_NAMESPACE_LABEL) == Some(&ns)
                && c.labels.get(POD_NAME_LABEL) == Some(&pod)
                && c.labels.get(CONTAINER_NAME_LABEL) == Some(&container)
        })
        .collect();
    runs.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let Some(latest) = runs.first() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container:?} in pod {pod:?} is not available"),
        );
    };
    let uid = latest
        .labels
        .get(POD_UID_LABEL)
        .cloned()
        .unwrap_or_default();
    let dir = shared.pod_logs_dir.join(format!("{ns}_{pod}_{uid}"));
    let attempt = latest.metadata.as_ref().map_or(0, |m| m.attempt);
    let (path, id) = if opts.previous {
        let Some(prev) = logs::attempts(&dir, &container)
            .into_iter()
            .rev()
            .find(|a| *a < attempt)
        else {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            );
        };
        (logs::log_path(&dir, &container, prev), None)
    } else {
        (
            logs::log_path(&dir, &container, attempt),
            Some(latest.id.clone()),
        )
    };
    let content = tokio::fs::read(&path).await.unwrap_or_default();
    // Only whole lines; a follow continues after the last one.
    let complete = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let first = logs::render(&String::from_utf8_lossy(&content[..complete]), &opts);
    let headers = [("content-type", "text/plain")];
    let follow_id = id.filter(|_| opts.follow);
    let Some(id) = follow_id else {
        return (StatusCode::OK, headers, first).into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    tokio::spawn(follow(runtime, path, id, complete as u64, first, opts, tx));
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}

/// Streams a log from `offset` on until the container stops (and its last lines are
/// sent) or the client goes away.
async fn follow(
    runtime: Arc<dyn Runtime>,
    path: std::path::PathBuf,
    container_id: String,
    mut offset: u64,
    first: String,
    opts: LogOptions,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let mut budget = opts
        .limit_bytes
        .unwrap_or(usize::MAX)
        .saturating_sub(first.len());
    if tx.send(Ok(first.into_bytes())).await.is_err() {
        return;
    }
    let later = LogOptions {
        tail_lines: None,
        limit_bytes: None,
        ..opts
    };
    loop {
        let running = matches!(
            runtime.container_status(&container_id).await,
            Ok(s) if s.state == crate::pod_status::CONTAINER_RUNNING
        );
        let mut chunk = Vec::new();
        if let Ok(mut f) = tokio::fs::File::open(&path).await {
            if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                let _ = f.read_to_end(&mut chunk).await;
            }
        }
        let complete = chunk.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete > 0 {
            offset += complete as u64;
            let mut text = logs::render(&String::from_utf8_lossy(&chunk[..complete]), &later);
            if text.len() > budget {
                text.truncate(budget);
            }
            budget -= text.len();
            if !text.is_empty() && tx.send(Ok(text.into_bytes())).await.is_err() {
                return;
            }
            if budget == 0 {
                return;
            }
        }
        if !running && complete == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_options() {
        let q: HashMap<String, String> = [
            ("follow", "true"),
            ("tailLines", "5"),
            ("timestamps", "true"),
            ("sinceTime", "2026-01-01T00:00:00Z"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let o = parse_options(&q).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.since.as_deref(), Some("2026-01-01T00:00:00Z"));
        let bad: HashMap<String, String> = [("tailLines".to_owned(), "x".to_owned())].into();
        assert_eq!(parse_options(&bad).unwrap_err(), "invalid tailLines: \"x\"");
    }
}
