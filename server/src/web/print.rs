//! Printing: the print header every page carries (shown only on paper), and the print view of a
//! list (`?print=1`): every row up to [`PRINT_MAX`], no search form or pager, and app.js opens
//! the browser's print dialog. What a printout leaves out (controls, tree, toolbar, action
//! column) is `@media print` in app.css.

use std::future::Future;

use chrono::{Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use crate::access::Actor;
use crate::error::ApiError;
use crate::state::{Page, Paging};

/// Most rows a printed list holds; beyond it the printout says it was cut.
pub const PRINT_MAX: usize = 5000;

/// Rows fetched per query while collecting a printed list (the domain's page size limit).
const CHUNK: i64 = 200;

/// The `print` query parameter of a list page.
#[derive(Deserialize, Default)]
pub struct PrintQuery {
    pub print: Option<String>,
}

impl PrintQuery {
    pub fn on(&self) -> bool {
        is_on(self.print.as_deref())
    }
}

/// `?print=1` (or `true`).
pub fn is_on(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true"))
}

/// Every row of a paged listing up to [`PRINT_MAX`], fetched page by page through the same
/// domain operation (and so the same access checks) as the screen's page.
pub async fn all_rows<T, F, Fut>(mut fetch: F) -> Result<Page<T>, ApiError>
where
    F: FnMut(Paging) -> Fut,
    Fut: Future<Output = Result<Page<T>, ApiError>>,
{
    let mut items = Vec::new();
    let mut page = 1;
    loop {
        let p = fetch(Paging {
            page: Some(page),
            per_page: Some(CHUNK),
        })
        .await?;
        let total = p.total;
        let got = p.items.len();
        items.extend(p.items);
        if got == 0 || items.len() as i64 >= total || items.len() >= PRINT_MAX {
            items.truncate(PRINT_MAX);
            return Ok(Page {
                items,
                total,
                page: 1,
                per_page: PRINT_MAX as i64,
            });
        }
        page += 1;
    }
}

/// The 打印 button of a list page: opens the print view of the same list in a new tab, where
/// app.js opens the print dialog (`#autoprint`).
pub fn button(href: &str) -> Markup {
    html! {
        a.button.print-button href={(href) "#autoprint"} target="_blank" rel="noopener" title="打印本列表的全部记录（不只是当前页）" { "打印" }
    }
}

/// The heading and row count of a printed list.
pub fn list_head(title: &str, shown: usize, total: i64) -> Markup {
    html! {
        div #print-list {
            h3.print-title { (title) }
            @if (shown as i64) < total {
                p.print-note.alert.alert-warn role="note" {
                    "共 " (total) " 条，超过打印上限，仅列出前 " (shown) " 条；请缩小查询范围后分批打印。"
                }
            } @else {
                p.print-note { "共 " (total) " 条" }
            }
            p.print-screen-note.muted {
                "这是打印视图，包含全部记录。若打印对话框没有自动打开，请按 Ctrl+P。"
            }
        }
    }
}

/// The header a printout starts with: the page title, the organisation, when and by whom.
pub fn header(actor: &Actor, title: &str, org_name: &str) -> Markup {
    let now = (Utc::now() + Duration::hours(8))
        .format("%Y-%m-%d %H:%M")
        .to_string();
    html! {
        div.print-header aria-hidden="true" {
            div.print-header-title { (title) }
            div.print-header-meta {
                span { "党组织：" (org_name) }
                span { "打印时间：" span #print-time { (now) } }
                span { "打印人：" (actor.name) }
            }
        }
    }
}
