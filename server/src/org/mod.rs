//! Organisations 党组织 (SPEC §2): the tree, its rules, storage and routes.

pub mod routes;
pub mod rules;
pub mod store;

use serde::Serialize;
use utoipa::ToSchema;

/// One organisation as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub code: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub short_name: String,
    pub category: String,
    pub level: Option<String>,
    pub secretary: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub subordination: String,
    pub founded_on: Option<String>,
    pub unit_mode: Option<String>,
    pub work_category: Option<String>,
    pub may_approve_development: i64,
    pub status: String,
    pub revoked_document_no: Option<String>,
    pub revoked_reason: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl OrgRow {
    /// The row with its contact phone decrypted (it is personal information: often the contact
    /// person's own mobile).
    pub fn decrypted(mut self) -> Result<OrgRow, sqlx::Error> {
        self.contact_phone =
            crate::crypto::open(crate::crypto::Column::OrgsContactPhone, &self.contact_phone)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(self)
    }

    pub fn category(&self) -> Option<rules::Category> {
        rules::Category::parse(&self.category)
    }
    pub fn level(&self) -> Option<rules::Level> {
        self.level.as_deref().and_then(rules::Level::parse)
    }
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
    /// Has a legal-entity unit of its own or through its parent (`same_as_parent`).
    pub fn has_legal_entity_unit(&self) -> bool {
        matches!(
            self.unit_mode.as_deref(),
            Some("legal_entity") | Some("same_as_parent")
        )
    }
}

/// A unit linked to an organisation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkedUnit {
    pub id: String,
    pub name: String,
    pub credit_code: String,
    pub category: String,
    pub is_default: bool,
}

/// An organisation as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    /// 党组织统一编码
    pub code: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub short_name: String,
    pub category: String,
    pub category_name: String,
    pub level: Option<String>,
    pub secretary: String,
    pub contact_name: String,
    /// 联系电话 (masked unless `masked` is false)
    pub contact_phone: String,
    pub subordination: String,
    pub founded_on: Option<String>,
    pub unit_mode: Option<String>,
    /// 党组织工作分类: the unit category of the main unit
    pub work_category: Option<String>,
    pub may_approve_development: bool,
    /// `active` or `revoked`
    pub status: String,
    pub revoked_document_no: Option<String>,
    pub revoked_reason: Option<String>,
    pub revoked_at: Option<String>,
    /// members in this organisation and everything below it
    pub member_count: i64,
    /// 信息完整度: the members' average completeness in this subtree (0-100), none without
    /// members
    pub completeness: Option<i64>,
    /// direct child organisations
    pub child_count: i64,
    pub units: Vec<LinkedUnit>,
    /// `contact_phone` is masked (first 3 and last 4 digits); `?unmask=1` shows it whole,
    /// audited
    pub masked: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// A node of the tree (children lists).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrgNode {
    pub id: String,
    pub code: String,
    pub name: String,
    pub short_name: String,
    pub category: String,
    pub status: String,
    pub member_count: i64,
    pub child_count: i64,
    /// 信息完整度: the members' average completeness in this subtree (0-100), none without
    /// members
    #[sqlx(skip)]
    pub completeness: Option<i64>,
    #[serde(skip)]
    #[schema(ignore)]
    pub completeness_sum: i64,
}

/// The average completeness of `count` members whose completeness adds up to `sum`.
pub fn average_completeness(sum: i64, count: i64) -> Option<i64> {
    (count > 0).then(|| (sum as f64 / count as f64).round() as i64)
}

impl OrgRow {
    /// The short name when there is one (tree, breadcrumbs), else the full name.
    pub fn short_name_or_name(&self) -> String {
        if self.short_name.trim().is_empty() {
            self.name.clone()
        } else {
            self.short_name.clone()
        }
    }
}
