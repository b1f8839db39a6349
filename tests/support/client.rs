//! Blocking std clients for the tests, with payload generation and byte-exact checks.
//!
//! Every socket gets [`IO_TIMEOUT`] read and write timeouts, so a stalled server
//! fails the test instead of hanging it.
//!
//! Why the loops here (and in a few tests) retry `ErrorKind::Interrupted`: no test
//! process installs a signal handler (test runtimes are built with
//! `handle_signals(false)`, SIGPIPE is ignored, SIGCHLD is left at its default), so no
//! signal is delivered to a test thread. But a socket call with a timeout
//! (`SO_RCVTIMEO` / `SO_SNDTIMEO`) is not restarted by the kernel after the process was
//! stopped and continued (SIGSTOP/SIGCONT, a cgroup freeze, `strace -p` or a debugger
//! attaching): it fails with EINTR even with no handler (signal(7), "Interruption of
//! system calls ... by stop signals"; reproduced with a C client blocked in a timed
//! `read` and `kill -STOP/-CONT`, or `strace -p`). The timeouts are what keeps a test
//! from hanging, so the EINTR is legitimate and retried. The runtime retries it too
//! (`epoll_wait`, `io_uring_enter`, every epoll syscall): `ops_signals`'s
//! `stop_and_continue_keep_serving` checks that a stopped and continued server
//! keeps serving.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Barrier;
use std::time::Duration;

/// Read/write/connect timeout of every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// xorshift64* : a small deterministic generator for payloads and sizes.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn configure(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
}

/// A connected blocking client with timeouts, or the connect error.
pub fn try_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    configure(&s);
    Ok(s)
}

/// A connected blocking client with timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) {
    // SAFETY: `value` points at a live `T` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "setsockopt({level}, {name}): {}",
        io::Error::last_os_error()
    );
}

/// A client whose `SO_RCVBUF` is set to `bytes` before connecting (so the TCP window
/// is small from the handshake on).
pub fn connect_small_rcvbuf(addr: SocketAddr, bytes: i32) -> TcpStream {
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    connect_fd_small_rcvbuf(fd, addr, bytes)
}

/// [`connect_small_rcvbuf`] on the caller's fresh IPv4 TCP socket `fd` (the returned
/// stream owns it).
pub fn connect_fd_small_rcvbuf(fd: RawFd, addr: SocketAddr, bytes: i32) -> TcpStream {
    assert!(addr.is_ipv4());
    // SAFETY: `fd` is a fresh socket the caller hands over; the stream closes it.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes);
    let SocketAddr::V4(v4) = addr else {
        unreachable!()
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the size passed.
    let r = unsafe {
        libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "connect to {addr}: {}", io::Error::last_os_error());
    configure(&s);
    s
}

/// Sets `SO_LINGER {on, 0}`: dropping the stream then sends a reset.
pub fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &l);
}

/// Reads exactly `expected.len()` bytes in reads of at most `piece` bytes and checks
/// every byte, in order; panics at the first difference, early EOF or error.
pub fn read_expect(s: &mut TcpStream, expected: &[u8], piece: usize) {
    let mut buf = vec![0u8; piece.max(1)];
    let mut off = 0;
    while off < expected.len() {
        let want = buf.len().min(expected.len() - off);
        let n = match s.read(&mut buf[..want]) {
            Ok(0) => panic!("EOF after {off} of {} echoed bytes", expected.len()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "read timed out (server stalled) after {off} of {} echoed bytes",
                    expected.len()
                )
            }
            Err(e) => panic!("read after {off} of {} echoed bytes: {e}", expected.len()),
        };
        if buf[..n] != expected[off..off + n] {
            let i = (0..n).find(|&i| buf[i] != expected[off + i]).unwrap_or(0);
            panic!("echo differs at byte {} of {}", off + i, expected.len());
        }
        off += n;
    }
}

/// Echoes `payload` over `s`: a writer thread sends it while this thread reads the
/// echo in reads of at most `piece` bytes, checking every byte in order.
pub fn echo_check(s: &mut TcpStream, payload: &[u8], piece: usize) {
    let mut w = s.try_clone().expect("clone stream");
    std::thread::scope(|sc| {
        let writer = sc.spawn(move || w.write_all(payload));
        read_expect(s, payload, piece);
        writer.join().expect("writer").expect("write the payload");
    });
}

/// Reads until EOF: `Ok(bytes)` on a clean EOF; on reset or timeout, the bytes read
/// so far and the error.
pub fn read_to_eof(s: &mut TcpStream) -> Result<Vec<u8>, (Vec<u8>, io::Error)> {
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err((out, e)),
    }
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// A clean EOF after this many bytes.
    Eof(usize),
    /// A reset (after this many bytes).
    Reset(usize),
}

