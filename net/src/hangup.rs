//! The hang-up guard (issue 8, defect 13): a one-shot poll for `POLLRDHUP | POLLERR |
//! POLLHUP` armed beside the multishot receive of a connection that has no timer.
//!
//! A connection's end normally arrives as its receive's final completion (0 or an
//! error). If that completion never came (io_uring was seen to leave a few multishot
//! receives parked after a storm of resets), a connection with an idle timeout or a
//! user timer is still closed when its timer fires; one without a timer would keep its
//! slot and fd forever. So for those the guard watches the socket itself: when it
//! fires while the receive is still armed, the receive is cancelled, `drive` arms a
//! fresh one, and that one reads the end of stream or the error at once (a fresh
//! receive looks at the socket's state before it waits). When the receive did end on
//! its own, the guard's completion only finds it gone and changes nothing.
//!
//! | event | guard |
//! | --- | --- |
//! | receive armed, no idle timeout, no user timer, not a tunnel | armed with the receive ([`Use::Read`]: never after closing began) |
//! | guard fires (peer's FIN or reset) | receive still armed -> a timer, [`GUARD_GRACE`] |
//! | that timer fires | receive still armed -> cancel it by token, counted in `hangup_guards` (`drive` re-arms both) |
//! | guard cancelled (close, pause) | nothing |
//!
//! The guard rescues at most [`GUARD_MAX`] receives per connection: a hang-up is a
//! state (the poll fires at once when re-armed), so an unbounded guard could cancel
//! and re-arm a receive in a loop; three chances for a fresh receive to see the end
//! are plenty, and then the connection is left to its handler. Cost: one poll op per timer-less connection, which completes once, at its
//! end.

use crate::conn::*;
use crate::handler::Factory;
use crate::kinds::K_GUARD;
use crate::lifecycle::Use;
use crate::server::Server;
use ringcore_runtime::{Completion, Io, Op, OpKind};

/// Most receives the guard rescues on one connection.
pub(crate) const GUARD_MAX: u8 = 3;

/// How long after the guard fired the receive may still be armed before its end
/// counts as missed.
pub(crate) const GUARD_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

impl<F: Factory> Server<F> {
    /// Arms the guard if the connection's receive is armed, nothing else would ever
    /// notice a lost end (no idle timeout, no user timer, not a tunnel), and it has
    /// rescued fewer than [`GUARD_MAX`] receives.
    pub(crate) fn arm_guard(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get(idx) else {
            return;
        };
        let core = &s.value.core;
        if !core.has(RECV_ARMED)
            || core.has(GUARD_ARMED | RECV_CANCEL | EOF)
            || core.guards >= GUARD_MAX
            || core.idle_ms != 0
            || core.user_timer.is_some()
            || core.tunnel.is_some()
        {
            return;
        }
        let (fd, tok) = (core.fd, core.token.with_raw_kind(K_GUARD));
        // SAFETY: a poll references no memory.
        if unsafe { self.arm(io, idx, tok, Op::PollHangup { fd }, Use::Read) } {
            if let Some(s) = self.conns.get_mut(idx) {
                s.value.core.set(GUARD_ARMED);
            }
        }
    }

    /// The guard completed. The receive's own end usually follows within the same
    /// or the next few batches of completions (io_uring runs deferred task work in
    /// batches, epoll one fd step at a time): whether it was missed is decided
    /// [`GUARD_GRACE`] later ([`guard_due`](Self::guard_due)).
    pub(crate) fn on_guard(&mut self, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        core.clear(GUARD_ARMED);
        if c.result >= 0
            && core.has(RECV_ARMED)
            && !core.has(RECV_CANCEL | CLOSING)
            && core.guard_timer.is_none()
        {
            let key = core.token.with_raw_kind(K_GUARD).raw();
            core.guard_timer = Some(self.ctx.timers.insert(self.ctx.now + GUARD_GRACE, key));
        }
    }

    /// [`GUARD_GRACE`] after the guard fired: a receive still armed missed its end;
    /// cancel it (`drive` arms a fresh one, which sees the end at once).
    pub(crate) fn guard_due(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        core.guard_timer = None;
        if !core.has(RECV_ARMED) || core.has(RECV_CANCEL | CLOSING) {
            return;
        }
        core.guards += 1;
        io.counters().hangup_guards += 1;
        let (fd, target) = (core.fd, core.token);
        let cancel = core.token.with_kind(OpKind::Cancel);
        // SAFETY: a cancel references no memory.
        if unsafe { self.arm(io, idx, cancel, Op::Cancel { fd, target }, Use::Cancel) } {
            if let Some(s) = self.conns.get_mut(idx) {
                s.value.core.set(RECV_CANCEL);
                self.ctx.mark_dirty(&mut s.value.core);
            }
        }
    }
}
