//! The transfer pages.

use crate::web::PageRouter;

pub fn router() -> PageRouter {
    PageRouter::new()
}
