//! API suite: a real `dangjian-server demo` process over HTTPS on a random port, driven as a
//! client would. Every bad input gets its status, a Chinese message and the field, and changes
//! nothing; every actor stays inside its scope.

use chrono::{Datelike, NaiveDate};
use dangjian_tests::{current_code, vectors, Api, Server, TestDb};
use serde_json::{json, Value};

/// A valid ID number born 1985-06-30 with sequence `seq` (odd: male).
fn valid_id(seq: u16) -> String {
    dangjian_server::member::idcard::compose(
        "370102",
        NaiveDate::from_ymd_opt(1985, 6, 30).unwrap(),
        seq,
    )
}

/// A valid unified social credit code with an 8-character organisation body.
fn valid_credit(body: &str) -> String {
    dangjian_server::unit::credit_code::compose("91", "370102", body)
}

fn birth_of(id: &str) -> Option<NaiveDate> {
    let digits = id.get(6..14)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// A complete member for `branch_id` with the given ID number; dates follow the birth date.
fn member_json(branch_id: &str, id_number: &str) -> Value {
    let birth = birth_of(id_number).unwrap_or(NaiveDate::from_ymd_opt(1980, 1, 1).unwrap());
    let joined = NaiveDate::from_ymd_opt(birth.year() + 20, 3, 1).unwrap();
    let full = NaiveDate::from_ymd_opt(birth.year() + 21, 3, 2).unwrap();
    json!({
        "name": "测试党员",
        "id_number": id_number,
        "ethnicity": "01",
        "education": "21",
        "category": "full",
        "branch_id": branch_id,
        "joined_on": joined.to_string(),
        "full_on": full.to_string(),
        "job": "worker",
        "phone": "13800001111",
        "address": "泉山省东岭县测试路1号",
    })
}

async fn member_total(api: &Api, org_id: &str) -> i64 {
    let r = api
        .get(&format!("/api/v1/orgs/{org_id}/members?include_sub=1"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["total"].as_i64().unwrap()
}

/// The first child of `org_id` with `category`.
async fn child_with_category(api: &Api, org_id: &str, category: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/orgs/{org_id}/children?per_page=200"))
        .await;
    assert_eq!(r.status, 200);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == category)
        .cloned()
        .unwrap_or_else(|| panic!("no child of category {category}"))
}

/// `page` below 1 and `per_page` outside 1…200 are refused with 400 naming the field (not
/// clamped), and the OpenAPI document declares the same bounds for every paged list.
#[tokio::test]
async fn paging_out_of_range_is_refused_and_declared() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let org = &tier3.org_id;
    for (query, field) in [
        ("per_page=201", "per_page"),
        ("per_page=0", "per_page"),
        ("per_page=-5", "per_page"),
        ("page=0", "page"),
        ("page=-1&per_page=20", "page"),
    ] {
        for path in [
            format!("/api/v1/orgs/{org}/members?{query}"),
            format!("/api/v1/orgs/{org}/children?{query}"),
            format!("/api/v1/units?{query}"),
        ] {
            let r = api.get(&path).await;
            assert_eq!(r.status, 400, "{path}: {:?}", r.body);
            assert_eq!(r.field(), Some(field), "{path}");
        }
    }
    // An empty value is not an integer either (not the default).
    for query in ["per_page=", "page=", "page=&per_page=5", "per_page=abc"] {
        for path in [
            format!("/api/v1/orgs/{org}/members?{query}"),
            format!("/api/v1/units?{query}"),
        ] {
            let r = api.get(&path).await;
            assert_eq!(r.status, 400, "{path}: {:?}", r.body);
            assert_eq!(r.body["error"]["code"], "bad_request", "{path}");
        }
    }
    let r = api
        .get(&format!("/api/v1/orgs/{org}/members?per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["per_page"], 200);
    let doc = server.get_json("/api/v1/openapi.json").await;
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let bounds = (&p["schema"]["minimum"], &p["schema"]["maximum"]);
                match p["name"].as_str() {
                    Some("per_page") => {
                        lists += 1;
                        assert_eq!(bounds, (&json!(1), &json!(200)), "{method} {path}");
                    }
                    Some("page") => assert_eq!(bounds.0, &json!(1), "{method} {path}"),
                    _ => {}
                }
            }
        }
    }
    assert!(lists >= 6, "{lists} paged lists");
}

#[tokio::test]
async fn tier3_admin_signs_in_and_lists_branch_members() {
    let server = Server::demo(300, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let session = api.get("/api/v1/session").await;
    assert_eq!(session.status, 200);
    assert_eq!(session.body["active_role"]["org_id"], tier3.org_id.as_str());
    assert!(session.body["csrf_token"].as_str().unwrap().len() > 20);
    let list = api
        .get(&format!(
            "/api/v1/orgs/{}/members?page=1&per_page=5",
            tier3.org_id
        ))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert!(list.body["total"].as_i64().unwrap() > 0);
    assert_eq!(list.body["per_page"], 5);
    let first = &list.body["items"][0];
    assert!(
        first["id_number"].as_str().unwrap().contains("********"),
        "masked in lists"
    );
    assert_eq!(first["branch_id"], tier3.org_id.as_str());
    // The record page, unmasked, is audited and shows the whole number.
    let id = first["id"].as_str().unwrap();
    let full = api.get(&format!("/api/v1/members/{id}?unmask=1")).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body["id_number"].as_str().unwrap().len(), 18);
    assert!(!full.body["id_number"].as_str().unwrap().contains('*'));
    // Sign out ends the session.
    assert_eq!(api.delete("/api/v1/session").await.status, 204);
    assert_eq!(api.get("/api/v1/session").await.status, 401);
}

