//! UDP GSO (`UdpOptions::gso`) on both backends over real loopback sockets: runs of
//! equal replies to one peer leave as one `UDP_SEGMENT` send and arrive as the exact
//! datagrams sent, in order (GSO on and off; IPv4, and IPv6 on `[::1]` with its
//! smaller segment limit); replies to two peers are not merged, datagrams over the
//! segment limit go alone; the send queue's bound counts datagrams; a run that fails
//! for another reason reaches `on_error` once; and a run the kernel refuses is re-sent
//! one datagram at a time with GSO turned off for the socket. The refusal is real, not
//! injected: the server socket's checksums are turned off (`SO_NO_CHECK`), with which
//! the kernel sends plain datagrams but refuses every GSO send with `EINVAL`
//! (net/ipv4/udp.c, `udp_send_skb`). A run cut at the drain deadline: udp_gso_drain.rs.

mod support;

use ringcore::net::udp::{GSO_MAX_SEGMENTS, GSO_MAX_SEGMENT_V4, GSO_MAX_SEGMENT_V6};
use ringcore::{BackendKind, DatagramHandler, Datagrams, UdpOptions, UdpSockets};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use support::udp::{client, recv, serve_udp};
use support::{base_builder, for_each_backend, wait_until, TestServer};

/// `SO_NO_CHECK` (asm-generic/socket.h; not in the libc crate for Linux).
const SO_NO_CHECK: libc::c_int = 11;

/// Datagram `i` of a reply: `len` bytes, the index first (when it fits), then a
/// pattern derived from it.
fn datagram(i: u32, len: usize) -> Vec<u8> {
    let mut d: Vec<u8> = (0..len).map(|k| (i as usize * 31 + k) as u8).collect();
    let head = i.to_le_bytes();
    let n = len.min(4);
    d[..n].copy_from_slice(&head[..n]);
    d
}

/// What the handler saw, for the test to check.
#[derive(Default)]
struct Seen {
    /// `ctx.gso()` at each request.
    gso: Vec<bool>,
    /// `send_to` results and `ctx.queued()` after a `fill`.
    fill: Option<(Vec<bool>, usize)>,
    /// Each `on_error`: the peer and the error's kind.
    errors: Vec<(Option<SocketAddr>, std::io::ErrorKind)>,
}

/// Answers commands:
/// * `burst N SEG TAIL`: N datagrams of SEG bytes, then one of TAIL bytes (if TAIL > 0);
/// * `mix ADDR`: 500-byte datagrams to the sender and ADDR interleaved (4 each), two
///   3000-byte ones to the sender, then five 500-byte ones to the sender;
/// * `fill N`: N datagrams of 100 bytes to the sender, recording what `send_to` said;
/// * `broadcast N`: N datagrams of 100 bytes to 255.255.255.255:9, which a socket
///   without `SO_BROADCAST` may not send to (`EACCES`, not a GSO refusal).
struct Replies {
    seen: Arc<Mutex<Seen>>,
}

impl DatagramHandler for Replies {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        let text = std::str::from_utf8(bytes).expect("a text command");
        let words: Vec<&str> = text.split_whitespace().collect();
        let num = |i: usize| -> usize { words[i].parse().expect("a number") };
        let mut seen = self.seen.lock().unwrap();
        seen.gso.push(ctx.gso());
        match words[0] {
            "burst" => {
                let (n, seg, tail) = (num(1), num(2), num(3));
                for i in 0..n {
                    assert!(ctx.send_to(peer, &datagram(i as u32, seg)));
                }
                if tail > 0 {
                    assert!(ctx.send_to(peer, &datagram(n as u32, tail)));
                }
            }
            "mix" => {
                let other: SocketAddr = words[1].parse().expect("an address");
                for i in 0..4 {
                    ctx.send_to(peer, &datagram(i, 500));
                    ctx.send_to(other, &datagram(100 + i, 500));
                }
                ctx.send_to(peer, &datagram(4, 3000));
                ctx.send_to(peer, &datagram(5, 3000));
                for i in 6..11 {
                    ctx.send_to(peer, &datagram(i, 500));
                }
            }
            "fill" => {
                let results = (0..num(1))
                    .map(|i| ctx.send_to(peer, &datagram(i as u32, 100)))
                    .collect();
                seen.fill = Some((results, ctx.queued()));
            }
            "broadcast" => {
                let to: SocketAddr = "255.255.255.255:9".parse().unwrap();
                for i in 0..num(1) {
                    ctx.send_to(to, &datagram(i as u32, 100));
                }
            }
            other => panic!("unknown command {other}"),
        }
    }

    fn on_error(&mut self, _: &mut Datagrams<'_>, peer: Option<SocketAddr>, err: &std::io::Error) {
        self.seen.lock().unwrap().errors.push((peer, err.kind()));
    }
}

