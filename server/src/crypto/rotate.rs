//! Key rotation (`dangjian-server rotate-keys`): adds a key version, makes it current, then
//! re-encrypts every encrypted column in batches of short transactions while the servers keep
//! running. Readers handle both versions meanwhile, because each value names its key; servers
//! notice the new key file within seconds (`crypto::keys`) and seal with the new key from then
//! on; passes repeat until one finds nothing left under an older key. Only then are the older
//! keys marked retired (kept for reading, removable by hand).
//!
//! The blind-index key is not rotated: a new index key would need every plaintext re-indexed
//! and every reader and writer switched over at the same instant (a lookup with the new key
//! would miss rows still indexed with the old one, and uniqueness would not hold across the
//! two), which is a coordinated migration with downtime, not a rolling rotation. The index
//! reveals only equality, and the AEAD key is what protects the values.
//!
//! Values that are not sealed at all (a database from before encryption) are encrypted as they
//! are, and their blind indexes filled in (for members' ID numbers also the index of the last
//! four characters, `id_suffix_idx`), so a rotation also brings such a database up to date.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::Row;

use super::{is_sealed, key_path, Column, KeyFile, Keys, UNKNOWN_ID_NUMBER};
use crate::db::Db;

/// An encrypted column of a table and, when it has one, its blind-index column.
struct Field {
    column: Column,
    name: &'static str,
    index: Option<&'static str>,
}

struct Table {
    name: &'static str,
    /// The primary key column (rows are visited in its order).
    key: &'static str,
    fields: &'static [Field],
}

const TABLES: [Table; 11] = [
    Table {
        name: "members",
        key: "id",
        fields: &[
            Field {
                column: Column::MembersIdNumber,
                name: "id_number",
                index: Some("id_number_idx"),
            },
            Field {
                column: Column::MembersPhone,
                name: "phone",
                index: None,
            },
            Field {
                column: Column::MembersRegisteredPhone,
                name: "registered_phone",
                index: Some("registered_phone_idx"),
            },
        ],
    },
    Table {
        name: "accounts",
        key: "id",
        fields: &[
            Field {
                column: Column::AccountsIdNumber,
                name: "id_number",
                index: Some("id_number_idx"),
            },
            Field {
                column: Column::AccountsMobile,
                name: "mobile",
                index: None,
            },
            Field {
                column: Column::AccountsTotpSecret,
                name: "totp_secret",
                index: None,
            },
        ],
    },
    Table {
        name: "member_accounts",
        key: "id",
        fields: &[Field {
            column: Column::MemberAccountsTotpSecret,
            name: "totp_secret",
            index: None,
        }],
    },
    // History rows keep the members' sealed values as they were (same associated data).
    Table {
        name: "member_history",
        key: "history_id",
        fields: &[
            Field {
                column: Column::MembersIdNumber,
                name: "id_number",
                index: Some("id_number_idx"),
            },
            Field {
                column: Column::MembersPhone,
                name: "phone",
                index: None,
            },
            Field {
                column: Column::MembersRegisteredPhone,
                name: "registered_phone",
                index: Some("registered_phone_idx"),
            },
        ],
    },
    Table {
        name: "applications",
        key: "id",
        fields: &[Field {
            column: Column::ApplicationsData,
            name: "data",
            index: None,
        }],
    },
    Table {
        name: "transfers",
        key: "id",
        fields: &[Field {
            column: Column::TransfersData,
            name: "data",
            index: None,
        }],
    },
    Table {
        name: "orgs",
        key: "id",
        fields: &[Field {
            column: Column::OrgsContactPhone,
            name: "contact_phone",
            index: None,
        }],
    },
    Table {
        name: "realname_registry",
        key: "id",
        fields: &[Field {
            column: Column::RealnameIdNumber,
            name: "id_number",
            index: Some("id_number_idx"),
        }],
    },
    Table {
        name: "letters",
        key: "id",
        fields: &[Field {
            column: Column::LettersFields,
            name: "fields",
            index: None,
        }],
    },
    Table {
        name: "member_imports",
        key: "id",
        fields: &[Field {
            column: Column::ImportReport,
            name: "report",
            index: None,
        }],
    },
    Table {
        name: "member_import_chunks",
        key: "id",
        fields: &[Field {
            column: Column::ImportChunks,
            name: "data",
            index: None,
        }],
    },
];

/// How a rotation runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per transaction.
    pub batch: usize,
    /// How long running servers may take to pick up the new key file (they look every few
    /// seconds); the verifying pass waits at least this long after the key was added.
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch: 1000,
            grace: super::RELOAD_CHECK + Duration::from_secs(1),
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The key version now current.
    pub version: u32,
    /// Rows re-encrypted (or encrypted for the first time).
    pub rewritten: u64,
}

