//! Codec tests: the driver loop and its helpers, basics, keep-alive, pipelining and
//! split-invariance; `framing` holds the limits and smuggling cases, `serve` the
//! rendering, routing and session tests. Every error case asserts the status code.

use super::*;

mod framing;
mod routing;
mod serve;

/// An owned snapshot of a parsed request, for comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    method: String,
    target: String,
    minor: u8,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Owned {
    fn of(req: &Request<'_>) -> Self {
        Owned {
            method: req.method().into(),
            target: req.target().into(),
            minor: req.version_minor(),
            headers: req.headers().map(|(n, v)| (n.into(), v.to_vec())).collect(),
            body: req.body().to_vec(),
            keep_alive: req.keep_alive(),
        }
    }
}

/// The connection loop in miniature: append each chunk to the unconsumed bytes and
/// parse until `Partial`. Returns the requests and the error that ended it, if any.
fn drive(chunks: &[&[u8]], limits: &Limits) -> (Vec<Owned>, Option<u16>) {
    let mut parser = RequestParser::new(limits.clone());
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let consumed = match parser.parse(&buf) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete { request, consumed }) => {
                    out.push(Owned::of(&request));
                    consumed
                }
                Err(e) => {
                    assert!(e.must_close());
                    return (out, Some(e.status()));
                }
            };
            buf.drain(..consumed);
        }
    }
    (out, None)
}

fn parse_all(bytes: &[u8]) -> (Vec<Owned>, Option<u16>) {
    drive(&[bytes], &Limits::default())
}

/// The status a single bad request is answered with.
fn status(bytes: &[u8]) -> u16 {
    status_with(bytes, &Limits::default())
}

fn status_with(bytes: &[u8], limits: &Limits) -> u16 {
    match drive(&[bytes], limits) {
        (_, Some(status)) => status,
        (reqs, None) => panic!(
            "accepted: {reqs:?} from {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Parses exactly one complete request.
fn one(bytes: &[u8]) -> Owned {
    match parse_all(bytes) {
        (reqs, None) if reqs.len() == 1 => {
            reqs.into_iter().next().unwrap_or_else(|| unreachable!())
        }
        other => panic!("expected one request, got {other:?}"),
    }
}

const GET: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n";

// ---- basics and pipelining -------------------------------------------------------

#[test]
fn simple_get() {
    let req = one(GET);
    assert_eq!(
        (req.method.as_str(), req.target.as_str(), req.minor),
        ("GET", "/plaintext", 1)
    );
    assert_eq!(
        req.headers,
        vec![
            ("Host".into(), b"localhost".to_vec()),
            ("Accept".into(), b"text/plain".to_vec())
        ]
    );
    assert!(req.body.is_empty() && req.keep_alive);
}

#[test]
fn accessors() {
    let bytes = b"GET /a/b?x=1&y HTTP/1.1\r\nHOST: h\r\nX-Empty:\r\n\r\n";
    let mut parser = RequestParser::new(Limits::default());
    let Ok(Status::Complete { request, consumed }) = parser.parse(bytes) else {
        panic!("not complete")
    };
    assert_eq!(consumed, bytes.len());
    assert_eq!((request.path(), request.query()), ("/a/b", Some("x=1&y")));
    assert_eq!(request.header("host"), Some(&b"h"[..]));
    assert_eq!(request.header("x-empty"), Some(&b""[..]));
    assert_eq!(request.header("missing"), None);
    assert_eq!(request.headers().len(), 2);
    assert!(!request.is_head());
}

#[test]
fn pipelined_sixteen() {
    let stream = GET.repeat(16);
    let (reqs, err) = parse_all(&stream);
    assert_eq!((reqs.len(), err), (16, None));
    assert!(reqs.iter().all(|r| r == &reqs[0]));
}

#[test]
fn partial_head_and_body() {
    assert_eq!(parse_all(b"GET / HTTP/1.1\r\nHost: a\r\n"), (vec![], None));
    assert_eq!(
        parse_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhel"),
        (vec![], None)
    );
    let req = one(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(req.body, b"hello");
}

#[test]
fn leading_empty_lines_are_skipped() {
    let (reqs, err) = parse_all(b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((reqs.len(), err), (1, None));
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let req = one(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n");
    assert_eq!(req.body, b"hello world");
    let req = one(
        b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n000\r\n\r\n",
    );
    assert_eq!(req.body, b"0123456789");
}

// ---- keep-alive rules --------------------------------------------------------------

#[test]
fn keep_alive_rules() {
    let ka = |bytes: &[u8]| one(bytes).keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n"
    ));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    ));
}

#[test]
fn max_requests_per_connection() {
    let (reqs, _) = drive(
        &[&GET.repeat(3)],
        &Limits::default().max_requests_per_connection(2),
    );
    let alive: Vec<bool> = reqs.iter().map(|r| r.keep_alive).collect();
    assert_eq!(alive, [true, false, false]);
}

// ---- split invariance ----------------------------------------------------------------

/// A stream exercising every framing, ending with a partial request.
fn mixed_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(GET);
    s.extend_from_slice(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    s.extend_from_slice(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n");
    s.extend_from_slice(b"\r\nHEAD /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    s.extend_from_slice(GET);
    s.extend_from_slice(b"GET /partial HTTP/1.1\r\nHost: t\r\nHo");
    s
}

fn assert_split_invariant(stream: &[u8]) {
    let limits = Limits::default();
    let whole = drive(&[stream], &limits);
    for i in 0..=stream.len() {
        assert_eq!(
            drive(&[&stream[..i], &stream[i..]], &limits),
            whole,
            "split at {i}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(drive(&bytes, &limits), whole, "byte by byte");
}

#[test]
fn split_anywhere_gives_same_requests() {
    let stream = mixed_stream();
    let (reqs, err) = drive(&[&stream], &Limits::default());
    assert_eq!((reqs.len(), err), (5, None));
    assert_eq!(reqs[2].body, b"abc0123456789abcdef");
    assert_split_invariant(&stream);
}

#[test]
fn split_anywhere_gives_same_error() {
    let tails: [&[u8]; 6] = [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdX\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nY: b\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT\0: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    ];
    for tail in tails {
        let mut stream = GET.to_vec();
        stream.extend_from_slice(tail);
        assert!(drive(&[&stream], &Limits::default()).1.is_some());
        assert_split_invariant(&stream);
    }
}

#[test]
fn split_invariant_at_head_limit() {
    let limits = Limits::default().max_head_bytes(40);
    for len in [39, 40, 41] {
        let mut stream = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
        stream.resize(len - 4, b'a');
        stream.extend_from_slice(b"\r\n\r\nGET");
        let whole = drive(&[&stream], &limits);
        for i in 0..=stream.len() {
            assert_eq!(
                drive(&[&stream[..i], &stream[i..]], &limits),
                whole,
                "len {len} split {i}"
            );
        }
    }
}

#[test]
fn shorter_buffer_after_partial_restarts() {
    let full =
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut parser = RequestParser::new(Limits::default());
    assert!(parser.parse(&full[..60]).map(|s| s.is_partial()) == Ok(true));
    assert!(parser.in_body());
    assert!(parser.parse(&full[..20]).map(|s| s.is_partial()) == Ok(true));
    let Ok(Status::Complete { request, consumed }) = parser.parse(full) else {
        panic!("not complete")
    };
    assert_eq!((request.body(), consumed), (&b"hello"[..], full.len()));
}
