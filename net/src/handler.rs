//! The callback handler API: [`Factory`] makes one [`Handler`] per connection; the
//! handler's callbacks get a [`Conn`] to ask for work.
//!
//! Callbacks run on the connection's worker thread, one at a time, never re-entrantly.
//! Everything a callback asks for (sends, close, pause) is queued and submitted at the
//! end of the worker's loop turn, so all sends of one turn leave in one send op.

use crate::conn::{ConnCore, WorkerCtx};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::reason::CloseReason;

/// Per-connection callbacks. The value lives in the connection's slot and dies on its
/// worker; it need not be `Send`.
pub trait Handler: 'static {
    /// The connection is accepted and registered; reading starts after this returns.
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// Bytes arrived. `data` is everything unconsumed so far (earlier leftovers first).
    /// Return how many bytes were consumed; the rest is kept and offered again with the
    /// next bytes. Returning 0 with a full buffer of leftovers (see
    /// [`Conn::set_max_pending`]) closes the connection with an error.
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize;

    /// File descriptors a Unix peer passed (`SCM_RIGHTS`), on a connection that called
    /// [`Conn::receive_fds`] or whose listener was bound with
    /// [`SocketOptions::pass_fds`](crate::SocketOptions::pass_fds); called before
    /// `on_data` gets the bytes they came with.
    /// They are open, close-on-exec and owned by the handler: dropping them closes
    /// them. At most [`MAX_PASSED_FDS`](crate::fdpass::MAX_PASSED_FDS) per message. The
    /// default closes them.
    fn on_fds(&mut self, conn: &mut Conn<'_>, fds: Vec<std::os::fd::OwnedFd>) {
        let _ = (conn, fds);
    }

    /// The write queue drained (every queued byte was handed to the kernel).
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The peer shut down its sending side (read returned end of stream). The default
    /// closes the connection once everything queued has been sent.
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }

    /// The idle timeout ([`Conn::set_idle_timeout`]) fired. The default closes. A
    /// handler that wants to keep the connection sets a new timeout.
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        conn.close_with(CloseReason::IdleTimeout);
    }

    /// The runtime started a graceful shutdown. A connection between exchanges should
    /// close now (everything queued is still sent); one in the middle of an exchange
    /// can finish it and close then ([`Conn::is_draining`] tells). The default does
    /// nothing: the connection stays until it closes or the drain deadline aborts it.
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The timer set with [`Conn::set_timer`] is due.
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        let _ = conn;
    }

    /// The result of a job this connection handed to [`Conn::offload`], on the
    /// connection's worker. Not called if the connection closed (or began closing)
    /// meanwhile: the result is then dropped on the worker (an owned `File` in it is
    /// closed). A job that panicked delivers its panic payload. The default drops it.
    fn on_offload(&mut self, conn: &mut Conn<'_>, result: Box<dyn std::any::Any + Send>) {
        let _ = (conn, result);
    }

    /// A message from another connection of this worker ([`Conn::notify`] or a
    /// [`Notifier`](crate::Notifier)), at the end of the loop turn it was sent in;
    /// `from` is the sender's id. `msg` is whatever was sent: downcast it
    /// (`msg.downcast::<MyMsg>()`). Not called once this connection is closing. The
    /// default drops it.
    fn on_message(
        &mut self,
        conn: &mut Conn<'_>,
        from: crate::ConnId,
        msg: Box<dyn std::any::Any>,
    ) {
        let _ = (conn, from, msg);
    }

    /// A message this connection sent to `to` came back: `to` had closed (or was
    /// closing) when it was to be delivered. The default drops it.
    fn on_undelivered(
        &mut self,
        conn: &mut Conn<'_>,
        to: crate::ConnId,
        msg: Box<dyn std::any::Any>,
    ) {
        let _ = (conn, to, msg);
    }

    /// The connection is about to close: no callback with a `Conn` follows, and its
    /// socket (and a tunnel's upstream socket) is still open, for the last time (at
    /// most the last queued bytes are still to leave, in a send linked to the close;
    /// the statistics then miss only those). Read its
    /// final state here: [`Closing::tcp_info`](crate::Closing::tcp_info) (and
    /// [`upstream_tcp_info`](crate::Closing::upstream_tcp_info) for a tunnel) for a
    /// connection summary or per-worker statistics. Called once for every connection,
    /// however it ends (graceful close, reset, abort, panic, drain deadline), just
    /// before the close op and before [`on_close`](Self::on_close). Keep it short: one
    /// `getsockopt` or two, no blocking. A panic here is caught and counted; the close
    /// goes on. The default does nothing.
    fn on_closing(&mut self, closing: &crate::Closing) {
        let _ = closing;
    }

    /// The connection is gone: the fd is closed and no op is in flight.
    fn on_close(&mut self, reason: CloseReason) {
        let _ = reason;
    }

    /// The connection was a tunnel ([`Conn::pipe_to`]): what it carried. Called just
    /// before [`on_close`](Self::on_close) (an access log writes both). The default
    /// ignores it.
    fn on_tunnel_closed(&mut self, stats: TunnelStats) {
        let _ = stats;
    }
}