/// A one-worker server of [`Replies`] on 127.0.0.1, with what its handler saw.
fn start(backend: BackendKind, opts: UdpOptions) -> (TestServer, Arc<Mutex<Seen>>) {
    start_on(backend, "127.0.0.1:0", opts, |_| {})
}

/// [`start`] on `bind`; `tweak` sees the bound socket's fd first.
fn start_on(
    backend: BackendKind,
    bind: &str,
    opts: UdpOptions,
    tweak: impl FnOnce(RawFd),
) -> (TestServer, Arc<Mutex<Seen>>) {
    let rt = base_builder(backend).build().expect("runtime");
    let sockets = UdpSockets::bind(bind, 1, &opts).expect("bind");
    tweak(sockets.fds()[0]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let server = serve_udp(rt, sockets, move |_| Replies { seen: s2.clone() });
    (server, seen)
}

/// A client on `bind` with room for a whole burst (the kernel caps it at
/// net.core.rmem_max).
fn burst_client(bind: &str) -> UdpSocket {
    let s = client(bind);
    let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &(1 << 20));
    s
}

/// Sends `burst n seg tail` and checks the n + 1 (or n) datagrams that come back.
fn burst(c: &UdpSocket, server: SocketAddr, n: usize, seg: usize, tail: usize, label: &str) {
    c.send_to(format!("burst {n} {seg} {tail}").as_bytes(), server)
        .unwrap();
    for i in 0..n {
        let got = recv(c);
        assert_eq!(
            got.len(),
            seg,
            "{label}: datagram {i} of {n} keeps its size"
        );
        assert!(
            got == datagram(i as u32, seg),
            "{label}: datagram {i} bytes"
        );
    }
    if tail > 0 {
        let got = recv(c);
        assert!(got == datagram(n as u32, tail), "{label}: the tail, whole");
    }
}

/// [`burst`] for each `(n, seg, tail)` in turn; returns the datagrams and bytes sent.
fn bursts(
    c: &UdpSocket,
    server: SocketAddr,
    list: &[(usize, usize, usize)],
    label: &str,
) -> (u64, u64) {
    let (mut out, mut bytes) = (0, 0);
    for &(n, seg, tail) in list {
        burst(c, server, n, seg, tail, label);
        out += n as u64 + u64::from(tail > 0);
        bytes += (n * seg + tail) as u64;
    }
    (out, bytes)
}

#[test]
fn runs_arrive_as_the_datagrams_sent() {
    for_each_backend(|backend| {
        for gso in [false, true] {
            let label = format!("{backend}, gso {gso}");
            let (server, seen) = start(backend, UdpOptions::default().gso(gso));
            let c = burst_client("127.0.0.1:0");
            // One run plus a shorter tail; a run over the segment cap (64 + 6); the
            // largest IPv4 segment, 44 of them plus a 1-byte tail (64,769 bytes).
            let list = [
                (40, 1000, 333),
                (GSO_MAX_SEGMENTS + 6, 100, 0),
                (44, GSO_MAX_SEGMENT_V4, 1),
            ];
            let (out, bytes) = bursts(&c, server.addr, &list, &label);
            let k = server.wait_counters("every reply counted", |k| k.datagrams_out >= out);
            assert_eq!(k.datagrams_out, out, "{label}: one count per datagram");
            assert_eq!(k.bytes_out, bytes, "{label}");
            assert_eq!(
                k.datagram_gso_sends,
                if gso { 4 } else { 0 },
                "{label}: runs of 41, 64 + 6 and 45 datagrams"
            );
            assert_eq!(
                (k.datagram_errors, k.datagram_gso_fallbacks),
                (0, 0),
                "{label}"
            );
            assert!(
                seen.lock().unwrap().gso.iter().all(|&g| g == gso),
                "{label}"
            );
            server.stop();
        }
    });
}

