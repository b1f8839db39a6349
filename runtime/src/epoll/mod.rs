//! The epoll backend: edge-triggered readiness, then the op's syscall, reported as
//! the same [`Completion`] the io_uring backend produces.
//!
//! ```text
//!  push(op) --- fd ready? --- yes: syscall now ------------------> staged completions
//!                  |  no (EAGAIN / flag clear)                           | (delivered after
//!                  v                                                     |  the next wait)
//!            parked on its fd (slab + per-fd list)                       v
//!                  ^                                 wait(): epoll_wait -> flags -> run queue
//!                  +-- next(): per queued fd: retry parked ops, then one multishot step
//!                      (one accept batch, or ONE recv into the scratch buffer) -> ready
//! ```
//!
//! * Every fd is added to the epoll set once (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`,
//!   `data` = fd) by the first op that has to wait on it; its readiness lives in
//!   [`fdstate::FdState`].
//! * A multishot recv reads lazily inside [`Poller::next`], one read per completion:
//!   the bytes sit in the single scratch buffer until the caller asks for the next
//!   completion.
//! * Completions of ops performed inside [`Poller::push`] are delivered after the next
//!   [`Poller::wait`], as io_uring delivers the CQEs of SQEs submitted by that wait;
//!   [`Poller::has_ready`] makes that wait non-blocking, and a wait right after one
//!   that polled hands them out without calling `epoll_wait` at all.
//! * `next()` handles only the fds queued when `wait()` returned; an fd that stays
//!   readable is queued again for the next turn, so one busy peer cannot starve the
//!   worker's timers and sends.
//! * A linked pair (`link == true`, then the next push) holds the second op in the
//!   slab until the first completes in full; it is cancelled if the first fails.

mod attempt;
mod dgram;
mod exec;
mod fdstate;
mod pending;
#[cfg(test)]
mod tests;

use crate::completion::Completion;
use crate::config::Config;
use crate::metrics::Counters;
use crate::op::{syscall, Op};
use crate::token::Token;
use fdstate::{Fds, READABLE, WRITABLE};
use pending::Pending;
use slab::Slab;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Events fetched by one `epoll_wait`.
const EVENTS: usize = 1024;

/// Where the next pushed op stands, when the previous push asked for a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkTail {
    /// The head is in flight (slab index): hold the next op behind it.
    Pending(u32),
    /// The head failed or fell short: the next op completes with `-ECANCELED`.
    Failed,
}

/// One worker's epoll backend.
pub(crate) struct Poller {
    /// The epoll fd and the per-fd table.
    fds: Fds,
    /// Ops that wait: parked on fds, or held behind a link head.
    ops: Slab<Pending>,
    /// Completions `next()` may return now.
    ready: VecDeque<Completion>,
    /// Completions produced by `push()`; moved to `ready` by the next `wait()`.
    staged: VecDeque<Completion>,
    /// Fds with work that may proceed (each at most once: `QUEUED`).
    runq: VecDeque<RawFd>,
    /// How many run-queue entries this turn's `next()` calls may still take.
    budget: usize,
    /// Link heads that completed: (held op's slab index, head succeeded in full).
    released: VecDeque<(u32, bool)>,
    /// Set by the previous push when it asked for a link.
    link_tail: Option<LinkTail>,
    /// The previous `wait()` called `epoll_wait` (one without the syscall must follow
    /// one with it).
    polled_last: bool,
    /// True inside `next()`: completions go to `ready`, else to `staged`.
    in_next: bool,
    /// Reusable `epoll_wait` output.
    events: Vec<libc::epoll_event>,
    /// Reusable list of slab indexes (ops parked on one fd).
    ids: Vec<u32>,
    /// The one receive buffer (`cfg.buf_size` bytes); its bytes belong to the last
    /// receive completion returned until `next()` is called again.
    scratch: Box<[u8]>,
    /// Datagram receive slots and the turn's queued datagram sends.
    dgram: dgram::Dgram,
}

