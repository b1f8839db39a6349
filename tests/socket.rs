//! Dual-stack listeners and socket options, read back with `getsockopt` on the
//! listeners and (on both backends) on accepted connections, IPv4 and IPv6 (`IP_TOS`
//! and `IPV6_TCLASS` on `[::1]`, outbound sockets too); TCP_INFO through `Conn`.

mod support;

use ringcore::net::sockopt::get_int;
use ringcore::{
    Conn, ConnInfo, Connect, ConnectOptions, Handler, Keepalive, Listeners, SocketOptions,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn line(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(support::DEADLINE)).unwrap();
    let mut l = String::new();
    BufReader::new(&mut *s).read_line(&mut l).expect("a line");
    l.trim_end().to_string()
}

/// Sends the peer address as the connection sees it.
struct Peer;
impl Handler for Peer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let p = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        let q = conn.peer().map(|a| a.to_string()).unwrap_or_default();
        conn.send(format!("{p} {q}\n").as_bytes());
    }
    fn on_data(&mut self, _c: &mut Conn<'_>, d: &[u8]) -> usize {
        d.len()
    }
}

#[test]
fn dual_stack_accepts_ipv4_and_shows_it_as_ipv4() {
    support::for_each_backend(|backend| {
        let l = Listeners::bind("[::]:0", 1, &SocketOptions::default()).expect("bind [::]:0");
        assert_eq!(
            get_int(l.fds()[0], libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "v6only").unwrap(),
            0
        );
        let port = l.local_addr().port();
        let (h, j) = support::serve_on(backend, 1, l, |_: &ConnInfo| Peer);
        let mut c4 = TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client");
        let local4 = c4.local_addr().unwrap();
        assert_eq!(line(&mut c4), format!("{local4} {local4}"));
        assert!(local4.is_ipv4());
        let mut c6 = TcpStream::connect(("::1", port)).expect("IPv6 client");
        let local6 = c6.local_addr().unwrap();
        assert_eq!(line(&mut c6), format!("{local6} {local6}"));
        assert!(local6.to_string().starts_with("[::1]:"));
        drop((c4, c6));
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

#[test]
fn v6only_refuses_ipv4_and_ipv6_literals_bind() {
    let opts = SocketOptions::default().v6only(true);
    let l = Listeners::bind("[::]:0", 2, &opts).expect("bind v6only");
    for &fd in l.fds() {
        assert_eq!(
            get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, "v6only").unwrap(),
            1
        );
    }
    let port = l.local_addr().port();
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    TcpStream::connect(("::1", port)).expect("IPv6 still accepted");
    let l6 = Listeners::bind("[::1]:0", 1, &SocketOptions::default()).expect("[::1]:0");
    assert!(l6.local_addr().to_string().starts_with("[::1]:"));
    assert_eq!(l6.addr().to_string(), l6.local_addr().to_string());
}

/// Every per-connection option the test sets, as `getsockopt` reads it on `fd`.
fn read_options(fd: RawFd) -> Vec<(&'static str, i64)> {
    let tcp = libc::IPPROTO_TCP;
    let sol = libc::SOL_SOCKET;
    let int = |l, n, w| i64::from(get_int(fd, l, n, w).unwrap_or(-1));
    use nix::sys::socket::{getsockopt, sockopt};
    // SAFETY: `fd` is the open connection the handler is looking at, borrowed only
    // for these two calls.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let linger = getsockopt(&b, sockopt::Linger).expect("SO_LINGER");
    let cc = getsockopt(&b, sockopt::TcpCongestion).expect("TCP_CONGESTION");
    // The kernel fills all TCP_CA_NAME_MAX bytes, NUL-padded.
    let reno = i64::from(cc.to_string_lossy().trim_end_matches('\0') == "reno");
    vec![
        ("nodelay", int(tcp, libc::TCP_NODELAY, "nodelay")),
        ("keepalive", int(sol, libc::SO_KEEPALIVE, "ka")),
        ("keepidle", int(tcp, libc::TCP_KEEPIDLE, "idle")),
        ("keepintvl", int(tcp, libc::TCP_KEEPINTVL, "intvl")),
        ("keepcnt", int(tcp, libc::TCP_KEEPCNT, "cnt")),
        ("user_timeout", int(tcp, libc::TCP_USER_TIMEOUT, "ut")),
        ("notsent_lowat", int(tcp, libc::TCP_NOTSENT_LOWAT, "lowat")),
        ("tos", int(libc::IPPROTO_IP, libc::IP_TOS, "tos")),
        ("rcvbuf", int(sol, libc::SO_RCVBUF, "rcv")),
        ("sndbuf", int(sol, libc::SO_SNDBUF, "snd")),
        (
            "linger",
            i64::from(linger.l_onoff) * 100 + i64::from(linger.l_linger),
        ),
        ("congestion_reno", reno),
    ]
}

/// Buffer sizes the test asks for: neither doubled value is a kernel default
/// (`tcp_rmem`/`tcp_wmem` defaults are 131072/16384, and accepted sockets autotune).
const RCVBUF: usize = 40_000;
const SNDBUF: usize = 50_000;

/// What `getsockopt` reads after `SO_RCVBUF`/`SO_SNDBUF` of `asked`: the kernel caps
/// it at `net.core.{rmem,wmem}_max` (`sysctl`) and doubles it for its bookkeeping.
fn doubled(asked: usize, sysctl: &str) -> i64 {
    let max: usize = std::fs::read_to_string(format!("/proc/sys/net/core/{sysctl}"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(usize::MAX);
    2 * asked.min(max) as i64
}

fn test_options() -> SocketOptions {
    SocketOptions::default()
        .nodelay(true)
        .keepalive(Some(Keepalive {
            idle: Duration::from_secs(11),
            interval: Duration::from_secs(3),
            count: 4,
        }))
        .user_timeout(Some(Duration::from_millis(7000)))
        .notsent_lowat(Some(16384))
        .dscp(10) // AF11: TOS byte 40
        .recv_buffer(RCVBUF)
        .send_buffer(SNDBUF)
        .linger(Some(Duration::ZERO)) // a nonzero linger would block the worker's close
        .congestion(Some("reno".into()))
}

fn expected() -> Vec<(&'static str, i64)> {
    vec![
        ("nodelay", 1),
        ("keepalive", 1),
        ("keepidle", 11),
        ("keepintvl", 3),
        ("keepcnt", 4),
        ("user_timeout", 7000),
        ("notsent_lowat", 16384),
        ("tos", 40),
        ("rcvbuf", doubled(RCVBUF, "rmem_max")),
        ("sndbuf", doubled(SNDBUF, "wmem_max")),
        ("linger", 100),
        ("congestion_reno", 1),
    ]
}

/// Reports the options its accepted socket carries, then TCP_INFO after a request.
struct Options;
impl Handler for Options {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let v = read_options(conn.raw_fd());
        conn.send(format!("{v:?}\n").as_bytes());
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, d: &[u8]) -> usize {
        if d.len() < 1000 {
            return 0;
        }
        let i = conn.tcp_info().expect("TCP_INFO on a TCP connection");
        conn.send(format!("{} {} {}\n", i.bytes_received, i.state, i.snd_cwnd).as_bytes());
        d.len()
    }
}

#[test]
fn per_connection_options_are_inherited_by_accepted_sockets() {
    support::for_each_backend(|backend| {
        let l = Listeners::bind("127.0.0.1:0", 1, &test_options()).expect("bind");
        assert_eq!(read_options(l.fds()[0]), expected(), "on the listener");
        let addr = l.local_addr();
        let (h, j) = support::serve_on(backend, 1, l, |_: &ConnInfo| Options);
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(
            line(&mut c),
            format!("{:?}", expected()),
            "on the accepted socket"
        );
        // TCP_INFO from the handler: the server counted our 1000 bytes.
        c.write_all(&[1u8; 1000]).unwrap();
        let l = line(&mut c);
        let f: Vec<u64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
        assert_eq!(f[0], 1000, "bytes_received: {l}");
        assert_eq!(f[1], 1, "ESTABLISHED: {l}");
        assert!(f[2] >= 1, "cwnd: {l}");
        drop(c);
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

/// Applies options per connection from `on_open`, then reports them.
struct PerConn;
impl Handler for PerConn {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_socket_options(&test_options())
            .expect("per-connection options");
        let v = read_options(conn.raw_fd());
        conn.send(format!("{v:?}\n").as_bytes());
    }
    fn on_data(&mut self, _c: &mut Conn<'_>, d: &[u8]) -> usize {
        d.len()
    }
}

#[test]
fn options_set_per_connection() {
    support::for_each_backend(|backend| {
        let l = Listeners::bind("127.0.0.1:0", 1, &SocketOptions::default()).unwrap();
        let addr = l.local_addr();
        let (h, j) = support::serve_on(backend, 1, l, |_: &ConnInfo| PerConn);
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(line(&mut c), format!("{:?}", expected()));
        drop(c);
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

/// `IPV6_TCLASS` and `IP_TOS` of `fd`, as `getsockopt` reads them (-1: unreadable).
fn traffic_class(fd: RawFd) -> (i32, i32) {
    let tclass = get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, "tclass").unwrap_or(-1);
    let tos = get_int(fd, libc::IPPROTO_IP, libc::IP_TOS, "tos").unwrap_or(-1);
    (tclass, tos)
}

/// Reports its socket's [`traffic_class`], after setting `.0` on it (if any) in
/// `on_open`.
struct TrafficClass(Option<SocketOptions>);
impl Handler for TrafficClass {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Some(o) = &self.0 {
            conn.set_socket_options(o).expect("per-connection options");
        }
        let (tclass, tos) = traffic_class(conn.raw_fd());
        conn.send(format!("{tclass} {tos}\n").as_bytes());
    }
    fn on_data(&mut self, _c: &mut Conn<'_>, d: &[u8]) -> usize {
        d.len()
    }
}

/// An outbound connection that records its socket's [`traffic_class`] in `on_open`,
/// then closes.
struct TrafficClassClient(Arc<Mutex<Option<(i32, i32)>>>);
impl Handler for TrafficClassClient {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        *self.0.lock().unwrap() = Some(traffic_class(conn.raw_fd()));
        conn.close();
    }
    fn on_data(&mut self, _c: &mut Conn<'_>, d: &[u8]) -> usize {
        d.len()
    }
}

/// False (with a message) where this host has no IPv6 loopback to bind.
fn have_ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: no IPv6 loopback here (bind [::1]:0: {e})");
            false
        }
    }
}

/// `tos`/`dscp` on IPv6 sockets sets `IPV6_TCLASS` (and `IP_TOS`, which IPv4-mapped
/// traffic of a dual-stack socket uses), read back on a `[::1]` listener, on its
/// accepted socket (inherited), on a connection that sets it from `on_open`
/// (`Conn::set_socket_options`), and on an outbound connection
/// (`ConnectOptions::socket`), on both backends.
#[test]
fn ipv6_traffic_class_read_back() {
    if !have_ipv6_loopback() {
        return;
    }
    support::for_each_backend(|backend| {
        // AF11 (DSCP 10, TOS byte 40) on the listener, inherited by accepted sockets.
        let opts = SocketOptions::default().dscp(10);
        let l = Listeners::bind("[::1]:0", 1, &opts).expect("bind [::1]:0");
        assert_eq!(traffic_class(l.fds()[0]), (40, 40), "on the listener");
        let addr = l.local_addr();
        let (h, j) = support::serve_on(backend, 1, l, |_: &ConnInfo| TrafficClass(None));
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(line(&mut c), "40 40", "on the accepted socket");
        drop(c);
        h.shutdown();
        j.join().unwrap().unwrap();

        // EF (DSCP 46, TOS byte 184) set per connection on a listener without it.
        let l = Listeners::bind("[::1]:0", 1, &SocketOptions::default()).unwrap();
        assert_eq!(traffic_class(l.fds()[0]), (0, 0), "unset on the listener");
        let addr = l.local_addr();
        let per_conn = SocketOptions::default().dscp(46);
        let (h, j) = support::serve_on(backend, 1, l, move |_: &ConnInfo| {
            TrafficClass(Some(per_conn.clone()))
        });
        let mut c = TcpStream::connect(addr).unwrap();
        assert_eq!(line(&mut c), "184 184", "set from on_open");
        drop(c);

        // Outbound: the runtime's own connect to that server, with AF41 (DSCP 34,
        // TOS byte 136).
        let seen = Arc::new(Mutex::new(None));
        let rt = support::base_builder(backend).build().unwrap();
        let s2 = seen.clone();
        let copts = ConnectOptions::default().socket(SocketOptions::default().dscp(34));
        rt.connect(addr, 1, copts, move |_: &ConnInfo| {
            TrafficClassClient(s2.clone())
        })
        .expect("client run");
        assert_eq!(
            *seen.lock().unwrap(),
            Some((136, 136)),
            "on the outbound socket"
        );
        h.shutdown();
        j.join().unwrap().unwrap();
    });
}

#[test]
fn listener_only_options_read_back() {
    let opts = SocketOptions::default()
        .fastopen(Some(256))
        .defer_accept(Some(Duration::from_secs(5)))
        .incoming_cpus(vec![0, 1]);
    let l = Listeners::bind("127.0.0.1:0", 2, &opts).expect("bind");
    for (i, &fd) in l.fds().iter().enumerate() {
        assert_eq!(
            get_int(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, "tfo").unwrap(),
            256
        );
        // The kernel rounds up to its SYN-ACK retransmission schedule (1+2+4 s).
        let d = get_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, "defer").unwrap();
        assert!((5..=15).contains(&d), "defer_accept {d}");
        assert_eq!(
            get_int(fd, libc::SOL_SOCKET, libc::SO_INCOMING_CPU, "cpu").unwrap(),
            i as i32
        );
    }
    // An outbound socket with TCP_FASTOPEN_CONNECT.
    let s =
        ringcore::net::socket::tcp_socket(&"127.0.0.1:1".parse::<SocketAddr>().unwrap()).unwrap();
    SocketOptions::default()
        .fastopen_connect(true)
        .apply(s)
        .unwrap();
    assert_eq!(
        get_int(s, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, "tfoc").unwrap(),
        1
    );
    ringcore::net::socket::close_fd(s);
}

#[test]
fn bad_options_fail_with_the_option_named() {
    let e = Listeners::bind(
        "127.0.0.1:0",
        1,
        &SocketOptions::default().congestion(Some("no-such-cc".into())),
    )
    .unwrap_err();
    assert!(e.to_string().contains("TCP_CONGESTION"), "{e}");
    assert!(
        e.to_string().contains("tcp_allowed_congestion_control"),
        "{e}"
    );
    let e = Listeners::bind(
        "127.0.0.1:0",
        2,
        &SocketOptions::default().cpu_steering(true),
    )
    .unwrap_err();
    assert!(e.to_string().contains("incoming_cpus"), "{e}");
}

fn allowed_cpus() -> Vec<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect()
}

