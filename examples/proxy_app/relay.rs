//! The userspace relay of the `proxy` example, used when TLS is on either side
//! (`--tls-cert` terminates TLS from clients, `--upstream-tls` speaks TLS to the
//! upstream). A splice tunnel moves raw socket bytes, so it cannot carry TLS: here the
//! accepted connection's handler ([`Front`], wrapped by the TLS acceptor when the
//! client side is TLS) opens the upstream connection with `Conn::connect_with`
//! ([`Back`], wrapped by `TlsConnector::client` when the upstream side is TLS) and the
//! two exchange plaintext through the worker's mailbox.
//!
//! ```text
//! client --TLS--> [TlsHandler<Front>] --Msg::Bytes--> [TlsHandler<Back>] --TLS--> upstream
//!        <------- send                <--Msg::Bytes-- on_data            <-------
//! ```
//!
//! Every byte crosses user space (decrypt, copy, encrypt): no splice.
//! Backpressure: each side turns off the runtime's own output coupling
//! (`set_output_limit(0)`) and pauses the *other* side's reading while its own queue
//! holds [`HIGH_WATER`] or more, resuming it from `on_sent`. Half-close is propagated
//! (`on_eof` -> the other side's `shutdown_write`: `close_notify` + FIN under TLS); a
//! side whose peer ended closes once it has shut down too, or after the half-close
//! timeout. A failed upstream (refused, timed out, untrusted certificate) closes the
//! client connection with the upstream's reason, logged at `warn`.
//!
//! Shared by `examples/proxy.rs` and `tests/proxy_tls.rs` (`#[path]`).

// The test uses a part of it.
#![allow(dead_code)]

use ringcore::http::AccessFormat;
use ringcore::tls::TlsConnector;
use ringcore::{CloseReason, Conn, ConnId, ConnectRequest, Connecting, Handler, Notifier};
use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Output queued on one side at which the other side stops reading.
pub const HIGH_WATER: usize = 1 << 20;

/// What one relayed connection carried, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct Carried {
    /// The client's address (if it was looked up).
    pub client: Option<SocketAddr>,
    /// Plaintext bytes from the client forwarded to the upstream.
    pub to_upstream: u64,
    /// Plaintext bytes from the upstream forwarded to the client.
    pub to_client: u64,
    /// Since the client connection was accepted.
    pub duration: Duration,
    /// The upstream connection was established (and its TLS handshake done).
    pub connected: bool,
}

/// Called once per client connection when it closed, with why.
pub type Report = Arc<dyn Fn(&Carried, &CloseReason) + Send + Sync>;

/// Settings shared by every relayed connection (cheap to clone).
#[derive(Clone)]
pub struct RelayConfig {
    /// The upstream address.
    pub upstream: SocketAddr,
    /// TLS towards the upstream (`--upstream-tls`).
    pub connector: Option<TlsConnector>,
    /// Connect timeout (the upstream's TLS handshake has its own deadline).
    pub connect_timeout: Duration,
    /// No bytes either way on a side for this long: close (None: never).
    pub idle_timeout: Option<Duration>,
    /// After one side's end of stream, close if still open after this (None: never).
    pub half_close_timeout: Option<Duration>,
    /// The per-connection summary.
    pub report: Option<Report>,
}

impl RelayConfig {
    /// The client-side handler for a new connection from `client`.
    pub fn front(&self, client: Option<SocketAddr>) -> Front {
        Front {
            cfg: self.clone(),
            up: None,
            connecting: None,
            early: Vec::new(),
            me: None,
            up_paused: false,
            ends: Ends::default(),
            carried: Carried {
                client,
                to_upstream: 0,
                to_client: 0,
                duration: Duration::ZERO,
                connected: false,
            },
            start: Instant::now(),
            upstream_error: None,
        }
    }
}

