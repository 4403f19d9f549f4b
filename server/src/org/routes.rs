//! Organisation routes: thin handlers that parse, ask `access`, call the operations below and
//! render. Every change is one transaction with its audit record.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rules::{self, Category, Level, UnitMode};
use super::store::{self, NewOrg};
use super::{OrgNode, OrgRow, OrgView};
use crate::access::{self, Actor, Allowed, Reach};
use crate::audit::{self, Event, Who};
use crate::db::{new_id, today, Db, Tx};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Problems};
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, search_orgs))
        .routes(routes!(get_org, edit_org, delete_org))
        .routes(routes!(children))
        .routes(routes!(change_category))
        .routes(routes!(revoke_org))
        .routes(routes!(unlink_units))
}

/// Loads an organisation or answers 404.
pub async fn load(db: &Db, id: &str) -> ApiResult<OrgRow> {
    store::get(db.read(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("党组织"))
}

async fn load_in_tx(tx: &mut Tx, id: &str) -> ApiResult<OrgRow> {
    store::get(&mut **tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("党组织"))
}

fn must_be_active(org: &OrgRow) -> ApiResult<()> {
    if org.is_active() {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "org_revoked",
            format!("党组织“{}”已撤销，不能再办理新的业务", org.name),
        ))
    }
}

fn refusal(r: rules::Refusal) -> ApiError {
    ApiError::field(r.field, r.message)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgViewOptions {
    /// `1` shows the whole contact phone (audited)
    pub unmask: Option<String>,
}

/// `GET /orgs/{id}`: one organisation with its counts and units; the contact phone masked
/// unless `unmask=1`, which is audited.
#[utoipa::path(get, path = "/api/v1/orgs/{id}", params(("id" = String, Path), OrgViewOptions),
    responses((status = 200, body = OrgView), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
async fn get_org(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(opts): ApiQuery<OrgViewOptions>,
) -> ApiResult<Json<OrgView>> {
    let unmask = matches!(opts.unmask.as_deref(), Some("1") | Some("true"));
    Ok(Json(view(&state.db, &actor, &id, unmask).await?))
}

/// One organisation as its page shows it. The contact phone is personal information (SPEC
/// §13): masked, or whole with an `org.view_contact` audit record.
pub async fn view(db: &Db, actor: &Actor, id: &str, unmask: bool) -> ApiResult<OrgView> {
    let org = load(db, id).await?;
    access::org(actor, &org.code, Reach::Subtree)?;
    if !unmask {
        return Ok(store::view(db, org).await?);
    }
    audit_contact_shown(db, actor, &org, "unmasked").await?;
    Ok(store::view_unmasked(db, org).await?)
}

/// Records that the whole contact phone of `org` was shown (`why`: unmasked view, edit form).
pub async fn audit_contact_shown(db: &Db, actor: &Actor, org: &OrgRow, why: &str) -> ApiResult<()> {
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("org.view_contact", &org.id).with_detail(why.to_string()),
    )
    .await?;
    Ok(())
}

/// `GET /orgs/{id}/children`: one page of direct children, each with its counts.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/children", params(("id" = String, Path), Paging),
    responses((status = 200, body = Page<OrgNode>)))]
