//! The pages of the read side of transfers: 查看转接情况 (`/transfers`: the search with every
//! filter, the organisation picker, 包含下级, 导出Excel, 打印) and the node's lists
//! (`/transfers/lists`: 待办 / 已办未办结 / 即将办理 / 转接监控 as tabs with their counts).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::records::{self, flag, Filter, ListKind, RecordItem, RecordsQuery, Sort};
use super::{Direction, Kind, State as TransferState};
use crate::access::Actor;
use crate::approval::pages::short_time;
use crate::error::ApiError;
use crate::state::{AppState, Page, Paging};
use crate::web::orgs::pager;
use crate::web::units::enc;
use crate::web::{
    date_field, error_page, or_error, page_with_status, print, select_field, text_field,
    FormErrors, PageActor, PageRouter,
};

pub fn pages() -> PageRouter {
    PageRouter::new()
        .route("/transfers", get(records_page))
        .route("/transfers/lists", get(lists_page))
}

const PER_PAGE_CHOICES: [i64; 4] = [10, 20, 50, 100];

/// The query of `/transfers`: the API's filters as text (a page never answers a bare 400 for a
/// malformed number), and `print`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecordsPageQuery {
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
    pub direction: Option<String>,
    pub org_id: Option<String>,
    pub include_sub: Option<String>,
    pub sort: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub print: Option<String>,
}

impl RecordsPageQuery {
    /// The API's query: the form's empty fields dropped, values trimmed.
    fn api(&self) -> RecordsQuery {
        let t = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        RecordsQuery {
            name: t(&self.name),
            id_number: t(&self.id_number),
            from: t(&self.from),
            to: t(&self.to),
            since: t(&self.since),
            until: t(&self.until),
            state: t(&self.state),
            kind: t(&self.kind),
            direction: t(&self.direction),
            org_id: t(&self.org_id),
            include_sub: flag(self.include_sub.as_deref()).then(|| "true".to_string()),
            sort: t(&self.sort),
            page: None,
            per_page: None,
        }
    }

    fn paging(&self) -> Paging {
        let num = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        Paging {
            page: num(&self.page).map(|p| p.max(1)),
            per_page: Some(
                num(&self.per_page)
                    .unwrap_or(20)
                    .clamp(1, crate::state::MAX_PER_PAGE),
            ),
        }
    }

    /// The filters as a query string (without paging and print), for the pager, export and
    /// print links.
    fn query_string(&self) -> String {
        let pairs = [
            ("name", &self.name),
            ("id_number", &self.id_number),
            ("from", &self.from),
            ("to", &self.to),
            ("since", &self.since),
            ("until", &self.until),
            ("state", &self.state),
            ("kind", &self.kind),
            ("direction", &self.direction),
            ("org_id", &self.org_id),
            ("sort", &self.sort),
        ];
        let mut parts: Vec<String> = pairs
            .iter()
            .filter_map(|(k, v)| {
                let v = v.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
                Some(format!("{k}={}", enc(v)))
            })
            .collect();
        if flag(self.include_sub.as_deref()) {
            parts.push("include_sub=true".into());
        }
        parts.join("&")
    }
}

fn v(o: &Option<String>) -> &str {
    o.as_deref().unwrap_or("")
}

fn crumbs(title: &str) -> Vec<(String, String)> {
    vec![
        ("/transfers/lists".to_string(), "组织关系转接".to_string()),
        (String::new(), title.to_string()),
    ]
}

/// The organisations the picker offers: the way from the caller's organisation down to the
/// selected one, then the selected one's direct children (pick one and query again to go
/// further down; the tree on the left shows where it lies).
async fn org_choices(
    state: &AppState,
    actor: &Actor,
    selected_id: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut way = Vec::new();
    let mut next = Some(selected_id.to_string());
    while let Some(id) = next {
        let Some(org) = crate::org::store::get(state.db.read(), &id).await? else {
            break;
        };
        let depth_done = org.id == actor.org_id || way.len() > 12;
        next = org.parent_id.clone();
        way.push((org.id.clone(), org.short_name_or_name()));
        if depth_done {
            break;
        }
    }
    way.reverse();
    let mut out: Vec<(String, String)> = way
        .iter()
        .enumerate()
        .map(|(i, (id, name))| (id.clone(), format!("{}{}", "　".repeat(i), name)))
        .collect();
    let indent = "　".repeat(way.len());
    let (children, _) = crate::org::store::children(&state.db, selected_id, 200, 0).await?;
    for c in children {
        let name = if c.short_name.trim().is_empty() {
            c.name.clone()
        } else {
            c.short_name.clone()
        };
        out.push((c.id.clone(), format!("{indent}{name}")));
    }
    Ok(out)
}

