//! Per-worker timers: a min-heap of deadlines with real cancellation.
//!
//! One structure per worker serves every connection deadline (idle timeouts, header
//! deadlines, connect timeouts), so the cost of a timer is one small entry, not one
//! SQE per connection per tick. Resolution is [`TICK`]. (The type keeps its historical
//! name, `TimerWheel`; it has not been a wheel since the hashed wheel's `next_deadline`
//! had to rescan every entry.)
//!
//! # Layout and costs
//!
//! ```text
//!   heap: BinaryHeap<Reverse<(tick, index)>>     one item per non-free entry
//!   entries[index] = { gen, key, state: Pending | Cancelled | Free }
//!   free: indices of Free entries          TimerHandle = (index, gen)
//! ```
//!
//! * [`insert`](TimerWheel::insert): push onto the heap, `O(log n)` worst case and
//!   `O(1)` on average for the usual pattern (deadlines of `now + constant` arrive in
//!   increasing order, so the new item stays at the bottom). Returns a
//!   [`TimerHandle`].
//! * [`cancel`](TimerWheel::cancel): marks the entry `Cancelled` and drops it from
//!   [`len`](TimerWheel::len) at once (`O(1)`); its heap item is deleted lazily. Two
//!   rules keep the lazy part bounded: a cancelled item that reaches the top of the heap
//!   is popped right away (so the top is always a live entry), and when cancelled items
//!   outnumber live ones by more than [`COMPACT_SLACK`] the heap is rebuilt from the
//!   live ones (`O(n)` once per `n` cancels: amortised `O(1)`).
//! * [`next_deadline`](TimerWheel::next_deadline): a peek at the top, `O(1)`. This is
//!   the call the worker makes every loop turn; the hashed wheel it replaces rescanned
//!   every entry whenever its cached minimum was invalidated, which after connection
//!   churn (timers of closed connections were never removed) took 64 % of the CPU.
//! * [`expire`](TimerWheel::expire): pops every due item, `O(log n)` each.
//!
//! An entry's index is only reused after its heap item is gone, so a heap item always
//! names exactly one entry; the generation (a wheel-wide 32-bit counter that skips 0)
//! tells a stale [`TimerHandle`] (its entry fired or was cancelled) from a live one. A
//! handle is 8 bytes and `Option<TimerHandle>` too (a connection carries five of them,
//! so this is 80 bytes of every idle connection's slot); the price is that a handle
//! kept across 2^32 further inserts into the same wheel could alias a new entry, so
//! owners drop a handle when its entry fires or is cancelled (every owner in
//! `ringcore-net` does). When the wheel
//! becomes empty its storage is released, so memory returns after a burst.
//!
//! Owners may still use the lazy pattern for deadlines that move often (an idle timeout
//! pushed back by every read): keep the *current* deadline in the owner, let the entry
//! fire, and re-insert if the deadline moved. Owners that go away (a closed connection)
//! must [`cancel`](TimerWheel::cancel) their entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// Wheel resolution.
pub const TICK: Duration = Duration::from_millis(1);

/// How many more cancelled heap items than live entries are tolerated before the heap
/// is compacted.
pub const COMPACT_SLACK: usize = 1024;

/// An entry handed back when it fires: the key given to [`TimerWheel::insert`].
pub type TimerKey = u64;

/// Names one inserted entry, for [`TimerWheel::cancel`]. Stays harmless after the entry
/// fired or was cancelled: cancelling it again does nothing (until 2^32 more entries
/// were inserted into the wheel; drop a handle once its entry fired). 8 bytes, and
/// `Option<TimerHandle>` is 8 bytes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    gen: NonZeroU32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Cancelled,
    Free,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// INVARIANT: unique among the last 2^32 - 1 entries handed out by this wheel.
    gen: NonZeroU32,
    key: TimerKey,
    state: State,
}

/// The per-worker timer set (see the module docs for the structure).
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    /// The tick up to which (exclusive) every entry has been processed.
    current: u64,
    /// INVARIANT: exactly one item per entry whose state is not `Free`; the top item,
    /// if any, is `Pending`.
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    next_gen: NonZeroU32,
    /// Pending entries.
    len: usize,
    /// Cancelled entries still in the heap.
    cancelled: usize,
    /// [`COMPACT_SLACK`] (smaller in tests).
    compact_slack: usize,
}

