//! Public verification of letters (no sign-in, no CSRF, no database write per request) and the
//! letter's stylesheet.
//!
//! - `GET /api/v1/letters/{number}/verify[?d=…]`: the status of the letter with that number.
//!   With `d` (the QR code's: the first 16 hex digits of SHA-256 of the signed text) the answer
//!   also carries the letter's fields as printed, the ID number masked; a `d` that does not
//!   match the stored letter answers `altered`. Without `d` only the status and dates are given,
//!   so that counting through the (sequential) numbers reveals no names. `Accept: text/html`
//!   (preferred over JSON) answers a small public Chinese page.
//! - `POST /api/v1/letters/verify` with a [`LetterDocument`]: the same answer; `altered` when
//!   the fields, signed text, signature or signer certificate differ from the stored letter.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, LetterDocument, LetterRow};
use super::{LetterFields, Status};
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiJson, ApiQuery, AppState};

/// The path of the letter's stylesheet (the CSP allows no inline style).
pub const STYLESHEET_PATH: &str = "/static/letter.css";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_number))
        .routes(routes!(verify_document))
        .route(STYLESHEET_PATH, axum::routing::get(stylesheet))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("letter.css"),
    )
        .into_response()
}

/// What the public verification answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verdict {
    /// the number asked about
    pub number: String,
    pub status: Status,
    /// the status in Chinese: 真实有效, 已过期, 已作废, 已重新开具, 已接收, 内容与存档不符, 查无此介绍信
    pub status_label: String,
    /// the letter's fields as printed (ID number and phone masked); only when the request
    /// proved it holds the letter (`d` of the QR code, or the whole document) and it matches
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<LetterFields>,
    /// YYYY-MM-DD
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    /// YYYY-MM-DD, the last valid day
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

impl Verdict {
    fn unknown(number: &str) -> Verdict {
        Verdict {
            number: number.to_string(),
            status: Status::Unknown,
            status_label: Status::Unknown.label().to_string(),
            fields: None,
            issue_date: None,
            valid_until: None,
        }
    }

    fn of(row: &LetterRow, status: Status, show_fields: bool) -> ApiResult<Verdict> {
        Ok(Verdict {
            number: row.number().to_string(),
            status,
            status_label: status.label().to_string(),
            fields: if show_fields {
                Some(row.fields()?.masked())
            } else {
                None
            },
            issue_date: Some(row.issue_date().to_string()),
            valid_until: Some(row.valid_until().to_string()),
        })
    }
}

/// An 18-digit letter number (anything else cannot be one: unknown, without a query).
fn plausible_number(number: &str) -> bool {
    number.len() == 18 && number.bytes().all(|b| b.is_ascii_digit())
}

/// The verdict on the letter `number` presented with the digest `d` (if any).
pub async fn verdict_for(state: &AppState, number: &str, d: Option<&str>) -> ApiResult<Verdict> {
    if !plausible_number(number) {
        return Ok(Verdict::unknown(number));
    }
    let Some(row) = store::by_number(state.db.read(), number).await? else {
        return Ok(Verdict::unknown(number));
    };
    match d.map(str::trim).filter(|d| !d.is_empty()) {
        None => Verdict::of(&row, row.status(crate::db::today()), false),
        Some(d) => {
            let canonical = row.canonical()?;
            if d.eq_ignore_ascii_case(&dangjian_certs::letter::digest_prefix(&canonical)) {
                Verdict::of(&row, row.status(crate::db::today()), true)
            } else {
                Verdict::of(&row, Status::Altered, false)
            }
        }
    }
}

/// The verdict on a whole document presented.
pub async fn verdict_for_document(state: &AppState, doc: &LetterDocument) -> ApiResult<Verdict> {
    if !plausible_number(&doc.number) {
        return Ok(Verdict::unknown(&doc.number));
    }
    let Some(row) = store::by_number(state.db.read(), &doc.number).await? else {
        return Ok(Verdict::unknown(&doc.number));
    };
    let stored = store::document(&row)?;
    let same = stored.issue_date == doc.issue_date
        && stored.valid_until == doc.valid_until
        && stored.validity_days == doc.validity_days
        && stored.fields == doc.fields
        && stored.canonical == doc.canonical
        && stored.signature.trim() == doc.signature.trim()
        && stored.signer_certificate.trim() == doc.signer_certificate.trim();
    if same {
        Verdict::of(&row, row.status(crate::db::today()), true)
    } else {
        Verdict::of(&row, Status::Altered, false)
    }
}

/// Does the request prefer an HTML page to JSON (`Accept` names text/html before, or
/// without, application/json)?
fn prefers_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match (accept.find("text/html"), accept.find("application/json")) {
        (Some(html), Some(json)) => html < json,
        (Some(_), None) => true,
        _ => false,
    }
}

fn answer(headers: &HeaderMap, verdict: Verdict) -> Response {
    if prefers_html(headers) {
        Html(super::pages::verify_page(&verdict).into_string()).into_response()
    } else {
        Json(verdict).into_response()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// the first 16 hex digits of SHA-256 of the letter's signed text (the QR code carries it)
    pub d: Option<String>,
}

/// Verifies a transfer letter 介绍信 by its number (public; the QR code on the letter links
/// here). With `d` the answer carries the fields as printed (ID number masked); a `d` that does
/// not match answers `altered`. `Accept: text/html` answers a Chinese page.
#[utoipa::path(get, path = "/api/v1/letters/{number}/verify", security(()),
    params(("number" = String, Path, description = "the letter number, 18 digits"), VerifyQuery),
    responses((status = 200, body = Verdict, description = "the verdict (JSON, or an HTML page for Accept: text/html)")))]
async fn verify_number(
    State(state): State<AppState>,
    Path(number): Path<String>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let verdict = verdict_for(&state, &number, q.d.as_deref()).await?;
    Ok(answer(&headers, verdict))
}

/// Verifies a downloaded letter document against the platform's record (public): `altered`
/// when any field, the signed text, the signature or the signer certificate differs.
#[utoipa::path(post, path = "/api/v1/letters/verify", security(()), request_body = LetterDocument,
    responses((status = 200, body = Verdict)))]
async fn verify_document(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(doc): ApiJson<LetterDocument>,
) -> ApiResult<Response> {
    // The document declares these as int32 (utoipa's u32): a larger value is refused like any
    // other schema-violating body.
    let max = i32::MAX as u32;
    if doc.validity_days > max {
        return Err(ApiError::field(
            "validity_days",
            "字段 validity_days 的取值或类型不正确",
        ));
    }
    if doc.fields.age > max {
        return Err(ApiError::field(
            "fields.age",
            "字段 fields.age 的取值或类型不正确",
        ));
    }
    let verdict = verdict_for_document(&state, &doc).await?;
    Ok(answer(&headers, verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_preference() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, v.parse().unwrap());
            m
        };
        assert!(prefers_html(&h(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!prefers_html(&h("application/json")));
        assert!(!prefers_html(&h("*/*")));
        assert!(!prefers_html(&HeaderMap::new()));
        assert!(plausible_number("202611000000000123"));
        assert!(!plausible_number("20261100000000012x"));
    }
}
