//! The transfers' JSON API and the operations the pages share: start 转出, register 转入登记,
//! view, and the actions on the path (approve, return, receive, withdraw, void, resubmit,
//! re-route, abnormal completion, re-issue the letter).

use axum::extract::{Path, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rules::{self, Direction, Kind, PathOrg, State};
use super::store::{self, NewTransfer};
use super::{
    Abilities, AbnormalInput, Contact, Contacts, DecisionInput, InboundInput, NoteInput,
    RerouteInput, TransferData, TransferInput, TransferRow, TransferView,
};
use crate::access::{self, Actor, Allowed};
use crate::crypto::Column;
use crate::db::today;
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::org::rules::Category;
use crate::state::{ApiJson, ApiQuery, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_transfer))
        .routes(routes!(create_inbound))
        .routes(routes!(transfer_contacts))
        .routes(routes!(transfer_draft_route))
        .routes(routes!(get_transfer))
        .routes(routes!(decide_transfer))
        .routes(routes!(receive_transfer))
        .routes(routes!(withdraw_transfer))
        .routes(routes!(void_transfer))
        .routes(routes!(resubmit_transfer))
        .routes(routes!(reroute_transfer))
        .routes(routes!(abnormal_transfer))
        .routes(routes!(reissue_letter))
        .routes(routes!(transfer_letter))
        .routes(routes!(transfer_letter_pdf))
        .routes(routes!(get_transfer_settings, put_transfer_settings))
}

/// An organisation's transfer settings.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferSettings {
    /// 自动审核: transfer steps at this organisation pass at once (recorded as such)
    pub auto_approve: bool,
}

/// Reads or sets (`on`) whether the organisation passes transfer steps at once: its own admins
/// and those above it.
pub async fn settings(
    state: &AppState,
    actor: &Actor,
    org_id: &str,
    on: Option<bool>,
) -> ApiResult<bool> {
    let org = crate::org::routes::load(&state.db, org_id).await?;
    let allowed = access::org(actor, &org.code, crate::access::Reach::Subtree)?;
    if let Some(on) = on {
        store::set_auto_approve(&state.db, actor, &org, on, &allowed).await?;
    }
    Ok(store::auto_approve(state.db.read(), org_id)
        .await?
        .unwrap_or(false))
}

/// `GET /orgs/{id}/transfer-settings`: whether the organisation passes transfer steps at once.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/transfer-settings", params(("id" = String, Path)),
    responses((status = 200, body = TransferSettings)))]
async fn get_transfer_settings(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferSettings>> {
    let on = settings(&state, &actor, &id, None).await?;
    Ok(Json(TransferSettings { auto_approve: on }))
}

/// `PUT /orgs/{id}/transfer-settings`: mark the organisation 自动审核 or not; audited.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/transfer-settings", params(("id" = String, Path)),
    request_body = TransferSettings, responses((status = 200, body = TransferSettings)))]
