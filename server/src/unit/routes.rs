//! Unit routes: search, create, view, edit, delete, with name and credit-code uniqueness and
//! the linkage rules.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{category_label, credit_code, store};
use crate::access::{self, Actor, Allowed};
use crate::audit::{self, Event, Who};
use crate::db::{new_id, subtree_upper, Db};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_units, create_unit))
        .routes(routes!(check_credit_code))
        .routes(routes!(get_unit, edit_unit, delete_unit))
}

/// A unit as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitView {
    pub id: String,
    /// 单位名称
    pub name: String,
    /// 统一社会信用代码
    pub credit_code: String,
    /// 单位类别: 1 乡镇街道, 2 企业, 3 事业单位, 4 机关, 5 社会组织, 9 其他
    pub category: String,
    pub category_name: String,
    pub subcategory: String,
    /// 是否成立党组
    pub has_party_group: bool,
    /// 单位建立党组织情况 1..4
    pub party_org_situation: i64,
    /// 管理党组织 (situations 3 and 4)
    pub managing_org_id: Option<String>,
    pub owner_org_id: String,
    /// organisations this unit is linked to
    pub linked_orgs: Vec<LinkedOrg>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedOrg {
    pub id: String,
    pub name: String,
    pub code: String,
    pub is_default: bool,
}

type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    String,
    String,
    String,
    String,
);

const UNIT_COLUMNS: &str = "u.id, u.name, u.credit_code, u.category, u.subcategory, u.has_party_group, \
    u.party_org_situation, u.managing_org_id, u.owner_org_id, u.owner_code, u.created_at, u.updated_at";

async fn linked_orgs(db: &Db, unit_id: &str) -> Result<Vec<LinkedOrg>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.code, ou.is_default FROM org_units ou JOIN orgs o ON o.id = ou.org_id \
         WHERE ou.unit_id = $1 ORDER BY o.code",
    )
    .bind(unit_id)
    .fetch_all(db.read())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LinkedOrg {
            id: r.0,
            name: r.1,
            code: r.2,
            is_default: r.3 != 0,
        })
        .collect())
}

async fn to_view(db: &Db, r: UnitRow) -> Result<UnitView, sqlx::Error> {
    let linked = linked_orgs(db, &r.0).await?;
    Ok(UnitView {
        category_name: category_label(&r.3).unwrap_or("").to_string(),
        id: r.0,
        name: r.1,
        credit_code: r.2,
        category: r.3,
        subcategory: r.4,
        has_party_group: r.5 != 0,
        party_org_situation: r.6,
        managing_org_id: r.7,
        owner_org_id: r.8,
        linked_orgs: linked,
        created_at: r.10,
        updated_at: r.11,
    })
}

