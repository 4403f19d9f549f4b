//! The page 党员统计 (`/stats`): the organisation picker (the caller's scope), tabs 党员统计 /
//! 注册统计 / 党员增减, the totals table, SVG charts, the child organisations with drill-down
//! links and the Excel export; `to_xlsx` writes the export.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use maud::{html, Markup};
use serde::Deserialize;

use super::routes::{self as api, parse_year};
use super::{svg, ChildRow, MemberStats};
use crate::access::Actor;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::units::enc;
use crate::web::{csrf_field, or_error, page, CsrfForm, PageActor, PageRouter};

pub fn pages() -> PageRouter {
    PageRouter::new()
        .route("/stats", get(stats_page))
        .route("/stats/unregistered", get(unregistered_page))
        .route("/stats/registration/print", get(registration_print))
        .route("/orgs/{id}/registration-reminders", post(send_reminders))
}

/// The button 发送注册提醒 of a branch, for the admins whose scope lets them send its
/// reminders (the API's access rule); nothing for other organisations.
fn reminder_button(actor: &Actor, org: &crate::org::OrgRow) -> Markup {
    let branch = org.category().is_some_and(|c| c.is_branch());
    if !branch || crate::access::registration_reminders(actor, &org.code).is_err() {
        return html! {};
    }
    html! {
        form.inline #reminder-form method="post"
            action={"/orgs/" (enc(&org.id)) "/registration-reminders"} {
            (csrf_field(actor))
            button type="submit" title="每名党员每周最多提醒一次"
                data-confirm="确定向本支部未注册的党员发送注册提醒短信吗？每名党员每周最多提醒一次。" { "发送注册提醒" }
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

/// 发送注册提醒 from the registration statistics: the API's reminders, the result in words.
async fn send_reminders(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<Empty>,
) -> Response {
    let actor = f.actor;
    let r = async {
        let done = crate::personal::reminders::send(&state, &actor, &id).await?;
        let org = crate::org::routes::load(&state.db, &id).await?;
        let title = "注册提醒";
        Ok(page(
            &actor,
            title,
            &[
                (tab_link(&org.id, "registration"), "注册统计".to_string()),
                (String::new(), title.to_string()),
            ],
            Some(&org.id),
            html! {
                div.panel #reminder-result {
                    h2 { (org.name) " 注册提醒" }
                    div.alert.alert-info role="status" { (done.message) }
                    table.info #reminder-counts {
                        tr { th { "未注册党员" } td { (done.unregistered) " 人" } }
                        tr { th { "本次已发送提醒短信" } td #reminder-sent { (done.sent) " 人" } }
                        tr { th { "本周已提醒过（7天内不重复发送）" } td #reminder-recent { (done.skipped_recent) " 人" } }
                        tr { th { "没有可接收短信的手机号" } td #reminder-unreachable { (done.unreachable) " 人" } }
                    }
                    @if done.unreachable > 0 {
                        p.muted { "没有手机号的党员请由党支部当面通知，或在党员信息中补充登记手机号。" }
                    }
                    p {
                        a.button href=(tab_link(&org.id, "registration")) { "返回注册统计" } " "
                        a.button href={"/stats/unregistered?org_id=" (enc(&org.id))} { "未注册名单" }
                    }
                }
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatsPageQuery {
    pub org_id: Option<String>,
    /// members (default) | registration | changes
    pub tab: Option<String>,
    pub year: Option<String>,
}

/// The way from the caller's organisation down to the selected one, then its children.
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
        let done = org.id == actor.org_id || way.len() > 12;
        next = org.parent_id.clone();
        way.push((org.id.clone(), org.short_name_or_name()));
        if done {
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
    for ((id, _, name), active) in super::store::children(&state.db, selected_id).await? {
        if active {
            out.push((id, format!("{indent}{name}")));
        }
    }
    Ok(out)
}

fn tab_link(org_id: &str, tab: &str) -> String {
    format!("/stats?org_id={}&tab={tab}", enc(org_id))
}

fn percent(n: i64, total: i64) -> String {
    if total == 0 {
        "—".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / total as f64)
    }
}

async fn stats_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<StatsPageQuery>,
) -> Response {
    let r: Result<Response, ApiError> = async {
        let org = api::scoped_org(&state.db, &actor, q.org_id.as_deref()).await?;
        let tab = match q.tab.as_deref() {
            Some("registration") => "registration",
            Some("changes") => "changes",
            _ => "members",
        };
        let choices = org_choices(&state, &actor, &org.id).await?;
        let body = match tab {
            "registration" => registration_body(&state, &actor, &org.id).await?,
            "changes" => changes_body(&state, &actor, &org.id, q.year.as_deref()).await?,
            _ => members_body(&state, &actor, &org.id).await?,
        };
        let title = "党员统计";
        let crumbs = vec![(String::new(), title.to_string()), (format!("/orgs/{}", org.id), org.name.clone())];
        Ok(page(
            &actor,
            title,
            &crumbs,
            Some(&org.id),
            html! {
                div.panel #stats {
                    h2 { "党员统计：" (org.name) }
                    form.search #stats-org method="get" action="/stats" {
                        input type="hidden" name="tab" value=(tab);
                        div.field {
                            label for="org_id" { "党组织" }
                            select #org_id name="org_id" {
                                @for (id, name) in &choices {
                                    option value=(id) selected[*id == org.id] { (name) }
                                }
                            }
                        }
                        @if tab == "changes" {
                            div.field {
                                label for="year" { "统计年度" }
                                input #year name="year" type="number" min="1921" max="2100"
                                    value=(q.year.clone().unwrap_or_else(|| chrono::Datelike::year(&crate::db::today()).to_string()));
                            }
                        }
                        button.primary type="submit" { "统计" }
                    }
                    nav.tabs #stats-tabs {
                        a.tab.active[tab == "members"] #tab-members href=(tab_link(&org.id, "members")) { "党员统计" }
                        a.tab.active[tab == "registration"] #tab-registration href=(tab_link(&org.id, "registration")) { "注册统计" }
                        a.tab.active[tab == "changes"] #tab-changes href=(tab_link(&org.id, "changes")) { "党员增减" }
                    }
                    div.tab-body { (body) }
                }
            },
        ))
    }
    .await;
    or_error(&actor, r)
}

fn child_link(org_id: &Option<String>, name: &str, tab: &str) -> Markup {
    html! {
        @match org_id {
            Some(id) => a.drill href=(tab_link(id, tab)) title="点击查看该党组织的统计" { (name) },
            None => (name),
        }
    }
}

async fn members_body(state: &AppState, actor: &Actor, org_id: &str) -> Result<Markup, ApiError> {
    let s = api::members(&state.db, actor, Some(org_id)).await?;
    let find = |dim: &str| s.breakdowns.iter().find(|b| b.dim == dim);
    Ok(html! {
        div.list-tools {
            a.button #export-xlsx href={"/api/v1/stats/members/export.xlsx?org_id=" (enc(&s.org_id))}
                title="导出统计表（文件带导出人水印，导出操作记入审计日志）" { "导出Excel" }
            " "
            button.print-button type="button" data-print="1" { "打印" }
        }
        p #stats-total.stats-total {
            "党员总数：" strong { (s.total) } " 人（统计日期 " (s.as_of) "，即时统计）"
        }
        div.stats-charts {
            @if let Some(b) = find("category") { (svg::pie("人员类别", &b.counts)) }
            @if let Some(b) = find("sex") { (svg::pie("性别", &b.counts)) }
            @if let Some(b) = find("age") { (svg::bars("年龄", &b.counts)) }
            @if let Some(b) = find("education") { (svg::bars("学历", &b.counts)) }
            @if let Some(b) = find("joined") { (svg::bars("入党时间", &b.counts)) }
        }
        h3 { "下级党组织" }
        @if s.children.is_empty() {
            p.muted { "没有下级党组织。" }
        } @else {
            (children_table(&s.children, s.total))
        }
        h3 { "分类统计" }
        div.stats-tables {
            @for b in &s.breakdowns {
                table.list.stats-table data-dim=(b.dim) {
                    thead { tr { th { (b.title) } th.num { "人数" } th.num { "占比" } } }
                    tbody {
                        @for c in &b.counts {
                            tr { td { (c.label) } td.num { (c.n) } td.num { (percent(c.n, s.total)) } }
                        }
                    }
                }
            }
        }
    })
}

fn children_table(rows: &[ChildRow], total: i64) -> Markup {
    html! {
        table.list #stats-children {
            thead { tr {
                th { "党组织名称" } th.num { "党员总数" } th.num { "正式党员" } th.num { "预备党员" }
                th.num { "男" } th.num { "女" } th.num { "占比" }
            } }
            tbody {
                @for c in rows {
                    tr {
                        td { (child_link(&c.org_id, &c.org_name, "members")) }
                        td.num { (c.total) } td.num { (c.full) } td.num { (c.probationary) }
                        td.num { (c.male) } td.num { (c.female) } td.num { (percent(c.total, total)) }
                    }
                }
            }
        }
    }
}

async fn registration_body(
    state: &AppState,
    actor: &Actor,
    org_id: &str,
) -> Result<Markup, ApiError> {
    let r = api::registration(&state.db, actor, Some(org_id)).await?;
    let org = crate::org::routes::load(&state.db, org_id).await?;
    Ok(html! {
        p #registration-total {
            "党员总数：" strong { (r.members) } " 人，已注册：" strong { (r.registered) } " 人（注册率 "
            (percent(r.registered, r.members)) "）。统计时间："
            (crate::audit::query::beijing_time(&r.counted_at)) "（即时统计）"
        }
        p.muted { "已注册：党员本人的个人账号已激活（与党员信息库的公民身份证号一致）。" }
        div.toolbar {
            a.button #registration-xlsx href={"/api/v1/stats/registration/export.xlsx?org_id=" (enc(&r.org_id))}
                title="导出注册统计表（文件带导出人水印，导出操作记入审计日志）" { "导出Excel" }
            " "
            a.button #registration-print href={"/stats/registration/print?org_id=" (enc(&r.org_id)) "#autoprint"}
                target="_blank" rel="noopener" { "打印注册情况表" }
            " "
            a.button #registration-unregistered href={"/stats/unregistered?org_id=" (enc(&r.org_id))} { "未注册名单" }
            " "
            (reminder_button(actor, &org))
        }
        table.list #registration-children {
            thead { tr { th { "党组织名称" } th.num { "党员数" } th.num { "已注册" } th.num { "注册率" } th.num { "未注册" } } }
            tbody {
                @for c in &r.children {
                    tr {
                        td { (child_link(&c.org_id, &c.org_name, "registration")) }
                        td.num { (c.members) } td.num { (c.registered) }
                        td.num { (percent(c.registered, c.members)) }
                        td.num {
                            @match &c.org_id {
                                Some(id) if c.members > c.registered => a.drill.unregistered href={"/stats/unregistered?org_id=" (enc(id))} { (c.members - c.registered) },
                                _ => (c.members - c.registered),
                            }
                        }
                    }
                }
            }
        }
        (split_tables(&r))
    })
}