/// Reads until the server closes; panics on timeout (the server never closed).
pub fn wait_closed(s: &mut TcpStream) -> Ended {
    let mut buf = [0u8; 4096];
    let mut got = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ended::Eof(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ended::Reset(got),
            Err(e) => panic!("waiting for the server to close: {e}"),
        }
    }
}

/// Half-closes `s` for writing.
pub fn shutdown_write(s: &TcpStream) {
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// Many concurrent echo connections: `threads` client threads each open
/// `conns / threads` sockets; once every socket of every thread is connected,
/// `all_connected` runs (on the calling thread), then each round every socket writes a
/// random payload of 1..=`max_payload` bytes and then reads its echo back. Returns the
/// bytes echoed.
///
/// Payloads stay small enough (`max_payload` well under the socket buffers) that
/// writing before reading cannot deadlock.
pub fn echo_many(
    addr: SocketAddr,
    conns: usize,
    threads: usize,
    rounds: usize,
    max_payload: usize,
    seed: u64,
    all_connected: impl FnOnce(),
) -> u64 {
    assert!(conns % threads == 0, "conns must split evenly over threads");
    let per = conns / threads;
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                sc.spawn(move || {
                    let mut rng = Rng::new(seed ^ ((t as u64 + 1) * 0x1000_0001));
                    // Connect errors are raised after the barriers, so a failure
                    // cannot leave the other threads waiting forever.
                    let socks: io::Result<Vec<TcpStream>> =
                        (0..per).map(|_| try_connect(addr)).collect();
                    barrier.wait();
                    barrier.wait();
                    let mut socks = socks.unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
                    let mut total = 0u64;
                    for _ in 0..rounds {
                        let payloads: Vec<Vec<u8>> = (0..per)
                            .map(|_| {
                                let n = rng.range(1, max_payload);
                                rng.bytes(n)
                            })
                            .collect();
                        for (s, p) in socks.iter_mut().zip(&payloads) {
                            s.write_all(p).expect("write a payload");
                        }
                        for (s, p) in socks.iter_mut().zip(&payloads) {
                            read_expect(s, p, 64 * 1024);
                            total += p.len() as u64;
                        }
                    }
                    total
                })
            })
            .collect();
        barrier.wait();
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(all_connected));
        barrier.wait();
        let total = workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .sum();
        if let Err(p) = checked {
            std::panic::resume_unwind(p);
        }
        total
    })
}

/// Waits (bounded: 10 s) for the server to end `s`, by EOF or reset, reading and
/// dropping whatever still arrives; returns how long it took. Panics with `what` if
/// the server does not.
pub fn expect_server_closed(s: &mut TcpStream, what: &str) -> Duration {
    let t = std::time::Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: the server did not close the connection: {e}"),
        }
    }
    t.elapsed()
}

/// A loopback listener whose accept queue is full (backlog 0 plus one connection
/// nobody accepts): a new connect's SYN gets no answer, so the connect stays pending
/// (a blackholed upstream). Keep it alive while it is used.
pub struct Unanswered {
    _listener: OwnedFd,
    _filler: TcpStream,
}

/// An [`Unanswered`] listener on 127.0.0.1 and its address.
pub fn unanswered_listener() -> (Unanswered, SocketAddr) {
    // SAFETY: plain socket calls on a descriptor this function owns; `sa` and `len`
    // live across the calls that read or write them.
    let (fd, addr) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let r = libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
        assert_eq!(libc::listen(fd.as_raw_fd(), 0), 0, "listen");
        let mut got_len = len;
        let r = libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_in).cast(),
            &mut got_len,
        );
        assert_eq!(r, 0, "getsockname");
        let port = u16::from_be(sa.sin_port);
        (fd, SocketAddr::from(([127, 0, 0, 1], port)))
    };
    // Fills the queue of one (backlog 0): later SYNs are dropped.
    let filler = TcpStream::connect(addr).expect("the filler connects");
    (
        Unanswered {
            _listener: fd,
            _filler: filler,
        },
        addr,
    )
}

/// Sockets of this host in `SYN_SENT` towards local port `port` (`/proc/net/tcp`:
/// remote address in column 3 as `IP:PORT` in hex, state in column 4, `02` =
/// `SYN_SENT`).
pub fn syn_sent_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[2].ends_with(&want) && cols[3] == "02"
        })
        .count()
}
