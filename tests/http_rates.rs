//! Minimum data rates of [`HttpConn`] (`Limits::min_body_rate`,
//! `Limits::min_response_rate`) over real sockets: a trickled body gets `408`, a
//! client that never reads a large response is cut off, while fast bodies, normal
//! readers and idle keep-alive connections are unaffected. Limits are shortened for
//! the tests; assertions wait (with the support deadline) for the close, never time it.

mod support;

use ringcore::http::{BodyHandler, HttpConn, Limits, Request, Response, Router};
use ringcore::BackendKind;
use std::io::Write;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::client::{connect_small_rcvbuf, wait_closed};
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server, TestServer};

/// Size of the large response.
const BIG: usize = 16 * 1024 * 1024;

fn plaintext(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain")
        .set_body(b"Hello, World!");
}

fn big(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(&vec![b'x'; BIG]);
}

/// A streamed upload: answers the body's length.
struct Upload(u64);

impl BodyHandler for Upload {
    fn on_body(&mut self, piece: &[u8]) {
        self.0 += piece.len() as u64;
    }
    fn on_end(&mut self, res: &mut Response) {
        res.set_content_type("text/plain")
            .set_body(self.0.to_string().as_bytes());
    }
}

fn upload(_: &Request<'_>) -> Box<dyn BodyHandler> {
    Box::new(Upload(0))
}

fn echo(req: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(req.body());
}

fn router() -> Router {
    Router::new()
        .get("/plaintext", plaintext)
        .get("/big", big)
        .post("/echo", echo)
        .stream("POST", "/upload", upload)
}

/// Test-shortened rates: bodies 1000 B/s, responses 100 kB/s, both after 300 ms.
/// (Bytes still in the server's kernel send buffer, megabytes for a peer that never
/// reads, do not count as sent; the 4 KiB the peer's window takes do.)
fn limits() -> Limits {
    Limits::default()
        .min_body_rate(1000, Duration::from_millis(300))
        .min_response_rate(100_000, Duration::from_millis(300))
}

fn start(backend: BackendKind) -> TestServer {
    start_server(backend, |b| b, HttpConn::factory(router(), limits()))
}

