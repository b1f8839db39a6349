//! The per-worker server: one listener, a registry of connections, and the dispatch of
//! completions to handler callbacks. Implements the runtime's `Service`.

use crate::conn::*;
use crate::handler::{CloseReason, Conn, ConnInfo, Factory, Handler};
use crate::socket::{close_fd, Listeners, SocketOptions};
use ringcore_runtime::{Completion, Io, Op, OpKind, Registry, Runtime, Service, Token};
use std::io;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Timer key of the listener's accept back-off.
const ACCEPT_BACKOFF_KEY: u64 = u64::MAX - 1;

pub(crate) struct ConnSlot<H> {
    pub(crate) core: ConnCore,
    pub(crate) handler: H,
}

struct Listener {
    fd: RawFd,
    armed: bool,
    closing: bool,
    in_flight: u32,
    paused_until: Option<Instant>,
}

/// One worker's server.
pub(crate) struct Server<F: Factory> {
    factory: Arc<F>,
    conns: Registry<ConnSlot<F::Handler>>,
    ctx: WorkerCtx,
    listener: Listener,
    expired: Vec<u64>,
    outbound: Option<Outbound>,
}

/// Outbound connections a client-mode worker opens at start.
#[derive(Clone)]
pub(crate) struct Outbound {
    addr: std::net::SocketAddr,
    count: usize,
    opts: ConnectOptions,
}

fn log_panic(worker: usize, what: &str) {
    eprintln!("ringcore: worker {worker}: a {what} callback panicked; its connection is closed");
}

