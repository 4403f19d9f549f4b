//! Citizen ID numbers (公民身份证号, GB 11643-1999): normalisation, check digit, birth date, sex.

use chrono::NaiveDate;

/// The placeholder accepted for an unknown ID number; quality checks always flag it.
pub const UNKNOWN_ID_NUMBER: &str = "000000000000000000";

/// The shape of an ID number as a regular expression (the OpenAPI `pattern`): what JSON
/// Schema can say; the birth date and the check digit are checked by [`parse`].
pub const SHAPE: &str = "^[0-9]{17}[0-9Xx]$";

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// What a well-formed ID number says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdNumber {
    /// A valid number with the birth date and sex it encodes.
    Known {
        normalized: String,
        birth_date: NaiveDate,
        male: bool,
    },
    /// The all-zero placeholder.
    Unknown,
}

impl IdNumber {
    pub fn as_str(&self) -> &str {
        match self {
            IdNumber::Known { normalized, .. } => normalized,
            IdNumber::Unknown => UNKNOWN_ID_NUMBER,
        }
    }
}

/// Why an ID number is refused; `message()` is the Chinese text shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdNumberError {
    Length(usize),
    Characters,
    BirthDate,
    FutureBirthDate,
    CheckDigit,
}

impl IdNumberError {
    pub fn message(&self) -> String {
        match self {
            IdNumberError::Length(n) => {
                format!("公民身份证号应为18位，当前为{n}位")
            }
            IdNumberError::Characters => {
                "公民身份证号只能由17位数字加1位数字或X组成，不能含空格或其他字符".to_string()
            }
            IdNumberError::BirthDate => "公民身份证号中的出生日期不是有效日期".to_string(),
            IdNumberError::FutureBirthDate => "公民身份证号中的出生日期晚于今天".to_string(),
            IdNumberError::CheckDigit => "公民身份证号校验位错误，请核对后重新输入".to_string(),
        }
    }
}

/// The GB 11643 check character for the first 17 digits.
pub fn check_char(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

/// Parses an ID number as typed: surrounding whitespace is trimmed and a lower-case `x` becomes
/// `X`; anything else that is not 17 digits plus a digit or `X` is refused.
pub fn parse(input: &str, today: NaiveDate) -> Result<IdNumber, IdNumberError> {
    let trimmed = input.trim();
    let normalized = trimmed.replace('x', "X");
    let bytes = normalized.as_bytes();
    let chars = normalized.chars().count();
    if chars != 18 {
        return Err(IdNumberError::Length(chars));
    }
    if bytes.len() != 18
        || !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
    {
        return Err(IdNumberError::Characters);
    }
    if normalized == UNKNOWN_ID_NUMBER {
        return Ok(IdNumber::Unknown);
    }
    let year: i32 = normalized[6..10]
        .parse()
        .map_err(|_| IdNumberError::BirthDate)?;
    let month: u32 = normalized[10..12]
        .parse()
        .map_err(|_| IdNumberError::BirthDate)?;
    let day: u32 = normalized[12..14]
        .parse()
        .map_err(|_| IdNumberError::BirthDate)?;
    let birth_date = NaiveDate::from_ymd_opt(year, month, day).ok_or(IdNumberError::BirthDate)?;
    if year < 1850 {
        return Err(IdNumberError::BirthDate);
    }
    if birth_date > today {
        return Err(IdNumberError::FutureBirthDate);
    }
    if check_char(&bytes[..17]) != bytes[17] as char {
        return Err(IdNumberError::CheckDigit);
    }
    let male = (bytes[16] - b'0') % 2 == 1;
    Ok(IdNumber::Known {
        normalized,
        birth_date,
        male,
    })
}

/// Builds a valid ID number from a 6-digit region code, a birth date and a 3-digit sequence
/// (odd for men, even for women). Used by the demo generator and tests.
pub fn compose(region: &str, birth_date: NaiveDate, sequence: u16) -> String {
    let mut s = format!(
        "{region}{}{:03}",
        birth_date.format("%Y%m%d"),
        sequence % 1000
    );
    let check = check_char(s.as_bytes());
    s.push(check);
    s
}

/// Masks all but the first 6 and last 4 characters (SPEC §13).
pub fn mask(id_number: &str) -> String {
    let chars: Vec<char> = id_number.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..6].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 10));
    out.extend(&chars[chars.len() - 4..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn shared_vectors_get_their_verdicts() {
        let text = include_str!("../../tests/vectors/citizen_id.tsv");
        let mut rows = 0;
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let mut cols = line.split('\t');
            let value = cols.next().unwrap();
            let expected = cols.next().unwrap();
            let verdict = match parse(value, today()) {
                Ok(IdNumber::Known { .. }) => "valid",
                Ok(IdNumber::Unknown) => "unknown",
                Err(_) => "invalid",
            };
            assert_eq!(verdict, expected, "{value:?}");
            rows += 1;
        }
        assert!(rows > 50);
    }

    #[test]
    fn lower_case_x_is_stored_upper_case() {
        let id = compose("110101", NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(), 3);
        let id = if id.ends_with('X') {
            id
        } else {
            // find a sequence whose check char is X
            (0..1000)
                .map(|s| compose("110101", NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(), s))
                .find(|v| v.ends_with('X'))
                .unwrap()
        };
        let lower = id.to_lowercase();
        assert_eq!(parse(&lower, today()).unwrap().as_str(), id);
    }

    #[test]
    fn sex_and_birth_date_come_from_the_number() {
        let id = compose("370102", NaiveDate::from_ymd_opt(1985, 6, 30).unwrap(), 123);
        match parse(&id, today()).unwrap() {
            IdNumber::Known {
                birth_date, male, ..
            } => {
                assert_eq!(birth_date, NaiveDate::from_ymd_opt(1985, 6, 30).unwrap());
                assert!(male);
            }
            IdNumber::Unknown => panic!("not unknown"),
        }
    }

    #[test]
    fn space_inside_and_seventeen_characters_are_refused() {
        assert_eq!(
            parse("37010219850630 123", today()),
            Err(IdNumberError::Characters)
        );
        assert_eq!(
            parse("37010219850630123", today()),
            Err(IdNumberError::Length(17))
        );
    }

    #[test]
    fn masks_middle() {
        assert_eq!(mask("370102198506301234"), "370102********1234");
    }
}
