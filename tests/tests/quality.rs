//! Quality control 信息质量管控 on both engines, end to end through the batch check: every rule
//! fires on a crafted member and not on a clean one; the special investigation counts equal
//! the per-member findings; the quality report; the check of one member; the special-period
//! table (tier-1 only); scope; two concurrent checks by different admins. Every person is
//! synthetic.
//!
//! Members are entered through the API wherever it allows the state (a sex or birth date
//! differing from the ID number and the all-zero number, confirmed; a join at 17; an age over
//! 110); states the API refuses (missing join date, birth date, full date, ethnicity,
//! education, address or phone; a full date before the join date; a join before 1921-07-01;
//! a bad check digit; a duplicated ID number) are made by direct updates of the test's own
//! database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::NaiveDate;
use dangjian_server::crypto::{self, Column};
use dangjian_tests::{Api, Server, TestDb};
use serde_json::{json, Value};

fn id_number(birth: &str, seq: u16) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        NaiveDate::parse_from_str(birth, "%Y-%m-%d").unwrap(),
        seq,
    )
}

const NAMES: [&str; 10] = ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"];

/// Enters a member into `branch_id` with `extra` over clean defaults; returns its id.
async fn member(api: &Api, branch_id: &str, n: u32, number: &str, extra: Value) -> String {
    let mut body = json!({
        "name": format!("质检{}", NAMES[n as usize % NAMES.len()]), "id_number": number, "ethnicity": "01", "education": "21",
        "category": "full", "branch_id": branch_id, "joined_on": "2010-06-01",
        "full_on": "2011-06-01", "job": "worker",
        "phone": format!("1380002{:04}", n), "address": "测试地址",
        "registered_phone": format!("1390002{:04}", n)
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = api.post("/api/v1/members", body).await;
    assert_eq!(r.status, 201, "member {n}: {:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("open the test database")
}

async fn exec(url: &str, sql: &str, binds: &[&str]) {
    let mut conn = connect(url).await;
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn keys(data: &Path) -> crypto::Keys {
    let file = crypto::KeyFile::load(&crypto::key_path(data)).expect("key file");
    crypto::Keys::from_file(&file).expect("keys")
}

/// Starts a batch check and waits for its end; returns the finished check.
async fn run_check(api: &Api, body: Value) -> Value {
    let r = api.post("/api/v1/quality/checks", body).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    wait(api, r.body["id"].as_str().unwrap()).await
}

async fn wait(api: &Api, id: &str) -> Value {
    for _ in 0..600 {
        let r = api.get(&format!("/api/v1/quality/checks/{id}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        match r.body["state"].as_str().unwrap() {
            "running" => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            "finished" => return r.body,
            other => panic!("check {other}: {:?}", r.body),
        }
    }
    panic!("check {id} did not finish");
}

/// Every (member, rule) of a check's per-member results under `query` (all pages).
async fn findings(api: &Api, check: &str, query: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut page = 1;
    loop {
        let r = api
            .get(&format!(
                "/api/v1/quality/checks/{check}/members?{query}&per_page=200&page={page}"
            ))
            .await;
        assert_eq!(r.status, 200, "{query}: {:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        for m in items {
            let rules: BTreeSet<String> = m["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["rule"].as_str().unwrap().to_string())
                .collect();
            out.insert(m["member_id"].as_str().unwrap().to_string(), rules);
        }
        if page * 200 >= r.body["total"].as_i64().unwrap() {
            return out;
        }
        page += 1;
    }
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|s| s.to_string()).collect()
}

async fn quality_end_to_end(server: &Server, db_url: &str) {
    let t2 = server.account("admin", Some(2));
    let t3 = server.account("admin", Some(3));
    let committee = server.sign_in(&t2).await;
    let branch_api = server.sign_in(&t3).await;
    let branch = t3.org_id.clone();
    let c = &committee;

    // Crafted members, each expected to carry exactly these findings.
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let clean = member(c, &branch, 1, &id_number("1986-01-01", 11), json!({})).await;
    // Through the API.
    let under18 = member(
        c,
        &branch,
        2,
        &id_number("1986-01-01", 13),
        json!({"joined_on": "2003-06-01", "full_on": "2004-06-01"}),
    )
    .await;
    // Joined at 17 after 1945-06-11: also 特殊时期特殊生日 under the shipped default.
    expected.insert(
        under18.clone(),
        set(&["joined_under_18", "special_period_age"]),
    );
    let old = member(
        c,
        &branch,
        3,
        &id_number("1912-03-01", 15),
        json!({"joined_on": "1950-01-01", "full_on": "1951-01-01"}),
    )
    .await;
    expected.insert(old.clone(), set(&["age_out_of_range"]));
    let sex = member(
        c,
        &branch,
        4,
        &id_number("1986-01-01", 17),
        json!({"sex": "female", "confirm_contradictions": true}),
    )
    .await;
    expected.insert(sex.clone(), set(&["sex_vs_id"]));
    let birth = member(
        c,
        &branch,
        5,
        &id_number("1986-01-01", 19),
        json!({"birth_date": "1986-02-01", "confirm_contradictions": true}),
    )
    .await;
    expected.insert(birth.clone(), set(&["birth_date_vs_id"]));
    let zeros = member(
        c,
        &branch,
        6,
        "000000000000000000",
        json!({"sex": "male", "birth_date": "1986-01-01", "confirm_contradictions": true}),
    )
    .await;
    expected.insert(zeros.clone(), set(&["id_number_invalid"]));
    // Through the database: states the API refuses.
    let db_states: [(&str, &[&str], &str); 11] = [
        ("UPDATE members SET joined_on = '' WHERE id = $1", &["join_date_missing"], "join"),
        (
            "UPDATE members SET joined_on = '', lost_contact = 1, lost_contact_on = '2020-01-01' WHERE id = $1",
            &["lost_contact_join_date_missing"],
            "lost",
        ),
        ("UPDATE members SET birth_date = '' WHERE id = $1", &["birth_date_missing"], "birth"),
        ("UPDATE members SET full_on = NULL WHERE id = $1", &["full_date"], "full"),
        ("UPDATE members SET ethnicity = '' WHERE id = $1", &["ethnicity_missing"], "eth"),
        ("UPDATE members SET education = '' WHERE id = $1", &["education_missing"], "edu"),
        ("UPDATE members SET address = '' WHERE id = $1", &["address_missing"], "addr"),
        ("UPDATE members SET phone = '' WHERE id = $1", &["phone_missing"], "phone"),
        (
            "UPDATE members SET full_on = '2009-06-01' WHERE id = $1",
            &["full_before_join"],
            "before",
        ),
        // Born 1986: before 1921 is also before the birth, hence under 18 at joining.
        (
            "UPDATE members SET joined_on = '1921-06-30', full_on = '1922-06-30' WHERE id = $1",
            &["joined_before_1921", "joined_under_18"],
            "1921",
        ),
        ("", &["id_number_invalid"], "digit"),
    ];
    let k = keys(server.data.path());
    for (i, (sql, rules, what)) in db_states.iter().enumerate() {
        let n = 10 + i as u32;
        let id = member(
            c,
            &branch,
            n,
            &id_number("1986-01-01", 101 + 2 * i as u16),
            json!({}),
        )
        .await;
        if *what == "digit" {
            // A wrong check digit, sealed with the platform's key.
            let good = id_number("1986-01-01", 101 + 2 * i as u16);
            let last = if good.ends_with('0') { '1' } else { '0' };
            let bad = format!("{}{last}", &good[..17]);
            exec(
                db_url,
                "UPDATE members SET id_number = $1, id_number_idx = $2 WHERE id = $3",
                &[
                    &k.seal(Column::MembersIdNumber, &bad),
                    &k.index(Column::MembersIdNumber, &bad),
                    &id,
                ],
            )
            .await;
        } else {
            exec(db_url, sql, &[&id]).await;
        }
        expected.insert(id, set(rules));
    }
    // 党内身份证重复: the unique index on the blind index normally prevents it; data carried
    // over from old systems may not, so the test's own database drops the index and gives a
    // second member the first one's sealed number and blind index.
    let dup_a = member(c, &branch, 30, &id_number("1986-01-01", 201), json!({})).await;
    let dup_b = member(c, &branch, 31, &id_number("1986-01-01", 203), json!({})).await;
    exec(db_url, "DROP INDEX members_id_number_key", &[]).await;
    exec(
        db_url,
        "UPDATE members SET id_number = (SELECT id_number FROM members WHERE id = $1), \
         id_number_idx = (SELECT id_number_idx FROM members WHERE id = $2) WHERE id = $3",
        &[&dup_a, &dup_a, &dup_b],
    )
    .await;
    expected.insert(dup_a.clone(), set(&["id_number_duplicate"]));
    expected.insert(dup_b.clone(), set(&["id_number_duplicate"]));

    // Every rule is crafted at least once.
    let rules = c.get("/api/v1/quality/rules").await;
    assert_eq!(rules.status, 200);
    let all: BTreeSet<String> = rules
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 17);
    let crafted: BTreeSet<String> = expected.values().flatten().cloned().collect();
    assert_eq!(crafted, all, "a rule without a crafted member");

    // The batch check of the committee's subtree, by the tier-2 admin, and at the same time
    // one of the branch by the tier-3 admin.
    let (a, b) = tokio::join!(
        run_check(c, json!({"org_id": t2.org_id, "rules": []})),
        run_check(&branch_api, json!({"org_id": branch}))
    );
    let (check, branch_check) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    assert!(a["members_checked"].as_i64().unwrap() > b["members_checked"].as_i64().unwrap());
    let got = findings(c, &check, &format!("org_id={branch}")).await;
    for (id, rules) in &expected {
        assert_eq!(got.get(id), Some(rules), "member {id}");
    }
    assert!(
        !got.contains_key(&clean),
        "the clean member has findings: {:?}",
        got.get(&clean)
    );
    // The concurrent branch check found the same in the branch.
    let got_branch = findings(&branch_api, &branch_check, "").await;
    assert_eq!(
        got_branch, got,
        "the two concurrent checks disagree on the branch"
    );
    // The city's check covers most of the table: on SQLite it reads the table itself in
    // windows of rowids, each as one JSON array, on two connections instead of going through
    // the org_code index. Within the branch it finds exactly what the committee's check found.
    let t1 = server.account("admin", Some(1));
    let city = server.sign_in(&t1).await;
    let wide = run_check(&city, json!({"org_id": t1.org_id, "rules": []})).await;
    let (all,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM members")
        .fetch_one(&mut connect(db_url).await)
        .await
        .unwrap();
    assert!(
        wide["members_checked"].as_i64().unwrap() * 3 > all,
        "{wide} of {all}"
    );
    let got_city = findings(
        &city,
        wide["id"].as_str().unwrap(),
        &format!("org_id={branch}"),
    )
    .await;
    assert_eq!(got_city, got, "the city's check disagrees on the branch");

    // Special investigation: every count equals the members listed for its org and rule.
    let special = c
        .get(&format!("/api/v1/quality/checks/{check}/special"))
        .await;
    assert_eq!(special.status, 200, "{:?}", special.body);
    let rule_ids: Vec<String> = special.body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rule_ids.len(), 17);
    let rows = special.body["rows"].as_array().unwrap();
    assert!(rows.len() >= 2, "total and children: {rows:?}");
    let everything = findings(c, &check, "").await;
    for row in rows {
        let org = &row["org"];
        for (rule, count) in rule_ids.iter().zip(row["counts"].as_array().unwrap()) {
            let mut q = format!("org_id={}&rule={rule}", org["org_id"].as_str().unwrap());
            if org["self_only"] == true {
                q.push_str("&self_only=true");
            }
            let listed = c
                .get(&format!(
                    "/api/v1/quality/checks/{check}/members?{q}&per_page=1"
                ))
                .await;
            assert_eq!(listed.status, 200);
            assert_eq!(listed.body["total"], *count, "{} {rule}", org["name"]);
        }
    }
    // The total row counts every finding of each rule.
    let total_row = &rows[0];
    for (rule, count) in rule_ids.iter().zip(total_row["counts"].as_array().unwrap()) {
        let n = everything.values().filter(|r| r.contains(rule)).count() as i64;
        assert_eq!(count.as_i64().unwrap(), n, "total {rule}");
    }

    // Quality report: per level findings and members; the total row matches the results.
    let report = c
        .get(&format!("/api/v1/quality/checks/{check}/report"))
        .await;
    assert_eq!(report.status, 200, "{:?}", report.body);
    let total = &report.body["rows"][0];
    let errors = total["levels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["level"] == "error")
        .unwrap();
    let error_rules: BTreeSet<&str> = [
        "join_date_missing",
        "birth_date_missing",
        "full_date",
        "ethnicity_missing",
        "education_missing",
        "address_missing",
        "phone_missing",
        "full_before_join",
        "joined_before_1921",
        "birth_date_vs_id",
        "sex_vs_id",
        "id_number_duplicate",
    ]
    .into();
    let error_findings: i64 = everything
        .values()
        .map(|r| {
            r.iter()
                .filter(|x| error_rules.contains(x.as_str()))
                .count() as i64
        })
        .sum();
    let error_members = everything
        .values()
        .filter(|r| r.iter().any(|x| error_rules.contains(x.as_str())))
        .count() as i64;
    assert_eq!(errors["findings"].as_i64().unwrap(), error_findings);
    assert_eq!(errors["members"].as_i64().unwrap(), error_members);
    assert_eq!(
        a["summary"]["findings"].as_i64().unwrap(),
        everything.values().map(|r| r.len() as i64).sum::<i64>()
    );

    // Filters: by level, and chosen rules only.
    let warn = findings(c, &check, &format!("org_id={branch}&level=warning")).await;
    assert!(warn.contains_key(&under18) && !warn.contains_key(&sex));
    let only = run_check(
        c,
        json!({"org_id": branch, "rules": ["sex_vs_id", "full_date"], "levels": ["error"]}),
    )
    .await;
    assert_eq!(only["rules"], json!(["full_date", "sex_vs_id"]));
    let only_found = findings(c, only["id"].as_str().unwrap(), "").await;
    let only_rules: BTreeSet<String> = only_found.values().flatten().cloned().collect();
    assert!(
        only_rules.is_subset(&set(&["full_date", "sex_vs_id"])) && only_rules.contains("sex_vs_id")
    );
    // Bad input, each field named.
    let bad = c
        .post(
            "/api/v1/quality/checks",
            json!({"rules": ["nope"], "levels": ["fatal"]}),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&"rules") && fields.contains(&"levels"),
        "{:?}",
        bad.body
    );

    // Check one member.
    let one = c.get(&format!("/api/v1/members/{sex}/quality")).await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(one.body["errors"], 1);
    assert_eq!(one.body["findings"][0]["rule"], "sex_vs_id");
    let one_clean = c.get(&format!("/api/v1/members/{clean}/quality")).await;
    assert_eq!(one_clean.body["findings"], json!([]));

    // Scope: the branch admin does not see the committee's check, nor start one above it.
    assert_eq!(
        branch_api
            .get(&format!("/api/v1/quality/checks/{check}"))
            .await
            .status,
        404
    );
    assert_eq!(
        branch_api
            .get(&format!("/api/v1/quality/checks/{check}/special"))
            .await
            .status,
        404
    );
    let above = branch_api
        .post("/api/v1/quality/checks", json!({"org_id": t2.org_id}))
        .await;
    assert_eq!(above.status, 403, "{:?}", above.body);
    // The committee sees the branch's check; a filter outside the check's scope is refused.
    assert_eq!(
        c.get(&format!("/api/v1/quality/checks/{branch_check}"))
            .await
            .status,
        200
    );
    let outside = c
        .get(&format!(
            "/api/v1/quality/checks/{branch_check}/report?org_id={}",
            t2.org_id
        ))
        .await;
    assert_eq!(outside.status, 400, "{:?}", outside.body);

    // The special-period table: tier 1 only; a stricter period flags a join at 19.
    let periods = c.get("/api/v1/quality/age-periods").await;
    assert_eq!(periods.body["is_default"], true);
    let denied = c
        .post("/api/v1/quality/age-periods", json!({"periods": []}))
        .await;
    assert_eq!(denied.status, 403);
    let t1 = server.sign_in(&server.county_admin()).await;
    let bad = t1.post("/api/v1/quality/age-periods", json!({"periods": [{"from_date": "2000-13-01", "to_date": "1990-01-01", "min_age": 3}]})).await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    let ok = t1.post("/api/v1/quality/age-periods", json!({"periods": [{"from_date": "1990-01-01", "to_date": "1999-12-31", "min_age": 20, "note": "测试"}]})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["is_default"], false);
    let at19 = member(
        c,
        &branch,
        40,
        &id_number("1976-01-01", 301),
        json!({"joined_on": "1995-06-01", "full_on": "1996-06-01"}),
    )
    .await;
    let r = c.get(&format!("/api/v1/members/{at19}/quality")).await;
    let rules: Vec<&str> = r.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["special_period_age"]);
    let r = c.get(&format!("/api/v1/members/{under18}/quality")).await;
    let rules: Vec<&str> = r.body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["joined_under_18"]);
}

#[tokio::test]
async fn quality_rules_report_special_scope_and_concurrency_on_sqlite() {
    let server = Server::demo(300, None).await;
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    quality_end_to_end(&server, &url).await;
}

#[tokio::test]
async fn quality_rules_report_special_scope_and_concurrency_on_postgres() {
    let db = TestDb::postgres().await;
    let url = db.url.clone();
    let server = Server::demo(300, Some(db)).await;
    quality_end_to_end(&server, &url).await;
}
