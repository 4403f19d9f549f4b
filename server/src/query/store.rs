//! Running a query (scope, checked conditions, order, a window of rows) over members,
//! organisations or units, the Excel export, and the saved queries 固定查询.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::rules::{self, Order, Plan, SealedCheck};
use super::{Condition, Item, Kind, QueryBody, SaveBody, SavedQuery, SortSpec};
use crate::access::{self, Actor};
use crate::audit::routes::{ExportFile, XLSX_TYPE};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, subtree_upper, Db, Sql};
use crate::error::{ApiError, ApiResult};
use crate::fields::Problems;
use crate::member::dict;

/// Most rows an export holds (as the transfer records' and the audit export).
pub const EXPORT_CAP: i64 = crate::audit::query::EXPORT_CAP;

/// The selected organisation of a query.
#[derive(Debug, Clone)]
pub struct Scope {
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub include_sub: bool,
}

/// A checked query, ready to run.
#[derive(Debug)]
pub struct Checked {
    pub kind: Kind,
    pub scope: Scope,
    pub plan: Plan,
    pub order: Order,
    pub page: i64,
    pub page_size: i64,
}

/// Resolves the selected organisation (default: the actor's scope) and asks `access`.
pub async fn scope(
    db: &Db,
    actor: &Actor,
    org_id: Option<&str>,
    include_sub: bool,
) -> ApiResult<Scope> {
    access::business_read(actor)?;
    let (org_id, org_code, org_name) = match org_id.map(str::trim).filter(|s| !s.is_empty()) {
        None => (
            actor.org_id.clone(),
            actor.org_code.clone(),
            actor.org_name.clone(),
        ),
        Some(id) => {
            let org = crate::org::store::get(db.read(), id)
                .await?
                .ok_or_else(|| ApiError::not_found("党组织"))?;
            (org.id, org.code, org.name)
        }
    };
    access::query(actor, &org_code)?;
    Ok(Scope {
        org_id,
        org_code,
        org_name,
        include_sub,
    })
}

/// Checks a body: the organisation against the actor's scope, then every condition, the
/// order and the paging (each fault named at once).
pub async fn check(db: &Db, actor: &Actor, kind: Kind, body: &QueryBody) -> ApiResult<Checked> {
    let scope = scope(
        db,
        actor,
        body.org_id.as_deref(),
        body.include_sub.unwrap_or(true),
    )
    .await?;
    let mut base = Sql::new("");
    push_scope(&mut base, kind, &scope);
    let keys = crypto::keys();
    let mut p = Problems::default();
    let plan = rules::plan(kind, &body.conditions, &keys, &mut p, base);
    let order = rules::check_sort(kind, body.sort.as_ref(), &mut p);
    let (page, page_size) = rules::check_paging(body.page, body.page_size, &mut p);
    p.finish()?;
    Ok(Checked {
        kind,
        scope,
        plan,
        order,
        page,
        page_size,
    })
}

fn from(kind: Kind) -> &'static str {
    match kind {
        Kind::Members => "members m JOIN orgs b ON b.id = m.branch_id",
        Kind::Orgs => "orgs o LEFT JOIN orgs p ON p.id = o.parent_id",
        Kind::Units => "units u JOIN orgs ow ON ow.id = u.owner_org_id",
    }
}

fn select(kind: Kind) -> String {
    match kind {
        Kind::Members => {
            "m.id, m.name, m.sex, m.birth_date, m.ethnicity, m.education, m.category, \
            b.name AS branch_name, m.joined_on, m.status, m.id_number, m.phone, m.completeness"
                .to_string()
        }
        Kind::Orgs => format!(
            "o.id, o.name, o.code, o.category, p.name AS parent_name, {} AS unit_name, \
             o.secretary, o.founded_on, o.status, o.contact_phone",
            rules::ORG_UNIT_NAME
        ),
        Kind::Units => "u.id, u.name, u.credit_code, u.category, u.party_org_situation, \
            u.has_party_group, ow.name AS owner_name"
            .to_string(),
    }
}

