//! Reads of the statistics: the tally of a subtree, the boundary months of the age bands,
//! registration and the ledger. Every input is a bind value; codes come from `orgs`.

use chrono::NaiveDate;

use super::rules::{self, AGE_BANDS, JOIN_BANDS, UNKNOWN};
use super::{Breakdown, ChangeStats, ChildRow, Count, MemberStats, RegistrationRow};
use crate::access::Allowed;
use crate::db::{subtree_upper, Db, Tx};
use crate::member::dict;
use crate::org::OrgRow;

/// A direct child organisation: id, unified code, name.
pub type Child = (String, String, String);

/// The direct children of an organisation (active ones, and any other still holding members).
pub async fn children(db: &Db, parent_id: &str) -> Result<Vec<(Child, bool)>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, code, name, status FROM orgs WHERE parent_id = $1 ORDER BY code",
    )
    .bind(parent_id)
    .fetch_all(db.read())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, name, status)| ((id, code, name), status == "active"))
        .collect())
}

/// The tally of a subtree: (dim, value, count), net-zero values left out.
pub async fn tally(db: &Db, code: &str) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT dim, val, CAST(SUM(n) AS BIGINT) FROM member_tally \
         WHERE org_code >= $1 AND org_code < $2 GROUP BY dim, val HAVING SUM(n) <> 0",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(db.read())
    .await
}

/// Category and sex counts per branch code of a subtree.
pub async fn per_branch(
    db: &Db,
    code: &str,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT org_code, dim, val, n FROM member_tally \
         WHERE org_code >= $1 AND org_code < $2 AND dim IN ('category', 'sex') AND n <> 0",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(db.read())
    .await
}

/// Living members of a subtree born between two dates (inclusive, 'YYYY-MM-DD').
pub async fn born_between(db: &Db, code: &str, from: &str, to: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM members WHERE status = 'normal' AND birth_date >= $1 \
         AND birth_date <= $2 AND org_code >= $3 AND org_code < $4",
    )
    .bind(from)
    .bind(to)
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_one(db.read())
    .await
}

fn label_of(table: &[(&str, &str)], code: &str) -> String {
    dict::label(table, code).unwrap_or(code).to_string()
}

fn sex_label(code: &str) -> String {
    match code {
        "male" => "男".into(),
        "female" => "女".into(),
        other => other.into(),
    }
}

/// Counts of one dimension, largest first (ties by code), labelled.
fn counts(rows: &[(String, String, i64)], dim: &str, label: impl Fn(&str) -> String) -> Vec<Count> {
    let mut out: Vec<Count> = rows
        .iter()
        .filter(|(d, _, _)| d == dim)
        .map(|(_, v, n)| Count {
            key: v.clone(),
            label: if v.is_empty() {
                UNKNOWN.1.to_string()
            } else {
                label(v)
            },
            n: *n,
        })
        .collect();
    out.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
    out
}

