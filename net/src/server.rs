//! The per-worker server: one listener, a registry of connections, and the dispatch of
//! completions to handler callbacks. Implements the runtime's `Service`.

use crate::conn::*;
// Kept for code that still names them here (branches in flight).
#[allow(unused_imports)]
pub(crate) use crate::guard::{call, log_panic};
use crate::handler::{CloseReason, ConnInfo, Factory, Handler};
use crate::listener::Listeners;
use crate::per_worker::{bind_with_defaults, one_per_worker, WorkerFds};
use crate::slot_handler::SlotHandler;
use crate::socket::{close_fd, SocketOptions};
use ringcore_runtime::{Completion, Io, Op, OpKind, RateLimit, Registry, Runtime, Service, Token};
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most one log line per this interval and worker for a repeating condition.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Timer key of the listener's accept back-off.
pub(crate) const ACCEPT_BACKOFF_KEY: u64 = u64::MAX - 1;

/// Single-shot accepts each worker keeps in flight, on io_uring, on a listener all
/// workers share (a Unix socket: `SO_REUSEPORT` does not balance those). A multishot
/// accept would stay first in the socket's wait queue and take nearly every
/// connection; a single-shot accept that completes re-queues behind the other
/// workers' waiting accepts, so connections spread over the workers (docs/tuning.md,
/// "Workers share one Unix socket"). On epoll each worker keeps one: its epoll
/// instance is one exclusive waiter, moved to the back of the queue after each
/// accept, however many accepts wait in it.
pub const SHARED_ACCEPT_DEPTH: u32 = 4;

pub(crate) struct Listener {
    pub(crate) fd: RawFd,
    /// Accept ops in flight (a multishot one counts once).
    pub(crate) armed: u32,
    /// The socket is shared by every worker (Unix: no `SO_REUSEPORT` balancing).
    pub(crate) shared: bool,
    /// Every accepted connection receives passed fds (`SocketOptions::pass_fds`).
    pub(crate) pass_fds: bool,
    pub(crate) closing: bool,
    pub(crate) in_flight: u32,
    pub(crate) paused_until: Option<Instant>,
    /// Limits the `EMFILE`/`ENFILE` log line (every pause is counted).
    pub(crate) emfile_log: RateLimit,
}

/// One worker's server.
pub(crate) struct Server<F: Factory> {
    pub(crate) factory: Arc<F>,
    pub(crate) conns: Registry<ConnSlot<SlotHandler<F::Handler>>>,
    pub(crate) ctx: WorkerCtx,
    pub(crate) listener: Listener,
    pub(crate) expired: Vec<u64>,
    pub(crate) outbound: Option<crate::outbound_opts::Outbound>,
}

impl<F: Factory> Server<F> {
    pub(crate) fn new(worker: usize, fd: RawFd, factory: Arc<F>, now: Instant) -> Self {
        Server {
            factory,
            conns: Registry::with_capacity(1024),
            ctx: WorkerCtx::new(worker, now),
            listener: Listener {
                fd,
                armed: 0,
                shared: fd >= 0 && matches!(crate::addr::local(fd), Some(crate::Addr::Unix(_))),
                pass_fds: false,
                closing: false,
                in_flight: 0,
                paused_until: None,
                emfile_log: RateLimit::new(LOG_INTERVAL),
            },
            expired: Vec::new(),
            outbound: None,
        }
    }

    /// Keeps the listener's accepts armed: one multishot accept, or for a shared (Unix)
    /// listener single-shot ones ([`SHARED_ACCEPT_DEPTH`] on io_uring, one on epoll),
    /// so that connections spread over the workers (see [`crate::unix`]).
    pub(crate) fn arm_accept(&mut self, io: &mut Io) {
        let l = &mut self.listener;
        if l.closing || l.paused_until.is_some() || io.is_draining() {
            return;
        }
        let single = l.shared;
        let uring = io.backend() == ringcore_runtime::BackendKind::Uring;
        let depth = if single && uring {
            SHARED_ACCEPT_DEPTH
        } else {
            1
        };
        while l.armed < depth {
            let op = if single {
                Op::Accept { fd: l.fd }
            } else {
                Op::AcceptMulti { fd: l.fd }
            };
            // SAFETY: accept references no memory.
            if unsafe { io.submit(Token::internal(0, OpKind::Accept), op) }.is_err() {
                return;
            }
            l.armed += 1;
            l.in_flight += 1;
        }
    }

