//! TCP echo server.
//!
//! `cargo run --release --example echo -- --addr 127.0.0.1:7000 --workers 1 [--sqpoll] [--backend epoll]`
//!
//! Prints its counters on exit (Ctrl-C).

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::{Conn, ConnInfo, Handler, Serve};
use std::time::Duration;

/// ringcore echo server: every byte received is sent back.
#[derive(Parser, Debug)]
#[command(name = "ringcore-echo", version)]
struct Args {
    /// Address to listen on: ip:port, [ipv6]:port ([::]:7000 is dual-stack), unix:/path or unix:@name.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: String,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    /// Close connections idle for this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    idle_timeout: u64,
}

struct Echo {
    idle: Option<Duration>,
}

impl Handler for Echo {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.set_idle_timeout(self.idle);
    }

    fn on_data(&mut self, conn: &mut Conn<'_>, data: &[u8]) -> usize {
        // Zero-copy on io_uring: the receive buffer itself is queued (a copy past
        // the worker's hold limit, and on epoll).
        conn.send_received(data);
        data.len()
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let (rt, listeners) = args.rt.start(&args.addr)?;
    common::announce("echo", listeners.addr(), &rt);
    let handle = rt.handle();
    let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    rt.serve(listeners, move |_: &ConnInfo| Echo { idle })
        .context("server failed")?;
    eprint!("{}", handle.metrics().to_prometheus());
    Ok(())
}
