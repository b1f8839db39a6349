//! The bounded send queue of one UDP socket: datagrams queued by callbacks this turn,
//! and datagrams in flight, each send in a boxed slot that owns what the kernel reads
//! (the `msghdr`, its iovec, the destination address, the control data and the bytes)
//! until its completion.
//!
//! With GSO on ([`UdpOptions::gso`](super::UdpOptions::gso)) a slot may carry a run of
//! datagrams to one peer: `segs` datagrams of `seg` bytes each, the last one possibly
//! shorter, sent once with a `UDP_SEGMENT` control message; the kernel cuts the run
//! back into datagrams (on the device, or in software before it). The bound counts
//! datagrams, not slots.

use super::addr::{send_addr, MAX_DATAGRAM};
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use slab::Slab;
use std::net::SocketAddr;

/// Spare slots kept for reuse (more are freed).
const SPARE_SLOTS: usize = 64;
/// A spare slot keeps at most this much payload capacity.
const SPARE_CAPACITY: usize = 16 * 1024;

/// Most datagrams one GSO send carries. The kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels and 128 on newer ones; 64 works on both.
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Largest datagram to an IPv4 peer that joins a GSO run: a 1500-byte MTU less the
/// IPv4 and UDP headers. The kernel refuses (`EINVAL`) a GSO send whose header plus
/// segment exceeds the path MTU, where a plain send would have been fragmented, so
/// larger datagrams always go alone.
pub const GSO_MAX_SEGMENT_V4: usize = 1500 - 20 - 8;
/// As [`GSO_MAX_SEGMENT_V4`] for IPv6 peers (40-byte header).
pub const GSO_MAX_SEGMENT_V6: usize = 1500 - 40 - 8;

/// Room for one `UDP_SEGMENT` cmsg: `CMSG_SPACE(2)` is 24 bytes on 64-bit Linux (a
/// 16-byte header, the `u16`, padding); 8-byte aligned as cmsgs need.
#[repr(C, align(8))]
struct Control([u8; 32]);

/// One send on its way out: one datagram, or a GSO run of datagrams to one peer.
pub(crate) struct SendSlot {
    /// INVARIANT: while the send is in flight, points at `iov`, `addr` and (for a run)
    /// `ctl` of this same (boxed, so unmoving) slot.
    pub(crate) hdr: libc::msghdr,
    iov: libc::iovec,
    addr: SockaddrStorage,
    /// The `UDP_SEGMENT` cmsg of a run (unused for a single datagram).
    ctl: Control,
    pub(crate) peer: SocketAddr,
    pub(crate) buf: Vec<u8>,
    /// Datagrams in `buf` (at least 1).
    pub(crate) segs: usize,
    /// Bytes of each datagram of the run but the last (the first datagram's length).
    seg: usize,
    /// A further datagram of at most `seg` bytes may join: GSO is on, every datagram so
    /// far was exactly `seg` bytes, and `seg` is within the segment limit.
    open: bool,
}

impl SendSlot {
    fn new() -> Box<SendSlot> {
        Box::new(SendSlot {
            // SAFETY: an all-zero msghdr/iovec is valid (null pointers, zero lengths).
            hdr: unsafe { std::mem::zeroed() },
            // SAFETY: as above.
            iov: unsafe { std::mem::zeroed() },
            addr: SockaddrStorage::from(SocketAddr::from(([0, 0, 0, 0], 0))),
            ctl: Control([0; 32]),
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            buf: Vec::new(),
            segs: 0,
            seg: 0,
            open: false,
        })
    }

    /// True when this slot is sent as a GSO run (more than one datagram).
    pub(crate) fn is_run(&self) -> bool {
        self.segs > 1
    }

    /// Points the header at this slot's own iovec, address, bytes and (for a run) its
    /// `UDP_SEGMENT` control message; returns it.
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
        self.hdr.msg_flags = 0;
        if self.is_run() {
            self.write_segment_cmsg();
        } else {
            self.hdr.msg_control = std::ptr::null_mut();
            self.hdr.msg_controllen = 0;
        }
        &self.hdr
    }

    /// Writes the `UDP_SEGMENT` cmsg (`seg` as a `u16`) into `ctl` and points the
    /// header at it.
    fn write_segment_cmsg(&mut self) {
        let data = std::mem::size_of::<u16>() as u32;
        // SAFETY: CMSG_SPACE / CMSG_LEN are arithmetic on their argument.
        let (space, len) = unsafe { (libc::CMSG_SPACE(data), libc::CMSG_LEN(data)) };
        debug_assert!(space as usize <= self.ctl.0.len());
        self.ctl.0.fill(0);
        self.hdr.msg_control = self.ctl.0.as_mut_ptr().cast();
        self.hdr.msg_controllen = space as _;
        let seg = self.seg as u16;
        // SAFETY: the header names `ctl`, 8-byte aligned and holding `space` bytes:
        // room for one cmsg header and a u16, so CMSG_FIRSTHDR is non-null and
        // CMSG_DATA points inside `ctl`; the u16 is written unaligned.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&self.hdr);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = libc::UDP_SEGMENT;
            (*c).cmsg_len = len as _;
            libc::CMSG_DATA(c).cast::<u16>().write_unaligned(seg);
        }
    }

    /// The `i`-th datagram of the slot.
    fn datagram(&self, i: usize) -> &[u8] {
        let start = (i * self.seg).min(self.buf.len());
        let end = if i + 1 == self.segs {
            self.buf.len()
        } else {
            (start + self.seg).min(self.buf.len())
        };
        &self.buf[start..end]
    }
}

