//! Searching and exporting the audit log: filters shared by the API and the auditor pages,
//! the CSV and Excel files with their watermark line.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Actor, AuditScope, Role};
use crate::db::{Db, Sql};
use crate::error::{ApiError, ApiResult};
use crate::state::{Page, Paging};

/// Most records one export holds; the file says so when the search found more.
pub const EXPORT_CAP: i64 = 100_000;

/// The filters of a search (all optional, combined with AND).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// 操作人: an account id (exact) or part of a name
    pub actor: Option<String>,
    /// 操作类型: the start of the action, e.g. `session.` or `member.view`
    pub action: Option<String>,
    /// 结果: `success`, `refused` or `failed`
    pub outcome: Option<String>,
    /// from (inclusive): a date `YYYY-MM-DD` (Beijing time) or an RFC 3339 time
    pub since: Option<String>,
    /// until (inclusive): a date `YYYY-MM-DD` (Beijing time) or an RFC 3339 time
    pub until: Option<String>,
    /// 对象: part of the target
    pub target: Option<String>,
}

/// `GET /audit` parameters: the filters and the page.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 操作人: an account id (exact) or part of a name
    pub actor: Option<String>,
    /// 操作类型: the start of the action, e.g. `session.` or `member.view`
    pub action: Option<String>,
    /// 结果: `success`, `refused` or `failed`
    pub outcome: Option<String>,
    /// from (inclusive): a date `YYYY-MM-DD` (Beijing time) or an RFC 3339 time
    pub since: Option<String>,
    /// until (inclusive): a date `YYYY-MM-DD` (Beijing time) or an RFC 3339 time
    pub until: Option<String>,
    /// 对象: part of the target
    pub target: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

impl AuditQuery {
    pub fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: self.actor.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            target: self.target.clone(),
        }
    }

    pub fn paging(&self) -> Paging {
        Paging {
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// `GET /audit/export` parameters: the format and the filters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`
    pub format: Option<String>,
    /// 操作人: an account id (exact) or part of a name
    pub actor: Option<String>,
    /// 操作类型: the start of the action
    pub action: Option<String>,
    /// 结果: `success`, `refused` or `failed`
    pub outcome: Option<String>,
    /// from (inclusive): `YYYY-MM-DD` or RFC 3339
    pub since: Option<String>,
    /// until (inclusive): `YYYY-MM-DD` or RFC 3339
    pub until: Option<String>,
    /// 对象: part of the target
    pub target: Option<String>,
}

impl ExportQuery {
    pub fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: self.actor.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            target: self.target.clone(),
        }
    }
}

/// One audit record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    pub seq: i64,
    /// RFC 3339 UTC
    pub at: String,
    pub actor_account_id: Option<String>,
    pub actor_name: String,
    /// `admin`, `security`, `auditor`, `system` or empty (not signed in)
    pub role: String,
    pub org_id: Option<String>,
    /// name of `org_id`, when it still exists
    pub org_name: Option<String>,
    pub client_addr: String,
    pub cert_serial: Option<String>,
    pub action: String,
    pub target: String,
    /// `success`, `refused` or `failed`
    pub outcome: String,
    pub detail: String,
}

type ItemRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);

/// A filter checked and turned into bounds.
struct Bounds {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    /// exclusive
    before: Option<String>,
    target: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Beijing time (UTC+8), the platform's calendar.
fn beijing_offset() -> Duration {
    Duration::hours(8)
}

/// Parses `YYYY-MM-DD` (a Beijing calendar day) or RFC 3339 into the first instant of the
/// day or the instant, and for `until` into the exclusive upper bound.
fn parse_bound(field: &str, label: &str, s: &str, upper: bool) -> ApiResult<String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if upper { d.succ_opt().unwrap_or(d) } else { d };
        let start = day.and_time(NaiveTime::MIN).and_utc() - beijing_offset();
        return Ok(fmt(start));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&Utc);
        // Records carry whole seconds: an inclusive upper instant covers its whole second, a
        // lower instant inside a second starts at the next one.
        let secs = DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or(t);
        let next = upper || secs < t;
        return Ok(fmt(if next {
            secs + Duration::seconds(1)
        } else {
            secs
        }));
    }
    Err(ApiError::field(
        field,
        format!("{label}的格式不正确，应为 YYYY-MM-DD 日期或 RFC 3339 时间"),
    ))
}

