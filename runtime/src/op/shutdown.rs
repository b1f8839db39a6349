//! `shutdown(2)`. io_uring: `IORING_OP_SHUTDOWN` (kernel 5.11).

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd, how: i32) -> squeue::Entry {
    opcode::Shutdown::new(types::Fd(fd), how).build()
}
