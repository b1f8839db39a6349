//! UDP sends into a full socket send buffer (`EAGAIN`), on both backends: on epoll the
//! refused part of a `sendmmsg` batch parks until `EPOLLOUT` and leaves one `sendmsg`
//! each; on io_uring the kernel's internal poll retries the `SENDMSG`. Nothing may be
//! lost, duplicated or stuck; the send queue's bound still drops (and counts) what
//! does not fit; shutdown with sends waiting for room still returns.
//!
//! Loopback never refuses a UDP send (the loopback device releases each datagram's
//! send-buffer charge at once), so the test runs in a private network namespace whose
//! `lo` has a token-bucket qdisc (`tc ... tbf rate 4mbit`): datagrams wait in the
//! qdisc, charged to the sender's tiny `SO_SNDBUF`, and the sender gets `EAGAIN`. It
//! needs `CAP_SYS_ADMIN` (unshare) and `CAP_NET_ADMIN` plus `ip` and `tc`; without
//! them it says so and skips. A probe asserts that a plain socket really gets `EAGAIN`
//! there, so the scenario cannot pass vacuously.

mod support;

use ringcore::{BackendKind, DatagramHandler, Datagrams, ServeUdp, UdpOptions, UdpSockets};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use support::udp::in_slow_loopback_netns;
use support::{base_builder, DEADLINE};

/// Bytes of each datagram of a burst.
const SIZE: usize = 1000;
/// The server socket's send queue bound (datagrams queued or in flight).
const QUEUE: usize = 64;

/// On `b"burst N"`, sends N datagrams of [`SIZE`] bytes, each starting with its
/// sequence number (u32, little-endian) and filled from it.
struct Burst {
    next: u32,
}

fn datagram(seq: u32) -> Vec<u8> {
    let mut d: Vec<u8> = (0..SIZE).map(|i| (seq as usize * 31 + i) as u8).collect();
    d[..4].copy_from_slice(&seq.to_le_bytes());
    d
}

impl DatagramHandler for Burst {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        let n: u32 = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.strip_prefix("burst "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        for _ in 0..n {
            ctx.send_to(peer, &datagram(self.next));
            self.next += 1;
        }
    }
}

/// A plain nonblocking socket with the same send buffer gets `EAGAIN` for a burst
/// here: the server's sends must meet it too.
fn probe_eagain() -> usize {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    let s = socket_with_sndbuf();
    s.set_nonblocking(true).unwrap();
    let d = datagram(0);
    let mut refused = 0;
    for _ in 0..48 {
        match s.send_to(&d, r.local_addr().unwrap()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => refused += 1,
            Err(e) => panic!("probe send: {e}"),
        }
    }
    refused
}

fn socket_with_sndbuf() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::SndBuf, &4096).unwrap();
    s
}

/// Receives until `n` datagrams of a burst arrived; checks each is intact and new.
fn receive(c: &UdpSocket, n: usize, seen: &mut std::collections::BTreeSet<u32>) {
    let mut buf = [0u8; 2048];
    for i in 0..n {
        let len = loop {
            match c.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.unwrap_or_else(|e| panic!("datagram {i} of {n}: {e}")),
            }
        };
        let seq = u32::from_le_bytes(buf[..4].try_into().unwrap());
        assert_eq!(&buf[..len], &datagram(seq)[..], "datagram {seq} corrupted");
        assert!(seen.insert(seq), "datagram {seq} came twice");
    }
}

fn scenario(backend: BackendKind) {
    let opts = UdpOptions::default().send_buffer(4096).send_queue(QUEUE);
    let sockets = UdpSockets::bind("127.0.0.1:0", 1, &opts).expect("bind");
    let addr = sockets.local_addr();
    let rt = base_builder(backend).build().expect("runtime");
    let handle = rt.handle();
    let join = std::thread::spawn(move || rt.serve_udp(sockets, |_| Burst { next: 0 }));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(addr).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let counters = || handle.metrics().total;

    // 1. A burst within the queue bound, far beyond the send buffer: all of it.
    c.send(b"burst 48").unwrap();
    receive(&c, 48, &mut seen);
    support::wait_until("48 sends completed", || counters().datagrams_out == 48);
    assert_eq!(counters().datagrams_dropped, 0);

    // 2. A burst over the bound: the queue takes QUEUE, drops (and counts) the rest.
    c.send(b"burst 100").unwrap();
    receive(&c, QUEUE, &mut seen);
    support::wait_until("the second burst completed", || {
        let k = counters();
        k.datagrams_out == 48 + QUEUE as u64 && k.datagrams_dropped == (100 - QUEUE) as u64
    });

    // 3. Shutdown while a burst waits for room: it still leaves, and serve returns.
    c.send(b"burst 60").unwrap();
    support::wait_until("the third burst started", || {
        counters().datagrams_out > (48 + QUEUE) as u64
    });
    handle.shutdown();
    let end = Instant::now() + DEADLINE;
    while !join.is_finished() {
        assert!(
            Instant::now() < end,
            "serve_udp did not return after shutdown"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    join.join().unwrap().expect("serve_udp");
    let k = counters();
    assert_eq!(
        k.datagrams_out + k.datagrams_dropped,
        48 + 100 + 60,
        "every send accounted for: {k:?}"
    );
    // What the counters say left did arrive, once each.
    let sent_third = (k.datagrams_out - 48 - QUEUE as u64) as usize;
    receive(&c, sent_third, &mut seen);
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        c.recv(&mut buf).is_err(),
        "a datagram beyond the counted ones"
    );
    assert_eq!(k.datagram_errors, 0, "{k:?}");
    assert_eq!(k.datagrams_in, 3);
}

#[test]
fn udp_sends_into_a_full_send_buffer() {
    in_slow_loopback_netns("4mbit", || {
        let refused = probe_eagain();
        assert!(
            refused > 0,
            "the slow loopback refused no send: the scenario would not reach EAGAIN"
        );
        eprintln!("probe: {refused} of 48 sends refused with EAGAIN");
        support::for_each_backend(scenario);
    });
}
