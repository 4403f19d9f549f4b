//! Storage of organisations and their unit links. The unified code is a materialised path:
//! "this organisation and everything below it" is the range `code >= C AND code < C || '~'`.

use sqlx::{Any, Executor};

use super::rules::{sibling_segment, Linkage};
use super::{LinkedUnit, OrgNode, OrgRow, OrgView};
use crate::access::Allowed;
use crate::db::{flag, now_rfc3339, subtree_upper, Tx};

pub const ORG_COLUMNS: &str = "id, code, parent_id, name, short_name, category, level, secretary, \
    contact_name, contact_phone, subordination, founded_on, unit_mode, work_category, \
    may_approve_development, status, revoked_document_no, revoked_reason, revoked_at, created_at, updated_at";

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Option<OrgRow>, sqlx::Error> {
    let row: Option<OrgRow> =
        sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id)
            .fetch_optional(e)
            .await?;
    row.map(OrgRow::decrypted).transpose()
}

pub async fn get_by_code<'e, E: Executor<'e, Database = Any>>(
    e: E,
    code: &str,
) -> Result<Option<OrgRow>, sqlx::Error> {
    let row: Option<OrgRow> =
        sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE code = $1"))
            .bind(code)
            .fetch_optional(e)
            .await?;
    row.map(OrgRow::decrypted).transpose()
}

/// Members in the subtree of `code` and their average completeness 信息完整度: one indexed
/// range scan.
pub async fn subtree_members<'e, E: Executor<'e, Database = Any>>(
    e: E,
    code: &str,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let (count, sum): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(completeness), 0) AS BIGINT) FROM members \
         WHERE org_code >= $1 AND org_code < $2",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_one(e)
    .await?;
    Ok((count, super::average_completeness(sum, count)))
}

/// Members in the subtree of `code`: one indexed range count.
pub async fn subtree_member_count<'e, E: Executor<'e, Database = Any>>(
    e: E,
    code: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE org_code >= $1 AND org_code < $2")
        .bind(code)
        .bind(subtree_upper(code))
        .fetch_one(e)
        .await
}

pub async fn child_count<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE parent_id = $1")
        .bind(id)
        .fetch_one(e)
        .await
}

pub async fn linked_units<'e, E: Executor<'e, Database = Any>>(
    e: E,
    org_id: &str,
) -> Result<Vec<LinkedUnit>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT u.id, u.name, u.credit_code, u.category, ou.is_default FROM org_units ou \
         JOIN units u ON u.id = ou.unit_id WHERE ou.org_id = $1 ORDER BY ou.is_default DESC, u.name",
    )
    .bind(org_id)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LinkedUnit {
            id: r.0,
            name: r.1,
            credit_code: r.2,
            category: r.3,
            is_default: r.4 != 0,
        })
        .collect())
}

/// The full view of one organisation, its contact phone masked (first 3 and last 4 digits,
/// SPEC §13); see [`view_unmasked`].
pub async fn view(db: &crate::db::Db, row: OrgRow) -> Result<OrgView, sqlx::Error> {
    let mut v = view_unmasked(db, row).await?;
    v.contact_phone = crate::member::mask_phone(&v.contact_phone);
    v.masked = true;
    Ok(v)
}

