//! 党员信息维护: the members tab of an organisation, the member record (党员信息查看) and the
//! entry (党员信息录入) and edit (党员信息修改) forms. Handlers parse, call the domain operations
//! of `member::routes` (which ask `access` and keep the audit record) and render.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::orgs::{load_visible, pager, OrgPageQuery};
use super::units::{choice_field, enc};
use super::{
    csrf_field, date_field, error_page, options, org_crumbs, page, page_with_status, select_field,
    text_field, CsrfForm, FormErrors, PageActor,
};
use crate::access::Actor;
use crate::collate::NameOrder;
use crate::error::ApiError;
use crate::member::dict::{self, education_groups, CATEGORIES, ETHNICITIES, JOBS, STATUSES};
use crate::member::idcard;
use crate::member::routes as ops;
use crate::member::rules::MemberInput;
use crate::member::MemberView;
use crate::org::rules::Category;
use crate::org::OrgRow;
use crate::state::{AppState, Paging};

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/orgs/{id}/members/new", get(new_form).post(new_submit))
        .route("/members/{id}", get(record))
        .route("/members/{id}/edit", get(edit_form).post(edit_submit))
}

const PER_PAGE_CHOICES: [i64; 4] = [10, 20, 50, 100];

fn sex_label(code: &str) -> &'static str {
    match code {
        "male" => "男",
        "female" => "女",
        _ => "",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

fn is_branch(org: &OrgRow) -> bool {
    org.category().is_some_and(Category::is_branch)
}

/// The members tab of an organisation page: search, the masked list, the pager.
pub async fn tab(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    q: &OrgPageQuery,
) -> Result<Markup, ApiError> {
    let branch = is_branch(org);
    // Members are kept in branches only, so above a branch the list includes the levels below
    // unless the search form was sent without 包含下级.
    let include_sub = match q.include_sub.as_deref() {
        Some(v) => matches!(v, "1" | "true" | "on"),
        None => !branch && q.q.is_none(),
    };
    let text = q.q.clone().unwrap_or_default();
    let order = q
        .sort
        .as_deref()
        .and_then(NameOrder::parse)
        .unwrap_or_default();
    let paging = Paging {
        page: q.page,
        per_page: Some(q.per_page.unwrap_or(20)),
    };
    let printing = super::print::is_on(q.print.as_deref());
    let search = ops::MemberSearch::parse(&text);
    let list = if printing {
        let search = &search;
        super::print::all_rows(|p| async move {
            ops::list(&state.db, actor, &org.id, include_sub, search, order, &p).await
        })
        .await?
    } else {
        ops::list(
            &state.db,
            actor,
            &org.id,
            include_sub,
            &search,
            order,
            &paging,
        )
        .await?
    };
    let query = |order: NameOrder| {
        format!(
            "/orgs/{}?tab=members&q={}&include_sub={}&sort={}",
            org.id,
            enc(&text),
            if include_sub { "1" } else { "0" },
            order.as_str()
        )
    };
    let base = query(order);
    // The name column sorts either way: the current order is marked with an arrow, the other
    // one is a link (which starts again at page 1).
    let sort_link = |o: NameOrder| {
        let short = match o {
            NameOrder::Pinyin => "拼音",
            NameOrder::Strokes => "笔画",
        };
        html! {
            @if o == order {
                strong.sort-current #{"sort-" (o.as_str())} title={"当前按" (o.label()) "排序"} { (short) " ▲" }
            } @else {
                a.sort-link #{"sort-" (o.as_str())} href={(query(o)) "&per_page=" (list.per_page)}
                    title={"按" (o.label()) "排序"} { (short) }
            }
        }
    };
    Ok(html! {
        @if !branch {
            p.muted.hint { "党员只能录入到党支部，请在左侧机构树中选择党支部后点击“新增党员”" }
        }
        form #member-search.search method="get" action={"/orgs/" (org.id)} {
            input type="hidden" name="tab" value="members";
            input type="hidden" name="sort" value=(order.as_str());
            label for="q" { "姓名或公民身份证号" }
            input #q type="search" name="q" value=(text) placeholder="姓名、完整身份证号或其后4位";
            label.checkbox for="include_sub" {
                input #include_sub type="checkbox" name="include_sub" value="1" checked[include_sub];
                "包含下级"
            }
            label for="per_page" { "每页" }
            select #per_page name="per_page" {
                @for n in PER_PAGE_CHOICES {
                    option value=(n) selected[n == list.per_page] { (n) " 条" }
                }
            }
            button type="submit" { "查询" }
            @if !list.items.is_empty() { (super::print::button(&format!("{base}&print=1"))) }
        }
        (crate::roster::member_buttons(&org.id, include_sub))
        @if printing {
            (super::print::list_head(&format!("{} 党员名单", org.name), list.items.len(), list.total))
        }
        @if search == ops::MemberSearch::Unsupported {
            p.alert.alert-warn #search-hint role="status" { "未找到党员：" (ops::SEARCH_HINT) "。" }
        } @else if list.items.is_empty() {
            p.muted { "没有符合条件的党员" }
        } @else {
            table.list #member-list data-sort=(order.as_str()) {
                thead {
                    tr {
                        th.sortable aria-sort="ascending" {
                            "姓名 "
                            span.sort-choices title="姓名列可排序：姓氏拼音或姓氏笔画" {
                                "（" (sort_link(NameOrder::Pinyin)) " | " (sort_link(NameOrder::Strokes)) "）"
                            }
                        }
                        th { "性别" } th { "公民身份证号" } th { "年龄" } th { "人员类别" }
                        th { "所在党支部" } th { "加入党组织日期" } th { "信息完整度" } th.ops { "操作" }
                    }
                }
                tbody {
                    @for m in &list.items {
                        tr {
                            td { a href={"/members/" (m.id)} { (m.name) } }
                            td { (sex_label(&m.sex)) }
                            td.idno { (m.id_number) }
                            td.num.age { @if let Some(a) = m.age { (a) } }
                            td { (dict::label(&CATEGORIES, &m.category).unwrap_or("")) }
                            td { (m.branch_name) }
                            td { (m.joined_on) }
                            td.num { (m.completeness) "%" }
                            td.ops {
                                a href={"/members/" (m.id)} { "查看" }
                                a href={"/members/" (m.id) "/edit"} { "编辑" }
                                a.quality-check href={"/members/" (m.id) "/quality"} { "质量检查" }
                            }
                        }
                    }
                }
            }
        }
        @if !printing { (pager(&base, list.page, list.per_page, list.total)) }
    })
}

