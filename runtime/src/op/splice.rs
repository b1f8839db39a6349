//! `splice(2)`. io_uring: `IORING_OP_SPLICE` (kernel 5.7). epoll: `splice(2)` with
//! `SPLICE_F_NONBLOCK` when both sides look ready; on `EAGAIN`, [`ready_sides`] tells
//! which side to wait for.

use io_uring::{opcode, squeue, types};
use std::io;
use std::os::fd::RawFd;
use std::ptr;

/// The SQE.
pub(crate) fn sqe(
    fd_in: RawFd,
    off_in: i64,
    fd_out: RawFd,
    off_out: i64,
    len: u32,
    more: bool,
) -> squeue::Entry {
    opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), off_out, len)
        .flags(flags(more))
        .build()
}

/// `SPLICE_F_MOVE`, plus `SPLICE_F_MORE` when more data follows.
fn flags(more: bool) -> u32 {
    if more {
        libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE
    } else {
        libc::SPLICE_F_MOVE
    }
}

/// epoll: one `splice(2)` with `SPLICE_F_NONBLOCK | SPLICE_F_MOVE` (and `SPLICE_F_MORE`
/// with `more`). An offset `>= 0`
/// reads/writes at that offset without moving the file position (as io_uring does);
/// `-1` uses the pipe / current position.
pub(crate) fn splice(
    fd_in: RawFd,
    off_in: i64,
    fd_out: RawFd,
    off_out: i64,
    len: u32,
    more: bool,
) -> io::Result<usize> {
    let (mut oi, mut oo) = (off_in, off_out);
    let pi: *mut i64 = if off_in < 0 { ptr::null_mut() } else { &mut oi };
    let po: *mut i64 = if off_out < 0 {
        ptr::null_mut()
    } else {
        &mut oo
    };
    // SAFETY: the offset pointers are null or point at live locals; splice touches no
    // other memory of ours.
    unsafe {
        syscall!(splice(
            fd_in,
            pi,
            fd_out,
            po,
            len as usize,
            libc::SPLICE_F_NONBLOCK | flags(more)
        ))
    }
    .map(|n| n as usize)
}

/// epoll, after a splice said `EAGAIN`: one zero-timeout `poll(2)` of both sides,
/// `(fd_in readable, fd_out writable)` (errors and hang-ups count as ready: the next
/// splice reports them).
pub(crate) fn ready_sides(fd_in: RawFd, fd_out: RawFd) -> io::Result<(bool, bool)> {
    let bad = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
    let mut fds = [
        libc::pollfd {
            fd: fd_in,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: fd_out,
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a live array of two pollfds and we pass its length.
    unsafe { syscall!(poll(fds.as_mut_ptr(), 2, 0)) }?;
    Ok((
        fds[0].revents & (libc::POLLIN | bad) != 0,
        fds[1].revents & (libc::POLLOUT | bad) != 0,
    ))
}
