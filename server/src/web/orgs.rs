//! 党组织信息维护: the organisation page (info, children, units, members tabs) and the forms
//! to create, edit, change the category of, revoke and delete organisations.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    csrf_field, date_field, disabled_action, error_page, org_crumbs, page, page_with_status,
    select_field, text_field, CsrfForm, FormErrors, PageActor,
};
use crate::access::{self, Actor, Reach};
use crate::error::ApiError;
use crate::org::routes::{self as ops, ChangeCategory, CreateOrg, EditOrg, RevokeOrg};
use crate::org::rules::{allowed_children, subordination_label, Category, Level, SUBORDINATIONS};
use crate::org::{store, OrgRow, OrgView};
use crate::state::AppState;

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/orgs/{id}", get(org_page))
        .route("/orgs/{id}/new", get(new_form).post(new_submit))
        .route("/orgs/{id}/edit", get(edit_form).post(edit_submit))
        .route(
            "/orgs/{id}/category",
            get(category_form).post(category_submit),
        )
        .route("/orgs/{id}/revoke", get(revoke_form).post(revoke_submit))
        .route("/orgs/{id}/delete", get(delete_form).post(delete_submit))
}

/// Loads an organisation the actor may see, or the refusal page.
pub async fn load_visible(state: &AppState, actor: &Actor, id: &str) -> Result<OrgRow, Response> {
    let org = ops::load(&state.db, id)
        .await
        .map_err(|e| error_page(Some(actor), e))?;
    access::org(actor, &org.code, Reach::Subtree).map_err(|e| error_page(Some(actor), e))?;
    Ok(org)
}

#[derive(Deserialize, Default)]
pub struct OrgPageQuery {
    pub tab: Option<String>,
    pub notice: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_sub: Option<String>,
    pub q: Option<String>,
    /// Member list order: `pinyin` (default) | `strokes`
    pub sort: Option<String>,
    pub linkage: Option<String>,
    /// `1`: the info tab shows the whole contact phone (audited)
    pub unmask: Option<String>,
    /// `1`: the print view of the tab's list, every row (see `web::print`)
    pub print: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "created" => "党组织已新增",
        "saved" => "已保存",
        "category" => "组织类别已更改",
        "revoked" => "党组织已撤销",
        "deleted" => "党组织已删除",
        "member_saved" => "党员信息已保存",
        "member_created" => "党员已录入",
        "member_deleted" => {
            "已删除误录入的党员（党员补删），删除记录保留在历史党员的“党员补删记录”中"
        }
        "unit_saved" => "单位信息已保存",
        "unit_deleted" => "单位已删除",
        _ => return None,
    })
}

pub fn category_label(code: &str) -> String {
    Category::parse(code)
        .map(|c| c.label().to_string())
        .unwrap_or_else(|| code.to_string())
}

pub fn level_label(code: Option<&str>) -> &'static str {
    code.and_then(Level::parse).map(|l| l.label()).unwrap_or("")
}

pub fn unit_mode_label(code: Option<&str>) -> &'static str {
    match code {
        Some("same_as_parent") => "与上级党组织相同",
        Some("legal_entity") => "法人单位",
        Some("joint") => "联合党支部",
        _ => "",
    }
}

/// The toolbar of an organisation page: what the actor may do here.
/// Why an organisation cannot be revoked and why it cannot be deleted now (empty: it can).
pub struct Blockers {
    pub revoke: Vec<String>,
    pub delete: Vec<String>,
}

impl Blockers {
    pub async fn of(state: &AppState, org: &OrgRow) -> Result<Blockers, ApiError> {
        let mut conn = state.db.read().acquire().await?;
        Ok(Blockers {
            revoke: store::blockers(&mut conn, org, false).await?,
            delete: store::blockers(&mut conn, org, true).await?,
        })
    }

    pub fn reason(verb: &str, list: &[String]) -> String {
        format!("该党组织有{}，不能{verb}", list.join("、"))
    }
}

