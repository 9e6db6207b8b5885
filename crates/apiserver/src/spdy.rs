//! A SPDY/3.1 client, as the API server speaks it to kubelets (and through them to the
//! runtime's streaming server) when it translates a WebSocket exec/attach: frames
//! (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE,
//! DATA), zlib-compressed header blocks primed with the SPDY/3 dictionary (one
//! compression context per direction of a connection), client streams with odd,
//! increasing ids. Like the Go `spdystream` peers it talks to, it does no flow control
//! (WINDOW_UPDATE and SETTINGS are read and ignored) and answers the peer's PINGs.
//!
//! Decoding never panics on hostile input: every length is checked against what was
//! received, header blocks inflate to at most [`MAX_HEADER_BLOCK`] bytes, frames carry
//! at most 2^24-1 bytes as the format allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The protocol version of every control frame.
pub const VERSION: u16 = 3;
/// DATA or SYN_STREAM/SYN_REPLY/HEADERS: this is the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM: the recipient may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// RST_STREAM status: the stream was refused (the client accepts no pushed streams).
pub const REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: the stream was cancelled by its creator.
pub const CANCEL: u32 = 5;
/// The most a header block may inflate to.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// The largest DATA payload this client sends in one frame.
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Frames queued for the connection's writer.
const WRITE_QUEUE: usize = 64;
/// Data frames queued for one stream's reader before the connection's reader waits.
const READ_QUEUE: usize = 64;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Header names and values (names lower case; a value may repeat a name).
pub type Headers = Vec<(String, String)>;

/// Why a frame could not be read or written, or a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("spdy: invalid frame: {0}")]
    Frame(String),
    #[error("spdy: invalid header block: {0}")]
    HeaderBlock(String),
    #[error("spdy: {0}")]
    Io(String),
    #[error("stream reset by peer (status {0})")]
    Reset(u32),
    #[error("spdy: connection closed")]
    Closed,
    #[error("timeout waiting for SYN_REPLY on stream {0}")]
    ReplyTimeout(u32),
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value) of each setting.
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this client does not know (the spec says: ignore it).
    Unknown {
        kind: u16,
    },
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00 2.6.10.1):
/// length-prefixed header names and values, then a run of common text.
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: [&str; 65] = [
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Compresses the header blocks one side of a connection sends (one zlib stream, a
/// sync flush after each block, as the SPDY/3 spec asks).
pub struct HeaderEncoder {
    z: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        // Setting the dictionary of a fresh zlib stream cannot fail.
        let _ = z.set_dictionary(dictionary());
        HeaderEncoder { z }
    }

    /// The compressed block of `headers`.
    pub fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, Error> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| Error::HeaderBlock(e.to_string()))?;
            pos += (self.z.total_in() - before) as usize;
            // Done once all input is in and the flush left room to spare.
            if pos >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Inflates the header blocks one side of a connection receives.
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    pub fn new() -> Self {
        HeaderDecoder {
            z: Decompress::new(true),
        }
    }

    /// The headers of one compressed block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, Error> {
        let bad = |m: String| Error::HeaderBlock(m);
        let mut out: Vec<u8> = Vec::with_capacity(block.len().saturating_mul(4).clamp(64, 4096));
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(bad(format!("inflates past {MAX_HEADER_BLOCK} bytes")));
                }
                out.reserve(out.capacity().min(MAX_HEADER_BLOCK - out.len()).max(64));
            }
            let (in_before, out_before) = (self.z.total_in(), out.len());
            let result = self
                .z
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.z.total_in() - in_before) as usize;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| bad(format!("wrong dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
            let progressed = self.z.total_in() != in_before || out.len() != out_before;
            if pos >= block.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed {
                return Err(bad("truncated compressed block".into()));
            }
        }
        parse_header_block(&out)
    }
}

