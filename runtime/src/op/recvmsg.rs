//! Single-shot `recvmsg(2)` into caller-owned iovecs and a control buffer, for
//! ancillary data a multishot receive into the buffer ring cannot carry (`SCM_RIGHTS`
//! file descriptors on a Unix socket). io_uring: `IORING_OP_RECVMSG` (kernel 5.3).
//! epoll: `recvmsg(2)` once the socket is readable.
//!
//! Both write the received length back into the header's `msg_controllen` and the
//! message flags (`MSG_CTRUNC`, ...) into its `msg_flags`, as `recvmsg(2)` does.

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd, msg: *mut libc::msghdr, flags: u32) -> squeue::Entry {
    opcode::RecvMsg::new(types::Fd(fd), msg)
        .flags(flags)
        .build()
}

/// epoll: one `recvmsg(2)`. `Ok(0)` is end of stream.
///
/// # Safety
/// `msg` points at a valid header whose iovecs and control buffer are writable for
/// their stated lengths.
pub(crate) unsafe fn recvmsg(fd: RawFd, msg: *mut libc::msghdr, flags: u32) -> io::Result<usize> {
    // SAFETY: forwarded caller contract.
    unsafe { syscall!(recvmsg(fd, msg, flags as i32)) }.map(|n| n as usize)
}
