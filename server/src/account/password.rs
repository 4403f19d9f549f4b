//! Passwords: argon2id hashing (OWASP parameters), the password policy and one-time passwords.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

fn hasher() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hash password: {e}"))?
        .to_string())
}

pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// argon2 computations allowed at once: each takes ~19 MiB and tens of milliseconds of one core.
fn permits() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// Requests allowed to wait for a permit; past this, sign-in answers 429 at once.
const MAX_WAITING: usize = 64;

static WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(permits()))
}

/// The answer when too many password checks are queued.
pub fn busy() -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "busy",
        "当前登录请求过多，请稍后再试",
    )
}

/// Runs an argon2 computation on tokio's blocking pool, at most [`permits`] at a time, so that
/// sign-ins never stall the worker threads that serve every other request (card sessions
/// included). Past [`MAX_WAITING`] queued requests the answer is 429 `busy`.
async fn off_the_workers<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::error::ApiError> {
    use std::sync::atomic::Ordering;
    if WAITING.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        WAITING.fetch_sub(1, Ordering::SeqCst);
        return Err(busy());
    }
    let permit = slots().acquire().await;
    WAITING.fetch_sub(1, Ordering::SeqCst);
    let permit = permit.map_err(crate::error::ApiError::internal)?;
    let out = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(crate::error::ApiError::internal)?;
    Ok(out)
}

/// [`verify`] off the worker threads (see [`off_the_workers`]).
pub async fn verify_async(password: &str, stored: &str) -> Result<bool, crate::error::ApiError> {
    let (password, stored) = (password.to_string(), stored.to_string());
    off_the_workers(move || verify(&password, &stored)).await
}

/// [`hash`] off the worker threads (see [`off_the_workers`]).
pub async fn hash_async(password: &str) -> Result<String, crate::error::ApiError> {
    let password = password.to_string();
    off_the_workers(move || hash(&password))
        .await?
        .map_err(crate::error::ApiError::internal)
}

/// A hash that matches nothing, verified against when the account does not exist so that the
/// answer takes as long as for a real account.
pub fn dummy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2pN5gq0TvBvM3d7Fq0mFzJQeRrC7Wc5sJ0r4P1bQm0Y"
}

/// The password policy (SPEC §8): 8-18 characters with upper case, lower case and digits.
pub fn check_policy(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if !(8..=18).contains(&n) {
        return Err("密码长度应为8至18位".to_string());
    }
    let upper = password.chars().any(|c| c.is_ascii_uppercase());
    let lower = password.chars().any(|c| c.is_ascii_lowercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    if !(upper && lower && digit) {
        return Err("密码须同时包含大写字母、小写字母和数字".to_string());
    }
    Ok(())
}

/// A random password that satisfies the policy (first sign-in and demo accounts).
pub fn generate() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    let mut rng = rand::thread_rng();
    let mut out = String::new();
    for set in [
        UPPER, LOWER, DIGIT, UPPER, LOWER, DIGIT, LOWER, DIGIT, UPPER, LOWER, DIGIT, LOWER,
    ] {
        out.push(set[rng.gen_range(0..set.len())] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("Abcdefg123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("Abcdefg123", &h));
        assert!(!verify("Abcdefg124", &h));
        assert!(!verify("Abcdefg123", dummy_hash()));
    }

    #[test]
    fn policy() {
        assert!(check_policy("Abcdefg1").is_ok());
        assert!(check_policy("abcdefg1").is_err());
        assert!(check_policy("Abc1").is_err());
        assert!(check_policy("Abcdefghijklmnopq12").is_err());
        for _ in 0..20 {
            assert!(check_policy(&generate()).is_ok());
        }
    }
}
