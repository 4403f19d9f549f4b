//! Pages of members' own accounts: 党员注册 (`/register`), 党员登录 (`/me/login`), the
//! member's page 个人专区 (`/me`) and its sign-out. They run the same operations as the API
//! (`routes.rs`). The sign-in form carries a double-submit token (cookie `dj_mlogin` beside a
//! hidden field), as the administrators' sign-in does.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::routes;
use super::{MemberSignIn, Register, SignInSms};
use crate::access::MemberActor;
use crate::account::session as admin_session;
use crate::error::ApiError;
use crate::state::{AppState, ConnInfo};
use crate::web::{html_response, FormErrors, PageRouter};

const LOGIN_COOKIE: &str = "dj_mlogin";

pub fn router() -> PageRouter {
    PageRouter::new()
        .route("/register", get(register_page).post(register_submit))
        .route("/register/sms", post(register_sms))
        .route("/me/login", get(login_page).post(login_submit))
        .route("/me/login/sms", post(login_sms))
        .route("/me/login/reset", get(reset_page).post(reset_submit))
        .route("/me/login/reset/sms", post(reset_sms))
        .route("/me/password", post(password_submit))
        .route("/me/totp", post(totp_start))
        .route("/me/totp/confirm", post(totp_confirm))
        .route("/me", get(me_page))
        .route("/me/logout", post(logout))
        .route("/me/correction", post(correction_submit))
        .route("/me/transfer-request", post(transfer_submit))
}

fn client_of(conn: &ConnInfo) -> String {
    conn.client_addr.ip().to_string()
}

fn shell(title: &str, status: StatusCode, body: Markup) -> Response {
    html_response(
        status,
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                (crate::web::head(title, false))
                body.login-body {
                    main.login-box {
                        h1 { (title) }
                        (body)
                        p.hint { a href="/login" { "返回登录页" } }
                    }
                }
            }
        },
    )
}

fn input(name: &str, label: &str, kind: &str, value: &str, errors: &FormErrors) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { span.req { "*" } (label) }
            input id=(name) type=(kind) name=(name) value=(value) autocomplete="off";
            (errors.at(name))
        }
    }
}

fn errors_of(e: &ApiError) -> FormErrors {
    let mut errors = FormErrors::from_api(e);
    if e.field.is_none() {
        errors.general = Some(e.message.clone());
    }
    errors
}

#[derive(Deserialize, Default)]
struct RegisterForm {
    id_number: Option<String>,
    name: Option<String>,
    mobile: Option<String>,
    sms_code: Option<String>,
    password: Option<String>,
    password2: Option<String>,
}

fn v(o: &Option<String>) -> String {
    o.clone().unwrap_or_default()
}

fn register_form(
    f: &RegisterForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    shell(
        "党员注册",
        status,
        html! {
            p.hint { "党员本人实名注册：填写身份证号、姓名和手机号，获取短信验证码后设置密码。信息须与党员信息库中的登记一致；已登记手机号的，须使用登记的手机号。" }
            @if let Some(n) = notice { div.alert.alert-info #register-notice role="status" { (n) } }
            (errors.banner())
            form #register-sms-form method="post" action="/register/sms" {
                input type="hidden" name="id_number" value=(v(&f.id_number));
                input type="hidden" name="name" value=(v(&f.name));
                (input("mobile", "手机号", "text", &v(&f.mobile), errors))
                button type="submit" { "获取短信验证码" }
            }
            form #register-form method="post" action="/register" {
                input type="hidden" name="mobile" value=(v(&f.mobile));
                (input("id_number", "公民身份证号", "text", &v(&f.id_number), errors))
                (input("name", "姓名", "text", &v(&f.name), errors))
                (input("sms_code", "短信验证码", "text", &v(&f.sms_code), errors))
                (input("password", "密码（8-18位，含大写字母、小写字母和数字）", "password", "", errors))
                (input("password2", "再次输入密码", "password", "", errors))
                button.primary type="submit" { "注册" }
            }
            p.hint { "已注册？" a href="/me/login" { "党员登录" } }
        },
    )
}

