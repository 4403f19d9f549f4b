//! The data directory and its configuration file (`config.json`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What `init` writes and `serve` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigFile {
    /// Unified code of the root organisation, e.g. `037`.
    pub root_code: String,
    pub root_name: String,
    /// Database URL; absent means the SQLite file in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
    /// SMS gateway URL (messages are POSTed as JSON); absent means `<data dir>/outbox.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_gateway_url: Option<String>,
    /// How long audit records are kept before `audit-prune` may remove them (at least 180).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// The address clients reach the server at (`init --public-url`): the CRL distribution
    /// point of the platform CA and a name of the server certificate. Absent in data
    /// directories made before it existed: `https://localhost:8443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Seconds between two signed heads in `audit-witness.jsonl` (when the head moved).
    #[serde(default = "default_audit_witness_seconds")]
    pub audit_witness_seconds: u64,
    /// Enrolment refuses a CSR whose key is not attested as generated on a card (PIV
    /// attestation chaining to one of `attestation_roots`). Default off.
    #[serde(default)]
    pub require_attestation: bool,
    /// PEM files with the trusted attestation roots (e.g. Yubico's PIV attestation root and
    /// its intermediate CA); relative paths are taken from the data directory.
    #[serde(default)]
    pub attestation_roots: Vec<PathBuf>,
    /// Real-name verification (SPEC §9): `{"kind": "none"}` (default), `{"kind": "local"}`
    /// (the registry imported with `realname import`) or `{"kind": "http", "url": …,
    /// "client_cert": …, "client_key": …, "ca": …, "timeout_ms": 5000}`.
    #[serde(
        default,
        skip_serializing_if = "crate::realname::RealNameConfig::is_none"
    )]
    pub realname: crate::realname::RealNameConfig,
    /// Days a transfer letter 介绍信 stays valid after its issue date (SPEC §6; default 45).
    #[serde(default = "default_letter_validity_days")]
    pub letter_validity_days: u32,
}

fn default_letter_validity_days() -> u32 {
    crate::letter::DEFAULT_VALIDITY_DAYS
}

fn default_audit_witness_seconds() -> u64 {
    crate::audit::witness::DEFAULT_INTERVAL_SECONDS
}

fn default_audit_retention_days() -> u32 {
    crate::audit::DEFAULT_RETENTION_DAYS
}

/// The running server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub file: ConfigFile,
    /// Cookies carry `Secure` (always, except on plain-HTTP loopback test servers).
    pub secure_cookies: bool,
}

pub fn config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("config.json")
}

impl ConfigFile {
    pub fn load(data_dir: &Path) -> anyhow::Result<ConfigFile> {
        let path = config_path(data_dir);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "read {} (run `dangjian-server init --data {}` first)",
                path.display(),
                data_dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = config_path(data_dir);
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", path.display()))
    }
}

/// Writes a file readable only by its owner (keys, demo credentials).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
