//! [`HttpConn`]: the codec on the handler API. One per connection; drives a
//! [`Session`] from `on_data` and sends every response of a batch in one send.
//!
//! Its deadlines share the connection's one timer ([`Conn::set_timer`]):
//!
//! | phase | deadline | on expiry |
//! | --- | --- | --- |
//! | request head arriving | `header_timeout`, absolute from its first byte | 408, close |
//! | request body arriving | `body_timeout` after the last body bytes | 408, close |
//! | sending an error response | `lingering_time` after the error | close |
//! | lingering after it was sent | `lingering_timeout` after the last read, `lingering_time` after the send | close |
//! | request body arriving | `min_body_rate` average since the body's start, after its grace | 408, close |
//! | response waiting (queued, or in the kernel untaken) | `min_response_rate` over every span of its grace (bytes the peer took, sampled every quarter grace) | abort |
//!
//! The two rates are checked by a second deadline (`rate_at`) folded into the same
//! timer: the body rate at the grace's end, then at the computed instant at which the
//! bytes so far become too few, at most once a second; the response rate at each of its
//! samples ([`SlidingRate`]: one `SIOCOUTQ` ioctl per sample, a quarter of the grace
//! apart). They cost two counters per read and send.
//!
//! Memory per connection is bounded, and backpressure comes from one place, the
//! connection's output high-water mark ([`Conn::set_output_limit`], set to
//! [`Limits::max_queued_output`] when the connection opens): no `on_data` call adds
//! more than the room left under it, and once the queue reaches it no further
//! pipelined request is parsed. The unparsed rest is left unconsumed: the runtime
//! holds it (bounded by what one receive brings, as it stops reading at the mark) and
//! offers it again once the queue drained to the low-water mark. Bodies are consumed as
//! they arrive (see [`Session`]). Only while an offload job runs is input read on
//! (so that a reset is seen) and kept here (`stash`), up to
//! [`Limits::max_pending_input`] before reading pauses.

use super::limits::SlidingRate;
use super::{write_error, Error, Limits, Router, Session};
use crate::{CloseReason, Conn, ConnInfo, Handler};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What the connection's timer is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Header,
    Body,
    Linger,
    /// An offload job's result is due (`Limits::offload_timeout`).
    Offload,
}

/// A routed HTTP/1.1 connection.
pub struct HttpConn {
    session: Session,
    router: Arc<Router>,
    /// The armed deadline and when it is due.
    timer: Option<(Deadline, Instant)>,
    /// Lingering close: the error response is queued, the write side shut down;
    /// input is discarded until FIN or this instant (`lingering_time`).
    linger_until: Option<Instant>,
    /// Lingering: the error response has been sent (the lingering caps run).
    linger_sent: bool,
    /// Parsing stopped for an offload job's result (reading goes on into `stash`,
    /// then pauses), or for output a wrapping layer holds (reading paused until
    /// `on_sent`). Output backed up in the connection's own queue does not set it:
    /// the runtime stops reading then.
    paused: bool,
    /// Input read while an offload job ran (at most [`Limits::max_pending_input`]
    /// and one receive), or the rest of it; served before anything newer.
    stash: Vec<u8>,
    /// The peer's FIN arrived while stashed input waited: close once it is served.
    eof: bool,
    /// Bytes received in all (`on_data`), for the body rate.
    rx: u64,
    /// Bytes of output queued in all, for the response rate.
    tx: u64,
    /// The body being read: when it started and `rx` then.
    body_rate: Option<(Instant, u64)>,
    /// Output waiting: the samples of the bytes the peer took meanwhile.
    resp_rate: Option<SlidingRate>,
    /// When the rates are next checked.
    rate_at: Option<Instant>,
    /// What the connection's timer is set to (the earlier of `timer` and `rate_at`).
    armed: Option<Instant>,
    /// Bytes left unconsumed by the last `on_data` (offered again, counted once).
    left: usize,
    /// A call route's outbound call in flight.
    call: Option<super::call::Pending>,
    /// The offload job awaited: its number (a result carrying another is late and
    /// dropped), its deadline, and the flag that tells a still-queued job not to run.
    job: Option<(u64, Instant, Arc<AtomicBool>)>,
    /// Offload jobs started on this connection.
    jobs: u64,
}