fn v(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

fn bool_options() -> Vec<(String, String)> {
    vec![
        ("false".to_string(), "否".to_string()),
        ("true".to_string(), "是".to_string()),
    ]
}

fn bool_value(b: Option<bool>) -> &'static str {
    if b == Some(true) {
        "true"
    } else {
        "false"
    }
}

/// The fields of the entry form beside the member: an entry that goes to the queue instead
/// of straight into the database — supplementary entry 补录 (tier 2) or real-name filing
/// 实名认证备案 after a failed real-name check — with its reason and documents.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct EntryExtras {
    /// `supplement` or `realname`; empty: direct entry
    pub apply: Option<String>,
    pub reason: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// The choice of 新增类型 and the reason, for the admins who may apply (tier 2: 补录; after a
/// failed real-name check: 实名认证备案).
fn entry_kind_fields(
    actor: &Actor,
    branch_id: &str,
    extras: &EntryExtras,
    realname_failed: bool,
    errors: &FormErrors,
) -> Markup {
    let mut kinds: Vec<(String, String)> = vec![("".into(), "直接录入".into())];
    if actor.tier == Some(2) {
        kinds.push(("supplement".into(), "补录（报县级党委组织部门审批）".into()));
    }
    if realname_failed || extras.apply.as_deref() == Some("realname") {
        kinds.push((
            "realname".into(),
            "实名认证备案（报县级党委组织部门备案后入库）".into(),
        ));
    }
    let selected = extras.apply.clone().unwrap_or_default();
    html! {
        @if kinds.len() > 1 {
            fieldset.entry-kind {
                legend { "新增类型" }
                (select_field("apply", "新增类型", &kinds[1..], &selected, false, errors))
                div.field.has-error[errors.fields.contains_key("reason")] {
                    label for="reason" { "补录原因 / 备案说明（补录或实名认证备案时必填）" }
                    textarea #reason name="reason" rows="2"
                        aria-invalid=[errors.invalid("reason")] aria-describedby=[errors.described_by("reason")] {
                        (extras.reason.as_deref().unwrap_or(""))
                    }
                    (errors.at("reason"))
                }
                (crate::approval::pages::attachments_field(
                    "相关资料（实名认证备案须附本人签字的党员信息采集表）",
                    branch_id,
                    &extras.attachments,
                    errors,
                ))
            }
        }
    }
}

