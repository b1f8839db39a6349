//! HTTP/1.1 hardening over real sockets: the `Host` rules of RFC 9112 section 3.2 and
//! over-long methods, lingering close after an error (capped), bounded request-body
//! memory (streamed bodies, the buffered cap, the body-read deadline) and bounded
//! output for a client that pipelines and never reads.

mod support;

use ringcore::http::{BodyHandler, HttpConn, Limits, Request, Response, Router};
use ringcore::{BackendKind, Conn, ConnInfo, Handler};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::client::{connect, connect_small_rcvbuf, Rng};
use support::http::{get, pipeline_garbage_then_junk, HttpClient};
use support::{for_each_backend, start_server, TestServer};

fn plaintext(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain")
        .set_body(b"Hello, World!");
}

fn echo(req: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(req.body());
}

/// A streamed upload: answers `<bytes> <fnv-1a hash>` of the body.
struct Upload {
    len: u64,
    hash: u64,
}

impl BodyHandler for Upload {
    fn on_body(&mut self, piece: &[u8]) {
        self.len += piece.len() as u64;
        self.hash = fnv(self.hash, piece);
    }
    fn on_end(&mut self, res: &mut Response) {
        let text = format!("{} {:x}", self.len, self.hash);
        res.set_content_type("text/plain").set_body(text.as_bytes());
    }
}

fn upload(_: &Request<'_>) -> Box<dyn BodyHandler> {
    Box::new(Upload { len: 0, hash: FNV0 })
}

const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(h: u64, b: &[u8]) -> u64 {
    b.iter()
        .fold(h, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
}

fn router() -> Router {
    Router::new()
        .get("/plaintext", plaintext)
        .post("/echo", echo)
        .stream("POST", "/upload", upload)
}

fn start(backend: BackendKind, limits: Limits) -> TestServer {
    start_server(backend, |b| b, HttpConn::factory(router(), limits))
}

/// Sends `req` alone and returns the status; a codec error (not 405) must say
/// `Connection: close` and close.
fn status_of(server: &TestServer, name: &str, req: &[u8]) -> (u16, bool) {
    let mut c = HttpClient::connect(server.addr);
    c.send_lenient(req);
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    if r.status >= 400 && r.status != 405 {
        assert!(r.says_close(), "{name}: an error says Connection: close");
        c.expect_closed();
    }
    (r.status, r.says_close())
}

#[test]
fn host_is_required_once_on_http11_and_long_methods_are_not_405() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default());
        let cases: &[(&str, &[u8], u16)] = &[
            (
                "HTTP/1.1 without Host",
                b"GET /plaintext HTTP/1.1\r\n\r\n",
                400,
            ),
            (
                "two Host fields",
                b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                400,
            ),
            (
                "two equal Host fields",
                b"GET /plaintext HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
                400,
            ),
            (
                "HTTP/1.0 with two Host fields",
                b"GET /plaintext HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
                400,
            ),
            (
                "HTTP/1.0 without Host",
                b"GET /plaintext HTTP/1.0\r\n\r\n",
                200,
            ),
            (
                "HTTP/1.1 with Host",
                b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
                200,
            ),
            // A well-formed method this route lacks: 405 (with Allow).
            ("unknown method", &get("BREW", "/plaintext", ""), 405),
        ];
        for (name, req, want) in cases {
            let (status, _) = status_of(&server, name, req);
            assert_eq!(status, *want, "{name}");
        }
        // A method longer than any a server implements: 501 (RFC 9112 section 3).
        let long = get(&"M".repeat(100), "/plaintext", "");
        let (status, _) = status_of(&server, "100-byte method", &long);
        assert_eq!(status, 501, "100-byte method");
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