/// Runs `f` on the handler with a `Conn`, turning a panic into an aborted connection.
#[inline]
fn call<H: Handler, R>(
    slot: &mut ConnSlot<H>,
    ctx: &mut WorkerCtx,
    io: &mut Io,
    what: &str,
    f: impl FnOnce(&mut H, &mut Conn<'_>) -> R,
) -> Option<R> {
    let mut conn = Conn {
        core: &mut slot.core,
        ctx,
    };
    let h = &mut slot.handler;
    match catch_unwind(AssertUnwindSafe(|| f(h, &mut conn))) {
        Ok(r) => Some(r),
        Err(_) => {
            io.counters().panics += 1;
            log_panic(ctx.worker, what);
            slot.core.fail(CloseReason::Panic);
            ctx.mark_dirty(&mut slot.core);
            None
        }
    }
}

impl<F: Factory> Server<F> {
    pub(crate) fn new(worker: usize, fd: RawFd, factory: Arc<F>, now: Instant) -> Self {
        Server {
            factory,
            conns: Registry::with_capacity(1024),
            ctx: WorkerCtx::new(worker, now),
            listener: Listener {
                fd,
                armed: false,
                closing: false,
                in_flight: 0,
                paused_until: None,
            },
            expired: Vec::new(),
            outbound: None,
        }
    }

    fn arm_accept(&mut self, io: &mut Io) {
        let l = &mut self.listener;
        if l.armed || l.closing || l.paused_until.is_some() || io.is_draining() {
            return;
        }
        // SAFETY: accept references no memory.
        if unsafe { io.submit(Token::internal(0, OpKind::Accept), Op::AcceptMulti { fd: l.fd }) }.is_ok() {
            l.armed = true;
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
                    self.listener.armed = false;
                }
                if c.result >= 0 {
                    self.accepted(io, c.result);
                    return;
                }
                match -c.result {
                    libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                        io.counters().emfile_pauses += 1;
                        let until = io.now() + io.config().emfile_backoff;
                        if self.listener.paused_until.is_none() {
                            self.ctx.timers.insert(until, ACCEPT_BACKOFF_KEY);
                        }
                        self.listener.paused_until = Some(until);
                        if !final_cqe {
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

    fn accepted(&mut self, io: &mut Io, fd: RawFd) {
        io.counters().accepts += 1;
        if io.is_draining() {
            close_fd(fd);
            io.counters().closes += 1;
            return;
        }
        let info = ConnInfo {
            fd,
            worker: self.ctx.worker,
        };
        let factory = &self.factory;
        let handler = match catch_unwind(AssertUnwindSafe(|| factory.make(&info))) {
            Ok(h) => h,
            Err(_) => {
                io.counters().panics += 1;
                log_panic(self.ctx.worker, "factory");
                close_fd(fd);
                io.counters().closes += 1;
                return;
            }
        };
        let idx = self.conns.insert(ConnSlot {
            core: ConnCore::new(fd, Token::NONE),
            handler,
        });
        let token = self.conns.token(idx, OpKind::Recv);
        io.counters().open_conns += 1;
        let Some(slot) = self.conns.get_mut(idx) else { return };
        let slot = &mut slot.value;
        slot.core.token = token;
        call(slot, &mut self.ctx, io, "on_open", |h, c| h.on_open(c));
        self.ctx.mark_dirty(&mut slot.core);
    }

    fn on_recv(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let slot = &mut s.value;
        if !c.more() {
            slot.core.clear(RECV_ARMED);
            self.ctx.mark_dirty(&mut slot.core);
        }
        if c.result > 0 {
            let n = c.result as usize;
            io.counters().bytes_in += n as u64;
            slot.core.touch(self.ctx.now);
            if slot.core.has(CLOSING) {
                io.recycle(&c);
                return;
            }
            if slot.core.has(PAUSED) || !slot.core.pending.is_empty() {
                slot.core.pending.extend_from_slice(io.received(&c));
                io.recycle(&c);
                if !slot.core.has(PAUSED) {
                    self.deliver_pending(io, idx);
                } else if slot.core.pending.len() > slot.core.max_pending as usize {
                    slot.core.fail(CloseReason::Error(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "input buffered while paused exceeded max_pending",
                    )));
                    self.ctx.mark_dirty(&mut slot.core);
                }
                return;
            }
            // Fast path: hand the pool buffer straight to the handler.
            let data = io.received(&c);
            // SAFETY-free trick avoided: copy the slice bounds so `io` can be borrowed
            // mutably inside the callback (counters); the buffer stays untouched until
            // `recycle` below.
            let data: &[u8] = unsafe_free_slice(data);
            let consumed = call(slot, &mut self.ctx, io, "on_data", |h, conn| h.on_data(conn, data));
            if let Some(used) = consumed {
                let used = used.min(n);
                if used < n && !slot.core.has(CLOSING) {
                    slot.core.pending.extend_from_slice(&data[used..]);
                    self.check_pending_limit(idx, used);
                }
            }
            io.recycle(&c);
        } else if c.result == 0 {
            slot.core.set(EOF);
            slot.core.clear(RECV_ARMED);
            if !slot.core.has(CLOSING) {
                call(slot, &mut self.ctx, io, "on_eof", |h, conn| h.on_eof(conn));
            }
        } else {
            io.recycle(&c);
            match -c.result {
                libc::ENOBUFS => io.counters().enobufs += 1,
                libc::ECANCELED => {}
                e => {
                    slot.core.fail(CloseReason::Error(io::Error::from_raw_os_error(e)));
                    self.ctx.mark_dirty(&mut slot.core);
                }
            }
        }
    }

    fn deliver_pending(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let slot = &mut s.value;
        let pending = std::mem::take(&mut slot.core.pending);
        let consumed = call(slot, &mut self.ctx, io, "on_data", |h, conn| h.on_data(conn, &pending));
        let mut pending = pending;
        if let Some(used) = consumed {
            pending.drain(..used.min(pending.len()));
        }
        if pending.is_empty() {
            pending = Vec::new();
        }
        slot.core.pending = pending;
        self.check_pending_limit(idx, consumed.unwrap_or(0));
    }

    fn check_pending_limit(&mut self, idx: u32, used: usize) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let core = &mut s.value.core;
        if used == 0 && core.pending.len() >= core.max_pending as usize {
            core.fail(CloseReason::Error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "on_data consumed nothing with {} bytes pending (max_pending); closing",
                    core.pending.len()
                ),
            )));
            self.ctx.mark_dirty(core);
        }
    }

    fn on_send(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let slot = &mut s.value;
        let sent = c.result.max(0) as usize;
        if slot.core.out.complete(sent, &mut self.ctx.spare) {
            io.counters().short_sends += u64::from(c.result >= 0);
        }
        io.counters().bytes_out += sent as u64;
        self.ctx.mark_dirty(&mut slot.core);
        if c.result < 0 {
            if c.result != -libc::ECANCELED {
                slot.core
                    .fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
            }
            return;
        }
        slot.core.touch(self.ctx.now);
        if slot.core.out.is_empty() && !slot.core.has(CLOSING) {
            call(slot, &mut self.ctx, io, "on_sent", |h, conn| h.on_sent(conn));
        }
    }

    /// Turns one dirty connection's requests into ops.
    fn drive(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let core = &mut s.value.core;
        core.clear(DIRTY);
        if core.has(CLOSE_SENT) {
            return;
        }
        let fd = core.fd;
        if core.has(ABORT) {
            core.out.discard_unsent(&mut self.ctx.spare);
            return self.begin_close(io, idx);
        }
        if !core.has(PAUSED | RECV_ARMED | EOF | CLOSING) {
            // SAFETY: a multishot recv references only the worker's buffer pool.
            if unsafe { io.submit(core.token, Op::RecvMulti { fd }) }.is_ok() {
                core.set(RECV_ARMED);
                self.conns.op_submitted(idx);
            }
        }
        let Some(s) = self.conns.get_mut(idx) else { return };
        let core = &mut s.value.core;
        if !core.out.in_flight() && !core.out.is_empty() {
            let msg = core.out.prepare(&mut self.ctx.spare);
            let send_tok = core.token.with_kind(OpKind::Send);
            if core.has(CLOSING) && core.out.prepared_all() {
                // Last bytes of a closing connection: send then close, linked.
                let armed = core.has(RECV_ARMED);
                core.set(CLOSE_SENT);
                let close_tok = core.token.with_kind(OpKind::Close);
                if armed {
                    // SAFETY: cancel references no memory.
                    let _ = unsafe { io.submit(core.token.with_kind(OpKind::Cancel), Op::CancelFd { fd }) };
                    self.conns.op_submitted(idx);
                }
                // SAFETY: `msg` and the iovecs/chunks it points at are owned by this
                // slot's write queue and stay untouched until the send's completion
                // (write queue invariants); the slot is not freed before then because
                // in_flight counts the op.
                let r = unsafe {
                    io.submit_linked(
                        (send_tok, Op::Send { fd, msg, waitall: true }),
                        (close_tok, Op::Close { fd }),
                    )
                };
                if r.is_ok() {
                    self.conns.op_submitted(idx);
                    self.conns.op_submitted(idx);
                }
                self.conns.mark_closed(idx);
                return;
            }
            // SAFETY: as above: the write queue owns msg/iovecs/bytes until completion.
            if unsafe { io.submit(send_tok, Op::Send { fd, msg, waitall: false }) }.is_ok() {
                self.conns.op_submitted(idx);
            }
            return;
        }
        if core.out.is_empty() && !core.out.in_flight() {
            if core.has(SHUT_WANT) && !core.has(SHUT_SENT) {
                core.set(SHUT_SENT);
                let tok = core.token.with_kind(OpKind::Shutdown);
                // SAFETY: shutdown references no memory.
                if unsafe { io.submit(tok, Op::Shutdown { fd, how: libc::SHUT_WR }) }.is_ok() {
                    self.conns.op_submitted(idx);
                }
            }
            if self.conns.get(idx).is_some_and(|s| s.value.core.has(CLOSING)) {
                self.begin_close(io, idx);
            }
        }
    }

    /// Cancel whatever is in flight, then close the fd. The slot goes when the last
    /// completion arrives.
    fn begin_close(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let busy = s.in_flight() > 0;
        let core = &mut s.value.core;
        core.set(CLOSE_SENT | CLOSING);
        let fd = core.fd;
        let tok = core.token;
        if busy {
            // SAFETY: cancel references no memory.
            if unsafe { io.submit(tok.with_kind(OpKind::Cancel), Op::CancelFd { fd }) }.is_ok() {
                self.conns.op_submitted(idx);
            }
        }
        // SAFETY: close references no memory.
        if unsafe { io.submit(tok.with_kind(OpKind::Close), Op::Close { fd }) }.is_ok() {
            self.conns.op_submitted(idx);
        }
        self.conns.mark_closed(idx);
    }

    fn maybe_release(&mut self, io: &mut Io, idx: u32) {
        if let Some(mut slot) = self.conns.release_if_done(idx) {
            io.counters().closes += 1;
            io.counters().open_conns = io.counters().open_conns.saturating_sub(1);
            let reason = slot.core.reason.take().unwrap_or(CloseReason::PeerClosed);
            let h = &mut slot.handler;
            if catch_unwind(AssertUnwindSafe(|| h.on_close(reason))).is_err() {
                io.counters().panics += 1;
                log_panic(self.ctx.worker, "on_close");
            }
        }
    }

    fn on_timer(&mut self, io: &mut Io, key: u64) {
        if key == ACCEPT_BACKOFF_KEY {
            self.listener.paused_until = None;
            self.arm_accept(io);
            return;
        }
        let t = Token::from_raw(key);
        let idx = t.slot();
        let Some(s) = self.conns.get_mut(idx) else { return };
        if s.generation() != t.generation() {
            return;
        }
        let slot = &mut s.value;
        let now = self.ctx.now;
        if slot.core.has(CLOSE_SENT) {
            return;
        }
        match t.kind() {
            Some(OpKind::Timer) => match slot.core.timer_at {
                Some(at) if at > now => self.ctx.timers.insert(at, key),
                Some(_) => {
                    slot.core.clear(USER_TIMER);
                    slot.core.timer_at = None;
                    call(slot, &mut self.ctx, io, "on_timer", |h, conn| h.on_timer(conn));
                }
                None => slot.core.clear(USER_TIMER),
            },
            Some(OpKind::Connect) => {
                if slot.core.has(CONNECTING) {
                    slot.core.fail(CloseReason::Error(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect timed out",
                    )));
                    self.ctx.mark_dirty(&mut slot.core);
                }
            }
            _ => match slot.core.deadline {
                Some(d) if slot.core.idle_ms != 0 => {
                    if d > now {
                        self.ctx.timers.insert(d, key);
                        return;
                    }
                    slot.core.clear(TIMER);
                    slot.core.deadline = None;
                    io.counters().timeouts += 1;
                    call(slot, &mut self.ctx, io, "on_timeout", |h, conn| h.on_timeout(conn));
                    if slot.core.deadline.is_none()
                        && slot.core.idle_ms != 0
                        && !slot.core.has(CLOSING)
                    {
                        let idle = Duration::from_millis(slot.core.idle_ms as u64);
                        self.ctx.set_idle_timeout(&mut slot.core, Some(idle));
                    }
                }
                _ => slot.core.clear(TIMER),
            },
        }
    }

    /// Opens one outbound connection: socket, optional source bind, connect op.
    fn open_outbound(&mut self, io: &mut Io, target: &Outbound, n: usize) {
        let fail = |io: &mut Io, e: io::Error| {
            eprintln!("ringcore: worker {}: outbound connect to {} failed: {e}", io.worker_id(), target.addr);
            io.counters().closes += 1;
        };
        let fd = match crate::socket::tcp_socket(&target.addr) {
            Ok(fd) => fd,
            Err(e) => return fail(io, e),
        };
        let setup = || -> io::Result<()> {
            target.opts.socket.apply(fd)?;
            if !target.opts.sources.is_empty() {
                let src = target.opts.sources[n % target.opts.sources.len()];
                if src.is_ipv4() {
                    crate::socket::setopt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1, "IP_BIND_ADDRESS_NO_PORT")?;
                }
                let raw = crate::addr::from_std(&std::net::SocketAddr::new(src, 0));
                crate::socket::syscall!(bind(fd, raw.as_ptr(), raw.len))
                    .map_err(|e| io::Error::new(e.kind(), format!("bind source {src}: {e}")))?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            close_fd(fd);
            return fail(io, e);
        }
        let info = ConnInfo { fd, worker: self.ctx.worker };
        let factory = &self.factory;
        let Ok(handler) = catch_unwind(AssertUnwindSafe(|| factory.make(&info))) else {
            io.counters().panics += 1;
            log_panic(self.ctx.worker, "factory");
            close_fd(fd);
            return;
        };
        let idx = self.conns.insert(ConnSlot { core: ConnCore::new(fd, Token::NONE), handler });
        let token = self.conns.token(idx, OpKind::Recv);
        io.counters().open_conns += 1;
        let Some(s) = self.conns.get_mut(idx) else { return };
        let core = &mut s.value.core;
        core.token = token;
        core.set(CONNECTING);
        let addr = Box::new(crate::addr::from_std(&target.addr));
        let (ptr, len) = (addr.as_ptr(), addr.len);
        core.connect_addr = Some(addr);
        let timeout_at = self.ctx.now + target.opts.timeout;
        self.ctx.timers.insert(timeout_at, token.with_kind(OpKind::Connect).raw());
        // SAFETY: `addr` is boxed in the slot's `connect_addr` and dropped only after the
        // connect's completion (or with the slot, which outlives every op).
        if unsafe { io.submit(token.with_kind(OpKind::Connect), Op::Connect { fd, addr: ptr, addrlen: len }) }.is_ok() {
            self.conns.op_submitted(idx);
        }
    }

    fn on_connect(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else { return };
        let slot = &mut s.value;
        slot.core.clear(CONNECTING);
        slot.core.connect_addr = None;
        if slot.core.has(CLOSING) {
            return;
        }
        if c.result < 0 {
            slot.core.fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
            self.ctx.mark_dirty(&mut slot.core);
            return;
        }
        io.counters().connects += 1;
        call(slot, &mut self.ctx, io, "on_open", |h, c| h.on_open(c));
        self.ctx.mark_dirty(&mut slot.core);
    }
}

