//! One worker's UDP socket as a runtime [`Service`]: the armed multishot receive, the
//! send queue, drain and close.
//!
//! Every op of the socket carries [`OpKind::Datagram`]; the token's slot field says
//! which op it is: a send's slab index (below the queue limit), or one of the reserved
//! values [`RECV`], [`CANCEL`], [`CLOSE`].
//!
//! ```text
//! state      event                         action
//! running    flush, receive not armed      arm RecvMsgMulti (after an error: 10 ms later)
//! running    recv CQE with buffer          parse -> on_datagram / on_truncated; recycle
//! running    recv CQE without F_MORE       not armed (ENOBUFS: counted, re-armed at flush)
//! running    flush, sends queued           one SendMsg per slot (slot owns the memory):
//!                                          one datagram, or a GSO run (UDP_SEGMENT cmsg)
//! any        run refused (EIO, EINVAL, ..)  GSO off for the socket; run split, re-queued
//! any        flush/expire, timer due           on_timer (its sends leave at that flush)
//! draining   drain()                       cancel the receive; on_drain; sends go on
//! draining   no receive, nothing queued    Close; closed -> on_close; done
//! aborted    abort()                       queued sends dropped; CancelFd; then as above
//! ```

use super::sendq::{SendQueue, SendSlot};
use super::{parse_sockaddr, DatagramHandler, Datagrams, SendSettings};
use ringcore_runtime::op::datagram::{RecvMsg, RECVMSG_HEADER};
use ringcore_runtime::{Completion, Io, Op, OpKind, RateLimit, Service, Token};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Default bound of a socket's send queue (datagrams queued or in flight).
pub const DEFAULT_SEND_QUEUE: usize = 1024;

/// Token slot of the multishot receive.
pub(crate) const RECV: u32 = u32::MAX - 1;
/// Token slot of the receive's cancel (or the abort's cancel-all).
pub(crate) const CANCEL: u32 = u32::MAX - 2;
/// Token slot of the socket's close.
pub(crate) const CLOSE: u32 = u32::MAX - 3;

/// Name bytes reserved per received buffer (a `sockaddr_in6` is 28).
pub(crate) const NAME_CAP: usize = 32;
/// Control bytes reserved per received buffer: one `SO_RXQ_OVFL` cmsg (a `u32`).
pub(crate) const CONTROL_CAP: usize = 24;
/// Wait before re-arming a receive that failed with an error other than `ENOBUFS`.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Generation of every token of the socket: its slots are never reused while an op
/// of theirs is in flight, so a completion under any other generation is stale.
const GENERATION: u32 = 0;

fn token(slot: u32) -> Token {
    Token::new(slot, GENERATION, OpKind::Datagram)
}

/// The errors with which the kernel refuses a GSO send it would have sent as single
/// datagrams (net/ipv4/udp.c `udp_send_skb`, net/ipv6/udp.c): `EIO` (no checksum
/// offload on the route, or xfrm), `EINVAL` (segment plus headers above the path MTU,
/// too many segments, checksums off), `EOPNOTSUPP` / `ENOPROTOOPT` (no `UDP_SEGMENT`).
fn gso_refusal(errno: i32) -> bool {
    matches!(
        errno,
        libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT
    )
}

/// One worker's UDP socket.
pub(crate) struct UdpService<H: DatagramHandler> {
    fd: RawFd,
    handler: H,
    q: SendQueue,
    local: Option<SocketAddr>,
    worker: usize,
    /// INVARIANT: boxed and unmodified while the receive is armed (the kernel reads its
    /// two capacities; the epoll backend keeps the pointer).
    template: Box<libc::msghdr>,
    armed: bool,
    /// Receive, cancel and close ops in flight (sends are in `q.in_flight`).
    ops: u32,
    rearm_at: Option<Instant>,
    /// The handler's timer ([`Datagrams::set_timer`]): `on_timer` runs at this instant.
    timer: Option<Instant>,
    draining: bool,
    aborted: bool,
    closing: bool,
    closed: bool,
    /// Last `SO_RXQ_OVFL` value seen (the kernel's running drop count).
    ovfl: u32,
    error_log: RateLimit,
}