/// The full view with the whole contact phone: the caller records the unmasked view in the
/// audit log.
pub async fn view_unmasked(db: &crate::db::Db, row: OrgRow) -> Result<OrgView, sqlx::Error> {
    let (member_count, completeness) = subtree_members(db.read(), &row.code).await?;
    let child_count = child_count(db.read(), &row.id).await?;
    let units = linked_units(db.read(), &row.id).await?;
    let category_name = row
        .category()
        .map(|c| c.label().to_string())
        .unwrap_or_default();
    Ok(OrgView {
        id: row.id,
        code: row.code,
        parent_id: row.parent_id,
        name: row.name,
        short_name: row.short_name,
        category: row.category,
        category_name,
        level: row.level,
        secretary: row.secretary,
        contact_name: row.contact_name,
        contact_phone: row.contact_phone,
        subordination: row.subordination,
        founded_on: row.founded_on,
        unit_mode: row.unit_mode,
        work_category: row.work_category,
        may_approve_development: row.may_approve_development != 0,
        status: row.status,
        revoked_document_no: row.revoked_document_no,
        revoked_reason: row.revoked_reason,
        revoked_at: row.revoked_at,
        member_count,
        completeness,
        child_count,
        units,
        masked: false,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// One page of the direct children of an organisation, each with its counts, in code order.
pub async fn children(
    db: &crate::db::Db,
    parent_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrgNode>, i64), sqlx::Error> {
    let total = child_count(db.read(), parent_id).await?;
    let items: Vec<OrgNode> = sqlx::query_as(
        "SELECT o.id, o.code, o.name, o.short_name, o.category, o.status, \
         (SELECT COUNT(*) FROM members m WHERE m.org_code >= o.code AND m.org_code < o.code || '~') AS member_count, \
         (SELECT CAST(COALESCE(SUM(m.completeness), 0) AS BIGINT) FROM members m \
          WHERE m.org_code >= o.code AND m.org_code < o.code || '~') AS completeness_sum, \
         (SELECT COUNT(*) FROM orgs c WHERE c.parent_id = o.id) AS child_count \
         FROM orgs o WHERE o.parent_id = $1 ORDER BY o.code LIMIT $2 OFFSET $3",
    )
    .bind(parent_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.read())
    .await?;
    Ok((items.into_iter().map(with_completeness).collect(), total))
}

/// Organisations in the subtree of `code` whose name contains `q` (tree search).
pub async fn search(
    db: &crate::db::Db,
    code: &str,
    q: &str,
    limit: i64,
) -> Result<Vec<OrgNode>, sqlx::Error> {
    let items: Vec<OrgNode> = sqlx::query_as(
        "SELECT o.id, o.code, o.name, o.short_name, o.category, o.status, \
         (SELECT COUNT(*) FROM members m WHERE m.org_code >= o.code AND m.org_code < o.code || '~') AS member_count, \
         (SELECT CAST(COALESCE(SUM(m.completeness), 0) AS BIGINT) FROM members m \
          WHERE m.org_code >= o.code AND m.org_code < o.code || '~') AS completeness_sum, \
         (SELECT COUNT(*) FROM orgs c WHERE c.parent_id = o.id) AS child_count \
         FROM orgs o WHERE o.code >= $1 AND o.code < $2 AND (o.name LIKE $3 OR o.short_name LIKE $3) \
         ORDER BY o.code LIMIT $4",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .bind(format!("%{}%", q.replace(['%', '_'], "")))
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    Ok(items.into_iter().map(with_completeness).collect())
}

fn with_completeness(mut n: OrgNode) -> OrgNode {
    n.completeness = super::average_completeness(n.completeness_sum, n.member_count);
    n
}

/// Everything needed to insert an organisation (already validated).
pub struct NewOrg {
    pub name: String,
    pub short_name: String,
    pub category: String,
    pub level: Option<String>,
    pub secretary: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub subordination: String,
    pub founded_on: Option<String>,
    pub unit_mode: Option<String>,
    pub work_category: Option<String>,
    pub may_approve_development: bool,
}

/// Takes the next sibling code under `parent_id`. Codes are never reused.
pub async fn next_child_code(
    tx: &mut Tx,
    _allowed: &Allowed,
    parent_id: &str,
    parent_code: &str,
) -> anyhow::Result<String> {
    sqlx::query("UPDATE orgs SET next_child_seq = next_child_seq + 1 WHERE id = $1")
        .bind(parent_id)
        .execute(&mut **tx)
        .await?;
    let seq: i64 = sqlx::query_scalar("SELECT next_child_seq FROM orgs WHERE id = $1")
        .bind(parent_id)
        .fetch_one(&mut **tx)
        .await?;
    let segment = sibling_segment(seq)
        .ok_or_else(|| anyhow::anyhow!("sibling codes exhausted under {parent_code}"))?;
    Ok(format!("{parent_code}{segment}"))
}

/// Inserts an organisation with the given code and parent.
pub async fn insert(
    tx: &mut Tx,
    _allowed: &Allowed,
    id: &str,
    code: &str,
    parent_id: Option<&str>,
    o: &NewOrg,
) -> Result<(), sqlx::Error> {
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO orgs (id, code, parent_id, name, short_name, category, level, secretary, \
         contact_name, contact_phone, subordination, founded_on, unit_mode, work_category, \
         may_approve_development, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'active', $16, $16)",
    )
    .bind(id)
    .bind(code)
    .bind(parent_id.map(str::to_string))
    .bind(&o.name)
    .bind(&o.short_name)
    .bind(&o.category)
    .bind(o.level.clone())
    .bind(&o.secretary)
    .bind(&o.contact_name)
    .bind(crate::crypto::seal(crate::crypto::Column::OrgsContactPhone, &o.contact_phone))
    .bind(&o.subordination)
    .bind(o.founded_on.clone())
    .bind(o.unit_mode.clone())
    .bind(o.work_category.clone())
    .bind(flag(o.may_approve_development))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the unit links of an organisation by `linkage` and returns the work category
/// (the main unit's category). Units linked as a legal entity become situation 1, units of a
/// joint branch situation 2.
pub async fn relink_units(
    tx: &mut Tx,
    allowed: &Allowed,
    org_id: &str,
    linkage: &Linkage,
) -> Result<Option<String>, sqlx::Error> {
    unlink_all(tx, allowed, org_id).await?;
    let situation = if linkage.unit_ids.len() > 1 { 2 } else { 1 };
    let mut work_category = None;
    for unit_id in &linkage.unit_ids {
        let is_default = linkage.default_unit_id.as_deref() == Some(unit_id.as_str());
        sqlx::query("INSERT INTO org_units (org_id, unit_id, is_default) VALUES ($1, $2, $3)")
            .bind(org_id)
            .bind(unit_id)
            .bind(flag(is_default))
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE units SET party_org_situation = $1, managing_org_id = NULL, updated_at = $2 WHERE id = $3")
            .bind(situation)
            .bind(now_rfc3339())
            .bind(unit_id)
            .execute(&mut **tx)
            .await?;
        if is_default {
            work_category = sqlx::query_scalar("SELECT category FROM units WHERE id = $1")
                .bind(unit_id)
                .fetch_optional(&mut **tx)
                .await?;
        }
    }
    Ok(work_category)
}

/// Removes every unit link of an organisation; both records stay. Returns how many.
pub async fn unlink_all(tx: &mut Tx, _allowed: &Allowed, org_id: &str) -> Result<u64, sqlx::Error> {
    let n = sqlx::query("DELETE FROM org_units WHERE org_id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n)
}

/// Sets the party-work information (党组织工作分类) of an organisation.
pub async fn set_work_category(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
    work_category: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE orgs SET work_category = $1, updated_at = $2 WHERE id = $3")
        .bind(work_category)
        .bind(now_rfc3339())
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The editable fields of an organisation (already validated).
pub struct OrgUpdate {
    pub name: String,
    pub short_name: String,
    pub secretary: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub subordination: String,
    pub founded_on: Option<String>,
    pub may_approve_development: bool,
    pub unit_mode: Option<String>,
    pub work_category: Option<String>,
}

/// Writes the editable fields of an organisation (the contact phone sealed).
pub async fn update(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
    u: &OrgUpdate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orgs SET name = $1, short_name = $2, secretary = $3, contact_name = $4, contact_phone = $5, \
         subordination = $6, founded_on = $7, may_approve_development = $8, unit_mode = $9, work_category = $10, \
         updated_at = $11 WHERE id = $12",
    )
    .bind(&u.name)
    .bind(&u.short_name)
    .bind(&u.secretary)
    .bind(&u.contact_name)
    .bind(crate::crypto::seal(crate::crypto::Column::OrgsContactPhone, &u.contact_phone))
    .bind(&u.subordination)
    .bind(u.founded_on.clone())
    .bind(flag(u.may_approve_development))
    .bind(u.unit_mode.clone())
    .bind(u.work_category.clone())
    .bind(now_rfc3339())
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The category change of an organisation.
pub struct CategoryUpdate {
    pub category: String,
    pub level: Option<String>,
    pub unit_mode: Option<String>,
    pub work_category: Option<String>,
    pub may_approve_development: bool,
}

/// Writes a new category (with its level, unit situation and approval flag).
pub async fn set_category(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
    c: &CategoryUpdate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orgs SET category = $1, level = $2, unit_mode = $3, work_category = $4, \
         may_approve_development = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&c.category)
    .bind(c.level.clone())
    .bind(c.unit_mode.clone())
    .bind(c.work_category.clone())
    .bind(flag(c.may_approve_development))
    .bind(now_rfc3339())
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Clears the unit situation and party-work information (after every unit was unlinked).
pub async fn clear_unit_mode(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orgs SET unit_mode = NULL, work_category = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now_rfc3339())
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revokes (撤销) an organisation, keeping its history.
pub async fn revoke(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
    document_no: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orgs SET status = 'revoked', revoked_document_no = $1, revoked_reason = $2, revoked_at = $3, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(document_no)
    .bind(reason)
    .bind(now_rfc3339())
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes an organisation physically (created by mistake; the caller checked the blockers).
pub async fn delete(tx: &mut Tx, _allowed: &Allowed, org_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM orgs WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One admin grant whose tier changed because its organisation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retiered {
    pub grant_id: String,
    pub from: u8,
    pub to: u8,
    /// Password sessions ended because the new tier needs the USB key.
    pub sessions_ended: u64,
}

/// Brings the live admin grants on `org_id` in line with the tier the organisation now
/// carries (`max_tier`, from `access::tier_for_org`; 1 is the highest). A grant above it is
/// lowered at once. A grant below it is raised only with `raise` — the proof that a tier-1
/// admin explicitly gave the organisation approval authority — and only when it stood at
/// `old_max`, so a tier a security officer lowered on purpose stays lowered. Password
/// sessions under a grant that now needs the USB key are ended; other sessions read the new
/// tier with their next request. Returns the changed grants (the caller audits each one in
/// this transaction).
pub async fn retier_grants(
    tx: &mut Tx,
    _allowed: &Allowed,
    org_id: &str,
    old_max: u8,
    max_tier: u8,
    raise: Option<&Allowed>,
) -> Result<Vec<Retiered>, sqlx::Error> {
    let grants: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT id, tier FROM grants WHERE org_id = $1 AND role = 'admin' AND revoked_at IS NULL \
         ORDER BY id",
    )
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for (grant_id, tier) in grants {
        let from = tier.unwrap_or(3) as u8;
        // Lowered at once; raised only with the explicit proof, from the old maximum.
        let lower = from < max_tier;
        let raise = from > max_tier && raise.is_some() && from == old_max;
        if !(lower || raise) {
            continue;
        }
        let to = max_tier;
        if to == from {
            continue;
        }
        sqlx::query("UPDATE grants SET tier = $1 WHERE id = $2")
            .bind(i64::from(to))
            .bind(&grant_id)
            .execute(&mut **tx)
            .await?;
        let sessions_ended = if crate::access::needs_card(crate::access::Role::Admin, Some(to)) {
            sqlx::query("DELETE FROM sessions WHERE grant_id = $1 AND cert_fingerprint IS NULL")
                .bind(&grant_id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        } else {
            0
        };
        out.push(Retiered {
            grant_id,
            from,
            to,
            sessions_ended,
        });
    }
    Ok(out)
}

/// What stands in the way of deleting or revoking an organisation, in Chinese, one item each.
/// The units linked to an organisation: (unit id, is_default as 0/1).
pub async fn unit_links(
    db: &sqlx::AnyPool,
    org_id: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT unit_id, is_default FROM org_units WHERE org_id = $1 ORDER BY unit_id")
        .bind(org_id)
        .fetch_all(db)
        .await
}

pub async fn blockers(
    tx: &mut sqlx::AnyConnection,
    org: &OrgRow,
    for_delete: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let mut out = Vec::new();
    let children: i64 = sqlx::query_scalar(if !for_delete {
        "SELECT COUNT(*) FROM orgs WHERE parent_id = $1 AND status = 'active'"
    } else {
        "SELECT COUNT(*) FROM orgs WHERE parent_id = $1"
    })
    .bind(&org.id)
    .fetch_one(&mut *tx)
    .await?;
    if children > 0 {
        out.push(format!("{children}个下级党组织"));
    }
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE branch_id = $1")
        .bind(&org.id)
        .fetch_one(&mut *tx)
        .await?;
    if members > 0 {
        out.push(format!("{members}名党员"));
    }
    let in_transfer: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE branch_id = $1 AND in_transfer = 1")
            .bind(&org.id)
            .fetch_one(&mut *tx)
            .await?;
    if in_transfer > 0 {
        out.push(format!("{in_transfer}件正在办理的组织关系转接"));
    }
    let units: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM org_units WHERE org_id = $1")
        .bind(&org.id)
        .fetch_one(&mut *tx)
        .await?;
    if units > 0 {
        out.push(format!("{units}个关联单位（请先解除关联）"));
    }
    let grants: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM grants WHERE org_id = $1 AND revoked_at IS NULL")
            .bind(&org.id)
            .fetch_one(&mut *tx)
            .await?;
    if grants > 0 {
        out.push(format!(
            "{grants}个管理员、安全员或审计员授权（请先撤销授权）"
        ));
    } else if for_delete {
        let history: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM grants WHERE org_id = $1")
            .bind(&org.id)
            .fetch_one(&mut *tx)
            .await?;
        if history > 0 {
            out.push(format!(
                "{history}条已撤销的授权记录（有授权历史的党组织只能撤销，不能删除）"
            ));
        }
    }
    Ok(out)
}
