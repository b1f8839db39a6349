//! Peer server on tokio's `current_thread` runtime: echo, or hand-rolled HTTP
//! plaintext with the same response bytes as ringcore's `/plaintext`.
//!
//! `taskset -c 0 peer-tokio --addr 127.0.0.1:7001 --mode echo|http`

use clap::Parser;
use ringcore_benches::{split_requests, PeerMode, PlaintextCache};
use std::cell::RefCell;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        let (reqs, used) = split_requests(&inbuf);
        if reqs > 0 {
            out.clear();
            PLAINTEXT.with(|p| {
                let mut p = p.borrow_mut();
                let r = p.refresh();
                for _ in 0..reqs {
                    out.extend_from_slice(r);
                }
            });
            inbuf.drain(..used);
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
        if inbuf.len() > 1 << 20 {
            return; // no complete head in 1 MiB: not a client of ours
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!(
            "peer-tokio: listening on {} ({:?})",
            listener.local_addr()?,
            args.mode
        );
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    eprintln!("peer-tokio: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            match args.mode {
                PeerMode::Echo => tokio::spawn(echo(s)),
                PeerMode::Http => tokio::spawn(http(s)),
            };
        }
    })
}
