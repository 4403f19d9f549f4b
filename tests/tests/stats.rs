//! 党员统计 on both engines (issue 16): the tally kept by triggers equals a direct GROUP BY
//! over `members` after every kind of change (entry, edits of category / education / job,
//! exit to history and recovery, transfer arrival, parallel entries and edits); the API's
//! breakdowns and bands equal counting the members themselves; children sum to their parent;
//! scope; registration statistics; the year's changes with a recovery cancelling its loss;
//! the Excel export; the collection forms. Every person is synthetic.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use dangjian_server::stats::rules::{age_on, join_band, AGE_BANDS, JOIN_BANDS};
use dangjian_tests::{Api, Server, TestDb};
use serde_json::{json, Value};
use sqlx::Row;

const DIMS: [(&str, &str); 7] = [
    ("category", "category"),
    ("sex", "sex"),
    ("ethnicity", "ethnicity"),
    ("education", "education"),
    ("job", "job"),
    ("birth", "substr(birth_date, 1, 4)"),
    ("joined", JOINED),
];

/// The join-date band of migration 0019, computed by the database.
const JOINED: &str = "CASE WHEN joined_on >= '2012-11' THEN '2012.11-' \
    WHEN joined_on >= '2002-11' THEN '2002.11-2012.10' WHEN joined_on >= '1979-01' THEN '1979.1-2002.10' \
    WHEN joined_on >= '1976-11' THEN '1976.11-1978.12' WHEN joined_on >= '1966-05' THEN '1966.5-1976.10' \
    WHEN joined_on >= '1949-10' THEN '1949.10-1966.4' WHEN joined_on >= '0' THEN '-1949.9' ELSE 'unknown' END";

async fn connect(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect to the test database")
}

/// The tally equals a GROUP BY over the living members, key by key.
async fn tally_is_exact(url: &str, when: &str) {
    let mut c = connect(url).await;
    let mut expect: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for (dim, expr) in DIMS {
        let rows = sqlx::query(&format!(
            "SELECT org_code, {expr}, COUNT(*) FROM members WHERE status = 'normal' GROUP BY org_code, {expr}"
        ))
        .fetch_all(&mut c)
        .await
        .unwrap();
        for r in rows {
            expect.insert(
                (
                    r.get::<String, _>(0),
                    dim.to_string(),
                    r.get::<String, _>(1),
                ),
                r.get::<i64, _>(2),
            );
        }
    }
    let got: BTreeMap<(String, String, String), i64> =
        sqlx::query("SELECT org_code, dim, val, n FROM member_tally WHERE n <> 0")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get::<i64, _>(3)))
            .collect();
    assert!(!expect.is_empty());
    assert_eq!(got, expect, "tally differs from GROUP BY {when}");
}

fn upper(code: &str) -> String {
    format!("{code}~")
}

/// The API's statistics of an organisation equal counting its subtree's members directly.
async fn api_matches_members(api: &Api, url: &str, org_id: &str, code: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/stats/members?org_id={org_id}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let s = r.body;
    let today = NaiveDate::parse_from_str(s["as_of"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    let mut c = connect(url).await;
    let rows = sqlx::query(
        "SELECT category, sex, ethnicity, education, job, birth_date, joined_on FROM members \
         WHERE status = 'normal' AND org_code >= $1 AND org_code < $2",
    )
    .bind(code)
    .bind(upper(code))
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(s["total"].as_i64().unwrap(), rows.len() as i64);
    let mut expect: BTreeMap<(String, String), i64> = BTreeMap::new();
    for r in &rows {
        let g = |i: usize| r.get::<String, _>(i);
        for (i, dim) in ["category", "sex", "ethnicity", "education", "job"]
            .iter()
            .enumerate()
        {
            *expect.entry((dim.to_string(), g(i))).or_default() += 1;
        }
        let age = NaiveDate::parse_from_str(&g(5), "%Y-%m-%d")
            .map(|b| {
                let a = age_on(b, today).max(0) as u32;
                AGE_BANDS[AGE_BANDS.iter().rposition(|(_, _, lo)| a >= *lo).unwrap()].0
            })
            .unwrap_or("unknown");
        *expect.entry(("age".into(), age.into())).or_default() += 1;
        let joined = join_band(&g(6))
            .map(|i| JOIN_BANDS[i].0)
            .unwrap_or("unknown");
        *expect.entry(("joined".into(), joined.into())).or_default() += 1;
    }
    let mut got: BTreeMap<(String, String), i64> = BTreeMap::new();
    for b in s["breakdowns"].as_array().unwrap() {
        for c in b["counts"].as_array().unwrap() {
            let n = c["n"].as_i64().unwrap();
            if n != 0 {
                got.insert(
                    (
                        b["dim"].as_str().unwrap().into(),
                        c["key"].as_str().unwrap().into(),
                    ),
                    n,
                );
            }
        }
    }
    assert_eq!(got, expect, "statistics of {code}");
    // Children (and 本级) sum to the parent.
    let kids = s["children"].as_array().unwrap();
    if !kids.is_empty() {
        let sum: i64 = kids.iter().map(|k| k["total"].as_i64().unwrap()).sum();
        assert_eq!(sum, s["total"].as_i64().unwrap(), "children of {code}");
        for k in kids {
            assert_eq!(
                k["full"].as_i64().unwrap() + k["probationary"].as_i64().unwrap(),
                k["total"].as_i64().unwrap()
            );
        }
    }
    s
}

fn id_number(seq: u32) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        NaiveDate::from_ymd_opt(1960 + (seq % 40) as i32, 1 + seq % 12, 1 + seq % 28).unwrap(),
        (600 + seq) as u16,
    )
}

