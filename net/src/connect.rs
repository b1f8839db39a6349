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
use crate::handler::{CloseReason, Conn, Factory, Handler};
use crate::lifecycle::Use;
use crate::server::{call, Server};
use crate::socket::SocketOptions;
use ringcore_runtime::{Io, Op, OpKind, Token};
use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

/// Default connect timeout of [`ConnectRequest`] (and client-mode connects).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rounds of mail delivered per flush before the rest waits for the next loop turn
/// (a ping-pong between two handlers must not starve the worker's other work).
const MAIL_ROUNDS: usize = 16;

/// Names a connection on its worker: its slot and the slot's generation. A `ConnId`
/// outlives the connection safely: once the connection closed, messages to it are
/// returned to the sender ([`Handler::on_undelivered`]), even if a new connection
/// took the slot. Meaningful only on the worker that made it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub(crate) Token);

impl std::fmt::Debug for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnId({}/{})", self.0.slot(), self.0.generation())
    }
}

impl ConnId {
    fn token(self) -> Token {
        self.0.with_kind(OpKind::Recv)
    }
}

/// An outbound TCP connection to open from a handler ([`Conn::connect_with`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// The peer to connect to.
    pub addr: SocketAddr,
    /// Connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`], 10 s); a connect still
    /// pending then fails with `TimedOut`.
    pub timeout: Duration,
    /// Source address to bind (port chosen by the kernel); `None`: the kernel picks.
    pub source: Option<IpAddr>,
    /// Socket options of the new socket (default: `TCP_NODELAY` on, no keepalive).
    pub socket: SocketOptions,
}

impl ConnectRequest {
    /// A request for `addr` with the defaults.
    pub fn new(addr: SocketAddr) -> ConnectRequest {
        ConnectRequest {
            addr,
            timeout: DEFAULT_CONNECT_TIMEOUT,
            source: None,
            socket: SocketOptions::default().keepalive(None),
        }
    }

    /// Sets the connect timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sets the source address.
    pub fn source(mut self, ip: IpAddr) -> Self {
        self.source = Some(ip);
        self
    }

    /// Sets the socket options.
    pub fn socket(mut self, o: SocketOptions) -> Self {
        self.socket = o;
        self
    }
}

/// One message in the mailbox.
pub(crate) struct Mail {
    to: Token,
    from: Token,
    msg: Box<dyn Any>,
    /// A returned message: `to` is its sender, `from` the connection it missed.
    returned: bool,
}

type Queue = Rc<RefCell<VecDeque<Mail>>>;

/// A worker's mailbox and the connects its handlers asked for this turn.
#[derive(Default)]
pub(crate) struct Mailbox {
    queue: Queue,
    connects: Vec<(ConnectRequest, Box<dyn Handler>)>,
}

impl Mailbox {
    /// True if something waits for the next flush.
    pub(crate) fn has_work(&self) -> bool {
        !self.connects.is_empty() || !self.queue.borrow().is_empty()
    }
}

/// Sends messages on behalf of one connection, from anywhere on its worker, even
/// after the connection closed (from `on_close`, say): see [`Conn::notifier`]. Not
/// `Send`: it belongs to the worker's thread.
#[derive(Clone)]
pub struct Notifier {
    from: Token,
    queue: Queue,
}

impl Notifier {
    /// Queues `msg` for `to`'s [`Handler::on_message`]; see [`Conn::notify`].
    pub fn notify<M: Any>(&self, to: ConnId, msg: M) {
        self.queue.borrow_mut().push_back(Mail {
            to: to.token(),
            from: self.from,
            msg: Box::new(msg),
            returned: false,
        });
    }

    /// The connection this notifier speaks for.
    pub fn id(&self) -> ConnId {
        ConnId(self.from)
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("from", &self.id())
            .finish()
    }
}

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
    pub fn connect<H: Handler>(&mut self, addr: SocketAddr, handler: H) {
        self.connect_with(ConnectRequest::new(addr), handler);
    }

    /// Opens the TCP connection `req` describes on this worker, run by `handler`.
    /// The socket is created at the end of this loop turn; `handler.on_open` runs
    /// once the connect succeeded (its [`Conn::id`] is the new connection's id: a
    /// handler that must answer its originator carries the originator's
    /// [`id`](Self::id) or [`notifier`](Self::notifier)). Bytes it sends before then
    /// are queued; messages reach it even before `on_open`.
    ///
    /// # Errors
    /// Reported to `handler.on_close` as [`CloseReason::Error`] (no `on_open`): the
    /// kernel's connect error (`ConnectionRefused`, `NetworkUnreachable`, ...),
    /// `TimedOut` after [`ConnectRequest::timeout`], or the socket's creation error
    /// (`EMFILE`: raise `RLIMIT_NOFILE`). The message names the address.
    pub fn connect_with<H: Handler>(&mut self, req: ConnectRequest, handler: H) {
        self.ctx.mail.connects.push((req, Box::new(handler)));
    }
}

