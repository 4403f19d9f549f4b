//! The agent suite: `dangjian-agent enrol` (and `connect` with the enrolled key) against a
//! `dangjian-server demo`, with the virtual card in real pcscd + vpcd (reader 0; see
//! `dangjian_tests::rig`). The tunnel has its own suite (`tunnel.rs`).

use std::time::Duration;

use std::path::Path;
use std::process::Command;

use dangjian_tests::rig::{self, AgentProcess, AttestationCa, VirtualCard, PORT_0, READER_0};
use dangjian_tests::{current_code, DemoAccount, Server, TempDir};
use serde_json::{json, Value};

/// The live tier-3 grant of `account` as the security officer lists it.
async fn grant_of(server: &Server, officer: &dangjian_tests::Api, account: &DemoAccount) -> Value {
    let grants = officer.get("/api/v1/grants?per_page=200").await;
    assert_eq!(grants.status, 200, "{:?}", grants.body);
    grants.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["org_id"] == account.org_id.as_str() && g["tier"] == 3)
        .cloned()
        .unwrap_or_else(|| panic!("the tier-3 grant on {} ({})", account.org_name, server.base))
}

/// `POST /api/v1/enrolment/check` without a session.
async fn check(server: &Server, code: &str) -> (u16, Value) {
    let res = server
        .client()
        .post(server.url("/api/v1/enrolment/check"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn enrol_args<'a>(server: &'a Server, ca: &'a str, code: &'a str) -> Vec<&'a str> {
    vec![
        "enrol",
        "--server",
        &server.base,
        "--ca",
        ca,
        "--code",
        code,
        "--reader",
        READER_0,
    ]
}

fn agent_says(args: &[&str], stdin: &str) -> (bool, String) {
    let out = rig::agent(args, Some(stdin));
    (out.status.success(), rig::text(&out))
}

/// Reader 0: a security officer's enrolment code, `dangjian-agent enrol` on a blank card, and
/// the card then holds the grant holder's certificate. A wrong code is refused before the card
/// is touched; a wrong management key is refused by the card before any key is made; the code
/// check uses nothing up.
#[tokio::test(flavor = "multi_thread")]
async fn enrol_writes_the_issued_certificate_to_a_blank_card() {
    rig::ensure_pcscd();
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let grant = grant_of(&server, &officer, &tier3).await;
    let code = server.enrolment_code(&officer, &tier3.org_id).await;

    // The check names the holder and leaves the code usable; a wrong code names the field.
    let (status, holder) = check(&server, &code).await;
    assert_eq!(status, 200, "{holder}");
    assert_eq!(holder["name"], grant["name"], "{holder}");
    assert_eq!(holder["org_code"], grant["org_code"], "{holder}");
    assert!(holder["expires_at"].as_str().is_some(), "{holder}");
    let (status, again) = check(&server, &code).await;
    assert_eq!(status, 200, "not used up: {again}");
    let (status, wrong) = check(&server, "WRONG-CODE-1234").await;
    assert_eq!(status, 401, "{wrong}");
    assert_eq!(wrong["error"]["field"], "code", "{wrong}");
    let (status, empty) = check(&server, " ").await;
    assert_eq!(status, 400, "{empty}");
    assert_eq!(empty["error"]["field"], "code", "{empty}");

    let card = VirtualCard::start(server.data.path(), PORT_0, None);
    let ca = server.ca_path();
    let ca = ca.to_str().unwrap();

    // A wrong code: refused before the PIN is asked or a key is made.
    let (ok, said) = agent_says(&enrol_args(&server, ca, "WRONG-CODE-1234"), "123456\n");
    assert!(!ok, "{said}");
    assert!(said.contains("证书申领码未通过核验"), "{said}");
    let state = card.state();
    assert!(state.keys.is_empty(), "no key generated: {:?}", state.keys);
    assert_eq!(state.signature_counter, 0);
    assert_eq!(state.pin_tries_left, 3, "the PIN was not even tried");
    assert!(!said.contains("正在 USB Key 内"), "{said}");

    // A wrong management key: the card refuses, nothing is generated, the code stays usable.
    let mut args = enrol_args(&server, ca, &code);
    let wrong_key = "11".repeat(24);
    args.extend(["--management-key", &wrong_key]);
    let (ok, said) = agent_says(&args, "123456\n");
    assert!(!ok, "{said}");
    assert!(said.contains("管理密钥（9B）错误"), "{said}");
    assert!(
        said.contains(grant["name"].as_str().unwrap()),
        "says whom for: {said}"
    );
    let state = card.state();
    assert!(state.keys.is_empty(), "no key generated: {:?}", state.keys);
    assert!(!state.objects.contains_key("5FC105"));
    assert_eq!(state.signature_counter, 0);
    let (status, _) = check(&server, &code).await;
    assert_eq!(status, 200, "the code is still unused");

    // The default management key (3DES, from the card's metadata): enrolled.
    let (ok, said) = agent_says(&enrol_args(&server, ca, &code), "123456\n");
    assert!(ok, "{said}");
    assert!(said.contains("证书已写入"), "{said}");
    assert!(
        said.contains(&format!("证书将签发给 {}", grant["name"].as_str().unwrap())),
        "{said}"
    );
    assert!(said.contains("管理密钥（9B，3DES）"), "{said}");
    assert_eq!(
        card.state().signature_counter,
        1,
        "the CSR was signed by the card"
    );
    assert_eq!(card.state().keys["9A"].algorithm, 0x11);
    let (status, used) = check(&server, &code).await;
    assert_eq!(status, 401, "used up by the enrolment: {used}");

    let (ok, status) = agent_says(&["status", "--reader", READER_0], "");
    assert!(ok, "{status}");
    for expected in [
        format!("持有人：{}", grant["name"].as_str().unwrap()),
        format!("身份证号：{}", tier3.id_number),
        format!("组织代码：{}", grant["org_code"].as_str().unwrap()),
    ] {
        assert!(status.contains(&expected), "missing {expected}:\n{status}");
    }
    drop(card);

    // Wrong codes at the check count against the address, in the enrolment's throttle.
    let mut answers = Vec::new();
    for _ in 0..25 {
        let (status, _) = check(&server, "WRONG-CODE-1234").await;
        answers.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&429), "{answers:?}");
    assert!(
        answers.iter().rev().skip(1).all(|&s| s == 401),
        "{answers:?}"
    );
    let res = server
        .client()
        .post(server.url("/api/v1/enrolment"))
        .json(&json!({ "code": "WRONG-CODE-1234", "csr": "-" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429, "the same throttle as enrolment");
}

/// Reader 0: an RSA-2048 key enrolled on a blank card (the CSR signed by the card with
/// PKCS#1 v1.5 encoded on the host), then `connect` with it: the card makes an RSA-PSS
/// signature in a real TLS 1.3 handshake and the session answers through the local endpoint.
/// The general branch's tier-3 admin, an account no other test here uses.
#[tokio::test(flavor = "multi_thread")]
async fn enrol_rsa_then_connect_signs_the_handshake_with_pss() {
    rig::ensure_pcscd();
    let server = Server::demo(50, None).await;
    let admin = server.account_in("admin", Some(3), "621");
    assert_ne!(
        admin.id_number,
        server.account("admin", Some(3)).id_number,
        "a different account from the other enrol test"
    );
    let officer = server.sign_in(&server.account("security", None)).await;
    let grant = grant_of(&server, &officer, &admin).await;
    let code = server.enrolment_code(&officer, &admin.org_id).await;

    let card = VirtualCard::start(server.data.path(), PORT_0, None);
    let ca = server.ca_path();
    let ca = ca.to_str().unwrap();
    let mut args = enrol_args(&server, ca, &code);
    args.extend(["--algorithm", "rsa2048"]);
    let (ok, said) = agent_says(&args, "123456\n");
    assert!(ok, "{said}");
    assert!(said.contains("RSA-2048"), "{said}");
    assert_eq!(card.state().keys["9A"].algorithm, 0x07, "an RSA key in 9A");
    assert_eq!(
        card.state().signature_counter,
        1,
        "the CSR signed by the card"
    );
    let (ok, status) = agent_says(&["status", "--reader", READER_0], "");
    assert!(ok, "{status}");
    assert!(
        status.contains(&format!("持有人：{}", grant["name"].as_str().unwrap())),
        "{status}"
    );
    assert!(status.contains("算法：RSA-2048"), "{status}");

    // connect with the RSA key.
    let stderr = server.data.path().join("agent-rsa-stderr.log");
    let mut agent = AgentProcess::spawn(
        &[
            "connect",
            "--server",
            &server.base,
            "--ca",
            ca,
            "--reader",
            READER_0,
            "--code",
            &current_code(&admin.totp_secret),
        ],
        stderr,
    );
    agent.type_line("123456");
    let url = agent.next_line("local URL", Duration::from_secs(30), |l| {
        l.starts_with("http://127.0.0.1:")
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303, "{}", agent.stderr_text());
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let base = url.split("/?k=").next().unwrap();
    let res = http
        .get(format!("{base}/api/v1/session"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}\n{}", agent.stderr_text());
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["active_role"]["org_id"], admin.org_id.as_str());
    assert_eq!(session["active_role"]["tier"], 3);
    assert!(
        card.state().signature_counter >= 2,
        "the card signed the handshake"
    );
    drop(agent);
    drop(card);
}

/// The audit records of `action` as the demo auditor sees them.
async fn audit_of(auditor: &dangjian_tests::Api, action: &str) -> Vec<Value> {
    let page = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["items"].as_array().unwrap().clone()
}

/// Reader 0: with `require_attestation` and a test attestation root made here configured,
/// a card that makes no attestation and a card attested under another root are refused (no
/// certificate written, the code still good, both refusals audited); a card attested under
/// the configured root is enrolled and the issue record names the card.
#[tokio::test(flavor = "multi_thread")]
async fn enrol_with_required_attestation_takes_only_attested_cards() {
    rig::ensure_pcscd();
    let keys = TempDir::new("dangjian-attest");
    let trusted = AttestationCa::generate(keys.path(), "trusted");
    let untrusted = AttestationCa::generate(keys.path(), "untrusted");
    let root = trusted.root.clone();
    let server = Server::demo_configured(50, |data| {
        dangjian_tests::edit_config(data, |c| {
            c["require_attestation"] = json!(true);
            c["attestation_roots"] = json!([root]);
        });
    })
    .await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let code = server.enrolment_code(&officer, &tier3.org_id).await;
    let ca = server.ca_path();
    let ca = ca.to_str().unwrap();
    let card_dir = |name: &str| {
        let dir = server.data.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };

    // A card without attestation (not a YubiKey).
    let card = VirtualCard::start(&card_dir("plain"), PORT_0, None);
    let (ok, said) = agent_says(&enrol_args(&server, ca, &code), "123456\n");
    assert!(!ok, "{said}");
    assert!(said.contains("不提供密钥证明"), "{said}");
    assert!(
        said.contains("证书申领失败") && said.contains("未附带证明"),
        "{said}"
    );
    assert!(
        !card.state().objects.contains_key("5FC105"),
        "no certificate"
    );
    drop(card);
    // pcscd takes a moment to accept the next vpcd connection on the same reader.
    std::thread::sleep(Duration::from_secs(3));

    // A card whose attestation chains to a root the server does not trust.
    let card = VirtualCard::start_attesting(&card_dir("foreign"), PORT_0, &untrusted);
    let (ok, said) = agent_says(&enrol_args(&server, ca, &code), "123456\n");
    assert!(!ok, "{said}");
    assert!(said.contains("已读取 USB Key 的密钥证明"), "{said}");
    assert!(said.contains("未通过核验"), "{said}");
    assert!(
        !card.state().objects.contains_key("5FC105"),
        "no certificate"
    );
    drop(card);

    let (status, _) = check(&server, &code).await;
    assert_eq!(status, 200, "the code survives the refusals");

    // A card attested under the configured root.
    std::thread::sleep(Duration::from_secs(3));
    let card = VirtualCard::start_attesting(&card_dir("attested"), PORT_0, &trusted);
    let (ok, said) = agent_says(&enrol_args(&server, ca, &code), "123456\n");
    assert!(ok, "{said}");
    assert!(said.contains("证书已写入"), "{said}");
    let state = card.state();
    assert!(state.objects.contains_key("5FC105"));
    assert!(state.keys["9A"].generated);

    drop(card);

    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let refused: Vec<_> = audit_of(&auditor, "certificate.enrol")
        .await
        .into_iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|r| r["detail"]
        .as_str()
        .unwrap()
        .contains("attestation required")));
    let issued = audit_of(&auditor, "certificate.issue").await;
    let attested = issued
        .iter()
        .find(|r| r["detail"].as_str().unwrap().contains("key attested by"))
        .expect("an attested issue record");
    let detail = attested["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("card serial {}", state.serial)),
        "{detail}"
    );
    assert!(detail.contains("firmware 5.4.3"), "{detail}");
}

/// The private-key files under a data directory (PEM with a PRIVATE KEY block), relative.
fn private_key_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY-----"))
                .unwrap_or(false)
            {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Reader 0: `init` writes no private key of the first security officer — the only private
/// keys in the data directory are the platform's own: the CA's, the letter signer's and the
/// server's TLS key — and prints a
/// one-time enrolment code; `dangjian-agent enrol` with it puts the officer's key on a blank
/// card, and the card then signs the officer in (`connect`).
#[tokio::test(flavor = "multi_thread")]
async fn enrol_the_first_security_officer_with_the_code_init_printed() {
    rig::ensure_pcscd();
    let data = TempDir::new("dangjian-init");
    let out = Command::new(dangjian_tests::server_binary())
        .args([
            "init",
            "--root-name",
            "中共测试省委员会",
            "--root-code",
            "037",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", rig::text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        private_key_files(data.path()),
        ["ca/ca.key", "letter/signer.key", "tls/server.key"],
        "{printed}"
    );
    assert!(!data.path().join("cards").exists());
    assert!(printed.contains("dangjian-agent enrol"), "{printed}");
    assert!(printed.contains("密钥在 USB Key 内生成"), "{printed}");
    let field = |label: &str| {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {printed}"))
            .trim()
            .to_string()
    };
    let code = field("USB key enrolment code:");
    let id_number = field("ID number:");
    let uri = field("authenticator:");
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret in the otpauth URI")
        .to_string();

    let server = Server::serve(data, Vec::new());
    let (status, holder) = check(&server, &code).await;
    assert_eq!(status, 200, "{holder}");
    let card_dir = server.data.path().join("card");
    std::fs::create_dir_all(&card_dir).unwrap();
    let card = VirtualCard::start(&card_dir, PORT_0, None);
    let ca = server.ca_path();
    let ca = ca.to_str().unwrap();
    let (ok, said) = agent_says(&enrol_args(&server, ca, &code), "123456\n");
    assert!(ok, "{said}");
    assert!(said.contains("证书已写入"), "{said}");
    assert!(said.contains(&format!("身份证号：{id_number}")), "{said}");
    assert_eq!(
        private_key_files(server.data.path())
            .into_iter()
            .filter(|f| !f.starts_with("card"))
            .collect::<Vec<_>>(),
        ["ca/ca.key", "letter/signer.key", "tls/server.key"],
        "enrolment wrote no key either"
    );

    // The card signs the first security officer in.
    let stderr = server.data.path().join("agent-officer-stderr.log");
    let mut agent = AgentProcess::spawn(
        &[
            "connect",
            "--server",
            &server.base,
            "--ca",
            ca,
            "--reader",
            READER_0,
            "--code",
            &current_code(&secret),
        ],
        stderr,
    );
    agent.type_line("123456");
    let url = agent.next_line("local URL", Duration::from_secs(30), |l| {
        l.starts_with("http://127.0.0.1:")
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303, "{}", agent.stderr_text());
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let base = url.split("/?k=").next().unwrap();
    let res = http
        .get(format!("{base}/api/v1/session"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    assert_eq!(status, 200, "{body}\n{}", agent.stderr_text());
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["active_role"]["role"], "security", "{session}");
    drop(agent);
    drop(card);
}
