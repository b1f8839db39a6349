//! TLS flags shared by the examples: `--tls-cert/--tls-key` (serve TLS), `--tls-sni`
//! (more certificates, chosen by SNI), `--tls-handshake-timeout`.

// Each example uses the part it needs.
#![allow(dead_code)]

use anyhow::Context;
use clap::Args;
use ringcore::tls::TlsAcceptor;
use ringcore::{Factory, Listeners, Runtime, Serve};
use std::path::PathBuf;
use std::time::Duration;

/// Server-side TLS flags (flattened into an example's arguments).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// More certificates chosen by SNI: NAME[,NAME...]=CERT.pem:KEY.pem (repeatable;
    /// `*.example.com` matches one label). --tls-cert stays the default.
    #[arg(long, requires = "tls_cert")]
    pub tls_sni: Vec<String>,
    /// TLS handshake deadline in seconds (0: none).
    #[arg(long, default_value_t = 10)]
    pub tls_handshake_timeout: u64,
}

impl TlsArgs {
    /// The acceptor these flags describe, or `None` without --tls-cert.
    pub fn acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut b = TlsAcceptor::builder()
            .cert_files(cert, key)
            .context("--tls-cert/--tls-key")?;
        for spec in &self.tls_sni {
            let (names, files) = spec
                .split_once('=')
                .context("--tls-sni wants NAME[,NAME...]=CERT.pem:KEY.pem")?;
            let (c, k) = files
                .split_once(':')
                .context("--tls-sni wants NAME[,NAME...]=CERT.pem:KEY.pem")?;
            let names: Vec<&str> = names.split(',').collect();
            b = b
                .sni_cert_files(&names, c, k)
                .with_context(|| format!("--tls-sni {spec}"))?;
        }
        let t = self.tls_handshake_timeout;
        let b = b.handshake_timeout((t != 0).then(|| Duration::from_secs(t)));
        Ok(Some(b.build().context("TLS configuration")?))
    }
}

/// `http` or `https`, for the start-up line.
pub fn scheme(tls: &Option<TlsAcceptor>) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Serves `factory` on `listeners`, under TLS when `tls` is set.
pub fn serve<F: Factory>(
    rt: &Runtime,
    listeners: Listeners,
    tls: Option<TlsAcceptor>,
    factory: F,
) -> std::io::Result<()> {
    match tls {
        Some(acc) => rt.serve(listeners, acc.wrap(factory)),
        None => rt.serve(listeners, factory),
    }
}
