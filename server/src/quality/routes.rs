//! The API of quality control: rules, the special-period table, the check of one member,
//! batch checks (started as background jobs) and their results.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::store::{
    self, CheckRow, LevelCount, MemberFindings, NewPeriod, PeriodRow, ResultFilter, RowOrg, Summary,
};
use super::{FindingView, Level, Rule, RuleView};
use crate::access::{self, Actor, Reach};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::fields::Problems;
use crate::jobs;
use crate::org::OrgRow;
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rules))
        .routes(routes!(get_periods, post_periods))
        .routes(routes!(member_quality))
        .routes(routes!(start_check, list_checks))
        .routes(routes!(get_check))
        .routes(routes!(check_members))
        .routes(routes!(check_report))
        .routes(routes!(check_special))
}

/// The kind of the batch checks' jobs.
pub const JOB_KIND: &str = "quality";

// ---- rules and periods

/// `GET /quality/rules`: every rule with its level, in the order of the special investigation.
#[utoipa::path(get, path = "/api/v1/quality/rules", responses((status = 200, body = Vec<RuleView>)))]
async fn list_rules(actor: Actor) -> ApiResult<Json<Vec<RuleView>>> {
    access::business_read(&actor)?;
    Ok(Json(Rule::ALL.into_iter().map(RuleView::from).collect()))
}

/// The special-period table 特殊时期特殊生日.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodsView {
    pub periods: Vec<PeriodRow>,
    /// The table is still the shipped default 默认值，待组织部门确认
    pub is_default: bool,
    /// The caller may edit it (tier-1 admins)
    pub editable: bool,
}

pub async fn periods_view(state: &AppState, actor: &Actor) -> ApiResult<PeriodsView> {
    access::business_read(actor)?;
    let periods = store::periods(&state.db).await?;
    Ok(PeriodsView {
        is_default: periods.iter().any(|p| p.is_default != 0),
        editable: access::quality_periods(actor).is_ok(),
        periods,
    })
}

/// `GET /quality/age-periods`: the special-period minimum-age table.
#[utoipa::path(get, path = "/api/v1/quality/age-periods", responses((status = 200, body = PeriodsView)))]
async fn get_periods(State(state): State<AppState>, actor: Actor) -> ApiResult<Json<PeriodsView>> {
    Ok(Json(periods_view(&state, &actor).await?))
}

/// One period as submitted.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PeriodInput {
    /// 入党日期起 YYYY-MM-DD
    pub from_date: Option<String>,
    /// 入党日期止 YYYY-MM-DD
    pub to_date: Option<String>,
    /// 最低入党年龄 (14-30)
    pub min_age: Option<i64>,
    /// 说明 (at most 100 characters)
    pub note: Option<String>,
}

/// The whole new table.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PeriodsInput {
    /// The whole table, at most 50 periods; an empty list flags no special period
    pub periods: Option<Vec<PeriodInput>>,
}

/// Every fault of a submitted table named at once.
pub fn check_periods(input: &PeriodsInput) -> ApiResult<Vec<NewPeriod>> {
    let mut p = Problems::default();
    let Some(periods) = &input.periods else {
        return Err(ApiError::field("periods", "请提交特殊时期列表（periods）"));
    };
    if periods.len() > 50 {
        p.add("periods", "特殊时期最多50条");
    }
    let mut out = Vec::new();
    for (i, r) in periods.iter().enumerate() {
        let n = i + 1;
        let date = |p: &mut Problems, field: &str, label: &str, v: &Option<String>| {
            let v = v.as_deref().map(str::trim).unwrap_or("");
            let f = format!("periods[{i}].{field}");
            if v.is_empty() {
                p.add(&f, format!("第{n}行：请填写{label}"));
                return None;
            }
            match super::rules::date(v) {
                Some(d) => Some(d),
                None => {
                    p.add(
                        &f,
                        format!("第{n}行：{label}不是有效日期，格式应为 YYYY-MM-DD"),
                    );
                    None
                }
            }
        };
        let from = date(&mut p, "from_date", "入党日期起", &r.from_date);
        let to = date(&mut p, "to_date", "入党日期止", &r.to_date);
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                p.add(
                    &format!("periods[{i}].to_date"),
                    format!("第{n}行：入党日期止不能早于入党日期起"),
                );
            }
        }
        let min_age = match r.min_age {
            Some(a) if (14..=30).contains(&a) => Some(a),
            Some(_) => {
                p.add(
                    &format!("periods[{i}].min_age"),
                    format!("第{n}行：最低入党年龄应在14至30岁之间"),
                );
                None
            }
            None => {
                p.add(
                    &format!("periods[{i}].min_age"),
                    format!("第{n}行：请填写最低入党年龄"),
                );
                None
            }
        };
        let note = r.note.as_deref().map(str::trim).unwrap_or("").to_string();
        if note.chars().count() > 100 {
            p.add(
                &format!("periods[{i}].note"),
                format!("第{n}行：说明不能超过100个字"),
            );
        }
        if let (Some(f), Some(t), Some(a)) = (from, to, min_age) {
            out.push(NewPeriod {
                from_date: f.format("%Y-%m-%d").to_string(),
                to_date: t.format("%Y-%m-%d").to_string(),
                min_age: a,
                note,
            });
        }
    }
    p.finish()?;
    Ok(out)
}

