//! Outbound connections from handlers, and messages between the connections of a
//! worker.
//!
//! A callback opens a TCP connection with [`Conn::connect`] (or
//! [`Conn::connect_with`] and a [`ConnectRequest`]); the new connection lives on the
//! same worker, in a slot of the same registry as accepted ones, and its own
//! [`Handler`] gets the usual callbacks there: `on_open` after the connect succeeded,
//! then `on_data`/`on_sent`/`on_eof`/..., and `on_close`. A connect that fails
//! (refused, unreachable, timed out, no fd left) gets `on_close` with
//! [`CloseReason::Error`] and no `on_open`; the error's kind tells which
//! (`ConnectionRefused`, `TimedOut`, ...) and its message names the address.
//!
//! Connections of one worker talk through a mailbox: [`Conn::notify`] (or a
//! [`Notifier`], which also works from `on_close`) queues a message for a [`ConnId`];
//! it is delivered to that connection's [`Handler::on_message`] at the end of the loop
//! turn, on the same thread, in the order sent. A message for a connection that has
//! closed or is closing (its slot is gone or reused: the id's generation no longer
//! matches) is handed back to the sender's [`Handler::on_undelivered`], or dropped if
//! the sender is gone too. Nothing is shared between threads: messages need not be
//! `Send`.
//!
//! ```text
//!  downstream (accepted)                         upstream (Conn::connect)
//!    on_data --notify(up, Body)------mailbox-------> on_message: conn.send(body)
//!    on_message: conn.send(bytes) <---mailbox------- on_data: notify(down, bytes)
//!    on_sent: notify(up, Resume)  ----mailbox------> on_message: resume_reading
//! ```
//!
//! Backpressure between the two is the handlers' business, with the tools every
//! connection has. A forwarding connection turns off the runtime's own coupling of
//! its reading to its output ([`Conn::set_output_limit`]`(0)`): otherwise, with a
//! peer that also stops reading while its output is full (an echo server, an HTTP
//! server answering a large upload), both stop reading and neither queue ever
//! drains. Instead, a side that forwards bytes checks [`Conn::queued_bytes`] against
//! its own mark, tells the other side to [`Conn::pause_reading`], and tells it to
//! resume from `on_sent`. `http::GatewayConn` and
//! `tests/outbound.rs` do exactly this.
//!
//! Limits: a connect's timeout defaults to [`DEFAULT_CONNECT_TIMEOUT`] (10 s); the
//! mailbox is unbounded (every message is the sender's own allocation, delivered in
//! the same or the next loop turn); connections opened by handlers count in
//! `open_conns` like accepted ones and are aborted by the drain deadline like them.

use crate::conn::*;
use crate::guard::call;
use crate::handler::{CloseReason, Conn, Factory, Handler};
use crate::lifecycle::Use;
use crate::mailbox::{CancelConnect, ConnectState, Mail};
pub use crate::mailbox::{ConnId, ConnectRequest, Connecting, Notifier};
use crate::server::Server;
use crate::slot_handler::SlotHandler;
use crate::socket::SocketOptions;
use ringcore_runtime::{Io, Op, OpKind, Token};
use std::any::Any;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Rounds of mail delivered per flush before the rest waits for the next loop turn
/// (a ping-pong between two handlers must not starve the worker's other work).
const MAIL_ROUNDS: usize = 16;

