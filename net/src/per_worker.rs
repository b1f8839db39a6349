//! What `serve` (TCP/Unix listeners) and `serve_udp` (UDP sockets) share: one bound
//! socket per worker, handed out to the workers as they start, and the address forms
//! that bind with default options.

use crate::socket::close_fd;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

/// Checks that `len` sockets were bound for `workers` workers.
///
/// # Errors
/// `InvalidInput` naming both counts and what to do.
pub(crate) fn one_per_worker(len: usize, workers: usize, what: &str) -> io::Result<()> {
    if len == workers {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{len} {what} for {workers} workers: bind one per worker"),
    ))
}

/// One fd per worker, each taken once by the worker that starts with it; what no
/// worker took (a start-up failed) is closed by [`WorkerFds::close_left`].
#[derive(Clone)]
pub(crate) struct WorkerFds(Arc<Mutex<Vec<Option<RawFd>>>>);

impl WorkerFds {
    /// Holds `fds`, worker `i`'s at index `i`.
    pub(crate) fn new(fds: Vec<RawFd>) -> WorkerFds {
        WorkerFds(Arc::new(Mutex::new(fds.into_iter().map(Some).collect())))
    }

    /// Worker `id`'s fd.
    ///
    /// # Errors
    /// `"<what> already taken"` when it was taken before.
    pub(crate) fn take(&self, id: usize, what: &str) -> io::Result<RawFd> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())[id]
            .take()
            .ok_or_else(|| io::Error::other(format!("{what} already taken")))
    }

    /// Closes every fd no worker took.
    pub(crate) fn close_left(&self) {
        for fd in self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
        {
            close_fd(*fd);
        }
    }
}

/// Implements a conversion trait of the shape `fn $method(self, workers: usize) ->
/// io::Result<$bound>` for `$bound` itself (taken as it is) and for each address form
/// listed (bound with `$bound::bind(addr, workers, &$opts::default())`).
macro_rules! bind_with_defaults {
    ($trait:ident::$method:ident -> $bound:ident, $opts:ident; $($from:ty),+ $(,)?) => {
        impl $trait for $bound {
            fn $method(self, _workers: usize) -> std::io::Result<$bound> {
                Ok(self)
            }
        }
        $(
            impl $trait for $from {
                fn $method(self, workers: usize) -> std::io::Result<$bound> {
                    $bound::bind(self, workers, &$opts::default())
                }
            }
        )+
    };
}
pub(crate) use bind_with_defaults;