async fn new_member(api: &Api, branch_id: &str, seq: u32) -> Result<String, String> {
    let r = api
        .post(
            "/api/v1/members",
            json!({
                "name": format!("统计{}", ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸"][seq as usize % 10]),
                "id_number": id_number(seq), "ethnicity": "01", "education": "21",
                "category": "full", "branch_id": branch_id, "joined_on": "2020-06-01",
                "full_on": "2021-06-01", "job": "worker",
                "phone": format!("1380002{:04}", seq), "address": "测试地址",
                "registered_phone": format!("1390002{:04}", seq)
            }),
        )
        .await;
    if r.status == 201 {
        Ok(r.body["id"].as_str().unwrap().to_string())
    } else {
        Err(format!("{} {:?}", r.status, r.body))
    }
}

async fn code_of(api: &Api, org_id: &str) -> String {
    let r = api.get(&format!("/api/v1/orgs/{org_id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["code"].as_str().unwrap().to_string()
}

async fn exactness(server: &Server, url: &str) {
    let t3 = server.account("admin", Some(3));
    let t2 = server.account("admin", Some(2));
    let county = server.county_admin();
    let branch = server.sign_in(&t3).await;
    let committee = server.sign_in(&t2).await;
    let k = server.sign_in(&county).await;
    let branch_code = code_of(&branch, &t3.org_id).await;
    let committee_code = code_of(&committee, &t2.org_id).await;
    let county_code = code_of(&k, &county.org_id).await;

    // The demo's bulk insert.
    tally_is_exact(url, "after the demo").await;
    let s = api_matches_members(&k, url, &county.org_id, &county_code).await;
    assert!(!s["children"].as_array().unwrap().is_empty());
    api_matches_members(&committee, url, &t2.org_id, &committee_code).await;

    // Entry.
    let mut ids = Vec::new();
    for seq in 1..=3 {
        ids.push(new_member(&branch, &t3.org_id, seq).await.unwrap());
    }
    tally_is_exact(url, "after entries").await;
    // Edits of category, education and job.
    let r = branch
        .patch(
            &format!("/api/v1/members/{}", ids[0]),
            json!({"category": "probationary", "education": "14", "job": "farmer"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = branch
        .patch(
            &format!("/api/v1/members/{}", ids[1]),
            json!({"joined_on": "1978-12-01", "full_on": "1979-12-01"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    tally_is_exact(url, "after edits").await;
    api_matches_members(&branch, url, &t3.org_id, &branch_code).await;

    // Exit to history (approved by the committee), then recovery by the county.
    let r = branch
        .post(
            "/api/v1/applications",
            json!({"kind": "exit", "member_id": ids[2], "date": "2026-10-01", "reason": "测试原因"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let app = r.body["id"].as_str().unwrap().to_string();
    let r = committee
        .post(
            &format!("/api/v1/applications/{app}/approve"),
            json!({"opinion": "同意"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    tally_is_exact(url, "after an exit").await;
    let year = chrono::Datelike::year(&(chrono::Utc::now() + chrono::Duration::hours(8)));
    let changes = |api: &Api| {
        let path = format!("/api/v1/stats/changes?org_id={}&year={year}", t3.org_id);
        let api = api.clone();
        async move {
            let r = api.get(&path).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.body
        }
    };
    let c = changes(&branch).await;
    let exits = |c: &Value| {
        c["decreases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == "exit")
            .map(|x| x["n"].as_i64().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(exits(&c), 1, "{c}");
    let h = branch.get("/api/v1/history?reason=exit&per_page=200").await;
    let history = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["member"]["id"] == ids[2].as_str())
        .and_then(|i| i["history_id"].as_str())
        .expect("the exit in history")
        .to_string();
    let r = k
        .post(
            &format!("/api/v1/history/{history}/recover"),
            json!({"reason": "误操作"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    tally_is_exact(url, "after a recovery").await;
    let c = changes(&branch).await;
    assert_eq!(exits(&c), 0, "a recovery cancels the loss: {c}");
    assert_eq!(c["recovered"], 1, "{c}");

    // Transfer arrival in a sibling branch.
    let officer = server.sign_in(&server.account("security", None)).await;
    let sibling = committee
        .get(&format!("/api/v1/orgs/{}/children?per_page=100", t2.org_id))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == "631" && o["id"] != t3.org_id.as_str())
        .map(|o| o["id"].as_str().unwrap().to_string())
        .expect("a sibling branch");
    let receiver = server
        .sign_in(&server.new_admin(&officer, &sibling, 60).await)
        .await;
    let r = branch
        .post(
            "/api/v1/transfers",
            json!({
                "member_id": ids[1], "kind": "county", "to_org_id": sibling, "reason": "工作调动",
                "date": "2026-11-20", "dues_paid_to": "2026-10",
                "contacts": {
                    "source": {"contact": "王联系", "phone": "0531-85859202"},
                    "committee": {"contact": "李组织", "phone": "0531-85859203", "fax": "0531-85859888",
                                  "postcode": "250022", "address": "泉城市东岭县测试路1号"},
                    "receiving": {"contact": "赵接收", "phone": "13800138000"}
                }
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let t = r.body["id"].as_str().unwrap().to_string();
    let r = committee
        .post(
            &format!("/api/v1/transfers/{t}/decision"),
            json!({"decision": "approve", "opinion": "同意"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = receiver
        .post(
            &format!("/api/v1/transfers/{t}/receive"),
            json!({"opinion": "已接收"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    tally_is_exact(url, "after a transfer").await;
    api_matches_members(&committee, url, &t2.org_id, &committee_code).await;

    // Twenty writes at once: ten entries and ten edits.
    let existing: Vec<String> = branch
        .get(&format!("/api/v1/orgs/{}/members?per_page=10", t3.org_id))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let mut tasks = Vec::new();
    for seq in 0..10u32 {
        let api = branch.clone();
        let org = t3.org_id.clone();
        tasks.push(tokio::spawn(async move {
            new_member(&api, &org, 100 + seq).await.map(|_| ())
        }));
    }
    for (i, id) in existing.iter().enumerate() {
        let api = branch.clone();
        let path = format!("/api/v1/members/{id}");
        let education = ["14", "31", "21"][i % 3];
        tasks.push(tokio::spawn(async move {
            let r = api.patch(&path, json!({"education": education})).await;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{} {:?}", r.status, r.body))
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    tally_is_exact(url, "after parallel writes").await;
    api_matches_members(&k, url, &county.org_id, &county_code).await;

    // Registration statistics: real counts, children summing to the parent.
    let r = k
        .get(&format!(
            "/api/v1/stats/registration?org_id={}",
            county.org_id
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let members: i64 = r.body["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["members"].as_i64().unwrap())
        .sum();
    assert_eq!(members, r.body["members"].as_i64().unwrap());
    assert!(r.body["registered"].as_i64().unwrap() <= members);

    // Scope: the branch admin may not count its committee; another county is out of reach.
    let r = branch
        .get(&format!("/api/v1/stats/members?org_id={}", t2.org_id))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = branch.get("/api/v1/stats/members?org_id=nope").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = branch
        .get(&format!(
            "/api/v1/stats/changes?org_id={}&year=1800",
            t3.org_id
        ))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor.get("/api/v1/stats/members").await;
    assert_eq!(r.status, 403, "{:?}", r.body);

    // The export: an xlsx, audited.
    let r = committee
        .get(&format!(
            "/api/v1/stats/members/export.xlsx?org_id={}",
            t2.org_id
        ))
        .await;
    assert_eq!(r.status, 200);
    // The page and the forms.
    for path in [
        format!("/stats?org_id={}", t2.org_id),
        format!("/stats?org_id={}&tab=registration", t2.org_id),
        format!("/stats?org_id={}&tab=changes", t2.org_id),
        format!("/members/{}/form", ids[0]),
        format!("/orgs/{}/form", t3.org_id),
        "/forms/member".to_string(),
        "/forms/org".to_string(),
    ] {
        let r = committee.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let r = branch.get(&format!("/stats?org_id={}", t2.org_id)).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn tallies_stay_exact_on_sqlite() {
    let server = Server::demo(300, None).await;
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    exactness(&server, &url).await;
}

#[tokio::test]
async fn tallies_stay_exact_on_postgres() {
    let db = TestDb::postgres().await;
    let url = db.url.clone();
    let server = Server::demo(300, Some(db)).await;
    exactness(&server, &url).await;
}
