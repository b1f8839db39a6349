//! Peer server for the TLS benchmarks: tokio `current_thread` + tokio-rustls (ring
//! provider, tickets and a session cache like ringcore's acceptor), answering every
//! request with the same plaintext response bytes as ringcore's `/plaintext`.
//!
//! `taskset -c 0 peer-tokio-tls --addr 127.0.0.1:7443 --cert cert.pem --key key.pem`

use clap::Parser;
use ringcore::tls::rustls;
use ringcore_benches::{tokio_peer, PlaintextCache};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
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
    if tokio_peer::http_plaintext(&mut s, |f| f(&mut cache))
        .await
        .is_ok()
    {
        let _ = s.shutdown().await; // close_notify
    }
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
    tokio_peer::serve("peer-tokio-tls", args.addr, |s| {
        tokio::spawn(serve(acceptor.clone(), s));
    })
}
