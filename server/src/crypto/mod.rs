//! Encryption at rest of personal information (SPEC §13): ID numbers, phone numbers and TOTP
//! secrets are sealed with AES-256-GCM before they reach the database, and looked up through a
//! keyed blind index (HMAC-SHA256).
//!
//! - A sealed value is text: `v<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, with a random
//!   96-bit nonce per value and the column (`table.column`) as associated data, so a value
//!   copied into another column does not open.
//! - The keys live in `keys.json` in the data directory (mode 0600), never in the database:
//!   numbered AEAD keys (one current, older ones kept for reading until a rotation retires
//!   them) and one blind-index key.
//! - The blind index is `hex(HMAC-SHA256(index key, kind ‖ 0 ‖ value))[..32]`. It is keyed by the
//!   *kind* of value (ID number, phone), not by column, so the same ID number has the same
//!   index in `members` and `accounts` and the two can be joined. The last four characters of
//!   a member's ID number (what lists show) have their own kind, `id_number_suffix`
//!   (`members.id_suffix_idx`), so the search finds them without opening the province.
//!
//! The process holds one key ring ([`install`], [`keys`]), set up when the data directory is
//! opened: storage functions that only see a transaction (`account::store::create_account`)
//! reach the keys the same way as handlers. The ring notices a rotation by another process (a
//! value under an unknown key id, or a newer key file) and reloads the file.

pub mod rotate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The name of the key file in the data directory.
pub const KEY_FILE: &str = "keys.json";
/// The unknown ID number placeholder has no blind index (NULL), so it may repeat.
pub const UNKNOWN_ID_NUMBER: &str = "000000000000000000";
const TAG_LEN: usize = 16;
/// Hex characters kept of the blind index (128 bits).
const INDEX_HEX_LEN: usize = 32;
/// How often the ring looks at the key file for a rotation made by another process.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// An encrypted column. Its name is the associated data of every value sealed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    MembersIdNumber,
    MembersPhone,
    MembersRegisteredPhone,
    AccountsIdNumber,
    AccountsMobile,
    AccountsTotpSecret,
    /// A member's authenticator secret (`member_accounts.totp_secret`, `personal/`).
    MemberAccountsTotpSecret,
    OrgsContactPhone,
    /// The submitted data of an application (JSON; may carry an ID number and phones).
    ApplicationsData,
    RealnameIdNumber,
    /// What a transfer carries (JSON: the ID number, contacts, an inbound member's record).
    TransfersData,
    /// The fields of a transfer letter (`letters.fields`, JSON; `letter::store`).
    LettersFields,
    /// The good rows of a pending member import (`member_import_chunks.data`, JSON).
    ImportChunks,
    /// The report of a member import (`member_imports.report`, JSON).
    ImportReport,
}

impl Column {
    pub const ALL: [Column; 14] = [
        Column::MembersIdNumber,
        Column::MembersPhone,
        Column::MembersRegisteredPhone,
        Column::AccountsIdNumber,
        Column::AccountsMobile,
        Column::AccountsTotpSecret,
        Column::MemberAccountsTotpSecret,
        Column::OrgsContactPhone,
        Column::ApplicationsData,
        Column::RealnameIdNumber,
        Column::TransfersData,
        Column::LettersFields,
        Column::ImportChunks,
        Column::ImportReport,
    ];

