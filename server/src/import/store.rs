//! Storage of member imports: the record (`member_imports`), the good rows kept sealed in
//! chunks (`member_import_chunks.data`, `crypto::Column::ImportChunks`) until confirmation, the
//! validation run in the background, and the confirmation that writes every good row in one
//! transaction with its audit record (all or nothing; a second confirmation has no effect).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::check::{self, Branch, GoodRow, Outcome, Seen, Taken};
use super::sheet::{self, SheetRow};
use super::{ImportState, ImportView, RowProblem};
use crate::access::{self, Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, subtree_upper, today, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::member::bulk::{self, NewMember};
use crate::org::OrgRow;

/// Good rows per sealed chunk.
const CHUNK_ROWS: usize = 5_000;
/// Rows validated between two progress updates.
const BATCH_ROWS: usize = 20_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImportRecord {
    pub id: String,
    pub org_id: String,
    pub org_code: String,
    pub account_id: String,
    pub file_name: String,
    pub state: String,
    pub total_rows: i64,
    pub done_rows: i64,
    pub good_rows: i64,
    pub bad_rows: i64,
    pub report: Option<String>,
    pub message: Option<String>,
    pub created_at: String,
    pub confirmed_at: Option<String>,
}

const COLUMNS: &str =
    "i.id, i.org_id, i.org_code, i.account_id, i.file_name, i.state, i.total_rows, \
    i.done_rows, i.good_rows, i.bad_rows, i.report, i.message, i.created_at, i.confirmed_at";

impl ImportRecord {
    pub fn state(&self) -> ImportState {
        ImportState::parse(&self.state).unwrap_or(ImportState::Failed)
    }

    pub fn problems(&self) -> ApiResult<Vec<RowProblem>> {
        match &self.report {
            None => Ok(Vec::new()),
            Some(sealed) => {
                let json = crypto::open(Column::ImportReport, sealed)?;
                serde_json::from_str(&json).map_err(ApiError::internal)
            }
        }
    }

    pub fn view(&self, org_name: String) -> ApiResult<ImportView> {
        let state = self.state();
        Ok(ImportView {
            id: self.id.clone(),
            org_id: self.org_id.clone(),
            org_name,
            file_name: self.file_name.clone(),
            state,
            state_label: state.label().to_string(),
            total_rows: self.total_rows,
            done_rows: self.done_rows,
            good_rows: self.good_rows,
            bad_rows: self.bad_rows,
            problems: self.problems()?,
            message: self.message.clone(),
            created_at: self.created_at.clone(),
            confirmed_at: self.confirmed_at.clone(),
        })
    }
}

/// The import `id`, if the actor may see it (outside the scope: not found).
pub async fn get(db: &Db, actor: &Actor, id: &str) -> ApiResult<(ImportRecord, Allowed)> {
    access::business_read(actor)?;
    let rec: Option<ImportRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM member_imports i WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    let rec = rec.ok_or_else(|| ApiError::not_found("导入记录"))?;
    let allowed = access::member_import(actor, &rec.org_code)?;
    Ok((rec, allowed))
}

/// The import with its organisation's name, as the API shows it.
pub async fn view(db: &Db, actor: &Actor, id: &str) -> ApiResult<ImportView> {
    let (rec, _) = get(db, actor, id).await?;
    let name: String = sqlx::query_scalar("SELECT name FROM orgs WHERE id = $1")
        .bind(&rec.org_id)
        .fetch_one(db.read())
        .await?;
    rec.view(name)
}

/// The newest imports into the actor's scope (for the page), newest first.
pub async fn recent(db: &Db, actor: &Actor, limit: i64) -> ApiResult<Vec<(ImportRecord, String)>> {
    access::business_read(actor)?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, o.name AS org_name FROM member_imports i JOIN orgs o ON o.id = i.org_id \
         WHERE i.org_code >= $1 AND i.org_code < $2 ORDER BY i.created_at DESC, i.id LIMIT $3"
    ))
    .bind(&actor.org_code)
    .bind(subtree_upper(&actor.org_code))
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        use sqlx::{FromRow, Row};
        let name: String = r.try_get("org_name")?;
        out.push((ImportRecord::from_row(&r)?, name));
    }
    Ok(out)
}

