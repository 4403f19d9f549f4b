//! The API of members' own accounts: `POST /api/v1/register/sms`, `POST /api/v1/register`,
//! `POST /api/v1/me/session/sms`, `POST/DELETE /api/v1/me/session`, `GET /api/v1/me`. The
//! operations are public functions, so that the pages (`pages.rs`) run the same code.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rules::{self, MobileRule};
use super::store::{self, CodeCheck, Purpose, RegisterError};
use super::*;
use crate::access::{self, MemberActor, SelfService};
use crate::account::{
    password, session as admin_session, throttle, LOCK_MINUTES, MAX_FAILED_ATTEMPTS,
};
use crate::audit::{self, Event, Outcome, Who};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::member::{idcard, mask_phone};
use crate::notify::{self, Message};
use crate::state::{ApiJson, AppState, ConnInfo};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_sms_route))
        .routes(routes!(register_route))
        .routes(routes!(sign_in_sms_route))
        .routes(routes!(sign_in_route, sign_out_route))
        .routes(routes!(me_route))
        .routes(routes!(correction_route))
        .routes(routes!(applications_route))
        .routes(routes!(transfer_request_route))
        .routes(routes!(transfers_route))
        .routes(routes!(super::reminders::send_route))
        .routes(routes!(super::password::reset_sms_route))
        .routes(routes!(super::password::reset_route))
        .routes(routes!(super::password::change_route))
        .routes(routes!(super::totp::start_route))
        .routes(routes!(super::totp::confirm_route))
}

pub(crate) fn client_of(conn: &ConnInfo) -> String {
    conn.client_addr.ip().to_string()
}

pub(crate) fn attempt() -> access::Allowed {
    access::self_service(SelfService::Attempt)
}

/// The ID number of a form: a known citizen number, normalised.
pub(crate) fn id_number_field(p: &mut Problems, value: &str) -> Option<String> {
    match idcard::parse(value, crate::db::today()) {
        Ok(idcard::IdNumber::Known { normalized, .. }) => Some(normalized),
        Ok(idcard::IdNumber::Unknown) => {
            p.add("id_number", "请输入本人的公民身份证号");
            None
        }
        Err(e) => {
            p.add("id_number", e.message());
            None
        }
    }
}

fn not_matched() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "not_matched", NOT_MATCHED).with_field("id_number")
}

fn wrong_code() -> ApiError {
    ApiError::field("sms_code", "短信验证码错误或已失效，请核对或重新获取")
}

/// 党员注册, step 1: a six-digit code to `mobile` through the notifier, bound to the mobile
/// (valid [`CODE_MINUTES`] minutes, once). The answer is the same for every mobile; each
/// request counts against the client address (the throttle of registration), a mobile gets
/// one code a minute and [`CODES_PER_HOUR`] an hour.
pub async fn register_sms(state: &AppState, client: &str, mobile: &str) -> ApiResult<CodeSent> {
    let mobile = fields::mobile("mobile", "手机号", Some(mobile))?;
    let slot = throttle::reserve(&state.db, &attempt(), BUCKET_ADDRESS, client).await?;
    slot.keep();
    let answer = CodeSent {
        accepted: true,
        message: format!(
            "短信验证码已发送至{}，{CODE_MINUTES}分钟内有效；一分钟内不重复发送",
            mask_phone(&mobile)
        ),
    };
    let subject = store::mobile_subject(&mobile);
    if !store::may_send(&state.db, Purpose::Register, &subject).await? {
        return Ok(answer);
    }
    let mut tx = state.db.begin().await?;
    let code = store::new_code(&mut tx, &attempt(), Purpose::Register, &subject).await?;
    audit::append(
        &mut tx,
        &Who::anonymous(client),
        Event::ok("member.register_code", &mask_phone(&mobile)),
    )
    .await?;
    tx.commit().await?;
    notify::send(
        &state.config,
        &Message {
            to: mobile,
            kind: "register_sms".to_string(),
            text: format!(
                "【党员信息管理系统】您正在办理党员注册，短信验证码为{code}，{CODE_MINUTES}分钟内有效，请勿告诉他人。"
            ),
            code: Some(code),
        },
    )
    .await?;
    Ok(answer)
}

