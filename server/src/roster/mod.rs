//! Rosters 名册 (issue 16 item 4): 党员名册 and 党组织名册 of an organisation (with 包含下级, of
//! its subtree) as Excel workbooks, with the columns the seeds' platform shows, a watermark
//! row (`audit::query::watermark`), at most [`EXPORT_CAP`] rows, ID numbers and phones masked,
//! each export recorded in the audit log.

use std::collections::HashMap;

use axum::extract::{Path, State};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::{self, Actor};
use crate::audit::routes::{ExportFile, XLSX_TYPE};
use crate::audit::{self, Event, Who};
use crate::db::{subtree_upper, Db};
use crate::error::{ApiError, ApiResult};
use crate::member::{dict, idcard, mask_phone, MemberRow, MEMBER_COLUMNS};
use crate::org::OrgRow;
use crate::state::{ApiQuery, AppState};

/// Most rows a roster holds (as every export).
pub const EXPORT_CAP: i64 = crate::audit::query::EXPORT_CAP;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(member_roster))
        .routes(routes!(org_roster))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RosterQuery {
    /// true: the whole subtree 包含下级. Without it: the members of the organisation
    /// itself (党员名册), the organisation and its direct children (党组织名册).
    #[param(value_type = Option<String>, pattern = "^(true|false)?$")]
    pub include_sub: Option<String>,
}

impl RosterQuery {
    fn include_sub(&self) -> ApiResult<bool> {
        match self.include_sub.as_deref() {
            None | Some("") | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::field(
                "include_sub",
                "include_sub 只能是 true 或 false",
            )),
        }
    }
}

/// One row of 党员名册.
#[derive(Debug, Clone)]
pub struct MemberLine {
    pub name: String,
    pub sex: String,
    pub ethnicity: String,
    pub age: Option<i32>,
    pub education: String,
    pub category: String,
    pub branch: String,
    pub joined_on: String,
    pub full_on: String,
    pub job: String,
    pub id_number: String,
    pub phone: String,
    pub lost_contact: bool,
    pub floating: bool,
    pub completeness: i64,
}

pub const MEMBER_HEADERS: [&str; 16] = [
    "序号",
    "姓名",
    "性别",
    "民族",
    "年龄",
    "学历",
    "人员类别",
    "所在党支部",
    "加入党组织日期",
    "转正日期",
    "工作岗位",
    "公民身份证号",
    "联系电话",
    "失联党员",
    "流动党员",
    "信息完整度",
];

/// An organisation as read for 党组织名册: code, name, short name, subordination, category,
/// status, unit name.
type OrgListed = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

/// One row of 党组织名册.
#[derive(Debug, Clone)]
pub struct OrgLine {
    pub name: String,
    pub short_name: String,
    pub code: String,
    pub subordination: String,
    pub category: String,
    pub unit: String,
    pub completeness: Option<i64>,
    pub members: i64,
    pub full: i64,
    pub probationary: i64,
    pub status: String,
}

pub const ORG_HEADERS: [&str; 12] = [
    "序号",
    "党组织名称",
    "党组织简称",
    "党组织代码",
    "隶属关系",
    "组织类别",
    "单位名称",
    "信息完整度",
    "党员数",
    "正式党员",
    "预备党员",
    "状态",
];

fn yes(b: bool) -> &'static str {
    if b {
        "是"
    } else {
        "否"
    }
}

/// A workbook: the watermark row, the cap note if any, the headings, the rows.
fn workbook(
    sheet_name: &str,
    watermark: &str,
    headers: &[&str],
    rows: &[Vec<String>],
    total: i64,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(sheet_name)?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, watermark, &bold)?;
    let mut r: u32 = 1;
    if total > rows.len() as i64 {
        sheet.write_string(
            r,
            0,
            format!("查询结果共 {total} 条，本文件仅包含前 {EXPORT_CAP} 条，请缩小范围后分批导出"),
        )?;
        r += 1;
    }
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string_with_format(r, c as u16, *h, &bold)?;
        sheet.set_column_width(c as u16, if c == 0 { 6.0 } else { 16.0 })?;
    }
    sheet.set_freeze_panes(r + 1, 0)?;
    for (i, cells) in rows.iter().enumerate() {
        r += 1;
        sheet.write_number(r, 0, (i + 1) as f64)?;
        for (c, v) in cells.iter().enumerate() {
            sheet.write_string(r, c as u16 + 1, v)?;
        }
    }
    book.save_to_buffer()
}

async fn target(db: &Db, actor: &Actor, id: &str) -> ApiResult<OrgRow> {
    access::business_read(actor)?;
    let org = crate::org::routes::load(db, id).await?;
    access::roster(actor, &org.code)?;
    Ok(org)
}

