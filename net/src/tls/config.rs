//! TLS configuration: the server's [`TlsAcceptor`] (certificates from PEM files,
//! selection by SNI, ALPN, versions, session resumption) and the client's
//! [`TlsConnector`] (root store, server name).

use super::session::{Side, TlsFactory};
use super::stats::Stats;
use crate::handler::Factory;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Default deadline for a TLS handshake: a connection that has not completed its
/// handshake this long after it opened is closed (and counted).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions remembered per acceptor for TLS 1.2 session-id resumption.
const SESSION_CACHE: usize = 4096;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Reads a certificate chain (leaf first) from a PEM file.
///
/// # Errors
/// The file cannot be read, holds no certificate, or a block is malformed.
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(format!("TLS certificate file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "TLS certificate file {}: no CERTIFICATE block found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
///
/// # Errors
/// The file cannot be read or holds no private key.
pub fn load_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| bad(format!("TLS private key file {}: {e}", path.display())))
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<CertifiedKey>> {
    let ck = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| bad(format!("TLS key does not fit its certificate: {e}")))?;
    Ok(Arc::new(ck))
}

/// One certificate and the host names it is chosen for.
#[derive(Debug)]
struct Entry {
    /// Lower-case names; `*.example.com` matches one label.
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// Chooses the certificate by the client's SNI name; the first one when the client sent
/// none or a name no entry has (unless `strict`).
#[derive(Debug)]
struct SniResolver {
    entries: Vec<Entry>,
    strict: bool,
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = hello.server_name() else {
            return self.entries.first().map(|e| e.key.clone());
        };
        let sni = sni.to_ascii_lowercase();
        let hit = self
            .entries
            .iter()
            .find(|e| e.names.iter().any(|p| name_matches(p, &sni)));
        match hit {
            Some(e) => Some(e.key.clone()),
            None if self.strict => {
                tracing::debug!(sni = %sni, "TLS: no certificate for this server name");
                None
            }
            None => self.entries.first().map(|e| e.key.clone()),
        }
    }
}

/// Server-side TLS settings, shared by every worker; [`wrap`](Self::wrap) turns a
/// [`Factory`] into one whose handlers speak TLS.
///
/// Defaults: TLS 1.3 and 1.2, ALPN `http/1.1`, session resumption by stateless tickets
/// (TLS 1.3 and 1.2) and a session-id cache ([`SESSION_CACHE`] entries), handshake
/// deadline [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s), the `ring` provider's cipher suites.
///
/// ```no_run
/// # fn f() -> std::io::Result<()> {
/// use ringcore_net::tls::TlsAcceptor;
/// let tls = TlsAcceptor::builder()
///     .cert_files("cert.pem", "key.pem")?
///     .alpn(&[b"http/1.1"])
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) stats: Arc<Stats>,
}

/// Builds a [`TlsAcceptor`].
#[derive(Debug)]
#[must_use]
pub struct TlsAcceptorBuilder {
    entries: Vec<Entry>,
    strict_sni: bool,
    alpn: Vec<Vec<u8>>,
    tls12: bool,
    tickets: bool,
    handshake_timeout: Option<Duration>,
}

impl TlsAcceptor {
    /// A builder with the defaults above and no certificate yet.
    pub fn builder() -> TlsAcceptorBuilder {
        TlsAcceptorBuilder {
            entries: Vec::new(),
            strict_sni: false,
            alpn: vec![b"http/1.1".to_vec()],
            tls12: true,
            tickets: true,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }

    /// An acceptor with one certificate chain and key from PEM files and the defaults.
    ///
    /// # Errors
    /// As [`TlsAcceptorBuilder::cert_files`] and [`TlsAcceptorBuilder::build`].
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<Self> {
        Self::builder().cert_files(cert, key)?.build()
    }

    /// Wraps `factory`: every connection first completes a TLS handshake (the inner
    /// handler's `on_open` runs after it), then its handler sees plaintext.
    pub fn wrap<F: Factory>(&self, factory: F) -> TlsFactory<F> {
        TlsFactory::new(factory, Side::Server(self.clone()), self.handshake_timeout)
    }

    /// Counters of this acceptor (every worker, since it was built).
    pub fn stats(&self) -> super::TlsStats {
        self.stats.snapshot()
    }

    /// The rustls configuration, for settings this API does not cover.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }
}

impl TlsAcceptorBuilder {
    /// Adds a certificate chain (leaf first) and its key, chosen when the client's SNI
    /// matches one of `names` (`*.example.com` matches one label). The first
    /// certificate added is also the default (no SNI, or a name no certificate has).
    ///
    /// # Errors
    /// The key does not fit the certificate or is of an unsupported type.
    pub fn cert(
        mut self,
        names: &[&str],
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        let key = certified_key(chain, key)?;
        let names = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        self.entries.push(Entry { names, key });
        Ok(self)
    }

