//! Audit suite 安全审计: auditors search, verify and export the log; everyone else is refused,
//! and every refusal is itself recorded.

use dangjian_tests::{Api, Server};
use serde_json::Value;

const MEMBERS: usize = 60;

/// The account id and name behind a signed-in client.
async fn whoami(api: &Api) -> (String, String) {
    let s = api.get("/api/v1/session").await;
    assert_eq!(s.status, 200, "{:?}", s.body);
    (
        s.body["account"]["id"].as_str().unwrap().to_string(),
        s.body["account"]["name"].as_str().unwrap().to_string(),
    )
}

fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("items")
}

#[tokio::test]
async fn auditors_search_sign_ins_and_member_views() {
    let server = Server::demo(MEMBERS, None).await;
    let tier3 = server.account("admin", Some(3));
    let admin = server.sign_in(&tier3).await;
    let (admin_id, admin_name) = whoami(&admin).await;
    let list = admin
        .get(&format!(
            "/api/v1/orgs/{}/members?include_sub=1&per_page=1",
            tier3.org_id
        ))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let member_id = list.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin
            .get(&format!("/api/v1/members/{member_id}"))
            .await
            .status,
        200
    );

    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let sign_ins = auditor
        .get(&format!(
            "/api/v1/audit?action=session.sign_in&actor={admin_id}"
        ))
        .await;
    assert_eq!(sign_ins.status, 200, "{:?}", sign_ins.body);
    let page = &sign_ins.body;
    assert_eq!(
        (page["page"].as_i64(), page["per_page"].as_i64()),
        (Some(1), Some(20))
    );
    assert!(page["total"].as_i64().unwrap() >= 1);
    let rec = &items(page)[0];
    assert_eq!(rec["actor_name"], admin_name.as_str());
    assert_eq!(rec["role"], "admin");
    assert_eq!(rec["outcome"], "success");
    for field in [
        "seq",
        "at",
        "org_id",
        "client_addr",
        "cert_serial",
        "target",
        "detail",
    ] {
        assert!(rec.get(field).is_some(), "item lacks {field}: {rec}");
    }

    // The member view, found by its target; newest first across all records.
    let views = auditor
        .get(&format!(
            "/api/v1/audit?action=member.view&target={member_id}"
        ))
        .await;
    assert_eq!(views.status, 200);
    assert_eq!(views.body["total"], 1, "{:?}", views.body);
    assert_eq!(items(&views.body)[0]["actor_account_id"], admin_id.as_str());
    let all = auditor.get("/api/v1/audit?per_page=200").await;
    let seqs: Vec<i64> = items(&all.body)
        .iter()
        .map(|i| i["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    // Date filters: today (Beijing calendar) holds everything, a past day nothing.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8))
        .date_naive()
        .to_string();
    let since = auditor
        .get(&format!("/api/v1/audit?since={today}&until={today}"))
        .await;
    assert_eq!(since.body["total"], all.body["total"]);
    let old = auditor.get("/api/v1/audit?until=2000-01-01").await;
    assert_eq!(old.body["total"], 0);
    let bad = auditor.get("/api/v1/audit?since=yesterday").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.field(), Some("since"));

    // The pages: the home page leads auditors to the search page.
    let home = auditor.get("/").await;
    assert_eq!(home.status, 200);
    let html = home.body.as_str().unwrap_or_default();
    assert!(html.contains("审计日志查询") && html.contains("【导出Excel】"));
    assert!(html.contains("【校验审计链】") && html.contains(&admin_name));
    let verify = auditor.get("/audit/verify").await;
    assert_eq!(verify.status, 200);
    assert!(verify
        .body
        .as_str()
        .unwrap_or_default()
        .contains("审计链完整"));
}

