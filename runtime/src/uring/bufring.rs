//! The provided buffer ring (`IORING_REGISTER_PBUF_RING`, kernel 5.19).
//!
//! One ring per worker: `count` buffers of `size` bytes in one allocation, plus the
//! page-aligned ring of `io_uring_buf` descriptors the kernel picks from. A multishot
//! receive takes a buffer, fills it and names it in the CQE; the worker hands the bytes
//! to the callback and puts the buffer back ([`BufRing::recycle`]) as soon as the
//! callback returns. The kernel never sees a buffer twice without a recycle between.

use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use std::io;
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
    /// INVARIANT: never reallocated or resized after construction; the kernel holds
    /// addresses into it while buffers are in the ring.
    bufs: Box<[u8]>,
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
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries: count,
            tail: 0,
            bufs: vec![0u8; count as usize * size as usize].into_boxed_slice(),
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

    /// The first `len` bytes of buffer `bid`.
    pub(crate) fn slice(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.size as usize;
        &self.bufs[start..start + len.min(self.size as usize)]
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
        } else {
            let bufs = std::mem::take(&mut self.bufs);
            std::mem::forget(bufs);
        }
    }
}
