//! `shutdown(2)`. io_uring: `IORING_OP_SHUTDOWN` (kernel 5.11). epoll: `shutdown(2)` at
//! once.

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd, how: i32) -> squeue::Entry {
    opcode::Shutdown::new(types::Fd(fd), how).build()
}

/// epoll: `shutdown(2)`.
pub(crate) fn shutdown(fd: RawFd, how: i32) -> io::Result<()> {
    // SAFETY: shutdown touches no memory of ours.
    unsafe { syscall!(shutdown(fd, how)) }.map(drop)
}
