//! HTTP reverse proxy (gateway): `/api/...` is forwarded to an upstream HTTP server,
//! everything else is answered here (`/health`, `/metrics`).
//!
//! `cargo run --release --example gateway -- --addr 127.0.0.1:8081 --upstream 127.0.0.1:8080 --workers 1 [--backend epoll]`
//!
//! Try it in front of the http example:
//! `cargo run --release --example http -- --addr 127.0.0.1:8080` and
//! `curl -v http://127.0.0.1:8081/api/x` (the upstream answers 404 for `/api/x`: the
//! gateway passes the upstream's status through). An upstream that refuses gives
//! `502 Bad Gateway`; one that does not answer within `--response-timeout` gives
//! `504 Gateway Timeout`. Several `--upstream`s take turns (round-robin per worker);
//! one whose connect fails is skipped for `--upstream-down-time` (the choice is logged
//! at debug: `RUST_LOG=debug`).

mod common;

use clap::Parser;
use ringcore::http::{
    gateway_idle_connections, AccessHook, AccessRecord, GatewayConfig, GatewayConn, Limits,
    Request, Response, Router,
};
use ringcore::{ConnInfo, Handle, Serve};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// ringcore HTTP gateway example.
#[derive(Parser, Debug)]
#[command(name = "ringcore-gateway", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: String,
    /// Upstream HTTP server, HOST:PORT; repeat it for several (round-robin; one whose
    /// connect fails is skipped for --upstream-down-time and the request goes to the
    /// next; 502 when none is left).
    #[arg(long = "upstream", default_value = "127.0.0.1:8080")]
    upstreams: Vec<String>,
    /// With several upstreams: how long one whose connect failed is skipped, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = common::parse_duration)]
    upstream_down_time: Duration,
    /// Path prefix forwarded to the upstream.
    #[arg(long, default_value = "/api/")]
    prefix: String,
    /// Upstream connect timeout in milliseconds (then 504).
    #[arg(long, default_value_t = 5000)]
    connect_timeout: u64,
    /// Time for the upstream's response head, and between two reads of its body, in
    /// milliseconds (then 504, or a cut response once the head was sent).
    #[arg(long, default_value_t = 60_000)]
    response_timeout: u64,
    /// Idle upstream connections kept per worker (0: one per request).
    #[arg(long, default_value_t = 32)]
    pool: usize,
    /// Requests per client keep-alive connection before `Connection: close` (0:
    /// unlimited, so load generators that do not reconnect can be used; nginx's
    /// default is 1000).
    #[arg(long, default_value_t = 0)]
    max_requests: u32,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    #[command(flatten)]
    access: common::access::AccessArgs,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();

fn health(_: &Request<'_>, res: &mut Response) {
    res.set_content_type("text/plain").set_body(b"ok\n");
}

fn metrics(_: &Request<'_>, res: &mut Response) {
    let mut text = HANDLE
        .get()
        .map(|h| h.metrics().to_prometheus())
        .unwrap_or_default();
    // Routes run on the worker: this is the pool of the worker that answers.
    text.push_str(&format!(
        "# HELP ringcore_gateway_idle_upstream_connections Idle pooled upstream connections of the answering worker.\n\
         # TYPE ringcore_gateway_idle_upstream_connections gauge\n\
         ringcore_gateway_idle_upstream_connections {}\n",
        gateway_idle_connections()
    ));
    res.set_content_type("text/plain; version=0.0.4")
        .set_body(text.as_bytes());
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let upstreams = args
        .upstreams
        .iter()
        .map(|u| common::resolve("--upstream", u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let upstream = upstreams[0]; // clap's default makes the list non-empty

    // systemd socket activation if present, else --addr bound once per worker.
    let (rt, listeners) = args.rt.start(&args.addr)?;
    let _ = HANDLE.set(rt.handle());
    eprintln!(
        "gateway: listening on http://{} with {} worker(s), backend {}; {}* -> {:?}",
        listeners.local_addr(),
        rt.config().workers,
        common::backend_name(&rt),
        args.prefix,
        upstreams,
    );
    let router = Router::new()
        .get("/health", health)
        .get("/metrics", metrics);
    let cfg = upstreams[1..]
        .iter()
        .fold(GatewayConfig::new(upstream), |c, &u| c.add_upstream(u))
        .down_time(args.upstream_down_time)
        .prefix(&args.prefix)
        .connect_timeout(Duration::from_millis(args.connect_timeout))
        .response_timeout(Duration::from_millis(args.response_timeout))
        .pool_max_idle(args.pool)
        .limits(
            Limits::default()
                .max_body_bytes(usize::MAX)
                .max_requests_per_connection(if args.max_requests == 0 {
                    u32::MAX
                } else {
                    args.max_requests
                }),
        );
    // With --access-log: a line per request (client, method, path, status, bytes,
    // duration, and the upstream that answered a forwarded one).
    let log = args.access.open()?;
    let (router, cfg) = (Arc::new(router), Arc::new(cfg));
    let hook: Option<AccessHook> = log.clone().map(|l| {
        let hook: AccessHook = Arc::new(move |r: &AccessRecord<'_>| l.record(r));
        hook
    });
    let factory = move |info: &ConnInfo| {
        let peer = info.peer_addr();
        let front = GatewayConn::new(router.clone(), cfg.clone(), peer.map(|a| a.ip()));
        match &hook {
            Some(h) => front.with_access_log(peer, h.clone()),
            None => front,
        }
    };
    let served = rt.serve(listeners, factory);
    common::teardown(served, None, log.as_ref())
}
