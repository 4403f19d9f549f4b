//! Records 查看转接情况 (SPEC §6 "Records"): the search over every transfer of a selected
//! organisation, its Excel export, the node's lists 待办 / 已办未办结 / 即将办理 and the
//! monitoring list 转接监控 — the read side of transfers. The pages are `records_pages`.
//!
//! Which transfers belong to an organisation: those whose source branch, destination branch,
//! registering organisation or any node of the path is that organisation. Without 包含下级 the
//! search covers the organisation itself and its direct children (本级及直属下级, as the
//! seeds' manual says); with it, the whole subtree (one range of unified codes).

use axum::extract::State as AxState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Direction, Kind, State, TransferRow, TRANSFER_COLUMNS};
use crate::access::{self, Actor, Reach};
use crate::audit::routes::{ExportFile, XLSX_TYPE};
use crate::audit::{self, Event, Who};
use crate::crypto::Column;
use crate::db::{subtree_upper, Db, Sql};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::state::{ApiQuery, AppState, Page, Paging};

pub use super::records_pages::pages;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_transfers))
        .routes(routes!(export_transfers))
        .routes(routes!(transfer_lists))
}

/// Most rows an export holds (as the audit export).
pub const EXPORT_CAP: i64 = crate::audit::query::EXPORT_CAP;

/// A transfer waiting longer than this at one node is highlighted 超期 in monitoring.
pub const OVERDUE_SECONDS: i64 = 7 * 24 * 3600;

/// The filters of 查看转接情况 (`GET /transfers`, `GET /transfers/export.xlsx`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Part of the member's name 党员姓名
    pub name: Option<String>,
    /// The whole ID number 公民身份证号 (exact)
    pub id_number: Option<String>,
    /// Part of the source's name 转出单位
    pub from: Option<String>,
    /// Part of the destination's name 接收单位
    pub to: Option<String>,
    /// Transfer date from (YYYY-MM-DD, inclusive; empty: no bound)
    #[param(pattern = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub since: Option<String>,
    /// Transfer date until (YYYY-MM-DD, inclusive; empty: no bound)
    #[param(pattern = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub until: Option<String>,
    /// active | returned | completed | withdrawn | voided | abnormal
    #[param(value_type = Option<State>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub state: Option<String>,
    /// The transfer type
    #[param(value_type = Option<Kind>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub kind: Option<String>,
    /// outbound 转出 | inbound 转入登记
    #[param(value_type = Option<Direction>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub direction: Option<String>,
    /// The selected organisation (default: the caller's own)
    pub org_id: Option<String>,
    /// true: the whole subtree 包含下级; otherwise the organisation and its direct children
    #[param(value_type = Option<bool>)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub include_sub: Option<String>,
    /// date (newest transfer date first, default) | date_asc | created (newest registered
    /// first) | waiting (longest at its current node first) | waiting_asc
    #[param(value_type = Option<Sort>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub sort: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// The order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    Date,
    DateAsc,
    Created,
    /// Longest at its current node first.
    Waiting,
    /// Shortest at its current node first.
    WaitingAsc,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "date" => Sort::Date,
            "date_asc" => Sort::DateAsc,
            "created" => Sort::Created,
            "waiting" => Sort::Waiting,
            "waiting_asc" => Sort::WaitingAsc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Date => "date",
            Sort::DateAsc => "date_asc",
            Sort::Created => "created",
            Sort::Waiting => "waiting",
            Sort::WaitingAsc => "waiting_asc",
        }
    }

    fn order_by(self) -> &'static str {
        match self {
            Sort::Date => "t.transfer_date DESC, t.created_at DESC, t.id",
            Sort::DateAsc => "t.transfer_date, t.created_at, t.id",
            Sort::Created => "t.created_at DESC, t.id",
            Sort::Waiting => "t.step_since, t.id",
            Sort::WaitingAsc => "t.step_since DESC, t.id",
        }
    }
}

/// The checked filters of a search.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub name: Option<String>,
    /// The blind index of the whole ID number asked for.
    pub id_number_idx: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub state: Option<State>,
    pub kind: Option<Kind>,
    pub direction: Option<Direction>,
    /// The selected organisation: id and unified code.
    pub org_id: String,
    pub org_code: String,
    pub include_sub: bool,
    pub sort: Sort,
}

