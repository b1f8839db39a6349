//! A per-worker hashed timer wheel with lazy cancellation.
//!
//! One structure per worker serves every connection deadline (idle timeouts, header
//! deadlines, connect timeouts), so the cost of a timer is one small entry, not one
//! SQE per connection per tick. Entries are never removed when a deadline moves;
//! instead the owner keeps its *current* deadline and, when an entry fires, checks it
//! (and re-arms if the deadline was pushed back). Resolution is [`TICK`].

use std::time::{Duration, Instant};

/// Wheel resolution.
pub const TICK: Duration = Duration::from_millis(1);
const SLOTS: usize = 1024;

/// An entry handed back when it fires: the key given to [`TimerWheel::insert`].
pub type TimerKey = u64;

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    /// The tick up to which (exclusive) every slot has been processed.
    current: u64,
    slots: Vec<Vec<(u64, TimerKey)>>,
    len: usize,
    /// The exact earliest pending tick, when known (recomputed lazily after expiry).
    earliest: std::cell::Cell<Option<u64>>,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 is `now`.
    pub fn new(now: Instant) -> Self {
        TimerWheel {
            start: now,
            current: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            len: 0,
            earliest: std::cell::Cell::new(None),
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.start);
        (d.as_nanos() / TICK.as_nanos()) as u64
    }

    /// Schedules `key` to fire at or after `deadline` (rounded up to the next tick).
    pub fn insert(&mut self, deadline: Instant, key: TimerKey) {
        let mut tick = self.tick_of(deadline) + 1;
        if tick < self.current {
            tick = self.current;
        }
        self.slots[(tick as usize) % SLOTS].push((tick, key));
        if self.len == 0 {
            self.earliest.set(Some(tick));
        } else if let Some(e) = self.earliest.get() {
            self.earliest.set(Some(e.min(tick)));
        }
        self.len += 1;
    }

    /// Number of pending entries (including ones their owners no longer care about).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest instant at which [`expire`](Self::expire) may return something,
    /// or `None` if the wheel is empty. Precise to one tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        let best = match self.earliest.get() {
            Some(e) => e,
            None => {
                let e = self
                    .slots
                    .iter()
                    .flat_map(|s| s.iter().map(|&(t, _)| t))
                    .min()?;
                self.earliest.set(Some(e));
                e
            }
        };
        Some(self.start + TICK * (best as u32))
    }

    /// Moves every entry due at `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<TimerKey>) {
        let upto = self.tick_of(now) + 1;
        if self.len == 0 {
            self.current = upto.max(self.current);
            return;
        }
        // Visit each slot at most once per call, even after a long stall.
        if self.earliest.get().is_some_and(|e| e >= upto) {
            // Nothing is due: skip the slot walk entirely.
            self.current = upto.max(self.current);
            return;
        }
        self.earliest.set(None);
        let end = upto.min(self.current + SLOTS as u64);
        while self.current < end {
            let idx = (self.current as usize) % SLOTS;
            let slot = &mut self.slots[idx];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].0 < upto {
                    out.push(slot.swap_remove(i).1);
                    self.len -= 1;
                } else {
                    i += 1;
                }
            }
            self.current += 1;
        }
        self.current = upto.max(self.current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_of_deadline_not_before() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.insert(t0 + Duration::from_millis(50), 1);
        w.insert(t0 + Duration::from_millis(20), 2);
        let mut out = vec![];
        w.expire(t0 + Duration::from_millis(5), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(35), &mut out);
        assert_eq!(out, vec![2]);
        w.expire(t0 + Duration::from_millis(70), &mut out);
        assert_eq!(out, vec![2, 1]);
        assert!(w.is_empty());
    }

    #[test]
    fn far_deadlines_survive_wraparound() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let far = t0 + TICK * (SLOTS as u32 * 3 + 7);
        w.insert(far, 9);
        let mut out = vec![];
        for step in 1..(SLOTS as u32 * 3) {
            w.expire(t0 + TICK * step, &mut out);
        }
        assert!(out.is_empty(), "fired early");
        w.expire(far + TICK * 2, &mut out);
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn long_stall_fires_everything_due() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        for k in 0..100 {
            w.insert(t0 + TICK * (k * 13), k as u64);
        }
        let mut out = vec![];
        w.expire(t0 + TICK * 100_000, &mut out);
        out.sort();
        assert_eq!(out, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn next_deadline_is_earliest() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        assert_eq!(w.next_deadline(), None);
        w.insert(t0 + Duration::from_secs(3), 1);
        w.insert(t0 + Duration::from_millis(100), 2);
        let d = w.next_deadline().unwrap();
        assert!(d >= t0 + Duration::from_millis(100));
        assert!(d <= t0 + Duration::from_millis(100) + TICK * 2);
    }
}
