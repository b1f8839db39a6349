//! `Handler::on_closing`: the last look at a connection's still-open sockets, once per
//! connection however it ends, before `on_close`; `TcpStats` samples there; a tunnel's
//! upstream leg is readable too. Both backends, real loopback sockets.

mod support;

use ringcore::{
    CloseReason, Closing, Conn, ConnInfo, Handler, Listeners, Serve, SocketOptions, TcpStats,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a probe saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// `on_closing`: bytes the client leg received (None: no TCP_INFO), and whether the
    /// upstream leg's TCP_INFO was there (None: no upstream leg).
    Closing {
        received: Option<u64>,
        upstream_acked: Option<u64>,
    },
    Close(String),
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Echoes; `c` closes gracefully after the reply, `a` aborts.
struct Probe {
    log: Log,
}

impl Handler for Probe {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        match data.last() {
            Some(b'c') => conn.close(),
            Some(b'a') => conn.abort(),
            _ => {}
        }
        data.len()
    }
    fn on_closing(&mut self, closing: &Closing) {
        assert!(closing.raw_fd() >= 0);
        self.log.lock().unwrap().push(Seen::Closing {
            received: closing.tcp_info().ok().map(|i| i.bytes_received),
            upstream_acked: closing
                .upstream_tcp_info()
                .map(|r| r.expect("upstream TCP_INFO").bytes_acked),
        });
    }
    fn on_close(&mut self, reason: CloseReason) {
        let r = match reason {
            CloseReason::Error(e) => format!("Error({:?})", e.kind()),
            r => format!("{r:?}"),
        };
        self.log.lock().unwrap().push(Seen::Close(r));
    }
}