/// 党员名册 of `org_id` (with `include_sub`, of its subtree), in order of organisation and
/// name.
pub async fn member_roster_file(
    db: &Db,
    actor: &Actor,
    org_id: &str,
    include_sub: bool,
) -> ApiResult<ExportFile> {
    let org = target(db, actor, org_id).await?;
    let (filter, upper) = if include_sub {
        (
            "m.org_code >= $1 AND m.org_code < $2",
            subtree_upper(&org.code),
        )
    } else {
        ("m.branch_id = $1 AND m.id <> $2", String::new())
    };
    let first = if include_sub { &org.code } else { &org.id };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM members m WHERE {filter}"))
        .bind(first)
        .bind(&upper)
        .fetch_one(db.read())
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT {MEMBER_COLUMNS}, o.name AS branch_name FROM members m JOIN orgs o ON o.id = m.branch_id \
         WHERE {filter} ORDER BY m.org_code, m.sort_pinyin, m.id LIMIT $3"
    ))
    .bind(first)
    .bind(&upper)
    .bind(EXPORT_CAP)
    .fetch_all(db.read())
    .await?;
    let today = crate::db::today();
    let mut lines = Vec::with_capacity(rows.len());
    for r in rows {
        use sqlx::{FromRow, Row};
        let branch: String = r.try_get("branch_name")?;
        let m = MemberRow::from_row(&r)?.decrypted()?;
        let age = chrono::NaiveDate::parse_from_str(&m.birth_date, "%Y-%m-%d")
            .ok()
            .map(|b| crate::fields::years_between(b, today));
        lines.push(MemberLine {
            sex: if m.sex == "male" { "男" } else { "女" }.to_string(),
            ethnicity: dict::label(&dict::ETHNICITIES, &m.ethnicity)
                .unwrap_or("")
                .to_string(),
            age,
            education: dict::label(&dict::EDUCATIONS, &m.education)
                .unwrap_or("")
                .to_string(),
            category: dict::label(&dict::CATEGORIES, &m.category)
                .unwrap_or("")
                .to_string(),
            branch,
            joined_on: m.joined_on.clone(),
            full_on: m.full_on.clone().unwrap_or_default(),
            job: dict::label(&dict::JOBS, &m.job).unwrap_or("").to_string(),
            id_number: idcard::mask(&m.id_number),
            phone: mask_phone(&m.phone),
            lost_contact: m.lost_contact != 0,
            floating: m.floating != 0,
            completeness: m.completeness,
            name: m.name,
        });
    }
    let cells: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                l.sex.clone(),
                l.ethnicity.clone(),
                l.age.map(|a| a.to_string()).unwrap_or_default(),
                l.education.clone(),
                l.category.clone(),
                l.branch.clone(),
                l.joined_on.clone(),
                l.full_on.clone(),
                l.job.clone(),
                l.id_number.clone(),
                l.phone.clone(),
                yes(l.lost_contact).to_string(),
                yes(l.floating).to_string(),
                format!("{}%", l.completeness),
            ]
        })
        .collect();
    finish(
        db,
        actor,
        &org,
        include_sub,
        "党员名册",
        &MEMBER_HEADERS,
        cells,
        total,
        "roster.members",
        "member-roster",
    )
    .await
}

