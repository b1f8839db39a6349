//! `close(2)`. io_uring: `IORING_OP_CLOSE` (kernel 5.6).

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::Close::new(types::Fd(fd)).build()
}
