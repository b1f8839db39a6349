//! UDP servers and clients for the datagram tests (tests/udp*.rs, direct_fds.rs):
//!
//! * [`serve_udp`] and [`serve_with_tcp_echo`]: a runtime serving datagrams (alone, or
//!   beside the TCP [`Echo`](super::Echo)) on a server thread, as a [`TestServer`];
//! * [`client`] and [`recv_from`] / [`recv`]: a blocking std socket that gives up after
//!   [`DEADLINE`];
//! * [`in_slow_loopback_netns`] and [`set_loopback_rate`]: sends that wait in a qdisc.

use super::{TestServer, DEADLINE};
use ringcore::{
    DatagramFactory, Listeners, Runtime, ServeUdp, SocketOptions, UdpOptions, UdpSockets,
};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;

/// Serves `sockets` with `factory` on `rt`, on a server thread (its `addr`: the
/// sockets' address).
pub fn serve_udp<D: DatagramFactory>(rt: Runtime, sockets: UdpSockets, factory: D) -> TestServer {
    let addr = sockets.local_addr();
    TestServer::spawn(rt, addr, move |rt| rt.serve_udp(sockets, factory))
}

/// Serves the TCP [`Echo`](super::Echo) and `factory`'s UDP in the same workers of
/// `rt` (`serve_with_udp`), both on 127.0.0.1 with one socket per worker, on a server
/// thread. Returns the server (its `addr`: the UDP address) and the TCP address.
pub fn serve_with_tcp_echo<D: DatagramFactory>(
    rt: Runtime,
    factory: D,
) -> (TestServer, SocketAddr) {
    let workers = rt.config().workers;
    let l = Listeners::bind("127.0.0.1:0", workers, &SocketOptions::default()).unwrap();
    let u = UdpSockets::bind("127.0.0.1:0", workers, &UdpOptions::default()).unwrap();
    let (tcp, udp) = (l.local_addr(), u.local_addr());
    let server = TestServer::spawn(rt, udp, move |rt| {
        rt.serve_with_udp(l, super::echo_factory, u, factory)
    });
    (server, tcp)
}

/// A client socket bound to `bind` whose receives give up after [`DEADLINE`].
pub fn client(bind: &str) -> UdpSocket {
    let s = UdpSocket::bind(bind).expect("client socket");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// The next datagram on `s` and its sender (panics after [`DEADLINE`]).
pub fn recv_from(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    let (n, from) = loop {
        match s.recv_from(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r.expect("a datagram within the deadline"),
        }
    };
    buf.truncate(n);
    (buf, from)
}

/// The next datagram on `s` (panics after [`DEADLINE`]).
pub fn recv(s: &UdpSocket) -> Vec<u8> {
    recv_from(s).0
}

/// Runs `test` on a thread of its own in a new network namespace whose `lo` is up
/// behind a token-bucket qdisc of `rate` (`tc ... tbf rate <rate>`, e.g. `4mbit`), and
/// waits for it (a panic in `test` fails the caller). Loopback never refuses a UDP send
/// (the device releases each datagram's send-buffer charge at once); here datagrams
/// wait in the qdisc, charged to the sender's `SO_SNDBUF`, so a sender with a small one
/// meets `EAGAIN`. The runtime's workers, started from that thread, share the
/// namespace. Needs `CAP_SYS_ADMIN` (unshare), `CAP_NET_ADMIN`, `ip` and `tc`; without
/// them it says which was missing and skips `test`.
pub fn in_slow_loopback_netns(rate: &'static str, test: impl FnOnce() + Send + 'static) {
    // The namespace is per thread.
    std::thread::spawn(move || {
        if let Err(e) = slow_loopback_netns(rate) {
            eprintln!("skipping: no private netns with a slow lo here: {e}");
            return;
        }
        test();
    })
    .join()
    .expect("the netns thread");
}

fn slow_loopback_netns(rate: &str) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare(CLONE_NEWNET): {e} (needs CAP_SYS_ADMIN)"))?;
    // Children forked from this thread start in its namespace.
    run(&["ip", "link", "set", "lo", "up"])?;
    lo_qdisc("add", rate)
}

/// Changes the rate of the qdisc [`in_slow_loopback_netns`] put on this namespace's `lo`;
/// the datagrams waiting in it stay queued, in order.
pub fn set_loopback_rate(rate: &str) -> Result<(), String> {
    lo_qdisc("change", rate)
}

fn lo_qdisc(verb: &str, rate: &str) -> Result<(), String> {
    run(&[
        "tc", "qdisc", verb, "dev", "lo", "root", "tbf", "rate", rate, "burst", "1600", "limit",
        "1000000",
    ])
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
