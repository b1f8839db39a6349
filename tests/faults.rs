//! Faults from outside: a client that resets mid-transfer (with the server in a child
//! process whose SIGPIPE is at its default, fatal disposition) and running out of file
//! descriptors (a child with `RLIMIT_NOFILE` = 64; and one whose two workers share a
//! Unix listener, with its descriptors used up on command).
//!
//! Each test body starts by checking whether it is the child (see `support::child`).

mod support;

use ringcore::{BackendKind, Conn, ConnInfo, Handler, Listeners, Serve, SocketOptions};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::child::{child_final, child_protocol, child_role, child_serve, spawn_child};
use support::client::{connect, connect_small_rcvbuf, echo_check, set_linger_zero, Rng};
use support::{base_builder, echo_factory, for_each_backend};

/// Child side of a fault test: apply the role's process settings, then serve echo.
fn run_child() -> bool {
    let Some((role, backend)) = child_role() else {
        return false;
    };
    match role.as_str() {
        "sigpipe" => {
            // SAFETY: restoring the default disposition; no handler runs.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            child_serve(backend, |b| b, echo_factory);
        }
        "emfile" => {
            set_nofile(NOFILE);
            child_serve(
                backend,
                |b| b.raise_nofile(false).emfile_backoff(EMFILE_BACKOFF),
                echo_factory,
            );
        }
        "emfile_shared" => serve_shared_hog(backend),
        other => panic!("unknown child role {other}"),
    }
    true
}

/// Lowers this process's soft `RLIMIT_NOFILE` to `n`.
fn set_nofile(n: libc::rlim_t) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit to fill, then to pass back.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

#[test]
fn client_reset_mid_transfer() {
    if run_child() {
        return;
    }
    for_each_backend(|backend| {
        let mut child = spawn_child("client_reset_mid_transfer", "sigpipe", backend);
        let addr = child.addr;
        let mut others: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
        // The victim never reads: its 4 KiB window stops the server's echo, so sends are
        // in flight and more are queued when the reset arrives. (1 MiB: no more than the
        // default output high-water mark, at which the server would stop reading.)
        let mut victim = connect_small_rcvbuf(addr, 4096);
        let big = Rng::new(21).bytes(1 << 20);
        std::io::Write::write_all(&mut victim, &big).expect("write to the victim");
        // The server reads until its output queue to the victim reaches the high-water
        // mark (1 MiB by default), then stops reading: wait for at least that much.
        child.wait_counters("the server to read the victim's bytes", |c| {
            c.get("bytes_in") >= 1 << 20
        });
        let before = child.counters();
        assert_eq!(before.get("closes"), 0);
        assert_eq!(before.get("open_conns"), 5);
        std::thread::scope(|sc| {
            // The others echo 2 MiB each while the victim resets.
            let workers: Vec<_> = others
                .iter_mut()
                .enumerate()
                .map(|(i, s)| {
                    sc.spawn(move || {
                        echo_check(s, &Rng::new(30 + i as u64).bytes(2 << 20), 16 * 1024)
                    })
                })
                .collect();
            set_linger_zero(&victim);
            drop(victim);
            for w in workers {
                w.join()
                    .expect("another connection was disturbed by the reset");
            }
        });
        let c = child.wait_counters("the reset connection to close", |c| c.get("closes") >= 1);
        assert_eq!(c.get("closes"), 1, "only the reset connection closed");
        assert_eq!(c.get("open_conns"), 4);
        // Still serving: the others and a new connection echo after the reset.
        for (i, s) in others.iter_mut().enumerate() {
            echo_check(s, &Rng::new(40 + i as u64).bytes(100_000), 16 * 1024);
        }
        let mut fresh = connect(addr);
        echo_check(&mut fresh, b"after the reset", 64);
        drop((others, fresh));
        child.wait_counters("all connections closed", |c| c.get("open_conns") == 0);
        let (last, status) = child.finish();
        eprintln!("reset child on {backend}: {last:?}");
        assert!(status.success(), "child server died (SIGPIPE?): {status}");
        assert_eq!(last.get("closes"), 6);
        assert_eq!(last.get("panics"), 0);
    });
}

