//! The one place that answers "may this actor do this to that": role family, tier and scope.
//! Every handler asks here; functions that change state require the [`Allowed`] proof that only
//! this module can make, so a write that skipped the check does not compile.

use crate::error::ApiError;

/// Role families (SPEC §1). They are mutually exclusive for one person.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 安全员
    Security,
    /// 审计员
    Auditor,
    /// 管理员
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Security => "security",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "security" => Some(Role::Security),
            "auditor" => Some(Role::Auditor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Security => "安全员",
            Role::Auditor => "审计员",
            Role::Admin => "管理员",
        }
    }
}

/// Who is acting: the signed-in account under its active grant.
#[derive(Debug, Clone)]
pub struct Actor {
    pub account_id: String,
    pub name: String,
    pub grant_id: String,
    pub role: Role,
    /// 1, 2 or 3 for admins.
    pub tier: Option<u8>,
    /// The scope organisation of the active grant and its unified code.
    pub org_id: String,
    pub org_code: String,
    pub org_name: String,
    pub client_addr: String,
    pub cert_serial: Option<String>,
    pub session_token_hash: String,
    pub csrf_token: String,
    /// The account still carries a one-time password (`init`): until it is changed the
    /// session reaches only the change-password API and page.
    pub must_change_password: bool,
}

/// Proof that [`access`](self) allowed an operation. Only this module can make one.
#[derive(Debug)]
pub struct Allowed(());

/// The proof for the platform's own writes outside any request: `init`, `demo` and test
/// fixtures that build a database. No handler may call this; they ask the functions below.
pub fn platform() -> Allowed {
    Allowed(())
}

/// What a caller does about its own account before (or while) it has a session: the writes
/// of signing in, activation, password reset, enrolment and the throttle. There is no actor to
/// ask about scope; what makes each allowed is the credential just checked, named here so that
/// these writes, like every other, take an [`Allowed`] that only this module makes.
#[derive(Debug, Clone, Copy)]
pub enum SelfService<'a> {
    /// Anyone may make an attempt (sign-in, SMS code, activation, reset, enrolment); the
    /// throttle reserves its slot and a failure counts against the account tried.
    Attempt,
    /// Open a session for the account whose password and code (or card) were just verified.
    SignedIn { account_id: &'a str },
    /// Set the credentials of the account whose activation or reset codes were just checked,
    /// or clear them when a security officer issues or resets a grant.
    Credentials { account_id: &'a str },
    /// Create the personal account 党员个人账号 of the living member whose ID number, name,
    /// mobile and SMS code were just checked (`personal::store::register`).
    Register { member_id: &'a str },
    /// Open a member session for the member account whose password and SMS code were just
    /// verified.
    MemberSignedIn { member_account_id: &'a str },
    /// Set the password of the member account whose reset code (or old password, by its own
    /// session) was just checked.
    MemberCredentials { member_account_id: &'a str },
}

/// The proof for a [`SelfService`] write.
pub fn self_service(what: SelfService<'_>) -> Allowed {
    tracing::trace!(?what, "self-service write");
    Allowed(())
}

/// A member signed in with the personal account 党员个人账号 (`personal::session`): it reaches
/// only the member's own record and applications, never an administrator's route — the
/// administrators' [`Actor`] extractor answers such a session 403.
#[derive(Debug, Clone)]
pub struct MemberActor {
    pub member_account_id: String,
    pub member_id: String,
    pub name: String,
    /// The member's branch (id, unified code, name).
    pub branch_id: String,
    pub org_code: String,
    pub org_name: String,
    pub client_addr: String,
    pub session_token_hash: String,
    pub csrf_token: String,
}

/// May the member read or act on the record of `member_id`? Only the own one; anything else
/// is answered 404, as if it did not exist (a member learns nothing about other records).
pub fn own_record(actor: &MemberActor, member_id: &str) -> Result<Allowed, ApiError> {
    if actor.member_id == member_id {
        Ok(Allowed(()))
    } else {
        Err(ApiError::not_found("党员"))
    }
}

/// May the actor send registration reminders 注册提醒 to the unregistered members of the
/// branch `branch_code`? Admins whose scope covers the branch.
pub fn registration_reminders(actor: &Actor, branch_code: &str) -> Result<Allowed, ApiError> {
    org(actor, branch_code, Reach::Subtree)
}

/// The answer to a member session on any administrator's route (SPEC §8: a member's
/// account reaches only the member's own pages and `/api/v1/me…`).
pub fn member_session_refused() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "member_session",
        "党员个人账号只能访问个人专区",
    )
}

/// The answer to an administrator's session on the member's own routes.
pub fn admin_session_refused() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "not_member_session",
        "个人专区只对已注册的党员个人账号开放，管理员账号请使用管理页面",
    )
}

