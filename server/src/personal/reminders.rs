//! Registration reminders 注册提醒: a branch's admin sends each unregistered member of the
//! branch an SMS through the notifier, at most once a week per member. The week is claimed per
//! member by one conditional upsert of `registration_reminders`, in the transaction of the audit
//! record, so concurrent sends reach each member once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{self, Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::db::Tx;
use crate::error::{ApiError, ApiResult};
use crate::member::mask_phone;
use crate::notify::{self, Message};
use crate::state::AppState;

/// At most one reminder per member within this many days.
pub const REMINDER_DAYS: i64 = 7;

#[derive(Serialize, ToSchema)]
pub struct RemindersSent {
    /// Unregistered members of the branch.
    pub unregistered: i64,
    /// Reminders sent now.
    pub sent: i64,
    /// Already reminded within the week.
    pub skipped_recent: i64,
    /// Without a mobile to send to (neither registered phone nor a mobile contact phone).
    pub unreachable: i64,
    pub message: String,
}

/// Claims this week's reminder of `member_id`: true when none was sent within
/// [`REMINDER_DAYS`] (the row is written or moved forward), false otherwise.
async fn claim(
    tx: &mut Tx,
    _allowed: &Allowed,
    member_id: &str,
    by: &str,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let fmt = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let row: Option<String> = sqlx::query_scalar(
        "INSERT INTO registration_reminders (member_id, sent_at, sent_by) VALUES ($1, $2, $3) \
         ON CONFLICT (member_id) DO UPDATE SET sent_at = excluded.sent_at, sent_by = excluded.sent_by \
         WHERE registration_reminders.sent_at <= $4 RETURNING member_id",
    )
    .bind(member_id)
    .bind(fmt(now))
    .bind(by)
    .bind(fmt(now - Duration::days(REMINDER_DAYS)))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// Sends the reminders of the branch `org_id`.
pub async fn send(state: &AppState, actor: &Actor, org_id: &str) -> ApiResult<RemindersSent> {
    access::business_read(actor)?;
    let org = crate::org::routes::load(&state.db, org_id).await?;
    let allowed = access::registration_reminders(actor, &org.code)?;
    if !org.category().is_some_and(|c| c.is_branch()) {
        return Err(ApiError::conflict(
            "not_a_branch",
            "注册提醒由党支部发送给本支部未注册的党员，请选择党支部",
        ));
    }
    // Unregistered living members of the branch, with their phones (sealed).
    let rows: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT m.id, m.name, m.registered_phone, m.phone FROM members m \
         WHERE m.branch_id = $1 AND m.status = 'normal' AND NOT EXISTS \
         (SELECT 1 FROM member_accounts a WHERE a.member_id = m.id AND a.status = 'active') \
         ORDER BY m.id",
    )
    .bind(&org.id)
    .fetch_all(state.db.read())
    .await?;
    use crate::crypto::{open, open_opt, Column};
    let (mut sent, mut recent, mut unreachable) = (0i64, 0i64, 0i64);
    for (member_id, name, registered, phone) in &rows {
        let registered = open_opt(Column::MembersRegisteredPhone, registered.as_deref())?;
        let phone = open(Column::MembersPhone, phone)?;
        let to = registered
            .filter(|p| crate::fields::is_mobile(p))
            .or_else(|| Some(phone).filter(|p| crate::fields::is_mobile(p)));
        let Some(to) = to else {
            unreachable += 1;
            continue;
        };
        let mut tx = state.db.begin().await?;
        if !claim(&mut tx, &allowed, member_id, &actor.account_id).await? {
            recent += 1;
            continue;
        }
        audit::append(
            &mut tx,
            &Who::from(actor),
            Event::ok("member.registration_reminder", member_id)
                .in_org(org.code.clone())
                .with_detail(format!("{name} {}", mask_phone(&to))),
        )
        .await?;
        tx.commit().await?;
        notify::send(
            &state.config,
            &Message {
                to,
                kind: "registration_reminder".to_string(),
                text: format!(
                    "【党员信息管理系统】{name}同志，您尚未注册党员个人账号。请打开系统“党员注册”页面，\
                     凭本人身份证号、姓名和手机号完成实名注册。——{}",
                    org.name
                ),
                code: None,
            },
        )
        .await?;
        sent += 1;
    }
    Ok(RemindersSent {
        unregistered: rows.len() as i64,
        sent,
        skipped_recent: recent,
        unreachable,
        message: format!(
            "已向{sent}名未注册党员发送注册提醒；{recent}人本周已提醒过，{unreachable}人没有可接收短信的手机号"
        ),
    })
}

/// 注册提醒: an SMS to every unregistered member of the branch not reminded within the week.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/registration-reminders", params(("id" = String, Path)),
    responses((status = 200, body = RemindersSent), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(crate) async fn send_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RemindersSent>)> {
    Ok((StatusCode::OK, Json(send(&state, &actor, &id).await?)))
}
