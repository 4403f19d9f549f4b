//! The pure rules of applications: which tier applies for and which approves each kind (SPEC §4's
//! table), which organisation in the member's chain approves, and who may see, decide and
//! withdraw an item (SPEC §5).

use crate::error::ApiError;

/// The kinds of application that go through the queue. Transfer steps join later.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 新增申请（补录）: a member missed at collection, entered by a basic committee.
    Supplement,
    /// 党员出党
    Exit,
    /// 停止党籍
    Stop,
    /// 党员死亡
    Death,
    /// 党员减少（其他原因）
    OtherDecrease,
    /// 党员改名 whose new name the real-name source did not confirm: manual review.
    Rename,
    /// 实名认证备案: a member whose real-name check failed enters the database once filed.
    Realname,
    /// 信息更正申请: a member, from the own page 个人专区, asks the branch to correct the
    /// record; approved, the branch corrects it through the record's form.
    Correction,
    /// 网上转接申请: a member, from the own page, asks the branch for an outbound transfer;
    /// approved, the branch starts the transfer (党员转出申请) that the member then follows.
    TransferRequest,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Supplement,
        Kind::Exit,
        Kind::Stop,
        Kind::Death,
        Kind::OtherDecrease,
        Kind::Rename,
        Kind::Realname,
        Kind::Correction,
        Kind::TransferRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Supplement => "supplement",
            Kind::Exit => "exit",
            Kind::Stop => "stop",
            Kind::Death => "death",
            Kind::OtherDecrease => "other_decrease",
            Kind::Rename => "rename",
            Kind::Realname => "realname",
            Kind::Correction => "correction_request",
            Kind::TransferRequest => "transfer_request",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The name the pages use (the seeds' words).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Supplement => "新增申请（补录）",
            Kind::Exit => "党员出党",
            Kind::Stop => "停止党籍",
            Kind::Death => "党员死亡",
            Kind::OtherDecrease => "党员减少（其他原因）",
            Kind::Rename => "党员改名",
            Kind::Realname => "实名认证备案",
            Kind::Correction => "信息更正申请",
            Kind::TransferRequest => "网上转接申请",
        }
    }

    /// The tiers whose admins may apply (SPEC §4). None for a correction request: the member
    /// applies, from the own page.
    pub fn applicant_tiers(self) -> &'static [u8] {
        match self {
            Kind::Correction | Kind::TransferRequest => &[],
            Kind::Supplement => &[2],
            Kind::Exit | Kind::Stop | Kind::Death | Kind::OtherDecrease => &[1, 2, 3],
            Kind::Rename => &[3],
            Kind::Realname => &[2, 3],
        }
    }

    /// The tier that approves (SPEC §4).
    pub fn approver_tier(self) -> u8 {
        match self {
            Kind::Correction | Kind::TransferRequest => 3,
            Kind::Exit | Kind::Death => 2,
            Kind::Supplement | Kind::Stop | Kind::OtherDecrease | Kind::Rename | Kind::Realname => {
                1
            }
        }
    }

    /// Whether the kind is about a member in the living database (the others bring one in).
    pub fn concerns_living_member(self) -> bool {
        !matches!(self, Kind::Supplement | Kind::Realname)
    }

    /// The history list an approved application moves the member to.
    pub fn history_reason(self) -> Option<Reason> {
        match self {
            Kind::Exit => Some(Reason::Exit),
            Kind::Stop => Some(Reason::Stopped),
            Kind::Death => Some(Reason::Death),
            Kind::OtherDecrease => Some(Reason::Other),
            _ => None,
        }
    }

    /// The label of the date an application of this kind carries.
    pub fn date_label(self) -> &'static str {
        match self {
            Kind::Exit => "出党日期",
            Kind::Stop => "停止党籍日期",
            Kind::Death => "死亡日期",
            Kind::OtherDecrease => "减少日期",
            _ => "日期",
        }
    }

    /// The label of the reason an application of this kind carries.
    pub fn reason_label(self) -> &'static str {
        match self {
            Kind::Exit => "出党原因",
            Kind::Stop => "停止党籍原因",
            Kind::Death => "死亡原因",
            Kind::OtherDecrease => "减少原因",
            Kind::Rename => "改名原因",
            Kind::Supplement => "补录原因",
            Kind::Realname => "备案说明",
            Kind::Correction => "更正内容",
            Kind::TransferRequest => "转往何处及原因",
        }
    }
}

