//! History 历史党员 (SPEC §4): members who left the living database, every field kept, with the
//! reason and date; recovery 找回, permanent deletion of other-decrease records, cancelling the
//! registered phone of deceased members; and the ledger of changes that statistics read.

use serde::Serialize;
use sqlx::{Any, Executor};
use utoipa::ToSchema;

use super::rules::Reason;
use crate::access::{Actor, Allowed};
use crate::db::{new_id, now_rfc3339, subtree_upper, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::member::{MemberRow, MemberView, MEMBER_COLUMNS};
use crate::state::Paging;

/// The columns a member carries into history and back, sealed values as they are.
pub const COPY_COLUMNS: &str = "id, name, id_number, sex, ethnicity, birth_date, education, category, \
    branch_id, org_code, joined_on, full_on, job, phone, address, status, lost_contact, lost_contact_on, \
    floating, floating_to, registered_phone, origin, title, new_social_stratum, in_transfer, completeness, \
    created_at, updated_at, id_number_idx, registered_phone_idx, sort_pinyin, sort_strokes, id_suffix_idx, \
    photo_id";

/// A history record as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub history_id: String,
    pub reason: String,
    pub left_on: String,
    pub remark: String,
    pub application_id: Option<String>,
    pub recorded_at: String,
    pub recorded_by: String,
    pub recovered_at: Option<String>,
    pub phone_cancelled_at: Option<String>,
    #[sqlx(flatten)]
    pub member: MemberRow,
}

const META_COLUMNS: &str = "m.history_id, m.reason, m.left_on, m.remark, m.application_id, \
    m.recorded_at, m.recorded_by, m.recovered_at, m.phone_cancelled_at";

impl HistoryRow {
    pub fn reason(&self) -> Reason {
        Reason::parse(&self.reason).unwrap_or(Reason::Other)
    }

    pub fn view(self, branch_name: String) -> HistoryView {
        let reason = self.reason();
        HistoryView {
            history_id: self.history_id,
            reason,
            reason_label: reason.label().to_string(),
            left_on: self.left_on,
            remark: self.remark,
            recorded_at: self.recorded_at,
            recorded_by: self.recorded_by,
            recovered_at: self.recovered_at,
            phone_cancelled: self.phone_cancelled_at.is_some(),
            member: self.member.view(branch_name, false),
        }
    }
}

/// A history record as the API shows it (the member masked).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub history_id: String,
    pub reason: Reason,
    pub reason_label: String,
    /// 出党日期 / 停止党籍日期 / 死亡日期 / 减少日期 / 补删日期
    pub left_on: String,
    /// The reason or remark given
    pub remark: String,
    /// 添加时间
    pub recorded_at: String,
    pub recorded_by: String,
    /// Set when tier 1 brought the member back 找回
    pub recovered_at: Option<String>,
    /// The registered phone was cancelled 注销手机号
    pub phone_cancelled: bool,
    pub member: MemberView,
}