/// What the form knows that is not an input: the branch, and on edit the fixed name and ID.
enum Mode<'a> {
    New { branch: &'a OrgRow },
    Edit { member: &'a MemberView },
}

fn member_fields(mode: &Mode<'_>, form: &MemberInput, errors: &FormErrors) -> Markup {
    let sexes = vec![
        ("male".to_string(), "男".to_string()),
        ("female".to_string(), "女".to_string()),
    ];
    html! {
        @if needs_confirmation(errors) {
            div.field.confirm-contradictions {
                label {
                    input type="checkbox" name="confirm_contradictions" value="true";
                    " 已核实：提示中与公民身份证号不一致的信息（或身份证号不明确）确认无误，仍然保存"
                }
            }
        }
        @match mode {
            Mode::New { branch } => {
                input type="hidden" name="branch_id" value=(branch.id);
                div.field.has-error[errors.fields.contains_key("branch_id")] {
                    label for="branch-name" { "所在党支部" }
                    input #branch-name type="text" value=(branch.name) disabled;
                    (errors.at("branch_id"))
                }
                (text_field("name", "姓名", v(&form.name), true, errors))
                (text_field("id_number", "公民身份证号", v(&form.id_number), true, errors))
            }
            Mode::Edit { member } => {
                div.field.has-error[errors.fields.contains_key("branch_id")] {
                    label for="branch-name" { "所在党支部" }
                    input #branch-name type="text" value=(member.branch_name) disabled;
                    p.muted.hint { "变更所在党支部须办理组织关系转接" }
                    (errors.at("branch_id"))
                }
                div.field.has-error[errors.fields.contains_key("name")] {
                    label for="name-fixed" { "姓名" }
                    input #name-fixed type="text" value=(member.name) disabled;
                    p.muted.hint { "姓名不能在此修改，如需更改请办理“党员改名”" }
                    (errors.at("name"))
                }
                div.field.has-error[errors.fields.contains_key("id_number")] {
                    label for="id-number-fixed" { "公民身份证号" }
                    input #id-number-fixed type="text" value=(idcard::mask(&member.id_number)) disabled;
                    p.muted.hint { "公民身份证号不能修改" }
                    (errors.at("id_number"))
                }
            }
        }
        (select_field("sex", "性别（根据身份证号自动填写）", &sexes, v(&form.sex), false, errors))
        (date_field("birth_date", "出生日期（根据身份证号自动填写）", v(&form.birth_date), false, errors))
        (choice_field("ethnicity", "民族", &options(&ETHNICITIES), v(&form.ethnicity), errors))
        (education_field(v(&form.education), errors))
        (choice_field("category", "人员类别", &options(&CATEGORIES), v(&form.category), errors))
        (date_field("joined_on", "加入党组织日期", v(&form.joined_on), true, errors))
        (date_field("full_on", "转正日期（正式党员必填）", v(&form.full_on), false, errors))
        (choice_field("job", "工作岗位", &options(&JOBS), v(&form.job), errors))
        (text_field("phone", "联系电话", v(&form.phone), true, errors))
        (text_field("address", "家庭住址", v(&form.address), true, errors))
        (text_field("registered_phone", "注册手机号", v(&form.registered_phone), false, errors))
        (text_field("origin", "籍贯", v(&form.origin), false, errors))
        (text_field("title", "职称", v(&form.title), false, errors))
        (select_field("lost_contact", "是否为失联党员", &bool_options(), bool_value(form.lost_contact), true, errors))
        (date_field("lost_contact_on", "失联日期（失联党员必填）", v(&form.lost_contact_on), false, errors))
        (select_field("floating", "是否流动党员", &bool_options(), bool_value(form.floating), true, errors))
        (text_field("floating_to", "外出流向（流动党员必填）", v(&form.floating_to), false, errors))
    }
}

/// Did the refused save ask to confirm a contradiction with the ID number?
fn needs_confirmation(errors: &FormErrors) -> bool {
    ["id_number", "sex", "birth_date"]
        .iter()
        .any(|f| errors.fields.get(*f).is_some_and(|m| m.contains("已核实")))
}

/// 学历: choices grouped under their headings, which cannot be chosen.
pub(crate) fn education_field(selected: &str, errors: &FormErrors) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key("education")] {
            label for="education" { span.req { "*" } "学历" }
            select #education name="education"
                aria-invalid=[errors.invalid("education")] aria-describedby=[errors.described_by("education")] {
                @if selected.is_empty() { option value="" { "（请选择）" } }
                @for (heading, choices) in education_groups() {
                    @if heading.is_empty() {
                        @for (code, label) in &choices {
                            option value=(code) selected[*code == selected] { (label) }
                        }
                    } @else {
                        optgroup label=(heading) {
                            @for (code, label) in &choices {
                                option value=(code) selected[*code == selected] { (label) }
                            }
                        }
                    }
                }
            }
            (errors.at("education"))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    actor: &Actor,
    title: &str,
    crumbs: &[(String, String)],
    branch_id: &str,
    action: &str,
    cancel: &str,
    body: Markup,
    errors: &FormErrors,
    status: StatusCode,
    aside: Option<Markup>,
) -> Response {
    page_with_status(
        status,
        actor,
        title,
        crumbs,
        Some(branch_id),
        html! {
            div.panel {
                h2 { (title) }
                p.muted { "带 * 的为必填项。" }
                (errors.banner())
                form #member-form.form method="post" action=(action) {
                    (csrf_field(actor))
                    (body)
                    div.actions {
                        button.primary type="submit" { "保存" }
                        a.button href=(cancel) { "取消" }
                    }
                }
            }
            @if let Some(aside) = aside { (aside) }
        },
    )
}