/// Identity on a slice; exists so the borrow of the pool buffer is visibly detached
/// from `io` (the runtime guarantees the buffer is untouched until `recycle`).
#[inline]
fn unsafe_free_slice(d: &[u8]) -> &'static [u8] {
    // SAFETY: the pool buffer behind `d` is owned by the worker's backend, which
    // outlives this call, and is neither reused nor freed until `Io::recycle` for this
    // completion, which runs after the callback returns. The 'static lifetime never
    // escapes `on_recv`.
    unsafe { std::slice::from_raw_parts(d.as_ptr(), d.len()) }
}

impl<F: Factory> Service for Server<F> {
    fn start(&mut self, io: &mut Io) -> io::Result<()> {
        self.ctx.now = io.now();
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
        let idx = c.token.slot();
        let live = self.conns.lookup(c.token).is_some();
        if !live {
            io.counters().stale += 1;
            io.recycle(&c);
            debug_assert!(c.token.kind().is_some(), "completion with unknown token {c:?}");
            return;
        }
        let final_cqe = !(c.token.kind() == Some(OpKind::Recv) && c.more());
        if final_cqe {
            self.conns.op_finished(idx);
        }
        match c.token.kind() {
            Some(OpKind::Recv) => self.on_recv(io, c, idx),
            Some(OpKind::Send) => self.on_send(io, c, idx),
            Some(OpKind::Connect) => self.on_connect(io, c, idx),
            Some(OpKind::Close) => {
                if c.result == -libc::ECANCELED {
                    // A linked close whose send failed: close for real.
                    if let Some(s) = self.conns.get_mut(idx) {
                        let fd = s.value.core.fd;
                        let tok = s.value.core.token.with_kind(OpKind::Close);
                        // SAFETY: close references no memory.
                        if unsafe { io.submit(tok, Op::Close { fd }) }.is_ok() {
                            self.conns.op_submitted(idx);
                        }
                    }
                }
            }
            Some(OpKind::Shutdown) | Some(OpKind::Cancel) => {}
            _ => debug_assert!(false, "unexpected completion {c:?}"),
        }
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
    }

