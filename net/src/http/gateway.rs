//! An HTTP-aware reverse proxy on outbound connections ([`Conn::connect`]): requests
//! whose path starts with a prefix are forwarded to an upstream, everything else is
//! served by a [`Router`] on the spot. `examples/gateway.rs` runs it.
//!
//! ```text
//!  client --> GatewayConn (accepted; RequestParser::parse_event)
//!               | local path: Router::serve -> response
//!               | proxied:   pooled Back <- Start, or Conn::connect(upstream, Back); <-- Hello --
//!               |            request head + body pieces   -- Body*/End -->  Back --> upstream
//!               |            <-- Head / Body* / End (or Fail 502/504, Abort) -- Back <-- upstream
//! ```
//!
//! * The request goes out with its method, target and headers, minus hop-by-hop
//!   fields (`Connection` and the fields it names, `Keep-Alive`, `TE`, `Trailer`,
//!   `Transfer-Encoding`, `Upgrade`, `Proxy-*`), plus `X-Forwarded-For` (the client's
//!   address appended). Its body is streamed: `Content-Length` kept, chunked
//!   re-chunked as it arrives.
//! * The response head is parsed ([`parse_response_head`]); the body is decoded
//!   ([`ResponseBody`]) and re-framed for the client: `Content-Length` kept, chunked
//!   or close-delimited bodies sent chunked to HTTP/1.1 clients (close-delimited to
//!   HTTP/1.0 ones, then closed).
//! * Errors: connect refused/unreachable, a reset or a malformed response before the
//!   head -> `502 Bad Gateway`; connect timeout or no response head within
//!   [`GatewayConfig::response_timeout`] -> `504 Gateway Timeout`. After the head was
//!   sent, a failure aborts the client connection (the client sees a cut response,
//!   never a wrong one).
//! * Backpressure both ways: a side whose output holds
//!   [`GatewayConfig::high_water`] bytes pauses the other side's reading until it
//!   drained (`on_sent`), so a client that never reads holds at most about that much
//!   of a large response in memory, and a slow upstream slows the upload.
//!
//! * Upstream connections are kept alive in a per-worker pool
//!   ([`GatewayConfig::pool_max_idle`], default 32 per worker,
//!   [`GatewayConfig::pool_idle_timeout`], default 60 s; see `gateway_back.rs`). A
//!   bodyless request whose reused connection fails before any response byte (the
//!   upstream closed it meanwhile) is retried once on a fresh connection.
//! * `Expect: 100-continue` is answered by the gateway once the upstream is
//!   connected (and not forwarded).
//!
//! * A client that leaves (reset, or closes before its request was complete) while
//!   its exchange runs ends it at once: a pending upstream connect is cancelled
//!   ([`Connecting::cancel`]), an upstream connection in use is aborted. To notice,
//!   the front keeps reading while it waits: it holds what arrives (the next
//!   pipelined request, or body bytes sent before the upstream is connected) up to
//!   [`Limits::max_pending_input`], and stops reading beyond that.
//!
//! Limits (as built): one exchange at a time per client connection (a pipelined
//! request waits, held, until the response before it is sent); one upstream
//! address (no balancing); the front's deadlines are a keep-alive idle timeout
//! ([`Limits::keep_alive_timeout`]) and the upstream's connect and response timeouts:
//! it does not apply the header/body deadlines and minimum rates of [`HttpConn`](super::HttpConn);
//! a local route's request body is buffered up to [`Limits::max_buffered_body`]
//! (413 beyond); `Upgrade` (WebSocket) is not forwarded.

