//! The server's side of receiving passed fds (`fdpass.rs` has the receive state and
//! the `Conn` API): a completed `recvmsg` hands its fds to `on_fds`, then its bytes
//! to `on_data`.

use crate::conn::*;
use crate::fdpass::MAX_PASSED_FDS;
use crate::guard::call;
use crate::handler::{CloseReason, Factory, Handler};
use crate::server::Server;
use ringcore_runtime::{Completion, Io};
use std::io;

impl<F: Factory> Server<F> {
    /// A `recvmsg` of a connection that receives fds brought `c.result > 0` bytes:
    /// fds to `on_fds`, then the bytes to `on_data` (through the pending buffer).
    pub(crate) fn on_recvmsg_bytes(&mut self, io: &mut Io, c: &Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        let n = c.result as usize;
        io.counters().bytes_in += n as u64;
        slot.core.touch(self.ctx.now_ms());
        let Some(rx) = slot.core.fdrecv.as_mut() else {
            return;
        };
        let (fds, truncated) = rx.take_fds();
        if slot.core.has(CLOSING) {
            return; // `fds` close here
        }
        if truncated {
            let got = fds.len();
            drop(fds);
            tracing::warn!(
                worker = self.ctx.worker,
                fds = got,
                "a peer passed more than MAX_PASSED_FDS file descriptors in one message; \
                 closed them and the connection"
            );
            slot.core.fail(CloseReason::Error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "received control data truncated (MSG_CTRUNC): more than \
                     {MAX_PASSED_FDS} fds (MAX_PASSED_FDS) in one message; the {got} \
                     received were closed"
                ),
            )));
            self.ctx.mark_dirty(&mut slot.core);
            return;
        }
        if !fds.is_empty() {
            call(slot, &mut self.ctx, io, "on_fds", |h, conn| {
                h.on_fds(conn, fds)
            });
            if slot.core.has(CLOSING) {
                return;
            }
        }
        if !slot.core.has(BACKED_UP) && slot.core.update_backed_up() {
            self.ctx.mark_dirty(&mut slot.core);
        }
        if let Some(rx) = slot.core.fdrecv.as_ref() {
            slot.core.pending.extend_from_slice(rx.received(n));
        }
        if slot.core.has(READ_STOP) {
            slot.core.set(PENDING_NEW);
            return;
        }
        self.deliver_pending(io, idx);
    }
}
