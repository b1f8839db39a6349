//! Flow under TLS: output backpressure with a client that does not read (memory stays
//! bounded), a handler that pauses reading, files leaving through the userspace path,
//! and the client side (`TlsConnector` on `Runtime::connect`).

mod support;

use ringcore::tls::TlsConnector;
use ringcore::{CloseReason, Conn, ConnInfo, Connect, ConnectOptions, Handler};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::tls::{bytes, hash, tls_connect, Pki};
use support::{base_builder, for_each_backend, start_server, wait_until};

const TOTAL: usize = 24 << 20;
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct FireStats {
    max_queued: AtomicU64,
    backed_up: AtomicU64,
    sent: AtomicU64,
}

/// Sends `TOTAL` bytes as fast as backpressure allows.
struct Firehose {
    data: Arc<Vec<u8>>,
    off: usize,
    stats: Arc<FireStats>,
}

impl Firehose {
    fn fill(&mut self, conn: &mut Conn<'_>) {
        while self.off < self.data.len() {
            if conn.is_backed_up() {
                self.stats.backed_up.fetch_add(1, Relaxed);
                return;
            }
            let end = (self.off + CHUNK).min(self.data.len());
            conn.send(&self.data[self.off..end]);
            self.off = end;
            self.stats.sent.store(end as u64, Relaxed);
            self.stats
                .max_queued
                .fetch_max(conn.queued_bytes() as u64, Relaxed);
        }
        conn.close();
    }
}

impl Handler for Firehose {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.fill(conn);
    }
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.fill(conn);
    }
}

#[test]
fn client_that_does_not_read_keeps_memory_bounded() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let data = Arc::new(bytes(3, TOTAL));
        let stats = Arc::new(FireStats::default());
        let (d, s) = (data.clone(), stats.clone());
        let factory = acc.wrap(move |_: &ConnInfo| Firehose {
            data: d.clone(),
            off: 0,
            stats: s.clone(),
        });
        let server = start_server(backend, |b| b, factory);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        // Not reading: the server must stop at the high-water mark.
        wait_until("the server backed up", || stats.backed_up.load(Relaxed) > 0);
        let sent = stats.sent.load(Relaxed) as usize;
        assert!(
            sent < TOTAL / 2,
            "backpressure stopped the producer: {sent}"
        );
        let max = stats.max_queued.load(Relaxed) as usize;
        // High-water mark (1 MiB) + one chunk + TLS record overhead.
        assert!(
            max <= (1 << 20) + 2 * CHUNK,
            "queued at most ~1 MiB, saw {max}"
        );
        let mut got = Vec::with_capacity(TOTAL);
        c.read_to_end(&mut got).expect("clean end (close_notify)");
        assert_eq!(got.len(), TOTAL);
        assert_eq!(hash(&got), hash(&data), "every byte, in order");
        server.stop();
    });
}

#[derive(Default)]
struct PauseStats {
    while_paused: AtomicU64,
    pauses: AtomicU64,
    echoed: AtomicU64,
}

/// Echo that pauses reading after each delivery and resumes on a timer.
struct Pauser {
    paused: bool,
    stats: Arc<PauseStats>,
}

impl Handler for Pauser {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        if self.paused {
            self.stats
                .while_paused
                .fetch_add(data.len() as u64, Relaxed);
        }
        conn.send(data);
        self.stats.echoed.fetch_add(data.len() as u64, Relaxed);
        self.paused = true;
        self.stats.pauses.fetch_add(1, Relaxed);
        conn.pause_reading();
        let at = conn.now() + Duration::from_millis(2);
        conn.set_timer(Some(at));
        data.len()
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        self.paused = false;
        conn.resume_reading();
    }
}

#[test]
fn paused_inner_handler_gets_nothing_until_it_resumes() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let stats = Arc::new(PauseStats::default());
        let s = stats.clone();
        let factory = acc.wrap(move |_: &ConnInfo| Pauser {
            paused: false,
            stats: s.clone(),
        });
        let server = start_server(backend, |b| b, factory);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        let payload = bytes(9, 2 << 20);
        support::tls::echo_check(&mut c, &payload);
        assert_eq!(
            stats.while_paused.load(Relaxed),
            0,
            "no on_data while paused"
        );
        assert!(stats.pauses.load(Relaxed) > 1);
        assert_eq!(stats.echoed.load(Relaxed), payload.len() as u64);
        server.stop();
    });
}

/// Sends "head", a file region, "tail", then closes.
struct FileSender {
    path: std::path::PathBuf,
    offset: u64,
    len: u64,
}