/// With the CBPF program, a connection whose SYN is processed on CPU c lands on the
/// listener tagged with c. Loopback processes the SYN on the sending CPU, so a client
/// thread pinned to c picks the listener deterministically (without the program, the
/// reuseport hash picks either: 16 connections all right by chance is 2^-16).
#[test]
fn cpu_steering_sends_connections_to_the_listener_of_their_cpu() {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!("skipping: needs two allowed CPUs, have {cpus:?}");
        return;
    }
    let pair = vec![cpus[0], cpus[1]];
    let opts = SocketOptions::default()
        .incoming_cpus(pair.clone())
        .cpu_steering(true);
    let l = Listeners::bind("127.0.0.1:0", 2, &opts).expect("bind with steering");
    let addr = l.local_addr();
    for (i, &cpu) in pair.iter().enumerate() {
        let conns = connect_from_cpu(addr, cpu, 8);
        // All 8 wait in listener i's queue and none in the other's.
        let mut got = 0;
        support::wait_until("8 connections on the steered listener", || {
            got += drain(l.fds()[i]);
            got >= 8
        });
        assert_eq!(got, 8);
        assert_eq!(
            drain(l.fds()[1 - i]),
            0,
            "the other listener got a connection from CPU {cpu}"
        );
        drop(conns);
    }
}

