//! UDP beyond the basics (tests/udp.rs), on both backends over real loopback sockets:
//! datagrams beside incremental buffer consumption (`buf_inc`), where UDP must not
//! share partially consumed TCP buffers (a datagram landing in the tail of one was
//! reported truncated); the per-socket timer (`Datagrams::set_timer`, `on_timer`).

mod support;

use ringcore::net::udp::payload_capacity;
use ringcore::{
    BackendKind, Builder, DatagramFactory, DatagramHandler, Datagrams, UdpOptions, UdpSockets,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use support::client::{echo_check, Rng};
use support::udp::{client, recv, serve_udp, serve_with_tcp_echo};
use support::{base_builder, for_each_backend, TestServer};

/// A one-worker server of `factory` on 127.0.0.1 (`tweak` applied to the builder).
fn start<D: DatagramFactory>(
    backend: BackendKind,
    tweak: impl FnOnce(Builder) -> Builder,
    opts: UdpOptions,
    factory: D,
) -> TestServer {
    let rt = tweak(base_builder(backend)).build().expect("runtime");
    let sockets = UdpSockets::bind("127.0.0.1:0", 1, &opts).expect("bind");
    serve_udp(rt, sockets, factory)
}

/// Says `T <len>` for a truncated datagram, `D <len>` for a whole one.
struct Sizes;

impl DatagramHandler for Sizes {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, b: &[u8]) {
        ctx.send_to(peer, format!("D {}", b.len()).as_bytes());
    }
    fn on_truncated(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, prefix: &[u8]) {
        ctx.send_to(peer, format!("T {}", prefix.len()).as_bytes());
    }
}

/// Sends datagrams of `sizes` one at a time and checks each arrived whole.
fn expect_whole(backend: BackendKind, c: &UdpSocket, to: SocketAddr, sizes: &[usize]) {
    for (i, &n) in sizes.iter().enumerate() {
        c.send_to(&vec![b'u'; n], to).unwrap();
        assert_eq!(
            String::from_utf8(recv(c)).unwrap(),
            format!("D {n}"),
            "{backend}: datagram {i} ({n} bytes) must arrive whole"
        );
    }
}

/// With `buf_inc` the TCP buffer ring is consumed incrementally: a receive takes only
/// what it needs and leaves the buffer's tail to the next one. A datagram that fits a
/// whole buffer must still arrive whole, never cut to a partially used buffer's tail.
#[test]
fn incremental_buffers_never_truncate_datagrams() {
    for_each_backend(|backend| {
        let size = 4096u32;
        let cap = payload_capacity(size as usize);
        let server = start(
            backend,
            |b| b.buf_size(size).buf_count(4).buf_inc(true),
            UdpOptions::default(),
            |_| Sizes,
        );
        let c = client("127.0.0.1:0");
        // 3000 B leaves ~1 KiB of a 4 KiB buffer; the next one would not fit there.
        let mut sizes = vec![3000; 12];
        sizes.extend([cap, 1, cap, 2000, 2000, 2000, cap]);
        expect_whole(backend, &c, server.addr, &sizes);
        let k = server.stop();
        assert_eq!(k.datagrams_truncated, 0, "{backend}");
        assert_eq!(k.datagrams_in, sizes.len() as u64, "{backend}");
    });
}

/// TCP and UDP in the same workers with `buf_inc`: TCP keeps its incremental ring
/// (every byte intact), UDP gets whole buffers (every datagram whole).
#[test]
fn udp_beside_tcp_with_incremental_buffers() {
    for_each_backend(|backend| {
        let size = 4096u32;
        let rt = base_builder(backend)
            .buf_size(size)
            .buf_count(8)
            .buf_inc(true)
            .build()
            .unwrap();
        let (server, tcp_addr) = serve_with_tcp_echo(rt, |_| Sizes);
        let udp_addr = server.addr;
        let mut rng = Rng::new(5);
        let mut tcp = support::client::connect(tcp_addr);
        let c = client("127.0.0.1:0");
        for round in 0..10 {
            // Small TCP messages leave partially used buffers behind...
            for _ in 0..3 {
                let n = rng.range(1, 700);
                echo_check(&mut tcp, &rng.bytes(n), 4096);
            }
            // ...which the datagrams must not land in.
            let n = 2500 + round * 100;
            expect_whole(backend, &c, udp_addr, &[n, payload_capacity(size as usize)]);
        }
        drop(tcp);
        let k = server.stop();
        assert_eq!(
            (k.datagrams_in, k.datagrams_truncated),
            (20, 0),
            "{backend}"
        );
    });
}

