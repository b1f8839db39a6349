//! The provided buffer ring (`IORING_REGISTER_PBUF_RING`, kernel 5.19).
//!
//! One ring per worker: `count` buffers of `size` bytes in one allocation, plus the
//! page-aligned ring of `io_uring_buf` descriptors the kernel picks from. A multishot
//! receive takes a buffer, fills it and names it in the CQE; the worker hands the bytes
//! to the callback and puts the buffer back ([`BufRing::recycle`]) as soon as the
//! callback returns. The kernel never sees a buffer twice without a recycle between.

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::alloc::Layout;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

/// Buffer group id used by every receive.
pub(crate) const BGID: u16 = 0;

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
    registered: bool,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and registers them as group [`BGID`].
    ///
    /// # Errors
    /// `InvalidInput` if `count` is not a power of two in 1..=32768; the kernel's error
    /// if registration fails (kernels before 5.19 answer `EINVAL`).
    pub(crate) fn new(ring: &IoUring, count: u16, size: u32) -> io::Result<BufRing> {
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
            registered: false,
        };
        // SAFETY: `br.ring` is a live mapping of `count` entries that stays mapped until
        // `br` is dropped, which unregisters first.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(br.ring as u64, count, BGID, 0)?;
        }
        br.registered = true;
        for bid in 0..count {
            br.push(bid);
        }
        br.publish();
        Ok(br)
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

    fn push(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
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

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Unregisters the group; call before the ring is dropped.
    pub(crate) fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(BGID);
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
