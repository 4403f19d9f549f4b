//! The pages of the comprehensive query 综合查询: `/query/members`, `/query/orgs`,
//! `/query/units`. The conditions travel in the form (`c0.field`, `c0.mode`, `c0.value`,
//! `c0.values`, `c0.from`, `c0.to`, …), so the page works as a plain GET form: "+" and "−"
//! are submit buttons the server answers by re-rendering with a row more or less; app.js
//! does the same in place (`data-query-*`) and re-renders when a field or mode changes.
//! Saving 保存为固定查询 and 导出Excel are POST forms carrying the shown conditions.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{html, Markup};

use super::rules::{self, Type};
use super::{store, Condition, Kind, QueryBody, QueryPage, SaveBody, SavedQuery, SortSpec};
use crate::access::Actor;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{csrf_field, error_page, page_with_status, CsrfForm, PageActor, PageRouter};

pub fn router() -> PageRouter {
    PageRouter::new()
        .route("/query/members", get(members_page))
        .route("/query/orgs", get(orgs_page))
        .route("/query/units", get(units_page))
        .route("/query/{kind}/export", post(export_submit))
        .route("/query/{kind}/save", post(save_submit))
        .route("/query/saved/{id}/delete", post(delete_submit))
}

/// What the form carries.
#[derive(Debug, Clone)]
struct FormState {
    body: QueryBody,
    /// Only re-render (a field or mode changed): no query, no errors.
    refresh: bool,
    saved_name: String,
}

fn pairs(raw: &str) -> Vec<(String, String)> {
    serde_html_form::from_str::<Vec<(String, String)>>(raw).unwrap_or_default()
}

/// Reads the form's pairs; no condition at all gives the kind's default conditions.
fn parse(kind: Kind, pairs: &[(String, String)], actor: &Actor) -> FormState {
    let mut rows: BTreeMap<usize, Condition> = BTreeMap::new();
    let mut body = QueryBody {
        include_sub: Some(true),
        ..QueryBody::default()
    };
    let mut add = false;
    let mut remove: Option<usize> = None;
    let mut refresh = false;
    let mut sort_field = None;
    let mut sort_dir = None;
    let mut saw_form = false;
    let mut saved_name = String::new();
    for (k, v) in pairs {
        if let Some(rest) = k.strip_prefix('c') {
            if let Some((i, part)) = rest.split_once('.') {
                if let Ok(i) = i.parse::<usize>() {
                    if i >= rules::MAX_CONDITIONS * 2 {
                        continue;
                    }
                    saw_form = true;
                    let c = rows.entry(i).or_default();
                    match part {
                        "field" => c.field = v.clone(),
                        "mode" => c.mode = v.clone(),
                        "value" => c.value = Some(v.clone()),
                        "values" => c.values.get_or_insert_with(Vec::new).push(v.clone()),
                        "from" => c.from = Some(v.clone()),
                        "to" => c.to = Some(v.clone()),
                        _ => {}
                    }
                    continue;
                }
            }
        }
        match k.as_str() {
            "org_id" => body.org_id = Some(v.clone()).filter(|s| !s.trim().is_empty()),
            "include_sub" => {
                saw_form = true;
                body.include_sub = Some(matches!(v.as_str(), "1" | "true" | "on"));
            }
            "sort" => sort_field = Some(v.clone()).filter(|s| !s.is_empty()),
            "dir" => sort_dir = Some(v.clone()),
            "page" => body.page = Some(v.parse().unwrap_or(0)),
            "page_size" => body.page_size = Some(v.parse().unwrap_or(0)),
            "add" => add = true,
            "remove" => remove = v.parse().ok(),
            "refresh" => refresh = v == "1",
            "name" => saved_name = v.clone(),
            _ => {}
        }
    }
    let mut conditions: Vec<Condition> = rows.into_values().collect();
    if !saw_form {
        conditions = rules::default_conditions(kind);
    }
    if let Some(i) = remove {
        if i < conditions.len() {
            conditions.remove(i);
        }
        refresh = true;
    }
    if add {
        conditions.push(blank(kind));
        refresh = true;
    }
    // A field changed under its mode: the field's first mode (the page's selects stay valid).
    for c in &mut conditions {
        if let Some(f) = rules::field(kind, &c.field) {
            if !f.ty.modes().iter().any(|m| m.as_str() == c.mode) {
                c.mode = f.ty.modes()[0].as_str().to_string();
            }
        }
    }
    body.conditions = conditions;
    body.sort = sort_field.map(|field| SortSpec {
        field,
        dir: sort_dir,
    });
    let _ = actor;
    FormState {
        body,
        refresh,
        saved_name,
    }
}

