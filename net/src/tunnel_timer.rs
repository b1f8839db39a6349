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
use std::time::Duration;

/// Timer-key kind of a tunnel deadline (a poll is never a timer key otherwise).
pub(crate) const TUNNEL_TIMER: OpKind = OpKind::Poll;

/// Default tunnel idle timeout: 10 minutes, nginx's `proxy_timeout` default. Long
/// enough for protocols that idle between exchanges (database sessions, SSH without
/// keepalives), short enough that abandoned tunnels do not hold 2 sockets and 2 pipes
/// for ever.
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Default tunnel half-close timeout: 60 s. After one side sent its FIN the exchange
/// is ending; the other side gets a minute to finish its answer (an upstream that
/// never answers nor closes would otherwise keep the tunnel until the idle timeout).
pub const DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of a splice tunnel ([`Conn::pipe_to_with`](crate::Conn::pipe_to_with)).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TunnelOptions {
    /// Upstream connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Close both sides when no byte moved either way for this long (default
    /// [`DEFAULT_TUNNEL_IDLE_TIMEOUT`]); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Close both sides when one side has sent its FIN and the tunnel is still open
    /// this long after (default [`DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT`]); `None`: never.
    pub half_close_timeout: Option<Duration>,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Some(DEFAULT_TUNNEL_IDLE_TIMEOUT),
            half_close_timeout: Some(DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT),
        }
    }
}

impl TunnelOptions {
    /// Sets the upstream connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets (or with `None` disables) the idle timeout.
    pub fn idle_timeout(mut self, t: Option<Duration>) -> Self {
        self.idle_timeout = t;
        self
    }

    /// Sets (or with `None` disables) the half-close timeout.
    pub fn half_close_timeout(mut self, t: Option<Duration>) -> Self {
        self.half_close_timeout = t;
        self
    }
}

/// A tunnel's deadline state ([`WorkerCtx::ms`] units; 0: none).
#[derive(Default)]
pub(crate) struct TunnelClock {
    /// Idle and half-close timeouts in ms (0: none).
    pub(crate) idle_ms: u64,
    pub(crate) half_ms: u64,
    /// Last time a byte moved.
    pub(crate) last_active: u64,
    /// When the first side sent its FIN.
    pub(crate) half_closed_at: u64,
    /// The armed timer entry and when it fires.
    pub(crate) timer: Option<ringcore_runtime::TimerHandle>,
    pub(crate) timer_at: u64,
}

impl TunnelClock {
    pub(crate) fn new(o: &TunnelOptions) -> TunnelClock {
        let ms = |t: Option<Duration>| t.map_or(0, |t| (t.as_millis() as u64).max(1));
        TunnelClock {
            idle_ms: ms(o.idle_timeout),
            half_ms: ms(o.half_close_timeout),
            ..TunnelClock::default()
        }
    }

    /// The earliest deadline, and whether it is the half-close one.
    fn deadline(&self) -> Option<(u64, bool)> {
        let idle = (self.idle_ms != 0).then(|| (self.last_active + self.idle_ms, false));
        let half = (self.half_ms != 0 && self.half_closed_at != 0)
            .then(|| (self.half_closed_at + self.half_ms, true));
        match (idle, half) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

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
