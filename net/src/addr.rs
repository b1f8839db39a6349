//! Addresses: TCP (`IPv4`/`IPv6`) and Unix stream (`unix:/path`, `unix:@name`), their
//! text form, and the raw `sockaddr` the kernel takes (built by `nix`).
//!
//! | text | meaning |
//! | --- | --- |
//! | `127.0.0.1:8080`, `[::1]:8080`, `[::]:8080`, `localhost:8080` | TCP (names resolve to their first address) |
//! | `unix:/run/app.sock` (or `unix:relative.sock`) | Unix stream socket on a filesystem path |
//! | `unix:@app` | Linux abstract Unix name (no file; gone when the last socket closes) |
//!
//! Peer addresses of IPv4 clients of a dual-stack `[::]` listener arrive as IPv4-mapped
//! IPv6 (`::ffff:1.2.3.4`); [`peer_addr`] and [`Addr`] report them as plain IPv4, so
//! logs and access rules see one form per client.

use nix::sys::socket::{self, SockaddrLike, SockaddrStorage};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

/// A Unix-domain socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    /// A filesystem path (`unix:/path/to.sock`).
    Path(PathBuf),
    /// A Linux abstract name, without the leading NUL (`unix:@name`).
    Abstract(Vec<u8>),
    /// An unbound socket (typical for a client's end).
    Unnamed,
}

/// A socket address of either family ringcore serves: the listen address, the target
/// of [`Connect`](crate::Connect), or a connection's peer/local address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// TCP over IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A Unix stream socket.
    Unix(UnixAddr),
}

impl Addr {
    /// The TCP address, if this is one.
    pub fn as_tcp(&self) -> Option<SocketAddr> {
        match self {
            Addr::Tcp(a) => Some(*a),
            Addr::Unix(_) => None,
        }
    }

    /// True for a Unix address.
    pub fn is_unix(&self) -> bool {
        matches!(self, Addr::Unix(_))
    }

    /// Parses `s` (see the module docs), resolving host names for TCP (this may block
    /// on DNS; call it before serving, or from an offload job).
    ///
    /// # Errors
    /// `InvalidInput` naming the text for anything that is neither a Unix address nor
    /// resolves to a socket address.
    pub fn resolve(s: &str) -> io::Result<Addr> {
        if let Some(u) = parse_unix(s)? {
            return Ok(Addr::Unix(u));
        }
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bad address {s:?}: {why} (use host:port, [ipv6]:port, unix:/path or unix:@name)"
                ),
            )
        };
        let mut it = s.to_socket_addrs().map_err(|e| bad(e.to_string()))?;
        it.next()
            .map(Addr::Tcp)
            .ok_or_else(|| bad("resolved to nothing".into()))
    }
}

fn parse_unix(s: &str) -> io::Result<Option<UnixAddr>> {
    let Some(rest) = s.strip_prefix("unix:") else {
        return Ok(None);
    };
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad Unix address {s:?}: {why}"),
        )
    };
    // sun_path is 108 bytes: a path needs a trailing NUL, an abstract name a leading one.
    const SUN_PATH: usize = 108;
    if let Some(name) = rest.strip_prefix('@') {
        if name.is_empty() {
            return Err(bad("empty abstract name"));
        }
        if name.len() + 1 > SUN_PATH {
            return Err(bad("abstract names are at most 107 bytes"));
        }
        return Ok(Some(UnixAddr::Abstract(name.as_bytes().to_vec())));
    }
    if rest.is_empty() {
        return Err(bad("empty path"));
    }
    if rest.len() + 1 > SUN_PATH {
        return Err(bad(
            "paths are at most 107 bytes (sun_path); use a shorter directory or an abstract name",
        ));
    }
    if rest.contains('\0') {
        return Err(bad("NUL in path"));
    }
    Ok(Some(UnixAddr::Path(PathBuf::from(rest))))
}

impl FromStr for Addr {
    type Err = io::Error;
    /// Parses without name resolution: `unix:` forms or a literal socket address.
    fn from_str(s: &str) -> io::Result<Addr> {
        if let Some(u) = parse_unix(s)? {
            return Ok(Addr::Unix(u));
        }
        s.parse::<SocketAddr>().map(Addr::Tcp).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bad address {s:?}: {e} (use ip:port, [ipv6]:port, unix:/path or unix:@name)"
                ),
            )
        })
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(p) => write!(f, "unix:{}", p.display()),
            UnixAddr::Abstract(n) => write!(f, "unix:@{}", String::from_utf8_lossy(n)),
            UnixAddr::Unnamed => f.write_str("unix:(unnamed)"),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => a.fmt(f),
            Addr::Unix(u) => u.fmt(f),
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(a: SocketAddr) -> Addr {
        Addr::Tcp(a)
    }
}

