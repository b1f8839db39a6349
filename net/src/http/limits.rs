//! Per-connection limits of the HTTP codec, with nginx-like defaults.

use std::time::Duration;

/// Limits applied to every request on a connection.
///
/// The defaults follow nginx (`large_client_header_buffers 4 8k`,
/// `client_max_body_size 1m`, `client_header_timeout 10s`, `client_body_timeout 60s`,
/// `keepalive_timeout 75s`, `keepalive_requests 1000`, `lingering_time 30s`,
/// `lingering_timeout 5s`) and, for the minimum data rates, Kestrel (240 B/s after a
/// 5 s grace). Build a custom set with the setters:
///
/// ```
/// # use ringcore_net::http::Limits;
/// let limits = Limits::default().max_body_bytes(64 * 1024).max_headers(32);
/// assert_eq!(limits.max_body_bytes, 65536);
/// ```
///
/// The two timeouts are enforced by the caller (the codec has no clock); they live
/// here so that one value describes a connection's whole policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request head (request line, headers and the blank line that ends
    /// them), in bytes. A longer head is answered `431`, or `414` when the request
    /// line alone does not fit. Default 8 KiB. Chunked trailers get the same budget.
    pub max_head_bytes: usize,
    /// Longest request target (`/path?query`), in bytes; longer is `414`.
    /// Default 8 KiB (so in practice [`Limits::max_head_bytes`] binds first).
    pub max_target_bytes: usize,
    /// Most header fields in one request head; more is `431`. Default 100.
    /// Values above 256 are treated as 256 (the parser's fixed header table).
    pub max_headers: usize,
    /// Largest request body, after chunked decoding, in bytes; larger is `413`.
    /// Default 1 MiB.
    pub max_body_bytes: usize,
    /// Header deadline: the whole request head must arrive within this time,
    /// measured from the first byte of the request (absolute, not reset by each
    /// read, so a client trickling one byte a second is still cut off). Enforced by
    /// the caller: arm it when the unconsumed buffer becomes non-empty, disarm it
    /// when a request completes; on expiry answer [`Error::header_timeout`]
    /// (`408`) or simply close. Default 10 s.
    ///
    /// [`Error::header_timeout`]: super::Error::header_timeout
    pub header_timeout: Duration,
    /// Keep-alive idle timeout: how long a connection may sit with no partial
    /// request before the caller closes it. Default 75 s.
    pub keep_alive_timeout: Duration,
    /// Most requests served on one connection. The request that reaches the limit
    /// reports `keep_alive() == false`, so its response carries
    /// `Connection: close`. Default 1000.
    pub max_requests_per_connection: u32,
    /// Largest body a buffered route (a [`Route`](super::Route), which sees the whole
    /// body in [`Request::body`](super::Request::body)) accepts; larger is `413`.
    /// Bodies up to [`Limits::max_body_bytes`] reach a
    /// [streaming route](super::Router::stream) in pieces instead. Default 64 KiB.
    pub max_buffered_body: usize,
    /// Most request-body bytes all buffered routes of one worker thread may hold at
    /// once (summed over its connections); a request that would go over is answered
    /// `503` and its connection closed. Default 64 MiB.
    pub worker_body_budget: usize,
    /// Body-read deadline: the longest pause between two reads of a request body
    /// (nginx `client_body_timeout`); on expiry the connection gets `408` and
    /// closes. Default 60 s.
    pub body_timeout: Duration,
    /// Deadline of an [offload route](super::Router::offload)'s job, from its
    /// submission: past it the client gets `504 Gateway Timeout` and the job's late
    /// result is dropped (a job still queued then is not run). Default 30 s.
    pub offload_timeout: Duration,
    /// Lingering close, total: after an error response the connection's write side
    /// is shut down and input is read and discarded (so the peer's unread data does
    /// not turn the close into a reset that destroys the response) until the peer's
    /// FIN, or at most this long from the error (nginx `lingering_time`). Default 30 s.
    pub lingering_time: Duration,
    /// Lingering close, between reads: the longest wait for more input while
    /// lingering (nginx `lingering_timeout`). Default 5 s.
    pub lingering_timeout: Duration,
    /// Output high-water mark of an HTTP connection: [`HttpConn`](super::HttpConn)
    /// sets it as the connection's own mark ([`Conn::set_output_limit`](crate::Conn::set_output_limit))
    /// when it opens, so backpressure has one source. No `on_data` call adds more
    /// responses than the room left under it; once this many bytes are queued and
    /// unsent, no further pipelined request is parsed and the runtime stops reading
    /// until the queue drains to a quarter of it (nginx likewise answers one request
    /// at a time). A single response may exceed it. Default 64 KiB.
    pub max_queued_output: usize,
    /// Minimum request-body data rate (Kestrel `MinRequestBodyDataRate`): once a body
    /// has been arriving for longer than the grace period, the bytes received since
    /// its start must average at least `bytes_per_sec`, or the connection gets `408`
    /// and closes. Defeats a body trickled at a few bytes a second, which the
    /// between-reads [`Limits::body_timeout`] never catches. Counted from the read
    /// that carried the request head; checked at most once a second (or at the
    /// computed deadline). `None` disables it. Default 240 B/s after 5 s.
    pub min_body_rate: Option<MinRate>,
    /// Minimum response data rate (Kestrel `MinResponseDataRate`, judged over a
    /// sliding window): while response bytes are queued (from the moment output is
    /// queued until the queue drains), the bytes the peer took (handed to the kernel,
    /// minus what still waits in the socket's send queue, `SIOCOUTQ`) in every span of
    /// the grace period must average at least `bytes_per_sec`, or the connection is
    /// aborted (no response is possible: the peer is not reading). The bytes are
    /// sampled every quarter of the grace (at least 100 ms apart), so a peer that stops
    /// reading is cut off within grace + a quarter grace (6.25 s by default), however
    /// much its receive buffer absorbed at first; a client that keeps taking bytes at
    /// the rate is never affected, however large the response. Defeats a client that
    /// reads large responses through a tiny window. Idle keep-alive connections are
    /// not affected (nothing is queued). `None` disables it. Default 240 B/s, 5 s.
    pub min_response_rate: Option<MinRate>,
}

