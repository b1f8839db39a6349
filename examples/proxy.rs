//! TCP proxy: every client connection is spliced to the upstream in both directions.
//!
//! `cargo run --release --example proxy -- --listen 127.0.0.1:9000 --upstream 127.0.0.1:7000 [--backend epoll]`
//!
//! Bytes move socket -> pipe -> socket by splice, never through user space; at most
//! one pipe (256 KiB) is buffered per direction, so a slow reader slows the writer.
//! Half-close is propagated; an upstream that refuses, resets or does not answer within
//! `--connect-timeout` closes the client side. A tunnel with no traffic for
//! `--idle-timeout` (default 600 s, nginx's `proxy_timeout`), or still open
//! `--half-close-timeout` (default 60 s) after one side's FIN, is closed (0: never).
//!
//! TLS: `--tls-cert PATH --tls-key PATH [--tls-sni ...]` terminates TLS from clients
//! in front of a plaintext upstream; `--upstream-tls` speaks TLS to the upstream
//! (`--upstream-ca PATH` or the system roots; `--upstream-sni NAME`, default the
//! upstream's host). With TLS on either side the bytes are **copied through user
//! space** (decrypt, relay, encrypt: `proxy_app/relay.rs`), not spliced; the same
//! timeouts, half-close and access log apply. Example:
//! `proxy --tls-cert cert.pem --tls-key key.pem --upstream 127.0.0.1:8080`.
//!
//! `--access-log PATH|-` writes one line per connection (client, upstream, bytes each
//! way, duration, close reason; in `--access-log-format json` a splice tunnel's line also has each leg's TCP
//! statistics, sampled just before the sockets close: rtt, rttvar, retransmits, bytes
//! acked/received, delivery rate); with `RUST_LOG=debug` the same summary is logged per
//! connection; `--metrics-addr` serves `/metrics` on its own address
//! (the listening port is a tunnel). Signals, systemd and exit codes:
//! docs/operations.md.

mod common;
#[path = "proxy_app/relay.rs"]
mod relay;

use anyhow::Context;
use clap::Parser;
use ringcore::http::{AccessFormat, AccessLog};
use ringcore::net::{TunnelOptions, TunnelStats};
use ringcore::{CloseReason, Closing, Conn, ConnInfo, Handler, Serve, TcpInfo};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// ringcore proxy: splice tunnels, or a userspace TLS relay with --tls-cert /
/// --upstream-tls (no splice under TLS: every byte is decrypted, copied and encrypted).
#[derive(Parser, Debug)]
#[command(name = "ringcore-proxy", version)]
struct Args {
    /// Address to listen on: ip:port, [ipv6]:port ([::]:PORT is dual-stack), unix:/path or unix:@name.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// Upstream address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    upstream: String,
    /// Upstream connect timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    connect_timeout: u64,
    /// Close a tunnel with no traffic either way for this many seconds (0: never).
    #[arg(long, default_value_t = 600)]
    idle_timeout: u64,
    /// Close a tunnel this many seconds after one side's FIN (0: never).
    #[arg(long, default_value_t = 60)]
    half_close_timeout: u64,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    /// Terminate TLS from clients (--tls-cert/--tls-key/--tls-sni). Under TLS the
    /// proxy copies bytes through user space (no splice).
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    /// Speak TLS to the upstream (verifying its certificate; userspace copy, no splice).
    #[arg(long)]
    upstream_tls: bool,
    /// CA certificates (PEM) that sign the upstream's certificate (default: the
    /// system roots). Needs --upstream-tls.
    #[arg(long, requires = "upstream_tls")]
    upstream_ca: Option<PathBuf>,
    /// Server name sent to (and verified on) the upstream (default: the host part of
    /// --upstream). Needs --upstream-tls.
    #[arg(long, requires = "upstream_tls")]
    upstream_sni: Option<String>,
    #[command(flatten)]
    access: common::access::AccessArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Log every closed connection's reason.
    #[arg(long)]
    verbose: bool,
}

struct Proxy {
    upstream: SocketAddr,
    opts: TunnelOptions,
    verbose: bool,
    log: Option<AccessLog>,
    client: Option<SocketAddr>,
    start: Instant,
    carried: Option<TunnelStats>,
    /// TCP_INFO of the client and upstream legs, sampled in `on_closing`.
    legs: [Option<TcpInfo>; 2],
}

/// One leg's TCP statistics as a JSON object (`null` if not sampled: a Unix client, or
/// an upstream that never connected).
fn tcp_json(i: Option<&TcpInfo>) -> String {
    match i {
        None => "null".to_string(),
        Some(i) => format!(
            "{{\"rtt_us\":{},\"rttvar_us\":{},\"retransmits\":{},\"bytes_acked\":{},\
             \"bytes_received\":{},\"delivery_rate\":{}}}",
            i.rtt.as_micros(),
            i.rttvar.as_micros(),
            i.total_retrans,
            i.bytes_acked,
            i.bytes_received,
            i.delivery_rate
        ),
    }
}

