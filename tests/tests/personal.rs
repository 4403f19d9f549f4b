//! Members' own accounts (issue 18): registration 党员注册 against the living database with
//! a code read from the notifier's outbox, one answer for every mismatch, the member's
//! sign-in with an SMS code (single use, five wrong codes lock), the own record unmasked,
//! registration statistics that count at once, a member session refused on administrators'
//! routes, one account per member under parallel registrations, and the account ending with
//! the membership.

use dangjian_tests::{synthetic_id_number, Api, Server, TestDb};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect to the test database")
}

async fn scalar(url: &str, sql: &str, bind: &str) -> i64 {
    let mut conn = connect(url).await;
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// POST without a session from `client`; (status, body).
async fn post(server: &Server, client: &reqwest::Client, path: &str, body: Value) -> (u16, Value) {
    let res = client
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A new member of `branch` entered by its admin; returns its id.
async fn new_member(
    admin: &Api,
    branch: &str,
    id_number: &str,
    name: &str,
    registered_phone: Option<&str>,
) -> String {
    let mut body = json!({"name": name, "id_number": id_number, "ethnicity": "01", "education": "21",
        "category": "full", "branch_id": branch, "joined_on": "2010-06-01", "full_on": "2011-06-01",
        "job": "worker", "phone": "13800001234", "address": "测试地址"});
    if let Some(p) = registered_phone {
        body["registered_phone"] = json!(p);
    }
    let r = admin.post("/api/v1/members", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn registered(admin: &Api, org_id: &str) -> i64 {
    let r = admin
        .get(&format!("/api/v1/stats/registration?org_id={org_id}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["registered"].as_i64().unwrap()
}

/// A registration code for `mobile` from the outbox.
async fn code_for(server: &Server, client: &reqwest::Client, mobile: &str) -> String {
    let (status, body) = post(
        server,
        client,
        "/api/v1/register/sms",
        json!({"mobile": mobile}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let outbox =
        std::fs::read_to_string(server.data.path().join("outbox.jsonl")).expect("outbox.jsonl");
    outbox
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["kind"] == "register_sms" && m["to"] == mobile)
        .and_then(|m| m["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no register_sms for {mobile} in the outbox"))
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    if code == "000000" { "111111" } else { "000000" }.to_string()
}

async fn register_sign_in_and_own_record(db: Option<TestDb>) {
    let server = Server::demo(200, db).await;
    let url = server.db_url();
    let tier3 = server.account("admin", Some(3));
    let branch = server.sign_in(&tier3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    let anon = server.client();
    let id_number = synthetic_id_number(7101);
    let member = new_member(&branch, &tier3.org_id, &id_number, "注册甲", None).await;
    let phoned_id = synthetic_id_number(7102);
    new_member(
        &branch,
        &tier3.org_id,
        &phoned_id,
        "注册乙",
        Some("13612340002"),
    )
    .await;
    let before = registered(&branch, &tier3.org_id).await;
    let password = "Dangyuan2026x";

    // Every bad field named at once.
    let (status, body) = post(
        &server,
        &anon,
        "/api/v1/register",
        json!({"id_number": "123", "name": "", "mobile": "12", "sms_code": "", "password": "weak"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["id_number", "name", "mobile", "sms_code", "password"] {
        assert!(fields.contains(&f), "{f} not named: {body}");
    }

    // A wrong name, a wrong ID number and a phone other than the registered one: one answer.
    let mobile = "13612340001";
    let code = code_for(&server, &anon, mobile).await;
    let attempt = |id: &str, name: &str, mobile: &str, code: &str| json!({"id_number": id, "name": name, "mobile": mobile, "sms_code": code, "password": password});
    let (s1, wrong_name) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&id_number, "别人", mobile, &code),
    )
    .await;
    let (s2, wrong_id) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&synthetic_id_number(7199), "注册甲", mobile, &code),
    )
    .await;
    let (s3, wrong_phone) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&phoned_id, "注册乙", mobile, &code),
    )
    .await;
    assert_eq!((s1, s2, s3), (400, 400, 400));
    assert_eq!(wrong_name, wrong_id);
    assert_eq!(wrong_id, wrong_phone);
    assert_eq!(wrong_name["error"]["code"], "not_matched");
    assert!(wrong_name["error"]["message"]
        .as_str()
        .unwrap()
        .contains("联系所在党支部"));
    // A wrong code is refused as such.
    let (status, body) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&id_number, "注册甲", mobile, &other_than(&code)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "sms_code");

    // The right details register; the mobile becomes the registered phone; counted at once.
    let (status, body) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&id_number, " 注册甲 ", mobile, &code),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(registered(&branch, &tier3.org_id).await, before + 1);
    let r = branch
        .get(&format!("/api/v1/members/{member}?unmask=1"))
        .await;
    assert_eq!(r.body["registered_phone"], mobile);
    // Split by person category and by job; the drill-down lists the unregistered only.
    let r = branch
        .get(&format!(
            "/api/v1/stats/registration?org_id={}",
            tier3.org_id
        ))
        .await;
    let sum = |key: &str, field: &str| -> i64 {
        r.body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g[field].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        sum("by_category", "members"),
        r.body["members"].as_i64().unwrap()
    );
    assert_eq!(
        sum("by_job", "members"),
        r.body["members"].as_i64().unwrap()
    );
    assert_eq!(sum("by_category", "registered"), before + 1);
    assert_eq!(sum("by_job", "registered"), before + 1);
    let working = r.body["by_job"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["label"] == "在职")
        .unwrap();
    assert!(working["registered"].as_i64().unwrap() >= 1);
    let list = branch
        .get(&format!(
            "/api/v1/stats/registration/unregistered?org_id={}&per_page=200",
            tier3.org_id
        ))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&member.as_str()));
    assert_eq!(
        list.body["total"].as_i64().unwrap(),
        r.body["members"].as_i64().unwrap() - before - 1
    );
    assert!(list.body["items"][0]["id_number"]
        .as_str()
        .unwrap()
        .contains('*'));
    let res = branch
        .client
        .get(server.url(&format!(
            "/api/v1/stats/registration/export.xlsx?org_id={}",
            tier3.org_id
        )))
        .bearer_auth(&branch.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().starts_with(b"PK"));
    for path in [
        format!("/stats/unregistered?org_id={}", tier3.org_id),
        format!("/stats/registration/print?org_id={}", tier3.org_id),
    ] {
        let res = branch
            .client
            .get(server.url(&path))
            .bearer_auth(&branch.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let text = res.text().await.unwrap();
        if path.contains("print") {
            assert!(
                text.contains("党组织书记（签字）") && text.contains("盖章"),
                "{text}"
            );
        }
    }
    // The code is spent; a second registration of the member is refused.
    let (status, _) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&id_number, "注册甲", mobile, &code),
    )
    .await;
    assert_eq!(status, 400);
    let code2 = code_for(&server, &anon, mobile).await;
    let (status, body) = post(
        &server,
        &anon,
        "/api/v1/register",
        attempt(&id_number, "注册甲", mobile, &code2),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_registered");
    // Every attempt is audited.
    let audited = scalar(
        &url,
        "SELECT COUNT(*) FROM audit_log WHERE action = $1",
        "member.register",
    )
    .await;
    assert!(audited >= 6, "{audited} registration records");

    // Sign-in: password, then the SMS code sent to the registered phone, once.
    let signin = server.client();
    let (status, body) = post(
        &server,
        &signin,
        "/api/v1/me/session/sms",
        json!({"id_number": id_number, "password": "Wrong2026xx"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(
        &server,
        &signin,
        "/api/v1/me/session/sms",
        json!({"id_number": id_number, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phone"], "136****0001");
    let sms = server.outbox_code("member_sign_in");
    let (status, signed) = post(
        &server,
        &signin,
        "/api/v1/me/session",
        json!({"id_number": id_number, "password": password, "code": sms}),
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let (status, _) = post(
        &server,
        &signin,
        "/api/v1/me/session",
        json!({"id_number": id_number, "password": password, "code": sms}),
    )
    .await;
    assert_eq!(status, 401, "a code signs in once");
    let me = Api {
        client: server.client(),
        base: server.base.clone(),
        token: signed["token"].as_str().unwrap().to_string(),
    };

    // The own record, unmasked and audited; what it lacks; the organisation.
    let r = me.get("/api/v1/me").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["member"]["id_number"], id_number.as_str());
    assert_eq!(r.body["member"]["masked"], false);
    assert_eq!(r.body["member"]["registered_phone"], mobile);
    let missing: Vec<&str> = r.body["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(missing.contains(&"籍贯"), "{missing:?}");
    assert_eq!(r.body["organisation"]["id"], tier3.org_id.as_str());
    let views = scalar(&url,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'member.view' AND role = 'member' AND target = $1",
        &member).await;
    assert_eq!(views, 1);

    // 信息更正申请: an application in the branch's approval queue, approved there; the member
    // sees the state and the opinion.
    let r = me
        .post("/api/v1/me/corrections", json!({"content": ""}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("content"));
    let r = me
        .post(
            "/api/v1/me/corrections",
            json!({"content": "学历应为大学本科"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let application = r.body["id"].as_str().unwrap().to_string();
    let inbox = branch.get("/api/v1/approvals?state=pending").await;
    assert_eq!(inbox.status, 200, "{:?}", inbox.body);
    assert!(
        inbox.body.to_string().contains(&application),
        "{:?}",
        inbox.body
    );
    let r = committee
        .post(
            &format!("/api/v1/applications/{application}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "the committee is not the branch: {:?}",
        r.body
    );
    let r = branch
        .post(
            &format!("/api/v1/applications/{application}/approve"),
            json!({"opinion": "已按档案更正"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = me.get("/api/v1/me/applications").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["state"], "approved");
    assert_eq!(r.body["items"][0]["opinion"], "已按档案更正");
    assert_eq!(r.body["items"][0]["kind_label"], "信息更正申请");

    // 网上转接申请: to the branch's queue; approved, the branch starts the transfer, whose state
    // the member follows.
    let r = me
        .post(
            "/api/v1/me/transfer-requests",
            json!({"destination": "", "reason": ""}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.body["errors"].as_array().unwrap().len(),
        2,
        "{:?}",
        r.body
    );
    let (sibling, sibling_name) = {
        let mut conn = connect(&url).await;
        sqlx::query_as::<_, (String, String)>(
            "SELECT s.id, s.name FROM orgs s JOIN orgs a ON a.parent_id = s.parent_id \
             WHERE a.id = $1 AND s.id <> a.id AND s.category = '631' ORDER BY s.code LIMIT 1",
        )
        .bind(&tier3.org_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let r = me
        .post(
            "/api/v1/me/transfer-requests",
            json!({"destination": sibling_name, "reason": "工作调动"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let request = r.body["id"].as_str().unwrap().to_string();
    let d = branch
        .get(&format!("/api/v1/applications/{request}/transfer-draft"))
        .await;
    assert_eq!(d.status, 409, "not before the approval: {:?}", d.body);
    let d = branch
        .get(&format!(
            "/api/v1/applications/{application}/transfer-draft"
        ))
        .await;
    assert_eq!(
        d.status, 409,
        "a correction is no transfer request: {:?}",
        d.body
    );
    let r = branch
        .post(
            &format!("/api/v1/applications/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        me.get("/api/v1/me/transfers").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The approved request fills the transfer form: the branch of the destination's name,
    // the member's reason; the branch submits it under every transfer rule.
    let d = branch
        .get(&format!("/api/v1/applications/{request}/transfer-draft"))
        .await;
    assert_eq!(d.status, 200, "{:?}", d.body);
    assert_eq!(d.body["member_id"], member.as_str());
    assert_eq!(d.body["to_org_id"], sibling.as_str(), "{:?}", d.body);
    assert_eq!(d.body["kind"], "county");
    assert_eq!(d.body["reason"], "工作调动");
    assert_eq!(d.body["destination"], sibling_name.as_str());
    let mut input = json!({"member_id": d.body["member_id"], "kind": d.body["kind"],
        "to_org_id": d.body["to_org_id"], "reason": d.body["reason"], "date": d.body["date"],
        "contacts": d.body["contacts"]});
    let t = branch.post("/api/v1/transfers", input.clone()).await;
    assert_eq!(
        t.status, 400,
        "党费交到 is the admin's to fill: {:?}",
        t.body
    );
    assert_eq!(t.field(), Some("dues_paid_to"));
    input["dues_paid_to"] = json!("2026-10");
    let t = branch.post("/api/v1/transfers", input).await;
    assert_eq!(t.status, 201, "{:?}", t.body);
    let r = me.get("/api/v1/me/transfers").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["state"], "active");
    assert_eq!(r.body["items"][0]["state_label"], "办理中");
    // The exit below needs no open transfer: the branch withdraws it.
    let tid = t.body["id"].as_str().unwrap();
    let w = branch
        .post(
            &format!("/api/v1/transfers/{tid}/withdraw"),
            json!({"reason": "测试撤销"}),
        )
        .await;
    assert_eq!(w.status, 200, "{:?}", w.body);

    // A member's token reaches nothing of the administrators', not even the own record there.
    for path in [
        format!("/api/v1/members/{member}"),
        "/api/v1/session".into(),
        "/api/v1/orgs".into(),
        format!("/api/v1/stats/registration?org_id={}", tier3.org_id),
    ] {
        let r = me.get(&path).await;
        assert_eq!(r.status, 403, "{path}: {:?}", r.body);
        assert_eq!(r.body["error"]["code"], "member_session");
    }
    let r = me.post("/api/v1/members", json!({})).await;
    assert_eq!(r.status, 403);
    // And an administrator's token does not reach the member's routes.
    assert_eq!(branch.get("/api/v1/me").await.status, 403);
    assert_eq!(
        server
            .client()
            .get(server.url("/api/v1/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Five wrong codes lock the account, as for administrators: the replayed one above and
    // four more.
    let locker = server.client_from("127.0.0.3".parse().unwrap());
    let mut last = (0, Value::Null);
    for _ in 0..4 {
        last = post(
            &server,
            &locker,
            "/api/v1/me/session",
            json!({"id_number": id_number, "password": password, "code": "999999x"}),
        )
        .await;
        assert_eq!(last.0, 401, "{}", last.1);
    }
    assert!(
        last.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("已锁定"),
        "{}",
        last.1
    );
    let (status, body) = post(
        &server,
        &locker,
        "/api/v1/me/session/sms",
        json!({"id_number": id_number, "password": password}),
    )
    .await;
    assert_eq!(status, 423, "{body}");

    // Leaving the living database ends the account and its session in the same transaction.
    let a = branch.post("/api/v1/applications",
        json!({"kind": "exit", "member_id": member, "date": "2026-10-01", "reason": "测试出党"})).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap();
    let r = committee
        .post(&format!("/api/v1/applications/{id}/approve"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(me.get("/api/v1/me").await.status, 401);
    assert_eq!(
        scalar(
            &url,
            "SELECT COUNT(*) FROM member_accounts WHERE member_id = $1 AND status = 'active'",
            &member
        )
        .await,
        0
    );
    assert_eq!(registered(&branch, &tier3.org_id).await, before);
}

#[tokio::test]
async fn members_register_sign_in_and_see_their_own_record() {
    register_sign_in_and_own_record(None).await;
}

#[tokio::test]
async fn members_register_sign_in_and_see_their_own_record_on_postgres() {
    register_sign_in_and_own_record(Some(TestDb::postgres().await)).await;
}

/// Registrations of one member fired at once, each with a code of its own mobile: exactly one
/// account.
#[tokio::test]
async fn one_account_per_member_under_parallel_registrations() {
    let server = Server::demo(100, None).await;
    let url = server.db_url();
    let tier3 = server.account("admin", Some(3));
    let branch = server.sign_in(&tier3).await;
    let id_number = synthetic_id_number(7301);
    let member = new_member(&branch, &tier3.org_id, &id_number, "并发注册", None).await;
    let mut tries = Vec::new();
    for i in 0..8u32 {
        let client = server.client_from(format!("127.0.1.{}", i + 1).parse().unwrap());
        let mobile = format!("1391234{i:04}");
        let code = code_for(&server, &client, &mobile).await;
        tries.push((client, mobile, code));
    }
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for (client, mobile, code) in tries {
        let server = server.clone();
        let body = json!({"id_number": id_number, "name": "并发注册", "mobile": mobile,
                          "sms_code": code, "password": "Bingfa2026x"});
        tasks.push(tokio::spawn(async move {
            post(&server, &client, "/api/v1/register", body).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            400 | 409 => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        scalar(
            &url,
            "SELECT COUNT(*) FROM member_accounts WHERE member_id = $1",
            &member
        )
        .await,
        1
    );
}

/// 注册提醒 fired four times at once: each reachable unregistered member of the branch gets one
/// SMS, audited; a send within the week reaches nobody again.
#[tokio::test]
async fn reminders_reach_each_unregistered_member_once_a_week_in_parallel() {
    let server = Server::demo(150, None).await;
    let url = server.db_url();
    let tier3 = server.account("admin", Some(3));
    let branch = server.sign_in(&tier3).await;
    let path = format!("/api/v1/orgs/{}/registration-reminders", tier3.org_id);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let api = branch.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(
            async move { api.post(&path, json!({})).await },
        ));
    }
    let (mut sent, mut unregistered, mut unreachable) = (0, 0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
        sent += r.body["sent"].as_i64().unwrap();
        unregistered = r.body["unregistered"].as_i64().unwrap();
        unreachable = r.body["unreachable"].as_i64().unwrap();
    }
    assert!(unregistered > 0);
    assert_eq!(
        sent,
        unregistered - unreachable,
        "each reachable member once"
    );
    let outbox =
        std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap_or_default();
    let messages = outbox
        .lines()
        .filter(|l| l.contains("registration_reminder"))
        .count() as i64;
    assert_eq!(messages, sent);
    let audited = scalar(
        &url,
        "SELECT COUNT(*) FROM audit_log WHERE action = $1",
        "member.registration_reminder",
    )
    .await;
    assert_eq!(audited, sent);
    let r = branch.post(&path, json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["sent"], 0);
    assert_eq!(r.body["skipped_recent"].as_i64().unwrap(), sent);
    // Only a branch sends them; another city's branch is out of reach.
    let committee = server.account("admin", Some(2));
    let r = branch
        .post(
            &format!("/api/v1/orgs/{}/registration-reminders", committee.org_id),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
}

/// The newest code of `kind` sent to `to`, if any.
fn outbox_code_to(server: &Server, kind: &str, to: &str) -> Option<String> {
    let outbox =
        std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap_or_default();
    outbox
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["kind"] == kind && m["to"] == to)
        .and_then(|m| m["code"].as_str().map(str::to_string))
}

/// A registered member signed in through the API: (its session, the mobile).
async fn registered_member(
    server: &Server,
    admin: &Api,
    branch: &str,
    seq: u32,
    password: &str,
) -> (Api, String) {
    let id_number = synthetic_id_number(seq);
    let mobile = format!("136{:08}", 55500000 + seq);
    new_member(admin, branch, &id_number, "找回密码", Some(&mobile)).await;
    let anon = server.client();
    let code = code_for(server, &anon, &mobile).await;
    let (status, body) = post(
        server,
        &anon,
        "/api/v1/register",
        json!({"id_number": id_number, "name": "找回密码", "mobile": mobile, "sms_code": code,
               "password": password}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        sign_in_member(server, &id_number, password, &mobile)
            .await
            .unwrap(),
        mobile,
    )
}

/// Signs a member in with password and SMS code; the refusal's status otherwise.
async fn sign_in_member(
    server: &Server,
    id_number: &str,
    password: &str,
    mobile: &str,
) -> Result<Api, u16> {
    let c = server.client();
    let (status, _) = post(
        server,
        &c,
        "/api/v1/me/session/sms",
        json!({"id_number": id_number, "password": password}),
    )
    .await;
    if status != 200 {
        return Err(status);
    }
    let code = outbox_code_to(server, "member_sign_in", mobile).unwrap();
    let (status, signed) = post(
        server,
        &c,
        "/api/v1/me/session",
        json!({"id_number": id_number, "password": password, "code": code}),
    )
    .await;
    if status != 200 {
        return Err(status);
    }
    Ok(Api {
        client: server.client(),
        base: server.base.clone(),
        token: signed["token"].as_str().unwrap().to_string(),
    })
}

/// 忘记密码: one answer for an unknown ID number and a member's; one answer for every wrong
/// detail; a code sent to the registered phone resets the password once (four at once: one
/// passes); the reset ends the sessions; wrong codes lock the account as at sign-in.
#[tokio::test]
async fn a_member_resets_a_forgotten_password_once_and_its_sessions_end() {
    let server = Server::demo(120, None).await;
    let url = server.db_url();
    let tier3 = server.account("admin", Some(3));
    let branch = server.sign_in(&tier3).await;
    let old = "Jiumima2026x";
    let (session, mobile) = registered_member(&server, &branch, &tier3.org_id, 7301, old).await;
    let id_number = synthetic_id_number(7301);
    let stranger = synthetic_id_number(7399);
    let anon = server.client();

    // Every bad field named at once.
    let (status, body) = post(
        &server,
        &anon,
        "/api/v1/me/password-reset",
        json!({"id_number": "123", "sms_code": "", "password": "weak"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let named: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["id_number", "sms_code", "password"] {
        assert!(named.contains(&f), "{f} not named: {body}");
    }
    // The page's form without its double-submit token is refused before anything is sent.
    let page = anon
        .post(server.url("/me/login/reset/sms"))
        .form(&[("id_number", id_number.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 403);
    assert!(outbox_code_to(&server, "member_password_reset", &mobile).is_none());
    // The code request: the same answer for a stranger and for the member.
    let (s1, for_stranger) = post(
        &server,
        &anon,
        "/api/v1/me/password-reset/sms",
        json!({"id_number": stranger}),
    )
    .await;
    let (s2, for_member) = post(
        &server,
        &anon,
        "/api/v1/me/password-reset/sms",
        json!({"id_number": id_number}),
    )
    .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(for_stranger, for_member);
    let code = outbox_code_to(&server, "member_password_reset", &mobile).expect("a reset code");
    // Wrong details: one answer.
    let new = "Xinmima2026y";
    let (s1, unknown) = post(
        &server,
        &anon,
        "/api/v1/me/password-reset",
        json!({"id_number": stranger, "sms_code": code, "password": new}),
    )
    .await;
    let (s2, wrong) = post(
        &server,
        &anon,
        "/api/v1/me/password-reset",
        json!({"id_number": id_number, "sms_code": other_than(&code), "password": new}),
    )
    .await;
    assert_eq!((s1, s2), (400, 400));
    assert_eq!(unknown, wrong);
    // Four resets with the right code at once: exactly one passes.
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (server_base, client) = (server.url("/api/v1/me/password-reset"), server.client());
        let body =
            json!({"id_number": id_number, "sms_code": code, "password": format!("{new}{i}")});
        tasks.push(tokio::spawn(async move {
            let r = client.post(server_base).json(&body).send().await.unwrap();
            r.status().as_u16()
        }));
    }
    let mut passed = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() == 200 {
            passed.push(i);
        }
    }
    assert_eq!(passed.len(), 1, "a code resets once");
    let new = format!("{new}{}", passed[0]);
    // The session of before ended; the old password is gone, the new one signs in.
    assert_eq!(session.get("/api/v1/me").await.status, 401);
    assert_eq!(
        sign_in_member(&server, &id_number, old, &mobile)
            .await
            .err(),
        Some(401)
    );
    let fresh = sign_in_member(&server, &id_number, &new, &mobile)
        .await
        .expect("new password");
    assert_eq!(fresh.get("/api/v1/me").await.status, 200);
    let audited = scalar(
        &url,
        "SELECT COUNT(*) FROM audit_log WHERE action = $1",
        "member.password_reset",
    )
    .await;
    assert!(audited >= 6, "{audited} reset records");
    // 修改密码 on 个人专区: the old password first; the other sessions end.
    let second = sign_in_member(&server, &id_number, &new, &mobile)
        .await
        .expect("a second session");
    let r = fresh
        .post(
            "/api/v1/me/password",
            json!({"old_password": "Falsch2026xx",
        "new_password": "Dritte2026zz", "new_password_again": "Dritte2026zz"}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("old_password"));
    let r = fresh
        .post(
            "/api/v1/me/password",
            json!({"old_password": new,
        "new_password": "Dritte2026zz", "new_password_again": "Dritte2026zz"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        fresh.get("/api/v1/me").await.status,
        200,
        "the changing session stays"
    );
    assert_eq!(second.get("/api/v1/me").await.status, 401, "the other ends");
    // Five wrong reset codes lock the account as at sign-in.
    for _ in 0..5 {
        let (s, _) = post(
            &server,
            &anon,
            "/api/v1/me/password-reset",
            json!({"id_number": id_number, "sms_code": "000001", "password": "Vierte2026ab"}),
        )
        .await;
        assert_eq!(s, 400);
    }
    assert_eq!(
        sign_in_member(&server, &id_number, "Dritte2026zz", &mobile)
            .await
            .err(),
        Some(423)
    );
}

/// The authenticator code of `secret` for the time step after the current one (accepted as
/// one step of clock skew), so that it is not the step a confirmation just used.
fn next_step_code(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    dangjian_server::account::totp::code_at(secret, now + 30).unwrap()
}

/// 身份验证器: enrolled on 个人专区 and confirmed with a code; its code then signs in instead
/// of an SMS code, each step once (three sign-ins with one code at once: one passes).
#[tokio::test]
async fn a_member_enrols_an_authenticator_whose_codes_sign_in_once() {
    authenticator_signs_in_once(None).await;
}

#[tokio::test]
async fn a_member_enrols_an_authenticator_whose_codes_sign_in_once_on_postgres() {
    authenticator_signs_in_once(Some(TestDb::postgres().await)).await;
}

async fn authenticator_signs_in_once(db: Option<TestDb>) {
    let server = Server::demo(120, db).await;
    let tier3 = server.account("admin", Some(3));
    let branch = server.sign_in(&tier3).await;
    let password = "Yanzheng2026x";
    let (me, _mobile) = registered_member(&server, &branch, &tier3.org_id, 7311, password).await;
    let id_number = synthetic_id_number(7311);
    let r = me.post("/api/v1/me/totp", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(r.body["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    // Not yet confirmed: its code does not sign in.
    let anon = server.client();
    let (status, _) = post(
        &server,
        &anon,
        "/api/v1/me/session",
        json!({"id_number": id_number, "password": password, "code": next_step_code(&secret)}),
    )
    .await;
    assert_eq!(status, 401);
    let now_code = dangjian_tests::current_code(&secret);
    let r = me
        .post(
            "/api/v1/me/totp/confirm",
            json!({"code": other_than(&now_code)}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("code"));
    let r = me
        .post("/api/v1/me/totp/confirm", json!({"code": now_code}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Three sign-ins with the next step's code at once: one passes, the others are replays.
    let code = next_step_code(&secret);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (path, client) = (server.url("/api/v1/me/session"), server.client());
        let body = json!({"id_number": id_number, "password": password, "code": code});
        tasks.push(tokio::spawn(async move {
            let r = client.post(path).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers.sort();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, vec![200, 401, 401], "each step signs in once");
    // A replayed authenticator code is not called an SMS code alone.
    assert!(answers[1].1.contains("动态码"), "{}", answers[1].1);
    let audited = scalar(
        &server.db_url(),
        "SELECT COUNT(*) FROM audit_log WHERE action = 'member.sign_in' AND detail = $1",
        "authenticator code",
    )
    .await;
    assert_eq!(audited, 1);
}