/// A failed registration: audited, its throttle slots kept.
async fn refused(
    state: &AppState,
    slots: (throttle::Slot, throttle::Slot),
    who: &Who,
    target: &str,
    why: &str,
    e: ApiError,
) -> ApiError {
    slots.0.keep();
    slots.1.keep();
    if let Err(a) = audit::append_alone(
        &state.db,
        who,
        Event::ok("member.register", target)
            .outcome(Outcome::Failed)
            .with_detail(why),
    )
    .await
    {
        return a.into();
    }
    e
}

/// 党员注册, step 2: every field checked at once; then, throttled per address and per ID
/// number, the code, the living member (ID number and name) and the mobile rule; one answer
/// ([`NOT_MATCHED`]) for every mismatch; the account and the registered phone in one
/// transaction with the audit record.
pub async fn register(state: &AppState, client: &str, body: &Register) -> ApiResult<Registered> {
    let mut p = Problems::default();
    let id_number = id_number_field(&mut p, &body.id_number);
    let name = p.take(fields::required_text("name", "姓名", Some(&body.name), 50));
    let mobile = p.take(fields::mobile("mobile", "手机号", Some(&body.mobile)));
    if body.sms_code.trim().is_empty() {
        p.add("sms_code", "请输入短信验证码");
    }
    if let Err(m) = password::check_policy(&body.password) {
        p.add("password", m);
    }
    p.finish()?;
    let (Some(id_number), Some(name), Some(mobile)) = (id_number, name, mobile) else {
        return Err(fields::unset());
    };
    let address_slot = throttle::reserve(&state.db, &attempt(), BUCKET_ADDRESS, client).await?;
    let id_slot = throttle::reserve(
        &state.db,
        &attempt(),
        BUCKET_ID_NUMBER,
        &store::id_number_index(&id_number),
    )
    .await
    .map_err(|e| {
        if e.status == StatusCode::TOO_MANY_REQUESTS {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!(
                    "该身份证号{}分钟内注册失败次数过多，请稍后再试",
                    throttle::WINDOW_MINUTES
                ),
            )
        } else {
            e
        }
    })?;
    let slots = (address_slot, id_slot);
    let masked = idcard::mask(&id_number);
    let who = Who {
        name: name.clone(),
        ..Who::anonymous(client)
    };
    let subject = store::mobile_subject(&mobile);
    let code_id = match store::check_code(
        &state.db,
        &attempt(),
        Purpose::Register,
        &subject,
        &body.sms_code,
    )
    .await?
    {
        CodeCheck::Right(id) => id,
        CodeCheck::Wrong => {
            return Err(refused(state, slots, &who, &masked, "wrong code", wrong_code()).await)
        }
        CodeCheck::None => {
            return Err(refused(state, slots, &who, &masked, "no live code", wrong_code()).await)
        }
    };
    let member = store::living_member(&state.db, &id_number).await?;
    let why = match &member {
        None => Some("no living member with this ID number"),
        Some(m) if !rules::name_matches(&m.name, &name) => Some("name differs"),
        Some(m)
            if rules::mobile_rule(m.registered_phone.as_deref(), &mobile)
                == MobileRule::Differs =>
        {
            Some("another registered phone")
        }
        Some(_) => None,
    };
    let (Some(member), None) = (member, why) else {
        // The code was right: a mismatch uses one of its attempts, so that one code cannot
        // try many names.
        store::use_attempt(&state.db, &attempt(), &code_id).await?;
        let why = why.unwrap_or("no living member");
        return Err(refused(state, slots, &who, &masked, why, not_matched()).await);
    };
    let already = || {
        ApiError::conflict(
            "already_registered",
            "该党员已注册个人账号，请直接登录；忘记密码可在党员登录页找回",
        )
    };
    if store::has_account(&state.db, &member.id).await? {
        return Err(refused(state, slots, &who, &masked, "already registered", already()).await);
    }
    let hash = password::hash_async(&body.password).await?;
    let allowed = access::self_service(SelfService::Register {
        member_id: &member.id,
    });
    let mut tx = state.db.begin().await?;
    if !store::consume_code(&mut tx, &allowed, &code_id).await? {
        drop(tx);
        return Err(refused(
            state,
            slots,
            &who,
            &masked,
            "code already used",
            wrong_code(),
        )
        .await);
    }
    let account_id = match store::register(&mut tx, &allowed, &member, &mobile, &hash).await {
        Ok(id) => id,
        Err(e) => {
            drop(tx);
            let (why, err) = match e {
                RegisterError::AlreadyRegistered => ("already registered", already()),
                RegisterError::PhoneTaken => ("phone taken", not_matched()),
                RegisterError::Db(e) => return Err(e.into()),
            };
            return Err(refused(state, slots, &who, &masked, why, err).await);
        }
    };
    let who = Who {
        account_id: Some(account_id.clone()),
        name: member.name.clone(),
        role: "member".to_string(),
        org_id: Some(member.branch_id.clone()),
        org_code: Some(member.org_code.clone()),
        ..who
    };
    audit::append(
        &mut tx,
        &who,
        Event::ok("member.register", &member.id).with_detail(masked),
    )
    .await?;
    tx.commit().await?;
    slots.0.release().await;
    slots.1.release().await;
    Ok(Registered {
        account_id,
        name: member.name,
        message: "注册成功。请使用身份证号、密码和发送到登记手机号的短信验证码登录个人专区。"
            .to_string(),
    })
}