/// How far below the actor's scope organisation a target must lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The scope organisation itself or anything below it.
    Subtree,
    /// Strictly below the scope organisation (rename, delete, revoke, change category).
    StrictlyBelow,
}

/// Is `code` the organisation `scope` or below it? Unified codes are materialised paths.
pub fn code_within(scope: &str, code: &str) -> bool {
    code.starts_with(scope)
}

fn business_role(actor: &Actor) -> Result<(), ApiError> {
    match actor.role {
        Role::Admin => Ok(()),
        Role::Security | Role::Auditor => Err(ApiError::forbidden(format!(
            "{}不能办理党员、党组织等业务（三员分立），请使用管理员账号",
            actor.role.label()
        ))),
    }
}

/// May the actor change the password of its own account (修改密码)? Every signed-in account
/// may, whatever its role: the account is the actor's own, proved by the old password.
pub fn own_password(actor: &Actor) -> Result<Allowed, ApiError> {
    if actor.account_id.is_empty() {
        return Err(ApiError::unauthorized());
    }
    Ok(Allowed(()))
}

/// May the actor read business data at all (list, search)?
pub fn business_read(actor: &Actor) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    Ok(Allowed(()))
}

/// May the actor read (search, verify, export) the audit log? Only auditors (SPEC §1, §12).
pub fn audit_read(actor: &Actor) -> Result<Allowed, ApiError> {
    match actor.role {
        Role::Auditor => Ok(Allowed(())),
        Role::Security | Role::Admin => Err(ApiError::forbidden(format!(
            "只有审计员可以查看和导出安全审计日志（三员分立），{}无此权限",
            actor.role.label()
        ))),
    }
}

/// Which audit records an auditor sees (SPEC §1, §12; issue 11 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScope {
    /// The root organisation's auditor: every record, also those written before records
    /// carried scope codes.
    All,
    /// An auditor of a lower organisation: the records whose actor's scope organisation or
    /// whose target's organisation lies in this subtree (a unified code).
    Subtree(String),
}

impl AuditScope {
    /// May a record with these scope codes be shown?
    pub fn sees(&self, actor_org_code: Option<&str>, target_org_code: Option<&str>) -> bool {
        match self {
            AuditScope::All => true,
            AuditScope::Subtree(scope) => [actor_org_code, target_org_code]
                .into_iter()
                .flatten()
                .any(|c| code_within(scope, c)),
        }
    }
}

/// The audit records the actor may search, export and verify: only auditors; the root's
/// auditor all of them, any other auditor those of its subtree. `root_code` is the unified
/// code of the root organisation.
pub fn audit_scope(actor: &Actor, root_code: &str) -> Result<AuditScope, ApiError> {
    audit_read(actor)?;
    if actor.org_code == root_code {
        Ok(AuditScope::All)
    } else {
        Ok(AuditScope::Subtree(actor.org_code.clone()))
    }
}

