//! The audit log 安全审计: append-only, hash-chained records written in the same transaction
//! as the change they describe.

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
        }
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

/// The hash of one record: SHA-256 over the previous hash and the record's fields.
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
    let hash = record_hash(
        &prev_hash,
        seq,
        &at,
        who,
        event.action,
        event.target,
        outcome,
        &event.detail,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor_account_id, actor_name, role, org_id, client_addr, \
         cert_serial, action, target, outcome, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
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

/// Walks the chain from the start; returns the sequence number of the first broken record.
pub async fn verify(db: &crate::db::Db) -> Result<Option<i64>, sqlx::Error> {
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
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, actor_account_id, actor_name, role, org_id, client_addr, cert_serial, \
         action, target, outcome, detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(db.read())
    .await?;
    let mut expected_prev: Option<String> = None;
    for r in rows {
        let who = Who {
            account_id: r.2,
            name: r.3,
            role: r.4,
            org_id: r.5,
            client_addr: r.6,
            cert_serial: r.7,
        };
        if let Some(prev) = &expected_prev {
            if prev != &r.12 {
                return Ok(Some(r.0));
            }
        }
        let hash = record_hash(&r.12, r.0, &r.1, &who, &r.8, &r.9, &r.10, &r.11);
        if hash != r.13 {
            return Ok(Some(r.0));
        }
        expected_prev = Some(r.13);
    }
    Ok(None)
}
