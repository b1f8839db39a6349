//! Peer server on tokio's `current_thread` runtime: echo, or hand-rolled HTTP
//! plaintext with the same response bytes as ringcore's `/plaintext`.
//!
//! `taskset -c 0 peer-tokio --addr 127.0.0.1:7001 --mode echo|http`

use clap::Parser;
use ringcore_benches::{tokio_peer, PeerMode, PlaintextCache};
use std::cell::RefCell;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// tokio current_thread peer server.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7001")]
    addr: SocketAddr,
    /// Protocol.
    #[arg(long, value_enum, default_value = "echo")]
    mode: PeerMode,
}

thread_local! {
    static PLAINTEXT: RefCell<PlaintextCache> = RefCell::new(PlaintextCache::new());
}

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn http(mut s: TcpStream) {
    let _ =
        tokio_peer::http_plaintext(&mut s, |f| PLAINTEXT.with(|p| f(&mut p.borrow_mut()))).await;
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("peer-tokio ({:?})", args.mode);
    tokio_peer::serve(&name, args.addr, |s| {
        match args.mode {
            PeerMode::Echo => tokio::spawn(echo(s)),
            PeerMode::Http => tokio::spawn(http(s)),
        };
    })
}