/// One access-log line for a closed tunnel.
fn tunnel_line(p: &Proxy, format: AccessFormat, reason: &CloseReason) -> String {
    let (up, down) = p.carried.map_or((0, 0), |c| (c.to_upstream, c.to_client));
    let line = relay::access_line(
        format,
        p.client,
        p.upstream,
        (up, down),
        p.start.elapsed(),
        reason,
    );
    match (format, line.trim_end().strip_suffix('}')) {
        // The splice tunnel's JSON line also carries each leg's TCP statistics.
        (AccessFormat::Json, Some(head)) => format!(
            "{head},\"client_tcp\":{},\"upstream_tcp\":{}}}\n",
            tcp_json(p.legs[0].as_ref()),
            tcp_json(p.legs[1].as_ref()),
        ),
        _ => line,
    }
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Err(e) = conn.pipe_to_with(self.upstream, &self.opts) {
            tracing::warn!("proxy: {e}");
            conn.abort();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len() // never called: the tunnel moves the bytes
    }

    fn on_tunnel_closed(&mut self, stats: TunnelStats) {
        self.carried = Some(stats);
    }

    fn on_closing(&mut self, closing: &Closing) {
        // The sockets' last moment open: sample both legs (two getsockopt), only if
        // someone reads the result.
        if self.log.is_some() || tracing::enabled!(tracing::Level::DEBUG) {
            self.legs = [
                closing.tcp_info().ok(),
                closing.upstream_tcp_info().and_then(Result::ok),
            ];
        }
    }

    fn on_close(&mut self, reason: CloseReason) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let (up, down) = self
                .carried
                .map_or((0, 0), |c| (c.to_upstream, c.to_client));
            tracing::debug!(
                client = ?self.client,
                upstream = %self.upstream,
                bytes_to_upstream = up,
                bytes_to_client = down,
                duration_us = self.start.elapsed().as_micros() as u64,
                reason = ?reason,
                client_tcp = %tcp_json(self.legs[0].as_ref()),
                upstream_tcp = %tcp_json(self.legs[1].as_ref()),
                "proxy: connection summary"
            );
        }
        if self.verbose {
            tracing::info!("proxy: connection closed: {reason:?}");
        }
        if let Some(log) = &self.log {
            log.line(&tunnel_line(self, log.format(), &reason));
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let upstream = common::resolve("--upstream", &args.upstream)?;
    let (rt, listeners) = args.rt.start(&args.listen)?;
    let log = args.access.open()?;
    let metrics = match &args.metrics_addr {
        Some(addr) => {
            let (h, l) = (rt.handle(), log.clone());
            Some(common::MetricsServer::start(addr, &rt, move || {
                let mut t = h.metrics().to_prometheus();
                if let Some(l) = &l {
                    t.push_str(&common::access::prometheus(l));
                }
                t
            })?)
        }
        None => None,
    };
    eprintln!(
        "proxy: {} -> {upstream}{}, backend {}",
        listeners.addr(),
        match (args.tls.tls_cert.is_some(), args.upstream_tls) {
            (false, false) => " (splice)",
            (true, false) => " (TLS from clients; userspace copy)",
            (false, true) => " (TLS to the upstream; userspace copy)",
            (true, true) => " (TLS both sides; userspace copy)",
        },
        common::backend_name(&rt)
    );
    let secs = |s: u64| (s != 0).then(|| Duration::from_secs(s));
    let opts = TunnelOptions::default()
        .connect_timeout(Duration::from_millis(args.connect_timeout))
        .idle_timeout(secs(args.idle_timeout))
        .half_close_timeout(secs(args.half_close_timeout));
    let verbose = args.verbose;
    let log2 = log.clone();
    let acceptor = args.tls.acceptor()?;
    let connector = upstream_connector(&args)?;
    let served = if acceptor.is_some() || connector.is_some() {
        let (log3, report_all) = (log.clone(), verbose);
        let report: relay::Report = Arc::new(move |c: &relay::Carried, reason: &CloseReason| {
            if report_all {
                tracing::info!("proxy: connection closed: {reason:?}");
            }
            if let Some(log) = &log3 {
                let bytes = (c.to_upstream, c.to_client);
                let l =
                    relay::access_line(log.format(), c.client, upstream, bytes, c.duration, reason);
                log.line(&l);
            }
        });
        let cfg = relay::RelayConfig {
            upstream,
            connector,
            connect_timeout: Duration::from_millis(args.connect_timeout),
            idle_timeout: secs(args.idle_timeout),
            half_close_timeout: secs(args.half_close_timeout),
            report: Some(report),
        };
        let want_addr = log.is_some();
        let front = move |info: &ConnInfo| cfg.front(want_addr.then(|| info.peer_addr()).flatten());
        common::tls::serve(&rt, listeners, acceptor, front)
    } else {
        rt.serve(listeners, move |info: &ConnInfo| Proxy {
            upstream,
            opts,
            verbose,
            client: (log2.is_some() || tracing::enabled!(tracing::Level::DEBUG))
                .then(|| info.peer_addr())
                .flatten(),
            log: log2.clone(),
            start: Instant::now(),
            carried: None,
            legs: [None, None],
        })
    };
    common::teardown(served, metrics, log.as_ref())
}

/// The upstream TLS settings of --upstream-tls/--upstream-ca/--upstream-sni.
fn upstream_connector(args: &Args) -> anyhow::Result<Option<ringcore::tls::TlsConnector>> {
    use ringcore::tls::TlsConnector;
    if !args.upstream_tls {
        return Ok(None);
    }
    let name = match &args.upstream_sni {
        Some(n) => n.clone(),
        None => upstream_host(&args.upstream).to_string(),
    };
    let c = match &args.upstream_ca {
        Some(ca) => TlsConnector::from_pem_roots(ca, &name, &[])
            .with_context(|| format!("--upstream-ca {}", ca.display()))?,
        None => TlsConnector::system_roots(&name, &[])
            .context("--upstream-tls without --upstream-ca (system roots)")?,
    };
    let t = args.tls.tls_handshake_timeout;
    Ok(Some(c.handshake_timeout(
        (t != 0).then(|| Duration::from_secs(t)),
    )))
}

/// The host part of `host:port` / `[v6]:port`.
fn upstream_host(upstream: &str) -> &str {
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}