fn toolbar(actor: &Actor, org: &OrgRow, blockers: &Blockers) -> Markup {
    let below = access::org(actor, &org.code, Reach::StrictlyBelow).is_ok();
    let branch = org.category().is_some_and(Category::is_branch);
    let active = org.is_active();
    html! {
        div.toolbar {
            @if active && !branch { a.button href={"/orgs/" (org.id) "/new"} { "组织新增" } }
            @if active { a.button href={"/orgs/" (org.id) "/edit"} { "编辑" } }
            @if active && below { a.button href={"/orgs/" (org.id) "/category"} { "更改组织类别" } }
            @if active && branch { a.button href={"/orgs/" (org.id) "/members/new"} { "新增党员" } }
            @if active { a.button href={"/units/new?org=" (org.id)} { "新增单位" } }
            a.button #org-stats-link href={"/stats?org_id=" (org.id)} { "党员统计" }
            a.button #org-form-link href={"/orgs/" (org.id) "/form"} { "打印采集表" }
            @if active && below {
                @if blockers.revoke.is_empty() {
                    a.button.danger href={"/orgs/" (org.id) "/revoke"} { "撤销" }
                } @else {
                    (disabled_action("撤销", &Blockers::reason("撤销", &blockers.revoke)))
                }
            }
            @if below {
                @if blockers.delete.is_empty() {
                    a.button.danger href={"/orgs/" (org.id) "/delete"} { "删除" }
                } @else {
                    (disabled_action("删除", &Blockers::reason("删除", &blockers.delete)))
                }
            }
        }
    }
}

/// The tabs; a branch (党支部, 联合党支部) has no organisations below it, so no 下级党组织 tab
/// (unless one is there after all, say from an import).
fn tabs(org: &OrgView, branch: bool, current: &str) -> Markup {
    let tab = |key: &str, text: String| {
        html! {
            a.tab.active[current == key] href={"/orgs/" (org.id) "?tab=" (key)} { (text) }
        }
    };
    html! {
        nav.tabs {
            (tab("info", "基本信息".to_string()))
            @if !branch || org.child_count > 0 {
                (tab("children", format!("下级党组织（{}）", org.child_count)))
            }
            (tab("units", "单位信息".to_string()))
            (tab("members", format!("党员信息（{}）", org.member_count)))
        }
    }
}

fn info(org: &OrgView) -> Markup {
    let row = |k: &str, v: &str| html! { tr { th { (k) } td { (v) } } };
    html! {
        table.info {
            (row("党组织全称", &org.name))
            (row("简称", &org.short_name))
            (row("党组织统一编码", &org.code))
            (row("组织类别", &format!("{}（{}）", org.category_name, org.category)))
            @if org.level.is_some() { (row("级别", level_label(org.level.as_deref()))) }
            (row("书记", &org.secretary))
            (row("联系人", &org.contact_name))
            tr {
                th { "联系电话" }
                td #contact-phone {
                    (org.contact_phone)
                    @if org.masked && !org.contact_phone.is_empty() {
                        " "
                        a.button #unmask-contact href={"/orgs/" (org.id) "?unmask=1"} { "显示完整信息" }
                    }
                }
            }
            (row("隶属关系", &subordination_label(&org.subordination)))
            (row("批准建立日期", org.founded_on.as_deref().unwrap_or("")))
            (row("所在单位情况", unit_mode_label(org.unit_mode.as_deref())))
            (row("党组织工作分类", org.work_category.as_deref().and_then(crate::unit::category_label).unwrap_or("")))
            (row("具有发展党员审批权限", if org.may_approve_development { "是" } else { "否" }))
            (row("状态", if org.status == "active" { "正常" } else { "已撤销" }))
            @if org.status != "active" {
                (row("撤销文号", org.revoked_document_no.as_deref().unwrap_or("")))
                (row("撤销原因", org.revoked_reason.as_deref().unwrap_or("")))
            }
            (row("党员数（含下级）", &org.member_count.to_string()))
            (row("党员信息完整度（平均，含下级）", &org.completeness.map(|c| format!("{c}%")).unwrap_or_else(|| "—".into())))
            (row("下级党组织数", &org.child_count.to_string()))
        }
        h3 { "关联单位" }
        @if org.units.is_empty() {
            p.muted { "未关联单位" }
        } @else {
            table.list {
                thead { tr { th { "单位名称" } th { "统一社会信用代码" } th { "单位类别" } th { "主要单位" } } }
                tbody {
                    @for u in &org.units {
                        tr {
                            td { a href={"/units/" (u.id) "/edit"} { (u.name) } }
                            td { (u.credit_code) }
                            td { (crate::unit::category_label(&u.category).unwrap_or("")) }
                            td { @if u.is_default { "是" } }
                        }
                    }
                }
            }
        }
    }
}