async fn put_transfer_settings(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<TransferSettings>> {
    // Out of scope is answered as such before the body is judged.
    settings(&state, &actor, &id, None).await?;
    let req: TransferSettings = serde_json::from_slice(&body).map_err(|_| {
        ApiError::field(
            "auto_approve",
            "请求内容应为 {\"auto_approve\": true 或 false}",
        )
    })?;
    let on = settings(&state, &actor, &id, Some(req.auto_approve)).await?;
    Ok(Json(TransferSettings { auto_approve: on }))
}

const TEXT_MAX: usize = 200;

fn contact_checked(p: &mut Problems, prefix: &str, label: &str, c: &Contact) -> Contact {
    let mut text = |name: &str, what: &str, v: &str, max: usize| -> String {
        p.take(fields::optional_text(
            &format!("contacts.{prefix}.{name}"),
            &format!("{label}{what}"),
            Some(v),
            max,
        ))
        .unwrap_or_default()
    };
    let out = Contact {
        contact: text("contact", "联系人", &c.contact, 20),
        phone: text("phone", "联系电话", &c.phone, 20),
        fax: text("fax", "传真", &c.fax, 20),
        postcode: text("postcode", "邮编", &c.postcode, 6),
        address: text("address", "通讯地址", &c.address, 100),
    };
    for (name, what, v) in [("phone", "联系电话", &out.phone), ("fax", "传真", &out.fax)] {
        if !(v.is_empty() || fields::is_mobile(v) || fields::is_landline(v)) {
            p.add(
                &format!("contacts.{prefix}.{name}"),
                format!("{label}{what}格式不正确，应为手机号或区号-号码"),
            );
        }
    }
    let postcode_ok = out.postcode.len() == 6 && out.postcode.bytes().all(|b| b.is_ascii_digit());
    if !out.postcode.is_empty() && !postcode_ok {
        p.add(
            &format!("contacts.{prefix}.postcode"),
            format!("{label}邮编应为6位数字"),
        );
    }
    out
}

fn contacts_checked(p: &mut Problems, c: Option<&Contacts>) -> Contacts {
    let c = c.cloned().unwrap_or_default();
    Contacts {
        source: contact_checked(p, "source", "转出党支部", &c.source),
        committee: contact_checked(p, "committee", "所在基层党委", &c.committee),
        receiving: contact_checked(p, "receiving", "接收方", &c.receiving),
    }
}

fn kind_checked(p: &mut Problems, kind: Option<&str>, direction: Direction) -> Option<Kind> {
    match kind.map(str::trim).and_then(Kind::parse) {
        Some(k) if k.direction() == direction => Some(k),
        _ => {
            p.add(
                "kind",
                match direction {
                    Direction::Outbound => "请选择转出类型",
                    Direction::Inbound => "请选择转入类型",
                },
            );
            None
        }
    }
}

fn month_checked(p: &mut Problems, field: &str, label: &str, v: Option<&str>) -> String {
    let v = v.map(str::trim).unwrap_or("");
    if v.is_empty() {
        p.add(field, format!("请填写{label}"));
        return String::new();
    }
    let ok = chrono::NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d")
        .ok()
        .filter(|d| *d <= today() && v.len() == 7);
    if ok.is_none() {
        p.add(field, format!("{label}应为不晚于本月的年月，格式 YYYY-MM"));
    }
    v.to_string()
}

/// A target branch of the platform: exists, active, branch-type.
async fn target_branch(state: &AppState, p: &mut Problems, id: Option<&str>) -> Option<PathOrg> {
    let id = id.map(str::trim).unwrap_or("");
    if id.is_empty() {
        p.add("to_org_id", "请选择接收党支部");
        return None;
    }
    let Ok(Some(org)) = crate::org::store::get(state.db.read(), id).await else {
        p.add("to_org_id", "接收党支部不存在");
        return None;
    };
    if !org.category().is_some_and(Category::is_branch) {
        p.add(
            "to_org_id",
            format!("“{}”不是党支部，组织关系只能转入党支部", org.name),
        );
        return None;
    }
    if !org.is_active() {
        p.add("to_org_id", format!("党组织“{}”已撤销", org.name));
        return None;
    }
    store::chain(state.db.read(), &org.code)
        .await
        .ok()
        .and_then(|c| c.last().cloned())
}

/// Starts an outbound transfer 转出申请 for a member in the actor's scope; returns its id.
pub async fn start(state: &AppState, actor: &Actor, input: &TransferInput) -> ApiResult<String> {
    access::business_read(actor)?;
    let member_id = input.member_id.as_deref().map(str::trim).unwrap_or("");
    if member_id.is_empty() {
        return Err(ApiError::field("member_id", "请选择党员"));
    }
    let (member, _branch_name) = crate::member::routes::load(&state.db, member_id).await?;
    let allowed = access::member(actor, &member.org_code)?;
    if member.in_transfer != 0 {
        let open = store::open_for_member(state.db.read(), &member.id).await?;
        return Err(store::in_transfer(
            &member.name,
            open.as_ref().map(|o| o.1.as_str()).unwrap_or("其他党组织"),
        ));
    }
    if let Some((_, kind)) =
        crate::approval::store::pending_for_member(&state.db, &member.id).await?
    {
        let label = crate::approval::Kind::parse(&kind)
            .map(|k| k.label())
            .unwrap_or("党籍变动");
        return Err(ApiError::conflict(
            "application_pending",
            format!(
                "{}有待审批的“{label}”申请，审批完成或取消后才能办理组织关系转接",
                member.name
            ),
        ));
    }
    let mut p = Problems::default();
    let kind = kind_checked(&mut p, input.kind.as_deref(), Direction::Outbound);
    let from_chain = store::chain(state.db.read(), &member.org_code).await?;
    let mut to_org = None;
    let mut to_name = String::new();
    if let Some(k) = kind {
        if k.destination_inside() {
            to_org = target_branch(state, &mut p, input.to_org_id.as_deref()).await;
            if let Some(t) = &to_org {
                if t.id == member.branch_id {
                    p.add("to_org_id", "接收党支部不能是该党员现在所在的党支部");
                }
                to_name = rules::display_name(&store::chain(state.db.read(), &t.code).await?);
            }
        } else if let Some(t) = p.take(fields::required_text(
            "to_text",
            "接收单位",
            input.to_text.as_deref(),
            TEXT_MAX,
        )) {
            to_name = t;
        }
    }
    let addressee = p
        .take(fields::optional_text(
            "addressee",
            "收信党组织",
            input.addressee.as_deref(),
            TEXT_MAX,
        ))
        .unwrap_or_default();
    let reason = p.take(fields::required_text(
        "reason",
        "转出原因",
        input.reason.as_deref(),
        TEXT_MAX,
    ));
    let date = p
        .take(fields::required_text(
            "date",
            "转出日期",
            input.date.as_deref(),
            10,
        ))
        .and_then(|d| p.take(fields::date("date", "转出日期", &d)));
    let dues = month_checked(
        &mut p,
        "dues_paid_to",
        "党费交到",
        input.dues_paid_to.as_deref(),
    );
    let contacts = contacts_checked(&mut p, input.contacts.as_ref());
    // The path, once the destination is known.
    let mut plan = None;
    if let Some(k) = kind {
        if k.destination_inside() {
            if let Some(t) = &to_org {
                let to_chain = store::chain(state.db.read(), &t.code).await?;
                match rules::path_between(&from_chain, &to_chain) {
                    Some(pl) => plan = Some(pl),
                    None if !p.has("to_org_id") => {
                        p.add("to_org_id", "无法确定转接路径，请选择其他接收党支部")
                    }
                    None => {}
                }
            }
        } else {
            plan = Some(rules::path_to_outside(&from_chain));
        }
    }
    if addressee.is_empty() && kind.is_some_and(|k| !k.destination_inside()) {
        p.add("addressee", "转往平台外须填写收信党组织（介绍信抬头）");
    }
    p.finish()?;
    let (Some(kind), Some(reason), Some(date), Some(plan)) = (kind, reason, date, plan) else {
        return Err(fields::unset());
    };
    // The letter is addressed to the first organisation of the receiving side by default.
    let addressee = if addressee.is_empty() {
        plan.source_end
            .and_then(|s| plan.nodes.get(s + 1))
            .map(|o| o.name.clone())
            .unwrap_or_else(|| to_name.clone())
    } else {
        addressee
    };
    let data = TransferData {
        id_number: member.id_number.clone(),
        addressee,
        dues_paid_to: dues,
        contacts,
        letter_number: String::new(),
        member: None,
    };
    let from = from_chain.last().cloned();
    let committee = store::committee_of(&from_chain).cloned();
    store::create(
        state,
        actor,
        NewTransfer {
            direction: Direction::Outbound,
            kind,
            member_id: Some(&member.id),
            member_name: &member.name,
            id_number: &member.id_number,
            data: &data,
            from: from.as_ref(),
            from_name: &rules::display_name(&from_chain),
            committee: committee.as_ref(),
            to: to_org.as_ref(),
            to_name: &to_name,
            reason: &reason,
            date: &date.to_string(),
            plan: &plan,
        },
        &allowed,
    )
    .await
}

/// Registers an inbound transfer 省外转入登记 from outside the platform; returns its id. An ID
/// number already in the living database stops the registration and says where (as far as the
/// actor may know).
pub async fn register(state: &AppState, actor: &Actor, input: &InboundInput) -> ApiResult<String> {
    access::business_read(actor)?;
    let mut p = Problems::default();
    let mut member = input.member.clone().unwrap_or_default();
    if member
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .is_empty()
    {
        member.name = input.name.clone();
    }
    if member
        .id_number
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .is_empty()
    {
        member.id_number = input.id_number.clone();
    }
    member.branch_id = input.to_org_id.clone();
    let kind = kind_checked(&mut p, input.kind.as_deref(), Direction::Inbound);
    let from_text = p.take(fields::required_text(
        "from_text",
        "转出单位",
        input.from_text.as_deref(),
        TEXT_MAX,
    ));
    let target = target_branch(state, &mut p, input.to_org_id.as_deref()).await;
    let allowed = match &target {
        Some(t) => Some(access::transfer_register(actor, &t.code)?),
        None => None,
    };
    let reason = p.take(fields::required_text(
        "reason",
        "转入原因",
        input.reason.as_deref(),
        TEXT_MAX,
    ));
    let date = p
        .take(fields::required_text(
            "date",
            "转入日期",
            input.date.as_deref(),
            10,
        ))
        .and_then(|d| p.take(fields::date("date", "转入日期", &d)));
    let letter_number = p
        .take(fields::optional_text(
            "letter_number",
            "原介绍信编号",
            input.letter_number.as_deref(),
            40,
        ))
        .unwrap_or_default();
    let contacts = contacts_checked(&mut p, input.contacts.as_ref());
    let valid = match crate::member::rules::validate(&member, today()) {
        Ok(v) => Some(v),
        Err(e) => {
            p.record(e);
            None
        }
    };
    p.finish()?;
    let (
        Some(kind),
        Some(from_text),
        Some(target),
        Some(allowed),
        Some(reason),
        Some(date),
        Some(v),
    ) = (kind, from_text, target, allowed, reason, date, valid)
    else {
        return Err(fields::unset());
    };
    // Already in the living database: say where, within the actor's right to know.
    let idx = crate::crypto::index(Column::MembersIdNumber, &v.id_number);
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT o.name, o.code FROM members m JOIN orgs o ON o.id = m.branch_id \
         WHERE m.id_number_idx = $1",
    )
    .bind(&idx)
    .fetch_optional(state.db.read())
    .await?;
    if let Some((branch, code)) = found {
        let where_ = if access::code_within(&actor.org_code, &code) {
            format!("已在“{branch}”的党员信息库中")
        } else {
            "已在党员信息库中（所在党组织不在您的管理范围内，请与上级组织部门联系）".to_string()
        };
        return Err(ApiError::conflict_field(
            "id_number",
            format!("该公民身份证号码的党员{where_}，不能办理转入登记"),
        ));
    }
    crate::member::routes::realname_gate(state, actor, &member).await?;
    let to_chain = store::chain(state.db.read(), &target.code).await?;
    let mut plan = rules::path_from_outside(&to_chain);
    // The registering organisation's own node passes with the registration.
    for node in &mut plan.nodes {
        if node.code == actor.org_code {
            node.auto = true;
        }
    }
    let data = TransferData {
        id_number: v.id_number.clone(),
        addressee: target.name.clone(),
        dues_paid_to: String::new(),
        contacts,
        letter_number,
        member: Some(serde_json::to_value(&member).map_err(ApiError::internal)?),
    };
    store::create(
        state,
        actor,
        NewTransfer {
            direction: Direction::Inbound,
            kind,
            member_id: None,
            member_name: &v.name,
            id_number: &v.id_number,
            data: &data,
            from: None,
            from_name: &from_text,
            committee: None,
            to: Some(&target),
            to_name: &rules::display_name(&to_chain),
            reason: &reason,
            date: &date.to_string(),
            plan: &plan,
        },
        &allowed,
    )
    .await
}

