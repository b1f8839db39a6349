//! Idle memory after traffic (issue 12 item 7): connections that did one round trip and
//! then idle hold no write-queue state, and the worker's pools shrink back to nothing
//! once they sat unused for a trim interval; with trimming off they keep what the
//! burst left. Asserted on the runtime's pool counters, not on RSS or timing.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::client::connect;
use support::{for_each_backend, start_echo};

const CONNS: usize = 200;

/// Opens `CONNS` connections and does one 128 B round trip on each, all writes before
/// any read, so the server sees them as one burst. Returns the idle connections.
fn burst(addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut socks: Vec<TcpStream> = (0..CONNS).map(|_| connect(addr)).collect();
    for (i, s) in socks.iter_mut().enumerate() {
        s.write_all(&[i as u8; 128]).unwrap();
    }
    for (i, s) in socks.iter_mut().enumerate() {
        let mut got = [0u8; 128];
        s.read_exact(&mut got).unwrap();
        assert!(
            got.iter().all(|&b| b == i as u8),
            "connection {i} got the wrong bytes"
        );
    }
    socks
}

#[test]
fn pools_shrink_back_after_a_burst() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.pool_trim(Some(Duration::from_millis(100))));
        let socks = burst(server.addr);
        let c = server.wait_counters("every round trip counted", |c| {
            c.bytes_out == (CONNS * 128) as u64
        });
        assert_eq!(c.open_conns, CONNS as u64);
        // The burst put send headers, queue states and buffers into the pool; two quiet
        // trim intervals free all of it while the connections stay open and idle.
        let c = server.wait_counters("the pools to empty", |c| {
            c.pool_entries == 0 && c.pool_trimmed > 0
        });
        assert_eq!(c.open_conns, CONNS as u64, "idle connections stay open");
        // Traffic after the trim works and refills the pool as needed.
        for (i, mut s) in socks.into_iter().enumerate().take(10) {
            s.write_all(&[i as u8; 64]).unwrap();
            let mut got = [0u8; 64];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, [i as u8; 64]);
        }
        server.stop();
    });
}

#[test]
fn pools_keep_what_a_burst_left_with_trimming_off() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.pool_trim(None));
        let _socks = burst(server.addr);
        let c = server.wait_counters("every round trip counted", |c| {
            c.bytes_out == (CONNS * 128) as u64 && c.pool_entries > 0
        });
        // Nothing can shrink the pools: the on/off option is what the test above tests.
        assert_eq!(c.pool_trimmed, 0);
        server.stop();
    });
}