/// 党组织名册 of `org_id`: the organisation and its direct children, or (with `include_sub`)
/// its whole subtree, in code order, each with its member counts and completeness.
pub async fn org_roster_file(
    db: &Db,
    actor: &Actor,
    org_id: &str,
    include_sub: bool,
) -> ApiResult<ExportFile> {
    let org = target(db, actor, org_id).await?;
    let upper = subtree_upper(&org.code);
    let filter = if include_sub {
        "o.code >= $1 AND o.code < $2"
    } else {
        "(o.id = $3 OR o.parent_id = $3) AND $1 <> $2"
    };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM orgs o WHERE {filter}"))
        .bind(&org.code)
        .bind(&upper)
        .bind(&org.id)
        .fetch_one(db.read())
        .await?;
    let orgs: Vec<OrgListed> = sqlx::query_as(&format!(
        "SELECT o.code, o.name, o.short_name, o.subordination, o.category, o.status, \
             (SELECT u.name FROM org_units ou JOIN units u ON u.id = ou.unit_id \
              WHERE ou.org_id = o.id ORDER BY ou.is_default DESC, u.name LIMIT 1) AS unit_name \
             FROM orgs o WHERE {filter} ORDER BY o.code LIMIT $4"
    ))
    .bind(&org.code)
    .bind(&upper)
    .bind(&org.id)
    .bind(EXPORT_CAP)
    .fetch_all(db.read())
    .await?;
    // Member counts of the whole subtree, grouped by branch once and summed up the codes.
    let groups: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT m.org_code, m.category, COUNT(*), CAST(COALESCE(SUM(m.completeness), 0) AS BIGINT) \
         FROM members m WHERE m.org_code >= $1 AND m.org_code < $2 GROUP BY m.org_code, m.category",
    )
    .bind(&org.code)
    .bind(&upper)
    .fetch_all(db.read())
    .await?;
    let index: HashMap<&str, usize> = orgs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.0.as_str(), i))
        .collect();
    // (full, probationary, completeness sum) per listed organisation.
    let mut sums = vec![(0i64, 0i64, 0i64); orgs.len()];
    for (code, category, n, completeness) in &groups {
        for end in 1..=code.len() {
            if !code.is_char_boundary(end) {
                continue;
            }
            if let Some(&i) = index.get(&code[..end]) {
                if category == "probationary" {
                    sums[i].1 += n;
                } else {
                    sums[i].0 += n;
                }
                sums[i].2 += completeness;
            }
        }
    }
    let cells: Vec<Vec<String>> = orgs
        .into_iter()
        .zip(sums)
        .map(
            |(
                (code, name, short_name, subordination, category, status, unit),
                (full, prob, sum),
            )| {
                let line = OrgLine {
                    name,
                    short_name,
                    code,
                    subordination: crate::org::rules::subordination_label(&subordination),
                    category: crate::web::orgs::category_label(&category),
                    unit: unit.unwrap_or_default(),
                    completeness: crate::org::average_completeness(sum, full + prob),
                    members: full + prob,
                    full,
                    probationary: prob,
                    status: if status == "active" {
                        "正常"
                    } else {
                        "已撤销"
                    }
                    .to_string(),
                };
                vec![
                    line.name,
                    line.short_name,
                    line.code,
                    line.subordination,
                    line.category,
                    line.unit,
                    line.completeness
                        .map(|c| format!("{c}%"))
                        .unwrap_or_else(|| "—".to_string()),
                    line.members.to_string(),
                    line.full.to_string(),
                    line.probationary.to_string(),
                    line.status,
                ]
            },
        )
        .collect();
    finish(
        db,
        actor,
        &org,
        include_sub,
        "党组织名册",
        &ORG_HEADERS,
        cells,
        total,
        "roster.orgs",
        "org-roster",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    db: &Db,
    actor: &Actor,
    org: &OrgRow,
    include_sub: bool,
    sheet_name: &'static str,
    headers: &'static [&'static str],
    cells: Vec<Vec<String>>,
    total: i64,
    action: &'static str,
    file_stem: &str,
) -> ApiResult<ExportFile> {
    let now = Utc::now();
    let mark = crate::audit::query::watermark(actor, now);
    let detail = format!(
        "{} of {total} rows; org={}{}",
        cells.len(),
        org.code,
        if include_sub { " include_sub" } else { "" }
    );
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let bytes =
        tokio::task::spawn_blocking(move || workbook(sheet_name, &mark, headers, &cells, total))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok(action, &org.id)
            .in_org(org.code.clone())
            .with_detail(detail),
    )
    .await?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: format!("{file_stem}-{stamp}.xlsx"),
    })
}

/// `GET /orgs/{id}/members/roster.xlsx` 导出党员名册: the members of the organisation (with
/// `include_sub`, of its subtree) as a workbook: watermark row, ID numbers and phones masked,
/// at most 100,000 rows; audited as `roster.members`.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/members/roster.xlsx",
    params(("id" = String, Path), RosterQuery),
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
              (status = 404, body = crate::error::ErrorBody)))]
async fn member_roster(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RosterQuery>,
) -> ApiResult<ExportFile> {
    let include_sub = q.include_sub()?;
    member_roster_file(&state.db, &actor, &id, include_sub).await
}

/// `GET /orgs/{id}/roster.xlsx` 导出党组织名册: the organisation and its direct children (with
/// `include_sub`, its subtree) with 简称, 代码, 隶属关系, 组织类别, 单位, 信息完整度 and member
/// counts; watermarked, audited as `roster.orgs`.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/roster.xlsx",
    params(("id" = String, Path), RosterQuery),
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
              (status = 404, body = crate::error::ErrorBody)))]
async fn org_roster(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RosterQuery>,
) -> ApiResult<ExportFile> {
    let include_sub = q.include_sub()?;
    org_roster_file(&state.db, &actor, &id, include_sub).await
}

/// The members tab's tools: 导出党员名册 (following the tab's 包含下级) and 导入汇总表.
pub fn member_buttons(org_id: &str, include_sub: bool) -> maud::Markup {
    maud::html! {
        div.list-tools #roster-tools {
            a.button #member-roster href={"/api/v1/orgs/" (org_id) "/members/roster.xlsx?include_sub=" (include_sub)}
                title="导出党员名册（身份证号、电话已隐去部分数字，文件带导出人水印，导出操作记入审计日志）" { "导出党员名册" }
            a.button #import-link href={"/import/members?org_id=" (org_id)} { "导入汇总表" }
        }
    }
}

/// The children tab's tools: 导出党组织名册 of the organisation and its direct children, or with
/// 包含下级 of the whole subtree.
pub fn org_buttons(org_id: &str) -> maud::Markup {
    maud::html! {
        div.list-tools #org-roster-tools {
            a.button #org-roster href={"/api/v1/orgs/" (org_id) "/roster.xlsx?include_sub=false"}
                title="导出本级及直属下级党组织名册（文件带导出人水印，导出操作记入审计日志）" { "导出党组织名册" }
            a.button #org-roster-sub href={"/api/v1/orgs/" (org_id) "/roster.xlsx?include_sub=true"}
                title="导出包含全部下级的党组织名册" { "导出党组织名册（包含下级）" }
        }
    }
}
