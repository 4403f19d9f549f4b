//! The checks the CA makes on a client certificate's subject before it issues one: the citizen ID
//! number and the organisation's unified code, through the one implementation in
//! `dangjian-codes` that the server's rules use too.

use chrono::Utc;
use dangjian_codes::idcard::{self, IdNumber};

/// Checks a citizen ID number (GB 11643-1999) and returns it normalised (trimmed, a lower-case
/// `x` upper-cased). The placeholder `000000000000000000` is refused: a certificate names a
/// real person.
pub fn validate_id_number(input: &str) -> Result<String, String> {
    match idcard::parse(input, Utc::now().date_naive()) {
        Ok(IdNumber::Known { normalized, .. }) => Ok(normalized),
        Ok(IdNumber::Unknown) => {
            Err("ID number must name a real person, not the placeholder".into())
        }
        Err(e) => Err(format!("ID number refused: {e:?}")),
    }
}

/// Checks an organisation's unified code 党组织统一编码 (digits and letter segments).
pub fn validate_org_code(input: &str) -> Result<String, String> {
    dangjian_codes::orgcode::validate(input)
}

/// Masks all but the first 6 and last 4 characters (as the server does, SPEC §13).
pub(crate) fn mask(id_number: &str) -> String {
    idcard::mask(id_number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit() {
        // GB 11643 worked example.
        assert_eq!(
            validate_id_number("11010519491231002X").unwrap(),
            "11010519491231002X"
        );
        assert_eq!(
            validate_id_number(" 11010519491231002x ").unwrap(),
            "11010519491231002X"
        );
        assert!(validate_id_number("110105194912310021").is_err());
        assert!(validate_id_number("000000000000000000").is_err());
        assert!(validate_id_number("1101051949123100").is_err());
        assert!(validate_id_number("11010519491231002Y").is_err());
    }

    #[test]
    fn org_codes_with_letter_segments_and_masking() {
        assert_eq!(validate_org_code(" 0101 ").unwrap(), "0101");
        assert_eq!(validate_org_code("0101A000").unwrap(), "0101A000");
        assert!(validate_org_code("").is_err());
        assert!(validate_org_code("01a1").is_err());
        assert_eq!(mask("11010519491231002X"), "110105********002X");
    }
}
