//! Shared state below every area: what handlers reach (`AppState`), the connection facts the
//! listener inserts (`ConnInfo`), the JSON and query extractors with the API's error shape, and
//! paging. Areas import this module, never `app`, which assembles the areas into one router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    /// The real-name source `config.json` names (`None`: nothing is verified, members are
    /// 实名未核验); ask through `realname::check`.
    pub realname: Option<Arc<dyn crate::realname::RealNameSource>>,
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

/// The 413 answer in the API's error shape.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("请求内容过大（上限 {} KB）", MAX_BODY_BYTES / 1024),
    )
}

/// The 415 answer in the API's error shape: a JSON endpoint was sent another content type.
pub fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "请求内容类型不正确：应为 application/json",
    )
}

/// Whether a `Content-Type` names JSON: `application/json`, optionally with
/// `; charset=utf-8`. Anything else — `text/plain`, a form, none at all — is refused, so a
/// cross-site form or a no-cors fetch (which cannot send this type without a CORS preflight)
/// never reaches a JSON endpoint.
pub fn is_json_content_type(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, value)) => {
            name.trim().eq_ignore_ascii_case("charset")
                && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        None => param.trim().is_empty(),
    })
}

/// A JSON body whose every failure answers in the API's error shape, naming the field. The
/// body must be declared `application/json` (415 otherwise).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(axum::http::header::CONTENT_TYPE)) {
            return Err(unsupported_media_type());
        }
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

/// A query parameter's text as sent, `sort=` giving `Some("")`: the form decoder's own `Option`
/// reads an empty value as absent, which would let an empty value of an enum pass unrefused
/// although the OpenAPI document calls it invalid. Handlers parse the text themselves so that
/// a wrong value is refused in Chinese naming the field.
pub fn present_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    <String as Deserialize>::deserialize(d).map(Some)
}

/// An integer query parameter that, when present, must be an integer: `per_page=` (empty) is
/// refused like `per_page=abc` (the form decoder's own `Option` would read it as absent, and
/// the default would answer a request the OpenAPI document calls invalid).
pub fn int_param<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = <String as Deserialize>::deserialize(d)?;
    text.parse::<i64>()
        .map(Some)
        .map_err(<D::Error as serde::de::Error>::custom)
}

/// A whole number of a JSON body as JSON Schema reads `integer`: `49396.0` is one as much as
/// `49396` (serde's own `u32` refuses the former).
pub fn whole_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = <serde_json::Number as Deserialize>::deserialize(d)?;
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Some(u),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    whole
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| <D::Error as serde::de::Error>::custom("not a whole number of u32"))
}

/// `?page=1&per_page=20` (at most 200 a page).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// The largest `per_page` the API serves.
pub const MAX_PER_PAGE: i64 = 200;

impl Paging {
    /// Refuses a `page` below 1 or a `per_page` outside 1…[`MAX_PER_PAGE`] with a 400 naming
    /// the field, as the OpenAPI document declares (the API does not clamp silently; the
    /// pages' own pagers still clamp through [`Paging::per_page`]).
    pub fn check(
        page: Option<i64>,
        per_page: Option<i64>,
    ) -> Result<Paging, crate::error::ApiError> {
        if page.is_some_and(|p| p < 1) {
            return Err(crate::error::ApiError::field(
                "page",
                "页码应为不小于1的整数",
            ));
        }
        if per_page.is_some_and(|n| !(1..=MAX_PER_PAGE).contains(&n)) {
            return Err(crate::error::ApiError::field(
                "per_page",
                format!("每页条数应为1至{MAX_PER_PAGE}"),
            ));
        }
        Ok(Paging { page, per_page })
    }

    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }
    pub fn per_page(&self) -> i64 {
        self.per_page.unwrap_or(20).clamp(1, MAX_PER_PAGE)
    }
    pub fn offset(&self) -> i64 {
        (self.page() - 1).saturating_mul(self.per_page())
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

#[cfg(test)]
mod tests {
    use super::is_json_content_type;
    use axum::http::HeaderValue;

    #[test]
    fn only_json_is_json() {
        let ok = |v: &'static str| is_json_content_type(Some(&HeaderValue::from_static(v)));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/json;charset=\"UTF-8\""));
        assert!(!ok("text/plain"));
        assert!(!ok("text/plain; charset=utf-8"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!ok("multipart/form-data; boundary=x"));
        assert!(!ok("application/json; charset=latin1"));
        assert!(!ok("application/jsonp"));
        assert!(!is_json_content_type(None));
    }
}
