//! Response counters by status code and a request-latency histogram, fed from an
//! [access-log hook](super::access_log) and printed in Prometheus text format.
//!
//! Counting costs a few relaxed atomic adds per response on a per-thread shard (no
//! cache line is shared between workers). Latency buckets, in seconds (the upper
//! bounds, `le`): 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
//! 0.1, 0.25, 0.5, 1, 2.5, 5, 10, +Inf. The latency is the
//! [`AccessRecord::duration`]: request head parsed to response queued.

use super::AccessRecord;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Upper bounds of the latency buckets, in microseconds (then +Inf).
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

const CODES: usize = 500; // 100..=599

#[repr(align(128))]
struct Shard {
    codes: [AtomicU64; CODES],
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            codes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// Responses by status and a latency histogram, shared by every worker.
#[derive(Clone)]
pub struct ResponseStats {
    shards: Arc<[Shard]>,
}

impl std::fmt::Debug for ResponseStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStats")
            .field("shards", &self.shards.len())
            .finish()
    }
}

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed)
    };
}

impl ResponseStats {
    /// Counters with `shards` shards (use the worker count: each thread counts into
    /// its own, round robin when there are more threads).
    pub fn new(shards: usize) -> ResponseStats {
        ResponseStats {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    /// Counts one response.
    pub fn record(&self, r: &AccessRecord<'_>) {
        let s = &self.shards[SHARD.with(|i| *i) % self.shards.len()];
        if (100..600).contains(&r.status) {
            s.codes[(r.status - 100) as usize].fetch_add(1, Relaxed);
        }
        let us = r.duration.as_micros().min(u64::MAX as u128) as u64;
        let b = LATENCY_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        s.buckets[b].fetch_add(1, Relaxed);
        s.sum_us.fetch_add(us, Relaxed);
    }

    /// Responses sent with `status`, summed over the shards.
    pub fn count(&self, status: u16) -> u64 {
        if !(100..600).contains(&status) {
            return 0;
        }
        self.shards
            .iter()
            .map(|s| s.codes[(status - 100) as usize].load(Relaxed))
            .sum()
    }

    /// Prometheus text: `ringcore_http_responses_total{code,class}` (codes seen so
    /// far) and the `ringcore_http_request_duration_seconds` histogram.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP ringcore_http_responses_total HTTP responses sent, by status code and class.\n\
             # TYPE ringcore_http_responses_total counter\n",
        );
        for i in 0..CODES {
            let n: u64 = self.shards.iter().map(|s| s.codes[i].load(Relaxed)).sum();
            if n > 0 {
                let code = i + 100;
                out.push_str(&format!(
                    "ringcore_http_responses_total{{code=\"{code}\",class=\"{}xx\"}} {n}\n",
                    code / 100
                ));
            }
        }
        out.push_str(
            "# HELP ringcore_http_request_duration_seconds Time from a request head parsed to its response queued.\n\
             # TYPE ringcore_http_request_duration_seconds histogram\n",
        );
        let mut cum = 0u64;
        for (b, le) in LATENCY_BUCKETS_US
            .iter()
            .map(|&us| format!("{}", us as f64 / 1e6))
            .chain(std::iter::once("+Inf".to_string()))
            .enumerate()
        {
            cum += self
                .shards
                .iter()
                .map(|s| s.buckets[b].load(Relaxed))
                .sum::<u64>();
            out.push_str(&format!(
                "ringcore_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cum}\n"
            ));
        }
        let sum: u64 = self.shards.iter().map(|s| s.sum_us.load(Relaxed)).sum();
        out.push_str(&format!(
            "ringcore_http_request_duration_seconds_sum {}\n\
             ringcore_http_request_duration_seconds_count {cum}\n",
            sum as f64 / 1e6
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(status: u16, us: u64) -> AccessRecord<'static> {
        AccessRecord {
            client: None,
            method: "GET",
            target: "/",
            version_minor: 1,
            status,
            bytes: 0,
            duration: Duration::from_micros(us),
            referer: b"",
            user_agent: b"",
            upstream: None,
        }
    }

    #[test]
    fn counts_codes_and_cumulative_buckets() {
        let s = ResponseStats::new(2);
        s.record(&rec(200, 50));
        s.record(&rec(200, 300));
        s.record(&rec(404, 20_000_000));
        assert_eq!(s.count(200), 2);
        let t = s.to_prometheus();
        assert!(
            t.contains("ringcore_http_responses_total{code=\"200\",class=\"2xx\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("ringcore_http_responses_total{code=\"404\",class=\"4xx\"} 1\n"));
        assert!(t.contains("ringcore_http_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(t.contains("ringcore_http_request_duration_seconds_bucket{le=\"0.0005\"} 2\n"));
        assert!(t.contains("ringcore_http_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(t.contains("ringcore_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(t.contains("ringcore_http_request_duration_seconds_count 3\n"));
        assert!(t.contains("# HELP ringcore_http_responses_total "));
    }
}