/// A pager: 首页 / 上一页 / 第 x/y 页 / 下一页 / 尾页, keeping the other query parameters.
pub fn pager(base: &str, page: i64, per_page: i64, total: i64) -> Markup {
    let pages = ((total + per_page - 1) / per_page).max(1);
    let link = |p: i64| format!("{base}&page={p}&per_page={per_page}");
    html! {
        div.pager {
            span { "共 " (total) " 条，第 " (page) "/" (pages) " 页" }
            @if page > 1 {
                a href=(link(1)) { "首页" }
                a href=(link(page - 1)) rel="prev" { "上一页" }
            }
            @if page < pages {
                a href=(link(page + 1)) rel="next" { "下一页" }
                a href=(link(pages)) { "尾页" }
            }
        }
    }
}

async fn children_tab(
    state: &AppState,
    org: &OrgView,
    q: &OrgPageQuery,
) -> Result<Markup, ApiError> {
    let printing = super::print::is_on(q.print.as_deref());
    let (per_page, page) = if printing {
        (super::print::PRINT_MAX as i64, 1)
    } else {
        (
            q.per_page.unwrap_or(50).clamp(1, 200),
            q.page.unwrap_or(1).max(1),
        )
    };
    let (items, total) =
        store::children(&state.db, &org.id, per_page, (page - 1) * per_page).await?;
    Ok(html! {
        @if printing {
            (super::print::list_head(&format!("{} 下级党组织", org.name), items.len(), total))
        } @else if !items.is_empty() {
            div.list-tools { (super::print::button(&format!("/orgs/{}?tab=children&print=1", org.id))) }
            (crate::roster::org_buttons(&org.id))
        }
        @if items.is_empty() {
            p.muted { "没有下级党组织" }
        } @else {
            table.list {
                thead { tr { th { "党组织名称" } th { "统一编码" } th { "组织类别" } th { "党员数" } th { "信息完整度" } th { "下级组织数" } th { "状态" } } }
                tbody {
                    @for c in &items {
                        tr {
                            td { a href={"/orgs/" (c.id)} { (c.name) } }
                            td { (c.code) }
                            td { (category_label(&c.category)) }
                            td.num { (c.member_count) }
                            td.num { (c.completeness.map(|v| format!("{v}%")).unwrap_or_else(|| "—".into())) }
                            td.num { (c.child_count) }
                            td { @if c.status == "active" { "正常" } @else { span.badge { "已撤销" } } }
                        }
                    }
                }
            }
            @if !printing { (pager(&format!("/orgs/{}?tab=children", org.id), page, per_page, total)) }
        }
    })
}

async fn org_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<OrgPageQuery>,
) -> Response {
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let result: Result<Response, ApiError> = async {
        let crumbs = org_crumbs(&state, &actor, &org.id).await?;
        let blockers = Blockers::of(&state, &org).await?;
        let toolbar = toolbar(&actor, &org, &blockers);
        let unmask = matches!(q.unmask.as_deref(), Some("1") | Some("true"));
        let view = ops::view(&state.db, &actor, &org.id, unmask).await?;
        let tab = q.tab.clone().unwrap_or_else(|| "info".to_string());
        let content = match tab.as_str() {
            "children" => children_tab(&state, &view, &q).await?,
            "units" => super::units::tab(&state, &actor, &org, &q).await?,
            "members" => super::members::tab(&state, &actor, &org, &q).await?,
            _ => info(&view),
        };
        let notice = q.notice.as_deref().and_then(notice_text);
        Ok(page(
            &actor,
            &view.name,
            &crumbs,
            Some(&view.id),
            html! {
                div.panel {
                    div.org-head {
                        h2 { (view.name) }
                        span.code { "统一编码 " (view.code) }
                        span.category { (view.category_name) }
                        @if view.status != "active" { span.badge { "已撤销" } }
                    }
                    @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                    (toolbar)
                    (tabs(&view, org.category().is_some_and(Category::is_branch), &tab))
                    div.tab-body { (content) }
                }
            },
        ))
    }
    .await;
    super::or_error(&actor, result)
}