    fn on_listener(&mut self, io: &mut Io, c: Completion) {
        let final_cqe = !c.more();
        if final_cqe {
            self.listener.in_flight = self.listener.in_flight.saturating_sub(1);
        }
        match c.token.kind() {
            Some(OpKind::Accept) => {
                if final_cqe {
                    self.listener.armed = self.listener.armed.saturating_sub(1);
                }
                if c.result >= 0 {
                    self.accepted(io, c.result);
                    return;
                }
                let errno = -c.result;
                match errno {
                    libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                        io.counters().emfile_pauses += 1;
                        let backoff = io.config().emfile_backoff;
                        if let Some(held_back) = self.listener.emfile_log.allow(io.now()) {
                            tracing::warn!(
                                worker = self.ctx.worker,
                                error = %io::Error::from_raw_os_error(errno),
                                backoff_ms = backoff.as_millis() as u64,
                                held_back,
                                "accept failed: out of file descriptors or memory; accepting \
                                 paused (raise RLIMIT_NOFILE / fs.file-max; counted in \
                                 emfile_pauses, logged at most once a second)"
                            );
                        }
                        let until = io.now() + backoff;
                        if self.listener.paused_until.is_none() {
                            self.ctx.timers.insert(until, ACCEPT_BACKOFF_KEY);
                        }
                        self.listener.paused_until = Some(until);
                        if self.listener.armed > 0 {
                            self.cancel_listener(io);
                        }
                    }
                    _ => {}
                }
            }
            Some(OpKind::Close) => {
                self.listener.fd = -1;
            }
            _ => {}
        }
    }

    fn cancel_listener(&mut self, io: &mut Io) {
        let fd = self.listener.fd;
        // SAFETY: cancel references no memory.
        if unsafe { io.submit(Token::internal(0, OpKind::Cancel), Op::CancelFd { fd }) }.is_ok() {
            self.listener.in_flight += 1;
        }
    }

    /// Makes the handler for a new connection on `fd` (a panicking factory closes the
    /// fd) and inserts its slot; returns the slot index.
    pub(crate) fn new_conn(&mut self, io: &mut Io, fd: RawFd) -> Option<u32> {
        let info = ConnInfo {
            fd,
            worker: self.ctx.worker,
        };
        let factory = &self.factory;
        let Ok(handler) = catch_unwind(AssertUnwindSafe(|| factory.make(&info))) else {
            io.counters().panics += 1;
            log_panic(self.ctx.worker, "factory");
            io.close_now(fd);
            io.counters().closes += 1;
            return None;
        };
        Some(self.insert_conn(io, fd, SlotHandler::Made(handler)))
    }

    /// Inserts the slot of a new connection on `fd` run by `handler`; returns its index.
    pub(crate) fn insert_conn(
        &mut self,
        io: &mut Io,
        fd: RawFd,
        handler: SlotHandler<F::Handler>,
    ) -> u32 {
        let idx = self.conns.insert(ConnSlot {
            core: ConnCore::new(fd, Token::NONE),
            handler,
        });
        let token = self.conns.token(idx, OpKind::Recv);
        io.counters().open_conns += 1;
        if let Some(s) = self.conns.get_mut(idx) {
            s.value.core.token = token;
        }
        idx
    }

    fn accepted(&mut self, io: &mut Io, fd: RawFd) {
        io.counters().accepts += 1;
        if io.is_draining() {
            io.close_now(fd);
            io.counters().closes += 1;
            return;
        }
        let Some(idx) = self.new_conn(io, fd) else {
            return;
        };
        // io_uring with `direct_descriptors`: the connection's ops from here on name a
        // registered-table slot; it keeps its fd (closed through `Op::Close`, which
        // empties the slot first). Off, full table or epoll: a no-op.
        io.register_direct(fd);
        let Some(slot) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut slot.value;
        if self.listener.pass_fds {
            // As `Conn::receive_fds` from `on_open`: nothing was read yet.
            slot.core.fdrecv = Some(crate::fdpass::FdRecv::new());
        }
        call(slot, &mut self.ctx, io, "on_open", |h, c| h.on_open(c));
        self.ctx.mark_dirty(&mut slot.core);
    }
}

