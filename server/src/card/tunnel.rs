//! What the agent's tunnel reports: `POST /api/v1/agent/refusals`. The tunnel refuses every
//! state-changing request of its browser whose `Origin` (or, without one, `Sec-Fetch-Site`)
//! is not the tunnel's own origin — a page on another loopback port would otherwise ride the
//! card session — and reports each refusal here with the session's token, so that the audit
//! log shows the attempt under the card holder's name. The agent coalesces a flood into
//! reports that carry a count.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::Actor;
use crate::audit::{self, Event, Outcome, Who};
use crate::error::{ApiError, ApiResult};
use crate::state::{ApiJson, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(refusal_route))
}

/// The audit action of a refused cross-site request.
pub const ACTION: &str = "tunnel.cross_site_refused";

/// A request the tunnel refused.
#[derive(Deserialize, ToSchema)]
pub struct TunnelRefusal {
    /// 被拒绝请求的方法，例如 POST
    pub method: String,
    /// 被拒绝请求的路径（含查询串）
    pub path: String,
    /// 请求的 Origin 头（没有时为空）
    #[serde(default)]
    pub origin: Option<String>,
    /// 请求的 Sec-Fetch-Site 头（没有时为空）
    #[serde(default)]
    pub fetch_site: Option<String>,
    /// 本报告代表的被拒绝请求数（默认 1；代理合并短时间内的大量请求）
    #[serde(default)]
    pub count: Option<u32>,
}

/// At most this many characters of a reported header or path reach the audit record.
const MAX_FIELD_CHARS: usize = 200;

fn clip(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_FIELD_CHARS)
        .collect()
}

/// 报告跨站请求被拒绝 (the agent's tunnel): records the refusal in the audit log under the
/// reporting session's actor. 204 on success.
#[utoipa::path(post, path = "/api/v1/agent/refusals", request_body = TunnelRefusal,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody),
              (status = 415, body = crate::error::ErrorBody)))]
async fn refusal_route(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(body): ApiJson<TunnelRefusal>,
) -> ApiResult<StatusCode> {
    let method = clip(body.method.trim());
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ApiError::field("method", "请求方法不正确"));
    }
    let path = clip(body.path.trim());
    if !path.starts_with('/') {
        return Err(ApiError::field("path", "请求路径应以 / 开头"));
    }
    let count = body.count.unwrap_or(1).max(1);
    let origin = body.origin.as_deref().map(clip);
    let site = body.fetch_site.as_deref().map(clip);
    audit::append_alone(
        &state.db,
        &Who::from(&actor),
        Event::ok(ACTION, &path)
            .outcome(Outcome::Refused)
            .with_detail(format!(
                "{count} × {method} {path} refused by the agent's tunnel; Origin {}; \
                 Sec-Fetch-Site {}",
                origin.as_deref().unwrap_or("-"),
                site.as_deref().unwrap_or("-"),
            )),
    )
    .await?;
    tracing::warn!(
        account = %actor.account_id,
        "the agent's tunnel refused {count} cross-site request(s): {method} {path}"
    );
    Ok(StatusCode::NO_CONTENT)
}
