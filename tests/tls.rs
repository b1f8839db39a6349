//! TLS on the handler API with a rustls client: echo through the wrapper (TLS 1.3 and
//! 1.2, ALPN, SNI, resumption), bad input (garbage, a truncated ClientHello, a stalled
//! handshake), certificates a client must refuse (wrong name, expired), close_notify
//! versus truncation, files under TLS, and backpressure with a client that does not read.

mod support;

use ringcore::tls::{rustls, TlsAcceptor, TlsInfo};
use ringcore::{CloseReason, Conn, ConnInfo, Handler};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::tls::{bytes, echo_check, tls_connect, try_tls_connect, Pki};
use support::{for_each_backend, start_server, wait_until};

/// What the inner handlers saw.
#[derive(Default)]
struct Seen {
    opened: Vec<TlsInfo>,
    eofs: Vec<TlsInfo>,
    closes: Vec<String>,
}

/// Echo that records its session.
struct Echo(Arc<Mutex<Seen>>);

impl Handler for Echo {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let info = conn.tls().expect("under TLS").clone();
        self.0.lock().unwrap().opened.push(info);
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        let info = conn.tls().expect("under TLS").clone();
        self.0.lock().unwrap().eofs.push(info);
        conn.close();
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.0.lock().unwrap().closes.push(format!("{reason:?}"));
    }
}

fn echo_server(
    backend: ringcore::BackendKind,
    acceptor: &TlsAcceptor,
) -> (support::TestServer, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let factory = acceptor.wrap(move |_: &ConnInfo| Echo(s.clone()));
    (start_server(backend, |b| b, factory), seen)
}

#[test]
fn echo_over_tls13_and_tls12_with_alpn() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, seen) = echo_server(backend, &acceptor);
        for (i, v) in [&rustls::version::TLS13, &rustls::version::TLS12]
            .into_iter()
            .enumerate()
        {
            let cfg = pki.client_config(&[v], &[b"h2", b"http/1.1"]);
            let mut c = tls_connect(server.addr, cfg, "localhost");
            assert_eq!(c.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
            for n in [1, 100, 16 * 1024 + 7, 1 << 20] {
                echo_check(&mut c, &bytes(n as u64 + i as u64, n));
            }
            c.conn.send_close_notify();
            c.flush().unwrap();
            let mut rest = Vec::new();
            // The server answers close_notify with its own and closes: a clean EOF.
            c.read_to_end(&mut rest)
                .expect("clean close (close_notify)");
            assert!(rest.is_empty());
        }
        wait_until("both sessions closed", || {
            seen.lock().unwrap().closes.len() == 2
        });
        let seen = seen.lock().unwrap();
        let versions: Vec<_> = seen.opened.iter().map(|i| i.version).collect();
        assert_eq!(versions, ["TLSv1.3", "TLSv1.2"]);
        assert!(seen
            .opened
            .iter()
            .all(|i| i.alpn.as_deref() == Some(b"http/1.1")));
        assert!(seen
            .opened
            .iter()
            .all(|i| i.sni.as_deref() == Some("localhost")));
        assert!(seen.eofs.iter().all(|i| i.peer_closed && !i.truncated));
        let st = acceptor.stats();
        assert_eq!((st.handshakes, st.close_notify, st.truncated), (2, 2, 0));
        server.stop();
    });
}

#[test]
fn resumption_with_tickets() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, _seen) = echo_server(backend, &acceptor);
        for v in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // One client config = one session cache: the second handshake resumes.
            let cfg = pki.client_config(&[v], &[]);
            for round in 0..2 {
                let mut c = tls_connect(server.addr, cfg.clone(), "localhost");
                echo_check(&mut c, b"ticket please");
                let kind = c.conn.handshake_kind();
                let want = if round == 0 {
                    rustls::HandshakeKind::Full
                } else {
                    rustls::HandshakeKind::Resumed
                };
                assert_eq!(kind, Some(want), "{v:?} round {round}");
            }
        }
        assert_eq!(acceptor.stats().resumed, 2);
        server.stop();
    });
}

#[test]
fn sni_picks_the_certificate_and_a_wrong_name_is_refused() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let a = pki.leaf(&["a.test"], false);
        let b = pki.leaf(&["b.test", "*.b.test"], false);
        let acceptor = TlsAcceptor::builder()
            .sni_cert_files(&["a.test"], &a.cert, &a.key)
            .unwrap()
            .sni_cert_files(&["b.test", "*.b.test"], &b.cert, &b.key)
            .unwrap()
            .build()
            .unwrap();
        let (server, seen) = echo_server(backend, &acceptor);
        let cfg = pki.tls13();
        for name in ["a.test", "b.test", "x.b.test"] {
            let mut c = tls_connect(server.addr, cfg.clone(), name);
            echo_check(&mut c, name.as_bytes());
        }
        // A name no certificate has: the default (a.test) is served, and the client
        // refuses it.
        let Err(e) = try_tls_connect(server.addr, cfg.clone(), "c.test") else {
            panic!("the client must refuse this server")
        };
        assert!(e.to_string().contains("not valid for name"), "{e}");
        wait_until("three sessions", || seen.lock().unwrap().opened.len() == 3);
        let sni: Vec<_> = seen
            .lock()
            .unwrap()
            .opened
            .iter()
            .map(|i| i.sni.clone().unwrap())
            .collect();
        assert_eq!(sni, ["a.test", "b.test", "x.b.test"]);
        server.stop();

        // Strict SNI: the server refuses the handshake itself.
        let strict = TlsAcceptor::builder()
            .sni_cert_files(&["a.test"], &a.cert, &a.key)
            .unwrap()
            .strict_sni(true)
            .build()
            .unwrap();
        let (server, _seen) = echo_server(backend, &strict);
        let Err(e) = try_tls_connect(server.addr, cfg, "c.test") else {
            panic!("the client must refuse this server")
        };
        assert!(e.to_string().to_lowercase().contains("alert"), "{e}");
        server.wait_counters("the refused connection closed", |c| c.open_conns == 0);
        assert_eq!(strict.stats().handshake_errors, 1);
        server.stop();
    });
}

