//! `connect(2)`. io_uring: `IORING_OP_CONNECT` (kernel 5.5). epoll: nonblocking
//! `connect`, then `EPOLLOUT` and `SO_ERROR`.

use io_uring::{opcode, squeue, types};
use std::os::fd::RawFd;

/// The SQE; `addr` must outlive the op.
pub(crate) fn sqe(fd: RawFd, addr: *const libc::sockaddr, len: libc::socklen_t) -> squeue::Entry {
    opcode::Connect::new(types::Fd(fd), addr, len).build()
}
