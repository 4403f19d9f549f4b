//! The platform PKI as the listener sees it: the server certificate, the trust store (the
//! platform CA alone), the client-certificate verifier and the CRL, reloaded without restart.
//!
//! Every reload builds a new `ServerConfig` (a new verifier holding the new CRL) and swaps it
//! in under a lock; the accept loop asks [`Pki::config`] once per connection, so connections
//! already open keep the config they were accepted with and new ones get the new CRL. The
//! session cache and the ticket keys are shared by all configs, so a reload does not cost the
//! clients their resumption.

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ProducesTickets, StoresServerSessions, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{Error as TlsError, ServerConfig, SignatureScheme};
use serde::Serialize;

pub use dangjian_certs::{describe, normalize_serial, CertInfo};

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---- refused handshakes ------------------------------------------------------------------

/// What the verifier knew about a certificate it refused.
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    pub serial_hex: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub reason: String,
}

tokio::task_local! {
    static REFUSAL: RefCell<Option<Refusal>>;
}

/// Runs a handshake and returns, beside its outcome, the client certificate the verifier
/// refused during it (the verifier runs inside the handshake's poll, on this task).
pub async fn capture_refusal<F: Future>(handshake: F) -> (F::Output, Option<Refusal>) {
    REFUSAL
        .scope(RefCell::new(None), async move {
            let out = handshake.await;
            let refused = REFUSAL.with(|r| r.borrow_mut().take());
            (out, refused)
        })
        .await
}

fn note_refusal(der: &[u8], error: &TlsError) {
    let facts = describe(der).ok();
    let refusal = Refusal {
        serial_hex: facts.as_ref().map(|f| f.serial_hex.clone()),
        subject: facts.as_ref().map(|f| match &f.id_number {
            Some(id) => f
                .subject
                .replace(id.as_str(), &crate::member::idcard::mask(id)),
            None => f.subject.clone(),
        }),
        issuer: facts.as_ref().map(|f| f.issuer.clone()),
        reason: error.to_string(),
    };
    let _ = REFUSAL.try_with(|r| *r.borrow_mut() = Some(refusal));
}

// ---- the verifier ------------------------------------------------------------------------

/// webpki's verifier (chain to the platform CA, validity, CRL; EKU clientAuth when present)
/// plus what a card certificate must also carry: keyUsage digitalSignature and an EKU
/// extension that names clientAuth.
#[derive(Debug)]
struct CardVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

fn check_card_usage(der: &[u8]) -> Result<(), TlsError> {
    let info =
        describe(der).map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
    if info.digital_signature && info.client_auth {
        Ok(())
    } else {
        Err(TlsError::InvalidCertificate(
            CertificateError::InvalidPurpose,
        ))
    }
}

impl ClientCertVerifier for CardVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .and_then(|ok| check_card_usage(end_entity.as_ref()).map(|_| ok));
        if let Err(e) = &result {
            note_refusal(end_entity.as_ref(), e);
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The ring provider limited to TLS 1.3 suites and TLS 1.2 ECDHE suites with AEAD ciphers.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

// ---- the CRL -----------------------------------------------------------------------------

/// A CRL that parsed, is signed by the platform CA and names it as issuer.
#[derive(Debug)]
struct LoadedCrl {
    /// What was read from the file (PEM as `dangjian-certs` writes it, or DER).
    file: Vec<u8>,
    /// The CRL in DER (served at its distribution point, given to the verifier).
    der: Arc<Vec<u8>>,
    this_update: DateTime<Utc>,
    next_update: DateTime<Utc>,
    /// Revoked serials, normalised.
    revoked: Vec<String>,
}

/// What `GET /api/v1/health` says about the CRL.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CrlStatus {
    pub loaded: bool,
    pub this_update: Option<String>,
    pub next_update: Option<String>,
    /// Past its nextUpdate (or none loaded): card sessions are refused until a fresh one is
    /// loaded.
    pub expired: bool,
    pub revoked: usize,
    /// The last reload's failure, if the file on disk could not be used.
    pub error: Option<String>,
}