/// A slot's handler: the factory's for accepted (and client-mode) connections, or a
/// boxed one for connections a handler opened.
pub(crate) enum SlotHandler<H> {
    /// Made by the server's factory.
    Made(H),
    /// Given to [`Conn::connect_with`].
    Opened(Box<dyn Handler>),
}

macro_rules! forward {
    ($self:ident, $h:ident => $e:expr) => {
        match $self {
            SlotHandler::Made($h) => $e,
            SlotHandler::Opened($h) => $e,
        }
    };
}

// Every `Handler` method must be forwarded here and in the `Box<H>` impl below: a
// missing one would silently run the trait's default instead of the user's.
impl<H: Handler> Handler for SlotHandler<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_open(conn))
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        forward!(self, h => h.on_data(conn, data))
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_sent(conn))
    }
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        forward!(self, h => h.on_fds(conn, fds))
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_eof(conn))
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_timeout(conn))
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_drain(conn))
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        forward!(self, h => h.on_timer(conn))
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn Any + Send>) {
        forward!(self, h => h.on_offload(conn, result))
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        forward!(self, h => h.on_message(conn, from, msg))
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        forward!(self, h => h.on_undelivered(conn, to, msg))
    }
    fn on_closing(&mut self, closing: &crate::Closing) {
        forward!(self, h => h.on_closing(closing))
    }
    fn on_close(&mut self, reason: CloseReason) {
        forward!(self, h => h.on_close(reason))
    }
    fn on_tunnel_closed(&mut self, stats: crate::handler::TunnelStats) {
        forward!(self, h => h.on_tunnel_closed(stats))
    }
}

/// A boxed handler is a handler (a factory may choose the handler type per
/// connection).
impl<H: Handler + ?Sized> Handler for Box<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        (**self).on_open(conn)
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        (**self).on_data(conn, data)
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        (**self).on_sent(conn)
    }
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        (**self).on_fds(conn, fds)
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        (**self).on_eof(conn)
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        (**self).on_timeout(conn)
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        (**self).on_drain(conn)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        (**self).on_timer(conn)
    }
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn Any + Send>) {
        (**self).on_offload(conn, result)
    }
    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        (**self).on_message(conn, from, msg)
    }
    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        (**self).on_undelivered(conn, to, msg)
    }
    fn on_closing(&mut self, closing: &crate::Closing) {
        (**self).on_closing(closing)
    }
    fn on_close(&mut self, reason: CloseReason) {
        (**self).on_close(reason)
    }
    fn on_tunnel_closed(&mut self, stats: crate::handler::TunnelStats) {
        (**self).on_tunnel_closed(stats)
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
    /// never had a slot).
    fn start_connect(&mut self, io: &mut Io, t: &Target<'_>, handler: Box<dyn Handler>) {
        let fd = match outbound_socket(t) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(worker = self.ctx.worker, "outbound connect failed: {e}");
                let mut h = handler;
                if catch_unwind(AssertUnwindSafe(|| h.on_close(CloseReason::Error(e)))).is_err() {
                    io.counters().panics += 1;
                    crate::server::log_panic(self.ctx.worker, "on_close");
                }
                return;
            }
        };
        let idx = self.insert_conn(io, fd, SlotHandler::Opened(handler));
        self.connect_slot(io, idx, t);
    }

    /// Arms the connect of the new slot `idx` (its socket made by [`outbound_socket`])
    /// with its cancellable deadline.
    pub(crate) fn connect_slot(&mut self, io: &mut Io, idx: u32, t: &Target<'_>) {
        let Some(s) = self.conns.get_mut(idx) else {
            return;
        };
        let core = &mut s.value.core;
        let (token, fd) = (core.token, core.fd);
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
        for (req, handler) in std::mem::take(&mut self.ctx.mail.connects) {
            let t = Target {
                addr: crate::addr::Addr::Tcp(req.addr),
                timeout: req.timeout,
                source: req.source,
                socket: &req.socket,
            };
            self.start_connect(io, &t, handler);
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