pub async fn replace_periods(
    state: &AppState,
    actor: &Actor,
    input: &PeriodsInput,
) -> ApiResult<PeriodsView> {
    let allowed = access::quality_periods(actor)?;
    let rows = check_periods(input)?;
    store::replace_periods(&state.db, &allowed, actor, &rows).await?;
    periods_view(state, actor).await
}

/// `POST /quality/age-periods`: replaces the special-period table (tier-1 admins; audited as
/// `quality.periods`).
#[utoipa::path(post, path = "/api/v1/quality/age-periods", request_body = PeriodsInput,
    responses((status = 200, body = PeriodsView)))]
async fn post_periods(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(input): ApiJson<PeriodsInput>,
) -> ApiResult<Json<PeriodsView>> {
    Ok(Json(replace_periods(&state, &actor, &input).await?))
}

// ---- one member

/// 校验当前对象: the findings of one member, checked now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberQuality {
    pub member_id: String,
    pub name: String,
    /// 所属党组织
    pub branch_name: String,
    pub errors: i64,
    pub warnings: i64,
    pub reminders: i64,
    /// Empty: 校验通过
    pub findings: Vec<FindingView>,
}

pub async fn check_one(state: &AppState, actor: &Actor, id: &str) -> ApiResult<MemberQuality> {
    access::business_read(actor)?;
    let (row, branch_name) = crate::member::routes::load(&state.db, id).await?;
    access::member(actor, &row.org_code)?;
    let findings = store::check_member(&state.db, &row).await?;
    let n = |l: Level| findings.iter().filter(|f| f.level == l).count() as i64;
    Ok(MemberQuality {
        member_id: row.id.clone(),
        name: row.name.clone(),
        branch_name,
        errors: n(Level::Error),
        warnings: n(Level::Warning),
        reminders: n(Level::Reminder),
        findings,
    })
}

/// `GET /members/{id}/quality`: 校验当前对象 — every rule applied to one member now.
#[utoipa::path(get, path = "/api/v1/members/{id}/quality", params(("id" = String, Path)),
    responses((status = 200, body = MemberQuality), (status = 404, body = crate::error::ErrorBody)))]
async fn member_quality(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberQuality>> {
    Ok(Json(check_one(&state, &actor, &id).await?))
}

// ---- batch checks

/// 批量信息校验: the scope and the rule types.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CheckInput {
    /// 校验范围: the organisation whose subtree is checked (default: the caller's own)
    pub org_id: Option<String>,
    /// Rule ids (empty or absent: every rule)
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only rules of these levels (error | warning | reminder; absent: every level)
    pub levels: Option<Vec<String>>,
}

/// A batch check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckView {
    pub id: String,
    /// The background job (`GET /api/v1/jobs/{id}`, its starter only)
    pub job_id: String,
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub rules: Vec<Rule>,
    /// running | finished | failed
    pub state: String,
    pub state_label: String,
    /// Members checked so far
    pub done: i64,
    /// Members in the subtree
    pub total: i64,
    pub members_checked: i64,
    pub findings: i64,
    pub summary: Option<Summary>,
    pub message: String,
    /// 校验人
    pub actor_name: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

