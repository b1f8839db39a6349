//! Tunnel deadlines (`pipe_to`): an idle timeout (no byte moved either way) and a
//! half-close timeout (one side finished sending, the other has not), as nginx's
//! `proxy_timeout` for streams. When one passes, both sockets close and `on_close`
//! gets a [`CloseReason::Error`] of kind `TimedOut`.
//!
//! One timer entry per tunnel at a time, keyed with the slot's token and kind
//! [`TUNNEL_TIMER`]; it fires at the earliest deadline known when armed and re-arms
//! itself for a later one (activity only moves a timestamp, never the timer).

use crate::handler::{CloseReason, Factory};
use crate::server::Server;
use ringcore_runtime::{Io, OpKind};
use std::io;

/// Timer-key kind of a tunnel deadline (a poll is never a timer key otherwise).
pub(crate) const TUNNEL_TIMER: OpKind = OpKind::Poll;

impl<F: Factory> Server<F> {
    /// (Re-)arms slot `idx`'s tunnel timer for its earliest deadline, unless an entry
    /// already fires at or before it.
    pub(crate) fn arm_tunnel_timer(&mut self, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let key = core.token.with_kind(TUNNEL_TIMER).raw();
        let Some(t) = core.tunnel.as_mut() else {
            return;
        };
        let Some((at, _)) = t.clock.deadline() else {
            return;
        };
        if t.clock.timer.is_some() && t.clock.timer_at <= at {
            return;
        }
        if let Some(h) = t.clock.timer.take() {
            self.ctx.timers.cancel(h);
        }
        t.clock.timer_at = at;
        t.clock.timer = Some(self.ctx.timers.insert(self.ctx.at(at), key));
    }

    /// The tunnel timer of slot `idx` fired: close both sides if a deadline passed,
    /// else re-arm for the next one.
    pub(crate) fn tunnel_timer_fired(&mut self, io: &mut Io, idx: u32) {
        let now = self.ctx.now_ms();
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let Some(t) = core.tunnel.as_mut() else {
            return;
        };
        t.clock.timer = None;
        let Some((at, half)) = t.clock.deadline() else {
            return;
        };
        if at > now {
            return self.arm_tunnel_timer(idx);
        }
        io.counters().timeouts += 1;
        let what = if half {
            format!("tunnel half-closed for {} ms", t.clock.half_ms)
        } else {
            format!("tunnel idle for {} ms", t.clock.idle_ms)
        };
        core.fail(CloseReason::Error(io::Error::new(
            io::ErrorKind::TimedOut,
            what,
        )));
        self.ctx.mark_dirty(core);
    }
}