async fn children(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Page<OrgNode>> {
    let paging = Paging::check(paging.page, paging.per_page)?;
    let org = load(&state.db, &id).await?;
    access::org(&actor, &org.code, Reach::Subtree)?;
    let (items, total) =
        store::children(&state.db, &org.id, paging.per_page(), paging.offset()).await?;
    Ok(Page::new(items, total, &paging))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgSearch {
    /// part of the full or short name
    pub q: Option<String>,
}

/// `GET /orgs?q=`: organisations in the actor's scope whose name contains `q` (at most 50).
#[utoipa::path(get, path = "/api/v1/orgs", params(OrgSearch), responses((status = 200, body = Vec<OrgNode>)))]
async fn search_orgs(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(q): ApiQuery<OrgSearch>,
) -> ApiResult<Json<Vec<OrgNode>>> {
    access::business_read(&actor)?;
    let q = q.q.unwrap_or_default();
    Ok(Json(
        store::search(&state.db, &actor.org_code, q.trim(), 50).await?,
    ))
}

#[derive(Deserialize, ToSchema, Default)]
pub struct CreateOrg {
    pub parent_id: Option<String>,
    /// 党组织全称
    pub name: Option<String>,
    /// 简称
    pub short_name: Option<String>,
    /// 组织类别: 1, 2, 3, 4, 5, 611, 621, 631, 632, 9
    #[serde(default, deserialize_with = "fields::string_or_number")]
    #[schema(value_type = Option<String>)]
    pub category: Option<String>,
    /// for category 1: county, city, province, central
    pub level: Option<String>,
    /// 书记
    pub secretary: Option<String>,
    /// 联系人
    pub contact_name: Option<String>,
    /// 联系电话
    pub contact_phone: Option<String>,
    /// 隶属关系
    pub subordination: Option<String>,
    /// same_as_parent | legal_entity | joint
    pub unit_mode: Option<String>,
    pub unit_ids: Option<Vec<String>>,
    pub default_unit_id: Option<String>,
    /// 批准建立日期
    pub founded_on: Option<String>,
    /// 具有发展党员审批权限
    pub may_approve_development: Option<bool>,
}

fn parse_category(value: Option<&str>) -> ApiResult<Category> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(ApiError::field("category", "请选择组织类别"));
    }
    Category::parse(v).ok_or_else(|| ApiError::field("category", format!("组织类别“{v}”不存在")))
}

fn parse_level(category: Category, value: Option<&str>) -> ApiResult<Option<Level>> {
    let v = value.map(str::trim).unwrap_or("");
    if category != Category::Committee {
        return Ok(None);
    }
    if v.is_empty() {
        return Err(ApiError::field(
            "level",
            "中共各级委员会须选择级别（中央、省、市、县）",
        ));
    }
    Level::parse(v)
        .map(Some)
        .ok_or_else(|| ApiError::field("level", format!("级别“{v}”不存在，应为中央、省、市或县")))
}

/// 批准建立日期: required, not after today.
fn founded_on(value: Option<&str>) -> ApiResult<chrono::NaiveDate> {
    let d = fields::optional_date("founded_on", "批准建立日期", value)?
        .ok_or_else(|| ApiError::field("founded_on", "请填写批准建立日期"))?;
    fields::not_future("founded_on", "批准建立日期", d, today())
}

/// 党组织隶属关系: a code of the list (absent is allowed for organisations recorded before the
/// list, and kept as empty text).
fn parse_subordination(value: Option<&str>) -> ApiResult<String> {
    let v = fields::optional_text("subordination", "隶属关系", value, 50)?;
    if v.is_empty() {
        return Ok(v);
    }
    rules::subordination_code(&v)
        .map(str::to_string)
        .ok_or_else(|| ApiError::field("subordination", format!("隶属关系“{v}”不在代码表中")))
}

fn parse_unit_mode(value: Option<&str>) -> ApiResult<Option<UnitMode>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => UnitMode::parse(v).map(Some).ok_or_else(|| {
            ApiError::field(
                "unit_mode",
                "所在单位情况应为 same_as_parent、legal_entity 或 joint",
            )
        }),
    }
}

