//! The approval queue's JSON API and the operations the pages share: apply, decide, withdraw;
//! history lists, recovery, permanent deletion, cancel phone; correction delete, rename and the
//! registered phone change.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::history::{self, HistoryView, Leaving};
use super::rules::{Kind, Reason, State};
use super::store::{self, NewApplication, Queue};
use super::{
    mask_member_json, ApplicationData, ApplicationInput, ApplicationRow, ApplicationView, DataView,
    OpinionInput,
};
use crate::access::{self, Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::db::{today, Db};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::member::rules::MemberInput;
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_application, list_applications))
        .routes(routes!(get_application))
        .routes(routes!(approve_application))
        .routes(routes!(reject_application))
        .routes(routes!(withdraw_application))
        .routes(routes!(list_approvals))
        .routes(routes!(list_history))
        .routes(routes!(get_history))
        .routes(routes!(recover_history))
        .routes(routes!(purge_history))
        .routes(routes!(cancel_phone_history))
        .routes(routes!(correction_delete_member))
        .routes(routes!(rename_member))
        .routes(routes!(registered_phone_code))
        .routes(routes!(change_registered_phone))
}

const TEXT_MAX: usize = 200;

/// Applies for a status change, a supplementary entry, a rename review or a real-name filing;
/// returns the application's id. The applicant's tier and scope, the member's preconditions
/// and every field are checked before anything is written. An applicant that is itself the
/// approver (an admin of the approver organisation at the approver tier) has it approved as it
/// is made, both steps on the trail.
pub async fn apply(state: &AppState, actor: &Actor, input: &ApplicationInput) -> ApiResult<String> {
    let id = submit_checked(state, actor, input).await?;
    settle_own(&state.db, actor, &id).await?;
    Ok(id)
}

async fn submit_checked(
    state: &AppState,
    actor: &Actor,
    input: &ApplicationInput,
) -> ApiResult<String> {
    let db = &state.db;
    access::business_read(actor)?;
    let Some(kind) = input.kind.as_deref().map(str::trim).and_then(Kind::parse) else {
        return Err(ApiError::field("kind", "请选择申请类型"));
    };
    let mut p = Problems::default();
    if kind.concerns_living_member() {
        let member_id = input.member_id.as_deref().map(str::trim).unwrap_or("");
        if member_id.is_empty() {
            return Err(ApiError::field("member_id", "请选择党员"));
        }
        let (member, branch_name) = crate::member::routes::load(db, member_id).await?;
        let allowed = access::member_at_tier(
            actor,
            &member.org_code,
            kind.applicant_tiers(),
            kind.label(),
        )?;
        history::preconditions(db.read(), &member).await?;
        let mut data = ApplicationData::default();
        if kind.history_reason().is_some() {
            let label = kind.date_label();
            match input
                .date
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
            {
                None => p.add("date", format!("请填写{label}")),
                Some(d) => {
                    if let Some(d) = p.take(fields::date("date", label, d)) {
                        if let Some(d) = p.take(fields::not_future("date", label, d, today())) {
                            if d.to_string() < member.joined_on {
                                p.add("date", format!("{label}不能早于加入党组织日期"));
                            }
                            data.date = Some(d.to_string());
                        }
                    }
                }
            }
        }
        if kind == Kind::Rename {
            let new_name = p.take(fields::required_text(
                "new_name",
                "新姓名",
                input.new_name.as_deref(),
                50,
            ));
            if let Some(n) = &new_name {
                if *n == member.name {
                    p.add("new_name", "新姓名与现姓名相同");
                }
            }
            data.old_name = Some(member.name.clone());
            data.new_name = new_name;
        }
        // In the order of the forms: date, new name, reason, remark, documents.
        let (reason, remark, attachments) = common_fields(db, actor, kind, input, &mut p).await?;
        if kind == Kind::Rename && attachments.is_empty() {
            p.add(
                "attachments",
                "党员改名须上传证明材料（如户口簿、身份证复印件）",
            );
        }
        data.remark = remark;
        p.finish()?;
        data.reason = reason.ok_or_else(fields::unset)?;
        let chain = store::chain(db.read(), &member.org_code).await?;
        let approver =
            super::rules::approver(&chain, kind.approver_tier()).ok_or_else(no_approver(kind))?;
        store::submit(
            db,
            actor,
            NewApplication {
                kind,
                member_id: Some(&member.id),
                member_name: &member.name,
                subject_code: &member.org_code,
                subject_name: &branch_name,
                approver,
                data: &data,
                attachments: &attachments,
            },
            &allowed,
        )
        .await
    } else {
        let Some(m) = input.member.as_ref() else {
            p.finish()?;
            return Err(ApiError::field("member", "请填写党员信息"));
        };
        let (branch, _) =
            crate::member::routes::branch_for_entry(db, actor, m.branch_id.as_deref()).await?;
        let allowed =
            access::member_at_tier(actor, &branch.code, kind.applicant_tiers(), kind.label())?;
        let valid = p.take(crate::member::rules::validate(m, today()));
        let (reason, remark, attachments) = common_fields(db, actor, kind, input, &mut p).await?;
        if kind == Kind::Realname && attachments.is_empty() {
            p.add("attachments", "实名认证备案须上传本人签字的党员信息采集表");
        }
        p.finish()?;
        let v = valid.ok_or_else(fields::unset)?;
        let mut tx = db.begin().await?;
        crate::member::routes::ensure_unique(&mut tx, &v, "").await?;
        tx.rollback().await?;
        // A supplementary entry is an entry: the real-name source must confirm the person, or
        // the member comes in through a real-name filing instead.
        if kind == Kind::Supplement
            && matches!(
                crate::realname::check(state, &v.id_number, &v.name).await?,
                Some(crate::realname::Verdict::Mismatch)
            )
        {
            return Err(crate::member::routes::realname_mismatch());
        }
        let data = ApplicationData {
            reason: reason.ok_or_else(fields::unset)?,
            remark,
            member: Some(serde_json::to_value(m).map_err(ApiError::internal)?),
            ..ApplicationData::default()
        };
        let chain = store::chain(db.read(), &branch.code).await?;
        let approver =
            super::rules::approver(&chain, kind.approver_tier()).ok_or_else(no_approver(kind))?;
        store::submit(
            db,
            actor,
            NewApplication {
                kind,
                member_id: None,
                member_name: &v.name,
                subject_code: &branch.code,
                subject_name: &branch.name,
                approver,
                data: &data,
                attachments: &attachments,
            },
            &allowed,
        )
        .await
    }
}

