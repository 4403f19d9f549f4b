//! Every refused request of a signed-in actor is recorded (SPEC §12), whichever route refused
//! it: a 403, and a 404 that hides a target outside the actor's scope (marked
//! [`OutOfScope`] by `access`; the answer stays the plain "not found"). The middleware puts
//! an empty [`ActorSlot`] into the request; the `Actor` extractor and the pages' `PageActor`
//! fill it once they know who is asking; after the handler, such an answer with a filled slot
//! appends a `refused` record: action `<METHOD> <route>`, target the request path, detail the
//! error code (`not_found (outside scope)` for the 404s).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Extensions, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{Event, Outcome, Who};
use crate::access::Actor;
use crate::error::OutOfScope;
use crate::state::AppState;

/// Who is asking, once known; shared between the middleware and the extractors.
#[derive(Clone, Default, Debug)]
pub struct ActorSlot(Arc<Mutex<Option<Who>>>);

impl ActorSlot {
    fn fill(&self, who: Who) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(who);
        }
    }

    fn take(&self) -> Option<Who> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// Called by the extractors once the actor of a request is known.
pub fn note_actor(extensions: &Extensions, actor: &Actor) {
    if let Some(slot) = extensions.get::<ActorSlot>() {
        slot.fill(Who::from(actor));
    }
}

/// Largest refusal body read back for its error code.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The middleware (layered on the whole router in `app.rs`).
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let slot = ActorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let mut res = next.run(req).await;
    let hidden = res.extensions_mut().remove::<OutOfScope>().is_some();
    if res.status() == StatusCode::NOT_FOUND && hidden {
        let Some(who) = slot.take() else {
            return res;
        };
        let action = format!("{method} {route}");
        let event = Event::ok(&action, &path)
            .outcome(Outcome::Refused)
            .with_detail("not_found (outside scope)");
        if let Err(e) = super::append_alone(&state.db, &who, event).await {
            tracing::error!("could not record a refused request in the audit log: {e}");
        }
        return res;
    }
    if res.status() != StatusCode::FORBIDDEN {
        return res;
    }
    let Some(who) = slot.take() else {
        return res;
    };
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (parts, body) = res.into_parts();
    let (code, body) = if is_json {
        match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
            Ok(bytes) => {
                let code = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "forbidden".to_string());
                (code, Body::from(bytes))
            }
            Err(_) => ("forbidden".to_string(), Body::empty()),
        }
    } else {
        ("forbidden".to_string(), body)
    };
    let action = format!("{method} {route}");
    let event = Event::ok(&action, &path)
        .outcome(Outcome::Refused)
        .with_detail(code);
    if let Err(e) = super::append_alone(&state.db, &who, event).await {
        tracing::error!("could not record a refused request in the audit log: {e}");
    }
    Response::from_parts(parts, body)
}
