//! The statistics API: `GET /stats/members`, `/stats/members/export.xlsx`,
//! `/stats/registration` and `/stats/changes`. Read-only; the export is audited.

use axum::extract::State as AxState;
use axum::Json;
use chrono::{Datelike, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    store, ChangeStats, MemberStats, RegistrationSplit, RegistrationStats, UnregisteredMember,
};
use crate::access::{self, Actor};
use crate::audit::routes::{ExportFile, XLSX_TYPE};
use crate::audit::{self, Event, Who};
use crate::db::{now_rfc3339, today, Db};
use crate::error::{ApiError, ApiResult};
use crate::fields::Problems;
use crate::org::OrgRow;
use crate::state::{ApiQuery, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(member_stats))
        .routes(routes!(export_member_stats))
        .routes(routes!(registration_stats))
        .routes(routes!(unregistered_members))
        .routes(routes!(export_registration))
        .routes(routes!(change_stats))
}

/// The organisation whose subtree is counted.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The organisation (default: the caller's own)
    pub org_id: Option<String>,
}

/// The organisation and year of 党员增减.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The organisation (default: the caller's own)
    pub org_id: Option<String>,
    /// The year (Beijing time; default: this year)
    #[param(value_type = Option<i64>, minimum = 1921, maximum = 2100)]
    pub year: Option<String>,
}

/// The organisation the actor asked for, inside its scope.
pub async fn scoped_org(db: &Db, actor: &Actor, org_id: Option<&str>) -> ApiResult<OrgRow> {
    access::business_read(actor)?;
    let id = org_id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&actor.org_id);
    let org = crate::org::routes::load(db, id).await?;
    access::stats_read(actor, &org.code)?;
    Ok(org)
}

/// 党员统计 of the actor's choice.
pub async fn members(db: &Db, actor: &Actor, org_id: Option<&str>) -> ApiResult<MemberStats> {
    let org = scoped_org(db, actor, org_id).await?;
    Ok(store::member_stats(db, &org, today()).await?)
}

/// 注册统计 of the actor's choice.
pub async fn registration(
    db: &Db,
    actor: &Actor,
    org_id: Option<&str>,
) -> ApiResult<RegistrationStats> {
    let org = scoped_org(db, actor, org_id).await?;
    let (children, members, registered) = store::registration(db, &org).await?;
    let mut by_category: Vec<RegistrationSplit> =
        [("full", "正式党员"), ("probationary", "预备党员")]
            .iter()
            .map(|(k, l)| RegistrationSplit {
                key: k.to_string(),
                label: l.to_string(),
                members: 0,
                registered: 0,
            })
            .collect();
    let mut by_job: Vec<RegistrationSplit> = super::rules::JOB_GROUPS
        .iter()
        .map(|(k, l)| RegistrationSplit {
            key: k.to_string(),
            label: l.to_string(),
            members: 0,
            registered: 0,
        })
        .collect();
    for (category, job, n, r) in store::registration_split(db, &org.code).await? {
        if let Some(c) = by_category.iter_mut().find(|c| c.key == category) {
            c.members += n;
            c.registered += r;
        }
        let group = super::rules::job_group(&job);
        if let Some(j) = by_job.iter_mut().find(|j| j.key == group) {
            j.members += n;
            j.registered += r;
        }
    }
    Ok(RegistrationStats {
        org_id: org.id,
        org_name: org.name,
        members,
        registered,
        children,
        by_category,
        by_job,
        counted_at: now_rfc3339(),
    })
}

/// Checks a year parameter: 1921 to 2100, default this year (Beijing time).
pub fn parse_year(year: Option<&str>) -> ApiResult<i32> {
    let mut p = Problems::default();
    let this_year = today().year();
    let y = match year.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(this_year),
        Some(s) => match s.parse::<i32>() {
            Ok(y) if (1921..=2100).contains(&y) => Some(y),
            _ => {
                p.add("year", "统计年度应为1921至2100之间的年份");
                None
            }
        },
    };
    p.finish()?;
    Ok(y.unwrap_or(this_year))
}

/// 党员增减 of the actor's choice.
pub async fn changes(
    db: &Db,
    actor: &Actor,
    org_id: Option<&str>,
    year: Option<&str>,
) -> ApiResult<ChangeStats> {
    let year = parse_year(year)?;
    let org = scoped_org(db, actor, org_id).await?;
    Ok(store::changes(db, &org, year).await?)
}