impl<F: Factory> Server<F> {
    /// Hands finished offload results to their connections (`on_offload`); a result
    /// whose connection is gone or closing is dropped here, on the worker.
    fn offload_results(&mut self, io: &mut Io) {
        for (tok, out) in self.ctx.offload.take() {
            let Some(s) = self.conns.get_mut(tok.slot()) else {
                continue;
            };
            if s.generation() != tok.generation() || s.is_closed() || s.value.core.has(CLOSING) {
                continue;
            }
            call(&mut s.value, &mut self.ctx, io, "on_offload", |h, conn| {
                h.on_offload(conn, out)
            });
        }
    }
}

impl<F: Factory> Service for Server<F> {
    fn start(&mut self, io: &mut Io) -> io::Result<()> {
        self.ctx.now = io.now();
        self.ctx.offload.waker = io.waker();
        if io.backend() == ringcore_runtime::BackendKind::Uring {
            // (epoll hands out a scratch buffer the next read reuses: never held.)
            let limit = io.config().recv_hold_limit();
            self.ctx.holds.set_limit(limit);
        }
        if let Some(out) = self.outbound.clone() {
            for n in 0..out.count {
                self.open_outbound(io, &out, n * 1000 + self.ctx.worker);
            }
        } else {
            self.arm_accept(io);
        }
        Ok(())
    }

    fn wants_exit(&self) -> bool {
        self.outbound.is_some() && self.conns.is_empty()
    }

    fn complete(&mut self, io: &mut Io, c: Completion) {
        self.ctx.now = io.now();
        if c.token.is_internal() {
            return self.on_listener(io, c);
        }
        if c.flags & ringcore_runtime::completion::F_NOTIF != 0 {
            // A zero-copy send's notification: its send completed already (the
            // connection may be gone); only its kept memory waits for this.
            self.ctx.zc.notified(c.token.raw(), &mut self.ctx.spare);
            return;
        }
        let idx = c.token.slot();
        let live = self.conns.lookup(c.token).is_some();
        if !live {
            io.counters().stale += 1;
            io.recycle(&c);
            debug_assert!(
                c.token.kind().is_some()
                    || crate::kinds::is_tunnel_kind(c.token.raw_kind())
                    || c.token.raw_kind() == crate::kinds::K_GUARD,
                "completion with unknown token {c:?}"
            );
            return;
        }
        let final_cqe = !(c.token.kind() == Some(OpKind::Recv) && c.more());
        if final_cqe && !crate::kinds::uncounted_cancel(io, c.token) {
            self.conns.op_finished(idx);
        }
        if c.token.raw_kind() == crate::kinds::K_GUARD {
            self.on_guard(c, idx);
            self.finish_close(io, idx);
            return self.maybe_release(io, idx);
        }
        if crate::kinds::is_tunnel_kind(c.token.raw_kind()) {
            self.on_tunnel(io, c, idx);
            self.finish_close(io, idx);
            return self.maybe_release(io, idx);
        }
        match c.token.kind() {
            Some(OpKind::Recv) => self.on_recv(io, c, idx),
            Some(OpKind::Send) => self.on_send(io, c, idx),
            Some(OpKind::Connect) => self.on_connect(io, c, idx),
            Some(OpKind::Poll)
                if self
                    .conns
                    .get(idx)
                    .is_some_and(|s| s.value.core.has(WAIT_WRITABLE)) =>
            {
                if let Some(s) = self.conns.get_mut(idx) {
                    s.value.core.clear(WAIT_WRITABLE);
                    self.ctx.mark_dirty(&mut s.value.core);
                }
            }
            Some(OpKind::Splice) | Some(OpKind::SpliceOut) | Some(OpKind::Poll) => {
                self.on_splice(io, c, idx);
                // A fill completed: a finished file is referenced by no op any more.
                self.close_retired(io, idx);
            }
            Some(OpKind::Close) => {
                if c.result == -libc::ECANCELED {
                    // A linked close whose send fell short or failed: the fd is still
                    // open. Reopen the send path; drive sends the rest (or, after a
                    // send error, aborts) and closes again.
                    if let Some(s) = self.conns.get_mut(idx) {
                        s.value.core.clear(CLOSE_SENT);
                        self.ctx.mark_dirty(&mut s.value.core);
                    }
                } else {
                    // The linked close of a fully sent queue: nothing may be armed now.
                    if let Some(s) = self.conns.get_mut(idx) {
                        // Closed: no second close from `finish_close` either.
                        s.value.core.set(CANCELLED);
                        s.value.core.clear(CLOSE_WAIT);
                    }
                    self.conns.mark_closed(idx);
                }
            }
            Some(OpKind::Shutdown) | Some(OpKind::Cancel) => {
                if let Some(s) = self.conns.get_mut(idx) {
                    self.ctx.mark_dirty(&mut s.value.core);
                }
            }
            _ => debug_assert!(false, "unexpected completion {c:?}"),
        }
        self.finish_close(io, idx);
        self.maybe_release(io, idx);
    }