/// The refusals every status change checks first (SPEC §4): a transfer or floating
/// registration in progress, or security, audit or admin grants held by the member.
pub async fn preconditions<'e, E: Executor<'e, Database = Any>>(
    e: E,
    member: &MemberRow,
) -> ApiResult<()> {
    if member.in_transfer != 0 {
        return Err(ApiError::conflict(
            "member_in_transfer",
            format!(
                "{}正在办理组织关系转接，转接完成或撤销前不能办理党籍变动",
                member.name
            ),
        ));
    }
    if member.floating != 0 {
        return Err(ApiError::conflict(
            "member_floating",
            format!(
                "{}有流动党员登记（流向：{}），须先结束流动登记才能办理党籍变动",
                member.name,
                member.floating_to.as_deref().unwrap_or("未填写")
            ),
        ));
    }
    let keys = crate::crypto::keys();
    if let Some(idx) =
        keys.id_number_index(crate::crypto::Column::MembersIdNumber, &member.id_number)
    {
        let grants = super::store::grants_of_person(e, &idx).await?;
        if let Some(refusal) = super::rules::grants_block(&grants) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// What a move into history records.
pub struct Leaving<'a> {
    pub member_id: &'a str,
    pub reason: Reason,
    pub left_on: &'a str,
    pub remark: &'a str,
    pub application_id: Option<&'a str>,
}

/// Moves a member from the living database into history inside `tx`: the record with every
/// field, the accounts that need membership disabled and their sessions ended, the ledger row.
pub async fn move_out(
    tx: &mut Tx,
    actor: &Actor,
    leaving: Leaving<'_>,
    _allowed: &Allowed,
) -> ApiResult<String> {
    let found: Option<(Option<String>, String)> =
        sqlx::query_as("SELECT id_number_idx, org_code FROM members WHERE id = $1")
            .bind(leaving.member_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((idx, org_code)) = found else {
        return Err(ApiError::conflict(
            "member_gone",
            "该党员已不在党员信息库中",
        ));
    };
    let history_id = new_id();
    sqlx::query(&format!(
        "INSERT INTO member_history (history_id, reason, left_on, remark, application_id, recorded_at, \
         recorded_by, {COPY_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, {COPY_COLUMNS} FROM members \
         WHERE id = $8"
    ))
    .bind(&history_id)
    .bind(leaving.reason.as_str())
    .bind(leaving.left_on)
    .bind(leaving.remark)
    .bind(leaving.application_id)
    .bind(now_rfc3339())
    .bind(&actor.name)
    .bind(leaving.member_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM members WHERE id = $1")
        .bind(leaving.member_id)
        .execute(&mut **tx)
        .await?;
    if let Some(idx) = idx {
        // Accounts that need membership 需要党员身份的账号 are disabled (the preconditions made
        // sure no grant is live), their sessions ended.
        sqlx::query(
            "DELETE FROM sessions WHERE account_id IN (SELECT id FROM accounts WHERE id_number_idx = $1)",
        )
        .bind(&idx)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE accounts SET status = 'disabled' WHERE id_number_idx = $1")
            .bind(&idx)
            .execute(&mut **tx)
            .await?;
    }
    // The member's personal account 党员个人账号 ends with the membership, in this transaction.
    crate::personal::store::disable_for_member(tx, _allowed, leaving.member_id).await?;
    let counts_as = if leaving.reason == Reason::Correction {
        "correction"
    } else {
        "decrease"
    };
    ledger(
        tx,
        leaving.member_id,
        &org_code,
        "left",
        leaving.reason.as_str(),
        counts_as,
        leaving.application_id,
    )
    .await?;
    Ok(history_id)
}

/// One row of the ledger of membership changes 党员增减: statistics count `counts_as`
/// (`addition`, `decrease`, `correction`).
pub async fn ledger(
    tx: &mut Tx,
    member_id: &str,
    org_code: &str,
    change: &str,
    reason: &str,
    counts_as: &str,
    application_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO member_changes (id, member_id, org_code, change, reason, counts_as, application_id, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(member_id)
    .bind(org_code)
    .bind(change)
    .bind(reason)
    .bind(counts_as)
    .bind(application_id)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    history_id: &str,
) -> Result<Option<HistoryRow>, ApiError> {
    let row: Option<HistoryRow> = sqlx::query_as(&format!(
        "SELECT {META_COLUMNS}, {MEMBER_COLUMNS} FROM member_history m WHERE m.history_id = $1"
    ))
    .bind(history_id)
    .fetch_optional(e)
    .await?;
    row.map(|mut r| {
        r.member = r.member.decrypted()?;
        Ok(r)
    })
    .transpose()
}

/// One page of a history list (one reason), in the actor's scope, newest first; recovered
/// records are left out.
pub async fn list(
    db: &Db,
    actor: &Actor,
    reason: Reason,
    name: Option<&str>,
    paging: &Paging,
) -> ApiResult<(Vec<(HistoryRow, String)>, i64)> {
    let mut sql = crate::db::Sql::new("m.reason = ");
    sql.bind(reason.as_str())
        .push(" AND m.recovered_at IS NULL AND m.org_code >= ")
        .bind(actor.org_code.clone())
        .push(" AND m.org_code < ")
        .bind(subtree_upper(&actor.org_code));
    if let Some(n) = name.map(str::trim).filter(|n| !n.is_empty()) {
        sql.push(" AND m.name LIKE ").bind(format!("%{n}%"));
    }
    let filter = sql.text.clone();
    let mut count = sql.clone();
    count.text = format!("SELECT COUNT(*) FROM member_history m WHERE {filter}");
    let total: i64 = count.scalar().fetch_one(db.read()).await?;
    sql.text = format!(
        "SELECT {META_COLUMNS}, {MEMBER_COLUMNS}, COALESCE(o.name, '') AS branch_name \
         FROM member_history m LEFT JOIN orgs o ON o.id = m.branch_id WHERE {filter} \
         ORDER BY m.left_on DESC, m.history_id LIMIT {} OFFSET {}",
        paging.per_page(),
        paging.offset()
    );
    let rows = sql.query().fetch_all(db.read()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        use sqlx::{FromRow, Row};
        let mut h = HistoryRow::from_row(&r)?;
        h.member = h.member.decrypted()?;
        let branch: String = r.try_get("branch_name")?;
        out.push((h, branch));
    }
    Ok((out, total))
}

/// Brings a member back from history 找回 with every field, inside `tx`. Exactly one of several
/// concurrent recoveries succeeds; the ledger counts it as a correction, not an addition.
pub async fn recover(
    tx: &mut Tx,
    row: &HistoryRow,
    reason: &str,
    _allowed: &Allowed,
) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE member_history SET recovered_at = $1 WHERE history_id = $2 AND recovered_at IS NULL",
    )
    .bind(now_rfc3339())
    .bind(&row.history_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "already_recovered",
            "该党员已找回，不能重复操作",
        ));
    }
    let branch_active: Option<String> = sqlx::query_scalar("SELECT status FROM orgs WHERE id = $1")
        .bind(&row.member.branch_id)
        .fetch_optional(&mut **tx)
        .await?;
    if branch_active.as_deref() != Some("active") {
        return Err(ApiError::conflict(
            "branch_revoked",
            "该党员原所在党支部已撤销或删除，无法找回；请先恢复党支部或联系上级组织部门",
        ));
    }
    // The ID number and registered phone must still be free in the living database (the
    // unique indexes answer a concurrent entry too).
    let taken: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m JOIN member_history h ON h.history_id = $1 \
         WHERE m.id = h.id OR (h.id_number_idx IS NOT NULL AND m.id_number_idx = h.id_number_idx)",
    )
    .bind(&row.history_id)
    .fetch_one(&mut **tx)
    .await?;
    if taken > 0 {
        return Err(ApiError::conflict(
            "id_number_taken",
            "党员信息库中已有该公民身份证号的党员，无法找回",
        ));
    }
    sqlx::query(&format!(
        "INSERT INTO members ({COPY_COLUMNS}) SELECT {COPY_COLUMNS} FROM member_history WHERE history_id = $1"
    ))
    .bind(&row.history_id)
    .execute(&mut **tx)
    .await?;
    // History keeps the sealed number only; the clear columns derived from it are set again
    // as on every member write.
    let sealed: String = sqlx::query_scalar("SELECT id_number FROM members WHERE id = $1")
        .bind(&row.member.id)
        .fetch_one(&mut **tx)
        .await?;
    let keys = crate::crypto::keys();
    let id_number = keys.open(crate::crypto::Column::MembersIdNumber, &sealed)?;
    let derived = crate::member::sort_keys::Derived::of(&keys, &row.member.name, &id_number);
    sqlx::query("UPDATE members SET updated_at = $1, id_region = $2, id_birth = $3 WHERE id = $4")
        .bind(now_rfc3339())
        .bind(derived.id_region)
        .bind(derived.id_birth)
        .bind(&row.member.id)
        .execute(&mut **tx)
        .await?;
    ledger(
        tx,
        &row.member.id,
        &row.member.org_code,
        "recovered",
        reason,
        "correction",
        None,
    )
    .await?;
    Ok(())
}

/// Deletes an other-decrease record for good 永久删除 inside `tx`.
pub async fn purge(tx: &mut Tx, row: &HistoryRow, _allowed: &Allowed) -> ApiResult<()> {
    let done = sqlx::query(
        "DELETE FROM member_history WHERE history_id = $1 AND reason = 'other' AND recovered_at IS NULL",
    )
    .bind(&row.history_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict("history_gone", "该记录已删除或已找回"));
    }
    Ok(())
}

/// Cancels the registered phone of a deceased member 注销手机号 inside `tx`, freeing the number.
pub async fn cancel_phone(tx: &mut Tx, row: &HistoryRow, _allowed: &Allowed) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE member_history SET registered_phone = NULL, registered_phone_idx = NULL, \
         phone_cancelled_at = $1 WHERE history_id = $2 AND reason = 'death' \
         AND registered_phone IS NOT NULL AND recovered_at IS NULL",
    )
    .bind(now_rfc3339())
    .bind(&row.history_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::conflict(
            "no_registered_phone",
            "该党员没有登记注册手机号，或已注销",
        ));
    }
    Ok(())
}
