//! Background jobs with progress: the long work a page starts and then watches (a batch
//! quality check, the validation of a large import). The work runs in a tokio task that owns
//! an `Arc<Job>` and reports through it; the page shows [`progress_bar`], which `app.js` polls
//! through `GET /api/v1/jobs/{id}` and reloads when the job ends, so a reload of the page
//! finds the job again through [`latest`].
//!
//! Jobs live in the database (`jobs`), so every server of a province answers for a job that
//! another one runs. The task counts in memory (atomics, no lock) and a heartbeat writes the
//! counters every [`HEARTBEAT`]; its end is written at once. A job whose server died is
//! reported as failed (interrupted), never as running forever: on PostgreSQL each serving
//! process holds a session advisory lock named by its `server_key` for its whole life, and a
//! running job whose server's lock is free is dead at once; on either engine a heartbeat older
//! than [`STALE_SECS`] is. What a job produces (findings, a validated import) is stored by its
//! own area.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State as AxState};
use axum::Json;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::Actor;
use crate::db::{now_rfc3339, Db, Engine};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How often a running job's counters and heartbeat are written.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A running job whose heartbeat is older than this is reported interrupted.
pub const STALE_SECS: i64 = 60;

/// Finished jobs are kept this many days for their pages, then dropped at a server's start.
const KEEP_DAYS: i64 = 7;

/// The first key of the advisory locks of serving processes ("dj").
const LOCK_CLASS: i64 = 0x646a;

/// What a dead job's page says.
pub const INTERRUPTED: &str = "任务所在的服务器已停止，任务中断，请重新开始";

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Finished,
    Failed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "finished" => JobState::Finished,
            _ => JobState::Failed,
        }
    }
}

/// A job as the API and pages show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    /// What kind of work: `quality`, `import`, …
    pub kind: String,
    /// What the page says the job is (Chinese).
    pub label: String,
    pub state: JobState,
    /// Units of work done and in all (0 while the total is not known yet).
    pub done: u64,
    pub total: u64,
    /// What the job produced (its area's summary), once finished.
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// Why it failed (Chinese), if it did.
    pub message: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The account that started the job: the only one that may watch it.
    #[serde(skip)]
    pub account_id: String,
}

/// The running side of one job: the task that does the work owns it and reports through it.
#[derive(Debug)]
pub struct Job {
    id: String,
    db: Db,
    done: AtomicU64,
    total: AtomicU64,
    ended: AtomicBool,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// `done += n`.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub async fn finish(&self, result: serde_json::Value) {
        self.end(JobState::Finished, Some(result.to_string()), None)
            .await;
    }

    /// Ends the job with a message for the user (Chinese).
    pub async fn fail(&self, message: String) {
        self.end(JobState::Failed, None, Some(message)).await;
    }

    /// Writes the end once (the first end wins: the row changes only while `running`).
    async fn end(&self, state: JobState, result: Option<String>, message: Option<String>) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        let (done, total) = self.counters();
        // The end must reach the database, or the job would read as interrupted once its
        // heartbeat is stale. On SQLite the one writer may be held for longer than the pool's
        // wait by a long transaction — the confirmation of a million-row import that the end
        // of its own validation let start takes about two minutes — so a wait that times out
        // is tried again, for up to ENDING_WAITS of them.
        const ENDING_WAITS: usize = 40;
        for attempt in 1..=ENDING_WAITS {
            let now = now_rfc3339();
            let r = sqlx::query(
                "UPDATE jobs SET state = $1, result = $2, message = $3, done = $4, total = $5, \
                 heartbeat_at = $6, finished_at = $6 WHERE id = $7 AND state = 'running'",
            )
            .bind(state.as_str())
            .bind(result.clone())
            .bind(message.clone())
            .bind(done)
            .bind(total)
            .bind(&now)
            .bind(&self.id)
            .execute(self.db.write())
            .await;
            match r {
                Ok(_) => return,
                Err(sqlx::Error::PoolTimedOut) if attempt < ENDING_WAITS => {
                    tracing::warn!(job = %self.id, attempt, "the writer is busy; the job's end waits");
                }
                Err(e) => {
                    tracing::error!(job = %self.id, "record the end of a job: {e}");
                    return;
                }
            }
        }
    }

    fn counters(&self) -> (i64, i64) {
        let total = self.total.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed);
        let done = if total > 0 { done.min(total) } else { done };
        (
            i64::try_from(done).unwrap_or(i64::MAX),
            i64::try_from(total).unwrap_or(i64::MAX),
        )
    }

    /// Writes the counters and the heartbeat while the job runs.
    async fn beat(&self) -> Result<(), sqlx::Error> {
        let (done, total) = self.counters();
        sqlx::query(
            "UPDATE jobs SET done = $1, total = $2, heartbeat_at = $3 \
             WHERE id = $4 AND state = 'running'",
        )
        .bind(done)
        .bind(total)
        .bind(now_rfc3339())
        .bind(&self.id)
        .execute(self.db.write())
        .await?;
        Ok(())
    }
}