/// Is the member in the actor's scope (a page checks before it reads what was posted)?
pub async fn member_in_scope(db: &Db, actor: &Actor, member_id: &str) -> ApiResult<()> {
    access::business_read(actor)?;
    let (member, _) = crate::member::routes::load(db, member_id).await?;
    access::member(actor, &member.org_code)?;
    Ok(())
}

/// The reason, the remark and the documents every application carries.
async fn common_fields(
    db: &Db,
    actor: &Actor,
    kind: Kind,
    input: &ApplicationInput,
    p: &mut Problems,
) -> ApiResult<(Option<String>, String, Vec<(String, String)>)> {
    let reason = p.take(fields::required_text(
        "reason",
        kind.reason_label(),
        input.reason.as_deref(),
        TEXT_MAX,
    ));
    let remark = p
        .take(fields::optional_text(
            "remark",
            "备注",
            input.remark.as_deref(),
            TEXT_MAX,
        ))
        .unwrap_or_default();
    let attachments = documents(db, actor, input.attachments.as_deref(), p).await?;
    Ok((reason, remark, attachments))
}

/// The documents 相关资料 an application names: uploaded (`POST /api/v1/attachments`), visible
/// to the actor, documents, and not yet part of another application. Returns (id, organisation
/// code) pairs for linking in the submission's transaction.
async fn documents(
    db: &Db,
    actor: &Actor,
    ids: Option<&[String]>,
    p: &mut Problems,
) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for id in ids
        .unwrap_or_default()
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
    {
        let row = crate::attachment::store::get(db, id).await?;
        match row {
            Some(r)
                if access::attachment(actor, &r.org_code).is_ok()
                    && r.kind == "document"
                    && r.owner_kind.is_none() =>
            {
                if !out.iter().any(|(i, _): &(String, String)| i == &r.id) {
                    out.push((r.id, r.org_code));
                }
            }
            _ => {
                p.add(
                    "attachments",
                    "相关资料不存在或已被其他申请使用，请重新上传",
                );
            }
        }
    }
    Ok(out)
}

