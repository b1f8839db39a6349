//! The request/response client shared by the `echo` and `http` modes: keeps `depth`
//! requests in flight (closed loop) or sends on a per-connection schedule (open loop,
//! fixed rate), and records each response's latency.
//!
//! Open loop: connection `i` of `n` sends at `start + offset_i + k * interval`, pipelined:
//! the generator never waits for a response before the next scheduled send (up to
//! `max_outstanding` per connection). Pacing uses [`Conn::set_timer`], whose resolution
//! is the runtime's 10 ms timer tick; due sends are also flushed whenever a response
//! arrives. Two latencies are kept per request:
//! * `latency`: from the moment the request was handed to the connection, or, when the
//!   send was held back because the connection already had `max_outstanding` requests
//!   in flight (the server is not keeping up), from its scheduled time. Since nothing
//!   else makes the generator wait for the server, a server stall shows up here in
//!   full: this is the coordinated-omission-free figure.
//! * `schedule_latency`: from the scheduled time in every case, so it also contains the
//!   generator's own timer lateness (up to one 10 ms tick); in closed loop both agree.

use crate::stats::{worker_stats, Shared, WorkerStats, DONE, MEASURE};
use ringcore::{CloseReason, Conn, Handler};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a protocol found in the received bytes.
#[derive(Default)]
pub struct Parsed {
    /// Complete responses.
    pub responses: usize,
    /// Bytes they used (`on_data`'s return value).
    pub consumed: usize,
    /// The stream is broken; the connection is aborted.
    pub error: bool,
}

/// One request/response protocol.
pub trait Protocol: 'static {
    /// The bytes of one request.
    fn request(&self) -> &[u8];
    /// Finds complete responses at the start of `data` (the unconsumed bytes).
    fn parse(&mut self, data: &[u8], stats: &mut WorkerStats) -> Parsed;
}

/// Fixed-rate schedule of one connection.
pub struct Pace {
    /// Time between two requests of this connection.
    pub interval: Duration,
    /// Offset of this connection's first send from its open (spreads connections).
    pub offset: Duration,
    /// Most requests outstanding; later sends wait (and their latency grows).
    pub max_outstanding: usize,
}

struct Schedule {
    interval: Duration,
    next: Instant,
    armed: Option<Instant>,
    max_outstanding: usize,
    /// Sends were held back by `max_outstanding` and have not caught up yet.
    held: bool,
}

/// A client connection running protocol `P`.
pub struct Client<P: Protocol> {
    proto: P,
    shared: Arc<Shared>,
    stats: Rc<RefCell<WorkerStats>>,
    /// (latency start, scheduled time) of each outstanding request, oldest first.
    inflight: VecDeque<(Instant, Instant)>,
    /// `depth` copies of the request, so a refill of k requests is one `send`.
    batch: Vec<u8>,
    depth: usize,
    pace: Option<Pace>,
    sched: Option<Schedule>,
    opened: bool,
    closing: bool,
}

impl<P: Protocol> Client<P> {
    pub fn new(proto: P, shared: &Arc<Shared>, depth: usize, pace: Option<Pace>) -> Self {
        let depth = depth.max(1);
        let mut batch = Vec::with_capacity(proto.request().len() * depth);
        for _ in 0..depth {
            batch.extend_from_slice(proto.request());
        }
        Client {
            proto,
            shared: shared.clone(),
            stats: worker_stats(shared),
            inflight: VecDeque::with_capacity(depth.max(16)),
            batch,
            depth,
            pace,
            sched: None,
            opened: false,
            closing: false,
        }
    }

    /// Sends `k` requests now (closed loop).
    fn send_now(&mut self, conn: &mut Conn<'_>, k: usize, now: Instant) {
        let len = self.proto.request().len();
        let mut left = k;
        while left > 0 {
            let n = left.min(self.depth);
            conn.send(&self.batch[..n * len]);
            left -= n;
        }
        for _ in 0..k {
            self.inflight.push_back((now, now));
        }
    }

    /// Open loop: sends every request whose scheduled time has come (up to the
    /// outstanding limit) and arms the timer for the next one.
    fn send_due(&mut self, conn: &mut Conn<'_>, now: Instant) {
        let Some(s) = self.sched.as_mut() else { return };
        let len = self.proto.request().len();
        let req = &self.batch[..len];
        let mut held = 0u64;
        while s.next <= now {
            if self.inflight.len() >= s.max_outstanding {
                held += 1;
                s.held = true;
                break;
            }
            conn.send(req);
            let start = if s.held { s.next } else { now };
            self.inflight.push_back((start, s.next));
            s.next += s.interval;
        }
        if s.next > now {
            s.held = false;
        }
        if held > 0 {
            self.stats.borrow_mut().backlogged += held;
        }
        let want = if s.next > now { Some(s.next) } else { None };
        // When backlogged the next response triggers the send; no timer needed.
        if want.is_some() && want != s.armed {
            conn.set_timer(want);
            s.armed = want;
        }
    }

