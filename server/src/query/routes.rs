//! The JSON API of the comprehensive query: `POST /query/{members,orgs,units}` (a page),
//! their `export.xlsx`, and the saved queries 固定查询 of the caller.

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{store, Kind, QueryBody, QueryPage, SaveBody, SavedQuery};
use crate::access::Actor;
use crate::audit::routes::ExportFile;
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiJson, ApiQuery, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_members))
        .routes(routes!(query_orgs))
        .routes(routes!(query_units))
        .routes(routes!(export_members))
        .routes(routes!(export_orgs))
        .routes(routes!(export_units))
        .routes(routes!(list_saved, save_query))
        .routes(routes!(delete_saved))
}

/// `POST /query/members`: 综合查询 over the members of the selected organisation (default the
/// caller's; with its subtree unless `include_sub` is false): a page of rows, ID numbers
/// masked, each name linking to the record.
#[utoipa::path(post, path = "/api/v1/query/members", request_body = QueryBody,
    responses((status = 200, body = QueryPage)))]
async fn query_members(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<QueryPage> {
    store::search(&state.db, &actor, Kind::Members, &body).await
}

/// `POST /query/orgs`: 综合查询 over organisations.
#[utoipa::path(post, path = "/api/v1/query/orgs", request_body = QueryBody,
    responses((status = 200, body = QueryPage)))]
async fn query_orgs(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<QueryPage> {
    store::search(&state.db, &actor, Kind::Orgs, &body).await
}

/// `POST /query/units`: 综合查询 over units.
#[utoipa::path(post, path = "/api/v1/query/units", request_body = QueryBody,
    responses((status = 200, body = QueryPage)))]
async fn query_units(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<QueryPage> {
    store::search(&state.db, &actor, Kind::Units, &body).await
}

/// `POST /query/members/export.xlsx`: every matching member (at most 100,000) as an Excel
/// workbook: watermark row first, ID numbers masked; audited as `query.export`.
#[utoipa::path(post, path = "/api/v1/query/members/export.xlsx", request_body = QueryBody,
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_members(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<ExportFile> {
    store::export(&state.db, &actor, Kind::Members, &body).await
}

/// `POST /query/orgs/export.xlsx`: the organisations as an Excel workbook (audited).
#[utoipa::path(post, path = "/api/v1/query/orgs/export.xlsx", request_body = QueryBody,
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_orgs(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<ExportFile> {
    store::export(&state.db, &actor, Kind::Orgs, &body).await
}

/// `POST /query/units/export.xlsx`: the units as an Excel workbook (audited).
#[utoipa::path(post, path = "/api/v1/query/units/export.xlsx", request_body = QueryBody,
    responses((status = 200, description = "Excel workbook",
               content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
async fn export_units(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<QueryBody>,
) -> ApiResult<ExportFile> {
    store::export(&state.db, &actor, Kind::Units, &body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SavedFilter {
    /// members (default, also when empty) | orgs | units
    #[param(value_type = Option<String>, pattern = "^(members|orgs|units)?$")]
    pub kind: Option<String>,
}

/// `GET /query/saved?kind=members`: the caller's saved queries 固定查询 of a kind, by name.
#[utoipa::path(get, path = "/api/v1/query/saved", params(SavedFilter),
    responses((status = 200, body = Vec<SavedQuery>)))]
async fn list_saved(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<SavedFilter>,
) -> ApiResult<Json<Vec<SavedQuery>>> {
    crate::access::business_read(&actor)?;
    let kind = Kind::parse(
        q.kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("members"),
    )
    .ok_or_else(|| ApiError::field("kind", "查询类别只能是 members、orgs 或 units"))?;
    Ok(Json(store::saved(&state.db, &actor, kind).await?))
}

/// `POST /query/saved`: saves the conditions and order under a name, unique per account and
/// kind (409 for a name already used).
#[utoipa::path(post, path = "/api/v1/query/saved", request_body = SaveBody,
    responses((status = 201, body = SavedQuery), (status = 409, description = "name taken", body = crate::error::ErrorBody)))]
async fn save_query(
    AxState(state): AxState<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<SaveBody>,
) -> ApiResult<(StatusCode, Json<SavedQuery>)> {
    let saved = store::save(&state.db, &actor, &body).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// `DELETE /query/saved/{id}`: deletes one of the caller's saved queries (another account's
/// is not found).
#[utoipa::path(delete, path = "/api/v1/query/saved/{id}", params(("id" = String, Path)),
    responses((status = 204)))]
async fn delete_saved(
    AxState(state): AxState<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    store::delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