fn blank(kind: Kind) -> Condition {
    let f = &rules::fields(kind)[0];
    Condition {
        field: f.key.to_string(),
        mode: f.ty.modes()[0].as_str().to_string(),
        ..Condition::default()
    }
}

/// The state as query pairs (links keep the conditions).
fn to_pairs(body: &QueryBody) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(o) = &body.org_id {
        out.push(("org_id".to_string(), o.clone()));
    }
    out.push((
        "include_sub".into(),
        if body.include_sub.unwrap_or(true) {
            "1"
        } else {
            "0"
        }
        .into(),
    ));
    for (i, c) in body.conditions.iter().enumerate() {
        out.push((format!("c{i}.field"), c.field.clone()));
        out.push((format!("c{i}.mode"), c.mode.clone()));
        for (part, v) in [("value", &c.value), ("from", &c.from), ("to", &c.to)] {
            if let Some(v) = v {
                out.push((format!("c{i}.{part}"), v.clone()));
            }
        }
        for v in c.values.iter().flatten() {
            out.push((format!("c{i}.values"), v.clone()));
        }
    }
    if let Some(s) = &body.sort {
        out.push(("sort".into(), s.field.clone()));
        out.push(("dir".into(), s.dir.clone().unwrap_or_default()));
    }
    if let Some(n) = body.page_size {
        out.push(("page_size".into(), n.to_string()));
    }
    out
}

fn link(kind: Kind, body: &QueryBody) -> String {
    format!(
        "/query/{}?{}",
        kind.as_str(),
        serde_html_form::to_string(to_pairs(body)).unwrap_or_default()
    )
}

async fn members_page(s: State<AppState>, a: PageActor, q: RawQuery) -> Response {
    query_page(Kind::Members, s, a, q).await
}

async fn orgs_page(s: State<AppState>, a: PageActor, q: RawQuery) -> Response {
    query_page(Kind::Orgs, s, a, q).await
}

async fn units_page(s: State<AppState>, a: PageActor, q: RawQuery) -> Response {
    query_page(Kind::Units, s, a, q).await
}

async fn query_page(
    kind: Kind,
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = pairs(raw.as_deref().unwrap_or(""));
    let mut form = parse(kind, &pairs, &actor);
    let mut notice = None;
    if let Some((_, id)) = pairs.iter().find(|(k, _)| k == "saved") {
        match store::saved_one(&state.db, &actor, id).await {
            Ok(s) if s.kind == kind => {
                form.body.conditions = s.conditions.clone();
                form.body.sort = s.sort.clone();
                notice = Some(format!("已套用固定查询“{}”", s.name));
            }
            Ok(_) => return error_page(Some(&actor), ApiError::not_found("固定查询")),
            Err(e) => return error_page(Some(&actor), e),
        }
    }
    render(&state, &actor, kind, form, notice, None, StatusCode::OK).await
}