/// IPv6 on a real `[::1]` socket: runs of datagrams up to the IPv6 segment limit
/// ([`GSO_MAX_SEGMENT_V6`], 1,452 bytes: the IPv6 header is 40 bytes) leave as GSO
/// sends and arrive one by one with their sizes and bytes; datagrams one byte over
/// the limit go alone.
#[test]
fn ipv6_runs_arrive_as_the_datagrams_sent() {
    for_each_backend(|backend| {
        if let Err(e) = UdpSocket::bind("[::1]:0") {
            eprintln!("skipping {backend}: IPv6 unavailable here ({e})");
            return;
        }
        let label = format!("{backend}, [::1]");
        let opts = UdpOptions::default().gso(true);
        let (server, seen) = start_on(backend, "[::1]:0", opts, |_| {});
        let c = burst_client("[::1]:0");
        // One run plus a shorter tail; the largest IPv6 segment, 44 of them plus a
        // 1-byte tail (63,889 bytes); five datagrams of 1,453 bytes.
        let list = [
            (40, 1000, 333),
            (44, GSO_MAX_SEGMENT_V6, 1),
            (5, GSO_MAX_SEGMENT_V6 + 1, 0),
        ];
        let (out, bytes) = bursts(&c, server.addr, &list, &label);
        let k = server.wait_counters("every reply counted", |k| k.datagrams_out >= out);
        assert_eq!((k.datagrams_out, k.bytes_out), (out, bytes), "{label}");
        assert_eq!(
            k.datagram_gso_sends, 2,
            "{label}: runs of 41 and 45 datagrams; the 1,453-byte ones alone"
        );
        assert_eq!(
            (k.datagram_errors, k.datagram_gso_fallbacks),
            (0, 0),
            "{label}"
        );
        assert!(seen.lock().unwrap().gso.iter().all(|&g| g), "{label}");
        server.stop();
    });
}

#[test]
fn peers_and_large_datagrams_are_not_merged() {
    for_each_backend(|backend| {
        let (server, _) = start(backend, UdpOptions::default().gso(true));
        let (a, b) = (burst_client("127.0.0.1:0"), burst_client("127.0.0.1:0"));
        let b_addr = b.local_addr().unwrap();
        a.send_to(format!("mix {b_addr}").as_bytes(), server.addr)
            .unwrap();
        let mut want_a: Vec<Vec<u8>> = (0..4).map(|i| datagram(i, 500)).collect();
        want_a.extend([datagram(4, 3000), datagram(5, 3000)]);
        want_a.extend((6..11).map(|i| datagram(i, 500)));
        for (i, want) in want_a.iter().enumerate() {
            assert!(recv(&a) == *want, "{backend}: A's datagram {i}");
        }
        for i in 0..4 {
            assert!(
                recv(&b) == datagram(100 + i, 500),
                "{backend}: B's datagram {i}"
            );
        }
        let k = server.wait_counters("every reply counted", |k| k.datagrams_out >= 15);
        assert_eq!(k.datagrams_out, 15, "{backend}");
        // Interleaved peers and the 3000-byte datagrams went alone; only the last five
        // (one peer, equal, small) made a run.
        assert_eq!(k.datagram_gso_sends, 1, "{backend}");
        assert_eq!(k.datagram_errors, 0, "{backend}");
        server.stop();
    });
}

