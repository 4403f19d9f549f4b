//! 党员统计 and 注册统计 (SPEC §7): counts of the living members of an organisation's subtree
//! by category, sex, ethnicity, education, age band, job and join-date band, one row per
//! direct child organisation for drilling down, members with an activated personal account,
//! and the year's membership changes from the ledger `member_changes`.
//!
//! The counts come from `member_tally` (migration 0019), kept by database triggers in the same
//! transaction as every change to `members`: current on every request, and a subtree of a
//! million members sums a few thousand tally rows instead of scanning members. `rules` turns
//! the year-month histograms into age and join-date bands; `store` reads; `routes` is the API,
//! `pages` the page with its `svg` charts and the Excel export.

pub mod pages;
pub mod routes;
pub mod rules;
pub mod store;
pub mod svg;

use serde::Serialize;
use utoipa::ToSchema;

pub use routes::router;

/// One count of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Count {
    /// The stored code (`male`, `full`, an education code, an age band `31-35`, a join band)
    pub key: String,
    /// The Chinese label
    pub label: String,
    pub n: i64,
}

/// The counts of one dimension.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Breakdown {
    /// category | sex | ethnicity | education | age | job | joined
    pub dim: String,
    /// 人员类别, 性别, …
    pub title: String,
    pub counts: Vec<Count>,
}

/// One direct child organisation (or 本级, the members kept directly in the selected one) with
/// its subtree's totals.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChildRow {
    /// The organisation to drill into (absent for 本级)
    pub org_id: Option<String>,
    pub org_name: String,
    pub total: i64,
    /// 正式党员
    pub full: i64,
    /// 预备党员
    pub probationary: i64,
    pub male: i64,
    pub female: i64,
}

/// `GET /stats/members`: 党员统计 of an organisation's subtree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberStats {
    pub org_id: String,
    pub org_name: String,
    /// The day ages are counted on (YYYY-MM-DD, UTC+8)
    pub as_of: String,
    pub total: i64,
    pub breakdowns: Vec<Breakdown>,
    /// One row per direct child organisation (and 本级 when members are kept in the selected
    /// organisation itself), subtree totals.
    pub children: Vec<ChildRow>,
}

/// One organisation's line of 注册统计.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistrationRow {
    pub org_id: Option<String>,
    pub org_name: String,
    /// 党员数
    pub members: i64,
    /// 已注册（个人账号已激活）的党员数
    pub registered: i64,
}

/// One group of 注册统计's split (a person category, or a job group 在职 / 学生 / 离退休).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistrationSplit {
    /// `full` | `probationary`; `working` | `student` | `retired`
    pub key: String,
    pub label: String,
    pub members: i64,
    pub registered: i64,
}

/// An unregistered living member (drill-down of 注册统计).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnregisteredMember {
    pub id: String,
    pub name: String,
    /// masked
    pub id_number: String,
    pub branch_name: String,
    pub category: String,
    /// 在职 | 学生 | 离退休
    pub job_group: String,
}

/// `GET /stats/registration`: members with an activated personal account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegistrationStats {
    pub org_id: String,
    pub org_name: String,
    pub members: i64,
    pub registered: i64,
    pub children: Vec<RegistrationRow>,
    /// By person category 人员类别 (正式党员 / 预备党员)
    pub by_category: Vec<RegistrationSplit>,
    /// By job as seed 000's registration table counts it: 在职 / 学生 / 离退休
    pub by_job: Vec<RegistrationSplit>,
    /// When counted (RFC 3339): on every request
    pub counted_at: String,
}

/// `GET /stats/changes`: 党员增减 of a year from the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeStats {
    pub org_id: String,
    pub org_name: String,
    pub year: i32,
    /// Additions 增加 by kind (发展, 转入, 恢复党籍 …)
    pub additions: Vec<Count>,
    /// Decreases 减少 by kind (出党, 停止党籍, 去世, 其他, 转出 …)
    pub decreases: Vec<Count>,
    pub added: i64,
    pub decreased: i64,
    /// Losses of the year cancelled by a later recovery 找回 (not counted above)
    pub recovered: i64,
    /// Entries deleted as mistaken 党员补删 (their additions are not counted above)
    pub corrected: i64,
}
