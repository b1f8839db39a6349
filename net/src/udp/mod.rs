//! UDP: a datagram handler per worker on a per-worker `SO_REUSEPORT` socket.
//!
//! ```text
//!  kernel: datagram -> io_uring multishot RECVMSG into a pool buffer (epoll: recvmmsg)
//!    -> Completion { kind Datagram, buffer } -> parse (source address, payload, flags)
//!    -> DatagramHandler::on_datagram(ctx, peer, bytes)   (or on_truncated: too large)
//!         ctx.send_to(peer, reply)  -> bounded send queue (full: dropped and counted)
//!    -> end of the loop turn: one SENDMSG SQE per queued datagram (epoll: sendmmsg);
//!       with UdpOptions::gso, one per run of equal datagrams to one peer (UDP_SEGMENT)
//!  timer: ctx.set_timer(at) -> the worker wakes at `at` -> DatagramHandler::on_timer
//! ```
//!
//! A [`DatagramFactory`] makes one [`DatagramHandler`] per worker; the worker's socket
//! is bound with `SO_REUSEPORT`, so the kernel spreads peers over workers (by a hash
//! of the 4-tuple: one peer always reaches the same worker). Serve UDP alone with
//! [`ServeUdp::serve_udp`] or beside a TCP (or Unix) listener in the same runtime with
//! [`ServeUdp::serve_with_udp`]. See `docs/udp.md`.

mod addr;
mod sendq;
mod serve;
mod service;

pub use sendq::{GSO_MAX_SEGMENTS, GSO_MAX_SEGMENT_V4, GSO_MAX_SEGMENT_V6};
pub use serve::{IntoUdpSockets, ServeUdp};
pub use service::DEFAULT_SEND_QUEUE;

use crate::socket::{borrow, set};
use nix::sys::socket::{self as nsock, sockopt as so, AddressFamily, SockFlag, SockType};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

/// The callbacks of one worker's UDP socket. All run on the worker thread and must
/// not block. A panic in a callback is caught and counted (`panics`); the socket
/// goes on.
pub trait DatagramHandler: 'static {
    /// The socket is open and receiving (once, before any datagram).
    fn on_open(&mut self, ctx: &mut Datagrams<'_>) {
        let _ = ctx;
    }
    /// One datagram from `peer` (an IPv4 peer of a dual-stack `[::]` socket is
    /// reported as IPv4). The bytes are valid only during the call.
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]);
    /// A datagram larger than one receive buffer arrived: `prefix` is what fit. It is
    /// never passed to `on_datagram` (counted in `datagrams_truncated`). Default: drop.
    fn on_truncated(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, prefix: &[u8]) {
        let _ = (ctx, peer, prefix);
    }
    /// A send to `peer` (`Some`) or a receive (`None`) failed; counted in
    /// `datagram_errors`. Default: nothing (the socket goes on).
    fn on_error(&mut self, ctx: &mut Datagrams<'_>, peer: Option<SocketAddr>, err: &io::Error) {
        let _ = (ctx, peer, err);
    }
    /// The timer set with [`Datagrams::set_timer`] is due (once per setting; set it
    /// again from here for a periodic timer). Sends queued here leave at the end of the
    /// loop turn like any others. Default: nothing.
    fn on_timer(&mut self, ctx: &mut Datagrams<'_>) {
        let _ = ctx;
    }
    /// Graceful shutdown began: receiving has stopped; replies queued now still leave.
    fn on_drain(&mut self, ctx: &mut Datagrams<'_>) {
        let _ = ctx;
    }
    /// The socket is closed and nothing is in flight any more.
    fn on_close(&mut self) {}
}

/// Makes the handler of each worker's UDP socket; shared by every worker.
pub trait DatagramFactory: Send + Sync + 'static {
    /// The handler type.
    type Handler: DatagramHandler;
    /// Called once on worker `worker`'s thread.
    fn make(&self, worker: usize) -> Self::Handler;
}

impl<F, H> DatagramFactory for F
where
    F: Fn(usize) -> H + Send + Sync + 'static,
    H: DatagramHandler,
{
    type Handler = H;
    fn make(&self, worker: usize) -> H {
        self(worker)
    }
}

/// The reply path handed to every [`DatagramHandler`] callback.
///
/// Sends are queued and leave together when the loop turn ends. The queue is bounded
/// ([`UdpOptions::send_queue`], default [`DEFAULT_SEND_QUEUE`] datagrams queued or in
/// flight): a send to a full queue is dropped, counted in `datagrams_dropped`, and
/// `send_to` returns `false`. Nothing here ever blocks the worker.
pub struct Datagrams<'a> {
    pub(crate) q: &'a mut sendq::SendQueue,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) worker: usize,
    pub(crate) draining: bool,
    pub(crate) timer: &'a mut Option<std::time::Instant>,
    pub(crate) now: std::time::Instant,
}

