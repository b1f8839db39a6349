//! Vectored send. io_uring: `IORING_OP_SENDMSG` (kernel 5.3). epoll: `sendmsg(2)`
//! when writable, parked until `EPOLLOUT` on `EAGAIN`; `waitall` (or a link) resumes a
//! short write from a private copy of the iovecs ([`Rest`]).

use super::Target;
use io_uring::squeue;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::slice;

/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the kernel copied.
const ZC_REPORT_USAGE: u16 = 1 << 3;

/// The SQE: `IORING_OP_SEND` (kernel 5.6) when the message is one buffer without
/// control data, which spares the kernel importing a `msghdr` and an iovec array per
/// send; `IORING_OP_SENDMSG` otherwise.
///
/// With `zc`, the zero-copy forms: `IORING_OP_SEND_ZC` (kernel 6.0) for one buffer,
/// `IORING_OP_SENDMSG_ZC` (6.1) otherwise, asking the notification to report whether
/// the kernel copied after all. Such an op completes twice: the result (with `F_MORE`),
/// then a notification (`F_NOTIF`) once the kernel no longer reads the memory.
///
/// # Safety
/// `msg` points at a valid `msghdr` whose iovecs, and the memory they describe, outlive
/// the op (the push contract); with `zc`, until the *notification*.
pub(crate) unsafe fn sqe(
    fd: impl Into<Target>,
    msg: *const libc::msghdr,
    waitall: bool,
    more: bool,
    zc: bool,
) -> squeue::Entry {
    let fd: Target = fd.into();
    let mut flags = libc::MSG_NOSIGNAL as u32;
    if waitall {
        flags |= libc::MSG_WAITALL as u32;
    }
    if more {
        flags |= libc::MSG_MORE as u32;
    }
    // Control data (passed fds) needs the msghdr.
    // SAFETY: forwarded caller contract: `msg` is valid.
    let plain = unsafe { (*msg).msg_controllen } == 0;
    // SAFETY: forwarded caller contract: `msg` and its iovecs are valid.
    let one = match unsafe { iovecs(msg) } {
        [one] if plain => u32::try_from(one.iov_len)
            .ok()
            .map(|len| (one.iov_base as *const u8, len)),
        _ => None,
    };
    match (one, zc) {
        (Some((buf, len)), false) => on_target!(Send, fd, buf, len).flags(flags as i32).build(),
        (Some((buf, len)), true) => on_target!(SendZc, fd, buf, len)
            .flags(flags as i32)
            .zc_flags(ZC_REPORT_USAGE)
            .build(),
        (None, false) => on_target!(SendMsg, fd, msg).flags(flags).build(),
        (None, true) => on_target!(SendMsgZc, fd, msg)
            .flags(flags)
            .ioprio(ZC_REPORT_USAGE)
            .build(),
    }
}

/// epoll: one `sendmsg(2)` with `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never SIGPIPE),
/// and `MSG_MORE` with `more`.
///
/// # Safety
/// `msg` points at a valid `msghdr` whose iovecs point at readable memory.
pub(crate) unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr, more: bool) -> io::Result<usize> {
    let flags = if more {
        libc::MSG_NOSIGNAL | libc::MSG_MORE
    } else {
        libc::MSG_NOSIGNAL
    };
    // SAFETY: the caller guarantees `msg` and its iovecs are valid.
    let plain = unsafe { (*msg).msg_controllen } == 0;
    // SAFETY: as above.
    if let ([one], true) = (unsafe { iovecs(msg) }, plain) {
        // One buffer without control data: plain send(2), no iovec import.
        // SAFETY: the iovec describes readable memory (caller contract); send only reads.
        return unsafe { syscall!(send(fd, one.iov_base, one.iov_len, flags)) }.map(|n| n as usize);
    }
    // SAFETY: the caller guarantees `msg` and its iovecs are valid; sendmsg only reads.
    unsafe { syscall!(sendmsg(fd, msg, flags)) }.map(|n| n as usize)
}

