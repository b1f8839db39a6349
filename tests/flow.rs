//! Input and output bounds of one connection (issue 8, defects 6 and 10): the runtime's
//! output high-water mark stops reading from a peer that sends and never reads, and
//! input left unconsumed while reading is paused is offered again on resume, before
//! end of stream.

mod support;

use ringcore::net::DEFAULT_OUTPUT_HIGH_WATER;
use ringcore::{Conn, ConnInfo, Handler};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{connect, read_expect, shutdown_write, Rng};
use support::{for_each_backend, start_server};

/// Echo that records the largest output queue it ever saw.
struct MeasuredEcho {
    max_queued: Arc<AtomicU64>,
}

impl Handler for MeasuredEcho {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        self.max_queued
            .fetch_max(conn.queued_bytes() as u64, Relaxed);
        data.len()
    }
}

/// A client sends 24 MiB and reads nothing until it cannot write any more: the
/// server stops reading at the high-water mark, so its queue stays near 1 MiB
/// instead of holding everything the client managed to send. Then the client reads
/// the echo back, byte-exact.
#[test]
fn echo_to_a_client_that_never_reads_stays_bounded() {
    for_each_backend(|backend| {
        let max_queued = Arc::new(AtomicU64::new(0));
        let m = max_queued.clone();
        // A small receive pool: what is in flight when reading stops lands on top of
        // the mark, and that is at most the pool.
        let pool = 16 * 16 * 1024;
        let server = start_server(
            backend,
            |b| b.buf_count(16),
            move |_: &ConnInfo| MeasuredEcho {
                max_queued: m.clone(),
            },
        );
        let payload = Rng::new(10).bytes(24 << 20);
        let mut s = connect(server.addr);
        // Give up writing once the server stopped reading for a while; how long the
        // client waits only changes how much it wrote, not what the bound must be.
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut written = 0;
        while written < payload.len() {
            match s.write(&payload[written..(written + 64 * 1024).min(payload.len())]) {
                Ok(n) => written += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        s.set_write_timeout(Some(support::client::IO_TIMEOUT))
            .unwrap();
        read_expect(&mut s, &payload[..written], 256 * 1024);
        if written < payload.len() {
            // Reading made room: the rest goes through too.
            let rest = &payload[written..];
            support::client::echo_check(&mut s, rest, 256 * 1024);
        }
        drop(s);
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        let max = max_queued.load(Relaxed) as usize;
        eprintln!("{backend}: largest output queue {max} bytes");
        // What was in flight when reading stopped (at most the receive pool) may land
        // on top of the mark.
        let bound = DEFAULT_OUTPUT_HIGH_WATER + pool + 64 * 1024;
        assert!(
            max <= bound,
            "output queue grew to {max} bytes (bound {bound}) on {backend}"
        );
        assert_eq!(server.stop().panics, 0);
    });
}

/// Consumes only part of its first delivery and pauses; resumes from a timer and
/// tells the client; on end of stream sends back everything it consumed.
struct PartialThenPause {
    consumed: Vec<u8>,
    first: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Handler for PartialThenPause {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.log
            .lock()
            .unwrap()
            .push(format!("data {}", data.len()));
        if self.first {
            self.first = false;
            conn.pause_reading();
            conn.set_timer(Some(conn.now()));
            self.consumed.extend_from_slice(&data[..2]);
            return 2;
        }
        self.consumed.extend_from_slice(data);
        data.len()
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        conn.resume_reading();
        conn.send(b"R");
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.log.lock().unwrap().push("eof".into());
        conn.send(&self.consumed);
        conn.close();
    }
}

/// Bytes left unconsumed when `on_data` paused are offered again after
/// `resume_reading`, without new input, and before a later end of stream.
#[test]
fn leftovers_are_redelivered_on_resume_before_eof() {
    for_each_backend(|backend| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let server = start_server(
            backend,
            |b| b,
            move |_: &ConnInfo| PartialThenPause {
                consumed: Vec::new(),
                first: true,
                log: l.clone(),
            },
        );
        let mut s = connect(server.addr);
        s.write_all(b"hello").unwrap();
        // Resumed (and the leftovers, if redelivered, consumed) before the FIN leaves.
        read_expect(&mut s, b"R", 1);
        shutdown_write(&s);
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert_eq!(
            rest,
            b"hello",
            "on_eof must follow the redelivered leftovers (callbacks: {:?})",
            log.lock().unwrap()
        );
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        server.stop();
    });
}
