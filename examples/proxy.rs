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

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::net::TunnelOptions;
use ringcore::{CloseReason, Conn, ConnInfo, Handler, Listeners, Serve, SocketOptions};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// ringcore splice proxy.
#[derive(Parser, Debug)]
#[command(version)]
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
    /// Log every closed connection's reason.
    #[arg(long)]
    verbose: bool,
}

struct Proxy {
    upstream: SocketAddr,
    opts: TunnelOptions,
    verbose: bool,
}

impl Handler for Proxy {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Err(e) = conn.pipe_to_with(self.upstream, &self.opts) {
            eprintln!("proxy: {e}");
            conn.abort();
        }
    }

    fn on_data(&mut self, _conn: &mut Conn<'_>, data: &[u8]) -> usize {
        data.len() // never called: the tunnel moves the bytes
    }

    fn on_close(&mut self, reason: CloseReason) {
        if self.verbose {
            eprintln!("proxy: connection closed: {reason:?}");
        }
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let upstream = args
        .upstream
        .to_socket_addrs()
        .with_context(|| format!("bad upstream {}", args.upstream))?
        .next()
        .context("upstream resolved to nothing")?;
    let rt = args.rt.runtime()?;
    let listeners = Listeners::bind(
        &args.listen[..],
        rt.config().workers,
        &SocketOptions::default(),
    )
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "proxy: {} -> {upstream}, backend {}",
        listeners.addr(),
        common::backend_name(&rt)
    );
    let secs = |s: u64| (s != 0).then(|| Duration::from_secs(s));
    let opts = TunnelOptions::default()
        .connect_timeout(Duration::from_millis(args.connect_timeout))
        .idle_timeout(secs(args.idle_timeout))
        .half_close_timeout(secs(args.half_close_timeout));
    let verbose = args.verbose;
    rt.serve(listeners, move |_: &ConnInfo| Proxy {
        upstream,
        opts,
        verbose,
    })
    .context("server failed")?;
    Ok(())
}
