//! Grants 授权 by security officers: create (with an activation code through the notifier),
//! list in scope, revoke; unlock and reset accounts; switch the active grant (角色切换).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::activation::{self, account_by_id_number, accounts_by_mobile, contact_of};
use super::store::{self, grants_of, GrantView};
use crate::access::{self, Actor, Role};
use crate::audit::{self, Event, Who};
use crate::db::subtree_upper;
use crate::error::{ApiError, ApiResult};
use crate::member::idcard;
use crate::notify::{self, Message};
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_grant_route, list_grants_route))
        .routes(routes!(revoke_grant_route))
        .routes(routes!(unlock_route))
        .routes(routes!(reset_route))
}

#[derive(Deserialize, ToSchema, Default, Clone)]
#[serde(default)]
pub struct NewGrant {
    /// 姓名
    pub name: String,
    /// 公民身份证号
    pub id_number: String,
    /// 手机号（接收授权码）
    pub mobile: String,
    /// `admin`, `security` or `auditor`
    pub role: String,
    /// 授权范围党组织
    pub org_id: String,
    /// 管理员级别（1-3）；缺省按党组织确定，只能降低不能提高
    pub tier: Option<u8>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantCreated {
    pub grant_id: String,
    pub account_id: String,
    /// Expiry of the activation code; absent when the person is already activated.
    pub expires_at: Option<String>,
}

/// One grant as the security officer sees it.
#[derive(Serialize, ToSchema, Clone)]
pub struct GrantItem {
    pub grant_id: String,
    pub account_id: String,
    pub name: String,
    /// Masked.
    pub id_number: String,
    pub role: Role,
    pub tier: Option<u8>,
    pub org_id: String,
    pub org_name: String,
    pub org_code: String,
    pub is_default: bool,
    /// `pending` 待激活, `active` 已激活, `revoked` 已撤销, `locked` 已锁定
    pub state: String,
    pub state_label: String,
    pub created_at: String,
    /// Expiry of the live activation code, if any.
    pub activation_expires_at: Option<String>,
}

/// The tiers a security officer may give an admin grant on an organisation: the computed one
/// or lower (a higher number).
pub fn allowed_tiers(category: &str, may_approve_development: bool) -> Vec<u8> {
    (access::tier_for_org(category, may_approve_development)..=3).collect()
}

fn parse_id_number(v: &str) -> ApiResult<String> {
    match idcard::parse(v, crate::db::today()) {
        Ok(idcard::IdNumber::Known { normalized, .. }) => Ok(normalized),
        Ok(idcard::IdNumber::Unknown) => Err(ApiError::field(
            "id_number",
            "授权须填写本人真实的公民身份证号",
        )),
        Err(e) => Err(ApiError::field("id_number", e.message())),
    }
}

/// Live grants' (id, role, org_id) of an account.
async fn live_grants(
    tx: &mut crate::db::Tx,
    account_id: &str,
) -> ApiResult<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, role, org_id FROM grants WHERE account_id = $1 AND revoked_at IS NULL",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Does the account still wait for activation (no password or no confirmed authenticator)?
async fn is_pending(tx: &mut crate::db::Tx, account_id: &str) -> ApiResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM accounts WHERE id = $1 AND (password_hash IS NULL OR totp_confirmed = 0)",
    )
    .bind(account_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// 授权: records the person and the grant; a person waiting for activation gets an
/// activation code through the notifier.
pub async fn create_grant(
    state: &AppState,
    actor: &Actor,
    req: &NewGrant,
) -> ApiResult<GrantCreated> {
    if actor.role != Role::Security {
        return Err(ApiError::forbidden(
            "只有安全员可以管理授权和账号（三员分立）",
        ));
    }
    let mut p = crate::fields::Problems::default();
    let name = p.take(crate::fields::required_text(
        "name",
        "姓名",
        Some(&req.name),
        50,
    ));
    let id_number = p.take(parse_id_number(&req.id_number));
    let mobile = p.take(crate::fields::mobile("mobile", "手机号", Some(&req.mobile)));
    let role = Role::parse(req.role.trim());
    if role.is_none() {
        p.add(
            "role",
            "角色应为管理员（admin）、安全员（security）或审计员（auditor）",
        );
    }
    if req.org_id.trim().is_empty() {
        p.add("org_id", "请选择授权范围党组织");
    }
    p.finish()?;
    let (Some(name), Some(id_number), Some(mobile), Some(role)) = (name, id_number, mobile, role)
    else {
        return Err(crate::fields::unset());
    };
    let Some(org) = crate::org::store::get(state.db.read(), req.org_id.trim()).await? else {
        return Err(ApiError::field("org_id", "授权范围党组织不存在"));
    };
    let allowed = access::grant_admin(actor, &org.code)?;
    if org.status != "active" {
        return Err(ApiError::field("org_id", "该党组织已撤销，不能授权"));
    }
    let tier = match role {
        Role::Admin => {
            let computed = access::tier_for_org(&org.category, org.may_approve_development != 0);
            match req.tier {
                None => Some(computed),
                Some(t) if !(1..=3).contains(&t) => {
                    return Err(ApiError::field("tier", "管理员级别应为1、2或3"))
                }
                Some(t) if t < computed => {
                    return Err(ApiError::field(
                        "tier",
                        format!("该党组织的管理员最高为{computed}级，安全员只能降低、不能提高级别"),
                    ))
                }
                Some(t) => Some(t),
            }
        }
        Role::Security | Role::Auditor => {
            if req.tier.is_some() {
                return Err(ApiError::field("tier", "安全员和审计员授权不设级别"));
            }
            None
        }
    };
    let mut tx = state.db.begin().await?;
    let existing = account_by_id_number(&mut *tx, &id_number).await?;
    let (account_id, registered_name) = match existing {
        Some((id, reg_name)) => {
            if id == actor.account_id {
                return Err(
                    ApiError::forbidden("不能给自己授权（三员分立）").with_field("id_number")
                );
            }
            // A person who already acts somewhere is the officer's only when every live grant
            // of theirs lies in the officer's subtree.
            let codes = store::live_grant_codes(&mut *tx, &id).await?;
            if !codes.is_empty() {
                access::account_admin(actor, &codes)?;
            }
            (id, Some(reg_name))
        }
        None => {
            if !accounts_by_mobile(&mut *tx, &mobile, false)
                .await?
                .is_empty()
            {
                return Err(ApiError::conflict_field(
                    "mobile",
                    "该手机号已登记给其他人员，请核对",
                ));
            }
            // A new person: an account without password or authenticator until activation.
            let placeholder = super::password::generate();
            let secret = super::totp::new_secret();
            let id = store::create_account(
                &mut tx,
                &store::NewAccount {
                    name: &name,
                    id_number: &id_number,
                    mobile: &mobile,
                    password: &placeholder,
                    totp_secret: &secret,
                    totp_confirmed: false,
                    must_change_password: false,
                },
            )
            .await?;
            activation::set_credentials(&mut tx, &allowed, &id, None, None).await?;
            (id, None)
        }
    };
    let live = live_grants(&mut tx, &account_id).await?;
    if let Some((_, other_role, _)) = live.iter().find(|g| g.1 != role.as_str()) {
        let label = Role::parse(other_role)
            .map(Role::label)
            .unwrap_or("其他角色");
        return Err(ApiError::conflict_field(
            "role",
            format!(
                "该人员已持有{label}授权，三员分立不允许同一人兼任{}",
                role.label()
            ),
        ));
    }
    if let Some(reg_name) = &registered_name {
        if reg_name.trim() != name {
            return Err(ApiError::field(
                "name",
                format!("该身份证号已登记的姓名为“{reg_name}”，与填写的姓名不一致"),
            ));
        }
    }
    let is_new = registered_name.is_none();
    if live.iter().any(|g| g.2 == org.id) {
        return Err(ApiError::conflict_field(
            "org_id",
            "该人员在该党组织已有授权",
        ));
    }
    if !store::claim_role_family(&mut tx, &account_id, role).await? {
        return Err(ApiError::conflict_field(
            "role",
            format!(
                "该人员已持有其他角色的授权，三员分立不允许同一人兼任{}",
                role.label()
            ),
        ));
    }
    let grant_id = store::create_grant(
        &mut tx,
        &allowed,
        &account_id,
        role,
        &org.id,
        tier,
        live.is_empty(),
        Some(&actor.account_id),
    )
    .await?;
    let pending = is_new || is_pending(&mut tx, &account_id).await?;
    let code = if pending {
        Some(
            activation::issue_activation_code(
                &mut tx,
                &account_id,
                Some(&grant_id),
                "grant",
                &actor.account_id,
            )
            .await?,
        )
    } else {
        None
    };
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("grant.create", &grant_id).with_detail(format!(
            "account {account_id} {} {} tier {}{}",
            role.as_str(),
            org.code,
            tier.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
            if is_new { " new account" } else { "" }
        )),
    )
    .await?;
    let contact = contact_of(&mut *tx, &account_id).await?;
    tx.commit().await?;
    let to = contact.map(|c| c.2).unwrap_or(mobile);
    let expires_at = match code {
        Some((code, expires)) => {
            notify::send(
                &state.config,
                &activation::activation_message(&to, &name, &code),
            )
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "notify_failed",
                    "授权已记录，但授权码短信发送失败，请稍后对该账号执行“重置”重新发送",
                )
            })?;
            Some(expires)
        }
        None => {
            let msg = Message {
                to,
                kind: "grant".to_string(),
                text: format!(
                    "【党员信息管理系统】{name}，您已获得{}的{}授权，可在登录后通过角色切换使用。",
                    org.name,
                    role.label()
                ),
                code: None,
            };
            let _ = notify::send(&state.config, &msg).await;
            None
        }
    };
    Ok(GrantCreated {
        grant_id,
        account_id,
        expires_at,
    })
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// 只列出该党组织及其下级的授权；缺省为安全员的管理范围
    pub org_id: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

