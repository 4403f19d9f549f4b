//! USB-key (card) certificates on the server side (SPEC §8, §11): the register of issued
//! client certificates (`certificates`), card sign-in (`POST /api/v1/session/card`), the
//! binding of a card session to its certificate, enrolment from a CSR with a one-time code,
//! revocation, the CRL watcher that makes revocations take effect without restart, and the
//! audit of refused certificates.
//!
//! A certificate maps to its account by issuer + serial number as recorded at issuance (the
//! SHA-256 fingerprint must match too), never by its subject text.

pub mod attestation;
pub mod routes;
pub mod tunnel;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use dangjian_certs::{Ca, ClientSubject, Issued, RevocationReason};

use crate::audit::{self, Event, Who};
use crate::db::{new_id, now_rfc3339, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::member::idcard;
use crate::tls::{Pki, RefusedHandshake};

/// Certificates that end within this many days are announced to the holder and listed for the
/// security officer.
pub const EXPIRY_WARN_DAYS: i64 = 30;
/// How often the CRL file is checked for a new version.
pub const CRL_CHECK_SECONDS: u64 = 5;
/// A CRL with less than this left before its nextUpdate is renewed by the server (when it
/// holds the CA key). An expired one is never renewed automatically: card sessions stay
/// refused until an operator publishes a fresh CRL.
pub const CRL_RENEW_BEFORE_HOURS: i64 = 24;
/// Validity of enrolment codes.
pub const ENROLMENT_CODE_HOURS: i64 = 72;

// ---- refusals ----------------------------------------------------------------------------

/// A card session's token over a connection without that certificate.
pub fn certificate_mismatch() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "certificate_mismatch",
        "该会话已绑定 USB Key 证书，只能通过插有该 USB Key 的连接使用；请插入 USB Key 后重新登录",
    )
}

/// The card's certificate has been revoked.
pub fn certificate_revoked() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "certificate_revoked",
        "该 USB Key 证书已被吊销，请联系安全员重新申领证书",
    )
}

/// The card's certificate has reached its notAfter: a card session never outlives it (a
/// resumed TLS session or a kept connection does not verify the certificate again).
pub fn certificate_expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "certificate_expired",
        "该 USB Key 证书已过期，会话已结束；请联系安全员申领新证书",
    )
}

/// Whether a register `expires_at` (RFC 3339) has passed; an unreadable one counts as passed.
pub fn has_expired(expires_at: &str, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(expires_at).map_or(true, |end| now >= end.with_timezone(&Utc))
}

/// Card sign-in over a connection that carried no client certificate.
pub fn no_certificate() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "no_client_certificate",
        "未检测到 USB Key 证书：请插入 USB Key，通过党建客户端登录",
    )
}

/// A certificate the register does not know (or whose fingerprint differs).
pub fn unknown_certificate() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unknown_certificate",
        "该证书未在平台登记，不能用于登录；请联系安全员",
    )
}

/// The CRL is past its nextUpdate (or none is loaded): card sessions fail closed.
pub fn crl_stale() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "crl_expired",
        "证书吊销列表已过期，暂停 USB Key 登录和证书会话；请联系安全员更新吊销列表后重试（密码登录不受影响）",
    )
}

/// Fails closed when the CRL is not fresh.
pub fn refuse_if_crl_stale() -> ApiResult<()> {
    match crate::tls::pki() {
        Some(pki) if pki.crl_fresh() => Ok(()),
        _ => Err(crl_stale()),
    }
}

// ---- expiry notices ----------------------------------------------------------------------

/// The notice for a certificate ending at `expires_at`, within [`EXPIRY_WARN_DAYS`].
pub fn expiry_notice(expires_at: &str) -> Option<String> {
    let end = DateTime::parse_from_rfc3339(expires_at)
        .ok()?
        .with_timezone(&Utc);
    let left = end - Utc::now();
    if left > chrono::Duration::days(EXPIRY_WARN_DAYS) {
        return None;
    }
    let local = end.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
    Some(format!(
        "您的 USB Key 证书将于{}到期（剩余{}天），请尽快联系安全员申领新证书",
        local.format("%Y-%m-%d"),
        left.num_days().max(0)
    ))
}

fn notices() -> &'static Mutex<HashMap<String, String>> {
    static NOTICES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    NOTICES.get_or_init(Default::default)
}

