//! Blocking work off the worker thread (ARCHITECTURE.md decision 14).
//!
//! [`Conn::offload`](crate::Conn::offload) hands a closure to the worker's offload
//! pool: up to [`OffloadLimits::threads`] helper threads per worker (started as jobs
//! pile up, the first on first use) taking jobs from one queue in order. A helper
//! runs a job, queues its result with the token of the connection that asked, and
//! wakes the worker ([`Waker`]); the worker's next `flush` takes the results and calls
//! each connection's [`Handler::on_offload`](crate::Handler::on_offload) on the
//! worker. A result whose connection closed meanwhile (slot gone, reused under a new
//! generation, or closing) is dropped on the worker: an owned `File` in it is closed
//! there, so nothing leaks. The helpers never touch a connection or an op's memory.
//!
//! Bounds: [`Conn::try_offload`](crate::Conn::try_offload) refuses a job once
//! `threads + queue` jobs of the worker are queued or running ([`OffloadFull`]); an
//! HTTP offload route answers that with `503` and `Retry-After`.
//!
//! The helper threads are detached: a job stuck in the kernel (an open on a dead NFS
//! server) holds only its helper, never the worker or shutdown; the others go on.

use ringcore_runtime::{Token, Waker};
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A job's result (or the payload of its panic).
pub(crate) type Outcome = Box<dyn Any + Send>;
type Job = Box<dyn FnOnce() -> Outcome + Send>;

/// Default helper threads per worker.
pub const DEFAULT_OFFLOAD_THREADS: usize = 2;
/// Default jobs per worker that may wait for a helper beyond those running.
pub const DEFAULT_OFFLOAD_QUEUE: usize = 256;

static THREADS: AtomicUsize = AtomicUsize::new(DEFAULT_OFFLOAD_THREADS);
static QUEUE: AtomicUsize = AtomicUsize::new(DEFAULT_OFFLOAD_QUEUE);

/// The size of every worker's offload pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadLimits {
    /// Helper threads per worker (at least 1; default [`DEFAULT_OFFLOAD_THREADS`]).
    pub threads: usize,
    /// Jobs that may wait beyond the running ones, per worker (default
    /// [`DEFAULT_OFFLOAD_QUEUE`]); [`Conn::try_offload`](crate::Conn::try_offload)
    /// refuses more.
    pub queue: usize,
}

impl OffloadLimits {
    /// The limits in force (set by [`set`](Self::set), else the defaults).
    pub fn current() -> OffloadLimits {
        OffloadLimits {
            threads: THREADS.load(Ordering::Relaxed),
            queue: QUEUE.load(Ordering::Relaxed),
        }
    }

    /// Sets the limits for the workers of every runtime started afterwards in this
    /// process (a running worker keeps its pool). `threads` below 1 counts as 1.
    pub fn set(self) {
        THREADS.store(self.threads.max(1), Ordering::Relaxed);
        QUEUE.store(self.queue, Ordering::Relaxed);
    }
}

/// [`Conn::try_offload`](crate::Conn::try_offload) refused a job: the worker's pool
/// has `threads + queue` jobs queued or running. Try again later (an HTTP server
/// answers `503` with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadFull;

impl std::fmt::Display for OffloadFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the worker's offload queue is full")
    }
}

impl std::error::Error for OffloadFull {}

/// What the worker and its helpers share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<(Token, Job)>,
    done: Vec<(Token, Outcome)>,
    /// The worker's `Offload` is gone: helpers exit.
    closed: bool,
    /// Helpers waiting for a job.
    idle: usize,
}

/// One worker's offload pool and its finished results.
pub(crate) struct Offload {
    worker: usize,
    pub(crate) waker: Option<Waker>,
    limits: OffloadLimits,
    shared: Arc<Shared>,
    /// Helper threads started.
    threads: usize,
    /// Jobs submitted whose result has not been taken yet.
    pub(crate) in_flight: usize,
}

impl Offload {
    pub(crate) fn new(worker: usize) -> Offload {
        Offload {
            worker,
            waker: None,
            limits: OffloadLimits::current(),
            shared: Arc::default(),
            threads: 0,
            in_flight: 0,
        }
    }

    /// Runs `job` on a helper unless `threads + queue` jobs are queued or running.
    pub(crate) fn try_submit(&mut self, token: Token, job: Job) -> Result<(), OffloadFull> {
        if self.in_flight >= self.limits.threads + self.limits.queue {
            return Err(OffloadFull);
        }
        self.submit(token, job);
        Ok(())
    }

    /// Runs `job` on a helper; its result comes back tagged with `token`.
    pub(crate) fn submit(&mut self, token: Token, job: Job) {
        self.in_flight += 1;
        let idle = {
            let mut st = lock(&self.shared.state);
            st.jobs.push_back((token, job));
            st.idle
        };
        self.shared.ready.notify_one();
        // Another helper when every one is busy and the pool may grow.
        if idle == 0 && self.threads < self.limits.threads {
            if let Err(e) = self.spawn() {
                if self.threads == 0 {
                    // No thread at all (EAGAIN under a thread limit): run it here
                    // rather than lose the request; delivered the same way.
                    tracing::warn!(
                        worker = self.worker,
                        "ringcore: no offload thread ({e}); running the job on the worker"
                    );
                    let next = lock(&self.shared.state).jobs.pop_back();
                    if let Some((token, job)) = next {
                        let out = run(job);
                        lock(&self.shared.state).done.push((token, out));
                        if let Some(w) = &self.waker {
                            w.wake();
                        }
                    }
                } else {
                    tracing::warn!(
                        worker = self.worker,
                        threads = self.threads,
                        "ringcore: cannot start another offload thread ({e})"
                    );
                }
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let waker = self.waker.clone();
        std::thread::Builder::new()
            .name(format!("ringcore-w{}-off{}", self.worker, self.threads))
            .spawn(move || helper(&shared, waker.as_ref()))?;
        self.threads += 1;
        Ok(())
    }

    /// The results finished so far.
    pub(crate) fn take(&mut self) -> Vec<(Token, Outcome)> {
        let out = std::mem::take(&mut lock(&self.shared.state).done);
        self.in_flight -= out.len();
        out
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.ready.notify_all();
    }
}

/// A helper thread: runs queued jobs in order until the pool closes.
fn helper(shared: &Shared, waker: Option<&Waker>) {
    loop {
        let (token, job) = {
            let mut st = lock(&shared.state);
            loop {
                if st.closed {
                    return;
                }
                if let Some(j) = st.jobs.pop_front() {
                    break j;
                }
                st.idle += 1;
                st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle -= 1;
            }
        };
        let out = run(job);
        lock(&shared.state).done.push((token, out));
        if let Some(w) = waker {
            w.wake();
        }
    }
}

fn run(job: Job) -> Outcome {
    catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|payload| payload)
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