pub async fn check_view(db: &Db, row: &CheckRow) -> ApiResult<CheckView> {
    let job = if row.state == "running" {
        jobs::get(db, &row.job_id).await?
    } else {
        None
    };
    let (mut state, mut message) = (row.state.clone(), row.message.clone());
    if state == "running"
        && job
            .as_ref()
            .is_none_or(|j| j.state == jobs::JobState::Failed)
    {
        // The server that ran it stopped while it ran.
        state = "failed".into();
        message = "校验因服务器停止而中断，请重新校验".into();
    }
    let (done, total) = match (&job, state.as_str()) {
        (Some(j), "running") => (j.done as i64, j.total as i64),
        _ => (row.members_checked, row.members_checked),
    };
    let state_label = match state.as_str() {
        "running" => "校验中",
        "finished" => "已完成",
        _ => "未完成",
    };
    Ok(CheckView {
        id: row.id.clone(),
        job_id: row.job_id.clone(),
        org_id: row.org_id.clone(),
        org_code: row.org_code.clone(),
        org_name: row.org_name.clone(),
        rules: row.rule_list(),
        state_label: state_label.into(),
        state,
        done,
        total,
        members_checked: row.members_checked,
        findings: row.findings,
        summary: serde_json::from_str(&row.summary).ok(),
        message,
        actor_name: row.actor_name.clone(),
        started_at: row.started_at.clone(),
        finished_at: row.finished_at.clone(),
    })
}

/// Adapts a job to the batch's progress reports.
struct JobProgress(Arc<jobs::Job>);

impl store::Progress for JobProgress {
    fn total(&self, n: u64) {
        self.0.set_total(n);
    }
    fn advance(&self, n: u64) {
        self.0.advance(n);
    }
}

/// The rules a request chose: `rules` (empty: all) of the `levels` given; each unknown id or
/// level named.
pub fn chosen_rules(rules: &[String], levels: Option<&[String]>) -> ApiResult<Vec<Rule>> {
    let mut p = Problems::default();
    let unknown: Vec<&str> = rules
        .iter()
        .map(|s| s.trim())
        .filter(|s| Rule::parse(s).is_none())
        .collect();
    if !unknown.is_empty() {
        p.add("rules", format!("校验项不存在：{}", unknown.join("、")));
    }
    let mut lv = Vec::new();
    if let Some(levels) = levels {
        for l in levels {
            match Level::parse(l.trim()) {
                Some(x) => lv.push(x),
                None => p.add(
                    "levels",
                    format!("校验级别“{l}”不正确，只能是 error、warning 或 reminder"),
                ),
            }
        }
    }
    p.finish()?;
    let chosen: Vec<Rule> = Rule::ALL
        .into_iter()
        .filter(|r| rules.is_empty() || rules.iter().any(|s| s.trim() == r.id()))
        .filter(|r| levels.is_none() || lv.contains(&r.level()))
        .collect();
    if chosen.is_empty() {
        return Err(ApiError::field(
            "rules",
            "请至少选择一个校验项（所选校验项不属于所选级别）",
        ));
    }
    Ok(chosen)
}

async fn org_in_scope(state: &AppState, actor: &Actor, org_id: Option<&str>) -> ApiResult<OrgRow> {
    let id = org_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&actor.org_id);
    crate::org::store::get(state.db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("党组织"))
}

/// Starts a batch check: records it, starts its job and runs it in the background.
pub async fn start(state: &AppState, actor: &Actor, input: &CheckInput) -> ApiResult<CheckView> {
    access::business_read(actor)?;
    let chosen = chosen_rules(&input.rules, input.levels.as_deref())?;
    let org = org_in_scope(state, actor, input.org_id.as_deref()).await?;
    let allowed = access::quality_batch(actor, &org.code)?;
    let job = jobs::start(
        &state.db,
        &allowed,
        JOB_KIND,
        actor,
        format!("批量信息校验：{}", org.name),
    )
    .await?;
    let row = match store::insert_check(&state.db, &allowed, actor, &org, &chosen, job.id()).await {
        Ok(r) => r,
        Err(e) => {
            job.fail("校验未能开始".into()).await;
            return Err(e);
        }
    };
    let db = state.db.clone();
    let check = row.clone();
    tokio::spawn(async move {
        let progress: Arc<dyn store::Progress> = Arc::new(JobProgress(job.clone()));
        match store::run_check(&db, &check, progress).await {
            Ok(summary) => {
                job.finish(serde_json::json!({
                    "check_id": check.id,
                    "summary": summary,
                }))
                .await
            }
            Err(e) => {
                tracing::error!(check = %check.id, error = %e, "quality check failed");
                let message = "校验未完成，请稍后重试".to_string();
                let _ = store::fail_check(&db, &check.id, &message).await;
                job.fail(message).await;
            }
        }
    });
    check_view(&state.db, &row).await
}

