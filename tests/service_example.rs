//! `examples/service.rs`, the service README.md and docs/service.md show, runs as
//! shown (both backends, real sockets): state, a decoded path parameter with a body,
//! an offloaded call, and an outbound call whose reply becomes the answer (backend
//! up, answering 404, down). A client that goes away during a call aborts it. The
//! snippets in README.md and docs/service.md are the example file, byte for byte.

#[allow(dead_code)]
#[path = "../examples/service.rs"]
mod service;
mod support;

use ringcore::http::{Call, HttpConn, Limits, Request, Response, Router};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use support::client::{connect, set_linger_zero, syn_sent_to, unanswered_listener};
use support::http::{get, HttpClient};
use support::{for_each_backend, start_server};

const EXAMPLE: &str = include_str!("../examples/service.rs");

/// The first ```rust block after `marker` in `doc`.
fn snippet<'a>(doc: &'a str, marker: &str) -> &'a str {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"));
    let rest = &doc[at..];
    let start = rest.find("```rust").expect("a rust block");
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    &body[..body.find("```\n").expect("block end")]
}

#[test]
fn readme_and_docs_show_the_compiled_example() {
    let readme = include_str!("../README.md");
    let docs = include_str!("../docs/service.md");
    assert_eq!(
        snippet(readme, "## An HTTP service"),
        EXAMPLE,
        "README.md's service snippet must be examples/service.rs verbatim"
    );
    assert_eq!(
        snippet(docs, "## A complete service"),
        EXAMPLE,
        "docs/service.md's snippet must be examples/service.rs verbatim"
    );
}

fn prices() -> Router {
    Router::new().get("/price/:sym", |req: &Request<'_>, res: &mut Response| {
        match req.param("sym") {
            Some("ACME") => res.set_content_type("text/x-price").set_body(b"42.5\n"),
            _ => res.set_status(404).set_body(b"no such symbol\n"),
        };
    })
}

fn ask(c: &mut HttpClient, req: &[u8]) -> (u16, String) {
    c.send(req);
    let r = c.read_response(false);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// A port nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn the_service_answers_with_state_body_offload_and_a_backend_call() {
    for_each_backend(|backend| {
        let prices = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(prices(), Limits::default()),
        );
        let app = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(service::app(prices.addr), Limits::default()),
        );
        let mut c = HttpClient::connect(app.addr);
        assert_eq!(ask(&mut c, &get("GET", "/visits", "")), (200, "1\n".into()));
        assert_eq!(ask(&mut c, &get("GET", "/visits", "")), (200, "2\n".into()));
        let note = b"POST /notes/a%20b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(ask(&mut c, note), (201, "note a b: 5 bytes\n".into()));
        assert_eq!(ask(&mut c, &get("GET", "/hostname", "")).0, 200);
        assert_eq!(
            ask(&mut c, &get("GET", "/quote/ACME", "")),
            (200, "price: 42.5\n".into())
        );
        assert_eq!(
            ask(&mut c, &get("GET", "/quote/NOPE", "")),
            (502, "backend answered 404\n".into())
        );
        // Pipelined behind a call: answered in order once the call is done.
        let mut two = get("GET", "/quote/ACME", "");
        two.extend_from_slice(&get("GET", "/visits", ""));
        c.send(&two);
        assert_eq!(c.read_response(false).body, b"price: 42.5\n");
        assert_eq!(c.read_response(false).body, b"3\n");
        assert_eq!(c.buffered(), 0);
        drop(c);
        app.wait_counters("app closed", |c| c.open_conns == 0);
        prices.wait_counters("prices closed", |c| c.open_conns == 0);
        assert_eq!(app.stop().panics, 0);
        assert_eq!(prices.stop().panics, 0);

        // The backend is down: the answer closure gets the connect error.
        let app = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(service::app(dead_addr()), Limits::default()),
        );
        let mut c = HttpClient::connect(app.addr);
        let (status, body) = ask(&mut c, &get("GET", "/quote/ACME", ""));
        assert_eq!(status, 503);
        assert!(body.starts_with("backend unavailable: "), "{body}");
        assert!(body.to_lowercase().contains("refused"), "{body}");
        drop(c);
        app.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(app.stop().panics, 0);
    });
}

#[test]
fn default_answer_passes_through_and_a_gone_client_aborts_the_call() {
    for_each_backend(|backend| {
        // A backend that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        // A backend whose SYN gets no answer: the call's connect stays pending.
        let (_blackhole, hole) = unanswered_listener();
        let prices = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(prices(), Limits::default()),
        );
        let up = prices.addr;
        let router = Router::new()
            .call("GET", "/pass/:sym", move |req: &Request<'_>| {
                Call::get(
                    up,
                    &format!("/price/{}", req.raw_param("sym").unwrap_or("")),
                )
            })
            .call("GET", "/silent", move |_: &Request<'_>| {
                Call::get(silent_addr, "/").timeout(Duration::from_secs(3600))
            })
            .call("GET", "/blackholed", move |_: &Request<'_>| {
                Call::get(hole, "/").timeout(Duration::from_secs(3600))
            })
            .call("GET", "/dead", |_: &Request<'_>| {
                Call::get(dead_addr(), "/")
            });
        let app = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(router, Limits::default()),
        );
        let mut c = HttpClient::connect(app.addr);
        c.send(&get("GET", "/pass/ACME", ""));
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, &b"42.5\n"[..]));
        assert_eq!(r.header("content-type"), Some("text/x-price"));
        c.send(&get("GET", "/pass/X", ""));
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (404, &b"no such symbol\n"[..]));
        c.send(&get("GET", "/dead", ""));
        let r = c.read_response(false);
        assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
        // A client that resets while the call waits: the call's connection is aborted
        // (the silent backend sees EOF or a reset, long before the call's timeout).
        assert_eq!(c.buffered(), 0);
        drop(c);
        let mut gone = connect(app.addr);
        gone.write_all(&get("GET", "/silent", "")).unwrap();
        let (mut held, _) = silent.accept().unwrap();
        // A reset, not a FIN: a half-closed client still gets its answer.
        set_linger_zero(&gone);
        drop(gone);
        held.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let ended = loop {
            match held.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // the request itself
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(e) => panic!("the call was not aborted: {e}"),
            }
        };
        assert!(ended);
        app.wait_counters("closed", |c| c.open_conns == 0);
        // A client that resets while the call's connect is pending: the connect is
        // cancelled at once (before `Connecting::cancel`, it ran to its timeout).
        let mut gone = connect(app.addr);
        gone.write_all(&get("GET", "/blackholed", "")).unwrap();
        support::wait_until("the call's connect is pending", || {
            syn_sent_to(hole.port()) == 1
        });
        set_linger_zero(&gone);
        drop(gone);
        app.wait_counters("closed", |c| c.open_conns == 0);
        support::wait_until("the connect cancelled", || syn_sent_to(hole.port()) == 0);
        assert_eq!(app.stop().panics, 0);
        prices.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(prices.stop().panics, 0);
    });
}