/// The scope as the first part of the WHERE clause: with 包含下级 the subtree (one range of
/// unified codes), otherwise the organisation's own records (organisations: it and its
/// direct children).
fn push_scope(sql: &mut Sql, kind: Kind, s: &Scope) {
    let range = |sql: &mut Sql, column: &str| {
        sql.push("(")
            .push(column)
            .push(" >= ")
            .bind(s.org_code.clone())
            .push(" AND ")
            .push(column)
            .push(" < ")
            .bind(subtree_upper(&s.org_code))
            .push(")");
    };
    match (kind, s.include_sub) {
        (Kind::Members, true) => range(sql, "m.org_code"),
        (Kind::Members, false) => {
            sql.push("m.branch_id = ").bind(s.org_id.clone());
        }
        (Kind::Orgs, true) => range(sql, "o.code"),
        (Kind::Orgs, false) => {
            sql.push("(o.id = ")
                .bind(s.org_id.clone())
                .push(" OR o.parent_id = ")
                .bind(s.org_id.clone())
                .push(")");
        }
        (Kind::Units, true) => range(sql, "u.owner_code"),
        (Kind::Units, false) => {
            sql.push("u.owner_org_id = ").bind(s.org_id.clone());
        }
    }
}

fn label(table: &[(&str, &str)], code: &str) -> String {
    dict::label(table, code).unwrap_or(code).to_string()
}

fn text(row: &AnyRow, col: &str) -> ApiResult<String> {
    Ok(row
        .try_get::<Option<String>, _>(col)
        .map_err(ApiError::internal)?
        .unwrap_or_default())
}

fn int(row: &AnyRow, col: &str) -> ApiResult<i64> {
    row.try_get::<i64, _>(col).map_err(ApiError::internal)
}

/// The sealed column of a kind's row holding `column`.
fn sealed_name(column: Column) -> &'static str {
    match column {
        Column::MembersIdNumber => "id_number",
        Column::MembersPhone => "phone",
        _ => "contact_phone",
    }
}

