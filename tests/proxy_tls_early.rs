//! The TLS proxy's relay (examples/proxy_app/relay.rs) when the client leaves before
//! the upstream connection is established, on both backends: the client resets, or
//! ends its stream (FIN), while the proxy's connect to the upstream is still pending
//! (a plain upstream whose accept queue is full: the SYN gets no answer) or while the
//! upstream TLS handshake is still running (`--upstream-tls` to a server that accepts
//! and never answers). Afterwards: no callback panicked, every proxy connection is
//! closed (`open_conns` back to 0: nothing leaks), the upstream socket is closed, and
//! the access log has one line for the client with no upstream connection.
//!
//! The relay's client side reads on while the upstream is being opened (keeping the
//! early bytes), so a client that resets is noticed at once and the pending attempt
//! is cancelled (`Connecting::cancel`): the reset tests give the attempt an hour, so
//! they fail unless it is cancelled. A client that ends its stream (FIN) may still
//! want the answer: the attempt then runs to its end (short here).

#[path = "../examples/proxy_app/relay.rs"]
mod relay;
mod support;

use relay::{Carried, RelayConfig};
use ringcore::http::AccessFormat;
use ringcore::tls::{TlsAcceptor, TlsConnector};
use ringcore::{BackendKind, CloseReason, ConnInfo};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{set_linger_zero, syn_sent_to, unanswered_listener, Unanswered};
use support::tls::{tls_connect, Pki};
use support::{for_each_backend, start_server, TestServer};

/// The proxy's connect timeout and upstream handshake deadline in the FIN tests: long
/// enough that the client leaves first even on a loaded machine (if the proxy gave
/// up first, the client's leaving finds its connection closed, which is tolerated).
const ATTEMPT: Duration = Duration::from_secs(2);

/// The same in the reset tests: the attempt must be cancelled, not end on its own.
const NEVER: Duration = Duration::from_secs(3600);

impl Leave {
    fn attempt(self) -> Duration {
        match self {
            Leave::Reset => NEVER,
            Leave::Fin => ATTEMPT,
        }
    }
}

type Lines = Arc<Mutex<Vec<(Carried, String)>>>;

/// How the client leaves.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// `SO_LINGER` 0, then close: a reset.
    Reset,
    /// `shutdown(SHUT_WR)` (after `close_notify` under TLS), then close.
    Fin,
}

/// Where the upstream attempt hangs.
enum Upstream {
    /// A listener with a full accept queue (backlog 0 plus one connection nobody
    /// accepts): the proxy's SYN is dropped, its connect stays pending.
    Unanswered(#[allow(dead_code)] Unanswered),
    /// A listener that accepts and never says a word: the proxy's TLS handshake with
    /// it stays pending.
    Silent(TcpListener),
}

impl Upstream {
    fn unanswered() -> (Upstream, SocketAddr) {
        let (l, addr) = unanswered_listener();
        (Upstream::Unanswered(l), addr)
    }

