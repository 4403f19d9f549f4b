//! `dangjian-certs`: the platform CA (SPEC §11).
//!
//! One directory holds the CA ([`CaDir`]):
//!
//! | file | contents |
//! |---|---|
//! | `ca.crt` | the self-signed root, ECDSA P-256 (PEM) |
//! | `ca.key` | its PKCS#8 private key, mode 0600; encrypted when a passphrase is given (see below) |
//! | `config.json` | `crl_url` (the CRL distribution point written into every certificate) and the last CRL number |
//! | `register.jsonl` | the issuance register: one JSON line per event (`"event": "issued"` with a [`RegisterEntry`], `"event": "revoked"`), append only, mode 0600 |
//! | `crl.pem` | the latest signed CRL, replaced atomically (write + rename) so that a watcher never reads half a file |
//!
//! The writing side is [`Ca`] (`init`, `open`, `issue_server`, `issue_client`, `revoke`, `crl`);
//! the reading side, for the server, is [`describe`] (a certificate) and [`parse_crl`] (a CRL,
//! its signature checked against the CA). Certificates and CRLs are built with `rcgen` (ring
//! backend) and read with `x509-parser`.
//!
//! Client certificates: subject `CN` = holder name, `serialNumber` (2.5.4.5) = citizen ID
//! number, `OU` = the scope organisation's unified code — always from [`ClientSubject`], never
//! from a CSR (a CSR only supplies the public key, after its self-signature is checked); keyUsage
//! digitalSignature, EKU clientAuth, a CRL distribution point, 365 days by default, a random
//! positive 16-byte serial number.
//!
//! Passphrase protection of `ca.key`: Argon2id (64 MiB, 3 passes) derives an AES-256-GCM key
//! (`ring`) from the passphrase and a random salt; the file format is described in the
//! `keyfile` module. Without a passphrase the file is a plain PKCS#8 PEM that `openssl` reads.
//!
//! Concurrency: register lines are appended with one `write` each on an `O_APPEND` file, so
//! the command and the server may both issue; the CRL number is read, incremented and written
//! back without a lock — two CRLs generated at the same instant may share a number.

pub mod attestation;
mod idcard;
mod keyfile;
pub mod letter;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::*;

pub use idcard::{validate_id_number, validate_org_code};

/// OID of the X.520 `serialNumber` attribute that carries the ID number.
pub const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
/// Default validity of an issued certificate, in days (the Beijing keys last a year).
pub const DEFAULT_DAYS: u32 = 365;
/// Default CRL lifetime (thisUpdate → nextUpdate), in hours.
pub const DEFAULT_CRL_HOURS: u32 = 7 * 24;
/// Validity of the root certificate, in days (20 years).
pub const CA_DAYS: i64 = 20 * 365;
/// The largest validity the CA grants, in days.
pub const MAX_DAYS: u32 = 3650;

/// Errors of the CA. Messages are one line, in English (an operator's tool, like the server's
/// command line).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The caller's input was refused (bad ID number, empty SAN list, unknown reason, …).
    #[error("{0}")]
    Invalid(String),
    /// The CA directory is already initialised.
    #[error("{0}")]
    Exists(String),
    /// No such certificate in the register.
    #[error("{0}")]
    NotFound(String),
    /// The passphrase is missing or wrong.
    #[error("{0}")]
    Passphrase(String),
    /// A certificate, CSR, CRL or key file could not be parsed or does not verify.
    #[error("{0}")]
    Parse(String),
    /// A cryptographic operation failed.
    #[error("{0}")]
    Crypto(String),
    /// rcgen refused to build a certificate or CRL.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The directory and its register
// ---------------------------------------------------------------------------------------------

/// The CA's directory and the files in it. Reading the register or revoking needs no key, so
/// these work on a `CaDir` alone; [`Ca`] adds the key for signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDir {
    path: PathBuf,
}

/// `config.json` in the CA directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaConfig {
    crl_url: String,
    #[serde(default)]
    crl_number: u64,
}

