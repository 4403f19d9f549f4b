//! 用户激活 and 忘记密码: pages for people without a session. Activation shows the new
//! authenticator as a QR code (SVG as a data: image, which the CSP allows) and asks for the
//! first code; password reset goes through the registered mobile.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Extension;
use base64::Engine as _;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::{html_response, FormErrors};
use crate::account::activation::{self, Activate, ConfirmTotp, ResetPassword, SmsPurpose};
use crate::error::ApiError;
use crate::state::{AppState, ConnInfo};

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/activate", get(activate_page).post(activate_submit))
        .route("/activate/sms", post(activate_sms))
        .route("/activate/totp", post(totp_submit))
        .route("/password/forgot", get(forgot_page).post(forgot_submit))
        .route("/password/forgot/sms", post(forgot_sms))
}

fn shell(title: &str, status: StatusCode, body: Markup) -> Response {
    html_response(
        status,
        html! {
            (DOCTYPE)
            html lang="zh-CN" {
                (super::head(title, false))
                body.login-body {
                    main.login-box {
                        h1 { (title) }
                        (body)
                        p.hint { a href="/login" { "返回登录" } }
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

fn status_of(e: &ApiError) -> StatusCode {
    e.status
}

#[derive(Deserialize, Default)]
struct ActivateForm {
    mobile: Option<String>,
    sms_code: Option<String>,
    activation_code: Option<String>,
    name: Option<String>,
    id_number: Option<String>,
    password: Option<String>,
    password2: Option<String>,
}

fn activate_form(
    f: &ActivateForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    shell(
        "用户激活",
        status,
        html! {
            p.hint { "请填写安全员授权时登记的信息。先获取短信验证码，再填写授权码并设置密码。" }
            @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
            (errors.banner())
            form method="post" action="/activate/sms" {
                (input("mobile", "手机号", "text", &v(&f.mobile), errors))
                button type="submit" { "获取短信验证码" }
            }
            form #activate-form method="post" action="/activate" {
                input type="hidden" name="mobile" value=(v(&f.mobile));
                (input("sms_code", "短信验证码", "text", &v(&f.sms_code), errors))
                (input("activation_code", "授权码", "text", &v(&f.activation_code), errors))
                (input("name", "姓名", "text", &v(&f.name), errors))
                (input("id_number", "公民身份证号", "text", &v(&f.id_number), errors))
                (input("password", "新密码（8-18位，含大写字母、小写字母和数字）", "password", "", errors))
                (input("password2", "再次输入新密码", "password", "", errors))
                button.primary type="submit" { "激活" }
            }
        },
    )
}

async fn activate_page() -> Response {
    activate_form(
        &ActivateForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
}

fn client_of(conn: &ConnInfo) -> String {
    conn.client_addr.ip().to_string()
}

async fn activate_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: ActivateForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let mobile = f.mobile.clone().unwrap_or_default();
    match activation::request_sms(&state, &client_of(&conn), &mobile, SmsPurpose::Activation).await
    {
        Ok(sent) => activate_form(
            &f,
            &FormErrors::default(),
            Some(&sent.message),
            StatusCode::OK,
        ),
        Err(e) => activate_form(&f, &FormErrors::from_api(&e), None, status_of(&e)),
    }
}

/// The QR code of an `otpauth://` URI as a data: URL of an SVG image.
pub fn qr_data_url(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

fn totp_page(
    account_id: &str,
    secret: &str,
    uri: &str,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    shell(
        "绑定验证器",
        status,
        html! {
            p.hint { "密码已设置。请用手机上的验证器（身份验证器）扫描下面的二维码，然后输入验证器显示的六位动态码完成绑定。完成绑定后才能登录。" }
            (errors.banner())
            @if let Some(src) = qr_data_url(uri) {
                p { img.qr src=(src) alt="验证器二维码" width="220" height="220"; }
            }
            p { "无法扫码时可手工输入密钥：" code { (secret) } }
            form method="post" action="/activate/totp" {
                input type="hidden" name="account_id" value=(account_id);
                input type="hidden" name="secret" value=(secret);
                input type="hidden" name="uri" value=(uri);
                (input("code", "六位动态码", "text", "", errors))
                button.primary type="submit" { "完成绑定" }
            }
        },
    )
}

async fn activate_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: ActivateForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if f.password != f.password2 {
        let e = ApiError::field("password2", "两次输入的密码不一致");
        return activate_form(&f, &FormErrors::from_api(&e), None, StatusCode::BAD_REQUEST);
    }
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let req = Activate {
        mobile: v(&f.mobile),
        sms_code: v(&f.sms_code),
        activation_code: v(&f.activation_code),
        name: v(&f.name),
        id_number: v(&f.id_number),
        password: v(&f.password),
    };
    match activation::activate(&state, &client_of(&conn), &req).await {
        Ok(done) => totp_page(
            &done.account_id,
            &done.totp.secret,
            &done.totp.otpauth_uri,
            &FormErrors::default(),
            StatusCode::OK,
        ),
        Err(e) => activate_form(&f, &FormErrors::from_api(&e), None, status_of(&e)),
    }
}

#[derive(Deserialize, Default)]
struct TotpForm {
    account_id: Option<String>,
    secret: Option<String>,
    uri: Option<String>,
    code: Option<String>,
}

async fn totp_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: TotpForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let req = ConfirmTotp {
        account_id: v(&f.account_id),
        code: v(&f.code),
    };
    match activation::confirm_totp(&state, &client_of(&conn), &req).await {
        Ok(()) => shell(
            "激活完成",
            StatusCode::OK,
            html! {
                div.alert.alert-info role="status" { "账号已激活，验证器已绑定。请使用身份证号、密码和验证器中的六位动态码登录。" }
                p { a.primary href="/login" { "去登录" } }
            },
        ),
        Err(e) => totp_page(
            &v(&f.account_id),
            &v(&f.secret),
            &v(&f.uri),
            &FormErrors::from_api(&e),
            status_of(&e),
        ),
    }
}

#[derive(Deserialize, Default)]
struct ForgotForm {
    mobile: Option<String>,
    sms_code: Option<String>,
    id_number: Option<String>,
    new_password: Option<String>,
    new_password2: Option<String>,
}

fn forgot_form(
    f: &ForgotForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    shell(
        "忘记密码",
        status,
        html! {
            p.hint { "通过登记的手机号重新设置密码。验证器不变；如手机号已变更或验证器丢失，请联系安全员重置账号。" }
            @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
            (errors.banner())
            form method="post" action="/password/forgot/sms" {
                (input("mobile", "手机号", "text", &v(&f.mobile), errors))
                button type="submit" { "获取短信验证码" }
            }
            form method="post" action="/password/forgot" {
                input type="hidden" name="mobile" value=(v(&f.mobile));
                (input("sms_code", "短信验证码", "text", &v(&f.sms_code), errors))
                (input("id_number", "公民身份证号", "text", &v(&f.id_number), errors))
                (input("new_password", "新密码（8-18位，含大写字母、小写字母和数字）", "password", "", errors))
                (input("new_password2", "再次输入新密码", "password", "", errors))
                button.primary type="submit" { "重设密码" }
            }
        },
    )
}

#[derive(Deserialize, Default)]
struct ForgotQuery {}

async fn forgot_page(Query(_q): Query<ForgotQuery>) -> Response {
    forgot_form(
        &ForgotForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
}

async fn forgot_sms(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: ForgotForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    let mobile = f.mobile.clone().unwrap_or_default();
    match activation::request_sms(&state, &client_of(&conn), &mobile, SmsPurpose::Password).await {
        Ok(sent) => forgot_form(
            &f,
            &FormErrors::default(),
            Some(&sent.message),
            StatusCode::OK,
        ),
        Err(e) => forgot_form(&f, &FormErrors::from_api(&e), None, status_of(&e)),
    }
}

async fn forgot_submit(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    body: axum::body::Bytes,
) -> Response {
    let f: ForgotForm = serde_html_form::from_bytes(&body).unwrap_or_default();
    if f.new_password != f.new_password2 {
        let e = ApiError::field("new_password2", "两次输入的密码不一致");
        return forgot_form(&f, &FormErrors::from_api(&e), None, StatusCode::BAD_REQUEST);
    }
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let req = ResetPassword {
        mobile: v(&f.mobile),
        sms_code: v(&f.sms_code),
        id_number: v(&f.id_number),
        new_password: v(&f.new_password),
    };
    match activation::reset_password(&state, &client_of(&conn), &req).await {
        Ok(()) => shell(
            "密码已重设",
            StatusCode::OK,
            html! { div.alert.alert-info role="status" { "密码已重设，原有登录会话均已结束。请使用新密码登录。" } },
        ),
        Err(e) => forgot_form(&f, &FormErrors::from_api(&e), None, status_of(&e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn qr_codes_are_svg_data_urls() {
        let url = super::qr_data_url("otpauth://totp/dangjian:x?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert!(url.starts_with("data:image/svg+xml;base64,"));
    }
}