/// The BPF program alone (no `SO_INCOMING_CPU` tags, which Linux 6.2+ also honours):
/// given the mapping reversed, it sends CPU a's connections to listener 1.
#[test]
fn cpu_steering_program_alone_decides() {
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        eprintln!("skipping: needs two allowed CPUs, have {cpus:?}");
        return;
    }
    let l = Listeners::bind("127.0.0.1:0", 2, &SocketOptions::default()).unwrap();
    ringcore::net::sockopt::attach_cpu_steering(l.fds()[0], &[cpus[1], cpus[0]]).unwrap();
    let addr = l.local_addr();
    let cpu = cpus[0];
    let conns = connect_from_cpu(addr, cpu, 8);
    let mut got = 0;
    support::wait_until("8 connections on listener 1", || {
        got += drain(l.fds()[1]);
        got >= 8
    });
    assert_eq!(drain(l.fds()[0]), 0);
    drop(conns);
}

/// `n` connections to `addr` made by a thread pinned to `cpu` (so the SYNs are
/// handled there).
fn connect_from_cpu(addr: SocketAddr, cpu: usize, n: usize) -> Vec<TcpStream> {
    std::thread::spawn(move || {
        let mut set = nix::sched::CpuSet::new();
        set.set(cpu).unwrap();
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
        (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
    })
    .join()
    .unwrap()
}

/// Accepts and closes everything queued on a nonblocking listener; returns how many.
fn drain(fd: RawFd) -> usize {
    let mut n = 0;
    loop {
        // SAFETY: accept4 on our nonblocking listener, no address out-params.
        let r = unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if r < 0 {
            return n;
        }
        // SAFETY: `r` is the fd accept4 just returned, closed once.
        unsafe { libc::close(r) };
        n += 1;
    }
}
