//! Where attachments live: the bytes in `<data dir>/attachments/<id>` (directory 0700, files
//! 0600, never under a served folder; the name is the generated id, never the user's), the row
//! in `attachments`. Every write is one transaction with its audit record; the file is written
//! first and removed again when the transaction does not commit ([`PendingFile`]).

use std::path::{Path, PathBuf};

use super::{Accepted, Kind};
use crate::access::Allowed;
use crate::audit::{self, Event, Who};
use crate::db::{new_id, now_rfc3339, Db, Tx};
use crate::error::{ApiError, ApiResult};

/// One stored attachment.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AttachmentRow {
    pub id: String,
    pub kind: String,
    /// The organisation whose subtree may see the file.
    pub org_code: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub created_at: String,
    pub owner_kind: Option<String>,
    pub owner_id: Option<String>,
}

const COLUMNS: &str = "id, kind, org_code, file_name, content_type, size, sha256, uploaded_by, \
    created_at, owner_kind, owner_id";

/// The folder of the attachments' bytes.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("attachments")
}

/// The file of attachment `id`; `None` for an id that is not one this module made (only
/// hex digits and dashes), so no id can name a path.
pub fn file_of(data_dir: &Path, id: &str) -> Option<PathBuf> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    ok.then(|| dir(data_dir).join(id))
}

/// A file written before its row: removed on drop unless [`PendingFile::keep`] was called
/// after the transaction committed.
pub struct PendingFile {
    path: Option<PathBuf>,
}

impl PendingFile {
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::error!("remove the uncommitted attachment {}: {e}", p.display());
            }
        }
    }
}

/// Writes the bytes of a new attachment (a new file, 0600; the folder made 0700).
pub fn write_file(data_dir: &Path, id: &str, bytes: &[u8]) -> ApiResult<PendingFile> {
    use std::io::Write;
    let path = file_of(data_dir, id).ok_or_else(|| ApiError::internal("bad attachment id"))?;
    let folder = dir(data_dir);
    std::fs::create_dir_all(&folder).map_err(ApiError::internal)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
            .map_err(ApiError::internal)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&path).map_err(ApiError::internal)?;
    let pending = PendingFile { path: Some(path) };
    f.write_all(bytes).map_err(ApiError::internal)?;
    f.sync_all().map_err(ApiError::internal)?;
    Ok(pending)
}

/// Reads the bytes of a stored attachment.
pub fn read_file(data_dir: &Path, id: &str) -> ApiResult<Vec<u8>> {
    let path = file_of(data_dir, id).ok_or_else(|| ApiError::not_found("附件"))?;
    std::fs::read(&path)
        .map_err(|e| ApiError::internal(format!("read attachment {}: {e}", path.display())))
}

/// Removes the bytes of an attachment whose row is gone (after the commit).
pub fn remove_file(data_dir: &Path, id: &str) {
    if let Some(path) = file_of(data_dir, id) {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!("remove attachment {}: {e}", path.display());
            }
        }
    }
}

/// The attachment `id`, if any.
pub async fn get(db: &Db, id: &str) -> ApiResult<Option<AttachmentRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM attachments WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.read())
            .await?,
    )
}