/// Records a new import into `org` (state `validating`) with its audit record; returns its id.
pub async fn start(
    db: &Db,
    actor: &Actor,
    org: &OrgRow,
    file_name: &str,
    _allowed: &Allowed,
) -> ApiResult<String> {
    let id = new_id();
    let now = now_rfc3339();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO member_imports (id, org_id, org_code, account_id, file_name, state, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'validating', $6, $6)",
    )
    .bind(&id)
    .bind(&org.id)
    .bind(&org.code)
    .bind(&actor.account_id)
    .bind(file_name)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member_import.upload", &id)
            .in_org(org.code.clone())
            .with_detail(file_name.to_string()),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// The organisations of the subtree of `code`, by code.
async fn branches<'e, E>(e: E, code: &str) -> Result<HashMap<String, Branch>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT id, code, name, category, status FROM orgs WHERE code >= $1 AND code < $2",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, name, category, status)| {
            let is_branch = crate::org::rules::Category::parse(&category)
                .is_some_and(crate::org::rules::Category::is_branch);
            (
                code.clone(),
                Branch {
                    id,
                    code,
                    name,
                    is_branch,
                    active: status == "active",
                },
            )
        })
        .collect())
}

/// Every blind index of ID numbers and registered phones already taken (three bulk reads).
async fn taken(tx: &mut Tx) -> Result<Taken, sqlx::Error> {
    let set = |v: Vec<String>| v.into_iter().collect::<HashSet<String>>();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id_number_idx FROM members WHERE id_number_idx IS NOT NULL")
            .fetch_all(&mut **tx)
            .await?;
    let phones: Vec<String> = sqlx::query_scalar(
        "SELECT registered_phone_idx FROM members WHERE registered_phone_idx IS NOT NULL",
    )
    .fetch_all(&mut **tx)
    .await?;
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT registered_phone_idx FROM member_history WHERE registered_phone_idx IS NOT NULL \
         AND recovered_at IS NULL",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(Taken {
        id_numbers: set(ids),
        registered_phones: set(phones),
        held_phones: set(held),
    })
}

/// Validates the uploaded file of import `id` (started by [`start`]) and stores the report
/// and the good rows; a file that cannot be read leaves the import `failed` with the reason.
/// `progress(done, total)` is told as batches finish.
pub async fn validate(
    db: &Db,
    id: &str,
    org_code: &str,
    bytes: Vec<u8>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> ApiResult<()> {
    match validate_inner(db, id, org_code, bytes, progress).await {
        Ok(()) => Ok(()),
        Err(Failure::User(message)) => {
            sqlx::query(
                "UPDATE member_imports SET state = 'failed', message = $1, updated_at = $2 \
                 WHERE id = $3 AND state = 'validating'",
            )
            .bind(&message)
            .bind(now_rfc3339())
            .bind(id)
            .execute(db.write())
            .await?;
            Err(ApiError::bad_request(message))
        }
        Err(Failure::Internal(e)) => {
            sqlx::query(
                "UPDATE member_imports SET state = 'failed', message = $1, updated_at = $2 \
                 WHERE id = $3 AND state = 'validating'",
            )
            .bind("校验过程中发生内部错误，请重新上传")
            .bind(now_rfc3339())
            .bind(id)
            .execute(db.write())
            .await?;
            Err(e)
        }
    }
}

enum Failure {
    User(String),
    Internal(ApiError),
}

impl<E: Into<ApiError>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Internal(e.into())
    }
}

