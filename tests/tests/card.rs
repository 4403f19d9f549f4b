//! The card suite: real pcscd + vsmartcard's vpcd + our virtual PIV card (`vcard`), checked
//! with the real clients (OpenSC's `opensc-tool`/`pkcs15-tool`, `yubico-piv-tool`) and with the
//! agent (`dangjian-agent` and its library). pcscd is started by `scripts/test.sh` (or here,
//! when running as root). Each test owns one vpcd reader: `Virtual PCD 00 00` (port 35963) or
//! `Virtual PCD 00 01` (35964), so the two may run in parallel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dangjian_agent::mgmt::{self, MgmtAlgorithm, MgmtKey};
use dangjian_agent::{piv, AlgorithmId, CardCertificate, Pin, PivError, Reader, SlotId};
use dangjian_tests::rig::{
    agent, card_present, ensure_pcscd, run, text, wait_until, VirtualCard, PORT_0, PORT_1,
    READER_0, READER_1,
};
use dangjian_tests::vcard::CardState;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

const HOLDER: &str = "张三";
const ID_NUMBER: &str = "110101199003074514";
const ORG_CODE: &str = "91110000100000000X";
const CA_NAME: &str = "党建平台测试 CA";

/// A certificate issued by a throw-away CA, with its key, made at run time.
struct Issued {
    der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    public_point: Vec<u8>,
}

fn issue(days_valid: i64) -> Issued {
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, CA_NAME);
    ca_params.distinguished_name = ca_dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, HOLDER);
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), ID_NUMBER);
    dn.push(DnType::OrganizationalUnitName, ORG_CODE);
    params.distinguished_name = dn;
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days_valid) + time::Duration::hours(1);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Issued {
        der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        public_point: key.public_key_raw().to_vec(),
    }
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dangjian-card-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a real client; panics with its output when it fails.
fn client(program: &str, args: &[&str]) -> String {
    let out = run(Path::new(program), args, None);
    let all = text(&out);
    assert!(out.status.success(), "{program} {args:?} failed:\n{all}");
    all
}

/// `dangjian-agent <args>` with `stdin`: (succeeded, standard output and error).
fn agent_says(args: &[&str], stdin: &str) -> (bool, String) {
    let out = agent(args, Some(stdin));
    (out.status.success(), text(&out))
}

fn pem_to_der(pem_text: &str) -> Vec<u8> {
    dangjian_tests::vcard::state::pem_der(pem_text, "CERTIFICATE").unwrap()
}