/// Decides an application its applicant approves itself (see `access::decide_own`) at once.
async fn settle_own(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let row = load(db, id).await?;
    let Some(allowed) = access::decide_own(actor, &row.approver_org_code, row.approver_tier as u8)
    else {
        return Ok(());
    };
    let data = row.data()?;
    let mut tx = db.begin().await?;
    store::close(
        &mut tx,
        actor,
        &row,
        State::Approved,
        "申请单位即审批单位，提交即审批通过",
        &allowed,
    )
    .await?;
    effect(&mut tx, actor, &row, &data, &allowed).await?;
    tx.commit().await?;
    Ok(())
}

fn no_approver(kind: Kind) -> impl FnOnce() -> ApiError {
    move || {
        ApiError::conflict(
            "no_approver",
            format!(
                "上级党组织中没有可审批“{}”的{}",
                kind.label(),
                crate::access::tier_label(kind.approver_tier())
            ),
        )
    }
}

async fn load(db: &Db, id: &str) -> ApiResult<ApplicationRow> {
    store::get(db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("申请"))
}

fn read_allowed(actor: &Actor, row: &ApplicationRow) -> ApiResult<Allowed> {
    access::application_read(
        actor,
        (&row.approver_org_code, row.approver_tier as u8),
        &row.applicant_org_code,
        &row.subject_org_code,
    )
}

/// One application with its trail, as the caller may see it.
/// The application `id`, if the actor may read it.
pub async fn readable(db: &Db, actor: &Actor, id: &str) -> ApiResult<ApplicationRow> {
    let row = load(db, id).await?;
    read_allowed(actor, &row)?;
    Ok(row)
}

pub async fn view(db: &Db, actor: &Actor, id: &str) -> ApiResult<ApplicationView> {
    let row = readable(db, actor, id).await?;
    let steps = store::steps(db, id).await?;
    to_view(actor, row, steps)
}

fn to_view(
    actor: &Actor,
    row: ApplicationRow,
    steps: Vec<super::StepView>,
) -> ApiResult<ApplicationView> {
    let data = row.data()?;
    let pending = row.state() == State::Pending;
    let can_decide = pending
        && access::decide(
            actor,
            &row.approver_org_code,
            row.approver_tier as u8,
            &row.applicant_account_id,
        )
        .is_ok();
    let can_withdraw = pending && access::withdraw(actor, &row.applicant_org_code).is_ok();
    Ok(ApplicationView {
        kind: row.kind(),
        kind_label: row.kind().label().to_string(),
        state: row.state(),
        state_label: row.state().label().to_string(),
        attachments: row.attachment_ids(),
        data: DataView {
            date: data.date,
            reason: data.reason,
            remark: data.remark,
            old_name: data.old_name,
            new_name: data.new_name,
            member: data.member.as_ref().map(mask_member_json),
        },
        id: row.id,
        member_id: row.member_id,
        member_name: row.member_name,
        organisation: row.subject_org_name,
        applicant_name: row.applicant_name,
        applicant_org_name: row.applicant_org_name,
        approver_org_name: row.approver_org_name,
        approver_tier: row.approver_tier,
        steps,
        submitted_at: row.submitted_at,
        decided_at: row.decided_at,
        can_decide,
        can_withdraw,
    })
}

