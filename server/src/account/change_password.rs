//! 修改密码: every signed-in account changes its own password (old password, new password
//! twice, the rules of SPEC §8). The one-time password `init` prints must be changed this way
//! at first sign-in: until then the session reaches only this route (`session.rs`). A change
//! ends every other session of the account; wrong old passwords count toward the lockout.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{password, LOCK_MINUTES, MAX_FAILED_ATTEMPTS};
use crate::access::{self, Actor, Allowed};
use crate::audit::{self, Event, Outcome, Who};
use crate::db::{Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiJson, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password_route))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct ChangePassword {
    /// 原密码
    pub old_password: Option<String>,
    /// 新密码: 8-18 characters with upper case, lower case and digits
    pub new_password: Option<String>,
    /// 确认新密码
    pub new_password_again: Option<String>,
}

/// `POST /account/password`: 修改密码. Answers 204; every other session of the account ends.
#[utoipa::path(post, path = "/api/v1/account/password", request_body = ChangePassword,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 423, body = crate::error::ErrorBody)))]
async fn change_password_route(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    change(&state.db, &actor, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn required<'a>(field: &str, label: &str, v: Option<&'a str>) -> ApiResult<&'a str> {
    match v {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::field(field, format!("请输入{label}"))),
    }
}

/// Checks the form without touching the database: every field given, the new password
/// follows the policy, typed the same twice, and differs from the old one.
pub fn check_form(req: &ChangePassword) -> ApiResult<(&str, &str)> {
    let old = required("old_password", "原密码", req.old_password.as_deref())?;
    let new = required("new_password", "新密码", req.new_password.as_deref())?;
    password::check_policy(new).map_err(|m| ApiError::field("new_password", m))?;
    let again = required(
        "new_password_again",
        "确认新密码",
        req.new_password_again.as_deref(),
    )?;
    if again != new {
        return Err(ApiError::field(
            "new_password_again",
            "两次输入的新密码不一致",
        ));
    }
    if new == old {
        return Err(ApiError::field("new_password", "新密码不能与原密码相同"));
    }
    Ok((old, new))
}

/// Changes the actor's password; returns how many other sessions were ended.
pub async fn change(db: &Db, actor: &Actor, req: &ChangePassword) -> ApiResult<u64> {
    let allowed = access::own_password(actor)?;
    let (old, new) = check_form(req)?;
    let stored: Option<Option<String>> =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
            .bind(&actor.account_id)
            .fetch_optional(db.read())
            .await?;
    let stored = stored
        .flatten()
        .unwrap_or_else(|| password::dummy_hash().to_string());
    // argon2 is CPU-bound: off the async workers, behind the shared semaphore.
    let ok = password::verify_async(old, &stored).await?;
    let who = Who::from(actor);
    if !ok {
        return Err(wrong_old_password(db, &allowed, actor, &who).await?);
    }
    let hash = password::hash_async(new).await?;
    let mut tx = db.begin().await?;
    let ended = store_new_password(&mut tx, &allowed, actor, &hash).await?;
    audit::append(
        &mut tx,
        &who,
        Event::ok("account.password_change", &actor.account_id).with_detail(format!(
            "{}other sessions ended: {ended}",
            if actor.must_change_password {
                "one-time password replaced; "
            } else {
                ""
            }
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Stores the new hash, clears `must_change_password` and the failure count, and ends every
/// session of the account but the current one. Returns how many were ended.
async fn store_new_password(
    tx: &mut Tx,
    _allowed: &Allowed,
    actor: &Actor,
    hash: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $1, must_change_password = 0, failed_attempts = 0 \
         WHERE id = $2",
    )
    .bind(hash)
    .bind(&actor.account_id)
    .execute(&mut **tx)
    .await?;
    Ok(
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2")
            .bind(&actor.account_id)
            .bind(&actor.session_token_hash)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

/// A wrong old password: one more consecutive failure of the account (an atomic increment),
/// audited; the fifth locks the account for 30 minutes and ends all its sessions, this one
/// too. Returns the answer.
async fn wrong_old_password(
    db: &Db,
    _allowed: &Allowed,
    actor: &Actor,
    who: &Who,
) -> ApiResult<ApiError> {
    let mut tx = db.begin().await?;
    let allowed = crate::access::own_account(actor);
    let locked_until = super::store::count_failure(&mut tx, &allowed, &actor.account_id).await?;
    let locked = locked_until.is_some();
    let detail = if let Some(until) = locked_until {
        let n = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(&actor.account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        format!("bad old password; locked until {until}; sessions ended: {n}")
    } else {
        "bad old password".to_string()
    };
    audit::append(
        &mut tx,
        who,
        Event::ok("account.password_change", &actor.account_id)
            .outcome(Outcome::Failed)
            .with_detail(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(if locked {
        ApiError::new(
            StatusCode::LOCKED,
            "account_locked",
            format!(
                "连续{MAX_FAILED_ATTEMPTS}次密码错误，账号已锁定{LOCK_MINUTES}分钟并已退出登录，可联系安全员解锁"
            ),
        )
    } else {
        ApiError::field("old_password", "原密码错误")
    })
}
