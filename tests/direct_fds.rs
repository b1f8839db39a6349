//! Direct descriptors (issue 12 item 1, `Builder::direct_descriptors`): accepted
//! sockets go into a per-worker registered file table and their receives, sends,
//! shutdowns and polls name the slot. Each test checks through the counters that the
//! ops really went through the table (`direct_ops`), that every slot is emptied again
//! (`direct_in_use` back to 0: a slot left behind would keep its socket open), and
//! that a full table loses no connection. Outbound sockets (`Conn::connect`, here
//! through the HTTP gateway, and the splice tunnel's upstream of `Conn::pipe_to`) go
//! into the table too, and so does each worker's UDP socket. On both backends; epoll ignores the option. The rest of the
//! suite runs with it forced on through `RINGCORE_DIRECT_FDS=1`.

mod support;

use ringcore::http::{GatewayConfig, GatewayConn, HttpConn, Limits, Router};
use ringcore::{BackendKind, Conn, ConnInfo, Counters, Handler};
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use support::client::{connect, echo_check, read_to_eof, set_linger_zero, wait_closed, Ended};
use support::http::{plaintext, HttpClient, HELLO};
use support::{for_each_backend, start_echo, start_server};

/// True when the counters show the table in use (io_uring); on epoll they must show
/// nothing at all.
fn direct_on(backend: BackendKind, c: &Counters) -> bool {
    if backend == BackendKind::Epoll {
        assert_eq!(
            (c.direct_conns, c.direct_ops, c.direct_fallbacks),
            (0, 0, 0),
            "epoll ignores direct descriptors: {c:?}"
        );
        return false;
    }
    true
}

/// Echo over 20 registered connections: every one got a slot, every round trip went
/// through it (a receive is armed once, so at least one send per round trip counts),
/// and every slot was emptied when the peers closed.
#[test]
fn echo_through_direct_descriptors() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.direct_descriptors(true));
        let mut conns: Vec<_> = (0..20).map(|_| connect(server.addr)).collect();
        for round in 0..5u8 {
            for (i, s) in conns.iter_mut().enumerate() {
                echo_check(s, &[round ^ i as u8; 300], 300);
            }
        }
        drop(conns);
        let c = server.wait_counters("20 closes, slots emptied", |c| {
            c.closes == 20 && c.open_conns == 0 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!(c.direct_conns, 20, "every connection registered: {c:?}");
            assert_eq!(c.direct_fallbacks, 0, "{c:?}");
            assert_eq!(c.direct_errors, 0, "{c:?}");
            assert!(c.direct_ops >= 20 * 6, "ops on the slots: {c:?}");
        }
        server.stop();
    });
}

/// HTTP keep-alive and `Connection: close` (the server's close is a linked
/// shutdown + close: its chain uses the plain fd, the slot is emptied before it).
#[test]
fn http_through_direct_descriptors() {
    for_each_backend(|backend| {
        let router = Router::new().get("/plaintext", plaintext);
        let server = start_server(
            backend,
            |b| b.direct_descriptors(true),
            HttpConn::factory(router, Limits::default()),
        );
        for i in 0..10 {
            let mut c = HttpClient::connect(server.addr);
            for _ in 0..3 {
                c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
                let r = c.read_response(false);
                assert_eq!((r.status, &r.body[..]), (200, HELLO), "connection {i}");
            }
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let r = c.read_response(false);
            assert_eq!(r.status, 200, "connection {i}");
            // The server closes: the peer must see it (a slot left in the table would
            // keep the socket open).
            c.expect_closed();
        }
        let c = server.wait_counters("10 closes, slots emptied", |c| {
            c.closes == 10 && c.open_conns == 0 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!(c.direct_conns, 10, "{c:?}");
            assert!(c.direct_ops >= 10 * 4, "{c:?}");
        }
        server.stop();
    });
}

/// A table of 4 slots and 12 connections open at once: 4 get slots, 8 run on their
/// plain fds, all 12 are served. Once they closed, the slots serve new connections.
#[test]
fn full_table_falls_back_without_losing_a_connection() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.direct_descriptors(true).direct_slots(4));
        let mut conns: Vec<_> = (0..12).map(|_| connect(server.addr)).collect();
        for round in 0..3u8 {
            for (i, s) in conns.iter_mut().enumerate() {
                echo_check(s, &[round.wrapping_add(i as u8); 1000], 1000);
            }
        }
        let c = server.counters();
        if direct_on(backend, &c) {
            assert_eq!((c.direct_conns, c.direct_fallbacks), (4, 8), "{c:?}");
            assert_eq!(c.direct_in_use, 4, "{c:?}");
        }
        drop(conns);
        server.wait_counters("12 closes, slots emptied", |c| {
            c.closes == 12 && c.direct_in_use == 0
        });
        let mut again: Vec<_> = (0..4).map(|_| connect(server.addr)).collect();
        for s in &mut again {
            echo_check(s, b"again", 5);
        }
        drop(again);
        let c = server.wait_counters("16 closes", |c| {
            c.closes == 16 && c.open_conns == 0 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!((c.direct_conns, c.direct_fallbacks), (8, 8), "{c:?}");
        }
        server.stop();
    });
}

