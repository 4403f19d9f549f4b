//! `dangjian-certs` suite: runs the real command (`target/debug/dangjian-certs`, built by
//! `cargo build --workspace --bins`) and checks its output with the system's `openssl`: the
//! chain, the subject (from the command line, never from the CSR), keyUsage, EKU, the CRL
//! distribution point, key file modes, revocation through the CRL. Every test makes its own CA
//! in a fresh temporary directory; no key or certificate is checked in.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{NaiveDateTime, Utc};

const CRL_URL: &str = "https://dj.example.cn/pki/crl";
const NAME: &str = "张三";
const ID_NUMBER: &str = "11010519491231002X";
const ORG_CODE: &str = "010203";

/// The `dangjian-certs` binary next to the test executable.
fn certs_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("dangjian-certs");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p dangjian-certs` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A fresh directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("dangjian-certs-e2e-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path).expect("scratch dir");
        Scratch(path)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_string()
    }
    fn ca(&self) -> String {
        self.s("ca")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `dangjian-certs`, expecting success; returns stdout.
fn certs(args: &[&str]) -> String {
    let out = run(&certs_binary(), args);
    assert!(
        out.status.success(),
        "dangjian-certs {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `dangjian-certs`, expecting failure with one line on stderr; returns that line.
fn certs_fails(args: &[&str]) -> String {
    let out = run(&certs_binary(), args);
    assert!(
        !out.status.success(),
        "dangjian-certs {args:?} should fail: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err:?}"
    );
    err.trim_end().to_string()
}

/// Runs `openssl`; returns (success, stdout + stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the system's `openssl` command is needed by this suite");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

fn openssl_ok(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {args:?} failed: {out}");
    out
}

fn init_ca(dir: &Scratch) {
    certs(&[
        "init-ca",
        "--dir",
        &dir.ca(),
        "--name",
        "Dangjian Platform Test CA",
        "--crl-url",
        CRL_URL,
    ]);
}

fn issue_client(dir: &Scratch, out: &str, extra: &[&str]) -> String {
    let prefix = dir.s(out);
    let ca = dir.ca();
    let mut args = vec![
        "issue-client",
        "--dir",
        &ca,
        "--name",
        NAME,
        "--id-number",
        ID_NUMBER,
        "--org-code",
        ORG_CODE,
        "--out",
        &prefix,
    ];
    args.extend_from_slice(extra);
    certs(&args)
}

/// The `serial:` line of the command's output.
fn serial_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("serial:"))
        .expect("serial line")
        .trim()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn every_command_answers_help() {
    for sub in [
        "init-ca",
        "issue-server",
        "issue-client",
        "revoke",
        "crl",
        "list",
        "show",
    ] {
        let out = certs(&[sub, "--help"]);
        assert!(out.contains("--dir"), "{sub} --help: {out}");
    }
    assert!(certs(&["--help"]).contains("issue-client"));
}

#[test]
fn csr_subject_is_rewritten_and_the_chain_verifies() {
    let dir = Scratch::new();
    init_ca(&dir);
    assert_eq!(mode(&dir.path("ca/ca.key")), 0o600);
    let ca_crt = dir.s("ca/ca.crt");

    let (csr, csr_key) = (dir.s("evil.csr"), dir.s("evil.key"));
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Evil/serialNumber=000/OU=999",
        "-keyout",
        &csr_key,
        "-out",
        &csr,
    ]);
    let out = issue_client(&dir, "card", &["--csr", &csr, "--account", "acct-42"]);
    assert!(
        !dir.path("card.key").exists(),
        "no key is written for a CSR"
    );
    let crt = dir.s("card.crt");

    let subject = openssl_ok(&[
        "x509",
        "-in",
        &crt,
        "-noout",
        "-subject",
        "-nameopt",
        "oneline,-esc_msb",
    ]);
    assert_eq!(
        subject.trim(),
        format!("subject=CN = {NAME}, serialNumber = {ID_NUMBER}, OU = {ORG_CODE}")
    );
    let dump = openssl_ok(&["x509", "-in", &crt, "-noout", "-text"]);
    for needle in [
        "Digital Signature",
        "TLS Web Client Authentication",
        "X509v3 CRL Distribution Points",
        &format!("URI:{CRL_URL}"),
        "CA:FALSE",
        "ASN1 OID: prime256v1",
    ] {
        assert!(dump.contains(needle), "{needle:?} missing in:\n{dump}");
    }
    assert!(!dump.contains("Evil") && !dump.contains("= 999") && !dump.contains("= 000"));
    assert!(!dump.contains("TLS Web Server Authentication"));

    // The certified key is the CSR's.
    let cert_pub = openssl_ok(&["x509", "-in", &crt, "-noout", "-pubkey"]);
    let csr_pub = openssl_ok(&["req", "-in", &csr, "-noout", "-pubkey"]);
    assert_eq!(cert_pub, csr_pub);

    // Chain and purpose.
    let verified = openssl_ok(&["verify", "-CAfile", &ca_crt, "-purpose", "sslclient", &crt]);
    assert!(verified.contains(": OK"), "{verified}");
    let (server_ok, _) = openssl(&["verify", "-CAfile", &ca_crt, "-purpose", "sslserver", &crt]);
    assert!(!server_ok, "a card certificate is no server certificate");

    // Validity: one year by default.
    let end = openssl_ok(&["x509", "-in", &crt, "-noout", "-enddate"]);
    let end = NaiveDateTime::parse_from_str(
        end.trim()
            .trim_start_matches("notAfter=")
            .trim_end_matches(" GMT"),
        "%b %e %H:%M:%S %Y",
    )
    .expect("notAfter")
    .and_utc();
    let days = (end - Utc::now()).num_days();
    assert!((364..=365).contains(&days), "{days} days");

    // The register knows it, with the account, by serial.
    let serial = serial_of(&out);
    let shown = certs(&[
        "show",
        "--dir",
        &dir.ca(),
        "--serial",
        &serial.to_uppercase(),
    ]);
    assert!(
        shown.contains("acct-42") && shown.contains("state:       valid"),
        "{shown}"
    );
    let from_file = certs(&["show", "--dir", &dir.ca(), "--cert", &crt]);
    assert!(
        from_file.contains(&format!("serialNumber={ID_NUMBER}")),
        "{from_file}"
    );
    assert!(from_file.contains(&serial), "{from_file}");
    // And the library reads what the command wrote.
    let info = dangjian_certs::describe_bytes(&std::fs::read(&crt).unwrap()).unwrap();
    assert_eq!(info.serial_hex, serial);
    assert_eq!(info.id_number.as_deref(), Some(ID_NUMBER));
    assert_eq!(info.org_code.as_deref(), Some(ORG_CODE));
}

#[test]
fn generated_keys_are_private_and_match() {
    let dir = Scratch::new();
    init_ca(&dir);
    let ca_crt = dir.s("ca/ca.crt");

    issue_client(&dir, "card", &[]);
    assert_eq!(mode(&dir.path("card.key")), 0o600);
    let cert_pub = openssl_ok(&["x509", "-in", &dir.s("card.crt"), "-noout", "-pubkey"]);
    let key_pub = openssl_ok(&["pkey", "-in", &dir.s("card.key"), "-pubout"]);
    assert_eq!(cert_pub, key_pub);

    certs(&[
        "issue-server",
        "--dir",
        &dir.ca(),
        "--san",
        "localhost",
        "--san",
        "127.0.0.1",
        "--days",
        "30",
        "--out",
        &dir.s("server"),
    ]);
    assert_eq!(mode(&dir.path("server.key")), 0o600);
    let dump = openssl_ok(&["x509", "-in", &dir.s("server.crt"), "-noout", "-text"]);
    for needle in [
        "TLS Web Server Authentication",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        &format!("URI:{CRL_URL}"),
    ] {
        assert!(dump.contains(needle), "{needle:?} missing in:\n{dump}");
    }
    openssl_ok(&[
        "verify",
        "-CAfile",
        &ca_crt,
        "-purpose",
        "sslserver",
        &dir.s("server.crt"),
    ]);

    // An existing output is never overwritten.
    let err = certs_fails(&[
        "issue-server",
        "--dir",
        &dir.ca(),
        "--san",
        "localhost",
        "--out",
        &dir.s("server"),
    ]);
    assert!(err.starts_with("error:") && err.contains("exists"), "{err}");
}

#[test]
fn revoked_serial_is_in_the_crl_and_fails_crl_check() {
    let dir = Scratch::new();
    init_ca(&dir);
    let ca_crt = dir.s("ca/ca.crt");
    let crl = dir.s("ca/crl.pem");
    let kept = dir.s("kept.crt");
    let gone = dir.s("gone.crt");
    issue_client(&dir, "kept", &[]);
    let serial = serial_of(&issue_client(&dir, "gone", &[]));

    // The CRL written by init-ca is valid and empty: both verify.
    for crt in [&kept, &gone] {
        openssl_ok(&[
            "verify",
            "-crl_check",
            "-CAfile",
            &ca_crt,
            "-CRLfile",
            &crl,
            crt,
        ]);
    }

    let out = certs(&[
        "revoke",
        "--dir",
        &dir.ca(),
        "--serial",
        &serial,
        "--reason",
        "key_compromise",
    ]);
    assert!(out.contains(&serial), "{out}");
    certs(&[
        "crl",
        "--dir",
        &dir.ca(),
        "--next-update-hours",
        "24",
        "--out",
        &dir.s("crl.der"),
    ]);

    // The CRL is signed by the CA, names the serial and the reason, and is fresh.
    openssl_ok(&["crl", "-in", &crl, "-CAfile", &ca_crt, "-noout"]);
    let dump = openssl_ok(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(
        dump.contains(&serial.to_uppercase()),
        "{serial} missing in:\n{dump}"
    );
    assert!(
        dump.contains("Key Compromise") && dump.contains("X509v3 CRL Number"),
        "{dump}"
    );
    let der_dump = openssl_ok(&[
        "crl",
        "-in",
        &dir.s("crl.der"),
        "-inform",
        "DER",
        "-noout",
        "-text",
    ]);
    assert!(der_dump.contains(&serial.to_uppercase()));
    let next = openssl_ok(&["crl", "-in", &crl, "-noout", "-nextupdate"]);
    let next = NaiveDateTime::parse_from_str(
        next.trim()
            .trim_start_matches("nextUpdate=")
            .trim_end_matches(" GMT"),
        "%b %e %H:%M:%S %Y",
    )
    .expect("nextUpdate")
    .and_utc();
    let hours = (next - Utc::now()).num_minutes() as f64 / 60.0;
    assert!(
        (23.0..=24.0).contains(&hours),
        "nextUpdate in {hours} hours"
    );

    // openssl's own revocation check now refuses the revoked certificate only.
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_crt,
        "-CRLfile",
        &crl,
        &gone,
    ]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    openssl_ok(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_crt,
        "-CRLfile",
        &crl,
        &kept,
    ]);

    let list = certs(&["list", "--dir", &dir.ca()]);
    let row = list.lines().find(|l| l.starts_with(&serial)).expect("row");
    assert!(row.contains("revoked") && row.contains("client"), "{row}");
    assert_eq!(
        list.lines().filter(|l| l.contains(" valid ")).count(),
        1,
        "{list}"
    );
    // The register does not hold the ID number in clear.
    assert!(!list.contains(ID_NUMBER), "{list}");

    // Revoking twice, or an unknown serial, is refused in one line.
    let err = certs_fails(&["revoke", "--dir", &dir.ca(), "--serial", &serial]);
    assert!(err.contains("already revoked"), "{err}");
    certs_fails(&["revoke", "--dir", &dir.ca(), "--serial", "0badc0de"]);
    certs_fails(&[
        "revoke",
        "--dir",
        &dir.ca(),
        "--serial",
        &serial,
        "--reason",
        "bored",
    ]);
}

#[test]
fn bad_input_is_refused_in_one_line() {
    let dir = Scratch::new();
    init_ca(&dir);

    // Wrong check character (GB 11643).
    let err = certs_fails(&[
        "issue-client",
        "--dir",
        &dir.ca(),
        "--name",
        NAME,
        "--id-number",
        "110105194912310021",
        "--org-code",
        ORG_CODE,
        "--out",
        &dir.s("x"),
    ]);
    assert!(err.starts_with("error:") && err.contains("check"), "{err}");
    assert!(!dir.path("x.crt").exists() && !dir.path("x.key").exists());

    // A CSR that is not one.
    std::fs::write(dir.path("junk.csr"), "hello").unwrap();
    certs_fails(&[
        "issue-client",
        "--dir",
        &dir.ca(),
        "--name",
        NAME,
        "--id-number",
        ID_NUMBER,
        "--org-code",
        ORG_CODE,
        "--csr",
        &dir.s("junk.csr"),
        "--out",
        &dir.s("y"),
    ]);
    // A second CA in the same directory; a directory without a CA.
    let err = certs_fails(&[
        "init-ca",
        "--dir",
        &dir.ca(),
        "--name",
        "Again",
        "--crl-url",
        CRL_URL,
    ]);
    assert!(err.contains("already holds a CA"), "{err}");
    certs_fails(&["list", "--dir", &dir.s("nowhere")]);
    certs_fails(&["show", "--dir", &dir.ca(), "--serial", "00aa"]);
    // Nothing was registered by the failures.
    let list = certs(&["list", "--dir", &dir.ca()]);
    assert_eq!(list.lines().count(), 1, "header only: {list}");
}

#[test]
fn passphrase_protected_ca() {
    let dir = Scratch::new();
    std::fs::write(dir.path("pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(dir.path("wrong"), "tr0ub4dor\n").unwrap();
    certs(&[
        "init-ca",
        "--dir",
        &dir.ca(),
        "--name",
        "Sealed CA",
        "--crl-url",
        CRL_URL,
        "--passphrase-file",
        &dir.s("pass"),
    ]);
    assert_eq!(mode(&dir.path("ca/ca.key")), 0o600);
    // openssl cannot read it without the passphrase scheme: it is not a plain PKCS#8 key.
    let (plain, _) = openssl(&[
        "pkey",
        "-in",
        &dir.s("ca/ca.key"),
        "-noout",
        "-passin",
        "pass:",
    ]);
    assert!(!plain);

    let err = certs_fails(&["crl", "--dir", &dir.ca()]);
    assert!(err.contains("passphrase"), "{err}");
    let err = certs_fails(&[
        "crl",
        "--dir",
        &dir.ca(),
        "--passphrase-file",
        &dir.s("wrong"),
    ]);
    assert!(err.contains("passphrase"), "{err}");
    certs(&[
        "crl",
        "--dir",
        &dir.ca(),
        "--passphrase-file",
        &dir.s("pass"),
    ]);
    issue_client(&dir, "card", &["--passphrase-file", &dir.s("pass")]);
    openssl_ok(&["verify", "-CAfile", &dir.s("ca/ca.crt"), &dir.s("card.crt")]);
}

#[test]
fn rsa_csr_from_2048_bits() {
    let dir = Scratch::new();
    init_ca(&dir);
    for bits in ["2048", "1024"] {
        let (csr, key) = (
            dir.s(&format!("rsa{bits}.csr")),
            dir.s(&format!("rsa{bits}.key")),
        );
        let newkey = format!("rsa:{bits}");
        openssl_ok(&[
            "req", "-new", "-newkey", &newkey, "-nodes", "-subj", "/CN=R", "-keyout", &key, "-out",
            &csr,
        ]);
    }
    issue_client(&dir, "rsa", &["--csr", &dir.s("rsa2048.csr")]);
    openssl_ok(&["verify", "-CAfile", &dir.s("ca/ca.crt"), &dir.s("rsa.crt")]);
    let err = certs_fails(&[
        "issue-client",
        "--dir",
        &dir.ca(),
        "--name",
        NAME,
        "--id-number",
        ID_NUMBER,
        "--org-code",
        ORG_CODE,
        "--csr",
        &dir.s("rsa1024.csr"),
        "--out",
        &dir.s("short"),
    ]);
    assert!(err.contains("2048"), "{err}");
}

/// Organisations from a parent's 100th child on have a letter segment in their unified code
/// (`…A000`): their admins get card certificates like everyone else.
#[test]
fn organisation_codes_with_letter_segments_get_certificates() {
    let dir = Scratch::new();
    init_ca(&dir);
    let code = format!("{ORG_CODE}A000");
    certs(&[
        "issue-client",
        "--dir",
        &dir.ca(),
        "--name",
        NAME,
        "--id-number",
        ID_NUMBER,
        "--org-code",
        &code,
        "--out",
        &dir.s("letter"),
    ]);
    let subject = openssl_ok(&["x509", "-in", &dir.s("letter.crt"), "-noout", "-subject"]);
    assert!(subject.contains(&code), "{subject}");
}