use super::gateway_back::{pool_take, Back, Exchange};
use super::gateway_log::GatewayLog;
use super::gateway_pick::{mark_down, pick};
use super::{write_error, DateCache, Event, Limits, Reply, RequestParser, Response, Router};
use crate::{CloseReason, Conn, ConnId, ConnInfo, ConnectRequest, Connecting, Handler, Notifier};
use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where and how a [`GatewayConn`] forwards requests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The first upstream server (the `Host` sent when a request has none).
    pub upstream: SocketAddr,
    /// Every upstream server, tried round-robin (see [`down_time`](Self::down_time));
    /// starts as `[upstream]`.
    pub upstreams: Vec<SocketAddr>,
    /// With several upstreams: how long one whose connect failed (refused,
    /// unreachable, timed out) is skipped by this worker (default 10 s, nginx's
    /// `fail_timeout`). The request that met the failure goes to the next upstream;
    /// when none is left, the client gets `502` (`504` if the last connect timed
    /// out). A single upstream is never skipped.
    pub down_time: Duration,
    /// Requests whose path starts with this are forwarded (default `/api/`).
    pub prefix: String,
    /// Upstream connect timeout (default 5 s); past it the client gets 504.
    pub connect_timeout: Duration,
    /// Time allowed for the response head after the request went out, and between
    /// two reads of the response body (default 60 s); past it: 504 (or an abort once
    /// the head was sent).
    pub response_timeout: Duration,
    /// Output bytes queued on one side at which the other side stops reading
    /// (default 1 MiB).
    pub high_water: usize,
    /// Limits of the client side's request parser.
    pub limits: Limits,
    /// Idle kept-alive upstream connections kept per worker (default 32; 0: one
    /// upstream connection per request, sent with `Connection: close`).
    pub pool_max_idle: usize,
    /// How long an idle upstream connection is kept (default 60 s, nginx's
    /// `keepalive_timeout` for upstreams).
    pub pool_idle_timeout: Duration,
}

impl GatewayConfig {
    /// Forwards `/api/...` to `upstream` with the defaults.
    pub fn new(upstream: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            upstream,
            upstreams: vec![upstream],
            down_time: Duration::from_secs(10),
            prefix: "/api/".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            high_water: 1 << 20,
            limits: Limits::default().max_body_bytes(usize::MAX),
            pool_max_idle: 32,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }

    /// Adds an upstream: requests are spread round-robin over all of them.
    pub fn add_upstream(mut self, addr: SocketAddr) -> Self {
        if !self.upstreams.contains(&addr) {
            self.upstreams.push(addr);
        }
        self
    }

    /// Sets how long an upstream whose connect failed is skipped (with several).
    pub fn down_time(mut self, t: Duration) -> Self {
        self.down_time = t;
        self
    }

    /// Sets the most idle upstream connections kept per worker (0: no pool).
    pub fn pool_max_idle(mut self, n: usize) -> Self {
        self.pool_max_idle = n;
        self
    }

    /// Sets how long an idle upstream connection is kept.
    pub fn pool_idle_timeout(mut self, t: Duration) -> Self {
        self.pool_idle_timeout = t;
        self
    }

    /// Sets the path prefix that is forwarded.
    pub fn prefix(mut self, p: &str) -> Self {
        self.prefix = p.into();
        self
    }

    /// Sets the upstream connect timeout.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets the response timeout.
    pub fn response_timeout(mut self, t: Duration) -> Self {
        self.response_timeout = t;
        self
    }

    /// Sets the backpressure mark.
    pub fn high_water(mut self, bytes: usize) -> Self {
        self.high_water = bytes;
        self
    }

    /// Sets the client side's parser limits.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }
}

/// GatewayConn -> back.
pub(super) enum ToBack {
    /// Serve this exchange (to an idle pooled connection).
    Start(Exchange),
    /// Request body bytes, framed for the upstream.
    Body(Vec<u8>),
    /// The request body is complete.
    BodyEnd,
    /// The client is gone: drop the exchange.
    Gone,
    Pause,
    Resume,
}

/// Back -> front.
pub(super) enum ToFront {
    /// Connected: the back's id is the message's sender.
    Hello,
    /// The response head, framed for the client; `true`: close after the body.
    Head(Vec<u8>, bool),
    /// Response body bytes, framed for the client.
    Body(Vec<u8>),
    /// The response is complete.
    End,
    /// No response head was sent: answer with this status and close.
    Fail(u16, String),
    /// The response broke after its head: cut the client connection.
    Abort,
    /// A reused connection failed before any response byte: run the exchange on a
    /// fresh one.
    Retry(Exchange),
    /// The connect to the exchange's upstream failed (nothing was sent): try the
    /// next upstream, else answer this status.
    ConnectFailed(Exchange, u16, String),
    Pause,
    Resume,
}

