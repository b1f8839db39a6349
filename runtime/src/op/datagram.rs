//! Datagram receive and send (UDP). io_uring: multishot `IORING_OP_RECVMSG` into the
//! provided buffer ring (kernel 6.0) and one `IORING_OP_SENDMSG` per datagram (5.3).
//! epoll: `recvmmsg(2)` batches into per-worker slots and `sendmmsg(2)` batches of the
//! sends queued in one loop turn.
//!
//! # The received buffer's layout (both backends)
//!
//! A receive completion names a pool buffer (`F_BUFFER`) holding `result` bytes laid out
//! as io_uring's multishot `RECVMSG` writes them (`struct io_uring_recvmsg_out`):
//!
//! ```text
//! +---------------------+------------------------+---------------------------+---------+
//! | header (16 bytes):  | name: `name_cap` bytes | control: `control_cap`    | payload |
//! | namelen, controllen,| (the source address)   | bytes (cmsgs, e.g.        |         |
//! | payloadlen, flags   |                        | SO_RXQ_OVFL)              |         |
//! +---------------------+------------------------+---------------------------+---------+
//! ```
//!
//! `name_cap` and `control_cap` are the `msg_namelen` / `msg_controllen` of the
//! template `msghdr` the receive was armed with. `flags` carries `MSG_TRUNC` when the
//! datagram did not fit (the payload is then its first bytes only). The epoll backend
//! writes the very same layout, so [`RecvMsg::parse`] serves both.

use super::Target;
use io_uring::squeue;
use std::io;
use std::mem;
use std::os::fd::RawFd;

/// Size of the header at the start of every received buffer (`io_uring_recvmsg_out`).
pub const RECVMSG_HEADER: usize = 16;

/// Most datagrams one `recvmmsg(2)` / `sendmmsg(2)` moves on the epoll backend.
pub const MMSG_BATCH: usize = 32;

/// The multishot receive SQE, selecting buffers from group `bgid`.
///
/// # Safety
/// `msg` points at a valid template `msghdr` that outlives the op (the push contract).
pub(crate) unsafe fn recv_sqe(
    fd: impl Into<Target>,
    msg: *const libc::msghdr,
    bgid: u16,
) -> squeue::Entry {
    on_target!(RecvMsgMulti, fd.into(), msg, bgid).build()
}

/// The send SQE: `IORING_OP_SENDMSG` with `MSG_NOSIGNAL` (the name is kept, unlike the
/// stream send's one-buffer shortcut).
///
/// # Safety
/// `msg`, its name and its iovecs outlive the op (the push contract).
pub(crate) unsafe fn send_sqe(fd: impl Into<Target>, msg: *const libc::msghdr) -> squeue::Entry {
    on_target!(SendMsg, fd.into(), msg)
        .flags(libc::MSG_NOSIGNAL as u32)
        .build()
}

/// One parsed received datagram (a view into a pool buffer).
#[derive(Clone, Copy, Debug)]
pub struct RecvMsg<'a> {
    /// The source address bytes (a `sockaddr_in` or `sockaddr_in6`), cut to what the
    /// buffer holds.
    pub name: &'a [u8],
    /// Control messages (cmsgs) as the kernel wrote them.
    pub control: &'a [u8],
    /// The payload (only its first bytes when [`truncated`](Self::truncated)).
    pub payload: &'a [u8],
    /// `msg_flags` of the receive.
    pub flags: u32,
}

