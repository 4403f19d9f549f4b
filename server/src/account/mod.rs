//! Accounts 账号: passwords, six-digit codes, grants (role + scope + tier) and sessions.

pub mod activation;
pub mod change_password;
pub mod grants;
pub mod password;
pub mod routes;
pub mod session;
pub mod store;
pub mod throttle;
pub mod totp;

/// Consecutive failures of password or code that lock an account.
pub const MAX_FAILED_ATTEMPTS: i64 = 5;
/// How long a lock lasts.
pub const LOCK_MINUTES: i64 = 30;
