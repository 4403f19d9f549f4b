//! Server-rendered pages in Simplified Chinese: sign-in, the organisation tree and work area,
//! organisations, units and members. Pages call the same domain operations as the JSON API;
//! every form carries the session's CSRF token; templates (maud) escape by default; scripts
//! are static files only (the Content-Security-Policy forbids inline script).

pub mod activation;
pub mod audit;
pub mod help;
pub mod login;
pub mod members;
pub mod orgs;
pub mod password;
pub mod photo;
pub mod print;
pub mod security;
pub mod units;

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::access::{Actor, Role};
use crate::account::session;
use crate::error::ApiError;
use crate::state::{AppState, ConnInfo};

/// The page routes (not part of the JSON API).
pub fn router() -> Router<AppState> {
    routes().into_router()
}

/// Every page path, for the authorization-matrix test: the table the router is built from.
pub fn page_paths() -> Vec<&'static str> {
    routes().paths
}

/// A router that remembers the paths it serves, so that every page route can be enumerated.
pub struct PageRouter {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Default for PageRouter {
    fn default() -> Self {
        Self::new()
    }
}

impl PageRouter {
    pub fn new() -> PageRouter {
        PageRouter {
            router: Router::new(),
            paths: Vec::new(),
        }
    }

    pub fn route(
        mut self,
        path: &'static str,
        method_router: axum::routing::MethodRouter<AppState>,
    ) -> PageRouter {
        self.paths.push(path);
        self.router = self.router.route(path, method_router);
        self
    }

    pub fn merge(mut self, other: PageRouter) -> PageRouter {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

fn routes() -> PageRouter {
    PageRouter::new()
        .route("/", get(home))
        .route("/static/app.js", get(app_js))
        .route("/static/app.css", get(app_css))
        .merge(login::router())
        .merge(orgs::router())
        .merge(units::router())
        .merge(members::router())
        .merge(crate::approval::pages::router())
        .merge(crate::transfer::pages::router())
        .merge(crate::transfer::records::pages())
        .merge(crate::quality::pages::pages())
        .merge(crate::query::pages::router())
        .merge(photo::router())
        .merge(security::router())
        .merge(activation::router())
        .merge(audit::router())
        .merge(password::router())
        .merge(help::router())
        .merge(crate::import::pages::router())
        .merge(crate::stats::pages::pages())
        .merge(crate::forms::pages())
        .merge(crate::personal::pages::router())
}

/// The Content-Security-Policy of every page: no inline script, nothing from elsewhere.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn app_js() -> Response {
    static_file(
        include_str!("../../static/app.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn app_css() -> Response {
    static_file(
        include_str!("../../static/app.css"),
        "text/css; charset=utf-8",
    )
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Where each role starts: admins on their organisation — a branch admin on its 党员信息 tab,
/// the work a branch has — auditors on the audit log, security officers on the grants.
async fn home(
    axum::extract::State(state): axum::extract::State<AppState>,
    PageActor(actor): PageActor,
) -> Response {
    match actor.role {
        Role::Admin => {
            let branch = crate::org::routes::load(&state.db, &actor.org_id)
                .await
                .ok()
                .and_then(|o| o.category())
                .is_some_and(crate::org::rules::Category::is_branch);
            let tab = if branch { "?tab=members" } else { "" };
            Redirect::to(&format!("/orgs/{}{tab}", actor.org_id)).into_response()
        }
        Role::Auditor => Redirect::to("/audit").into_response(),
        Role::Security => Redirect::to("/security/grants").into_response(),
    }
}

/// The signed-in actor of a page request; without a session, a redirect to the sign-in page.
pub struct PageActor(pub Actor);

impl FromRequestParts<AppState> for PageActor {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let conn = parts.extensions.get::<ConnInfo>();
        let client = conn
            .map(|c| c.client_addr.ip().to_string())
            .unwrap_or_default();
        let peer = conn.and_then(|c| c.peer_cert.clone());
        let Some((token, _)) = session::token_from_parts(parts) else {
            return Err(Redirect::to("/login").into_response());
        };
        match session::load_actor(&state.db, &token, &client, peer.as_ref()).await {
            Ok(actor) => {
                crate::audit::refusals::note_actor(&parts.extensions, &actor);
                // A one-time password (`init`) is changed before anything else.
                if actor.must_change_password
                    && !matches!(parts.uri.path(), password::PATH | "/logout" | "/logout/all")
                {
                    return Err(Redirect::to(password::PATH).into_response());
                }
                // The header's role switcher lists the account's live grants.
                if let Ok(grants) =
                    crate::account::store::grants_of(&state.db, &actor.account_id).await
                {
                    security::remember_grants(&actor.account_id, grants);
                }
                Ok(PageActor(actor))
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                Err(Redirect::to("/login?expired=1").into_response())
            }
            Err(e) => Err(error_page(None, e)),
        }
    }
}

#[derive(Deserialize, Default)]
struct CsrfField {
    csrf: Option<String>,
}

/// A posted form from a signed-in actor whose `csrf` field matches the session's token.
pub struct CsrfForm<T> {
    pub actor: Actor,
    pub form: T,
    /// The posted body, for a second look with another shape (fields beside a shared form).
    pub raw: axum::body::Bytes,
}

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 256 * 1024;

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let PageActor(actor) = PageActor::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                error_page(
                    Some(&actor),
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "提交的内容过大",
                    ),
                )
            })?;
        let token: CsrfField = serde_html_form::from_bytes(&bytes).unwrap_or_default();
        if token.csrf.as_deref() != Some(actor.csrf_token.as_str()) {
            return Err(error_page(
                Some(&actor),
                ApiError::forbidden("表单已失效（防伪令牌不符），请返回刷新页面后重新提交"),
            ));
        }
        let form = serde_html_form::from_bytes(&bytes).map_err(|e| {
            error_page(
                Some(&actor),
                ApiError::bad_request(format!("表单内容格式不正确：{e}")),
            )
        })?;
        Ok(CsrfForm {
            actor,
            form,
            raw: bytes,
        })
    }
}

