//! The member's password: 忘记密码 (an SMS code to the registered phone, asked for with the ID
//! number; the new password with ID number and code) and 修改密码 on 个人专区 (the old
//! password and the new). The reset answers an outsider the same whether or not the ID number
//! belongs to a member; it is throttled per address and per ID number as registration is;
//! wrong codes count towards the account's lock as at sign-in; the reset ends every session
//! of the account, the change every other one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::routes::{attempt, client_of, count_failure, id_number_field, locked_error};
use super::store::{self, CodeCheck, Purpose};
use super::{CODE_MINUTES, RESEND_SECONDS};
use crate::access::{self, MemberActor, SelfService};
use crate::account::change_password::{check_form, ChangePassword};
use crate::account::{password, throttle};
use crate::audit::{self, Event, Outcome, Who};
use crate::error::{ApiError, ApiResult};
use crate::fields::Problems;
use crate::member::idcard;
use crate::notify::{self, Message};
use crate::state::{ApiJson, AppState, ConnInfo};

/// Throttling bucket of password resets per client address.
pub const BUCKET_RESET_ADDRESS: &str = "member_reset";
/// Throttling bucket of password resets per ID number (keyed by its blind index).
pub const BUCKET_RESET_ID_NUMBER: &str = "member_reset_id";

#[derive(Deserialize, ToSchema)]
pub struct ResetSms {
    /// 公民身份证号
    pub id_number: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPassword {
    /// 公民身份证号
    pub id_number: String,
    /// 短信验证码 sent to the registered phone
    pub sms_code: String,
    /// 新密码 (8-18 characters with upper-case and lower-case letters and digits)
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordDone {
    pub message: String,
}

/// The one answer to the code request, whoever asks.
fn code_answer() -> PasswordDone {
    PasswordDone {
        message: format!(
            "如该身份证号已注册党员个人账号，短信验证码已发送至党员信息库中登记的手机号，\
             {CODE_MINUTES}分钟内有效；{RESEND_SECONDS}秒内不重复发送。"
        ),
    }
}

/// The one refusal of a reset whose details do not lead to a live account and its code.
fn not_reset() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "reset_refused",
        "身份证号或短信验证码不正确，或验证码已失效，请核对后重试或重新获取验证码。\
         连续输错将暂停找回密码一段时间。",
    )
    .with_field("sms_code")
}

/// 忘记密码, step 1: a code to the registered phone of the live account with this ID number.
/// The answer never depends on the ID number; every request is audited and counted against
/// the address and the ID number.
pub async fn reset_sms(state: &AppState, client: &str, body: &ResetSms) -> ApiResult<PasswordDone> {
    let mut p = Problems::default();
    let id_number = id_number_field(&mut p, &body.id_number);
    p.finish()?;
    let Some(id_number) = id_number else {
        return Err(crate::fields::unset());
    };
    let index = store::id_number_index(&id_number);
    throttle::reserve(&state.db, &attempt(), BUCKET_RESET_ADDRESS, client)
        .await?
        .keep();
    throttle::reserve(&state.db, &attempt(), BUCKET_RESET_ID_NUMBER, &index)
        .await?
        .keep();
    let masked = idcard::mask(&id_number);
    let account = store::account_by_id_number(&state.db, &id_number).await?;
    let phone = account.as_ref().and_then(|a| a.registered_phone.clone());
    let (Some(account), Some(phone)) = (account, phone) else {
        audit::append_alone(
            &state.db,
            &Who::anonymous(client),
            Event::ok("member.password_reset_code", &masked)
                .outcome(Outcome::Failed)
                .with_detail("no member account with a registered phone"),
        )
        .await?;
        return Ok(code_answer());
    };
    let who = account.who(client);
    if !store::may_send(&state.db, Purpose::Reset, &account.id).await? {
        audit::append_alone(
            &state.db,
            &who,
            Event::ok("member.password_reset_code", &masked)
                .outcome(Outcome::Refused)
                .with_detail("a code was sent within the minute or too many this hour"),
        )
        .await?;
        return Ok(code_answer());
    }
    let mut tx = state.db.begin().await?;
    let code = store::new_code(&mut tx, &attempt(), Purpose::Reset, &account.id).await?;
    audit::append(
        &mut tx,
        &who,
        Event::ok("member.password_reset_code", &masked),
    )
    .await?;
    tx.commit().await?;
    notify::send(
        &state.config,
        &Message {
            to: phone,
            kind: "member_password_reset".to_string(),
            text: format!(
                "【党员信息管理系统】您正在找回个人专区密码，短信验证码为{code}，{CODE_MINUTES}分钟内有效，请勿告诉他人。"
            ),
            code: Some(code),
        },
    )
    .await?;
    Ok(code_answer())
}