/// A parameter with a declared format or enum, as sent: a padded value is refused like any
/// other value outside the format (`ApiQuery` already reads an empty one as absent; the pages
/// trim and drop their empty fields first).
fn exact(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `true` (the API's and the checkbox's value), `1` and `on` switch a page's flag on.
pub fn flag(v: Option<&str>) -> bool {
    matches!(v.map(str::trim), Some("1" | "true" | "on"))
}

impl RecordsQuery {
    /// Checks every filter (each fault named) and the selected organisation against the
    /// caller's scope.
    pub async fn filter(&self, db: &Db, actor: &Actor) -> ApiResult<Filter> {
        access::business_read(actor)?;
        let mut p = Problems::default();
        let text = |p: &mut Problems, field: &str, label: &str, v: &Option<String>| {
            let v = non_empty(v)?;
            if v.chars().count() > 100 {
                p.add(field, format!("{label}不能超过100个字"));
                return None;
            }
            Some(v.to_string())
        };
        let name = text(&mut p, "name", "党员姓名", &self.name);
        let id_number_idx = match non_empty(&self.id_number) {
            None => None,
            Some(n) if n.chars().count() > 18 => {
                p.add("id_number", "公民身份证号码应为18位");
                None
            }
            // The blind index normalises (trim, upper-case X) as members' numbers are.
            Some(n) => Some(crate::crypto::index(Column::MembersIdNumber, n)),
        };
        let from = text(&mut p, "from", "转出单位", &self.from);
        let to = text(&mut p, "to", "接收单位", &self.to);
        let date = |p: &mut Problems, field: &str, label: &str, v: Option<&str>| {
            let v = v?;
            let d = p.take(fields::date(field, label, v))?;
            if d.to_string() != v {
                p.add(field, format!("{label}不是有效日期，格式应为 YYYY-MM-DD"));
                return None;
            }
            Some(v.to_string())
        };
        let since = date(&mut p, "since", "转出日期（起）", exact(&self.since));
        let until = date(&mut p, "until", "转出日期（止）", exact(&self.until));
        if let (Some(s), Some(u)) = (&since, &until) {
            if s > u {
                p.add("until", "转出日期（止）不能早于转出日期（起）");
            }
        }
        let state = match exact(&self.state) {
            None => None,
            Some(s) => State::parse(s).or_else(|| {
                p.add("state", "办理状态不正确");
                None
            }),
        };
        let kind = match exact(&self.kind) {
            None => None,
            Some(s) => Kind::parse(s).or_else(|| {
                p.add("kind", "转接类型不正确");
                None
            }),
        };
        let direction = match exact(&self.direction) {
            None => None,
            Some(s) => Direction::parse(s).or_else(|| {
                p.add("direction", "转接方向不正确");
                None
            }),
        };
        let sort = match exact(&self.sort) {
            None => Sort::default(),
            Some(s) => Sort::parse(s).unwrap_or_else(|| {
                p.add("sort", "排序方式不正确");
                Sort::default()
            }),
        };
        let include_sub = match exact(&self.include_sub) {
            Some("false") | None => false,
            Some("true") => true,
            Some(_) => {
                p.add("include_sub", "包含下级只能是 true 或 false");
                false
            }
        };
        p.finish()?;
        let (org_id, org_code) = match non_empty(&self.org_id) {
            None => (actor.org_id.clone(), actor.org_code.clone()),
            Some(id) => {
                let org = crate::org::store::get(db.read(), id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("党组织"))?;
                (org.id, org.code)
            }
        };
        access::org(actor, &org_code, Reach::Subtree)?;
        Ok(Filter {
            name,
            id_number_idx,
            from,
            to,
            since,
            until,
            state,
            kind,
            direction,
            org_id,
            org_code,
            include_sub,
            sort,
        })
    }
}

/// `LIKE` pattern text with its wildcards escaped (`ESCAPE '\'`).
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `(<column> in the subtree of code)`: one range of unified codes.
fn push_in_subtree(sql: &mut Sql, column: &str, code: &str) {
    sql.push("(")
        .push(column)
        .push(" >= ")
        .bind(code)
        .push(" AND ")
        .push(column)
        .push(" < ")
        .bind(subtree_upper(code))
        .push(")");
}

/// `(<column> is the organisation or one of its direct children)`.
fn push_self_or_child(sql: &mut Sql, column: &str, org_id: &str) {
    sql.push("(")
        .push(column)
        .push(" IN (SELECT o.code FROM orgs o WHERE o.id = ")
        .bind(org_id)
        .push(" OR o.parent_id = ")
        .bind(org_id)
        .push("))");
}

/// The transfers an organisation sees: source, destination, registering organisation or any
/// node of the path inside `subtree` (or, without it, the organisation and its children).
fn push_belongs(sql: &mut Sql, org_id: &str, org_code: &str, subtree: bool) {
    let one = |sql: &mut Sql, column: &str| {
        if subtree {
            push_in_subtree(sql, column, org_code);
        } else {
            push_self_or_child(sql, column, org_id);
        }
    };
    sql.push("(");
    one(sql, "t.from_org_code");
    sql.push(" OR ");
    one(sql, "t.to_org_code");
    sql.push(" OR ");
    one(sql, "t.created_org_code");
    sql.push(" OR EXISTS (SELECT 1 FROM transfer_nodes bn WHERE bn.transfer_id = t.id AND ");
    one(sql, "bn.org_code");
    sql.push("))");
}

fn push_like(sql: &mut Sql, column: &str, part: &str) {
    sql.push(" AND ")
        .push(column)
        .push(" LIKE ")
        .bind(format!("%{}%", like_escape(part)))
        .push(" ESCAPE '\\'");
}

fn push_filter(sql: &mut Sql, f: &Filter) {
    push_belongs(sql, &f.org_id, &f.org_code, f.include_sub);
    if let Some(n) = &f.name {
        push_like(sql, "t.member_name", n);
    }
    if let Some(idx) = &f.id_number_idx {
        sql.push(" AND t.id_number_idx = ").bind(idx.clone());
    }
    if let Some(v) = &f.from {
        push_like(sql, "t.from_name", v);
    }
    if let Some(v) = &f.to {
        push_like(sql, "t.to_name", v);
    }
    if let Some(d) = &f.since {
        sql.push(" AND t.transfer_date >= ").bind(d.clone());
    }
    if let Some(d) = &f.until {
        sql.push(" AND t.transfer_date <= ").bind(d.clone());
    }
    if let Some(s) = f.state {
        sql.push(" AND t.state = ").bind(s.as_str());
    }
    if let Some(k) = f.kind {
        sql.push(" AND t.kind = ").bind(k.as_str());
    }
    if let Some(d) = f.direction {
        sql.push(" AND t.direction = ").bind(d.as_str());
    }
}

/// One transfer in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordItem {
    pub id: String,
    pub direction: Direction,
    pub direction_label: String,
    pub kind: Kind,
    pub kind_label: String,
    pub state: State,
    pub state_label: String,
    pub member_name: String,
    /// 公民身份证号码, masked
    pub id_number: String,
    /// 转出单位
    pub from_name: String,
    /// 接收单位
    pub to_name: String,
    /// The organisation whose turn it is 当前组织 (empty when finished)
    pub current_org: String,
    /// 转出日期 (YYYY-MM-DD)
    pub date: String,
    pub created_at: String,
    /// When the current step began
    pub step_since: String,
    pub finished_at: Option<String>,
    /// Seconds at the current node (open transfers only)
    pub waiting_seconds: Option<i64>,
    /// The same as text: N天N小时
    pub waiting: String,
    /// Waiting longer than 7 days 超期
    pub overdue: bool,
}

