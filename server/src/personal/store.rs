//! Storage of members' own accounts: SMS codes, accounts, sessions. Every write takes the
//! [`Allowed`] proof; every change lands in one transaction with its audit record (the
//! callers in `routes.rs` hold the transaction).

use chrono::{Duration, SecondsFormat, Utc};
use rand::Rng;

use super::rules::code_hash;
use super::{CODES_PER_HOUR, CODE_ATTEMPTS, CODE_MINUTES, RESEND_SECONDS};
use crate::access::Allowed;
use crate::crypto::{self, Column};
use crate::db::{new_id, now_rfc3339, Db, Tx};
use crate::member::{MemberRow, MEMBER_COLUMNS};

fn fmt(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// 党员注册: bound to the mobile's blind index.
    Register,
    /// 党员登录: bound to the member account.
    SignIn,
    /// 忘记密码: bound to the member account.
    Reset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "sign_in",
            Purpose::Reset => "password_reset",
        }
    }
}

/// The subject a registration code is bound to: the mobile's blind index (the mobile itself
/// is never stored for a code).
pub fn mobile_subject(mobile: &str) -> String {
    crypto::index(Column::MembersRegisteredPhone, mobile)
}

/// The ID number's blind index, as `members.id_number_idx` holds it.
pub fn id_number_index(id_number: &str) -> String {
    crypto::index(Column::MembersIdNumber, id_number)
}

/// May another code be sent to `subject` now? Not while an unused code of the last minute is
/// live (the earlier code stays valid), and no more than [`CODES_PER_HOUR`] an hour.
pub async fn may_send(db: &Db, purpose: Purpose, subject: &str) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let (recent, hourly): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN created_at > $1 AND used_at IS NULL THEN 1 ELSE 0 END), 0), \
         COUNT(*) \
         FROM member_codes WHERE purpose = $2 AND subject = $3 AND created_at > $4",
    )
    .bind(fmt(now - Duration::seconds(RESEND_SECONDS)))
    .bind(purpose.as_str())
    .bind(subject)
    .bind(fmt(now - Duration::hours(1)))
    .fetch_one(db.primary())
    .await?;
    Ok(recent == 0 && hourly < CODES_PER_HOUR)
}

/// Stores a new six-digit code for `subject` (hashed) and returns it; the caller sends it
/// after the commit.
pub async fn new_code(
    tx: &mut Tx,
    _allowed: &Allowed,
    purpose: Purpose,
    subject: &str,
) -> Result<String, sqlx::Error> {
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO member_codes (id, purpose, subject, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(purpose.as_str())
    .bind(subject)
    .bind(code_hash(subject, &code))
    .bind(fmt(now))
    .bind(fmt(now + Duration::minutes(CODE_MINUTES)))
    .execute(&mut **tx)
    .await?;
    Ok(code)
}

/// The outcome of checking a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck {
    /// The live code matches: its id, to be consumed in the transaction of the change.
    Right(String),
    /// Wrong: one attempt of the live code is used up (counted in SQL).
    Wrong,
    /// No live code (none sent, expired, used, or its attempts used up).
    None,
}

/// Checks `code` against the newest live code of `subject`; a wrong answer uses one of its
/// [`CODE_ATTEMPTS`] (`attempts + 1` in SQL, so concurrent wrong answers all count).
pub async fn check_code(
    db: &Db,
    allowed: &Allowed,
    purpose: Purpose,
    subject: &str,
    code: &str,
) -> Result<CodeCheck, sqlx::Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, code_hash FROM member_codes WHERE purpose = $1 AND subject = $2 \
         AND used_at IS NULL AND expires_at > $3 AND attempts < $4 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(purpose.as_str())
    .bind(subject)
    .bind(now_rfc3339())
    .bind(CODE_ATTEMPTS)
    .fetch_optional(db.primary())
    .await?;
    let Some((id, hash)) = row else {
        return Ok(CodeCheck::None);
    };
    if hash == code_hash(subject, code) {
        return Ok(CodeCheck::Right(id));
    }
    use_attempt(db, allowed, &id).await?;
    Ok(CodeCheck::Wrong)
}

/// Uses up one attempt of a code.
pub async fn use_attempt(db: &Db, _allowed: &Allowed, code_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE member_codes SET attempts = attempts + 1 WHERE id = $1")
        .bind(code_id)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Consumes a code: the conditional UPDATE that of concurrent uses lets exactly one pass.
pub async fn consume_code(
    tx: &mut Tx,
    _allowed: &Allowed,
    code_id: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE member_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND attempts < $3",
    )
    .bind(now_rfc3339())
    .bind(code_id)
    .bind(CODE_ATTEMPTS)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The living member with this ID number (through its blind index), opened.
pub async fn living_member(db: &Db, id_number: &str) -> Result<Option<MemberRow>, sqlx::Error> {
    let row: Option<MemberRow> = sqlx::query_as(&format!(
        "SELECT {MEMBER_COLUMNS} FROM members m WHERE m.id_number_idx = $1 AND m.status = 'normal'"
    ))
    .bind(id_number_index(id_number))
    .fetch_optional(db.primary())
    .await?;
    row.map(|r| {
        r.decrypted()
            .map_err(|e| sqlx::Error::Protocol(format!("open member: {e}")))
    })
    .transpose()
}

/// Does the member hold a live personal account?
pub async fn has_account(db: &Db, member_id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM member_accounts WHERE member_id = $1 AND status = 'active'",
    )
    .bind(member_id)
    .fetch_one(db.primary())
    .await?;
    Ok(n > 0)
}

