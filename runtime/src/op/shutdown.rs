//! `shutdown(2)`. io_uring: `IORING_OP_SHUTDOWN` (kernel 5.11). epoll: `shutdown(2)` at
//! once.

use super::Target;
use io_uring::squeue;
use std::io;
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: impl Into<Target>, how: i32) -> squeue::Entry {
    on_target!(Shutdown, fd.into(), how).build()
}

/// epoll: `shutdown(2)`.
pub(crate) fn shutdown(fd: RawFd, how: i32) -> io::Result<()> {
    // SAFETY: shutdown touches no memory of ours.
    unsafe { syscall!(shutdown(fd, how)) }.map(drop)
}
