//! Backend choice (once, at worker start) and the `Driver` that dispatches to it.

pub use crate::backend_kind::BackendKind;
use crate::completion::Completion;
use crate::config::Config;
use crate::epoll::Poller;
use crate::metrics::Counters;
use crate::op::Op;
use crate::token::Token;
use crate::uring::Ring;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// True when an io_uring set-up error means "io_uring is not available here" (as
/// opposed to a bad configuration), so `Auto` should fall back.
fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        crate::error::errno(e),
        Some(libc::EPERM)
            | Some(libc::ENOSYS)
            | Some(libc::EINVAL)
            | Some(libc::ENOMEM)
            | Some(libc::EACCES)
            | Some(libc::EOPNOTSUPP)
    ) || e.kind() == io::ErrorKind::Unsupported
        || e.kind() == io::ErrorKind::PermissionDenied
}

/// The backend of one worker.
pub(crate) enum Driver {
    Uring(Box<Ring>),
    Epoll(Box<Poller>),
    /// Either of the above behind the fault injector (tests only).
    #[cfg(feature = "fault-injection")]
    Fault(Box<crate::fault::FaultDriver<Driver>>),
}

impl Driver {
    /// Opens the configured backend on the calling thread.
    pub(crate) fn open(cfg: &Config) -> io::Result<Driver> {
        let d = Self::open_backend(cfg)?;
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &cfg.fault {
            return Ok(Driver::Fault(Box::new(crate::fault::FaultDriver::new(
                d, plan,
            ))));
        }
        Ok(d)
    }

