//! TLS load for the benchmarks: new connections per second (full handshakes, or
//! resumed from tickets/session ids) and requests per second over kept-alive TLS at a
//! pipeline depth. Blocking rustls clients on threads; every client offers only
//! TLS13_AES_128_GCM_SHA256 and X25519, so every server negotiates the same suite.
//!
//! ```text
//! taskset -c 1 tls-load --addr 127.0.0.1:8443 --ca cert.pem --mode full --threads 4 --secs 5
//! taskset -c 1 tls-load --addr 127.0.0.1:8443 --ca cert.pem --mode requests --conns 16 --depth 16
//! ```
//!
//! Prints one JSON object: mode, ops (handshakes or responses), seconds, ops/s, and
//! for the handshake modes how many were resumed.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ringcore::tls::rustls;
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Mode {
    /// New connection, full handshake, one request, close_notify + close.
    Full,
    /// The same with session resumption (tickets / session ids).
    Resumed,
    /// Kept-alive connections, `--depth` requests in flight each.
    Requests,
}

/// TLS load generator.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    #[arg(long)]
    addr: SocketAddr,
    /// CA (or the self-signed certificate) to verify the server with.
    #[arg(long)]
    ca: PathBuf,
    #[arg(long, default_value = "localhost")]
    sni: String,
    #[arg(long, value_enum, default_value = "full")]
    mode: Mode,
    /// Client threads for the handshake modes.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Connections (one thread each) for `requests`.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Pipeline depth for `requests`.
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Measured seconds (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    secs: u64,
}

const REQ: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
const BODY: &[u8] = b"Hello, World!";

fn config(args: &Args) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
        .kx_groups
        .retain(|g| g.name() == rustls::NamedGroup::X25519);
    let mut roots = rustls::RootCertStore::empty();
    for c in ringcore::tls::load_certs(&args.ca)? {
        roots.add(c)?;
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    if args.mode == Mode::Full {
        c.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(c))
}

type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn open(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    sni: &ServerName<'static>,
) -> anyhow::Result<Stream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ClientConnection::new(cfg.clone(), sni.clone())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Reads until `n` response bodies were seen; `tail` carries a partial match over.
fn read_responses(
    s: &mut Stream,
    mut n: usize,
    buf: &mut [u8],
    tail: &mut Vec<u8>,
) -> anyhow::Result<()> {
    while n > 0 {
        let k = s.read(buf)?;
        anyhow::ensure!(k > 0, "server closed the connection");
        tail.extend_from_slice(&buf[..k]);
        let mut from = 0;
        while let Some(p) = tail[from..].windows(BODY.len()).position(|w| w == BODY) {
            n = n.saturating_sub(1);
            from += p + BODY.len();
        }
        let keep = tail.len().saturating_sub(BODY.len() - 1).max(from);
        tail.drain(..keep);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = config(&args)?;
    let sni = ServerName::try_from(args.sni.clone()).context("--sni")?;
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let workers = if args.mode == Mode::Requests {
        args.conns
    } else {
        args.threads
    };
    let mut joins = Vec::new();
    for _ in 0..workers {
        let (cfg, sni, counting, stop, ops, resumed, errors) = (
            cfg.clone(),
            sni.clone(),
            counting.clone(),
            stop.clone(),
            ops.clone(),
            resumed.clone(),
            errors.clone(),
        );
        let (addr, mode, depth) = (args.addr, args.mode, args.depth);
        joins.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut tail = Vec::new();
            let mut reqs = Vec::new();
            for _ in 0..depth {
                reqs.extend_from_slice(REQ);
            }
            let mut kept: Option<Stream> = None;
            while !stop.load(Relaxed) {
                let r: anyhow::Result<()> = (|| {
                    if mode == Mode::Requests {
                        if kept.is_none() {
                            kept = Some(open(addr, &cfg, &sni)?);
                        }
                        let s = kept.as_mut().expect("opened");
                        s.write_all(&reqs)?;
                        read_responses(s, depth, &mut buf, &mut tail)?;
                        if counting.load(Relaxed) {
                            ops.fetch_add(depth as u64, Relaxed);
                        }
                        return Ok(());
                    }
                    let mut s = open(addr, &cfg, &sni)?;
                    let was_resumed =
                        s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                    s.write_all(REQ)?;
                    tail.clear();
                    read_responses(&mut s, 1, &mut buf, &mut tail)?;
                    s.conn.send_close_notify();
                    let _ = s.flush();
                    if counting.load(Relaxed) {
                        ops.fetch_add(1, Relaxed);
                        resumed.fetch_add(was_resumed as u64, Relaxed);
                    }
                    Ok(())
                })();
                if let Err(e) = r {
                    if errors.fetch_add(1, Relaxed) == 0 {
                        eprintln!("tls-load: {e:#}");
                    }
                    kept = None;
                    tail.clear();
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    counting.store(true, Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.secs));
    counting.store(false, Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    for j in joins {
        let _ = j.join();
    }
    let n = ops.load(Relaxed);
    println!(
        "{{\"mode\":\"{:?}\",\"depth\":{},\"ops\":{},\"secs\":{:.3},\"ops_per_sec\":{:.1},\"resumed\":{},\"errors\":{}}}",
        args.mode,
        args.depth,
        n,
        secs,
        n as f64 / secs,
        resumed.load(Relaxed),
        errors.load(Relaxed)
    );
    Ok(())
}
