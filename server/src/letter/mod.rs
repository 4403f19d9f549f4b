//! Transfer letters 介绍信 (SPEC §6): the letter a transfer's source side issues, numbered,
//! signed by the platform's letter signer, printable (HTML and PDF) and verifiable by anyone.
//!
//! - `mod.rs`: [`LetterFields`], the signer's key and certificate (`<data>/letter/signer.key`
//!   0600, `signer.crt`, issued by the platform CA at start and renewed 30 days before expiry:
//!   [`ensure_signer`]), the public verdicts ([`Status`]).
//! - `store.rs`: the `letters` table — issue, re-issue, withdraw, receive, the number sequence,
//!   [`store::document`] (the signed JSON the holder downloads).
//! - `routes.rs`: the public verification (`GET /api/v1/letters/{number}/verify`, `POST
//!   /api/v1/letters/verify`), the letter's stylesheet.
//! - `pages.rs`: the printable A4 letter and the public verification page.
//! - `pdf.rs`: the letter as a PDF (krilla, with a CJK font of the system).
//!
//! The canonical form and the signature live in `dangjian_certs::letter`, shared with the
//! offline check `dangjian-certs verify-letter`.

pub mod pages;
pub mod pdf;
pub mod routes;
pub mod store;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

pub use store::{LetterDocument, LetterRow};

/// Days a letter stays valid when `config.json` does not say (`letter_validity_days`).
pub const DEFAULT_VALIDITY_DAYS: u32 = 45;

/// Validity of the signer certificate, in days; renewed [`SIGNER_RENEW_DAYS`] before its end.
pub const SIGNER_CERT_DAYS: u32 = 825;
/// A signer certificate closer than this to its end is replaced at start.
pub const SIGNER_RENEW_DAYS: i64 = 30;

/// What a letter says about the member and the two sides (the items of the traditional
/// layout). Serialised with these member names, which are also the keys of the canonical form
/// (`dangjian_certs::letter::FIELD_KEYS`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LetterFields {
    /// 收信党组织, e.g. 中共某市委组织部
    pub addressee: String,
    pub name: String,
    /// 男 or 女
    pub sex: String,
    #[serde(deserialize_with = "crate::state::whole_u32")]
    pub age: u32,
    /// label, e.g. 汉族
    pub ethnicity: String,
    /// 预备 or 正式
    pub category: String,
    /// the full 18 characters
    pub id_number: String,
    /// the source branch's full name
    pub from_org: String,
    /// the target branch's full name, or free text outside the platform
    pub to_org: String,
    /// 党费交到, YYYY-MM
    pub dues_paid_to: String,
    /// 党员联系电话
    pub member_phone: String,
    /// 党员原所在基层党委通讯地址
    pub committee_address: String,
    pub committee_phone: String,
    pub committee_fax: String,
    pub committee_postcode: String,
}

impl LetterFields {
    /// The fields as the JSON object the canonical form reads.
    pub fn as_object(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("LetterFields serialises to an object"),
        }
    }

    /// The fields shown publicly: the ID number masked (first 6, last 4), the member's phone
    /// masked (first 3, last 4).
    pub fn masked(&self) -> LetterFields {
        LetterFields {
            id_number: crate::member::idcard::mask(&self.id_number),
            member_phone: mask_phone(&self.member_phone),
            ..self.clone()
        }
    }
}

/// A phone number with all but its first 3 and last 4 characters starred.
fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < 3 || i >= chars.len() - 4 {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// What the public verification says about a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Issued, not re-issued, withdrawn or received, and within its validity.
    Genuine,
    /// Past its validity (a re-issue is needed).
    Expired,
    /// Withdrawn with its transfer.
    Withdrawn,
    /// Replaced by a re-issued letter with a new number.
    Superseded,
    /// The receiving side has received the member.
    Received,
    /// The letter presented differs from the one the platform issued under that number.
    Altered,
    /// No letter with that number.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Genuine => "genuine",
            Status::Expired => "expired",
            Status::Withdrawn => "withdrawn",
            Status::Superseded => "superseded",
            Status::Received => "received",
            Status::Altered => "altered",
            Status::Unknown => "unknown",
        }
    }

    /// The verdict in Chinese, as the public page shows it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Genuine => "真实有效",
            Status::Expired => "已过期",
            Status::Withdrawn => "已作废",
            Status::Superseded => "已重新开具",
            Status::Received => "已接收",
            Status::Altered => "内容与存档不符",
            Status::Unknown => "查无此介绍信",
        }
    }
}