/// What a tunnel carried, from [`Handler::on_tunnel_closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TunnelStats {
    /// The upstream address.
    pub upstream: SocketAddr,
    /// Whether the upstream connect succeeded.
    pub connected: bool,
    /// Bytes delivered from the client to the upstream.
    pub to_upstream: u64,
    /// Bytes delivered from the upstream to the client.
    pub to_client: u64,
}

/// What a factory knows about a new connection. Addresses are looked up on demand
/// (one `getpeername`/`getsockname` each), so a factory that does not ask pays nothing.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub(crate) fd: std::os::fd::RawFd,
    pub(crate) worker: usize,
}

impl ConnInfo {
    /// The peer's TCP address (IPv4-mapped shown as IPv4; `None` on a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        crate::addr::peer_addr(self.fd)
    }

    /// The peer's address, any family (a Unix client is usually `Unix(Unnamed)`).
    pub fn peer(&self) -> Option<crate::Addr> {
        crate::addr::peer(self.fd)
    }

    /// The peer process's credentials on a Unix socket (`SO_PEERCRED`).
    ///
    /// # Errors
    /// `Unsupported` on a TCP connection; the kernel's error otherwise.
    pub fn peer_credentials(&self) -> io::Result<crate::PeerCredentials> {
        crate::addr::peer_credentials(self.fd)
    }

    /// Our address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        crate::addr::local_addr(self.fd)
    }

    /// A `TCP_INFO` snapshot of the new connection (see [`Conn::tcp_info`]).
    ///
    /// # Errors
    /// As [`Conn::tcp_info`].
    pub fn tcp_info(&self) -> io::Result<crate::TcpInfo> {
        crate::tcp_info::tcp_info(self.fd)
    }

    /// The worker that owns the connection.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

/// Makes one handler per accepted connection. Shared by every worker.
pub trait Factory: Send + Sync + 'static {
    /// The per-connection handler type.
    type Handler: Handler;
    /// A handler for a new connection.
    fn make(&self, info: &ConnInfo) -> Self::Handler;
}

impl<F, H> Factory for F
where
    F: Fn(&ConnInfo) -> H + Send + Sync + 'static,
    H: Handler,
{
    type Handler = H;
    fn make(&self, info: &ConnInfo) -> H {
        self(info)
    }
}

/// A callback's view of its connection.
pub struct Conn<'a> {
    pub(crate) core: &'a mut ConnCore,
    pub(crate) ctx: &'a mut WorkerCtx,
}

