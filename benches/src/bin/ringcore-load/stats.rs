//! Measurement state: the run phase (warm-up, measuring, done), live counters for the
//! progress line, and per-worker histograms merged into one collector at the end.
//!
//! Each worker keeps its own [`WorkerStats`] (an `Rc` shared by that worker's
//! handlers, so recording is a plain non-atomic add); when its last handler is
//! dropped the stats merge into the process-wide [`Collector`].

use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Warming up: requests run but are not recorded.
pub const WARMUP: u8 = 0;
/// Measuring: every completed request is recorded.
pub const MEASURE: u8 = 1;
/// Done: no new requests; connections close when their in-flight requests are back.
pub const DONE: u8 = 2;

/// Latencies are recorded in nanoseconds, 3 significant digits, up to 100 s.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Process-wide state shared by the controller thread and every worker.
pub struct Shared {
    /// Current phase ([`WARMUP`], [`MEASURE`], [`DONE`]).
    pub phase: AtomicU8,
    /// Requests completed in any phase, published in batches (progress line).
    pub live_requests: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections that ever opened.
    pub opened: AtomicU64,
    /// Connect failures (on_close without on_open).
    pub connect_errors: AtomicU64,
    /// `hold --ping`: connections whose one round trip came back whole.
    pub pinged: AtomicU64,
    /// Merged results.
    pub collector: Mutex<Collector>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            phase: AtomicU8::new(WARMUP),
            live_requests: AtomicU64::new(0),
            open: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            pinged: AtomicU64::new(0),
            collector: Mutex::new(Collector::default()),
        })
    }

    #[inline]
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
}

/// Everything the workers measured, merged.
pub struct Collector {
    /// Latency, coordinated-omission free (see `client.rs`).
    pub latency: Histogram<u64>,
    /// Latency from the scheduled send time (open loop; includes generator lateness).
    pub service: Histogram<u64>,
    /// Requests completed while measuring.
    pub requests: u64,
    /// Payload bytes received while measuring.
    pub bytes_in: u64,
    /// Protocol errors (bad status line, bad framing, non-2xx, echo mismatch).
    pub protocol_errors: u64,
    /// Responses with a status other than 2xx (http).
    pub non_2xx: u64,
    /// Connections lost before the end (reset, peer close, error).
    pub conn_errors: u64,
    /// Responses carrying `Connection: close` (the server ends keep-alive).
    pub server_closes: u64,
    /// Sends that were due but held back because the connection had too many requests
    /// outstanding (open loop); their latency still counts from the intended time.
    pub backlogged: u64,
    /// UDP: datagrams sent while measuring, and those whose reply never came (declared
    /// lost after `udp::LOSS_TIMEOUT`).
    pub sent: u64,
    pub lost: u64,
    /// Workers that reported.
    pub workers: usize,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            latency: new_histogram(),
            service: new_histogram(),
            requests: 0,
            bytes_in: 0,
            protocol_errors: 0,
            non_2xx: 0,
            conn_errors: 0,
            server_closes: 0,
            backlogged: 0,
            sent: 0,
            lost: 0,
            workers: 0,
        }
    }
}

/// One worker's measurements; shared (`Rc`) by that worker's handlers.
pub struct WorkerStats {
    shared: Arc<Shared>,
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub requests: u64,
    pub bytes_in: u64,
    pub protocol_errors: u64,
    pub non_2xx: u64,
    pub conn_errors: u64,
    pub server_closes: u64,
    pub backlogged: u64,
    pub sent: u64,
    pub lost: u64,
    /// Completed requests not yet added to `shared.live_requests`.
    unpublished: u64,
}

/// Publish the live counter every this many requests.
const PUBLISH_EVERY: u64 = 256;

impl WorkerStats {
    /// Records one completed request: `start` is where its latency counts from,
    /// `scheduled` its place in the open-loop schedule (closed loop: both the send time).
    #[inline]
    pub fn record(&mut self, now: Instant, start: Instant, scheduled: Instant, phase: u8) {
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            self.shared
                .live_requests
                .fetch_add(self.unpublished, Ordering::Relaxed);
            self.unpublished = 0;
        }
        if phase != MEASURE {
            return;
        }
        self.requests += 1;
        let l = now.saturating_duration_since(start).as_nanos().max(1) as u64;
        self.latency.saturating_record(l);
        let s = now.saturating_duration_since(scheduled).as_nanos().max(1) as u64;
        self.service.saturating_record(s);
    }
}

impl Drop for WorkerStats {
    fn drop(&mut self) {
        self.shared
            .live_requests
            .fetch_add(self.unpublished, Ordering::Relaxed);
        let mut c = self
            .shared
            .collector
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = c.latency.add(&self.latency);
        let _ = c.service.add(&self.service);
        c.requests += self.requests;
        c.bytes_in += self.bytes_in;
        c.protocol_errors += self.protocol_errors;
        c.non_2xx += self.non_2xx;
        c.conn_errors += self.conn_errors;
        c.server_closes += self.server_closes;
        c.backlogged += self.backlogged;
        c.sent += self.sent;
        c.lost += self.lost;
        c.workers += 1;
    }
}

thread_local! {
    static WORKER: RefCell<Weak<RefCell<WorkerStats>>> = const { RefCell::new(Weak::new()) };
}

/// This worker's stats, created on first use; they merge into the collector when the
/// worker's last handler drops them.
pub fn worker_stats(shared: &Arc<Shared>) -> Rc<RefCell<WorkerStats>> {
    WORKER.with(|w| {
        if let Some(s) = w.borrow().upgrade() {
            return s;
        }
        let s = Rc::new(RefCell::new(WorkerStats {
            shared: shared.clone(),
            latency: new_histogram(),
            service: new_histogram(),
            requests: 0,
            bytes_in: 0,
            protocol_errors: 0,
            non_2xx: 0,
            conn_errors: 0,
            server_closes: 0,
            backlogged: 0,
            sent: 0,
            lost: 0,
            unpublished: 0,
        }));
        *w.borrow_mut() = Rc::downgrade(&s);
        s
    })
}
