//! UDP on both backends over real loopback sockets: echo with many peers, source
//! addresses (IPv4, IPv6, IPv4 on a dual-stack `[::]` socket), truncation of oversized
//! datagrams, buffer-ring exhaustion, kernel drops, a full send queue, a panicking
//! callback, drain and shutdown (alone and beside a TCP listener).

mod support;

use ringcore::net::udp::payload_capacity;
use ringcore::{
    BackendKind, Builder, DatagramHandler, Datagrams, ServeUdp, UdpOptions, UdpSockets,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::Rng;
use support::udp::{client, recv_from, serve_udp, serve_with_tcp_echo};
use support::{base_builder, for_each_backend, TestServer, DEADLINE};

/// Replies with every datagram it gets.
struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        ctx.send_to(peer, bytes);
    }
}

/// A one-worker server of `factory` on `addr` (`tweak` applied to the builder), or
/// `None` where an IPv6 address cannot be bound here.
fn start<D: ringcore::DatagramFactory>(
    backend: BackendKind,
    addr: &str,
    opts: UdpOptions,
    tweak: impl FnOnce(Builder) -> Builder,
    factory: D,
) -> Option<TestServer> {
    let rt = tweak(base_builder(backend)).build().expect("runtime");
    let sockets = match UdpSockets::bind(addr, 1, &opts) {
        Ok(s) => s,
        Err(e) if addr.starts_with('[') => {
            eprintln!("skipping {addr}: IPv6 unavailable here ({e})");
            return None;
        }
        Err(e) => panic!("bind {addr}: {e}"),
    };
    Some(serve_udp(rt, sockets, factory))
}

/// The [`Echo`] server on 127.0.0.1.
fn echo_server(backend: BackendKind) -> TestServer {
    start(
        backend,
        "127.0.0.1:0",
        UdpOptions::default(),
        |b| b,
        |_| Echo,
    )
    .unwrap()
}

#[test]
fn echo_many_peers() {
    for_each_backend(|backend| {
        let server = echo_server(backend);
        let peers: Vec<UdpSocket> = (0..50).map(|_| client("127.0.0.1:0")).collect();
        let mut rng = Rng::new(13);
        let mut total = 0u64;
        for round in 0..10 {
            let sent: Vec<Vec<u8>> = peers
                .iter()
                .map(|p| {
                    let n = rng.range(1, 1400);
                    let bytes = rng.bytes(n);
                    p.send_to(&bytes, server.addr).unwrap();
                    total += 1;
                    bytes
                })
                .collect();
            for (p, want) in peers.iter().zip(&sent) {
                let (got, from) = recv_from(p);
                assert_eq!(
                    from, server.addr,
                    "{backend}: reply from the server's address"
                );
                assert_eq!(&got, want, "{backend}: round {round}: echo differs");
            }
        }
        // An empty datagram is a datagram too.
        peers[1].send_to(&[], server.addr).unwrap();
        assert_eq!(recv_from(&peers[1]).0, b"");
        total += 1;
        // One peer, the largest datagram a default buffer holds whole.
        let big = rng.bytes(payload_capacity(16 * 1024));
        peers[0].send_to(&big, server.addr).unwrap();
        assert_eq!(recv_from(&peers[0]).0, big);
        total += 1;
        let c = server.wait_counters("every reply sent", |c| c.datagrams_out == total);
        assert_eq!(c.datagrams_in, total);
        assert_eq!(
            (
                c.datagrams_dropped,
                c.datagram_errors,
                c.datagrams_truncated
            ),
            (0, 0, 0)
        );
        server.stop();
    });
}

/// Replies with the source address it saw, as text.
struct WhoAmI;

impl DatagramHandler for WhoAmI {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, _: &[u8]) {
        ctx.send_to(peer, peer.to_string().as_bytes());
    }
}

fn check_source(server: &TestServer, client_bind: &str, target: SocketAddr) {
    let c = client(client_bind);
    c.send_to(b"who", target).unwrap();
    let (got, _) = recv_from(&c);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        c.local_addr().unwrap().to_string(),
        "source address seen by the server on {}",
        server.addr
    );
}