/// Checks that every unit exists, is in the actor's scope and is not linked to another
/// organisation. Returns the proof that the actor may link them.
async fn check_units_linkable(
    tx: &mut Tx,
    actor: &Actor,
    org_id: Option<&str>,
    unit_ids: &[String],
) -> ApiResult<()> {
    for unit_id in unit_ids {
        let unit: Option<(String, String)> =
            sqlx::query_as("SELECT name, owner_code FROM units WHERE id = $1")
                .bind(unit_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((name, owner_code)) = unit else {
            return Err(ApiError::field(
                "unit_ids",
                format!("单位 {unit_id} 不存在"),
            ));
        };
        let linked: Option<(String, String, String)> = sqlx::query_as(
            "SELECT o.id, o.name, o.code FROM org_units ou JOIN orgs o ON o.id = ou.org_id WHERE ou.unit_id = $1",
        )
        .bind(unit_id)
        .fetch_optional(&mut **tx)
        .await?;
        // Linking is writing the unit: only its keeper's admins (or above) may.
        let linked_codes: Vec<&str> = linked.iter().map(|l| l.2.as_str()).collect();
        if access::unit_write(actor, &owner_code, &linked_codes).is_err() {
            return Err(ApiError::field(
                "unit_ids",
                format!("单位“{name}”不在您的管理范围内"),
            ));
        }
        if let Some((other_id, other_name, _)) = linked {
            if Some(other_id.as_str()) != org_id {
                return Err(ApiError::conflict(
                    "unit_linked",
                    format!("单位“{name}”已关联党组织“{other_name}”"),
                )
                .with_field("unit_ids"));
            }
        }
    }
    Ok(())
}

/// `POST /orgs`: create under a parent in scope; the unified code is assigned here.
#[utoipa::path(post, path = "/api/v1/orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgView), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<OrgView>)> {
    let id = create_under(&state.db, &actor, &req).await?;
    let org = load(&state.db, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(store::view(&state.db, org).await?),
    ))
}

/// Creates an organisation below `req.parent_id`, which must be in the actor's scope.
pub async fn create_under(db: &Db, actor: &Actor, req: &CreateOrg) -> ApiResult<String> {
    access::business_read(actor)?;
    let parent_id = fields::required_text("parent_id", "上级党组织", req.parent_id.as_deref(), 64)?;
    let parent = store::get(db.read(), &parent_id)
        .await?
        .ok_or_else(|| ApiError::field("parent_id", "上级党组织不存在"))?;
    let allowed = access::org(actor, &parent.code, Reach::Subtree)?;
    create(db, actor, allowed, &parent, req).await
}

