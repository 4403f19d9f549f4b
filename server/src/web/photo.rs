//! The member's 1-inch photo on the pages: the 120×168 box on the record (placeholder 照片
//! when there is none) and the upload control of the edit form, whose multipart POST
//! `/members/{id}/photo` carries the `csrf` field (checked here before anything is stored).

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{html, Markup};

use super::{csrf_field, error_page, PageActor};
use crate::access::{self, Actor};
use crate::attachment::routes::{accept_file, read_fields, set_photo};
use crate::attachment::{store, Kind, PHOTO_HEIGHT, PHOTO_WIDTH};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> super::PageRouter {
    super::PageRouter::new().route(
        "/members/{id}/photo",
        post(submit).layer(DefaultBodyLimit::max(
            crate::attachment::MAX_UPLOAD_BODY_BYTES,
        )),
    )
}

/// Whether the member has a photo (for the record page and the form).
pub async fn has_photo(state: &AppState, member_id: &str) -> bool {
    matches!(
        store::member_photo(&state.db, member_id).await,
        Ok(Some((_, Some(_))))
    )
}

/// The 120×168 photo box: the photo, or the placeholder 照片.
pub fn photo_box(member_id: &str, has_photo: bool) -> Markup {
    html! {
        // 120×168 in app.css (no inline style: the CSP allows none).
        div.member-photo {
            @if has_photo {
                img src={"/api/v1/members/" (member_id) "/photo"} alt="党员照片"
                    width=(PHOTO_WIDTH) height=(PHOTO_HEIGHT);
            } @else {
                span.placeholder { "照片" }
            }
        }
    }
}

/// The edit form's photo panel: the box, an upload form and, when there is a photo, 删除照片.
pub fn photo_panel(actor: &Actor, member_id: &str, has_photo: bool) -> Markup {
    let action = format!("/members/{member_id}/photo");
    html! {
        div.panel #member-photo-panel {
            h3 { "照片" }
            (photo_box(member_id, has_photo))
            p.muted { "一寸照片，JPG、PNG 或 GIF 格式，不超过 2 MB；大于 120×168 像素的照片将按比例缩小。" }
            form #photo-form method="post" action=(action) enctype="multipart/form-data" {
                (csrf_field(actor))
                label for="photo-file" { "选择照片" }
                input #photo-file type="file" name="file" accept="image/jpeg,image/png,image/gif" required;
                button.primary type="submit" { "上传照片" }
            }
            @if has_photo {
                form method="post" action=(action) enctype="multipart/form-data" data-confirm="确定删除该党员的照片吗？" {
                    (csrf_field(actor))
                    input type="hidden" name="action" value="delete";
                    button type="submit" { "删除照片" }
                }
            }
        }
    }
}

async fn submit(
    State(state): State<AppState>,
    PageActor(actor): PageActor,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let result: Result<Response, ApiError> = async {
        access::business_read(&actor)?;
        let (code, _) = store::member_photo(&state.db, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("党员"))?;
        let allowed = access::member(&actor, &code)?;
        let mut fields = read_fields(multipart).await?;
        if fields.get("csrf") != Some(actor.csrf_token.as_str()) {
            return Err(ApiError::forbidden(
                "表单已失效（防伪令牌不符），请返回刷新页面后重新提交",
            ));
        }
        if fields.get("action") == Some("delete") {
            set_photo(&state, &actor, &allowed, &id, &code, None).await?;
            return Ok(Redirect::to(&format!("/members/{id}?notice=photo_removed")).into_response());
        }
        let accepted = accept_file(Kind::Photo, &mut fields).await?;
        set_photo(&state, &actor, &allowed, &id, &code, Some(&accepted)).await?;
        Ok(Redirect::to(&format!("/members/{id}?notice=photo_saved")).into_response())
    }
    .await;
    result.unwrap_or_else(|e| error_page(Some(&actor), e))
}