#[test]
fn the_queue_bound_counts_datagrams() {
    for_each_backend(|backend| {
        let opts = UdpOptions::default().gso(true).send_queue(10);
        let (server, seen) = start(backend, opts);
        let c = burst_client("127.0.0.1:0");
        c.send_to(b"fill 15", server.addr).unwrap();
        for i in 0..10 {
            assert!(recv(&c) == datagram(i, 100), "{backend}: datagram {i}");
        }
        let k = server.wait_counters("the accepted datagrams counted", |k| k.datagrams_out >= 10);
        let (results, queued) = seen.lock().unwrap().fill.clone().unwrap();
        let accepted: Vec<bool> = (0..15).map(|i| i < 10).collect();
        assert_eq!(
            results, accepted,
            "{backend}: ten fit in one run's slot, five do not"
        );
        assert_eq!(
            queued, 10,
            "{backend}: queued() counts datagrams, not sends"
        );
        assert_eq!(k.datagrams_out, 10, "{backend}");
        assert_eq!(k.datagram_gso_sends, 1, "{backend}");
        let k = server.stop();
        assert_eq!(k.datagrams_dropped, 5, "{backend}");
    });
}

#[test]
fn a_refused_run_is_resent_one_by_one() {
    for_each_backend(|backend| {
        let no_checksums = |fd: RawFd| {
            let one: libc::c_int = 1;
            // SAFETY: `fd` is the open socket `UdpSockets` owns; the option value is a
            // live local of the size passed.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    SO_NO_CHECK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "SO_NO_CHECK: {}", std::io::Error::last_os_error());
        };
        let opts = UdpOptions::default().gso(true);
        let (server, seen) = start_on(backend, "127.0.0.1:0", opts, no_checksums);
        let c = burst_client("127.0.0.1:0");
        burst(
            &c,
            server.addr,
            20,
            800,
            100,
            &format!("{backend}, refused"),
        );
        let k = server.wait_counters("the re-sent datagrams counted", |k| k.datagrams_out >= 21);
        assert_eq!(
            (
                k.datagrams_out,
                k.datagram_gso_fallbacks,
                k.datagram_gso_sends
            ),
            (21, 1, 0),
            "{backend}: the run was refused, then sent one by one"
        );
        assert_eq!(k.datagram_errors, 0, "{backend}: a refusal is not an error");
        burst(&c, server.addr, 20, 800, 100, &format!("{backend}, after"));
        let k = server.wait_counters("the second burst counted", |k| k.datagrams_out >= 42);
        assert_eq!(
            (
                k.datagrams_out,
                k.datagram_gso_fallbacks,
                k.datagram_gso_sends
            ),
            (42, 1, 0),
            "{backend}: GSO stays off for the socket"
        );
        assert_eq!(seen.lock().unwrap().gso, [true, false], "{backend}");
        server.stop();
    });
}

#[test]
fn a_failed_run_reaches_on_error_once() {
    for_each_backend(|backend| {
        for gso in [false, true] {
            let label = format!("{backend}, gso {gso}");
            let (server, seen) = start(backend, UdpOptions::default().gso(gso));
            let c = burst_client("127.0.0.1:0");
            c.send_to(b"broadcast 5", server.addr).unwrap();
            wait_until("five failed datagrams counted", || {
                server.counters().datagram_errors >= 5
            });
            // Still serving, GSO still on: the error was not a refusal of GSO.
            burst(&c, server.addr, 3, 200, 0, &label);
            let k = server.stop();
            assert_eq!(k.datagram_errors, 5, "{label}: each datagram counted");
            assert_eq!(k.datagram_gso_fallbacks, 0, "{label}");
            assert_eq!(
                k.datagram_gso_sends,
                u64::from(gso),
                "{label}: the burst's run"
            );
            let seen = seen.lock().unwrap();
            let to: SocketAddr = "255.255.255.255:9".parse().unwrap();
            let one = (Some(to), std::io::ErrorKind::PermissionDenied);
            // A run fails as one send: one on_error for its peer.
            let want = if gso { vec![one] } else { vec![one; 5] };
            assert_eq!(seen.errors, want, "{label}");
            assert_eq!(seen.gso, [gso, gso], "{label}: GSO stays on");
        }
    });
}