impl Datagrams<'_> {
    /// Queues `bytes` for `peer`. Returns `false` (and counts a drop) when the send
    /// queue is full or the socket is closing. A datagram over the path's limit fails
    /// in the kernel (`EMSGSIZE`) and reaches [`DatagramHandler::on_error`].
    pub fn send_to(&mut self, peer: SocketAddr, bytes: &[u8]) -> bool {
        self.q.queue(peer, bytes)
    }

    /// True while sends to one peer are coalesced into GSO runs on this socket:
    /// [`UdpOptions::gso`] was set and the kernel has not refused a run (after a
    /// refusal it stays off for the socket's life).
    pub fn gso(&self) -> bool {
        self.q.gso
    }

    /// Datagrams queued or in flight on this socket now (a GSO run counts each of
    /// its datagrams).
    pub fn queued(&self) -> usize {
        self.q.len()
    }

    /// The send queue's bound ([`UdpOptions::send_queue`]).
    pub fn queue_limit(&self) -> usize {
        self.q.limit()
    }

    /// The socket's bound address (`None` if `getsockname` failed).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Index of the worker this socket belongs to.
    pub fn worker_id(&self) -> usize {
        self.worker
    }

    /// True once graceful shutdown began on this worker.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Calls [`DatagramHandler::on_timer`] once `at` has passed (the worker wakes for
    /// it; a past instant fires at the end of this loop turn); `None` cancels. One
    /// timer per socket, that is per worker: setting it again replaces it. It keeps
    /// running through a graceful drain; one still set when the socket closes never
    /// fires.
    pub fn set_timer(&mut self, at: Option<std::time::Instant>) {
        *self.timer = at;
    }

    /// The instant the timer is set to, if it is set.
    pub fn timer(&self) -> Option<std::time::Instant> {
        *self.timer
    }

    /// The time at the start of this loop turn (read once per turn: use it to compute
    /// timer deadlines without a clock call).
    pub fn now(&self) -> std::time::Instant {
        self.now
    }
}