    fn expire(&mut self, io: &mut Io) {
        self.ctx.now = io.now();
        let mut keys = std::mem::take(&mut self.expired);
        self.ctx.timers.expire(self.ctx.now, &mut keys);
        for key in keys.drain(..) {
            self.on_timer(io, key);
        }
        self.expired = keys;
        if self.ctx.next_trim.is_some_and(|t| t <= self.ctx.now) {
            self.ctx.next_trim = None;
            self.ctx.trim_pools(io);
        }
    }

    fn flush(&mut self, io: &mut Io) {
        self.release_holds(io);
        if self.ctx.offload.in_flight > 0 {
            self.offload_results(io);
        }
        if self.ctx.mail.has_work() {
            self.run_mailbox(io);
        }
        // Receives that ran out of buffers: re-arm as many as half the pool can serve.
        let n = self
            .ctx
            .nobuf
            .len()
            .min((io.config().buf_count as usize / 2).max(1));
        for _ in 0..n {
            let Some(tok) = self.ctx.nobuf.pop_front() else {
                break;
            };
            if let Some(s) = self.conns.lookup(tok) {
                s.value.core.clear(NOBUF_WAIT);
                self.ctx.mark_dirty(&mut s.value.core);
            }
        }
        let mut i = 0;
        while i < self.ctx.dirty.len() {
            let idx = self.ctx.dirty[i];
            self.drive(io, idx);
            self.maybe_release(io, idx);
            i += 1;
        }
        self.ctx.dirty.clear();
        if self.ctx.draining {
            // Nothing pooled outlives the worker: close pooled pipes through `io` now.
            self.ctx.trim_pools(io);
        } else if let Some(every) = io.config().pool_trim {
            if self.ctx.next_trim.is_none() && self.ctx.pools_hold_something() {
                self.ctx.next_trim = Some(self.ctx.now + every);
            }
        }
        io.counters().pool_entries = self.ctx.pool_entries() as u64;
        // Holds released by sends that completed or queues dropped during this flush.
        self.release_holds(io);
        io.counters().recv_held = self.ctx.holds.len() as u64;
        self.arm_accept(io);
        io.counters().timers_pending = self.ctx.timers.len() as u64;
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.ctx.mail.has_work() {
            // Mail (or a connect) queued after this turn's delivery: go round again.
            return Some(self.ctx.now);
        }
        // The pool trim is not in the wheel: it runs only while the pools hold something.
        match (self.ctx.timers.next_deadline(), self.ctx.next_trim) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, io: &mut Io) {
        self.ctx.draining = true;
        if self.outbound.is_some() {
            self.listener.closing = true;
            return;
        }
        if self.listener.fd >= 0 && !self.listener.closing {
            self.listener.closing = true;
            if self.listener.armed > 0 {
                self.cancel_listener(io);
            }
            let fd = self.listener.fd;
            // SAFETY: close references no memory.
            if unsafe { io.submit(Token::internal(0, OpKind::Close), Op::Close { fd }) }.is_ok() {
                self.listener.in_flight += 1;
            }
        }
        for idx in self.conns.indices() {
            if let Some(s) = self.conns.get_mut(idx) {
                if !s.value.core.has(CLOSING) && !s.value.core.has(CONNECTING) {
                    call(&mut s.value, &mut self.ctx, io, "on_drain", |h, c| {
                        h.on_drain(c)
                    });
                }
            }
        }
    }