/// `<data>/letter`: the signer's key and certificate.
pub fn signer_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("letter")
}

fn signer_key_path(data_dir: &Path) -> PathBuf {
    signer_dir(data_dir).join("signer.key")
}

fn signer_cert_path(data_dir: &Path) -> PathBuf {
    signer_dir(data_dir).join("signer.crt")
}

/// Makes sure `<data>/letter/signer.key` (0600) and `signer.crt` exist, the certificate
/// issued by the current platform CA and more than [`SIGNER_RENEW_DAYS`] from its end;
/// otherwise issues a new pair (`Ca::issue_letter_signer`). Runs at `init` and `serve`, after
/// `tls::ensure_server_certificate` (which makes the CA).
pub fn ensure_signer(data_dir: &Path) -> anyhow::Result<()> {
    let dir = signer_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let ca_path = crate::tls::ca_dir(data_dir);
    let ca_files = dangjian_certs::CaDir::new(&ca_path);
    let ca_pem = std::fs::read_to_string(ca_files.cert_path())
        .with_context(|| format!("read {}", ca_files.cert_path().display()))?;
    let ca_der = dangjian_certs::letter::cert_der_of_pem(&ca_pem)?;
    let current = std::fs::read_to_string(signer_cert_path(data_dir))
        .ok()
        .and_then(|pem| dangjian_certs::letter::cert_der_of_pem(&pem).ok());
    let fresh = current.as_deref().is_some_and(|der| {
        let today = crate::db::today();
        dangjian_certs::letter::verify_signer(der, &ca_der, today).is_ok()
            && dangjian_certs::describe(der).is_ok_and(|info| {
                info.not_after > chrono::Utc::now() + chrono::Duration::days(SIGNER_RENEW_DAYS)
            })
    });
    if fresh && signer_key_path(data_dir).exists() {
        return Ok(());
    }
    let ca = dangjian_certs::Ca::open(&ca_path, crate::tls::ca_passphrase().as_deref())
        .context("open the platform CA to issue the letter signer's certificate")?;
    let issued = ca.issue_letter_signer(SIGNER_CERT_DAYS)?;
    let key = issued
        .key_pem
        .context("the CA returned no key for the letter signer")?;
    crate::config::write_private(&signer_key_path(data_dir), key.as_bytes())?;
    std::fs::write(signer_cert_path(data_dir), issued.cert_pem)
        .with_context(|| format!("write {}", signer_cert_path(data_dir).display()))?;
    Ok(())
}

/// The signer's key (PKCS#8 PEM) and certificate (PEM), read from the data directory.
pub(crate) fn signer(data_dir: &Path) -> ApiResult<(String, String)> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|e| {
            ApiError::internal(format!(
                "letter signer {}: {e} (the server makes it at start)",
                path.display()
            ))
        })
    };
    Ok((
        read(signer_key_path(data_dir))?,
        read(signer_cert_path(data_dir))?,
    ))
}

/// The public URL clients reach the server at (`config.json`), without a trailing slash.
pub(crate) fn public_url(state: &crate::state::AppState) -> String {
    state
        .config
        .file
        .public_url
        .clone()
        .unwrap_or_else(|| crate::tls::DEFAULT_PUBLIC_URL.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// `2026-11-26` → `2026 年 11 月 26 日`; `2026-10` → (`2026`, `10`) for 党费已交到.
pub(crate) fn date_parts(date: &str) -> (String, String, String) {
    let mut it = date.split('-');
    let y = it.next().unwrap_or("").to_string();
    let m = it
        .next()
        .map(|m| m.trim_start_matches('0').to_string())
        .unwrap_or_default();
    let d = it
        .next()
        .map(|d| d.trim_start_matches('0').to_string())
        .unwrap_or_default();
    (y, m, d)
}
