//! The upstream side of the gateway: [`Back`], one outbound connection, and the
//! per-worker pool of idle kept-alive upstream connections.
//!
//! A `Back` runs one exchange at a time ([`Exchange`]: the request head and who
//! asked). After a complete response on a connection both sides keep alive, with the
//! whole request sent, it returns to the pool (at most
//! [`GatewayConfig::pool_max_idle`] per worker and upstream; LIFO, so the warmest
//! connection is reused and the others time out) and waits there up to
//! [`GatewayConfig::pool_idle_timeout`]; an upstream that closes it, a drain, or
//! unexpected bytes close it. A request on a reused connection that fails before the
//! first response byte (the upstream closed it just as it was reused) is retried once
//! on a fresh connection when it has no body.

use super::client::{parse_response_head, BodyFraming, ResponseBody, ResponseHead};
use super::gateway::{chunk, connection_tokens, is_hop, GatewayConfig, ToBack, ToFront};
use crate::{CloseReason, Conn, ConnId, Handler, Notifier};
use std::any::Any;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

thread_local! {
    /// This worker's idle upstream connections, most recently used last.
    static POOL: RefCell<Vec<(SocketAddr, ConnId)>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to `upstream` from this worker's pool (removed from it).
pub(super) fn pool_take(upstream: SocketAddr) -> Option<ConnId> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().rposition(|(a, _)| *a == upstream)?;
        Some(p.remove(i).1)
    })
}

fn pool_put(upstream: SocketAddr, id: ConnId, max: usize) -> bool {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.iter().filter(|(a, _)| *a == upstream).count() >= max {
            return false;
        }
        p.push((upstream, id));
        true
    })
}

fn pool_remove(id: ConnId) {
    POOL.with(|p| p.borrow_mut().retain(|(_, c)| *c != id));
}

/// Idle upstream connections in the calling worker's gateway pool (all upstreams).
pub fn gateway_idle_connections() -> usize {
    POOL.with(|p| p.borrow().len())
}

/// One request to forward.
pub(super) struct Exchange {
    /// The upstream it goes to (chosen by the front).
    pub(super) upstream: SocketAddr,
    /// The front that asked (and gets the response).
    pub(super) front: Notifier,
    /// The upstream request head (kept for a retry).
    pub(super) head: Vec<u8>,
    pub(super) head_request: bool,
    /// The client takes chunked responses (HTTP/1.1).
    pub(super) client_chunked: bool,
    /// The request has a body (it cannot be replayed).
    pub(super) has_body: bool,
}

/// One upstream connection.
pub(super) struct Back {
    cfg: Arc<GatewayConfig>,
    /// The upstream this connection goes to.
    upstream: SocketAddr,
    me: Option<ConnId>,
    /// Speaks for this connection from `on_close` (set once connected).
    notifier: Option<Notifier>,
    /// The exchange being served; `None` while idle in the pool.
    ex: Option<Exchange>,
    /// Set once the response head is parsed: the body reader, and whether the client
    /// gets it chunked.
    body: Option<(ResponseBody, bool)>,
    /// The upstream keeps the connection after this response.
    resp_keep: bool,
    /// The whole request body was handed over.
    request_done: bool,
    opened: bool,
    /// The front was told how the exchange ended.
    finished: bool,
    front_paused: bool,
    /// This exchange runs on a connection reused from the pool.
    reused: bool,
    /// A response byte arrived for this exchange.
    got_bytes: bool,
}

impl Back {
    pub(super) fn new(cfg: Arc<GatewayConfig>, ex: Exchange) -> Back {
        Back {
            cfg,
            upstream: ex.upstream,
            me: None,
            notifier: None,
            ex: Some(ex),
            body: None,
            resp_keep: false,
            request_done: false,
            opened: false,
            finished: false,
            front_paused: false,
            reused: false,
            got_bytes: false,
        }
    }

    fn front(&self) -> Option<ConnId> {
        self.ex.as_ref().map(|e| e.front.id())
    }

    fn tell(&mut self, conn: Option<&mut Conn<'_>>, m: ToFront) {
        if matches!(
            m,
            ToFront::End | ToFront::Fail(..) | ToFront::Abort | ToFront::Retry(_)
        ) {
            if self.finished {
                return;
            }
            self.finished = true;
        }
        let Some(ex) = &self.ex else {
            return;
        };
        let to = ex.front.id();
        // Without a `Conn` (from `on_close`), send as this connection if it ever
        // connected (the front checks the sender), else as the front itself (a
        // connect failure, which the front takes while it waits for `Hello`).
        match (conn, &self.notifier) {
            (Some(c), _) => c.notify(to, m),
            (None, Some(n)) => n.notify(to, m),
            (None, None) => ex.front.notify(to, m),
        }
    }