/// `GET /stats/members`: 党员统计 — the living members of the organisation's subtree by
/// category, sex, age band, education, join-date band, ethnicity and job, and one row per
/// direct child organisation (subtree totals) to drill down. Current on every request.
#[utoipa::path(get, path = "/api/v1/stats/members", params(StatsQuery),
    responses((status = 200, body = MemberStats), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
async fn member_stats(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<MemberStats>> {
    Ok(Json(members(&state.db, &actor, q.org_id.as_deref()).await?))
}

/// `GET /stats/members/export.xlsx`: the statistics table as an Excel workbook (watermark
/// row first; audited as `stats.export`).
#[utoipa::path(get, path = "/api/v1/stats/members/export.xlsx", params(StatsQuery),
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_member_stats(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<ExportFile> {
    export(&state.db, &actor, q.org_id.as_deref()).await
}

/// The Excel export of 党员统计, audited.
pub async fn export(db: &Db, actor: &Actor, org_id: Option<&str>) -> ApiResult<ExportFile> {
    let stats = members(db, actor, org_id).await?;
    let org = scoped_org(db, actor, Some(&stats.org_id)).await?;
    let now = Utc::now();
    let mark = crate::audit::query::watermark(actor, now);
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let detail = format!(
        "member statistics of {} ({} members)",
        org.code, stats.total
    );
    let bytes = tokio::task::spawn_blocking(move || super::pages::to_xlsx(&mark, &stats))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("stats.export", &org.id)
            .in_org(org.code.clone())
            .with_detail(detail),
    )
    .await?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: format!("member-stats-{stamp}.xlsx"),
    })
}

/// `GET /stats/registration`: 注册统计 — living members with an activated personal account,
/// per direct child organisation. Counted on every request.
#[utoipa::path(get, path = "/api/v1/stats/registration", params(StatsQuery),
    responses((status = 200, body = RegistrationStats), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
async fn registration_stats(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<RegistrationStats>> {
    Ok(Json(
        registration(&state.db, &actor, q.org_id.as_deref()).await?,
    ))
}

/// `GET /stats/changes`: 党员增减 — the year's additions and decreases in the subtree from
/// the ledger; a loss later recovered 找回 is not counted, nor an entry deleted as mistaken.
#[utoipa::path(get, path = "/api/v1/stats/changes", params(ChangesQuery),
    responses((status = 200, body = ChangeStats), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn change_stats(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<ChangeStats>> {
    Ok(Json(
        changes(&state.db, &actor, q.org_id.as_deref(), q.year.as_deref()).await?,
    ))
}

/// The organisation and page of the unregistered members.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnregisteredQuery {
    /// The organisation (default: the caller's own)
    pub org_id: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// The unregistered members of the actor's choice (ID numbers masked).
pub async fn unregistered(
    db: &Db,
    actor: &Actor,
    org_id: Option<&str>,
    paging: &crate::state::Paging,
) -> ApiResult<crate::state::Page<UnregisteredMember>> {
    let org = scoped_org(db, actor, org_id).await?;
    let (total, rows) =
        store::unregistered(db, &org.code, paging.per_page(), paging.offset()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for (id, name, sealed, branch_name, category, job) in rows {
        let id_number = crate::crypto::open(crate::crypto::Column::MembersIdNumber, &sealed)?;
        items.push(UnregisteredMember {
            id,
            name,
            id_number: crate::member::idcard::mask(&id_number),
            branch_name,
            category,
            job_group: super::rules::job_group_label(super::rules::job_group(&job)).to_string(),
        });
    }
    Ok(crate::state::Page::new(items, total, paging))
}

/// 注册统计 drill-down: the living members of the subtree without a personal account.
#[utoipa::path(get, path = "/api/v1/stats/registration/unregistered", params(UnregisteredQuery),
    responses((status = 200, body = crate::state::Page<UnregisteredMember>),
              (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn unregistered_members(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<UnregisteredQuery>,
) -> ApiResult<Json<crate::state::Page<UnregisteredMember>>> {
    let paging = crate::state::Paging::check(q.page, q.per_page)?;
    Ok(Json(
        unregistered(&state.db, &actor, q.org_id.as_deref(), &paging).await?,
    ))
}

/// The Excel export of 注册统计, audited.
#[utoipa::path(get, path = "/api/v1/stats/registration/export.xlsx", params(StatsQuery),
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_registration(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<ExportFile> {
    let db = &state.db;
    let stats = registration(db, &actor, q.org_id.as_deref()).await?;
    let org = scoped_org(db, &actor, Some(&stats.org_id)).await?;
    let now = Utc::now();
    let mark = crate::audit::query::watermark(&actor, now);
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let detail = format!(
        "registration statistics of {} ({} of {} registered)",
        org.code, stats.registered, stats.members
    );
    let bytes = tokio::task::spawn_blocking(move || super::pages::registration_xlsx(&mark, &stats))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    audit::append_alone(
        db,
        &Who::from(&actor),
        Event::ok("stats.export", &org.id)
            .in_org(org.code.clone())
            .with_detail(detail),
    )
    .await?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: format!("registration-stats-{stamp}.xlsx"),
    })
}
