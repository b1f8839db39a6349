//! Flow control and scarce resources: a slow reader (short sends resumed), a handler
//! that pauses reading on backpressure, a two-buffer receive pool and tiny rings.

mod support;

use ringcore::{BackendKind, CloseReason, Conn, ConnInfo, Handler, SocketOptions};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use support::client::{connect_small_rcvbuf, echo_check, echo_many, Rng};
use support::{echo_factory, for_each_backend, start_echo, start_server, start_server_opts};

const BIG: usize = 8 << 20;

#[test]
fn slow_reader_gets_every_byte_and_sends_resume() {
    for_each_backend(|backend| {
        // The server's send buffer is smaller than one 16 KiB receive's echo, and the
        // client has a 4 KiB receive buffer and reads 1 KiB at a time: the server's
        // sends outrun the window and must be cut short, then resumed.
        let opts = SocketOptions::default().send_buffer(8 * 1024);
        let server = start_server_opts(backend, |b| b, &opts, echo_factory);
        let payload = Rng::new(11).bytes(BIG);
        let mut s = connect_small_rcvbuf(server.addr, 4096);
        echo_check(&mut s, &payload, 1024);
        drop(s);
        let c = server.wait_counters("the slow connection to close", |c| c.open_conns == 0);
        assert_eq!(c.bytes_out, BIG as u64);
        assert!(
            c.short_sends > 0,
            "a slow reader must cause short sends (resumed): {c:?}"
        );
        server.stop();
    });
}

/// Echo with backpressure: stop reading while more than `limit` bytes wait to be sent,
/// resume when the queue drains.
struct Backpressure {
    limit: usize,
    paused: bool,
    stats: Arc<PauseStats>,
}

#[derive(Default)]
struct PauseStats {
    pauses: AtomicU64,
    resumes: AtomicU64,
    /// Largest `pending_write` seen after queueing an echo.
    max_pending: AtomicU64,
    /// Bytes delivered to `on_data` while the handler had paused reading.
    while_paused: AtomicU64,
    /// Why the last connection closed.
    closed: Mutex<Option<String>>,
}

impl Handler for Backpressure {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.paused {
            self.stats
                .while_paused
                .fetch_add(data.len() as u64, Relaxed);
        }
        conn.send(data);
        let pending = conn.pending_write();
        self.stats.max_pending.fetch_max(pending as u64, Relaxed);
        if pending > self.limit && !self.paused {
            self.paused = true;
            self.stats.pauses.fetch_add(1, Relaxed);
            conn.pause_reading();
        }
        data.len()
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.paused {
            self.paused = false;
            self.stats.resumes.fetch_add(1, Relaxed);
            conn.resume_reading();
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        *self.stats.closed.lock().unwrap() = Some(format!("{reason:?}"));
    }
}

#[test]
fn pause_on_backpressure_resume_on_sent() {
    for_each_backend(|backend| {
        let stats = Arc::new(PauseStats::default());
        let st = stats.clone();
        let limit = 64 * 1024;
        // A small server send buffer makes the slow reader's backpressure reach the
        // write queue on both backends (loopback autotuning would absorb 8 MiB).
        let opts = SocketOptions::default().send_buffer(8 * 1024);
        let server = start_server_opts(
            backend,
            |b| b,
            &opts,
            move |_: &ConnInfo| Backpressure {
                limit,
                paused: false,
                stats: st.clone(),
            },
        );
        let payload = Rng::new(12).bytes(BIG);
        let mut s = connect_small_rcvbuf(server.addr, 4096);
        let echoed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            echo_check(&mut s, &payload, 1024)
        }));
        if let Err(p) = echoed {
            drop(s);
            server.wait_counters("the failed connection to close", |c| c.open_conns == 0);
            let reason = stats.closed.lock().unwrap().clone();
            eprintln!("server closed the connection with reason {reason:?}");
            std::panic::resume_unwind(p);
        }
        drop(s);
        let c = server.wait_counters("the connection to close", |c| c.open_conns == 0);
        assert_eq!(c.bytes_in, BIG as u64);
        assert_eq!(c.bytes_out, BIG as u64);
        let (pauses, resumes) = (stats.pauses.load(Relaxed), stats.resumes.load(Relaxed));
        assert!(pauses > 0, "the slow reader must trigger backpressure");
        assert!(
            resumes >= pauses - 1,
            "every pause but the last is resumed ({pauses} / {resumes})"
        );
        assert_eq!(
            stats.while_paused.load(Relaxed),
            0,
            "on_data must not run while reading is paused"
        );
        server.stop();
    });
}