/// Waits for `n` entries and returns them.
fn seen(log: &Log, n: usize) -> Vec<Seen> {
    support::wait_until(&format!("{n} callbacks"), || log.lock().unwrap().len() >= n);
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn on_closing_sees_the_open_socket_however_the_connection_ends() {
    support::for_each_backend(|backend| {
        let log: Log = Arc::default();
        let l = Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default()).unwrap();
        let addr = l.local_addr();
        let rt = support::base_builder(backend).build().unwrap();
        let h = rt.handle();
        let log2 = log.clone();
        let j = std::thread::spawn(move || {
            rt.serve(l, move |_: &ConnInfo| Probe { log: log2.clone() })
        });
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(support::DEADLINE)).unwrap();
            s
        };
        // The server closes after its reply (mid-exchange, not after our FIN).
        let mut s = connect();
        s.write_all(b"1234c").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(s.read(&mut b).unwrap(), 0);
        let got = seen(&log, 2);
        assert_eq!(
            got,
            [
                Seen::Closing {
                    received: Some(5),
                    upstream_acked: None
                },
                Seen::Close("Local".into())
            ]
        );
        // The server aborts.
        let mut s = connect();
        s.write_all(b"123a").unwrap();
        let _ = s.read(&mut b);
        let got = seen(&log, 2);
        assert_eq!(
            got[0],
            Seen::Closing {
                received: Some(4),
                upstream_acked: None
            }
        );
        assert!(matches!(got[1], Seen::Close(_)), "{got:?}");
        // The client resets.
        let mut s = connect();
        s.write_all(b"12").unwrap();
        s.read_exact(&mut b[..2]).unwrap();
        support::client::set_linger_zero(&s);
        drop(s);
        let got = seen(&log, 2);
        assert!(
            matches!(
                got[0],
                Seen::Closing {
                    received: Some(2),
                    ..
                }
            ),
            "{got:?}"
        );
        assert!(matches!(got[1], Seen::Close(_)), "{got:?}");
        // The client sends FIN.
        let mut s = connect();
        s.write_all(b"xyz").unwrap();
        s.read_exact(&mut b[..3]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(s.read(&mut b).unwrap(), 0);
        let got = seen(&log, 2);
        // 3 bytes and the FIN (which advances the receive sequence too).
        assert!(
            matches!(
                got[0],
                Seen::Closing {
                    received: Some(3..=4),
                    ..
                }
            ),
            "{got:?}"
        );
        // The default on_eof closes: a local close after the peer's FIN.
        assert_eq!(got[1], Seen::Close("Local".into()));
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

#[test]
fn on_closing_on_a_unix_socket_has_no_tcp_info() {
    support::for_each_backend(|backend| {
        let log: Log = Arc::default();
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ringcore-closing-{}-{backend}", std::process::id());
        let l = Listeners::bind(format!("unix:@{name}"), 1, &SocketOptions::default()).unwrap();
        let rt = support::base_builder(backend).build().unwrap();
        let h = rt.handle();
        let log2 = log.clone();
        let j = std::thread::spawn(move || {
            rt.serve(l, move |_: &ConnInfo| Probe { log: log2.clone() })
        });
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let mut s = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
        s.write_all(b"hic").unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        let got = seen(&log, 2);
        assert_eq!(
            got,
            [
                Seen::Closing {
                    received: None,
                    upstream_acked: None
                },
                Seen::Close("Local".into())
            ]
        );
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

/// Closes after the first bytes (the server ends the connection, not the peer).
struct CloseAfterReply;

impl Handler for CloseAfterReply {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        conn.close();
        data.len()
    }
}

/// Before `on_closing`, `TcpStats` sampled only at the peer's FIN, an idle timeout or
/// the drain: a connection the server closed itself was never counted.
#[test]
fn tcp_stats_sample_connections_the_server_closes() {
    support::for_each_backend(|backend| {
        let stats = TcpStats::new(1);
        let srv = support::start_server(backend, |b| b, stats.wrap(|_: &ConnInfo| CloseAfterReply));
        for _ in 0..3 {
            let mut c = TcpStream::connect(srv.addr).unwrap();
            c.set_read_timeout(Some(support::DEADLINE)).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0u8; 8];
            c.read_exact(&mut b[..5]).unwrap();
            assert_eq!(c.read(&mut b).unwrap(), 0);
        }
        support::wait_until("3 samples", || stats.samples() == 3);
        srv.stop();
    });
}

/// Tunnels every connection to `up`, recording `on_closing` like [`Probe`].
struct Tunnel {
    up: SocketAddr,
    probe: Probe,
}

impl Handler for Tunnel {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.pipe_to(self.up, Duration::from_secs(10)).unwrap();
    }
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
    fn on_closing(&mut self, closing: &Closing) {
        self.probe.on_closing(closing)
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.probe.on_close(reason)
    }
}

#[test]
fn on_closing_reads_both_legs_of_a_tunnel() {
    support::for_each_backend(|backend| {
        let log: Log = Arc::default();
        let up = support::echo_upstream();
        // A port nobody listens on (bound, then closed): the connect is refused.
        let refused = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Arc::new(Mutex::new(up));
        let (log2, t2) = (log.clone(), target.clone());
        let srv = support::start_server(
            backend,
            |b| b,
            move |_: &ConnInfo| Tunnel {
                up: *t2.lock().unwrap(),
                probe: Probe { log: log2.clone() },
            },
        );
        let data = vec![7u8; 3000];
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        s.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        let got = seen(&log, 2);
        // 3000 bytes each way (+1 each for a SYN and a FIN in the sequence space).
        assert!(
            matches!(
                got[0],
                Seen::Closing {
                    received: Some(3000..=3002),
                    upstream_acked: Some(3000..=3002)
                }
            ),
            "{got:?}"
        );
        // A tunnel whose upstream refused has no upstream leg to read.
        *target.lock().unwrap() = refused;
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(support::DEADLINE)).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
        let got = seen(&log, 2);
        assert!(
            matches!(
                got[0],
                Seen::Closing {
                    upstream_acked: None,
                    ..
                }
            ),
            "{got:?}"
        );
        srv.stop();
    });
}