async fn register_page() -> Response {
    register_form(
        &RegisterForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
}

async fn register_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: RegisterForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    match routes::register_sms(&state, &client_of(&conn), &v(&f.mobile)).await {
        Ok(sent) => register_form(
            &f,
            &FormErrors::default(),
            Some(&sent.message),
            StatusCode::OK,
        ),
        Err(e) => register_form(&f, &errors_of(&e), None, e.status),
    }
}

async fn register_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: RegisterForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if f.password != f.password2 {
        let e = ApiError::field("password2", "两次输入的密码不一致");
        return register_form(&f, &FormErrors::from_api(&e), None, StatusCode::BAD_REQUEST);
    }
    let req = Register {
        id_number: v(&f.id_number),
        name: v(&f.name),
        mobile: v(&f.mobile),
        sms_code: v(&f.sms_code),
        password: v(&f.password),
    };
    match routes::register(&state, &client_of(&conn), &req).await {
        Ok(done) => shell(
            "注册成功",
            StatusCode::OK,
            html! {
                div.alert.alert-info #registered role="status" { (done.name) "，" (done.message) }
                p { a.button.primary href="/me/login" { "登录个人专区" } }
            },
        ),
        Err(e) => register_form(&f, &errors_of(&e), None, e.status),
    }
}

#[derive(Deserialize, Default)]
struct LoginForm {
    id_number: Option<String>,
    password: Option<String>,
    code: Option<String>,
    login_token: Option<String>,
}

fn login_form(
    state: &AppState,
    f: &LoginForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = admin_session::random_token();
    let res = shell(
        "党员登录",
        status,
        html! {
            p.hint { "已注册的党员用身份证号、密码和发送到登记手机号的短信验证码登录个人专区。" }
            @if let Some(n) = notice { div.alert.alert-info #member-login-notice role="status" { (n) } }
            (errors.banner())
            form #member-login-form method="post" action="/me/login" autocomplete="off" {
                input type="hidden" name="login_token" value=(token);
                (input("id_number", "公民身份证号", "text", &v(&f.id_number), errors))
                div.field.has-error[errors.fields.contains_key("password")] {
                    label for="password" { span.req { "*" } "密码" }
                    input #password type="password" name="password" maxlength="18";
                    (errors.at("password"))
                }
                (input("code", "短信验证码（已绑定身份验证器的可输入其动态码）", "text", "", errors))
                button type="submit" formaction="/me/login/sms" #member-login-sms { "获取短信验证码" }
                " "
                button.primary type="submit" { "登录" }
            }
            p.hint #member-login-links {
                "还没有账号？" a href="/register" { "党员注册" }
                "　" a href="/me/login/reset" { "忘记密码" }
            }
        },
    );
    with_login_token(state, res, &token)
}