/// Validates and inserts a new organisation below `parent`; returns its id.
pub async fn create(
    db: &Db,
    actor: &Actor,
    allowed: Allowed,
    parent: &OrgRow,
    req: &CreateOrg,
) -> ApiResult<String> {
    must_be_active(parent)?;
    let parent_category = parent
        .category()
        .ok_or_else(|| ApiError::internal("parent with unknown category"))?;
    // Every field at fault is reported at once; rules that depend on a field at fault wait.
    let mut p = Problems::default();
    let category = p.take(parse_category(req.category.as_deref()));
    let level = category.and_then(|c| p.take(parse_level(c, req.level.as_deref())));
    if let (Some(category), Some(level)) = (category, level) {
        p.take(
            rules::may_contain(parent_category, parent.level(), category, level).map_err(refusal),
        );
    }
    let name = p.take(fields::required_text(
        "name",
        "党组织全称",
        req.name.as_deref(),
        100,
    ));
    let short_name = p.take(fields::optional_text(
        "short_name",
        "简称",
        req.short_name.as_deref(),
        50,
    ));
    let secretary = p.take(fields::required_text(
        "secretary",
        "书记",
        req.secretary.as_deref(),
        30,
    ));
    let contact_name = p.take(fields::required_text(
        "contact_name",
        "联系人",
        req.contact_name.as_deref(),
        30,
    ));
    let contact_phone = p.take(fields::phone(
        "contact_phone",
        "联系电话",
        req.contact_phone.as_deref(),
    ));
    let subordination = p.take(parse_subordination(req.subordination.as_deref()));
    let founded_on = p.take(founded_on(req.founded_on.as_deref()));
    let unit_mode = p.take(parse_unit_mode(req.unit_mode.as_deref()));
    let linkage = match (category, unit_mode) {
        (Some(category), Some(unit_mode)) => p.take(
            rules::check_linkage(
                category,
                unit_mode,
                req.unit_ids.as_deref().unwrap_or(&[]),
                req.default_unit_id.as_deref(),
                parent.has_legal_entity_unit(),
            )
            .map_err(refusal),
        ),
        _ => None,
    };
    let may_approve = req.may_approve_development.unwrap_or(false);
    if may_approve && category.is_some_and(|c| c != Category::BasicCommittee) {
        p.add(
            "may_approve_development",
            "只有党委（611）可以具有发展党员审批权限",
        );
    }
    p.finish()?;
    let (
        Some(category),
        Some(level),
        Some(name),
        Some(short_name),
        Some(secretary),
        Some(contact_name),
        Some(contact_phone),
        Some(subordination),
        Some(founded_on),
        Some(linkage),
    ) = (
        category,
        level,
        name,
        short_name,
        secretary,
        contact_name,
        contact_phone,
        subordination,
        founded_on,
        linkage,
    )
    else {
        return Err(fields::unset());
    };
    if may_approve {
        // The new organisation lies strictly below the actor (its parent is in scope).
        access::approval_authority_for_new_child(actor, &parent.code)?;
    }
    let mut tx = db.begin().await?;
    let duplicate: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE parent_id = $1 AND name = $2")
            .bind(&parent.id)
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
    if duplicate > 0 {
        return Err(ApiError::conflict_field(
            "name",
            "同一上级党组织下已有同名党组织",
        ));
    }
    check_units_linkable(&mut tx, actor, None, &linkage.unit_ids).await?;
    let id = new_id();
    let code = store::next_child_code(&mut tx, &allowed, &parent.id, &parent.code).await?;
    let new = NewOrg {
        name,
        short_name,
        category: category.code().to_string(),
        level: level.map(|l| l.as_str().to_string()),
        secretary,
        contact_name,
        contact_phone,
        subordination,
        founded_on: Some(founded_on.to_string()),
        unit_mode: linkage.mode.map(|m| m.as_str().to_string()),
        work_category: None,
        may_approve_development: may_approve,
    };
    store::insert(&mut tx, &allowed, &id, &code, Some(&parent.id), &new).await?;
    let work_category = match linkage.mode {
        Some(UnitMode::SameAsParent) => parent.work_category.clone(),
        Some(_) => store::relink_units(&mut tx, &allowed, &id, &linkage).await?,
        None => None,
    };
    store::set_work_category(&mut tx, &allowed, &id, work_category).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.create", &id).with_detail(format!(
            "{} {} {}",
            code,
            category.code(),
            new.name
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(Deserialize, ToSchema, Default)]
pub struct EditOrg {
    /// a new full name is a rename 更名: only for organisations strictly below your own
    pub name: Option<String>,
    pub short_name: Option<String>,
    pub secretary: Option<String>,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub subordination: Option<String>,
    pub founded_on: Option<String>,
    pub may_approve_development: Option<bool>,
    /// with unit_ids and default_unit_id: replaces the unit links
    pub unit_mode: Option<String>,
    pub unit_ids: Option<Vec<String>>,
    pub default_unit_id: Option<String>,
}

