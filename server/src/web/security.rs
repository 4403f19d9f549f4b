//! 授权管理: the security officer's pages (grants in scope, grant form, revoke, unlock, reset),
//! the role switcher of the page header (角色切换) and 退出所有设备.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{html, Markup};
use serde::Deserialize;

use super::{csrf_field, or_error, page, text_field, CsrfForm, FormErrors, PageActor};
use crate::access::{self, Actor, Role};
use crate::account::grants::{self, GrantQuery, NewGrant};
use crate::account::session;
use crate::account::store::GrantView;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/security/grants", get(grants_page))
        .route(
            "/security/grants/new",
            get(new_grant_page).post(new_grant_submit),
        )
        .route("/security/grants/{id}/revoke", post(revoke))
        .route("/security/accounts/{id}/unlock", post(unlock))
        .route("/security/accounts/{id}/reset", post(reset))
        .route("/security/certificates", get(certificates_page))
        .route(
            "/security/certificates/{serial}/revoke",
            post(revoke_certificate),
        )
        .route("/security/grants/{id}/enrolment-code", post(enrolment_code))
        .route("/role", post(switch_role))
        .route("/logout/all", post(logout_all))
}

// ---- the role switcher of the header ----------------------------------------------------

type Remembered = (Instant, Vec<GrantView>);

fn cache() -> &'static Mutex<HashMap<String, Remembered>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Remembered>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Remembers the live grants of an account for the header of the page being rendered (the
/// page extractor loads them on every page request; entries are dropped after a minute).
pub fn remember_grants(account_id: &str, grants: Vec<GrantView>) {
    if let Ok(mut c) = cache().lock() {
        let now = Instant::now();
        c.retain(|_, (at, _)| now.duration_since(*at) < Duration::from_secs(60));
        c.insert(account_id.to_string(), (now, grants));
    }
}

fn grant_label(g: &GrantView) -> String {
    let role = match (g.role, g.tier) {
        (Role::Admin, Some(t)) => format!(
            "管理员（{}级）",
            ["", "一", "二", "三"].get(t as usize).unwrap_or(&"")
        ),
        (r, _) => r.label().to_string(),
    };
    format!(
        "{} · {}{}",
        g.org_name,
        role,
        if g.is_default { "（默认）" } else { "" }
    )
}

/// The header's 角色切换 form, when the account holds several grants.
pub fn role_switcher(actor: &Actor) -> Markup {
    let grants = cache()
        .lock()
        .ok()
        .and_then(|c| c.get(&actor.account_id).map(|(_, g)| g.clone()))
        .unwrap_or_default();
    html! {
        @if grants.len() > 1 {
            form.inline.role-switch method="post" action="/role" {
                (csrf_field(actor))
                label for="grant_id" { "角色切换：" }
                select #grant_id name="grant_id" {
                    @for g in &grants {
                        option value=(g.grant_id) selected[g.grant_id == actor.grant_id] { (grant_label(g)) }
                    }
                }
                button.link type="submit" { "切换" }
            }
        }
    }
}

#[derive(Deserialize)]
struct SwitchForm {
    grant_id: String,
}