/// Hop-by-hop fields (RFC 9110 section 7.6.1) and framing fields the gateway sets.
pub(super) fn is_hop(name: &str, named: &[Vec<u8>]) -> bool {
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || named
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
}

/// The field names a `Connection` header lists.
pub(super) fn connection_tokens<'a>(
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<Vec<u8>> {
    fields
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b',').map(|t| t.trim_ascii().to_vec()))
        .collect()
}

/// Appends `data` as one chunk (nothing for an empty piece).
pub(super) fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if !data.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// Where the front stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading requests.
    Idle,
    /// A request is forwarded; waiting for the back's `Hello`.
    Connecting,
    /// Streaming the request body to the back.
    Body,
    /// The request is out; relaying the response.
    Response,
}

/// The client side of the gateway: one per accepted connection.
pub struct GatewayConn {
    cfg: Arc<GatewayConfig>,
    router: Arc<Router>,
    /// The request parser (taken out while `on_data` runs, so requests it lends and
    /// `self` can be used together).
    parser: Option<RequestParser>,
    phase: Phase,
    peer: Option<IpAddr>,
    me: Option<Notifier>,
    back: Option<ConnId>,
    /// A new upstream connection whose connect is pending (before its `Hello`):
    /// cancelled if the client leaves meanwhile.
    connecting: Option<Connecting>,
    /// The request of the current exchange has a body (chunked: `Some(false)`).
    body: Option<bool>,
    /// The request body ended (its End event was read).
    body_done: bool,
    reply: Reply,
    /// The response head went out.
    head_sent: bool,
    /// Close after this exchange.
    close_after: bool,
    /// The back was paused because this side's output is backed up.
    back_paused: bool,
    /// Input that arrived while an exchange ran (see the module docs), served once
    /// the front reads requests again.
    held: Vec<u8>,
    /// The client's end of stream arrived behind `held`: taken after it.
    eof_held: bool,
    /// A local route's request head and body being collected.
    local: Option<(Vec<u8>, Vec<u8>)>,
    /// The client waits for `100 Continue` before sending the body.
    expect_continue: bool,
    /// Upstreams whose connect failed for the current exchange.
    tried: Vec<SocketAddr>,
    /// The access log, if any.
    log: Option<GatewayLog>,
}

impl GatewayConn {
    /// A front for one client connection.
    pub fn new(router: Arc<Router>, cfg: Arc<GatewayConfig>, peer: Option<IpAddr>) -> GatewayConn {
        GatewayConn {
            parser: Some(RequestParser::new(cfg.limits.clone())),
            cfg,
            router,
            phase: Phase::Idle,
            peer,
            me: None,
            back: None,
            connecting: None,
            body: None,
            body_done: false,
            reply: Reply::default(),
            head_sent: false,
            close_after: false,
            back_paused: false,
            held: Vec::new(),
            eof_held: false,
            local: None,
            expect_continue: false,
            tried: Vec::new(),
            log: None,
        }
    }

    /// Logs every request of this connection through `hook` (see
    /// [`access_log`](super::access_log)): forwarded ones with the upstream that
    /// answered ([`AccessRecord::upstream`](super::AccessRecord::upstream)), and the
    /// gateway's own errors (502/504) with their status; `client` is the peer
    /// ([`ConnInfo::peer_addr`]). `bytes` counts what followed the response head
    /// (chunk framing included for a chunked answer).
    pub fn with_access_log(
        mut self,
        client: Option<SocketAddr>,
        hook: super::AccessHook,
    ) -> GatewayConn {
        self.log = Some(GatewayLog::new(hook, client));
        self
    }