impl TimerWheel {
    /// An empty wheel whose tick 0 is `now`.
    pub fn new(now: Instant) -> Self {
        TimerWheel {
            start: now,
            current: 0,
            heap: BinaryHeap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            next_gen: NonZeroU32::MIN,
            len: 0,
            cancelled: 0,
            compact_slack: COMPACT_SLACK,
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.start);
        (d.as_nanos() / TICK.as_nanos()).min(u64::MAX as u128 / 2) as u64
    }

    /// Schedules `key` to fire at or after `deadline` (rounded up to the next tick).
    /// The handle cancels it.
    pub fn insert(&mut self, deadline: Instant, key: TimerKey) -> TimerHandle {
        let tick = (self.tick_of(deadline) + 1).max(self.current);
        let gen = self.next_gen;
        self.next_gen = gen.checked_add(1).unwrap_or(NonZeroU32::MIN);
        let e = Entry {
            gen,
            key,
            state: State::Pending,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 timers");
                self.entries.push(e);
                i
            }
        };
        self.heap.push(Reverse((tick, index)));
        self.len += 1;
        TimerHandle { index, gen }
    }

    /// Removes the entry of `h` if it is still pending; returns whether it was.
    pub fn cancel(&mut self, h: TimerHandle) -> bool {
        match self.entries.get_mut(h.index as usize) {
            Some(e) if e.gen == h.gen && e.state == State::Pending => {
                e.state = State::Cancelled;
            }
            _ => return false,
        }
        self.len -= 1;
        self.cancelled += 1;
        self.settle();
        true
    }

    /// True if the entry of `h` is still pending.
    pub fn is_pending(&self, h: TimerHandle) -> bool {
        self.entries
            .get(h.index as usize)
            .is_some_and(|e| e.gen == h.gen && e.state == State::Pending)
    }

    fn release(&mut self, index: u32) {
        self.entries[index as usize].state = State::Free;
        self.free.push(index);
    }

    /// Restores the invariants after a removal: pops cancelled items off the top,
    /// compacts when they dominate, and frees the storage of an empty wheel.
    fn settle(&mut self) {
        while let Some(&Reverse((_, i))) = self.heap.peek() {
            if self.entries[i as usize].state != State::Cancelled {
                break;
            }
            self.heap.pop();
            self.cancelled -= 1;
            self.release(i);
        }
        if self.len == 0 {
            // Nothing pending: drop every cancelled item and give memory back.
            self.heap.clear();
            self.entries.clear();
            self.free.clear();
            self.cancelled = 0;
            if self.heap.capacity() > COMPACT_SLACK {
                self.heap.shrink_to(COMPACT_SLACK);
                self.entries.shrink_to(COMPACT_SLACK);
                self.free.shrink_to(COMPACT_SLACK);
            }
        } else if self.cancelled > self.len + self.compact_slack {
            let entries = &self.entries;
            let mut dead = Vec::with_capacity(self.cancelled);
            self.heap.retain(|&Reverse((_, i))| {
                let live = entries[i as usize].state == State::Pending;
                if !live {
                    dead.push(i);
                }
                live
            });
            for i in dead {
                self.release(i);
            }
            self.cancelled = 0;
        }
    }

    /// Number of pending entries (cancelled and fired ones are not counted).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest instant at which [`expire`](Self::expire) may return something,
    /// or `None` if the wheel is empty. Precise to one tick. `O(1)`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let &Reverse((tick, _)) = self.heap.peek()?;
        debug_assert!(self.len > 0);
        let nanos = u64::try_from(TICK.as_nanos()).unwrap_or(u64::MAX);
        let after = Duration::from_nanos(tick.saturating_mul(nanos));
        // Past what `Instant` can represent: as good as never.
        self.start.checked_add(after)
    }

    /// Moves every entry due at `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<TimerKey>) {
        let upto = self.tick_of(now) + 1;
        while let Some(&Reverse((tick, i))) = self.heap.peek() {
            if tick >= upto {
                break;
            }
            self.heap.pop();
            let e = self.entries[i as usize];
            match e.state {
                State::Pending => {
                    out.push(e.key);
                    self.len -= 1;
                }
                State::Cancelled => self.cancelled -= 1,
                State::Free => debug_assert!(false, "free timer entry in the heap"),
            }
            self.release(i);
        }
        self.current = upto.max(self.current);
        self.settle();
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
        const SLOTS: usize = 1024;
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
    fn next_deadline_past_u32_ticks_does_not_wrap() {
        // 50 days is more than 2^32 ms: the deadline must stay 50 days out, not wrap
        // into the past (which made every wait a zero-timeout spin).
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let far = t0 + Duration::from_secs(50 * 24 * 3600);
        w.insert(far, 1);
        let d = w.next_deadline().unwrap();
        assert!(d >= far, "deadline {:?} before the entry", d - t0);
        assert!(d <= far + TICK * 2);
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

    #[test]
    fn churn_leaves_nothing_behind() {
        // Connections come and go, each with an idle timer that its close cancels:
        // nothing may stay behind, and the heap stays bounded while they churn.
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        // Under miri (an interpreter) a smaller run, with a smaller compaction slack so
        // it still compacts many times.
        let (rounds, open) = if cfg!(miri) {
            w.compact_slack = 16;
            (2_000, 50)
        } else {
            (100_000u64, 500)
        };
        let mut live = std::collections::VecDeque::new();
        let mut out = vec![];
        let mut compactions = 0;
        for i in 0..rounds {
            let now = t0 + TICK * (i / 100) as u32;
            live.push_back(w.insert(now + Duration::from_secs(75), i));
            if live.len() > open {
                // Oldest first (their items are at the top) and newest first (deep in
                // the heap: only compaction removes those).
                let h = if i % 3 == 0 {
                    live.pop_back()
                } else {
                    live.pop_front()
                };
                let before = w.heap.len();
                assert!(w.cancel(h.unwrap()));
                if w.heap.len() + 1 < before {
                    compactions += 1;
                }
            }
            w.expire(now, &mut out);
            assert!(w.heap.len() <= 2 * w.len() + w.compact_slack + 1);
        }
        assert!(out.is_empty(), "nothing was due");
        assert_eq!(w.len(), open);
        assert!(
            compactions > 0,
            "cancelled items deep in the heap were compacted"
        );
        while let Some(h) = live.pop_front() {
            assert!(w.cancel(h));
        }
        assert_eq!(w.len(), 0);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
        assert_eq!(w.heap.len(), 0);
    }

    #[test]
    fn cancel_is_exact_and_stale_handles_are_harmless() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let a = w.insert(t0 + Duration::from_millis(10), 1);
        let b = w.insert(t0 + Duration::from_millis(20), 2);
        assert!(w.is_pending(a));
        assert!(w.cancel(a));
        assert!(!w.cancel(a), "second cancel is a no-op");
        assert!(!w.is_pending(a));
        // The earliest entry is gone: the next deadline is b's.
        let d = w.next_deadline().unwrap();
        assert!(d >= t0 + Duration::from_millis(20));
        let mut out = vec![];
        w.expire(t0 + Duration::from_millis(30), &mut out);
        assert_eq!(out, vec![2]);
        assert!(!w.cancel(b), "a fired entry cannot be cancelled");
        // Reused storage: old handles do not reach new entries.
        let c = w.insert(t0 + Duration::from_millis(40), 3);
        assert!(!w.cancel(a));
        assert!(!w.cancel(b));
        assert!(w.is_pending(c));
        w.expire(t0 + Duration::from_millis(50), &mut out);
        assert_eq!(out, vec![2, 3]);
    }

    #[test]
    fn next_deadline_skips_cancelled_head() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let hs: Vec<_> = (0..10u32)
            .map(|k| w.insert(t0 + TICK * (k * 10 + 5), k as u64))
            .collect();
        for h in &hs[..9] {
            w.cancel(*h);
        }
        let d = w.next_deadline().unwrap();
        assert!(d >= t0 + TICK * 95 && d <= t0 + TICK * 97);
        let mut out = vec![];
        w.expire(t0 + TICK * 200, &mut out);
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn handle_is_eight_bytes_even_as_option() {
        // A connection slot holds five `Option<TimerHandle>`s (net/src/conn.rs).
        assert_eq!(std::mem::size_of::<Option<TimerHandle>>(), 8);
    }

    #[test]
    fn generation_wraps_past_zero_and_stale_handles_stay_stale() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.next_gen = NonZeroU32::MAX;
        let a = w.insert(t0 + Duration::from_millis(5), 1);
        assert!(w.cancel(a));
        let b = w.insert(t0 + Duration::from_millis(5), 2);
        assert_eq!(b.gen, NonZeroU32::MIN, "the counter skips 0 when it wraps");
        assert_eq!(a.index, b.index, "the index is reused");
        assert!(!w.cancel(a), "the old handle does not cancel the new entry");
        assert!(w.is_pending(b));
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(10), &mut out);
        assert_eq!(out, vec![2]);
    }
}