impl Conn<'_> {
    /// This connection's id, for other connections of the worker to
    /// [`notify`](Self::notify) it.
    pub fn id(&self) -> ConnId {
        ConnId(self.core.token)
    }

    /// Queues `msg` for the connection `to` on this worker: its
    /// [`Handler::on_message`] gets it (with this connection's id) at the end of the
    /// loop turn, after this callback returned; messages arrive in the order sent. If
    /// `to` has closed or is closing by then, this connection's
    /// [`Handler::on_undelivered`] gets the message back (if it is still open).
    pub fn notify<M: Any>(&mut self, to: ConnId, msg: M) {
        self.notifier().notify(to, msg);
    }

    /// A handle that sends messages as this connection, usable where no `Conn` is at
    /// hand (in `on_close`, to tell a partner connection that this one is gone).
    pub fn notifier(&self) -> Notifier {
        Notifier {
            from: self.core.token,
            queue: self.ctx.mail.queue.clone(),
        }
    }

    /// Opens a TCP connection to `addr` on this worker, run by `handler`, with the
    /// defaults of [`ConnectRequest`]. See [`connect_with`](Self::connect_with).
    pub fn connect<H: Handler>(&mut self, addr: SocketAddr, handler: H) -> Connecting {
        self.connect_with(ConnectRequest::new(addr), handler)
    }

    /// Opens the TCP connection `req` describes on this worker, run by `handler`.
    /// The socket is created at the end of this loop turn; `handler.on_open` runs
    /// once the connect succeeded (its [`Conn::id`] is the new connection's id: a
    /// handler that must answer its originator carries the originator's
    /// [`id`](Self::id) or [`notifier`](Self::notifier)). Bytes it sends before then
    /// are queued; messages reach it even before `on_open`. With the runtime's
    /// `direct_descriptors` option (io_uring) the socket goes into the worker's
    /// direct-descriptor table like an accepted one (a full table: its plain fd).
    ///
    /// Returns a [`Connecting`] handle: the new connection's id once its slot exists,
    /// and [`Connecting::cancel`], which aborts it at any stage (a connect still in
    /// flight included). Keep it when the connection serves a peer that may leave
    /// before the connect completes, and cancel it then; dropping it changes nothing.
    ///
    /// # Errors
    /// Reported to `handler.on_close` as [`CloseReason::Error`] (no `on_open`): the
    /// kernel's connect error (`ConnectionRefused`, `NetworkUnreachable`, ...),
    /// `TimedOut` after [`ConnectRequest::timeout`], or the socket's creation error
    /// (`EMFILE`: raise `RLIMIT_NOFILE`). The message names the address.
    pub fn connect_with<H: Handler>(&mut self, req: ConnectRequest, handler: H) -> Connecting {
        let state = std::rc::Rc::new(ConnectState::default());
        self.ctx
            .mail
            .connects
            .push((req, Box::new(handler), state.clone()));
        Connecting {
            state,
            queue: self.ctx.mail.queue.clone(),
        }
    }
}

/// Where a new outbound socket comes from: a handler's request or the client mode.
pub(crate) struct Target<'a> {
    pub(crate) addr: crate::addr::Addr,
    pub(crate) timeout: Duration,
    pub(crate) source: Option<IpAddr>,
    pub(crate) socket: &'a SocketOptions,
}

/// Creates the socket for `t`: options, optional source bind. Errors name the address.
pub(crate) fn outbound_socket(t: &Target<'_>) -> io::Result<std::os::fd::RawFd> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    let named = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("connect to {}: {what}: {e}", t.addr))
    };
    let fd = crate::socket::stream_socket(&t.addr).map_err(|e| named("socket", e))?;
    let raw = fd.as_raw_fd();
    t.socket
        .apply(raw)
        .map_err(|e| named("socket options", e))?;
    if let (Some(src), false) = (t.source, t.addr.is_unix()) {
        if src.is_ipv4() {
            crate::socket::set(
                &crate::socket::borrow(raw),
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
                "IP_BIND_ADDRESS_NO_PORT",
            )
            .map_err(|e| named("IP_BIND_ADDRESS_NO_PORT", e))?;
        }
        let src_addr = crate::addr::from_std(&SocketAddr::new(src, 0));
        nix::sys::socket::bind(raw, src_addr.as_sockaddr())
            .map_err(|e| named(&format!("bind source {src}"), io::Error::from(e)))?;
    }
    // Dropping `fd` on an error above closes it.
    Ok(fd.into_raw_fd())
}

