//! Member import API: the template, the upload (validated in the background), the import with
//! its report, confirmation and cancellation.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{store, ImportView};
use crate::access::{self, Actor, Reach};
use crate::attachment::routes::read_fields;
use crate::audit::routes::{ExportFile, XLSX_TYPE};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(template))
        .routes(routes!(upload))
        .routes(routes!(get_import))
        .routes(routes!(confirm_import))
        .routes(routes!(cancel_import))
        .layer(DefaultBodyLimit::max(super::MAX_UPLOAD_BYTES))
}

/// `POST /api/v1/import/members` (multipart/form-data).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// The filled template (.xlsx)
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The organisation imported into: each row's 党组织代码 must name a branch below it
    org_id: String,
}

/// The template 党员信息汇总表模板.
pub async fn template_file(actor: &Actor) -> ApiResult<ExportFile> {
    access::business_read(actor)?;
    let bytes = tokio::task::spawn_blocking(super::template)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(ExportFile {
        bytes,
        content_type: XLSX_TYPE,
        file_name: "member-summary-template.xlsx".to_string(),
    })
}

/// `GET /import/members/template.xlsx`: the summary-sheet template (heading row, 填写说明,
/// drop-down lists for the coded columns).
#[utoipa::path(get, path = "/api/v1/import/members/template.xlsx",
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn template(actor: Actor) -> ApiResult<ExportFile> {
    template_file(&actor).await
}

/// Starts an import from an upload's fields (`file`, `org_id`): records it and validates it
/// in the background. Returns the import's id.
pub async fn start_upload(
    state: &AppState,
    actor: &Actor,
    fields: &mut crate::attachment::routes::Fields,
) -> ApiResult<String> {
    access::business_read(actor)?;
    let org_id = fields
        .get("org_id")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::field("org_id", "请选择导入的党组织"))?
        .to_string();
    let org = crate::org::store::get(state.db.read(), &org_id)
        .await?
        .ok_or_else(|| ApiError::field("org_id", "党组织不存在"))?;
    let allowed = access::org(actor, &org.code, Reach::Subtree)?;
    let Some((file_name, bytes)) = fields.file.take().filter(|(_, b)| !b.is_empty()) else {
        return Err(ApiError::field("file", "请选择要上传的汇总表文件（.xlsx）"));
    };
    if !bytes.starts_with(b"PK") {
        return Err(ApiError::field(
            "file",
            "文件格式不正确：请上传由模板填写的 Excel 工作簿（.xlsx）",
        ));
    }
    let file_name: String = file_name.chars().take(200).collect();
    let id = store::start(&state.db, actor, &org, &file_name, &allowed).await?;
    let db = state.db.clone();
    let (job_id, code) = (id.clone(), org.code.clone());
    // Progress also goes to the jobs registry (`GET /api/v1/jobs/{id}` for the uploader).
    let job = crate::jobs::start(
        &state.db,
        &allowed,
        "member_import",
        actor,
        file_name.clone(),
    )
    .await?;
    tokio::spawn(async move {
        let last = std::sync::atomic::AtomicU64::new(0);
        let progress = |done: u64, total: u64| {
            job.set_total(total);
            let before = last.swap(done, std::sync::atomic::Ordering::SeqCst);
            job.advance(done.saturating_sub(before));
        };
        match store::validate(&db, &job_id, &code, bytes, &progress).await {
            Ok(()) => job.finish(serde_json::json!({ "import_id": job_id })).await,
            Err(e) => {
                tracing::info!(import = %job_id, "member import not validated: {}", e.message);
                job.fail(e.message).await;
            }
        }
    });
    Ok(id)
}

/// `POST /import/members`: uploads a filled summary sheet. The import is recorded and
/// validated in the background (202); follow it with `GET /import/members/{id}`. Nothing is
/// written to members before confirmation.
#[utoipa::path(post, path = "/api/v1/import/members",
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 202, body = ImportView), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody),
              (status = 415, body = crate::error::ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<ImportView>)> {
    access::business_read(&actor)?;
    let mut fields = read_fields(multipart).await?;
    let id = start_upload(&state, &actor, &mut fields).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(store::view(&state.db, &actor, &id).await?),
    ))
}

/// `GET /import/members/{id}`: the import, its progress and its report (every problem of
/// every bad row: 行号, 字段, 原因).
#[utoipa::path(get, path = "/api/v1/import/members/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ImportView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_import(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportView>> {
    Ok(Json(store::view(&state.db, &actor, &id).await?))
}

/// What a confirmation wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmResult {
    /// Members written
    pub written: i64,
    pub import: ImportView,
}

/// `POST /import/members/{id}/confirm` 确认导入: writes every good row in one transaction
/// (all or nothing). A second confirmation is refused (409) and has no effect; rows that
/// became duplicates since validation refuse the whole confirmation (409, rows named).
#[utoipa::path(post, path = "/api/v1/import/members/{id}/confirm", params(("id" = String, Path)),
    responses((status = 200, body = ConfirmResult), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn confirm_import(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ConfirmResult>> {
    let written = store::confirm(&state.db, &actor, &id).await?;
    Ok(Json(ConfirmResult {
        written,
        import: store::view(&state.db, &actor, &id).await?,
    }))
}

/// `POST /import/members/{id}/cancel` 取消: drops a pending import's kept rows.
#[utoipa::path(post, path = "/api/v1/import/members/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = ImportView), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn cancel_import(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<ImportView>> {
    store::cancel(&state.db, &actor, &id).await?;
    Ok(Json(store::view(&state.db, &actor, &id).await?))
}
