//! Fault-injection soak (issue 8, ARCHITECTURE.md decision 16): echo, HTTP, proxy
//! (`pipe_to`) and file-server (`StaticFiles`, splice) workloads under seeded random
//! faults at the backend seam (short sends, `EAGAIN`, `ENOBUFS`, `EMFILE`, delayed and
//! reordered completions, stale duplicates, late direct-close failures, tiny rings),
//! on both backends, seed after seed. Each seed asserts: every byte arrives once and in order (compared in full,
//! hashes in messages), no slot leak (`open_conns` back to 0, and `direct_in_use` with
//! direct descriptors), the process's fds back to what they were, no handler panic, and
//! `serve` returns within its drain deadline.
//!
//! The io_uring runs cycle through the three splice modes (`Inline`, the default,
//! `InlineDrain`, `Ring`; see `soak::splice_mode`). A UDP echo (`serve_udp`, or beside
//! a TCP echo with `serve_with_udp` on odd seeds) and a TLS workload (the rustls layer
//! over echo) run last in every seed.
//!
//! A failure prints its seed and the line that replays it; see tests/support/soak.rs
//! for `RINGCORE_SOAK_SEED`, `RINGCORE_SOAK_SEEDS`, `RINGCORE_SOAK_KEEP_GOING`.

#[path = "support/soak.rs"]
mod soak;
mod support;

use ringcore::http::{HttpConn, Limits, Request, Response, Router, StaticFiles};
use ringcore::net::udp::payload_capacity;
use ringcore::tls::{rustls, TlsAcceptor};
use ringcore::{
    BackendKind, ConnInfo, DatagramHandler, Datagrams, Listeners, ServeUdp, SocketOptions,
    UdpOptions, UdpSockets,
};
use soak::hash;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use support::client::{connect, echo_check, read_to_eof, shutdown_write, Rng};
use support::http::{get, HttpClient, Resp};

/// Drain deadline of every soak server.
const DRAIN: Duration = Duration::from_secs(3);

fn check_body(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    Err(format!(
        "{what}: {} bytes (hash {:x}), expected {} (hash {:x})",
        got.len(),
        hash(got),
        want.len(),
        hash(want)
    ))
}

fn no_panics(what: &str, c: &ringcore::Counters) -> Result<(), String> {
    if c.panics == 0 {
        Ok(())
    } else {
        Err(format!("{what}: {} handler panics", c.panics))
    }
}

/// Echo clients, then a half-close: the echo must be byte-exact and nothing may follow.
fn echo(backend: BackendKind, seed: u64, rng: &mut Rng) -> Result<(), String> {
    let srv = soak::start(backend, seed, DRAIN, soak::echo_factory(seed));
    let addr = srv.addr;
    let clients: Vec<(Vec<u8>, usize)> = (0..rng.range(1, 3))
        .map(|_| {
            let n = rng.range(1, 48 << 10);
            (rng.bytes(n), rng.range(1, 16 << 10))
        })
        .collect();
    run_echo_clients(addr, &clients);
    srv.wait_idle("echo connections closed")?;
    let c = srv.stop()?;
    count_fast(backend, &c);
    no_panics("echo", &c)
}

fn run_echo_clients(addr: SocketAddr, clients: &[(Vec<u8>, usize)]) {
    std::thread::scope(|sc| {
        for (payload, piece) in clients {
            sc.spawn(move || {
                let mut s = connect(addr);
                echo_check(&mut s, payload, *piece);
                shutdown_write(&s);
                match read_to_eof(&mut s) {
                    Ok(rest) => assert!(
                        rest.is_empty(),
                        "{} bytes after the echo (hash {:x})",
                        rest.len(),
                        hash(&rest)
                    ),
                    Err((_, e)) => panic!("reading to EOF after the echo: {e}"),
                }
            });
        }
    });
}

const HELLO: &[u8] = b"Hello, World!";

fn router() -> Router {
    Router::new()
        .get("/plaintext", |_: &Request<'_>, res: &mut Response| {
            res.set_content_type("text/plain").set_body(HELLO);
        })
        .post("/echo", |req: &Request<'_>, res: &mut Response| {
            res.set_content_type("application/octet-stream")
                .set_body(req.body());
        })
}