impl AuditFilter {
    fn bounds(&self) -> ApiResult<Bounds> {
        let outcome = non_empty(&self.outcome);
        if let Some(o) = &outcome {
            if !matches!(o.as_str(), "success" | "refused" | "failed") {
                return Err(ApiError::field(
                    "outcome",
                    "结果只能是 success（成功）、refused（拒绝）或 failed（失败）",
                ));
            }
        }
        let since = non_empty(&self.since)
            .map(|s| parse_bound("since", "开始日期", &s, false))
            .transpose()?;
        let before = non_empty(&self.until)
            .map(|s| parse_bound("until", "结束日期", &s, true))
            .transpose()?;
        if let (Some(a), Some(b)) = (&since, &before) {
            if a >= b {
                return Err(ApiError::field("until", "结束日期不能早于开始日期"));
            }
        }
        Ok(Bounds {
            actor: non_empty(&self.actor),
            action: non_empty(&self.action),
            outcome,
            since,
            before,
            target: non_empty(&self.target),
        })
    }

    /// Is any filter set?
    pub fn is_empty(&self) -> bool {
        [
            &self.actor,
            &self.action,
            &self.outcome,
            &self.since,
            &self.until,
            &self.target,
        ]
        .iter()
        .all(|v| non_empty(v).is_none())
    }

    /// The filters in words, for the export's audit record.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
            ("target", &self.target),
        ]
        .iter()
        .filter_map(|(k, v)| non_empty(v).map(|v| format!("{k}={v}")))
        .collect();
        parts.join(" ")
    }
}

/// `LIKE` pattern text with its wildcards escaped (`ESCAPE '\'`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn push_where(sql: &mut Sql, b: &Bounds, scope: &AuditScope) {
    sql.push(" WHERE 1 = 1");
    if let AuditScope::Subtree(code) = scope {
        // A subtree is one range of unified codes (materialised paths).
        let end = format!("{code}~");
        sql.push(" AND ((a.actor_org_code >= ")
            .bind(code.clone())
            .push(" AND a.actor_org_code < ")
            .bind(end.clone())
            .push(") OR (a.target_org_code >= ")
            .bind(code.clone())
            .push(" AND a.target_org_code < ")
            .bind(end)
            .push("))");
    }
    if let Some(actor) = &b.actor {
        sql.push(" AND (a.actor_account_id = ")
            .bind(actor.clone())
            .push(" OR a.actor_name LIKE ")
            .bind(format!("%{}%", like_escape(actor)))
            .push(" ESCAPE '\\')");
    }
    if let Some(action) = &b.action {
        sql.push(" AND a.action LIKE ")
            .bind(format!("{}%", like_escape(action)))
            .push(" ESCAPE '\\'");
    }
    if let Some(outcome) = &b.outcome {
        sql.push(" AND a.outcome = ").bind(outcome.clone());
    }
    if let Some(since) = &b.since {
        sql.push(" AND a.at >= ").bind(since.clone());
    }
    if let Some(before) = &b.before {
        sql.push(" AND a.at < ").bind(before.clone());
    }
    if let Some(target) = &b.target {
        sql.push(" AND a.target LIKE ")
            .bind(format!("%{}%", like_escape(target)))
            .push(" ESCAPE '\\'");
    }
}

/// The audit scope of an actor (`access::audit_scope` against the root organisation). Also
/// writes the pending aggregated records (refused handshakes), so that a reader sees them.
pub async fn scope_of(db: &Db, actor: &Actor) -> ApiResult<AuditScope> {
    crate::access::audit_read(actor)?;
    let root: Option<String> =
        sqlx::query_scalar("SELECT code FROM orgs WHERE parent_id IS NULL ORDER BY code LIMIT 1")
            .fetch_optional(db.read())
            .await?;
    let scope = crate::access::audit_scope(actor, root.as_deref().unwrap_or(""))?;
    super::handshakes::flush(db, true).await?;
    Ok(scope)
}