/// One line of `register.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum RegisterEvent {
    Issued(RegisterEntry),
    Revoked {
        serial_hex: String,
        revoked_at: DateTime<Utc>,
        reason: String,
    },
}

impl CaDir {
    /// The CA directory at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CaDir { path: path.into() }
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// `ca.crt`: the root certificate (PEM) — the server's only trust anchor for clients.
    pub fn cert_path(&self) -> PathBuf {
        self.path.join("ca.crt")
    }
    /// `ca.key`: the root's private key (0600).
    pub fn key_path(&self) -> PathBuf {
        self.path.join("ca.key")
    }
    /// `register.jsonl`: the issuance register.
    pub fn register_path(&self) -> PathBuf {
        self.path.join("register.jsonl")
    }
    /// `crl.pem`: the latest CRL.
    pub fn crl_path(&self) -> PathBuf {
        self.path.join("crl.pem")
    }
    /// `config.json`: the CRL URL and the CRL number.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }

    fn read_config(&self) -> Result<CaConfig> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|e| Error::Parse(format!("{}: {e}", path.display())))
    }

    fn write_config(&self, config: &CaConfig) -> Result<()> {
        let text = serde_json::to_string_pretty(config).expect("config serialises") + "\n";
        write_atomic(&self.config_path(), text.as_bytes(), 0o644)
    }

    fn read_events(&self) -> Result<Vec<RegisterEvent>> {
        let path = self.register_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map_err(|e| Error::Parse(format!("{} line {}: {e}", path.display(), i + 1)))
            })
            .collect()
    }

    fn append_event(&self, event: &RegisterEvent) -> Result<()> {
        let path = self.register_path();
        let mut line = serde_json::to_string(event).expect("event serialises");
        line.push('\n');
        let mut file = open_options(0o600)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(line.as_bytes()).map_err(io_err(&path))?;
        file.sync_data().map_err(io_err(&path))
    }

    /// Every certificate issued, oldest first, with its revocation (if any) folded in.
    pub fn list(&self) -> Result<Vec<RegisterEntry>> {
        let mut entries: Vec<RegisterEntry> = Vec::new();
        for event in self.read_events()? {
            match event {
                RegisterEvent::Issued(entry) => entries.push(entry),
                RegisterEvent::Revoked {
                    serial_hex,
                    revoked_at,
                    reason,
                } => {
                    if let Some(entry) = entries
                        .iter_mut()
                        .find(|e| e.serial_hex == serial_hex && e.revoked_at.is_none())
                    {
                        entry.revoked_at = Some(revoked_at);
                        entry.reason = Some(reason);
                    }
                }
            }
        }
        Ok(entries)
    }

    /// The register entry for a serial number (hex, any case, colons allowed).
    pub fn find(&self, serial_hex: &str) -> Result<Option<RegisterEntry>> {
        let serial = normalize_serial(serial_hex)?;
        Ok(self.list()?.into_iter().find(|e| e.serial_hex == serial))
    }

    /// Records a revocation in the register (it reaches clients with the next [`Ca::crl`]).
    /// Refuses an unknown serial and one already revoked.
    pub fn revoke(&self, serial_hex: &str, reason: RevocationReason) -> Result<()> {
        let serial = normalize_serial(serial_hex)?;
        let entry = self.find(&serial)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no certificate with serial {serial} in the register"
            ))
        })?;
        if entry.revoked_at.is_some() {
            return Err(Error::Invalid(format!(
                "certificate {serial} is already revoked"
            )));
        }
        self.append_event(&RegisterEvent::Revoked {
            serial_hex: serial,
            revoked_at: now_secs(),
            reason: reason.to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// The subject of a client (card) certificate. The CA takes it from here, never from a CSR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSubject {
    /// Holder's name → `CN`.
    pub name: String,
    /// Citizen ID number (GB 11643, checked) → `serialNumber`.
    pub id_number: String,
    /// The scope organisation's unified code (digits) → `OU`.
    pub org_code: String,
}

/// A certificate just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// The private key (PKCS#8 PEM) when the CA generated it; `None` when issued from a CSR.
    pub key_pem: Option<String>,
    /// Lower-case hex of the serial's magnitude, even length, no colons (as [`describe`]
    /// reports it and [`normalize_serial`] produces).
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256_fingerprint: String,
    pub not_after: DateTime<Utc>,
}