impl<H: DatagramHandler> UdpService<H> {
    pub(crate) fn new(fd: RawFd, handler: H, worker: usize, send: SendSettings) -> Self {
        let local = crate::addr::local_addr(fd);
        let v6 = local.is_some_and(|a| a.is_ipv6());
        // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
        let mut template: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        template.msg_namelen = NAME_CAP as libc::socklen_t;
        template.msg_controllen = CONTROL_CAP as _;
        UdpService {
            fd,
            handler,
            q: SendQueue::new(send.queue, v6, send.gso),
            local,
            worker,
            template,
            armed: false,
            ops: 0,
            rearm_at: None,
            timer: None,
            draining: false,
            aborted: false,
            closing: false,
            closed: false,
            ovfl: 0,
            error_log: RateLimit::new(Duration::from_secs(1)),
        }
    }

    /// Runs one callback with the reply path; a panic is caught, counted and logged.
    fn call(&mut self, io: &mut Io, what: &str, f: impl FnOnce(&mut H, &mut Datagrams<'_>)) {
        let mut ctx = Datagrams {
            q: &mut self.q,
            local: self.local,
            worker: self.worker,
            draining: self.draining,
            timer: &mut self.timer,
            now: io.now(),
        };
        let h = &mut self.handler;
        if catch_unwind(AssertUnwindSafe(|| f(h, &mut ctx))).is_err() {
            io.counters().panics += 1;
            tracing::error!(
                worker = self.worker,
                "ringcore: a UDP {what} callback panicked; the socket goes on"
            );
        }
    }

    fn arm(&mut self, io: &mut Io) {
        if self.armed || self.closing || self.draining {
            return;
        }
        if self.rearm_at.is_some_and(|t| t > io.now()) {
            return;
        }
        self.rearm_at = None;
        let op = Op::RecvMsgMulti {
            fd: self.fd,
            msg: &*self.template,
        };
        // SAFETY: the template is boxed, owned by `self` and unmodified until the
        // receive's final completion (`armed` turns false only then; `self` outlives
        // every op: the worker frees it only when `is_done`).
        if unsafe { io.submit(token(RECV), op) }.is_ok() {
            self.armed = true;
            self.ops += 1;
        }
    }

    fn on_recv(&mut self, io: &mut Io, c: Completion) {
        if !c.more() {
            self.armed = false;
            self.ops -= 1;
        }
        if c.result < 0 {
            io.recycle(&c);
            match -c.result {
                libc::ENOBUFS => io.counters().enobufs += 1,
                libc::ECANCELED => {}
                errno => {
                    io.counters().datagram_errors += 1;
                    self.rearm_at = Some(io.now() + ERROR_BACKOFF);
                    let err = io::Error::from_raw_os_error(errno);
                    if let Some(held_back) = self.error_log.allow(io.now()) {
                        tracing::warn!(worker = self.worker, error = %err, held_back,
                            "UDP receive failed; re-armed in 10 ms (counted in datagram_errors)");
                    }
                    self.call(io, "on_error", |h, ctx| h.on_error(ctx, None, &err));
                }
            }
            return;
        }
        // The handler reads the pool buffer in place: `io` is only borrowed shared
        // until the callback returns, then the buffer goes back.
        let mut ctx = Datagrams {
            q: &mut self.q,
            local: self.local,
            worker: self.worker,
            draining: self.draining,
            timer: &mut self.timer,
            now: io.now(),
        };
        let h = &mut self.handler;
        let (r, drops, peer, truncated, len) =
            match RecvMsg::parse(io.received(&c), NAME_CAP, CONTROL_CAP) {
                None => (Ok(()), None, None, false, 0),
                Some(m) => {
                    let mut drops = None;
                    for (level, kind, data) in m.cmsgs() {
                        if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL && data.len() >= 4
                        {
                            drops = Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]]));
                        }
                    }
                    let peer = parse_sockaddr(m.name);
                    let truncated = m.truncated();
                    let r = match peer {
                        Some(peer) => catch_unwind(AssertUnwindSafe(|| {
                            if truncated {
                                h.on_truncated(&mut ctx, peer, m.payload)
                            } else {
                                h.on_datagram(&mut ctx, peer, m.payload)
                            }
                        })),
                        None => Ok(()),
                    };
                    (r, drops, peer, truncated, m.payload.len())
                }
            };
        io.recycle(&c);
        let counters = io.counters();
        if truncated {
            counters.datagrams_truncated += 1;
        } else if peer.is_some() {
            counters.datagrams_in += 1;
            counters.bytes_in += len as u64;
        }
        if let Some(v) = drops {
            counters.datagrams_kernel_dropped += u64::from(v.wrapping_sub(self.ovfl));
            self.ovfl = v;
        }
        if r.is_err() {
            counters.panics += 1;
            tracing::error!(
                worker = self.worker,
                "ringcore: a UDP on_datagram callback panicked; the socket goes on"
            );
        }
    }

    fn on_sent(&mut self, io: &mut Io, c: Completion) {
        let idx = c.token.slot() as usize;
        let Some(s) = self.q.in_flight.try_remove(idx) else {
            debug_assert!(false, "send completion for a free slot: {c:?}");
            return;
        };
        let segs = s.segs as u64;
        if c.result >= 0 {
            let counters = io.counters();
            counters.datagrams_out += segs;
            counters.bytes_out += c.result as u64;
            if s.is_run() {
                counters.datagram_gso_sends += 1;
            }
        } else if c.result == -libc::ECANCELED {
            io.counters().datagrams_dropped += segs;
        } else if s.is_run() && gso_refusal(-c.result) {
            if !self.aborted {
                self.gso_refused(io, s, -c.result);
                return;
            }
            // Aborted: the queue is cut, so the run's datagrams are dropped with it.
            io.counters().datagrams_dropped += segs;
        } else {
            io.counters().datagram_errors += segs;
            let err = io::Error::from_raw_os_error(-c.result);
            let peer = s.peer;
            self.call(io, "on_error", |h, ctx| h.on_error(ctx, Some(peer), &err));
        }
        self.q.recycle(s);
    }

    /// The kernel refused a GSO run: GSO goes off for this socket (one warning) and the
    /// run's datagrams are queued again one by one, ahead of what was queued since, to
    /// leave at this turn's flush.
    fn gso_refused(&mut self, io: &mut Io, run: Box<SendSlot>, errno: i32) {
        if self.q.gso {
            self.q.gso = false;
            io.counters().datagram_gso_fallbacks += 1;
            tracing::warn!(
                worker = self.worker,
                error = %io::Error::from_raw_os_error(errno),
                segments = run.segs,
                "the kernel refused a UDP GSO send; GSO is off for this socket and its \
                 datagrams are sent one by one"
            );
        }
        let mut parts = self.q.split(run);
        parts.append(&mut self.q.pending);
        self.q.pending = parts;
    }

    fn send_queued(&mut self, io: &mut Io) {
        if self.q.pending.is_empty() {
            return;
        }
        for s in std::mem::take(&mut self.q.pending) {
            if s.is_run() && !self.q.gso {
                // Queued before GSO was turned off.
                for one in self.q.split(s) {
                    self.submit_send(io, one);
                }
            } else {
                self.submit_send(io, s);
            }
        }
    }

    fn submit_send(&mut self, io: &mut Io, s: Box<SendSlot>) {
        let idx = self.q.in_flight.insert(s);
        let msg = self.q.in_flight[idx].prepare();
        // SAFETY: the header, its iovec, address, control data and bytes live in the
        // boxed slot held by `in_flight` until this send's completion removes it (the
        // kernel may read the UDP_SEGMENT cmsg until then too).
        if unsafe { io.submit(token(idx as u32), Op::SendMsg { fd: self.fd, msg }) }.is_err() {
            let s = self.q.in_flight.remove(idx);
            io.counters().datagrams_dropped += s.segs as u64;
            self.q.recycle(s);
        }
    }

    fn maybe_close(&mut self, io: &mut Io) {
        if !self.draining || self.closing || self.armed || self.ops > 0 {
            return;
        }
        if !self.q.pending.is_empty() || !self.q.in_flight.is_empty() {
            return;
        }
        self.closing = true;
        self.q.closed = true;
        // SAFETY: a close references no memory.
        if unsafe { io.submit(token(CLOSE), Op::Close { fd: self.fd }) }.is_ok() {
            self.ops += 1;
        } else {
            self.closed = true;
        }
    }
}