/// Why a record is in history 历史党员.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 出党
    Exit,
    /// 停止党籍
    Stopped,
    /// 去世
    Death,
    /// 其他原因减少
    Other,
    /// 党员补删: entered by mistake and deleted by a correction; the record is kept.
    Correction,
    /// 转出: transferred to an organisation outside the platform (SPEC §6).
    TransferredOut,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Exit,
        Reason::Stopped,
        Reason::Death,
        Reason::Other,
        Reason::Correction,
        Reason::TransferredOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Exit => "exit",
            Reason::Stopped => "stopped",
            Reason::Death => "death",
            Reason::Other => "other",
            Reason::Correction => "correction",
            Reason::TransferredOut => "transferred_out",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Reason::Exit => "出党",
            Reason::Stopped => "停止党籍",
            Reason::Death => "去世",
            Reason::Other => "其他原因减少",
            Reason::Correction => "党员补删",
            Reason::TransferredOut => "转出",
        }
    }

    /// The name of the management page listing these records.
    pub fn list_title(self) -> &'static str {
        match self {
            Reason::Exit => "出党管理",
            Reason::Stopped => "停止党籍管理",
            Reason::Death => "去世管理",
            Reason::Other => "其他减少管理",
            Reason::Correction => "党员补删记录",
            Reason::TransferredOut => "转出党员",
        }
    }

    /// Whether tier 1 may bring such a record back 找回 (SPEC §4).
    pub fn recoverable(self) -> bool {
        !matches!(self, Reason::Correction)
    }
}

/// The state of an application.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Withdrawn,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Approved,
            State::Rejected,
            State::Withdrawn,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            State::Pending => "待审批",
            State::Approved => "已通过",
            State::Rejected => "未通过",
            State::Withdrawn => "已取消",
        }
    }
}

/// The tier an admin grant on an organisation carries, as the chain is walked.
#[derive(Debug, Clone)]
pub struct ChainOrg {
    pub id: String,
    pub code: String,
    pub name: String,
    pub tier: u8,
}

/// The approver of an application about a member kept in the organisation at the end of
/// `chain` (ordered from the root down to the member's branch): the nearest organisation, from
/// the branch upward, whose tier is the approving tier or higher (a smaller number). A branch
/// with no basic committee with approval authority above it goes to the county.
pub fn approver(chain: &[ChainOrg], tier: u8) -> Option<&ChainOrg> {
    chain.iter().rev().find(|o| o.tier <= tier)
}

/// The refusal of a status change on a member who holds grants (SPEC §4: revoke those first).
/// `grants` are (role label, organisation name) of the live grants.
pub fn grants_block(grants: &[(String, String)]) -> Option<ApiError> {
    if grants.is_empty() {
        return None;
    }
    let named: Vec<String> = grants
        .iter()
        .map(|(role, org)| format!("“{org}”的{role}权限"))
        .collect();
    Some(ApiError::conflict(
        "member_holds_grants",
        format!(
            "该党员持有{}，须先由安全员在安全中心撤销后才能办理",
            named.join("、")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(code: &str, tier: u8) -> ChainOrg {
        ChainOrg {
            id: code.into(),
            code: code.into(),
            name: code.into(),
            tier,
        }
    }

    #[test]
    fn the_nearest_organisation_with_the_tier_approves() {
        let chain = [
            org("037", 1),
            org("03701", 1),
            org("0370101", 2),
            org("037010101", 3),
        ];
        assert_eq!(approver(&chain, 2).unwrap().code, "0370101");
        assert_eq!(approver(&chain, 1).unwrap().code, "03701");
        // No basic committee in the chain: the county approves.
        let chain = [org("037", 1), org("03701", 1), org("0370109", 3)];
        assert_eq!(approver(&chain, 2).unwrap().code, "03701");
        assert!(approver(&[org("0370109", 3)], 2).is_none());
    }

    #[test]
    fn the_table_of_spec_4() {
        use Kind::*;
        for (kind, applicants, approver) in [
            (Supplement, &[2u8][..], 1u8),
            (Exit, &[1, 2, 3], 2),
            (Stop, &[1, 2, 3], 1),
            (Death, &[1, 2, 3], 2),
            (OtherDecrease, &[1, 2, 3], 1),
            (Rename, &[3], 1),
            (Realname, &[2, 3], 1),
            (Correction, &[], 3),
            (TransferRequest, &[], 3),
        ] {
            assert_eq!(kind.applicant_tiers(), applicants, "{kind:?}");
            assert_eq!(kind.approver_tier(), approver, "{kind:?}");
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn grants_are_named() {
        assert!(grants_block(&[]).is_none());
        let e = grants_block(&[("管理员".into(), "第一支部".into())]).unwrap();
        assert_eq!(e.status, axum::http::StatusCode::CONFLICT);
        assert!(
            e.message.contains("“第一支部”的管理员权限"),
            "{}",
            e.message
        );
    }
}
