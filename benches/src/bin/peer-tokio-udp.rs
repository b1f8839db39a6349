//! UDP echo peer on tokio's `current_thread` runtime: `UdpSocket::recv_from` then
//! `send_to`, one datagram at a time, as a plain tokio UDP server is written.
//!
//! `taskset -c 0 peer-tokio-udp --addr 127.0.0.1:7001`

use clap::Parser;
use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// tokio current_thread UDP echo peer.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to receive on.
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: SocketAddr,
    /// Protocol (only `udp`; accepted so the harness can pass it like to every peer).
    #[arg(long, default_value = "udp")]
    mode: String,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if args.mode != "udp" {
        eprintln!("peer-tokio-udp serves only --mode udp");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let sock = UdpSocket::bind(args.addr).await?;
        eprintln!("peer-tokio-udp: udp echo on {}", sock.local_addr()?);
        // SIGINT (the harness's stop) ends the process with the default disposition.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, peer) = sock.recv_from(&mut buf).await?;
            let _ = sock.send_to(&buf[..n], peer).await;
        }
        #[allow(unreachable_code)]
        Ok(())
    })
}
