//! The card suite: real pcscd + vsmartcard's vpcd + our virtual PIV card (`vcard`), checked
//! with the real clients (OpenSC's `opensc-tool`/`pkcs15-tool`, `yubico-piv-tool`) and with the
//! agent (`dangjian-agent` and its library). pcscd is started by `scripts/test.sh` (or here,
//! when running as root). Each test owns one vpcd reader: `Virtual PCD 00 00` (port 35963) or
//! `Virtual PCD 00 01` (35964), so the two may run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dangjian_agent::{piv, AlgorithmId, CardCertificate, Pin, PivError, Reader, SlotId};
use dangjian_tests::vcard::CardState;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

const READER_0: &str = "Virtual PCD 00 00";
const READER_1: &str = "Virtual PCD 00 01";
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

/// pcscd with the vpcd readers, started here when missing (as root; `scripts/test.sh` does it
/// otherwise).
fn ensure_pcscd() {
    let ready = || {
        dangjian_agent::list_readers()
            .map(|r| {
                r.iter()
                    .filter(|i| i.name.starts_with("Virtual PCD"))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    };
    if ready() {
        return;
    }
    let started = Command::new("pcscd")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "pcscd with vsmartcard's vpcd readers is not available (started here: {started}); \
         run the suite through scripts/test.sh, which installs and starts them"
    );
}

/// A running `vcard` process, killed on drop.
struct VirtualCardProcess {
    child: Child,
    state: PathBuf,
}

impl VirtualCardProcess {
    fn start(dir: &Path, port: u16, issued: &Issued) -> Self {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        let state = dir.join("card.json");
        // DANGJIAN_VCARD_LOG=<dir>: each card logs its APDUs (PIN hidden) to <dir>/vcard-<port>.log.
        let log = match std::env::var_os("DANGJIAN_VCARD_LOG") {
            Some(dir) => Stdio::from(
                std::fs::File::create(Path::new(&dir).join(format!("vcard-{port}.log"))).unwrap(),
            ),
            None => Stdio::null(),
        };
        let verbose = std::env::var_os("DANGJIAN_VCARD_LOG").is_some();
        let child = Command::new(env!("CARGO_BIN_EXE_vcard"))
            .args(verbose.then_some("--verbose"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--state")
            .arg(&state)
            .arg("--init-cert")
            .arg(&cert)
            .arg("--init-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vcard");
        Self { child, state }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    fn remove(&self) {
        self.signal("USR1");
    }

    fn insert(&self) {
        self.signal("USR2");
    }

    fn state(&self) -> CardState {
        CardState::load(&self.state).unwrap()
    }
}

impl Drop for VirtualCardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn card_present(reader: &str) -> bool {
    dangjian_agent::list_readers()
        .map(|rs| rs.iter().any(|r| r.name == reader && r.card_present))
        .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
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

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a real client; panics with its output when it fails.
fn client(program: &str, args: &[&str]) -> String {
    let out = run(program, args, None);
    let all = text(&out);
    assert!(out.status.success(), "{program} {args:?} failed:\n{all}");
    all
}

/// The `dangjian-agent` binary (built by `cargo build --workspace`; built here when missing).
fn agent_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_vcard")).parent().unwrap();
    let path = dir.join("dangjian-agent");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "dangjian-agent", "--bin", "dangjian-agent"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "building dangjian-agent failed");
    }
    path
}

fn agent(args: &[&str], stdin: Option<&str>) -> Output {
    run(agent_binary().to_str().unwrap(), args, stdin)
}

fn pem_to_der(pem_text: &str) -> Vec<u8> {
    dangjian_tests::vcard::state::pem_der(pem_text, "CERTIFICATE").unwrap()
}

/// Reader 0: the real clients accept the card; the agent shows it, counts wrong PINs, notices
/// removal and re-insertion, and explains a blocked PIN.
#[test]
fn real_clients_and_the_agent_read_the_virtual_card() {
    ensure_pcscd();
    assert!(
        !card_present(READER_0),
        "another card is already in {READER_0}: stop the vcard that holds it"
    );
    let dir = tempdir("clients");
    let issued = issue(365);
    let card = VirtualCardProcess::start(&dir, 35963, &issued);
    wait_until("the card in reader 0", Duration::from_secs(10), || {
        card_present(READER_0)
    });

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

    drop(card);
    let _ = std::fs::remove_dir_all(dir);
}

/// Reader 1: signatures through the agent's library verify against the certificate; key
/// generation, certificate write (chained PUT DATA) and the raw RSA operation (chained command,
/// `61xx` answer) work; the expiry warning shows.
#[test]
fn the_agent_library_signs_generates_and_writes() {
    ensure_pcscd();
    assert!(
        !card_present(READER_1),
        "another card is already in {READER_1}: stop the vcard that holds it"
    );
    let dir = tempdir("library");
    let issued = issue(20);
    let card = VirtualCardProcess::start(&dir, 35964, &issued);
    wait_until("the card in reader 1", Duration::from_secs(10), || {
        card_present(READER_1)
    });

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

    // Generate a P-256 key in 9C, write a (long, chained) certificate object, read it back.
    let other = issue(365);
    let (public, read_back) = reader
        .run(|card| {
            piv::verify_pin(card, &Pin::new("123456")?)?;
            let public = piv::generate(card, AlgorithmId::EccP256, SlotId::Signature)?;
            piv::write_certificate(card, SlotId::Signature, &other.der)?;
            Ok((public, piv::read_certificate(card, SlotId::Signature)?))
        })
        .unwrap();
    assert!(matches!(public, piv::PublicKey::EccP256 { ref point } if point.len() == 65));
    assert!(other.der.len() > 255, "exercises command chaining");
    assert_eq!(read_back.as_deref(), Some(&other.der[..]));

    // RSA-2048 on 9D: the raw operation on a host-padded block, checked with the public key.
    let (public, block, raw) = reader
        .run(|card| {
            piv::verify_pin(card, &Pin::new("123456")?)?;
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
