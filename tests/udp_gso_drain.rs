//! A UDP GSO run cut at the drain deadline, on both backends, over a real loopback
//! whose qdisc holds the sends: the worker has GSO runs queued and in flight (waiting
//! for send-buffer room that does not come) when shutdown's drain deadline hits. The
//! runtime must stop anyway (the held datagrams would need minutes to leave), count
//! each datagram it did not send in `datagrams_dropped` (a cut GSO run counts its
//! datagrams, not one send), send nothing after the cut, and leak no fd.
//!
//! The qdisc: the test runs in a private network namespace whose `lo` has a token
//! bucket of 1 kbit/s (support/udp.rs, `in_slow_loopback_netns`), and the server socket
//! has a 4 KiB `SO_SNDBUF`. The first run (64 datagrams in one `UDP_SEGMENT` send) is
//! taken by the kernel at once, its segments wait in the qdisc charged to the socket,
//! and every later send meets a full send buffer (`EAGAIN`: io_uring's internal poll
//! waits, epoll parks the send). After the stop the bucket is made fast and the
//! client checks what arrives: the one run counted as sent, whole and in order. Needs `CAP_SYS_ADMIN`, `CAP_NET_ADMIN`, `ip` and `tc`;
//! without them it says so and skips. Alone in its binary: it checks the process's fd
//! table.

mod support;

use ringcore::net::udp::GSO_MAX_SEGMENTS;
use ringcore::{BackendKind, DatagramHandler, Datagrams, UdpOptions, UdpSockets};
use std::net::SocketAddr;
use std::time::Duration;
use support::udp::{client, in_slow_loopback_netns, recv, serve_udp, set_loopback_rate};
use support::{assert_no_fd_leak, base_builder, fd_table, wait_until};

/// Bytes of each datagram.
const SIZE: usize = 1000;
/// Datagrams queued: five full GSO runs.
const TOTAL: usize = 5 * GSO_MAX_SEGMENTS;

/// Datagram `i`: its index, then a pattern derived from it.
fn datagram(i: u32) -> Vec<u8> {
    let mut d: Vec<u8> = (0..SIZE).map(|k| (i as usize * 31 + k) as u8).collect();
    d[..4].copy_from_slice(&i.to_le_bytes());
    d
}

/// Queues [`TOTAL`] datagrams to `peer` as soon as the socket is open.
struct Flood {
    peer: SocketAddr,
}

impl DatagramHandler for Flood {
    fn on_open(&mut self, ctx: &mut Datagrams<'_>) {
        assert!(ctx.gso());
        for i in 0..TOTAL {
            assert!(ctx.send_to(self.peer, &datagram(i as u32)), "queued");
        }
    }
    fn on_datagram(&mut self, _: &mut Datagrams<'_>, _: SocketAddr, _: &[u8]) {}
}

fn scenario(backend: BackendKind) {
    set_loopback_rate("1kbit").expect("a slow loopback");
    let c = client("127.0.0.1:0");
    // Room for every datagram that may arrive (capped at net.core.rmem_max).
    let _ = nix::sys::socket::setsockopt(&c, nix::sys::socket::sockopt::RcvBuf, &(1 << 20));
    let peer = c.local_addr().unwrap();
    let before = fd_table();

    let opts = UdpOptions::default().gso(true).send_buffer(4096);
    let sockets = UdpSockets::bind("127.0.0.1:0", 1, &opts).expect("bind");
    let rt = base_builder(backend)
        .drain_timeout(Duration::from_millis(100))
        .build()
        .expect("runtime");
    let server = serve_udp(rt, sockets, move |_| Flood { peer });
    let k = server.wait_counters("the first run taken by the kernel", |k| {
        k.datagram_gso_sends >= 1
    });
    assert_eq!(
        k.datagrams_dropped, 0,
        "{backend}: nothing cut before shutdown"
    );
    // The other runs wait for room the 1 kbit/s qdisc makes in minutes: only the
    // drain deadline can end them (wait_until gives up after 30 s).
    server.begin_shutdown();
    wait_until("serve to return after the drain deadline", || {
        server.is_finished()
    });
    let k = server.join();
    assert_no_fd_leak(&before);
    assert_eq!(
        (k.datagrams_out, k.datagram_gso_sends),
        (GSO_MAX_SEGMENTS as u64, 1),
        "{backend}: only the first run left"
    );
    assert_eq!(
        k.datagrams_dropped,
        (TOTAL - GSO_MAX_SEGMENTS) as u64,
        "{backend}: each datagram of the cut runs counted once"
    );
    assert_eq!(
        (k.datagram_errors, k.datagram_gso_fallbacks, k.panics),
        (0, 0, 0),
        "{backend}: a cut is neither an error nor a refusal of GSO"
    );

    // Let the held datagrams go, then a marker behind them (the qdisc keeps its order):
    // exactly the run counted as sent arrives, whole and in order, and nothing else.
    // It is the first run on both backends: epoll parks the turn's sends until the
    // socket is first seen writable and retries them oldest first.
    set_loopback_rate("1gbit").expect("a fast loopback");
    c.send_to(b"marker", peer).unwrap();
    let got = recv(&c);
    let first = u32::from_le_bytes(got[..4].try_into().unwrap());
    assert_eq!(first, 0, "{backend}: the first run, whole, left first");
    assert!(got == datagram(first), "{backend}: datagram {first}");
    for i in first + 1..first + GSO_MAX_SEGMENTS as u32 {
        assert!(
            recv(&c) == datagram(i),
            "{backend}: datagram {i} of the run"
        );
    }
    assert_eq!(
        recv(&c),
        b"marker",
        "{backend}: a datagram beyond the counted ones"
    );
}

#[test]
fn a_gso_run_held_at_the_drain_deadline_is_cut_and_counted() {
    in_slow_loopback_netns("1kbit", || support::for_each_backend(scenario));
}