async fn insert(tx: &mut Tx, _allowed: &Allowed, row: &AttachmentRow) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO attachments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(&row.id)
    .bind(&row.kind)
    .bind(&row.org_code)
    .bind(&row.file_name)
    .bind(&row.content_type)
    .bind(row.size)
    .bind(&row.sha256)
    .bind(&row.uploaded_by)
    .bind(&row.created_at)
    .bind(&row.owner_kind)
    .bind(&row.owner_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn new_row(who: &Who, org_code: &str, owner: Option<(&str, &str)>, a: &Accepted) -> AttachmentRow {
    AttachmentRow {
        id: new_id(),
        kind: a.kind.as_str().to_string(),
        org_code: org_code.to_string(),
        file_name: a.file_name.clone(),
        content_type: a.content_type.to_string(),
        size: a.bytes.len() as i64,
        sha256: a.sha256.clone(),
        uploaded_by: who.account_id.clone().unwrap_or_else(|| who.name.clone()),
        created_at: now_rfc3339(),
        owner_kind: owner.map(|(k, _)| k.to_string()),
        owner_id: owner.map(|(_, id)| id.to_string()),
    }
}

fn upload_detail(row: &AttachmentRow) -> String {
    format!(
        "{} {} {} {} 字节 sha256 {}",
        row.kind, row.file_name, row.content_type, row.size, row.sha256
    )
}

/// Stores an accepted upload for the subtree of `org_code`, optionally owned by something
/// (`(owner_kind, owner_id)`): the file, then the row and the `attachment.upload` record in
/// one transaction.
pub async fn create(
    db: &Db,
    allowed: &Allowed,
    data_dir: &Path,
    who: &Who,
    org_code: &str,
    owner: Option<(&str, &str)>,
    accepted: &Accepted,
) -> ApiResult<AttachmentRow> {
    let row = new_row(who, org_code, owner, accepted);
    let file = write_file(data_dir, &row.id, &accepted.bytes)?;
    let mut tx = db.begin().await?;
    insert(&mut tx, allowed, &row).await?;
    audit::append(
        &mut tx,
        who,
        Event::ok("attachment.upload", &row.id)
            .in_org(org_code)
            .with_detail(upload_detail(&row)),
    )
    .await?;
    tx.commit().await?;
    file.keep();
    Ok(row)
}

/// Links an attachment uploaded on its own (`POST /attachments`) to what it belongs to, e.g.
/// `("application", id)`, inside the caller's transaction (with the caller's audit record).
/// Only an attachment not linked yet, of the organisation `org_code`, is linked: returns
/// whether it was.
pub async fn link_owner(
    tx: &mut Tx,
    _allowed: &Allowed,
    id: &str,
    org_code: &str,
    owner_kind: &str,
    owner_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE attachments SET owner_kind = $1, owner_id = $2 \
         WHERE id = $3 AND org_code = $4 AND owner_kind IS NULL",
    )
    .bind(owner_kind)
    .bind(owner_id)
    .bind(id)
    .bind(org_code)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The attachments linked to an owner, oldest first.
pub async fn of_owner(db: &Db, owner_kind: &str, owner_id: &str) -> ApiResult<Vec<AttachmentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE owner_kind = $1 AND owner_id = $2 \
         ORDER BY created_at, id"
    ))
    .bind(owner_kind)
    .bind(owner_id)
    .fetch_all(db.read())
    .await?)
}

/// A member's organisation code and photo id (`None` when the member does not exist).
pub async fn member_photo(db: &Db, member_id: &str) -> ApiResult<Option<(String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT org_code, photo_id FROM members WHERE id = $1")
            .bind(member_id)
            .fetch_optional(db.read())
            .await?,
    )
}

/// Sets (`Some`) or removes (`None`) a member's photo: the new file and row, the member's
/// `photo_id`, the old photo's row removed, and the `member.photo` record (plus
/// `attachment.upload` for a new one) in one transaction; the old file is removed after the
/// commit. Returns the new photo's row.
pub async fn set_member_photo(
    db: &Db,
    allowed: &Allowed,
    data_dir: &Path,
    who: &Who,
    member_id: &str,
    org_code: &str,
    photo: Option<&Accepted>,
) -> ApiResult<Option<AttachmentRow>> {
    debug_assert!(photo.is_none_or(|p| p.kind == Kind::Photo));
    let new = photo.map(|p| new_row(who, org_code, Some(("member", member_id)), p));
    let file = match (&new, photo) {
        (Some(row), Some(p)) => Some(write_file(data_dir, &row.id, &p.bytes)?),
        _ => None,
    };
    let mut tx = db.begin().await?;
    let old: Option<Option<String>> =
        sqlx::query_scalar("SELECT photo_id FROM members WHERE id = $1")
            .bind(member_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(old) = old else {
        return Err(ApiError::not_found("党员"));
    };
    if let Some(row) = &new {
        insert(&mut tx, allowed, row).await?;
        audit::append(
            &mut tx,
            who,
            Event::ok("attachment.upload", &row.id)
                .in_org(org_code)
                .with_detail(upload_detail(row)),
        )
        .await?;
    }
    sqlx::query("UPDATE members SET photo_id = $1 WHERE id = $2")
        .bind(new.as_ref().map(|r| r.id.clone()))
        .bind(member_id)
        .execute(&mut *tx)
        .await?;
    if let Some(old_id) = &old {
        sqlx::query("DELETE FROM attachments WHERE id = $1")
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
    }
    let detail = match (&new, &old) {
        (Some(r), _) => format!(
            "照片已更新：{} {} 字节{}",
            r.file_name,
            r.size,
            photo
                .and_then(|p| p.dimensions)
                .map(|(w, h)| format!(" {w}×{h}"))
                .unwrap_or_default()
        ),
        (None, Some(_)) => "照片已删除".to_string(),
        (None, None) => "无照片可删除".to_string(),
    };
    audit::append(
        &mut tx,
        who,
        Event::ok("member.photo", member_id)
            .in_org(org_code)
            .with_detail(detail),
    )
    .await?;
    tx.commit().await?;
    if let Some(f) = file {
        f.keep();
    }
    if let Some(old_id) = old {
        remove_file(data_dir, &old_id);
    }
    Ok(new)
}
