//! Organisation-relationship transfers 组织关系转接 (SPEC §6). `rules` holds the pure path and
//! state rules, `store` the transactions (create, approve, return, withdraw, void, re-route,
//! receive, abnormal completion — each with its trail step and audit record), `routes` the JSON
//! API and the operations the pages share, `pages` the Chinese pages. The letter 介绍信 itself
//! (number, signature, print, verification) is `crate::letter`.

pub mod pages;
pub mod records;
pub mod records_pages;
pub mod routes;
pub mod rules;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use rules::{Direction, Kind, State};

/// Contacts 联系方式 of one side, remembered per organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    /// 联系人
    #[serde(default)]
    pub contact: String,
    /// 联系电话
    #[serde(default)]
    pub phone: String,
    /// 传真
    #[serde(default)]
    pub fax: String,
    /// 邮编
    #[serde(default)]
    pub postcode: String,
    /// 通讯地址
    #[serde(default)]
    pub address: String,
}

/// The contacts of a transfer form: the source branch 转出党支部, its basic committee 所在基层党委
/// and the receiving side 接收党支部.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contacts {
    #[serde(default)]
    pub source: Contact,
    #[serde(default)]
    pub committee: Contact,
    #[serde(default)]
    pub receiving: Contact,
}

/// An outbound transfer 转出申请 (`POST /api/v1/transfers`). Every field is optional here so
/// that each missing one is named in Chinese.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct TransferInput {
    pub member_id: Option<String>,
    /// The transfer type 转出类型
    #[schema(value_type = Option<Kind>)]
    pub kind: Option<String>,
    /// The target branch 接收党支部 (types inside the platform)
    pub to_org_id: Option<String>,
    /// The receiving organisation as text 接收单位 (types outside the platform)
    pub to_text: Option<String>,
    /// 收信党组织 (the letter's addressee); default: the first organisation on the receiving side
    pub addressee: Option<String>,
    /// 转出原因
    pub reason: Option<String>,
    /// 转出日期 (YYYY-MM-DD)
    #[schema(format = Date)]
    pub date: Option<String>,
    /// 党费交到 (YYYY-MM)
    pub dues_paid_to: Option<String>,
    pub contacts: Option<Contacts>,
}

/// An inbound registration 省外转入登记 (`POST /api/v1/transfers/inbound`): the member's record
/// as the letter from outside gives it, entered into the target branch on receipt.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct InboundInput {
    /// 姓名 (also `member.name`)
    pub name: Option<String>,
    /// 公民身份证号码 (also `member.id_number`)
    pub id_number: Option<String>,
    /// The transfer type 转入类型
    #[schema(value_type = Option<Kind>)]
    pub kind: Option<String>,
    /// 转出单位 (outside the platform)
    pub from_text: Option<String>,
    /// The target branch 接收党支部
    pub to_org_id: Option<String>,
    /// 转入原因
    pub reason: Option<String>,
    /// 转入日期 (YYYY-MM-DD)
    #[schema(format = Date)]
    pub date: Option<String>,
    /// 原介绍信编号 (the paper letter's number)
    pub letter_number: Option<String>,
    /// The member's record (the fields of direct entry; `branch_id` is the target branch)
    pub member: Option<crate::member::rules::MemberInput>,
    pub contacts: Option<Contacts>,
}

/// What a transfer carries, sealed in the database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TransferData {
    pub id_number: String,
    #[serde(default)]
    pub addressee: String,
    #[serde(default)]
    pub dues_paid_to: String,
    #[serde(default)]
    pub contacts: Contacts,
    #[serde(default)]
    pub letter_number: String,
    /// The record to enter on receipt (inbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<serde_json::Value>,
}

/// An approval or a return 同意 / 退回 (`POST /transfers/{id}/decision`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct DecisionInput {
    /// approve 同意 | return 退回
    pub decision: Option<String>,
    /// 审核意见 (required to return)
    pub opinion: Option<String>,
}

/// An opinion with a withdrawal, a void, a receipt or a resubmission.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct NoteInput {
    pub opinion: Option<String>,
}

/// A re-route 改变转接路径: the new target branch, or the remaining path itself (organisation
/// ids after the current node, ending at a branch, each the parent or a child of the one before).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct RerouteInput {
    pub to_org_id: Option<String>,
    pub path: Option<Vec<String>>,
    /// 改变路径的原因
    pub opinion: Option<String>,
}

/// An abnormal completion 异常办结.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct AbnormalInput {
    /// 异常办结原因 (required)
    pub reason: Option<String>,
    /// Move the member to the destination (true) or leave it where it is (false, default)
    pub move_member: Option<bool>,
}

/// One transfer as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransferRow {
    pub id: String,
    pub direction: String,
    pub kind: String,
    pub state: String,
    pub member_id: Option<String>,
    pub member_name: String,
    pub id_number_idx: String,
    pub data: String,
    pub from_org_id: Option<String>,
    pub from_org_code: Option<String>,
    pub from_name: String,
    pub to_org_id: Option<String>,
    pub to_org_code: Option<String>,
    pub to_name: String,
    pub reason: String,
    pub transfer_date: String,
    pub current_step: i64,
    pub current_org_code: String,
    pub source_end: i64,
    pub path_len: i64,
    pub step_since: String,
    pub version: i64,
    pub created_by: String,
    pub created_by_name: String,
    pub created_org_code: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