/// Writes `bytes` in random pieces on a clone of the client's socket while the caller
/// reads responses.
fn write_pieces(c: &HttpClient, bytes: Vec<u8>, rng: &mut Rng) -> std::thread::JoinHandle<()> {
    let mut w = c.s.try_clone().expect("clone stream");
    let cuts: Vec<usize> = (0..8).map(|_| rng.range(1, 4096)).collect();
    std::thread::spawn(move || {
        let mut off = 0;
        let mut i = 0;
        while off < bytes.len() {
            let n = cuts[i % cuts.len()].min(bytes.len() - off);
            w.write_all(&bytes[off..off + n]).expect("write requests");
            off += n;
            i += 1;
        }
    })
}

/// Pipelined GET /plaintext and POST /echo requests split at random points; the last
/// one sometimes asks to close.
fn http(backend: BackendKind, seed: u64, rng: &mut Rng) -> Result<(), String> {
    let srv = soak::start(
        backend,
        seed,
        DRAIN,
        HttpConn::factory(router(), Limits::default()),
    );
    let mut c = HttpClient::connect(srv.addr);
    let n = rng.range(1, 6);
    let close = rng.range(0, 1) == 1;
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let extra = if close && i == n - 1 {
            "Connection: close\r\n"
        } else {
            ""
        };
        if rng.range(0, 1) == 0 {
            stream.extend_from_slice(&get("GET", "/plaintext", extra));
            want.push(HELLO.to_vec());
        } else {
            let len = rng.range(0, 20_000);
            let body = rng.bytes(len);
            stream.extend_from_slice(
                format!(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n{extra}\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            stream.extend_from_slice(&body);
            want.push(body);
        }
    }
    let writer = write_pieces(&c, stream, rng);
    for (i, body) in want.iter().enumerate() {
        let r: Resp = c
            .try_read_response(false)
            .map_err(|e| format!("http response {i}/{n}: {e}"))?;
        if r.status != 200 {
            return Err(format!("http response {i}/{n}: status {}", r.status));
        }
        check_body(&format!("http response {i}/{n}"), &r.body, body)?;
    }
    writer.join().map_err(|_| "request writer panicked")?;
    if close {
        c.expect_closed();
    }
    drop(c);
    srv.wait_idle("http connections closed")?;
    let counters = srv.stop()?;
    count_fast(backend, &counters);
    no_panics("http", &counters)
}

/// Echo through a splice tunnel, both servers under faults.
fn proxy(backend: BackendKind, seed: u64, rng: &mut Rng) -> Result<(), String> {
    let echo = soak::start(backend, seed ^ 0xECC0, DRAIN, soak::echo_factory(seed));
    let upstream = echo.addr;
    let proxy = soak::start(backend, seed, DRAIN, move |_: &ConnInfo| soak::Proxy {
        upstream,
    });
    let clients: Vec<(Vec<u8>, usize)> = (0..rng.range(1, 2))
        .map(|_| {
            let n = rng.range(1, 64 << 10);
            (rng.bytes(n), rng.range(1, 16 << 10))
        })
        .collect();
    run_echo_clients(proxy.addr, &clients);
    proxy.wait_idle("proxy connections closed")?;
    echo.wait_idle("upstream connections closed")?;
    let p = proxy.stop()?;
    let e = echo.stop()?;
    count_splices(backend, seed, &p);
    count_fast(backend, &p);
    count_fast(backend, &e);
    no_panics("proxy", &p)?;
    no_panics("proxy upstream", &e)
}

/// Pipelined GETs of whole files and single ranges.
fn files(backend: BackendKind, seed: u64, rng: &mut Rng, tree: &soak::Tree) -> Result<(), String> {
    let factory = StaticFiles::factory(&tree.root, Limits::default())
        .map_err(|e| format!("StaticFiles::factory: {e}"))?;
    let srv = soak::start(backend, seed, DRAIN, factory);
    let mut c = HttpClient::connect(srv.addr);
    let n = rng.range(1, 4);
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for _ in 0..n {
        let (name, data) = &tree.files[rng.range(0, tree.files.len() - 1)];
        if rng.range(0, 2) == 0 && data.len() > 1 {
            let a = rng.range(0, data.len() - 1);
            let b = rng.range(a, data.len() - 1);
            stream.extend_from_slice(&get(
                "GET",
                &format!("/{name}"),
                &format!("Range: bytes={a}-{b}\r\n"),
            ));
            want.push((206, data[a..=b].to_vec()));
        } else {
            stream.extend_from_slice(&get("GET", &format!("/{name}"), ""));
            want.push((200, data.clone()));
        }
    }
    let writer = write_pieces(&c, stream, rng);
    for (i, (status, body)) in want.iter().enumerate() {
        let r = c
            .try_read_response(false)
            .map_err(|e| format!("file response {i}/{n}: {e}"))?;
        if r.status != *status {
            return Err(format!(
                "file response {i}/{n}: status {}, expected {status}",
                r.status
            ));
        }
        check_body(&format!("file response {i}/{n}"), &r.body, body)?;
    }
    writer.join().map_err(|_| "request writer panicked")?;
    drop(c);
    srv.wait_idle("file connections closed")?;
    let counters = srv.stop()?;
    count_splices(backend, seed, &counters);
    count_fast(backend, &counters);
    no_panics("files", &counters)
}

/// Splices run inline on io_uring, by the seed's splice mode (`[Inline, InlineDrain,
/// Ring]`), summed over the run: proof that the inline paths ran under faults.
static INLINE_SPLICES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn count_splices(backend: BackendKind, seed: u64, c: &ringcore::Counters) {
    if backend == BackendKind::Uring {
        let i = match soak::splice_mode(seed) {
            ringcore::runtime::SpliceMode::Inline => 0,
            ringcore::runtime::SpliceMode::InlineDrain => 1,
            _ => 2,
        };
        INLINE_SPLICES[i].fetch_add(c.inline_splices, Relaxed);
    }
}

/// Over the io_uring runs: receive bundles, `SEND_ZC` sends, held receive buffers and
/// hold fallbacks (copies past `recv_hold_limit`): proof the fast paths ran under faults.
static FAST: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Over the io_uring runs: connections that got a direct-descriptor slot (the seeds of
/// `soak::soak_builder` with direct descriptors), where direct closes can fail late.
static DIRECT_CONNS: AtomicU64 = AtomicU64::new(0);

fn count_fast(backend: BackendKind, c: &ringcore::Counters) {
    if backend == BackendKind::Uring {
        DIRECT_CONNS.fetch_add(c.direct_conns, Relaxed);
        for (i, n) in [
            c.recv_bundles,
            c.send_zc,
            c.recv_holds,
            c.recv_hold_fallbacks,
        ]
        .into_iter()
        .enumerate()
        {
            FAST[i].fetch_add(n, Relaxed);
        }
    }
}

/// A TLS server's acceptor and a client configuration that trusts it.
struct Tls {
    acceptor: TlsAcceptor,
    client: Arc<rustls::ClientConfig>,
    _pki: support::tls::Pki,
}

impl Tls {
    fn new() -> Tls {
        let mut pki = support::tls::Pki::new();
        let leaf = pki.leaf(&["localhost"], false);
        let acceptor = TlsAcceptor::from_pem_files(&leaf.cert, &leaf.key).expect("acceptor");
        let client = pki.client_config(&[&rustls::version::TLS13, &rustls::version::TLS12], &[]);
        Tls {
            acceptor,
            client,
            _pki: pki,
        }
    }
}

/// Echo over TLS (the rustls layer wrapping the echo handler), 1-2 clients: the echo
/// must be byte-exact; then the client's close_notify and FIN, and the server must
/// end the stream with nothing more.
fn tls_echo(backend: BackendKind, seed: u64, rng: &mut Rng, tls: &Tls) -> Result<(), String> {
    let srv = soak::start(
        backend,
        seed,
        DRAIN,
        tls.acceptor.wrap(support::echo_factory),
    );
    let addr = srv.addr;
    let clients: Vec<Vec<u8>> = (0..rng.range(1, 2))
        .map(|_| {
            let n = rng.range(1, 48 << 10);
            rng.bytes(n)
        })
        .collect();
    std::thread::scope(|sc| {
        for payload in &clients {
            let config = tls.client.clone();
            sc.spawn(move || {
                let mut s = support::tls::tls_connect(addr, config, "localhost");
                support::tls::echo_check(&mut s, payload);
                s.conn.send_close_notify();
                s.flush().expect("send close_notify");
                shutdown_write(&s.sock);
                let mut rest = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match support::tls::read_some(&mut s, &mut buf) {
                        Ok(0) => break,
                        Ok(n) => rest.extend_from_slice(&buf[..n]),
                        // The server closed without its own close_notify.
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                        Err(e) => panic!("reading to the end after the TLS echo: {e}"),
                    }
                }
                assert!(
                    rest.is_empty(),
                    "{} bytes after the TLS echo (hash {:x})",
                    rest.len(),
                    hash(&rest)
                );
            });
        }
    });
    srv.wait_idle("TLS connections closed")?;
    let c = srv.stop()?;
    no_panics("tls", &c)
}

/// Replies with every datagram it gets (the udp-echo example's handler).
struct UdpEcho;

impl DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        ctx.send_to(peer, bytes);
    }
}

