//! No-op. io_uring: `IORING_OP_NOP` (kernel 5.1). epoll: completes with 0 at once,
//! no syscall.

use io_uring::{opcode, squeue};

/// The SQE.
pub(crate) fn sqe() -> squeue::Entry {
    opcode::Nop::new().build()
}
