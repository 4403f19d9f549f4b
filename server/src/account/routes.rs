//! Sign-in routes: `POST/GET/DELETE /api/v1/session`, `POST /api/v1/session/role`.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::store::{grants_of, GrantView};
use super::{session, totp, MAX_FAILED_ATTEMPTS};
use crate::access::Actor;
use crate::audit::{self, Event, Outcome, Who};
use crate::error::{ApiError, ApiResult};
use crate::member::idcard;
use crate::state::{ApiJson, AppState, ConnInfo};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, current_session, sign_out))
        .routes(routes!(switch_role))
        .merge(super::grants::router())
        .merge(super::activation::router())
        .merge(super::change_password::router())
}

#[derive(Deserialize, ToSchema)]
pub struct SignIn {
    /// 公民身份证号
    pub id_number: String,
    /// 密码
    pub password: String,
    /// 六位动态码
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    pub token: String,
    pub account: AccountView,
    pub roles: Vec<GrantView>,
    pub csrf_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub account: AccountView,
    pub active_role: GrantView,
    pub roles: Vec<GrantView>,
    pub csrf_token: String,
    /// the one-time password must be changed first (`POST /api/v1/account/password`); until
    /// then every other route answers 403 `password_change_required`
    pub must_change_password: bool,
}

pub(crate) type AccountRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
    String,
);

/// 登录: ID number + password + six-digit code.
#[utoipa::path(post, path = "/api/v1/session", request_body = SignIn, security(()),
    responses((status = 200, body = SignedIn), (status = 401, body = crate::error::ErrorBody),
              (status = 423, body = crate::error::ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let client = conn.client_addr.ip().to_string();
    let signed = authenticate(&state, &client, &body).await?;
    let cookie = session::session_cookie(&signed.token, state.config.secure_cookies);
    Ok(([(SET_COOKIE, cookie)], Json(signed)).into_response())
}

/// Checks ID number, password and six-digit code (replay refused, lockout after repeated
/// failures), audits the attempt and opens a session under the default grant. Too many
/// failures from one client address answer 429 (`throttle`).
pub async fn authenticate(state: &AppState, client: &str, body: &SignIn) -> ApiResult<SignedIn> {
    super::throttle::attempt(
        &state.db,
        "sign_in",
        client,
        authenticate_once(state, client, body),
    )
    .await
}

async fn authenticate_once(state: &AppState, client: &str, body: &SignIn) -> ApiResult<SignedIn> {
    let id_number = body.id_number.trim().replace('x', "X");
    if id_number.is_empty() {
        return Err(ApiError::field("id_number", "请输入公民身份证号"));
    }
    if body.password.is_empty() {
        return Err(ApiError::field("password", "请输入密码"));
    }
    if body.code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入六位动态码"));
    }
    // The ID number is encrypted: the account is found through its blind index.
    let row: Option<AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id_number_idx = $1"
    ))
    .bind(crate::crypto::index(
        crate::crypto::Column::AccountsIdNumber,
        &id_number,
    ))
    .fetch_optional(state.db.read())
    .await?;
    let who = Who::anonymous(client);
    let masked = idcard::mask(&id_number);
    let Some(a) = row else {
        super::password::verify_async(&body.password, super::password::dummy_hash()).await?;
        // The tries left are counted for an unknown ID number as for an account (in the
        // database, so on every server alike), so that the message does not tell the two
        // apart before the lock does; in one transaction with the failure's audit record.
        let index = crate::crypto::index(crate::crypto::Column::AccountsIdNumber, &id_number);
        let allowed = crate::access::self_service(crate::access::SelfService::Attempt);
        let mut tx = state.db.begin().await?;
        audit::append(
            &mut tx,
            &who,
            Event::ok("session.sign_in", &masked)
                .outcome(Outcome::Failed)
                .with_detail("unknown account"),
        )
        .await?;
        let counted = super::store::count_unknown_failure(&mut tx, &allowed, &index).await?;
        tx.commit().await?;
        return Err(bad_credentials_after(counted, counted == 0));
    };
    complete_sign_in(
        state,
        a,
        who,
        &masked,
        Some(&body.password),
        &body.code,
        None,
    )
    .await
}