/// `PATCH /orgs/{id}`: edit; a changed `name` is a rename.
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", params(("id" = String, Path)), request_body = EditOrg,
    responses((status = 200, body = OrgView), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn edit_org(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EditOrg>,
) -> ApiResult<Json<OrgView>> {
    edit(&state.db, &actor, &id, &req).await?;
    let org = load(&state.db, &id).await?;
    Ok(Json(store::view(&state.db, org).await?))
}

/// Edits an organisation; a changed name is a rename (only strictly below the actor).
pub async fn edit(db: &Db, actor: &Actor, id: &str, req: &EditOrg) -> ApiResult<()> {
    let org = load(db, id).await?;
    let allowed = access::org(actor, &org.code, Reach::Subtree)?;
    must_be_active(&org)?;
    // Every field at fault is reported at once, before anything is looked up.
    let pick = |v: Option<&String>, current: &str| {
        v.map(|s| s.to_string())
            .unwrap_or_else(|| current.to_string())
    };
    let mut p = Problems::default();
    let new_name = req
        .name
        .as_deref()
        .and_then(|n| p.take(fields::required_text("name", "党组织全称", Some(n), 100)));
    let short_name = p.take(fields::optional_text(
        "short_name",
        "简称",
        Some(&pick(req.short_name.as_ref(), &org.short_name)),
        50,
    ));
    // Records from before 书记 was required keep an empty one until someone fills it in.
    let secretary = match req.secretary.as_deref() {
        Some(v) => p.take(fields::required_text("secretary", "书记", Some(v), 30)),
        None => Some(org.secretary.clone()),
    };
    let contact_name = p.take(fields::required_text(
        "contact_name",
        "联系人",
        Some(&pick(req.contact_name.as_ref(), &org.contact_name)),
        30,
    ));
    let contact_phone = p.take(fields::phone(
        "contact_phone",
        "联系电话",
        Some(&pick(req.contact_phone.as_ref(), &org.contact_phone)),
    ));
    // A 隶属关系 from before the code list stays as it was until it is changed.
    let subordination = match req.subordination.as_deref() {
        Some(v) if v.trim() != org.subordination => p.take(parse_subordination(Some(v))),
        _ => Some(org.subordination.clone()),
    };
    let founded_on = match req.founded_on.as_deref() {
        Some(v) => p.take(founded_on(Some(v))).map(|d| Some(d.to_string())),
        None => Some(org.founded_on.clone()),
    };
    if req.may_approve_development == Some(true)
        && org.may_approve_development == 0
        && org.category() != Some(Category::BasicCommittee)
    {
        p.add(
            "may_approve_development",
            "只有党委（611）可以具有发展党员审批权限",
        );
    }
    let unit_mode_parsed = p.take(parse_unit_mode(req.unit_mode.as_deref()));
    p.finish()?;
    let (
        Some(short_name),
        Some(secretary),
        Some(contact_name),
        Some(contact_phone),
        Some(subordination),
        Some(founded_on),
        Some(unit_mode_parsed),
    ) = (
        short_name,
        secretary,
        contact_name,
        contact_phone,
        subordination,
        founded_on,
        unit_mode_parsed,
    )
    else {
        return Err(fields::unset());
    };
    let mut tx = db.begin().await?;
    let org = load_in_tx(&mut tx, id).await?;
    let mut changes = Vec::new();
    let mut name = org.name.clone();
    if let Some(new_name) = new_name {
        if new_name != org.name {
            access::org(actor, &org.code, Reach::StrictlyBelow).map_err(|_| {
                ApiError::forbidden("不能修改本级党组织的名称，只能为下级党组织更名")
            })?;
            let duplicate: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM orgs WHERE parent_id = $1 AND name = $2 AND id <> $3",
            )
            .bind(org.parent_id.clone())
            .bind(&new_name)
            .bind(&org.id)
            .fetch_one(&mut *tx)
            .await?;
            if duplicate > 0 {
                return Err(ApiError::conflict_field(
                    "name",
                    "同一上级党组织下已有同名党组织",
                ));
            }
            changes.push(format!("更名：{} → {}", org.name, new_name));
            name = new_name;
        }
    }
    let mut may_approve = org.may_approve_development != 0;
    // The proof that a tier-1 admin gave approval authority: it alone may raise tiers.
    let mut raise = None;
    if let Some(v) = req.may_approve_development {
        if v != may_approve {
            let authority = access::grant_approval_authority(actor, &org.code)?;
            if v {
                raise = Some(authority);
            }
            changes.push(format!(
                "具有发展党员审批权限：{}",
                if v { "是" } else { "否" }
            ));
            may_approve = v;
        }
    }
    let mut work_category = org.work_category.clone();
    let mut unit_mode = org.unit_mode.clone();
    if req.unit_mode.is_some() || req.unit_ids.is_some() {
        let category = org
            .category()
            .ok_or_else(|| ApiError::internal("unknown category"))?;
        let parent_has_unit = match &org.parent_id {
            Some(p) => load_in_tx(&mut tx, p).await?.has_legal_entity_unit(),
            None => false,
        };
        let linkage = rules::check_linkage(
            category,
            unit_mode_parsed,
            req.unit_ids.as_deref().unwrap_or(&[]),
            req.default_unit_id.as_deref(),
            parent_has_unit,
        )
        .map_err(refusal)?;
        check_units_linkable(&mut tx, actor, Some(&org.id), &linkage.unit_ids).await?;
        work_category = match linkage.mode {
            Some(UnitMode::SameAsParent) => {
                store::unlink_all(&mut tx, &allowed, &org.id).await?;
                match &org.parent_id {
                    Some(p) => load_in_tx(&mut tx, p).await?.work_category,
                    None => None,
                }
            }
            _ => store::relink_units(&mut tx, &allowed, &org.id, &linkage).await?,
        };
        unit_mode = linkage.mode.map(|m| m.as_str().to_string());
        changes.push("调整关联单位".to_string());
    }
    let renamed = name != org.name;
    store::update(
        &mut tx,
        &allowed,
        &org.id,
        &store::OrgUpdate {
            name,
            short_name,
            secretary,
            contact_name,
            contact_phone,
            subordination,
            founded_on,
            may_approve_development: may_approve,
            unit_mode,
            work_category,
        },
    )
    .await?;
    let action = if renamed { "org.rename" } else { "org.edit" };
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok(action, &org.id).with_detail(changes.join("；")),
    )
    .await?;
    let category = org.category.as_str();
    let old_max = access::tier_for_org(category, org.may_approve_development != 0);
    let new_max = access::tier_for_org(category, may_approve);
    retier(
        &mut tx,
        actor,
        &allowed,
        &org,
        old_max,
        new_max,
        raise.as_ref(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Re-tiers the admin grants on `org` after its category or approval authority changed
/// (SPEC §1: the tier follows the organisation) and audits each changed grant in `tx`.
async fn retier(
    tx: &mut Tx,
    actor: &Actor,
    allowed: &Allowed,
    org: &OrgRow,
    old_max: u8,
    new_max: u8,
    raise: Option<&Allowed>,
) -> ApiResult<()> {
    if old_max == new_max {
        return Ok(());
    }
    let changed = store::retier_grants(tx, allowed, &org.id, old_max, new_max, raise).await?;
    for g in &changed {
        audit::append(
            tx,
            &Who::from(actor),
            Event::ok("grant.retier", &g.grant_id).with_detail(format!(
                "tier {} → {}: {} {}; password sessions ended: {}",
                g.from, g.to, org.code, org.name, g.sessions_ended
            )),
        )
        .await?;
    }
    Ok(())
}

#[derive(Deserialize, ToSchema, Default)]
pub struct ChangeCategory {
    #[serde(default, deserialize_with = "fields::string_or_number")]
    #[schema(value_type = Option<String>)]
    pub category: Option<String>,
    pub level: Option<String>,
    /// required when a committee becomes a basic organisation, or for a joint branch
    pub unit_mode: Option<String>,
    pub unit_ids: Option<Vec<String>>,
    pub default_unit_id: Option<String>,
}

/// `POST /orgs/{id}/category`: change the category under the rank rules. From basic (6xx/9) to
/// committee (1-5) unlinks the units and clears the party-work information; the reverse needs
/// a unit.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/category", params(("id" = String, Path)), request_body = ChangeCategory,
    responses((status = 200, body = OrgView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn change_category(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChangeCategory>,
) -> ApiResult<Json<OrgView>> {
    change_category_of(&state.db, &actor, &id, &req).await?;
    let org = load(&state.db, &id).await?;
    Ok(Json(store::view(&state.db, org).await?))
}

/// Changes the category of an organisation under the rank rules.
pub async fn change_category_of(
    db: &Db,
    actor: &Actor,
    id: &str,
    req: &ChangeCategory,
) -> ApiResult<()> {
    let org = load(db, id).await?;
    let allowed = access::org(actor, &org.code, Reach::StrictlyBelow)?;
    must_be_active(&org)?;
    let category = parse_category(req.category.as_deref())?;
    let level = parse_level(category, req.level.as_deref())?;
    let old = org
        .category()
        .ok_or_else(|| ApiError::internal("unknown category"))?;
    let mut tx = db.begin().await?;
    let parent = match &org.parent_id {
        Some(p) => load_in_tx(&mut tx, p).await?,
        None => return Err(ApiError::forbidden("根党组织的类别不能修改")),
    };
    let parent_category = parent
        .category()
        .ok_or_else(|| ApiError::internal("unknown category"))?;
    rules::may_contain(parent_category, parent.level(), category, level).map_err(refusal)?;
    let kids: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT name, category, level FROM orgs WHERE parent_id = $1 AND status = 'active'",
    )
    .bind(&org.id)
    .fetch_all(&mut *tx)
    .await?;
    for (kid_name, kid_category, kid_level) in &kids {
        let Some(kc) = Category::parse(kid_category) else {
            continue;
        };
        let kl = kid_level.as_deref().and_then(Level::parse);
        if rules::may_contain(category, level, kc, kl).is_err() {
            return Err(ApiError::field(
                "category",
                format!(
                    "下级党组织“{kid_name}”（{}）不能隶属于{}，不能修改为该类别",
                    kc.label(),
                    category.label()
                ),
            ));
        }
    }
    if !category.is_branch() {
        let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE branch_id = $1")
            .bind(&org.id)
            .fetch_one(&mut *tx)
            .await?;
        if members > 0 {
            return Err(ApiError::conflict(
                "org_has_members",
                format!(
                    "该党组织有{members}名党员，党员只能隶属于党支部类组织，不能修改为{}",
                    category.label()
                ),
            ));
        }
    }
    let relink = req.unit_mode.is_some()
        || req.unit_ids.is_some()
        || (category.is_basic() && !old.is_basic())
        || ((category == Category::JointBranch) != (org.unit_mode.as_deref() == Some("joint"))
            && category.is_basic());
    let (unit_mode, work_category) = if !category.is_basic() && req.unit_mode.is_none() {
        // Basic → committee: units are unlinked and the party-work information cleared.
        store::unlink_all(&mut tx, &allowed, &org.id).await?;
        (None, None)
    } else if relink {
        let linkage = rules::check_linkage(
            category,
            parse_unit_mode(req.unit_mode.as_deref())?,
            req.unit_ids.as_deref().unwrap_or(&[]),
            req.default_unit_id.as_deref(),
            parent.has_legal_entity_unit(),
        )
        .map_err(refusal)?;
        check_units_linkable(&mut tx, actor, Some(&org.id), &linkage.unit_ids).await?;
        let wc = match linkage.mode {
            Some(UnitMode::SameAsParent) => {
                store::unlink_all(&mut tx, &allowed, &org.id).await?;
                parent.work_category.clone()
            }
            Some(_) => store::relink_units(&mut tx, &allowed, &org.id, &linkage).await?,
            None => None,
        };
        (linkage.mode.map(|m| m.as_str().to_string()), wc)
    } else {
        (org.unit_mode.clone(), org.work_category.clone())
    };
    let may_approve = category == Category::BasicCommittee && org.may_approve_development != 0;
    store::set_category(
        &mut tx,
        &allowed,
        &org.id,
        &store::CategoryUpdate {
            category: category.code().to_string(),
            level: level.map(|l| l.as_str().to_string()),
            unit_mode,
            work_category,
            may_approve_development: may_approve,
        },
    )
    .await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.change_category", &org.id).with_detail(format!(
            "{} → {}",
            old.code(),
            category.code()
        )),
    )
    .await?;
    // A category change never raises a tier: only an explicit grant of approval authority does.
    let old_max = access::tier_for_org(old.code(), org.may_approve_development != 0);
    let new_max = access::tier_for_org(category.code(), may_approve);
    retier(&mut tx, actor, &allowed, &org, old_max, new_max, None).await?;
    tx.commit().await?;
    Ok(())
}