pub async fn load(state: &AppState, id: &str) -> ApiResult<TransferRow> {
    store::get(state.db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("转接"))
}

/// The codes that make a transfer visible: every node, source, target, registrar.
async fn read_allowed(state: &AppState, actor: &Actor, row: &TransferRow) -> ApiResult<Allowed> {
    let path = store::nodes(state.db.read(), &row.id).await?;
    let mut codes: Vec<&str> = path.iter().map(|n| n.org_code.as_str()).collect();
    codes.extend(row.from_org_code.as_deref());
    codes.extend(row.to_org_code.as_deref());
    codes.push(&row.created_org_code);
    access::transfer_read(actor, &codes)
}

/// What the caller may do now.
fn abilities(actor: &Actor, row: &TransferRow, letter: Option<(&str, bool)>) -> Abilities {
    let st = row.state();
    let at_node = access::transfer_node(actor, &row.current_org_code, "").is_ok();
    let at_end = row.received_inside() && row.current_step == row.path_len - 1;
    let source = access::transfer_source(actor, row.source_code()).is_ok();
    Abilities {
        decide: st == State::Active && at_node && !at_end,
        receive: st == State::Active && at_node && at_end,
        withdraw: st == State::Active && source,
        void: st == State::Returned && source,
        resubmit: st == State::Returned && source,
        reroute: st == State::Active
            && row.received_inside()
            && access::transfer_reroute(actor, &row.current_org_code).is_ok(),
        abnormal: st.open()
            && access::transfer_abnormal(
                actor,
                &[
                    row.source_code(),
                    row.to_org_code.as_deref().unwrap_or(""),
                    &row.current_org_code,
                ],
            )
            .is_ok(),
        reissue: st == State::Active && source && letter.is_some_and(|(s, _)| s == "issued"),
    }
}