    /// A [`Factory`](crate::Factory) closure: `router` for local paths, `cfg` for
    /// forwarded ones.
    pub fn factory(
        router: Router,
        cfg: GatewayConfig,
    ) -> impl Fn(&ConnInfo) -> GatewayConn + Send + Sync + 'static {
        let (router, cfg) = (Arc::new(router), Arc::new(cfg));
        move |info: &ConnInfo| {
            GatewayConn::new(
                router.clone(),
                cfg.clone(),
                info.peer_addr().map(|a| a.ip()),
            )
        }
    }

    /// The `Date` for a response written in this loop turn (the wall clock is read
    /// about once a second: [`turn_date`](super::turn_date)).
    fn date(conn: &Conn<'_>) -> DateCache {
        super::turn_date(conn.now())
    }

    /// The upstream request head for `req`.
    fn upstream_head(&self, req: &super::Request<'_>, length: Option<u64>, body: bool) -> Vec<u8> {
        let mut h = Vec::with_capacity(req.target().len() + 256);
        h.extend_from_slice(req.method().as_bytes());
        h.push(b' ');
        h.extend_from_slice(req.target().as_bytes());
        h.extend_from_slice(b" HTTP/1.1\r\n");
        let named = connection_tokens(req.headers());
        let mut xff: Option<Vec<u8>> = None;
        let mut host = false;
        for (name, value) in req.headers() {
            // The gateway answers `Expect: 100-continue` itself once the upstream is
            // connected, and streams the body then.
            if name.eq_ignore_ascii_case("expect") {
                continue;
            }
            if name.eq_ignore_ascii_case("x-forwarded-for") {
                let x = xff.get_or_insert_with(Vec::new);
                if !x.is_empty() {
                    x.extend_from_slice(b", ");
                }
                x.extend_from_slice(value);
                continue;
            }
            if is_hop(name, &named) {
                continue;
            }
            host |= name.eq_ignore_ascii_case("host");
            h.extend_from_slice(name.as_bytes());
            h.extend_from_slice(b": ");
            h.extend_from_slice(value);
            h.extend_from_slice(b"\r\n");
        }
        if !host {
            h.extend_from_slice(format!("Host: {}\r\n", self.cfg.upstream).as_bytes());
        }
        if let Some(ip) = self.peer {
            let x = xff.get_or_insert_with(Vec::new);
            if !x.is_empty() {
                x.extend_from_slice(b", ");
            }
            x.extend_from_slice(ip.to_string().as_bytes());
        }
        if let Some(x) = xff {
            h.extend_from_slice(b"X-Forwarded-For: ");
            h.extend_from_slice(&x);
            h.extend_from_slice(b"\r\n");
        }
        match (body, length) {
            (true, Some(n)) => h.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes()),
            (true, None) => h.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            _ => {}
        }
        if self.cfg.pool_max_idle == 0 {
            h.extend_from_slice(b"Connection: close\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// Starts forwarding `req`: opens the back with the request head.
    fn start(
        &mut self,
        conn: &mut Conn<'_>,
        req: &super::Request<'_>,
        length: Option<u64>,
        body: bool,
    ) {
        let head = self.upstream_head(req, length, body);
        if let Some(l) = &mut self.log {
            l.begin(req, conn.now());
        }
        self.reply = req.reply();
        self.close_after = !req.keep_alive();
        self.body = body.then_some(length.is_some());
        self.body_done = !body;
        self.head_sent = false;
        self.back = None;
        self.phase = Phase::Connecting;
        let front = self.me.get_or_insert_with(|| conn.notifier()).clone();
        self.tried.clear();
        let ex = Exchange {
            upstream: self.cfg.upstream,
            front,
            head,
            head_request: req.is_head(),
            client_chunked: req.version_minor() >= 1,
            has_body: body,
        };
        self.launch(conn, ex, true);
        conn.set_idle_timeout(None);
    }

    /// Runs `ex` on the next live upstream (round-robin, see
    /// [`GatewayConfig::down_time`]): on an idle pooled connection (`pooled`), else on
    /// a new one. With no live upstream left: 502.
    fn launch(&mut self, conn: &mut Conn<'_>, mut ex: Exchange, pooled: bool) {
        let Some(addr) = pick(&self.cfg.upstreams, &self.tried, conn.now()) else {
            let why = format!(
                "no live upstream: all {} are marked down after failed connects (each is tried again {:?} after its failure)",
                self.cfg.upstreams.len(),
                self.cfg.down_time
            );
            tracing::debug!("gateway: {why}");
            return self.fail(conn, 502, &why);
        };
        tracing::debug!(
            "gateway: {} -> upstream {addr}",
            String::from_utf8_lossy(ex.head.split(|&b| b == b'\r').next().unwrap_or(&[]))
        );
        ex.upstream = addr;
        if let Some(l) = &mut self.log {
            l.upstream(addr);
        }
        if pooled {
            if let Some(id) = pool_take(addr) {
                conn.notify(id, ToBack::Start(ex));
                return;
            }
        }
        let r = ConnectRequest::new(addr).timeout(self.cfg.connect_timeout);
        self.connecting = Some(conn.connect_with(r, Back::new(self.cfg.clone(), ex)));
    }

    /// The connect to `ex.upstream` failed: mark it down (with several upstreams)
    /// and try the next, else answer `status`.
    fn connect_failed(&mut self, conn: &mut Conn<'_>, ex: Exchange, status: u16, why: String) {
        let n = self.cfg.upstreams.len();
        if n > 1 {
            mark_down(ex.upstream, conn.now() + self.cfg.down_time);
            tracing::debug!(
                "gateway: upstream {} marked down for {:?}: {why}",
                ex.upstream,
                self.cfg.down_time
            );
        }
        self.tried.push(ex.upstream);
        if pick(&self.cfg.upstreams, &self.tried, conn.now()).is_some() {
            return self.launch(conn, ex, true);
        }
        if n > 1 {
            let why = format!("no live upstream (all {n} failed or are down); last: {why}");
            self.fail(conn, status, &why);
        } else {
            self.fail(conn, status, &why);
        }
    }

    /// Answers `status` without the upstream and closes (the request body may be
    /// unread).
    fn fail(&mut self, conn: &mut Conn<'_>, status: u16, why: &str) {
        if let Some(l) = &mut self.log {
            l.end(status, conn.now());
        }
        if self.head_sent {
            conn.abort();
            return;
        }
        let mut res = Response::new();
        res.set_status(status)
            .set_content_type("text/plain")
            .set_body(format!("{} {}: {why}\n", status, super::reason_phrase(status)).as_bytes())
            .set_close();
        let mut out = Vec::new();
        let mut reply = self.reply;
        reply.keep_alive = false;
        res.write_to(&mut out, &Self::date(conn), reply);
        conn.send_owned(out);
        conn.close();
        self.phase = Phase::Idle;
    }

    /// The exchange is over: next request, or close.
    fn finish(&mut self, conn: &mut Conn<'_>) {
        if let Some(l) = &mut self.log {
            l.end(0, conn.now());
        }
        self.phase = Phase::Idle;
        self.back = None;
        self.connecting = None;
        self.back_paused = false;
        if self.close_after || !self.body_done || conn.is_draining() {
            conn.close();
            return;
        }
        conn.set_idle_timeout(Some(self.cfg.limits.keep_alive_timeout));
        conn.resume_reading();
        self.serve_held(conn);
    }

    /// True while an exchange waits for its upstream connection or its response: the
    /// front reads no request then (it holds the input).
    fn waiting(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Response)
    }

    /// While an exchange runs, stops reading once a head's worth and a receive batch
    /// are held (a reset is then noticed only once reading resumes).
    fn bound_held(&mut self, conn: &mut Conn<'_>) {
        if self.waiting() && self.held.len() >= self.cfg.limits.max_pending_input() {
            conn.pause_reading();
        }
    }

    /// Reads requests from the held input (the front is free to read again).
    fn serve_held(&mut self, conn: &mut Conn<'_>) {
        if !self.held.is_empty() {
            if let Some(mut parser) = self.parser.take() {
                let held = std::mem::take(&mut self.held);
                let used = self.read_requests(&mut parser, conn, &held);
                self.parser = Some(parser);
                self.held = held;
                self.held.drain(..used.min(self.held.len()));
            }
            self.bound_held(conn);
        }
        if self.eof_held && (self.held.is_empty() || !self.waiting()) {
            self.eof_held = false;
            self.peer_ended(conn);
        }
    }

    /// The client's end of stream, once the input before it was read.
    fn peer_ended(&mut self, conn: &mut Conn<'_>) {
        if self.phase == Phase::Idle {
            conn.close();
        } else if !self.body_done {
            // The request body was cut short: the upstream exchange cannot complete.
            if let Some(b) = self.back.take() {
                conn.notify(b, ToBack::Gone);
            }
            if let Some(c) = self.connecting.take() {
                c.cancel();
            }
            conn.close();
        }
        // Otherwise the request is complete: the response still goes out (a client
        // may half-close after its request), then the connection closes.
        else {
            self.close_after = true;
        }
    }

    fn serve_local(&mut self, conn: &mut Conn<'_>, req: &super::Request<'_>) -> bool {
        let mut res = Response::new();
        let mut out = Vec::new();
        let keep = self
            .router
            .serve(req, &mut res, &Self::date(conn), &mut out);
        if let Some(l) = &mut self.log {
            l.local(req, &out, conn.now());
        }
        conn.send_owned(out);
        if !keep {
            conn.close();
        }
        keep
    }
}