fn blocked(verb: &str, blockers: &[String]) -> ApiError {
    ApiError::conflict(
        "org_not_empty",
        format!("不能{verb}：该党组织还有{}", blockers.join("、")),
    )
}

/// `DELETE /orgs/{id}`: physical deletion of an organisation created by mistake.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn delete_org(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an organisation created by mistake.
pub async fn delete(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let org = load(db, id).await?;
    let allowed = access::org(actor, &org.code, Reach::StrictlyBelow)?;
    let mut tx = db.begin().await?;
    let org = load_in_tx(&mut tx, id).await?;
    let blockers = store::blockers(&mut tx, &org, true).await?;
    if !blockers.is_empty() {
        return Err(blocked("删除", &blockers));
    }
    store::delete(&mut tx, &allowed, &org.id).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.delete", &org.id).with_detail(format!("{} {}", org.code, org.name)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, ToSchema, Default)]
pub struct RevokeOrg {
    /// 撤销文号
    pub document_no: Option<String>,
    /// 撤销原因
    pub reason: Option<String>,
}

/// `POST /orgs/{id}/revoke`: 撤销, keeping the history.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/revoke", params(("id" = String, Path)), request_body = RevokeOrg,
    responses((status = 200, body = OrgView), (status = 409, body = crate::error::ErrorBody)))]
