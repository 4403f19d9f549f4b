//! Storage of quality control: the special-period table, batch checks and their findings, the
//! check of one member, and the reads behind the results (per member, report, special
//! investigation). A batch check is one streaming read of the subtree ordered by unified code
//! (only the columns the rules need), the rules applied on a blocking thread, and the findings
//! written with multi-row INSERTs in chunks: no query per member.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use super::rules::{self, Context, Subject};
use super::{AgePeriod, FindingView, Level, Rule};
use crate::access::{Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{now_rfc3339, subtree_upper, Db, Sql};
use crate::error::ApiResult;

/// Members per batch read from the stream and evaluated together.
const BATCH: usize = 4096;
/// Findings per INSERT statement (6 binds each: well under both engines' limits).
const INSERT_ROWS: usize = 500;

// ---- special periods

/// One row of the special-period table.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct PeriodRow {
    pub id: String,
    /// 入党日期起 (YYYY-MM-DD, inclusive)
    pub from_date: String,
    /// 入党日期止 (YYYY-MM-DD, inclusive)
    pub to_date: String,
    /// 最低入党年龄
    pub min_age: i64,
    /// 说明
    pub note: String,
    /// The shipped default, not yet confirmed by the organisation department
    #[schema(value_type = bool)]
    #[serde(with = "int_bool")]
    pub is_default: i64,
    pub updated_by: String,
    pub updated_at: String,
}

mod int_bool {
    pub fn serialize<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v != 0)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let b: bool = serde::Deserialize::deserialize(d)?;
        Ok(i64::from(b))
    }
}

pub async fn periods(db: &Db) -> ApiResult<Vec<PeriodRow>> {
    Ok(sqlx::query_as(
        "SELECT id, from_date, to_date, min_age, note, is_default, updated_by, updated_at \
         FROM quality_age_periods ORDER BY from_date, to_date",
    )
    .fetch_all(db.read())
    .await?)
}

/// The table as the rules read it.
pub fn age_periods(rows: &[PeriodRow]) -> Vec<AgePeriod> {
    rows.iter()
        .filter_map(|r| {
            Some(AgePeriod {
                from: rules::date(&r.from_date)?,
                to: rules::date(&r.to_date)?,
                min_age: i32::try_from(r.min_age).ok()?,
            })
        })
        .collect()
}

/// A checked period of the new table.
#[derive(Debug, Clone)]
pub struct NewPeriod {
    pub from_date: String,
    pub to_date: String,
    pub min_age: i64,
    pub note: String,
}

/// Replaces the whole table (one transaction with its audit record).
pub async fn replace_periods(
    db: &Db,
    _allowed: &Allowed,
    actor: &Actor,
    rows: &[NewPeriod],
) -> ApiResult<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM quality_age_periods")
        .execute(&mut *tx)
        .await?;
    let now = now_rfc3339();
    for r in rows {
        sqlx::query(
            "INSERT INTO quality_age_periods (id, from_date, to_date, min_age, note, is_default, \
             updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
        )
        .bind(crate::db::new_id())
        .bind(&r.from_date)
        .bind(&r.to_date)
        .bind(r.min_age)
        .bind(&r.note)
        .bind(&actor.name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    let detail = rows
        .iter()
        .map(|r| format!("{}..{}>={}", r.from_date, r.to_date, r.min_age))
        .collect::<Vec<_>>()
        .join("; ");
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("quality.periods", "quality_age_periods")
            .in_org(actor.org_code.clone())
            .with_detail(detail),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---- one member

/// The findings of one member, checked now against every rule.
pub async fn check_member(
    db: &Db,
    member: &crate::member::MemberRow,
) -> ApiResult<Vec<FindingView>> {
    let duplicate: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM members WHERE id_number_idx IS NOT NULL AND id_number_idx = \
         (SELECT id_number_idx FROM members WHERE id = $1)",
    )
    .bind(&member.id)
    .fetch_one(db.read())
    .await?;
    let cx = Context {
        today: crate::db::today(),
        periods: age_periods(&periods(db).await?),
    };
    let s = Subject {
        id_number: &member.id_number,
        sex: &member.sex,
        ethnicity: &member.ethnicity,
        education: &member.education,
        address: &member.address,
        phone: &member.phone,
        birth_date: &member.birth_date,
        joined_on: &member.joined_on,
        full_on: member.full_on.as_deref(),
        category: &member.category,
        lost_contact: member.lost_contact != 0,
        id_duplicate: duplicate > 1,
    };
    Ok(rules::check_all(&Rule::ALL, &s, &cx)
        .into_iter()
        .map(|f| FindingView::new(f.rule, f.explanation))
        .collect())
}

// ---- batch checks

/// A batch check as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CheckRow {
    pub id: String,
    pub job_id: String,
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub rules: String,
    pub account_id: String,
    pub actor_name: String,
    pub state: String,
    pub members_checked: i64,
    pub findings: i64,
    pub summary: String,
    pub message: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

const CHECK_COLUMNS: &str = "id, job_id, org_id, org_code, org_name, rules, account_id, \
    actor_name, state, members_checked, findings, summary, message, started_at, finished_at";

impl CheckRow {
    pub fn rule_list(&self) -> Vec<Rule> {
        self.rules.split(',').filter_map(Rule::parse).collect()
    }
}

/// Counts per level once a check has finished.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Summary {
    pub members_checked: i64,
    pub findings: i64,
    /// Members with at least one finding
    pub members_with_findings: i64,
    pub levels: Vec<LevelCount>,
    pub rules: Vec<RuleCount>,
    /// Seconds the check took
    pub seconds: f64,
}