impl<H: DatagramHandler> Service for UdpService<H> {
    fn start(&mut self, io: &mut Io) -> io::Result<()> {
        let overhead = RECVMSG_HEADER + NAME_CAP + CONTROL_CAP;
        if io.buffer_size() <= overhead {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "receive buffers of {} bytes cannot hold a datagram: UDP needs more \
                     than {overhead} bytes per buffer (raise buf_size)",
                    io.buffer_size()
                ),
            ));
        }
        // io_uring with `direct_descriptors`: the socket's receive and sends name a
        // registered-table slot from here on; it keeps its fd, and its close
        // (`Op::Close`) empties the slot first. Off, full table or epoll: a no-op.
        io.register_direct(self.fd);
        self.arm(io);
        self.call(io, "on_open", |h, ctx| h.on_open(ctx));
        self.send_queued(io);
        Ok(())
    }

    fn complete(&mut self, io: &mut Io, c: Completion) {
        if c.token.generation() != GENERATION {
            // Stale (ARCHITECTURE.md decision 3): it reaches no slot and no callback.
            io.counters().stale += 1;
            io.recycle(&c);
            return;
        }
        match c.token.slot() {
            RECV => self.on_recv(io, c),
            CANCEL => self.ops -= 1,
            CLOSE => {
                self.ops -= 1;
                self.closed = true;
                self.fd = -1;
                self.call(io, "on_close", |h, _| h.on_close());
            }
            _ => self.on_sent(io, c),
        }
    }

    fn expire(&mut self, io: &mut Io) {
        // One timer per socket; a timer still set when the socket closed never fires.
        if self.closed || self.timer.is_none_or(|t| t > io.now()) {
            return;
        }
        self.timer = None;
        self.call(io, "on_timer", |h, ctx| h.on_timer(ctx));
    }

    fn flush(&mut self, io: &mut Io) {
        self.send_queued(io);
        let dropped = std::mem::take(&mut self.q.dropped);
        io.counters().datagrams_dropped += dropped;
        self.arm(io);
        self.maybe_close(io);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let rearm = self.rearm_at.filter(|_| !self.armed && !self.draining);
        let timer = self.timer.filter(|_| !self.closed);
        match (rearm, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn drain(&mut self, io: &mut Io) {
        if self.draining {
            return;
        }
        self.draining = true;
        if self.armed {
            let op = Op::Cancel {
                fd: self.fd,
                target: token(RECV),
            };
            // SAFETY: a cancel references no memory.
            if unsafe { io.submit(token(CANCEL), op) }.is_ok() {
                self.ops += 1;
            }
        }
        self.call(io, "on_drain", |h, ctx| h.on_drain(ctx));
    }

    fn abort(&mut self, io: &mut Io) {
        self.drain(io);
        if self.aborted || self.closing {
            return;
        }
        self.aborted = true;
        let cut: usize = self.q.pending.iter().map(|s| s.segs).sum();
        for s in std::mem::take(&mut self.q.pending) {
            self.q.recycle(s);
        }
        io.counters().datagrams_dropped += cut as u64;
        self.q.closed = true;
        if !self.q.in_flight.is_empty() || self.armed {
            // SAFETY: a cancel references no memory.
            if unsafe { io.submit(token(CANCEL), Op::CancelFd { fd: self.fd }) }.is_ok() {
                self.ops += 1;
            }
        }
    }

    fn is_done(&self) -> bool {
        self.closed && self.ops == 0 && self.q.in_flight.is_empty() && !self.armed
    }
}

impl<H: DatagramHandler> Drop for UdpService<H> {
    fn drop(&mut self) {
        // Only when the worker ends without draining (an error): a direct-descriptor
        // slot of the socket is then released with the ring, right after.
        if self.fd >= 0 && !self.closing {
            crate::socket::close_fd(self.fd);
        }
    }
}
