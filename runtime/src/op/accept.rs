//! Multishot accept. io_uring: `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`
//! (kernel 5.19). epoll: `accept4(2)` in a loop until `EAGAIN` on each readiness edge.

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE: every accepted fd is nonblocking and close-on-exec.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(fd))
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
}