/// "Wrong ID number or password", with the tries left before the lock.
fn bad_credentials(counted: i64, locked: bool) -> ApiError {
    let message = if locked {
        format!("身份证号或密码错误。连续{MAX_FAILED_ATTEMPTS}次错误，账号已锁定{LOCK_MINUTES}分钟")
    } else if counted > 0 {
        format!(
            "身份证号或密码错误。再错{}次，账号将锁定{LOCK_MINUTES}分钟",
            (MAX_FAILED_ATTEMPTS - counted).max(1)
        )
    } else {
        "身份证号或密码错误".to_string()
    };
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", message)
}

pub(crate) fn locked_error(until: &str) -> Option<ApiError> {
    let until = chrono::DateTime::parse_from_rfc3339(until).ok()?;
    if until <= chrono::Utc::now() {
        return None;
    }
    let local = until.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600)?);
    Some(ApiError::new(
        StatusCode::LOCKED,
        "account_locked",
        format!(
            "连续{MAX_FAILED_ATTEMPTS}次密码或验证码错误，账号已锁定至{}",
            local.format("%Y-%m-%d %H:%M")
        ),
    ))
}

/// One failure of a member account (sign-in, password reset), counted in SQL towards the
/// lock with its audit record of `action`.
pub(crate) async fn count_failure(
    state: &AppState,
    account: &store::AccountRow,
    who: &Who,
    target: &str,
    action: &str,
    why: &str,
) -> ApiResult<(i64, bool)> {
    let mut tx = state.db.begin().await?;
    let (counted, locked) = store::count_failure(&mut tx, &attempt(), &account.id).await?;
    let detail = match &locked {
        Some(u) => format!("{why}; locked until {u}"),
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
    Ok((counted, locked.is_some()))
}

/// The account behind ID number and password, or the refusal (unknown, locked, wrong
/// password: failures counted and audited).
async fn check_password(
    state: &AppState,
    client: &str,
    id_number: &str,
    password_given: &str,
) -> ApiResult<(store::AccountRow, Who, String)> {
    let id_number = id_number.trim().replace('x', "X");
    let mut p = Problems::default();
    if id_number.is_empty() {
        p.add("id_number", "请输入公民身份证号");
    }
    if password_given.is_empty() {
        p.add("password", "请输入密码");
    }
    p.finish()?;
    let masked = idcard::mask(&id_number);
    let Some(account) = store::account_by_id_number(&state.db, &id_number).await? else {
        password::verify_async(password_given, password::dummy_hash()).await?;
        audit::append_alone(
            &state.db,
            &Who::anonymous(client),
            Event::ok("member.sign_in", &masked)
                .outcome(Outcome::Failed)
                .with_detail("no member account"),
        )
        .await?;
        return Err(bad_credentials(0, false));
    };
    let who = account.who(client);
    if let Some(e) = account.locked_until.as_deref().and_then(locked_error) {
        audit::append_alone(
            &state.db,
            &who,
            Event::ok("member.sign_in", &masked)
                .outcome(Outcome::Refused)
                .with_detail("locked"),
        )
        .await?;
        return Err(e);
    }
    if !password::verify_async(password_given, &account.password_hash).await? {
        let (counted, locked) = count_failure(
            state,
            &account,
            &who,
            &masked,
            "member.sign_in",
            "bad password",
        )
        .await?;
        return Err(bad_credentials(counted, locked));
    }
    Ok((account, who, masked))
}

/// 党员登录, step 1: ID number and password; a six-digit code goes to the registered phone.
pub async fn sign_in_sms(
    state: &AppState,
    client: &str,
    body: &SignInSms,
) -> ApiResult<SignInCodeSent> {
    throttle::attempt(&state.db, BUCKET_SIGN_IN, client, async {
        let (account, who, masked) =
            check_password(state, client, &body.id_number, &body.password).await?;
        let Some(phone) = account.registered_phone.clone() else {
            return Err(ApiError::forbidden(
                "党员信息库中没有登记手机号，无法发送验证码，请联系所在党支部登记",
            ));
        };
        let answer = SignInCodeSent {
            sent: true,
            phone: mask_phone(&phone),
            message: format!(
                "短信验证码已发送至登记手机号{}，{CODE_MINUTES}分钟内有效；一分钟内不重复发送",
                mask_phone(&phone)
            ),
        };
        if !store::may_send(&state.db, Purpose::SignIn, &account.id).await? {
            return Ok(answer);
        }
        let mut tx = state.db.begin().await?;
        let code = store::new_code(&mut tx, &attempt(), Purpose::SignIn, &account.id).await?;
        audit::append(&mut tx, &who, Event::ok("member.sign_in_code", &masked)).await?;
        tx.commit().await?;
        notify::send(
            &state.config,
            &Message {
                to: phone,
                kind: "member_sign_in".to_string(),
                text: format!(
                    "【党员信息管理系统】您正在登录个人专区，短信验证码为{code}，{CODE_MINUTES}分钟内有效，请勿告诉他人。"
                ),
                code: Some(code),
            },
        )
        .await?;
        Ok(answer)
    })
    .await
}

/// 党员登录, step 2: ID number, password and the SMS code (single use; wrong codes count
/// towards the lock like wrong passwords); opens the member session.
pub async fn sign_in(
    state: &AppState,
    client: &str,
    body: &MemberSignIn,
) -> ApiResult<MemberSignedIn> {
    throttle::attempt(&state.db, BUCKET_SIGN_IN, client, async {
        if body.code.trim().is_empty() {
            return Err(ApiError::field("code", "请输入短信验证码"));
        }
        let (account, who, masked) =
            check_password(state, client, &body.id_number, &body.password).await?;
        let bad_code = |counted: i64, locked: bool| {
            let tries = if locked {
                format!("连续{MAX_FAILED_ATTEMPTS}次错误，账号已锁定{LOCK_MINUTES}分钟")
            } else {
                format!(
                    "再错{}次，账号将锁定{LOCK_MINUTES}分钟",
                    (MAX_FAILED_ATTEMPTS - counted).max(1)
                )
            };
            // With a confirmed authenticator either code may have been typed.
            let what = if account.totp_confirmed == 1 {
                "短信验证码或动态码错误、已使用或已失效，请重新输入"
            } else {
                "短信验证码错误、已使用或已失效，请重新获取"
            };
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_code",
                format!("{what}。{tries}"),
            )
            .with_field("code")
        };
        // A confirmed authenticator's code signs in instead of an SMS code, each step once.
        let totp_step = match (&account.totp_secret, account.totp_confirmed) {
            (Some(secret), 1) => crate::account::totp::matching_step(
                secret,
                &body.code,
                chrono::Utc::now().timestamp().max(0) as u64,
            ),
            _ => None,
        };
        if let Some(step) = totp_step {
            let allowed = access::self_service(SelfService::MemberSignedIn {
                member_account_id: &account.id,
            });
            let mut tx = state.db.begin().await?;
            if !store::claim_totp_step(&mut tx, &allowed, &account.id, step as i64, false).await? {
                drop(tx);
                let (counted, locked) = count_failure(
                    state,
                    &account,
                    &who,
                    &masked,
                    "member.sign_in",
                    "replayed authenticator code",
                )
                .await?;
                return Err(bad_code(counted, locked));
            }
            let (token, csrf) = store::open_session(&mut tx, &allowed, &account, client).await?;
            audit::append(
                &mut tx,
                &who,
                Event::ok("member.sign_in", &masked).with_detail("authenticator code"),
            )
            .await?;
            tx.commit().await?;
            return Ok(MemberSignedIn {
                token,
                csrf_token: csrf,
                member_id: account.member_id,
                name: account.name,
            });
        }
        let code_id = match store::check_code(
            &state.db,
            &attempt(),
            Purpose::SignIn,
            &account.id,
            &body.code,
        )
        .await?
        {
            CodeCheck::Right(id) => id,
            CodeCheck::Wrong | CodeCheck::None => {
                let (counted, locked) =
                    count_failure(state, &account, &who, &masked, "member.sign_in", "bad code")
                        .await?;
                return Err(bad_code(counted, locked));
            }
        };
        let allowed = access::self_service(SelfService::MemberSignedIn {
            member_account_id: &account.id,
        });
        let mut tx = state.db.begin().await?;
        if !store::consume_code(&mut tx, &allowed, &code_id).await? {
            drop(tx);
            let (counted, locked) = count_failure(
                state,
                &account,
                &who,
                &masked,
                "member.sign_in",
                "replayed code",
            )
            .await?;
            return Err(bad_code(counted, locked));
        }
        let (token, csrf) = store::open_session(&mut tx, &allowed, &account, client).await?;
        audit::append(&mut tx, &who, Event::ok("member.sign_in", &masked)).await?;
        tx.commit().await?;
        Ok(MemberSignedIn {
            token,
            csrf_token: csrf,
            member_id: account.member_id,
            name: account.name,
        })
    })
    .await
}

