//! The local real-name registry: `realname_registry`, imported from the CSV the organisation
//! department holds (ID number, name). The ID number is sealed
//! (`crypto::Column::RealnameIdNumber`) and found through its blind index, like
//! `members.id_number`.
//!
//! An import **upserts**: a number already in the registry takes the name, time and batch of
//! the new file; numbers not in the file stay. Lines that cannot be read are reported with
//! their line numbers and skipped (or, with `strict`, nothing is imported). One transaction
//! with its audit record `realname.import`.

use super::{normalise, CheckFuture, RealNameError, RealNameSource, Verdict};
use crate::access::Allowed;
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, Db, Tx};

/// The registry as a [`RealNameSource`].
pub struct LocalRegistry {
    db: Db,
}

impl LocalRegistry {
    pub fn new(db: Db) -> LocalRegistry {
        LocalRegistry { db }
    }
}

impl RealNameSource for LocalRegistry {
    fn check<'a>(&'a self, id_number: &'a str, name: &'a str) -> CheckFuture<'a> {
        Box::pin(async move { lookup(&self.db, id_number, name).await })
    }

    fn label(&self) -> &'static str {
        "本地实名库"
    }
}

/// Looks the pair up in the registry.
pub async fn lookup(db: &Db, id_number: &str, name: &str) -> Result<Verdict, RealNameError> {
    let (id_number, name) = normalise(id_number, name);
    let keys = crypto::keys();
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT id_number, name FROM realname_registry WHERE id_number_idx = $1")
            .bind(keys.index(Column::RealnameIdNumber, &id_number))
            .fetch_optional(db.read())
            .await
            .map_err(|e| RealNameError::Store(e.to_string()))?;
    let Some((sealed, stored_name)) = row else {
        return Ok(Verdict::Mismatch);
    };
    let stored_number = keys
        .open(Column::RealnameIdNumber, &sealed)
        .map_err(|e| RealNameError::Store(e.to_string()))?;
    Ok(
        if stored_number == id_number && stored_name.trim() == name {
            Verdict::Match
        } else {
            Verdict::Mismatch
        },
    )
}

/// A line of the CSV that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The batch name recorded on every row of this import.
    pub batch: String,
    /// Rows written (new or updated).
    pub imported: usize,
    /// Of those, numbers already in the registry.
    pub updated: usize,
    pub bad: Vec<BadLine>,
    /// A header line was recognised and skipped.
    pub header: bool,
}

/// The people of a CSV text: `(id number, name)` pairs and the lines at fault. UTF-8 with or
/// without BOM, comma separated, fields optionally in double quotes; a first line whose first
/// field is not an ID number-like value (e.g. `身份证号,姓名`) is a header.
pub fn parse_csv(text: &str) -> (Vec<(String, String)>, Vec<BadLine>, bool) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let today = crate::db::today();
    let mut people: Vec<(String, String)> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut bad = Vec::new();
    let mut header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<String> = raw
            .split(',')
            .map(|f| f.trim().trim_matches('"').trim().to_string())
            .collect();
        if line == 1 && !fields[0].chars().any(|c| c.is_ascii_digit()) {
            header = true;
            continue;
        }
        if fields.len() < 2 {
            bad.push(BadLine {
                line,
                reason: "应有两列：公民身份证号,姓名".into(),
            });
            continue;
        }
        if fields.len() > 2 && fields[2..].iter().any(|f| !f.is_empty()) {
            bad.push(BadLine {
                line,
                reason: "列数过多：应只有公民身份证号和姓名两列".into(),
            });
            continue;
        }
        let number = match dangjian_codes::idcard::parse(&fields[0], today) {
            Ok(dangjian_codes::idcard::IdNumber::Known { normalized, .. }) => normalized,
            Ok(dangjian_codes::idcard::IdNumber::Unknown) => {
                bad.push(BadLine {
                    line,
                    reason: "全零身份证号不能作为实名信息".into(),
                });
                continue;
            }
            Err(e) => {
                bad.push(BadLine {
                    line,
                    reason: e.message(),
                });
                continue;
            }
        };
        let name = fields[1].clone();
        if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
            bad.push(BadLine {
                line,
                reason: "姓名为空、过长或含有控制字符".into(),
            });
            continue;
        }
        if let Some(first) = seen.get(&number) {
            bad.push(BadLine {
                line,
                reason: format!("身份证号与第 {first} 行重复"),
            });
            continue;
        }
        seen.insert(number.clone(), line);
        people.push((number, name));
    }
    (people, bad, header)
}

