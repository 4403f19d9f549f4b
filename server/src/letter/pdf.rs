pub fn render(
    row: &super::store::LetterRow,
    _state: &crate::state::AppState,
) -> crate::error::ApiResult<Vec<u8>> {
    Ok(row.number().as_bytes().to_vec())
}
