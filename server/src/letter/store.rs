//! The `letters` table: issue, re-issue, withdraw, receive; the number sequence; the signed
//! JSON document.
//!
//! Numbers are `YYYYMM` (the Beijing month of issue) + a 12-digit sequence per month, taken
//! from `letter_sequences` in SQL (`INSERT … ON CONFLICT DO NOTHING`, then `UPDATE … SET n =
//! n + 1 … RETURNING n`), so concurrent issues never share one; the UNIQUE index on
//! `letters.number` is the backstop. A transfer has at most one live (`issued`) letter (partial
//! unique index `letters_live`). Every state change is a conditional UPDATE from `issued`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::NaiveDate;
use dangjian_certs::letter as canon;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{LetterFields, Status};
use crate::access::{Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The live letter of a transfer.
pub const ISSUED: &str = "issued";
/// Replaced by a re-issue.
pub const SUPERSEDED: &str = "superseded";
/// Withdrawn with its transfer.
pub const WITHDRAWN: &str = "withdrawn";
/// The target side received the member.
pub const RECEIVED: &str = "received";

const COLUMNS: &str = "id, transfer_id, number, state, issue_date, valid_until, validity_days, \
                       fields, signature, signer_certificate, verify_url, created_at";

/// One letter as stored (its fields sealed until [`LetterRow::fields`] opens them).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LetterRow {
    id: String,
    transfer_id: String,
    number: String,
    state: String,
    issue_date: String,
    valid_until: String,
    validity_days: i64,
    fields: String,
    signature: String,
    signer_certificate: String,
    verify_url: String,
    created_at: String,
}

impl LetterRow {
    /// The letter's number, 18 digits (shown 第…号).
    pub fn number(&self) -> &str {
        &self.number
    }
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn transfer_id(&self) -> &str {
        &self.transfer_id
    }
    /// `issued`, `superseded`, `withdrawn` or `received` ([`ISSUED`] …).
    pub fn state(&self) -> &str {
        &self.state
    }
    /// YYYY-MM-DD (Beijing date).
    pub fn issue_date(&self) -> &str {
        &self.issue_date
    }
    /// YYYY-MM-DD: the last day the letter is valid.
    pub fn valid_until(&self) -> &str {
        &self.valid_until
    }
    pub fn validity_days(&self) -> u32 {
        u32::try_from(self.validity_days).unwrap_or(0)
    }
    /// Base64 of the DER signature.
    pub fn signature(&self) -> &str {
        &self.signature
    }
    /// The signer's certificate (PEM).
    pub fn signer_certificate(&self) -> &str {
        &self.signer_certificate
    }
    /// The public verification address (the QR code's content).
    pub fn verify_url(&self) -> &str {
        &self.verify_url
    }
    /// When the row was written (RFC 3339).
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// Past its validity on `today` (the day after `valid_until` and later).
    pub fn expired(&self, today: NaiveDate) -> bool {
        NaiveDate::parse_from_str(&self.valid_until, "%Y-%m-%d").map_or(true, |end| today > end)
    }

    /// The letter's fields (opened).
    pub fn fields(&self) -> ApiResult<LetterFields> {
        let json = crypto::open(Column::LettersFields, &self.fields)?;
        serde_json::from_str(&json).map_err(ApiError::internal)
    }

    /// The exact signed text, rebuilt from the stored items.
    pub fn canonical(&self) -> ApiResult<String> {
        let fields = self.fields()?;
        canonical_of(
            &self.number,
            &self.issue_date,
            &self.valid_until,
            self.validity_days(),
            &fields,
        )
    }

    /// The public verdict on `today`, the letter presented being the stored one.
    pub fn status(&self, today: NaiveDate) -> Status {
        match self.state.as_str() {
            ISSUED if self.expired(today) => Status::Expired,
            ISSUED => Status::Genuine,
            SUPERSEDED => Status::Superseded,
            WITHDRAWN => Status::Withdrawn,
            RECEIVED => Status::Received,
            _ => Status::Unknown,
        }
    }
}

fn canonical_of(
    number: &str,
    issue_date: &str,
    valid_until: &str,
    validity_days: u32,
    fields: &LetterFields,
) -> ApiResult<String> {
    canon::canonical(
        &canon::Header {
            number,
            issue_date,
            valid_until,
            validity_days,
        },
        &fields.as_object(),
    )
    .map_err(|e| ApiError::bad_request(format!("介绍信内容含有不允许的字符：{e}")))
}

/// The letter as its holder downloads it (`GET /api/v1/transfers/{id}/letter`): everything
/// `dangjian-certs verify-letter` needs to check it offline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LetterDocument {
    /// YYYYMM + 12 digits
    pub number: String,
    /// YYYY-MM-DD
    pub issue_date: String,
    /// YYYY-MM-DD, the last valid day
    pub valid_until: String,
    #[serde(deserialize_with = "crate::state::whole_u32")]
    pub validity_days: u32,
    /// the letter's fields (the full ID number: it is the holder's letter)
    pub fields: LetterFields,
    /// the exact signed text (UTF-8 `key=value` lines, see `dangjian_certs::letter`)
    pub canonical: String,
    /// base64 of the DER ECDSA P-256 SHA-256 signature of `canonical`
    pub signature: String,
    /// the signer's certificate (PEM), issued by the platform CA
    pub signer_certificate: String,
    /// the public verification address (the QR code's content)
    pub verify_url: String,
}

