//! The TLS proxy (examples/proxy.rs with `--tls-cert` / `--upstream-tls`: the userspace
//! relay of examples/proxy_app/relay.rs) over real sockets, on both backends: 1 MiB
//! hash-checked both ways with TLS on the client side, on the upstream side and on
//! both; an upstream whose certificate is not trusted (the client's connection
//! closes, the reason reaches the access log, nothing hangs); a client that stalls
//! mid-handshake (closed by the handshake deadline, no upstream opened, the deadline
//! logged as its close reason); the access log's byte counts and close reason; every connection closed afterwards.

#[path = "../examples/proxy_app/relay.rs"]
mod relay;
mod support;

use relay::{Carried, RelayConfig};
use ringcore::http::AccessFormat;
use ringcore::tls::{rustls, TlsAcceptor, TlsConnector};
use ringcore::{BackendKind, CloseReason, ConnInfo};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{connect, echo_check, read_to_eof, shutdown_write, Rng};
use support::tls::{tls_connect, Pki};
use support::{for_each_backend, start_echo, start_server, TestServer};

/// What the proxy reported per closed client connection: the access-log line (JSON)
/// and the raw summary.
type Lines = Arc<Mutex<Vec<(Carried, String)>>>;

/// Which sides speak TLS.
#[derive(Clone, Copy, Debug)]
struct Sides {
    client: bool,
    upstream: bool,
}

/// An upstream echo server (TLS with `leaf` when given) and the proxy in front of it.
struct Setup {
    upstream: TestServer,
    proxy: TestServer,
    lines: Lines,
    client_config: Arc<rustls::ClientConfig>,
}

fn acceptor(pki: &mut Pki, handshake: Duration) -> TlsAcceptor {
    let leaf = pki.leaf(&["localhost"], false);
    TlsAcceptor::builder()
        .cert_files(&leaf.cert, &leaf.key)
        .unwrap()
        .alpn(&[])
        .handshake_timeout(Some(handshake))
        .build()
        .unwrap()
}

/// The proxy and its clients trust `pki`'s CA; the upstream's certificate comes from
/// it too, unless `trusted` is false (then from a CA nobody trusts).
fn setup(backend: BackendKind, sides: Sides, pki: &mut Pki, trusted: bool) -> Setup {
    let mut stranger = Pki::new();
    let upstream = if sides.upstream {
        let signer = if trusted { &mut *pki } else { &mut stranger };
        let acc = acceptor(signer, Duration::from_secs(10));
        start_server(backend, |b| b, acc.wrap(support::echo_factory))
    } else {
        start_echo(backend, |b| b)
    };
    let connector = sides.upstream.then(|| {
        TlsConnector::from_pem_roots(&pki.ca_pem, "localhost", &[])
            .unwrap()
            .handshake_timeout(Some(Duration::from_secs(5)))
    });
    let lines: Lines = Arc::default();
    let l2 = lines.clone();
    let up = upstream.addr;
    let cfg = RelayConfig {
        upstream: up,
        connector,
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_secs(60)),
        half_close_timeout: Some(Duration::from_secs(60)),
        report: Some(Arc::new(move |c: &Carried, r: &CloseReason| {
            let line = relay::access_line(
                AccessFormat::Json,
                c.client,
                up,
                (c.to_upstream, c.to_client),
                c.duration,
                r,
            );
            l2.lock().unwrap().push((*c, line));
        })),
    };
    let front = move |info: &ConnInfo| cfg.front(info.peer_addr());
    let proxy = if sides.client {
        // A short handshake deadline for the stalled-client test.
        let acc = acceptor(pki, Duration::from_millis(300));
        start_server(backend, |b| b, acc.wrap(front))
    } else {
        start_server(backend, |b| b, front)
    };
    let client_config = pki.tls13();
    Setup {
        upstream,
        proxy,
        lines,
        client_config,
    }
}

impl Setup {
    /// Every client and upstream connection is closed, and the proxy reported `n` lines.
    fn wait_all_closed(&self, n: usize) {
        self.proxy
            .wait_counters("proxy connections closed", |c| c.open_conns == 0);
        self.upstream
            .wait_counters("upstream connections closed", |c| c.open_conns == 0);
        support::wait_until("access-log lines", || self.lines.lock().unwrap().len() >= n);
    }
}