/// May the actor work on the organisation with unified code `target_code`?
pub fn org(actor: &Actor, target_code: &str, reach: Reach) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    let inside = code_within(&actor.org_code, target_code);
    match reach {
        Reach::Subtree if inside => Ok(Allowed(())),
        Reach::StrictlyBelow if inside && target_code != actor.org_code => Ok(Allowed(())),
        Reach::StrictlyBelow if target_code == actor.org_code => Err(ApiError::forbidden(
            "不能对本级党组织执行此操作，只能操作下级党组织",
        )),
        _ => Err(ApiError::forbidden("该党组织不在您的管理范围内")),
    }
}

/// May the actor watch a background job (`jobs`)? Only the account that started it; anyone
/// else's job, like one that does not exist, is not found.
pub fn own_job(actor: &Actor, owner: Option<&str>) -> Result<Allowed, ApiError> {
    match owner {
        Some(o) if !actor.account_id.is_empty() && o == actor.account_id => Ok(Allowed(())),
        _ => Err(ApiError::out_of_scope("任务")),
    }
}

/// May the actor see or change a member kept in the organisation `member_org_code`? Members
/// outside the scope are answered as not found: their existence is confidential.
pub fn member(actor: &Actor, member_org_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, member_org_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("党员"))
    }
}

/// The tier names the pages use (SPEC §1).
pub fn tier_label(tier: u8) -> &'static str {
    match tier {
        1 => "县级及以上党委",
        2 => "基层党委（具有发展党员审批权限）",
        _ => "党总支、党支部",
    }
}

/// May the actor do `action` to a member (or a history record, or a branch it enters a member
/// into) kept in `target_code`, holding one of `tiers` (SPEC §4's table: status changes,
/// recovery, cancel phone, correction delete)? Outside the scope is answered as not found; the
/// wrong tier as forbidden, naming the tiers that may.
pub fn member_at_tier(
    actor: &Actor,
    target_code: &str,
    tiers: &[u8],
    action: &str,
) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if !code_within(&actor.org_code, target_code) {
        return Err(ApiError::out_of_scope("党员"));
    }
    if actor.tier.is_some_and(|t| tiers.contains(&t)) {
        Ok(Allowed(()))
    } else if tiers.is_empty() {
        Err(ApiError::forbidden(format!(
            "“{action}”由党员本人在个人专区提交"
        )))
    } else {
        let names: Vec<&str> = tiers.iter().map(|t| tier_label(*t)).collect();
        Err(ApiError::forbidden(format!(
            "“{action}”只能由{}管理员办理",
            names.join("、")
        )))
    }
}

/// May the actor approve or reject an application whose approver is the organisation
/// `approver_code` at `approver_tier` (SPEC §5)? Only the admins of that organisation holding
/// that tier, and never on an application they submitted themselves.
pub fn decide(
    actor: &Actor,
    approver_code: &str,
    approver_tier: u8,
    applicant_account_id: &str,
) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if actor.tier != Some(approver_tier) || actor.org_code != approver_code {
        return Err(ApiError::forbidden(format!(
            "该申请须由{}管理员在“维护审批”中审批",
            tier_label(approver_tier)
        )));
    }
    if actor.account_id == applicant_account_id {
        return Err(ApiError::forbidden("不能审批本人提交的申请"));
    }
    Ok(Allowed(()))
}

/// The proof for deciding an application as it is made when the applicant is itself the
/// approver (the admin of the approver organisation at the approver tier applies): there is no
/// one above it in the chain for this kind, so the application is approved in its name, both
/// steps on the trail.
pub fn decide_own(actor: &Actor, approver_code: &str, approver_tier: u8) -> Option<Allowed> {
    (actor.role == Role::Admin
        && actor.tier == Some(approver_tier)
        && actor.org_code == approver_code)
        .then_some(Allowed(()))
}

/// May the actor see an application: its approver, or an admin whose scope holds the applying
/// organisation or the member's organisation? Anything else is answered as not found.
pub fn application_read(
    actor: &Actor,
    approver: (&str, u8),
    applicant_code: &str,
    subject_code: &str,
) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    let approver_sees = actor.tier == Some(approver.1) && actor.org_code == approver.0;
    if approver_sees
        || code_within(&actor.org_code, applicant_code)
        || code_within(&actor.org_code, subject_code)
    {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("申请"))
    }
}