/// This process's advisory-lock key (PostgreSQL; 0 before [`install`] and on SQLite).
fn server_key() -> &'static AtomicI64 {
    static KEY: AtomicI64 = AtomicI64::new(0);
    &KEY
}

/// The connection that holds this process's advisory lock for its whole life.
fn lock_holder() -> &'static tokio::sync::Mutex<Option<sqlx::AnyConnection>> {
    static HOLDER: OnceLock<tokio::sync::Mutex<Option<sqlx::AnyConnection>>> = OnceLock::new();
    HOLDER.get_or_init(|| tokio::sync::Mutex::new(None))
}

/// At `serve`: drops jobs finished long ago; on SQLite (one serving process) ends the jobs a
/// previous process left running; on PostgreSQL takes this process's advisory
/// lock on a connection of its own (kept, checked and taken again every few seconds), so other
/// servers see at once when this one is gone.
pub async fn install(db: &Db) -> anyhow::Result<()> {
    let cutoff = (Utc::now() - chrono::Duration::days(KEEP_DAYS))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query("DELETE FROM jobs WHERE state <> 'running' AND started_at < $1")
        .bind(cutoff)
        .execute(db.write())
        .await?;
    if db.engine != Engine::Postgres {
        // SQLite is served by one process: whatever was running belonged to the one before.
        sqlx::query(
            "UPDATE jobs SET state = 'failed', message = $1, finished_at = $2 \
             WHERE state = 'running'",
        )
        .bind(INTERRUPTED)
        .bind(now_rfc3339())
        .execute(db.write())
        .await?;
        return Ok(());
    }
    hold_lock(db).await?;
    let db = db.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let alive = {
                let mut holder = lock_holder().lock().await;
                match holder.as_mut() {
                    Some(c) => sqlx::query("SELECT 1").execute(&mut *c).await.is_ok(),
                    None => false,
                }
            };
            if !alive {
                if let Err(e) = hold_lock(&db).await {
                    tracing::warn!("take the server's job lock again: {e:#}");
                }
            }
        }
    });
    Ok(())
}

/// Takes this process's lock (a new key when it has none yet) on a connection out of the pool.
async fn hold_lock(db: &Db) -> anyhow::Result<()> {
    let mut holder = lock_holder().lock().await;
    *holder = None;
    let mut conn = db.write().acquire().await?.detach();
    let mut key = server_key().load(Ordering::SeqCst);
    loop {
        if key == 0 {
            key = i64::from(rand::random::<u32>() >> 1).max(1);
        }
        let (got,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_lock(CAST($1 AS INTEGER), CAST($2 AS INTEGER))")
                .bind(LOCK_CLASS)
                .bind(key)
                .fetch_one(&mut conn)
                .await?;
        if got {
            break;
        }
        key = 0;
    }
    server_key().store(key, Ordering::SeqCst);
    *holder = Some(conn);
    Ok(())
}

/// Starts a job record owned by `actor`; the returned handle is moved into the task.
pub async fn start(
    db: &Db,
    _allowed: &crate::access::Allowed,
    kind: &'static str,
    actor: &Actor,
    label: String,
) -> ApiResult<Arc<Job>> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_rfc3339();
    sqlx::query(
        "INSERT INTO jobs (id, kind, account_id, label, state, server_key, started_at, \
         heartbeat_at) VALUES ($1, $2, $3, $4, 'running', $5, $6, $6)",
    )
    .bind(&id)
    .bind(kind)
    .bind(&actor.account_id)
    .bind(&label)
    .bind(server_key().load(Ordering::SeqCst))
    .bind(&now)
    .execute(db.write())
    .await?;
    let job = Arc::new(Job {
        id,
        db: db.clone(),
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
        ended: AtomicBool::new(false),
    });
    let weak = Arc::downgrade(&job);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let Some(job) = weak.upgrade() else { break };
            if job.ended.load(Ordering::SeqCst) {
                break;
            }
            if let Err(e) = job.beat().await {
                tracing::warn!(job = %job.id, "job heartbeat: {e}");
            }
        }
    });
    Ok(job)
}