/// Options of the per-worker UDP sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpOptions {
    /// `IPV6_V6ONLY` on IPv6 sockets (default `false`: `[::]:PORT` receives IPv4 too).
    pub v6only: bool,
    /// `SO_RCVBUF` in bytes (default: the kernel's, `net.core.rmem_default`; capped by
    /// `net.core.rmem_max`).
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` in bytes (default: the kernel's; capped by `net.core.wmem_max`).
    pub send_buffer: Option<usize>,
    /// Datagrams queued or in flight per socket before sends are dropped (default
    /// [`DEFAULT_SEND_QUEUE`]).
    pub send_queue: usize,
    /// UDP GSO (`UDP_SEGMENT`, Linux 4.18; default `false`): consecutive
    /// [`send_to`](Datagrams::send_to)s of one loop turn to the same peer leave as one
    /// send when every datagram but the last of the run has the same size and the last
    /// is no larger; the kernel cuts the run back into datagrams, so the peer sees
    /// exactly the datagrams sent. Limits: at most [`GSO_MAX_SEGMENTS`] datagrams and
    /// 65,507 bytes per run; only datagrams of 1 to [`GSO_MAX_SEGMENT_V4`] (1472) bytes
    /// to IPv4 peers, [`GSO_MAX_SEGMENT_V6`] (1452) to IPv6 peers join one (larger
    /// ones go alone: the kernel refuses a run whose segment exceeds the path MTU,
    /// where a single datagram would be fragmented). When the kernel refuses a run
    /// (`EIO`: no checksum offload on the route; `EINVAL`: e.g. a path MTU below 1500;
    /// `EOPNOTSUPP`, `ENOPROTOOPT`), GSO is turned off for that socket with one
    /// warning and the run's datagrams are sent one by one: none is lost.
    /// docs/udp.md has the measurements.
    pub gso: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            v6only: false,
            recv_buffer: None,
            send_buffer: None,
            send_queue: DEFAULT_SEND_QUEUE,
            gso: false,
        }
    }
}

impl UdpOptions {
    /// Sets [`v6only`](Self::v6only).
    pub fn v6only(mut self, v: bool) -> Self {
        self.v6only = v;
        self
    }
    /// Sets [`recv_buffer`](Self::recv_buffer).
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }
    /// Sets [`send_buffer`](Self::send_buffer).
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }
    /// Sets [`send_queue`](Self::send_queue) (at least 1).
    pub fn send_queue(mut self, datagrams: usize) -> Self {
        self.send_queue = datagrams.max(1);
        self
    }
    /// Sets [`gso`](Self::gso).
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }
}

/// What each worker's send queue needs from [`UdpOptions`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct SendSettings {
    pub(crate) queue: usize,
    pub(crate) gso: bool,
}

impl SendSettings {
    fn of(opts: &UdpOptions) -> SendSettings {
        SendSettings {
            queue: opts.send_queue.max(1),
            gso: opts.gso,
        }
    }
}

/// One bound UDP socket per worker, all on the same address.
#[derive(Debug)]
pub struct UdpSockets {
    fds: Vec<RawFd>,
    addr: SocketAddr,
    send: SendSettings,
}

impl UdpSockets {
    /// Binds `count` `SO_REUSEPORT` UDP sockets on `addr` (`"127.0.0.1:9000"`,
    /// `"[::]:9000"`, a `SocketAddr`); with port 0 the first bind picks the port and
    /// the others reuse it. Each socket reports kernel drops (`SO_RXQ_OVFL`).
    ///
    /// # Errors
    /// Resolution failure, a Unix address, port in use, permission denied: the message
    /// names the address and what to do. Nothing stays open on error.
    pub fn bind<A: ToSocketAddrs>(
        addr: A,
        count: usize,
        opts: &UdpOptions,
    ) -> io::Result<UdpSockets> {
        let mut want = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP address resolved to nothing",
            )
        })?;
        let mut s = UdpSockets {
            fds: Vec::with_capacity(count.max(1)),
            addr: want,
            send: SendSettings::of(opts),
        };
        for _ in 0..count.max(1) {
            let fd = bind_one(&want, opts)?;
            s.fds.push(fd);
            if want.port() == 0 {
                if let Some(a) = crate::addr::local_addr(fd) {
                    want.set_port(a.port());
                }
            }
        }
        s.addr = want;
        Ok(s)
    }

    /// Binds `count` sockets on `addr`, each on its own port when the port is 0 (a
    /// client's sources: replies to one socket come back to that socket, so each
    /// worker sees the answers to its own sends). With a fixed port this is
    /// [`bind`](Self::bind).
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn bind_distinct(
        addr: SocketAddr,
        count: usize,
        opts: &UdpOptions,
    ) -> io::Result<UdpSockets> {
        if addr.port() != 0 {
            return Self::bind(addr, count, opts);
        }
        let mut s = UdpSockets {
            fds: Vec::with_capacity(count.max(1)),
            addr,
            send: SendSettings::of(opts),
        };
        for _ in 0..count.max(1) {
            s.fds.push(bind_one(&addr, opts)?);
        }
        if let Some(a) = crate::addr::local_addr(s.fds[0]) {
            s.addr = a;
        }
        Ok(s)
    }

    /// The bound address (with the port the kernel picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sockets' fds, one per worker (for reading or setting options this crate
    /// does not cover; do not close them).
    pub fn fds(&self) -> &[RawFd] {
        &self.fds
    }

    /// Number of sockets (one per worker).
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True when no socket is bound.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    pub(crate) fn into_parts(mut self) -> (Vec<RawFd>, SendSettings) {
        (std::mem::take(&mut self.fds), self.send)
    }
}

impl Drop for UdpSockets {
    fn drop(&mut self) {
        for &fd in &self.fds {
            crate::socket::close_fd(fd);
        }
    }
}

fn bind_one(addr: &SocketAddr, opts: &UdpOptions) -> io::Result<RawFd> {
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = nsock::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("socket() for udp {addr}: {e}"))
    })?;
    let b = borrow(fd.as_raw_fd());
    set(&b, so::ReusePort, &true, "SO_REUSEPORT")?;
    if addr.is_ipv6() {
        set(&b, so::Ipv6V6Only, &opts.v6only, "IPV6_V6ONLY")?;
    }
    if let Some(n) = opts.recv_buffer {
        set(&b, so::RcvBuf, &n, "SO_RCVBUF")?;
    }
    if let Some(n) = opts.send_buffer {
        set(&b, so::SndBuf, &n, "SO_SNDBUF")?;
    }
    set(&b, so::RxqOvfl, &1, "SO_RXQ_OVFL")?;
    let sa = nsock::SockaddrStorage::from(*addr);
    nsock::bind(fd.as_raw_fd(), &sa).map_err(|e| crate::listener::bind_error(addr, e.into()))?;
    Ok(fd.into_raw_fd())
}

pub use addr::{parse_sockaddr, MAX_DATAGRAM};

/// The largest datagram delivered whole with receive buffers of `buf_size` bytes
/// (`Builder::buf_size`): each buffer also holds a 16-byte header, 32 bytes of source
/// address and 24 of control data. Larger datagrams reach
/// [`DatagramHandler::on_truncated`].
pub fn payload_capacity(buf_size: usize) -> usize {
    buf_size.saturating_sub(
        ringcore_runtime::op::datagram::RECVMSG_HEADER + service::NAME_CAP + service::CONTROL_CAP,
    )
}