pub async fn view(state: &AppState, actor: &Actor, id: &str) -> ApiResult<TransferView> {
    let row = load(state, id).await?;
    read_allowed(state, actor, &row).await?;
    let data = row.data()?;
    let path = store::nodes(state.db.read(), id).await?;
    let trail = store::trail(state.db.read(), id).await?;
    let letter = crate::letter::store::current(state.db.read(), id).await?;
    let letter_info = letter.as_ref().map(|l| (l.state(), l.expired(today())));
    let current_org = match row.state() {
        State::Active => path
            .get(row.current_step as usize)
            .map(|n| n.org_name.clone())
            .unwrap_or_default(),
        State::Returned => format!("{}（转出方）", row.from_name),
        _ => String::new(),
    };
    Ok(TransferView {
        can: abilities(actor, &row, letter_info),
        id: row.id.clone(),
        direction: row.direction(),
        kind: row.kind(),
        kind_label: row.kind().label().to_string(),
        state: row.state(),
        state_label: row.state().label().to_string(),
        member_id: row.member_id.clone(),
        member_name: row.member_name.clone(),
        id_number: crate::member::idcard::mask(&data.id_number),
        from_org_id: row.from_org_id.clone(),
        from_name: row.from_name.clone(),
        to_org_id: row.to_org_id.clone(),
        to_name: row.to_name.clone(),
        addressee: data.addressee.clone(),
        reason: row.reason.clone(),
        date: row.transfer_date.clone(),
        dues_paid_to: data.dues_paid_to.clone(),
        contacts: data.contacts.clone(),
        current_org,
        current_step: row.current_step,
        step_since: row.step_since.clone(),
        path,
        trail,
        letter_number: letter.as_ref().map(|l| l.number().to_string()),
        letter_state: letter.as_ref().map(|l| l.state().to_string()),
        letter_valid_until: letter.as_ref().map(|l| l.valid_until().to_string()),
        letter_expired: letter_info.is_some_and(|(s, e)| s == "issued" && e),
        created_by_name: row.created_by_name.clone(),
        created_at: row.created_at.clone(),
        finished_at: row.finished_at.clone(),
    })
}

/// An action on a transfer's path.
#[derive(Debug, Clone)]
pub enum Action {
    Approve(String),
    Return(String),
    Receive(String),
    Withdraw(String),
    Void(String),
    Resubmit(String),
    Reroute(RerouteInput),
    Abnormal(AbnormalInput),
    Reissue,
}

