//! Socket creation, options and the per-worker `SO_REUSEPORT` listeners.

use crate::addr;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::time::Duration;

/// Turns -1 into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes valid arguments for this libc function; the
        // pointers involved point at live locals for the duration of the call.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 { Err(std::io::Error::last_os_error()) } else { Ok(res) }
    }};
}
#[allow(unused_imports)]
pub(crate) use syscall;

/// TCP keepalive probe settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub count: u32,
}

/// Options for listening sockets; accepted sockets inherit them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `SO_REUSEPORT`, one listener per worker (default `true`).
    pub reuseport: bool,
    /// `TCP_NODELAY` (default `true`: request/response servers should not wait for Nagle).
    pub nodelay: bool,
    /// `listen(2)` backlog (default 4096; the kernel caps it at `net.core.somaxconn`).
    pub backlog: i32,
    /// `SO_SNDBUF` in bytes (default: kernel autotuning).
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF` in bytes (default: kernel autotuning).
    pub recv_buffer: Option<usize>,
    /// TCP keepalive (default: 60 s idle, 10 s interval, 6 probes).
    pub keepalive: Option<Keepalive>,
    /// `IPV6_V6ONLY` for IPv6 listeners (default `false`: dual-stack).
    pub v6only: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            reuseport: true,
            nodelay: true,
            backlog: 4096,
            send_buffer: None,
            recv_buffer: None,
            keepalive: Some(Keepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(10),
                count: 6,
            }),
            v6only: false,
        }
    }
}

impl SocketOptions {
    /// Sets `SO_REUSEPORT`.
    pub fn reuseport(mut self, on: bool) -> Self {
        self.reuseport = on;
        self
    }
    /// Sets `TCP_NODELAY`.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
    /// Sets the listen backlog.
    pub fn backlog(mut self, n: i32) -> Self {
        self.backlog = n;
        self
    }
    /// Sets `SO_SNDBUF`.
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }
    /// Sets `SO_RCVBUF`.
    pub fn recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }
    /// Sets (or disables) TCP keepalive.
    pub fn keepalive(mut self, k: Option<Keepalive>) -> Self {
        self.keepalive = k;
        self
    }
    /// Sets `IPV6_V6ONLY`.
    pub fn v6only(mut self, on: bool) -> Self {
        self.v6only = on;
        self
    }

    /// Applies the per-socket options (not reuseport/backlog) to `fd`.
    ///
    /// # Errors
    /// The failing `setsockopt`, named.
    pub fn apply(&self, fd: RawFd) -> io::Result<()> {
        if self.nodelay {
            setopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1, "TCP_NODELAY")?;
        }
        if let Some(n) = self.send_buffer {
            setopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(n), "SO_SNDBUF")?;
        }
        if let Some(n) = self.recv_buffer {
            setopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(n), "SO_RCVBUF")?;
        }
        if let Some(k) = self.keepalive {
            setopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1, "SO_KEEPALIVE")?;
            let secs = |d: Duration| d.as_secs().clamp(1, i32::MAX as u64) as i32;
            setopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPIDLE,
                secs(k.idle),
                "TCP_KEEPIDLE",
            )?;
            setopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPINTVL,
                secs(k.interval),
                "TCP_KEEPINTVL",
            )?;
            setopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_KEEPCNT,
                k.count.max(1) as i32,
                "TCP_KEEPCNT",
            )?;
        }
        Ok(())
    }
}

fn clamp(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

/// `setsockopt` of one `int`, with the option's name in the error.
pub fn setopt(fd: RawFd, level: i32, name: i32, value: i32, what: &str) -> io::Result<()> {
    let v: libc::c_int = value;
    syscall!(setsockopt(
        fd,
        level,
        name,
        (&v as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(drop)
    .map_err(|e| io::Error::new(e.kind(), format!("setsockopt({what}) on fd {fd}: {e}")))
}

/// A new nonblocking, close-on-exec TCP socket for `addr`'s family.
///
/// # Errors
/// `socket(2)`'s error (EMFILE when out of descriptors).
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<RawFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    syscall!(socket(
        family,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0
    ))
}

/// Closes `fd`, ignoring errors (used on error paths and at shutdown).
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

fn bind_one(addr: &SocketAddr, opts: &SocketOptions) -> io::Result<RawFd> {
    let fd = tcp_socket(addr)?;
    let setup = || -> io::Result<()> {
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR")?;
        if opts.reuseport {
            setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1, "SO_REUSEPORT")?;
        }
        if addr.is_ipv6() {
            setopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                opts.v6only as i32,
                "IPV6_V6ONLY",
            )?;
        }
        opts.apply(fd)?;
        let raw = addr::from_std(addr);
        syscall!(bind(fd, raw.as_ptr(), raw.len)).map_err(|e| bind_error(addr, e))?;
        syscall!(listen(fd, opts.backlog))?;
        Ok(())
    };
    match setup() {
        Ok(()) => Ok(fd),
        Err(e) => {
            close_fd(fd);
            Err(e)
        }
    }
}

fn bind_error(addr: &SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            " (address in use: another process listens on this port; stop it or pick another port)"
        }
        Some(libc::EACCES) => {
            " (permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; \
             or lower net.ipv4.ip_unprivileged_port_start)"
        }
        Some(libc::EADDRNOTAVAIL) => " (no local interface has this address)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("bind {addr}: {e}{hint}"))
}

/// One bound, listening socket per worker, all on the same address.
#[derive(Debug)]
pub struct Listeners {
    fds: Vec<RawFd>,
    addr: SocketAddr,
}

impl Listeners {
    /// Binds `count` listeners on `addr` (the first resolved address). With port 0,
    /// the first bind picks the port and the others reuse it.
    ///
    /// # Errors
    /// Resolution failure, port in use, permission denied, bad address: the message
    /// names the address and what to do. Nothing stays open on error.
    pub fn bind<A: ToSocketAddrs>(
        addr: A,
        count: usize,
        opts: &SocketOptions,
    ) -> io::Result<Listeners> {
        let mut resolved = addr.to_socket_addrs().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad listen address: {e}"),
            )
        })?;
        let mut want = resolved.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "listen address resolved to nothing",
            )
        })?;
        if count > 1 && !opts.reuseport {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more than one worker needs SO_REUSEPORT (one listener per worker)",
            ));
        }
        let mut fds = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            match bind_one(&want, opts) {
                Ok(fd) => {
                    if want.port() == 0 {
                        want = addr::local_addr(fd).unwrap_or(want);
                    }
                    fds.push(fd);
                }
                Err(e) => {
                    fds.iter().for_each(|&fd| close_fd(fd));
                    return Err(e);
                }
            }
        }
        Ok(Listeners { fds, addr: want })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of listeners.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Listeners from sockets already bound and listening (socket activation, see
    /// [`crate::systemd`]); they are closed with the value.
    pub(crate) fn from_parts(fds: Vec<RawFd>, addr: SocketAddr) -> Listeners {
        Listeners { fds, addr }
    }

    /// Hands the listener fds over (the caller closes them).
    pub(crate) fn into_fds(mut self) -> Vec<RawFd> {
        std::mem::take(&mut self.fds)
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.fds.iter().for_each(|&fd| close_fd(fd));
    }
}
