//! The router (patterns, precedence, methods, conflicts) and the session's body
//! rules (per-route limits, `Expect: 100-continue`, offload routes, streamed
//! responses), socket-free.

use super::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn date() -> DateCache {
    DateCache::new(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
}

/// A route answering `name` and its parameters, so tests see which route ran.
fn says(name: &'static str) -> impl Fn(&Request<'_>, &mut Response) + Send + Sync + 'static {
    move |req: &Request<'_>, res: &mut Response| {
        let mut body = name.to_string();
        for (k, v) in req.params() {
            body.push_str(&format!(" {k}={v}"));
        }
        res.set_body(body.as_bytes());
    }
}

/// Serves `bytes` (whole requests) and returns the output as text.
fn run(router: &Router, bytes: &[u8]) -> (String, Progress) {
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let p = session.on_data(bytes, router, &date(), &mut out);
    (String::from_utf8_lossy(&out).into_owned(), p)
}

fn req(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

fn body_of(method: &str, router: &Router, target: &str) -> String {
    let (text, _) = run(router, &req(method, target));
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn status_of(method: &str, router: &Router, target: &str) -> String {
    run(router, &req(method, target)).0[9..12].to_string()
}

fn panic_message(f: impl FnOnce() -> Router) -> String {
    let e = catch_unwind(AssertUnwindSafe(f)).expect_err("should panic");
    e.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn precedence_exact_then_param_then_prefix() {
    // Registered least specific first: the order of registration does not matter.
    let r = Router::new()
        .get("/*all", says("all"))
        .get("/users/*rest", says("users-rest"))
        .get("/users/:id", says("user"))
        .get("/users/me", says("me"))
        .get("/a/:x/c", says("axc"))
        .get("/a/b/:y", says("aby"));
    assert_eq!(body_of("GET", &r, "/users/me"), "me");
    assert_eq!(body_of("GET", &r, "/users/42?x=1"), "user id=42");
    assert_eq!(
        body_of("GET", &r, "/users/42/posts"),
        "users-rest rest=42/posts"
    );
    assert_eq!(body_of("GET", &r, "/users/"), "users-rest rest=");
    assert_eq!(body_of("GET", &r, "/users"), "all all=users");
    assert_eq!(body_of("GET", &r, "/a/b/c"), "aby y=c");
    assert_eq!(body_of("GET", &r, "/a/z/c"), "axc x=z");
    assert_eq!(body_of("GET", &r, "/"), "all all=");
}

#[test]
fn closures_hold_state() {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let r = Router::new().get("/hit", move |_: &Request<'_>, res: &mut Response| {
        let n = h.fetch_add(1, Ordering::Relaxed) + 1;
        res.set_body(n.to_string().as_bytes());
    });
    assert_eq!(body_of("GET", &r, "/hit"), "1");
    assert_eq!(body_of("GET", &r, "/hit"), "2");
    assert_eq!(hits.load(Ordering::Relaxed), 2);
}

#[test]
fn not_found_and_method_not_allowed_with_allow() {
    let r = Router::new()
        .get("/x", says("get"))
        .post("/x", says("post"))
        .route("DELETE", "/u/:id", says("del"))
        .post("/only", says("p"));
    assert_eq!(status_of("GET", &r, "/nope"), "404");
    let (text, p) = run(&r, &req("PUT", "/x"));
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(
        text.contains("\r\nAllow: GET, HEAD, POST, OPTIONS\r\n"),
        "{text}"
    );
    assert!(!p.close, "405 keeps the connection");
    let (text, _) = run(&r, &req("GET", "/u/1"));
    assert!(text.contains("\r\nAllow: DELETE, OPTIONS\r\n"), "{text}");
    // HEAD where only POST exists is 405 too (HEAD follows GET only).
    let (text, _) = run(&r, &req("HEAD", "/only"));
    assert!(text.starts_with("HTTP/1.1 405 ") && text.contains("Allow: POST, OPTIONS\r\n"));
    // HEAD runs GET and drops the body.
    let (text, _) = run(&r, &req("HEAD", "/x"));
    assert!(text.starts_with("HTTP/1.1 200 ") && text.ends_with("Content-Length: 3\r\n\r\n"));
}

#[test]
fn options_is_answered_with_allow() {
    let r = Router::new()
        .get("/x", says("get"))
        .route("OPTIONS", "/own", says("own"));
    let (text, p) = run(&r, &req("OPTIONS", "/x"));
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"), "{text}");
    assert!(text.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"), "{text}");
    assert!(!text.contains("Content-Length"), "{text}");
    assert!(!p.close);
    assert_eq!(body_of("OPTIONS", &r, "/own"), "own");
    assert_eq!(status_of("OPTIONS", &r, "/nope"), "404");
}

#[test]
fn explicit_head_route_wins_over_get() {
    let r = Router::new().get("/x", says("get")).route(
        "HEAD",
        "/x",
        |_: &Request<'_>, res: &mut Response| {
            res.set_status(204);
        },
    );
    assert_eq!(status_of("HEAD", &r, "/x"), "204");
    let (text, _) = run(&r, &req("PUT", "/x"));
    assert!(text.contains("Allow: GET, HEAD, OPTIONS\r\n"), "{text}");
}

#[test]
fn conflicts_panic_with_a_clear_message() {
    let m = panic_message(|| Router::new().get("/x", says("a")).get("/x", says("b")));
    assert!(m.contains("GET \"/x\" is registered twice"), "{m}");
    let m = panic_message(|| {
        Router::new()
            .get("/u/:id", says("a"))
            .post("/u/:name", says("b"))
    });
    assert!(m.contains("\"/u/:name\" conflicts with \"/u/:id\""), "{m}");
    let m = panic_message(|| {
        Router::new()
            .get("/s/*a", says("a"))
            .get("/s/*b", says("b"))
    });
    assert!(m.contains("conflicts"), "{m}");
    let m = panic_message(|| Router::new().get("nope", says("a")));
    assert!(m.contains("must start with '/'"), "{m}");
    let m = panic_message(|| Router::new().get("/a?b=1", says("a")));
    assert!(m.contains("no query"), "{m}");
    let m = panic_message(|| Router::new().route("GE T", "/a", says("a")));
    assert!(m.contains("invalid method"), "{m}");
    let m = panic_message(|| Router::new().body_limit(10));
    assert!(m.contains("before any route"), "{m}");
    // Same path, other methods, and overlapping but different shapes are fine.
    let _ = Router::new()
        .get("/u/:id", says("a"))
        .post("/u/:id", says("b"))
        .get("/u/:id/x", says("c"))
        .get("/u/*rest", says("d"));
}

#[test]
fn fn_pointers_still_work() {
    fn hello(_: &Request<'_>, res: &mut Response) {
        res.set_body(b"hi");
    }
    let route: Route = hello;
    let r = Router::new().get("/h", route).post("/p", hello);
    assert_eq!(body_of("GET", &r, "/h"), "hi");
}

// ---- bodies ----------------------------------------------------------------------

fn echo_len(req: &Request<'_>, res: &mut Response) {
    res.set_body(req.body().len().to_string().as_bytes());
}

fn post(target: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn per_route_body_limit_413() {
    let r = Router::new()
        .post("/small", echo_len)
        .body_limit(10)
        .post("/default", echo_len);
    assert!(run(&r, &post("/small", &[b'x'; 10], ""))
        .0
        .ends_with("\r\n\r\n10"));
    let (text, p) = run(&r, &post("/small", &[b'x'; 11], ""));
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_eq!(p.error, Some(413));
    // Chunked: found out when the body gets there.
    let chunked = b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n";
    assert_eq!(run(&r, chunked).1.error, Some(413));
    // Other routes keep Limits::max_buffered_body (64 KiB).
    let big = vec![b'y'; 64 * 1024];
    assert!(run(&r, &post("/default", &big, ""))
        .0
        .ends_with("\r\n\r\n65536"));
    assert_eq!(
        run(&r, &post("/default", &[b'y'; 64 * 1024 + 1], ""))
            .1
            .error,
        Some(413)
    );
}

#[test]
fn expect_continue_only_when_the_route_reads_the_body() {
    let r = Router::new().post("/read", echo_len).body_limit(4).fixed(
        "POST",
        "/fixed",
        200,
        "text/plain",
        b"ok",
    );
    let expect = "Expect: 100-continue\r\n";
    let head = |target: &str, n: usize| {
        format!("POST {target} HTTP/1.1\r\nHost: t\r\n{expect}Content-Length: {n}\r\n\r\n")
            .into_bytes()
    };
    // Read by the route: 100 Continue, then the answer once the body is in.
    let (text, p) = run(&r, &head("/read", 3));
    assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(!p.close);
    // Not read: the final status at once, no 100, Connection: close, lingering.
    for (target, status) in [("/fixed", "200"), ("/nope", "404")] {
        let (text, p) = run(&r, &head(target, 3));
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{target}: {text}"
        );
        assert!(!text.contains("100 Continue"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(p.close && p.linger, "{p:?}");
    }
    let (text, p) = run(&r, &req("GET", "/read").replace_ascii(expect));
    assert!(text.starts_with("HTTP/1.1 405 ") && p.linger, "{text}");
    // Over the route's limit: 413 without 100.
    let (text, p) = run(&r, &head("/read", 5));
    assert!(
        text.starts_with("HTTP/1.1 413 ") && !text.contains("100"),
        "{text}"
    );
    assert_eq!(p.error, Some(413));
    // No Expect: a fixed route reads and drops the body and keeps the connection.
    let (text, p) = run(&r, &post("/fixed", b"abc", ""));
    assert!(
        text.starts_with("HTTP/1.1 200 ") && !p.close && !p.linger,
        "{text}"
    );
}

trait WithHeader {
    fn replace_ascii(self, header: &str) -> Vec<u8>;
}

impl WithHeader for Vec<u8> {
    /// Adds `header` (a `Name: value\r\n` line) and a 3-byte length to a bodiless request.
    fn replace_ascii(self, header: &str) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        text.replacen(
            "\r\n\r\n",
            &format!("\r\n{header}Content-Length: 3\r\n\r\n"),
            1,
        )
        .into_bytes()
    }
}

#[test]
fn offload_route_waits_for_its_job() {
    let r = Router::new()
        .offload("POST", "/work", |req: &Request<'_>| {
            let n = req.body().len();
            move |res: &mut Response| {
                res.set_body(format!("done {n}").as_bytes());
            }
        })
        .get("/after", says("after"));
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let mut input = post("/work", b"abcd", "");
    input.extend_from_slice(&req("GET", "/after"));
    let p = session.on_data(&input, &r, &date(), &mut out);
    // The first request is consumed; the pipelined one waits.
    assert!(p.paused && !p.close);
    assert_eq!(p.consumed, input.len() - req("GET", "/after").len());
    assert!(out.is_empty() && session.is_waiting());
    let job = session.take_offload().expect("a job");
    assert!(session.take_offload().is_none(), "handed out once");
    // Nothing is served while it waits.
    let again = session.on_data(&input[p.consumed..], &r, &date(), &mut out);
    assert_eq!((again.consumed, again.paused), (0, true));
    let res = job.run();
    assert!(session.complete_offload(Some(&res), &date(), &mut out));
    assert!(String::from_utf8_lossy(&out).ends_with("\r\n\r\ndone 4"));
    assert!(!session.is_waiting());
    out.clear();
    session.on_data(&input[p.consumed..], &r, &date(), &mut out);
    assert!(String::from_utf8_lossy(&out).ends_with("\r\n\r\nafter"));
    // A job that panicked: 500.
    session.on_data(&post("/work", b"", ""), &r, &date(), &mut out);
    let _ = session.take_offload();
    out.clear();
    assert!(session.complete_offload(None, &date(), &mut out));
    assert!(out.starts_with(b"HTTP/1.1 500 "));
    // Router::serve, called directly, runs it inline.
    let bytes = post("/work", b"xy", "");
    let mut parser = RequestParser::new(Limits::default());
    let Ok(Status::Complete { request, .. }) = parser.parse(&bytes) else {
        panic!("complete request")
    };
    out.clear();
    assert!(r.serve(&request, &mut Response::new(), &date(), &mut out));
    assert!(out.ends_with(b"\r\n\r\ndone 2"));
}

/// Answers with each piece as it arrives.
struct Echo;

impl BodyHandler for Echo {
    fn on_body(&mut self, _: &[u8]) {}
    fn on_body_out(&mut self, piece: &[u8], out: &mut BodyOut<'_>) {
        out.header("X-Echo", b"1")
            .start(200, "text/plain")
            .write(piece);
    }
    fn on_end(&mut self, res: &mut Response) {
        res.set_body(b"!");
    }
}

#[test]
fn streamed_response_while_the_body_arrives() {
    let r = Router::new().stream("POST", "/echo", |_: &Request<'_>| {
        Box::new(Echo) as Box<dyn BodyHandler>
    });
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab";
    let p = session.on_data(head, &r, &date(), &mut out);
    assert_eq!(p.consumed, head.len());
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("\r\nTransfer-Encoding: chunked\r\nX-Echo: 1\r\n\r\n2\r\nab\r\n"),
        "{text}"
    );
    out.clear();
    let p = session.on_data(b"cde", &r, &date(), &mut out);
    assert!(!p.close);
    assert_eq!(out, b"3\r\ncde\r\n1\r\n!\r\n0\r\n\r\n");
    // HTTP/1.0: raw bytes, then close.
    let mut session = Session::new(Limits::default());
    out.clear();
    let p = session.on_data(
        b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
        &r,
        &date(),
        &mut out,
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        p.close && text.contains("Connection: close\r\n") && text.ends_with("\r\n\r\nhi!"),
        "{text}"
    );
}

#[test]
fn streamed_response_cut_short_by_a_bad_body_sends_no_error_after_it() {
    let r = Router::new().stream("POST", "/echo", |_: &Request<'_>| {
        Box::new(Echo) as Box<dyn BodyHandler>
    });
    let mut session = Session::new(Limits::default());
    let mut out = Vec::new();
    let bytes = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n";
    let p = session.on_data(bytes, &r, &date(), &mut out);
    assert_eq!((p.consumed, p.error), (bytes.len(), None));
    let p = session.on_data(b"zz\r\n", &r, &date(), &mut out);
    assert_eq!(p.error, Some(400));
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with("2\r\nab\r\n"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
}
