//! TLS and card suite: real clients (curl, openssl s_client) against a `dangjian-server demo`
//! over mutual TLS. Card sign-in with the demo's USB-key certificates, refusals of missing,
//! foreign, unknown and revoked certificates, session binding, the card rule for tier-1/2
//! admins, security officers and auditors, CRL reload without restart, and an expired CRL
//! failing closed for card sessions only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dangjian_tests::{current_code, DemoAccount, Server};
use serde_json::{json, Value};

/// `curl` over HTTPS trusting the platform CA, with an optional client certificate and body;
/// returns curl's exit code, the HTTP status (0 when there was none) and the JSON body.
fn curl(
    server: &Server,
    cert: Option<(&str, &str)>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (i32, u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.arg("-s")
        .arg("--cacert")
        .arg(server.ca_path())
        .arg("-X")
        .arg(method)
        .arg("-w")
        .arg("\n%{http_code}");
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        cmd.arg("-H")
            .arg("Content-Type: application/json")
            .arg("-d")
            .arg(b.to_string());
    }
    cmd.arg(server.url(path));
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (
        out.status.code().unwrap_or(-1),
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn card(a: &DemoAccount) -> (&str, &str) {
    (
        a.cert.as_deref().expect("a card certificate"),
        a.key.as_deref().expect("a card key"),
    )
}

fn card_sign_in(server: &Server, a: &DemoAccount) -> (i32, u16, Value) {
    curl(
        server,
        Some(card(a)),
        "POST",
        "/api/v1/session/card",
        None,
        Some(&json!({"code": current_code(&a.totp_secret)})),
    )
}

/// Waits (up to 20 s) until `done` holds for the health answer.
async fn wait_health(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..80 {
        let health = server.get_json("/api/v1/health").await;
        if done(&health) {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("health never reached the expected state");
}

/// Audit records of `action` as the auditor sees them.
async fn audit_text(server: &Server, action: &str) -> String {
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body.to_string()
}

/// Replaces a file atomically, as `dangjian-certs` does, so the watcher never reads half.
fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("test-tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn card_sign_in_with_curl_binds_the_session_and_refuses_passwords_for_tier_2() {
    let server = Server::demo(100, None).await;
    let tier2 = server.account("admin", Some(2));
    let tier1 = server.account("admin", Some(1));

    // Without a client certificate: the card refusal.
    let (_, status, body) = curl(
        &server,
        None,
        "POST",
        "/api/v1/session/card",
        None,
        Some(&json!({"code": "123456"})),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "no_client_certificate");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("USB Key"));

    // The tier-2 admin's password sign-in: 403, use the USB key.
    let (_, status, body) = curl(
        &server,
        None,
        "POST",
        "/api/v1/session",
        None,
        Some(
            &json!({"id_number": tier2.id_number, "password": tier2.password,
                     "code": current_code(&tier2.totp_secret)}),
        ),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "card_required");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("使用 USB Key 登录"),
        "{body}"
    );

    // With the demo card: a card session.
    let (rc, status, body) = card_sign_in(&server, &tier2);
    assert_eq!((rc, status), (0, 200), "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert!(body["certificate"]["serial"].as_str().is_some(), "{body}");
    assert_eq!(body["roles"][0]["tier"], 2);

    // Tier-2 business with the card succeeds.
    let path = format!("/api/v1/orgs/{}", tier2.org_id);
    let (_, status, body) = curl(
        &server,
        Some(card(&tier2)),
        "GET",
        &path,
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The same token without the certificate, or with another one, is refused.
    let (_, status, body) = curl(&server, None, "GET", &path, Some(&token), None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "certificate_mismatch");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("USB Key"));
    let (_, status, body) = curl(
        &server,
        Some(card(&tier1)),
        "GET",
        &path,
        Some(&token),
        None,
    );
    assert_eq!(status, 401, "{body}");

    // A certificate from the platform CA whose serial the register does not know (same
    // subject as the holder's) is refused, and the refusal is audited.
    let ca = dangjian_certs::Ca::open(&server.data.path().join("ca"), None).unwrap();
    let described =
        dangjian_certs::describe_bytes(&std::fs::read(card(&tier2).0).unwrap()).unwrap();
    let copy = ca
        .issue_client(
            &dangjian_certs::ClientSubject {
                name: described.holder_name.clone().unwrap(),
                id_number: tier2.id_number.clone(),
                org_code: described.org_code.clone().unwrap(),
            },
            None,
            30,
            None,
        )
        .unwrap();
    let dir = server.data.path().join("copies");
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("copy.crt"), dir.join("copy.key"));
    std::fs::write(&c, &copy.cert_pem).unwrap();
    std::fs::write(&k, copy.key_pem.as_deref().unwrap()).unwrap();
    let (_, status, body) = curl(
        &server,
        Some((c.to_str().unwrap(), k.to_str().unwrap())),
        "POST",
        "/api/v1/session/card",
        None,
        Some(&json!({"code": "123456"})),
    );
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unknown_certificate");
    let audited = audit_text(&server, "session.sign_in").await;
    assert!(audited.contains(&copy.serial_hex), "{audited}");
    assert!(audited.contains("not in the register"), "{audited}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_by_the_handshake_and_audited() {
    let server = Server::demo(50, None).await;
    let tier2 = server.account("admin", Some(2));
    // Another CA, with a certificate whose subject copies the tier-2 holder's.
    let other_dir = server.data.path().join("other-ca");
    let other = dangjian_certs::Ca::init(
        &other_dir,
        "dangjian platform CA",
        "https://example.invalid/crl",
        None,
    )
    .unwrap();
    let described =
        dangjian_certs::describe_bytes(&std::fs::read(card(&tier2).0).unwrap()).unwrap();
    let forged = other
        .issue_client(
            &dangjian_certs::ClientSubject {
                name: described.holder_name.clone().unwrap(),
                id_number: tier2.id_number.clone(),
                org_code: described.org_code.clone().unwrap(),
            },
            None,
            30,
            None,
        )
        .unwrap();
    let (c, k) = (other_dir.join("forged.crt"), other_dir.join("forged.key"));
    std::fs::write(&c, &forged.cert_pem).unwrap();
    std::fs::write(&k, forged.key_pem.as_deref().unwrap()).unwrap();

    let addr = server.base.trim_start_matches("https://").to_string();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr,
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(server.ca_path())
        .arg("-cert")
        .arg(&c)
        .arg("-key")
        .arg(&k)
        .arg("-ign_eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(
            b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains("HTTP/1.1 200"),
        "a foreign certificate got an answer: {stdout}"
    );
    assert!(
        stderr.contains("alert") || stdout.contains("alert") || !out.status.success(),
        "{stdout}\n{stderr}"
    );
    // curl with it gets no card session either.
    let (_, status, _) = curl(
        &server,
        Some((c.to_str().unwrap(), k.to_str().unwrap())),
        "POST",
        "/api/v1/session/card",
        None,
        Some(&json!({"code": "123456"})),
    );
    assert_ne!(status, 200);
    // The refused handshake is in the audit log, with the certificate's serial.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let audited = audit_text(&server, "tls.client_certificate").await;
    assert!(audited.contains(&forged.serial_hex), "{audited}");
}

#[tokio::test]
async fn revocation_through_the_api_and_the_command_line_ends_sessions_without_restart() {
    let server = Server::demo(50, None).await;
    let tier1 = server.account("admin", Some(1));
    let tier2 = server.account("admin", Some(2));
    let officer = server.sign_in(&server.account("security", None)).await;
    let admin1 = server.sign_in(&tier1).await;
    let admin2 = server.sign_in(&tier2).await;
    let me2 = admin2.get("/api/v1/session").await;
    assert_eq!(me2.status, 200, "{:?}", me2.body);
    let account2 = me2.body["account"]["id"].as_str().unwrap().to_string();

    // The officer lists the tier-2 admin's certificate and revokes it.
    let list = officer
        .get(&format!("/api/v1/certificates?account_id={account2}"))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let item = list.body["items"][0].clone();
    assert_eq!(item["state"], "valid", "{item}");
    let serial = item["serial"].as_str().unwrap().to_string();
    let r = officer
        .post(
            &format!("/api/v1/certificates/{serial}/revoke"),
            json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(admin2.get("/api/v1/session").await.status, 401);
    let list = officer
        .get(&format!("/api/v1/certificates?account_id={account2}"))
        .await;
    assert_eq!(list.body["items"][0]["state"], "revoked");
    // The revoked card opens no card session (the new CRL is loaded at once).
    let (_, status, body) = card_sign_in(&server, &tier2);
    assert_ne!(status, 200, "{body}");

    // Revoked with the command-line library instead (register + CRL file), the tier-1
    // admin's live session ends at the next CRL reload, without a restart.
    assert_eq!(admin1.get("/api/v1/session").await.status, 200);
    let described =
        dangjian_certs::describe_bytes(&std::fs::read(card(&tier1).0).unwrap()).unwrap();
    let ca = dangjian_certs::Ca::open(&server.data.path().join("ca"), None).unwrap();
    ca.revoke(
        &described.serial_hex,
        dangjian_certs::RevocationReason::AffiliationChanged,
    )
    .unwrap();
    ca.crl(dangjian_certs::DEFAULT_CRL_HOURS).unwrap();
    wait_health(&server, |h| h["crl"]["revoked"] == 2).await;
    let mut ended = false;
    for _ in 0..40 {
        if admin1.get("/api/v1/session").await.status == 401 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ended, "the revoked card's session still answers");
    let (_, status, body) = card_sign_in(&server, &tier1);
    assert_ne!(status, 200, "{body}");
    // The CRL is served at its distribution point.
    let crl = server
        .client()
        .get(server.url("/crl/platform.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(crl.status(), 200);
    let der = crl.bytes().await.unwrap();
    let ca_der = ca.cert_der();
    let parsed = dangjian_certs::parse_crl(&der, &ca_der).unwrap();
    assert!(parsed.revoked.contains(&serial));
    assert!(parsed.revoked.contains(&described.serial_hex));
}

#[tokio::test]
async fn an_expired_crl_fails_closed_for_card_sessions_only() {
    let server = Server::demo(50, None).await;
    let tier2 = server.account("admin", Some(2));
    let tier3 = server.account("admin", Some(3));
    let admin2 = server.sign_in(&tier2).await;
    assert_eq!(admin2.get("/api/v1/session").await.status, 200);

    // A CRL signed by the platform CA whose nextUpdate has passed.
    let ca_dir = server.data.path().join("ca");
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let params = rcgen::CertificateParams::from_ca_cert_pem(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap(),
    )
    .unwrap();
    let issuer = params.self_signed(&key).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::days(2),
        next_update: now - time::Duration::hours(1),
        crl_number: rcgen::SerialNumber::from(9_999u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer, &key)
    .unwrap();
    write_atomic(&ca_dir.join("crl.pem"), crl.pem().unwrap().as_bytes());

    let health = wait_health(&server, |h| h["crl"]["expired"] == true).await;
    assert_eq!(health["status"], "degraded", "{health}");

    // Card sign-in and the live card session fail closed, with a message.
    let (_, status, body) = card_sign_in(&server, &server.account("security", None));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "crl_expired");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("吊销列表"));
    let r = admin2.get("/api/v1/session").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    // A tier-3 password sign-in still works.
    let api3 = server.sign_in(&tier3).await;
    assert_eq!(api3.get("/api/v1/session").await.status, 200);

    // A fresh CRL brings card sessions back, without a restart.
    let ca = dangjian_certs::Ca::open(&ca_dir, None).unwrap();
    ca.crl(dangjian_certs::DEFAULT_CRL_HOURS).unwrap();
    let health = wait_health(&server, |h| h["crl"]["expired"] == false).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(admin2.get("/api/v1/session").await.status, 200);
}

#[tokio::test]
async fn enrolment_with_a_one_time_code_issues_a_card_for_the_grant_holder() {
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let code = server.enrolment_code(&officer, &tier3.org_id).await;
    // A CSR whose subject claims someone else: the server rewrites it from the grant.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "冒名顶替");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let anon = server.client();
    let res = anon
        .post(server.url("/api/v1/enrolment"))
        .json(&json!({"code": code, "csr": csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let issued: Value = res.json().await.unwrap();
    let pem = issued["certificate"].as_str().unwrap();
    let info = dangjian_certs::describe_bytes(pem.as_bytes()).unwrap();
    assert_eq!(info.id_number.as_deref(), Some(tier3.id_number.as_str()));
    assert_ne!(info.holder_name.as_deref(), Some("冒名顶替"));
    assert!(info.client_auth && info.digital_signature);
    // The code is single use.
    let again = anon
        .post(server.url("/api/v1/enrolment"))
        .json(&json!({"code": code, "csr": csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    // The new card signs the tier-3 admin in, and the officer sees it in the register.
    let dir = server.data.path().join("enrolled");
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("card.crt"), dir.join("card.key"));
    std::fs::write(&c, pem).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let (_, status, body) = curl(
        &server,
        Some((c.to_str().unwrap(), k.to_str().unwrap())),
        "POST",
        "/api/v1/session/card",
        None,
        Some(&json!({"code": current_code(&tier3.totp_secret)})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["certificate"]["serial"], issued["serial"]);
    let page = officer
        .client
        .get(server.url("/security/certificates"))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(issued["serial"].as_str().unwrap()), "{page}");
    assert!(page.contains("USB Key 证书管理"));
}

/// A certificate signed by the platform CA with `adjust` applied to its parameters (for
/// certificates `dangjian-certs` would never issue); returns (cert path, key path, serial).
fn platform_signed(
    server: &Server,
    name: &str,
    adjust: impl FnOnce(&mut rcgen::CertificateParams),
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let ca_dir = server.data.path().join("ca");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::CertificateParams::from_ca_cert_pem(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).unwrap(),
    )
    .unwrap()
    .self_signed(&ca_key)
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "测试持有人");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    adjust(&mut params);
    let cert = params.signed_by(&key, &issuer, &ca_key).unwrap();
    let dir = server.data.path().join("bad-cards");
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    let serial = dangjian_certs::describe_bytes(cert.pem().as_bytes())
        .unwrap()
        .serial_hex;
    (c, k, serial)
}

#[tokio::test]
async fn expired_certificates_and_ones_without_client_auth_are_refused_and_audited() {
    let server = Server::demo(50, None).await;
    let now = time::OffsetDateTime::now_utc();
    let expired = platform_signed(&server, "expired", |p| {
        p.not_before = now - time::Duration::days(400);
        p.not_after = now - time::Duration::days(35);
    });
    let server_only = platform_signed(&server, "server-auth-only", |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    for (c, k, _) in [&expired, &server_only] {
        let (_, status, body) = curl(
            &server,
            Some((c.to_str().unwrap(), k.to_str().unwrap())),
            "POST",
            "/api/v1/session/card",
            None,
            Some(&json!({"code": "123456"})),
        );
        assert_ne!(status, 200, "{}: {body}", c.display());
        assert!(body.get("token").is_none(), "{body}");
    }
    // Each refused handshake is in the audit log with its certificate's serial.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let audited = audit_text(&server, "tls.client_certificate").await;
    for (_, _, serial) in [&expired, &server_only] {
        assert!(
            audited.contains(serial.as_str()),
            "{serial} not audited: {audited}"
        );
    }
}

/// A card session ends with its certificate: a certificate valid for a few seconds signs the
/// tier-3 admin in; once its notAfter has passed, the next request over the same (already
/// verified) connection is refused with 401 and the session is gone.
#[tokio::test]
async fn a_card_session_does_not_outlive_its_certificate() {
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let grants = officer.get("/api/v1/grants?per_page=200").await;
    assert_eq!(grants.status, 200, "{:?}", grants.body);
    let grant = grants.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["org_id"] == tier3.org_id.as_str() && g["tier"] == 3 && g["role"] == "admin")
        .expect("the tier-3 admin's grant")
        .clone();
    let account_id = grant["account_id"].as_str().unwrap().to_string();
    let grant_id = grant["grant_id"].as_str().unwrap().to_string();

    // A platform certificate ending 20 seconds from now, recorded in the register for the
    // tier-3 admin as issuance would record it.
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + time::Duration::seconds(20);
    let (c, k, serial) = platform_signed(&server, "short-lived", |p| {
        p.not_before = now - time::Duration::minutes(1);
        p.not_after = not_after;
    });
    let pem = std::fs::read_to_string(&c).unwrap();
    let info = dangjian_certs::describe_bytes(pem.as_bytes()).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let issued = dangjian_certs::Issued {
        cert_pem: pem.clone(),
        cert_der: der,
        key_pem: None,
        serial_hex: info.serial_hex.clone(),
        sha256_fingerprint: info.sha256_fingerprint.clone(),
        not_after: info.not_after,
    };
    let db = dangjian_server::db::Db::connect(&dangjian_server::db::sqlite_url(server.data.path()))
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    dangjian_server::card::record_issued(&mut tx, &issued, &account_id, Some(&grant_id), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Signed in with it; the session works while the certificate is valid.
    let client = server.client_with_cert(c.to_str().unwrap(), k.to_str().unwrap());
    let res = client
        .post(server.url("/api/v1/session/card"))
        .json(&json!({"code": current_code(&tier3.totp_secret)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    let session = |client: &reqwest::Client| {
        client
            .get(server.url("/api/v1/session"))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(session(&client).await.unwrap().status(), 200);

    // The certificate ends; the connection (verified at its handshake) is still open.
    let end = std::time::UNIX_EPOCH + Duration::from_secs(not_after.unix_timestamp() as u64 + 1);
    while std::time::SystemTime::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = session(&client).await.expect("the kept connection answers");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "certificate_expired", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("过期"));
    // The session has ended, and the audit log says why.
    let res = session(&client).await.expect("the kept connection answers");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_signed_in", "{body}");
    let audited = audit_text(&server, "session.certificate_expired").await;
    assert!(audited.contains(&serial), "{audited}");
}

/// The demo's card certificates (and its CA's configuration) name the CRL at the address the
/// server listens on, where it is served — not a fixed `localhost:8443`.
#[tokio::test]
async fn card_certificates_name_the_crl_at_the_servers_address() {
    let server = Server::demo(20, None).await;
    let expected = format!("{}/crl/platform.crl", server.base);
    assert!(!expected.contains("localhost:8443"), "{expected}");
    let ca = dangjian_certs::Ca::open(&server.data.path().join("ca"), None).unwrap();
    assert_eq!(ca.crl_url(), expected);
    for account in server.accounts.iter().filter(|a| a.cert.is_some()) {
        let pem = std::fs::read(account.cert.as_deref().unwrap()).unwrap();
        let info = dangjian_certs::describe_bytes(&pem).unwrap();
        assert_eq!(info.crl_urls, vec![expected.clone()], "{}", account.role);
        // openssl reads the same distribution point.
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "crlDistributionPoints", "-in"])
            .arg(account.cert.as_deref().unwrap())
            .stderr(Stdio::inherit())
            .output()
            .expect("run openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("URI:{expected}")), "{text}");
    }
    // The distribution point answers with the CRL.
    let crl = server.client().get(&expected).send().await.unwrap();
    assert_eq!(crl.status(), 200);
}

#[tokio::test]
async fn refused_handshakes_are_aggregated_per_address_and_minute() {
    let server = Server::demo(50, None).await;
    let now = time::OffsetDateTime::now_utc();
    let (c, k, serial) = platform_signed(&server, "expired", |p| {
        p.not_before = now - time::Duration::days(400);
        p.not_after = now - time::Duration::days(35);
    });
    // An anonymous flood of refused handshakes from one address.
    const FLOOD: u64 = 30;
    for _ in 0..FLOOD {
        let (_, status, _) = curl(
            &server,
            Some((c.to_str().unwrap(), k.to_str().unwrap())),
            "GET",
            "/api/v1/health",
            None,
            None,
        );
        assert_ne!(status, 200, "a refused handshake got an answer");
    }
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor
        .get("/api/v1/audit?action=tls.client_certificate&per_page=200")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recs = r.body["items"].as_array().unwrap();
    // One record per address and minute (two if the burst crossed a minute), with the count.
    assert!((1..=2).contains(&recs.len()), "{recs:?}");
    let mut counted = 0;
    for rec in recs {
        assert_eq!(rec["client_addr"], "127.0.0.1");
        assert_eq!(rec["outcome"], "refused");
        let detail = rec["detail"].as_str().unwrap();
        assert!(detail.contains(&serial), "{detail}");
        counted += detail
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no count: {detail}"));
    }
    assert_eq!(counted, FLOOD);
}

/// `POST /api/v1/enrolment` without a session.
async fn post_enrolment(server: &Server, body: &Value) -> (u16, Value) {
    let res = server
        .client()
        .post(server.url("/api/v1/enrolment"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The audit records of `action` (newest first), as the auditor sees them.
async fn audit_of(auditor: &dangjian_tests::Api, action: &str) -> Vec<Value> {
    let page = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["items"].as_array().unwrap().clone()
}

fn csr_of(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// `require_attestation` with a trusted root: a CSR without attestation, with an attestation
/// chaining to another root, or attesting another key is refused (403, Chinese, audited, the
/// code still usable); the attested key is issued and the issue record says it was attested.
/// Without roots the server refuses to start with attestation required.
#[tokio::test]
async fn required_attestation_admits_only_keys_attested_under_a_trusted_root() {
    let keys_dir = dangjian_tests::TempDir::new("dangjian-attest");
    let trusted = dangjian_tests::rig::AttestationCa::generate(keys_dir.path(), "trusted");
    let untrusted = dangjian_tests::rig::AttestationCa::generate(keys_dir.path(), "untrusted");
    let root = trusted.root.clone();
    let server = Server::demo_configured(50, |data| {
        std::fs::copy(&root, data.join("attestation-roots.pem")).unwrap();
        dangjian_tests::edit_config(data, |c| {
            c["require_attestation"] = json!(true);
            c["attestation_roots"] = json!(["attestation-roots.pem"]);
        });
    })
    .await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let code = server.enrolment_code(&officer, &tier3.org_id).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = csr_of(&key);

    let (status, body) = post_enrolment(&server, &json!({"code": code, "csr": csr})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "attestation_required", "{body}");
    assert_eq!(body["error"]["field"], "attestation", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("密钥证明"),
        "{body}"
    );
    let refusals = [
        // Chained to a root the server does not trust.
        json!({"code": code, "csr": csr, "attestation": untrusted.statement_for(&key),
               "attestation_signer": untrusted.signer_pem()}),
        // A statement of the other hierarchy presented with the trusted F9 certificate.
        json!({"code": code, "csr": csr, "attestation": untrusted.statement_for(&key),
               "attestation_signer": trusted.signer_pem()}),
        // Trusted, but for another key than the CSR's.
        json!({"code": code, "csr": csr,
               "attestation": trusted.statement_for(&rcgen::KeyPair::generate().unwrap()),
               "attestation_signer": trusted.signer_pem()}),
        // The statement without the F9 certificate.
        json!({"code": code, "csr": csr, "attestation": trusted.statement_for(&key)}),
    ];
    for body in &refusals {
        let (status, answer) = post_enrolment(&server, body).await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(answer["error"]["code"], "attestation_invalid", "{answer}");
    }
    // Nothing was issued, and the code is still good: the attested key is issued (base64 DER
    // is accepted as well as PEM).
    let der_b64 = |pem: &str| -> String {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let (status, issued) = post_enrolment(
        &server,
        &json!({"code": code, "csr": csr, "attestation": trusted.statement_for(&key),
                "attestation_signer": der_b64(&trusted.signer_pem())}),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let serial = issued["serial"].as_str().unwrap();

    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let refused = audit_of(&auditor, "certificate.enrol").await;
    let refused: Vec<_> = refused
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(refused
        .iter()
        .any(|r| r["detail"].as_str().unwrap().contains("no key attestation")));
    assert!(refused.iter().any(|r| r["detail"]
        .as_str()
        .unwrap()
        .contains("not the key of the certificate request")));
    let issue = audit_of(&auditor, "certificate.issue").await;
    let record = issue
        .iter()
        .find(|r| r["target"] == serial)
        .expect("the issue record");
    let detail = record["detail"].as_str().unwrap();
    assert!(detail.contains("key attested by"), "{detail}");
    assert!(detail.contains("card serial 12345"), "{detail}");
    assert!(
        detail.contains("dangjian test PIV attestation root trusted"),
        "{detail}"
    );

    // Required without a root: the server does not start.
    let data = dangjian_tests::TempDir::new("dangjian-attest-noroot");
    let init = Command::new(dangjian_tests::server_binary())
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
    assert!(init.status.success());
    dangjian_tests::edit_config(data.path(), |c| c["require_attestation"] = json!(true));
    let serve = Command::new(dangjian_tests::server_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(err.contains("attestation_roots"), "{err}");
}

/// Attestation not required (the default): a CSR without it is issued as before, and one
/// with a valid attestation is issued and recorded as attested; one that does not verify is
/// issued and recorded as not accepted.
#[tokio::test]
async fn attestation_when_not_required_is_recorded() {
    let keys_dir = dangjian_tests::TempDir::new("dangjian-attest");
    let trusted = dangjian_tests::rig::AttestationCa::generate(keys_dir.path(), "trusted");
    let untrusted = dangjian_tests::rig::AttestationCa::generate(keys_dir.path(), "untrusted");
    let root = trusted.root.clone();
    let server = Server::demo_configured(50, |data| {
        dangjian_tests::edit_config(data, |c| {
            assert_eq!(c["require_attestation"], false, "off by default: {c}");
            c["attestation_roots"] = json!([root]);
        });
    })
    .await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let mut serials = Vec::new();
    for (account, attestation) in [
        (server.account("admin", Some(3)), Some(&trusted)),
        (server.account_in("admin", Some(3), "621"), Some(&untrusted)),
    ] {
        let code = server.enrolment_code(&officer, &account.org_id).await;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut body = json!({"code": code, "csr": csr_of(&key)});
        if let Some(a) = attestation {
            body["attestation"] = json!(a.statement_for(&key));
            body["attestation_signer"] = json!(a.signer_pem());
        }
        let (status, issued) = post_enrolment(&server, &body).await;
        assert_eq!(status, 200, "{issued}");
        serials.push(issued["serial"].as_str().unwrap().to_string());
    }
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let issue = audit_of(&auditor, "certificate.issue").await;
    let detail_of = |serial: &str| {
        issue
            .iter()
            .find(|r| r["target"] == serial)
            .map(|r| r["detail"].as_str().unwrap().to_string())
            .expect("issue record")
    };
    assert!(
        detail_of(&serials[0]).contains("key attested by"),
        "{issue:?}"
    );
    assert!(
        detail_of(&serials[1]).contains("key attestation not accepted"),
        "{issue:?}"
    );
}