    /// `table.column`, the associated data.
    pub fn name(self) -> &'static str {
        match self {
            Column::MembersIdNumber => "members.id_number",
            Column::MembersPhone => "members.phone",
            Column::MembersRegisteredPhone => "members.registered_phone",
            Column::AccountsIdNumber => "accounts.id_number",
            Column::AccountsMobile => "accounts.mobile",
            Column::AccountsTotpSecret => "accounts.totp_secret",
            Column::MemberAccountsTotpSecret => "member_accounts.totp_secret",
            Column::OrgsContactPhone => "orgs.contact_phone",
            Column::ApplicationsData => "applications.data",
            Column::RealnameIdNumber => "realname_registry.id_number",
            Column::TransfersData => "transfers.data",
            Column::LettersFields => "letters.fields",
            Column::ImportChunks => "member_import_chunks.data",
            Column::ImportReport => "member_imports.report",
        }
    }

    /// The kind of value the blind index is computed over (shared between tables).
    fn index_kind(self) -> &'static str {
        match self {
            Column::MembersIdNumber | Column::AccountsIdNumber | Column::RealnameIdNumber => {
                "id_number"
            }
            Column::MembersPhone
            | Column::MembersRegisteredPhone
            | Column::AccountsMobile
            | Column::OrgsContactPhone => "phone",
            Column::AccountsTotpSecret | Column::MemberAccountsTotpSecret => "totp_secret",
            Column::ApplicationsData => "application_data",
            Column::TransfersData => "transfer_data",
            Column::LettersFields => "letter_fields",
            Column::ImportChunks => "import_chunks",
            Column::ImportReport => "import_report",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}: not a sealed value")]
    Malformed(&'static str),
    #[error("{column}: sealed under key v{key}, which is not in the key file")]
    UnknownKey { column: &'static str, key: u32 },
    #[error("{0}: value does not open (tampered, or sealed for another column)")]
    Tampered(&'static str),
}

impl From<Error> for crate::error::ApiError {
    fn from(e: Error) -> Self {
        crate::error::ApiError::internal(e)
    }
}

/// `keys.json` as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// The id of the key new values are sealed with.
    pub current: u32,
    pub keys: Vec<KeyEntry>,
    /// Base64 of the 32-byte blind-index key. Never rotated (see `rotate`).
    pub index_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub id: u32,
    /// Base64 of the 32-byte AES-256-GCM key.
    pub key: String,
    pub created_at: String,
    /// Set once a rotation has re-encrypted every value away from this key; a retired key is
    /// kept for reading stragglers and may be removed by hand later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
}

fn random_key() -> String {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .expect("system random generator");
    B64.encode(k)
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

impl KeyFile {
    /// A new key file: key v1 and a blind-index key.
    pub fn generate() -> KeyFile {
        KeyFile {
            current: 1,
            keys: vec![KeyEntry {
                id: 1,
                key: random_key(),
                created_at: crate::db::now_rfc3339(),
                retired_at: None,
            }],
            index_key: random_key(),
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<KeyFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read key file {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parse key file {}", path.display()))
    }

    /// Writes the file with mode 0600, atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        crate::config::write_private(&tmp, serde_json::to_string_pretty(self)?.as_bytes())?;
        std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))
    }

    /// Adds a key version and makes it current; the previous one stays for reading.
    pub fn add_version(&mut self) -> u32 {
        let id = self.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        self.keys.push(KeyEntry {
            id,
            key: random_key(),
            created_at: crate::db::now_rfc3339(),
            retired_at: None,
        });
        self.current = id;
        id
    }

    /// Marks every key other than the current one retired.
    pub fn retire_all_but_current(&mut self) {
        let now = crate::db::now_rfc3339();
        for k in &mut self.keys {
            if k.id != self.current && k.retired_at.is_none() {
                k.retired_at = Some(now.clone());
            }
        }
    }
}

/// The keys in memory: seal, open, index.
pub struct Keys {
    current: u32,
    aead: BTreeMap<u32, LessSafeKey>,
    index: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("current", &self.current)
            .field("versions", &self.aead.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn decode_key(b64: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let k = B64
        .decode(b64.trim())
        .with_context(|| format!("{what}: not base64"))?;
    anyhow::ensure!(
        k.len() == 32,
        "{what}: expected 32 bytes, found {}",
        k.len()
    );
    Ok(k)
}

impl Keys {
    pub fn from_file(file: &KeyFile) -> anyhow::Result<Keys> {
        let mut aead = BTreeMap::new();
        for e in &file.keys {
            let k = decode_key(&e.key, &format!("key v{}", e.id))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &k)
                .map_err(|_| anyhow::anyhow!("key v{}: rejected", e.id))?;
            anyhow::ensure!(
                aead.insert(e.id, LessSafeKey::new(unbound)).is_none(),
                "key v{} appears twice",
                e.id
            );
        }
        anyhow::ensure!(
            aead.contains_key(&file.current),
            "current key v{} is not in the key file",
            file.current
        );
        let index = hmac::Key::new(
            hmac::HMAC_SHA256,
            &decode_key(&file.index_key, "index key")?,
        );
        Ok(Keys {
            current: file.current,
            aead,
            index,
            rng: SystemRandom::new(),
        })
    }

    /// Fresh random keys that live as long as the value (unit tests, tools).
    pub fn ephemeral() -> Keys {
        Keys::from_file(&KeyFile::generate()).expect("generated keys are valid")
    }

    /// The id of the key new values are sealed with.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Encrypts `plaintext` for `column` under the current key.
    pub fn seal(&self, column: Column, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system random generator");
        let key = &self.aead[&self.current];
        let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
        body.extend_from_slice(plaintext.as_bytes());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(column.name().as_bytes()),
            &mut body,
        )
        .expect("AES-GCM seals any length the database holds");
        let mut out = Vec::with_capacity(NONCE_LEN + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        format!("v{}:{}", self.current, B64.encode(&out))
    }

    /// Decrypts a value sealed for `column`. The empty string (a column default) opens as
    /// itself.
    pub fn open(&self, column: Column, stored: &str) -> Result<String, Error> {
        if stored.is_empty() {
            return Ok(String::new());
        }
        let (key_id, body) = parse(stored).ok_or(Error::Malformed(column.name()))?;
        let key = self.aead.get(&key_id).ok_or(Error::UnknownKey {
            column: column.name(),
            key: key_id,
        })?;
        let mut bytes = B64
            .decode(body)
            .map_err(|_| Error::Malformed(column.name()))?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::Malformed(column.name()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(column.name().as_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| Error::Tampered(column.name()))?;
        String::from_utf8(plain.to_vec()).map_err(|_| Error::Tampered(column.name()))
    }

    /// The blind index of `plaintext` for exact lookup and uniqueness. ID numbers are
    /// normalised (trimmed, upper-case `X`) first.
    pub fn index(&self, column: Column, plaintext: &str) -> String {
        let kind = column.index_kind();
        let value = if kind == "id_number" {
            plaintext.trim().to_ascii_uppercase()
        } else {
            plaintext.trim().to_string()
        };
        self.keyed(kind, &value)
    }

    /// `hex(HMAC-SHA256(index key, kind ‖ 0 ‖ value))[..32]`.
    fn keyed(&self, kind: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.index);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let mut h = hex::encode(ctx.sign().as_ref());
        h.truncate(INDEX_HEX_LEN);
        h
    }

    /// The blind index of the last four characters of an ID number as lists show them
    /// (`members.id_suffix_idx`), typed in a search box or taken from a whole number: its own
    /// kind, so it never equals an index of another kind of value.
    pub fn id_suffix_index(&self, suffix: &str) -> String {
        self.keyed(ID_SUFFIX_KIND, &suffix.trim().to_ascii_uppercase())
    }

    /// The suffix index of a member's whole ID number: none for the unknown-number placeholder
    /// or a value too short to have four characters.
    pub fn id_number_suffix_index(&self, id_number: &str) -> Option<String> {
        id_suffix(id_number).map(|s| self.id_suffix_index(&s))
    }

    /// The blind index of a member's ID number: none for the unknown-number placeholder, which
    /// may repeat.
    pub fn id_number_index(&self, column: Column, id_number: &str) -> Option<String> {
        (id_number.trim() != UNKNOWN_ID_NUMBER).then(|| self.index(column, id_number))
    }
}

/// The index kind of ID number suffixes.
const ID_SUFFIX_KIND: &str = "id_number_suffix";

/// The last four characters of an ID number (upper-case `X`): none for the unknown-number
/// placeholder or a shorter value.
pub fn id_suffix(id_number: &str) -> Option<String> {
    let n = id_number.trim().to_ascii_uppercase();
    if n == UNKNOWN_ID_NUMBER || n.chars().count() < 4 {
        return None;
    }
    let skip = n.chars().count() - 4;
    Some(n.chars().skip(skip).collect())
}

/// The key id and base64 body of a sealed value, or None when it is not one.
pub fn parse(stored: &str) -> Option<(u32, &str)> {
    let rest = stored.strip_prefix('v')?;
    let (id, body) = rest.split_once(':')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id.parse().ok()?, body))
}