/// 党员统计 of `org`'s subtree on `today`.
pub async fn member_stats(
    db: &Db,
    org: &OrgRow,
    today: NaiveDate,
) -> Result<MemberStats, sqlx::Error> {
    let rows = tally(db, &org.code).await?;
    let total: i64 = rows.iter().filter(|r| r.0 == "category").map(|r| r.2).sum();
    let months = |dim: &str| -> Vec<(String, i64)> {
        rows.iter()
            .filter(|r| r.0 == dim)
            .map(|r| (r.1.clone(), r.2))
            .collect()
    };
    let mut partial = Vec::new();
    for b in rules::age_boundaries(today) {
        partial.push(born_between(db, &org.code, &b.from, &b.to).await?);
    }
    let (ages, age_unknown) = rules::age_bands(&months("birth"), &partial, today);
    let mut age: Vec<Count> = AGE_BANDS
        .iter()
        .zip(ages)
        .map(|((k, l, _), n)| Count {
            key: k.to_string(),
            label: l.to_string(),
            n,
        })
        .collect();
    if age_unknown != 0 {
        age.push(Count {
            key: UNKNOWN.0.into(),
            label: UNKNOWN.1.into(),
            n: age_unknown,
        });
    }
    let mut joined: Vec<Count> = JOIN_BANDS
        .iter()
        .map(|(k, l, _)| Count {
            key: k.to_string(),
            label: l.to_string(),
            n: 0,
        })
        .collect();
    let mut join_unknown = 0;
    for (band, n) in months("joined") {
        match JOIN_BANDS.iter().position(|(k, _, _)| *k == band) {
            Some(i) => joined[i].n += n,
            None => join_unknown += n,
        }
    }
    if join_unknown != 0 {
        joined.push(Count {
            key: UNKNOWN.0.into(),
            label: UNKNOWN.1.into(),
            n: join_unknown,
        });
    }
    let mut category = counts(&rows, "category", |c| label_of(&dict::CATEGORIES, c));
    category.sort_by_key(|c| dict::CATEGORIES.iter().position(|(k, _)| *k == c.key));
    let breakdowns = vec![
        Breakdown {
            dim: "category".into(),
            title: "人员类别".into(),
            counts: category,
        },
        Breakdown {
            dim: "sex".into(),
            title: "性别".into(),
            counts: counts(&rows, "sex", sex_label),
        },
        Breakdown {
            dim: "age".into(),
            title: "年龄".into(),
            counts: age,
        },
        Breakdown {
            dim: "education".into(),
            title: "学历".into(),
            counts: counts(&rows, "education", |c| label_of(&dict::EDUCATIONS, c)),
        },
        Breakdown {
            dim: "joined".into(),
            title: "入党时间".into(),
            counts: joined,
        },
        Breakdown {
            dim: "ethnicity".into(),
            title: "民族".into(),
            counts: counts(&rows, "ethnicity", |c| label_of(&dict::ETHNICITIES, c)),
        },
        Breakdown {
            dim: "job".into(),
            title: "工作岗位".into(),
            counts: counts(&rows, "job", |c| label_of(&dict::JOBS, c)),
        },
    ];
    let kids = children(db, &org.id).await?;
    let mut lines: Vec<ChildRow> = kids
        .iter()
        .map(|((id, _, name), _)| ChildRow {
            org_id: Some(id.clone()),
            org_name: name.clone(),
            total: 0,
            full: 0,
            probationary: 0,
            male: 0,
            female: 0,
        })
        .collect();
    let mut own = ChildRow {
        org_id: None,
        org_name: "本级".into(),
        total: 0,
        full: 0,
        probationary: 0,
        male: 0,
        female: 0,
    };
    for (code, dim, val, n) in per_branch(db, &org.code).await? {
        let line = match kids
            .iter()
            .position(|((_, c, _), _)| code.starts_with(c.as_str()))
        {
            Some(i) => &mut lines[i],
            None => &mut own,
        };
        match (dim.as_str(), val.as_str()) {
            ("category", "full") => line.full += n,
            ("category", "probationary") => line.probationary += n,
            ("sex", "male") => line.male += n,
            ("sex", "female") => line.female += n,
            _ => {}
        }
        if dim == "category" {
            line.total += n;
        }
    }
    let mut children: Vec<ChildRow> = lines
        .into_iter()
        .zip(kids.iter())
        .filter(|(l, (_, active))| *active || l.total != 0)
        .map(|(l, _)| l)
        .collect();
    if own.total != 0 {
        children.insert(0, own);
    }
    Ok(MemberStats {
        org_id: org.id.clone(),
        org_name: org.name.clone(),
        as_of: today.format("%Y-%m-%d").to_string(),
        total,
        breakdowns,
        children,
    })
}

/// Living members of a subtree with an activated personal account 党员个人账号 (a live row of
/// `member_accounts`, made by 党员注册), per branch code: read on every request, so a
/// registration counts at once.
pub async fn registered_per_branch(db: &Db, code: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.org_code, COUNT(*) FROM member_accounts a JOIN members m ON m.id = a.member_id \
         WHERE a.status = 'active' AND m.status = 'normal' \
         AND m.org_code >= $1 AND m.org_code < $2 GROUP BY m.org_code",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(db.read())
    .await
}

/// (category, job, members, registered) of the living members of a subtree.
pub async fn registration_split(
    db: &Db,
    code: &str,
) -> Result<Vec<(String, String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.category, m.job, COUNT(*), COUNT(a.id) FROM members m \
         LEFT JOIN member_accounts a ON a.member_id = m.id AND a.status = 'active' \
         WHERE m.status = 'normal' AND m.org_code >= $1 AND m.org_code < $2 \
         GROUP BY m.category, m.job",
    )
    .bind(code)
    .bind(subtree_upper(code))
    .fetch_all(db.read())
    .await
}

