//! The pages of the queue: the member's status-change forms (出党, 停止党籍, 党员死亡,
//! 党员减少（其他原因）, 党员补删, 党员改名, 注册手机号变更), 维护审批 with its detail page and
//! decision, 我的申请, and the history lists 出党管理 … with 找回.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::routes::{self as ops, HistoryAction, HistoryQuery, PhoneInput, RenameInput};
use super::rules::{Kind, Reason, State as AppState_};
use super::store::Queue;
use super::ApplicationInput;
use crate::access::{Actor, Role};
use crate::error::ApiError;
use crate::state::{AppState, Paging};
use crate::web::orgs::pager;
use crate::web::{
    csrf_field, date_field, disabled_action, or_error, org_crumbs, page, page_with_status,
    text_field, CsrfForm, FormErrors, PageActor, PageRouter,
};

pub fn router() -> PageRouter {
    PageRouter::new()
        .route("/members/{id}/apply", get(apply_form).post(apply_submit))
        .route(
            "/members/{id}/correction-delete",
            get(correction_form).post(correction_submit),
        )
        .route("/members/{id}/rename", get(rename_form).post(rename_submit))
        .route(
            "/members/{id}/registered-phone",
            get(phone_form).post(phone_submit),
        )
        .route("/approvals", get(queue_page))
        .route("/applications/{id}", get(application_page))
        .route(
            "/applications/{id}/decide",
            get(back_to_application).post(decide_submit),
        )
        .route(
            "/applications/{id}/withdraw",
            get(back_to_application).post(withdraw_submit),
        )
        .route("/history", get(history_page))
        .route("/history/{id}", get(history_record))
        .route(
            "/history/{id}/act",
            get(back_to_history).post(history_submit),
        )
}

/// The status changes a member's actions menu offers, in the seeds' order.
pub const STATUS_KINDS: [Kind; 4] = [Kind::Exit, Kind::Stop, Kind::Death, Kind::OtherDecrease];

/// The actions menu 党籍变动 of a member record: each change, or the reason it cannot be made
/// now (in a transfer, floating, a pending application).
pub fn member_actions(actor: &Actor, member_id: &str, blocked: Option<&str>) -> Markup {
    let link = |href: String, text: &str| match blocked {
        Some(reason) => disabled_action(text, reason),
        None => html! { a.button href=(href) { (text) } },
    };
    html! {
        div.toolbar.member-actions role="group" aria-label="党籍变动" {
            span.muted { "党籍变动：" }
            @for k in STATUS_KINDS {
                (link(format!("/members/{member_id}/apply?kind={}", k.as_str()), k.label()))
            }
            @if actor.tier == Some(3) {
                (link(format!("/members/{member_id}/correction-delete"), "党员补删"))
            } @else {
                (disabled_action("党员补删", "党员补删（删除误录入的党员）由党支部、党总支管理员办理"))
            }
            (link(format!("/members/{member_id}/rename"), "党员改名"))
            a.button href={"/members/" (member_id) "/registered-phone"} { "注册手机号变更" }
            (link(format!("/members/{member_id}/transfer"), "组织关系转出"))
        }
    }
}

/// The documents 相关资料 of a form: a file input that app.js uploads at once
/// (`POST /api/v1/attachments` for the organisation `org_id`, with the page's CSRF token), each
/// uploaded file then carried as a hidden `attachments` id; ids already uploaded stay listed
/// when a refused form is shown again.
pub fn attachments_field(label: &str, org_id: &str, ids: &[String], errors: &FormErrors) -> Markup {
    html! {
        div.field.attachments.has-error[errors.fields.contains_key("attachments")] {
            label for="attachments" { (label) }
            input #attachments type="file" multiple
                accept=".pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png"
                data-upload="document" data-org=(org_id)
                aria-invalid=[errors.invalid("attachments")] aria-describedby=[errors.described_by("attachments")];
            p.muted.hint { "PDF、JPG 或 PNG 格式，每个文件不超过 5 MB，可选择多个文件；选择后立即上传。" }
            ul.uploaded #attachments-list {
                @for id in ids.iter().filter(|i| !i.trim().is_empty()) {
                    li { "已上传的附件" input type="hidden" name="attachments" value=(id); }
                }
            }
            (errors.at("attachments"))
        }
    }
}