/// The largest datagram to `peer` that may join a GSO run.
fn segment_limit(peer: &SocketAddr) -> usize {
    if peer.is_ipv4() {
        GSO_MAX_SEGMENT_V4
    } else {
        GSO_MAX_SEGMENT_V6
    }
}

/// The queue. The datagrams of `pending` + `in_flight` (`count`) never exceed `limit`.
///
/// Slots stay boxed everywhere (not only in flight): a slot moves from `spare` to
/// `pending` to `in_flight` and back without copying, and its address, which the
/// kernel reads while the send is in flight, never changes.
#[allow(clippy::vec_box)]
pub(crate) struct SendQueue {
    limit: usize,
    v6: bool,
    /// Coalesce runs of equal datagrams to one peer into GSO sends.
    pub(crate) gso: bool,
    /// Closing or closed: sends are refused.
    pub(crate) closed: bool,
    pub(crate) pending: Vec<Box<SendSlot>>,
    pub(crate) in_flight: Slab<Box<SendSlot>>,
    spare: Vec<Box<SendSlot>>,
    /// INVARIANT: the sum of `segs` over `pending` and `in_flight`.
    count: usize,
    /// Sends refused since the service last collected the count.
    pub(crate) dropped: u64,
}

impl SendQueue {
    pub(crate) fn new(limit: usize, v6: bool, gso: bool) -> SendQueue {
        SendQueue {
            limit: limit.max(1),
            v6,
            gso,
            closed: false,
            pending: Vec::new(),
            in_flight: Slab::new(),
            spare: Vec::new(),
            count: 0,
            dropped: 0,
        }
    }

    /// Datagrams queued or in flight.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Queues one datagram; `false` (counted) when full or closed.
    pub(crate) fn queue(&mut self, peer: SocketAddr, bytes: &[u8]) -> bool {
        if self.closed || self.count >= self.limit {
            self.dropped += 1;
            return false;
        }
        self.count += 1;
        if self.gso && self.append(peer, bytes) {
            return true;
        }
        let mut s = self.spare.pop().unwrap_or_else(SendSlot::new);
        s.buf.clear();
        s.buf.extend_from_slice(bytes);
        s.addr = send_addr(peer, self.v6);
        s.peer = peer;
        s.segs = 1;
        s.seg = bytes.len();
        s.open = self.gso && !bytes.is_empty() && bytes.len() <= segment_limit(&peer);
        self.pending.push(s);
        true
    }

    /// Appends `bytes` to the last pending slot's run when it may join (see
    /// [`SendSlot::open`]); a shorter datagram ends the run.
    fn append(&mut self, peer: SocketAddr, bytes: &[u8]) -> bool {
        let Some(s) = self.pending.last_mut() else {
            return false;
        };
        let fits = s.open
            && s.peer == peer
            && !bytes.is_empty()
            && bytes.len() <= s.seg
            && s.segs < GSO_MAX_SEGMENTS
            && s.buf.len() + bytes.len() <= MAX_DATAGRAM;
        if !fits {
            return false;
        }
        s.buf.extend_from_slice(bytes);
        s.segs += 1;
        s.open = bytes.len() == s.seg;
        true
    }

    /// Cuts a run back into one slot per datagram, in order (a GSO send the kernel
    /// refused, or a run queued before GSO was turned off). The count is unchanged.
    /// Boxed like every slot: one may go in flight, where it must not move.
    #[allow(clippy::vec_box)]
    pub(crate) fn split(&mut self, run: Box<SendSlot>) -> Vec<Box<SendSlot>> {
        let mut out = Vec::with_capacity(run.segs);
        for i in 0..run.segs {
            let d = run.datagram(i);
            let mut s = self.spare.pop().unwrap_or_else(SendSlot::new);
            s.buf.clear();
            s.buf.extend_from_slice(d);
            s.addr = run.addr;
            s.peer = run.peer;
            s.segs = 1;
            s.seg = d.len();
            s.open = false;
            out.push(s);
        }
        self.put_back(run, 0);
        out
    }

    /// Takes back a slot whose send completed, was cancelled or was never submitted:
    /// its datagrams leave the count.
    pub(crate) fn recycle(&mut self, s: Box<SendSlot>) {
        let segs = s.segs;
        self.put_back(s, segs);
    }