impl Drop for Job {
    /// A job dropped without an end (its task panicked) is failed in the background.
    fn drop(&mut self) {
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let (db, id) = (self.db.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = sqlx::query(
                    "UPDATE jobs SET state = 'failed', message = $1, finished_at = $2 \
                     WHERE id = $3 AND state = 'running'",
                )
                .bind("任务意外中止，请重新开始")
                .bind(now_rfc3339())
                .bind(id)
                .execute(db.write())
                .await;
            });
        }
    }
}

type JobRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
);

const COLUMNS: &str = "id, kind, account_id, label, state, done, total, result, message, \
     server_key, started_at, heartbeat_at, finished_at";

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The row as shown, a running job whose server is gone reported as failed.
async fn view_of(db: &Db, r: JobRow) -> ApiResult<JobView> {
    let mut state = JobState::parse(&r.4);
    let mut message = r.8;
    if state == JobState::Running && !alive(db, r.9, &r.11).await? {
        state = JobState::Failed;
        message = Some(INTERRUPTED.to_string());
    }
    Ok(JobView {
        id: r.0,
        kind: r.1,
        account_id: r.2,
        label: r.3,
        state,
        done: u64::try_from(r.5).unwrap_or(0),
        total: u64::try_from(r.6).unwrap_or(0),
        result: r.7.and_then(|s| serde_json::from_str(&s).ok()),
        message,
        started_at: parse_time(&r.10),
        finished_at: r.12.as_deref().map(parse_time),
    })
}

/// Whether the server of a running job still runs: its heartbeat is recent and, on
/// PostgreSQL, its advisory lock is held.
async fn alive(db: &Db, key: i64, heartbeat_at: &str) -> ApiResult<bool> {
    if (Utc::now() - parse_time(heartbeat_at)).num_seconds() > STALE_SECS {
        return Ok(false);
    }
    if db.engine != Engine::Postgres || key == 0 {
        return Ok(true);
    }
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1 \
         AND objid::bigint = $2 AND objsubid = 2 AND granted",
    )
    .bind(LOCK_CLASS)
    .bind(key)
    .fetch_one(db.primary())
    .await?;
    Ok(n > 0)
}

/// A job by id (from the primary: progress must be current).
pub async fn get(db: &Db, id: &str) -> ApiResult<Option<JobView>> {
    let row: Option<JobRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(db.primary())
        .await?;
    match row {
        Some(r) => Ok(Some(view_of(db, r).await?)),
        None => Ok(None),
    }
}

/// The newest job of this kind started by this account (to find it again after a reload).
pub async fn latest(db: &Db, account_id: &str, kind: &str) -> ApiResult<Option<JobView>> {
    let row: Option<JobRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE account_id = $1 AND kind = $2 \
         ORDER BY started_at DESC, id DESC LIMIT 1"
    ))
    .bind(account_id)
    .bind(kind)
    .fetch_optional(db.primary())
    .await?;
    match row {
        Some(r) => Ok(Some(view_of(db, r).await?)),
        None => Ok(None),
    }
}

/// The job if the actor started it; anyone else's is answered as not found.
pub async fn owned(db: &Db, actor: &Actor, id: &str) -> ApiResult<JobView> {
    let job = get(db, id).await?;
    crate::access::own_job(actor, job.as_ref().map(|j| j.account_id.as_str()))?;
    job.ok_or_else(|| ApiError::not_found("任务"))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_job))
}

/// `GET /jobs/{id}`: the progress of a background job, for the account that started it, from
/// any server (a job whose server stopped is `failed`).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_job(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(owned(&state.db, &actor, &id).await?))
}

/// The progress bar of a job: `app.js` polls the job and reloads the page when it ends.
pub fn progress_bar(job: &JobView) -> Markup {
    let percent = (job.done * 100).checked_div(job.total).unwrap_or(0);
    html! {
        div.job data-job=(job.id) data-state=(match job.state {
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }) {
            span.job-label { (job.label) }
            @if job.total > 0 {
                progress max=(job.total) value=(job.done) { (percent) "%" }
            } @else {
                progress {}
            }
            span.job-count {
                @match job.state {
                    JobState::Running if job.total > 0 => { "已完成 " (job.done) " / " (job.total) }
                    JobState::Running => "准备中…",
                    JobState::Finished => "已完成",
                    JobState::Failed => { "失败：" (job.message.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}