fn parse_crl(file: &[u8], ca_der: &[u8]) -> anyhow::Result<LoadedCrl> {
    let info = dangjian_certs::parse_crl(file, ca_der)?;
    let der = if file.starts_with(b"-----") || file.windows(5).any(|w| w == b"-----") {
        rustls_pemfile::crls(&mut std::io::BufReader::new(file))
            .next()
            .context("no X509 CRL block in the file")??
            .as_ref()
            .to_vec()
    } else {
        file.to_vec()
    };
    Ok(LoadedCrl {
        file: file.to_vec(),
        der: Arc::new(der),
        this_update: info.this_update,
        next_update: info.next_update,
        revoked: info.revoked,
    })
}

// ---- the PKI -----------------------------------------------------------------------------

/// The listener's PKI state: see the module comment.
pub struct Pki {
    data_dir: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    ca_der: CertificateDer<'static>,
    ca_subject: String,
    roots: Arc<RootCertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
    config: RwLock<Arc<ServerConfig>>,
    crl: RwLock<Option<Arc<LoadedCrl>>>,
    error: RwLock<Option<String>>,
    expired_reported: AtomicBool,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

fn read_pem_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut std::io::BufReader::new(file)).collect::<Result<_, _>>()?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

impl Pki {
    /// Loads the server certificate and key, the platform CA certificate and the CRL of a data
    /// directory (`tls/`). A missing or unusable CRL is reported, not fatal: card sessions are
    /// refused until one loads.
    pub fn load(data_dir: &Path) -> anyhow::Result<Arc<Pki>> {
        let dir = super::tls_dir(data_dir);
        let server_chain = read_pem_certs(&dir.join("server.crt"))?;
        let key_file = dir.join("server.key");
        let server_key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut std::io::BufReader::new(
                std::fs::File::open(&key_file).context("open tls/server.key")?,
            ))?
            .context("no private key in tls/server.key")?;
        let ca_der = read_pem_certs(&super::ca_cert_path(data_dir))?
            .into_iter()
            .next()
            .context("no CA certificate")?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca_der.clone())
            .context("the platform CA certificate is not usable as a trust anchor")?;
        let ca_subject = describe(ca_der.as_ref())?.subject;
        let provider = provider();
        let sessions: Arc<dyn StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(8192);
        let ticketer = rustls::crypto::ring::Ticketer::new()?;
        let placeholder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(server_chain.clone(), server_key.clone_key())?;
        let pki = Pki {
            data_dir: data_dir.to_path_buf(),
            server_chain,
            server_key,
            ca_der,
            ca_subject,
            roots: Arc::new(roots),
            provider,
            sessions,
            ticketer,
            // Replaced below, once the CRL is read.
            config: RwLock::new(Arc::new(placeholder)),
            crl: RwLock::new(None),
            error: RwLock::new(None),
            expired_reported: AtomicBool::new(false),
        };
        let crl = pki.read_crl();
        let config = pki.build_config(crl.as_ref().ok().map(|c| c.der.as_slice()))?;
        *pki.config.write().expect("config lock") = Arc::new(config);
        match crl {
            Ok(c) => *pki.crl.write().expect("crl lock") = Some(Arc::new(c)),
            Err(e) => {
                tracing::error!("CRL not loaded, card sign-in is refused until one is: {e:#}");
                *pki.error.write().expect("error lock") = Some(format!("{e:#}"));
            }
        }
        pki.report_expiry();
        Ok(Arc::new(pki))
    }

    fn build_config(&self, crl: Option<&[u8]>) -> anyhow::Result<ServerConfig> {
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .allow_unauthenticated();
        if let Some(der) = crl {
            builder = builder.with_crls([CertificateRevocationListDer::from(der.to_vec())]);
        }
        // An expired CRL is not refused here: handshakes go on, and card sessions fail closed
        // in `card` with a message the person can read.
        let inner = builder
            .build()
            .context("build the client certificate verifier")?;
        let verifier = Arc::new(CardVerifier { inner });
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())?;
        // HTTP/2 first (the agent multiplexes every request of a card session on one
        // connection), HTTP/1.1 for the rest; see `serve_connection`.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = self.sessions.clone();
        config.ticketer = self.ticketer.clone();
        Ok(config)
    }

    fn read_crl(&self) -> anyhow::Result<LoadedCrl> {
        let path = super::crl_path(&self.data_dir);
        let file = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        parse_crl(&file, self.ca_der.as_ref())
    }

    /// The configuration for the next connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.read().expect("config lock").clone()
    }

    /// Reads the CRL file; when it differs from the loaded one and is good, builds and swaps
    /// in a new configuration. Returns whether a new CRL was loaded.
    pub fn reload_if_changed(&self) -> bool {
        let path = super::crl_path(&self.data_dir);
        let Ok(bytes) = std::fs::read(&path) else {
            if self.crl.read().expect("crl lock").is_some() {
                // Keep serving the last good CRL until its nextUpdate.
                *self.error.write().expect("error lock") =
                    Some(format!("{} is missing", path.display()));
            }
            self.report_expiry();
            return false;
        };
        let same = self
            .crl
            .read()
            .expect("crl lock")
            .as_ref()
            .is_some_and(|c| c.file == bytes);
        if same {
            self.report_expiry();
            return false;
        }
        let loaded = self
            .read_crl()
            .and_then(|crl| self.build_config(Some(&crl.der)).map(|cfg| (crl, cfg)));
        match loaded {
            Ok((crl, config)) => {
                tracing::info!(
                    revoked = crl.revoked.len(),
                    next_update = %rfc3339(crl.next_update),
                    "CRL loaded"
                );
                *self.config.write().expect("config lock") = Arc::new(config);
                *self.crl.write().expect("crl lock") = Some(Arc::new(crl));
                *self.error.write().expect("error lock") = None;
                self.expired_reported.store(false, Ordering::Relaxed);
                self.report_expiry();
                true
            }
            Err(e) => {
                let text = format!("{e:#}");
                let mut error = self.error.write().expect("error lock");
                if error.as_deref() != Some(text.as_str()) {
                    tracing::error!(
                        "the new CRL was not loaded, keeping the last good one: {text}"
                    );
                }
                *error = Some(text);
                drop(error);
                self.report_expiry();
                false
            }
        }
    }

    /// Logs once when the loaded CRL is past its nextUpdate.
    fn report_expiry(&self) {
        let status = self.status();
        if status.expired && !self.expired_reported.swap(true, Ordering::Relaxed) {
            tracing::error!(
                next_update = %status.next_update.unwrap_or_default(),
                "the CRL is past its nextUpdate (or none is loaded): card sign-in and card sessions are refused until a fresh CRL is published"
            );
        }
    }

    /// The CRL's state now.
    pub fn status(&self) -> CrlStatus {
        let crl = self.crl.read().expect("crl lock").clone();
        let error = self.error.read().expect("error lock").clone();
        match crl {
            None => CrlStatus {
                loaded: false,
                this_update: None,
                next_update: None,
                expired: true,
                revoked: 0,
                error,
            },
            Some(c) => CrlStatus {
                loaded: true,
                this_update: Some(rfc3339(c.this_update)),
                next_update: Some(rfc3339(c.next_update)),
                expired: Utc::now() >= c.next_update,
                revoked: c.revoked.len(),
                error,
            },
        }
    }

    /// The loaded CRL's nextUpdate.
    pub fn next_update(&self) -> Option<DateTime<Utc>> {
        self.crl
            .read()
            .expect("crl lock")
            .as_ref()
            .map(|c| c.next_update)
    }

    /// Is the CRL fresh enough for card sessions (loaded and before its nextUpdate)?
    pub fn crl_fresh(&self) -> bool {
        !self.status().expired
    }

    /// The loaded CRL (DER), served at its distribution point.
    pub fn crl_der(&self) -> Option<Arc<Vec<u8>>> {
        self.crl
            .read()
            .expect("crl lock")
            .as_ref()
            .map(|c| c.der.clone())
    }

    /// The serials the loaded CRL revokes (normalised).
    pub fn revoked_serials(&self) -> Vec<String> {
        self.crl
            .read()
            .expect("crl lock")
            .as_ref()
            .map(|c| c.revoked.clone())
            .unwrap_or_default()
    }

    /// The platform CA's subject (the issuer of every card certificate), as text.
    pub fn ca_subject(&self) -> &str {
        &self.ca_subject
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

static PKI: OnceLock<Arc<Pki>> = OnceLock::new();

/// Makes `pki` the process's (the server's listener, card sign-in, health and the CRL route
/// read it). A second install is ignored.
pub fn install(pki: Arc<Pki>) -> Arc<Pki> {
    let _ = PKI.set(pki);
    PKI.get().expect("installed").clone()
}

/// The process's PKI, once the server has loaded it.
pub fn pki() -> Option<Arc<Pki>> {
    PKI.get().cloned()
}
