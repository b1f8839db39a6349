//! Outbound connections opened by handlers (`Conn::connect`) and messages between the
//! connections of a worker (`Conn::notify`): a relay (client -> relay -> echo backend
//! and back, 4 MiB byte-exact, with backpressure), connect failures reported to the
//! originator with their kind (refused, timed out), a message to a closed connection
//! returned to its sender, and every slot released afterwards.

mod support;

use ringcore::{
    BackendKind, CloseReason, Conn, ConnId, ConnInfo, ConnectRequest, Connecting, Handler,
    Notifier, SocketOptions,
};
use std::any::Any;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{
    connect, connect_small_rcvbuf, read_expect, syn_sent_to, unanswered_listener, Rng,
};
use support::{for_each_backend, start_echo, start_server, start_server_opts, TestServer};

/// Output queued on one side at which the other side stops reading.
const HIGH: usize = 1 << 20;

/// What the two halves of a relay tell each other.
enum Msg {
    /// The backend connection is up (its id).
    Up,
    /// Bytes to send on.
    Bytes(Vec<u8>),
    /// Stop reading: the other side's output is backed up.
    Pause,
    /// Read again.
    Resume,
    /// The backend connection closed (connect failure included), with why.
    Closed(String),
}

/// The accepted side: forwards client bytes to its backend connection, and the
/// backend's bytes to the client.
struct Relay {
    backend: SocketAddr,
    timeout: Duration,
    up: Option<ConnId>,
    /// Client bytes that arrived before the backend connected.
    early: Vec<u8>,
    /// The backend is paused because the client does not read.
    up_paused: bool,
    /// Speaks for this connection in `on_close`.
    me: Option<Notifier>,
    /// Source address to bind the backend connection to.
    source: Option<std::net::IpAddr>,
    /// Socket options of the backend connection.
    socket: SocketOptions,
}

impl Handler for Relay {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.me = Some(conn.notifier());
        // A forwarding connection must not stop reading because its *own* output is
        // backed up (the runtime's default): the backend then could never drain it.
        // Its reading is paused by the other side instead.
        conn.set_output_limit(0);
        let mut req = ConnectRequest::new(self.backend).timeout(self.timeout);
        if let Some(ip) = self.source {
            req = req.source(ip);
        }
        req = req.socket(self.socket.clone());
        conn.connect_with(
            req,
            Backend {
                down: conn.notifier(),
                opened: false,
                paused_down: false,
            },
        );
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        match self.up {
            Some(up) => conn.notify(up, Msg::Bytes(data.to_vec())),
            None => self.early.extend_from_slice(data),
        }
        data.len()
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<Msg>() else {
            return;
        };
        match *msg {
            Msg::Up => {
                self.up = Some(from);
                if !self.early.is_empty() {
                    conn.notify(from, Msg::Bytes(std::mem::take(&mut self.early)));
                }
            }
            Msg::Bytes(b) => {
                conn.send(&b);
                if conn.queued_bytes() >= HIGH && !self.up_paused {
                    self.up_paused = true;
                    conn.notify(from, Msg::Pause);
                }
            }
            Msg::Pause => conn.pause_reading(),
            Msg::Resume => conn.resume_reading(),
            Msg::Closed(why) => {
                conn.send(format!("\nRELAY-CLOSED {why}\n").as_bytes());
                conn.close();
            }
        }
    }

    fn on_close(&mut self, _reason: CloseReason) {
        // Tell the backend connection (if any) to go too.
        if let (Some(me), Some(up)) = (&self.me, self.up) {
            me.notify(up, Msg::Closed("client gone".into()));
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.up_paused {
            self.up_paused = false;
            if let Some(up) = self.up {
                conn.notify(up, Msg::Resume);
            }
        }
    }
}

/// The outbound side, opened by a [`Relay`].
struct Backend {
    down: Notifier,
    opened: bool,
    paused_down: bool,
}

impl Handler for Backend {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        conn.set_output_limit(0);
        conn.notify(self.down.id(), Msg::Up);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.notify(self.down.id(), Msg::Bytes(data.to_vec()));
        data.len()
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, _from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<Msg>() else {
            return;
        };
        match *msg {
            Msg::Bytes(b) => {
                conn.send(&b);
                if conn.queued_bytes() >= HIGH && !self.paused_down {
                    self.paused_down = true;
                    conn.notify(self.down.id(), Msg::Pause);
                }
            }
            Msg::Pause => conn.pause_reading(),
            Msg::Resume => conn.resume_reading(),
            Msg::Closed(_) => conn.close(),
            Msg::Up => {}
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.paused_down {
            self.paused_down = false;
            conn.notify(self.down.id(), Msg::Resume);
        }
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, _to: ConnId, _msg: Box<dyn Any>) {
        // The client side is gone: nobody to relay to.
        conn.abort();
    }