impl<'a> RecvMsg<'a> {
    /// Parses a received buffer armed with a template of `name_cap` name bytes and
    /// `control_cap` control bytes; `None` if it is too short to be one.
    pub fn parse(buf: &'a [u8], name_cap: usize, control_cap: usize) -> Option<RecvMsg<'a>> {
        let word = |i: usize| -> Option<u32> {
            let b = buf.get(i * 4..i * 4 + 4)?;
            Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (namelen, controllen, payloadlen, flags) = (word(0)?, word(1)?, word(2)?, word(3)?);
        let name_at = RECVMSG_HEADER;
        let control_at = name_at + name_cap;
        let payload_at = control_at + control_cap;
        let rest = buf.get(payload_at..)?;
        let name = &buf[name_at..name_at + (namelen as usize).min(name_cap)];
        let control = &buf[control_at..control_at + (controllen as usize).min(control_cap)];
        let payload = &rest[..(payloadlen as usize).min(rest.len())];
        Some(RecvMsg {
            name,
            control,
            payload,
            flags,
        })
    }

    /// True when the datagram was larger than the buffer (`MSG_TRUNC`).
    pub fn truncated(&self) -> bool {
        self.flags & libc::MSG_TRUNC as u32 != 0
    }

    /// The `(level, type, data)` of each control message.
    pub fn cmsgs(&self) -> impl Iterator<Item = (i32, i32, &'a [u8])> {
        let mut at = 0usize;
        let buf = self.control;
        let hdr = mem::size_of::<libc::cmsghdr>();
        std::iter::from_fn(move || {
            let h = buf.get(at..at + hdr)?;
            // SAFETY: `h` holds `size_of::<cmsghdr>()` initialised bytes; the read is
            // unaligned-safe and cmsghdr is plain old data.
            let c: libc::cmsghdr = unsafe { std::ptr::read_unaligned(h.as_ptr().cast()) };
            let len = c.cmsg_len as usize;
            if len < hdr {
                return None;
            }
            let data = buf.get(at + hdr..at + len)?;
            at += (len + mem::size_of::<usize>() - 1) & !(mem::size_of::<usize>() - 1);
            Some((c.cmsg_level, c.cmsg_type, data))
        })
    }
}

/// The epoll side's receive slots: [`MMSG_BATCH`] buffers of `size` bytes, laid out as
/// io_uring fills pool buffers, plus the `recvmmsg` vectors pointing into them.
pub(crate) struct MmsgSlots {
    bufs: Box<[u8]>,
    size: usize,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
}

impl MmsgSlots {
    pub(crate) fn new(size: usize) -> MmsgSlots {
        MmsgSlots {
            bufs: vec![0u8; size * MMSG_BATCH].into_boxed_slice(),
            size,
            // SAFETY: all-zero mmsghdr/iovec values are valid (null pointers, zero
            // lengths); they are filled before every use.
            hdrs: vec![unsafe { mem::zeroed() }; MMSG_BATCH],
            // SAFETY: as above.
            iovs: vec![unsafe { mem::zeroed() }; MMSG_BATCH],
        }
    }

    /// The first `len` bytes of slot `i`.
    pub(crate) fn slot(&self, i: usize, len: usize) -> &[u8] {
        let start = i * self.size;
        &self.bufs[start..start + len.min(self.size)]
    }

    /// One `recvmmsg(2)` of up to [`MMSG_BATCH`] datagrams shaped by `template`'s name
    /// and control capacities; returns each datagram's total buffer length (header,
    /// name, control, payload) in slot order.
    ///
    /// # Safety
    /// `template` points at a valid `msghdr` (only its two capacities are read).
    pub(crate) unsafe fn recv(
        &mut self,
        fd: RawFd,
        template: *const libc::msghdr,
        out: &mut Vec<usize>,
    ) -> io::Result<()> {
        // SAFETY: the caller guarantees `template` is valid.
        let t = unsafe { &*template };
        let name_cap = t.msg_namelen as usize;
        let control_cap = t.msg_controllen;
        let payload_at = RECVMSG_HEADER + name_cap + control_cap;
        if payload_at >= self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive buffer smaller than the datagram header, name and control",
            ));
        }
        let base = self.bufs.as_mut_ptr();
        for i in 0..MMSG_BATCH {
            // SAFETY: `i * size + payload_at < (i + 1) * size <= bufs.len()`.
            let slot = unsafe { base.add(i * self.size) };
            self.iovs[i] = libc::iovec {
                // SAFETY: inside slot `i`, as above.
                iov_base: unsafe { slot.add(payload_at) }.cast(),
                iov_len: self.size - payload_at,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            // SAFETY: inside slot `i`.
            h.msg_name = unsafe { slot.add(RECVMSG_HEADER) }.cast();
            h.msg_namelen = name_cap as libc::socklen_t;
            h.msg_control = if control_cap > 0 {
                // SAFETY: inside slot `i`.
                unsafe { slot.add(RECVMSG_HEADER + name_cap) }.cast()
            } else {
                std::ptr::null_mut()
            };
            h.msg_controllen = control_cap as _;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into `bufs` (live, exclusive) with the lengths
        // set above; the kernel writes at most those lengths.
        let n = unsafe {
            syscall!(recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                MMSG_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut()
            ))
        }? as usize;
        for i in 0..n {
            let h = &self.hdrs[i];
            let words = [
                h.msg_hdr.msg_namelen,
                h.msg_hdr.msg_controllen as u32,
                h.msg_len,
                h.msg_hdr.msg_flags as u32,
            ];
            let start = i * self.size;
            for (k, w) in words.iter().enumerate() {
                self.bufs[start + k * 4..start + k * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            out.push(payload_at + (h.msg_len as usize).min(self.size - payload_at));
        }
        Ok(())
    }
}

/// epoll: one `sendmmsg(2)` of `msgs` (each a complete `msghdr` with a name) with
/// `MSG_NOSIGNAL`; returns how many left, each one's byte count in `sent`.
///
/// # Safety
/// Every `msghdr` in `msgs`, and the name and iovecs it points at, is valid.
pub(crate) unsafe fn sendmmsg(
    fd: RawFd,
    msgs: &[*const libc::msghdr],
    scratch: &mut Vec<libc::mmsghdr>,
    sent: &mut Vec<u32>,
) -> io::Result<usize> {
    scratch.clear();
    for &m in msgs {
        scratch.push(libc::mmsghdr {
            // SAFETY: the caller guarantees `m` is valid; the copy shares its pointers.
            msg_hdr: unsafe { *m },
            msg_len: 0,
        });
    }
    // SAFETY: `scratch` holds `msgs.len()` headers copied from valid ones (caller
    // contract); sendmmsg only reads what they point at and writes `msg_len`.
    let n = unsafe {
        syscall!(sendmmsg(
            fd,
            scratch.as_mut_ptr(),
            scratch.len() as u32,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT
        ))
    }? as usize;
    sent.clear();
    sent.extend(scratch[..n].iter().map(|h| h.msg_len));
    Ok(n)
}

/// epoll: one `sendmsg(2)` of a datagram (a parked send retried on writability).
///
/// # Safety
/// `msg`, its name and its iovecs are valid.
pub(crate) unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr) -> io::Result<usize> {
    // SAFETY: the caller guarantees `msg` is valid; sendmsg only reads.
    unsafe { syscall!(sendmsg(fd, msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)) }
        .map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_name_control_payload() {
        let mut buf = vec![0u8; RECVMSG_HEADER + 32 + 24 + 5];
        for (k, w) in [16u32, 0, 5, 0].iter().enumerate() {
            buf[k * 4..k * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        buf[16] = 2; // AF_INET
        buf[RECVMSG_HEADER + 56..].copy_from_slice(b"hello");
        let m = RecvMsg::parse(&buf, 32, 24).unwrap();
        assert_eq!(m.name.len(), 16);
        assert_eq!(m.payload, b"hello");
        assert!(m.control.is_empty());
        assert!(!m.truncated());
        assert_eq!(m.cmsgs().count(), 0);
    }

    #[test]
    fn short_buffers_do_not_parse_and_lengths_are_capped() {
        assert!(RecvMsg::parse(&[0u8; 10], 32, 0).is_none());
        let mut buf = vec![0u8; RECVMSG_HEADER + 32 + 3];
        // Claims a 99-byte name and a 1000-byte payload: both are capped.
        buf[0..4].copy_from_slice(&99u32.to_ne_bytes());
        buf[8..12].copy_from_slice(&1000u32.to_ne_bytes());
        buf[12..16].copy_from_slice(&(libc::MSG_TRUNC as u32).to_ne_bytes());
        let m = RecvMsg::parse(&buf, 32, 0).unwrap();
        assert_eq!((m.name.len(), m.payload.len()), (32, 3));
        assert!(m.truncated());
    }
}