    /// The exchange failed: a cut response (`Abort`) once the head went out, a retry
    /// on a fresh connection if this reused one failed before any response byte (and
    /// the request can be replayed), else `status`.
    fn give_up(&mut self, conn: Option<&mut Conn<'_>>, status: u16, why: String, retry: bool) {
        tracing::debug!("gateway: upstream {}: {why}", self.upstream);
        let replay = retry
            && self.reused
            && !self.got_bytes
            && self.ex.as_ref().is_some_and(|e| !e.has_body);
        let m = if self.body.is_some() {
            ToFront::Abort
        } else if replay && !self.finished {
            self.finished = true;
            if let Some(ex) = self.ex.take() {
                let to = ex.front.id();
                let sender = self.notifier.clone().unwrap_or_else(|| ex.front.clone());
                match conn {
                    Some(c) => c.notify(to, ToFront::Retry(ex)),
                    None => sender.notify(to, ToFront::Retry(ex)),
                }
            }
            return;
        } else {
            ToFront::Fail(status, why)
        };
        self.tell(conn, m);
    }

    fn fail(&mut self, conn: &mut Conn<'_>, status: u16, why: String, retry: bool) {
        self.give_up(Some(conn), status, why, retry);
        conn.abort();
    }

    /// Starts the exchange in `self.ex`: head out, response clock, `Hello`.
    fn begin(&mut self, conn: &mut Conn<'_>) {
        let Some(ex) = &self.ex else {
            return;
        };
        conn.send(&ex.head);
        self.request_done = !ex.has_body;
        let front = ex.front.id();
        self.body = None;
        self.finished = false;
        self.got_bytes = false;
        self.front_paused = false;
        self.arm_deadline(conn);
        conn.resume_reading();
        conn.notify(front, ToFront::Hello);
    }

