//! Path parameters are percent-decoded after the path is split (so `%2F` is never a
//! separator), on buffered, streaming and offload routes alike; malformed escapes,
//! an encoded NUL, and `%2F` inside a catch-all are 400 before the route runs; the
//! raw value stays available. Raw sockets, both backends.

mod support;

use ringcore::http::{BodyHandler, HttpConn, Limits, Request, Response, Router};
use support::http::{get, Closed, HttpClient};
use support::{for_each_backend, start_server};

fn show(name: &'static str) -> impl Fn(&Request<'_>, &mut Response) + Send + Sync + 'static {
    move |req: &Request<'_>, res: &mut Response| {
        res.set_body(render(name, req).as_bytes());
    }
}

/// `name k=decoded(raw) ...`
fn render(name: &str, req: &Request<'_>) -> String {
    let mut out = name.to_string();
    for ((k, v), (_, raw)) in req.params().iter().zip(req.raw_params()) {
        out.push_str(&format!(" {k}={v}({raw})"));
    }
    out
}

/// A streaming route that answers with its parameters at the end.
struct Shown(String);

impl BodyHandler for Shown {
    fn on_body(&mut self, _: &[u8]) {}
    fn on_end(&mut self, res: &mut Response) {
        res.set_body(self.0.as_bytes());
    }
}

fn router() -> Router {
    Router::new()
        .get("/users/:id", show("user"))
        .get("/files/*rest", show("files"))
        .get("/u/:id/*rest", show("both"))
        .stream("POST", "/up/:name", |req: &Request<'_>| {
            Box::new(Shown(render("up", req))) as Box<dyn BodyHandler>
        })
        .offload("GET", "/job/:name", |req: &Request<'_>| {
            let text = render("job", req);
            move |res: &mut Response| {
                res.set_body(text.as_bytes());
            }
        })
}

/// The 400 body for a malformed escape.
const BAD_ESCAPE: &str = "Bad Request: invalid percent-encoding in the path\n";

#[test]
fn params_are_decoded_per_segment_and_bad_ones_are_400() {
    for_each_backend(|backend| {
        let server = start_server(
            backend,
            |b| b.workers(1),
            HttpConn::factory(router(), Limits::default()),
        );
        let mut c = HttpClient::connect(server.addr);
        for (target, status, body) in [
            ("/users/42", 200, "user id=42(42)"),
            ("/users/a%20b", 200, "user id=a b(a%20b)"),
            (
                "/users/%C3%A9t%C3%A9",
                200,
                "user id=\u{e9}t\u{e9}(%C3%A9t%C3%A9)",
            ),
            // One segment: %2F is a byte of the value, and did not split the path.
            ("/users/a%2Fb", 200, "user id=a/b(a%2Fb)"),
            ("/users/%2e%2e", 200, "user id=..(%2e%2e)"),
            ("/users/a+b?q=%zz", 200, "user id=a+b(a+b)"),
            (
                "/files/css/a%20b.css",
                200,
                "files rest=css/a b.css(css/a%20b.css)",
            ),
            ("/files/", 200, "files rest=()"),
            ("/u/%41/x/%42", 200, "both id=A(%41) rest=x/B(x/%42)"),
            ("/job/a%26b", 200, "job name=a&b(a%26b)"),
            // Refused before the route runs.
            ("/users/%zz", 400, BAD_ESCAPE),
            ("/users/a%4", 400, BAD_ESCAPE),
            ("/users/a%", 400, BAD_ESCAPE),
            (
                "/users/a%00b",
                400,
                "Bad Request: an encoded NUL (%00) in the path\n",
            ),
            (
                "/users/%ff",
                400,
                "Bad Request: the decoded path is not UTF-8\n",
            ),
            (
                "/files/a%2Fb/c",
                400,
                "Bad Request: an encoded slash (%2F) inside a path segment\n",
            ),
            ("/job/%zz", 400, BAD_ESCAPE),
            // No route, nothing to decode: still 404.
            ("/nope/%zz", 404, "Not Found\n"),
        ] {
            c.send(&get("GET", target, ""));
            let r = c.read_response(false);
            assert_eq!(r.status, status, "{target}");
            assert_eq!(String::from_utf8_lossy(&r.body), body, "{target}");
            assert!(!r.says_close(), "{target}: kept alive");
        }
        // A streaming route: decoded at the head, before any body byte.
        c.send(b"POST /up/a%20b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        let r = c.read_response(false);
        assert_eq!((r.status, &r.body[..]), (200, &b"up name=a b(a%20b)"[..]));
        // A bad one is 400 and, with Expect: 100-continue, no 100 first: the body
        // is never asked for.
        c.send(
            b"POST /up/%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\
              Expect: 100-continue\r\n\r\n",
        );
        let r = c.read_response(false);
        assert_eq!(r.status, 400);
        assert!(r.says_close());
        assert_eq!(c.expect_closed(), Closed::Eof);
        drop(c);
        server.wait_counters("closed", |c| c.open_conns == 0);
        assert_eq!(server.stop().panics, 0);
    });
}