    fn flush(&mut self, io: &mut Io) {
        let mut i = 0;
        while i < self.ctx.dirty.len() {
            let idx = self.ctx.dirty[i];
            self.drive(io, idx);
            self.maybe_release(io, idx);
            i += 1;
        }
        self.ctx.dirty.clear();
        self.arm_accept(io);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.ctx.timers.next_deadline()
    }

    fn drain(&mut self, io: &mut Io) {
        self.ctx.draining = true;
        if self.outbound.is_some() {
            self.listener.closing = true;
            return;
        }
        if self.listener.fd >= 0 && !self.listener.closing {
            self.listener.closing = true;
            if self.listener.armed {
                self.cancel_listener(io);
            }
            let fd = self.listener.fd;
            // SAFETY: close references no memory.
            if unsafe { io.submit(Token::internal(0, OpKind::Close), Op::Close { fd }) }.is_ok() {
                self.listener.in_flight += 1;
            }
        }
    }

    fn abort(&mut self, io: &mut Io) {
        let _ = io;
        for idx in self.conns.indices() {
            if let Some(s) = self.conns.get_mut(idx) {
                s.value.core.fail(CloseReason::Shutdown);
                self.ctx.mark_dirty(&mut s.value.core);
            }
        }
    }

    fn is_done(&self) -> bool {
        self.conns.is_empty() && self.listener.in_flight == 0 && self.listener.closing
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

impl IntoListeners for Listeners {
    fn into_listeners(self, _workers: usize) -> io::Result<Listeners> {
        Ok(self)
    }
}

impl IntoListeners for &str {
    fn into_listeners(self, workers: usize) -> io::Result<Listeners> {
        Listeners::bind(self, workers, &SocketOptions::default())
    }
}

impl IntoListeners for std::net::SocketAddr {
    fn into_listeners(self, workers: usize) -> io::Result<Listeners> {
        Listeners::bind(self, workers, &SocketOptions::default())
    }
}

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
        if l.len() != workers {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} listeners for {workers} workers: bind one per worker", l.len()),
            ));
        }
        let fds: Arc<Mutex<Vec<Option<RawFd>>>> =
            Arc::new(Mutex::new(l.into_fds().into_iter().map(Some).collect()));
        let factory = Arc::new(factory);
        let fds2 = fds.clone();
        let r = self.run(move |id, io| {
            let fd = fds2.lock().unwrap_or_else(|e| e.into_inner())[id]
                .take()
                .ok_or_else(|| io::Error::other("listener already taken"))?;
            Ok(Server::new(id, fd, factory.clone(), io.now()))
        });
        for fd in fds.lock().unwrap_or_else(|e| e.into_inner()).iter().flatten() {
            close_fd(*fd);
        }
        r
    }
}