async fn render(
    state: &AppState,
    actor: &Actor,
    kind: Kind,
    form: FormState,
    notice: Option<String>,
    refused: Option<ApiError>,
    status: StatusCode,
) -> Response {
    let mut errors: Vec<String> = Vec::new();
    let mut result: Option<QueryPage> = None;
    if !form.refresh {
        match store::search(&state.db, actor, kind, &form.body).await {
            Ok(p) => result = Some(p),
            Err(e) if e.status == StatusCode::BAD_REQUEST => {
                if e.errors.is_empty() {
                    errors.push(e.message);
                } else {
                    errors.extend(e.errors.into_iter().map(|f| f.message));
                }
            }
            Err(e) => return error_page(Some(actor), e),
        }
    }
    if let Some(e) = refused {
        errors.push(e.message);
    }
    let orgs = org_options(state, actor, form.body.org_id.as_deref()).await;
    let saved = store::saved(&state.db, actor, kind)
        .await
        .unwrap_or_default();
    let title = format!("综合查询（{}）", kind.label());
    let body = html! {
        nav.tabs {
            @for k in Kind::ALL {
                a.tab.active[k == kind] href=(format!("/query/{}", k.as_str())) { (k.label()) "查询" }
            }
        }
        div.query-layout {
            div.panel.query-main {
                h2 { "查询条件" }
                @if let Some(n) = &notice { div.alert.alert-info role="status" { (n) } }
                @if !errors.is_empty() {
                    div.alert.alert-error role="alert" #query-errors {
                        ul { @for e in &errors { li { (e) } } }
                    }
                }
                (condition_form(kind, &form.body, &orgs))
            }
            aside.panel.query-saved #saved-queries {
                h3 { "固定查询" }
                @if saved.is_empty() { p.muted { "尚无固定查询" } }
                ul.saved-list {
                    @for s in &saved { (saved_item(actor, kind, s)) }
                }
                form #save-query method="post" action=(format!("/query/{}/save", kind.as_str())) {
                    (csrf_field(actor))
                    (hidden_state(&form.body))
                    input #saved-name type="text" name="name" maxlength="50" required
                        placeholder="固定查询名称" value=(form.saved_name);
                    button type="submit" { "保存为固定查询" }
                }
            }
        }
        @if let Some(p) = &result { (results(actor, kind, &form.body, p)) }
    };
    page_with_status(
        status,
        actor,
        &title,
        &[("".to_string(), title.clone())],
        None,
        body,
    )
}

fn saved_item(actor: &Actor, kind: Kind, s: &SavedQuery) -> Markup {
    html! {
        li {
            a.saved-link href=(format!("/query/{}?saved={}", kind.as_str(), s.id)) { (s.name) }
            form.inline method="post" action=(format!("/query/saved/{}/delete", s.id)) {
                (csrf_field(actor))
                button.link type="submit" data-confirm=(format!("删除固定查询“{}”？", s.name)) { "删除" }
            }
        }
    }
}

fn hidden_state(body: &QueryBody) -> Markup {
    html! {
        @for (k, v) in to_pairs(body) { input type="hidden" name=(k) value=(v); }
    }
}

/// The actor's scope organisation, its direct children and the selected organisation.
async fn org_options(
    state: &AppState,
    actor: &Actor,
    selected: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = vec![(actor.org_id.clone(), actor.org_name.clone())];
    if let Ok((children, _)) = crate::org::store::children(&state.db, &actor.org_id, 200, 0).await {
        for c in children {
            out.push((c.id.clone(), format!("　{}", c.name)));
        }
    }
    if let Some(id) = selected {
        if !out.iter().any(|(i, _)| i == id) {
            if let Ok(Some(o)) = crate::org::store::get(state.db.read(), id).await {
                if crate::access::code_within(&actor.org_code, &o.code) {
                    out.push((o.id, o.name));
                }
            }
        }
    }
    out
}

fn condition_form(kind: Kind, body: &QueryBody, orgs: &[(String, String)]) -> Markup {
    let selected = body.org_id.clone().unwrap_or_default();
    let size = body.page_size.unwrap_or(20);
    html! {
        form #query-form.query-form method="get" action=(format!("/query/{}", kind.as_str())) {
            div.query-scope {
                label for="org_id" { "党组织" }
                select #org_id name="org_id" {
                    @for (id, name) in orgs {
                        option value=(id) selected[*id == selected] { (name) }
                    }
                }
                input type="hidden" name="include_sub" value="0";
                label.checkbox {
                    input #include_sub type="checkbox" name="include_sub" value="1"
                        checked[body.include_sub.unwrap_or(true)];
                    "包含下级"
                }
            }
            div #query-rows {
                @for (i, c) in body.conditions.iter().enumerate() { (row(kind, i, c)) }
            }
            template #query-row-template { (row(kind, 0, &blank(kind))) }
            div.query-actions {
                button #query-add type="submit" name="add" value="1" data-query-add title="增加条件" { "+" }
                label for="page_size" { "每页显示" }
                select #page_size name="page_size" data-autosubmit {
                    @for n in rules::PAGE_SIZES {
                        option value=(n) selected[n == size] { (n) " 条" }
                    }
                }
                @if let Some(s) = &body.sort {
                    input type="hidden" name="sort" value=(s.field);
                    input type="hidden" name="dir" value=(s.dir.clone().unwrap_or_default());
                }
                button.primary #query-submit type="submit" { "查询" }
                a.button href=(format!("/query/{}", kind.as_str())) { "重置" }
            }
        }
    }
}

