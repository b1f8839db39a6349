//! Accept. Multishot: io_uring `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT`
//! (kernel 5.19); epoll: `accept4(2)` in a loop until `EAGAIN` on each readiness edge.
//! Single-shot ([`Op::Accept`](crate::Op::Accept)): io_uring `IORING_OP_ACCEPT`
//! (kernel 5.5); epoll: one `accept4(2)` once the listener is readable.

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;
use std::ptr;

/// The SQE: every accepted fd is nonblocking and close-on-exec.
pub(crate) fn sqe(fd: RawFd) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(fd))
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
}

/// The single-shot SQE, same flags. While it waits, io_uring queues it on the
/// listener's wait queue as an exclusive, one-shot waiter: a connection wakes the
/// first waiter only, and that waiter leaves the queue (a multishot one stays first).
pub(crate) fn sqe_one(fd: RawFd) -> squeue::Entry {
    opcode::Accept::new(types::Fd(fd), ptr::null_mut(), ptr::null_mut())
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
}

/// epoll: one `accept4(2)`; the new fd is nonblocking and close-on-exec, as with the
/// SQE. The backend loops until `EAGAIN`, skipping `ECONNABORTED`.
pub(crate) fn accept(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: null address pointers ask accept4 not to report the peer address; no
    // memory of ours is written.
    unsafe {
        syscall!(accept4(
            fd,
            ptr::null_mut(),
            ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
        ))
    }
}
