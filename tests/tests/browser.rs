//! Browser suite: headless Chromium against a real `dangjian-server demo`, clicking through the
//! pages as an administrator would. Each test saves screenshots under `docs/screenshots/`.

use dangjian_tests::browser::Browser;
use dangjian_tests::{current_code, DemoAccount, Server};
use serde_json::json;

async fn sign_in(b: &Browser, server: &Server, account: &DemoAccount) {
    b.goto(&server.url("/login")).await;
    b.wait_for("#login-form").await;
    b.fill("id_number", &account.id_number).await;
    b.fill("password", &account.password).await;
    b.fill("code", &current_code(&account.totp_secret)).await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for("header.top .who").await;
}

#[tokio::test]
async fn sign_in_page_explains_each_failure_and_signs_in_with_a_totp_code() {
    let server = Server::demo(200, None).await;
    let tier3 = server.account("admin", Some(3));
    let b = Browser::start().await;
    b.goto(&server.url("/login")).await;
    b.wait_for("#login-form").await;
    b.screenshot("login").await;
    // A wrong password is named next to the password field.
    b.fill("id_number", &tier3.id_number).await;
    b.fill("password", "Wrong-password1").await;
    b.fill("code", "123456").await;
    b.click("#login-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=password]").await;
    assert!(msg.contains("密码"), "{msg}");
    // A wrong code is named next to the code field.
    b.fill("password", &tier3.password).await;
    b.fill("code", "000000").await;
    b.click("#login-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=code]").await;
    assert!(msg.contains("动态码"), "{msg}");
    sign_in(&b, &server, &tier3).await;
    let who = b.text("header.top .who").await;
    assert!(
        who.contains("管理员（三级）") && who.contains(&tier3.org_name),
        "{who}"
    );
    // The tree holds only the admin's own subtree: its root is the branch itself.
    b.wait_for("#tree li[data-id] .node-name").await;
    let roots = b
        .client
        .find_all(fantoccini::Locator::Css("#tree > li"))
        .await
        .unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(
        roots[0].attr("data-id").await.unwrap().as_deref(),
        Some(tier3.org_id.as_str())
    );
    let nodes = b
        .client
        .find_all(fantoccini::Locator::Css("#tree li[data-id]"))
        .await
        .unwrap();
    assert_eq!(nodes.len(), 1, "a branch has no children in the tree");
    b.screenshot("branch-home").await;
    // Signing out returns to the sign-in page, and the old session no longer opens pages.
    b.click("header.top form.inline button").await;
    b.wait_for("#login-form").await;
    b.goto(&server.url(&format!("/orgs/{}", tier3.org_id)))
        .await;
    b.wait_for("#login-form").await;
    b.close().await;
}

#[tokio::test]
async fn an_admin_creates_a_branch_under_a_general_branch() {
    let server = Server::demo(300, None).await;
    // Browsers carry no USB key: the general branch's own tier-3 admin signs in with a password
    // (tiers 1 and 2 sign in with the card only).
    let admin = server.account_in("admin", Some(3), "621");
    // Look around through the API as the tier-1 admin above (a card session).
    let api = server.sign_in(&server.account("admin", Some(1))).await;
    let general = api.get(&format!("/api/v1/orgs/{}", admin.org_id)).await;
    assert_eq!(general.status, 200, "{:?}", general.body);
    let general = general.body;
    assert_eq!(general["category"], "621");
    let general_id = admin.org_id.as_str();
    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    b.goto(&server.url(&format!("/orgs/{general_id}"))).await;
    b.wait_for("#tree li[data-id] .node-name").await;
    b.screenshot("general-branch").await;
    b.goto(&server.url(&format!("/orgs/{general_id}/new")))
        .await;
    b.wait_for("#org-form").await;
    // Only branch-level categories are offered under a general branch.
    let options = b
        .client
        .find_all(fantoccini::Locator::Css("#category option"))
        .await
        .unwrap();
    let mut values = Vec::new();
    for o in options {
        values.push(o.attr("value").await.unwrap().unwrap_or_default());
    }
    assert_eq!(values, vec!["631", "632", "9"]);
    b.fill("name", "浏览器测试第一党支部").await;
    b.select("category", "631").await;
    b.fill("contact_name", "王联系").await;
    b.fill("contact_phone", "0531-88886666").await;
    b.fill("founded_on", "2024-07-01").await;
    b.click("input[name=unit_mode][value=same_as_parent]").await;
    b.screenshot("org-new").await;
    b.click("#org-form button[type=submit]").await;
    b.wait_for(".org-head h2").await;
    assert_eq!(b.text(".org-head h2").await, "浏览器测试第一党支部");
    assert!(b.text(".alert-info").await.contains("已新增"));
    let code = b.text(".org-head .code").await;
    assert!(code.contains(general["code"].as_str().unwrap()), "{code}");
    // The same name again is refused next to the name field.
    b.goto(&server.url(&format!("/orgs/{general_id}/new")))
        .await;
    b.fill("name", "浏览器测试第一党支部").await;
    b.select("category", "631").await;
    b.fill("contact_name", "王联系").await;
    b.fill("contact_phone", "0531-88886666").await;
    b.fill("founded_on", "2024-07-01").await;
    b.click("#org-form button[type=submit]").await;
    assert!(b
        .text(".field-error[data-field=name]")
        .await
        .contains("同名"));
    b.close().await;
}