/// Does a row pass the checks on its opened values?
fn passes(row: &AnyRow, checks: &[SealedCheck]) -> ApiResult<bool> {
    for c in checks {
        let stored = text(row, sealed_name(c.column))?;
        let plain = if stored.is_empty() {
            stored
        } else {
            crypto::open(c.column, &stored)?
        };
        if !c.matches(&plain) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A row as the results show it.
fn item(kind: Kind, row: &AnyRow) -> ApiResult<Item> {
    let id = text(row, "id")?;
    let mut cells = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        cells.insert(k.to_string(), v);
    };
    let href = match kind {
        Kind::Members => {
            put("name", text(row, "name")?);
            put("sex", label(&rules::SEXES, &text(row, "sex")?));
            let age = chrono::NaiveDate::parse_from_str(&text(row, "birth_date")?, "%Y-%m-%d")
                .ok()
                .map(|b| crate::fields::years_between(b, crate::db::today()).to_string())
                .unwrap_or_default();
            put("age", age);
            put(
                "ethnicity",
                label(&dict::ETHNICITIES, &text(row, "ethnicity")?),
            );
            put(
                "education",
                label(&dict::EDUCATIONS, &text(row, "education")?),
            );
            put(
                "category",
                label(&dict::CATEGORIES, &text(row, "category")?),
            );
            put("branch", text(row, "branch_name")?);
            put("joined_on", text(row, "joined_on")?);
            put("status", label(&dict::STATUSES, &text(row, "status")?));
            let number = crypto::open(Column::MembersIdNumber, &text(row, "id_number")?)?;
            put("id_number", crate::member::idcard::mask(&number));
            put("completeness", int(row, "completeness")?.to_string());
            format!("/members/{id}")
        }
        Kind::Orgs => {
            put("name", text(row, "name")?);
            put("code", text(row, "code")?);
            put(
                "category",
                label(&rules::ORG_CATEGORIES, &text(row, "category")?),
            );
            put("parent", text(row, "parent_name")?);
            put("unit", text(row, "unit_name")?);
            put("secretary", text(row, "secretary")?);
            put("founded_on", text(row, "founded_on")?);
            put("status", label(&rules::ORG_STATUSES, &text(row, "status")?));
            format!("/orgs/{id}")
        }
        Kind::Units => {
            put("name", text(row, "name")?);
            put("credit_code", text(row, "credit_code")?);
            put(
                "category",
                label(&crate::unit::UNIT_CATEGORIES, &text(row, "category")?),
            );
            put(
                "party_org_situation",
                label(
                    &rules::PARTY_ORG_SITUATIONS,
                    &int(row, "party_org_situation")?.to_string(),
                ),
            );
            put(
                "has_party_group",
                if int(row, "has_party_group")? != 0 {
                    "是"
                } else {
                    "否"
                }
                .to_string(),
            );
            put("owner", text(row, "owner_name")?);
            format!("/units/{id}/edit")
        }
    };
    Ok(Item { id, href, cells })
}

/// The rows `offset..offset + limit` of a checked query and how many match in all. Without
/// checks on sealed values: a COUNT and a LIMIT/OFFSET. With them: the candidates of the
/// subtree (every clear condition applied) stream in order, their sealed values are opened
/// and checked, and the window is kept.
pub async fn find(db: &Db, q: &Checked, offset: i64, limit: i64) -> ApiResult<(Vec<Item>, i64)> {
    let kind = q.kind;
    let filter = q.plan.sql.text.clone();
    let order = q.order.sql(kind);
    let mut sql = q.plan.sql.clone();
    if q.plan.sealed.is_empty() {
        let mut count = sql.clone();
        count.text = format!("SELECT COUNT(*) FROM {} WHERE {filter}", from(kind));
        let total: i64 = count.scalar().fetch_one(db.read()).await?;
        sql.text = format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
            select(kind),
            from(kind)
        );
        let rows = sql.query().fetch_all(db.read()).await?;
        let items = rows
            .iter()
            .map(|r| item(kind, r))
            .collect::<ApiResult<Vec<_>>>()?;
        return Ok((items, total));
    }
    // The candidates carry only their id and the sealed columns checked: the full rows of a
    // subtree of 100,000 are sorted and converted for nothing but the page.
    let alias = match kind {
        Kind::Members => "m",
        Kind::Orgs => "o",
        Kind::Units => "u",
    };
    let mut columns: Vec<&str> = q
        .plan
        .sealed
        .iter()
        .map(|c| sealed_name(c.column))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let columns: Vec<String> = columns
        .iter()
        .map(|c| format!("{alias}.{c} AS {c}"))
        .collect();
    sql.text = format!(
        "SELECT {alias}.id AS id, {} FROM {} WHERE {filter} ORDER BY {order}",
        columns.join(", "),
        from(kind)
    );
    let mut window: Vec<String> = Vec::new();
    let mut total = 0i64;
    let mut rows = sql.query().fetch(db.read());
    while let Some(row) = rows.try_next().await? {
        if !passes(&row, &q.plan.sealed)? {
            continue;
        }
        if total >= offset && total < offset.saturating_add(limit) {
            window.push(text(&row, "id")?);
        }
        total += 1;
    }
    drop(rows);
    // Then the window's rows, in the order found.
    let mut found: HashMap<String, Item> = HashMap::new();
    for chunk in window.chunks(500) {
        let mut page = Sql::new(&format!(
            "SELECT {} FROM {} WHERE {alias}.id IN (",
            select(kind),
            from(kind)
        ));
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                page.push(", ");
            }
            page.bind(id.clone());
        }
        page.push(")");
        for row in page.query().fetch_all(db.read()).await? {
            let it = item(kind, &row)?;
            found.insert(it.id.clone(), it);
        }
    }
    let items = window.iter().filter_map(|id| found.remove(id)).collect();
    Ok((items, total))
}