/// 忘记密码, step 2: ID number, the code (once; wrong codes count towards the lock) and a new
/// password under SPEC §8's rules; every session of the account ends.
pub async fn reset(
    state: &AppState,
    client: &str,
    body: &ResetPassword,
) -> ApiResult<PasswordDone> {
    let mut p = Problems::default();
    let id_number = id_number_field(&mut p, &body.id_number);
    if body.sms_code.trim().is_empty() {
        p.add("sms_code", "请输入短信验证码");
    }
    if let Err(m) = password::check_policy(&body.password) {
        p.add("password", m);
    }
    p.finish()?;
    let Some(id_number) = id_number else {
        return Err(crate::fields::unset());
    };
    let index = store::id_number_index(&id_number);
    let address_slot =
        throttle::reserve(&state.db, &attempt(), BUCKET_RESET_ADDRESS, client).await?;
    let id_slot = throttle::reserve(&state.db, &attempt(), BUCKET_RESET_ID_NUMBER, &index).await?;
    let masked = idcard::mask(&id_number);
    let refuse = |who: Who, why: &'static str| {
        let masked = masked.clone();
        async move {
            audit::append_alone(
                &state.db,
                &who,
                Event::ok("member.password_reset", &masked)
                    .outcome(Outcome::Failed)
                    .with_detail(why),
            )
            .await?;
            Err::<PasswordDone, ApiError>(not_reset())
        }
    };
    let Some(account) = store::account_by_id_number(&state.db, &id_number).await? else {
        address_slot.keep();
        id_slot.keep();
        return refuse(Who::anonymous(client), "no member account").await;
    };
    let who = account.who(client);
    if account
        .locked_until
        .as_deref()
        .and_then(locked_error)
        .is_some()
    {
        address_slot.keep();
        id_slot.keep();
        return refuse(who, "account locked").await;
    }
    let code_id = match store::check_code(
        &state.db,
        &attempt(),
        Purpose::Reset,
        &account.id,
        &body.sms_code,
    )
    .await?
    {
        CodeCheck::Right(id) => id,
        CodeCheck::Wrong | CodeCheck::None => {
            address_slot.keep();
            id_slot.keep();
            count_failure(
                state,
                &account,
                &who,
                &masked,
                "member.password_reset",
                "bad code",
            )
            .await?;
            return Err(not_reset());
        }
    };
    let hash = password::hash_async(&body.password).await?;
    let allowed = access::self_service(SelfService::MemberCredentials {
        member_account_id: &account.id,
    });
    let mut tx = state.db.begin().await?;
    if !store::consume_code(&mut tx, &allowed, &code_id).await? {
        drop(tx);
        address_slot.keep();
        id_slot.keep();
        count_failure(
            state,
            &account,
            &who,
            &masked,
            "member.password_reset",
            "code already used",
        )
        .await?;
        return Err(not_reset());
    }
    let ended = store::set_password(&mut tx, &allowed, &account.id, &hash, None).await?;
    audit::append(
        &mut tx,
        &who,
        Event::ok("member.password_reset", &masked).with_detail(format!("sessions ended: {ended}")),
    )
    .await?;
    tx.commit().await?;
    address_slot.release().await;
    id_slot.release().await;
    Ok(PasswordDone {
        message: "密码已重设，原有登录已全部退出。请使用新密码登录个人专区。".to_string(),
    })
}

/// 修改密码 on 个人专区: the old password (wrong ones count towards the lock) and the new one;
/// the member's other sessions end.
pub async fn change(
    state: &AppState,
    actor: &MemberActor,
    req: &ChangePassword,
) -> ApiResult<PasswordDone> {
    access::own_record(actor, &actor.member_id)?;
    let (old, new) = check_form(req)?;
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM member_accounts WHERE id = $1")
            .bind(&actor.member_account_id)
            .fetch_one(state.db.primary())
            .await?;
    let who = super::session::who(actor);
    if !password::verify_async(old, &stored).await? {
        let mut tx = state.db.begin().await?;
        let (_, locked) =
            store::count_failure(&mut tx, &attempt(), &actor.member_account_id).await?;
        audit::append(
            &mut tx,
            &who,
            Event::ok("member.password_change", &actor.member_account_id)
                .outcome(Outcome::Failed)
                .with_detail(if locked.is_some() {
                    "wrong old password; locked"
                } else {
                    "wrong old password"
                }),
        )
        .await?;
        tx.commit().await?;
        return Err(ApiError::field("old_password", "原密码不正确"));
    }
    let hash = password::hash_async(new).await?;
    let allowed = access::self_service(SelfService::MemberCredentials {
        member_account_id: &actor.member_account_id,
    });
    let mut tx = state.db.begin().await?;
    let ended = store::set_password(
        &mut tx,
        &allowed,
        &actor.member_account_id,
        &hash,
        Some(&actor.session_token_hash),
    )
    .await?;
    audit::append(
        &mut tx,
        &who,
        Event::ok("member.password_change", &actor.member_account_id)
            .with_detail(format!("other sessions ended: {ended}")),
    )
    .await?;
    tx.commit().await?;
    Ok(PasswordDone {
        message: "密码已修改，其他设备上的登录已退出。".to_string(),
    })
}

/// 忘记密码: a code to the registered phone of the member with this ID number (the same
/// answer whether or not there is one).
#[utoipa::path(post, path = "/api/v1/me/password-reset/sms", request_body = ResetSms, security(()),
    responses((status = 200, body = PasswordDone), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
pub(crate) async fn reset_sms_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<ResetSms>,
) -> ApiResult<Json<PasswordDone>> {
    reset_sms(&state, &client_of(&conn), &body).await.map(Json)
}

/// 忘记密码: a new password with the ID number and the SMS code; every session ends.
#[utoipa::path(post, path = "/api/v1/me/password-reset", request_body = ResetPassword, security(()),
    responses((status = 200, body = PasswordDone), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
pub(crate) async fn reset_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> ApiResult<Json<PasswordDone>> {
    reset(&state, &client_of(&conn), &body).await.map(Json)
}

/// 修改密码: the member's own password (old and new); the member's other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", request_body = ChangePassword,
    responses((status = 200, body = PasswordDone), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub(crate) async fn change_route(
    State(state): State<AppState>,
    actor: MemberActor,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<Json<PasswordDone>> {
    change(&state, &actor, &body).await.map(Json)
}
