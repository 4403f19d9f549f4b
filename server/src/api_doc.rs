//! The error statuses of the OpenAPI document, declared for every operation by one rule so that
//! a new route cannot forget them: what each status means is the same everywhere (the error
//! body of [`crate::error::ErrorBody`]), and which statuses apply follows from the operation's
//! shape — public or signed in, a path parameter, a request body, a write.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// The statuses an operation can answer besides its successes, with their meaning.
pub fn error_statuses(
    method: HttpMethod,
    path: &str,
    public: bool,
    has_body: bool,
) -> Vec<(&'static str, &'static str)> {
    let write = !matches!(method, HttpMethod::Get | HttpMethod::Head);
    let mut out = vec![(
        "400",
        "请求有误：参数或内容不符合要求；errors 列出每个有误的字段",
    )];
    if !public {
        out.push(("401", "尚未登录或登录已过期"));
        out.push((
            "403",
            "无权执行（角色、级别或管理范围不符，或须先修改一次性密码），写操作缺少 X-CSRF-Token",
        ));
    }
    if path.contains('{') || !public {
        out.push(("404", "对象不存在或不在您的管理范围内"));
    }
    if write {
        out.push(("409", "与现有数据冲突（重复、已被占用或状态不允许）"));
    }
    if has_body {
        out.push(("413", "请求内容超过大小限制（1 MiB）"));
        out.push(("415", "请求内容须为 application/json"));
    }
    if public || path == "/api/v1/account/password" {
        out.push(("423", "账号已锁定（连续失败次数过多），请稍后再试"));
        out.push(("429", "尝试过于频繁或服务器繁忙，请稍后再试"));
    }
    out
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    let mut out = Vec::new();
    for (m, op) in [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ] {
        if let Some(op) = op {
            out.push((m, op));
        }
    }
    out
}

/// Is the operation open to anyone (`security(())`: one empty requirement)?
fn is_public(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|s| {
        !s.is_empty()
            && s.iter()
                .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    })
}

/// Adds every applicable error status (with the error body) to every operation that does not
/// declare it already.
pub fn declare_error_statuses(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            let public = is_public(op);
            let has_body = op.request_body.is_some();
            for (status, description) in error_statuses(method, path, public, has_body) {
                if op.responses.responses.contains_key(status) {
                    continue;
                }
                let response: Response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::content::ContentBuilder::new()
                            .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                            .build(),
                    )
                    .build();
                op.responses
                    .responses
                    .insert(status.to_string(), RefOr::T(response));
            }
        }
    }
}