/// Sets the double-submit cookie of the member's sign-in forms (`/me/login…`).
fn with_login_token(state: &AppState, mut res: Response, token: &str) -> Response {
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; Path=/me/login; HttpOnly; SameSite=Strict{}",
        if state.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

#[derive(Deserialize, Default)]
struct ResetForm {
    id_number: Option<String>,
    sms_code: Option<String>,
    password: Option<String>,
    password2: Option<String>,
    login_token: Option<String>,
}

/// 找回密码: the ID number, the code sent to the registered phone, the new password.
fn reset_form(
    state: &AppState,
    f: &ResetForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = admin_session::random_token();
    let res = shell(
        "找回密码",
        status,
        html! {
            p.hint { "输入本人公民身份证号获取短信验证码（发送到党员信息库中登记的手机号），再设置新密码。重设后原有登录全部退出。" }
            @if let Some(n) = notice { div.alert.alert-info #reset-notice role="status" { (n) } }
            (errors.banner())
            form #reset-form method="post" action="/me/login/reset" autocomplete="off" {
                input type="hidden" name="login_token" value=(token);
                (input("id_number", "公民身份证号", "text", &v(&f.id_number), errors))
                button type="submit" formaction="/me/login/reset/sms" #reset-sms formnovalidate { "获取短信验证码" }
                (input("sms_code", "短信验证码", "text", "", errors))
                (input("password", "新密码（8至18位，含大写字母、小写字母和数字）", "password", "", errors))
                (input("password2", "再次输入新密码", "password", "", errors))
                button.primary type="submit" { "重设密码" }
            }
            p.hint { a href="/me/login" { "返回党员登录" } }
        },
    );
    with_login_token(state, res, &token)
}

fn stale_reset(state: &AppState, f: &ResetForm) -> Response {
    let errors = FormErrors {
        general: Some("页面已失效，请重新输入".to_string()),
        ..FormErrors::default()
    };
    reset_form(state, f, &errors, None, StatusCode::FORBIDDEN)
}

async fn reset_page(State(state): State<AppState>) -> Response {
    reset_form(
        &state,
        &ResetForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
}

async fn reset_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f: ResetForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if !login_token_ok(&headers, &f.login_token) {
        return stale_reset(&state, &f);
    }
    let req = super::password::ResetSms {
        id_number: v(&f.id_number),
    };
    match super::password::reset_sms(&state, &client_of(&conn), &req).await {
        Ok(done) => reset_form(
            &state,
            &f,
            &FormErrors::default(),
            Some(&done.message),
            StatusCode::OK,
        ),
        Err(e) => reset_form(&state, &f, &errors_of(&e), None, e.status),
    }
}

async fn reset_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f: ResetForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if !login_token_ok(&headers, &f.login_token) {
        return stale_reset(&state, &f);
    }
    if f.password != f.password2 {
        let e = ApiError::field("password2", "两次输入的新密码不一致");
        return reset_form(&state, &f, &errors_of(&e), None, e.status);
    }
    let req = super::password::ResetPassword {
        id_number: v(&f.id_number),
        sms_code: v(&f.sms_code),
        password: v(&f.password),
    };
    match super::password::reset(&state, &client_of(&conn), &req).await {
        Ok(done) => shell(
            "找回密码",
            StatusCode::OK,
            html! {
                div.alert.alert-info #password-reset role="status" { (done.message) }
                p { a.button.primary href="/me/login" { "去登录" } }
            },
        ),
        Err(e) => reset_form(&state, &f, &errors_of(&e), None, e.status),
    }
}

async fn login_page(State(state): State<AppState>) -> Response {
    login_form(
        &state,
        &LoginForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
}

/// The double-submit check of the member's sign-in forms (sign-in and 找回密码): the posted
/// `login_token` equals the `dj_mlogin` cookie.
fn login_token_ok(headers: &HeaderMap, posted: &Option<String>) -> bool {
    let expected = crate::web::login::cookie_value(headers, LOGIN_COOKIE);
    expected.is_some() && expected == *posted
}

fn stale_form(state: &AppState, f: &LoginForm) -> Response {
    let errors = FormErrors {
        general: Some("登录页面已失效，请重新输入后登录".to_string()),
        ..FormErrors::default()
    };
    login_form(state, f, &errors, None, StatusCode::FORBIDDEN)
}

async fn login_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f: LoginForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if !login_token_ok(&headers, &f.login_token) {
        return stale_form(&state, &f);
    }
    let req = SignInSms {
        id_number: v(&f.id_number),
        password: v(&f.password),
    };
    match routes::sign_in_sms(&state, &client_of(&conn), &req).await {
        Ok(sent) => login_form(
            &state,
            &f,
            &FormErrors::default(),
            Some(&sent.message),
            StatusCode::OK,
        ),
        Err(e) => {
            let f = LoginForm {
                password: None,
                ..f
            };
            login_form(&state, &f, &errors_of(&e), None, e.status)
        }
    }
}

async fn login_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f: LoginForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if !login_token_ok(&headers, &f.login_token) {
        return stale_form(&state, &f);
    }
    let req = MemberSignIn {
        id_number: v(&f.id_number),
        password: v(&f.password),
        code: v(&f.code),
    };
    match routes::sign_in(&state, &client_of(&conn), &req).await {
        Ok(signed) => {
            let mut res = Redirect::to("/me").into_response();
            if let Ok(v) = HeaderValue::from_str(&admin_session::session_cookie(
                &signed.token,
                state.config.secure_cookies,
            )) {
                res.headers_mut().append(SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            let f = LoginForm {
                password: None,
                ..f
            };
            login_form(&state, &f, &errors_of(&e), None, e.status)
        }
    }
}

/// The member's page frame: a header with the member's name and sign-out.
fn member_page(me: &MemberActor, title: &str, body: Markup) -> Response {
    html_response(
        StatusCode::OK,
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                (crate::web::head(title, true))
                body.plain-body {
                    header.plain-header {
                        a href="/me" { "党员信息管理系统 · 个人专区" }
                        span.person { " 当前党员：" (me.name) " " }
                        form.inline method="post" action="/me/logout" {
                            input type="hidden" name="csrf" value=(me.csrf_token);
                            button.link type="submit" #member-logout { "退出" }
                        }
                    }
                    main.plain-main { (body) }
                }
            }
        },
    )
}