/// 党组织隶属关系 as select options; a value recorded before the code list stays selectable.
fn subordination_options(current: &str) -> Vec<(String, String)> {
    let mut opts: Vec<(String, String)> = SUBORDINATIONS
        .iter()
        .map(|(c, l)| (c.to_string(), format!("{l}（{c}）")))
        .collect();
    if !current.is_empty() && !SUBORDINATIONS.iter().any(|(c, _)| *c == current) {
        opts.push((current.to_string(), current.to_string()));
    }
    opts
}

fn level_options() -> Vec<(String, String)> {
    [Level::Central, Level::Province, Level::City, Level::County]
        .iter()
        .map(|l| (l.as_str().to_string(), l.label().to_string()))
        .collect()
}

/// Where the unit form of 组织新增 and its dialog put a new unit: the organisation that keeps it.
pub struct UnitContext<'a> {
    /// 与上级党组织相同 is offered only when the parent has a legal-entity unit
    pub parent_has_unit: bool,
    /// the organisation that will keep a unit created in the dialog
    pub owner_id: &'a str,
    pub csrf: &'a str,
}

fn unit_mode_field(
    selected: &str,
    errors: &FormErrors,
    chosen: &[(String, String, bool)],
    ctx: &UnitContext<'_>,
) -> Markup {
    let modes = [
        ("same_as_parent", "与上级党组织相同"),
        ("legal_entity", "法人单位"),
        ("joint", "联合党支部"),
    ];
    let unit_categories: Vec<(String, String)> = crate::unit::UNIT_CATEGORIES
        .iter()
        .map(|(c, l)| (c.to_string(), format!("{c} {l}")))
        .collect();
    html! {
        fieldset.field.unit-mode.has-error[errors.fields.contains_key("unit_mode") || errors.fields.contains_key("unit_ids") || errors.fields.contains_key("default_unit_id")] {
            legend { "所在单位情况（党委、党总支、党支部等基层党组织必填）" }
            @for (code, text) in modes {
                @if code != "same_as_parent" || ctx.parent_has_unit || selected == code {
                    label.radio { input type="radio" name="unit_mode" value=(code) checked[selected == code]; (text) }
                }
            }
            p.muted.hint.unit-mode-note {
                @if ctx.parent_has_unit {
                    "与上级党组织相同：与上级党组织在同一法人单位，不再另行关联单位；"
                } @else {
                    "上级党组织没有法人单位，不能选择“与上级党组织相同”；"
                }
                "法人单位：建在一个法人单位中，选择或新建该单位；"
                "联合党支部：由两个及以上单位的党员联合组成，选择各单位并指定主要单位。"
            }
            (errors.at("unit_mode"))
            div.unit-picker {
                label for="unit-search" { "关联单位（输入单位名称或信用代码查找；没有合适的单位时可新建）" }
                div.unit-search-row {
                    input #unit-search type="search" autocomplete="off" placeholder="输入单位名称查找";
                    button #new-unit type="button" { "新建单位" }
                }
                ul #unit-search-results.search-results hidden {}
                ul #chosen-units.chosen {
                    @for (id, name, is_default) in chosen {
                        li {
                            input type="hidden" name="unit_ids" value=(id);
                            label { input type="radio" name="default_unit_id" value=(id) checked[*is_default]; "主要单位" }
                            span { (name) }
                            button.link.remove-unit type="button" { "移除" }
                        }
                    }
                }
                (errors.at("unit_ids"))
                (errors.at("default_unit_id"))
            }
            // The dialog's inputs have no name: they never travel with the organisation form.
            dialog #new-unit-dialog data-owner=(ctx.owner_id) data-csrf=(ctx.csrf) aria-labelledby="new-unit-title" {
                h3 #new-unit-title { "新建单位" }
                div.alert.alert-error #nu-errors hidden role="alert" {}
                div.field {
                    label for="nu-name" { span.req { "*" } "单位名称" }
                    input #nu-name type="text" data-field="name" autocomplete="off";
                    div.field-error #nu-name-error hidden {}
                }
                div.field {
                    label for="nu-credit-code" { span.req { "*" } "统一社会信用代码" }
                    input #nu-credit-code type="text" data-field="credit_code" maxlength="18" autocomplete="off";
                    div #nu-credit-code-check.check-note aria-live="polite" {}
                    div.field-error #nu-credit-code-error hidden {}
                }
                div.field {
                    label for="nu-category" { span.req { "*" } "单位类别" }
                    select #nu-category data-field="category" {
                        option value="" { "（请选择）" }
                        @for (code, text) in &unit_categories { option value=(code) { (text) } }
                    }
                    div.field-error #nu-category-error hidden {}
                }
                p.muted.hint { "单位建立党组织情况按所在单位情况填写：法人单位为“单独建立基层党组织的”，联合党支部为“建立联合党支部的”。新建的单位由本党组织维护。" }
                div.actions {
                    button.primary #nu-save type="button" { "保存并关联" }
                    button #nu-cancel type="button" { "取消" }
                }
            }
        }
    }
}

