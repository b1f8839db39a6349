//! A connection's lifecycle, in one place (ARCHITECTURE.md decision 12): which ops may
//! be armed in which state, how closing cancels what is in flight, when fds are
//! closed, and when the slot is released.
//!
//! ```text
//! state      | flags (conn.rs)              | may arm                   | leaves on
//! -----------+------------------------------+---------------------------+------------------------------
//! Connecting | CONNECTING                   | Connect, Cancel           | connect CQE -> Open / Aborting
//! Open       | -                            | Read, Write, Connect,     | close() -> Closing
//!            |                              | Cancel                    | abort/error/panic -> Aborting
//! Closing    | CLOSING (close deadline      | Write, Cancel             | queue sent -> Cancelling
//!            |  armed: close_timer)         | (send, splice, shutdown,  | (or linked send+close)
//!            |                              |  writability poll)        | close deadline -> Aborting
//! Aborting   | CLOSING | ABORT              | Cancel                    | next flush -> Cancelling
//! Cancelling | CANCELLED | CLOSE_WAIT       | nothing                   | last in-flight CQE -> Closed
//!            |   (CancelFd sent once)       |                           |  (close op submitted)
//! Closed     | CANCELLED, registry closed   | nothing                   | close CQE, in_flight 0 -> released
//! ```
//!
//! Read ops are the multishot receive, a tunnel's readability polls and fills, and
//! the hang-up guard (hangup.rs: a poll for `POLLRDHUP | POLLERR | POLLHUP` beside the
//! receive of a connection without timers, so that a receive whose end never came is
//! cancelled and re-armed instead of holding the slot forever).
//!
//! Events and what they may do, whatever the state: a completion (recv, send, splice,
//! poll, tunnel op, cancel, close) updates counters and flags and marks the connection
//! dirty; it re-arms nothing by itself except through [`Server::arm`], which refuses
//! anything the table does not allow. That is the whole of "no op is armed after the
//! closing cancel": an op that io_uring's worker pool finishes late (a splice that says
//! `EAGAIN` after the cancel, say) cannot start a readiness poll nobody would cancel.
//!
//! Closing fds: a connection's socket (and a tunnel's upstream) is closed by an op
//! submitted only once nothing else of the slot is in flight ([`Server::finish_close`]),
//! because io_uring resolves the fd of work queued to its worker pool only when that
//! work runs. Every other fd the backend may know (pipes, files being spliced) is an
//! [`IoFd`](crate::iofd::IoFd): it has no closing `Drop`; it is closed with [`IoFd::close`](crate::iofd::IoFd::close) through the
//! worker's `Io`, which makes the backend forget the fd first (the epoll backend keeps
//! a registration per fd number), and only when no op referencing it is in flight.

use crate::conn::*;
use crate::guard::log_panic;
use crate::handler::{CloseReason, Factory, Handler};
use crate::server::Server;
use ringcore_runtime::{Io, Op, OpKind, Token};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What an op does, as far as the lifecycle is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Takes input: a receive, a readiness poll for reading, a tunnel fill.
    Read,
    /// Moves output: a send, a splice out, a file fill, a writability poll, a shutdown.
    Write,
    /// An outbound connect (client mode or a tunnel's upstream).
    Connect,
    /// A cancel of ops already in flight.
    Cancel,
}

impl ConnCore {
    /// True if an op for `u` may be armed now (the table above).
    pub(crate) fn may_arm(&self, u: Use) -> bool {
        if self.has(CANCELLED) {
            return false;
        }
        match u {
            Use::Cancel => true,
            Use::Write => !self.has(ABORT),
            Use::Read | Use::Connect => !self.has(CLOSING),
        }
    }
}

