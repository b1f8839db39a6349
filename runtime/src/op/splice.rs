//! `splice(2)`. io_uring: `IORING_OP_SPLICE` (kernel 5.7). epoll: `splice(2)` with
//! `SPLICE_F_NONBLOCK` on readiness.

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd_in: RawFd, off_in: i64, fd_out: RawFd, off_out: i64, len: u32) -> squeue::Entry {
    opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), off_out, len)
        .flags(libc::SPLICE_F_MOVE)
        .build()
}