impl<F: Factory> Server<F> {
    /// Opens an outbound connection run by `handler`: socket, slot, connect op. A
    /// socket that cannot be made is reported to the handler's `on_close` at once (it
    /// never had a slot). Returns the new connection's token.
    fn start_connect(
        &mut self,
        io: &mut Io,
        t: &Target<'_>,
        handler: Box<dyn Handler>,
    ) -> Option<Token> {
        let fd = match outbound_socket(t) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(worker = self.ctx.worker, "outbound connect failed: {e}");
                self.close_unopened(io, handler, CloseReason::Error(e));
                return None;
            }
        };
        let idx = self.insert_conn(io, fd, SlotHandler::Opened(handler));
        let token = self.conns.get_mut(idx).map(|s| s.value.core.token);
        self.connect_slot(io, idx, t);
        token
    }

    /// `on_close(reason)` for a handler that never had a slot.
    fn close_unopened(&mut self, io: &mut Io, mut handler: Box<dyn Handler>, reason: CloseReason) {
        if catch_unwind(AssertUnwindSafe(|| handler.on_close(reason))).is_err() {
            io.counters().panics += 1;
            crate::guard::log_panic(self.ctx.worker, "on_close");
        }
    }

    /// Arms the connect of the new slot `idx` (its socket made by [`outbound_socket`])
    /// with its cancellable deadline.
    pub(crate) fn connect_slot(&mut self, io: &mut Io, idx: u32, t: &Target<'_>) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let (token, fd) = (core.token, core.fd);
        // io_uring with `direct_descriptors`: like an accepted socket, the outbound one
        // goes into the ring's table (the connect itself keeps the fd; receives, sends,
        // shutdowns and polls after it name the slot). Closed through `Op::Close` as
        // every connection, which empties the slot first. Off, full table, epoll: no-op.
        io.register_direct(fd);
        let addr = match crate::addr::RawAddr::new(&t.addr) {
            Ok(a) => Box::new(a),
            Err(e) => {
                core.fail(CloseReason::Error(e));
                self.ctx.mark_dirty(core);
                return;
            }
        };
        core.set(CONNECTING);
        let (ptr, len) = (addr.as_ptr(), addr.len);
        core.connect_addr = Some(addr);
        let key = token.with_kind(OpKind::Connect).raw();
        core.connect_timer = Some(self.ctx.timers.insert(self.ctx.now + t.timeout, key));
        let op = Op::Connect {
            fd,
            addr: ptr,
            addrlen: len,
        };
        // SAFETY: `addr` is boxed in the slot's `connect_addr` and dropped only after the
        // connect's completion (or with the slot, which outlives every op).
        let armed =
            unsafe { self.arm(io, idx, token.with_kind(OpKind::Connect), op, Use::Connect) };
        if !armed {
            if let Some(s) = self.conns.get_mut(idx) {
                let core = &mut s.value.core;
                core.clear(CONNECTING);
                core.fail(CloseReason::Error(io::Error::other(format!(
                    "connect to {}: could not submit the connect",
                    t.addr
                ))));
                self.ctx.mark_dirty(core);
            }
        }
    }

    /// Opens the connections handlers asked for and delivers the mailbox, a bounded
    /// number of rounds (what is left waits for the next turn: `next_deadline` is
    /// then now).
    pub(crate) fn run_mailbox(&mut self, io: &mut Io) {
        for (req, handler, state) in std::mem::take(&mut self.ctx.mail.connects) {
            if state.cancelled.get() {
                self.close_unopened(io, handler, CloseReason::Local);
                continue;
            }
            let t = Target {
                addr: crate::addr::Addr::Tcp(req.addr),
                timeout: req.timeout,
                source: req.source,
                socket: &req.socket,
            };
            state.token.set(self.start_connect(io, &t, handler));
        }
        for _ in 0..MAIL_ROUNDS {
            let batch = std::mem::take(&mut *self.ctx.mail.queue.borrow_mut());
            if batch.is_empty() {
                return;
            }
            for mail in batch {
                self.deliver(io, mail);
            }
        }
    }

    fn deliver(&mut self, io: &mut Io, mail: Mail) {
        let live = self.conns.get_mut(mail.to.slot()).filter(|s| {
            s.generation() == mail.to.generation() && !s.is_closed() && !s.value.core.has(CLOSING)
        });
        let Some(s) = live else {
            if !mail.returned && mail.from != Token::NONE {
                self.ctx.mail.queue.borrow_mut().push_back(Mail {
                    to: mail.from,
                    from: mail.to,
                    msg: mail.msg,
                    returned: true,
                });
            }
            return;
        };
        if mail.from == Token::NONE && mail.msg.is::<CancelConnect>() {
            // Connecting::cancel: abort, whatever the stage (a pending connect is
            // cancelled by the close).
            s.value.core.want_abort();
            self.ctx.mark_dirty(&mut s.value.core);
            return;
        }
        let (from, msg) = (ConnId(mail.from), mail.msg);
        if mail.returned {
            call(&mut s.value, &mut self.ctx, io, "on_undelivered", |h, c| {
                h.on_undelivered(c, from, msg)
            });
        } else {
            call(&mut s.value, &mut self.ctx, io, "on_message", |h, c| {
                h.on_message(c, from, msg)
            });
        }
        self.ctx.mark_dirty(&mut s.value.core);
    }
}