#[derive(sqlx::FromRow)]
struct Listed {
    #[sqlx(flatten)]
    row: TransferRow,
    current_name: Option<String>,
}

/// `N天N小时` (under an hour: `N分钟`).
pub fn waiting_text(seconds: i64) -> String {
    let s = seconds.max(0);
    let (days, hours) = (s / 86_400, (s % 86_400) / 3_600);
    if days > 0 {
        format!("{days}天{hours}小时")
    } else if hours > 0 {
        format!("{hours}小时")
    } else {
        format!("{}分钟", s / 60)
    }
}

fn item(l: Listed, now: DateTime<Utc>) -> ApiResult<RecordItem> {
    let r = l.row;
    let data = r.data()?;
    let st = r.state();
    let waiting_seconds = st.open().then(|| {
        DateTime::parse_from_rfc3339(&r.step_since)
            .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0))
            .unwrap_or(0)
    });
    let current_org = match st {
        State::Active => l.current_name.unwrap_or_default(),
        State::Returned => l
            .current_name
            .unwrap_or_else(|| format!("{}（转出方）", r.from_name)),
        _ => String::new(),
    };
    Ok(RecordItem {
        direction: r.direction(),
        direction_label: r.direction().label().into(),
        kind: r.kind(),
        kind_label: r.kind().label().into(),
        state: st,
        state_label: st.label().into(),
        id_number: crate::member::idcard::mask(&data.id_number),
        waiting: waiting_seconds.map(waiting_text).unwrap_or_default(),
        overdue: waiting_seconds.is_some_and(|s| s > OVERDUE_SECONDS),
        waiting_seconds,
        current_org,
        id: r.id,
        member_name: r.member_name,
        from_name: r.from_name,
        to_name: r.to_name,
        date: r.transfer_date,
        created_at: r.created_at,
        step_since: r.step_since,
        finished_at: r.finished_at,
    })
}