/// Reads a `u32` big-endian from `b` at `*pos`, advancing it.
fn be_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let s = b.get(*pos..pos.checked_add(4)?)?;
    *pos += 4;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The name/value pairs of an inflated header block (a value's NUL-separated parts
/// become repeated entries).
pub fn parse_header_block(b: &[u8]) -> Result<Headers, Error> {
    let bad = |m: &str| Error::HeaderBlock(m.to_owned());
    let mut pos = 0;
    let count = be_u32(b, &mut pos).ok_or_else(|| bad("short pair count"))? as usize;
    // Each pair takes at least 8 bytes: a bigger count cannot be honest.
    if count > (b.len() - pos) / 8 {
        return Err(bad("pair count exceeds the block"));
    }
    let mut out = Vec::with_capacity(count);
    let string = |pos: &mut usize| -> Result<String, Error> {
        let len = be_u32(b, pos).ok_or_else(|| bad("short length"))? as usize;
        let end = pos
            .checked_add(len)
            .filter(|e| *e <= b.len())
            .ok_or_else(|| bad("length exceeds the block"))?;
        let s = std::str::from_utf8(&b[*pos..end]).map_err(|_| bad("not UTF-8"))?;
        *pos = end;
        Ok(s.to_owned())
    };
    for _ in 0..count {
        let name = string(&mut pos)?;
        let value = string(&mut pos)?;
        for v in value.split('\0') {
            out.push((name.clone(), v.to_owned()));
        }
    }
    Ok(out)
}

/// A frame as laid out on the wire, its header block still compressed.
#[derive(Debug, PartialEq, Eq)]
pub enum RawFrame<'a> {
    Control {
        kind: u16,
        flags: u8,
        payload: &'a [u8],
    },
    Data {
        stream_id: u32,
        flags: u8,
        payload: &'a [u8],
    },
}

/// The frame at the start of `buf` and its length on the wire, `None` while `buf`
/// holds less than a whole frame.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(RawFrame<'_>, usize)>, Error> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let flags = buf[4];
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let payload = &buf[8..8 + len];
    let frame = if buf[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([buf[0] & 0x7f, buf[1]]);
        if version != VERSION {
            return Err(Error::Frame(format!("unsupported version {version}")));
        }
        RawFrame::Control {
            kind: u16::from_be_bytes([buf[2], buf[3]]),
            flags,
            payload,
        }
    } else {
        RawFrame::Data {
            stream_id: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            flags,
            payload,
        }
    };
    Ok(Some((frame, 8 + len)))
}

/// Decodes a raw frame, inflating its header block with `headers`.
pub fn decode_frame(raw: RawFrame<'_>, headers: &mut HeaderDecoder) -> Result<Frame, Error> {
    let (kind, flags, p) = match raw {
        RawFrame::Data {
            stream_id,
            flags,
            payload,
        } => {
            return Ok(Frame::Data {
                stream_id,
                flags,
                data: Bytes::copy_from_slice(payload),
            })
        }
        RawFrame::Control {
            kind,
            flags,
            payload,
        } => (kind, flags, payload),
    };
    let short = |what: &str| Error::Frame(format!("{what} frame too short ({} bytes)", p.len()));
    let id31 = |b: &[u8], at: usize| -> u32 {
        u32::from_be_bytes([b[at] & 0x7f, b[at + 1], b[at + 2], b[at + 3]])
    };
    let u32_at = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    Ok(match kind {
        SYN_STREAM => {
            if p.len() < 10 {
                return Err(short("SYN_STREAM"));
            }
            Frame::SynStream {
                stream_id: id31(p, 0),
                associated_to: id31(p, 4),
                priority: p[8] >> 5,
                flags,
                headers: headers.decode(&p[10..])?,
            }
        }
        SYN_REPLY | HEADERS => {
            if p.len() < 4 {
                return Err(short(if kind == SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                }));
            }
            let stream_id = id31(p, 0);
            let headers = headers.decode(&p[4..])?;
            if kind == SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags,
                    headers,
                }
            }
        }
        RST_STREAM => {
            if p.len() != 8 {
                return Err(short("RST_STREAM"));
            }
            Frame::RstStream {
                stream_id: id31(p, 0),
                status: u32_at(p, 4),
            }
        }
        SETTINGS => {
            if p.len() < 4 {
                return Err(short("SETTINGS"));
            }
            let n = u32_at(p, 0) as usize;
            if (p.len() - 4) / 8 != n || (p.len() - 4) % 8 != 0 {
                return Err(Error::Frame(format!(
                    "SETTINGS frame of {} bytes claims {n} entries",
                    p.len()
                )));
            }
            let entries = p[4..]
                .chunks_exact(8)
                .map(|e| {
                    (
                        e[0],
                        u32::from_be_bytes([0, e[1], e[2], e[3]]),
                        u32_at(e, 4),
                    )
                })
                .collect();
            Frame::Settings { flags, entries }
        }
        PING => {
            if p.len() != 4 {
                return Err(short("PING"));
            }
            Frame::Ping { id: u32_at(p, 0) }
        }
        GOAWAY => {
            if p.len() != 8 {
                return Err(short("GOAWAY"));
            }
            Frame::GoAway {
                last_good_stream_id: id31(p, 0),
                status: u32_at(p, 4),
            }
        }
        WINDOW_UPDATE => {
            if p.len() != 8 {
                return Err(short("WINDOW_UPDATE"));
            }
            Frame::WindowUpdate {
                stream_id: id31(p, 0),
                delta: id31(p, 4),
            }
        }
        kind => Frame::Unknown { kind },
    })
}