    fn abort(&mut self, io: &mut Io) {
        self.ctx.zc.abandon();
        let (mut cut, mut unsent) = (0u64, 0u64);
        for idx in self.conns.indices() {
            if let Some(s) = self.conns.get_mut(idx) {
                let core = &s.value.core;
                let queued = core.out.len() as u64
                    + core.splice.as_ref().map_or(0, |s| s.in_pipe)
                    + core.tunnel.as_ref().map_or(0, |t| t.buffered());
                if queued > 0 && !core.has(CLOSE_SENT) {
                    cut += 1;
                    unsent += queued;
                }
                s.value.core.fail(CloseReason::Shutdown);
                self.ctx.mark_dirty(&mut s.value.core);
            }
        }
        if cut > 0 {
            io.counters().drain_aborted += cut;
            // Once per worker and shutdown: no rate limit needed.
            tracing::warn!(
                worker = self.ctx.worker,
                connections = cut,
                unsent_bytes = unsent,
                drain_timeout_ms = io.config().drain_timeout.as_millis() as u64,
                "drain deadline passed: connections aborted with output still queued \
                 (their responses are cut; raise drain_timeout if this is unexpected)"
            );
        }
    }

    fn is_done(&self) -> bool {
        // Zero-copy notifications still to come keep the worker (and its ring and
        // buffer pool, which kept receive buffers may be part of) until the drain is
        // aborted; what is kept then is leaked (zchold.rs).
        self.conns.is_empty()
            && self.listener.in_flight == 0
            && self.listener.closing
            && !self.ctx.zc.pending()
    }
}

impl<F: Factory> Drop for Server<F> {
    fn drop(&mut self) {
        if self.listener.fd >= 0 && !self.listener.closing {
            close_fd(self.listener.fd);
        }
    }
}

/// Listeners to serve on: a bound [`Listeners`] or an address to bind with default
/// [`SocketOptions`].
pub trait IntoListeners {
    /// Binds (if needed) `workers` listeners.
    ///
    /// # Errors
    /// Bind errors.
    fn into_listeners(self, workers: usize) -> io::Result<Listeners>;
}

bind_with_defaults!(IntoListeners::into_listeners -> Listeners, SocketOptions;
    &str, String, crate::addr::Addr, std::net::SocketAddr);

/// `serve` on a [`Runtime`]: accept on every worker and run a handler per connection.
pub trait Serve {
    /// Serves until shutdown (SIGINT/SIGTERM or [`Handle::shutdown`](ringcore_runtime::Handle::shutdown)).
    /// Returns after every connection, fd and buffer is released.
    ///
    /// # Errors
    /// Bind errors, backend start-up errors (io_uring blocked with `Backend::Uring`),
    /// or a listener count that does not match the worker count.
    fn serve<L: IntoListeners, F: Factory>(&self, listeners: L, factory: F) -> io::Result<()>;
}

impl Serve for Runtime {
    fn serve<L: IntoListeners, F: Factory>(&self, listeners: L, factory: F) -> io::Result<()> {
        let workers = self.config().workers;
        let l = listeners.into_listeners(workers)?;
        one_per_worker(l.len(), workers, "listeners")?;
        // A Unix listener's socket file is removed when `_unix_file` drops: after every
        // worker stopped, on success and on error alike.
        let pass_fds = l.pass_fds();
        let (fds, _unix_file) = l.into_parts();
        let fds = WorkerFds::new(fds);
        let factory = Arc::new(factory);
        let fds2 = fds.clone();
        let r = self.run(move |id, io| {
            let fd = fds2.take(id, "listener")?;
            let mut server = Server::new(id, fd, factory.clone(), io.now());
            server.listener.pass_fds = pass_fds;
            Ok(server)
        });
        fds.close_left();
        r
    }
}
