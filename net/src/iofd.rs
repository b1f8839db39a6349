//! [`IoFd`]: an fd the backend may know, closed only through the worker's `Io`
//! (see lifecycle.rs for when). A leaf module: it depends on nothing of the crate.

use ringcore_runtime::Io;
use std::os::fd::RawFd;

/// An fd the backend may know (a pipe, a file being spliced). It has no closing
/// `Drop`: it is closed with [`close`](Self::close) through the worker's `Io`, once no
/// op referencing it is in flight. Dropping one unclosed leaks the fd, which is only
/// right on fatal paths (ops may still be in flight there).
#[derive(Debug)]
pub(crate) struct IoFd(RawFd);

impl IoFd {
    /// Takes ownership of `fd`.
    pub(crate) fn new(fd: RawFd) -> IoFd {
        IoFd(fd)
    }

    /// The fd number.
    pub(crate) fn raw(&self) -> RawFd {
        self.0
    }

    /// Closes the fd through `io` (the backend forgets it first).
    pub(crate) fn close(mut self, io: &mut Io) {
        io.close_now(self.0);
        self.0 = -1;
    }
}

impl Drop for IoFd {
    fn drop(&mut self) {
        debug_assert!(
            self.0 < 0 || std::thread::panicking(),
            "fd {} dropped without IoFd::close: leaked",
            self.0
        );
    }
}
