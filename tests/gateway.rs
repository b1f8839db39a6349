//! The HTTP gateway (`http::GatewayConn`, as in examples/gateway.rs) over loopback:
//! GET and POST of 1 MiB hash-checked through it to a ringcore HTTP upstream
//! (Content-Length and chunked uploads, keep-alive, `X-Forwarded-For`, local
//! routes), a chunked upstream response, an upstream that resets mid-response, one
//! that is down (502) or silent (504), a client that never reads a large response
//! (memory bounded), a client that closes mid-request, and curl. Every scenario ends
//! with no connection left open on the gateway.

mod support;

use ringcore::http::{
    BodyHandler, GatewayConfig, GatewayConn, HttpConn, Limits, Request, Response, Router,
};
use ringcore::BackendKind;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::client::{
    connect, connect_small_rcvbuf, set_linger_zero, syn_sent_to, unanswered_listener, Rng,
};
use support::{for_each_backend, start_server, TestServer};

/// FNV-1a, for checking bodies without holding two copies in messages.
fn fnv(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

fn hash(data: &[u8]) -> u64 {
    let mut h = FNV0;
    fnv(&mut h, data);
    h
}

/// The 1 MiB body of `GET /api/big` (deterministic).
fn big() -> Vec<u8> {
    Rng::new(77).bytes(1 << 20)
}

fn api_big(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(&big());
}

fn api_xff(req: &Request<'_>, res: &mut Response) {
    let xff = req.header("x-forwarded-for").unwrap_or(b"-").to_vec();
    let conn = req.header("connection").unwrap_or(b"-").to_vec();
    let mut body = xff;
    body.extend_from_slice(b"|");
    body.extend_from_slice(&conn);
    res.set_content_type("text/plain").set_body(&body);
}

/// Streams an upload and answers `<length> <hash>`.
struct HashBody(u64, u64);

impl BodyHandler for HashBody {
    fn on_body(&mut self, piece: &[u8]) {
        self.0 += piece.len() as u64;
        fnv(&mut self.1, piece);
    }
    fn on_end(&mut self, res: &mut Response) {
        res.set_content_type("text/plain")
            .set_body(format!("{} {:x}", self.0, self.1).as_bytes());
    }
}

fn api_hash(_: &Request<'_>) -> Box<dyn BodyHandler> {
    Box::new(HashBody(0, FNV0))
}

/// A ringcore HTTP upstream with the `/api/...` routes.
fn start_upstream(backend: BackendKind) -> TestServer {
    let router = Router::new()
        .get("/api/big", api_big)
        .get("/api/xff", api_xff)
        .stream("POST", "/api/hash", api_hash);
    let limits = Limits::default().max_body_bytes(64 << 20);
    start_server(backend, |b| b, HttpConn::factory(router, limits))
}

fn local(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain").set_body(b"local\n");
}

/// The gateway worker's idle pooled upstream connections (routes run on the worker).
fn pool(_: &Request<'_>, res: &mut Response) {
    let n = ringcore::http::gateway_idle_connections();
    res.set_content_type("text/plain")
        .set_body(n.to_string().as_bytes());
}

fn start_gateway(backend: BackendKind, cfg: GatewayConfig) -> TestServer {
    let router = Router::new().get("/health", local).get("/pool", pool);
    start_server(backend, |b| b, GatewayConn::factory(router, cfg))
}

/// A response as the client read it.
#[derive(Debug)]
struct Got {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response (Content-Length, chunked, or until EOF) from `s`, with `buf`
/// holding bytes read past the previous one.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Got, String> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let fill = |s: &mut TcpStream, buf: &mut Vec<u8>| -> Result<usize, String> {
        let mut tmp = [0u8; 65536];
        let n = loop {
            match s.read(&mut tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| format!("read: {e}"))?,
            }
        };
        buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    };
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if fill(s, buf)? == 0 {
            return Err(format!("EOF in head after {} bytes", buf.len()));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    buf.drain(..end);
    let status: u16 = head[9..12]
        .parse()
        .map_err(|_| format!("status in {head:?}"))?;
    let lower = head.to_ascii_lowercase();
    let field = |name: &str| {
        lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let mut body = Vec::new();
    if status < 200 {
        // Interim: no body.
    } else if let Some(n) = field("content-length:") {
        let n: usize = n.parse().unwrap();
        while buf.len() < n {
            if fill(s, buf)? == 0 {
                return Err(format!("EOF after {} of {n} body bytes", buf.len()));
            }
        }
        body = buf.drain(..n).collect();
    } else if field("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                if fill(s, buf)? == 0 {
                    return Err("EOF in chunk size".into());
                }
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16)
                .map_err(|e| format!("chunk size: {e}"))?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                if fill(s, buf)? == 0 {
                    return Err(format!("EOF in chunk data after {} body bytes", body.len()));
                }
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        while fill(s, buf)? > 0 {}
        body = std::mem::take(buf);
    }
    Ok(Got { status, head, body })
}