impl GatewayConn {
    /// Reads requests from `data` while the front is free to: serves local ones,
    /// starts forwarding a proxied one, feeds a forwarded body. Returns bytes used.
    fn read_requests(
        &mut self,
        parser: &mut RequestParser,
        conn: &mut Conn<'_>,
        data: &[u8],
    ) -> usize {
        let mut used = 0;
        loop {
            if matches!(self.phase, Phase::Connecting | Phase::Response) {
                return used;
            }
            let event = match parser.parse_event(&data[used..]) {
                Ok(e) => e,
                Err(e) => {
                    if self.phase == Phase::Body {
                        if let Some(b) = self.back {
                            conn.notify(b, ToBack::Gone);
                        }
                        self.phase = Phase::Idle;
                    }
                    let mut out = Vec::new();
                    write_error(&mut out, &Self::date(conn), &e);
                    conn.send_owned(out);
                    conn.close();
                    return data.len();
                }
            };
            match event {
                Event::Partial => return used,
                Event::Request { request, consumed } => {
                    used += consumed;
                    if request.path().starts_with(&self.cfg.prefix) {
                        self.start(conn, &request, None, false);
                        return used;
                    }
                    if !self.serve_local(conn, &request) {
                        return data.len();
                    }
                }
                Event::Head {
                    request,
                    consumed,
                    length,
                } => {
                    used += consumed;
                    if request.path().starts_with(&self.cfg.prefix) {
                        self.start(conn, &request, length, true);
                        self.expect_continue = parser.take_expect_continue();
                        return used;
                    }
                    self.local = Some((request.head.to_vec(), Vec::new()));
                    if parser.take_expect_continue() {
                        conn.send(CONTINUE);
                    }
                }
                Event::Body {
                    data: piece,
                    consumed,
                } => {
                    used += consumed;
                    if let Some((_, body)) = &mut self.local {
                        if body.len() + piece.len() > self.cfg.limits.max_buffered_body {
                            let e = super::Error::new(413, "body larger than max_buffered_body");
                            let mut out = Vec::new();
                            write_error(&mut out, &Self::date(conn), &e);
                            conn.send_owned(out);
                            conn.close();
                            return data.len();
                        }
                        body.extend_from_slice(piece);
                    } else if let (Some(b), false) = (self.back, piece.is_empty()) {
                        let mut framed = Vec::with_capacity(piece.len() + 16);
                        if self.body == Some(false) {
                            chunk(&mut framed, piece);
                        } else {
                            framed.extend_from_slice(piece);
                        }
                        conn.notify(b, ToBack::Body(framed));
                    }
                }
                Event::End { consumed } => {
                    used += consumed;
                    if let Some((head, body)) = self.local.take() {
                        let keep = match parser.ended_request(&head, &body) {
                            Some(req) => self.serve_local(conn, &req),
                            None => false,
                        };
                        if !keep {
                            return data.len();
                        }
                        continue;
                    }
                    self.body_done = true;
                    if let Some(b) = self.back {
                        if self.body == Some(false) {
                            conn.notify(b, ToBack::Body(b"0\r\n\r\n".to_vec()));
                        }
                        conn.notify(b, ToBack::BodyEnd);
                    }
                    self.phase = Phase::Response;
                    return used;
                }
            }
        }
    }
}