/// Answers the first bytes, then closes: the close cancels the armed receive.
struct AnswerThenClose;

impl Handler for AnswerThenClose {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        conn.close();
        data.len()
    }
}

/// The close paths of a registered connection: closed by the server (cancel of the
/// armed receive, then close), reset by the peer with data unread, and aborted at the
/// drain deadline with a receive armed. Each peer sees its end and each slot empties.
#[test]
fn close_paths_empty_the_slot() {
    for_each_backend(|backend| {
        let server = start_server(
            backend,
            |b| b.direct_descriptors(true),
            |_: &ConnInfo| AnswerThenClose,
        );
        for i in 0..16u8 {
            let mut s = connect(server.addr);
            s.write_all(&[i; 64]).expect("send");
            let got = read_to_eof(&mut s).expect("the answer, then end of stream");
            assert_eq!(got, [i; 64], "connection {i}");
        }
        let c = server.wait_counters("16 server closes", |c| {
            c.closes == 16 && c.open_conns == 0 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!(c.direct_conns, 16, "{c:?}");
        }
        server.stop();

        let echo = start_echo(backend, |b| {
            b.direct_descriptors(true)
                .drain_timeout(Duration::from_millis(100))
        });
        // Peer resets, with echoed bytes still unread.
        for _ in 0..16 {
            let mut s = connect(echo.addr);
            echo_check(&mut s, b"hello", 5);
            s.write_all(&[7u8; 4096]).expect("send");
            set_linger_zero(&s);
            drop(s);
        }
        echo.wait_counters("16 reset connections closed, slots emptied", |c| {
            c.closes == 16 && c.open_conns == 0 && c.direct_in_use == 0
        });
        // Idle connections when the drain deadline passes: aborted, and the peers see
        // the end (a reset or an EOF), not a hang.
        let mut open: Vec<_> = (0..4).map(|_| connect(echo.addr)).collect();
        for s in &mut open {
            echo_check(s, b"x", 1);
        }
        let c = echo.stop();
        assert_eq!(c.closes, 20, "{c:?}");
        for s in &mut open {
            let end = wait_closed(s);
            assert!(
                matches!(end, Ended::Eof(0) | Ended::Reset(0)),
                "{backend}: {end:?}"
            );
        }
    });
}

/// The proxy handler of examples/proxy.rs: a splice tunnel to `upstream`.
struct Tunnel {
    upstream: SocketAddr,
}

impl Handler for Tunnel {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if conn.pipe_to(self.upstream, Duration::from_secs(5)).is_err() {
            conn.abort();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// A proxy with a 4-slot table and 6 tunnels open at once: 12 sockets on its worker
/// (6 accepted, 6 upstream), so 4 get slots and 8 run on their fds; every byte
/// arrives, and all slots empty once the clients leave.
#[test]
fn proxy_tunnels_with_a_tiny_table() {
    for_each_backend(|backend| {
        let echo = start_echo(backend, |b| b);
        let up = echo.addr;
        let proxy = start_server(
            backend,
            |b| b.direct_descriptors(true).direct_slots(4),
            move |_: &ConnInfo| Tunnel { upstream: up },
        );
        let mut conns: Vec<_> = (0..6).map(|_| connect(proxy.addr)).collect();
        for round in 0..3u8 {
            for (i, s) in conns.iter_mut().enumerate() {
                echo_check(s, &[round.wrapping_mul(7) ^ i as u8; 20_000], 4096);
            }
        }
        let c = proxy.counters();
        if direct_on(backend, &c) {
            // Both ends of every tunnel asked for a slot (the accepted socket before
            // its upstream, so the first two tunnels took all four).
            assert_eq!(c.direct_conns + c.direct_fallbacks, 12, "{c:?}");
            assert_eq!((c.direct_conns, c.direct_in_use), (4, 4), "{c:?}");
            assert_eq!(c.direct_errors, 0, "{c:?}");
        }
        drop(conns);
        proxy.wait_counters("6 tunnels closed, slots emptied", |c| {
            c.closes == 6 && c.open_conns == 0 && c.direct_in_use == 0
        });
        echo.wait_counters("6 upstream connections closed", |c| {
            c.closes == 6 && c.open_conns == 0
        });
        // The emptied slots serve new tunnels.
        let mut again = connect(proxy.addr);
        echo_check(&mut again, b"again", 5);
        drop(again);
        let c = proxy.wait_counters("7 tunnels closed", |c| {
            c.closes == 7 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!(c.direct_conns, 6, "{c:?}");
        }
        proxy.stop();
        echo.stop();
    });
}

/// The HTTP gateway (outbound `Conn::connect` per request, no pool) with a 4-slot
/// table: first 2 keep-alive clients (2 slots left, so the first upstream connection
/// certainly gets one), then 6 more at once (8 clients for 4 slots: some run on their
/// fds). Every response is right, and every slot, the outbound ones included, empties.
#[test]
fn gateway_outbound_with_a_tiny_table() {
    for_each_backend(|backend| {
        let router = Router::new().get("/api/plaintext", plaintext);
        let up = start_server(backend, |b| b, HttpConn::factory(router, Limits::default()));
        let cfg = GatewayConfig::new(up.addr).pool_max_idle(0);
        let gw = start_server(
            backend,
            |b| b.direct_descriptors(true).direct_slots(4),
            GatewayConn::factory(Router::new(), cfg),
        );
        let get = |clients: &mut Vec<HttpClient>, what: &str| {
            for round in 0..3 {
                for (i, c) in clients.iter_mut().enumerate() {
                    c.send(b"GET /api/plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
                    let r = c.read_response(false);
                    assert_eq!((r.status, &r.body[..]), (200, HELLO), "{what} {round}/{i}");
                }
            }
        };
        let mut clients: Vec<_> = (0..2).map(|_| HttpClient::connect(gw.addr)).collect();
        get(&mut clients, "two clients");
        let c = gw.counters();
        if direct_on(backend, &c) {
            assert_eq!(c.connects, 6, "{c:?}");
            assert!(c.direct_conns > 2, "outbound sockets registered: {c:?}");
        }
        clients.extend((0..6).map(|_| HttpClient::connect(gw.addr)));
        get(&mut clients, "eight clients");
        drop(clients);
        let c = gw.wait_counters("8 clients and 30 upstream connections closed", |c| {
            c.closes == 38 && c.open_conns == 0 && c.direct_in_use == 0
        });
        if direct_on(backend, &c) {
            assert_eq!(c.connects, 30, "{c:?}");
            assert_eq!(c.direct_conns + c.direct_fallbacks, 38, "{c:?}");
            assert!(c.direct_fallbacks > 0, "{c:?}");
            assert_eq!(c.direct_errors, 0, "{c:?}");
        }
        gw.stop();
        up.stop();
    });
}

/// Echoes every datagram.
struct UdpEcho;

impl ringcore::DatagramHandler for UdpEcho {
    fn on_datagram(&mut self, ctx: &mut ringcore::Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        ctx.send_to(peer, bytes);
    }
}

/// `count` UDP round trips of distinct datagrams through `addr`.
fn udp_round_trips(addr: SocketAddr, count: usize) {
    let c = support::udp::client("127.0.0.1:0");
    for i in 0..count {
        let msg = format!("datagram {i}");
        c.send_to(msg.as_bytes(), addr).unwrap();
        let (got, from) = support::udp::recv_from(&c);
        assert_eq!((&got[..], from), (msg.as_bytes(), addr), "datagram {i}");
    }
}

/// A worker's UDP socket goes into the table: its multishot `RECVMSG` and every
/// `SENDMSG` name the slot, and the close at shutdown empties it. Then the table is
/// tiny (one slot) with a TCP listener beside the UDP socket in the same worker: the
/// UDP socket takes the slot, every TCP connection falls back to its plain fd, and
/// both keep working.
#[test]
fn udp_through_direct_descriptors() {
    use ringcore::{UdpOptions, UdpSockets};
    for_each_backend(|backend| {
        let rt = support::base_builder(backend)
            .direct_descriptors(true)
            .build()
            .unwrap();
        let u = UdpSockets::bind("127.0.0.1:0", 1, &UdpOptions::default()).unwrap();
        let server = support::udp::serve_udp(rt, u, |_| UdpEcho);
        udp_round_trips(server.addr, 50);
        server.wait_counters("50 echoes counted", |c| c.datagrams_out == 50);
        let c = server.stop();
        if direct_on(backend, &c) {
            assert_eq!((c.direct_conns, c.direct_fallbacks), (1, 0), "{c:?}");
            // One receive armed, 50 sends, all on the slot.
            assert!(c.direct_ops >= 51, "ops on the slot: {c:?}");
            assert_eq!((c.direct_in_use, c.direct_errors), (0, 0), "{c:?}");
        }

        let rt = support::base_builder(backend)
            .direct_descriptors(true)
            .direct_slots(1)
            .build()
            .unwrap();
        let (server, tcp) = support::udp::serve_with_tcp_echo(rt, |_| UdpEcho);
        let udp = server.addr;
        for i in 0..5u8 {
            let mut s = connect(tcp);
            echo_check(&mut s, &[i; 100], 100);
            udp_round_trips(udp, 10);
            drop(s);
        }
        server.wait_counters("5 TCP closes", |c| c.closes == 5);
        let c = server.stop();
        assert_eq!((c.accepts, c.datagrams_out), (5, 50), "{backend}: {c:?}");
        if direct_on(backend, &c) {
            assert_eq!(
                (c.direct_conns, c.direct_fallbacks),
                (1, 5),
                "the UDP socket took the one slot: {c:?}"
            );
            assert_eq!((c.direct_in_use, c.direct_errors), (0, 0), "{c:?}");
        }
    });
}

/// A direct close that fails, seen late (issue 12): direct closes carry
/// `CQE_SKIP_SUCCESS`, so the only completion one can post is a failure, and the slot
/// was already let go by the SQ head (docs/design.md, "Direct descriptors"). The fault
/// injector (`direct_close_fail`) queues a second close behind every real one; the
/// kernel runs it on the emptied slot and posts a real `-EBADF`, which the table
/// receives 1..=4 loop turns late, typically after the slot went to a new connection
/// (the worker blocks between rounds, so the held failure meets the next round's
/// registrations). A failure that freed the slot again would put it on the free list
/// twice, and two live connections would share it: their bytes would cross. So each
/// round runs 3 connections at once next to a long-lived one, on a 4-slot table, and
/// checks every echo; the failures must be counted (`direct_close_errors`), no
/// connection may fall back (a leaked slot) and nothing panics.
#[test]
fn late_direct_close_failures_free_no_slot_twice() {
    use ringcore_runtime::fault::{stats, FaultPlan, FaultRates};
    for_each_backend(|backend| {
        let mut rates = FaultRates::none();
        rates.direct_close_fail = 1000;
        rates.max_delay_turns = 4;
        let injected_before = stats().direct_close_fails;
        let server = start_echo(backend, |b| {
            b.direct_descriptors(true)
                .direct_slots(4)
                .fault_injection(FaultPlan::new(13).rates(rates))
        });
        let mut long = connect(server.addr);
        echo_check(&mut long, b"long-lived", 10);
        const ROUNDS: u64 = 25;
        for round in 0..ROUNDS {
            let mut conns: Vec<_> = (0..3).map(|_| connect(server.addr)).collect();
            for (i, s) in conns.iter_mut().enumerate() {
                // Distinct bytes per connection: a shared slot would show as crossed bytes.
                let b = (round as u8).wrapping_mul(16) ^ (i as u8 + 1);
                echo_check(s, &[b; 2000], 2000);
            }
            echo_check(&mut long, &[0xee ^ round as u8; 500], 500);
            drop(conns);
            server.wait_counters("the round's 3 connections closed", |c| {
                c.closes == 3 * (round + 1) && c.open_conns == 1 && c.direct_in_use <= 1
            });
        }
        let injected = stats().direct_close_fails - injected_before;
        // The failures still held need loop turns to arrive: drive some with echoes.
        let mut n = 0u8;
        let c = server.wait_counters("every injected failure counted", |c| {
            n = n.wrapping_add(1);
            echo_check(&mut long, &[n; 64], 64);
            c.direct_close_errors >= injected
        });
        if direct_on(backend, &c) {
            assert_eq!(
                injected,
                3 * ROUNDS,
                "one second close per direct close: {c:?}"
            );
            assert_eq!(c.direct_close_errors, injected, "{c:?}");
            assert_eq!(c.direct_conns, 1 + 3 * ROUNDS, "{c:?}");
            assert_eq!(c.direct_fallbacks, 0, "no slot lost: {c:?}");
            assert_eq!(c.direct_errors, 0, "{c:?}");
            assert_eq!(c.direct_in_use, 1, "{c:?}");
        } else {
            assert_eq!((injected, c.direct_close_errors), (0, 0), "{c:?}");
        }
        assert_eq!(c.panics, 0, "{c:?}");
        drop(long);
        let c = server.wait_counters("all closed, slots emptied", |c| {
            c.open_conns == 0 && c.direct_in_use == 0
        });
        assert_eq!(c.closes, 1 + 3 * ROUNDS);
        server.stop();
    });
}