fn request(s: &mut TcpStream, raw: &[u8]) -> Got {
    s.write_all(raw).unwrap();
    read_response(s, &mut Vec::new()).unwrap()
}

#[test]
fn get_and_post_1mib_hash_checked_keep_alive() {
    // Pooled: every request reuses the one upstream connection.
    get_and_post(GatewayConfig::new, 1, "-");
}

#[test]
fn get_and_post_without_pool_one_connection_per_request() {
    get_and_post(|a| GatewayConfig::new(a).pool_max_idle(0), 8, "close");
}

/// Idle pooled connections expected between requests: one with the pool, none without.
fn pooled_now(conn_field: &str) -> &'static str {
    if conn_field == "-" {
        "1"
    } else {
        "0"
    }
}

fn get_and_post(cfg: impl Fn(SocketAddr) -> GatewayConfig, connects: u64, conn_field: &str) {
    for_each_backend(|backend| {
        let up = start_upstream(backend);
        let gw = start_gateway(backend, cfg(up.addr));
        let mut s = connect(gw.addr);
        let mut buf = Vec::new();
        let body = big();
        for round in 0..2 {
            // GET 1 MiB.
            s.write_all(b"GET /api/big HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            assert_eq!(g.status, 200, "{}", g.head);
            assert_eq!(hash(&g.body), hash(&body), "round {round}: GET body");
            // POST 1 MiB with Content-Length.
            let mut req = format!(
                "POST /api/hash HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&body);
            s.write_all(&req).unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            let want = format!("{} {:x}", body.len(), hash(&body));
            assert_eq!(String::from_utf8_lossy(&g.body), want, "{}", g.head);
            // POST 1 MiB chunked, in uneven chunks.
            let mut req =
                b"POST /api/hash HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            for piece in body.chunks(100_003) {
                req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                req.extend_from_slice(piece);
                req.extend_from_slice(b"\r\n");
            }
            req.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&req).unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            assert_eq!(String::from_utf8_lossy(&g.body), want, "chunked upload");
            // Local route on the same connection.
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            assert_eq!((g.status, &g.body[..]), (200, &b"local\n"[..]));
            // Hop-by-hop fields removed, X-Forwarded-For appended.
            s.write_all(
                b"GET /api/xff HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive\r\n\r\n",
            )
            .unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&g.body),
                format!("10.0.0.1, 127.0.0.1|{conn_field}")
            );
        }
        s.write_all(b"GET /pool HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let g = read_response(&mut s, &mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&g.body), pooled_now(conn_field));
        drop(s);
        // Only pooled upstream connections may remain; shutdown closes them.
        let pooled = u64::from(conn_field == "-");
        gw.wait_counters("the client connection closed", |c| c.open_conns == pooled);
        let c = gw.stop();
        assert_eq!(c.connects, connects, "upstream connections opened");
        assert_eq!(c.open_conns, 0, "every connection closed");
    });
}

/// A scripted upstream: accepts connections, reads each request head, then runs
/// `act` with the stream. Returns its address.
fn scripted(act: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let act = Arc::new(act);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let act = act.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                act(s);
            });
        }
    });
    addr
}