    fn silent() -> (Upstream, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (Upstream::Silent(l), addr)
    }
}

struct Setup {
    proxy: TestServer,
    lines: Lines,
    pki: Pki,
}

/// The proxy in front of `upstream`: TLS towards the client when `client_tls`, else
/// TLS towards the upstream.
fn setup(backend: BackendKind, upstream: SocketAddr, client_tls: bool, attempt: Duration) -> Setup {
    let mut pki = Pki::new();
    let connector = (!client_tls).then(|| {
        TlsConnector::from_pem_roots(&pki.ca_pem, "localhost", &[])
            .unwrap()
            .handshake_timeout(Some(attempt))
    });
    let lines: Lines = Arc::default();
    let l2 = lines.clone();
    let cfg = RelayConfig {
        upstream,
        connector,
        connect_timeout: attempt,
        idle_timeout: Some(Duration::from_secs(60)),
        half_close_timeout: Some(Duration::from_secs(60)),
        report: Some(Arc::new(move |c: &Carried, r: &CloseReason| {
            let line = relay::access_line(
                AccessFormat::Json,
                c.client,
                upstream,
                (c.to_upstream, c.to_client),
                c.duration,
                r,
            );
            l2.lock().unwrap().push((*c, line));
        })),
    };
    let front = move |info: &ConnInfo| cfg.front(info.peer_addr());
    let proxy = if client_tls {
        let leaf = pki.leaf(&["localhost"], false);
        let acc = TlsAcceptor::builder()
            .cert_files(&leaf.cert, &leaf.key)
            .unwrap()
            .alpn(&[])
            .build()
            .unwrap();
        start_server(backend, |b| b, acc.wrap(front))
    } else {
        start_server(backend, |b| b, front)
    };
    Setup { proxy, lines, pki }
}

/// Connects through the proxy (TLS handshake included when `client_tls`), sends a
/// few bytes, waits until the proxy is opening the upstream (two open connections:
/// the client's and the pending upstream) and `pending` holds, then leaves as
/// `leave` says.
fn leave_early(s: &Setup, client_tls: bool, leave: Leave, pending: &dyn Fn() -> bool) {
    if client_tls {
        let mut c = tls_connect(s.proxy.addr, s.pki.tls13(), "localhost");
        c.write_all(b"early bytes").unwrap();
        c.flush().unwrap();
        s.proxy
            .wait_counters("upstream attempt started", |c| c.open_conns == 2);
        support::wait_until("the upstream attempt is pending", pending);
        match leave {
            Leave::Reset => set_linger_zero(&c.sock),
            Leave::Fin => {
                c.conn.send_close_notify();
                let _ = c.flush();
                let _ = c.sock.shutdown(Shutdown::Write);
            }
        }
    } else {
        let mut c = TcpStream::connect(s.proxy.addr).unwrap();
        c.write_all(b"early bytes").unwrap();
        s.proxy
            .wait_counters("upstream attempt started", |c| c.open_conns == 2);
        support::wait_until("the upstream attempt is pending", pending);
        match leave {
            Leave::Reset => set_linger_zero(&c),
            Leave::Fin => {
                let _ = c.shutdown(Shutdown::Write);
            }
        }
    }
}

/// After the client left: nothing panicked, every proxy connection closed, one
/// access-log line without an upstream connection.
fn check_cleaned_up(s: &Setup) {
    let c = s
        .proxy
        .wait_counters("every proxy connection closed", |c| c.open_conns == 0);
    assert_eq!(c.panics, 0, "no callback panicked");
    support::wait_until("the access-log line", || {
        !s.lines.lock().unwrap().is_empty()
    });
    let lines = s.lines.lock().unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (carried, line) = &lines[0];
    assert!(!carried.connected, "{line}");
    assert_eq!(carried.to_client, 0, "{line}");
}

fn pending_connect(client_tls: bool, leave: Leave) {
    for_each_backend(|backend| {
        let (up, addr) = Upstream::unanswered();
        let s = setup(backend, addr, client_tls, leave.attempt());
        // The proxy's SYN is unanswered: its connect is pending when the client leaves.
        leave_early(&s, client_tls, leave, &|| syn_sent_to(addr.port()) == 1);
        check_cleaned_up(&s);
        // The proxy gave its pending connect up: no socket of this host is still
        // sending SYNs to the upstream (its listener and the filler are the only
        // sockets on that port).
        support::wait_until("no connect pending to the upstream", || {
            syn_sent_to(addr.port()) == 0
        });
        drop(up);
        s.proxy.stop();
    });
}

fn pending_handshake(leave: Leave) {
    for_each_backend(|backend| {
        let (up, addr) = Upstream::silent();
        let Upstream::Silent(listener) = up else {
            unreachable!()
        };
        let s = setup(backend, addr, false, leave.attempt());
        leave_early(&s, false, leave, &|| true);
        // The proxy's upstream connection: it sends a ClientHello and then closes
        // (the handshake never completes), so we read to the end.
        let (mut upc, _) = listener.accept().unwrap();
        upc.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let mut got = Vec::new();
        match upc.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "the proxy closed its upstream connection: {e}"
            ),
        }
        assert!(!got.is_empty(), "a ClientHello came first");
        check_cleaned_up(&s);
        s.proxy.stop();
    });
}

#[test]
fn client_resets_while_the_upstream_connect_is_pending() {
    pending_connect(true, Leave::Reset);
}

#[test]
fn client_ends_while_the_upstream_connect_is_pending() {
    pending_connect(true, Leave::Fin);
}

#[test]
fn client_resets_while_the_upstream_tls_handshake_runs() {
    pending_handshake(Leave::Reset);
}

#[test]
fn client_ends_while_the_upstream_tls_handshake_runs() {
    pending_handshake(Leave::Fin);
}