/// Rotates the keys of the data directory and re-encrypts the database `db`.
pub async fn rotate(
    db: &Db,
    data_dir: &Path,
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Report> {
    let path = key_path(data_dir);
    let file = if path.exists() {
        let mut f = KeyFile::load(&path)?;
        f.add_version();
        f
    } else {
        progress("no key file: making one and encrypting the values as they are");
        KeyFile::generate()
    };
    file.save(&path)?;
    let added = Instant::now();
    let keys = super::install(Keys::from_file(&file)?, Some(path.clone()));
    progress(&format!("key v{} is current", keys.current()));
    let mut rewritten = 0;
    let mut pass = 1;
    loop {
        let mut stale = 0;
        for table in &TABLES {
            let (seen, changed) = reencrypt(db, &keys, table, options.batch, progress).await?;
            stale += seen;
            rewritten += changed;
        }
        progress(&format!("pass {pass}: {stale} rows under older keys"));
        if stale == 0 {
            break;
        }
        // Servers that had not yet seen the new key may have written under the old one:
        // give them time to notice, then look again.
        if let Some(wait) = options.grace.checked_sub(added.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        pass += 1;
        anyhow::ensure!(
            pass <= 20,
            "values under older keys keep appearing: is a server running without access to {}?",
            path.display()
        );
    }
    let mut file = KeyFile::load(&path)?;
    file.retire_all_but_current();
    file.save(&path)?;
    super::install(Keys::from_file(&file)?, Some(path));
    progress("older keys retired");
    Ok(Report {
        version: keys.current(),
        rewritten,
    })
}

/// One pass over a table: re-encrypts, batch by batch, every value not under the current key.
/// Returns (rows found under older keys, rows rewritten); a row changed by a server between
/// read and write is found but not rewritten, and looked at again by the next pass.
async fn reencrypt(
    db: &Db,
    keys: &Keys,
    table: &Table,
    batch: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(u64, u64)> {
    let current = format!("v{}:%", keys.current());
    let columns: Vec<&str> = table.fields.iter().map(|f| f.name).collect();
    let stale: Vec<String> = columns.iter().map(|c| format!("{c} NOT LIKE $2")).collect();
    let key = table.key;
    let select = format!(
        "SELECT {key}, {} FROM {} WHERE {key} > $1 AND ({}) ORDER BY {key} LIMIT {batch}",
        columns.join(", "),
        table.name,
        stale.join(" OR ")
    );
    let mut last = String::new();
    let mut seen = 0u64;
    let mut total = 0u64;
    loop {
        let mut tx = db.begin().await?;
        let rows = sqlx::query(&select)
            .bind(&last)
            .bind(&current)
            .fetch_all(&mut *tx)
            .await?;
        let mut changed = 0u64;
        for row in &rows {
            let id: String = row.try_get(0)?;
            let mut sets = Vec::new();
            let mut guards = Vec::new();
            let mut values: Vec<Option<String>> = Vec::new();
            for (i, f) in table.fields.iter().enumerate() {
                let Some(old) = row.try_get::<Option<String>, _>(i + 1)? else {
                    continue;
                };
                if old.starts_with(&current[..current.len() - 1]) {
                    continue;
                }
                let plain = if is_sealed(&old) {
                    keys.open(f.column, &old)?
                } else {
                    old.clone()
                };
                values.push(Some(keys.seal(f.column, &plain)));
                sets.push(format!("{} = ${}", f.name, values.len()));
                if let Some(ix) = f.index {
                    let index = if f.column == Column::MembersIdNumber
                        && plain.trim() == UNKNOWN_ID_NUMBER
                    {
                        None
                    } else {
                        Some(keys.index(f.column, &plain))
                    };
                    values.push(index);
                    sets.push(format!("{ix} = ${}", values.len()));
                }
                if f.column == Column::MembersIdNumber {
                    // The suffix index follows the number it was computed from.
                    values.push(keys.id_number_suffix_index(&plain));
                    sets.push(format!("id_suffix_idx = ${}", values.len()));
                    if table.name == "members" {
                        // So do the clear columns of its region and birth date (`Derived`).
                        use crate::member::sort_keys::{id_birth, id_region};
                        values.push(Some(id_region(&plain)));
                        sets.push(format!("id_region = ${}", values.len()));
                        values.push(Some(id_birth(&plain)));
                        sets.push(format!("id_birth = ${}", values.len()));
                    }
                }
                values.push(Some(old));
                guards.push(format!("{} = ${}", f.name, values.len()));
            }
            if sets.is_empty() {
                continue;
            }
            seen += 1;
            values.push(Some(id.clone()));
            let sql = format!(
                "UPDATE {} SET {} WHERE {} = ${} AND {}",
                table.name,
                sets.join(", "),
                table.key,
                values.len(),
                guards.join(" AND ")
            );
            let mut q = sqlx::query(&sql);
            for v in values {
                q = q.bind(v);
            }
            changed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        total += changed;
        if let Some(r) = rows.last() {
            last = r.try_get(0)?;
        }
        if !rows.is_empty() {
            progress(&format!("{}: {total} rows re-encrypted", table.name));
        }
        if rows.len() < batch {
            return Ok((seen, total));
        }
    }
}
