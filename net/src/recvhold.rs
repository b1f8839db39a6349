//! Zero-copy echo: sending bytes straight from the receive buffer `on_data` was handed
//! ([`Conn::send_received`](crate::Conn::send_received)).
//!
//! On io_uring the bytes `on_data` sees live in a pool buffer of the provided buffer
//! ring. Normally that buffer goes back to the kernel as soon as the callback returns.
//! `send_received` instead *holds* it: the write queue gets a chunk pointing into the
//! buffer (no copy), and the buffer goes back only once every such chunk was sent
//! (the send's final completion: with `SEND_ZC`, its notification) or dropped (abort,
//! close). One hold per receive completion, counted by references: the receive itself
//! while its callback runs, plus one per queued chunk.
//!
//! A held buffer is a buffer the kernel cannot fill, so holds are limited per worker
//! ([`Config::recv_hold_limit`](ringcore_runtime::Config::recv_hold_limit()), default a
//! quarter of the pool): past it `send_received` copies, like `send`, and counts a
//! `recv_hold_fallbacks`. The ring never runs dry because of holds, and a slow reader
//! pins at most its share. On epoll the bytes are in the worker's scratch buffer, which
//! the next read reuses: `send_received` always copies there (the normal path).

use ringcore_runtime::{Completion, Io};
use slab::Slab;

/// Bytes of a held receive buffer, queued for sending.
pub(crate) struct HeldBuf {
    /// INVARIANT: `len` bytes at `ptr` lie in the pool buffer of hold `hold`, which is
    /// not recycled while this chunk exists (it owns one reference of the hold).
    ptr: *const u8,
    len: usize,
    hold: u32,
}

impl HeldBuf {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn hold(&self) -> u32 {
        self.hold
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the struct invariant: the pool buffer stays unrecycled (so neither the
        // kernel nor another receive writes it) while this chunk holds its reference.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The receive whose bytes `on_data` is looking at right now (fast path only).
#[derive(Clone, Copy)]
pub(crate) struct Current {
    pub(crate) c: Completion,
    /// The part handed to `on_data` (null/0 when not in the fast path).
    base: *const u8,
    len: usize,
    /// The hold made for this receive, once `send_received` used it.
    hold: Option<u32>,
}

/// A worker's holds on receive buffers.
pub(crate) struct Holds {
    /// Per hold: its receive completion and references.
    live: Slab<(Completion, u32)>,
    /// Most holds at once (0: zero-copy sends off, e.g. on epoll).
    limit: usize,
    pub(crate) current: Option<Current>,
    /// Sends queued from a held buffer / copied because of the limit, not yet counted.
    sent: u64,
    fallbacks: u64,
}

impl Holds {
    pub(crate) fn new() -> Holds {
        Holds {
            live: Slab::new(),
            limit: 0,
            current: None,
            sent: 0,
            fallbacks: 0,
        }
    }

    /// Sets the limit (0 turns holding off).
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Holds currently live.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// A receive starts: `on_data` may hold its buffer.
    pub(crate) fn begin(&mut self, c: Completion) {
        if self.limit > 0 {
            self.current = Some(Current {
                c,
                base: std::ptr::null(),
                len: 0,
                hold: None,
            });
        }
    }

    /// The part of the current receive handed to `on_data` (`None`: no part is).
    pub(crate) fn expose(&mut self, part: Option<&[u8]>) {
        if let Some(cur) = self.current.as_mut() {
            (cur.base, cur.len) = part.map_or((std::ptr::null(), 0), |p| (p.as_ptr(), p.len()));
        }
    }

    /// `data` as a held chunk, if it lies in the part `on_data` was handed and the
    /// limit allows; `None`: copy it.
    pub(crate) fn take(&mut self, data: &[u8]) -> Option<HeldBuf> {
        let cur = self.current.as_mut()?;
        let start = data.as_ptr() as usize;
        let base = cur.base as usize;
        if cur.base.is_null() || start < base || start + data.len() > base + cur.len {
            return None;
        }
        let hold = match cur.hold {
            Some(h) => h,
            None => {
                if self.live.len() >= self.limit {
                    self.fallbacks += 1;
                    return None;
                }
                // The receive's own reference, dropped by `end`.
                let h = self.live.insert((cur.c, 1)) as u32;
                cur.hold = Some(h);
                h
            }
        };
        self.live[hold as usize].1 += 1;
        self.sent += 1;
        Some(HeldBuf {
            ptr: data.as_ptr(),
            len: data.len(),
            hold,
        })
    }

    /// The receive's callbacks are done: recycle its buffer unless a chunk holds it.
    pub(crate) fn end(&mut self, io: &mut Io, c: &Completion) {
        let hold = self.current.take().and_then(|cur| cur.hold);
        match hold {
            Some(h) => self.release(io, h),
            None => io.recycle(c),
        }
        let cnt = io.counters();
        cnt.recv_holds += std::mem::take(&mut self.sent);
        cnt.recv_hold_fallbacks += std::mem::take(&mut self.fallbacks);
    }

    /// Drops one reference of hold `h`; the last one recycles the buffer.
    pub(crate) fn release(&mut self, io: &mut Io, h: u32) {
        let Some(e) = self.live.get_mut(h as usize) else {
            debug_assert!(false, "release of unknown hold {h}");
            return;
        };
        e.1 -= 1;
        if e.1 == 0 {
            let (c, _) = self.live.remove(h as usize);
            io.recycle(&c);
        }
    }
}
