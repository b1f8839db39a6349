//! Cancel every op on an fd. io_uring: `IORING_OP_ASYNC_CANCEL` with
//! `IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL` (kernel 5.19). epoll: no syscall;
//! the backend completes the fd's armed and parked ops with `-ECANCELED` itself
//! (`epoll/exec.rs`, `cancel_fd`).

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all()).build()
}

/// The SQE cancelling the one op submitted with `target`.
pub(crate) fn sqe_token(target: crate::token::Token) -> squeue::Entry {
    opcode::AsyncCancel::new(target.raw()).build()
}