/// The wire bytes of `frame`, compressing its header block with `headers`.
pub fn encode_frame(frame: &Frame, headers: &mut HeaderEncoder) -> Result<Vec<u8>, Error> {
    fn control(kind: u16, flags: u8, payload: &[u8]) -> Result<Vec<u8>, Error> {
        if payload.len() >= 1 << 24 {
            return Err(Error::Frame("payload exceeds 2^24-1 bytes".into()));
        }
        let mut out = Vec::with_capacity(8 + payload.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(payload);
        Ok(out)
    }
    let id = |v: u32| (v & 0x7fff_ffff).to_be_bytes();
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers: h,
        } => {
            let mut p = Vec::new();
            p.extend_from_slice(&id(*stream_id));
            p.extend_from_slice(&id(*associated_to));
            p.push((priority & 0x7) << 5);
            p.push(0);
            p.extend_from_slice(&headers.encode(h)?);
            control(SYN_STREAM, *flags, &p)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers: h,
        }
        | Frame::Headers {
            stream_id,
            flags,
            headers: h,
        } => {
            let kind = if matches!(frame, Frame::SynReply { .. }) {
                SYN_REPLY
            } else {
                HEADERS
            };
            let mut p = id(*stream_id).to_vec();
            p.extend_from_slice(&headers.encode(h)?);
            control(kind, *flags, &p)
        }
        Frame::RstStream { stream_id, status } => {
            let mut p = id(*stream_id).to_vec();
            p.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &p)
        }
        Frame::Settings { flags, entries } => {
            let mut p = (entries.len() as u32).to_be_bytes().to_vec();
            for (f, i, v) in entries {
                p.push(*f);
                p.extend_from_slice(&(i & 0xff_ffff).to_be_bytes()[1..]);
                p.extend_from_slice(&v.to_be_bytes());
            }
            control(SETTINGS, *flags, &p)
        }
        Frame::Ping { id } => control(PING, 0, &id.to_be_bytes()),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            let mut p = id(*last_good_stream_id).to_vec();
            p.extend_from_slice(&status.to_be_bytes());
            control(GOAWAY, 0, &p)
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut p = id(*stream_id).to_vec();
            p.extend_from_slice(&id(*delta));
            control(WINDOW_UPDATE, 0, &p)
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() >= 1 << 24 {
                return Err(Error::Frame("payload exceeds 2^24-1 bytes".into()));
            }
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&id(*stream_id));
            out.push(*flags);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(data);
            Ok(out)
        }
        Frame::Unknown { kind } => Err(Error::Frame(format!("cannot send frame type {kind}"))),
    }
}

/// What the connection's reader hands a stream.
enum Event {
    Data(Bytes),
    Reset(u32),
}

/// The reader's view of an open stream.
struct Slot {
    reply: Option<oneshot::Sender<Headers>>,
    data: mpsc::Sender<Event>,
}

type Slots = Arc<Mutex<HashMap<u32, Slot>>>;

/// A client connection over an upgraded transport. Dropping it ends the connection.
pub struct Connection {
    out: mpsc::Sender<Frame>,
    slots: Slots,
    next_id: u32,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Starts the client side of a connection on `io` (the transport once the
    /// `Upgrade: SPDY/3.1` answer is in).
    pub fn client<T>(io: T) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out, rx) = mpsc::channel(WRITE_QUEUE);
        let slots: Slots = Arc::default();
        tokio::spawn(write_loop(wr, rx));
        let reader = tokio::spawn(read_loop(rd, slots.clone(), out.clone()));
        Connection {
            out,
            slots,
            next_id: 1,
            reader,
        }
    }

    /// Opens a stream with `headers` (SYN_STREAM); its SYN_REPLY is awaited with
    /// [`Stream::reply`].
    pub async fn open(&mut self, headers: Headers) -> Result<Stream, Error> {
        let id = self.next_id;
        if id > 0x7fff_ffff {
            return Err(Error::Frame("stream ids exhausted".into()));
        }
        self.next_id += 2;
        let (reply_tx, reply_rx) = oneshot::channel();
        let (data_tx, data_rx) = mpsc::channel(READ_QUEUE);
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Slot {
                reply: Some(reply_tx),
                data: data_tx,
            },
        );
        self.out
            .send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(Stream {
            writer: StreamWriter {
                id,
                out: self.out.clone(),
            },
            reader: StreamReader {
                rx: data_rx,
                reply: Some(reply_rx),
                id,
            },
        })
    }
}

