//! The audit log 安全审计: append-only, hash-chained records written in the same transaction
//! as the change they describe.
//!
//! Retention: [`prune`] deletes the records older than the retention period (at least
//! [`MIN_RETENTION_DAYS`]) and leaves an anchor (sequence number and hash of the last pruned
//! record) in `audit_anchor`, announced by the `audit.prune` record appended just before it;
//! [`verify_report`] resumes the chain from the newest anchor only when the chain holds that
//! record. Database triggers refuse every UPDATE of `audit_log` and every DELETE except
//! pruning's, which opens the gate row `audit_prune_gate` inside its own transaction and
//! deletes only records covered by an anchor; they also guard the head (it only advances with
//! the chain), the gate (it opens only to the newest anchor) and the anchors (only right after
//! the announcing record). Someone who can drop triggers can still rewrite the chain
//! consistently: [`witness`] signs its head outside the database, and [`verify_with`]
//! compares.
//!
//! Scope: records carry the unified codes of the actor's scope organisation and of the
//! target's organisation (`actor_org_code`, `target_org_code`), so that an auditor sees its
//! subtree only (`access::audit_scope`).

pub mod handshakes;
pub mod query;
pub mod refusals;
pub mod routes;
pub mod witness;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::access::Actor;
use crate::db::{now_rfc3339, Tx};

/// Who did it, from where.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub account_id: Option<String>,
    pub name: String,
    pub role: String,
    pub org_id: Option<String>,
    pub client_addr: String,
    pub cert_serial: Option<String>,
    /// Unified code of the actor's scope organisation (an auditor of that subtree sees the
    /// record).
    pub org_code: Option<String>,
}

impl From<&Actor> for Who {
    fn from(a: &Actor) -> Self {
        Who {
            account_id: Some(a.account_id.clone()),
            name: a.name.clone(),
            role: a.role.as_str().to_string(),
            org_id: Some(a.org_id.clone()),
            client_addr: a.client_addr.clone(),
            cert_serial: a.cert_serial.clone(),
            org_code: Some(a.org_code.clone()),
        }
    }
}

impl Who {
    /// Someone not (yet) signed in.
    pub fn anonymous(client_addr: &str) -> Self {
        Who {
            client_addr: client_addr.to_string(),
            ..Who::default()
        }
    }

    /// The platform itself (init, demo, migrations).
    pub fn system() -> Self {
        Who {
            name: "system".to_string(),
            role: "system".to_string(),
            ..Who::default()
        }
    }
}

/// What was done to what, and how it ended.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: Outcome,
    pub detail: String,
    /// Unified code of the organisation the target belongs to; when absent, [`append`] looks
    /// the target id up among organisations, members, units and grants.
    pub target_org: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Refused,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

impl<'a> Event<'a> {
    pub fn ok(action: &'a str, target: &'a str) -> Self {
        Event {
            action,
            target,
            outcome: Outcome::Success,
            detail: String::new(),
            target_org: None,
        }
    }

