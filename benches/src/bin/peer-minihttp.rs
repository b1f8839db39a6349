//! Peer server on may_minihttp (stackful coroutines on the `may` runtime, one of the
//! fastest Rust HTTP/1 stacks in TechEmpower's plaintext test): `/plaintext` and
//! `/json` as in ringcore's `http` example, keep-alive, pipelined requests answered
//! in one write.
//!
//! `taskset -c 0 peer-minihttp --addr 127.0.0.1:7004`
//! (built with `--features http-peers`; `benches/compare --servers minihttp`)

use clap::Parser;
use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};
use std::io;
use std::net::SocketAddr;

/// may_minihttp peer server (one `may` worker thread).
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7004")]
    addr: SocketAddr,
    /// Accepted for symmetry with the other peers; only `http` is served.
    #[arg(long, default_value = "http")]
    mode: String,
    /// `may` worker threads (the other peers and ringcore run one).
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// The two TechEmpower routes; may_minihttp adds `Server`, `Date` and
/// `Content-Length` itself.
struct Bench;

impl HttpService for Bench {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        match req.path() {
            "/plaintext" => rsp.header("Content-Type: text/plain").body("Hello, World!"),
            "/json" => {
                rsp.header("Content-Type: application/json");
                let v = serde_json::json!({ "message": "Hello, World!" });
                serde_json::to_writer(bytes::BufMut::writer(rsp.body_mut()), &v)
                    .map_err(io::Error::other)?;
            }
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

/// One service value per connection.
struct Factory;

impl HttpServiceFactory for Factory {
    type Service = Bench;

    fn new_service(&self, _id: usize) -> Bench {
        Bench
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode != "http" {
        anyhow::bail!(
            "peer-minihttp serves HTTP only (--mode http), got {:?}",
            args.mode
        );
    }
    // 16 KiB coroutine stacks (its TechEmpower entry uses 4 KiB with a lighter JSON
    // serializer than serde_json); one worker
    // thread like every other server in the comparison.
    may::config()
        .set_workers(args.workers)
        .set_pool_capacity(1000)
        .set_stack_size(0x4000);
    let server = Factory.start(args.addr)?;
    eprintln!("peer-minihttp: listening on {}", args.addr);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("may_minihttp server coroutine panicked"))?;
    Ok(())
}