/// What the [`Probe`] saw, over all its connections.
#[derive(Default)]
struct Seen {
    /// Largest input offered to `on_data` (unconsumed bytes held by the connection
    /// plus the new ones).
    max_input: AtomicUsize,
    /// Largest `Conn::pending_write` (queued, unsent response bytes) after `on_data`.
    max_queued: AtomicUsize,
    /// Largest input the connection holds after a callback: unconsumed bytes kept by
    /// the runtime plus `HttpConn`'s own stash.
    max_held: AtomicUsize,
}

impl Seen {
    fn record(&self, conn: &Conn<'_>, http: &HttpConn) {
        self.max_queued
            .fetch_max(conn.pending_write(), Ordering::Relaxed);
        let held = conn.unconsumed() + http.stashed_input();
        self.max_held.fetch_max(held, Ordering::Relaxed);
    }
}

/// [`HttpConn`] with a record of the memory its connection holds.
struct Probe(HttpConn, Arc<Seen>);

impl Handler for Probe {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.0.on_open(conn)
    }
    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        self.1.max_input.fetch_max(data.len(), Ordering::Relaxed);
        let n = self.0.on_data(conn, data);
        self.1.record(conn, &self.0);
        // What the runtime keeps of this call is offered again later.
        let left = data.len() - n.min(data.len());
        self.1.max_held.fetch_max(left, Ordering::Relaxed);
        n
    }
    fn on_sent(&mut self, conn: &mut Conn<'_>) {
        self.0.on_sent(conn);
        self.1.record(conn, &self.0);
    }
    fn on_eof(&mut self, conn: &mut Conn<'_>) {
        self.0.on_eof(conn)
    }
    fn on_timeout(&mut self, conn: &mut Conn<'_>) {
        self.0.on_timeout(conn)
    }
    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.0.on_drain(conn)
    }
    fn on_timer(&mut self, conn: &mut Conn<'_>) {
        self.0.on_timer(conn)
    }
}

fn start_probed(backend: BackendKind, limits: Limits) -> (TestServer, Arc<Seen>) {
    start_probed_with(backend, limits, |b| b)
}

fn start_probed_with(
    backend: BackendKind,
    limits: Limits,
    config: impl FnOnce(ringcore::Builder) -> ringcore::Builder,
) -> (TestServer, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let make = HttpConn::factory(router(), limits);
    let s2 = seen.clone();
    let server = start_server(backend, config, move |info: &ConnInfo| {
        Probe(make(info), s2.clone())
    });
    (server, seen)
}

