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
    /// Wakes this worker from another thread (`None` outside [`Runtime::run`](crate::Runtime::run)).
    pub(crate) waker: Option<crate::waker::Waker>,
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
            waker: None,
            _not_send: std::marker::PhantomData,
        }
    }

    /// A [`Waker`](crate::Waker) for this worker, usable from any thread; `None` when
    /// this `Io` is not driven by [`Runtime::run`](crate::Runtime::run).
    pub fn waker(&self) -> Option<crate::Waker> {
        self.waker.clone()
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
        unsafe { self.driver.push(token, op, &mut self.counters) }
    }

    /// Queues `first` linked to `second`: `second` starts only after `first` completes
    /// in full, and completes with `-ECANCELED` if `first` fails or falls short.
    ///
    /// The pair always reaches the kernel together: on io_uring both SQEs are written
    /// under one borrow of the submission queue and its tail is published once, after
    /// both (so neither a full SQ nor an SQPOLL thread can take the head alone and run
    /// the second op unlinked).
    ///
    /// # Safety
    /// As [`submit`](Self::submit), for both ops.
    ///
    /// # Errors
    /// As [`submit`](Self::submit); `InvalidInput` if the SQ cannot hold two entries
    /// (configuration validation requires at least 4).
    pub unsafe fn submit_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
    ) -> io::Result<()> {
        // SAFETY: forwarded caller contract.
        unsafe { self.driver.push_linked(first, second, &mut self.counters) }
    }

    /// Closes `fd` right now with `close(2)`, outside the op path. Only for fds with no
    /// op in flight (e.g. a pipe whose splices all completed); the backend forgets
    /// what it knew about the fd first.
    pub fn close_now(&mut self, fd: std::os::fd::RawFd) {
        if fd < 0 {
            return;
        }
        self.driver.forget(fd, &mut self.counters);
        self.counters.syscalls += 1;
        // The caller owns `fd` and no op references it any more. A failed close(2)
        // still frees the number on Linux: nothing to retry.
        let _ = nix::unistd::close(fd);
    }

    /// Puts connection socket `fd` into the worker's direct-descriptor table (io_uring
    /// with [`Config::direct_descriptors`](crate::Config::direct_descriptors)): its
    /// receives, sends, shutdowns and polls then name the table slot. The fd stays
    /// valid and owned by the caller, who must from then on close it only through
    /// [`Op::Close`](crate::Op::Close) or [`close_now`](Self::close_now) (both empty
    /// the slot; a bare `close(2)` would leave the socket open in the table). Returns
    /// false when the option is off, the table is full (counted in
    /// `direct_fallbacks`) or on epoll: the fd is then used as it is.
    pub fn register_direct(&mut self, fd: std::os::fd::RawFd) -> bool {
        match self.driver.register_direct(fd, &mut self.counters) {
            Ok(on) => on,
            Err(e) => {
                tracing::error!(
                    fd,
                    "ringcore: submitting a direct-descriptor registration failed: {e}"
                );
                false
            }
        }
    }

    /// False when a cancel submitted with a token of kind
    /// [`OpKind::Cancel`](crate::OpKind::Cancel) (and a connection slot, not an
    /// internal token) posts a completion only if it fails: on io_uring with
    /// [`Config::skip_cancel_cqe`] such cancels carry `IOSQE_CQE_SKIP_SUCCESS`. A service
    /// must then not count them as in flight, and must ignore the failure completions
    /// (`-ENOENT`, `-EALREADY`) that still arrive. True on epoll and by default.
    #[inline]
    pub fn cancel_posts_success(&self) -> bool {
        !self.driver.skips_cancel_success()
    }

    /// The bytes of a receive completion (empty if it carries no buffer). With receive
    /// bundles on, only the first part: see [`received_part`](Self::received_part).
    #[inline]
    pub fn received(&self, c: &Completion) -> &[u8] {
        match c.buffer() {
            Some(bid) if c.result > 0 => self.driver.buffer(bid, c.dgram_buf(), c.result as usize),
            _ => &[],
        }
    }

    /// Part `i` of a receive completion's bytes, in order; `None` past the last part.
    /// A receive spans several parts only when io_uring receive bundles are on
    /// ([`Config::recv_bundle`](crate::Config::recv_bundle)); otherwise part 0 is
    /// [`received`](Self::received) (when non-empty) and there is no part 1. Services
    /// that may run with bundles read every part.
    #[inline]
    pub fn received_part(&self, c: &Completion, i: usize) -> Option<&[u8]> {
        match c.buffer() {
            Some(bid) if c.result > 0 => {
                self.driver
                    .buffer_part(bid, c.dgram_buf(), c.result as usize, i)
            }
            _ => None,
        }
    }

    /// Whether this worker's receives use buffer bundles and incremental buffer
    /// consumption, as probed at start-up: `(bundles, incremental)`; `(false, false)`
    /// on epoll.
    pub fn recv_features(&self) -> (bool, bool) {
        self.driver.recv_features()
    }

    /// Returns the completion's pool buffer (if any) to the backend. Call once per
    /// receive completion, after its bytes were consumed or copied.
    #[inline]
    pub fn recycle(&mut self, c: &Completion) {
        if let Some(bid) = c.buffer() {
            self.driver.recycle(bid, c.dgram_buf());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::OpKind;
    use std::time::Duration;

    fn io(backend: BackendKind, ring_entries: u32) -> Io {
        let cfg = Config {
            backend,
            ring_entries,
            buf_count: 8,
            buf_size: 4096,
            ..Config::default()
        };
        let driver = Driver::open(&cfg).expect("open the backend");
        Io::new(driver, 0, Arc::new(cfg))
    }

    /// Loop turns until `n` completions arrived (panics after 5 s).
    fn completions(io: &mut Io, n: usize) -> Vec<Completion> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(Instant::now() < deadline, "timed out; got {out:?}");
            io.driver
                .wait(Some(Duration::from_millis(100)), &mut io.counters)
                .expect("wait");
            while let Some(c) = io.driver.next(&mut io.counters) {
                out.push(c);
            }
        }
        out
    }

    /// A linked pair whose head fails: the second op must complete with `-ECANCELED`,
    /// also when the SQ has room for only the pair (or less): a pair split across two
    /// submissions would run the second op unlinked.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn linked_pair_is_never_split() {
        let mut backends = vec![(BackendKind::Epoll, 1024)];
        for entries in [1, 2, 4] {
            backends.push((BackendKind::Uring, entries));
        }
        for (backend, entries) in backends {
            let mut io = io(backend, entries);
            // Fill the SQ up to one free entry.
            for i in 0..entries.min(8) - 1 {
                // SAFETY: a Nop references no memory.
                unsafe { io.submit(Token::new(i, 1, OpKind::Nop), Op::Nop) }.unwrap();
            }
            let mut buf = [0u8; 8];
            let head = Token::new(100, 1, OpKind::Recv);
            let tail = Token::new(101, 1, OpKind::Nop);
            let read = Op::Read {
                fd: -1,
                buf: buf.as_mut_ptr(),
                len: 8,
            };
            // SAFETY: `buf` outlives the read: we wait for its completion below.
            let r = unsafe { io.submit_linked((head, read), (tail, Op::Nop)) };
            if let Err(e) = r {
                // A ring too small for a pair must say so, not split it.
                assert_eq!(entries, 1, "{backend} with {entries} entries: {e}");
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                continue;
            }
            let n = (entries.min(8) - 1) as usize + 2;
            let got = completions(&mut io, n);
            let res = |t: Token| got.iter().find(|c| c.token == t).map(|c| c.result);
            assert_eq!(
                res(head),
                Some(-libc::EBADF),
                "{backend}/{entries}: {got:?}"
            );
            assert_eq!(
                res(tail),
                Some(-libc::ECANCELED),
                "{backend} with {entries} SQ entries ran the linked op after its head failed: {got:?}"
            );
        }
    }
}