#[tokio::test]
async fn citizen_id_vectors_get_their_verdicts_through_post_members() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let before = member_total(&api, &tier3.org_id).await;
    let mut accepted = 0;
    for (value, expected, note) in vectors("citizen_id.tsv") {
        let mut body = member_json(&tier3.org_id, &value);
        if expected == "unknown" {
            body["sex"] = json!("female");
            body["birth_date"] = json!("1970-05-05");
            body["joined_on"] = json!("1995-05-05");
            body["full_on"] = json!("1996-06-06");
            // The placeholder asks for confirmation first, then stays flagged on the record.
            let r = api.post("/api/v1/members", body.clone()).await;
            assert_eq!(
                (r.status, r.field()),
                (400, Some("id_number")),
                "{:?}",
                r.body
            );
            assert!(r.message().contains("已核实"), "{:?}", r.body);
            body["confirm_contradictions"] = json!(true);
        }
        let r = api.post("/api/v1/members", body).await;
        if expected == "unknown" {
            assert_eq!(r.body["flags"], json!(["身份证号不明确"]), "{:?}", r.body);
        }
        match expected.as_str() {
            "valid" | "unknown" => {
                assert_eq!(
                    r.status, 201,
                    "{value} ({note}) should be accepted: {:?}",
                    r.body
                );
                accepted += 1;
            }
            _ => {
                assert_eq!(
                    r.status, 400,
                    "{value} ({note}) should be refused: {:?}",
                    r.body
                );
                assert_eq!(r.field(), Some("id_number"), "{value}: {:?}", r.body);
                assert!(!r.message().is_empty());
            }
        }
    }
    assert_eq!(member_total(&api, &tier3.org_id).await, before + accepted);
}

#[tokio::test]
async fn lower_case_x_is_accepted_and_stored_upper_case() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let (with_x, _, _) = vectors("citizen_id.tsv")
        .into_iter()
        .find(|(v, e, _)| e == "valid" && v.ends_with('X'))
        .expect("a valid vector ending in X");
    let r = api
        .post(
            "/api/v1/members",
            member_json(&tier3.org_id, &with_x.to_lowercase()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let full = api.get(&format!("/api/v1/members/{id}?unmask=1")).await;
    assert_eq!(full.body["id_number"], with_x.as_str());
    // Sex and birth date come from the number.
    assert_eq!(
        full.body["birth_date"],
        birth_of(&with_x).unwrap().to_string()
    );
    let odd = (with_x.as_bytes()[16] - b'0') % 2 == 1;
    assert_eq!(full.body["sex"], if odd { "male" } else { "female" });
    // The same number again is a duplicate.
    let again = api
        .post("/api/v1/members", member_json(&tier3.org_id, &with_x))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.field(), Some("id_number"));
}

#[tokio::test]
async fn credit_code_vectors_get_their_verdicts_through_post_units() {
    let server = Server::demo(20, None).await;
    let tier2 = server.account("admin", Some(2));
    let api = server.sign_in(&tier2).await;
    for (i, (value, expected, note)) in vectors("credit_code.tsv").into_iter().enumerate() {
        let r = api
            .post(
                "/api/v1/units",
                json!({"name": format!("向量测试单位{i}"), "credit_code": value, "category": "2",
                       "has_party_group": false, "party_org_situation": 1}),
            )
            .await;
        if expected == "valid" {
            assert_eq!(r.status, 201, "{value} ({note}): {:?}", r.body);
            assert_eq!(r.body["credit_code"], value.to_uppercase().as_str());
        } else {
            assert_eq!(r.status, 400, "{value} ({note}): {:?}", r.body);
            assert_eq!(r.field(), Some("credit_code"));
        }
    }
}

