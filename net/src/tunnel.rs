//! `pipe_to`: a connection becomes a splice tunnel to an upstream address.
//!
//! Both directions move socket -> pipe -> socket by splice, never through user space:
//!
//! ```text
//! dir 0: client --fill--> pipe0 --drain--> upstream
//! dir 1: upstream --fill--> pipe1 --drain--> client
//! ```
//!
//! A direction fills only when its pipe is empty, so at most one pipe's worth
//! ([`PIPE_CHUNK`]) is buffered per direction: a slow reader slows the writer and memory
//! stays flat. `EAGAIN` (no data / socket full) waits on a readiness poll, never spins.
//! End of stream on one side is propagated as `shutdown(SHUT_WR)` on the other once the
//! pipe is drained; when both directions are done, both sockets close. An error on
//! either side (refused, reset, connect timeout) closes both.
//!
//! All of the tunnel's ops carry the client slot's token with service-defined kinds, so
//! the slot (which owns the upstream fd, the pipes and the connect address) outlives
//! every one of them.

use crate::conn::*;
use crate::handler::{CloseReason, Factory};
use crate::kinds::{
    kind, DRAIN, FILL, K_CONNECT, K_UP_CANCEL, K_UP_CLOSE, POLL_IN, POLL_OUT, SHUT,
};
use crate::lifecycle::Use;
use crate::server::Server;
use crate::socket::close_fd;
use crate::tunnel_state::{new_pipe, pipe_fds, Dir, Tunnel};
use ringcore_runtime::token::SERVICE_KIND_BASE;
use ringcore_runtime::{Completion, Io, Op, OpKind, Token};
use std::io;
use std::os::fd::RawFd;

impl Tunnel {
    /// What the tunnel carried, for [`Handler::on_tunnel_closed`](crate::Handler::on_tunnel_closed).
    pub(crate) fn stats(&self) -> crate::TunnelStats {
        crate::TunnelStats {
            upstream: self.target,
            connected: self.connected,
            to_upstream: self.dirs[0].moved,
            to_client: self.dirs[1].moved,
        }
    }
}

impl<F: Factory> Server<F> {
    /// Submits `op` with a tunnel kind through the lifecycle (which refuses it once
    /// closing has gone too far for `u`) and counts it in flight.
    fn tsubmit(&mut self, io: &mut Io, idx: u32, tok: Token, k: u8, op: Op, u: Use) -> bool {
        // SAFETY: tunnel ops reference the connect address boxed in the tunnel (owned by
        // the slot until release, which waits for every op) or no memory at all.
        unsafe { self.arm(io, idx, tok.with_raw_kind(k), op, u) }
    }