/// May the actor withdraw 取消申请 an application made by the organisation `applicant_code`? Its
/// admins and those above it.
pub fn withdraw(actor: &Actor, applicant_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, applicant_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "只有申请单位及其上级党组织的管理员可以取消申请",
        ))
    }
}

/// May the actor register an inbound transfer 省外转入登记 into the branch `target_code`? Admins
/// of the organisations with transfer authority (tiers 1 and 2) whose scope holds the branch.
pub fn transfer_register(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if !code_within(&actor.org_code, target_code) {
        return Err(ApiError::forbidden("接收党支部不在您的管理范围内"));
    }
    match actor.tier {
        Some(1 | 2) => Ok(Allowed(())),
        _ => Err(ApiError::forbidden(format!(
            "“省外转入登记”只能由{}、{}管理员办理",
            tier_label(1),
            tier_label(2)
        ))),
    }
}

/// May the actor approve, return or receive a transfer whose current node is the organisation
/// `node_code` (named `node_name`)? Only that node's admins: a transfer is acted on node by
/// node, nobody skips ahead or acts for another node.
pub fn transfer_node(actor: &Actor, node_code: &str, node_name: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if actor.org_code == node_code {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(format!(
            "该转接当前由“{node_name}”办理，只有该党组织的管理员可以操作"
        )))
    }
}

/// May the actor act for the source of a transfer (withdraw 撤销, void 废件, resubmit, re-issue
/// the letter)? Admins of the source branch (or of the registering organisation) and above.
pub fn transfer_source(actor: &Actor, source_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, source_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "只有转出方党组织及其上级党组织的管理员可以办理",
        ))
    }
}

/// May the actor re-route 改变转接路径 a transfer whose current node is `current_code`? Admins of
/// an organisation strictly above the current node.
pub fn transfer_reroute(actor: &Actor, current_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, current_code) && actor.org_code != current_code {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "只有当前办理党组织的上级党组织可以改变转接路径",
        ))
    }
}

/// May the actor complete a transfer abnormally 异常办结? Tier-1 admins whose scope holds one of
/// the transfer's organisations (`codes`: source, target, current node).
pub fn transfer_abnormal(actor: &Actor, codes: &[&str]) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if actor.tier != Some(1) {
        return Err(ApiError::forbidden(format!(
            "“异常办结”只能由{}管理员办理",
            tier_label(1)
        )));
    }
    if codes.iter().any(|c| code_within(&actor.org_code, c)) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden("该转接不在您的管理范围内"))
    }
}

/// May the actor see a transfer? Admins whose scope holds one of its organisations (`codes`:
/// every node of the path, source, target, registering organisation). Anything else is
/// answered as not found.
pub fn transfer_read(actor: &Actor, codes: &[&str]) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if codes.iter().any(|c| code_within(&actor.org_code, c)) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("转接"))
    }
}

/// May the actor see or attach files kept for the subtree of `org_code` (an attachment's
/// organisation, or the organisation of the member a photo belongs to)? Outside the scope the
/// file is answered as not found.
pub fn attachment(actor: &Actor, org_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, org_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("附件"))
    }
}

/// May the actor see a unit owned by, managed by or linked to organisations with these codes?
/// Units outside the scope are answered as not found.
pub fn unit_read<'a>(
    actor: &Actor,
    codes: impl IntoIterator<Item = &'a str>,
) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if codes.into_iter().any(|c| code_within(&actor.org_code, c)) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("单位"))
    }
}

