//! Member routes: direct entry, edit, view (audited), list per organisation with 包含下级.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::rules::{self, MemberInput, ValidMember, LETTER_FIELDS};
use super::sort_keys::Derived;
use super::{MemberRow, MemberView, MEMBER_COLUMNS};
use crate::access::{self, Actor, Allowed, Reach};
use crate::audit::{self, Event, Who};
use crate::collate::NameOrder;
use crate::crypto::{self, Column};
use crate::db::{flag, new_id, now_rfc3339, subtree_upper, today, Db, Sql, Tx};
use crate::error::{ApiError, ApiResult};
use crate::org::{rules::Category, OrgRow};
use crate::state::{ApiJson, ApiQuery, AppState, Page, Paging};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_member))
        .routes(routes!(get_member, edit_member))
        .routes(routes!(org_members))
}

pub(crate) async fn load(db: &Db, id: &str) -> ApiResult<(MemberRow, String)> {
    let row: Option<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members m WHERE m.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.read())
    .await?;
    let row = row
        .ok_or_else(|| ApiError::not_found("党员"))?
        .decrypted()?;
    let branch_name: String = sqlx::query_scalar("SELECT name FROM orgs WHERE id = $1")
        .bind(&row.branch_id)
        .fetch_one(db.read())
        .await?;
    Ok((row, branch_name))
}

/// The branch a member is entered into: must exist, be in scope, be active and be a
/// branch-type organisation (631/632/9).
pub(crate) async fn branch_for_entry(
    db: &Db,
    actor: &Actor,
    branch_id: Option<&str>,
) -> ApiResult<(OrgRow, Allowed)> {
    let id = branch_id.map(str::trim).unwrap_or("");
    if id.is_empty() {
        return Err(ApiError::field("branch_id", "请选择所在党支部"));
    }
    let org = crate::org::store::get(db.read(), id)
        .await?
        .ok_or_else(|| ApiError::field("branch_id", "所在党支部不存在"))?;
    let allowed = access::org(actor, &org.code, Reach::Subtree)?;
    if !org.category().is_some_and(Category::is_branch) {
        return Err(ApiError::field(
            "branch_id",
            format!(
                "“{}”不是党支部，党员只能隶属于党支部、联合党支部或临时基层党组织",
                org.name
            ),
        ));
    }
    if !org.is_active() {
        return Err(ApiError::conflict(
            "org_revoked",
            format!("党组织“{}”已撤销，不能录入党员", org.name),
        ));
    }
    Ok((org, allowed))
}

/// Uniqueness of the ID number and the registered phone, through their blind indexes (the
/// unique indexes back this up under concurrency).
pub(crate) async fn ensure_unique(tx: &mut Tx, v: &ValidMember, except: &str) -> ApiResult<()> {
    if v.id_number != super::idcard::UNKNOWN_ID_NUMBER {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM members WHERE id_number_idx = $1 AND id <> $2",
        )
        .bind(crypto::index(Column::MembersIdNumber, &v.id_number))
        .bind(except)
        .fetch_one(&mut **tx)
        .await?;
        if n > 0 {
            return Err(ApiError::conflict_field(
                "id_number",
                "该公民身份证号已存在于党员信息库中",
            ));
        }
    }
    if let Some(p) = &v.registered_phone {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM members WHERE registered_phone_idx = $1 AND id <> $2",
        )
        .bind(crypto::index(Column::MembersRegisteredPhone, p))
        .bind(except)
        .fetch_one(&mut **tx)
        .await?;
        if n > 0 {
            return Err(ApiError::conflict_field(
                "registered_phone",
                "该注册手机号已被其他党员使用",
            ));
        }
        // A member in history keeps the number until it is cancelled 注销手机号 (SPEC §4).
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM member_history WHERE registered_phone_idx = $1 AND id <> $2 \
             AND recovered_at IS NULL",
        )
        .bind(crypto::index(Column::MembersRegisteredPhone, p))
        .bind(except)
        .fetch_one(&mut **tx)
        .await?;
        if held > 0 {
            return Err(ApiError::conflict_field(
                "registered_phone",
                "该注册手机号仍登记在历史党员名下，须先注销手机号",
            ));
        }
    }
    Ok(())
}

