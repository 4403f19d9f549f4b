//! The virtual card's persistent state (a JSON file): PIN, PUK, retry and signature counters,
//! the 9B management key and its algorithm, keys by slot (PKCS#8 PEM) and data objects by tag
//! (hex, `53` wrapper included).

use std::collections::BTreeMap;
use std::path::Path;

use p256::pkcs8::DecodePrivateKey;
use rand::Rng;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};

use super::{certificate_object, hex, tlv, ALG_P256, ALG_RSA2048};

/// Everything that survives a power cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardState {
    pub pin: String,
    pub puk: String,
    pub pin_tries_left: u8,
    pub pin_max_tries: u8,
    #[serde(default = "three")]
    pub puk_tries_left: u8,
    #[serde(default = "three")]
    pub puk_max_tries: u8,
    /// The 9B management key (hex); the factory default when the file has none.
    #[serde(default = "default_mgmt_key")]
    pub mgmt_key: String,
    /// 0x03 3DES, 0x08 AES-128, 0x0A AES-192, 0x0C AES-256.
    #[serde(default = "default_mgmt_algorithm")]
    pub mgmt_algorithm: u8,
    /// Private-key operations performed (GENERAL AUTHENTICATE), all slots.
    pub signature_counter: u64,
    pub serial: u32,
    /// Keys by slot, "9A" → key.
    pub keys: BTreeMap<String, StoredKey>,
    /// Data objects by tag, "5FC105" → hex of the object as GET DATA returns it.
    pub objects: BTreeMap<String, String>,
}

fn three() -> u8 {
    3
}

/// The factory default management key of PIV cards (3DES).
pub const DEFAULT_MGMT_KEY: &str = "010203040506070801020304050607080102030405060708";

fn default_mgmt_key() -> String {
    DEFAULT_MGMT_KEY.to_string()
}

fn default_mgmt_algorithm() -> u8 {
    0x03
}

/// A private key in a slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    /// 0x11 P-256, 0x07 RSA-2048.
    pub algorithm: u8,
    pub pkcs8_pem: String,
    /// Generated on the card (GENERATE), not imported: only such keys are attested.
    #[serde(default)]
    pub generated: bool,
}

impl CardState {
    /// A new card: the PIN given, PUK 12345678, 3 tries each, the default 3DES management key,
    /// a CHUID with a random GUID, no keys.
    pub fn fresh(pin: &str) -> Self {
        let mut rng = rand::thread_rng();
        let guid: [u8; 16] = rng.gen();
        // FASC-N of a non-federal issuer (all nines), GUID, expiry, empty signature and EDC.
        let fascn = [
            0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68, 0x58,
            0x21, 0x08, 0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
        ];
        let mut chuid = tlv(&[0x30], &fascn);
        chuid.extend(tlv(&[0x34], &guid));
        chuid.extend(tlv(&[0x35], b"20301231"));
        chuid.extend(tlv(&[0x3E], &[]));
        chuid.extend(tlv(&[0xFE], &[]));
        let mut objects = BTreeMap::new();
        objects.insert("5FC102".to_string(), hex(&tlv(&[0x53], &chuid)));
        Self {
            pin: pin.to_string(),
            puk: "12345678".to_string(),
            pin_tries_left: 3,
            pin_max_tries: 3,
            puk_tries_left: 3,
            puk_max_tries: 3,
            mgmt_key: default_mgmt_key(),
            mgmt_algorithm: default_mgmt_algorithm(),
            signature_counter: 0,
            serial: rng.gen_range(10_000_000..99_999_999),
            keys: BTreeMap::new(),
            objects,
        }
    }

    /// Reads the state file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    /// Writes the state file atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Puts a certificate (PEM) and its private key (PKCS#8 PEM, P-256 or RSA-2048) into a slot.
    pub fn install(&mut self, slot: u8, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let der = pem_der(cert_pem, "CERTIFICATE")?;
        let algorithm = if p256::ecdsa::SigningKey::from_pkcs8_pem(key_pem).is_ok() {
            ALG_P256
        } else {
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
                .map_err(|e| anyhow::anyhow!("key is neither P-256 nor RSA PKCS#8: {e}"))?;
            anyhow::ensure!(key.size() == 256, "RSA key is not 2048 bits");
            ALG_RSA2048
        };
        let tag = match slot {
            0x9A => "5FC105",
            0x9C => "5FC10A",
            0x9D => "5FC10B",
            0x9E => "5FC101",
            _ => anyhow::bail!("unknown slot {slot:02X}"),
        };
        self.keys.insert(
            format!("{slot:02X}"),
            StoredKey {
                algorithm,
                pkcs8_pem: key_pem.to_string(),
                generated: false,
            },
        );
        self.objects
            .insert(tag.to_string(), hex(&certificate_object(&der)));
        Ok(())
    }

    /// Gives the card an attestation key (slot F9, P-256 PKCS#8 PEM) and its certificate
    /// (object 5FFF01), as a YubiKey comes from the factory: the card then answers `INS F9`
    /// for keys generated on it.
    pub fn install_attestation(&mut self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let der = pem_der(cert_pem, "CERTIFICATE")?;
        p256::ecdsa::SigningKey::from_pkcs8_pem(key_pem)
            .map_err(|e| anyhow::anyhow!("the attestation key is not a P-256 PKCS#8 key: {e}"))?;
        self.keys.insert(
            "F9".to_string(),
            StoredKey {
                algorithm: ALG_P256,
                pkcs8_pem: key_pem.to_string(),
                generated: false,
            },
        );
        self.objects
            .insert("5FFF01".to_string(), hex(&certificate_object(&der)));
        Ok(())
    }
}

/// The DER inside the first PEM block labelled `label`.
pub fn pem_der(pem_text: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem_text
        .find(&begin)
        .ok_or_else(|| anyhow::anyhow!("no {label} PEM block"))?
        + begin.len();
    let stop = pem_text[start..]
        .find(&end)
        .ok_or_else(|| anyhow::anyhow!("unterminated {label} PEM block"))?
        + start;
    let body: String = pem_text[start..stop].split_whitespace().collect();
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

/// The PIN as the 8-byte VERIFY block (FF padding).
pub fn padded(pin: &str) -> Vec<u8> {
    let mut block = pin.as_bytes().to_vec();
    block.resize(8, 0xFF);
    block
}

/// The PIN out of an 8-byte block; refuses fewer than 6 characters.
pub fn unpadded(block: &[u8]) -> Option<String> {
    let end = block.iter().position(|&b| b == 0xFF).unwrap_or(block.len());
    let pin = std::str::from_utf8(&block[..end]).ok()?;
    (pin.len() >= 6).then(|| pin.to_string())
}

/// Hex text back to bytes.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
