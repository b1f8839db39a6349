//! UDP servers and clients for the datagram tests (tests/udp*.rs, direct_fds.rs):
//!
//! * [`serve_udp`] and [`serve_with_tcp_echo`]: a runtime serving datagrams (alone, or
//!   beside the TCP [`Echo`](super::Echo)) on a server thread, as a [`TestServer`];
//! * [`client`] and [`recv_from`] / [`recv`]: a blocking std socket that gives up after
//!   [`DEADLINE`].

use super::{TestServer, DEADLINE};
use ringcore::{
    DatagramFactory, Listeners, Runtime, ServeUdp, SocketOptions, UdpOptions, UdpSockets,
};
use std::io;
use std::net::{SocketAddr, UdpSocket};

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
