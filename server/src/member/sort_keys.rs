//! What is stored beside a member's name and ID number for ordering and search: the sort keys
//! of the name (`sort_pinyin`, `sort_strokes`, see `collate`) and the blind index of the ID
//! number's last four characters (`id_suffix_idx`, see `crypto`). Every write of a name or an
//! ID number sets them ([`Derived::of`]); [`backfill`] fills them at start for rows written
//! before they existed, and recomputes the sort keys when the collator changed.

use sqlx::Row;

use crate::collate;
use crate::crypto::{self, Column};
use crate::db::Db;

/// Rows per transaction of the backfill.
const BATCH: i64 = 1000;
/// Rows per UPDATE statement of the backfill.
const UPDATE_ROWS: usize = 100;

/// The values derived from a member's name and (plaintext) ID number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub sort_pinyin: String,
    pub sort_strokes: String,
    pub id_suffix_idx: Option<String>,
    /// Characters 1-6 of the ID number (the region code, clear: `members.id_region`).
    pub id_region: String,
    /// Characters 7-14 of the ID number (the birth date as the number writes it, clear:
    /// `members.id_birth`).
    pub id_birth: String,
}

impl Derived {
    pub fn of(keys: &crypto::Keys, name: &str, id_number: &str) -> Derived {
        Derived {
            sort_pinyin: collate::pinyin_key(name),
            sort_strokes: collate::strokes_key(name),
            id_suffix_idx: keys.id_number_suffix_index(id_number),
            id_region: id_region(id_number),
            id_birth: id_birth(id_number),
        }
    }
}

/// The ID number as stored and compared: trimmed, `x` upper-case.
pub fn normal_id_number(id_number: &str) -> String {
    id_number.trim().to_ascii_uppercase()
}

/// Characters 1-6 of an ID number (fewer when it is shorter).
pub fn id_region(id_number: &str) -> String {
    normal_id_number(id_number).chars().take(6).collect()
}

/// Characters 7-14 of an ID number (fewer or none when it is shorter).
pub fn id_birth(id_number: &str) -> String {
    normal_id_number(id_number)
        .chars()
        .skip(6)
        .take(8)
        .collect()
}

/// Fills the sort keys and the suffix index of members (and the pinyin key of accounts) that
/// lack them, in batches; when the stored keys were made by another collator
/// (`collate::version`), recomputes every row. Returns the rows written. Run at start, before the server listens.
pub async fn backfill(db: &Db) -> anyhow::Result<u64> {
    let version = collate::version();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT version FROM sort_key_versions WHERE name = 'members'")
            .fetch_optional(db.write())
            .await?;
    if stored.as_deref() != Some(version) {
        for table in ["members", "accounts"] {
            sqlx::query(&format!(
                "UPDATE {table} SET sort_pinyin = NULL WHERE sort_pinyin IS NOT NULL"
            ))
            .execute(db.write())
            .await?;
        }
    }
    let keys = crypto::keys();
    let mut written = 0u64;
    // Keyset paging: `(sort_pinyin IS NULL, id > last)` is one range of the key index, read in
    // id order; without `id > last` every batch sorted all remaining rows again.
    let mut last = String::new();
    loop {
        let mut tx = db.begin().await?;
        let rows = sqlx::query(
            "SELECT id, name, id_number FROM members WHERE sort_pinyin IS NULL AND id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(&last)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if let Some(r) = rows.last() {
            last = r.try_get(0)?;
        }
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let stored: String = row.try_get(2)?;
            // A database from before encryption holds plaintext until `rotate-keys` seals it.
            let id_number = if crypto::is_sealed(&stored) {
                keys.open(Column::MembersIdNumber, &stored)?
            } else {
                stored
            };
            values.push((id, Derived::of(&keys, &name, &id_number)));
        }
        // A statement per row costs sqlx about half a millisecond; one per 1,000 rows makes the
        // database match each row against the whole list. 100 rows a statement is the middle.
        for chunk in values.chunks(UPDATE_ROWS) {
            let sql = batch_update_sql(chunk.len());
            let mut q = sqlx::query(&sql);
            for (id, d) in chunk {
                q = q
                    .bind(id.clone())
                    .bind(d.sort_pinyin.clone())
                    .bind(d.sort_strokes.clone())
                    .bind(d.id_suffix_idx.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        written += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    written += backfill_id_derived(db, &keys).await?;
    // Accounts keep the pinyin key of their name only (the security pages list holders).
    let mut last = String::new();
    loop {
        let mut tx = db.begin().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, name FROM accounts WHERE sort_pinyin IS NULL AND id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(&last)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((id, _)) = rows.last() {
            last = id.clone();
        }
        for (id, name) in &rows {
            sqlx::query("UPDATE accounts SET sort_pinyin = $1 WHERE id = $2")
                .bind(collate::pinyin_key(name))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        written += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    record_version(db.write()).await?;
    Ok(written)
}

/// Records that every stored sort key is of the running collation version: [`backfill`] at
/// the end, and a bulk load (`demo`) in its own transaction — its rows carry keys of this
/// version, and without the mark the next start would recompute every one of them.
pub async fn record_version<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sort_key_versions (name, version) VALUES ('members', $1) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version",
    )
    .bind(collate::version())
    .execute(e)
    .await?;
    Ok(())
}

/// Fills the clear columns derived from the ID number (`id_region`, `id_birth`) of members
/// written before they existed (migration 0017), in batches.
async fn backfill_id_derived(db: &Db, keys: &crypto::Keys) -> anyhow::Result<u64> {
    let mut written = 0u64;
    let mut last = String::new();
    loop {
        let mut tx = db.begin().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, id_number FROM members WHERE id_region IS NULL AND id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(&last)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((id, _)) = rows.last() {
            last = id.clone();
        }
        for (id, stored) in &rows {
            let id_number = if crypto::is_sealed(stored) {
                keys.open(Column::MembersIdNumber, stored)?
            } else {
                stored.clone()
            };
            sqlx::query("UPDATE members SET id_region = $1, id_birth = $2 WHERE id = $3")
                .bind(id_region(&id_number))
                .bind(id_birth(&id_number))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        written += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    Ok(written)
}

/// `UPDATE members` of `rows` rows from one list of values, written once for both engines
/// (a CTE with named columns; `UPDATE … FROM (VALUES …) AS v(…)` is PostgreSQL only).
fn batch_update_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let n = r * 4;
            format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
        })
        .collect();
    format!(
        "WITH v (id, p, s, x) AS (VALUES {}) UPDATE members SET \
         sort_pinyin = (SELECT p FROM v WHERE v.id = members.id), \
         sort_strokes = (SELECT s FROM v WHERE v.id = members.id), \
         id_suffix_idx = (SELECT x FROM v WHERE v.id = members.id) \
         WHERE id IN (SELECT id FROM v)",
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_update_numbers_four_values_a_row() {
        let sql = super::batch_update_sql(2);
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4), ($5, $6, $7, $8))"),
            "{sql}"
        );
        assert!(!sql.contains("$9"));
    }
}
