//! HTTP/1.1 over real sockets ([`HttpConn`] + [`Router`]): pipelined requests split at
//! arbitrary points, HEAD, keep-alive rules, every limit and every request-smuggling
//! case (status, `Connection: close`, and the connection really closed with nothing
//! answered after the error), the header deadline against a slowloris client while
//! another client is served, and the keep-alive idle timeout.

mod support;

use ringcore::http::{HttpConn, Limits, Router};
use ringcore::BackendKind;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::client::{connect, Rng};
use support::http::{echo, get, plaintext, Closed, HttpClient, Resp, HELLO};
use support::{for_each_backend, start_server, TestServer};

fn router() -> Router {
    Router::new()
        .get("/plaintext", plaintext)
        .post("/echo", echo)
}

fn start(backend: BackendKind, limits: Limits) -> TestServer {
    start_server(backend, |b| b, HttpConn::factory(router(), limits))
}

/// One request of a pipelined stream and the response it must get.
struct Exchange {
    bytes: Vec<u8>,
    head: bool,
    status: u16,
    body: Vec<u8>,
}

/// `body` in chunked encoding with random chunk sizes, hex case, extensions and
/// trailers.
fn chunked(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let n = rng.range(1, 3000).min(body.len() - off);
        let size = if rng.range(0, 1) == 0 {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        out.extend_from_slice(size.as_bytes());
        if rng.range(0, 4) == 0 {
            out.extend_from_slice(b";ext=1");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body[off..off + n]);
        out.extend_from_slice(b"\r\n");
        off += n;
    }
    out.extend_from_slice(b"0\r\n");
    if rng.range(0, 3) == 0 {
        out.extend_from_slice(b"X-Trailer: yes\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn post_cl(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn post_chunked(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut r = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(&chunked(rng, body));
    r
}

/// A random request of the mix and its expected response.
fn random_exchange(rng: &mut Rng, max_body: usize) -> Exchange {
    let ok = |bytes: Vec<u8>, body: &[u8]| Exchange {
        bytes,
        head: false,
        status: 200,
        body: body.to_vec(),
    };
    match rng.range(0, 6) {
        0 => ok(get("GET", "/plaintext", ""), HELLO),
        1 => Exchange {
            head: true,
            ..ok(get("HEAD", "/plaintext", ""), b"")
        },
        2 => {
            let n = rng.range(0, max_body);
            let body = rng.bytes(n);
            ok(post_cl(&body), &body)
        }
        3 => {
            let n = rng.range(0, max_body);
            let body = rng.bytes(n);
            ok(post_chunked(rng, &body), &body)
        }
        4 => Exchange {
            status: 404,
            ..ok(get("GET", "/nothing-here?q=1", ""), b"Not Found\n")
        },
        5 => Exchange {
            status: 405,
            ..ok(get("GET", "/echo", ""), b"Method Not Allowed\n")
        },
        _ => ok(get("GET", "/plaintext?x=y", "Accept: */*\r\n"), HELLO),
    }
}

fn check(resp: &Resp, ex: &Exchange, what: &str) {
    assert_eq!(resp.status, ex.status, "{what}: status");
    if ex.head {
        assert!(resp.body.is_empty(), "{what}: HEAD has no body");
        assert_eq!(resp.content_length(), Some(HELLO.len() as u64), "{what}");
    } else {
        assert_eq!(resp.content_length(), Some(ex.body.len() as u64), "{what}");
        assert!(resp.body == ex.body, "{what}: body differs");
    }
    assert!(!resp.says_close(), "{what}: keep-alive expected");
    assert_eq!(resp.header("server"), Some("ringcore"), "{what}");
    assert!(resp.header("date").is_some(), "{what}: Date");
}

#[test]
fn small_pipeline_split_at_every_point() {
    for_each_backend(|backend| {
        let server = start(
            backend,
            Limits::default().max_requests_per_connection(1_000_000),
        );
        let mut rng = Rng::new(3);
        let exchanges = [
            Exchange {
                bytes: get("GET", "/plaintext", ""),
                head: false,
                status: 200,
                body: HELLO.to_vec(),
            },
            Exchange {
                bytes: post_cl(b"hello"),
                head: false,
                status: 200,
                body: b"hello".to_vec(),
            },
            Exchange {
                bytes: post_chunked(&mut rng, b"chunked body"),
                head: false,
                status: 200,
                body: b"chunked body".to_vec(),
            },
            Exchange {
                bytes: get("HEAD", "/plaintext", ""),
                head: true,
                status: 200,
                body: Vec::new(),
            },
            Exchange {
                bytes: b"POST /echo HTTP/1.1\r\nHost: t\r\ntransfer-encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n".to_vec(),
                head: false,
                status: 200,
                body: b"abc".to_vec(),
            },
        ];
        let stream: Vec<u8> = exchanges.iter().flat_map(|e| e.bytes.clone()).collect();
        // Offsets where each request ends.
        let ends: Vec<usize> = exchanges
            .iter()
            .scan(0, |acc, e| {
                *acc += e.bytes.len();
                Some(*acc)
            })
            .collect();
        let mut c = HttpClient::connect(server.addr);
        for split in 0..=stream.len() {
            c.send(&stream[..split]);
            // Read the answers to the requests complete in the first part before
            // sending the rest, so the server really sees the split.
            let done = ends.iter().filter(|&&e| e <= split).count();
            for (i, ex) in exchanges[..done].iter().enumerate() {
                check(
                    &c.read_response(ex.head),
                    ex,
                    &format!("split {split}, #{i}"),
                );
            }
            c.send(&stream[split..]);
            for (i, ex) in exchanges[done..].iter().enumerate() {
                let i = i + done;
                check(
                    &c.read_response(ex.head),
                    ex,
                    &format!("split {split}, #{i}"),
                );
            }
        }
        // And one byte per write.
        for &b in &stream {
            c.send(&[b]);
        }
        for (i, ex) in exchanges.iter().enumerate() {
            check(&c.read_response(ex.head), ex, &format!("bytewise #{i}"));
        }
        drop(c);
        server.wait_counters("the connection to close", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn fifty_pipelined_requests_random_chunking() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default().max_buffered_body(1 << 20));
        for (seed, max_piece, max_body) in [
            (10u64, 7usize, 300usize),
            (11, 64, 3000),
            (12, 1500, 20_000),
            (13, 40_000, 200_000),
        ] {
            let mut rng = Rng::new(seed);
            let exchanges: Vec<Exchange> = (0..50)
                .map(|_| random_exchange(&mut rng, max_body))
                .collect();
            let stream: Vec<u8> = exchanges.iter().flat_map(|e| e.bytes.clone()).collect();
            let mut c = HttpClient::connect(server.addr);
            let mut w = c.s.try_clone().unwrap();
            std::thread::scope(|sc| {
                let stream = &stream;
                sc.spawn(move || {
                    let mut r = Rng::new(seed + 100);
                    let mut off = 0;
                    while off < stream.len() {
                        let n = r.range(1, max_piece).min(stream.len() - off);
                        w.write_all(&stream[off..off + n]).expect("write");
                        off += n;
                    }
                });
                for (i, ex) in exchanges.iter().enumerate() {
                    check(&c.read_response(ex.head), ex, &format!("seed {seed}, #{i}"));
                }
            });
        }
        server.wait_counters("the connections to close", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn head_has_length_and_no_body() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default());
        let mut c = HttpClient::connect(server.addr);
        let mut req = get("HEAD", "/plaintext", "");
        req.extend_from_slice(&get("GET", "/plaintext", ""));
        c.send(&req);
        let head = c.read_response(true);
        assert_eq!(head.status, 200);
        assert_eq!(head.content_length(), Some(13));
        assert_eq!(head.header("content-type"), Some("text/plain"));
        // The GET right after proves the HEAD response carried no body bytes.
        let full = c.read_response(false);
        assert_eq!(full.status, 200);
        assert_eq!(full.body, HELLO);
        assert_eq!(c.buffered(), 0);
        drop(c);
        server.wait_counters("closed", |c| c.open_conns == 0);
        server.stop();
    });
}

#[test]
fn shutdown_closes_idle_keep_alive_connections_and_finishes_partial_ones() {
    for_each_backend(|backend| {
        // A drain deadline far beyond the test's patience: idle keep-alive connections
        // must close at once (on_drain), not when the deadline aborts them.
        let drain = Duration::from_secs(60);
        let server = start_server(
            backend,
            |b| b.drain_timeout(drain),
            HttpConn::factory(router(), Limits::default()),
        );
        let mut idle = HttpClient::connect(server.addr);
        idle.send(&get("GET", "/plaintext", ""));
        assert_eq!(idle.read_response(false).status, 200);
        // This one has sent half a request head when shutdown starts.
        let mut busy = HttpClient::connect(server.addr);
        busy.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n");
        server.wait_counters("both open", |c| c.open_conns == 2);
        let started = Instant::now();
        server.begin_shutdown();
        assert!(matches!(idle.expect_closed(), Closed::Eof | Closed::Reset));
        // The partial request still gets its answer, then the connection closes.
        busy.send(b"\r\n");
        let r = busy.read_response(false);
        assert_eq!(r.status, 200);
        assert!(matches!(busy.expect_closed(), Closed::Eof | Closed::Reset));
        let c = server.join();
        assert!(
            started.elapsed() < drain,
            "shutdown waited for the drain deadline"
        );
        assert_eq!(c.open_conns, 0);
    });
}

#[test]
fn connection_close_and_http10_rules() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default());

        // HTTP/1.1 with Connection: close: one answer, then closed; the request
        // pipelined after it is not answered.
        let mut c = HttpClient::connect(server.addr);
        let mut req = get("GET", "/plaintext", "Connection: close\r\n");
        req.extend_from_slice(&get("GET", "/plaintext", ""));
        c.send(&req);
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, HELLO));
        assert!(r.says_close(), "Connection: close echoed");
        c.expect_closed();

        // A POST with a body and Connection: close.
        let mut c = HttpClient::connect(server.addr);
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        );
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, &b"abc"[..]));
        assert!(r.says_close());
        c.expect_closed();

        // HTTP/1.0 without keep-alive closes.
        let mut c = HttpClient::connect(server.addr);
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, HELLO));
        c.expect_closed();

        // HTTP/1.0 with keep-alive stays open and says so.
        let mut c = HttpClient::connect(server.addr);
        for _ in 0..3 {
            c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            let r = c.read_response(false);
            assert_eq!((r.status, &r.body[..]), (200, HELLO));
            assert_eq!(
                r.header("connection").map(|v| v.to_ascii_lowercase()),
                Some("keep-alive".into())
            );
        }
        // ... until it asks for nothing: then it closes.
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n");
        c.read_response(false);
        c.expect_closed();

        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        server.stop();
    });
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default().max_requests_per_connection(3));
        let mut c = HttpClient::connect(server.addr);
        let req: Vec<u8> = (0..5).flat_map(|_| get("GET", "/plaintext", "")).collect();
        c.send(&req);
        for i in 0..3 {
            let r = c.read_response(false);
            assert_eq!(r.status, 200);
            assert_eq!(r.says_close(), i == 2, "only the third says close");
        }
        c.expect_closed();
        server.stop();
    });
}

