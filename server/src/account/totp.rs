//! Six-digit codes (RFC 6238: SHA-1, 6 digits, 30 s step, one step of skew each way).

use totp_rs::{Algorithm, Secret, TOTP};

pub const STEP_SECONDS: u64 = 30;

/// A fresh random secret, base32-encoded.
pub fn new_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

fn totp(secret_b32: &str, account_name: &str) -> anyhow::Result<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("bad TOTP secret: {e:?}"))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECONDS,
        bytes,
        Some("dangjian".to_string()),
        account_name.to_string(),
    )
    .map_err(|e| anyhow::anyhow!("bad TOTP parameters: {e}"))
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret_b32: &str, account_name: &str) -> anyhow::Result<String> {
    Ok(totp(secret_b32, account_name)?.get_url())
}

/// The code for a given UNIX time.
pub fn code_at(secret_b32: &str, unix_time: u64) -> anyhow::Result<String> {
    Ok(totp(secret_b32, "x")?.generate(unix_time))
}

/// Finds the time step (within one step of `unix_time`) whose code is `code`, if any. The
/// caller accepts it only if it is later than the last step the account used (no replay).
pub fn matching_step(secret_b32: &str, code: &str, unix_time: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret_b32, "x").ok()?;
    let now_step = unix_time / STEP_SECONDS;
    [now_step.saturating_sub(1), now_step, now_step + 1]
        .into_iter()
        .find(|&step| constant_time_eq(t.generate(step * STEP_SECONDS).as_bytes(), code.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_within_one_step() {
        let s = new_secret();
        let t = 1_800_000_000;
        let code = code_at(&s, t).unwrap();
        assert_eq!(matching_step(&s, &code, t), Some(t / 30));
        assert_eq!(matching_step(&s, &code, t + 30), Some(t / 30));
        assert_eq!(matching_step(&s, &code, t - 30), Some(t / 30));
        assert_eq!(matching_step(&s, &code, t + 90), None);
        assert_eq!(matching_step(&s, "12345", t), None);
    }

    #[test]
    fn otpauth_uri_names_the_issuer() {
        let uri = otpauth_uri(&new_secret(), "110101199001011234").unwrap();
        assert!(uri.starts_with("otpauth://totp/dangjian:"));
    }
}
