//! Identity suite: grants by security officers, activation through the notifier's outbox,
//! the authenticator, lockout and unlock, three-role separation, per-address throttling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use dangjian_tests::{current_code, Server, TestDb};
use serde_json::{json, Value};

fn valid_id(seq: u16) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        NaiveDate::from_ymd_opt(1988, 3, 15).unwrap(),
        seq,
    )
}

/// The last message of `kind` to `mobile` in `<data>/outbox.jsonl`.
fn outbox_code(server: &Server, mobile: &str, kind: &str) -> String {
    let text = std::fs::read_to_string(server.data.path().join("outbox.jsonl")).expect("outbox");
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["to"] == mobile && m["kind"] == kind)
        .and_then(|m| m["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {kind} message to {mobile} in the outbox"))
}

/// Sleeps into the next 30-second step, so that a fresh code can be used.
async fn next_step() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let wait = 30_000 - now % 30_000 + 300;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

async fn post_anon(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let res = server
        .client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn sign_in_raw(server: &Server, id_number: &str, password: &str, code: &str) -> (u16, Value) {
    post_anon(
        server,
        "/api/v1/session",
        json!({"id_number": id_number, "password": password, "code": code}),
    )
    .await
}

#[tokio::test]
async fn grant_activate_sign_in_lock_and_unlock() {
    let server = Server::demo(200, None).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let branch = server.account("admin", Some(3)).org_id;
    let id_number = valid_id(101);
    let mobile = "13912345678";
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "李新华", "id_number": id_number, "mobile": mobile,
                   "role": "admin", "org_id": branch, "tier": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.body["expires_at"].as_str().is_some());
    let account_id = r.body["account_id"].as_str().unwrap().to_string();
    let activation_code = outbox_code(&server, mobile, "activation_code");
    assert!(activation_code.len() >= 8);

    // Listed as pending in the officer's scope.
    let list = officer.get("/api/v1/grants").await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let item = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["account_id"] == account_id.as_str())
        .cloned()
        .expect("grant listed");
    assert_eq!(item["state"], "pending");
    assert_eq!(item["tier"], 3);

    // Not activated yet: no sign-in.
    let (status, _) = sign_in_raw(&server, &id_number, "Abcdefg123", "000000").await;
    assert_eq!(status, 401);

    let (status, body) =
        post_anon(&server, "/api/v1/activation/sms", json!({"mobile": mobile})).await;
    assert_eq!(status, 200, "{body}");
    // Unknown mobiles get the same answer.
    let (status2, body2) = post_anon(
        &server,
        "/api/v1/activation/sms",
        json!({"mobile": "13000000000"}),
    )
    .await;
    assert_eq!((status2, &body2), (status, &body));
    let sms = outbox_code(&server, mobile, "activation_sms");
    assert_eq!(sms.len(), 6);

    let good = json!({"mobile": mobile, "sms_code": sms, "activation_code": activation_code,
        "name": "李新华", "id_number": id_number, "password": "Abcdefg123"});
    let wrong_sms = if sms == "000000" { "111111" } else { "000000" };
    for (field, value) in [
        ("mobile", json!("13700000000")),
        ("sms_code", json!(wrong_sms)),
        ("activation_code", json!("WRONGCODE234")),
        ("name", json!("王五")),
        ("id_number", json!(valid_id(103))),
        ("password", json!("weakpass")),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = post_anon(&server, "/api/v1/activation", body).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, activated) = post_anon(&server, "/api/v1/activation", good.clone()).await;
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["account_id"], account_id.as_str());
    let secret = activated["totp"]["secret"].as_str().unwrap().to_string();
    assert!(activated["totp"]["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    // The activation code is single use.
    let (status, _) = post_anon(&server, "/api/v1/activation", good).await;
    assert_eq!(status, 400);

    // Without a confirmed authenticator, no sign-in.
    let (status, _) = sign_in_raw(&server, &id_number, "Abcdefg123", &current_code(&secret)).await;
    assert_eq!(status, 403);
    let (status, body) = post_anon(
        &server,
        "/api/v1/activation/totp",
        json!({"account_id": account_id, "code": "12345x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("code"))
    );
    let (status, body) = post_anon(
        &server,
        "/api/v1/activation/totp",
        json!({"account_id": account_id, "code": current_code(&secret)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    next_step().await;
    let code = current_code(&secret);
    let (status, body) = sign_in_raw(&server, &id_number, "Abcdefg123", &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"][0]["tier"], 3);
    let (status, _) = sign_in_raw(&server, &id_number, "Abcdefg123", &code).await;
    assert_eq!(status, 401, "a replayed code is refused");

    for _ in 0..5 {
        let (status, _) = sign_in_raw(&server, &id_number, "Wrong12345", &code).await;
        assert!(status == 401 || status == 423);
    }
    let (status, body) =
        sign_in_raw(&server, &id_number, "Abcdefg123", &current_code(&secret)).await;
    assert_eq!(status, 423, "{body}");
    let list = officer.get("/api/v1/grants").await;
    let item = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["account_id"] == account_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(item["state"], "locked");

    let r = officer
        .post(&format!("/api/v1/accounts/{account_id}/unlock"), json!({}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    next_step().await;
    let (status, body) =
        sign_in_raw(&server, &id_number, "Abcdefg123", &current_code(&secret)).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_string();

    // Revoking the grant ends its sessions.
    let r = officer
        .delete(&format!(
            "/api/v1/grants/{}",
            item["grant_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let res = server
        .client()
        .get(server.url("/api/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn grant_rules_and_separation() {
    grant_rules(None).await;
}

#[tokio::test]
async fn grant_rules_and_separation_postgres() {
    grant_rules(Some(TestDb::postgres().await)).await;
}

async fn grant_rules(db: Option<TestDb>) {
    let server = Server::demo(200, db).await;
    let sec = server.account("security", None);
    let officer = server.sign_in(&sec).await;
    let tier3 = server.account("admin", Some(3));
    let tier2 = server.account("admin", Some(2));

    // Self-grant.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "某人", "id_number": sec.id_number, "mobile": "13911110000",
                   "role": "admin", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.field(), Some("id_number"));

    // A second role family for the tier-3 admin.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "某人", "id_number": tier3.id_number, "mobile": "13911110001",
                   "role": "auditor", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.field(), Some("role"));

    // Raising the tier of the tier-2 committee.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "赵敏", "id_number": valid_id(201), "mobile": "13911110002",
                   "role": "admin", "org_id": tier2.org_id, "tier": 1}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("tier"));
    assert!(r.message().contains('2'), "{}", r.message());
    // Lowering is allowed.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "赵敏", "id_number": valid_id(201), "mobile": "13911110002",
                   "role": "admin", "org_id": tier2.org_id, "tier": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let grant_id = r.body["grant_id"].as_str().unwrap().to_string();
    let account_id = r.body["account_id"].as_str().unwrap().to_string();
    // A second admin grant for the same person is fine; a bad field is named.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "赵敏", "id_number": valid_id(201), "mobile": "13911110002",
                   "role": "admin", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "钱", "id_number": "123", "mobile": "139",
                   "role": "admin", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!((r.status, r.field()), (400, Some("id_number")));
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "钱", "id_number": valid_id(203), "mobile": "139",
                   "role": "admin", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!((r.status, r.field()), (400, Some("mobile")));
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "钱", "id_number": valid_id(203), "mobile": "13911110009",
                   "role": "boss", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!((r.status, r.field()), (400, Some("role")));

    // Reset sends a new activation code.
    let r = officer
        .post(&format!("/api/v1/accounts/{account_id}/reset"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["expires_at"].as_str().is_some());

    // The officer's pages: home leads to 授权管理; the grant form offers only allowed tiers.
    let page = officer
        .client
        .get(format!("{}/", officer.base))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap();
    assert!(page.url().path().ends_with("/security/grants"));
    let html = page.text().await.unwrap();
    assert!(html.contains("授权管理") && html.contains("赵敏"), "{html}");
    let form = officer
        .client
        .get(format!(
            "{}/security/grants/new?org_id={}",
            officer.base, tier2.org_id
        ))
        .bearer_auth(&officer.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("管理员（二级）") && !form.contains("管理员（一级）"),
        "{form}"
    );
    let activate = server
        .client()
        .get(server.url("/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(activate.status(), 200);
    assert!(activate.text().await.unwrap().contains("获取短信验证码"));

    // Admins and auditors may not touch grants.
    for who in [server.account("auditor", None), tier3.clone()] {
        let api = server.sign_in(&who).await;
        let r = api
            .post(
                "/api/v1/grants",
                json!({"name": "孙", "id_number": valid_id(205), "mobile": "13911110005",
                       "role": "admin", "org_id": tier3.org_id}),
            )
            .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        assert_eq!(api.get("/api/v1/grants").await.status, 403);
        assert_eq!(
            api.delete(&format!("/api/v1/grants/{grant_id}"))
                .await
                .status,
            403
        );
        let r = api
            .post(&format!("/api/v1/accounts/{account_id}/unlock"), json!({}))
            .await;
        assert_eq!(r.status, 403);
    }
}

#[tokio::test]
async fn sign_in_is_throttled_per_address() {
    let server = Server::demo(100, None).await;
    let admin = server.account("admin", Some(3));
    for i in 0..20 {
        let (status, body) = sign_in_raw(&server, &valid_id(300 + i), "Wrong12345", "123456").await;
        assert_eq!(status, 401, "attempt {i}: {body}");
    }
    let (status, body) = sign_in_raw(
        &server,
        &admin.id_number,
        &admin.password,
        &current_code(&admin.totp_secret),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "throttled");
    assert!(body["error"]["message"].as_str().unwrap().contains("再试"));
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session() {
    let server = Server::demo(100, None).await;
    let admin = server.account("admin", Some(3));
    let first = server.sign_in(&admin).await;
    next_step().await;
    let second = server.sign_in(&admin).await;
    let r = first
        .send(reqwest::Method::DELETE, "/api/v1/session?all=1", None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(second.get("/api/v1/session").await.status, 401);
    assert_eq!(first.get("/api/v1/session").await.status, 401);
}

/// Audit records of `action` on `target` with `outcome`, read from the server's database.
async fn audit_count(
    server: &Server,
    db: &Option<String>,
    action: &str,
    target: &str,
    outcome: &str,
) -> i64 {
    sqlx::any::install_default_drivers();
    let url = db.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=ro",
            server.data.path().join("dangjian.db").display()
        )
    });
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = $1 AND target = $2 AND outcome = $3",
    )
    .bind(action)
    .bind(target)
    .bind(outcome)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn concurrent_wrong_passwords_lock_the_account() {
    concurrent_lockout(None).await;
}

#[tokio::test]
async fn concurrent_wrong_passwords_lock_the_account_postgres() {
    concurrent_lockout(Some(TestDb::postgres().await)).await;
}

/// 40 wrong passwords for one account at once from one address: the address gets exactly
/// [`MAX_FAILURES`] tries (the rest 429), every try that ran is a counted, audited failure, and
/// the account is locked — the right password from another address then answers 423.
async fn concurrent_lockout(db: Option<TestDb>) {
    let db_url = db.as_ref().map(|d| d.url.clone());
    let server = Server::demo(100, db).await;
    let admin = server.account("admin", Some(3));
    let tries = (0..40).map(|_| {
        let server = &server;
        let id = admin.id_number.clone();
        async move { sign_in_raw(server, &id, "Wrong12345", "123456").await.0 }
    });
    let statuses = futures_util::future::join_all(tries).await;
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count() as i64;
    assert_eq!(count(429), 20, "{statuses:?}");
    assert_eq!(count(401) + count(423), 20, "{statuses:?}");
    assert!(count(401) >= 5, "{statuses:?}");

    let other = server.client_from("127.0.0.2".parse().unwrap());
    let res = other
        .post(server.url("/api/v1/session"))
        .json(
            &json!({"id_number": admin.id_number, "password": admin.password,
                      "code": current_code(&admin.totp_secret)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 423);

    let masked = dangjian_server::member::idcard::mask(&admin.id_number);
    let failed = audit_count(&server, &db_url, "session.sign_in", &masked, "failed").await;
    let refused = audit_count(&server, &db_url, "session.sign_in", &masked, "refused").await;
    // Every try that passed the throttle left its record (plus the 423 just above).
    assert_eq!(failed, count(401), "failed records");
    assert_eq!(refused, count(423) + 1, "refused records");
    // The throttled ones: one record for the address and minute, not twenty.
    let throttled = audit_count(&server, &db_url, "throttle.refused", "sign_in", "refused").await;
    assert!((1..=2).contains(&throttled), "{throttled} throttle records");
}

#[tokio::test]
async fn concurrent_tries_from_one_address_are_throttled() {
    concurrent_throttle(None).await;
}

#[tokio::test]
async fn concurrent_tries_from_one_address_are_throttled_postgres() {
    concurrent_throttle(Some(TestDb::postgres().await)).await;
}

/// 100 sign-ins with unknown ID numbers at once from one address: exactly
/// `throttle::MAX_FAILURES` run, every other answers 429.
async fn concurrent_throttle(db: Option<TestDb>) {
    let server = Server::demo(100, db).await;
    let tries = (0..100u16).map(|i| {
        let server = &server;
        async move {
            sign_in_raw(server, &valid_id(500 + i), "Wrong12345", "123456")
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(tries).await;
    let limit = dangjian_server::account::throttle::MAX_FAILURES as usize;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        limit,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        100 - limit,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn concurrent_grants_keep_three_roles_apart_postgres() {
    concurrent_grants(Some(TestDb::postgres().await)).await;
}

#[tokio::test]
async fn concurrent_grants_keep_three_roles_apart() {
    concurrent_grants(None).await;
}

/// A person without live grants gets an admin and an auditor grant at the same moment: exactly
/// one lands. Two grants on one organisation at once: exactly one lands.
async fn concurrent_grants(db: Option<TestDb>) {
    let server = Server::demo(100, db).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let tier3 = server.account("admin", Some(3));
    let tier2 = server.account("admin", Some(2));
    for round in 0..5u16 {
        let person = valid_id(700 + round);
        let mobile = format!("1391234{:04}", round);
        let body = |role: &str, org: &str| {
            json!({"name": "并发测试", "id_number": person, "mobile": mobile,
                   "role": role, "org_id": org})
        };
        // Known to the platform, with no live grant.
        let first = officer
            .post("/api/v1/grants", body("admin", &tier2.org_id))
            .await;
        assert_eq!(first.status, 201, "{:?}", first.body);
        let gid = first.body["grant_id"].as_str().unwrap().to_string();
        let r = officer.delete(&format!("/api/v1/grants/{gid}")).await;
        assert_eq!(r.status, 204, "{:?}", r.body);

        let (a, b) = tokio::join!(
            officer.post("/api/v1/grants", body("admin", &tier3.org_id)),
            officer.post("/api/v1/grants", body("auditor", &tier2.org_id)),
        );
        let landed = [a.status, b.status].iter().filter(|&&s| s == 201).count();
        assert_eq!(landed, 1, "round {round}: {:?} {:?}", a.body, b.body);
        assert!(
            [a.status, b.status].contains(&409),
            "{:?} {:?}",
            a.body,
            b.body
        );

        let (c, d) = tokio::join!(
            officer.post("/api/v1/grants", body("admin", &tier2.org_id)),
            officer.post("/api/v1/grants", body("admin", &tier2.org_id)),
        );
        let landed = [c.status, d.status].iter().filter(|&&s| s == 201).count();
        // When the auditor grant won above, both admin grants are refused.
        let auditor_won = b.status == 201;
        assert_eq!(
            landed,
            usize::from(!auditor_won),
            "round {round}: {:?} {:?}",
            c.body,
            d.body
        );
    }
}

/// The database (and its WAL files), the outbox and every key file of a data directory are
/// readable by their owner only.
#[tokio::test]
async fn data_directory_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::demo(100, None).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let tier3 = server.account("admin", Some(3));
    // A grant for a new person writes an activation code to the outbox.
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "权限测试", "id_number": valid_id(901), "mobile": "13911117777",
                   "role": "admin", "org_id": tier3.org_id}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mut checked = Vec::new();
    let mut stack = vec![server.data.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let private = name.ends_with(".key")
                || name == "keys.json"
                || name.starts_with("dangjian.db")
                || name == "outbox.jsonl"
                || name == "demo-accounts.json";
            if private {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
                checked.push(name);
            }
        }
    }
    for expected in [
        "dangjian.db",
        "dangjian.db-wal",
        "outbox.jsonl",
        "keys.json",
        "server.key",
        "ca.key",
    ] {
        assert!(
            checked.iter().any(|n| n == expected),
            "{expected} not found: {checked:?}"
        );
    }
}

/// The audit records of `action` (as the auditor reads them).
async fn audit_records(auditor: &dangjian_tests::Api, action: &str) -> Vec<Value> {
    let r = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn every_account_changes_its_password_and_a_one_time_password_must_be_changed_first() {
    let server = Server::demo(100, None).await;
    let admin = server.account("admin", Some(3));
    let first = server.sign_in(&admin).await;
    let org = format!("/api/v1/orgs/{}", admin.org_id);
    assert_eq!(first.get(&org).await.status, 200);
    // The account now holds a one-time password, as `init` leaves the first officer: the
    // session reaches the change-password API and the session itself, nothing else.
    server.require_password_change(&admin.org_id).await;
    let refused = first.get(&org).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "password_change_required");
    assert!(refused.message().contains("修改"), "{}", refused.message());
    let session = first.get("/api/v1/session").await;
    assert_eq!(session.status, 200);
    assert_eq!(session.body["must_change_password"], true);
    // A fresh sign-in is held the same way.
    next_step().await;
    let second = server.sign_in(&admin).await;
    assert_eq!(second.get(&org).await.status, 403);
    // Each rule of SPEC §8, named at its field; nothing changes.
    let new = "Xinmima2026";
    for (body, field) in [
        (
            json!({"old_password": "Wrong12345", "new_password": new, "new_password_again": new}),
            "old_password",
        ),
        (
            json!({"old_password": admin.password, "new_password": "short1A", "new_password_again": "short1A"}),
            "new_password",
        ),
        (
            json!({"old_password": admin.password, "new_password": "alllower123", "new_password_again": "alllower123"}),
            "new_password",
        ),
        (
            json!({"old_password": admin.password, "new_password": new, "new_password_again": "Xinmima2027"}),
            "new_password_again",
        ),
        (
            json!({"old_password": admin.password, "new_password": admin.password, "new_password_again": admin.password}),
            "new_password",
        ),
        (
            json!({"new_password": new, "new_password_again": new}),
            "old_password",
        ),
    ] {
        let r = second.post("/api/v1/account/password", body).await;
        assert_eq!((r.status, r.field()), (400, Some(field)), "{:?}", r.body);
        assert!(!r.message().is_empty());
    }
    let r = second
        .post(
            "/api/v1/account/password",
            json!({"old_password": admin.password, "new_password": new, "new_password_again": new}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // The other session ended; this one goes on, now free to work.
    assert_eq!(first.get("/api/v1/session").await.status, 401);
    let session = second.get("/api/v1/session").await;
    assert_eq!(session.body["must_change_password"], false);
    assert_eq!(second.get(&org).await.status, 200);
    // The old password no longer signs in; the new one does.
    let (status, _) = sign_in_raw(&server, &admin.id_number, &admin.password, "000000").await;
    assert_eq!(status, 401);
    next_step().await;
    let (status, body) = sign_in_raw(
        &server,
        &admin.id_number,
        new,
        &current_code(&admin.totp_secret),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Audited: the wrong old password, the change, and the refusal of the held session.
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let changes = audit_records(&auditor, "account.password_change").await;
    assert!(
        changes.iter().any(|r| r["outcome"] == "failed"),
        "{changes:?}"
    );
    let done: Vec<&Value> = changes
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(done.len(), 1, "{changes:?}");
    assert!(
        done[0]["detail"]
            .as_str()
            .unwrap()
            .contains("other sessions ended: 1"),
        "{done:?}"
    );
}

/// Grants an admin role on `org_id` to a new synthetic person through the security officer
/// and activates it (mobile, SMS code, activation code, authenticator); returns (ID number,
/// password, TOTP secret).
async fn activated_admin(
    server: &Server,
    officer: &dangjian_tests::Api,
    org_id: &str,
    seq: u16,
    mobile: &str,
) -> (String, String, String) {
    let id_number = valid_id(seq);
    let r = officer
        .post(
            "/api/v1/grants",
            json!({"name": "周调级", "id_number": id_number, "mobile": mobile,
                   "role": "admin", "org_id": org_id, "tier": 3}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let account_id = r.body["account_id"].as_str().unwrap().to_string();
    let activation_code = outbox_code(server, mobile, "activation_code");
    let (status, body) =
        post_anon(server, "/api/v1/activation/sms", json!({"mobile": mobile})).await;
    assert_eq!(status, 200, "{body}");
    let sms = outbox_code(server, mobile, "activation_sms");
    let password = "Tiaoji2026a".to_string();
    let (status, activated) = post_anon(
        server,
        "/api/v1/activation",
        json!({"mobile": mobile, "sms_code": sms, "activation_code": activation_code,
               "name": "周调级", "id_number": id_number, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{activated}");
    let secret = activated["totp"]["secret"].as_str().unwrap().to_string();
    let (status, body) = post_anon(
        server,
        "/api/v1/activation/totp",
        json!({"account_id": account_id, "code": current_code(&secret)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (id_number, password, secret)
}

#[tokio::test]
async fn tiers_follow_the_organisation() {
    let server = Server::demo(100, None).await;
    let tier1 = server.sign_in(&server.account("admin", Some(1))).await;
    let t2 = server.account("admin", Some(2));
    let tier2 = server.sign_in(&t2).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let tier_of = |api: &dangjian_tests::Api| {
        let api = api.clone();
        async move { api.get("/api/v1/session").await.body["active_role"]["tier"].clone() }
    };
    assert_eq!(tier_of(&tier2).await, 2);
    // The basic committee loses its approval authority: its tier-2 grant is lowered at once,
    // and the admin's (card) session sees tier 3 with its next request.
    let org = format!("/api/v1/orgs/{}", t2.org_id);
    let r = tier1
        .patch(&org, json!({"may_approve_development": false}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(tier_of(&tier2).await, 3);
    let retiered = audit_records(&auditor, "grant.retier").await;
    assert_eq!(retiered.len(), 1, "{retiered:?}");
    assert!(
        retiered[0]["detail"]
            .as_str()
            .unwrap()
            .contains("tier 2 → 3"),
        "{retiered:?}"
    );
    // A tier-3 admin on it now signs in with a password.
    let (id_number, password, secret) =
        activated_admin(&server, &officer, &t2.org_id, 401, "13912340401").await;
    next_step().await;
    let (status, body) = sign_in_raw(&server, &id_number, &password, &current_code(&secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"][0]["tier"], 3);
    let token = body["token"].as_str().unwrap().to_string();
    let session = |token: String| {
        let client = server.client();
        let url = server.url("/api/v1/session");
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(session(token.clone()).await, 200);
    // A tier-1 admin gives the authority back, explicitly: both grants are raised to tier 2,
    // the password session under the new grant ends (tier 2 needs the USB key), the card
    // session carries on at tier 2; one audit record per grant.
    let r = tier1
        .patch(&org, json!({"may_approve_development": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(tier_of(&tier2).await, 2);
    assert_eq!(session(token).await, 401);
    next_step().await;
    let (status, body) = sign_in_raw(&server, &id_number, &password, &current_code(&secret)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "card_required");
    let retiered = audit_records(&auditor, "grant.retier").await;
    assert_eq!(retiered.len(), 3, "{retiered:?}");
    assert_eq!(
        retiered
            .iter()
            .filter(|r| r["detail"].as_str().unwrap().contains("tier 3 → 2"))
            .count(),
        2,
        "{retiered:?}"
    );
}
