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
    // A branch admin lands on 党员信息; a branch has no 下级党组织 tab.
    let landed = b.current_path().await;
    assert!(landed.ends_with("?tab=members"), "{landed}");
    assert!(!b.exists("a.tab[href$='tab=children']").await);
    b.screenshot("branch-home").await;
    // Signing out returns to the sign-in page, which says so, and the old session no longer
    // opens pages.
    b.click("header.top form.inline button").await;
    b.wait_for("#login-form").await;
    let notice = b.text("#login-notice").await;
    assert!(notice.contains("已退出"), "{notice}");
    b.screenshot("login-signed-out").await;
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
    // The tree's right-click menu opens at the pointer (viewport coordinates, whatever the
    // header and the panel's position), and offers the general branch's actions.
    let rect = b
        .client
        .execute(
            "const node = document.querySelector('#tree li[data-id] .node');
             node.dispatchEvent(new MouseEvent('contextmenu',
                 { bubbles: true, cancelable: true, clientX: 180, clientY: 300 }));
             const r = document.getElementById('tree-menu').getBoundingClientRect();
             return [r.left, r.top];",
            vec![],
        )
        .await
        .unwrap();
    let (left, top) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    assert!(
        (left - 180.0).abs() < 1.5 && (top - 300.0).abs() < 1.5,
        "menu at {left},{top}"
    );
    let menu = b.text("#tree-menu").await;
    assert!(menu.contains("组织新增") && !menu.contains("【"), "{menu}");
    b.screenshot("tree-menu").await;
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

/// Issue 12 §10: an unknown page path answers a Chinese page with a way home (404), a page
/// path with the wrong method too (405); API paths keep their JSON.
#[tokio::test]
async fn an_unknown_page_is_a_chinese_page_and_the_api_keeps_json() {
    let server = Server::demo(20, None).await;
    let b = Browser::start().await;
    b.goto(&server.url("/no/such/page")).await;
    let text = b.text("#error-page").await;
    assert!(text.contains("页面不存在"), "{text}");
    assert!(text.contains("回到首页"), "{text}");
    let home = b
        .client
        .find(fantoccini::Locator::Css("#error-home"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(home.as_deref(), Some("/"));
    b.screenshot("not-found").await;
    // The link home leads to the sign-in page (no session).
    b.click("#error-home").await;
    b.wait_for("#login-form").await;
    b.close().await;

    let http = server.client();
    let res = http.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let res = http.get(server.url("/logout")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let body = res.text().await.unwrap();
    assert!(body.contains("访问方式不正确"), "{body}");
    let res = http
        .get(server.url("/api/v1/no-such"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// Issue 12 §10: a wrong password says how many tries remain before the 30-minute lock — the
/// same for an ID number without an account; the sign-in hint names general-branch admins; a
/// tier-2 admin's password is refused with the way to the agent's help page, which offers the
/// agent binary next to the server with its SHA-256.
#[tokio::test]
async fn the_sign_in_page_counts_tries_and_points_card_users_to_the_agent() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let b = Browser::start().await;
    b.goto(&server.url("/login")).await;
    let hint = b.text("#login-hint").await;
    assert!(
        hint.contains("党总支") && hint.contains("USB Key 代理"),
        "{hint}"
    );
    let wrong = |id: String| {
        let b = &b;
        async move {
            b.fill("id_number", &id).await;
            b.fill("password", "Wrong-password1").await;
            b.fill("code", "123456").await;
            b.click("#login-form button[type=submit]").await;
            b.text(".field-error[data-field=password]").await
        }
    };
    let first = wrong(tier3.id_number.clone()).await;
    assert!(
        first.contains("再错4次") && first.contains("30分钟"),
        "{first}"
    );
    let second = wrong(tier3.id_number.clone()).await;
    assert!(second.contains("再错3次"), "{second}");
    b.screenshot("login-tries-left").await;
    // An ID number without an account reads the same.
    let nobody = wrong("110101199003070000".to_string()).await;
    assert!(nobody.contains("再错4次"), "{nobody}");
    // The right password and code still sign in (and the count starts again).
    sign_in(&b, &server, &tier3).await;
    b.click("header.top form.inline button").await;
    b.wait_for("#login-form").await;

    // A tier-2 admin's password: the USB key is required, and the page says where the agent is.
    let tier2 = server.account("admin", Some(2));
    b.fill("id_number", &tier2.id_number).await;
    b.fill("password", &tier2.password).await;
    b.fill("code", &current_code(&tier2.totp_secret)).await;
    b.click("#login-form button[type=submit]").await;
    let refusal = b.text(".alert-error").await;
    assert!(refusal.contains("dangjian-agent connect"), "{refusal}");
    let help = b.text("#card-help").await;
    assert!(help.contains("下载与使用说明"), "{help}");
    b.screenshot("login-card-required").await;
    b.click("#card-help a").await;
    let sha = b.text("#agent-sha256").await;
    let path = dangjian_tests::rig::agent_binary();
    let agent = std::fs::read(&path).unwrap();
    let sum = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(sha, sum.split_whitespace().next().unwrap());
    assert!(b.text(".help").await.contains("按回车键"));
    b.screenshot("help-agent").await;
    b.close().await;
    let res = server
        .client()
        .get(server.url("/help/agent/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), agent.len());
}
