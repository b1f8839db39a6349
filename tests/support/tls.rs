//! Helpers of the TLS tests: certificates made at test time (rcgen), written as PEM
//! files, and a blocking rustls client.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use ringcore::tls::{rustls, TlsAcceptor};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// A CA and leaf certificates signed by it, as PEM files in a fresh directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    n: u32,
}

/// A leaf's files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ringcore-tls-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("make the test PKI directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "ringcore test CA");
        let ca = p.self_signed(&ca_key).expect("self-sign the CA");
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write ca.pem");
        Pki {
            dir,
            ca_pem,
            ca,
            ca_key,
            n: 0,
        }
    }

    /// A leaf for `names`, valid now (or expired years ago).
    pub fn leaf(&mut self, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
        if expired {
            p.not_before = rcgen::date_time_ymd(2001, 1, 1);
            p.not_after = rcgen::date_time_ymd(2002, 1, 1);
        }
        let cert = p
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign the leaf");
        self.n += 1;
        let leaf = Leaf {
            cert: self.dir.join(format!("leaf{}.pem", self.n)),
            key: self.dir.join(format!("leaf{}.key", self.n)),
        };
        std::fs::write(&leaf.cert, cert.pem()).expect("write the leaf");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write the key");
        leaf
    }

    /// An acceptor (defaults) for a fresh leaf named `localhost`.
    pub fn localhost_acceptor(&mut self) -> TlsAcceptor {
        let leaf = self.leaf(&["localhost"], false);
        TlsAcceptor::from_pem_files(&leaf.cert, &leaf.key).expect("acceptor for the leaf")
    }

    /// A client configuration trusting this CA: TLS 1.3 only, no ALPN.
    pub fn tls13(&self) -> Arc<rustls::ClientConfig> {
        self.client_config(&[&rustls::version::TLS13], &[])
    }

    /// A rustls client configuration trusting this CA.
    pub fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.der().to_vec()))
            .expect("add the CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A blocking TLS client stream.
pub type Client = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake with `sni`; the error is the client's view.
pub fn try_tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<Client> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
    tcp.set_nodelay(true)?;
    try_handshake(tcp, config, sni)
}

/// Completes a TLS handshake with `sni` on an already connected socket (one made with
/// a small receive buffer, say); the error is the client's view.
pub fn try_handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> std::io::Result<Client> {
    let name = ServerName::try_from(sni.to_string()).expect("valid SNI");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        match s.conn.complete_io(&mut s.sock) {
            // A signal to this thread (the process hosts the server) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => {
                r?;
            }
        }
    }
    Ok(s)
}

/// [`try_handshake`] that must succeed.
pub fn handshake(tcp: TcpStream, config: Arc<rustls::ClientConfig>, sni: &str) -> Client {
    try_handshake(tcp, config, sni).expect("TLS handshake")
}

/// [`try_tls_connect`] that must succeed.
pub fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>, sni: &str) -> Client {
    try_tls_connect(addr, config, sni).expect("TLS handshake")
}

/// Reads, retrying when a signal interrupted the read.
pub fn read_some(s: &mut Client, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// Writes `payload` from a thread while reading the echo here; checks every byte.
pub fn echo_check(s: &mut Client, payload: &[u8]) {
    // One stream, so interleave: write a piece, read what came back.
    let mut got = Vec::with_capacity(payload.len());
    let mut buf = vec![0u8; 64 * 1024];
    for piece in payload.chunks(16 * 1024) {
        s.write_all(piece).expect("write");
        s.flush().expect("flush");
        while got.len() < payload.len()
            && got.len() + 64 * 1024
                < (piece.as_ptr() as usize - payload.as_ptr() as usize) + piece.len()
        {
            let n = read_some(s, &mut buf).expect("read echo");
            assert!(n > 0, "EOF in the middle of the echo");
            got.extend_from_slice(&buf[..n]);
        }
    }
    while got.len() < payload.len() {
        let n = read_some(s, &mut buf).expect("read echo");
        assert!(
            n > 0,
            "EOF after {} of {} echoed bytes",
            got.len(),
            payload.len()
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == payload, "echoed bytes differ");
}

/// FNV-1a, to compare large transfers.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Random bytes (xorshift).
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
