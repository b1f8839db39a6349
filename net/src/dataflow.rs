//! The data path of one connection: receive completions into `on_data`, send
//! completions into `on_sent`, and `drive`, which turns a dirty connection's requests
//! into ops at the end of a loop turn (arm receive, send, shutdown, close), plus the
//! close sequence and per-connection timers.

use crate::conn::*;
use crate::guard::call;
use crate::handler::{CloseReason, Factory, Handler};
use crate::lifecycle::Use;
use crate::server::{Server, ACCEPT_BACKOFF_KEY};
use ringcore_runtime::{Completion, Io, Op, OpKind, Token};
use std::io;
use std::time::Duration;

impl<F: Factory> Server<F> {
    pub(crate) fn on_recv(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        if !c.more() {
            slot.core.clear(RECV_ARMED | RECV_CANCEL);
            self.ctx.mark_dirty(&mut slot.core);
        }
        if c.result > 0 && slot.core.fdrecv.is_some() {
            return self.on_recvmsg_bytes(io, &c, idx);
        }
        if c.result > 0 {
            let n = c.result as usize;
            io.counters().bytes_in += n as u64;
            slot.core.touch(self.ctx.now_ms());
            // Usually one part; several when a receive bundle spanned buffers.
            self.ctx.holds.begin(c);
            let mut part = 0;
            while let Some(bytes) = io.received_part(&c, part) {
                part += 1;
                // The slice is detached from `io` so the callback can use `io` mutably.
                if !self.on_bytes(io, idx, detach(bytes)) {
                    break;
                }
            }
            // Recycles the buffer, unless `send_received` queued bytes from it.
            self.ctx.holds.end(io, &c);
        } else if c.result == 0 {
            slot.core.set(EOF);
            slot.core.clear(RECV_ARMED);
            if slot.core.has(READ_STOP)
                || !slot.core.pending.is_empty() && slot.core.has(PENDING_NEW)
            {
                // Undelivered input first: on_eof follows it after resume.
                slot.core.set(EOF_PENDING);
            } else if !slot.core.has(CLOSING) {
                call(slot, &mut self.ctx, io, "on_eof", |h, conn| h.on_eof(conn));
            }
        } else {
            io.recycle(&c);
            match -c.result {
                libc::ENOBUFS => {
                    // The pool is empty: re-arm only once buffers come back, a few
                    // connections per turn (re-arming every one at once only makes
                    // them all fail again).
                    io.counters().enobufs += 1;
                    slot.core.set(NOBUF_WAIT);
                    self.ctx.nobuf.push_back(slot.core.token);
                }
                // Cancelled (pause, close) or given up after a poll retry: flush re-arms
                // if the connection still wants to read.
                libc::ECANCELED | libc::EAGAIN => {}
                e => {
                    slot.core
                        .fail(CloseReason::Error(io::Error::from_raw_os_error(e)));
                    self.ctx.mark_dirty(&mut slot.core);
                }
            }
        }
    }

    /// Hands one part of a receive to the connection: straight to `on_data`, or into
    /// the pending input while reading is paused or input is left over. False when the
    /// connection is closing (the rest of the receive is dropped).
    fn on_bytes(&mut self, io: &mut Io, idx: u32, data: &[u8]) -> bool {
        let Some(s) = self.conns.get_mut(idx) else {
            return false;
        };
        let slot = &mut s.value;
        let n = data.len();
        if slot.core.has(CLOSING) {
            return false;
        }
        if !slot.core.has(BACKED_UP) && slot.core.update_backed_up() {
            // Output reached the high-water mark this turn: stop delivering now;
            // `drive` cancels the receive.
            self.ctx.mark_dirty(&mut slot.core);
        }
        if slot.core.has(READ_STOP) || !slot.core.pending.is_empty() {
            slot.core.pending.extend_from_slice(data);
            if slot.core.has(READ_STOP) {
                slot.core.set(PENDING_NEW);
            }
            // While stopped, only bytes already in flight when the receive was
            // cancelled land here: at most one buffer pool's worth.
            if !slot.core.has(READ_STOP) {
                self.deliver_pending(io, idx);
            }
            return true;
        }
        // Fast path: hand the pool buffer straight to the handler, no copy.
        self.ctx.holds.expose(Some(data));
        let consumed = call(slot, &mut self.ctx, io, "on_data", |h, conn| {
            h.on_data(conn, data)
        });
        self.ctx.holds.expose(None);
        if let Some(used) = consumed {
            let used = used.min(n);
            if used < n && !slot.core.has(CLOSING) {
                slot.core.pending.extend_from_slice(&data[used..]);
                slot.core.note_leftovers();
                self.check_pending_limit(idx, used);
            }
        }
        true
    }