async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Frame>) {
    tokio::pin!(wr);
    let mut enc = HeaderEncoder::new();
    while let Some(frame) = rx.recv().await {
        let mut batch = Some(frame);
        while let Some(f) = batch.take() {
            let bytes = match encode_frame(&f, &mut enc) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: dropping a frame");
                    continue;
                }
            };
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
            batch = rx.try_recv().ok();
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead>(rd: R, slots: Slots, out: mpsc::Sender<Frame>) {
    tokio::pin!(rd);
    let mut dec = HeaderDecoder::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let result: Result<(), Error> = async {
        loop {
            let parsed = parse_frame(&buf)?;
            let Some((raw, used)) = parsed else {
                if rd
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| Error::Io(e.to_string()))?
                    == 0
                {
                    return Ok(());
                }
                continue;
            };
            let frame = decode_frame(raw, &mut dec)?;
            buf.advance(used);
            dispatch(frame, &slots, &out).await;
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "spdy: connection ended");
    }
    // Every stream ends with the connection: readers see the end of their data.
    slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

async fn dispatch(frame: Frame, slots: &Slots, out: &mpsc::Sender<Frame>) {
    let lock = || slots.lock().unwrap_or_else(|p| p.into_inner());
    match frame {
        Frame::SynReply { stream_id, .. } => {
            if let Some(tx) = lock().get_mut(&stream_id).and_then(|s| s.reply.take()) {
                let _ = tx.send(Vec::new());
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            let tx = lock().get(&stream_id).map(|s| s.data.clone());
            if let Some(tx) = tx {
                if !data.is_empty() {
                    let _ = tx.send(Event::Data(data)).await;
                }
            }
            if flags & FLAG_FIN != 0 {
                lock().remove(&stream_id);
            }
        }
        Frame::RstStream { stream_id, status } => {
            let slot = lock().remove(&stream_id);
            if let Some(s) = slot {
                let _ = s.data.try_send(Event::Reset(status));
            }
        }
        Frame::SynStream { stream_id, .. } => {
            let _ = out
                .send(Frame::RstStream {
                    stream_id,
                    status: REFUSED_STREAM,
                })
                .await;
        }
        Frame::Ping { id } if id % 2 == 0 => {
            let _ = out.send(Frame::Ping { id }).await;
        }
        Frame::Headers {
            stream_id, flags, ..
        } if flags & FLAG_FIN != 0 => {
            lock().remove(&stream_id);
        }
        _ => {}
    }
}

/// A stream this client opened.
pub struct Stream {
    pub writer: StreamWriter,
    pub reader: StreamReader,
}

/// The sending half of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends `data` (in frames of at most 32 KiB).
    pub async fn write(&self, mut data: Bytes) -> Result<(), Error> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA_CHUNK));
            self.out
                .send(Frame::Data {
                    stream_id: self.id,
                    flags: 0,
                    data: chunk,
                })
                .await
                .map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    /// Half-closes the stream: an empty DATA frame with FIN.
    pub async fn close(&self) -> Result<(), Error> {
        self.out
            .send(Frame::Data {
                stream_id: self.id,
                flags: FLAG_FIN,
                data: Bytes::new(),
            })
            .await
            .map_err(|_| Error::Closed)
    }

    /// Resets the stream (RST_STREAM CANCEL).
    pub async fn reset(&self) -> Result<(), Error> {
        self.out
            .send(Frame::RstStream {
                stream_id: self.id,
                status: CANCEL,
            })
            .await
            .map_err(|_| Error::Closed)
    }
}

/// The receiving half of a stream.
pub struct StreamReader {
    id: u32,
    rx: mpsc::Receiver<Event>,
    reply: Option<oneshot::Receiver<Headers>>,
}