/// Findings of one level and the members concerned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LevelCount {
    pub level: Level,
    pub level_label: String,
    pub findings: i64,
    pub members: i64,
}

/// Findings of one rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleCount {
    pub rule: Rule,
    pub rule_name: String,
    pub findings: i64,
}

pub async fn get_check(db: &Db, id: &str) -> ApiResult<Option<CheckRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECK_COLUMNS} FROM quality_checks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.read())
    .await?)
}

/// The newest checks of organisations in the subtree of `code`.
pub async fn recent_checks(db: &Db, code: &str, limit: i64) -> ApiResult<Vec<CheckRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECK_COLUMNS} FROM quality_checks WHERE org_code >= $1 AND org_code < $2 \
         ORDER BY started_at DESC, id DESC LIMIT {limit}"
    ))
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(db.read())
    .await?)
}

/// Records a new check (state `running`) with its audit record.
pub async fn insert_check(
    db: &Db,
    _allowed: &Allowed,
    actor: &Actor,
    org: &crate::org::OrgRow,
    chosen: &[Rule],
    job_id: &str,
) -> ApiResult<CheckRow> {
    let id = crate::db::new_id();
    let rules_text = chosen.iter().map(|r| r.id()).collect::<Vec<_>>().join(",");
    let now = now_rfc3339();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO quality_checks (id, job_id, org_id, org_code, org_name, rules, account_id, \
         actor_name, state, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9)",
    )
    .bind(&id)
    .bind(job_id)
    .bind(&org.id)
    .bind(&org.code)
    .bind(&org.name)
    .bind(&rules_text)
    .bind(&actor.account_id)
    .bind(&actor.name)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("quality.check", &id)
            .in_org(org.code.clone())
            .with_detail(format!("org={} rules={rules_text}", org.code)),
    )
    .await?;
    tx.commit().await?;
    Ok(get_check(db, &id).await?.expect("just inserted"))
}

/// The clear and sealed columns the rules need, as read from the stream (or, on SQLite, from
/// a JSON array per window of the table, in the same order).
#[derive(Deserialize)]
struct Raw {
    id: String,
    org_code: String,
    id_number: String,
    id_number_idx: Option<String>,
    sex: String,
    ethnicity: String,
    birth_date: String,
    education: String,
    category: String,
    joined_on: String,
    full_on: Option<String>,
    phone: String,
    address: String,
    #[serde(deserialize_with = "int_flag")]
    lost_contact: bool,
}

/// SQLite's JSON has no booleans: a flag column arrives as 0 or 1.
fn int_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(i64::deserialize(d)? != 0)
}

/// One finding ready to be written.
struct Out {
    member_id: String,
    org_code: String,
    rule: Rule,
    explanation: String,
}

/// Findings of a batch, with how many members it covered.
struct Evaluated {
    members: u64,
    findings: Vec<Out>,
}

/// How the batch reports its progress (the jobs registry, or nothing in tests).
pub trait Progress: Send + Sync {
    fn total(&self, n: u64);
    fn advance(&self, n: u64);
}

