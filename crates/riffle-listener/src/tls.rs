//! TLS for a listener: a PEM certificate chain and private key loaded into a rustls
//! `ServerConfig` (ring provider; ALPN `http/1.1`, or `h2` on an HTTP/2 listener, the one
//! configuration offered with either), and a certificate resolver whose current
//! key is swapped when the files change, so a renewed certificate is served without a restart
//! and without touching connections already open (each keeps the certificate it shook hands
//! with; only new handshakes see the new one).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::Protocol;

/// The shortest interval [`Tls::watch`] checks the files at: reading them is cheap, but not
/// free, and a zero interval would spin.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Why a certificate or key could not be loaded. Each names the file (as the configuration
/// key it comes from, `tls_cert` or `tls_key`) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read.
    #[error("tls_cert {}: {source}", path.display())]
    ReadCert {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The key file could not be read.
    #[error("tls_key {}: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM section.
    #[error("tls_cert {}: no certificate found", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate file has a malformed PEM section.
    #[error("tls_cert {}: not a PEM certificate chain: {reason}", path.display())]
    CertPem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's complaint.
        reason: String,
    },
    /// The key file holds no private key (PKCS#8, PKCS#1 or SEC1) PEM section.
    #[error("tls_key {}: not a private key", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key file has a malformed PEM section.
    #[error("tls_key {}: not a PEM private key: {reason}", path.display())]
    KeyPem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's complaint.
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with, or does not belong to the certificate.
    #[error("tls_key {}: unusable with tls_cert {}: {source}", key.display(), cert.display())]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason (an unsupported key type, or the key not matching).
        source: rustls::Error,
    },
    /// rustls refused the configuration itself (no usable protocol version).
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A listener's TLS: the server configuration and the certificate behind it, reloadable.
/// Share it as `Arc<Tls>`; [`Tls::watch`] keeps it current from the files.
pub struct Tls {
    resolver: Arc<Resolver>,
    /// Offers ALPN `http/1.1`.
    http1: TlsAcceptor,
    /// The same configuration offering ALPN `h2` (gRPC clients require it).
    http2: TlsAcceptor,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.resolver.cert_path)
            .field("key", &self.resolver.key_path)
            .finish_non_exhaustive()
    }
}

/// The file contents a certificate was loaded from, kept to tell whether the files changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Answers every handshake with the current certificate, which [`Tls::reload`] swaps.
#[derive(Debug)]
struct Resolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl Resolver {
    fn current(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a whole Arc: the writer only ever assigns one.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn swap(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    fn read(&self) -> Result<Source, TlsError> {
        read_source(&self.cert_path, &self.key_path)
    }

    fn parse(&self, source: &Source) -> Result<Arc<CertifiedKey>, TlsError> {
        certified_key(&self.cert_path, &self.key_path, source, &self.provider)
    }
}

impl Tls {
    /// Loads the certificate chain (leaf first) and private key from PEM files and builds the
    /// server configuration: ring provider, TLS 1.2 and 1.3, no client certificates, ALPN
    /// `http/1.1` (or `h2` when the listener serves [`Protocol::Http2`]: the listener picks;
    /// a client offering only the other protocol fails the handshake).
    ///
    /// # Errors
    /// A [`TlsError`] naming the file and what is wrong with it.
    pub fn from_pem_files(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let cert_path = cert_path.into();
        let key_path = key_path.into();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let source = read_source(&cert_path, &key_path)?;
        let key = certified_key(&cert_path, &key_path, &source, &provider)?;
        let resolver = Arc::new(Resolver {
            cert_path,
            key_path,
            provider: Arc::clone(&provider),
            current: RwLock::new(key),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        let mut http2 = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        http2.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            resolver,
            http1: TlsAcceptor::from(Arc::new(config)),
            http2: TlsAcceptor::from(Arc::new(http2)),
        })
    }

    /// Reads the files again and, if they hold a usable certificate and key, serves them to
    /// every handshake from now on. Connections already open are untouched. A failure keeps
    /// the certificate served so far and is logged as a warning before it is returned.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file and what is wrong with it.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = self
            .resolver
            .read()
            .and_then(|source| self.resolver.parse(&source));
        match loaded {
            Ok(key) => {
                self.resolver.swap(key);
                tracing::info!(cert = %self.resolver.cert_path.display(), "TLS certificate reloaded");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "TLS certificate not reloaded; still serving the previous one");
                Err(error)
            }
        }
    }

    /// Checks the files every `every` and reloads when their contents change (a renewal, a
    /// Kubernetes secret's symlink swap). Contents, not modification times, are compared:
    /// certificates are small and a swap can keep the time. A change that does not load
    /// (say, the certificate written and the key not yet) is warned about once and retried
    /// when the files change again. The task ends once the last `Arc<Tls>` is dropped.
    ///
    /// `every` is at least 100 ms (a shorter one is taken as 100 ms). Must be called within a
    /// Tokio runtime.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let every = every.max(MIN_WATCH_INTERVAL);
        let weak: Weak<Self> = Arc::downgrade(self);
        // What was loaded at start; a read failure here only means the first tick compares
        // against nothing and reloads once.
        let seen = self.resolver.read().ok();
        tokio::spawn(watch_files(weak, seen, every))
    }

    /// The certificate chain served now, leaf first (to report its expiry, or in tests).
    #[must_use]
    pub fn certificate_chain(&self) -> Vec<CertificateDer<'static>> {
        self.resolver.current().cert.clone()
    }

    /// The acceptor offering `protocol` by ALPN.
    pub(crate) fn acceptor(&self, protocol: Protocol) -> &TlsAcceptor {
        match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
        }
    }
}

async fn watch_files(weak: Weak<Tls>, mut seen: Option<Source>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; the files were just loaded
    loop {
        ticks.tick().await;
        let Some(tls) = weak.upgrade() else {
            return;
        };
        let source = match tls.resolver.read() {
            Ok(source) => source,
            // Unreadable for a moment (mid-rename) is not a change; the next tick will tell.
            Err(error) => {
                tracing::debug!(%error, "TLS files unreadable; checking again later");
                continue;
            }
        };
        if seen.as_ref() == Some(&source) {
            continue;
        }
        match tls.resolver.parse(&source) {
            Ok(key) => {
                tls.resolver.swap(key);
                tracing::info!(cert = %tls.resolver.cert_path.display(), "TLS certificate changed on disk and reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "TLS files changed but do not load; still serving the previous certificate");
            }
        }
        seen = Some(source);
    }
}

fn read_source(cert_path: &Path, key_path: &Path) -> Result<Source, TlsError> {
    let cert = std::fs::read(cert_path).map_err(|source| TlsError::ReadCert {
        path: cert_path.to_path_buf(),
        source,
    })?;
    let key = std::fs::read(key_path).map_err(|source| TlsError::ReadKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    Ok(Source { cert, key })
}

fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    source: &Source,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&source.cert)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| TlsError::CertPem {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&source.key).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: key_path.to_path_buf(),
        },
        other => TlsError::KeyPem {
            path: key_path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    // from_der also checks that the key is the certificate's, so a renewal that swapped only
    // one of the two files is refused rather than served as a broken handshake.
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Key {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    })?;
    Ok(Arc::new(key))
}