#[test]
fn two_buffer_pool_with_200_bursting_clients() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.buf_count(2).buf_size(64));
        let echoed = echo_many(server.addr, 200, 8, 3, 32 * 1024, 200, || {
            server.wait_counters("200 open connections", |c| c.open_conns == 200);
        });
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.bytes_in, echoed);
        assert_eq!(c.bytes_out, echoed);
        if backend == BackendKind::Uring {
            assert!(
                c.enobufs > 0,
                "two 64 B buffers for 200 clients must run dry: {c:?}"
            );
        }
        server.stop();
    });
}

#[test]
fn tiny_submission_and_completion_queues() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.ring_entries(4).cq_entries(8));
        let echoed = echo_many(server.addr, 200, 8, 3, 64 * 1024, 300, || {
            server.wait_counters("200 open connections", |c| c.open_conns == 200);
        });
        // And one large transfer through the same tiny rings.
        let payload = Rng::new(13).bytes(2 << 20);
        let mut s = support::client::connect(server.addr);
        echo_check(&mut s, &payload, 64 * 1024);
        drop(s);
        let c = server.wait_counters("all connections closed", |c| c.open_conns == 0);
        assert_eq!(c.bytes_in, echoed + payload.len() as u64);
        assert_eq!(c.bytes_out, echoed + payload.len() as u64);
        eprintln!(
            "tiny rings on {backend}: sq_full={} cq_overflow={}",
            c.sq_full, c.cq_overflow
        );
        if backend == BackendKind::Uring {
            assert!(
                c.sq_full > 0,
                "a 4-entry SQ under 200 clients must fill: {c:?}"
            );
        }
        server.stop();
    });
}

/// Pauses reading on the first bytes and resumes from the idle timer (a later event);
/// bytes that arrive meanwhile must be delivered after the resume.
struct PauseThenResume {
    paused_once: bool,
}

impl Handler for PauseThenResume {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        if !self.paused_once {
            self.paused_once = true;
            conn.pause_reading();
            conn.set_idle_timeout(Some(std::time::Duration::from_millis(200)));
        }
        data.len()
    }

    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(None);
        conn.resume_reading();
    }
}

#[test]
fn resume_delivers_bytes_that_arrived_while_paused() {
    for_each_backend(|backend| {
        let server = start_server(
            backend,
            |b| b,
            |_: &ConnInfo| PauseThenResume { paused_once: false },
        );
        let mut s = support::client::connect(server.addr);
        // Shorter than the default: this is the time the resume gets to deliver.
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        echo_check(&mut s, b"first", 64);
        // The server paused after "first": "second" lands while it is paused (within
        // the 200 ms before the resume), and must be echoed once it resumes.
        echo_check(&mut s, b"second", 64);
        let c = server.counters();
        assert_eq!(c.timeouts, 1, "the resume ran from the idle timer");
        drop(s);
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        server.stop();
    });
}

/// Answers each input line with a [`REPLY`]-byte reply, and takes no further line once
/// its output is backed up (as a pipelining protocol handler should): the rest is left
/// unconsumed for the runtime to offer again once the queue drained. Closes on EOF.
struct LineAnswerer;

const REPLY: usize = 4096;

impl Handler for LineAnswerer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_output_limit(4 * REPLY);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let mut used = 0;
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            if conn.is_backed_up() {
                break;
            }
            let line = &data[used..used + nl];
            let mut reply = vec![b'.'; REPLY];
            reply[..line.len()].copy_from_slice(line);
            reply[REPLY - 1] = b'\n';
            conn.send(&reply);
            used += nl + 1;
        }
        used
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }
}

/// Issue 8 (found while moving HttpConn's backpressure onto the connection's mark):
/// input left unconsumed behind backed-up output, then the peer's FIN. The runtime
/// must offer every line before `on_eof`, however many drains it takes; it called
/// `on_eof` right after the first re-offer, with lines still undelivered, and the
/// handler's close lost them.
#[test]
fn eof_waits_for_input_left_behind_backed_up_output() {
    for_each_backend(|backend| {
        let server = start_server(backend, |b| b, |_: &ConnInfo| LineAnswerer);
        let mut s = support::client::connect(server.addr);
        let n = 300;
        let lines: Vec<u8> = (0..n).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        std::io::Write::write_all(&mut s, &lines).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut got).expect("read until the server closes");
        let replies: Vec<&[u8]> = got
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            replies.len(),
            n,
            "replies before the close ({} bytes)",
            got.len()
        );
        for (i, r) in replies.iter().enumerate() {
            assert!(
                r.starts_with(format!("{i}.").as_bytes()),
                "reply {i} out of order"
            );
        }
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        server.stop();
    });
}