impl Action {
    pub fn from_decision(input: &DecisionInput) -> ApiResult<Action> {
        let opinion = input
            .opinion
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        match input.decision.as_deref().map(str::trim) {
            Some("approve") => Ok(Action::Approve(opinion)),
            Some("return") => Ok(Action::Return(opinion)),
            _ => Err(ApiError::field("decision", "请选择同意或退回")),
        }
    }
}

fn opinion_checked(field: &str, label: &str, v: &str, required: bool) -> ApiResult<String> {
    if required {
        fields::required_text(field, label, Some(v), TEXT_MAX)
    } else {
        fields::optional_text(field, label, Some(v), TEXT_MAX)
    }
}

/// Does an action on a transfer: asks `access` for the actor's right at this step, then the
/// store's transaction.
pub async fn act(state: &AppState, actor: &Actor, id: &str, action: Action) -> ApiResult<()> {
    let row = load(state, id).await?;
    read_allowed(state, actor, &row).await?;
    let path = store::nodes(state.db.read(), id).await?;
    let current_name = path
        .get(row.current_step.max(0) as usize)
        .map(|n| n.org_name.clone())
        .unwrap_or_default();
    let st = row.state();
    let at_end = row.received_inside() && row.current_step == row.path_len - 1;
    let not_now = |what: &str| {
        ApiError::conflict(
            "transfer_state",
            format!("该转接{}，不能{what}", st.label()),
        )
    };
    match action {
        Action::Approve(opinion) | Action::Return(opinion) if st != State::Active => {
            let _ = opinion;
            Err(not_now("审批"))
        }
        Action::Approve(opinion) => {
            let allowed = access::transfer_node(actor, &row.current_org_code, &current_name)?;
            if at_end {
                return Err(ApiError::conflict(
                    "transfer_at_receiver",
                    "转接已到接收党支部，请办理“接收”或“退回”",
                ));
            }
            let opinion = opinion_checked("opinion", "审核意见", &opinion, false)?;
            store::approve(state, actor, &row, &opinion, &allowed).await
        }
        Action::Return(opinion) => {
            let allowed = access::transfer_node(actor, &row.current_org_code, &current_name)?;
            let opinion = opinion_checked("opinion", "退回意见", &opinion, true)?;
            store::send_back(state, actor, &row, &opinion, &allowed).await
        }
        Action::Receive(opinion) => {
            if st != State::Active {
                return Err(not_now("接收"));
            }
            let allowed = access::transfer_node(actor, &row.current_org_code, &current_name)?;
            if !at_end {
                return Err(ApiError::conflict(
                    "transfer_not_at_receiver",
                    format!("转接尚未到达接收党支部（当前由“{current_name}”办理）"),
                ));
            }
            let opinion = opinion_checked("opinion", "接收意见", &opinion, false)?;
            store::receive(state, actor, &row, &opinion, &allowed)
                .await
                .map(|_| ())
        }
        Action::Withdraw(opinion) => {
            let allowed = access::transfer_source(actor, row.source_code())?;
            if st != State::Active {
                return Err(not_now("撤销"));
            }
            let opinion = opinion_checked("opinion", "撤销原因", &opinion, false)?;
            store::end(
                state,
                actor,
                &row,
                State::Withdrawn,
                "withdraw",
                &opinion,
                &allowed,
            )
            .await
        }
        Action::Void(opinion) => {
            let allowed = access::transfer_source(actor, row.source_code())?;
            if st != State::Returned {
                return Err(ApiError::conflict(
                    "transfer_state",
                    format!("只有已退回的转接可以废件（该转接{}）", st.label()),
                ));
            }
            let opinion = opinion_checked("opinion", "废件原因", &opinion, false)?;
            store::end(
                state,
                actor,
                &row,
                State::Voided,
                "void",
                &opinion,
                &allowed,
            )
            .await
        }
        Action::Resubmit(opinion) => {
            let allowed = access::transfer_source(actor, row.source_code())?;
            if st != State::Returned {
                return Err(not_now("重新提交"));
            }
            let opinion = opinion_checked("opinion", "说明", &opinion, false)?;
            store::resubmit(state, actor, &row, &opinion, &allowed).await
        }
        Action::Reroute(input) => {
            let allowed = access::transfer_reroute(actor, &row.current_org_code)?;
            if st != State::Active {
                return Err(not_now("改变转接路径"));
            }
            if !row.received_inside() {
                return Err(ApiError::conflict(
                    "transfer_outside",
                    "转往平台外的转接路径到省级党组织为止，不能改变",
                ));
            }
            let opinion = opinion_checked(
                "opinion",
                "改变路径的原因",
                input.opinion.as_deref().unwrap_or(""),
                true,
            )?;
            let tail = reroute_tail(state, actor, &row, &path, &input).await?;
            store::reroute(state, actor, &row, &tail, &opinion, &allowed).await
        }
        Action::Abnormal(input) => {
            let allowed = access::transfer_abnormal(
                actor,
                &[
                    row.source_code(),
                    row.to_org_code.as_deref().unwrap_or(""),
                    &row.current_org_code,
                ],
            )?;
            if !st.open() {
                return Err(not_now("异常办结"));
            }
            let reason = opinion_checked(
                "reason",
                "异常办结原因",
                input.reason.as_deref().unwrap_or(""),
                true,
            )?;
            store::abnormal(
                state,
                actor,
                &row,
                &reason,
                input.move_member.unwrap_or(false),
                &allowed,
            )
            .await
        }
        Action::Reissue => {
            let allowed = access::transfer_source(actor, row.source_code())?;
            let letter = crate::letter::store::current(state.db.read(), id).await?;
            if st != State::Active || letter.as_ref().is_none_or(|l| l.state() != "issued") {
                return Err(ApiError::conflict(
                    "letter_none",
                    "该转接没有可重新开具的介绍信",
                ));
            }
            store::reissue(state, actor, &row, &allowed).await
        }
    }
}

