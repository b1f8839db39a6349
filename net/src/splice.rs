//! `send_file`: a file region leaves by `sendfile(2)` on the worker (the default,
//! [`Config::sendfile`](ringcore_runtime::Config) with
//! [`SpliceMode::Inline`]), one op per piece of up to [`SENDFILE_CHUNK`] and no pipe;
//! or by splice, file -> pipe -> socket, as a linked pair of splice ops through a pipe
//! from the worker's pool. The backend decides where splices run: `splice(2)` on
//! readiness (epoll); on io_uring per [`SpliceMode`]: inline on the worker, or as
//! `IORING_OP_SPLICE` on io-wq threads (`Ring`; `InlineDrain` arms the fill alone so
//! its drain can run inline). A full socket (`EAGAIN`) waits on a writability poll. A
//! sendfile refused with `EINVAL` (a file or socket without splice support) moves that
//! file to the splice pair, from where it stopped.

use crate::conn::*;
use crate::guard::call;
use crate::handler::{CloseReason, Factory, Handler};
use crate::lifecycle::Use;
use crate::server::Server;
use ringcore_runtime::{Completion, Io, Op, OpKind, SpliceMode};
use std::io;

impl<F: Factory> Server<F> {
    /// Moves the head file segment: file -> pipe and pipe -> socket as a linked pair,
    /// or flushes what is left in the pipe.
    pub(crate) fn drive_splice(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let sendfile = {
            let cfg = io.config();
            cfg.sendfile && cfg.splice_mode == SpliceMode::Inline
        };
        if core.splice.is_none() && sendfile {
            core.splice = Some(SpliceState::sendfile());
        }
        if core.splice.is_none() {
            match self.ctx.take_pipe() {
                Ok(p) => core.splice = Some(p),
                Err(e) => {
                    core.fail(CloseReason::Error(io::Error::new(
                        e.kind(),
                        format!("pipe for splice: {e}"),
                    )));
                    self.ctx.mark_dirty(core);
                    return;
                }
            }
        }
        let fd = core.fd;
        let tok = core.token;
        // The head of the queue is (still) a file: its next piece is the next write.
        let file_next = core.out.head_file().is_some();
        let Some(st) = core.splice.as_mut() else {
            return;
        };
        if st.polling || st.ops > 0 {
            return;
        }
        let Some((pr, pw)) = st.pipe.as_ref().map(|(r, w)| (r.raw(), w.raw())) else {
            let Some(f) = core.out.head_file() else {
                return;
            };
            let len = f.remaining.min(SENDFILE_CHUNK) as u32;
            let op = Op::SendFile {
                fd_file: f.fd.raw(),
                offset: f.offset as i64,
                fd_sock: fd,
                len,
            };
            // SAFETY: sendfile references no user memory. The file stays open while
            // `filling` (even through an abort), as for a splice fill.
            if unsafe { self.arm(io, idx, tok.with_kind(OpKind::SpliceOut), op, Use::Write) } {
                if let Some(st) = self.splice_state(idx) {
                    st.ops += 1;
                    st.filling = true;
                    st.asked = len;
                }
            }
            return;
        };
        if st.in_pipe > 0 {
            let len = st.in_pipe.min(u32::MAX as u64) as u32;
            let out = Op::Splice {
                fd_in: pr,
                off_in: -1,
                fd_out: fd,
                off_out: -1,
                len,
                more: file_next,
            };
            // SAFETY: splice references no user memory.
            if unsafe { self.arm(io, idx, tok.with_kind(OpKind::SpliceOut), out, Use::Write) } {
                if let Some(st) = self.splice_state(idx) {
                    st.ops += 1;
                }
            }
            return;
        }
        let Some(f) = core.out.head_file() else {
            return;
        };
        let len = f.remaining.min(PIPE_CHUNK) as u32;
        // More of this file follows this piece: the socket holds a partial last
        // segment for it (`MSG_MORE`), so a file leaves in full-sized segments and
        // only its end is pushed (as nginx's `sendfile` under `tcp_nopush` does).
        let more = f.remaining > u64::from(len);
        let fill = Op::Splice {
            fd_in: f.fd.raw(),
            off_in: f.offset as i64,
            fd_out: pw,
            off_out: -1,
            len,
            more: false,
        };
        if io.config().splice_mode == SpliceMode::InlineDrain {
            // The fill goes to io_uring alone; its completion drives the drain, which
            // then runs inline (a linked drain would ride along to io-wq).
            // SAFETY: splice references no user memory; the file stays open while
            // `filling` (see below).
            if unsafe { self.arm(io, idx, tok.with_kind(OpKind::Splice), fill, Use::Write) } {
                if let Some(st) = self.splice_state(idx) {
                    st.ops += 1;
                    st.filling = true;
                }
            }
            return;
        }
        let drain = Op::Splice {
            fd_in: pr,
            off_in: -1,
            fd_out: fd,
            off_out: -1,
            len,
            more,
        };
        // SAFETY: splices reference no user memory. Their fds stay open until both
        // complete: the pipe is closed only through the lifecycle with nothing in
        // flight, and the file segment is kept (even by an abort) while `filling`,
        // then retired and closed through `Io` after the fill's completion.
        let armed = unsafe {
            self.arm_linked(
                io,
                idx,
                (tok.with_kind(OpKind::Splice), fill),
                (tok.with_kind(OpKind::SpliceOut), drain),
                Use::Write,
            )
        };
        if armed {
            if let Some(st) = self.splice_state(idx) {
                st.ops += 2;
                st.filling = true;
            }
        }
    }