/// A member page's refusal: no session → the member's sign-in; anything else explained.
fn refusal(e: ApiError) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/me/login").into_response();
    }
    let status = e.status;
    crate::web::help::plain_page(
        status,
        "无法进入个人专区",
        html! { div.panel { div.alert.alert-error role="alert" { (e.message) } } },
    )
}

/// The member of a page request (the form's own CSRF field is checked by the caller of a
/// write; the API's header check is for scripts).
async fn member_of(
    state: &AppState,
    parts: &axum::http::request::Parts,
) -> Result<MemberActor, Response> {
    let client = parts
        .extensions
        .get::<ConnInfo>()
        .map(|c| c.client_addr.ip().to_string())
        .unwrap_or_default();
    let Some((token, _)) = admin_session::token_from_parts(parts) else {
        return Err(Redirect::to("/me/login").into_response());
    };
    super::session::load(&state.db, &token, &client)
        .await
        .map_err(refusal)
}

/// The member of a form post and the form, its anti-forgery field checked against the
/// session's (a refusal page otherwise).
async fn posted<F: serde::de::DeserializeOwned + Default>(
    state: &AppState,
    req: axum::extract::Request,
) -> Result<(MemberActor, F), Response> {
    #[derive(Deserialize, Default)]
    struct Csrf {
        csrf: Option<String>,
    }
    let (parts, body) = req.into_parts();
    let actor = member_of(state, &parts).await?;
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let token: Csrf = serde_html_form::from_bytes(&bytes).unwrap_or_default();
    if token.csrf.as_deref() != Some(actor.csrf_token.as_str()) {
        return Err(refusal(ApiError::forbidden(
            "请求缺少有效的防伪令牌（CSRF），请刷新页面后重试",
        )));
    }
    let form = serde_html_form::from_bytes(&bytes).unwrap_or_default();
    Ok((actor, form))
}

fn row(label: &str, value: &str) -> Markup {
    html! { tr { th { (label) } td { (value) } } }
}

