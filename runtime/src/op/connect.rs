//! `connect(2)`. io_uring: `IORING_OP_CONNECT` (kernel 5.5). epoll: nonblocking
//! `connect`, then `EPOLLOUT` and `SO_ERROR`.

use io_uring::{opcode, squeue, types};
use std::io;
use std::mem;
use std::os::fd::RawFd;

/// The SQE; `addr` must outlive the op.
pub(crate) fn sqe(fd: RawFd, addr: *const libc::sockaddr, len: libc::socklen_t) -> squeue::Entry {
    opcode::Connect::new(types::Fd(fd), addr, len).build()
}

/// epoll: nonblocking `connect(2)`. `EINPROGRESS` means "wait for `EPOLLOUT`, then
/// ask [`take_error`]".
///
/// # Safety
/// `addr` points at `len` readable bytes of a socket address.
pub(crate) unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> io::Result<()> {
    // SAFETY: the caller guarantees `addr` is valid for `len` bytes.
    unsafe { syscall!(connect(fd, addr, len)) }.map(drop)
}

/// epoll: the outcome of a nonblocking connect once the socket is writable:
/// `getsockopt(SO_ERROR)`, `Ok(())` if it connected.
pub(crate) fn take_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals and `len` holds the size of `err`.
    unsafe {
        syscall!(getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len
        ))
    }?;
    match err {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