/// Drives the socket's timer from datagrams: `arm MS` (fire in MS ms), `periodic N`
/// (N ticks 5 ms apart), `cancel` (set an already-due timer, then cancel it),
/// `replace` (set an already-due timer, then replace it with one 20 ms out), `count`
/// (how often on_timer ran). Each firing tells the last peer `tick <fires> <on time>`.
#[derive(Default)]
struct Timers {
    peer: Option<SocketAddr>,
    deadline: Option<Instant>,
    fires: u32,
    periodic_left: u32,
}

impl DatagramHandler for Timers {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, b: &[u8]) {
        self.peer = Some(peer);
        let cmd = String::from_utf8_lossy(b).to_string();
        let mut words = cmd.split(' ');
        let now = ctx.now();
        let mut arm = |ctx: &mut Datagrams<'_>, ms: u64| {
            let at = now + Duration::from_millis(ms);
            self.deadline = Some(at);
            ctx.set_timer(Some(at));
            assert_eq!(ctx.timer(), Some(at));
        };
        match (words.next(), words.next()) {
            (Some("arm"), Some(ms)) => arm(ctx, ms.parse().unwrap()),
            (Some("periodic"), Some(n)) => {
                self.periodic_left = n.parse().unwrap();
                arm(ctx, 5);
            }
            (Some("cancel"), _) => {
                ctx.set_timer(Some(now));
                ctx.set_timer(None);
                assert_eq!(ctx.timer(), None);
                ctx.send_to(peer, b"cancelled");
            }
            (Some("replace"), _) => {
                ctx.set_timer(Some(now));
                arm(ctx, 20);
            }
            (Some("count"), _) => {
                ctx.send_to(peer, format!("count {}", self.fires).as_bytes());
            }
            _ => panic!("unknown command {cmd:?}"),
        }
    }

    fn on_timer(&mut self, ctx: &mut Datagrams<'_>) {
        self.fires += 1;
        let on_time = self.deadline.is_some_and(|d| ctx.now() >= d);
        assert_eq!(ctx.timer(), None, "a fired timer is no longer set");
        if let Some(p) = self.peer {
            ctx.send_to(p, format!("tick {} {on_time}", self.fires).as_bytes());
        }
        if self.periodic_left > 1 {
            self.periodic_left -= 1;
            let at = ctx.now() + Duration::from_millis(5);
            self.deadline = Some(at);
            ctx.set_timer(Some(at));
        } else {
            self.periodic_left = 0;
        }
    }
}

fn ask(c: &UdpSocket, to: SocketAddr, cmd: &str) -> String {
    c.send_to(cmd.as_bytes(), to).unwrap();
    String::from_utf8(recv(c)).unwrap()
}

/// `set_timer` fires `on_timer` once, not before its deadline; re-armed from `on_timer`
/// it ticks periodically; replacing keeps only the new deadline; cancelling an
/// already-due timer stops it (it would otherwise fire at the end of that same turn,
/// before the next datagram is read). Alone and beside a TCP listener (the combined
/// service routes timers to both).
#[test]
fn datagram_timer_fires_repeats_replaces_and_cancels() {
    for_each_backend(|backend| {
        let server = start(backend, |b| b, UdpOptions::default(), |_| Timers::default());
        let (c, to) = (client("127.0.0.1:0"), server.addr);
        c.send_to(b"arm 30", to).unwrap();
        assert_eq!(
            String::from_utf8(recv(&c)).unwrap(),
            "tick 1 true",
            "{backend}"
        );
        c.send_to(b"periodic 3", to).unwrap();
        for n in 2..=4 {
            let want = format!("tick {n} true");
            assert_eq!(String::from_utf8(recv(&c)).unwrap(), want, "{backend}");
        }
        assert_eq!(ask(&c, to, "cancel"), "cancelled", "{backend}");
        assert_eq!(
            ask(&c, to, "count"),
            "count 4",
            "{backend}: cancelled timer fired"
        );
        c.send_to(b"replace", to).unwrap();
        assert_eq!(
            String::from_utf8(recv(&c)).unwrap(),
            "tick 5 true",
            "{backend}: only the replacing deadline fires"
        );
        assert_eq!(ask(&c, to, "count"), "count 5", "{backend}");
        let k = server.stop();
        assert_eq!(k.panics, 0, "{backend}: no assertion in a callback failed");

        // Beside TCP: the combined service's deadline and expiry include UDP's timer.
        let rt = base_builder(backend).build().unwrap();
        let (server, _) = serve_with_tcp_echo(rt, |_| Timers::default());
        let udp_addr = server.addr;
        c.send_to(b"periodic 2", udp_addr).unwrap();
        for n in 1..=2 {
            let want = format!("tick {n} true");
            assert_eq!(
                String::from_utf8(recv(&c)).unwrap(),
                want,
                "{backend}: beside TCP"
            );
        }
        let k = server.stop();
        assert_eq!(k.panics, 0, "{backend}");
    });
}
