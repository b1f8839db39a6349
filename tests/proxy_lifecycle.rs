//! Tunnel lifecycle (issue 8, defects 1 and 14): an upstream that resets right after
//! the client's first bytes, many times over, leaves no slot behind (no op may be armed
//! after the closing cancel); tunnels that go idle or stay half-closed are closed by
//! their timeouts.

mod support;

use ringcore::net::TunnelOptions;
use ringcore::{BackendKind, CloseReason, Conn, ConnInfo, Handler};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use support::client::{connect, set_linger_zero};
use support::{for_each_backend, start_server, TestServer};

/// The proxy handler of examples/proxy.rs.
struct Proxy {
    upstream: SocketAddr,
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Err(e) = conn.pipe_to(self.upstream, Duration::from_secs(5)) {
            panic!("pipe_to: {e}");
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

fn start_proxy(backend: BackendKind, upstream: SocketAddr) -> TestServer {
    start_server(
        backend,
        |b| b.drain_timeout(Duration::from_millis(500)),
        move |_: &ConnInfo| Proxy { upstream },
    )
}

/// Reads until the server ends `s` (EOF or reset); panics if it does not within 10 s.
fn expect_closed(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: the proxy never closed the client: {e}"),
        }
    }
}

/// An upstream that accepts `conns` connections and resets each right after its
/// first byte arrived.
fn start_resetting_upstream(conns: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        for _ in 0..conns {
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut one = [0u8; 1];
            let _ = s.read(&mut one);
            set_linger_zero(&s);
            drop(s);
        }
    });
    (addr, h)
}

/// Defect 1: the reset fails one direction while the other direction's splice is
/// still in the kernel; that splice later completes with `EAGAIN`, and re-arming a
/// readiness poll on it after the closing cancel left the slot waiting for a client
/// that never sends again. Every client must be closed, `open_conns` must return to
/// 0 and `serve` must return within its short drain timeout.
#[test]
fn upstream_reset_after_first_bytes_never_leaves_a_slot() {
    for_each_backend(|backend| {
        const THREADS: usize = 4;
        const PER: usize = 100;
        let (up, upstream) = start_resetting_upstream(THREADS * PER);
        let proxy = start_proxy(backend, up);
        std::thread::scope(|sc| {
            for t in 0..THREADS {
                let addr = proxy.addr;
                sc.spawn(move || {
                    for i in 0..PER {
                        let mut s = connect(addr);
                        let _ = s.write_all(b"first bytes");
                        expect_closed(&mut s, &format!("client {t}/{i}"));
                    }
                });
            }
        });
        upstream.join().expect("resetting upstream");
        proxy.wait_counters("every tunnel closed", |c| c.open_conns == 0);
        let c = proxy.stop();
        assert_eq!(c.panics, 0);
        assert_eq!(c.accepts as usize, THREADS * PER);
    });
}

/// A proxy with these tunnel timeouts; records why each connection closed.
struct TimedProxy {
    upstream: SocketAddr,
    opts: TunnelOptions,
    reasons: Arc<Mutex<Vec<String>>>,
}

impl Handler for TimedProxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pipe_to_with(self.upstream, &self.opts)
            .expect("pipe_to_with");
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.reasons.lock().unwrap().push(format!("{reason:?}"));
    }
}