    fn splice_state(&mut self, idx: u32) -> Option<&mut SpliceState> {
        self.conns.get_mut(idx)?.value.core.splice.as_deref_mut()
    }

    pub(crate) fn on_splice(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let slot = &mut s.value;
        let core = &mut slot.core;
        self.ctx.mark_dirty(core);
        let Some(st) = core.splice.as_mut() else {
            return;
        };
        st.ops = st.ops.saturating_sub(1);
        match c.token.kind() {
            Some(OpKind::Splice) => {
                st.filling = false;
                if c.result > 0 {
                    st.in_pipe += c.result as u64;
                    core.out.file_sent(c.result as u64);
                } else if c.result == 0 {
                    file_ended_early(core);
                } else if c.result != -libc::ECANCELED {
                    core.out.drop_head_file();
                    core.fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
                }
                return;
            }
            Some(OpKind::Poll) => {
                st.polling = false;
                if c.result < 0 && c.result != -libc::ECANCELED {
                    core.fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
                }
                return;
            }
            _ => {}
        }
        // Pipe -> socket, or a sendfile (no pipe): file -> socket.
        let sendfile = st.pipe.is_none();
        if sendfile {
            st.filling = false;
        }
        // A sendfile that moved less than asked filled the socket: wait for room
        // instead of trying again into `EAGAIN` (one syscall saved per fill).
        let full = sendfile && c.result > 0 && (c.result as u32) < st.asked;
        if c.result > 0 {
            if sendfile {
                core.out.file_sent(c.result as u64);
            } else {
                st.in_pipe -= (c.result as u64).min(st.in_pipe);
            }
            io.counters().bytes_out += c.result as u64;
            if core.idle_ms != 0 {
                core.deadline = self.ctx.now_ms() + core.idle_ms as u64;
            }
        } else if sendfile && c.result == 0 {
            file_ended_early(core);
            return;
        } else if sendfile && c.result == -libc::EINVAL && core.out.head_file().is_some() {
            // This file or socket has no sendfile: the rest of the file goes by the
            // splice pair, from where it stopped (the next drive sees the pipe).
            tracing::debug!("ringcore: sendfile refused (EINVAL); splicing this file");
            // The pipe-less state holds no fd: it is simply replaced.
            match self.ctx.take_pipe() {
                Ok(p) => core.splice = Some(p),
                Err(e) => core.fail(CloseReason::Error(io::Error::new(
                    e.kind(),
                    format!("pipe for splice (sendfile refused): {e}"),
                ))),
            }
            return;
        }
        if c.result == -libc::EAGAIN || (full && core.out.head_file().is_some()) {
            // Socket full: wait for writability, then splice again (unless closing
            // began meanwhile: the lifecycle refuses the poll then).
            let (tok, fd) = (core.token.with_kind(OpKind::Poll), core.fd);
            // SAFETY: poll references no memory.
            if unsafe { self.arm(io, idx, tok, Op::PollWritable { fd }, Use::Write) } {
                if let Some(st) = self.splice_state(idx) {
                    st.polling = true;
                    st.ops += 1;
                }
            }
            return;
        } else if c.result < 0 && c.result != -libc::ECANCELED {
            core.fail(CloseReason::Error(io::Error::from_raw_os_error(-c.result)));
            return;
        }
        if st.ops == 0 && st.in_pipe == 0 && core.out.head_file().is_none() {
            if let Some(p) = core.splice.take() {
                self.ctx.give_pipe(io, p);
            }
            if core.out.is_empty() && !core.has(CLOSING) {
                call(slot, &mut self.ctx, io, "on_sent", |h, conn| {
                    h.on_sent(conn)
                });
            }
        }
    }
}

/// A file segment's source ended before the length promised to `send_file`: the
/// segment is dropped and the connection fails (the peer was promised those bytes).
fn file_ended_early(core: &mut ConnCore) {
    core.out.drop_head_file();
    core.fail(CloseReason::Error(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "file ended before the length given to send_file",
    )));
}
