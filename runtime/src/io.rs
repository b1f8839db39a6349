//! `Io`: what a [`Service`](crate::Service) sees of its worker: submit ops, read
//! received buffers, the loop-turn clock, counters.

use crate::backend::{BackendKind, Driver};
use crate::completion::Completion;
use crate::config::Config;
use crate::metrics::Counters;
use crate::op::Op;
use crate::token::Token;
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// A worker's handle on its backend. One per worker thread; not `Send`.
pub struct Io {
    pub(crate) driver: Driver,
    pub(crate) counters: Counters,
    pub(crate) now: Instant,
    pub(crate) worker: usize,
    pub(crate) cfg: Arc<Config>,
    pub(crate) draining: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Io {
    pub(crate) fn new(driver: Driver, worker: usize, cfg: Arc<Config>) -> Io {
        Io {
            driver,
            counters: Counters::default(),
            now: Instant::now(),
            worker,
            cfg,
            draining: false,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Queues `op`; it is handed to the kernel at the end of the loop turn (io_uring) or
    /// performed now / on readiness (epoll). Its completion carries `token`.
    ///
    /// # Safety
    /// Every pointer inside `op` (iovecs, msghdr, buffers, addresses) must stay valid and
    /// unmoved until the op's final completion (for multishot ops: the one without
    /// `F_MORE`) has been returned to the service.
    ///
    /// # Errors
    /// Only a fatal backend error (the ring is unusable); ops themselves report failure
    /// in their completion.
    #[inline]
    pub unsafe fn submit(&mut self, token: Token, op: Op) -> io::Result<()> {
        // SAFETY: forwarded caller contract.
        unsafe { self.driver.push(token, op, false, &mut self.counters) }
    }

    /// Queues `first` linked to `second`: `second` starts only after `first` completes
    /// in full, and completes with `-ECANCELED` if `first` fails or falls short.
    ///
    /// # Safety
    /// As [`submit`](Self::submit), for both ops.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub unsafe fn submit_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
    ) -> io::Result<()> {
        if self.driver.sq_space() < 2 {
            // Keep the pair in one submission batch: flush first.
            // SAFETY: a Nop references no memory.
            unsafe {
                self.driver.push(
                    Token::internal(crate::token::WORKER_INTERNAL_ID, crate::token::OpKind::Nop),
                    Op::Nop,
                    false,
                    &mut self.counters,
                )?
            };
        }
        // SAFETY: forwarded caller contract.
        unsafe {
            self.driver
                .push(first.0, first.1, true, &mut self.counters)?;
            self.driver
                .push(second.0, second.1, false, &mut self.counters)
        }
    }

    /// Closes `fd` right now with `close(2)`, outside the op path. Only for fds with no
    /// op in flight (e.g. a pipe whose splices all completed); the backend forgets
    /// what it knew about the fd first.
    pub fn close_now(&mut self, fd: std::os::fd::RawFd) {
        if fd < 0 {
            return;
        }
        self.driver.forget(fd);
        self.counters.syscalls += 1;
        // SAFETY: the caller owns `fd` and no op references it any more.
        unsafe { libc::close(fd) };
    }

    /// The bytes of a receive completion (empty if it carries no buffer).
    #[inline]
    pub fn received(&self, c: &Completion) -> &[u8] {
        match c.buffer() {
            Some(bid) if c.result > 0 => self.driver.buffer(bid, c.result as usize),
            _ => &[],
        }
    }

    /// Returns the completion's pool buffer (if any) to the backend. Call once per
    /// receive completion, after its bytes were consumed or copied.
    #[inline]
    pub fn recycle(&mut self, c: &Completion) {
        if let Some(bid) = c.buffer() {
            self.driver.recycle(bid);
        }
    }

    /// Size of one receive buffer.
    pub fn buffer_size(&self) -> usize {
        self.driver.buffer_size()
    }

    /// The time at the start of this loop turn.
    #[inline]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Index of this worker (0-based).
    pub fn worker_id(&self) -> usize {
        self.worker
    }

    /// The backend this worker runs on.
    pub fn backend(&self) -> BackendKind {
        self.driver.kind()
    }

    /// The runtime configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// This worker's counters (services add to them).
    #[inline]
    pub fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// True once shutdown has started on this worker.
    pub fn is_draining(&self) -> bool {
        self.draining
    }
}
