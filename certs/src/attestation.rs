//! PIV key attestation as YubiKeys make it (Yubico's "PIV attestation"): the card holds an
//! attestation key and its certificate in slot F9 (object `5FFF01`), signed by the maker's
//! root (directly or through the maker's intermediate CA); the command `INS F9` with a slot in
//! P1 makes a certificate for the public key in that slot, signed by the F9 key — only for keys
//! generated on the card. The chain statement → F9 certificate → trusted root therefore proves
//! "this public key was generated on a genuine card and its private key cannot leave it".
//!
//! [`verify`] checks that chain against the configured roots at a given time and that the
//! attested key is the CSR's key; it also reads Yubico's extensions (firmware version, card
//! serial number, PIN and touch policies) for the record. Pure: no IO.

use chrono::{DateTime, Utc};
use x509_parser::der_parser::oid::Oid;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::keyfile;

/// Yubico's extension with the firmware version: three raw bytes, major.minor.patch.
pub const OID_YUBICO_FIRMWARE: &[u64] = &[1, 3, 6, 1, 4, 1, 41482, 3, 3];
/// Yubico's extension with the card's serial number: a DER INTEGER.
pub const OID_YUBICO_SERIAL: &[u64] = &[1, 3, 6, 1, 4, 1, 41482, 3, 7];
/// Yubico's extension with the key's policies: two raw bytes, PIN policy then touch policy.
pub const OID_YUBICO_POLICY: &[u64] = &[1, 3, 6, 1, 4, 1, 41482, 3, 8];

/// Why an attestation was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// A certificate (or the CSR) does not parse.
    #[error("the attestation does not parse: {0}")]
    Malformed(String),
    /// The statement is not signed by the F9 certificate, the F9 certificate by no trusted
    /// root, or a certificate of the chain is outside its validity.
    #[error("the attestation does not chain to a trusted root: {0}")]
    Untrusted(String),
    /// The chain holds, but it attests another key than the CSR's.
    #[error("the attested key is not the key of the certificate request")]
    KeyMismatch,
}

/// What a verified attestation tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The statement's subject (e.g. `CN=YubiKey PIV Attestation 9a`).
    pub statement_subject: String,
    /// The F9 certificate's subject.
    pub signer_subject: String,
    /// The trusted root it chains to.
    pub root_subject: String,
    /// The card's serial number (Yubico extension), when present.
    pub card_serial: Option<u64>,
    /// The card's firmware version (Yubico extension), e.g. `5.4.3`.
    pub firmware: Option<String>,
    /// PIN policy: 1 never, 2 once, 3 always (Yubico extension).
    pub pin_policy: Option<u8>,
    /// Touch policy: 1 never, 2 always, 3 cached (Yubico extension).
    pub touch_policy: Option<u8>,
}

impl Attested {
    /// One line for the audit record.
    pub fn summary(&self) -> String {
        let policy = |p: Option<u8>, names: [&str; 3]| match p {
            Some(n @ 1..=3) => names[usize::from(n) - 1].to_string(),
            Some(n) => format!("{n}"),
            None => "-".to_string(),
        };
        format!(
            "key attested by {} (card serial {}, firmware {}, PIN policy {}, touch policy {}) under root {}",
            self.signer_subject,
            self.card_serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            self.firmware.as_deref().unwrap_or("-"),
            policy(self.pin_policy, ["never", "once", "always"]),
            policy(self.touch_policy, ["never", "always", "cached"]),
            self.root_subject
        )
    }
}

/// A certificate given as PEM (`CERTIFICATE`) or as bare base64 of the DER.
pub fn certificate_der(text: &str) -> Result<Vec<u8>, AttestationError> {
    let text = text.trim();
    if text.len() > 64 * 1024 {
        return Err(AttestationError::Malformed("too large".into()));
    }
    if text.contains("-----BEGIN") {
        return keyfile::pem_body(text, "CERTIFICATE")
            .map_err(|e| AttestationError::Malformed(e.to_string()));
    }
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| AttestationError::Malformed("neither PEM nor base64 DER".into()))
}

/// Every certificate (DER) in a PEM text, e.g. a roots file with Yubico's root and its
/// intermediate CA.
pub fn pem_certificates(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let block = &rest[start..];
        let Some(end) = block.find("-----END CERTIFICATE-----") else {
            break;
        };
        let end = end + "-----END CERTIFICATE-----".len();
        if let Ok(der) = keyfile::pem_body(&block[..end], "CERTIFICATE") {
            out.push(der);
        }
        rest = &block[end..];
    }
    out
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, AttestationError> {
    match X509Certificate::from_der(der) {
        Ok((&[], cert)) => Ok(cert),
        Ok(_) => Err(AttestationError::Malformed(format!(
            "{what}: trailing bytes"
        ))),
        Err(e) => Err(AttestationError::Malformed(format!("{what}: {e}"))),
    }
}