/// Runs a filtered listing: `where_` is the WHERE clause (without the keyword), numbered
/// from `$1`.
async fn run(
    db: &Db,
    where_: Sql,
    sort: Sort,
    limit: i64,
    offset: i64,
) -> ApiResult<(Vec<RecordItem>, i64)> {
    let filter = where_.text.clone();
    let total: i64 = {
        let mut count = where_.clone();
        count.text = format!("SELECT COUNT(*) FROM transfers t WHERE {filter}");
        count.scalar().fetch_one(db.read()).await?
    };
    let mut sql = where_;
    sql.text = format!(
        "SELECT {TRANSFER_COLUMNS}, cn.org_name AS current_name FROM transfers t \
         LEFT JOIN transfer_nodes cn ON cn.transfer_id = t.id AND cn.seq = t.current_step \
         WHERE {filter} ORDER BY {} LIMIT {limit} OFFSET {offset}",
        sort.order_by()
    );
    let rows = sql.query_as::<Listed>().fetch_all(db.read()).await?;
    let now = Utc::now();
    let items = rows
        .into_iter()
        .map(|l| item(l, now))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((items, total))
}

/// 查看转接情况: one page of the transfers of the selected organisation matching the filters.
pub async fn search(db: &Db, actor: &Actor, q: &RecordsQuery) -> ApiResult<Page<RecordItem>> {
    let paging = Paging::check(q.page, q.per_page)?;
    let f = q.filter(db, actor).await?;
    find(db, &f, &paging).await
}

/// One page of a checked search (the pages' print view pages through it).
pub async fn find(db: &Db, f: &Filter, paging: &Paging) -> ApiResult<Page<RecordItem>> {
    let mut sql = Sql::new("");
    push_filter(&mut sql, f);
    let (items, total) = run(db, sql, f.sort, paging.per_page(), paging.offset()).await?;
    Ok(Page::new(items, total, paging))
}

const EXPORT_HEADERS: [&str; 13] = [
    "序号",
    "姓名",
    "公民身份证号",
    "转出单位",
    "接收单位",
    "当前组织",
    "转出日期",
    "办理状态",
    "转接类型",
    "转接方向",
    "登记时间",
    "当前环节开始",
    "办结时间",
];

/// The Excel file: watermark row, the cap note if any, headers, transfers.
pub fn to_xlsx(
    watermark: &str,
    items: &[RecordItem],
    total: i64,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use crate::audit::query::beijing_time;
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("组织关系转接")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, watermark, &bold)?;
    let mut row: u32 = 1;
    if total > items.len() as i64 {
        sheet.write_string(
            row,
            0,
            format!(
                "查询结果共 {total} 条，本文件仅包含前 {EXPORT_CAP} 条，请缩小查询范围后分批导出"
            ),
        )?;
        row += 1;
    }
    for (c, h) in EXPORT_HEADERS.iter().enumerate() {
        sheet.write_string_with_format(row, c as u16, *h, &bold)?;
    }
    let widths = [
        6.0, 10.0, 20.0, 36.0, 36.0, 30.0, 12.0, 10.0, 36.0, 10.0, 18.0, 18.0, 18.0,
    ];
    for (c, w) in widths.iter().enumerate() {
        sheet.set_column_width(c as u16, *w)?;
    }
    sheet.set_freeze_panes(row + 1, 0)?;
    for (i, t) in items.iter().enumerate() {
        row += 1;
        sheet.write_number(row, 0, (i + 1) as f64)?;
        let cells = [
            t.member_name.clone(),
            t.id_number.clone(),
            t.from_name.clone(),
            t.to_name.clone(),
            t.current_org.clone(),
            t.date.clone(),
            t.state_label.clone(),
            t.kind_label.clone(),
            t.direction_label.clone(),
            beijing_time(&t.created_at),
            if t.state.open() {
                beijing_time(&t.step_since)
            } else {
                String::new()
            },
            t.finished_at
                .as_deref()
                .map(beijing_time)
                .unwrap_or_default(),
        ];
        for (c, v) in cells.iter().enumerate() {
            sheet.write_string(row, c as u16 + 1, v)?;
        }
    }
    book.save_to_buffer()
}

