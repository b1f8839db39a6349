//! Harness of the fault-injection soak (tests/soak.rs): which seeds to run, a server
//! under a seeded [`FaultPlan`] whose `serve` must return within a deadline (a hang
//! is reported, not waited on forever), and the per-seed runtime shape.
//!
//! * `RINGCORE_SOAK_SEED=<n>` runs that one seed (replay of a failure);
//! * `RINGCORE_SOAK_SEEDS=<count>` runs seeds `0..count` (default [`DEFAULT_SEEDS`]);
//! * `RINGCORE_SOAK_FIRST=<n>` starts the range at `n`;
//! * `RINGCORE_SOAK_REPEAT=<n>` runs each seed `n` times (a seed fixes the plan, ring
//!   shape, workload and RNG stream, but the decisions follow the ops as the kernel's
//!   timing makes them happen, so a race may need repeats to show again);
//! * `RINGCORE_SOAK_ONLY=delay,short_send` keeps only those faults (`none`: no fault;
//!   the seed still picks rings, pool and workload);
//! * `RINGCORE_SOAK_KEEP_GOING=1` records failures and goes on (long runs); the test
//!   still fails at the end, listing every failing seed.

#![allow(dead_code)]

use crate::support::client::Rng;
use crate::support::{base_builder, wait_until};
use ringcore::{
    BackendKind, Builder, Conn, Counters, Factory, Handle, Handler, Listeners, Runtime,
    SocketOptions,
};
use ringcore_runtime::fault::FaultPlan;
use ringcore_runtime::SpliceMode;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Seeds per backend in a plain `cargo test` run (sized for CI: 2 cores, the whole
/// suite twice).
pub const DEFAULT_SEEDS: u64 = 300;

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
    let repeat = num("RINGCORE_SOAK_REPEAT").unwrap_or(1).max(1) as usize;
    let one: Vec<u64> = match num("RINGCORE_SOAK_SEED") {
        Some(s) => vec![s],
        None => {
            let first = num("RINGCORE_SOAK_FIRST").unwrap_or(0);
            let count = num("RINGCORE_SOAK_SEEDS").unwrap_or(DEFAULT_SEEDS);
            (first..first + count).collect()
        }
    };
    one.iter()
        .flat_map(|&s| std::iter::repeat_n(s, repeat))
        .collect()
}

/// True when failures are collected instead of stopping the run.
pub fn keep_going() -> bool {
    std::env::var("RINGCORE_SOAK_KEEP_GOING").is_ok_and(|v| v == "1")
}

/// The runtime shape a seed gets: its fault plan plus, for some seeds, tiny rings
/// (SQ 4, CQ 8: SQ-full and CQ-overflow paths), SQPOLL, a tiny buffer pool (real
/// `ENOBUFS` on io_uring), and on io_uring direct descriptors (four seeds in seven:
/// 7 is prime to the other periods, so every shape meets them on and off), where the
/// plan's `direct_close_fail` makes direct closes fail late.
pub fn soak_builder(backend: BackendKind, seed: u64, drain: Duration) -> Builder {
    let mut b = base_builder(backend)
        .fault_injection(plan(seed))
        .emfile_backoff(Duration::from_millis(1))
        .drain_timeout(drain)
        .raise_nofile(false);
    if seed % 3 == 0 {
        b = b.ring_entries(4).cq_entries(8);
    }
    if seed % 5 == 4 && backend == BackendKind::Uring {
        // A kernel thread polls the SQ: it may take SQEs as soon as they are written.
        b = b.sqpoll(Duration::from_millis(1), None);
    }
    match seed % 4 {
        0 => b = b.buf_count(4).buf_size(4096),
        1 => b = b.buf_count(16).buf_size(1024),
        _ => b = b.buf_count(64),
    }
    b = b.splice_mode(splice_mode(seed));
    if backend == BackendKind::Uring && seed % 7 < 4 {
        b = b.direct_descriptors(true);
    }
    if backend == BackendKind::Uring {
        let f = fast_path(seed);
        b = b
            .recv_bundle(f.recv_bundle)
            .buf_inc(f.buf_inc)
            .send_zc_threshold(f.send_zc_threshold)
            .send_zc_local(true)
            .recv_hold_limit(f.recv_hold_limit);
    }
    b
}

