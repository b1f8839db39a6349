//! Counters of one acceptor or connector, shared by every worker (relaxed atomics,
//! touched once per handshake or failure, never per byte).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub(crate) handshakes: AtomicU64,
    pub(crate) resumed: AtomicU64,
    pub(crate) handshake_errors: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) record_errors: AtomicU64,
    pub(crate) close_notify: AtomicU64,
    pub(crate) truncated: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TlsStats {
        TlsStats {
            handshakes: self.handshakes.load(Relaxed),
            resumed: self.resumed.load(Relaxed),
            handshake_errors: self.handshake_errors.load(Relaxed),
            handshake_timeouts: self.handshake_timeouts.load(Relaxed),
            record_errors: self.record_errors.load(Relaxed),
            close_notify: self.close_notify.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
        }
    }
}

/// A snapshot of a [`TlsAcceptor`](super::TlsAcceptor)'s or
/// [`TlsConnector`](super::TlsConnector)'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsStats {
    /// Handshakes completed (full and resumed).
    pub handshakes: u64,
    /// Of those, resumed from a session ticket or session id.
    pub resumed: u64,
    /// Handshakes that failed: bad or unexpected records, no common version, cipher
    /// or ALPN protocol, an unknown SNI name under strict SNI, a rejected certificate,
    /// end of stream mid-handshake.
    pub handshake_errors: u64,
    /// Handshakes closed by the handshake deadline.
    pub handshake_timeouts: u64,
    /// Established sessions closed because of a bad record (or a fatal alert).
    pub record_errors: u64,
    /// Sessions whose peer closed with `close_notify`.
    pub close_notify: u64,
    /// Sessions whose peer closed the TCP stream without `close_notify` (truncation).
    pub truncated: u64,
}

impl TlsStats {
    /// The counters in Prometheus text format, prefixed `ringcore_tls_`.
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        for (name, v) in [
            ("handshakes_total", self.handshakes),
            ("resumed_total", self.resumed),
            ("handshake_errors_total", self.handshake_errors),
            ("handshake_timeouts_total", self.handshake_timeouts),
            ("record_errors_total", self.record_errors),
            ("close_notify_total", self.close_notify),
            ("truncated_total", self.truncated),
        ] {
            s.push_str(&format!(
                "# TYPE ringcore_tls_{name} counter\nringcore_tls_{name} {v}\n"
            ));
        }
        s
    }
}
