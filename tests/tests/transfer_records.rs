//! The read side of transfers on both engines: 查看转接情况 (every filter, 包含下级, the
//! organisation and the caller's scope), the Excel export (watermark, masked ID numbers,
//! audited) and the lists 待办 / 已办未办结 / 即将办理 / 转接监控 for the organisations along
//! the paths. Every person is synthetic.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use dangjian_tests::{Api, Server, TestDb};
use serde_json::{json, Value};

/// A synthetic ID number born on 1986-01-`day` with sequence `seq`.
fn id_number(day: u32, seq: u16) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        NaiveDate::from_ymd_opt(1986, 1, day).unwrap(),
        seq,
    )
}

/// Enters a synthetic member into `branch_id`; returns its id.
async fn member(api: &Api, branch_id: &str, name: &str, number: &str, n: u32) -> String {
    let r = api
        .post(
            "/api/v1/members",
            json!({
                "name": name, "id_number": number, "ethnicity": "01", "education": "21",
                "category": "full", "branch_id": branch_id, "joined_on": "2010-06-01",
                "full_on": "2011-06-01", "job": "worker",
                "phone": format!("1380001{:04}", 3000 + n), "address": "测试地址",
                "registered_phone": format!("1390001{:04}", 3000 + n)
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn children(api: &Api, org_id: &str) -> Vec<Value> {
    let r = api
        .get(&format!("/api/v1/orgs/{org_id}/children?per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

async fn transfer(api: &Api, body: Value) -> String {
    let r = api.post("/api/v1/transfers", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

/// The ids of a search or a list (every page of up to 200).
async fn ids(api: &Api, path: &str) -> BTreeSet<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = api.get(&format!("{path}{sep}per_page=200")).await;
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(r.body["total"].as_i64().unwrap(), items.len() as i64);
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&String]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn records_lists_and_export(server: &Server) {
    let t3 = server.account("admin", Some(3)); // branch A, below committee C
    let t2 = server.account("admin", Some(2)); // committee C
    let general = server.account_in("admin", Some(3), "621"); // general branch G below C
    let county = server.county_admin(); // county K above C
    let city = server.account("admin", Some(1)); // the first city, above K
    let a = server.sign_in(&t3).await;
    let c = server.sign_in(&t2).await;
    let g = server.sign_in(&general).await;
    let k = server.sign_in(&county).await;
    let ci = server.sign_in(&city).await;

    // Destinations: B, a branch of G (inside the committee: path A, C, B); B2, a branch of
    // another committee of the county (path A, C, K, C2, B2).
    let b = children(&g, &general.org_id).await[0].clone();
    let b_id = b["id"].as_str().unwrap().to_string();
    let committees = children(&k, &county.org_id).await;
    let c2 = committees
        .iter()
        .find(|o| o["category"] == "611" && o["id"] != t2.org_id.as_str())
        .expect("a second committee in the county");
    let b2 = children(&k, c2["id"].as_str().unwrap())
        .await
        .into_iter()
        .find(|o| o["category"] == "631")
        .expect("a branch of the second committee");
    let b2_id = b2["id"].as_str().unwrap().to_string();

    let numbers: Vec<String> = (1..=5).map(|i| id_number(i, 500 + i as u16)).collect();
    let names = ["司马转一", "司马转二", "欧阳转三", "欧阳转四", "上官转五"];
    let mut members = Vec::new();
    for (i, (name, number)) in names.iter().zip(&numbers).enumerate() {
        members.push(member(&a, &t3.org_id, name, number, i as u32).await);
    }
    let inside = |m: &str, to: &str, date: &str| {
        json!({"member_id": m, "kind": "county", "to_org_id": to, "reason": "工作调动",
               "date": date, "dues_paid_to": "2026-06"})
    };
    // T1: A → B2, at C. T2: A → B2, approved by C, now at K. T3: A → B, at C.
    // T4: A → B2, withdrawn. T5: out of the province, at C.
    let t1 = transfer(&a, inside(&members[0], &b2_id, "2026-01-10")).await;
    let t2_ = transfer(&a, inside(&members[1], &b2_id, "2026-02-10")).await;
    let t3_ = transfer(&a, inside(&members[2], &b_id, "2026-03-10")).await;
    let t4 = transfer(&a, inside(&members[3], &b2_id, "2026-03-20")).await;
    let t5 = transfer(
        &a,
        json!({"member_id": members[4], "kind": "out_of_province", "to_text": "外省某某县某某党支部",
               "addressee": "外省某某县委组织部", "reason": "随迁", "date": "2026-04-10",
               "dues_paid_to": "2026-06"}),
    )
    .await;
    let r = c
        .post(
            &format!("/api/v1/transfers/{t2_}/decision"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = a
        .post(
            &format!("/api/v1/transfers/{t4}/withdraw"),
            json!({"opinion": "撤回"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let all = set(&[&t1, &t2_, &t3_, &t4, &t5]);

    // 查看转接情况 at the source branch: all five; each item masked.
    assert_eq!(ids(&a, "/api/v1/transfers").await, all);
    let r = a
        .get(&format!("/api/v1/transfers?name={}", enc("上官")))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let item = &r.body["items"][0];
    assert_eq!(item["id"], t5.as_str());
    assert_eq!(item["member_name"], "上官转五");
    let masked = item["id_number"].as_str().unwrap();
    assert_ne!(masked, numbers[4]);
    assert!(masked.contains('*'), "{masked}");
    assert_eq!(item["state"], "active");
    assert_eq!(item["kind"], "out_of_province");
    assert_eq!(item["to_name"], "外省某某县某某党支部");
    assert!(!item["current_org"].as_str().unwrap().is_empty());
    assert_eq!(item["date"], "2026-04-10");

    // Name part, LIKE wildcards taken literally.
    let q = |s: &str| format!("/api/v1/transfers?{s}");
    assert_eq!(
        ids(&a, &q(&format!("name={}", enc("司马")))).await,
        set(&[&t1, &t2_])
    );
    assert_eq!(ids(&a, &q("name=%25")).await, set(&[]));
    assert_eq!(ids(&a, &q("name=_")).await, set(&[]));
    // The whole ID number, exactly (trimmed); another valid number finds nothing.
    assert_eq!(
        ids(
            &a,
            &q(&format!("id_number={}", enc(&format!(" {} ", numbers[2]))))
        )
        .await,
        set(&[&t3_])
    );
    assert_eq!(
        ids(&a, &q(&format!("id_number={}", id_number(9, 999)))).await,
        set(&[])
    );
    // From and to.
    // (B's name, 机关第…党支部, contains no other branch's name; B2's may be part of B's.)
    let b_name = b["name"].as_str().unwrap();
    assert_eq!(
        ids(&a, &q(&format!("to={}", enc(b_name)))).await,
        set(&[&t3_])
    );
    let b2_name = b2["name"].as_str().unwrap();
    let to_b2 = ids(&a, &q(&format!("to={}", enc(b2_name)))).await;
    assert!(
        set(&[&t1, &t2_, &t4]).is_subset(&to_b2) && !to_b2.contains(&t5),
        "{to_b2:?}"
    );
    assert_eq!(
        ids(&a, &q(&format!("to={}", enc("外省")))).await,
        set(&[&t5])
    );
    let a_name = &t3.org_name;
    assert_eq!(ids(&a, &q(&format!("from={}", enc(a_name)))).await, all);
    assert_eq!(
        ids(&a, &q(&format!("from={}", enc("不存在的单位")))).await,
        set(&[])
    );
    // The transfer date range, both ends inclusive.
    assert_eq!(
        ids(&a, &q("since=2026-02-10")).await,
        set(&[&t2_, &t3_, &t4, &t5])
    );
    assert_eq!(ids(&a, &q("until=2026-02-10")).await, set(&[&t1, &t2_]));
    assert_eq!(
        ids(&a, &q("since=2026-02-01&until=2026-03-15")).await,
        set(&[&t2_, &t3_])
    );
    // State and kind.
    assert_eq!(ids(&a, &q("state=withdrawn")).await, set(&[&t4]));
    assert_eq!(
        ids(&a, &q("state=active")).await,
        set(&[&t1, &t2_, &t3_, &t5])
    );
    assert_eq!(ids(&a, &q("kind=out_of_province")).await, set(&[&t5]));
    // Faults are named.
    let r = a.get(&q("since=2026/01/01&state=nope")).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"since") && fields.contains(&"state"),
        "{fields:?}"
    );

    // Declared formats and enums are exact: an unknown, padded or empty value is refused, not
    // taken as the default.
    for (bad, field) in [
        ("include_sub=maybe", "include_sub"),
        ("include_sub=", "include_sub"),
        ("kind=", "kind"),
        ("state=", "state"),
        ("direction=", "direction"),
        ("sort=name", "sort"),
        ("since=%202026-01-01", "since"),
        ("since=2026-03-01&until=2026-02-01", "until"),
    ] {
        let r = a.get(&q(bad)).await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert_eq!(r.field(), Some(field), "{bad}");
    }
    // 包含下级: the city sees, without it, the transfers through itself or its counties (T1,
    // T2, T4 pass K; T5 goes up through the city) but not T3, which stays inside committee C;
    // with it, all five.
    assert_eq!(
        ids(&ci, "/api/v1/transfers").await,
        set(&[&t1, &t2_, &t4, &t5])
    );
    assert_eq!(ids(&ci, "/api/v1/transfers?include_sub=true").await, all);
    // A selected organisation: G (and its branch B) only has T3.
    assert_eq!(
        ids(&k, &format!("/api/v1/transfers?org_id={}", general.org_id)).await,
        set(&[&t3_])
    );
    // Scope: G's admin sees T3 only; an organisation outside the caller's scope is refused.
    assert_eq!(
        ids(&g, "/api/v1/transfers?include_sub=true").await,
        set(&[&t3_])
    );
    let r = a
        .get(&format!("/api/v1/transfers?org_id={}", county.org_id))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = a.get("/api/v1/transfers?org_id=nope").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let officer = server.sign_in(&server.account("security", None)).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    for (role, other) in [("security", &officer), ("auditor", &auditor)] {
        for path in [
            "/api/v1/transfers",
            "/api/v1/transfers/export.xlsx",
            "/api/v1/transfer-lists?list=todo",
        ] {
            let r = other.get(path).await;
            assert_eq!(r.status, 403, "{role} {path}: {:?}", r.body);
        }
    }

    // The lists, for the organisations along the paths.
    // C: T1, T3, T5 wait for it; it passed T2 on.
    assert_eq!(list(&c, "todo").await, set(&[&t1, &t3_, &t5]));
    assert_eq!(list(&c, "done").await, set(&[&t2_]));
    assert_eq!(list(&c, "upcoming").await, set(&[]));
    // K: T2 is its turn; T1 and T5 will come to it.
    assert_eq!(list(&k, "todo").await, set(&[&t2_]));
    assert_eq!(list(&k, "done").await, set(&[]));
    assert_eq!(list(&k, "upcoming").await, set(&[&t1, &t5]));
    // A submitted every open one; none waits for it.
    assert_eq!(list(&a, "todo").await, set(&[]));
    assert_eq!(list(&a, "done").await, set(&[&t1, &t2_, &t3_, &t5]));
    assert_eq!(list(&a, "upcoming").await, set(&[]));
    // Monitoring: every open transfer touching the subtree; G only T3 (its branch receives).
    assert_eq!(list(&k, "monitor").await, set(&[&t1, &t2_, &t3_, &t5]));
    assert_eq!(list(&a, "monitor").await, set(&[&t1, &t2_, &t3_, &t5]));
    assert_eq!(list(&g, "monitor").await, set(&[&t3_]));
    let r = k.get("/api/v1/transfer-lists?list=monitor").await;
    let first = &r.body["items"][0];
    assert!(
        first["waiting"].as_str().unwrap().ends_with("分钟"),
        "{first}"
    );
    assert_eq!(first["overdue"], false);
    // Longest waiting first (the time its current step began, ascending); waiting_asc the
    // other way round.
    let since = |r: &dangjian_tests::Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["step_since"].as_str().unwrap().to_string())
            .collect()
    };
    let longest = since(&r);
    let mut sorted = longest.clone();
    sorted.sort();
    assert_eq!(longest, sorted);
    let r = k
        .get("/api/v1/transfer-lists?list=monitor&sort=waiting_asc")
        .await;
    let shortest = since(&r);
    sorted.reverse();
    assert_eq!(shortest, sorted);
    // C returns T3 to the source: it is A's to do (resubmit or void) and no longer A's done;
    // C has acted on it (its admin's step on the trail), and C lies ahead on its path again.
    let r = c
        .post(
            &format!("/api/v1/transfers/{t3_}/decision"),
            json!({"decision": "return", "opinion": "材料不全"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(list(&a, "todo").await, set(&[&t3_]));
    assert_eq!(list(&a, "done").await, set(&[&t1, &t2_, &t5]));
    assert_eq!(list(&c, "todo").await, set(&[&t1, &t5]));
    assert_eq!(list(&c, "done").await, set(&[&t2_, &t3_]));
    assert_eq!(list(&c, "upcoming").await, set(&[&t3_]));
    assert_eq!(ids(&a, &q("state=returned")).await, set(&[&t3_]));
    let r = k.get("/api/v1/transfer-lists?list=inbox").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("list"));

    // The Excel export: watermark, masked numbers (never the whole one), audited.
    let res = a
        .client
        .get(format!(
            "{}/api/v1/transfers/export.xlsx?name={}",
            a.base,
            enc("欧阳")
        ))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("spreadsheetml"));
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "not a zip");
    let text = xlsx_text(&bytes);
    assert!(text.contains("导出人："), "no watermark");
    assert!(text.contains("欧阳转三") && text.contains("欧阳转四"));
    assert!(!text.contains("司马转一"));
    for n in &numbers {
        assert!(
            !text.contains(n.as_str()),
            "a whole ID number in the export"
        );
    }
    let masked_three = dangjian_server::member::idcard::mask(&numbers[2]);
    assert!(text.contains(&masked_three), "no masked number");
    let r = auditor.get("/api/v1/audit?action=transfer.export").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "transfer.export"),
        "{:?}",
        r.body
    );

    // The pages answer: records with the filters, each list.
    for path in [
        "/transfers".to_string(),
        format!("/transfers?name={}&include_sub=true", enc("司马")),
        "/transfers?print=1".to_string(),
        "/transfers/lists?list=todo".to_string(),
        "/transfers/lists?list=done".to_string(),
        "/transfers/lists?list=upcoming".to_string(),
        "/transfers/lists?list=monitor&sort=waiting_asc".to_string(),
    ] {
        let res = a
            .client
            .get(format!("{}{path}", a.base))
            .bearer_auth(&a.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let html = res.text().await.unwrap();
        assert!(html.contains("组织关系转接"), "{path}");
        assert!(!html.contains(&numbers[0]), "{path}: a whole ID number");
    }
    let res = a
        .client
        .get(format!("{}/transfers?since=2026-13-01", a.base))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("转出日期（起）"));
}

/// The text of a workbook's shared strings and first sheet.
fn xlsx_text(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("dj-xlsx-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.xlsx");
    std::fs::write(&file, bytes).unwrap();
    let mut text = String::new();
    for part in ["xl/sharedStrings.xml", "xl/worksheets/sheet1.xml"] {
        let out = std::process::Command::new("unzip")
            .arg("-p")
            .arg(&file)
            .arg(part)
            .output()
            .expect("unzip");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let _ = std::fs::remove_dir_all(&dir);
    text
}

async fn list(api: &Api, which: &str) -> BTreeSet<String> {
    ids(api, &format!("/api/v1/transfer-lists?list={which}")).await
}

#[tokio::test]
async fn records_lists_and_export_on_sqlite() {
    records_lists_and_export(&Server::demo(300, None).await).await;
}

#[tokio::test]
async fn records_lists_and_export_on_postgres() {
    records_lists_and_export(&Server::demo(300, Some(TestDb::postgres().await)).await).await;
}

/// Moves the start of a transfer's current step back by `days` (SQLite demo database).
async fn backdate(server: &Server, transfer_id: &str, days: i64) {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let since = (chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    sqlx::query("UPDATE transfers SET step_since = $1 WHERE id = $2")
        .bind(since)
        .bind(transfer_id)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// The pages at 1366×768: 查看转接情况 for the branch (password sign-in), 转接监控 for the county
/// (through the card proxy), with a transfer waiting longer than 7 days highlighted.
#[tokio::test]
async fn records_and_monitor_pages_in_the_browser() {
    use dangjian_tests::browser::Browser;
    use dangjian_tests::{current_code, CardProxy};
    let server = Server::demo(100, None).await;
    let t3 = server.account("admin", Some(3));
    let committee = CardProxy::start(&server, &server.account("admin", Some(2))).await;
    let county = CardProxy::start(&server, &server.county_admin()).await;
    let c = &committee.api;
    let b_id = {
        let general = server.account_in("admin", Some(3), "621");
        children(c, &general.org_id).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let names = ["司马转一", "欧阳转二", "上官转三", "诸葛转四"];
    let mut ids_ = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let m = member(
            c,
            &t3.org_id,
            name,
            &id_number(10 + i as u32, 600 + i as u16),
            i as u32,
        )
        .await;
        let body = if i == 3 {
            json!({"member_id": m, "kind": "out_of_province", "to_text": "外省某某县某某党支部",
                   "addressee": "外省某某县委组织部", "reason": "随迁", "date": "2026-11-02",
                   "dues_paid_to": "2026-10"})
        } else {
            json!({"member_id": m, "kind": "county", "to_org_id": b_id, "reason": "工作调动",
                   "date": format!("2026-11-0{}", i + 3), "dues_paid_to": "2026-10"})
        };
        ids_.push(transfer(c, body).await);
    }
    backdate(&server, &ids_[0], 9).await;
    backdate(&server, &ids_[3], 3).await;

    let b = Browser::start().await;
    b.goto(&server.url("/login")).await;
    b.wait_for("#login-form").await;
    b.fill("id_number", &t3.id_number).await;
    b.fill("password", &t3.password).await;
    b.fill("code", &current_code(&t3.totp_secret)).await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for("header.top .who").await;
    b.click("#transfers-link").await;
    b.wait_for("#transfer-tabs").await;
    // The committee registered them: none is the branch's to do, all four are monitored.
    assert!(b.text("#tab-monitor").await.contains('4'));
    b.click("#tab-records").await;
    b.wait_for("#transfer-search").await;
    b.fill("name", "转").await;
    b.click("#transfer-search button[type=submit]").await;
    b.wait_for("#transfer-list").await;
    let table = b.text("#transfer-list").await;
    for n in names {
        assert!(table.contains(n), "{table}");
    }
    assert!(b.exists("#export-xlsx").await);
    b.screenshot("transfer-records").await;

    b.goto(&county.url("/transfers/lists?list=monitor")).await;
    b.wait_for("#transfer-list").await;
    assert!(b.exists("#transfer-list tr.overdue .badge.overdue").await);
    let first = b.text("#transfer-list tbody tr:first-child").await;
    assert!(
        first.contains("司马转一") && first.contains("9天"),
        "{first}"
    );
    b.screenshot("transfer-monitor").await;
    // The committee's 待办: all four wait for it.
    b.goto(&committee.url("/transfers/lists")).await;
    b.wait_for("#transfer-list").await;
    assert!(b.text("#tab-todo").await.contains('4'));
    assert_eq!(
        b.client
            .find_all(fantoccini::Locator::Css("#transfer-list tbody tr"))
            .await
            .unwrap()
            .len(),
        4
    );
    b.screenshot("transfer-todo").await;
    b.close().await;
}
