//! Comprehensive query 综合查询 (SPEC §7): conditions on any field of members, organisations
//! or units, each with a mode (模糊 / 精准 / 左匹配 / 右匹配 / 多选 / 时间区间), always inside the
//! actor's subtree; pages of rows, sorting by any shown column, the Excel export, and saved
//! named queries 固定查询 per account. One engine serves the three kinds: each kind is a field
//! whitelist (`rules`), and no column name ever comes from the request.
//!
//! Encrypted fields keep working in every mode: exact through the blind index, 左匹配 on the
//! ID number through the clear derived columns `id_region` / `id_birth`, 右匹配 on exactly the
//! last four characters through `id_suffix_idx`; anything else on a sealed value opens the
//! candidates of the queried subtree only (after every clear condition), in Rust.

pub mod pages;
pub mod routes;
pub mod rules;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a query lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 党员
    Members,
    /// 党组织
    Orgs,
    /// 单位
    Units,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Members, Kind::Orgs, Kind::Units];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Members => "members",
            Kind::Orgs => "orgs",
            Kind::Units => "units",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Members => "党员",
            Kind::Orgs => "党组织",
            Kind::Units => "单位",
        }
    }
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// 模糊: contains
    Fuzzy,
    /// 精准: equals
    Exact,
    /// 左匹配: starts with
    Left,
    /// 右匹配: ends with
    Right,
    /// 多选: any of `values`
    Multi,
    /// 时间区间: between `from` and `to` (either may be empty)
    Range,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Fuzzy,
        Mode::Exact,
        Mode::Left,
        Mode::Right,
        Mode::Multi,
        Mode::Range,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fuzzy => "fuzzy",
            Mode::Exact => "exact",
            Mode::Left => "left",
            Mode::Right => "right",
            Mode::Multi => "multi",
            Mode::Range => "range",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Fuzzy => "模糊",
            Mode::Exact => "精准",
            Mode::Left => "左匹配",
            Mode::Right => "右匹配",
            Mode::Multi => "多选",
            Mode::Range => "时间区间",
        }
    }
}

/// One condition 查询条件. A condition with empty content (no value, no values, neither
/// bound) is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    /// The field's key (`GET`-free: the page lists them; e.g. name, id_number, sex)
    pub field: String,
    /// fuzzy | exact | left | right | multi | range
    pub mode: String,
    /// The text of fuzzy, exact, left and right
    #[serde(default)]
    pub value: Option<String>,
    /// The choices of multi
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Lower bound of range (YYYY-MM-DD, or a number for numeric fields; inclusive)
    #[serde(default)]
    pub from: Option<String>,
    /// Upper bound of range (inclusive)
    #[serde(default)]
    pub to: Option<String>,
}

/// The order of the rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SortSpec {
    /// A shown column's key
    pub field: String,
    /// asc (default) | desc
    #[serde(default)]
    pub dir: Option<String>,
}

/// `POST /query/{kind}` and its export.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct QueryBody {
    /// The selected organisation (default: the caller's scope organisation)
    #[serde(default)]
    pub org_id: Option<String>,
    /// 包含下级: the whole subtree (default true); otherwise the organisation only (for
    /// organisations: it and its direct children)
    #[serde(default)]
    pub include_sub: Option<bool>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub sort: Option<SortSpec>,
    /// Page number from 1 (default 1)
    #[serde(default)]
    pub page: Option<i64>,
    /// 每页显示: 10, 20 (default), 50 or 100
    #[serde(default)]
    pub page_size: Option<i64>,
}

/// A shown column.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ColumnView {
    pub key: String,
    pub label: String,
    pub sortable: bool,
}

/// One row: its id, where its name links to, and the shown columns as text (ID numbers
/// masked).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Item {
    pub id: String,
    /// The record's page (`/members/{id}`, `/orgs/{id}`, `/units/{id}/edit`)
    pub href: String,
    pub cells: BTreeMap<String, String>,
}

/// One page of a query.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryPage {
    pub columns: Vec<ColumnView>,
    pub items: Vec<Item>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
}

impl axum::response::IntoResponse for QueryPage {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

/// A saved named query 固定查询.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SavedQuery {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub conditions: Vec<Condition>,
    pub sort: Option<SortSpec>,
    pub created_at: String,
}

/// `POST /query/saved`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SaveBody {
    /// members | orgs | units (required)
    #[serde(default)]
    pub kind: Option<Kind>,
    /// 1-50 characters (required)
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub sort: Option<SortSpec>,
}