/// May the actor edit or delete a unit (SPEC §3)? Only the admins of the organisation that
/// keeps it, or above: a unit linked to organisations (`linked_codes`) is kept by them and
/// edited only through their page; an unlinked unit by its owner (`owner_code`). A managing
/// organisation, or an owner whose unit is now linked elsewhere, may read but not write.
pub fn unit_write(
    actor: &Actor,
    owner_code: &str,
    linked_codes: &[&str],
) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    let keepers: Vec<&str> = if linked_codes.is_empty() {
        vec![owner_code]
    } else {
        linked_codes.to_vec()
    };
    if keepers.iter().all(|c| code_within(&actor.org_code, c)) {
        Ok(Allowed(()))
    } else if linked_codes.is_empty() {
        Err(ApiError::forbidden(
            "该单位由其所属党组织维护，只有所属党组织及其上级党组织的管理员可以修改或删除",
        ))
    } else {
        Err(ApiError::forbidden(
            "该单位已关联党组织，只能由所关联党组织及其上级党组织的管理员在该党组织页面维护",
        ))
    }
}

/// Setting `may_approve_development` raises the tier of grants on that organisation: only an
/// admin of tier 1 may do it, and only strictly below their own organisation.
pub fn grant_approval_authority(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    org(actor, target_code, Reach::StrictlyBelow)?;
    if actor.tier == Some(1) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "只有县级及以上党委管理员可以设置“具有发展党员审批权限”",
        ))
    }
}

/// May the actor manage grants and accounts (grant, revoke, unlock, reset) on the organisation
/// with unified code `target_code`? Security officers only, inside their own subtree.
pub fn grant_admin(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    if actor.role != Role::Security {
        return Err(ApiError::forbidden(
            "只有安全员可以管理授权和账号（三员分立）",
        ));
    }
    if code_within(&actor.org_code, target_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden("该党组织不在您的管理范围内"))
    }
}

/// May the security officer manage this account (unlock, reset, revoke a grant or a card
/// certificate, add a grant)? Only when **every** live grant of the account (`live_grant_codes`:
/// the unified codes of the organisations of its unrevoked grants) lies in the officer's
/// subtree: an officer low in the tree must not reach an account that also acts far above it.
/// An account without live grants is not the officer's to manage (answered as not found).
pub fn account_admin(actor: &Actor, live_grant_codes: &[String]) -> Result<Allowed, ApiError> {
    if actor.role != Role::Security {
        return Err(ApiError::forbidden(
            "只有安全员可以管理授权和账号（三员分立）",
        ));
    }
    if live_grant_codes.is_empty() {
        return Err(ApiError::not_found("账号"));
    }
    if live_grant_codes
        .iter()
        .all(|c| code_within(&actor.org_code, c))
    {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "该人员还持有您管理范围以外党组织的授权，只能由上级安全员管理",
        ))
    }
}

/// May the actor make `role`/`tier` the active grant of its session? A password session cannot
/// take up a grant that needs the USB key (SPEC §1, §8).
pub fn switch_grant(actor: &Actor, role: Role, tier: Option<u8>) -> Result<Allowed, ApiError> {
    if actor.cert_serial.is_none() && needs_card(role, tier) {
        return Err(card_required());
    }
    Ok(Allowed(()))
}

/// Every signed-in actor may act on its own account's sessions (sign out everywhere, change
/// its password).
pub fn own_account(actor: &Actor) -> Allowed {
    let _ = actor;
    Allowed(())
}

/// Setting `may_approve_development` on a new child of the organisation `parent_code`: the
/// parent must be in the actor's scope (the child then lies strictly below the actor), and
/// only tier-1 admins may.
pub fn approval_authority_for_new_child(
    actor: &Actor,
    parent_code: &str,
) -> Result<Allowed, ApiError> {
    org(actor, parent_code, Reach::Subtree)?;
    if actor.role == Role::Admin && actor.tier == Some(1) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(
            "只有县级及以上党委管理员可以设置“具有发展党员审批权限”",
        ))
    }
}

/// Does a grant of this role and tier need a card session (SPEC §1, §8)? Security officers,
/// auditors and admins of tiers 1 and 2 sign in with the USB key (card certificate + code)
/// only; tier-3 admins may use either.
pub fn needs_card(role: Role, tier: Option<u8>) -> bool {
    match role {
        Role::Security | Role::Auditor => true,
        Role::Admin => matches!(tier, Some(1 | 2)),
    }
}

