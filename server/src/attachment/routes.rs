//! Attachment and member-photo routes. Uploads are `multipart/form-data` (field `file`); a
//! cookie-authenticated upload carries `X-CSRF-Token` like every other write (the `Actor`
//! extractor checks it), the page form its `csrf` field (`web::members`). Upload routes accept
//! bodies up to [`super::MAX_UPLOAD_BODY_BYTES`]; the checks of [`super::accept`] then apply.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::store::{self, AttachmentRow};
use super::{accept, Accepted, Kind};
use crate::access::{self, Actor, Reach};
use crate::audit::{self, Event, Who};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(download))
        .routes(routes!(put_photo, get_photo, delete_photo))
        .layer(DefaultBodyLimit::max(super::MAX_UPLOAD_BODY_BYTES))
}

/// `POST /api/v1/attachments` (multipart/form-data).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file: pdf, jpg or png for documents (at most 5 MB); jpg, png or gif for photos (at
    /// most 2 MB, scaled to fit 120×168). The type is told from the content, never the name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// document | photo (default document)
    kind: Option<Kind>,
    /// The organisation whose subtree may see the file (or `member_id`)
    org_id: Option<String>,
    /// The member whose organisation's subtree may see the file (or `org_id`)
    member_id: Option<String>,
}

/// `PUT /api/v1/members/{id}/photo` (multipart/form-data).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PhotoForm {
    /// jpg, png or gif, at most 2 MB; larger than 120×168 is scaled down
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A stored attachment.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: String,
    /// document | photo
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    /// Bytes as stored (a scaled photo's size after scaling)
    pub size: i64,
    /// Width and height of an image as stored
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl AttachmentView {
    fn of(row: &AttachmentRow, accepted: &Accepted) -> AttachmentView {
        AttachmentView {
            id: row.id.clone(),
            kind: row.kind.clone(),
            file_name: row.file_name.clone(),
            content_type: row.content_type.clone(),
            size: row.size,
            width: accepted.dimensions.map(|d| d.0),
            height: accepted.dimensions.map(|d| d.1),
        }
    }
}

/// The fields of an upload form, read whole.
#[derive(Debug, Default)]
pub struct Fields {
    pub file: Option<(String, Vec<u8>)>,
    pub text: Vec<(String, String)>,
}

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        super::body_too_large()
    } else {
        ApiError::bad_request("上传内容无法读取（multipart/form-data 格式不正确）")
    }
}

/// 415 for a body that is not `multipart/form-data`.
pub fn not_multipart() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "请求内容类型不正确：上传文件应为 multipart/form-data",
    )
}

/// Reads every field: the one named `file` with its file name and bytes, the others as text
/// (at most 4 KB each).
pub async fn read_fields(multipart: Result<Multipart, MultipartRejection>) -> ApiResult<Fields> {
    let mut multipart = multipart.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            super::body_too_large()
        } else {
            not_multipart()
        }
    })?;
    let mut fields = Fields::default();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            let file_name = field.file_name().unwrap_or("").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            fields.file = Some((file_name, bytes.to_vec()));
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            if text.len() > 4096 {
                return Err(ApiError::field(&name, "字段内容过长"));
            }
            fields.text.push((name, text));
        }
    }
    Ok(fields)
}

/// Runs [`accept`] on the blocking pool (decoding and scaling images is CPU work).
pub async fn accept_file(kind: Kind, fields: &mut Fields) -> ApiResult<Accepted> {
    let Some((name, bytes)) = fields.file.take() else {
        return Err(ApiError::field("file", "请选择要上传的文件"));
    };
    tokio::task::spawn_blocking(move || accept(kind, &name, &bytes))
        .await
        .map_err(ApiError::internal)?
}

/// `POST /attachments`: upload a document or photo for an organisation's (or a member's)
/// subtree.
#[utoipa::path(post, path = "/api/v1/attachments",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentView),
              (status = 413, description = "文件过大（附件 5 MB、照片 2 MB）", body = crate::error::ErrorBody),
              (status = 415, description = "请求内容须为 multipart/form-data", body = crate::error::ErrorBody)))]
async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    access::business_read(&actor)?;
    let mut fields = read_fields(multipart).await?;
    let kind = match fields.get("kind").map(str::trim).filter(|k| !k.is_empty()) {
        None => Kind::Document,
        Some(k) => {
            Kind::parse(k).ok_or_else(|| ApiError::field("kind", "kind 应为 document 或 photo"))?
        }
    };
    let org_id = fields
        .get("org_id")
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let member_id = fields
        .get("member_id")
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let (org_code, allowed) = match (org_id, member_id) {
        (Some(org_id), None) => {
            let org = crate::org::store::get(state.db.read(), org_id)
                .await?
                .ok_or_else(|| ApiError::not_found("党组织"))?;
            let allowed = access::org(&actor, &org.code, Reach::Subtree)?;
            (org.code, allowed)
        }
        (None, Some(member_id)) => {
            let (code, _) = store::member_photo(&state.db, member_id)
                .await?
                .ok_or_else(|| ApiError::not_found("党员"))?;
            let allowed = access::member(&actor, &code)?;
            (code, allowed)
        }
        _ => {
            return Err(ApiError::field(
                "org_id",
                "请指定附件所属的党组织（org_id）或党员（member_id），二者选一",
            ))
        }
    };
    let accepted = accept_file(kind, &mut fields).await?;
    let row = store::create(
        &state.db,
        &allowed,
        &state.config.data_dir,
        &Who::from(&actor),
        &org_code,
        None,
        &accepted,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(AttachmentView::of(&row, &accepted)),
    ))
}