/// Ends the member's session.
pub async fn sign_out(state: &AppState, me: &MemberActor) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    sqlx::query("DELETE FROM member_sessions WHERE token_hash = $1")
        .bind(&me.session_token_hash)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &super::session::who(me),
        Event::ok("member.sign_out", &me.member_account_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// 个人专区: the own record unmasked (audited as an unmasked view), what it lacks, the
/// organisation and its contacts.
pub async fn me(state: &AppState, actor: &MemberActor) -> ApiResult<Me> {
    access::own_record(actor, &actor.member_id)?;
    let (row, branch_name) = crate::member::routes::load(&state.db, &actor.member_id).await?;
    let org = crate::org::store::get(state.db.read(), &row.branch_id)
        .await?
        .ok_or_else(|| ApiError::not_found("党组织"))?;
    let registered_at: String =
        sqlx::query_scalar("SELECT created_at FROM member_accounts WHERE id = $1")
            .bind(&actor.member_account_id)
            .fetch_one(state.db.read())
            .await?;
    audit::append_alone(
        &state.db,
        &super::session::who(actor),
        Event::ok("member.view", &row.id).with_detail("unmasked; own record (个人专区)"),
    )
    .await?;
    let missing = rules::missing_fields(&row);
    let completeness = row.completeness;
    Ok(Me {
        member: row.view(branch_name, true),
        completeness,
        missing,
        organisation: OwnOrg {
            id: org.id,
            code: org.code,
            name: org.name,
            secretary: org.secretary,
            contact_name: org.contact_name,
            contact_phone: org.contact_phone,
        },
        registered_at,
        csrf_token: actor.csrf_token.clone(),
    })
}

/// 党员注册: a six-digit code to the mobile (the same answer for every mobile).
#[utoipa::path(post, path = "/api/v1/register/sms", request_body = RegisterSms, security(()),
    responses((status = 200, body = CodeSent), (status = 400, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn register_sms_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<RegisterSms>,
) -> ApiResult<Json<CodeSent>> {
    register_sms(&state, &client_of(&conn), &body.mobile)
        .await
        .map(Json)
}

/// 党员注册: creates the member's personal account after checking ID number and name against
/// the living database, the mobile and the SMS code.
#[utoipa::path(post, path = "/api/v1/register", request_body = Register, security(()),
    responses((status = 201, body = Registered), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn register_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<Register>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let done = register(&state, &client_of(&conn), &body).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// 党员登录, step 1: ID number and password; sends a code to the registered phone.
#[utoipa::path(post, path = "/api/v1/me/session/sms", request_body = SignInSms, security(()),
    responses((status = 200, body = SignInCodeSent), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 423, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn sign_in_sms_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<SignInSms>,
) -> ApiResult<Json<SignInCodeSent>> {
    sign_in_sms(&state, &client_of(&conn), &body)
        .await
        .map(Json)
}

/// 党员登录, step 2: ID number, password and the SMS code; opens the member's session.
#[utoipa::path(post, path = "/api/v1/me/session", request_body = MemberSignIn, security(()),
    responses((status = 200, body = MemberSignedIn), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 423, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
async fn sign_in_route(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(body): ApiJson<MemberSignIn>,
) -> ApiResult<Response> {
    let signed = sign_in(&state, &client_of(&conn), &body).await?;
    let cookie = admin_session::session_cookie(&signed.token, state.config.secure_cookies);
    Ok(([(SET_COOKIE, cookie)], Json(signed)).into_response())
}

/// Ends the member's session.
#[utoipa::path(delete, path = "/api/v1/me/session",
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn sign_out_route(State(state): State<AppState>, me: MemberActor) -> ApiResult<Response> {
    sign_out(&state, &me).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            SET_COOKIE,
            admin_session::clear_cookie(state.config.secure_cookies),
        )],
    )
        .into_response())
}

