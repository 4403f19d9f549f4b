//! Comprehensive query 综合查询 on both engines: every mode on clear and encrypted fields
//! returns exactly the members a direct SQL read (and, for sealed values, a direct
//! decryption with the server's key file) finds, on a demo of a few thousand synthetic
//! members with condition values drawn at random; the scope of a county admin; every bad
//! condition named at once; sorting; organisations and units; the export (watermark, masked
//! numbers, audited); saved queries 固定查询 (owner only, one name per account and kind even
//! when saved in parallel).

use std::collections::BTreeSet;

use dangjian_server::crypto::{self, Column, KeyFile, Keys};
use dangjian_tests::{Api, Server, TestDb};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::Row;

/// A member as read directly from the database, sealed values opened.
#[derive(Debug, Clone)]
struct Direct {
    id: String,
    name: String,
    sex: String,
    ethnicity: String,
    education: String,
    category: String,
    birth_date: String,
    joined_on: String,
    address: String,
    completeness: i64,
    lost_contact: i64,
    branch: String,
    id_number: String,
    phone: String,
}

async fn connect(server: &Server) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&server.db_url())
        .await
        .expect("connect to the server's database")
}

fn keys(server: &Server) -> Keys {
    let file = KeyFile::load(&crypto::key_path(server.data.path())).expect("key file");
    Keys::from_file(&file).expect("keys")
}

/// Every member of the subtree of `code`, read directly.
async fn direct_members(server: &Server, code: &str) -> Vec<Direct> {
    let mut conn = connect(server).await;
    let keys = keys(server);
    let rows = sqlx::query(
        "SELECT m.id, m.name, m.sex, m.ethnicity, m.education, m.category, m.birth_date, \
         m.joined_on, m.address, m.completeness, m.lost_contact, b.name AS branch, m.id_number, \
         m.phone FROM members m JOIN orgs b ON b.id = m.branch_id \
         WHERE m.org_code >= $1 AND m.org_code < $2",
    )
    .bind(code)
    .bind(format!("{code}~"))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.iter()
        .map(|r| Direct {
            id: r.get("id"),
            name: r.get("name"),
            sex: r.get("sex"),
            ethnicity: r.get("ethnicity"),
            education: r.get("education"),
            category: r.get("category"),
            birth_date: r.get("birth_date"),
            joined_on: r.get("joined_on"),
            address: r.get("address"),
            completeness: r.get("completeness"),
            lost_contact: r.get("lost_contact"),
            branch: r.get("branch"),
            id_number: keys
                .open(Column::MembersIdNumber, &r.get::<String, _>("id_number"))
                .unwrap(),
            phone: keys
                .open(Column::MembersPhone, &r.get::<String, _>("phone"))
                .unwrap(),
        })
        .collect()
}

/// Every id a query answers (all pages of 100), checking `total` on the way.
async fn query_ids(api: &Api, kind: &str, body: Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut page = 1;
    loop {
        let mut b = body.clone();
        b["page"] = json!(page);
        b["page_size"] = json!(100);
        let r = api.post(&format!("/api/v1/query/{kind}"), b.clone()).await;
        assert_eq!(r.status, 200, "{b}: {:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        for i in items {
            out.insert(i["id"].as_str().unwrap().to_string());
        }
        let total = r.body["total"].as_i64().unwrap();
        if items.len() < 100 {
            assert_eq!(out.len() as i64, total, "{b}");
            return out;
        }
        page += 1;
    }
}

fn expect(members: &[Direct], f: impl Fn(&Direct) -> bool) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| f(m))
        .map(|m| m.id.clone())
        .collect()
}

/// A random run of `len` characters of `s` starting at a random place (`left`: at the start,
/// `right`: at the end).
fn piece(rng: &mut StdRng, s: &str, len: usize, at: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = len.min(chars.len()).max(1);
    let start = match at {
        "left" => 0,
        "right" => chars.len() - len,
        _ => rng.gen_range(0..=chars.len() - len),
    };
    chars[start..start + len].iter().collect()
}

fn cond(field: &str, mode: &str, value: &str) -> Value {
    json!({"field": field, "mode": mode, "value": value})
}

