//! [`CloseReason`]: why a connection closed. A leaf module, so the connection state
//! (conn.rs) need not depend on the handler API.

use std::io;

/// Why a connection closed; passed to [`Handler::on_close`](crate::Handler::on_close).
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// The handler called [`Conn::close`](crate::Conn::close) (or the default `on_eof`/`on_timeout` did).
    Local,
    /// The peer closed its side and everything queued was sent.
    PeerClosed,
    /// A socket error: reset by peer, broken pipe, timeout from the kernel, ...
    Error(io::Error),
    /// The idle timeout fired and the handler did not keep the connection.
    IdleTimeout,
    /// The runtime is shutting down and the drain deadline passed.
    Shutdown,
    /// A callback panicked; the panic message was logged.
    Panic,
}
