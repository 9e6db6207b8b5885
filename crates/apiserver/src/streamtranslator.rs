//! WebSocket `pods/exec`, `pods/attach` and `pods/portforward` served by the API server
//! itself, as upstream's (1.30+) does, in front of a kubelet/runtime that speaks SPDY:
//!
//! - **exec/attach, `v5.channel.k8s.io`** (upstream `StreamTranslatorHandler`): the API
//!   server accepts the WebSocket, opens a SPDY/3.1 connection to the kubelet
//!   (`X-Stream-Protocol-Version: v4.channel.k8s.io`) with the streams the options ask for
//!   (error; stdin, stdout, stderr; resize with a tty), and relays binary messages whose
//!   first byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; 255 is
//!   v5's close signal, its payload the channel to half-close) to and from those
//!   streams. The session's outcome goes out as a `Status` on channel 3 (an exit code as
//!   `NonZeroExitCode`), then a normal close.
//! - **port-forward, `SPDY/3.1+portforward.k8s.io`** (upstream `TunnelingHandler`): the
//!   kubelet's SPDY upgrade is opened first; once it answers 101 the WebSocket is
//!   accepted with the tunnelled protocol and carries the SPDY bytes as binary messages.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kubelet_proxy::KubeletClient;
use crate::spdy;

/// The remote command protocol this server speaks over WebSocket itself.
pub const V5: &str = "v5.channel.k8s.io";
/// The SPDY remote command protocol asked of the kubelet.
const SPDY_V4: &str = "v4.channel.k8s.io";
/// Tunnelled SPDY protocols are offered as `SPDY/3.1+<protocol>` (ending in `.k8s.io`).
const TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// How long the kubelet may take to answer a stream's SYN_STREAM (client-go's).
const STREAM_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the client may take to close once the status is sent (upstream's
/// `finishTimeout`).
const FINISH_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How much of a failed upgrade's body is read for its message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much error-stream data the kubelet may send.
const MAX_ERROR_STREAM: usize = 64 * 1024;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE_SIGNAL: u8 = 255;

/// What a WebSocket upgrade request asks of this server.
#[derive(Debug, PartialEq)]
pub enum WebSocketMode {
    /// Not a WebSocket request, or a protocol relayed as is (v1-v4, base64).
    Relay,
    /// `v5.channel.k8s.io`: translated to SPDY here.
    V5,
    /// SPDY tunnelled through the WebSocket: the SPDY protocols offered.
    Tunnel(Vec<String>),
}

/// Reads `Upgrade: websocket` and the offered `Sec-WebSocket-Protocol`s.
pub fn websocket_mode(headers: &hyper::HeaderMap) -> WebSocketMode {
    let websocket = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !websocket {
        return WebSocketMode::Relay;
    }
    let offered: Vec<&str> = headers
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let tunnelled: Vec<String> = offered
        .iter()
        .filter_map(|p| p.strip_prefix(TUNNEL_PREFIX))
        .filter(|p| p.ends_with(".k8s.io"))
        .map(str::to_owned)
        .collect();
    if !tunnelled.is_empty() {
        WebSocketMode::Tunnel(tunnelled)
    } else if offered.contains(&V5) {
        WebSocketMode::V5
    } else {
        WebSocketMode::Relay
    }
}

/// The streams of an exec or attach.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    /// From the request's `PodExecOptions`/`PodAttachOptions` query.
    pub fn parse(query: Option<&str>) -> Options {
        let mut o = Options::default();
        let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "stdin" => o.stdin = on(&v),
                "stdout" => o.stdout = on(&v),
                "stderr" => o.stderr = on(&v),
                "tty" => o.tty = on(&v),
                _ => {}
            }
        }
        o
    }
}

