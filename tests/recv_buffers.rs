//! Receive bundles (`recv_bundle`), incremental buffer consumption (`buf_inc`) and
//! `SEND_ZC` (`send_zc_threshold`): every byte intact and in order with each on, on both
//! backends (epoll ignores the options: the same scenarios must pass there too). Tiny
//! buffers force bundles to span many buffers and incremental buffers to be shared by
//! many connections; a tiny pool forces `ENOBUFS` and its re-arm.

mod support;

use ringcore::runtime::kernel_version;
use ringcore::{BackendKind, Builder, Conn, ConnInfo, Counters, Handler, SocketOptions};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::client::{
    connect, connect_small_rcvbuf, echo_check, echo_many, read_to_eof, set_linger_zero, Rng,
};
use support::{for_each_backend, start_echo, start_server_opts, TestServer};

fn kernel_at_least(want: (u32, u32)) -> bool {
    kernel_version().is_some_and(|v| v >= want)
}

/// One connection: payloads from 1 B to 1 MiB, then 50 concurrent connections.
fn echo_mix(server: &TestServer, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut s = connect(server.addr);
    let mut sent = 0u64;
    for n in [1, 63, 64, 65, 200, 4095, 4097, 65_537, 1 << 20] {
        let payload = rng.bytes(n);
        echo_check(&mut s, &payload, 64 * 1024);
        sent += n as u64;
    }
    drop(s);
    sent += echo_many(server.addr, 50, 5, 4, 8 * 1024, seed, || {});
    sent
}

fn finish(server: TestServer, sent: u64) -> Counters {
    let c = server.wait_counters("every connection closed", |c| c.open_conns == 0);
    assert_eq!(c.bytes_in, sent, "server received every byte once");
    assert_eq!(c.bytes_out, sent, "server sent every byte once");
    assert_eq!(server.stop().panics, 0);
    c
}

/// Bundles over 64-byte buffers: a receive spans many buffers, published out of id
/// order once buffers come back in a different order than they went out.
#[test]
fn bundles_keep_order_across_buffers() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| b.buf_size(64).buf_count(512).recv_bundle(true));
        let sent = echo_mix(&server, 7);
        let c = finish(server, sent);
        eprintln!("{backend}: {} bundled receives", c.recv_bundles);
        if backend == BackendKind::Uring && kernel_at_least((6, 10)) {
            assert!(c.recv_bundles > 0, "no receive spanned two buffers");
        } else {
            assert_eq!(c.recv_bundles, 0);
        }
    });
}

/// Incremental consumption: small messages from 100 connections share two buffers.
/// With the pool holding twice the bytes that can be in flight at once, no receive
/// may find it empty (whole-buffer consumption needs a buffer per message and runs dry
/// at once: checked below with the option off).
#[test]
fn incremental_buffers_hold_many_small_messages() {
    for_each_backend(|backend| {
        let tiny = |b: Builder| b.buf_size(16 * 1024).buf_count(2);
        let server = start_echo(backend, |b| tiny(b).buf_inc(true));
        let sent = echo_many(server.addr, 100, 4, 5, 100, 11, || {});
        let c = finish(server, sent);
        eprintln!("{backend}: incremental: {} ENOBUFS", c.enobufs);
        if backend == BackendKind::Uring && kernel_at_least((6, 12)) {
            assert_eq!(
                c.enobufs, 0,
                "two 16 KiB buffers ran dry on 10 KB in flight"
            );
        }
        // The same load without the option still loses nothing (ENOBUFS re-arms).
        let server = start_echo(backend, tiny);
        let sent = echo_many(server.addr, 100, 4, 5, 100, 12, || {});
        let c = finish(server, sent);
        eprintln!("{backend}: whole buffers: {} ENOBUFS", c.enobufs);
    });
}