/// The records matching `filter` within `scope`, newest first, and how many match in all.
pub async fn find(
    db: &Db,
    filter: &AuditFilter,
    scope: &AuditScope,
    limit: i64,
    offset: i64,
) -> ApiResult<(Vec<AuditItem>, i64)> {
    let b = filter.bounds()?;
    let mut count = Sql::new("SELECT COUNT(*) FROM audit_log a");
    push_where(&mut count, &b, scope);
    let total: i64 = count.scalar().fetch_one(db.read()).await?;
    let mut sql = Sql::new(
        "SELECT a.seq, a.at, a.actor_account_id, a.actor_name, a.role, a.org_id, o.name, \
         a.client_addr, a.cert_serial, a.action, a.target, a.outcome, a.detail \
         FROM audit_log a LEFT JOIN orgs o ON o.id = a.org_id",
    );
    push_where(&mut sql, &b, scope);
    sql.push(" ORDER BY a.seq DESC LIMIT ")
        .bind_int(limit)
        .push(" OFFSET ")
        .bind_int(offset);
    let rows: Vec<ItemRow> = sql
        .query()
        .fetch_all(db.read())
        .await?
        .iter()
        .map(<ItemRow as sqlx::FromRow<sqlx::any::AnyRow>>::from_row)
        .collect::<Result<_, _>>()?;
    let items = rows
        .into_iter()
        .map(|r| AuditItem {
            seq: r.0,
            at: r.1,
            actor_account_id: r.2,
            actor_name: r.3,
            role: r.4,
            org_id: r.5,
            org_name: r.6,
            client_addr: r.7,
            cert_serial: r.8,
            action: r.9,
            target: r.10,
            outcome: r.11,
            detail: r.12,
        })
        .collect();
    Ok((items, total))
}

/// One page of a search; auditors only, within their scope.
pub async fn search(db: &Db, actor: &Actor, q: &AuditQuery) -> ApiResult<Page<AuditItem>> {
    let scope = scope_of(db, actor).await?;
    let paging = q.paging();
    let (items, total) = find(db, &q.filter(), &scope, paging.per_page(), paging.offset()).await?;
    Ok(Page::new(items, total, &paging))
}

