//! The pages of quality control 信息质量管控: `/quality` (批量信息校验: scope, rule types, the
//! running check's progress bar, recent checks), a check's results (`/quality/checks/{id}`:
//! 信息质量统计报告; `/special`: 集中排查专项统计; `/members`: 校验结果), the special-period
//! table (`/quality/periods`) and 校验当前对象 (`/members/{id}/quality`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::routes::{
    self, CheckInput, CheckView, MembersQuery, OrgQuery, PeriodInput, PeriodsInput,
};
use super::store::{self, LevelCount};
use super::{Level, Rule};
use crate::access::Actor;
use crate::error::ApiError;
use crate::jobs;
use crate::state::{AppState, Paging};
use crate::web::orgs::pager;
use crate::web::units::enc;
use crate::web::{
    csrf_field, error_page, or_error, page, page_with_status, CsrfForm, FormErrors, PageActor,
    PageRouter,
};

pub fn pages() -> PageRouter {
    PageRouter::new()
        .route("/quality", get(quality_page).post(start_check))
        .route("/quality/periods", get(periods_page).post(save_periods))
        .route("/quality/checks/{id}", get(report_page))
        .route("/quality/checks/{id}/special", get(special_page))
        .route("/quality/checks/{id}/members", get(members_page))
        .route("/members/{id}/quality", get(member_page))
}

fn crumbs(title: &str) -> Vec<(String, String)> {
    vec![
        ("/quality".to_string(), "信息质量管控".to_string()),
        (String::new(), title.to_string()),
    ]
}

const LEVEL_NOTE: &str = "校验结果分为3个等级：“错误”类数据不符合采集要求，必须改正；“警告”表示一般不应该出现类似数据，需要仔细核实；“提醒”表示数据符合采集要求，但可能有错，需要注意检查。";

fn level_badge(l: Level) -> Markup {
    html! { span class={"badge level-" (l.as_str())} { (l.label()) } }
}

/// The organisations offered as scope: the caller's and its direct children.
async fn scope_choices(state: &AppState, actor: &Actor) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = vec![(actor.org_id.clone(), actor.org_name.clone())];
    let (children, _) = crate::org::store::children(&state.db, &actor.org_id, 200, 0).await?;
    for c in children {
        out.push((c.id.clone(), format!("　{}", c.name)));
    }
    Ok(out)
}

fn check_form(actor: &Actor, orgs: &[(String, String)], errors: &FormErrors) -> Markup {
    let group = |missing: bool| {
        Rule::ALL
            .into_iter()
            .filter(move |r| r.is_missing_item() == missing)
    };
    html! {
        form #quality-form.panel method="post" action="/quality" {
            (csrf_field(actor))
            h2 { "批量信息校验" }
            (errors.banner())
            div.field {
                label for="org_id" { "校验范围" }
                select #org_id name="org_id" title="所选党组织及其全部下级党组织的党员" {
                    @for (id, name) in orgs { option value=(id) { (name) } }
                }
            }
            fieldset.rule-choice {
                legend { "校验级别" }
                @for l in [Level::Error, Level::Warning] {
                    label.checkbox { input type="checkbox" name="levels" value=(l.as_str()) checked; (l.label()) }
                }
            }
            @for (title, missing) in [("重要信息项缺项", true), ("异常情况", false)] {
                fieldset.rule-choice {
                    legend { (title) }
                    @for r in group(missing) {
                        label.checkbox {
                            input type="checkbox" name="rules" value=(r.id()) checked;
                            (r.name()) "（" (r.level().label()) "）"
                        }
                    }
                }
            }
            (errors.at("rules"))
            div.grid-actions {
                button.primary #start-check type="submit" { "提交校验" }
                a.button href="/quality/periods" { "特殊时期特殊生日规定" }
            }
        }
    }
}

