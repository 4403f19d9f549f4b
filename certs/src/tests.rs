use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
        let path = std::env::temp_dir().join(format!("dangjian-certs-{}", hex::encode(bytes)));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn ca(&self) -> PathBuf {
        self.0.join("ca")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const CHEAP: keyfile::KdfCost = keyfile::KdfCost {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

const URL: &str = "https://dj.example.cn/crl";

fn subject() -> ClientSubject {
    ClientSubject {
        name: "张三".into(),
        id_number: "11010519491231002x".into(),
        org_code: "0101".into(),
    }
}

fn new_ca(tmp: &TempDir) -> Ca {
    Ca::init(&tmp.ca(), "Dangjian Test CA", URL, None).unwrap()
}

fn evil_csr() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Evil");
    dn.push(DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()), "000");
    dn.push(DnType::OrganizationalUnitName, "999");
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, csr)
}

#[test]
fn ca_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ca>();
}

#[test]
fn init_writes_the_directory_and_refuses_twice() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let dir = ca.dir();
    for path in [
        dir.cert_path(),
        dir.key_path(),
        dir.config_path(),
        dir.register_path(),
        dir.crl_path(),
    ] {
        assert!(path.exists(), "{}", path.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.key_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let info = describe(&ca.cert_der()).unwrap();
    assert!(info.is_ca);
    assert_eq!(info.holder_name.as_deref(), Some("Dangjian Test CA"));
    assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let first_crl = parse_crl(&fs::read(dir.crl_path()).unwrap(), &ca.cert_der()).unwrap();
    assert!(first_crl.revoked.is_empty());
    assert!(!first_crl.is_stale(Utc::now()));

    assert!(matches!(
        Ca::init(&tmp.ca(), "Again", URL, None),
        Err(Error::Exists(_))
    ));
    assert!(Ca::init(&tmp.0.join("other"), "X", "ftp://x", None).is_err());
    assert!(Ca::init(&tmp.0.join("other"), "", URL, None).is_err());

    let reopened = Ca::open(&tmp.ca(), None).unwrap();
    assert_eq!(reopened.cert_der(), ca.cert_der());
    assert_eq!(reopened.crl_url(), URL);
}

#[test]
fn client_certificate_with_generated_key() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let issued = ca
        .issue_client(&subject(), None, DEFAULT_DAYS, Some("acc-1"))
        .unwrap();
    assert!(issued.key_pem.as_deref().unwrap().contains("PRIVATE KEY"));
    assert_eq!(issued.serial_hex.len(), 32);

    let info = describe(&issued.cert_der).unwrap();
    assert_eq!(info.holder_name.as_deref(), Some("张三"));
    assert_eq!(info.id_number.as_deref(), Some("11010519491231002X"));
    assert_eq!(info.org_code.as_deref(), Some("0101"));
    assert_eq!(info.issuer, "CN=Dangjian Test CA");
    assert_eq!(info.serial_hex, issued.serial_hex);
    assert_eq!(info.sha256_fingerprint, issued.sha256_fingerprint);
    assert!(info.client_auth && !info.server_auth && !info.is_ca);
    assert!(info.digital_signature);
    assert_eq!(info.crl_urls, vec![URL.to_string()]);
    assert!((363..=365).contains(&info.days_left), "{}", info.days_left);
    assert_eq!(info.not_after, issued.not_after);

    // The key matches the certificate.
    let key = KeyPair::from_pem(issued.key_pem.as_deref().unwrap()).unwrap();
    let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
    assert_eq!(x509.public_key().raw, key.public_key_der().as_slice());
    // Signed by the CA.
    let root_der = ca.cert_der();
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    x509.verify_signature(Some(root.public_key())).unwrap();

    let entry = ca.find(&issued.serial_hex.to_uppercase()).unwrap().unwrap();
    assert_eq!(entry.kind, "client");
    assert_eq!(entry.account_id.as_deref(), Some("acc-1"));
    assert_eq!(entry.sha256_fingerprint, issued.sha256_fingerprint);
    assert_eq!(entry.issuer, info.issuer);
    assert!(
        entry.subject.contains("110105********002X"),
        "{}",
        entry.subject
    );
    assert_eq!(entry.state(Utc::now()), "valid");
    assert_eq!(ca.list().unwrap().len(), 1);
}