    /// Starts or advances a tunnel: connect, then fill/drain both directions.
    pub(crate) fn drive_tunnel(&mut self, io: &mut Io, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let client = core.fd;
        let tok = core.token;
        let Some(t) = core.tunnel.as_mut() else {
            return;
        };
        if t.up < 0 {
            match crate::socket::tcp_socket(&t.target).and_then(|fd| {
                crate::socket::setopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1, "TCP_NODELAY")
                    .map(|_| fd)
                    .inspect_err(|_| close_fd(fd))
            }) {
                Ok(fd) => {
                    // Into the direct table like the client socket (a no-op when off
                    // or full): the tunnel's polls name the slot, its splices keep the
                    // fd. Closed by `close_tunnel_upstream`'s `Op::Close` or
                    // `close_now`, which empty the slot first.
                    io.register_direct(fd);
                    t.up = fd;
                }
                Err(e) => {
                    core.fail(CloseReason::Error(io::Error::new(
                        e.kind(),
                        format!("upstream socket: {e}"),
                    )));
                    self.ctx.mark_dirty(core);
                    return;
                }
            }
            t.connecting = true;
            let (fd, addr, len) = (t.up, t.addr.as_ptr(), t.addr.len);
            let deadline = self.ctx.now + t.timeout;
            let key = tok.with_kind(OpKind::Connect).raw();
            core.connect_timer = Some(self.ctx.timers.insert(deadline, key));
            self.tsubmit(
                io,
                idx,
                tok,
                K_CONNECT,
                Op::Connect {
                    fd,
                    addr,
                    addrlen: len,
                },
                Use::Connect,
            );
            return;
        }
        if !t.connected {
            return;
        }
        let up = t.up;
        let mut ops: Vec<(Use, u8, Op)> = Vec::new();
        for (d, dir) in t.dirs.iter_mut().enumerate() {
            let (src, dst) = if d == 0 { (client, up) } else { (up, client) };
            let (pr, pw) = pipe_fds(dir);
            if dir.in_pipe > 0 && !dir.drain && !dir.poll_out {
                let len = dir.in_pipe.min(u32::MAX as u64) as u32;
                dir.drain = true;
                ops.push((
                    Use::Write,
                    kind(d, DRAIN),
                    Op::Splice {
                        fd_in: pr,
                        off_in: -1,
                        fd_out: dst,
                        off_out: -1,
                        len,
                        more: false,
                    },
                ));
            }
            if dir.in_pipe == 0 && !dir.fill && !dir.poll_in && !dir.eof {
                dir.fill = true;
                let len = PIPE_CHUNK as u32;
                ops.push((
                    Use::Read,
                    kind(d, FILL),
                    Op::Splice {
                        fd_in: src,
                        off_in: -1,
                        fd_out: pw,
                        off_out: -1,
                        len,
                        more: false,
                    },
                ));
            }
            if dir.eof && dir.in_pipe == 0 && !dir.drain && !dir.shut {
                dir.shut = true;
                ops.push((
                    Use::Write,
                    kind(d, SHUT),
                    Op::Shutdown {
                        fd: dst,
                        how: libc::SHUT_WR,
                    },
                ));
            }
        }
        let done = t.dirs.iter().all(|d| d.shut_done);
        if done {
            core.want_close(CloseReason::PeerClosed);
            self.ctx.mark_dirty(core);
        }
        for (u, k, op) in ops {
            // drive_tunnel runs only before closing, so the lifecycle allows these.
            self.tsubmit(io, idx, tok, k, op, u);
        }
    }

    /// A completion of one of the tunnel's ops.
    pub(crate) fn on_tunnel(&mut self, io: &mut Io, c: Completion, idx: u32) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        self.ctx.mark_dirty(core);
        let closing = core.has(CLOSING);
        let Some(t) = core.tunnel.as_mut() else {
            return;
        };
        let k = c.token.raw_kind();
        let err = |e: i32, what: &str| {
            let e = io::Error::from_raw_os_error(e);
            CloseReason::Error(io::Error::new(e.kind(), format!("{what}: {e}")))
        };
        match k {
            K_CONNECT => {
                t.connecting = false;
                // Connected or failed: the connect timeout has nothing left to time.
                if let Some(h) = core.connect_timer.take() {
                    self.ctx.timers.cancel(h);
                }
                if c.result < 0 {
                    let target = t.target;
                    core.fail(err(-c.result, &format!("connect upstream {target}")));
                    return;
                }
                if closing {
                    return;
                }
                for d in &mut t.dirs {
                    match new_pipe() {
                        Ok(p) => d.pipe = Some(p),
                        Err(e) => {
                            core.fail(CloseReason::Error(io::Error::new(
                                e.kind(),
                                format!("pipe: {e}"),
                            )));
                            return;
                        }
                    }
                }
                t.connected = true;
                t.clock.last_active = self.ctx.now_ms();
                io.counters().connects += 1;
                self.arm_tunnel_timer(idx);
            }
            K_UP_CANCEL | K_UP_CLOSE => {}
            _ => {
                let d = ((k - SERVICE_KIND_BASE) / 8) as usize;
                let what = (k - SERVICE_KIND_BASE) % 8;
                let dir = &mut t.dirs[d.min(1)];
                let r = c.result;
                match what {
                    FILL => {
                        dir.fill = false;
                        if r > 0 {
                            dir.in_pipe += r as u64;
                            io.counters().bytes_in += r as u64;
                            t.clock.last_active = self.ctx.now_ms();
                        } else if r == 0 {
                            dir.eof = true;
                            if t.clock.half_closed_at == 0 {
                                t.clock.half_closed_at = self.ctx.now_ms();
                                self.arm_tunnel_timer(idx);
                            }
                        } else if r == -libc::EAGAIN {
                            // Nothing to read: wait for readability (refused once the
                            // connection is closing: nobody would cancel the poll).
                            let src = if d == 0 { core.fd } else { t.up };
                            let tok = core.token;
                            let op = Op::PollReadable { fd: src };
                            if self.tsubmit(io, idx, tok, kind(d, POLL_IN), op, Use::Read) {
                                self.tunnel_dir(idx, d).poll_in = true;
                            }
                        } else if r != -libc::ECANCELED {
                            core.fail(err(
                                -r,
                                if d == 0 {
                                    "read client"
                                } else {
                                    "read upstream"
                                },
                            ));
                        }
                    }
                    DRAIN => {
                        dir.drain = false;
                        if r > 0 {
                            dir.in_pipe -= (r as u64).min(dir.in_pipe);
                            dir.moved += r as u64;
                            io.counters().bytes_out += r as u64;
                            t.clock.last_active = self.ctx.now_ms();
                        } else if r == -libc::EAGAIN {
                            // Destination full: wait for writability (same rule).
                            let dst = if d == 0 { t.up } else { core.fd };
                            let tok = core.token;
                            let op = Op::PollWritable { fd: dst };
                            if self.tsubmit(io, idx, tok, kind(d, POLL_OUT), op, Use::Write) {
                                self.tunnel_dir(idx, d).poll_out = true;
                            }
                        } else if r < 0 && r != -libc::ECANCELED {
                            core.fail(err(
                                -r,
                                if d == 0 {
                                    "write upstream"
                                } else {
                                    "write client"
                                },
                            ));
                        }
                    }
                    POLL_IN => dir.poll_in = false,
                    POLL_OUT => dir.poll_out = false,
                    SHUT => dir.shut_done = true,
                    _ => {}
                }
            }
        }
    }

    /// Direction `d` of slot `idx`'s tunnel (which exists: called from `on_tunnel`).
    fn tunnel_dir(&mut self, idx: u32, d: usize) -> &mut Dir {
        let t = self
            .conns
            .get_mut(idx)
            .and_then(|s| s.value.core.tunnel.as_mut());
        &mut t.expect("tunnel of a tunnel op's slot").dirs[d]
    }

    /// The client token and upstream fd of slot `idx`'s tunnel, if it has an upstream
    /// that is not closing yet.
    fn live_upstream(&mut self, idx: u32) -> Option<(Token, RawFd)> {
        let core = &self.conns.get(idx)?.value.core;
        let t = core.tunnel.as_ref()?;
        (t.up >= 0 && !t.up_closing).then_some((core.token, t.up))
    }

    /// Cancels the ops on a tunnel's upstream fd (from `begin_close`).
    pub(crate) fn cancel_tunnel_upstream(&mut self, io: &mut Io, idx: u32) {
        if let Some((tok, up)) = self.live_upstream(idx) {
            self.tsubmit(
                io,
                idx,
                tok,
                K_UP_CANCEL,
                Op::CancelFd { fd: up },
                Use::Cancel,
            );
        }
    }

    /// Closes a tunnel's upstream fd (from `finish_close`, with nothing in flight).
    pub(crate) fn close_tunnel_upstream(&mut self, io: &mut Io, idx: u32) {
        let Some((tok, up)) = self.live_upstream(idx) else {
            return;
        };
        if let Some(t) = self
            .conns
            .get_mut(idx)
            .and_then(|s| s.value.core.tunnel.as_mut())
        {
            t.up_closing = true;
        }
        // SAFETY: close references no memory. Not through `arm`: like the client's
        // close, it is submitted only by `finish_close`, with nothing in flight.
        if unsafe { io.submit(tok.with_raw_kind(K_UP_CLOSE), Op::Close { fd: up }) }.is_ok() {
            self.conns.op_submitted(idx);
        }
    }
}