fn split_tables(r: &super::RegistrationStats) -> Markup {
    html! {
        div.stats-tables {
            @for (id, title, rows) in [("registration-by-category", "按人员类别", &r.by_category), ("registration-by-job", "按工作岗位", &r.by_job)] {
                table.list id=(id) {
                    caption { (title) }
                    thead { tr { th { "类别" } th.num { "党员数" } th.num { "已注册" } th.num { "注册率" } } }
                    tbody {
                        @for g in rows.iter() {
                            tr { td { (g.label) } td.num { (g.members) } td.num { (g.registered) } td.num { (percent(g.registered, g.members)) } }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UnregisteredPageQuery {
    pub org_id: Option<String>,
    pub page: Option<i64>,
}

/// 未注册名单: the drill-down of 注册统计 to the members without a personal account.
async fn unregistered_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<UnregisteredPageQuery>,
) -> Response {
    let result: Result<Markup, ApiError> = async {
        let paging = crate::state::Paging {
            page: q.page,
            per_page: Some(50),
        };
        let org = api::scoped_org(&state.db, &actor, q.org_id.as_deref()).await?;
        let list = api::unregistered(&state.db, &actor, Some(&org.id), &paging).await?;
        let pages = (list.total + 49) / 50;
        Ok(html! {
            div.panel {
                h2 { (org.name) " 未注册党员名单" }
                p #unregistered-total { "共 " strong { (list.total) } " 名党员尚未注册个人账号。" }
                p { a href=(tab_link(&org.id, "registration")) { "返回注册统计" } " " (reminder_button(&actor, &org)) }
                table.list #unregistered-list {
                    thead { tr { th { "姓名" } th { "公民身份证号" } th { "所在党支部" } th { "人员类别" } th { "工作岗位" } } }
                    tbody {
                        @for m in &list.items {
                            tr {
                                td { a href={"/members/" (enc(&m.id))} { (m.name) } }
                                td { (m.id_number) }
                                td { (m.branch_name) }
                                td { @if m.category == "full" { "正式党员" } @else { "预备党员" } }
                                td { (m.job_group) }
                            }
                        }
                    }
                }
                @if pages > 1 {
                    nav.pager {
                        @for p in 1..=pages.min(50) {
                            @if p == list.page { strong { (p) } } @else {
                                a href={"/stats/unregistered?org_id=" (enc(&org.id)) "&page=" (p)} { (p) }
                            }
                            " "
                        }
                    }
                }
            }
        })
    }
    .await;
    match result {
        Ok(body) => page(&actor, "未注册名单", &[], None, body),
        Err(e) => crate::web::error_page(Some(&actor), e),
    }
}

/// The seed's registration table 党员注册情况统计表, printable on A4, with the lines for the
/// secretary's signature and the organisation's seal.
async fn registration_print(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Query(q): Query<StatsPageQuery>,
) -> Response {
    let r = match api::registration(&state.db, &actor, q.org_id.as_deref()).await {
        Ok(r) => r,
        Err(e) => return crate::web::error_page(Some(&actor), e),
    };
    let body = html! {
        div.panel #registration-table {
            h2.print-title { (r.org_name) "党员注册情况统计表" }
            p { "统计时间：" (crate::audit::query::beijing_time(&r.counted_at)) "　党员总数 " (r.members) " 人，已注册 " (r.registered) " 人，注册率 " (percent(r.registered, r.members)) }
            table.list {
                thead { tr { th { "序号" } th { "党组织名称" } th.num { "党员数" } th.num { "已注册" } th.num { "未注册" } th.num { "注册率" } } }
                tbody {
                    @for (i, c) in r.children.iter().enumerate() {
                        tr {
                            td.num { (i + 1) } td { (c.org_name) }
                            td.num { (c.members) } td.num { (c.registered) }
                            td.num { (c.members - c.registered) } td.num { (percent(c.registered, c.members)) }
                        }
                    }
                    tr { td {} th { "合计" } td.num { (r.members) } td.num { (r.registered) } td.num { (r.members - r.registered) } td.num { (percent(r.registered, r.members)) } }
                }
            }
            (split_tables(&r))
            p.signature #signature-lines {
                "党组织书记（签字）：＿＿＿＿＿＿＿＿　　　　（党组织盖章）　　　　＿＿＿＿年＿＿月＿＿日"
            }
            p { button.print-button type="button" data-print="1" { "打印" } }
        }
    };
    page(&actor, "党员注册情况统计表", &[], None, body)
}

/// The Excel export of 注册统计.
pub fn registration_xlsx(
    watermark: &str,
    r: &super::RegistrationStats,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("注册统计")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, watermark, &bold)?;
    sheet.write_string_with_format(1, 0, format!("{}党员注册情况统计表", r.org_name), &bold)?;
    sheet.set_column_width(0, 36.0)?;
    let mut row: u32 = 3;
    for (c, h) in ["党组织名称", "党员数", "已注册", "未注册", "注册率"]
        .iter()
        .enumerate()
    {
        sheet.write_string_with_format(row, c as u16, *h, &bold)?;
    }
    let line = |sheet: &mut rust_xlsxwriter::Worksheet, row: u32, name: &str, m: i64, reg: i64| {
        sheet.write_string(row, 0, name)?;
        sheet.write_number(row, 1, m as f64)?;
        sheet.write_number(row, 2, reg as f64)?;
        sheet.write_number(row, 3, (m - reg) as f64)?;
        sheet.write_string(row, 4, percent(reg, m))?;
        Ok::<(), rust_xlsxwriter::XlsxError>(())
    };
    for c in &r.children {
        row += 1;
        line(sheet, row, &c.org_name, c.members, c.registered)?;
    }
    row += 1;
    line(sheet, row, "合计", r.members, r.registered)?;
    for (title, rows) in [("按人员类别", &r.by_category), ("按工作岗位", &r.by_job)] {
        row += 2;
        sheet.write_string_with_format(row, 0, title, &bold)?;
        for g in rows.iter() {
            row += 1;
            line(sheet, row, &g.label, g.members, g.registered)?;
        }
    }
    book.save_to_buffer()
}

async fn changes_body(
    state: &AppState,
    actor: &Actor,
    org_id: &str,
    year: Option<&str>,
) -> Result<Markup, ApiError> {
    let year = match parse_year(year) {
        Ok(y) => y,
        Err(_) => {
            return Ok(
                html! { div.alert.alert-error role="alert" { "统计年度应为1921至2100之间的年份" } },
            )
        }
    };
    let c = api::changes(&state.db, actor, Some(org_id), Some(&year.to_string())).await?;
    let table = |title: &str, list: &[super::Count], total: i64| {
        html! {
            table.list.stats-table {
                thead { tr { th { (title) } th.num { "人数" } } }
                tbody {
                    @for x in list { tr { td { (x.label) } td.num { (x.n) } } }
                    tr.total { td { "合计" } td.num { strong { (total) } } }
                }
            }
        }
    };
    Ok(html! {
        p #changes-total {
            (c.year) "年：增加 " strong { (c.added) } " 人，减少 " strong { (c.decreased) } " 人，净增 "
            strong { (c.added - c.decreased) } " 人。"
        }
        div.stats-tables {
            (table("党员增加", &c.additions, c.added))
            (table("党员减少", &c.decreases, c.decreased))
        }
        p.muted {
            "误操作后已找回的减少不计入（本年度 " (c.recovered) " 人）；党员补删的录入不计为增加（本年度补删 "
            (c.corrected) " 人）。组织关系在本范围内转接的，转出与转入各计一次。"
        }
    })
}

/// The statistics table as an Excel workbook: the watermark row, the totals by dimension
/// and the child organisations.
pub fn to_xlsx(watermark: &str, s: &MemberStats) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("党员统计")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, watermark, &bold)?;
    sheet.write_string_with_format(
        1,
        0,
        format!("{}党员统计（统计日期 {}）", s.org_name, s.as_of),
        &bold,
    )?;
    sheet.write_string(2, 0, "党员总数")?;
    sheet.write_number(2, 1, s.total as f64)?;
    sheet.set_column_width(0, 36.0)?;
    for c in 1..7 {
        sheet.set_column_width(c, 12.0)?;
    }
    let mut row: u32 = 4;
    for (c, h) in ["党组织名称", "党员总数", "正式党员", "预备党员", "男", "女"]
        .iter()
        .enumerate()
    {
        sheet.write_string_with_format(row, c as u16, *h, &bold)?;
    }
    for ch in &s.children {
        row += 1;
        sheet.write_string(row, 0, &ch.org_name)?;
        for (c, n) in [ch.total, ch.full, ch.probationary, ch.male, ch.female]
            .iter()
            .enumerate()
        {
            sheet.write_number(row, c as u16 + 1, *n as f64)?;
        }
    }
    for b in &s.breakdowns {
        row += 2;
        sheet.write_string_with_format(row, 0, &b.title, &bold)?;
        sheet.write_string_with_format(row, 1, "人数", &bold)?;
        sheet.write_string_with_format(row, 2, "占比", &bold)?;
        for c in &b.counts {
            row += 1;
            sheet.write_string(row, 0, &c.label)?;
            sheet.write_number(row, 1, c.n as f64)?;
            sheet.write_string(row, 2, percent(c.n, s.total))?;
        }
    }
    book.save_to_buffer()
}
