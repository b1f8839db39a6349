//! Where a receive's bytes are when buffers are bundled or consumed incrementally.
//!
//! With the plain ring a receive completion names one buffer and its bytes start at
//! offset 0. Two kernel features break that:
//!
//! * **Bundles** (`IORING_RECVSEND_BUNDLE`, Linux 6.10): one completion covers several
//!   buffers, the one it names and the ones published after it in the ring, in ring
//!   order. Each is filled to its end before the next.
//! * **Incremental consumption** (`IOU_PBUF_RING_INC`, Linux 6.12): the kernel takes
//!   only what a receive needs from the buffer at the ring's head and leaves the rest
//!   for the next receive (of any socket). A completion with `IORING_CQE_F_BUF_MORE`
//!   means "this buffer is still mine"; the bytes start where the previous receive in
//!   that buffer ended. The buffer comes back only with the completion that lacks the
//!   flag.
//!
//! [`Tracker`] mirrors the ring (which buffer id sits at which ring index, how far each
//! buffer was consumed) and turns each completion, as it is harvested, into a *view*:
//! the list of (buffer, offset, length) parts holding its bytes. The completion then
//! names the view instead of a buffer. A buffer goes back to the kernel when the kernel
//! has retired it *and* no view still refers to it, so a reordered or delayed
//! completion (the fault-injection driver) never reads a buffer the kernel refills.
//! Pure bookkeeping, no `unsafe`: [`BufRing`](super::bufring::BufRing) owns the memory.

/// One part of a view: buffer id, offset in the buffer, length.
pub(crate) type Part = (u16, u32, u32);

#[derive(Default)]
struct View {
    parts: Vec<Part>,
    live: bool,
}

pub(crate) struct Tracker {
    bundle: bool,
    inc: bool,
    size: u32,
    /// The buffer id published at each ring index (`index & mask`).
    at: Vec<u16>,
    /// The ring index each buffer id was last published at.
    pos: Vec<u16>,
    /// Bytes of each buffer the kernel already filled (incremental mode).
    off: Vec<u32>,
    /// Live views referring to each buffer.
    refs: Vec<u32>,
    /// The kernel has retired the buffer; it returns once `refs` drops to zero.
    retired: Vec<bool>,
    views: Vec<View>,
    free: Vec<u16>,
}

impl Tracker {
    pub(crate) fn new(count: u16, size: u32, bundle: bool, inc: bool) -> Tracker {
        let n = count as usize;
        Tracker {
            bundle,
            inc,
            size,
            at: vec![0; n],
            pos: vec![0; n],
            off: vec![0; n],
            refs: vec![0; n],
            retired: vec![false; n],
            views: Vec::new(),
            free: Vec::new(),
        }
    }

    /// True when buffers are consumed incrementally.
    pub(crate) fn incremental(&self) -> bool {
        self.inc
    }

    /// Records that `bid` was published at ring index `index` (the unmasked tail).
    pub(crate) fn pushed(&mut self, bid: u16, index: u16) {
        let mask = self.at.len() - 1;
        self.at[index as usize & mask] = bid;
        self.pos[bid as usize] = index;
        self.off[bid as usize] = 0;
    }