#[test]
fn error_response_survives_a_client_that_keeps_sending_and_lingering_is_capped() {
    for_each_backend(|backend| {
        let limits = Limits::default()
            .max_requests_per_connection(u32::MAX)
            .lingering_time(Duration::from_secs(3))
            .lingering_timeout(Duration::from_millis(1000));
        let server = start(backend, limits);
        // A small receive window, so the responses sit in the server's send queue
        // when the error happens; then the client never stops sending.
        let s = connect_small_rcvbuf(server.addr, 4096);
        let req = get("GET", "/plaintext", "");
        let (mut c, r, writer) = pipeline_garbage_then_junk(s, &req, 2000, false);
        assert!(r.says_close());
        // The server shut its side down after the 400 (EOF, or a reset once the cap
        // closed it) ...
        c.expect_closed();
        // ... and, although the client never stops sending, closed the connection:
        // the lingering cap.
        server.wait_counters("the lingering connection closed", |c| c.open_conns == 0);
        let sent = writer.join().expect("writer");
        eprintln!("{backend}: the client wrote {sent} junk bytes before the close");

        // A client that goes quiet after its bad request (no FIN) is closed after the
        // lingering timeout.
        let mut q = HttpClient::connect(server.addr);
        q.send(b"GARBAGE\r\n\r\n");
        assert_eq!(q.read_response(false).status, 400);
        q.expect_closed();
        server.wait_counters("the quiet connection closed", |c| c.open_conns == 0);
        drop(q);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn bodies_over_the_buffered_cap_are_413_or_streamed_with_bounded_input() {
    for_each_backend(|backend| {
        let (server, seen) = start_probed(backend, Limits::default());
        let body = Rng::new(11).bytes((1 << 20) - 1);
        // A buffered route refuses a body over max_buffered_body (64 KiB) up front.
        let mut c = HttpClient::connect(server.addr);
        c.send_lenient(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let r = c.read_response(false);
        assert_eq!(r.status, 413, "1 MiB - 1 to a buffered route");
        drop(c);
        // Exactly the cap is served whole.
        let mut c = HttpClient::connect(server.addr);
        let small = &body[..64 * 1024];
        let mut req = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            small.len()
        )
        .into_bytes();
        req.extend_from_slice(small);
        c.send(&req);
        let r = c.read_response(false);
        assert_eq!((r.status, r.body == small), (200, true), "64 KiB buffered");
        drop(c);
        // A streaming route gets 1 MiB - 1, by Content-Length and chunked, while the
        // connection never holds more than a head and a receive batch.
        let want = format!("{} {:x}", body.len(), fnv(FNV0, &body));
        for chunked in [false, true] {
            let mut c = HttpClient::connect(server.addr);
            let mut w = c.s.try_clone().unwrap();
            let body = body.clone();
            let writer = std::thread::spawn(move || {
                if chunked {
                    w.write_all(
                        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                    )?;
                    for piece in body.chunks(10_000) {
                        w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                        w.write_all(piece)?;
                        w.write_all(b"\r\n")?;
                    }
                    w.write_all(b"0\r\n\r\n")
                } else {
                    let head = format!(
                        "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    w.write_all(head.as_bytes())?;
                    w.write_all(&body)
                }
            });
            let r = c.read_response(false);
            writer.join().unwrap().expect("write the upload");
            assert_eq!(r.status, 200, "streamed upload (chunked: {chunked})");
            assert_eq!(String::from_utf8_lossy(&r.body), want, "chunked: {chunked}");
        }
        let max_input = seen.max_input.load(Ordering::Relaxed);
        eprintln!("{backend}: largest input held by a connection: {max_input} bytes");
        assert!(
            max_input <= 256 * 1024,
            "a connection held {max_input} bytes of input"
        );
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn worker_body_budget_answers_503_beyond_it() {
    for_each_backend(|backend| {
        // Budget for three 60 KB bodies.
        let limits = Limits::default().worker_body_budget(3 * 60_000);
        let server = start(backend, limits);
        let head = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n";
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut c = connect(server.addr);
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(&[b'x'; 100]).unwrap();
            held.push(c);
        }
        // The fourth would go over the budget: 503, closed.
        let mut c = HttpClient::connect(server.addr);
        c.send_lenient(head.as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status, 503, "over the worker's body budget");
        c.expect_closed();
        // The held ones complete normally; then the budget is free again.
        for mut h in held {
            h.write_all(&[b'x'; 59_900]).unwrap();
            let mut c = HttpClient::from_stream(h);
            let r = c.read_response(false);
            assert_eq!((r.status, r.body.len()), (200, 60_000));
        }
        let mut c = HttpClient::connect(server.addr);
        let mut req = head.as_bytes().to_vec();
        req.extend_from_slice(&[b'y'; 60_000]);
        c.send(&req);
        assert_eq!(c.read_response(false).status, 200, "budget given back");
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn stalled_body_gets_408_at_the_body_deadline() {
    for_each_backend(|backend| {
        let limits = Limits::default().body_timeout(Duration::from_millis(300));
        let server = start(backend, limits);
        for target in ["/echo", "/upload"] {
            let mut c = HttpClient::connect(server.addr);
            c.send(
                format!(
                    "POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789"
                )
                .as_bytes(),
            );
            let r = c.read_response(false);
            assert_eq!(r.status, 408, "{target}: a stalled body");
            assert!(r.says_close());
            c.expect_closed();
        }
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

/// A client pipelines requests and never reads: the connection's memory stays bounded
/// by one high-water mark for output (`Limits::max_queued_output`, which `HttpConn`
/// sets as the connection's own mark) and by the receive limit for input (nothing is
/// parsed or stashed beyond what one receive brings once output is backed up), and
/// every response arrives, in order, once the client reads.
#[test]
fn pipelining_client_that_never_reads_keeps_queued_output_bounded() {
    for_each_backend(|backend| {
        let limits = Limits::default().max_requests_per_connection(u32::MAX);
        // A small receive pool (16 x 4 KiB), so that what one receive may bring at
        // once (io_uring: one multishot receive's batch, at most the pool) is small
        // beside what the client sends.
        let pool = 16 * 4096;
        let (out_bound, in_bound) = (
            limits.max_queued_output + 1024, // plus one response at most
            limits.max_pending_input() + pool,
        );
        let (server, seen) = start_probed_with(backend, limits, |b| b.buf_count(16).buf_size(4096));
        let s = connect_small_rcvbuf(server.addr, 4096);
        // Write requests until the server stops taking them (a write blocks for a
        // while: the server stopped reading), or 4 MiB went out.
        s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        let one = get("GET", "/plaintext", "");
        let batch: Vec<u8> = (0..1000).flat_map(|_| one.clone()).collect();
        let mut w = s.try_clone().unwrap();
        let mut sent = 0usize;
        while sent < 4 << 20 {
            match w.write(&batch[sent % batch.len()..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break, // timed out: the server stopped reading
            }
        }
        let queued = seen.max_queued.load(Ordering::Relaxed);
        let held = seen.max_held.load(Ordering::Relaxed);
        assert!(
            sent > 4 * out_bound,
            "{backend}: the client could write only {sent} bytes: no backlog to bound"
        );
        assert!(
            queued <= out_bound,
            "{backend}: {queued} bytes of responses queued for a client that does not read \
             (bound {out_bound}; client wrote {sent})"
        );
        assert!(
            held <= in_bound,
            "{backend}: {held} bytes of pipelined input held (bound {in_bound}; client \
             wrote {sent})"
        );
        // Reading now gets the response to every complete request sent, in order.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
        drop(w);
        let mut c = HttpClient::from_stream(s);
        let complete = sent / one.len();
        for i in 0..complete {
            let r = c
                .try_read_response(false)
                .unwrap_or_else(|e| panic!("{backend}: response {i} of {complete}: {e}"));
            assert_eq!(r.status, 200);
        }
        c.expect_closed();
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn pipelined_requests_sent_at_once_are_all_answered_after_a_pause() {
    for_each_backend(|backend| {
        // A tiny high-water mark: reading pauses many times; every request must still
        // be answered, though the client sends nothing after its burst.
        let limits = Limits::default()
            .max_queued_output(1024)
            .max_requests_per_connection(u32::MAX);
        let server = start(backend, limits);
        let mut c = HttpClient::connect(server.addr);
        let n = 5000;
        let req: Vec<u8> = (0..n).flat_map(|_| get("GET", "/plaintext", "")).collect();
        let mut w = c.s.try_clone().unwrap();
        let writer = std::thread::spawn(move || w.write_all(&req));
        for i in 0..n {
            let r = c
                .try_read_response(false)
                .unwrap_or_else(|e| panic!("response {i} of {n}: {e}"));
            assert_eq!(r.status, 200);
        }
        writer.join().unwrap().expect("write");
        drop(c);
        // The same with the client's FIN right after its burst: every request sent
        // before the FIN is still answered, then the server closes.
        let mut c = HttpClient::connect(server.addr);
        let req: Vec<u8> = (0..n).flat_map(|_| get("GET", "/plaintext", "")).collect();
        let mut w = c.s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&req)?;
            w.shutdown(std::net::Shutdown::Write)
        });
        for i in 0..n {
            let r = c
                .try_read_response(false)
                .unwrap_or_else(|e| panic!("half-closed: response {i} of {n}: {e}"));
            assert_eq!(r.status, 200);
        }
        writer.join().unwrap().expect("write and shut down");
        c.expect_closed();
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