/// Approves or rejects a pending application: the decision, its effect on the member, the
/// trail step and the audit record in one transaction. Of several concurrent or repeated
/// decisions exactly one has an effect; the others are answered 409.
pub async fn decide(
    db: &Db,
    actor: &Actor,
    id: &str,
    approve: bool,
    opinion: Option<&str>,
) -> ApiResult<()> {
    let row = load(db, id).await?;
    read_allowed(actor, &row)?;
    let allowed = access::decide(
        actor,
        &row.approver_org_code,
        row.approver_tier as u8,
        &row.applicant_account_id,
    )?;
    let opinion = if approve {
        fields::optional_text("opinion", "审核意见", opinion, TEXT_MAX)?
    } else {
        fields::required_text("opinion", "审核意见（不通过的理由）", opinion, TEXT_MAX)?
    };
    let opinion = if opinion.is_empty() {
        "同意".to_string()
    } else {
        opinion
    };
    let data = row.data()?;
    let mut tx = db.begin().await?;
    let to = if approve {
        State::Approved
    } else {
        State::Rejected
    };
    store::close(&mut tx, actor, &row, to, &opinion, &allowed).await?;
    if approve {
        effect(&mut tx, actor, &row, &data, &allowed).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What an approved application does, inside the decision's transaction.
async fn effect(
    tx: &mut crate::db::Tx,
    actor: &Actor,
    row: &ApplicationRow,
    data: &ApplicationData,
    allowed: &Allowed,
) -> ApiResult<()> {
    let kind = row.kind();
    if let Some(reason) = kind.history_reason() {
        let member_id = row.member_id.as_deref().unwrap_or("");
        let member: Option<crate::member::MemberRow> = sqlx::query_as(&format!(
            "SELECT {} FROM members m WHERE m.id = $1",
            crate::member::MEMBER_COLUMNS
        ))
        .bind(member_id)
        .fetch_optional(&mut **tx)
        .await?;
        let member = member
            .ok_or_else(|| ApiError::conflict("member_gone", "该党员已不在党员信息库中"))?
            .decrypted()?;
        history::preconditions(&mut **tx, &member).await?;
        let history_id = history::move_out(
            tx,
            actor,
            Leaving {
                member_id,
                reason,
                left_on: data.date.as_deref().unwrap_or(""),
                remark: &data.reason,
                application_id: Some(&row.id),
            },
            allowed,
        )
        .await?;
        audit::append(
            tx,
            &Who::from(actor),
            Event::ok("member.leave", member_id)
                .in_org(member.org_code.clone())
                .with_detail(format!("{} {} {}", member.name, reason.label(), history_id)),
        )
        .await?;
        return Ok(());
    }
    match kind {
        Kind::Rename => {
            let member_id = row.member_id.as_deref().unwrap_or("");
            let new_name = data.new_name.as_deref().unwrap_or("");
            crate::member::routes::set_name(tx, member_id, new_name, allowed).await?;
            audit::append(
                tx,
                &Who::from(actor),
                Event::ok("member.rename", member_id)
                    .in_org(row.subject_org_code.clone())
                    .with_detail(format!(
                        "{} → {}",
                        data.old_name.as_deref().unwrap_or(""),
                        new_name
                    )),
            )
            .await?;
        }
        // The member's correction request: the approval is the branch's answer; the branch
        // corrects the record through its form (every field rule applies there).
        // The member's transfer request: approved, the branch starts the transfer from the
        // member's record (党员转出申请), where every rule of the transfer applies.
        Kind::Correction | Kind::TransferRequest => {}
        Kind::Supplement | Kind::Realname => {
            let input: MemberInput = data
                .member
                .clone()
                .map(serde_json::from_value)
                .transpose()
                .map_err(ApiError::internal)?
                .unwrap_or_default();
            let v = crate::member::rules::validate(&input, today())?;
            let branch_id = input.branch_id.as_deref().unwrap_or("");
            let branch = crate::org::store::get(&mut **tx, branch_id)
                .await?
                .filter(|b| b.is_active())
                .ok_or_else(|| {
                    ApiError::conflict("org_revoked", "所在党支部已撤销或删除，不能入库")
                })?;
            crate::member::routes::ensure_unique(tx, &v, "").await?;
            let member_id = crate::db::new_id();
            crate::member::routes::write(tx, &member_id, &branch, &v, true, allowed).await?;
            history::ledger(
                tx,
                &member_id,
                &branch.code,
                "added",
                kind.as_str(),
                "addition",
                Some(&row.id),
            )
            .await?;
            audit::append(
                tx,
                &Who::from(actor),
                Event::ok("member.create", &member_id)
                    .in_org(branch.code.clone())
                    .with_detail(format!(
                        "{} {}（{}）",
                        v.name,
                        crate::member::idcard::mask(&v.id_number),
                        kind.label()
                    )),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Withdraws a pending application 取消申请.
pub async fn withdraw(db: &Db, actor: &Actor, id: &str, opinion: Option<&str>) -> ApiResult<()> {
    let row = load(db, id).await?;
    read_allowed(actor, &row)?;
    let allowed = access::withdraw(actor, &row.applicant_org_code)?;
    let opinion = fields::optional_text("opinion", "取消原因", opinion, TEXT_MAX)?;
    let mut tx = db.begin().await?;
    store::close(&mut tx, actor, &row, State::Withdrawn, &opinion, &allowed).await?;
    tx.commit().await?;
    Ok(())
}

/// One page of a queue as the caller sees it.
pub async fn queue(
    db: &Db,
    actor: &Actor,
    queue: Queue,
    state: Option<State>,
    paging: &Paging,
) -> ApiResult<Page<ApplicationView>> {
    access::business_read(actor)?;
    let (rows, total) = store::list(db, actor, queue, state, paging).await?;
    let items = rows
        .into_iter()
        .map(|r| to_view(actor, r, Vec::new()))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Page::new(items, total, paging))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// pending | approved | rejected | withdrawn; absent: every state
    #[param(value_type = Option<State>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

impl QueueQuery {
    fn parts(&self) -> ApiResult<(Option<State>, Paging)> {
        let state = match self.state.as_deref() {
            None => None,
            Some(s) => {
                Some(State::parse(s).ok_or_else(|| ApiError::field("state", "审批状态不正确"))?)
            }
        };
        Ok((state, Paging::check(self.page, self.per_page)?))
    }
}

/// `POST /applications`: apply 提交申请.
#[utoipa::path(post, path = "/api/v1/applications", request_body = ApplicationInput,
    responses((status = 201, body = ApplicationView)))]
async fn create_application(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<ApplicationInput>,
) -> ApiResult<(StatusCode, Json<ApplicationView>)> {
    let id = apply(&state, &actor, &req).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state.db, &actor, &id).await?),
    ))
}