/// Sends `bad` followed by a valid request in one write; expects one response with a
/// status in `statuses` and `Connection: close`, then the connection closed (the
/// valid request never answered).
fn expect_refused(server: &TestServer, name: &str, bad: &[u8], statuses: &[u16]) {
    let mut c = HttpClient::connect(server.addr);
    let mut req = bad.to_vec();
    req.extend_from_slice(&get("GET", "/plaintext", ""));
    c.send_lenient(&req);
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        statuses.contains(&r.status),
        "{name}: status {} (expected one of {statuses:?})",
        r.status
    );
    assert!(r.says_close(), "{name}: the error says Connection: close");
    let closed = c.expect_closed();
    if closed == Closed::Reset {
        eprintln!("{name}: closed by reset");
    }
}

#[test]
fn limits_answer_their_status_and_close() {
    for_each_backend(|backend| {
        let server = start(backend, Limits::default().max_buffered_body(1 << 20));
        let big_header = format!(
            "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9000)
        );
        expect_refused(
            &server,
            "431 oversized header",
            big_header.as_bytes(),
            &[431],
        );
        let many_small: String = (0..300)
            .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(30)))
            .collect();
        let many_small = format!("GET /plaintext HTTP/1.1\r\nHost: t\r\n{many_small}\r\n");
        expect_refused(
            &server,
            "431 head over 8 KiB",
            many_small.as_bytes(),
            &[431],
        );
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
        expect_refused(&server, "414 long URI", long_uri.as_bytes(), &[414]);
        expect_refused(
            &server,
            "413 Content-Length over 1 MiB",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n",
            &[413],
        );
        let fields = |n: usize| -> String { (0..n).map(|i| format!("X-F{i}: v\r\n")).collect() };
        let too_many = format!("GET /plaintext HTTP/1.1\r\nHost: t\r\n{}\r\n", fields(100));
        expect_refused(
            &server,
            "431 101 header fields",
            too_many.as_bytes(),
            &[431],
        );

        // Right at the limits: 100 fields and a 1 MiB body are served.
        let mut c = HttpClient::connect(server.addr);
        c.send(format!("GET /plaintext HTTP/1.1\r\nHost: t\r\n{}\r\n", fields(99)).as_bytes());
        assert_eq!(c.read_response(false).status, 200, "100 header fields");
        let body = Rng::new(5).bytes(1 << 20);
        let mut w = c.s.try_clone().unwrap();
        std::thread::scope(|sc| {
            let req = post_cl(&body);
            sc.spawn(move || w.write_all(&req).expect("write"));
            let r = c.read_response(false);
            assert_eq!(r.status, 200, "a 1 MiB body");
            assert!(r.body == body);
        });
        drop(c);

        // A chunked body over the limit (a server with a small one).
        let small = start(backend, Limits::default().max_body_bytes(1000));
        let mut rng = Rng::new(6);
        let over = post_chunked(&mut rng, &[b'x'; 1600]);
        expect_refused(&small, "413 chunked body", &over, &[413]);
        expect_refused(
            &small,
            "413 Content-Length",
            &post_cl(&[b'y'; 1001]),
            &[413],
        );
        let mut c = HttpClient::connect(small.addr);
        c.send(&post_cl(&[b'z'; 1000]));
        let r = c.read_response(false);
        assert_eq!((r.status, r.body.len()), (200, 1000), "exactly the limit");
        drop(c);
        small.wait_counters("closed", |c| c.open_conns == 0);
        small.stop();

        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn smuggling_cases_are_refused_and_closed() {
    let cases: &[(&str, &[u8], &[u16])] = &[
        (
            "CL + TE",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "TE + CL",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "duplicate equal CL",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            &[400],
        ),
        (
            "duplicate different CL",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            &[400],
        ),
        ("CL list", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", &[400]),
        ("CL sign", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", &[400]),
        ("CL negative", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", &[400]),
        ("CL hex", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc", &[400]),
        ("CL empty", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", &[400]),
        (
            "CL overflow",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            &[400],
        ),
        (
            "space before colon",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 3\r\n\r\nabc",
            &[400],
        ),
        ("TE gzip", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", &[501]),
        (
            "TE identity",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
            &[501],
        ),
        (
            "TE gzip, chunked",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            &[501],
        ),
        (
            "TE chunked not last",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            &[400, 501],
        ),
        (
            "TE chunked twice",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "TE in two fields",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "TE empty element",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "TE with parameter",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "TE on HTTP/1.0",
            b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        ("bare LF everywhere", b"GET /plaintext HTTP/1.1\nHost: t\n\n", &[400]),
        ("bare LF in a field", b"GET /plaintext HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", &[400]),
        ("bare LF ending the head", b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\n", &[400]),
        ("bare CR", b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", &[400]),
        ("NUL in a value", b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n", &[400]),
        ("NUL in the target", b"GET /plain\0text HTTP/1.1\r\nHost: t\r\n\r\n", &[400]),
        ("obs-fold", b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", &[400]),
        ("obs-fold tab", b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n", &[400]),
        (
            "chunk size not hex",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size empty",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size leading space",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size junk",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size 0x",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size negative",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk size overflow",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk line bare LF",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            &[400],
        ),
        (
            "chunk data without CRLF",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
            &[400],
        ),
        (
            "malformed trailer",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nno colon here\r\n\r\n",
            &[400],
        ),
        ("HTTP/2.0", b"GET /plaintext HTTP/2.0\r\nHost: t\r\n\r\n", &[505]),
        ("HTTP/1.2", b"GET /plaintext HTTP/1.2\r\nHost: t\r\n\r\n", &[505]),
        ("garbage request line", b"GARBAGE\r\n\r\n", &[400]),
    ];
    for_each_backend(|backend| {
        let server = start(backend, Limits::default());
        for (name, bad, statuses) in cases {
            expect_refused(&server, name, bad, statuses);
        }
        // A valid request after all that still works on a new connection.
        let mut c = HttpClient::connect(server.addr);
        c.send(&get("GET", "/plaintext", ""));
        assert_eq!(c.read_response(false).status, 200);
        drop(c);
        server.wait_counters("every connection closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}

#[test]
fn slowloris_is_cut_at_the_header_deadline_while_others_are_served() {
    for_each_backend(|backend| {
        let deadline = Duration::from_millis(500);
        let server = start(backend, Limits::default().header_timeout(deadline));
        let mut good = HttpClient::connect(server.addr);
        // Warm up the good client first: it is open and served before the trickle.
        good.send(&get("GET", "/plaintext", ""));
        assert_eq!(good.read_response(false).status, 200);

        let mut slow = connect(server.addr);
        let mut slow_r = slow.try_clone().unwrap();
        let closed = AtomicBool::new(false);
        let started = Instant::now();
        let (served, (got, elapsed)) = std::thread::scope(|sc| {
            let closed = &closed;
            // The trickler: one header byte every 100 ms, never finishing the head.
            sc.spawn(move || {
                let head = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: ";
                let mut i = 0usize;
                while !closed.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(8)
                {
                    let b = head.get(i).copied().unwrap_or(b'a');
                    if slow.write_all(&[b]).is_err() {
                        break;
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            // The watcher: reads until the server closes the slow connection.
            let watcher = sc.spawn(move || {
                let ended = support::client::read_to_eof(&mut slow_r);
                let elapsed = started.elapsed();
                closed.store(true, Ordering::Relaxed);
                let got = match ended {
                    Ok(b) => b,
                    Err((b, e)) if e.kind() == std::io::ErrorKind::ConnectionReset => b,
                    Err((_, e)) => panic!("slow client: {e}"),
                };
                (got, elapsed)
            });
            // Meanwhile the good client keeps being served.
            let mut served = 0;
            while !closed.load(Ordering::Relaxed) {
                good.send(&get("GET", "/plaintext", ""));
                let r = good.read_response(false);
                assert_eq!((r.status, &r.body[..]), (200, HELLO));
                served += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "slow client never closed"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            (served, watcher.join().expect("watcher"))
        });
        eprintln!("slowloris closed after {elapsed:?}; {served} requests served meanwhile");
        assert!(
            elapsed >= deadline - Duration::from_millis(50),
            "closed before the deadline: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "trickling extended the deadline: closed after {elapsed:?}"
        );
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
            "the slow client gets nothing or a 408: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(served >= 1, "the good client was served meanwhile");
        // The good client is still fine afterwards.
        good.send(&get("GET", "/plaintext", ""));
        assert_eq!(good.read_response(false).status, 200);
        drop(good);
        let c = server.wait_counters("both connections closed", |c| c.open_conns == 0);
        assert_eq!(c.panics, 0);
        server.stop();
    });
}

#[test]
fn header_deadline_restarts_for_each_pipelined_request() {
    // Every request head completes within ~150 ms of its first byte, but each write
    // ends in the middle of the next request: the connection spans several header
    // deadlines in total and must not be cut off.
    for_each_backend(|backend| {
        // 1 s: ~850 ms of slack over the 150 ms cadence on a loaded CI machine.
        let deadline = Duration::from_millis(1000);
        let server = start(backend, Limits::default().header_timeout(deadline));
        let req = get("GET", "/plaintext", "");
        let half = req.len() / 2;
        let mut c = HttpClient::connect(server.addr);
        c.send(&req[..half]);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < deadline * 4 {
            std::thread::sleep(Duration::from_millis(150));
            // The rest of this request and the first half of the next.
            let mut w = req[half..].to_vec();
            w.extend_from_slice(&req[..half]);
            c.send_lenient(&w);
            match c.try_read_response(false) {
                Ok(r) => assert_eq!(
                    r.status,
                    200,
                    "request {n} after {:?}: its head arrived within ~150 ms, but the \
                     header deadline of an earlier request ({deadline:?}) cut it off",
                    started.elapsed()
                ),
                Err(e) => panic!(
                    "request {n} after {:?} (header deadline {deadline:?} from that \
                     request's first byte, ~150 ms ago): {e}",
                    started.elapsed()
                ),
            }
            n += 1;
        }
        drop(c);
        server.wait_counters("closed", |c| c.open_conns == 0);
        server.stop();
    });
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    for_each_backend(|backend| {
        let server = start(
            backend,
            Limits::default().keep_alive_timeout(Duration::from_millis(300)),
        );
        let mut c = HttpClient::connect(server.addr);
        c.send(&get("GET", "/plaintext", ""));
        assert_eq!(c.read_response(false).status, 200);
        let t = Instant::now();
        c.expect_closed();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "idle close took {:?}",
            t.elapsed()
        );
        let c = server.wait_counters("closed", |c| c.open_conns == 0);
        assert!(c.timeouts >= 1, "counted as a timeout");
        server.stop();
    });
}
