//! A log line at most once per interval: for conditions that can repeat thousands of
//! times a second (accept failing with `EMFILE`), where every occurrence is counted in
//! [`Counters`](crate::Counters) but only one line per interval reaches the log.

use std::time::{Duration, Instant};

/// Lets an event through at most once per `interval`, counting the ones it held back.
#[derive(Clone, Debug)]
pub struct RateLimit {
    interval: Duration,
    next: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// A limiter that lets the first event through, then one per `interval`.
    pub const fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval,
            next: None,
            suppressed: 0,
        }
    }

    /// An event at `now`: `Some(n)` if it may be logged, `n` being how many were held
    /// back since the last one that was; `None` if it is to be held back.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.next {
            Some(next) if now < next => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.next = Some(now + self.interval);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_with_the_held_back_count() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut r = RateLimit::new(s);
        assert_eq!(r.allow(t0), Some(0));
        for ms in 1..1000 {
            assert_eq!(r.allow(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(r.allow(t0 + s), Some(999));
        assert_eq!(r.allow(t0 + s + Duration::from_millis(1)), None);
        assert_eq!(r.allow(t0 + 5 * s), Some(1));
    }
}
