//! The bounded send queue of one UDP socket: datagrams queued by callbacks this turn,
//! and datagrams in flight, each in a boxed slot that owns what the kernel reads (the
//! `msghdr`, its iovec, the destination address and the bytes) until its completion.

use super::addr::send_addr;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use slab::Slab;
use std::net::SocketAddr;

/// Spare slots kept for reuse (more are freed).
const SPARE_SLOTS: usize = 64;
/// A spare slot keeps at most this much payload capacity.
const SPARE_CAPACITY: usize = 16 * 1024;

/// One datagram on its way out.
pub(crate) struct SendSlot {
    /// INVARIANT: while the send is in flight, points at `iov` and `addr` of this same
    /// (boxed, so unmoving) slot.
    pub(crate) hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockaddrStorage,
    pub(crate) peer: SocketAddr,
    pub(crate) buf: Vec<u8>,
}

impl SendSlot {
    fn new() -> Box<SendSlot> {
        Box::new(SendSlot {
            // SAFETY: an all-zero msghdr/iovec is valid (null pointers, zero lengths).
            hdr: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            iov: unsafe { std::mem::zeroed() },
            addr: SockaddrStorage::from(SocketAddr::from(([0, 0, 0, 0], 0))),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            buf: Vec::new(),
        })
    }

    /// Points the header at this slot's own iovec, address and bytes; returns it.
    pub(crate) fn prepare(&mut self) -> *const libc::msghdr {
        self.iov.iov_base = self.buf.as_mut_ptr().cast();
        self.iov.iov_len = self.buf.len();
        self.hdr.msg_name = self.addr.as_ptr() as *mut libc::c_void;
        // The family's own size (nix reports the whole storage for some conversions).
        self.hdr.msg_namelen = if self.addr.as_sockaddr_in6().is_some() {
            std::mem::size_of::<libc::sockaddr_in6>()
        } else {
            std::mem::size_of::<libc::sockaddr_in>()
        } as libc::socklen_t;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_control = std::ptr::null_mut();
        self.hdr.msg_controllen = 0;
        self.hdr.msg_flags = 0;
        &self.hdr
    }
}

/// The queue. `pending` + `in_flight` never exceeds `limit`.
///
/// Slots stay boxed everywhere (not only in flight): a slot moves from `spare` to
/// `pending` to `in_flight` and back without copying, and its address, which the
/// kernel reads while the send is in flight, never changes.
#[allow(clippy::vec_box)]
pub(crate) struct SendQueue {
    limit: usize,
    v6: bool,
    /// Closing or closed: sends are refused.
    pub(crate) closed: bool,
    pub(crate) pending: Vec<Box<SendSlot>>,
    pub(crate) in_flight: Slab<Box<SendSlot>>,
    spare: Vec<Box<SendSlot>>,
    /// Sends refused since the service last collected the count.
    pub(crate) dropped: u64,
}

impl SendQueue {
    pub(crate) fn new(limit: usize, v6: bool) -> SendQueue {
        SendQueue {
            limit: limit.max(1),
            v6,
            closed: false,
            pending: Vec::new(),
            in_flight: Slab::new(),
            spare: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Queues one datagram; `false` (counted) when full or closed.
    pub(crate) fn queue(&mut self, peer: SocketAddr, bytes: &[u8]) -> bool {
        if self.closed || self.len() >= self.limit {
            self.dropped += 1;
            return false;
        }
        let mut s = self.spare.pop().unwrap_or_else(SendSlot::new);
        s.buf.clear();
        s.buf.extend_from_slice(bytes);
        s.addr = send_addr(peer, self.v6);
        s.peer = peer;
        self.pending.push(s);
        true
    }

    /// Takes back a slot whose send completed.
    pub(crate) fn recycle(&mut self, mut s: Box<SendSlot>) {
        if self.spare.len() < SPARE_SLOTS {
            if s.buf.capacity() > SPARE_CAPACITY {
                s.buf = Vec::new();
            }
            self.spare.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_counts_drops() {
        let mut q = SendQueue::new(2, false);
        let p: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(q.queue(p, b"a"));
        assert!(q.queue(p, b"b"));
        assert!(!q.queue(p, b"c"));
        assert_eq!((q.len(), q.dropped), (2, 1));
        let s = q.pending.pop().unwrap();
        q.recycle(s);
        assert!(q.queue(p, b"d"));
        q.closed = true;
        q.pending.clear();
        assert!(!q.queue(p, b"e"));
        assert_eq!(q.dropped, 2);
    }

    #[test]
    fn prepared_header_points_into_the_slot() {
        let mut q = SendQueue::new(4, true);
        assert!(q.queue("10.0.0.1:7".parse().unwrap(), b"hello"));
        let s = &mut q.pending[0];
        let h = s.prepare();
        // SAFETY: `h` points at the slot's live header.
        let h = unsafe { &*h };
        assert_eq!(h.msg_iovlen, 1);
        assert_eq!(
            h.msg_namelen as usize,
            std::mem::size_of::<libc::sockaddr_in6>()
        );
        assert_eq!(h.msg_name as *const u8, s.addr.as_ptr().cast());
    }
}