/// Is `stored` a sealed value (of any key)?
pub fn is_sealed(stored: &str) -> bool {
    parse(stored).is_some()
}

// ---------------------------------------------------------------------------------------------
// The process's key ring.

struct Ring {
    keys: Arc<Keys>,
    /// The key file the keys came from (None for ephemeral keys).
    path: Option<PathBuf>,
    modified: Option<SystemTime>,
    checked: Instant,
}

static RING: RwLock<Option<Ring>> = RwLock::new(None);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Makes `keys` the process's keys (replacing any others).
pub fn install(keys: Keys, path: Option<PathBuf>) -> Arc<Keys> {
    let keys = Arc::new(keys);
    let modified = path.as_deref().and_then(modified);
    *RING.write().unwrap_or_else(|e| e.into_inner()) = Some(Ring {
        keys: keys.clone(),
        path,
        modified,
        checked: Instant::now(),
    });
    keys
}

/// Loads `keys.json` from the data directory and installs it. A missing file is an error:
/// making new keys for a database that holds values sealed under others would lose them.
pub fn install_from_dir(data_dir: &Path) -> anyhow::Result<Arc<Keys>> {
    let path = key_path(data_dir);
    if !path.exists() {
        anyhow::bail!(
            "key file {} is missing (keys are made by `init`; `dangjian-server rotate-keys --data {}` \
             makes one for a data directory from before encryption and encrypts its values)",
            path.display(),
            data_dir.display()
        );
    }
    let keys = Keys::from_file(&KeyFile::load(&path)?)?;
    Ok(install(keys, Some(path)))
}