impl Conn<'_> {
    /// Queues a copy of `data` for sending. Sends of one loop turn leave together in one
    /// vectored send; order is preserved. Ignored after `close`.
    pub fn send(&mut self, data: &[u8]) {
        if data.is_empty() || self.core.write_closed() {
            return;
        }
        if let Some(l) = self.core.layer.as_deref_mut() {
            if !l.write_closed() {
                l.push_bytes(data);
            }
            return;
        }
        self.core.out.push_copy(data, &mut self.ctx.spare);
        self.ctx.mark_dirty(self.core);
    }

    /// Queues `data` for sending like [`send`](Self::send), but without copying when
    /// `data` is (part of) the bytes `on_data` was handed straight from a receive
    /// buffer: the write queue then points into that buffer, which goes back to the
    /// kernel only once these bytes were sent (or dropped by a close). Zero-copy echo:
    ///
    /// ```no_run
    /// # fn f(conn: &mut ringcore_net::Conn<'_>, data: &[u8]) -> usize {
    /// conn.send_received(data);
    /// data.len()
    /// # }
    /// ```
    ///
    /// Any other slice is copied, as are bytes on the epoll backend (its receive buffer
    /// is reused by the next read), bytes `on_data` gets from the connection's pending
    /// input (after a pause or leftovers), bytes under a layer such as TLS, and bytes
    /// sent while the worker already holds
    /// [`Config::recv_hold_limit`](ringcore_runtime::Config::recv_hold_limit()) buffers
    /// (counted in `recv_hold_fallbacks`). Ignored after `close`.
    pub fn send_received(&mut self, data: &[u8]) {
        if data.is_empty() || self.core.write_closed() {
            return;
        }
        if self.core.layer.is_none() {
            if let Some(held) = self.ctx.holds.take(data) {
                self.core.out.push_held(held, &mut self.ctx.spare);
                self.ctx.mark_dirty(self.core);
                return;
            }
        }
        self.send(data);
    }

    /// Lets `f` write bytes for sending straight into the write queue, saving the copy
    /// [`send`](Self::send) makes: `f` gets a buffer to append to (it may already hold
    /// earlier unsent bytes of this connection; leave them alone) and its result is
    /// passed back. Same ordering as `send`. After `close`, `f` still runs but what it
    /// writes is dropped.
    ///
    /// ```no_run
    /// # fn f(conn: &mut ringcore_net::Conn<'_>) {
    /// conn.send_with(|out| out.extend_from_slice(b"+OK\r\n"));
    /// # }
    /// ```
    pub fn send_with<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        if self.core.write_closed() || self.core.layer.as_ref().is_some_and(|l| l.write_closed()) {
            let mut scratch = Vec::new();
            return f(&mut scratch);
        }
        if let Some(l) = self.core.layer.as_deref_mut() {
            return l.push_with(f);
        }
        let before = self.core.out.len();
        let r = self.core.out.push_with(&mut self.ctx.spare, f);
        if self.core.out.len() != before {
            self.ctx.mark_dirty(self.core);
        }
        r
    }

    /// Queues `data` without copying it.
    pub fn send_owned(&mut self, data: Vec<u8>) {
        if data.is_empty() || self.core.write_closed() {
            return;
        }
        if let Some(l) = self.core.layer.as_deref_mut() {
            if !l.write_closed() {
                l.push_owned(data);
            }
            return;
        }
        self.core.out.push_owned(data, &mut self.ctx.spare);
        self.ctx.mark_dirty(self.core);
    }

    /// Queues `len` bytes of `file` from `offset`, sent after everything queued before
    /// it and before anything queued after it. The bytes leave by splice (file -> pipe
    /// -> socket) without passing through user space. The file is closed when done.
    /// If the file turns out shorter than `len`, the connection is aborted (the peer
    /// was promised `len` bytes).
    ///
    /// Under a layer that transforms the bytes (TLS), splice cannot be used: the file
    /// is read in bounded chunks, encrypted and sent from user space instead (see
    /// `docs/tls.md`).
    pub fn send_file(&mut self, file: std::fs::File, offset: u64, len: u64) {
        use std::os::fd::IntoRawFd;
        if len == 0 || self.core.write_closed() {
            return;
        }
        // Only the TLS wrapper installs a layer; without the feature there is none.
        #[cfg(feature = "tls")]
        if let Some(l) = self.core.layer.as_deref_mut() {
            if !l.write_closed() {
                l.push_file(file, offset, len);
            }
            return;
        }
        self.core.out.push_file(
            crate::wqueue::FileSeg {
                fd: crate::iofd::IoFd::new(file.into_raw_fd()),
                offset,
                remaining: len,
            },
            &mut self.ctx.spare,
        );
        self.ctx.mark_dirty(self.core);
    }

    /// Turns this connection into a splice tunnel to `upstream`: after the connect
    /// succeeds, bytes flow client <-> upstream through pipes by splice, never through
    /// user space, with at most one pipe (256 KiB) buffered per direction. A FIN on
    /// either side is propagated as `shutdown(SHUT_WR)` on the other; when both
    /// directions are done, or on any error (refused, reset, `connect_timeout`), both
    /// sockets close and `on_close` reports why. No further `on_data` is delivered.
    /// The tunnel closes after [`DEFAULT_TUNNEL_IDLE_TIMEOUT`](crate::DEFAULT_TUNNEL_IDLE_TIMEOUT)
    /// (600 s) without traffic, or
    /// [`DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT`](crate::DEFAULT_TUNNEL_HALF_CLOSE_TIMEOUT)
    /// (60 s) after the first FIN; [`pipe_to_with`](Self::pipe_to_with) sets them.
    ///
    /// # Errors
    /// `InvalidInput` if reading already started (call it from `on_open`) or bytes are
    /// queued; `Unsupported` under TLS (splice would move the encrypted bytes
    /// unchanged); the connection is unchanged.
    pub fn pipe_to(&mut self, upstream: SocketAddr, connect_timeout: Duration) -> io::Result<()> {
        let opts = crate::TunnelOptions::default().connect_timeout(connect_timeout);
        self.pipe_to_with(upstream, &opts)
    }

    /// [`pipe_to`](Self::pipe_to) with every tunnel option: connect, idle and
    /// half-close timeouts.
    ///
    /// # Errors
    /// As [`pipe_to`](Self::pipe_to).
    pub fn pipe_to_with(
        &mut self,
        upstream: SocketAddr,
        opts: &crate::TunnelOptions,
    ) -> io::Result<()> {
        if self.core.layer.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "pipe_to splices raw socket bytes and cannot run under TLS; relay the \
                 plaintext through the handler instead",
            ));
        }
        let c = &mut *self.core;
        if c.has(crate::conn::RECV_ARMED | crate::conn::EOF)
            || !c.pending.is_empty()
            || !c.out.is_empty()
            || c.tunnel.is_some()
            || c.write_closed()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "pipe_to must be called from on_open, before any byte is read or queued",
            ));
        }
        c.tunnel = Some(crate::tunnel_state::Tunnel::new(upstream, opts));
        self.ctx.mark_dirty(self.core);
        Ok(())
    }

    /// Runs `job` off the worker thread, on the worker's offload pool
    /// ([`OffloadLimits`](crate::OffloadLimits): a few helper threads per worker
    /// taking jobs in order), for work that may block: opening or stat-ing files,
    /// name resolution. Its result comes back to this connection's
    /// [`Handler::on_offload`] on the worker, unless the connection closed meanwhile
    /// (then it is dropped; see there). The job must not touch the connection; a
    /// handler that waits for the result usually pauses reading meanwhile. Always
    /// accepted (the queue limit is not applied: see [`try_offload`](Self::try_offload)).
    pub fn offload<R: std::any::Any + Send>(&mut self, job: impl FnOnce() -> R + Send + 'static) {
        let tok = self.core.token;
        self.ctx.offload.submit(
            tok,
            Box::new(move || Box::new(job()) as Box<dyn std::any::Any + Send>),
        );
    }

    /// [`offload`](Self::offload), unless the worker's pool already has
    /// `threads + queue` jobs queued or running ([`OffloadLimits`](crate::OffloadLimits)).
    ///
    /// # Errors
    ///
    /// [`OffloadFull`](crate::OffloadFull): the job was not taken (and is dropped);
    /// try later, or answer "busy" (HTTP offload routes answer `503` with
    /// `Retry-After`).
    pub fn try_offload<R: std::any::Any + Send>(
        &mut self,
        job: impl FnOnce() -> R + Send + 'static,
    ) -> Result<(), crate::OffloadFull> {
        let tok = self.core.token;
        self.ctx.offload.try_submit(
            tok,
            Box::new(move || Box::new(job()) as Box<dyn std::any::Any + Send>),
        )
    }

    /// Input bytes received and not consumed yet by [`Handler::on_data`] (they are
    /// offered again with the next bytes, or on resume).
    pub fn unconsumed(&self) -> usize {
        if let Some(l) = self.core.layer.as_deref() {
            return l.unconsumed;
        }
        self.core.pending.len()
    }

    /// Bytes queued and not yet handed to the kernel (for backpressure). Same as
    /// [`queued_bytes`](Self::queued_bytes).
    pub fn pending_write(&self) -> usize {
        self.queued_bytes()
    }

    /// Output bytes queued and not yet handed to the kernel: everything sent with
    /// `send*` or `send_file` that has not left yet, plus bytes in a splice pipe.
    pub fn queued_bytes(&self) -> usize {
        self.core.queued_bytes() + self.core.layer.as_ref().map_or(0, |l| l.out_len)
    }

    /// True while this connection's output is backed up: from the moment
    /// [`queued_bytes`](Self::queued_bytes) reaches the high-water mark
    /// ([`set_output_limit`](Self::set_output_limit), default
    /// [`DEFAULT_OUTPUT_HIGH_WATER`](crate::DEFAULT_OUTPUT_HIGH_WATER), 1 MiB) until it
    /// drains to the low-water mark (a quarter of it). Meanwhile the runtime delivers
    /// no new input (reading stops and the peer is slowed by TCP flow control), and a
    /// handler should produce no more output on its own: a protocol handler with
    /// pipelined requests should return from `on_data` without consuming the next
    /// request. Unconsumed bytes are offered again (without waiting for new input) once
    /// the queue drained.
    pub fn is_backed_up(&self) -> bool {
        if let Some(l) = self.core.layer.as_deref() {
            let hw = self.core.high_water as usize;
            return self.core.backed_up() || (hw != 0 && l.out_len >= hw);
        }
        self.core.backed_up()
    }

    /// Sets the close (linger) deadline (default
    /// [`DEFAULT_CLOSE_TIMEOUT`](crate::DEFAULT_CLOSE_TIMEOUT), 30 s): once a graceful
    /// [`close`](Self::close) began, a connection that has not sent everything queued
    /// within this time (a peer that stopped reading) is aborted, and `on_close` gets a
    /// [`CloseReason::Error`] of kind `TimedOut`. `None` disables it. Takes effect for
    /// a close that starts after the call.
    pub fn set_close_timeout(&mut self, timeout: Option<Duration>) {
        self.core.linger_ms =
            timeout.map_or(0, |t| t.as_millis().clamp(1, u32::MAX as u128) as u32);
    }

    /// Sets the output high-water mark in bytes (default 1 MiB): at this many queued
    /// bytes reading stops until the queue drains to a quarter of it. `0` disables the
    /// limit (the handler then bounds its own output, e.g. with
    /// [`pause_reading`](Self::pause_reading)).
    pub fn set_output_limit(&mut self, high_water: usize) {
        self.core.high_water = high_water.min(u32::MAX as usize) as u32;
        self.ctx.mark_dirty(self.core);
    }

    /// The output high-water mark in bytes ([`set_output_limit`](Self::set_output_limit);
    /// `0`: no limit). A protocol handler that answers pipelined requests bounds the
    /// output one `on_data` call adds by the room left under it
    /// (`output_limit() - queued_bytes()`).
    pub fn output_limit(&self) -> usize {
        self.core.high_water as usize
    }

    /// After everything queued is sent, shut down our sending side (FIN). Reading goes on.
    pub fn shutdown_write(&mut self) {
        if let Some(l) = self.core.layer.as_deref_mut() {
            l.shutdown = true;
            return;
        }
        self.core.want_shutdown_write();
        self.ctx.mark_dirty(self.core);
    }

    /// Closes gracefully: stop reading, send everything queued, then close. `on_close`
    /// follows with [`CloseReason::Local`].
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Like [`close`](Self::close) with the reason `on_close` will see.
    pub fn close_with(&mut self, reason: CloseReason) {
        if let Some(l) = self.core.layer.as_deref_mut() {
            // Sent after the layer's own output (TLS: close_notify) by the wrapper.
            l.close.get_or_insert(reason);
            return;
        }
        self.core.want_close(reason);
        self.ctx.mark_dirty(self.core);
    }

    /// Closes now, dropping anything unsent (the peer may see a reset).
    pub fn abort(&mut self) {
        self.core.want_abort();
        self.ctx.mark_dirty(self.core);
    }

    /// Sets (or with `None` clears) the idle timeout: `on_timeout` runs when no bytes
    /// arrived or left for this long. Re-armed by activity.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.ctx.set_idle_timeout(self.core, timeout);
    }

    /// Calls [`Handler::on_timer`] at (or within one 1 ms tick after) `at`; `None`
    /// cancels. One timer per connection: setting it again replaces it.
    pub fn set_timer(&mut self, at: Option<Instant>) {
        self.ctx.set_user_timer(self.core, at);
    }

    /// Stops delivering `on_data` until [`resume_reading`](Self::resume_reading); the
    /// kernel's receive buffer fills and the peer is slowed down.
    pub fn pause_reading(&mut self) {
        self.core.set_paused(true);
        self.ctx.mark_dirty(self.core);
    }

    /// Undoes [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&mut self) {
        self.core.set_paused(false);
        self.ctx.mark_dirty(self.core);
    }

    /// Most unconsumed bytes kept for the handler (default 1 MiB). When `on_data`
    /// consumes nothing and this much is pending, the connection closes with an error.
    pub fn set_max_pending(&mut self, bytes: usize) {
        self.core.max_pending = bytes.min(u32::MAX as usize) as u32;
    }

    /// The peer's TCP address (IPv4-mapped shown as IPv4; `None` on a Unix socket).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        crate::addr::peer_addr(self.core.fd)
    }

    /// The peer's address, any family: `Addr::Tcp`, or `Addr::Unix` (a Unix client is
    /// usually `Unnamed`).
    pub fn peer(&self) -> Option<crate::Addr> {
        crate::addr::peer(self.core.fd)
    }

    /// Our address, any family.
    pub fn local(&self) -> Option<crate::Addr> {
        crate::addr::local(self.core.fd)
    }

    /// The peer process's credentials on a Unix socket (`SO_PEERCRED`: pid, uid, gid,
    /// as of its `connect`).
    ///
    /// # Errors
    /// `Unsupported` on a TCP connection; the kernel's error otherwise.
    pub fn peer_credentials(&self) -> io::Result<crate::PeerCredentials> {
        crate::addr::peer_credentials(self.core.fd)
    }

    /// Applies the per-connection [`SocketOptions`](crate::SocketOptions) (nodelay,
    /// keepalive, buffers, linger, user timeout, congestion control, not-sent
    /// low-water mark, TOS) to this connection's socket; TCP options are skipped on a
    /// Unix socket.
    ///
    /// # Errors
    /// The failing `setsockopt`, named.
    pub fn set_socket_options(&mut self, opts: &crate::SocketOptions) -> io::Result<()> {
        opts.apply(self.core.fd)
    }

    /// Our address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        crate::addr::local_addr(self.core.fd)
    }

    /// A snapshot of this connection's TCP statistics (`getsockopt(TCP_INFO)`: RTT,
    /// congestion window, retransmits, bytes acked/received, delivery rate). One
    /// syscall; cheap enough per request, but not per byte.
    ///
    /// # Errors
    /// `Unsupported`-kind errors for a Unix socket (no TCP state), or the kernel's error.
    pub fn tcp_info(&self) -> io::Result<crate::TcpInfo> {
        crate::tcp_info::tcp_info(self.core.fd)
    }

    /// The worker that owns this connection.
    pub fn worker_id(&self) -> usize {
        self.ctx.worker
    }

    /// The loop turn's clock.
    pub fn now(&self) -> Instant {
        self.ctx.now
    }

    /// True once the runtime started a graceful shutdown: finish the current exchange
    /// and close (an HTTP server answers with `Connection: close`).
    pub fn is_draining(&self) -> bool {
        self.ctx.draining
    }

    /// The TLS session of this connection, when its handler runs under
    /// [`tls`](crate::tls) (negotiated protocol, ALPN, SNI, resumption, truncation).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.core.layer.as_deref().map(|l| &l.tls)
    }

    /// The raw socket, for options this API does not cover. Do not close it or read or
    /// write it directly.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.core.fd
    }
}
