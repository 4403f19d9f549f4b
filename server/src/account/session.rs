//! Sessions stored in the database: the `dj_session` cookie or a bearer token, idle timeout
//! 30 minutes, absolute 12 hours, CSRF token for cookie-authenticated writes. The [`Actor`]
//! extractor turns a request into the signed-in actor or a 401.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::access::{Actor, Role};
use crate::audit::{self, Event, Outcome, Who};
use crate::db::Db;
use crate::error::ApiError;
use crate::state::{AppState, ConnInfo};

pub const COOKIE_NAME: &str = "dj_session";
pub const IDLE_TIMEOUT_MINUTES: i64 = 30;
pub const ABSOLUTE_TIMEOUT_HOURS: i64 = 12;

/// A random URL-safe token of 32 bytes.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Creates a session for `account_id` under `grant_id`; returns (token, csrf token).
pub async fn create(
    tx: &mut crate::db::Tx,
    _allowed: &crate::access::Allowed,
    account_id: &str,
    grant_id: &str,
    client_addr: &str,
    cert_fingerprint: Option<&str>,
) -> Result<(String, String), sqlx::Error> {
    let token = random_token();
    let csrf = random_token();
    let now = Utc::now();
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query(
        "INSERT INTO sessions (token_hash, account_id, grant_id, csrf_token, client_addr, \
         cert_fingerprint, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(token_hash(&token))
    .bind(account_id)
    .bind(grant_id)
    .bind(&csrf)
    .bind(client_addr)
    .bind(cert_fingerprint.map(str::to_string))
    .bind(fmt(now))
    .bind(fmt(now))
    .bind(fmt(now + Duration::hours(ABSOLUTE_TIMEOUT_HOURS)))
    .execute(&mut **tx)
    .await?;
    Ok((token, csrf))
}

/// The session token a request carries: bearer header first, then the cookie.
/// Returns the token and whether it came from the cookie.
pub fn token_from_parts(parts: &Parts) -> Option<(String, bool)> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        if let Some(t) = v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")) {
            return Some((t.trim().to_string(), false));
        }
    }
    for v in parts.headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some(t) = pair.trim().strip_prefix(&format!("{COOKIE_NAME}=")) {
                if !t.is_empty() {
                    return Some((t.to_string(), true));
                }
            }
        }
    }
    None
}

type SessionRow = (
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
);