/// The columns of [`AccountRow`].
pub(crate) const ACCOUNT_COLUMNS: &str = "id, name, password_hash, totp_secret, totp_confirmed, \
     last_totp_step, failed_attempts, locked_until, status";

/// The account facts sign-in needs, by account id (card sign-in finds the account through its
/// certificate).
pub(crate) async fn account_row(
    state: &AppState,
    account_id: &str,
) -> ApiResult<Option<AccountRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
    ))
    .bind(account_id)
    .fetch_optional(state.db.read())
    .await?)
}

/// The card certificate a card sign-in presented: the session is bound to its fingerprint and
/// the audit records carry its serial.
#[derive(Debug, Clone)]
pub struct CardCredential {
    pub serial: String,
    pub fingerprint: String,
}

/// The common end of password and card sign-in: lockout, account state, the password (when
/// given), the card rule of the default grant (SPEC §1), the six-digit code (replay refused,
/// five failures lock), then the session under the default grant — bound to the card's
/// certificate when there is one — and its audit record.
pub(crate) async fn complete_sign_in(
    state: &AppState,
    a: AccountRow,
    who: Who,
    masked: &str,
    password: Option<&str>,
    code: &str,
    card: Option<&CardCredential>,
) -> ApiResult<SignedIn> {
    let client = who.client_addr.clone();
    let masked = masked.to_string();
    // Password and card sign-ins are one kind of record; a card's carries its serial.
    let action = "session.sign_in";
    let (
        account_id,
        name,
        password_hash,
        totp_secret,
        totp_confirmed,
        last_step,
        _failed,
        locked_until,
        status,
    ) = a;
    let who = Who {
        account_id: Some(account_id.clone()),
        name: name.clone(),
        cert_serial: card.map(|c| c.serial.clone()),
        ..who
    };
    let now = chrono::Utc::now();
    if let Some(until) = locked_until
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        if until > now {
            audit::append_alone(
                &state.db,
                &who,
                Event::ok(action, &masked)
                    .outcome(Outcome::Refused)
                    .with_detail("locked"),
            )
            .await?;
            let local =
                until.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
            return Err(ApiError::new(
                axum::http::StatusCode::LOCKED,
                "account_locked",
                format!(
                    "连续{MAX_FAILED_ATTEMPTS}次密码或动态码错误，账号已锁定至{}，可联系安全员解锁",
                    local.format("%Y-%m-%d %H:%M")
                ),
            ));
        }
    }
    if status != "active" {
        refuse(state, &who, action, &masked, "account disabled").await?;
        return Err(ApiError::forbidden("该账号已停用，请联系安全员"));
    }
    if let Some(password) = password {
        let password_ok = match password_hash.as_deref() {
            Some(h) => super::password::verify_async(password, h).await?,
            None => false,
        };
        if !password_ok {
            let (counted, locked) =
                record_failure(state, &account_id, &who, &masked, action, "bad password").await?;
            return Err(bad_credentials_after(counted, locked));
        }
    }
    let grants = grants_of(&state.db, &account_id).await?;
    let Some(active) = grants.first().cloned() else {
        refuse(state, &who, action, &masked, "no live grant").await?;
        return Err(ApiError::forbidden("该账号没有有效的授权，请联系安全员"));
    };
    // From here on the record names the scope of the default grant.
    let who = Who {
        org_code: Some(active.org_code.clone()),
        ..who
    };
    // Tier-1 and tier-2 admins, security officers and auditors sign in with the USB key only.
    if card.is_none() && crate::access::needs_card(active.role, active.tier) {
        refuse(state, &who, action, &masked, "card required").await?;
        return Err(crate::access::card_required());
    }
    let totp_secret = crate::crypto::open_opt(
        crate::crypto::Column::AccountsTotpSecret,
        totp_secret.as_deref(),
    )?;
    let Some(secret) = totp_secret.filter(|_| totp_confirmed != 0) else {
        refuse(state, &who, action, &masked, "authenticator not confirmed").await?;
        return Err(ApiError::forbidden(
            "该账号尚未完成动态码绑定，请先完成用户激活",
        ));
    };
    let unix = now.timestamp() as u64;
    let step = totp::matching_step(&secret, code, unix);
    let fresh = step.filter(|&s| s as i64 > last_step);
    let Some(step) = fresh else {
        let why = if step.is_some() {
            "replayed code"
        } else {
            "bad code"
        };
        let (counted, locked) =
            record_failure(state, &account_id, &who, &masked, action, why).await?;
        let tries = if locked {
            format!(
                "连续{MAX_FAILED_ATTEMPTS}次错误，账号已锁定{}分钟",
                super::LOCK_MINUTES
            )
        } else {
            format!(
                "再错{}次，账号将锁定{}分钟",
                (MAX_FAILED_ATTEMPTS - counted).max(1),
                super::LOCK_MINUTES
            )
        };
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad_code",
            format!("动态码错误或已使用，请输入验证器中当前显示的六位动态码。{tries}"),
        )
        .with_field("code"));
    };
    let mut tx = state.db.begin().await?;
    // Accept each time step once per account, even under concurrent sign-ins.
    let claimed = sqlx::query(
        "UPDATE accounts SET last_totp_step = $1, failed_attempts = 0, locked_until = NULL \
         WHERE id = $2 AND last_totp_step < $1",
    )
    .bind(step as i64)
    .bind(&account_id)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "bad_code",
            "动态码已使用，请等待下一个动态码",
        )
        .with_field("code"));
    }
    let allowed = crate::access::self_service(crate::access::SelfService::SignedIn {
        account_id: &account_id,
    });
    let (token, csrf) = session::create(
        &mut tx,
        &allowed,
        &account_id,
        &active.grant_id,
        &client,
        card.map(|c| c.fingerprint.as_str()),
    )
    .await?;
    let who = Who {
        role: active.role.as_str().to_string(),
        org_id: Some(active.org_id.clone()),
        ..who
    };
    let detail = match card {
        Some(c) => format!("USB key certificate {}", c.serial),
        None => String::new(),
    };
    audit::append(
        &mut tx,
        &who,
        Event::ok(action, &masked).with_detail(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        token,
        account: AccountView {
            id: account_id,
            name,
        },
        roles: grants,
        csrf_token: csrf,
    })
}

