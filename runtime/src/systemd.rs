//! systemd conventions without a dependency: `sd_notify` (readiness and status) and
//! socket activation (`LISTEN_PID`/`LISTEN_FDS`).
//!
//! **Notify.** When `NOTIFY_SOCKET` is set (a unit with `Type=notify`), [`notify`]
//! sends one datagram of `KEY=value` lines to that unix socket (a path, or an
//! abstract name written `@name`). The runtime sends, on its own:
//!
//! | when | message |
//! | --- | --- |
//! | every worker of a [`Runtime::run`](crate::Runtime::run) with signal handling on (the process's main server; [`Config::handle_signals`](crate::Config::handle_signals)) has started its service (for `ringcore-net`: listens) | `READY=1`, `MAINPID=<pid>`, `STATUS=serving on N worker(s)` |
//! | the drain begins (first SIGINT/SIGTERM, or [`Handle::shutdown`](crate::Handle::shutdown)) | `STOPPING=1`, `STATUS=draining connections` |
//!
//! Anything else (periodic `STATUS=` lines with connection counts) is the
//! application's: call [`notify`]. Without `NOTIFY_SOCKET` every call is a no-op.
//! Failures to send are logged once at `debug` and otherwise ignored, as `sd_notify(3)`
//! callers do: a server must not stop because its supervisor went away.
//!
//! **Socket activation.** [`listen_fds`] takes the sockets systemd passed (fd 3
//! onward) when `LISTEN_PID` is this process, marks them close-on-exec and
//! non-blocking, and removes the variables so no child inherits them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// Sends `state` (newline-separated `KEY=value` lines, e.g. `"READY=1"`) to the
/// socket named by `NOTIFY_SOCKET`.
///
/// Returns `Ok(false)` when `NOTIFY_SOCKET` is unset (not run by systemd).
///
/// # Errors
/// A malformed `NOTIFY_SOCKET` or a failed send.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path
        .into_string()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NOTIFY_SOCKET is not UTF-8"))?;
    notify_to(&path, state)?;
    Ok(true)
}

/// Sends `state` to the notify socket `path` (`/run/...` or `@abstract`).
///
/// # Errors
/// An empty or relative `path`, or a failed send.
pub fn notify_to(path: &str, state: &str) -> io::Result<()> {
    let addr = notify_addr(path)?;
    let sock = UnixDatagram::unbound()?;
    let n = sock.send_to_addr(state.as_bytes(), &addr)?;
    if n != state.len() {
        return Err(io::Error::other("short send to NOTIFY_SOCKET"));
    }
    Ok(())
}

fn notify_addr(path: &str) -> io::Result<UnixAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return UnixAddr::from_abstract_name(name.as_bytes());
    }
    if !path.starts_with('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET={path:?}: want an absolute path or an @abstract name"),
        ));
    }
    UnixAddr::from_pathname(path)
}

/// [`notify`], logging a failure once instead of returning it.
pub(crate) fn notify_quiet(state: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = notify(state) {
        if !WARNED.swap(true, SeqCst) {
            tracing::warn!("ringcore: sd_notify failed (further failures not logged): {e}");
        }
    }
}

/// `READY=1` with the main pid and a status line (all workers started).
pub(crate) fn notify_ready(workers: usize) {
    let state = format!(
        "READY=1\nMAINPID={}\nSTATUS=serving on {workers} worker(s)",
        std::process::id()
    );
    notify_quiet(&state);
    tracing::info!("ringcore: ready: {workers} worker(s) started");
}

/// `STOPPING=1`, once per process drain. The lock is held while the datagram is
/// sent: a second caller (the worker, while the signal watcher sends) returns only
/// once it is sent, so a quick exit after any caller returns cannot lose it.
pub(crate) fn notify_stopping() {
    static SENT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut sent = SENT.lock().unwrap_or_else(|e| e.into_inner());
    if !*sent {
        notify_quiet("STOPPING=1\nSTATUS=draining connections");
        *sent = true;
    }
}

/// Takes the sockets passed by systemd socket activation.
///
/// When `LISTEN_PID` equals this process id and `LISTEN_FDS` is `n ≥ 1`, returns
/// descriptors 3 .. 3+n, each checked to be a listening stream socket, marked
/// close-on-exec and non-blocking; `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`
/// are removed from the environment. Otherwise returns an empty list and leaves the
/// environment alone. Call it once, early in `main` (it edits the environment, which
/// must not race with other threads reading it).
///
/// # Errors
/// A malformed `LISTEN_FDS`, or a passed descriptor that is not a listening stream
/// socket (the message names it and says what systemd should pass). The descriptors
/// are closed on error.
pub fn listen_fds() -> io::Result<Vec<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    if pid.as_deref().and_then(|p| p.trim().parse::<u32>().ok()) != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    let n: i32 = count.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={count:?} is not a number"),
        )
    })?;
    if !(0..=4096).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS={n} is out of range"),
        ));
    }
    // Own them all first, so every one is closed if any is refused.
    let out: Vec<OwnedFd> = (LISTEN_FDS_START..LISTEN_FDS_START + n)
        // SAFETY: systemd passed descriptors 3..3+n to this process (LISTEN_PID
        // matched) for it to own; each is taken exactly once, here.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    for fd in &out {
        check_listener(fd)?;
        set_flags(fd.as_raw_fd())?;
    }
    Ok(out)
}

/// Checks that `fd` is a listening TCP (IPv4/IPv6 stream) socket.
///
/// Through `nix` (no `unsafe`): `SO_TYPE` and `SO_ACCEPTCONN` with its typed
/// `getsockopt`, the address family from `getsockname` (nix has no `SO_DOMAIN`).
pub fn check_listener(fd: impl AsFd) -> io::Result<()> {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockaddrLike, SockaddrStorage};
    let fd = fd.as_fd();
    let raw = fd.as_raw_fd();
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "inherited fd {raw} {what}: socket activation needs listening TCP sockets \
                 (ListenStream= with an IP address or port in the .socket unit)"
            ),
        )
    };
    let ty = getsockopt(&fd, sockopt::SockType)
        .map_err(|e| bad(format!("is not a socket ({})", io::Error::from(e))))?;
    if ty != nix::sys::socket::SockType::Stream {
        return Err(bad("is not a stream socket".into()));
    }
    let local =
        getsockname::<SockaddrStorage>(raw).map_err(|e| bad(io::Error::from(e).to_string()))?;
    let dom = local.family().map_or(-1, |f| f as i32);
    if dom != libc::AF_INET && dom != libc::AF_INET6 {
        return Err(bad("is not an IPv4/IPv6 socket".into()));
    }
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(|e| bad(io::Error::from(e).to_string()))? {
        return Err(bad("is not listening".into()));
    }
    Ok(())
}

fn set_flags(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    let fl = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_path_and_an_abstract_socket() {
        let dir = std::env::temp_dir().join(format!("ringcore-notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let rx = UnixDatagram::bind(&dir).unwrap();
        notify_to(dir.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("ringcore-notify-test-{}", std::process::id());
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_relative_notify_path_is_refused() {
        let e = notify_to("run/notify", "READY=1").unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
    }

    #[test]
    fn check_listener_refuses_what_is_not_a_tcp_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        check_listener(&l).unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = check_listener(&s).unwrap_err();
        assert!(e.to_string().contains("not a stream socket"), "{e}");
        let f = std::fs::File::open("/dev/null").unwrap();
        let e = check_listener(&f).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
    }
}
