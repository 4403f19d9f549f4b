//! Audit routes 安全审计, auditors only: search, chain verification, export (itself audited).
//! No route changes or deletes a record.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::query::{self, AuditItem, AuditQuery, ExportQuery, EXPORT_CAP};
use super::{Event, VerifyReport, Who};
use crate::access::Actor;
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiQuery, AppState, Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(export_audit))
}

/// `GET /audit`: records matching the filters, newest first (auditors only).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditItem>), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn search_audit(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Page<AuditItem>> {
    crate::state::Paging::check(q.page, q.per_page)?;
    query::search(&state.db, &actor, &q).await
}

/// `GET /audit/verify`: walks the hash chain from the newest anchor (auditors only).
#[utoipa::path(get, path = "/api/v1/audit/verify",
    responses((status = 200, body = VerifyReport), (status = 403, body = crate::error::ErrorBody)))]
async fn verify_audit(
    State(state): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<VerifyReport>> {
    verify(&state.db, &actor).await.map(Json)
}

/// Verifies the chain for an auditor (the chain is one, whatever the auditor's scope: the
/// answer names no record's content).
pub async fn verify(db: &Db, actor: &Actor) -> ApiResult<VerifyReport> {
    query::scope_of(db, actor).await?;
    Ok(super::verify_report(db).await?)
}

/// An export file.
pub struct ExportFile {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub file_name: String,
}

impl IntoResponse for ExportFile {
    fn into_response(self) -> Response {
        let mut res = self.bytes.into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", self.file_name))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        res
    }
}

pub const CSV_TYPE: &str = "text/csv; charset=utf-8";
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// `GET /audit/export?format=csv|xlsx`: the matching records (newest first, at most 100,000)
/// as a file whose first line is the watermark 导出人/导出时间 (auditors only; audited).
#[utoipa::path(get, path = "/api/v1/audit/export", params(ExportQuery),
    responses((status = 200, description = "CSV (UTF-8 with BOM) or Excel workbook",
               content((String = "text/csv"),
                       (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
              (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
async fn export_audit(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<ExportFile> {
    export(&state.db, &actor, &q).await
}

/// Builds an export for an auditor and records it in the audit log (`audit.export`) before
/// handing it out.
pub async fn export(db: &Db, actor: &Actor, q: &ExportQuery) -> ApiResult<ExportFile> {
    let scope = query::scope_of(db, actor).await?;
    let format = q
        .format
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .unwrap_or("csv")
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "csv" | "xlsx") {
        return Err(ApiError::field(
            "format",
            "导出格式只能是 csv 或 xlsx（Excel）",
        ));
    }
    let filter = q.filter();
    let (items, total) = query::find(db, &filter, &scope, EXPORT_CAP, 0).await?;
    let now = chrono::Utc::now();
    let mark = query::watermark(actor, now);
    let detail = format!(
        "{} records of {total}{}{}",
        items.len().min(EXPORT_CAP as usize),
        if filter.is_empty() { "" } else { "; " },
        filter.describe()
    );
    let stamp = (now + chrono::Duration::hours(8)).format("%Y%m%d-%H%M%S");
    let xlsx = format == "xlsx";
    // Building up to 100,000 rows is CPU work: off the async workers.
    let bytes = tokio::task::spawn_blocking(move || {
        if xlsx {
            query::to_xlsx(&mark, &items, total).map_err(ApiError::internal)
        } else {
            Ok(query::to_csv(&mark, &items, total))
        }
    })
    .await
    .map_err(ApiError::internal)??;
    let file = ExportFile {
        bytes,
        content_type: if xlsx { XLSX_TYPE } else { CSV_TYPE },
        file_name: format!("audit-{stamp}.{format}"),
    };
    super::append_alone(
        db,
        &Who::from(actor),
        Event::ok("audit.export", &format).with_detail(detail),
    )
    .await?;
    Ok(file)
}