/// One issued certificate in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterEntry {
    /// Lower-case hex of the serial's magnitude, even length, no colons ([`normalize_serial`]).
    pub serial_hex: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256_fingerprint: String,
    /// The subject for display, e.g. `CN=张三, serialNumber=110105********002X, OU=0101`. The ID
    /// number is masked here (the register is a plain file); the certificate holds it in full.
    pub subject: String,
    /// The issuer's DN (the CA's subject) as [`describe`] renders it.
    #[serde(default)]
    pub issuer: String,
    /// `"server"` or `"client"`.
    pub kind: String,
    /// The account the certificate was issued for, if any.
    pub account_id: Option<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The revocation reason, snake_case ([`RevocationReason`]).
    pub reason: Option<String>,
}

impl RegisterEntry {
    /// `"revoked"`, `"expired"` or `"valid"` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "valid"
        }
    }
}

/// Why a certificate was revoked (RFC 5280 §5.3.1 subset). Parsed from and shown as snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
}

impl RevocationReason {
    /// Every reason, for help texts.
    pub const ALL: [RevocationReason; 5] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::AffiliationChanged => "affiliation_changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
                Error::Invalid(format!(
                    "unknown revocation reason {s:?} (one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// What the server needs to know about a certificate ([`describe`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// The whole subject DN, e.g. `CN=张三, serialNumber=11010519491231002X, OU=0101`.
    pub subject: String,
    /// `CN`.
    pub holder_name: Option<String>,
    /// `serialNumber` (2.5.4.5).
    pub id_number: Option<String>,
    /// `OU`.
    pub org_code: Option<String>,
    /// The issuer DN.
    pub issuer: String,
    /// Lower-case hex of the serial's magnitude, even length, no colons ([`normalize_serial`]).
    pub serial_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256_fingerprint: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    pub is_ca: bool,
    /// keyUsage digitalSignature is present.
    pub digital_signature: bool,
    /// EKU clientAuth / serverAuth present.
    pub client_auth: bool,
    pub server_auth: bool,
    /// CRL distribution point URIs.
    pub crl_urls: Vec<String>,
    /// DNS names and IP addresses of the subjectAltName.
    pub sans: Vec<String>,
}

/// What the server needs to know about a CRL ([`parse_crl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub issuer: String,
    pub this_update: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
    pub crl_number: Option<u64>,
    /// Revoked serial numbers, lower-case hex as in [`CertInfo::serial_hex`].
    pub revoked: Vec<String>,
}

impl CrlInfo {
    /// Past its nextUpdate at `now`: a server must then fail closed for card sessions.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        now >= self.next_update
    }
}

// ---------------------------------------------------------------------------------------------
// The CA
// ---------------------------------------------------------------------------------------------

