//! One-shot polls: writability, readability, hang-up. Mostly for writability. io_uring: `IORING_OP_POLL_ADD` (kernel 5.1). epoll: no
//! syscall of its own: completes with [`WRITABLE`] once the fd's `EPOLLOUT` is seen.

use super::Target;
use io_uring::squeue;

/// The SQE (writability).
pub(crate) fn sqe(fd: impl Into<Target>) -> squeue::Entry {
    on_target!(PollAdd, fd.into(), libc::POLLOUT as u32).build()
}

/// The SQE (readability).
pub(crate) fn sqe_readable(fd: impl Into<Target>) -> squeue::Entry {
    on_target!(PollAdd, fd.into(), libc::POLLIN as u32).build()
}

/// The SQE (hang-up or error: `POLLRDHUP`; `POLLERR` and `POLLHUP` are always
/// reported).
pub(crate) fn sqe_hangup(fd: impl Into<Target>) -> squeue::Entry {
    on_target!(PollAdd, fd.into(), HANGUP as u32).build()
}

/// The mask a hang-up poll waits for, and (epoll) its result.
pub(crate) const HANGUP: i32 = (libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP) as i32;

/// epoll: the result of a completed readability poll (the `POLLIN` mask).
pub(crate) const READABLE: i32 = libc::POLLIN as i32;

/// epoll: the result of a completed writability poll (the `POLLOUT` mask).
pub(crate) const WRITABLE: i32 = libc::POLLOUT as i32;
