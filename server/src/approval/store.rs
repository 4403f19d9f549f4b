//! Applications in the database: submit, decide, withdraw — each in one transaction with its
//! trail step and its audit record — and the lists the queue shows.

use sqlx::{Any, Executor};

use super::rules::{ChainOrg, Kind, State};
use super::{ApplicationData, ApplicationRow, StepView, APPLICATION_COLUMNS};
use crate::access::{Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, subtree_upper, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::state::Paging;

/// The organisations from the root down to the one with unified code `code` (unified codes are
/// materialised paths: every ancestor's code is a prefix), with the tier an admin grant on each
/// carries.
pub async fn chain<'e, E: Executor<'e, Database = Any>>(
    e: E,
    code: &str,
) -> Result<Vec<ChainOrg>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, code, name, category, may_approve_development FROM orgs \
         WHERE code = substr($1, 1, length(code)) ORDER BY length(code)",
    )
    .bind(code)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, code, name, category, may)| ChainOrg {
            tier: crate::access::tier_for_org(&category, may != 0),
            id,
            code,
            name,
        })
        .collect())
}

/// The live security, audit and admin grants of the person with this ID number (their accounts
/// carry the same blind index as the member): (role label, organisation name).
pub async fn grants_of_person<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id_number_idx: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT g.role, o.name FROM grants g JOIN accounts a ON a.id = g.account_id \
         JOIN orgs o ON o.id = g.org_id \
         WHERE a.id_number_idx = $1 AND g.revoked_at IS NULL ORDER BY o.code, g.role",
    )
    .bind(id_number_idx)
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(role, org)| {
            let label = crate::access::Role::parse(&role)
                .map(|r| r.label())
                .unwrap_or("管理员");
            (label.to_string(), org)
        })
        .collect())
}

/// What a new application records.
pub struct NewApplication<'a> {
    pub kind: Kind,
    pub member_id: Option<&'a str>,
    pub member_name: &'a str,
    pub subject_code: &'a str,
    pub subject_name: &'a str,
    pub approver: &'a ChainOrg,
    pub data: &'a ApplicationData,
    /// (id, organisation code) of the documents, linked to the application in its transaction
    pub attachments: &'a [(String, String)],
}

/// Who applies: an admin, or a member from the own page (a correction request).
pub struct Applicant {
    pub account_id: String,
    pub name: String,
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub who: Who,
}

impl From<&Actor> for Applicant {
    fn from(a: &Actor) -> Self {
        Applicant {
            account_id: a.account_id.clone(),
            name: a.name.clone(),
            org_id: a.org_id.clone(),
            org_code: a.org_code.clone(),
            org_name: a.org_name.clone(),
            who: Who::from(a),
        }
    }
}

/// Records an application with its first trail step and audit record.
pub async fn submit(
    db: &Db,
    actor: &Actor,
    new: NewApplication<'_>,
    allowed: &Allowed,
) -> ApiResult<String> {
    submit_as(db, &Applicant::from(actor), new, allowed).await
}

/// [`submit`] for any applicant (the member's correction request: `personal::routes`).
pub async fn submit_as(
    db: &Db,
    actor: &Applicant,
    new: NewApplication<'_>,
    allowed: &Allowed,
) -> ApiResult<String> {
    let id = new_id();
    let now = now_rfc3339();
    let data = serde_json::to_string(new.data).map_err(ApiError::internal)?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO applications (id, kind, state, member_id, member_name, subject_org_code, \
         subject_org_name, applicant_account_id, applicant_name, applicant_org_id, applicant_org_code, \
         applicant_org_name, approver_org_id, approver_org_code, approver_org_name, approver_tier, data, \
         attachments, submitted_at) \
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&id)
    .bind(new.kind.as_str())
    .bind(new.member_id)
    .bind(new.member_name)
    .bind(new.subject_code)
    .bind(new.subject_name)
    .bind(&actor.account_id)
    .bind(&actor.name)
    .bind(&actor.org_id)
    .bind(&actor.org_code)
    .bind(&actor.org_name)
    .bind(&new.approver.id)
    .bind(&new.approver.code)
    .bind(&new.approver.name)
    .bind(i64::from(new.approver.tier))
    .bind(crypto::seal(Column::ApplicationsData, &data))
    .bind(
        serde_json::to_string(&new.attachments.iter().map(|(a, _)| a).collect::<Vec<_>>())
            .map_err(ApiError::internal)?,
    )
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    for (attachment, org_code) in new.attachments {
        let linked = crate::attachment::store::link_owner(
            &mut tx,
            allowed,
            attachment,
            org_code,
            "application",
            &id,
        )
        .await?;
        if !linked {
            return Err(ApiError::conflict_field(
                "attachments",
                "相关资料已被其他申请使用，请重新上传",
            ));
        }
    }
    step_by(
        &mut tx,
        (&actor.account_id, &actor.name, &actor.org_name),
        &id,
        "submit",
        &new.data.reason,
    )
    .await?;
    audit::append(
        &mut tx,
        &actor.who,
        Event::ok("application.submit", &id)
            .in_org(new.subject_code)
            .with_detail(format!(
                "{} {} → {}",
                new.kind.label(),
                new.member_name,
                new.approver.name
            )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

async fn step(
    tx: &mut Tx,
    actor: &Actor,
    application_id: &str,
    action: &str,
    opinion: &str,
) -> Result<(), sqlx::Error> {
    step_by(
        tx,
        (&actor.account_id, &actor.name, &actor.org_name),
        application_id,
        action,
        opinion,
    )
    .await
}

/// One step of the trail by (account id, name, organisation name).
async fn step_by(
    tx: &mut Tx,
    by: (&str, &str, &str),
    application_id: &str,
    action: &str,
    opinion: &str,
) -> Result<(), sqlx::Error> {
    let (account_id, name, org_name) = by;
    sqlx::query(
        "INSERT INTO application_steps (id, application_id, action, opinion, actor_account_id, \
         actor_name, actor_org_name, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(application_id)
    .bind(action)
    .bind(opinion)
    .bind(account_id)
    .bind(name)
    .bind(org_name)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E: Executor<'e, Database = Any>>(
    e: E,
    id: &str,
) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await
}

pub async fn steps(db: &Db, id: &str) -> Result<Vec<StepView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT action, opinion, actor_name, actor_org_name, at FROM application_steps \
         WHERE application_id = $1 \
         ORDER BY at, CASE action WHEN 'submit' THEN 0 ELSE 1 END, id",
    )
    .bind(id)
    .fetch_all(db.read())
    .await
}