/// An RFC 3339 time as Beijing wall-clock time, `YYYY-MM-DD HH:MM:SS`.
pub fn beijing_time(at: &str) -> String {
    DateTime::parse_from_rfc3339(at)
        .map(|t| {
            (t.with_timezone(&Utc) + beijing_offset())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| at.to_string())
}

/// The role as the pages show it.
pub fn role_label(role: &str) -> &str {
    match Role::parse(role) {
        Some(r) => r.label(),
        None => match role {
            "system" => "系统",
            "" => "未登录",
            other => other,
        },
    }
}

/// The outcome as the pages show it.
pub fn outcome_label(outcome: &str) -> &str {
    match outcome {
        "success" => "成功",
        "refused" => "拒绝",
        "failed" => "失败",
        other => other,
    }
}

/// Known actions and their names, for labels and the filter's suggestions.
pub const ACTIONS: &[(&str, &str)] = &[
    ("session.sign_in", "登录"),
    ("session.sign_out", "退出登录"),
    ("session.switch_role", "角色切换"),
    ("session.use", "会话使用"),
    ("tls.client_certificate", "客户端证书握手"),
    ("member.view", "党员档案查询"),
    ("member.create", "党员录入"),
    ("member.edit", "党员信息修改"),
    ("org.create", "党组织新增"),
    ("org.edit", "党组织信息维护"),
    ("org.rename", "党组织更名"),
    ("org.change_category", "更改组织类别"),
    ("org.revoke", "党组织撤销"),
    ("org.delete", "党组织删除"),
    ("org.unlink_units", "解除关联单位"),
    ("unit.create", "单位新增"),
    ("unit.edit", "单位信息维护"),
    ("unit.delete", "单位删除"),
    ("audit.export", "审计日志导出"),
    ("audit.prune", "过期审计记录清理"),
    ("platform.init", "平台初始化"),
    ("demo.generate", "生成演示数据"),
];

/// The action as the pages show it: its name when known, else the action itself (refused
/// requests are recorded as `<METHOD> <route>`).
pub fn action_label(action: &str) -> String {
    match ACTIONS.iter().find(|(a, _)| *a == action) {
        Some((a, l)) => format!("{l}（{a}）"),
        None => action.to_string(),
    }
}

/// The column headers of an export.
pub const EXPORT_HEADERS: [&str; 12] = [
    "序号",
    "时间",
    "操作人",
    "操作人账号",
    "角色",
    "组织",
    "客户端地址",
    "证书序列号",
    "操作",
    "对象",
    "结果",
    "说明",
];

fn export_row(i: &AuditItem) -> [String; 12] {
    [
        i.seq.to_string(),
        beijing_time(&i.at),
        i.actor_name.clone(),
        i.actor_account_id.clone().unwrap_or_default(),
        role_label(&i.role).to_string(),
        i.org_name
            .clone()
            .or_else(|| i.org_id.clone())
            .unwrap_or_default(),
        i.client_addr.clone(),
        i.cert_serial.clone().unwrap_or_default(),
        action_label(&i.action),
        i.target.clone(),
        outcome_label(&i.outcome).to_string(),
        i.detail.clone(),
    ]
}

/// The watermark line every export starts with (SPEC §13).
pub fn watermark(actor: &Actor, now: DateTime<Utc>) -> String {
    format!(
        "导出人：{}（{}） 导出时间：{}",
        actor.name,
        actor.account_id,
        beijing_time(&fmt(now))
    )
}

/// The note an export carries when the search found more than [`EXPORT_CAP`] records.
pub fn cap_note(total: i64) -> String {
    format!("查询结果共 {total} 条，本文件仅包含最新的 {EXPORT_CAP} 条，请缩小查询范围后分批导出")
}

/// One CSV field: quoted when needed; a leading `=`, `+`, `-` or `@` is neutralised so that
/// spreadsheet programs never evaluate recorded text as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(out: &mut String, fields: &[&str]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// The CSV file (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese):
/// watermark line, the cap note if any, headers, records.
pub fn to_csv(watermark: &str, items: &[AuditItem], total: i64) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    csv_line(&mut out, &[watermark]);
    if total > items.len() as i64 {
        csv_line(&mut out, &[&cap_note(total)]);
    }
    csv_line(&mut out, &EXPORT_HEADERS);
    for i in items {
        let row = export_row(i);
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        csv_line(&mut out, &refs);
    }
    out.into_bytes()
}

/// The Excel file: watermark row, the cap note if any, headers, records.
pub fn to_xlsx(
    watermark: &str,
    items: &[AuditItem],
    total: i64,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("安全审计日志")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, watermark, &bold)?;
    let mut row: u32 = 1;
    if total > items.len() as i64 {
        sheet.write_string(row, 0, cap_note(total))?;
        row += 1;
    }
    for (c, h) in EXPORT_HEADERS.iter().enumerate() {
        sheet.write_string_with_format(row, c as u16, *h, &bold)?;
    }
    let widths = [
        8.0, 20.0, 12.0, 34.0, 8.0, 28.0, 16.0, 20.0, 28.0, 36.0, 8.0, 40.0,
    ];
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, *w)?;
    }
    sheet.set_freeze_panes(row + 1, 0)?;
    for i in items {
        row += 1;
        for (c, v) in export_row(i).iter().enumerate() {
            if c == 0 {
                sheet.write_number(row, 0, i.seq as f64)?;
            } else {
                sheet.write_string(row, c as u16, v)?;
            }
        }
    }
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_beijing_days_and_until_is_inclusive() {
        assert_eq!(
            parse_bound("since", "开始日期", "2024-05-01", false).unwrap(),
            "2024-04-30T16:00:00Z"
        );
        assert_eq!(
            parse_bound("until", "结束日期", "2024-05-01", true).unwrap(),
            "2024-05-01T16:00:00Z"
        );
        assert_eq!(
            parse_bound("until", "结束日期", "2024-05-01T08:00:00+08:00", true).unwrap(),
            "2024-05-01T00:00:01Z"
        );
        let e = parse_bound("since", "开始日期", "2024/05/01", false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("since"));
    }

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("普通"), "普通");
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("sign_in 100%"), "sign\\_in 100\\%");
    }
}
