//! Membership workflows through the API on both engines: SPEC §4's table of who applies and who
//! approves, the approval queue, history and recovery, the preconditions, concurrent decisions,
//! rename and the registered phone change.

use dangjian_tests::{Api, Server, TestDb};
use serde_json::{json, Value};

/// A valid synthetic ID number (GB 11643 check digit) born on 1985-MM-DD with sequence `seq`.
fn id_number(month: u32, day: u32, seq: u32) -> String {
    let body = format!("370102198{}{month:02}{day:02}{seq:03}", 5);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// Enters `n` fresh members into the branch (direct entry) and returns their ids: members that
/// may change status (neither floating nor in a transfer).
async fn movable_members(api: &Api, branch_id: &str, n: u32) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let number = id_number(1 + i % 12, 1 + i / 12, 100 + i);
        let r = api
            .post(
                "/api/v1/members",
                json!({
                    "name": format!("测试{}", ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"][i as usize % 10]),
                    "id_number": number, "ethnicity": "01", "education": "21", "category": "full",
                    "branch_id": branch_id, "joined_on": "2010-06-01", "full_on": "2011-06-01",
                    "job": "worker", "phone": format!("1380000{:04}", 2000 + i), "address": "测试地址",
                    "registered_phone": format!("1390000{:04}", 2000 + i)
                }),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        out.push(r.body);
    }
    out
}

async fn apply(api: &Api, body: Value) -> (u16, Value) {
    let r = api.post("/api/v1/applications", body).await;
    (r.status, r.body)
}

fn exit_of(member_id: &str, kind: &str) -> Value {
    json!({"kind": kind, "member_id": member_id, "date": "2026-10-01", "reason": "测试原因"})
}

async fn inbox_ids(api: &Api) -> Vec<String> {
    let r = api
        .get("/api/v1/approvals?state=pending&per_page=200")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn history_ids(api: &Api, reason: &str) -> Vec<(String, String)> {
    let r = api
        .get(&format!("/api/v1/history?reason={reason}&per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["history_id"].as_str().unwrap().to_string(),
                h["member"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn history_of(list: &[(String, String)], member_id: &str) -> String {
    list.iter()
        .find(|(_, m)| m == member_id)
        .map(|(h, _)| h.clone())
        .unwrap_or_else(|| panic!("member {member_id} not in the history list"))
}

/// SPEC §4's table, the queue and history, on one server.
async fn the_table_holds(server: &Server) {
    let t3 = server.account("admin", Some(3));
    let branch = server.sign_in(&t3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    let county = server.sign_in(&server.county_admin()).await;
    let city = server.sign_in(&server.account("admin", Some(1))).await;
    let members = movable_members(&branch, &t3.org_id, 8).await;
    let id = |i: usize| members[i]["id"].as_str().unwrap().to_string();

    // Exit 出党: applied by the branch (tier 3), approved by the committee (tier 2).
    let exit_member = id(0);
    let before = branch
        .get(&format!("/api/v1/members/{exit_member}?unmask=1"))
        .await
        .body;
    let (status, app) = apply(&branch, exit_of(&exit_member, "exit")).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["state"], "pending");
    assert_eq!(app["kind_label"], "党员出党");
    let app_id = app["id"].as_str().unwrap().to_string();
    // A second application for the same member waits for the first.
    let (status, again) = apply(&branch, exit_of(&exit_member, "death")).await;
    assert_eq!(status, 409, "{again}");
    // Only the committee sees and decides it: not the branch, not the county, not the city.
    assert!(inbox_ids(&committee).await.contains(&app_id));
    for other in [&branch, &county, &city] {
        assert!(!inbox_ids(other).await.contains(&app_id));
        let r = other
            .post(&format!("/api/v1/applications/{app_id}/approve"), json!({}))
            .await;
        assert_eq!(r.status, 403, "{:?}", r.body);
    }
    // Rejecting needs an opinion; approving records one.
    let r = committee
        .post(&format!("/api/v1/applications/{app_id}/reject"), json!({}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("opinion"));
    let r = committee
        .post(
            &format!("/api/v1/applications/{app_id}/approve"),
            json!({"opinion": "同意出党"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "approved");
    let trail: Vec<&str> = r.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(trail, ["submit", "approve"]);
    assert_eq!(
        branch
            .get(&format!("/api/v1/members/{exit_member}"))
            .await
            .status,
        404
    );
    let exits = history_ids(&branch, "exit").await;
    let exit_history = history_of(&exits, &exit_member);

    // Recovery 找回: tier 1 of the county only, with a reason; every field comes back.
    let r = committee
        .post(
            &format!("/api/v1/history/{exit_history}/recover"),
            json!({"reason": "误操作"}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = county
        .post(
            &format!("/api/v1/history/{exit_history}/recover"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("reason"));
    let r = county
        .post(
            &format!("/api/v1/history/{exit_history}/recover"),
            json!({"reason": "误操作导致出党"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let after = branch
        .get(&format!("/api/v1/members/{exit_member}?unmask=1"))
        .await
        .body;
    for field in [
        "name",
        "id_number",
        "sex",
        "ethnicity",
        "birth_date",
        "education",
        "category",
        "branch_id",
        "joined_on",
        "full_on",
        "job",
        "phone",
        "address",
        "registered_phone",
        "origin",
        "title",
        "new_social_stratum",
        "completeness",
        "created_at",
    ] {
        assert_eq!(after[field], before[field], "{field} after recovery");
    }
    let r = county
        .post(
            &format!("/api/v1/history/{exit_history}/recover"),
            json!({"reason": "再次找回"}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);

    // Stop 停止党籍: tier 3 applies, the county (tier 1) approves, not the committee.
    let stop_member = id(1);
    let (status, app) = apply(&branch, exit_of(&stop_member, "stop")).await;
    assert_eq!(status, 201, "{app}");
    let stop_id = app["id"].as_str().unwrap().to_string();
    assert!(!inbox_ids(&committee).await.contains(&stop_id));
    assert!(inbox_ids(&county).await.contains(&stop_id));
    let r = county
        .post(
            &format!("/api/v1/applications/{stop_id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    history_of(&history_ids(&branch, "stopped").await, &stop_member);

    // Death 党员死亡: approved by the committee; the committee cancels the registered phone.
    // Applied first by the county and withdrawn: a lower organisation cannot withdraw it.
    let dead = id(2);
    let (status, app) = apply(&county, exit_of(&dead, "death")).await;
    assert_eq!(status, 201, "{app}");
    let death_id = app["id"].as_str().unwrap().to_string();
    let r = branch
        .post(
            &format!("/api/v1/applications/{death_id}/withdraw"),
            json!({}),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "a lower organisation cannot withdraw it: {:?}",
        r.body
    );
    let r = county
        .post(
            &format!("/api/v1/applications/{death_id}/withdraw"),
            json!({"opinion": "重新提交"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "withdrawn");
    let r = committee
        .post(
            &format!("/api/v1/applications/{death_id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "withdrawn: {:?}", r.body);
    let (status, app) = apply(&branch, exit_of(&dead, "death")).await;
    assert_eq!(status, 201, "{app}");
    let death_id = app["id"].as_str().unwrap().to_string();
    let r = committee
        .post(
            &format!("/api/v1/applications/{death_id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let deaths = history_ids(&branch, "death").await;
    let dead_history = history_of(&deaths, &dead);
    let r = county
        .post(
            &format!("/api/v1/history/{dead_history}/cancel-phone"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "cancel phone is tier 2's: {:?}", r.body);
    let r = committee
        .post(
            &format!("/api/v1/history/{dead_history}/cancel-phone"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = committee
        .post(
            &format!("/api/v1/history/{dead_history}/cancel-phone"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "already cancelled: {:?}", r.body);

    // Other decrease 党员减少（其他原因）: the county approves; tier 1 may delete it for good.
    let other = id(3);
    let (status, app) = apply(&branch, exit_of(&other, "other_decrease")).await;
    assert_eq!(status, 201, "{app}");
    let r = county
        .post(
            &format!(
                "/api/v1/applications/{}/approve",
                app["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let others = history_ids(&branch, "other").await;
    let other_history = history_of(&others, &other);
    let r = county
        .post(
            &format!("/api/v1/history/{dead_history}/purge"),
            json!({"reason": "不应删除"}),
        )
        .await;
    assert_eq!(r.status, 409, "only other-decrease records: {:?}", r.body);
    let r = county
        .post(
            &format!("/api/v1/history/{other_history}/purge"),
            json!({"reason": "重复数据"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        branch
            .get(&format!("/api/v1/history/{other_history}"))
            .await
            .status,
        404
    );

    // Supplementary entry 补录: tier 2 only, approved by the county; the member enters.
    let person = json!({
        "name": "补录测试", "id_number": "110101199003074477", "ethnicity": "01",
        "education": "21", "category": "full", "branch_id": t3.org_id,
        "joined_on": "2015-06-01", "full_on": "2016-06-01", "job": "worker",
        "phone": "13800138123", "address": "测试地址"
    });
    let supplement = json!({"kind": "supplement", "member": person, "reason": "采集时遗漏"});
    let (status, body) = apply(&branch, supplement.clone()).await;
    assert_eq!(
        status, 403,
        "tier 3 may not apply for a supplementary entry: {body}"
    );
    let (status, body) = apply(&county, supplement.clone()).await;
    assert_eq!(status, 403, "nor tier 1: {body}");
    let (status, app) = apply(&committee, supplement).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["data"]["member"]["id_number"], "110101********4477");
    let r = county
        .post(
            &format!(
                "/api/v1/applications/{}/approve",
                app["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let found = branch
        .get(&format!(
            "/api/v1/orgs/{}/members?q=110101199003074477",
            t3.org_id
        ))
        .await;
    assert_eq!(found.body["total"], 1, "{:?}", found.body);

    // Rename review 党员改名: tier 3 applies with documents, the county decides.
    let renamed = id(4);
    let doc = branch.upload_document(&t3.org_id).await;
    let rename = json!({"kind": "rename", "member_id": renamed, "new_name": "新名字",
        "reason": "户籍改名", "attachments": [doc]});
    let (status, body) = apply(&committee, rename.clone()).await;
    assert_eq!(
        status, 403,
        "a rename review is applied for by tier 3: {body}"
    );
    let (status, app) = apply(&branch, rename.clone()).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["attachments"], json!([doc]));
    // A document belongs to one application.
    let again = json!({"kind": "rename", "member_id": id(6), "new_name": "另一名字",
        "reason": "户籍改名", "attachments": [doc]});
    let (status, body) = apply(&branch, again).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "attachments");
    let r = county
        .post(
            &format!(
                "/api/v1/applications/{}/reject",
                app["id"].as_str().unwrap()
            ),
            json!({"opinion": "材料不全"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "rejected");
    let r = branch
        .post(
            &format!("/api/v1/members/{renamed}/rename"),
            json!({"new_name": "新名字", "reason": "户籍改名",
                   "attachments": [branch.upload_document(&t3.org_id).await]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["outcome"], "review");
    let app_id = r.body["application_id"].as_str().unwrap().to_string();
    let r = county
        .post(&format!("/api/v1/applications/{app_id}/approve"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let m = branch.get(&format!("/api/v1/members/{renamed}")).await;
    assert_eq!(m.body["name"], "新名字");

    // Real-name filing 实名认证备案: tier 2 or 3; never tier 1.
    let (status, body) = apply(
        &county,
        json!({"kind": "realname", "member": {"branch_id": t3.org_id}, "reason": "x"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Correction delete 党员补删: tier 3 with a remark; the record is kept.
    let mistaken = id(5);
    let r = committee
        .post(
            &format!("/api/v1/members/{mistaken}/correction-delete"),
            json!({"reason": "重复录入"}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = branch
        .post(
            &format!("/api/v1/members/{mistaken}/correction-delete"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = branch
        .post(
            &format!("/api/v1/members/{mistaken}/correction-delete"),
            json!({"reason": "重复录入"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    history_of(&history_ids(&branch, "correction").await, &mistaken);

    // The applicant is itself the approver (the committee applies for an exit): decided as it
    // is made, both steps on the trail.
    let own = id(7);
    let (status, app) = apply(&committee, exit_of(&own, "exit")).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["state"], "approved", "{app}");
    let trail: Vec<&str> = app["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(trail, ["submit", "approve"]);
    history_of(&history_ids(&branch, "exit").await, &own);

    // Out of scope: the tier-3 admin of the general branch neither applies for nor sees them.
    let general = server
        .sign_in(&server.account_in("admin", Some(3), "621"))
        .await;
    let (status, body) = apply(&general, exit_of(&id(6), "exit")).await;
    assert_eq!(status, 404, "{body}");
    let r = general
        .get(&format!("/api/v1/applications/{death_id}"))
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(history_ids(&general, "exit").await.is_empty());
}

#[tokio::test]
async fn spec_table_queue_history_and_recovery_on_sqlite() {
    let server = Server::demo(300, None).await;
    the_table_holds(&server).await;
}

#[tokio::test]
async fn spec_table_queue_history_and_recovery_on_postgresql() {
    let server = Server::demo(300, Some(TestDb::postgres().await)).await;
    the_table_holds(&server).await;
}

/// Ten concurrent applications for one member make one; twenty concurrent approvals of it:
/// one succeeds, the others get 409; one history row and one audit record of the decision; ten
/// concurrent recoveries bring the member back once.
async fn one_decision(server: &Server) {
    let t3 = server.account("admin", Some(3));
    let branch = server.sign_in(&t3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    let members = movable_members(&branch, &t3.org_id, 1).await;
    let member = members[0]["id"].as_str().unwrap().to_string();
    // Ten applications for one member at once: one is made, the others wait for it (409).
    let applying = (0..10).map(|_| {
        let b = branch.clone();
        let body = exit_of(&member, "exit");
        tokio::spawn(async move { b.post("/api/v1/applications", body).await })
    });
    let mut made = Vec::new();
    for a in applying {
        let r = a.await.unwrap();
        match r.status {
            201 => made.push(r.body["id"].as_str().unwrap().to_string()),
            409 => assert_eq!(r.body["error"]["field"], "member_id", "{:?}", r.body),
            other => panic!("{other}: {:?}", r.body),
        }
    }
    assert_eq!(made.len(), 1, "{made:?}");
    let app_id = made.remove(0);
    let calls = (0..20).map(|_| {
        let c = committee.clone();
        let path = format!("/api/v1/applications/{app_id}/approve");
        tokio::spawn(async move { c.post(&path, json!({})).await.status })
    });
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    let rows = history_ids(&branch, "exit").await;
    assert_eq!(rows.iter().filter(|(_, m)| *m == member).count(), 1);
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor
        .get(&format!(
            "/api/v1/audit?action=application.approve&target={app_id}&per_page=50"
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["total"], 1, "{:?}", r.body);
    // Ten recoveries at once: the member comes back once.
    let county = server.sign_in(&server.county_admin()).await;
    let history = history_of(&rows, &member);
    let recovering = (0..10).map(|_| {
        let c = county.clone();
        let path = format!("/api/v1/history/{history}/recover");
        tokio::spawn(async move { c.post(&path, json!({"reason": "误操作"})).await.status })
    });
    let mut statuses = Vec::new();
    for r in recovering {
        statuses.push(r.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(
        branch
            .get(&format!("/api/v1/members/{member}"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn twenty_parallel_approvals_have_one_effect_on_sqlite() {
    one_decision(&Server::demo(300, None).await).await;
}

#[tokio::test]
async fn twenty_parallel_approvals_have_one_effect_on_postgresql() {
    one_decision(&Server::demo(300, Some(TestDb::postgres().await)).await).await;
}

#[tokio::test]
async fn a_status_change_names_the_grants_to_revoke_first() {
    let server = Server::demo(300, None).await;
    let t3 = server.account("admin", Some(3));
    let branch = server.sign_in(&t3).await;
    // The tier-3 admin is also a member of the branch.
    let r = branch
        .post(
            "/api/v1/members",
            json!({
                "name": "管理员本人", "id_number": t3.id_number, "ethnicity": "01",
                "education": "21", "category": "full", "branch_id": t3.org_id,
                "joined_on": "2012-06-01", "full_on": "2013-06-01", "job": "worker",
                "phone": "13800138124", "address": "测试地址"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let member = r.body["id"].as_str().unwrap().to_string();
    let (status, body) = apply(&branch, exit_of(&member, "exit")).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("“{}”的管理员权限", t3.org_name)),
        "{message}"
    );
    let r = branch
        .post(
            &format!("/api/v1/members/{member}/correction-delete"),
            json!({"reason": "重复录入"}),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(r.message().contains("管理员权限"), "{:?}", r.body);
}

#[tokio::test]
async fn the_registered_phone_changes_with_a_code_sent_to_it() {
    let server = Server::demo(300, None).await;
    let t3 = server.account("admin", Some(3));
    let branch = server.sign_in(&t3).await;
    let members = movable_members(&branch, &t3.org_id, 1).await;
    let member = members[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/members/{member}/registered-phone");
    let r = branch
        .post(&format!("{path}/code"), json!({"phone": "1380013"}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("phone"));
    let r = branch
        .post(&format!("{path}/code"), json!({"phone": "13912345670"}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = branch
        .post(&format!("{path}/code"), json!({"phone": "13912345670"}))
        .await;
    assert_eq!(r.status, 429, "one code a minute: {:?}", r.body);
    let code = server.outbox_code("registered_phone_sms");
    let r = branch
        .post(&path, json!({"phone": "13912345670", "code": "000000"}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("code"));
    // The code is used once, even by two saves at the same time.
    let saves = (0..2).map(|_| {
        let b = branch.clone();
        let p = path.clone();
        let c = code.clone();
        tokio::spawn(async move {
            b.post(&p, json!({"phone": "13912345670", "code": c}))
                .await
                .status
        })
    });
    let mut statuses = Vec::new();
    for s in saves {
        statuses.push(s.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [204, 400]);
    let m = branch
        .get(&format!("/api/v1/members/{member}?unmask=1"))
        .await;
    assert_eq!(m.body["registered_phone"], "13912345670");
}

/// Real-name verification (SPEC §9) on the demo as people run it: an entry the registry does
/// not confirm is refused and comes in through a real-name filing with the signed form,
/// approved by the county; a person the registry knows enters at once; a supplementary entry
/// is checked too; a rename to the registry's name completes at once.
#[tokio::test]
async fn entries_and_renames_are_checked_against_the_real_name_registry() {
    let server = Server::demo_realname(100, None).await;
    let t3 = server.account("admin", Some(3));
    let branch = server.sign_in(&t3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    let county = server.sign_in(&server.county_admin()).await;
    let known: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(server.data.path().join("demo-realname.json")).unwrap(),
    )
    .unwrap();
    let person = |i: usize, name: &str| {
        json!({"name": name, "id_number": known[i]["id_number"], "ethnicity": "01",
               "education": "21", "category": "full", "branch_id": t3.org_id,
               "joined_on": "2015-06-01", "full_on": "2016-06-01", "job": "worker",
               "phone": format!("1380013{:04}", 8000 + i), "address": "测试地址"})
    };
    // The registry's name: entered at once.
    let name0 = known[0]["name"].as_str().unwrap();
    let r = branch.post("/api/v1/members", person(0, name0)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Another name for a known number: refused, saying what to do.
    let r = branch.post("/api/v1/members", person(1, "冒名顶替")).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "realname_mismatch");
    assert!(r.message().contains("实名认证备案"), "{:?}", r.body);
    // A supplementary entry is checked the same way.
    let (status, body) = apply(
        &committee,
        json!({"kind": "supplement", "member": person(1, "冒名顶替"), "reason": "遗漏"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Real-name filing: the signed collection form is required, the county files it.
    let (status, body) = apply(
        &branch,
        json!({"kind": "realname", "member": person(1, "曾用名"), "reason": "户籍未更新"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "attachments");
    let form = branch.upload_document(&t3.org_id).await;
    let (status, app) = apply(
        &branch,
        json!({"kind": "realname", "member": person(1, "曾用名"), "reason": "户籍未更新",
               "attachments": [form]}),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    assert!(inbox_ids(&county)
        .await
        .contains(&app["id"].as_str().unwrap().to_string()));
    // The county reads the form.
    let doc = county.get(&format!("/api/v1/attachments/{form}")).await;
    assert_eq!(doc.status, 200);
    let r = county
        .post(
            &format!(
                "/api/v1/applications/{}/approve",
                app["id"].as_str().unwrap()
            ),
            json!({"opinion": "已备案"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let found = branch
        .get(&format!(
            "/api/v1/orgs/{}/members?q={}",
            t3.org_id,
            known[1]["id_number"].as_str().unwrap()
        ))
        .await;
    assert_eq!(found.body["total"], 1, "{:?}", found.body);
    let member = found.body["items"][0]["id"].as_str().unwrap().to_string();
    // A rename to the registry's name completes at once.
    let name1 = known[1]["name"].as_str().unwrap();
    let r = branch
        .post(
            &format!("/api/v1/members/{member}/rename"),
            json!({"new_name": name1, "reason": "恢复户籍姓名"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["outcome"], "done");
    let m = branch.get(&format!("/api/v1/members/{member}")).await;
    assert_eq!(m.body["name"], name1);
}