#[test]
fn source_addresses_v4_v6_and_dual_stack() {
    for_each_backend(|backend| {
        let v4 = start(
            backend,
            "127.0.0.1:0",
            UdpOptions::default(),
            |b| b,
            |_| WhoAmI,
        )
        .unwrap();
        check_source(&v4, "127.0.0.1:0", v4.addr);
        v4.stop();
        if let Some(v6) = start(backend, "[::1]:0", UdpOptions::default(), |b| b, |_| WhoAmI) {
            check_source(&v6, "[::1]:0", v6.addr);
            v6.stop();
        }
        if let Some(any) = start(backend, "[::]:0", UdpOptions::default(), |b| b, |_| WhoAmI) {
            let port = any.addr.port();
            // An IPv4 peer of the dual-stack socket is reported (and answered) as IPv4.
            check_source(
                &any,
                "127.0.0.1:0",
                SocketAddr::from(([127, 0, 0, 1], port)),
            );
            check_source(&any, "[::1]:0", format!("[::1]:{port}").parse().unwrap());
            any.stop();
        }
    });
}

/// Says `T <len>` for a truncated datagram, `D <len>` for a whole one.
struct Sizes;

impl DatagramHandler for Sizes {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, b: &[u8]) {
        ctx.send_to(peer, format!("D {}", b.len()).as_bytes());
    }
    fn on_truncated(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, prefix: &[u8]) {
        ctx.send_to(peer, format!("T {}", prefix.len()).as_bytes());
    }
}

#[test]
fn oversized_datagram_is_truncated_and_reported() {
    for_each_backend(|backend| {
        let server = start(
            backend,
            "127.0.0.1:0",
            UdpOptions::default(),
            |b| b.buf_size(2048),
            |_| Sizes,
        )
        .unwrap();
        let cap = payload_capacity(2048);
        let c = client("127.0.0.1:0");
        for (n, want) in [
            (5000, format!("T {cap}")),
            (cap, format!("D {cap}")),
            (cap + 1, format!("T {cap}")),
            (10, "D 10".to_string()),
        ] {
            c.send_to(&vec![7u8; n], server.addr).unwrap();
            assert_eq!(
                String::from_utf8(recv_from(&c).0).unwrap(),
                want,
                "{backend}: {n} bytes"
            );
        }
        let c = server.stop();
        assert_eq!((c.datagrams_truncated, c.datagrams_in), (2, 2));
    });
}

/// Echo that blocks on its first datagram until the test opens the gate (so datagrams
/// pile up in the socket while the worker is held).
struct Gated {
    gate: Option<mpsc::Receiver<()>>,
    held: mpsc::Sender<()>,
}

impl DatagramHandler for Gated {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        if let Some(gate) = self.gate.take() {
            let _ = self.held.send(());
            let _ = gate.recv_timeout(DEADLINE);
        }
        ctx.send_to(peer, bytes);
    }
}

fn gated(
    backend: BackendKind,
    opts: UdpOptions,
    tweak: impl FnOnce(Builder) -> Builder,
) -> (TestServer, mpsc::Sender<()>, mpsc::Receiver<()>) {
    let (open, gate) = mpsc::channel();
    let (held_tx, held) = mpsc::channel();
    let slot = Arc::new(Mutex::new(Some((gate, held_tx))));
    let server = start(backend, "127.0.0.1:0", opts, tweak, move |_| {
        let (gate, held) = slot.lock().unwrap().take().expect("one worker");
        Gated {
            gate: Some(gate),
            held,
        }
    })
    .unwrap();
    (server, open, held)
}

fn set_rcvbuf(s: &UdpSocket, bytes: usize) {
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBuf, &bytes).unwrap();
}

