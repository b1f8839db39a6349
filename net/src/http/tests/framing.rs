//! Limits and framing-safety (request smuggling) cases, each with its status code.

use super::*;
use std::time::Duration;

// ---- limits ------------------------------------------------------------------------

/// A GET whose head is exactly `len` bytes long.
fn head_of_len(len: usize) -> Vec<u8> {
    let base = b"GET / HTTP/1.1\r\nHost: t\r\nX: \r\n\r\n".len();
    let mut head = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
    head.resize(len - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    assert!(len > base && head.len() == len);
    head
}

#[test]
fn head_limit_431() {
    let limits = Limits::default();
    assert_eq!(limits.max_head_bytes, 8192);
    assert_eq!(drive(&[&head_of_len(8192)], &limits).0.len(), 1);
    assert_eq!(status(&head_of_len(8193)), 431);
    // Also when the head never ends.
    assert_eq!(status(&head_of_len(20_000)[..10_000]), 431);
}

#[test]
fn request_line_limit_414() {
    let mut line = b"GET /".to_vec();
    line.resize(9000, b'a');
    assert_eq!(status(&line), 414);
    line.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status(&line), 414);
    let short = Limits::default().max_target_bytes(10);
    assert_eq!(
        status_with(b"GET /123456789a HTTP/1.1\r\nHost: t\r\n\r\n", &short),
        414
    );
    assert_eq!(
        drive(&[b"GET /123456789 HTTP/1.1\r\nHost: t\r\n\r\n"], &short)
            .0
            .len(),
        1
    );
}

/// A request with `n` header fields, `Host` the first of them.
fn with_headers(n: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 1..n {
        req.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn header_count_limit_431() {
    assert_eq!(one(&with_headers(100)).headers.len(), 100);
    assert_eq!(status(&with_headers(101)), 431);
    assert_eq!(
        status_with(&with_headers(5), &Limits::default().max_headers(4)),
        431
    );
}

#[test]
fn body_limit_413() {
    let mib = 1024 * 1024;
    let mut ok =
        format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {mib}\r\n\r\n").into_bytes();
    ok.resize(ok.len() + mib, b'x');
    assert_eq!(one(&ok).body.len(), mib);
    // Refused from the head alone, before any body byte arrives.
    assert_eq!(
        status(
            format!(
                "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                mib + 1
            )
            .as_bytes()
        ),
        413
    );
    let small = Limits::default().max_body_bytes(10);
    let chunked =
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\n";
    assert_eq!(status_with(chunked, &small), 413);
    assert_eq!(
        status_with(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
            &small
        ),
        413
    );
}

#[test]
fn trailer_limits_431() {
    let limits = Limits::default().max_head_bytes(64).max_headers(2);
    let base = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    let mut many = base.clone();
    many.extend_from_slice(b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    assert_eq!(status_with(&many, &limits), 431);
    let mut big = base.clone();
    big.extend_from_slice(&[b'a'; 100]);
    assert_eq!(status_with(&big, &limits), 431);
}

#[test]
fn limit_defaults() {
    let limits = Limits::default();
    assert_eq!((limits.max_headers, limits.max_body_bytes), (100, 1 << 20));
    assert_eq!(
        (limits.header_timeout, limits.keep_alive_timeout),
        (Duration::from_secs(10), Duration::from_secs(75))
    );
    assert_eq!(limits.max_requests_per_connection, 1000);
    assert_eq!(Error::header_timeout().status(), 408);
}

// ---- framing safety (request smuggling) --------------------------------------------

fn post(headers: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n0\r\n\r\n").into_bytes()
}

#[test]
fn content_length_and_transfer_encoding_400() {
    assert_eq!(
        status(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
        400
    );
    assert_eq!(
        status(&post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
        400
    );
    assert_eq!(
        status(&post("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n")),
        400
    );
}

#[test]
fn bad_content_length_400() {
    for value in [
        "5\r\nContent-Length: 5",
        "5\r\nContent-Length: 6",
        "5, 5",
        "+5",
        "-1",
        "0x5",
        "",
        "5 5",
        "١",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        let req = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {value}\r\n\r\nhello");
        assert_eq!(status(req.as_bytes()), 400, "Content-Length: {value:?}");
    }
    assert_eq!(
        one(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length:  5 \r\n\r\nhello").body,
        b"hello"
    );
}

#[test]
fn transfer_encoding_rules() {
    let cases: [(&str, u16); 10] = [
        ("Transfer-Encoding: gzip\r\n", 501),
        ("Transfer-Encoding: identity\r\n", 501),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, gzip\r\n", 400),
        ("Transfer-Encoding: chunked, chunked\r\n", 400),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            400,
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            400,
        ),
        ("Transfer-Encoding: chunked;q=1\r\n", 400),
        ("Transfer-Encoding: , chunked\r\n", 400),
        ("Transfer-Encoding:\r\n", 400),
    ];
    for (headers, want) in cases {
        assert_eq!(status(&post(headers)), want, "{headers:?}");
    }
    assert_eq!(one(&post("Transfer-Encoding: CHUNKED\r\n")).body, b"");
    let old = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(status(old), 400);
}

#[test]
fn line_endings_nul_and_folding_400() {
    let cases: [&[u8]; 9] = [
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\n\n",
        b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
        b"GET /\0 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n  folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n\tfolded\r\n\r\n",
    ];
    for bytes in cases {
        assert_eq!(status(bytes), 400, "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn bad_chunks_400() {
    let cases: [&[u8]; 10] = [
        b"zz\r\n",
        b"\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5 junk\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n",
        b"fffffffffffffffff\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
    ];
    for body in cases {
        let mut req = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        assert_eq!(status(&req), 400, "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn versions() {
    for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3"] {
        assert_eq!(status(format!("GET / {v}\r\n\r\n").as_bytes()), 505, "{v}");
    }
    for v in ["HTTX/1.1", "HTTP/1.x", "http/1.1", "HTTP/1.1 extra"] {
        assert_eq!(status(format!("GET / {v}\r\n\r\n").as_bytes()), 400, "{v}");
    }
    assert_eq!(one(b"GET / HTTP/1.0\r\n\r\n").minor, 0);
}

#[test]
fn malformed_request_lines_400() {
    for bytes in [
        &b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n: v\r\n\r\n",
    ] {
        assert_eq!(status(bytes), 400, "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn host_rules_and_long_methods() {
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400, "1.1 without Host");
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
    assert_eq!(
        one(b"GET / HTTP/1.0\r\n\r\n").headers.len(),
        0,
        "1.0 without Host"
    );
    let method = |n: usize| format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(n));
    assert_eq!(one(method(MAX_METHOD_BYTES).as_bytes()).method.len(), 32);
    assert_eq!(status(method(MAX_METHOD_BYTES + 1).as_bytes()), 501);
}
