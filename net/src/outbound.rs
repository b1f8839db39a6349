//! Outbound connections: the client side of the runtime ([`Connect`]), used by load
//! generators, and the completion of every outbound connect (client mode, or opened by
//! a handler with `Conn::connect`, see connect.rs). A connect is an op like any other;
//! its peer address lives in the slot until the connect completes, and its deadline
//! is a cancellable timer entry removed when it completes.

use crate::conn::*;
use crate::connect::{outbound_socket, Target};
use crate::guard::call;
use crate::handler::{CloseReason, Factory, Handler};
pub use crate::outbound_opts::ConnectOptions;
use crate::outbound_opts::Outbound;
use crate::server::Server;
use ringcore_runtime::{Completion, Io, Runtime};
use std::io;
use std::sync::Arc;

impl<F: Factory> Server<F> {
    /// Opens one client-mode connection: socket (options, source bind), a handler from
    /// the factory, the connect op (connect.rs).
    pub(crate) fn open_outbound(&mut self, io: &mut Io, target: &Outbound, n: usize) {
        let source = (!target.opts.sources.is_empty())
            .then(|| target.opts.sources[n % target.opts.sources.len()]);
        let t = Target {
            addr: target.addr.clone(),
            timeout: target.opts.timeout,
            source,
            socket: &target.opts.socket,
        };
        let fd = match outbound_socket(&t) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("ringcore: worker {}: {e}", io.worker_id());
                io.counters().closes += 1;
                return;
            }
        };
        if let Some(idx) = self.new_conn(io, fd) {
            self.connect_slot(io, idx, &t);
        }
    }

    /// The connect completed: `on_open`, or the error (with the address) and a close.
    pub(crate) fn on_connect(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        slot.core.clear(CONNECTING);
        let addr = slot.core.connect_addr.take();
        // Connected or failed: the timeout has nothing left to time.
        self.ctx.cancel_timer(&mut slot.core.connect_timer);
        if slot.core.has(CLOSING) {
            return;
        }
        if c.result < 0 {
            let e = io::Error::from_raw_os_error(-c.result);
            // `RawAddr`'s Debug form is `RawAddr(<address>)`.
            let to = addr.map_or_else(
                || "?".to_string(),
                |a| {
                    let d = format!("{a:?}");
                    d.trim_start_matches("RawAddr(")
                        .trim_end_matches(')')
                        .to_string()
                },
            );
            slot.core.fail(CloseReason::Error(io::Error::new(
                e.kind(),
                format!("connect to {to}: {e}"),
            )));
            self.ctx.mark_dirty(&mut slot.core);
            return;
        }
        io.counters().connects += 1;
        call(slot, &mut self.ctx, io, "on_open", |h, c| h.on_open(c));
        self.ctx.mark_dirty(&mut slot.core);
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
