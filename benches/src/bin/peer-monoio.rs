//! Peer server on monoio (io_uring, thread-per-core): echo, or hand-rolled HTTP
//! plaintext with the same response bytes as ringcore's `/plaintext`.
//!
//! `taskset -c 0 peer-monoio --addr 127.0.0.1:7002 --mode echo|http`

use clap::Parser;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringcore_benches::{split_requests, PeerMode, PlaintextCache};
use std::cell::RefCell;
use std::net::SocketAddr;

/// monoio peer server (one thread).
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7002")]
    addr: SocketAddr,
    /// Protocol.
    #[arg(long, value_enum, default_value = "echo")]
    mode: PeerMode,
    /// Use monoio's legacy (epoll) driver instead of io_uring.
    #[arg(long)]
    legacy: bool,
}

thread_local! {
    static PLAINTEXT: RefCell<PlaintextCache> = RefCell::new(PlaintextCache::new());
}

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let (res, b) = s.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // write_all takes ownership; slice the buffer to the bytes read.
        let (res, slice) = s.write_all(monoio::buf::IoBuf::slice(b, 0..n)).await;
        buf = slice.into_inner();
        if res.is_err() {
            return;
        }
    }
}

async fn http(mut s: TcpStream) {
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let (res, c) = s.read(chunk).await;
        chunk = c;
        let n = match res {
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
            let (res, o) = s.write_all(out).await;
            out = o;
            if res.is_err() {
                return;
            }
        }
        if inbuf.len() > 1 << 20 {
            return;
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.addr)?;
    eprintln!(
        "peer-monoio: listening on {} ({:?})",
        listener.local_addr()?,
        args.mode
    );
    loop {
        let (s, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("peer-monoio: accept: {e}");
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        match args.mode {
            PeerMode::Echo => monoio::spawn(echo(s)),
            PeerMode::Http => monoio::spawn(http(s)),
        };
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.legacy {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build()?;
        rt.block_on(serve(args))?;
    } else {
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(1024)
            .build()?;
        rt.block_on(serve(args))?;
    }
    Ok(())
}
