//! [`Closing`]: a connection's last look at its sockets, for
//! [`Handler::on_closing`](crate::Handler::on_closing).
//!
//! `on_closing` runs just before the close op is submitted: when nothing else is in
//! flight (`lifecycle.rs`), or, for a graceful close with bytes left, just before
//! the last send is submitted linked to the close. The socket (and a tunnel's upstream
//! socket) is still open then and its kernel state (`TCP_INFO`, `SO_PEERCRED`,
//! addresses) can be read. Every connection
//! passes through it once, however it ends: a graceful close, the peer's reset, an
//! abort, a panic, a tunnel's end, or the drain deadline (the server's call is in
//! `closing_call.rs`).

use crate::tcp_info::TcpInfo;
use std::io;
use std::os::fd::RawFd;

/// A closing connection's sockets, still open while
/// [`Handler::on_closing`](crate::Handler::on_closing) runs. Read-only: nothing can be
/// sent or armed any more.
#[derive(Debug)]
pub struct Closing {
    pub(crate) fd: RawFd,
    /// A tunnel's upstream socket, if one was created (connected or not).
    pub(crate) upstream: Option<RawFd>,
    pub(crate) upstream_connected: bool,
    pub(crate) worker: usize,
}

impl Closing {
    /// A `TCP_INFO` snapshot of the connection's socket (rtt, retransmits, bytes
    /// acked/received, delivery rate, ...), taken now, just before the close.
    ///
    /// # Errors
    /// As [`Conn::tcp_info`](crate::Conn::tcp_info): `Unsupported`-kind for a Unix
    /// socket, or the kernel's error.
    pub fn tcp_info(&self) -> io::Result<TcpInfo> {
        crate::tcp_info::tcp_info(self.fd)
    }

    /// A `TCP_INFO` snapshot of a tunnel's upstream socket
    /// ([`Conn::pipe_to`](crate::Conn::pipe_to)); `None` if the connection was no
    /// tunnel, or its upstream connect never succeeded (refused, timed out, not
    /// started).
    pub fn upstream_tcp_info(&self) -> Option<io::Result<TcpInfo>> {
        let up = self.upstream.filter(|_| self.upstream_connected)?;
        Some(crate::tcp_info::tcp_info(up))
    }

    /// The peer's address, any family (`None` once the kernel forgot it, e.g. after a
    /// reset).
    pub fn peer(&self) -> Option<crate::Addr> {
        crate::addr::peer(self.fd)
    }

    /// The worker that owned the connection.
    pub fn worker_id(&self) -> usize {
        self.worker
    }

    /// The raw socket, for state this API does not cover. Do not close it, read it or
    /// write it: the runtime closes it right after `on_closing` returns.
    pub fn raw_fd(&self) -> RawFd {
        self.fd
    }
}
