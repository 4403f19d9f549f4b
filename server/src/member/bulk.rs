//! Multi-row insertion of validated members (the demo generator and the summary-sheet import
//! 导入汇总表): one place for the column list, the sealing of the ID number and phones, their
//! blind indexes and the derived sort keys, so that every bulk write stores what a single
//! write (`routes::write`) stores.

use super::rules::ValidMember;
use super::sort_keys::Derived;
use crate::access::Allowed;
use crate::crypto::Column;
use crate::db::{flag, ArrayLiteral, Engine, Tx};

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
    seal_parts(
        keys,
        &c.name,
        &c.id_number,
        &c.phone,
        c.registered_phone.as_deref(),
    )
}

fn seal_parts(
    keys: &crate::crypto::Keys,
    name: &str,
    id_number: &str,
    phone: &str,
    registered_phone: Option<&str>,
) -> Sealed {
    Sealed {
        id_number: keys.seal(Column::MembersIdNumber, id_number),
        phone: keys.seal(Column::MembersPhone, phone),
        registered_phone: registered_phone.map(|r| keys.seal(Column::MembersRegisteredPhone, r)),
        id_number_idx: keys.id_number_index(Column::MembersIdNumber, id_number),
        registered_phone_idx: registered_phone
            .map(|r| keys.index(Column::MembersRegisteredPhone, r)),
        // Sort keys of the name and the ID suffix index, as every member write sets them.
        derived: Derived::of(keys, name, id_number),
    }
}

/// One bound value of a member row.
enum Value {
    Text(Option<String>),
    Int(i64),
}

fn text(v: impl Into<String>) -> Value {
    Value::Text(Some(v.into()))
}

/// The values of a member row in the order of [`COLUMNS`] (all but `in_transfer`).
fn values(now: &str, row: &NewMember, p: Sealed) -> [Value; BINDS] {
    let v = &row.member;
    [
        text(now),
        text(now),
        text(row.id.as_str()),
        text(v.name.as_str()),
        text(p.id_number),
        text(v.sex.as_str()),
        text(v.ethnicity.as_str()),
        text(v.birth_date.to_string()),
        text(v.education.as_str()),
        text(v.category.as_str()),
        text(row.branch_id.as_str()),
        text(row.branch_code.as_str()),
        text(v.joined_on.to_string()),
        Value::Text(v.full_on.map(|d| d.to_string())),
        text(v.job.as_str()),
        text(p.phone),
        text(v.address.as_str()),
        Value::Text(p.registered_phone),
        text(v.origin.as_str()),
        text(v.title.as_str()),
        text(v.new_social_stratum.as_str()),
        Value::Int(v.completeness),
        Value::Text(p.id_number_idx),
        Value::Text(p.registered_phone_idx),
        text(p.derived.sort_pinyin),
        text(p.derived.sort_strokes),
        Value::Text(p.derived.id_suffix_idx),
        text(p.derived.id_region),
        text(p.derived.id_birth),
        text(v.status.as_str()),
        Value::Int(flag(v.lost_contact)),
        Value::Text(v.lost_contact_on.map(|d| d.to_string())),
        Value::Int(flag(v.floating)),
        Value::Text(v.floating_to.clone()),
    ]
}

/// Rows per statement on PostgreSQL.
const ARRAY_ROWS: usize = 2000;

/// `INSERT INTO members (...) SELECT unnest($1::text[]), ...`: one array per column, unnested
/// side by side in the select list (a set-returning projection, which streams, rather than
/// `FROM unnest(...)`, which first stores the rows in a tuplestore).
fn unnest_sql(first: &[Value; BINDS]) -> String {
    let arrays: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Int(_) => format!("unnest(${}::int8[])", i + 1),
            Value::Text(_) => format!("unnest(${}::text[])", i + 1),
        })
        .collect();
    format!(
        "INSERT INTO members ({COLUMNS}) SELECT {}, 0",
        arrays.join(", ")
    )
}

/// PostgreSQL: each statement takes two thousand rows as one array per column, which a
/// blocking thread seals and writes while the server inserts the previous statement's rows.
/// Thousands of bound parameters per statement instead kept both sides waiting for each
/// other: the server spent its time setting up each parameter, the client encoding it.
async fn insert_arrays(tx: &mut Tx, now: &str, rows: &[NewMember]) -> Result<(), sqlx::Error> {
    let owned: Vec<NewMember> = rows.to_vec();
    let now = now.to_string();
    let keys = crate::crypto::keys();
    let (sender, mut statements) = tokio::sync::mpsc::channel::<(String, Vec<String>)>(4);
    let worker = tokio::task::spawn_blocking(move || {
        let mut sql = None;
        for chunk in owned.chunks(ARRAY_ROWS) {
            let mut arrays: Vec<ArrayLiteral> =
                (0..BINDS).map(|_| ArrayLiteral::default()).collect();
            for row in chunk {
                let v = &row.member;
                let p = seal_parts(
                    &keys,
                    &v.name,
                    &v.id_number,
                    &v.phone,
                    v.registered_phone.as_deref(),
                );
                let values = values(&now, row, p);
                if sql.is_none() {
                    sql = Some(unnest_sql(&values));
                }
                for (array, value) in arrays.iter_mut().zip(values) {
                    match value {
                        Value::Int(i) => array.push_int(i),
                        Value::Text(t) => array.push_text(t.as_deref()),
                    }
                }
            }
            let arrays: Vec<String> = arrays.into_iter().map(ArrayLiteral::finish).collect();
            let text = sql.clone().unwrap_or_default();
            if sender.blocking_send((text, arrays)).is_err() {
                // The statements stopped (an error): nothing more to prepare.
                return;
            }
        }
    });
    while let Some((sql, arrays)) = statements.recv().await {
        let mut q = sqlx::query(&sql);
        for array in arrays {
            q = q.bind(array);
        }
        q.execute(&mut **tx).await?;
    }
    worker.await.map_err(|_| sqlx::Error::WorkerCrashed)?;
    Ok(())
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
    if engine == Engine::Postgres {
        return insert_arrays(tx, now, rows).await;
    }
    let numbered = false;
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
            for value in values(now, row, p) {
                q = match value {
                    Value::Text(t) => q.bind(t),
                    Value::Int(i) => q.bind(i),
                };
            }
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