/// The hidden CSRF field every state-changing form carries.
pub fn csrf_field(actor: &Actor) -> Markup {
    html! { input type="hidden" name="csrf" value=(actor.csrf_token); }
}

/// Field errors of a refused form: field name → message, plus a general message.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    pub fields: HashMap<String, String>,
    /// The fields at fault in form order, with their messages (the banner lists them).
    pub order: Vec<(String, String)>,
    pub general: Option<String>,
}

impl FormErrors {
    /// Places every field error of an API error next to its field and lists them in the
    /// banner; an error about no field goes to the top of the form.
    pub fn from_api(e: &ApiError) -> FormErrors {
        let mut errors = FormErrors::default();
        let listed: Vec<(String, String)> = if e.errors.is_empty() {
            e.field
                .iter()
                .map(|f| (f.clone(), e.message.clone()))
                .collect()
        } else {
            e.errors
                .iter()
                .map(|f| (f.field.clone(), f.message.clone()))
                .collect()
        };
        if listed.is_empty() {
            errors.general = Some(e.message.clone());
        }
        for (field, message) in listed {
            errors
                .fields
                .entry(field.clone())
                .or_insert(message.clone());
            errors.order.push((field, message));
        }
        errors
    }

    /// The message next to a field, if any.
    pub fn at(&self, field: &str) -> Markup {
        html! {
            @if let Some(m) = self.fields.get(field) {
                div.field-error id={"err-" (field)} data-field=(field) role="alert" { (m) }
            }
        }
    }

    /// The banner above the form: the general error, or every field at fault, each a link
    /// to its field (app.js focuses and scrolls to the first).
    pub fn banner(&self) -> Markup {
        html! {
            @if let Some(m) = &self.general {
                div.alert.alert-error role="alert" { (m) }
            } @else if !self.order.is_empty() {
                div.alert.alert-error.form-problems role="alert" data-first=(self.order[0].0) {
                    "提交的信息有 " (self.order.len()) " 处需要修改，请按提示修改后重新保存："
                    ul {
                        @for (field, message) in &self.order {
                            li { a href={"#" (field)} data-focus=(field) { (message) } }
                        }
                    }
                }
            }
        }
    }

    pub fn invalid(&self, field: &str) -> Option<&'static str> {
        self.fields.contains_key(field).then_some("true")
    }

    pub fn described_by(&self, field: &str) -> Option<String> {
        self.fields
            .contains_key(field)
            .then(|| format!("err-{field}"))
    }
}

/// An action that cannot succeed now: shown greyed out, the reason as its title (and read out
/// by screen readers), never as a link that leads to a refusal.
pub fn disabled_action(text: &str, reason: &str) -> Markup {
    html! {
        span.button.disabled aria-disabled="true" title=(reason) data-reason=(reason) { (text) }
    }
}

/// A labelled text input with its error slot. `required` marks the label with `*`.
pub fn text_field(
    name: &str,
    label: &str,
    value: &str,
    required: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { @if required { span.req { "*" } } (label) }
            input type="text" id=(name) name=(name) value=(value)
                aria-invalid=[errors.invalid(name)] aria-describedby=[errors.described_by(name)];
            (errors.at(name))
        }
    }
}