#[tokio::test]
async fn others_are_refused_and_each_refusal_is_recorded() {
    let server = Server::demo(MEMBERS, None).await;
    let admin = server.sign_in(&server.account("admin", Some(1))).await;
    let security = server.sign_in(&server.account("security", None)).await;
    let (admin_id, _) = whoami(&admin).await;
    let (security_id, _) = whoami(&security).await;
    for api in [&admin, &security] {
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/verify",
            "/api/v1/audit/export?format=csv",
        ] {
            let r = api.get(path).await;
            assert_eq!(r.status, 403, "{path}: {:?}", r.body);
            assert!(r.message().contains("审计员"), "{}", r.message());
        }
        assert_eq!(api.get("/audit").await.status, 403);
    }
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    // An auditor does no business work: refused, and recorded too.
    let org = server.account("admin", Some(3)).org_id;
    assert_eq!(
        auditor.get(&format!("/api/v1/orgs/{org}")).await.status,
        403
    );

    let refused = auditor
        .get(&format!(
            "/api/v1/audit?outcome=refused&actor={admin_id}&per_page=200"
        ))
        .await;
    assert_eq!(refused.status, 200, "{:?}", refused.body);
    let recs = items(&refused.body);
    let actions: Vec<&str> = recs.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for want in [
        "GET /api/v1/audit",
        "GET /api/v1/audit/verify",
        "GET /api/v1/audit/export",
        "GET /audit",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    let api_refusal = recs
        .iter()
        .find(|r| r["action"] == "GET /api/v1/audit")
        .unwrap();
    assert_eq!(api_refusal["target"], "/api/v1/audit");
    assert_eq!(api_refusal["detail"], "forbidden");
    assert_eq!(api_refusal["role"], "admin");
    let by_security = auditor
        .get(&format!(
            "/api/v1/audit?outcome=refused&actor={security_id}"
        ))
        .await;
    assert_eq!(by_security.body["total"], 4, "{:?}", by_security.body);
    let own = auditor
        .get("/api/v1/audit?outcome=refused&action=GET%20/api/v1/orgs/")
        .await;
    assert_eq!(own.body["total"], 1, "{:?}", own.body);
    assert_eq!(items(&own.body)[0]["target"], format!("/api/v1/orgs/{org}"));
    // No route edits or deletes a record.
    let del = auditor.delete("/api/v1/audit").await;
    assert!(matches!(del.status, 404 | 405), "{}", del.status);
}

#[tokio::test]
async fn exports_carry_the_watermark_are_audited_and_the_chain_verifies() {
    let server = Server::demo(MEMBERS, None).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let (auditor_id, auditor_name) = whoami(&auditor).await;
    let fetch = |format: &'static str| {
        let auditor = auditor.clone();
        async move {
            let res = auditor
                .client
                .get(format!(
                    "{}/api/v1/audit/export?format={format}&action=session.",
                    auditor.base
                ))
                .bearer_auth(&auditor.token)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let ctype = res.headers()["content-type"].to_str().unwrap().to_string();
            let disposition = res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .to_string();
            (status, ctype, disposition, res.bytes().await.unwrap())
        }
    };
    let (status, ctype, disposition, csv) = fetch("csv").await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    assert!(disposition.starts_with("attachment;") && disposition.contains(".csv"));
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let mut lines = text.trim_start_matches('\u{feff}').lines();
    let mark = lines.next().unwrap();
    assert!(
        mark.starts_with(&format!(
            "导出人：{auditor_name}（{auditor_id}） 导出时间："
        )),
        "{mark}"
    );
    assert!(lines.next().unwrap().starts_with("序号,时间,操作人"));
    assert!(lines.next().unwrap().contains("session.sign_in"));

    let (status, ctype, disposition, xlsx) = fetch("xlsx").await;
    assert_eq!(status, 200);
    assert_eq!(
        ctype,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(disposition.contains(".xlsx"));
    assert!(xlsx.starts_with(b"PK"), "an xlsx is a zip file");

    assert_eq!(
        auditor.get("/api/v1/audit/export?format=pdf").await.status,
        400
    );

    // Both exports are in the log, with the filters used.
    let exports = auditor.get("/api/v1/audit?action=audit.export").await;
    assert_eq!(exports.body["total"], 2, "{:?}", exports.body);
    let newest = &items(&exports.body)[0];
    assert_eq!(newest["target"], "xlsx");
    assert_eq!(newest["actor_account_id"], auditor_id.as_str());
    assert!(newest["detail"]
        .as_str()
        .unwrap()
        .contains("action=session."));

    let verify = auditor.get("/api/v1/audit/verify").await;
    assert_eq!(verify.status, 200, "{:?}", verify.body);
    assert_eq!(verify.body["intact"], true);
    assert_eq!(verify.body["first_broken"], Value::Null);
    assert_eq!(verify.body["anchor"], Value::Null);
    assert!(verify.body["records"].as_i64().unwrap() >= 3);

    let doc = auditor.get("/api/v1/openapi.json").await;
    for path in [
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/audit/export",
    ] {
        assert!(
            doc.body["paths"].get(path).is_some(),
            "{path} not documented"
        );
    }
}

#[test]
fn audit_prune_command_keeps_the_chain_verifiable() {
    let data = dangjian_tests::TempDir::new("dangjian-prune");
    let run = |args: &[&str]| {
        std::process::Command::new(dangjian_tests::server_binary())
            .args(args)
            .arg("--data")
            .arg(data.path())
            .output()
            .expect("run dangjian-server")
    };
    let init = run(&[
        "init",
        "--root-name",
        "中共测试省委员会",
        "--root-code",
        "037",
    ]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let prune = run(&["audit-prune"]);
    assert!(
        prune.status.success(),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    assert!(String::from_utf8_lossy(&prune.stdout).contains("pruned 0"));
    let verify = run(&["audit-verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