    fn on_close(&mut self, reason: CloseReason) {
        let why = match reason {
            CloseReason::Error(e) => format!("{:?} {e}", e.kind()),
            other => format!("{other:?}"),
        };
        let why = if self.opened {
            why
        } else {
            format!("connect {why}")
        };
        self.down.notify(self.down.id(), Msg::Closed(why));
    }
}

fn start_relay(backend: BackendKind, target: SocketAddr, timeout: Duration) -> TestServer {
    start_relay_from(backend, target, timeout, None, SocketOptions::default())
}

fn start_relay_from(
    backend: BackendKind,
    target: SocketAddr,
    timeout: Duration,
    source: Option<std::net::IpAddr>,
    socket: SocketOptions,
) -> TestServer {
    start_server_opts(
        backend,
        |b| b,
        &socket.clone(),
        move |_: &ConnInfo| Relay {
            backend: target,
            timeout,
            up: None,
            early: Vec::new(),
            up_paused: false,
            me: None,
            source,
            socket: socket.clone(),
        },
    )
}

/// Reads until `needle` shows up (or EOF); returns everything read.
fn read_until(s: &mut std::net::TcpStream, needle: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.windows(needle.len()).any(|w| w == needle) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&out)),
        }
    }
    out
}

#[test]
fn relay_round_trip_4mib_and_slots_released() {
    for_each_backend(|backend| {
        let echo = start_echo(backend, |b| b);
        let relay = start_relay(backend, echo.addr, Duration::from_secs(60));
        let mut rng = Rng::new(9);
        for _ in 0..3 {
            let mut s = connect(relay.addr);
            let payload = rng.bytes(4 << 20);
            let mut w = s.try_clone().unwrap();
            let p2 = payload.clone();
            let writer = std::thread::spawn(move || w.write_all(&p2).unwrap());
            read_expect(&mut s, &payload, 64 * 1024);
            writer.join().unwrap();
            // Connected long ago (4 MiB went through): the connect deadline (60 s) is
            // gone from the timer wheel while the connection is still open (nothing
            // else here sets a timer).
            assert_eq!(
                relay.counters().timers_pending,
                0,
                "connect deadline left armed"
            );
        }
        // Closing the client closes its backend connection: both slots go.
        relay.wait_counters("relay slots released", |c| c.open_conns == 0);
        echo.wait_counters("echo connections closed", |c| c.open_conns == 0);
        let c = relay.stop();
        assert_eq!(c.connects, 3, "one backend connect per client");
    });
}

#[test]
fn relay_client_that_does_not_read_pauses_the_backend() {
    for_each_backend(|backend| {
        // Small kernel buffers on every socket of the chain (relay listener, its
        // backend connection, the echo listener), so what the kernel holds does not
        // hide what the relay holds.
        let small = SocketOptions::default()
            .send_buffer(64 * 1024)
            .recv_buffer(64 * 1024);
        let echo = start_server_opts(backend, |b| b, &small, support::echo_factory);
        let relay = start_relay_from(backend, echo.addr, Duration::from_secs(5), None, small);
        let mut s = connect_small_rcvbuf(relay.addr, 4096);
        let payload = Rng::new(3).bytes(64 << 20);
        let mut w = s.try_clone().unwrap();
        let p2 = payload.clone();
        // The writer blocks once the relay stops reading (the echo backend's replies
        // back up to the client that does not read): the chain is bounded.
        let writer = std::thread::spawn(move || {
            w.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
            w.write_all(&p2)
        });
        // Wait until the relay has paused: it stopped reading, so the count of bytes
        // it received stops growing (checked every 200 ms), far short of the payload.
        // (Without backpressure it reads all 64 MiB and the assertion fails.)
        relay.wait_counters("the relay to receive something", |c| c.bytes_in > 0);
        let mut last = 0;
        support::wait_until("bytes in to settle", || {
            std::thread::sleep(Duration::from_millis(200));
            let now = relay.counters().bytes_in;
            let settled = now == last;
            last = now;
            settled
        });
        // bytes_in counts both of the relay's connections (client side and backend
        // side): each side's 1 MiB mark, the echo server's 1 MiB, and the small
        // socket buffers, twice, stay far below 24 MiB. Without the pausing the
        // relay reads all 64 MiB (and more, counting the echo).
        eprintln!("relay read {last} bytes while the client read nothing");
        assert!(
            last < 24 << 20,
            "the relay read {last} bytes of 64 MiB although the client reads nothing"
        );
        // Now read everything: all of it arrives, in order.
        read_expect(&mut s, &payload, 64 * 1024);
        writer.join().unwrap().unwrap();
        drop(s);
        relay.wait_counters("relay slots released", |c| c.open_conns == 0);
    });
}

