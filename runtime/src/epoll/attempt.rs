//! One try of a parkable op (send, read, splice, connect, poll-writable, accept): the syscall
//! if the fd looks ready, and what its result means for the fd's readiness flags.
//!
//! A send, read or splice that says `EAGAIN` (or writes/reads short) clears the flag
//! of the side that blocked, so the op waits for the next edge instead of asking
//! again. The syscalls themselves are in `op/*.rs`, next to each op's SQE.

use super::fdstate::{Fds, HUP, NOPOLL, READABLE, WRITABLE};
use super::pending::{Pending, Progress};
use crate::metrics::Counters;
use crate::op::{self, send::Rest, Op};
use std::io;
use std::os::fd::RawFd;

/// Times a splice is retried when it says `EAGAIN` but poll sees both sides ready.
const SPLICE_RETRIES: u8 = 8;

/// One try of a waiting op.
pub(super) enum Attempt {
    /// Finished with `result`; `ok`: in full.
    Done { result: i32, ok: bool },
    /// Wait for readiness (the flag that blocked it is clear).
    Wait,
    /// Try again next turn (splice: `EAGAIN` though both sides looked ready).
    Retry,
}

/// `-errno` of a failed syscall.
pub(super) fn neg(e: &io::Error) -> i32 {
    -e.raw_os_error().unwrap_or(libc::EIO)
}

