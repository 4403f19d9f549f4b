//! The checks the CA makes on a client certificate's subject before it issues one: the citizen ID
//! number (GB 11643-1999, SPEC §10) and the organisation's unified code (digits, SPEC §3).

use chrono::{NaiveDate, Utc};

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// Checks a citizen ID number (GB 11643-1999) and returns it normalised (trimmed, a lower-case
/// `x` upper-cased): 17 digits, the last a digit or `X` equal to the check character; digits
/// 7-14 a real birth date not in the future. The placeholder `000000000000000000` is refused:
/// a certificate names a real person.
pub fn validate_id_number(input: &str) -> Result<String, String> {
    let value = input.trim().to_ascii_uppercase();
    let bytes = value.as_bytes();
    if bytes.len() != 18
        || !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
    {
        return Err("ID number must be 17 digits followed by a digit or X".into());
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if bytes[17] != expected {
        return Err(format!(
            "ID number check character is {}, expected {}",
            bytes[17] as char, expected as char
        ));
    }
    let birth = NaiveDate::parse_from_str(&value[6..14], "%Y%m%d")
        .map_err(|_| "ID number does not hold a valid birth date".to_string())?;
    if birth > Utc::now().date_naive() {
        return Err("ID number holds a birth date in the future".into());
    }
    Ok(value)
}

/// Checks an organisation's unified code 党组织统一编码: 1 to 64 ASCII digits.
pub fn validate_org_code(input: &str) -> Result<String, String> {
    let value = input.trim();
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("organisation code must be 1 to 64 digits".into());
    }
    Ok(value.to_string())
}

/// Masks all but the first 6 and last 4 characters (as the server does, SPEC §13).
pub(crate) fn mask(id_number: &str) -> String {
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
    fn every_shared_vector_agrees() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/vectors/citizen_id.tsv"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 2 || cols[0] == "value" {
                continue;
            }
            let ok = validate_id_number(cols[0]).is_ok();
            match cols[1] {
                "valid" => assert!(ok, "{line}"),
                "unknown" => assert!(!ok, "{line}"),
                _ => assert!(!ok, "{line}"),
            }
        }
    }

    #[test]
    fn org_codes_and_masking() {
        assert_eq!(validate_org_code(" 0101 ").unwrap(), "0101");
        assert!(validate_org_code("").is_err());
        assert!(validate_org_code("01A1").is_err());
        assert_eq!(mask("11010519491231002X"), "110105********002X");
    }
}