fn search_form(
    q: &RecordsPageQuery,
    orgs: &[(String, String)],
    selected_org: &str,
    per_page: i64,
    errors: &FormErrors,
    tools: Markup,
) -> Markup {
    let states: Vec<(String, String)> = TransferState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), s.label().to_string()))
        .collect();
    let kinds: Vec<(String, String)> = Kind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), k.label().to_string()))
        .collect();
    let directions: Vec<(String, String)> = [Direction::Outbound, Direction::Inbound]
        .iter()
        .map(|d| (d.as_str().to_string(), d.label().to_string()))
        .collect();
    html! {
        form #transfer-search.search.filter-grid method="get" action="/transfers" {
            div.field {
                label for="org_id" { "党组织" }
                select #org_id name="org_id" title="选择党组织后点击“查询”；要查看更下级的党组织，请先选中其上级查询" {
                    @for (id, name) in orgs {
                        option value=(id) selected[id == selected_org] { (name) }
                    }
                }
            }
            (text_field("name", "党员姓名", v(&q.name), false, errors))
            (text_field("id_number", "公民身份证号", v(&q.id_number), false, errors))
            (text_field("from", "转出单位", v(&q.from), false, errors))
            (text_field("to", "接收单位", v(&q.to), false, errors))
            (date_field("since", "转出日期（起）", v(&q.since), false, errors))
            (date_field("until", "转出日期（止）", v(&q.until), false, errors))
            (select_field("state", "办理状态", &states, v(&q.state), false, errors))
            (select_field("kind", "转接类型", &kinds, v(&q.kind), false, errors))
            (select_field("direction", "转接方向", &directions, v(&q.direction), false, errors))
            div.grid-actions {
                label.inline for="per_page" { "每页" }
                select #per_page name="per_page" {
                    @for n in PER_PAGE_CHOICES {
                        option value=(n) selected[n == per_page] { (n) " 条" }
                    }
                }
                label.checkbox for="include_sub" title="不勾选：本级及直属下级党组织；勾选：本级及所有下级党组织" {
                    input #include_sub type="checkbox" name="include_sub" value="true"
                        checked[flag(q.include_sub.as_deref())];
                    "包含下级"
                }
                button.primary type="submit" { "查询" }
                a.button href="/transfers" { "重置" }
                (tools)
            }
        }
    }
}

/// A transfer's row cells shared by the lists: name, masked number, from, to, current node.
fn sort_choice(base: &str, current: Sort, this: Sort, text: &str) -> Markup {
    html! {
        @if current == this {
            strong.sort-current #{"sort-" (this.as_str())} { (text) " ▲" }
        } @else {
            a.sort-link #{"sort-" (this.as_str())} href={(base) "&sort=" (this.as_str())} { (text) }
        }
    }
}

