//! The card certificate as people see it: holder (CN), ID number (serialNumber attribute),
//! organisation code (OU), issuer, validity, days left and the expiry warning (SPEC §11: warn
//! from 30 days before expiry). Pure: parses DER with x509-parser.

use chrono::{DateTime, Utc};
use x509_parser::prelude::*;

use crate::error::PivError;
use crate::piv::AlgorithmId;

/// Days before expiry from which the agent warns.
pub const WARN_DAYS: i64 = 30;

/// What the agent shows about the certificate in slot 9A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCertificate {
    pub der: Vec<u8>,
    /// 持有人 — the subject's CN.
    pub holder: String,
    /// 身份证号 — the subject's serialNumber attribute (2.5.4.5).
    pub id_number: Option<String>,
    /// 组织代码 — the scope organisation's unified code (the subject's OU).
    pub org_code: Option<String>,
    /// The issuer's CN (or the whole issuer name when it has none).
    pub issuer: String,
    /// The certificate's serial number, hex.
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// The key algorithm, when it is one the card layer knows.
    pub algorithm: Option<AlgorithmId>,
    /// The subject public key: the uncompressed point for P-256, the PKCS#1 RSAPublicKey for
    /// RSA (what verifiers such as ring take).
    pub public_key: Vec<u8>,
}

impl CardCertificate {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, PivError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|_| PivError::Malformed("证书不是有效的 X.509 DER"))?;
        let subject = cert.subject();
        let holder = first_text(subject.iter_common_name()).unwrap_or_default();
        let id_number =
            first_text(subject.iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER));
        let org_code = first_text(subject.iter_organizational_unit());
        let issuer = first_text(cert.issuer().iter_common_name())
            .unwrap_or_else(|| cert.issuer().to_string());
        let time = |t: ASN1Time| {
            DateTime::<Utc>::from_timestamp(t.timestamp(), 0)
                .ok_or(PivError::Malformed("证书有效期超出范围"))
        };
        let spki = cert.public_key();
        let algorithm = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::EC(point)) if point.key_size() == 256 => {
                Some(AlgorithmId::EccP256)
            }
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) if rsa.key_size() == 2048 => {
                Some(AlgorithmId::Rsa2048)
            }
            _ => None,
        };
        Ok(Self {
            der: der.to_vec(),
            holder,
            id_number,
            org_code,
            issuer,
            serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
            algorithm,
            public_key: spki.subject_public_key.data.to_vec(),
        })
    }

    /// Whole days until `not_after` (negative once expired).
    pub fn days_left(&self, now: DateTime<Utc>) -> i64 {
        (self.not_after - now).num_days()
    }

    /// The Chinese warning to show, if any: expired, not yet valid, or expiring within 30 days.
    pub fn warning(&self, now: DateTime<Utc>) -> Option<String> {
        let days = self.days_left(now);
        if now > self.not_after {
            Some("证书已过期，无法登录，请联系安全保密员重新签发".to_string())
        } else if now < self.not_before {
            Some("证书尚未生效".to_string())
        } else if days < WARN_DAYS {
            Some(format!(
                "证书将在 {days} 天后过期，请尽快联系安全保密员更换"
            ))
        } else {
            None
        }
    }
}

fn first_text<'a>(
    mut attributes: impl Iterator<Item = &'a AttributeTypeAndValue<'a>>,
) -> Option<String> {
    attributes
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn make(days_valid: i64) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "张三");
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), "110101199003074514");
        dn.push(DnType::OrganizationalUnitName, "91110000100000000X");
        params.distinguished_name = dn;
        let now = ::time::OffsetDateTime::now_utc();
        params.not_before = now - ::time::Duration::days(1);
        params.not_after = now + ::time::Duration::days(days_valid) + ::time::Duration::hours(1);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_fields_are_read() {
        let der = make(365);
        let cert = CardCertificate::parse(&der).unwrap();
        assert_eq!(cert.holder, "张三");
        assert_eq!(cert.id_number.as_deref(), Some("110101199003074514"));
        assert_eq!(cert.org_code.as_deref(), Some("91110000100000000X"));
        assert_eq!(cert.algorithm, Some(AlgorithmId::EccP256));
        let now = Utc::now();
        assert_eq!(cert.days_left(now), 365);
        assert_eq!(cert.warning(now), None);
    }

    #[test]
    fn expiry_warnings_start_30_days_before() {
        let cert = CardCertificate::parse(&make(29)).unwrap();
        let warning = cert.warning(Utc::now()).unwrap();
        assert!(warning.contains("29 天后过期"), "{warning}");
        let cert = CardCertificate::parse(&make(30)).unwrap();
        assert_eq!(cert.warning(Utc::now()), None);
        let later = Utc::now() + Duration::days(40);
        assert!(cert.warning(later).unwrap().contains("已过期"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(CardCertificate::parse(&[0x30, 0x00]).is_err());
    }
}
