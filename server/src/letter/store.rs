use crate::access::{Actor, Allowed};
use crate::db::Tx;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct LetterRow {
    number: String,
    state: String,
    valid_until: String,
}

impl LetterRow {
    pub fn number(&self) -> &str {
        &self.number
    }
    pub fn expired(&self, _today: chrono::NaiveDate) -> bool {
        false
    }
    pub fn state(&self) -> &str {
        &self.state
    }
    pub fn valid_until(&self) -> &str {
        &self.valid_until
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LetterDocument {
    pub number: String,
}

pub async fn issue(
    _tx: &mut Tx,
    _state: &AppState,
    transfer_id: &str,
    _fields: &super::LetterFields,
    _actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<LetterRow> {
    Ok(LetterRow {
        number: transfer_id.to_string(),
        state: "issued".into(),
        valid_until: String::new(),
    })
}

pub async fn reissue(
    _tx: &mut Tx,
    _state: &AppState,
    transfer_id: &str,
    _actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<LetterRow> {
    Ok(LetterRow {
        number: transfer_id.to_string(),
        state: "issued".into(),
        valid_until: String::new(),
    })
}

pub async fn withdraw_current(
    _tx: &mut Tx,
    _transfer_id: &str,
    _actor: &Actor,
    _allowed: &Allowed,
) -> ApiResult<()> {
    Ok(())
}

pub async fn mark_received(_tx: &mut Tx, _transfer_id: &str, _allowed: &Allowed) -> ApiResult<()> {
    Ok(())
}

pub async fn current<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    _e: E,
    _transfer_id: &str,
) -> Result<Option<LetterRow>, sqlx::Error> {
    Ok(None)
}

pub fn document(row: &LetterRow) -> ApiResult<LetterDocument> {
    Ok(LetterDocument {
        number: row.number.clone(),
    })
}
