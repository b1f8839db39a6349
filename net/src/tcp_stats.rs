//! Per-worker TCP statistics aggregated from `TCP_INFO` samples: a histogram of
//! smoothed RTT and counters of retransmitted segments and bytes, printed in Prometheus
//! text format with `# HELP` lines.
//!
//! [`TcpStats::wrap`] wraps a [`Factory`] so every TCP connection is sampled once, in
//! [`Handler::on_closing`]: after its last op and just before its socket is closed,
//! however it ends (graceful close, reset, abort, idle timeout, drain), so the sample
//! holds the connection's whole life. A Unix connection has no `TCP_INFO` and is not
//! counted. Recording is a few relaxed atomic adds on the connection's worker's own
//! cache lines.

use crate::handler::{CloseReason, Conn, ConnInfo, Factory, Handler, TunnelStats};
use crate::tcp_info::TcpInfo;
use crate::Closing;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Upper bounds of the RTT histogram buckets, microseconds (then `+Inf`).
pub const RTT_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
];

/// A counter series: name, help text, and how to read it from a worker.
type Counter = (&'static str, &'static str, fn(&Worker) -> u64);

#[derive(Default)]
#[repr(align(128))]
struct Worker {
    /// Per bucket (non-cumulative), the last one is `+Inf`.
    rtt: [AtomicU64; RTT_BUCKETS_US.len() + 1],
    rtt_sum_us: AtomicU64,
    samples: AtomicU64,
    retrans_segs: AtomicU64,
    retrans_bytes: AtomicU64,
}

/// TCP_INFO aggregates for every worker; share it (`Arc`) between the factory wrapper
/// and whatever prints metrics.
pub struct TcpStats {
    workers: Box<[Worker]>,
}

impl std::fmt::Debug for TcpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TcpStats({} workers)", self.workers.len())
    }
}

impl TcpStats {
    /// Aggregates for `workers` workers (samples from a higher worker id are folded
    /// into the last one).
    pub fn new(workers: usize) -> Arc<TcpStats> {
        Arc::new(TcpStats {
            workers: (0..workers.max(1)).map(|_| Worker::default()).collect(),
        })
    }

    /// Adds one connection's snapshot to `worker`'s aggregates.
    pub fn record(&self, worker: usize, i: &TcpInfo) {
        let w = &self.workers[worker.min(self.workers.len() - 1)];
        let us = i.rtt.as_micros().min(u128::from(u64::MAX)) as u64;
        let b = RTT_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(RTT_BUCKETS_US.len());
        w.rtt[b].fetch_add(1, Relaxed);
        w.rtt_sum_us.fetch_add(us, Relaxed);
        w.samples.fetch_add(1, Relaxed);
        w.retrans_segs
            .fetch_add(u64::from(i.total_retrans), Relaxed);
        w.retrans_bytes.fetch_add(i.bytes_retrans, Relaxed);
    }

    /// Connections sampled so far, all workers.
    pub fn samples(&self) -> u64 {
        self.workers.iter().map(|w| w.samples.load(Relaxed)).sum()
    }

