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

/// The values derived from a member's name and (plaintext) ID number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub sort_pinyin: String,
    pub sort_strokes: String,
    pub id_suffix_idx: Option<String>,
}

impl Derived {
    pub fn of(keys: &crypto::Keys, name: &str, id_number: &str) -> Derived {
        Derived {
            sort_pinyin: collate::pinyin_key(name),
            sort_strokes: collate::strokes_key(name),
            id_suffix_idx: keys.id_number_suffix_index(id_number),
        }
    }
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
    loop {
        let mut tx = db.begin().await?;
        let rows = sqlx::query(
            "SELECT id, name, id_number FROM members WHERE sort_pinyin IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
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
            let d = Derived::of(&keys, &name, &id_number);
            sqlx::query(
                "UPDATE members SET sort_pinyin = $1, sort_strokes = $2, id_suffix_idx = $3 WHERE id = $4",
            )
            .bind(d.sort_pinyin)
            .bind(d.sort_strokes)
            .bind(d.id_suffix_idx)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        written += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    // Accounts keep the pinyin key of their name only (the security pages list holders).
    loop {
        let mut tx = db.begin().await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, name FROM accounts WHERE sort_pinyin IS NULL ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
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
    sqlx::query(
        "INSERT INTO sort_key_versions (name, version) VALUES ('members', $1) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version",
    )
    .bind(version)
    .execute(db.write())
    .await?;
    Ok(written)
}
