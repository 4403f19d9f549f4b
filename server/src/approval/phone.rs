//! Registered phone change 注册手机号变更 (SPEC §4): the new phone, a code sent to it through the
//! notifier, then saved. Codes are stored hashed, single use, five minutes, five attempts.

use chrono::{Duration, Utc};
use rand::Rng;

use crate::access::{self, Actor};
use crate::account::activation::{
    code_hash, SMS_CODE_ATTEMPTS, SMS_CODE_MINUTES, SMS_RESEND_SECONDS,
};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::notify::{self, Message};
use crate::state::AppState;

fn fmt(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The new phone: a mobile number not registered to another member, living or in history.
async fn checked_phone(
    state: &AppState,
    member_id: &str,
    phone: Option<&str>,
) -> ApiResult<String> {
    let phone = crate::fields::mobile("phone", "新注册手机号", phone)?;
    let idx = crypto::index(Column::MembersRegisteredPhone, &phone);
    let taken: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM members WHERE registered_phone_idx = $1 AND id <> $2) + \
         (SELECT COUNT(*) FROM member_history WHERE registered_phone_idx = $1 AND recovered_at IS NULL)",
    )
    .bind(&idx)
    .bind(member_id)
    .fetch_one(state.db.read())
    .await?;
    if taken > 0 {
        return Err(ApiError::conflict_field(
            "phone",
            "该注册手机号已被其他党员使用",
        ));
    }
    Ok(phone)
}

/// Sends a verification code to the new registered phone of a member in the actor's scope.
pub async fn send_code(
    state: &AppState,
    actor: &Actor,
    member_id: &str,
    phone: Option<&str>,
) -> ApiResult<()> {
    access::business_read(actor)?;
    let (member, _) = crate::member::routes::load(&state.db, member_id).await?;
    let allowed = access::member(actor, &member.org_code)?;
    let phone = checked_phone(state, member_id, phone).await?;
    if member.registered_phone.as_deref() == Some(phone.as_str()) {
        return Err(ApiError::field("phone", "新注册手机号与现注册手机号相同"));
    }
    let now = Utc::now();
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    let mut tx = state.db.begin().await?;
    // One code a minute and ten an hour per member, counted inside the write transaction.
    let (recent, hourly): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN created_at > $2 THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM member_phone_codes WHERE member_id = $1 AND created_at > $3",
    )
    .bind(member_id)
    .bind(fmt(now - Duration::seconds(SMS_RESEND_SECONDS)))
    .bind(fmt(now - Duration::hours(1)))
    .fetch_one(&mut *tx)
    .await?;
    if recent > 0 || hourly >= 10 {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_codes",
            "验证码发送过于频繁，请稍后再试",
        ));
    }
    insert_code(&mut tx, &allowed, member_id, &phone, &code, now).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member.registered_phone_code", member_id)
            .in_org(member.org_code.clone())
            .with_detail(notify::mask_mobile(&phone)),
    )
    .await?;
    tx.commit().await?;
    notify::send(
        &state.config,
        &Message {
            to: phone,
            kind: "registered_phone_sms".into(),
            text: format!(
                "【党员信息管理系统】{}同志，您正在变更注册手机号，验证码为{code}，{SMS_CODE_MINUTES}分钟内有效，请勿告诉他人。",
                member.name
            ),
            code: Some(code),
        },
    )
    .await
}

/// Saves the new registered phone once its code checks out.
pub async fn change(
    state: &AppState,
    actor: &Actor,
    member_id: &str,
    phone: Option<&str>,
    code: Option<&str>,
) -> ApiResult<()> {
    access::business_read(actor)?;
    let (member, _) = crate::member::routes::load(&state.db, member_id).await?;
    let allowed = access::member(actor, &member.org_code)?;
    let phone = checked_phone(state, member_id, phone).await?;
    let code = code.map(str::trim).unwrap_or("");
    let wrong = || ApiError::field("code", "验证码错误或已失效，请核对或重新获取");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(wrong());
    }
    let idx = crypto::index(Column::MembersRegisteredPhone, &phone);
    let mut tx = state.db.begin().await?;
    let live: Option<(String, String)> = sqlx::query_as(
        "SELECT id, code_hash FROM member_phone_codes WHERE member_id = $1 AND phone_idx = $2 \
         AND used_at IS NULL AND expires_at > $3 AND attempts < $4 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(member_id)
    .bind(&idx)
    .bind(now_rfc3339())
    .bind(SMS_CODE_ATTEMPTS)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((code_id, hash)) = live else {
        return Err(wrong());
    };
    if hash != code_hash(member_id, code) {
        sqlx::query("UPDATE member_phone_codes SET attempts = attempts + 1 WHERE id = $1")
            .bind(&code_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Err(wrong());
    }
    // Single use: of two concurrent saves with one code, one marks it used.
    let used =
        sqlx::query("UPDATE member_phone_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(now_rfc3339())
            .bind(&code_id)
            .execute(&mut *tx)
            .await?;
    if used.rows_affected() != 1 {
        return Err(wrong());
    }
    set_registered_phone(&mut tx, &allowed, member_id, &phone).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member.registered_phone", member_id)
            .in_org(member.org_code.clone())
            .with_detail(notify::mask_mobile(&phone)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a code sent to a member's new registered phone (hashed, five minutes).
async fn insert_code(
    tx: &mut crate::db::Tx,
    _allowed: &access::Allowed,
    member_id: &str,
    phone: &str,
    code: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO member_phone_codes (id, member_id, phone_idx, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(member_id)
    .bind(crypto::index(Column::MembersRegisteredPhone, phone))
    .bind(code_hash(member_id, code))
    .bind(fmt(now))
    .bind(fmt(now + Duration::minutes(SMS_CODE_MINUTES)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets a member's registered phone (sealed, with its blind index).
async fn set_registered_phone(
    tx: &mut crate::db::Tx,
    _allowed: &access::Allowed,
    member_id: &str,
    phone: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE members SET registered_phone = $1, registered_phone_idx = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(crypto::seal(Column::MembersRegisteredPhone, phone))
    .bind(crypto::index(Column::MembersRegisteredPhone, phone))
    .bind(now_rfc3339())
    .bind(member_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