/// Creates `keys.json` in the data directory unless it exists (never overwritten), then
/// installs it.
pub fn init_dir(data_dir: &Path) -> anyhow::Result<Arc<Keys>> {
    let path = key_path(data_dir);
    if !path.exists() {
        KeyFile::generate().save(&path)?;
    }
    install_from_dir(data_dir)
}

/// Installs random keys unless keys are installed already (tests that need no key file).
pub fn install_ephemeral_if_absent() -> Arc<Keys> {
    let mut ring = RING.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = ring.as_ref() {
        return r.keys.clone();
    }
    let keys = Arc::new(Keys::ephemeral());
    *ring = Some(Ring {
        keys: keys.clone(),
        path: None,
        modified: None,
        checked: Instant::now(),
    });
    keys
}

/// Re-reads the key file (after a rotation by another process). Returns whether keys changed.
pub fn reload() -> bool {
    let mut ring = RING.write().unwrap_or_else(|e| e.into_inner());
    let Some(r) = ring.as_mut() else { return false };
    r.checked = Instant::now();
    let Some(path) = r.path.clone() else {
        return false;
    };
    let now_modified = modified(&path);
    match KeyFile::load(&path).and_then(|f| Keys::from_file(&f)) {
        Ok(keys) => {
            let changed = keys.current != r.keys.current || keys.aead.keys().ne(r.keys.aead.keys());
            r.keys = Arc::new(keys);
            r.modified = now_modified;
            changed
        }
        Err(e) => {
            tracing::warn!("key file {} not reloaded: {e:#}", path.display());
            false
        }
    }
}

/// The process's keys. Panics when none are installed: the command line installs them when it
/// opens the data directory, tests with [`install`] or [`install_ephemeral_if_absent`].
pub fn keys() -> Arc<Keys> {
    let stale = {
        let ring = RING.read().unwrap_or_else(|e| e.into_inner());
        let r = ring
            .as_ref()
            .expect("encryption keys are not loaded (crypto::install_from_dir at start-up)");
        if r.path.is_some() && r.checked.elapsed() >= RELOAD_CHECK {
            Some((r.path.clone(), r.modified))
        } else {
            return r.keys.clone();
        }
    };
    if let Some((Some(path), before)) = stale {
        if modified(&path) != before {
            reload();
        } else if let Some(r) = RING.write().unwrap_or_else(|e| e.into_inner()).as_mut() {
            r.checked = Instant::now();
        }
    }
    let ring = RING.read().unwrap_or_else(|e| e.into_inner());
    ring.as_ref().expect("keys installed").keys.clone()
}

/// Seals with the process's keys.
pub fn seal(column: Column, plaintext: &str) -> String {
    keys().seal(column, plaintext)
}

/// Opens with the process's keys; a value under a key this process has not seen yet (a
/// rotation in progress elsewhere) makes it reload the key file once.
pub fn open(column: Column, stored: &str) -> Result<String, Error> {
    match keys().open(column, stored) {
        Err(Error::UnknownKey { .. }) if reload() => keys().open(column, stored),
        r => r,
    }
}

/// Opens an optional value.
pub fn open_opt(column: Column, stored: Option<&str>) -> Result<Option<String>, Error> {
    stored.map(|s| open(column, s)).transpose()
}

