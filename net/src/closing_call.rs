//! The server runs [`Handler::on_closing`](crate::Handler::on_closing) once per
//! connection, with a [`Closing`] over its still-open sockets (closing.rs).

use crate::closing::Closing;

impl<F: crate::Factory> crate::server::Server<F> {
    /// Runs the handler's `on_closing` for slot `idx`, once: from `finish_close` (nothing
    /// in flight, the sockets still open), or just before a closing connection's last
    /// send is submitted linked to its close. A panic is caught and counted.
    pub(crate) fn call_on_closing(&mut self, io: &mut ringcore_runtime::Io, idx: u32) {
        use crate::Handler as _;
        let worker = self.ctx.worker;
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        if s.value.core.has(crate::conn::CLOSING_SEEN) {
            return;
        }
        s.value.core.set(crate::conn::CLOSING_SEEN);
        let core = &s.value.core;
        let tunnel = core.tunnel.as_ref().filter(|t| t.up >= 0);
        let closing = Closing {
            fd: core.fd,
            upstream: tunnel.map(|t| t.up),
            upstream_connected: tunnel.is_some_and(|t| t.stats().connected),
            worker,
        };
        let h = &mut s.value.handler;
        let run = std::panic::AssertUnwindSafe(|| h.on_closing(&closing));
        if std::panic::catch_unwind(run).is_err() {
            io.counters().panics += 1;
            crate::guard::log_panic(worker, "on_closing");
        }
    }
}
