//! Per-fd state: the epoll registration, the readiness seen so far, the armed
//! multishot op, the armed hang-up poll and the head of the list of parked ops. One
//! 24-byte entry per fd number, in a table indexed by fd and grown on demand.
//!
//! The hang-up poll has its own field because the net crate's hang-up guard keeps one
//! armed on every connection without a timer, for the connection's whole life: as a
//! parked op it cost a 104-byte slab entry per idle connection (more than the rest of
//! the epoll backend's per-connection state together); here it costs 8 bytes.
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
/// What a new registration keeps of an entry: its place in the run queue and which
/// multishot op is armed (readiness starts unknown).
const KEPT: u8 = QUEUED | MULTI_KIND;

/// What the backend knows about one fd.
#[derive(Clone, Copy, Debug)]
pub(super) struct FdState {
    /// The armed multishot accept or recv.
    /// INVARIANT: `Token::NONE` when none is armed.
    pub(super) multi: Token,
    /// The armed one-shot hang-up poll ([`Op::PollHangup`](crate::op::Op)) that is not
    /// part of a link; a second one on the same fd is parked like other ops.
    /// INVARIANT: `Token::NONE` when none is armed.
    pub(super) hup: Token,
    /// First op parked on this fd (an index into the poller's op slab), or [`NIL`].
    pub(super) parked: u32,
    /// `REGISTERED | NOPOLL | READABLE | WRITABLE | QUEUED | MULTI_ACCEPT | HUP | MULTI_DGRAM`.
    pub(super) flags: u8,
    /// Registered with `EPOLLEXCLUSIVE` for single-shot accepts (see
    /// [`Fds::register_exclusive`]).
    pub(super) exclusive: bool,
}

impl FdState {
    /// A fd the backend has never seen.
    pub(super) const EMPTY: FdState = FdState {
        multi: Token::NONE,
        hup: Token::NONE,
        parked: NIL,
        flags: 0,
        exclusive: false,
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
        self.multi != Token::NONE || self.hup != Token::NONE || self.parked != NIL
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
    /// in the run queue. An exclusive registration is removed first: another worker's
    /// dup may keep the listening socket open, and a stale exclusive waiter would take
    /// wake-ups meant for that worker.
    pub(super) fn reset(&mut self, fd: RawFd) {
        self.unregister_exclusive(fd, None);
        if let Some(st) = self.find_mut(fd) {
            *st = FdState {
                flags: st.flags & QUEUED,
                ..FdState::EMPTY
            };
        }
    }

    /// Adds a listener that single-shot accepts wait on to the epoll set as an
    /// exclusive waiter (`EPOLLIN | EPOLLET | EPOLLEXCLUSIVE`), as io_uring queues a
    /// single-shot accept. Several workers' epoll instances watching `dup`s of one
    /// listening socket then are not all woken by each connection: the kernel wakes the
    /// first exclusive waiter whose epoll has a thread in `epoll_wait` (and the next
    /// ones only while none has). A worker that accepted moves to the back of the
    /// socket's wait queue ([`Fds::rotate`]), so connections go round the idle workers.
    /// A fd already registered (non-exclusively) stays as it is.
    pub(super) fn register_exclusive(&mut self, fd: RawFd, c: &mut Counters) -> io::Result<()> {
        if self.get(fd).flags & (REGISTERED | NOPOLL) != 0 {
            return Ok(());
        }
        match self.add(fd, libc::EPOLLIN | libc::EPOLLET | libc::EPOLLEXCLUSIVE, c) {
            Ok(st) => {
                st.exclusive = true;
                Ok(())
            }
            // Not pollable, or (EEXIST) a stale registration of a reused number: the
            // plain path knows what to do with those.
            Err(_) => self.register(fd, c),
        }
    }

    /// After a single-shot accept on an exclusive listener: leaves the socket's wait
    /// queue and joins it again at the back (`EPOLL_CTL_DEL` + `EPOLL_CTL_ADD`;
    /// `EPOLL_CTL_MOD` is refused for exclusive entries), before the accepted
    /// connection is handed on. Readiness starts unknown again; the kernel reports
    /// connections still queued at the next wait. No-op for other fds.
    pub(super) fn rotate(&mut self, fd: RawFd, c: &mut Counters) {
        if self.unregister_exclusive(fd, Some(c)) {
            // A failure leaves the fd unregistered, as if no accept waited: the next
            // accept that finds no connection registers it again.
            let _ = self.register_exclusive(fd, c);
        }
    }

    /// Removes an exclusive registration (after an accept failed, or its accepts were
    /// cancelled: a worker that is not accepting must not take wake-ups). Returns true
    /// if there was one.
    pub(super) fn unregister_exclusive(&mut self, fd: RawFd, c: Option<&mut Counters>) -> bool {
        let epfd = self.epfd;
        let Some(st) = self.find_mut(fd) else {
            return false;
        };
        if !st.exclusive || st.flags & REGISTERED == 0 {
            return false;
        }
        st.flags &= !(REGISTERED | READABLE | WRITABLE | HUP);
        st.exclusive = false;
        if let Some(c) = c {
            c.syscalls += 1;
        }
        // SAFETY: DEL ignores the event pointer; `epfd` is our open epoll instance.
        let _ = unsafe {
            syscall!(epoll_ctl(
                epfd,
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut()
            ))
        };
        true
    }

    /// Adds `fd` to the epoll set once. Readiness starts unknown (flags clear): the
    /// kernel reports the fd's current state at the next `epoll_wait`, so no edge is
    /// lost. A regular file (`EPERM`) is marked always ready instead.
    pub(super) fn register(&mut self, fd: RawFd, c: &mut Counters) -> io::Result<()> {
        if self.get(fd).flags & (REGISTERED | NOPOLL) != 0 {
            return Ok(());
        }
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        match self.add(fd, events, c) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                self.get_mut(fd).flags |= NOPOLL;
                Ok(())
            }
            // A stale registration of a reused fd number (closed without Op::Close
            // while another reference kept the file alive): keep it, it is this fd.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = self.get_mut(fd);
                st.flags = (st.flags & KEPT) | REGISTERED | READABLE | WRITABLE;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Adds `fd` to the epoll set watching `events` (`EPOLL_CTL_ADD`, one syscall) and
    /// marks it [`REGISTERED`] with readiness unknown, keeping only [`KEPT`]. On error
    /// the entry is unchanged and the caller decides what the error means.
    fn add(&mut self, fd: RawFd, events: i32, c: &mut Counters) -> io::Result<&mut FdState> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: fd as u64,
        };
        c.syscalls += 1;
        // SAFETY: `ev` is a live epoll_event; `epfd` is our open epoll instance.
        unsafe { syscall!(epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev)) }?;
        let st = self.get_mut(fd);
        st.flags = (st.flags & KEPT) | REGISTERED;
        Ok(st)
    }
}
