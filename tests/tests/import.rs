//! Member summary-sheet import 导入汇总表 and rosters 名册 on both engines: a generated
//! 1,000-row sheet with 3 bad rows (the report names exactly those rows with field and reason;
//! nothing is written before confirmation), confirmation (997 written, all or nothing; two at
//! once give one effect; rows that became duplicates since validation refuse it), a server
//! killed during the confirmation, and the rosters' rows and watermark. Every person is
//! synthetic.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use dangjian_tests::sheet::{col, person, upload, workbook};
use dangjian_tests::{Api, Server, TestDb};
use serde_json::{json, Value};

/// Uploads and waits for the validation to finish; returns the import.
async fn validated(api: &Api, org_id: &str, rows: &[Vec<String>]) -> Value {
    let (status, body) = upload(api, org_id, workbook(rows)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        let r = api.get(&format!("/api/v1/import/members/{id}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        if r.body["state"] != "validating" {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("import {id} still validating");
}

async fn member_count(api: &Api, org_id: &str) -> i64 {
    let r = api
        .get(&format!(
            "/api/v1/orgs/{org_id}/members?include_sub=1&per_page=1"
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["total"].as_i64().unwrap()
}

/// Active branches (631/632) below `org_id`, two levels down at most: (id, code).
async fn branches(api: &Api, org_id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut queue = vec![org_id.to_string()];
    for _ in 0..2 {
        let mut next = Vec::new();
        for parent in queue {
            let r = api
                .get(&format!("/api/v1/orgs/{parent}/children?per_page=200"))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            for c in r.body["items"].as_array().unwrap() {
                let category = c["category"].as_str().unwrap();
                if c["status"] == "active" && (category == "631" || category == "632") {
                    out.push((
                        c["id"].as_str().unwrap().to_string(),
                        c["code"].as_str().unwrap().to_string(),
                    ));
                } else {
                    next.push(c["id"].as_str().unwrap().to_string());
                }
            }
        }
        queue = next;
    }
    assert!(!out.is_empty(), "no branch below {org_id}");
    out
}

/// `n` rows of batch `batch`, spread over `branches`.
fn rows(batch: u32, n: u32, branches: &[(String, String)]) -> Vec<Vec<String>> {
    (0..n)
        .map(|i| person(batch, i, &branches[i as usize % branches.len()].1))
        .collect()
}

async fn confirm(api: &Api, id: &str) -> (u16, Value) {
    let r = api
        .post(&format!("/api/v1/import/members/{id}/confirm"), json!({}))
        .await;
    (r.status, r.body)
}

/// The cells of the first sheet of a workbook, as text.
fn cells(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes.to_vec())).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

async fn download(api: &Api, path: &str) -> (u16, Vec<u8>) {
    let res = api
        .client
        .get(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

async fn import_and_rosters(server: Server) {
    let t2 = server.account("admin", Some(2));
    let api = server.sign_in(&t2).await;
    let committee = t2.org_id.clone();
    let branches = branches(&api, &committee).await;
    let before = member_count(&api, &committee).await;

    // The template: a workbook whose heading is the sheet's columns, with 填写说明.
    let (status, template) = download(&api, "/api/v1/import/members/template.xlsx").await;
    assert_eq!(status, 200);
    let heading = &cells(&template)[0];
    assert_eq!(heading[0], "党组织代码*");
    assert!(heading.iter().any(|h| h == "公民身份证号*"));
    let names = Xlsx::new(Cursor::new(template.clone()))
        .map(|b: Xlsx<_>| b.sheet_names())
        .unwrap();
    assert!(names.iter().any(|n| n == "填写说明"), "{names:?}");

    // 1,000 rows, 3 of them bad: a digit in the name (row 102), an unknown ethnicity (row
    // 502), the ID number of row 12 again (row 902).
    let mut sheet = rows(0, 1000, &branches);
    sheet[100][col("name")] = "导测1号".into();
    sheet[500][col("ethnicity")] = "火星族".into();
    sheet[900][col("id_number")] = sheet[10][col("id_number")].clone();
    let import = validated(&api, &committee, &sheet).await;
    assert_eq!(import["state"], "pending", "{import}");
    assert_eq!(import["total_rows"], 1000);
    assert_eq!(import["good_rows"], 997, "{}", import["problems"][0]);
    assert_eq!(import["bad_rows"], 3);
    let problems: Vec<(i64, String, String)> = import["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["row"].as_i64().unwrap(),
                p["field"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!((problems[0].0, problems[0].1.as_str()), (102, "姓名"));
    assert!(problems[0].2.contains("数字"), "{problems:?}");
    assert_eq!((problems[1].0, problems[1].1.as_str()), (502, "民族"));
    assert!(problems[1].2.contains("火星族"), "{problems:?}");
    assert_eq!(
        (problems[2].0, problems[2].1.as_str()),
        (902, "公民身份证号")
    );
    assert!(problems[2].2.contains("第12行"), "{problems:?}");
    // Nothing written before confirmation.
    assert_eq!(member_count(&api, &committee).await, before);
    let id = import["id"].as_str().unwrap().to_string();

    // Outside the import's organisation: not found; a branch admin below sees nothing either.
    let t3 = server.sign_in(&server.account("admin", Some(3))).await;
    let (status, _) = confirm(&t3, &id).await;
    assert_eq!(status, 404);
    assert_eq!(
        t3.get(&format!("/api/v1/import/members/{id}")).await.status,
        404
    );

    // Two confirmations at once: one writes, the other finds nothing to do.
    let (a, b) = tokio::join!(confirm(&api, &id), confirm(&api, &id));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let done = if a.0 == 200 { &a.1 } else { &b.1 };
    assert_eq!(done["written"], 997);
    assert_eq!(done["import"]["state"], "confirmed");
    assert_eq!(member_count(&api, &committee).await, before + 997);
    let (status, _) = confirm(&api, &id).await;
    assert_eq!(status, 409);
    assert_eq!(member_count(&api, &committee).await, before + 997);
    // A sample: row 2's person is found by ID number, with the sheet's name and branch.
    let sample = &sheet[0];
    let r = api
        .get(&format!(
            "/api/v1/orgs/{committee}/members?include_sub=1&q={}",
            sample[col("id_number")]
        ))
        .await;
    assert_eq!(r.body["total"], 1, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["name"], sample[col("name")].as_str());
    assert_eq!(r.body["items"][0]["branch_id"], branches[0].0.as_str());
    // The bad rows were not written.
    let r = api
        .get(&format!(
            "/api/v1/orgs/{committee}/members?include_sub=1&q={}",
            sheet[500][col("id_number")]
        ))
        .await;
    assert_eq!(r.body["total"], 0, "{:?}", r.body);

    // Rows that became duplicates after validation refuse the whole confirmation.
    let small = rows(1, 3, &branches);
    let stale = validated(&api, &committee, &small).await;
    assert_eq!(stale["good_rows"], 3, "{stale}");
    let direct = api
        .post(
            "/api/v1/members",
            json!({
                "name": small[1][col("name")], "id_number": small[1][col("id_number")],
                "ethnicity": "01", "education": "21", "category": "full",
                "branch_id": branches[1 % branches.len()].0, "joined_on": small[1][col("joined_on")],
                "full_on": small[1][col("full_on")], "job": "worker", "phone": "13800138000",
                "address": "测试地址"
            }),
        )
        .await;
    assert_eq!(direct.status, 201, "{:?}", direct.body);
    let stale_id = stale["id"].as_str().unwrap();
    let (status, body) = confirm(&api, stale_id).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("第3行 公民身份证号"), "{message}");
    assert_eq!(member_count(&api, &committee).await, before + 998);
    // 取消: the pending import ends; nothing more is written.
    let r = api
        .post(
            &format!("/api/v1/import/members/{stale_id}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "cancelled");
    assert_eq!(confirm(&api, stale_id).await.0, 409);

    // An unreadable file and a missing heading are refused or fail with the reason.
    let (status, body) = upload(&api, &committee, b"not a workbook".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "file");
    let (status, body) = upload(&api, &branches[0].0, workbook(&[])).await;
    assert_eq!(status, 202, "{body}");
    // A branch code outside the import's organisation is named.
    let mut outside = rows(2, 1, &branches);
    outside[0][col("org_code")] = "99999999".into();
    let r = validated(&api, &branches[0].0, &outside).await;
    assert_eq!(r["bad_rows"], 1, "{r}");
    assert_eq!(r["problems"][0]["field"], "党组织代码");

    // 党员名册 of the subtree: watermark, every member, masked ID numbers.
    let total = member_count(&api, &committee).await;
    let (status, bytes) = download(
        &api,
        &format!("/api/v1/orgs/{committee}/members/roster.xlsx?include_sub=true"),
    )
    .await;
    assert_eq!(status, 200);
    let roster = cells(&bytes);
    assert!(roster[0][0].starts_with("导出人："), "{:?}", roster[0]);
    assert_eq!(roster[1][1], "姓名");
    assert_eq!(roster.len() as i64 - 2, total);
    let masked = &sample[col("id_number")];
    let masked = format!("{}********{}", &masked[..6], &masked[14..]);
    assert!(
        roster.iter().any(|r| r[11] == masked),
        "no row with {masked}"
    );
    assert!(!roster
        .iter()
        .any(|r| r.iter().any(|c| c == &sample[col("id_number")])));
    // Without 包含下级: the committee itself keeps no members.
    let (_, bytes) = download(
        &api,
        &format!("/api/v1/orgs/{committee}/members/roster.xlsx"),
    )
    .await;
    assert_eq!(cells(&bytes).len(), 2);
    // 党组织名册: the committee, its children (and with 包含下级 every branch) with counts.
    let (status, bytes) = download(
        &api,
        &format!("/api/v1/orgs/{committee}/roster.xlsx?include_sub=true"),
    )
    .await;
    assert_eq!(status, 200);
    let orgs = cells(&bytes);
    assert!(orgs[0][0].starts_with("导出人："));
    assert_eq!(orgs[1][3], "党组织代码");
    let codes: BTreeSet<&str> = orgs[2..].iter().map(|r| r[3].as_str()).collect();
    for (_, code) in &branches {
        assert!(codes.contains(code.as_str()), "{code} missing");
    }
    // The committee's own row counts the whole subtree.
    assert_eq!(orgs[2][8], total.to_string(), "{:?}", orgs[2]);
    // Outside the scope: refused.
    let (status, _) = download(
        &t3,
        &format!("/api/v1/orgs/{committee}/roster.xlsx?include_sub=true"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = download(
        &t3,
        &format!("/api/v1/orgs/{committee}/members/roster.xlsx"),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn import_and_rosters_on_sqlite() {
    import_and_rosters(Server::demo(60, None).await).await;
}

#[tokio::test]
async fn import_and_rosters_on_postgresql() {
    import_and_rosters(Server::demo(60, Some(TestDb::postgres().await)).await).await;
}

/// A server killed during the confirmation: afterwards either every good row is there and the
/// import is confirmed, or none is and it is still pending (and confirms then).
#[tokio::test]
async fn a_killed_confirmation_leaves_all_rows_or_none() {
    let mut server = Server::demo(60, None).await;
    let t2 = server.account("admin", Some(2));
    let mut api = server.sign_in(&t2).await;
    let committee = t2.org_id.clone();
    let branches = branches(&api, &committee).await;
    for round in 0..3u32 {
        let before = member_count(&api, &committee).await;
        let import = validated(&api, &committee, &rows(3 + round, 1000, &branches)).await;
        assert_eq!(import["good_rows"], 1000, "{import}");
        let id = import["id"].as_str().unwrap().to_string();
        let target = api.clone();
        let url_id = id.clone();
        let pending = tokio::spawn(async move { confirm(&target, &url_id).await });
        tokio::time::sleep(Duration::from_millis([0, 20, 80][round as usize])).await;
        pending.abort();
        server = server.kill_and_restart();
        api = api.at(&server);
        let after = member_count(&api, &committee).await;
        let state = api.get(&format!("/api/v1/import/members/{id}")).await.body["state"].clone();
        if state == "confirmed" {
            assert_eq!(after, before + 1000, "round {round}");
        } else {
            assert_eq!(state, "pending", "round {round}");
            assert_eq!(after, before, "round {round}");
            let (status, body) = confirm(&api, &id).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(member_count(&api, &committee).await, before + 1000);
        }
    }
}