    /// The client's response head for `h`, and whether the client must be closed
    /// after the body.
    fn client_head(&self, h: &ResponseHead, client_chunked: bool) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", h.status, h.reason).as_bytes());
        let named = connection_tokens(h.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        for (name, value) in &h.headers {
            if is_hop(name, &named) {
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        let mut close = false;
        match h.framing {
            BodyFraming::None => {
                if let Some(v) = h.header("content-length") {
                    out.extend_from_slice(b"Content-Length: ");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
            }
            BodyFraming::Length(n) => {
                out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
            }
            BodyFraming::Chunked | BodyFraming::Close if client_chunked => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            BodyFraming::Chunked | BodyFraming::Close => close = true,
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        (out, close)
    }

    /// The response is complete: tell the front, then back to the pool or close.
    fn end(&mut self, conn: &mut Conn<'_>) {
        if let (Some(front), Some((_, true))) = (self.front(), &self.body) {
            conn.notify(front, ToFront::Body(b"0\r\n\r\n".to_vec()));
        }
        self.tell(Some(conn), ToFront::End);
        let reuse = self.resp_keep
            && self.request_done
            && !conn.is_draining()
            && self.cfg.pool_max_idle > 0
            && self
                .me
                .is_some_and(|me| pool_put(self.upstream, me, self.cfg.pool_max_idle));
        if !reuse {
            conn.close();
            return;
        }
        self.ex = None;
        self.body = None;
        self.front_paused = false;
        conn.resume_reading();
        conn.set_timer(Some(conn.now() + self.cfg.pool_idle_timeout));
    }

    fn close_idle(&mut self, conn: &mut Conn<'_>) {
        if let Some(me) = self.me {
            pool_remove(me);
        }
        conn.close();
    }

    fn arm_deadline(&self, conn: &mut Conn<'_>) {
        conn.set_timer(Some(conn.now() + self.cfg.response_timeout));
    }

    /// Parses the response head (skipping interim ones); returns bytes used, or
    /// `None` after a failure.
    fn read_head(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> Option<usize> {
        let Some(ex) = &self.ex else {
            return Some(0);
        };
        let (head_request, client_chunked, front) =
            (ex.head_request, ex.client_chunked, ex.front.id());
        let mut used = 0;
        loop {
            match parse_response_head(&data[used..], head_request) {
                Ok(None) => {
                    if data.len() - used > self.cfg.limits.max_head_bytes {
                        self.fail(conn, 502, "response head too large".into(), false);
                        return None;
                    }
                    return Some(used);
                }
                Err(e) => {
                    self.fail(conn, 502, e.to_string(), false);
                    return None;
                }
                Ok(Some((head, n))) => {
                    used += n;
                    if head.is_interim() {
                        continue;
                    }
                    let (bytes, close) = self.client_head(&head, client_chunked);
                    let chunked = matches!(head.framing, BodyFraming::Chunked | BodyFraming::Close)
                        && client_chunked;
                    self.resp_keep = head.keep_alive;
                    self.body = Some((ResponseBody::new(head.framing), chunked));
                    conn.notify(front, ToFront::Head(bytes, close));
                    return Some(used);
                }
            }
        }
    }
}

impl Handler for Back {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.opened = true;
        self.me = Some(conn.id());
        self.notifier = Some(conn.notifier());
        // Forwarding: this side's reading is paused by the front, not by its own
        // output (see the connect module docs).
        conn.set_output_limit(0);
        self.begin(conn);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        let Some(front) = self.front() else {
            // Bytes on an idle connection: it cannot be reused safely.
            self.close_idle(conn);
            return data.len();
        };
        self.got_bytes = true;
        self.arm_deadline(conn);
        let mut used = 0;
        if self.body.is_none() {
            match self.read_head(conn, data) {
                Some(n) => used = n,
                None => return data.len(),
            }
        }
        let mut decoded = Vec::new();
        let Some((reader, chunked)) = self.body.as_mut() else {
            return used;
        };
        let fed = match reader.feed(&data[used..], &mut decoded) {
            Ok(f) => f,
            Err(e) => {
                self.fail(conn, 502, format!("bad chunked body: {e}"), false);
                return data.len();
            }
        };
        used += fed.consumed;
        if !decoded.is_empty() {
            let framed = if *chunked {
                let mut v = Vec::with_capacity(decoded.len() + 16);
                chunk(&mut v, &decoded);
                v
            } else {
                decoded
            };
            conn.notify(front, ToFront::Body(framed));
        }
        if fed.done {
            self.end(conn);
            // Bytes past the response on a connection going back to the pool are a
            // protocol error: closing is the safe answer.
            if used < data.len() && self.ex.is_none() {
                self.close_idle(conn);
            }
            return data.len();
        }
        used
    }

    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        if self.ex.is_none() {
            return self.close_idle(conn);
        }
        let complete = self.body.as_mut().is_some_and(|(r, _)| r.on_eof());
        if complete {
            self.resp_keep = false;
            self.end(conn);
        } else {
            let why = "upstream closed before the response was complete".to_string();
            self.fail(conn, 502, why, true);
        }
    }

    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        if self.ex.is_none() {
            return self.close_idle(conn);
        }
        self.fail(
            conn,
            504,
            "no response from the upstream in time".into(),
            false,
        );
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        if self.ex.is_none() {
            self.close_idle(conn);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, from: ConnId, msg: Box<dyn Any>) {
        let Ok(msg) = msg.downcast::<ToBack>() else {
            return;
        };
        if let ToBack::Start(ex) = *msg {
            if self.ex.is_some() {
                // Busy (cannot happen: the pool holds idle connections only): give
                // the exchange back for a fresh connection.
                conn.notify(from, ToFront::Retry(ex));
                return;
            }
            self.ex = Some(ex);
            self.reused = true;
            return self.begin(conn);
        }
        // Only the current exchange's front is listened to (a late message of an
        // earlier exchange on this connection is dropped).
        if self.front() != Some(from) {
            return;
        }
        match *msg {
            ToBack::Body(b) => {
                // The upstream is taking the request: its response clock restarts.
                self.arm_deadline(conn);
                conn.send_owned(b);
                if conn.queued_bytes() >= self.cfg.high_water && !self.front_paused {
                    self.front_paused = true;
                    conn.notify(from, ToFront::Pause);
                }
            }
            ToBack::BodyEnd => self.request_done = true,
            ToBack::Gone => {
                self.finished = true;
                conn.abort();
            }
            ToBack::Pause => conn.pause_reading(),
            ToBack::Resume => conn.resume_reading(),
            ToBack::Start(_) => {}
        }
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        if self.front_paused {
            self.front_paused = false;
            if let Some(front) = self.front() {
                conn.notify(front, ToFront::Resume);
            }
        }
    }

    fn on_undelivered(&mut self, conn: &mut Conn<'_>, _to: ConnId, _msg: Box<dyn Any>) {
        // The client is gone.
        if self.ex.is_some() {
            self.finished = true;
            conn.abort();
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        if let Some(me) = self.me {
            pool_remove(me);
        }
        if self.finished || self.ex.is_none() {
            return;
        }
        if !self.opened && matches!(reason, CloseReason::Local) {
            // The front cancelled the connect (its client left): nobody to tell.
            return;
        }
        if self.body.is_some() {
            return self.tell(None, ToFront::Abort);
        }
        let (status, why) = match (&reason, self.opened) {
            (CloseReason::Error(e), false) if e.kind() == std::io::ErrorKind::TimedOut => {
                (504, format!("upstream connect timed out: {e}"))
            }
            (CloseReason::Error(e), false) => (502, format!("upstream: {e}")),
            (r, _) => (502, format!("upstream closed: {r:?}")),
        };
        if !self.opened && !self.reused {
            // The connect failed: nothing was sent, the front may try another
            // upstream. Sent as the front itself (this connection never connected).
            if let Some(ex) = self.ex.take() {
                self.finished = true;
                let to = ex.front.id();
                let sender = ex.front.clone();
                sender.notify(to, ToFront::ConnectFailed(ex, status, why));
            }
            return;
        }
        self.give_up(None, status, why, self.opened);
    }
}