async fn switch_role(State(state): State<AppState>, form: CsrfForm<SwitchForm>) -> Response {
    let actor = form.actor;
    match grants::switch_grant(&state, &actor, &form.form.grant_id).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout_all(State(state): State<AppState>, form: CsrfForm<Empty>) -> Response {
    let actor = form.actor;
    if let Err(e) = grants::sign_out_everywhere(&state, &actor).await {
        return super::error_page(Some(&actor), e);
    }
    let mut res = Redirect::to("/login?signed_out=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(state.config.secure_cookies)) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

// ---- 授权管理 --------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    org_id: Option<String>,
    page: Option<i64>,
    q: Option<String>,
    notice: Option<String>,
}

fn notice_text(n: &str) -> Option<&'static str> {
    Some(match n {
        "created" => "授权已创建，授权码已通过短信发送给被授权人（7日内有效）",
        "created_active" => "授权已创建，被授权人已激活，可通过角色切换使用新授权",
        "revoked" => "授权已撤销，该授权的登录会话已结束",
        "unlocked" => "账号已解锁",
        "reset" => "账号已重置，新的授权码已通过短信发送给本人",
        "enrolment" => "证书申领码已通过短信发送给本人（72小时内有效，仅可使用一次）",
        "cert_revoked" => "证书已吊销，新的吊销列表已发布，该证书的登录会话已结束",
        _ => return None,
    })
}

fn role_text(role: Role, tier: Option<u8>) -> String {
    match (role, tier) {
        (Role::Admin, Some(t)) => format!(
            "管理员（{}级）",
            ["", "一", "二", "三"].get(t as usize).unwrap_or(&"")
        ),
        (r, _) => r.label().to_string(),
    }
}

fn crumbs() -> Vec<(String, String)> {
    vec![("/security/grants".to_string(), "授权管理".to_string())]
}

async fn grants_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<ListQuery>,
    Query(print): Query<super::print::PrintQuery>,
) -> Response {
    let printing = print.on();
    let result = async {
        let list = if printing {
            let (state, actor, org_id) = (&state, &actor, &q.org_id);
            super::print::all_rows(|p| async move {
                grants::list_grants(
                    state,
                    actor,
                    &GrantQuery {
                        org_id: org_id.clone(),
                        page: p.page,
                        per_page: p.per_page,
                    },
                )
                .await
            })
            .await?
        } else {
            grants::list_grants(
                &state,
                &actor,
                &GrantQuery {
                    org_id: q.org_id.clone(),
                    page: q.page,
                    per_page: Some(20),
                },
            )
            .await?
        };
        let print_href = format!(
            "/security/grants?print=1{}",
            q.org_id
                .as_deref()
                .map(|o| format!("&org_id={}", super::units::enc(o)))
                .unwrap_or_default()
        );
        let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let orgs = match search {
            Some(s) => crate::org::store::search(&state.db, &actor.org_code, s, 20).await?,
            None => Vec::new(),
        };
        let pages = (list.total + list.per_page - 1) / list.per_page;
        let body = html! {
            @if let Some(n) = q.notice.as_deref().and_then(notice_text) {
                div.alert.alert-info role="status" { (n) }
            }
            div.panel {
                h2 { "新增授权" }
                form method="get" action="/security/grants" {
                    label for="q" { "查找授权范围党组织：" }
                    input #q type="search" name="q" value=(search.unwrap_or("")) placeholder="输入党组织名称";
                    button type="submit" { "查找" }
                    " "
                    a href=(format!("/security/grants/new?org_id={}", actor.org_id)) { "授权到本级（" (actor.org_name) "）" }
                }
                @if search.is_some() {
                    @if orgs.is_empty() { p { "没有找到名称包含该文字的党组织。" } }
                    ul.search-results {
                        @for o in &orgs {
                            li { (o.name) " "
                                a href=(format!("/security/grants/new?org_id={}", o.id)) { "授权" } }
                        }
                    }
                }
            }
            div.panel {
                h2 { "授权管理" }
                p { "共 " (list.total) " 条授权（管理范围：" (actor.org_name) "） · "
                    a href="/security/certificates" { "USB Key 证书管理" } }
                @if printing {
                    (super::print::list_head("授权名单", list.items.len(), list.total))
                } @else if !list.items.is_empty() {
                    div.list-tools { (super::print::button(&print_href)) }
                }
                table.list {
                    thead { tr {
                        th { "姓名" } th { "身份证号" } th { "角色" } th { "授权范围" } th { "状态" } th.ops { "操作" }
                    } }
                    tbody {
                        @for g in &list.items {
                            tr data-grant=(g.grant_id) {
                                td { (g.name) @if g.is_default { " " span.tag { "默认" } } }
                                td { (g.id_number) }
                                td { (role_text(g.role, g.tier)) }
                                td { (g.org_name) }
                                td { (g.state_label)
                                    @if let Some(exp) = &g.activation_expires_at {
                                        br; small { "授权码有效期至 " (exp.get(..10).unwrap_or(exp)) }
                                    }
                                }
                                td.actions {
                                    @if g.state != "revoked" && g.account_id != actor.account_id {
                                        form.inline method="post" action=(format!("/security/grants/{}/revoke", g.grant_id)) {
                                            (csrf_field(&actor)) button.link type="submit" data-confirm="确定撤销该授权吗？" { "撤销" } }
                                        @if g.state == "locked" {
                                            form.inline method="post" action=(format!("/security/accounts/{}/unlock", g.account_id)) {
                                                (csrf_field(&actor)) button.link type="submit" { "解锁" } }
                                        }
                                        form.inline method="post" action=(format!("/security/accounts/{}/reset", g.account_id)) {
                                            (csrf_field(&actor)) button.link type="submit" data-confirm="重置将清除密码和验证器并发送新的授权码，确定吗？" { "重置" } }
                                        form.inline method="post" action=(format!("/security/grants/{}/enrolment-code", g.grant_id)) {
                                            (csrf_field(&actor)) button.link type="submit" { "签发证书申领码" } }
                                    }
                                }
                            }
                        }
                    }
                }
                @if pages > 1 && !printing {
                    nav.pager {
                        @for p in 1..=pages.min(50) {
                            @if p == list.page { span.current { (p) } }
                            @else { a href=(format!("/security/grants?page={p}{}", q.org_id.as_deref().map(|o| format!("&org_id={o}")).unwrap_or_default())) { (p) } }
                        }
                    }
                }
            }
        };
        Ok(page(&actor, "授权管理", &crumbs(), None, body))
    }
    .await;
    or_error(&actor, result)
}