#[test]
fn body_trickled_below_the_minimum_rate_gets_408_and_close() {
    for_each_backend(|backend| {
        let server = start(backend);
        for target in ["/upload", "/echo"] {
            let mut c = HttpClient::connect(server.addr);
            c.send(
                format!("POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n")
                    .as_bytes(),
            );
            // ~50 B/s: one byte every 20 ms (pacing the scenario, not synchronising),
            // until the server closes or the test is done.
            let stop = Arc::new(AtomicBool::new(false));
            let mut w = c_stream(&c);
            let stop2 = stop.clone();
            let writer = std::thread::spawn(move || {
                while !stop2.load(Ordering::Relaxed) && w.write_all(b"a").is_ok() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let r = c.read_response(false);
            stop.store(true, Ordering::Relaxed);
            assert_eq!(r.status, 408, "{target}: a trickled body");
            assert!(r.says_close(), "{target}: 408 says Connection: close");
            c.expect_closed();
            writer.join().unwrap();
        }
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

fn c_stream(c: &HttpClient) -> std::net::TcpStream {
    c.s.try_clone().expect("clone the client stream")
}

#[test]
fn body_sent_at_full_speed_passes_the_minimum_rate() {
    for_each_backend(|backend| {
        let server = start(backend);
        let mut c = HttpClient::connect(server.addr);
        let body = vec![b'b'; 1024 * 1024];
        let mut req = format!(
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        c.send(&req);
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"1048576");
        let mut req = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n".to_vec();
        req.extend_from_slice(&body[..60000]);
        c.send(&req);
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 60000);
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn client_that_never_reads_a_large_response_is_cut_off_normal_one_is_not() {
    for_each_backend(|backend| {
        let server = start(backend);
        let mut slow = connect_small_rcvbuf(server.addr, 4096);
        slow.write_all(&get("GET", "/big", "")).unwrap();
        // A normal reader of the same response meanwhile, then a small request.
        let mut c = HttpClient::connect(server.addr);
        c.send(&get("GET", "/big", ""));
        let r = c.read_response(false);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body.len(),
            BIG,
            "the normal client gets the whole response"
        );
        c.send(&get("GET", "/plaintext", ""));
        assert_eq!(c.read_response(false).status, 200);
        drop(c);
        // The slow reader's connection is aborted by the response rate.
        server.wait_counters("the non-reading client cut off", |c| c.open_conns == 0);
        let ended = wait_closed(&mut slow);
        let got = match ended {
            support::client::Ended::Eof(n) | support::client::Ended::Reset(n) => n,
        };
        assert!(
            got < BIG,
            "the slow client got {got} bytes, not the whole response"
        );
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn idle_keep_alive_connection_is_not_subject_to_the_response_rate() {
    for_each_backend(|backend| {
        let server = start(backend);
        let mut c = HttpClient::connect(server.addr);
        for round in 0..3 {
            c.send(&get("GET", "/plaintext", ""));
            let r = c.read_response(false);
            assert_eq!(r.status, 200, "round {round}");
            assert!(!r.says_close(), "round {round}");
            // Idle for several grace periods and rate checks (the scenario itself).
            std::thread::sleep(Duration::from_millis(1200));
        }
        c.send(&get("GET", "/plaintext", ""));
        assert_eq!(c.read_response(false).status, 200, "after idling");
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

fn four_mib(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(&vec![b'y'; 4 * 1024 * 1024]);
}

/// A client with a 4 KiB receive buffer that sends `request`, then reads 64 B every
/// 100 ms (640 B/s) until the stream ends or `stop`; counts the bytes it read.
fn slow_reader(
    addr: std::net::SocketAddr,
    request: &[u8],
    stop: &Arc<AtomicBool>,
) -> (std::thread::JoinHandle<()>, Arc<AtomicUsize>, i32) {
    let mut s = connect_small_rcvbuf(addr, 4096);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    s.write_all(request).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let (r, stop) = (read.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        // Pacing the scenario, not synchronising.
        while !stop.load(Ordering::Relaxed) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => r.fetch_add(n, Ordering::Relaxed),
            };
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (t, read, fd)
}

/// The TCP state of socket `fd` (`tcpi_state`: 1 established, 7 closed).
fn tcp_state(fd: i32) -> u8 {
    // SAFETY: an all-zero tcp_info is valid; getsockopt writes at most `len` bytes to
    // it, and `fd` is a socket the caller keeps open.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(r, 0, "TCP_INFO: {}", io::Error::last_os_error());
        info.tcpi_state
    }
}

/// Slow read (issue 8, the slowhttptest `-X` row): clients whose 4 KiB receive buffer
/// takes the first kilobytes at once, then read 640 B/s, under a 1000 B/s minimum
/// response rate: one reading a 16 MiB response, one that pipelined 900 small
/// requests (whose responses the server's kernel send buffer absorbs, so nothing stays
/// queued in the server), one that pipelined 20,000 (the server lingers after the
/// 1,000th). The rate is judged over a sliding window of the grace period on the bytes
/// the peer took, so the buffers buy no time: the server cuts all three off within
/// about grace + a quarter grace, long before they have read 4 KiB (before: the first
/// was credited with its buffer's gulp, ~6 KiB of reads; the second was never judged,
/// as nothing was queued, and left at the 75 s idle timeout; the third only at the 5 s
/// lingering timeout). Meanwhile a normal client gets a 4 MiB response whole, twice.
#[test]
fn slow_readers_are_cut_off_by_the_sliding_response_rate_normal_download_is_not() {
    for_each_backend(|backend| {
        let limits = Limits::default().min_response_rate(1000, Duration::from_millis(300));
        let router = Router::new()
            .get("/big", big)
            .get("/4m", four_mib)
            .get("/plaintext", plaintext);
        let server = start_server(backend, |b| b, HttpConn::factory(router, limits));
        let stop = Arc::new(AtomicBool::new(false));
        let big_reader = slow_reader(server.addr, &get("GET", "/big", ""), &stop);
        // 900 requests (under the 1,000 per connection): the responses fit in the
        // kernel's send buffer; 20,000: the 1,000th says `Connection: close` and the
        // server lingers over the rest, still judging the response rate.
        let few = get("GET", "/plaintext", "").repeat(900);
        let few_reader = slow_reader(server.addr, &few, &stop);
        let many = get("GET", "/plaintext", "").repeat(20_000);
        let many_reader = slow_reader(server.addr, &many, &stop);
        let mut c = HttpClient::connect(server.addr);
        for _ in 0..2 {
            c.send(&get("GET", "/4m", ""));
            let r = c.read_response(false);
            assert_eq!(r.status, 200);
            assert_eq!(
                r.body.len(),
                4 * 1024 * 1024,
                "the normal client gets it whole"
            );
        }
        drop(c);
        server.wait_counters("the slow readers cut off", |c| c.open_conns == 0);
        // Aborted with megabytes unsent: reset, not a FIN queued behind them (which
        // such a reader would never reach), so the readers' sockets are closed now,
        // with kilobytes still unread in them (the reader threads keep them open).
        for (what, r) in [
            ("16 MiB", &big_reader),
            ("900", &few_reader),
            ("20,000", &many_reader),
        ] {
            assert_eq!(tcp_state(r.2), 7, "the {what} slow reader was reset");
        }
        stop.store(true, Ordering::Relaxed);
        let readers = [
            ("16 MiB", big_reader),
            ("900 pipelined", few_reader),
            ("20,000 pipelined", many_reader),
        ];
        for (what, (t, read, _)) in readers {
            let at_close = read.load(Ordering::Relaxed);
            t.join().unwrap();
            eprintln!("{backend}: the {what} slow reader had read {at_close} B when cut off");
            assert!(
                at_close < 4096,
                "the {what} slow reader had read {at_close} B when the server cut it off: \
                 its buffers bought it time"
            );
        }
        assert_eq!(server.stop().panics, 0);
    });
}
