//! Static file server: bodies leave by splice (file -> pipe -> socket).
//!
//! `cargo run --release --example fileserver -- --root ./docs --addr 127.0.0.1:8088 [--backend epoll]`
//!
//! GET/HEAD, Content-Type by extension, one Range (206/416), If-Modified-Since (304),
//! 404/403; no path escapes the root (`..`, encoded dots, symlinks pointing outside).

use anyhow::Context;
use clap::Parser;
use ringcore::http::{Limits, StaticFiles};
use ringcore::{BackendKind, Listeners, Runtime, Serve, SocketOptions};
use std::time::Duration;

/// ringcore static file server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory to serve.
    #[arg(long, default_value = ".")]
    root: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8088")]
    addr: String,
    /// Worker threads (default: every allowed CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Backend: auto, uring or epoll.
    #[arg(long, default_value = "auto")]
    backend: BackendKind,
    /// Enable SQPOLL.
    #[arg(long)]
    sqpoll: bool,
    /// Pin workers to these CPUs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut b = Runtime::builder().backend(args.backend);
    if let Some(w) = args.workers {
        b = b.workers(w);
    }
    if args.sqpoll {
        b = b.sqpoll(Duration::from_millis(100), None);
    }
    if !args.cpus.is_empty() {
        b = b.cpus(args.cpus.clone());
    }
    let rt = b.build().context("invalid runtime configuration")?;
    let factory = StaticFiles::factory(&args.root, Limits::default())
        .with_context(|| format!("cannot serve {}", args.root))?;
    let listeners = Listeners::bind(
        &args.addr[..],
        rt.config().workers,
        &SocketOptions::default(),
    )
    .with_context(|| format!("cannot listen on {}", args.addr))?;
    eprintln!(
        "fileserver: serving {} on http://{}",
        args.root,
        listeners.local_addr()
    );
    rt.serve(listeners, factory).context("server failed")?;
    Ok(())
}
