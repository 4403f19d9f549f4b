//! 单位信息维护: the units tab of an organisation and the unit forms (新增单位, 单位信息维护,
//! 删除单位). Handlers parse, call the domain operations of `unit::routes` (which ask `access`
//! and keep the audit record) and render.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::orgs::{load_visible, pager, OrgPageQuery};
use super::{
    csrf_field, error_page, options, org_crumbs, page_with_status, select_field, text_field,
    CsrfForm, FormErrors, PageActor,
};
use crate::access::{self, Actor, Reach};
use crate::error::ApiError;
use crate::org::{store, OrgRow};
use crate::state::AppState;
use crate::unit::routes::{self as ops, UnitInput, UnitQuery, UnitView};
use crate::unit::{PARTY_ORG_SITUATIONS, UNIT_CATEGORIES};

pub fn router() -> super::PageRouter {
    super::PageRouter::new()
        .route("/units/new", get(new_form).post(new_submit))
        .route("/units/{id}/edit", get(edit_form).post(edit_submit))
        .route("/units/{id}/delete", get(delete_form).post(delete_submit))
}

/// The filters of the units tab: (query value, label).
const LINKAGES: [(&str, &str); 4] = [
    ("linked", "已建立党组织"),
    ("no_party_org", "未建立党组织"),
    ("unlinked", "未关联"),
    ("all", "全部"),
];

fn situation_label(code: i64) -> &'static str {
    PARTY_ORG_SITUATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, l)| *l)
        .unwrap_or("")
}

/// A query string value, percent-encoded.
pub fn enc(v: &str) -> String {
    serde_html_form::to_string([("v", v)])
        .map(|s| s.trim_start_matches("v=").to_string())
        .unwrap_or_default()
}

