//! `GET /api/v1/dictionaries`: the code tables forms need (categories, ethnicities, ...).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::access::Actor;
use crate::member::dict as md;
use crate::org::rules::ALL_CATEGORIES;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dictionaries))
}

#[derive(Serialize, ToSchema)]
pub struct Entry {
    pub code: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Dictionaries {
    pub org_categories: Vec<Entry>,
    pub unit_categories: Vec<Entry>,
    pub party_org_situations: Vec<Entry>,
    pub ethnicities: Vec<Entry>,
    pub educations: Vec<Entry>,
    pub jobs: Vec<Entry>,
    pub member_categories: Vec<Entry>,
}

fn entries(t: &[(&str, &str)]) -> Vec<Entry> {
    t.iter()
        .map(|(c, n)| Entry {
            code: c.to_string(),
            name: n.to_string(),
        })
        .collect()
}

/// Code tables for forms.
#[utoipa::path(get, path = "/api/v1/dictionaries", responses((status = 200, body = Dictionaries)))]
async fn dictionaries(_actor: Actor) -> Json<Dictionaries> {
    Json(Dictionaries {
        org_categories: ALL_CATEGORIES
            .iter()
            .map(|c| Entry {
                code: c.code().to_string(),
                name: c.label().to_string(),
            })
            .collect(),
        unit_categories: entries(&crate::unit::UNIT_CATEGORIES),
        party_org_situations: crate::unit::PARTY_ORG_SITUATIONS
            .iter()
            .map(|(c, n)| Entry {
                code: c.to_string(),
                name: n.to_string(),
            })
            .collect(),
        ethnicities: entries(&md::ETHNICITIES),
        educations: entries(&md::EDUCATIONS),
        jobs: entries(&md::JOBS),
        member_categories: entries(&md::CATEGORIES),
    })
}
