//! The per-core loop: wait (one enter) -> drain completions -> dispatch -> flush.
//!
//! [`Runtime::run`] starts one pinned thread per worker; each opens its own backend
//! and builds its own [`Service`] (for `ringcore-net`: a listener and a slab of
//! connections). Workers share nothing on the hot path; the [`Handle`] talks to them
//! through a crossbeam channel plus a write to each worker's wake eventfd.

use crate::backend::{BackendKind, Driver};
use crate::completion::Completion;
use crate::config::Config;
use crate::io::Io;
use crate::metrics::{Shared as SharedCounters, Snapshot};
use crate::op::Op;
use crate::signals;
use crate::token::{OpKind, Token};
use crate::waker::{wake, WakeTarget, Waker, WAKE_MSG_TOKEN, WAKE_TOKEN};
use crossbeam_channel::{Receiver, Sender};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What runs on a worker: the owner of its sockets and connections.
///
/// The worker calls these in a fixed order each loop turn: `complete` for every
/// completion of the turn's batch, then `expire`, then `flush`. No call re-enters
/// another.
pub trait Service {
    /// Called once on the worker thread before the first wait (open listeners, arm ops).
    ///
    /// # Errors
    /// Aborts this worker and makes [`Runtime::run`] return the error.
    fn start(&mut self, io: &mut Io) -> io::Result<()>;
    /// One completion of one of this service's ops.
    fn complete(&mut self, io: &mut Io, c: Completion);
    /// Timers: handle whatever is due at `io.now()`.
    fn expire(&mut self, io: &mut Io);
    /// End of a batch: submit whatever the callbacks queued (sends, re-arms).
    fn flush(&mut self, io: &mut Io);
    /// When [`expire`](Self::expire) next has work, if ever.
    fn next_deadline(&self) -> Option<Instant>;
    /// Shutdown started: stop accepting; let open connections finish.
    fn drain(&mut self, io: &mut Io);
    /// The drain deadline passed: cancel and close everything still open.
    fn abort(&mut self, io: &mut Io);
    /// True when nothing is open and no op of this service is in flight.
    fn is_done(&self) -> bool;
    /// True when the service has finished its work on its own (a client whose
    /// connections all closed): the worker then shuts down as if asked to.
    fn wants_exit(&self) -> bool {
        false
    }
}

#[derive(Debug)]
enum Control {
    Shutdown,
}

struct WorkerSlot {
    tx: Sender<Control>,
    /// Where wakes go: the eventfd, or the ring with `msg_ring_wake`.
    wake: Arc<WakeTarget>,
    counters: Arc<SharedCounters>,
}

struct Shared {
    workers: Mutex<Vec<Arc<WorkerSlot>>>,
    shutdown: std::sync::atomic::AtomicBool,
}

/// A runtime: configuration plus the control plane of its workers.
pub struct Runtime {
    cfg: Arc<Config>,
    shared: Arc<Shared>,
}

/// A cloneable, `Send` handle to a running runtime: shutdown and metrics.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Starts a graceful shutdown: workers stop accepting, connections get the drain
    /// timeout to finish, then the rest are cancelled and closed. Safe to call more
    /// than once, before or during [`Runtime::run`].
    pub fn shutdown(&self) {
        crate::systemd::notify_stopping();
        self.shared
            .shutdown
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for w in self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = w.tx.send(Control::Shutdown);
            wake(&w.wake);
        }
    }

    /// Counters of every worker, summed (each worker publishes once per loop turn).
    pub fn metrics(&self) -> Snapshot {
        let ws = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Snapshot::from_shared(ws.iter().map(|w| &*w.counters))
    }
}

impl Runtime {
    /// A builder with default settings.
    pub fn builder() -> crate::config::Builder {
        crate::config::Builder::new()
    }

