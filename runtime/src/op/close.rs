//! `close(2)`. io_uring: `IORING_OP_CLOSE` (kernel 5.6). epoll: `close(2)` at once,
//! after the backend cancelled the fd's ops and forgot its state (the kernel drops the
//! epoll registration with the last reference to the file).

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::Close::new(types::Fd(fd)).build()
}

/// epoll: `close(2)`. On Linux the fd is released even when this fails (`EINTR`).
pub(crate) fn close(fd: RawFd) -> io::Result<()> {
    // SAFETY: closing touches no memory; the caller owns `fd` and stops using it.
    unsafe { syscall!(close(fd)) }.map(drop)
}
