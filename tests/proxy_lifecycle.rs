//! Tunnel lifecycle (issue 8, defects 1 and 14): an upstream that resets right after
//! the client's first bytes, many times over, leaves no slot behind (no op may be armed
//! after the closing cancel); tunnels that go idle or stay half-closed are closed by
//! their timeouts.

mod support;

use ringcore::{BackendKind, Conn, ConnInfo, Handler};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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
