//! The transfer letter 介绍信 (SPEC §6): its canonical form, signature and offline check,
//! shared by the server (which signs) and `dangjian-certs verify-letter` (which checks).
//!
//! # Canonical form
//!
//! The signed bytes are UTF-8 text, one `key=value` line per item, each line ending in `\n`,
//! in this fixed order:
//!
//! ```text
//! format=dangjian-letter-v1
//! number=202611000000000123
//! issue_date=2026-11-26
//! valid_until=2027-01-10
//! validity_days=45
//! addressee=…
//! name=…
//! sex=…
//! age=…
//! ethnicity=…
//! category=…
//! id_number=…
//! from_org=…
//! to_org=…
//! dues_paid_to=…
//! member_phone=…
//! committee_address=…
//! committee_phone=…
//! committee_fax=…
//! committee_postcode=…
//! ```
//!
//! Values are written as they are (no trimming, no normalisation); a value holding a control
//! character (a line break among them) cannot be put in the form and is refused. `age` and
//! `validity_days` are decimal integers. The field keys are [`FIELD_KEYS`], the names of the
//! members of the letter's `fields` object in the JSON document.
//!
//! # Signature
//!
//! ECDSA P-256 with SHA-256 over the canonical bytes, DER-encoded (`ECDSA-Sig-Value`), as
//! `openssl dgst -sha256 -sign` makes and `openssl dgst -sha256 -verify` checks. The signer's
//! certificate is issued by the platform CA ([`crate::Ca::issue_letter_signer`]) with keyUsage
//! digitalSignature and the extended key usage id-kp-documentSigning (RFC 9336,
//! [`OID_DOCUMENT_SIGNING`]); [`verify_document`] accepts no other certificate, so neither the
//! server's TLS certificate nor a card certificate of the same CA can sign a letter.
//!
//! # The JSON document
//!
//! What the server serves at `GET /api/v1/transfers/{id}/letter` and what `verify-letter`
//! reads: `number`, `issue_date`, `valid_until`, `validity_days`, `fields` (object, the keys
//! of [`FIELD_KEYS`]; `age` a number), `canonical` (the signed text), `signature` (base64 of
//! the DER signature), `signer_certificate` (PEM), `verify_url`. [`verify_document`] rebuilds
//! the canonical text from the members, never trusting `canonical` alone.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::NaiveDate;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::*;

use crate::{keyfile, Error, Result};

/// The first line of the canonical form: its version.
pub const FORMAT: &str = "dangjian-letter-v1";

/// id-kp-documentSigning (RFC 9336), the extended key usage of the letter signer.
pub const OID_DOCUMENT_SIGNING: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];

/// The `CN` of the letter signer's certificate.
pub const SIGNER_NAME: &str = "dangjian letter signer";

/// The letter's fields, in canonical order (the members of the document's `fields`).
pub const FIELD_KEYS: [&str; 15] = [
    "addressee",
    "name",
    "sex",
    "age",
    "ethnicity",
    "category",
    "id_number",
    "from_org",
    "to_org",
    "dues_paid_to",
    "member_phone",
    "committee_address",
    "committee_phone",
    "committee_fax",
    "committee_postcode",
];

/// The items of a letter besides its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub number: &'a str,
    pub issue_date: &'a str,
    pub valid_until: &'a str,
    pub validity_days: u32,
}

fn check_value(key: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "letter field {key} holds a control character"
        )));
    }
    Ok(())
}

/// One field's value as the canonical form writes it: a string as it is, an integer in
/// decimal. Anything else (missing, null, fraction, object) is refused.
fn field_text(key: &str, value: Option<&Value>) -> Result<String> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Some(_) => Err(Error::Invalid(format!(
            "letter field {key} is neither text nor an integer"
        ))),
        None => Err(Error::Invalid(format!("letter field {key} is missing"))),
    }
}

