//! `bench spdy`: the API server's SPDY/3.1 client on the exec/attach data path
//! (WebSocket v5 translated to SPDY; `kubectl cp` is an exec streaming a tar). Over an
//! in-memory transport, times a stream's data from the peer to the client (stdout) and
//! from the client to the peer (stdin), and the cost of one header block (compress and
//! inflate with the SPDY/3 dictionary).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::{Buf, Bytes, BytesMut};
use rkube_apiserver::spdy::{
    decode_frame, encode_frame, parse_frame, Connection, Frame, HeaderDecoder, HeaderEncoder,
    FLAG_FIN,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stats::{ms, Summary};

#[derive(clap::Args, Debug)]
pub struct SpdyArgs {
    /// MiB moved each way.
    #[arg(long, default_value_t = 256)]
    mib: usize,
    /// Size of the peer's DATA frames, KiB.
    #[arg(long, default_value_t = 32)]
    frame_kib: usize,
    /// Header blocks to time.
    #[arg(long, default_value_t = 20_000)]
    blocks: usize,
    /// Where to write the JSON results.
    #[arg(long, default_value = "results/spdy.json")]
    out: PathBuf,
}

/// Reads and decodes frames from `rd` until `f` says stop.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    dec: &mut HeaderDecoder,
    mut f: impl FnMut(Frame) -> bool,
) -> Result<()> {
    loop {
        while let Some((raw, used)) = parse_frame(buf)? {
            let frame = decode_frame(raw, dec)?;
            buf.advance(used);
            if !f(frame) {
                return Ok(());
            }
        }
        if rd.read_buf(buf).await? == 0 {
            bail!("the client closed early");
        }
    }
}

/// Peer → client: `total` bytes in DATA frames of `frame` bytes on one stream.
async fn downstream(total: usize, frame: usize) -> Result<Duration> {
    let (client_io, peer_io) = tokio::io::duplex(256 * 1024);
    let mut conn = Connection::client(client_io);
    let (mut prd, mut pwr) = tokio::io::split(peer_io);
    let mut stream = conn
        .open(vec![("streamtype".into(), "stdout".into())])
        .await?;
    let (mut buf, mut dec) = (BytesMut::new(), HeaderDecoder::new());
    let mut id = 0;
    read_frames(&mut prd, &mut buf, &mut dec, |f| {
        if let Frame::SynStream { stream_id, .. } = f {
            id = stream_id;
        }
        false
    })
    .await?;
    let mut enc = HeaderEncoder::new();
    let chunk = encode_frame(
        &Frame::Data {
            stream_id: id,
            flags: 0,
            data: Bytes::from(vec![7u8; frame]),
        },
        &mut enc,
    )?;
    let fin = encode_frame(
        &Frame::Data {
            stream_id: id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        },
        &mut enc,
    )?;
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..total / frame {
            pwr.write_all(&chunk).await?;
        }
        pwr.write_all(&fin).await?;
        anyhow::Ok(pwr)
    });
    let mut got = 0;
    while let Some(b) = stream.reader.read().await? {
        got += b.len();
    }
    let elapsed = started.elapsed();
    let _keep = writer.await??;
    if got != total / frame * frame {
        bail!("received {got} bytes of {total}");
    }
    Ok(elapsed)
}

/// Client → peer: `total` bytes written in 1 MiB pieces, split into frames by the
/// client, then FIN.
async fn upstream(total: usize) -> Result<Duration> {
    let (client_io, peer_io) = tokio::io::duplex(256 * 1024);
    let mut conn = Connection::client(client_io);
    let (mut prd, _pwr) = tokio::io::split(peer_io);
    let stream = conn
        .open(vec![("streamtype".into(), "stdin".into())])
        .await?;
    let piece = Bytes::from(vec![9u8; 1 << 20]);
    let started = Instant::now();
    let writer = stream.writer.clone();
    let pieces = total >> 20;
    let sending = tokio::spawn(async move {
        for _ in 0..pieces {
            writer.write(piece.clone()).await?;
        }
        writer.close().await?;
        anyhow::Ok(())
    });
    let (mut buf, mut dec) = (BytesMut::new(), HeaderDecoder::new());
    let mut got = 0;
    read_frames(&mut prd, &mut buf, &mut dec, |f| match f {
        Frame::Data { data, flags, .. } => {
            got += data.len();
            flags & FLAG_FIN == 0
        }
        _ => true,
    })
    .await?;
    let elapsed = started.elapsed();
    sending.await??;
    if got != pieces << 20 {
        bail!("received {got} bytes of {total}");
    }
    Ok(elapsed)
}

/// One header block (a SYN_STREAM's) compressed then inflated, per block.
fn header_blocks(count: usize) -> Result<Summary> {
    let headers = vec![
        ("streamtype".to_owned(), "stdout".to_owned()),
        ("port".to_owned(), "8080".to_owned()),
        ("requestid".to_owned(), "12".to_owned()),
    ];
    let (mut enc, mut dec) = (HeaderEncoder::new(), HeaderDecoder::new());
    let mut samples = Vec::with_capacity(count / 100 + 1);
    for _ in 0..count.div_ceil(100) {
        let t = Instant::now();
        for _ in 0..100 {
            let block = enc.encode(std::hint::black_box(&headers))?;
            std::hint::black_box(dec.decode(&block)?);
        }
        samples.push(t.elapsed() / 100);
    }
    Ok(Summary::of(samples))
}

pub async fn run(args: SpdyArgs) -> Result<()> {
    let total = args.mib << 20;
    let frame = args.frame_kib.max(1) << 10;
    let mib_s = |d: Duration| args.mib as f64 / d.as_secs_f64();
    let down = downstream(total, frame).await?;
    let up = upstream(total).await?;
    let blocks = header_blocks(args.blocks)?;
    println!("{:<34} {:>10} {:>10}", "case", "ms", "MiB/s");
    println!(
        "{:<34} {:>10.1} {:>10.0}",
        format!("peer -> client ({} KiB frames)", args.frame_kib),
        ms(down),
        mib_s(down)
    );
    println!(
        "{:<34} {:>10.1} {:>10.0}",
        "client -> peer",
        ms(up),
        mib_s(up)
    );
    println!(
        "header block compress+inflate: p50 {} ns, p99 {} ns",
        blocks.p50.as_nanos(),
        blocks.p99.as_nanos()
    );
    let doc = json!({
        "benchmark": "spdy",
        "mib": args.mib,
        "frame_kib": args.frame_kib,
        "down_mib_per_sec": mib_s(down),
        "up_mib_per_sec": mib_s(up),
        "header_block_p50_ns": blocks.p50.as_nanos() as u64,
        "header_block_p99_ns": blocks.p99.as_nanos() as u64,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}
