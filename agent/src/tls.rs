//! The card as the TLS client key: a `rustls::sign::SigningKey` whose signatures are made by
//! the card (GENERAL AUTHENTICATE on the card thread), a `ResolvesClientCert` presenting the
//! certificate from slot 9A, and the client configuration — trust only the platform CA, TLS 1.3
//! (and 1.2 ECDHE), an in-memory session cache so reconnects resume without a new signature.
//!
//! ECDSA P-256: the host hashes (SHA-256), the card signs the digest and answers a DER
//! ECDSA-Sig-Value — exactly TLS's ecdsa_secp256r1_sha256. RSA-2048: TLS 1.3 allows only PSS,
//! so the host encodes EMSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt; RFC 8017 §9.1.1) and the
//! card performs the raw RSA operation on the 256-byte block.

use std::fmt;
use std::sync::Arc;

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::{ClientSessionMemoryCache, ResolvesClientCert};
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ClientConfig, RootCertStore, SignatureAlgorithm, SignatureScheme};

use crate::card::CardThread;
use crate::piv::AlgorithmId;

/// The slot-9A key on the card.
#[derive(Clone)]
pub struct CardSigningKey {
    card: CardThread,
    alg: AlgorithmId,
}

impl CardSigningKey {
    pub fn new(card: CardThread, alg: AlgorithmId) -> Self {
        Self { card, alg }
    }

    fn scheme(&self) -> SignatureScheme {
        match self.alg {
            AlgorithmId::EccP256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            AlgorithmId::Rsa2048 => SignatureScheme::RSA_PSS_SHA256,
        }
    }
}

impl fmt::Debug for CardSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CardSigningKey({}, {})",
            self.alg,
            self.card.reader_name()
        )
    }
}

impl SigningKey for CardSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self.scheme();
        offered.contains(&scheme).then(|| {
            Box::new(CardSigner {
                key: self.clone(),
                scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.alg {
            AlgorithmId::EccP256 => SignatureAlgorithm::ECDSA,
            AlgorithmId::Rsa2048 => SignatureAlgorithm::RSA,
        }
    }
}

struct CardSigner {
    key: CardSigningKey,
    scheme: SignatureScheme,
}

impl fmt::Debug for CardSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardSigner({:?})", self.scheme)
    }
}

impl Signer for CardSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let input = match self.key.alg {
            AlgorithmId::EccP256 => digest::digest(&digest::SHA256, message).as_ref().to_vec(),
            AlgorithmId::Rsa2048 => {
                let mut salt = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut salt)
                    .map_err(|_| rustls::Error::General("no randomness".into()))?;
                emsa_pss_sha256(message, &salt, 2048)
            }
        };
        self.key
            .card
            .sign(self.key.alg, input)
            .map_err(|e| rustls::Error::General(format!("USB Key: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// MGF1 with SHA-256 (RFC 8017 appendix B.2.1).
fn mgf1_sha256(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(seed);
        ctx.update(&counter.to_be_bytes());
        out.extend_from_slice(ctx.finish().as_ref());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-256 and MGF1-SHA-256 for a modulus of
/// `mod_bits` bits: the block the card's raw RSA operation turns into an RSASSA-PSS signature.
pub fn emsa_pss_sha256(message: &[u8], salt: &[u8], mod_bits: usize) -> Vec<u8> {
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let m_hash = digest::digest(&digest::SHA256, message);
    let mut m_prime = vec![0u8; 8];
    m_prime.extend_from_slice(m_hash.as_ref());
    m_prime.extend_from_slice(salt);
    let h = digest::digest(&digest::SHA256, &m_prime);
    let h_len = 32;
    // DB = PS || 0x01 || salt
    let mut db = vec![0u8; em_len - salt.len() - h_len - 2];
    db.push(0x01);
    db.extend_from_slice(salt);
    let mask = mgf1_sha256(h.as_ref(), db.len());
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(h.as_ref());
    em.push(0xBC);
    // The card takes a block as long as the modulus.
    let mut block = vec![0u8; mod_bits / 8 - em_len];
    block.extend(em);
    block
}

/// Presents the card's certificate whenever the server asks for one and the card's key can
/// sign one of the schemes the server offers.
#[derive(Debug)]
pub struct CardCertResolver {
    key: Arc<CertifiedKey>,
}

impl CardCertResolver {
    pub fn new(certificate: Vec<u8>, key: CardSigningKey) -> Self {
        Self {
            key: Arc::new(CertifiedKey::new(
                vec![CertificateDer::from(certificate)],
                Arc::new(key),
            )),
        }
    }
}

impl ResolvesClientCert for CardCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key
            .key
            .choose_scheme(sigschemes)
            .map(|_| self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The trust store: the platform CA(s) in the PEM file, never the system roots.
pub fn roots_from_pem(pem: &[u8]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert?)?;
    }
    anyhow::ensure!(!roots.is_empty(), "CA 文件中没有证书");
    Ok(roots)
}

/// A client configuration (with its own session cache).
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
}

/// The client configuration: ring, TLS 1.3 and 1.2, HTTP/2 by ALPN, the platform CA only,
/// the card's certificate and key (or none, for enrolment), an in-memory resumption cache.
/// A new configuration (after the card was pulled) starts with an empty cache.
pub fn client_config(
    roots: RootCertStore,
    card: Option<CardCertResolver>,
) -> anyhow::Result<TlsClient> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let mut config = match card {
        Some(resolver) => builder.with_client_cert_resolver(Arc::new(resolver)),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Resumption on reconnect (after a network drop): the card does not sign again.
    config.resumption =
        rustls::client::Resumption::store(Arc::new(ClientSessionMemoryCache::new(16)));
    Ok(TlsClient {
        config: Arc::new(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_block_has_the_rfc_8017_shape() {
        let block = emsa_pss_sha256(b"hello", &[7; 32], 2048);
        assert_eq!(block.len(), 256);
        assert_eq!(*block.last().unwrap(), 0xBC);
        assert_eq!(block[0] & 0x80, 0, "top bit cleared: emBits = 2047");
        // Unmask DB and find the 0x01 separator followed by the salt.
        let (masked_db, rest) = block.split_at(256 - 33);
        let h = &rest[..32];
        let mask = mgf1_sha256(h, masked_db.len());
        let mut db: Vec<u8> = masked_db.iter().zip(mask).map(|(a, b)| a ^ b).collect();
        db[0] &= 0x7F;
        let sep = db.iter().position(|&b| b != 0).unwrap();
        assert_eq!(db[sep], 0x01);
        assert_eq!(&db[sep + 1..], &[7; 32]);
    }
}
