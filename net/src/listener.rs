//! [`Listeners`]: one listening socket per worker. TCP: one `SO_REUSEPORT` socket per
//! worker on the same address (the kernel spreads connections; optionally steered by
//! CPU). Unix: one socket, `dup`ed per worker (see [`unix`](crate::unix)).

use crate::addr::{Addr, RawAddr, ToAddr};
use crate::socket::{borrow, close_fd, set, SocketOptions};
use nix::sys::socket::sockopt as so;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};

pub(crate) fn bind_error(addr: &SocketAddr, e: io::Error) -> io::Error {
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

fn bind_tcp(addr: &SocketAddr, opts: &SocketOptions, cpu: Option<usize>) -> io::Result<RawFd> {
    let a = Addr::Tcp(*addr);
    let fd = crate::socket::stream_socket(&a)?;
    let raw_fd = fd.as_raw_fd();
    let b = borrow(raw_fd);
    set(&b, so::ReuseAddr, &true, "SO_REUSEADDR")?;
    if opts.reuseport {
        set(&b, so::ReusePort, &true, "SO_REUSEPORT")?;
    }
    if addr.is_ipv6() {
        set(&b, so::Ipv6V6Only, &opts.v6only, "IPV6_V6ONLY")?;
    }
    if let Some(cpu) = cpu {
        let cpu = cpu.min(i32::MAX as usize) as i32;
        crate::sockopt::set_int(
            raw_fd,
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            cpu,
            "SO_INCOMING_CPU",
        )?;
    }
    opts.apply(raw_fd)?;
    opts.apply_listener(raw_fd, true)?;
    let raw = RawAddr::new(&a)?;
    nix::sys::socket::bind(raw_fd, raw.as_sockaddr()).map_err(|e| bind_error(addr, e.into()))?;
    crate::socket::syscall!(listen(raw_fd, opts.backlog))
        .map_err(|e| io::Error::new(e.kind(), format!("listen {addr}: {e}")))?;
    Ok(fd.into_raw_fd())
}

/// One bound, listening socket per worker, all on the same address.
#[derive(Debug)]
pub struct Listeners {
    fds: Vec<RawFd>,
    addr: Addr,
    unix_file: Option<crate::unix::PathGuard>,
    /// [`SocketOptions::pass_fds`]: every accepted connection receives passed fds.
    pass_fds: bool,
}

impl Listeners {
    /// Binds `count` listeners on `addr`: text (`"127.0.0.1:8080"`, `"[::]:8080"`,
    /// `"localhost:8080"`, `"unix:/run/app.sock"`, `"unix:@app"`), a `SocketAddr`, an
    /// `(ip, port)` pair or an [`Addr`]. TCP: one `SO_REUSEPORT` socket per worker;
    /// with port 0 the first bind picks the port and the others reuse it. Unix: one
    /// socket shared by all workers; a socket file left by a dead server is replaced,
    /// one a live server listens on is an error; the file is removed when the server
    /// stops (or when these listeners are dropped unused).
    ///
    /// # Errors
    /// Resolution failure, port or path in use, permission denied, bad address: the
    /// message names the address and what to do. Nothing stays open on error.
    pub fn bind<A: ToAddr>(addr: A, count: usize, opts: &SocketOptions) -> io::Result<Listeners> {
        let addr = addr.to_addr()?;
        let count = count.max(1);
        match addr {
            Addr::Unix(ref u) => {
                let (fd, unix_file) = crate::unix::bind(&addr, u, opts)?;
                let mut l = Listeners {
                    fds: Vec::with_capacity(count),
                    addr: addr.clone(),
                    unix_file,
                    pass_fds: opts.pass_fds,
                };
                for _ in 1..count {
                    // Close-on-exec like every other fd of ours (plain dup(2) drops it).
                    let dup =
                        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))
                            .map_err(|e| {
                                io::Error::new(
                                    io::Error::from(e).kind(),
                                    format!("dup listener: {e}"),
                                )
                            })?;
                    l.fds.push(dup);
                }
                l.fds.insert(0, fd.into_raw_fd());
                Ok(l)
            }
            Addr::Tcp(mut want) => {
                if opts.pass_fds {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "pass_fds on the TCP address {want}: file descriptors pass only \
                             over Unix sockets (bind a unix: address, or drop pass_fds)"
                        ),
                    ));
                }
                if count > 1 && !opts.reuseport {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "more than one worker needs SO_REUSEPORT (one listener per worker)",
                    ));
                }
                let mut l = Listeners {
                    fds: Vec::with_capacity(count),
                    addr: addr.clone(),
                    unix_file: None,
                    pass_fds: false,
                };
                let cpus = &opts.incoming_cpus;
                for i in 0..count {
                    let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
                    let fd = bind_tcp(&want, opts, cpu)?;
                    l.fds.push(fd);
                    if want.port() == 0 {
                        want = crate::addr::local_addr(fd).unwrap_or(want);
                    }
                }
                if opts.cpu_steering {
                    if cpus.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "cpu_steering needs incoming_cpus (the workers' CPUs, in order)",
                        ));
                    }
                    let order: Vec<usize> = (0..count).map(|i| cpus[i % cpus.len()]).collect();
                    crate::sockopt::attach_cpu_steering(l.fds[0], &order)?;
                }
                l.addr = Addr::Tcp(want);
                Ok(l)
            }
        }
    }

    /// The bound TCP address (with the real port when 0 was asked for); for a Unix
    /// listener `0.0.0.0:0` (use [`addr`](Self::addr)).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
            .as_tcp()
            .unwrap_or_else(|| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
    }

    /// The bound address, any family (TCP with its real port).
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// Listeners from TCP sockets already bound and listening (socket activation, see
    /// [`crate::systemd`]); they are closed with the value.
    pub(crate) fn from_parts(fds: Vec<RawFd>, addr: SocketAddr) -> Listeners {
        Listeners {
            fds,
            addr: Addr::Tcp(addr),
            unix_file: None,
            pass_fds: false,
        }
    }

    /// The listening fds, one per worker (for reading options back; do not close them).
    pub fn fds(&self) -> &[RawFd] {
        &self.fds
    }

    /// True when every accepted connection receives passed fds
    /// ([`SocketOptions::pass_fds`]).
    pub fn pass_fds(&self) -> bool {
        self.pass_fds
    }

    /// Number of listeners.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Hands the listener fds over (the caller closes them), with the guard that
    /// removes a Unix socket file when dropped (keep it until the server stopped).
    pub(crate) fn into_parts(mut self) -> (Vec<RawFd>, Option<impl Drop + Send>) {
        (std::mem::take(&mut self.fds), self.unix_file.take())
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.fds.iter().for_each(|&fd| close_fd(fd));
    }
}
