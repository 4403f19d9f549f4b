//! Real-name verification 实名认证 (SPEC §9). The national population database is not
//! reachable: a [`RealNameSource`] answers whether an ID number belongs to a name. Two sources:
//! the local registry imported from the organisation department's CSV ([`local`]) and an HTTP
//! adapter for a provincial service over mutual TLS ([`http`]). Which one (or none) runs is
//! `realname` in `config.json` ([`RealNameConfig`]); the server keeps it in
//! `AppState::realname`, and routes ask through [`check`].
//!
//! A source never passes silently: a service that is down, slow or answers garbage is a
//! [`RealNameError`] with a Chinese message, never a match.

pub mod http;
pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// What a source says about an (ID number, name) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The number is known and belongs to this name.
    Match,
    /// The name differs or the number is unknown (callers are not told which).
    Mismatch,
}

/// Why a source could not answer. Never treated as a match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RealNameError {
    /// The service could not be reached (connection refused, TLS refused, DNS, …).
    #[error("实名认证服务暂时无法连接（{0}），请稍后重试；在核验完成前该党员视为实名未核验")]
    Unavailable(String),
    /// The service did not answer in time.
    #[error("实名认证服务在 {0} 毫秒内没有应答，请稍后重试；在核验完成前该党员视为实名未核验")]
    Timeout(u64),
    /// The service answered something that is not the protocol's answer.
    #[error(
        "实名认证服务的应答无法识别（{0}），请联系系统管理员；在核验完成前该党员视为实名未核验"
    )]
    BadAnswer(String),
    /// The local registry could not be read (the cause goes to the log, not to the client).
    #[error("本地实名库读取失败，请联系系统管理员；在核验完成前该党员视为实名未核验")]
    Store(String),
}

impl From<RealNameError> for ApiError {
    fn from(e: RealNameError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "realname_unavailable",
            e.to_string(),
        )
    }
}

/// The future a source returns (boxed, so that the trait is object-safe).
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Verdict, RealNameError>> + Send + 'a>>;

/// A real-name verification source.
pub trait RealNameSource: Send + Sync {
    /// Does `id_number` belong to `name`? Both are compared trimmed; the ID number with an
    /// upper-case `X`.
    fn check<'a>(&'a self, id_number: &'a str, name: &'a str) -> CheckFuture<'a>;
    /// What the source is, for messages and the audit (`本地实名库`, `省级实名认证服务`).
    fn label(&self) -> &'static str;
}

/// `realname` in `config.json`: which source runs. Absent means none (members are then
/// 实名未核验).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RealNameConfig {
    /// No source: nothing is verified.
    #[default]
    None,
    /// The local registry (`realname_registry`, filled by `realname import`).
    Local,
    /// The provincial service over mutual TLS (see `docs/api.md`, "Real-name adapter").
    Http {
        /// The service's URL; the request is a POST to it.
        url: String,
        /// PEM certificate this server presents (issued by the platform CA:
        /// `dangjian-server realname client-cert`). Relative paths: from the data directory.
        client_cert: PathBuf,
        /// Its private key (PEM).
        client_key: PathBuf,
        /// PEM file with the CA certificate(s) that issued the service's server certificate.
        ca: PathBuf,
        /// How long to wait for an answer (default 5000).
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
}

pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl RealNameConfig {
    pub fn is_none(&self) -> bool {
        matches!(self, RealNameConfig::None)
    }
}

/// The source `config` names, ready to serve (`None` for [`RealNameConfig::None`]). The HTTP
/// adapter's files are read now, so a bad path stops `serve` at start.
pub fn build(
    config: &RealNameConfig,
    db: &crate::db::Db,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<Arc<dyn RealNameSource>>> {
    Ok(match config {
        RealNameConfig::None => None,
        RealNameConfig::Local => Some(Arc::new(local::LocalRegistry::new(db.clone()))),
        RealNameConfig::Http {
            url,
            client_cert,
            client_key,
            ca,
            timeout_ms,
        } => {
            let at = |p: &PathBuf| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    data_dir.join(p)
                }
            };
            Some(Arc::new(http::HttpSource::new(&http::HttpOptions {
                url: url.clone(),
                client_cert: at(client_cert),
                client_key: at(client_key),
                ca: at(ca),
                timeout: std::time::Duration::from_millis(*timeout_ms),
            })?))
        }
    })
}

/// Checks a person through the configured source: `Ok(None)` when no source is configured
/// (the member is 实名未核验), `Ok(Some(verdict))` otherwise; a source that cannot answer is a
/// 503 `realname_unavailable` with the source's Chinese message.
pub async fn check(
    state: &AppState,
    id_number: &str,
    name: &str,
) -> Result<Option<Verdict>, ApiError> {
    let Some(source) = &state.realname else {
        return Ok(None);
    };
    match source.check(id_number, name).await {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            if let RealNameError::Store(cause) = &e {
                tracing::error!("real-name registry: {cause}");
            }
            tracing::warn!("real-name check through {}: {e}", source.label());
            Err(e.into())
        }
    }
}

/// Normalises what sources compare: the ID number trimmed with an upper-case `X`, the name
/// trimmed.
pub fn normalise(id_number: &str, name: &str) -> (String, String) {
    (
        id_number.trim().to_ascii_uppercase(),
        name.trim().to_string(),
    )
}