/// The signed JSON document of a letter.
pub fn document(row: &LetterRow) -> ApiResult<LetterDocument> {
    Ok(LetterDocument {
        number: row.number.clone(),
        issue_date: row.issue_date.clone(),
        valid_until: row.valid_until.clone(),
        validity_days: row.validity_days(),
        fields: row.fields()?,
        canonical: row.canonical()?,
        signature: row.signature.clone(),
        signer_certificate: row.signer_certificate.clone(),
        verify_url: row.verify_url.clone(),
    })
}

/// The next letter number of the month `YYYYMM`: the sequence row is created race-free, then
/// incremented in SQL.
async fn next_number(tx: &mut Tx, month: &str) -> ApiResult<String> {
    sqlx::query("INSERT INTO letter_sequences (month, n) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(month)
        .execute(&mut **tx)
        .await?;
    let n: i64 =
        sqlx::query_scalar("UPDATE letter_sequences SET n = n + 1 WHERE month = $1 RETURNING n")
            .bind(month)
            .fetch_one(&mut **tx)
            .await?;
    if !(1..=999_999_999_999).contains(&n) {
        return Err(ApiError::conflict(
            "letter_numbers_exhausted",
            "本月介绍信编号已用尽",
        ));
    }
    Ok(format!("{month}{n:012}"))
}

/// Numbers, signs and stores a new live letter of the transfer.
async fn insert(
    tx: &mut Tx,
    state: &AppState,
    transfer_id: &str,
    fields: &LetterFields,
) -> ApiResult<LetterRow> {
    let live: Option<String> =
        sqlx::query_scalar("SELECT number FROM letters WHERE transfer_id = $1 AND state = $2")
            .bind(transfer_id)
            .bind(ISSUED)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(number) = live {
        return Err(ApiError::conflict(
            "letter_exists",
            format!("该转接已开具第{number}号介绍信，如需新的介绍信请重新开具"),
        ));
    }
    let today = crate::db::today();
    let days = state.config.file.letter_validity_days.max(1);
    let valid_until = today + chrono::Duration::days(i64::from(days));
    let issue_date = today.format("%Y-%m-%d").to_string();
    let valid_until = valid_until.format("%Y-%m-%d").to_string();
    let number = next_number(tx, &today.format("%Y%m").to_string()).await?;
    let text = canonical_of(&number, &issue_date, &valid_until, days, fields)?;
    let (key_pem, cert_pem) = super::signer(&state.config.data_dir)?;
    let sig = canon::sign(&key_pem, text.as_bytes()).map_err(ApiError::internal)?;
    let verify_url = format!(
        "{}/api/v1/letters/{number}/verify?d={}",
        super::public_url(state),
        canon::digest_prefix(&text)
    );
    let json = serde_json::to_string(fields).map_err(ApiError::internal)?;
    let now = crate::db::now_rfc3339();
    let row = LetterRow {
        id: crate::db::new_id(),
        transfer_id: transfer_id.to_string(),
        number,
        state: ISSUED.to_string(),
        issue_date,
        valid_until,
        validity_days: i64::from(days),
        fields: crypto::seal(Column::LettersFields, &json),
        signature: B64.encode(sig),
        signer_certificate: cert_pem,
        verify_url,
        created_at: now.clone(),
    };
    sqlx::query(
        "INSERT INTO letters (id, transfer_id, number, state, issue_date, valid_until, \
         validity_days, fields, signature, signer_certificate, verify_url, created_at, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(&row.id)
    .bind(&row.transfer_id)
    .bind(&row.number)
    .bind(&row.state)
    .bind(&row.issue_date)
    .bind(&row.valid_until)
    .bind(row.validity_days)
    .bind(&row.fields)
    .bind(&row.signature)
    .bind(&row.signer_certificate)
    .bind(&row.verify_url)
    .bind(&now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        // A concurrent issue for the same transfer got there first (index letters_live).
        let live = e.as_database_error().is_some_and(|d| {
            let m = d.message();
            m.contains("letters_live") || m.contains("letters.transfer_id")
        });
        if live {
            ApiError::conflict(
                "letter_exists",
                "该转接已开具介绍信，如需新的介绍信请重新开具",
            )
        } else {
            ApiError::from(e)
        }
    })?;
    Ok(row)
}

/// Issues the transfer's letter: the next number, issue date today (Beijing), valid for
/// `letter_validity_days`; signed; `letter.issue` audited in the same transaction. 409 when
/// the transfer already has a live letter (re-issue it instead).
pub async fn issue(
    tx: &mut Tx,
    state: &AppState,
    transfer_id: &str,
    fields: &LetterFields,
    actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<LetterRow> {
    let row = insert(tx, state, transfer_id, fields).await?;
    audit::append(
        tx,
        &Who::from(actor),
        Event::ok("letter.issue", transfer_id)
            .in_org(actor.org_code.clone())
            .with_detail(format!("第{}号介绍信 {}", row.number, fields.name)),
    )
    .await?;
    Ok(row)
}

/// Re-issues the transfer's live letter (e.g. expired): it becomes `superseded`, a new letter
/// with a new number, the same fields and new dates replaces it; `letter.reissue` audited.
/// 409 when the transfer has no live letter.
pub async fn reissue(
    tx: &mut Tx,
    state: &AppState,
    transfer_id: &str,
    actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<LetterRow> {
    let old: Option<LetterRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM letters WHERE transfer_id = $1 AND state = $2"
    ))
    .bind(transfer_id)
    .bind(ISSUED)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(old) = old else {
        return Err(ApiError::conflict(
            "no_live_letter",
            "该转接没有可重新开具的介绍信",
        ));
    };
    let changed =
        sqlx::query("UPDATE letters SET state = $1, changed_at = $2 WHERE id = $3 AND state = $4")
            .bind(SUPERSEDED)
            .bind(crate::db::now_rfc3339())
            .bind(&old.id)
            .bind(ISSUED)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if changed != 1 {
        return Err(ApiError::conflict(
            "no_live_letter",
            "该介绍信已被处理，请刷新后重试",
        ));
    }
    let fields = old.fields()?;
    let row = insert(tx, state, transfer_id, &fields).await?;
    audit::append(
        tx,
        &Who::from(actor),
        Event::ok("letter.reissue", transfer_id)
            .in_org(actor.org_code.clone())
            .with_detail(format!(
                "第{}号介绍信重新开具为第{}号 {}",
                old.number, row.number, fields.name
            )),
    )
    .await?;
    Ok(row)
}

/// Marks the transfer's live letter `withdrawn` (nothing when it has none); `letter.withdraw`
/// audited when a letter changed.
pub async fn withdraw_current(
    tx: &mut Tx,
    transfer_id: &str,
    actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<()> {
    let number: Option<String> = sqlx::query_scalar(
        "UPDATE letters SET state = $1, changed_at = $2 WHERE transfer_id = $3 AND state = $4 \
         RETURNING number",
    )
    .bind(WITHDRAWN)
    .bind(crate::db::now_rfc3339())
    .bind(transfer_id)
    .bind(ISSUED)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(number) = number {
        audit::append(
            tx,
            &Who::from(actor),
            Event::ok("letter.withdraw", transfer_id)
                .in_org(actor.org_code.clone())
                .with_detail(format!("第{number}号介绍信作废")),
        )
        .await?;
    }
    Ok(())
}

/// Marks the transfer's live letter `received` (the receive's own audit record covers it).
pub async fn mark_received(tx: &mut Tx, transfer_id: &str, _allowed: &Allowed) -> ApiResult<()> {
    sqlx::query(
        "UPDATE letters SET state = $1, changed_at = $2 WHERE transfer_id = $3 AND state = $4",
    )
    .bind(RECEIVED)
    .bind(crate::db::now_rfc3339())
    .bind(transfer_id)
    .bind(ISSUED)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The transfer's newest letter (whatever its state).
pub async fn current<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    transfer_id: &str,
) -> Result<Option<LetterRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM letters WHERE transfer_id = $1 ORDER BY number DESC LIMIT 1"
    ))
    .bind(transfer_id)
    .fetch_optional(e)
    .await
}

