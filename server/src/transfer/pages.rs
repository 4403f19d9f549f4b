//! The transfer pages: the outbound form 党员转出申请（填写介绍信） from the member's record,
//! the inbound registration 省外转入登记, the transfer itself with its path, trail, letter and
//! the actions the caller may take now, and the printable letter.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{html, Markup};
use serde::Deserialize;

use super::routes::{self as ops, Action};
use super::rules::{Direction, Kind};
use super::store::{self, Destination};
use super::{AbnormalInput, Contact, Contacts, InboundInput, RerouteInput, TransferInput};
use crate::access::Actor;
use crate::approval::pages::{member_header, member_summary, short_time, textarea_field};
use crate::error::ApiError;
use crate::member::dict::{CATEGORIES, ETHNICITIES, JOBS};
use crate::member::rules::MemberInput;
use crate::state::AppState;
use crate::web::{
    csrf_field, date_field, options, or_error, page_with_status, select_field, text_field,
    CsrfForm, FormErrors, PageActor, PageRouter,
};

pub fn router() -> PageRouter {
    PageRouter::new()
        .route(
            "/members/{id}/transfer",
            get(outbound_form).post(outbound_submit),
        )
        .route("/transfers/inbound", get(inbound_form).post(inbound_submit))
        .route("/transfers/{id}", get(transfer_page))
        .route(
            "/transfers/{id}/act",
            get(back_to_transfer).post(act_submit),
        )
        .route("/transfers/{id}/letter", get(letter_page))
        .route(
            "/transfers/settings",
            get(back_to_lists).post(settings_submit),
        )
}

async fn back_to_lists() -> Response {
    Redirect::to("/transfers/lists").into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    pub auto_approve: Option<String>,
}

async fn settings_submit(State(state): State<AppState>, f: CsrfForm<SettingsForm>) -> Response {
    let actor = f.actor;
    let on = f.form.auto_approve.as_deref() == Some("true");
    let r = async {
        ops::settings(&state, &actor, &actor.org_id, Some(on)).await?;
        Ok(Redirect::to("/transfers/lists?notice=settings").into_response())
    }
    .await;
    or_error(&actor, r)
}

/// The form on the lists page: whether the actor's own organisation passes transfer steps at
/// once 自动审核.
pub async fn settings_form(state: &AppState, actor: &Actor) -> Result<Markup, ApiError> {
    let on = ops::settings(state, actor, &actor.org_id, None).await?;
    Ok(html! {
        form.inline #transfer-settings method="post" action="/transfers/settings" data-no-draft {
            (csrf_field(actor))
            label {
                input type="checkbox" name="auto_approve" value="true" checked[on];
                " " (actor.org_name) "在转接路径上自动审核（自动同意，记录为“自动审核”）"
            }
            " "
            button type="submit" { "保存" }
        }
    })
}

/// The outbound form as posted. Contact fields carry the API's field names, so that each
/// refusal lands beside its input.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct OutboundForm {
    pub kind: Option<String>,
    pub to_q: Option<String>,
    pub to_org_id: Option<String>,
    pub to_text: Option<String>,
    pub addressee: Option<String>,
    pub reason: Option<String>,
    pub date: Option<String>,
    pub dues_paid_to: Option<String>,
    #[serde(flatten)]
    pub contacts: ContactFields,
    /// `search`: look the destination up; otherwise send.
    pub action: Option<String>,
    /// The approved 网上转接申请 the form was filled from, if any.
    pub request: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ContactFields {
    #[serde(rename = "contacts.source.contact")]
    pub source_contact: Option<String>,
    #[serde(rename = "contacts.source.phone")]
    pub source_phone: Option<String>,
    #[serde(rename = "contacts.source.address")]
    pub source_address: Option<String>,
    #[serde(rename = "contacts.committee.contact")]
    pub committee_contact: Option<String>,
    #[serde(rename = "contacts.committee.phone")]
    pub committee_phone: Option<String>,
    #[serde(rename = "contacts.committee.fax")]
    pub committee_fax: Option<String>,
    #[serde(rename = "contacts.committee.postcode")]
    pub committee_postcode: Option<String>,
    #[serde(rename = "contacts.committee.address")]
    pub committee_address: Option<String>,
    #[serde(rename = "contacts.receiving.contact")]
    pub receiving_contact: Option<String>,
    #[serde(rename = "contacts.receiving.phone")]
    pub receiving_phone: Option<String>,
    #[serde(rename = "contacts.receiving.address")]
    pub receiving_address: Option<String>,
}

