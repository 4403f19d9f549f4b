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
    assert!(html.contains("审计日志查询") && html.contains("导出Excel"));
    assert!(html.contains("校验审计链") && html.contains(&admin_name));
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

/// A data directory made by `dangjian-server init`, on SQLite or (with `db`) PostgreSQL, and
/// what someone with access to its database does to it.
struct DataDir {
    data: dangjian_tests::TempDir,
    db: Option<dangjian_tests::TestDb>,
}

impl DataDir {
    fn init(db: Option<dangjian_tests::TestDb>) -> DataDir {
        let d = DataDir {
            data: dangjian_tests::TempDir::new("dangjian-witness"),
            db,
        };
        let init = d.run(&[
            "init",
            "--root-name",
            "中共测试省委员会",
            "--root-code",
            "037",
        ]);
        assert!(init.status.success(), "{}", stderr(&init));
        d
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(dangjian_tests::server_binary());
        cmd.args(args).arg("--data").arg(self.data.path());
        if let Some(db) = &self.db {
            cmd.arg("--database").arg(&db.url);
        }
        cmd.env("DANGJIAN_LOG", "warn")
            .output()
            .expect("run dangjian-server")
    }

    fn url(&self) -> String {
        match &self.db {
            Some(db) => db.url.clone(),
            None => dangjian_server::db::sqlite_url(self.data.path()),
        }
    }

    fn postgres(&self) -> bool {
        self.db.is_some()
    }

    async fn open(&self) -> dangjian_server::db::Db {
        dangjian_server::db::Db::connect(&self.url())
            .await
            .expect("connect")
    }

    /// Appends `n` records through the server's own code, as the platform's work would.
    async fn work(&self, n: usize) {
        let db = self.open().await;
        for i in 0..n {
            let target = format!("t{i}");
            dangjian_server::audit::append_alone(
                &db,
                &dangjian_server::audit::Who::system(),
                dangjian_server::audit::Event::ok("test.event", &target),
            )
            .await
            .unwrap();
        }
        db.close().await;
    }