/// The answer to a password session (or a role switch) where the grant needs the USB key.
pub fn card_required() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "card_required",
        "一级、二级管理员和安全员、审计员须使用 USB Key 登录：请插入 USB Key，运行 USB Key 代理（dangjian-agent connect），以证书和六位动态码登录",
    )
}

/// The tier an admin grant on an organisation carries (SPEC §1): a category-1 committee
/// (county level or above) gives 1, a basic committee with approval authority gives 2,
/// anything else 3.
pub fn tier_for_org(category: &str, may_approve_development: bool) -> u8 {
    match category {
        "1" => 1,
        "611" if may_approve_development => 2,
        _ => 3,
    }
}

// ---- quality (issue 16)

/// May the actor start a batch quality check 批量信息校验 of the subtree of `target_code`?
/// Admins, inside their scope.
pub fn quality_batch(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    org(actor, target_code, Reach::Subtree)
}

/// May the actor see a batch check of the organisation `check_code` and its results? Admins
/// whose scope contains that organisation; anything else is answered as not found.
pub fn quality_check(actor: &Actor, check_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, check_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("校验"))
    }
}

/// May the actor edit the special-period minimum-age table 特殊时期特殊生日? Tier-1 admins.
pub fn quality_periods(actor: &Actor) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if actor.tier == Some(1) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::forbidden(format!(
            "“特殊时期特殊生日”规定只能由{}管理员维护",
            tier_label(1)
        )))
    }
}

// ---- query (issue 16)

/// May the actor run a comprehensive query 综合查询 over the organisation `org_code` and
/// below? Admins only, inside their subtree.
pub fn query(actor: &Actor, org_code: &str) -> Result<Allowed, ApiError> {
    org(actor, org_code, Reach::Subtree)
}

/// May the actor save a named query 固定查询 for its own account? Admins (business roles).
pub fn saved_query_write(actor: &Actor) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    Ok(Allowed(()))
}

/// May the actor use or delete the saved query owned by `owner_account_id`? Its owner only;
/// anyone else's is answered as not found.
pub fn saved_query(actor: &Actor, owner_account_id: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if owner_account_id == actor.account_id {
        Ok(Allowed(()))
    } else {
        Err(ApiError::not_found("固定查询"))
    }
}

// ---- member import and rosters (issue 16)

/// May the actor see, confirm or cancel a member import made into the subtree of `org_code`?
/// Admins whose scope holds it; outside the scope the import is answered as not found.
pub fn member_import(actor: &Actor, org_code: &str) -> Result<Allowed, ApiError> {
    business_role(actor)?;
    if code_within(&actor.org_code, org_code) {
        Ok(Allowed(()))
    } else {
        Err(ApiError::out_of_scope("导入记录"))
    }
}

/// May the actor export a roster 名册 of the organisation `org_code` (and its subtree)?
pub fn roster(actor: &Actor, org_code: &str) -> Result<Allowed, ApiError> {
    org(actor, org_code, Reach::Subtree)
}

// ---- stats (issue 16)

/// May the actor read the statistics 党员统计 / 注册统计 of the organisation `target_code` and its
/// subtree? Admins, within their scope; security officers and auditors do no business.
pub fn stats_read(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    org(actor, target_code, Reach::Subtree)
}

