//! `sendfile(2)` of a file region into a stream socket: page-cache pages go to the
//! socket without a pipe of ours (the kernel uses its own per-thread pipe). io_uring
//! has no sendfile opcode, so both backends run it on the worker: epoll when the
//! socket is writable, io_uring at push time (`-EAGAIN` comes back as the op's result
//! and the caller waits for writability with [`Op::PollWritable`](super::Op)).

use std::io;
use std::os::fd::RawFd;

/// One `sendfile(2)` of up to `len` bytes of `fd_file` from `offset` (the file
/// position is not moved) into the nonblocking socket `fd_sock`.
pub(crate) fn sendfile(fd_sock: RawFd, fd_file: RawFd, offset: i64, len: u32) -> io::Result<usize> {
    let mut off: libc::off_t = offset;
    // SAFETY: `off` is a live local the kernel updates; sendfile touches no other
    // memory of ours.
    unsafe { syscall!(sendfile(fd_sock, fd_file, &mut off, len as usize)) }.map(|n| n as usize)
}
