//! The application: the router that merges every area's routes, the OpenAPI document and the
//! middleware every request passes. Nothing below imports this module (see `state`).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::body_too_large;
pub use crate::state::{AppState, MAX_BODY_BYTES};

#[derive(OpenApi)]
#[openapi(
    info(title = "dangjian API", version = "1", description = "党员信息管理平台 JSON API"),
    servers((url = "/")),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session_cookie" = []))
)]
struct ApiDoc;

/// Bearer token (scripts) and the `dj_session` cookie (browser; writes need `X-CSRF-Token`).
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("dj_session"))),
        );
    }
}

/// The whole router with its OpenAPI document.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::account::routes::router())
        .merge(crate::org::routes::router())
        .merge(crate::unit::routes::router())
        .merge(crate::member::routes::router())
        .merge(crate::approval::routes::router())
        .merge(crate::transfer::routes::router())
        .merge(crate::transfer::records::router())
        .merge(crate::query::routes::router())
        .merge(crate::dict::router())
        .merge(crate::audit::routes::router())
        .merge(crate::card::routes::router())
        .merge(crate::card::tunnel::router())
        .merge(crate::attachment::routes::router())
        .merge(crate::letter::routes::router())
        .merge(crate::quality::routes::router())
        .merge(crate::import::routes::router())
        .merge(crate::roster::router())
        .merge(crate::jobs::router())
        .merge(crate::stats::router())
        .merge(crate::personal::routes::router())
        .split_for_parts();
    let mut openapi = openapi;
    let openapi = Arc::new(crate::api_doc::finish(&mut openapi));
    let mut api = api;
    for (path, method_router) in undocumented_routes(openapi) {
        api = api.route(path, method_router);
    }
    api.merge(crate::web::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::web::error_pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::refusals::record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_oversized_bodies))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            route_reads,
        ))
        .with_state(state)
}

/// With a replica (`serve --database-read`): a write request reads from the primary, and its
/// session is marked as having written, so that its next reads stay on the primary for a few
/// seconds (`db::route`).
async fn route_reads(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !state.db.has_replica() {
        return next.run(req).await;
    }
    let writes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let (res, session) = crate::db::route::scope(writes, next.run(req)).await;
    if let (true, Some(hash)) = (writes, session) {
        let marked = sqlx::query("UPDATE sessions SET wrote_at = $1 WHERE token_hash = $2")
            .bind(crate::db::now_rfc3339())
            .bind(hash)
            .execute(state.db.write())
            .await;
        if let Err(e) = marked {
            tracing::warn!("mark the session's write: {e}");
        }
    }
    res
}

/// API routes outside the OpenAPI document: the document itself, the health check and the CRL.
fn undocumented_routes(
    openapi: Arc<serde_json::Value>,
) -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    vec![
        (
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        ),
        ("/api/v1/health", axum::routing::get(health)),
        (
            crate::tls::CRL_URL_PATH,
            axum::routing::get(crate::card::routes::crl_file),
        ),
    ]
}

/// The paths of [`undocumented_routes`] (all GET), for the authorization-matrix test.
pub fn undocumented_api_paths() -> Vec<&'static str> {
    let doc = Arc::new(serde_json::Value::Null);
    undocumented_routes(doc)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// `ok`, or `degraded` when the CRL is past its nextUpdate (or none is loaded): card sessions
/// are then refused until a fresh CRL is published.
async fn health() -> Json<serde_json::Value> {
    match crate::tls::pki() {
        Some(pki) => {
            let crl = pki.status();
            let status = if crl.expired || crl.error.is_some() {
                "degraded"
            } else {
                "ok"
            };
            Json(serde_json::json!({"status": status, "crl": crl}))
        }
        None => Json(serde_json::json!({"status": "ok"})),
    }
}

/// An unknown path: the API's JSON error; on page paths `web::error_pages` makes it a
/// Chinese page.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    if uri.path().starts_with("/api/") {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "请求的地址不存在")
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "您访问的页面不存在：地址可能有误，或页面已被移除。",
        )
    }
}

async fn security_headers(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::CSP),
        );
    }
    res
}

/// Bodies declared larger than this are read and discarded before answering 413, so that
/// HTTP/2 clients still uploading get the answer instead of a reset stream.
const DRAIN_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Answers 413 to any request whose declared length exceeds the API's limit (the upload
/// routes': `attachment::body_limit`), before sign-in checks, after draining what the client
/// sends (up to a cap).
async fn refuse_oversized_bodies(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let upload = crate::attachment::is_upload_route(req.method(), req.uri().path());
    let limit = crate::attachment::body_limit(req.method(), req.uri().path());
    let Some(len) = declared.filter(|&n| n > limit as u64) else {
        return next.run(req).await;
    };
    if len <= DRAIN_LIMIT_BYTES {
        use http_body_util::BodyExt;
        let mut body = req.into_body();
        while let Some(Ok(_)) = body.frame().await {}
    }
    if upload {
        crate::attachment::body_too_large().into_response()
    } else {
        body_too_large().into_response()
    }
}