    pub(crate) fn from_config(cfg: Config) -> io::Result<Runtime> {
        Ok(Runtime {
            cfg: Arc::new(cfg),
            shared: Arc::new(Shared {
                workers: Mutex::new(Vec::new()),
                shutdown: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// A handle for shutdown and metrics, usable from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Runs one worker per configured CPU, each with the service `make(worker_id)`
    /// builds on that worker's thread, until shutdown completes on every worker.
    ///
    /// # Errors
    /// The first worker start-up error (backend unavailable, bind failure, ...); the
    /// other workers are shut down before it is returned.
    pub fn run<S, F>(&self, make: F) -> io::Result<()>
    where
        S: Service,
        F: Fn(usize, &Io) -> io::Result<S> + Send + Sync + 'static,
    {
        if self.cfg.raise_nofile {
            match crate::affinity::raise_nofile_limit() {
                Ok(n) => tracing::debug!("ringcore: RLIMIT_NOFILE is {n}"),
                Err(e) => tracing::warn!("ringcore: could not raise RLIMIT_NOFILE: {e}"),
            }
        }
        let cpus = match &self.cfg.cpus {
            Some(c) if !c.is_empty() => c.clone(),
            _ => crate::affinity::allowed_cpus(),
        };
        let make = Arc::new(make);
        let mut slots: Vec<Arc<WorkerSlot>> = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..self.cfg.workers {
            let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
            let efd = match EventFd::from_flags(flags) {
                // The slot owns the raw fd from here (signal handlers write it by
                // number); `close_wake` closes it.
                Ok(e) => OwnedFd::from(e).into_raw_fd(),
                Err(e) => {
                    for s in &slots {
                        close_wake(s);
                    }
                    return Err(e.into());
                }
            };
            let (tx, rx) = crossbeam_channel::unbounded();
            slots.push(Arc::new(WorkerSlot {
                tx,
                wake: Arc::new(WakeTarget::new(efd)),
                counters: Arc::new(SharedCounters::default()),
            }));
            rxs.push(rx);
        }
        *self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = slots.clone();
        let _sig = if self.cfg.handle_signals {
            Some(signals::install(self.cfg.drain_timeout))
        } else {
            None
        };
        // A shutdown requested before run started still applies. The message alone is
        // not enough: a worker reads its channel after a wait, and with nothing else
        // to wake it (no connection, no signal) its first wait would never end; the
        // eventfd write completes its wake read at once.
        if self
            .shared
            .shutdown
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            for s in &slots {
                let _ = s.tx.send(Control::Shutdown);
                wake(&s.wake);
            }
        }
        let mut threads = Vec::new();
        // Workers whose service started (listens); the last one tells systemd.
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for (i, (slot, rx)) in slots.iter().cloned().zip(rxs).enumerate() {
            let cfg = self.cfg.clone();
            let started = started.clone();
            let make = make.clone();
            let handle = self.handle();
            let cpu = if self.cfg.pin {
                Some(cpus[i % cpus.len()])
            } else {
                None
            };
            let t = std::thread::Builder::new()
                .name(format!("ringcore-w{i}"))
                .spawn(move || {
                    // A panic in the service (outside the callbacks, which ringcore-net
                    // catches) ends this worker like a fatal error: the others are shut
                    // down too, so `run` returns instead of waiting for them forever.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let on_started = || {
                            let n = started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            // The runtime that handles the process's signals is its main
                            // server: it alone speaks for the process to systemd.
                            if n + 1 == cfg.workers && cfg.handle_signals {
                                crate::systemd::notify_ready(cfg.workers);
                            }
                        };
                        run_worker(i, cpu, cfg.clone(), &slot, rx, &*make, &on_started)
                    }))
                    .unwrap_or_else(|_| {
                        Err(io::Error::other(format!(
                            "worker {i}: the service panicked"
                        )))
                    });
                    close_wake(&slot);
                    if r.is_err() {
                        handle.shutdown();
                    }
                    r
                })?;
            threads.push(t);
        }
        let mut first_err = None;
        for t in threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("worker thread panicked")));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Publishes the worker's ring fd for `MSG_RING` wakes while it lives.
struct RingWake<'a>(Option<&'a WorkerSlot>);

impl<'a> RingWake<'a> {
    fn install(slot: &'a WorkerSlot, io: &Io, cfg: &Config) -> RingWake<'a> {
        if !cfg.msg_ring_wake {
            return RingWake(None);
        }
        let Some(fd) = io.driver.ring_fd() else {
            return RingWake(None);
        };
        // The start-up probe: one wake to itself (a spare loop turn). A kernel without
        // ring-less MSG_RING (before 6.13) answers EINVAL: keep the eventfd.
        if let Err(e) = crate::uring::enter::send_msg_ring(fd, WAKE_MSG_TOKEN.raw()) {
            tracing::warn!(
                "ringcore: MSG_RING wake-ups unavailable ({e}; ring-less MSG_RING needs \
                 Linux 6.13); waking workers through their eventfd"
            );
            return RingWake(None);
        }
        *slot.wake.ring.lock().unwrap_or_else(|e| e.into_inner()) = fd;
        RingWake(Some(slot))
    }
}

impl Drop for RingWake<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            *slot.wake.ring.lock().unwrap_or_else(|e| e.into_inner()) = -1;
        }
    }
}

