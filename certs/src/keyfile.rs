//! The CA's private key file `ca.key` (mode 0600).
//!
//! Without a passphrase it is the PKCS#8 PEM that `openssl` reads. With a passphrase it is a PEM
//! block labelled `DANGJIAN ENCRYPTED PRIVATE KEY` whose body is
//!
//! ```text
//! "DJK1" ‖ m_cost u32 BE ‖ t_cost u32 BE ‖ p_cost u32 BE ‖ salt (16) ‖ nonce (12) ‖ AES-256-GCM(PKCS#8 DER) ‖ tag (16)
//! ```
//!
//! The 256-bit key is Argon2id (RFC 9106, the `argon2` crate; 64 MiB, 3 passes, 1 lane by
//! default, the parameters stored in the header) over the passphrase and a random salt; the
//! AEAD is AES-256-GCM from `ring` with a random nonce, the whole header (magic, parameters,
//! salt, nonce) as associated data, so a tampered header fails to decrypt. A fresh salt and
//! nonce are drawn at every write.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Error;

const LABEL: &str = "DANGJIAN ENCRYPTED PRIVATE KEY";
const MAGIC: &[u8; 4] = b"DJK1";
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 4 + 12 + SALT_LEN + NONCE_LEN;

/// Argon2id cost: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KdfCost {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

pub(crate) const DEFAULT_COST: KdfCost = KdfCost {
    m_cost: 64 * 1024,
    t_cost: 3,
    p_cost: 1,
};

fn derive(passphrase: &str, salt: &[u8], cost: KdfCost) -> Result<LessSafeKey, Error> {
    let params = argon2::Params::new(cost.m_cost, cost.t_cost, cost.p_cost, Some(32))
        .map_err(|e| Error::Crypto(format!("argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| Error::Crypto(format!("argon2: {e}")))?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, &key).map_err(|_| Error::Crypto("AES-256-GCM key".into()))?;
    key.fill(0);
    Ok(LessSafeKey::new(unbound))
}

/// Encodes a PKCS#8 DER private key as the contents of `ca.key`.
pub(crate) fn encode(
    pkcs8_der: &[u8],
    passphrase: Option<&str>,
    cost: KdfCost,
) -> Result<String, Error> {
    let Some(passphrase) = passphrase else {
        return Ok(pem_block("PRIVATE KEY", pkcs8_der));
    };
    if passphrase.is_empty() {
        return Err(Error::Invalid("the passphrase is empty".into()));
    }
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt)
        .and_then(|_| rng.fill(&mut nonce))
        .map_err(|_| Error::Crypto("system random generator failed".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + pkcs8_der.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&cost.m_cost.to_be_bytes());
    out.extend_from_slice(&cost.t_cost.to_be_bytes());
    out.extend_from_slice(&cost.p_cost.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let key = derive(passphrase, &salt, cost)?;
    let mut body = pkcs8_der.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&out[..HEADER_LEN]),
        &mut body,
    )
    .map_err(|_| Error::Crypto("encrypting the key failed".into()))?;
    out.extend_from_slice(&body);
    Ok(pem_block(LABEL, &out))
}

/// Whether the contents of a key file are encrypted.
pub(crate) fn is_encrypted(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {LABEL}-----"))
}

/// Decodes the contents of `ca.key` into PKCS#8 DER.
pub(crate) fn decode(text: &str, passphrase: Option<&str>) -> Result<Vec<u8>, Error> {
    if !is_encrypted(text) {
        return pem_body(text, "PRIVATE KEY");
    }
    let Some(passphrase) = passphrase else {
        return Err(Error::Passphrase(
            "the CA key is encrypted: give its passphrase".into(),
        ));
    };
    let data = pem_body(text, LABEL)?;
    if data.len() < HEADER_LEN + 16 || &data[..4] != MAGIC {
        return Err(Error::Parse(
            "the encrypted CA key file is malformed".into(),
        ));
    }
    let u32_at = |i: usize| u32::from_be_bytes(data[i..i + 4].try_into().expect("4 bytes"));
    let cost = KdfCost {
        m_cost: u32_at(4),
        t_cost: u32_at(8),
        p_cost: u32_at(12),
    };
    // Refuse absurd costs from a tampered header before spending memory on them.
    if cost.m_cost > 4 * 1024 * 1024 || cost.t_cost > 64 || cost.p_cost > 64 {
        return Err(Error::Parse(
            "the encrypted CA key file is malformed".into(),
        ));
    }
    let salt = &data[16..16 + SALT_LEN];
    let nonce: [u8; NONCE_LEN] = data[16 + SALT_LEN..HEADER_LEN].try_into().expect("nonce");
    let key = derive(passphrase, salt, cost)?;
    let mut body = data[HEADER_LEN..].to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&data[..HEADER_LEN]),
            &mut body,
        )
        .map_err(|_| {
            Error::Passphrase("wrong passphrase for the CA key (or the key file is damaged)".into())
        })?;
    Ok(plain.to_vec())
}

/// A PEM block with 64-column lines.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The body of the first PEM block with this label.
pub(crate) fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, Error> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| Error::Parse(format!("no {label} PEM block")))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| Error::Parse(format!("unterminated {label} PEM block")))?
        + start;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Error::Parse(format!("bad base64 in {label} PEM block")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfCost = KdfCost {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn round_trip_plain_and_encrypted() {
        let secret = b"not really a key".to_vec();
        let plain = encode(&secret, None, CHEAP).unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(decode(&plain, None).unwrap(), secret);

        let sealed = encode(&secret, Some("correct horse"), CHEAP).unwrap();
        assert!(is_encrypted(&sealed));
        assert_eq!(decode(&sealed, Some("correct horse")).unwrap(), secret);
        assert!(matches!(
            decode(&sealed, Some("wrong")),
            Err(Error::Passphrase(_))
        ));
        assert!(matches!(decode(&sealed, None), Err(Error::Passphrase(_))));
        assert!(encode(&secret, Some(""), CHEAP).is_err());
    }

    #[test]
    fn tampered_header_is_refused() {
        let sealed = encode(b"k", Some("pw"), CHEAP).unwrap();
        let mut data = pem_body(&sealed, LABEL).unwrap();
        data[20] ^= 1; // a salt byte
        let tampered = pem_block(LABEL, &data);
        assert!(decode(&tampered, Some("pw")).is_err());
    }
}
