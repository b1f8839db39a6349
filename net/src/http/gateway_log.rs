//! The gateway's access log: one [`AccessRecord`](super::AccessRecord) per request,
//! forwarded (with the upstream that answered) or served locally; see
//! [`GatewayConn::with_access_log`](super::GatewayConn::with_access_log).
//!
//! Durations are measured on the loop turn's clock (`Conn::now`, read once per turn by
//! the worker), as the http access log's are (`DateCache::tick`): a request costs no
//! clock read of its own. The one exception is a client that leaves before its answer
//! (logged as 499 from `on_close`, which has no turn clock): one clock read there.

use super::access_log::{find, status_of, AccessHook, RequestFields};
use super::Request;
use std::net::SocketAddr;
use std::time::Instant;

/// Per client connection: the request being answered, until it is logged.
pub(super) struct GatewayLog {
    hook: AccessHook,
    client: Option<SocketAddr>,
    req: RequestFields,
    start: Option<Instant>,
    upstream: Option<SocketAddr>,
    /// The status of the response head sent to the client.
    status: Option<u16>,
    /// Response bytes sent after the head (chunk framing included).
    bytes: u64,
}

impl GatewayLog {
    pub(super) fn new(hook: AccessHook, client: Option<SocketAddr>) -> GatewayLog {
        GatewayLog {
            hook,
            client,
            req: RequestFields::new(),
            start: None,
            upstream: None,
            status: None,
            bytes: 0,
        }
    }

    /// A request starts (forwarded or local): its fields are copied as
    /// [`RequestFields::copy`] bounds them (target 4 KiB, headers 512 B).
    /// `now` is the loop turn's clock.
    pub(super) fn begin(&mut self, req: &Request<'_>, now: Instant) {
        self.req.copy(req);
        self.start = Some(now);
        self.upstream = None;
        self.status = None;
        self.bytes = 0;
    }

    /// The exchange goes to `addr` (the last choice is logged).
    pub(super) fn upstream(&mut self, addr: SocketAddr) {
        self.upstream = Some(addr);
    }

    /// The response head sent to the client.
    pub(super) fn head(&mut self, head: &[u8]) {
        self.status = status_of(head);
    }

    /// Response bytes sent after the head.
    pub(super) fn body(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Logs the request once: with `status` if no head was sent (a gateway error),
    /// else with the head's status; `now` is the loop turn's clock.
    pub(super) fn end(&mut self, status: u16, now: Instant) {
        let Some(start) = self.start.take() else {
            return;
        };
        let rec = self.req.record(
            true,
            self.client,
            self.status.unwrap_or(status),
            self.bytes,
            now.saturating_duration_since(start),
            self.upstream,
        );
        (self.hook)(&rec);
    }

    /// A locally served request: its whole response is `out` (queued in the turn
    /// that parsed it, so its duration is 0, as for the http access log).
    pub(super) fn local(&mut self, req: &Request<'_>, out: &[u8], now: Instant) {
        self.begin(req, now);
        let head_end = find(out, b"\r\n\r\n").map_or(out.len(), |p| p + 4);
        self.head(out);
        self.bytes = (out.len() - head_end) as u64;
        self.end(0, now);
    }

    /// Whether a request waits to be logged.
    pub(super) fn pending(&self) -> bool {
        self.start.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{AccessRecord, Limits, RequestParser, Status};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The duration is the difference of the turn clocks given to `begin` and `end`
    /// (no clock read of its own); a local answer takes 0.
    #[test]
    fn durations_come_from_the_turn_clocks_given() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let hook: AccessHook = Arc::new(move |r: &AccessRecord<'_>| {
            s2.lock().unwrap().push((r.status, r.duration, r.upstream))
        });
        let mut log = GatewayLog::new(hook, None);
        let bytes = b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n";
        let mut parser = RequestParser::new(Limits::default());
        let Ok(Status::Complete { request, .. }) = parser.parse(bytes) else {
            panic!("not complete")
        };
        let t0 = Instant::now();
        let up: SocketAddr = "127.0.0.1:9".parse().unwrap();
        log.begin(&request, t0);
        log.upstream(up);
        log.head(b"HTTP/1.1 200 OK\r\n\r\n");
        log.body(5);
        assert!(log.pending());
        log.end(0, t0 + Duration::from_micros(2500));
        assert!(!log.pending());
        log.local(&request, b"HTTP/1.1 404 Not Found\r\n\r\nnope", t0);
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![
                (200, Duration::from_micros(2500), Some(up)),
                (404, Duration::ZERO, None)
            ]
        );
    }
}
