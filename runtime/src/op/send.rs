//! Vectored send. io_uring: `IORING_OP_SENDMSG` (kernel 5.3). epoll: `sendmsg(2)`
//! when writable, parked until `EPOLLOUT` on `EAGAIN`.

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE. `msg` must point at a `msghdr` that, with its iovecs, outlives the op.
pub(crate) fn sqe(fd: RawFd, msg: *const libc::msghdr, waitall: bool) -> squeue::Entry {
    let mut flags = libc::MSG_NOSIGNAL as u32;
    if waitall {
        flags |= libc::MSG_WAITALL as u32;
    }
    opcode::SendMsg::new(types::Fd(fd), msg).flags(flags).build()
}