impl ConnCore {
    /// An abort with bytes still unsent (in the queue, or in the kernel's send queue:
    /// one `SIOCOUTQ` ioctl) makes the close a reset (`SO_LINGER` 0): the kernel drops
    /// the bytes and the socket at once and the peer learns at once, instead of an
    /// orphaned socket holding them, with a FIN queued behind them, for as long as a
    /// peer that does not read makes it wait (a slow reader cut off by a rate limit,
    /// the close or drain deadline). Without unsent bytes the close stays graceful.
    ///
    /// Zero-copy sends (`SEND_ZC`) need nothing more here. A send's result comes
    /// without waiting for its notification, and the memory it read waits in the
    /// worker's `ZcHolds` (zchold.rs), not in the slot: a send still in flight is
    /// cancelled and the close follows exactly as for a copied send. The kernel's
    /// send queue is then dropped by the reset (or was already empty), so it lets go
    /// of the pages and the notifications come; only they release the memory.
    pub(crate) fn reset_if_unsent(&mut self) {
        if self.has(CANCELLED | RESET_SET) {
            return;
        }
        let mut in_kernel: libc::c_int = 0;
        // Raw libc: nix has no typed SIOCOUTQ (its ioctl macros make unsafe fns too).
        // SAFETY: `fd` is this connection's open socket (closed only after CANCELLED);
        // TIOCOUTQ (= SIOCOUTQ) writes one c_int to the valid pointer.
        let r = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut in_kernel as *mut libc::c_int) };
        let unsent_in_kernel = r == 0 && in_kernel > 0;
        if self.queued_bytes() == 0 && !unsent_in_kernel {
            return;
        }
        self.set(RESET_SET);
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // A failure only leaves the close graceful.
        let _ = nix::sys::socket::setsockopt(
            &crate::iofd::borrow(self.fd),
            nix::sys::socket::sockopt::Linger,
            &l,
        );
    }
}

impl<F: Factory> Server<F> {
    /// The one place a connection's ops are submitted: refuses what the lifecycle
    /// does not allow in the current state, counts what it submits as in flight.
    ///
    /// # Safety
    /// As [`Io::submit`]: memory `op` points at stays valid until its final completion.
    pub(crate) unsafe fn arm(&mut self, io: &mut Io, idx: u32, tok: Token, op: Op, u: Use) -> bool {
        let Some(s) = self.conns.get(idx) else {
            return false;
        };
        if !s.value.core.may_arm(u) {
            return false;
        }
        // SAFETY: forwarded caller contract.
        let ok = unsafe { io.submit(tok, op) }.is_ok();
        if ok && !crate::kinds::uncounted_cancel(io, tok) {
            self.conns.op_submitted(idx);
        }
        ok
    }

    /// [`arm`](Self::arm) for a linked pair (both of use `u`).
    ///
    /// # Safety
    /// As [`Io::submit_linked`].
    pub(crate) unsafe fn arm_linked(
        &mut self,
        io: &mut Io,
        idx: u32,
        first: (Token, Op),
        second: (Token, Op),
        u: Use,
    ) -> bool {
        let Some(s) = self.conns.get(idx) else {
            return false;
        };
        if !s.value.core.may_arm(u) {
            return false;
        }
        // SAFETY: forwarded caller contract.
        let ok = unsafe { io.submit_linked(first, second) }.is_ok();
        if ok {
            self.conns.op_submitted(idx);
            self.conns.op_submitted(idx);
        }
        ok
    }

    /// Starts closing: cancel whatever is in flight (once); the fd is closed by
    /// [`finish_close`](Self::finish_close) once nothing else is in flight. From here
    /// on [`arm`](Self::arm) refuses everything. The slot goes when the close completes.
    pub(crate) fn begin_close(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let busy = s.in_flight() > 0;
        let core = &mut s.value.core;
        if core.has(CANCELLED) {
            return;
        }
        core.set(CLOSE_SENT | CLOSING | CLOSE_WAIT);
        if busy {
            let fd = core.fd;
            let tok = core.token.with_kind(OpKind::Cancel);
            // SAFETY: cancel references no memory.
            unsafe { self.arm(io, idx, tok, Op::CancelFd { fd }, Use::Cancel) };
            self.cancel_tunnel_upstream(io, idx);
        }
        if let Some(s) = self.conns.get_mut(idx) {
            s.value.core.set(CANCELLED);
        }
        self.finish_close(io, idx);
    }

