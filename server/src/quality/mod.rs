//! Data quality control 信息质量管控 (SPEC §7): the rules (`rules`, pure), the special-period
//! minimum-age table, the check of one member, batch checks over a subtree run as background
//! jobs, and their results — per member, the quality report per organisation and the special
//! investigation table 集中排查专项统计.

pub mod pages;
pub mod routes;
pub mod rules;
pub mod store;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The level of a finding (the seeds' three).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 错误: the data breaks the collection rules and must be fixed.
    Error,
    /// 警告: should not normally occur; verify.
    Warning,
    /// 提醒: acceptable but possibly wrong.
    Reminder,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Reminder, Level::Warning, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Reminder => "reminder",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "错误",
            Level::Warning => "警告",
            Level::Reminder => "提醒",
        }
    }
}

/// One rule of SPEC §7's table, in the order of the seeds' 集中排查专项统计 columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// 入党日期
    JoinDateMissing,
    /// 失联党员入党日期
    LostContactJoinDateMissing,
    /// 党员出生日期（不含失联党员）
    BirthDateMissing,
    /// 转正日期
    FullDate,
    /// 民族
    EthnicityMissing,
    /// 学历
    EducationMissing,
    /// 家庭住址
    AddressMissing,
    /// 联系电话
    PhoneMissing,
    /// 先入组织
    FullBeforeJoin,
    /// 小于18岁入党
    #[serde(rename = "joined_under_18")]
    JoinedUnder18,
    /// 1921年7月1日前入党
    #[serde(rename = "joined_before_1921")]
    JoinedBefore1921,
    /// 年龄不符合规定（不含预备党员）
    AgeOutOfRange,
    /// 特殊时期特殊生日不符合当时规定
    SpecialPeriodAge,
    /// 出生日期与身份证号码不符
    BirthDateVsId,
    /// 性别与身份证不符
    SexVsId,
    /// 身份证不符合规定
    IdNumberInvalid,
    /// 党内身份证重复
    IdNumberDuplicate,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::JoinDateMissing,
        Rule::LostContactJoinDateMissing,
        Rule::BirthDateMissing,
        Rule::FullDate,
        Rule::EthnicityMissing,
        Rule::EducationMissing,
        Rule::AddressMissing,
        Rule::PhoneMissing,
        Rule::FullBeforeJoin,
        Rule::JoinedUnder18,
        Rule::JoinedBefore1921,
        Rule::AgeOutOfRange,
        Rule::SpecialPeriodAge,
        Rule::BirthDateVsId,
        Rule::SexVsId,
        Rule::IdNumberInvalid,
        Rule::IdNumberDuplicate,
    ];

    /// The stable id (API, stored findings, links).
    pub fn id(self) -> &'static str {
        match self {
            Rule::JoinDateMissing => "join_date_missing",
            Rule::LostContactJoinDateMissing => "lost_contact_join_date_missing",
            Rule::BirthDateMissing => "birth_date_missing",
            Rule::FullDate => "full_date",
            Rule::EthnicityMissing => "ethnicity_missing",
            Rule::EducationMissing => "education_missing",
            Rule::AddressMissing => "address_missing",
            Rule::PhoneMissing => "phone_missing",
            Rule::FullBeforeJoin => "full_before_join",
            Rule::JoinedUnder18 => "joined_under_18",
            Rule::JoinedBefore1921 => "joined_before_1921",
            Rule::AgeOutOfRange => "age_out_of_range",
            Rule::SpecialPeriodAge => "special_period_age",
            Rule::BirthDateVsId => "birth_date_vs_id",
            Rule::SexVsId => "sex_vs_id",
            Rule::IdNumberInvalid => "id_number_invalid",
            Rule::IdNumberDuplicate => "id_number_duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == s)
    }

    /// The seeds' column name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::JoinDateMissing => "入党日期",
            Rule::LostContactJoinDateMissing => "失联党员入党日期",
            Rule::BirthDateMissing => "党员出生日期（不含失联党员）",
            Rule::FullDate => "转正日期",
            Rule::EthnicityMissing => "民族",
            Rule::EducationMissing => "学历",
            Rule::AddressMissing => "家庭住址",
            Rule::PhoneMissing => "联系电话",
            Rule::FullBeforeJoin => "先入组织",
            Rule::JoinedUnder18 => "小于18岁入党",
            Rule::JoinedBefore1921 => "1921年7月1日前入党",
            Rule::AgeOutOfRange => "年龄不符合规定（不含预备党员）",
            Rule::SpecialPeriodAge => "特殊时期特殊生日不符合当时规定",
            Rule::BirthDateVsId => "出生日期与身份证号码不符",
            Rule::SexVsId => "性别与身份证不符",
            Rule::IdNumberInvalid => "身份证不符合规定",
            Rule::IdNumberDuplicate => "党内身份证重复",
        }
    }

    pub fn level(self) -> Level {
        match self {
            Rule::LostContactJoinDateMissing
            | Rule::JoinedUnder18
            | Rule::AgeOutOfRange
            | Rule::SpecialPeriodAge
            | Rule::IdNumberInvalid => Level::Warning,
            _ => Level::Error,
        }
    }

    /// 重要信息项缺项 (the first eight) or 异常情况 (the rest), as the seeds group the columns.
    pub fn is_missing_item(self) -> bool {
        matches!(
            self,
            Rule::JoinDateMissing
                | Rule::LostContactJoinDateMissing
                | Rule::BirthDateMissing
                | Rule::FullDate
                | Rule::EthnicityMissing
                | Rule::EducationMissing
                | Rule::AddressMissing
                | Rule::PhoneMissing
        )
    }
}

/// A period of join dates and the minimum joining age in force then (特殊时期特殊生日).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgePeriod {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub min_age: i32,
}

/// The shipped table: only joins after 1945-06-11 below 18 are flagged (默认值，待组织部门确认).
pub fn default_periods() -> Vec<AgePeriod> {
    vec![AgePeriod {
        from: NaiveDate::from_ymd_opt(1945, 6, 12).expect("valid date"),
        to: NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date"),
        min_age: 18,
    }]
}

/// A rule as the API describes it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub id: Rule,
    /// The seeds' name
    pub name: String,
    pub level: Level,
    /// 错误 | 警告 | 提醒
    pub level_label: String,
}

impl From<Rule> for RuleView {
    fn from(r: Rule) -> Self {
        RuleView {
            id: r,
            name: r.name().into(),
            level: r.level(),
            level_label: r.level().label().into(),
        }
    }
}

/// One finding as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingView {
    pub rule: Rule,
    pub rule_name: String,
    pub level: Level,
    pub level_label: String,
    /// What is wrong for this member, in Chinese
    pub explanation: String,
}

impl FindingView {
    pub fn new(rule: Rule, explanation: String) -> Self {
        FindingView {
            rule,
            rule_name: rule.name().into(),
            level: rule.level(),
            level_label: rule.level().label().into(),
            explanation,
        }
    }
}