fn state_of(
    revoked: bool,
    pending: bool,
    locked_until: Option<&str>,
) -> (&'static str, &'static str) {
    let locked = locked_until
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|t| t > Utc::now());
    if revoked {
        ("revoked", "已撤销")
    } else if locked {
        ("locked", "已锁定")
    } else if pending {
        ("pending", "待激活")
    } else {
        ("active", "已激活")
    }
}

/// Grants on organisations in the subtree of `org_id` (default: the officer's scope).
pub async fn list_grants(
    state: &AppState,
    actor: &Actor,
    q: &GrantQuery,
) -> ApiResult<Page<GrantItem>> {
    let scope_code = match q.org_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => {
            let Some(org) = crate::org::store::get(state.db.read(), id).await? else {
                return Err(ApiError::not_found("党组织").with_field("org_id"));
            };
            org.code
        }
        None => actor.org_code.clone(),
    };
    access::grant_admin(actor, &scope_code)?;
    let paging = Paging {
        page: q.page,
        per_page: q.per_page,
    };
    let total: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM grants g JOIN orgs o ON o.id = g.org_id WHERE o.code >= $1 AND o.code < $2",
    )
    .bind(&scope_code)
    .bind(subtree_upper(&scope_code))
    .fetch_one(state.db.read())
    .await?;
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<i64>,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    );
    // ENCRYPTED COLUMN: a.id_number (sealed; opened and shown masked).
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT g.id, a.id, a.name, a.id_number, g.role, g.tier, g.org_id, o.name, o.code, \
         g.is_default, g.created_at, g.revoked_at, \
         CASE WHEN a.password_hash IS NULL OR a.totp_confirmed = 0 THEN 1 ELSE 0 END, \
         a.locked_until, \
         (SELECT MAX(c.expires_at) FROM activation_codes c WHERE c.account_id = a.id \
          AND c.used_at IS NULL AND c.revoked_at IS NULL) \
         FROM grants g JOIN orgs o ON o.id = g.org_id JOIN accounts a ON a.id = g.account_id \
         WHERE o.code >= $1 AND o.code < $2 \
         ORDER BY CASE WHEN g.revoked_at IS NULL THEN 0 ELSE 1 END, g.created_at DESC \
         LIMIT $3 OFFSET $4",
    )
    .bind(&scope_code)
    .bind(subtree_upper(&scope_code))
    .bind(paging.per_page())
    .bind(paging.offset())
    .fetch_all(state.db.read())
    .await?;
    let items = rows
        .into_iter()
        .filter_map(|r| {
            let (s, label) = state_of(r.11.is_some(), r.12 != 0, r.13.as_deref());
            Some(GrantItem {
                grant_id: r.0,
                account_id: r.1,
                name: r.2,
                id_number: activation::open_id_number(&r.3)
                    .map(|n| idcard::mask(&n))
                    .unwrap_or_default(),
                role: Role::parse(&r.4)?,
                tier: r.5.map(|t| t as u8),
                org_id: r.6,
                org_name: r.7,
                org_code: r.8,
                is_default: r.9 != 0,
                state: s.to_string(),
                state_label: label.to_string(),
                created_at: r.10,
                activation_expires_at: r.14.filter(|_| s == "pending"),
            })
        })
        .collect();
    Ok(Page::new(items, total, &paging))
}