    pub(crate) fn deliver_pending(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        let pending = slot.core.pending.take();
        let consumed = call(slot, &mut self.ctx, io, "on_data", |h, conn| {
            h.on_data(conn, &pending)
        });
        slot.core.pending.put_back(pending, consumed.unwrap_or(0));
        slot.core.note_leftovers();
        self.check_pending_limit(idx, consumed.unwrap_or(0));
    }

    pub(crate) fn check_pending_limit(&mut self, idx: u32, used: usize) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        // A handler that holds input back because its output is backed up is not
        // stuck: it gets the input again once the queue drained.
        if used == 0 && core.pending.len() >= core.max_pending as usize && !core.backed_up() {
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

    /// Releases the receive-buffer holds of queued bytes that were sent or dropped.
    pub(crate) fn release_holds(&mut self, io: &mut Io) {
        while let Some(h) = self.ctx.spare.released.pop() {
            self.ctx.holds.release(io, h);
        }
    }

    pub(crate) fn on_send(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        let sent = c.result.max(0) as usize;
        // A zero-copy send whose notification is still to come (`F_MORE`): the queue
        // advances now, the memory the send read waits for the notification
        // (zchold.rs).
        let kept = c.more().then(|| self.ctx.zc.sent(c.token.raw()));
        if slot.core.out.complete_kept(sent, &mut self.ctx.spare, kept) {
            io.counters().short_sends += u64::from(c.result >= 0);
        }
        io.counters().bytes_out += sent as u64;
        self.ctx.mark_dirty(&mut slot.core);
        if c.result == -libc::EAGAIN {
            // io_uring gives up on a nonblocking socket after its internal poll retry
            // (seen after the peer's FIN): wait for writability, then send again.
            let (fd, tok) = (slot.core.fd, slot.core.token.with_kind(OpKind::Poll));
            // SAFETY: a poll references no memory.
            if unsafe { self.arm(io, idx, tok, Op::PollWritable { fd }, Use::Write) } {
                if let Some(s) = self.conns.get_mut(idx) {
                    s.value.core.set(WAIT_WRITABLE);
                }
            }
            return;
        }
        if c.result < 0 {
            if c.result != -libc::ECANCELED {
                slot.core
                    .fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
            }
            return;
        }
        slot.core.touch(self.ctx.now_ms());
        if slot.core.out.is_empty() && !slot.core.has(CLOSING) {
            call(slot, &mut self.ctx, io, "on_sent", |h, conn| {
                h.on_sent(conn)
            });
        }
    }

    /// Turns one dirty connection's requests into ops.
    pub(crate) fn drive(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        core.clear(DIRTY);
        // After the close went out nothing is driven, except an abort (close deadline,
        // shutdown) of a linked send+close still waiting for its send.
        let abort_pending = core.has(ABORT) && !core.has(CANCELLED);
        if core.has(CLOSE_SENT) && !abort_pending {
            return;
        }
        let fd = core.fd;
        if core.has(CONNECTING) && !core.has(ABORT) {
            // An outbound connect in flight: nothing is armed before it completes
            // (sends queued meanwhile leave after it). Closing before then has
            // nothing to send: abort (cancels the connect).
            if !core.has(CLOSING) {
                return;
            }
            core.set(ABORT);
        }
        if core.has(ABORT) {
            core.reset_if_unsent();
            let filling = core.splice.as_ref().is_some_and(|st| st.filling);
            core.out.discard_unsent(&mut self.ctx.spare, filling);
            self.close_retired(io, idx);
            return self.begin_close(io, idx);
        }
        if core.has(CLOSING) && core.close_timer.is_none() && core.linger_ms != 0 {
            self.arm_close_deadline(idx);
        }
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if core.tunnel.is_some() {
            if core.has(CLOSING) {
                return self.begin_close(io, idx);
            }
            return self.drive_tunnel(io, idx);
        }
        // Output backpressure: stop reading at the high-water mark, resume below the low.
        core.update_backed_up();
        if core.has(PENDING_NEW | EOF_PENDING) && !core.has(READ_STOP | CLOSING) {
            // Resumed: hand over what arrived while paused, then a deferred EOF.
            let eof = core.has(EOF_PENDING);
            core.clear(PENDING_NEW | EOF_PENDING);
            if !core.pending.is_empty() {
                self.deliver_pending(io, idx);
            }
            if eof {
                if let Some(s) = self.conns.get_mut(idx) {
                    if s.value.core.has(PENDING_NEW) {
                        // The handler left input behind output that is backed up
                        // again (or paused again): the EOF waits for it once more.
                        s.value.core.set(EOF_PENDING);
                    } else if !s.value.core.has(CLOSING) {
                        call(&mut s.value, &mut self.ctx, io, "on_eof", |h, conn| {
                            h.on_eof(conn)
                        });
                    }
                }
            }
            let Some(s) = self.conns.get_mut(idx) else {
                return;
            };
            // What the handler sent for the input it was handed may have filled the
            // queue again: stop reading before arming anything.
            s.value.core.update_backed_up();
            if s.value.core.has(READ_STOP) {
                return self.drive(io, idx);
            }
        }
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if core.has(READ_STOP) && core.has(RECV_ARMED) && !core.has(RECV_CANCEL) {
            // Stop the armed receive so the kernel buffer fills and the peer slows down.
            let target = core.token;
            let tok = core.token.with_kind(OpKind::Cancel);
            // SAFETY: a cancel references no memory.
            if unsafe { self.arm(io, idx, tok, Op::Cancel { fd, target }, Use::Cancel) } {
                if let Some(s) = self.conns.get_mut(idx) {
                    s.value.core.set(RECV_CANCEL);
                }
            }
        }
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if !core.has(READ_STOP | RECV_ARMED | EOF | NOBUF_WAIT) {
            let tok = core.token;
            // A connection that receives passed fds reads with recvmsg (fdpass.rs).
            let op = match core.fdrecv.as_mut() {
                Some(rx) => Op::RecvMsg {
                    fd,
                    msg: rx.prepare(),
                    flags: libc::MSG_CMSG_CLOEXEC as u32,
                },
                None => Op::RecvMulti { fd },
            };
            // SAFETY: a multishot recv references only the worker's buffer pool; a
            // recvmsg references the slot's boxed `FdRecv`, which stays in place until
            // the slot is released after the op's completion (its INVARIANT).
            if unsafe { self.arm(io, idx, tok, op, Use::Read) } {
                if let Some(s) = self.conns.get_mut(idx) {
                    s.value.core.set(RECV_ARMED);
                }
            }
        }
        self.arm_guard(io, idx);
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        if let Some(st) = &core.splice {
            if st.ops > 0 {
                return; // a splice is moving the head of the queue
            }
            if st.in_pipe > 0 || core.out.head_file().is_some() {
                return self.drive_splice(io, idx);
            }
        } else if !core.out.in_flight() && core.out.head_file().is_some() {
            return self.drive_splice(io, idx);
        }
        if core.has(WAIT_WRITABLE) {
            return;
        }
        if !core.out.in_flight() && core.out.bytes_ready() {
            let msg = core.out.prepare(&mut self.ctx.spare);
            let send_tok = core.token.with_kind(OpKind::Send);
            if core.has(CLOSING) && core.out.prepared_all() {
                // Last bytes of a closing connection: send then close, linked. Any
                // read-side op still in flight (the receive, or the hang-up guard
                // once the receive was stopped) is cancelled first: an op in flight
                // holds the file, so the close would not release the socket and the
                // peer would wait for a FIN that never comes.
                let armed = core.has(RECV_ARMED | GUARD_ARMED);
                core.set(CLOSE_SENT);
                // The socket's last moment before the linked close may run.
                self.call_on_closing(io, idx);
                let Some(s) = self.conns.get_mut(idx) else {
                    return;
                };
                let core = &mut s.value.core;
                let close_tok = core.token.with_kind(OpKind::Close);
                if armed {
                    let tok = core.token.with_kind(OpKind::Cancel);
                    // SAFETY: cancel references no memory.
                    unsafe { self.arm(io, idx, tok, Op::CancelFd { fd }, Use::Cancel) };
                }
                let send = Op::Send {
                    fd,
                    msg,
                    waitall: true,
                    more: false,
                };
                // SAFETY: `msg` and the iovecs/chunks it points at are owned by this
                // slot's write queue and stay untouched until the send's completion
                // (write queue invariants); the slot is not freed before then because
                // in_flight counts the op.
                unsafe {
                    self.arm_linked(
                        io,
                        idx,
                        (send_tok, send),
                        (close_tok, Op::Close { fd }),
                        Use::Write,
                    )
                };
                // Marked closed when the close completes: if the send falls short the
                // close is cancelled and the rest of the queue is sent first.
                return;
            }
            // A file follows these bytes (a response head before its spliced body):
            // the head waits in the socket and leaves with the body's first segment.
            let more = core.out.file_follows();
            let send = Op::Send {
                fd,
                msg,
                waitall: false,
                more,
            };
            // SAFETY: as above: the write queue owns msg/iovecs/bytes until completion.
            unsafe { self.arm(io, idx, send_tok, send, Use::Write) };
            return;
        }
        if core.out.is_empty() && !core.out.in_flight() && core.splice.is_none() {
            if core.has(SHUT_WANT) && !core.has(SHUT_SENT) {
                // A close requested in the same turn waits for this shutdown's
                // completion: `finish_close` runs only with nothing in flight.
                core.set(SHUT_SENT);
                let tok = core.token.with_kind(OpKind::Shutdown);
                let how = libc::SHUT_WR;
                // SAFETY: shutdown references no memory.
                unsafe { self.arm(io, idx, tok, Op::Shutdown { fd, how }, Use::Write) };
            }
            if self
                .conns
                .get(idx)
                .is_some_and(|s| s.value.core.has(CLOSING))
            {
                self.begin_close(io, idx);
            }
        }
    }

    pub(crate) fn on_timer(&mut self, io: &mut Io, key: u64) {
        if key == ACCEPT_BACKOFF_KEY {
            self.listener.paused_until = None;
            self.arm_accept(io);
            return;
        }
        let t = Token::from_raw(key);
        let idx = t.slot();
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        if s.generation() != t.generation() {
            return;
        }
        let slot = &mut s.value;
        let now_ms = self.ctx.now_ms();
        // The entry that fired is gone from the timer set: forget its handle.
        match t.kind() {
            Some(OpKind::Timer) => slot.core.user_timer = None,
            Some(OpKind::Timeout) => slot.core.idle_timer = None,
            _ => {}
        }
        if t.raw_kind() == crate::kinds::K_GUARD {
            return self.guard_due(io, idx);
        }
        if t.kind() == Some(OpKind::Close) {
            slot.core.close_timer = None;
            return self.close_deadline_passed(io, idx);
        }
        if slot.core.has(CLOSE_SENT) {
            return;
        }
        match t.kind() {
            Some(OpKind::Timer) => match slot.core.timer_at {
                0 => slot.core.clear(USER_TIMER),
                at if at > now_ms => {
                    slot.core.user_timer = Some(self.ctx.timers.insert(self.ctx.at(at), key));
                }
                _ => {
                    slot.core.clear(USER_TIMER);
                    slot.core.timer_at = 0;
                    call(slot, &mut self.ctx, io, "on_timer", |h, conn| {
                        h.on_timer(conn)
                    });
                }
            },
            Some(crate::tunnel_timer::TUNNEL_TIMER) => self.tunnel_timer_fired(io, idx),
            Some(OpKind::Connect) => {
                slot.core.connect_timer = None; // fired: gone from the timer set
                let tunnel_connecting = slot.core.tunnel.as_ref().is_some_and(|t| t.connecting);
                if slot.core.has(CONNECTING) || tunnel_connecting {
                    slot.core.fail(CloseReason::Error(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect timed out",
                    )));
                    self.ctx.mark_dirty(&mut slot.core);
                }
            }
            _ => {
                let d = slot.core.deadline;
                if d == 0 || slot.core.idle_ms == 0 {
                    slot.core.clear(TIMER);
                    return;
                }
                if d > now_ms {
                    slot.core.idle_timer = Some(self.ctx.timers.insert(self.ctx.at(d), key));
                    return;
                }
                slot.core.clear(TIMER);
                slot.core.deadline = 0;
                io.counters().timeouts += 1;
                call(slot, &mut self.ctx, io, "on_timeout", |h, conn| {
                    h.on_timeout(conn)
                });
                if slot.core.deadline == 0 && slot.core.idle_ms != 0 && !slot.core.has(CLOSING) {
                    let idle = Duration::from_millis(slot.core.idle_ms as u64);
                    self.ctx.set_idle_timeout(&mut slot.core, Some(idle));
                }
            }
        }
    }
}

/// Detaches a received pool buffer's slice from the borrow of `io`.
#[inline]
fn detach(d: &[u8]) -> &'static [u8] {
    // SAFETY: the pool buffer behind `d` is owned by the worker's backend, which
    // outlives this call, and is neither reused nor freed until `Io::recycle` for this
    // completion, which runs after the callback returns. The 'static lifetime never
    // escapes `on_recv`.
    unsafe { std::slice::from_raw_parts(d.as_ptr(), d.len()) }
}