    fn open_backend(cfg: &Config) -> io::Result<Driver> {
        match cfg.backend {
            BackendKind::Epoll => Ok(Driver::Epoll(Box::new(Poller::new(cfg)?))),
            BackendKind::Uring => Ok(Driver::Uring(Box::new(Ring::new(cfg).map_err(|e| {
                let msg = format!("backend io_uring requested but unavailable: {e}");
                crate::error::context(&e, msg)
            })?))),
            BackendKind::Auto => match Ring::new(cfg) {
                Ok(r) => Ok(Driver::Uring(Box::new(r))),
                Err(e) if is_unavailable(&e) => {
                    if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "ringcore: io_uring unavailable ({e}); running on the epoll backend. \
                             Set RINGCORE_BACKEND=epoll to silence this, or allow io_uring to use it."
                        );
                    }
                    Ok(Driver::Epoll(Box::new(Poller::new(cfg)?)))
                }
                Err(e) => Err(e),
            },
        }
    }

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().kind(),
            Driver::Uring(_) => BackendKind::Uring,
            Driver::Epoll(_) => BackendKind::Epoll,
        }
    }

    /// # Safety
    /// Pointers in `op` stay valid until its final completion.
    #[inline]
    pub(crate) unsafe fn push(&mut self, token: Token, op: Op, c: &mut Counters) -> io::Result<()> {
        match self {
            #[cfg(feature = "fault-injection")]
            // SAFETY: forwarded caller contract.
            Driver::Fault(f) => unsafe { f.push(token, op, c) },
            // SAFETY: forwarded caller contract.
            Driver::Uring(r) => unsafe { r.push(token, op, c) },
            // SAFETY: forwarded caller contract.
            Driver::Epoll(p) => unsafe { p.push(token, op, false, c) },
        }
    }

    /// Pushes `first` linked to `second`, as one unit.
    ///
    /// # Safety
    /// Pointers in both ops stay valid until their final completions.
    pub(crate) unsafe fn push_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
        c: &mut Counters,
    ) -> io::Result<()> {
        match self {
            #[cfg(feature = "fault-injection")]
            // SAFETY: forwarded caller contract.
            Driver::Fault(f) => unsafe { f.push_linked(first, second, c) },
            // SAFETY: forwarded caller contract.
            Driver::Uring(r) => unsafe { r.push_linked(first, second, c) },
            // SAFETY: forwarded caller contract. The poller carries the link from one
            // push to the next (it never fails a push), so two pushes in a row are the
            // pair.
            Driver::Epoll(p) => unsafe {
                p.push(first.0, first.1, true, c)?;
                p.push(second.0, second.1, false, c)
            },
        }
    }

    #[inline]
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()> {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.wait(timeout, c),
            Driver::Uring(r) => r.wait(timeout, c),
            Driver::Epoll(p) => p.wait(timeout, c),
        }
    }

    #[inline]
    pub(crate) fn next(&mut self, c: &mut Counters) -> Option<Completion> {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.next(c),
            Driver::Uring(r) => r.next(c),
            Driver::Epoll(p) => p.next(c),
        }
    }

    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.has_ready(),
            Driver::Uring(r) => r.has_ready(),
            Driver::Epoll(p) => p.has_ready(),
        }
    }

    #[inline]
    pub(crate) fn buffer(&self, bid: u16, dgram: bool, len: usize) -> &[u8] {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().buffer(bid, dgram, len),
            Driver::Uring(r) => r.buffer(bid, dgram, len),
            Driver::Epoll(p) => p.buffer(bid, len),
        }
    }

    #[inline]
    pub(crate) fn buffer_part(&self, bid: u16, dgram: bool, len: usize, i: usize) -> Option<&[u8]> {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().buffer_part(bid, dgram, len, i),
            Driver::Uring(r) => r.buffer_part(bid, dgram, len, i),
            Driver::Epoll(p) => (i == 0).then(|| p.buffer(bid, len)),
        }
    }

    /// (receive bundles, incremental buffers) as actually in use on this worker.
    pub(crate) fn recv_features(&self) -> (bool, bool) {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().recv_features(),
            Driver::Uring(r) => (r.bundles(), r.incremental()),
            Driver::Epoll(_) => (false, false),
        }
    }

    #[inline]
    pub(crate) fn recycle(&mut self, bid: u16, dgram: bool) {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner_mut().recycle(bid, dgram),
            Driver::Uring(r) => r.recycle(bid, dgram),
            Driver::Epoll(p) => p.recycle(bid),
        }
    }

    pub(crate) fn buffer_size(&self) -> usize {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().buffer_size(),
            Driver::Uring(r) => r.buffer_size(),
            Driver::Epoll(p) => p.buffer_size(),
        }
    }

    /// True when a connection's cancels post no completion on success (io_uring with
    /// [`Config::skip_cancel_cqe`]).
    pub(crate) fn skips_cancel_success(&self) -> bool {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().skips_cancel_success(),
            Driver::Uring(r) => r.skips_cancel_success(),
            Driver::Epoll(_) => false,
        }
    }

    /// The io_uring instance's fd (`None` on epoll).
    pub(crate) fn ring_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner().ring_fd(),
            Driver::Uring(r) => Some(r.raw_fd()),
            Driver::Epoll(_) => None,
        }
    }

    pub(crate) fn forget(&mut self, fd: std::os::fd::RawFd, c: &mut Counters) {
        match self {
            Driver::Epoll(p) => p.forget(fd),
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner_mut().forget(fd, c),
            Driver::Uring(r) => {
                if let Err(e) = r.release_direct(fd, c) {
                    tracing::error!(
                        fd,
                        "ringcore: emptying a direct-descriptor slot failed: {e}"
                    );
                }
            }
        }
    }

    /// Puts connection socket `fd` into the io_uring direct-descriptor table; false
    /// when the option is off, the table is full, or on epoll.
    pub(crate) fn register_direct(
        &mut self,
        fd: std::os::fd::RawFd,
        c: &mut Counters,
    ) -> io::Result<bool> {
        match self {
            Driver::Epoll(_) => Ok(false),
            #[cfg(feature = "fault-injection")]
            Driver::Fault(f) => f.inner_mut().register_direct(fd, c),
            Driver::Uring(r) => r.register_direct(fd, c),
        }
    }
}

#[cfg(feature = "fault-injection")]
impl crate::fault::Inner for Driver {
    fn is_epoll(&self) -> bool {
        matches!(self, Driver::Epoll(_))
    }
    unsafe fn push(&mut self, token: Token, op: Op, c: &mut Counters) -> io::Result<()> {
        // SAFETY: forwarded caller contract.
        unsafe { Driver::push(self, token, op, c) }
    }
    unsafe fn push_linked(
        &mut self,
        first: (Token, Op),
        second: (Token, Op),
        c: &mut Counters,
    ) -> io::Result<()> {
        // SAFETY: forwarded caller contract.
        unsafe { Driver::push_linked(self, first, second, c) }
    }
    fn wait(&mut self, timeout: Option<Duration>, c: &mut Counters) -> io::Result<()> {
        Driver::wait(self, timeout, c)
    }
    fn next(&mut self, c: &mut Counters) -> Option<Completion> {
        Driver::next(self, c)
    }
    fn has_ready(&self) -> bool {
        Driver::has_ready(self)
    }
    fn skips_success(&self, token: Token, op: &Op) -> bool {
        match self {
            Driver::Uring(r) => r.skips_cancel_success() && Ring::skips_success(token, op),
            _ => false,
        }
    }
}
