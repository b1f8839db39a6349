//! Closing a TLS connection while a file is still being read and encrypted in chunks
//! (`send_file` under TLS takes the userspace path, 64 KiB at a time): a graceful
//! close (after the response, or on drain) towards a client that stopped reading must
//! end within the close deadline or the drain timeout, never hang; a client that keeps
//! reading still gets every byte. Both backends.

mod support;

use ringcore::tls::TlsAcceptor;
use ringcore::{CloseReason, Conn, ConnInfo, Handler};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::client::connect_small_rcvbuf;
use support::tls::{bytes, handshake, hash, Client, Pki};
use support::{for_each_backend, start_server, wait_until};

/// Size of the file: far more than socket buffers and the TLS file window hold.
const FILE_LEN: usize = 32 << 20;

/// After the handshake: queue the whole file, then (if `close_after`) close at once
/// with a short close deadline; on drain, close.
struct FileThenClose {
    path: PathBuf,
    close_after: Option<Duration>,
    reasons: Arc<Mutex<Vec<String>>>,
}

impl Handler for FileThenClose {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let f = std::fs::File::open(&self.path).expect("open the test file");
        conn.send_file(f, 0, FILE_LEN as u64);
        if let Some(t) = self.close_after {
            conn.set_close_timeout(Some(t));
            conn.close();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        conn.close();
    }

    fn on_close(&mut self, reason: CloseReason) {
        self.reasons.lock().unwrap().push(format!("{reason:?}"));
    }
}

struct Fixture {
    pki: Pki,
    acc: TlsAcceptor,
    path: PathBuf,
    content: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut pki = Pki::new();
    let acc = pki.localhost_acceptor();
    let content = bytes(77, FILE_LEN);
    let path = pki.dir.join("big.bin");
    std::fs::write(&path, &content).unwrap();
    Fixture {
        pki,
        acc,
        path,
        content,
    }
}

/// A TLS client over a socket with a small receive buffer.
fn slow_client(addr: SocketAddr, pki: &Pki) -> Client {
    let tcp = connect_small_rcvbuf(addr, 4096);
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    handshake(tcp, pki.tls13(), "localhost")
}

fn start(
    backend: ringcore::BackendKind,
    fx: &Fixture,
    close_after: Option<Duration>,
    drain: Duration,
) -> (support::TestServer, Arc<Mutex<Vec<String>>>) {
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let (p, r) = (fx.path.clone(), reasons.clone());
    let server = start_server(
        backend,
        |b| b.drain_timeout(drain),
        fx.acc.wrap(move |_: &ConnInfo| FileThenClose {
            path: p.clone(),
            close_after,
            reasons: r.clone(),
        }),
    );
    (server, reasons)
}

/// close() right after send_file, with a 300 ms close deadline, towards a client that
/// never reads: the deadline must cut the connection although most of the file was
/// never even read from disk (before the fix the close waited for the whole file to be
/// encrypted, which needs the client to read: it hung until shutdown).
#[test]
fn close_deadline_cuts_a_file_download_still_being_encrypted() {
    for_each_backend(|backend| {
        let fx = fixture();
        let (server, reasons) = start(
            backend,
            &fx,
            Some(Duration::from_millis(300)),
            Duration::from_secs(30),
        );
        let _c = slow_client(server.addr, &fx.pki);
        wait_until("the close deadline cut the download", || {
            !reasons.lock().unwrap().is_empty()
        });
        let r = reasons.lock().unwrap()[0].clone();
        assert!(
            r.contains("TimedOut") && r.contains("close deadline"),
            "closed by the close deadline: {r}"
        );
        server.wait_counters("connection closed", |c| c.open_conns == 0);
        server.stop();
    });
}

/// The same close with a client that reads everything: every byte arrives, then a
/// clean end (`close_notify`), well within the deadline's reach because the client
/// keeps up (the deadline here is generous).
#[test]
fn a_reading_client_gets_the_whole_file_before_the_close() {
    for_each_backend(|backend| {
        let fx = fixture();
        let (server, reasons) = start(
            backend,
            &fx,
            Some(Duration::from_secs(30)),
            Duration::from_secs(30),
        );
        let mut c = slow_client(server.addr, &fx.pki);
        let mut got = Vec::with_capacity(FILE_LEN);
        c.read_to_end(&mut got).expect("clean end (close_notify)");
        assert_eq!(got.len(), FILE_LEN);
        assert_eq!(hash(&got), hash(&fx.content));
        server.wait_counters("connection closed", |c| c.open_conns == 0);
        assert_eq!(reasons.lock().unwrap().as_slice(), ["Local"]);
        server.stop();
    });
}

/// Drain while the file is being read and encrypted for a client that stopped
/// reading: the handler closes on drain, and the drain timeout (300 ms) must end the
/// connection and the server (`serve` returns), never hang.
#[test]
fn drain_cuts_a_file_download_still_being_encrypted() {
    for_each_backend(|backend| {
        let fx = fixture();
        let (server, reasons) = start(backend, &fx, None, Duration::from_millis(300));
        let _c = slow_client(server.addr, &fx.pki);
        // The download is under way: records are queued on the socket.
        server.wait_counters("file bytes queued", |c| c.bytes_out > 64 * 1024);
        server.begin_shutdown();
        let done = Arc::new(Mutex::new(None));
        let d2 = done.clone();
        let joiner = std::thread::spawn(move || {
            let c = server.join();
            *d2.lock().unwrap() = Some(c);
        });
        wait_until("serve returned after the drain timeout", || {
            done.lock().unwrap().is_some()
        });
        joiner.join().unwrap();
        let c = done.lock().unwrap().take().unwrap();
        assert_eq!(c.open_conns, 0);
        let r = reasons.lock().unwrap().clone();
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].contains("Shutdown") || r[0].contains("close deadline"),
            "cut by the drain timeout: {r:?}"
        );
    });
}