/// 撤销授权: the grant ends with its sessions.
pub async fn revoke_grant(state: &AppState, actor: &Actor, grant_id: &str) -> ApiResult<()> {
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT g.account_id, o.code, g.revoked_at FROM grants g \
         JOIN orgs o ON o.id = g.org_id WHERE g.id = $1",
    )
    .bind(grant_id)
    .fetch_optional(state.db.read())
    .await?;
    let Some((account_id, code, revoked_at)) = row else {
        return Err(ApiError::not_found("授权"));
    };
    access::grant_admin(actor, &code)?;
    if account_id == actor.account_id {
        return Err(ApiError::forbidden("不能撤销自己的授权"));
    }
    let codes = store::live_grant_codes(state.db.read(), &account_id).await?;
    let allowed = if codes.is_empty() {
        access::grant_admin(actor, &code)?
    } else {
        access::account_admin(actor, &codes)?
    };
    if revoked_at.is_some() {
        return Err(already_revoked());
    }
    let mut tx = state.db.begin().await?;
    if !store::revoke_grant(&mut tx, &allowed, grant_id, &account_id).await? {
        return Err(already_revoked());
    }
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("grant.revoke", grant_id).with_detail(format!("account {account_id}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn already_revoked() -> ApiError {
    ApiError::conflict("already_revoked", "该授权已撤销")
}

/// An account the officer may manage: every live grant of it lies in the officer's subtree
/// (`access::account_admin`).
async fn managed_account(
    state: &AppState,
    actor: &Actor,
    account_id: &str,
) -> ApiResult<access::Allowed> {
    if actor.role == Role::Security && account_id == actor.account_id {
        return Err(ApiError::forbidden("不能解锁或重置自己的账号"));
    }
    let codes = store::live_grant_codes(state.db.read(), account_id).await?;
    access::account_admin(actor, &codes)
}

/// 解锁: clears the lock and the failure count.
pub async fn unlock_account(state: &AppState, actor: &Actor, account_id: &str) -> ApiResult<()> {
    let allowed = managed_account(state, actor, account_id).await?;
    let mut tx = state.db.begin().await?;
    store::unlock(&mut tx, &allowed, account_id).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("account.unlock", account_id),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// 重置: clears password and authenticator, ends the sessions and sends a new activation code.
pub async fn reset_account(state: &AppState, actor: &Actor, account_id: &str) -> ApiResult<String> {
    let allowed = managed_account(state, actor, account_id).await?;
    let mut tx = state.db.begin().await?;
    store::reset_credentials(&mut tx, &allowed, account_id).await?;
    let (code, expires) =
        activation::issue_activation_code(&mut tx, account_id, None, "reset", &actor.account_id)
            .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("account.reset", account_id),
    )
    .await?;
    let contact = contact_of(&mut *tx, account_id).await?;
    tx.commit().await?;
    let Some((name, _, mobile)) = contact else {
        return Err(ApiError::not_found("账号"));
    };
    notify::send(
        &state.config,
        &activation::activation_message(&mobile, &name, &code),
    )
    .await?;
    Ok(expires)
}

/// 角色切换: makes another live grant of the account the session's active one.
pub async fn switch_grant(state: &AppState, actor: &Actor, grant_id: &str) -> ApiResult<GrantView> {
    let roles = grants_of(&state.db, &actor.account_id).await?;
    let Some(active) = roles.into_iter().find(|g| g.grant_id == grant_id) else {
        return Err(ApiError::not_found("授权").with_field("grant_id"));
    };
    let allowed = access::switch_grant(actor, active.role, active.tier)
        .map_err(|e| e.with_field("grant_id"))?;
    let mut tx = state.db.begin().await?;
    store::switch_session_grant(
        &mut tx,
        &allowed,
        &actor.session_token_hash,
        &active.grant_id,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("session.switch_role", &active.grant_id),
    )
    .await?;
    tx.commit().await?;
    Ok(active)
}

/// 退出所有设备: ends every session of the account.
pub async fn sign_out_everywhere(state: &AppState, actor: &Actor) -> ApiResult<u64> {
    let allowed = access::own_account(actor);
    let mut tx = state.db.begin().await?;
    let n = store::end_sessions(&mut tx, &allowed, &actor.account_id).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("session.sign_out_all", &actor.account_id).with_detail(format!("{n} sessions")),
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// 授权: security officers grant a role on an organisation in their subtree.
#[utoipa::path(post, path = "/api/v1/grants", request_body = NewGrant,
    responses((status = 201, body = GrantCreated), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn create_grant_route(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<NewGrant>,
) -> ApiResult<(StatusCode, Json<GrantCreated>)> {
    let created = create_grant(&state, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Grants in the security officer's subtree (or below `org_id`).
#[utoipa::path(get, path = "/api/v1/grants", params(GrantQuery),
    responses((status = 200, body = Page<GrantItem>), (status = 403, body = crate::error::ErrorBody)))]
async fn list_grants_route(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<GrantQuery>,
) -> ApiResult<Page<GrantItem>> {
    Paging::check(q.page, q.per_page)?;
    list_grants(&state, &actor, &q).await
}

/// 撤销授权: sets `revoked_at` and ends that grant's sessions.
#[utoipa::path(delete, path = "/api/v1/grants/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn revoke_grant_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_grant(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 解锁: clears the lock and the failure count of an account with a grant in scope.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/unlock", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn unlock_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    unlock_account(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct ResetDone {
    /// Expiry of the new activation code.
    pub expires_at: String,
}

/// 重置: clears password and authenticator and sends a new activation code.
#[utoipa::path(post, path = "/api/v1/accounts/{id}/reset", params(("id" = String, Path)),
    responses((status = 200, body = ResetDone), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn reset_route(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ResetDone>> {
    let expires_at = reset_account(&state, &actor, &id).await?;
    Ok(Json(ResetDone { expires_at }))
}
