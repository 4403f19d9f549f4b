//! Activation 用户激活 and password reset by the person: SMS verification codes, activation
//! codes 授权码, enrolment of the authenticator. Also the few statements on the encrypted
//! columns of `accounts` (ID number, mobile, TOTP secret) that grants and activation need,
//! gathered in one marked section so that encryption at rest can adapt them in one place.

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{Duration, SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Executor};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{password, throttle, totp};
use crate::access::{self, SelfService};
use crate::audit::{self, Event, Outcome, Who};
use crate::db::{new_id, now_rfc3339, Tx};
use crate::error::{ApiError, ApiResult};
use crate::member::idcard;
use crate::notify::{self, Message};
use crate::state::{ApiJson, AppState, ConnInfo};

/// Activation codes are valid this many days.
pub const ACTIVATION_CODE_DAYS: i64 = 7;
/// SMS verification codes are valid this many minutes.
pub const SMS_CODE_MINUTES: i64 = 5;
/// Wrong answers an SMS code survives.
pub const SMS_CODE_ATTEMPTS: i64 = 5;
/// A new SMS code for the same account and purpose no sooner than this.
pub const SMS_RESEND_SECONDS: i64 = 60;
/// Throttling bucket of activation and password-reset attempts.
pub const THROTTLE_BUCKET: &str = "activation";

// ---- ENCRYPTED COLUMNS ------------------------------------------------------------------
// Every statement below reads or writes `accounts.id_number`, `accounts.mobile` or
// `accounts.totp_secret`, which hold sealed values (see `crypto`): ID numbers are found by
// their blind index; mobiles have none, so a lookup by mobile opens the mobiles of the
// candidate accounts (few: pending activation, or all accounts for password reset).
// Nothing else in grants or activation touches these columns.

use crate::crypto::{self, Column};

fn open_err(e: crypto::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("open sealed account field: {e}"))
}

/// The account (id, name) with this ID number (by its blind index).
pub async fn account_by_id_number<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id_number: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, name FROM accounts WHERE id_number_idx = $1")
        .bind(crypto::index(Column::AccountsIdNumber, id_number))
        .fetch_optional(e)
        .await
}

/// The accounts registered with this mobile, among all accounts or (with `pending_only`)
/// among those holding a live activation code.
pub async fn accounts_by_mobile<'e, E: Executor<'e, Database = Any>>(
    e: E,
    mobile: &str,
    pending_only: bool,
) -> Result<Vec<String>, sqlx::Error> {
    // Found through the blind index; the sealed value is still compared (an index collision
    // must not hand one person's account to another).
    let sql = if pending_only {
        "SELECT a.id, a.mobile FROM accounts a WHERE a.mobile_idx = $1 AND EXISTS \
         (SELECT 1 FROM activation_codes c WHERE c.account_id = a.id AND c.used_at IS NULL \
         AND c.revoked_at IS NULL)"
    } else {
        "SELECT id, mobile FROM accounts WHERE mobile_idx = $1"
    };
    let rows: Vec<(String, String)> = sqlx::query_as(sql)
        .bind(crypto::index(Column::AccountsMobile, mobile))
        .fetch_all(e)
        .await?;
    let mut out = Vec::new();
    for (id, sealed) in rows {
        if crypto::open(Column::AccountsMobile, &sealed).map_err(open_err)? == mobile {
            out.push(id);
        }
    }
    Ok(out)
}