/// The blind index with the process's keys.
pub fn index(column: Column, plaintext: &str) -> String {
    keys().index(column, plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let k = Keys::ephemeral();
        let s = k.seal(Column::MembersIdNumber, "37010219800101123X");
        assert!(s.starts_with("v1:"), "{s}");
        assert!(!s.contains("370102"));
        assert_eq!(
            k.open(Column::MembersIdNumber, &s).unwrap(),
            "37010219800101123X"
        );
        // A fresh nonce each time.
        assert_ne!(s, k.seal(Column::MembersIdNumber, "37010219800101123X"));
        let e = k.seal(Column::MembersPhone, "");
        assert_eq!(k.open(Column::MembersPhone, &e).unwrap(), "");
        assert_eq!(k.open(Column::MembersPhone, "").unwrap(), "");
    }

    #[test]
    fn tampering_is_detected() {
        let k = Keys::ephemeral();
        let s = k.seal(Column::AccountsMobile, "13800001234");
        let (_, body) = parse(&s).unwrap();
        let mut bytes = B64.decode(body).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let forged = format!("v1:{}", B64.encode(&bytes));
            assert_eq!(
                k.open(Column::AccountsMobile, &forged),
                Err(Error::Tampered("accounts.mobile"))
            );
            bytes[i] ^= 1;
        }
        assert_eq!(
            k.open(Column::AccountsMobile, "13800001234"),
            Err(Error::Malformed("accounts.mobile"))
        );
        assert_eq!(
            k.open(Column::AccountsMobile, "v1:AAAA"),
            Err(Error::Malformed("accounts.mobile"))
        );
        assert!(matches!(
            k.open(Column::AccountsMobile, &s.replacen("v1:", "v7:", 1)),
            Err(Error::UnknownKey { key: 7, .. })
        ));
    }

    #[test]
    fn a_value_does_not_open_in_another_column() {
        let k = Keys::ephemeral();
        let s = k.seal(Column::MembersPhone, "13800001234");
        assert_eq!(
            k.open(Column::MembersRegisteredPhone, &s),
            Err(Error::Tampered("members.registered_phone"))
        );
        let other = Keys::ephemeral();
        assert!(other.open(Column::MembersPhone, &s).is_err());
    }

    #[test]
    fn index_is_stable_keyed_and_per_kind() {
        let file = KeyFile::generate();
        let a = Keys::from_file(&file).unwrap();
        let b = Keys::from_file(&file).unwrap();
        let i = a.index(Column::MembersIdNumber, "37010219800101123x");
        assert_eq!(i.len(), 32);
        assert_eq!(i, b.index(Column::MembersIdNumber, "37010219800101123X"));
        // Shared between the tables for the same kind of value, distinct between kinds.
        assert_eq!(i, a.index(Column::AccountsIdNumber, "37010219800101123X"));
        assert_ne!(
            a.index(Column::MembersPhone, "13800001234"),
            a.index(Column::AccountsIdNumber, "13800001234")
        );
        assert_eq!(
            a.index(Column::MembersRegisteredPhone, "13800001234"),
            a.index(Column::AccountsMobile, "13800001234")
        );
        assert_ne!(
            i,
            Keys::ephemeral().index(Column::MembersIdNumber, "37010219800101123X")
        );
        assert_eq!(
            a.id_number_index(Column::MembersIdNumber, UNKNOWN_ID_NUMBER),
            None
        );
    }

    #[test]
    fn suffix_index_matches_the_whole_numbers_suffix_only() {
        let k = Keys::ephemeral();
        let whole = k
            .id_number_suffix_index("37010219800101123x")
            .expect("a suffix");
        assert_eq!(whole, k.id_suffix_index("123X"));
        assert_eq!(whole, k.id_suffix_index(" 123x "));
        assert_ne!(whole, k.id_suffix_index("1231"));
        // Its own kind: never the index of the same characters as a whole value of another kind.
        assert_ne!(whole, k.index(Column::MembersIdNumber, "123X"));
        assert_ne!(whole, k.index(Column::MembersPhone, "123X"));
        assert_ne!(whole, Keys::ephemeral().id_suffix_index("123X"), "keyed");
        assert_eq!(k.id_number_suffix_index(UNKNOWN_ID_NUMBER), None);
        assert_eq!(id_suffix("370102198001011231").as_deref(), Some("1231"));
        assert_eq!(id_suffix("12"), None);
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let mut file = KeyFile::generate();
        let old = Keys::from_file(&file).unwrap();
        let v1 = old.seal(Column::AccountsTotpSecret, "JBSWY3DPEHPK3PXP");
        assert_eq!(file.add_version(), 2);
        let new = Keys::from_file(&file).unwrap();
        let v2 = new.seal(Column::AccountsTotpSecret, "JBSWY3DPEHPK3PXP");
        assert!(v2.starts_with("v2:"));
        assert_eq!(
            new.open(Column::AccountsTotpSecret, &v1).unwrap(),
            "JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            new.index(Column::AccountsIdNumber, "x"),
            old.index(Column::AccountsIdNumber, "x")
        );
        file.retire_all_but_current();
        assert!(file.keys[0].retired_at.is_some() && file.keys[1].retired_at.is_none());
    }

    #[test]
    fn key_file_is_private() {
        let dir = std::env::temp_dir().join(format!("dj-keys-{}", crate::db::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = key_path(&dir);
        KeyFile::generate().save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = KeyFile::load(&path).unwrap();
        assert!(Keys::from_file(&loaded).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