/// `GET /attachments/{id}`: the bytes, to actors whose scope covers the file's organisation
/// (for a member's photo: the member's organisation now). Documents download
/// (`Content-Disposition: attachment`), images show inline; `nosniff` and `CSP: sandbox`.
#[utoipa::path(get, path = "/api/v1/attachments/{id}", params(("id" = String, Path)),
    responses((status = 200, description = "文件内容：相关资料原样（PDF、JPEG、PNG），照片为重新编码的 JPEG 或 PNG",
               content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/pdf"),
                       (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png")))))]
async fn download(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    access::business_read(&actor)?;
    let row = store::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("附件"))?;
    let mut scope = row.org_code.clone();
    if let (Some("member"), Some(member)) = (row.owner_kind.as_deref(), row.owner_id.as_deref()) {
        if let Some((code, _)) = store::member_photo(&state.db, member).await? {
            scope = code;
        }
    }
    access::attachment(&actor, &scope)?;
    if row.kind == Kind::Document.as_str() {
        audit::append_alone(
            &state.db,
            &Who::from(&actor),
            Event::ok("attachment.view", &row.id)
                .in_org(scope.clone())
                .with_detail(row.file_name.clone()),
        )
        .await?;
    }
    serve(&state, &row)
}

/// The response carrying an attachment's bytes.
pub fn serve(state: &AppState, row: &AttachmentRow) -> ApiResult<Response> {
    let bytes = store::read_file(&state.config.data_dir, &row.id)?;
    let inline = row.content_type.starts_with("image/");
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&row.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&content_disposition(inline, &row.file_name))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    Ok(res)
}

/// `attachment` or `inline`, with the file name as RFC 6266/5987 `filename*` (UTF-8,
/// percent-encoded) and an ASCII fallback.
pub fn content_disposition(inline: bool, file_name: &str) -> String {
    let mut encoded = String::new();
    for b in file_name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let fallback: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    )
}

/// The member and the proof that the actor may work on it.
async fn member_scope(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> ApiResult<(String, Option<String>, access::Allowed)> {
    access::business_read(actor)?;
    let (code, photo) = store::member_photo(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("党员"))?;
    let allowed = access::member(actor, &code)?;
    Ok((code, photo, allowed))
}

/// `PUT /members/{id}/photo`: sets the member's 1-inch photo (audited `member.photo`).
#[utoipa::path(put, path = "/api/v1/members/{id}/photo", params(("id" = String, Path)),
    request_body(content = PhotoForm, content_type = "multipart/form-data"),
    responses((status = 200, body = AttachmentView),
              (status = 413, description = "照片过大（2 MB）", body = crate::error::ErrorBody),
              (status = 415, description = "请求内容须为 multipart/form-data", body = crate::error::ErrorBody)))]
async fn put_photo(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<AttachmentView>> {
    let (code, _, allowed) = member_scope(&state, &actor, &id).await?;
    let mut fields = read_fields(multipart).await?;
    let accepted = accept_file(Kind::Photo, &mut fields).await?;
    let row = set_photo(&state, &actor, &allowed, &id, &code, Some(&accepted))
        .await?
        .ok_or_else(|| ApiError::internal("photo not stored"))?;
    Ok(Json(AttachmentView::of(&row, &accepted)))
}

/// Sets or removes a member's photo (the page form calls this too).
pub async fn set_photo(
    state: &AppState,
    actor: &Actor,
    allowed: &access::Allowed,
    member_id: &str,
    org_code: &str,
    photo: Option<&Accepted>,
) -> ApiResult<Option<AttachmentRow>> {
    store::set_member_photo(
        &state.db,
        allowed,
        &state.config.data_dir,
        &Who::from(actor),
        member_id,
        org_code,
        photo,
    )
    .await
}

/// `GET /members/{id}/photo`: the member's photo (404 when it has none).
#[utoipa::path(get, path = "/api/v1/members/{id}/photo", params(("id" = String, Path)),
    responses((status = 200, description = "照片（image/jpeg、image/png 或 image/gif）", content_type = "image/png")))]
async fn get_photo(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_, photo, _) = member_scope(&state, &actor, &id).await?;
    let photo = photo
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_photo", "该党员尚未上传照片"))?;
    let row = store::get(&state.db, &photo)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_photo", "该党员尚未上传照片"))?;
    serve(&state, &row)
}

/// `DELETE /members/{id}/photo`: removes the member's photo (audited; 204 also when it had
/// none).
#[utoipa::path(delete, path = "/api/v1/members/{id}/photo", params(("id" = String, Path)),
    responses((status = 204, description = "照片已删除")))]
async fn delete_photo(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (code, _, allowed) = member_scope(&state, &actor, &id).await?;
    set_photo(&state, &actor, &allowed, &id, &code, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