async fn chosen_units(
    state: &AppState,
    ids: &[String],
    default: Option<&str>,
) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for id in ids {
        if let Ok(Some(name)) =
            sqlx::query_scalar::<_, String>("SELECT name FROM units WHERE id = $1")
                .bind(id)
                .fetch_optional(state.db.read())
                .await
        {
            out.push((id.clone(), name, default == Some(id.as_str())));
        }
    }
    out
}

fn v(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

async fn create_page(
    state: &AppState,
    actor: &Actor,
    parent: &OrgRow,
    form: &CreateOrg,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let allowed = parent
        .category()
        .map(|c| allowed_children(c, parent.level()))
        .unwrap_or_default();
    let categories: Vec<(String, String)> = allowed
        .iter()
        .map(|c| (c.code().to_string(), format!("{} {}", c.code(), c.label())))
        .collect();
    let crumbs = org_crumbs(state, actor, &parent.id)
        .await
        .unwrap_or_default();
    let chosen = chosen_units(
        state,
        form.unit_ids.as_deref().unwrap_or(&[]),
        form.default_unit_id.as_deref(),
    )
    .await;
    page_with_status(
        status,
        actor,
        "组织新增",
        &crumbs,
        Some(&parent.id),
        html! {
            div.panel {
                h2 { "组织新增" }
                p.muted { "上级党组织：" (parent.name) }
                (errors.banner())
                form #org-form.form method="post" action={"/orgs/" (parent.id) "/new"} {
                    (csrf_field(actor))
                    input type="hidden" name="parent_id" value=(parent.id);
                    (text_field("name", "党组织全称", v(&form.name), true, errors))
                    (text_field("short_name", "简称", v(&form.short_name), false, errors))
                    (select_field("category", "组织类别", &categories, v(&form.category), true, errors))
                    div.level-field { (select_field("level", "级别（中共各级委员会）", &level_options(), v(&form.level), false, errors)) }
                    (text_field("secretary", "书记", v(&form.secretary), true, errors))
                    (text_field("contact_name", "联系人", v(&form.contact_name), true, errors))
                    (text_field("contact_phone", "联系电话", v(&form.contact_phone), true, errors))
                    (select_field("subordination", "党组织隶属关系", &subordination_options(v(&form.subordination)), v(&form.subordination), false, errors))
                    (date_field("founded_on", "批准建立日期", v(&form.founded_on), true, errors))
                    (unit_mode_field(v(&form.unit_mode), errors, &chosen, &UnitContext {
                        parent_has_unit: parent.has_legal_entity_unit(),
                        owner_id: &parent.id,
                        csrf: &actor.csrf_token,
                    }))
                    @if actor.tier == Some(1) {
                        (select_field("may_approve_development", "具有发展党员审批权限（仅党委）",
                            &[("false".to_string(), "否".to_string()), ("true".to_string(), "是".to_string())],
                            if form.may_approve_development == Some(true) { "true" } else { "false" }, true, errors))
                    }
                    div.actions {
                        button.primary type="submit" { "保存" }
                        a.button href={"/orgs/" (parent.id)} { "取消" }
                    }
                }
            }
        },
    )
}

