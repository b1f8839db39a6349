//! The wrapper: [`TlsFactory`] makes a [`TlsHandler`] per connection, which runs the
//! rustls session between the socket (ciphertext) and the inner handler (plaintext).
//!
//! ```text
//! on_data(cipher) -> read_tls/process_new_packets -> plain_in -> inner.on_data
//! inner conn.send(p) -> Layer.out -> writer().write -> write_tls -> write queue
//! ```
//!
//! Every outer callback ends in [`TlsHandler::settle`]: queued plaintext is encrypted
//! (files a chunk at a time, within a window), a requested close or shutdown is turned
//! into `close_notify` + the real close once the plaintext is out, and plaintext that
//! waited while reading was stopped is delivered.

use super::config::{TlsAcceptor, TlsConnector};
use super::file::{self, FileRead};
use super::stats::Stats;
use crate::handler::{CloseReason, Conn, ConnInfo, Factory, Handler, TunnelStats};
use crate::layer::{Layer, Plain};
use crate::ConnId;
use rustls::Connection;
use std::any::Any;
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

/// Which side of the handshake a factory's connections play.
#[derive(Clone)]
pub(crate) enum Side {
    Server(TlsAcceptor),
    Client(TlsConnector),
}

/// A [`Factory`] whose handlers run TLS around the inner factory's handlers. Made by
/// [`TlsAcceptor::wrap`] or [`TlsConnector::wrap`].
pub struct TlsFactory<F> {
    inner: F,
    side: Side,
    handshake_timeout: Option<Duration>,
}

impl<F> TlsFactory<F> {
    pub(crate) fn new(inner: F, side: Side, handshake_timeout: Option<Duration>) -> Self {
        TlsFactory {
            inner,
            side,
            handshake_timeout,
        }
    }
}

impl<F: Factory> Factory for TlsFactory<F> {
    type Handler = TlsHandler<F::Handler>;

    fn make(&self, info: &ConnInfo) -> Self::Handler {
        TlsHandler::new(self.inner.make(info), &self.side, self.handshake_timeout)
    }
}

