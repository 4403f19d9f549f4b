//! Multi-row insertion of validated members (the demo generator and the summary-sheet import
//! 导入汇总表): one place for the column list, the sealing of the ID number and phones, their
//! blind indexes and the derived sort keys, so that every bulk write stores what a single
//! write (`routes::write`) stores.

use super::rules::ValidMember;
use super::sort_keys::Derived;
use crate::access::Allowed;
use crate::crypto::Column;
use crate::db::{flag, Engine, Tx};

/// A validated member ready to be inserted into a branch.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub id: String,
    pub branch_id: String,
    pub branch_code: String,
    pub member: ValidMember,
}

const COLUMNS: &str = "created_at, updated_at, id, name, id_number, sex, ethnicity, birth_date, education, \
    category, branch_id, org_code, joined_on, full_on, job, phone, address, registered_phone, origin, title, \
    new_social_stratum, completeness, id_number_idx, registered_phone_idx, sort_pinyin, sort_strokes, \
    id_suffix_idx, id_region, id_birth, status, lost_contact, lost_contact_on, floating, floating_to, \
    in_transfer";
/// Bound parameters per member row (every column but `in_transfer`, always 0).
const BINDS: usize = 34;
/// Rows per statement. SQLite allows at most 32766 parameters per statement, PostgreSQL 65535.
pub const ROWS_PER_STATEMENT: usize = 100;
const _: () = assert!(ROWS_PER_STATEMENT * BINDS < 32_766);

/// `INSERT INTO members (...) VALUES (...), ...` for `rows` rows. PostgreSQL gets numbered
/// `$n` placeholders; SQLite gets anonymous `?` ones, because SQLite looks named parameters up
/// by a linear scan, which makes binding thousands of `$n` in one statement quadratic (the
/// difference between seconds and a quarter of a minute for 50,000 members).
fn insert_sql(rows: usize, numbered: bool) -> String {
    let mut sql = format!("INSERT INTO members ({COLUMNS}) VALUES ");
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for i in 0..BINDS {
            if i > 0 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push_str(&format!("${n}"));
            } else {
                sql.push('?');
            }
            n += 1;
        }
        sql.push_str(", 0)");
    }
    sql
}

/// What a member row stores that costs cryptography or collation: the sealed ID number and
/// phones, their blind indexes and the derived keys.
struct Sealed {
    id_number: String,
    phone: String,
    registered_phone: Option<String>,
    id_number_idx: Option<String>,
    registered_phone_idx: Option<String>,
    derived: Derived,
}

/// The inputs of [`Sealed`], owned so that another thread can work on them.
struct Clear {
    name: String,
    id_number: String,
    phone: String,
    registered_phone: Option<String>,
}

fn seal(keys: &crate::crypto::Keys, c: &Clear) -> Sealed {
    Sealed {
        id_number: keys.seal(Column::MembersIdNumber, &c.id_number),
        phone: keys.seal(Column::MembersPhone, &c.phone),
        registered_phone: c
            .registered_phone
            .as_deref()
            .map(|r| keys.seal(Column::MembersRegisteredPhone, r)),
        id_number_idx: keys.id_number_index(Column::MembersIdNumber, &c.id_number),
        registered_phone_idx: c
            .registered_phone
            .as_deref()
            .map(|r| keys.index(Column::MembersRegisteredPhone, r)),
        // Sort keys of the name and the ID suffix index, as every member write sets them.
        derived: Derived::of(keys, &c.name, &c.id_number),
    }
}

/// Inserts `rows` inside `tx` in multi-row statements, sealing ID numbers and phones with
/// their indexes like every other member write (`crypto`). `now` is the creation time.
///
/// The sealing and the collation keys (most of the CPU of a bulk load) run on a blocking
/// thread a few statements ahead of the statements themselves, so that on two cores they
/// overlap with the database's own work.
pub async fn insert(
    tx: &mut Tx,
    engine: Engine,
    now: &str,
    rows: &[NewMember],
    _allowed: &Allowed,
) -> Result<(), sqlx::Error> {
    let numbered = engine == Engine::Postgres;
    let full_sql = insert_sql(ROWS_PER_STATEMENT, numbered);
    let keys = crate::crypto::keys();
    let clear: Vec<Vec<Clear>> = rows
        .chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            chunk
                .iter()
                .map(|r| Clear {
                    name: r.member.name.clone(),
                    id_number: r.member.id_number.clone(),
                    phone: r.member.phone.clone(),
                    registered_phone: r.member.registered_phone.clone(),
                })
                .collect()
        })
        .collect();
    let (sender, mut sealed) = tokio::sync::mpsc::channel::<Vec<Sealed>>(8);
    let worker = tokio::task::spawn_blocking(move || {
        for chunk in clear {
            let out: Vec<Sealed> = chunk.iter().map(|c| seal(&keys, c)).collect();
            if sender.blocking_send(out).is_err() {
                // The statements stopped (an error): nothing more to prepare.
                return;
            }
        }
    });
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let Some(prepared) = sealed.recv().await else {
            return Err(sqlx::Error::WorkerCrashed);
        };
        let partial;
        let sql: &str = if chunk.len() == ROWS_PER_STATEMENT {
            &full_sql
        } else {
            partial = insert_sql(chunk.len(), numbered);
            &partial
        };
        let mut q = sqlx::query(sql);
        for (row, p) in chunk.iter().zip(prepared) {
            let v = &row.member;
            q = q
                .bind(now.to_string())
                .bind(now.to_string())
                .bind(row.id.clone())
                .bind(v.name.clone())
                .bind(p.id_number)
                .bind(v.sex.clone())
                .bind(v.ethnicity.clone())
                .bind(v.birth_date.to_string())
                .bind(v.education.clone())
                .bind(v.category.clone())
                .bind(row.branch_id.clone())
                .bind(row.branch_code.clone())
                .bind(v.joined_on.to_string())
                .bind(v.full_on.map(|d| d.to_string()))
                .bind(v.job.clone())
                .bind(p.phone)
                .bind(v.address.clone())
                .bind(p.registered_phone)
                .bind(v.origin.clone())
                .bind(v.title.clone())
                .bind(v.new_social_stratum.clone())
                .bind(v.completeness)
                .bind(p.id_number_idx)
                .bind(p.registered_phone_idx)
                .bind(p.derived.sort_pinyin)
                .bind(p.derived.sort_strokes)
                .bind(p.derived.id_suffix_idx)
                .bind(p.derived.id_region)
                .bind(p.derived.id_birth)
                .bind(v.status.clone())
                .bind(flag(v.lost_contact))
                .bind(v.lost_contact_on.map(|d| d.to_string()))
                .bind(flag(v.floating))
                .bind(v.floating_to.clone());
        }
        q.execute(&mut **tx).await?;
    }
    drop(sealed);
    worker.await.map_err(|_| sqlx::Error::WorkerCrashed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        let sql = insert_sql(2, true);
        assert!(sql.contains("VALUES ($1, $2, "));
        assert!(sql.contains(", $34, 0), ($35, "));
        assert!(sql.contains(", $68, 0)"));
        assert!(!sql.contains("$69") && !sql.contains('?'));
        let sql = insert_sql(2, false);
        assert_eq!(sql.matches('?').count(), 2 * BINDS);
        assert!(!sql.contains('$'));
        assert_eq!(COLUMNS.split(',').count(), BINDS + 1);
    }
}
