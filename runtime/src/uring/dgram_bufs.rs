//! The datagram receives' own buffer group, used while the stream group is consumed
//! incrementally (`IOU_PBUF_RING_INC`, [`Config::buf_inc`](crate::Config::buf_inc)).
//!
//! An incremental ring hands each receive the *rest* of the buffer at its head: what
//! earlier receives (of any socket) left. A stream receive just takes fewer bytes; a
//! multishot `RECVMSG` writes its header, address and control data there and cuts the
//! datagram to what remains, reporting it truncated although a whole buffer would
//! have held it. So while the stream ring is incremental, datagram receives select
//! from group [`DGRAM_BGID`]: a plain ring of the same number and size of buffers,
//! each consumed whole. It is registered on the first datagram receive (a worker that
//! serves no UDP pays nothing) and completions from it are marked [`F_DGRAM_BUF`], so
//! [`Ring::buffer`](super::Ring::buffer) and [`Ring::recycle`](super::Ring::recycle)
//! find their bytes there.

use super::bufring::{BufRing, DGRAM_BGID};
use crate::completion::{Completion, F_BUFFER, F_DGRAM_BUF};
use io_uring::IoUring;
use std::collections::HashMap;
use std::io;

#[derive(Default)]
pub(super) struct DgramBufs {
    /// The group's ring, once registered.
    ring: Option<BufRing>,
    /// Datagram receives armed on the group, by user_data: how many (a token may be
    /// re-armed before its previous op's final completion was harvested).
    armed: HashMap<u64, u32>,
}

impl DgramBufs {
    /// Before a datagram receive is queued: registers the group's ring the first
    /// time, if the stream ring is incremental.
    ///
    /// # Errors
    /// The registration's error, with what to do.
    pub(super) fn prepare(&mut self, ring: &IoUring, stream: &BufRing) -> io::Result<()> {
        if !stream.incremental() || self.ring.is_some() {
            return Ok(());
        }
        let (count, size) = (stream.count(), stream.size());
        let r = BufRing::new(ring, count, size, false, false, DGRAM_BGID).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "registering the datagram buffer ring ({count} x {size} B, used beside \
                     incremental stream buffers) failed: {e} (raise `ulimit -l`, lower \
                     buf_count, or turn buf_inc off)"
                ),
            )
        })?;
        self.ring = Some(r);
        Ok(())
    }

    /// The group datagram receives select from, once registered.
    pub(super) fn bgid(&self) -> Option<u16> {
        self.ring.as_ref().map(|_| DGRAM_BGID)
    }

    /// A datagram receive with user_data `raw` was queued on the group.
    pub(super) fn armed(&mut self, raw: u64) {
        if self.ring.is_some() {
            *self.armed.entry(raw).or_default() += 1;
        }
    }

    /// True while any datagram receive selects from the group.
    pub(super) fn active(&self) -> bool {
        !self.armed.is_empty()
    }

    /// Marks a completion of an armed datagram receive (its buffer is from this
    /// group) and forgets the receive at its final completion. False: not ours.
    pub(super) fn harvest(&mut self, x: &mut Completion) -> bool {
        let raw = x.token.raw();
        let Some(n) = self.armed.get_mut(&raw) else {
            return false;
        };
        if !x.more() {
            *n -= 1;
            if *n == 0 {
                self.armed.remove(&raw);
            }
        }
        if x.flags & F_BUFFER != 0 {
            x.flags |= F_DGRAM_BUF;
        }
        true
    }

    /// The first `len` bytes of buffer `bid` of the group.
    pub(super) fn slice(&self, bid: u16, len: usize) -> &[u8] {
        self.ring.as_ref().map_or(&[], |r| r.slice(bid, len))
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn recycle(&mut self, bid: u16) {
        if let Some(r) = self.ring.as_mut() {
            r.recycle(bid);
        }
    }

    /// Unregisters the group; call before the ring is dropped.
    pub(super) fn unregister(&mut self, ring: &IoUring) {
        if let Some(r) = self.ring.as_mut() {
            r.unregister(ring);
        }
    }
}