/// `GET /applications`: the applications of the caller's organisation and those below 我的申请.
#[utoipa::path(get, path = "/api/v1/applications", params(QueueQuery),
    responses((status = 200, body = Page<ApplicationView>)))]
async fn list_applications(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Page<ApplicationView>> {
    let (st, paging) = q.parts()?;
    queue(&state.db, &actor, Queue::Submitted, st, &paging).await
}

/// `GET /approvals`: the items the caller approves 维护审批.
#[utoipa::path(get, path = "/api/v1/approvals", params(QueueQuery),
    responses((status = 200, body = Page<ApplicationView>)))]
async fn list_approvals(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> ApiResult<Page<ApplicationView>> {
    let (st, paging) = q.parts()?;
    queue(&state.db, &actor, Queue::Inbox, st, &paging).await
}

/// `GET /applications/{id}`: one application with its trail 审核意见.
#[utoipa::path(get, path = "/api/v1/applications/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ApplicationView)))]
async fn get_application(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ApplicationView>> {
    Ok(Json(view(&state.db, &actor, &id).await?))
}

/// `POST /applications/{id}/approve`: 审批通过.
#[utoipa::path(post, path = "/api/v1/applications/{id}/approve", params(("id" = String, Path)),
    request_body = OpinionInput, responses((status = 200, body = ApplicationView)))]
async fn approve_application(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OpinionInput>,
) -> ApiResult<Json<ApplicationView>> {
    decide(&state.db, &actor, &id, true, req.opinion.as_deref()).await?;
    Ok(Json(view(&state.db, &actor, &id).await?))
}

/// `POST /applications/{id}/reject`: 审批不通过 (an opinion is required).
#[utoipa::path(post, path = "/api/v1/applications/{id}/reject", params(("id" = String, Path)),
    request_body = OpinionInput, responses((status = 200, body = ApplicationView)))]
async fn reject_application(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OpinionInput>,
) -> ApiResult<Json<ApplicationView>> {
    decide(&state.db, &actor, &id, false, req.opinion.as_deref()).await?;
    Ok(Json(view(&state.db, &actor, &id).await?))
}

/// `POST /applications/{id}/withdraw`: 取消申请 while pending.
#[utoipa::path(post, path = "/api/v1/applications/{id}/withdraw", params(("id" = String, Path)),
    request_body = OpinionInput, responses((status = 200, body = ApplicationView)))]
