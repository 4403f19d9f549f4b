//! TEMPORARY stand-in for the letter area (replaced by the letter helper's branch at merge).
pub mod pages;
pub mod pdf;
pub mod store;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct LetterFields {
    pub addressee: String,
    pub name: String,
    pub sex: String,
    pub age: u32,
    pub ethnicity: String,
    pub category: String,
    pub id_number: String,
    pub from_org: String,
    pub to_org: String,
    pub dues_paid_to: String,
    pub member_phone: String,
    pub committee_address: String,
    pub committee_phone: String,
    pub committee_fax: String,
    pub committee_postcode: String,
}