fn close_wake(slot: &WorkerSlot) {
    let mut fd = slot.wake.fd.lock().unwrap_or_else(|e| e.into_inner());
    if *fd >= 0 {
        signals::forget_wake_fd(*fd);
        // We own this eventfd; after this the slot says -1 so nobody writes it. A
        // failed close(2) still frees the number on Linux: nothing to retry.
        let _ = nix::unistd::close(*fd);
        *fd = -1;
    }
}

const WAKE_CANCEL_TOKEN: Token = Token::internal(crate::token::WORKER_INTERNAL_ID, OpKind::Cancel);

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Phase {
    Running,
    Draining(Instant),
    Aborted,
}

/// What the kernel may write while this worker's ops are in flight: the backend (the
/// ring and its provided buffers), the service (buffers, iovecs and addresses its ops
/// point at) and the wake read's buffer.
///
/// They are freed only when nothing can be in flight any more: after a clean end (the
/// service is done and the wake read's final completion was seen), on the epoll backend
/// (whose ops are plain syscalls that finished when they returned; its parked ops are
/// only pointers that dropping never follows), or when a failed start queued nothing.
/// On every other way out (a fatal ring error, a failed start with ops queued, a panic
/// unwinding through the worker) they are leaked on purpose: even closing the ring does
/// not stop the kernel at once (its requests are cancelled asynchronously, and io-wq
/// work may still run), so freeing anything an SQE points at could let the kernel
/// write into memory that was reused. The worker is gone either way; the leak is
/// bounded by one worker's state and logged.
struct Owned<S> {
    io: ManuallyDrop<Io>,
    service: ManuallyDrop<S>,
    wake_buf: ManuallyDrop<Box<u64>>,
    /// True once no op of this worker can still be in flight in the kernel.
    quiet: bool,
}

impl<S> Drop for Owned<S> {
    fn drop(&mut self) {
        if self.quiet || self.io.backend() == BackendKind::Epoll {
            // SAFETY: each field is dropped exactly once, here, and never used after;
            // no op can still reach their memory (see the type's docs). The service goes
            // before the backend it may still name fds of.
            unsafe {
                ManuallyDrop::drop(&mut self.service);
                ManuallyDrop::drop(&mut self.wake_buf);
                ManuallyDrop::drop(&mut self.io);
            }
        } else {
            tracing::error!(
                worker = self.io.worker,
                "worker stopped with io_uring ops possibly in flight: its service, buffers \
                 and ring are leaked on purpose (the kernel may still write to them)"
            );
        }
    }
}