/// A `metav1.Status` as upstream's `apierrors.NewInternalError(err)`.
fn internal_error(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// The status the client gets from what the kubelet's error stream carried, as
/// upstream's translator turns client-go's v4 error decoding back into a `Status`.
pub fn final_status(error_stream: &[u8]) -> Value {
    if error_stream.is_empty() {
        return json!({"metadata": {}, "status": "Success"});
    }
    let status: Value = match serde_json::from_slice(error_stream) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            let e = serde_json::from_slice::<serde_json::Map<String, Value>>(error_stream)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return internal_error(&format!(
                "error stream protocol error: {e} in {:?}",
                String::from_utf8_lossy(error_stream)
            ));
        }
    };
    match status["status"].as_str() {
        Some("Success") => json!({"metadata": {}, "status": "Success"}),
        Some("Failure") if status["reason"] == "NonZeroExitCode" => {
            let Some(causes) = status["details"]["causes"].as_array() else {
                return internal_error("error stream protocol error: details must be set");
            };
            let Some(cause) = causes.iter().find(|c| c["reason"] == "ExitCode") else {
                return internal_error("error stream protocol error: no ExitCode cause given");
            };
            let text = cause["message"].as_str().unwrap_or_default();
            let Ok(rc) = text.parse::<u8>() else {
                return internal_error(&format!(
                    "error stream protocol error: invalid exit code value {text:?}"
                ));
            };
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: command terminated with exit code {rc}"
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": rc.to_string()}]},
            })
        }
        Some("Failure") => internal_error(status["message"].as_str().unwrap_or_default()),
        _ => internal_error("error stream protocol error: unknown error"),
    }
}

/// A message on `channel` (the v5 framing).
pub fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut m = Vec::with_capacity(data.len() + 1);
    m.push(channel);
    m.extend_from_slice(data);
    Message::Binary(m.into())
}

/// What a client's message on a v5 connection asks.
#[derive(Debug, PartialEq)]
pub enum Inbound<'a> {
    Data(u8, &'a [u8]),
    /// The close signal: the client is done writing this channel.
    Close(u8),
    /// Nothing to do (an empty message).
    Nothing,
    /// A malformed close signal: upstream ends the connection's reading.
    ProtocolError,
}

/// Reads a client's binary message.
pub fn parse_inbound(m: &[u8]) -> Inbound<'_> {
    match m {
        [] => Inbound::Nothing,
        [CLOSE_SIGNAL, channel] => Inbound::Close(*channel),
        [CLOSE_SIGNAL, ..] => Inbound::ProtocolError,
        [channel, data @ ..] => Inbound::Data(*channel, data),
    }
}

/// Where a translated session's kubelet is.
pub struct Backend {
    pub client: KubeletClient,
    pub host: String,
    pub port: u16,
    /// `/exec/<ns>/<pod>/<container>?...` or `/attach/...`, `/portForward/...`.
    pub path: String,
}