    /// Runs one statement in a transaction of its own.
    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let db = self.open().await;
        let mut tx = db.begin().await?;
        let r = sqlx::query(sql).execute(&mut *tx).await;
        let r = match r {
            Ok(_) => tx.commit().await,
            Err(e) => {
                // Roll back before closing: the pool waits for every connection to return.
                let _ = tx.rollback().await;
                Err(e)
            }
        };
        db.close().await;
        r
    }

    /// What someone with full rights on the database does first: drop every guard.
    async fn drop_guards(&self) {
        let sqlite = [
            "audit_log_no_update",
            "audit_log_no_delete",
            "audit_log_extends_head",
            "audit_anchor_no_update",
            "audit_anchor_no_delete",
            "audit_anchor_announced",
            "audit_head_advances",
            "audit_head_no_insert",
            "audit_head_no_delete",
            "audit_prune_gate_guard",
            "audit_prune_gate_no_insert",
            "audit_prune_gate_no_delete",
        ];
        let postgres = [
            ("audit_log_no_change", "audit_log"),
            ("audit_log_no_truncate", "audit_log"),
            ("audit_log_extends_head", "audit_log"),
            ("audit_anchor_no_change", "audit_anchor"),
            ("audit_anchor_no_truncate", "audit_anchor"),
            ("audit_anchor_announced", "audit_anchor"),
            ("audit_head_advances", "audit_head"),
            ("audit_head_no_truncate", "audit_head"),
            ("audit_prune_gate_guard", "audit_prune_gate"),
            ("audit_prune_gate_no_truncate", "audit_prune_gate"),
        ];
        if self.postgres() {
            for (t, table) in postgres {
                self.exec(&format!("DROP TRIGGER {t} ON {table}"))
                    .await
                    .unwrap();
            }
        } else {
            for t in sqlite {
                self.exec(&format!("DROP TRIGGER {t}")).await.unwrap();
            }
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.data.path().join(name)
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The sequence number the witness file names last.
fn last_witnessed(d: &DataDir) -> i64 {
    let text = std::fs::read_to_string(d.path("audit-witness.jsonl")).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    line["seq"].as_i64().unwrap()
}

/// `audit-verify` fails with exit 1 and one line naming the cause in Chinese and English.
fn assert_verify_fails(d: &DataDir, args: &[&str], zh: &str, en: &str) -> String {
    let mut all = vec!["audit-verify"];
    all.extend_from_slice(args);
    let out = d.run(&all);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}\n{}", stdout(&out));
    let line = err
        .lines()
        .find(|l| l.starts_with("error: audit chain broken"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(zh) && line.contains(en), "{line}");
    line.to_string()
}

/// Today's attack: an anchor copying the head, the gate opened, every record deleted.
const ANCHOR_ATTACK: [&str; 4] = [
    "INSERT INTO audit_anchor (seq, hash, at, cutoff, pruned_count) \
     SELECT seq, hash, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', seq FROM audit_head WHERE id = 1",
    "UPDATE audit_prune_gate SET upto = (SELECT seq FROM audit_head WHERE id = 1) WHERE id = 1",
    "DELETE FROM audit_log",
    "UPDATE audit_prune_gate SET upto = 0 WHERE id = 1",
];

async fn forged_anchor_is_refused_and_reported(db: Option<dangjian_tests::TestDb>) {
    let d = DataDir::init(db);
    d.work(5).await;
    // The database refuses the forged anchor, the gate and a head moved back.
    assert!(d.exec(ANCHOR_ATTACK[0]).await.is_err(), "anchor accepted");
    assert!(d.exec(ANCHOR_ATTACK[1]).await.is_err(), "gate opened");
    for sql in [
        "UPDATE audit_head SET seq = seq - 1 WHERE id = 1",
        "UPDATE audit_head SET hash = 'forged' WHERE id = 1",
        "DELETE FROM audit_head",
        "DELETE FROM audit_prune_gate",
        "INSERT INTO audit_log (seq, at, action, outcome, prev_hash, hash) \
         VALUES (100, 'now', 'x', 'success', 'a', 'b')",
    ] {
        assert!(d.exec(sql).await.is_err(), "{sql} accepted");
    }
    let ok = d.run(&["audit-verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // Pruning itself still works under the guards.
    let prune = d.run(&["audit-prune"]);
    assert!(prune.status.success(), "{}", stderr(&prune));
    // Someone who can drop the guards runs the attack: the chain alone names the forgery.
    d.drop_guards().await;
    for sql in ANCHOR_ATTACK {
        d.exec(sql).await.unwrap();
    }
    assert_verify_fails(
        &d,
        &["--no-witness"],
        "清理锚点",
        "not announced by an audit.prune",
    );
}

#[tokio::test]
async fn forged_anchor_is_refused_and_reported_on_sqlite() {
    forged_anchor_is_refused_and_reported(None).await;
}

#[tokio::test]
async fn forged_anchor_is_refused_and_reported_on_postgres() {
    forged_anchor_is_refused_and_reported(Some(dangjian_tests::TestDb::postgres().await)).await;
}

async fn deleted_tail_is_reported_by_the_witness(db: Option<dangjian_tests::TestDb>) {
    let d = DataDir::init(db);
    d.work(20).await;
    let w = d.run(&["audit-witness"]);
    assert!(w.status.success(), "{}", stderr(&w));
    let witnessed = last_witnessed(&d);
    assert!(witnessed >= 21, "{witnessed}");
    let ok = d.run(&["audit-verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("witness lines agree"),
        "{}",
        stdout(&ok)
    );
    // The last 10 records deleted and the head moved back to the new end: the chain alone
    // is consistent again...
    d.drop_guards().await;
    d.exec("DELETE FROM audit_log WHERE seq > (SELECT seq FROM audit_head WHERE id = 1) - 10")
        .await
        .unwrap();
    d.exec(
        "UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_log), \
         hash = (SELECT hash FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)) WHERE id = 1",
    )
    .await
    .unwrap();
    let alone = d.run(&["audit-verify", "--no-witness"]);
    assert!(alone.status.success(), "{}", stderr(&alone));
    // ...but not with the witness.
    let line = assert_verify_fails(&d, &[], "末尾被删除", "tail deleted");
    assert!(
        line.contains(&format!("last witnessed seq {witnessed}")),
        "{line}"
    );
    assert!(
        line.contains(&format!("broken at record {}", witnessed - 9)),
        "{line}"
    );
}

#[tokio::test]
async fn deleted_tail_is_reported_by_the_witness_on_sqlite() {
    deleted_tail_is_reported_by_the_witness(None).await;
}

#[tokio::test]
async fn deleted_tail_is_reported_by_the_witness_on_postgres() {
    deleted_tail_is_reported_by_the_witness(Some(dangjian_tests::TestDb::postgres().await)).await;
}

#[tokio::test]
async fn restored_older_database_and_replaced_chain_are_reported() {
    let d = DataDir::init(None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path("witness.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "witness.key");
    }
    d.work(3).await;
    // A copy of the database as it is now, as a backup would take it (one consistent file,
    // whatever is still in the WAL).
    let db_file = d.path("dangjian.db");
    let copy = d.path("older.db");
    {
        let db = d.open().await;
        sqlx::query(&format!("VACUUM INTO '{}'", copy.display()))
            .execute(db.write())
            .await
            .unwrap();
        db.close().await;
    }
    d.work(5).await;
    let w = d.run(&["audit-witness"]);
    assert!(w.status.success(), "{}", stderr(&w));
    let witnessed = last_witnessed(&d);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path("audit-witness.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "audit-witness.jsonl");
    }
    // The older copy restored.
    let current = d.path("current.db");
    std::fs::rename(&db_file, &current).unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(d.path(&format!("dangjian.db{ext}")));
    }
    std::fs::copy(&copy, &db_file).unwrap();
    let line = assert_verify_fails(&d, &[], "数据库被回退", "database rolled back");
    assert!(
        line.contains(&format!("last witnessed seq {witnessed}")),
        "{line}"
    );
    // The current database back, then a replaced chain: every record rewritten consistently
    // (hashes are not secret) with another content, the head following.
    std::fs::remove_file(&db_file).unwrap();
    std::fs::rename(&current, &db_file).unwrap();
    let ok = d.run(&["audit-verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    d.drop_guards().await;
    let db = d.open().await;
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, at, target FROM audit_log ORDER BY seq")
            .fetch_all(db.read())
            .await
            .unwrap();
    let mut prev = dangjian_server::audit::GENESIS_HASH.to_string();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("DELETE FROM audit_log")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (seq, at, target) in &rows {
        let who = dangjian_server::audit::Who::system();
        let hash = dangjian_server::audit::record_hash(
            &prev,
            *seq,
            at,
            &who,
            "test.forged",
            target,
            "success",
            "",
            None,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor_name, role, action, target, outcome, detail, \
             prev_hash, hash) VALUES ($1, $2, 'system', 'system', 'test.forged', $3, 'success', '', $4, $5)",
        )
        .bind(seq)
        .bind(at)
        .bind(target)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.close().await;
    let alone = d.run(&["audit-verify", "--no-witness"]);
    assert!(alone.status.success(), "{}", stderr(&alone));
    assert_verify_fails(&d, &[], "审计链被替换", "the chain was replaced");
}

#[tokio::test]
async fn a_witness_line_with_a_bad_signature_is_reported() {
    let d = DataDir::init(None);
    d.work(2).await;
    for _ in 0..2 {
        let w = d.run(&["audit-witness"]);
        assert!(w.status.success(), "{}", stderr(&w));
    }
    // A copy of the witness elsewhere, checked with the public key kept there.
    let elsewhere = dangjian_tests::TempDir::new("dangjian-witness-copy");
    let (file, key) = (
        elsewhere.path().join("audit-witness.jsonl"),
        elsewhere.path().join("witness.pub"),
    );
    std::fs::copy(d.path("audit-witness.jsonl"), &file).unwrap();
    std::fs::copy(d.path("witness.pub"), &key).unwrap();
    let (f, k) = (file.to_str().unwrap(), key.to_str().unwrap());
    let ok = d.run(&["audit-verify", "--witness", f, "--witness-key", k]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // Someone edits the newest line to a lower seq, to hide a rollback.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let seq = last["seq"].as_i64().unwrap();
    let edited = lines
        .last()
        .unwrap()
        .replace(&format!("\"seq\":{seq}"), &format!("\"seq\":{}", seq - 1));
    *lines.last_mut().unwrap() = edited;
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = d.run(&["audit-verify", "--witness", f, "--witness-key", k]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("witness line 2") && err.contains("bad signature") && err.contains("签名无效"),
        "{err}"
    );
}

#[tokio::test]
async fn hidden_members_and_refused_sign_ins_are_recorded() {
    let server = Server::demo(MEMBERS, None).await;
    let tier3 = server.account("admin", Some(3));
    let admin = server.sign_in(&tier3).await;
    let (admin_id, _) = whoami(&admin).await;
    let db = dangjian_server::db::Db::connect(&dangjian_server::db::sqlite_url(server.data.path()))
        .await
        .unwrap();
    let scope: String = sqlx::query_scalar("SELECT code FROM orgs WHERE id = $1")
        .bind(&tier3.org_id)
        .fetch_one(db.read())
        .await
        .unwrap();
    let outside: String =
        sqlx::query_scalar("SELECT id FROM members WHERE org_code NOT LIKE $1 LIMIT 1")
            .bind(format!("{scope}%"))
            .fetch_one(db.read())
            .await
            .unwrap();
    // A member outside the scope answers like one that does not exist, on the API and the
    // pages; only the hidden one is a refusal.
    let hidden = admin.get(&format!("/api/v1/members/{outside}")).await;
    assert_eq!(hidden.status, 404);
    let missing = admin.get("/api/v1/members/no-such-member").await;
    assert_eq!(missing.status, 404);
    assert_eq!(hidden.message(), missing.message());
    assert_eq!(admin.get(&format!("/members/{outside}")).await.status, 404);

    // Sign-in refused before the code is checked: an authenticator never confirmed, then no
    // live grant.
    let sign_in = || async {
        server
            .client()
            .post(server.url("/api/v1/session"))
            .json(&serde_json::json!({
                "id_number": tier3.id_number, "password": tier3.password, "code": "000000"
            }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let exec = |sql: &'static str| {
        let (db, id) = (db.clone(), admin_id.clone());
        async move {
            let mut tx = db.begin().await.unwrap();
            sqlx::query(sql).bind(id).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    exec("UPDATE accounts SET totp_confirmed = 0 WHERE id = $1").await;
    assert_eq!(sign_in().await, 403);
    exec("UPDATE accounts SET totp_confirmed = 1 WHERE id = $1").await;
    exec("UPDATE grants SET revoked_at = '2026-01-01T00:00:00Z' WHERE account_id = $1").await;
    assert_eq!(sign_in().await, 403);
    db.close().await;

    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let refused = auditor
        .get(&format!(
            "/api/v1/audit?outcome=refused&actor={admin_id}&per_page=200"
        ))
        .await;
    assert_eq!(refused.status, 200, "{:?}", refused.body);
    let recs = items(&refused.body);
    let details: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
                r["detail"].as_str().unwrap(),
            )
        })
        .collect();
    let hidden_api = format!("/api/v1/members/{outside}");
    let hidden_page = format!("/members/{outside}");
    for want in [
        (
            "GET /api/v1/members/{id}",
            hidden_api.as_str(),
            "not_found (outside scope)",
        ),
        (
            "GET /members/{id}",
            hidden_page.as_str(),
            "not_found (outside scope)",
        ),
    ] {
        assert!(details.contains(&want), "{want:?} not in {details:?}");
    }
    assert!(
        !details.iter().any(|d| d.1.contains("no-such-member")),
        "{details:?}"
    );
    let sign_ins: Vec<&str> = details
        .iter()
        .filter(|d| d.0 == "session.sign_in")
        .map(|d| d.2)
        .collect();
    assert_eq!(
        sign_ins,
        ["no live grant", "authenticator not confirmed"],
        "{details:?}"
    );
}
