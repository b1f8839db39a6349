//! The service routes of `examples/http.rs` (also compiled into `tests/http_app.rs`):
//! a streamed echo, a stateful counter and an offloaded CPU-heavy hash.
//!
//! | route | what it shows |
//! | --- | --- |
//! | `POST /echo` | a request body (Content-Length or chunked) answered as it arrives, chunked: memory stays at one receive batch whatever the size (up to `Limits::max_body_bytes`) |
//! | `GET /counter`, `POST /counter` | state shared by every worker: an `Arc<AtomicU64>` held by the route closures |
//! | `GET /hash?rounds=N`, `POST /hash?rounds=N` | CPU-heavy work (N rounds of SipHash over the body) run off the worker with `Router::offload`; the worker keeps serving other connections |

use ringcore::http::{BodyHandler, BodyOut, Request, Response, Router};
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most rounds `/hash` accepts (a few seconds of CPU on one core).
pub const MAX_ROUNDS: u64 = 100_000_000;

/// State shared by every worker.
#[derive(Debug, Default)]
pub struct AppState {
    /// The `/counter` value.
    pub counter: AtomicU64,
}

/// Adds the service routes to `router`.
pub fn service(router: Router, state: Arc<AppState>) -> Router {
    let (read, bump) = (state.clone(), state);
    router
        .stream("POST", "/echo", echo)
        .get("/counter", move |_: &Request<'_>, res: &mut Response| {
            counter_body(res, read.counter.load(Ordering::Relaxed));
        })
        .post("/counter", move |_: &Request<'_>, res: &mut Response| {
            counter_body(res, bump.counter.fetch_add(1, Ordering::Relaxed) + 1);
        })
        .offload("GET", "/hash", hash)
        .offload("POST", "/hash", hash)
}

fn counter_body(res: &mut Response, n: u64) {
    res.set_content_type("text/plain")
        .set_body(format!("{n}\n").as_bytes());
}

/// `POST /echo`: the body comes back as it arrives.
fn echo(req: &Request<'_>) -> Box<dyn BodyHandler> {
    let content_type = match req.header("content-type") {
        Some(t) if t.starts_with(b"text/") => "text/plain",
        _ => "application/octet-stream",
    };
    Box::new(Echo { content_type })
}

struct Echo {
    content_type: &'static str,
}

impl BodyHandler for Echo {
    fn on_body(&mut self, _: &[u8]) {}

    fn on_body_out(&mut self, piece: &[u8], out: &mut BodyOut<'_>) {
        out.start(200, self.content_type).write(piece);
    }

    fn on_end(&mut self, res: &mut Response) {
        // Reached without a streamed head only for an empty body.
        res.set_content_type(self.content_type);
    }
}

/// `/hash?rounds=N`: reads its input on the worker, hashes on the offload thread.
fn hash(req: &Request<'_>) -> impl FnOnce(&mut Response) + Send + 'static {
    let rounds = rounds(req.query());
    let body = req.body().to_vec();
    move |res: &mut Response| match rounds {
        Ok(n) => {
            let digest = sip_rounds(&body, n);
            res.set_content_type("text/plain")
                .set_body(format!("{digest:016x}\n").as_bytes());
        }
        Err(why) => {
            res.set_status(400)
                .set_content_type("text/plain")
                .set_body(why.as_bytes());
        }
    }
}

/// The `rounds` query parameter (default 1).
fn rounds(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("rounds="));
    match value {
        None => Ok(1),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_ROUNDS).contains(&n) => Ok(n),
            _ => Err(format!("rounds must be 1..={MAX_ROUNDS}\n")),
        },
    }
}

/// `rounds` rounds of SipHash-1-3 (std's hasher, fixed keys), each over the input
/// and the previous digest.
pub fn sip_rounds(input: &[u8], rounds: u64) -> u64 {
    let mut digest = 0u64;
    for _ in 0..rounds {
        #[allow(deprecated)] // SipHasher: stable keys, which the digest must have
        let mut h = std::hash::SipHasher::new();
        h.write(input);
        h.write_u64(digest);
        digest = h.finish();
    }
    digest
}