/// The new remaining path of a re-route: computed to a new target branch, or given as a walk
/// along the tree ending at a branch.
async fn reroute_tail(
    state: &AppState,
    actor: &Actor,
    row: &TransferRow,
    path: &[super::NodeView],
    input: &RerouteInput,
) -> ApiResult<Vec<PathOrg>> {
    let current = &path[row.current_step as usize];
    let current_chain = store::chain(state.db.read(), &current.org_code).await?;
    if let Some(ids) = input.path.as_ref().filter(|p| !p.is_empty()) {
        let mut orgs = Vec::new();
        let mut parents = vec![None::<String>];
        let mut all = vec![current.org_id.clone()];
        let cur_org = crate::org::store::get(state.db.read(), &current.org_id).await?;
        parents[0] = cur_org.and_then(|o| o.parent_id);
        for id in ids {
            let org = crate::org::store::get(state.db.read(), id.trim())
                .await?
                .ok_or_else(|| ApiError::field("path", "转接路径中的党组织不存在"))?;
            let chain = store::chain(state.db.read(), &org.code).await?;
            parents.push(org.parent_id.clone());
            all.push(org.id.clone());
            orgs.push(
                chain
                    .last()
                    .cloned()
                    .ok_or_else(|| ApiError::field("path", "转接路径中的党组织不存在"))?,
            );
        }
        if !rules::is_tree_walk(&all, &parents) {
            return Err(ApiError::field(
                "path",
                "转接路径须沿组织树逐级经过（每个党组织是前一个的上级或下级）",
            ));
        }
        let last = crate::org::store::get(state.db.read(), &orgs[orgs.len() - 1].id)
            .await?
            .ok_or_else(|| ApiError::field("path", "转接路径中的党组织不存在"))?;
        if !last.category().is_some_and(Category::is_branch) || !last.is_active() {
            return Err(ApiError::field("path", "转接路径须以有效的党支部结束"));
        }
        let _ = actor;
        return Ok(orgs);
    }
    let mut p = Problems::default();
    let target = target_branch(state, &mut p, input.to_org_id.as_deref()).await;
    p.finish()?;
    let target = target.ok_or_else(fields::unset)?;
    if Some(&target.id) == row.from_org_id.as_ref() {
        return Err(ApiError::field(
            "to_org_id",
            "接收党支部不能是该党员现在所在的党支部",
        ));
    }
    let to_chain = store::chain(state.db.read(), &target.code).await?;
    rules::reroute_tail(&current_chain, &to_chain)
        .ok_or_else(|| ApiError::field("to_org_id", "无法确定新的转接路径"))
}

/// `POST /transfers`: an outbound transfer 转出申请.
#[utoipa::path(post, path = "/api/v1/transfers", request_body = TransferInput,
    responses((status = 201, body = TransferView)))]
async fn create_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<TransferInput>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    let id = start(&state, &actor, &req).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &actor, &id).await?)))
}

/// `POST /transfers/inbound`: an inbound registration 省外转入登记.
#[utoipa::path(post, path = "/api/v1/transfers/inbound", request_body = InboundInput,
    responses((status = 201, body = TransferView)))]
async fn create_inbound(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<InboundInput>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    let id = register(&state, &actor, &req).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &actor, &id).await?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactsQuery {
    /// The member to transfer (source branch and its basic committee)
    pub member_id: Option<String>,
    /// The target branch (receiving side)
    pub to_org_id: Option<String>,
}

/// The contacts remembered for a transfer form: source branch, basic committee, receiving side.
pub async fn prefill(state: &AppState, actor: &Actor, q: &ContactsQuery) -> ApiResult<Contacts> {
    access::business_read(actor)?;
    let (mut source, mut committee) = (None, None);
    if let Some(m) = q.member_id.as_deref().filter(|m| !m.is_empty()) {
        let (member, _) = crate::member::routes::load(&state.db, m).await?;
        access::member(actor, &member.org_code)?;
        let chain = store::chain(state.db.read(), &member.org_code).await?;
        source = chain.last().map(|o| o.id.clone());
        committee = store::committee_of(&chain).map(|o| o.id.clone());
    }
    let receiving = q.to_org_id.clone().filter(|t| !t.is_empty());
    Ok(store::remembered(
        state.db.read(),
        source.as_deref(),
        committee.as_deref(),
        receiving.as_deref(),
    )
    .await?)
}

