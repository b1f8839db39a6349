//! The gateway's access log: one [`AccessRecord`](super::AccessRecord) per request,
//! forwarded (with the upstream that answered) or served locally; see
//! [`GatewayConn::with_access_log`](super::GatewayConn::with_access_log).

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
    pub(super) fn begin(&mut self, req: &Request<'_>) {
        self.req.copy(req);
        self.start = Some(Instant::now());
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
    /// else with the head's status.
    pub(super) fn end(&mut self, status: u16) {
        let Some(start) = self.start.take() else {
            return;
        };
        let rec = self.req.record(
            true,
            self.client,
            self.status.unwrap_or(status),
            self.bytes,
            start.elapsed(),
            self.upstream,
        );
        (self.hook)(&rec);
    }

    /// A locally served request: its whole response is `out`.
    pub(super) fn local(&mut self, req: &Request<'_>, out: &[u8]) {
        self.begin(req);
        let head_end = find(out, b"\r\n\r\n").map_or(out.len(), |p| p + 4);
        self.head(out);
        self.bytes = (out.len() - head_end) as u64;
        self.end(0);
    }

    /// Whether a request waits to be logged.
    pub(super) fn pending(&self) -> bool {
        self.start.is_some()
    }
}
