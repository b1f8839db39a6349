//! Client mode's settings ([`ConnectOptions`]) and what a worker keeps of them
//! ([`Outbound`]): plain data below the server (outbound.rs runs client mode).

use crate::socket::SocketOptions;
use std::time::Duration;

/// Outbound connections a client-mode worker opens at start.
#[derive(Clone)]
pub(crate) struct Outbound {
    pub(crate) addr: crate::addr::Addr,
    pub(crate) count: usize,
    pub(crate) opts: ConnectOptions,
}

/// Options for outbound connections ([`Connect::connect`](crate::Connect::connect)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Source addresses to bind, round-robin (empty: the kernel picks). Spread clients
    /// over 127.0.0.x to open more than ~28k connections to one server port.
    pub sources: Vec<std::net::IpAddr>,
    /// Connect timeout (default 10 s).
    pub timeout: Duration,
    /// Socket options (nodelay, buffers, keepalive) for the new sockets.
    pub socket: SocketOptions,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            sources: Vec::new(),
            timeout: crate::mailbox::DEFAULT_CONNECT_TIMEOUT,
            socket: SocketOptions::default().keepalive(None),
        }
    }
}

impl ConnectOptions {
    /// Sets the source addresses.
    pub fn sources(mut self, s: Vec<std::net::IpAddr>) -> Self {
        self.sources = s;
        self
    }
    /// Sets the connect timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Sets the socket options.
    pub fn socket(mut self, o: SocketOptions) -> Self {
        self.socket = o;
        self
    }
}