/// One page of a query.
pub async fn search(
    db: &Db,
    actor: &Actor,
    kind: Kind,
    body: &QueryBody,
) -> ApiResult<super::QueryPage> {
    let q = check(db, actor, kind, body).await?;
    let offset = (q.page - 1).saturating_mul(q.page_size);
    let (items, total) = find(db, &q, offset, q.page_size).await?;
    Ok(super::QueryPage {
        columns: columns(kind),
        items,
        total,
        page: q.page,
        page_size: q.page_size,
    })
}

pub fn columns(kind: Kind) -> Vec<super::ColumnView> {
    rules::shown(kind)
        .iter()
        .map(|s| super::ColumnView {
            key: s.key.to_string(),
            label: s.label.to_string(),
            sortable: s.sort.is_some(),
        })
        .collect()
}

/// The Excel file: watermark row, the cap note if any, headers, rows.
pub fn to_xlsx(
    kind: Kind,
    watermark: &str,
    items: &[Item],
    total: i64,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(format!("{}综合查询", kind.label()))?;
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
    let shown = rules::shown(kind);
    sheet.write_string_with_format(row, 0, "序号", &bold)?;
    for (c, s) in shown.iter().enumerate() {
        sheet.write_string_with_format(row, c as u16 + 1, s.label, &bold)?;
        sheet.set_column_width(c as u16 + 1, 16.0)?;
    }
    sheet.set_freeze_panes(row + 1, 0)?;
    for (i, it) in items.iter().enumerate() {
        row += 1;
        sheet.write_number(row, 0, (i + 1) as f64)?;
        for (c, s) in shown.iter().enumerate() {
            let v = it.cells.get(s.key).map(String::as_str).unwrap_or("");
            sheet.write_string(row, c as u16 + 1, v)?;
        }
    }
    book.save_to_buffer()
}

/// The export of a query (every matching row up to [`EXPORT_CAP`], watermarked, ID numbers
/// masked), recorded in the audit log (`query.export`) before it is handed out.
pub async fn export(db: &Db, actor: &Actor, kind: Kind, body: &QueryBody) -> ApiResult<ExportFile> {
    let q = check(db, actor, kind, body).await?;
    let (items, total) = find(db, &q, 0, EXPORT_CAP).await?;
    let now = Utc::now();
    let mark = crate::audit::query::watermark(actor, now);
    let fields: Vec<&str> = body
        .conditions
        .iter()
        .filter(|c| !rules::is_empty(c))
        .map(|c| c.field.as_str())
        .collect();
    let detail = format!(
        "{} of {total} {}; org={}{}; conditions on {}",
        items.len(),
        kind.as_str(),
        q.scope.org_code,
        if q.scope.include_sub {
            " include_sub"
        } else {
            ""
        },
        if fields.is_empty() {
            "-".to_string()
        } else {
            fields.join(",")
        }
    );
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let bytes = tokio::task::spawn_blocking(move || to_xlsx(kind, &mark, &items, total))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("query.export", &q.scope.org_id)
            .in_org(q.scope.org_code.clone())
            .with_detail(detail),
    )
    .await?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: format!("query-{}-{stamp}.xlsx", kind.as_str()),
    })
}

// ---------------------------------------------------------------------------------------------
// Saved queries 固定查询.

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    conditions: Vec<Condition>,
    sort: Option<SortSpec>,
}

/// Most saved queries one account keeps per kind.
pub const MAX_SAVED: i64 = 100;

