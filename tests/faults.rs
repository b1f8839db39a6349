//! Faults from outside: a client that resets mid-transfer (with the server in a child
//! process whose SIGPIPE is at its default, fatal disposition) and running out of file
//! descriptors (a child with `RLIMIT_NOFILE` = 64).
//!
//! Each test body starts by checking whether it is the child (see `support::child`).

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::child::{child_role, child_serve, spawn_child};
use support::client::{connect, connect_small_rcvbuf, echo_check, set_linger_zero, Rng};
use support::{echo_factory, for_each_backend};

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
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `rl` is a valid rlimit to fill, then to pass back.
            unsafe {
                assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
                rl.rlim_cur = NOFILE;
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
            }
            child_serve(
                backend,
                |b| b.raise_nofile(false).emfile_backoff(EMFILE_BACKOFF),
                echo_factory,
            );
        }
        other => panic!("unknown child role {other}"),
    }
    true
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