impl Backend {
    /// Asks the kubelet for a SPDY upgrade speaking `protocols`: the upgraded transport
    /// and the protocol chosen, or (not upgraded) the kubelet's answer.
    async fn upgrade(
        &self,
        protocols: &[String],
    ) -> Result<Result<(TokioIo<hyper::upgrade::Upgraded>, String), Response>, String> {
        let mut req = hyper::Request::post(self.path.as_str())
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, "SPDY/3.1");
        for p in protocols {
            req = req.header("X-Stream-Protocol-Version", p.as_str());
        }
        let req = req
            .body(axum::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let mut resp = self.client.send(&self.host, self.port, req).await?;
        let upgraded_to_spdy = resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS
            && resp
                .headers()
                .get(hyper::header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("spdy/3.1"));
        if !upgraded_to_spdy {
            return Ok(Err(resp));
        }
        let protocol = resp
            .headers()
            .get("X-Stream-Protocol-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_owned();
        let io = tokio::time::timeout(STREAM_REPLY_TIMEOUT, hyper::upgrade::on(&mut resp))
            .await
            .map_err(|_| "timed out upgrading the connection".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(Ok((TokioIo::new(io), protocol)))
    }
}

/// The message of a failed upgrade, as client-go's SPDY round tripper words it.
async fn upgrade_failure(resp: Response) -> Value {
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY);
    let bytes = match tokio::time::timeout(STREAM_REPLY_TIMEOUT, body.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        _ => {
            return internal_error(
                "unable to upgrade connection: unable to read error from server response",
            )
        }
    };
    if let Ok(status) = serde_json::from_slice::<Value>(&bytes) {
        if status["kind"] == "Status" {
            return status;
        }
    }
    internal_error(&format!(
        "unable to upgrade connection: {}",
        String::from_utf8_lossy(&bytes).trim()
    ))
}

/// Serves a `v5.channel.k8s.io` exec/attach: accepts the WebSocket and translates.
pub async fn serve_v5(
    parts: &mut hyper::http::request::Parts,
    backend: Backend,
    options: Options,
) -> Response {
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.protocols([V5])
        .on_upgrade(move |socket| translate(socket, backend, options))
}

/// The SPDY side of a translated session.
struct SpdySession {
    _conn: spdy::Connection,
    error: spdy::StreamReader,
    stdin: Option<spdy::StreamWriter>,
    stdout: Option<spdy::StreamReader>,
    stderr: Option<spdy::StreamReader>,
    resize: Option<spdy::StreamWriter>,
}

/// Opens the kubelet's SPDY connection and the streams `options` ask for.
async fn open_spdy(backend: &Backend, options: Options) -> Result<SpdySession, Value> {
    let url = format!("https://{}:{}{}", backend.host, backend.port, backend.path);
    let (io, _protocol) = match backend.upgrade(&[SPDY_V4.to_owned()]).await {
        Ok(Ok(up)) => up,
        Ok(Err(resp)) => return Err(upgrade_failure(resp).await),
        Err(e) => {
            return Err(internal_error(&format!(
                "error sending request: Post \"{url}\": {e}"
            )))
        }
    };
    let mut conn = spdy::Connection::client(io);
    let mut open = async |kind: &str| -> Result<spdy::Stream, Value> {
        conn.open(vec![("streamtype".into(), kind.into())])
            .await
            .map_err(|e| internal_error(&e.to_string()))
    };
    let mut error = open("error").await?;
    let stdin = match options.stdin {
        true => Some(open("stdin").await?),
        false => None,
    };
    let stdout = match options.stdout {
        true => Some(open("stdout").await?),
        false => None,
    };
    let stderr = match options.stderr && !options.tty {
        true => Some(open("stderr").await?),
        false => None,
    };
    let resize = match options.tty {
        true => Some(open("resize").await?),
        false => None,
    };
    let mut readers: Vec<&mut spdy::StreamReader> = vec![&mut error.reader];
    let mut stdin = stdin;
    let mut stdout = stdout;
    let mut stderr = stderr;
    let mut resize = resize;
    for s in [&mut stdin, &mut stdout, &mut stderr, &mut resize]
        .into_iter()
        .flatten()
    {
        readers.push(&mut s.reader);
    }
    for r in readers {
        r.reply(STREAM_REPLY_TIMEOUT)
            .await
            .map_err(|e| internal_error(&e.to_string()))?;
    }
    // This side never writes the output streams: half-close them, so that they end
    // cleanly (not reset) when the runtime closes its side.
    for s in [Some(&error), stdout.as_ref(), stderr.as_ref()]
        .into_iter()
        .flatten()
    {
        s.writer
            .close()
            .await
            .map_err(|e| internal_error(&e.to_string()))?;
    }
    Ok(SpdySession {
        _conn: conn,
        error: error.reader,
        stdin: stdin.map(|s| s.writer),
        stdout: stdout.map(|s| s.reader),
        stderr: stderr.map(|s| s.reader),
        resize: resize.map(|s| s.writer),
    })
}

/// Relays one v5 session.
async fn translate(socket: WebSocket, backend: Backend, options: Options) {
    let (mut tx, mut rx) = socket.split();
    // An empty message on the lowest writable channel tells the client the
    // connection is up.
    let first = if options.stdout {
        STDOUT
    } else if options.stderr {
        STDERR
    } else {
        ERROR
    };
    if tx.send(channel_message(first, &[])).await.is_err() {
        return;
    }
    // The client's messages wait (unread) while the kubelet is dialled: each step of
    // that has a deadline.
    let status = match open_spdy(&backend, options).await {
        Err(status) => status,
        Ok(mut session) => {
            let stdin = session.stdin.take();
            let resize = session.resize.take();
            let input = relay_input(&mut rx, stdin, resize);
            tokio::pin!(input);
            let output = relay_output(&mut tx, &mut session);
            tokio::select! {
                status = output => status,
                // The client is gone: dropping the session ends the SPDY connection.
                _ = &mut input => return,
            }
        }
    };
    finish(tx, rx, status).await;
}

/// Writes the status on channel 3, closes normally and waits (bounded) for the
/// client's close.
async fn finish(
    mut tx: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: futures::stream::SplitStream<WebSocket>,
    status: Value,
) {
    let _ = tx
        .send(channel_message(ERROR, status.to_string().as_bytes()))
        .await;
    let _ = tx.send(normal_close()).await;
    let _ = tokio::time::timeout(FINISH_TIMEOUT, wait_closed(&mut rx)).await;
}

/// A close frame with status 1000 (client-go takes any other, even none, as an error).
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

/// Reads (and drops) the client's messages until it closes.
async fn wait_closed(rx: &mut futures::stream::SplitStream<WebSocket>) {
    while let Some(Ok(m)) = rx.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
    }
}