/// Datagrams one UDP client sends: a few larger than a receive buffer holds.
fn udp_payloads(rng: &mut Rng, cap: usize) -> Vec<Vec<u8>> {
    (0..rng.range(1, 120))
        .map(|_| {
            let n = match rng.range(0, 19) {
                0 => 0,
                1 => rng.range(cap + 1, cap + 300),
                _ => rng.range(1, cap.min(1400)),
            };
            rng.bytes(n)
        })
        .collect()
}

/// One UDP client: sends `payloads` with at most 8 echoes outstanding and returns the
/// echoes it got (a datagram over `cap` is truncated by the server and not echoed).
fn udp_client(
    server: SocketAddr,
    payloads: &[Vec<u8>],
    cap: usize,
) -> Result<(UdpSocket, Vec<Vec<u8>>), String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind a UDP client: {e}"))?;
    s.set_read_timeout(Some(soak::idle_deadline()))
        .map_err(|e| format!("read timeout: {e}"))?;
    let mut got = Vec::new();
    let mut outstanding = 0;
    let mut buf = vec![0u8; 65536];
    let mut recv_one = |got: &mut Vec<Vec<u8>>| -> Result<(), String> {
        let (n, from) = loop {
            match s.recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        }
        .map_err(|e| format!("no echo within {:?}: {e}", soak::idle_deadline()))?;
        if from != server {
            return Err(format!("a datagram from {from}, not the server {server}"));
        }
        got.push(buf[..n].to_vec());
        Ok(())
    };
    for p in payloads {
        s.send_to(p, server)
            .map_err(|e| format!("send {} bytes: {e}", p.len()))?;
        if p.len() <= cap {
            outstanding += 1;
        }
        while outstanding >= 8 {
            recv_one(&mut got)?;
            outstanding -= 1;
        }
    }
    while outstanding > 0 {
        recv_one(&mut got)?;
        outstanding -= 1;
    }
    Ok((s, got))
}