/// The caller's saved queries of a kind, by name.
pub async fn saved(db: &Db, actor: &Actor, kind: Kind) -> ApiResult<Vec<SavedQuery>> {
    access::business_read(actor)?;
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, name, body, created_at FROM saved_queries WHERE account_id = $1 AND kind = $2 \
         ORDER BY name, id",
    )
    .bind(&actor.account_id)
    .bind(kind.as_str())
    .fetch_all(db.read())
    .await?;
    rows.into_iter()
        .map(|(id, name, body, created_at)| {
            let s: Stored = serde_json::from_str(&body).map_err(ApiError::internal)?;
            Ok(SavedQuery {
                id,
                kind,
                name,
                conditions: s.conditions,
                sort: s.sort,
                created_at,
            })
        })
        .collect()
}

/// One of the caller's saved queries (another account's is not found).
pub async fn saved_one(db: &Db, actor: &Actor, id: &str) -> ApiResult<SavedQuery> {
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT account_id, kind, name, body, created_at FROM saved_queries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    let (owner, kind, name, body, created_at) =
        row.ok_or_else(|| ApiError::not_found("固定查询"))?;
    access::saved_query(actor, &owner)?;
    let s: Stored = serde_json::from_str(&body).map_err(ApiError::internal)?;
    Ok(SavedQuery {
        id: id.to_string(),
        kind: Kind::parse(&kind).ok_or_else(|| ApiError::internal("saved query of no kind"))?,
        name,
        conditions: s.conditions,
        sort: s.sort,
        created_at,
    })
}

/// Saves a named query for the caller: the name unique per account and kind (a second save
/// of the same name is a 409, however many arrive at once: the unique index decides).
pub async fn save(db: &Db, actor: &Actor, body: &SaveBody) -> ApiResult<SavedQuery> {
    let allowed = access::saved_query_write(actor)?;
    let mut p = Problems::default();
    let kind = body.kind.unwrap_or_else(|| {
        p.add("kind", "请选择查询类别：members、orgs 或 units");
        Kind::Members
    });
    let name = p.take(crate::fields::required_text(
        "name",
        "固定查询名称",
        Some(&body.name),
        50,
    ));
    let keys = crypto::keys();
    rules::plan(kind, &body.conditions, &keys, &mut p, Sql::new(""));
    rules::check_sort(kind, body.sort.as_ref(), &mut p);
    p.finish()?;
    let name = name.ok_or_else(crate::fields::unset)?;
    let stored = Stored {
        conditions: body
            .conditions
            .iter()
            .filter(|c| !rules::is_empty(c))
            .cloned()
            .collect(),
        sort: body.sort.clone(),
    };
    let id = new_id();
    let now = now_rfc3339();
    let mut tx = db.begin().await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM saved_queries WHERE account_id = $1 AND kind = $2",
    )
    .bind(&actor.account_id)
    .bind(kind.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if count >= MAX_SAVED {
        return Err(ApiError::conflict(
            "too_many_saved_queries",
            format!("每类最多保存{MAX_SAVED}个固定查询，请先删除不用的"),
        ));
    }
    sqlx::query(
        "INSERT INTO saved_queries (id, account_id, kind, name, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&actor.account_id)
    .bind(kind.as_str())
    .bind(&name)
    .bind(serde_json::to_string(&stored).map_err(ApiError::internal)?)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("query.save", &id)
            .in_org(actor.org_code.clone())
            .with_detail(format!("{} {name}", kind.as_str())),
    )
    .await?;
    tx.commit().await?;
    let _ = allowed;
    Ok(SavedQuery {
        id,
        kind,
        name,
        conditions: stored.conditions,
        sort: stored.sort,
        created_at: now,
    })
}

/// Deletes one of the caller's saved queries.
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT account_id, kind, name FROM saved_queries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (owner, kind, name) = row.ok_or_else(|| ApiError::not_found("固定查询"))?;
    let _allowed = access::saved_query(actor, &owner)?;
    sqlx::query("DELETE FROM saved_queries WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("query.delete", id)
            .in_org(actor.org_code.clone())
            .with_detail(format!("{kind} {name}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
