//! The pages of the comprehensive query: `/query/members`, `/query/orgs`, `/query/units`.

pub fn router() -> crate::web::PageRouter {
    crate::web::PageRouter::new()
}