/// The export of a search (at most [`EXPORT_CAP`] rows, watermarked, ID numbers masked),
/// recorded in the audit log (`transfer.export`) before it is handed out.
pub async fn export(db: &Db, actor: &Actor, q: &RecordsQuery) -> ApiResult<ExportFile> {
    // The file holds every row; paging parameters, when given, must still be valid ones.
    crate::state::Paging::check(q.page, q.per_page)?;
    let f = q.filter(db, actor).await?;
    let mut sql = Sql::new("");
    push_filter(&mut sql, &f);
    let (items, total) = run(db, sql, f.sort, EXPORT_CAP, 0).await?;
    let now = Utc::now();
    let mark = crate::audit::query::watermark(actor, now);
    let detail = format!(
        "{} of {total} transfers; org={}{}",
        items.len(),
        f.org_code,
        if f.include_sub { " include_sub" } else { "" }
    );
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let bytes = tokio::task::spawn_blocking(move || to_xlsx(&mark, &items, total))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("transfer.export", &f.org_id)
            .in_org(f.org_code.clone())
            .with_detail(detail),
    )
    .await?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: format!("transfers-{stamp}.xlsx"),
    })
}

/// The lists of a node 待办 / 已办未办结 / 即将办理 and monitoring 转接监控.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// 待办: open transfers whose turn is the caller's organisation's.
    Todo,
    /// 已办未办结: open transfers the caller's organisation has acted on, now elsewhere.
    Done,
    /// 即将办理: open transfers that will reach the caller's organisation later on the path.
    Upcoming,
    /// 转接监控: open transfers anywhere in the caller's subtree, longest waiting first.
    Monitor,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Todo,
        ListKind::Done,
        ListKind::Upcoming,
        ListKind::Monitor,
    ];

    pub fn parse(s: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Todo => "todo",
            ListKind::Done => "done",
            ListKind::Upcoming => "upcoming",
            ListKind::Monitor => "monitor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ListKind::Todo => "待办",
            ListKind::Done => "已办未办结",
            ListKind::Upcoming => "即将办理",
            ListKind::Monitor => "转接监控",
        }
    }
}

const OPEN: &str = "t.state IN ('active', 'returned')";

/// The WHERE clause of a list for the caller's organisation.
fn list_where(actor: &Actor, kind: ListKind) -> Sql {
    let mut sql = Sql::new("");
    let code = actor.org_code.clone();
    match kind {
        // The node's inbox: its turn now (a returned transfer is the source's turn: resubmit
        // or void).
        ListKind::Todo => {
            sql.push(OPEN).push(" AND t.current_org_code = ").bind(code);
        }
        // Acted on by this organisation — a node of it approved (or passed automatically),
        // it submitted or registered the transfer, or an admin of it acted on the trail — and
        // still open somewhere else.
        ListKind::Done => {
            sql.push(OPEN)
                .push(" AND t.current_org_code <> ")
                .bind(code.clone())
                .push(
                    " AND (EXISTS (SELECT 1 FROM transfer_nodes dn WHERE dn.transfer_id = t.id \
                     AND dn.org_code = ",
                )
                .bind(code.clone())
                .push(" AND dn.state IN ('approved', 'auto')) OR t.created_org_code = ")
                .bind(code)
                .push(
                    " OR EXISTS (SELECT 1 FROM transfer_steps ds JOIN grants g \
                     ON g.account_id = ds.actor_account_id AND g.role = 'admin' \
                     WHERE ds.transfer_id = t.id AND g.org_id = ",
                )
                .bind(actor.org_id.clone())
                .push("))");
        }
        // A node of this organisation after the current one, still waiting.
        ListKind::Upcoming => {
            sql.push(OPEN)
                .push(
                    " AND EXISTS (SELECT 1 FROM transfer_nodes un WHERE un.transfer_id = t.id \
                     AND un.org_code = ",
                )
                .bind(code)
                .push(" AND un.seq > t.current_step AND un.state = 'waiting')");
        }
        ListKind::Monitor => {
            sql.push(OPEN).push(" AND ");
            push_belongs(&mut sql, &actor.org_id, &actor.org_code, true);
        }
    }
    sql
}