/// Both on, over a pool small enough for ENOBUFS: partially consumed buffers at the
/// head of bundles, the pool running dry and receives re-armed, nothing lost.
#[test]
fn bundles_and_incremental_buffers_under_enobufs() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| {
            b.buf_size(256).buf_count(4).recv_bundle(true).buf_inc(true)
        });
        let sent = echo_mix(&server, 23);
        let c = finish(server, sent);
        eprintln!(
            "{backend}: {} bundled receives, {} ENOBUFS",
            c.recv_bundles, c.enobufs
        );
        if backend == BackendKind::Uring {
            // 1 KiB of buffers against MiB transfers: the pool runs dry, receives are
            // re-armed, and (checked by `finish`) nothing was lost.
            assert!(
                c.enobufs > 0,
                "the pool never ran dry: ENOBUFS re-arm untested"
            );
        }
    });
}

/// Bundles and incremental buffers under injected faults (delayed and reordered
/// completions, short sends, ENOBUFS): a buffer goes back to the kernel only once no
/// delayed completion still reads it.
#[test]
fn bundles_and_incremental_buffers_under_faults() {
    use ringcore_runtime::fault::FaultPlan;
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| {
            b.buf_size(128)
                .buf_count(64)
                .recv_bundle(true)
                .buf_inc(true)
                .fault_injection(FaultPlan::new(5))
        });
        let sent = echo_mix(&server, 29);
        finish(server, sent);
    });
}

/// SEND_ZC from 1 byte on: echoed bytes intact (on loopback only each connection's
/// first send goes zero-copy: its notification says the kernel copied).
#[test]
fn send_zc_echo_is_intact() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| {
            b.send_zc_threshold(Some(1)).send_zc_local(true)
        });
        let sent = echo_mix(&server, 31);
        let c = finish(server, sent);
        eprintln!(
            "{backend}: {} SEND_ZC sends, {} copied by the kernel",
            c.send_zc, c.send_zc_copied
        );
        if backend == BackendKind::Uring && kernel_at_least((6, 1)) {
            assert!(c.send_zc > 0, "no send went out as SEND_ZC");
        } else {
            assert_eq!(c.send_zc, 0);
        }
    });
}