fn s(o: &Option<String>) -> String {
    o.clone().unwrap_or_default()
}

impl ContactFields {
    fn of(c: &Contacts) -> ContactFields {
        let some = |v: &str| Some(v.to_string());
        ContactFields {
            source_contact: some(&c.source.contact),
            source_phone: some(&c.source.phone),
            source_address: some(&c.source.address),
            committee_contact: some(&c.committee.contact),
            committee_phone: some(&c.committee.phone),
            committee_fax: some(&c.committee.fax),
            committee_postcode: some(&c.committee.postcode),
            committee_address: some(&c.committee.address),
            receiving_contact: some(&c.receiving.contact),
            receiving_phone: some(&c.receiving.phone),
            receiving_address: some(&c.receiving.address),
        }
    }

    fn contacts(&self) -> Contacts {
        Contacts {
            source: Contact {
                contact: s(&self.source_contact),
                phone: s(&self.source_phone),
                address: s(&self.source_address),
                ..Contact::default()
            },
            committee: Contact {
                contact: s(&self.committee_contact),
                phone: s(&self.committee_phone),
                fax: s(&self.committee_fax),
                postcode: s(&self.committee_postcode),
                address: s(&self.committee_address),
            },
            receiving: Contact {
                contact: s(&self.receiving_contact),
                phone: s(&self.receiving_phone),
                address: s(&self.receiving_address),
                ..Contact::default()
            },
        }
    }
}

fn contact_fields(c: &ContactFields, errors: &FormErrors) -> Markup {
    html! {
        fieldset.contacts {
            legend { "转出党支部" }
            (text_field("contacts.source.contact", "联系人", &s(&c.source_contact), false, errors))
            (text_field("contacts.source.phone", "联系电话", &s(&c.source_phone), false, errors))
            (text_field("contacts.source.address", "通讯地址", &s(&c.source_address), false, errors))
        }
        fieldset.contacts {
            legend { "所在基层党委" }
            (text_field("contacts.committee.contact", "联系人", &s(&c.committee_contact), false, errors))
            (text_field("contacts.committee.phone", "联系电话", &s(&c.committee_phone), false, errors))
            (text_field("contacts.committee.fax", "传真", &s(&c.committee_fax), false, errors))
            (text_field("contacts.committee.postcode", "邮编", &s(&c.committee_postcode), false, errors))
            (text_field("contacts.committee.address", "通讯地址", &s(&c.committee_address), false, errors))
        }
        fieldset.contacts {
            legend { "接收党支部" }
            (text_field("contacts.receiving.contact", "联系人", &s(&c.receiving_contact), false, errors))
            (text_field("contacts.receiving.phone", "联系电话", &s(&c.receiving_phone), false, errors))
            (text_field("contacts.receiving.address", "通讯地址", &s(&c.receiving_address), false, errors))
        }
        p.muted.hint { "联系方式按党组织记住，下次办理时自动填入。" }
    }
}

fn kind_options(direction: Direction) -> Vec<(String, String)> {
    Kind::of(direction)
        .map(|k| (k.as_str().to_string(), k.label().to_string()))
        .collect()
}

/// The destination picker: a name to look up, the candidates found (radio buttons), the one
/// chosen so far.
fn destination_field(
    label: &str,
    query: &str,
    chosen: &str,
    found: &[Destination],
    searched: bool,
    errors: &FormErrors,
) -> Markup {
    html! {
        div.field.destination.has-error[errors.fields.contains_key("to_org_id")] {
            label for="to_org_id" { span.req { "*" } (label) }
            div.search-row {
                input #to_q type="search" name="to_q" value=(query) placeholder="输入党支部名称关键字";
                button #find-destination type="submit" name="action" value="search" formnovalidate { "查找" }
            }
            @if found.is_empty() {
                @if searched { p.muted { "没有找到名称含“" (query) "”的党支部。" } }
                @if !chosen.is_empty() { input type="hidden" name="to_org_id" value=(chosen); }
                input #to_org_id type="hidden" aria-invalid=[errors.invalid("to_org_id")]
                    aria-describedby=[errors.described_by("to_org_id")];
            } @else {
                ul.destinations #destinations {
                    @for d in found {
                        li {
                            label {
                                input type="radio" name="to_org_id" value=(d.id) checked[d.id == chosen];
                                " " strong { (d.name) } " " span.muted { (d.path) }
                            }
                        }
                    }
                }
            }
            (errors.at("to_org_id"))
        }
    }
}

