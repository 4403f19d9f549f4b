//! Per-address throttling of sign-in, activation and enrolment: more than [`MAX_FAILURES`]
//! failed attempts from one client address within [`WINDOW_MINUTES`] answer 429 until the
//! oldest failure leaves the window. The counters live in the database (`auth_failures`), so
//! every server of a deployment sees the same ones.
//!
//! An attempt **reserves its slot before it runs** ([`reserve`]): the reservation is a row in
//! `auth_failures`, written in the transaction that counted the window while holding the
//! address's `throttle_keys` row, so of any number of concurrent attempts at most
//! [`MAX_FAILURES`] get a slot. An attempt that
//! does not fail in a way that counts gives its slot back ([`Slot`] is released on drop unless
//! [`Slot::keep`] was called); one that fails keeps it as the recorded failure.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::audit::{self, Event, Outcome, Who};
use crate::db::{new_id, Db};
use crate::error::ApiError;

/// Failed attempts from one address allowed within the window.
pub const MAX_FAILURES: i64 = 20;
/// The window, in minutes.
pub const WINDOW_MINUTES: i64 = 10;

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A reserved attempt: a row in `auth_failures` that counts against the address until it is
/// released. Dropping it releases it (the attempt did not fail); [`Slot::keep`] keeps it.
#[must_use = "a slot is released when dropped"]
pub struct Slot {
    db: Db,
    id: Option<String>,
}

impl Slot {
    /// The attempt failed: the reservation stays as the recorded failure.
    pub fn keep(mut self) {
        self.id = None;
    }

    /// Gives the slot back now (the attempt did not fail in a way that counts).
    pub async fn release(mut self) {
        if let Some(id) = self.id.take() {
            let _ = delete(&self.db, &id).await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let db = self.db.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = delete(&db, &id).await;
                });
            }
        }
    }
}

async fn delete(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM auth_failures WHERE id = $1")
        .bind(id)
        .execute(db.write())
        .await
        .map(|_| ())
}

/// Reserves one attempt of `client` in `bucket`, or answers 429 when the address has used up
/// its attempts. One transaction first upserts the address's row in `throttle_keys` — on
/// PostgreSQL that row lock makes concurrent reservations of one address wait for each other;
/// SQLite has one writer — then counts the window and writes the reservation only when it is
/// within the limit. A refusal is audited once per bucket, address and minute (an anonymous
/// flood does not grow the log without bound).
pub async fn reserve(
    db: &Db,
    _allowed: &crate::access::Allowed,
    bucket: &str,
    client: &str,
) -> Result<Slot, ApiError> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO throttle_keys (bucket, client_addr, touched_at) VALUES ($1, $2, $3) \
         ON CONFLICT (bucket, client_addr) DO UPDATE SET touched_at = excluded.touched_at",
    )
    .bind(bucket)
    .bind(client)
    .bind(fmt(now))
    .execute(&mut *tx)
    .await?;
    let since = fmt(now - Duration::minutes(WINDOW_MINUTES));
    // This address's failures that left the window are of no further use.
    sqlx::query("DELETE FROM auth_failures WHERE bucket = $1 AND client_addr = $2 AND at <= $3")
        .bind(bucket)
        .bind(client)
        .bind(&since)
        .execute(&mut *tx)
        .await?;
    let (count, oldest): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM auth_failures WHERE bucket = $1 AND client_addr = $2 \
         AND at > $3",
    )
    .bind(bucket)
    .bind(client)
    .bind(&since)
    .fetch_one(&mut *tx)
    .await?;
    if count < MAX_FAILURES {
        let id = new_id();
        sqlx::query(
            "INSERT INTO auth_failures (id, bucket, client_addr, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(bucket)
        .bind(client)
        .bind(fmt(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Slot {
            db: db.clone(),
            id: Some(id),
        });
    }
    tx.commit().await?;
    note_refusal(db, bucket, client, now).await?;
    let retry_at = oldest
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc) + Duration::minutes(WINDOW_MINUTES))
        .unwrap_or_else(|| now + Duration::minutes(WINDOW_MINUTES));
    Err(throttled(retry_at))
}

/// The 429 answer, naming when the address may try again (Beijing time).
fn throttled(retry_at: DateTime<Utc>) -> ApiError {
    let local = retry_at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
    let wait = (retry_at - Utc::now()).num_seconds().max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!(
            "本机地址{WINDOW_MINUTES}分钟内失败次数过多，请于{}（约{}分钟后）再试",
            local.format("%H:%M:%S"),
            (wait + 59) / 60
        ),
    )
}

/// Audits a throttled refusal: the first of each bucket, address and minute writes a record
/// (claimed through the primary key of `throttle_refusals`), the rest of that minute do not.
async fn note_refusal(
    db: &Db,
    bucket: &str,
    client: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let minute = now.format("%Y-%m-%dT%H:%MZ").to_string();
    let mut tx = db.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO throttle_refusals (bucket, client_addr, minute) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(bucket)
    .bind(client)
    .bind(&minute)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 1 {
        audit::append(
            &mut tx,
            &Who::anonymous(client),
            Event::ok("throttle.refused", bucket)
                .outcome(Outcome::Refused)
                .with_detail(format!(
                    "429 from {client} in {minute}; later refusals of this minute not recorded"
                )),
        )
        .await?;
        sqlx::query("DELETE FROM throttle_refusals WHERE minute < $1")
            .bind(
                (now - Duration::days(1))
                    .format("%Y-%m-%dT%H:%MZ")
                    .to_string(),
            )
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM auth_failures WHERE at < $1")
            .bind(fmt(now - Duration::days(1)))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM throttle_keys WHERE touched_at < $1")
            .bind(fmt(now - Duration::days(1)))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Is this answer of a sign-in a failed attempt that counts against the address?
pub fn sign_in_failure(e: &ApiError) -> bool {
    matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::LOCKED)
}

/// Runs one attempt from `client` in `bucket`: its slot is reserved first (429 while
/// throttled), kept when it fails in a way that counts (see [`sign_in_failure`]) and given
/// back otherwise.
pub async fn attempt<T>(
    db: &Db,
    bucket: &str,
    client: &str,
    attempt: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let allowed = crate::access::self_service(crate::access::SelfService::Attempt);
    let slot = reserve(db, &allowed, bucket, client).await?;
    let result = attempt.await;
    match &result {
        Err(e) if sign_in_failure(e) => slot.keep(),
        _ => slot.release().await,
    }
    result
}
