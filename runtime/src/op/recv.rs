//! Multishot receive into the provided buffer ring. io_uring: `IORING_OP_RECV` with
//! `IORING_RECV_MULTISHOT` and `IOSQE_BUFFER_SELECT` (kernel 6.0). epoll: `read(2)`
//! into the worker's scratch buffer on each readable edge.

use super::Target;
use io_uring::squeue;
use std::io;
use std::os::fd::RawFd;

/// The SQE, selecting buffers from group `bgid`.
pub(crate) fn sqe(fd: impl Into<Target>, bgid: u16) -> squeue::Entry {
    on_target!(RecvMulti, fd.into(), bgid).build()
}

/// The bundle SQE (`IORING_RECVSEND_BUNDLE`, kernel 6.10): each completion may cover
/// several buffers of group `bgid`, in ring order.
pub(crate) fn sqe_bundle(fd: impl Into<Target>, bgid: u16) -> squeue::Entry {
    on_target!(RecvMultiBundle, fd.into(), bgid).build()
}

/// epoll: one `recv(2)` into `buf` (the worker's scratch buffer). `Ok(0)` is end of
/// stream.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is an exclusive, live slice of `buf.len()` writable bytes.
    unsafe { syscall!(recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)) }.map(|n| n as usize)
}