/// The letter with this number.
pub async fn by_number<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    number: &str,
) -> Result<Option<LetterRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM letters WHERE number = $1"))
        .bind(number)
        .fetch_optional(e)
        .await
}

/// Every letter of the transfer, newest first.
pub async fn of_transfer<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    transfer_id: &str,
) -> Result<Vec<LetterRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM letters WHERE transfer_id = $1 ORDER BY number DESC"
    ))
    .bind(transfer_id)
    .fetch_all(e)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(valid_until: &str, state: &str) -> LetterRow {
        LetterRow {
            id: "i".into(),
            transfer_id: "t".into(),
            number: "202611000000000001".into(),
            state: state.into(),
            issue_date: "2026-11-01".into(),
            valid_until: valid_until.into(),
            validity_days: 45,
            fields: String::new(),
            signature: String::new(),
            signer_certificate: String::new(),
            verify_url: String::new(),
            created_at: String::new(),
        }
    }

    #[test]
    fn letter_expiry_and_status() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let r = row("2026-12-16", ISSUED);
        assert!(!r.expired(d("2026-12-16")));
        assert!(r.expired(d("2026-12-17")));
        assert_eq!(r.status(d("2026-12-16")), Status::Genuine);
        assert_eq!(r.status(d("2026-12-17")), Status::Expired);
        assert_eq!(
            row("2026-12-16", SUPERSEDED).status(d("2026-12-01")),
            Status::Superseded
        );
        assert_eq!(
            row("2026-12-16", WITHDRAWN).status(d("2026-12-01")),
            Status::Withdrawn
        );
        assert_eq!(
            row("2026-12-16", RECEIVED).status(d("2026-12-01")),
            Status::Received
        );
    }
}