/// The canonical text of a letter (see the module documentation). `fields` is the JSON
/// object of the letter's fields; members other than [`FIELD_KEYS`] are refused, so that
/// nothing shown beside the signed fields can pass as signed.
pub fn canonical(header: &Header<'_>, fields: &Map<String, Value>) -> Result<String> {
    if let Some(extra) = fields.keys().find(|k| !FIELD_KEYS.contains(&k.as_str())) {
        return Err(Error::Invalid(format!("unknown letter field {extra}")));
    }
    let mut out = String::new();
    let mut line = |key: &str, value: &str| -> Result<()> {
        check_value(key, value)?;
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
        Ok(())
    };
    line("format", FORMAT)?;
    line("number", header.number)?;
    line("issue_date", header.issue_date)?;
    line("valid_until", header.valid_until)?;
    line("validity_days", &header.validity_days.to_string())?;
    for key in FIELD_KEYS {
        line(key, &field_text(key, fields.get(key))?)?;
    }
    Ok(out)
}

/// The first 16 hex digits of SHA-256 of the canonical text: the `d` of the QR code's URL.
pub fn digest_prefix(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))[..16].to_string()
}

/// Signs `message` with the PKCS#8 P-256 key in `key_pem`: ECDSA SHA-256, DER.
pub fn sign(key_pem: &str, message: &[u8]) -> Result<Vec<u8>> {
    let der = keyfile::pem_body(key_pem, "PRIVATE KEY")?;
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
        .map_err(|e| Error::Parse(format!("letter signing key: {e}")))?;
    let sig = key
        .sign(&rng, message)
        .map_err(|e| Error::Crypto(format!("sign the letter: {e}")))?;
    Ok(sig.as_ref().to_vec())
}

/// The public key (uncompressed point) of the PKCS#8 P-256 key in `key_pem`.
pub fn public_key_of(key_pem: &str) -> Result<Vec<u8>> {
    let der = keyfile::pem_body(key_pem, "PRIVATE KEY")?;
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &der, &rng)
        .map_err(|e| Error::Parse(format!("letter signing key: {e}")))?;
    Ok(key.public_key().as_ref().to_vec())
}

/// Checks a DER ECDSA P-256 SHA-256 signature of `message` with the certificate's key.
pub fn verify_signature(cert_der: &[u8], message: &[u8], sig: &[u8]) -> Result<()> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| Error::Parse(format!("signer certificate: {e}")))?;
    let key = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(message, sig)
        .map_err(|_| Error::Crypto("the signature does not verify".into()))
}

/// Checks that the signer certificate was issued by the CA (`ca_der`), was valid on the
/// letter's issue date `on` (Beijing date; a letter outlives a renewed signer certificate), and
/// is a letter signer (keyUsage digitalSignature, EKU id-kp-documentSigning, not a CA).
pub fn verify_signer(cert_der: &[u8], ca_der: &[u8], on: NaiveDate) -> Result<()> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| Error::Parse(format!("signer certificate: {e}")))?;
    let (_, ca) = X509Certificate::from_der(ca_der)
        .map_err(|e| Error::Parse(format!("CA certificate: {e}")))?;
    if cert.issuer() != ca.subject() {
        return Err(Error::Crypto(
            "the signer certificate was issued by another CA".into(),
        ));
    }
    cert.verify_signature(Some(ca.public_key())).map_err(|_| {
        Error::Crypto("the signer certificate does not verify with the CA key".into())
    })?;
    // The Beijing day `on` runs from 16:00 UTC the day before to 16:00 UTC.
    let day_start = on
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
        - 8 * 3600;
    let day_end = day_start + 24 * 3600;
    let validity = cert.validity();
    if validity.not_before.timestamp() > day_end || validity.not_after.timestamp() < day_start {
        return Err(Error::Crypto(
            "the signer certificate is outside its validity".into(),
        ));
    }
    if cert.is_ca() {
        return Err(Error::Crypto("the signer certificate is a CA".into()));
    }
    let digital_signature = cert
        .key_usage()
        .ok()
        .flatten()
        .is_some_and(|ku| ku.value.digital_signature());
    let wanted =
        x509_parser::der_parser::oid::Oid::from(&OID_DOCUMENT_SIGNING[..]).expect("valid OID");
    let document_signing = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|eku| eku.value.other.contains(&wanted));
    if !digital_signature || !document_signing {
        return Err(Error::Crypto(
            "the certificate is not a letter signer (keyUsage digitalSignature, EKU documentSigning)"
                .into(),
        ));
    }
    Ok(())
}