/// `GET /transfers/contacts`: the remembered contacts to prefill a transfer form.
#[utoipa::path(get, path = "/api/v1/transfers/contacts", params(ContactsQuery),
    responses((status = 200, body = Contacts)))]
async fn transfer_contacts(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ContactsQuery>,
) -> ApiResult<Json<Contacts>> {
    Ok(Json(prefill(&state, &actor, &q).await?))
}

/// A transfer form prefilled from an approved 网上转接申请: the member, the destination as
/// the member wrote it (the branch of that name when exactly one is found, otherwise the
/// candidates, or the text for a destination outside the platform) and the reason. The admin
/// still checks and submits it (`POST /api/v1/transfers`), where every transfer rule applies.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TransferDraft {
    /// The approved 网上转接申请.
    pub request_id: String,
    pub member_id: String,
    pub member_name: String,
    /// The transfer type suggested (`county` for a branch found in the platform,
    /// `out_of_province` otherwise); the admin confirms it.
    pub kind: String,
    /// The branch of the destination's name, when exactly one was found.
    pub to_org_id: Option<String>,
    /// The destination as text, when no branch of that name was found.
    pub to_text: Option<String>,
    /// 转往何处, as the member wrote it.
    pub destination: String,
    /// Branches whose names contain the destination (at most 30).
    pub candidates: Vec<store::Destination>,
    /// 转出原因, as the member wrote it.
    pub reason: String,
    /// 转出日期 (today)
    pub date: String,
    pub contacts: Contacts,
}

/// Where to and why, from an application's data (older requests carry them only in the text
/// 转往：…；原因：…).
fn wish(data: &crate::approval::ApplicationData) -> (String, String) {
    if let (Some(to), Some(why)) = (&data.transfer_to, &data.transfer_reason) {
        return (to.clone(), why.clone());
    }
    let text = data.reason.trim();
    match text
        .strip_prefix("转往：")
        .and_then(|rest| rest.split_once("；原因："))
    {
        Some((to, why)) => (to.trim().to_string(), why.trim().to_string()),
        None => (String::new(), text.to_string()),
    }
}

/// The transfer form of the approved 网上转接申请 `request_id`, for an admin who may both read
/// the application and act on the member.
pub async fn draft_from_request(
    state: &AppState,
    actor: &Actor,
    request_id: &str,
) -> ApiResult<TransferDraft> {
    use crate::approval::rules::{Kind as AppKind, State as AppState_};
    access::business_read(actor)?;
    let row = crate::approval::routes::readable(&state.db, actor, request_id).await?;
    if row.kind() != AppKind::TransferRequest {
        return Err(ApiError::conflict(
            "not_a_transfer_request",
            "该申请不是网上转接申请，不能据此发起转出",
        ));
    }
    if row.state() != AppState_::Approved {
        return Err(ApiError::conflict(
            "not_approved",
            "网上转接申请审批通过后才能发起转出",
        ));
    }
    let member_id = row
        .member_id
        .clone()
        .ok_or_else(|| ApiError::not_found("党员"))?;
    let (member, _) = crate::member::routes::load(&state.db, &member_id).await?;
    access::member(actor, &member.org_code)?;
    let (destination, reason) = wish(&row.data()?);
    let candidates = if destination.is_empty() {
        Vec::new()
    } else {
        store::destinations(&state.db, &destination, None, 30)
            .await?
            .into_iter()
            .filter(|d| d.id != member.branch_id)
            .collect()
    };
    // The branch of exactly that name (or, failing one, any candidate) nearest to the member
    // in the tree, when no other is as near: 第二党支部 is most likely the member's own
    // committee's.
    let exact: Vec<&store::Destination> = candidates
        .iter()
        .filter(|d| d.name == destination)
        .collect();
    let pool: Vec<&store::Destination> = if exact.is_empty() {
        candidates.iter().collect()
    } else {
        exact
    };
    let mut nearest: Vec<(usize, String)> = Vec::new();
    for d in pool {
        if let Some(o) = crate::org::store::get(state.db.read(), &d.id).await? {
            let shared = o
                .code
                .chars()
                .zip(member.org_code.chars())
                .take_while(|(a, b)| a == b)
                .count();
            nearest.push((shared, d.id.clone()));
        }
    }
    nearest.sort_by_key(|n| std::cmp::Reverse(n.0));
    let to_org_id = match nearest.as_slice() {
        [(_, one)] => Some(one.clone()),
        [(a, one), (b, _), ..] if a > b => Some(one.clone()),
        _ => None,
    };
    let to_text = (candidates.is_empty() && !destination.is_empty()).then(|| destination.clone());
    let kind = if to_text.is_some() {
        Kind::OutOfProvince
    } else {
        Kind::County
    };
    let contacts = prefill(
        state,
        actor,
        &ContactsQuery {
            member_id: Some(member.id.clone()),
            to_org_id: to_org_id.clone(),
        },
    )
    .await?;
    Ok(TransferDraft {
        request_id: row.id.clone(),
        member_id: member.id.clone(),
        member_name: member.name.clone(),
        kind: kind.as_str().to_string(),
        to_org_id,
        to_text,
        destination,
        candidates,
        reason,
        date: today().to_string(),
        contacts,
    })
}