/// Loads the actor behind a session token, enforcing the timeouts and the card rules: a
/// session bound to a certificate answers only over a connection that presents that
/// certificate (`peer`), while the certificate is unrevoked and the CRL fresh; a session
/// without one cannot act under a grant that needs the USB key.
pub async fn load_actor(
    db: &Db,
    token: &str,
    client_addr: &str,
    peer: Option<&crate::tls::PeerCert>,
) -> Result<Actor, ApiError> {
    let hash = token_hash(token);
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.account_id, a.name, s.grant_id, g.role, g.tier, g.org_id, o.code, o.name, \
         s.csrf_token, s.last_seen_at, s.expires_at, a.status, g.revoked_at, s.cert_fingerprint, \
         a.must_change_password, s.wrote_at \
         FROM sessions s JOIN accounts a ON a.id = s.account_id \
         JOIN grants g ON g.id = s.grant_id JOIN orgs o ON o.id = g.org_id \
         WHERE s.token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(db.primary())
    .await?;
    let Some(r) = row else {
        // A member's personal session reaches only the member's own routes (issue 18).
        if crate::personal::session::is_member_session(db, &hash).await? {
            return Err(crate::access::member_session_refused());
        }
        return Err(ApiError::unauthorized());
    };
    let now = Utc::now();
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    // Read-your-writes: a session that wrote a moment ago reads from the primary.
    let wrote_recently =
        r.15.as_deref()
            .and_then(|w| parse(w).ok())
            .is_some_and(|w| now - w < Duration::seconds(crate::db::route::READ_YOUR_WRITES_SECS));
    crate::db::route::note_session(&hash, wrote_recently);
    let last_seen = parse(&r.9).map_err(ApiError::internal)?;
    let expires = parse(&r.10).map_err(ApiError::internal)?;
    let expired = now > expires || now - last_seen > Duration::minutes(IDLE_TIMEOUT_MINUTES);
    if expired || r.11 != "active" || r.12.is_some() {
        let mut tx = db.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Err(ApiError::unauthorized());
    }
    if now - last_seen > Duration::seconds(60) {
        let mut tx = db.begin().await?;
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(crate::db::now_rfc3339())
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let role = Role::parse(&r.3).ok_or_else(|| ApiError::internal("unknown role in grant"))?;
    let tier = r.4.map(|t| t as u8);
    // A refusal here is recorded with the session's account and grant (SPEC §12).
    let refuse = |e: ApiError, why: String| {
        let who = Who {
            account_id: Some(r.0.clone()),
            name: r.1.clone(),
            role: r.3.clone(),
            org_id: Some(r.5.clone()),
            client_addr: client_addr.to_string(),
            cert_serial: peer.map(|p| p.serial_hex.clone()),
            org_code: Some(r.6.clone()),
        };
        let account = r.0.clone();
        async move {
            let event = Event::ok("session.use", &account)
                .outcome(Outcome::Refused)
                .with_detail(format!("{}: {why}", e.code));
            audit::append_alone(db, &who, event).await?;
            Err::<Actor, ApiError>(e)
        }
    };
    let cert_serial = match &r.13 {
        Some(fingerprint) => {
            if peer.map(|p| &p.fingerprint) != Some(fingerprint) {
                let presented = peer.map_or("no client certificate".to_string(), |p| {
                    format!("connection presents certificate {}", p.serial_hex)
                });
                return refuse(
                    crate::card::certificate_mismatch(),
                    format!("session bound to certificate {fingerprint}; {presented}"),
                )
                .await;
            }
            let cert: Option<(String, Option<String>, String)> = sqlx::query_as(
                "SELECT serial, revoked_at, expires_at FROM certificates WHERE fingerprint = $1",
            )
            .bind(fingerprint)
            .fetch_optional(db.primary())
            .await?;
            let why = match &cert {
                Some((serial, Some(at), _)) => format!("certificate {serial} revoked at {at}"),
                _ => format!("certificate {fingerprint} not in the register"),
            };
            let Some((serial, None, expires_at)) = cert else {
                // Revoked (or gone from the register): the session ends.
                let mut tx = db.begin().await?;
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return refuse(crate::card::certificate_revoked(), why).await;
            };
            if crate::card::has_expired(&expires_at, now) {
                // The certificate's notAfter has passed: the session ends with it, audited.
                let who = crate::audit::Who {
                    account_id: Some(r.0.clone()),
                    name: r.1.clone(),
                    role: r.3.clone(),
                    org_id: Some(r.5.clone()),
                    client_addr: client_addr.to_string(),
                    cert_serial: Some(serial.clone()),
                    org_code: Some(r.6.clone()),
                };
                let mut tx = db.begin().await?;
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                crate::audit::append(
                    &mut tx,
                    &who,
                    crate::audit::Event::ok("session.certificate_expired", &serial)
                        .outcome(crate::audit::Outcome::Refused)
                        .with_detail(format!("certificate ended {expires_at}; session ended")),
                )
                .await?;
                tx.commit().await?;
                return Err(crate::card::certificate_expired());
            }
            crate::card::refuse_if_crl_stale()?;
            crate::card::note_expiry(&hash, Some(&expires_at));
            Some(serial)
        }
        None if crate::access::needs_card(role, tier) => {
            return refuse(
                crate::access::card_required(),
                "password session under a grant that needs the USB key".to_string(),
            )
            .await;
        }
        None => None,
    };
    Ok(Actor {
        account_id: r.0,
        name: r.1,
        grant_id: r.2,
        role,
        tier,
        org_id: r.5,
        org_code: r.6,
        org_name: r.7,
        client_addr: client_addr.to_string(),
        cert_serial,
        session_token_hash: hash,
        csrf_token: r.8,
        must_change_password: r.14 != 0,
    })
}

/// The API routes a session that must change its one-time password may still reach: the
/// change itself, the session (who am I, sign out).
pub fn reachable_before_password_change(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("POST", "/api/v1/account/password")
            | ("GET", "/api/v1/session")
            | ("DELETE", "/api/v1/session")
    )
}

/// The answer to any other request of such a session (403 `password_change_required`).
pub fn password_change_required() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "password_change_required",
        "首次登录须先修改初始密码：请通过“修改密码”设置新密码后再办理业务",
    )
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(actor.clone());
        }
        let conn = parts.extensions.get::<ConnInfo>();
        let client_addr = conn
            .map(|c| c.client_addr.ip().to_string())
            .unwrap_or_default();
        let peer = conn.and_then(|c| c.peer_cert.clone());
        let (token, via_cookie) = token_from_parts(parts).ok_or_else(ApiError::unauthorized)?;
        let actor = load_actor(&state.db, &token, &client_addr, peer.as_ref()).await?;
        crate::audit::refusals::note_actor(&parts.extensions, &actor);
        if actor.must_change_password
            && !reachable_before_password_change(&parts.method, parts.uri.path())
        {
            return Err(password_change_required());
        }
        if via_cookie && !is_safe_method(&parts.method) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if sent.is_empty() || sent != actor.csrf_token {
                return Err(ApiError::forbidden(
                    "请求缺少有效的防伪令牌（CSRF），请刷新页面后重试",
                ));
            }
        }
        parts.extensions.insert(actor.clone());
        Ok(actor)
    }
}