/// What [`verify_document`] found in a genuine document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub number: String,
    pub issue_date: String,
    pub valid_until: String,
    /// The canonical text rebuilt from the fields.
    pub canonical: String,
}

fn member<'a>(doc: &'a Value, key: &str) -> Result<&'a str> {
    doc.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid(format!("the letter has no {key}")))
}

/// The header and fields of a JSON document, and its canonical text rebuilt from them.
pub fn rebuild(doc: &Value) -> Result<String> {
    let validity_days = doc
        .get("validity_days")
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| Error::Invalid("the letter has no validity_days".into()))?;
    let fields = doc
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Invalid("the letter has no fields".into()))?;
    canonical(
        &Header {
            number: member(doc, "number")?,
            issue_date: member(doc, "issue_date")?,
            valid_until: member(doc, "valid_until")?,
            validity_days,
        },
        fields,
    )
}

/// Checks a letter's JSON document offline: the canonical text rebuilt from its members
/// equals `canonical`, the signature verifies with `signer_certificate`, and that certificate
/// is a letter signer of the CA `ca_der`, valid on the issue date. Any difference is an error (the
/// letter has been altered or was not signed by the platform).
pub fn verify_document(doc: &Value, ca_der: &[u8]) -> Result<Verified> {
    let rebuilt = rebuild(doc)?;
    if member(doc, "canonical")? != rebuilt {
        return Err(Error::Crypto(
            "the signed text differs from the letter's fields".into(),
        ));
    }
    let sig = B64
        .decode(member(doc, "signature")?.trim())
        .map_err(|_| Error::Invalid("the signature is not base64".into()))?;
    let cert_der = keyfile::pem_body(member(doc, "signer_certificate")?, "CERTIFICATE")?;
    let issue_date = NaiveDate::parse_from_str(member(doc, "issue_date")?, "%Y-%m-%d")
        .map_err(|_| Error::Invalid("the issue date is not YYYY-MM-DD".into()))?;
    verify_signer(&cert_der, ca_der, issue_date)?;
    verify_signature(&cert_der, rebuilt.as_bytes(), &sig)?;
    Ok(Verified {
        number: member(doc, "number")?.to_string(),
        issue_date: member(doc, "issue_date")?.to_string(),
        valid_until: member(doc, "valid_until")?.to_string(),
        canonical: rebuilt,
    })
}

