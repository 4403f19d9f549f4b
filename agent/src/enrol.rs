//! Enrolment on the card: GENERATE ASYMMETRIC KEY PAIR (P-256) in slot 9A, a PKCS#10 request
//! whose signature the card makes (rcgen 0.13's `RemoteKeyPair`: rcgen builds the
//! CertificationRequestInfo, the card signs its SHA-256 digest), and PUT DATA of the issued
//! certificate into 5FC105.
//!
//! The virtual card accepts the verified PIN for GENERATE and PUT DATA; a real key wants the 9B
//! management key (GENERAL AUTHENTICATE with a 3DES/AES challenge) — still to come.

use crate::card::CardThread;
use crate::error::PivError;
use crate::piv::{self, AlgorithmId, PublicKey, SlotId};

struct CardKeyPair {
    card: CardThread,
    point: Vec<u8>,
}

impl rcgen::RemoteKeyPair for CardKeyPair {
    fn public_key(&self) -> &[u8] {
        &self.point
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, msg);
        self.card
            .sign(AlgorithmId::EccP256, digest.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// Generates a P-256 key in slot 9A (the PIN must be verified) and returns a CSR (PEM) signed
/// by it. The subject is left empty: the server takes it from the grant.
pub fn generate_and_request(card: &CardThread) -> anyhow::Result<String> {
    let public =
        card.call(|r| r.run(|c| piv::generate(c, AlgorithmId::EccP256, SlotId::Authentication)))?;
    let PublicKey::EccP256 { point } = public else {
        return Err(PivError::Malformed("生成的不是 P-256 密钥").into());
    };
    let key = rcgen::KeyPair::from_remote(Box::new(CardKeyPair {
        card: card.clone(),
        point,
    }))?;
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    Ok(params.serialize_request(&key)?.pem()?)
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
