//! HTTP/1.1 server: TechEmpower `/plaintext` and `/json`, plus `/metrics`, and a small
//! service (`examples/http_app/routes.rs`): `POST /echo` (streamed), `/counter`
//! (shared state) and `/hash?rounds=N` (CPU-heavy work off the worker).
//!
//! `cargo run --release --example http -- --addr 127.0.0.1:8080 --workers 1 [--backend epoll] [--sqpoll]`
//!
//! HTTPS: add `--tls-cert cert.pem --tls-key key.pem` (see `docs/tls.md`).
//!
//! `/metrics` prints the runtime's counters, responses by status code and a request
//! latency histogram in Prometheus text format (docs/operations.md lists them), and per
//! worker a histogram of TCP round-trip times and retransmit counters from `TCP_INFO`,
//! sampled once per connection just before its socket closes (`Handler::on_closing`).
//! `--access-log PATH|-` writes one line per request (combined or `--access-log-format
//! json`). SIGINT/SIGTERM drain (`--drain-timeout`), a second one exits at once,
//! SIGHUP reopens the access log; under systemd it notifies readiness and serves on
//! socket-activated listeners.
//!
//! ```text
//! curl --data-binary @big.file http://127.0.0.1:8080/echo -o copy
//! curl -X POST http://127.0.0.1:8080/counter
//! curl 'http://127.0.0.1:8080/hash?rounds=1000000'
//! ```

mod common;
#[path = "http_app/routes.rs"]
mod routes;

use clap::Parser;
use ringcore::http::{
    AccessLog, AccessRecord, HttpConn, Limits, Request, Response, ResponseStats, Router,
};
use ringcore::{ConnInfo, Handle, TcpStats};
use std::sync::{Arc, OnceLock};

/// ringcore HTTP/1.1 example server.
#[derive(Parser, Debug)]
#[command(name = "ringcore-http", version)]
struct Args {
    /// Address to listen on: ip:port, [ipv6]:port ([::]:PORT is dual-stack), unix:/path or unix:@name.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    #[command(flatten)]
    access: common::access::AccessArgs,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    /// Requests per keep-alive connection before `Connection: close` (0: unlimited,
    /// the default here so load generators that do not reconnect can be used; nginx's
    /// default is 1000).
    #[arg(long, default_value_t = 0)]
    max_requests: u32,
    /// Offload threads per worker (for `/hash`).
    #[arg(long, default_value_t = ringcore::net::DEFAULT_OFFLOAD_THREADS)]
    offload_threads: usize,
    /// Offload jobs that may wait per worker beyond the running ones; more are
    /// answered `503` with `Retry-After: 1`.
    #[arg(long, default_value_t = ringcore::net::DEFAULT_OFFLOAD_QUEUE)]
    offload_queue: usize,
    /// Deadline of an offloaded job, e.g. 30s (then `504`; its late result is dropped).
    #[arg(long, default_value = "30s", value_parser = common::parse_duration)]
    offload_timeout: std::time::Duration,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();
static TLS: OnceLock<ringcore::tls::TlsAcceptor> = OnceLock::new();
static STATS: OnceLock<ResponseStats> = OnceLock::new();
static ACCESS: OnceLock<AccessLog> = OnceLock::new();
/// TCP_INFO aggregates (RTT histogram, retransmits) per worker, for `/metrics`.
static TCP_STATS: OnceLock<Arc<TcpStats>> = OnceLock::new();

/// Serializes `{"message": msg}` per request, escaping as JSON requires.
fn json(_: &Request<'_>, res: &mut Response) {
    let msg = "Hello, World!";
    let body = res.body_mut();
    body.extend_from_slice(b"{\"message\":\"");
    for c in msg.chars() {
        match c {
            '"' => body.extend_from_slice(b"\\\""),
            '\\' => body.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                body.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => body.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    body.extend_from_slice(b"\"}");
    res.set_content_type("application/json");
}

fn metrics(_: &Request<'_>, res: &mut Response) {
    let mut text = HANDLE
        .get()
        .map(|h| h.metrics().to_prometheus())
        .unwrap_or_default();
    if let Some(s) = STATS.get() {
        text.push_str(&s.to_prometheus());
    }
    if let Some(log) = ACCESS.get() {
        text.push_str(&common::access::prometheus(log));
    }
    if let Some(tls) = TLS.get() {
        text.push_str(&tls.stats().to_prometheus());
    }
    if let Some(s) = TCP_STATS.get() {
        s.write_prometheus(&mut text);
    }
    res.set_content_type("text/plain; version=0.0.4")
        .set_body(text.as_bytes());
}

/// The benchmark routes (`/plaintext`, `/json`) and `/metrics`.
fn bench_routes() -> Router {
    Router::new()
        // The same bytes every time but for the Date: rendered once, Date patched in.
        .fixed("GET", "/plaintext", 200, "text/plain", b"Hello, World!")
        .get("/json", json)
        .get("/metrics", metrics)
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    // Read by each worker as it starts: set before the runtime runs.
    ringcore::OffloadLimits {
        threads: args.offload_threads,
        queue: args.offload_queue,
    }
    .set();
    let rt = args.rt.runtime()?;
    let _ = HANDLE.set(rt.handle());
    let tls = args.tls.acceptor()?;
    if let Some(t) = &tls {
        let _ = TLS.set(t.clone());
    }
    let listeners = common::listeners(&args.addr, &rt)?;
    let log = args.access.open()?;
    if let Some(l) = &log {
        let _ = ACCESS.set(l.clone());
    }
    let stats = STATS.get_or_init(|| ResponseStats::new(rt.config().workers));
    eprintln!(
        "http: listening on {}://{} with {} worker(s), backend {}",
        common::tls::scheme(&tls),
        listeners.addr(),
        rt.config().workers,
        common::backend_name(&rt),
    );
    let router = routes::service(bench_routes(), Arc::new(routes::AppState::default()));
    let max = if args.max_requests == 0 {
        u32::MAX
    } else {
        args.max_requests
    };
    let limits = Limits::default()
        .max_requests_per_connection(max)
        .offload_timeout(args.offload_timeout);
    // Every response is counted (status, latency) and, with --access-log, logged.
    let log2 = log.clone();
    let hook: ringcore::http::AccessHook = Arc::new(move |r: &AccessRecord<'_>| {
        stats.record(r);
        if let Some(l) = &log2 {
            l.record(r);
        }
    });
    let base = HttpConn::factory(router, limits);
    common::report_status(rt.handle(), args.rt.status_interval);
    // Each connection is also sampled (TCP_INFO) once as it closes, for /metrics.
    let tcp_stats = TCP_STATS.get_or_init(|| TcpStats::new(rt.config().workers));
    let detail = log.is_some();
    let factory = tcp_stats.wrap(move |info: &ConnInfo| {
        if detail {
            base(info).with_access_log(info.peer_addr(), hook.clone())
        } else {
            base(info).with_response_hook(hook.clone())
        }
    });
    let served = common::tls::serve(&rt, listeners, tls, factory);
    common::teardown(served, None, ACCESS.get())
}