fn valid_at(
    cert: &X509Certificate<'_>,
    now: DateTime<Utc>,
    what: &str,
) -> Result<(), AttestationError> {
    let t = now.timestamp();
    let v = cert.validity();
    if t < v.not_before.timestamp() || t > v.not_after.timestamp() {
        return Err(AttestationError::Untrusted(format!(
            "{what} is outside its validity"
        )));
    }
    Ok(())
}

/// `issuer` issued `cert`: the names match and the signature verifies with its key.
fn issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The same public key: algorithm, curve (EC) and key bits; RSA by modulus and exponent.
fn same_key(a: &SubjectPublicKeyInfo<'_>, b: &SubjectPublicKeyInfo<'_>) -> bool {
    if a.algorithm.algorithm != b.algorithm.algorithm {
        return false;
    }
    match (a.parsed(), b.parsed()) {
        (Ok(PublicKey::EC(pa)), Ok(PublicKey::EC(pb))) => {
            let curve = |s: &SubjectPublicKeyInfo<'_>| {
                s.algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string())
            };
            let (ca, cb) = (curve(a), curve(b));
            ca.is_some() && ca == cb && pa.data() == pb.data()
        }
        (Ok(PublicKey::RSA(ra)), Ok(PublicKey::RSA(rb))) => {
            let strip = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            strip(ra.modulus) == strip(rb.modulus) && strip(ra.exponent) == strip(rb.exponent)
        }
        _ => false,
    }
}