    fn finish_if_done(&mut self, conn: &mut Conn<'_>, phase: u8) -> bool {
        if phase == DONE || conn.is_draining() {
            if self.inflight.is_empty() && !self.closing {
                self.closing = true;
                conn.close();
            }
            return true;
        }
        false
    }
}

impl<P: Protocol> Handler for Client<P> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        // Responses (e.g. a 1 MiB static file) may exceed the runtime's default 1 MiB
        // cap on unconsumed input before a whole one has arrived.
        conn.set_max_pending(64 << 20);
        self.opened = true;
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        self.shared.opened.fetch_add(1, Ordering::Relaxed);
        let phase = self.shared.phase();
        if self.finish_if_done(conn, phase) {
            return;
        }
        let now = Instant::now();
        match &self.pace {
            None => self.send_now(conn, self.depth, now),
            Some(p) => {
                self.sched = Some(Schedule {
                    interval: p.interval,
                    next: now + p.offset,
                    armed: None,
                    held: false,
                    max_outstanding: p.max_outstanding.max(1),
                });
                self.send_due(conn, now);
            }
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let parsed = {
            let mut st = self.stats.borrow_mut();
            self.proto.parse(data, &mut st)
        };
        let now = Instant::now();
        let phase = self.shared.phase();
        if parsed.responses > 0 {
            let mut st = self.stats.borrow_mut();
            if phase == MEASURE {
                st.bytes_in += parsed.consumed as u64;
            }
            for _ in 0..parsed.responses {
                match self.inflight.pop_front() {
                    Some((start, scheduled)) => st.record(now, start, scheduled, phase),
                    None => {
                        // More responses than requests: the peer is broken.
                        st.protocol_errors += 1;
                        drop(st);
                        self.closing = true;
                        conn.abort();
                        return data.len();
                    }
                }
            }
        }
        if parsed.error {
            self.stats.borrow_mut().protocol_errors += 1;
            self.closing = true;
            conn.abort();
            return data.len();
        }
        if self.finish_if_done(conn, phase) {
            return parsed.consumed;
        }
        if self.sched.is_some() {
            self.send_due(conn, now);
        } else if parsed.responses > 0 {
            self.send_now(conn, parsed.responses, now);
        }
        parsed.consumed
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if let Some(s) = self.sched.as_mut() {
            s.armed = None;
        }
        let phase = self.shared.phase();
        if self.finish_if_done(conn, phase) {
            return;
        }
        self.send_due(conn, Instant::now());
    }

    fn on_close(&mut self, reason: CloseReason) {
        if debug() {
            eprintln!(
                "ringcore-load: connection closed: {reason:?} (opened {}, in flight {})",
                self.opened,
                self.inflight.len()
            );
        }
        if !self.opened {
            self.shared.connect_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        let expected = self.closing
            || self.shared.phase() == DONE
            || matches!(reason, CloseReason::Shutdown | CloseReason::Local);
        if !expected {
            self.stats.borrow_mut().conn_errors += 1;
        }
    }
}

/// `RINGCORE_LOAD_DEBUG=1` logs every close and its reason.
fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RINGCORE_LOAD_DEBUG").is_some())
}

/// A connection that opens and then stays idle (`hold` mode).
pub struct Idle {
    shared: Arc<Shared>,
    stats: Rc<RefCell<WorkerStats>>,
    started: Instant,
    opened: bool,
    /// Bytes of the one round trip still to come back (`--ping`).
    ping_left: usize,
}

impl Idle {
    /// `ping`: bytes sent once on open (0: none); they must come back before the
    /// connection counts as pinged.
    pub fn new(shared: &Arc<Shared>, ping: usize) -> Self {
        Idle {
            shared: shared.clone(),
            stats: worker_stats(shared),
            started: Instant::now(),
            opened: false,
            ping_left: ping,
        }
    }
}

impl Handler for Idle {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        if self.ping_left > 0 {
            conn.send(&vec![b'p'; self.ping_left]);
        }
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        self.shared.opened.fetch_add(1, Ordering::Relaxed);
        // Connect latency (queueing included: every connect starts at once).
        let now = Instant::now();
        self.stats
            .borrow_mut()
            .record(now, self.started, self.started, MEASURE);
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.ping_left > 0 {
            self.ping_left = self.ping_left.saturating_sub(data.len());
            if self.ping_left == 0 {
                self.shared.pinged.fetch_add(1, Ordering::Relaxed);
            }
        }
        data.len()
    }

    fn on_close(&mut self, reason: CloseReason) {
        if !self.opened {
            self.shared.connect_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        if self.shared.phase() != DONE
            && !matches!(reason, CloseReason::Shutdown | CloseReason::Local)
        {
            self.stats.borrow_mut().conn_errors += 1;
        }
    }
}