async fn withdraw_application(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OpinionInput>,
) -> ApiResult<Json<ApplicationView>> {
    withdraw(&state.db, &actor, &id, req.opinion.as_deref()).await?;
    Ok(Json(view(&state.db, &actor, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// exit 出党 | stopped 停止党籍 | death 去世 | other 其他原因减少 | correction 党员补删
    #[param(value_type = Reason, inline)]
    pub reason: Option<String>,
    /// Part of the name 姓名
    pub q: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// One page of a history list in the caller's scope.
pub async fn history_list(
    db: &Db,
    actor: &Actor,
    q: &HistoryQuery,
) -> ApiResult<Page<HistoryView>> {
    access::business_read(actor)?;
    let reason = q
        .reason
        .as_deref()
        .map(str::trim)
        .and_then(Reason::parse)
        .ok_or_else(|| ApiError::field("reason", "请选择历史党员类别"))?;
    let paging = Paging::check(q.page, q.per_page)?;
    let (rows, total) = history::list(db, actor, reason, q.q.as_deref(), &paging).await?;
    Ok(Page::new(
        rows.into_iter().map(|(h, b)| h.view(b)).collect(),
        total,
        &paging,
    ))
}

/// `GET /history`: 出党管理, 停止党籍管理, 去世管理, 其他减少管理 (and 党员补删 records).
#[utoipa::path(get, path = "/api/v1/history", params(HistoryQuery),
    responses((status = 200, body = Page<HistoryView>)))]
async fn list_history(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Page<HistoryView>> {
    history_list(&state.db, &actor, &q).await
}

async fn history_row(db: &Db, actor: &Actor, id: &str) -> ApiResult<(history::HistoryRow, String)> {
    access::business_read(actor)?;
    let row = history::get(db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("历史党员"))?;
    access::member(actor, &row.member.org_code)?;
    let branch: Option<String> = sqlx::query_scalar("SELECT name FROM orgs WHERE id = $1")
        .bind(&row.member.branch_id)
        .fetch_optional(db.read())
        .await?;
    Ok((row, branch.unwrap_or_default()))
}

/// One history record (masked), audited like a member record view.
pub async fn history_view(db: &Db, actor: &Actor, id: &str) -> ApiResult<HistoryView> {
    let (row, branch) = history_row(db, actor, id).await?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("history.view", id)
            .in_org(row.member.org_code.clone())
            .with_detail(row.member.name.clone()),
    )
    .await?;
    Ok(row.view(branch))
}

/// `GET /history/{id}`: one history record.
#[utoipa::path(get, path = "/api/v1/history/{id}", params(("id" = String, Path)),
    responses((status = 200, body = HistoryView)))]
async fn get_history(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryView>> {
    Ok(Json(history_view(&state.db, &actor, &id).await?))
}

/// A written reason or remark.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ReasonInput {
    /// 找回原因 / 删除原因 / 备注 (required, at most 200 characters)
    #[schema(min_length = 1)]
    pub reason: Option<String>,
}

/// Which operation on a history record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryAction {
    Recover,
    Purge,
    CancelPhone,
}

impl HistoryAction {
    fn label(self) -> &'static str {
        match self {
            HistoryAction::Recover => "找回",
            HistoryAction::Purge => "永久删除",
            HistoryAction::CancelPhone => "注销手机号",
        }
    }

    fn tiers(self) -> &'static [u8] {
        match self {
            HistoryAction::Recover | HistoryAction::Purge => &[1],
            HistoryAction::CancelPhone => &[2],
        }
    }
}