/// 个人专区: the member's own record (unmasked, audited), completeness and what is missing,
/// the organisation and its contacts.
#[utoipa::path(get, path = "/api/v1/me",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn me_route(State(state): State<AppState>, actor: MemberActor) -> ApiResult<Json<Me>> {
    me(&state, &actor).await.map(Json)
}

/// Longest correction request, in characters.
pub const CORRECTION_MAX: usize = 1000;

/// 信息更正申请: the member asks the branch to correct the own record; the request becomes an
/// application in the approval queue of the branch (tier 3), with its trail and audit record.
pub async fn request_correction(
    state: &AppState,
    actor: &MemberActor,
    body: &CorrectionRequest,
) -> ApiResult<Submitted> {
    let content =
        fields::required_text("content", "更正内容", Some(&body.content), CORRECTION_MAX)?;
    let data = crate::approval::ApplicationData {
        reason: content,
        ..Default::default()
    };
    apply(state, actor, crate::approval::rules::Kind::Correction, data).await
}

/// 网上转接申请: the member asks the branch for an outbound transfer; an application in the
/// branch's approval queue, after which the branch starts the transfer from the record.
pub async fn request_transfer(
    state: &AppState,
    actor: &MemberActor,
    body: &TransferRequest,
) -> ApiResult<Submitted> {
    let mut p = Problems::default();
    let destination = p.take(fields::required_text(
        "destination",
        "转往何处",
        Some(&body.destination),
        200,
    ));
    let reason = p.take(fields::required_text(
        "reason",
        "转接原因",
        Some(&body.reason),
        CORRECTION_MAX,
    ));
    p.finish()?;
    let (Some(destination), Some(reason)) = (destination, reason) else {
        return Err(fields::unset());
    };
    let data = crate::approval::ApplicationData {
        reason: format!("转往：{destination}；原因：{reason}"),
        transfer_to: Some(destination),
        transfer_reason: Some(reason),
        ..Default::default()
    };
    apply(
        state,
        actor,
        crate::approval::rules::Kind::TransferRequest,
        data,
    )
    .await
}

