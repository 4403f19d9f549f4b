//! The pages of quality control.

use crate::web::PageRouter;

pub fn pages() -> PageRouter {
    PageRouter::new()
}