/// Remembers, per session, the expiry notice of its certificate (for the pages' banner).
pub fn note_expiry(session_hash: &str, expires_at: Option<&str>) {
    let notice = expires_at.and_then(expiry_notice);
    if let Ok(mut n) = notices().lock() {
        match notice {
            Some(text) => {
                if n.len() > 10_000 {
                    n.clear();
                }
                n.insert(session_hash.to_string(), text);
            }
            None => {
                n.remove(session_hash);
            }
        }
    }
}

/// The expiry notice of a session's certificate, if it ends soon.
pub fn notice_for(session_hash: &str) -> Option<String> {
    notices().lock().ok()?.get(session_hash).cloned()
}

// ---- the CA ------------------------------------------------------------------------------

/// The opened platform CA, shared; the lock also serialises issuance, revocation and CRLs.
fn ca_slot() -> &'static tokio::sync::Mutex<Option<Arc<Ca>>> {
    static CA: OnceLock<tokio::sync::Mutex<Option<Arc<Ca>>>> = OnceLock::new();
    CA.get_or_init(|| tokio::sync::Mutex::new(None))
}

/// The advisory lock (PostgreSQL, first key "dc") that serialises the CA's register and CRL
/// across the servers of a cluster sharing one CA directory.
const CA_LOCK: (i64, i64) = (0x6463, 1);

/// Runs `f` with the platform CA of `data_dir` (opened once), under the CA lock: this process's
/// mutex and, on PostgreSQL, a transaction-scoped advisory lock, so that servers sharing the CA
/// directory issue, revoke and sign CRLs one at a time (the lock ends with the transaction,
/// whatever happens to this future).
async fn with_ca<T>(
    db: &Db,
    data_dir: &Path,
    f: impl FnOnce(&Ca) -> Result<T, dangjian_certs::Error>,
) -> ApiResult<Result<T, dangjian_certs::Error>> {
    let mut slot = ca_slot().lock().await;
    let mut cluster_lock = None;
    if db.engine == crate::db::Engine::Postgres {
        let mut tx = db.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(CAST($1 AS INTEGER), CAST($2 AS INTEGER))::text")
            .bind(CA_LOCK.0)
            .bind(CA_LOCK.1)
            .execute(&mut *tx)
            .await?;
        cluster_lock = Some(tx);
    }
    if slot.is_none() {
        let dir = crate::tls::ca_dir(data_dir);
        let ca = Ca::open(&dir, crate::tls::ca_passphrase().as_deref()).map_err(|e| {
            tracing::error!("open the platform CA in {}: {e}", dir.display());
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ca_unavailable",
                "服务器无法使用平台 CA（私钥缺失或已加密），请使用 dangjian-certs 命令签发或吊销证书",
            )
        })?;
        *slot = Some(Arc::new(ca));
    }
    let ca = slot.as_ref().expect("opened").clone();
    let out = f(&ca);
    if let Some(tx) = cluster_lock {
        tx.rollback().await?;
    }
    Ok(out)
}

/// The subject text kept in the register: the ID number masked (the register is not sealed).
fn register_subject(info: &dangjian_certs::CertInfo) -> String {
    match &info.id_number {
        Some(id) => info.subject.replace(id.as_str(), &idcard::mask(id)),
        None => info.subject.clone(),
    }
}

/// Records an issued client certificate in the register (inside the caller's transaction,
/// beside its audit record).
pub async fn record_issued(
    tx: &mut Tx,
    issued: &Issued,
    account_id: &str,
    grant_id: Option<&str>,
    issued_by: Option<&str>,
) -> ApiResult<dangjian_certs::CertInfo> {
    let info = crate::tls::describe(&issued.cert_der).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO certificates (id, issuer, serial, fingerprint, subject, account_id, \
         grant_id, issued_by, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id())
    .bind(&info.issuer)
    .bind(&info.serial_hex)
    .bind(&info.sha256_fingerprint)
    .bind(register_subject(&info))
    .bind(account_id)
    .bind(grant_id.map(str::to_string))
    .bind(issued_by.map(str::to_string))
    .bind(now_rfc3339())
    .bind(rfc3339(info.not_after))
    .execute(&mut **tx)
    .await?;
    Ok(info)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Holder name, ID number and scope organisation code of a grant (the subject of its card).
async fn subject_of_grant(db: &Db, grant_id: &str) -> ApiResult<(String, ClientSubject)> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT g.account_id, o.code FROM grants g JOIN orgs o ON o.id = g.org_id \
         WHERE g.id = $1 AND g.revoked_at IS NULL",
    )
    .bind(grant_id)
    .fetch_optional(db.read())
    .await?;
    let Some((account_id, org_code)) = row else {
        return Err(ApiError::not_found("授权"));
    };
    let Some((name, id_number, _)) =
        crate::account::activation::contact_of(db.read(), &account_id).await?
    else {
        return Err(ApiError::not_found("账号"));
    };
    Ok((
        account_id,
        ClientSubject {
            name,
            id_number,
            org_code,
        },
    ))
}