#[derive(Deserialize, Default)]
struct NewQuery {
    org_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct GrantForm {
    org_id: Option<String>,
    name: Option<String>,
    id_number: Option<String>,
    mobile: Option<String>,
    role: Option<String>,
    tier: Option<String>,
}

async fn render_form(
    state: &AppState,
    actor: &Actor,
    form: &GrantForm,
    errors: &FormErrors,
) -> Result<Response, ApiError> {
    // Who may see this form at all comes first; then which organisation.
    access::grant_admin(actor, &actor.org_code)?;
    let org_id = form.org_id.clone().unwrap_or_default();
    let Some(org) = crate::org::store::get(state.db.read(), &org_id).await? else {
        return Err(ApiError::not_found("党组织"));
    };
    access::grant_admin(actor, &org.code)?;
    let tiers = grants::allowed_tiers(&org.category, org.may_approve_development != 0);
    let role = form.role.clone().unwrap_or_else(|| "admin".to_string());
    let tier = form.tier.clone().unwrap_or_default();
    let body = html! {
        div.panel {
            h2 { "新增授权：" (org.name) }
            (errors.banner())
            form #grant-form.form method="post" action="/security/grants/new" {
                (csrf_field(actor))
                input type="hidden" name="org_id" value=(org.id);
                (text_field("name", "姓名", form.name.as_deref().unwrap_or(""), true, errors))
                (text_field("id_number", "公民身份证号", form.id_number.as_deref().unwrap_or(""), true, errors))
                (text_field("mobile", "手机号（接收授权码）", form.mobile.as_deref().unwrap_or(""), true, errors))
                (super::select_field("role", "角色", &[
                    ("admin".to_string(), "管理员".to_string()),
                    ("security".to_string(), "安全员".to_string()),
                    ("auditor".to_string(), "审计员".to_string()),
                ], &role, true, errors))
                div.field.has-error[errors.fields.contains_key("tier")] {
                    label for="tier" { "管理员级别（仅管理员）" }
                    select #tier name="tier" {
                        option value="" { "按党组织确定（" (tiers[0]) "级）" }
                        @for t in &tiers {
                            option value=(t) selected[tier == t.to_string()] { (role_text(Role::Admin, Some(*t))) }
                        }
                    }
                    (errors.at("tier"))
                }
                button.primary type="submit" { "授权并发送授权码" }
                " " a href="/security/grants" { "返回" }
            }
        }
    };
    Ok(page(actor, "新增授权", &crumbs(), None, body))
}

