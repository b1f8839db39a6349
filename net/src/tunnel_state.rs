//! What a tunnel (`pipe_to`) owns and its options: the upstream socket, the two
//! directions' pipes and counters, the deadline clock. Plain state below the server:
//! the connection's slot holds it (`ConnCore::tunnel`), tunnel.rs and tunnel_timer.rs
//! drive it.

use crate::addr::RawAddr;
use crate::iofd::{IoFd, PIPE_CHUNK};
use ringcore_runtime::Io;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

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
    pub(crate) fn deadline(&self) -> Option<(u64, bool)> {
        let idle = (self.idle_ms != 0).then(|| (self.last_active + self.idle_ms, false));
        let half = (self.half_ms != 0 && self.half_closed_at != 0)
            .then(|| (self.half_closed_at + self.half_ms, true));
        match (idle, half) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Default)]
pub(crate) struct Dir {
    /// INVARIANT: nonblocking pipe (read, write) owned by this direction (none before
    /// the connect succeeded); closed only through `Io` with nothing in flight.
    pub(crate) pipe: Option<(IoFd, IoFd)>,
    pub(crate) in_pipe: u64,
    /// Bytes delivered to this direction's destination (for `TunnelStats`).
    pub(crate) moved: u64,
    pub(crate) fill: bool,
    pub(crate) drain: bool,
    pub(crate) poll_in: bool,
    pub(crate) poll_out: bool,
    pub(crate) eof: bool,
    pub(crate) shut: bool,
    /// The shutdown completed (the tunnel is done only then: see `CLOSE_WAIT`).
    pub(crate) shut_done: bool,
}

/// The tunnel state a client slot owns while it pipes to an upstream.
pub(crate) struct Tunnel {
    /// Upstream socket, `-1` until created.
    pub(crate) up: RawFd,
    pub(crate) up_closing: bool,
    pub(crate) target: SocketAddr,
    pub(crate) timeout: Duration,
    /// The connect op's address (the kernel reads it until the connect completes).
    pub(crate) addr: Box<RawAddr>,
    pub(crate) connecting: bool,
    pub(crate) connected: bool,
    pub(crate) dirs: [Dir; 2],
    /// Idle and half-close deadlines (tunnel_timer.rs).
    pub(crate) clock: TunnelClock,
}

impl Tunnel {
    pub(crate) fn new(target: SocketAddr, opts: &TunnelOptions) -> Box<Tunnel> {
        Box::new(Tunnel {
            up: -1,
            up_closing: false,
            target,
            timeout: opts.connect_timeout,
            addr: Box::new(crate::addr::from_std(&target)),
            connecting: false,
            connected: false,
            dirs: [Dir::default(), Dir::default()],
            clock: TunnelClock::new(opts),
        })
    }

    /// Bytes buffered in the pipes.
    pub(crate) fn buffered(&self) -> u64 {
        self.dirs[0].in_pipe + self.dirs[1].in_pipe
    }
}

impl Tunnel {
    /// Closes the pipes through `io`, so the backend forgets them (nothing may be in
    /// flight: from `finish_close` or the slot's release).
    pub(crate) fn release_pipes(&mut self, io: &mut Io) {
        for d in &mut self.dirs {
            if let Some((r, w)) = d.pipe.take() {
                r.close(io);
                w.close(io);
            }
        }
    }

    /// Closes the pipes, and the upstream if it never got its close op, through `io`;
    /// called when the slot is released.
    pub(crate) fn release(&mut self, io: &mut Io) {
        self.release_pipes(io);
        if self.up >= 0 && !self.up_closing {
            io.close_now(self.up);
            self.up = -1;
        }
    }
}

pub(crate) fn pipe_fds(d: &Dir) -> (RawFd, RawFd) {
    d.pipe
        .as_ref()
        .map_or((-1, -1), |(r, w)| (r.raw(), w.raw()))
}

/// A nonblocking, close-on-exec pipe sized to [`PIPE_CHUNK`] (best effort: a failure
/// keeps the default size), for splicing.
pub(crate) fn new_pipe() -> io::Result<(IoFd, IoFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::{AsRawFd, IntoRawFd};
    let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    let _ = fcntl(
        w.as_raw_fd(),
        FcntlArg::F_SETPIPE_SZ(PIPE_CHUNK as libc::c_int),
    );
    Ok((IoFd::new(r.into_raw_fd()), IoFd::new(w.into_raw_fd())))
}