/// Sends `payload` through the proxy to the echo and checks every byte that comes
/// back, then ends the stream (`close_notify` + FIN under TLS) and reads to the end.
fn one_mib_each_way(s: &Setup, sides: Sides) {
    let payload = Rng::new(11).bytes(1 << 20);
    if sides.client {
        let mut c = tls_connect(s.proxy.addr, s.client_config.clone(), "localhost");
        support::tls::echo_check(&mut c, &payload);
        c.conn.send_close_notify();
        c.flush().unwrap();
        shutdown_write(&c.sock);
        let mut rest = Vec::new();
        // The proxy answers with close_notify, then FIN: a clean end, nothing more.
        let n = c
            .read_to_end(&mut rest)
            .expect("clean TLS end (close_notify)");
        assert_eq!(n, 0, "no bytes after the echo");
    } else {
        let mut c = connect(s.proxy.addr);
        echo_check(&mut c, &payload, 64 * 1024);
        shutdown_write(&c);
        assert_eq!(read_to_eof(&mut c).expect("clean EOF").len(), 0);
    }
    s.wait_all_closed(1);
    let lines = s.lines.lock().unwrap();
    let (carried, line) = &lines[0];
    assert!(carried.connected, "{line}");
    assert_eq!(carried.to_upstream, 1 << 20, "{line}");
    assert_eq!(carried.to_client, 1 << 20, "{line}");
    assert!(line.contains("\"bytes_to_upstream\":1048576"), "{line}");
    assert!(line.contains("\"bytes_to_client\":1048576"), "{line}");
    assert!(line.contains("\"close_reason\":\"Local\""), "{line}");
}

fn run_one_mib(sides: Sides) {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let s = setup(backend, sides, &mut pki, true);
        one_mib_each_way(&s, sides);
    });
}

#[test]
fn one_mib_each_way_tls_client_side() {
    run_one_mib(Sides {
        client: true,
        upstream: false,
    });
}

#[test]
fn one_mib_each_way_tls_upstream_side() {
    run_one_mib(Sides {
        client: false,
        upstream: true,
    });
}

#[test]
fn one_mib_each_way_tls_both_sides() {
    run_one_mib(Sides {
        client: true,
        upstream: true,
    });
}

/// The upstream's certificate is signed by a CA the proxy does not trust: the
/// upstream handshake fails, the client's connection closes (it sees the end, it does
/// not hang), and the access log names the certificate error.
#[test]
fn untrusted_upstream_certificate_closes_the_client() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        for client_tls in [true, false] {
            let sides = Sides {
                client: client_tls,
                upstream: true,
            };
            let s = setup(backend, sides, &mut pki, false);
            let got = if client_tls {
                let mut c = tls_connect(s.proxy.addr, s.client_config.clone(), "localhost");
                let _ = c.write_all(b"hello upstream");
                let _ = c.flush();
                let mut buf = Vec::new();
                // close_notify (clean end) or a plain end: either way no data, no hang
                // (the stream has a 30 s read timeout, which would fail the test).
                match c.read_to_end(&mut buf) {
                    Ok(_) => buf,
                    Err(e) => {
                        assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "hung: {e}");
                        buf
                    }
                }
            } else {
                let mut c = connect(s.proxy.addr);
                let _ = c.write_all(b"hello upstream");
                read_to_eof(&mut c).unwrap_or_else(|(b, e)| {
                    assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "hung: {e}");
                    b
                })
            };
            assert!(got.is_empty(), "no upstream bytes can arrive: {got:?}");
            s.wait_all_closed(1);
            let lines = s.lines.lock().unwrap();
            let (carried, line) = &lines[0];
            assert!(!carried.connected, "{line}");
            assert_eq!(carried.to_client, 0, "{line}");
            assert!(
                line.contains("TLS handshake: invalid peer certificate"),
                "the close reason names the certificate problem: {line}"
            );
            assert_eq!(s.upstream.counters().open_conns, 0);
        }
    });
}

/// A client that sends half a ClientHello and then nothing is closed by the
/// handshake deadline (300 ms here); no upstream connection is opened for it.
#[test]
fn client_stalling_mid_handshake_is_closed_by_the_deadline() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let sides = Sides {
            client: true,
            upstream: false,
        };
        let s = setup(backend, sides, &mut pki, true);
        // The first bytes of a real ClientHello, then silence.
        let hello = client_hello_bytes(&s.client_config);
        let mut c = TcpStream::connect(s.proxy.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(&hello[..hello.len() / 2]).unwrap();
        let mut buf = [0u8; 256];
        let ended = loop {
            match c.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => {} // an alert, then the end
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(e) => panic!("the stalled handshake was not closed: {e}"),
            }
        };
        assert!(ended);
        s.proxy
            .wait_counters("proxy connections closed", |c| c.open_conns == 0);
        let up = s.upstream.counters();
        assert_eq!(
            up.accepts, 0,
            "no upstream connection for a failed handshake"
        );
        // The access log still gets its line, with the deadline as the reason.
        support::wait_until("access-log line", || s.lines.lock().unwrap().len() == 1);
        let lines = s.lines.lock().unwrap();
        let (carried, line) = &lines[0];
        assert!(!carried.connected, "{line}");
        assert!(
            line.contains("TLS handshake not completed within the handshake timeout"),
            "{line}"
        );
    });
}

/// A complete ClientHello as `config` would send it.
fn client_hello_bytes(config: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}