    /// [`cert`](Self::cert) with no names (the default certificate), from PEM files.
    ///
    /// # Errors
    /// A file cannot be read or parsed; the key does not fit the certificate.
    pub fn cert_files(self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<Self> {
        self.cert(&[], load_certs(cert)?, load_key(key)?)
    }

    /// [`cert`](Self::cert) for `names`, from PEM files.
    ///
    /// # Errors
    /// As [`cert_files`](Self::cert_files).
    pub fn sni_cert_files(
        self,
        names: &[&str],
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<Self> {
        self.cert(names, load_certs(cert)?, load_key(key)?)
    }

    /// Refuse a client whose SNI names no certificate (alert `unrecognized_name`)
    /// instead of answering with the default certificate (nginx's behaviour, the
    /// default).
    pub fn strict_sni(mut self, on: bool) -> Self {
        self.strict_sni = on;
        self
    }

    /// Application protocols offered by ALPN, in preference order (default
    /// `http/1.1`; empty: no ALPN). A client that offers ALPN with none of them is
    /// refused (alert `no_application_protocol`).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Also accept TLS 1.2 (default on); TLS 1.3 is always on.
    pub fn tls12(mut self, on: bool) -> Self {
        self.tls12 = on;
        self
    }

    /// Issue session tickets for resumption (default on).
    pub fn session_tickets(mut self, on: bool) -> Self {
        self.tickets = on;
        self
    }

    /// Handshake deadline (default [`DEFAULT_HANDSHAKE_TIMEOUT`]); `None` disables it.
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Builds the acceptor.
    ///
    /// # Errors
    /// No certificate was added; the ticket key could not be made.
    pub fn build(self) -> io::Result<TlsAcceptor> {
        if self.entries.is_empty() {
            return Err(bad(
                "TLS acceptor without a certificate: add one with cert_files(cert.pem, key.pem)"
                    .into(),
            ));
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12 {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let resolver = SniResolver {
            entries: self.entries,
            strict: self.strict_sni,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| bad(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = self.alpn;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        if self.tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| io::Error::other(format!("TLS session ticket key: {e}")))?;
        } else {
            config.send_tls13_tickets = 0;
        }
        Ok(TlsAcceptor {
            config: Arc::new(config),
            handshake_timeout: self.handshake_timeout,
            stats: Arc::default(),
        })
    }
}

/// Client-side TLS settings for outbound connections
/// ([`Connect`](crate::Connect)): the roots to trust and the server name to send
/// and verify. [`wrap`](Self::wrap) turns a [`Factory`] into one whose handlers speak
/// TLS to the server.
#[derive(Clone)]
pub struct TlsConnector {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) stats: Arc<Stats>,
}

/// Well-known places of the system's CA bundle (Debian/Ubuntu, Fedora/RHEL,
/// openSUSE, Alpine); [`TlsConnector::system_roots`] reads the first that exists.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

impl TlsConnector {
    /// A connector that trusts the certificates in the PEM file `ca` and expects the
    /// server to be `server_name` (a DNS name or an IP address), offering ALPN
    /// `alpn` (empty: none).
    ///
    /// # Errors
    /// The file cannot be read or holds no usable certificate; `server_name` is not a
    /// valid DNS name or IP address.
    pub fn from_pem_roots(
        ca: impl AsRef<Path>,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> io::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(load_certs(&ca)?);
        if added == 0 {
            return Err(bad(format!(
                "TLS roots {}: no usable CA certificate",
                ca.as_ref().display()
            )));
        }
        Self::with_roots(roots, server_name, alpn)
    }

    /// [`from_pem_roots`](Self::from_pem_roots) with the system's CA bundle (the first
    /// of [`SYSTEM_CA_BUNDLES`] that exists).
    ///
    /// # Errors
    /// No bundle found (install `ca-certificates`), or as `from_pem_roots`.
    pub fn system_roots(server_name: &str, alpn: &[&[u8]]) -> io::Result<Self> {
        let path = SYSTEM_CA_BUNDLES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                bad(
                    "no system CA bundle found (install ca-certificates, or pass a PEM file)"
                        .into(),
                )
            })?;
        Self::from_pem_roots(path, server_name, alpn)
    }

    /// A connector with a root store built by the caller.
    ///
    /// # Errors
    /// `server_name` is not a valid DNS name or IP address.
    pub fn with_roots(
        roots: rustls::RootCertStore,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> io::Result<Self> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Self::with_config(Arc::new(config), server_name)
    }

    /// A connector from a full rustls client configuration.
    ///
    /// # Errors
    /// `server_name` is not a valid DNS name or IP address.
    pub fn with_config(config: Arc<rustls::ClientConfig>, server_name: &str) -> io::Result<Self> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| bad(format!("TLS server name {server_name:?}: {e}")))?;
        Ok(TlsConnector {
            config,
            server_name,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            stats: Arc::default(),
        })
    }

    /// Handshake deadline (default [`DEFAULT_HANDSHAKE_TIMEOUT`]); `None` disables it.
    #[must_use]
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Wraps `factory`: each outbound connection first completes a TLS handshake with
    /// the server (the inner handler's `on_open` runs after it, with the server's
    /// certificate verified), then its handler sees plaintext.
    pub fn wrap<F: Factory>(&self, factory: F) -> TlsFactory<F> {
        TlsFactory::new(factory, Side::Client(self.clone()), self.handshake_timeout)
    }

    /// Wraps one handler (for a connection opened from another handler): it runs a
    /// TLS client session with the server, then `handler` sees plaintext.
    pub fn client<H: crate::Handler>(&self, handler: H) -> super::TlsHandler<H> {
        super::session::TlsHandler::new(
            handler,
            &Side::Client(self.clone()),
            self.handshake_timeout,
        )
    }

    /// Counters of this connector.
    pub fn stats(&self) -> super::TlsStats {
        self.stats.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("a.example", "a.example"));
        assert!(!name_matches("a.example", "b.example"));
        assert!(name_matches("*.example", "a.example"));
        assert!(!name_matches("*.example", "a.b.example"));
        assert!(!name_matches("*.example", "example"));
        assert!(!name_matches("*.example", ".example"));
    }
}