#[test]
fn connect_refused_reaches_the_originator() {
    for_each_backend(|backend| {
        // A port nobody listens on: bind, note, close.
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let relay = start_relay(backend, dead, Duration::from_secs(5));
        let mut s = connect(relay.addr);
        let got = read_until(&mut s, b"\n");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("RELAY-CLOSED connect ConnectionRefused")
                && text.contains(&dead.to_string()),
            "{text}"
        );
        relay.wait_counters("slots released", |c| c.open_conns == 0);
    });
}

/// A socket that cannot be set up (here: a source address this host does not have,
/// so `bind` fails with `EADDRNOTAVAIL` before anything is sent) is reported to the
/// handler's `on_close` at once, by the same path as `EMFILE` from `socket()`.
#[test]
fn connect_setup_error_reaches_the_originator() {
    for_each_backend(|backend| {
        let echo = start_echo(backend, |b| b);
        let foreign: std::net::IpAddr = "192.0.2.1".parse().unwrap(); // TEST-NET-1
        let relay = start_relay_from(
            backend,
            echo.addr,
            Duration::from_secs(5),
            Some(foreign),
            SocketOptions::default(),
        );
        let mut s = connect(relay.addr);
        let got = read_until(&mut s, b"\n");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("RELAY-CLOSED connect AddrNotAvailable")
                && text.contains("bind source 192.0.2.1")
                && text.contains(&echo.addr.to_string()),
            "{text}"
        );
        relay.wait_counters("slots released", |c| c.open_conns == 0);
        assert_eq!(relay.counters().connects, 0);
    });
}

/// A listener whose accept queue is full, so that a further connect hangs (SYNs are
/// dropped) until the connector's timeout. Returns the listener's fd (kept open) and
/// the connections filling its queue.
fn full_listener() -> (std::os::fd::OwnedFd, SocketAddr, Vec<std::net::TcpStream>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: plain socket calls on a fresh fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just created and is owned here.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain data; all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: `sin` is a valid sockaddr_in of `len` bytes.
    let r = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    assert_eq!(r, 0);
    // SAFETY: plain listen on our socket.
    assert_eq!(unsafe { libc::listen(owned.as_raw_fd(), 0) }, 0);
    // SAFETY: plain data; all-zero is a valid sockaddr_in.
    let mut got: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut l = len;
    // SAFETY: `got` has room for `l` bytes.
    unsafe {
        libc::getsockname(
            owned.as_raw_fd(),
            (&mut got as *mut libc::sockaddr_in).cast(),
            &mut l,
        )
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], u16::from_be(got.sin_port)));
    // Fill the queue: connects that complete (backlog 0 holds one) until one does not.
    let mut fill = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(_) => break,
        }
    }
    (owned, addr, fill)
}

#[test]
fn connect_timeout_reaches_the_originator() {
    for_each_backend(|backend| {
        let (_l, addr, _fill) = full_listener();
        let relay = start_relay(backend, addr, Duration::from_millis(300));
        let mut s = connect(relay.addr);
        let got = read_until(&mut s, b"\n");
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("RELAY-CLOSED connect TimedOut"), "{text}");
        relay.wait_counters("slots released", |c| c.open_conns == 0);
        assert_eq!(relay.counters().timers_pending, 0, "no timer left behind");
    });
}

/// Sends a message to a connection that is gone; expects it back.
struct Orphan {
    victim: Option<ConnId>,
}

/// The victim: closes as soon as it opens.
struct Victim {
    owner: Notifier,
}

impl Handler for Victim {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.notify(self.owner.id(), conn.id());
        conn.close();
    }
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
    fn on_close(&mut self, _reason: CloseReason) {
        self.owner.notify(self.owner.id(), "victim closed");
    }
}

