//! Waking a worker from another thread: one eventfd write. Below the worker loop
//! (`worker.rs` creates and closes the eventfd; `io.rs` hands a [`Waker`] to the
//! service), so neither needs the other.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

/// Wakes one worker from any thread: its loop turn ends (or its next wait returns at
/// once) and the service's `expire` and `flush` run. A service hands work to a helper
/// thread and has the helper call [`wake`](Self::wake) once the result is queued, so
/// the result is picked up on the worker without the worker ever waiting for it.
/// Waking a worker that has exited does nothing.
#[derive(Clone)]
pub struct Waker(Arc<Mutex<RawFd>>);

impl Waker {
    /// A waker writing the eventfd in `fd` (`-1` once the worker closed it).
    pub(crate) fn new(fd: Arc<Mutex<RawFd>>) -> Waker {
        Waker(fd)
    }

    /// Makes the worker run a loop turn soon (one eventfd write).
    pub fn wake(&self) {
        wake(&self.0);
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

/// Writes the eventfd in `fd` (nothing once it is `-1`: the worker exited).
pub(crate) fn wake(fd: &Mutex<RawFd>) {
    let fd = fd.lock().unwrap_or_else(|e| e.into_inner());
    if *fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own (guarded by the
        // mutex, which the worker holds while closing it).
        unsafe { libc::write(*fd, (&one as *const u64).cast(), 8) };
    }
}