fn certs_error(e: dangjian_certs::Error) -> ApiError {
    ApiError::field("csr", format!("证书请求（CSR）无效：{e}"))
}

/// Issues a card certificate with a software key made here — for `demo` only, whose output
/// says so; `init` never does: its first officer enrols a card — for a grant and writes the
/// certificate and key (PEM, mode 0600) as `<dir>/<stem>.crt` and `.key`; records it in the
/// register with its audit record. Returns the two paths.
pub async fn issue_card_files(
    db: &Db,
    data_dir: &Path,
    grant_id: &str,
    dir: &Path,
    stem: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (account_id, subject) = subject_of_grant(db, grant_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let issued = with_ca(db, data_dir, |ca| {
        ca.issue_client(
            &subject,
            None,
            dangjian_certs::DEFAULT_DAYS,
            Some(&account_id),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))??;
    let mut tx = db.begin().await?;
    let info = record_issued(&mut tx, &issued, &account_id, Some(grant_id), None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    audit::append(
        &mut tx,
        &Who::system(),
        Event::ok("certificate.issue", &info.serial_hex)
            .with_detail(format!("account {account_id}; key made by the server")),
    )
    .await?;
    tx.commit().await?;
    std::fs::create_dir_all(dir)?;
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    crate::config::write_private(&cert, issued.cert_pem.as_bytes())?;
    let key_pem = issued
        .key_pem
        .ok_or_else(|| anyhow::anyhow!("the CA returned no key"))?;
    crate::config::write_private(&key, key_pem.as_bytes())?;
    Ok((cert, key))
}

// ---- the CRL watcher ---------------------------------------------------------------------

/// Applies the loaded CRL to the register: certificates it names are marked revoked and their
/// sessions end (a revocation by `dangjian-certs revoke` + `crl` takes effect here).
pub async fn sync_revocations(db: &Db, pki: &Pki) -> anyhow::Result<u64> {
    let revoked: std::collections::HashSet<String> = pki.revoked_serials().into_iter().collect();
    let live: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, serial, fingerprint, account_id FROM certificates \
         WHERE issuer = $1 AND revoked_at IS NULL",
    )
    .bind(pki.ca_subject())
    .fetch_all(db.read())
    .await?;
    let newly: Vec<_> = live
        .into_iter()
        .filter(|(_, serial, _, _)| revoked.contains(serial))
        .collect();
    if newly.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let now = now_rfc3339();
    let mut ended = 0;
    for (id, serial, fingerprint, account_id) in &newly {
        sqlx::query(
            "UPDATE certificates SET revoked_at = $1, reason = COALESCE(reason, $2) \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(&now)
        .bind("crl")
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM sessions WHERE cert_fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        ended += n;
        audit::append(
            &mut tx,
            &Who::system(),
            Event::ok("certificate.revoke", serial).with_detail(format!(
                "named by the CRL; account {}; {n} sessions ended",
                account_id.as_deref().unwrap_or("-")
            )),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        certificates = newly.len(),
        sessions = ended,
        "revocations from the CRL applied"
    );
    Ok(newly.len() as u64)
}

/// Reloads the CRL file if it changed and applies it to the register.
pub async fn reload_crl(db: &Db, pki: &Arc<Pki>) {
    let p = pki.clone();
    let changed = tokio::task::spawn_blocking(move || p.reload_if_changed())
        .await
        .unwrap_or(false);
    if changed {
        if let Err(e) = sync_revocations(db, pki).await {
            tracing::error!("apply the CRL to the register: {e:#}");
        }
    }
}

/// Renews the CRL shortly before its nextUpdate when this server holds the CA key. An
/// expired CRL is left alone (fail closed until an operator acts).
async fn renew_crl_if_due(db: &Db, pki: &Arc<Pki>) {
    let Some(next) = pki.next_update() else {
        return;
    };
    let left = next - Utc::now();
    if left <= chrono::Duration::zero() || left > chrono::Duration::hours(CRL_RENEW_BEFORE_HOURS) {
        return;
    }
    match with_ca(db, pki.data_dir(), |ca| {
        ca.crl(dangjian_certs::DEFAULT_CRL_HOURS)
    })
    .await
    {
        Ok(Ok(_)) => tracing::info!("CRL renewed before its nextUpdate"),
        Ok(Err(e)) => tracing::warn!("renew the CRL: {e}"),
        Err(e) => tracing::warn!("renew the CRL: {}", e.message),
    }
}

/// Checks the CRL every [`CRL_CHECK_SECONDS`] for the life of the process.
pub fn spawn_crl_watcher(db: Db, pki: Arc<Pki>) {
    tokio::spawn(async move {
        if let Err(e) = sync_revocations(&db, &pki).await {
            tracing::error!("apply the CRL to the register: {e:#}");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(CRL_CHECK_SECONDS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            reload_crl(&db, &pki).await;
            renew_crl_if_due(&db, &pki).await;
        }
    });
}

/// The listener's hook: every handshake refused because of the client certificate (another
/// CA, expired, revoked, no clientAuth) is counted and audited, one record per source address
/// and minute (`audit::handshakes`, flushed by [`audit::handshakes::spawn_flusher`]).
pub fn refusal_auditor() -> crate::tls::RefusalHook {
    Arc::new(move |r: RefusedHandshake| {
        audit::handshakes::note(audit::handshakes::Refusal {
            client_addr: r.client_addr.ip().to_string(),
            serial: r.serial_hex,
            subject: r.subject,
            issuer: r.issuer,
            reason: r.reason,
        });
    })
}

/// Parses a revocation reason (snake_case, RFC 5280 names); empty means unspecified.
pub fn parse_reason(reason: Option<&str>) -> ApiResult<RevocationReason> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(RevocationReason::Unspecified),
        Some(r) => r.parse().map_err(|_| {
            ApiError::field(
                "reason",
                "吊销原因应为 unspecified、key_compromise、affiliation_changed、superseded 或 cessation_of_operation",
            )
        }),
    }
}

/// The Chinese label of a revocation reason.
pub fn reason_label(reason: &str) -> &'static str {
    match reason {
        "key_compromise" => "密钥泄露",
        "affiliation_changed" => "所属关系变更",
        "superseded" => "已换发",
        "cessation_of_operation" => "停止使用",
        "crl" => "吊销列表公布",
        _ => "未说明",
    }
}

/// Stores a new enrolment code (its hash) for a grant; earlier unused codes of the grant stop
/// working.
pub async fn store_enrolment_code(
    tx: &mut crate::db::Tx,
    _allowed: &crate::access::Allowed,
    grant_id: &str,
    account_id: &str,
    code: &str,
    created_by: &str,
    expires_at: &str,
) -> Result<(), sqlx::Error> {
    let now = crate::db::now_rfc3339();
    sqlx::query(
        "UPDATE enrolment_codes SET revoked_at = $1 WHERE grant_id = $2 AND used_at IS NULL \
         AND revoked_at IS NULL",
    )
    .bind(&now)
    .bind(grant_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO enrolment_codes (id, grant_id, account_id, code_hash, created_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crate::db::new_id())
    .bind(grant_id)
    .bind(account_id)
    .bind(routes::enrolment_code_hash(code))
    .bind(created_by)
    .bind(&now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a certificate revoked in the register and ends its sessions; returns how many.
pub async fn mark_revoked(
    tx: &mut crate::db::Tx,
    _allowed: &crate::access::Allowed,
    certificate_id: &str,
    fingerprint: &str,
    reason: &str,
    at: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE certificates SET revoked_at = $1, reason = $2 WHERE id = $3")
        .bind(at)
        .bind(reason)
        .bind(certificate_id)
        .execute(&mut **tx)
        .await?;
    Ok(
        sqlx::query("DELETE FROM sessions WHERE cert_fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}