/// Peers that reset while large zero-copy sends are in flight (they never read): every
/// connection closes, and the server keeps serving.
#[test]
fn send_zc_peer_reset_mid_send() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| {
            b.send_zc_threshold(Some(1024)).send_zc_local(true)
        });
        let mut rng = Rng::new(41);
        let payload = rng.bytes(2 << 20);
        let mut clients = Vec::new();
        for _ in 0..20 {
            let mut s = connect(server.addr);
            s.set_nonblocking(true).unwrap();
            // Write until everything between us and the server is full: the server
            // stopped reading (its output backed up) with a send in flight.
            let mut wrote = 0usize;
            while wrote < 64 << 20 {
                match s.write(&payload) {
                    Ok(n) => wrote += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            clients.push(s);
        }
        // (On loopback a zero-copy send's notification may wait until the peer reads,
        // so `bytes_out`, counted at the notification, can stay 0 here.)
        server.wait_counters("the server to read from every connection", |c| {
            c.open_conns == 20 && c.bytes_in >= 20 * 64 * 1024
        });
        for s in clients {
            set_linger_zero(&s);
        }
        server.wait_counters("every reset connection closed", |c| c.open_conns == 0);
        let mut s = connect(server.addr);
        echo_check(&mut s, &rng.bytes(100_000), 64 * 1024);
        drop(s);
        server.wait_counters("the last connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

/// Clients that write and never read while zero-copy sends are in flight, then a
/// shutdown: the drain deadline aborts them and `serve` returns. When a zero-copy
/// send completed only with its notification, the close waited for a notification
/// that the send queue of a peer that never reads held back, and `serve` never
/// returned (soak_abuse seed 11); now the send's result comes at once and only the
/// memory waits (zchold.rs).
#[test]
fn send_zc_to_peers_that_never_read_does_not_hold_the_drain() {
    for_each_backend(|backend| {
        let server = start_echo(backend, |b| {
            b.send_zc_threshold(Some(1024))
                .send_zc_local(true)
                .drain_timeout(std::time::Duration::from_millis(200))
        });
        let mut rng = Rng::new(43);
        let payload = rng.bytes(1 << 20);
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut s = connect(server.addr);
            s.set_nonblocking(true).unwrap();
            let mut wrote = 0usize;
            while wrote < 64 << 20 {
                match s.write(&payload) {
                    Ok(n) => wrote += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            clients.push(s);
        }
        server.wait_counters("the server to read from every connection", |c| {
            c.open_conns == 4 && c.bytes_in >= 4 * 64 * 1024
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(server.stop());
        });
        let c = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("{backend}: serve did not return 30 s after a shutdown with a 200 ms drain")
            });
        assert_eq!(c.panics, 0);
        assert_eq!(c.open_conns, 0, "{backend}: connections left open");
        drop(clients);
    });
}

/// Echo, except for three commands (each a whole input): `linger` queues `ZC_BIG`
/// bytes as one send and closes with a 100 ms close deadline; `hold` queues them with
/// the output limit off (so reading goes on); `abort` aborts the connection.
struct ZcAbort;

const ZC_BIG: usize = 4 << 20;

impl Handler for ZcAbort {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        match data {
            b"linger" => {
                conn.set_close_timeout(Some(Duration::from_millis(100)));
                conn.send_owned(vec![0x5a; ZC_BIG]);
                conn.close();
            }
            b"hold" => {
                conn.set_output_limit(0);
                conn.send_owned(vec![0x5a; ZC_BIG]);
            }
            b"abort" => conn.abort(),
            _ => conn.send(data),
        }
        data.len()
    }
}

/// A server of [`ZcAbort`] whose first send of 64 KiB or more per socket goes out as
/// `SEND_ZC` (io_uring; local peers included), with a 2 MiB socket send buffer, so
/// that most of `ZC_BIG` waits in the server's socket for a client that reads nothing;
/// and that client (16 KiB receive buffer), connected, having sent `command`.
fn zc_abort_start(backend: BackendKind, command: &[u8]) -> (TestServer, TcpStream) {
    let server = start_server_opts(
        backend,
        |b| b.send_zc_threshold(Some(64 * 1024)).send_zc_local(true),
        &SocketOptions::default().send_buffer(1 << 20),
        |_: &ConnInfo| ZcAbort,
    );
    let mut s = connect_small_rcvbuf(server.addr, 16 * 1024);
    s.write_all(command).unwrap();
    (server, s)
}

/// After an aborted connection closed: on io_uring its one zero-copy send's
/// notification comes (on loopback every notification reports a copy), which is what
/// releases the memory the send read; then a new connection's echo is intact and the
/// server stops without waiting out a drain.
fn zc_abort_finish(server: TestServer, backend: BackendKind, seed: u64) {
    if backend == BackendKind::Uring && kernel_at_least((6, 1)) {
        let c = server.wait_counters("the zero-copy notification, after the close", |c| {
            c.send_zc_copied >= 1
        });
        assert_eq!((c.send_zc, c.send_zc_copied), (1, 1), "{backend}");
    } else {
        assert_eq!(server.counters().send_zc, 0);
    }
    let mut s = connect(server.addr);
    echo_check(&mut s, &Rng::new(seed).bytes(200_000), 64 * 1024);
    drop(s);
    server.wait_counters("the echo connection closed", |c| c.open_conns == 0);
    let c = server.stop();
    assert_eq!((c.panics, c.drain_aborted), (0, 0), "{backend}");
}

/// A close deadline aborts a connection whose last send (`ZC_BIG` bytes, zero-copy,
/// linked to the close) is still in flight, waiting for room a client that never
/// reads will not make: the connection closes while the client has read nothing, the
/// send's notification comes after the close, and the server keeps serving. Before
/// zero-copy results came at once this needed a special disconnect (`connect
/// (AF_UNSPEC)`) on abort; the abort now takes the same path as for copied sends.
#[test]
fn send_zc_in_flight_aborted_at_the_close_deadline() {
    for_each_backend(|backend| {
        let (server, s) = zc_abort_start(backend, b"linger");
        let c = server.wait_counters("the connection aborted, its client reading nothing", |c| {
            c.accepts == 1 && c.open_conns == 0
        });
        assert_eq!(c.timeouts, 1, "{backend}: closed by its close deadline");
        zc_abort_finish(server, backend, 61);
        drop(s);
    });
}

/// An abort while a zero-copy send's memory is still held for its notification (the
/// send's result came; most of its bytes wait in the server's socket for a client
/// that reads nothing) and the rest of the queue is in flight as a copied send: the
/// notification is outstanding before the abort, the connection closes after it with
/// the client still reading nothing, and then the notification comes.
#[test]
fn send_zc_memory_held_across_an_abort() {
    for_each_backend(|backend| {
        let (server, mut s) = zc_abort_start(backend, b"hold");
        let c = server.wait_counters("the first reply bytes taken by the kernel", |c| {
            c.bytes_out > 0
        });
        if backend == BackendKind::Uring && kernel_at_least((6, 1)) {
            // Sent zero-copy; its pages are still in the socket: no notification yet.
            assert_eq!((c.send_zc, c.send_zc_copied), (1, 0), "{backend}");
        }
        assert_eq!(c.open_conns, 1);
        s.write_all(b"abort").unwrap();
        server.wait_counters(
            "the aborted connection closed, its client reading nothing",
            |c| c.open_conns == 0,
        );
        zc_abort_finish(server, backend, 67);
        drop(s);
    });
}

/// Answers its first input with `ZC_REPLY` bytes of [`Rng`] output (seed 57), then
/// closes: the reply is the connection's last send, linked to its close.
struct ReplyAndClose;

const ZC_REPLY: usize = 128 * 1024;

impl Handler for ReplyAndClose {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send_owned(Rng::new(57).bytes(ZC_REPLY));
        conn.close();
        data.len()
    }
}