async fn revoke_org(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RevokeOrg>,
) -> ApiResult<Json<OrgView>> {
    revoke(&state.db, &actor, &id, &req).await?;
    let org = load(&state.db, &id).await?;
    Ok(Json(store::view(&state.db, org).await?))
}

/// Revokes an organisation (撤销), keeping its history.
pub async fn revoke(db: &Db, actor: &Actor, id: &str, req: &RevokeOrg) -> ApiResult<()> {
    let org = load(db, id).await?;
    let allowed = access::org(actor, &org.code, Reach::StrictlyBelow)?;
    must_be_active(&org)?;
    let mut p = Problems::default();
    let document_no = p.take(fields::required_text(
        "document_no",
        "撤销文号",
        req.document_no.as_deref(),
        100,
    ));
    let reason = p.take(fields::required_text(
        "reason",
        "撤销原因",
        req.reason.as_deref(),
        500,
    ));
    p.finish()?;
    let (Some(document_no), Some(reason)) = (document_no, reason) else {
        return Err(fields::unset());
    };
    let mut tx = db.begin().await?;
    let org = load_in_tx(&mut tx, id).await?;
    let blockers = store::blockers(&mut tx, &org, false).await?;
    if !blockers.is_empty() {
        return Err(blocked("撤销", &blockers));
    }
    store::revoke(&mut tx, &allowed, &org.id, &document_no, &reason).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.revoke", &org.id).with_detail(format!("{document_no} {reason}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /orgs/{id}/unlink-units`: removes every unit link (both records stay), e.g. before
/// deleting an organisation created by mistake.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/unlink-units", params(("id" = String, Path)),
    responses((status = 200, body = OrgView)))]
async fn unlink_units(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<OrgView>> {
    unlink(&state.db, &actor, &id).await?;
    let org = load(&state.db, &id).await?;
    Ok(Json(store::view(&state.db, org).await?))
}

/// Removes every unit link of an organisation.
pub async fn unlink(db: &Db, actor: &Actor, id: &str) -> ApiResult<()> {
    let org = load(db, id).await?;
    let allowed = access::org(actor, &org.code, Reach::StrictlyBelow)?;
    must_be_active(&org)?;
    let mut tx = db.begin().await?;
    let n = store::unlink_all(&mut tx, &allowed, &org.id).await?;
    store::clear_unit_mode(&mut tx, &allowed, &org.id).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("org.unlink_units", &org.id).with_detail(format!("{n}")),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