    /// Turns a receive completion of `len > 0` bytes starting in buffer `bid` into a
    /// view; `buf_more` is the completion's `IORING_CQE_F_BUF_MORE`. Returns the view
    /// id and the buffers the kernel retired that no view holds any more (none here:
    /// the new view holds them), for the caller to republish.
    ///
    /// # Panics
    /// If more than 65,536 views are live at once (a service that never recycles).
    pub(crate) fn view(&mut self, bid: u16, len: u32, buf_more: bool) -> u16 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                assert!(
                    self.views.len() <= u16::MAX as usize,
                    "more than 65536 receive completions were never recycled"
                );
                self.views.push(View::default());
                (self.views.len() - 1) as u16
            }
        };
        let mut parts = std::mem::take(&mut self.views[id as usize].parts);
        parts.clear();
        let mask = self.at.len() - 1;
        let first = self.pos[bid as usize];
        let mut rem = len;
        let mut k: u16 = 0;
        loop {
            let b = if k == 0 {
                bid
            } else {
                self.at[first.wrapping_add(k) as usize & mask]
            };
            let o = if self.inc { self.off[b as usize] } else { 0 };
            let take = rem.min(self.size - o);
            parts.push((b, o, take));
            self.refs[b as usize] += 1;
            rem -= take;
            let last = rem == 0 || !self.bundle || k as usize + 1 >= self.at.len();
            if self.inc && last && buf_more {
                self.off[b as usize] = o + take;
            } else {
                self.retired[b as usize] = true;
            }
            if last {
                debug_assert_eq!(rem, 0, "a receive overran its buffers");
                break;
            }
            k += 1;
        }
        let v = &mut self.views[id as usize];
        v.parts = parts;
        v.live = true;
        id
    }

    /// A completion that carries a buffer but no bytes (`len <= 0`): the kernel either
    /// keeps the buffer (`buf_more`) or hands it back unused. Returns the buffer to
    /// republish, if any.
    pub(crate) fn empty(&mut self, bid: u16, buf_more: bool) -> Option<u16> {
        if self.inc && buf_more {
            return None;
        }
        (self.refs[bid as usize] == 0).then_some(bid).or_else(|| {
            self.retired[bid as usize] = true;
            None
        })
    }

    /// The parts of view `id` (empty for an unknown or recycled id).
    pub(crate) fn parts(&self, id: u16) -> &[Part] {
        match self.views.get(id as usize) {
            Some(v) if v.live => &v.parts,
            _ => &[],
        }
    }

    /// Ends view `id` and appends to `out` the buffers that may go back to the kernel
    /// now. A second release of the same id does nothing.
    pub(crate) fn release(&mut self, id: u16, out: &mut Vec<u16>) {
        let Some(v) = self.views.get_mut(id as usize) else {
            return;
        };
        if !v.live {
            return;
        }
        v.live = false;
        for &(b, _, _) in &v.parts {
            let b = b as usize;
            self.refs[b] -= 1;
            if self.refs[b] == 0 && self.retired[b] {
                self.retired[b] = false;
                out.push(b as u16);
            }
        }
        self.free.push(id);
    }

    /// Views not yet released.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.views.iter().filter(|v| v.live).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_all(t: &mut Tracker, n: u16) {
        for b in 0..n {
            t.pushed(b, b);
        }
    }

    #[test]
    fn bundle_spans_ring_order_not_id_order() {
        let mut t = Tracker::new(4, 100, true, false);
        // Published out of id order: 2, 0, 3, 1.
        for (i, b) in [2u16, 0, 3, 1].into_iter().enumerate() {
            t.pushed(b, i as u16);
        }
        let v = t.view(0, 250, false);
        assert_eq!(t.parts(v), &[(0, 0, 100), (3, 0, 100), (1, 0, 50)]);
        let mut out = Vec::new();
        t.release(v, &mut out);
        assert_eq!(out, vec![0, 3, 1]);
        t.release(v, &mut out);
        assert_eq!(out.len(), 3, "a second release is ignored");
        assert!(t.parts(v).is_empty());
    }

    #[test]
    fn incremental_offsets_and_retire_on_last() {
        let mut t = Tracker::new(2, 100, false, true);
        publish_all(&mut t, 2);
        let a = t.view(0, 30, true);
        let b = t.view(0, 50, true);
        let c = t.view(0, 20, false);
        assert_eq!(t.parts(a), &[(0, 0, 30)]);
        assert_eq!(t.parts(b), &[(0, 30, 50)]);
        assert_eq!(t.parts(c), &[(0, 80, 20)]);
        let mut out = Vec::new();
        // Released out of order: the buffer returns only once all three are done.
        t.release(c, &mut out);
        t.release(a, &mut out);
        assert!(
            out.is_empty(),
            "buffer returned while a view still reads it"
        );
        t.release(b, &mut out);
        assert_eq!(out, vec![0]);
        // Republished: offsets start over.
        t.pushed(0, 2);
        let d = t.view(0, 10, true);
        assert_eq!(t.parts(d), &[(0, 0, 10)]);
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn bundle_with_incremental_head() {
        let mut t = Tracker::new(4, 100, true, true);
        publish_all(&mut t, 4);
        let a = t.view(0, 40, true);
        let b = t.view(0, 180, true);
        assert_eq!(t.parts(b), &[(0, 40, 60), (1, 0, 100), (2, 0, 20)]);
        let mut out = Vec::new();
        t.release(a, &mut out);
        t.release(b, &mut out);
        assert_eq!(out, vec![0, 1], "buffer 2 is still the kernel's");
        let c = t.view(2, 80, false);
        assert_eq!(t.parts(c), &[(2, 20, 80)]);
        t.release(c, &mut out);
        assert_eq!(out, vec![0, 1, 2]);
    }

    #[test]
    fn empty_completion_returns_or_keeps_buffer() {
        let mut t = Tracker::new(2, 100, false, true);
        publish_all(&mut t, 2);
        assert_eq!(t.empty(1, true), None);
        assert_eq!(t.empty(1, false), Some(1));
        let v = t.view(0, 10, true);
        assert_eq!(t.empty(0, false), None, "a live view still reads it");
        let mut out = Vec::new();
        t.release(v, &mut out);
        assert_eq!(out, vec![0]);
    }
}