/// May the actor print the collection form 采集表 of the organisation `target_code`? Admins,
/// within their scope. (A member's form goes through [`member`] with its view's audit.)
pub fn org_form(actor: &Actor, target_code: &str) -> Result<Allowed, ApiError> {
    org(actor, target_code, Reach::Subtree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(code: &str, tier: u8) -> Actor {
        Actor {
            account_id: "a".into(),
            name: "测试".into(),
            grant_id: "g".into(),
            role: Role::Admin,
            tier: Some(tier),
            org_id: "o".into(),
            org_code: code.into(),
            org_name: "组织".into(),
            client_addr: String::new(),
            cert_serial: None,
            session_token_hash: String::new(),
            csrf_token: String::new(),
            must_change_password: false,
        }
    }

    #[test]
    fn subtree_and_strictly_below() {
        let a = admin("03701", 3);
        assert!(org(&a, "03701", Reach::Subtree).is_ok());
        assert!(org(&a, "0370105", Reach::Subtree).is_ok());
        assert!(org(&a, "03701", Reach::StrictlyBelow).is_err());
        assert!(org(&a, "0370105", Reach::StrictlyBelow).is_ok());
        assert!(org(&a, "03702", Reach::Subtree).is_err());
        assert!(org(&a, "037", Reach::Subtree).is_err());
    }

    #[test]
    fn security_and_auditor_do_no_business() {
        let mut a = admin("037", 1);
        a.role = Role::Security;
        assert!(business_read(&a).is_err());
        assert!(org(&a, "03701", Reach::Subtree).is_err());
        a.role = Role::Auditor;
        assert!(member(&a, "03701").is_err());
    }

    #[test]
    fn only_auditors_read_the_audit_log() {
        let mut a = admin("037", 1);
        assert!(audit_read(&a).is_err());
        a.role = Role::Security;
        assert!(audit_read(&a).is_err());
        a.role = Role::Auditor;
        assert!(audit_read(&a).is_ok());
    }

    #[test]
    fn auditors_see_their_subtree_and_the_root_auditor_everything() {
        let mut a = admin("03701", 1);
        assert!(audit_scope(&a, "037").is_err());
        a.role = Role::Auditor;
        let scope = audit_scope(&a, "037").unwrap();
        assert_eq!(scope, AuditScope::Subtree("03701".into()));
        assert!(scope.sees(Some("0370105"), None));
        assert!(scope.sees(Some("037"), Some("03701")));
        assert!(!scope.sees(Some("03702"), Some("037")));
        assert!(!scope.sees(None, None));
        a.org_code = "037".into();
        let all = audit_scope(&a, "037").unwrap();
        assert_eq!(all, AuditScope::All);
        assert!(all.sees(None, None));
    }

    #[test]
    fn card_rule_follows_role_and_tier() {
        assert!(needs_card(Role::Security, None));
        assert!(needs_card(Role::Auditor, None));
        assert!(needs_card(Role::Admin, Some(1)));
        assert!(needs_card(Role::Admin, Some(2)));
        assert!(!needs_card(Role::Admin, Some(3)));
        assert!(card_required().message.contains("使用 USB Key 登录"));
    }

    #[test]
    fn tiers_follow_the_organisation() {
        assert_eq!(tier_for_org("1", false), 1);
        assert_eq!(tier_for_org("611", true), 2);
        assert_eq!(tier_for_org("611", false), 3);
        assert_eq!(tier_for_org("631", false), 3);
    }

    #[test]
    fn only_security_officers_manage_grants_in_their_subtree() {
        let mut a = admin("037", 1);
        assert!(grant_admin(&a, "03701").is_err());
        a.role = Role::Auditor;
        assert!(grant_admin(&a, "03701").is_err());
        a.role = Role::Security;
        assert!(grant_admin(&a, "03701").is_ok());
        assert!(grant_admin(&a, "037").is_ok());
        assert!(grant_admin(&a, "038").is_err());
    }

    #[test]
    fn officers_manage_accounts_only_when_every_live_grant_is_theirs() {
        let mut a = admin("037", 1);
        a.role = Role::Security;
        assert!(account_admin(&a, &["03701".into(), "037".into()]).is_ok());
        let e = account_admin(&a, &["03701".into(), "038".into()]).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        let e = account_admin(&a, &[]).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        a.role = Role::Admin;
        assert!(account_admin(&a, &["03701".into()]).is_err());
    }

    #[test]
    fn members_outside_scope_are_not_found() {
        let a = admin("03701", 3);
        let e = member(&a, "03702").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
    }
}
