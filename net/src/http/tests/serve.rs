//! Response rendering, routing and the session loop.

use super::*;
use std::time::{Duration, SystemTime};

// ---- responses, router, session -------------------------------------------------------

fn date() -> DateCache {
    DateCache::new(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
}

#[test]
fn renders_plaintext_response() {
    let mut out = Vec::new();
    assert!(write_response(
        &mut out,
        &date(),
        Reply::default(),
        200,
        "text/plain",
        b"Hello, World!"
    ));
    let want = "HTTP/1.1 200 OK\r\nServer: ringcore\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    assert_eq!(String::from_utf8_lossy(&out), want);
}

#[test]
fn renders_head_close_and_http10() {
    let render = |reply: Reply, status: u16| {
        let mut out = Vec::new();
        write_response(&mut out, &date(), reply, status, "text/plain", b"body");
        String::from_utf8(out).unwrap_or_default()
    };
    let head = render(
        Reply {
            head: true,
            ..Reply::default()
        },
        200,
    );
    assert!(head.ends_with("Content-Length: 4\r\n\r\n"), "{head}");
    let close = render(
        Reply {
            keep_alive: false,
            ..Reply::default()
        },
        200,
    );
    assert!(close.ends_with("Connection: close\r\n\r\nbody"), "{close}");
    let old = render(
        Reply {
            minor: 0,
            ..Reply::default()
        },
        200,
    );
    assert!(old.contains("Connection: keep-alive\r\n"), "{old}");
    let no_content = render(Reply::default(), 204);
    assert!(
        !no_content.contains("Content-Length") && no_content.ends_with("\r\n\r\n"),
        "{no_content}"
    );
}

#[test]
fn renders_errors() {
    let mut out = Vec::new();
    write_error(&mut out, &date(), &Error::new(431, "x"));
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "Content-Length: 36\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large\n"
        ),
        "{text}"
    );
}

#[test]
fn response_builder_rejects_splitting() {
    let mut res = Response::new();
    res.set_status(201)
        .header("X-Ok", b"1")
        .header("X-Bad", b"a\r\nSet-Cookie: x")
        .header("Bad Name", b"v");
    res.body_mut().extend_from_slice(b"made");
    let mut out = Vec::new();
    assert!(!res
        .set_close()
        .write_to(&mut out, &date(), Reply::default()));
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
    assert!(
        text.ends_with("Connection: close\r\nX-Ok: 1\r\n\r\nmade") && !text.contains("Set-Cookie"),
        "{text}"
    );
}

fn hello(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain")
        .set_body(b"Hello, World!");
}

fn echo(req: &Request<'_>, res: &mut Response) {
    res.set_body(req.body());
}

fn router() -> Router {
    Router::new().get("/plaintext", hello).post("/echo", echo)
}

fn serve(bytes: &[u8]) -> (String, Progress) {
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let progress = session.on_data(bytes, &router(), &date(), &mut out);
    (String::from_utf8_lossy(&out).into_owned(), progress)
}

#[test]
fn router_statuses() {
    assert!(serve(b"GET /plaintext?x=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .0
        .ends_with("\r\n\r\nHello, World!"));
    assert!(serve(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .0
        .starts_with("HTTP/1.1 404 Not Found\r\n"));
    let (text, _) = serve(b"DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
            && text.contains("Allow: POST, OPTIONS\r\n"),
        "{text}"
    );
    let (text, _) = serve(b"HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(text.ends_with("Content-Length: 13\r\n\r\n"), "{text}");
    assert!(
        serve(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            .0
            .ends_with("\r\n\r\nhi")
    );
}

#[test]
fn session_pipelined_plaintext() {
    let mut stream = GET.repeat(16);
    stream.extend_from_slice(b"GET /plain");
    let (text, progress) = serve(&stream);
    assert_eq!((progress.consumed, progress.close), (GET.len() * 16, false));
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 16);
}

#[test]
fn session_stops_at_close_and_errors() {
    let mut stream = b"GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec();
    let first = stream.len();
    stream.extend_from_slice(GET);
    let (text, progress) = serve(&stream);
    assert_eq!((progress.consumed, progress.close), (first, true));
    assert_eq!(text.matches("HTTP/1.1").count(), 1);
    assert!(text.contains("Connection: close\r\n"));

    let mut stream = GET.to_vec();
    stream.extend_from_slice(
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    );
    let (text, progress) = serve(&stream);
    assert_eq!((progress.consumed, progress.close), (stream.len(), true));
    assert!(text.contains("HTTP/1.1 400 Bad Request\r\n"), "{text}");
}

#[test]
fn expect_continue_answered_once() {
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let head =
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    // The head is consumed (a buffered route keeps a copy); the client waits.
    let progress = session.on_data(head, &router(), &date(), &mut out);
    assert_eq!((progress.consumed, progress.close), (head.len(), false));
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    let progress = session.on_data(b"h", &router(), &date(), &mut out);
    assert_eq!(progress.consumed, 1);
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n", "not twice");
    out.clear();
    let progress = session.on_data(b"i", &router(), &date(), &mut out);
    assert_eq!(progress.consumed, 1);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(b"\r\n\r\nhi"));
}

#[test]
fn session_bounds_output_and_buffered_bodies() {
    let mut stream = GET.repeat(16);
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let p = session.on_data_bounded(&stream, &router(), &date(), &mut out, 1);
    assert!(
        p.paused && p.consumed == GET.len(),
        "one response, then paused"
    );
    stream.drain(..p.consumed);
    let p = session.on_data(&stream, &router(), &date(), &mut out);
    assert_eq!((p.consumed, p.paused), (stream.len(), false));
    let over = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 65537\r\n\r\n";
    let p = Session::new(Limits::default()).on_data(over, &router(), &date(), &mut out);
    assert_eq!((p.close, p.error), (true, Some(413)));
    // A chunked body over the cap is refused when it gets there.
    let mut session = Session::new(Limits::default().max_buffered_body(10));
    let chunked = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let p = session.on_data(chunked, &router(), &date(), &mut out);
    assert_eq!(p.consumed, chunked.len());
    let p = session.on_data(b"8\r\n12345678\r\n", &router(), &date(), &mut out);
    assert_eq!((p.consumed, p.error), (13, None));
    let p = session.on_data(b"8\r\n12345678\r\n", &router(), &date(), &mut out);
    assert_eq!(p.error, Some(413));
}

#[test]
fn http_conn_without_socket_pauses_resumes_and_lingers() {
    let limits = Limits::default()
        .max_queued_output(512)
        .max_requests_per_connection(u32::MAX);
    let mut conn = HttpConn::new(std::sync::Arc::new(router()), limits.clone());
    let stream = GET.repeat(2000);
    let reads: Vec<&[u8]> = stream.chunks(5000).collect();
    let (out, closed) = run_without_socket(&mut conn, &reads);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2000);
    assert!(!closed);
    // An error: its response, then the write side is shut (lingering close).
    let mut conn = HttpConn::new(std::sync::Arc::new(router()), limits);
    let mut stream = GET.repeat(3);
    stream.extend_from_slice(b"GARBAGE\r\n\r\n");
    stream.extend_from_slice(GET);
    let (out, closed) = run_without_socket(&mut conn, &[&stream]);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3);
    assert!(text.ends_with("400 Bad Request\n") && closed, "{text}");
}