impl From<UnixAddr> for Addr {
    fn from(a: UnixAddr) -> Addr {
        Addr::Unix(a)
    }
}

/// Anything [`Listeners::bind`](crate::Listeners::bind) and
/// [`Connect`](crate::Connect) take as an address: text (`"127.0.0.1:80"`,
/// `"[::1]:80"`, `"unix:/run/x.sock"`, `"unix:@x"`, `"localhost:80"`), a
/// `SocketAddr`, an `(ip, port)` pair or an [`Addr`].
pub trait ToAddr {
    /// The address (text is parsed and host names resolved).
    ///
    /// # Errors
    /// `InvalidInput` for text that is no address.
    fn to_addr(&self) -> io::Result<Addr>;
}

impl ToAddr for Addr {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok(self.clone())
    }
}
impl ToAddr for &Addr {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok((*self).clone())
    }
}
impl ToAddr for SocketAddr {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok(Addr::Tcp(*self))
    }
}
impl ToAddr for &str {
    fn to_addr(&self) -> io::Result<Addr> {
        Addr::resolve(self)
    }
}
impl ToAddr for String {
    fn to_addr(&self) -> io::Result<Addr> {
        Addr::resolve(self)
    }
}
impl ToAddr for &String {
    fn to_addr(&self) -> io::Result<Addr> {
        Addr::resolve(self)
    }
}
impl<I: Into<std::net::IpAddr> + Copy> ToAddr for (I, u16) {
    fn to_addr(&self) -> io::Result<Addr> {
        Ok(Addr::Tcp(SocketAddr::new(self.0.into(), self.1)))
    }
}

/// A `sockaddr` with its length, ready for `bind`/`connect` (and stable in memory while
/// boxed, as a connect op needs).
#[derive(Clone, Copy)]
pub struct RawAddr {
    inner: RawInner,
    /// How many bytes of the address are used.
    pub len: libc::socklen_t,
}

#[derive(Clone, Copy)]
enum RawInner {
    Ip(SockaddrStorage),
    Unix(socket::UnixAddr),
}

impl fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            RawInner::Ip(s) => write!(f, "RawAddr({s})"),
            RawInner::Unix(u) => write!(f, "RawAddr({u})"),
        }
    }
}

impl RawAddr {
    /// Pointer for syscalls; valid as long as `self` is not moved.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        match &self.inner {
            RawInner::Ip(s) => s.as_ptr(),
            RawInner::Unix(u) => u.as_ptr().cast(),
        }
    }

    /// The address as `nix` takes it.
    pub(crate) fn as_sockaddr(&self) -> &dyn SockaddrLike {
        match &self.inner {
            RawInner::Ip(s) => s,
            RawInner::Unix(u) => u,
        }
    }

    /// The raw form of `addr`.
    ///
    /// # Errors
    /// `InvalidInput` for a Unix name that does not fit `sun_path`, or an unnamed
    /// address (nothing to bind or connect to).
    pub fn new(addr: &Addr) -> io::Result<RawAddr> {
        let inner = match addr {
            Addr::Tcp(a) => RawInner::Ip(SockaddrStorage::from(*a)),
            Addr::Unix(u) => {
                let r = match u {
                    UnixAddr::Path(p) => socket::UnixAddr::new(p.as_path()),
                    UnixAddr::Abstract(n) => socket::UnixAddr::new_abstract(n),
                    UnixAddr::Unnamed => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "an unnamed Unix address cannot be bound or connected to",
                        ))
                    }
                };
                RawInner::Unix(r.map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
                })?)
            }
        };
        let len = match &inner {
            RawInner::Ip(s) => s.len(),
            RawInner::Unix(u) => u.len(),
        };
        Ok(RawAddr { inner, len })
    }
}

/// Converts a std address into a raw one.
pub fn from_std(addr: &SocketAddr) -> RawAddr {
    let s = SockaddrStorage::from(*addr);
    RawAddr {
        len: s.len(),
        inner: RawInner::Ip(s),
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries.
pub fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

fn from_storage(s: &SockaddrStorage) -> Option<Addr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(Addr::Tcp(SocketAddr::V4((*v4).into())));
    }
    if let Some(v6) = s.as_sockaddr_in6() {
        return Some(Addr::Tcp(unmap(SocketAddr::V6((*v6).into()))));
    }
    let u = s.as_unix_addr()?;
    Some(Addr::Unix(if let Some(p) = u.path() {
        UnixAddr::Path(p.to_path_buf())
    } else if let Some(n) = u.as_abstract() {
        UnixAddr::Abstract(n.to_vec())
    } else {
        UnixAddr::Unnamed
    }))
}

