//! The member's authenticator 身份验证器: enrolled on 个人专区 (a new secret and its QR code,
//! confirmed with a first code), after which 党员登录 accepts its six-digit code instead of an
//! SMS code. Each time step signs in once (`last_totp_step`, the administrators' replay rule).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store;
use crate::access::{self, MemberActor, SelfService};
use crate::account::totp;
use crate::audit::{self, Event, Outcome};
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiJson, AppState};

#[derive(Serialize, ToSchema)]
pub struct TotpStarted {
    /// The secret (base32), for manual entry.
    pub secret: String,
    /// The `otpauth://` URI the authenticator scans (the page shows it as a QR code).
    pub otpauth_uri: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TotpConfirm {
    /// 六位动态码 shown by the authenticator
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpConfirmed {
    pub message: String,
}

fn now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Starts the enrolment: a new secret, unconfirmed (SMS codes sign in until confirmed).
pub async fn start(state: &AppState, actor: &MemberActor) -> ApiResult<TotpStarted> {
    access::own_record(actor, &actor.member_id)?;
    let secret = totp::new_secret();
    let otpauth_uri = totp::otpauth_uri(&secret, &actor.name).map_err(ApiError::internal)?;
    let allowed = access::self_service(SelfService::MemberCredentials {
        member_account_id: &actor.member_account_id,
    });
    let mut tx = state.db.begin().await?;
    store::start_totp(&mut tx, &allowed, &actor.member_account_id, &secret).await?;
    audit::append(
        &mut tx,
        &super::session::who(actor),
        Event::ok("member.totp_enrol", &actor.member_account_id).with_detail("secret issued"),
    )
    .await?;
    tx.commit().await?;
    Ok(TotpStarted {
        secret,
        otpauth_uri,
        message: "请用手机上的身份验证器扫描二维码，然后输入验证器显示的六位动态码完成绑定。"
            .to_string(),
    })
}

/// Confirms the enrolment with a current code (its step then used).
pub async fn confirm(
    state: &AppState,
    actor: &MemberActor,
    body: &TotpConfirm,
) -> ApiResult<TotpConfirmed> {
    access::own_record(actor, &actor.member_id)?;
    if body.code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入六位动态码"));
    }
    let who = super::session::who(actor);
    let (secret, _) = store::totp_of(&state.db, &actor.member_account_id).await?;
    let Some(secret) = secret else {
        return Err(ApiError::conflict(
            "no_totp",
            "请先点击“绑定身份验证器”获取二维码",
        ));
    };
    let refused = || {
        ApiError::field(
            "code",
            "动态码不正确或已使用，请输入验证器上当前显示的六位数字",
        )
    };
    let allowed = access::self_service(SelfService::MemberCredentials {
        member_account_id: &actor.member_account_id,
    });
    let step = totp::matching_step(&secret, &body.code, now());
    let mut tx = state.db.begin().await?;
    let claimed = match step {
        Some(step) => {
            store::claim_totp_step(
                &mut tx,
                &allowed,
                &actor.member_account_id,
                step as i64,
                true,
            )
            .await?
        }
        None => false,
    };
    let event = Event::ok("member.totp_enrol", &actor.member_account_id);
    if !claimed {
        drop(tx);
        audit::append_alone(
            &state.db,
            &who,
            event.outcome(Outcome::Failed).with_detail("wrong code"),
        )
        .await?;
        return Err(refused());
    }
    audit::append(&mut tx, &who, event.with_detail("confirmed")).await?;
    tx.commit().await?;
    Ok(TotpConfirmed {
        message: "身份验证器已绑定。登录时可输入验证器上的六位动态码代替短信验证码。".to_string(),
    })
}

/// 绑定身份验证器: a new secret and its `otpauth://` URI, to be confirmed with a code.
#[utoipa::path(post, path = "/api/v1/me/totp",
    responses((status = 200, body = TotpStarted), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub(crate) async fn start_route(
    State(state): State<AppState>,
    actor: MemberActor,
) -> ApiResult<Json<TotpStarted>> {
    start(&state, &actor).await.map(Json)
}

/// Confirms the authenticator with its current code; its codes then sign in.
#[utoipa::path(post, path = "/api/v1/me/totp/confirm", request_body = TotpConfirm,
    responses((status = 200, body = TotpConfirmed), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub(crate) async fn confirm_route(
    State(state): State<AppState>,
    actor: MemberActor,
    ApiJson(body): ApiJson<TotpConfirm>,
) -> ApiResult<Json<TotpConfirmed>> {
    confirm(&state, &actor, &body).await.map(Json)
}