/// Records a refused sign-in in a transaction of its own.
async fn refuse(
    state: &AppState,
    who: &Who,
    action: &str,
    target: &str,
    why: &str,
) -> ApiResult<()> {
    audit::append_alone(
        &state.db,
        who,
        Event::ok(action, target)
            .outcome(Outcome::Refused)
            .with_detail(why),
    )
    .await?;
    Ok(())
}

/// "Wrong ID number or password", with the tries left before the lock: `counted` failures
/// since the last lock or success, `locked` when this one locked the account.
fn bad_credentials_after(counted: i64, locked: bool) -> ApiError {
    let message = if locked {
        format!(
            "身份证号或密码错误。连续{MAX_FAILED_ATTEMPTS}次错误，账号已锁定{}分钟，可联系安全员解锁",
            super::LOCK_MINUTES
        )
    } else {
        format!(
            "身份证号或密码错误。再错{}次，账号将锁定{}分钟",
            (MAX_FAILED_ATTEMPTS - counted).max(1),
            super::LOCK_MINUTES
        )
    };
    ApiError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "bad_credentials",
        message,
    )
}

/// Counts one failed attempt against the account in SQL (`failed_attempts + 1`, never "the
/// count read earlier + 1", so concurrent failures all count) and locks it on the
/// [`MAX_FAILED_ATTEMPTS`]th, in the same transaction as the failure's audit record.
async fn record_failure(
    state: &AppState,
    account_id: &str,
    who: &Who,
    target: &str,
    action: &str,
    why: &str,
) -> ApiResult<(i64, bool)> {
    let mut tx = state.db.begin().await?;
    let allowed = crate::access::self_service(crate::access::SelfService::Attempt);
    let (counted, locked_until) =
        super::store::count_failure_counted(&mut tx, &allowed, account_id).await?;
    let locked = locked_until.is_some();
    let detail = match &locked_until {
        Some(until) => format!("{why}; locked until {until}"),
        None => why.to_string(),
    };
    audit::append(
        &mut tx,
        who,
        Event::ok(action, target)
            .outcome(Outcome::Failed)
            .with_detail(detail),
    )
    .await?;
    tx.commit().await?;
    Ok((counted, locked))
}

