//! Socket activation: serve on the listening sockets systemd passed.
//!
//! [`activated_listeners`] turns the descriptors taken by
//! [`ringcore_runtime::systemd::listen_fds`] into [`Listeners`], one per worker:
//!
//! * as many sockets as workers: worker `i` accepts on socket `i`;
//! * one socket and several workers: each worker gets a duplicate (`dup`) of it. The
//!   duplicates are one kernel socket with one accept queue (not `SO_REUSEPORT`
//!   groups): every worker accepts from the same queue, so the load is shared by
//!   whichever worker is free, and a connection is accepted exactly once;
//! * any other count is refused (say `--workers N` to match the sockets, or pass one).
//!
//! The unit files in `docs/operations.md` show the `.socket`/`.service` pair.

use crate::socket::close_fd;
use crate::Listeners;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

pub use ringcore_runtime::systemd::{listen_fds, notify, LISTEN_FDS_START};

/// Listeners for `workers` workers from the sockets systemd passed, or `None` when
/// this process was not socket-activated (no `LISTEN_PID` naming it).
///
/// # Errors
/// What [`listen_fds`] refuses, a socket count that neither is 1 nor equals
/// `workers`, or a failed `dup`. Every passed socket is closed on error.
pub fn activated_listeners(workers: usize) -> io::Result<Option<Listeners>> {
    let fds = listen_fds()?;
    if fds.is_empty() {
        return Ok(None);
    }
    from_inherited(fds, workers).map(Some)
}

/// [`Listeners`] for `workers` workers from listening sockets this process owns
/// (see the module docs for how a single socket is shared).
///
/// # Errors
/// An empty list, a count that neither is 1 nor equals `workers`, a socket that is not
/// a listening TCP socket, or a failed `dup`; every socket is closed on error.
pub fn from_inherited(fds: Vec<OwnedFd>, workers: usize) -> io::Result<Listeners> {
    use std::os::fd::AsRawFd;
    let workers = workers.max(1);
    if fds.is_empty() || (fds.len() != 1 && fds.len() != workers) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} inherited sockets for {workers} workers: pass one socket (shared by \
                 every worker) or run with --workers {}",
                fds.len(),
                fds.len()
            ),
        ));
    }
    for fd in &fds {
        ringcore_runtime::systemd::check_listener(fd)?;
    }
    let addr = crate::addr::local_addr(fds[0].as_raw_fd()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "inherited socket has no local address",
        )
    })?;
    let mut raw: Vec<RawFd> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    while raw.len() < workers {
        let d = match nix::fcntl::fcntl(raw[0], nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0)) {
            Ok(d) => d,
            Err(e) => {
                let e = io::Error::from(e);
                raw.iter().for_each(|&fd| close_fd(fd));
                return Err(io::Error::new(
                    e.kind(),
                    format!("dup of the inherited socket: {e}"),
                ));
            }
        };
        raw.push(d);
    }
    tracing::info!(
        "ringcore: socket activation: serving on inherited {addr} ({} worker(s))",
        workers
    );
    Ok(Listeners::from_parts(raw, addr))
}