fn checks_table(checks: &[CheckView]) -> Markup {
    html! {
        table.list #quality-checks {
            thead { tr {
                th { "开始时间" } th { "校验范围" } th { "校验人" } th { "校验项数" } th { "状态" }
                th { "校验党员数" } th { "提示数" } th.ops { "查看" }
            } }
            tbody {
                @for c in checks {
                    tr data-id=(c.id) {
                        td { (crate::approval::pages::short_time(&c.started_at)) }
                        td { (c.org_name) }
                        td { (c.actor_name) }
                        td.num { (c.rules.len()) }
                        td { (c.state_label) @if !c.message.is_empty() { " " span.muted.small { (c.message) } } }
                        td.num { (c.members_checked) }
                        td.num { (c.findings) }
                        td.ops {
                            @if c.state == "finished" {
                                a href={"/quality/checks/" (c.id)} { "统计报告" }
                                a href={"/quality/checks/" (c.id) "/special"} { "集中排查专项统计" }
                                a href={"/quality/checks/" (c.id) "/members"} { "校验结果" }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn quality_body(
    state: &AppState,
    actor: &Actor,
    errors: &FormErrors,
) -> Result<Markup, ApiError> {
    crate::access::business_read(actor)?;
    let orgs = scope_choices(state, actor).await?;
    // The caller's newest check, found again after a reload: its progress while it runs,
    // then where its results are.
    let latest = jobs::latest(&state.db, &actor.account_id, routes::JOB_KIND).await?;
    let running = latest
        .clone()
        .filter(|v| v.state == jobs::JobState::Running);
    let done = latest.filter(|v| v.state != jobs::JobState::Running);
    let mut checks: Vec<CheckView> = Vec::new();
    for row in store::recent_checks(&state.db, &actor.org_code, 20).await? {
        checks.push(routes::check_view(&state.db, &row).await?);
    }
    Ok(html! {
        @if let Some(v) = &running {
            div.panel #quality-running role="status" {
                h2 { "正在校验：" (v.label) }
                (jobs::progress_bar(v))
                p.muted { "校验在后台进行，离开或刷新本页不影响校验。" }
            }
        }
        @if let Some(v) = &done {
            @let check_id = v.result.as_ref().and_then(|r| r["check_id"].as_str()).unwrap_or("");
            div.panel #quality-done role="status" {
                @if check_id.is_empty() {
                    div.alert.alert-error { (v.label) "：" (v.message.clone().unwrap_or_default()) }
                } @else {
                    p {
                        (v.label) "：校验完成。"
                        a #done-report href={"/quality/checks/" (check_id)} { "信息质量统计报告" } " · "
                        a #done-special href={"/quality/checks/" (check_id) "/special"} { "集中排查专项统计" } " · "
                        a #done-members href={"/quality/checks/" (check_id) "/members"} { "校验结果" }
                    }
                }
            }
        }
        (check_form(actor, &orgs, errors))
        div.panel {
            h2 { "校验记录" }
            p.muted { (LEVEL_NOTE) }
            @if checks.is_empty() { p.empty { "尚无校验记录" } } @else { (checks_table(&checks)) }
        }
    })
}

async fn quality_page(State(state): State<AppState>, PageActor(actor): PageActor) -> Response {
    match quality_body(&state, &actor, &FormErrors::default()).await {
        Ok(body) => page(&actor, "信息质量管控", &crumbs("批量信息校验"), None, body),
        Err(e) => error_page(Some(&actor), e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CheckForm {
    org_id: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    levels: Vec<String>,
}

async fn start_check(State(state): State<AppState>, form: CsrfForm<CheckForm>) -> Response {
    let CsrfForm { actor, form, .. } = form;
    if form.rules.is_empty() {
        let errors = FormErrors::from_api(&ApiError::field("rules", "请至少勾选一个校验项"));
        return match quality_body(&state, &actor, &errors).await {
            Ok(body) => page_with_status(
                StatusCode::BAD_REQUEST,
                &actor,
                "信息质量管控",
                &crumbs("批量信息校验"),
                None,
                body,
            ),
            Err(e) => error_page(Some(&actor), e),
        };
    }
    let input = CheckInput {
        org_id: form.org_id,
        rules: form.rules,
        levels: Some(form.levels),
    };
    match routes::start(&state, &actor, &input).await {
        Ok(_) => Redirect::to("/quality").into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let errors = FormErrors::from_api(&e);
            match quality_body(&state, &actor, &errors).await {
                Ok(body) => page_with_status(
                    StatusCode::BAD_REQUEST,
                    &actor,
                    "信息质量管控",
                    &crumbs("批量信息校验"),
                    None,
                    body,
                ),
                Err(e) => error_page(Some(&actor), e),
            }
        }
        Err(e) => error_page(Some(&actor), e),
    }
}

// ---- results

fn tabs(check: &CheckView, current: &str, org_id: &str) -> Markup {
    let q = if org_id.is_empty() {
        String::new()
    } else {
        format!("?org_id={}", enc(org_id))
    };
    let tab = |href: String, key: &str, text: &str| {
        html! {
            @if key == current { a.tab.active href=(href) aria-current="page" { (text) } } @else { a.tab href=(href) { (text) } }
        }
    };
    html! {
        div.panel.check-summary {
            p {
                "校验范围：" strong { (check.org_name) } "　校验人：" (check.actor_name)
                "　开始时间：" (crate::approval::pages::short_time(&check.started_at))
                "　状态：" (check.state_label)
                "　校验党员：" (check.members_checked) " 名　提示：" (check.findings) " 条"
                @if let Some(s) = &check.summary { "　用时：" (format!("{:.1}", s.seconds)) " 秒" }
            }
            nav.tabs {
                (tab(format!("/quality/checks/{}{q}", check.id), "report", "信息质量统计报告"))
                (tab(format!("/quality/checks/{}/special{q}", check.id), "special", "集中排查专项统计"))
                (tab(format!("/quality/checks/{}/members{q}", check.id), "members", "校验结果"))
            }
        }
    }
}

fn level_cells(levels: &[LevelCount]) -> Markup {
    html! {
        @for l in levels {
            td.num { (l.findings) } td.num { (l.members) }
        }
    }
}

async fn report_body(
    state: &AppState,
    actor: &Actor,
    id: &str,
    q: &OrgQuery,
) -> Result<(Markup, String), ApiError> {
    let row = routes::visible_check(state, actor, id).await?;
    let check = routes::check_view(&state.db, &row).await?;
    let r = routes::report(state, actor, id, q).await?;
    let title = format!("{}信息质量统计报告", r.org_name);
    let body = html! {
        (tabs(&check, "report", q.org_id.as_deref().unwrap_or("")))
        div.panel {
            h2 { (title) }
            table.list #quality-report {
                thead {
                    tr {
                        th rowspan="2" { "序号" } th rowspan="2" { "党组织名称" }
                        @for l in Level::ALL { th colspan="2" { (l.label()) "类" } }
                    }
                    tr { @for _ in Level::ALL { th { "提示数" } th { "涉及党员数" } } }
                }
                tbody {
                    @for (i, row) in r.rows.iter().enumerate() {
                        tr data-org=(row.org.org_id) {
                            td.num { (i + 1) }
                            td {
                                @if i == 0 || row.org.self_only { (row.org.name) }
                                @else { a href={"/quality/checks/" (r.check_id) "?org_id=" (enc(&row.org.org_id))} { (row.org.name) } }
                            }
                            (level_cells(&row.levels))
                        }
                    }
                }
            }
            p.muted { (LEVEL_NOTE) }
        }
    };
    Ok((body, title))
}

async fn report_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Response {
    or_error(
        &actor,
        async {
            let (body, _) = report_body(&state, &actor, &id, &q).await?;
            Ok(page(
                &actor,
                "信息质量统计报告",
                &crumbs("信息质量统计报告"),
                None,
                body,
            ))
        }
        .await,
    )
}

async fn special_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Response {
    or_error(&actor, async {
        let row = routes::visible_check(&state, &actor, &id).await?;
        let check = routes::check_view(&state.db, &row).await?;
        let s = routes::special(&state, &actor, &id, &q).await?;
        let missing = s.rules.iter().filter(|r| r.id.is_missing_item()).count();
        let others = s.rules.len() - missing;
        let body = html! {
            (tabs(&check, "special", q.org_id.as_deref().unwrap_or("")))
            div.panel.wide {
                h2 { (s.org_name) "集中排查专项统计" }
                p.muted { "点击统计数字可查看数据异常的党员；点击党组织名称查看其下级党组织。" }
                div.table-scroll {
                    table.list.special #quality-special {
                        thead {
                            tr {
                                th rowspan="2" { "序号" } th rowspan="2" { "党组织名称" }
                                @if missing > 0 { th colspan=(missing) { "重要信息项缺项" } }
                                @if others > 0 { th colspan=(others) { "异常情况" } }
                            }
                            tr { @for r in &s.rules { th.rule data-rule=(r.id.id()) { (r.name) "（" (r.level_label) "）" } } }
                        }
                        tbody {
                            @for (i, row) in s.rows.iter().enumerate() {
                                tr data-org=(row.org.org_id) {
                                    td.num { (i + 1) }
                                    td {
                                        @if i == 0 || row.org.self_only { (row.org.name) }
                                        @else { a href={"/quality/checks/" (s.check_id) "/special?org_id=" (enc(&row.org.org_id))} { (row.org.name) } }
                                    }
                                    @for (r, n) in s.rules.iter().zip(&row.counts) {
                                        td.num {
                                            @if *n == 0 { "0" } @else {
                                                a.count data-rule=(r.id.id()) href={"/quality/checks/" (s.check_id) "/members?org_id=" (enc(&row.org.org_id)) "&rule=" (r.id.id()) @if row.org.self_only { "&self_only=true" }} { (n) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(page(&actor, "集中排查专项统计", &crumbs("集中排查专项统计"), None, body))
    }.await)
}

#[derive(Debug, Default, Deserialize)]
struct MembersPageQuery {
    org_id: Option<String>,
    self_only: Option<String>,
    rule: Option<String>,
    level: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

async fn members_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(pq): Query<MembersPageQuery>,
) -> Response {
    or_error(&actor, async {
        let t = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let num = |v: &Option<String>| v.as_deref().and_then(|s| s.trim().parse::<i64>().ok());
        let q = MembersQuery {
            org_id: t(&pq.org_id),
            self_only: t(&pq.self_only),
            rule: t(&pq.rule),
            level: t(&pq.level),
            page: None,
            per_page: None,
        };
        let paging = Paging { page: num(&pq.page).map(|p| p.max(1)), per_page: Some(num(&pq.per_page).unwrap_or(20).clamp(1, 200)) };
        let row = routes::visible_check(&state, &actor, &id).await?;
        let check = routes::check_view(&state.db, &row).await?;
        let (f, org) = routes::members_filter(&state, &actor, &row, &q).await?;
        let (items, total) = store::member_findings(&state.db, &f, paging.per_page(), paging.offset()).await?;
        let mut base = format!("/quality/checks/{id}/members?org_id={}", enc(&org.id));
        for (k, v) in [("self_only", &q.self_only), ("rule", &q.rule), ("level", &q.level)] {
            if let Some(v) = v { base.push_str(&format!("&{k}={}", enc(v))); }
        }
        let offset = paging.offset();
        let body = html! {
            (tabs(&check, "members", q.org_id.as_deref().unwrap_or("")))
            div.panel {
                h2 { "党员信息校验结果" }
                form.search.filter-grid method="get" action={"/quality/checks/" (id) "/members"} {
                    input type="hidden" name="org_id" value=(org.id);
                    div.field {
                        label for="rule" { "校验项" }
                        select #rule name="rule" {
                            option value="" { "全部" }
                            @for r in Rule::ALL { option value=(r.id()) selected[f.rule == Some(r)] { (r.name()) } }
                        }
                    }
                    div.field {
                        label for="level" { "校验级别" }
                        select #level name="level" {
                            option value="" { "全部" }
                            @for l in Level::ALL { option value=(l.as_str()) selected[f.level == Some(l)] { (l.label()) } }
                        }
                    }
                    div.grid-actions { button.primary type="submit" { "查询" } }
                }
                p { "校验范围：" strong { (org.name) } @if let Some(r) = f.rule { "　校验项：" strong #filter-rule { (r.name()) } } }
                @if items.is_empty() { p.empty { "没有校验提示" } } @else {
                    table.list #quality-members {
                        thead { tr {
                            th { "序号" } th { "姓名" } th { "所在党支部" } th { "身份证号" } th { "是否失联" } th { "入党时间" }
                            th { "校验结果" } th { "结果解释" }
                        } }
                        tbody {
                            @for (i, m) in items.iter().enumerate() {
                                tr data-id=(m.member_id) {
                                    td.num { (offset + i as i64 + 1) }
                                    td { @if m.name.is_empty() { span.muted { "（已不在党员库）" } } @else { a href={"/members/" (m.member_id)} { (m.name) } } }
                                    td { (m.branch_name) }
                                    td.idno { (m.id_number) }
                                    td { @if m.lost_contact { "是" } @else { "否" } }
                                    td.date { (m.joined_on) }
                                    td.nowrap { "提醒：" (m.reminders) " 警告：" (m.warnings) " 错误：" (m.errors) }
                                    td {
                                        ul.findings {
                                            @for x in &m.findings {
                                                li { (level_badge(x.level)) " " strong { (x.rule_name) } "：" (x.explanation) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    (pager(&base, paging.page(), paging.per_page(), total))
                }
            }
        };
        Ok(page(&actor, "校验结果", &crumbs("校验结果"), None, body))
    }.await)
}

// ---- one member

async fn member_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    or_error(&actor, async {
        let r = routes::check_one(&state, &actor, &id).await?;
        let body = html! {
            div.panel #member-quality {
                h2 { "校验当前对象：" (r.name) }
                table.list {
                    thead { tr { th { "序号" } th { "姓名" } th { "所属党组织" } th { "校验结果" } th { "结果解释" } } }
                    tbody {
                        @if r.findings.is_empty() {
                            tr { td.num { "1" } td { (r.name) } td { (r.branch_name) } td { span.badge.ok { "校验通过" } } td {} }
                        }
                        @for (i, f) in r.findings.iter().enumerate() {
                            tr data-rule=(f.rule.id()) {
                                td.num { (i + 1) } td { (r.name) } td { (r.branch_name) }
                                td { (level_badge(f.level)) " " (f.rule_name) }
                                td { (f.explanation) }
                            }
                        }
                    }
                }
                p.muted { (LEVEL_NOTE) }
                div.toolbar { a.button href={"/members/" (r.member_id)} { "返回党员档案" } }
            }
        };
        Ok(page(&actor, "校验当前对象", &[(format!("/members/{id}"), r.name.clone()), (String::new(), "质量检查".into())], None, body))
    }.await)
}

// ---- special periods

async fn periods_body(
    state: &AppState,
    actor: &Actor,
    errors: &FormErrors,
    rows: Option<Vec<PeriodInput>>,
) -> Result<Markup, ApiError> {
    let v = routes::periods_view(state, actor).await?;
    let mut shown: Vec<PeriodInput> = rows.unwrap_or_else(|| {
        v.periods
            .iter()
            .map(|p| PeriodInput {
                from_date: Some(p.from_date.clone()),
                to_date: Some(p.to_date.clone()),
                min_age: Some(p.min_age),
                note: Some(p.note.clone()),
            })
            .collect()
    });
    if v.editable {
        shown.extend((0..2).map(|_| PeriodInput::default()));
    }
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    Ok(html! {
        div.panel #quality-periods {
            h2 { "特殊时期特殊生日规定" }
            p { "入党日期在下表某一时期内、入党时年龄低于该时期最低入党年龄的党员，校验时提示“特殊时期特殊生日不符合当时规定（警告）”。" }
            @if v.is_default {
                div.alert.alert-warn role="note" #periods-default { "默认值，待组织部门确认：目前仅提示1945年6月11日以后入党时不满18岁的党员。" }
            }
            (errors.banner())
            @if v.editable {
                form method="post" action="/quality/periods" {
                    (csrf_field(actor))
                    table.list {
                        thead { tr { th { "入党日期起" } th { "入党日期止" } th { "最低入党年龄" } th { "说明" } } }
                        tbody {
                            @for (i, p) in shown.iter().enumerate() {
                                tr {
                                    td { input type="date" name="from_date" value=(s(&p.from_date)) aria-label={"第" (i + 1) "行入党日期起"}; (errors.at(&format!("periods[{i}].from_date"))) }
                                    td { input type="date" name="to_date" value=(s(&p.to_date)) aria-label={"第" (i + 1) "行入党日期止"}; (errors.at(&format!("periods[{i}].to_date"))) }
                                    td { input type="number" min="14" max="30" name="min_age" value=[p.min_age] aria-label={"第" (i + 1) "行最低入党年龄"}; (errors.at(&format!("periods[{i}].min_age"))) }
                                    td { input type="text" name="note" value=(s(&p.note)) aria-label={"第" (i + 1) "行说明"}; }
                                }
                            }
                        }
                    }
                    p.muted { "留空的行不保存；清空某行即删除该时期。" }
                    div.toolbar { button.primary type="submit" { "保存" } a.button href="/quality" { "返回" } }
                }
            } @else {
                table.list {
                    thead { tr { th { "入党日期起" } th { "入党日期止" } th { "最低入党年龄" } th { "说明" } } }
                    tbody { @for p in &v.periods { tr { td { (p.from_date) } td { (p.to_date) } td.num { (p.min_age) } td { (p.note) } } } }
                }
                p.muted { "只有县级及以上党委管理员可以修改。" }
            }
        }
    })
}

async fn periods_page(State(state): State<AppState>, PageActor(actor): PageActor) -> Response {
    or_error(
        &actor,
        async {
            let body = periods_body(&state, &actor, &FormErrors::default(), None).await?;
            Ok(page(
                &actor,
                "特殊时期特殊生日规定",
                &crumbs("特殊时期特殊生日规定"),
                None,
                body,
            ))
        }
        .await,
    )
}

#[derive(Debug, Default, Deserialize)]
struct PeriodsForm {
    #[serde(default)]
    from_date: Vec<String>,
    #[serde(default)]
    to_date: Vec<String>,
    #[serde(default)]
    min_age: Vec<String>,
    #[serde(default)]
    note: Vec<String>,
}

async fn save_periods(State(state): State<AppState>, form: CsrfForm<PeriodsForm>) -> Response {
    let CsrfForm { actor, form, .. } = form;
    let n = form
        .from_date
        .len()
        .max(form.to_date.len())
        .max(form.min_age.len());
    let get = |v: &Vec<String>, i: usize| {
        v.get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut periods = Vec::new();
    for i in 0..n {
        let (from, to, age, note) = (
            get(&form.from_date, i),
            get(&form.to_date, i),
            get(&form.min_age, i),
            get(&form.note, i),
        );
        if from.is_none() && to.is_none() && age.is_none() && note.is_none() {
            continue;
        }
        // A number that does not parse is refused as out of range.
        let min_age = age.map(|a| a.parse::<i64>().unwrap_or(0));
        periods.push(PeriodInput {
            from_date: from,
            to_date: to,
            min_age,
            note,
        });
    }
    let input = PeriodsInput {
        periods: Some(periods),
    };
    match routes::replace_periods(&state, &actor, &input).await {
        Ok(_) => Redirect::to("/quality/periods").into_response(),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let errors = FormErrors::from_api(&e);
            match periods_body(&state, &actor, &errors, input.periods).await {
                Ok(body) => page_with_status(
                    StatusCode::BAD_REQUEST,
                    &actor,
                    "特殊时期特殊生日规定",
                    &crumbs("特殊时期特殊生日规定"),
                    None,
                    body,
                ),
                Err(e) => error_page(Some(&actor), e),
            }
        }
        Err(e) => error_page(Some(&actor), e),
    }
}