#[test]
fn chunked_upstream_response_streams_through() {
    for_each_backend(|backend| {
        let up = scripted(|mut s| {
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n");
            for i in 0..50u32 {
                let piece = vec![b'a' + (i % 26) as u8; 1000 + i as usize * 97];
                let _ = s.write_all(format!("{:x}\r\n", piece.len()).as_bytes());
                let _ = s.write_all(&piece);
                let _ = s.write_all(b"\r\n");
            }
            let _ = s.write_all(b"0\r\nX-Trailer: t\r\n\r\n");
        });
        let gw = start_gateway(backend, GatewayConfig::new(up));
        let mut s = connect(gw.addr);
        let g = request(&mut s, b"GET /api/c HTTP/1.1\r\nHost: x\r\n\r\n");
        let want: Vec<u8> = (0..50u32)
            .flat_map(|i| vec![b'a' + (i % 26) as u8; 1000 + i as usize * 97])
            .collect();
        assert_eq!(g.status, 200);
        assert!(g.head.contains("X-Up: 1"), "{}", g.head);
        assert_eq!(g.body, want);
        drop(s);
        // HTTP/1.0 client: close-delimited instead.
        let mut s = connect(gw.addr);
        let g = request(&mut s, b"GET /api/c HTTP/1.0\r\n\r\n");
        assert_eq!(g.body, want);
        assert!(g.head.contains("Connection: close"), "{}", g.head);
        drop(s);
        gw.wait_counters("gateway connections closed", |c| c.open_conns == 0);
    });
}

#[test]
fn upstream_reset_mid_response_cuts_the_client_cleanly() {
    for_each_backend(|backend| {
        let up = scripted(|mut s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
            let _ = s.write_all(&[b'x'; 5000]);
            support::client::set_linger_zero(&s);
        });
        let gw = start_gateway(backend, GatewayConfig::new(up));
        for _ in 0..3 {
            let mut s = connect(gw.addr);
            let r = read_response_after(&mut s, b"GET /api/r HTTP/1.1\r\nHost: x\r\n\r\n");
            let err = r.expect_err("a cut response must not look complete");
            assert!(err.contains("EOF after") || err.contains("reset"), "{err}");
        }
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
    });
}

fn read_response_after(s: &mut TcpStream, raw: &[u8]) -> Result<Got, String> {
    s.write_all(raw).unwrap();
    read_response(s, &mut Vec::new())
}