/// Closes a pending application with a decision (or a withdrawal) inside `tx`: exactly one of
/// several concurrent or repeated calls changes the row; the others are answered 409.
pub async fn close(
    tx: &mut Tx,
    actor: &Actor,
    row: &ApplicationRow,
    to: State,
    opinion: &str,
    _allowed: &Allowed,
) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE applications SET state = $1, decided_at = $2, decided_by = $3 \
         WHERE id = $4 AND state = 'pending'",
    )
    .bind(to.as_str())
    .bind(now_rfc3339())
    .bind(&actor.account_id)
    .bind(&row.id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        let now: Option<String> =
            sqlx::query_scalar("SELECT state FROM applications WHERE id = $1")
                .bind(&row.id)
                .fetch_optional(&mut **tx)
                .await?;
        let label = now
            .as_deref()
            .and_then(State::parse)
            .map(State::label)
            .unwrap_or("已处理");
        return Err(ApiError::conflict(
            "application_closed",
            format!("该申请已处理（当前状态：{label}），不能重复操作"),
        ));
    }
    let action = match to {
        State::Approved => "approve",
        State::Rejected => "reject",
        State::Withdrawn => "withdraw",
        State::Pending => "submit",
    };
    step(tx, actor, &row.id, action, opinion).await?;
    audit::append(
        tx,
        &Who::from(actor),
        Event::ok(
            match to {
                State::Approved => "application.approve",
                State::Rejected => "application.reject",
                _ => "application.withdraw",
            },
            &row.id,
        )
        .in_org(row.subject_org_code.clone())
        .with_detail(format!(
            "{} {}：{}",
            row.kind().label(),
            row.member_name,
            opinion
        )),
    )
    .await?;
    Ok(())
}

/// Which applications a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The items the actor approves 维护审批.
    Inbox,
    /// The items applied for by the actor's organisation and those below 我的申请.
    Submitted,
}

/// One page of a queue, newest first; `state` None is every state.
pub async fn list(
    db: &Db,
    actor: &Actor,
    queue: Queue,
    state: Option<State>,
    paging: &Paging,
) -> Result<(Vec<ApplicationRow>, i64), sqlx::Error> {
    let mut sql = crate::db::Sql::new("");
    match queue {
        Queue::Inbox => {
            sql.push("approver_org_code = ")
                .bind(actor.org_code.clone())
                .push(" AND approver_tier = ")
                .bind_int(i64::from(actor.tier.unwrap_or(0)));
        }
        Queue::Submitted => {
            sql.push("applicant_org_code >= ")
                .bind(actor.org_code.clone())
                .push(" AND applicant_org_code < ")
                .bind(subtree_upper(&actor.org_code));
        }
    }
    if let Some(st) = state {
        sql.push(" AND state = ").bind(st.as_str());
    }
    let filter = sql.text.clone();
    let total: i64 = {
        let mut count = sql.clone();
        count.text = format!("SELECT COUNT(*) FROM applications WHERE {filter}");
        count.scalar().fetch_one(db.read()).await?
    };
    sql.text = format!(
        "SELECT {APPLICATION_COLUMNS} FROM applications WHERE {filter} \
         ORDER BY submitted_at DESC, id LIMIT {} OFFSET {}",
        paging.per_page(),
        paging.offset()
    );
    let rows = sql
        .query_as::<ApplicationRow>()
        .fetch_all(db.read())
        .await?;
    Ok((rows, total))
}

/// How many items wait for the actor's decision (the badge in the header).
pub async fn pending_for(db: &Db, actor: &Actor) -> Result<i64, sqlx::Error> {
    if actor.role != crate::access::Role::Admin {
        return Ok(0);
    }
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM applications WHERE approver_org_code = $1 AND approver_tier = $2 \
         AND state = 'pending'",
    )
    .bind(&actor.org_code)
    .bind(i64::from(actor.tier.unwrap_or(0)))
    .fetch_one(db.read())
    .await
}

/// The pending application about a member, if any (its kind and id).
pub async fn pending_for_member(
    db: &Db,
    member_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, kind FROM applications WHERE member_id = $1 AND state = 'pending'")
        .bind(member_id)
        .fetch_optional(db.read())
        .await
}