const UNREGISTERED: &str = "FROM members m JOIN orgs o ON o.id = m.branch_id \
     WHERE m.status = 'normal' AND m.org_code >= $1 AND m.org_code < $2 AND NOT EXISTS \
     (SELECT 1 FROM member_accounts a WHERE a.member_id = m.id AND a.status = 'active')";

/// The unregistered living members of a subtree, by branch and name: (total, page of
/// (id, name, sealed ID number, branch name, category, job)).
pub async fn unregistered(
    db: &Db,
    code: &str,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<(String, String, String, String, String, String)>), sqlx::Error> {
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {UNREGISTERED}"))
        .bind(code)
        .bind(subtree_upper(code))
        .fetch_one(db.read())
        .await?;
    let rows = sqlx::query_as(&format!(
        "SELECT m.id, m.name, m.id_number, o.name, m.category, m.job {UNREGISTERED} \
         ORDER BY m.org_code, m.sort_pinyin, m.id LIMIT $3 OFFSET $4"
    ))
    .bind(code)
    .bind(subtree_upper(code))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.read())
    .await?;
    Ok((total, rows))
}

/// 注册统计 lines: per child (and 本级), members and registered members.
pub async fn registration(
    db: &Db,
    org: &OrgRow,
) -> Result<(Vec<RegistrationRow>, i64, i64), sqlx::Error> {
    let kids = children(db, &org.id).await?;
    let mut lines: Vec<RegistrationRow> = kids
        .iter()
        .map(|((id, _, name), _)| RegistrationRow {
            org_id: Some(id.clone()),
            org_name: name.clone(),
            members: 0,
            registered: 0,
        })
        .collect();
    let mut own = RegistrationRow {
        org_id: None,
        org_name: "本级".into(),
        members: 0,
        registered: 0,
    };
    let pick = |code: &str| {
        kids.iter()
            .position(|((_, c, _), _)| code.starts_with(c.as_str()))
    };
    for (code, dim, _, n) in per_branch(db, &org.code).await? {
        if dim == "category" {
            match pick(&code) {
                Some(i) => lines[i].members += n,
                None => own.members += n,
            }
        }
    }
    for (code, n) in registered_per_branch(db, &org.code).await? {
        match pick(&code) {
            Some(i) => lines[i].registered += n,
            None => own.registered += n,
        }
    }
    let members = lines.iter().map(|l| l.members).sum::<i64>() + own.members;
    let registered = lines.iter().map(|l| l.registered).sum::<i64>() + own.registered;
    let mut out: Vec<RegistrationRow> = lines
        .into_iter()
        .zip(kids.iter())
        .filter(|(l, (_, active))| *active || l.members != 0)
        .map(|(l, _)| l)
        .collect();
    if own.members != 0 || own.registered != 0 {
        out.insert(0, own);
    }
    Ok((out, members, registered))
}

/// The label of a ledger reason.
fn change_label(counts_as: &str, reason: &str) -> String {
    if counts_as == "transfer_in" {
        return "转入".into();
    }
    if counts_as == "transfer_out" {
        return "转出（平台内）".into();
    }
    if counts_as == "addition" {
        if let Some(k) = crate::approval::Kind::parse(reason) {
            return k.label().to_string();
        }
    }
    if counts_as == "decrease" {
        if let Some(r) = crate::approval::rules::Reason::parse(reason) {
            return r.label().to_string();
        }
    }
    reason.to_string()
}

