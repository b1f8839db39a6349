//! Connection ids, outbound connect requests and the worker's mailbox: the data that
//! `Conn::notify` and `Conn::connect_with` queue during a callback. Plain state below
//! the server (the worker context owns the mailbox); connect.rs delivers the mail and
//! opens the connections at the end of the loop turn.

use crate::handler::Handler;
use crate::socket::SocketOptions;
use ringcore_runtime::{OpKind, Token};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

/// Default connect timeout of [`ConnectRequest`] (and client-mode connects).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(crate) fn token(self) -> Token {
        self.0.with_kind(OpKind::Recv)
    }
}

/// An outbound TCP connection to open from a handler ([`Conn::connect_with`](crate::Conn::connect_with)).
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
    pub(crate) to: Token,
    pub(crate) from: Token,
    pub(crate) msg: Box<dyn Any>,
    /// A returned message: `to` is its sender, `from` the connection it missed.
    pub(crate) returned: bool,
}

pub(crate) type Queue = Rc<RefCell<VecDeque<Mail>>>;

/// A worker's mailbox and the connects its handlers asked for this turn.
#[derive(Default)]
pub(crate) struct Mailbox {
    pub(crate) queue: Queue,
    pub(crate) connects: Vec<(ConnectRequest, Box<dyn Handler>, Rc<ConnectState>)>,
}

/// What a [`Connecting`] handle and the worker share about one outbound connect.
#[derive(Default)]
pub(crate) struct ConnectState {
    /// The new connection's token, once its slot exists.
    pub(crate) token: Cell<Option<Token>>,
    /// [`Connecting::cancel`] was called.
    pub(crate) cancelled: Cell<bool>,
}

/// The internal message [`Connecting::cancel`] sends a connection whose slot exists:
/// the worker aborts it (its handler never sees the message).
pub(crate) struct CancelConnect;

/// A handle on an outbound connection opened with [`Conn::connect_with`] (or
/// [`Conn::connect`]), kept by the connection that opened it: its id, once it has
/// one, and a way to abort it at any stage, the connect still pending included.
///
/// A handler that opens a connection for a peer that may leave first (a proxy, a
/// gateway, an outbound call) keeps this and calls [`cancel`](Self::cancel) when
/// that peer goes away: the connect is cancelled at once instead of running to its
/// timeout. Like [`Notifier`], usable from anywhere on the worker (from `on_close`
/// too); not `Send`.
///
/// [`Conn::connect_with`]: crate::Conn::connect_with
/// [`Conn::connect`]: crate::Conn::connect
#[derive(Clone)]
pub struct Connecting {
    pub(crate) state: Rc<ConnectState>,
    pub(crate) queue: Queue,
}

impl Connecting {
    /// The new connection's id: `None` until its socket and slot exist (the end of
    /// the loop turn in which it was asked for), and for good if the socket could not
    /// be made or the connect was cancelled first. Messages
    /// ([`Conn::notify`](crate::Conn::notify)) reach it from then on, before
    /// `on_open` too.
    pub fn id(&self) -> Option<ConnId> {
        self.state.token.get().map(ConnId)
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.get()
    }

    /// Aborts the connection, whatever its stage, at the end of the loop turn: a
    /// socket not yet made is never made (its handler gets `on_close` with
    /// [`CloseReason::Local`](crate::CloseReason::Local) and no `on_open`); a connect
    /// in flight is cancelled (the same `on_close`, no `on_open`); an open connection
    /// is aborted as by [`Conn::abort`](crate::Conn::abort) (queued bytes dropped, a
    /// reset if some were unsent). Nothing happens if it already closed, or on a
    /// second call.
    pub fn cancel(&self) {
        if self.state.cancelled.replace(true) {
            return;
        }
        if let Some(to) = self.state.token.get() {
            self.queue.borrow_mut().push_back(Mail {
                to,
                from: Token::NONE,
                msg: Box::new(CancelConnect),
                returned: false,
            });
        }
    }
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("id", &self.id())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Mailbox {
    /// True if something waits for the next flush.
    pub(crate) fn has_work(&self) -> bool {
        !self.connects.is_empty() || !self.queue.borrow().is_empty()
    }
}

/// Sends messages on behalf of one connection, from anywhere on its worker, even
/// after the connection closed (from `on_close`, say): see [`Conn::notifier`](crate::Conn::notifier). Not
/// `Send`: it belongs to the worker's thread.
#[derive(Clone)]
pub struct Notifier {
    pub(crate) from: Token,
    pub(crate) queue: Queue,
}

impl Notifier {
    /// Queues `msg` for `to`'s [`Handler::on_message`]; see [`Conn::notify`](crate::Conn::notify).
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