/// UDP echo under faults: 1-3 clients, each up to 120 datagrams (empty ones, and a few
/// too large for a receive buffer), 8 outstanding at most; odd seeds serve UDP beside a
/// TCP echo in the same worker (`serve_with_udp`) with a TCP client at the same time.
/// Every datagram a buffer holds comes back once and byte-exact, nothing else comes
/// back, and the counters add up: in = out, truncated = the oversized ones, nothing
/// dropped, no error, no kernel drop.
fn udp(backend: BackendKind, seed: u64, rng: &mut Rng) -> Result<(), String> {
    let sockets = UdpSockets::bind("127.0.0.1:0", 1, &UdpOptions::default())
        .map_err(|e| format!("bind the UDP socket: {e}"))?;
    let uaddr = sockets.local_addr();
    let beside_tcp = seed % 2 == 1;
    // Incremental buffers are not for UDP services (docs: a datagram may not fit the
    // rest of a partly consumed buffer).
    let builder = soak::soak_builder(backend, seed, DRAIN).buf_inc(false);
    let srv = if beside_tcp {
        let listeners = Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default())
            .map_err(|e| format!("bind the TCP listener: {e}"))?;
        let taddr = listeners.local_addr();
        soak::start_with(backend, builder, seed, taddr, move |rt| {
            rt.serve_with_udp(listeners, soak::echo_factory(seed), sockets, |_| UdpEcho)
        })
    } else {
        soak::start_with(backend, builder, seed, uaddr, move |rt| {
            rt.serve_udp(sockets, |_| UdpEcho)
        })
    };
    let cap = payload_capacity(srv.buf_size);
    let clients: Vec<Vec<Vec<u8>>> = (0..rng.range(1, 3))
        .map(|_| udp_payloads(rng, cap))
        .collect();
    let tcp: Option<(Vec<u8>, usize)> = beside_tcp.then(|| {
        let n = rng.range(1, 32 << 10);
        (rng.bytes(n), rng.range(1, 8 << 10))
    });
    let results = std::thread::scope(|sc| {
        if let Some(t) = &tcp {
            let taddr = srv.addr;
            sc.spawn(move || run_echo_clients(taddr, std::slice::from_ref(t)));
        }
        let hs: Vec<_> = clients
            .iter()
            .map(|p| sc.spawn(move || udp_client(uaddr, p, cap)))
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("UDP client panicked".into()))
            })
            .collect::<Vec<_>>()
    });
    if beside_tcp {
        srv.wait_idle("TCP connections beside UDP closed")?;
    }
    // An oversized datagram gets no echo, so the clients may be done before the server
    // received the last ones: wait for them all (drain stops receiving).
    let sent: u64 = clients.iter().map(|p| p.len() as u64).sum();
    let end = std::time::Instant::now() + soak::idle_deadline();
    loop {
        let c = srv.counters();
        if c.datagrams_in + c.datagrams_truncated >= sent {
            break;
        }
        if std::time::Instant::now() > end {
            return Err(format!(
                "{sent} datagrams sent, the server received {} and truncated {} within {:?}",
                c.datagrams_in,
                c.datagrams_truncated,
                soak::idle_deadline()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let c = srv.stop()?;
    let (mut want_in, mut want_trunc) = (0u64, 0u64);
    for (i, (r, payloads)) in results.into_iter().zip(&clients).enumerate() {
        let (sock, mut got) = r.map_err(|e| format!("UDP client {i}: {e}"))?;
        // Nothing more may come: every send completed before serve returned.
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 65536];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return Err(format!(
                "UDP client {i}: an extra datagram of {n} bytes (hash {:x})",
                hash(&buf[..n])
            ));
        }
        let mut want: Vec<Vec<u8>> = payloads
            .iter()
            .filter(|p| p.len() <= cap)
            .cloned()
            .collect();
        want_in += want.len() as u64;
        want_trunc += (payloads.len() - want.len()) as u64;
        want.sort();
        got.sort();
        if got != want {
            return Err(format!(
                "UDP client {i}: {} echoes (hash {:x}), expected {} (hash {:x})",
                got.len(),
                hash(&got.concat()),
                want.len(),
                hash(&want.concat())
            ));
        }
    }
    let seen = (
        c.datagrams_in,
        c.datagrams_out,
        c.datagrams_truncated,
        c.datagrams_dropped,
        c.datagram_errors,
        c.datagrams_kernel_dropped,
    );
    if seen != (want_in, want_in, want_trunc, 0, 0, 0) {
        return Err(format!(
            "UDP counters (in, out, truncated, dropped, errors, kernel dropped) {seen:?}, \
             expected {:?}",
            (want_in, want_in, want_trunc, 0, 0, 0)
        ));
    }
    UDP_FAULTS[0].fetch_add(c.enobufs, Relaxed);
    UDP_FAULTS[1].fetch_add(c.stale, Relaxed);
    no_panics("udp", &c)
}

/// Over the UDP runs: receives ended by `ENOBUFS` (real, injected or cut) and stale
/// duplicates dropped; proof that the faults reached the datagram service.
static UDP_FAULTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// One seed on one backend: every workload in turn.
fn run_seed(backend: BackendKind, seed: u64, tree: &soak::Tree, tls: &Tls) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    echo(backend, seed, &mut rng).map_err(|e| format!("echo: {e}"))?;
    http(backend, seed, &mut rng).map_err(|e| format!("http: {e}"))?;
    proxy(backend, seed, &mut rng).map_err(|e| format!("proxy: {e}"))?;
    files(backend, seed, &mut rng, tree).map_err(|e| format!("files: {e}"))?;
    udp(backend, seed, &mut rng).map_err(|e| format!("udp: {e}"))?;
    tls_echo(backend, seed, &mut rng, tls).map_err(|e| format!("tls: {e}"))
}