/// A large `SEND_ZC` reply (threshold set through the `Builder`) to a client that reads
/// nothing for a while, with a small receive buffer: the server's write queue advances
/// as soon as the kernel took the bytes, so the connection finishes closing while the
/// client still has read nothing; then every byte arrives, in order, before the EOF.
///
/// Before the fix the send's completion was held back until its zero-copy notification,
/// which the kernel posts only once the unread bytes left the socket: the connection
/// stayed open until the client read (the wait below timed out). And zero-copy bytes
/// copied into a small receive buffer shrink the window it advertises below one
/// segment, so a reply sent zero-copy on loopback crawled on window probes: the
/// reading part checks that sends after the first notification said "copied" go with
/// copies.
#[test]
fn send_zc_reply_leaves_before_the_client_reads() {
    for_each_backend(|backend| {
        // The socket takes the whole reply at once (its send buffer is set, not tuned).
        let opts = SocketOptions::default().send_buffer(1 << 20);
        let server = start_server_opts(
            backend,
            |b| b.send_zc_threshold(Some(16 * 1024)).send_zc_local(true),
            &opts,
            |_: &ConnInfo| ReplyAndClose,
        );
        let mut s = connect_small_rcvbuf(server.addr, 16 * 1024);
        s.write_all(b"go").unwrap();
        // The client has read nothing yet: the reply waits in the sockets.
        let c = server.wait_counters("the connection closed with its reply unread", |c| {
            c.accepts == 1 && c.open_conns == 0
        });
        assert_eq!(c.bytes_out, ZC_REPLY as u64);
        if backend == BackendKind::Uring && kernel_at_least((6, 1)) {
            assert_eq!(c.send_zc, 1, "the reply went out as SEND_ZC");
        } else {
            assert_eq!(c.send_zc, 0);
        }
        let got = read_to_eof(&mut s)
            .unwrap_or_else(|(got, e)| panic!("{backend}: read {} bytes, then {e}", got.len()));
        assert!(
            got == Rng::new(57).bytes(ZC_REPLY),
            "{backend}: reply corrupted"
        );
        assert_eq!(server.stop().panics, 0);
    });
}

