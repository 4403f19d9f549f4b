//! The application: shared state, the router that merges every area's routes, the JSON body
//! extractor with the API's error shape, and paging.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;

/// Largest JSON body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
}

/// Facts about the connection a request came over, inserted by the listener.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub client_addr: SocketAddr,
    pub tls: bool,
    /// The client certificate the TLS layer verified (chain to the platform CA, validity,
    /// keyUsage, EKU clientAuth, CRL), if the connection carried one.
    pub peer_cert: Option<crate::tls::PeerCert>,
}

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
        .merge(crate::dict::router())
        .merge(crate::audit::routes::router())
        .merge(crate::card::routes::router())
        .split_for_parts();
    let openapi = Arc::new(openapi);
    let mut api = api;
    for (path, method_router) in undocumented_routes(openapi) {
        api = api.route(path, method_router);
    }
    api.merge(crate::web::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::refusals::record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_oversized_bodies))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// API routes outside the OpenAPI document: the document itself, the health check and the CRL.
fn undocumented_routes(
    openapi: Arc<utoipa::openapi::OpenApi>,
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
    let doc = Arc::new(utoipa::openapi::OpenApi::default());
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

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "请求的地址不存在")
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

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("请求内容过大（上限 {} KB）", MAX_BODY_BYTES / 1024),
    )
}

/// Answers 413 to any request whose declared length exceeds the API's limit, before sign-in
/// checks, after draining what the client sends (up to a cap).
async fn refuse_oversized_bodies(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(len) = declared.filter(|&n| n > MAX_BODY_BYTES as u64) else {
        return next.run(req).await;
    };
    if len <= DRAIN_LIMIT_BYTES {
        use http_body_util::BodyExt;
        let mut body = req.into_body();
        while let Some(Ok(_)) = body.frame().await {}
    }
    body_too_large().into_response()
}

/// A JSON body whose every failure answers in the API's error shape, naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                body_too_large()
            } else {
                ApiError::bad_request("无法读取请求内容")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body; a type error names the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "请求内容的格式不正确，应为 JSON 对象",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                if let Some(rest) = text.strip_prefix("missing field `") {
                    let field = rest.split('`').next().unwrap_or("").to_string();
                    ApiError::field(&field, format!("缺少必填字段 {field}"))
                } else if path == "." || path.is_empty() {
                    ApiError::bad_request("请求内容的格式不正确，应为 JSON 对象")
                } else {
                    ApiError::field(&path, format!("字段 {path} 的取值或类型不正确"))
                }
            }
            _ => ApiError::bad_request("请求内容不是有效的 JSON"),
        }
    })
}

/// Query parameters whose parse failure answers in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_html_form::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::bad_request(format!("查询参数不正确：{e}")))
    }
}

/// `?page=1&per_page=20` (at most 200 a page).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct Paging {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

impl Paging {
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }
    pub fn per_page(&self) -> i64 {
        self.per_page.unwrap_or(20).clamp(1, 200)
    }
    pub fn offset(&self) -> i64 {
        (self.page() - 1) * self.per_page()
    }
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, paging: &Paging) -> Self {
        Page {
            items,
            total,
            page: paging.page(),
            per_page: paging.per_page(),
        }
    }
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> axum::response::Response {
        Json(self).into_response()
    }
}