/// One page of a list for the caller's organisation; monitoring orders by `sort` (default:
/// longest waiting first), the other lists by waiting time too (oldest step first).
pub async fn list(
    db: &Db,
    actor: &Actor,
    kind: ListKind,
    sort: Sort,
    paging: &Paging,
) -> ApiResult<Page<RecordItem>> {
    access::business_read(actor)?;
    let (items, total) = run(
        db,
        list_where(actor, kind),
        sort,
        paging.per_page(),
        paging.offset(),
    )
    .await?;
    Ok(Page::new(items, total, paging))
}

/// How many transfers each list holds (the tabs' counts).
pub async fn counts(db: &Db, actor: &Actor) -> ApiResult<Vec<(ListKind, i64)>> {
    access::business_read(actor)?;
    let mut out = Vec::new();
    for k in ListKind::ALL {
        let mut sql = list_where(actor, k);
        sql.text = format!("SELECT COUNT(*) FROM transfers t WHERE {}", sql.text);
        let n: i64 = sql.scalar().fetch_one(db.read()).await?;
        out.push((k, n));
    }
    Ok(out)
}

/// `GET /transfer-lists`: which list, its order, the page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// todo 待办 | done 已办未办结 | upcoming 即将办理 | monitor 转接监控 (default todo)
    #[param(value_type = Option<ListKind>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub list: Option<String>,
    /// waiting (longest at its current node first, default) | waiting_asc | date | date_asc | created
    #[param(value_type = Option<Sort>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub sort: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

impl ListQuery {
    pub fn parts(&self) -> ApiResult<(ListKind, Sort, Paging)> {
        let mut p = Problems::default();
        let kind = match exact(&self.list) {
            None => ListKind::Todo,
            Some(s) => ListKind::parse(s).unwrap_or_else(|| {
                p.add("list", "列表只能是 todo、done、upcoming 或 monitor");
                ListKind::Todo
            }),
        };
        let sort = match exact(&self.sort) {
            None => Sort::Waiting,
            Some(s) => Sort::parse(s).unwrap_or_else(|| {
                p.add("sort", "排序方式不正确");
                Sort::Waiting
            }),
        };
        p.finish()?;
        Ok((kind, sort, Paging::check(self.page, self.per_page)?))
    }
}

/// `GET /transfers`: 查看转接情况 — the transfers of the selected organisation (default the
/// caller's; its direct children too, or its whole subtree with `include_sub=true`) matching
/// the filters; ID numbers masked.
#[utoipa::path(get, path = "/api/v1/transfers", params(RecordsQuery),
    responses((status = 200, body = Page<RecordItem>)))]
async fn search_transfers(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> ApiResult<Page<RecordItem>> {
    search(&state.db, &actor, &q).await
}

/// `GET /transfers/export.xlsx`: the same search as an Excel workbook (watermark row first,
/// ID numbers masked, at most 100,000 rows; audited as `transfer.export`).
#[utoipa::path(get, path = "/api/v1/transfers/export.xlsx", params(RecordsQuery),
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_transfers(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> ApiResult<ExportFile> {
    export(&state.db, &actor, &q).await
}

/// `GET /transfer-lists?list=todo|done|upcoming|monitor`: the caller's organisation's lists.
#[utoipa::path(get, path = "/api/v1/transfer-lists", params(ListQuery),
    responses((status = 200, body = Page<RecordItem>)))]
async fn transfer_lists(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Page<RecordItem>> {
    let (kind, sort, paging) = q.parts()?;
    list(&state.db, &actor, kind, sort, &paging).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_reads_as_days_and_hours() {
        assert_eq!(waiting_text(8 * 86_400 + 3 * 3_600 + 59), "8天3小时");
        assert_eq!(waiting_text(5 * 3_600), "5小时");
        assert_eq!(waiting_text(125), "2分钟");
        assert_eq!(waiting_text(-5), "0分钟");
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("张_100%"), "张\\_100\\%");
    }

    #[test]
    fn list_kinds_round_trip() {
        for k in ListKind::ALL {
            assert_eq!(ListKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ListKind::parse("inbox"), None);
    }
}