impl Poller {
    /// Creates the epoll instance and the scratch buffer on the calling (worker) thread.
    pub(crate) fn new(cfg: &Config) -> io::Result<Poller> {
        // SAFETY: plain epoll instance creation; the result is checked.
        let epfd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC)) }
            .map_err(|e| io::Error::new(e.kind(), format!("epoll_create1: {e}")))?;
        Ok(Poller {
            fds: Fds::new(epfd),
            ops: Slab::new(),
            ready: VecDeque::with_capacity(256),
            staged: VecDeque::with_capacity(256),
            runq: VecDeque::with_capacity(256),
            budget: 0,
            released: VecDeque::new(),
            link_tail: None,
            polled_last: false,
            in_next: false,
            events: Vec::with_capacity(EVENTS),
            ids: Vec::new(),
            scratch: vec![0u8; cfg.buf_size as usize].into_boxed_slice(),
            dgram: dgram::Dgram::default(),
        })
    }

    /// Performs `op` now if its fd is ready (its completion is delivered after the next
    /// [`wait`](Self::wait)), otherwise parks it until the fd is. With `link`, the next
    /// pushed op runs only after this one completes in full.
    ///
    /// # Safety
    /// Every pointer inside `op` must stay valid (and the memory unmoved) until the op's
    /// final completion has been returned by [`Poller::next`].
    ///
    /// # Errors
    /// None today (ops report failure in their completion); kept for parity with
    /// io_uring, where a push can fail.
    pub(crate) unsafe fn push(
        &mut self,
        token: Token,
        op: Op,
        link: bool,
        c: &mut Counters,
    ) -> io::Result<()> {
        c.sqes += 1;
        if self.link_tail.is_none() && !link {
            if let Op::SendMsg { .. } = op {
                self.queue_send(token, op);
                return Ok(());
            }
        }
        // Queued datagram sends leave before any other op starts (order is kept).
        self.flush_datagrams(c);
        match self.link_tail.take() {
            Some(LinkTail::Failed) => {
                self.emit(Completion::new(token, -libc::ECANCELED));
                if link {
                    self.link_tail = Some(LinkTail::Failed);
                }
            }
            Some(LinkTail::Pending(head)) => {
                let id = self.ops.insert(Pending::new(token, op, link)) as u32;
                self.ops[head as usize].then = id;
                if link {
                    self.link_tail = Some(LinkTail::Pending(id));
                }
            }
            None => {
                let started = self.start(token, op, link, c);
                if link {
                    self.link_tail = started.tail();
                }
            }
        }
        self.run_released(c);
        Ok(())
    }

    /// One `epoll_wait`: up to `timeout` (`None`: forever; zero if work is already
    /// waiting), rounded up to whole milliseconds. Records readiness and queues the fds
    /// whose ops may now proceed. When completions are already waiting and the previous
    /// wait polled, this turn skips the syscall.
    ///
    /// # Errors
    /// A failing `epoll_wait` (other than `EINTR`).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()> {
        self.flush_datagrams(c);
        if !(self.ready.is_empty() && self.staged.is_empty()) && self.polled_last {
            // Completions are waiting (typically sends performed at the end of the last
            // turn): hand them out without a syscall, as io_uring does when its CQ is
            // non-empty and nothing needs submitting. Every other turn still polls, so
            // new events are never starved.
            self.polled_last = false;
            self.ready.append(&mut self.staged);
            self.budget = self.runq.len();
            return Ok(());
        }
        self.polled_last = true;
        let ms = if self.has_ready() {
            0
        } else {
            match timeout {
                None => -1,
                Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
            }
        };
        self.events.clear();
        c.syscalls += 1;
        // SAFETY: `events` has room for `EVENTS` entries and the kernel writes at most
        // that many; `epfd` is our open epoll instance.
        let n = match unsafe {
            syscall!(epoll_wait(
                self.fds.epfd,
                self.events.as_mut_ptr(),
                EVENTS as i32,
                ms
            ))
        } {
            Ok(n) => n as usize,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => 0,
            Err(e) => return Err(io::Error::new(e.kind(), format!("epoll_wait: {e}"))),
        };
        // SAFETY: epoll_wait initialised the first `n <= EVENTS` entries.
        unsafe { self.events.set_len(n) };
        for i in 0..n {
            let ev = self.events[i];
            self.on_event(ev.u64 as RawFd, ev.events);
        }
        self.ready.append(&mut self.staged);
        self.budget = self.runq.len();
        Ok(())
    }

    /// Records one event's readiness and queues the fd if an op waits on it.
    fn on_event(&mut self, fd: RawFd, events: u32) {
        let Some(st) = self.fds.find_mut(fd) else {
            return;
        };
        if st.flags & fdstate::REGISTERED == 0 {
            return; // an fd forgotten since (closed); its stale event is dropped
        }
        const BAD: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        const IN: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 | BAD;
        const OUT: u32 = libc::EPOLLOUT as u32 | BAD;
        const HANGUP: u32 = libc::EPOLLRDHUP as u32 | BAD;
        if events & HANGUP != 0 {
            st.flags |= fdstate::HUP;
        }
        if events & IN != 0 {
            st.flags |= READABLE;
        }
        if events & OUT != 0 {
            st.flags |= WRITABLE;
        }
        if st.has_work() {
            self.enqueue(fd);
        }
    }

    /// The next completion: queued ones first, then the work of one ready fd at a time
    /// (for a multishot recv: one read into the scratch buffer per completion).
    pub(crate) fn next(&mut self, c: &mut Counters) -> Option<Completion> {
        self.in_next = true;
        let out = loop {
            if let Some(done) = self.ready.pop_front() {
                c.cqes += 1;
                break Some(done);
            }
            if self.budget == 0 {
                break None;
            }
            self.budget -= 1;
            let Some(fd) = self.runq.pop_front() else {
                self.budget = 0;
                break None;
            };
            self.fds.clear(fd, fdstate::QUEUED);
            self.run_fd(fd, c);
            self.run_released(c);
        };
        self.in_next = false;
        out
    }

    /// True when completions or runnable fds are waiting (the worker then waits with a
    /// zero timeout).
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.staged.is_empty() || !self.runq.is_empty()
    }

    /// The bytes of the last receive completion: the scratch buffer (`bid` 0), or
    /// datagram slot `bid - 1` of the last `recvmmsg` batch.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        match bid {
            0 => &self.scratch[..len],
            n => self.dgram_slot(n as usize - 1, len),
        }
    }

    /// Nothing to return: the scratch buffer is reused by the next read.
    pub(crate) fn recycle(&mut self, _bid: u16) {}

    /// Size of the scratch buffer.
    /// Forgets `fd` before it is closed directly (not through `Op::Close`), so a new
    /// fd with the same number starts unregistered.
    pub(crate) fn forget(&mut self, fd: RawFd) {
        let mut c = Counters::default();
        self.flush_datagrams(&mut c);
        self.forget_fd(fd);
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.scratch.len()
    }

    /// Hands a completion to the caller: now if produced inside `next()`, after the
    /// next `wait()` otherwise.
    fn emit(&mut self, done: Completion) {
        if self.in_next {
            self.ready.push_back(done);
        } else {
            self.staged.push_back(done);
        }
    }

    /// Puts `fd` on the run queue (once).
    fn enqueue(&mut self, fd: RawFd) {
        let st = self.fds.get_mut(fd);
        if st.flags & fdstate::QUEUED == 0 {
            st.flags |= fdstate::QUEUED;
            self.runq.push_back(fd);
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // SAFETY: we own the epoll fd and nothing uses it after this.
        let _ = unsafe { syscall!(close(self.fds.epfd)) };
    }
}