/// One access-log line: client, upstream, bytes each way, duration, close reason.
pub fn access_line(
    format: AccessFormat,
    client: Option<SocketAddr>,
    upstream: SocketAddr,
    (up, down): (u64, u64),
    took: Duration,
    reason: &CloseReason,
) -> String {
    use ringcore::http::access_log::{json_escape, log_times};
    let (clf, iso) = log_times(SystemTime::now());
    let secs = took.as_secs_f64();
    let why = match reason {
        CloseReason::Error(e) => format!("error: {e}"),
        r => format!("{r:?}"),
    };
    match format {
        AccessFormat::Json => {
            let mut r = String::new();
            json_escape(&mut r, why.as_bytes());
            format!(
                "{{\"time\":\"{iso}\",\"client\":\"{}\",\"upstream\":\"{}\",\
                 \"bytes_to_upstream\":{up},\"bytes_to_client\":{down},\
                 \"duration_us\":{},\"close_reason\":\"{r}\"}}\n",
                client.map_or(String::new(), |a| a.to_string()),
                upstream,
                (secs * 1e6) as u64
            )
        }
        _ => format!(
            "{} - - [{clf}] \"CONNECT {}\" {up} {down} {secs:.6} \"{}\"\n",
            client.map_or("-".to_string(), |a| a.ip().to_string()),
            upstream,
            why.replace('"', "'")
        ),
    }
}

/// What the two halves tell each other.
enum Msg {
    /// The upstream connection is up (sent by [`Back`] from its `on_open`).
    Up,
    /// Plaintext to send on.
    Bytes(Vec<u8>),
    /// Stop reading: the sender's output is backed up.
    Pause,
    /// Read again.
    Resume,
    /// The sender's peer ended its stream: shut down our sending side.
    Eof,
    /// The sender closed; `Some` with the error that closed it.
    Closed(Option<String>),
}

/// Half-close bookkeeping of one side.
#[derive(Default)]
struct Ends {
    /// Our peer ended its stream.
    peer_ended: bool,
    /// We shut down our sending side (the other side's peer ended).
    shut: bool,
}

impl Ends {
    /// Records one end; closes once both are done, else arms the half-close timer.
    fn advance(&mut self, conn: &mut Conn<'_>, half_close: Option<Duration>) {
        if self.peer_ended && self.shut {
            conn.close();
        } else if let Some(t) = half_close {
            let at = conn.now() + t;
            conn.set_timer(Some(at));
        }
    }
}

fn half_close_expired(conn: &mut Conn<'_>) {
    conn.close_with(CloseReason::Error(io::Error::new(
        io::ErrorKind::TimedOut,
        "half-close timeout: the other direction stayed open",
    )));
}

/// The forwarding common to both sides: queue `bytes`, and pause the other side
/// (`other`) when our queue is at the mark.
fn forward(conn: &mut Conn<'_>, other: ConnId, bytes: &[u8], paused_other: &mut bool) {
    conn.send(bytes);
    if conn.queued_bytes() >= HIGH_WATER && !*paused_other {
        *paused_other = true;
        conn.notify(other, Msg::Pause);
    }
}

fn error_text(reason: &CloseReason) -> Option<String> {
    match reason {
        CloseReason::Local | CloseReason::PeerClosed => None,
        CloseReason::Error(e) => Some(e.to_string()),
        r => Some(format!("{r:?}")),
    }
}

/// Most client bytes kept while the upstream connection is not up; reading pauses
/// beyond it.
const EARLY_MAX: usize = 64 * 1024;

/// The accepted (client) side.
pub struct Front {
    cfg: RelayConfig,
    up: Option<ConnId>,
    /// The upstream connection until it is up (`Msg::Up`): cancelled if the client
    /// leaves first, so a pending connect or handshake ends with it.
    connecting: Option<Connecting>,
    /// Client bytes that arrived before the upstream was up (reading pauses at
    /// [`EARLY_MAX`], so at most that and one delivery).
    early: Vec<u8>,
    me: Option<Notifier>,
    /// We told the upstream side to stop reading.
    up_paused: bool,
    ends: Ends,
    carried: Carried,
    start: Instant,
    /// The upstream closed with this error (the client connection's close reason).
    upstream_error: Option<String>,
}

