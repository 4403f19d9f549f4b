//! The enrolment's attestation policy (`config.json`: `require_attestation`,
//! `attestation_roots`): a CSR may come with the card's PIV attestation — the statement the
//! card made for the new key (`INS F9`) and the slot-F9 certificate that signed it — which
//! `dangjian_certs::attestation::verify` checks against the trusted roots. Required, a CSR
//! without a valid attestation is refused; not required, a valid one is still recorded.

use std::path::{Path, PathBuf};

use anyhow::Context;
use axum::http::StatusCode;
use dangjian_certs::attestation::{self, AttestationError, Attested};

use crate::config::ConfigFile;
use crate::error::ApiError;

/// What the enrolment's attestation amounts to.
#[derive(Debug)]
pub enum Verdict {
    /// Verified: the key was generated on a card whose attestation chains to a trusted root.
    Attested(Attested),
    /// The request carried no attestation.
    Missing,
    /// The request carried one that does not hold (why, in English, for the audit).
    Invalid(String),
}

impl Verdict {
    /// The line for the audit record.
    pub fn detail(&self) -> String {
        match self {
            Verdict::Attested(a) => a.summary(),
            Verdict::Missing => "no key attestation".to_string(),
            Verdict::Invalid(why) => format!("key attestation not accepted: {why}"),
        }
    }

    /// The refusal when attestation is required and this verdict does not satisfy it.
    pub fn refusal(&self) -> Option<ApiError> {
        match self {
            Verdict::Attested(_) => None,
            Verdict::Missing => Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "attestation_required",
                    "平台要求证明密钥是在 USB Key 内生成的（密钥证明，attestation），\
                     但该证书请求未附带证明：请使用支持密钥证明的 USB Key 申领证书",
                )
                .with_field("attestation"),
            ),
            Verdict::Invalid(_) => Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "attestation_invalid",
                    "该 USB Key 的密钥证明（attestation）未通过核验：证明不是由受信任的根证书签发，\
                     或证明的密钥与证书请求不符；请使用平台认可的 USB Key 申领证书",
                )
                .with_field("attestation"),
            ),
        }
    }
}

/// The configured root files, relative ones taken from the data directory.
fn root_paths(data_dir: &Path, file: &ConfigFile) -> Vec<PathBuf> {
    file.attestation_roots
        .iter()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                data_dir.join(p)
            }
        })
        .collect()
}

/// Every certificate of the configured root files (DER). A file that cannot be read or holds
/// no certificate is an error.
pub fn load_roots(data_dir: &Path, file: &ConfigFile) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut roots = Vec::new();
    for path in root_paths(data_dir, file) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("read attestation root {}", path.display()))?;
        let certs = attestation::pem_certificates(&text);
        anyhow::ensure!(
            !certs.is_empty(),
            "attestation root {} holds no PEM certificate",
            path.display()
        );
        roots.extend(certs);
    }
    Ok(roots)
}

/// Checked when the server starts: a required attestation needs readable roots.
pub fn check_config(data_dir: &Path, file: &ConfigFile) -> anyhow::Result<()> {
    let roots = load_roots(data_dir, file)?;
    if file.require_attestation && roots.is_empty() {
        anyhow::bail!(
            "require_attestation is set in config.json but attestation_roots names no root certificate"
        );
    }
    Ok(())
}

/// Judges the attestation sent with `csr`: `statement` (the card's certificate for the key)
/// and `signer` (its slot-F9 certificate), PEM or base64 DER.
pub fn assess(
    data_dir: &Path,
    file: &ConfigFile,
    csr: &str,
    statement: Option<&str>,
    signer: Option<&str>,
) -> Verdict {
    fn present(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    let (statement, signer) = match (present(statement), present(signer)) {
        (None, None) => return Verdict::Missing,
        (Some(statement), Some(signer)) => (statement, signer),
        _ => {
            return Verdict::Invalid(
                "the statement and the F9 certificate must come together".to_string(),
            )
        }
    };
    let roots = match load_roots(data_dir, file) {
        Ok(roots) => roots,
        Err(e) => {
            tracing::error!("attestation roots: {e:#}");
            return Verdict::Invalid(format!("no usable attestation roots: {e:#}"));
        }
    };
    let result = attestation::certificate_der(statement).and_then(|statement| {
        let signer = attestation::certificate_der(signer)?;
        attestation::verify(&statement, &signer, &roots, csr, chrono::Utc::now())
    });
    match result {
        Ok(attested) => Verdict::Attested(attested),
        Err(AttestationError::Untrusted(why)) if roots.is_empty() => {
            Verdict::Invalid(format!("no attestation roots are configured ({why})"))
        }
        Err(e) => Verdict::Invalid(e.to_string()),
    }
}
