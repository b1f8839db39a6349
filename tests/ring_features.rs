//! The io_uring set-up options of issue 12 item 4, each on, on both backends (the
//! epoll backend ignores them): a registered ring fd, connection cancels with
//! `CQE_SKIP_SUCCESS`, and `MSG_RING` wake-ups. The rest of the suite runs with them
//! forced on through `RINGCORE_REGISTERED_RING=1`, `RINGCORE_CQE_SKIP=1` and
//! `RINGCORE_MSG_RING=1`.

mod support;

use ringcore::{BackendKind, Conn, ConnInfo, Handler};
use std::io::Write;
use std::time::Duration;
use support::client::{connect, echo_check, read_to_eof};
use support::{for_each_backend, start_echo, start_server};

/// Every round trip goes through `io_uring_enter` on the registered index.
#[test]
fn registered_ring_fd_serves_echo() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.registered_ring(true));
        let mut conns: Vec<_> = (0..20).map(|_| connect(server.addr)).collect();
        for round in 0..5u8 {
            for (i, s) in conns.iter_mut().enumerate() {
                echo_check(s, &[round ^ i as u8; 300], 300);
            }
        }
        drop(conns);
        server.wait_counters("20 closes", |c| c.closes == 20);
        let c = server.stop();
        if backend == BackendKind::Uring {
            assert!(c.enters > 0, "{c:?}");
        }
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

/// With `CQE_SKIP_SUCCESS` a successful cancel posts nothing: if the lifecycle still
/// counted it in flight, no slot would ever be released (no `on_close`, no closed
/// fd). Closes begun by the server (cancel of the armed receive, linked send + close),
/// by the peer (end of stream) and by the drain deadline must all complete.
#[test]
fn skipped_cancel_cqes_still_release_every_slot() {
    for_each_backend(|backend| {
        let n = 64u64;
        let server = start_server(
            backend,
            |b| b.skip_cancel_cqe(true),
            |_: &ConnInfo| AnswerThenClose,
        );
        for i in 0..n {
            let mut s = connect(server.addr);
            let msg = [i as u8; 100];
            s.write_all(&msg).expect("send");
            let got = read_to_eof(&mut s).expect("the answer, then end of stream");
            assert_eq!(got, msg, "connection {i}");
        }
        server.wait_counters("every server-closed slot released", |c| {
            c.closes == n && c.open_conns == 0
        });
        // Peer-initiated closes of an echo server, and an abort with a receive armed.
        let echo = start_echo(backend, |b| {
            b.skip_cancel_cqe(true)
                .drain_timeout(Duration::from_millis(100))
        });
        for _ in 0..n {
            let mut s = connect(echo.addr);
            echo_check(&mut s, b"hello", 5);
        }
        echo.wait_counters("every peer-closed slot released", |c| {
            c.closes == n && c.open_conns == 0
        });
        let open: Vec<_> = (0..8).map(|_| connect(echo.addr)).collect();
        echo.wait_counters("8 accepted", |c| c.accepts == n + 8);
        // Shutdown aborts the open connections: cancels with their receives armed.
        let c = echo.stop();
        assert_eq!(c.closes, n + 8, "{c:?}");
        server.stop();
        drop(open);
    });
}

/// Wake-ups from other threads arrive as `MSG_RING` completions on io_uring: the
/// shutdown request (a wake of every worker) ends the worker.
#[test]
fn msg_ring_wakes_the_worker() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.msg_ring_wake(true));
        let mut s = connect(server.addr);
        echo_check(&mut s, b"ping", 4);
        drop(s);
        server.wait_counters("the close", |c| c.closes == 1);
        // The worker waits in its loop now, with nothing to do: only a wake ends it.
        let c = server.stop();
        if backend == BackendKind::Uring {
            // One from the start-up probe (a wake to itself), one from the shutdown.
            assert_eq!(
                c.msg_ring_wakes, 2,
                "the shutdown wake was no MSG_RING: {c:?}"
            );
        } else {
            assert_eq!(c.msg_ring_wakes, 0, "{c:?}");
        }
    });
}
