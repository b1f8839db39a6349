//! `read(2)` into a caller buffer. io_uring: `IORING_OP_READ` (kernel 5.6). epoll:
//! `read(2)` now; on `EAGAIN` parked until the fd is readable.

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;

/// The SQE (offset `-1`: the current file position, as `read(2)`).
pub(crate) fn sqe(fd: RawFd, buf: *mut u8, len: u32) -> squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf, len)
        .offset(u64::MAX)
        .build()
}

/// epoll: one `read(2)` at the current file position.
///
/// # Safety
/// `buf` is valid for writes of `len` bytes.
pub(crate) unsafe fn read(fd: RawFd, buf: *mut u8, len: u32) -> io::Result<usize> {
    // SAFETY: the caller guarantees `buf` is writable for `len` bytes.
    unsafe { syscall!(read(fd, buf.cast(), len as usize)) }.map(|n| n as usize)
}