fn table(
    items: &[RecordItem],
    offset: i64,
    waiting: bool,
    sort_links: Option<(&str, Sort)>,
) -> Markup {
    html! {
        table.list.transfer-list #transfer-list {
            thead { tr {
                th { "序号" } th { "姓名" } th { "身份证号" } th { "转出单位" } th { "接收单位" }
                th { "当前组织" }
                @if waiting {
                    th.sortable aria-sort=(if sort_links.is_some_and(|(_, s)| s == Sort::WaitingAsc) { "ascending" } else { "descending" }) {
                        "等待时间 "
                        @if let Some((base, current)) = sort_links {
                            span.sort-choices title="按在当前组织的等待时间排序" {
                                "（"
                                (sort_choice(base, current, Sort::Waiting, "最长在前"))
                                " | "
                                (sort_choice(base, current, Sort::WaitingAsc, "最短在前"))
                                "）"
                            }
                        }
                    }
                } @else {
                    th.sortable aria-sort=(if sort_links.is_some_and(|(_, s)| s == Sort::DateAsc) { "ascending" } else { "descending" }) {
                        "转出日期 "
                        @if let Some((base, current)) = sort_links {
                            span.sort-choices title="按转出日期排序" {
                                "（"
                                (sort_choice(base, current, Sort::Date, "最新在前"))
                                " | "
                                (sort_choice(base, current, Sort::DateAsc, "最早在前"))
                                "）"
                            }
                        }
                    }
                }
                th { "办理状态" } th { "转接类型" } th.ops { "操作" }
            } }
            tbody {
                @for (i, t) in items.iter().enumerate() {
                    tr data-id=(t.id) class=[t.overdue.then_some("overdue")] {
                        td.num { (offset + i as i64 + 1) }
                        td { (t.member_name) }
                        td.idno { (t.id_number) }
                        td { (t.from_name) }
                        td { (t.to_name) }
                        td { (t.current_org) }
                        @if waiting {
                            td.waiting data-seconds=[t.waiting_seconds] {
                                (t.waiting)
                                @if t.overdue { " " span.badge.overdue title="在当前组织停留超过7天" { "超期" } }
                                br; span.muted.small { "自 " (short_time(&t.step_since)) }
                            }
                        } @else {
                            td.date { (t.date) }
                        }
                        td { span.badge.state.{(t.state.as_str())} { (t.state_label) } }
                        td.kind title=(t.direction_label) { (t.kind_label) }
                        td.ops { a href={"/transfers/" (t.id)} { "查看" } }
                    }
                }
            }
        }
    }
}

async fn records_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<RecordsPageQuery>,
) -> Response {
    let title = "查看转接情况";
    let api = q.api();
    let paging = q.paging();
    let printing = print::is_on(q.print.as_deref());
    let checked: Result<Filter, ApiError> = api.filter(&state.db, &actor).await;
    let (errors, found, status) = match checked {
        Ok(f) => {
            let found = if printing {
                let (f, db) = (&f, &state.db);
                print::all_rows(|p| async move { records::find(db, f, &p).await }).await
            } else {
                records::find(&state.db, &f, &paging).await
            };
            match found {
                Ok(p) => (FormErrors::default(), Some((f, p)), StatusCode::OK),
                Err(e) => return error_page(Some(&actor), e),
            }
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            (FormErrors::from_api(&e), None, StatusCode::BAD_REQUEST)
        }
        Err(e) => return error_page(Some(&actor), e),
    };
    let selected = found
        .as_ref()
        .map(|(f, _)| f.org_id.clone())
        .unwrap_or_else(|| actor.org_id.clone());
    let orgs = match org_choices(&state, &actor, &selected).await {
        Ok(o) => o,
        Err(e) => return error_page(Some(&actor), e),
    };
    let counts = match records::counts(&state.db, &actor).await {
        Ok(c) => c,
        Err(e) => return error_page(Some(&actor), e),
    };
    let qs = q.query_string();
    let base = if qs.is_empty() {
        "/transfers?".to_string()
    } else {
        format!("/transfers?{qs}")
    };
    let export = if qs.is_empty() {
        "/api/v1/transfers/export.xlsx".to_string()
    } else {
        format!("/api/v1/transfers/export.xlsx?{qs}")
    };
    let per_page = paging.per_page();
    // The date column's sort links keep every filter but the order.
    let sort_base = {
        let unsorted = RecordsPageQuery {
            sort: None,
            ..q.clone()
        }
        .query_string();
        format!("/transfers?{unsorted}&per_page={per_page}")
    };
    let sort = found.as_ref().map(|(f, _)| f.sort).unwrap_or_default();
    let body = html! {
        div.panel {
            h2 { (title) }
            (lists_tabs(None, &counts))
            p.muted.hint {
                "查询所选党组织本级及直属下级的组织关系转接记录；勾选“包含下级”则查询本级及所有下级。"
            }
            (errors.banner())
            (search_form(&q, &orgs, &selected, per_page, &errors, html! {
                @if found.is_some() {
                    span.grid-tools {
                        a.button #export-xlsx href=(export) title="导出全部查询结果（身份证号已隐去部分数字，文件带导出人水印，导出操作记入审计日志）" { "导出Excel" }
                        @if !printing { (print::button(&format!("{base}&print=1"))) }
                    }
                }
            }))
            @if let Some((_, list)) = &found {
                @if printing { (print::list_head(title, list.items.len(), list.total)) }
                @if list.items.is_empty() {
                    p.muted.empty { "没有符合条件的转接记录。" }
                } @else {
                    (table(&list.items, (list.page - 1) * list.per_page, false,
                        (!printing).then_some((sort_base.as_str(), sort))))
                }
                @if !printing { (pager(&base, list.page, list.per_page, list.total)) }
            }
        }
    };
    page_with_status(status, &actor, title, &crumbs(title), Some(&selected), body)
}