/// Client → kubelet: stdin and resize data, the close signal as a FIN. Returns when
/// the client closes or goes away.
async fn relay_input(
    rx: &mut futures::stream::SplitStream<WebSocket>,
    mut stdin: Option<spdy::StreamWriter>,
    mut resize: Option<spdy::StreamWriter>,
) {
    while let Some(Ok(m)) = rx.next().await {
        let data: Bytes = match m {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::copy_from_slice(t.as_str().as_bytes()),
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match parse_inbound(&data) {
            Inbound::Nothing => {}
            Inbound::ProtocolError => {
                tracing::debug!("single channel byte should follow stream close signal");
                break;
            }
            Inbound::Close(channel) => {
                let stream = match channel {
                    STDIN => stdin.take(),
                    RESIZE => resize.take(),
                    _ => None,
                };
                if let Some(s) = stream {
                    let _ = s.close().await;
                }
            }
            Inbound::Data(channel, payload) => {
                let stream = match channel {
                    STDIN => stdin.as_ref(),
                    RESIZE => resize.as_ref(),
                    _ => None,
                };
                if let Some(s) = stream {
                    if !payload.is_empty() {
                        let _ = s.write(data.slice(1..)).await;
                    }
                }
            }
        }
    }
}

/// Kubelet → client: stdout and stderr until they and the error stream end; the
/// session's status.
async fn relay_output(
    tx: &mut futures::stream::SplitSink<WebSocket, Message>,
    s: &mut SpdySession,
) -> Value {
    let mut error = Vec::new();
    let mut error_failed = None;
    let (mut out_open, mut err_open, mut error_open) =
        (s.stdout.is_some(), s.stderr.is_some(), true);
    while out_open || err_open || error_open {
        tokio::select! {
            d = read_opt(&mut s.stdout), if out_open => match d {
                Ok(Some(b)) => {
                    if tx.send(channel_message(STDOUT, &b)).await.is_err() {
                        out_open = false;
                    }
                }
                _ => out_open = false,
            },
            d = read_opt(&mut s.stderr), if err_open => match d {
                Ok(Some(b)) => {
                    if tx.send(channel_message(STDERR, &b)).await.is_err() {
                        err_open = false;
                    }
                }
                _ => err_open = false,
            },
            d = s.error.read(), if error_open => match d {
                Ok(Some(b)) if error.len() + b.len() <= MAX_ERROR_STREAM => error.extend_from_slice(&b),
                Ok(Some(_)) => {
                    error_failed = Some("error stream exceeds 64 KiB".to_owned());
                    error_open = false;
                }
                // A reset ends the stream as its end does (spdystream reads EOF).
                Ok(None) | Err(_) => error_open = false,
            },
        }
    }
    match error_failed {
        Some(e) => internal_error(&format!("error reading from error stream: {e}")),
        None => final_status(&error),
    }
}

async fn read_opt(r: &mut Option<spdy::StreamReader>) -> Result<Option<Bytes>, spdy::Error> {
    match r {
        Some(r) => r.read().await,
        None => Ok(None),
    }
}

/// Serves a port-forward tunnelled through a WebSocket: the kubelet's SPDY upgrade
/// first, then the WebSocket carries its bytes.
pub async fn serve_tunnel(
    parts: &mut hyper::http::request::Parts,
    backend: Backend,
    protocols: Vec<String>,
) -> Result<Response, String> {
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let (io, protocol) = match backend.upgrade(&protocols).await? {
        Ok(up) => up,
        // Not upgraded: the kubelet's answer goes back as it is.
        Err(resp) => return Ok(resp),
    };
    let selected = format!("{TUNNEL_PREFIX}{protocol}");
    Ok(ws
        .protocols([selected])
        .on_upgrade(move |socket| tunnel(socket, io)))
}

/// Relays binary messages ↔ the kubelet's bytes until either side ends.
async fn tunnel(socket: WebSocket, io: TokioIo<hyper::upgrade::Upgraded>) {
    let (mut tx, mut rx) = socket.split();
    let (mut rd, mut wr) = tokio::io::split(io);
    let up = async {
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Binary(b) => {
                    if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(normal_close()).await;
    };
    // Either side ending ends the tunnel (the client closes after its streams are
    // done; the kubelet's end closes the WebSocket).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn chooses_translation_by_offered_protocol() {
        let ws = |p: &str| {
            websocket_mode(&headers(&[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-protocol", p),
            ]))
        };
        assert_eq!(ws("v5.channel.k8s.io"), WebSocketMode::V5);
        assert_eq!(
            ws("v4.channel.k8s.io, v5.channel.k8s.io"),
            WebSocketMode::V5
        );
        assert_eq!(
            ws("v4.channel.k8s.io,channel.k8s.io,base64.channel.k8s.io"),
            WebSocketMode::Relay
        );
        assert_eq!(
            ws("SPDY/3.1+portforward.k8s.io"),
            WebSocketMode::Tunnel(vec!["portforward.k8s.io".into()])
        );
        assert_eq!(ws("SPDY/3.1+portforward.example"), WebSocketMode::Relay);
        // SPDY itself is relayed.
        assert_eq!(
            websocket_mode(&headers(&[
                ("upgrade", "SPDY/3.1"),
                ("x-stream-protocol-version", "v5.channel.k8s.io")
            ])),
            WebSocketMode::Relay
        );
    }

    #[test]
    fn v5_framing() {
        assert_eq!(parse_inbound(&[0, b'h', b'i']), Inbound::Data(0, b"hi"));
        assert_eq!(
            parse_inbound(&[4, b'{', b'}']),
            Inbound::Data(4, b"{}".as_slice())
        );
        assert_eq!(parse_inbound(&[255, 0]), Inbound::Close(0));
        assert_eq!(parse_inbound(&[255]), Inbound::ProtocolError);
        assert_eq!(parse_inbound(&[255, 0, 1]), Inbound::ProtocolError);
        assert_eq!(parse_inbound(&[]), Inbound::Nothing);
        assert_eq!(
            channel_message(1, b"out"),
            Message::Binary(Bytes::from_static(b"\x01out"))
        );
        assert_eq!(
            channel_message(1, b""),
            Message::Binary(Bytes::from_static(b"\x01"))
        );
    }

    #[test]
    fn statuses_as_upstream_translates_them() {
        assert_eq!(
            final_status(b""),
            json!({"metadata": {}, "status": "Success"})
        );
        assert_eq!(
            final_status(br#"{"metadata":{},"status":"Success"}"#),
            json!({"metadata": {}, "status": "Success"})
        );
        let exit = final_status(
            br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#,
        );
        assert_eq!(exit["reason"], "NonZeroExitCode");
        assert_eq!(exit["details"]["causes"][0]["message"], "3");
        assert_eq!(
            exit["message"],
            "command terminated with non-zero exit code: command terminated with exit code 3"
        );
        let failed = final_status(br#"{"status":"Failure","message":"boom"}"#);
        assert_eq!(failed["message"], "Internal error occurred: boom");
        assert_eq!(failed["code"], 500);
        let bad = final_status(b"nope");
        assert!(bad["message"]
            .as_str()
            .unwrap()
            .starts_with("Internal error occurred: error stream protocol error: "));
        assert_eq!(
            final_status(br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#)["message"],
            "Internal error occurred: error stream protocol error: invalid exit code value \"x\""
        );
    }

    #[test]
    fn options_from_the_query() {
        assert_eq!(
            Options::parse(Some("command=sh&stdin=true&stdout=1&stderr=false&tty=true")),
            Options {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
    }
}