impl Handler for Front {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.me = Some(conn.notifier());
        conn.set_output_limit(0);
        conn.set_idle_timeout(self.cfg.idle_timeout);
        // Reading goes on until the upstream is up (bytes are kept in `early`, up to
        // EARLY_MAX), so a client that resets meanwhile is noticed and the pending
        // connect cancelled.
        let req = ConnectRequest::new(self.cfg.upstream).timeout(self.cfg.connect_timeout);
        let back = Back {
            down: conn.notifier(),
            cfg_idle: self.cfg.idle_timeout,
            half_close: self.cfg.half_close_timeout,
            down_paused: false,
            ends: Ends::default(),
            opened: false,
        };
        self.connecting = Some(match &self.cfg.connector {
            Some(tls) => conn.connect_with(req, tls.client(back)),
            None => conn.connect_with(req, back),
        });
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.carried.to_upstream += data.len() as u64;
        match self.up {
            Some(up) => conn.notify(up, Msg::Bytes(data.to_vec())),
            None => {
                self.early.extend_from_slice(data);
                if self.early.len() >= EARLY_MAX {
                    conn.pause_reading(); // until the upstream is up
                }
            }
        }
        data.len()
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.ends.peer_ended = true;
        // Before the upstream is up, `Msg::Up` passes the end on after the early bytes.
        if let Some(up) = self.up {
            conn.notify(up, Msg::Eof);
            self.ends.advance(conn, self.cfg.half_close_timeout);
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.up_paused {
            self.up_paused = false;
            if let Some(up) = self.up {
                conn.notify(up, Msg::Resume);
            }
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        half_close_expired(conn);
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<Msg>() else {
            return;
        };
        match *msg {
            Msg::Up => {
                self.up = Some(from);
                self.connecting = None;
                self.carried.connected = true;
                if !self.early.is_empty() {
                    conn.notify(from, Msg::Bytes(std::mem::take(&mut self.early)));
                }
                if self.ends.peer_ended {
                    conn.notify(from, Msg::Eof);
                }
                conn.resume_reading();
            }
            Msg::Bytes(b) => {
                self.carried.to_client += b.len() as u64;
                forward(conn, from, &b, &mut self.up_paused);
            }
            Msg::Pause => conn.pause_reading(),
            Msg::Resume => conn.resume_reading(),
            Msg::Eof => {
                self.ends.shut = true;
                conn.shutdown_write();
                self.ends.advance(conn, self.cfg.half_close_timeout);
            }
            Msg::Closed(err) => {
                self.up = None;
                match err {
                    Some(e) => {
                        let e = format!("upstream {}: {e}", self.cfg.upstream);
                        tracing::warn!(client = ?self.carried.client, "proxy: {e}");
                        self.upstream_error = Some(e.clone());
                        conn.close_with(CloseReason::Error(io::Error::other(e)));
                    }
                    None => conn.close(),
                }
            }
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        if let (Some(me), Some(up)) = (&self.me, self.up) {
            me.notify(up, Msg::Closed(error_text(&reason)));
        }
        // The upstream is not up yet: its connect (or TLS handshake) is cancelled now.
        if let Some(c) = self.connecting.take() {
            c.cancel();
        }
        self.carried.duration = self.start.elapsed();
        if let Some(report) = &self.cfg.report {
            report(&self.carried, &reason);
        }
    }
}

/// The upstream side, opened by a [`Front`].
pub struct Back {
    down: Notifier,
    cfg_idle: Option<Duration>,
    half_close: Option<Duration>,
    /// We told the client side to stop reading.
    down_paused: bool,
    ends: Ends,
    opened: bool,
}

impl Handler for Back {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        conn.set_output_limit(0);
        conn.set_idle_timeout(self.cfg_idle);
        conn.notify(self.down.id(), Msg::Up);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.notify(self.down.id(), Msg::Bytes(data.to_vec()));
        data.len()
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.ends.peer_ended = true;
        conn.notify(self.down.id(), Msg::Eof);
        self.ends.advance(conn, self.half_close);
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.down_paused {
            self.down_paused = false;
            conn.notify(self.down.id(), Msg::Resume);
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        half_close_expired(conn);
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<Msg>() else {
            return;
        };
        match *msg {
            Msg::Bytes(b) => forward(conn, from, &b, &mut self.down_paused),
            Msg::Pause => conn.pause_reading(),
            Msg::Resume => conn.resume_reading(),
            Msg::Eof => {
                self.ends.shut = true;
                conn.shutdown_write();
                self.ends.advance(conn, self.half_close);
            }
            // The client side is gone: finish sending what is queued, then go.
            Msg::Closed(_) => conn.close(),
            Msg::Up => {}
        }
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, _to: ConnId, _msg: Box<dyn Any>) {
        // The client side closed before it learnt of us (it left while the connect or
        // the upstream handshake ran): nobody is left to forward to.
        conn.close();
    }

    fn on_close(&mut self, reason: CloseReason) {
        // A connect or handshake that failed is an error even if `reason` is not.
        let err = error_text(&reason).or_else(|| {
            (!self.opened).then(|| "closed before the connection was established".into())
        });
        self.down.notify(self.down.id(), Msg::Closed(err));
    }
}