/// An opened CA: its directory, root certificate and private key. `Send + Sync`; the server may
/// keep one in an `Arc` for enrolment.
pub struct Ca {
    dir: CaDir,
    crl_url: String,
    cert_pem: String,
    cert_der: Vec<u8>,
    /// The root rebuilt from `ca.crt` for rcgen's signing (its DN, key identifier, key usages).
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a CA in `dir` (created 0700 if missing; refused if it already holds `ca.crt` or
    /// `ca.key`): an ECDSA P-256 root named `CN=common_name`, valid 20 years, pathLen 0, keyUsage
    /// keyCertSign + cRLSign; `ca.key` 0600, encrypted when `passphrase` is given; an empty
    /// register and a first (empty) CRL valid [`DEFAULT_CRL_HOURS`].
    pub fn init(
        dir: &Path,
        common_name: &str,
        crl_url: &str,
        passphrase: Option<&str>,
    ) -> Result<Ca> {
        Self::init_with_cost(dir, common_name, crl_url, passphrase, keyfile::DEFAULT_COST)
    }

    fn init_with_cost(
        dir: &Path,
        common_name: &str,
        crl_url: &str,
        passphrase: Option<&str>,
        cost: keyfile::KdfCost,
    ) -> Result<Ca> {
        let common_name = common_name.trim();
        check_text("CA name", common_name)?;
        let crl_url = check_crl_url(crl_url)?;
        let ca_dir = CaDir::new(dir);
        for path in [ca_dir.cert_path(), ca_dir.key_path()] {
            if path.exists() {
                return Err(Error::Exists(format!(
                    "{} exists: {} already holds a CA",
                    path.display(),
                    dir.display()
                )));
            }
        }
        create_dir_private(dir)?;

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = now_secs();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        params.not_before = to_time(now - Duration::minutes(5));
        params.not_after = to_time(now + Duration::days(CA_DAYS));
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();

        let key_text = keyfile::encode(&key.serialize_der(), passphrase, cost)?;
        write_new(&ca_dir.key_path(), key_text.as_bytes(), 0o600)?;
        write_new(&ca_dir.cert_path(), cert_pem.as_bytes(), 0o644)?;
        ca_dir.write_config(&CaConfig {
            crl_url,
            crl_number: 0,
        })?;
        write_new(&ca_dir.register_path(), b"", 0o600)?;

        let ca = Self::from_parts(ca_dir, &cert_pem, key)?;
        ca.crl(DEFAULT_CRL_HOURS)?;
        Ok(ca)
    }

    /// Opens the CA in `dir`. An encrypted `ca.key` needs `passphrase`; a plain one ignores it.
    /// Checks that the key belongs to `ca.crt`.
    pub fn open(dir: &Path, passphrase: Option<&str>) -> Result<Ca> {
        let ca_dir = CaDir::new(dir);
        let cert_path = ca_dir.cert_path();
        let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_path = ca_dir.key_path();
        let key_text = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let der = keyfile::decode(&key_text, passphrase)?;
        let key = KeyPair::try_from(der.as_slice())
            .map_err(|e| Error::Parse(format!("{}: {e}", key_path.display())))?;
        Self::from_parts(ca_dir, &cert_pem, key)
    }

    fn from_parts(dir: CaDir, cert_pem: &str, key: KeyPair) -> Result<Ca> {
        let config = dir.read_config()?;
        let cert_der = keyfile::pem_body(cert_pem, "CERTIFICATE")?;
        let (_, x509) = X509Certificate::from_der(&cert_der)
            .map_err(|e| Error::Parse(format!("ca.crt: {e}")))?;
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(Error::Invalid("ca.key does not belong to ca.crt".into()));
        }
        let params = CertificateParams::from_ca_cert_der(&cert_der.clone().into())?;
        let issuer = params.self_signed(&key)?;
        Ok(Ca {
            dir,
            crl_url: config.crl_url,
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer,
            key,
        })
    }

