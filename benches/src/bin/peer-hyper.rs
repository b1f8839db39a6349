//! Peer server on hyper 1.x over tokio's `current_thread` runtime: `/plaintext` and
//! `/json` as in ringcore's `http` example, keep-alive, pipelined requests answered
//! in one flush (`pipeline_flush`), the way hyper's TechEmpower entry runs it.
//!
//! `taskset -c 0 peer-hyper --addr 127.0.0.1:7003`
//! (built with `--features http-peers`; `benches/compare --servers hyper`)

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// hyper 1.x peer server (tokio current_thread, one thread).
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7003")]
    addr: SocketAddr,
    /// Accepted for symmetry with the other peers; only `http` is served.
    #[arg(long, default_value = "http")]
    mode: String,
}

static PLAINTEXT: &[u8] = b"Hello, World!";

/// The two TechEmpower routes; anything else is 404. hyper adds `Date` and
/// `Content-Length` itself.
async fn route(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (ctype, body) = match req.uri().path() {
        "/plaintext" => ("text/plain", Bytes::from_static(PLAINTEXT)),
        "/json" => (
            "application/json",
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({ "message": "Hello, World!" }))
                    .unwrap_or_default(),
            ),
        ),
        _ => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Ok(r);
        }
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(SERVER, HeaderValue::from_static("hyper"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode != "http" {
        anyhow::bail!(
            "peer-hyper serves HTTP only (--mode http), got {:?}",
            args.mode
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!("peer-hyper: listening on {}", listener.local_addr()?);
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("peer-hyper: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            tokio::task::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .pipeline_flush(true)
                    .serve_connection(TokioIo::new(s), service_fn(route))
                    .await;
            });
        }
    })
}