/// A constraint of a request field that JSON Schema can say, taken from the validator's own
/// table or shape so the rule is written once.
enum Constraint {
    /// required text: `minLength: 1`
    Required,
    /// a regular expression of the field's shape
    Pattern(&'static str),
    /// `format: date` (YYYY-MM-DD)
    Date,
    /// one of the codes of a table, each with its Chinese label in the description
    Codes(Vec<(String, String)>),
}

fn codes(table: &[(&str, &str)]) -> Constraint {
    Constraint::Codes(
        table
            .iter()
            .map(|(c, l)| (c.to_string(), l.to_string()))
            .collect(),
    )
}

/// The request schemas' constraints: (schema, field, constraint).
fn constraints() -> Vec<(&'static str, &'static str, Constraint)> {
    use crate::member::dict;
    use Constraint::*;
    let educations: Vec<(&str, &str)> = dict::EDUCATIONS
        .iter()
        .copied()
        .filter(|(c, _)| !dict::is_education_group(c))
        .collect();
    let org_categories: Vec<(String, String)> = crate::org::rules::ALL_CATEGORIES
        .iter()
        .map(|c| (c.code().to_string(), c.label().to_string()))
        .collect();
    vec![
        ("MemberInput", "name", Required),
        (
            "MemberInput",
            "id_number",
            Pattern(crate::member::idcard::SHAPE),
        ),
        (
            "MemberInput",
            "sex",
            codes(&[("male", "男"), ("female", "女")]),
        ),
        ("MemberInput", "ethnicity", codes(&dict::ETHNICITIES)),
        ("MemberInput", "birth_date", Date),
        ("MemberInput", "education", codes(&educations)),
        ("MemberInput", "category", codes(&dict::CATEGORIES)),
        ("MemberInput", "joined_on", Date),
        ("MemberInput", "full_on", Date),
        ("MemberInput", "job", codes(&dict::JOBS)),
        ("MemberInput", "phone", Pattern(crate::fields::PHONE_SHAPE)),
        ("MemberInput", "address", Required),
        ("MemberInput", "status", codes(&dict::STATUSES)),
        ("MemberInput", "lost_contact_on", Date),
        (
            "MemberInput",
            "registered_phone",
            Pattern(crate::fields::MOBILE_SHAPE),
        ),
        ("CreateOrg", "parent_id", Required),
        ("CreateOrg", "name", Required),
        ("CreateOrg", "category", Codes(org_categories.clone())),
        ("CreateOrg", "secretary", Required),
        ("CreateOrg", "contact_name", Required),
        (
            "CreateOrg",
            "contact_phone",
            Pattern(crate::fields::PHONE_SHAPE),
        ),
        (
            "CreateOrg",
            "subordination",
            codes(&crate::org::rules::SUBORDINATIONS),
        ),
        ("CreateOrg", "founded_on", Date),
        ("EditOrg", "name", Required),
        ("EditOrg", "secretary", Required),
        ("EditOrg", "contact_name", Required),
        (
            "EditOrg",
            "contact_phone",
            Pattern(crate::fields::PHONE_SHAPE),
        ),
        ("EditOrg", "founded_on", Date),
        ("ChangeCategory", "category", Codes(org_categories)),
        ("RevokeOrg", "document_no", Required),
        ("RevokeOrg", "reason", Required),
        ("UnitInput", "name", Required),
        (
            "UnitInput",
            "credit_code",
            Pattern(crate::unit::credit_code::SHAPE),
        ),
        (
            "UnitInput",
            "category",
            codes(&crate::unit::UNIT_CATEGORIES),
        ),
    ]
}

/// Fields that the request types keep optional (the handler answers their absence in Chinese,
/// naming the field) but that every request must carry: the document lists them as `required`
/// text, so a generated client asks for them and a fuzzer does not expect a request without
/// them to succeed.
const MANDATORY: &[(&str, &str)] = &[("RevokeOrg", "document_no"), ("RevokeOrg", "reason")];

/// The document as served: error statuses declared and request fields constrained.
pub fn finish(doc: &mut OpenApi) -> serde_json::Value {
    declare_error_statuses(doc);
    let mut value = serde_json::to_value(&*doc).expect("the OpenAPI document serialises");
    bound_paging(&mut value);
    for (schema, field) in MANDATORY {
        let Some(object) = value
            .pointer_mut(&format!("/components/schemas/{schema}"))
            .and_then(|s| s.as_object_mut())
        else {
            panic!("OpenAPI: a mandatory field of a schema that is not in the document: {schema}");
        };
        let required = object
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = required.as_array_mut() {
            if !list.contains(&(*field).into()) {
                list.push((*field).into());
            }
        }
        match object
            .get_mut("properties")
            .and_then(|p| p.get_mut(*field))
            .and_then(|p| p.as_object_mut())
        {
            Some(prop) => {
                prop.insert("type".into(), "string".into());
            }
            None => {
                panic!("OpenAPI: a mandatory field that is not in the document: {schema}.{field}")
            }
        }
    }
    for (schema, field, constraint) in constraints() {
        let Some(prop) = value
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{field}"))
            .and_then(|p| p.as_object_mut())
        else {
            panic!("OpenAPI constraint for a field that is not in the document: {schema}.{field}");
        };
        match constraint {
            Constraint::Required => {
                prop.insert("minLength".into(), 1.into());
            }
            Constraint::Pattern(p) => {
                prop.insert("pattern".into(), p.into());
            }
            Constraint::Date => {
                prop.insert("format".into(), "date".into());
            }
            Constraint::Codes(list) => {
                let mut values: Vec<serde_json::Value> =
                    list.iter().map(|(c, _)| c.as_str().into()).collect();
                if prop["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"null".into()))
                {
                    values.push(serde_json::Value::Null);
                }
                let labels = list
                    .iter()
                    .map(|(c, l)| format!("{c} {l}"))
                    .collect::<Vec<_>>()
                    .join("；");
                let description = match prop.get("description").and_then(|d| d.as_str()) {
                    Some(d) => format!("{d}\n\n{labels}"),
                    None => labels,
                };
                prop.insert("enum".into(), values.into());
                prop.insert("description".into(), description.into());
            }
        }
    }
    value
}

/// `page` is at least 1 and `per_page` 1…[`crate::state::MAX_PER_PAGE`] wherever a list takes
/// them ([`crate::state::Paging::check`] refuses the rest with 400).
fn bound_paging(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
                continue;
            };
            for param in params {
                if param["in"] != "query" {
                    continue;
                }
                let max = match param["name"].as_str() {
                    Some("page") => None,
                    Some("per_page") => Some(crate::state::MAX_PER_PAGE),
                    _ => continue,
                };
                if let Some(schema) = param.get_mut("schema").and_then(|s| s.as_object_mut()) {
                    schema.insert("minimum".into(), 1.into());
                    if let Some(max) = max {
                        schema.insert("maximum".into(), max.into());
                    }
                }
            }
        }
    }
}