#[allow(clippy::too_many_arguments)]
async fn new_page(
    state: &AppState,
    actor: &Actor,
    branch: &OrgRow,
    form: &MemberInput,
    extras: &EntryExtras,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let realname_failed = errors
        .general
        .as_deref()
        .is_some_and(|m| m.contains("实名认证"));
    let mut crumbs = org_crumbs(state, actor, &branch.id)
        .await
        .unwrap_or_default();
    crumbs.push((String::new(), "党员信息录入".to_string()));
    form_page(
        actor,
        "党员信息录入",
        &crumbs,
        &branch.id,
        &format!("/orgs/{}/members/new", branch.id),
        &format!("/orgs/{}?tab=members", branch.id),
        html! {
            (entry_kind_fields(actor, &branch.id, extras, realname_failed, errors))
            (member_fields(&Mode::New { branch }, form, errors))
        },
        errors,
        status,
        None,
    )
}

/// The branch a member is entered into, or the refusal page.
async fn entry_branch(state: &AppState, actor: &Actor, id: &str) -> Result<OrgRow, Response> {
    let org = load_visible(state, actor, id).await?;
    if !is_branch(&org) {
        return Err(error_page(
            Some(actor),
            ApiError::bad_request(format!(
                "“{}”不是党支部。党员只能录入到党支部，请在左侧机构树中选择党支部后点击“新增党员”",
                org.name
            )),
        ));
    }
    Ok(org)
}