#[tokio::test]
async fn an_admin_enters_a_member_and_sees_a_bad_id_number_named_next_to_the_field() {
    let server = Server::demo(200, None).await;
    let tier3 = server.account("admin", Some(3));
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url(&format!("/orgs/{}?tab=members", tier3.org_id)))
        .await;
    b.wait_for("table.list").await;
    b.screenshot("members").await;
    b.goto(&server.url(&format!("/orgs/{}/members/new", tier3.org_id)))
        .await;
    b.wait_for("#member-form").await;
    let id = dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1988, 8, 8).unwrap(),
        246,
    );
    // A wrong check digit first.
    let last = id.chars().last().unwrap();
    let wrong = format!("{}{}", &id[..17], if last == '1' { '2' } else { '1' });
    b.fill("name", "赵浏览").await;
    b.fill("id_number", &wrong).await;
    b.select("ethnicity", "01").await;
    b.select("education", "21").await;
    b.select("category", "full").await;
    b.fill("joined_on", "2010-07-01").await;
    b.fill("full_on", "2011-07-01").await;
    b.select("job", "worker").await;
    b.fill("phone", "13800001234").await;
    b.fill("address", "泉山省东岭县浏览器路8号").await;
    b.click("#member-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=id_number]").await;
    assert!(msg.contains("校验位"), "{msg}");
    b.screenshot("member-invalid-id").await;
    // Typing the right number fills sex and birth date from it.
    b.fill("id_number", &id).await;
    let birth = b
        .client
        .find(fantoccini::Locator::Id("birth_date"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(birth.as_deref(), Some("1988-08-08"));
    let sex = b
        .client
        .find(fantoccini::Locator::Id("sex"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(sex.as_deref(), Some("female"));
    b.click("#member-form button[type=submit]").await;
    b.wait_for(".alert-info").await;
    let page = b.text("section.work").await;
    assert!(page.contains("赵浏览"), "{page}");
    assert!(
        page.contains("370102********"),
        "masked on the record page: {page}"
    );
    b.screenshot("member-record").await;
    b.close().await;
}

#[tokio::test]
async fn pages_escape_names_and_refuse_forms_without_the_csrf_token() {
    let server = Server::demo(50, None).await;
    // The general branch's tier-3 admin browses (browsers carry no USB key).
    let admin = server.account_in("admin", Some(3), "621");
    // The tier-1 admin (a card session) makes the organisation with the hostile name.
    let api = server.sign_in(&server.account("admin", Some(1))).await;
    let general = serde_json::json!({ "id": admin.org_id });
    let evil = "<script>alert(1)</script>";
    let r = api
        .post(
            "/api/v1/orgs",
            json!({"parent_id": general["id"], "name": evil, "category": "631", "contact_name": "联系人",
                   "contact_phone": "13800000000", "unit_mode": "same_as_parent", "founded_on": "2020-01-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let evil_id = r.body["id"].as_str().unwrap().to_string();
    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    b.goto(&server.url(&format!("/orgs/{evil_id}"))).await;
    assert_eq!(
        b.text(".org-head h2").await,
        evil,
        "the name is shown as text"
    );
    assert!(b.client.get_alert_text().await.is_err(), "no script ran");
    b.close().await;
    // A cookie session posting a form without its CSRF token is refused and changes nothing.
    let client = server.client();
    let login = client
        .get(server.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = login
        .split("name=\"login_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let tier3 = server.account("admin", Some(3));
    let res = client
        .post(server.url("/login"))
        .form(&[
            ("id_number", tier3.id_number.as_str()),
            ("password", tier3.password.as_str()),
            ("code", current_code(&tier3.totp_secret).as_str()),
            ("login_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success() || res.status().is_redirection(),
        "{}",
        res.status()
    );
    let edit = format!("/orgs/{}/edit", tier3.org_id);
    let res = client
        .post(server.url(&edit))
        .form(&[
            ("secretary", "伪造"),
            ("contact_name", "伪造"),
            ("contact_phone", "13800000000"),
            ("founded_on", "2020-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("防伪令牌"));
    let org = client
        .get(server.url(&format!("/api/v1/orgs/{}", tier3.org_id)))
        .send()
        .await
        .unwrap();
    let org: serde_json::Value = org.json().await.unwrap();
    assert_ne!(org["secretary"], "伪造");
}

#[tokio::test]
async fn a_one_time_password_is_changed_at_first_sign_in() {
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    // The account holds a one-time password, as `init` leaves the first officer.
    server.require_password_change(&tier3.org_id).await;
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    // Signed in, the session goes nowhere but the change-password form.
    assert_eq!(b.current_path().await, "/account/password");
    assert!(b.exists("#first-sign-in").await);
    b.goto(&server.url(&format!("/orgs/{}", tier3.org_id)))
        .await;
    b.wait_for("#password-form").await;
    assert_eq!(b.current_path().await, "/account/password");
    // Two different new passwords are named next to the confirmation.
    b.fill("old_password", &tier3.password).await;
    b.fill("new_password", "Xinmima2026").await;
    b.fill("new_password_again", "Xinmima2027").await;
    b.click("#password-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=new_password_again]").await;
    assert!(msg.contains("不一致"), "{msg}");
    b.fill("old_password", &tier3.password).await;
    b.fill("new_password", "Xinmima2026").await;
    b.fill("new_password_again", "Xinmima2026").await;
    b.screenshot("change-password").await;
    b.click("#password-form button[type=submit]").await;
    b.wait_for("#password-changed").await;
    // From now on the pages open, and every page links to 修改密码.
    b.goto(&server.url(&format!("/orgs/{}", tier3.org_id)))
        .await;
    b.wait_for("#tree li[data-id] .node-name").await;
    assert_eq!(b.current_path().await, format!("/orgs/{}", tier3.org_id));
    assert!(b.exists("header.top a#change-password").await);
    b.close().await;
}

/// The names of the member list on the page, top to bottom.
async fn listed_names(b: &Browser) -> Vec<String> {
    let mut out = Vec::new();
    for cell in b
        .client
        .find_all(fantoccini::Locator::Css(
            "#member-list tbody tr td:first-child",
        ))
        .await
        .unwrap()
    {
        out.push(cell.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_member_list_sorts_by_surname_strokes_and_finds_by_id_suffix() {
    let server = Server::demo(300, None).await;
    let tier3 = server.account("admin", Some(3));
    let branch = tier3.org_id.clone();
    // Synthetic members whose surnames order differently by pinyin and by strokes, entered by
    // the tier-1 admin (a card session: the branch admin's TOTP step is kept for the browser).
    let api = server.sign_in(&server.account("admin", Some(1))).await;
    let mut suffix = String::new();
    for (i, name) in ["何测甲", "王测乙", "于测丙", "丁测丁"].iter().enumerate() {
        let id_number = dangjian_server::member::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(1986, 5, 4).unwrap(),
            611 + 2 * i as u16,
        );
        suffix = id_number[14..].to_string();
        let r = api
            .post(
                "/api/v1/members",
                json!({"name": name, "id_number": id_number, "ethnicity": "01", "education": "21",
                       "category": "full", "branch_id": branch, "joined_on": "2008-03-01",
                       "full_on": "2009-03-02", "job": "worker", "phone": "13800001111",
                       "address": "泉山省东岭县测试路2号"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let ours = |names: &[String]| -> Vec<String> {
        names.iter().filter(|n| n.contains('测')).cloned().collect()
    };
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url(&format!("/orgs/{branch}?tab=members&per_page=100")))
        .await;
    b.wait_for("#member-list[data-sort=pinyin]").await;
    // The name column says it sorts, and how: 姓氏拼音 by default.
    let header = b.text("#member-list th.sortable").await;
    assert!(
        header.contains("拼音 ▲") && header.contains("笔画"),
        "{header}"
    );
    assert_eq!(
        ours(&listed_names(&b).await),
        ["丁测丁", "何测甲", "王测乙", "于测丙"]
    );
    b.screenshot("member-list").await;
    // One click orders by 姓氏笔画: 丁 2 strokes, 于 3, 王 4, 何 7.
    b.click("#sort-strokes").await;
    b.wait_for("#member-list[data-sort=strokes]").await;
    assert_eq!(
        ours(&listed_names(&b).await),
        ["丁测丁", "于测丙", "王测乙", "何测甲"]
    );
    assert!(b.text("#member-list th.sortable").await.contains("笔画 ▲"));
    b.screenshot("member-list-strokes").await;
    // A search keeps the order, and the last four characters of the ID number find the member.
    b.fill("q", &suffix).await;
    b.click("#member-search button[type=submit]").await;
    b.wait_for("#member-list[data-sort=strokes]").await;
    let found = listed_names(&b).await;
    assert!(found.contains(&"丁测丁".to_string()), "{found:?}");
    let ids = b.text("#member-list tbody").await;
    assert!(ids.lines().all(|l| l.contains(&suffix)), "{ids}");
    // Anything else is told why nothing is found.
    b.fill("q", "12345").await;
    b.click("#member-search button[type=submit]").await;
    let hint = b.text("#search-hint").await;
    assert!(hint.contains("完整的18位公民身份证号或其后4位"), "{hint}");
    b.screenshot("member-search-hint").await;
    b.close().await;
}
