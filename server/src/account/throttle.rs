//! Per-address throttling of sign-in and activation: more than [`MAX_FAILURES`] failed
//! attempts from one client address within [`WINDOW_MINUTES`] answer 429 until the oldest
//! failure leaves the window. The counters live in the database (`auth_failures`), so every
//! server of a deployment sees the same ones.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::db::{new_id, Db};
use crate::error::ApiError;

/// Failed attempts from one address allowed within the window.
pub const MAX_FAILURES: i64 = 20;
/// The window, in minutes.
pub const WINDOW_MINUTES: i64 = 10;

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Answers 429 when `client` has used up its failed attempts in `bucket`.
pub async fn refuse_if_throttled(db: &Db, bucket: &str, client: &str) -> Result<(), ApiError> {
    let since = fmt(Utc::now() - Duration::minutes(WINDOW_MINUTES));
    let (count, oldest): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(at) FROM auth_failures WHERE bucket = $1 AND client_addr = $2 \
         AND at > $3",
    )
    .bind(bucket)
    .bind(client)
    .bind(&since)
    .fetch_one(db.read())
    .await?;
    if count < MAX_FAILURES {
        return Ok(());
    }
    let retry_at = oldest
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc) + Duration::minutes(WINDOW_MINUTES))
        .unwrap_or_else(|| Utc::now() + Duration::minutes(WINDOW_MINUTES));
    let local = retry_at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"));
    let wait = (retry_at - Utc::now()).num_seconds().max(1);
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!(
            "本机地址{WINDOW_MINUTES}分钟内失败次数过多，请于{}（约{}分钟后）再试",
            local.format("%H:%M:%S"),
            (wait + 59) / 60
        ),
    ))
}

/// Records one failed attempt of `client` in `bucket` (and forgets failures older than a day).
pub async fn record_failure(db: &Db, bucket: &str, client: &str) -> Result<(), ApiError> {
    let now = Utc::now();
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO auth_failures (id, bucket, client_addr, at) VALUES ($1, $2, $3, $4)")
        .bind(new_id())
        .bind(bucket)
        .bind(client)
        .bind(fmt(now))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM auth_failures WHERE at < $1")
        .bind(fmt(now - Duration::days(1)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Is this answer of a sign-in a failed attempt that counts against the address?
pub fn sign_in_failure(e: &ApiError) -> bool {
    matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::LOCKED)
}

/// Runs one attempt from `client` in `bucket`: refused with 429 while throttled, and recorded
/// when it fails in a way that counts (see [`sign_in_failure`]).
pub async fn attempt<T>(
    db: &Db,
    bucket: &str,
    client: &str,
    attempt: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    refuse_if_throttled(db, bucket, client).await?;
    let result = attempt.await;
    if let Err(e) = &result {
        if sign_in_failure(e) {
            record_failure(db, bucket, client).await?;
        }
    }
    result
}