/// A member's application of `kind` to the branch (its approval queue).
async fn apply(
    state: &AppState,
    actor: &MemberActor,
    kind: crate::approval::rules::Kind,
    data: crate::approval::ApplicationData,
) -> ApiResult<Submitted> {
    use crate::approval::{rules as approval_rules, store as approval_store};
    let allowed = access::own_record(actor, &actor.member_id)?;
    let (member, branch_name) = crate::member::routes::load(&state.db, &actor.member_id).await?;
    let chain = approval_store::chain(state.db.read(), &member.org_code).await?;
    let approver = approval_rules::approver(&chain, kind.approver_tier())
        .cloned()
        .ok_or_else(|| {
            ApiError::conflict("no_approver", "没有可以审批的党组织，请联系所在党支部")
        })?;
    let applicant = approval_store::Applicant {
        account_id: actor.member_account_id.clone(),
        name: actor.name.clone(),
        org_id: actor.branch_id.clone(),
        org_code: actor.org_code.clone(),
        org_name: actor.org_name.clone(),
        who: super::session::who(actor),
    };
    let id = approval_store::submit_as(
        &state.db,
        &applicant,
        approval_store::NewApplication {
            kind,
            member_id: Some(&member.id),
            member_name: &member.name,
            subject_code: &member.org_code,
            subject_name: &branch_name,
            approver: &approver,
            data: &data,
            attachments: &[],
        },
        &allowed,
    )
    .await?;
    Ok(Submitted {
        id,
        message: format!("{}已提交，由{}审核", kind.label(), approver.name),
    })
}