async fn chosen_destination(state: &AppState, id: &str) -> Vec<Destination> {
    if id.is_empty() {
        return Vec::new();
    }
    match crate::org::store::get(state.db.read(), id).await {
        Ok(Some(org)) => {
            let chain = store::chain(state.db.read(), &org.code)
                .await
                .unwrap_or_default();
            let above: Vec<&str> = chain[..chain.len().saturating_sub(1)]
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            vec![Destination {
                id: org.id,
                name: org.name,
                path: above.join(" › "),
            }]
        }
        _ => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn outbound_page(
    state: &AppState,
    actor: &Actor,
    member_id: &str,
    form: &OutboundForm,
    found: Vec<Destination>,
    searched: bool,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (m, mut crumbs) = member_header(state, actor, member_id).await?;
    crumbs.push((String::new(), "组织关系转出".into()));
    let found = if found.is_empty() {
        chosen_destination(state, &s(&form.to_org_id)).await
    } else {
        found
    };
    Ok(page_with_status(
        status,
        actor,
        "党员转出申请",
        &crumbs,
        Some(&m.branch_id),
        html! {
            div.panel {
                h2 { "党员转出申请（填写介绍信）" }
                p.muted { "发送后按转接路径逐级审批：转出方各级党组织同意后开具介绍信，接收党支部接收后组织关系转入。" }
                (member_summary(&m))
                @if let Some(r) = form.request.as_deref().filter(|r| !r.is_empty()) {
                    div.alert.alert-info #from-request role="status" {
                        "已按党员本人的" a href={"/applications/" (r)} { "网上转接申请" }
                        "填写转往单位和转出原因，请核对转出类型、接收党支部等各项后发送。"
                    }
                }
                (errors.banner())
                form #transfer-form.form method="post" action={"/members/" (m.id) "/transfer"} {
                    (csrf_field(actor))
                    @if let Some(r) = &form.request { input type="hidden" name="request" value=(r); }
                    div.field {
                        label for="from-name" { "转出单位" }
                        input #from-name type="text" value=(m.branch_name) disabled;
                    }
                    (select_field("kind", "转出类型", &kind_options(Direction::Outbound), &s(&form.kind), true, errors))
                    fieldset {
                        legend { "转往平台内（本省各党组织）" }
                        (destination_field("接收党支部", &s(&form.to_q), &s(&form.to_org_id), &found, searched, errors))
                    }
                    fieldset {
                        legend { "转往平台外（外省、军队、中央单位等）" }
                        (text_field("to_text", "接收单位", &s(&form.to_text), false, errors))
                    }
                    (text_field("addressee", "收件人（收信党组织，转往平台内可不填）", &s(&form.addressee), false, errors))
                    (date_field("date", "转出日期", &s(&form.date), true, errors))
                    (text_field("dues_paid_to", "党费交到（年月，如 2026-10）", &s(&form.dues_paid_to), true, errors))
                    (textarea_field("reason", "转出原因", &s(&form.reason), true, errors))
                    (contact_fields(&form.contacts, errors))
                    div.actions {
                        button.primary type="submit" name="action" value="send" data-check-required { "发送" }
                        a.button href={"/members/" (m.id)} { "取消" }
                    }
                }
            }
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct OutboundQuery {
    /// An approved 网上转接申请 of the member to fill the form from.
    pub request: Option<String>,
}

/// The form filled from the approved 网上转接申请 `request_id` of member `id`.
async fn outbound_from_request(
    state: &AppState,
    actor: &Actor,
    id: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let d = ops::draft_from_request(state, actor, request_id).await?;
    if d.member_id != id {
        return Err(ApiError::conflict(
            "other_member",
            "该网上转接申请不是此党员的申请",
        ));
    }
    let form = OutboundForm {
        kind: Some(d.kind.clone()),
        to_q: Some(d.destination.clone()),
        to_org_id: d.to_org_id.clone(),
        to_text: d.to_text.clone(),
        reason: Some(d.reason.clone()),
        date: Some(d.date.clone()),
        contacts: ContactFields::of(&d.contacts),
        request: Some(d.request_id.clone()),
        ..OutboundForm::default()
    };
    // The candidates of the destination's name, the likeliest chosen: the admin confirms one.
    let searched = !d.candidates.is_empty();
    let found = d.candidates;
    outbound_page(
        state,
        actor,
        id,
        &form,
        found,
        searched,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn outbound_form(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<OutboundQuery>,
) -> Response {
    if let Some(request) = q.request.as_deref().filter(|r| !r.is_empty()) {
        let r = outbound_from_request(&state, &actor, &id, request).await;
        return or_error(&actor, r);
    }
    let r = async {
        let contacts = ops::prefill(
            &state,
            &actor,
            &ops::ContactsQuery {
                member_id: Some(id.clone()),
                to_org_id: None,
            },
        )
        .await?;
        let form = OutboundForm {
            kind: Some(Kind::County.as_str().into()),
            date: Some(crate::db::today().to_string()),
            contacts: ContactFields::of(&contacts),
            ..OutboundForm::default()
        };
        outbound_page(
            &state,
            &actor,
            &id,
            &form,
            Vec::new(),
            false,
            &FormErrors::default(),
            StatusCode::OK,
        )
        .await
    }
    .await;
    or_error(&actor, r)
}

async fn outbound_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<OutboundForm>,
) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let r = async {
        if form.action.as_deref() == Some("search") {
            let q = s(&form.to_q);
            let found = store::destinations(&state.db, q.trim(), None, 30).await?;
            // Receiving contacts remembered for a single match are filled in.
            if let [only] = found.as_slice() {
                form.to_org_id = Some(only.id.clone());
            }
            return outbound_page(
                &state,
                &actor,
                &id,
                &form,
                found,
                true,
                &FormErrors::default(),
                StatusCode::OK,
            )
            .await;
        }
        let input = TransferInput {
            member_id: Some(id.clone()),
            kind: form.kind.clone(),
            to_org_id: form.to_org_id.clone(),
            to_text: form.to_text.clone(),
            addressee: form.addressee.clone(),
            reason: form.reason.clone(),
            date: form.date.clone(),
            dues_paid_to: form.dues_paid_to.clone(),
            contacts: Some(form.contacts.contacts()),
        };
        match ops::start(&state, &actor, &input).await {
            Ok(t) => Ok(Redirect::to(&format!("/transfers/{t}?notice=submitted")).into_response()),
            Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
                outbound_page(
                    &state,
                    &actor,
                    &id,
                    &form,
                    Vec::new(),
                    false,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

/// The inbound registration as posted: the letter's facts and the member's record.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct InboundForm {
    pub name: Option<String>,
    pub id_number: Option<String>,
    pub kind: Option<String>,
    pub from_text: Option<String>,
    pub letter_number: Option<String>,
    pub to_q: Option<String>,
    pub to_org_id: Option<String>,
    pub reason: Option<String>,
    pub date: Option<String>,
    pub ethnicity: Option<String>,
    pub education: Option<String>,
    pub category: Option<String>,
    pub joined_on: Option<String>,
    pub full_on: Option<String>,
    pub job: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub action: Option<String>,
}

async fn inbound_page(
    state: &AppState,
    actor: &Actor,
    form: &InboundForm,
    found: Vec<Destination>,
    searched: bool,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    crate::access::business_read(actor)?;
    let found = if found.is_empty() {
        chosen_destination(state, &s(&form.to_org_id)).await
    } else {
        found
    };
    let title = "省外转入登记";
    Ok(page_with_status(
        status,
        actor,
        title,
        &[(String::new(), title.to_string())],
        None,
        html! {
            div.panel {
                h2 { "党员转入申请（填写来信内容）" }
                p.muted { "转出方党组织不在本系统时，由接收方有转接权限的党组织（县级及以上党委、具有审批权限的基层党委）登记。登记后按转接路径审批，由接收党支部接收入库。" }
                (errors.banner())
                form #inbound-form.form method="post" action="/transfers/inbound" {
                    (csrf_field(actor))
                    (text_field("name", "姓名", &s(&form.name), true, errors))
                    (text_field("id_number", "公民身份证号", &s(&form.id_number), true, errors))
                    (select_field("kind", "转入类型", &kind_options(Direction::Inbound), &s(&form.kind), true, errors))
                    (text_field("from_text", "转出单位", &s(&form.from_text), true, errors))
                    (text_field("letter_number", "原介绍信编号", &s(&form.letter_number), false, errors))
                    (destination_field("接收党支部（本单位管理范围内）", &s(&form.to_q), &s(&form.to_org_id), &found, searched, errors))
                    (date_field("date", "转入日期", &s(&form.date), true, errors))
                    (textarea_field("reason", "转入原因", &s(&form.reason), true, errors))
                    fieldset {
                        legend { "党员信息（按介绍信和党员档案填写，接收时入库）" }
                        (select_field("ethnicity", "民族", &options(&ETHNICITIES), &s(&form.ethnicity), true, errors))
                        (crate::web::members::education_field(&s(&form.education), errors))
                        (select_field("category", "人员类别", &options(&CATEGORIES), &s(&form.category), true, errors))
                        (date_field("joined_on", "加入党组织日期", &s(&form.joined_on), true, errors))
                        (date_field("full_on", "转正日期（正式党员必填）", &s(&form.full_on), false, errors))
                        (select_field("job", "工作岗位", &options(&JOBS), &s(&form.job), true, errors))
                        (text_field("phone", "联系电话", &s(&form.phone), true, errors))
                        (text_field("address", "家庭住址", &s(&form.address), true, errors))
                    }
                    div.actions {
                        button.primary type="submit" name="action" value="send" data-check-required { "登记" }
                        a.button href="/transfers" { "取消" }
                    }
                }
            }
        },
    ))
}

async fn inbound_form(State(state): State<AppState>, PageActor(actor): PageActor) -> Response {
    let form = InboundForm {
        kind: Some(Kind::FromOtherProvince.as_str().into()),
        date: Some(crate::db::today().to_string()),
        ..InboundForm::default()
    };
    let r = inbound_page(
        &state,
        &actor,
        &form,
        Vec::new(),
        false,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn inbound_submit(State(state): State<AppState>, f: CsrfForm<InboundForm>) -> Response {
    let actor = f.actor;
    let mut form = f.form;
    let r = async {
        if form.action.as_deref() == Some("search") {
            let q = s(&form.to_q);
            let found = store::destinations(&state.db, q.trim(), Some(&actor.org_code), 30).await?;
            if let [only] = found.as_slice() {
                form.to_org_id = Some(only.id.clone());
            }
            return inbound_page(
                &state,
                &actor,
                &form,
                found,
                true,
                &FormErrors::default(),
                StatusCode::OK,
            )
            .await;
        }
        let member = MemberInput {
            ethnicity: form.ethnicity.clone(),
            education: form.education.clone(),
            category: form.category.clone(),
            joined_on: form.joined_on.clone(),
            full_on: form.full_on.clone(),
            job: form.job.clone(),
            phone: form.phone.clone(),
            address: form.address.clone(),
            ..MemberInput::default()
        };
        let input = InboundInput {
            name: form.name.clone(),
            id_number: form.id_number.clone(),
            kind: form.kind.clone(),
            from_text: form.from_text.clone(),
            to_org_id: form.to_org_id.clone(),
            reason: form.reason.clone(),
            date: form.date.clone(),
            letter_number: form.letter_number.clone(),
            member: Some(member),
            contacts: None,
        };
        match ops::register(&state, &actor, &input).await {
            Ok(t) => Ok(Redirect::to(&format!("/transfers/{t}?notice=registered")).into_response()),
            Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
                inbound_page(
                    &state,
                    &actor,
                    &form,
                    Vec::new(),
                    false,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
    /// A name to look up for a new target branch (改变转接路径).
    pub reroute_q: Option<String>,
}

fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "submitted" => Some("转接已发送，等待转接路径上的党组织审批。"),
        "registered" => Some("转入登记已提交，等待转接路径上的党组织审批。"),
        "approve" => Some("已同意，转接已转到下一个党组织。"),
        "return" => Some("已退回上一个党组织。"),
        "receive" => Some("已接收，该党员的组织关系已转入本党支部。"),
        "withdraw" => Some("转接已撤销。"),
        "void" => Some("已废件。"),
        "resubmit" => Some("已重新提交。"),
        "reroute" => Some("转接路径已改变。"),
        "abnormal" => Some("已异常办结。"),
        "reissue" => Some("介绍信已重新开具，原介绍信作废。"),
        _ => None,
    }
}

fn node_class(state: &str) -> &'static str {
    match state {
        "current" => "current",
        "approved" | "auto" | "received" | "source" => "done",
        _ => "waiting",
    }
}

async fn transfer_view_page(
    state: &AppState,
    actor: &Actor,
    id: &str,
    notice: Option<&str>,
    reroute_q: Option<&str>,
    errors: &FormErrors,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let t = ops::view(state, actor, id).await?;
    let found = match reroute_q.map(str::trim).filter(|q| !q.is_empty()) {
        Some(q) if t.can.reroute => {
            store::destinations(&state.db, q, Some(&actor.org_code), 30).await?
        }
        _ => Vec::new(),
    };
    let title = format!("组织关系转接：{}", t.member_name);
    let waited = waited_since(&t.step_since);
    let can = &t.can;
    let act = |action: &str, label: &str, extra: Markup, confirm: &str, primary: bool| {
        html! {
            form.form.act-form id={(action) "-form"} method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                (csrf_field(actor))
                input type="hidden" name="action" value=(action);
                (extra)
                div.actions {
                    button.primary[primary] type="submit" data-confirm=(confirm) { (label) }
                }
            }
        }
    };
    Ok(page_with_status(
        status,
        actor,
        &title,
        &[
            (
                "/transfers/lists?list=todo".to_string(),
                "组织关系转接".to_string(),
            ),
            (String::new(), t.member_name.clone()),
        ],
        None,
        html! {
            div.panel #transfer {
                h2 { (title) " " span.badge.state.{(t.state.as_str())} { (t.state_label) } }
                @if let Some(n) = notice { div.alert.alert-info role="status" { (n) } }
                (errors.banner())
                table.info {
                    tr { th { "党员" } td { (t.member_name) } th { "公民身份证号" } td { (t.id_number) } }
                    tr { th { "转接类型" } td { (t.kind_label) } th { "转接日期" } td { (t.date) } }
                    tr { th { "转出单位" } td { (t.from_name) } th { "接收单位" } td { (t.to_name) } }
                    tr { th { "收件人" } td { (t.addressee) } th { "党费交到" } td { (t.dues_paid_to) } }
                    tr { th { "转接原因" } td colspan="3" { (t.reason) } }
                    tr {
                        th { "当前办理" }
                        td { (t.current_org) @if t.state.open() { " " span.muted { "（已等待 " (waited) "）" } } }
                        th { "发起人" } td { (t.created_by_name) " " (short_time(&t.created_at)) }
                    }
                }
                h3 { "转接路径" }
                ol.transfer-path #path {
                    @for n in &t.path {
                        li.{(node_class(&n.state))} {
                            span.node-name { (n.org_name) }
                            span.node-state { (n.state_label()) @if n.auto != 0 && n.state == "waiting" { "（自动审核）" } }
                        }
                    }
                    @if t.to_org_id.is_none() { li.outside { span.node-name { (t.to_name) } span.node-state { "平台外" } } }
                }
                h3 { "介绍信" }
                @if let Some(number) = &t.letter_number {
                    p #letter {
                        "第" (number) "号 "
                        span.badge { (match t.letter_state.as_deref() {
                            Some("issued") if t.letter_expired => "已过期",
                            Some("issued") => "有效",
                            Some("received") => "已接收",
                            Some("superseded") => "已重新开具",
                            Some("withdrawn") => "已作废",
                            _ => "",
                        }) }
                        @if let Some(until) = &t.letter_valid_until { " 有效期至 " (until) }
                        " "
                        a.button #print-letter href={"/transfers/" (t.id) "/letter"} target="_blank" { "打印介绍信" }
                        " "
                        a.button href={"/api/v1/transfers/" (t.id) "/letter.pdf"} { "下载PDF" }
                        " "
                        a.button href={"/api/v1/transfers/" (t.id) "/letter"} download={"letter-" (number) ".json"} { "下载电子介绍信（含签名）" }
                    }
                    @if t.letter_expired { div.alert.alert-warn { "介绍信已过有效期，须由转出方重新开具后才能接收。" } }
                } @else {
                    p.muted { @if t.direction == Direction::Inbound { "转入登记，介绍信由转出方（平台外）开具。" } @else { "转出方各级党组织审批同意后开具。" } }
                }
                h3 { "办理记录" }
                table.list #trail {
                    thead { tr { th { "操作" } th { "从" } th { "到" } th { "意见" } th { "操作人" } th { "党组织" } th { "时间" } } }
                    tbody {
                        @for st in &t.trail {
                            tr { td { (st.action_label()) } td { (st.from_node) } td { (st.to_node) } td { (st.opinion) }
                                 td { (st.actor_name) } td { (st.actor_org_name) } td { (short_time(&st.at)) } }
                        }
                    }
                }
                @if can.decide {
                    h3 { "审批" }
                    form.form #decide-form method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                        (csrf_field(actor))
                        (textarea_field("opinion", "审核意见（退回时必填）", "", false, errors))
                        div.actions {
                            button.primary type="submit" name="action" value="approve" data-confirm="确认同意，转到下一个党组织？" { "同意" }
                            button type="submit" name="action" value="return" data-confirm="确认退回上一个党组织？" { "退回" }
                        }
                    }
                }
                @if can.receive {
                    h3 { "接收" }
                    form.form #receive-form method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                        (csrf_field(actor))
                        (textarea_field("opinion", "接收意见 / 退回原因", "", false, errors))
                        div.actions {
                            button.primary type="submit" name="action" value="receive" data-confirm="确认接收该党员的组织关系？" { "接收" }
                            button type="submit" name="action" value="return" data-confirm="确认退回上一个党组织？" { "退回" }
                        }
                    }
                }
                @if can.resubmit || can.void {
                    h3 { "已退回" }
                    form.form #returned-form method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                        (csrf_field(actor))
                        (textarea_field("opinion", "说明", "", false, errors))
                        div.actions {
                            button.primary type="submit" name="action" value="resubmit" { "重新提交" }
                            button type="submit" name="action" value="void" data-confirm="确认废件？废件后转接结束，党员留在原党支部。" { "废件" }
                        }
                    }
                }
                @if can.withdraw {
                    (act("withdraw", "撤销转接", html! { (textarea_field("opinion", "撤销原因", "", false, errors)) },
                        "确认撤销？（仅在第一个党组织审批前可以撤销）", false))
                }
                @if can.reissue {
                    (act("reissue", "重新开具介绍信", html! {}, "确认重新开具？原介绍信将作废。", false))
                }
                @if can.reroute {
                    h3 { "改变转接路径" }
                    form.inline #reroute-search method="get" action={"/transfers/" (t.id)} {
                        label for="reroute_q" { "新的接收党支部（本单位管理范围内）" }
                        input #reroute_q type="search" name="reroute_q" value=(reroute_q.unwrap_or("")) placeholder="输入党支部名称关键字";
                        button type="submit" { "查找" }
                    }
                    @if !found.is_empty() {
                        form.form #reroute-form method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                            (csrf_field(actor))
                            input type="hidden" name="action" value="reroute";
                            ul.destinations {
                                @for d in &found {
                                    li { label { input type="radio" name="to_org_id" value=(d.id);
                                        " " strong { (d.name) } " " span.muted { (d.path) } } }
                                }
                            }
                            (errors.at("to_org_id"))
                            (textarea_field("opinion", "改变路径的原因", "", true, errors))
                            div.actions { button type="submit" data-confirm="确认改变转接路径？" { "改变转接路径" } }
                        }
                    } @else if reroute_q.is_some_and(|q| !q.trim().is_empty()) {
                        p.muted { "没有找到该名称的党支部。" }
                    }
                }
                @if can.abnormal {
                    h3 { "异常办结" }
                    form.form #abnormal-form method="post" action={"/transfers/" (t.id) "/act"} data-no-draft {
                        (csrf_field(actor))
                        input type="hidden" name="action" value="abnormal";
                        (textarea_field("reason", "异常办结原因", "", true, errors))
                        div.field { label { input type="checkbox" name="move_member" value="true"; " 将党员转入接收方（不勾选则党员留在原党支部）" } }
                        div.actions { button type="submit" data-confirm="确认异常办结？" { "异常办结" } }
                    }
                }
            }
        },
    ))
}