fn evaluate(
    batch: Vec<Raw>,
    chosen: &[Rule],
    cx: &Context,
    dups: &HashSet<String>,
) -> anyhow::Result<Evaluated> {
    let keys = crypto::keys();
    let need_id = chosen.iter().any(|r| {
        matches!(
            r,
            Rule::BirthDateVsId | Rule::SexVsId | Rule::IdNumberInvalid
        )
    });
    let need_phone = chosen.contains(&Rule::PhoneMissing);
    let mut findings = Vec::new();
    let members = batch.len() as u64;
    for r in batch {
        let id_number = if need_id {
            keys.open(Column::MembersIdNumber, &r.id_number)?
        } else {
            String::new()
        };
        let phone = if need_phone {
            keys.open(Column::MembersPhone, &r.phone)?
        } else {
            String::new()
        };
        let s = Subject {
            id_number: &id_number,
            sex: &r.sex,
            ethnicity: &r.ethnicity,
            education: &r.education,
            address: &r.address,
            phone: &phone,
            birth_date: &r.birth_date,
            joined_on: &r.joined_on,
            full_on: r.full_on.as_deref(),
            category: &r.category,
            lost_contact: r.lost_contact,
            id_duplicate: r.id_number_idx.as_ref().is_some_and(|i| dups.contains(i)),
        };
        for f in rules::check_all(chosen, &s, cx) {
            findings.push(Out {
                member_id: r.id.clone(),
                org_code: r.org_code.clone(),
                rule: f.rule,
                explanation: f.explanation,
            });
        }
    }
    Ok(Evaluated { members, findings })
}