    /// The CA's directory.
    pub fn dir(&self) -> &CaDir {
        &self.dir
    }
    /// The CRL distribution point written into every certificate.
    pub fn crl_url(&self) -> &str {
        &self.crl_url
    }
    /// The root certificate, PEM (as in `ca.crt`).
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }
    /// The root certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// Issues a server certificate: SANs (DNS names or IP addresses; the first is also the CN),
    /// keyUsage digitalSignature, EKU serverAuth, a fresh P-256 key (returned in `key_pem`).
    pub fn issue_server(&self, sans: &[String], days: u32) -> Result<Issued> {
        check_days(days)?;
        let sans: Vec<String> = sans
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = sans.iter().find(|s| !valid_san(s)) {
            return Err(Error::Invalid(format!(
                "{bad:?} is neither a DNS name nor an IP address"
            )));
        }
        let Some(first) = sans.first().cloned() else {
            return Err(Error::Invalid(
                "a server certificate needs at least one SAN".into(),
            ));
        };
        let mut params =
            CertificateParams::new(sans).map_err(|e| Error::Invalid(format!("bad SAN: {e}")))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, first);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key_pem = key.serialize_pem();
        self.sign(params, &key, days, "server", None, Some(key_pem))
    }

    /// Issues a client (card) certificate. The subject comes from `subject` only (the ID number's
    /// check character and the organisation code are checked). With `csr_pem` the CSR's
    /// self-signature is verified and only its public key is used (P-256, or RSA of at least
    /// 2048 bits); without it a P-256 key is generated and returned in `key_pem`.
    pub fn issue_client(
        &self,
        subject: &ClientSubject,
        csr_pem: Option<&str>,
        days: u32,
        account_id: Option<&str>,
    ) -> Result<Issued> {
        check_days(days)?;
        let name = subject.name.trim();
        check_text("holder name", name)?;
        let id_number = validate_id_number(&subject.id_number).map_err(Error::Invalid)?;
        let org_code = validate_org_code(&subject.org_code).map_err(Error::Invalid)?;
        let account_id = account_id.map(str::trim).filter(|a| !a.is_empty());

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(
            DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
            DnValue::PrintableString(
                id_number
                    .as_str()
                    .try_into()
                    .map_err(|_| Error::Invalid("ID number is not printable".into()))?,
            ),
        );
        dn.push(DnType::OrganizationalUnitName, org_code.as_str());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];

        match csr_pem {
            Some(csr) => {
                let spki = csr_public_key(csr)?;
                self.sign(params, &spki, days, "client", account_id, None)
            }
            None => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
                let key_pem = key.serialize_pem();
                self.sign(params, &key, days, "client", account_id, Some(key_pem))
            }
        }
    }

    /// Issues a client certificate for a service of the platform itself (e.g. the server's
    /// identity towards a provincial real-name service): `CN` = `name`, keyUsage
    /// digitalSignature, EKU clientAuth, a fresh P-256 key (returned in `key_pem`). It carries
    /// no ID number and no organisation, so it names no person and signs nobody in.
    pub fn issue_service_client(&self, name: &str, days: u32) -> Result<Issued> {
        check_days(days)?;
        let name = name.trim();
        check_text("service name", name)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key_pem = key.serialize_pem();
        self.sign(params, &key, days, "service", None, Some(key_pem))
    }

    /// Issues the certificate of the transfer-letter signer ([`letter`]): `CN` =
    /// [`letter::SIGNER_NAME`], keyUsage digitalSignature, EKU id-kp-documentSigning (RFC 9336)
    /// only, a fresh P-256 key (returned in `key_pem`). It names no person and can neither sign
    /// in nor serve TLS; letter verification accepts no other certificate.
    pub fn issue_letter_signer(&self, days: u32) -> Result<Issued> {
        check_days(days)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, letter::SIGNER_NAME);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(
            letter::OID_DOCUMENT_SIGNING.to_vec(),
        )];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key_pem = key.serialize_pem();
        self.sign(params, &key, days, "letter_signer", None, Some(key_pem))
    }

    /// The common part of issuing: validity, serial, key usage, CRL DP, AKI; sign; register.
    fn sign(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        days: u32,
        kind: &str,
        account_id: Option<&str>,
        key_pem: Option<String>,
    ) -> Result<Issued> {
        let now = now_secs();
        let not_after = now + Duration::days(i64::from(days));
        params.not_before = to_time(now - Duration::minutes(5));
        params.not_after = to_time(not_after);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.crl_url.clone()],
        }];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(public_key, &self.issuer, &self.key)?;
        let cert_der = cert.der().to_vec();
        let info = describe(&cert_der)?;
        let subject = match &info.id_number {
            Some(id) => info.subject.replace(id.as_str(), &idcard::mask(id)),
            None => info.subject.clone(),
        };
        self.dir
            .append_event(&RegisterEvent::Issued(RegisterEntry {
                serial_hex: info.serial_hex.clone(),
                sha256_fingerprint: info.sha256_fingerprint.clone(),
                subject,
                issuer: info.issuer.clone(),
                kind: kind.to_string(),
                account_id: account_id.map(str::to_string),
                issued_at: now,
                expires_at: info.not_after,
                revoked_at: None,
                reason: None,
            }))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der,
            key_pem,
            serial_hex: info.serial_hex,
            sha256_fingerprint: info.sha256_fingerprint,
            not_after: info.not_after,
        })
    }

    /// Records a revocation ([`CaDir::revoke`]); publish it with [`Ca::crl`].
    pub fn revoke(&self, serial_hex: &str, reason: RevocationReason) -> Result<()> {
        self.dir.revoke(serial_hex, reason)
    }

    /// Signs a CRL of every revoked certificate in the register: thisUpdate now, nextUpdate in
    /// `next_update_hours` (1 to 8760), the next CRL number, the CA's key identifier. Replaces
    /// `crl.pem` atomically and returns the DER.
    pub fn crl(&self, next_update_hours: u32) -> Result<Vec<u8>> {
        if !(1..=24 * 365).contains(&next_update_hours) {
            return Err(Error::Invalid(
                "next update must be 1 to 8760 hours away".into(),
            ));
        }
        let mut config = self.dir.read_config()?;
        config.crl_number += 1;
        let now = now_secs();
        let mut revoked_certs = Vec::new();
        for entry in self.list()? {
            let Some(revoked_at) = entry.revoked_at else {
                continue;
            };
            let reason = entry
                .reason
                .as_deref()
                .and_then(|r| r.parse::<RevocationReason>().ok())
                .unwrap_or(RevocationReason::Unspecified);
            // A revoked serial that cannot be put in the CRL must stop the CRL, not vanish.
            let serial = hex::decode(normalize_serial(&entry.serial_hex)?).map_err(|_| {
                Error::Parse(format!("register: bad serial {:?}", entry.serial_hex))
            })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: to_time(revoked_at),
                reason_code: Some(reason.to_rcgen()),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: to_time(now),
            next_update: to_time(now + Duration::hours(i64::from(next_update_hours))),
            crl_number: SerialNumber::from(config.crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.issuer.params().key_identifier_method.clone(),
        };
        let crl = params.signed_by(&self.issuer, &self.key)?;
        let der = crl.der().to_vec();
        self.dir.write_config(&config)?;
        write_atomic(
            &self.dir.crl_path(),
            keyfile::pem_block("X509 CRL", &der).as_bytes(),
            0o644,
        )?;
        Ok(der)
    }

    /// Every certificate issued ([`CaDir::list`]).
    pub fn list(&self) -> Result<Vec<RegisterEntry>> {
        self.dir.list()
    }

    /// The register entry for a serial ([`CaDir::find`]).
    pub fn find(&self, serial_hex: &str) -> Result<Option<RegisterEntry>> {
        self.dir.find(serial_hex)
    }
}