/// `GET /applications/{id}/transfer-draft`: the transfer form of an approved 网上转接申请.
#[utoipa::path(get, path = "/api/v1/applications/{id}/transfer-draft", params(("id" = String, Path)),
    responses((status = 200, body = TransferDraft), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn transfer_draft_route(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferDraft>> {
    Ok(Json(draft_from_request(&state, &actor, &id).await?))
}

/// `GET /transfers/{id}`: one transfer with its path and trail.
#[utoipa::path(get, path = "/api/v1/transfers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = TransferView)))]
async fn get_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(view(&state, &actor, &id).await?))
}

async fn acted(
    state: &AppState,
    actor: &Actor,
    id: &str,
    action: Action,
) -> ApiResult<Json<TransferView>> {
    act(state, actor, id, action).await?;
    Ok(Json(view(state, actor, id).await?))
}

/// `POST /transfers/{id}/decision`: 同意 or 退回 by the current node.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/decision", params(("id" = String, Path)),
    request_body = DecisionInput, responses((status = 200, body = TransferView)))]
async fn decide_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DecisionInput>,
) -> ApiResult<Json<TransferView>> {
    let action = match Action::from_decision(&req) {
        Ok(a) => a,
        Err(e) => {
            // Out of scope is answered as such before the body is judged.
            view(&state, &actor, &id).await?;
            return Err(e);
        }
    };
    acted(&state, &actor, &id, action).await
}

fn note(req: &NoteInput) -> String {
    req.opinion
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_string()
}

/// `POST /transfers/{id}/receive`: 接收 by the target branch.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/receive", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 200, body = TransferView)))]
async fn receive_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Receive(note(&req))).await
}

/// `POST /transfers/{id}/withdraw`: 撤销 by the source before the first approval.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/withdraw", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 200, body = TransferView)))]
async fn withdraw_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Withdraw(note(&req))).await
}

/// `POST /transfers/{id}/void`: 废件 of a returned transfer by the source.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/void", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 200, body = TransferView)))]
async fn void_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Void(note(&req))).await
}

/// `POST /transfers/{id}/resubmit`: 重新提交 a returned transfer by the source.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/resubmit", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 200, body = TransferView)))]
async fn resubmit_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Resubmit(note(&req))).await
}

/// `POST /transfers/{id}/reroute`: 改变转接路径 of the remaining path by a node above the current one.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/reroute", params(("id" = String, Path)),
    request_body = RerouteInput, responses((status = 200, body = TransferView)))]
async fn reroute_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RerouteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Reroute(req)).await
}

/// `POST /transfers/{id}/complete-abnormal`: 异常办结 by a tier-1 admin, with a reason.
#[utoipa::path(post, path = "/api/v1/transfers/{id}/complete-abnormal", params(("id" = String, Path)),
    request_body = AbnormalInput, responses((status = 200, body = TransferView)))]
async fn abnormal_transfer(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AbnormalInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Abnormal(req)).await
}

/// `POST /transfers/{id}/reissue`: 重新开具介绍信 (an expired letter cannot be received).
#[utoipa::path(post, path = "/api/v1/transfers/{id}/reissue", params(("id" = String, Path)),
    request_body = NoteInput, responses((status = 200, body = TransferView)))]
async fn reissue_letter(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(_req): ApiJson<NoteInput>,
) -> ApiResult<Json<TransferView>> {
    acted(&state, &actor, &id, Action::Reissue).await
}

/// The transfer's current letter, for those who may see the transfer.
pub async fn letter_of(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> ApiResult<crate::letter::store::LetterRow> {
    let row = load(state, id).await?;
    read_allowed(state, actor, &row).await?;
    let letter = crate::letter::store::current(state.db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("介绍信"))?;
    crate::audit::append_alone(
        &state.db,
        &crate::audit::Who::from(actor),
        crate::audit::Event::ok("letter.view", letter.number())
            .in_org(row.source_code().to_string()),
    )
    .await?;
    Ok(letter)
}

/// `GET /transfers/{id}/letter`: the letter as a signed JSON document (verifiable offline with
/// `dangjian-certs verify-letter`).
#[utoipa::path(get, path = "/api/v1/transfers/{id}/letter", params(("id" = String, Path)),
    responses((status = 200, body = crate::letter::store::LetterDocument)))]
async fn transfer_letter(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::letter::store::LetterDocument>> {
    let letter = letter_of(&state, &actor, &id).await?;
    Ok(Json(crate::letter::store::document(&letter)?))
}

/// `GET /transfers/{id}/letter.pdf`: the letter as a PDF.
#[utoipa::path(get, path = "/api/v1/transfers/{id}/letter.pdf", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>)))]
async fn transfer_letter_pdf(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let letter = letter_of(&state, &actor, &id).await?;
    let pdf = crate::letter::pdf::render(&letter, &state)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"letter-{}.pdf\"", letter.number()),
            ),
        ],
        pdf,
    )
        .into_response())
}
