//! Static file server: bodies leave by splice (file -> pipe -> socket).
//!
//! `cargo run --release --example fileserver -- --root ./docs --addr 127.0.0.1:8088 [--backend epoll]`
//!
//! HTTPS: add `--tls-cert cert.pem --tls-key key.pem`; bodies then leave through the
//! userspace path (read, encrypt, send), not splice (see `docs/tls.md`).
//!
//! GET/HEAD, Content-Type by extension, one Range (206/416), If-Modified-Since (304),
//! 404/403; no path escapes the root (`..`, encoded dots, symlinks pointing outside).

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::http::{Limits, StaticFiles};
use ringcore::{Listeners, SocketOptions};

/// ringcore static file server.
#[derive(Parser, Debug)]
#[command(version)]
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
    tls: common::tls::TlsArgs,
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let rt = args.rt.runtime()?;
    let tls = args.tls.acceptor()?;
    let factory = StaticFiles::factory(&args.root, Limits::default())
        .with_context(|| format!("cannot serve {}", args.root))?;
    let listeners = Listeners::bind(
        &args.addr[..],
        rt.config().workers,
        &SocketOptions::default(),
    )
    .with_context(|| format!("cannot listen on {}", args.addr))?;
    eprintln!(
        "fileserver: serving {} on {}://{}, backend {}",
        args.root,
        common::tls::scheme(&tls),
        listeners.local_addr(),
        common::backend_name(&rt)
    );
    common::tls::serve(&rt, listeners, tls, factory).context("server failed")?;
    Ok(())
}