/// A minimum average data rate enforced after a grace period
/// ([`Limits::min_body_rate`], [`Limits::min_response_rate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Least average rate, bytes per second, counted from the start of the transfer.
    pub bytes_per_sec: u64,
    /// How long a transfer runs before the rate is enforced.
    pub grace: Duration,
}

impl MinRate {
    /// `bytes_per_sec` after `grace`; `None` (disabled) when `bytes_per_sec` is 0.
    pub fn new(bytes_per_sec: u64, grace: Duration) -> Option<MinRate> {
        (bytes_per_sec > 0).then_some(MinRate {
            bytes_per_sec,
            grace,
        })
    }

    /// Whether `bytes` moved in `elapsed` since the start are too few: true once
    /// `elapsed` is past the grace period and `bytes` < rate × `elapsed`.
    pub fn too_slow(&self, bytes: u64, elapsed: Duration) -> bool {
        elapsed >= self.grace && u128::from(bytes) * 1000 < self.required_millis(elapsed)
    }

    /// rate × `elapsed`, in thousandths of a byte.
    fn required_millis(&self, elapsed: Duration) -> u128 {
        u128::from(self.bytes_per_sec) * elapsed.as_millis()
    }

    /// How long after its start a transfer that has moved `bytes` may next be found
    /// too slow: the later of the grace period and `bytes` / rate.
    pub fn deadline_after_start(&self, bytes: u64) -> Duration {
        let ms = u128::from(bytes) * 1000 / u128::from(self.bytes_per_sec.max(1));
        self.grace
            .max(Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)))
    }
}

/// The minimum response rate judged over a sliding window ([`Limits::min_response_rate`]).
///
/// While response bytes wait (queued by us, or handed to the kernel and not yet
/// acknowledged by the peer), two counts are sampled every `period` (a quarter of the
/// grace period, at least 100 ms): `sent`, the bytes handed to the kernel, and `taken`,
/// the bytes the peer has taken (`sent` minus the socket's send queue). The peer is too
/// slow when, over the last four periods (one grace period), it took fewer bytes than
/// the rate asks for, and at no sample in that span had it caught up with everything
/// sent by the sample before (a peer that catches up is waiting for us, not slow: the
/// window starts again). So whatever the peer's receive buffer absorbed at the start
/// buys it no time later: a peer that stops reading is found too slow at most
/// grace + period after the output started waiting, while a client that takes what it
/// is sent, at the rate or at its own pace between requests, never is. Pure: the caller
/// supplies the clock and the counts.
#[derive(Debug, Clone)]
pub(crate) struct SlidingRate {
    /// When output started waiting.
    start: std::time::Instant,
    /// `(when, taken, sent)` at the last samples, oldest first.
    samples: [(std::time::Instant, u64, u64); 4],
    /// Samples held (at most 4).
    len: usize,
}