/// One condition row: field, mode, the value widget of the field's type, "−".
fn row(kind: Kind, i: usize, c: &Condition) -> Markup {
    let field = rules::field(kind, &c.field).unwrap_or(&rules::fields(kind)[0]);
    let mode = super::Mode::parse(&c.mode).unwrap_or(field.ty.modes()[0]);
    let name = |part: &str| format!("c{i}.{part}");
    let id = |part: &str| format!("c{i}-{part}");
    let value = c.value.clone().unwrap_or_default();
    html! {
        div.query-row data-query-row {
            select.query-field id=(id("field")) name=(name("field")) data-query-refresh aria-label="查询项" {
                @for f in rules::fields(kind) {
                    option value=(f.key) selected[f.key == field.key] { (f.label) }
                }
            }
            select.query-mode id=(id("mode")) name=(name("mode")) data-query-refresh aria-label="匹配方式" {
                @for m in field.ty.modes() {
                    option value=(m.as_str()) selected[*m == mode] { (m.label()) }
                }
            }
            span.query-value {
                @match (field.ty, mode) {
                    (Type::Date, super::Mode::Range) => {
                        input type="date" id=(id("from")) name=(name("from")) value=(c.from.clone().unwrap_or_default()) aria-label="开始日期";
                        " 至 "
                        input type="date" id=(id("to")) name=(name("to")) value=(c.to.clone().unwrap_or_default()) aria-label="结束日期";
                    }
                    (Type::Number, super::Mode::Range) => {
                        input type="number" id=(id("from")) name=(name("from")) value=(c.from.clone().unwrap_or_default()) aria-label="下限";
                        " 至 "
                        input type="number" id=(id("to")) name=(name("to")) value=(c.to.clone().unwrap_or_default()) aria-label="上限";
                    }
                    (Type::Date, _) => { input type="date" id=(id("value")) name=(name("value")) value=(value); }
                    (Type::Code(_) | Type::IntCode(_) | Type::Flag, super::Mode::Multi) => {
                        select id=(id("values")) name=(name("values")) multiple size="3" aria-label="可多选" {
                            @for (code, label) in field.ty.choices() {
                                option value=(code) selected[c.values.iter().flatten().any(|v| v == code)] { (label) }
                            }
                        }
                    }
                    (Type::Code(_) | Type::IntCode(_) | Type::Flag, _) => {
                        select id=(id("value")) name=(name("value")) aria-label="取值" {
                            option value="" { "（不限）" }
                            @for (code, label) in field.ty.choices() {
                                option value=(code) selected[value == *code] { (label) }
                            }
                        }
                    }
                    (Type::Text, super::Mode::Multi) => {
                        input type="text" id=(id("values")) name=(name("values")) value=(c.values.iter().flatten().next().cloned().unwrap_or_default()) placeholder="每项一个值";
                    }
                    _ => { input type="text" id=(id("value")) name=(name("value")) value=(value) maxlength="100" aria-label="查询内容"; }
                }
            }
            button.query-remove type="submit" name="remove" value=(i) data-query-remove title="删除条件" { "−" }
        }
    }
}