async fn validate_inner(
    db: &Db,
    id: &str,
    org_code: &str,
    bytes: Vec<u8>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(), Failure> {
    let sheet = tokio::task::spawn_blocking(move || sheet::read(&bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(Failure::User)?;
    if sheet.rows.is_empty() {
        return Err(Failure::User(
            "表中没有党员数据：请从第2行起每行填写一名党员".to_string(),
        ));
    }
    let total = sheet.rows.len() as u64;
    progress(0, total);
    sqlx::query("UPDATE member_imports SET total_rows = $1, updated_at = $2 WHERE id = $3")
        .bind(total as i64)
        .bind(now_rfc3339())
        .bind(id)
        .execute(db.write())
        .await?;
    let branches = Arc::new(branches(db.read(), org_code).await?);
    let taken = {
        let mut tx = db.read().begin().await?;
        let t = taken(&mut tx).await?;
        tx.rollback().await?;
        Arc::new(t)
    };
    let keys = crypto::keys();
    let today = today();
    let mut seen = Seen::default();
    let mut out = Outcome::default();
    let mut rows = sheet.rows;
    let mut done = 0u64;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(BATCH_ROWS));
        let batch: Vec<SheetRow> = std::mem::replace(&mut rows, rest);
        let (b, t, k) = (branches.clone(), taken.clone(), keys.clone());
        let n = batch.len() as u64;
        (seen, out) = tokio::task::spawn_blocking(move || {
            check::check(&batch, &b, &t, &mut seen, &k, today, &mut out);
            (seen, out)
        })
        .await
        .map_err(ApiError::internal)?;
        done += n;
        progress(done, total);
        sqlx::query("UPDATE member_imports SET done_rows = $1 WHERE id = $2")
            .bind(done as i64)
            .bind(id)
            .execute(db.write())
            .await?;
    }
    // Seal the good rows chunk by chunk and the report, then mark the import pending.
    let good = std::mem::take(&mut out.good);
    let good_rows = good.len() as i64;
    let sealed: Vec<String> = tokio::task::spawn_blocking(move || {
        good.chunks(CHUNK_ROWS)
            .map(|c| {
                serde_json::to_string(c)
                    .map(|json| keys.seal(Column::ImportChunks, &json))
                    .map_err(ApiError::internal)
            })
            .collect::<ApiResult<Vec<String>>>()
    })
    .await
    .map_err(ApiError::internal)??;
    let report = crypto::seal(
        Column::ImportReport,
        &serde_json::to_string(&out.problems).map_err(ApiError::internal)?,
    );
    let mut tx = db.begin().await?;
    for (seq, data) in sealed.iter().enumerate() {
        sqlx::query(
            "INSERT INTO member_import_chunks (id, import_id, seq, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_id())
        .bind(id)
        .bind(seq as i64)
        .bind(data)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE member_imports SET state = 'pending', good_rows = $1, bad_rows = $2, report = $3, \
         done_rows = total_rows, updated_at = $4 WHERE id = $5 AND state = 'validating'",
    )
    .bind(good_rows)
    .bind(out.bad_rows as i64)
    .bind(report)
    .bind(now_rfc3339())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// From this many rows on, a confirmed import refreshes the planner's view of `members`
/// (`db::after_bulk_load`).
const BULK_ROWS: i64 = 10_000;

/// Confirms a pending import 确认导入: in one transaction, marks it confirmed (only if still
/// pending: a second confirmation finds nothing to do), checks the uniqueness of every row
/// again against the database as it is now, writes every good row and the audit record.
/// Rows that became duplicates since validation fail the whole confirmation (409, each row
/// named) and nothing is written. Returns the number of members written.
pub async fn confirm(db: &Db, actor: &Actor, id: &str) -> ApiResult<i64> {
    let (rec, allowed) = get(db, actor, id).await?;
    let not_pending = |state: ImportState| {
        ApiError::conflict(
            "import_not_pending",
            format!("该导入{}，不能确认导入", state.label()),
        )
    };
    if rec.state() != ImportState::Pending {
        return Err(not_pending(rec.state()));
    }
    let now = now_rfc3339();
    let mut tx = db.begin().await?;
    let claimed = sqlx::query(
        "UPDATE member_imports SET state = 'confirmed', confirmed_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'pending'",
    )
    .bind(&now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        let (again, _) = get(db, actor, id).await?;
        return Err(not_pending(again.state()));
    }
    let chunks: Vec<String> = sqlx::query_scalar(
        "SELECT data FROM member_import_chunks WHERE import_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let keys = crypto::keys();
    let rows: Vec<GoodRow> = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        for c in chunks {
            let json = keys.open(Column::ImportChunks, &c)?;
            let mut part: Vec<GoodRow> = serde_json::from_str(&json).map_err(ApiError::internal)?;
            rows.append(&mut part);
        }
        Ok::<_, ApiError>(rows)
    })
    .await
    .map_err(ApiError::internal)??;
    // The database may have changed since validation: uniqueness and branches again.
    let taken = taken(&mut tx).await?;
    let branches = branches(&mut *tx, &rec.org_code).await?;
    let keys = crypto::keys();
    let mut problems: Vec<RowProblem> = Vec::new();
    for r in &rows {
        let v = &r.member;
        if let Some(ix) = keys.id_number_index(Column::MembersIdNumber, &v.id_number) {
            if taken.id_numbers.contains(&ix) {
                problems.push(RowProblem {
                    row: r.row,
                    field: "公民身份证号".into(),
                    reason: "该公民身份证号已存在于党员信息库中".into(),
                });
            }
        }
        if let Some(p) = &v.registered_phone {
            let ix = keys.index(Column::MembersRegisteredPhone, p);
            if taken.registered_phones.contains(&ix) || taken.held_phones.contains(&ix) {
                problems.push(RowProblem {
                    row: r.row,
                    field: "注册手机号".into(),
                    reason: "该注册手机号已被其他党员使用".into(),
                });
            }
        }
        if !branches
            .get(&r.branch_code)
            .is_some_and(|b| b.active && b.is_branch && b.id == r.branch_id)
        {
            problems.push(RowProblem {
                row: r.row,
                field: "党组织代码".into(),
                reason: "所在党支部已撤销或已变更".into(),
            });
        }
    }
    if !problems.is_empty() {
        tx.rollback().await?;
        let listed: Vec<String> = problems
            .iter()
            .take(20)
            .map(|p| format!("第{}行 {}：{}", p.row, p.field, p.reason))
            .collect();
        let more = if problems.len() > 20 {
            format!("等共{}处", problems.len())
        } else {
            String::new()
        };
        return Err(ApiError::conflict(
            "import_stale",
            format!(
                "校验后党员信息库已有变化，以下行不能导入，本次未写入任何党员，请修改后重新上传：{}{more}",
                listed.join("；")
            ),
        ));
    }
    let written = rows.len() as i64;
    let members: Vec<NewMember> = rows
        .into_iter()
        .map(|r| NewMember {
            id: new_id(),
            branch_id: r.branch_id,
            branch_code: r.branch_code,
            member: r.member,
        })
        .collect();
    crate::db::widen_cache(&mut tx, db.engine).await?;
    // SQLite, an import of at least a quarter as many members as are stored: the table's
    // secondary indexes are dropped inside this transaction and built again before its commit.
    // Kept, they cost each row an insertion at a random place in eleven indexes (a million rows
    // into a province of a million: 110 s); built again, a sort of every row. Readers keep
    // their snapshot, indexes included, until the commit, and SQLite writes one transaction at
    // a time anyway. PostgreSQL keeps them: a dropped index would lock its readers out for as
    // long as the import runs.
    let rebuild = db.engine == crate::db::Engine::Sqlite && {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
            .fetch_one(&mut *tx)
            .await?;
        written * 4 >= stored
    };
    let indexes = if rebuild {
        // The changed pages stay in memory until the commit (`narrow_cache` undoes it), as
        // `build_indexes` narrows the cache while it sorts.
        crate::db::keep_dirty_pages(&mut tx, db.engine).await?;
        crate::db::drop_indexes(&mut tx, db.engine, "members").await?
    } else {
        Vec::new()
    };
    bulk::insert(&mut tx, db.engine, &now, &members, &allowed).await?;
    if rebuild {
        crate::db::build_indexes(&mut tx, db.engine, &indexes).await?;
    }
    sqlx::query("DELETE FROM member_import_chunks WHERE import_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member_import.confirm", id)
            .in_org(rec.org_code.clone())
            .with_detail(format!("{written} members from {}", rec.file_name)),
    )
    .await?;
    tx.commit().await?;
    crate::db::narrow_cache(db).await?;
    if written >= BULK_ROWS {
        crate::db::after_bulk_load(db, "members").await?;
    }
    Ok(written)
}

/// Cancels a pending import 取消: its kept rows are deleted; nothing is written to members.
pub async fn cancel(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let (rec, _allowed) = get(db, actor, id).await?;
    let mut tx = db.begin().await?;
    let n = sqlx::query(
        "UPDATE member_imports SET state = 'cancelled', updated_at = $1 \
         WHERE id = $2 AND state IN ('pending', 'failed')",
    )
    .bind(now_rfc3339())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        tx.rollback().await?;
        return Err(ApiError::conflict(
            "import_not_pending",
            format!("该导入{}，不能取消", rec.state().label()),
        ));
    }
    sqlx::query("DELETE FROM member_import_chunks WHERE import_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member_import.cancel", id).in_org(rec.org_code.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