#[test]
fn expired_certificate_is_refused_by_the_client() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let leaf = pki.leaf(&["localhost"], true);
        let acceptor = TlsAcceptor::from_pem_files(&leaf.cert, &leaf.key).unwrap();
        let (server, seen) = echo_server(backend, &acceptor);
        let cfg = pki.tls13();
        let Err(e) = try_tls_connect(server.addr, cfg, "localhost") else {
            panic!("the client must refuse this server")
        };
        assert!(e.to_string().contains("expired"), "{e}");
        server.wait_counters("the refused connection closed", |c| c.open_conns == 0);
        assert!(
            seen.lock().unwrap().opened.is_empty(),
            "the inner handler never opened"
        );
        assert_eq!(seen.lock().unwrap().closes.len(), 1);
        server.stop();
    });
}

/// Reads until EOF or reset; returns what came and how it ended.
fn drain_end(s: &mut TcpStream) -> (Vec<u8>, String) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, "EOF".into()),
            // A signal to this thread (the test process hosts the server's runtime)
            // interrupts the read: not an end.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (out, e.to_string()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until EOF or reset; returns what came.
fn drain(s: &mut TcpStream) -> Vec<u8> {
    drain_end(s).0
}

#[test]
fn garbage_gets_an_alert_and_a_close_not_a_crash() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, seen) = echo_server(backend, &acceptor);
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (got, end) = drain_end(&mut s);
        // A TLS alert record (content type 21) precedes the close.
        assert_eq!(
            got.first(),
            Some(&0x15),
            "an alert record: {got:?}, then {end}"
        );
        server.wait_counters("the connection closed", |c| c.open_conns == 0);
        assert_eq!(acceptor.stats().handshake_errors, 1);
        let closes = seen.lock().unwrap().closes.clone();
        assert!(closes[0].contains("InvalidData"), "{closes:?}");
        // The worker lives on: a real client still gets served.
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        echo_check(&mut c, b"still here");
        server.stop();
    });
}

/// The first bytes of a real ClientHello.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let cfg = pki.tls13();
    let mut c = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

#[test]
fn truncated_client_hello_is_closed() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, seen) = echo_server(backend, &acceptor);
        let hello = client_hello(&pki);
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        drain(&mut s);
        server.wait_counters("the connection closed", |c| c.open_conns == 0);
        assert_eq!(acceptor.stats().handshake_errors, 1);
        let closes = seen.lock().unwrap().closes.clone();
        assert!(closes[0].contains("UnexpectedEof"), "{closes:?}");
        server.stop();
    });
}

#[test]
fn stalled_handshake_is_closed_by_the_deadline() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let leaf = pki.leaf(&["localhost"], false);
        let acceptor = TlsAcceptor::builder()
            .cert_files(&leaf.cert, &leaf.key)
            .unwrap()
            .handshake_timeout(Some(Duration::from_millis(200)))
            .build()
            .unwrap();
        let (server, seen) = echo_server(backend, &acceptor);
        let hello = client_hello(&pki);
        // Half a ClientHello, then silence: only the deadline can end this.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&hello[..10]).unwrap();
        drain(&mut s);
        server.wait_counters("the connection closed", |c| c.open_conns == 0);
        assert_eq!(acceptor.stats().handshake_timeouts, 1);
        let closes = seen.lock().unwrap().closes.clone();
        assert!(closes[0].contains("TimedOut"), "{closes:?}");
        // A silent client (no byte at all) too.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        drain(&mut s);
        server.wait_counters("the silent connection closed", |c| c.open_conns == 0);
        assert_eq!(acceptor.stats().handshake_timeouts, 2);
        server.stop();
    });
}

#[test]
fn truncation_without_close_notify_is_reported() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, seen) = echo_server(backend, &acceptor);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        echo_check(&mut c, b"then cut");
        c.sock.shutdown(std::net::Shutdown::Write).unwrap(); // FIN, no close_notify
        wait_until("on_eof", || !seen.lock().unwrap().eofs.is_empty());
        let eof = seen.lock().unwrap().eofs[0].clone();
        assert!(eof.truncated && !eof.peer_closed, "{eof:?}");
        assert_eq!(acceptor.stats().truncated, 1);
        server.stop();
    });
}

#[test]
fn bad_record_mid_session_gets_bad_record_mac_and_a_close() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acceptor = pki.localhost_acceptor();
        let (server, seen) = echo_server(backend, &acceptor);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        echo_check(&mut c, b"fine so far");
        // An application-data record whose ciphertext is noise: it cannot decrypt.
        let mut rec = vec![0x17, 0x03, 0x03, 0x00, 0x40];
        rec.extend_from_slice(&bytes(99, 0x40));
        c.sock.write_all(&rec).unwrap();
        let mut buf = [0u8; 256];
        let r = support::tls::read_some(&mut c, &mut buf);
        // rustls on the client decodes the server's fatal alert into an error.
        let e = r.expect_err("the server answers with an alert, not data");
        assert!(e.to_string().contains("BadRecordMac"), "{e}");
        server.wait_counters("the connection closed", |c| c.open_conns == 0);
        let st = acceptor.stats();
        assert_eq!((st.handshakes, st.record_errors), (1, 1));
        let closes = seen.lock().unwrap().closes.clone();
        assert!(closes[0].contains("InvalidData"), "{closes:?}");
        server.stop();
    });
}