/// The io_uring fast-path options of issue 12 a seed turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastPath {
    /// `Builder::recv_bundle`.
    pub recv_bundle: bool,
    /// `Builder::buf_inc` (the UDP workload turns it off again: not for UDP).
    pub buf_inc: bool,
    /// `Builder::send_zc_threshold`.
    pub send_zc_threshold: Option<usize>,
    /// `Builder::recv_hold_limit` (`None`: the default, a quarter of the pool).
    pub recv_hold_limit: Option<u32>,
    /// The echo handlers send with `Conn::send_received` (held receive buffers).
    pub hold: bool,
}

/// The seed's fast-path variant, nine seeds each in turn (so every variant meets every
/// splice mode and ring size): off; bundles + `SEND_ZC` from 1 KiB + held buffers;
/// incremental buffers + held buffers with a limit of 2 (fallbacks to copying);
/// everything at once.
pub fn fast_path(seed: u64) -> FastPath {
    let v = (seed / 9) % 4;
    FastPath {
        recv_bundle: v == 1 || v == 3,
        buf_inc: v == 2 || v == 3,
        send_zc_threshold: (v == 1 || v == 3).then_some(1024),
        recv_hold_limit: (v == 2).then_some(2),
        hold: v != 0,
    }
}

/// Echo that sends with `Conn::send_received` when `hold` (the held-buffer zero-copy
/// path on io_uring; a copy on epoll), else with `Conn::send`.
pub struct SoakEcho {
    /// Send from the receive buffer.
    pub hold: bool,
}

impl Handler for SoakEcho {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.hold {
            conn.send_received(data);
        } else {
            conn.send(data);
        }
        data.len()
    }
}

/// The echo factory of `seed` (see [`fast_path`]).
pub fn echo_factory(seed: u64) -> impl Fn(&ringcore::ConnInfo) -> SoakEcho + Send + Sync + 'static {
    let hold = fast_path(seed).hold;
    move |_| SoakEcho { hold }
}

/// The seed's splice mode (io_uring; epoll always splices inline): the default
/// [`SpliceMode::Inline`], [`SpliceMode::InlineDrain`] or [`SpliceMode::Ring`] in turn,
/// three seeds each, so that over any 9 consecutive seeds every mode meets every
/// ring size (`seed % 3`).
pub fn splice_mode(seed: u64) -> SpliceMode {
    match (seed / 3) % 3 {
        0 => SpliceMode::Inline,
        1 => SpliceMode::InlineDrain,
        _ => SpliceMode::Ring,
    }
}

/// The seed's fault plan: [`FaultPlan::random`], narrowed for diagnosis by
/// `RINGCORE_SOAK_ONLY=<fault>[,<fault>...]` (names as the `FaultRates` fields;
/// `none` for no fault at all).
pub fn plan(seed: u64) -> FaultPlan {
    let mut p = FaultPlan::random(seed);
    let Ok(only) = std::env::var("RINGCORE_SOAK_ONLY") else {
        return p;
    };
    let keep = |name: &str| only.split(',').any(|o| o.trim() == name);
    let r = &mut p.rates;
    for (name, rate) in [
        ("short_send", &mut r.short_send),
        ("short_splice", &mut r.short_splice),
        ("send_eagain", &mut r.send_eagain),
        ("recv_enobufs", &mut r.recv_enobufs),
        ("accept_emfile", &mut r.accept_emfile),
        ("multishot_cut", &mut r.multishot_cut),
        ("delay", &mut r.delay),
        ("stale_duplicate", &mut r.stale_duplicate),
        ("direct_close_fail", &mut r.direct_close_fail),
    ] {
        if !keep(name) {
            *rate = 0;
        }
    }
    p
}

/// How long a seed waits for connections to close (`RINGCORE_SOAK_DEADLINE_MS`,
/// default 10 s: far beyond what a seed needs, short enough for long runs).
pub fn idle_deadline() -> Duration {
    let ms = std::env::var("RINGCORE_SOAK_DEADLINE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    Duration::from_millis(ms)
}

/// The fdinfo of every io_uring instance of this process (what the kernel still
/// holds: SQEs, CQEs, overflow, polls), for failure messages.
pub fn ring_fdinfo() -> String {
    let mut out = String::new();
    for (fd, target) in crate::support::fd_table() {
        if target.contains("io_uring") {
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            let lines: Vec<&str> = info
                .lines()
                .filter(|l| !l.starts_with("UserBufs"))
                .take(60)
                .collect();
            out.push_str(&format!(
                "fdinfo of io_uring fd {fd}:\n{}\n",
                lines.join("\n")
            ));
        }
    }
    out
}

/// A server under faults on its own thread.
pub struct SoakServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its runtime's receive buffer size (`buf_size`).
    pub buf_size: usize,
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
    let listeners =
        Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default()).expect("bind a soak listener");
    let addr = listeners.local_addr();
    start_with(
        backend,
        soak_builder(backend, seed, drain),
        seed,
        addr,
        move |rt| {
            use ringcore::Serve;
            rt.serve(listeners, factory)
        },
    )
}