/// Recovery 找回 (tier 1, a written reason), permanent deletion of other-decrease records
/// (tier 1, a reason) and cancel phone of deceased members (tier 2), each with its audit record
/// in the same transaction.
pub async fn history_act(
    db: &Db,
    actor: &Actor,
    id: &str,
    action: HistoryAction,
    reason: Option<&str>,
) -> ApiResult<()> {
    let (row, _) = history_row(db, actor, id).await?;
    let allowed =
        access::member_at_tier(actor, &row.member.org_code, action.tiers(), action.label())?;
    let r = row.reason();
    match action {
        HistoryAction::Recover if !r.recoverable() => {
            return Err(ApiError::conflict(
                "not_recoverable",
                "党员补删记录不能找回，请重新录入",
            ))
        }
        HistoryAction::Purge if r != Reason::Other => {
            return Err(ApiError::conflict(
                "not_purgeable",
                "只有“其他原因减少”的历史党员可以永久删除",
            ))
        }
        HistoryAction::CancelPhone if r != Reason::Death => {
            return Err(ApiError::conflict(
                "not_deceased",
                "只能注销去世党员的注册手机号",
            ))
        }
        _ => {}
    }
    let text = match action {
        HistoryAction::CancelPhone => fields::optional_text("reason", "备注", reason, TEXT_MAX)?,
        HistoryAction::Recover => fields::required_text("reason", "找回原因", reason, TEXT_MAX)?,
        HistoryAction::Purge => fields::required_text("reason", "删除原因", reason, TEXT_MAX)?,
    };
    let mut tx = db.begin().await?;
    let (what, target) = match action {
        HistoryAction::Recover => {
            history::recover(&mut tx, &row, &text, &allowed).await?;
            ("member.recover", row.member.id.as_str())
        }
        HistoryAction::Purge => {
            history::purge(&mut tx, &row, &allowed).await?;
            ("history.purge", row.history_id.as_str())
        }
        HistoryAction::CancelPhone => {
            history::cancel_phone(&mut tx, &row, &allowed).await?;
            ("history.cancel_phone", row.history_id.as_str())
        }
    };
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok(what, target)
            .in_org(row.member.org_code.clone())
            .with_detail(format!("{} {}：{}", row.member.name, r.label(), text)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /history/{id}/recover`: 找回 (tier 1, with a written reason); statistics count it as a
/// correction, not an addition.
#[utoipa::path(post, path = "/api/v1/history/{id}/recover", params(("id" = String, Path)),
    request_body = ReasonInput, responses((status = 204)))]
async fn recover_history(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonInput>,
) -> ApiResult<StatusCode> {
    history_act(
        &state.db,
        &actor,
        &id,
        HistoryAction::Recover,
        req.reason.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /history/{id}/purge`: permanent deletion of an other-decrease record (tier 1, with a
/// reason); irreversible.
#[utoipa::path(post, path = "/api/v1/history/{id}/purge", params(("id" = String, Path)),
    request_body = ReasonInput, responses((status = 204)))]
async fn purge_history(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonInput>,
) -> ApiResult<StatusCode> {
    history_act(
        &state.db,
        &actor,
        &id,
        HistoryAction::Purge,
        req.reason.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /history/{id}/cancel-phone`: 注销手机号 of a deceased member (tier 2).
#[utoipa::path(post, path = "/api/v1/history/{id}/cancel-phone", params(("id" = String, Path)),
    request_body = ReasonInput, responses((status = 204)))]
async fn cancel_phone_history(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonInput>,
) -> ApiResult<StatusCode> {
    history_act(
        &state.db,
        &actor,
        &id,
        HistoryAction::CancelPhone,
        req.reason.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Correction delete 党员补删 (tier 3, with a remark): a member entered by mistake leaves the
/// living database; the record of the deletion is kept.
pub async fn correction_delete(
    db: &Db,
    actor: &Actor,
    member_id: &str,
    remark: Option<&str>,
) -> ApiResult<()> {
    access::business_read(actor)?;
    let (member, _) = crate::member::routes::load(db, member_id).await?;
    let allowed = access::member_at_tier(actor, &member.org_code, &[3], "党员补删")?;
    history::preconditions(db.read(), &member).await?;
    let remark = fields::required_text("reason", "补删说明", remark, TEXT_MAX)?;
    let today = today().to_string();
    let mut tx = db.begin().await?;
    history::move_out(
        &mut tx,
        actor,
        Leaving {
            member_id,
            reason: Reason::Correction,
            left_on: &today,
            remark: &remark,
            application_id: None,
        },
        &allowed,
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member.correction_delete", member_id)
            .in_org(member.org_code.clone())
            .with_detail(format!("{}：{}", member.name, remark)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /members/{id}/correction-delete`: 党员补删.
#[utoipa::path(post, path = "/api/v1/members/{id}/correction-delete", params(("id" = String, Path)),
    request_body = ReasonInput, responses((status = 204)))]
async fn correction_delete_member(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReasonInput>,
) -> ApiResult<StatusCode> {
    correction_delete(&state.db, &actor, &id, req.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A rename 党员改名.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RenameInput {
    /// 新姓名
    #[schema(min_length = 1)]
    pub new_name: Option<String>,
    /// 改名原因
    #[schema(min_length = 1)]
    pub reason: Option<String>,
    /// Ids of uploaded documents (needed when the real-name source does not confirm the name)
    pub attachments: Option<Vec<String>>,
}

/// What a rename came to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RenameOutcome {
    /// done: the real-name source confirmed the new name and it is saved; review: it did not,
    /// and a rename application 党员改名 waits for tier 1
    pub outcome: String,
    pub message: String,
    /// The review application, when one was made
    pub application_id: Option<String>,
}

/// Renames a member: a new name the real-name source confirms is saved at once; otherwise a
/// rename application with documents goes to tier 1.
pub async fn rename(
    state: &AppState,
    actor: &Actor,
    member_id: &str,
    input: &RenameInput,
) -> ApiResult<RenameOutcome> {
    let db = &state.db;
    access::business_read(actor)?;
    let (member, _) = crate::member::routes::load(db, member_id).await?;
    let allowed = access::member(actor, &member.org_code)?;
    let mut p = Problems::default();
    let new_name = p.take(fields::required_text(
        "new_name",
        "新姓名",
        input.new_name.as_deref(),
        50,
    ));
    let reason = p.take(fields::required_text(
        "reason",
        "改名原因",
        input.reason.as_deref(),
        TEXT_MAX,
    ));
    if new_name.as_deref() == Some(member.name.as_str()) {
        p.add("new_name", "新姓名与现姓名相同");
    }
    p.finish()?;
    let new_name = new_name.ok_or_else(fields::unset)?;
    let reason = reason.ok_or_else(fields::unset)?;
    history::preconditions(db.read(), &member).await?;
    if super::realname_confirms(state, &member.id_number, &new_name).await? {
        let mut tx = db.begin().await?;
        crate::member::routes::set_name(&mut tx, member_id, &new_name, &allowed).await?;
        audit::append(
            &mut tx,
            &Who::from(actor),
            Event::ok("member.rename", member_id)
                .in_org(member.org_code.clone())
                .with_detail(format!(
                    "{} → {}（实名认证通过）：{}",
                    member.name, new_name, reason
                )),
        )
        .await?;
        tx.commit().await?;
        return Ok(RenameOutcome {
            outcome: "done".into(),
            message: format!("新姓名已通过实名认证，已改名为“{new_name}”"),
            application_id: None,
        });
    }
    let id = apply(
        state,
        actor,
        &ApplicationInput {
            kind: Some(Kind::Rename.as_str().into()),
            member_id: Some(member_id.into()),
            new_name: Some(new_name),
            reason: Some(reason),
            attachments: input.attachments.clone(),
            ..ApplicationInput::default()
        },
    )
    .await?;
    Ok(RenameOutcome {
        outcome: "review".into(),
        message: "新姓名未通过实名认证，已提交党员改名申请，由县级党委组织部门审核".into(),
        application_id: Some(id),
    })
}

/// `POST /members/{id}/rename`: 党员改名.
#[utoipa::path(post, path = "/api/v1/members/{id}/rename", params(("id" = String, Path)),
    request_body = RenameInput, responses((status = 200, body = RenameOutcome)))]
