//! Storage of accounts and grants. Every write made for an actor takes the
//! [`Allowed`](crate::access::Allowed) proof of the `access` decision that permits it.

use crate::access::{Allowed, Role};
use crate::crypto::Column;
use crate::db::{flag, new_id, now_rfc3339, Tx};

/// A new account as created by `init`, `demo` or (later) activation.
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub id_number: &'a str,
    pub mobile: &'a str,
    pub password: &'a str,
    pub totp_secret: &'a str,
    pub totp_confirmed: bool,
    pub must_change_password: bool,
}

/// Creates an account; returns its id. The ID number, mobile and TOTP secret are sealed (see
/// `crypto`); the account is found by the blind index of its ID number (`id_number_idx`).
pub async fn create_account(tx: &mut Tx, a: &NewAccount<'_>) -> anyhow::Result<String> {
    let id = new_id();
    let hash = super::password::hash(a.password)?;
    let keys = crate::crypto::keys();
    sqlx::query(
        "INSERT INTO accounts (id, name, id_number, mobile, password_hash, totp_secret, \
         totp_confirmed, must_change_password, created_at, id_number_idx, mobile_idx, sort_pinyin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(a.name)
    .bind(keys.seal(Column::AccountsIdNumber, a.id_number))
    .bind(keys.seal(Column::AccountsMobile, a.mobile))
    .bind(hash)
    .bind(keys.seal(Column::AccountsTotpSecret, a.totp_secret))
    .bind(flag(a.totp_confirmed))
    .bind(flag(a.must_change_password))
    .bind(now_rfc3339())
    .bind(keys.index(Column::AccountsIdNumber, a.id_number))
    .bind(keys.index(Column::AccountsMobile, a.mobile))
    .bind(crate::collate::pinyin_key(a.name))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Counts one failed sign-in or code attempt of the account atomically and locks it for
/// [`LOCK_MINUTES`](super::LOCK_MINUTES) on the [`MAX_FAILED_ATTEMPTS`](super::MAX_FAILED_ATTEMPTS)th
/// (the count starts again from zero after a lock). Returns the lock's end when this failure
/// locked the account.
pub async fn count_failure(
    tx: &mut Tx,
    allowed: &Allowed,
    account_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(count_failure_counted(tx, allowed, account_id).await?.1)
}

/// [`count_failure`], also answering the failures counted since the last lock or success
/// (0 when this failure locked the account): what the sign-in page's "tries left" is made of.
pub async fn count_failure_counted(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
) -> Result<(i64, Option<String>), sqlx::Error> {
    let until = (chrono::Utc::now() + chrono::Duration::minutes(super::LOCK_MINUTES))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "UPDATE accounts SET \
         failed_attempts = CASE WHEN failed_attempts + 1 >= $1 THEN 0 ELSE failed_attempts + 1 END, \
         locked_until = CASE WHEN failed_attempts + 1 >= $1 THEN $2 ELSE locked_until END \
         WHERE id = $3 RETURNING failed_attempts, locked_until",
    )
    .bind(super::MAX_FAILED_ATTEMPTS)
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

/// Counts one failed sign-in of an ID number that has no account, by its blind index, as
/// [`count_failure_counted`] counts an account's (0 on the fifth, which starts again), in SQL
/// so that concurrent failures on any server all count. Counts untouched for a day are dropped
/// when a new one starts.
pub async fn count_unknown_failure(
    tx: &mut Tx,
    _allowed: &Allowed,
    id_index: &str,
) -> Result<i64, sqlx::Error> {
    let now = crate::db::now_rfc3339();
    let (n,): (i64,) = sqlx::query_as(
        "INSERT INTO unknown_sign_in_failures (id_index, n, updated_at) VALUES ($1, 1, $2) \
         ON CONFLICT (id_index) DO UPDATE SET \
         n = CASE WHEN unknown_sign_in_failures.n + 1 >= $3 THEN 0 \
         ELSE unknown_sign_in_failures.n + 1 END, updated_at = $2 RETURNING n",
    )
    .bind(id_index)
    .bind(&now)
    .bind(super::MAX_FAILED_ATTEMPTS)
    .fetch_one(&mut **tx)
    .await?;
    if n == 1 {
        let day_ago = (chrono::Utc::now() - chrono::Duration::days(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        sqlx::query("DELETE FROM unknown_sign_in_failures WHERE updated_at < $1")
            .bind(day_ago)
            .execute(&mut **tx)
            .await?;
    }
    Ok(n)
}

/// The unified codes of the organisations of the account's live (unrevoked) grants: what
/// `access::account_admin` decides a security officer's reach over the account on.
pub async fn live_grant_codes<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    e: E,
    account_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT o.code FROM grants g JOIN orgs o ON o.id = g.org_id \
         WHERE g.account_id = $1 AND g.revoked_at IS NULL",
    )
    .bind(account_id)
    .fetch_all(e)
    .await
}

/// Claims the account for `role`'s family before a grant is added: a conditional UPDATE that
/// succeeds only when the account holds no family yet or the same one. On PostgreSQL it takes
/// the account's row lock, so two concurrent grants of different families cannot both pass;
/// on SQLite the single writer serialises them. `false`: the account belongs to another family.
pub async fn claim_role_family(
    tx: &mut Tx,
    account_id: &str,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE accounts SET role_family = $1 WHERE id = $2 \
         AND (role_family IS NULL OR role_family = $1)",
    )
    .bind(role.as_str())
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases the account's role family when its last live grant is gone.
pub async fn release_role_family_if_unused(
    tx: &mut Tx,
    account_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET role_family = NULL WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM grants WHERE account_id = $1 AND revoked_at IS NULL)",
    )
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a grant of `role` on `org_id`; returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn create_grant(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
    role: Role,
    org_id: &str,
    tier: Option<u8>,
    is_default: bool,
    created_by: Option<&str>,
) -> Result<String, sqlx::Error> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO grants (id, account_id, role, org_id, tier, is_default, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(account_id)
    .bind(role.as_str())
    .bind(org_id)
    .bind(tier.map(i64::from))
    .bind(flag(is_default))
    .bind(created_by.map(str::to_string))
    .bind(now_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// One grant as shown to its holder.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct GrantView {
    pub grant_id: String,
    pub role: Role,
    pub tier: Option<u8>,
    pub org_id: String,
    pub org_name: String,
    pub org_code: String,
    pub is_default: bool,
}

/// The live grants of an account, default first.
pub async fn grants_of(
    db: &crate::db::Db,
    account_id: &str,
) -> Result<Vec<GrantView>, sqlx::Error> {
    type Row = (String, String, Option<i64>, String, String, String, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT g.id, g.role, g.tier, g.org_id, o.name, o.code, g.is_default FROM grants g \
         JOIN orgs o ON o.id = g.org_id WHERE g.account_id = $1 AND g.revoked_at IS NULL \
         ORDER BY g.is_default DESC, g.created_at",
    )
    .bind(account_id)
    .fetch_all(db.read())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(GrantView {
                grant_id: r.0,
                role: Role::parse(&r.1)?,
                tier: r.2.map(|t| t as u8),
                org_id: r.3,
                org_name: r.4,
                org_code: r.5,
                is_default: r.6 != 0,
            })
        })
        .collect())
}

