//! Zero-copy echo (`Conn::send_received`): bytes sent straight from held receive
//! buffers stay intact, a held buffer returns to the pool once its bytes were sent or
//! dropped (reset, close, abort), and the hold limit makes a slow reader fall back to
//! copies instead of draining the pool. Both backends (epoll always copies).

mod support;

use ringcore::{BackendKind, Conn, ConnInfo, Counters, Handler};
use std::io::{Read, Write};
use support::client::{
    connect, connect_small_rcvbuf, echo_check, echo_many, read_to_eof, set_linger_zero, Rng,
};
use support::{for_each_backend, start_server, TestServer};

/// Echoes with `send_received`; optionally closes or aborts right after the first echo.
struct ZcEcho {
    then: Then,
}

#[derive(Clone, Copy)]
enum Then {
    Stay,
    Close,
    Abort,
}

impl Handler for ZcEcho {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        // Two halves: two chunks of the same held buffer.
        let (a, b) = data.split_at(data.len() / 2);
        conn.send_received(a);
        conn.send_received(b);
        match self.then {
            Then::Stay => {}
            Then::Close => conn.close(),
            Then::Abort => conn.abort(),
        }
        data.len()
    }
}

fn start(backend: BackendKind, then: Then, count: u16) -> TestServer {
    start_server(
        backend,
        |b| b.buf_count(count),
        move |_: &ConnInfo| ZcEcho { then },
    )
}

fn all_closed(server: &TestServer) -> Counters {
    let c = server.wait_counters("every connection closed, every hold released", |c| {
        c.open_conns == 0 && c.recv_held == 0
    });
    assert_eq!(c.panics, 0);
    c
}

#[test]
fn zero_copy_echo_is_intact_under_many_connections() {
    for_each_backend(|backend| {
        let server = start(backend, Then::Stay, 256);
        let mut rng = Rng::new(3);
        let mut s = connect(server.addr);
        let mut sent = 0u64;
        for n in [1, 2, 100, 16 * 1024, 16 * 1024 + 1, 300_001, 2 << 20] {
            let p = rng.bytes(n);
            echo_check(&mut s, &p, 64 * 1024);
            sent += n as u64;
        }
        drop(s);
        sent += echo_many(server.addr, 200, 8, 4, 4096, 5, || {});
        let c = all_closed(&server);
        assert_eq!((c.bytes_in, c.bytes_out), (sent, sent));
        eprintln!(
            "{backend}: {} held sends, {} fallbacks",
            c.recv_holds, c.recv_hold_fallbacks
        );
        if backend == BackendKind::Uring {
            assert!(c.recv_holds > 0, "no send went out of a held buffer");
        } else {
            assert_eq!(c.recv_holds, 0, "epoll must copy");
        }
        server.stop();
    });
}

/// Slow readers: 20 connections write 256 KiB each and read nothing until all wrote.
/// With a 16-buffer pool (hold limit 4) the holds run out: sends fall back to copies,
/// nothing is lost, and once everything was read every buffer is back.
#[test]
fn slow_readers_hit_the_hold_limit_and_lose_nothing() {
    for_each_backend(|backend| {
        let server = start(backend, Then::Stay, 16);
        let mut rng = Rng::new(9);
        let payloads: Vec<Vec<u8>> = (0..20).map(|_| rng.bytes(256 * 1024)).collect();
        // Small receive buffers: the echo backs up at once, so held sends stay queued.
        let mut socks: Vec<_> = payloads
            .iter()
            .map(|_| connect_small_rcvbuf(server.addr, 4096))
            .collect();
        std::thread::scope(|sc| {
            let writers: Vec<_> = socks
                .iter()
                .zip(&payloads)
                .map(|(s, p)| {
                    let mut w = s.try_clone().unwrap();
                    sc.spawn(move || w.write_all(p).unwrap())
                })
                .collect();
            // Read only once the server is known to hold as many buffers as it may
            // (or, on epoll, once it has read a good part).
            server.wait_counters("the holds to fill up", |c| {
                if backend == BackendKind::Uring {
                    c.recv_hold_fallbacks > 0
                } else {
                    c.bytes_in > 1 << 20
                }
            });
            for (s, p) in socks.iter_mut().zip(&payloads) {
                let mut got = vec![0u8; p.len()];
                s.read_exact(&mut got).unwrap();
                assert!(got == *p, "echo differs");
            }
            for w in writers {
                w.join().unwrap();
            }
        });
        drop(socks);
        let c = all_closed(&server);
        eprintln!(
            "{backend}: {} held sends, {} fallbacks, {} ENOBUFS",
            c.recv_holds, c.recv_hold_fallbacks, c.enobufs
        );
        // The pool is whole again: a fresh connection echoes.
        let mut s = connect(server.addr);
        echo_check(&mut s, &rng.bytes(100_000), 64 * 1024);
        drop(s);
        all_closed(&server);
        server.stop();
    });
}

/// Peers reset while sends from held buffers are in flight (they never read).
#[test]
fn peer_reset_while_held_send_in_flight() {
    for_each_backend(|backend| {
        let server = start(backend, Then::Stay, 64);
        let chunk = vec![7u8; 256 * 1024];
        let mut clients = Vec::new();
        for _ in 0..10 {
            let mut s = connect(server.addr);
            s.set_nonblocking(true).unwrap();
            let mut wrote = 0usize;
            while wrote < 64 << 20 {
                match s.write(&chunk) {
                    Ok(n) => wrote += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            clients.push(s);
        }
        server.wait_counters("every connection read from", |c| {
            c.open_conns == 10 && c.bytes_in >= 10 * 256 * 1024
        });
        for s in clients {
            set_linger_zero(&s);
        }
        all_closed(&server);
        let mut s = connect(server.addr);
        echo_check(&mut s, &[1, 2, 3], 64);
        drop(s);
        all_closed(&server);
        server.stop();
    });
}

/// Close and abort right after queueing held bytes: a close still sends them, an
/// abort drops them; either way the hold is released.
#[test]
fn close_or_abort_while_held() {
    for_each_backend(|backend| {
        for then in [Then::Close, Then::Abort] {
            let server = start(backend, then, 64);
            for _ in 0..20 {
                let mut s = connect(server.addr);
                s.write_all(b"hello, held buffer").unwrap();
                let got = read_to_eof(&mut s);
                if let Then::Close = then {
                    assert_eq!(
                        got.expect("close after send ends cleanly"),
                        b"hello, held buffer"
                    );
                }
            }
            all_closed(&server);
            server.stop();
        }
    });
}