/// Loads a unit the actor may see: owned by, managed by or linked to an organisation in the
/// actor's scope; anything else is not found.
async fn load_in_scope(db: &Db, actor: &Actor, id: &str) -> ApiResult<(UnitRow, Vec<LinkedOrg>)> {
    access::business_read(actor)?;
    let row: Option<UnitRow> = sqlx::query_as(&format!(
        "SELECT {UNIT_COLUMNS} FROM units u WHERE u.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found("单位"))?;
    let linked = linked_orgs(db, &row.0).await?;
    let managing_code: Option<String> = match &row.7 {
        Some(m) => {
            sqlx::query_scalar("SELECT code FROM orgs WHERE id = $1")
                .bind(m)
                .fetch_optional(db.read())
                .await?
        }
        None => None,
    };
    let mut codes: Vec<&str> = vec![row.9.as_str()];
    codes.extend(linked.iter().map(|l| l.code.as_str()));
    codes.extend(managing_code.as_deref());
    access::unit_read(actor, codes)?;
    Ok((row, linked))
}

/// Loads a unit the actor may edit or delete: seen (else 404), and kept by an organisation
/// in the actor's scope — the one it is linked to, else its owner (else 403).
async fn load_for_write(
    db: &Db,
    actor: &Actor,
    id: &str,
) -> ApiResult<(UnitRow, Vec<LinkedOrg>, Allowed)> {
    let (row, linked) = load_in_scope(db, actor, id).await?;
    let linked_codes: Vec<&str> = linked.iter().map(|l| l.code.as_str()).collect();
    let allowed = access::unit_write(actor, &row.9, &linked_codes)?;
    Ok((row, linked, allowed))
}

/// One unit the actor may edit or delete (the unit pages' forms): 404 outside the scope, 403
/// when another organisation keeps it.
pub async fn get_for_write(db: &Db, actor: &Actor, id: &str) -> ApiResult<UnitView> {
    let (row, _, _) = load_for_write(db, actor, id).await?;
    Ok(to_view(db, row).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreditCodeQuery {
    /// the code as typed (trimmed, upper-cased before the check)
    pub code: Option<String>,
}

/// A credit code checked as it is typed (the unit dialog of 组织新增): the same rule a save
/// applies, and whether a unit already uses it.
#[derive(Serialize, ToSchema)]
pub struct CreditCodeCheck {
    pub valid: bool,
    /// the code upper-cased, when valid
    pub normalized: Option<String>,
    /// why it is refused, in Chinese
    pub message: Option<String>,
    /// another unit already uses the code
    pub taken: bool,
}

/// `GET /units/credit-code?code=`: checks a 统一社会信用代码 without saving anything.
#[utoipa::path(get, path = "/api/v1/units/credit-code", params(CreditCodeQuery),
    responses((status = 200, body = CreditCodeCheck), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
async fn check_credit_code(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CreditCodeQuery>,
) -> ApiResult<Json<CreditCodeCheck>> {
    access::business_read(&actor)?;
    let code = q.code.unwrap_or_default();
    if code.trim().is_empty() {
        return Err(ApiError::field("code", "请填写统一社会信用代码"));
    }
    Ok(Json(match credit_code::validate(&code) {
        Ok(normalized) => {
            let taken: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE credit_code = $1")
                    .bind(&normalized)
                    .fetch_one(state.db.read())
                    .await?;
            CreditCodeCheck {
                valid: true,
                message: (taken > 0).then(|| "统一社会信用代码已被其他单位使用".to_string()),
                normalized: Some(normalized),
                taken: taken > 0,
            }
        }
        Err(message) => CreditCodeCheck {
            valid: false,
            normalized: None,
            message: Some(message),
            taken: false,
        },
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnitQuery {
    /// part of the name or credit code
    pub q: Option<String>,
    /// `linked` (已建立党组织: linked to an organisation), `no_party_org` (未建立党组织:
    /// situation 3 or 4), `unlinked` (未关联); anything else lists all
    pub linkage: Option<String>,
    /// limit the list to the subtree of this organisation (which must be in the actor's scope)
    /// instead of the actor's whole scope
    pub org_id: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// `GET /units?q=`: units in the actor's scope (or in the subtree of `org_id`).
#[utoipa::path(get, path = "/api/v1/units", params(UnitQuery), responses((status = 200, body = Page<UnitView>)))]
async fn list_units(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<UnitQuery>,
) -> ApiResult<Page<UnitView>> {
    Paging::check(q.page, q.per_page)?;
    list(&state.db, &actor, &q).await
}

/// Units in the actor's scope (or in the subtree of `q.org_id`, which must lie in it), filtered
/// and paged.
pub async fn list(db: &Db, actor: &Actor, q: &UnitQuery) -> ApiResult<Page<UnitView>> {
    access::business_read(actor)?;
    let paging = Paging {
        page: q.page,
        per_page: q.per_page,
    };
    let linked_clause = match q.linkage.as_deref() {
        Some("linked") => " AND EXISTS (SELECT 1 FROM org_units l WHERE l.unit_id = u.id)",
        Some("unlinked") => " AND NOT EXISTS (SELECT 1 FROM org_units l WHERE l.unit_id = u.id)",
        Some("no_party_org") => " AND u.party_org_situation IN (3, 4)",
        _ => "",
    };
    let scope_code = match q.org_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(org_id) => {
            let org = crate::org::routes::load(db, org_id).await?;
            access::org(actor, &org.code, access::Reach::Subtree)?;
            org.code
        }
        None => actor.org_code.clone(),
    };
    let filter = format!(
        "FROM units u WHERE (u.owner_code >= $1 AND u.owner_code < $2 OR EXISTS (SELECT 1 FROM org_units ou \
         JOIN orgs o ON o.id = ou.org_id WHERE ou.unit_id = u.id AND o.code >= $1 AND o.code < $2) \
         OR EXISTS (SELECT 1 FROM orgs mo WHERE mo.id = u.managing_org_id AND mo.code >= $1 AND mo.code < $2)) \
         AND (u.name LIKE $3 OR u.credit_code LIKE $3){linked_clause}"
    );
    let pattern = format!(
        "%{}%",
        q.q.clone()
            .unwrap_or_default()
            .trim()
            .replace(['%', '_'], "")
    );
    let upper = subtree_upper(&scope_code);
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {filter}"))
        .bind(&scope_code)
        .bind(&upper)
        .bind(&pattern)
        .fetch_one(db.read())
        .await?;
    let rows: Vec<UnitRow> = sqlx::query_as(&format!(
        "SELECT {UNIT_COLUMNS} {filter} ORDER BY u.name LIMIT $4 OFFSET $5"
    ))
    .bind(&scope_code)
    .bind(&upper)
    .bind(&pattern)
    .bind(paging.per_page())
    .bind(paging.offset())
    .fetch_all(db.read())
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(to_view(db, r).await?);
    }
    Ok(Page::new(items, total, &paging))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct UnitInput {
    /// 单位名称
    pub name: Option<String>,
    /// 统一社会信用代码
    pub credit_code: Option<String>,
    /// 单位类别
    #[serde(default, deserialize_with = "fields::string_or_number")]
    #[schema(value_type = Option<String>)]
    pub category: Option<String>,
    pub subcategory: Option<String>,
    /// 是否成立党组
    pub has_party_group: Option<bool>,
    /// 单位建立党组织情况 1..4
    pub party_org_situation: Option<i64>,
    /// 管理党组织: required for situations 3 and 4
    pub managing_org_id: Option<String>,
    /// the organisation whose admins keep this unit (defaults to the actor's own)
    pub owner_org_id: Option<String>,
}

struct ValidUnit {
    name: String,
    credit_code: String,
    category: String,
    subcategory: String,
    has_party_group: bool,
    situation: i64,
    managing_org_id: Option<String>,
}

impl ValidUnit {
    fn fields(&self) -> store::UnitFields<'_> {
        store::UnitFields {
            name: &self.name,
            credit_code: &self.credit_code,
            category: &self.category,
            subcategory: &self.subcategory,
            has_party_group: self.has_party_group,
            situation: self.situation,
            managing_org_id: self.managing_org_id.clone(),
        }
    }
}

async fn validate(
    db: &Db,
    actor: &Actor,
    u: &UnitInput,
    current: Option<&UnitRow>,
) -> ApiResult<ValidUnit> {
    let pick =
        |v: Option<&String>, c: Option<&str>| v.map(|s| s.as_str()).or(c).map(str::to_string);
    // Every field at fault is reported at once.
    let mut p = Problems::default();
    let name = p.take(fields::required_text(
        "name",
        "单位名称",
        pick(u.name.as_ref(), current.map(|c| c.1.as_str())).as_deref(),
        100,
    ));
    let code_in = pick(u.credit_code.as_ref(), current.map(|c| c.2.as_str())).unwrap_or_default();
    let credit_code = if code_in.trim().is_empty() {
        p.add("credit_code", "请填写统一社会信用代码");
        None
    } else {
        p.take(credit_code::validate(&code_in).map_err(|m| ApiError::field("credit_code", m)))
    };
    let category = pick(u.category.as_ref(), current.map(|c| c.3.as_str())).unwrap_or_default();
    if category.trim().is_empty() {
        p.add("category", "请选择单位类别");
    } else if category_label(category.trim()).is_none() {
        p.add("category", format!("单位类别“{category}”不存在"));
    }
    let subcategory = p.take(fields::optional_text(
        "subcategory",
        "单位类别细分",
        pick(u.subcategory.as_ref(), current.map(|c| c.4.as_str())).as_deref(),
        50,
    ));
    let has_party_group = u
        .has_party_group
        .unwrap_or(current.map(|c| c.5 != 0).unwrap_or(false));
    let situation = match u.party_org_situation.or(current.map(|c| c.6)) {
        None => {
            p.add("party_org_situation", "请选择单位建立党组织情况");
            None
        }
        Some(s) if !(1..=4).contains(&s) => {
            p.add("party_org_situation", "单位建立党组织情况应为1至4");
            None
        }
        Some(s) => Some(s),
    };
    let managing = match situation {
        Some(3 | 4) => {
            let m = pick(
                u.managing_org_id.as_ref(),
                current.and_then(|c| c.7.as_deref()),
            )
            .unwrap_or_default();
            if m.trim().is_empty() {
                p.add(
                    "managing_org_id",
                    "应建未建或未建立党组织的单位须指定管理党组织",
                );
                None
            } else {
                Some(m.trim().to_string())
            }
        }
        _ => None,
    };
    let managing_org_id = match managing {
        Some(m) => match crate::org::store::get(db.read(), &m).await? {
            None => {
                p.add("managing_org_id", "管理党组织不存在");
                None
            }
            Some(org) => {
                if access::org(actor, &org.code, access::Reach::Subtree).is_err() {
                    p.add("managing_org_id", "管理党组织不在您的管理范围内");
                }
                Some(org.id)
            }
        },
        None => None,
    };
    p.finish()?;
    let (Some(name), Some(credit_code), Some(subcategory), Some(situation)) =
        (name, credit_code, subcategory, situation)
    else {
        return Err(fields::unset());
    };
    Ok(ValidUnit {
        name,
        credit_code,
        category: category.trim().to_string(),
        subcategory,
        has_party_group,
        situation,
        managing_org_id,
    })
}

/// `POST /units`.
#[utoipa::path(post, path = "/api/v1/units", request_body = UnitInput,
    responses((status = 201, body = UnitView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn create_unit(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<UnitInput>,
) -> ApiResult<(StatusCode, Json<UnitView>)> {
    let id = create(&state.db, &actor, &req).await?;
    let (row, _) = load_in_scope(&state.db, &actor, &id).await?;
    Ok((StatusCode::CREATED, Json(to_view(&state.db, row).await?)))
}

/// Creates a unit; returns its id.
pub async fn create(db: &Db, actor: &Actor, req: &UnitInput) -> ApiResult<String> {
    access::business_read(actor)?;
    let (owner_id, owner_code) = match req
        .owner_org_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(o) => {
            let org = crate::org::store::get(db.read(), o)
                .await?
                .ok_or_else(|| ApiError::field("owner_org_id", "所属党组织不存在"))?;
            (org.id, org.code)
        }
        None => (actor.org_id.clone(), actor.org_code.clone()),
    };
    // A new unit is linked to nothing: its owner keeps it.
    let allowed = access::unit_write(actor, &owner_code, &[])
        .map_err(|_| ApiError::forbidden("该党组织不在您的管理范围内"))?;
    let v = validate(db, actor, req, None).await?;
    let id = new_id();
    let mut tx = db.begin().await?;
    ensure_unique(&mut tx, &v, None).await?;
    store::insert(&mut tx, &allowed, &id, &v.fields(), &owner_id, &owner_code).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("unit.create", &id).with_detail(format!("{} {}", v.credit_code, v.name)),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

async fn ensure_unique(
    tx: &mut crate::db::Tx,
    v: &ValidUnit,
    except: Option<&str>,
) -> ApiResult<()> {
    let except = except.unwrap_or("");
    let same_name: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE name = $1 AND id <> $2")
            .bind(&v.name)
            .bind(except)
            .fetch_one(&mut **tx)
            .await?;
    if same_name > 0 {
        return Err(ApiError::conflict_field(
            "name",
            format!("单位名称“{}”已存在", v.name),
        ));
    }
    let same_code: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM units WHERE credit_code = $1 AND id <> $2")
            .bind(&v.credit_code)
            .bind(except)
            .fetch_one(&mut **tx)
            .await?;
    if same_code > 0 {
        return Err(ApiError::conflict_field(
            "credit_code",
            format!("统一社会信用代码 {} 已被其他单位使用", v.credit_code),
        ));
    }
    Ok(())
}

/// `GET /units/{id}`.
#[utoipa::path(get, path = "/api/v1/units/{id}", params(("id" = String, Path)),
    responses((status = 200, body = UnitView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_unit(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<UnitView>> {
    Ok(Json(get(&state.db, &actor, &id).await?))
}

/// One unit in the actor's scope.
pub async fn get(db: &Db, actor: &Actor, id: &str) -> ApiResult<UnitView> {
    let (row, _) = load_in_scope(db, actor, id).await?;
    Ok(to_view(db, row).await?)
}

/// `PATCH /units/{id}`: a linked unit's category change clears its organisations' party-work
/// information.
#[utoipa::path(patch, path = "/api/v1/units/{id}", params(("id" = String, Path)), request_body = UnitInput,
    responses((status = 200, body = UnitView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn edit_unit(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UnitInput>,
) -> ApiResult<Json<UnitView>> {
    edit(&state.db, &actor, &id, &req).await?;
    let (row, _) = load_in_scope(&state.db, &actor, &id).await?;
    Ok(Json(to_view(&state.db, row).await?))
}

/// Edits a unit; a category change clears its organisations' party-work information. Only
/// the admins of the organisation that keeps the unit (or above) may (`access::unit_write`).
pub async fn edit(db: &Db, actor: &Actor, id: &str, req: &UnitInput) -> ApiResult<()> {
    let (row, linked, allowed) = load_for_write(db, actor, id).await?;
    let v = validate(db, actor, req, Some(&row)).await?;
    if !linked.is_empty() && v.situation >= 3 {
        return Err(ApiError::field(
            "party_org_situation",
            "该单位已关联党组织，不能改为未建立党组织",
        ));
    }
    let mut tx = db.begin().await?;
    ensure_unique(&mut tx, &v, Some(id)).await?;
    store::update(&mut tx, &allowed, id, &v.fields(), v.category != row.3).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("unit.edit", id).with_detail(format!("{} {}", v.credit_code, v.name)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `DELETE /units/{id}`: refused while the unit is linked to an organisation.
#[utoipa::path(delete, path = "/api/v1/units/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 409, body = crate::error::ErrorBody)))]
async fn delete_unit(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a unit that is linked to no organisation.
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let (row, linked, allowed) = load_for_write(db, actor, id).await?;
    if !linked.is_empty() {
        let names: Vec<&str> = linked.iter().map(|l| l.name.as_str()).collect();
        return Err(ApiError::conflict(
            "unit_linked",
            format!("单位已关联党组织“{}”，请先解除关联再删除", names.join("、")),
        ));
    }
    let mut tx = db.begin().await?;
    if !store::delete_unlinked(&mut tx, &allowed, id).await? {
        return Err(ApiError::conflict(
            "unit_linked",
            "单位已关联党组织，请先解除关联再删除",
        ));
    }
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("unit.delete", id).with_detail(format!("{} {}", row.2, row.1)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