/// The DER of the first certificate of a PEM text.
pub fn cert_der_of_pem(pem: &str) -> Result<Vec<u8>> {
    keyfile::pem_body(pem, "CERTIFICATE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Map<String, Value> {
        json!({
            "addressee": "中共某市委组织部", "name": "测试甲", "sex": "男", "age": 41,
            "ethnicity": "汉族", "category": "正式", "id_number": "11010519491231002X",
            "from_org": "中共甲单位支部委员会", "to_org": "中共乙单位支部委员会",
            "dues_paid_to": "2026-10", "member_phone": "13800000000",
            "committee_address": "某市某路1号", "committee_phone": "010-00000000",
            "committee_fax": "010-00000001", "committee_postcode": "100000"
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn header() -> Header<'static> {
        Header {
            number: "202611000000000123",
            issue_date: "2026-11-26",
            valid_until: "2027-01-10",
            validity_days: 45,
        }
    }

    #[test]
    fn canonical_form_is_fixed() {
        let text = canonical(&header(), &fields()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20);
        assert_eq!(lines[0], "format=dangjian-letter-v1");
        assert_eq!(lines[1], "number=202611000000000123");
        assert_eq!(lines[4], "validity_days=45");
        assert_eq!(lines[5], "addressee=中共某市委组织部");
        assert_eq!(lines[8], "age=41");
        assert_eq!(lines[19], "committee_postcode=100000");
        assert!(text.ends_with('\n'));
        // The order of the object's members does not matter; an extra or missing one does.
        let mut extra = fields();
        extra.insert("photo".into(), json!("x"));
        assert!(canonical(&header(), &extra).is_err());
        let mut missing = fields();
        missing.remove("to_org");
        assert!(canonical(&header(), &missing).is_err());
        let mut newline = fields();
        newline.insert("name".into(), json!("测试\nvalidity_days=999"));
        assert!(canonical(&header(), &newline).is_err());
        assert_eq!(digest_prefix(&text).len(), 16);
    }

    #[test]
    fn signature_roundtrip_and_altered_character_refused() {
        let dir = std::env::temp_dir().join(format!("letter-ca-{}", rand::random::<u64>()));
        let ca = crate::Ca::init(&dir, "test CA", "https://localhost/crl", None).unwrap();
        let issued = ca.issue_letter_signer(30).unwrap();
        let key = issued.key_pem.clone().unwrap();
        // Issued today (Beijing time), within the signer certificate just made: a fixed date
        // would fall outside it on any other day.
        let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
        let (issue_date, valid_until) = (
            today.to_string(),
            (today + chrono::Days::new(45)).to_string(),
        );
        let h = Header {
            issue_date: &issue_date,
            valid_until: &valid_until,
            ..header()
        };
        let text = canonical(&h, &fields()).unwrap();
        let sig = sign(&key, text.as_bytes()).unwrap();
        let doc = json!({
            "number": "202611000000000123", "issue_date": issue_date,
            "valid_until": valid_until, "validity_days": 45, "fields": fields(),
            "canonical": text, "signature": B64.encode(&sig),
            "signer_certificate": issued.cert_pem, "verify_url": "https://x/"
        });
        verify_document(&doc, &ca.cert_der()).unwrap();
        // One character changed in a field: refused.
        let mut altered = doc.clone();
        altered["fields"]["name"] = json!("测试乙");
        assert!(verify_document(&altered, &ca.cert_der()).is_err());
        // ... even when the canonical text is changed to match.
        altered["canonical"] = json!(rebuild(&altered).unwrap());
        assert!(verify_document(&altered, &ca.cert_der()).is_err());
        let mut altered = doc.clone();
        altered["valid_until"] = json!((today + chrono::Days::new(46)).to_string());
        assert!(verify_document(&altered, &ca.cert_der()).is_err());
        // A certificate of the same CA that is no letter signer cannot sign letters.
        let server = ca.issue_server(&["localhost".to_string()], 30).unwrap();
        let mut foreign = doc.clone();
        let sig = sign(server.key_pem.as_deref().unwrap(), text.as_bytes()).unwrap();
        foreign["signature"] = json!(B64.encode(&sig));
        foreign["signer_certificate"] = json!(server.cert_pem);
        assert!(verify_document(&foreign, &ca.cert_der()).is_err());
        // Another CA: refused.
        let other_dir = dir.with_extension("other");
        let other = crate::Ca::init(&other_dir, "other CA", "https://localhost/crl", None).unwrap();
        assert!(verify_document(&doc, &other.cert_der()).is_err());
        // Issued outside the signer's validity: refused.
        let late = Header {
            issue_date: "2099-01-01",
            ..header()
        };
        let text = canonical(&late, &fields()).unwrap();
        let mut late_doc = doc.clone();
        late_doc["issue_date"] = json!("2099-01-01");
        late_doc["canonical"] = json!(text);
        late_doc["signature"] = json!(B64.encode(sign(&key, text.as_bytes()).unwrap()));
        assert!(verify_document(&late_doc, &ca.cert_der()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other_dir);
    }
}
