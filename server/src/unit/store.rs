//! Storage of units. Every write takes the [`Allowed`] proof of `access`.

use crate::access::Allowed;
use crate::db::{flag, now_rfc3339, Tx};

/// The stored fields of a unit (already validated).
pub struct UnitFields<'a> {
    pub name: &'a str,
    pub credit_code: &'a str,
    pub category: &'a str,
    pub subcategory: &'a str,
    pub has_party_group: bool,
    pub situation: i64,
    pub managing_org_id: Option<String>,
}

/// Inserts a unit owned by the organisation `owner_id` (unified code `owner_code`).
pub async fn insert(
    tx: &mut Tx,
    _allowed: &Allowed,
    id: &str,
    u: &UnitFields<'_>,
    owner_id: &str,
    owner_code: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO units (id, name, credit_code, category, subcategory, has_party_group, party_org_situation, \
         managing_org_id, owner_org_id, owner_code, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(id)
    .bind(u.name)
    .bind(u.credit_code)
    .bind(u.category)
    .bind(u.subcategory)
    .bind(flag(u.has_party_group))
    .bind(u.situation)
    .bind(u.managing_org_id.clone())
    .bind(owner_id)
    .bind(owner_code)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the fields of a unit; a changed category clears the party-work information of the
/// organisations it is linked to (SPEC §3).
pub async fn update(
    tx: &mut Tx,
    _allowed: &Allowed,
    id: &str,
    u: &UnitFields<'_>,
    category_changed: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE units SET name = $1, credit_code = $2, category = $3, subcategory = $4, has_party_group = $5, \
         party_org_situation = $6, managing_org_id = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(u.name)
    .bind(u.credit_code)
    .bind(u.category)
    .bind(u.subcategory)
    .bind(flag(u.has_party_group))
    .bind(u.situation)
    .bind(u.managing_org_id.clone())
    .bind(now_rfc3339())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if category_changed {
        sqlx::query(
            "UPDATE orgs SET work_category = NULL, updated_at = $1 WHERE id IN \
             (SELECT org_id FROM org_units WHERE unit_id = $2)",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Deletes a unit unless it is linked to an organisation; returns whether it was deleted.
pub async fn delete_unlinked(
    tx: &mut Tx,
    _allowed: &Allowed,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "DELETE FROM units WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM org_units WHERE unit_id = $1)",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}