/// Fills `accounts.mobile_idx` for accounts written before it existed (run at start; a no-op
/// once every row has one).
pub async fn index_mobiles(db: &crate::db::Db) -> anyhow::Result<u64> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, mobile FROM accounts WHERE mobile_idx IS NULL")
            .fetch_all(db.read())
            .await?;
    let mut tx = db.begin().await?;
    for (id, sealed) in &rows {
        let mobile = crypto::open(Column::AccountsMobile, sealed).map_err(open_err)?;
        sqlx::query("UPDATE accounts SET mobile_idx = $1 WHERE id = $2")
            .bind(crypto::index(Column::AccountsMobile, &mobile))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Opens a sealed ID number read by another statement (lists).
pub fn open_id_number(sealed: &str) -> Result<String, sqlx::Error> {
    crypto::open(Column::AccountsIdNumber, sealed).map_err(open_err)
}

/// (name, ID number, mobile) of an account.
pub async fn contact_of<'e, E: Executor<'e, Database = Any>>(
    e: E,
    account_id: &str,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT name, id_number, mobile FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(e)
            .await?;
    row.map(|(name, id_number, mobile)| {
        Ok((
            name,
            crypto::open(Column::AccountsIdNumber, &id_number).map_err(open_err)?,
            crypto::open(Column::AccountsMobile, &mobile).map_err(open_err)?,
        ))
    })
    .transpose()
}

/// Sets (or clears) the password hash and the TOTP secret; the authenticator becomes
/// unconfirmed.
pub async fn set_credentials(
    tx: &mut Tx,
    _allowed: &crate::access::Allowed,
    account_id: &str,
    password_hash: Option<&str>,
    totp_secret: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $1, totp_secret = $2, totp_confirmed = 0, \
         failed_attempts = 0, locked_until = NULL WHERE id = $3",
    )
    .bind(password_hash.map(str::to_string))
    .bind(totp_secret.map(|s| crypto::seal(Column::AccountsTotpSecret, s)))
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The TOTP secret of an account.
pub async fn totp_secret_of<'e, E: Executor<'e, Database = Any>>(
    e: E,
    account_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    let s: Option<Option<String>> =
        sqlx::query_scalar("SELECT totp_secret FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(e)
            .await?;
    crypto::open_opt(Column::AccountsTotpSecret, s.flatten().as_deref()).map_err(open_err)
}

// ---- END OF ENCRYPTED COLUMNS -----------------------------------------------------------

fn fmt(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// SHA-256 of a code, bound to the account it belongs to.
pub fn code_hash(account_id: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(account_id.as_bytes());
    h.update([0x1f]);
    h.update(code.trim().to_ascii_uppercase().as_bytes());
    hex::encode(h.finalize())
}

/// A new activation code: 12 characters without look-alikes (60 bits).
pub fn new_activation_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn new_sms_code() -> String {
    format!("{:06}", rand::thread_rng().gen_range(0..1_000_000))
}

/// Issues an activation code for `account_id` (earlier unused ones are revoked); returns the
/// code and its expiry (RFC 3339).
pub async fn issue_activation_code(
    tx: &mut Tx,
    account_id: &str,
    grant_id: Option<&str>,
    purpose: &str,
    created_by: &str,
) -> Result<(String, String), sqlx::Error> {
    let now = Utc::now();
    sqlx::query(
        "UPDATE activation_codes SET revoked_at = $1 WHERE account_id = $2 AND used_at IS NULL \
         AND revoked_at IS NULL",
    )
    .bind(fmt(now))
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    let code = new_activation_code();
    let expires = fmt(now + Duration::days(ACTIVATION_CODE_DAYS));
    sqlx::query(
        "INSERT INTO activation_codes (id, account_id, grant_id, purpose, code_hash, created_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(account_id)
    .bind(grant_id.map(str::to_string))
    .bind(purpose)
    .bind(code_hash(account_id, &code))
    .bind(created_by)
    .bind(fmt(now))
    .bind(&expires)
    .execute(&mut **tx)
    .await?;
    Ok((code, expires))
}

/// The message that carries an activation code.
pub fn activation_message(mobile: &str, name: &str, code: &str) -> Message {
    Message {
        to: mobile.to_string(),
        kind: "activation_code".to_string(),
        text: format!(
            "【党员信息管理系统】{name}，您的授权码为{code}，{ACTIVATION_CODE_DAYS}日内有效。\
             请打开系统“用户激活”页面，凭短信验证码、授权码和身份证号完成激活。"
        ),
        code: Some(code.to_string()),
    }
}

/// Accounts with this mobile that hold a live activation code (pending activation).
async fn pending_account(state: &AppState, mobile: &str) -> ApiResult<Option<String>> {
    let now = now_rfc3339();
    for id in accounts_by_mobile(state.db.read(), mobile, true).await? {
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM activation_codes c JOIN accounts a ON a.id = c.account_id \
             WHERE c.account_id = $1 AND c.used_at IS NULL AND c.revoked_at IS NULL \
             AND c.expires_at > $2 AND a.status = 'active' AND EXISTS (SELECT 1 FROM grants g \
             WHERE g.account_id = a.id AND g.revoked_at IS NULL)",
        )
        .bind(&id)
        .bind(&now)
        .fetch_one(state.db.read())
        .await?;
        if live > 0 {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Activated accounts with this mobile (for password reset by the person).
async fn active_account(state: &AppState, mobile: &str) -> ApiResult<Option<String>> {
    for id in accounts_by_mobile(state.db.read(), mobile, false).await? {
        let ok: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE id = $1 AND status = 'active' \
             AND password_hash IS NOT NULL AND totp_confirmed = 1",
        )
        .bind(&id)
        .fetch_one(state.db.read())
        .await?;
        if ok > 0 {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

#[derive(Deserialize, ToSchema)]
pub struct SmsRequest {
    /// 手机号
    pub mobile: String,
}

#[derive(Serialize, ToSchema)]
pub struct SmsSent {
    /// Always true: the answer is the same whether or not the mobile is registered.
    pub accepted: bool,
    pub message: String,
}

/// `activation` or `password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsPurpose {
    Activation,
    Password,
}

impl SmsPurpose {
    fn as_str(self) -> &'static str {
        match self {
            SmsPurpose::Activation => "activation",
            SmsPurpose::Password => "password",
        }
    }
}

/// Sends a six-digit SMS code if the mobile belongs to an account waiting for it; answers the
/// same either way. Repeats within a minute are not sent (the earlier code stays valid).
pub async fn request_sms(
    state: &AppState,
    client: &str,
    mobile: &str,
    purpose: SmsPurpose,
) -> ApiResult<SmsSent> {
    let mobile = crate::fields::mobile("mobile", "手机号", Some(mobile))?;
    let _slot = throttle::reserve(
        &state.db,
        &access::self_service(SelfService::Attempt),
        THROTTLE_BUCKET,
        client,
    )
    .await?;
    let answer = SmsSent {
        accepted: true,
        message: format!(
            "如该手机号有待办理的业务，短信验证码已发送，{SMS_CODE_MINUTES}分钟内有效"
        ),
    };
    let account = match purpose {
        SmsPurpose::Activation => pending_account(state, &mobile).await?,
        SmsPurpose::Password => active_account(state, &mobile).await?,
    };
    let Some(account_id) = account else {
        return Ok(answer);
    };
    let now = Utc::now();
    let recent: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sms_codes WHERE account_id = $1 AND purpose = $2 AND created_at > $3",
    )
    .bind(&account_id)
    .bind(purpose.as_str())
    .bind(fmt(now - Duration::seconds(SMS_RESEND_SECONDS)))
    .fetch_one(state.db.read())
    .await?;
    let hourly: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sms_codes WHERE account_id = $1 AND purpose = $2 AND created_at > $3",
    )
    .bind(&account_id)
    .bind(purpose.as_str())
    .bind(fmt(now - Duration::hours(1)))
    .fetch_one(state.db.read())
    .await?;
    if recent > 0 || hourly >= 10 {
        return Ok(answer);
    }
    let code = new_sms_code();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO sms_codes (id, account_id, purpose, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(&account_id)
    .bind(purpose.as_str())
    .bind(code_hash(&account_id, &code))
    .bind(fmt(now))
    .bind(fmt(now + Duration::minutes(SMS_CODE_MINUTES)))
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &Who::anonymous(client),
        Event::ok("account.sms_code", &account_id).with_detail(purpose.as_str()),
    )
    .await?;
    tx.commit().await?;
    let (kind, what) = match purpose {
        SmsPurpose::Activation => ("activation_sms", "用户激活"),
        SmsPurpose::Password => ("password_sms", "找回密码"),
    };
    notify::send(
        &state.config,
        &Message {
            to: mobile,
            kind: kind.to_string(),
            text: format!(
                "【党员信息管理系统】您正在办理{what}，短信验证码为{code}，{SMS_CODE_MINUTES}分钟内有效，请勿告诉他人。"
            ),
            code: Some(code),
        },
    )
    .await?;
    Ok(answer)
}

/// Checks an SMS code of `account_id`; a wrong answer uses up one attempt of the live code.
/// Returns the id of the matching code.
async fn check_sms_code(
    state: &AppState,
    account_id: &str,
    purpose: SmsPurpose,
    code: &str,
) -> ApiResult<String> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, code_hash FROM sms_codes WHERE account_id = $1 AND purpose = $2 \
         AND used_at IS NULL AND expires_at > $3 AND attempts < $4 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(account_id)
    .bind(purpose.as_str())
    .bind(now_rfc3339())
    .bind(SMS_CODE_ATTEMPTS)
    .fetch_optional(state.db.read())
    .await?;
    let wrong = || ApiError::field("sms_code", "短信验证码错误或已失效，请核对或重新获取");
    let Some((id, hash)) = row else {
        return Err(wrong());
    };
    if hash != code_hash(account_id, code) {
        use_attempt(state, &id).await?;
        return Err(wrong());
    }
    Ok(id)
}

async fn use_attempt(state: &AppState, sms_id: &str) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE sms_codes SET attempts = attempts + 1 WHERE id = $1")
        .bind(sms_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
pub struct Activate {
    /// 手机号
    pub mobile: String,
    /// 短信验证码
    pub sms_code: String,
    /// 授权码
    pub activation_code: String,
    /// 姓名
    pub name: String,
    /// 公民身份证号
    pub id_number: String,
    /// 新密码（8-18位，含大写字母、小写字母和数字）
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32 secret for manual entry.
    pub secret: String,
    /// The `otpauth://` URI the authenticator scans.
    pub otpauth_uri: String,
}

#[derive(Serialize, ToSchema)]
pub struct Activated {
    pub account_id: String,
    pub totp: TotpEnrolment,
}

/// Keeps the attempt's throttle slot as a failure of the client address and audits it.
async fn failed(
    state: &AppState,
    slot: throttle::Slot,
    client: &str,
    action: &str,
    target: &str,
    e: ApiError,
) -> ApiError {
    slot.keep();
    let _ = audit::append_alone(
        &state.db,
        &Who::anonymous(client),
        Event::ok(action, target)
            .outcome(Outcome::Failed)
            .with_detail(e.field.clone().unwrap_or_default()),
    )
    .await;
    e
}

/// 用户激活: every element is checked against the grant; a wrong one is named and leaves the
/// grant usable. Success sets the password and a new, unconfirmed authenticator.
pub async fn activate(state: &AppState, client: &str, body: &Activate) -> ApiResult<Activated> {
    // The form's own checks, every field at once; then the grant's, one at a time.
    let mut p = crate::fields::Problems::default();
    let mobile = p.take(crate::fields::mobile(
        "mobile",
        "手机号",
        Some(&body.mobile),
    ));
    if body.sms_code.trim().is_empty() {
        p.add("sms_code", "请输入短信验证码");
    }
    if body.activation_code.trim().is_empty() {
        p.add("activation_code", "请输入授权码");
    }
    let name = p.take(crate::fields::required_text(
        "name",
        "姓名",
        Some(&body.name),
        50,
    ));
    let id_number = match idcard::parse(&body.id_number, crate::db::today()) {
        Ok(idcard::IdNumber::Known { normalized, .. }) => Some(normalized),
        Ok(idcard::IdNumber::Unknown) => {
            p.add("id_number", "请输入本人的公民身份证号");
            None
        }
        Err(e) => {
            p.add("id_number", e.message());
            None
        }
    };
    if let Err(m) = password::check_policy(&body.password) {
        p.add("password", m);
    }
    p.finish()?;
    let (Some(mobile), Some(name), Some(id_number)) = (mobile, name, id_number) else {
        return Err(crate::fields::unset());
    };
    let slot = throttle::reserve(
        &state.db,
        &access::self_service(SelfService::Attempt),
        THROTTLE_BUCKET,
        client,
    )
    .await?;
    let Some(account_id) = pending_account(state, &mobile).await? else {
        let e = ApiError::field(
            "mobile",
            "该手机号没有待激活的授权，请核对安全员登记的手机号",
        );
        return Err(failed(state, slot, client, "account.activate", "", e).await);
    };
    let sms_id =
        match check_sms_code(state, &account_id, SmsPurpose::Activation, &body.sms_code).await {
            Ok(id) => id,
            Err(e) => {
                return Err(failed(state, slot, client, "account.activate", &account_id, e).await)
            }
        };
    let code_row: Option<String> = sqlx::query_scalar(
        "SELECT id FROM activation_codes WHERE account_id = $1 AND code_hash = $2 \
         AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(&account_id)
    .bind(code_hash(&account_id, &body.activation_code))
    .bind(now_rfc3339())
    .fetch_optional(state.db.read())
    .await?;
    let Some(code_id) = code_row else {
        use_attempt(state, &sms_id).await?;
        let e = ApiError::field(
            "activation_code",
            "授权码错误或已失效，请核对安全员发送的授权码",
        );
        return Err(failed(state, slot, client, "account.activate", &account_id, e).await);
    };
    let Some((reg_name, reg_id_number, _)) = contact_of(state.db.read(), &account_id).await? else {
        return Err(ApiError::internal("pending account vanished"));
    };
    if reg_name.trim() != name {
        use_attempt(state, &sms_id).await?;
        let e = ApiError::field("name", "姓名与授权登记的信息不一致");
        return Err(failed(state, slot, client, "account.activate", &account_id, e).await);
    }
    if reg_id_number != id_number {
        use_attempt(state, &sms_id).await?;
        let e = ApiError::field("id_number", "公民身份证号与授权登记的信息不一致");
        return Err(failed(state, slot, client, "account.activate", &account_id, e).await);
    }
    let hash = password::hash_async(&body.password).await?;
    let secret = totp::new_secret();
    let mut tx = state.db.begin().await?;
    let now = now_rfc3339();
    let sms_used =
        sqlx::query("UPDATE sms_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
            .bind(&now)
            .bind(&sms_id)
            .execute(&mut *tx)
            .await?;
    let code_used = sqlx::query(
        "UPDATE activation_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL \
         AND revoked_at IS NULL",
    )
    .bind(&now)
    .bind(&code_id)
    .execute(&mut *tx)
    .await?;
    if sms_used.rows_affected() != 1 || code_used.rows_affected() != 1 {
        return Err(ApiError::field("activation_code", "授权码已被使用"));
    }
    let allowed = access::self_service(SelfService::Credentials {
        account_id: &account_id,
    });
    set_credentials(&mut tx, &allowed, &account_id, Some(&hash), Some(&secret)).await?;
    let who = Who {
        account_id: Some(account_id.clone()),
        name: reg_name.clone(),
        ..Who::anonymous(client)
    };
    audit::append(&mut tx, &who, Event::ok("account.activate", &account_id)).await?;
    tx.commit().await?;
    let otpauth_uri = totp::otpauth_uri(&secret, &idcard::mask(&id_number))?;
    Ok(Activated {
        account_id,
        totp: TotpEnrolment {
            secret,
            otpauth_uri,
        },
    })
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmTotp {
    pub account_id: String,
    /// 验证器中显示的六位动态码
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct TotpConfirmed {
    pub confirmed: bool,
}

/// Confirms the authenticator with a first code; repeated wrong codes lock the account.
pub async fn confirm_totp(state: &AppState, client: &str, body: &ConfirmTotp) -> ApiResult<()> {
    if body.code.trim().is_empty() {
        return Err(ApiError::field("code", "请输入验证器中显示的六位动态码"));
    }
    let slot = throttle::reserve(
        &state.db,
        &access::self_service(SelfService::Attempt),
        THROTTLE_BUCKET,
        client,
    )
    .await?;
    type Row = (String, i64, i64, i64, Option<String>, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT name, totp_confirmed, last_totp_step, failed_attempts, locked_until, \
         CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END FROM accounts WHERE id = $1",
    )
    .bind(&body.account_id)
    .fetch_optional(state.db.read())
    .await?;
    let secret = totp_secret_of(state.db.read(), &body.account_id).await?;
    let (Some((name, confirmed, last_step, _failures, locked_until, has_password)), Some(secret)) =
        (row, secret)
    else {
        let e = ApiError::field("account_id", "账号不存在或尚未激活");
        return Err(failed(
            state,
            slot,
            client,
            "account.totp_confirm",
            &body.account_id,
            e,
        )
        .await);
    };
    if confirmed != 0 || has_password == 0 {
        return Err(ApiError::conflict(
            "already_confirmed",
            "该账号的验证器已绑定或尚未激活，无需重复绑定",
        ));
    }
    let now = Utc::now();
    if let Some(until) = locked_until
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        if until > now {
            return Err(ApiError::new(
                axum::http::StatusCode::LOCKED,
                "account_locked",
                "动态码错误次数过多，账号已锁定，请稍后再试或联系安全员解锁",
            ));
        }
    }
    let step = totp::matching_step(&secret, &body.code, now.timestamp() as u64)
        .filter(|&s| s as i64 > last_step);
    let who = Who {
        account_id: Some(body.account_id.clone()),
        name,
        ..Who::anonymous(client)
    };
    let Some(step) = step else {
        let mut tx = state.db.begin().await?;
        let allowed = access::self_service(SelfService::Attempt);
        let locked = super::store::count_failure(&mut tx, &allowed, &body.account_id).await?;
        audit::append(
            &mut tx,
            &who,
            Event::ok("account.totp_confirm", &body.account_id)
                .outcome(Outcome::Failed)
                .with_detail(
                    locked
                        .map(|u| format!("locked until {u}"))
                        .unwrap_or_default(),
                ),
        )
        .await?;
        tx.commit().await?;
        slot.keep();
        return Err(ApiError::field(
            "code",
            "动态码错误，请输入验证器中当前显示的六位动态码",
        ));
    };
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE accounts SET totp_confirmed = 1, last_totp_step = $1, failed_attempts = 0 \
         WHERE id = $2 AND totp_confirmed = 0",
    )
    .bind(step as i64)
    .bind(&body.account_id)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &who,
        Event::ok("account.totp_confirm", &body.account_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPassword {
    /// 手机号
    pub mobile: String,
    /// 短信验证码
    pub sms_code: String,
    /// 公民身份证号
    pub id_number: String,
    /// 新密码
    pub new_password: String,
}

/// 忘记密码: the person proves the registered mobile and the ID number; sessions end.
pub async fn reset_password(state: &AppState, client: &str, body: &ResetPassword) -> ApiResult<()> {
    let mobile = crate::fields::mobile("mobile", "手机号", Some(&body.mobile))?;
    if body.sms_code.trim().is_empty() {
        return Err(ApiError::field("sms_code", "请输入短信验证码"));
    }
    let id_number = match idcard::parse(&body.id_number, crate::db::today()) {
        Ok(idcard::IdNumber::Known { normalized, .. }) => normalized,
        Ok(idcard::IdNumber::Unknown) => {
            return Err(ApiError::field("id_number", "请输入本人的公民身份证号"))
        }
        Err(e) => return Err(ApiError::field("id_number", e.message())),
    };
    password::check_policy(&body.new_password).map_err(|m| ApiError::field("new_password", m))?;
    let slot = throttle::reserve(
        &state.db,
        &access::self_service(SelfService::Attempt),
        THROTTLE_BUCKET,
        client,
    )
    .await?;
    let Some(account_id) = active_account(state, &mobile).await? else {
        let e = ApiError::field("mobile", "该手机号没有已激活的账号");
        return Err(failed(state, slot, client, "account.password_reset", "", e).await);
    };
    let sms_id =
        match check_sms_code(state, &account_id, SmsPurpose::Password, &body.sms_code).await {
            Ok(id) => id,
            Err(e) => {
                return Err(failed(
                    state,
                    slot,
                    client,
                    "account.password_reset",
                    &account_id,
                    e,
                )
                .await)
            }
        };
    let Some((name, reg_id_number, _)) = contact_of(state.db.read(), &account_id).await? else {
        return Err(ApiError::internal("account vanished"));
    };
    if reg_id_number != id_number {
        use_attempt(state, &sms_id).await?;
        let e = ApiError::field("id_number", "公民身份证号与该手机号登记的账号不一致");
        return Err(failed(
            state,
            slot,
            client,
            "account.password_reset",
            &account_id,
            e,
        )
        .await);
    }
    let hash = password::hash_async(&body.new_password).await?;
    let mut tx = state.db.begin().await?;
    let used = sqlx::query("UPDATE sms_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
        .bind(now_rfc3339())
        .bind(&sms_id)
        .execute(&mut *tx)
        .await?;
    if used.rows_affected() != 1 {
        return Err(ApiError::field("sms_code", "短信验证码已使用，请重新获取"));
    }
    sqlx::query("UPDATE accounts SET password_hash = $1, must_change_password = 0 WHERE id = $2")
        .bind(hash)
        .bind(&account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE account_id = $1")
        .bind(&account_id)
        .execute(&mut *tx)
        .await?;
    let who = Who {
        account_id: Some(account_id.clone()),
        name,
        ..Who::anonymous(client)
    };
    audit::append(
        &mut tx,
        &who,
        Event::ok("account.password_reset", &account_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(activation_sms))
        .routes(routes!(activation))
        .routes(routes!(activation_totp))
        .routes(routes!(password_sms))
        .routes(routes!(password_reset))
}

fn client_of(conn: &ConnInfo) -> String {
    conn.client_addr.ip().to_string()
}

/// 用户激活: sends a six-digit SMS code to the mobile of a pending grant (same answer either way).
#[utoipa::path(post, path = "/api/v1/activation/sms", request_body = SmsRequest, security(()),
    responses((status = 200, body = SmsSent), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn activation_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<SmsRequest>,
) -> ApiResult<Json<SmsSent>> {
    request_sms(
        &state,
        &client_of(&conn),
        &body.mobile,
        SmsPurpose::Activation,
    )
    .await
    .map(Json)
}

/// 用户激活: checks every element against the grant, sets the password and returns a new
/// authenticator secret to confirm with `POST /api/v1/activation/totp`.
#[utoipa::path(post, path = "/api/v1/activation", request_body = Activate, security(()),
    responses((status = 200, body = Activated), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn activation(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<Activate>,
) -> ApiResult<Json<Activated>> {
    activate(&state, &client_of(&conn), &body).await.map(Json)
}

/// Confirms the authenticator with its first code; only then can the account sign in.
#[utoipa::path(post, path = "/api/v1/activation/totp", request_body = ConfirmTotp, security(()),
    responses((status = 200, body = TotpConfirmed), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 423, body = crate::error::ErrorBody)))]
async fn activation_totp(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<ConfirmTotp>,
) -> ApiResult<Json<TotpConfirmed>> {
    confirm_totp(&state, &client_of(&conn), &body).await?;
    Ok(Json(TotpConfirmed { confirmed: true }))
}

/// 忘记密码: sends a six-digit SMS code to the mobile of an activated account (same answer
/// either way).
#[utoipa::path(post, path = "/api/v1/password/sms", request_body = SmsRequest, security(()),
    responses((status = 200, body = SmsSent), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn password_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<SmsRequest>,
) -> ApiResult<Json<SmsSent>> {
    request_sms(
        &state,
        &client_of(&conn),
        &body.mobile,
        SmsPurpose::Password,
    )
    .await
    .map(Json)
}

/// 忘记密码: sets a new password after checking the SMS code and the ID number.
#[utoipa::path(post, path = "/api/v1/password/reset", request_body = ResetPassword, security(()),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn password_reset(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> ApiResult<axum::http::StatusCode> {
    reset_password(&state, &client_of(&conn), &body).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