impl Handler for GatewayConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.me = Some(conn.notifier());
        conn.set_idle_timeout(Some(self.cfg.limits.keep_alive_timeout));
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.waiting() || !self.held.is_empty() {
            // Behind held input (or while an exchange runs): in order, after it.
            self.held.extend_from_slice(data);
            if self.waiting() {
                self.bound_held(conn);
            } else {
                self.serve_held(conn);
            }
            return data.len();
        }
        let Some(mut parser) = self.parser.take() else {
            return 0;
        };
        let used = self.read_requests(&mut parser, conn, data);
        self.parser = Some(parser);
        if used < data.len() && self.waiting() {
            self.held.extend_from_slice(&data[used..]);
            self.bound_held(conn);
            return data.len();
        }
        used
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<ToFront>() else {
            return;
        };
        // Before `Hello` the back's id is unknown: only the exchange's first messages
        // (Hello, or a failure) are taken from any back, and only while connecting.
        let current = self.back == Some(from);
        let early = self.phase == Phase::Connecting
            && matches!(
                *msg,
                ToFront::Hello | ToFront::Fail(..) | ToFront::Retry(_) | ToFront::ConnectFailed(..)
            );
        if !current && !early {
            return;
        }
        match *msg {
            ToFront::ConnectFailed(ex, status, why) => {
                self.back = None;
                self.connecting = None;
                self.connect_failed(conn, ex, status, why);
            }
            ToFront::Retry(ex) => {
                self.phase = Phase::Connecting;
                self.back = None;
                self.connecting = None;
                self.launch(conn, ex, false);
            }
            ToFront::Hello => {
                self.back = Some(from);
                self.connecting = None;
                if self.body_done {
                    self.phase = Phase::Response;
                } else {
                    self.phase = Phase::Body;
                    if std::mem::take(&mut self.expect_continue) {
                        conn.send(CONTINUE);
                    }
                    conn.resume_reading();
                    self.serve_held(conn);
                }
            }
            ToFront::Head(bytes, close) => {
                if let Some(l) = &mut self.log {
                    l.head(&bytes);
                }
                self.head_sent = true;
                self.close_after |= close;
                conn.send_owned(bytes);
            }
            ToFront::Body(bytes) => {
                if let Some(l) = &mut self.log {
                    l.body(bytes.len());
                }
                conn.send_owned(bytes);
                if conn.queued_bytes() >= self.cfg.high_water && !self.back_paused {
                    self.back_paused = true;
                    conn.notify(from, ToBack::Pause);
                }
            }
            ToFront::End => self.finish(conn),
            ToFront::Fail(status, why) => self.fail(conn, status, &why),
            ToFront::Abort => {
                if let Some(l) = &mut self.log {
                    l.end(502, conn.now());
                }
                conn.abort();
            }
            ToFront::Pause => conn.pause_reading(),
            ToFront::Resume => {
                if self.phase == Phase::Body {
                    conn.resume_reading();
                }
            }
        }
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, _to: ConnId, msg: Box<dyn Any>) {
        // A pooled connection closed before it got the exchange: use another one.
        if let Ok(m) = msg.downcast::<ToBack>() {
            if let (ToBack::Start(ex), Phase::Connecting) = (*m, self.phase) {
                self.launch(conn, ex, true);
            }
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        if self.phase == Phase::Idle {
            conn.close();
        } else {
            self.close_after = true;
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.back_paused {
            self.back_paused = false;
            if let Some(b) = self.back {
                conn.notify(b, ToBack::Resume);
            }
        }
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        if self.held.is_empty() {
            self.peer_ended(conn);
        } else {
            self.eof_held = true;
        }
    }

    fn on_close(&mut self, _reason: CloseReason) {
        // A forwarded request the client left before it was answered: 499, as nginx.
        // on_close has no loop-turn clock: this rare path reads the clock itself.
        if let Some(l) = self.log.as_mut().filter(|l| l.pending()) {
            l.end(499, std::time::Instant::now());
        }
        if let (Some(me), Some(b)) = (&self.me, self.back) {
            me.notify(b, ToBack::Gone);
        }
        // A connect still pending: cancelled now, not at its timeout.
        if let Some(c) = self.connecting.take() {
            c.cancel();
        }
    }
}