/// `POST /quality/checks`: 批量信息校验 — starts a batch check of the subtree of `org_id`
/// with the chosen rules as a background job (202; follow it with `GET /quality/checks/{id}`
/// or the job). Audited as `quality.check`.
#[utoipa::path(post, path = "/api/v1/quality/checks", request_body = CheckInput,
    responses((status = 202, body = CheckView)))]
async fn start_check(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(input): ApiJson<CheckInput>,
) -> ApiResult<(StatusCode, Json<CheckView>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(start(&state, &actor, &input).await?),
    ))
}

/// `GET /quality/checks`: the newest checks of organisations in the caller's scope.
#[utoipa::path(get, path = "/api/v1/quality/checks", responses((status = 200, body = Vec<CheckView>)))]
async fn list_checks(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<Vec<CheckView>>> {
    access::business_read(&actor)?;
    let rows = store::recent_checks(&state.db, &actor.org_code, 20).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        views.push(check_view(&state.db, row).await?);
    }
    Ok(Json(views))
}

/// A check the caller may see (its organisation within the caller's scope).
pub async fn visible_check(state: &AppState, actor: &Actor, id: &str) -> ApiResult<CheckRow> {
    access::business_read(actor)?;
    let row = store::get_check(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("校验"))?;
    access::quality_check(actor, &row.org_code)?;
    Ok(row)
}

/// `GET /quality/checks/{id}`: a batch check, its progress and, once finished, its summary.
#[utoipa::path(get, path = "/api/v1/quality/checks/{id}", params(("id" = String, Path)),
    responses((status = 200, body = CheckView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_check(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<CheckView>> {
    let row = visible_check(&state, &actor, &id).await?;
    Ok(Json(check_view(&state.db, &row).await?))
}

// ---- results

/// Filters of the per-member results.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// An organisation within the check's scope (default: the check's)
    pub org_id: Option<String>,
    /// true: only members kept in that organisation itself 本级
    #[param(value_type = Option<bool>)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub self_only: Option<String>,
    /// A rule id
    #[param(value_type = Option<Rule>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub rule: Option<String>,
    /// error | warning | reminder
    #[param(value_type = Option<Level>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub level: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// The selected organisation of a result view: within the check's subtree.
pub async fn result_org(
    state: &AppState,
    check: &CheckRow,
    org_id: Option<&str>,
) -> ApiResult<OrgRow> {
    let id = org_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&check.org_id);
    let org = crate::org::store::get(state.db.read(), id)
        .await?
        .ok_or_else(|| ApiError::field("org_id", "党组织不存在"))?;
    if !access::code_within(&check.org_code, &org.code) {
        return Err(ApiError::field("org_id", "所选党组织不在本次校验范围内"));
    }
    Ok(org)
}

/// The checked filter of the per-member results.
pub async fn members_filter(
    state: &AppState,
    actor: &Actor,
    check: &CheckRow,
    q: &MembersQuery,
) -> ApiResult<(ResultFilter, OrgRow)> {
    let mut p = Problems::default();
    let rule = match q.rule.as_deref() {
        None => None,
        Some(s) => Rule::parse(s).or_else(|| {
            p.add("rule", "校验项不存在");
            None
        }),
    };
    let level = match q.level.as_deref() {
        None => None,
        Some(s) => Level::parse(s).or_else(|| {
            p.add("level", "校验级别只能是 error、warning 或 reminder");
            None
        }),
    };
    let self_only = match q.self_only.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            p.add("self_only", "本级只能是 true 或 false");
            false
        }
    };
    p.finish()?;
    let org = result_org(state, check, q.org_id.as_deref()).await?;
    access::org(actor, &org.code, Reach::Subtree)?;
    Ok((
        ResultFilter {
            check_id: check.id.clone(),
            org_code: org.code.clone(),
            self_only,
            rule,
            level,
        },
        org,
    ))
}

/// `GET /quality/checks/{id}/members`: 校验结果 — one page of the members with findings (of
/// the rule / level asked), each with every finding of the check and its explanation.
#[utoipa::path(get, path = "/api/v1/quality/checks/{id}/members", params(("id" = String, Path), MembersQuery),
    responses((status = 200, body = Page<MemberFindings>), (status = 404, body = crate::error::ErrorBody)))]
