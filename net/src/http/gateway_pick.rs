//! Which upstream a gateway exchange goes to: round-robin over
//! [`GatewayConfig::upstreams`](super::GatewayConfig::upstreams), skipping those
//! marked down. Health is passive and per worker (as nginx's `max_fails=1
//! fail_timeout=T` per worker process): a connect that fails (refused, unreachable,
//! timed out) marks its upstream down for
//! [`GatewayConfig::down_time`](super::GatewayConfig::down_time), and the exchange
//! goes to the next one. With a single upstream nothing is ever marked down (as in
//! nginx): every request tries it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Instant;

thread_local! {
    /// This worker's round-robin position and the upstreams it marked down, with
    /// the instant they may be tried again.
    static HEALTH: RefCell<Health> = const { RefCell::new(Health { next: 0, down: Vec::new() }) };
}

struct Health {
    next: usize,
    down: Vec<(SocketAddr, Instant)>,
}

/// The next upstream of `upstreams` (round-robin on this worker) that is neither
/// marked down at `now` nor in `tried`; `None` when there is none.
pub(super) fn pick(
    upstreams: &[SocketAddr],
    tried: &[SocketAddr],
    now: Instant,
) -> Option<SocketAddr> {
    HEALTH.with(|h| {
        let mut h = h.borrow_mut();
        h.down.retain(|&(_, until)| until > now);
        let n = upstreams.len();
        for i in 0..n {
            let at = (h.next + i) % n;
            let addr = upstreams[at];
            if tried.contains(&addr) || h.down.iter().any(|&(a, _)| a == addr) {
                continue;
            }
            h.next = (at + 1) % n;
            return Some(addr);
        }
        None
    })
}

/// Marks `addr` down on this worker until `until`.
pub(super) fn mark_down(addr: SocketAddr, until: Instant) {
    HEALTH.with(|h| {
        let mut h = h.borrow_mut();
        h.down.retain(|&(a, _)| a != addr);
        h.down.push((addr, until));
    });
}

/// Whether `addr` is marked down on the calling worker now.
pub fn gateway_upstream_down(addr: SocketAddr) -> bool {
    let now = Instant::now();
    HEALTH.with(|h| {
        h.borrow()
            .down
            .iter()
            .any(|&(a, until)| a == addr && until > now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_robin_skips_down_and_tried() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let ups = [a, b, c];
        let now = Instant::now();
        let got: Vec<_> = (0..6).map(|_| pick(&ups, &[], now).unwrap()).collect();
        assert_eq!(got.iter().filter(|&&x| x == a).count(), 2, "{got:?}");
        assert_eq!(got.iter().filter(|&&x| x == b).count(), 2, "{got:?}");
        mark_down(b, now + Duration::from_secs(10));
        for _ in 0..4 {
            assert_ne!(pick(&ups, &[], now), Some(b));
        }
        assert!(gateway_upstream_down(b));
        assert_eq!(pick(&ups, &[a, c], now), None, "b is down, a and c tried");
        // Once its time is over, b is back.
        let later = now + Duration::from_secs(11);
        assert_eq!(pick(&ups, &[a, c], later), Some(b));
        mark_down(a, later + Duration::from_secs(1));
        mark_down(c, later + Duration::from_secs(1));
        mark_down(b, later + Duration::from_secs(1));
        assert_eq!(pick(&ups, &[], later), None, "all down");
    }
}