impl Handler for FileSender {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send(b"head");
        let f = std::fs::File::open(&self.path).unwrap();
        conn.send_file(f, self.offset, self.len);
        conn.send(b"tail");
        conn.close();
    }
    fn on_data(&mut self, _: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

#[test]
fn send_file_goes_through_the_userspace_path() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let path = pki.dir.join("file.bin");
        let content = bytes(5, (3 << 20) + 11);
        std::fs::write(&path, &content).unwrap();
        let (offset, len) = (7u64, content.len() as u64 - 7);
        let p = path.clone();
        let factory = acc.wrap(move |_: &ConnInfo| FileSender {
            path: p.clone(),
            offset,
            len,
        });
        let server = start_server(backend, |b| b, factory);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("clean end (close_notify)");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&content[offset as usize..]);
        want.extend_from_slice(b"tail");
        assert_eq!(got.len(), want.len());
        assert_eq!(hash(&got), hash(&want));
        server.stop();

        // A file shorter than promised aborts the connection (no close_notify).
        let p = path.clone();
        let factory = acc.wrap(move |_: &ConnInfo| FileSender {
            path: p.clone(),
            offset: 0,
            len: content.len() as u64 + 100,
        });
        let server = start_server(backend, |b| b, factory);
        let cfg = pki.tls13();
        let mut c = tls_connect(server.addr, cfg, "localhost");
        let mut got = Vec::new();
        let r = c.read_to_end(&mut got);
        assert!(r.is_err(), "no clean end for a short file: {r:?}");
        server.stop();
    });
}

/// Server side: echo.
struct Echo;
impl Handler for Echo {
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

/// What a client saw: bytes, ALPN, close reason.
type Outcome = Arc<Mutex<Option<(Vec<u8>, Option<String>, String)>>>;

/// Client side: sends `data`, reads the echo back, closes.
struct EchoClient {
    data: Arc<Vec<u8>>,
    got: Vec<u8>,
    result: Outcome,
    alpn: Option<String>,
}

impl Handler for EchoClient {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let info = conn.tls().expect("under TLS");
        self.alpn = info
            .alpn
            .as_ref()
            .map(|a| String::from_utf8_lossy(a).into());
        conn.send(&self.data);
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.data.len() {
            conn.close();
        }
        data.len()
    }
    fn on_close(&mut self, reason: CloseReason) {
        let got = std::mem::take(&mut self.got);
        *self.result.lock().unwrap() = Some((got, self.alpn.take(), format!("{reason:?}")));
    }
}

#[test]
fn connector_speaks_tls_to_a_server() {
    for_each_backend(|backend| {
        let mut pki = Pki::new();
        let acc = pki.localhost_acceptor();
        let server = start_server(backend, |b| b, acc.wrap(|_: &ConnInfo| Echo));
        let data = Arc::new(bytes(4, 1 << 20));
        let result = Arc::new(Mutex::new(None));
        let connector =
            TlsConnector::from_pem_roots(&pki.ca_pem, "localhost", &[b"http/1.1"]).unwrap();
        let rt = base_builder(backend).build().unwrap();
        let (d, r) = (data.clone(), result.clone());
        let factory = connector.wrap(move |_: &ConnInfo| EchoClient {
            data: d.clone(),
            got: Vec::new(),
            result: r.clone(),
            alpn: None,
        });
        rt.connect(server.addr, 1, ConnectOptions::default(), factory)
            .expect("client runtime");
        let (got, alpn, reason) = result.lock().unwrap().take().expect("closed");
        assert_eq!(reason, "Local");
        assert_eq!(alpn.as_deref(), Some("http/1.1"));
        assert_eq!(got.len(), data.len());
        assert_eq!(hash(&got), hash(&data));
        assert_eq!(connector.stats().handshakes, 1);

        // The wrong name: the connector refuses the server's certificate.
        let wrong = TlsConnector::from_pem_roots(&pki.ca_pem, "other.test", &[]).unwrap();
        let result = Arc::new(Mutex::new(None));
        let (d, r) = (data.clone(), result.clone());
        let rt = base_builder(backend).build().unwrap();
        let factory = wrong.wrap(move |_: &ConnInfo| EchoClient {
            data: d.clone(),
            got: Vec::new(),
            result: r.clone(),
            alpn: None,
        });
        rt.connect(server.addr, 1, ConnectOptions::default(), factory)
            .expect("client runtime");
        let (got, _, reason) = result.lock().unwrap().take().expect("closed");
        assert!(got.is_empty());
        assert!(reason.contains("not valid for name"), "{reason}");
        assert_eq!(wrong.stats().handshake_errors, 1);
        server.stop();
    });
}

#[test]
fn system_roots_or_a_clear_error() {
    match TlsConnector::system_roots("localhost", &[]) {
        Ok(_) => {}
        Err(e) => assert!(e.to_string().contains("ca-certificates"), "{e}"),
    }
    let e = TlsConnector::from_pem_roots("/nonexistent/ca.pem", "localhost", &[])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
