//! The witness of the audit chain outside the database (issue 11 §2).
//!
//! Someone with write access to the database can rewrite the whole chain consistently: the
//! hashes are not secret. So the server signs the head of the chain (sequence number, hash,
//! time) with an Ed25519 key that lives in the data directory, never in the database
//! (`witness.key`, 0600; the public key beside it in `witness.pub`), every minute when the head
//! moved, at start and at shutdown, and appends each signed head as one JSON line to
//! `audit-witness.jsonl` (0600) and to the log. `audit-verify` compares the chain with these
//! lines: a head below the newest witnessed one (a deleted tail, a restored older database) or
//! a witnessed record whose hash changed (a replaced chain) is reported. Operators ship the
//! lines off the machine (syslog, a copy on a second host; `docs/operations.md`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use crate::db::{now_rfc3339, Db};

/// The private key (PKCS#8, base64), 0600.
pub const KEY_FILE: &str = "witness.key";
/// The public key (hex), for whoever checks the witness elsewhere.
pub const PUB_FILE: &str = "witness.pub";
/// The signed heads, one JSON line each, 0600.
pub const LOG_FILE: &str = "audit-witness.jsonl";
/// Default seconds between two witness lines (config `audit_witness_seconds`).
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;

/// One signed head.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Line {
    /// sequence number of the head record
    pub seq: i64,
    /// its hash
    pub hash: String,
    /// when it was witnessed (RFC 3339)
    pub at: String,
    /// Ed25519 signature (base64) over [`message`]
    pub sig: String,
}

/// The signed bytes of a line.
fn message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
    format!("dangjian-audit-witness-v1\n{seq}\n{hash}\n{at}").into_bytes()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Loads the witness key of a data directory, making it (and `witness.pub`) when missing.
pub fn ensure_key(data: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let path = data.join(KEY_FILE);
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let der = b64()
            .decode(text.trim())
            .with_context(|| format!("{} is not base64", path.display()))?;
        let key = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|e| anyhow::anyhow!("{} is not an Ed25519 key: {e}", path.display()))?;
        let public = data.join(PUB_FILE);
        if !public.exists() {
            std::fs::write(&public, hex::encode(key.public_key().as_ref()))
                .with_context(|| format!("write {}", public.display()))?;
        }
        return Ok(key);
    }
    let rng = ring::rand::SystemRandom::new();
    let der = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("generate the witness key"))?;
    crate::config::write_private(&path, b64().encode(der.as_ref()).as_bytes())?;
    let key = Ed25519KeyPair::from_pkcs8(der.as_ref())
        .map_err(|e| anyhow::anyhow!("read the new witness key: {e}"))?;
    std::fs::write(data.join(PUB_FILE), hex::encode(key.public_key().as_ref()))
        .with_context(|| format!("write {}", data.join(PUB_FILE).display()))?;
    Ok(key)
}

/// Reads a public key file (hex, as `witness.pub` holds it).
pub fn load_public(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let key = hex::decode(text.trim())
        .with_context(|| format!("{} is not a hex public key", path.display()))?;
    if key.len() != 32 {
        anyhow::bail!("{} is not an Ed25519 public key", path.display());
    }
    Ok(key)
}

/// The signer of a running server (or of `audit-witness`).
pub struct Witness {
    key: Ed25519KeyPair,
    file: PathBuf,
    /// The head last written, so an idle chain is not witnessed again every minute.
    last: Mutex<Option<(i64, String)>>,
}

impl Witness {
    /// Opens (or makes) the key of a data directory; lines go to `audit-witness.jsonl` there.
    pub fn open(data: &Path) -> anyhow::Result<Witness> {
        Ok(Witness {
            key: ensure_key(data)?,
            file: data.join(LOG_FILE),
            last: Mutex::new(None),
        })
    }