// ---------------------------------------------------------------------------------------------
// The reading side
// ---------------------------------------------------------------------------------------------

/// Reads a DER certificate: subject fields, issuer, serial, validity, fingerprint, usages.
/// Parsing only: it does not verify the signature or the chain (rustls does that).
pub fn describe(der: &[u8]) -> Result<CertInfo> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| Error::Parse(format!("certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Parse("certificate: trailing bytes".into()));
    }
    let first = |oid: &x509_parser::der_parser::Oid| {
        cert.subject()
            .iter_by_oid(oid)
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string)
    };
    let serial_oid =
        x509_parser::der_parser::Oid::from(&OID_SERIAL_NUMBER).expect("serialNumber OID");
    let not_before = from_asn1_time(cert.validity().not_before)?;
    let not_after = from_asn1_time(cert.validity().not_after)?;
    let mut info = CertInfo {
        subject: cert.subject().to_string(),
        holder_name: first(&x509_parser::oid_registry::OID_X509_COMMON_NAME),
        id_number: first(&serial_oid),
        org_code: first(&x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT),
        issuer: cert.issuer().to_string(),
        serial_hex: serial_to_hex(cert.raw_serial()),
        not_before,
        not_after,
        sha256_fingerprint: hex::encode(Sha256::digest(der)),
        days_left: (not_after - Utc::now()).num_days(),
        is_ca: cert.is_ca(),
        digital_signature: false,
        client_auth: false,
        server_auth: false,
        crl_urls: Vec::new(),
        sans: Vec::new(),
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => info.digital_signature = ku.digital_signature(),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                info.client_auth = eku.client_auth;
                info.server_auth = eku.server_auth;
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for point in points.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &point.distribution_point
                    {
                        for name in names {
                            if let GeneralName::URI(uri) = name {
                                info.crl_urls.push(uri.to_string());
                            }
                        }
                    }
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => info.sans.push(dns.to_string()),
                        GeneralName::IPAddress(ip) => {
                            let text = match ip.len() {
                                4 => <[u8; 4]>::try_from(*ip)
                                    .map(|a| std::net::IpAddr::from(a).to_string())
                                    .unwrap_or_default(),
                                16 => <[u8; 16]>::try_from(*ip)
                                    .map(|a| std::net::IpAddr::from(a).to_string())
                                    .unwrap_or_default(),
                                _ => hex::encode(ip),
                            };
                            info.sans.push(text);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

/// Reads a certificate in PEM (the first `CERTIFICATE` block) or DER and [`describe`]s it.
pub fn describe_bytes(bytes: &[u8]) -> Result<CertInfo> {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {
            describe(&keyfile::pem_body(text, "CERTIFICATE")?)
        }
        _ => describe(bytes),
    }
}

/// Reads a CRL (DER, or PEM `X509 CRL`) and verifies its signature with the CA certificate
/// (`ca_der`); refuses a CRL from another issuer or without nextUpdate. Staleness is the
/// caller's decision ([`CrlInfo::is_stale`]).
pub fn parse_crl(crl: &[u8], ca_der: &[u8]) -> Result<CrlInfo> {
    let der = match std::str::from_utf8(crl) {
        Ok(text) if text.contains("-----BEGIN X509 CRL-----") => {
            keyfile::pem_body(text, "X509 CRL")?
        }
        _ => crl.to_vec(),
    };
    let (_, list) =
        CertificateRevocationList::from_der(&der).map_err(|e| Error::Parse(format!("CRL: {e}")))?;
    let (_, ca) = X509Certificate::from_der(ca_der)
        .map_err(|e| Error::Parse(format!("CA certificate: {e}")))?;
    if list.issuer() != ca.subject() {
        return Err(Error::Parse("CRL: issued by another CA".into()));
    }
    list.verify_signature(ca.public_key())
        .map_err(|_| Error::Parse("CRL: the signature does not verify with the CA key".into()))?;
    let next_update = list
        .next_update()
        .ok_or_else(|| Error::Parse("CRL: no nextUpdate".into()))?;
    Ok(CrlInfo {
        issuer: list.issuer().to_string(),
        this_update: from_asn1_time(list.last_update())?,
        next_update: from_asn1_time(next_update)?,
        crl_number: list.crl_number().and_then(|n| {
            let bytes = n.to_bytes_be();
            (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        }),
        revoked: list
            .iter_revoked_certificates()
            .map(|r| serial_to_hex(r.raw_serial()))
            .collect(),
    })
}

/// Normalises a serial number given by a person to the form [`CertInfo::serial_hex`] uses
/// (lower-case hex of the big-endian magnitude, an even number of digits, no leading zero byte):
/// strips colons and spaces, lower-cases. Refuses anything but hex.
pub fn normalize_serial(input: &str) -> Result<String> {
    let cleaned: String = input
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "{input:?} is not a hexadecimal serial number"
        )));
    }
    let trimmed = cleaned.trim_start_matches('0');
    Ok(match trimmed.len() {
        0 => "00".to_string(),
        n if n % 2 == 1 => format!("0{trimmed}"),
        _ => trimmed.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn serial_to_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    if raw.is_empty() {
        return "00".into();
    }
    hex::encode(&raw[start..])
}

/// 16 random bytes, first byte in 0x01..=0x7f: positive, and exactly 16 bytes in DER.
fn random_serial() -> Result<SerialNumber> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto("system random generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

/// Reads the CSR, checks its self-signature and returns its public key. The CSR's subject
/// and extensions are ignored.
fn csr_public_key(csr_pem: &str) -> Result<rcgen::SubjectPublicKeyInfo> {
    if csr_pem.len() > 64 * 1024 {
        return Err(Error::Invalid("the CSR is too large".into()));
    }
    let der = keyfile::pem_body(csr_pem, "CERTIFICATE REQUEST")
        .or_else(|_| keyfile::pem_body(csr_pem, "NEW CERTIFICATE REQUEST"))
        .map_err(|_| Error::Invalid("the CSR is not a PEM CERTIFICATE REQUEST".into()))?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| Error::Invalid(format!("the CSR does not parse: {e}")))?;
    let spki = &csr.certification_request_info.subject_pki;
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(point)) => {
            let p256 = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|oid| oid == x509_parser::oid_registry::OID_EC_P256);
            if !p256 || point.key_size() != 256 {
                return Err(Error::Invalid("the CSR's EC key is not P-256".into()));
            }
        }
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            if rsa.key_size() < 2048 {
                return Err(Error::Invalid(
                    "the CSR's RSA key is shorter than 2048 bits".into(),
                ));
            }
        }
        _ => {
            return Err(Error::Invalid(
                "the CSR's key is neither ECDSA P-256 nor RSA".into(),
            ))
        }
    }
    // After the key checks, so that a too-short RSA key (which ring will not verify with) is
    // named as such.
    csr.verify_signature()
        .map_err(|_| Error::Invalid("the CSR's signature does not verify".into()))?;
    rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| Error::Invalid(format!("the CSR's public key: {e}")))
}

