//! Members' own accounts 党员个人账号 (issue 18): real-name registration 党员注册 against the
//! living database, the member's sign-in (ID number, password and an SMS code to the
//! registered phone) and the member's page 个人专区. A member's session lives in
//! `member_sessions`, apart from the administrators' `sessions`: it reaches only `/api/v1/me…`
//! and `/me` (`session::MemberActor`), and an administrator's route answers it 403.
//!
//! `rules.rs` (pure): the mobile rule, name comparison, what a record lacks. `store.rs`: the
//! SQL (codes, accounts, sessions, the member found through the ID number's blind index).
//! `routes.rs`: the API. `session.rs`: the extractor. `pages.rs`: 党员注册, 党员登录, 个人专区.

pub mod pages;
pub mod password;
pub mod reminders;
pub mod routes;
pub mod rules;
pub mod session;
pub mod store;
pub mod totp;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// SMS codes of registration and sign-in are valid this many minutes.
pub const CODE_MINUTES: i64 = 5;
/// Wrong answers a code survives.
pub const CODE_ATTEMPTS: i64 = 5;
/// A new code for the same mobile or account no sooner than this.
pub const RESEND_SECONDS: i64 = 60;
/// Codes for one mobile or account within an hour.
pub const CODES_PER_HOUR: i64 = 10;
/// Throttling bucket of registration per client address.
pub const BUCKET_ADDRESS: &str = "register";
/// Throttling bucket of registration per ID number (keyed by its blind index).
pub const BUCKET_ID_NUMBER: &str = "register_id";
/// Throttling bucket of member sign-in per client address.
pub const BUCKET_SIGN_IN: &str = "member_sign_in";

/// The one answer to every registration whose details do not lead to a living member with
/// that phone: no such member, a wrong name, or a phone other than the registered one. It
/// never tells an outsider whether an ID number belongs to a member.
pub const NOT_MATCHED: &str = "身份证号、姓名或手机号与党员信息库中的登记不一致，无法注册。\
    请核对后重试；如党员信息库中登记的手机号已变更，请联系所在党支部更新登记手机号后再注册。";

#[derive(Deserialize, ToSchema)]
pub struct RegisterSms {
    /// 手机号: the code is sent here
    pub mobile: String,
}

#[derive(Serialize, ToSchema)]
pub struct CodeSent {
    /// Always true: the answer does not depend on the mobile.
    pub accepted: bool,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Register {
    /// 公民身份证号
    pub id_number: String,
    /// 姓名
    pub name: String,
    /// 手机号: becomes the registered phone when none is recorded; must equal it otherwise
    pub mobile: String,
    /// 短信验证码
    pub sms_code: String,
    /// 密码 (8-18 characters with upper-case and lower-case letters and digits)
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Registered {
    /// The new member account.
    pub account_id: String,
    pub name: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SignInSms {
    /// 公民身份证号
    pub id_number: String,
    /// 密码
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignInCodeSent {
    pub sent: bool,
    /// The registered phone, masked.
    pub phone: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct MemberSignIn {
    /// 公民身份证号
    pub id_number: String,
    /// 密码
    pub password: String,
    /// 短信验证码 sent to the registered phone
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct MemberSignedIn {
    pub token: String,
    pub csrf_token: String,
    pub member_id: String,
    pub name: String,
}

/// The member's organisation and how to reach it.
#[derive(Serialize, ToSchema)]
pub struct OwnOrg {
    pub id: String,
    pub code: String,
    pub name: String,
    /// 书记
    pub secretary: String,
    /// 联系人
    pub contact_name: String,
    /// 联系电话
    pub contact_phone: String,
}

/// 个人专区: the own record unmasked, what it lacks, the organisation.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub member: crate::member::MemberView,
    /// 信息完整度 0-100 (the record's)
    pub completeness: i64,
    /// The fields the record lacks, in Chinese.
    pub missing: Vec<String>,
    pub organisation: OwnOrg,
    /// When the personal account was registered (RFC 3339).
    pub registered_at: String,
    pub csrf_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CorrectionRequest {
    /// 更正内容: which items of the record are wrong and what they should be
    pub content: String,
}

#[derive(Serialize, ToSchema)]
pub struct Submitted {
    /// The application in the branch's approval queue.
    pub id: String,
    pub message: String,
}

/// One of the member's own applications, with the branch's answer.
#[derive(Serialize, ToSchema)]
pub struct OwnApplication {
    pub id: String,
    /// `correction_request`
    pub kind: String,
    pub kind_label: String,
    /// pending | approved | rejected | withdrawn
    pub state: String,
    pub state_label: String,
    pub content: String,
    /// Who decides (the branch).
    pub approver_org_name: String,
    pub submitted_at: String,
    pub decided_at: Option<String>,
    /// 审核意见 of the decision, if any.
    pub opinion: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OwnApplications {
    pub items: Vec<OwnApplication>,
}

#[derive(Deserialize, ToSchema)]
pub struct TransferRequest {
    /// 转往何处: the organisation or place the member moves to
    pub destination: String,
    /// 转接原因
    pub reason: String,
}

/// The member's letter of introduction 介绍信, as its holder may know it.
#[derive(Serialize, ToSchema)]
pub struct OwnLetter {
    pub number: String,
    /// issued | received | withdrawn | superseded
    pub state: String,
    pub state_label: String,
    pub valid_until: String,
    /// The public verification address (the letter's QR code).
    pub verify_url: String,
}

/// One transfer of the member 组织关系转接 and where it stands.
#[derive(Serialize, ToSchema)]
pub struct OwnTransfer {
    pub id: String,
    pub kind_label: String,
    /// active | returned | completed | withdrawn | voided | abnormal
    pub state: String,
    pub state_label: String,
    pub from_name: String,
    pub to_name: String,
    pub transfer_date: String,
    pub letter: Option<OwnLetter>,
}

#[derive(Serialize, ToSchema)]
pub struct OwnTransfers {
    pub items: Vec<OwnTransfer>,
}
