//! The mailbox under TLS: `on_message` and `on_undelivered` reach the handler inside
//! `TlsHandler`, and a message that arrives while the handshake runs waits for the
//! inner handler's `on_open`.

mod support;

use ringcore::tls::rustls;
use ringcore::{CloseReason, Conn, ConnId, ConnInfo, Factory, Handler};
use std::any::Any;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::tls::{handshake, Client, Pki};
use support::{for_each_backend, start_server, wait_until};

/// What the test sees of the server.
#[derive(Default)]
struct Shared {
    /// Connection ids in accept order (recorded by the outer wrapper at TCP open).
    ids: Mutex<Vec<ConnId>>,
    /// Events of the inner (plaintext) handlers, in order: (connection, event).
    events: Mutex<Vec<(ConnId, String)>>,
    /// Messages that reached the outer wrapper (delivered by the runtime).
    delivered: AtomicU64,
    /// Inner handlers closed.
    closed: AtomicU64,
}

/// The plaintext handler: `to N text\n` sends `text` to the N-th connection;
/// a message received is written back as `got text\n`, one returned as
/// `returned text\n`.
struct Relay {
    shared: Arc<Shared>,
    line: Vec<u8>,
}

impl Relay {
    fn log(&self, id: ConnId, what: String) {
        self.shared.events.lock().unwrap().push((id, what));
    }
}

impl Handler for Relay {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.log(conn.id(), "open".into());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        for &b in data {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8(std::mem::take(&mut self.line)).expect("utf-8 line");
            let mut parts = line.splitn(3, ' ');
            assert_eq!(parts.next(), Some("to"), "bad command {line:?}");
            let n: usize = parts.next().unwrap().parse().unwrap();
            let text = parts.next().unwrap().to_string();
            let to = self.shared.ids.lock().unwrap()[n];
            conn.notify(to, text);
        }
        data.len()
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, _from: ConnId, msg: Box<dyn Any>) {
        let text = *msg.downcast::<String>().expect("a String message");
        self.log(conn.id(), format!("msg {text}"));
        conn.send(format!("got {text}\n").as_bytes());
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, _to: ConnId, msg: Box<dyn Any>) {
        let text = *msg.downcast::<String>().expect("a String message");
        conn.send(format!("returned {text}\n").as_bytes());
    }

    fn on_close(&mut self, _: CloseReason) {
        self.shared.closed.fetch_add(1, Relaxed);
    }
}

/// Outside TLS: publishes the connection's id at TCP open (before the handshake),
/// counts deliveries and forwards everything.
struct Outer<H> {
    inner: H,
    shared: Arc<Shared>,
}

impl<H: Handler> Handler for Outer<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.shared.ids.lock().unwrap().push(conn.id());
        self.inner.on_open(conn);
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.inner.on_data(conn, data)
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_sent(conn);
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_eof(conn);
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_timeout(conn);
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_drain(conn);
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_timer(conn);
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn Any + Send>) {
        self.inner.on_offload(conn, result);
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        self.shared.delivered.fetch_add(1, Relaxed);
        self.inner.on_message(conn, from, msg);
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        self.inner.on_undelivered(conn, to, msg);
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.inner.on_close(reason);
    }
}

struct OuterFactory<F> {
    inner: F,
    shared: Arc<Shared>,
}

impl<F: Factory> Factory for OuterFactory<F> {
    type Handler = Outer<F::Handler>;
    fn make(&self, info: &ConnInfo) -> Self::Handler {
        Outer {
            inner: self.inner.make(info),
            shared: self.shared.clone(),
        }
    }
}

fn server(
    backend: ringcore::BackendKind,
    pki: &mut Pki,
) -> (support::TestServer, Arc<Shared>, Arc<rustls::ClientConfig>) {
    let acc = pki.localhost_acceptor();
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let factory = OuterFactory {
        inner: acc.wrap(move |_: &ConnInfo| Relay {
            shared: s.clone(),
            line: Vec::new(),
        }),
        shared: shared.clone(),
    };
    let srv = start_server(backend, |b| b, factory);
    let cfg = pki.tls13();
    (srv, shared, cfg)
}

fn connect(srv: &support::TestServer) -> TcpStream {
    let tcp = TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// Reads one line, retrying reads a signal interrupted.
fn read_line(r: &mut BufReader<&mut Client>) -> String {
    let mut line = String::new();
    loop {
        match r.read_line(&mut line) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => {
                r.expect("read a line");
                return line;
            }
        }
    }
}

fn ids(shared: &Shared) -> usize {
    shared.ids.lock().unwrap().len()
}

#[test]
fn messages_reach_the_handler_inside_tls() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let (srv, shared, cfg) = server(backend, &mut pki);
        let mut a = handshake(connect(&srv), cfg.clone(), "localhost");
        wait_until("first connection open", || ids(&shared) == 1);
        let mut b = handshake(connect(&srv), cfg.clone(), "localhost");
        wait_until("second connection open", || ids(&shared) == 2);

        b.write_all(b"to 0 hello\n").unwrap();
        b.flush().unwrap();
        assert_eq!(read_line(&mut BufReader::new(&mut a)), "got hello\n");

        // The first connection goes: a message to it comes back to the sender.
        drop(a);
        wait_until("first connection closed", || {
            shared.closed.load(Relaxed) == 1
        });
        b.write_all(b"to 0 again\n").unwrap();
        b.flush().unwrap();
        assert_eq!(read_line(&mut BufReader::new(&mut b)), "returned again\n");
        srv.stop();
    });
}

#[test]
fn message_during_the_handshake_waits_for_on_open() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let (srv, shared, cfg) = server(backend, &mut pki);
        // Connected, but no ClientHello yet: the inner handler is not open.
        let early = connect(&srv);
        wait_until("first connection accepted", || ids(&shared) == 1);
        let mut b = handshake(connect(&srv), cfg.clone(), "localhost");
        wait_until("second connection open", || ids(&shared) == 2);

        b.write_all(b"to 0 early\n").unwrap();
        b.flush().unwrap();
        wait_until("message delivered to the TLS wrapper", || {
            shared.delivered.load(Relaxed) == 1
        });
        let first = shared.ids.lock().unwrap()[0];
        let seen = |s: &Shared| -> Vec<String> {
            let ev = s.events.lock().unwrap();
            ev.iter()
                .filter(|(id, _)| *id == first)
                .map(|(_, e)| e.clone())
                .collect()
        };
        assert!(
            seen(&shared).is_empty(),
            "the inner handler saw something before its handshake"
        );

        let mut a = handshake(early, cfg, "localhost");
        assert_eq!(read_line(&mut BufReader::new(&mut a)), "got early\n");
        assert_eq!(seen(&shared), ["open", "msg early"]);
        drop((a, b));
        srv.stop();
    });
}