/// A byte count as a completion result.
pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// One try of a parkable op (send, read, splice, connect, poll), if its fd looks ready.
pub(super) fn attempt(fds: &mut Fds, p: &mut Pending, c: &mut Counters) -> Attempt {
    match p.op {
        Op::Send {
            fd,
            msg,
            waitall,
            more,
        } => send(fds, fd, msg, waitall || p.link, more, &mut p.progress, c),
        Op::Read { fd, buf, len } => loop {
            if !fds.get(fd).ready(READABLE) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            // SAFETY: the push contract keeps `buf` valid for `len` bytes until completion.
            match unsafe { op::read::read(fd, buf, len) } {
                Ok(n) => {
                    if n < len as usize {
                        fds.drained(fd, READABLE);
                    }
                    return Attempt::Done {
                        result: count(n),
                        ok: n == len as usize,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    fds.clear(fd, READABLE);
                    return Attempt::Wait;
                }
                Err(e) => {
                    return Attempt::Done {
                        result: neg(&e),
                        ok: false,
                    }
                }
            }
        },
        Op::Splice {
            fd_in,
            off_in,
            fd_out,
            off_out,
            len,
            more,
        } => {
            if !(fds.get(fd_in).ready(READABLE) && fds.get(fd_out).ready(WRITABLE)) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            match op::splice::splice(fd_in, off_in, fd_out, off_out, len, more) {
                Ok(n) => Attempt::Done {
                    result: count(n),
                    ok: n == len as usize,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    splice_blocked(fds, fd_in, fd_out, &mut p.progress, c)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Attempt::Retry,
                Err(e) => Attempt::Done {
                    result: neg(&e),
                    ok: false,
                },
            }
        }
        Op::SendFile {
            fd_file,
            offset,
            fd_sock,
            len,
        } => loop {
            if !fds.get(fd_sock).ready(WRITABLE) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            c.sendfiles += 1;
            match op::sendfile::sendfile(fd_sock, fd_file, offset, len) {
                Ok(n) => {
                    if n > 0 && n < len as usize {
                        // Short: the socket filled (the kernel marked it to report
                        // the room it regains), so the next sendfile waits for that
                        // edge instead of meeting EAGAIN.
                        fds.drained(fd_sock, WRITABLE);
                    }
                    return Attempt::Done {
                        result: count(n),
                        ok: n == len as usize,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    fds.clear(fd_sock, WRITABLE);
                    return Attempt::Wait;
                }
                Err(e) => {
                    return Attempt::Done {
                        result: neg(&e),
                        ok: false,
                    }
                }
            }
        },
        Op::Connect { fd, addr, addrlen } => connect(fds, fd, addr, addrlen, &mut p.progress, c),
        Op::RecvMsg { fd, msg, flags } => loop {
            if !fds.get(fd).ready(READABLE) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            // SAFETY: the push contract keeps `msg`, its iovecs and control buffer valid
            // until completion. A short read does not clear READABLE: a Unix socket's
            // receive stops where the passed fds change, with more bytes queued.
            match unsafe { op::recvmsg::recvmsg(fd, msg, flags) } {
                Ok(n) => {
                    return Attempt::Done {
                        result: count(n),
                        ok: true,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    fds.clear(fd, READABLE);
                    return Attempt::Wait;
                }
                Err(e) => {
                    return Attempt::Done {
                        result: neg(&e),
                        ok: false,
                    }
                }
            }
        },
        Op::Accept { fd } => loop {
            if !fds.get(fd).ready(READABLE) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            match op::accept::accept(fd) {
                Ok(new) => {
                    // Yield: the next connection wakes another worker first.
                    fds.rotate(fd, c);
                    return Attempt::Done {
                        result: new,
                        ok: true,
                    };
                }
                // The connection went away before we took it: take the next one.
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    fds.clear(fd, READABLE);
                    return Attempt::Wait;
                }
                Err(e) => {
                    // E.g. EMFILE: this worker pauses accepting; leave the wait queue.
                    fds.unregister_exclusive(fd, Some(c));
                    return Attempt::Done {
                        result: neg(&e),
                        ok: false,
                    };
                }
            }
        },
        Op::SendMsg { fd, msg } => loop {
            if !fds.get(fd).ready(WRITABLE) {
                return Attempt::Wait;
            }
            c.syscalls += 1;
            // SAFETY: the push contract keeps `msg`, its name and iovecs valid until
            // completion.
            match unsafe { op::datagram::sendmsg(fd, msg) } {
                Ok(n) => {
                    return Attempt::Done {
                        result: count(n),
                        ok: true,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    fds.clear(fd, WRITABLE);
                    return Attempt::Wait;
                }
                Err(e) => {
                    return Attempt::Done {
                        result: neg(&e),
                        ok: false,
                    }
                }
            }
        },
        Op::PollReadable { fd } => poll(fds, fd, READABLE, op::poll::READABLE, c),
        Op::PollHangup { fd } => poll(fds, fd, HUP, op::poll::HANGUP, c),
        Op::PollWritable { fd } => poll(fds, fd, WRITABLE, op::poll::WRITABLE, c),
        _ => {
            debug_assert!(false, "{} is never parked", p.op.name());
            Attempt::Done {
                result: -libc::EINVAL,
                ok: false,
            }
        }
    }
}

/// A one-shot poll: done with `result` once the fd shows `flag` (or cannot be watched),
/// else wait for the next event.
fn poll(fds: &mut Fds, fd: RawFd, flag: u8, result: i32, c: &mut Counters) -> Attempt {
    if let Err(e) = fds.register(fd, c) {
        return Attempt::Done {
            result: neg(&e),
            ok: false,
        };
    }
    if fds.get(fd).flags & (flag | NOPOLL) != 0 {
        Attempt::Done { result, ok: true }
    } else {
        Attempt::Wait
    }
}

/// `sendmsg` while writable. A plain send completes after one (possibly short) write;
/// a full one (`waitall` or a link head) resumes from its private iovec copy until every
/// byte is sent or an error occurs (then it reports the bytes sent, if any, as io_uring
/// does).
fn send(
    fds: &mut Fds,
    fd: RawFd,
    msg: *const libc::msghdr,
    full: bool,
    more: bool,
    progress: &mut Progress,
    c: &mut Counters,
) -> Attempt {
    if let Progress::Fresh = progress {
        // SAFETY: the push contract keeps `msg` and its iovecs valid until completion.
        let want = unsafe { op::send::total_len(msg) };
        *progress = Progress::Send {
            sent: 0,
            want,
            rest: None,
        };
    }
    let Progress::Send { sent, want, rest } = progress else {
        return Attempt::Done {
            result: -libc::EINVAL,
            ok: false,
        };
    };
    loop {
        if !fds.get(fd).ready(WRITABLE) {
            return Attempt::Wait;
        }
        c.syscalls += 1;
        let r = match rest {
            Some(r) => r.send(fd, more),
            // SAFETY: as above: `msg` and its iovecs are valid until completion.
            None => unsafe { op::send::sendmsg(fd, msg, more) },
        };
        match r {
            Ok(n) => {
                *sent += n;
                if *sent >= *want {
                    return Attempt::Done {
                        result: count(*sent),
                        ok: true,
                    };
                }
                // Short write: the send buffer is full. Watch the fd now (if not yet) so
                // the next send waits for EPOLLOUT instead of finding EAGAIN; a failure
                // here resurfaces when a send has to park.
                let _ = fds.register(fd, c);
                fds.clear(fd, WRITABLE);
                if !full {
                    return Attempt::Done {
                        result: count(*sent),
                        ok: false,
                    };
                }
                match rest {
                    Some(r) => r.advance(n),
                    // SAFETY: as above; the copy only points into the caller's buffers.
                    None => *rest = Some(unsafe { Rest::new(msg, *sent) }),
                }
                debug_assert_eq!(rest.as_ref().map(Rest::remaining), Some(*want - *sent));
                return Attempt::Wait;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                fds.clear(fd, WRITABLE);
                return Attempt::Wait;
            }
            Err(e) => {
                let result = if *sent > 0 { count(*sent) } else { neg(&e) };
                return Attempt::Done { result, ok: false };
            }
        }
    }
}

/// A splice said `EAGAIN`: ask poll which side blocks and wait for that one.
fn splice_blocked(
    fds: &mut Fds,
    fd_in: RawFd,
    fd_out: RawFd,
    progress: &mut Progress,
    c: &mut Counters,
) -> Attempt {
    c.syscalls += 1;
    let (in_ready, out_ready) = match op::splice::ready_sides(fd_in, fd_out) {
        Ok(sides) => sides,
        Err(e) => {
            return Attempt::Done {
                result: neg(&e),
                ok: false,
            }
        }
    };
    if !in_ready {
        fds.clear(fd_in, READABLE);
    }
    if !out_ready {
        fds.clear(fd_out, WRITABLE);
    }
    if in_ready && out_ready {
        // A race (a side moved between splice and poll): retry a few turns, then wait
        // for the destination to drain.
        let retries = match *progress {
            Progress::Splice { retries } => retries + 1,
            _ => 1,
        };
        if retries <= SPLICE_RETRIES {
            *progress = Progress::Splice { retries };
            return Attempt::Retry;
        }
        fds.clear(fd_out, WRITABLE);
    }
    *progress = Progress::Splice { retries: 0 };
    Attempt::Wait
}

/// Nonblocking `connect`; once `EINPROGRESS`, wait for `EPOLLOUT` and read `SO_ERROR`.
fn connect(
    fds: &mut Fds,
    fd: RawFd,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
    progress: &mut Progress,
    c: &mut Counters,
) -> Attempt {
    let r = if let Progress::Connecting = progress {
        if !fds.get(fd).ready(WRITABLE) {
            return Attempt::Wait;
        }
        c.syscalls += 1;
        op::connect::take_error(fd)
    } else {
        c.syscalls += 1;
        // SAFETY: the push contract keeps `addr` valid for `len` bytes until completion.
        match unsafe { op::connect::connect(fd, addr, len) } {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) => {
                *progress = Progress::Connecting;
                fds.clear(fd, WRITABLE);
                return Attempt::Wait;
            }
            r => r,
        }
    };
    match r {
        Ok(()) => Attempt::Done {
            result: 0,
            ok: true,
        },
        Err(e) => Attempt::Done {
            result: neg(&e),
            ok: false,
        },
    }
}