/// The member's own applications, newest first, with the decision's opinion.
pub async fn own_applications(state: &AppState, actor: &MemberActor) -> ApiResult<OwnApplications> {
    use crate::approval::rules::{Kind, State as AppState_};
    access::own_record(actor, &actor.member_id)?;
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, state, data, approver_org_name, submitted_at, decided_at \
         FROM applications WHERE member_id = $1 AND applicant_account_id = $2 \
         ORDER BY submitted_at DESC, id",
    )
    .bind(&actor.member_id)
    .bind(&actor.member_account_id)
    .fetch_all(state.db.read())
    .await?;
    let mut items = Vec::new();
    for (id, kind, st, data, approver_org_name, submitted_at, decided_at) in rows {
        let data: crate::approval::ApplicationData = serde_json::from_str(&crate::crypto::open(
            crate::crypto::Column::ApplicationsData,
            &data,
        )?)
        .map_err(ApiError::internal)?;
        let opinion: Option<String> = sqlx::query_scalar(
            "SELECT opinion FROM application_steps WHERE application_id = $1 \
             AND action IN ('approve', 'reject') ORDER BY at DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(state.db.read())
        .await?;
        let k = Kind::parse(&kind);
        let s = AppState_::parse(&st);
        items.push(OwnApplication {
            id,
            kind_label: k.map(|k| k.label()).unwrap_or("").to_string(),
            kind,
            state_label: s.map(|s| s.label()).unwrap_or("").to_string(),
            state: st,
            content: data.reason,
            approver_org_name,
            submitted_at,
            decided_at,
            opinion: opinion.filter(|o| !o.is_empty()),
        });
    }
    Ok(OwnApplications { items })
}

