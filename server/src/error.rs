//! The API's error shape: `{"error": {"code", "message", "field"}, "errors": [{"field",
//! "message"}]}` with Chinese messages. `errors` lists every field at fault (validation collects
//! them all in one pass, see [`crate::fields::Problems`]); `error.field` is the first of them.
//! Internal causes are logged with a reference and never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error that renders itself into the API's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Every field at fault, in form order (empty when the error is not about fields).
    pub errors: Vec<FieldError>,
    /// Answered "not found" because the target lies outside the actor's scope (its existence
    /// is confidential): the response is the same, but the refusal is audited.
    pub out_of_scope: bool,
}

/// Marks a response whose 404 hides a target outside the actor's scope (read and removed by
/// `audit::refusals`).
#[derive(Debug, Clone, Copy)]
pub struct OutOfScope;

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
            out_of_scope: false,
        }
    }

    /// 400 naming the field that is wrong.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.clone(),
            field: Some(field.to_string()),
            errors: vec![FieldError {
                field: field.to_string(),
                message,
            }],
            out_of_scope: false,
        }
    }

    /// 400 naming every field that is wrong; `error.message` lists them all, `error.field` is
    /// the first. `errors` must not be empty.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => one.message.clone(),
            many => format!(
                "共有{}处需要修改：{}",
                many.len(),
                many.iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("；")
            ),
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message,
            field: errors.first().map(|e| e.field.clone()),
            errors,
            out_of_scope: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
            "尚未登录或登录已过期，请重新登录",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what}不存在或不在您的管理范围内"),
        )
    }

    /// The answer for a target outside the actor's scope whose existence is confidential:
    /// the same as [`ApiError::not_found`], and audited as a refusal.
    pub fn out_of_scope(what: &str) -> Self {
        ApiError {
            out_of_scope: true,
            ..Self::not_found(what)
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A conflict on a named field (a duplicate name, a taken credit code, ...).
    pub fn conflict_field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "duplicate",
            ..Self::field(field, message)
        }
    }

    /// An internal failure: logged with a reference; the client sees only the reference.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        tracing::error!(reference = %reference, "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("服务器内部错误，请稍后重试（参考编号 {reference}）"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// every field at fault, in form order; empty when the error is not about fields
    pub errors: Vec<FieldError>,
}

/// One field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// the field's name in the request body
    pub field: String,
    /// 中文说明
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// snake_case error code
    pub code: String,
    /// 中文说明
    pub message: String,
    /// the field at fault, or null
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let out_of_scope = self.out_of_scope;
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
            errors: self.errors,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if out_of_scope {
            res.extensions_mut().insert(OutOfScope);
        }
        res
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if let Some(mapped) = on_constraint(db.message()) {
                return mapped;
            }
        }
        ApiError::internal(e)
    }
}

/// Maps unique-constraint violations of both engines to field errors, in one place.
/// SQLite names the columns (`UNIQUE constraint failed: units.name`), PostgreSQL the index.
/// Encrypted columns are unique through their blind index (`members.id_number_idx`, index
/// `members_id_number_key`): the needles below match those messages too.
fn on_constraint(message: &str) -> Option<ApiError> {
    const RULES: &[(&[&str], &str, &str)] = &[
        (&["units.name", "units_name_key"], "name", "单位名称已存在"),
        (
            &["saved_queries.account_id", "saved_queries_name_key"],
            "name",
            "已有同名的固定查询",
        ),
        (
            &["units.credit_code", "units_credit_code_key"],
            "credit_code",
            "统一社会信用代码已被其他单位使用",
        ),
        (
            &["members.id_number", "members_id_number_key"],
            "id_number",
            "该公民身份证号已存在于党员信息库中",
        ),
        (
            &["members.registered_phone", "members_registered_phone_key"],
            "registered_phone",
            "该注册手机号已被其他党员使用",
        ),
        (
            &["orgs.parent_id, orgs.name", "orgs_sibling_name"],
            "name",
            "同一上级党组织下已有同名党组织",
        ),
        (
            &[
                "grants.account_id, grants.org_id",
                "grants_live_account_org",
            ],
            "org_id",
            "该人员在该党组织已有授权",
        ),
        (
            &["applications.member_id", "applications_pending_member"],
            "member_id",
            "该党员已有待审批的申请，请等待审批完成或取消该申请后再办理",
        ),
        (
            &["transfers.member_id", "transfers_open_member"],
            "member_id",
            "该党员已有正在办理的组织关系转接",
        ),
        (
            &["transfers.id_number_idx", "transfers_open_person"],
            "id_number",
            "该身份证号码的党员已有正在办理的组织关系转接",
        ),
        (
            &["accounts.id_number", "accounts_id_number_key"],
            "id_number",
            "该公民身份证号已有账号",
        ),
    ];
    RULES.iter().find_map(|(needles, field, text)| {
        needles
            .iter()
            .any(|n| message.contains(n))
            .then(|| ApiError::conflict_field(field, *text))
    })
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

impl ApiError {
    /// The same error, naming a field.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self.errors = vec![FieldError {
            field: field.to_string(),
            message: self.message.clone(),
        }];
        self
    }
}