/// The public key of a PEM certificate request (its self-signature is checked when the CA
/// issues; here only the key matters).
fn csr_key_der(csr_pem: &str) -> Result<Vec<u8>, AttestationError> {
    let der = keyfile::pem_body(csr_pem, "CERTIFICATE REQUEST")
        .or_else(|_| keyfile::pem_body(csr_pem, "NEW CERTIFICATE REQUEST"))
        .map_err(|_| {
            AttestationError::Malformed("the CSR is not a PEM CERTIFICATE REQUEST".into())
        })?;
    let (_, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| AttestationError::Malformed(format!("CSR: {e}")))?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

fn extension_bytes<'a>(cert: &'a X509Certificate<'_>, oid: &[u64]) -> Option<&'a [u8]> {
    let oid = Oid::from(oid).ok()?;
    cert.extensions()
        .iter()
        .find(|e| e.oid == oid)
        .map(|e| e.value)
}

fn der_unsigned(value: &[u8]) -> Option<u64> {
    // 02 L <big-endian two's complement>, non-negative and at most 8 bytes of magnitude.
    let (&tag, rest) = value.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x02 || usize::from(len) != body.len() || body.is_empty() || body[0] & 0x80 != 0 {
        return None;
    }
    let start = body.iter().position(|&b| b != 0).unwrap_or(body.len());
    let magnitude = &body[start..];
    (magnitude.len() <= 8).then(|| magnitude.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
}

/// Verifies an attestation: `statement` (the card's answer to `INS F9` for the key's slot)
/// is signed by `signer` (the slot-F9 certificate), which is one of `roots` or signed by one
/// of them; each is within its validity at `now`; and the attested key is the key of
/// `csr_pem`.
pub fn verify(
    statement: &[u8],
    signer: &[u8],
    roots: &[Vec<u8>],
    csr_pem: &str,
    now: DateTime<Utc>,
) -> Result<Attested, AttestationError> {
    let statement_cert = parse(statement, "attestation statement")?;
    let signer_cert = parse(signer, "attestation certificate (F9)")?;
    let csr_key = csr_key_der(csr_pem)?;
    let (_, csr_spki) = SubjectPublicKeyInfo::from_der(&csr_key)
        .map_err(|e| AttestationError::Malformed(format!("CSR key: {e}")))?;
    if !issued_by(&statement_cert, &signer_cert) {
        return Err(AttestationError::Untrusted(
            "the statement is not signed by the card's attestation certificate (F9)".into(),
        ));
    }
    valid_at(&statement_cert, now, "the attestation statement")?;
    valid_at(&signer_cert, now, "the attestation certificate (F9)")?;
    let mut root_subject = None;
    for der in roots {
        let Ok(root) = parse(der, "trusted root") else {
            continue;
        };
        let trusted = der.as_slice() == signer || issued_by(&signer_cert, &root);
        if trusted && valid_at(&root, now, "the trusted root").is_ok() {
            root_subject = Some(root.subject().to_string());
            break;
        }
    }
    let Some(root_subject) = root_subject else {
        return Err(AttestationError::Untrusted(format!(
            "{} is not issued by a trusted attestation root",
            signer_cert.issuer()
        )));
    };
    if !same_key(statement_cert.public_key(), &csr_spki) {
        return Err(AttestationError::KeyMismatch);
    }
    let policy = extension_bytes(&statement_cert, OID_YUBICO_POLICY);
    Ok(Attested {
        statement_subject: statement_cert.subject().to_string(),
        signer_subject: signer_cert.subject().to_string(),
        root_subject,
        card_serial: extension_bytes(&statement_cert, OID_YUBICO_SERIAL).and_then(der_unsigned),
        firmware: extension_bytes(&statement_cert, OID_YUBICO_FIRMWARE)
            .filter(|v| v.len() == 3)
            .map(|v| format!("{}.{}.{}", v[0], v[1], v[2])),
        pin_policy: policy.and_then(|p| p.first().copied()),
        touch_policy: policy.and_then(|p| p.get(1).copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa,
        KeyPair,
    };

    struct Chain {
        root: rcgen::Certificate,
        signer: rcgen::Certificate,
        signer_key: KeyPair,
    }

    fn ca(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    }

    fn chain(name: &str) -> Chain {
        let root_key = KeyPair::generate().unwrap();
        let root = ca(&format!("{name} root")).self_signed(&root_key).unwrap();
        let signer_key = KeyPair::generate().unwrap();
        let signer = ca(&format!("{name} F9"))
            .signed_by(&signer_key, &root, &root_key)
            .unwrap();
        Chain {
            root,
            signer,
            signer_key,
        }
    }

    fn statement(chain: &Chain, key: &KeyPair) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "YubiKey PIV Attestation 9a");
        p.distinguished_name = dn;
        p.custom_extensions = vec![
            CustomExtension::from_oid_content(OID_YUBICO_FIRMWARE, vec![5, 4, 3]),
            CustomExtension::from_oid_content(
                OID_YUBICO_SERIAL,
                vec![0x02, 0x03, 0x00, 0xBC, 0x61],
            ),
            CustomExtension::from_oid_content(OID_YUBICO_POLICY, vec![2, 1]),
        ];
        p.signed_by(key, &chain.signer, &chain.signer_key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn csr(key: &KeyPair) -> String {
        CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn a_chain_to_a_trusted_root_attests_the_csr_key() {
        let trusted = chain("trusted");
        let card_key = KeyPair::generate().unwrap();
        let attested = verify(
            &statement(&trusted, &card_key),
            trusted.signer.der(),
            &[trusted.root.der().to_vec()],
            &csr(&card_key),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(attested.card_serial, Some(48225));
        assert_eq!(attested.firmware.as_deref(), Some("5.4.3"));
        assert_eq!(
            (attested.pin_policy, attested.touch_policy),
            (Some(2), Some(1))
        );
        assert!(
            attested.root_subject.contains("trusted root"),
            "{attested:?}"
        );
        let line = attested.summary();
        assert!(
            line.contains("card serial 48225") && line.contains("PIN policy once"),
            "{line}"
        );
    }

    #[test]
    fn another_key_another_root_or_a_forged_statement_are_refused() {
        let trusted = chain("trusted");
        let other = chain("other");
        let card_key = KeyPair::generate().unwrap();
        let roots = [trusted.root.der().to_vec()];
        // Another key in the CSR than the attested one.
        let err = verify(
            &statement(&trusted, &card_key),
            trusted.signer.der(),
            &roots,
            &csr(&KeyPair::generate().unwrap()),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(err, AttestationError::KeyMismatch);
        // A chain to a root nobody configured.
        let err = verify(
            &statement(&other, &card_key),
            other.signer.der(),
            &roots,
            &csr(&card_key),
            Utc::now(),
        )
        .unwrap_err();
        assert!(matches!(err, AttestationError::Untrusted(_)), "{err:?}");
        // A statement of the other chain presented with the trusted F9 certificate.
        let err = verify(
            &statement(&other, &card_key),
            trusted.signer.der(),
            &roots,
            &csr(&card_key),
            Utc::now(),
        )
        .unwrap_err();
        assert!(matches!(err, AttestationError::Untrusted(_)), "{err:?}");
        // No roots at all.
        assert!(verify(
            &statement(&trusted, &card_key),
            trusted.signer.der(),
            &[],
            &csr(&card_key),
            Utc::now(),
        )
        .is_err());
        // Outside the validity.
        let err = verify(
            &statement(&trusted, &card_key),
            trusted.signer.der(),
            &roots,
            &csr(&card_key),
            Utc::now() + chrono::Duration::days(365 * 5000),
        )
        .unwrap_err();
        assert!(matches!(err, AttestationError::Untrusted(_)), "{err:?}");
        assert!(matches!(
            verify(
                b"\x30\x00",
                trusted.signer.der(),
                &roots,
                &csr(&card_key),
                Utc::now()
            ),
            Err(AttestationError::Malformed(_))
        ));
    }

    #[test]
    fn certificates_read_as_pem_or_base64_der() {
        let trusted = chain("pem");
        let der = trusted.root.der().to_vec();
        assert_eq!(certificate_der(&trusted.root.pem()).unwrap(), der);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(certificate_der(&b64).unwrap(), der);
        assert!(certificate_der("not a certificate!").is_err());
        let both = format!("{}\n{}", trusted.root.pem(), trusted.signer.pem());
        assert_eq!(
            pem_certificates(&both),
            vec![der, trusted.signer.der().to_vec()]
        );
    }
}