/// Runs `serve` (which serves on `addr`, bound by the caller) on a server thread with
/// the runtime `builder` makes (for `backend`, seed `seed`).
pub fn start_with(
    backend: BackendKind,
    builder: Builder,
    seed: u64,
    addr: SocketAddr,
    serve: impl FnOnce(&Runtime) -> io::Result<()> + Send + 'static,
) -> SoakServer {
    let rt = builder.build().expect("runtime configuration");
    let drain = rt.config().drain_timeout;
    let buf_size = rt.config().buf_size as usize;
    assert_eq!(
        rt.config().backend,
        backend,
        "the runtime must run the backend under test"
    );
    let (handle, join) = crate::support::spawn_serving(rt, format!("soak-{backend}-{seed}"), serve);
    SoakServer {
        addr,
        buf_size,
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

    /// Waits until every connection slot is free again (at most [`idle_deadline`]);
    /// on timeout the error carries the counters and every io_uring's fdinfo.
    pub fn wait_idle(&self, what: &str) -> Result<(), String> {
        let end = Instant::now() + idle_deadline();
        loop {
            if self.join.as_ref().is_some_and(|j| j.is_finished()) {
                return Err(format!("server ended while waiting for {what}"));
            }
            let c = self.counters();
            if c.open_conns == 0 {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!(
                    "timed out after {:?} waiting for {what}: counters {c:?}\n{}",
                    idle_deadline(),
                    ring_fdinfo()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the server has received bytes (a client is in the middle of
    /// something).
    pub fn wait_busy(&self) {
        wait_until("the server to receive bytes", || {
            self.counters().bytes_in > 0
        });
    }

    /// Shuts down and waits (at most drain timeout + [`JOIN_SLACK`]) for `serve` to
    /// return `Ok` with every direct-descriptor slot emptied (`direct_in_use` 0). A
    /// hung server thread is leaked, not joined, so the run goes on.
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
                     counters {c:?}\n{}",
                    self.drain,
                    ring_fdinfo()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match join.join() {
            Ok(Ok(())) => match self.counters() {
                c if c.direct_in_use != 0 => {
                    Err(format!("direct-descriptor slots left in use: {c:?}"))
                }
                c => Ok(c),
            },
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
            let end = Instant::now() + self.drain + Duration::from_secs(1);
            while !j.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            if j.is_finished() {
                let _ = j.join();
            }
        }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The process to oneself: the fd-table check of [`run_seeds`] fails if another
/// test of the binary opens or closes fds meanwhile. Every soak test takes this first
/// (before creating its files).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `one(backend, seed)` for every seed of [`seeds`] on every backend, each seed
/// with the process's fd table checked against what it was before the seed. A failure
/// (an `Err` or a panic) prints its seed and replay line; the test panics at the end
/// (or at the first failure without `RINGCORE_SOAK_KEEP_GOING=1`), listing them all.
pub fn run_seeds(test: &str, one: impl Fn(BackendKind, u64) -> Result<(), String>) {
    let seeds = seeds();
    let stats_before = ringcore_runtime::fault::stats();
    let mut failures = Vec::new();
    'backends: for backend in crate::support::backends() {
        let started = Instant::now();
        let mut ok = 0;
        for &seed in &seeds {
            let fds = crate::support::fd_table();
            let t = Instant::now();
            let r = catch_unwind(AssertUnwindSafe(|| one(backend, seed)));
            if t.elapsed() > Duration::from_secs(1) {
                eprintln!("{test}: slow seed {seed} on {backend}: {:.1?}", t.elapsed());
            }
            let msg = match r {
                Ok(Ok(())) => match fd_diff(&fds) {
                    None => {
                        ok += 1;
                        continue;
                    }
                    Some(leak) => leak,
                },
                Ok(Err(m)) => m,
                Err(p) => panic_text(p),
            };
            let name = if backend == BackendKind::Uring {
                "uring"
            } else {
                "epoll"
            };
            eprintln!(
                "SOAK FAILURE {test} seed={seed} backend={backend} (splice mode {:?}): {msg}\n  replay: \
                 RINGCORE_SOAK_SEED={seed} RINGCORE_BACKEND={name} cargo test --release --test {test}",
                splice_mode(seed)
            );
            failures.push(format!("seed {seed} on {backend}: {msg}"));
            if !keep_going() {
                break 'backends;
            }
        }
        eprintln!(
            "{test}: {backend}: {ok}/{} seeds passed in {:.1?}",
            seeds.len(),
            started.elapsed()
        );
    }
    let s = ringcore_runtime::fault::stats();
    eprintln!(
        "{test}: faults injected: {} short sends, {} short splices, {} send EAGAIN, {} recv ENOBUFS, {} accept \
         EMFILE, {} multishot cuts, {} delayed, {} stale duplicates, {} failed direct closes",
        s.short_sends - stats_before.short_sends,
        s.short_splices - stats_before.short_splices,
        s.send_eagains - stats_before.send_eagains,
        s.recv_enobufs - stats_before.recv_enobufs,
        s.accept_emfiles - stats_before.accept_emfiles,
        s.multishot_cuts - stats_before.multishot_cuts,
        s.delayed - stats_before.delayed,
        s.stale_duplicates - stats_before.stale_duplicates,
        s.direct_close_fails - stats_before.direct_close_fails,
    );
    if failures.is_empty() && seeds.len() >= 50 && std::env::var("RINGCORE_SOAK_ONLY").is_err() {
        // A long enough run must have injected every kind of fault it can on every
        // workload (guards against an injector that silently does nothing).
        let d = |now: u64, before: u64| now - before;
        let fired = [
            ("short sends", d(s.short_sends, stats_before.short_sends)),
            ("send EAGAIN", d(s.send_eagains, stats_before.send_eagains)),
            ("recv ENOBUFS", d(s.recv_enobufs, stats_before.recv_enobufs)),
            (
                "accept EMFILE",
                d(s.accept_emfiles, stats_before.accept_emfiles),
            ),
            (
                "multishot cuts",
                d(s.multishot_cuts, stats_before.multishot_cuts),
            ),
            ("delays", d(s.delayed, stats_before.delayed)),
            (
                "stale duplicates",
                d(s.stale_duplicates, stats_before.stale_duplicates),
            ),
        ];
        for (what, n) in fired {
            assert!(
                n > 0,
                "{test}: no {what} were injected in {} seeds",
                seeds.len()
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} soak failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The difference between the fd table now and `before`, if any.
fn fd_diff(before: &std::collections::BTreeMap<i32, String>) -> Option<String> {
    let now = crate::support::fd_table();
    if &now == before {
        return None;
    }
    let leaked: Vec<_> = now
        .iter()
        .filter(|(fd, t)| before.get(fd) != Some(t))
        .collect();
    let lost: Vec<_> = before
        .iter()
        .filter(|(fd, t)| now.get(fd) != Some(t))
        .collect();
    Some(format!(
        "fd leak: {} open before, {} after; new or changed: {leaked:?}; gone: {lost:?}",
        before.len(),
        now.len()
    ))
}

/// The proxy handler of examples/proxy.rs.
pub struct Proxy {
    /// Where every tunnel goes.
    pub upstream: SocketAddr,
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if conn.pipe_to(self.upstream, Duration::from_secs(5)).is_err() {
            conn.abort();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// The files the file-server workload serves (created once per run).
pub struct Tree {
    /// The directory served.
    pub root: PathBuf,
    /// Each file's name and contents.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Tree {
    /// Writes the files.
    pub fn new() -> Tree {
        let root = std::env::temp_dir().join(format!("ringcore-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the soak root");
        let mut rng = Rng::new(0x50A4);
        let mut files = Vec::new();
        for (name, n) in [
            ("one.bin", 1),
            ("page.bin", 4097),
            ("mid.bin", 65_539),
            ("big.bin", 300_001),
        ] {
            let data = rng.bytes(n);
            std::fs::write(root.join(name), &data).expect("write a soak file");
            files.push((name.to_string(), data));
        }
        Tree { root, files }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// FNV-1a, to name a byte stream in messages.
pub fn hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}