    /// Submits the close of the fd (and a tunnel's upstream) once no other op is in
    /// flight; marks the slot closed so it is released after the close completes.
    pub(crate) fn finish_close(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        if !s.value.core.has(CLOSE_WAIT) || s.in_flight() > 0 {
            return;
        }
        s.value.core.clear(CLOSE_WAIT);
        // The sockets' last moment open: the handler may read their state (TCP_INFO).
        self.call_on_closing(io, idx);
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let (fd, tok) = (core.fd, core.token.with_kind(OpKind::Close));
        // Nothing is in flight: pipes and files can go now too.
        self.release_fds(io, idx);
        // SAFETY: close references no memory. Not through `arm`: the close is the one
        // op a cancelled connection still submits, and only here.
        if unsafe { io.submit(tok, Op::Close { fd }) }.is_ok() {
            self.conns.op_submitted(idx);
        }
        self.close_tunnel_upstream(io, idx);
        self.conns.mark_closed(idx);
    }

    /// Closes the slot's pipes and files through `io` (nothing of the slot may be in
    /// flight, except the socket's own close).
    fn release_fds(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if let Some(st) = core.splice.take() {
            self.ctx.give_pipe(io, st);
        }
        if let Some(t) = core.tunnel.as_mut() {
            t.release_pipes(io);
        }
        core.out.discard_all(&mut self.ctx.spare);
        for fd in core.out.take_retired() {
            fd.close(io);
        }
    }

    /// Closes the files of finished file segments (their splices completed).
    pub(crate) fn close_retired(&mut self, io: &mut Io, idx: u32) {
        if let Some(s) = self.conns.get_mut(idx) {
            for fd in s.value.core.out.take_retired() {
                fd.close(io);
            }
        }
    }

    /// A graceful close began with output left: abort it if it has not finished by
    /// the close deadline.
    pub(crate) fn arm_close_deadline(&mut self, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if core.has(CANCELLED) || core.close_timer.is_some() || core.linger_ms == 0 {
            return;
        }
        let at = self.ctx.now + std::time::Duration::from_millis(core.linger_ms as u64);
        let key = core.token.with_kind(OpKind::Close).raw();
        core.close_timer = Some(self.ctx.timers.insert(at, key));
    }

    /// The close deadline passed: a connection still closing is aborted.
    pub(crate) fn close_deadline_passed(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        // LAYER_CLOSE: the close was asked for inside a layer (TLS) and waits for its
        // plaintext; the deadline counts from that request (layer.rs).
        if core.has(CANCELLED) || !(core.has(CLOSING) || core.has(LAYER_CLOSE)) {
            return;
        }
        io.counters().timeouts += 1;
        let unsent = core.queued_bytes();
        // The close did not complete as asked: say why instead of the close's reason.
        core.reason = Some(CloseReason::Error(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("close deadline passed with {unsent} bytes unsent; aborted"),
        )));
        core.want_abort();
        self.ctx.mark_dirty(core);
    }

    /// Releases the slot if it is closed and nothing is in flight, then `on_close`.
    pub(crate) fn maybe_release(&mut self, io: &mut Io, idx: u32) {
        if let Some(mut slot) = self.conns.release_if_done(idx) {
            self.ctx.cancel_timers(&mut slot.core);
            self.ctx.cancel_timer(&mut slot.core.close_timer);
            self.ctx.cancel_timer(&mut slot.core.guard_timer);
            self.ctx.cancel_timer(&mut slot.core.connect_timer);
            if let Some(st) = slot.core.splice.take() {
                self.ctx.give_pipe(io, st);
            }
            let mut carried = None;
            if let Some(mut t) = slot.core.tunnel.take() {
                self.ctx.cancel_timer(&mut t.clock.timer);
                t.release(io);
                carried = Some(t.stats());
            }
            slot.core.out.discard_all(&mut self.ctx.spare);
            for fd in slot.core.out.take_retired() {
                fd.close(io);
            }
            io.counters().closes += 1;
            io.counters().open_conns = io.counters().open_conns.saturating_sub(1);
            let reason = slot.core.reason.take().unwrap_or(CloseReason::PeerClosed);
            let h = &mut slot.handler;
            let last = || {
                if let Some(st) = carried {
                    h.on_tunnel_closed(st);
                }
                h.on_close(reason)
            };
            if catch_unwind(AssertUnwindSafe(last)).is_err() {
                io.counters().panics += 1;
                log_panic(self.ctx.worker, "on_close");
            }
        }
    }
}