/// 党员增减 of a Beijing-time year in a subtree. A loss later recovered 找回 is a mistake and
/// not counted (the recovery is no addition either); an entry later deleted as mistaken
/// 党员补删 is not counted as an addition.
pub async fn changes(db: &Db, org: &OrgRow, year: i32) -> Result<ChangeStats, sqlx::Error> {
    let (from, until) = rules::year_range(year);
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT c.change, c.reason, c.counts_as, \
           CAST(SUM(CASE WHEN c.counts_as = 'decrease' AND EXISTS (SELECT 1 FROM member_changes r \
             WHERE r.member_id = c.member_id AND r.change = 'recovered' AND r.at >= c.at AND r.id <> c.id) THEN 1 \
             WHEN c.counts_as = 'addition' AND EXISTS (SELECT 1 FROM member_changes r \
             WHERE r.member_id = c.member_id AND r.change = 'left' AND r.counts_as = 'correction' AND r.at >= c.at) THEN 1 \
             ELSE 0 END) AS BIGINT), COUNT(*) \
         FROM member_changes c WHERE c.org_code >= $1 AND c.org_code < $2 AND c.at >= $3 AND c.at < $4 \
         GROUP BY c.change, c.reason, c.counts_as",
    )
    .bind(&org.code)
    .bind(subtree_upper(&org.code))
    .bind(&from)
    .bind(&until)
    .fetch_all(db.read())
    .await?;
    let mut additions: Vec<Count> = Vec::new();
    let mut decreases: Vec<Count> = Vec::new();
    let (mut recovered, mut corrected) = (0, 0);
    let add = |list: &mut Vec<Count>, key: String, label: String, n: i64| {
        if n == 0 {
            return;
        }
        match list.iter_mut().find(|c| c.key == key) {
            Some(c) => c.n += n,
            None => list.push(Count { key, label, n }),
        }
    };
    for (change, reason, counts_as, cancelled, n) in rows {
        let label = change_label(&counts_as, &reason);
        match counts_as.as_str() {
            "addition" => {
                add(&mut additions, reason.clone(), label, n - cancelled);
            }
            "transfer_in" => add(&mut additions, "transfer_in".into(), label, n),
            "decrease" => {
                recovered += cancelled;
                add(&mut decreases, reason.clone(), label, n - cancelled);
            }
            "transfer_out" => add(&mut decreases, "transfer_out".into(), label, n),
            "correction" if change == "left" => corrected += n,
            _ => {}
        }
    }
    additions.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
    decreases.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.key.cmp(&b.key)));
    Ok(ChangeStats {
        org_id: org.id.clone(),
        org_name: org.name.clone(),
        year,
        added: additions.iter().map(|c| c.n).sum(),
        decreased: decreases.iter().map(|c| c.n).sum(),
        additions,
        decreases,
        recovered,
        corrected,
    })
}

/// A living member as the tally counts it (the columns the triggers of migration 0019 read).
pub struct Tallied<'a> {
    pub org_code: &'a str,
    pub category: &'a str,
    pub sex: &'a str,
    pub ethnicity: &'a str,
    pub education: &'a str,
    pub job: &'a str,
    /// 'YYYY-MM-DD'
    pub birth_date: &'a str,
    /// 'YYYY-MM-DD', `None` when unknown
    pub joined_on: Option<&'a str>,
}

impl Tallied<'_> {
    /// The seven (dimension, value) pairs the triggers count for this member: the same
    /// values as their SQL (`substr(birth_date, 1, 4)`, the join-date band's key or
    /// `unknown`).
    pub fn pairs(&self) -> [(&'static str, &str); 7] {
        let joined = self
            .joined_on
            .and_then(rules::join_band)
            .map_or(UNKNOWN.0, |i| JOIN_BANDS[i].0);
        [
            ("category", self.category),
            ("sex", self.sex),
            ("ethnicity", self.ethnicity),
            ("education", self.education),
            ("job", self.job),
            ("birth", self.birth_date.get(..4).unwrap_or(self.birth_date)),
            ("joined", joined),
        ]
    }
}

/// Replaces the whole tally by the counts of `members`, the living members of a bulk load
/// into an empty table (`demo`) that dropped the tally's triggers: counting a million rows in
/// memory costs a second, where seven upserts per row through the triggers, or seven GROUP BYs
/// over the table, cost tens of seconds. `tallies_stay_exact_*` compare the result with a
/// recount of the table.
pub async fn rebuild_tally<'a>(
    tx: &mut Tx,
    _: &Allowed,
    members: impl IntoIterator<Item = Tallied<'a>>,
) -> Result<(), sqlx::Error> {
    let mut counts: std::collections::HashMap<(&'a str, &'static str, String), i64> =
        std::collections::HashMap::new();
    for m in members {
        for (dim, val) in m.pairs() {
            *counts
                .entry((m.org_code, dim, val.to_string()))
                .or_default() += 1;
        }
    }
    sqlx::query("DELETE FROM member_tally")
        .execute(&mut **tx)
        .await?;
    let rows: Vec<_> = counts.into_iter().collect();
    for chunk in rows.chunks(500) {
        let mut sql = crate::db::Sql::rows(
            crate::db::engine_of(tx),
            "INSERT INTO member_tally (org_code, dim, val, n) VALUES ",
        );
        for (i, ((org, dim, val), n)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(*org)
                .push(", ")
                .bind(*dim)
                .push(", ")
                .bind(val.clone())
                .push(", ")
                .bind_int(*n)
                .push(")");
        }
        sql.query().execute(&mut **tx).await?;
    }
    Ok(())
}