/// How long since `since` (RFC 3339): N天N小时.
pub fn waited_since(since: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(since) else {
        return String::new();
    };
    let d = chrono::Utc::now().signed_duration_since(t.with_timezone(&chrono::Utc));
    let hours = d.num_hours().max(0);
    if hours >= 24 {
        format!("{}天{}小时", hours / 24, hours % 24)
    } else if hours > 0 {
        format!("{hours}小时")
    } else {
        format!("{}分钟", d.num_minutes().max(0))
    }
}

async fn transfer_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let notice = q.notice.as_deref().and_then(notice_text);
    let r = transfer_view_page(
        &state,
        &actor,
        &id,
        notice,
        q.reroute_q.as_deref(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await;
    or_error(&actor, r)
}

async fn back_to_transfer(Path(id): Path<String>) -> Response {
    Redirect::to(&format!("/transfers/{id}")).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct ActForm {
    pub action: Option<String>,
    pub opinion: Option<String>,
    pub reason: Option<String>,
    pub to_org_id: Option<String>,
    pub move_member: Option<String>,
}

async fn act_submit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: CsrfForm<ActForm>,
) -> Response {
    let actor = f.actor;
    let form = f.form;
    let opinion = s(&form.opinion);
    let name = s(&form.action);
    let r = async {
        // Out of scope is answered as such before the form is judged.
        ops::view(&state, &actor, &id).await?;
        let action = match name.as_str() {
            "approve" => Action::Approve(opinion),
            "return" => Action::Return(opinion),
            "receive" => Action::Receive(opinion),
            "withdraw" => Action::Withdraw(opinion),
            "void" => Action::Void(opinion),
            "resubmit" => Action::Resubmit(opinion),
            "reissue" => Action::Reissue,
            "reroute" => Action::Reroute(RerouteInput {
                to_org_id: form.to_org_id.clone(),
                path: None,
                opinion: Some(opinion),
            }),
            "abnormal" => Action::Abnormal(AbnormalInput {
                reason: form.reason.clone(),
                move_member: Some(form.move_member.as_deref() == Some("true")),
            }),
            _ => return Err(ApiError::bad_request("请选择要办理的操作")),
        };
        match ops::act(&state, &actor, &id, action).await {
            Ok(()) => Ok(Redirect::to(&format!("/transfers/{id}?notice={name}")).into_response()),
            Err(e) if matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::CONFLICT) => {
                transfer_view_page(
                    &state,
                    &actor,
                    &id,
                    None,
                    None,
                    &FormErrors::from_api(&e),
                    e.status,
                )
                .await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    or_error(&actor, r)
}

async fn letter_page(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let letter = ops::letter_of(&state, &actor, &id).await?;
        let markup = crate::letter::pages::letter_page(&letter, &state)?;
        Ok(crate::web::html_response(StatusCode::OK, markup))
    }
    .await;
    or_error(&actor, r)
}

/// The transfer steps waiting at the actor's organisation, as the approvals inbox 维护审批
/// shows them beside the applications.
pub async fn inbox_section(state: &AppState, actor: &Actor) -> Result<Markup, ApiError> {
    if actor.role != crate::access::Role::Admin {
        return Ok(html! {});
    }
    let rows: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT id, kind, member_name, from_name, to_name, step_since FROM transfers \
         WHERE current_org_code = $1 AND state = 'active' ORDER BY step_since LIMIT 20",
    )
    .bind(&actor.org_code)
    .fetch_all(state.db.read())
    .await?;
    Ok(html! {
        @if !rows.is_empty() {
            h3 { "组织关系转接待办" }
            table.list #transfer-inbox {
                thead { tr { th { "转接类型" } th { "党员" } th { "转出单位" } th { "接收单位" } th { "已等待" } th.ops { "操作" } } }
                tbody {
                    @for (id, kind, name, from, to, since) in &rows {
                        tr data-id=(id) {
                            td { (Kind::parse(kind).map(|k| k.label()).unwrap_or("")) }
                            td { (name) } td { (from) } td { (to) } td { (waited_since(since)) }
                            td.ops { a href={"/transfers/" (id)} { "办理" } }
                        }
                    }
                }
            }
        }
    })
}
