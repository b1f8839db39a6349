//! HTTP/1.1 hardening over real sockets: the `Host` rules of RFC 9112 section 3.2 and
//! over-long methods, lingering close after an error (capped), bounded request-body
//! memory (streamed bodies, the buffered cap, the body-read deadline) and bounded
//! output for a client that pipelines and never reads.

mod support;

use ringcore::http::{HttpConn, Limits, Request, Response, Router};
use ringcore::BackendKind;
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server, TestServer};

fn plaintext(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain")
        .set_body(b"Hello, World!");
}

fn echo(req: &Request<'_>, res: &mut Response) {
    res.set_content_type("application/octet-stream")
        .set_body(req.body());
}

fn router() -> Router {
    Router::new()
        .get("/plaintext", plaintext)
        .post("/echo", echo)
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
