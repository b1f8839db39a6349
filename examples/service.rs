//! A small HTTP service on the router: state, a path parameter, a request body, an
//! offloaded blocking call and an outbound call to a backend.
//!
//! `cargo run --release --example service -- 127.0.0.1:8080 127.0.0.1:9000` (listen, backend)
//!
//! `main` takes the flags every example shares (`--workers`, `--backend`,
//! `--drain-timeout`, ...; `--help` lists them) and starts like the others (logging,
//! socket activation): that part is `examples/common`.

mod common;

use clap::Parser;
use ringcore::http::{Call, HttpConn, Limits, Request, Response, Router};
use ringcore::Serve;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The routes; `/quote/:sym` asks the HTTP server at `backend`.
pub fn app(backend: SocketAddr) -> Router {
    let visits = Arc::new(AtomicU64::new(0)); // state: shared by every worker
    Router::new()
        .get("/visits", move |_: &Request<'_>, res: &mut Response| {
            let n = visits.fetch_add(1, Ordering::Relaxed) + 1;
            res.set_body(format!("{n}\n").as_bytes());
        })
        // A path parameter (percent-decoded) and a body, buffered (at most 16 KiB: 413 above).
        .post("/notes/:id", |req: &Request<'_>, res: &mut Response| {
            let id = req.param("id").unwrap_or("");
            let text = format!("note {id}: {} bytes\n", req.body().len());
            res.set_status(201).set_body(text.as_bytes());
        })
        .body_limit(16 * 1024)
        // Blocking work runs on the worker's offload thread, not the worker.
        .offload("GET", "/hostname", |_: &Request<'_>| {
            |res: &mut Response| {
                let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                res.set_body(name.trim().as_bytes());
            }
        })
        // An outbound call (Conn::connect on this worker); its reply becomes the answer.
        .call("GET", "/quote/:sym", move |req: &Request<'_>| {
            let path = format!("/price/{}", req.raw_param("sym").unwrap_or(""));
            Call::get(backend, &path).answer(|reply, res: &mut Response| match reply {
                Ok(r) if r.head.status == 200 => {
                    let price = String::from_utf8_lossy(&r.body);
                    res.set_body(format!("price: {}\n", price.trim()).as_bytes());
                }
                Ok(r) => {
                    let text = format!("backend answered {}\n", r.head.status);
                    res.set_status(502).set_body(text.as_bytes());
                }
                Err(e) => {
                    let text = format!("backend unavailable: {e}\n");
                    res.set_status(503).set_body(text.as_bytes());
                }
            })
        })
}

/// ringcore small HTTP service example.
#[derive(Parser, Debug)]
#[command(name = "ringcore-service", version)]
struct Args {
    /// Address to listen on.
    #[arg(default_value = "127.0.0.1:8080")]
    addr: String,
    /// The HTTP server `/quote/:sym` asks, HOST:PORT.
    #[arg(default_value = "127.0.0.1:9000", value_name = "BACKEND")]
    prices: String,
    #[command(flatten)]
    rt: common::RuntimeArgs,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let prices = common::resolve("BACKEND", &args.prices)?;
    let (rt, listeners) = args.rt.start(&args.addr)?;
    let at = format!("http://{}", listeners.local_addr());
    common::announce("service", at, &rt);
    rt.serve(listeners, HttpConn::factory(app(prices), Limits::default()))?;
    Ok(())
}