/// Why registering failed inside the transaction.
#[derive(Debug)]
pub enum RegisterError {
    /// Another member holds the phone, or another phone was registered meanwhile.
    PhoneTaken,
    /// The member holds a live account already (a concurrent registration won).
    AlreadyRegistered,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for RegisterError {
    fn from(e: sqlx::Error) -> Self {
        let message = e
            .as_database_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default();
        if message.contains("member_accounts") {
            RegisterError::AlreadyRegistered
        } else if message.contains("registered_phone") {
            RegisterError::PhoneTaken
        } else {
            RegisterError::Db(e)
        }
    }
}

/// Sets the registered phone when none is recorded (or checks that it is this one), then
/// creates the member's account: a conditional UPDATE and an INSERT that the partial unique
/// indexes of `member_accounts` keep to one live account per member and per person.
pub async fn register(
    tx: &mut Tx,
    _allowed: &Allowed,
    member: &MemberRow,
    mobile: &str,
    password_hash: &str,
) -> Result<String, RegisterError> {
    let phone_idx = mobile_subject(mobile);
    let set = sqlx::query(
        "UPDATE members SET registered_phone = CASE WHEN registered_phone_idx IS NULL THEN $1 \
         ELSE registered_phone END, registered_phone_idx = $2, updated_at = $4 \
         WHERE id = $3 AND (registered_phone_idx IS NULL OR registered_phone_idx = $2)",
    )
    .bind(crypto::seal(Column::MembersRegisteredPhone, mobile))
    .bind(&phone_idx)
    .bind(&member.id)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    if set.rows_affected() != 1 {
        return Err(RegisterError::PhoneTaken);
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO member_accounts (id, member_id, id_number_idx, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(&member.id)
    .bind(id_number_index(&member.id_number))
    .bind(password_hash)
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// A member account as sign-in reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub member_id: String,
    pub name: String,
    pub password_hash: String,
    pub locked_until: Option<String>,
    pub registered_phone: Option<String>,
    pub branch_id: String,
    pub org_code: String,
    /// The authenticator's secret (opened), once enrolment started.
    pub totp_secret: Option<String>,
    /// 1 once the authenticator is confirmed: its codes sign in instead of SMS codes.
    pub totp_confirmed: i64,
    /// The last TOTP step used (no code signs in twice).
    pub last_totp_step: i64,
}

impl AccountRow {
    /// The account as the audit log names its actor.
    pub fn who(&self, client: &str) -> crate::audit::Who {
        crate::audit::Who {
            account_id: Some(self.id.clone()),
            name: self.name.clone(),
            role: "member".to_string(),
            org_id: Some(self.branch_id.clone()),
            org_code: Some(self.org_code.clone()),
            ..crate::audit::Who::anonymous(client)
        }
    }
}

/// Sets a member account's password (failures and lock cleared) and ends its sessions but
/// `keep` (the session that changed it); returns the sessions ended.
pub async fn set_password(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
    password_hash: &str,
    keep: Option<&str>,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "UPDATE member_accounts SET password_hash = $1, failed_attempts = 0, locked_until = NULL \
         WHERE id = $2",
    )
    .bind(password_hash)
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    let r = sqlx::query(
        "DELETE FROM member_sessions WHERE member_account_id = $1 AND token_hash <> $2",
    )
    .bind(account_id)
    .bind(keep.unwrap_or(""))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// The live account of the living member with this ID number.
pub async fn account_by_id_number(
    db: &Db,
    id_number: &str,
) -> Result<Option<AccountRow>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT a.id, a.member_id, m.name, a.password_hash, a.locked_until, m.registered_phone, \
         m.branch_id, m.org_code, a.totp_secret, a.totp_confirmed, a.last_totp_step \
         FROM member_accounts a JOIN members m ON m.id = a.member_id \
         WHERE a.id_number_idx = $1 AND a.status = 'active' AND m.status = 'normal'",
    )
    .bind(id_number_index(id_number))
    .fetch_optional(db.primary())
    .await?;
    row.map(|mut r| {
        r.registered_phone = crypto::open_opt(
            Column::MembersRegisteredPhone,
            r.registered_phone.as_deref(),
        )
        .map_err(|e| sqlx::Error::Protocol(format!("open phone: {e}")))?;
        r.totp_secret =
            crypto::open_opt(Column::MemberAccountsTotpSecret, r.totp_secret.as_deref())
                .map_err(|e| sqlx::Error::Protocol(format!("open TOTP secret: {e}")))?;
        Ok(r)
    })
    .transpose()
}

/// Counts one failed sign-in of a member account in SQL and locks it on the
/// [`crate::account::MAX_FAILED_ATTEMPTS`]th (as `account::store::count_failure_counted` does
/// for administrators). Returns (failures counted, locked until).
pub async fn count_failure(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
) -> Result<(i64, Option<String>), sqlx::Error> {
    let until = fmt(Utc::now() + Duration::minutes(crate::account::LOCK_MINUTES));
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "UPDATE member_accounts SET \
         failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END, \
         locked_until = CASE WHEN failed_attempts + 1 >= $1 THEN $2 ELSE locked_until END \
         WHERE id = $3 RETURNING failed_attempts, locked_until",
    )
    .bind(crate::account::MAX_FAILED_ATTEMPTS)
    .bind(&until)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some((0, Some(locked))) if locked == until => (0, Some(locked)),
        Some((n, _)) => (n, None),
        None => (0, None),
    })
}