/// Options for outbound connections ([`Connect::connect`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Source addresses to bind, round-robin (empty: the kernel picks). Spread clients
    /// over 127.0.0.x to open more than ~28k connections to one server port.
    pub sources: Vec<std::net::IpAddr>,
    /// Connect timeout (default 10 s).
    pub timeout: Duration,
    /// Socket options (nodelay, buffers, keepalive) for the new sockets.
    pub socket: SocketOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sources: Vec::new(),
            timeout: Duration::from_secs(10),
            socket: SocketOptions::default().keepalive(None),
        }
    }
}

impl ConnectOptions {
    /// Sets the source addresses.
    pub fn sources(mut self, s: Vec<std::net::IpAddr>) -> Self {
        self.sources = s;
        self
    }
    /// Sets the connect timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Sets the socket options.
    pub fn socket(mut self, o: SocketOptions) -> Self {
        self.socket = o;
        self
    }
}

/// Outbound connections on a [`Runtime`]: the client side (load generators, proxies).
pub trait Connect {
    /// Opens `per_worker` connections to `addr` on every worker and runs a handler per
    /// connection. `on_open` follows a successful connect; a failed or timed-out
    /// connect gets `on_close(CloseReason::Error)` without `on_open`. Returns when every
    /// connection has closed, or after shutdown.
    ///
    /// # Errors
    /// Backend start-up errors.
    fn connect<F: Factory>(
        &self,
        addr: std::net::SocketAddr,
        per_worker: usize,
        opts: ConnectOptions,
        factory: F,
    ) -> io::Result<()>;
}

impl Connect for Runtime {
    fn connect<F: Factory>(
        &self,
        addr: std::net::SocketAddr,
        per_worker: usize,
        opts: ConnectOptions,
        factory: F,
    ) -> io::Result<()> {
        let factory = Arc::new(factory);
        let out = Outbound { addr, count: per_worker, opts };
        self.run(move |id, io| {
            let mut s = Server::new(id, -1, factory.clone(), io.now());
            s.listener.closing = true;
            s.outbound = Some(out.clone());
            Ok(s)
        })
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn print_slot_size() {
        struct Z;
        impl crate::Handler for Z {
            fn on_data(&mut self, _: &mut crate::Conn<'_>, d: &[u8]) -> usize {
                d.len()
            }
        }
        eprintln!(
            "slot {} core {} wq {} reason {}",
            std::mem::size_of::<ringcore_runtime::registry::Slot<super::ConnSlot<Z>>>(),
            std::mem::size_of::<crate::conn::ConnCore>(),
            std::mem::size_of::<crate::wqueue::WriteQueue>(),
            std::mem::size_of::<Option<crate::CloseReason>>()
        );
    }
}