async fn check_members(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MembersQuery>,
) -> ApiResult<Page<MemberFindings>> {
    let check = visible_check(&state, &actor, &id).await?;
    let paging = Paging::check(q.page, q.per_page)?;
    let (f, _) = members_filter(&state, &actor, &check, &q).await?;
    let (items, total) =
        store::member_findings(&state.db, &f, paging.per_page(), paging.offset()).await?;
    Ok(Page::new(items, total, &paging))
}

/// The organisation of a report or special view.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// An organisation within the check's scope (default: the check's)
    pub org_id: Option<String>,
}

/// One row of the quality report 信息质量统计报告.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportRow {
    pub org: RowOrg,
    /// Per level (提醒, 警告, 错误): findings and members concerned
    pub levels: Vec<LevelCount>,
}

/// The quality report of an organisation: 合计, 本级 and each direct child (subtree totals).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub check_id: String,
    pub org_id: String,
    pub org_name: String,
    pub rows: Vec<ReportRow>,
}

pub async fn report(state: &AppState, actor: &Actor, id: &str, q: &OrgQuery) -> ApiResult<Report> {
    let check = visible_check(state, actor, id).await?;
    let org = result_org(state, &check, q.org_id.as_deref()).await?;
    access::org(actor, &org.code, Reach::Subtree)?;
    let mut rows = Vec::new();
    for o in store::report_orgs(&state.db, &org).await? {
        let f = ResultFilter {
            check_id: check.id.clone(),
            org_code: o.org_code.clone(),
            self_only: o.self_only,
            rule: None,
            level: None,
        };
        let levels = store::level_counts(&state.db, &f).await?;
        // 本级 only when members are kept in the organisation itself.
        if o.self_only && levels.iter().all(|l| l.findings == 0) {
            continue;
        }
        rows.push(ReportRow { org: o, levels });
    }
    Ok(Report {
        check_id: check.id,
        org_id: org.id,
        org_name: org.name,
        rows,
    })
}

/// `GET /quality/checks/{id}/report`: 信息质量统计报告 — per level the findings and the members
/// concerned, in total, for the organisation itself and per direct child (subtree totals).
#[utoipa::path(get, path = "/api/v1/quality/checks/{id}/report", params(("id" = String, Path), OrgQuery),
    responses((status = 200, body = Report), (status = 404, body = crate::error::ErrorBody)))]
async fn check_report(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<Report>> {
    Ok(Json(report(&state, &actor, &id, &q).await?))
}

/// One row of the special investigation: a count per rule of the check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpecialRow {
    pub org: RowOrg,
    /// In the order of `rules`; each the number of members the rule flagged
    pub counts: Vec<i64>,
}

/// 集中排查专项统计: a column per rule, a row per direct child organisation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Special {
    pub check_id: String,
    pub org_id: String,
    pub org_name: String,
    pub rules: Vec<RuleView>,
    pub rows: Vec<SpecialRow>,
}

pub async fn special(
    state: &AppState,
    actor: &Actor,
    id: &str,
    q: &OrgQuery,
) -> ApiResult<Special> {
    let check = visible_check(state, actor, id).await?;
    let org = result_org(state, &check, q.org_id.as_deref()).await?;
    access::org(actor, &org.code, Reach::Subtree)?;
    let rules = check.rule_list();
    let mut rows = Vec::new();
    for o in store::report_orgs(&state.db, &org).await? {
        let f = ResultFilter {
            check_id: check.id.clone(),
            org_code: o.org_code.clone(),
            self_only: o.self_only,
            rule: None,
            level: None,
        };
        let by_rule = store::rule_counts(&state.db, &f).await?;
        if o.self_only && by_rule.is_empty() {
            continue;
        }
        let counts = rules
            .iter()
            .map(|r| by_rule.get(r).copied().unwrap_or(0))
            .collect();
        rows.push(SpecialRow { org: o, counts });
    }
    Ok(Special {
        check_id: check.id,
        org_id: org.id,
        org_name: org.name,
        rules: rules.into_iter().map(RuleView::from).collect(),
        rows,
    })
}

/// `GET /quality/checks/{id}/special`: 集中排查专项统计 — per direct child organisation (subtree
/// counts), per rule of the check, the members flagged; each count lists them through
/// `/quality/checks/{id}/members?org_id=&rule=`.
#[utoipa::path(get, path = "/api/v1/quality/checks/{id}/special", params(("id" = String, Path), OrgQuery),
    responses((status = 200, body = Special), (status = 404, body = crate::error::ErrorBody)))]
async fn check_special(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<Special>> {
    Ok(Json(special(&state, &actor, &id, &q).await?))
}
