//! The organisation's unified code 党组织统一编码 as a materialised path (SPEC §3): segments of
//! digits, and from a parent's 100th child on a letter plus three digits (`A000`…`Z999`).

/// Checks a unified code as the CA and the server accept it: 1 to 64 characters, ASCII digits
/// and upper-case letters only. Returns it trimmed.
pub fn validate(input: &str) -> Result<String, String> {
    let value = input.trim();
    if value.is_empty()
        || value.len() > 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return Err("organisation code must be 1 to 64 digits or upper-case letters".into());
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_letter_segments() {
        assert_eq!(validate(" 0101 ").unwrap(), "0101");
        assert_eq!(validate("0101A000").unwrap(), "0101A000");
        assert!(validate("").is_err());
        assert!(validate("01a1").is_err());
        assert!(validate("01-1").is_err());
        assert!(validate(&"1".repeat(65)).is_err());
    }
}