async fn new_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let branch = match entry_branch(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = MemberInput {
        branch_id: Some(branch.id.clone()),
        lost_contact: Some(false),
        floating: Some(false),
        ..MemberInput::default()
    };
    new_page(
        &state,
        &actor,
        &branch,
        &form,
        &EntryExtras::default(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn new_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<MemberInput>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let branch = match entry_branch(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    form.branch_id = Some(branch.id.clone());
    let extras: EntryExtras = serde_html_form::from_bytes(&f.raw).unwrap_or_default();
    let outcome = match extras.apply.as_deref().filter(|k| !k.is_empty()) {
        Some(kind) => crate::approval::routes::apply(
            &state,
            &actor,
            &crate::approval::ApplicationInput {
                kind: Some(kind.to_string()),
                member: Some(form.clone()),
                reason: extras.reason.clone(),
                attachments: Some(extras.attachments.clone()),
                ..Default::default()
            },
        )
        .await
        .map(|app| format!("/applications/{app}?notice=submitted")),
        None => ops::create_checked(&state, &actor, &form)
            .await
            .map(|new_id| format!("/members/{new_id}?notice=member_created")),
    };
    match outcome {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            new_page(
                &state,
                &actor,
                &branch,
                &form,
                &extras,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

#[derive(Deserialize, Default)]
struct RecordQuery {
    unmask: Option<String>,
    notice: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "member_created" => Some("党员已录入"),
        "member_saved" => Some("党员信息已保存"),
        "recovered" => Some("已找回，该党员已回到党员信息库"),
        "renamed" => Some("新姓名已通过实名认证，改名已生效"),
        "phone_saved" => Some("注册手机号已变更"),
        "photo_saved" => Some("照片已保存"),
        "photo_removed" => Some("照片已删除"),
        _ => None,
    }
}

async fn record(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Response {
    let unmask = matches!(q.unmask.as_deref(), Some("1") | Some("true"));
    let result: Result<Response, ApiError> = async {
        let m = ops::view(&state.db, &actor, &id, unmask).await?;
        let mut crumbs = org_crumbs(&state, &actor, &m.branch_id).await?;
        crumbs.push((String::new(), m.name.clone()));
        let notice = q.notice.as_deref().and_then(notice_text);
        let pending = crate::approval::store::pending_for_member(&state.db, &m.id).await?;
        let blocked = if m.in_transfer {
            Some("该党员正在办理组织关系转接，转接完成前不能办理党籍变动".to_string())
        } else if m.floating {
            Some("该党员有流动党员登记，须先结束流动登记才能办理党籍变动".to_string())
        } else {
            pending.as_ref().map(|(_, kind)| {
                format!(
                    "该党员已有待审批的“{}”申请，审批完成或取消申请后才能办理",
                    crate::approval::Kind::parse(kind).map(|k| k.label()).unwrap_or("")
                )
            })
        };
        let has_photo = super::photo::has_photo(&state, &m.id).await;
        let row = |k: &str, val: &str| html! { tr { th { (k) } td { (val) } } };
        let date = |d: &Option<String>| d.clone().unwrap_or_default();
        Ok(page(
            &actor,
            "党员信息查看",
            &crumbs,
            Some(&m.branch_id),
            html! {
                div.panel {
                    h2 { "党员信息查看：" (m.name) }
                    @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                    @if !m.flags.is_empty() {
                        div.alert.alert-warn.member-flags role="note" {
                            "数据提示（保存时已核实）："
                            @for f in &m.flags { span.badge.flag { (f) } }
                        }
                    }
                    @if m.in_transfer { div.alert.alert-warn role="note" { "该党员正在办理组织关系转接，介绍信所载信息不能修改。" } }
                    @if let Some((app, kind)) = &pending {
                        div.alert.alert-info.pending-application role="note" {
                            "该党员有待审批的申请：" a href={"/applications/" (app)} {
                                (crate::approval::Kind::parse(kind).map(|k| k.label()).unwrap_or("申请")) }
                        }
                    }
                    div.toolbar {
                        a.button href={"/members/" (m.id) "/edit"} { "编辑" }
                        @if m.masked {
                            a.button #unmask href={"/members/" (m.id) "?unmask=1"} { "显示完整信息" }
                        } @else {
                            a.button href={"/members/" (m.id)} { "隐藏完整信息" }
                        }
                        a.button #quality-check href={"/members/" (m.id) "/quality"} { "质量检查" }
                        a.button #member-form-link href={"/members/" (m.id) "/form"} { "打印采集表" }
                        a.button href={"/orgs/" (m.branch_id) "?tab=members"} { "返回党员列表" }
                    }
                    (crate::approval::pages::member_actions(&actor, &m.id, blocked.as_deref()))
                    @if m.masked {
                        p.muted { "公民身份证号和电话号码已隐藏部分内容；查看完整信息将记入审计日志。" }
                    } @else {
                        p.muted { "正在显示完整信息，本次查看已记入审计日志。" }
                    }
                    (super::photo::photo_box(&m.id, has_photo))
                    table.info #member-record {
                        (row("姓名", &m.name))
                        (row("性别", sex_label(&m.sex)))
                        (row("公民身份证号", &m.id_number))
                        (row("民族", &m.ethnicity_name))
                        @match &m.birth_date {
                            Some(b) => (row("出生日期", b)),
                            None => (row("年龄", &m.age.map(|a| format!("{a}岁（出生日期已隐藏）")).unwrap_or_default())),
                        }
                        (row("学历", &m.education_name))
                        (row("人员类别", dict::label(&CATEGORIES, &m.category).unwrap_or("")))
                        tr { th { "所在党支部" } td { a href={"/orgs/" (m.branch_id) "?tab=members"} { (m.branch_name) } } }
                        (row("加入党组织日期", &m.joined_on))
                        (row("转正日期", &date(&m.full_on)))
                        (row("工作岗位", dict::label(&JOBS, &m.job).unwrap_or("")))
                        (row("联系电话", &m.phone))
                        (row("家庭住址", &m.address))
                        (row("党籍状态", dict::label(&STATUSES, &m.status).unwrap_or(&m.status)))
                        (row("是否为失联党员", yes_no(m.lost_contact)))
                        @if m.lost_contact { (row("失联日期", &date(&m.lost_contact_on))) }
                        (row("是否流动党员", yes_no(m.floating)))
                        @if m.floating { (row("外出流向", &date(&m.floating_to))) }
                        (row("注册手机号", &date(&m.registered_phone)))
                        (row("籍贯", &m.origin))
                        (row("职称", &m.title))
                        @if !m.new_social_stratum.is_empty() { (row("新社会阶层情况", &m.new_social_stratum)) }
                        (row("信息完整度", &format!("{}%", m.completeness)))
                    }
                }
            },
        ))
    }
    .await;
    super::or_error(&actor, result)
}

async fn edit_page(
    state: &AppState,
    actor: &Actor,
    m: &MemberView,
    form: &MemberInput,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let mut crumbs = org_crumbs(state, actor, &m.branch_id)
        .await
        .unwrap_or_default();
    crumbs.push((format!("/members/{}", m.id), m.name.clone()));
    crumbs.push((String::new(), "党员信息修改".to_string()));
    form_page(
        actor,
        "党员信息修改",
        &crumbs,
        &m.branch_id,
        &format!("/members/{}/edit", m.id),
        &format!("/members/{}", m.id),
        member_fields(&Mode::Edit { member: m }, form, errors),
        errors,
        status,
        Some(super::photo::photo_panel(
            actor,
            &m.id,
            super::photo::has_photo(state, &m.id).await,
        )),
    )
}

async fn edit_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    // The form holds the phone numbers to edit, so it reads the record unmasked (audited).
    let m = match ops::view(&state.db, &actor, &id, true).await {
        Ok(m) => m,
        Err(e) => return error_page(Some(&actor), e),
    };
    let form = MemberInput {
        sex: Some(m.sex.clone()),
        birth_date: m.birth_date.clone(),
        ethnicity: Some(m.ethnicity.clone()),
        education: Some(m.education.clone()),
        category: Some(m.category.clone()),
        joined_on: Some(m.joined_on.clone()),
        full_on: m.full_on.clone(),
        job: Some(m.job.clone()),
        phone: Some(m.phone.clone()),
        address: Some(m.address.clone()),
        lost_contact: Some(m.lost_contact),
        lost_contact_on: m.lost_contact_on.clone(),
        floating: Some(m.floating),
        floating_to: m.floating_to.clone(),
        registered_phone: m.registered_phone.clone(),
        origin: Some(m.origin.clone()),
        title: Some(m.title.clone()),
        ..MemberInput::default()
    };
    edit_page(
        &state,
        &actor,
        &m,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn edit_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<MemberInput>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    // Name, ID number and branch are not edited here; status and the extended set are kept.
    form.name = None;
    form.id_number = None;
    form.branch_id = None;
    form.status = None;
    form.new_social_stratum = None;
    // Every other field is on the form: an emptied one is cleared, not "keep as stored".
    for field in [
        &mut form.sex,
        &mut form.birth_date,
        &mut form.ethnicity,
        &mut form.education,
        &mut form.category,
        &mut form.joined_on,
        &mut form.full_on,
        &mut form.job,
        &mut form.phone,
        &mut form.address,
        &mut form.lost_contact_on,
        &mut form.floating_to,
        &mut form.registered_phone,
        &mut form.origin,
        &mut form.title,
    ] {
        field.get_or_insert_with(String::new);
    }
    match ops::edit(&state.db, &actor, &id, &form).await {
        Ok(()) => Redirect::to(&format!("/members/{id}?notice=member_saved")).into_response(),
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            match ops::view(&state.db, &actor, &id, false).await {
                Ok(m) => {
                    edit_page(
                        &state,
                        &actor,
                        &m,
                        &form,
                        &FormErrors::from_api(&e),
                        e.status,
                    )
                    .await
                }
                Err(e2) => error_page(Some(&actor), e2),
            }
        }
        Err(e) => error_page(Some(&actor), e),
    }
}
