//! Echo correctness: random payloads from 1 B to 4 MiB over 1, 100 and 2,000
//! concurrent connections, every byte checked in order; client half-close.

mod support;

use std::io::Write;
use support::client::{
    connect, echo_check, echo_many, read_expect, read_to_eof, shutdown_write, Rng,
};
use support::{for_each_backend, start_echo};

/// Sizes around the interesting edges: one byte, one receive buffer (16 KiB default)
/// and one past it, a send's iovec budget, and up to 4 MiB.
const SIZES: &[usize] = &[
    1,
    2,
    63,
    4096,
    16 * 1024 - 1,
    16 * 1024,
    16 * 1024 + 1,
    65_537,
    512 * 1024 + 3,
    1 << 20,
    4 << 20,
];

#[test]
fn one_connection_payloads_1b_to_4mib() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b);
        let mut rng = Rng::new(1);
        let mut s = connect(server.addr);
        let mut sent = 0u64;
        // Fixed edge sizes, then random ones, all on the same connection (in order).
        let mut sizes = SIZES.to_vec();
        sizes.extend((0..8).map(|_| rng.range(1, 4 << 20)));
        for n in sizes {
            let payload = rng.bytes(n);
            echo_check(&mut s, &payload, 64 * 1024);
            sent += n as u64;
        }
        drop(s);
        let c = server.wait_counters("the connection to close", |c| c.open_conns == 0);
        assert_eq!(c.bytes_in, sent, "server received every byte once");
        assert_eq!(c.bytes_out, sent, "server sent every byte once");
        assert_eq!((c.accepts, c.closes), (1, 1));
        server.stop();
    });
}

#[test]
fn hundred_concurrent_connections() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b);
        let echoed = echo_many(server.addr, 100, 10, 3, 256 * 1024, 100, || {
            server.wait_counters("100 open connections", |c| c.open_conns == 100);
        });
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.accepts, 100);
        assert_eq!(c.closes, 100);
        assert_eq!(c.bytes_in, echoed);
        assert_eq!(c.bytes_out, echoed);
        server.stop();
    });
}

#[test]
fn two_thousand_concurrent_connections() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b);
        let echoed = echo_many(server.addr, 2000, 8, 2, 2048, 2000, || {
            // Every connection is open on the server at once before any byte moves.
            server.wait_counters("2000 open connections", |c| c.open_conns == 2000);
        });
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.accepts, 2000);
        assert_eq!(c.closes, 2000);
        assert_eq!(c.bytes_in, echoed);
        assert_eq!(c.bytes_out, echoed);
        let c = server.stop();
        assert_eq!(c.panics, 0);
    });
}

#[test]
fn many_small_writes_arrive_in_order() {
    // Thousands of tiny writes on one connection coalesce on the server (sends of one
    // turn leave together); order must survive the coalescing.
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b);
        let mut rng = Rng::new(7);
        let payload = rng.bytes(200_000);
        let mut s = connect(server.addr);
        let mut w = s.try_clone().unwrap();
        std::thread::scope(|sc| {
            let p = &payload;
            let writer = sc.spawn(move || {
                let mut r = Rng::new(8);
                let mut off = 0;
                while off < p.len() {
                    let n = r.range(1, 97).min(p.len() - off);
                    w.write_all(&p[off..off + n]).expect("write");
                    off += n;
                }
            });
            read_expect(&mut s, &payload, 1000);
            writer.join().unwrap();
        });
        server.stop();
    });
}

#[test]
fn client_half_close_gets_all_echo_then_eof() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b);
        for (i, n) in [1usize, 100_000, 3 << 20].into_iter().enumerate() {
            let payload = Rng::new(50 + i as u64).bytes(n);
            let mut s = connect(server.addr);
            let mut w = s.try_clone().unwrap();
            let got = std::thread::scope(|sc| {
                let p = &payload;
                sc.spawn(move || {
                    w.write_all(p).expect("write");
                    shutdown_write(&w);
                });
                read_to_eof(&mut s)
            });
            let got = got.unwrap_or_else(|(got, e)| {
                panic!(
                    "{n} B half-close: expected echo then EOF, got {} B then {e}",
                    got.len()
                )
            });
            assert_eq!(got.len(), n, "echo length before EOF");
            assert!(got == payload, "echo of {n} B before EOF differs");
        }
        let c = server.wait_counters("half-closed connections closed", |c| c.open_conns == 0);
        assert_eq!(c.closes, 3);
        server.stop();
    });
}

/// SQPOLL (io_uring only; a kernel thread polls the submission queue): the same
/// byte-exact echo over many connections, and submissions cost fewer enters than
/// completions.
#[test]
fn sqpoll_echo() {
    for_each_backend(|backend| {
        if backend != ringcore::BackendKind::Uring {
            eprintln!("sqpoll_echo: SQPOLL is an io_uring feature; nothing to test on {backend}");
            return;
        }
        let server = start_echo(backend, |b| {
            b.sqpoll(std::time::Duration::from_millis(50), None)
        });
        let echoed = echo_many(server.addr, 50, 10, 3, 64 * 1024, 50, || {
            server.wait_counters("50 open connections", |c| c.open_conns == 50);
        });
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.bytes_in, echoed);
        assert_eq!(c.bytes_out, echoed);
        assert!(
            c.enters < c.cqes,
            "SQPOLL submits without an enter per op: {c:?}"
        );
        server.stop();
    });
}
