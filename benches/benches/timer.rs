//! The per-worker timer set after connection churn (issue 8, defect 12).
//!
//! 100,000 connections came and went, each leaving an idle timer behind (far in the
//! future, so none fires during the run); now every loop turn fires one short timer
//! (a header deadline) and asks for the next deadline, as the worker does. The
//! connections' close cancelled their timers.
//!
//! Measured on the 2-core dev VM (shared, so noisy), median per turn:
//!
//! | case                          | before (hashed wheel) | after (heap + cancel) |
//! | ----------------------------- | --------------------- | --------------------- |
//! | 100k closed, 100 open         | 242 µs                | 0.18 µs               |
//! | 100k closed, 10,000 open      | 46 µs                 | 0.24 µs               |
//! | `next_deadline` alone         | 3.7 ns (cached)       | 5.9 ns (peek)         |
//!
//! "Before" had no cancellation, so the closed connections' 100k entries stayed, and
//! every expiry made `next_deadline` rescan all of them.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringcore::runtime::timer::TimerWheel;
use std::time::{Duration, Instant};

const STALE: u64 = 100_000;

/// A wheel that saw `STALE` connections open and close, with `live` still open.
fn churned(t0: Instant, live: u64) -> TimerWheel {
    let mut w = TimerWheel::new(t0);
    let far = t0 + Duration::from_secs(1_000_000);
    for k in 0..STALE {
        let h = w.insert(far + Duration::from_millis(k), k);
        // The connection closed: its timer goes with it.
        w.cancel(h);
    }
    for k in 0..live {
        w.insert(far + Duration::from_millis(k), STALE + k);
    }
    w
}

fn timer(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer");
    for live in [100u64, 10_000] {
        let t0 = Instant::now();
        let mut w = churned(t0, live);
        let mut tick = 0u64;
        let mut out = Vec::with_capacity(4);
        g.bench_function(
            format!("turn after 100k closed conns, {live} open: fire one + next_deadline"),
            |b| {
                b.iter(|| {
                    tick += 1;
                    let now = t0 + Duration::from_millis(tick);
                    w.insert(now, u64::MAX);
                    out.clear();
                    w.expire(now + Duration::from_millis(2), &mut out);
                    black_box(w.next_deadline())
                })
            },
        );
    }
    let t0 = Instant::now();
    let w = churned(t0, 100);
    g.bench_function("next_deadline alone (100k cancelled, 100 open)", |b| {
        b.iter(|| black_box(&w).next_deadline())
    });
    g.finish();
}

criterion_group!(benches, timer);
criterion_main!(benches);