    fn put_back(&mut self, mut s: Box<SendSlot>, segs: usize) {
        debug_assert!(self.count >= segs);
        self.count -= segs;
        s.segs = 0;
        s.open = false;
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

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bounded_and_counts_drops() {
        let mut q = SendQueue::new(2, false, false);
        let p = peer("127.0.0.1:1");
        assert!(q.queue(p, b"a"));
        assert!(q.queue(p, b"b"));
        assert!(!q.queue(p, b"c"));
        assert_eq!((q.len(), q.dropped), (2, 1));
        let s = q.pending.pop().unwrap();
        q.recycle(s);
        assert!(q.queue(p, b"d"));
        q.closed = true;
        for s in std::mem::take(&mut q.pending) {
            q.recycle(s);
        }
        assert_eq!(q.len(), 0);
        assert!(!q.queue(p, b"e"));
        assert_eq!(q.dropped, 2);
    }

    #[test]
    fn prepared_header_points_into_the_slot() {
        let mut q = SendQueue::new(4, true, false);
        assert!(q.queue(peer("10.0.0.1:7"), b"hello"));
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
        assert!(h.msg_control.is_null());
    }

    #[test]
    fn gso_runs_join_equal_datagrams_to_one_peer() {
        let (a, b) = (peer("127.0.0.1:1"), peer("127.0.0.1:2"));
        let mut q = SendQueue::new(100, false, true);
        for _ in 0..3 {
            assert!(q.queue(a, &[1; 100]));
        }
        assert!(q.queue(a, &[2; 40])); // a shorter tail ends the run
        assert!(q.queue(a, &[3; 40])); // so this starts a new one
        assert!(q.queue(b, &[4; 40])); // another peer: new slot
        assert!(q.queue(a, &[5; 40])); // not merged across b
        assert!(q.queue(a, &[6; 2000])); // over the segment limit: alone
        assert!(q.queue(a, &[7; 2000]));
        let segs: Vec<usize> = q.pending.iter().map(|s| s.segs).collect();
        assert_eq!(segs, [4, 1, 1, 1, 1, 1]);
        assert_eq!(q.len(), 9);
        let run = &mut q.pending[0];
        assert_eq!(run.datagram(3), &[2; 40]);
        let h = run.prepare();
        // SAFETY: `h` points at the slot's live header and its control buffer.
        let h = unsafe { &*h };
        assert!(!h.msg_control.is_null());
        // SAFETY: as above; the header names one cmsg.
        let (level, kind, seg) = unsafe {
            let c = libc::CMSG_FIRSTHDR(h);
            let seg = libc::CMSG_DATA(c).cast::<u16>().read_unaligned();
            ((*c).cmsg_level, (*c).cmsg_type, seg)
        };
        assert_eq!((level, kind, seg), (libc::SOL_UDP, libc::UDP_SEGMENT, 100));
    }

    #[test]
    fn runs_are_capped_and_the_bound_counts_datagrams() {
        let p = peer("[::1]:9");
        let mut q = SendQueue::new(200, true, true);
        for _ in 0..(GSO_MAX_SEGMENTS + 1) {
            assert!(q.queue(p, &[0; 10]));
        }
        assert_eq!(q.pending.len(), 2);
        // Total payload cap: 45 × 1452 = 65,340 fits, a 46th would pass 65,507.
        let mut q = SendQueue::new(200, true, true);
        for _ in 0..46 {
            assert!(q.queue(p, &[0; GSO_MAX_SEGMENT_V6]));
        }
        assert_eq!(q.pending[0].segs, 45);
        assert!(q.pending[0].buf.len() <= MAX_DATAGRAM);
        let mut q = SendQueue::new(3, false, true);
        for _ in 0..3 {
            assert!(q.queue(peer("127.0.0.1:1"), b"xy"));
        }
        assert!(!q.queue(peer("127.0.0.1:1"), b"xy"));
        assert_eq!((q.pending.len(), q.len(), q.dropped), (1, 3, 1));
    }

    #[test]
    fn split_gives_each_datagram_back_in_order() {
        let p = peer("127.0.0.1:1");
        let mut q = SendQueue::new(10, false, true);
        for i in 0..3u8 {
            assert!(q.queue(p, &[i; 8]));
        }
        assert!(q.queue(p, &[9; 3]));
        let run = q.pending.pop().unwrap();
        let parts = q.split(run);
        assert_eq!(q.len(), 4);
        let got: Vec<Vec<u8>> = parts.iter().map(|s| s.buf.clone()).collect();
        assert_eq!(got, [vec![0; 8], vec![1; 8], vec![2; 8], vec![9; 3]]);
        assert!(parts.iter().all(|s| s.segs == 1 && s.peer == p));
        for s in parts {
            q.recycle(s);
        }
        assert_eq!(q.len(), 0);
    }
}