async fn rename_member(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RenameInput>,
) -> ApiResult<Json<RenameOutcome>> {
    Ok(Json(rename(&state, &actor, &id, &req).await?))
}

/// A new registered phone 注册手机号, and the code sent to it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PhoneInput {
    /// The new registered phone (a mobile number)
    #[schema(pattern = "^1[0-9]{10}$")]
    pub phone: Option<String>,
    /// The six-digit code sent to it (only to save)
    pub code: Option<String>,
}

/// `POST /members/{id}/registered-phone/code`: sends a verification code to the new phone.
#[utoipa::path(post, path = "/api/v1/members/{id}/registered-phone/code", params(("id" = String, Path)),
    request_body = PhoneInput, responses((status = 204), (status = 429, body = crate::error::ErrorBody)))]
async fn registered_phone_code(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PhoneInput>,
) -> ApiResult<StatusCode> {
    super::phone::send_code(&state, &actor, &id, req.phone.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /members/{id}/registered-phone`: saves the new registered phone with its code.
#[utoipa::path(post, path = "/api/v1/members/{id}/registered-phone", params(("id" = String, Path)),
    request_body = PhoneInput, responses((status = 204)))]
async fn change_registered_phone(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PhoneInput>,
) -> ApiResult<StatusCode> {
    super::phone::change(
        &state,
        &actor,
        &id,
        req.phone.as_deref(),
        req.code.as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
