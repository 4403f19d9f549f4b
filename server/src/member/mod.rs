//! Party members 党员 (SPEC §4): field rules, completeness, storage and routes.

pub mod bulk;
pub mod dict;
pub use dangjian_codes::idcard;
pub mod routes;
pub mod rules;
pub mod sort_keys;

use serde::Serialize;
use utoipa::ToSchema;

/// One member as stored; `id_number`, `phone` and `registered_phone` are sealed in the database
/// (see `crypto`) and open once [`MemberRow::decrypted`] has run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub id_number: String,
    pub sex: String,
    pub ethnicity: String,
    pub birth_date: String,
    pub education: String,
    pub category: String,
    pub branch_id: String,
    pub org_code: String,
    pub joined_on: String,
    pub full_on: Option<String>,
    pub job: String,
    pub phone: String,
    pub address: String,
    pub status: String,
    pub lost_contact: i64,
    pub lost_contact_on: Option<String>,
    pub floating: i64,
    pub floating_to: Option<String>,
    pub registered_phone: Option<String>,
    pub origin: String,
    pub title: String,
    pub new_social_stratum: String,
    pub in_transfer: i64,
    pub completeness: i64,
    pub created_at: String,
    pub updated_at: String,
}

pub const MEMBER_COLUMNS: &str = "m.id, m.name, m.id_number, m.sex, m.ethnicity, m.birth_date, m.education, \
    m.category, m.branch_id, m.org_code, m.joined_on, m.full_on, m.job, m.phone, m.address, m.status, \
    m.lost_contact, m.lost_contact_on, m.floating, m.floating_to, m.registered_phone, m.origin, m.title, \
    m.new_social_stratum, m.in_transfer, m.completeness, m.created_at, m.updated_at";

/// A member as the API shows it; `id_number` and phones are masked unless unmasked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    /// 公民身份证号 (masked: first 6 and last 4 characters)
    pub id_number: String,
    /// male | female
    pub sex: String,
    /// GB/T 3304 code
    pub ethnicity: String,
    pub ethnicity_name: String,
    /// 出生日期: only in the unmasked view. Digits 7-14 of the ID number are the birth date,
    /// so beside a masked number it would rebuild the number without an audit record.
    pub birth_date: Option<String>,
    /// 年龄 (whole years today): shown instead of the birth date in lists and masked views
    pub age: Option<i32>,
    /// GB/T 4658 code
    pub education: String,
    pub education_name: String,
    /// full | probationary
    pub category: String,
    pub branch_id: String,
    pub branch_name: String,
    pub joined_on: String,
    pub full_on: Option<String>,
    /// worker | farmer | student | retired | other
    pub job: String,
    pub phone: String,
    pub address: String,
    pub status: String,
    pub lost_contact: bool,
    pub lost_contact_on: Option<String>,
    pub floating: bool,
    pub floating_to: Option<String>,
    pub registered_phone: Option<String>,
    pub origin: String,
    pub title: String,
    pub new_social_stratum: String,
    /// 信息完整度 0-100
    pub completeness: i64,
    pub in_transfer: bool,
    /// 数据提示: contradictions kept on the record after confirmation (性别与身份证号不一致,
    /// 出生日期与身份证号不一致, 身份证号不明确)
    pub flags: Vec<String>,
    pub masked: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// Masks a phone number: first 3 and last 4 digits.
pub fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 7));
    out.extend(&chars[chars.len() - 4..]);
    out
}

impl MemberRow {
    /// The row as read from the database, with its encrypted columns (ID number, phones)
    /// opened. Every read of `MEMBER_COLUMNS` goes through here.
    pub fn decrypted(mut self) -> Result<MemberRow, crate::crypto::Error> {
        use crate::crypto::{open, open_opt, Column};
        self.id_number = open(Column::MembersIdNumber, &self.id_number)?;
        self.phone = open(Column::MembersPhone, &self.phone)?;
        self.registered_phone = open_opt(
            Column::MembersRegisteredPhone,
            self.registered_phone.as_deref(),
        )?;
        Ok(self)
    }

    pub fn view(self, branch_name: String, unmask: bool) -> MemberView {
        let age = chrono::NaiveDate::parse_from_str(&self.birth_date, "%Y-%m-%d")
            .ok()
            .map(|b| crate::fields::years_between(b, crate::db::today()));
        let birth_date = unmask.then(|| self.birth_date.clone());
        let flags = rules::record_contradictions(&self, crate::db::today())
            .into_iter()
            .map(|c| c.tag.to_string())
            .collect();
        let (id_number, phone, registered_phone) = if unmask {
            (self.id_number, self.phone, self.registered_phone)
        } else {
            (
                idcard::mask(&self.id_number),
                mask_phone(&self.phone),
                self.registered_phone.as_deref().map(mask_phone),
            )
        };
        MemberView {
            ethnicity_name: dict::label(&dict::ETHNICITIES, &self.ethnicity)
                .unwrap_or("")
                .to_string(),
            education_name: dict::label(&dict::EDUCATIONS, &self.education)
                .unwrap_or("")
                .to_string(),
            id: self.id,
            name: self.name,
            id_number,
            sex: self.sex,
            ethnicity: self.ethnicity,
            birth_date,
            age,
            education: self.education,
            category: self.category,
            branch_id: self.branch_id,
            branch_name,
            joined_on: self.joined_on,
            full_on: self.full_on,
            job: self.job,
            phone,
            address: self.address,
            status: self.status,
            lost_contact: self.lost_contact != 0,
            lost_contact_on: self.lost_contact_on,
            floating: self.floating != 0,
            floating_to: self.floating_to,
            registered_phone,
            origin: self.origin,
            title: self.title,
            new_social_stratum: self.new_social_stratum,
            completeness: self.completeness,
            in_transfer: self.in_transfer != 0,
            flags,
            masked: !unmask,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