/// The peer address of a connected socket, any family (`None` if the peer is gone).
pub fn peer(fd: RawFd) -> Option<Addr> {
    from_storage(&socket::getpeername::<SockaddrStorage>(fd).ok()?)
}

/// The local address of a socket, any family.
pub fn local(fd: RawFd) -> Option<Addr> {
    from_storage(&socket::getsockname::<SockaddrStorage>(fd).ok()?)
}

/// The TCP peer address of a connected socket (IPv4-mapped shown as IPv4; `None` for
/// Unix sockets).
pub fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    peer(fd)?.as_tcp()
}

/// The TCP local address of a socket (`None` for Unix sockets).
pub fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    local(fd)?.as_tcp()
}

/// Credentials of the process at the other end of a Unix socket (`SO_PEERCRED`), as
/// they were when it called `connect` (or `socketpair`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id (0 if the peer is in another PID namespace the kernel cannot map).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// `SO_PEERCRED` of a Unix socket.
///
/// # Errors
/// `ENOTCONN`/`EINVAL`-style errors from the kernel, e.g. on a TCP socket (Linux
/// answers TCP with pid 0 and uid/gid of overflow ids; reported as `Unsupported`).
pub fn peer_credentials(fd: RawFd) -> io::Result<PeerCredentials> {
    if !matches!(local(fd), Some(Addr::Unix(_))) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("peer credentials need a Unix socket (fd {fd} is not one)"),
        ));
    }
    let c = socket::getsockopt(&crate::iofd::borrow(fd), socket::sockopt::PeerCredentials)
        .map_err(|e| io::Error::other(format!("getsockopt(SO_PEERCRED) on fd {fd}: {e}")))?;
    Ok(PeerCredentials {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

impl PeerCredentials {
    /// Credentials of this process (what a peer in this process reports).
    pub fn current() -> PeerCredentials {
        PeerCredentials {
            pid: std::process::id() as i32,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_v4_v6() {
        for s in ["127.0.0.1:80", "[::1]:65535", "0.0.0.0:0", "[fe80::1%2]:9"] {
            let a: SocketAddr = s.parse().unwrap();
            let raw = from_std(&a);
            let back = SockaddrStorage::from(a);
            assert_eq!(raw.len, back.len(), "{s}");
            assert_eq!(from_storage(&back), Some(Addr::Tcp(a)), "{s}");
        }
    }

    #[test]
    fn v4_mapped_is_shown_as_v4() {
        let m: SocketAddr = "[::ffff:127.0.0.1]:99".parse().unwrap();
        assert_eq!(unmap(m), "127.0.0.1:99".parse::<SocketAddr>().unwrap());
        let plain: SocketAddr = "[::1]:99".parse().unwrap();
        assert_eq!(unmap(plain), plain);
    }

    #[test]
    fn text_forms() {
        let a: Addr = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(a, Addr::Unix(UnixAddr::Path("/tmp/x.sock".into())));
        assert_eq!(a.to_string(), "unix:/tmp/x.sock");
        let b: Addr = "unix:@svc".parse().unwrap();
        assert_eq!(b, Addr::Unix(UnixAddr::Abstract(b"svc".to_vec())));
        assert_eq!(b.to_string(), "unix:@svc");
        let c: Addr = "[::1]:8080".parse().unwrap();
        assert_eq!(c.to_string(), "[::1]:8080");
        assert!("unix:".parse::<Addr>().is_err());
        let long = format!("unix:/{}", "a".repeat(120));
        let e = long.parse::<Addr>().unwrap_err().to_string();
        assert!(e.contains("107 bytes"), "{e}");
        let e = "nonsense".parse::<Addr>().unwrap_err().to_string();
        assert!(e.contains("unix:/path"), "{e}");
        assert!(Addr::resolve("localhost:1").unwrap().as_tcp().is_some());
        assert!(Addr::resolve("no-such-host.invalid:1").is_err());
        assert!(RawAddr::new(&Addr::Unix(UnixAddr::Unnamed)).is_err());
        assert_eq!(
            ("::1".parse::<std::net::IpAddr>().unwrap(), 5)
                .to_addr()
                .unwrap()
                .to_string(),
            "[::1]:5"
        );
    }

    #[test]
    fn unix_names_and_credentials() {
        use std::os::fd::AsRawFd;
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer(a.as_raw_fd()), Some(Addr::Unix(UnixAddr::Unnamed)));
        assert_eq!(peer_addr(a.as_raw_fd()), None);
        let c = peer_credentials(a.as_raw_fd()).unwrap();
        assert_eq!(c, PeerCredentials::current());
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            peer_credentials(t.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
    }
}
