//! Per-fd state: the epoll registration, the readiness seen so far, the armed
//! multishot op and the head of the list of parked ops. One 16-byte entry per fd
//! number, in a table indexed by fd and grown on demand.
//!
//! Readiness is edge-triggered, so it is remembered here: an `EPOLLIN` / `EPOLLOUT`
//! event sets [`READABLE`] / [`WRITABLE`]; a syscall that says `EAGAIN` (or a short
//! read or write, which on a stream means the queue ran dry) clears it. An op runs a
//! syscall only while its flag is set, and otherwise waits for the next edge.
//!
//! One exception: once epoll reported a hang-up or error ([`HUP`]: `EPOLLRDHUP`,
//! `EPOLLHUP`, `EPOLLERR`), a short read or write no longer clears the flag. The FIN
//! may have arrived together with the last bytes, in the very edge just consumed; the
//! next read must run to see end of stream (0), as no further edge will come.

use crate::metrics::Counters;
use crate::op::syscall;
use crate::token::Token;
use std::io;
use std::os::fd::RawFd;

/// "No entry" in the parked-op lists.
pub(super) const NIL: u32 = u32::MAX;

/// Added to the epoll set (with `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`).
pub(super) const REGISTERED: u8 = 1 << 0;
/// epoll refused the fd (`EPERM`: a regular file); it is always ready.
pub(super) const NOPOLL: u8 = 1 << 1;
/// A read would not say `EAGAIN` (as far as we know).
pub(super) const READABLE: u8 = 1 << 2;
/// A write would not say `EAGAIN` (as far as we know).
pub(super) const WRITABLE: u8 = 1 << 3;
/// The fd is in the poller's run queue.
pub(super) const QUEUED: u8 = 1 << 4;
/// The armed multishot op is an accept (otherwise a recv).
pub(super) const MULTI_ACCEPT: u8 = 1 << 5;
/// epoll reported `EPOLLRDHUP`, `EPOLLHUP` or `EPOLLERR`: end of stream or an error is
/// pending, so short reads and writes keep the fd ready (the next syscall reports it).
pub(super) const HUP: u8 = 1 << 6;
/// The armed multishot op is a datagram receive (`recvmmsg` batches).
pub(super) const MULTI_DGRAM: u8 = 1 << 7;
/// Which multishot op is armed (neither bit: a stream recv).
pub(super) const MULTI_KIND: u8 = MULTI_ACCEPT | MULTI_DGRAM;

/// What the backend knows about one fd.
#[derive(Clone, Copy, Debug)]
pub(super) struct FdState {
    /// The armed multishot accept or recv.
    /// INVARIANT: `Token::NONE` when none is armed.
    pub(super) multi: Token,
    /// First op parked on this fd (an index into the poller's op slab), or [`NIL`].
    pub(super) parked: u32,
    /// `REGISTERED | NOPOLL | READABLE | WRITABLE | QUEUED | MULTI_ACCEPT | HUP | MULTI_DGRAM`.
    pub(super) flags: u8,
}

impl FdState {
    /// A fd the backend has never seen.
    pub(super) const EMPTY: FdState = FdState {
        multi: Token::NONE,
        parked: NIL,
        flags: 0,
    };

    /// True if a syscall in direction `dir` (`READABLE` or `WRITABLE`) is worth trying:
    /// the flag is set, epoll cannot watch the fd, or the fd is not watched yet (then
    /// the syscall itself finds out).
    #[inline]
    pub(super) fn ready(&self, dir: u8) -> bool {
        self.flags & REGISTERED == 0 || self.flags & (NOPOLL | dir) != 0
    }

    /// True if some op waits on this fd.
    #[inline]
    pub(super) fn has_work(&self) -> bool {
        self.multi != Token::NONE || self.parked != NIL
    }
}

/// The epoll instance and the state of every fd it knows.
pub(super) struct Fds {
    /// The epoll fd (owned; closed by the poller's `Drop`).
    pub(super) epfd: RawFd,
    table: Vec<FdState>,
}

impl Fds {
    pub(super) fn new(epfd: RawFd) -> Fds {
        Fds {
            epfd,
            table: Vec::new(),
        }
    }

    /// The state of `fd` (a copy; [`FdState::EMPTY`] for fds never seen).
    #[inline]
    pub(super) fn get(&self, fd: RawFd) -> FdState {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.table.get(i))
            .copied()
            .unwrap_or(FdState::EMPTY)
    }

    /// The state of `fd`, growing the table if needed.
    ///
    /// # Panics
    /// If `fd` is negative (callers reject those first).
    #[inline]
    pub(super) fn get_mut(&mut self, fd: RawFd) -> &mut FdState {
        let i = usize::try_from(fd).expect("negative fd");
        if i >= self.table.len() {
            self.table
                .resize((i + 1).next_power_of_two().max(64), FdState::EMPTY);
        }
        &mut self.table[i]
    }

    /// The state of `fd` if the table holds it.
    #[inline]
    pub(super) fn find_mut(&mut self, fd: RawFd) -> Option<&mut FdState> {
        usize::try_from(fd).ok().and_then(|i| self.table.get_mut(i))
    }

    pub(super) fn clear(&mut self, fd: RawFd, flags: u8) {
        if let Some(st) = self.find_mut(fd) {
            st.flags &= !flags;
        }
    }

    /// After a short read or write: the queue ran dry, unless a hang-up is pending
    /// (then the next syscall must run to report it).
    pub(super) fn drained(&mut self, fd: RawFd, dir: u8) {
        if let Some(st) = self.find_mut(fd) {
            if st.flags & HUP == 0 {
                st.flags &= !dir;
            }
        }
    }

    /// Forgets `fd` (closed, or a new file under a reused number); keeps only its place
    /// in the run queue.
    pub(super) fn reset(&mut self, fd: RawFd) {
        if let Some(st) = self.find_mut(fd) {
            *st = FdState {
                flags: st.flags & QUEUED,
                ..FdState::EMPTY
            };
        }
    }

    /// Adds `fd` to the epoll set once. Readiness starts unknown (flags clear): the
    /// kernel reports the fd's current state at the next `epoll_wait`, so no edge is
    /// lost. A regular file (`EPERM`) is marked always ready instead.
    pub(super) fn register(&mut self, fd: RawFd, c: &mut Counters) -> io::Result<()> {
        if self.get(fd).flags & (REGISTERED | NOPOLL) != 0 {
            return Ok(());
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: fd as u64,
        };
        c.syscalls += 1;
        // SAFETY: `ev` is a live epoll_event; `epfd` is our open epoll instance.
        let r = unsafe { syscall!(epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev)) };
        let st = self.get_mut(fd);
        match r {
            Ok(_) => {
                st.flags = (st.flags & (QUEUED | MULTI_KIND)) | REGISTERED;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                st.flags |= NOPOLL;
                Ok(())
            }
            // A stale registration of a reused fd number (closed without Op::Close
            // while another reference kept the file alive): keep it, it is this fd.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                st.flags = (st.flags & (QUEUED | MULTI_KIND)) | REGISTERED | READABLE | WRITABLE;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
