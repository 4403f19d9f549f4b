//! TEMPORARY stand-in for the lead's `crate::jobs` registry (same interface) until it lands on
//! main; removed at the merge.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::access::Actor;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub state: String,
    pub done: u64,
    pub total: u64,
    pub result: serde_json::Value,
    pub message: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug)]
pub struct Job {
    id: String,
    kind: &'static str,
    account: String,
    label: String,
    done: AtomicU64,
    total: AtomicU64,
    end: Mutex<Option<(String, serde_json::Value, String, String)>>,
    started_at: String,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }
    pub fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    pub fn finish(&self, result: serde_json::Value) {
        *self.end.lock().expect("lock") = Some((
            "finished".into(),
            result,
            String::new(),
            crate::db::now_rfc3339(),
        ));
    }
    pub fn fail(&self, message: String) {
        *self.end.lock().expect("lock") = Some((
            "failed".into(),
            serde_json::Value::Null,
            message,
            crate::db::now_rfc3339(),
        ));
    }
    pub fn view(&self) -> JobView {
        let end = self.end.lock().expect("lock").clone();
        let (state, result, message, finished_at) = match end {
            Some((s, r, m, f)) => (s, r, m, Some(f)),
            None => (
                "running".into(),
                serde_json::Value::Null,
                String::new(),
                None,
            ),
        };
        JobView {
            id: self.id.clone(),
            kind: self.kind.into(),
            label: self.label.clone(),
            state,
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            result,
            message,
            started_at: self.started_at.clone(),
            finished_at,
        }
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Registry {
    pub fn start(&self, kind: &'static str, actor: &Actor, label: String) -> Arc<Job> {
        let job = Arc::new(Job {
            id: crate::db::new_id(),
            kind,
            account: actor.account_id.clone(),
            label,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            end: Mutex::new(None),
            started_at: crate::db::now_rfc3339(),
        });
        self.jobs
            .lock()
            .expect("lock")
            .insert(job.id.clone(), job.clone());
        job
    }
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().expect("lock").get(id).cloned()
    }
    pub fn latest(&self, account_id: &str, kind: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .expect("lock")
            .values()
            .filter(|j| j.account == account_id && j.kind == kind)
            .max_by(|a, b| a.started_at.cmp(&b.started_at))
            .cloned()
    }
}

pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

pub fn progress_bar(v: &JobView) -> maud::Markup {
    maud::html! {
        progress data-job=(v.id) value=(v.done) max=(v.total.max(1)) {}
    }
}