/// Imports a CSV text into the registry (see the module's rules). `strict`: any bad line
/// imports nothing (the report still lists them).
pub async fn import_csv(
    db: &Db,
    allowed: &Allowed,
    who: &Who,
    text: &str,
    strict: bool,
) -> anyhow::Result<ImportReport> {
    let (people, bad, header) = parse_csv(text);
    let batch = format!("import-{}", now_rfc3339());
    let mut report = ImportReport {
        batch: batch.clone(),
        bad,
        header,
        ..Default::default()
    };
    if strict && !report.bad.is_empty() {
        return Ok(report);
    }
    let mut tx = db.begin().await?;
    report.updated = upsert(&mut tx, allowed, &people, &batch).await?;
    report.imported = people.len();
    audit::append(
        &mut tx,
        who,
        Event::ok("realname.import", &batch).with_detail(format!(
            "{} 人（其中更新 {} 人），{} 行有误未导入",
            report.imported,
            report.updated,
            report.bad.len()
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// Writes people into the registry inside `tx` (the import): a number already there takes the
/// new name and batch. Returns how many numbers were already there.
pub async fn upsert(
    tx: &mut Tx,
    allowed: &Allowed,
    people: &[(String, String)],
    batch: &str,
) -> Result<usize, sqlx::Error> {
    let entries = seal_entries(people, new_id);
    let mut updated = 0;
    for chunk in entries.chunks(CHUNK) {
        let mut count =
            crate::db::Sql::new("SELECT COUNT(*) FROM realname_registry WHERE id_number_idx IN (");
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                count.push(", ");
            }
            count.bind(e.id_number_idx.clone());
        }
        count.push(")");
        let existing: i64 = count.scalar().fetch_one(&mut **tx).await?;
        updated += existing as usize;
    }
    insert_entries(tx, allowed, &entries, batch, Existing::Update).await?;
    Ok(updated)
}

/// Rows per multi-row statement of the registry.
const CHUNK: usize = 200;

/// A person of the registry as its row stores them: the blind index and the sealed number.
#[derive(Debug, Clone)]
pub struct Entry {
    id: String,
    id_number_idx: String,
    id_number: String,
    name: String,
}

/// Seals `people` (ID number, name) for the registry: CPU only, so a bulk caller (`demo`) can
/// run it on another thread while the database works. The entries come in the order of their
/// blind index, and `ids` names them in that order: with ascending ids (`demo`) both of the
/// table's indexes grow at their end instead of at a random place.
pub fn seal_entries(people: &[(String, String)], mut ids: impl FnMut() -> String) -> Vec<Entry> {
    let keys = crypto::keys();
    let mut entries: Vec<Entry> = people
        .iter()
        .map(|(number, name)| Entry {
            id: String::new(),
            id_number_idx: keys.index(Column::RealnameIdNumber, number),
            id_number: keys.seal(Column::RealnameIdNumber, number),
            name: name.clone(),
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.id_number_idx.cmp(&b.id_number_idx));
    for e in &mut entries {
        e.id = ids();
    }
    entries
}

/// How [`insert_entries`] meets a number already in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// It takes the new name and batch (an import).
    Update,
    /// There is none (a new demo's empty registry): a plain insert, which a duplicate would
    /// fail, without the per-row conflict check an upsert pays on PostgreSQL.
    Absent,
}

/// Writes sealed entries inside `tx`, meeting numbers already there as `existing` says.
pub async fn insert_entries(
    tx: &mut Tx,
    _allowed: &Allowed,
    entries: &[Entry],
    batch: &str,
    existing: Existing,
) -> Result<(), sqlx::Error> {
    const UPDATE: &str =
        " ON CONFLICT (id_number_idx) DO UPDATE SET id_number = excluded.id_number, \
         name = excluded.name, imported_at = excluded.imported_at, batch = excluded.batch";
    let conflict = match existing {
        Existing::Update => UPDATE,
        Existing::Absent => "",
    };
    let now = now_rfc3339();
    let engine = crate::db::engine_of(tx);
    if engine == crate::db::Engine::Postgres {
        // Thousands of rows a statement, one array per column (`db::ArrayLiteral`).
        let sql = format!(
            "INSERT INTO realname_registry (id, id_number_idx, id_number, name, imported_at, batch) \
             SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), \
             unnest($4::text[]), $5, $6{conflict}"
        );
        for chunk in entries.chunks(CHUNK * 25) {
            let mut columns: [crate::db::ArrayLiteral; 4] = Default::default();
            for e in chunk {
                for (array, value) in
                    columns
                        .iter_mut()
                        .zip([&e.id, &e.id_number_idx, &e.id_number, &e.name])
                {
                    array.push_text(Some(value));
                }
            }
            let mut q = sqlx::query(&sql);
            for array in columns {
                q = q.bind(array.finish());
            }
            q.bind(now.clone())
                .bind(batch.to_string())
                .execute(&mut **tx)
                .await?;
        }
        return Ok(());
    }
    for chunk in entries.chunks(CHUNK) {
        let mut sql = crate::db::Sql::rows(
            engine,
            "INSERT INTO realname_registry (id, id_number_idx, id_number, name, imported_at, batch) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(");
            sql.bind(e.id.clone());
            sql.push(", ");
            sql.bind(e.id_number_idx.clone());
            sql.push(", ");
            sql.bind(e.id_number.clone());
            sql.push(", ");
            sql.bind(e.name.clone());
            sql.push(", ");
            sql.bind(now.clone());
            sql.push(", ");
            sql.bind(batch.to_string());
            sql.push(")");
        }
        sql.push(conflict);
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}

/// How many people the registry holds.
pub async fn count(db: &Db) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM realname_registry")
        .fetch_one(db.read())
        .await
}

/// The extra synthetic people the demo puts in the registry beside its members: not members,
/// so that a tour can enter one and see the check pass.
pub fn demo_extras() -> Vec<(String, String)> {
    const NAMES: [&str; 20] = [
        "林晓东",
        "赵雪梅",
        "孙建国",
        "周丽华",
        "吴志强",
        "郑秀英",
        "冯海涛",
        "陈静怡",
        "褚明远",
        "卫红霞",
        "蒋立新",
        "沈玉兰",
        "韩宇航",
        "杨春燕",
        "朱振华",
        "秦雅琴",
        "尤国栋",
        "许文静",
        "何建平",
        "吕晓燕",
    ];
    NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let born =
                chrono::NaiveDate::from_ymd_opt(1975 + i as i32, 1 + (i % 12) as u32, 8 + i as u32)
                    .expect("valid date");
            // Odd sequences for men, even for women, as the names suggest.
            let female = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19].contains(&i);
            let seq = 600 + 2 * i as u16 + u16::from(!female);
            (
                dangjian_codes::idcard::compose("370102", born, seq),
                (*name).to_string(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn csv_lines_are_read_and_faults_numbered() {
        let good = dangjian_codes::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(1980, 1, 2).unwrap(),
            11,
        );
        let other = dangjian_codes::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(1981, 3, 4).unwrap(),
            12,
        )
        .replace('X', "x");
        let mut wrong = good.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let text = format!(
            "\u{feff}身份证号,姓名\r\n{good},张三\r\n\r\n{wrong},李四\n\"{other}\",\"王五\"\n{good},重复\nonlyone\n"
        );
        let (people, bad, header) = parse_csv(&text);
        assert!(header);
        assert_eq!(people.len(), 2);
        assert_eq!(people[0], (good.clone(), "张三".to_string()));
        assert_eq!(people[1].0, other.to_ascii_uppercase());
        assert_eq!(people[1].1, "王五");
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![4, 6, 7], "{bad:?}");
        assert!(bad[1].reason.contains("第 2 行"), "{bad:?}");
    }
}