async fn new_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let parent = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = CreateOrg {
        unit_mode: parent
            .has_legal_entity_unit()
            .then(|| "same_as_parent".to_string()),
        ..CreateOrg::default()
    };
    create_page(
        &state,
        &actor,
        &parent,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn new_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<CreateOrg>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    form.parent_id = Some(id.clone());
    let parent = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match ops::create_under(&state.db, &actor, &form).await {
        Ok(new_id) => Redirect::to(&format!("/orgs/{new_id}?notice=created")).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT => {
            create_page(
                &state,
                &actor,
                &parent,
                &form,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

async fn edit_page(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    form: &EditOrg,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let may_rename = access::org(actor, &org.code, Reach::StrictlyBelow).is_ok();
    let crumbs = org_crumbs(state, actor, &org.id).await.unwrap_or_default();
    let basic = org.category().is_some_and(Category::is_basic);
    let parent_has_unit = match &org.parent_id {
        Some(p) => store::get(state.db.read(), p)
            .await
            .ok()
            .flatten()
            .is_some_and(|p| p.has_legal_entity_unit()),
        None => false,
    };
    let chosen = chosen_units(
        state,
        form.unit_ids.as_deref().unwrap_or(&[]),
        form.default_unit_id.as_deref(),
    )
    .await;
    page_with_status(
        status,
        actor,
        "党组织信息维护",
        &crumbs,
        Some(&org.id),
        html! {
            div.panel {
                h2 { "党组织信息维护" }
                p.muted { "党组织统一编码：" (org.code) "（系统分配，不可修改）；组织类别：" (category_label(&org.category)) }
                (errors.banner())
                form #org-form.form method="post" action={"/orgs/" (org.id) "/edit"} {
                    (csrf_field(actor))
                    @if may_rename {
                        (text_field("name", "党组织全称（修改即为更名）", v(&form.name), true, errors))
                    } @else {
                        div.field {
                            label { "党组织全称" }
                            input type="text" value=(org.name) disabled;
                            p.muted { "本级党组织的名称只能由上级党组织管理员修改" }
                        }
                    }
                    (text_field("short_name", "简称", v(&form.short_name), false, errors))
                    (text_field("secretary", "书记", v(&form.secretary), true, errors))
                    (text_field("contact_name", "联系人", v(&form.contact_name), true, errors))
                    (text_field("contact_phone", "联系电话", v(&form.contact_phone), true, errors))
                    (select_field("subordination", "党组织隶属关系", &subordination_options(v(&form.subordination)), v(&form.subordination), false, errors))
                    (date_field("founded_on", "批准建立日期", v(&form.founded_on), true, errors))
                    @if basic && may_rename { (unit_mode_field(v(&form.unit_mode), errors, &chosen, &UnitContext {
                        parent_has_unit,
                        owner_id: &org.id,
                        csrf: &actor.csrf_token,
                    })) }
                    @if actor.tier == Some(1) && may_rename && org.category() == Some(Category::BasicCommittee) {
                        (select_field("may_approve_development", "具有发展党员审批权限",
                            &[("false".to_string(), "否".to_string()), ("true".to_string(), "是".to_string())],
                            if form.may_approve_development == Some(true) { "true" } else { "false" }, true, errors))
                    }
                    div.actions {
                        button.primary type="submit" { "保存" }
                        a.button href={"/orgs/" (org.id)} { "取消" }
                    }
                }
            }
        },
    )
}

async fn edit_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let units = store::linked_units(state.db.read(), &org.id)
        .await
        .unwrap_or_default();
    // The form holds the contact phone to edit: shown whole, so audited.
    if let Err(e) = ops::audit_contact_shown(&state.db, &actor, &org, "edit form").await {
        return error_page(Some(&actor), e);
    }
    let form = EditOrg {
        name: Some(org.name.clone()),
        short_name: Some(org.short_name.clone()),
        secretary: Some(org.secretary.clone()),
        contact_name: Some(org.contact_name.clone()),
        contact_phone: Some(org.contact_phone.clone()),
        subordination: Some(org.subordination.clone()),
        founded_on: org.founded_on.clone(),
        may_approve_development: Some(org.may_approve_development != 0),
        unit_mode: org.unit_mode.clone(),
        unit_ids: Some(units.iter().map(|u| u.id.clone()).collect()),
        default_unit_id: units.iter().find(|u| u.is_default).map(|u| u.id.clone()),
    };
    edit_page(
        &state,
        &actor,
        &org,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn edit_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<EditOrg>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if access::org(&actor, &org.code, Reach::StrictlyBelow).is_err() {
        form.name = None;
        form.unit_mode = None;
        form.unit_ids = None;
        form.may_approve_development = None;
    }
    if !org.category().is_some_and(Category::is_basic) {
        form.unit_mode = None;
        form.unit_ids = None;
    }
    match ops::edit(&state.db, &actor, &id, &form).await {
        Ok(()) => Redirect::to(&format!("/orgs/{id}?notice=saved")).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT => {
            edit_page(
                &state,
                &actor,
                &org,
                &form,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

async fn category_page(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    form: &ChangeCategory,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let parent = match &org.parent_id {
        Some(p) => store::get(state.db.read(), p).await.ok().flatten(),
        None => None,
    };
    let allowed = parent
        .as_ref()
        .and_then(|p| p.category().map(|c| allowed_children(c, p.level())))
        .unwrap_or_default();
    let categories: Vec<(String, String)> = allowed
        .iter()
        .map(|c| (c.code().to_string(), format!("{} {}", c.code(), c.label())))
        .collect();
    let crumbs = org_crumbs(state, actor, &org.id).await.unwrap_or_default();
    let chosen = chosen_units(
        state,
        form.unit_ids.as_deref().unwrap_or(&[]),
        form.default_unit_id.as_deref(),
    )
    .await;
    page_with_status(
        status,
        actor,
        "更改组织类别",
        &crumbs,
        Some(&org.id),
        html! {
            div.panel {
                h2 { "更改组织类别" }
                div.alert.alert-warn role="note" {
                    "提示：组织类别由基层党组织（党委、党总支、党支部等）改为党委（工委）类组织时，将解除所关联的单位并清空党组织的党务工作信息；"
                    "由党委（工委）类改为基层党组织时，须关联所在单位。更改后请核对党组织信息。"
                }
                p.muted { "当前类别：" (category_label(&org.category)) }
                (errors.banner())
                form #category-form.form method="post" action={"/orgs/" (org.id) "/category"} {
                    (csrf_field(actor))
                    (select_field("category", "新的组织类别", &categories, v(&form.category), true, errors))
                    div.level-field { (select_field("level", "级别（中共各级委员会）", &level_options(), v(&form.level), false, errors)) }
                    (unit_mode_field(v(&form.unit_mode), errors, &chosen, &UnitContext {
                        parent_has_unit: parent.as_ref().is_some_and(|p| p.has_legal_entity_unit()),
                        owner_id: &org.id,
                        csrf: &actor.csrf_token,
                    }))
                    div.actions {
                        button.primary type="submit" data-confirm="确定更改组织类别吗？" { "确定" }
                        a.button href={"/orgs/" (org.id)} { "取消" }
                    }
                }
            }
        },
    )
}

async fn category_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    // The current situation and units are preselected: a change that keeps them needs no
    // new choice.
    let links = store::unit_links(state.db.read(), &org.id)
        .await
        .unwrap_or_default();
    let form = ChangeCategory {
        category: Some(org.category.clone()),
        level: org.level.clone(),
        unit_mode: org.unit_mode.clone(),
        unit_ids: (!links.is_empty()).then(|| links.iter().map(|l| l.0.clone()).collect()),
        default_unit_id: links.iter().find(|l| l.1 != 0).map(|l| l.0.clone()),
    };
    category_page(
        &state,
        &actor,
        &org,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn category_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<ChangeCategory>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    if form.unit_ids.as_ref().is_some_and(|u| u.is_empty()) && form.unit_mode.is_none() {
        form.unit_ids = None;
    }
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match ops::change_category_of(&state.db, &actor, &id, &form).await {
        Ok(()) => Redirect::to(&format!("/orgs/{id}?notice=category")).into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST || e.status == StatusCode::CONFLICT => {
            category_page(
                &state,
                &actor,
                &org,
                &form,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

async fn revoke_page(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    form: &RevokeOrg,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let crumbs = org_crumbs(state, actor, &org.id).await.unwrap_or_default();
    let blocked = match Blockers::of(state, org).await {
        Ok(b) => b.revoke,
        Err(e) => return error_page(Some(actor), e),
    };
    page_with_status(
        status,
        actor,
        "撤销党组织",
        &crumbs,
        Some(&org.id),
        html! {
            div.panel {
                h2 { "撤销党组织：" (org.name) }
                p.muted { "撤销后党组织保留在历史中，不再办理新的业务。有下级党组织、党员、关联单位或授权的党组织不能撤销。" }
                (errors.banner())
                form #revoke-form.form method="post" action={"/orgs/" (org.id) "/revoke"} {
                    (csrf_field(actor))
                    (text_field("document_no", "撤销文号", v(&form.document_no), true, errors))
                    div.field.has-error[errors.fields.contains_key("reason")] {
                        label for="reason" { span.req { "*" } "撤销原因" }
                        textarea #reason name="reason" rows="3" { (v(&form.reason)) }
                        (errors.at("reason"))
                    }
                    @if !blocked.is_empty() {
                        div.alert.alert-warn role="note" { (Blockers::reason("撤销", &blocked)) }
                    }
                    div.actions {
                        @if blocked.is_empty() {
                            button.primary.danger type="submit" data-confirm="确定撤销该党组织吗？" data-check-required { "撤销" }
                        } @else {
                            (disabled_action("撤销", &Blockers::reason("撤销", &blocked)))
                        }
                        a.button href={"/orgs/" (org.id)} { "取消" }
                    }
                }
            }
        },
    )
}

async fn revoke_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    match load_visible(&state, &actor, &id).await {
        Ok(org) => {
            revoke_page(
                &state,
                &actor,
                &org,
                &RevokeOrg::default(),
                &FormErrors::default(),
                StatusCode::OK,
            )
            .await
        }
        Err(r) => r,
    }
}

async fn revoke_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<RevokeOrg>,
) -> Response {
    let actor = f.actor;
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match ops::revoke(&state.db, &actor, &id, &f.form).await {
        Ok(()) => Redirect::to(&format!("/orgs/{id}?notice=revoked")).into_response(),
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            revoke_page(
                &state,
                &actor,
                &org,
                &f.form,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

async fn delete_page(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let crumbs = org_crumbs(state, actor, &org.id).await.unwrap_or_default();
    let blocked = match Blockers::of(state, org).await {
        Ok(b) => b.delete,
        Err(e) => return error_page(Some(actor), e),
    };
    page_with_status(
        status,
        actor,
        "删除党组织",
        &crumbs,
        Some(&org.id),
        html! {
            div.panel {
                h2 { "删除党组织：" (org.name) }
                p { "删除仅用于误建的党组织，删除后不可恢复（操作记入审计日志）。有下级党组织、党员、关联单位或授权的党组织不能删除。" }
                (errors.banner())
                form #delete-form method="post" action={"/orgs/" (org.id) "/delete"} {
                    (csrf_field(actor))
                    @if !blocked.is_empty() {
                        div.alert.alert-warn role="note" { (Blockers::reason("删除", &blocked)) }
                    }
                    div.actions {
                        @if blocked.is_empty() {
                            button.primary.danger type="submit" data-confirm="确定删除该党组织吗？删除后不可恢复。" { "删除" }
                        } @else {
                            (disabled_action("删除", &Blockers::reason("删除", &blocked)))
                        }
                        a.button href={"/orgs/" (org.id)} { "取消" }
                    }
                }
            }
        },
    )
}

async fn delete_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    match load_visible(&state, &actor, &id).await {
        Ok(org) => delete_page(&state, &actor, &org, &FormErrors::default(), StatusCode::OK).await,
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn delete_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<Empty>,
) -> Response {
    let actor = f.actor;
    let org = match load_visible(&state, &actor, &id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    match ops::delete(&state.db, &actor, &id).await {
        Ok(()) => {
            let parent = org
                .parent_id
                .clone()
                .unwrap_or_else(|| actor.org_id.clone());
            Redirect::to(&format!("/orgs/{parent}?tab=children&notice=deleted")).into_response()
        }
        Err(e) if e.status == StatusCode::CONFLICT => {
            delete_page(&state, &actor, &org, &FormErrors::from_api(&e), e.status).await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}