impl<H> TlsHandler<H> {
    /// A wrapper running a TLS session of `side` around `inner`.
    pub(crate) fn new(inner: H, side: &Side, handshake_timeout: Option<Duration>) -> Self {
        let (tls, stats) = match side {
            Side::Server(a) => (
                rustls::ServerConnection::new(a.config.clone()).map(Connection::Server),
                a.stats.clone(),
            ),
            Side::Client(c) => (
                rustls::ClientConnection::new(c.config.clone(), c.server_name.clone())
                    .map(Connection::Client),
                c.stats.clone(),
            ),
        };
        TlsHandler {
            inner,
            tls,
            stats,
            handshake_timeout,
            layer: Some(Box::default()),
            plain_in: Vec::new(),
            opened: false,
            dead: false,
            plain_new: false,
            eof_pending: false,
            eof_delivered: false,
            closed_real: false,
            shut_real: false,
            early: Vec::new(),
        }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

/// The per-connection TLS wrapper around an inner handler `H`.
pub struct TlsHandler<H> {
    inner: H,
    /// The session (an error if rustls refused to make one: reported on open).
    tls: Result<Connection, rustls::Error>,
    stats: Arc<Stats>,
    handshake_timeout: Option<Duration>,
    /// The inner handler's output view; `None` only while installed in the `Conn`.
    layer: Option<Box<Layer>>,
    /// Decrypted input not consumed by the inner handler yet.
    plain_in: Vec<u8>,
    /// The handshake completed and the inner handler's `on_open` ran.
    opened: bool,
    /// A fatal TLS error closed the connection: input is ignored.
    dead: bool,
    /// `plain_in` holds bytes to offer without waiting for new input (they arrived,
    /// or were left, while reading was stopped).
    plain_new: bool,
    /// The peer's stream ended (`close_notify` or end of stream): `on_eof` is due
    /// once the input before it was offered.
    eof_pending: bool,
    eof_delivered: bool,
    /// The real connection's close / shutdown was requested (after `close_notify`).
    closed_real: bool,
    shut_real: bool,
    /// Messages from other connections that arrived before the handshake completed:
    /// handed to the inner handler right after its `on_open`, in arrival order.
    early: Vec<(ConnId, Box<dyn Any>)>,
}

fn tls_error(kind: io::ErrorKind, msg: String) -> CloseReason {
    CloseReason::Error(io::Error::new(kind, msg))
}

/// Queues every TLS record rustls holds on the real connection.
fn flush_tls(tls: &mut Connection, conn: &mut Conn<'_>) {
    while tls.wants_write() {
        match conn.send_with(|out| tls.write_tls(out)) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Encrypts all of `data` (the session is established) onto the real connection.
fn encrypt(tls: &mut Connection, conn: &mut Conn<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        let n = tls.writer().write(data).unwrap_or(0);
        flush_tls(tls, conn);
        if n == 0 {
            break; // cannot happen once established: rustls' buffer was just drained
        }
        data = &data[n..];
    }
}

impl<H: Handler> TlsHandler<H> {
    /// Runs an inner callback with the layer installed in `conn`.
    fn with_inner<R>(
        &mut self,
        conn: &mut Conn<'_>,
        f: impl FnOnce(&mut H, &mut Conn<'_>) -> R,
    ) -> R {
        let mut layer = self.layer.take().unwrap_or_default();
        layer.unconsumed = self.plain_in.len();
        conn.core.layer = Some(layer);
        let r = f(&mut self.inner, conn);
        self.layer = conn.core.layer.take();
        r
    }

    /// Reading is stopped for the inner handler (it paused, or output is backed up).
    fn stopped(conn: &Conn<'_>) -> bool {
        conn.core.has(crate::conn::PAUSED) || conn.core.backed_up()
    }

    /// Closes because of a TLS error: the alert rustls queued goes out first.
    fn fail(&mut self, conn: &mut Conn<'_>, e: rustls::Error) {
        let handshaking = !self.opened;
        let c = if handshaking {
            &self.stats.handshake_errors
        } else {
            &self.stats.record_errors
        };
        Stats::bump(c);
        tracing::debug!(peer = ?conn.peer_addr(), error = %e, handshaking, "TLS error; closing");
        if let Ok(tls) = &mut self.tls {
            flush_tls(tls, conn);
        }
        self.dead = true;
        let what = if handshaking { "TLS handshake" } else { "TLS" };
        conn.close_with(tls_error(
            io::ErrorKind::InvalidData,
            format!("{what}: {e}"),
        ));
    }

    /// Moves decrypted bytes from rustls into `plain_in`; true if any came.
    fn read_plain(&mut self) -> bool {
        let Ok(tls) = &mut self.tls else {
            return false;
        };
        let mut got = false;
        loop {
            // Straight from rustls' buffer (no bounce buffer): `fill_buf` yields the
            // decrypted bytes of the next record.
            let mut rd = tls.reader();
            match rd.fill_buf() {
                Ok(b) if !b.is_empty() => {
                    let n = b.len();
                    self.plain_in.extend_from_slice(b);
                    rd.consume(n);
                    got = true;
                }
                _ => return got, // closed, or nothing more for now
            }
        }
    }

    /// The handshake just completed: record it, clear its deadline, open the inner
    /// handler.
    fn handshake_done(&mut self, conn: &mut Conn<'_>) {
        let Ok(tls) = &self.tls else { return };
        self.opened = true;
        conn.set_timer(None);
        Stats::bump(&self.stats.handshakes);
        let resumed = tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        if resumed {
            Stats::bump(&self.stats.resumed);
        }
        if let Some(l) = self.layer.as_mut() {
            let info = &mut l.tls;
            info.resumed = resumed;
            info.alpn = tls.alpn_protocol().map(<[u8]>::to_vec);
            info.version = match tls.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            };
            info.cipher = tls
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown");
            if let Connection::Server(s) = tls {
                info.sni = s.server_name().map(str::to_string);
            }
        }
        self.with_inner(conn, |h, c| h.on_open(c));
        for (from, msg) in std::mem::take(&mut self.early) {
            if conn.core.has(crate::conn::CLOSING) {
                break; // as without TLS: no messages once closing
            }
            self.with_inner(conn, |h, c| h.on_message(c, from, msg));
        }
    }

    /// Encrypts the inner handler's queued output (files a chunk at a time), then
    /// carries out a close or shutdown it asked for once everything before it is out.
    fn flush_plain(&mut self, conn: &mut Conn<'_>) {
        let Ok(tls) = &mut self.tls else { return };
        let Some(l) = self.layer.as_deref_mut() else {
            return;
        };
        while let Some(front) = l.out.front_mut() {
            match front {
                Plain::Bytes(b) => {
                    let mut off = 0;
                    while off < b.len() {
                        let n = tls.writer().write(&b[off..]).unwrap_or(0);
                        flush_tls(tls, conn);
                        if n == 0 {
                            break;
                        }
                        off += n;
                    }
                    l.out_len -= off;
                    if off < b.len() {
                        b.drain(..off);
                        break; // rustls holds all it takes before the handshake ends
                    }
                    l.out.pop_front();
                }
                Plain::File {
                    file,
                    offset,
                    remaining,
                } => {
                    if *remaining == 0 {
                        l.out.pop_front();
                        continue;
                    }
                    let Some(f) = file.as_ref() else {
                        break; // a read runs off the worker
                    };
                    if conn.core.queued_bytes() >= file::WINDOW {
                        break; // on_sent brings us back
                    }
                    let want = (*remaining).min(file::CHUNK as u64) as usize;
                    match file::read_nowait(f, *offset, want) {
                        Ok(Some(buf)) if buf.is_empty() => {
                            short_file(conn);
                            return;
                        }
                        Ok(Some(buf)) => {
                            encrypt(tls, conn, &buf);
                            *offset += buf.len() as u64;
                            *remaining -= buf.len() as u64;
                            l.out_len -= buf.len();
                        }
                        Ok(None) => {
                            let (f, at) = (file.take().expect("checked above"), *offset);
                            conn.offload(move || file::read_blocking(f, at, want));
                            break;
                        }
                        Err(e) => {
                            conn.core.fail(CloseReason::Error(e));
                            conn.ctx.mark_dirty(conn.core);
                            return;
                        }
                    }
                }
            }
        }
        if !l.out.is_empty() || !self.opened {
            if l.close.is_some() && !self.closed_real {
                // Output still waits (a file being encrypted for a peer that may have
                // stopped reading): the close deadline runs from now.
                conn.arm_layer_close_deadline();
            }
            return;
        }
        if let Some(reason) = l.close.take() {
            l.shutdown = true; // keeps the inner handler's output closed
            if !self.closed_real {
                self.closed_real = true;
                tls.send_close_notify();
                flush_tls(tls, conn);
                conn.close_with(reason);
            }
        } else if l.shutdown && !self.shut_real {
            self.shut_real = true;
            tls.send_close_notify();
            flush_tls(tls, conn);
            conn.shutdown_write();
        }
    }

    /// Offers waiting plaintext (and a due `on_eof`) to the inner handler.
    fn pump(&mut self, conn: &mut Conn<'_>, fresh: bool) {
        if !self.opened || self.dead || conn.core.has(crate::conn::CLOSING) {
            return;
        }
        if Self::stopped(conn) {
            if fresh && !self.plain_in.is_empty() {
                self.plain_new = true;
            }
            return;
        }
        if !self.plain_in.is_empty() && (fresh || self.plain_new) {
            self.plain_new = false;
            let data = std::mem::take(&mut self.plain_in);
            let used = self.with_inner(conn, |h, c| h.on_data(c, &data));
            let mut data = data;
            data.drain(..used.min(data.len()));
            self.plain_in = data;
            if !self.plain_in.is_empty() {
                if Self::stopped(conn) {
                    self.plain_new = true;
                } else if used == 0 && self.plain_in.len() >= conn.core.max_pending as usize {
                    conn.core.fail(tls_error(
                        io::ErrorKind::InvalidData,
                        format!(
                            "on_data consumed nothing with {} plaintext bytes pending \
                             (max_pending); closing",
                            self.plain_in.len()
                        ),
                    ));
                    conn.ctx.mark_dirty(conn.core);
                    return;
                }
            } else if self.plain_in.capacity() > 64 * 1024 {
                self.plain_in = Vec::new();
            }
        }
        if self.eof_pending
            && !self.eof_delivered
            && !self.plain_new
            && !Self::stopped(conn)
            && !conn.core.has(crate::conn::CLOSING)
        {
            self.eof_delivered = true;
            self.with_inner(conn, |h, c| h.on_eof(c));
        }
    }

    /// The end of every outer callback: encrypt output, deliver what waits, encrypt
    /// what that produced.
    fn settle(&mut self, conn: &mut Conn<'_>, fresh: bool) {
        self.flush_plain(conn);
        self.pump(conn, fresh);
        self.flush_plain(conn);
    }
}

fn short_file(conn: &mut Conn<'_>) {
    conn.core.fail(tls_error(
        io::ErrorKind::UnexpectedEof,
        "send_file: the file is shorter than the length promised; aborting".into(),
    ));
    conn.ctx.mark_dirty(conn.core);
}

impl<H: Handler> Handler for TlsHandler<H> {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        match &mut self.tls {
            Err(e) => {
                let msg = format!("TLS session: {e}");
                conn.close_with(tls_error(io::ErrorKind::InvalidInput, msg));
            }
            Ok(tls) => {
                if let Some(t) = self.handshake_timeout {
                    let at = conn.now() + t;
                    conn.set_timer(Some(at));
                }
                flush_tls(tls, conn); // the client's ClientHello
            }
        }
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.dead {
            return data.len();
        }
        let mut rd = data;
        let mut fresh = false;
        while !rd.is_empty() {
            let Ok(tls) = &mut self.tls else {
                return data.len();
            };
            let r = tls
                .read_tls(&mut rd)
                .map_err(|e| rustls::Error::General(e.to_string()))
                .and_then(|_| tls.process_new_packets());
            match r {
                Ok(state) => {
                    if state.peer_has_closed() && !self.eof_pending {
                        self.eof_pending = true;
                        Stats::bump(&self.stats.close_notify);
                        if let Some(l) = self.layer.as_mut() {
                            l.tls.peer_closed = true;
                        }
                    }
                }
                Err(e) => {
                    self.fail(conn, e);
                    return data.len();
                }
            }
            fresh |= self.read_plain();
            if !self.opened && self.tls.as_ref().is_ok_and(|t| !t.is_handshaking()) {
                if let Ok(tls) = &mut self.tls {
                    flush_tls(tls, conn);
                }
                self.handshake_done(conn);
            }
            if self.eof_pending {
                break; // nothing after close_notify counts
            }
        }
        if let Ok(tls) = &mut self.tls {
            flush_tls(tls, conn);
        }
        self.settle(conn, fresh);
        data.len()
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.settle(conn, false);
        let idle = self.layer.as_ref().is_some_and(|l| l.out.is_empty())
            && conn.core.out.is_empty()
            && self.tls.as_ref().is_ok_and(|t| !t.wants_write());
        if self.opened && idle && !conn.core.has(crate::conn::CLOSING) {
            self.with_inner(conn, |h, c| h.on_sent(c));
            self.settle(conn, false);
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        if !self.opened {
            if !self.dead {
                Stats::bump(&self.stats.handshake_errors);
                tracing::debug!(peer = ?conn.peer_addr(), "TLS: end of stream during the handshake");
                self.dead = true;
                let msg = "TLS handshake: the peer closed the stream before it completed";
                conn.close_with(tls_error(io::ErrorKind::UnexpectedEof, msg.into()));
            }
            return;
        }
        if !self.eof_pending {
            self.eof_pending = true;
            Stats::bump(&self.stats.truncated);
            tracing::debug!(peer = ?conn.peer_addr(), "TLS: stream ended without close_notify");
            if let Some(l) = self.layer.as_mut() {
                l.tls.truncated = true;
            }
        }
        self.settle(conn, false);
    }

    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        if !self.opened {
            conn.close_with(CloseReason::IdleTimeout);
            return;
        }
        self.with_inner(conn, |h, c| h.on_timeout(c));
        self.settle(conn, false);
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        if !self.opened {
            conn.close();
            return;
        }
        self.with_inner(conn, |h, c| h.on_drain(c));
        self.settle(conn, false);
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if !self.opened {
            if !self.dead {
                Stats::bump(&self.stats.handshake_timeouts);
                tracing::debug!(peer = ?conn.peer_addr(), "TLS: handshake deadline passed; closing");
                self.dead = true;
                let msg = "TLS handshake not completed within the handshake timeout";
                conn.core
                    .fail(tls_error(io::ErrorKind::TimedOut, msg.into()));
                conn.ctx.mark_dirty(conn.core);
            }
            return;
        }
        self.with_inner(conn, |h, c| h.on_timer(c));
        self.settle(conn, false);
    }

    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn std::any::Any + Send>) {
        match result.downcast::<FileRead>() {
            Ok(read) => self.file_read_done(conn, *read),
            Err(other) => self.with_inner(conn, |h, c| h.on_offload(c, other)),
        }
        self.settle(conn, false);
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        if !self.opened {
            // The inner handler is not open yet: keep it for after its `on_open`.
            if !self.dead {
                self.early.push((from, msg));
            }
            return;
        }
        self.with_inner(conn, |h, c| h.on_message(c, from, msg));
        self.settle(conn, false);
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, to: ConnId, msg: Box<dyn Any>) {
        self.with_inner(conn, |h, c| h.on_undelivered(c, to, msg));
        self.settle(conn, false);
    }

    fn on_closing(&mut self, closing: &crate::Closing) {
        self.inner.on_closing(closing);
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.inner.on_close(reason);
    }

    fn on_tunnel_closed(&mut self, stats: TunnelStats) {
        self.inner.on_tunnel_closed(stats);
    }
}

impl<H: Handler> TlsHandler<H> {
    /// A file chunk read off the worker came back: put the file back, encrypt the bytes.
    fn file_read_done(&mut self, conn: &mut Conn<'_>, read: FileRead) {
        let Ok(tls) = &mut self.tls else { return };
        let Some(l) = self.layer.as_deref_mut() else {
            return;
        };
        let Some(Plain::File {
            file,
            offset,
            remaining,
        }) = l.out.front_mut()
        else {
            return;
        };
        *file = Some(read.file);
        match read.data {
            Ok(buf) if buf.is_empty() => short_file(conn),
            Ok(buf) => {
                encrypt(tls, conn, &buf);
                *offset += buf.len() as u64;
                *remaining -= (buf.len() as u64).min(*remaining);
                l.out_len -= buf.len().min(l.out_len);
            }
            Err(e) => {
                conn.core.fail(CloseReason::Error(e));
                conn.ctx.mark_dirty(conn.core);
            }
        }
    }
}
