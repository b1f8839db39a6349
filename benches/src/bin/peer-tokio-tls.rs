//! Peer server for the TLS benchmarks: tokio `current_thread` + tokio-rustls (ring
//! provider, tickets and a session cache like ringcore's acceptor), answering every
//! request with the same plaintext response bytes as ringcore's `/plaintext`.
//!
//! `taskset -c 0 peer-tokio-tls --addr 127.0.0.1:7443 --cert cert.pem --key key.pem`

use clap::Parser;
use ringcore::tls::rustls;
use ringcore_benches::{split_requests, PlaintextCache};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// tokio-rustls peer server.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7443")]
    addr: SocketAddr,
    /// Certificate chain (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    key: PathBuf,
}

async fn serve(acceptor: TlsAcceptor, s: tokio::net::TcpStream) {
    let Ok(mut s) = acceptor.accept(s).await else {
        return;
    };
    let mut cache = PlaintextCache::new();
    let mut inbuf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        inbuf.extend_from_slice(&chunk[..n]);
        let (reqs, used) = split_requests(&inbuf);
        if reqs > 0 {
            out.clear();
            let r = cache.refresh();
            for _ in 0..reqs {
                out.extend_from_slice(r);
            }
            inbuf.drain(..used);
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
        if inbuf.len() > 1 << 20 {
            return;
        }
    }
    let _ = s.shutdown().await; // close_notify
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let certs = ringcore::tls::load_certs(&args.cert)?;
    let key = ringcore::tls::load_key(&args.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.addr).await?;
        eprintln!("peer-tokio-tls: listening on {}", listener.local_addr()?);
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("peer-tokio-tls: accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(acceptor.clone(), s));
        }
    })
}