impl Handler for Orphan {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        // Connect to ourselves (the test server): the victim opens, reports, closes.
        let addr = conn.local_addr().unwrap();
        conn.connect(
            addr,
            Victim {
                owner: conn.notifier(),
            },
        );
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if data.starts_with(b"go") {
            if let Some(v) = self.victim {
                conn.notify(v, 42u32);
            }
        }
        data.len()
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, _from: ConnId, msg: Box<dyn Any>) {
        if let Some(id) = msg.downcast_ref::<ConnId>() {
            self.victim = Some(*id);
        } else if msg.downcast_ref::<&str>().is_some() {
            conn.send(b"closed\n");
        }
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        let back = msg.downcast::<u32>().map(|b| *b).unwrap_or(0);
        let ok = Some(to) == self.victim && back == 42;
        conn.send(format!("returned {ok}\n").as_bytes());
    }
}

/// The test server's connections: the first accepted is an [`Orphan`], the ones it
/// opens to itself are accepted as plain sinks.
#[test]
fn message_to_a_closed_connection_comes_back() {
    for_each_backend(|backend| {
        let first = std::sync::atomic::AtomicBool::new(true);
        let server = start_server(
            backend,
            |b| b,
            move |_: &ConnInfo| -> Box<dyn Handler> {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    Box::new(Orphan { victim: None })
                } else {
                    Box::new(support::Echo)
                }
            },
        );
        let mut s = connect(server.addr);
        let got = read_until(&mut s, b"closed\n");
        assert!(got.ends_with(b"closed\n"));
        s.write_all(b"go").unwrap();
        let got = read_until(&mut s, b"\n");
        assert_eq!(got, b"returned true\n");
        drop(s);
        server.wait_counters("slots released", |c| c.open_conns == 0);
    });
}

/// The connection a [`Canceller`] opens: records what happens to it.
struct Probe(Arc<Mutex<Vec<String>>>);

impl Handler for Probe {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.0.lock().unwrap().push("open".into());
    }
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.0.lock().unwrap().push(format!("close {reason:?}"));
    }
}

/// Opens a connection to a blackholed address and cancels it: at once (before its
/// socket exists), or when its client sends a byte (its connect pending).
struct Canceller {
    to: SocketAddr,
    at_once: bool,
    log: Arc<Mutex<Vec<String>>>,
    pending: Option<Connecting>,
}

impl Handler for Canceller {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let req = ConnectRequest::new(self.to).timeout(Duration::from_secs(3600));
        let h = conn.connect_with(req, Probe(self.log.clone()));
        self.log
            .lock()
            .unwrap()
            .push(format!("id at first {}", h.id().is_some()));
        if self.at_once {
            h.cancel();
        } else {
            self.pending = Some(h);
        }
    }
    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if let Some(h) = self.pending.take() {
            self.log
                .lock()
                .unwrap()
                .push(format!("id later {}", h.id().is_some()));
            h.cancel();
            h.cancel(); // a second call changes nothing
        }
        data.len()
    }
}

#[test]
fn connecting_cancel_before_the_socket_and_while_the_connect_is_pending() {
    for_each_backend(|backend| {
        let (_blackhole, hole) = unanswered_listener();
        for at_once in [true, false] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let l2 = log.clone();
            let server = start_server(
                backend,
                |b| b.workers(1),
                move |_: &ConnInfo| Canceller {
                    to: hole,
                    at_once,
                    log: l2.clone(),
                    pending: None,
                },
            );
            let mut s = connect(server.addr);
            if !at_once {
                support::wait_until("the connect is pending", || syn_sent_to(hole.port()) == 1);
                s.write_all(b"x").unwrap();
            }
            support::wait_until("the opened handler closed", || {
                log.lock().unwrap().iter().any(|l| l.starts_with("close"))
            });
            let got = log.lock().unwrap().clone();
            let want: Vec<String> = if at_once {
                vec!["id at first false".into(), "close Local".into()]
            } else {
                vec![
                    "id at first false".into(),
                    "id later true".into(),
                    "close Local".into(),
                ]
            };
            assert_eq!(got, want, "at_once {at_once}: no on_open, closed as Local");
            support::wait_until("no SYN pending", || syn_sent_to(hole.port()) == 0);
            server.wait_counters("only the client left", |c| c.open_conns == 1);
            drop(s);
            server.wait_counters("slots released", |c| c.open_conns == 0);
            assert_eq!(server.stop().panics, 0);
        }
    });
}
