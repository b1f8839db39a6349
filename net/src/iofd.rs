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

/// Bytes moved per splice pair (the pipe is sized to hold this much).
pub(crate) const PIPE_CHUNK: u64 = 256 * 1024;

/// Borrows a raw fd for `nix`'s `AsFd`-taking calls.
pub(crate) fn borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: every caller passes an fd it owns (a listener, or a connection's fd held
    // by its slot) and uses the borrow only for the one call it makes; a closed or
    // reused number makes that call fail with EBADF or act on the wrong socket, the
    // same as the libc call it replaces, never memory unsafety.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