    /// The target belongs to the organisation with this unified code.
    pub fn in_org(mut self, code: impl Into<String>) -> Self {
        self.target_org = Some(code.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// The hash of one record: SHA-256 over the previous hash and the record's fields. The scope
/// codes (added later) are hashed only when the record has one, so older records keep their
/// hashes.
#[allow(clippy::too_many_arguments)]
pub fn record_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    who: &Who,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
    target_org: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash,
        &seq.to_string(),
        at,
        who.account_id.as_deref().unwrap_or(""),
        &who.name,
        &who.role,
        who.org_id.as_deref().unwrap_or(""),
        &who.client_addr,
        who.cert_serial.as_deref().unwrap_or(""),
        action,
        target,
        outcome,
        detail,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    if who.org_code.is_some() || target_org.is_some() {
        for part in [who.org_code.as_deref(), target_org] {
            h.update(part.unwrap_or("").as_bytes());
            h.update([0x1f]);
        }
    }
    hex::encode(h.finalize())
}

/// Appends one record inside `tx`. The head row is updated first, which serialises writers of
/// the chain on both engines.
pub async fn append(tx: &mut Tx, who: &Who, event: Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let (seq, prev_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
    let at = now_rfc3339();
    let outcome = event.outcome.as_str();
    let target_org = match event.target_org.clone() {
        Some(code) => Some(code),
        None => target_org_code(tx, event.target).await?,
    };
    let hash = record_hash(
        &prev_hash,
        seq,
        &at,
        who,
        event.action,
        event.target,
        outcome,
        &event.detail,
        target_org.as_deref(),
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor_account_id, actor_name, role, org_id, client_addr, \
         cert_serial, action, target, outcome, detail, prev_hash, hash, actor_org_code, \
         target_org_code) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(seq)
    .bind(&at)
    .bind(who.account_id.clone())
    .bind(&who.name)
    .bind(&who.role)
    .bind(who.org_id.clone())
    .bind(&who.client_addr)
    .bind(who.cert_serial.clone())
    .bind(event.action)
    .bind(event.target)
    .bind(outcome)
    .bind(&event.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .bind(who.org_code.clone())
    .bind(target_org)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The unified code of the organisation a target id belongs to: the organisation itself, a
/// member's branch, a unit's owner or a grant's scope (one indexed lookup each; `None` for
/// paths, masked ID numbers and the like).
async fn target_org_code(tx: &mut Tx, target: &str) -> Result<Option<String>, sqlx::Error> {
    if target.is_empty() || target.starts_with('/') || target.len() > 64 {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT code FROM orgs WHERE id = $1 \
         UNION ALL SELECT org_code FROM members WHERE id = $1 \
         UNION ALL SELECT owner_code FROM units WHERE id = $1 \
         UNION ALL SELECT o.code FROM grants g JOIN orgs o ON o.id = g.org_id WHERE g.id = $1",
    )
    .bind(target)
    .fetch_optional(&mut **tx)
    .await
}

/// Appends one record in a transaction of its own (sign-in attempts, refusals, views).
pub async fn append_alone(
    db: &crate::db::Db,
    who: &Who,
    event: Event<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    append(&mut tx, who, event).await?;
    tx.commit().await
}

/// The `prev_hash` of the very first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where the chain resumes after pruning: the last pruned record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Anchor {
    /// sequence number of the last pruned record
    pub seq: i64,
    /// its hash: the `prev_hash` of the first record kept
    pub hash: String,
    /// when the pruning ran (RFC 3339)
    pub at: String,
    /// records older than this were pruned (RFC 3339)
    pub cutoff: String,
    /// how many records that pruning deleted
    pub pruned_count: i64,
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// every record checked links to its predecessor and hashes to its stored hash
    pub intact: bool,
    /// sequence number of the first broken (or missing) record
    pub first_broken: Option<i64>,
    /// how many records were checked
    pub records: i64,
    /// the anchor the walk started from (null when nothing was ever pruned)
    pub anchor: Option<Anchor>,
    /// why the chain is not intact: one line, Chinese then English
    pub reason: Option<String>,
    /// the newest sequence number the witness file names (when one was compared)
    pub last_witnessed: Option<i64>,
}

/// The detail of the `audit.prune` record that announces an anchor; the database refuses an
/// anchor without it, and [`verify_report`] does not resume from one without it.
pub fn prune_detail(a: &Anchor) -> String {
    format!(
        "pruned {} records up to seq {} (written before {}); anchor hash {}",
        a.pruned_count, a.seq, a.cutoff, a.hash
    )
}

/// The newest anchor, if the log was ever pruned.
pub async fn latest_anchor<'e, E>(exec: E) -> Result<Option<Anchor>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<(i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT seq, hash, at, cutoff, pruned_count FROM audit_anchor ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(exec)
    .await?;
    Ok(row.map(|r| Anchor {
        seq: r.0,
        hash: r.1,
        at: r.2,
        cutoff: r.3,
        pruned_count: r.4,
    }))
}

/// Records are read in chunks of this many while walking the chain.
const VERIFY_CHUNK: i64 = 5000;

/// Walks the chain from the newest anchor (or from the start); returns the sequence number of
/// the first broken record.
pub async fn verify(db: &crate::db::Db) -> Result<Option<i64>, sqlx::Error> {
    Ok(verify_report(db).await?.first_broken)
}

/// [`verify_with`] without a witness.
pub async fn verify_report(db: &crate::db::Db) -> Result<VerifyReport, sqlx::Error> {
    verify_with(db, None).await
}

/// Walks the chain from the newest anchor (or from the start): the anchor must be announced by
/// an `audit.prune` record of the chain, every record must follow its predecessor's sequence
/// number, carry its hash as `prev_hash` and hash to its stored hash, and the chain must reach
/// the head row. With a witness (heads signed outside the database), the head must not lie
/// below the newest witnessed head and every witnessed record still in the chain must carry
/// the witnessed hash. Reads in chunks, so memory stays flat.
pub async fn verify_with(
    db: &crate::db::Db,
    witness: Option<&witness::Witnessed>,
) -> Result<VerifyReport, sqlx::Error> {
    type Row = (
        i64,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    // The head first: records committed later only extend what it names.
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(db.read())
            .await?;
    let anchor = latest_anchor(db.read()).await?;
    let last_witnessed = witness.and_then(|w| w.last.as_ref().map(|l| l.seq));
    let mut records = 0i64;
    let broken = |seq: i64, records: i64, reason: String| VerifyReport {
        intact: false,
        first_broken: Some(seq),
        records,
        anchor: anchor.clone(),
        reason: Some(reason),
        last_witnessed,
    };
    if let Some(last) = witness.and_then(|w| w.last.as_ref()) {
        if last.seq > head_seq {
            return Ok(broken(
                head_seq + 1,
                0,
                format!(
                    "审计链末尾被删除或数据库被回退：链尾为第 {head_seq} 条，而见证文件已于 {} 见证到第 {} 条 / \
                     audit chain tail deleted or database rolled back: the chain ends at seq {head_seq}, \
                     but seq {} was witnessed at {}",
                    last.at, last.seq, last.seq, last.at
                ),
            ));
        }
    }
    let (mut last_seq, mut expected_prev) = match &anchor {
        Some(a) => {
            let announced: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM audit_log WHERE action = 'audit.prune' AND role = 'system' \
                 AND seq > $1 AND detail = $2 ORDER BY seq LIMIT 1",
            )
            .bind(a.seq)
            .bind(prune_detail(a))
            .fetch_optional(db.read())
            .await?;
            if announced.is_none() {
                return Ok(broken(
                    a.seq,
                    0,
                    format!(
                        "清理锚点（第 {} 条）在审计链中没有对应的 audit.prune 记录，锚点是伪造的，此前的记录被删除 / \
                         the prune anchor at seq {} is not announced by an audit.prune record of the chain: \
                         it was forged and the records before it deleted",
                        a.seq, a.seq
                    ),
                ));
            }
            if let Some(h) = witness.and_then(|w| w.heads.get(&a.seq)) {
                if *h != a.hash {
                    return Ok(broken(a.seq, 0, replaced(a.seq)));
                }
            }
            (a.seq, a.hash.clone())
        }
        None => (0, GENESIS_HASH.to_string()),
    };
    loop {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, at, actor_account_id, actor_name, role, org_id, client_addr, cert_serial, \
             action, target, outcome, detail, prev_hash, hash, actor_org_code, target_org_code \
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(last_seq)
        .bind(VERIFY_CHUNK)
        .fetch_all(db.read())
        .await?;
        let done = (rows.len() as i64) < VERIFY_CHUNK;
        for r in rows {
            if r.0 != last_seq + 1 {
                let seq = last_seq + 1;
                return Ok(broken(seq, records, missing(seq)));
            }
            records += 1;
            let who = Who {
                account_id: r.2,
                name: r.3,
                role: r.4,
                org_id: r.5,
                client_addr: r.6,
                cert_serial: r.7,
                org_code: r.14,
            };
            if r.12 != expected_prev {
                return Ok(broken(r.0, records, altered(r.0)));
            }
            let hash = record_hash(
                &r.12,
                r.0,
                &r.1,
                &who,
                &r.8,
                &r.9,
                &r.10,
                &r.11,
                r.15.as_deref(),
            );
            if hash != r.13 || (r.0 == head_seq && r.13 != head_hash) {
                return Ok(broken(r.0, records, altered(r.0)));
            }
            if let Some(h) = witness.and_then(|w| w.heads.get(&r.0)) {
                if *h != r.13 {
                    return Ok(broken(r.0, records, replaced(r.0)));
                }
            }
            last_seq = r.0;
            expected_prev = r.13;
        }
        if done {
            break;
        }
    }
    if last_seq < head_seq {
        // The newest records are gone.
        let seq = last_seq + 1;
        return Ok(broken(seq, records, missing(seq)));
    }
    Ok(VerifyReport {
        intact: true,
        first_broken: None,
        records,
        anchor,
        reason: None,
        last_witnessed,
    })
}

fn missing(seq: i64) -> String {
    format!("第 {seq} 条记录缺失 / record {seq} is missing")
}

fn altered(seq: i64) -> String {
    format!("第 {seq} 条记录被篡改（哈希不符）/ record {seq} was altered (hash mismatch)")
}

fn replaced(seq: i64) -> String {
    format!(
        "第 {seq} 条记录与见证文件中签名的哈希不符，审计链被替换 / record {seq} differs from the hash \
         the witness signed: the chain was replaced"
    )
}

/// Default retention of audit records, in days (SPEC §12: at least six months).
pub const DEFAULT_RETENTION_DAYS: u32 = 180;
/// Shortest retention [`prune`] accepts, in days.
pub const MIN_RETENTION_DAYS: u32 = 180;

/// What a pruning did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// records older than this were deleted (RFC 3339)
    pub cutoff: String,
    /// how many records were deleted
    pub pruned: i64,
    /// the anchor this pruning left (None when nothing was old enough)
    pub anchor: Option<Anchor>,
}

/// Deletes the audit records older than `retention_days` (at least [`MIN_RETENTION_DAYS`]),
/// leaving an anchor so that [`verify`] still proves the rest of the chain, and appends an
/// `audit.prune` record. Refuses when the chain is broken, so that pruning never hides
/// tampering.
pub async fn prune(db: &crate::db::Db, retention_days: u32) -> anyhow::Result<PruneReport> {
    if retention_days < MIN_RETENTION_DAYS {
        anyhow::bail!(
            "audit retention must be at least {MIN_RETENTION_DAYS} days (SPEC §12), got {retention_days}"
        );
    }
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(retention_days));
    prune_older_than(db, cutoff).await
}

/// The step behind [`prune`] without the minimum retention: deletes every record written
/// before `cutoff` (a prefix of the chain, since records are appended in time order).
pub async fn prune_older_than(
    db: &crate::db::Db,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<PruneReport> {
    let report = verify_report(db).await?;
    if let Some(seq) = report.first_broken {
        anyhow::bail!(
            "the audit chain is broken at record {seq}; pruning refused so that the evidence is kept"
        );
    }
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut tx = db.begin().await?;
    // Take the chain's lock first: nothing is appended while the anchor is chosen.
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    let upto: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log WHERE at < $1")
        .bind(&cutoff)
        .fetch_one(&mut *tx)
        .await?;
    let mut anchor = None;
    let mut pruned = 0;
    if let Some(upto) = upto {
        let hash: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(upto)
            .fetch_one(&mut *tx)
            .await?;
        pruned = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE seq <= $1")
            .bind(upto)
            .fetch_one(&mut *tx)
            .await?;
        anchor = Some(Anchor {
            seq: upto,
            hash,
            at: now_rfc3339(),
            cutoff: cutoff.clone(),
            pruned_count: pruned,
        });
    }
    // The record that announces the anchor comes first: the database accepts an anchor only
    // right after it, and `verify` resumes only from an announced anchor.
    let detail = match &anchor {
        Some(a) => prune_detail(a),
        None => format!("no records written before {cutoff}"),
    };
    append(
        &mut tx,
        &Who::system(),
        Event::ok("audit.prune", "audit_log").with_detail(detail),
    )
    .await?;
    if let Some(a) = &anchor {
        sqlx::query(
            "INSERT INTO audit_anchor (seq, hash, at, cutoff, pruned_count) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(a.seq)
        .bind(&a.hash)
        .bind(&a.at)
        .bind(&a.cutoff)
        .bind(a.pruned_count)
        .execute(&mut *tx)
        .await?;
        // Open the gate for this transaction only, delete, close it again.
        sqlx::query("UPDATE audit_prune_gate SET upto = $1 WHERE id = 1")
            .bind(a.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(a.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE audit_prune_gate SET upto = 0 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(PruneReport {
        cutoff,
        pruned,
        anchor,
    })
}
