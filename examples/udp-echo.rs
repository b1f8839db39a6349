//! UDP echo server: every datagram is sent back to its source.
//!
//! `cargo run --release --example udp-echo -- --addr 127.0.0.1:7001 --workers 1 [--backend epoll] [--tcp-addr 127.0.0.1:7000] [--gso]`
//!
//! Try it: `nc -u 127.0.0.1 7001`. With `--tcp-addr` the same workers also run a TCP
//! echo (UDP and TCP in one runtime). Prints its counters on exit (Ctrl-C).

mod common;

use anyhow::Context;
use clap::Parser;
use ringcore::net::udp::payload_capacity;
use ringcore::{ConnInfo, DatagramHandler, Datagrams, Handler, ServeUdp, UdpOptions, UdpSockets};
use std::net::SocketAddr;

/// ringcore UDP echo server: every datagram is sent back to its source.
#[derive(Parser, Debug)]
#[command(name = "ringcore-udp-echo", version)]
struct Args {
    /// Address to receive on: ip:port or [ipv6]:port ([::]:7001 is dual-stack).
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: String,
    #[command(flatten)]
    rt: common::RuntimeArgs,
    /// Also serve a TCP echo on this address, in the same workers.
    #[arg(long)]
    tcp_addr: Option<String>,
    /// Datagrams queued or in flight per worker before replies are dropped.
    #[arg(long, default_value_t = ringcore::net::udp::DEFAULT_SEND_QUEUE)]
    send_queue: usize,
    /// SO_RCVBUF of each socket in bytes (default: the kernel's; see docs/tuning.md).
    #[arg(long)]
    recv_buffer: Option<usize>,
    /// Receive only on IPv6 with an [::] address (IPV6_V6ONLY).
    #[arg(long)]
    v6only: bool,
    /// UDP GSO: replies of one turn to one peer leave as one UDP_SEGMENT send when
    /// they are equal in size (UdpOptions::gso; see docs/udp.md).
    #[arg(long)]
    gso: bool,
}

struct Echo;

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, bytes: &[u8]) {
        ctx.send_to(peer, bytes); // queued; the turn's replies leave together
    }

    fn on_truncated(&mut self, ctx: &mut Datagrams<'_>, peer: SocketAddr, prefix: &[u8]) {
        tracing::debug!(
            worker = ctx.worker_id(),
            %peer,
            kept = prefix.len(),
            "datagram larger than a receive buffer dropped (Builder::buf_size sets the size)"
        );
    }
}

struct TcpEcho;

impl Handler for TcpEcho {
    fn on_data(&mut self, conn: &mut ringcore::Conn<'_>, data: &[u8]) -> usize {
        conn.send(data);
        data.len()
    }
}

fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let rt = args.rt.runtime()?;
    let workers = rt.config().workers;
    let mut opts = UdpOptions::default()
        .send_queue(args.send_queue)
        .v6only(args.v6only)
        .gso(args.gso);
    if let Some(n) = args.recv_buffer {
        opts = opts.recv_buffer(n);
    }
    let udp = UdpSockets::bind(args.addr.as_str(), workers, &opts)
        .with_context(|| format!("cannot bind udp {}", args.addr))?;
    eprintln!(
        "udp-echo: receiving on udp {} with {} worker(s), backend {}, datagrams up to {} bytes, gso {}",
        udp.local_addr(),
        workers,
        common::backend_name(&rt),
        payload_capacity(rt.config().buf_size as usize),
        if args.gso { "on" } else { "off" },
    );
    let handle = rt.handle();
    common::report_status(rt.handle(), args.rt.status_interval);
    match &args.tcp_addr {
        Some(tcp) => {
            let listeners = common::listeners(tcp, &rt)?;
            eprintln!("udp-echo: and tcp echo on {}", listeners.addr());
            rt.serve_with_udp(listeners, |_: &ConnInfo| TcpEcho, udp, |_| Echo)
        }
        None => rt.serve_udp(udp, |_| Echo),
    }
    .context("server failed")?;
    eprint!("{}", handle.metrics().to_prometheus());
    Ok(())
}