#[test]
fn csr_supplies_only_the_public_key() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let (key, csr) = evil_csr();
    let issued = ca.issue_client(&subject(), Some(&csr), 30, None).unwrap();
    assert!(issued.key_pem.is_none());
    let info = describe(&issued.cert_der).unwrap();
    assert_eq!(
        info.subject,
        "CN=张三, serialNumber=11010519491231002X, OU=0101"
    );
    assert!(info.sans.is_empty(), "CSR extensions must not be copied");
    let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
    assert_eq!(x509.public_key().raw, key.public_key_der().as_slice());

    // A CSR whose signature does not verify is refused.
    let mut der = keyfile::pem_body(&csr, "CERTIFICATE REQUEST").unwrap();
    let last = der.len() - 3;
    der[last] ^= 0x01;
    let broken = keyfile::pem_block("CERTIFICATE REQUEST", &der);
    assert!(matches!(
        ca.issue_client(&subject(), Some(&broken), 30, None),
        Err(Error::Invalid(_))
    ));
    assert!(ca
        .issue_client(&subject(), Some("not a csr"), 30, None)
        .is_err());
    // Nothing but the one good certificate reached the register.
    assert_eq!(ca.list().unwrap().len(), 1);
}

#[test]
fn subject_is_checked() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let bad_id = ClientSubject {
        id_number: "110105194912310021".into(),
        ..subject()
    };
    assert!(matches!(
        ca.issue_client(&bad_id, None, 365, None),
        Err(Error::Invalid(_))
    ));
    let bad_org = ClientSubject {
        org_code: "01-01".into(),
        ..subject()
    };
    assert!(ca.issue_client(&bad_org, None, 365, None).is_err());
    let no_name = ClientSubject {
        name: "  ".into(),
        ..subject()
    };
    assert!(ca.issue_client(&no_name, None, 365, None).is_err());
    assert!(ca.issue_client(&subject(), None, 0, None).is_err());
    assert!(ca
        .issue_client(&subject(), None, MAX_DAYS + 1, None)
        .is_err());
    assert!(ca.list().unwrap().is_empty());
}

#[test]
fn server_certificate() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let issued = ca
        .issue_server(&["localhost".into(), "127.0.0.1".into()], 90)
        .unwrap();
    let info = describe(&issued.cert_der).unwrap();
    assert!(info.server_auth && !info.client_auth);
    assert_eq!(info.sans, vec!["localhost", "127.0.0.1"]);
    assert_eq!(info.holder_name.as_deref(), Some("localhost"));
    assert_eq!(info.crl_urls, vec![URL.to_string()]);
    assert_eq!(ca.find(&issued.serial_hex).unwrap().unwrap().kind, "server");
    assert!(ca.issue_server(&[], 90).is_err());
    assert!(ca.issue_server(&["bad name!".into()], 90).is_err());
}

#[test]
fn service_client_certificate() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let issued = ca
        .issue_service_client("dangjian realname client", 730)
        .unwrap();
    let info = describe(&issued.cert_der).unwrap();
    assert!(info.client_auth && !info.server_auth);
    assert_eq!(
        info.holder_name.as_deref(),
        Some("dangjian realname client")
    );
    assert_eq!(info.id_number, None, "names no person");
    assert!(issued.key_pem.is_some());
    assert_eq!(
        ca.find(&issued.serial_hex).unwrap().unwrap().kind,
        "service"
    );
    assert!(ca.issue_service_client(" ", 730).is_err());
    assert!(ca.issue_service_client("x", 0).is_err());
}

