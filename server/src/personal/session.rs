//! The [`MemberActor`] extractor: a member session from the `dj_session` cookie or a bearer
//! token, with the administrators' timeouts (idle 30 minutes, absolute 12 hours) and the
//! CSRF rule for cookie-authenticated writes. An administrator's token is answered 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use chrono::{DateTime, Duration, Utc};

use crate::access::{self, MemberActor};
use crate::account::session::{token_from_parts, token_hash, IDLE_TIMEOUT_MINUTES};
use crate::audit::Who;
use crate::db::Db;
use crate::error::ApiError;
use crate::state::{AppState, ConnInfo};

type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// Is `hash` the token hash of a member session (the administrators' extractor asks, to answer
/// such a token 403 rather than 401)?
pub async fn is_member_session(db: &Db, hash: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM member_sessions WHERE token_hash = $1")
        .bind(hash)
        .fetch_one(db.primary())
        .await?;
    Ok(n > 0)
}

async fn end(db: &Db, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM member_sessions WHERE token_hash = $1")
        .bind(hash)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Loads the member behind a session token: the account live, the member in the living
/// database, the session within its timeouts.
pub async fn load(db: &Db, token: &str, client_addr: &str) -> Result<MemberActor, ApiError> {
    let hash = token_hash(token);
    let row: Option<Row> = sqlx::query_as(
        "SELECT s.member_account_id, s.member_id, m.name, m.branch_id, o.code, o.name, \
         s.csrf_token, s.last_seen_at, s.expires_at \
         FROM member_sessions s JOIN member_accounts a ON a.id = s.member_account_id \
         JOIN members m ON m.id = s.member_id JOIN orgs o ON o.id = m.branch_id \
         WHERE s.token_hash = $1 AND a.status = 'active' AND m.status = 'normal'",
    )
    .bind(&hash)
    .fetch_optional(db.primary())
    .await?;
    let Some(r) = row else {
        let admin: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE token_hash = $1")
            .bind(&hash)
            .fetch_one(db.primary())
            .await?;
        if admin > 0 {
            return Err(access::admin_session_refused());
        }
        end(db, &hash).await?;
        return Err(ApiError::unauthorized());
    };
    let now = Utc::now();
    let parse = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
    let last_seen = parse(&r.7).map_err(ApiError::internal)?;
    let expires = parse(&r.8).map_err(ApiError::internal)?;
    if now > expires || now - last_seen > Duration::minutes(IDLE_TIMEOUT_MINUTES) {
        end(db, &hash).await?;
        return Err(ApiError::unauthorized());
    }
    if now - last_seen > Duration::seconds(60) {
        sqlx::query("UPDATE member_sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(crate::db::now_rfc3339())
            .bind(&hash)
            .execute(db.write())
            .await?;
    }
    Ok(MemberActor {
        member_account_id: r.0,
        member_id: r.1,
        name: r.2,
        branch_id: r.3,
        org_code: r.4,
        org_name: r.5,
        client_addr: client_addr.to_string(),
        session_token_hash: hash,
        csrf_token: r.6,
    })
}

/// The audit record's actor of a member session.
pub fn who(m: &MemberActor) -> Who {
    Who {
        account_id: Some(m.member_account_id.clone()),
        name: m.name.clone(),
        role: "member".to_string(),
        org_id: Some(m.branch_id.clone()),
        client_addr: m.client_addr.clone(),
        cert_serial: None,
        org_code: Some(m.org_code.clone()),
    }
}

impl FromRequestParts<AppState> for MemberActor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(m) = parts.extensions.get::<MemberActor>() {
            return Ok(m.clone());
        }
        let client_addr = parts
            .extensions
            .get::<ConnInfo>()
            .map(|c| c.client_addr.ip().to_string())
            .unwrap_or_default();
        let (token, via_cookie) = token_from_parts(parts).ok_or_else(ApiError::unauthorized)?;
        let actor = load(&state.db, &token, &client_addr).await?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if via_cookie && !safe {
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
