//! Static file server: bodies leave by splice (file -> pipe -> socket).
//!
//! `cargo run --release --example fileserver -- --root ./docs --addr 127.0.0.1:8088 [--backend epoll]`
//!
//! HTTPS: add `--tls-cert cert.pem --tls-key key.pem`; bodies then leave through the
//! userspace path (read, encrypt, send), not splice (see `docs/tls.md`).
//!
//! GET/HEAD with nginx's static-file semantics: `ETag`/`Last-Modified` with
//! `If-None-Match`, `If-Modified-Since` and `If-Range`; one range (206) or several
//! (`multipart/byteranges`); directories (301 to `dir/`, `index.html`, `--autoindex`);
//! hidden paths 404 unless `--allow-hidden`; precompressed `.br`/`.gz` siblings with
//! `--gzip-static`; `--cache-control`. No path escapes the root (`..`, encoded dots,
//! symlinks pointing outside). docs/fileserver.md has the details.
//!
//! `--access-log PATH|-` logs every request; `--metrics-addr 127.0.0.1:9100` serves
//! `/metrics` on its own address (the file server's own URL space is the root's).
//! Signals, systemd and exit codes: docs/operations.md.

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::http::{AccessRecord, Limits, ResponseStats, StaticFiles, StaticFilesBuilder};
use ringcore::ConnInfo;
use std::sync::Arc;

/// ringcore static file server.
#[derive(Parser, Debug)]
#[command(name = "ringcore-fileserver", version)]
struct Args {
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: String,
    /// Address to listen on: ip:port, [ipv6]:port ([::]:PORT is dual-stack), unix:/path or unix:@name.
    #[arg(long, default_value = "127.0.0.1:8088")]
    addr: String,
    #[command(flatten)]
    files: FileArgs,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    #[command(flatten)]
    access: common::access::AccessArgs,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
}

/// HTTP semantics of the served files (all off by default, as in nginx).
#[derive(clap::Args, Debug)]
struct FileArgs {
    /// `Cache-Control` value sent with every file (200, 206, 304), e.g.
    /// "public, max-age=60".
    #[arg(long, value_name = "VALUE")]
    cache_control: Option<String>,
    /// List directories that have no index.html (HTML; hidden entries left out).
    #[arg(long)]
    autoindex: bool,
    /// Serve paths with a segment starting with '.' (e.g. /.env); 404 otherwise.
    #[arg(long)]
    allow_hidden: bool,
    /// Serve <file>.br / <file>.gz instead of <file> when Accept-Encoding allows.
    #[arg(long)]
    gzip_static: bool,
    /// Keep up to N open files per worker (nginx open_file_cache); 0 = off.
    /// Requests for a cached path skip the helper thread.
    #[arg(long, value_name = "N", default_value_t = 0)]
    open_file_cache: usize,
    /// Seconds a cached open file answers before it is looked up again.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    open_file_cache_valid: u64,
    /// Never look a file up on the worker, even when every name is cached
    /// (StaticFilesBuilder::inline_lookup): every lookup goes to the helper thread.
    #[arg(long)]
    no_inline_lookup: bool,
}

/// The [`StaticFilesBuilder`] the flags describe.
fn files_builder(root: &str, args: &FileArgs) -> StaticFilesBuilder {
    let mut b = StaticFiles::builder(root)
        .limits(Limits::default())
        .autoindex(args.autoindex)
        .allow_hidden(args.allow_hidden)
        .gzip_static(args.gzip_static)
        .inline_lookup(!args.no_inline_lookup)
        .open_file_cache(
            args.open_file_cache,
            std::time::Duration::from_secs(args.open_file_cache_valid),
        );
    if let Some(cc) = &args.cache_control {
        b = b.cache_control(cc.clone());
    }
    b
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let rt = args.rt.runtime()?;
    let tls = args.tls.acceptor()?;
    let factory = files_builder(&args.root, &args.files)
        .factory()
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
        "fileserver: serving {} on {}://{}, backend {}",
        args.root,
        common::tls::scheme(&tls),
        listeners.addr(),
        common::backend_name(&rt)
    );
    let log2 = log.clone();
    let hook: ringcore::http::AccessHook = Arc::new(move |r: &AccessRecord<'_>| {
        stats.record(r);
        if let Some(l) = &log2 {
            l.record(r);
        }
    });
    common::report_status(rt.handle(), args.rt.status_interval);
    let detail = log.is_some();
    let files = move |info: &ConnInfo| {
        if detail {
            factory(info).with_access_log(info.peer_addr(), hook.clone())
        } else {
            factory(info).with_response_hook(hook.clone())
        }
    };
    let served = common::tls::serve(&rt, listeners, tls, files);
    common::teardown(served, metrics, log.as_ref())
}