/// An IP address, or a DNS name (letters, digits, hyphens; labels of 1 to 63; an optional
/// leading `*.` wildcard).
fn valid_san(san: &str) -> bool {
    if san.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = san.strip_prefix("*.").unwrap_or(san);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_days(days: u32) -> Result<()> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::Invalid(format!(
            "validity must be 1 to {MAX_DAYS} days"
        )));
    }
    Ok(())
}

fn check_text(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.chars().count() > 64 || value.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{what} must be 1 to 64 characters without control characters"
        )));
    }
    Ok(())
}

fn check_crl_url(url: &str) -> Result<String> {
    let url = url.trim();
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && url.is_ascii()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::Invalid(format!(
            "{url:?} is not an http(s) URL for the CRL"
        )));
    }
    Ok(url.to_string())
}

fn now_secs() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0)
        .single()
        .expect("now")
}

fn to_time(t: DateTime<Utc>) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::from_unix_timestamp(t.timestamp()).expect("time in range")
}

fn from_asn1_time(t: ASN1Time) -> Result<DateTime<Utc>> {
    Utc.timestamp_opt(t.timestamp(), 0)
        .single()
        .ok_or_else(|| Error::Parse("time out of range".into()))
}

fn open_options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// Creates a new file (refusing to replace one) with `mode`.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = open_options(mode)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Replaces a file atomically: a temporary file beside it, then rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn create_dir_private(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

/// Writes a private key or certificate for the command line: a new file (never replacing one)
/// with `mode` (0600 for keys).
pub fn write_output_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_new(path, bytes, mode)
}

#[cfg(test)]
mod tests;