pub fn textarea_field(
    name: &str,
    label: &str,
    value: &str,
    required: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { @if required { span.req { "*" } } (label) }
            textarea id=(name) name=(name) rows="3"
                aria-invalid=[errors.invalid(name)] aria-describedby=[errors.described_by(name)] { (value) }
            (errors.at(name))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct KindQuery {
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ApplyForm {
    pub kind: Option<String>,
    pub date: Option<String>,
    pub reason: Option<String>,
    pub remark: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

pub(crate) async fn member_header(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<(crate::member::MemberView, Vec<(String, String)>), ApiError> {
    let m = crate::member::routes::view(&state.db, actor, id, false).await?;
    let mut crumbs = org_crumbs(state, actor, &m.branch_id).await?;
    crumbs.push((format!("/members/{}", m.id), m.name.clone()));
    Ok((m, crumbs))
}

pub(crate) fn member_summary(m: &crate::member::MemberView) -> Markup {
    html! {
        table.info.member-summary {
            tr { th { "姓名" } td { (m.name) } th { "公民身份证号" } td { (m.id_number) } }
            tr { th { "所在党支部" } td { (m.branch_name) } th { "加入党组织日期" } td { (m.joined_on) } }
        }
    }
}

async fn apply_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    kind: Kind,
    form: &ApplyForm,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (m, mut crumbs) = member_header(state, actor, id).await?;
    let title = format!("{}申请", kind.label());
    crumbs.push((String::new(), title.clone()));
    let approver = crate::access::tier_label(kind.approver_tier());
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    Ok(page_with_status(
        status,
        actor,
        &title,
        &crumbs,
        Some(&m.branch_id),
        html! {
            div.panel {
                h2 { (title) }
                p.muted { "提交后由" (approver) "管理员在“维护审批”中审核，审核通过后该党员转入历史党员库（" (kind.history_reason().map(|r| r.list_title()).unwrap_or("")) "）。" }
                (member_summary(&m))
                (errors.banner())
                form #apply-form.form method="post" action={"/members/" (m.id) "/apply"} {
                    (csrf_field(actor))
                    input type="hidden" name="kind" value=(kind.as_str());
                    (date_field("date", kind.date_label(), &v(&form.date), true, errors))
                    (textarea_field("reason", kind.reason_label(), &v(&form.reason), true, errors))
                    (textarea_field("remark", "备注", &v(&form.remark), false, errors))
                    (attachments_field("相关资料", &m.branch_id, &form.attachments, errors))
                    div.actions {
                        button.primary type="submit" data-check-required { "申请" }
                        a.button href={"/members/" (m.id)} { "取消" }
                    }
                }
            }
        },
    ))
}

fn kind_of(q: Option<&str>) -> Result<Kind, ApiError> {
    q.and_then(Kind::parse)
        .filter(|k| STATUS_KINDS.contains(k))
        .ok_or_else(|| ApiError::bad_request("请从党员信息页面选择要办理的党籍变动"))
}

async fn apply_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<KindQuery>,
) -> Response {
    let r = async {
        ops::member_in_scope(&state.db, &actor, &id).await?;
        let kind = kind_of(q.kind.as_deref())?;
        apply_page(
            &state,
            &actor,
            &id,
            kind,
            &ApplyForm::default(),
            &FormErrors::default(),
            StatusCode::OK,
        )
        .await
    }
    .await;
    or_error(&actor, r)
}

async fn apply_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<ApplyForm>,
) -> Response {
    let actor = f.actor;
    let form = f.form;
    let r = async {
        ops::member_in_scope(&state.db, &actor, &id).await?;
        let kind = kind_of(form.kind.as_deref())?;
        let input = ApplicationInput {
            kind: Some(kind.as_str().into()),
            member_id: Some(id.clone()),
            date: form.date.clone(),
            reason: form.reason.clone(),
            remark: form.remark.clone(),
            attachments: Some(form.attachments.clone()),
            ..ApplicationInput::default()
        };
        match ops::apply(&state, &actor, &input).await {
            Ok(app) => {
                Ok(Redirect::to(&format!("/applications/{app}?notice=submitted")).into_response())
            }
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                apply_page(
                    &state,
                    &actor,
                    &id,
                    kind,
                    &form,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct ReasonForm {
    pub reason: Option<String>,
    pub action: Option<String>,
}

async fn correction_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    form: &ReasonForm,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (m, mut crumbs) = member_header(state, actor, id).await?;
    crumbs.push((String::new(), "党员补删".into()));
    Ok(page_with_status(
        status,
        actor,
        "党员补删",
        &crumbs,
        Some(&m.branch_id),
        html! {
            div.panel {
                h2 { "党员补删" }
                p.muted { "仅用于删除误录入的党员信息。删除后该党员不再计入党员总数，删除记录保留备查，不能找回，如需恢复请重新录入。" }
                (member_summary(&m))
                (errors.banner())
                form #correction-form.form method="post" action={"/members/" (m.id) "/correction-delete"} {
                    (csrf_field(actor))
                    (textarea_field("reason", "补删说明", form.reason.as_deref().unwrap_or(""), true, errors))
                    div.actions {
                        button.primary.danger type="submit" data-check-required
                            data-confirm="确定删除该党员吗？删除后不能找回。" { "删除" }
                        a.button href={"/members/" (m.id)} { "取消" }
                    }
                }
            }
        },
    ))
}

async fn correction_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let r = correction_page(
        &state,
        &actor,
        &id,
        &ReasonForm::default(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn correction_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<ReasonForm>,
) -> Response {
    let actor = f.actor;
    let r = async {
        let branch = crate::member::routes::view(&state.db, &actor, &id, false)
            .await?
            .branch_id;
        match ops::correction_delete(&state.db, &actor, &id, f.form.reason.as_deref()).await {
            Ok(()) => Ok(Redirect::to(&format!(
                "/orgs/{branch}?tab=members&notice=member_deleted"
            ))
            .into_response()),
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                correction_page(
                    &state,
                    &actor,
                    &id,
                    &f.form,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct RenameForm {
    pub new_name: Option<String>,
    pub reason: Option<String>,
    /// Ids of documents uploaded on this page.
    #[serde(default)]
    pub attachments: Vec<String>,
}

async fn rename_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    form: &RenameForm,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (m, mut crumbs) = member_header(state, actor, id).await?;
    crumbs.push((String::new(), "党员改名".into()));
    Ok(page_with_status(
        status,
        actor,
        "党员改名",
        &crumbs,
        Some(&m.branch_id),
        html! {
            div.panel {
                h2 { "党员改名" }
                p.muted { "新姓名先与实名认证数据核对：一致的立即生效；不一致的须上传户口簿等证明材料，提交党员改名申请，由县级党委组织部门审核。公民身份证号不能修改。" }
                (member_summary(&m))
                (errors.banner())
                form #rename-form.form method="post" action={"/members/" (m.id) "/rename"} {
                    (csrf_field(actor))
                    (text_field("new_name", "新姓名", form.new_name.as_deref().unwrap_or(""), true, errors))
                    (textarea_field("reason", "改名原因", form.reason.as_deref().unwrap_or(""), true, errors))
                    (attachments_field("证明材料（新姓名未通过实名认证时必须上传，如户口簿、公安机关出具的更名证明）", &m.branch_id, &form.attachments, errors))
                    div.actions {
                        button.primary type="submit" data-check-required { "提交" }
                        a.button href={"/members/" (m.id)} { "取消" }
                    }
                }
            }
        },
    ))
}

async fn rename_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let r = rename_page(
        &state,
        &actor,
        &id,
        &RenameForm::default(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn rename_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<RenameForm>,
) -> Response {
    let actor = f.actor;
    let form = f.form;
    let r = async {
        let input = RenameInput {
            new_name: form.new_name.clone(),
            reason: form.reason.clone(),
            attachments: Some(form.attachments.clone()),
        };
        match ops::rename(&state, &actor, &id, &input).await {
            Ok(o) => Ok(match o.application_id {
                Some(app) => Redirect::to(&format!("/applications/{app}?notice=rename_review")),
                None => Redirect::to(&format!("/members/{id}?notice=renamed")),
            }
            .into_response()),
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                rename_page(
                    &state,
                    &actor,
                    &id,
                    &form,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct PhoneForm {
    pub phone: Option<String>,
    pub code: Option<String>,
    /// `send` (验证码) or `save`
    pub action: Option<String>,
}

async fn phone_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    form: &PhoneForm,
    errors: &FormErrors,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (m, mut crumbs) = member_header(state, actor, id).await?;
    crumbs.push((String::new(), "注册手机号变更".into()));
    Ok(page_with_status(
        status,
        actor,
        "注册手机号变更",
        &crumbs,
        Some(&m.branch_id),
        html! {
            div.panel {
                h2 { "注册手机号变更" }
                p.muted { "输入新注册手机号并发送验证码，由党员本人收到验证码后填写，保存后生效。现注册手机号：" (m.registered_phone.as_deref().unwrap_or("未登记")) }
                @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                (errors.banner())
                form #phone-form.form method="post" action={"/members/" (m.id) "/registered-phone"} {
                    (csrf_field(actor))
                    (text_field("phone", "新注册手机号", form.phone.as_deref().unwrap_or(""), true, errors))
                    (text_field("code", "短信验证码", "", false, errors))
                    div.actions {
                        button type="submit" name="action" value="send" { "发送验证码" }
                        button.primary type="submit" name="action" value="save" { "保存" }
                        a.button href={"/members/" (m.id)} { "取消" }
                    }
                }
            }
        },
    ))
}

async fn phone_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let r = phone_page(
        &state,
        &actor,
        &id,
        &PhoneForm::default(),
        &FormErrors::default(),
        None,
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn phone_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<PhoneForm>,
) -> Response {
    let actor = f.actor;
    let form = f.form;
    let r = async {
        let input = PhoneInput {
            phone: form.phone.clone(),
            code: form.code.clone(),
        };
        let sending = form.action.as_deref() == Some("send");
        let outcome = if sending {
            super::phone::send_code(&state, &actor, &id, input.phone.as_deref()).await
        } else {
            super::phone::change(
                &state,
                &actor,
                &id,
                input.phone.as_deref(),
                input.code.as_deref(),
            )
            .await
        };
        match outcome {
            Ok(()) if sending => {
                phone_page(
                    &state,
                    &actor,
                    &id,
                    &form,
                    &FormErrors::default(),
                    Some("验证码已发送到新注册手机号，5分钟内有效"),
                    StatusCode::OK,
                )
                .await
            }
            Ok(()) => {
                Ok(Redirect::to(&format!("/members/{id}?notice=phone_saved")).into_response())
            }
            Err(e) if matches!(e.status.as_u16(), 400 | 409 | 429) => {
                phone_page(
                    &state,
                    &actor,
                    &id,
                    &form,
                    &FormErrors::from_api(&e),
                    None,
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct QueuePageQuery {
    /// `mine`: 我的申请; otherwise 维护审批
    pub view: Option<String>,
    pub state: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

async fn queue_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<QueuePageQuery>,
) -> Response {
    let r = async {
        let mine = q.view.as_deref() == Some("mine");
        let st = match q.state.as_deref() {
            None if !mine => Some(AppState_::Pending),
            None | Some("") | Some("all") => None,
            Some(s) => AppState_::parse(s),
        };
        let paging = Paging {
            page: q.page.map(|p| p.max(1)),
            per_page: Some(q.per_page.unwrap_or(20).clamp(1, crate::state::MAX_PER_PAGE)),
        };
        let queue = if mine { Queue::Submitted } else { Queue::Inbox };
        let list = ops::queue(&state.db, &actor, queue, st, &paging).await?;
        let transfers = if mine {
            html! {}
        } else {
            crate::transfer::pages::inbox_section(&state, &actor).await?
        };
        let view = if mine { "mine" } else { "inbox" };
        let state_arg = st.map(|s| s.as_str()).unwrap_or("all");
        let title = if mine { "我的申请" } else { "维护审批" };
        let tab = |s: &str, text: &str| {
            let active = state_arg == s;
            html! { a.tab.active[active] href={"/approvals?view=" (view) "&state=" (s)} { (text) } }
        };
        Ok(page(
            &actor,
            title,
            &[(String::new(), title.to_string())],
            None,
            html! {
                div.panel {
                    h2 { (title) }
                    nav.tabs {
                        a.tab.active[!mine] href="/approvals" { "维护审批" }
                        a.tab.active[mine] href="/approvals?view=mine" { "我的申请" }
                    }
                    nav.filters {
                        (tab("pending", "待审批")) (tab("approved", "已通过")) (tab("rejected", "未通过"))
                        (tab("withdrawn", "已取消")) (tab("all", "全部"))
                    }
                    @if list.items.is_empty() {
                        p.muted.empty { @if mine { "没有申请。" } @else { "没有需要您审批的申请。" } }
                    } @else {
                        table.list #approvals {
                            thead { tr { th { "申请类型" } th { "党员" } th { "所在党组织" } th { "申请人" } th { "申请单位" }
                                th { "审批单位" } th { "提交时间" } th { "状态" } th.ops { "操作" } } }
                            tbody {
                                @for a in &list.items {
                                    tr data-id=(a.id) {
                                        td { (a.kind_label) }
                                        td { (a.member_name) }
                                        td { (a.organisation) }
                                        td { (a.applicant_name) }
                                        td { (a.applicant_org_name) }
                                        td { (a.approver_org_name) }
                                        td { (short_time(&a.submitted_at)) }
                                        td { span.badge.state.{(a.state.as_str())} { (a.state_label) } }
                                        td.ops { a href={"/applications/" (a.id)} {
                                            @if a.can_decide { "审核" } @else { "查看" } } }
                                    }
                                }
                            }
                        }
                        (pager(&format!("/approvals?view={view}&state={state_arg}"), list.page, list.per_page, list.total))
                    }
                    (transfers)
                }
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

/// `2026-11-26T03:04:05Z` → `2026-11-26 11:04` (Beijing time).
pub fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            (t.with_timezone(&chrono::Utc) + chrono::Duration::hours(8))
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "submitted" => Some("申请已提交，等待审批。"),
        "rename_review" => {
            Some("新姓名未通过实名认证，已提交党员改名申请，等待县级党委组织部门审核。")
        }
        "approved" => Some("已审批通过。"),
        "rejected" => Some("已审批，不通过。"),
        "withdrawn" => Some("申请已取消。"),
        "recovered" => Some("已找回，该党员已回到党员信息库。"),
        "purged" => Some("已永久删除。"),
        "phone_cancelled" => Some("已注销手机号。"),
        _ => None,
    }
}

/// After an approved 网上转接申请: the way to the transfer — 发起转出 (the form filled from
/// the request) for an admin who may act on the member, or the member's transfer under way.
async fn transfer_next(
    state: &AppState,
    actor: &Actor,
    a: &super::ApplicationView,
) -> Result<Option<Markup>, ApiError> {
    let (Kind::TransferRequest, AppState_::Approved, Some(member_id)) =
        (a.kind, a.state, a.member_id.as_deref())
    else {
        return Ok(None);
    };
    let Ok((member, _)) = crate::member::routes::load(&state.db, member_id).await else {
        return Ok(None);
    };
    if crate::access::member(actor, &member.org_code).is_err() {
        return Ok(None);
    }
    let active: Option<String> = sqlx::query_scalar(
        "SELECT id FROM transfers WHERE member_id = $1 AND state = 'active' \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(member_id)
    .fetch_optional(state.db.read())
    .await?;
    Ok(Some(match active {
        Some(t) => html! {
            "该党员的组织关系转接正在办理：" a.button #open-transfer href={"/transfers/" (t)} { "查看转接" }
        },
        None => html! {
            a.button.primary #start-transfer
                href={"/members/" (member_id) "/transfer?request=" (a.id)} { "发起转出" }
            " " span.muted { "按本申请填写转出申请（介绍信），核对后发送。" }
        },
    }))
}

async fn application_view_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    notice: Option<&str>,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let a = ops::view(&state.db, actor, id).await?;
    let files = crate::attachment::store::of_owner(&state.db, "application", &a.id).await?;
    let title = if a.kind_label.ends_with("申请") {
        a.kind_label.clone()
    } else {
        format!("{}申请", a.kind_label)
    };
    let transfer_next = transfer_next(state, actor, &a).await?;
    let row = |k: &str, v: &str| html! { tr { th { (k) } td { (v) } } };
    let kind = a.kind;
    Ok(page_with_status(
        status,
        actor,
        &title,
        &[
            ("/approvals".into(), "维护审批".into()),
            (String::new(), title.clone()),
        ],
        None,
        html! {
            div.panel {
                h2 { (title) " " span.badge.state.{(a.state.as_str())} { (a.state_label) } }
                @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                table.info #application {
                    (row("申请类型", &a.kind_label))
                    tr { th { "党员" } td {
                        @match (&a.member_id, a.state == AppState_::Approved && kind.history_reason().is_some()) {
                            (Some(m), false) => a href={"/members/" (m)} { (a.member_name) },
                            _ => (a.member_name),
                        }
                    } }
                    (row("所在党组织", &a.organisation))
                    (row("申请人", &format!("{}（{}）", a.applicant_name, a.applicant_org_name)))
                    (row("审批单位", &format!("{}（{}）", a.approver_org_name, crate::access::tier_label(a.approver_tier as u8))))
                    (row("提交时间", &short_time(&a.submitted_at)))
                    @if let Some(d) = &a.data.date { (row(kind.date_label(), d)) }
                    @if let Some(n) = &a.data.old_name { (row("原姓名", n)) }
                    @if let Some(n) = &a.data.new_name { (row("新姓名", n)) }
                    (row(kind.reason_label(), &a.data.reason))
                    @if !a.data.remark.is_empty() { (row("备注", &a.data.remark)) }
                    @if let Some(m) = &a.data.member {
                        (row("公民身份证号", m["id_number"].as_str().unwrap_or("")))
                        (row("加入党组织日期", m["joined_on"].as_str().unwrap_or("")))
                    }
                    tr { th { "相关资料" } td {
                        @if files.is_empty() { "无" }
                        @for f in &files {
                            a.attachment href={"/api/v1/attachments/" (f.id)} { (f.file_name) } " "
                        }
                    } }
                }
                @if let Some(next) = &transfer_next {
                    p #transfer-next { (next) }
                }
                h3 { "审核意见" }
                table.list #trail {
                    thead { tr { th { "时间" } th { "办理人" } th { "单位" } th { "操作" } th { "意见" } } }
                    tbody {
                        @for s in &a.steps {
                            tr { td { (short_time(&s.at)) } td { (s.actor_name) } td { (s.actor_org_name) }
                                 td { (s.action_label()) } td { (s.opinion) } }
                        }
                    }
                }
                @if a.can_decide {
                    (errors.banner())
                    form #decide-form.form method="post" action={"/applications/" (a.id) "/decide"} {
                        (csrf_field(actor))
                        (textarea_field("opinion", "审核意见", "", false, errors))
                        div.actions {
                            button.primary type="submit" name="decision" value="approve"
                                data-confirm={"确定审批通过吗？" @if kind.history_reason().is_some() { "通过后该党员转入历史党员库。" }} { "同意" }
                            button type="submit" name="decision" value="reject" { "不同意" }
                        }
                    }
                }
                @if a.can_withdraw {
                    form #withdraw-form.inline method="post" action={"/applications/" (a.id) "/withdraw"} {
                        (csrf_field(actor))
                        button.danger type="submit" data-confirm="确定取消该申请吗？" { "取消申请" }
                    }
                }
                p { a.button href="/approvals" { "返回维护审批" } " " a.button href="/approvals?view=mine" { "我的申请" } }
            }
        },
    ))
}

async fn application_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = q.notice.as_deref().and_then(notice_text);
    let r = application_view_page(
        &state,
        &actor,
        &id,
        notice,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn back_to_application(Path(id): Path<String>) -> Response {
    Redirect::to(&format!("/applications/{id}")).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    pub decision: Option<String>,
    pub opinion: Option<String>,
}

async fn decide_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<DecideForm>,
) -> Response {
    let actor = f.actor;
    let approve = f.form.decision.as_deref() == Some("approve");
    let r = async {
        match ops::decide(&state.db, &actor, &id, approve, f.form.opinion.as_deref()).await {
            Ok(()) => Ok(Redirect::to(&format!(
                "/applications/{id}?notice={}",
                if approve { "approved" } else { "rejected" }
            ))
            .into_response()),
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                application_view_page(
                    &state,
                    &actor,
                    &id,
                    None,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

async fn withdraw_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<DecideForm>,
) -> Response {
    let actor = f.actor;
    let r = async {
        ops::withdraw(&state.db, &actor, &id, f.form.opinion.as_deref()).await?;
        Ok(Redirect::to(&format!("/applications/{id}?notice=withdrawn")).into_response())
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryPageQuery {
    pub reason: Option<String>,
    pub q: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub notice: Option<String>,
}

async fn history_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<HistoryPageQuery>,
) -> Response {
    let r = async {
        let reason = q.reason.as_deref().and_then(Reason::parse).unwrap_or(Reason::Exit);
        let list = ops::history_list(
            &state.db,
            &actor,
            &HistoryQuery {
                reason: Some(reason.as_str().into()),
                q: q.q.clone(),
                page: q.page.map(|p| p.max(1)),
                per_page: Some(q.per_page.unwrap_or(20).clamp(1, crate::state::MAX_PER_PAGE)),
            },
        )
        .await?;
        let notice = q.notice.as_deref().and_then(notice_text);
        let recover = actor.role == Role::Admin && actor.tier == Some(1) && reason.recoverable();
        let name = q.q.clone().unwrap_or_default();
        Ok(page(
            &actor,
            reason.list_title(),
            &[(String::new(), "历史党员".into()), (String::new(), reason.list_title().into())],
            None,
            html! {
                div.panel {
                    h2 { (reason.list_title()) }
                    @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                    nav.tabs {
                        @for r in Reason::ALL {
                            a.tab.active[r == reason] href={"/history?reason=" (r.as_str())} { (r.list_title()) }
                        }
                    }
                    form.search method="get" action="/history" {
                        input type="hidden" name="reason" value=(reason.as_str());
                        label for="q" { "姓名：" }
                        input #q type="search" name="q" value=(name);
                        button type="submit" { "搜索" }
                    }
                    @if list.items.is_empty() {
                        p.muted.empty { "管理范围内没有" (reason.label()) "的历史党员。" }
                    } @else {
                        table.list #history {
                            thead { tr { th { "序号" } th { "姓名" } th { "所属组织" } th { "入党日期" } th { "工作岗位" }
                                th { (match reason { Reason::Exit => "出党时间", Reason::Stopped => "停止时间",
                                    Reason::Death => "去世时间", Reason::Other => "减少时间", Reason::Correction => "删除时间", Reason::TransferredOut => "转出时间" }) }
                                th { "添加时间" } th.ops { "操作" } } }
                            tbody {
                                @for (i, h) in list.items.iter().enumerate() {
                                    tr data-id=(h.history_id) {
                                        td { ((list.page - 1) * list.per_page + i as i64 + 1) }
                                        td { (h.member.name) }
                                        td { (h.member.branch_name) }
                                        td { (h.member.joined_on) }
                                        td { (crate::member::dict::label(&crate::member::dict::JOBS, &h.member.job).unwrap_or("")) }
                                        td { (h.left_on) }
                                        td { (short_time(&h.recorded_at)) }
                                        td.ops {
                                            a href={"/history/" (h.history_id)} { @if recover { "找回" } @else { "查看" } }
                                        }
                                    }
                                }
                            }
                        }
                        (pager(&format!("/history?reason={}&q={}", reason.as_str(), crate::web::units::enc(&name)), list.page, list.per_page, list.total))
                    }
                }
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

async fn history_record_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let h = ops::history_view(&state.db, actor, id).await?;
    let reason = h.reason;
    let row = |k: &str, v: &str| html! { tr { th { (k) } td { (v) } } };
    let tier = if actor.role == Role::Admin {
        actor.tier
    } else {
        None
    };
    let live = h.recovered_at.is_none();
    Ok(page_with_status(
        status,
        actor,
        "历史党员信息",
        &[
            (
                format!("/history?reason={}", reason.as_str()),
                reason.list_title().into(),
            ),
            (String::new(), h.member.name.clone()),
        ],
        None,
        html! {
            div.panel {
                h2 { "历史党员信息：" (h.member.name) }
                table.info #history-record {
                    (row("姓名", &h.member.name))
                    (row("公民身份证号", &h.member.id_number))
                    (row("所在党支部", &h.member.branch_name))
                    (row("加入党组织日期", &h.member.joined_on))
                    (row("类别", reason.label()))
                    (row(match reason { Reason::Exit => "出党日期", Reason::Stopped => "停止党籍日期",
                        Reason::Death => "死亡日期", Reason::Other => "减少日期", Reason::Correction => "删除日期", Reason::TransferredOut => "转出日期" }, &h.left_on))
                    (row("原因 / 说明", &h.remark))
                    (row("办理人", &h.recorded_by))
                    (row("注册手机号", h.member.registered_phone.as_deref().unwrap_or(if h.phone_cancelled { "已注销" } else { "未登记" })))
                    @if let Some(t) = &h.recovered_at { (row("找回时间", &short_time(t))) }
                }
                (errors.banner())
                @if live && tier == Some(1) && reason.recoverable() {
                    form #recover-form.form method="post" action={"/history/" (h.history_id) "/act"} {
                        (csrf_field(actor))
                        input type="hidden" name="action" value="recover";
                        p.muted { "找回仅用于因误操作导致的党籍变动，找回后该党员回到原党支部，统计中计为更正而非新增。" }
                        (textarea_field("reason", "找回原因", "", true, errors))
                        button.primary type="submit" data-check-required data-confirm="确定找回该党员吗？" { "找回" }
                    }
                }
                @if live && tier == Some(1) && reason == Reason::Other {
                    form #purge-form.form method="post" action={"/history/" (h.history_id) "/act"} {
                        (csrf_field(actor))
                        input type="hidden" name="action" value="purge";
                        (textarea_field("purge-reason", "永久删除原因", "", true, errors))
                        button.danger type="submit" data-check-required data-confirm="永久删除后不能恢复，确定删除吗？" { "永久删除" }
                    }
                }
                @if live && tier == Some(2) && reason == Reason::Death && h.member.registered_phone.is_some() {
                    form #cancel-phone-form.inline method="post" action={"/history/" (h.history_id) "/act"} {
                        (csrf_field(actor))
                        input type="hidden" name="action" value="cancel_phone";
                        button.danger type="submit" data-confirm="确定注销该去世党员的注册手机号吗？" { "注销手机号" }
                    }
                }
                p { a.button href={"/history?reason=" (reason.as_str())} { "返回" (reason.list_title()) } }
            }
        },
    ))
}

async fn history_record(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let r = history_record_page(&state, &actor, &id, &FormErrors::default(), StatusCode::OK).await;
    or_error(&actor, r)
}

async fn back_to_history(Path(id): Path<String>) -> Response {
    Redirect::to(&format!("/history/{id}")).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryActForm {
    pub action: Option<String>,
    pub reason: Option<String>,
    #[serde(rename = "purge-reason")]
    pub purge_reason: Option<String>,
}

async fn history_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<HistoryActForm>,
) -> Response {
    let actor = f.actor;
    let form = f.form;
    let r = async {
        let before = ops::history_view(&state.db, &actor, &id).await?;
        let (action, reason, notice) = match form.action.as_deref() {
            Some("recover") => (HistoryAction::Recover, form.reason.as_deref(), "recovered"),
            Some("purge") => (HistoryAction::Purge, form.purge_reason.as_deref(), "purged"),
            Some("cancel_phone") => (
                HistoryAction::CancelPhone,
                form.reason.as_deref(),
                "phone_cancelled",
            ),
            _ => return Err(ApiError::bad_request("请选择要办理的操作")),
        };
        match ops::history_act(&state.db, &actor, &id, action, reason).await {
            Ok(()) => Ok(match action {
                HistoryAction::Recover => {
                    Redirect::to(&format!("/members/{}?notice=recovered", before.member.id))
                }
                HistoryAction::Purge => {
                    Redirect::to(&format!("/history?reason=other&notice={notice}"))
                }
                HistoryAction::CancelPhone => {
                    Redirect::to(&format!("/history/{id}?notice={notice}"))
                }
            }
            .into_response()),
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                let mut e = e;
                if action == HistoryAction::Purge {
                    e = e.with_field("purge-reason");
                }
                history_record_page(&state, &actor, &id, &FormErrors::from_api(&e), e.status).await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}
