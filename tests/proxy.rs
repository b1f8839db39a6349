//! The splice tunnel (`Conn::pipe_to`, as in examples/proxy.rs) over real sockets:
//! 64 MiB each way byte-exact, a slow reader, half-close, an upstream that refuses or
//! resets (the client side closes, other clients carry on), and every connection and
//! upstream socket closed afterwards.

mod support;

use ringcore::{BackendKind, Conn, ConnInfo, Handler};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::{
    connect, connect_small_rcvbuf, echo_check, read_expect, read_to_eof, set_linger_zero,
    shutdown_write, Rng,
};
use support::{for_each_backend, start_echo, start_server, TestServer};

/// The proxy handler of examples/proxy.rs.
struct Proxy {
    upstream: SocketAddr,
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Err(e) = conn.pipe_to(self.upstream, Duration::from_secs(2)) {
            eprintln!("proxy: {e}");
            conn.abort();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// A proxy whose upstream for new connections is whatever `target` holds.
fn start_proxy(backend: BackendKind, target: Arc<Mutex<SocketAddr>>) -> TestServer {
    start_server(
        backend,
        |b| b,
        move |_: &ConnInfo| Proxy {
            upstream: *target.lock().unwrap(),
        },
    )
}

/// An echo server and a proxy to it.
fn echo_and_proxy(backend: BackendKind) -> (TestServer, TestServer, Arc<Mutex<SocketAddr>>) {
    let echo = start_echo(backend, |b| b);
    let target = Arc::new(Mutex::new(echo.addr));
    let proxy = start_proxy(backend, target.clone());
    (echo, proxy, target)
}

/// Both servers have no connection left: every client slot and every upstream
/// socket of the proxy is closed (the echo server sees the upstream sockets).
fn assert_all_closed(echo: &TestServer, proxy: &TestServer) {
    proxy.wait_counters("proxy connections closed", |c| c.open_conns == 0);
    echo.wait_counters("upstream connections closed", |c| c.open_conns == 0);
}

/// An address nothing listens on.
fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn sixty_four_mib_each_way() {
    for_each_backend(|backend| {
        let (echo, proxy, _) = echo_and_proxy(backend);
        let payload = Rng::new(64).bytes(64 << 20);
        let mut s = connect(proxy.addr);
        echo_check(&mut s, &payload, 256 * 1024);
        // And a few small exchanges afterwards on the same tunnel.
        for n in [1, 100, 70_000] {
            echo_check(&mut s, &Rng::new(n as u64).bytes(n), 4096);
        }
        drop(s);
        assert_all_closed(&echo, &proxy);
        let c = proxy.counters();
        assert!(
            c.bytes_in >= 2 * (64 << 20) && c.bytes_out >= 2 * (64 << 20),
            "the proxy moved 64 MiB each way through both sockets: {c:?}"
        );
        assert_eq!(proxy.stop().panics, 0);
        echo.stop();
    });
}

#[test]
fn several_tunnels_at_once() {
    for_each_backend(|backend| {
        let (echo, proxy, _) = echo_and_proxy(backend);
        std::thread::scope(|sc| {
            for t in 0..8u64 {
                let addr = proxy.addr;
                sc.spawn(move || {
                    let mut s = connect(addr);
                    let mut rng = Rng::new(100 + t);
                    for _ in 0..4 {
                        let n = rng.range(1, 2 << 20);
                        echo_check(&mut s, &rng.bytes(n), 64 * 1024);
                    }
                });
            }
        });
        assert_all_closed(&echo, &proxy);
        proxy.stop();
        echo.stop();
    });
}

#[test]
fn slow_reader_is_byte_exact() {
    for_each_backend(|backend| {
        let (echo, proxy, _) = echo_and_proxy(backend);
        let payload = Rng::new(7).bytes(8 << 20);
        let mut s = connect_small_rcvbuf(proxy.addr, 8 * 1024);
        let mut w = s.try_clone().unwrap();
        std::thread::scope(|sc| {
            let p = &payload;
            let writer = sc.spawn(move || w.write_all(p));
            let mut buf = vec![0u8; 4096];
            let mut off = 0;
            let mut reads = 0u64;
            while off < p.len() {
                let want = buf.len().min(p.len() - off);
                let n = match s.read(&mut buf[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => r.expect("slow read"),
                };
                assert!(n > 0, "EOF after {off} bytes");
                assert!(buf[..n] == p[off..off + n], "differs near byte {off}");
                off += n;
                reads += 1;
                if reads % 32 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            writer.join().unwrap().expect("write the payload");
        });
        // The tunnel still works at full speed afterwards.
        echo_check(&mut s, &Rng::new(8).bytes(1 << 20), 64 * 1024);
        drop(s);
        assert_all_closed(&echo, &proxy);
        proxy.stop();
        echo.stop();
    });
}

#[test]
fn half_close_gets_all_echo_then_eof() {
    for_each_backend(|backend| {
        let (echo, proxy, _) = echo_and_proxy(backend);
        for (i, n) in [0usize, 1, 100_000, 5 << 20].into_iter().enumerate() {
            let payload = Rng::new(50 + i as u64).bytes(n);
            let mut s = connect(proxy.addr);
            let mut w = s.try_clone().unwrap();
            let got = std::thread::scope(|sc| {
                let p = &payload;
                sc.spawn(move || {
                    w.write_all(p).expect("write");
                    shutdown_write(&w);
                });
                read_to_eof(&mut s)
            });
            let got = got.unwrap_or_else(|(got, e)| {
                panic!(
                    "{n} B half-close: expected echo then EOF, got {} B then {e}",
                    got.len()
                )
            });
            assert_eq!(got.len(), n, "echo length before EOF");
            assert!(got == payload, "echo of {n} B before EOF differs");
        }
        assert_all_closed(&echo, &proxy);
        proxy.stop();
        echo.stop();
    });
}

#[test]
fn upstream_refusing_closes_the_client_and_others_carry_on() {
    for_each_backend(|backend| {
        let (echo, proxy, target) = echo_and_proxy(backend);
        // A client tunnelled before the failures, active across them.
        let mut steady = connect(proxy.addr);
        echo_check(&mut steady, b"before", 16);

        // Fd 0 (the process's stdin) is the lowest fd number: a stray close of a
        // default-initialised fd field would hit it first.
        let fd0 = support::fd_table().get(&0).cloned();
        *target.lock().unwrap() = refused_addr();
        for i in 0..5 {
            let mut s = connect(proxy.addr);
            // Writing may fail once the proxy has closed; either is fine.
            let _ = s.write_all(b"into the void");
            let took = support::client::expect_server_closed(&mut s, "refused upstream");
            assert!(
                took < Duration::from_secs(3),
                "refused upstream #{i}: client closed only after {took:?}"
            );
            echo_check(&mut steady, &Rng::new(i).bytes(10_000), 4096);
        }
        proxy.wait_counters("refused tunnels closed", |c| c.open_conns == 1);
        assert_eq!(
            support::fd_table().get(&0).cloned(),
            fd0,
            "fd 0 changed: the proxy closed an fd it does not own"
        );

        *target.lock().unwrap() = echo.addr;
        let mut fresh = connect(proxy.addr);
        echo_check(&mut fresh, &Rng::new(9).bytes(1 << 20), 64 * 1024);
        echo_check(&mut steady, b"after", 16);
        drop((fresh, steady));
        assert_all_closed(&echo, &proxy);
        assert_eq!(proxy.stop().panics, 0);
        echo.stop();
    });
}

/// A std upstream: accepts connections, reads `read_first` bytes from each, then
/// resets it (SO_LINGER 0). Returns its address; it serves `conns` connections.
fn start_resetting_upstream(
    conns: usize,
    read_first: usize,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        for _ in 0..conns {
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut got = vec![0u8; read_first];
            s.read_exact(&mut got).expect("read the first bytes");
            // Some bytes back first, so the reset also hits a tunnel moving data.
            let _ = s.write_all(b"partial answer");
            set_linger_zero(&s);
            drop(s);
        }
    });
    (addr, h)
}

#[test]
fn upstream_reset_closes_the_client_and_others_carry_on() {
    for_each_backend(|backend| {
        let (echo, proxy, target) = echo_and_proxy(backend);
        let mut steady = connect(proxy.addr);
        echo_check(&mut steady, b"before", 16);

        let (reset_addr, upstream) = start_resetting_upstream(4, 1000);
        *target.lock().unwrap() = reset_addr;
        let clients: Vec<TcpStream> = (0..4).map(|_| connect(proxy.addr)).collect();
        for (i, mut s) in clients.into_iter().enumerate() {
            // More than the upstream reads, so bytes are in flight at the reset.
            let _ = s.write_all(&Rng::new(i as u64).bytes(4000));
            let took = support::client::expect_server_closed(&mut s, "reset upstream");
            assert!(
                took < Duration::from_secs(5),
                "reset upstream #{i}: client closed only after {took:?}"
            );
            echo_check(&mut steady, &Rng::new(20 + i as u64).bytes(50_000), 4096);
        }
        upstream.join().expect("resetting upstream");
        proxy.wait_counters("reset tunnels closed", |c| c.open_conns == 1);

        *target.lock().unwrap() = echo.addr;
        let mut fresh = connect(proxy.addr);
        echo_check(&mut fresh, &Rng::new(9).bytes(1 << 20), 64 * 1024);
        drop((fresh, steady));
        assert_all_closed(&echo, &proxy);
        assert_eq!(proxy.stop().panics, 0);
        echo.stop();
    });
}

#[test]
fn client_reset_closes_the_upstream() {
    for_each_backend(|backend| {
        let (echo, proxy, _) = echo_and_proxy(backend);
        for i in 0..4u64 {
            let mut s = connect(proxy.addr);
            echo_check(&mut s, &Rng::new(i).bytes(100_000), 4096);
            // Leave bytes in flight, then reset.
            let _ = s.write_all(&Rng::new(i + 10).bytes(200_000));
            set_linger_zero(&s);
            drop(s);
        }
        assert_all_closed(&echo, &proxy);
        // And a normal tunnel still works.
        let mut s = connect(proxy.addr);
        echo_check(&mut s, b"still here", 4);
        s.shutdown(Shutdown::Write).unwrap();
        read_expect(&mut s, b"", 1);
        assert_eq!(read_to_eof(&mut s).expect("EOF"), b"");
        drop(s);
        assert_all_closed(&echo, &proxy);
        proxy.stop();
        echo.stop();
    });
}