impl SlidingRate {
    /// A window starting at `now` (no samples yet).
    pub(crate) fn new(now: std::time::Instant) -> SlidingRate {
        SlidingRate {
            start: now,
            samples: [(now, 0, 0); 4],
            len: 0,
        }
    }

    /// Time between samples for `rate`: a quarter of its grace, at least 100 ms.
    pub(crate) fn period(rate: &MinRate) -> Duration {
        (rate.grace / 4).max(Duration::from_millis(100))
    }

    /// When the next sample is due.
    pub(crate) fn next_sample(&self, rate: &MinRate) -> std::time::Instant {
        self.last() + Self::period(rate)
    }

    /// When the last sample was taken (the start before the first).
    fn last(&self) -> std::time::Instant {
        match self.len {
            0 => self.start,
            n => self.samples[n - 1].0,
        }
    }

    /// True if a sample may be taken at `now` (at least half a period after the last).
    pub(crate) fn due(&self, now: std::time::Instant, rate: &MinRate) -> bool {
        now.saturating_duration_since(self.last()) >= Self::period(rate) / 2
    }

    /// Takes a sample at `now`, if one is [`due`](Self::due): `taken`, the bytes the
    /// peer has taken in all, and `sent`, the bytes handed to the kernel in all. Says
    /// whether the peer is too slow (see the type's documentation).
    pub(crate) fn sample(
        &mut self,
        now: std::time::Instant,
        taken: u64,
        sent: u64,
        rate: &MinRate,
    ) -> bool {
        if !self.due(now, rate) {
            return false;
        }
        if self.len > 0 && taken >= self.samples[self.len - 1].2 {
            self.len = 0; // caught up: the peer waited for us
        }
        let slow = self.len == self.samples.len() && {
            let (then, base, _) = self.samples[0];
            let elapsed = now.saturating_duration_since(then);
            u128::from(taken.saturating_sub(base)) * 1000 < rate.required_millis(elapsed)
        };
        if self.len == self.samples.len() {
            self.samples.rotate_left(1);
            self.len -= 1;
        }
        self.samples[self.len] = (now, taken, sent);
        self.len += 1;
        slow
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8 * 1024,
            max_target_bytes: 8 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_requests_per_connection: 1000,
            max_buffered_body: 64 * 1024,
            worker_body_budget: 64 * 1024 * 1024,
            body_timeout: Duration::from_secs(60),
            offload_timeout: Duration::from_secs(30),
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(5),
            max_queued_output: 64 * 1024,
            min_body_rate: MinRate::new(240, Duration::from_secs(5)),
            min_response_rate: MinRate::new(240, Duration::from_secs(5)),
        }
    }
}

impl Limits {
    /// The most unconsumed input a connection must be able to hold before
    /// [`RequestParser::parse`](super::RequestParser::parse) (whole requests) can
    /// answer: a full head plus a body in its largest legal encoding (chunk framing
    /// included), with room for one receive buffer. A handler built on `parse` (such
    /// as [`StaticFiles`](super::StaticFiles)) passes it to
    /// [`Conn::set_max_pending`](crate::Conn::set_max_pending), so the codec's own
    /// limits (413, 431) always speak first. [`HttpConn`](super::HttpConn) consumes
    /// bodies as they arrive and needs only [`Limits::max_pending_input`].
    pub fn max_buffered_input(&self) -> usize {
        self.max_head_bytes
            .saturating_add(self.max_body_bytes.saturating_mul(2))
            .saturating_add(64 * 1024)
    }

