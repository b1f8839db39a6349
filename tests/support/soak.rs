//! Harness of the fault-injection soak (tests/soak.rs): which seeds to run, a server
//! under a seeded [`FaultPlan`] whose `serve` must return within a deadline (a hang
//! is reported, not waited on forever), and the per-seed runtime shape.
//!
//! * `RINGCORE_SOAK_SEED=<n>` runs that one seed (replay of a failure);
//! * `RINGCORE_SOAK_SEEDS=<count>` runs seeds `0..count` (default [`DEFAULT_SEEDS`]);
//! * `RINGCORE_SOAK_FIRST=<n>` starts the range at `n`;
//! * `RINGCORE_SOAK_KEEP_GOING=1` records failures and goes on (long runs); the test
//!   still fails at the end, listing every failing seed.

#![allow(dead_code)]

use crate::support::{base_builder, wait_until};
use ringcore::{BackendKind, Builder, Counters, Factory, Handle, Listeners, SocketOptions};
use ringcore_runtime::fault::FaultPlan;
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seeds per backend in a plain `cargo test` run (sized for CI: 2 cores, the whole
/// suite twice).
pub const DEFAULT_SEEDS: u64 = 200;

/// How long `serve` may take to return after shutdown starts, beyond the drain
/// timeout, before the run counts as hung.
pub const JOIN_SLACK: Duration = Duration::from_secs(10);

/// The seeds this run covers.
pub fn seeds() -> Vec<u64> {
    let num = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = num("RINGCORE_SOAK_SEED") {
        return vec![s];
    }
    let first = num("RINGCORE_SOAK_FIRST").unwrap_or(0);
    let count = num("RINGCORE_SOAK_SEEDS").unwrap_or(DEFAULT_SEEDS);
    (first..first + count).collect()
}

/// True when failures are collected instead of stopping the run.
pub fn keep_going() -> bool {
    std::env::var("RINGCORE_SOAK_KEEP_GOING").is_ok_and(|v| v == "1")
}

/// The runtime shape a seed gets: its fault plan plus, for some seeds, tiny rings
/// (SQ 4, CQ 8: SQ-full and CQ-overflow paths) and a tiny buffer pool (real `ENOBUFS`
/// on io_uring).
pub fn soak_builder(backend: BackendKind, seed: u64, drain: Duration) -> Builder {
    let mut b = base_builder(backend)
        .fault_injection(FaultPlan::random(seed))
        .emfile_backoff(Duration::from_millis(1))
        .drain_timeout(drain)
        .raise_nofile(false);
    if seed % 3 == 0 {
        b = b.ring_entries(4).cq_entries(8);
    }
    match seed % 4 {
        0 => b = b.buf_count(4).buf_size(4096),
        1 => b = b.buf_count(16).buf_size(1024),
        _ => b = b.buf_count(64),
    }
    b
}

/// A server under faults on its own thread.
pub struct SoakServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its runtime's handle.
    pub handle: Handle,
    drain: Duration,
    join: Option<JoinHandle<io::Result<()>>>,
}

/// Starts `factory` with [`soak_builder`] for `seed`.
pub fn start<F: Factory>(
    backend: BackendKind,
    seed: u64,
    drain: Duration,
    factory: F,
) -> SoakServer {
    let rt = soak_builder(backend, seed, drain)
        .build()
        .expect("runtime configuration");
    assert_eq!(
        rt.config().backend,
        backend,
        "the runtime must run the backend under test"
    );
    let listeners =
        Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default()).expect("bind a soak listener");
    let addr = listeners.local_addr();
    let handle = rt.handle();
    let join = std::thread::Builder::new()
        .name(format!("soak-{backend}-{seed}"))
        .spawn(move || {
            use ringcore::Serve;
            rt.serve(listeners, factory)
        })
        .expect("spawn the server thread");
    SoakServer {
        addr,
        handle,
        drain,
        join: Some(join),
    }
}

impl SoakServer {
    /// The summed counters as last published.
    pub fn counters(&self) -> Counters {
        self.handle.metrics().total
    }

    /// Waits until every connection slot is free again.
    pub fn wait_idle(&self, what: &str) {
        wait_until(what, || {
            if self.join.as_ref().is_some_and(|j| j.is_finished()) {
                panic!("server ended while waiting for {what}");
            }
            self.counters().open_conns == 0
        });
    }

    /// Shuts down and waits (at most drain timeout + [`JOIN_SLACK`]) for `serve` to
    /// return `Ok`. A hung server thread is leaked, not joined, so the run goes on.
    pub fn stop(mut self) -> Result<Counters, String> {
        let started = Instant::now();
        self.handle.shutdown();
        let join = self.join.take().expect("stopped once");
        let limit = self.drain + JOIN_SLACK;
        while !join.is_finished() {
            if started.elapsed() > limit {
                let c = self.counters();
                std::mem::forget(join);
                return Err(format!(
                    "serve did not return {limit:?} after shutdown (drain timeout {:?}); \
                     counters {c:?}",
                    self.drain
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match join.join() {
            Ok(Ok(())) => Ok(self.counters()),
            Ok(Err(e)) => Err(format!("serve returned an error: {e}")),
            Err(_) => Err("the server thread panicked".into()),
        }
    }
}

impl Drop for SoakServer {
    fn drop(&mut self) {
        // A failed seed still stops its server (without waiting on a hung one).
        if let Some(j) = self.join.take() {
            self.handle.shutdown();
            let end = Instant::now() + self.drain + JOIN_SLACK;
            while !j.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            if j.is_finished() {
                let _ = j.join();
            }
        }
    }
}