/// 撤销授权: revokes a live grant, ends its sessions, passes the default to another live grant
/// and, when none is left, releases the role family and voids unused activation codes. `false`
/// when the grant was no longer live (a concurrent revocation won: one effect only).
pub async fn revoke_grant(
    tx: &mut Tx,
    _allowed: &Allowed,
    grant_id: &str,
    account_id: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_rfc3339();
    let was_default: Option<i64> =
        sqlx::query_scalar("SELECT is_default FROM grants WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .fetch_optional(&mut **tx)
            .await?;
    let revoked = sqlx::query(
        "UPDATE grants SET revoked_at = $1, is_default = 0 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(&now)
    .bind(grant_id)
    .execute(&mut **tx)
    .await?;
    let (Some(was_default), 1) = (was_default, revoked.rows_affected()) else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM sessions WHERE grant_id = $1")
        .bind(grant_id)
        .execute(&mut **tx)
        .await?;
    let live: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM grants WHERE account_id = $1 AND revoked_at IS NULL ORDER BY created_at",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?;
    if was_default != 0 {
        if let Some(next) = live.first() {
            sqlx::query("UPDATE grants SET is_default = 1 WHERE id = $1")
                .bind(next)
                .execute(&mut **tx)
                .await?;
        }
    }
    if live.is_empty() {
        release_role_family_if_unused(tx, account_id).await?;
        sqlx::query(
            "UPDATE activation_codes SET revoked_at = $1 WHERE account_id = $2 AND used_at IS NULL \
             AND revoked_at IS NULL",
        )
        .bind(&now)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

/// 解锁: clears the lock and the failure count.
pub async fn unlock(tx: &mut Tx, _allowed: &Allowed, account_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET failed_attempts = 0, locked_until = NULL WHERE id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// 重置: clears password and authenticator and ends every session of the account.
pub async fn reset_credentials(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
) -> Result<(), sqlx::Error> {
    super::activation::set_credentials(tx, _allowed, account_id, None, None).await?;
    sqlx::query("DELETE FROM sessions WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// 角色切换: makes `grant_id` the session's active grant.
pub async fn switch_session_grant(
    tx: &mut Tx,
    _allowed: &Allowed,
    token_hash: &str,
    grant_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET grant_id = $1 WHERE token_hash = $2")
        .bind(grant_id)
        .bind(token_hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// 退出所有设备: ends every session of the account; returns how many.
pub async fn end_sessions(
    tx: &mut Tx,
    _allowed: &Allowed,
    account_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM sessions WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}
