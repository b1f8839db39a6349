//! Unix stream listeners: bind on a path or an abstract name, replace a stale socket
//! file left by a dead server, set the file's mode, and remove the file again on a
//! clean shutdown.
//!
//! Workers share one Unix listener (`SO_REUSEPORT` does not balance Unix sockets): each
//! worker gets its own `dup` of the one listening socket and arms accept on it, so a new
//! connection goes to whichever worker's accept the kernel wakes first. On io_uring
//! that is the first exclusive waiter in the socket's wait queue, so workers keep
//! [`SHARED_ACCEPT_DEPTH`](crate::SHARED_ACCEPT_DEPTH) single-shot accepts there (a
//! multishot one would stay first and take every connection); see server.rs. On epoll
//! each worker keeps one single-shot accept, and the backend registers the listener
//! with `EPOLLEXCLUSIVE` and moves it to the back of the socket's wait queue after each
//! accept (runtime/src/epoll/fdstate.rs), the same rotation. Closing one worker's dup
//! leaves the socket listening for the others; it stops with the last.

use crate::addr::{Addr, RawAddr, UnixAddr};
use crate::socket::SocketOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Removes the socket file when dropped, if it is still the one we bound (same device
/// and inode: a newer server that replaced it keeps its file).
#[derive(Debug)]
pub(crate) struct PathGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e,
                        "could not remove the Unix socket file at shutdown");
                }
            }
            _ => {}
        }
    }
}

fn in_use(addr: &Addr) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "bind {addr}: address in use by a running server (stop it, or pick another path/name)"
        ),
    )
}

/// Decides what to do with an existing file at `path`: `Ok(())` once it is gone (it
/// did not exist, or it was a stale socket nobody listens on and was unlinked).
fn clear_stale(addr: &Addr, path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("bind {addr}: {e}"))),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "bind {addr}: the path exists and is not a socket; remove it or pick another path"
            ),
        ));
    }
    // Probe: a live server accepts (or has a full backlog: EAGAIN), a dead one's file
    // refuses.
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(in_use(addr)),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            tracing::info!(path = %path.display(), "replacing a stale Unix socket file (no server listens on it)");
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("bind {addr}: cannot remove the stale socket file: {e}"),
                )),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(in_use(addr)),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("bind {addr}: probing the existing socket file failed: {e}"),
        )),
    }
}

fn bind_error(addr: &Addr, e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => return in_use(addr),
        Some(libc::EACCES) => " (no write permission on the directory)",
        Some(libc::ENOENT) => " (the directory does not exist)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("bind {addr}: {e}{hint}"))
}

/// Binds and listens on a Unix stream address, returning the socket and, for a path,
/// the guard that removes the file.
pub(crate) fn bind(
    addr: &Addr,
    u: &UnixAddr,
    opts: &SocketOptions,
) -> io::Result<(OwnedFd, Option<PathGuard>)> {
    let raw = RawAddr::new(addr)?;
    if let UnixAddr::Path(p) = u {
        clear_stale(addr, p)?;
    }
    let fd = crate::socket::stream_socket(addr)?;
    opts.apply(fd.as_raw_fd())?;
    nix::sys::socket::bind(fd.as_raw_fd(), raw.as_sockaddr())
        .map_err(|e| bind_error(addr, e.into()))?;
    let guard = match u {
        UnixAddr::Path(p) => {
            let m = std::fs::symlink_metadata(p)
                .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: stat: {e}")))?;
            let guard = PathGuard {
                path: p.clone(),
                dev: m.dev(),
                ino: m.ino(),
            };
            if let Some(mode) = opts.unix_mode {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io::Error::new(e.kind(), format!("chmod {mode:o} {addr}: {e}")))?;
            }
            Some(guard)
        }
        _ => None,
    };
    crate::socket::syscall!(listen(fd.as_raw_fd(), opts.backlog))
        .map_err(|e| io::Error::new(e.kind(), format!("listen {addr}: {e}")))?;
    Ok((fd, guard))
}
