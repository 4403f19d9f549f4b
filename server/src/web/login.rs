//! 登录 and 退出: the sign-in page (ID number + password + six-digit code) and sign-out.

use axum::extract::{Query, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Extension;
use maud::{html, DOCTYPE};
use serde::Deserialize;

use super::{html_response, CsrfForm, FormErrors};
use crate::account::routes::{authenticate, SignIn};
use crate::account::session;
use crate::audit::{self, Event, Who};
use crate::state::{AppState, ConnInfo};

const LOGIN_CSRF_COOKIE: &str = "dj_login";
/// The help page on the USB-key agent.
const HELP_AGENT: &str = super::help::AGENT_PATH;

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginQuery {
    expired: Option<String>,
    signed_out: Option<String>,
}

#[derive(Deserialize, Default)]
struct LoginForm {
    id_number: Option<String>,
    password: Option<String>,
    code: Option<String>,
    login_token: Option<String>,
}

fn login_cookie(value: &str, secure: bool) -> String {
    format!(
        "{LOGIN_CSRF_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|pair| {
            pair.trim()
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
    })
}

fn render(
    state: &AppState,
    id_number: &str,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
    card_help: bool,
) -> Response {
    let token = session::random_token();
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (super::head("登录", false))
            body.login-body {
                main.login-box {
                    h1 { "党员信息管理系统" }
                    p.hint #login-hint {
                        "党支部、党总支管理员用身份证号、密码和验证器中的六位动态码登录；"
                        "县级及以上党委和有审批权限的基层党委的管理员、安全保密员、审计员须通过 USB Key 代理登录（"
                        a href=(HELP_AGENT) { "使用说明" } "）。"
                    }
                    @if let Some(n) = notice { div.alert.alert-info #login-notice role="status" { (n) } }
                    (errors.banner())
                    @if card_help {
                        div.alert.alert-info #card-help role="note" {
                            "USB Key 代理在插有 USB Key 的电脑上运行，登录后自动打开浏览器。"
                            a href=(HELP_AGENT) { "下载与使用说明" }
                        }
                    }
                    form #login-form method="post" action="/login" autocomplete="off" {
                        input type="hidden" name="login_token" value=(token);
                        div.field.has-error[errors.fields.contains_key("id_number")] {
                            label for="id_number" { span.req { "*" } "身份证号" }
                            input #id_number type="text" name="id_number" value=(id_number) maxlength="18" autofocus;
                            (errors.at("id_number"))
                        }
                        div.field.has-error[errors.fields.contains_key("password")] {
                            label for="password" { span.req { "*" } "密码" }
                            input #password type="password" name="password" maxlength="18";
                            (errors.at("password"))
                        }
                        div.field.has-error[errors.fields.contains_key("code")] {
                            label for="code" { span.req { "*" } "六位动态码" }
                            input #code type="text" name="code" inputmode="numeric" maxlength="6" pattern="[0-9]{6}";
                            (errors.at("code"))
                        }
                        button.primary type="submit" { "登录" }
                    }
                    p.hint { a href="/activate" { "用户激活" } " · " a href="/password/forgot" { "忘记密码" } }
                    p.hint #member-links { "党员：" a href="/register" { "党员注册" } " · " a href="/me/login" { "党员登录" } }
                }
            }
        }
    };
    let mut res = html_response(status, markup);
    if let Ok(v) = HeaderValue::from_str(&login_cookie(&token, state.config.secure_cookies)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let notice = if q.signed_out.is_some() {
        Some("已退出。如需继续使用，请重新登录。")
    } else {
        q.expired
            .is_some()
            .then_some("登录已过期或已退出，请重新登录")
    };
    render(
        &state,
        "",
        &FormErrors::default(),
        notice,
        StatusCode::OK,
        false,
    )
}

async fn login_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: LoginForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let id_number = form.id_number.clone().unwrap_or_default();
    // Double-submit check: the token in the form must match the cookie set with the page.
    let expected = cookie_value(&headers, LOGIN_CSRF_COOKIE);
    if expected.is_none() || expected != form.login_token {
        let errors = FormErrors {
            general: Some("登录页面已失效，请重新输入后登录".to_string()),
            ..FormErrors::default()
        };
        return render(
            &state,
            &id_number,
            &errors,
            None,
            StatusCode::FORBIDDEN,
            false,
        );
    }
    let sign_in = SignIn {
        id_number: id_number.clone(),
        password: form.password.unwrap_or_default(),
        code: form.code.unwrap_or_default(),
    };
    let client = conn.client_addr.ip().to_string();
    match authenticate(&state, &client, &sign_in).await {
        Ok(signed) => {
            let mut res = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&session::session_cookie(
                &signed.token,
                state.config.secure_cookies,
            )) {
                res.headers_mut().append(SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            let mut errors = FormErrors::from_api(&e);
            if e.field.is_none() {
                errors.general = Some(e.message.clone());
            } else {
                errors.general = None;
            }
            if e.code == "bad_credentials" {
                errors
                    .fields
                    .insert("password".to_string(), e.message.clone());
                errors.general = None;
            }
            let card_help = e.code == "card_required";
            render(&state, &id_number, &errors, None, e.status, card_help)
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(state): State<AppState>, form: CsrfForm<Empty>) -> Response {
    let actor = form.actor;
    let result: Result<(), crate::error::ApiError> = async {
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
        Ok(())
    }
    .await;
    if let Err(e) = result {
        return super::error_page(Some(&actor), e);
    }
    let mut res = Redirect::to("/login?signed_out=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(state.config.secure_cookies)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}