/// Reader 0: the real clients accept the card; the agent shows it, counts wrong PINs, notices
/// removal and re-insertion, and explains a blocked PIN.
#[test]
fn real_clients_and_the_agent_read_the_virtual_card() {
    ensure_pcscd();
    let dir = tempdir("clients");
    let issued = issue(365);
    let card = VirtualCard::start_with_pem(&dir, PORT_0, &issued.cert_pem, &issued.key_pem);

    // OpenSC.
    let listed = client("opensc-tool", &["-l"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains(READER_0) && l.contains("Yes")),
        "{listed}"
    );
    let certs = client("pkcs15-tool", &["--reader", "0", "--list-certificates"]);
    assert!(
        certs.contains("Certificate for PIV Authentication"),
        "{certs}"
    );
    let read = client(
        "pkcs15-tool",
        &["--reader", "0", "--read-certificate", "01"],
    );
    assert_eq!(pem_to_der(&read), issued.der, "certificate read by OpenSC");
    client(
        "pkcs15-tool",
        &[
            "--reader",
            "0",
            "--verify-pin",
            "--auth-id",
            "01",
            "--pin",
            "123456",
        ],
    );

    // yubico-piv-tool (its default reader filter is "Yubikey").
    let status = client("yubico-piv-tool", &["-r", READER_0, "-a", "status"]);
    assert!(status.contains("Slot 9a"), "{status}");
    assert!(status.contains("ECCP256"), "{status}");
    assert!(
        status.contains(&format!("serialNumber={ID_NUMBER}")),
        "{status}"
    );
    assert!(status.contains("PIN tries left:\t3"), "{status}");

    // The agent.
    let readers = agent(&["readers"], None);
    let readers_text = text(&readers);
    assert!(readers.status.success(), "{readers_text}");
    assert!(readers_text.contains(READER_0), "{readers_text}");
    assert!(readers_text.contains("PIV 应用：已找到"), "{readers_text}");

    let status = agent(&["status", "--reader", READER_0], None);
    let shown = text(&status);
    assert!(status.status.success(), "{shown}");
    for expected in [
        format!("持有人：{HOLDER}"),
        format!("身份证号：{ID_NUMBER}"),
        format!("组织代码：{ORG_CODE}"),
        format!("颁发者：{CA_NAME}"),
        "PIN：剩余 3 次尝试机会".to_string(),
    ] {
        assert!(shown.contains(&expected), "missing {expected}:\n{shown}");
    }
    assert!(!shown.contains("警告"), "{shown}");

    // A wrong PIN is counted and explained; the right one resets the counter.
    let wrong = agent(&["verify-pin", "--reader", READER_0], Some("654321\n"));
    let said = text(&wrong);
    assert!(!wrong.status.success(), "{said}");
    assert!(
        said.contains("PIN：剩余 3 次尝试机会"),
        "shown before the try: {said}"
    );
    assert!(said.contains("PIN 错误，还剩 2 次尝试机会"), "{said}");
    let after = text(&agent(&["status", "--reader", READER_0], None));
    assert!(after.contains("PIN：剩余 2 次尝试机会"), "{after}");
    let right = agent(&["verify-pin", "--reader", READER_0], Some("123456\n"));
    assert!(right.status.success(), "{}", text(&right));
    assert_eq!(card.state().pin_tries_left, 3);
    let after = text(&agent(&["status", "--reader", READER_0], None));
    assert!(
        after.contains("PIN：剩余 3 次尝试机会"),
        "logged out after: {after}"
    );

    // Removal: reported as no card, without a crash; re-insertion works.
    card.remove();
    wait_until("removal", Duration::from_secs(5), || {
        !card_present(READER_0)
    });
    let gone = agent(&["status", "--reader", READER_0], None);
    let said = text(&gone);
    assert!(!gone.status.success());
    assert!(said.contains("没有 USB Key"), "{said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    card.insert();
    let back = agent(&["status", "--reader", READER_0, "--wait", "10"], None);
    let said = text(&back);
    assert!(back.status.success(), "{said}");
    assert!(said.contains(&format!("持有人：{HOLDER}")), "{said}");

    // A reader handle that saw the card go recovers once it is back.
    let mut reader = Reader::open(Some(READER_0)).unwrap();
    card.remove();
    wait_until("removal", Duration::from_secs(5), || {
        !card_present(READER_0)
    });
    let err = reader.run(piv::pin_status).unwrap_err();
    assert!(
        matches!(err, PivError::CardRemoved | PivError::NoCard(_)),
        "{err:?}"
    );
    card.insert();
    wait_until("re-insertion", Duration::from_secs(10), || {
        card_present(READER_0)
    });
    assert_eq!(
        reader.run(piv::pin_status).unwrap(),
        dangjian_agent::PinStatus::TriesLeft(3)
    );
    drop(reader);

    // Three wrong PINs block the card, and the agent says so in Chinese.
    for _ in 0..2 {
        let out = agent(&["verify-pin", "--reader", READER_0], Some("000000\n"));
        assert!(!out.status.success());
    }
    let last = agent(&["verify-pin", "--reader", READER_0], Some("000000\n"));
    let said = text(&last);
    assert!(said.contains("PIN 已锁定"), "{said}");
    let blocked = text(&agent(&["status", "--reader", READER_0], None));
    assert!(blocked.contains("PIN：已锁定"), "{blocked}");
    let refused = agent(&["verify-pin", "--reader", READER_0], Some("123456\n"));
    assert!(!refused.status.success());
    assert!(text(&refused).contains("PIN 已锁定"));
    assert_eq!(card.state().pin_tries_left, 0);

    // The PUK unblocks it: the tries left are shown first, a wrong PUK is counted.
    let r = ["--reader", READER_0];
    let (ok, said) = agent_says(
        &[&["unblock-pin"], &r[..]].concat(),
        "87654321\n654321\n654321\n",
    );
    assert!(!ok, "{said}");
    assert!(
        said.contains("PUK：剩余 3 次尝试机会"),
        "shown before: {said}"
    );
    assert!(said.contains("PUK 错误，还剩 2 次尝试机会"), "{said}");
    assert_eq!(card.state().puk_tries_left, 2);
    assert_eq!(card.state().pin_tries_left, 0, "still blocked");
    // Two different new PINs: refused before anything reaches the card.
    let (ok, said) = agent_says(
        &[&["unblock-pin"], &r[..]].concat(),
        "12345678\n654321\n654322\n",
    );
    assert!(!ok && said.contains("不一致"), "{said}");
    assert_eq!(card.state().puk_tries_left, 2);
    let (ok, said) = agent_says(
        &[&["unblock-pin"], &r[..]].concat(),
        "12345678\n654321\n654321\n",
    );
    assert!(ok, "{said}");
    assert!(said.contains("PUK：剩余 2 次尝试机会"), "{said}");
    assert!(said.contains("PIN 已解锁"), "{said}");
    let state = card.state();
    assert_eq!((state.pin_tries_left, state.puk_tries_left), (3, 3));
    assert!(
        !said.contains("654321") && !said.contains("12345678"),
        "no PIN echoed: {said}"
    );
    let (ok, said) = agent_says(&[&["verify-pin"], &r[..]].concat(), "654321\n");
    assert!(ok, "the new PIN works: {said}");

    // change-pin: a wrong current PIN is counted and explained; the right one changes it.
    let (ok, said) = agent_says(
        &[&["change-pin"], &r[..]].concat(),
        "111111\n24681357\n24681357\n",
    );
    assert!(!ok, "{said}");
    assert!(said.contains("PIN：剩余 3 次尝试机会"), "{said}");
    assert!(said.contains("PIN 错误，还剩 2 次尝试机会"), "{said}");
    assert_eq!(card.state().pin, "654321");
    let (ok, said) = agent_says(
        &[&["change-pin"], &r[..]].concat(),
        "654321\n24681357\n24681357\n",
    );
    assert!(ok, "{said}");
    assert!(said.contains("PIN 已修改"), "{said}");
    let state = card.state();
    assert_eq!((state.pin.as_str(), state.pin_tries_left), ("24681357", 3));
    let (ok, _) = agent_says(&[&["verify-pin"], &r[..]].concat(), "654321\n");
    assert!(!ok, "the old PIN no longer works");
    let (ok, said) = agent_says(&[&["verify-pin"], &r[..]].concat(), "24681357\n");
    assert!(ok, "{said}");
    // A new PIN of the wrong form never reaches the card.
    let (ok, said) = agent_says(
        &[&["change-pin"], &r[..]].concat(),
        "24681357\n12345\n12345\n",
    );
    assert!(!ok && said.contains("PIN 应为 6 至 8 位"), "{said}");

    // change-puk.
    let (ok, said) = agent_says(
        &[&["change-puk"], &r[..]].concat(),
        "12345678\n87654321\n87654321\n",
    );
    assert!(ok, "{said}");
    assert!(said.contains("PUK 已修改"), "{said}");
    assert_eq!(card.state().puk, "87654321");

    // Three wrong PUKs block it for good; the agent says the key must be replaced.
    for left in [2, 1] {
        let (ok, said) = agent_says(
            &[&["unblock-pin"], &r[..]].concat(),
            "00000000\n123456\n123456\n",
        );
        assert!(!ok);
        assert!(
            said.contains(&format!("PUK 错误，还剩 {left} 次尝试机会")),
            "{said}"
        );
    }
    let (ok, said) = agent_says(
        &[&["unblock-pin"], &r[..]].concat(),
        "00000000\n123456\n123456\n",
    );
    assert!(!ok);
    assert!(
        said.contains("PUK 已锁定") && said.contains("更换 USB Key"),
        "{said}"
    );
    let (ok, said) = agent_says(
        &[&["unblock-pin"], &r[..]].concat(),
        "87654321\n123456\n123456\n",
    );
    assert!(!ok);
    assert!(said.contains("PUK：已锁定"), "shown before asking: {said}");
    assert!(said.contains("请联系安全保密员更换 USB Key"), "{said}");
    let state = card.state();
    assert_eq!((state.puk_tries_left, state.pin.as_str()), (0, "24681357"));

    // The real clients still read the card (the PIN counter through their own VERIFY).
    let status = client("yubico-piv-tool", &["-r", READER_0, "-a", "status"]);
    assert!(status.contains("Slot 9a"), "{status}");
    assert!(status.contains("PIN tries left:\t3"), "{status}");

    drop(card);
    let _ = std::fs::remove_dir_all(dir);
}

/// Reader 1: signatures through the agent's library verify against the certificate; key
/// generation, certificate write (chained PUT DATA) and the raw RSA operation (chained command,
/// `61xx` answer) work; the expiry warning shows.
#[test]
fn the_agent_library_signs_generates_and_writes() {
    ensure_pcscd();
    let dir = tempdir("library");
    let issued = issue(20);
    // The card's management key: AES-256, not the default, made here.
    let aes_key: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let mut state = CardState::fresh("123456");
    state.mgmt_algorithm = 0x0C;
    state.mgmt_key = aes_key.clone();
    state
        .save(&VirtualCard::state_path_in(&dir, PORT_1))
        .unwrap();
    let card = VirtualCard::start_with_pem(&dir, PORT_1, &issued.cert_pem, &issued.key_pem);

    let status = text(&agent(&["status", "--reader", READER_1], None));
    assert!(
        status.contains("警告：证书将在 20 天后过期"),
        "expiry warning: {status}"
    );

    let mut reader = Reader::open(Some(READER_1)).unwrap();
    let message = b"dangjian TLS 1.3 CertificateVerify stand-in";
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    let (der, signature) = reader
        .run(|card| {
            let der =
                piv::read_certificate(card, SlotId::Authentication)?.ok_or(PivError::NotFound)?;
            assert_eq!(
                piv::sign(
                    card,
                    AlgorithmId::EccP256,
                    SlotId::Authentication,
                    digest.as_ref()
                )
                .unwrap_err(),
                PivError::SecurityStatusNotSatisfied
            );
            piv::verify_pin(card, &Pin::new("123456")?)?;
            let signature = piv::sign(
                card,
                AlgorithmId::EccP256,
                SlotId::Authentication,
                digest.as_ref(),
            )?;
            Ok((der, signature))
        })
        .unwrap();
    assert_eq!(der, issued.der);
    let cert = CardCertificate::parse(&der).unwrap();
    assert_eq!(cert.algorithm, Some(AlgorithmId::EccP256));
    assert_eq!(cert.public_key, issued.public_point);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        &cert.public_key,
    )
    .verify(message, &signature)
    .expect("the card's signature verifies against the certificate");
    assert_eq!(card.state().signature_counter, 1);

    // GENERATE and PUT DATA want the 9B management key: a verified PIN is not enough, the
    // default 3DES key and a wrong AES key are refused, and the card's own AES-256 key (its
    // algorithm read with GET METADATA) opens them.
    let other = issue(365);
    let (no_key, no_key_put, alg, default, wrong, after_wrong) = reader
        .run(|card| {
            piv::verify_pin(card, &Pin::new("123456")?)?;
            let no_key = piv::generate(card, AlgorithmId::EccP256, SlotId::Signature).unwrap_err();
            let no_key_put =
                piv::write_certificate(card, SlotId::Signature, &other.der).unwrap_err();
            let alg = mgmt::card_algorithm(card)?;
            let default =
                mgmt::authenticate(card, &MgmtKey::default_for(MgmtAlgorithm::Tdes)?).unwrap_err();
            let zeros = MgmtKey::from_hex(MgmtAlgorithm::Aes256, &"00".repeat(32))?;
            let wrong = mgmt::authenticate(card, &zeros).unwrap_err();
            let after_wrong =
                piv::generate(card, AlgorithmId::EccP256, SlotId::Signature).unwrap_err();
            Ok((no_key, no_key_put, alg, default, wrong, after_wrong))
        })
        .unwrap();
    assert_eq!(no_key, PivError::ManagementKeyRequired);
    assert_eq!(no_key_put, PivError::ManagementKeyRequired);
    assert_eq!(alg, MgmtAlgorithm::Aes256);
    assert_eq!(default, PivError::ManagementKeyAlgorithm("3DES"));
    assert_eq!(wrong, PivError::WrongManagementKey);
    assert_eq!(after_wrong, PivError::ManagementKeyRequired);
    assert!(!card.state().keys.contains_key("9C"), "nothing generated");
    assert!(
        !card.state().objects.contains_key("5FC10A"),
        "nothing written"
    );

    // Generate a P-256 key in 9C, write a (long, chained) certificate object, read it back.
    let key = MgmtKey::from_hex(MgmtAlgorithm::Aes256, &aes_key).unwrap();
    let (public, read_back) = reader
        .run(|card| {
            piv::verify_pin(card, &Pin::new("123456")?)?;
            mgmt::authenticate(card, &key)?;
            let public = piv::generate(card, AlgorithmId::EccP256, SlotId::Signature)?;
            piv::write_certificate(card, SlotId::Signature, &other.der)?;
            Ok((public, piv::read_certificate(card, SlotId::Signature)?))
        })
        .unwrap();
    assert!(matches!(public, piv::PublicKey::EccP256 { ref point } if point.len() == 65));
    assert!(other.der.len() > 255, "exercises command chaining");
    assert_eq!(read_back.as_deref(), Some(&other.der[..]));

    // Selecting PIV again ends the management key's authentication, as on a YubiKey.
    let reselected = reader
        .run(|card| {
            piv::select(card)?;
            Ok(piv::generate(card, AlgorithmId::EccP256, SlotId::Signature).unwrap_err())
        })
        .unwrap();
    assert_eq!(reselected, PivError::ManagementKeyRequired);
    // (The reader still believes PIV selected; the next runs verify and authenticate again.)

    // RSA-2048 on 9D: the raw operation on a host-padded block, checked with the public key.
    let (public, block, raw) = reader
        .run(|card| {
            piv::verify_pin(card, &Pin::new("123456")?)?;
            mgmt::authenticate(card, &key)?;
            let public = piv::generate(card, AlgorithmId::Rsa2048, SlotId::KeyManagement)?;
            let mut block = vec![0x00, 0x01];
            block.resize(256 - 33, 0xFF);
            block.push(0x00);
            block.extend_from_slice(&[0x5A; 32]);
            let raw = piv::sign(card, AlgorithmId::Rsa2048, SlotId::KeyManagement, &block)?;
            Ok((public, block, raw))
        })
        .unwrap();
    let piv::PublicKey::Rsa { modulus, exponent } = public else {
        panic!("not RSA: {public:?}");
    };
    let n = rsa::BigUint::from_bytes_be(&modulus);
    let e = rsa::BigUint::from_bytes_be(&exponent);
    assert_eq!(raw.len(), 256);
    let recovered = rsa::BigUint::from_bytes_be(&raw).modpow(&e, &n);
    assert_eq!(recovered, rsa::BigUint::from_bytes_be(&block));
    assert_eq!(card.state().signature_counter, 2);

    drop(reader);
    drop(card);
    let _ = std::fs::remove_dir_all(dir);
}
