//! # ringcore
//!
//! An io_uring-native, completion-based, thread-per-core server runtime for Linux.
//! One pinned worker per core, each with its own ring (or epoll instance, the automatic
//! fallback), its own `SO_REUSEPORT` listener and its own slab of connections. You
//! write callbacks on a per-connection value; there are no futures.
//!
//! A complete echo server:
//!
//! ```no_run
//! use ringcore::{Conn, ConnInfo, Handler, Runtime, Serve};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
//!         conn.send(data); // queued; leaves in one send at the end of the loop turn
//!         data.len()       // everything consumed
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let rt = Runtime::builder().workers(1).build()?;
//!     rt.serve("127.0.0.1:7000", |_: &ConnInfo| Echo) // returns after SIGINT/SIGTERM
//! }
//! ```
//!
//! See `docs/design.md` for the request path, the slot lifecycle and the token layout.

#![warn(missing_docs)]

pub use ringcore_net as net;
pub use ringcore_runtime as runtime;

#[cfg(feature = "http")]
pub use ringcore_net::http;
/// TLS (rustls) as a handler wrapper; feature `tls`, on by default. See `docs/tls.md`.
#[cfg(feature = "tls")]
pub use ringcore_net::tls;
pub use ringcore_net::{Addr, Closing, PeerCredentials, TcpInfo, TcpStats, ToAddr, UnixAddr};
pub use ringcore_net::{
    CloseReason, Conn, ConnInfo, Connect, ConnectOptions, Factory, Handler, IntoListeners,
    Keepalive, Listeners, Serve, SocketOptions, TunnelOptions, DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_PENDING, DEFAULT_OUTPUT_HIGH_WATER, DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT,
    DEFAULT_TUNNEL_IDLE_TIMEOUT,
};
pub use ringcore_net::{ConnId, ConnectRequest, Connecting, Notifier, DEFAULT_CONNECT_TIMEOUT};
pub use ringcore_net::{
    DatagramFactory, DatagramHandler, Datagrams, ServeUdp, UdpOptions, UdpSockets,
};
pub use ringcore_net::{OffloadFull, OffloadLimits};
pub use ringcore_runtime::{BackendKind, Builder, Config, Counters, Handle, Runtime, Snapshot};