/// The child's descriptor limit: a ring, an eventfd, a listener, stdio and pipes leave
/// room for some 50 connections.
const NOFILE: libc::rlim_t = 64;
const EMFILE_BACKOFF: Duration = Duration::from_millis(50);
const CLIENTS: usize = 100;

#[test]
fn emfile_pauses_accepting_then_recovers() {
    if run_child() {
        return;
    }
    for_each_backend(|backend| {
        let started = Instant::now();
        let mut child = spawn_child("emfile_pauses_accepting_then_recovers", "emfile", backend);
        let addr = child.addr;
        // More clients than the child has descriptors: the kernel completes every
        // handshake (backlog), the server can accept only some.
        let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
        let c = child.wait_counters("accepting to pause on EMFILE", |c| {
            c.get("emfile_pauses") > 0
        });
        let served = c.get("open_conns");
        assert!(
            served > 0 && served < CLIENTS as u64,
            "{served} of {CLIENTS} accepted"
        );
        assert!(c.get("accepts") < CLIENTS as u64);
        // Accepted connections are served while accepting is paused (the accept queue
        // is FIFO, so the first client is one of them).
        echo_check(&mut clients[0], b"served while paused", 64);
        // Free the descriptors: every new client is served again.
        drop(clients);
        let mut rng = Rng::new(5);
        for _ in 0..10 {
            let mut s = connect(addr);
            let n = rng.range(1, 50_000);
            echo_check(&mut s, &rng.bytes(n), 16 * 1024);
        }
        child.wait_counters("all connections closed", |c| c.get("open_conns") == 0);
        let elapsed = started.elapsed();
        let (last, status) = child.finish();
        eprintln!("emfile child on {backend} after {elapsed:?}: {last:?}");
        assert!(status.success(), "child server failed: {status}");
        let pauses = last.get("emfile_pauses");
        // Each pause lasts one back-off; a server that retried accept without waiting
        // would count thousands.
        let bound = 2 * (elapsed.as_millis() / EMFILE_BACKOFF.as_millis()) as u64 + 10;
        assert!(
            (1..=bound).contains(&pauses),
            "{pauses} EMFILE pauses in {elapsed:?} with a {EMFILE_BACKOFF:?} back-off (at most {bound})"
        );
        assert!(last.get("accepts") >= served + 10);
    });
}

/// The socket path of the shared-listener child started by the test process `pid`.
fn shared_path(pid: u32, backend: BackendKind) -> PathBuf {
    std::env::temp_dir().join(format!("ringcore-emfile-{pid}-{backend}.sock"))
}

/// On open: the worker's id on a line; then echo.
struct Who;

impl Handler for Who {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send(format!("{}\n", conn.worker_id()).as_bytes());
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

/// Reads the worker id line a [`Who`] connection starts with.
fn who(s: &mut UnixStream) -> usize {
    s.set_read_timeout(Some(support::DEADLINE)).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        s.read_exact(&mut b).expect("the worker id line");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap().trim().parse().unwrap()
}

fn unix_echo(s: &mut UnixStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}

/// Child side of `emfile_on_a_shared_listener_...`: two workers on one Unix listener,
/// an accept back-off longer than the test (a worker that paused stays paused), and
/// two commands: `hog` opens files until `EMFILE`, `free` closes them.
fn serve_shared_hog(backend: BackendKind) {
    set_nofile(256);
    let path = shared_path(std::os::unix::process::parent_id(), backend);
    let rt = base_builder(backend)
        .workers(2)
        .raise_nofile(false)
        .emfile_backoff(Duration::from_secs(3600))
        .build()
        .expect("runtime");
    let l = Listeners::bind(
        format!("unix:{}", path.display()),
        2,
        &SocketOptions::default(),
    )
    .expect("bind the shared Unix listener");
    let h = rt.handle();
    let server = std::thread::spawn(move || rt.serve(l, |_: &ConnInfo| Who));
    let mut hog: Vec<std::fs::File> = Vec::new();
    child_protocol(
        0,
        || h.metrics().total,
        |cmd| match cmd {
            "hog" => loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => hog.push(f),
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                        break Some(format!("HOGGED {}", hog.len()));
                    }
                    Err(e) => panic!("hog: {e}"),
                }
            },
            "free" => {
                let n = hog.len();
                hog.clear();
                Some(format!("FREED {n}"))
            }
            _ => None,
        },
    );
    h.shutdown();
    server.join().unwrap().expect("serve returns Ok");
    child_final(&h.metrics().total);
}