/// An upstream that accepts and then neither sends nor closes; the accepted sockets
/// come back through the channel (so the test can see them closed by the proxy).
fn start_silent_upstream() -> (SocketAddr, mpsc::Receiver<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn timed_proxy(
    backend: BackendKind,
    upstream: SocketAddr,
    opts: TunnelOptions,
) -> (TestServer, Arc<Mutex<Vec<String>>>) {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = reasons.clone();
    let server = start_server(
        backend,
        |b| b,
        move |_: &ConnInfo| TimedProxy {
            upstream,
            opts,
            reasons: r.clone(),
        },
    );
    (server, reasons)
}

/// Defect 14: a tunnel where nothing moves is closed, both sides, by its idle timeout.
#[test]
fn idle_tunnel_is_closed_by_its_timeout() {
    for_each_backend(|backend| {
        let (up, accepted) = start_silent_upstream();
        let opts = TunnelOptions::default()
            .idle_timeout(Some(Duration::from_millis(300)))
            .half_close_timeout(None);
        let (proxy, reasons) = timed_proxy(backend, up, opts);
        let mut s = connect(proxy.addr);
        s.write_all(b"one exchange, then silence").unwrap();
        let mut upstream = accepted.recv().expect("the upstream connection");
        let mut got = [0u8; 26];
        upstream.read_exact(&mut got).unwrap();
        expect_closed(&mut s, "idle tunnel (client side)");
        expect_closed(&mut upstream, "idle tunnel (upstream side)");
        proxy.wait_counters("the tunnel closed", |c| c.open_conns == 0);
        support::wait_until("on_close", || reasons.lock().unwrap().len() == 1);
        let r = reasons.lock().unwrap().clone();
        assert!(r[0].contains("TimedOut") && r[0].contains("idle"), "{r:?}");
        assert_eq!(proxy.stop().panics, 0);
    });
}

/// Defect 14: after the client's FIN towards an upstream that never answers nor
/// closes, the half-close timeout closes both sides (it used to hold 2 sockets and
/// 2 pipes for ever).
#[test]
fn half_closed_tunnel_is_closed_by_its_timeout() {
    for_each_backend(|backend| {
        let (up, accepted) = start_silent_upstream();
        let opts = TunnelOptions::default()
            .idle_timeout(Some(Duration::from_secs(600)))
            .half_close_timeout(Some(Duration::from_millis(300)));
        let (proxy, reasons) = timed_proxy(backend, up, opts);
        let mut s = connect(proxy.addr);
        s.write_all(b"request").unwrap();
        support::client::shutdown_write(&s);
        let mut upstream = accepted.recv().expect("the upstream connection");
        let mut got = Vec::new();
        // The FIN is propagated: the upstream reads the request, then end of stream.
        upstream.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"request");
        expect_closed(&mut s, "half-closed tunnel (client side)");
        proxy.wait_counters("the tunnel closed", |c| c.open_conns == 0);
        support::wait_until("on_close", || reasons.lock().unwrap().len() == 1);
        let r = reasons.lock().unwrap().clone();
        assert!(
            r[0].contains("TimedOut") && r[0].contains("half-closed"),
            "{r:?}"
        );
        assert_eq!(proxy.stop().panics, 0);
    });
}

/// Traffic keeps a tunnel alive past its idle timeout.
#[test]
fn active_tunnel_outlives_its_idle_timeout() {
    for_each_backend(|backend| {
        let echo = support::start_echo(backend, |b| b);
        let opts = TunnelOptions::default().idle_timeout(Some(Duration::from_secs(2)));
        let (proxy, _) = timed_proxy(backend, echo.addr, opts);
        let mut s = connect(proxy.addr);
        // Exchanges for well over the idle timeout, each well inside it.
        let start = std::time::Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(3) {
            support::client::echo_check(&mut s, &support::client::Rng::new(n).bytes(1000), 1000);
            n += 1;
        }
        assert_eq!(proxy.counters().open_conns, 1, "closed while active");
        drop(s);
        proxy.wait_counters("the tunnel closed", |c| c.open_conns == 0);
        proxy.stop();
        echo.stop();
    });
}

/// The tunnel's upstream connect timeout leaves the timer set once the connect
/// completed (issue 8, cancellable timers): with tunnels established, each holds one
/// timer entry (its idle/half-close clock), not two; after they close, none.
#[test]
fn finished_upstream_connects_leave_no_timers() {
    for_each_backend(|backend| {
        const TUNNELS: usize = 20;
        let upstream = support::start_echo(backend, |b| b);
        let proxy = start_proxy(backend, upstream.addr);
        let mut clients: Vec<TcpStream> = (0..TUNNELS).map(|_| connect(proxy.addr)).collect();
        for c in &mut clients {
            support::client::echo_check(c, b"through the tunnel", 64);
        }
        let c = proxy.wait_counters("every tunnel connected", |c| c.connects == TUNNELS as u64);
        assert_eq!(
            c.timers_pending, TUNNELS as u64,
            "one timer per tunnel (its clock); a finished connect's timeout must be gone"
        );
        drop(clients);
        proxy.wait_counters("every tunnel closed", |c| c.open_conns == 0);
        proxy.wait_counters("no timer left", |c| c.timers_pending == 0);
        proxy.stop();
        upstream.stop();
    });
}