/// Opens a member session after a verified sign-in (failures reset); returns (token, csrf).
pub async fn open_session(
    tx: &mut Tx,
    _allowed: &Allowed,
    account: &AccountRow,
    client: &str,
) -> Result<(String, String), sqlx::Error> {
    use crate::account::session::{random_token, token_hash, ABSOLUTE_TIMEOUT_HOURS};
    sqlx::query(
        "UPDATE member_accounts SET failed_attempts = 0, locked_until = NULL WHERE id = $1",
    )
    .bind(&account.id)
    .execute(&mut **tx)
    .await?;
    let token = random_token();
    let csrf = random_token();
    let now = Utc::now();
    sqlx::query(
        "INSERT INTO member_sessions (token_hash, member_account_id, member_id, csrf_token, \
         client_addr, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token_hash(&token))
    .bind(&account.id)
    .bind(&account.member_id)
    .bind(&csrf)
    .bind(client)
    .bind(fmt(now))
    .bind(fmt(now))
    .bind(fmt(now + Duration::hours(ABSOLUTE_TIMEOUT_HOURS)))
    .execute(&mut **tx)
    .await?;
    Ok((token, csrf))
}

/// Disables the personal account of a member who leaves the living database and ends its
/// sessions, in the caller's transaction (`approval::history::move_out`).
pub async fn disable_for_member(
    tx: &mut Tx,
    _allowed: &Allowed,
    member_id: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM member_sessions WHERE member_id = $1")
        .bind(member_id)
        .execute(&mut **tx)
        .await?;
    let r = sqlx::query(
        "UPDATE member_accounts SET status = 'disabled', disabled_at = $1 \
         WHERE member_id = $2 AND status = 'active'",
    )
    .bind(now_rfc3339())
    .bind(member_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// Starts the enrolment of an authenticator: the new secret (sealed) replaces any earlier
/// one, unconfirmed, so that SMS codes sign in until it is confirmed.
pub async fn start_totp(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
    secret: &str,
) -> Result<(), sqlx::Error> {
    let sealed = crypto::seal(Column::MemberAccountsTotpSecret, secret);
    sqlx::query(
        "UPDATE member_accounts SET totp_secret = $1, totp_confirmed = 0, last_totp_step = 0 \
         WHERE id = $2",
    )
    .bind(sealed)
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The authenticator secret of an account and whether it is confirmed.
pub async fn totp_of(db: &Db, account_id: &str) -> Result<(Option<String>, bool), sqlx::Error> {
    let row: Option<(Option<String>, i64)> =
        sqlx::query_as("SELECT totp_secret, totp_confirmed FROM member_accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(db.primary())
            .await?;
    let (secret, confirmed) = row.unwrap_or((None, 0));
    let secret = crypto::open_opt(Column::MemberAccountsTotpSecret, secret.as_deref())
        .map_err(|e| sqlx::Error::Protocol(format!("open TOTP secret: {e}")))?;
    Ok((secret, confirmed == 1))
}

/// Claims TOTP step `step` of an account: the conditional UPDATE that lets each step sign in
/// (or confirm the enrolment, `confirm`) once, of concurrent uses exactly one.
pub async fn claim_totp_step(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
    step: i64,
    confirm: bool,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE member_accounts SET last_totp_step = $1, \
         totp_confirmed = CASE WHEN $2 = 1 THEN 1 ELSE totp_confirmed END \
         WHERE id = $3 AND last_totp_step < $1 AND totp_secret IS NOT NULL \
         AND (totp_confirmed = 1 OR $2 = 1)",
    )
    .bind(step)
    .bind(i64::from(confirm))
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
