//! Outbound connections: the client side of the runtime ([`Connect`]), used by load
//! generators and proxies. A connect is an op like any other; its peer address lives
//! in the slot until the connect completes.

use crate::conn::*;
use crate::handler::{CloseReason, Factory, Handler};
use crate::lifecycle::Use;
use crate::server::{call, Server};
use crate::socket::SocketOptions;
use ringcore_runtime::{Completion, Io, Op, OpKind, Runtime};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::Duration;

/// Outbound connections a client-mode worker opens at start.
#[derive(Clone)]
pub(crate) struct Outbound {
    pub(crate) addr: crate::addr::Addr,
    pub(crate) count: usize,
    pub(crate) opts: ConnectOptions,
}

impl<F: Factory> Server<F> {
    /// Opens one outbound connection: socket, optional source bind, connect op.
    pub(crate) fn open_outbound(&mut self, io: &mut Io, target: &Outbound, n: usize) {
        let fail = |io: &mut Io, e: io::Error| {
            tracing::warn!(
                "ringcore: worker {}: outbound connect to {} failed: {e}",
                io.worker_id(),
                target.addr
            );
            io.counters().closes += 1;
        };
        let raw_addr = match crate::addr::RawAddr::new(&target.addr) {
            Ok(a) => a,
            Err(e) => return fail(io, e),
        };
        let fd = match crate::socket::stream_socket(&target.addr) {
            Ok(fd) => fd,
            Err(e) => return fail(io, e),
        };
        let setup = || -> io::Result<()> {
            let raw = fd.as_raw_fd();
            target.opts.socket.apply(raw)?;
            if !target.opts.sources.is_empty() && !target.addr.is_unix() {
                let src = target.opts.sources[n % target.opts.sources.len()];
                if src.is_ipv4() {
                    crate::socket::set(
                        &crate::socket::borrow(raw),
                        nix::sys::socket::sockopt::IpBindAddressNoPort,
                        &true,
                        "IP_BIND_ADDRESS_NO_PORT",
                    )?;
                }
                let src_addr = crate::addr::from_std(&std::net::SocketAddr::new(src, 0));
                nix::sys::socket::bind(raw, src_addr.as_sockaddr()).map_err(|e| {
                    io::Error::new(io::Error::from(e).kind(), format!("bind source {src}: {e}"))
                })?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            return fail(io, e);
        }
        let fd = fd.into_raw_fd();
        let Some(idx) = self.new_conn(io, fd) else {
            return;
        };
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let token = core.token;
        core.set(CONNECTING);
        let addr = Box::new(raw_addr);
        let (ptr, len) = (addr.as_ptr(), addr.len);
        core.connect_addr = Some(addr);
        let timeout_at = self.ctx.now + target.opts.timeout;
        let key = token.with_kind(OpKind::Connect).raw();
        core.connect_timer = Some(self.ctx.timers.insert(timeout_at, key));
        let op = Op::Connect {
            fd,
            addr: ptr,
            addrlen: len,
        };
        // SAFETY: `addr` is boxed in the slot's `connect_addr` and dropped only after the
        // connect's completion (or with the slot, which outlives every op).
        unsafe { self.arm(io, idx, token.with_kind(OpKind::Connect), op, Use::Connect) };
    }

    pub(crate) fn on_connect(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        slot.core.clear(CONNECTING);
        slot.core.connect_addr = None;
        // Connected or failed: the timeout has nothing left to time.
        self.ctx.cancel_timer(&mut slot.core.connect_timer);
        if slot.core.has(CLOSING) {
            return;
        }
        if c.result < 0 {
            slot.core
                .fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
            self.ctx.mark_dirty(&mut slot.core);
            return;
        }
        io.counters().connects += 1;
        call(slot, &mut self.ctx, io, "on_open", |h, c| h.on_open(c));
        self.ctx.mark_dirty(&mut slot.core);
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
    /// Opens `per_worker` connections to `addr` (TCP, `[ipv6]:port`, `unix:/path` or
    /// `unix:@name`; see [`ToAddr`](crate::ToAddr)) on every worker and runs a handler per
    /// connection. `on_open` follows a successful connect; a failed or timed-out
    /// connect gets `on_close(CloseReason::Error)` without `on_open`. Returns when every
    /// connection has closed, or after shutdown.
    ///
    /// # Errors
    /// A bad address, or backend start-up errors.
    fn connect<A: crate::addr::ToAddr, F: Factory>(
        &self,
        addr: A,
        per_worker: usize,
        opts: ConnectOptions,
        factory: F,
    ) -> io::Result<()>;
}

impl Connect for Runtime {
    fn connect<A: crate::addr::ToAddr, F: Factory>(
        &self,
        addr: A,
        per_worker: usize,
        opts: ConnectOptions,
        factory: F,
    ) -> io::Result<()> {
        let addr = addr.to_addr()?;
        let factory = Arc::new(factory);
        let out = Outbound {
            addr,
            count: per_worker,
            opts,
        };
        self.run(move |id, io| {
            let mut s = Server::new(id, -1, factory.clone(), io.now());
            s.listener.closing = true;
            s.outbound = Some(out.clone());
            Ok(s)
        })
    }
}
