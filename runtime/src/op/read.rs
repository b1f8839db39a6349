//! `read(2)` into a caller buffer. io_uring: `IORING_OP_READ` (kernel 5.6).

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE (offset `-1`: the current file position, as `read(2)`).
pub(crate) fn sqe(fd: RawFd, buf: *mut u8, len: u32) -> squeue::Entry {
    opcode::Read::new(types::Fd(fd), buf, len)
        .offset(u64::MAX)
        .build()
}