pub const TRANSFER_COLUMNS: &str = "t.id, t.direction, t.kind, t.state, t.member_id, t.member_name, \
    t.id_number_idx, t.data, t.from_org_id, t.from_org_code, t.from_name, t.to_org_id, t.to_org_code, \
    t.to_name, t.reason, t.transfer_date, t.current_step, t.current_org_code, t.source_end, t.path_len, \
    t.step_since, t.version, t.created_by, t.created_by_name, t.created_org_code, t.created_at, \
    t.updated_at, t.finished_at";

impl TransferRow {
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Active)
    }

    pub fn kind(&self) -> Kind {
        Kind::parse(&self.kind).unwrap_or(Kind::OutOfProvince)
    }

    pub fn direction(&self) -> Direction {
        Direction::parse(&self.direction).unwrap_or(Direction::Outbound)
    }

    /// The index of the first node that approves (outbound: node 0 is the source branch,
    /// passed by the application itself).
    pub fn first_step(&self) -> i64 {
        match self.direction() {
            Direction::Outbound => 1,
            Direction::Inbound => 0,
        }
    }

    /// Does the transfer end with a receipt by a branch of the platform?
    pub fn received_inside(&self) -> bool {
        self.to_org_id.is_some()
    }

    /// The organisation that acts for the source (withdraw, void, resubmit, re-issue): the
    /// source branch, or the registering organisation of an inbound registration.
    pub fn source_code(&self) -> &str {
        self.from_org_code
            .as_deref()
            .unwrap_or(&self.created_org_code)
    }

    pub fn data(&self) -> Result<TransferData, crate::error::ApiError> {
        let json = crate::crypto::open(crate::crypto::Column::TransfersData, &self.data)?;
        serde_json::from_str(&json).map_err(crate::error::ApiError::internal)
    }
}

/// One node of a path as stored.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct NodeView {
    pub seq: i64,
    pub org_id: String,
    #[serde(skip)]
    pub org_code: String,
    pub org_name: String,
    /// 自动审核
    pub auto: i64,
    /// waiting 待办理 | current 当前办理 | approved 已同意 | auto 自动审核 | received 已接收 | source 转出方
    pub state: String,
    pub acted_at: Option<String>,
}

impl NodeView {
    pub fn state_label(&self) -> &'static str {
        match self.state.as_str() {
            "current" => "当前办理",
            "approved" => "已同意",
            "auto" => "自动审核通过",
            "received" => "已接收",
            "source" => "转出方",
            _ => "待办理",
        }
    }
}

/// One step of the trail: from, to, opinion, operator, time.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StepView {
    /// submit | approve | auto | return | resubmit | withdraw | void | reroute | receive | complete | abnormal | reissue
    pub action: String,
    pub from_node: String,
    pub to_node: String,
    pub opinion: String,
    pub actor_name: String,
    pub actor_org_name: String,
    pub at: String,
}

impl StepView {
    pub fn action_label(&self) -> &'static str {
        action_label(&self.action)
    }
}

pub fn action_label(action: &str) -> &'static str {
    match action {
        "submit" => "提交转接",
        "register" => "转入登记",
        "approve" => "同意",
        "auto" => "自动审核",
        "return" => "退回",
        "resubmit" => "重新提交",
        "withdraw" => "撤销",
        "void" => "废件",
        "reroute" => "改变转接路径",
        "receive" => "接收",
        "complete" => "办结（转出平台）",
        "abnormal" => "异常办结",
        "reissue" => "重新开具介绍信",
        _ => "",
    }
}

/// A transfer as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub direction: Direction,
    pub kind: Kind,
    pub kind_label: String,
    pub state: State,
    pub state_label: String,
    pub member_id: Option<String>,
    pub member_name: String,
    /// 公民身份证号码, masked
    pub id_number: String,
    pub from_org_id: Option<String>,
    pub from_name: String,
    pub to_org_id: Option<String>,
    pub to_name: String,
    pub addressee: String,
    pub reason: String,
    pub date: String,
    pub dues_paid_to: String,
    pub contacts: Contacts,
    /// The organisation whose turn it is 当前办理
    pub current_org: String,
    pub current_step: i64,
    /// When the current step began (how long it has waited)
    pub step_since: String,
    pub path: Vec<NodeView>,
    pub trail: Vec<StepView>,
    /// The current letter's number, when one has been issued
    pub letter_number: Option<String>,
    /// The letter's state: issued | withdrawn | superseded | received
    pub letter_state: Option<String>,
    pub letter_valid_until: Option<String>,
    pub letter_expired: bool,
    pub created_by_name: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    /// What the caller may do now
    pub can: Abilities,
}

/// The actions the caller may take on a transfer now (the pages show only these).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Abilities {
    pub decide: bool,
    pub receive: bool,
    pub withdraw: bool,
    pub void: bool,
    pub resubmit: bool,
    pub reroute: bool,
    pub abnormal: bool,
    pub reissue: bool,
}