#[test]
fn soak_under_faults() {
    let _alone = soak::exclusive();
    let tree = soak::Tree::new();
    let tls = Tls::new();
    let closes_failed_before = ringcore_runtime::fault::stats().direct_close_fails;
    soak::run_seeds("soak", |backend, seed| run_seed(backend, seed, &tree, &tls));
    let seeds = soak::seeds();
    if seeds.len() >= 50 && std::env::var("RINGCORE_SOAK_ONLY").is_err() {
        let conns = DIRECT_CONNS.load(Relaxed);
        let failed = ringcore_runtime::fault::stats().direct_close_fails - closes_failed_before;
        eprintln!(
            "soak: io_uring direct-descriptor connections: {conns}, failed direct closes: {failed}"
        );
        assert!(
            conns == 0 || failed > 0,
            "direct descriptors ran, but no direct close failed"
        );
    }
    if seeds.len() >= 50 && std::env::var("RINGCORE_SOAK_ONLY").is_err() {
        let (enobufs, stale) = (UDP_FAULTS[0].load(Relaxed), UDP_FAULTS[1].load(Relaxed));
        eprintln!(
            "soak: UDP receives ended by ENOBUFS: {enobufs}, stale duplicates dropped: {stale}"
        );
        assert!(
            enobufs > 0 && stale > 0,
            "faults did not reach the UDP service"
        );
    }
    if support::backends().contains(&BackendKind::Uring) && seeds.len() >= 36 {
        let n: Vec<u64> = FAST.iter().map(|a| a.load(Relaxed)).collect();
        eprintln!(
            "soak: io_uring fast paths: {} receive bundles, {} SEND_ZC, {} held buffers, {} hold fallbacks",
            n[0], n[1], n[2], n[3]
        );
        assert!(
            n.iter().all(|&x| x > 0),
            "a fast path never ran in {} seeds: {n:?}",
            seeds.len()
        );
    }
    let covers = |mode| seeds.iter().any(|&s| soak::splice_mode(s) == mode);
    if support::backends().contains(&BackendKind::Uring) && seeds.len() >= 9 {
        use ringcore::runtime::SpliceMode::{Inline, InlineDrain};
        let n = |i: usize| INLINE_SPLICES[i].load(Relaxed);
        eprintln!(
            "soak: io_uring inline splices: {} (Inline seeds), {} (InlineDrain), {} (Ring)",
            n(0),
            n(1),
            n(2)
        );
        assert!(
            !covers(Inline) || n(0) > 0,
            "no inline splice in the Inline seeds"
        );
        assert!(
            !covers(InlineDrain) || n(1) > 0,
            "no inline splice in the InlineDrain seeds"
        );
        assert_eq!(n(2), 0, "inline splices in the Ring seeds");
    }
}