/// What a date field takes before app.js normalises it: YYYY-MM-DD, 2024年5月1日, 2024.5.1,
/// 2024/5/1 or 20240501.
const DATE_PATTERN: &str = r"\d{4}([\-.\/年]\d{1,2}[\-.\/月]\d{1,2}日?|\d{4})";

/// A labelled date input with its error slot.
pub fn date_field(
    name: &str,
    label: &str,
    value: &str,
    required: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { @if required { span.req { "*" } } (label) }
            // Text, not type=date: a date input shows and takes the browser's locale order
            // (mm/dd/yyyy in an English browser). app.js normalises 2024年5月1日, 2024.5.1 and
            // 20240501 to YYYY-MM-DD and adds a picker.
            input.date type="text" id=(name) name=(name) value=(value) inputmode="numeric"
                placeholder="YYYY-MM-DD" maxlength="11" autocomplete="off" data-date="1"
                pattern=(DATE_PATTERN) title="日期格式：YYYY-MM-DD，如 2024-05-01"
                aria-invalid=[errors.invalid(name)] aria-describedby=[errors.described_by(name)];
            (errors.at(name))
        }
    }
}

/// A labelled select of (code, label) options with its error slot.
pub fn select_field(
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: &str,
    required: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { @if required { span.req { "*" } } (label) }
            select id=(name) name=(name)
                aria-invalid=[errors.invalid(name)] aria-describedby=[errors.described_by(name)] {
                @if !required { option value="" { "（请选择）" } }
                @for (code, text) in options {
                    option value=(code) selected[code == selected] { (text) }
                }
            }
            (errors.at(name))
        }
    }
}

/// Code tables as select options.
pub fn options(table: &[(&str, &str)]) -> Vec<(String, String)> {
    table
        .iter()
        .map(|(c, l)| (c.to_string(), l.to_string()))
        .collect()
}

/// The role line of the header: 管理员（三级） etc.
pub fn role_text(actor: &Actor) -> String {
    match (actor.role, actor.tier) {
        (Role::Admin, Some(t)) => format!(
            "管理员（{}级）",
            ["", "一", "二", "三"].get(t as usize).unwrap_or(&"")
        ),
        (role, _) => role.label().to_string(),
    }
}

/// The whole page: header with the person, role and scope; the tree on the left; breadcrumbs
/// and the work area on the right.
/// The `<head>` of every page: charset, viewport, title, the style sheet and (on pages with
/// forms, the tree or printing) the script.
pub fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " - 党员信息管理系统" }
            link rel="stylesheet" href="/static/app.css";
            @if script { script src="/static/app.js" defer {} }
        }
    }
}

