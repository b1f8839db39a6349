//! TLS (rustls) as a layer that wraps any [`Factory`](crate::Factory): the wrapped
//! handlers see plaintext, so the same handler code (HTTP, files, an echo) serves
//! plaintext or TLS. Behind the cargo feature `tls`.
//!
//! * Server: [`TlsAcceptor`] (certificates from PEM files, chosen by SNI; ALPN;
//!   TLS 1.3 and 1.2; resumption by tickets and session ids; handshake deadline),
//!   [`TlsAcceptor::wrap`].
//! * Client: [`TlsConnector`] (roots from a PEM file or the system bundle, server
//!   name), [`TlsConnector::wrap`], for [`Connect`](crate::Connect).
//!
//! What the inner handler sees: `on_open` after the handshake completed (query the
//! session with [`Conn::tls`](crate::Conn::tls)); `on_data` with decrypted bytes
//! (leftovers kept and offered again, as without TLS); `send*` encrypted; `close`
//! sends `close_notify` after everything queued; `on_eof` when the peer sent
//! `close_notify`, or when its stream ended without one ([`TlsInfo::truncated`]
//! then says so); `send_file` reads the file in bounded chunks (64 KiB, at most
//! 256 KiB of records queued) and encrypts it (no splice: the kernel here has no kTLS);
//! `pipe_to` fails with `Unsupported`. Backpressure holds: the encrypted bytes count
//! against the write queue's high-water mark, and the socket is not read while the
//! inner handler paused or its output is backed up.
//!
//! Failures close the one connection, never the worker: a bad record is answered with
//! the alert rustls chooses (`decode_error`, `bad_record_mac`, `unexpected_message`,
//! ...) and the connection closes with [`CloseReason::Error`](crate::CloseReason) of
//! kind `InvalidData`; a handshake past its deadline closes with kind `TimedOut`. Each
//! is logged at `debug` and counted ([`TlsStats`]). See `docs/tls.md`.

mod config;
mod file;
mod session;
mod stats;

pub use config::{
    load_certs, load_key, TlsAcceptor, TlsAcceptorBuilder, TlsConnector, DEFAULT_HANDSHAKE_TIMEOUT,
    SYSTEM_CA_BUNDLES,
};
pub use rustls;
pub use session::{TlsFactory, TlsHandler};
pub use stats::TlsStats;

/// What a handler under TLS can learn about its session ([`Conn::tls`](crate::Conn::tls)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The server name the client asked for (SNI), on the server side.
    pub sni: Option<String>,
    /// The application protocol agreed by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub version: &'static str,
    /// The cipher suite's name, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// The session was resumed (ticket or session id), not a full handshake.
    pub resumed: bool,
    /// The peer sent `close_notify`.
    pub peer_closed: bool,
    /// The peer's stream ended without `close_notify`: the last message may be
    /// truncated (an attacker can cut a TCP stream, not forge `close_notify`).
    pub truncated: bool,
}