async fn check(api: &Api, members: &[Direct], what: &str, conds: Value, want: BTreeSet<String>) {
    let got = query_ids(api, "members", json!({"conditions": conds})).await;
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {conds} answered {} members, directly {}",
        got.len(),
        want.len()
    );
    assert_eq!(got, want, "{what}: {conds}");
    let _ = members;
}

async fn query_modes(server: Server) {
    let seed: u64 = rand::random();
    eprintln!("query test seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let admin = server.account("admin", Some(1));
    let api = server.sign_in(&admin).await;
    let org = api.get(&format!("/api/v1/orgs/{}", admin.org_id)).await;
    let code = org.body["code"].as_str().unwrap().to_string();
    let all = direct_members(&server, &code).await;
    assert!(all.len() > 1000, "demo too small: {}", all.len());
    let m = &all;

    // Empty content is ignored: the defaults alone answer the whole subtree.
    let empty = json!([{"field": "name", "mode": "fuzzy", "value": " "},
        {"field": "sex", "mode": "multi", "values": []},
        {"field": "joined_on", "mode": "range", "from": "", "to": ""}]);
    check(&api, m, "empty", empty, expect(m, |_| true)).await;

    for round in 0..3 {
        let pick = m.choose(&mut rng).unwrap().clone();
        let other = m.choose(&mut rng).unwrap().clone();
        // Text: every mode.
        let v = piece(&mut rng, &pick.name, 1, "any");
        check(
            &api,
            m,
            "name fuzzy",
            json!([cond("name", "fuzzy", &v)]),
            expect(m, |x| x.name.contains(&v)),
        )
        .await;
        check(
            &api,
            m,
            "name exact",
            json!([cond("name", "exact", &pick.name)]),
            expect(m, |x| x.name == pick.name),
        )
        .await;
        let v = piece(&mut rng, &pick.name, 1, "left");
        check(
            &api,
            m,
            "name left",
            json!([cond("name", "left", &v)]),
            expect(m, |x| x.name.starts_with(&v)),
        )
        .await;
        let v = piece(&mut rng, &pick.name, 1, "right");
        check(
            &api,
            m,
            "name right",
            json!([cond("name", "right", &v)]),
            expect(m, |x| x.name.ends_with(&v)),
        )
        .await;
        let names = [pick.name.clone(), other.name.clone()];
        check(
            &api,
            m,
            "name multi",
            json!([{"field": "name", "mode": "multi", "values": names}]),
            expect(m, |x| names.contains(&x.name)),
        )
        .await;
        let v = piece(&mut rng, &pick.address, 2, "any");
        check(
            &api,
            m,
            "address fuzzy",
            json!([cond("address", "fuzzy", &v)]),
            expect(m, |x| x.address.contains(&v)),
        )
        .await;
        let v = piece(&mut rng, &pick.branch, 3, "any");
        check(
            &api,
            m,
            "branch fuzzy",
            json!([cond("branch", "fuzzy", &v)]),
            expect(m, |x| x.branch.contains(&v)),
        )
        .await;
        // Codes.
        check(
            &api,
            m,
            "sex exact",
            json!([cond("sex", "exact", &pick.sex)]),
            expect(m, |x| x.sex == pick.sex),
        )
        .await;
        let eth = [pick.ethnicity.clone(), other.ethnicity.clone()];
        check(
            &api,
            m,
            "ethnicity multi",
            json!([{"field": "ethnicity", "mode": "multi", "values": eth}]),
            expect(m, |x| eth.contains(&x.ethnicity)),
        )
        .await;
        let edu = [pick.education.clone(), other.education.clone()];
        check(
            &api,
            m,
            "education multi",
            json!([{"field": "education", "mode": "multi", "values": edu}]),
            expect(m, |x| edu.contains(&x.education)),
        )
        .await;
        check(
            &api,
            m,
            "lost_contact",
            json!([cond(
                "lost_contact",
                "exact",
                &pick.lost_contact.to_string()
            )]),
            expect(m, |x| x.lost_contact == pick.lost_contact),
        )
        .await;
        // Dates and numbers.
        let (a, b) = if pick.joined_on <= other.joined_on {
            (pick.joined_on.clone(), other.joined_on.clone())
        } else {
            (other.joined_on.clone(), pick.joined_on.clone())
        };
        check(
            &api,
            m,
            "joined_on range",
            json!([{"field": "joined_on", "mode": "range", "from": a, "to": b}]),
            expect(m, |x| x.joined_on >= a && x.joined_on <= b),
        )
        .await;
        check(
            &api,
            m,
            "joined_on from",
            json!([{"field": "joined_on", "mode": "range", "from": b, "to": ""}]),
            expect(m, |x| x.joined_on >= b),
        )
        .await;
        check(
            &api,
            m,
            "birth_date exact",
            json!([cond("birth_date", "exact", &pick.birth_date)]),
            expect(m, |x| x.birth_date == pick.birth_date),
        )
        .await;
        let lo = rng.gen_range(0..=100i64);
        check(
            &api,
            m,
            "completeness range",
            json!([{"field": "completeness", "mode": "range", "from": lo.to_string()}]),
            expect(m, |x| x.completeness >= lo),
        )
        .await;
        // Combined: name fuzzy and category.
        let v = piece(&mut rng, &pick.name, 1, "any");
        check(
            &api,
            m,
            "name + category",
            json!([
                cond("name", "fuzzy", &v),
                cond("category", "exact", &pick.category)
            ]),
            expect(m, |x| x.name.contains(&v) && x.category == pick.category),
        )
        .await;

        // The sealed ID number in every mode, against a direct decryption.
        let n = &pick.id_number;
        check(
            &api,
            m,
            "id exact",
            json!([cond("id_number", "exact", n)]),
            expect(m, |x| &x.id_number == n),
        )
        .await;
        for len in [[3, 6, 9, 14, 16][round % 5], rng.gen_range(1..=18)] {
            let v = piece(&mut rng, n, len, "left");
            check(
                &api,
                m,
                "id left",
                json!([cond("id_number", "left", &v)]),
                expect(m, |x| x.id_number.starts_with(&v)),
            )
            .await;
        }
        for len in [4, rng.gen_range(1..=8)] {
            let v = piece(&mut rng, n, len, "right");
            check(
                &api,
                m,
                "id right",
                json!([cond("id_number", "right", &v)]),
                expect(m, |x| x.id_number.ends_with(&v)),
            )
            .await;
        }
        let len = rng.gen_range(3..=8);
        let v = piece(&mut rng, n, len, "any");
        check(
            &api,
            m,
            "id fuzzy",
            json!([cond("id_number", "fuzzy", &v)]),
            expect(m, |x| x.id_number.contains(&v)),
        )
        .await;
        // The sealed phone.
        let p = &pick.phone;
        let v = piece(&mut rng, p, 4, "any");
        check(
            &api,
            m,
            "phone fuzzy",
            json!([cond("phone", "fuzzy", &v)]),
            expect(m, |x| x.phone.contains(&v)),
        )
        .await;
        let v = piece(&mut rng, p, 5, "left");
        check(
            &api,
            m,
            "phone left",
            json!([cond("phone", "left", &v)]),
            expect(m, |x| x.phone.starts_with(&v)),
        )
        .await;
        let v = piece(&mut rng, p, 3, "right");
        check(
            &api,
            m,
            "phone right",
            json!([cond("phone", "right", &v)]),
            expect(m, |x| x.phone.ends_with(&v)),
        )
        .await;
        check(
            &api,
            m,
            "phone exact",
            json!([cond("phone", "exact", p)]),
            expect(m, |x| &x.phone == p),
        )
        .await;
    }

    // LIKE wildcards are text, not patterns.
    check(
        &api,
        m,
        "wildcards",
        json!([cond("name", "fuzzy", "%"), cond("address", "fuzzy", "_")]),
        expect(m, |x| x.name.contains('%') && x.address.contains('_')),
    )
    .await;

    // Sorting by a shown column, ties by id; a page of the right size; names link to records.
    let r = api
        .post(
            "/api/v1/query/members",
            json!({"sort": {"field": "joined_on", "dir": "desc"}, "page_size": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for w in items.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (ja, jb) = (
            a["cells"]["joined_on"].as_str().unwrap(),
            b["cells"]["joined_on"].as_str().unwrap(),
        );
        assert!(
            ja > jb || (ja == jb && a["id"].as_str() < b["id"].as_str()),
            "{a} before {b}"
        );
    }
    assert_eq!(
        items[0]["href"],
        format!("/members/{}", items[0]["id"].as_str().unwrap())
    );
    let masked = items[0]["cells"]["id_number"].as_str().unwrap();
    assert!(masked.contains('*'), "{masked}");

    // Every bad condition named at once, in Chinese.
    let r = api
        .post(
            "/api/v1/query/members",
            json!({"conditions": [
                cond("shoe_size", "exact", "42"),
                cond("sex", "fuzzy", "男"),
                {"field": "joined_on", "mode": "range", "from": "2020-02-30"},
                cond("name", "fuzzy", "张"),
                cond("id_number", "multi", "x")
            ], "page_size": 7}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "conditions[0].field",
            "conditions[1].mode",
            "conditions[2].from",
            "conditions[4].mode",
            "page_size"
        ],
        "{:?}",
        r.body
    );
    assert!(r.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("第1个条件"));

    // Scope: a county admin sees its county only, and not the city.
    let county = server.county_admin();
    let c = server.sign_in(&county).await;
    let county_code = c.get(&format!("/api/v1/orgs/{}", county.org_id)).await.body["code"]
        .as_str()
        .unwrap()
        .to_string();
    let got = query_ids(&c, "members", json!({"conditions": []})).await;
    let inside = direct_members(&server, &county_code).await;
    assert_eq!(got, expect(&inside, |_| true));
    assert!(got.len() < all.len());
    let r = c
        .post("/api/v1/query/members", json!({"org_id": admin.org_id}))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let v = piece(
        &mut rng,
        &all.iter()
            .find(|x| !x.id_number.is_empty())
            .unwrap()
            .id_number,
        2,
        "any",
    );
    let got = query_ids(
        &c,
        "members",
        json!({"conditions": [cond("id_number", "fuzzy", &v)]}),
    )
    .await;
    assert_eq!(got, expect(&inside, |x| x.id_number.contains(&v)));
    // Without 包含下级: the branch's own members only.
    let some = &inside[0];
    let mut conn = connect(&server).await;
    let branch_id: String = sqlx::query_scalar("SELECT branch_id FROM members WHERE id = $1")
        .bind(&some.id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let own: Vec<String> = sqlx::query_scalar("SELECT id FROM members WHERE branch_id = $1")
        .bind(&branch_id)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let got = query_ids(
        &c,
        "members",
        json!({"org_id": branch_id, "include_sub": false}),
    )
    .await;
    assert_eq!(got, own.into_iter().collect::<BTreeSet<_>>());

    // Organisations and units, through the same engine.
    let orgs: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, name, category FROM orgs WHERE code >= $1 AND code < $2")
            .bind(&code)
            .bind(format!("{code}~"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let (_, oname, ocat) = orgs.choose(&mut rng).unwrap().clone();
    let v = piece(&mut rng, &oname, 2, "any");
    let got = query_ids(
        &api,
        "orgs",
        json!({"conditions": [cond("name", "fuzzy", &v)]}),
    )
    .await;
    let want: BTreeSet<String> = orgs
        .iter()
        .filter(|o| o.1.contains(&v))
        .map(|o| o.0.clone())
        .collect();
    assert_eq!(got, want, "orgs name fuzzy {v}");
    let got = query_ids(
        &api,
        "orgs",
        json!({"conditions": [{"field": "category", "mode": "multi", "values": [ocat]}]}),
    )
    .await;
    let want: BTreeSet<String> = orgs
        .iter()
        .filter(|o| o.2 == ocat)
        .map(|o| o.0.clone())
        .collect();
    assert_eq!(got, want, "orgs category {ocat}");
    let units: Vec<(String, String)> =
        sqlx::query_as("SELECT id, name FROM units WHERE owner_code >= $1 AND owner_code < $2")
            .bind(&code)
            .bind(format!("{code}~"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(!units.is_empty());
    let (_, uname) = units.choose(&mut rng).unwrap().clone();
    let v = piece(&mut rng, &uname, 2, "left");
    let got = query_ids(
        &api,
        "units",
        json!({"conditions": [cond("name", "left", &v)]}),
    )
    .await;
    let want: BTreeSet<String> = units
        .iter()
        .filter(|u| u.1.starts_with(&v))
        .map(|u| u.0.clone())
        .collect();
    assert_eq!(got, want, "units name left {v}");

    // The export: every matching row, watermark, masked numbers, audited.
    let pick = all.choose(&mut rng).unwrap().clone();
    let v = piece(&mut rng, &pick.name, 1, "left");
    let res = api
        .client
        .post(format!("{}/api/v1/query/members/export.xlsx", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"conditions": [cond("name", "left", &v)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "not a zip");
    let text = xlsx_text(&bytes);
    assert!(text.contains("导出人："), "no watermark");
    let want: Vec<&Direct> = all.iter().filter(|x| x.name.starts_with(&v)).collect();
    for x in &want {
        assert!(text.contains(&x.name), "{} missing from the export", x.name);
        assert!(
            !text.contains(&x.id_number),
            "a whole ID number in the export"
        );
    }
    assert!(text.contains(&dangjian_server::member::idcard::mask(&want[0].id_number)));
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor.get("/api/v1/audit?action=query.export").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["action"] == "query.export"),
        "{:?}",
        r.body
    );
    // Security officers and auditors do no business.
    let r = auditor.post("/api/v1/query/members", json!({})).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
}

/// The xlsx's strings and first sheet as text.
fn xlsx_text(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("dj-qxlsx-{}", uuid::Uuid::new_v4()));
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

#[tokio::test]
async fn query_modes_match_direct_reads_on_sqlite() {
    query_modes(Server::demo(3000, None).await).await;
}

#[tokio::test]
async fn query_modes_match_direct_reads_on_postgres() {
    query_modes(Server::demo(3000, Some(TestDb::postgres().await)).await).await;
}

async fn saved_queries(server: Server) {
    let admin = server.account("admin", Some(1));
    let api = server.sign_in(&admin).await;
    let body = json!({"kind": "members", "name": "本月新党员",
        "conditions": [cond("name", "fuzzy", "张"), cond("category", "exact", "probationary")],
        "sort": {"field": "joined_on", "dir": "desc"}});
    // The same name saved eight times at once: one 201, seven 409.
    let answers = futures_util::future::join_all(
        (0..8).map(|_| api.post("/api/v1/query/saved", body.clone())),
    )
    .await;
    let created: Vec<_> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|r| r.status == 201 || r.status == 409),
        "{answers:?}"
    );
    assert!(answers
        .iter()
        .filter(|r| r.status == 409)
        .all(|r| r.field() == Some("name")));
    let id = created[0].body["id"].as_str().unwrap().to_string();
    // The same name under another kind is another query.
    let r = api
        .post(
            "/api/v1/query/saved",
            json!({"kind": "orgs", "name": "本月新党员", "conditions": []}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = api.get("/api/v1/query/saved?kind=members").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["conditions"][1]["value"], "probationary");
    assert_eq!(list[0]["sort"]["field"], "joined_on");
    // A bad condition is refused before saving.
    let r = api
        .post(
            "/api/v1/query/saved",
            json!({"kind": "members", "name": "坏的", "conditions": [cond("nope", "exact", "1")]}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.field(), Some("conditions[0].field"));
    // Another account neither sees nor deletes it.
    let other = server.sign_in(&server.county_admin()).await;
    let r = other.get("/api/v1/query/saved?kind=members").await;
    assert_eq!(r.body.as_array().unwrap().len(), 0);
    let r = other.delete(&format!("/api/v1/query/saved/{id}")).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = api.delete(&format!("/api/v1/query/saved/{id}")).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = api.delete(&format!("/api/v1/query/saved/{id}")).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[tokio::test]
async fn saved_queries_one_name_per_account_on_sqlite() {
    saved_queries(Server::demo(50, None).await).await;
}

#[tokio::test]
async fn saved_queries_one_name_per_account_on_postgres() {
    saved_queries(Server::demo(50, Some(TestDb::postgres().await)).await).await;
}