async fn me_page(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, _) = req.into_parts();
    let actor = match member_of(&state, &parts).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    render_me(
        &state,
        actor,
        None,
        &FormErrors::default(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

async fn render_me(
    state: &AppState,
    actor: MemberActor,
    notice: Option<String>,
    errors: &FormErrors,
    content: String,
    status: StatusCode,
) -> Response {
    render_me_with(
        state,
        actor,
        notice,
        errors,
        content,
        status,
        &Extra::default(),
    )
    .await
}

/// What 个人专区 shows beside the record after an action of its own forms.
#[derive(Default)]
struct Extra<'a> {
    /// The answer of 修改密码.
    password_notice: Option<&'a str>,
    /// An enrolment under way: (secret, otpauth URI).
    totp_pending: Option<(&'a str, &'a str)>,
    /// The answer of 绑定身份验证器.
    totp_notice: Option<&'a str>,
}

/// 个人专区 with a notice beside the 修改密码 form.
async fn render_me_with(
    state: &AppState,
    actor: MemberActor,
    notice: Option<String>,
    errors: &FormErrors,
    content: String,
    status: StatusCode,
    extra: &Extra<'_>,
) -> Response {
    let state = state.clone();
    let me = match routes::me(&state, &actor).await {
        Ok(me) => me,
        Err(e) => return refusal(e),
    };
    let m = &me.member;
    let category = if m.category == "full" {
        "正式党员"
    } else {
        "预备党员"
    };
    let sex = if m.sex == "male" { "男" } else { "女" };
    let job = crate::member::dict::label(&crate::member::dict::JOBS, &m.job).unwrap_or(&m.job);
    let body = html! {
        div.panel #my-record {
            h2 { "个人专区" }
            p.hint { "以下是党员信息库中您本人的信息。如有错误，请联系所在党支部更正。" }
            table.info {
                (row("姓名", &m.name))
                (row("公民身份证号", &m.id_number))
                (row("性别", sex))
                (row("民族", &m.ethnicity_name))
                (row("出生日期", m.birth_date.as_deref().unwrap_or("")))
                (row("学历", &m.education_name))
                (row("人员类别", category))
                (row("入党日期", &m.joined_on))
                (row("转为正式党员日期", m.full_on.as_deref().unwrap_or("")))
                (row("工作岗位", job))
                (row("联系电话", &m.phone))
                (row("登记手机号", m.registered_phone.as_deref().unwrap_or("")))
                (row("家庭住址", &m.address))
                (row("所在党支部", &m.branch_name))
            }
            h3 { "信息完整度：" span #completeness { (me.completeness) "%" } }
            @if me.missing.is_empty() {
                p { "信息完整。" }
            } @else {
                p #missing { "尚缺：" (me.missing.join("、")) }
            }
        }
        div.panel #my-org {
            h3 { "所在党组织" }
            table.info {
                (row("党组织名称", &me.organisation.name))
                (row("书记", &me.organisation.secretary))
                (row("联系人", &me.organisation.contact_name))
                (row("联系电话", &me.organisation.contact_phone))
            }
        }
    };
    let applications = routes::own_applications(&state, &actor)
        .await
        .map(|a| a.items)
        .unwrap_or_default();
    let transfers = routes::own_transfers(&state, &actor)
        .await
        .map(|t| t.items)
        .unwrap_or_default();
    // A refused 修改密码 or 身份验证器 shows its errors at its own form only.
    let password_errors = PASSWORD_FIELDS
        .iter()
        .any(|f| errors.fields.contains_key(*f));
    let totp_errors = errors.fields.contains_key("code");
    let none = FormErrors::default();
    let totp_confirmed = super::store::totp_of(&state.db, &actor.member_account_id)
        .await
        .map(|(_, confirmed)| confirmed)
        .unwrap_or(false);
    let body = html! {
        (body)
        (correction_panel(&actor, notice.as_deref(), if password_errors || totp_errors { &none } else { errors }, &content))
        (transfer_panel(&actor, &transfers))
        (password_panel(&actor, extra.password_notice, if password_errors { errors } else { &none }))
        (totp_panel(&actor, totp_confirmed, extra, if totp_errors { errors } else { &none }))
        div.panel #my-applications {
            h3 { "我的申请" }
            @if applications.is_empty() {
                p.muted { "暂无申请。" }
            } @else {
                table.list {
                    thead { tr { th { "申请类型" } th { "内容" } th { "审核组织" } th { "提交时间" } th { "状态" } th { "审核意见" } } }
                    tbody {
                        @for a in &applications {
                            tr data-state=(a.state) {
                                td { (a.kind_label) }
                                td { (a.content) }
                                td { (a.approver_org_name) }
                                td.nowrap { (crate::audit::query::beijing_time(&a.submitted_at)) }
                                td { span.badge.state.(a.state) { (a.state_label) } }
                                td { (a.opinion.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut res = member_page(&actor, "个人专区", body);
    *res.status_mut() = status;
    res
}

const PASSWORD_FIELDS: [&str; 3] = ["old_password", "new_password", "new_password_again"];

fn password_panel(actor: &MemberActor, notice: Option<&str>, errors: &FormErrors) -> Markup {
    let field = |name: &str, label: &str| {
        html! {
            div.field.has-error[errors.fields.contains_key(name)] {
                label for=(name) { span.req { "*" } (label) }
                input id=(name) type="password" name=(name) maxlength="18" autocomplete="off";
                (errors.at(name))
            }
        }
    };
    html! {
        div.panel #change-password {
            h3 { "修改密码" }
            p.hint { "新密码8至18位，须含大写字母、小写字母和数字。修改后其他设备上的登录将退出。" }
            @if let Some(n) = notice { div.alert.alert-info #password-notice role="status" { (n) } }
            (errors.banner())
            form.form #password-form method="post" action="/me/password" data-no-draft {
                input type="hidden" name="csrf" value=(actor.csrf_token);
                (field("old_password", "原密码"))
                (field("new_password", "新密码"))
                (field("new_password_again", "确认新密码"))
                button.primary type="submit" { "修改密码" }
            }
        }
    }
}

async fn password_submit(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, f): (MemberActor, crate::account::change_password::ChangePassword) =
        match posted(&state, req).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    match super::password::change(&state, &actor, &f).await {
        Ok(done) => {
            render_me_with(
                &state,
                actor,
                None,
                &FormErrors::default(),
                String::new(),
                StatusCode::OK,
                &Extra {
                    password_notice: Some(&done.message),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(e) => {
            render_me_with(
                &state,
                actor,
                None,
                &errors_of(&e),
                String::new(),
                e.status,
                &Extra::default(),
            )
            .await
        }
    }
}

fn totp_panel(
    actor: &MemberActor,
    confirmed: bool,
    extra: &Extra<'_>,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.panel #totp {
            h3 { "身份验证器" }
            @if let Some(n) = extra.totp_notice { div.alert.alert-info #totp-notice role="status" { (n) } }
            @if let Some((secret, uri)) = extra.totp_pending {
                p.hint { "请用手机上的身份验证器扫描下面的二维码，然后输入验证器显示的六位动态码完成绑定。完成前仍用短信验证码登录。" }
                @if let Some(src) = crate::web::activation::qr_data_url(uri) {
                    p { img.qr src=(src) alt="身份验证器二维码" width="220" height="220"; }
                }
                p { "无法扫码时可手工输入密钥：" code #totp-secret { (secret) } }
                (errors.banner())
                form.form #totp-form method="post" action="/me/totp/confirm" data-no-draft {
                    input type="hidden" name="csrf" value=(actor.csrf_token);
                    input type="hidden" name="secret" value=(secret);
                    input type="hidden" name="uri" value=(uri);
                    div.field.has-error[errors.fields.contains_key("code")] {
                        label for="totp-code" { span.req { "*" } "六位动态码" }
                        input #totp-code type="text" name="code" maxlength="6" autocomplete="off";
                        (errors.at("code"))
                    }
                    button.primary type="submit" { "完成绑定" }
                }
            } @else {
                @if confirmed {
                    p #totp-state { "已绑定身份验证器。登录时可输入验证器上的六位动态码代替短信验证码。" }
                } @else {
                    p #totp-state.hint { "绑定手机上的身份验证器后，登录时可用它的六位动态码代替短信验证码。" }
                }
                form.inline #totp-start method="post" action="/me/totp" {
                    input type="hidden" name="csrf" value=(actor.csrf_token);
                    button type="submit" data-confirm=[confirmed.then_some("重新绑定后，原来的身份验证器将不能再用于登录。确定吗？")] {
                        @if confirmed { "重新绑定" } @else { "绑定身份验证器" }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct TotpForm {
    secret: Option<String>,
    uri: Option<String>,
    code: Option<String>,
}

async fn totp_start(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, _): (MemberActor, TotpForm) = match posted(&state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match super::totp::start(&state, &actor).await {
        Ok(started) => {
            let extra = Extra {
                totp_pending: Some((&started.secret, &started.otpauth_uri)),
                ..Extra::default()
            };
            render_me_with(
                &state,
                actor,
                None,
                &FormErrors::default(),
                String::new(),
                StatusCode::OK,
                &extra,
            )
            .await
        }
        Err(e) => refusal(e),
    }
}

async fn totp_confirm(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, f): (MemberActor, TotpForm) = match posted(&state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = super::totp::TotpConfirm { code: v(&f.code) };
    match super::totp::confirm(&state, &actor, &body).await {
        Ok(done) => {
            let extra = Extra {
                totp_notice: Some(&done.message),
                ..Extra::default()
            };
            render_me_with(
                &state,
                actor,
                None,
                &FormErrors::default(),
                String::new(),
                StatusCode::OK,
                &extra,
            )
            .await
        }
        Err(e) => {
            // The same secret again (the form carries it back; the stored one is unchanged).
            let (secret, uri) = (v(&f.secret), v(&f.uri));
            let extra = Extra {
                totp_pending: (!secret.is_empty()).then_some((secret.as_str(), uri.as_str())),
                ..Extra::default()
            };
            render_me_with(
                &state,
                actor,
                None,
                &errors_of(&e),
                String::new(),
                e.status,
                &extra,
            )
            .await
        }
    }
}

fn correction_panel(
    actor: &MemberActor,
    notice: Option<&str>,
    errors: &FormErrors,
    content: &str,
) -> Markup {
    html! {
        div.panel #correction {
            h3 { "信息更正申请" }
            p.hint { "发现本人信息有误时，请写明需要更正的项目和正确内容，提交后由所在党支部审核并更正。" }
            @if let Some(n) = notice { div.alert.alert-info #correction-notice role="status" { (n) } }
            (errors.banner())
            form.form #correction-form method="post" action="/me/correction" data-no-draft {
                input type="hidden" name="csrf" value=(actor.csrf_token);
                div.field.has-error[errors.fields.contains_key("content")] {
                    label for="content" { span.req { "*" } "更正内容" }
                    textarea #content name="content" rows="3" maxlength="1000" { (content) }
                    (errors.at("content"))
                }
                button.primary type="submit" { "提交申请" }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct CorrectionForm {
    content: Option<String>,
}

async fn correction_submit(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, f): (MemberActor, CorrectionForm) = match posted(&state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req = super::CorrectionRequest {
        content: v(&f.content),
    };
    match routes::request_correction(&state, &actor, &req).await {
        Ok(done) => {
            render_me(
                &state,
                actor,
                Some(done.message),
                &FormErrors::default(),
                String::new(),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let errors = errors_of(&e);
            render_me(&state, actor, None, &errors, v(&f.content), e.status).await
        }
    }
}

#[derive(Deserialize, Default)]
/// Signing out posts nothing but the anti-forgery field.
struct LogoutForm {}

async fn logout(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, _): (MemberActor, LogoutForm) = match posted(&state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = routes::sign_out(&state, &actor).await {
        return refusal(e);
    }
    let mut res = Redirect::to("/me/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&admin_session::clear_cookie(state.config.secure_cookies))
    {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

fn transfer_panel(actor: &MemberActor, transfers: &[super::OwnTransfer]) -> Markup {
    html! {
        div.panel #transfer-request {
            h3 { "网上转接申请" }
            p.hint { "需要转出组织关系时，请写明转往何处和原因，提交后由所在党支部审核并办理转接；办理进度和介绍信显示在下方。" }
            form.form #transfer-request-form method="post" action="/me/transfer-request" data-no-draft {
                input type="hidden" name="csrf" value=(actor.csrf_token);
                div.field {
                    label for="destination" { span.req { "*" } "转往何处" }
                    input #destination type="text" name="destination" maxlength="200";
                }
                div.field {
                    label for="reason" { span.req { "*" } "转接原因" }
                    textarea #reason name="reason" rows="2" maxlength="1000" {}
                }
                button.primary type="submit" { "提交转接申请" }
            }
            h3 { "我的组织关系转接" }
            @if transfers.is_empty() {
                p.muted { "暂无转接。" }
            } @else {
                table.list #my-transfers {
                    thead { tr { th { "转出类型" } th { "转出党组织" } th { "转入党组织" } th { "转接日期" } th { "状态" } th { "介绍信" } } }
                    tbody {
                        @for t in transfers {
                            tr {
                                td { (t.kind_label) } td { (t.from_name) } td { (t.to_name) }
                                td.nowrap { (t.transfer_date) }
                                td { span.badge.state.(t.state) { (t.state_label) } }
                                td {
                                    @if let Some(l) = &t.letter {
                                        a href=(l.verify_url) { (l.number) } " " (l.state_label) "，有效期至" (l.valid_until)
                                    } @else { "—" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize, Default)]
struct TransferForm {
    destination: Option<String>,
    reason: Option<String>,
}

async fn transfer_submit(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (actor, f): (MemberActor, TransferForm) = match posted(&state, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let req = super::TransferRequest {
        destination: v(&f.destination),
        reason: v(&f.reason),
    };
    match routes::request_transfer(&state, &actor, &req).await {
        Ok(done) => {
            render_me(
                &state,
                actor,
                Some(done.message),
                &FormErrors::default(),
                String::new(),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => render_me(&state, actor, None, &errors_of(&e), String::new(), e.status).await,
    }
}
