//! Source addresses of received datagrams (the raw `sockaddr` bytes io_uring and
//! `recvmmsg` write) and destination addresses of sends.

use nix::sys::socket::SockaddrStorage;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// The largest UDP payload over IPv4 (65,535 − 8 − 20 bytes).
pub const MAX_DATAGRAM: usize = 65_507;

/// Parses a `sockaddr_in` / `sockaddr_in6` as the kernel wrote it. An IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`, an IPv4 peer of a dual-stack socket) comes back as the
/// IPv4 address it carries, as TCP peers do. `None` for other families or short input.
pub fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]) as i32;
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            let ip = Ipv6Addr::from(ip);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), port),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)),
            })
        }
        _ => None,
    }
}

/// The destination as the socket needs it: an IPv4 peer of an IPv6 socket is sent to
/// its mapped form.
pub(crate) fn send_addr(peer: SocketAddr, v6_socket: bool) -> SockaddrStorage {
    let peer = match peer {
        SocketAddr::V4(v4) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        p => p,
    };
    SockaddrStorage::from(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::SockaddrLike;

    fn raw(a: SocketAddr) -> Vec<u8> {
        let s = SockaddrStorage::from(a);
        // SAFETY: `as_ptr` points at `len()` initialised bytes of the storage, which
        // lives across this borrow.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), s.len() as usize) }.to_vec()
    }

    #[test]
    fn round_trips_v4_v6_and_unmaps() {
        for a in ["127.0.0.1:9", "[::1]:65535", "[fe80::1%2]:7"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(parse_sockaddr(&raw(a)), Some(a));
        }
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:53".parse().unwrap();
        assert_eq!(
            parse_sockaddr(&raw(mapped)),
            Some("10.1.2.3:53".parse().unwrap())
        );
        assert_eq!(parse_sockaddr(&[2, 0, 1]), None);
        assert_eq!(parse_sockaddr(&[1, 0, 0, 0, 0, 0]), None); // AF_UNIX
    }

    #[test]
    fn v4_peers_of_v6_sockets_are_mapped() {
        let s = send_addr("1.2.3.4:5".parse().unwrap(), true);
        assert!(s.as_sockaddr_in6().is_some());
        let s = send_addr("1.2.3.4:5".parse().unwrap(), false);
        assert!(s.as_sockaddr_in().is_some());
    }
}