fn results(actor: &Actor, kind: Kind, body: &QueryBody, p: &QueryPage) -> Markup {
    let pages = ((p.total + p.page_size - 1) / p.page_size).max(1);
    let page_link = |n: i64| {
        let mut b = body.clone();
        b.page = Some(n);
        format!("{}&page={n}", link(kind, &b))
    };
    let current = body.sort.clone();
    html! {
        div.panel #query-results {
            div.list-tools {
                span #query-total { "共 " (p.total) " 条" }
                form.inline method="post" action=(format!("/query/{}/export", kind.as_str())) {
                    (csrf_field(actor))
                    (hidden_state(body))
                    button #query-export type="submit" { "导出Excel" }
                }
            }
            table.list #query-table {
                thead { tr {
                    @for c in &p.columns {
                        th {
                            @if c.sortable {
                                @let desc = current.as_ref().is_some_and(|s| s.field == c.key && s.dir.as_deref() != Some("desc"));
                                a.sort-link href=(sort_link(kind, body, &c.key, desc)) { (c.label)
                                    @if let Some(s) = &current { @if s.field == c.key { (if s.dir.as_deref() == Some("desc") { " ▼" } else { " ▲" }) } }
                                }
                            } @else { (c.label) }
                        }
                    }
                } }
                tbody {
                    @for it in &p.items {
                        tr {
                            @for (i, c) in p.columns.iter().enumerate() {
                                td {
                                    @let v = it.cells.get(&c.key).cloned().unwrap_or_default();
                                    @if i == 0 { a.record-link href=(it.href) { (v) } } @else { (v) }
                                }
                            }
                        }
                    }
                    @if p.items.is_empty() { tr { td colspan=(p.columns.len()) { "没有符合条件的记录" } } }
                }
            }
            div.pager {
                span { "第 " (p.page) "/" (pages) " 页" }
                @if p.page > 1 {
                    a href=(page_link(1)) { "首页" }
                    a href=(page_link(p.page - 1)) { "上一页" }
                }
                @if p.page < pages {
                    a href=(page_link(p.page + 1)) { "下一页" }
                    a href=(page_link(pages)) { "尾页" }
                }
            }
        }
    }
}

/// The page sorted by `key` (ascending, or descending when `desc`), from page 1.
fn sort_link(kind: Kind, body: &QueryBody, key: &str, desc: bool) -> String {
    let mut b = body.clone();
    b.sort = Some(SortSpec {
        field: key.to_string(),
        dir: Some(if desc { "desc" } else { "asc" }.to_string()),
    });
    link(kind, &b)
}

fn kind_of(s: &str) -> Result<Kind, ApiError> {
    Kind::parse(s).ok_or_else(|| ApiError::not_found("页面"))
}

/// `POST /query/{kind}/export`: the shown query as an Excel file.
async fn export_submit(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    f: CsrfForm<Vec<(String, String)>>,
) -> Response {
    let actor = f.actor;
    if let Err(e) = crate::access::business_read(&actor) {
        return error_page(Some(&actor), e);
    }
    let kind = match kind_of(&kind) {
        Ok(k) => k,
        Err(e) => return error_page(Some(&actor), e),
    };
    let form = parse(kind, &f.form, &actor);
    match store::export(&state.db, &actor, kind, &form.body).await {
        Ok(file) => file.into_response(),
        Err(e) => error_page(Some(&actor), e),
    }
}

/// `POST /query/{kind}/save`: 保存为固定查询, then the page with it applied.
async fn save_submit(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    f: CsrfForm<Vec<(String, String)>>,
) -> Response {
    let actor = f.actor;
    if let Err(e) = crate::access::business_read(&actor) {
        return error_page(Some(&actor), e);
    }
    let kind = match kind_of(&kind) {
        Ok(k) => k,
        Err(e) => return error_page(Some(&actor), e),
    };
    let form = parse(kind, &f.form, &actor);
    let save = SaveBody {
        kind: Some(kind),
        name: form.saved_name.clone(),
        conditions: form.body.conditions.clone(),
        sort: form.body.sort.clone(),
    };
    match store::save(&state.db, &actor, &save).await {
        Ok(s) => Redirect::to(&format!("/query/{}?saved={}", kind.as_str(), s.id)).into_response(),
        Err(e) if matches!(e.status.as_u16(), 400 | 409) => {
            let status = e.status;
            render(&state, &actor, kind, form, None, Some(e), status).await
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

/// `POST /query/saved/{id}/delete`: removes one of the caller's saved queries.
async fn delete_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<Vec<(String, String)>>,
) -> Response {
    let actor = f.actor;
    let kind = match store::saved_one(&state.db, &actor, &id).await {
        Ok(s) => s.kind,
        Err(e) => return error_page(Some(&actor), e),
    };
    match store::delete(&state.db, &actor, &id).await {
        Ok(()) => Redirect::to(&format!("/query/{}", kind.as_str())).into_response(),
        Err(e) => error_page(Some(&actor), e),
    }
}
