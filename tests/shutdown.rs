//! Graceful shutdown: the listener closes, open connections get the drain time and are
//! then closed, `serve` returns `Ok`, and every descriptor is released.
//!
//! One `#[test]` in its own binary: the fd-leak check compares this process's whole fd
//! table, so no other test may open sockets meanwhile (and a listener port freed here
//! must not be reused by another test's server while we probe it).

mod support;

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::client::{connect, echo_check, wait_closed, Ended};
use support::{assert_no_fd_leak, fd_table, for_each_backend, start_echo, wait_until};

const DRAIN: Duration = Duration::from_millis(300);

#[test]
fn shutdown_drains_then_closes_without_fd_leak() {
    for_each_backend(|backend| {
        let before = fd_table();
        let server = start_echo(backend, |b| b.drain_timeout(DRAIN));
        let addr = server.addr;
        let mut idle = connect(addr);
        echo_check(&mut idle, b"hello", 64);
        server.wait_counters("the connection to be open", |c| c.open_conns == 1);

        let shutdown_at = Instant::now();
        server.begin_shutdown();
        // The listener closes: new connections are refused.
        wait_until(
            "new connections to be refused",
            || match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => true,
                // A SYN that raced the listener's close is reset: try again.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => false,
                Err(e) => panic!("connect during shutdown: expected refused, got {e}"),
                Ok(_) => false,
            },
        );
        // The open connection was left alone until the drain deadline, then closed.
        let ended = wait_closed(&mut idle);
        let after = shutdown_at.elapsed();
        assert!(
            matches!(ended, Ended::Eof(0) | Ended::Reset(0)),
            "{ended:?}"
        );
        assert!(
            after >= DRAIN,
            "closed {after:?} after shutdown, before the {DRAIN:?} drain deadline"
        );

        let c = server.join();
        assert_eq!(c.open_conns, 0);
        assert_eq!(c.closes, c.accepts, "every accepted connection was closed");
        drop(idle);
        assert_no_fd_leak(&before);
    });
}
