pub fn letter_page(
    row: &super::store::LetterRow,
    _state: &crate::state::AppState,
) -> crate::error::ApiResult<maud::Markup> {
    Ok(maud::html! { p { (row.number()) } })
}
