//! # ringcore-net
//!
//! Sockets, per-worker `SO_REUSEPORT` listeners, the connection state machine and the
//! callback handler API of ringcore, on top of `ringcore-runtime`'s workers.
//!
//! A [`Factory`] makes one [`Handler`] per accepted connection; the handler's callbacks
//! (`on_open`, `on_data`, `on_sent`, `on_eof`, `on_timeout`, `on_close`) get a [`Conn`]
//! through which they send, shut down, close, pause reading and set timers.

#![warn(missing_docs)]

pub mod addr;
mod closing;
mod closing_call;
mod conn;
mod connect;
mod dataflow;
pub mod fdpass;
mod fdpass_recv;
mod guard;
mod handler;
mod hangup;
#[cfg(feature = "http")]
pub mod http;
mod iofd;
mod kinds;
mod layer;
mod lifecycle;
mod listener;
mod mailbox;
mod offload;
mod outbound;
mod outbound_opts;
mod pending;
mod per_worker;
mod reason;
mod recvhold;
mod scm;
mod server;
mod slot_handler;
mod slot_size;
pub mod socket;
pub mod sockopt;
mod splice;
pub mod systemd;
pub mod tcp_info;
pub mod tcp_stats;
#[cfg(feature = "tls")]
pub mod tls;
mod tunnel;
mod tunnel_state;
mod tunnel_timer;
pub mod udp;
mod unix;
mod wqueue;
mod zchold;

pub use addr::{Addr, PeerCredentials, ToAddr, UnixAddr};
pub use closing::Closing;
pub use conn::{DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_PENDING, DEFAULT_OUTPUT_HIGH_WATER};
pub use handler::{CloseReason, Conn, ConnInfo, Factory, Handler, TunnelStats};
pub use listener::Listeners;
pub use mailbox::{ConnId, ConnectRequest, Connecting, Notifier, DEFAULT_CONNECT_TIMEOUT};
pub use offload::{OffloadFull, OffloadLimits, DEFAULT_OFFLOAD_QUEUE, DEFAULT_OFFLOAD_THREADS};
pub use outbound::Connect;
pub use outbound_opts::ConnectOptions;
pub use server::{IntoListeners, Serve, SHARED_ACCEPT_DEPTH};
pub use socket::{Keepalive, SocketOptions};
pub use tcp_info::TcpInfo;
pub use tcp_stats::TcpStats;
pub use tunnel_state::{
    TunnelOptions, DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT, DEFAULT_TUNNEL_IDLE_TIMEOUT,
};
pub use udp::{DatagramFactory, DatagramHandler, Datagrams, ServeUdp, UdpOptions, UdpSockets};