/// The current session: account, active role, scope organisation and CSRF token.
#[utoipa::path(get, path = "/api/v1/session",
    responses((status = 200, body = SessionView), (status = 401, body = crate::error::ErrorBody)))]
async fn current_session(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<SessionView>> {
    let roles = grants_of(&state.db, &actor.account_id).await?;
    let active_role = roles
        .iter()
        .find(|g| g.grant_id == actor.grant_id)
        .cloned()
        .ok_or_else(ApiError::unauthorized)?;
    Ok(Json(SessionView {
        account: AccountView {
            id: actor.account_id.clone(),
            name: actor.name.clone(),
        },
        active_role,
        roles,
        csrf_token: actor.csrf_token.clone(),
        must_change_password: actor.must_change_password,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignOutQuery {
    /// `1`: end every session of the account (退出所有设备)
    pub all: Option<String>,
}

/// 退出登录; `?all=1` ends every session of the account.
#[utoipa::path(delete, path = "/api/v1/session", params(SignOutQuery), responses((status = 204)))]
async fn sign_out(
    State(state): State<AppState>,
    actor: Actor,
    crate::state::ApiQuery(q): crate::state::ApiQuery<SignOutQuery>,
) -> ApiResult<Response> {
    if matches!(q.all.as_deref(), Some("1" | "true")) {
        super::grants::sign_out_everywhere(&state, &actor).await?;
        return Ok((
            axum::http::StatusCode::NO_CONTENT,
            [(
                SET_COOKIE,
                session::clear_cookie(state.config.secure_cookies),
            )],
        )
            .into_response());
    }
    let mut tx = state.db.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(&actor.session_token_hash)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &Who::from(&actor),
        Event::ok("session.sign_out", &actor.account_id),
    )
    .await?;
    tx.commit().await?;
    Ok((
        axum::http::StatusCode::NO_CONTENT,
        [(
            SET_COOKIE,
            session::clear_cookie(state.config.secure_cookies),
        )],
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct SwitchRole {
    pub grant_id: String,
}

/// 角色切换: make another of the account's grants the active one.
#[utoipa::path(post, path = "/api/v1/session/role", request_body = SwitchRole,
    responses((status = 200, body = SessionView), (status = 404, body = crate::error::ErrorBody)))]
async fn switch_role(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<SwitchRole>,
) -> ApiResult<Json<SessionView>> {
    let active_role = super::grants::switch_grant(&state, &actor, &body.grant_id).await?;
    let roles = grants_of(&state.db, &actor.account_id).await?;
    Ok(Json(SessionView {
        account: AccountView {
            id: actor.account_id.clone(),
            name: actor.name.clone(),
        },
        active_role,
        roles,
        csrf_token: actor.csrf_token.clone(),
        must_change_password: actor.must_change_password,
    }))
}