/// 信息更正申请: a request to the branch to correct the own record (its approval queue).
#[utoipa::path(post, path = "/api/v1/me/corrections", request_body = CorrectionRequest,
    responses((status = 201, body = Submitted), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn correction_route(
    State(state): State<AppState>,
    actor: MemberActor,
    ApiJson(body): ApiJson<CorrectionRequest>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let done = request_correction(&state, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// The member's own applications (correction requests) and their state.
#[utoipa::path(get, path = "/api/v1/me/applications",
    responses((status = 200, body = OwnApplications), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn applications_route(
    State(state): State<AppState>,
    actor: MemberActor,
) -> ApiResult<Json<OwnApplications>> {
    own_applications(&state, &actor).await.map(Json)
}

/// The member's own transfers and their letters.
pub async fn own_transfers(state: &AppState, actor: &MemberActor) -> ApiResult<OwnTransfers> {
    use crate::transfer::rules::{Kind, State as TState};
    access::own_record(actor, &actor.member_id)?;
    type Row = (String, String, String, String, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, kind, state, from_name, to_name, transfer_date FROM transfers \
         WHERE member_id = $1 ORDER BY created_at DESC, id",
    )
    .bind(&actor.member_id)
    .fetch_all(state.db.read())
    .await?;
    let mut items = Vec::new();
    for (id, kind, st, from_name, to_name, transfer_date) in rows {
        let letter: Option<(String, String, String, String)> = sqlx::query_as(
            "SELECT number, state, valid_until, verify_url FROM letters WHERE transfer_id = $1 \
             ORDER BY created_at DESC, number DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(state.db.read())
        .await?;
        let kind_label = serde_json::from_value::<Kind>(serde_json::Value::String(kind))
            .map(|k| k.label())
            .unwrap_or("");
        let state_label = serde_json::from_value::<TState>(serde_json::Value::String(st.clone()))
            .map(|s| s.label())
            .unwrap_or("");
        items.push(OwnTransfer {
            id,
            kind_label: kind_label.to_string(),
            state_label: state_label.to_string(),
            state: st,
            from_name,
            to_name,
            transfer_date,
            letter: letter.map(|(number, state, valid_until, verify_url)| OwnLetter {
                number,
                state_label: match state.as_str() {
                    "issued" => "已开具",
                    "received" => "已接收",
                    "withdrawn" => "已撤回",
                    "superseded" => "已重开",
                    _ => "",
                }
                .to_string(),
                state,
                valid_until,
                verify_url,
            }),
        });
    }
    Ok(OwnTransfers { items })
}

/// 网上转接申请: a request to the branch for an outbound transfer (its approval queue).
#[utoipa::path(post, path = "/api/v1/me/transfer-requests", request_body = TransferRequest,
    responses((status = 201, body = Submitted), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn transfer_request_route(
    State(state): State<AppState>,
    actor: MemberActor,
    ApiJson(body): ApiJson<TransferRequest>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let done = request_transfer(&state, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// The member's own transfers 组织关系转接: state and letter.
#[utoipa::path(get, path = "/api/v1/me/transfers",
    responses((status = 200, body = OwnTransfers), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn transfers_route(
    State(state): State<AppState>,
    actor: MemberActor,
) -> ApiResult<Json<OwnTransfers>> {
    own_transfers(&state, &actor).await.map(Json)
}
