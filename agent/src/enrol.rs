//! Enrolment on the card: the 9B management key (`mgmt`), GENERATE ASYMMETRIC KEY PAIR
//! (P-256 or RSA-2048) in slot 9A, a PKCS#10 request whose signature the card makes (rcgen
//! 0.13's `RemoteKeyPair`: rcgen builds the CertificationRequestInfo, the card signs), and PUT
//! DATA of the issued certificate into 5FC105.
//!
//! ECDSA P-256: the host hashes with SHA-256 and the card signs the digest. RSA-2048: the CSR
//! is signed with sha256WithRSAEncryption, so the host encodes EMSA-PKCS1-v1_5 (RFC 8017
//! §9.2: `00 01 FF… 00 DigestInfo(SHA-256)`) and the card performs the raw RSA operation.

use crate::card::CardThread;
use crate::error::PivError;
use crate::mgmt::{self, MgmtAlgorithm, MgmtKey};
use crate::piv::{self, AlgorithmId, PublicKey, SlotId};

/// DER of DigestInfo { AlgorithmIdentifier { id-sha256, NULL }, OCTET STRING (32) } without
/// the digest (RFC 8017 §9.2 note 1).
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// EMSA-PKCS1-v1_5-ENCODE (RFC 8017 §9.2) of `message` with SHA-256 for a modulus of `k`
/// bytes: `00 01 FF…FF 00 DigestInfo H` — the block the card's raw RSA operation turns into an
/// RSASSA-PKCS1-v1_5 signature.
pub fn emsa_pkcs1_v15_sha256(message: &[u8], k: usize) -> Vec<u8> {
    let hash = ring::digest::digest(&ring::digest::SHA256, message);
    let t_len = SHA256_DIGEST_INFO_PREFIX.len() + 32;
    assert!(k >= t_len + 11, "modulus too short for PKCS#1 v1.5");
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t_len - 1, 0xFF);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    em.extend_from_slice(hash.as_ref());
    em
}

/// DER of a positive INTEGER with big-endian magnitude `bytes`.
fn der_integer(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let mut value = bytes[start..].to_vec();
    if value.first().is_none_or(|&b| b & 0x80 != 0) {
        value.insert(0, 0x00);
    }
    der_header(out, 0x02, value.len());
    out.extend_from_slice(&value);
}

fn der_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1):
/// what a certificate request carries in its BIT STRING for rsaEncryption.
pub fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(modulus.len() + exponent.len() + 10);
    der_integer(&mut body, modulus);
    der_integer(&mut body, exponent);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_header(&mut out, 0x30, body.len());
    out.extend_from_slice(&body);
    out
}

struct CardKeyPair {
    card: CardThread,
    alg: AlgorithmId,
    /// The uncompressed point (P-256) or the RSAPublicKey DER (RSA).
    public: Vec<u8>,
}

impl rcgen::RemoteKeyPair for CardKeyPair {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let input = match self.alg {
            AlgorithmId::EccP256 => ring::digest::digest(&ring::digest::SHA256, msg)
                .as_ref()
                .to_vec(),
            AlgorithmId::Rsa2048 => emsa_pkcs1_v15_sha256(msg, self.alg.input_len()),
        };
        self.card
            .sign(self.alg, input)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.alg {
            AlgorithmId::EccP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            AlgorithmId::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// The management key to use: its algorithm as given, else as the card reports it (GET
/// METADATA; 3DES when the card does not say); the key as given (hex), else the factory
/// default.
pub fn management_key(
    card: &CardThread,
    alg: Option<MgmtAlgorithm>,
    key_hex: Option<&str>,
) -> anyhow::Result<MgmtKey> {
    let alg = match alg {
        Some(alg) => alg,
        None => card.call(|r| r.run(mgmt::card_algorithm))?,
    };
    match key_hex {
        Some(hex) => Ok(MgmtKey::from_hex(alg, hex)?),
        None => MgmtKey::default_for(alg).map_err(|_| {
            anyhow::anyhow!(
                "该 USB Key 的管理密钥（9B）算法为 {alg}，没有出厂默认密钥：请用 --management-key 指定"
            )
        }),
    }
}

/// Mutual authentication with the 9B management key on the card thread; lasts until the card
/// is reset or PIV selected again, so GENERATE and PUT DATA on the same connection follow.
pub fn authenticate(card: &CardThread, key: MgmtKey) -> Result<(), PivError> {
    card.call(move |r| {
        let result = r.run(|c| mgmt::authenticate(c, &key));
        drop(key);
        result
    })
}

/// Generates an `alg` key in slot 9A (the PIN verified and the management key authenticated)
/// and returns a CSR (PEM) signed by it. The subject is left empty: the server takes it from
/// the grant.
pub fn generate_and_request(card: &CardThread, alg: AlgorithmId) -> anyhow::Result<String> {
    let public = card.call(move |r| r.run(|c| piv::generate(c, alg, SlotId::Authentication)))?;
    let public = match (alg, public) {
        (AlgorithmId::EccP256, PublicKey::EccP256 { point }) => point,
        (AlgorithmId::Rsa2048, PublicKey::Rsa { modulus, exponent }) => {
            if modulus.len() != 256 || modulus[0] & 0x80 == 0 {
                return Err(PivError::Malformed("生成的 RSA 密钥不是 2048 位").into());
            }
            rsa_public_key_der(&modulus, &exponent)
        }
        _ => return Err(PivError::Malformed("生成的密钥与所选算法不符").into()),
    };
    let key = rcgen::KeyPair::from_remote(Box::new(CardKeyPair {
        card: card.clone(),
        alg,
        public,
    }))?;
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    Ok(params.serialize_request(&key)?.pem()?)
}

/// The card's PIV attestation of the key in slot 9A, as PEM: (the statement the card makes
/// with `INS F9`, the slot-F9 attestation certificate from object 5FFF01). `None` when the card
/// makes none (not a YubiKey, or no attestation key); other card errors are errors.
pub fn read_attestation(card: &CardThread) -> anyhow::Result<Option<(String, String)>> {
    let statement = card.call(|r| r.run(|c| piv::attest(c, SlotId::Authentication)))?;
    let Some(statement) = statement else {
        return Ok(None);
    };
    let signer = card.call(|r| r.run(piv::read_attestation_certificate))?;
    Ok(signer.map(|signer| (certificate_pem(&statement), certificate_pem(&signer))))
}

/// A DER certificate as PEM (64 base64 characters a line).
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Writes the issued certificate (PEM) into slot 9A's object 5FC105; returns its DER.
pub fn store_certificate(card: &CardThread, pem: &str) -> anyhow::Result<Vec<u8>> {
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| anyhow::anyhow!("服务器返回的证书无法解析"))??
        .to_vec();
    let copy = der.clone();
    card.call(move |r| r.run(|c| piv::write_certificate(c, SlotId::Authentication, &copy)))?;
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;

    #[test]
    fn certificates_print_as_pem_that_parses_back() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = certificate_pem(&der);
        assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
        let parsed = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(parsed.as_ref(), &der[..]);
    }

