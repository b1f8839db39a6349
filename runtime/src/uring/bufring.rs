//! The provided buffer ring (`IORING_REGISTER_PBUF_RING`, kernel 5.19).
//!
//! One ring per worker: `count` buffers of `size` bytes in one allocation, plus the
//! page-aligned ring of `io_uring_buf` descriptors the kernel picks from. A multishot
//! receive takes a buffer, fills it and names it in the CQE; the worker hands the bytes
//! to the callback and puts the buffer back ([`BufRing::recycle`]) as soon as the
//! callback returns. The kernel never sees a buffer twice without a recycle between.

use super::bufview::Tracker;
use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::alloc::Layout;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// Buffer group id of stream receives (and of datagram receives while buffers are
/// consumed whole).
pub(crate) const BGID: u16 = 0;
/// Buffer group id of datagram receives while the stream group is consumed
/// incrementally (`IOU_PBUF_RING_INC`): a datagram needs a whole buffer, never the
/// tail of one a stream receive left behind (see `Ring::dgram_ring`).
pub(crate) const DGRAM_BGID: u16 = 1;

pub(crate) struct BufRing {
    /// INVARIANT: `entries * size_of::<BufRingEntry>()` bytes from `mmap`, page aligned,
    /// registered with the kernel until `unregister` or drop of the ring.
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    /// Local copy of the tail we publish.
    tail: u16,
    /// INVARIANT: a live allocation of `bufs_layout` (zeroed), never moved or resized;
    /// the kernel writes into it through the addresses we publish, so it is a raw
    /// allocation (not a `Box<[u8]>` whose shared borrow would promise Rust the bytes
    /// never change) and is freed only once the kernel no longer holds those addresses.
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    size: u32,
    /// The buffer group id it is registered as.
    bgid: u16,
    registered: bool,
    /// Set when receives are bundled or buffers consumed incrementally: completions
    /// then name views (see [`super::bufview`]), not buffers.
    track: Option<Tracker>,
    /// Scratch list of buffers a release hands back.
    back: Vec<u16>,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and registers them as group `bgid`.
    /// `bundle`: receives will take bundles; `inc`: ask for incremental consumption
    /// (`IOU_PBUF_RING_INC`), falling back to the plain ring (with a debug log) if the
    /// kernel rejects it. [`BufRing::incremental`] tells which one was registered.
    ///
    /// # Errors
    /// `InvalidInput` if `count` is not a power of two in 1..=32768; the kernel's error
    /// if registration fails (kernels before 5.19 answer `EINVAL`).
    pub(crate) fn new(
        ring: &IoUring,
        count: u16,
        size: u32,
        bundle: bool,
        inc: bool,
        bgid: u16,
    ) -> io::Result<BufRing> {
        if count == 0 || !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer count must be a power of two in 1..=32768, got {count}"),
            ));
        }
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer size must be at least 1 byte",
            ));
        }
        let total = count as usize * size as usize;
        let bufs_layout = Layout::from_size_align(total, 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: `bufs_layout` has a non-zero size (count and size are at least 1).
        let bufs =
            NonNull::new(unsafe { std::alloc::alloc_zeroed(bufs_layout) }).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("allocating {total} bytes of receive buffers failed"),
                )
            })?;
        let ring_bytes = count as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping, no fd; the result is checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            // SAFETY: allocated above with this layout; nothing else has seen it.
            unsafe { std::alloc::dealloc(bufs.as_ptr(), bufs_layout) };
            return Err(e);
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries: count,
            tail: 0,
            bufs,
            bufs_layout,
            size,
            bgid,
            registered: false,
            track: None,
            back: Vec::new(),
        };
        let mut inc_on = false;
        if inc {
            // SAFETY: as below.
            let r = unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    br.ring as u64,
                    count,
                    bgid,
                    io_uring::types::IOU_PBUF_RING_INC as u16,
                )
            };
            match r {
                Ok(()) => inc_on = true,
                Err(e) => tracing::debug!(
                    "ringcore: incremental buffer consumption (IOU_PBUF_RING_INC, Linux \
                     6.12) unavailable ({e}); using whole buffers"
                ),
            }
        }
        if !inc_on {
            // SAFETY: `br.ring` is a live mapping of `count` entries that stays mapped
            // until `br` is dropped, which unregisters first.
            unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(br.ring as u64, count, bgid, 0)?;
            }
        }
        br.registered = true;
        if bundle || inc_on {
            br.track = Some(Tracker::new(count, size, bundle, inc_on));
        }
        for bid in 0..count {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    /// Number of buffers.
    pub(crate) fn count(&self) -> u16 {
        self.entries
    }

    /// Size of each buffer.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// The first `len` bytes of buffer `bid` (which a completion handed to us).
    pub(crate) fn slice(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries, "buffer id {bid} out of range");
        let start = bid as usize * self.size as usize;
        // SAFETY: `start + len` stays inside the allocation (`bid < entries`, `len` is
        // capped at `size`); the kernel wrote this buffer before posting the completion
        // that named it and writes it again only after `recycle`, which needs `&mut self`
        // and so cannot happen while the returned slice lives.
        unsafe {
            std::slice::from_raw_parts(self.bufs.as_ptr().add(start), len.min(self.size as usize))
        }
    }

    /// True when the kernel consumes buffers incrementally.
    pub(crate) fn incremental(&self) -> bool {
        self.track.as_ref().is_some_and(|t| t.incremental())
    }

    /// True when completions name views ([`BufRing::view`]) rather than buffers.
    pub(crate) fn tracking(&self) -> bool {
        self.track.is_some()
    }

    /// Tracking mode: the view of a receive of `len` bytes starting in buffer `bid`.
    pub(crate) fn view(&mut self, bid: u16, len: u32, buf_more: bool) -> u16 {
        let t = self.track.as_mut().expect("view() in tracking mode only");
        t.view(bid, len, buf_more)
    }

    /// Tracking mode: a completion naming buffer `bid` with no bytes.
    pub(crate) fn empty(&mut self, bid: u16, buf_more: bool) {
        if let Some(b) = self.track.as_mut().and_then(|t| t.empty(bid, buf_more)) {
            self.recycle_bid(b);
        }
    }

    /// Number of parts of view `id` (tracking mode).
    pub(crate) fn parts(&self, id: u16) -> usize {
        self.track.as_ref().map_or(0, |t| t.parts(id).len())
    }

    /// Part `i` of view `id` (tracking mode), or `None` past the last.
    pub(crate) fn part(&self, id: u16, i: usize) -> Option<&[u8]> {
        let &(bid, off, len) = self.track.as_ref()?.parts(id).get(i)?;
        let start = bid as usize * self.size as usize + off as usize;
        debug_assert!(off as usize + len as usize <= self.size as usize);
        // SAFETY: the part lies inside buffer `bid` (`off + len <= size`, the tracker's
        // invariant), inside the allocation. The kernel filled these bytes before posting
        // the completion behind the view, and does not write them again before the
        // buffer is republished, which happens only once every view holding it was
        // released (needs `&mut self`, so not while the slice lives). An incrementally
        // consumed buffer may receive more bytes *after* this part meanwhile, never
        // inside it.
        Some(unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(start), len as usize) })
    }

    fn push(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        if let Some(t) = self.track.as_mut() {
            t.pushed(bid, self.tail);
        }
        let idx = (self.tail & (self.entries - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * self.size as u64;
        // SAFETY: `idx < entries`, so the entry is inside the mapping; the kernel only
        // reads entries between its head and our published tail, and this one is past
        // the published tail until `publish`.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(addr);
        e.set_len(self.size);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of our live mapping and is
        // only written by us; the kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Gives buffer `bid` back to the kernel (plain mode), or ends view `bid`
    /// (tracking mode: its buffers go back once no other view holds them).
    pub(crate) fn recycle(&mut self, bid: u16) {
        if let Some(t) = self.track.as_mut() {
            let mut back = std::mem::take(&mut self.back);
            t.release(bid, &mut back);
            if !back.is_empty() {
                for &b in &back {
                    self.push(b);
                }
                self.publish();
            }
            back.clear();
            self.back = back;
            return;
        }
        self.recycle_bid(bid);
    }

    fn recycle_bid(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Unregisters the group; call before the ring is dropped.
    pub(crate) fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(self.bgid);
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // If still registered (ring dropped without `unregister`), leaking the mapping is
        // the only safe choice: the kernel may still read descriptors from it.
        if !self.registered {
            // SAFETY: the mapping was created in `new` with this length and the kernel
            // no longer references it (unregistered).
            unsafe {
                libc::munmap(self.ring.cast(), self.ring_bytes);
            }
            // SAFETY: allocated in `new` with this layout; unregistered, so the kernel
            // holds no address into it any more.
            unsafe { std::alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout) };
        }
        // Else the buffers are leaked with the mapping, for the same reason.
    }
}
