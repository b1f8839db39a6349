//! Static file server: bodies leave by splice (file -> pipe -> socket).
//!
//! `cargo run --release --example fileserver -- --root ./docs --addr 127.0.0.1:8088 [--backend epoll]`
//!
//! GET/HEAD, Content-Type by extension, one Range (206/416), If-Modified-Since (304),
//! 404/403; no path escapes the root (`..`, encoded dots, symlinks pointing outside).
//!
//! `--access-log PATH|-` logs every request; `--metrics-addr 127.0.0.1:9100` serves
//! `/metrics` on its own address (the file server's own URL space is the root's).
//! Signals, systemd and exit codes: docs/operations.md.

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::http::{AccessRecord, Limits, ResponseStats, StaticFiles};
use ringcore::{ConnInfo, Serve};
use std::sync::Arc;

/// ringcore static file server.
#[derive(Parser, Debug)]
#[command(name = "ringcore-fileserver", version)]
struct Args {
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8088")]
    addr: String,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    #[command(flatten)]
    access: common::access::AccessArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let rt = args.rt.runtime()?;
    let factory = StaticFiles::factory(&args.root, Limits::default())
        .with_context(|| format!("cannot serve {}", args.root))?;
    let listeners = common::listeners(&args.addr, &rt)?;
    let log = args.access.open()?;
    let stats = ResponseStats::new(rt.config().workers);
    let metrics = match &args.metrics_addr {
        Some(addr) => {
            let (h, s, l) = (rt.handle(), stats.clone(), log.clone());
            Some(common::MetricsServer::start(addr, &rt, move || {
                let mut t = h.metrics().to_prometheus() + &s.to_prometheus();
                if let Some(l) = &l {
                    t.push_str(&common::access::prometheus(l));
                }
                t
            })?)
        }
        None => None,
    };
    eprintln!(
        "fileserver: serving {} on http://{}, backend {}",
        args.root,
        listeners.local_addr(),
        common::backend_name(&rt)
    );
    let log2 = log.clone();
    let hook: ringcore::http::AccessHook = Arc::new(move |r: &AccessRecord<'_>| {
        stats.record(r);
        if let Some(l) = &log2 {
            l.record(r);
        }
    });
    common::report_status(rt.handle(), std::time::Duration::from_secs(5));
    let served = rt.serve(listeners, move |info: &ConnInfo| {
        factory(info).with_access_log(info.peer_addr(), hook.clone())
    });
    if let Some(m) = metrics {
        m.stop();
    }
    common::access::close(log.as_ref());
    served.context("server failed")?;
    Ok(())
}