/// The caller's iovecs as a slice (empty when there are none).
///
/// # Safety
/// `msg` points at a valid `msghdr` whose `msg_iov` holds `msg_iovlen` iovecs.
unsafe fn iovecs<'a>(msg: *const libc::msghdr) -> &'a [libc::iovec] {
    // SAFETY: the caller guarantees `msg` is valid.
    let m = unsafe { &*msg };
    if m.msg_iovlen == 0 || m.msg_iov.is_null() {
        return &[];
    }
    // SAFETY: non-null, and the caller guarantees `msg_iovlen` iovecs live there.
    unsafe { slice::from_raw_parts(m.msg_iov, m.msg_iovlen as _) }
}

/// True when a message carries control data (passed fds): such a message needs
/// `IORING_OP_SENDMSG` and is never sent zero-copy.
///
/// # Safety
/// `msg` points at a valid `msghdr`.
pub(crate) unsafe fn has_control(msg: *const libc::msghdr) -> bool {
    // SAFETY: forwarded caller contract.
    let len = unsafe { (*msg).msg_controllen };
    len != 0
}

/// Bytes a message asks to send: the sum of its iovec lengths.
///
/// # Safety
/// As [`sendmsg`].
pub(crate) unsafe fn total_len(msg: *const libc::msghdr) -> usize {
    // SAFETY: forwarded caller contract.
    unsafe { iovecs(msg) }.iter().map(|v| v.iov_len).sum()
}

/// What is left of a message after a short write (epoll, `waitall` or linked send): a
/// private copy of the caller's iovecs, advanced past the bytes already sent. The
/// caller's `msghdr` and iovecs are never written.
pub(crate) struct Rest {
    /// INVARIANT: `iov[first..]` describe exactly the unsent bytes, each inside the
    /// caller's iovec of the same index (so valid as long as the op is in flight).
    iov: Box<[libc::iovec]>,
    first: usize,
}

impl Rest {
    /// The tail of `msg` after its first `sent` bytes.
    ///
    /// # Safety
    /// As [`sendmsg`]; the iovecs' memory must stay valid while the `Rest` is used.
    pub(crate) unsafe fn new(msg: *const libc::msghdr, sent: usize) -> Rest {
        // SAFETY: forwarded caller contract.
        let iov: Box<[libc::iovec]> = unsafe { iovecs(msg) }.into();
        let mut rest = Rest { iov, first: 0 };
        rest.advance(sent);
        rest
    }

    /// Drops the first `n` unsent bytes (they were sent).
    pub(crate) fn advance(&mut self, mut n: usize) {
        while let Some(v) = self.iov.get_mut(self.first) {
            if n < v.iov_len {
                v.iov_base = v.iov_base.cast::<u8>().wrapping_add(n).cast();
                v.iov_len -= n;
                return;
            }
            n -= v.iov_len;
            self.first += 1;
        }
        debug_assert_eq!(n, 0, "advanced past the end of the message");
    }

    /// Bytes still to send.
    pub(crate) fn remaining(&self) -> usize {
        self.iov[self.first..].iter().map(|v| v.iov_len).sum()
    }

    /// One `sendmsg(2)` of the unsent bytes; the caller then [`advance`](Self::advance)s.
    pub(crate) fn send(&mut self, fd: RawFd, more: bool) -> io::Result<usize> {
        let iov = &mut self.iov[self.first..];
        // SAFETY: an all-zero msghdr is valid: no name, no control data, no iovecs.
        let mut m: libc::msghdr = unsafe { mem::zeroed() };
        m.msg_iov = iov.as_mut_ptr();
        m.msg_iovlen = iov.len() as _;
        // SAFETY: `m` is a live msghdr over our iovec copy, whose entries point inside the
        // caller's buffers (valid while the op is in flight, see the field invariant).
        unsafe { sendmsg(fd, &m, more) }
    }
}