    /// Sets [`Limits::max_head_bytes`].
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.max_head_bytes = bytes;
        self
    }

    /// Sets [`Limits::max_target_bytes`].
    pub fn max_target_bytes(mut self, bytes: usize) -> Self {
        self.max_target_bytes = bytes;
        self
    }

    /// Sets [`Limits::max_headers`].
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`Limits::max_body_bytes`].
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets [`Limits::header_timeout`].
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets [`Limits::keep_alive_timeout`].
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// Sets [`Limits::max_requests_per_connection`].
    pub fn max_requests_per_connection(mut self, count: u32) -> Self {
        self.max_requests_per_connection = count;
        self
    }

    /// Sets [`Limits::max_buffered_body`].
    pub fn max_buffered_body(mut self, bytes: usize) -> Self {
        self.max_buffered_body = bytes;
        self
    }

    /// Sets [`Limits::worker_body_budget`].
    pub fn worker_body_budget(mut self, bytes: usize) -> Self {
        self.worker_body_budget = bytes;
        self
    }

    /// Sets [`Limits::body_timeout`].
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Sets [`Limits::offload_timeout`].
    pub fn offload_timeout(mut self, timeout: Duration) -> Self {
        self.offload_timeout = timeout;
        self
    }

    /// Sets [`Limits::lingering_time`].
    pub fn lingering_time(mut self, time: Duration) -> Self {
        self.lingering_time = time;
        self
    }

    /// Sets [`Limits::lingering_timeout`].
    pub fn lingering_timeout(mut self, timeout: Duration) -> Self {
        self.lingering_timeout = timeout;
        self
    }

    /// Sets [`Limits::max_queued_output`].
    pub fn max_queued_output(mut self, bytes: usize) -> Self {
        self.max_queued_output = bytes;
        self
    }

    /// Sets [`Limits::min_body_rate`]: `bytes_per_sec` after `grace`; 0 disables it.
    pub fn min_body_rate(mut self, bytes_per_sec: u64, grace: Duration) -> Self {
        self.min_body_rate = MinRate::new(bytes_per_sec, grace);
        self
    }

    /// Sets [`Limits::min_response_rate`]: `bytes_per_sec` after `grace`; 0 disables it.
    pub fn min_response_rate(mut self, bytes_per_sec: u64, grace: Duration) -> Self {
        self.min_response_rate = MinRate::new(bytes_per_sec, grace);
        self
    }

    /// The most unconsumed input [`HttpConn`](super::HttpConn) leaves to the runtime:
    /// a full head plus one receive batch. Bodies are consumed as they arrive (streamed
    /// or copied into the capped body buffer), so nothing larger is ever pending.
    pub fn max_pending_input(&self) -> usize {
        self.max_head_bytes.saturating_add(64 * 1024)
    }
}

#[cfg(test)]
mod rate_tests {
    use super::{MinRate, SlidingRate};
    use std::time::{Duration, Instant};

    #[test]
    fn sliding_rate_forgets_the_initial_burst() {
        let r = MinRate::new(240, Duration::from_secs(5)).unwrap();
        let p = SlidingRate::period(&r);
        assert_eq!(p, Duration::from_millis(1250));
        let t0 = Instant::now();
        let sent = 2_600_000; // in the kernel's send buffer, unread
        let mut w = SlidingRate::new(t0);
        // 8 KiB taken at once (the peer's receive buffer), then 32 B per period.
        let mut taken = 8192;
        for k in 1..=4u32 {
            assert_eq!(w.next_sample(&r), t0 + p * k);
            taken += 32;
            assert!(
                !w.sample(t0 + p * k, taken, sent, &r),
                "no verdict before a full window"
            );
        }
        taken += 32;
        assert!(
            w.sample(t0 + p * 5, taken, sent, &r),
            "32 B per 1.25 s is too slow once the burst left the window"
        );
        // A steady 300 B/s reader is never too slow, however long it runs.
        let mut w = SlidingRate::new(t0);
        for k in 1..=40u32 {
            let t = t0 + p * k;
            let taken = (t - t0).as_millis() as u64 * 300 / 1000;
            assert!(!w.sample(t, taken, sent, &r), "sample {k}");
        }
        // A client that takes each small response as it comes (13 B a period, with the
        // next one always just sent when sampled) waits for us: never too slow.
        let mut w = SlidingRate::new(t0);
        for k in 1..=40u64 {
            let t = t0 + p * k as u32;
            assert!(!w.sample(t, 13 * (k - 1), 13 * k, &r), "sample {k}");
        }
        // Early calls take no sample.
        let mut w = SlidingRate::new(t0);
        assert!(!w.sample(t0 + p / 4, 0, sent, &r));
        assert_eq!(w.next_sample(&r), t0 + p);
    }

    #[test]
    fn min_rate_waits_for_the_grace_then_compares_the_average() {
        assert_eq!(MinRate::new(0, Duration::from_secs(5)), None);
        let r = MinRate::new(240, Duration::from_secs(5)).unwrap();
        assert!(
            !r.too_slow(0, Duration::from_millis(4999)),
            "inside the grace"
        );
        assert!(r.too_slow(1199, Duration::from_secs(5)));
        assert!(!r.too_slow(1200, Duration::from_secs(5)));
        assert_eq!(r.deadline_after_start(0), Duration::from_secs(5));
        assert_eq!(r.deadline_after_start(4800), Duration::from_secs(20));
    }
}