/// Two workers share a Unix listener (single-shot accepts: on epoll each worker's
/// epoll instance is an `EPOLLEXCLUSIVE` waiter on the socket, on io_uring each worker
/// has `SHARED_ACCEPT_DEPTH` exclusive accepts queued on it). With no descriptor left,
/// a connection wakes ONE worker, whose accept fails with `EMFILE`: it pauses (here for
/// an hour). It must leave the socket's wait queue (epoll: `unregister_exclusive`;
/// io_uring: its other accepts are cancelled); otherwise, once descriptors are free
/// again, the next connection's wake-up would go to the paused worker, which takes
/// nothing, and the other worker would never be woken: both connections would wait for
/// the hour. So: the queued connection and the next one are served by the other
/// worker, which goes on taking every new connection while the first stays paused.
#[test]
fn emfile_on_a_shared_listener_leaves_the_accept_wait_queue() {
    if run_child() {
        return;
    }
    for_each_backend(|backend| {
        let path = shared_path(std::process::id(), backend);
        let mut child = spawn_child(
            "emfile_on_a_shared_listener_leaves_the_accept_wait_queue",
            "emfile_shared",
            backend,
        );
        // Both workers accept. A worker whose accepts are not queued yet (its thread
        // is still starting) leaves every connection to the other, so connect (one at
        // a time, each closed again: the child has 256 fds) until both have answered,
        // within the test deadline rather than a fixed count.
        let mut seen = [0usize; 2];
        let mut warmed = 0u64;
        let deadline = std::time::Instant::now() + support::DEADLINE;
        while seen.contains(&0) {
            assert!(
                std::time::Instant::now() < deadline,
                "a worker never accepted: {seen:?}"
            );
            let mut s = UnixStream::connect(&path).expect("connect");
            seen[who(&mut s)] += 1;
            warmed += 1;
        }
        child.wait_counters("the warm-up connections closed", |c| {
            c.get("open_conns") == 0
        });
        let hogged = child.command("hog", "HOGGED ");
        // The woken worker fails to accept this one and pauses; the connection stays
        // queued (accept takes a descriptor before it dequeues).
        let mut first = UnixStream::connect(&path).expect("connect while out of fds");
        let c = child.wait_counters("a worker to pause on EMFILE", |c| {
            c.get("emfile_pauses") > 0
        });
        assert_eq!(c.get("emfile_pauses"), 1, "one connection woke one worker");
        assert_eq!(c.get("accepts"), warmed);
        child.command("free", "FREED ");
        let mut second = UnixStream::connect(&path).expect("connect");
        let other = who(&mut first);
        assert_eq!(
            who(&mut second),
            other,
            "both served by the worker that did not pause"
        );
        // Meanwhile (the paused worker's hour is not over) the other worker takes
        // every new connection.
        let mut later = Vec::new();
        for i in 0..6u8 {
            let mut s = UnixStream::connect(&path).expect("connect");
            assert_eq!(
                who(&mut s),
                other,
                "connection {i} while one worker is paused"
            );
            unix_echo(&mut s, &[i; 100]);
            later.push(s);
        }
        unix_echo(&mut first, b"first");
        unix_echo(&mut second, b"second");
        drop((first, second, later));
        child.wait_counters("all connections closed", |c| c.get("open_conns") == 0);
        let (last, status) = child.finish();
        eprintln!("shared emfile child on {backend} (hogged {hogged} fds): {last:?}");
        assert!(status.success(), "child server failed: {status}");
        assert_eq!(
            last.get("emfile_pauses"),
            1,
            "the other worker never paused"
        );
        assert_eq!(last.get("accepts"), warmed + 8);
        assert_eq!(last.get("panics"), 0);
    });
}