#[test]
fn upstream_down_is_502() {
    for_each_backend(|backend| {
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let gw = start_gateway(backend, GatewayConfig::new(dead));
        let mut s = connect(gw.addr);
        let g = request(&mut s, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(g.status, 502, "{}", g.head);
        assert!(String::from_utf8_lossy(&g.body).contains("refused"));
        // A POST whose body was never read: answered, then closed.
        let mut s = connect(gw.addr);
        let g = request(
            &mut s,
            b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(g.status, 502);
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
    });
}

#[test]
fn silent_upstream_is_504_at_the_deadline() {
    for_each_backend(|backend| {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let up = scripted(move |mut s| {
            // Hold the connection, say nothing, until the test ends or the gateway
            // closes it.
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut b = [0u8; 64];
            while !stop2.load(Ordering::SeqCst) {
                match s.read(&mut b) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        });
        let cfg = GatewayConfig::new(up).response_timeout(Duration::from_millis(500));
        let gw = start_gateway(backend, cfg);
        let mut s = connect(gw.addr);
        let g = request(&mut s, b"GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(g.status, 504, "{}", g.head);
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
        stop.store(true, Ordering::SeqCst);
    });
}

#[test]
fn client_that_never_reads_holds_memory_bounded() {
    for_each_backend(|backend| {
        let written = Arc::new(AtomicU64::new(0));
        let w2 = written.clone();
        const TOTAL: usize = 256 << 20;
        let up = scripted(move |mut s| {
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes(),
            );
            let chunk = vec![b'z'; 64 * 1024];
            let mut left = TOTAL;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).is_err() {
                    return;
                }
                w2.fetch_add(n as u64, Ordering::SeqCst);
                left -= n;
            }
        });
        let gw = start_gateway(backend, GatewayConfig::new(up));
        let mut s = connect_small_rcvbuf(gw.addr, 4096);
        s.write_all(b"GET /api/huge HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        // The upstream's writes stall once the gateway stopped reading it: wait until
        // the written count stops growing (checked every 200 ms).
        let mut last = u64::MAX;
        support::wait_until("the upstream to stall", || {
            std::thread::sleep(Duration::from_millis(200));
            let now = written.load(Ordering::SeqCst);
            let settled = now == last && now > 0;
            last = now;
            settled
        });
        eprintln!("upstream wrote {last} bytes while the client read nothing");
        // Kernel socket buffers on two loopback connections plus the gateway's 1 MiB
        // mark: far below the 256 MiB the upstream offers. Without backpressure the
        // gateway reads it all.
        assert!(
            last < 64 << 20,
            "the gateway read {last} bytes for a client that reads nothing"
        );
        drop(s);
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
    });
}

#[test]
fn client_closing_mid_request_closes_the_upstream() {
    for_each_backend(|backend| {
        let closed = Arc::new(AtomicU64::new(0));
        let c2 = closed.clone();
        let up = scripted(move |mut s| {
            // Read the body until the gateway closes the upstream connection.
            let mut b = [0u8; 65536];
            loop {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            c2.fetch_add(1, Ordering::SeqCst);
        });
        let gw = start_gateway(backend, GatewayConfig::new(up));
        for _ in 0..3 {
            let mut s = connect(gw.addr);
            s.write_all(b"POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
                .unwrap();
            s.write_all(&vec![b'q'; 300_000]).unwrap();
            gw.wait_counters("the upstream connection", |c| c.connects >= 1);
            let _ = s.shutdown(Shutdown::Both);
            drop(s);
        }
        support::wait_until("upstream connections closed", || {
            closed.load(Ordering::SeqCst) == 3
        });
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
    });
}

#[test]
fn client_reset_while_the_upstream_connect_is_pending_cancels_it() {
    // Before the connect handle (Conn::connect_with returning `Connecting`), the front
    // could not reach a back still connecting: the attempt ran to its connect timeout
    // (an hour here), holding a slot and a SYN_SENT socket.
    for_each_backend(|backend| {
        let (_blackhole, up) = unanswered_listener();
        let cfg = GatewayConfig::new(up).connect_timeout(Duration::from_secs(3600));
        let gw = start_gateway(backend, cfg);
        for round in 0..2 {
            let mut s = connect(gw.addr);
            s.write_all(b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            support::wait_until("the upstream connect is pending", || {
                syn_sent_to(up.port()) == 1
            });
            set_linger_zero(&s);
            drop(s);
            let c = gw.wait_counters("no slot left", |c| c.open_conns == 0);
            support::wait_until("the pending connect cancelled", || {
                syn_sent_to(up.port()) == 0
            });
            assert_eq!(c.connects, 0, "round {round}: nothing connected");
        }
        assert_eq!(gw.stop().panics, 0);
    });
}

#[test]
fn curl_through_the_gateway() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: curl not installed");
        return;
    }
    for_each_backend(|backend| {
        let up = start_upstream(backend);
        let gw = start_gateway(backend, GatewayConfig::new(up.addr));
        let out = std::process::Command::new("curl")
            .args(["-sS", "--fail", &format!("http://{}/api/big", gw.addr)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(hash(&out.stdout), hash(&big()));
        let dir =
            std::env::temp_dir().join(format!("ringcore-gw-{}-{backend}", std::process::id()));
        std::fs::write(&dir, big()).unwrap();
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--data-binary",
                &format!("@{}", dir.display()),
                &format!("http://{}/api/hash", gw.addr),
            ])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = big();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{} {:x}", body.len(), hash(&body))
        );
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{}/health", gw.addr),
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        // The pooled upstream connection is closed by the shutdown.
        let c = gw.stop();
        assert_eq!(c.open_conns, 0);
    });
}

#[test]
fn idle_pooled_connection_closes_after_its_timeout() {
    for_each_backend(|backend| {
        let up = start_upstream(backend);
        let cfg = GatewayConfig::new(up.addr).pool_idle_timeout(Duration::from_millis(300));
        let gw = start_gateway(backend, cfg);
        let mut s = connect(gw.addr);
        let g = request(&mut s, b"GET /api/xff HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(g.status, 200);
        // The client connection stays; the idle upstream one goes at its timeout
        // (the upstream sees its close).
        gw.wait_counters("the idle upstream connection closed", |c| c.open_conns == 1);
        up.wait_counters("the upstream saw it close", |c| c.open_conns == 0);
        // The next request opens a fresh one.
        let g = request(&mut s, b"GET /api/xff HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(g.status, 200);
        assert_eq!(gw.counters().connects, 2);
        drop(s);
        // Shutdown closes the idle pooled connection at once (no drain deadline).
        let c = gw.stop();
        assert_eq!(c.open_conns, 0);
    });
}

#[test]
fn upstream_closing_a_pooled_connection_is_retried_or_avoided() {
    for_each_backend(|backend| {
        // Answers one request per connection with a kept-alive response, then closes
        // without saying so: the next request on that connection fails (or the
        // gateway noticed the close first). Either way the client gets its answer.
        let up = scripted(|mut s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = s.shutdown(Shutdown::Both);
        });
        let gw = start_gateway(backend, GatewayConfig::new(up));
        let mut s = connect(gw.addr);
        let mut buf = Vec::new();
        for i in 0..20 {
            s.write_all(b"GET /api/p HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let g = read_response(&mut s, &mut buf).unwrap();
            assert_eq!(
                (g.status, &g.body[..]),
                (200, &b"ok"[..]),
                "request {i}: {}",
                g.head
            );
        }
        drop(s);
        gw.wait_counters("no slot leaked", |c| c.open_conns == 0);
    });
}

#[test]
fn expect_100_continue_is_answered_once_the_upstream_is_connected() {
    for_each_backend(|backend| {
        let up = start_upstream(backend);
        let gw = start_gateway(backend, GatewayConfig::new(up.addr));
        let mut s = connect(gw.addr);
        let mut buf = Vec::new();
        let body = big();
        s.write_all(
            format!(
                "POST /api/hash HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        // Nothing of the body is sent before the interim answer.
        let g = read_response(&mut s, &mut buf).unwrap();
        assert_eq!(g.status, 100, "{}", g.head);
        s.write_all(&body).unwrap();
        let g = read_response(&mut s, &mut buf).unwrap();
        assert_eq!(g.status, 200, "{}", g.head);
        assert_eq!(
            String::from_utf8_lossy(&g.body),
            format!("{} {:x}", body.len(), hash(&body))
        );
        drop(s);
        let c = gw.stop();
        assert_eq!(c.open_conns, 0);
    });
}

#[test]
fn pool_keeps_at_most_its_bound() {
    for_each_backend(|backend| {
        const N: u64 = 5;
        let arrived = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let (a2, c2) = (arrived.clone(), closed.clone());
        // Answers only once N requests are in, so N upstream connections are open
        // at once; then holds each connection until the gateway closes it.
        let up = scripted(move |mut s| {
            a2.fetch_add(1, Ordering::SeqCst);
            support::wait_until("all requests at the upstream", || {
                a2.load(Ordering::SeqCst) >= N
            });
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let mut b = [0u8; 256];
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            c2.fetch_add(1, Ordering::SeqCst);
        });
        let gw = start_gateway(backend, GatewayConfig::new(up).pool_max_idle(2));
        let mut clients: Vec<TcpStream> = (0..N).map(|_| connect(gw.addr)).collect();
        for c in &mut clients {
            c.write_all(b"GET /api/n HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
        }
        for c in &mut clients {
            let g = read_response(c, &mut Vec::new()).unwrap();
            assert_eq!(g.status, 200);
        }
        // Two go back to the pool, the other three are closed.
        support::wait_until("surplus upstream connections closed", || {
            closed.load(Ordering::SeqCst) == N - 2
        });
        let g = request(&mut clients[0], b"GET /pool HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&g.body), "2");
        drop(clients);
        let c = gw.stop();
        assert_eq!(c.open_conns, 0);
        assert_eq!(c.connects, N);
    });
}