async fn write_findings(db: &Db, check_id: &str, findings: &[Out]) -> Result<(), sqlx::Error> {
    if findings.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for chunk in findings.chunks(INSERT_ROWS) {
        let mut sql = Sql::rows(
            db.engine,
            "INSERT INTO quality_findings (check_id, member_id, org_code, rule, level, explanation) VALUES ",
        );
        for (i, f) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(check_id)
                .push(", ")
                .bind(f.member_id.clone())
                .push(", ")
                .bind(f.org_code.clone())
                .push(", ")
                .bind(f.rule.id())
                .push(", ")
                .bind(f.rule.level().as_str())
                .push(", ")
                .bind(f.explanation.clone())
                .push(")");
        }
        sql.query().execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Runs a batch check to its end: counts the subtree, finds the duplicated blind indexes,
/// streams the members, evaluates and writes the findings, and stores the summary.
pub async fn run_check(
    db: &Db,
    check: &CheckRow,
    progress: Arc<dyn Progress>,
) -> anyhow::Result<Summary> {
    use futures_util::TryStreamExt;
    let started = std::time::Instant::now();
    let chosen = check.rule_list();
    let upper = subtree_upper(&check.org_code);
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE org_code >= $1 AND org_code < $2")
            .bind(&check.org_code)
            .bind(&upper)
            .fetch_one(db.read())
            .await?;
    progress.total(total as u64);
    // 党内身份证重复: blind indexes carried by more than one living member (the unique index
    // normally prevents it; data carried over from old systems may not).
    let dups: HashSet<String> = if chosen.contains(&Rule::IdNumberDuplicate) {
        sqlx::query_scalar(
            "SELECT id_number_idx FROM members WHERE id_number_idx IS NOT NULL \
             GROUP BY id_number_idx HAVING COUNT(*) > 1",
        )
        .fetch_all(db.read())
        .await?
        .into_iter()
        .collect()
    } else {
        HashSet::new()
    };
    let cx = Arc::new(Context {
        today: crate::db::today(),
        periods: age_periods(&periods(db).await?),
    });
    let dups = Arc::new(dups);
    let chosen = Arc::new(chosen);

    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<Vec<Raw>>(4);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<anyhow::Result<Evaluated>>(4);
    // Evaluate on a blocking thread while the stream is read and the findings written.
    let evaluator = {
        let (cx, dups, chosen) = (cx.clone(), dups.clone(), chosen.clone());
        tokio::task::spawn_blocking(move || {
            while let Some(batch) = raw_rx.blocking_recv() {
                let r = evaluate(batch, &chosen, &cx, &dups);
                let failed = r.is_err();
                if out_tx.blocking_send(r).is_err() || failed {
                    break;
                }
            }
        })
    };
    let writer = {
        let db = db.clone();
        let check_id = check.id.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut levels: BTreeMap<Level, (i64, HashSet<String>)> = BTreeMap::new();
            let mut per_rule: HashMap<Rule, i64> = HashMap::new();
            let mut concerned: HashSet<String> = HashSet::new();
            let mut members = 0i64;
            let mut findings = 0i64;
            while let Some(r) = out_rx.recv().await {
                let e = r?;
                write_findings(&db, &check_id, &e.findings).await?;
                for f in &e.findings {
                    let l = levels.entry(f.rule.level()).or_default();
                    l.0 += 1;
                    l.1.insert(f.member_id.clone());
                    *per_rule.entry(f.rule).or_default() += 1;
                    concerned.insert(f.member_id.clone());
                }
                members += e.members as i64;
                findings += e.findings.len() as i64;
                progress.advance(e.members);
            }
            Ok::<_, anyhow::Error>(Summary {
                members_checked: members,
                findings,
                members_with_findings: concerned.len() as i64,
                levels: Level::ALL
                    .iter()
                    .map(|l| {
                        let (n, m) = levels
                            .get(l)
                            .map(|(n, m)| (*n, m.len() as i64))
                            .unwrap_or((0, 0));
                        LevelCount {
                            level: *l,
                            level_label: l.label().into(),
                            findings: n,
                            members: m,
                        }
                    })
                    .collect(),
                rules: Rule::ALL
                    .iter()
                    .filter(|r| per_rule.contains_key(r))
                    .map(|r| RuleCount {
                        rule: *r,
                        rule_name: r.name().into(),
                        findings: per_rule[r],
                    })
                    .collect(),
                seconds: 0.0,
            })
        })
    };

    // The reads. On SQLite a large subtree is read from the table itself in windows of rowids,
    // without the org_code index (a million lookups from the index into the table cost more
    // than reading the table), each window as one JSON array that SQLite builds: a row at a
    // time through the driver, every value was copied three times and every row handed from
    // the connection's thread to the runtime's, which cost more than the rules
    // (docs/benchmarks.md §7c). Two connections take alternate windows.
    // Anywhere else (PostgreSQL, or a small subtree): one stream through the index.
    const FIELDS: &str = "id, org_code, id_number, id_number_idx, sex, ethnicity, \
        birth_date, education, category, joined_on, full_on, phone, address, lost_contact";
    let all: i64 = if db.engine == crate::db::Engine::Sqlite {
        sqlx::query_scalar("SELECT COUNT(*) FROM members")
            .fetch_one(db.read())
            .await?
    } else {
        0
    };
    let windows = db.engine == crate::db::Engine::Sqlite && total * 3 > all;
    let streams: Vec<_> = if windows {
        let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM members")
            .fetch_one(db.read())
            .await?;
        let sql = format!(
            "SELECT json_group_array(json_array({FIELDS})) FROM members NOT INDEXED \
             WHERE rowid > $1 AND rowid <= $2 AND org_code >= $3 AND org_code < $4"
        );
        const READERS: i64 = 2;
        // Small tables too are read in several windows, by both readers.
        let window = (max / 16).clamp(1, BATCH as i64);
        (0..READERS)
            .map(|k| {
                let (raw_tx, sql, db) = (raw_tx.clone(), sql.clone(), db.clone());
                let (lo, hi) = (check.org_code.clone(), upper.clone());
                tokio::spawn(async move {
                    let mut from = k * window;
                    while from < max {
                        let json: String = sqlx::query_scalar(&sql)
                            .bind(from)
                            .bind(from + window)
                            .bind(&lo)
                            .bind(&hi)
                            .fetch_one(db.read())
                            .await?;
                        let batch: Vec<Raw> = serde_json::from_str(&json)?;
                        if !batch.is_empty() && raw_tx.send(batch).await.is_err() {
                            return Ok(());
                        }
                        from += READERS * window;
                    }
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect()
    } else {
        let sql = format!(
            "SELECT {FIELDS} FROM members WHERE org_code >= $1 AND org_code < $2 ORDER BY org_code"
        );
        let (raw_tx, db) = (raw_tx.clone(), db.clone());
        let (lo, hi) = (check.org_code.clone(), upper.clone());
        vec![tokio::spawn(async move {
            let mut stream = sqlx::query(&sql).bind(lo).bind(hi).fetch(db.read());
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = stream.try_next().await? {
                batch.push(Raw {
                    id: row.try_get(0)?,
                    org_code: row.try_get(1)?,
                    id_number: row.try_get(2)?,
                    id_number_idx: row.try_get(3)?,
                    sex: row.try_get(4)?,
                    ethnicity: row.try_get(5)?,
                    birth_date: row.try_get(6)?,
                    education: row.try_get(7)?,
                    category: row.try_get(8)?,
                    joined_on: row.try_get(9)?,
                    full_on: row.try_get(10)?,
                    phone: row.try_get(11)?,
                    address: row.try_get(12)?,
                    lost_contact: row.try_get::<i64, _>(13)? != 0,
                });
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if raw_tx.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !batch.is_empty() {
                let _ = raw_tx.send(batch).await;
            }
            Ok::<_, anyhow::Error>(())
        })]
    };
    drop(raw_tx);
    let read = async {
        for r in futures_util::future::join_all(streams).await {
            r??;
        }
        Ok::<_, anyhow::Error>(())
    };
    let read_result = read.await;
    evaluator.await?;
    let mut summary = writer.await??;
    read_result?;
    summary.seconds = started.elapsed().as_secs_f64();
    sqlx::query(
        "UPDATE quality_checks SET state = 'finished', members_checked = $1, findings = $2, \
         summary = $3, finished_at = $4 WHERE id = $5",
    )
    .bind(summary.members_checked)
    .bind(summary.findings)
    .bind(serde_json::to_string(&summary)?)
    .bind(now_rfc3339())
    .bind(&check.id)
    .execute(db.write())
    .await?;
    Ok(summary)
}

/// Marks a check failed (its findings so far are removed).
pub async fn fail_check(db: &Db, check_id: &str, message: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM quality_findings WHERE check_id = $1")
        .bind(check_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE quality_checks SET state = 'failed', message = $1, finished_at = $2 WHERE id = $3",
    )
    .bind(message)
    .bind(now_rfc3339())
    .bind(check_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

// ---- results

/// Which findings a result view reads.
#[derive(Debug, Clone)]
pub struct ResultFilter {
    pub check_id: String,
    /// The selected organisation's unified code (within the check's subtree).
    pub org_code: String,
    /// Only members kept in the organisation itself (not below it).
    pub self_only: bool,
    pub rule: Option<Rule>,
    pub level: Option<Level>,
}

fn push_where(sql: &mut Sql, f: &ResultFilter) {
    sql.push(" WHERE f.check_id = ").bind(f.check_id.clone());
    if f.self_only {
        sql.push(" AND f.org_code = ").bind(f.org_code.clone());
    } else {
        sql.push(" AND f.org_code >= ")
            .bind(f.org_code.clone())
            .push(" AND f.org_code < ")
            .bind(subtree_upper(&f.org_code));
    }
    if let Some(r) = f.rule {
        sql.push(" AND f.rule = ").bind(r.id());
    }
    if let Some(l) = f.level {
        sql.push(" AND f.level = ").bind(l.as_str());
    }
}

/// A member with its findings in a check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberFindings {
    pub member_id: String,
    /// Empty when the member has left the living database since the check
    pub name: String,
    /// 所在党支部
    pub branch_name: String,
    /// 公民身份证号 (masked)
    pub id_number: String,
    pub lost_contact: bool,
    /// 入党日期
    pub joined_on: String,
    pub errors: i64,
    pub warnings: i64,
    pub reminders: i64,
    pub findings: Vec<FindingView>,
}

/// One page of the members with findings matching the filter, in unified-code order, each
/// with every finding of the check.
pub async fn member_findings(
    db: &Db,
    f: &ResultFilter,
    limit: i64,
    offset: i64,
) -> ApiResult<(Vec<MemberFindings>, i64)> {
    let mut count = Sql::new("SELECT COUNT(DISTINCT f.member_id) FROM quality_findings f");
    push_where(&mut count, f);
    let total: i64 = count.scalar().fetch_one(db.read()).await?;
    let mut sql = Sql::new("SELECT f.member_id, MIN(f.org_code) AS oc FROM quality_findings f");
    push_where(&mut sql, f);
    sql.push(&format!(
        " GROUP BY f.member_id ORDER BY oc, f.member_id LIMIT {limit} OFFSET {offset}"
    ));
    let ids: Vec<(String, String)> = sql.query_as().fetch_all(db.read()).await?;
    if ids.is_empty() {
        return Ok((Vec::new(), total));
    }
    let mut all = Sql::new(
        "SELECT f.member_id, f.rule, f.explanation FROM quality_findings f WHERE f.check_id = ",
    );
    all.bind(f.check_id.clone()).push(" AND f.member_id IN (");
    for (i, (id, _)) in ids.iter().enumerate() {
        if i > 0 {
            all.push(", ");
        }
        all.bind(id.clone());
    }
    all.push(")");
    let rows: Vec<(String, String, String)> = all.query_as().fetch_all(db.read()).await?;
    let mut by_member: HashMap<String, Vec<FindingView>> = HashMap::new();
    for (mid, rule, explanation) in rows {
        if let Some(r) = Rule::parse(&rule) {
            by_member
                .entry(mid)
                .or_default()
                .push(FindingView::new(r, explanation));
        }
    }
    let mut people = Sql::new(
        "SELECT m.id, m.name, m.id_number, m.lost_contact, m.joined_on, o.name FROM members m \
         JOIN orgs o ON o.id = m.branch_id WHERE m.id IN (",
    );
    for (i, (id, _)) in ids.iter().enumerate() {
        if i > 0 {
            people.push(", ");
        }
        people.bind(id.clone());
    }
    people.push(")");
    let found: Vec<(String, String, String, i64, String, String)> =
        people.query_as().fetch_all(db.read()).await?;
    let found: HashMap<String, (String, String, i64, String, String)> = found
        .into_iter()
        .map(|(id, n, idn, lc, j, b)| (id, (n, idn, lc, j, b)))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for (id, _) in ids {
        let mut findings = by_member.remove(&id).unwrap_or_default();
        findings.sort_by_key(|f| Rule::ALL.iter().position(|r| *r == f.rule));
        let n = |l: Level| findings.iter().filter(|f| f.level == l).count() as i64;
        let (errors, warnings, reminders) =
            (n(Level::Error), n(Level::Warning), n(Level::Reminder));
        let (name, id_number, lost, joined_on, branch_name) = match found.get(&id) {
            Some((n, idn, lc, j, b)) => (
                n.clone(),
                crate::member::idcard::mask(&crypto::open(Column::MembersIdNumber, idn)?),
                *lc != 0,
                j.clone(),
                b.clone(),
            ),
            None => Default::default(),
        };
        out.push(MemberFindings {
            member_id: id,
            name,
            branch_name,
            id_number,
            lost_contact: lost,
            joined_on,
            errors,
            warnings,
            reminders,
            findings,
        });
    }
    Ok((out, total))
}

/// An organisation of a report row: the selected one's direct children (subtree totals), the
/// selected one itself when members are kept in it directly, and the total.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowOrg {
    /// Empty for the total row 合计
    pub org_id: String,
    pub org_code: String,
    pub name: String,
    /// true: only members kept in this organisation itself 本级
    pub self_only: bool,
}

/// The rows of a report: 合计, 本级 (when it has findings), then each direct child.
pub async fn report_orgs(db: &Db, org: &crate::org::OrgRow) -> ApiResult<Vec<RowOrg>> {
    let children: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, code, name FROM orgs WHERE parent_id = $1 ORDER BY code")
            .bind(&org.id)
            .fetch_all(db.read())
            .await?;
    let mut rows = vec![
        RowOrg {
            org_id: org.id.clone(),
            org_code: org.code.clone(),
            name: "合计".into(),
            self_only: false,
        },
        RowOrg {
            org_id: org.id.clone(),
            org_code: org.code.clone(),
            name: format!("{}（本级）", org.name),
            self_only: true,
        },
    ];
    rows.extend(children.into_iter().map(|(id, code, name)| RowOrg {
        org_id: id,
        org_code: code,
        name,
        self_only: false,
    }));
    Ok(rows)
}

/// Per level: findings and members concerned, for one row.
pub async fn level_counts(db: &Db, f: &ResultFilter) -> ApiResult<Vec<LevelCount>> {
    let mut sql =
        Sql::new("SELECT f.level, COUNT(*), COUNT(DISTINCT f.member_id) FROM quality_findings f");
    push_where(&mut sql, f);
    sql.push(" GROUP BY f.level");
    let rows: Vec<(String, i64, i64)> = sql.query_as().fetch_all(db.read()).await?;
    Ok(Level::ALL
        .iter()
        .map(|l| {
            let (n, m) = rows
                .iter()
                .find(|(s, _, _)| s == l.as_str())
                .map(|(_, n, m)| (*n, *m))
                .unwrap_or((0, 0));
            LevelCount {
                level: *l,
                level_label: l.label().into(),
                findings: n,
                members: m,
            }
        })
        .collect())
}

/// Per rule: findings (one per member and rule), for one row.
pub async fn rule_counts(db: &Db, f: &ResultFilter) -> ApiResult<HashMap<Rule, i64>> {
    let mut sql = Sql::new("SELECT f.rule, COUNT(*) FROM quality_findings f");
    push_where(&mut sql, f);
    sql.push(" GROUP BY f.rule");
    let rows: Vec<(String, i64)> = sql.query_as().fetch_all(db.read()).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(r, n)| Some((Rule::parse(&r)?, n)))
        .collect())
}