/// Stale duplicates of the UDP socket's completions (the injector's copies under an
/// earlier generation, as a late completion of a reused slot would come) are dropped
/// and counted in `stale`: no send slot is freed twice, the receive is not
/// "ended" twice, and `serve_udp` returns after shutdown. Before the fix every seed
/// with stale duplicates hung in shutdown.
#[test]
fn udp_drops_stale_duplicates() {
    let _alone = soak::exclusive();
    support::for_each_backend(|backend| {
        let sockets = UdpSockets::bind("127.0.0.1:0", 1, &UdpOptions::default()).expect("bind");
        let addr = sockets.local_addr();
        let mut rates = ringcore_runtime::fault::FaultRates::none();
        rates.stale_duplicate = 500;
        let builder = support::base_builder(backend)
            .fault_injection(ringcore_runtime::fault::FaultPlan::new(7).rates(rates))
            .drain_timeout(DRAIN);
        let srv = soak::start_with(backend, builder, 7, addr, move |rt| {
            rt.serve_udp(sockets, |_| UdpEcho)
        });
        let mut rng = Rng::new(7);
        let payloads: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                let n = rng.range(1, 900);
                rng.bytes(n)
            })
            .collect();
        let (_sock, mut got) = udp_client(addr, &payloads, usize::MAX).expect("echoes");
        let c = srv.stop().expect("serve_udp returns after shutdown");
        let mut want = payloads.clone();
        want.sort();
        got.sort();
        assert!(got == want, "{} echoes, expected {}", got.len(), want.len());
        assert_eq!((c.datagrams_in, c.datagrams_out), (200, 200), "{c:?}");
        assert!(c.stale > 0, "no stale duplicate reached the service: {c:?}");
    });
}