impl StreamReader {
    /// Waits (at most `timeout`) for the peer's SYN_REPLY.
    pub async fn reply(&mut self, timeout: Duration) -> Result<(), Error> {
        let Some(rx) = self.reply.take() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(_)) => Ok(()),
            // The stream or the connection ended before a reply.
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::ReplyTimeout(self.id)),
        }
    }

    /// The next data, `None` once the peer half-closed the stream or the connection
    /// ended.
    pub async fn read(&mut self) -> Result<Option<Bytes>, Error> {
        match self.rx.recv().await {
            Some(Event::Data(b)) => Ok(Some(b)),
            Some(Event::Reset(status)) => Err(Error::Reset(status)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(dictionary().len(), 1423);
        assert_eq!(&dictionary()[..11], b"\0\0\0\x07options");
        assert!(dictionary().ends_with(b",*,enq=0."));
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                flags: FLAG_UNIDIRECTIONAL,
                headers: h(&[("streamtype", "error"), ("port", "80")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: h(&[]),
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: h(&[("a", "1"), ("a", "2")]),
            },
            Frame::RstStream {
                stream_id: 5,
                status: CANCEL,
            },
            Frame::Settings {
                flags: 1,
                entries: vec![(0, 4, 100), (1, 7, 65536)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 7,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 20,
            },
            Frame::Data {
                stream_id: 9,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
        ];
        let (mut enc, mut dec) = (HeaderEncoder::new(), HeaderDecoder::new());
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(encode_frame(f, &mut enc).unwrap());
        }
        let mut got = Vec::new();
        let mut rest = &wire[..];
        while let Some((raw, used)) = parse_frame(rest).unwrap() {
            got.push(decode_frame(raw, &mut dec).unwrap());
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(got, frames);
    }

    #[test]
    fn header_blocks_share_one_zlib_stream_primed_with_the_dictionary() {
        let mut enc = HeaderEncoder::new();
        let block = enc.encode(&h(&[("streamtype", "stdout")])).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(block[0], 0x78);
        assert_ne!(block[1] & 0x20, 0, "FDICT");
        let adler = u32::from_be_bytes([block[2], block[3], block[4], block[5]]);
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for byte in dictionary() {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler, (b << 16) | a);
        // Words of the dictionary compress to back references: the block is small.
        let again = enc.encode(&h(&[("content-type", "text/plain")])).unwrap();
        assert!(again.len() < 20, "{}", again.len());
        // A fresh decoder cannot read the second block alone; in order, both decode.
        assert!(HeaderDecoder::new().decode(&again).is_err());
        let mut dec = HeaderDecoder::new();
        assert_eq!(dec.decode(&block).unwrap(), h(&[("streamtype", "stdout")]));
        assert_eq!(
            dec.decode(&again).unwrap(),
            h(&[("content-type", "text/plain")])
        );
    }

    #[test]
    fn values_split_at_nul() {
        let mut raw = 1u32.to_be_bytes().to_vec();
        raw.extend(4u32.to_be_bytes());
        raw.extend(b"vary");
        raw.extend(3u32.to_be_bytes());
        raw.extend(b"a\0b");
        assert_eq!(
            parse_header_block(&raw).unwrap(),
            h(&[("vary", "a"), ("vary", "b")])
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut dec = HeaderDecoder::new();
        // Wrong version.
        assert!(parse_frame(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]).is_err());
        // Incomplete: not yet a frame.
        assert_eq!(parse_frame(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0]).unwrap(), None);
        // A PING of 3 bytes, a RST_STREAM of 4, SETTINGS claiming more than it holds.
        for (kind, payload) in [
            (PING, vec![0u8; 3]),
            (RST_STREAM, vec![0; 4]),
            (SETTINGS, vec![0, 0, 0, 9, 0, 0, 0, 0]),
            (SYN_STREAM, vec![0; 9]),
            (SYN_REPLY, vec![0, 0, 0, 1, 1, 2, 3]),
        ] {
            let mut f = vec![0x80, 3, 0, kind as u8, 0, 0, 0, payload.len() as u8];
            f.extend(&payload);
            let (raw, _) = parse_frame(&f).unwrap().unwrap();
            assert!(decode_frame(raw, &mut dec).is_err(), "kind {kind}");
        }
        // A header block claiming more pairs or longer strings than it has.
        assert!(parse_header_block(&[0, 0, 0, 5, 0, 0, 0, 1]).is_err());
        assert!(parse_header_block(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(parse_header_block(&[]).is_err());
    }

    #[test]
    fn a_header_bomb_is_refused() {
        let mut enc = HeaderEncoder::new();
        let big = "x".repeat(MAX_HEADER_BLOCK * 2);
        let block = enc.encode(&h(&[("k", &big)])).unwrap();
        assert!(block.len() < MAX_HEADER_BLOCK / 8);
        let err = HeaderDecoder::new().decode(&block).unwrap_err();
        assert!(err.to_string().contains("inflates past"), "{err}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut dec = HeaderDecoder::new();
            let mut rest = &bytes[..];
            while let Ok(Some((raw, used))) = parse_frame(rest) {
                let _ = decode_frame(raw, &mut dec);
                rest = &rest[used..];
            }
            let _ = parse_header_block(&bytes);
            let _ = HeaderDecoder::new().decode(&bytes);
        }

        #[test]
        fn control_frames_with_arbitrary_payloads_never_panic(
            kind in 0u16..12, flags in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            let mut f = vec![0x80, 3];
            f.extend(kind.to_be_bytes());
            f.push(flags);
            f.extend(&(payload.len() as u32).to_be_bytes()[1..]);
            f.extend(&payload);
            let (raw, used) = parse_frame(&f).unwrap().unwrap();
            prop_assert_eq!(used, f.len());
            let _ = decode_frame(raw, &mut HeaderDecoder::new());
        }

        #[test]
        fn header_blocks_round_trip(pairs in proptest::collection::vec(("[a-z-]{1,12}", "[ -~]{0,40}"), 0..8)) {
            let headers: Headers = pairs;
            let (mut enc, mut dec) = (HeaderEncoder::new(), HeaderDecoder::new());
            for _ in 0..3 {
                let block = enc.encode(&headers).unwrap();
                prop_assert_eq!(dec.decode(&block).unwrap(), headers.clone());
            }
        }
    }

    /// A client stream against a scripted peer: SYN_REPLY, data, FIN, a PING answered.
    #[tokio::test]
    async fn client_streams_against_a_peer() {
        let (client_io, peer_io) = tokio::io::duplex(64 * 1024);
        let mut conn = Connection::client(client_io);
        let (mut prd, mut pwr) = tokio::io::split(peer_io);
        let mut s1 = conn.open(h(&[("streamtype", "error")])).await.unwrap();
        let mut s2 = conn.open(h(&[("streamtype", "stdin")])).await.unwrap();
        assert_eq!((s1.writer.id(), s2.writer.id()), (1, 3));
        s2.writer.write(Bytes::from_static(b"in")).await.unwrap();
        s2.writer.close().await.unwrap();

        // The peer reads what the client sent.
        let mut dec = HeaderDecoder::new();
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        while seen.len() < 4 {
            if let Some((raw, used)) = parse_frame(&buf).unwrap() {
                seen.push(decode_frame(raw, &mut dec).unwrap());
                buf.advance(used);
            } else {
                assert!(prd.read_buf(&mut buf).await.unwrap() > 0);
            }
        }
        assert!(
            matches!(&seen[0], Frame::SynStream { stream_id: 1, headers, .. } if headers == &h(&[("streamtype", "error")]))
        );
        assert!(matches!(&seen[1], Frame::SynStream { stream_id: 3, .. }));
        assert_eq!(
            seen[2],
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"in")
            }
        );
        assert_eq!(
            seen[3],
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new()
            }
        );

        // The peer answers: replies, data with FIN on 1, a reset of 3, a ping.
        let mut enc = HeaderEncoder::new();
        for f in [
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::SynReply {
                stream_id: 3,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"status"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: CANCEL,
            },
            Frame::Ping { id: 2 },
        ] {
            pwr.write_all(&encode_frame(&f, &mut enc).unwrap())
                .await
                .unwrap();
        }
        let t = Duration::from_secs(5);
        s1.reader.reply(t).await.unwrap();
        s2.reader.reply(t).await.unwrap();
        assert_eq!(
            s1.reader.read().await.unwrap(),
            Some(Bytes::from_static(b"status"))
        );
        assert_eq!(s1.reader.read().await.unwrap(), None);
        assert_eq!(s2.reader.read().await, Err(Error::Reset(CANCEL)));
        // The ping comes back.
        loop {
            if let Some((raw, used)) = parse_frame(&buf).unwrap() {
                let f = decode_frame(raw, &mut dec).unwrap();
                buf.advance(used);
                assert_eq!(f, Frame::Ping { id: 2 });
                break;
            }
            assert!(prd.read_buf(&mut buf).await.unwrap() > 0);
        }
        // A stream with no reply times out; the peer going away ends every stream.
        let mut s3 = conn.open(vec![]).await.unwrap();
        assert_eq!(
            s3.reader.reply(Duration::from_millis(10)).await,
            Err(Error::ReplyTimeout(5))
        );
        drop(pwr);
        drop(prd);
        assert_eq!(s3.reader.read().await.unwrap(), None);
    }
}