#[tokio::test]
async fn bad_member_input_is_refused_naming_the_field_and_changes_nothing() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let before = member_total(&api, &tier3.org_id).await;
    let good_id = valid_id(123);
    let good_id = good_id.as_str();
    let mut cases: Vec<(Value, u16, &str)> = Vec::new();
    let base = member_json(&tier3.org_id, good_id);
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    cases.push((with("joined_on", json!("2000-01-01")), 400, "joined_on")); // < 16 years after 1985
    cases.push((with("full_on", json!("2005-04-01")), 400, "full_on")); // < 1 year after 2005-03-01
    cases.push((with("joined_on", json!("2099-01-01")), 400, "joined_on"));
    cases.push((with("full_on", json!("2099-01-01")), 400, "full_on"));
    cases.push((with("id_number", json!(&good_id[..17])), 400, "id_number"));
    cases.push((
        with(
            "id_number",
            json!(format!("{} {}", &good_id[..11], &good_id[12..])),
        ),
        400,
        "id_number",
    ));
    cases.push((with("phone", json!("12345")), 400, "phone"));
    cases.push((with("ethnicity", json!("99")), 400, "ethnicity"));
    cases.push((with("category", json!("probationary")), 400, "full_on"));
    cases.push((with("name", json!("")), 400, "name"));
    cases.push((with("branch_id", json!("no-such-org")), 400, "branch_id"));
    cases.push((with("joined_on", json!("not a date")), 400, "joined_on"));
    cases.push((with("lost_contact", json!("yes")), 400, "lost_contact"));
    for (body, status, field) in cases {
        let r = api.post("/api/v1/members", body.clone()).await;
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        assert_eq!(r.field(), Some(field), "{body}: {:?}", r.body);
        assert!(
            r.message()
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "Chinese message: {:?}",
            r.body
        );
    }
    // Malformed JSON and an oversized body.
    let raw = api
        .client
        .post(format!("{}/api/v1/members", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let err: Value = raw.json().await.unwrap();
    assert_eq!(err["error"]["code"], "bad_request");
    // A JSON body sent as text/plain (what a cross-site form or a no-cors fetch can send
    // without a preflight), as a form, or with no type at all: 415, nothing written.
    let body = base.to_string();
    for ctype in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = api
            .client
            .post(format!("{}/api/v1/members", api.base))
            .bearer_auth(&api.token)
            .body(body.clone());
        if let Some(t) = ctype {
            req = req.header("content-type", t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 415, "{ctype:?}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "unsupported_media_type", "{ctype:?}");
        assert!(err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json"));
    }
    let res = api
        .client
        .post(format!("{}/api/v1/members", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "JSON with a charset is still JSON");
    // A 10 MB body, sent with curl (which reads the early 413 answer while still sending).
    let big = server.data.path().join("big.json");
    std::fs::write(&big, vec![b' '; 10 * 1024 * 1024]).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(server.data.path().join("tls/ca.crt"))
        .args([
            "-H",
            &format!("Authorization: Bearer {}", api.token),
            "-H",
            "content-type: application/json",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .arg(format!("{}/api/v1/members", api.base))
        .output()
        .expect("run curl");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.trim_end().ends_with("413"), "{printed}");
    assert!(printed.contains("body_too_large"), "{printed}");
    assert_eq!(member_total(&api, &tier3.org_id).await, before);
    // Unknown ids.
    assert_eq!(api.get("/api/v1/orgs/no-such-org").await.status, 404);
    assert_eq!(api.get("/api/v1/members/no-such-member").await.status, 404);
    assert_eq!(
        api.patch(
            "/api/v1/members/no-such-member",
            json!({"phone": "13800000000"})
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn organisation_rules_and_lifecycle() {
    let server = Server::demo(200, None).await;
    let tier2 = server.account("admin", Some(2));
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier2).await;
    let committee = api.get(&format!("/api/v1/orgs/{}", tier2.org_id)).await;
    assert_eq!(committee.body["category"], "611");
    let general = child_with_category(&api, &tier2.org_id, "621").await;
    let general_id = general["id"].as_str().unwrap();
    let org = |parent: &str, name: &str, category: &str| {
        json!({"parent_id": parent, "name": name, "category": category, "secretary": "王书记", "contact_name": "联系人",
               "contact_phone": "0531-88886666", "unit_mode": "same_as_parent", "founded_on": "2020-01-01"})
    };
    // A branch category under a branch; a 611 committee under a 621 general branch.
    let r = api
        .post("/api/v1/orgs", org(&tier3.org_id, "支部下的支部", "631"))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (400, Some("category")),
        "{:?}",
        r.body
    );
    let r = api
        .post("/api/v1/orgs", org(general_id, "总支下的党委", "611"))
        .await;
    assert_eq!(
        (r.status, r.field()),
        (400, Some("category")),
        "{:?}",
        r.body
    );
    // Missing contact phone, bad unit mode.
    let mut no_phone = org(general_id, "新建第九支部", "631");
    no_phone["contact_phone"] = json!("");
    let r = api.post("/api/v1/orgs", no_phone).await;
    assert_eq!((r.status, r.field()), (400, Some("contact_phone")));
    // An empty 组织新增 names every required field at once, in form order.
    let r = api
        .post("/api/v1/orgs", json!({"parent_id": general_id}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let named: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "category",
            "name",
            "secretary",
            "contact_name",
            "contact_phone",
            "founded_on"
        ],
        "{:?}",
        r.body
    );
    assert_eq!(r.body["error"]["field"], "category");
    assert!(r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| !e["message"].as_str().unwrap().is_empty()));
    // A code outside the 隶属关系 list is refused; a code of it is kept and shown as its label.
    let mut bad = org(general_id, "新建第九支部", "631");
    bad["subordination"] = json!("省委");
    bad["contact_phone"] = json!("12345");
    let r = api.post("/api/v1/orgs", bad).await;
    let named: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["contact_phone", "subordination"], "{:?}", r.body);
    // Create a branch under the general branch: it gets the next code below its parent.
    let r = api
        .post("/api/v1/orgs", org(general_id, "新建第九支部", "631"))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let new_id = r.body["id"].as_str().unwrap().to_string();
    let code = r.body["code"].as_str().unwrap();
    assert!(code.starts_with(general["code"].as_str().unwrap()));
    assert_eq!(code.len(), general["code"].as_str().unwrap().len() + 2);
    let dup = api
        .post("/api/v1/orgs", org(general_id, "新建第九支部", "631"))
        .await;
    assert_eq!((dup.status, dup.field()), (409, Some("name")));
    // Rename and edit.
    let r = api
        .patch(
            &format!("/api/v1/orgs/{new_id}"),
            json!({"name": "新建第十支部", "secretary": "张书记"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], "新建第十支部");
    // The admin cannot rename their own organisation.
    let r = api
        .patch(
            &format!("/api/v1/orgs/{}", tier2.org_id),
            json!({"name": "改名"}),
        )
        .await;
    assert_eq!(r.status, 403);
    // Change category to a temporary organisation and back.
    let r = api
        .post(
            &format!("/api/v1/orgs/{new_id}/category"),
            json!({"category": "9"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["category"], "9");
    // Enter a member, then deletion is refused naming the member.
    let m = api
        .post("/api/v1/members", member_json(&new_id, &valid_id(123)))
        .await;
    assert_eq!(m.status, 201, "{:?}", m.body);
    let r = api.delete(&format!("/api/v1/orgs/{new_id}")).await;
    assert_eq!(r.status, 409);
    assert!(r.message().contains("1名党员"), "{:?}", r.body);
    // Deleting a general branch names its children.
    let r = api.delete(&format!("/api/v1/orgs/{general_id}")).await;
    assert_eq!(r.status, 409);
    assert!(r.message().contains("下级党组织"), "{:?}", r.body);
    // Revoke needs a document number; an empty organisation can be revoked, then takes nothing new.
    let empty = api
        .post("/api/v1/orgs", org(general_id, "待撤销支部", "631"))
        .await;
    let empty_id = empty.body["id"].as_str().unwrap().to_string();
    let r = api
        .post(
            &format!("/api/v1/orgs/{empty_id}/revoke"),
            json!({"reason": "合并"}),
        )
        .await;
    assert_eq!((r.status, r.field()), (400, Some("document_no")));
    let r = api
        .post(
            &format!("/api/v1/orgs/{empty_id}/revoke"),
            json!({"document_no": "东组字〔2026〕5号", "reason": "合并"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "revoked");
    let r = api
        .post("/api/v1/members", member_json(&empty_id, &valid_id(124)))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    // An organisation created by mistake is deleted.
    let oops = api
        .post("/api/v1/orgs", org(general_id, "误建支部", "631"))
        .await;
    let oops_id = oops.body["id"].as_str().unwrap();
    assert_eq!(
        api.delete(&format!("/api/v1/orgs/{oops_id}")).await.status,
        204
    );
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{oops_id}")).await.status,
        404
    );
    // The general branch's children page shows counts.
    let kids = api
        .get(&format!("/api/v1/orgs/{general_id}/children"))
        .await;
    let row = kids.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == new_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["member_count"], 1);
}

#[tokio::test]
async fn units_are_unique_and_linked_units_cannot_be_deleted() {
    let server = Server::demo(20, None).await;
    let tier2 = server.account("admin", Some(2));
    let api = server.sign_in(&tier2).await;
    let unit = |name: &str, code: &str| json!({"name": name, "credit_code": code, "category": "2", "has_party_group": false, "party_org_situation": 1});
    let code = valid_credit("MA3C4D5E");
    let a = api
        .post("/api/v1/units", unit("东岭测试机械有限公司", &code))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let dup_name = api
        .post(
            "/api/v1/units",
            unit("东岭测试机械有限公司", &valid_credit("M000100Y")),
        )
        .await;
    assert_eq!(
        (dup_name.status, dup_name.field()),
        (409, Some("name")),
        "{:?}",
        dup_name.body
    );
    let dup_code = api.post("/api/v1/units", unit("另一家公司", &code)).await;
    assert_eq!(
        (dup_code.status, dup_code.field()),
        (409, Some("credit_code")),
        "{:?}",
        dup_code.body
    );
    // Situation 3 needs a managing organisation.
    let mut s3 = unit("应建未建单位", &valid_credit("M000100Y"));
    s3["party_org_situation"] = json!(3);
    let r = api.post("/api/v1/units", s3.clone()).await;
    assert_eq!((r.status, r.field()), (400, Some("managing_org_id")));
    // The committee's own unit is linked: deleting it is refused.
    let committee = api.get(&format!("/api/v1/orgs/{}", tier2.org_id)).await;
    let linked = committee.body["units"][0]["id"].as_str().unwrap();
    let r = api.delete(&format!("/api/v1/units/{linked}")).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    let list = api.get("/api/v1/units?q=东岭测试").await;
    assert_eq!(list.body["total"], 1);
}

#[tokio::test]
async fn admins_stay_inside_their_scope_and_officers_do_no_business() {
    let server = Server::demo(300, None).await;
    let tier2 = server.account("admin", Some(2));
    let tier3 = server.account("admin", Some(3));
    let boss = server.sign_in(&tier2).await;
    let api = server.sign_in(&tier3).await;
    let own = api.get(&format!("/api/v1/orgs/{}", tier3.org_id)).await;
    let parent_id = own.body["parent_id"].as_str().unwrap().to_string();
    // A sibling branch B with members, seen by the tier-2 admin.
    let siblings = boss
        .get(&format!("/api/v1/orgs/{parent_id}/children?per_page=200"))
        .await;
    let other = siblings.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["id"] != tier3.org_id.as_str()
                && o["member_count"].as_i64().unwrap() > 0
                && o["category"] == "631"
        })
        .cloned()
        .expect("a sibling branch with members");
    let other_id = other["id"].as_str().unwrap();
    let other_members = boss.get(&format!("/api/v1/orgs/{other_id}/members")).await;
    let other_member = other_members.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{other_id}")).await.status,
        403
    );
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{parent_id}")).await.status,
        403
    );
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{other_id}/members"))
            .await
            .status,
        403
    );
    assert_eq!(
        api.get(&format!("/api/v1/orgs/{parent_id}/children"))
            .await
            .status,
        403
    );
    assert_eq!(
        api.get(&format!("/api/v1/members/{other_member}"))
            .await
            .status,
        404
    );
    let r = api
        .patch(
            &format!("/api/v1/members/{other_member}"),
            json!({"address": "改到别处"}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = api
        .post("/api/v1/members", member_json(other_id, &valid_id(123)))
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .patch(
            &format!("/api/v1/orgs/{other_id}"),
            json!({"secretary": "某人"}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        api.delete(&format!("/api/v1/orgs/{other_id}")).await.status,
        403
    );
    // The tier-3 admin's search sees only their own subtree.
    let found = api.get("/api/v1/orgs?q=支部").await;
    for o in found.body.as_array().unwrap() {
        assert_eq!(o["id"], tier3.org_id.as_str(), "{o}");
    }
    // Security officers and auditors get 403 on every business route.
    for role in ["security", "auditor"] {
        let officer = server.sign_in(&server.account(role, None)).await;
        let m = format!("/api/v1/members/{other_member}");
        let o = format!("/api/v1/orgs/{other_id}");
        let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
            (reqwest::Method::GET, o.clone(), None),
            (reqwest::Method::GET, format!("{o}/children"), None),
            (reqwest::Method::GET, format!("{o}/members"), None),
            (
                reqwest::Method::PATCH,
                o.clone(),
                Some(json!({"secretary": "x"})),
            ),
            (reqwest::Method::DELETE, o.clone(), None),
            (
                reqwest::Method::POST,
                format!("{o}/revoke"),
                Some(json!({"document_no": "1", "reason": "x"})),
            ),
            (
                reqwest::Method::POST,
                format!("{o}/category"),
                Some(json!({"category": "9"})),
            ),
            (
                reqwest::Method::POST,
                "/api/v1/orgs".into(),
                Some(json!({"parent_id": other_id})),
            ),
            (reqwest::Method::GET, "/api/v1/orgs?q=a".into(), None),
            (reqwest::Method::GET, m.clone(), None),
            (
                reqwest::Method::PATCH,
                m.clone(),
                Some(json!({"address": "x"})),
            ),
            (
                reqwest::Method::POST,
                "/api/v1/members".into(),
                Some(member_json(other_id, &valid_id(123))),
            ),
            (reqwest::Method::GET, "/api/v1/units".into(), None),
            (
                reqwest::Method::POST,
                "/api/v1/units".into(),
                Some(json!({"name": "x"})),
            ),
        ];
        for (method, path, body) in calls {
            let r = officer.send(method.clone(), &path, body).await;
            assert_eq!(r.status, 403, "{role} {method} {path}: {:?}", r.body);
        }
    }
}

#[tokio::test]
async fn sign_in_refuses_bad_passwords_replayed_codes_and_locks_after_five_failures() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let client = server.client();
    let attempt = |password: String, code: String| {
        let client = client.clone();
        let url = server.url("/api/v1/session");
        let id = tier3.id_number.clone();
        async move {
            let r = client
                .post(url)
                .json(&json!({"id_number": id, "password": password, "code": code}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let code = current_code(&tier3.totp_secret);
    let (s, body) = attempt(tier3.password.clone(), code.clone()).await;
    assert_eq!(s, 200, "{body}");
    // The same code again is a replay.
    let (s, body) = attempt(tier3.password.clone(), code.clone()).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(body["error"]["field"], "code");
    for _ in 0..4 {
        let (s, _) = attempt("Wrong-Password1".into(), "000000".into()).await;
        assert_eq!(s, 401);
    }
    // Five consecutive failures (the replay counted) lock the account, even with the right password.
    let (s, body) = attempt(tier3.password.clone(), current_code(&tier3.totp_secret)).await;
    assert_eq!(s, 423, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("锁定"));
}

/// Issue 12 §10: each wrong password says how many more failures lock the account; an ID
/// number without an account reads the same, failure by failure, up to the lock (which then
/// tells them apart, as before: docs/threat-model.md).
#[tokio::test]
async fn wrong_passwords_count_the_tries_left_alike_for_unknown_id_numbers() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let client = server.client();
    let attempt = |id: String| {
        let client = client.clone();
        let url = server.url("/api/v1/session");
        async move {
            let r = client
                .post(url)
                .json(&json!({"id_number": id, "password": "Wrong-Password1", "code": "000000"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.json::<Value>().await.unwrap();
            (
                status,
                body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let unknown = "11010119900307803X".to_string();
    for left in (1..=4).rev() {
        let real = attempt(tier3.id_number.clone()).await;
        let none = attempt(unknown.clone()).await;
        assert_eq!(real.0, 401);
        assert_eq!(real, none);
        assert!(real.1.contains(&format!("再错{left}次")), "{}", real.1);
    }
    let real = attempt(tier3.id_number.clone()).await;
    let none = attempt(unknown.clone()).await;
    assert_eq!(real, none);
    assert!(real.1.contains("已锁定30分钟"), "{}", real.1);
    // The lock itself is what tells them apart.
    let (status, message) = attempt(tier3.id_number.clone()).await;
    assert_eq!(status, 423, "{message}");
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_for_writes() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let client = server.client();
    let r = client
        .post(server.url("/api/v1/session"))
        .json(&json!({"id_number": tier3.id_number, "password": tier3.password, "code": current_code(&tier3.totp_secret)}))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let body: Value = r.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();
    let path = server.url(&format!("/api/v1/orgs/{}", tier3.org_id));
    // The cookie alone reads.
    assert_eq!(client.get(&path).send().await.unwrap().status(), 200);
    // A write without the token is refused; with it, accepted.
    let no_token = client
        .patch(&path)
        .json(&json!({"secretary": "李书记"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    let with_token = client
        .patch(&path)
        .header("x-csrf-token", csrf)
        .json(&json!({"secretary": "李书记"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let server = Server::demo(10, None).await;
    let r = server
        .client()
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    for path in [
        "/api/v1/session",
        "/api/v1/orgs",
        "/api/v1/orgs/{id}",
        "/api/v1/orgs/{id}/members",
        "/api/v1/members",
        "/api/v1/units/{id}",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    // Every operation declares the error statuses it can answer, with the error body.
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"] == json!([{}]);
            let mut want = vec!["400"];
            if !public {
                want.extend(["401", "403", "404"]);
            }
            if method != "get" {
                want.push("409");
            }
            if op.get("requestBody").is_some() {
                want.extend(["413", "415"]);
            }
            if public {
                want.extend(["423", "429"]);
            }
            for status in want {
                let r = &op["responses"][status];
                if !r.is_object() {
                    wrong.push(format!("{method} {path} does not declare {status}"));
                } else if r["content"]["application/json"]["schema"] != error_body {
                    wrong.push(format!("{method} {path} {status} has no ErrorBody"));
                }
            }
            checked += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked > 40, "{checked}");
    assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["errors"].is_object());
    // The routes anyone may call say so.
    for path in [
        "/api/v1/session",
        "/api/v1/activation",
        "/api/v1/password/reset",
    ] {
        assert_eq!(
            doc["paths"][path]["post"]["security"],
            json!([{}]),
            "{path} is public"
        );
    }
}

#[tokio::test]
async fn the_same_flow_works_on_postgresql() {
    let db = TestDb::postgres().await;
    let server = Server::demo(200, Some(db)).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let before = member_total(&api, &tier3.org_id).await;
    assert!(before > 0);
    let r = api
        .post(
            "/api/v1/members",
            member_json(&tier3.org_id, &valid_id(123)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let dup = api
        .post(
            "/api/v1/members",
            member_json(&tier3.org_id, &valid_id(123)),
        )
        .await;
    assert_eq!((dup.status, dup.field()), (409, Some("id_number")));
    let search = api
        .get(&format!("/api/v1/orgs/{}/members?q=测试党员", tier3.org_id))
        .await;
    assert_eq!(search.body["total"], 1);
    let tier2 = server.sign_in(&server.account("admin", Some(2))).await;
    let general =
        child_with_category(&tier2, &server.account("admin", Some(2)).org_id, "621").await;
    let r = tier2
        .post(
            "/api/v1/orgs",
            json!({"parent_id": general["id"], "name": "PG测试支部", "category": 631, "secretary": "王书记", "contact_name": "联系人",
                   "contact_phone": "13800000000", "unit_mode": "same_as_parent", "founded_on": "2021-07-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(member_total(&api, &tier3.org_id).await, before + 1);
}

#[test]
fn insecure_http_is_refused_off_loopback() {
    let data = dangjian_tests::TempDir::new("dangjian-cli");
    let out = std::process::Command::new(dangjian_tests::server_binary())
        .args([
            "init",
            "--root-name",
            "中共测试省委员会",
            "--root-code",
            "037",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("otpauth://totp/"), "{printed}");
    let out = std::process::Command::new(dangjian_tests::server_binary())
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--insecure-http",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn only_the_keeping_organisation_edits_a_unit() {
    let server = Server::demo(20, None).await;
    let t2 = server.account("admin", Some(2));
    let t3 = server.account("admin", Some(3));
    let tier2 = server.sign_in(&t2).await;
    let tier3 = server.sign_in(&t3).await;
    let unit = |name: &str, code: &str| json!({"name": name, "credit_code": code, "category": "2", "has_party_group": false, "party_org_situation": 1});
    // The branch's admin creates a unit: unlinked, its owner keeps it.
    let u = tier3
        .post(
            "/api/v1/units",
            unit("支部自建测试公司", &valid_credit("MA1B2C3D")),
        )
        .await;
    assert_eq!(u.status, 201, "{:?}", u.body);
    let path = format!("/api/v1/units/{}", u.body["id"].as_str().unwrap());
    let r = tier3.patch(&path, json!({"subcategory": "制造业"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The committee links it to a new general branch outside the branch's scope: from now on
    // that organisation keeps it, and the branch's admin may still see it but not change it.
    let linked = tier2
        .post(
            "/api/v1/orgs",
            json!({"parent_id": t2.org_id, "name": "单位维护测试党总支", "category": "621",
                   "secretary": "王书记", "contact_name": "联系人", "contact_phone": "13800000000", "unit_mode": "legal_entity",
                   "unit_ids": [u.body["id"]], "founded_on": "2020-01-01"}),
        )
        .await;
    assert_eq!(linked.status, 201, "{:?}", linked.body);
    assert_eq!(tier3.get(&path).await.status, 200);
    let r = tier3.patch(&path, json!({"subcategory": "服务业"})).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.message().contains("关联党组织"), "{}", r.message());
    let r = tier3.delete(&path).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(tier3.get(&path).await.body["subcategory"], "制造业");
    // The linked organisation's admins (or above) edit it.
    let r = tier2.patch(&path, json!({"subcategory": "服务业"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A unit the committee owns and the branch only manages (situation 3): read, not write.
    let mut s3 = unit("支部管理测试单位", &valid_credit("MA9B8C7D"));
    s3["party_org_situation"] = json!(3);
    s3["managing_org_id"] = json!(t3.org_id);
    s3["owner_org_id"] = json!(t2.org_id);
    let managed = tier2.post("/api/v1/units", s3).await;
    assert_eq!(managed.status, 201, "{:?}", managed.body);
    let path = format!("/api/v1/units/{}", managed.body["id"].as_str().unwrap());
    assert_eq!(tier3.get(&path).await.status, 200);
    let r = tier3.patch(&path, json!({"subcategory": "其他"})).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(tier3.delete(&path).await.status, 403);
    assert_eq!(tier2.delete(&path).await.status, 204);
}

#[tokio::test]
async fn contact_phones_and_birth_dates_stay_masked_in_lists() {
    let server = Server::demo(50, None).await;
    let t3 = server.account("admin", Some(3));
    let api = server.sign_in(&t3).await;
    // The organisation's contact phone: masked (first 3 and last 4), whole only on request.
    let org = api.get(&format!("/api/v1/orgs/{}", t3.org_id)).await;
    assert_eq!(org.status, 200);
    let masked = org.body["contact_phone"].as_str().unwrap().to_string();
    assert!(masked.contains("****"), "{masked}");
    assert_eq!(org.body["masked"], true);
    let whole = api
        .get(&format!("/api/v1/orgs/{}?unmask=1", t3.org_id))
        .await;
    let phone = whole.body["contact_phone"].as_str().unwrap();
    assert!(!phone.contains('*') && phone.len() >= 7, "{phone}");
    assert_eq!(whole.body["masked"], false);
    assert_eq!(&masked[..3], &phone[..3]);
    assert_eq!(&masked[masked.len() - 4..], &phone[phone.len() - 4..]);
    // Members in lists: masked ID number and age, never the birth date (digits 7-14 of the
    // number, which would rebuild it).
    let list = api
        .get(&format!("/api/v1/orgs/{}/members?per_page=50", t3.org_id))
        .await;
    assert_eq!(list.status, 200);
    for m in list.body["items"].as_array().unwrap() {
        assert!(m["id_number"].as_str().unwrap().contains("********"));
        assert!(m["birth_date"].is_null(), "{m}");
        assert!(m["age"].as_i64().unwrap() >= 18, "{m}");
    }
    let first = &list.body["items"][0];
    let id = first["id"].as_str().unwrap();
    let record = api.get(&format!("/api/v1/members/{id}?unmask=1")).await;
    let birth = record.body["birth_date"].as_str().unwrap();
    assert_eq!(
        birth.replace('-', ""),
        record.body["id_number"].as_str().unwrap()[6..14]
    );
    // The whole contact phone was audited.
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let views = auditor
        .get(&format!(
            "/api/v1/audit?action=org.view_contact&target={}",
            t3.org_id
        ))
        .await;
    assert_eq!(views.status, 200, "{:?}", views.body);
    assert_eq!(views.body["total"], 1, "{:?}", views.body);
}

/// The OpenAPI document carries the validators' constraints, from their own tables and
/// shapes: a client generated from it refuses a malformed ID number before sending it, and
/// never refuses what the server accepts (the shared vectors).
#[tokio::test]
async fn request_schemas_carry_the_validators_constraints() {
    let server = Server::demo(10, None).await;
    let doc: Value = server.get_json("/api/v1/openapi.json").await;
    let prop = |schema: &str, field: &str| {
        doc["components"]["schemas"][schema]["properties"][field].clone()
    };
    let pattern = |schema: &str, field: &str| {
        regex::Regex::new(prop(schema, field)["pattern"].as_str().unwrap()).unwrap()
    };
    for (file, schema, field) in [
        ("citizen_id.tsv", "MemberInput", "id_number"),
        ("credit_code.tsv", "UnitInput", "credit_code"),
    ] {
        let shape = pattern(schema, field);
        let mut refused_by_shape = 0;
        for (value, expected, note) in vectors(file) {
            if expected == "valid" || expected == "unknown" {
                assert!(
                    shape.is_match(&value),
                    "{file}: {value} ({note}) accepted by the server"
                );
            } else if !shape.is_match(&value) {
                refused_by_shape += 1;
            }
        }
        assert!(
            refused_by_shape > 0,
            "{file}: the shape refuses some invalid values"
        );
    }
    // Text the handler insists on is required in the document, not optional.
    assert_eq!(
        doc["components"]["schemas"]["RevokeOrg"]["required"],
        json!(["document_no", "reason"])
    );
    assert_eq!(prop("RevokeOrg", "reason")["type"], "string");
    assert!(prop("ChangeCategory", "category")["enum"]
        .as_array()
        .is_some_and(|e| e.contains(&json!("611"))));
    assert!(!pattern("MemberInput", "id_number").is_match("37010219800517021"));
    assert!(pattern("MemberInput", "phone").is_match("0531-88888888"));
    assert!(!pattern("MemberInput", "phone").is_match("12345"));
    assert_eq!(prop("MemberInput", "joined_on")["format"], "date");
    assert_eq!(prop("CreateOrg", "name")["minLength"], 1);
    let educations = prop("MemberInput", "education")["enum"].clone();
    assert!(educations.as_array().unwrap().contains(&json!("21")));
    assert!(
        !educations.as_array().unwrap().contains(&json!("20")),
        "headings are not codes"
    );
    assert!(prop("MemberInput", "category")["description"]
        .as_str()
        .unwrap()
        .contains("预备党员"));
}

#[tokio::test]
async fn member_lists_sort_by_name_and_find_by_id_suffix() {
    use dangjian_server::collate::{pinyin_key, strokes_key};
    let server = Server::demo(300, None).await;
    let tier3 = server.account("admin", Some(3));
    let api = server.sign_in(&tier3).await;
    let branch = &tier3.org_id;
    // Synthetic members whose surnames order differently by code point, pinyin and strokes.
    for (i, name) in ["何测甲", "王测乙", "于测丙", "丁测丁"].iter().enumerate() {
        let mut body = member_json(branch, &valid_id(801 + 2 * i as u16));
        body["name"] = json!(name);
        let r = api.post("/api/v1/members", body).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |sort: &str| {
        let api = &api;
        let url = format!("/api/v1/orgs/{branch}/members?per_page=200{sort}");
        async move { api.get(&url).await }
    };
    let default = list("").await;
    let pinyin = list("&sort=pinyin").await;
    let strokes = list("&sort=strokes").await;
    for r in [&default, &pinyin, &strokes] {
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // Pinyin is the default; each order follows its collation key, and they differ.
    assert_eq!(names(&default.body), names(&pinyin.body));
    let (p, s) = (names(&pinyin.body), names(&strokes.body));
    assert!(p.len() > 4);
    assert!(
        p.windows(2).all(|w| pinyin_key(&w[0]) <= pinyin_key(&w[1])),
        "{p:?}"
    );
    assert!(
        s.windows(2)
            .all(|w| strokes_key(&w[0]) <= strokes_key(&w[1])),
        "{s:?}"
    );
    assert_ne!(p, s);
    let ours =
        |v: &[String]| -> Vec<String> { v.iter().filter(|n| n.contains('测')).cloned().collect() };
    assert_eq!(ours(&p), ["丁测丁", "何测甲", "王测乙", "于测丙"]);
    assert_eq!(ours(&s), ["丁测丁", "于测丙", "王测乙", "何测甲"]);
    // An unknown order is refused naming the field.
    for sort in ["codepoint", "", "%20pinyin"] {
        let bad = list(&format!("&sort={sort}")).await;
        assert_eq!((bad.status, bad.field()), (400, Some("sort")), "{sort:?}");
    }

    // The last four characters of the ID number, as the list shows them, find the member.
    let number = valid_id(803);
    let suffix = &number[14..];
    let found = api
        .get(&format!("/api/v1/orgs/{branch}/members?q={suffix}"))
        .await;
    assert_eq!(found.status, 200, "{:?}", found.body);
    let items = found.body["items"].as_array().unwrap();
    assert!(items.iter().any(|m| m["name"] == "王测乙"), "{items:?}");
    for m in items {
        assert!(m["id_number"].as_str().unwrap().ends_with(suffix), "{m}");
    }
    // Neither a name, a whole number nor its last four: refused with the hint.
    for q in ["12345", "3701021985", "王1"] {
        let r = api
            .get(&format!("/api/v1/orgs/{branch}/members?q={q}"))
            .await;
        assert_eq!((r.status, r.field()), (400, Some("q")), "{q}: {:?}", r.body);
        assert!(r.message().contains("其后4位"), "{}", r.message());
    }
    // The OpenAPI document tells the new parameter and its two values.
    let doc: Value = server.get_json("/api/v1/openapi.json").await;
    let params = doc["paths"]["/api/v1/orgs/{id}/members"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let sort = params.iter().find(|p| p["name"] == "sort").expect("sort");
    assert_eq!(sort["in"], "query");
    assert_eq!(
        sort["schema"]["enum"],
        json!(["pinyin", "strokes"]),
        "{sort}"
    );
}