    /// Appends the aggregates in Prometheus text format (one series per worker).
    pub fn write_prometheus(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP ringcore_tcp_rtt_seconds Smoothed RTT of TCP connections (TCP_INFO), sampled once near their end.\n\
             # TYPE ringcore_tcp_rtt_seconds histogram"
        );
        for (id, w) in self.workers.iter().enumerate() {
            let mut cum = 0;
            for (k, le) in RTT_BUCKETS_US.iter().enumerate() {
                cum += w.rtt[k].load(Relaxed);
                let _ = writeln!(
                    out,
                    "ringcore_tcp_rtt_seconds_bucket{{worker=\"{id}\",le=\"{}\"}} {cum}",
                    *le as f64 / 1e6
                );
            }
            cum += w.rtt[RTT_BUCKETS_US.len()].load(Relaxed);
            let _ = writeln!(
                out,
                "ringcore_tcp_rtt_seconds_bucket{{worker=\"{id}\",le=\"+Inf\"}} {cum}\n\
                 ringcore_tcp_rtt_seconds_sum{{worker=\"{id}\"}} {}\n\
                 ringcore_tcp_rtt_seconds_count{{worker=\"{id}\"}} {cum}",
                w.rtt_sum_us.load(Relaxed) as f64 / 1e6
            );
        }
        let counters: [Counter; 2] = [
            (
                "ringcore_tcp_retransmitted_segments_total",
                "Segments retransmitted (TCP_INFO total_retrans) by sampled connections.",
                |w: &Worker| w.retrans_segs.load(Relaxed),
            ),
            (
                "ringcore_tcp_retransmitted_bytes_total",
                "Bytes retransmitted (TCP_INFO bytes_retrans) by sampled connections.",
                |w: &Worker| w.retrans_bytes.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (id, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{id}\"}} {}", get(w));
            }
        }
    }

    /// The aggregates as Prometheus text (see [`write_prometheus`](Self::write_prometheus)).
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        self.write_prometheus(&mut s);
        s
    }

    /// Wraps `factory` so every connection it makes is sampled into these stats.
    pub fn wrap<F: Factory>(
        self: &Arc<Self>,
        factory: F,
    ) -> impl Fn(&ConnInfo) -> Sampled<F::Handler> + Send + Sync + 'static {
        let stats = self.clone();
        move |info: &ConnInfo| Sampled {
            inner: factory.make(info),
            stats: stats.clone(),
        }
    }
}

/// A handler that samples `TCP_INFO` into [`TcpStats`] in `on_closing` (see the module
/// docs) and otherwise delegates every callback to `inner`.
pub struct Sampled<H> {
    inner: H,
    stats: Arc<TcpStats>,
}

// Every `Handler` method is forwarded: a missing one would silently run the trait's
// default instead of the inner handler's.
impl<H: Handler> Handler for Sampled<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_open(conn)
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.inner.on_data(conn, data)
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_sent(conn)
    }
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        self.inner.on_fds(conn, fds)
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_eof(conn)
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_timeout(conn)
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_drain(conn)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        self.inner.on_timer(conn)
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn std::any::Any + Send>) {
        self.inner.on_offload(conn, result)
    }
    fn on_message(
        &mut self,
        conn: &mut Conn<'_>,
        from: crate::ConnId,
        msg: Box<dyn std::any::Any>,
    ) {
        self.inner.on_message(conn, from, msg)
    }
    fn on_undelivered(
        &mut self,
        conn: &mut Conn<'_>,
        to: crate::ConnId,
        msg: Box<dyn std::any::Any>,
    ) {
        self.inner.on_undelivered(conn, to, msg)
    }
    fn on_closing(&mut self, closing: &Closing) {
        // A Unix socket has no TCP_INFO: nothing to record.
        if let Ok(i) = closing.tcp_info() {
            self.stats.record(closing.worker_id(), &i);
        }
        self.inner.on_closing(closing)
    }
    fn on_close(&mut self, reason: CloseReason) {
        self.inner.on_close(reason)
    }
    fn on_tunnel_closed(&mut self, stats: TunnelStats) {
        self.inner.on_tunnel_closed(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_text() {
        let s = TcpStats::new(2);
        let mut i = crate::tcp_info::tests_support::zero();
        i.rtt = Duration::from_micros(80);
        i.total_retrans = 3;
        s.record(1, &i);
        i.rtt = Duration::from_secs(2);
        s.record(9, &i);
        let t = s.to_prometheus();
        assert!(t.contains("# HELP ringcore_tcp_rtt_seconds "), "{t}");
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_bucket{worker=\"1\",le=\"0.0001\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_bucket{worker=\"1\",le=\"0.25\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_bucket{worker=\"1\",le=\"+Inf\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("ringcore_tcp_rtt_seconds_count{worker=\"0\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("ringcore_tcp_retransmitted_segments_total{worker=\"1\"} 6"),
            "{t}"
        );
        assert_eq!(s.samples(), 2);
    }
}
