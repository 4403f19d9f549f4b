//! Unified social credit codes (统一社会信用代码, GB 32100-2015) with the embedded
//! organisation code (GB 11714).

const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// GB 11714 values: digits as themselves, letters A-Z as 10-35.
fn org_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A') + 10,
        _ => 0,
    }
}

/// The shape of a credit code as a regular expression (the OpenAPI `pattern`): 18 characters of
/// the code's alphabet in either case; the check characters are checked by [`validate`].
pub const SHAPE: &str = "^[0-9A-HJ-NPQRTUWXYa-hj-npqrtuwxy]{18}$";

fn value_of(c: u8) -> Option<u32> {
    CHARSET.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Validates a credit code; input is trimmed and upper-cased. Returns the normalised code or
/// the Chinese reason for refusing it.
pub fn validate(input: &str) -> Result<String, String> {
    let code = input.trim().to_ascii_uppercase();
    let len = code.chars().count();
    if len != 18 {
        return Err(format!("统一社会信用代码应为18位，当前为{len}位"));
    }
    let bytes = code.as_bytes();
    let mut values = [0u32; 18];
    for (i, &b) in bytes.iter().enumerate() {
        values[i] = value_of(b).ok_or_else(|| {
            format!(
                "统一社会信用代码第{}位“{}”不是有效字符（不使用 I、O、Z、S、V）",
                i + 1,
                b as char
            )
        })?;
    }
    let sum: u32 = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let c = (31 - sum % 31) % 31;
    if values[17] != c {
        return Err("统一社会信用代码校验位错误，请核对后重新输入".to_string());
    }
    // Positions 9-17 are the organisation code: 8 body characters and a check character.
    let org_sum: u32 = bytes[8..16]
        .iter()
        .zip(ORG_WEIGHTS)
        .map(|(&b, w)| org_value(b) * w)
        .sum();
    let expected = match 11 - org_sum % 11 {
        10 => b'X',
        11 => b'0',
        n => b'0' + n as u8,
    };
    if bytes[16] != expected {
        return Err("统一社会信用代码中的组织机构代码校验位错误".to_string());
    }
    Ok(code)
}

/// Builds a valid credit code from a 2-character registration prefix, a 6-digit region code
/// and an 8-character organisation body (demo data and tests).
pub fn compose(prefix: &str, region: &str, org_body: &str) -> String {
    let org_sum: u32 = org_body
        .bytes()
        .zip(ORG_WEIGHTS)
        .map(|(b, w)| org_value(b) * w)
        .sum();
    let org_check = match 11 - org_sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from(b'0' + n as u8),
    };
    let mut code = format!("{prefix}{region}{org_body}{org_check}");
    let sum: u32 = code
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| value_of(b).unwrap_or(0) * w)
        .sum();
    code.push(CHARSET[((31 - sum % 31) % 31) as usize] as char);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_vectors_get_their_verdicts() {
        let text = include_str!("../../../tests/vectors/credit_code.tsv");
        let mut rows = 0;
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let mut cols = line.split('\t');
            let value = cols.next().unwrap();
            let expected = cols.next().unwrap();
            let verdict = if validate(value).is_ok() {
                "valid"
            } else {
                "invalid"
            };
            assert_eq!(verdict, expected, "{value:?}");
            rows += 1;
        }
        assert!(rows > 30);
    }

    #[test]
    fn composed_codes_validate() {
        for body in [
            "12345678",
            "0000000A",
            "MA3C4D5E",
            "X1Y2Z3W4".replace('Z', "Q").as_str(),
        ] {
            let code = compose("91", "370102", body);
            assert_eq!(validate(&code), Ok(code.clone()), "{code}");
        }
    }
}