/// The tabs of the transfer pages: the four lists (with their counts) and the records search.
fn lists_tabs(current: Option<ListKind>, counts: &[(ListKind, i64)]) -> Markup {
    html! {
        nav.tabs #transfer-tabs {
            @for k in ListKind::ALL {
                a.tab.active[current == Some(k)] #{"tab-" (k.as_str())}
                    href={"/transfers/lists?list=" (k.as_str())} {
                    (k.label())
                    @if let Some((_, n)) = counts.iter().find(|(c, _)| *c == k) {
                        " " span.badge.count.tab-count { (n) }
                    }
                }
            }
            a.tab.active[current.is_none()] #tab-records href="/transfers" { "查看转接情况" }
            a.tab #tab-inbound href="/transfers/inbound" { "省外转入登记" }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListsPageQuery {
    pub list: Option<String>,
    pub sort: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub print: Option<String>,
}

fn list_note(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Todo => "轮到本组织办理的转接（含退回本组织、待重新提交或废件的转接）。",
        ListKind::Done => "本组织已经办理（同意、自动审核、提交或登记）但尚未办结的转接。",
        ListKind::Upcoming => "转接路径经过本组织、尚未轮到本组织办理的转接。",
        ListKind::Monitor => {
            "管理范围内所有未办结的转接，按在当前组织的等待时间排列；超过7天的标为“超期”。"
        }
    }
}

async fn lists_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<ListsPageQuery>,
) -> Response {
    let r = async {
        let kind = q
            .list
            .as_deref()
            .and_then(ListKind::parse)
            .unwrap_or(ListKind::Todo);
        let sort = q
            .sort
            .as_deref()
            .and_then(Sort::parse)
            .unwrap_or(Sort::Waiting);
        let paging = RecordsPageQuery {
            page: q.page.clone(),
            per_page: q.per_page.clone(),
            ..Default::default()
        }
        .paging();
        let printing = print::is_on(q.print.as_deref());
        let counts = records::counts(&state.db, &actor).await?;
        let settings = super::pages::settings_form(&state, &actor).await?;
        let list: Page<RecordItem> = if printing {
            let (db, actor) = (&state.db, &actor);
            print::all_rows(|p| async move { records::list(db, actor, kind, sort, &p).await })
                .await?
        } else {
            records::list(&state.db, &actor, kind, sort, &paging).await?
        };
        let list_base = format!("/transfers/lists?list={}", kind.as_str());
        let base = format!("{list_base}&sort={}", sort.as_str());
        let title = kind.label();
        let empty = match kind {
            ListKind::Todo => "没有需要本组织办理的转接。",
            ListKind::Done => "没有本组织已办理、尚未办结的转接。",
            ListKind::Upcoming => "没有即将由本组织办理的转接。",
            ListKind::Monitor => "管理范围内没有未办结的转接。",
        };
        Ok(page_with_status(
            StatusCode::OK,
            &actor,
            title,
            &crumbs(title),
            None,
            html! {
                div.panel {
                    h2 { "组织关系转接 · " (title) }
                    (lists_tabs(Some(kind), &counts))
                    @if !printing { (settings) }
                    p.muted.hint { (list_note(kind)) }
                    @if !printing && !list.items.is_empty() {
                        div.list-tools { (print::button(&format!("{base}&print=1"))) }
                    }
                    @if printing { (print::list_head(title, list.items.len(), list.total)) }
                    @if list.items.is_empty() {
                        p.muted.empty { (empty) }
                    } @else {
                        (table(&list.items, (list.page - 1) * list.per_page, true,
                            (!printing).then_some((list_base.as_str(), sort))))
                    }
                    @if !printing { (pager(&base, list.page, list.per_page, list.total)) }
                }
            },
        ))
    }
    .await;
    or_error(&actor, r)
}
