//! Background jobs with progress: the long work a page starts and then watches (a batch
//! quality check, the validation of a large import). The work runs in a tokio task that owns
//! an `Arc<Job>` and reports through it; the page shows [`progress_bar`], which `app.js` polls
//! through `GET /api/v1/jobs/{id}` and reloads when the job ends, so a reload of the page
//! finds the job again through [`Registry::latest`].
//!
//! The registry lives in memory: progress is a view of work in this process. What a job
//! produces (findings, a validated import) is stored by its own area in the database, so a
//! restart loses only the progress of work that was running, which the area marks as
//! interrupted when it finds it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, State as AxState};
use axum::Json;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::Actor;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Finished jobs kept for their pages to read, per process (the oldest finished go first).
const KEEP_FINISHED: usize = 500;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Finished,
    Failed,
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
}

#[derive(Debug)]
struct Outcome {
    state: JobState,
    result: Option<serde_json::Value>,
    message: Option<String>,
    finished_at: Option<DateTime<Utc>>,
}

/// One job: its owner and progress. Counters are atomics, so the task reports without locks.
#[derive(Debug)]
pub struct Job {
    id: String,
    kind: &'static str,
    account_id: String,
    label: String,
    started_at: DateTime<Utc>,
    done: AtomicU64,
    total: AtomicU64,
    outcome: Mutex<Outcome>,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The account that started the job: the only one that may watch it.
    pub fn owner(&self) -> &str {
        &self.account_id
    }

    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }

    /// `done += n`.
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn finish(&self, result: serde_json::Value) {
        self.end(JobState::Finished, Some(result), None);
    }

    /// Ends the job with a message for the user (Chinese).
    pub fn fail(&self, message: String) {
        self.end(JobState::Failed, None, Some(message));
    }

    fn end(&self, state: JobState, result: Option<serde_json::Value>, message: Option<String>) {
        let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if o.state == JobState::Running {
            *o = Outcome {
                state,
                result,
                message,
                finished_at: Some(Utc::now()),
            };
        }
    }

    pub fn is_running(&self) -> bool {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner()).state == JobState::Running
    }

    pub fn view(&self) -> JobView {
        let o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.total.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed);
        JobView {
            id: self.id.clone(),
            kind: self.kind.to_string(),
            label: self.label.clone(),
            state: o.state,
            done: if total > 0 { done.min(total) } else { done },
            total,
            result: o.result.clone(),
            message: o.message.clone(),
            started_at: self.started_at,
            finished_at: o.finished_at,
        }
    }
}

/// Every job of this process.
#[derive(Debug, Default)]
pub struct Registry {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

/// The process's registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// Starts a job record owned by `actor`; the returned handle is moved into the task.
    pub fn start(&self, kind: &'static str, actor: &Actor, label: String) -> Arc<Job> {
        let job = Arc::new(Job {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            account_id: actor.account_id.clone(),
            label,
            started_at: Utc::now(),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            outcome: Mutex::new(Outcome {
                state: JobState::Running,
                result: None,
                message: None,
                finished_at: None,
            }),
        });
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut jobs);
        jobs.insert(job.id.clone(), job.clone());
        job
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The newest job of this kind started by this account (to find it again after a reload).
    pub fn latest(&self, account_id: &str, kind: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|j| j.account_id == account_id && j.kind == kind)
            .max_by_key(|j| j.started_at)
            .cloned()
    }
}

/// Drops the oldest finished jobs beyond [`KEEP_FINISHED`]; running ones always stay.
fn prune(jobs: &mut HashMap<String, Arc<Job>>) {
    let mut finished: Vec<(DateTime<Utc>, String)> = jobs
        .values()
        .filter(|j| !j.is_running())
        .map(|j| (j.started_at, j.id.clone()))
        .collect();
    if finished.len() < KEEP_FINISHED {
        return;
    }
    finished.sort();
    let excess = finished.len() + 1 - KEEP_FINISHED;
    for (_, id) in finished.into_iter().take(excess) {
        jobs.remove(&id);
    }
}

/// The job if the actor started it; anyone else's is answered as not found.
pub fn owned(actor: &Actor, id: &str) -> ApiResult<Arc<Job>> {
    let job = registry().get(id);
    crate::access::own_job(actor, job.as_deref().map(Job::owner))?;
    job.ok_or_else(|| ApiError::not_found("任务"))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_job))
}

/// `GET /jobs/{id}`: the progress of a background job, for the account that started it.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_job(
    AxState(_state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(owned(&actor, &id)?.view()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(account: &str) -> Actor {
        Actor {
            account_id: account.into(),
            name: String::new(),
            grant_id: String::new(),
            role: crate::access::Role::Admin,
            tier: Some(1),
            org_id: String::new(),
            org_code: "037".into(),
            org_name: String::new(),
            client_addr: String::new(),
            cert_serial: None,
            session_token_hash: String::new(),
            csrf_token: String::new(),
            must_change_password: false,
        }
    }

    #[test]
    fn progress_and_outcome() {
        let job = registry().start("test", &actor("a"), "检查".into());
        job.set_total(10);
        job.advance(3);
        job.advance(4);
        let v = job.view();
        assert_eq!((v.done, v.total, v.state), (7, 10, JobState::Running));
        job.finish(serde_json::json!({"n": 7}));
        job.fail("late".into()); // an ended job stays as it ended
        let v = job.view();
        assert_eq!(v.state, JobState::Finished);
        assert_eq!(v.result, Some(serde_json::json!({"n": 7})));
        assert!(v.message.is_none());
    }

    #[test]
    fn only_the_owner_finds_a_job() {
        let job = registry().start("test-owner", &actor("owner"), "导入".into());
        assert!(owned(&actor("owner"), job.id()).is_ok());
        assert_eq!(
            owned(&actor("other"), job.id()).unwrap_err().status,
            axum::http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            registry()
                .latest("owner", "test-owner")
                .map(|j| j.id().to_string()),
            Some(job.id().to_string())
        );
        assert!(registry().latest("other", "test-owner").is_none());
    }

    #[test]
    fn finished_jobs_are_pruned_running_ones_kept() {
        let mut jobs = HashMap::new();
        let running = registry().start("prune", &actor("p"), String::new());
        jobs.insert(running.id.clone(), running.clone());
        for _ in 0..KEEP_FINISHED {
            let j = registry().start("prune", &actor("p"), String::new());
            j.finish(serde_json::Value::Null);
            jobs.insert(j.id.clone(), j);
        }
        prune(&mut jobs);
        assert_eq!(jobs.len(), KEEP_FINISHED);
        assert!(jobs.contains_key(&running.id));
    }
}
