//! Organisation-relationship transfers through the API on both engines (SPEC §6): the path
//! node by node between two cities, only the current node acting, a return and a resubmission,
//! the letter once the source side has approved, the receipt moving the member atomically (also
//! across a killed server), the locks, inbound registration, transfers out of the platform,
//! withdraw, void, re-route, abnormal completion, and concurrent decisions.

use dangjian_tests::{synthetic_id_number, Api, DemoAccount, Server, TestDb};
use serde_json::{json, Value};

/// The other branches directly below the tier-2 demo committee (beside the tier-3 admin's).
async fn sibling_branches(server: &Server, committee: &Api) -> Vec<String> {
    let (t2, t3) = (
        server.account("admin", Some(2)),
        server.account("admin", Some(3)),
    );
    committee
        .get(&format!("/api/v1/orgs/{}/children?per_page=100", t2.org_id))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["category"] == "631" && o["id"] != t3.org_id.as_str())
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

const NAMES: [&str; 12] = [
    "甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸", "子", "丑",
];

/// Enters a fresh member into a branch; returns its id.
async fn new_member(api: &Api, branch_id: &str, seq: u32) -> String {
    let r = api
        .post(
            "/api/v1/members",
            json!({
                "name": format!("转接{}", NAMES[seq as usize % NAMES.len()]), "id_number": synthetic_id_number(seq),
                "ethnicity": "01", "education": "21", "category": "full", "branch_id": branch_id,
                "joined_on": "2010-06-01", "full_on": "2011-06-01", "job": "worker",
                "phone": format!("1380013{seq:04}"), "address": "测试地址"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

fn outbound(member: &str, kind: &str, to_org_id: &str) -> Value {
    json!({
        "member_id": member, "kind": kind, "to_org_id": to_org_id, "reason": "工作调动",
        "date": "2026-11-20", "dues_paid_to": "2026-10",
        "contacts": {
            "source": {"contact": "王联系", "phone": "0531-85859202"},
            "committee": {"contact": "李组织", "phone": "0531-85859203", "fax": "0531-85859888",
                          "postcode": "250022", "address": "泉城市东岭县测试路1号"},
            "receiving": {"contact": "赵接收", "phone": "13800138000"}
        }
    })
}

async fn decide(api: &Api, id: &str, decision: &str, opinion: &str) -> (u16, Value) {
    let r = api
        .post(
            &format!("/api/v1/transfers/{id}/decision"),
            json!({"decision": decision, "opinion": opinion}),
        )
        .await;
    (r.status, r.body)
}

/// The cast of a transfer from 东岭县 (泉城市) to 云台县 (海川市): an admin on every node.
struct Cast {
    root_id: String,
    root: Api,
    officer: Api,
    /// (organisation id, admin) along the path, source branch first.
    path: Vec<(String, Api)>,
}

const TARGET_PATH: [&str; 4] = ["03702", "0370201", "037020101", "03702010102"];

async fn cast(server: &Server) -> Cast {
    let security = server.account("security", None);
    let officer = server.sign_in(&security).await;
    let root_account = server.new_admin(&officer, &security.org_id, 1).await;
    let root = server.sign_in(&root_account).await;
    let mut path: Vec<(String, Api)> = Vec::new();
    let source: [DemoAccount; 4] = [
        server.account("admin", Some(3)),
        server.account("admin", Some(2)),
        server.county_admin(),
        server.account("admin", Some(1)),
    ];
    for a in source {
        path.push((a.org_id.clone(), server.sign_in(&a).await));
    }
    path.push((security.org_id.clone(), root.clone()));
    for (i, code) in TARGET_PATH.iter().enumerate() {
        let id = root.org_by_code(&security.org_id, code).await;
        let admin = server.new_admin(&officer, &id, 10 + i as u32).await;
        path.push((id, server.sign_in(&admin).await));
    }
    Cast {
        root_id: security.org_id,
        root,
        officer,
        path,
    }
}

async fn view(api: &Api, id: &str) -> Value {
    let r = api.get(&format!("/api/v1/transfers/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// Where the member is: (the source admin sees it, the target admin sees it, its branch).
async fn whereabouts(source: &Api, target: &Api, member: &str) -> (bool, bool, String) {
    let a = source.get(&format!("/api/v1/members/{member}")).await;
    let b = target.get(&format!("/api/v1/members/{member}")).await;
    let branch = [&a, &b]
        .iter()
        .find(|r| r.status == 200)
        .map(|r| r.body["branch_id"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    (a.status == 200, b.status == 200, branch)
}

async fn between_cities(server: Server) {
    let c = cast(&server).await;
    let ids: Vec<&str> = c.path.iter().map(|(id, _)| id.as_str()).collect();
    let (source, target) = (&c.path[0].1, &c.path[8].1);
    let member = new_member(source, ids[0], 1).await;

    let r = source
        .post("/api/v1/transfers", outbound(&member, "province", ids[8]))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let t = r.body["id"].as_str().unwrap().to_string();
    // The path: the branch up to the province (the lowest common ancestor) and down.
    let path: Vec<&str> = r.body["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["org_id"].as_str().unwrap())
        .collect();
    assert_eq!(path, ids);
    assert_eq!(r.body["current_step"], 1);
    assert_eq!(r.body["state"], "active");
    assert_eq!(r.body["addressee"], "中共海川市委员会");
    assert!(r.body["letter_number"].is_null());
    // The member is locked: no second transfer, no status change, no change of the letter's
    // fields — each refusal names the transfer.
    let again = source
        .post("/api/v1/transfers", outbound(&member, "province", ids[8]))
        .await;
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert!(
        again.message().contains("正在办理组织关系转接"),
        "{:?}",
        again.body
    );
    let exit = source
        .post(
            "/api/v1/applications",
            json!({"kind": "exit", "member_id": member, "date": "2026-11-01", "reason": "测试"}),
        )
        .await;
    assert_eq!(exit.status, 409, "{:?}", exit.body);
    let edit = source
        .patch(
            &format!("/api/v1/members/{member}"),
            json!({"category": "probationary", "full_on": ""}),
        )
        .await;
    assert_eq!(edit.status, 409, "{:?}", edit.body);
    assert!(edit.message().contains("转接"), "{:?}", edit.body);

    let mut step = 1usize;
    let mut returned = false;
    while step < 8 {
        // Only the current node acts: every other admin on the path is refused.
        for (k, (_, api)) in c.path.iter().enumerate() {
            if k != step {
                let (status, body) = decide(api, &t, "approve", "越级").await;
                assert_eq!(status, 403, "node {k} at step {step}: {body}");
            }
        }
        // Nobody outside the path sees the transfer... but the root sees it (it is a node).
        if step == 6 && !returned {
            // One return: 云台县 sends it back to 海川市 with an opinion.
            let (status, body) = decide(&c.path[6].1, &t, "return", "").await;
            assert_eq!(status, 400, "a return needs an opinion: {body}");
            let (status, body) = decide(&c.path[6].1, &t, "return", "请补充联系方式").await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["current_step"], 5);
            returned = true;
            step = 5;
            continue;
        }
        let (status, body) = decide(&c.path[step].1, &t, "approve", "同意").await;
        assert_eq!(status, 200, "step {step}: {body}");
        // The member stays at the source until the receipt.
        let (at_source, at_target, branch) = whereabouts(source, target, &member).await;
        assert!(at_source && !at_target && branch == ids[0]);
        // The letter is issued once the source side (up to the province) has approved.
        assert_eq!(
            body["letter_number"].is_string(),
            step >= 4,
            "step {step}: {body}"
        );
        step += 1;
    }
    let v = view(target, &t).await;
    assert_eq!(v["current_step"], 8);
    assert_eq!(v["can"]["receive"], true);
    assert_eq!(v["can"]["decide"], false);
    // The receiver cannot "approve", only receive or return.
    let (status, _) = decide(target, &t, "approve", "同意").await;
    assert_eq!(status, 409);
    let trail: Vec<&str> = v["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(trail.iter().filter(|a| **a == "return").count(), 1);
    assert_eq!(trail[0], "submit");
    // The letter as a document.
    let letter = target.get(&format!("/api/v1/transfers/{t}/letter")).await;
    assert_eq!(letter.status, 200, "{:?}", letter.body);
    // Receipt by anyone but the target branch: refused.
    for (k, (_, api)) in c.path.iter().enumerate().take(8) {
        let r = api
            .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
            .await;
        assert_eq!(r.status, 403, "node {k} receives: {:?}", r.body);
    }
    let r = target
        .post(
            &format!("/api/v1/transfers/{t}/receive"),
            json!({"opinion": "已接收"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "completed");
    let (at_source, at_target, branch) = whereabouts(source, target, &member).await;
    assert!(!at_source && at_target && branch == ids[8]);
    let m = target.get(&format!("/api/v1/members/{member}")).await;
    assert_eq!(m.body["in_transfer"], false);
    // Receiving twice has no second effect.
    let r = target
        .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // An admin of another county sees nothing of it.
    let other = server.account_in("admin", Some(3), "621");
    let _ = other;
    let _ = (&c.root, &c.officer, &c.root_id);
}

#[tokio::test]
async fn a_transfer_between_cities_goes_node_by_node_on_sqlite() {
    between_cities(Server::demo(60, None).await).await;
}

#[tokio::test]
async fn a_transfer_between_cities_goes_node_by_node_on_postgresql() {
    between_cities(Server::demo(60, Some(TestDb::postgres().await)).await).await;
}

/// Concurrent approvals by the current node, and concurrent starts for one member: one effect.
async fn concurrency(server: Server) {
    let t3 = server.account("admin", Some(3));
    let source = server.sign_in(&t3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    // A branch-to-branch transfer inside one basic committee: one step, by the committee.
    let sibling = sibling_branches(&server, &committee).await.remove(0);
    let member = new_member(&source, &t3.org_id, 2).await;
    let starts = (0..10).map(|_| {
        let api = source.clone();
        let body = outbound(&member, "county", &sibling);
        async move { api.post("/api/v1/transfers", body).await }
    });
    let results = futures_util::future::join_all(starts).await;
    let created: Vec<&dangjian_tests::Reply> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(results.iter().all(|r| r.status == 201 || r.status == 409));
    let t = created[0].body["id"].as_str().unwrap().to_string();
    assert_eq!(created[0].body["path"].as_array().unwrap().len(), 3);
    let approvals = (0..20).map(|_| {
        let api = committee.clone();
        let t = t.clone();
        async move { decide(&api, &t, "approve", "同意").await.0 }
    });
    let statuses = futures_util::future::join_all(approvals).await;
    // One effect: the others lost the race (409) or arrived when the transfer had already
    // moved on to the next node, whose turn it now is (403).
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 403, 409].contains(s)),
        "{statuses:?}"
    );
    let v = view(&committee, &t).await;
    let approvals = v["trail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "approve")
        .count();
    assert_eq!(approvals, 1);
    assert_eq!(v["current_step"], 2);
    assert!(v["letter_number"].is_string());
    // Ten receipts at once by the target branch: one moves the member.
    let officer = server.sign_in(&server.account("security", None)).await;
    let receiver = server
        .sign_in(&server.new_admin(&officer, &sibling, 60).await)
        .await;
    let receipts = (0..10).map(|_| {
        let api = receiver.clone();
        let t = t.clone();
        async move {
            api.post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
                .await
                .status
        }
    });
    let statuses = futures_util::future::join_all(receipts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}"
    );
    let v = view(&receiver, &t).await;
    let receipts = v["trail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "receive")
        .count();
    assert_eq!(receipts, 1);
    let m = receiver.get(&format!("/api/v1/members/{member}")).await;
    assert_eq!(m.body["branch_id"], sibling.as_str());
    assert_eq!(
        source
            .get(&format!("/api/v1/members/{member}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn concurrent_starts_and_approvals_have_one_effect_on_sqlite() {
    concurrency(Server::demo(60, None).await).await;
}

#[tokio::test]
async fn concurrent_starts_and_approvals_have_one_effect_on_postgresql() {
    concurrency(Server::demo(60, Some(TestDb::postgres().await)).await).await;
}

/// The lifecycle's other ends: withdraw before the first approval, void after a return to the
/// source, resubmission, re-route by a node above, abnormal completion by tier 1, transfers out
/// of the platform and inbound registration.
async fn other_ends(server: Server) {
    let t3 = server.account("admin", Some(3));
    let t2 = server.account("admin", Some(2));
    let source = server.sign_in(&t3).await;
    let committee = server.sign_in(&t2).await;
    let county = server.sign_in(&server.county_admin()).await;
    let city = server.sign_in(&server.account("admin", Some(1))).await;
    let branches = sibling_branches(&server, &committee).await;
    let (sibling, sibling2) = (branches[0].clone(), branches[1].clone());

    // Withdraw before the first approval; then no longer.
    let m1 = new_member(&source, &t3.org_id, 3).await;
    let t = source
        .post("/api/v1/transfers", outbound(&m1, "county", &sibling))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = source
        .post(
            &format!("/api/v1/transfers/{t}/withdraw"),
            json!({"opinion": "填错"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "withdrawn");
    let m = source.get(&format!("/api/v1/members/{m1}")).await;
    assert_eq!(m.body["in_transfer"], false);

    // A return to the source, then a void; a second transfer may then start.
    let t = source
        .post("/api/v1/transfers", outbound(&m1, "county", &sibling))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = decide(&committee, &t, "return", "接收支部有误").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "returned");
    let r = source
        .post(&format!("/api/v1/transfers/{t}/withdraw"), json!({}))
        .await;
    assert_eq!(
        r.status, 409,
        "a returned transfer is voided, not withdrawn"
    );
    let r = source
        .post(
            &format!("/api/v1/transfers/{t}/void"),
            json!({"opinion": "重新办理"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "voided");

    // Resubmission after a return; approval; withdraw is no longer possible.
    let t = source
        .post("/api/v1/transfers", outbound(&m1, "county", &sibling))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    decide(&committee, &t, "return", "请核对").await;
    let r = source
        .post(
            &format!("/api/v1/transfers/{t}/resubmit"),
            json!({"opinion": "已核对"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "active");
    assert_eq!(r.body["current_step"], 1);
    let (status, _) = decide(&committee, &t, "approve", "同意").await;
    assert_eq!(status, 200);
    let r = source
        .post(&format!("/api/v1/transfers/{t}/withdraw"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);

    // Re-route by a node above the current one (the committee, above the target branch).
    let r = source
        .post(
            &format!("/api/v1/transfers/{t}/reroute"),
            json!({"to_org_id": sibling2, "opinion": "改转"}),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "the source branch is not above the target: {:?}",
        r.body
    );
    let r = committee
        .post(
            &format!("/api/v1/transfers/{t}/reroute"),
            json!({"to_org_id": sibling2, "opinion": "接收支部调整"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["to_org_id"], sibling2.as_str());
    assert_eq!(
        r.body["path"].as_array().unwrap().last().unwrap()["org_id"],
        sibling2.as_str()
    );

    // Abnormal completion: tier 1 only, with a reason; the member stays.
    let r = committee
        .post(
            &format!("/api/v1/transfers/{t}/complete-abnormal"),
            json!({"reason": "测试"}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = county
        .post(
            &format!("/api/v1/transfers/{t}/complete-abnormal"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = county
        .post(
            &format!("/api/v1/transfers/{t}/complete-abnormal"),
            json!({"reason": "接收方已撤销"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "abnormal");
    let m = source.get(&format!("/api/v1/members/{m1}")).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["in_transfer"], false);

    // Out of the platform: the path climbs to the root; when the root has approved, the
    // member moves to history with reason 转出.
    let security = server.account("security", None);
    let officer = server.sign_in(&security).await;
    let root = server
        .sign_in(&server.new_admin(&officer, &security.org_id, 30).await)
        .await;
    let m2 = new_member(&source, &t3.org_id, 4).await;
    let mut body = outbound(&m2, "out_of_province", "");
    body["to_org_id"] = Value::Null;
    let r = source.post("/api/v1/transfers", body.clone()).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"to_text") && fields.contains(&"addressee"),
        "{fields:?}"
    );
    body["to_text"] = json!("中共某省某市某单位委员会第一党支部");
    body["addressee"] = json!("中共某省委组织部");
    let r = source.post("/api/v1/transfers", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let t = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["path"].as_array().unwrap().len(), 5);
    for api in [&committee, &county, &city] {
        let (status, body) = decide(api, &t, "approve", "同意").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = decide(&root, &t, "approve", "同意").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "completed");
    assert!(body["letter_number"].is_string());
    assert_eq!(
        source.get(&format!("/api/v1/members/{m2}")).await.status,
        404
    );
    let h = source.get("/api/v1/history?reason=transferred_out").await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    assert!(h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["member"]["id"] == m2.as_str()));

    // Inbound registration: an ID number already in the living database stops it, naming
    // where the member is; a new one goes root → … → target branch, received into it.
    let existing = source
        .get(&format!("/api/v1/members/{m1}?unmask=true"))
        .await;
    let existing_id = existing.body["id_number"].as_str().unwrap().to_string();
    let inbound = |id_number: &str, name: &str| {
        json!({
            "name": name, "id_number": id_number, "kind": "from_other_province",
            "from_text": "中共某省某县委员会第三党支部", "to_org_id": t3.org_id,
            "reason": "工作调动", "date": "2026-11-20", "letter_number": "第202611000000000001号",
            "member": {"ethnicity": "01", "education": "21", "category": "full",
                       "joined_on": "2012-07-01", "full_on": "2013-07-01", "job": "worker",
                       "phone": "13800138999", "address": "测试地址"}
        })
    };
    let r = committee
        .post(
            "/api/v1/transfers/inbound",
            inbound(&existing_id, "重复人员"),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(r.message().contains("已在“"), "{:?}", r.body);
    let r = source
        .post(
            "/api/v1/transfers/inbound",
            inbound(&synthetic_id_number(7), "转入人员"),
        )
        .await;
    assert_eq!(
        r.status, 403,
        "tier 3 has no transfer authority: {:?}",
        r.body
    );
    let r = committee
        .post(
            "/api/v1/transfers/inbound",
            inbound(&synthetic_id_number(7), "转入人员"),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let t = r.body["id"].as_str().unwrap().to_string();
    // root → city → county → committee (registered: passes) → branch
    assert_eq!(r.body["path"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["current_step"], 0);
    for api in [&root, &city, &county] {
        let (status, body) = decide(api, &t, "approve", "同意").await;
        assert_eq!(status, 200, "{body}");
    }
    let v = view(&source, &t).await;
    assert_eq!(
        v["current_step"], 4,
        "the registering committee's node passed: {v}"
    );
    let r = source
        .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new_member_id = r.body["member_id"].as_str().unwrap().to_string();
    let m = source
        .get(&format!("/api/v1/members/{new_member_id}"))
        .await;
    assert_eq!(m.status, 200);
    assert_eq!(m.body["name"], "转入人员");

    // A committee marked 自动审核 passes at once: the transfer waits at the target branch at
    // once, the letter issued, the trail saying so. The branch may not mark its committee.
    let settings = format!("/api/v1/orgs/{}/transfer-settings", t2.org_id);
    let r = source
        .send(
            reqwest::Method::PUT,
            &settings,
            Some(json!({"auto_approve": true})),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = committee
        .send(
            reqwest::Method::PUT,
            &settings,
            Some(json!({"auto_approve": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(committee.get(&settings).await.body["auto_approve"], true);
    let m3 = new_member(&source, &t3.org_id, 5).await;
    let r = source
        .post("/api/v1/transfers", outbound(&m3, "county", &sibling))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["current_step"], 2);
    assert_eq!(r.body["path"][1]["state"], "auto");
    assert!(r.body["letter_number"].is_string());
    assert!(r.body["trail"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["action"] == "auto"));
}

#[tokio::test]
async fn withdraw_void_reroute_abnormal_outside_and_inbound_on_sqlite() {
    other_ends(Server::demo(60, None).await).await;
}

#[tokio::test]
async fn withdraw_void_reroute_abnormal_outside_and_inbound_on_postgresql() {
    other_ends(Server::demo(60, Some(TestDb::postgres().await)).await).await;
}

/// Kill the server between steps, and during the receipt: the member is always in exactly one
/// place, the transfer's state agrees with it.
#[tokio::test]
async fn a_killed_server_leaves_the_member_in_exactly_one_place() {
    let mut server = Server::demo(60, None).await;
    let t3 = server.account("admin", Some(3));
    let t2 = server.account("admin", Some(2));
    let mut source = server.sign_in(&t3).await;
    let mut committee = server.sign_in(&t2).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let sibling = sibling_branches(&server, &committee).await.remove(0);
    let mut receiver = server
        .sign_in(&server.new_admin(&officer, &sibling, 40).await)
        .await;
    for round in 0..3u32 {
        let member = new_member(&source, &t3.org_id, 20 + round).await;
        let t = source
            .post("/api/v1/transfers", outbound(&member, "county", &sibling))
            .await
            .body["id"]
            .as_str()
            .unwrap()
            .to_string();
        server = server.kill_and_restart();
        source = source.at(&server);
        committee = committee.at(&server);
        receiver = receiver.at(&server);
        let (status, body) = decide(&committee, &t, "approve", "同意").await;
        assert_eq!(status, 200, "{body}");
        server = server.kill_and_restart();
        source = source.at(&server);
        committee = committee.at(&server);
        receiver = receiver.at(&server);
        // The receipt, killed after 0, 5 or 20 ms: before, during or after its transaction.
        let target = receiver.clone();
        let url_t = t.clone();
        let pending = tokio::spawn(async move {
            target
                .post(&format!("/api/v1/transfers/{url_t}/receive"), json!({}))
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis([0, 5, 20][round as usize])).await;
        // The request dies with the server (or has finished): its answer does not matter.
        pending.abort();
        // The committee (above both branches) sees the member wherever it is.
        server = server.kill_and_restart();
        source = source.at(&server);
        committee = committee.at(&server);
        receiver = receiver.at(&server);
        let v = view(&committee, &t).await;
        let m = committee.get(&format!("/api/v1/members/{member}")).await;
        assert_eq!(m.status, 200, "{:?}", m.body);
        match v["state"].as_str().unwrap() {
            "completed" => {
                assert_eq!(m.body["branch_id"], sibling.as_str());
                assert_eq!(m.body["in_transfer"], false);
            }
            "active" => {
                assert_eq!(m.body["branch_id"], t3.org_id.as_str());
                assert_eq!(m.body["in_transfer"], true);
                // It can still be received.
                let r = receiver
                    .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.body);
            }
            other => panic!("unexpected state {other}"),
        }
        let m = committee.get(&format!("/api/v1/members/{member}")).await;
        assert_eq!(m.body["branch_id"], sibling.as_str());
    }
}

/// An expired letter cannot be received: the source re-issues it (a new number; the old one
/// verifies as superseded) and the target branch then receives.
#[tokio::test]
async fn an_expired_letter_is_reissued_before_the_receipt() {
    let server = Server::demo(60, None).await;
    let t3 = server.account("admin", Some(3));
    let source = server.sign_in(&t3).await;
    let committee = server.sign_in(&server.account("admin", Some(2))).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let sibling = sibling_branches(&server, &committee).await.remove(0);
    let receiver = server
        .sign_in(&server.new_admin(&officer, &sibling, 70).await)
        .await;
    let member = new_member(&source, &t3.org_id, 8).await;
    let t = source
        .post("/api/v1/transfers", outbound(&member, "county", &sibling))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = decide(&committee, &t, "approve", "同意").await;
    assert_eq!(status, 200, "{body}");
    let old_number = body["letter_number"].as_str().unwrap().to_string();
    // The letter's validity ends yesterday (straight in the demo's database).
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=rw",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE letters SET valid_until = '2026-01-01' WHERE number = $1")
        .bind(&old_number)
        .execute(&mut conn)
        .await
        .unwrap();
    let v = view(&receiver, &t).await;
    assert_eq!(v["letter_expired"], true);
    let r = receiver
        .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(r.message().contains("重新开具"), "{:?}", r.body);
    // Only the source re-issues.
    let r = receiver
        .post(&format!("/api/v1/transfers/{t}/reissue"), json!({}))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = source
        .post(&format!("/api/v1/transfers/{t}/reissue"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new_number = r.body["letter_number"].as_str().unwrap().to_string();
    assert_ne!(new_number, old_number);
    assert_eq!(r.body["letter_expired"], false);
    let old = server
        .get_json(&format!("/api/v1/letters/{old_number}/verify"))
        .await;
    assert_eq!(old["status"], "superseded", "{old}");
    let r = receiver
        .post(&format!("/api/v1/transfers/{t}/receive"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new = server
        .get_json(&format!("/api/v1/letters/{new_number}/verify"))
        .await;
    assert_eq!(new["status"], "received", "{new}");
}
