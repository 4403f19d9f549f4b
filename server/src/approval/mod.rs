//! Applications and approvals 维护审批 (SPEC §4, §5): one queue for every application that needs a
//! higher tier's approval. `rules` holds the pure table of who applies and who approves, `store`
//! the transactions (submit, decide, withdraw — each with its audit record), `history` the
//! members who left and what may be done with them, `routes` the JSON API and `pages` the
//! Chinese pages.

pub mod history;
pub mod pages;
pub mod phone;
pub mod routes;
pub mod rules;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use rules::{Kind, Reason, State};

/// An application as submitted (`POST /api/v1/applications`). Every field is optional here so
/// that each missing one is named in Chinese.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ApplicationInput {
    /// supplement | exit | stop | death | other_decrease | rename | realname
    #[schema(value_type = Option<Kind>)]
    pub kind: Option<String>,
    /// The member concerned (every kind except supplement and realname)
    pub member_id: Option<String>,
    /// 出党日期 / 停止党籍日期 / 死亡日期 / 减少日期 (YYYY-MM-DD): required for the kinds that
    /// move a member to history
    #[schema(format = Date)]
    pub date: Option<String>,
    /// 出党原因, 停止党籍原因, 死亡原因, 减少原因, 改名原因, 补录原因 or 备案说明 (required)
    pub reason: Option<String>,
    /// 备注
    pub remark: Option<String>,
    /// The new name (rename)
    pub new_name: Option<String>,
    /// The member to enter (supplement, realname): the fields of direct entry
    pub member: Option<crate::member::rules::MemberInput>,
    /// Ids of uploaded attachments 相关资料
    pub attachments: Option<Vec<String>>,
}

/// What an application carries, sealed in the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplicationData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub remark: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// The member to enter, as submitted (supplement, realname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<serde_json::Value>,
    /// 网上转接申请: where the member moves to, as the member wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_to: Option<String>,
    /// 网上转接申请: the member's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_reason: Option<String>,
}

/// One application as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub member_id: Option<String>,
    pub member_name: String,
    pub subject_org_code: String,
    pub subject_org_name: String,
    pub applicant_account_id: String,
    pub applicant_name: String,
    pub applicant_org_id: String,
    pub applicant_org_code: String,
    pub applicant_org_name: String,
    pub approver_org_id: String,
    pub approver_org_code: String,
    pub approver_org_name: String,
    pub approver_tier: i64,
    pub data: String,
    pub attachments: String,
    pub submitted_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
}

pub const APPLICATION_COLUMNS: &str = "id, kind, state, member_id, member_name, subject_org_code, \
    subject_org_name, applicant_account_id, applicant_name, applicant_org_id, applicant_org_code, \
    applicant_org_name, approver_org_id, approver_org_code, approver_org_name, approver_tier, data, \
    attachments, submitted_at, decided_at, decided_by";

impl ApplicationRow {
    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::OtherDecrease)
    }

    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Pending)
    }

    /// The submitted data, opened.
    pub fn data(&self) -> Result<ApplicationData, crate::error::ApiError> {
        let json = crate::crypto::open(crate::crypto::Column::ApplicationsData, &self.data)?;
        serde_json::from_str(&json).map_err(crate::error::ApiError::internal)
    }

    pub fn attachment_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.attachments).unwrap_or_default()
    }
}

/// One step of the trail 审核意见.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StepView {
    /// submit | approve | reject | withdraw
    pub action: String,
    pub opinion: String,
    pub actor_name: String,
    pub actor_org_name: String,
    pub at: String,
}

impl StepView {
    pub fn action_label(&self) -> &'static str {
        match self.action.as_str() {
            "submit" => "提交申请",
            "approve" => "审批通过",
            "reject" => "审批不通过",
            "withdraw" => "取消申请",
            _ => "",
        }
    }
}

/// The submitted data as shown: ID numbers and phones masked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataView {
    pub date: Option<String>,
    pub reason: String,
    pub remark: String,
    pub old_name: Option<String>,
    pub new_name: Option<String>,
    /// The member to enter (supplement, realname), ID number and phones masked.
    #[schema(value_type = Option<Object>)]
    pub member: Option<serde_json::Value>,
}

/// An application as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApplicationView {
    pub id: String,
    pub kind: Kind,
    pub kind_label: String,
    pub state: State,
    pub state_label: String,
    pub member_id: Option<String>,
    pub member_name: String,
    /// The member's organisation 所在党组织
    pub organisation: String,
    pub applicant_name: String,
    pub applicant_org_name: String,
    pub approver_org_name: String,
    pub approver_tier: i64,
    pub data: DataView,
    /// Ids of the attachments 相关资料
    pub attachments: Vec<String>,
    /// The trail of opinions 审核意见, oldest first
    pub steps: Vec<StepView>,
    pub submitted_at: String,
    pub decided_at: Option<String>,
    /// Whether the caller may approve or reject it now
    pub can_decide: bool,
    /// Whether the caller may withdraw it now 取消申请
    pub can_withdraw: bool,
}

/// An opinion 审核意见 with a decision or a withdrawal.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct OpinionInput {
    /// 审核意见 (required to reject)
    pub opinion: Option<String>,
}

/// Masks the personal fields of a submitted member.
pub fn mask_member_json(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(n) = o
            .get("id_number")
            .and_then(|x| x.as_str())
            .map(str::to_string)
        {
            o.insert(
                "id_number".into(),
                crate::member::idcard::mask(n.trim()).into(),
            );
        }
        for f in ["phone", "registered_phone"] {
            if let Some(p) = o.get(f).and_then(|x| x.as_str()).map(str::to_string) {
                o.insert(f.into(), crate::member::mask_phone(p.trim()).into());
            }
        }
        o.remove("birth_date");
    }
    v
}

/// Does the real-name source confirm this name for this ID number (SPEC §9)? Without a
/// configured source nothing is confirmed: the change goes to manual review. A source that
/// cannot answer refuses (503), never a silent pass.
pub async fn realname_confirms(
    state: &crate::state::AppState,
    id_number: &str,
    name: &str,
) -> crate::error::ApiResult<bool> {
    Ok(matches!(
        crate::realname::check(state, id_number, name).await?,
        Some(crate::realname::Verdict::Match)
    ))
}