#[test]
fn revocation_reaches_the_crl() {
    let tmp = TempDir::new();
    let ca = new_ca(&tmp);
    let a = ca.issue_client(&subject(), None, 365, None).unwrap();
    let b = ca.issue_client(&subject(), None, 365, None).unwrap();
    assert_ne!(a.serial_hex, b.serial_hex);

    ca.revoke(&a.serial_hex, RevocationReason::KeyCompromise)
        .unwrap();
    assert!(ca
        .revoke(&a.serial_hex, RevocationReason::Superseded)
        .is_err());
    assert!(matches!(
        ca.revoke("0123", RevocationReason::Unspecified),
        Err(Error::NotFound(_))
    ));
    let entry = ca.find(&a.serial_hex).unwrap().unwrap();
    assert_eq!(entry.state(Utc::now()), "revoked");
    assert_eq!(entry.reason.as_deref(), Some("key_compromise"));

    let before = Utc::now();
    let der = ca.crl(2).unwrap();
    let info = parse_crl(&der, &ca.cert_der()).unwrap();
    assert_eq!(info.revoked, vec![a.serial_hex.clone()]);
    assert!(info.next_update > before + Duration::minutes(119));
    assert!(info.this_update <= Utc::now());
    assert_eq!(info.crl_number, Some(2), "init wrote CRL 1");
    // crl.pem holds the same CRL.
    let from_file = parse_crl(&fs::read(ca.dir().crl_path()).unwrap(), &ca.cert_der()).unwrap();
    assert_eq!(from_file, info);
    assert_eq!(
        parse_crl(&ca.crl(1).unwrap(), &ca.cert_der())
            .unwrap()
            .crl_number,
        Some(3)
    );
    assert!(ca.crl(0).is_err());

    // Another CA's certificate does not verify this CRL.
    let other = TempDir::new();
    let other_ca = new_ca(&other);
    assert!(parse_crl(&der, &other_ca.cert_der()).is_err());
}

#[test]
fn passphrase_protects_the_key() {
    let tmp = TempDir::new();
    let ca = Ca::init_with_cost(&tmp.ca(), "Sealed CA", URL, Some("s3cret"), CHEAP).unwrap();
    let text = fs::read_to_string(ca.dir().key_path()).unwrap();
    assert!(text.contains("DANGJIAN ENCRYPTED PRIVATE KEY"));
    assert!(matches!(
        Ca::open(&tmp.ca(), None),
        Err(Error::Passphrase(_))
    ));
    assert!(matches!(
        Ca::open(&tmp.ca(), Some("wrong")),
        Err(Error::Passphrase(_))
    ));
    let opened = Ca::open(&tmp.ca(), Some("s3cret")).unwrap();
    opened.issue_client(&subject(), None, 365, None).unwrap();
}

#[test]
fn a_foreign_key_is_refused() {
    let tmp = TempDir::new();
    let _ca = new_ca(&tmp);
    let other = TempDir::new();
    let _other_ca = new_ca(&other);
    fs::copy(other.ca().join("ca.key"), tmp.ca().join("ca.key")).unwrap();
    assert!(matches!(Ca::open(&tmp.ca(), None), Err(Error::Invalid(_))));
}

#[test]
fn reasons_and_serials_parse() {
    for reason in RevocationReason::ALL {
        assert_eq!(reason.as_str().parse::<RevocationReason>().unwrap(), reason);
    }
    assert_eq!(
        "Key-Compromise".parse::<RevocationReason>().unwrap(),
        RevocationReason::KeyCompromise
    );
    assert!("ca_compromise".parse::<RevocationReason>().is_err());

    assert_eq!(normalize_serial("0A:51:FF").unwrap(), "0a51ff");
    assert_eq!(normalize_serial("A51FF").unwrap(), "0a51ff");
    assert_eq!(normalize_serial("00ab").unwrap(), "ab");
    assert_eq!(normalize_serial("0").unwrap(), "00");
    assert!(normalize_serial("xyz").is_err());
    assert!(normalize_serial("").is_err());
    assert_eq!(serial_to_hex(&[0, 0x0a, 0x51]), "0a51");
    assert_eq!(serial_to_hex(&[0]), "00");
}
