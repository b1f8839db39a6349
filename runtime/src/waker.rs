//! Waking a worker from another thread: one eventfd write, or one ring-less
//! `MSG_RING` into the worker's ring with [`Config::msg_ring_wake`](crate::Config::msg_ring_wake).
//! Below the worker loop (`worker.rs` creates and closes the eventfd and publishes
//! the ring fd; `io.rs` hands a [`Waker`] to the service), so neither needs the other.

use crate::token::{OpKind, Token};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};

/// The token of the worker's eventfd read.
pub(crate) const WAKE_TOKEN: Token =
    Token::internal(crate::token::WORKER_INTERNAL_ID, OpKind::Wake);
/// The completion a `MSG_RING` wake posts ([`Config::msg_ring_wake`](crate::Config::msg_ring_wake)):
/// a kind no op is submitted with, so it is never confused with the wake read.
pub(crate) const WAKE_MSG_TOKEN: Token =
    WAKE_TOKEN.with_raw_kind(crate::token::SERVICE_KIND_BASE - 1);

/// Where a worker's wakes go.
#[derive(Debug)]
pub(crate) struct WakeTarget {
    /// The worker's wake eventfd, `-1` once it exited.
    pub(crate) fd: Mutex<RawFd>,
    /// The worker's ring fd while it runs with `msg_ring_wake` (`-1` otherwise): wakes
    /// are then a ring-less `MSG_RING` into it. Set to `-1` before the ring closes,
    /// under this lock, so no wake reaches a reused fd number.
    pub(crate) ring: Mutex<RawFd>,
}

impl WakeTarget {
    /// A target writing the eventfd `fd` (no ring yet).
    pub(crate) fn new(fd: RawFd) -> WakeTarget {
        WakeTarget {
            fd: Mutex::new(fd),
            ring: Mutex::new(-1),
        }
    }
}

/// Wakes one worker from any thread: its loop turn ends (or its next wait returns at
/// once) and the service's `expire` and `flush` run. A service hands work to a helper
/// thread and has the helper call [`wake`](Self::wake) once the result is queued, so
/// the result is picked up on the worker without the worker ever waiting for it.
/// Waking a worker that has exited does nothing.
#[derive(Clone)]
pub struct Waker(Arc<WakeTarget>);

impl Waker {
    /// A waker for the worker behind `target`.
    pub(crate) fn new(target: Arc<WakeTarget>) -> Waker {
        Waker(target)
    }

    /// Makes the worker run a loop turn soon (one eventfd write, or one `MSG_RING`
    /// with [`Config::msg_ring_wake`](crate::Config::msg_ring_wake)).
    pub fn wake(&self) {
        wake(&self.0);
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// Wakes the worker behind `t`: a `MSG_RING` while its ring fd is published, else (or
/// if that fails) an eventfd write; nothing once both are `-1` (the worker exited).
pub(crate) fn wake(t: &WakeTarget) {
    {
        let ring = t.ring.lock().unwrap_or_else(|e| e.into_inner());
        if *ring >= 0 {
            // The ring stays open while the lock is held (see `WakeTarget::ring`).
            match crate::uring::enter::send_msg_ring(*ring, WAKE_MSG_TOKEN.raw()) {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!("ringcore: MSG_RING wake failed ({e}); writing the eventfd")
                }
            }
        }
    }
    let fd = t.fd.lock().unwrap_or_else(|e| e.into_inner());
    if *fd >= 0 {
        // SAFETY: the eventfd stays open while the lock is held: the worker closes it
        // under this mutex and then sets -1.
        let efd = unsafe { BorrowedFd::borrow_raw(*fd) };
        // EAGAIN (the counter is near its maximum) means a wake is pending anyway.
        let _ = nix::unistd::write(efd, &1u64.to_ne_bytes());
    }
}