/// Writes a validated member (insert or full update) inside `tx`, sealing the ID number and
/// phones and storing their blind indexes.
pub(crate) async fn write(
    tx: &mut Tx,
    id: &str,
    branch: &OrgRow,
    v: &ValidMember,
    insert: bool,
    _allowed: &Allowed,
) -> Result<(), sqlx::Error> {
    let sql = if insert {
        "INSERT INTO members (name, id_number, sex, ethnicity, birth_date, education, category, branch_id, org_code, \
         joined_on, full_on, job, phone, address, status, lost_contact, lost_contact_on, floating, floating_to, \
         registered_phone, origin, title, new_social_stratum, completeness, updated_at, id, created_at, \
         id_number_idx, registered_phone_idx, sort_pinyin, sort_strokes, id_suffix_idx, id_region, id_birth) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23, $24, $25, $26, $25, $27, $28, $29, $30, $31, $32, $33)"
    } else {
        "UPDATE members SET name = $1, id_number = $2, sex = $3, ethnicity = $4, birth_date = $5, education = $6, \
         category = $7, branch_id = $8, org_code = $9, joined_on = $10, full_on = $11, job = $12, phone = $13, \
         address = $14, status = $15, lost_contact = $16, lost_contact_on = $17, floating = $18, floating_to = $19, \
         registered_phone = $20, origin = $21, title = $22, new_social_stratum = $23, completeness = $24, \
         updated_at = $25, id_number_idx = $27, registered_phone_idx = $28, sort_pinyin = $29, \
         sort_strokes = $30, id_suffix_idx = $31, id_region = $32, id_birth = $33 WHERE id = $26"
    };
    let keys = crypto::keys();
    // Sort keys of the name and the suffix index go with every write of the name and number.
    let derived = Derived::of(&keys, &v.name, &v.id_number);
    sqlx::query(sql)
        .bind(&v.name)
        .bind(keys.seal(Column::MembersIdNumber, &v.id_number))
        .bind(&v.sex)
        .bind(&v.ethnicity)
        .bind(v.birth_date.to_string())
        .bind(&v.education)
        .bind(&v.category)
        .bind(&branch.id)
        .bind(&branch.code)
        .bind(v.joined_on.to_string())
        .bind(v.full_on.map(|d| d.to_string()))
        .bind(&v.job)
        .bind(keys.seal(Column::MembersPhone, &v.phone))
        .bind(&v.address)
        .bind(&v.status)
        .bind(flag(v.lost_contact))
        .bind(v.lost_contact_on.map(|d| d.to_string()))
        .bind(flag(v.floating))
        .bind(v.floating_to.clone())
        .bind(
            v.registered_phone
                .as_deref()
                .map(|p| keys.seal(Column::MembersRegisteredPhone, p)),
        )
        .bind(&v.origin)
        .bind(&v.title)
        .bind(&v.new_social_stratum)
        .bind(v.completeness)
        .bind(now_rfc3339())
        .bind(id)
        .bind(keys.id_number_index(Column::MembersIdNumber, &v.id_number))
        .bind(
            v.registered_phone
                .as_deref()
                .map(|p| keys.index(Column::MembersRegisteredPhone, p)),
        )
        .bind(derived.sort_pinyin)
        .bind(derived.sort_strokes)
        .bind(derived.id_suffix_idx)
        .bind(derived.id_region)
        .bind(derived.id_birth)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `POST /members`: direct entry 直接录入 into a branch in scope.
#[utoipa::path(post, path = "/api/v1/members", request_body = MemberInput,
    responses((status = 201, body = MemberView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn create_member(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<MemberInput>,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let id = create_checked(&state, &actor, &req).await?;
    let (row, branch_name) = load(&state.db, &id).await?;
    Ok((StatusCode::CREATED, Json(row.view(branch_name, false))))
}

/// The refusal of an entry whose name and ID number the real-name source does not confirm
/// (SPEC §9): the member enters only through a real-name filing 实名认证备案.
pub fn realname_mismatch() -> ApiError {
    ApiError::conflict(
        "realname_mismatch",
        "姓名与公民身份证号未通过实名认证。请核对姓名和公民身份证号；确认无误的，请在“新增类型”中选择“实名认证备案”，上传本人签字的党员信息采集表后提交，经县级党委组织部门备案后入库",
    )
}

/// Checks a person about to enter the living database against the real-name source, after
/// the field rules (which name every field at fault first). No source configured: nothing to
/// check (实名未核验); a source that cannot answer refuses (503), never a silent pass.
pub async fn realname_gate(state: &AppState, actor: &Actor, req: &MemberInput) -> ApiResult<()> {
    access::business_read(actor)?;
    let v = rules::validate(req, today())?;
    match crate::realname::check(state, &v.id_number, &v.name).await? {
        None | Some(crate::realname::Verdict::Match) => Ok(()),
        Some(crate::realname::Verdict::Mismatch) => Err(realname_mismatch()),
    }
}

/// Direct entry with the real-name check first (the API and the entry page).
pub async fn create_checked(
    state: &AppState,
    actor: &Actor,
    req: &MemberInput,
) -> ApiResult<String> {
    access::business_read(actor)?;
    branch_for_entry(&state.db, actor, req.branch_id.as_deref()).await?;
    realname_gate(state, actor, req).await?;
    create(&state.db, actor, req).await
}

/// Direct entry: validates every field rule and inserts the member; returns its id.
pub async fn create(db: &Db, actor: &Actor, req: &MemberInput) -> ApiResult<String> {
    access::business_read(actor)?;
    let (branch, allowed) = branch_for_entry(db, actor, req.branch_id.as_deref()).await?;
    let v = rules::validate(req, today())?;
    let id = new_id();
    let mut tx = db.begin().await?;
    ensure_unique(&mut tx, &v, "").await?;
    write(&mut tx, &id, &branch, &v, true, &allowed).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member.create", &id).with_detail(format!(
            "{} {}",
            v.name,
            super::idcard::mask(&v.id_number)
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Sets a member's name (and the sort keys that go with it) inside `tx`: a rename that the
/// real-name source confirmed, or one approved after review.
pub(crate) async fn set_name(
    tx: &mut Tx,
    id: &str,
    name: &str,
    _allowed: &Allowed,
) -> ApiResult<()> {
    let sealed: Option<String> = sqlx::query_scalar("SELECT id_number FROM members WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let sealed = sealed.ok_or_else(|| ApiError::not_found("党员"))?;
    let keys = crypto::keys();
    let id_number = keys.open(Column::MembersIdNumber, &sealed)?;
    let derived = Derived::of(&keys, name, &id_number);
    sqlx::query(
        "UPDATE members SET name = $1, sort_pinyin = $2, sort_strokes = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(name)
    .bind(derived.sort_pinyin)
    .bind(derived.sort_strokes)
    .bind(now_rfc3339())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewOptions {
    /// `1` shows the full ID number and phones (audited)
    pub unmask: Option<String>,
}

/// `GET /members/{id}`: one record 档案查询, audited.
#[utoipa::path(get, path = "/api/v1/members/{id}", params(("id" = String, Path), ViewOptions),
    responses((status = 200, body = MemberView), (status = 404, body = crate::error::ErrorBody)))]
async fn get_member(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(opts): ApiQuery<ViewOptions>,
) -> ApiResult<Json<MemberView>> {
    let unmask = matches!(opts.unmask.as_deref(), Some("1") | Some("true"));
    Ok(Json(view(&state.db, &actor, &id, unmask).await?))
}

/// One member record 档案查询, audited; unmasked only when asked.
pub async fn view(db: &Db, actor: &Actor, id: &str, unmask: bool) -> ApiResult<MemberView> {
    access::business_read(actor)?;
    let (row, branch_name) = load(db, id).await?;
    access::member(actor, &row.org_code)?;
    audit::append_alone(
        db,
        &Who::from(actor),
        Event::ok("member.view", &row.id).with_detail(if unmask { "unmasked" } else { "masked" }),
    )
    .await?;
    Ok(row.view(branch_name, unmask))
}

/// `PATCH /members/{id}`: edit; every rule is checked again on the merged record. The ID number
/// never changes; a new name goes through renaming; a new branch through a transfer.
#[utoipa::path(patch, path = "/api/v1/members/{id}", params(("id" = String, Path)), request_body = MemberInput,
    responses((status = 200, body = MemberView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
async fn edit_member(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MemberInput>,
) -> ApiResult<Json<MemberView>> {
    edit(&state.db, &actor, &id, &req).await?;
    let (row, branch_name) = load(&state.db, &id).await?;
    Ok(Json(row.view(branch_name, false)))
}

/// Edits a member: every rule is checked again on the merged record.
pub async fn edit(db: &Db, actor: &Actor, id: &str, req: &MemberInput) -> ApiResult<()> {
    access::business_read(actor)?;
    let (current, _) = load(db, id).await?;
    let allowed = access::member(actor, &current.org_code)?;
    if let Some(n) = req.id_number.as_deref() {
        if n.trim().replace('x', "X") != current.id_number {
            return Err(ApiError::field("id_number", "公民身份证号不能修改"));
        }
    }
    if let Some(n) = req.name.as_deref() {
        if n.trim() != current.name {
            return Err(ApiError::field("name", "姓名须通过“党员改名”办理"));
        }
    }
    if let Some(b) = req.branch_id.as_deref() {
        if b.trim() != current.branch_id {
            return Err(ApiError::field(
                "branch_id",
                "变更所在党支部须通过组织关系转接办理",
            ));
        }
    }
    let merged = rules::merge(&current, req);
    // Contradictions already on the record were confirmed (or predate the check).
    let accepted: Vec<&str> = rules::record_contradictions(&current, today())
        .iter()
        .map(|c| c.field)
        .collect();
    let v = rules::validate_accepting(&merged, today(), &accepted)?;
    if current.in_transfer != 0 {
        let changed: Vec<&str> = LETTER_FIELDS
            .iter()
            .copied()
            .filter(|f| match *f {
                "sex" => v.sex != current.sex,
                "ethnicity" => v.ethnicity != current.ethnicity,
                "birth_date" => v.birth_date.to_string() != current.birth_date,
                "category" => v.category != current.category,
                _ => false,
            })
            .collect();
        if !changed.is_empty() {
            return Err(ApiError::conflict(
                "member_in_transfer",
                "该党员正在办理组织关系转接，介绍信所载信息不能修改",
            )
            .with_field(changed[0]));
        }
    }
    let branch = crate::org::routes::load(db, &current.branch_id).await?;
    let mut tx = db.begin().await?;
    ensure_unique(&mut tx, &v, id).await?;
    write(&mut tx, id, &branch, &v, false, &allowed).await?;
    audit::append(
        &mut tx,
        &Who::from(actor),
        Event::ok("member.edit", id).with_detail(v.name.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberListQuery {
    /// `1` includes every organisation below 包含下级
    pub include_sub: Option<String>,
    /// part of the name; a whole ID number (18 characters: exact match); or the last four
    /// characters of the ID number as the list shows them (4 digits, or 3 digits and `X`).
    /// Anything else is refused (400, field `q`) with a hint saying what can be searched.
    pub q: Option<String>,
    /// Order of the names: `pinyin` 姓氏拼音 (default) or `strokes` 姓氏笔画 (stroke count of the
    /// surname, then of the following characters)
    #[param(value_type = Option<MemberSort>, inline)]
    #[serde(default, deserialize_with = "crate::state::present_text")]
    pub sort: Option<String>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub page: Option<i64>,
    #[serde(default, deserialize_with = "crate::state::int_param")]
    pub per_page: Option<i64>,
}

/// The orders of a member list (the schema of `sort`; the handler parses the text itself so
/// that an unknown value is refused in Chinese naming the field).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberSort {
    Pinyin,
    Strokes,
}

/// What a member search box can find, and the hint when the input is none of these.
pub const SEARCH_HINT: &str = "请输入姓名、完整的18位公民身份证号或其后4位";

/// What the text typed in a member search box asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberSearch {
    /// Nothing typed: every member.
    All,
    /// Part of a name (no digits, at least one letter or Han character).
    Name(String),
    /// A whole ID number.
    IdNumber(String),
    /// The last four characters of an ID number (4 digits, or 3 digits and `X`).
    IdSuffix(String),
    /// None of these: nothing can match, and [`SEARCH_HINT`] says why.
    Unsupported,
}

impl MemberSearch {
    pub fn parse(q: &str) -> MemberSearch {
        let text = q.trim();
        if text.is_empty() {
            return MemberSearch::All;
        }
        if looks_like_id_number(text) {
            return MemberSearch::IdNumber(text.to_ascii_uppercase());
        }
        let b = text.as_bytes();
        if b.len() == 4
            && b[..3].iter().all(u8::is_ascii_digit)
            && (b[3].is_ascii_digit() || b[3] == b'x' || b[3] == b'X')
        {
            return MemberSearch::IdSuffix(text.to_ascii_uppercase());
        }
        // Names never hold digits (member rules); LIKE wildcards are taken literally out.
        let name = text.replace(['%', '_'], "");
        if !name.chars().any(char::is_numeric) && name.chars().any(char::is_alphabetic) {
            return MemberSearch::Name(name);
        }
        MemberSearch::Unsupported
    }
}

/// `GET /orgs/{id}/members`: members of an organisation (with `include_sub=1`, of its subtree),
/// paged, ID numbers and phones masked.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/members", params(("id" = String, Path), MemberListQuery),
    responses((status = 200, body = Page<MemberView>), (status = 403, body = crate::error::ErrorBody)))]
async fn org_members(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<MemberListQuery>,
) -> ApiResult<Page<MemberView>> {
    let paging = Paging::check(q.page, q.per_page)?;
    let include_sub = matches!(q.include_sub.as_deref(), Some("1") | Some("true"));
    // Exactly one of the declared values: an empty or padded `sort` is refused like any other
    // (the OpenAPI document's enum, which the fuzz suite holds the server to).
    let order = match q.sort.as_deref() {
        None => NameOrder::default(),
        Some(s) => NameOrder::parse(s)
            .filter(|o| o.as_str() == s)
            .ok_or_else(|| {
                ApiError::field(
                    "sort",
                    "排序方式只能是 pinyin（姓氏拼音）或 strokes（姓氏笔画）",
                )
            })?,
    };
    let search = MemberSearch::parse(q.q.as_deref().unwrap_or(""));
    if search == MemberSearch::Unsupported {
        return Err(ApiError::field("q", SEARCH_HINT));
    }
    list(&state.db, &actor, &id, include_sub, &search, order, &paging).await
}

/// Members of an organisation (or its subtree), paged, masked.
pub async fn list(
    db: &Db,
    actor: &Actor,
    id: &str,
    include_sub: bool,
    search: &MemberSearch,
    order: NameOrder,
    paging: &Paging,
) -> ApiResult<Page<MemberView>> {
    let org = crate::org::routes::load(db, id).await?;
    access::org(actor, &org.code, Reach::Subtree)?;
    if *search == MemberSearch::Unsupported {
        return Ok(Page::new(Vec::new(), 0, paging));
    }
    let mut count = Sql::new("SELECT COUNT(*) FROM members m");
    let by_range = member_filter(&org, include_sub, search, "m.org_code");
    count.push(&by_range.text).args = by_range.args;
    let total: i64 = count.scalar().fetch_one(db.read()).await?;
    let offset = paging.offset();
    let per_page = paging.per_page();
    let filter = member_filter(&org, include_sub, search, "m.org_code");
    let mut list = Sql::new(&format!(
        "SELECT {MEMBER_COLUMNS}, o.name AS branch_name FROM members m JOIN orgs o ON o.id = m.branch_id"
    ));
    let large = include_sub && total > LARGE_SUBTREE;
    let mut page_ids = Vec::new();
    if large && *search == MemberSearch::All {
        // A long list: the page's ids come from the covering sort-key index (sort key, id,
        // unified code), read from whichever end of the list is nearer, and only those rows
        // are loaded. The last page costs what the first does; the middle one half a skip.
        if offset >= total {
            return Ok(Page::new(Vec::new(), total, paging));
        }
        page_ids = ids_of_page(db, &org, order, offset, per_page, total).await?;
        list.push(" WHERE m.id IN (");
        for (i, id) in page_ids.iter().enumerate() {
            if i > 0 {
                list.push(", ");
            }
            list.bind(id);
        }
        list.push(")");
    } else {
        // A large subtree with a search is read in name order through the sort-key index,
        // filtering the range as it goes (`org_code || ''` is no index range, on either
        // engine); a small one is found by its range and sorted (reading the sort index there
        // would pass over most members).
        let filter = if large {
            member_filter(&org, include_sub, search, "m.org_code || ''")
        } else {
            filter
        };
        list.push(&filter.text).args = filter.args;
        // By the stored sort key of the name (indexed: `members_sort_*`, `members_branch_*`).
        list.push(&format!(" ORDER BY m.{}, m.id LIMIT ", order.column()))
            .bind_int(per_page)
            .push(" OFFSET ")
            .bind_int(offset);
    }
    let rows = list.query().fetch_all(db.read()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        use sqlx::{FromRow, Row};
        let branch_name: String = r.try_get("branch_name")?;
        items.push(
            MemberRow::from_row(&r)?
                .decrypted()?
                .view(branch_name, false),
        );
    }
    if !page_ids.is_empty() {
        let rank: std::collections::HashMap<&str, usize> = page_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        items.sort_by_key(|m| rank.get(m.id.as_str()).copied().unwrap_or(usize::MAX));
    }
    Ok(Page::new(items, total, paging))
}

/// The ids of one page of a whole subtree in name order, through the covering index
/// `members_sort_*` (sort key, id, unified code; the range is checked in the index, no row is
/// read): pages in the second half are counted back from the end, so no page skips more than
/// half the list.
async fn ids_of_page(
    db: &Db,
    org: &OrgRow,
    order: NameOrder,
    offset: i64,
    per_page: i64,
    total: i64,
) -> ApiResult<Vec<String>> {
    let take = per_page.min(total - offset);
    let from_end = offset + take / 2 > total / 2;
    let (dir, skip) = if from_end {
        ("DESC", total - offset - take)
    } else {
        ("ASC", offset)
    };
    let mut q = Sql::new("SELECT m.id FROM members m WHERE m.org_code || '' >= ");
    q.bind(&org.code)
        .push(" AND m.org_code || '' < ")
        .bind(subtree_upper(&org.code))
        .push(&format!(
            " ORDER BY m.{col} {dir}, m.id {dir} LIMIT ",
            col = order.column()
        ))
        .bind_int(take)
        .push(" OFFSET ")
        .bind_int(skip);
    let mut ids: Vec<String> = q.scalar().fetch_all(db.read()).await?;
    if from_end {
        ids.reverse();
    }
    Ok(ids)
}

/// Above this many members a subtree list reads the sort-key index instead of sorting its
/// range (sorting 200,000 rows takes SQLite about 0.6 s a page; 10,000 a few milliseconds).
pub const LARGE_SUBTREE: i64 = 10_000;

/// The WHERE clause of a member list: the branch, or the subtree range compared on `range`
/// (the column, or an expression of it), and the search.
fn member_filter(org: &OrgRow, include_sub: bool, search: &MemberSearch, range: &str) -> Sql {
    let mut filter = Sql::new(" WHERE ");
    if include_sub {
        filter
            .push(&format!("{range} >= "))
            .bind(&org.code)
            .push(&format!(" AND {range} < "))
            .bind(subtree_upper(&org.code));
    } else {
        filter.push("m.branch_id = ").bind(&org.id);
    }
    match search {
        MemberSearch::All => {}
        // ID numbers are encrypted: a whole number is found through its blind index, its last
        // four characters through theirs.
        MemberSearch::IdNumber(n) => {
            filter
                .push(" AND m.id_number_idx = ")
                .bind(crypto::index(Column::MembersIdNumber, n));
        }
        MemberSearch::IdSuffix(s) => {
            filter
                .push(" AND m.id_suffix_idx = ")
                .bind(crypto::keys().id_suffix_index(s));
        }
        MemberSearch::Name(text) => {
            filter.push(" AND m.name LIKE ").bind(format!("%{text}%"));
        }
        // Answered before any query.
        MemberSearch::Unsupported => {
            filter.push(" AND 1 = 0");
        }
    }
    filter
}

/// A whole ID number as typed in a search box: 17 digits and a digit or `X` (either case).
fn looks_like_id_number(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && (b[17].is_ascii_digit() || b[17] == b'x' || b[17] == b'X')
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_id_numbers_are_recognised() {
        assert!(super::looks_like_id_number("37010219800101123x"));
        assert!(super::looks_like_id_number("370102198001011231"));
        assert!(!super::looks_like_id_number("3701021980"));
        assert!(!super::looks_like_id_number("张三"));
    }

    #[test]
    fn searches_are_told_apart() {
        use super::MemberSearch::*;
        let p = super::MemberSearch::parse;
        assert_eq!(p("  "), All);
        assert_eq!(p("张"), Name("张".into()));
        assert_eq!(p("阿依古丽·买买提"), Name("阿依古丽·买买提".into()));
        assert_eq!(p("张%"), Name("张".into()));
        assert_eq!(
            p("37010219800101123x"),
            IdNumber("37010219800101123X".into())
        );
        assert_eq!(p("1231"), IdSuffix("1231".into()));
        assert_eq!(p("123x"), IdSuffix("123X".into()));
        for bad in ["123", "12345", "3701021980", "张3", "12x4", "%%", "--"] {
            assert_eq!(p(bad), Unsupported, "{bad}");
        }
    }
}
