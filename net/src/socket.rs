//! Socket creation and [`SocketOptions`]. Options `nix` covers are set through its typed
//! `setsockopt`; the rest through [`sockopt`](crate::sockopt). Listeners live in
//! [`listener`](crate::listener).

use crate::addr::Addr;
use crate::sockopt::set_int;
use nix::sys::socket::{self as nsock, sockopt as so, AddressFamily, SockFlag, SockType};
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, IntoRawFd, OwnedFd, RawFd};
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

pub(crate) use crate::iofd::borrow;

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

/// Options for listening sockets (accepted sockets inherit the per-connection ones) and
/// for outbound sockets ([`ConnectOptions::socket`](crate::ConnectOptions)). TCP-only
/// options are skipped on Unix sockets. docs/tuning.md says when each one helps.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `SO_REUSEPORT`, one listener per worker (default `true`). Unix listeners are one
    /// socket shared by every worker and ignore it.
    pub reuseport: bool,
    /// `TCP_NODELAY` (default `true`: request/response servers should not wait for Nagle).
    pub nodelay: bool,
    /// `listen(2)` backlog (default 4096; the kernel caps it at `net.core.somaxconn`).
    pub backlog: i32,
    /// `SO_SNDBUF` in bytes (default: kernel autotuning; the kernel doubles the value).
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF` in bytes (default: kernel autotuning; the kernel doubles the value).
    pub recv_buffer: Option<usize>,
    /// TCP keepalive (default: 60 s idle, 10 s interval, 6 probes).
    pub keepalive: Option<Keepalive>,
    /// `IPV6_V6ONLY` for IPv6 listeners (default `false`: `[::]:port` also accepts IPv4
    /// clients, whose peer addresses are reported as IPv4).
    pub v6only: bool,
    /// `TCP_FASTOPEN` on listeners: the queue of pending Fast Open requests (default
    /// off). Needs bit 2 of `net.ipv4.tcp_fastopen` (value 2 or 3) to take effect.
    pub fastopen: Option<u32>,
    /// `TCP_FASTOPEN_CONNECT` on outbound sockets (default off): the first send carries
    /// the SYN when a cookie for the server is cached (bit 1 of `net.ipv4.tcp_fastopen`).
    pub fastopen_connect: bool,
    /// `TCP_USER_TIMEOUT`: abort a connection whose sent data stays unacknowledged this
    /// long (default: the kernel's retransmission limits, ~15 minutes).
    pub user_timeout: Option<Duration>,
    /// `TCP_CONGESTION`: the congestion control algorithm, e.g. `"bbr"` (must be in
    /// `net.ipv4.tcp_allowed_congestion_control`, or the process needs CAP_NET_ADMIN).
    pub congestion: Option<String>,
    /// `TCP_NOTSENT_LOWAT`: bytes of unsent data above which the socket stops being
    /// writable (default: unlimited), keeping send queues short.
    pub notsent_lowat: Option<u32>,
    /// `TCP_DEFER_ACCEPT` on listeners: complete `accept` only once data arrived, or
    /// after this long (the kernel rounds up to its SYN-ACK retransmit schedule).
    pub defer_accept: Option<Duration>,
    /// `SO_LINGER`: `close` waits up to this long for unsent data; `Some(ZERO)` resets
    /// the connection on close (default off: normal FIN). A nonzero linger makes
    /// `close(2)` block (even on a nonblocking socket), which stalls a worker: in a
    /// server use only `Some(ZERO)`, or rely on [`Conn::set_close_timeout`](crate::Conn::set_close_timeout).
    pub linger: Option<Duration>,
    /// `IP_TOS` (and `IPV6_TCLASS` on IPv6 sockets): the whole TOS byte, DSCP in the
    /// top 6 bits (`dscp << 2`).
    pub tos: Option<u8>,
    /// `SO_INCOMING_CPU` per listener: listener `i` (worker `i`) is tagged with
    /// `incoming_cpus[i % len]`, so the kernel prefers it for connections whose SYN
    /// arrived on that CPU (Linux 6.2+ for reuseport groups). Pass the CPUs the
    /// workers are pinned to, in worker order.
    pub incoming_cpus: Vec<usize>,
    /// With `incoming_cpus` set, also attach a classic-BPF `SO_ATTACH_REUSEPORT_CBPF`
    /// program that sends each connection to the listener of the CPU that received it
    /// (deterministic; pair it with RSS/RPS so each CPU handles its own queue).
    pub cpu_steering: bool,
    /// Unix listeners: the socket file's permission bits, e.g. `0o660` (default: as
    /// the umask leaves them). Set before `listen`, so no client connects earlier.
    pub unix_mode: Option<u32>,
    /// Unix listeners: every accepted connection receives passed file descriptors
    /// (`SCM_RIGHTS`), as if its handler called
    /// [`Conn::receive_fds`](crate::Conn::receive_fds) in `on_open`: they reach
    /// [`Handler::on_fds`](crate::Handler::on_fds) before the bytes they came with
    /// (default `false`: the kernel closes fds sent to a connection that did not opt
    /// in). Binding a TCP listener with it is an error.
    pub pass_fds: bool,
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
            fastopen: None,
            fastopen_connect: false,
            user_timeout: None,
            congestion: None,
            notsent_lowat: None,
            defer_accept: None,
            linger: None,
            tos: None,
            incoming_cpus: Vec::new(),
            cpu_steering: false,
            unix_mode: None,
            pass_fds: false,
        }
    }
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $t:ty => $e:expr) => {
        $(#[$m])*
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = $e(v);
            self
        }
    };
}

impl SocketOptions {
    setter!(/// Sets `SO_REUSEPORT`.
        reuseport: bool => |v| v);
    setter!(/// Sets `TCP_NODELAY`.
        nodelay: bool => |v| v);
    setter!(/// Sets the listen backlog.
        backlog: i32 => |v| v);
    setter!(/// Sets `SO_SNDBUF`.
        send_buffer: usize => Some);
    setter!(/// Sets `SO_RCVBUF`.
        recv_buffer: usize => Some);
    setter!(/// Sets (or disables) TCP keepalive.
        keepalive: Option<Keepalive> => |v| v);
    setter!(/// Sets `IPV6_V6ONLY`.
        v6only: bool => |v| v);
    setter!(/// Sets the `TCP_FASTOPEN` queue length (`None`: off).
        fastopen: Option<u32> => |v| v);
    setter!(/// Sets `TCP_FASTOPEN_CONNECT` for outbound sockets.
        fastopen_connect: bool => |v| v);
    setter!(/// Sets `TCP_USER_TIMEOUT`.
        user_timeout: Option<Duration> => |v| v);
    setter!(/// Sets `TCP_CONGESTION` (e.g. `"bbr"`, `"cubic"`).
        congestion: Option<String> => |v| v);
    setter!(/// Sets `TCP_NOTSENT_LOWAT` in bytes.
        notsent_lowat: Option<u32> => |v| v);
    setter!(/// Sets `TCP_DEFER_ACCEPT`.
        defer_accept: Option<Duration> => |v| v);
    setter!(/// Sets `SO_LINGER` (`Some(ZERO)`: reset on close).
        linger: Option<Duration> => |v| v);
    setter!(/// Sets `IP_TOS`/`IPV6_TCLASS` (the TOS byte: `dscp << 2 | ecn`).
        tos: Option<u8> => |v| v);
    setter!(/// Sets the listeners' `SO_INCOMING_CPU` tags (the workers' CPUs, in order).
        incoming_cpus: Vec<usize> => |v| v);
    setter!(/// Attaches the CPU-steering reuseport BPF program (needs `incoming_cpus`).
        cpu_steering: bool => |v| v);
    setter!(/// Sets the Unix socket file's mode (e.g. `0o660`).
        unix_mode: Option<u32> => |v| v);
    setter!(/// Makes every connection of a Unix listener receive passed fds.
        pass_fds: bool => |v| v);

    /// Sets the DSCP code point (0..=63) in the TOS byte, keeping ECN bits zero.
    pub fn dscp(self, dscp: u8) -> Self {
        self.tos(Some((dscp & 0x3f) << 2))
    }

    /// Applies the per-connection options (everything but reuseport, backlog,
    /// v6only, the listener-only Fast Open queue, defer-accept and CPU tags) to `fd`.
    /// TCP options are skipped on a Unix socket.
    ///
    /// # Errors
    /// The failing `setsockopt`, named.
    pub fn apply(&self, fd: RawFd) -> io::Result<()> {
        let local = crate::addr::local(fd);
        let unix = matches!(local, Some(Addr::Unix(_)));
        let v6 = matches!(local, Some(Addr::Tcp(SocketAddr::V6(_))));
        let b = borrow(fd);
        let clamp = |n: usize| n.min(i32::MAX as usize / 2);
        if let Some(n) = self.send_buffer {
            set(&b, so::SndBuf, &clamp(n), "SO_SNDBUF")?;
        }
        if let Some(n) = self.recv_buffer {
            set(&b, so::RcvBuf, &clamp(n), "SO_RCVBUF")?;
        }
        if let Some(d) = self.linger {
            let l = libc::linger {
                l_onoff: 1,
                l_linger: d.as_secs().min(i32::MAX as u64) as i32,
            };
            set(&b, so::Linger, &l, "SO_LINGER")?;
        }
        if unix {
            return Ok(());
        }
        if self.nodelay {
            set(&b, so::TcpNoDelay, &true, "TCP_NODELAY")?;
        }
        if let Some(k) = self.keepalive {
            let secs = |d: Duration| d.as_secs().clamp(1, i32::MAX as u64) as u32;
            set(&b, so::KeepAlive, &true, "SO_KEEPALIVE")?;
            set(&b, so::TcpKeepIdle, &secs(k.idle), "TCP_KEEPIDLE")?;
            set(&b, so::TcpKeepInterval, &secs(k.interval), "TCP_KEEPINTVL")?;
            set(&b, so::TcpKeepCount, &k.count.max(1), "TCP_KEEPCNT")?;
        }
        if let Some(t) = self.user_timeout {
            let ms = t.as_millis().min(i32::MAX as u128) as u32;
            set(&b, so::TcpUserTimeout, &ms, "TCP_USER_TIMEOUT")?;
        }
        if let Some(cc) = &self.congestion {
            set(&b, so::TcpCongestion, &OsString::from(cc), "TCP_CONGESTION").map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{e} (is {cc:?} in net.ipv4.tcp_allowed_congestion_control? \
                         `modprobe tcp_{cc}` and add it there)"
                    ),
                )
            })?;
        }
        if let Some(n) = self.notsent_lowat {
            let n = n.min(i32::MAX as u32) as i32;
            set_int(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                n,
                "TCP_NOTSENT_LOWAT",
            )?;
        }
        if let Some(tos) = self.tos {
            set(&b, so::IpTos, &i32::from(tos), "IP_TOS")?;
            if v6 {
                set(&b, so::Ipv6TClass, &i32::from(tos), "IPV6_TCLASS")?;
            }
        }
        if self.fastopen_connect {
            set(&b, so::TcpFastOpenConnect, &true, "TCP_FASTOPEN_CONNECT")?;
        }
        Ok(())
    }

    /// The listener-only options: Fast Open queue and defer-accept (TCP only).
    pub(crate) fn apply_listener(&self, fd: RawFd, is_tcp: bool) -> io::Result<()> {
        if !is_tcp {
            return Ok(());
        }
        if let Some(q) = self.fastopen {
            let q = q.min(i32::MAX as u32) as i32;
            set_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, q, "TCP_FASTOPEN")?;
        }
        if let Some(d) = self.defer_accept {
            let s = d.as_secs().clamp(1, i32::MAX as u64) as i32;
            set_int(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                s,
                "TCP_DEFER_ACCEPT",
            )?;
        }
        Ok(())
    }
}

/// `nix`'s typed `setsockopt` with the option's name and the fd in the error.
pub(crate) fn set<O: nsock::SetSockOpt>(
    fd: &BorrowedFd<'_>,
    opt: O,
    value: &O::Val,
    what: &str,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    nsock::setsockopt(fd, opt, value).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(
            e.kind(),
            format!("setsockopt({what}) on fd {}: {e}", fd.as_raw_fd()),
        )
    })
}

/// `setsockopt` of one `int`, with the option's name in the error (kept for options
/// without a typed wrapper; see [`sockopt::set_int`](crate::sockopt::set_int)).
///
/// # Errors
/// The kernel's error.
pub fn setopt(fd: RawFd, level: i32, name: i32, value: i32, what: &str) -> io::Result<()> {
    set_int(fd, level, name, value, what)
}

/// A new nonblocking, close-on-exec stream socket for `addr`'s family.
///
/// # Errors
/// `socket(2)`'s error (EMFILE when out of descriptors).
pub fn stream_socket(addr: &Addr) -> io::Result<OwnedFd> {
    let family = match addr {
        Addr::Tcp(SocketAddr::V4(_)) => AddressFamily::Inet,
        Addr::Tcp(SocketAddr::V6(_)) => AddressFamily::Inet6,
        Addr::Unix(_) => AddressFamily::Unix,
    };
    nsock::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("socket() for {addr}: {e}"))
    })
}

/// A new nonblocking, close-on-exec TCP socket for `addr`'s family (the caller owns and
/// closes the fd).
///
/// # Errors
/// `socket(2)`'s error (EMFILE when out of descriptors).
pub fn tcp_socket(addr: &SocketAddr) -> io::Result<RawFd> {
    stream_socket(&Addr::Tcp(*addr)).map(IntoRawFd::into_raw_fd)
}

/// Closes `fd`, ignoring errors (used on error paths and at shutdown).
pub fn close_fd(fd: RawFd) {
    let _ = nix::unistd::close(fd);
}