    /// Signs the current head and appends the line to the file and the log; unless `always`,
    /// only when the head moved since the last line this witness wrote.
    pub async fn sign_head(&self, db: &Db, always: bool) -> anyhow::Result<Option<Line>> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(db.primary())
                .await?;
        {
            let last = self.last.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if !always && last.as_ref() == Some(&(seq, hash.clone())) {
                return Ok(None);
            }
        }
        let at = now_rfc3339();
        let sig = self.key.sign(&message(seq, &hash, &at));
        let line = Line {
            seq,
            hash: hash.clone(),
            at,
            sig: b64().encode(sig.as_ref()),
        };
        let json = serde_json::to_string(&line)?;
        append_line(&self.file, &json)?;
        tracing::info!(target: "dangjian::audit_witness", "audit witness {json}");
        if let Ok(mut last) = self.last.lock() {
            *last = Some((seq, hash));
        }
        Ok(Some(line))
    }
}

/// Appends one line to a file made 0600.
fn append_line(path: &Path, line: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    f.sync_data().ok();
    Ok(())
}

/// Witnesses the head now and then every `every` (when it moved), for the life of the process.
pub fn spawn(db: Db, witness: Arc<Witness>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tick.tick().await;
            if let Err(e) = witness.sign_head(&db, first).await {
                tracing::error!("witness the audit head: {e:#}");
            }
            first = false;
        }
    });
}

/// What a witness file says, its signatures checked.
#[derive(Debug, Clone, Default)]
pub struct Witnessed {
    /// witnessed sequence number → hash
    pub heads: HashMap<i64, String>,
    /// the line with the highest sequence number
    pub last: Option<Line>,
    /// lines read
    pub lines: usize,
    /// line numbers (from 1) whose signature does not verify or which cannot be read
    pub bad_lines: Vec<usize>,
}

/// Reads and checks a witness file with the public key. Lines that fail are listed in
/// `bad_lines` and ignored otherwise.
pub fn load(file: &Path, public_key: &[u8]) -> anyhow::Result<Witnessed> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let key = signature::UnparsedPublicKey::new(&signature::ED25519, public_key);
    let mut w = Witnessed::default();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        w.lines += 1;
        let good = serde_json::from_str::<Line>(raw).ok().filter(|l| {
            b64()
                .decode(&l.sig)
                .ok()
                .is_some_and(|sig| key.verify(&message(l.seq, &l.hash, &l.at), &sig).is_ok())
        });
        let Some(line) = good else {
            w.bad_lines.push(i + 1);
            continue;
        };
        if let Some(h) = w.heads.get(&line.seq) {
            if *h != line.hash {
                // Two signed hashes for one record: the database was replaced in between.
                // Keep the first; the chain cannot match both.
                continue;
            }
        }
        w.heads.insert(line.seq, line.hash.clone());
        if w.last.as_ref().is_none_or(|l| line.seq >= l.seq) {
            w.last = Some(line);
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_verify_and_a_changed_line_does_not() {
        let dir = std::env::temp_dir().join(format!("dj-witness-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = ensure_key(&dir).unwrap();
        let sign = |seq: i64, hash: &str| {
            let at = "2026-01-01T00:00:00Z".to_string();
            let sig = key.sign(&message(seq, hash, &at));
            serde_json::to_string(&Line {
                seq,
                hash: hash.to_string(),
                at,
                sig: b64().encode(sig.as_ref()),
            })
            .unwrap()
        };
        let good = sign(3, "aa");
        let forged = sign(5, "bb").replace("\"seq\":5", "\"seq\":6");
        std::fs::write(dir.join(LOG_FILE), format!("{good}\n{forged}\n")).unwrap();
        let public = load_public(&dir.join(PUB_FILE)).unwrap();
        let w = load(&dir.join(LOG_FILE), &public).unwrap();
        assert_eq!(w.lines, 2);
        assert_eq!(w.bad_lines, vec![2]);
        assert_eq!(w.last.map(|l| l.seq), Some(3));
        assert_eq!(w.heads.get(&3).map(String::as_str), Some("aa"));
        // The same key is loaded again, not replaced.
        let again = ensure_key(&dir).unwrap();
        assert_eq!(again.public_key().as_ref(), public.as_slice());
        std::fs::remove_dir_all(&dir).ok();
    }
}