#[test]
fn burst_beyond_the_buffer_ring_is_all_delivered() {
    for_each_backend(|backend| {
        let opts = UdpOptions::default().recv_buffer(1 << 20);
        let (server, open, held) = gated(backend, opts, |b| b.buf_count(4).buf_size(1024));
        let c = client("127.0.0.1:0");
        set_rcvbuf(&c, 1 << 20);
        c.send_to(b"first", server.addr).unwrap();
        held.recv_timeout(DEADLINE)
            .expect("the worker holds the first datagram");
        const BURST: usize = 100;
        for i in 0..BURST {
            c.send_to(format!("burst {i}").as_bytes(), server.addr)
                .unwrap();
        }
        open.send(()).unwrap();
        let mut got = vec![recv_from(&c).0];
        for _ in 0..BURST {
            got.push(recv_from(&c).0);
        }
        assert_eq!(got[0], b"first");
        for (i, g) in got[1..].iter().enumerate() {
            assert_eq!(
                g,
                format!("burst {i}").as_bytes(),
                "{backend}: in order, none lost"
            );
        }
        // The socket keeps working after the burst.
        c.send_to(b"after", server.addr).unwrap();
        assert_eq!(recv_from(&c).0, b"after");
        let counters = server.stop();
        assert_eq!(counters.datagrams_in, BURST as u64 + 2);
        assert_eq!(counters.datagrams_kernel_dropped, 0);
        if backend == BackendKind::Uring {
            assert!(
                counters.enobufs > 0,
                "4 buffers for 100 datagrams must run dry"
            );
        }
    });
}

#[test]
fn receive_buffer_overflow_is_counted() {
    for_each_backend(|backend| {
        let opts = UdpOptions::default().recv_buffer(4096);
        let (server, open, held) = gated(backend, opts, |b| b);
        let c = client("127.0.0.1:0");
        set_rcvbuf(&c, 1 << 20);
        c.send_to(b"first", server.addr).unwrap();
        held.recv_timeout(DEADLINE)
            .expect("the worker holds the first datagram");
        const BURST: u64 = 300;
        for _ in 0..BURST {
            c.send_to(&[1u8; 200], server.addr).unwrap();
        }
        open.send(()).unwrap();
        // A datagram received after the overflow carries the kernel's drop count:
        // send numbered markers until one is echoed (an earlier one may be dropped
        // too, while the queue is still full; its drop is counted as well).
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut sent = BURST + 1;
        let mut buf = [0u8; 512];
        'markers: for k in 0.. {
            assert!(k < 200, "{backend}: no marker came back");
            let marker = format!("marker {k}");
            c.send_to(marker.as_bytes(), server.addr).unwrap();
            sent += 1;
            while let Ok((n, _)) = c.recv_from(&mut buf) {
                if &buf[..n] == marker.as_bytes() {
                    break 'markers;
                }
            }
        }
        let counters = server.wait_counters("every datagram received or counted as dropped", |k| {
            k.datagrams_in + k.datagrams_kernel_dropped == sent
        });
        assert!(
            counters.datagrams_kernel_dropped > 0,
            "{backend}: {counters:?}"
        );
        server.stop();
    });
}

/// Answers each datagram with ten copies and reports how many `send_to` accepted.
struct Tenfold {
    accepted: Arc<Mutex<Vec<bool>>>,
}

impl DatagramHandler for Tenfold {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        for _ in 0..10 {
            let ok = ctx.send_to(peer, bytes);
            self.accepted.lock().unwrap().push(ok);
        }
        assert_eq!(ctx.queued(), ctx.queue_limit());
    }
}

#[test]
fn full_send_queue_drops_and_counts() {
    for_each_backend(|backend| {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let a2 = accepted.clone();
        let opts = UdpOptions::default().send_queue(4);
        let server = start(
            backend,
            "127.0.0.1:0",
            opts,
            |b| b,
            move |_| Tenfold {
                accepted: a2.clone(),
            },
        )
        .unwrap();
        let c = client("127.0.0.1:0");
        c.send_to(b"x", server.addr).unwrap();
        let k = server.wait_counters("the sends done", |k| k.datagrams_out == 4);
        assert_eq!(k.datagrams_dropped, 6, "{backend}: {k:?}");
        for _ in 0..4 {
            assert_eq!(recv_from(&c).0, b"x");
        }
        let acc = accepted.lock().unwrap().clone();
        assert_eq!(acc, [[true; 4].as_slice(), [false; 6].as_slice()].concat());
        // The queue empties as sends complete: the next datagram gets 4 replies again.
        c.send_to(b"y", server.addr).unwrap();
        for _ in 0..4 {
            assert_eq!(recv_from(&c).0, b"y");
        }
        let k = server.stop();
        assert_eq!((k.datagrams_out, k.datagrams_dropped), (8, 12));
    });
}