/// Sends `ZC_PIECES` pieces of `ZC_PIECE` bytes, each once the previous one left (so
/// each is a send of its own), then closes.
struct Pieces(usize);

const ZC_PIECE: usize = 32 * 1024;
const ZC_PIECES: usize = 32;

impl Pieces {
    fn next(&mut self, conn: &mut Conn<'_>) {
        if self.0 == ZC_PIECES {
            return conn.close();
        }
        conn.send_owned(vec![self.0 as u8; ZC_PIECE]);
        self.0 += 1;
    }
}

impl Handler for Pieces {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.0 == 0 {
            self.next(conn);
        }
        data.len()
    }

    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.next(conn);
    }
}

/// Only a connection's first send at or above the threshold goes out as `SEND_ZC`
/// until its notification came; on loopback that notification says the kernel copied
/// the bytes anyway (the receiver gets a copy), so every later send is copied. Sending
/// zero-copy regardless (before the fix) made a receiver with a small buffer advertise
/// a window below one segment (its copies of zero-copy pages are charged whole pages),
/// and the transfer crawled on window probes (the never-reading pipelining test of
/// http_bounds.rs with `RINGCORE_SEND_ZC`).
#[test]
fn send_zc_stops_once_the_kernel_reports_copies() {
    for_each_backend(|backend| {
        let server = start_server_opts(
            backend,
            |b| b.send_zc_threshold(Some(16 * 1024)).send_zc_local(true),
            &SocketOptions::default(),
            |_: &ConnInfo| Pieces(0),
        );
        let mut s = connect(server.addr);
        s.write_all(b"go").unwrap();
        let got = read_to_eof(&mut s)
            .unwrap_or_else(|(got, e)| panic!("{backend}: read {} bytes, then {e}", got.len()));
        assert_eq!(got.len(), ZC_PIECE * ZC_PIECES, "{backend}");
        for (i, piece) in got.chunks(ZC_PIECE).enumerate() {
            assert!(piece.iter().all(|&b| b == i as u8), "{backend}: piece {i}");
        }
        let c = server.wait_counters("the connection closed", |c| c.open_conns == 0);
        if backend == BackendKind::Uring && kernel_at_least((6, 1)) {
            assert_eq!(c.send_zc, 1, "only the probe went out as SEND_ZC");
            assert_eq!(c.send_zc_copied, 1, "loopback copies zero-copy sends");
        } else {
            assert_eq!(c.send_zc, 0);
        }
        assert_eq!(server.stop().panics, 0);
    });
}

/// Without `send_zc_local`, a loopback peer is never sent zero-copy: the kernel would
/// copy anyway, and one zero-copy send into a small receive buffer leaves its window
/// below one segment for the rest of the connection (before the fix, 32 sends here went
/// zero-copy).
#[test]
fn send_zc_skips_local_peers() {
    for_each_backend(|backend| {
        let server = start_server_opts(
            backend,
            |b| b.send_zc_threshold(Some(16 * 1024)),
            &SocketOptions::default(),
            |_: &ConnInfo| Pieces(0),
        );
        let mut s = connect_small_rcvbuf(server.addr, 4096);
        s.write_all(b"go").unwrap();
        let got = read_to_eof(&mut s)
            .unwrap_or_else(|(got, e)| panic!("{backend}: read {} bytes, then {e}", got.len()));
        assert_eq!(got.len(), ZC_PIECE * ZC_PIECES, "{backend}");
        let c = server.wait_counters("the connection closed", |c| c.open_conns == 0);
        assert_eq!((c.send_zc, c.send_zc_copied), (0, 0), "{backend}");
        assert_eq!(server.stop().panics, 0);
    });
}