    #[test]
    fn pkcs1_v15_block_is_laid_out_byte_for_byte() {
        let em = emsa_pkcs1_v15_sha256(b"abc", 256);
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0x00, 0x01]);
        let ps_end = 256 - 51 - 1;
        assert!(em[2..ps_end].iter().all(|&b| b == 0xFF));
        assert_eq!(ps_end - 2, 202, "PS fills the block");
        assert_eq!(em[ps_end], 0x00);
        assert_eq!(&em[ps_end + 1..ps_end + 20], &SHA256_DIGEST_INFO_PREFIX);
        // SHA-256("abc") (FIPS 180-2 appendix B.1).
        assert_eq!(
            &em[224..],
            &[
                0xBA, 0x78, 0x16, 0xBF, 0x8F, 0x01, 0xCF, 0xEA, 0x41, 0x41, 0x40, 0xDE, 0x5D, 0xAE,
                0x22, 0x23, 0xB0, 0x03, 0x61, 0xA3, 0x96, 0x17, 0x7A, 0x9C, 0xB4, 0x10, 0xFF, 0x61,
                0xF2, 0x00, 0x15, 0xAD
            ]
        );
    }

    #[test]
    fn rsa_public_keys_encode_as_der() {
        assert_eq!(
            rsa_public_key_der(&[0x00, 0x81, 0x02], &[0x01, 0x00, 0x01]),
            [0x30, 0x0A, 0x02, 0x03, 0x00, 0x81, 0x02, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let der = rsa_public_key_der(&[0xC5; 256], &[0x01, 0x00, 0x01]);
        assert_eq!(&der[..8], &[0x30, 0x82, 0x01, 0x0A, 0x02, 0x82, 0x01, 0x01]);
        assert_eq!(der[8], 0x00, "sign byte before a high modulus");
        assert_eq!(der.len(), 4 + 4 + 257 + 5);
    }

    /// A raw RSA operation on our encoding (as the card does it) is a PKCS#1 v1.5 signature
    /// that ring verifies with the public key as we encode it for the CSR.
    #[test]
    fn the_raw_rsa_operation_on_our_block_verifies_with_ring() {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let message = b"CertificationRequestInfo stand-in";
        let em = emsa_pkcs1_v15_sha256(message, 256);
        let c = rsa::BigUint::from_bytes_be(&em);
        let m = rsa::hazmat::rsa_decrypt_and_check(&private, Some(&mut rand::thread_rng()), &c)
            .unwrap();
        let mut signature = vec![0u8; 256];
        let bytes = m.to_bytes_be();
        signature[256 - bytes.len()..].copy_from_slice(&bytes);
        let public = rsa_public_key_der(&private.n().to_bytes_be(), &private.e().to_bytes_be());
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &public,
        )
        .verify(message, &signature)
        .expect("ring verifies the signature");
        assert!(ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &public,
        )
        .verify(b"another message", &signature)
        .is_err());
    }
}