/// Panics on `boom`, echoes the rest.
struct Fragile;

impl DatagramHandler for Fragile {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        assert_ne!(bytes, b"boom", "test panic in a UDP callback");
        ctx.send_to(peer, bytes);
    }
}

#[test]
fn a_panicking_callback_does_not_stop_the_socket() {
    for_each_backend(|backend| {
        let server = start(
            backend,
            "127.0.0.1:0",
            UdpOptions::default(),
            |b| b,
            |_| Fragile,
        )
        .unwrap();
        let c = client("127.0.0.1:0");
        c.send_to(b"boom", server.addr).unwrap();
        server.wait_counters("the panic counted", |k| k.panics == 1);
        c.send_to(b"fine", server.addr).unwrap();
        assert_eq!(recv_from(&c).0, b"fine");
        server.stop();
    });
}

/// Echo that says `bye` to the last peer when the drain begins.
struct Polite {
    last: Option<SocketAddr>,
}

impl DatagramHandler for Polite {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        self.last = Some(peer);
        ctx.send_to(peer, bytes);
    }
    fn on_drain(&mut self, ctx: &mut Datagrams<'_>) {
        assert!(ctx.is_draining());
        if let Some(p) = self.last {
            ctx.send_to(p, b"bye");
        }
    }
}

#[test]
fn drain_sends_queued_replies_then_closes_the_socket() {
    for_each_backend(|backend| {
        let server = start(
            backend,
            "127.0.0.1:0",
            UdpOptions::default(),
            |b| b,
            |_| Polite { last: None },
        )
        .unwrap();
        let server_addr = server.addr;
        let c = client("127.0.0.1:0");
        c.send_to(b"hi", server.addr).unwrap();
        assert_eq!(recv_from(&c).0, b"hi");
        let k = server.stop();
        assert_eq!(
            recv_from(&c).0,
            b"bye",
            "{backend}: a reply queued in on_drain leaves"
        );
        assert_eq!(k.datagrams_out, 2);
        // The server's socket is closed: a socket without SO_REUSEPORT can take the
        // port (EADDRINUSE while any server socket is open).
        UdpSocket::bind(server_addr).expect("the server socket was closed");
    });
}

#[test]
fn udp_beside_tcp_in_one_runtime() {
    for_each_backend(|backend| {
        use std::io::{Read, Write};
        let rt = base_builder(backend).workers(2).build().unwrap();
        let (server, tcp_addr) = serve_with_tcp_echo(rt, |_| Echo);
        let udp_addr = server.addr;
        for i in 0..20 {
            let c = client("127.0.0.1:0");
            let msg = format!("udp {i}");
            c.send_to(msg.as_bytes(), udp_addr).unwrap();
            assert_eq!(recv_from(&c).0, msg.as_bytes());
            let mut s = std::net::TcpStream::connect(tcp_addr).unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            s.write_all(b"tcp").unwrap();
            let mut b = [0u8; 3];
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"tcp");
        }
        let k = server.stop();
        assert_eq!((k.datagrams_in, k.datagrams_out, k.accepts), (20, 20, 20));
    });
}

#[test]
fn bad_configurations_fail_with_a_clear_error() {
    for_each_backend(|backend| {
        // One socket for two workers.
        let rt = base_builder(backend).workers(2).build().unwrap();
        let one = UdpSockets::bind("127.0.0.1:0", 1, &UdpOptions::default()).unwrap();
        let e = rt.serve_udp(one, |_| Echo).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("bind one per worker"), "{e}");
        // Receive buffers too small to hold a datagram's header and address.
        let rt = base_builder(backend).buf_size(64).build().unwrap();
        let e = rt.serve_udp("127.0.0.1:0", |_| Echo).unwrap_err();
        assert!(e.to_string().contains("raise buf_size"), "{backend}: {e}");
        // A Unix address is not a UDP address.
        assert!(UdpSockets::bind("unix:/tmp/x", 1, &UdpOptions::default()).is_err());
    });
}