fn run_worker<S, F>(
    id: usize,
    cpu: Option<usize>,
    cfg: Arc<Config>,
    slot: &Arc<WorkerSlot>,
    rx: Receiver<Control>,
    make: &F,
    on_started: &dyn Fn(),
) -> io::Result<()>
where
    S: Service,
    F: Fn(usize, &Io) -> io::Result<S>,
{
    if let Some(cpu) = cpu {
        if let Err(e) = crate::affinity::pin_current_thread(cpu) {
            tracing::warn!(
                "ringcore: worker {id}: could not pin to CPU {cpu}: {e}; running unpinned"
            );
        }
    }
    let driver = Driver::open(&cfg)?;
    let wake_fd = *slot.wake.fd.lock().unwrap_or_else(|e| e.into_inner());
    signals::remember_wake_fd(wake_fd);
    let mut io = Io::new(driver, id, cfg.clone());
    io.waker = Some(Waker::new(slot.wake.clone()));
    // `make` sees only `&Io`: it cannot queue an op, so a failure frees everything.
    let service = make(id, &io)?;
    let mut owned = Owned {
        io: ManuallyDrop::new(io),
        service: ManuallyDrop::new(service),
        wake_buf: ManuallyDrop::new(Box::new(0u64)),
        quiet: false,
    };
    // Declared after `owned`, so dropped before it: wakes stop using the ring fd
    // before the ring can close.
    let _ring_wake = RingWake::install(slot, &owned.io, &cfg);
    let sqes_before = owned.io.counters.sqes;
    if let Err(e) = owned.service.start(&mut owned.io) {
        owned.quiet = owned.io.counters.sqes == sqes_before;
        return Err(e);
    }
    on_started();
    let Owned {
        io,
        service,
        wake_buf,
        quiet,
    } = &mut owned;
    let io: &mut Io = io;
    let service: &mut S = service;

    // The wake read's 8-byte buffer lives in `owned` until the loop below has seen the
    // read's final completion (or forever, if it never does).
    let wake_op = Op::Read {
        fd: wake_fd,
        buf: (&mut ***wake_buf as *mut u64).cast(),
        len: 8,
    };
    // SAFETY: `wake_buf` outlives the op: it is freed only once `quiet` is set, after
    // `wake_armed` turned false (or leaked).
    unsafe { io.submit(WAKE_TOKEN, wake_op)? };
    let mut wake_armed = true;
    let mut wake_cancelled = false;
    let mut phase = Phase::Running;
    let result = loop {
        let mut deadline = service.next_deadline();
        if let Phase::Draining(d) = phase {
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        // One clock read per turn (after the wait, below): the wait's timeout is
        // measured from the turn that just ended, so a timer can fire later than due
        // by the time that turn spent in callbacks (never earlier). `io.now` starts at
        // the worker's start.
        let timeout = if io.driver.has_ready() {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(io.now))
        };
        if let Err(e) = io.driver.wait(timeout, &mut io.counters) {
            break Err(e);
        }
        io.counters.turns += 1;
        io.now = Instant::now();
        let mut woke = false;
        while let Some(c) = io.driver.next(&mut io.counters) {
            if c.token.is_internal() && c.token.generation() == crate::token::WORKER_INTERNAL_ID {
                // The worker's own ops: the wake read (re-armed below), its cancel,
                // and flush no-ops.
                if c.token == WAKE_TOKEN {
                    wake_armed = false;
                    woke = true;
                } else if c.token == WAKE_MSG_TOKEN {
                    io.counters.msg_ring_wakes += 1;
                    woke = true;
                }
            } else {
                service.complete(io, c);
            }
        }
        if woke || phase == Phase::Running {
            let requested = rx.try_recv().is_ok() || signals::requested() || service.wants_exit();
            if requested && phase == Phase::Running {
                if signals::requested() {
                    // The signal watcher thread logs the drain and sends STOPPING=1
                    // too, but the process may end (a quick drain) before that thread
                    // runs: the first worker to drain does it (once per drain).
                    signals::drain_started();
                }
                io.draining = true;
                phase = Phase::Draining(io.now + cfg.drain_timeout);
                service.drain(io);
            }
        }
        if let Phase::Draining(d) = phase {
            if io.now >= d {
                phase = Phase::Aborted;
                service.abort(io);
            }
        }
        service.expire(io);
        service.flush(io);
        slot.counters.publish(&io.counters);
        if phase != Phase::Running && service.is_done() {
            if !wake_armed {
                // The service has nothing in flight and the wake read ended.
                *quiet = true;
                break Ok(());
            }
            if !wake_cancelled {
                wake_cancelled = true;
                let cancel = Op::CancelFd { fd: wake_fd };
                // SAFETY: a cancel references no memory.
                let r = unsafe { io.submit(WAKE_CANCEL_TOKEN, cancel) };
                if let Err(e) = r {
                    break Err(e);
                }
            }
        } else if !wake_armed {
            // SAFETY: as for the first wake read: `wake_buf` outlives the op.
            if let Err(e) = unsafe { io.submit(WAKE_TOKEN, wake_op) } {
                break Err(e);
            }
            wake_armed = true;
        }
    };
    slot.counters.publish(&io.counters);
    // `owned` drops here: freed if quiet (or epoll), leaked otherwise.
    result
}

// `build` lives with `Runtime`, so the configuration layer never points up at the
// worker layer (ARCHITECTURE.md: layers only point down).
impl crate::config::Builder {
    /// Validates the configuration and builds the runtime (no threads start yet).
    ///
    /// # Errors
    /// A bad setting or a bad `RINGCORE_BACKEND` value.
    pub fn build(self) -> io::Result<Runtime> {
        Runtime::from_config(self.into_config().validate()?)
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.cfg)
            .finish()
    }
}

/// The backend a worker would pick with this configuration (opens and closes it).
///
/// # Errors
/// As worker start-up: the backend is unavailable.
pub fn probe_backend(cfg: &Config) -> io::Result<BackendKind> {
    Driver::open(cfg).map(|d| d.kind())
}
