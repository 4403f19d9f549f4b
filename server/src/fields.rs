//! Field-level checks shared by every area: required text, phone numbers, dates. Each refusal
//! names the field and says in Chinese what is wrong.

use chrono::NaiveDate;

use crate::error::{ApiError, FieldError};

/// Collects every field error of a form in one pass, so a save names all of them at once.
/// Checks return `Option`: `None` when the value is at fault (and its error recorded), and
/// checks that depend on it are skipped rather than reported twice.
#[derive(Debug, Default)]
pub struct Problems {
    errors: Vec<FieldError>,
    other: Option<ApiError>,
}

impl Problems {
    /// The value of a check, or `None` with its errors recorded.
    pub fn take<T>(&mut self, r: Result<T, ApiError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.record(e);
                None
            }
        }
    }

    /// Records an error: its fields, or (an error about no field) the first such error.
    pub fn record(&mut self, e: ApiError) {
        if e.errors.is_empty() {
            self.other.get_or_insert(e);
        } else {
            for f in e.errors {
                if !self.has(&f.field) {
                    self.errors.push(f);
                }
            }
        }
    }

    /// Records a field error (the first per field counts).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        if !self.has(field) {
            self.errors.push(FieldError {
                field: field.to_string(),
                message: message.into(),
            });
        }
    }

    /// Is an error recorded for this field?
    pub fn has(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.other.is_none()
    }

    /// `Ok` when nothing was recorded; otherwise one error naming every field.
    pub fn finish(self) -> Result<(), ApiError> {
        if !self.errors.is_empty() {
            Err(ApiError::fields(self.errors))
        } else if let Some(e) = self.other {
            Err(e)
        } else {
            Ok(())
        }
    }
}

/// The error for a value a validator left unset without recording why: a bug, not user input.
pub fn unset() -> ApiError {
    ApiError::internal("validation left a value unset without an error")
}

/// Trimmed required text of at most `max` characters.
pub fn required_text(
    field: &str,
    label: &str,
    value: Option<&str>,
    max: usize,
) -> Result<String, ApiError> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(ApiError::field(field, format!("请填写{label}")));
    }
    text_len(field, label, v, max)?;
    Ok(v.to_string())
}

/// Trimmed optional text of at most `max` characters (empty when absent).
pub fn optional_text(
    field: &str,
    label: &str,
    value: Option<&str>,
    max: usize,
) -> Result<String, ApiError> {
    let v = value.map(str::trim).unwrap_or("");
    text_len(field, label, v, max)?;
    Ok(v.to_string())
}

fn text_len(field: &str, label: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.chars().count() > max {
        return Err(ApiError::field(field, format!("{label}不能超过{max}个字")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(ApiError::field(
            field,
            format!("{label}含有不可见的控制字符"),
        ));
    }
    Ok(())
}

/// The shape of a mobile number (the OpenAPI `pattern` of [`is_mobile`]).
pub const MOBILE_SHAPE: &str = "^1[0-9]{10}$";

/// The shape of a phone: a mobile or a landline (the OpenAPI `pattern` of [`phone`]).
pub const PHONE_SHAPE: &str = "^(1[0-9]{10}|0[0-9]{2,3}-[0-9]{7,8}(-[0-9]{1,6})?)$";

/// Is this a mobile number (11 digits starting with 1)?
pub fn is_mobile(v: &str) -> bool {
    v.len() == 11 && v.starts_with('1') && v.bytes().all(|b| b.is_ascii_digit())
}

/// Is this a landline: area code (0 + 2-3 digits), a hyphen, 7-8 digits, optional extension?
pub fn is_landline(v: &str) -> bool {
    let mut parts = v.split('-');
    let (Some(area), Some(number)) = (parts.next(), parts.next()) else {
        return false;
    };
    let ext_ok = match parts.next() {
        None => true,
        Some(ext) => (1..=6).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_digit()),
    };
    parts.next().is_none()
        && ext_ok
        && (3..=4).contains(&area.len())
        && area.starts_with('0')
        && area.bytes().all(|b| b.is_ascii_digit())
        && (7..=8).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A required phone: mobile or landline.
pub fn phone(field: &str, label: &str, value: Option<&str>) -> Result<String, ApiError> {
    let v = required_text(field, label, value, 20)?;
    if is_mobile(&v) || is_landline(&v) {
        Ok(v)
    } else {
        Err(ApiError::field(
            field,
            format!("{label}格式不正确：应为11位手机号，或“区号-号码”形式的固定电话（如 0531-88888888）"),
        ))
    }
}

/// A required mobile number.
pub fn mobile(field: &str, label: &str, value: Option<&str>) -> Result<String, ApiError> {
    let v = required_text(field, label, value, 20)?;
    if is_mobile(&v) {
        Ok(v)
    } else {
        Err(ApiError::field(
            field,
            format!("{label}应为以1开头的11位手机号"),
        ))
    }
}

/// A date `YYYY-MM-DD`.
pub fn date(field: &str, label: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::field(field, format!("{label}不是有效日期，格式应为 YYYY-MM-DD")))
}

/// An optional date: absent or empty is `None`.
pub fn optional_date(
    field: &str,
    label: &str,
    value: Option<&str>,
) -> Result<Option<NaiveDate>, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => date(field, label, v).map(Some),
    }
}

/// A date that may not lie after `today`.
pub fn not_future(
    field: &str,
    label: &str,
    d: NaiveDate,
    today: NaiveDate,
) -> Result<NaiveDate, ApiError> {
    if d > today {
        Err(ApiError::field(field, format!("{label}不能晚于今天")))
    } else {
        Ok(d)
    }
}

/// Whole years between two dates (age on `on` of someone born on `born`).
pub fn years_between(born: NaiveDate, on: NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    years
}

/// Accepts a JSON string or number as text (category codes arrive both ways).
pub fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert!(is_mobile("13800000000"));
        assert!(!is_mobile("23800000000"));
        assert!(is_landline("0531-8888888"));
        assert!(is_landline("010-88888888"));
        assert!(is_landline("0531-88888888-123"));
        assert!(!is_landline("531-8888888"));
        assert!(!is_landline("05318888888"));
        assert!(phone("p", "电话", Some("12345")).is_err());
    }

    #[test]
    fn ages() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(years_between(d("2000-03-01"), d("2018-02-28")), 17);
        assert_eq!(years_between(d("2000-03-01"), d("2018-03-01")), 18);
        assert_eq!(years_between(d("2000-02-29"), d("2018-02-28")), 17);
    }
}