impl HttpConn {
    /// A connection served by `router` under `limits`.
    pub fn new(router: Arc<Router>, limits: Limits) -> HttpConn {
        HttpConn {
            session: Session::new(limits),
            router,
            timer: None,
            linger_until: None,
            linger_sent: false,
            paused: false,
            stash: Vec::new(),
            eof: false,
            rx: 0,
            tx: 0,
            body_rate: None,
            resp_rate: None,
            rate_at: None,
            armed: None,
            left: 0,
            call: None,
            job: None,
            jobs: 0,
        }
    }

    /// A [`Factory`](crate::Factory) closure serving `router` under `limits`.
    pub fn factory(
        router: Router,
        limits: Limits,
    ) -> impl Fn(&ConnInfo) -> HttpConn + Send + Sync + 'static {
        let router = Arc::new(router);
        move |_: &ConnInfo| HttpConn::new(router.clone(), limits.clone())
    }

    /// Logs every response of this connection through `hook` (see
    /// [`access_log`](super::access_log)); `client` is the peer
    /// ([`ConnInfo::peer_addr`]).
    pub fn with_access_log(
        mut self,
        client: Option<std::net::SocketAddr>,
        hook: super::AccessHook,
    ) -> HttpConn {
        self.session.set_access_hook(client, hook);
        self
    }

    /// Like [`with_access_log`](Self::with_access_log), for response counters only
    /// (see [`Session::set_response_hook`]).
    pub fn with_response_hook(mut self, hook: super::AccessHook) -> HttpConn {
        self.session.set_response_hook(hook);
        self
    }

    fn limits(&self) -> &Limits {
        self.session.parser().limits()
    }

    fn arm(&mut self, conn: &mut Conn<'_>, kind: Deadline, at: Instant) {
        self.timer = Some((kind, at));
        self.sync_timer(conn);
    }

    fn disarm(&mut self, conn: &mut Conn<'_>) {
        self.timer = None;
        self.sync_timer(conn);
    }

    /// Sets the connection's timer to the earlier of the deadline and the rate check.
    fn sync_timer(&mut self, conn: &mut Conn<'_>) {
        let want = match (self.timer.map(|(_, at)| at), self.rate_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if want != self.armed {
            self.armed = want;
            conn.set_timer(want);
        }
    }

    /// Bytes handed to the kernel in all.
    fn sent(&self, conn: &Conn<'_>) -> u64 {
        self.tx.saturating_sub(conn.queued_bytes() as u64)
    }

    /// Starts or ends the rate windows after input was served or output drained, and
    /// plans the next rate check (kept if one is planned already). `data_len`: the
    /// bytes just served, counted as body bytes if they started a body.
    fn track_rates(&mut self, conn: &mut Conn<'_>, data_len: usize) {
        let now = conn.now();
        let limits = self.limits();
        let (body_min, resp_min) = (limits.min_body_rate, limits.min_response_rate);
        if body_min.is_some() && self.session.parser().in_body() {
            if self.body_rate.is_none() {
                self.body_rate = Some((now, self.rx.saturating_sub(data_len as u64)));
            }
        } else {
            self.body_rate = None;
        }
        // The response window starts when output is queued and ends at a sample that
        // finds everything taken (queue and kernel send queue empty): not when our
        // queue drains, as the kernel may hold megabytes the peer has not taken.
        if resp_min.is_none() {
            self.resp_rate = None;
        } else if self.resp_rate.is_none() && conn.queued_bytes() > 0 {
            self.resp_rate = Some(SlidingRate::new(now));
        }
        if self.body_rate.is_none() && self.resp_rate.is_none() {
            self.rate_at = None;
        } else if self.rate_at.is_none() {
            self.rate_at = self.next_rate_check(None);
        }
        self.sync_timer(conn);
    }

    /// The earliest instant at which a running rate window can be found too slow: the
    /// body's computed deadline (not before `floor`), the response's next sample.
    fn next_rate_check(&self, floor: Option<Instant>) -> Option<Instant> {
        let limits = self.limits();
        let body = self
            .body_rate
            .zip(limits.min_body_rate)
            .map(|((start, base), r)| start + r.deadline_after_start(self.rx - base))
            .map(|t| floor.map_or(t, |f| t.max(f)));
        let resp = self
            .resp_rate
            .as_ref()
            .zip(limits.min_response_rate)
            .map(|(w, r)| w.next_sample(&r));
        match (body, resp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The rate check is due: `Some(true)` when the body is too slow, `Some(false)`
    /// when the response is, `None` when both keep up (the next check is planned: the
    /// body's at least a second away, the response's at its next sample).
    fn check_rates(&mut self, conn: &mut Conn<'_>) -> Option<bool> {
        let now = conn.now();
        let limits = self.limits();
        let resp_min = limits.min_response_rate;
        if let (Some((start, base)), Some(r)) = (self.body_rate, limits.min_body_rate) {
            if r.too_slow(self.rx - base, now.saturating_duration_since(start)) {
                return Some(true);
            }
        }
        let sent = self.sent(conn);
        if let (Some(w), Some(r)) = (self.resp_rate.as_mut(), resp_min) {
            if w.due(now, &r) {
                // Bytes the peer took: handed to the kernel minus what still waits in
                // the socket's send queue (else a peer that never reads would be
                // credited with the megabytes the kernel buffers). One ioctl per
                // sample, never per send.
                let in_kernel = unsent_in_kernel(conn);
                if in_kernel == 0 && conn.queued_bytes() == 0 {
                    self.resp_rate = None; // everything taken: the window ends
                } else if w.sample(now, sent.saturating_sub(in_kernel), sent, &r) {
                    return Some(false);
                }
            }
        }
        let floor = now + std::time::Duration::from_secs(1);
        self.rate_at = self.next_rate_check(Some(floor));
        None
    }

    /// Stops the rate windows (timed out or aborted).
    fn stop_rates(&mut self) {
        self.body_rate = None;
        self.resp_rate = None;
        self.rate_at = None;
    }

    /// Lingering close (nginx's): the queued error response goes out, then our FIN;
    /// input is read and dropped so that unread bytes do not turn the close into a
    /// reset that destroys the response, until the peer's FIN or the caps. Sending
    /// the response may take `lingering_time`; once it is sent (`on_sent`) the
    /// lingering proper has `lingering_time` in all and `lingering_timeout` between
    /// reads.
    fn start_linger(&mut self, conn: &mut Conn<'_>) {
        let until = conn.now() + self.limits().lingering_time;
        self.linger_until = Some(until);
        self.linger_sent = false;
        // The body rate ends; the response rate keeps judging the peer until what was
        // sent is taken (a slow reader must not escape it by making us linger).
        self.body_rate = None;
        self.stash = Vec::new();
        self.paused = false;
        conn.resume_reading();
        conn.shutdown_write();
        self.arm(conn, Deadline::Linger, until);
    }

    /// Input arrived while lingering, or the response was sent: re-arm the timer.
    fn linger_read(&mut self, conn: &mut Conn<'_>) {
        if let (Some(until), true) = (self.linger_until, self.linger_sent) {
            let next = conn.now() + self.limits().lingering_timeout;
            self.arm(conn, Deadline::Linger, next.min(until));
        }
    }

    /// Serves what it can of `data`; returns the bytes used (all of them once the
    /// connection is closing).
    fn process(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        // The room left under the connection's high-water mark: the one bound on
        // output (and so on the pipelined requests answered per call).
        let max_out = match conn.output_limit() {
            0 => usize::MAX,
            hw => hw.saturating_sub(conn.queued_bytes()),
        };
        let date = super::turn_date(conn.now());
        let (session, router) = (&mut self.session, &*self.router);
        let p = if max_out == 0 && !session.parser().in_body() {
            super::Progress::paused_at(0)
        } else {
            let (p, added) = conn.send_with(|out| {
                let before = out.len();
                let p = session.on_data_bounded(data, router, &date, out, max_out);
                (p, out.len() - before)
            });
            self.tx += added as u64;
            p
        };
        if let Some(job) = self.session.take_offload() {
            // An offload route: its job runs on the worker's helper thread; the
            // response comes back in `on_offload` (reading is paused meanwhile, as
            // `p.paused` is set). A call route: the backend connection reports in
            // `on_message`.
            match job.into_call() {
                Ok(call) => self.call = Some(super::call::Pending::start(conn, call)),
                Err(job) => self.start_job(conn, job),
            }
        }
        if p.error.is_some() || p.linger {
            self.start_linger(conn);
            return data.len();
        }
        if p.close || conn.is_draining() {
            if p.consumed < data.len() {
                // Pipelined bytes we will not read: linger so they cannot reset the
                // connection under its last response.
                self.start_linger(conn);
            } else {
                conn.close();
            }
            return data.len();
        }
        if p.paused && !self.paused {
            if self.session.is_waiting() {
                // Waiting for an offload result, the socket is still read (up to a
                // bound, see `stash_input`) so that a reset closes the connection
                // and the late result is dropped.
                self.paused = true;
            } else if !conn.is_backed_up() {
                // Output held above the connection's queue (a wrapping layer's):
                // the runtime would go on reading, so pause until `on_sent`.
                self.paused = true;
                conn.pause_reading();
            }
            // Otherwise the queue is at its high-water mark: the runtime stops
            // reading and offers the unconsumed rest again once it drained.
        }
        let rest = data.len() - p.consumed;
        if self.session.parser().in_body() {
            let at = conn.now() + self.limits().body_timeout;
            self.arm(conn, Deadline::Body, at);
        } else if rest > 0 && !self.paused && !p.paused {
            // The rest starts a request; if a request completed in this call, the
            // rest is a new request whose first byte just arrived: its own deadline.
            if self.timer.is_none_or(|(k, _)| k != Deadline::Header) || p.consumed > 0 {
                let at = conn.now() + self.limits().header_timeout;
                self.arm(conn, Deadline::Header, at);
            }
        } else {
            self.disarm(conn);
        }
        if let Some((_, at, _)) = self.job {
            self.arm(conn, Deadline::Offload, at);
        }
        self.track_rates(conn, data.len());
        p.consumed
    }

    /// Hands an offload route's job to the worker's pool with its deadline; a full
    /// pool is answered `503` with `Retry-After` at once.
    fn start_job(&mut self, conn: &mut Conn<'_>, job: super::OffloadJob) {
        self.jobs += 1;
        let seq = self.jobs;
        let live = Arc::new(AtomicBool::new(true));
        let run = live.clone();
        let taken = conn.try_offload(move || {
            // Not run once its deadline passed while it was queued.
            run.load(Ordering::Acquire).then(|| (seq, job.run()))
        });
        match taken {
            Ok(()) => {
                let at = conn.now() + self.limits().offload_timeout;
                self.job = Some((seq, at, live));
            }
            Err(full) => {
                tracing::debug!("ringcore http: {full}; answering 503");
                let mut res = super::Response::new();
                res.set_status(503)
                    .set_content_type("text/plain")
                    .header("Retry-After", b"1")
                    .set_body(b"Service Unavailable: the worker's offload queue is full\n");
                if !self.answer_waiting(conn, &res) {
                    conn.close(); // after the answer is sent
                }
            }
        }
    }

    /// Renders the response of the request that waits for its job (which keeps
    /// the connection or not); returns whether the connection stays open.
    fn answer_waiting(&mut self, conn: &mut Conn<'_>, res: &super::Response) -> bool {
        let date = super::turn_date(conn.now());
        let session = &mut self.session;
        let (keep, added) = conn.send_with(|out| {
            let before = out.len();
            let keep = session.complete_offload(Some(res), &date, out);
            (keep, out.len() - before)
        });
        self.tx += added as u64;
        keep
    }

    /// Serves the stash (after a pause, or because newer input was appended).
    fn serve_stash(&mut self, conn: &mut Conn<'_>) {
        let mut stash = std::mem::take(&mut self.stash);
        let used = self.process(conn, &stash);
        if self.linger_until.is_some() {
            return;
        }
        stash.drain(..used.min(stash.len()));
        self.stash = stash;
        if self.eof && !self.paused && !conn.is_backed_up() {
            // Everything the peer sent before its FIN is served (a partial request
            // left in the stash can never complete).
            conn.close();
        }
    }
}

/// Bytes in the socket's kernel send queue, not yet acknowledged by the peer
/// (`SIOCOUTQ`); 0 if the socket cannot tell.
fn unsent_in_kernel(conn: &Conn<'_>) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: `raw_fd` is this connection's open socket; `TIOCOUTQ` (= `SIOCOUTQ`)
    // only writes one `c_int` to the valid pointer passed.
    let r = unsafe { libc::ioctl(conn.raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if r == 0 {
        u64::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

impl Handler for HttpConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(Some(self.limits().keep_alive_timeout));
        conn.set_output_limit(self.limits().max_queued_output);
        conn.set_max_pending(self.limits().max_pending_input());
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        // Leftovers are offered again with new bytes; count each byte once.
        self.rx += data.len().saturating_sub(self.left) as u64;
        let used = self.take_input(conn, data);
        self.left = data.len() - used.min(data.len());
        used
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.on_drained(conn);
        if self.linger_until.is_none() {
            self.track_rates(conn, 0);
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        let pending = !self.stash.is_empty() || self.session.is_waiting();
        if pending && self.linger_until.is_none() {
            // Serve what is stashed first (and answer a request whose offload job
            // is running: a client may half-close after its last request).
            self.eof = true;
        } else {
            conn.close();
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        // Between requests (nothing partial buffered): close once the queue is sent.
        if self.timer.is_none()
            && self.stash.is_empty()
            && !self.session.parser().in_body()
            && !self.session.is_waiting()
        {
            conn.close();
        }
    }

    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        if self.session.is_waiting() {
            // Quiet because an offload job is running, not idle: keep waiting.
            conn.set_idle_timeout(Some(self.limits().keep_alive_timeout));
            return;
        }
        conn.close_with(crate::CloseReason::IdleTimeout);
    }

    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn std::any::Any + Send>) {
        let Some((seq, _, _)) = self.job else {
            return; // late: its deadline passed (answered 504), or not ours
        };
        let res = match result.downcast::<Option<(u64, super::Response)>>() {
            Ok(r) => match *r {
                Some((s, res)) if s == seq => Some(Box::new(res)),
                _ => return, // an earlier job's late result
            },
            Err(_) => {
                tracing::error!("ringcore http: an offload route's job panicked; answering 500");
                None
            }
        };
        self.job = None;
        if self.timer.is_some_and(|(k, _)| k == Deadline::Offload) {
            self.disarm(conn);
        }
        self.deliver(conn, res);
    }

    fn on_message(
        &mut self,
        conn: &mut Conn<'_>,
        from: crate::ConnId,
        msg: Box<dyn std::any::Any>,
    ) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if let Ok(Some(res)) = call.on_message(from, msg) {
            self.call = None;
            self.deliver(conn, Some(Box::new(res)));
        }
    }

    fn on_close(&mut self, _reason: CloseReason) {
        if let Some(mut call) = self.call.take() {
            call.cancel();
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        let fired = self.armed.take();
        let now = conn.now();
        let due = |t: Instant| t <= now || Some(t) == fired;
        if self.rate_at.is_some_and(due) {
            self.rate_at = None;
            match self.check_rates(conn) {
                Some(true) => return self.time_out(conn, Deadline::Body),
                Some(false) => {
                    self.stop_rates();
                    self.timer = None;
                    return conn.abort();
                }
                None => {}
            }
        }
        match self.timer {
            Some((kind, at)) if due(at) => self.time_out(conn, kind),
            _ => self.sync_timer(conn),
        }
    }
}

impl HttpConn {
    /// An offload job's response (`None`: it panicked, answered 500) or a call's:
    /// sent, then what was pipelined behind it is served. Dropped if no request waits
    /// (or the connection is lingering).
    fn deliver(&mut self, conn: &mut Conn<'_>, res: Option<Box<super::Response>>) {
        if !self.session.is_waiting() || self.linger_until.is_some() {
            return; // not ours (or no longer wanted): dropped here
        }
        let date = super::turn_date(conn.now());
        let session = &mut self.session;
        let (keep, added) = conn.send_with(|out| {
            let before = out.len();
            let keep = session.complete_offload(res.as_deref(), &date, out);
            (keep, out.len() - before)
        });
        self.tx += added as u64;
        if !keep || conn.is_draining() {
            if self.stash.is_empty() {
                conn.close();
            } else {
                self.start_linger(conn); // pipelined requests we will not serve
            }
            return;
        }
        // Serve what was pipelined behind it; reading resumes unless output is
        // backed up.
        self.paused = false;
        conn.resume_reading();
        self.serve_stash(conn);
        if self.linger_until.is_none() {
            self.track_rates(conn, 0);
        }
    }

    /// `on_data` proper: serve, stash or (lingering) drop `data`.
    fn take_input(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.linger_until.is_some() {
            self.linger_read(conn);
            return data.len();
        }
        if self.session.is_waiting() {
            self.stash_input(conn, data);
            return data.len();
        }
        if !self.stash.is_empty() {
            if self.paused || conn.is_backed_up() {
                // Newer input waits in the runtime (offered again on resume or
                // drain) rather than growing the stash.
                return 0;
            }
            self.stash.extend_from_slice(data);
            self.serve_stash(conn);
            return data.len();
        }
        let used = self.process(conn, data);
        if self.session.is_waiting() && used < data.len() && self.linger_until.is_none() {
            // An offload route: what was pipelined behind it is kept here while
            // reading goes on.
            self.stash_input(conn, &data[used..]);
            return data.len();
        }
        // The rest (behind backed-up output, or a partial request) stays with the
        // runtime, which offers it again with new bytes or once the queue drained.
        used
    }

    /// Input held here (read while an offload job ran) and not served yet, in bytes:
    /// with [`Conn::queued_bytes`] and [`Conn::unconsumed`], the memory this
    /// connection holds.
    pub fn stashed_input(&self) -> usize {
        self.stash.len()
    }

    /// Keeps input for later; while an offload result is awaited (reading goes
    /// on), pauses reading once a head and a receive batch are kept.
    fn stash_input(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        self.stash.extend_from_slice(data);
        if self.session.is_waiting() && self.stash.len() >= self.limits().max_pending_input() {
            conn.pause_reading();
        }
    }

    /// `on_sent` proper: the queue drained.
    fn on_drained(&mut self, conn: &mut Conn<'_>) {
        if self.linger_until.is_some() && !self.linger_sent {
            self.linger_sent = true;
            self.linger_until = Some(conn.now() + self.limits().lingering_time);
            self.linger_read(conn);
            return;
        }
        if self.linger_until.is_some() || self.session.is_waiting() {
            return;
        }
        if self.paused {
            self.paused = false;
            conn.resume_reading(); // the runtime offers what it held back
        }
        if !self.stash.is_empty() && !conn.is_backed_up() {
            self.serve_stash(conn);
        }
    }

    /// A deadline of `kind` expired (or the body was too slow): answer and close.
    fn time_out(&mut self, conn: &mut Conn<'_>, kind: Deadline) {
        self.timer = None;
        if kind == Deadline::Offload {
            // The job is late: 504 now; its result, if it ever comes, is dropped
            // (and a job still queued is not run).
            if let Some((_, _, live)) = self.job.take() {
                live.store(false, Ordering::Release);
                tracing::debug!("ringcore http: an offload job passed its deadline; answering 504");
                let mut res = super::Response::new();
                res.set_status(504)
                    .set_content_type("text/plain")
                    .set_body(b"Gateway Timeout: the offloaded work did not finish in time\n");
                self.deliver(conn, Some(Box::new(res)));
            }
            return;
        }
        self.stop_rates();
        let error = match kind {
            Deadline::Offload => return,
            Deadline::Linger => return conn.abort(),
            Deadline::Header => Error::header_timeout(),
            Deadline::Body => {
                self.session.abort_body();
                Error::body_timeout()
            }
        };
        let date = super::turn_date(conn.now());
        conn.send_with(|out| write_error(out, &date, &error));
        conn.close_with(CloseReason::IdleTimeout);
    }
}