/// The units tab of an organisation page.
pub async fn tab(
    state: &AppState,
    actor: &Actor,
    org: &OrgRow,
    q: &OrgPageQuery,
) -> Result<Markup, ApiError> {
    let linkage = match q.linkage.as_deref() {
        Some(l) if LINKAGES.iter().any(|(k, _)| *k == l) => l,
        _ => "linked",
    };
    let text = q.q.clone().unwrap_or_default();
    let per_page = q.per_page.unwrap_or(20).clamp(1, 200);
    let page_no = q.page.unwrap_or(1).max(1);
    let query = UnitQuery {
        q: Some(text.clone()),
        linkage: Some(linkage.to_string()),
        org_id: Some(org.id.clone()),
        page: Some(page_no),
        per_page: Some(per_page),
    };
    let printing = super::print::is_on(q.print.as_deref());
    let list = if printing {
        let query = &query;
        super::print::all_rows(|p| async move {
            let chunk = UnitQuery {
                q: query.q.clone(),
                linkage: query.linkage.clone(),
                org_id: query.org_id.clone(),
                page: p.page,
                per_page: p.per_page,
            };
            ops::list(&state.db, actor, &chunk).await
        })
        .await?
    } else {
        ops::list(&state.db, actor, &query).await?
    };
    let base = format!(
        "/orgs/{}?tab=units&linkage={}&q={}",
        org.id,
        linkage,
        enc(&text)
    );
    Ok(html! {
        nav.filters #unit-filters {
            @for (key, label) in LINKAGES {
                a.filter.active[key == linkage] href={"/orgs/" (org.id) "?tab=units&linkage=" (key)} { (label) }
            }
        }
        form #unit-search.search method="get" action={"/orgs/" (org.id)} {
            input type="hidden" name="tab" value="units";
            input type="hidden" name="linkage" value=(linkage);
            label for="unit-q" { "单位名称或统一社会信用代码" }
            input #unit-q type="search" name="q" value=(text) placeholder="输入单位名称或统一社会信用代码";
            button type="submit" { "查询" }
            @if !list.items.is_empty() { (super::print::button(&format!("{base}&print=1"))) }
        }
        @if printing {
            (super::print::list_head(&format!("{} 单位信息", org.name), list.items.len(), list.total))
        }
        @if list.items.is_empty() {
            p.muted { "没有符合条件的单位" }
        } @else {
            table.list #unit-list {
                thead { tr { th { "单位名称" } th { "统一社会信用代码" } th { "单位类别" } th { "单位建立党组织情况" } th { "关联党组织" } } }
                tbody {
                    @for u in &list.items {
                        tr {
                            td { a href={"/units/" (u.id) "/edit"} { (u.name) } }
                            td { (u.credit_code) }
                            td { (u.category_name) }
                            td { (situation_label(u.party_org_situation)) }
                            td {
                                @for (i, l) in u.linked_orgs.iter().enumerate() {
                                    @if i > 0 { "、" }
                                    a href={"/orgs/" (l.id)} { (l.name) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !printing { (pager(&base, list.page, list.per_page, list.total)) }
    })
}

#[derive(Deserialize, Default)]
struct NewQuery {
    org: Option<String>,
}

/// The organisation a unit page belongs to: the organisation it is linked to (a linked unit
/// is maintained through that organisation's page, SPEC §3), else its owner, else the
/// managing organisation, else the actor's own — the first in the actor's scope.
async fn home_org(state: &AppState, actor: &Actor, u: &UnitView) -> Option<OrgRow> {
    let mut ids: Vec<&str> = u.linked_orgs.iter().map(|l| l.id.as_str()).collect();
    ids.push(u.owner_org_id.as_str());
    ids.extend(u.managing_org_id.as_deref());
    ids.push(actor.org_id.as_str());
    for id in ids {
        if let Ok(Some(o)) = store::get(state.db.read(), id).await {
            if access::org(actor, &o.code, Reach::Subtree).is_ok() {
                return Some(o);
            }
        }
    }
    None
}

/// The choices for 管理党组织: the organisation and its active direct children, plus the
/// current choice if it is elsewhere.
async fn managing_options(
    state: &AppState,
    org: &OrgRow,
    current: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = vec![(org.id.clone(), org.name.clone())];
    if let Ok((children, _)) = store::children(&state.db, &org.id, 200, 0).await {
        out.extend(
            children
                .into_iter()
                .filter(|c| c.status == "active")
                .map(|c| (c.id, c.name)),
        );
    }
    if let Some(id) = current.filter(|id| !id.is_empty() && !out.iter().any(|(o, _)| o == id)) {
        if let Ok(Some(o)) = store::get(state.db.read(), id).await {
            out.push((o.id, o.name));
        }
    }
    out
}

fn v(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

fn yes_no() -> Vec<(String, String)> {
    vec![
        ("false".to_string(), "否".to_string()),
        ("true".to_string(), "是".to_string()),
    ]
}

/// A required select (marked `*`) that starts blank (（请选择）) until a value is chosen.
pub(super) fn choice_field(
    name: &str,
    label: &str,
    opts: &[(String, String)],
    selected: &str,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.has-error[errors.fields.contains_key(name)] {
            label for=(name) { span.req { "*" } (label) }
            select id=(name) name=(name)
                aria-invalid=[errors.invalid(name)] aria-describedby=[errors.described_by(name)] {
                @if selected.is_empty() { option value="" { "（请选择）" } }
                @for (code, text) in opts {
                    option value=(code) selected[code == selected] { (text) }
                }
            }
            (errors.at(name))
        }
    }
}

/// The unit form shared by 新增单位 and 单位信息维护.
fn unit_fields(form: &UnitInput, errors: &FormErrors, managing: &[(String, String)]) -> Markup {
    let situations: Vec<(String, String)> = PARTY_ORG_SITUATIONS
        .iter()
        .map(|(c, l)| (c.to_string(), format!("{c} {l}")))
        .collect();
    let categories: Vec<(String, String)> = options(&UNIT_CATEGORIES)
        .into_iter()
        .map(|(c, l)| (c.clone(), format!("{c} {l}")))
        .collect();
    let situation = form
        .party_org_situation
        .map(|s| s.to_string())
        .unwrap_or_default();
    html! {
        (text_field("name", "单位名称", v(&form.name), true, errors))
        (text_field("credit_code", "统一社会信用代码", v(&form.credit_code), true, errors))
        (choice_field("category", "单位类别", &categories, v(&form.category), errors))
        (text_field("subcategory", "单位类别细分", v(&form.subcategory), false, errors))
        (select_field("has_party_group", "是否成立党组", &yes_no(),
            if form.has_party_group == Some(true) { "true" } else { "false" }, true, errors))
        (choice_field("party_org_situation", "单位建立党组织情况", &situations, &situation, errors))
        div.managing-org-field {
            (select_field("managing_org_id", "管理党组织（应建未建立党组织、未建立党组织的单位必填）",
                managing, v(&form.managing_org_id), false, errors))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn form_page(
    state: &AppState,
    actor: &Actor,
    home: &OrgRow,
    title: &str,
    action: &str,
    form: &UnitInput,
    errors: &FormErrors,
    status: StatusCode,
    extra: Markup,
) -> Response {
    let mut crumbs = org_crumbs(state, actor, &home.id).await.unwrap_or_default();
    crumbs.push((String::new(), title.to_string()));
    let managing = managing_options(state, home, form.managing_org_id.as_deref()).await;
    page_with_status(
        status,
        actor,
        title,
        &crumbs,
        Some(&home.id),
        html! {
            div.panel {
                h2 { (title) }
                (extra)
                (errors.banner())
                form #unit-form.form method="post" action=(action) {
                    (csrf_field(actor))
                    (unit_fields(form, errors, &managing))
                    div.actions {
                        button.primary type="submit" { "保存" }
                        a.button href={"/orgs/" (home.id) "?tab=units"} { "取消" }
                    }
                }
            }
        },
    )
}

/// Where the list shows a unit: linked ones under 已建立党组织, situation 3/4 under 未建立党组织,
/// the rest under 未关联.
fn linkage_of(linked: bool, situation: Option<i64>) -> &'static str {
    match (linked, situation) {
        (true, _) => "linked",
        (false, Some(3 | 4)) => "no_party_org",
        _ => "unlinked",
    }
}

async fn new_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<NewQuery>,
) -> Response {
    let org_id = q
        .org
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| actor.org_id.clone());
    let org = match load_visible(&state, &actor, &org_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let form = UnitInput {
        owner_org_id: Some(org.id.clone()),
        has_party_group: Some(false),
        ..UnitInput::default()
    };
    let action = format!("/units/new?org={}", enc(&org.id));
    let extra = html! { p.muted { "所属党组织：" (org.name) } };
    form_page(
        &state,
        &actor,
        &org,
        "新增单位",
        &action,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
        extra,
    )
    .await
}

async fn new_submit(
    State(state): State<AppState>,
    Query(q): Query<NewQuery>,
    f: CsrfForm<UnitInput>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let org_id = q
        .org
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| actor.org_id.clone());
    let org = match load_visible(&state, &actor, &org_id).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    form.owner_org_id = Some(org.id.clone());
    match ops::create(&state.db, &actor, &form).await {
        Ok(_) => {
            let linkage = linkage_of(false, form.party_org_situation);
            Redirect::to(&format!(
                "/orgs/{}?tab=units&linkage={linkage}&notice=unit_saved",
                org.id
            ))
            .into_response()
        }
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            let action = format!("/units/new?org={}", enc(&org.id));
            let extra = html! { p.muted { "所属党组织：" (org.name) } };
            form_page(
                &state,
                &actor,
                &org,
                "新增单位",
                &action,
                &form,
                &FormErrors::from_api(&e),
                e.status,
                extra,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

/// The unit the actor may edit and the organisation its pages belong to, or the refusal
/// page (404 outside the scope, 403 when another organisation keeps the unit).
async fn load_unit(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<(UnitView, OrgRow), Response> {
    let unit = ops::get_for_write(&state.db, actor, id)
        .await
        .map_err(|e| error_page(Some(actor), e))?;
    let home = home_org(state, actor, &unit)
        .await
        .ok_or_else(|| error_page(Some(actor), ApiError::not_found("单位")))?;
    Ok((unit, home))
}

fn edit_extra(unit: &UnitView) -> Markup {
    html! {
        @if !unit.linked_orgs.is_empty() {
            div.alert.alert-info role="note" {
                "该单位已关联党组织："
                @for (i, l) in unit.linked_orgs.iter().enumerate() {
                    @if i > 0 { "、" }
                    a href={"/orgs/" (l.id)} { (l.name) }
                }
                "。已关联党组织的单位只能由所关联党组织（及其上级）的管理员在该党组织页面维护，不能改为未建立党组织，也不能删除；更改单位类别将清空所关联党组织的党务工作信息。"
            }
        }
        div.toolbar {
            @if unit.linked_orgs.is_empty() {
                a.button.danger href={"/units/" (unit.id) "/delete"} { "删除" }
            } @else {
                (super::disabled_action("删除", "该单位已关联党组织，须先在党组织信息维护中解除关联，才能删除"))
            }
        }
    }
}

async fn edit_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let (unit, home) = match load_unit(&state, &actor, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = UnitInput {
        name: Some(unit.name.clone()),
        credit_code: Some(unit.credit_code.clone()),
        category: Some(unit.category.clone()),
        subcategory: Some(unit.subcategory.clone()),
        has_party_group: Some(unit.has_party_group),
        party_org_situation: Some(unit.party_org_situation),
        managing_org_id: unit.managing_org_id.clone(),
        owner_org_id: None,
    };
    let action = format!("/units/{}/edit", unit.id);
    form_page(
        &state,
        &actor,
        &home,
        "单位信息维护",
        &action,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
        edit_extra(&unit),
    )
    .await
}

async fn edit_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<UnitInput>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let (unit, home) = match load_unit(&state, &actor, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Every field is on the form: an emptied one is a cleared value, not "keep as stored".
    for field in [
        &mut form.name,
        &mut form.credit_code,
        &mut form.subcategory,
        &mut form.managing_org_id,
    ] {
        field.get_or_insert_with(String::new);
    }
    form.owner_org_id = None;
    match ops::edit(&state.db, &actor, &id, &form).await {
        Ok(()) => {
            let linkage = linkage_of(!unit.linked_orgs.is_empty(), form.party_org_situation);
            Redirect::to(&format!(
                "/orgs/{}?tab=units&linkage={linkage}&notice=unit_saved",
                home.id
            ))
            .into_response()
        }
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            let action = format!("/units/{}/edit", unit.id);
            form_page(
                &state,
                &actor,
                &home,
                "单位信息维护",
                &action,
                &form,
                &FormErrors::from_api(&e),
                e.status,
                edit_extra(&unit),
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

async fn delete_page(
    state: &AppState,
    actor: &Actor,
    unit: &UnitView,
    home: &OrgRow,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let mut crumbs = org_crumbs(state, actor, &home.id).await.unwrap_or_default();
    crumbs.push((String::new(), "删除单位".to_string()));
    page_with_status(
        status,
        actor,
        "删除单位",
        &crumbs,
        Some(&home.id),
        html! {
            div.panel {
                h2 { "删除单位：" (unit.name) }
                table.info {
                    tr { th { "单位名称" } td { (unit.name) } }
                    tr { th { "统一社会信用代码" } td { (unit.credit_code) } }
                    tr { th { "单位类别" } td { (unit.category_name) } }
                    tr { th { "单位建立党组织情况" } td { (situation_label(unit.party_org_situation)) } }
                }
                p { "删除后不可恢复（操作记入审计日志）。已关联党组织的单位须先在党组织信息维护中解除关联，才能删除。" }
                (errors.banner())
                form #delete-form method="post" action={"/units/" (unit.id) "/delete"} {
                    (csrf_field(actor))
                    div.actions {
                        button.primary.danger type="submit" data-confirm="确定删除该单位吗？删除后不可恢复。" { "删除" }
                        a.button href={"/units/" (unit.id) "/edit"} { "取消" }
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
    match load_unit(&state, &actor, &id).await {
        Ok((unit, home)) => {
            delete_page(
                &state,
                &actor,
                &unit,
                &home,
                &FormErrors::default(),
                StatusCode::OK,
            )
            .await
        }
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
    let (unit, home) = match load_unit(&state, &actor, &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match ops::delete(&state.db, &actor, &id).await {
        Ok(()) => Redirect::to(&format!(
            "/orgs/{}?tab=units&linkage=all&notice=unit_deleted",
            home.id
        ))
        .into_response(),
        Err(e) if e.status == StatusCode::CONFLICT => {
            delete_page(
                &state,
                &actor,
                &unit,
                &home,
                &FormErrors::from_api(&e),
                e.status,
            )
            .await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}