async fn new_grant_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<NewQuery>,
) -> Response {
    let form = GrantForm {
        org_id: q.org_id,
        ..GrantForm::default()
    };
    let r = render_form(&state, &actor, &form, &FormErrors::default()).await;
    or_error(&actor, r)
}

async fn new_grant_submit(State(state): State<AppState>, form: CsrfForm<GrantForm>) -> Response {
    let actor = form.actor;
    let f = form.form;
    let tier = match f.tier.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => match t.parse::<u8>() {
            Ok(t) => Some(t),
            Err(_) => {
                let e = ApiError::field("tier", "管理员级别应为1、2或3");
                let r = render_form(&state, &actor, &f, &FormErrors::from_api(&e)).await;
                return or_error(&actor, r);
            }
        },
    };
    let role = f.role.clone().unwrap_or_default();
    let req = NewGrant {
        name: f.name.clone().unwrap_or_default(),
        id_number: f.id_number.clone().unwrap_or_default(),
        mobile: f.mobile.clone().unwrap_or_default(),
        org_id: f.org_id.clone().unwrap_or_default(),
        tier: if role == "admin" { tier } else { None },
        role,
    };
    match grants::create_grant(&state, &actor, &req).await {
        Ok(c) => Redirect::to(if c.expires_at.is_some() {
            "/security/grants?notice=created"
        } else {
            "/security/grants?notice=created_active"
        })
        .into_response(),
        Err(e) if e.field.is_some() => {
            let r = render_form(&state, &actor, &f, &FormErrors::from_api(&e)).await;
            or_error(&actor, r)
        }
        Err(e) => super::error_page(Some(&actor), e),
    }
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm<Empty>,
) -> Response {
    let actor = form.actor;
    match grants::revoke_grant(&state, &actor, &id).await {
        Ok(()) => Redirect::to("/security/grants?notice=revoked").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}

async fn unlock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm<Empty>,
) -> Response {
    let actor = form.actor;
    match grants::unlock_account(&state, &actor, &id).await {
        Ok(()) => Redirect::to("/security/grants?notice=unlocked").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}

async fn reset(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm<Empty>,
) -> Response {
    let actor = form.actor;
    match grants::reset_account(&state, &actor, &id).await {
        Ok(_) => Redirect::to("/security/grants?notice=reset").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}

// ---- USB Key 证书管理 --------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct CertQuery {
    account_id: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

fn certificate_rows(
    actor: &Actor,
    items: &[crate::card::routes::CertificateItem],
    revocable: bool,
) -> Markup {
    html! {
        table.list {
            thead { tr {
                th { "持有人" } th { "证书序列号" } th { "主题" } th { "签发时间" } th { "到期时间" }
                th { "状态" } @if revocable { th.ops { "操作" } }
            } }
            tbody {
                @for c in items {
                    tr data-serial=(c.serial) {
                        td { @if let Some(id) = &c.account_id {
                                a href=(format!("/security/certificates?account_id={id}")) { (c.holder_name.as_deref().unwrap_or("")) }
                            } }
                        td { code { (c.serial) } }
                        td { small { (c.subject) } }
                        td { (c.issued_at.get(..10).unwrap_or(&c.issued_at)) }
                        td { (c.expires_at.get(..10).unwrap_or(&c.expires_at))
                            @if c.state == "expiring" { br; small { "剩余 " (c.days_left) " 天" } } }
                        td { (c.state_label)
                            @if c.state == "revoked" {
                                br; small { (crate::card::routes::reason_text(c.reason.as_deref())) }
                            } }
                        @if revocable {
                            td.actions {
                                @if c.state != "revoked" && c.account_id.as_deref() != Some(actor.account_id.as_str()) {
                                    form.inline method="post" action=(format!("/security/certificates/{}/revoke", c.serial)) {
                                        (csrf_field(actor))
                                        select name="reason" aria-label="吊销原因" {
                                            option value="unspecified" { "未说明" }
                                            option value="key_compromise" { "密钥泄露（USB Key 丢失）" }
                                            option value="affiliation_changed" { "所属关系变更" }
                                            option value="superseded" { "已换发" }
                                            option value="cessation_of_operation" { "停止使用" }
                                        }
                                        " "
                                        button.link type="submit" data-confirm="吊销后该证书立即失效，确定吊销吗？" { "吊销" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn certificates_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<CertQuery>,
    Query(print): Query<super::print::PrintQuery>,
) -> Response {
    use crate::card::routes::{list_certificates, CertificateQuery};
    let printing = print.on();
    let result = async {
        let expiring = list_certificates(
            &state,
            &actor,
            &CertificateQuery {
                expiring: Some("1".to_string()),
                per_page: Some(200),
                ..Default::default()
            },
        )
        .await?;
        let list = if printing {
            let (state, actor, account_id) = (&state, &actor, &q.account_id);
            super::print::all_rows(|p| async move {
                list_certificates(
                    state,
                    actor,
                    &CertificateQuery {
                        account_id: account_id.clone(),
                        page: p.page,
                        per_page: p.per_page,
                        ..Default::default()
                    },
                )
                .await
            })
            .await?
        } else {
            list_certificates(
                &state,
                &actor,
                &CertificateQuery {
                    account_id: q.account_id.clone(),
                    page: q.page,
                    per_page: Some(50),
                    ..Default::default()
                },
            )
            .await?
        };
        let print_href = format!(
            "/security/certificates?print=1{}",
            q.account_id
                .as_deref()
                .map(|a| format!("&account_id={}", super::units::enc(a)))
                .unwrap_or_default()
        );
        let pages = (list.total + list.per_page - 1) / list.per_page;
        let body = html! {
            @if let Some(n) = q.notice.as_deref().and_then(notice_text) {
                div.alert.alert-info role="status" { (n) }
            }
            div.panel {
                h2 { "30 天内到期的证书" }
                @if expiring.items.is_empty() {
                    p { "没有 30 天内到期的有效证书。" }
                } @else {
                    p { "以下证书将在 30 天内到期，请通知持有人申领新证书（在授权管理中签发证书申领码）。" }
                    (certificate_rows(&actor, &expiring.items, false))
                }
            }
            div.panel {
                h2 { "USB Key 证书管理" }
                p { "共 " (list.total) " 张证书（管理范围：" (actor.org_name) "）"
                    @if q.account_id.is_some() { " · " a href="/security/certificates" { "显示全部账号" } } }
                @if printing {
                    (super::print::list_head("USB Key 证书名单", list.items.len(), list.total))
                } @else if !list.items.is_empty() {
                    div.list-tools { (super::print::button(&print_href)) }
                }
                (certificate_rows(&actor, &list.items, true))
                @if pages > 1 && !printing {
                    nav.pager {
                        @for p in 1..=pages.min(50) {
                            @if p == list.page { span.current { (p) } }
                            @else { a href=(format!("/security/certificates?page={p}{}", q.account_id.as_deref().map(|a| format!("&account_id={a}")).unwrap_or_default())) { (p) } }
                        }
                    }
                }
            }
        };
        let crumbs = vec![
            ("/security/grants".to_string(), "授权管理".to_string()),
            (String::new(), "USB Key 证书管理".to_string()),
        ];
        Ok(page(&actor, "USB Key 证书管理", &crumbs, None, body))
    }
    .await;
    or_error(&actor, result)
}

#[derive(Deserialize)]
struct RevokeForm {
    reason: Option<String>,
}

async fn revoke_certificate(
    State(state): State<AppState>,
    Path(serial): Path<String>,
    form: CsrfForm<RevokeForm>,
) -> Response {
    let actor = form.actor;
    match crate::card::routes::revoke_certificate(
        &state,
        &actor,
        &serial,
        form.form.reason.as_deref(),
    )
    .await
    {
        Ok(_) => Redirect::to("/security/certificates?notice=cert_revoked").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}

async fn enrolment_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: CsrfForm<Empty>,
) -> Response {
    let actor = form.actor;
    match crate::card::routes::issue_enrolment_code(&state, &actor, &id).await {
        Ok(_) => Redirect::to("/security/grants?notice=enrolment").into_response(),
        Err(e) => super::error_page(Some(&actor), e),
    }
}