pub fn page(
    actor: &Actor,
    title: &str,
    crumbs: &[(String, String)],
    current_org: Option<&str>,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="zh-CN" {
            (head(title, true))
            body {
                header.top {
                    div.brand { "党员信息管理系统" }
                    div.who {
                        span.person { "当前用户：" (actor.name) }
                        span.role { "角色：" (role_text(actor)) }
                        span.scope { "管理范围：" (actor.org_name) }
                        @if actor.role == Role::Auditor { a.nav href="/audit" { "安全审计" } }
                        (security::role_switcher(actor))
                        a.nav #change-password href=(password::PATH) { "修改密码" }
                        form.inline method="post" action="/logout" {
                            (csrf_field(actor))
                            button.link type="submit" { "退出" }
                        }
                        form.inline method="post" action="/logout/all" {
                            (csrf_field(actor))
                            button.link type="submit" { "退出所有设备" }
                        }
                    }
                }
                // The business menu of admins: a bar of its own below the header, so that the
                // header keeps the account's controls on one line at 1366 pixels.
                @if actor.role == Role::Admin {
                    nav.menu {
                        a.nav #approvals-link href="/approvals" {
                            "维护审批" span #approvals-badge.badge.count hidden {}
                        }
                        a.nav #history-link href="/history?reason=exit" { "历史党员" }
                        a.nav #transfers-link href="/transfers/lists" { "组织关系转接" }
                        a.nav #query-link href="/query/members" { "综合查询" }
                        a.nav #stats-link href="/stats" { "党员统计" }
                        a.nav #quality-link href="/quality" { "信息质量管控" }
                        a.nav #import-link href="/import/members" { "导入汇总表" }
                    }
                }
                @if let Some(notice) = crate::card::notice_for(&actor.session_token_hash) {
                    div.alert.alert-warn.cert-expiry role="status" { (notice) }
                }
                div.main {
                    @if actor.role == Role::Admin {
                        aside.tree-panel {
                            div.tree-title { "党组织机构树" }
                            input #tree-search type="search" placeholder="按名称查找党组织" autocomplete="off";
                            ul #tree-search-results.search-results hidden {}
                            ul #tree.tree data-root=(actor.org_id) data-root-name=(actor.org_name)
                                data-current=(current_org.unwrap_or("")) {}
                            ul #tree-menu.context-menu hidden {}
                        }
                    }
                    section.work {
                        nav.crumbs aria-label="位置" {
                            @for (i, (href, text)) in crumbs.iter().enumerate() {
                                @if i > 0 { span.sep { "›" } }
                                @if href.is_empty() { span { (text) } } @else { a href=(href) { (text) } }
                            }
                        }
                        (print::header(actor, title, print_org(actor, crumbs)))
                        (body)
                    }
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

/// The organisation a printout names: the deepest organisation in the breadcrumbs, else the
/// actor's scope.
fn print_org<'a>(actor: &'a Actor, crumbs: &'a [(String, String)]) -> &'a str {
    crumbs
        .iter()
        .rev()
        .find(|(href, _)| href.starts_with("/orgs/"))
        .map(|(_, text)| text.as_str())
        .unwrap_or(&actor.org_name)
}

/// [`page`] answered with `status` (a form re-rendered after a 400 or 409, say).
pub fn page_with_status(
    status: StatusCode,
    actor: &Actor,
    title: &str,
    crumbs: &[(String, String)],
    current_org: Option<&str>,
    body: Markup,
) -> Response {
    let mut res = page(actor, title, crumbs, current_org, body);
    *res.status_mut() = status;
    res
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, Html(markup.into_string())).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// A page that explains a refusal, with a way back.
pub fn error_page(actor: Option<&Actor>, e: ApiError) -> Response {
    let title = match e.status.as_u16() {
        403 => "无权操作",
        404 => "未找到",
        409 => "无法办理",
        _ => "操作未成功",
    };
    let body = html! {
        div.panel {
            h2 { (title) }
            div.alert.alert-error role="alert" { (e.message) }
            p { a href="/" data-back="1" { "返回上一页" } " · " a href="/" { "回到首页" } }
        }
    };
    let mut res = match actor {
        Some(a) => page(a, title, &[], None, body),
        None => help::plain_page(e.status, title, body),
    };
    *res.status_mut() = e.status;
    if e.out_of_scope {
        res.extensions_mut().insert(crate::error::OutOfScope);
    }
    res
}

/// Errors on page paths (everything but `/api/…` and the CRL) are Chinese pages with a way
/// home, never the API's JSON or a framework's plain text: an unknown path, a refused
/// extractor, a wrong method. The status and the response's extensions are kept.
pub async fn error_pages(req: Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if path.starts_with("/api/")
        || path == crate::tls::CRL_URL_PATH
        || !(status.is_client_error() || status.is_server_error())
    {
        return res;
    }
    let html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let from_json = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string));
    let message = from_json.unwrap_or_else(|| {
        match status.as_u16() {
            404 => "您访问的页面不存在。",
            405 => "该页面不能以这种方式访问，请从页面上的链接或按钮进入。",
            413 => "提交的内容过大。",
            400..=499 => "请求有误，请返回后重试。",
            _ => "服务器暂时无法处理该请求，请稍后重试。",
        }
        .to_string()
    });
    let title = match status.as_u16() {
        404 => "页面不存在",
        403 => "无权操作",
        405 => "访问方式不正确",
        400..=499 => "请求有误",
        _ => "服务器错误",
    };
    let page = help::plain_page(
        status,
        title,
        html! {
            div.panel #error-page {
                h2 { (title) }
                div.alert.alert-error role="alert" { (message) }
                p {
                    "请检查地址是否正确，或"
                    a #error-home href="/" { "回到首页" }
                    "重新进入。"
                }
            }
        },
    );
    let (new_parts, new_body) = page.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in new_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, new_body)
}

/// Renders a handler's outcome: the page, or the refusal.
pub fn or_error(actor: &Actor, r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| error_page(Some(actor), e))
}

/// Breadcrumbs from the actor's scope organisation down to `org_id`.
pub async fn org_crumbs(
    state: &AppState,
    actor: &Actor,
    org_id: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut chain = Vec::new();
    let mut next = Some(org_id.to_string());
    while let Some(id) = next {
        let Some(org) = crate::org::store::get(state.db.read(), &id).await? else {
            break;
        };
        chain.push((format!("/orgs/{}", org.id), org.short_name_or_name()));
        if org.id == actor.org_id || chain.len() > 12 {
            break;
        }
        next = org.parent_id.clone();
    }
    chain.reverse();
    Ok(chain)
}
