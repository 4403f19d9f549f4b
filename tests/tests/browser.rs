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
    b.fill("secretary", "王书记").await;
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
    b.fill("secretary", "王书记").await;
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
    // Three fields at fault (ID number, phone, address left empty): all three are named at
    // once, in the banner and beside each field, and the first one has the focus.
    b.fill("phone", "12345").await;
    b.click("#member-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=id_number]").await;
    assert!(msg.contains("校验位"), "{msg}");
    assert!(b
        .text(".field-error[data-field=phone]")
        .await
        .contains("联系电话"));
    assert!(b
        .text(".field-error[data-field=address]")
        .await
        .contains("家庭住址"));
    let banner = b.text(".form-problems").await;
    assert!(banner.contains("3 处需要修改"), "{banner}");
    assert!(
        banner.contains("校验位") && banner.contains("联系电话"),
        "{banner}"
    );
    let focused = b
        .client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, serde_json::json!("id_number"));
    b.screenshot("member-three-errors").await;
    b.fill("phone", "13800001234").await;
    b.fill("address", "泉山省东岭县浏览器路8号").await;
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
    // A sex other than the ID number's asks for confirmation, then stays tagged on the record.
    b.select("sex", "male").await;
    b.click("#member-form button[type=submit]").await;
    let msg = b.text(".field-error[data-field=sex]").await;
    assert!(msg.contains("不一致") && msg.contains("已核实"), "{msg}");
    // 学历 headings are not choices.
    let heading = b
        .client
        .execute(
            "return document.querySelector('#education optgroup').label",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(heading, json!("研究生教育"));
    b.screenshot("member-confirm-contradiction").await;
    b.click("input[name=confirm_contradictions]").await;
    b.click("#member-form button[type=submit]").await;
    b.wait_for(".alert-info").await;
    assert!(b
        .text(".member-flags")
        .await
        .contains("性别与身份证号不一致"));
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
            json!({"parent_id": general["id"], "name": evil, "category": "631", "secretary": "王书记", "contact_name": "联系人",
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

/// Actions that cannot succeed are shown disabled with the reason as their title; 撤销 names
/// the empty 撤销文号 and 撤销原因 before it asks for confirmation.
#[tokio::test]
async fn only_actions_that_can_succeed_are_offered() {
    let server = Server::demo(300, None).await;
    let admin = server.account_in("admin", Some(3), "621");
    let api = server.sign_in(&server.account("admin", Some(1))).await;
    let children = api
        .get(&format!(
            "/api/v1/orgs/{}/children?per_page=200",
            admin.org_id
        ))
        .await;
    let branch = children.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["category"] == "631" && o["member_count"].as_i64().unwrap_or(0) > 0)
        .cloned()
        .unwrap_or_else(|| panic!("a branch with members: {:?}", children.body));
    let branch_id = branch["id"].as_str().unwrap();
    let r = api
        .post(
            "/api/v1/orgs",
            json!({"parent_id": admin.org_id, "name": "待撤销的临时支部", "category": "631",
                   "secretary": "王书记", "contact_name": "联系人", "contact_phone": "13800000000",
                   "unit_mode": "same_as_parent", "founded_on": "2020-01-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let empty_id = r.body["id"].as_str().unwrap().to_string();

    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    // The branch has members: 撤销 and 删除 are greyed out and say why.
    b.goto(&server.url(&format!("/orgs/{branch_id}"))).await;
    b.wait_for(".toolbar").await;
    let disabled = b
        .client
        .find_all(fantoccini::Locator::Css(".toolbar .button.disabled"))
        .await
        .unwrap();
    let mut titles = Vec::new();
    for d in disabled {
        titles.push((
            d.text().await.unwrap(),
            d.attr("title").await.unwrap().unwrap_or_default(),
        ));
    }
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(
        titles
            .iter()
            .all(|(_, t)| t.contains("名党员") && t.contains("不能")),
        "{titles:?}"
    );
    assert!(
        !b.exists(&format!("a[href='/orgs/{branch_id}/delete']"))
            .await
    );
    b.screenshot("org-actions-disabled").await;

    // An empty branch can be revoked: the empty fields are named before any confirmation.
    b.goto(&server.url(&format!("/orgs/{empty_id}/revoke")))
        .await;
    b.wait_for("#revoke-form").await;
    b.click("#revoke-form button[type=submit]").await;
    assert!(b
        .text("#revoke-form .field-error")
        .await
        .contains("请填写撤销文号"));
    let errors = b
        .client
        .find_all(fantoccini::Locator::Css("#revoke-form .field-error"))
        .await
        .unwrap();
    assert_eq!(errors.len(), 2);
    let focused = b
        .client
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(focused, json!("document_no"));
    b.fill("document_no", "组字〔2026〕8号").await;
    b.fill("reason", "误建后撤销").await;
    b.click("#revoke-form button[type=submit]").await;
    assert_eq!(
        b.client.get_alert_text().await.unwrap(),
        "确定撤销该党组织吗？"
    );
    b.client.accept_alert().await.unwrap();
    b.wait_for(".org-head .badge").await;
    assert_eq!(b.text(".org-head .badge").await, "已撤销");
    b.close().await;
}

/// 45 synthetic names, each different: a surname, then two given-name characters.
fn synthetic_names() -> Vec<String> {
    let surnames = ["赵", "钱", "孙", "李", "周", "吴", "郑", "王", "冯"];
    let first = ["春", "夏", "秋", "冬", "明"];
    let second = ["华", "林", "涛", "雪", "云"];
    (0..45)
        .map(|i| {
            format!(
                "{}{}{}",
                surnames[i % 9],
                first[(i / 9) % 5],
                second[(i + i / 9) % 5]
            )
        })
        .collect()
}

/// A synthetic member for the API, in `branch_id`.
fn member_body(branch_id: &str, name: &str, n: u16) -> serde_json::Value {
    let birth = chrono::NaiveDate::from_ymd_opt(
        1950 + i32::from(n % 30),
        1 + u32::from(n % 12),
        1 + u32::from(n % 28),
    )
    .unwrap();
    let id = dangjian_server::member::idcard::compose("370102", birth, 100 + n);
    json!({
        "name": name, "id_number": id, "ethnicity": "01", "education": "21", "category": "full",
        "branch_id": branch_id, "joined_on": "2005-07-01", "full_on": "2006-07-01", "job": "worker",
        "phone": "13800001234", "address": "泉山省东岭县打印路1号",
    })
}

#[tokio::test]
async fn a_member_list_prints_every_row_without_its_controls() {
    let server = Server::demo(20, None).await;
    let admin = server.account_in("admin", Some(3), "621");
    let api = server.sign_in(&server.account("admin", Some(1))).await;
    let r = api
        .post(
            "/api/v1/orgs",
            json!({"parent_id": admin.org_id, "name": "打印测试党支部", "category": "631",
                   "secretary": "王书记", "contact_name": "联系人", "contact_phone": "13800000000",
                   "unit_mode": "same_as_parent", "founded_on": "2020-01-01"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let branch = r.body["id"].as_str().unwrap().to_string();
    let names = synthetic_names();
    let mut first_member = String::new();
    for (i, name) in names.iter().enumerate() {
        let r = api
            .post("/api/v1/members", member_body(&branch, name, i as u16))
            .await;
        assert_eq!(r.status, 201, "{name}: {:?}", r.body);
        if i == 0 {
            first_member = r.body["id"].as_str().unwrap().to_string();
        }
    }
    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    // On screen: twenty rows and a pager, and a 打印 button to the print view.
    b.goto(&server.url(&format!("/orgs/{branch}?tab=members")))
        .await;
    b.wait_for("#member-list").await;
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css("#member-list tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    assert!(b.text(".pager").await.contains("共 45 条"));
    let href = b
        .client
        .find(fantoccini::Locator::Css("a.print-button"))
        .await
        .expect("a 打印 button")
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.ends_with("print=1#autoprint"), "{href}");
    let print_view = href.trim_end_matches("#autoprint");
    b.goto(&server.url(print_view)).await;
    b.wait_for("#print-list").await;
    b.screenshot("member-list-print-view").await;
    // What paper gets, at the screen's size: the print styles on screen.
    b.emulate_print(true).await;
    b.screenshot("member-list-print-preview").await;
    assert!(!b
        .client
        .find(fantoccini::Locator::Css("header.top"))
        .await
        .unwrap()
        .is_displayed()
        .await
        .unwrap());
    b.emulate_print(false).await;
    let text = b.print_text().await;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for name in &names {
        assert!(
            compact.contains(name.as_str()),
            "{name} missing from the printout:\n{text}"
        );
    }
    assert!(compact.contains("共45条"), "{text}");
    // The print header: title, organisation, time, the printer's name.
    assert!(compact.contains("党组织：打印测试党支部"), "{text}");
    assert!(compact.contains("打印时间："), "{text}");
    let who = b.text("header.top .person").await;
    let printer = who.trim_start_matches("当前用户：");
    assert!(compact.contains(&format!("打印人：{printer}")), "{text}");
    // None of the controls.
    for control in [
        "查询",
        "每页",
        "包含下级",
        "首页",
        "下一页",
        "查看",
        "编辑",
        "操作",
        "党组织机构树",
        "当前用户",
        "退出",
        "修改密码",
        "新增党员",
        "党员信息录入",
        "下级党组织",
        "按名称查找",
    ] {
        assert!(!compact.contains(control), "{control} printed:\n{text}");
    }
    // A picture of the first printed page, for people to look at.
    let pdf = b.print_pdf().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    let pdf_path = std::env::temp_dir().join(format!("dangjian-print-{}.pdf", std::process::id()));
    std::fs::write(&pdf_path, pdf).unwrap();
    let status = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf_path)
        .arg(dir.join("member-list-printed-page1"))
        .status()
        .expect("pdftoppm (poppler-utils)");
    assert!(status.success());
    let _ = std::fs::remove_file(&pdf_path);
    // A record page prints its record with the header, without its buttons.
    b.goto(&server.url(&format!("/members/{first_member}")))
        .await;
    b.wait_for("#member-record").await;
    let record = b.print_text().await;
    let record: String = record.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(record.contains(names[0].as_str()), "{record}");
    assert!(record.contains("打印人："), "{record}");
    for control in ["编辑", "显示完整信息", "返回党员列表", "党组织机构树"] {
        assert!(!record.contains(control), "{control} printed: {record}");
    }
    // The other lists of an organisation have the same print view: every row, no pager.
    b.goto(&server.url(&format!("/orgs/{}?tab=children", admin.org_id)))
        .await;
    b.wait_for("a.print-button").await;
    for tab in ["children", "units&linkage=all"] {
        b.goto(&server.url(&format!("/orgs/{}?tab={tab}&print=1", admin.org_id)))
            .await;
        b.wait_for("#print-list").await;
        assert!(
            !b.exists(".pager").await,
            "{tab}: no pager in the print view"
        );
        let shown = b.text("#print-list .print-note").await;
        let rows = b
            .client
            .find_all(fantoccini::Locator::Css("table.list tbody tr"))
            .await
            .unwrap();
        assert_eq!(shown, format!("共 {} 条", rows.len()), "{tab}");
    }
    // Clicking 打印 opens the print view in a new tab, which asks the browser to print.
    let tabs = b.client.windows().await.unwrap();
    b.goto(&server.url(&format!("/orgs/{branch}?tab=members")))
        .await;
    b.click("a.print-button").await;
    let mut new_tab = None;
    for _ in 0..50 {
        let now = b.client.windows().await.unwrap();
        if let Some(w) = now.into_iter().find(|w| !tabs.contains(w)) {
            new_tab = Some(w);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.client
        .switch_to_window(new_tab.expect("the print view opened in a new tab"))
        .await
        .unwrap();
    b.wait_for("html[data-print-requested='1']").await;
    b.close().await;
}

/// Whether leaving the page now would ask first: dispatches a cancelable `beforeunload`.
async fn leaving_warns(b: &Browser) -> bool {
    b.client
        .execute(
            "const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented;",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

async fn stored_drafts(b: &Browser) -> String {
    b.client
        .execute(
            "let s = ''; for (let i = 0; i < sessionStorage.length; i++) { const k = sessionStorage.key(i); if (k.startsWith('dangjian.draft:')) s += k + '=' + sessionStorage.getItem(k) + '\\n'; } return s;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_refresh_restores_a_half_filled_member_form_and_saving_clears_the_draft() {
    let server = Server::demo(20, None).await;
    let tier3 = server.account("admin", Some(3));
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    let form_url = server.url(&format!("/orgs/{}/members/new", tier3.org_id));
    b.goto(&form_url).await;
    b.wait_for("#member-form").await;
    assert!(!leaving_warns(&b).await, "an untouched form leaves quietly");
    let id = dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1990, 3, 4).unwrap(),
        135,
    );
    b.fill("name", "周草稿").await;
    b.fill("id_number", &id).await;
    b.select("ethnicity", "01").await;
    // Date fields are text in YYYY-MM-DD, not the browser's locale-ordered date input; a date
    // typed the Chinese way becomes YYYY-MM-DD when the field is left.
    let joined = b
        .client
        .find(fantoccini::Locator::Id("joined_on"))
        .await
        .unwrap();
    assert_eq!(joined.attr("type").await.unwrap().as_deref(), Some("text"));
    assert_eq!(
        joined.attr("placeholder").await.unwrap().as_deref(),
        Some("YYYY-MM-DD")
    );
    b.fill("joined_on", "2012年7月1日").await;
    b.fill("phone", "13900002222").await;
    assert_eq!(b.value("joined_on").await, "2012-07-01");
    assert!(
        leaving_warns(&b).await,
        "a changed form warns before leaving"
    );
    let drafts = stored_drafts(&b).await;
    assert!(drafts.contains("周草稿"), "{drafts}");
    let csrf = b
        .client
        .find(fantoccini::Locator::Css("#member-form input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !drafts.contains(&csrf),
        "the CSRF token is not kept: {drafts}"
    );
    // Refresh: a beforeunload prompt, if the driver shows one, is accepted.
    b.client
        .execute("setTimeout(() => location.reload(), 0);", vec![])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    if b.client.get_alert_text().await.is_ok() {
        b.client.accept_alert().await.unwrap();
    }
    b.wait_for(".draft-note").await;
    assert!(b.text(".draft-note").await.contains("已恢复未保存的内容"));
    assert_eq!(b.value("name").await, "周草稿");
    assert_eq!(b.value("id_number").await, id);
    assert_eq!(b.value("ethnicity").await, "01");
    assert_eq!(b.value("joined_on").await, "2012-07-01");
    assert_eq!(b.value("phone").await, "13900002222");
    b.screenshot("member-form-draft-restored").await;
    // Finish and save: the record opens and the draft is gone.
    b.select("education", "21").await;
    b.select("category", "full").await;
    b.fill("full_on", "2013.7.1").await;
    b.select("job", "worker").await;
    // A refused save (no address): the form the server sends back with what was typed wins
    // over the draft, and it still counts as unsaved.
    b.click("#member-form button[type=submit]").await;
    b.wait_for(".field-error[data-field=address]").await;
    assert!(
        !b.exists(".draft-note").await,
        "no draft note over the server's form"
    );
    assert_eq!(b.value("name").await, "周草稿");
    assert_eq!(b.value("full_on").await, "2013-07-01");
    assert!(leaving_warns(&b).await, "a refused form is still unsaved");
    b.fill("address", "泉山省东岭县草稿路2号").await;
    b.click("#member-form button[type=submit]").await;
    b.wait_for(".alert-info").await;
    assert!(b.text("section.work").await.contains("周草稿"));
    assert_eq!(stored_drafts(&b).await, "", "saving clears the draft");
    b.goto(&form_url).await;
    b.wait_for("#member-form").await;
    assert!(!b.exists(".draft-note").await);
    assert_eq!(b.value("name").await, "");
    // 取消 on a changed form asks first, then drops the draft.
    b.fill("name", "吴放弃").await;
    assert!(stored_drafts(&b).await.contains("吴放弃"));
    b.click("#member-form .actions a.button").await;
    let question = b.client.get_alert_text().await.expect("取消 asks first");
    assert!(question.contains("尚未保存"), "{question}");
    b.client.accept_alert().await.unwrap();
    b.wait_for("#member-list, .tab-body").await;
    assert_eq!(stored_drafts(&b).await, "", "取消 clears the draft");
    b.close().await;
}

#[tokio::test]
async fn a_printed_list_stops_at_5000_rows_and_says_so() {
    let server = Server::demo(11000, None).await;
    let tier1 = server.account("admin", Some(1));
    // A card session (bearer token) opens the pages too.
    let api = server.sign_in(&tier1).await;
    let total = api
        .get(&format!(
            "/api/v1/orgs/{}/members?include_sub=1",
            tier1.org_id
        ))
        .await
        .body["total"]
        .as_i64()
        .unwrap();
    assert!(total > 5000, "{total} members in scope");
    let r = api
        .get(&format!(
            "/orgs/{}?tab=members&include_sub=1&print=1",
            tier1.org_id
        ))
        .await;
    assert_eq!(r.status, 200);
    let html = r.body.as_str().expect("a page").to_string();
    assert_eq!(html.matches("<td class=\"idno\">").count(), 5000);
    assert!(
        html.contains(&format!("共 {total} 条，超过打印上限，仅列出前 5000 条")),
        "the cut is named"
    );
    assert!(!html.contains("class=\"pager\""), "no pager");
    // The screen's page stays at its page size.
    let r = api
        .get(&format!("/orgs/{}?tab=members&include_sub=1", tier1.org_id))
        .await;
    let html = r.body.as_str().expect("a page").to_string();
    assert_eq!(html.matches("<td class=\"idno\">").count(), 20);
    assert!(html.contains("print=1#autoprint"), "a 打印 button");
}

#[tokio::test]
async fn the_audit_log_grants_and_certificates_have_print_views_of_every_row() {
    let server = Server::demo(50, None).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    for (api, path, title) in [
        (&auditor, "/audit", "审计日志"),
        (&officer, "/security/grants", "授权名单"),
        (&officer, "/security/certificates", "USB Key 证书名单"),
    ] {
        let screen = api.get(path).await;
        assert_eq!(screen.status, 200, "{path}");
        let screen = screen.body.as_str().expect("a page").to_string();
        assert!(
            screen.contains("print=1#autoprint"),
            "{path}: a 打印 button"
        );
        let print = api.get(&format!("{path}?print=1")).await;
        assert_eq!(print.status, 200, "{path}");
        let html = print.body.as_str().expect("a page").to_string();
        assert!(html.contains("id=\"print-list\""), "{path}");
        assert!(html.contains(title), "{path}");
        assert!(html.contains("class=\"print-header\""), "{path}");
        // Every row: the note's count is the number of rows.
        let total: usize = html
            .split("<p class=\"print-note\">共 ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{path}: no row count"));
        let after = html.split("id=\"print-list\"").nth(1).unwrap();
        let body = after.split("<tbody>").nth(1).unwrap_or("");
        let rows = body
            .split("</tbody>")
            .next()
            .unwrap()
            .matches("<tr")
            .count();
        assert_eq!(rows, total, "{path}");
    }
}

/// 组织新增 as the seeds have it: a branch in a legal-entity unit that does not exist yet is
/// created with its new unit in one visit (the credit code checked as typed).
#[tokio::test]
async fn a_legal_entity_branch_is_created_with_its_new_unit_in_one_visit() {
    let server = Server::demo(200, None).await;
    let admin = server.account_in("admin", Some(3), "621");
    let general_id = admin.org_id.clone();
    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    b.goto(&server.url(&format!("/orgs/{general_id}/new")))
        .await;
    b.wait_for("#org-form").await;
    b.fill("name", "新建单位测试党支部").await;
    b.select("category", "631").await;
    b.fill("secretary", "王书记").await;
    b.fill("contact_name", "王联系").await;
    b.fill("contact_phone", "13800000000").await;
    b.fill("founded_on", "2024-07-01").await;
    b.click("input[name=unit_mode][value=legal_entity]").await;
    assert!(b.text(".unit-mode-note").await.contains("法人单位"));
    b.click("#new-unit").await;
    b.wait_for("#new-unit-dialog[open]").await;
    let code = dangjian_server::unit::credit_code::compose("91", "370102", "MA3C5T8Q");
    let wrong = format!(
        "{}{}",
        &code[..17],
        if code.ends_with('1') { '2' } else { '1' }
    );
    b.fill("nu-name", "泉山新材料科技有限公司").await;
    b.fill("nu-credit-code", &wrong).await;
    let mut note = String::new();
    for _ in 0..50 {
        note = b.text("#nu-credit-code-check").await;
        if note.contains("校验位") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(note.contains("校验位"), "checked as typed: {note}");
    b.fill("nu-credit-code", &code).await;
    for _ in 0..50 {
        note = b.text("#nu-credit-code-check").await;
        if note.contains("校验通过") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(note.contains("校验通过"), "{note}");
    // Saving without a category names it inside the dialog.
    b.click("#nu-save").await;
    b.wait_for("#nu-category-error:not([hidden])").await;
    b.screenshot("org-new-unit-dialog").await;
    b.select("nu-category", "2").await;
    b.click("#nu-save").await;
    b.wait_for("#chosen-units li").await;
    assert!(b
        .text("#chosen-units")
        .await
        .contains("泉山新材料科技有限公司"));
    b.click("#org-form button[type=submit]").await;
    b.wait_for(".org-head h2").await;
    assert_eq!(b.text(".org-head h2").await, "新建单位测试党支部");
    let info = b.text("#org-info, section.work").await;
    assert!(info.contains("法人单位"), "{info}");
    b.goto(&server.url(&format!(
        "/orgs/{}?tab=units",
        b.current_path().await.trim_start_matches("/orgs/")
    )))
    .await;
    assert!(b
        .text("section.work")
        .await
        .contains("泉山新材料科技有限公司"));
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
            // Wait for the answer page, not the field error still on the page submitted.
            b.client
                .execute("document.body.dataset.submitted = '1'", vec![])
                .await
                .unwrap();
            b.click("#login-form button[type=submit]").await;
            b.wait_for("body:not([data-submitted])").await;
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

/// Answers every `data-confirm` question with 确定.
async fn confirm_everything(b: &Browser) {
    b.client
        .execute("window.confirm = () => true;", vec![])
        .await
        .expect("stub confirm");
}

/// SPEC §4 and §5 in the browser: a branch applies for an exit from the member's actions, the
/// committee (through a card tunnel) finds it in 维护审批 with the badge and approves it, the
/// county finds the member in 出党管理 and brings it back 找回; a rename the real-name source
/// does not confirm becomes a review the county approves.
#[tokio::test]
async fn an_exit_is_approved_by_the_committee_and_recovered_by_the_county() {
    let server = Server::demo(100, None).await;
    let t3 = server.account("admin", Some(3));
    let committee =
        dangjian_tests::CardProxy::start(&server, &server.account("admin", Some(2))).await;
    let county = dangjian_tests::CardProxy::start(&server, &server.county_admin()).await;
    let m = committee
        .api
        .post(
            "/api/v1/members",
            json!({"name": "出党测试", "id_number": "110101199003074477", "ethnicity": "01",
                   "education": "21", "category": "full", "branch_id": t3.org_id,
                   "joined_on": "2015-06-01", "full_on": "2016-06-01", "job": "worker",
                   "phone": "13800138123", "address": "测试地址"}),
        )
        .await;
    assert_eq!(m.status, 201, "{:?}", m.body);
    let member = m.body["id"].as_str().unwrap().to_string();

    let b = Browser::start().await;
    sign_in(&b, &server, &t3).await;
    b.goto(&server.url(&format!("/members/{member}"))).await;
    b.wait_for(".member-actions").await;
    b.screenshot("member-actions").await;
    b.click(".member-actions a[href$='kind=exit']").await;
    b.wait_for("#apply-form").await;
    // Nothing filled: the date and the reason are named at once.
    b.click("#apply-form button[type=submit]").await;
    b.wait_for(".form-problems").await;
    assert!(b.exists("#date[aria-invalid=true]").await);
    assert!(b.exists("#reason[aria-invalid=true]").await);
    b.screenshot("apply-exit-errors").await;
    b.fill("date", "2026-10-01").await;
    b.fill("reason", "本人申请退党").await;
    b.click("#apply-form button[type=submit]").await;
    b.wait_for("#application").await;
    assert!(b.text(".alert-info").await.contains("申请已提交"));
    assert!(b.text("h2").await.contains("待审批"));
    b.screenshot("application-submitted").await;
    // The record says so, and offers no second change.
    b.goto(&server.url(&format!("/members/{member}"))).await;
    b.wait_for(".pending-application").await;
    assert!(b.exists(".member-actions span.disabled").await);

    // The committee: the badge, the inbox, the decision.
    b.goto(&committee.url("/approvals")).await;
    b.wait_for("#approvals-badge:not([hidden])").await;
    assert_eq!(b.text("#approvals-badge").await, "1");
    assert!(b.text("#approvals").await.contains("出党测试"));
    b.screenshot("approvals-inbox").await;
    b.click("#approvals td.ops a").await;
    b.wait_for("#decide-form").await;
    b.fill("opinion", "同意出党").await;
    confirm_everything(&b).await;
    b.click("#decide-form button[value=approve]").await;
    b.wait_for(".alert-info").await;
    assert!(b.text("h2").await.contains("已通过"));
    assert!(b.text("#trail").await.contains("同意出党"));
    b.screenshot("application-approved").await;
    assert_eq!(
        committee
            .api
            .get(&format!("/api/v1/members/{member}"))
            .await
            .status,
        404
    );

    // The county: 出党管理, 找回 with a reason.
    b.goto(&county.url("/history?reason=exit")).await;
    b.wait_for("#history").await;
    assert!(b.text("#history").await.contains("出党测试"));
    b.screenshot("history-exit").await;
    b.click("#history td.ops a").await;
    b.wait_for("#recover-form").await;
    b.screenshot("history-record").await;
    b.fill("reason", "误操作导致出党").await;
    confirm_everything(&b).await;
    b.click("#recover-form button[type=submit]").await;
    b.wait_for("#member-record").await;
    assert!(b.text(".alert-info").await.contains("已找回"));
    b.screenshot("member-recovered").await;

    // A rename the real-name source does not confirm goes to the county with documents.
    b.goto(&server.url(&format!("/members/{member}/rename")))
        .await;
    b.wait_for("#rename-form").await;
    b.fill("new_name", "改名测试").await;
    b.fill("reason", "户籍改名").await;
    // Without documents the review cannot be made: the page says so next to the upload.
    b.click("#rename-form button[type=submit]").await;
    b.wait_for("#attachments[aria-invalid=true]").await;
    let dir = dangjian_tests::TempDir::new("dangjian-documents");
    let pdf = dir.path().join("户口簿.pdf");
    std::fs::write(&pdf, dangjian_tests::TEST_PDF).unwrap();
    b.client
        .find(fantoccini::Locator::Id("attachments"))
        .await
        .expect("file input")
        .send_keys(&pdf.display().to_string())
        .await
        .expect("choose a file");
    b.wait_for("#attachments-list li.uploaded-file").await;
    assert!(b.text("#attachments-list").await.contains("户口簿.pdf"));
    b.screenshot("rename-with-document").await;
    b.click("#rename-form button[type=submit]").await;
    b.wait_for("#application").await;
    assert!(b.text(".alert-info").await.contains("未通过实名认证"));
    let path = b.current_path().await;
    let app = path
        .trim_start_matches("/applications/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    b.goto(&county.url(&format!("/applications/{app}"))).await;
    b.wait_for("#decide-form").await;
    assert!(b.text("#application").await.contains("户口簿.pdf"));
    b.screenshot("rename-review").await;
    confirm_everything(&b).await;
    b.click("#decide-form button[value=approve]").await;
    b.wait_for(".alert-info").await;
    let renamed = county.api.get(&format!("/api/v1/members/{member}")).await;
    assert_eq!(renamed.body["name"], "改名测试");
    b.close().await;
}

/// The member photo: uploaded from the edit form (a real file chosen in the file input), scaled
/// to the 1-inch box, shown on the record; the placeholder 照片 before.
#[tokio::test]
async fn a_photo_chosen_on_the_edit_form_appears_on_the_record() {
    let server = Server::demo(60, None).await;
    let tier3 = server.account("admin", Some(3));
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let member: String = sqlx::query_scalar("SELECT id FROM members WHERE branch_id = $1 LIMIT 1")
        .bind(&tier3.org_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // A 480×640 portrait made now.
    let dir = dangjian_tests::TempDir::new("dangjian-photo");
    let file = dir.path().join("证件照.png");
    image::RgbImage::from_fn(480, 640, |x, y| {
        image::Rgb([(x / 2) as u8, (y / 3) as u8, 160])
    })
    .save(&file)
    .unwrap();
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url(&format!("/members/{member}"))).await;
    assert_eq!(b.text(".member-photo .placeholder").await, "照片");
    b.goto(&server.url(&format!("/members/{member}/edit")))
        .await;
    b.wait_for("#photo-form").await;
    b.client
        .find(fantoccini::Locator::Id("photo-file"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    b.click("#photo-form button[type=submit]").await;
    b.wait_for(".member-photo img").await;
    assert_eq!(
        b.current_path().await,
        format!("/members/{member}?notice=photo_saved")
    );
    assert!(b.text("[role=status]").await.contains("照片已保存"));
    // The image loaded (same origin, session cookie) at its scaled size: 120×160.
    let mut size = serde_json::Value::Null;
    for _ in 0..50 {
        size = b
            .client
            .execute(
                "const i = document.querySelector('.member-photo img'); \
                 return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null;",
                vec![],
            )
            .await
            .unwrap();
        if !size.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(size, json!([120, 160]));
    b.screenshot("member-photo").await;
    b.close().await;
}

/// SPEC §6 in the browser: a branch of 东岭县 sends a member to a branch of 青河县; the committee
/// returns it, the branch resubmits, every node approves in turn through its own card tunnel
/// (the letter is issued when the city, the lowest common ancestor, approves), the target
/// branch receives it, and the letter prints on one A4 page with its number and receipt stub.
#[tokio::test]
async fn a_transfer_across_two_counties_is_approved_node_by_node_and_received() {
    let server = Server::demo(100, None).await;
    let t3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let city_account = server.account("admin", Some(1));
    let city = dangjian_tests::CardProxy::start(&server, &city_account).await;
    let k2 = city.api.org_by_code(&city_account.org_id, "0370102").await;
    let b2 = city
        .api
        .org_by_code(&city_account.org_id, "037010201")
        .await;
    let s2 = city
        .api
        .org_by_code(&city_account.org_id, "03701020102")
        .await;
    let k2_admin = server.new_admin(&officer, &k2, 201).await;
    let b2_admin = server.new_admin(&officer, &b2, 202).await;
    let s2_admin = server.new_admin(&officer, &s2, 203).await;
    // The branch admin signs in once, in the browser (a six-digit code serves one sign-in);
    // the committee's card session makes the member and looks it up.
    let committee =
        dangjian_tests::CardProxy::start(&server, &server.account("admin", Some(2))).await;
    let m = committee
        .api
        .post(
            "/api/v1/members",
            json!({"name": "转接测试", "id_number": "110101199003074477", "ethnicity": "01",
                   "education": "21", "category": "full", "branch_id": t3.org_id,
                   "joined_on": "2015-06-01", "full_on": "2016-06-01", "job": "worker",
                   "phone": "13800138123", "address": "测试地址"}),
        )
        .await;
    assert_eq!(m.status, 201, "{:?}", m.body);
    let member = m.body["id"].as_str().unwrap().to_string();

    let b = Browser::start().await;
    sign_in(&b, &server, &t3).await;
    b.goto(&server.url(&format!("/members/{member}"))).await;
    b.wait_for(".member-actions").await;
    b.click(".member-actions a[href$='/transfer']").await;
    b.wait_for("#transfer-form").await;
    // Sent empty: every missing field named at once.
    b.fill("date", "").await;
    b.click("#transfer-form button[value=send]").await;
    b.wait_for(".form-problems").await;
    for field in ["to_org_id", "reason", "date", "dues_paid_to"] {
        assert!(
            b.exists(&format!(".field-error[data-field='{field}']"))
                .await,
            "{field} not named"
        );
    }
    b.select("kind", "city").await;
    b.fill("to_q", "第一党支部").await;
    b.click("#find-destination").await;
    b.wait_for("#destinations").await;
    b.click(&format!("#destinations input[value='{s2}']")).await;
    b.fill("date", "2026-11-20").await;
    b.fill("dues_paid_to", "2026-10").await;
    b.fill("reason", "工作调动").await;
    b.screenshot("transfer-form").await;
    b.click("#transfer-form button[value=send]").await;
    b.wait_for("#transfer").await;
    assert!(b.text(".alert-info").await.contains("转接已发送"));
    let path = b.current_path().await;
    let transfer = path
        .trim_start_matches("/transfers/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        b.text("#path li.current .node-name").await,
        "中共东岭县实验中学委员会"
    );
    b.screenshot("transfer-sent").await;

    // The committee returns it with an opinion; the branch resubmits.
    b.goto(&committee.url("/approvals")).await;
    b.wait_for("#transfer-inbox").await;
    assert!(b.text("#transfer-inbox").await.contains("转接测试"));
    b.goto(&committee.url(&format!("/transfers/{transfer}")))
        .await;
    b.wait_for("#decide-form").await;
    confirm_everything(&b).await;
    b.click("#decide-form button[value=return]").await;
    b.wait_for(".form-problems").await;
    b.fill("opinion", "请核对党费交纳情况").await;
    confirm_everything(&b).await;
    b.click("#decide-form button[value=return]").await;
    b.wait_for(".alert-info").await;
    assert!(b.text("h2").await.contains("已退回"));
    b.goto(&server.url(&format!("/transfers/{transfer}"))).await;
    b.wait_for("#returned-form").await;
    assert!(b.text("#trail").await.contains("请核对党费交纳情况"));
    b.screenshot("transfer-returned").await;
    b.fill("opinion", "已核对").await;
    b.click("#returned-form button[value=resubmit]").await;
    b.wait_for(".alert-info").await;
    assert!(b.text("h2").await.contains("办理中"));

    // Node by node: committee, 东岭县, 泉城市 (the letter), 青河县, its committee.
    let county = dangjian_tests::CardProxy::start(&server, &server.county_admin()).await;
    let k2_proxy = dangjian_tests::CardProxy::start(&server, &k2_admin).await;
    let b2_proxy = dangjian_tests::CardProxy::start(&server, &b2_admin).await;
    for proxy in [&committee, &county, &city, &k2_proxy, &b2_proxy] {
        let url = proxy.url(&format!("/transfers/{transfer}"));
        b.goto(&url).await;
        b.wait_for("#decide-form").await;
        b.fill("opinion", "同意").await;
        confirm_everything(&b).await;
        b.click("#decide-form button[value=approve]").await;
        b.wait_for(".alert-info").await;
        assert!(b.text(".alert-info").await.contains("已同意"));
    }
    assert!(b.exists("#letter").await);
    b.screenshot("transfer-approved").await;

    // The member is still in the source branch; the target branch receives it.
    assert_eq!(
        committee
            .api
            .get(&format!("/api/v1/members/{member}"))
            .await
            .status,
        200
    );
    let b2_session = Browser::start().await;
    sign_in(&b2_session, &server, &s2_admin).await;
    b2_session
        .goto(&server.url(&format!("/transfers/{transfer}")))
        .await;
    b2_session.wait_for("#receive-form").await;
    confirm_everything(&b2_session).await;
    b2_session
        .click("#receive-form button[value=receive]")
        .await;
    b2_session.wait_for(".alert-info").await;
    assert!(b2_session.text("h2").await.contains("已办结"));
    b2_session.screenshot("transfer-received").await;
    assert_eq!(
        committee
            .api
            .get(&format!("/api/v1/members/{member}"))
            .await
            .status,
        404
    );

    // The letter, printed.
    b2_session
        .goto(&server.url(&format!("/transfers/{transfer}/letter")))
        .await;
    b2_session.wait_for("main.sheet").await;
    b2_session.screenshot("transfer-letter").await;
    let text = b2_session.print_text().await;
    let number = committee
        .api
        .get(&format!("/api/v1/transfers/{transfer}"))
        .await
        .body["letter_number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&number), "{text}");
    assert!(text.contains("回执联"), "{text}");
    b2_session.close().await;
    b.close().await;
}

// ---- quality (issue 16)

/// 信息质量管控 at 1366×768: the tier-3 admin starts a batch check of its branch with the
/// default rule types, the page follows the progress bar (`jobs::progress_bar`, reloaded by
/// app.js when the job ends) to the end, opens 集中排查专项统计 and clicks a count down to the
/// members flagged.
#[tokio::test]
async fn quality_batch_check_progress_special_and_members_in_the_browser() {
    let server = Server::demo(300, None).await;
    let t3 = server.account("admin", Some(3));
    // Each six-digit code signs in once: the member is entered by the committee's admin.
    let api = server.sign_in(&server.account("admin", Some(2))).await;
    // A member whose sex differs from the ID number (confirmed), so that a count is non-zero.
    let number = dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1985, 3, 1).unwrap(),
        21,
    );
    let r = api
        .post(
            "/api/v1/members",
            json!({"name": "质检性别", "id_number": number, "sex": "female", "ethnicity": "01",
                   "education": "21", "category": "full", "branch_id": t3.org_id,
                   "joined_on": "2010-06-01", "full_on": "2011-06-01", "job": "worker",
                   "phone": "13800029001", "address": "测试地址",
                   "registered_phone": "13900029001", "confirm_contradictions": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let b = Browser::start().await;
    b.goto(&server.url("/login")).await;
    b.wait_for("#login-form").await;
    b.fill("id_number", &t3.id_number).await;
    b.fill("password", &t3.password).await;
    b.fill("code", &current_code(&t3.totp_secret)).await;
    b.click("#login-form button[type=submit]").await;
    b.wait_for("header.top .who").await;
    b.click("#quality-link").await;
    b.wait_for("#quality-form").await;
    b.click("#start-check").await;
    // Running: the progress bar; app.js reloads the page when the job ends, which then says
    // where the results are (a small branch may already be done at the first load).
    b.wait_for("#quality-done").await;
    assert!(!b.exists("#quality-running").await);
    b.screenshot("quality").await;
    b.click("#done-special").await;
    b.wait_for("#quality-special").await;
    b.screenshot("quality-special").await;
    b.click("#quality-special a.count[data-rule=sex_vs_id]")
        .await;
    b.wait_for("#quality-members").await;
    let table = b.text("#quality-members").await;
    assert!(table.contains("质检性别"), "{table}");
    assert!(table.contains("性别与身份证不符"), "{table}");
    assert!(b.text("#filter-rule").await.contains("性别与身份证不符"));
    b.close().await;
}

// ---- query (issue 16)

/// 综合查询 in the browser: name 模糊 plus 人员类别 (a row added with "+"), saved as 固定查询,
/// the page reloaded, the saved query reused from the list with the same rows, a name clicked
/// through to the record.
#[tokio::test]
async fn a_saved_query_is_reused_after_a_reload_and_a_name_opens_the_record() {
    let server = Server::demo(300, None).await;
    let admin = server.account("admin", Some(3));
    // A surname that a member of the branch has (whatever the demo drew), read directly: an
    // API sign-in would spend the TOTP code the browser needs.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&server.db_url())
        .await
        .unwrap();
    let name: String =
        sqlx::query_scalar("SELECT name FROM members WHERE branch_id = $1 ORDER BY id LIMIT 1")
            .bind(&admin.org_id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let surname: String = name.chars().take(1).collect();

    let b = Browser::start().await;
    sign_in(&b, &server, &admin).await;
    b.click("#query-link").await;
    b.wait_for("#query-form").await;
    // The default conditions: 党籍状态, 姓名, 性别, 民族, 公民身份证号.
    for (i, field) in ["status", "name", "sex", "ethnicity", "id_number"]
        .iter()
        .enumerate()
    {
        assert_eq!(b.value(&format!("c{i}-field")).await, *field);
    }
    b.fill("c1-value", &surname).await;
    b.click("#query-add").await;
    b.wait_for("#c5-field").await;
    b.select("c5-field", "category").await;
    // Changing the field re-renders the row with the field's modes and choices.
    b.wait_for("#c5-values").await;
    b.select("c5-values", "full").await;
    b.click("#query-submit").await;
    b.wait_for("#query-table").await;
    let first = b.text("#query-table tbody").await;
    assert!(first.contains(&surname), "{first}");
    assert!(
        first.contains("正式党员") && !first.contains("预备党员"),
        "{first}"
    );
    let total = b.text("#query-total").await;

    b.fill("saved-name", "本姓正式党员").await;
    b.click("#save-query button[type=submit]").await;
    b.wait_for("#saved-queries .saved-link").await;
    // A reload: a fresh page with the default conditions, the saved query in the list.
    b.goto(&server.url("/query/members")).await;
    b.wait_for("#query-form").await;
    assert_eq!(b.value("c1-value").await, "");
    b.click("#saved-queries .saved-link").await;
    b.wait_for("#query-table").await;
    assert_eq!(b.text("#query-table tbody").await, first);
    assert_eq!(b.text("#query-total").await, total);
    // The saved conditions are the ones with content: name first, then category.
    assert_eq!(b.value("c0-value").await, surname);
    assert_eq!(b.value("c1-field").await, "category");
    b.screenshot("query-members").await;

    b.click("#query-table a.record-link").await;
    b.wait_for("header.top .who").await;
    assert!(
        b.current_path().await.starts_with("/members/"),
        "{}",
        b.current_path().await
    );
    b.close().await;
}

// ---- member import (issue 16)

/// 导入汇总表 in the browser: the template downloads, a small sheet with one bad row is
/// uploaded, the report names that row (行号, 字段, 原因), 确认导入 writes the others and the
/// members appear in the branch's list.
#[tokio::test]
async fn a_summary_sheet_is_imported_after_its_report() {
    use dangjian_server::import::COLUMNS;
    let server = Server::demo(60, None).await;
    let t3 = server.account("admin", Some(3));
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let code: String = sqlx::query_scalar("SELECT code FROM orgs WHERE id = $1")
        .bind(&t3.org_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // Three synthetic people; the second one's ethnicity is not in the code table.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, column) in COLUMNS.iter().enumerate() {
        sheet.write_string(0, c as u16, column.label).unwrap();
    }
    let names = ["导入甲", "导入乙", "导入丙"];
    for (i, name) in names.iter().enumerate() {
        let birth = chrono::NaiveDate::from_ymd_opt(1975, 3, 1 + i as u32).unwrap();
        let id = dangjian_server::member::idcard::compose("469002", birth, 103);
        let values = [
            ("org_code", code.clone()),
            ("name", name.to_string()),
            ("id_number", id),
            (
                "ethnicity",
                if i == 1 { "火星族" } else { "汉族" }.to_string(),
            ),
            ("education", "大学本科毕业".into()),
            ("category", "正式党员".into()),
            ("joined_on", "2001-07-01".into()),
            ("full_on", "2002-07-01".into()),
            ("job", "在岗职工".into()),
            ("phone", format!("1986000000{i}")),
            ("address", "某市某区测试路2号".into()),
        ];
        for (c, column) in COLUMNS.iter().enumerate() {
            if let Some((_, v)) = values.iter().find(|(k, _)| *k == column.key) {
                sheet.write_string(i as u32 + 1, c as u16, v).unwrap();
            }
        }
    }
    let dir = dangjian_tests::TempDir::new("dangjian-import");
    let path = dir.path().join("汇总表.xlsx");
    std::fs::write(&path, book.save_to_buffer().unwrap()).unwrap();

    let b = Browser::start().await;
    sign_in(&b, &server, &t3).await;
    b.goto(&server.url("/import/members")).await;
    b.wait_for("#import-form").await;
    // The template link answers with a workbook (fetched with the page's session).
    let answer = b
        .client
        .execute(
            "return fetch(document.getElementById('import-template').href)\
             .then(r => r.status + ' ' + r.headers.get('content-type'));",
            vec![],
        )
        .await
        .unwrap();
    let answer = answer.as_str().unwrap().to_string();
    assert!(
        answer.starts_with("200 ") && answer.contains("spreadsheetml"),
        "{answer}"
    );
    b.client
        .find(fantoccini::Locator::Id("import-file"))
        .await
        .unwrap()
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    b.click("#import-submit").await;
    b.wait_for("#import-problems").await;
    let report = b.text("#import-problems").await;
    assert!(
        report.contains("行号") && report.contains("原因"),
        "{report}"
    );
    assert!(
        report.contains("3") && report.contains("民族") && report.contains("火星族"),
        "{report}"
    );
    assert!(!report.contains("\n2 "), "{report}");
    let counts = b.text("#import-counts").await;
    assert!(counts.contains("校验通过 2 行"), "{counts}");
    b.screenshot("import").await;
    confirm_everything(&b).await;
    b.click("#import-confirm").await;
    b.wait_for("#import-members").await;
    assert!(b.text(".alert-info").await.contains("已导入 2 名党员"));
    b.click("#import-members").await;
    b.wait_for("#member-list").await;
    let list = b.text("#member-list").await;
    assert!(
        list.contains("导入甲") && list.contains("导入丙") && !list.contains("导入乙"),
        "{list}"
    );
    b.close().await;
}

// ---- stats (issue 16)

#[tokio::test]
async fn statistics_show_charts_and_drill_down_and_forms_print() {
    let server = Server::demo(200, None).await;
    // The tier-3 admin of a general branch 党总支: branches below it to drill into.
    let general = server.account_in("admin", Some(3), "621");
    let b = Browser::start().await;
    sign_in(&b, &server, &general).await;
    b.goto(&server.url("/stats")).await;
    b.wait_for("#stats-total").await;
    assert!(b.exists("svg.pie-chart").await);
    assert!(b.exists("svg.bar-chart").await);
    assert!(b.text("#stats").await.contains("年龄"));
    let total = b.text("#stats-total").await;
    b.screenshot("stats").await;
    // Drill into the first child.
    let child = b.text("#stats-children tbody tr:first-child a.drill").await;
    b.click("#stats-children tbody tr:first-child a.drill")
        .await;
    b.wait_for("#stats-total").await;
    assert!(b.text("#stats h2").await.contains(&child), "{child}");
    assert_ne!(b.text("#stats-total").await, total);
    // 注册统计.
    b.click("#tab-registration").await;
    b.wait_for("#registration-children").await;
    // A member's collection form, from the record.
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let member: String = sqlx::query_scalar(
        "SELECT m.id FROM members m JOIN orgs o ON o.id = m.branch_id WHERE o.parent_id = $1 LIMIT 1",
    )
    .bind(&general.org_id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    b.goto(&server.url(&format!("/members/{member}"))).await;
    b.click("#member-form-link").await;
    b.wait_for("#member-form").await;
    assert!(b.text("#form-id-number").await.contains('*'));
    b.screenshot("form-member").await;
    b.close().await;
}

// ---- members' own accounts (issue 18)

/// The newest code of `kind` sent to `to` in the outbox.
fn outbox_code_to(server: &Server, kind: &str, to: &str) -> String {
    let outbox = std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap();
    outbox
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| m["kind"] == kind && m["to"] == to)
        .and_then(|m| m["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {kind} to {to}"))
}

#[tokio::test]
async fn a_member_registers_signs_in_and_asks_for_a_correction_the_branch_approves() {
    let server = Server::demo(200, None).await;
    let tier3 = server.account("admin", Some(3));
    // The committee above enters the member (the branch admin's code signs the browser in).
    let admin = server.sign_in(&server.account("admin", Some(2))).await;
    let id_number = dangjian_tests::synthetic_id_number(7401);
    let r = admin
        .post(
            "/api/v1/members",
            json!({"name": "网上注册", "id_number": id_number, "ethnicity": "01", "education": "21",
                   "category": "full", "branch_id": tier3.org_id, "joined_on": "2010-06-01",
                   "full_on": "2011-06-01", "job": "worker", "phone": "13800001234",
                   "address": "测试地址"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mobile = "13655557401";
    let password = "Wangshang2026x";
    let b = Browser::start().await;
    // 党员注册, from the sign-in page.
    b.goto(&server.url("/login")).await;
    b.wait_for("#member-links").await;
    b.click("#member-links a[href='/register']").await;
    b.wait_for("#register-form").await;
    b.fill("mobile", mobile).await;
    b.click("#register-sms-form button[type=submit]").await;
    b.wait_for("#register-notice").await;
    let code = outbox_code_to(&server, "register_sms", mobile);
    b.fill("id_number", &id_number).await;
    b.fill("name", "网上注册").await;
    b.fill("sms_code", &code).await;
    b.fill("password", password).await;
    b.fill("password2", password).await;
    b.screenshot("member-register").await;
    b.click("#register-form button[type=submit]").await;
    b.wait_for("#registered").await;
    assert!(b.text("#registered").await.contains("注册成功"));
    // 党员登录 with the SMS code sent to the registered phone.
    b.click("a[href='/me/login']").await;
    b.wait_for("#member-login-form").await;
    b.fill("id_number", &id_number).await;
    b.fill("password", password).await;
    b.click("#member-login-sms").await;
    b.wait_for("#member-login-notice").await;
    let code = outbox_code_to(&server, "member_sign_in", mobile);
    b.fill("password", password).await;
    b.fill("code", &code).await;
    b.click("#member-login-form button.primary").await;
    b.wait_for("#my-record").await;
    // 个人专区: the own record unmasked, what it lacks, the organisation.
    let record = b.text("#my-record").await;
    assert!(
        record.contains(&id_number) && record.contains(mobile),
        "{record}"
    );
    assert!(b.text("#missing").await.contains("籍贯"));
    assert!(b.text("#my-org").await.contains(&tier3.org_name));
    // 信息更正申请.
    b.fill("content", "籍贯应为山东济南").await;
    b.click("#correction-form button[type=submit]").await;
    b.wait_for("#correction-notice").await;
    assert!(b.text("#my-applications").await.contains("待审批"));
    b.client
        .execute(
            "document.getElementById('correction').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("member-page").await;
    b.click("#member-logout").await;
    b.wait_for("#member-login-form").await;
    // The branch approves it in 维护审批.
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url("/approvals")).await;
    b.wait_for("#approvals").await;
    let row = b.text("#approvals tbody tr:first-child").await;
    assert!(
        row.contains("信息更正申请") && row.contains("网上注册"),
        "{row}"
    );
    let id = b
        .client
        .find(fantoccini::Locator::Css("#approvals tbody tr:first-child"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    b.goto(&server.url(&format!("/applications/{id}"))).await;
    b.wait_for("#decide-form").await;
    b.fill("opinion", "已更正籍贯").await;
    b.click("#decide-form button[value=approve]").await;
    b.client.accept_alert().await.unwrap();
    b.wait_for(".badge.state").await;
    // 注册统计: counted at once, drill-down to the unregistered, the printed table.
    b.goto(&server.url(&format!("/stats?org_id={}&tab=registration", tier3.org_id)))
        .await;
    b.wait_for("#registration-by-job").await;
    assert!(b.text("#registration-total").await.contains("已注册：1"));
    b.screenshot("registration-stats").await;
    b.click("#registration-unregistered").await;
    b.wait_for("#unregistered-list").await;
    let list = b.text("#unregistered-list").await;
    assert!(!list.contains("网上注册"), "{list}");
    b.screenshot("registration-unregistered").await;
    b.goto(&server.url(&format!(
        "/stats/registration/print?org_id={}",
        tier3.org_id
    )))
    .await;
    b.wait_for("#registration-table").await;
    b.emulate_print(true).await;
    b.screenshot("registration-table").await;
    let text = b.print_text().await;
    assert!(
        text.contains("党员注册情况统计表") && text.contains("签字") && text.contains("盖章"),
        "{text}"
    );
    b.close().await;
    let decided = admin.get(&format!("/api/v1/applications/{id}")).await;
    assert_eq!(decided.body["state"], "approved", "{:?}", decided.body);
}

/// 发送注册提醒 on the branch's registration statistics: the result in words, the SMS in the
/// notifier's outbox; a second send within the week reaches nobody; a committee (not a branch)
/// is offered no button.
#[tokio::test]
async fn a_branch_admin_sends_registration_reminders_from_the_statistics() {
    let server = Server::demo(150, None).await;
    let tier3 = server.account("admin", Some(3));
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url(&format!("/stats?org_id={}&tab=registration", tier3.org_id)))
        .await;
    b.wait_for("#reminder-form").await;
    b.click("#reminder-form button[type=submit]").await;
    b.client.accept_alert().await.unwrap();
    b.wait_for("#reminder-result").await;
    let sent: i64 = b
        .text("#reminder-sent")
        .await
        .trim_end_matches(" 人")
        .trim()
        .parse()
        .unwrap();
    assert!(sent > 0);
    assert!(b.text("#reminder-result").await.contains("已向"));
    b.screenshot("registration-reminders").await;
    let outbox = std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap();
    let messages = outbox
        .lines()
        .filter(|l| l.contains("\"registration_reminder\""))
        .count() as i64;
    assert_eq!(messages, sent);
    // Again from the drill-down list: everyone was reminded this week.
    b.goto(&server.url(&format!("/stats/unregistered?org_id={}", tier3.org_id)))
        .await;
    b.wait_for("#reminder-form").await;
    b.click("#reminder-form button[type=submit]").await;
    b.client.accept_alert().await.unwrap();
    b.wait_for("#reminder-result").await;
    assert!(b.text("#reminder-sent").await.starts_with('0'));
    assert!(b
        .text("#reminder-recent")
        .await
        .starts_with(&sent.to_string()));
    b.close().await;
    // A general branch's own statistics offer no button (reminders go out per branch); the
    // branches below it, inside its admin's scope, do.
    let b = Browser::start().await;
    let general = server.account_in("admin", Some(3), "621");
    sign_in(&b, &server, &general).await;
    b.goto(&server.url(&format!(
        "/stats?org_id={}&tab=registration",
        general.org_id
    )))
    .await;
    b.wait_for("#registration-children").await;
    assert!(!b.exists("#reminder-form").await);
    b.click("#registration-children a.drill").await;
    b.wait_for("#registration-by-job").await;
    assert!(b.exists("#reminder-form").await);
    b.close().await;
}

/// A member registered through the API signs in on the member's page in its own browser.
async fn member_browser(server: &Server, id_number: &str, mobile: &str, password: &str) -> Browser {
    let anon = server.client();
    let post = |path: &'static str, body: serde_json::Value| {
        let anon = anon.clone();
        async move {
            let r = anon
                .post(server.url(path))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    post("/api/v1/register/sms", json!({"mobile": mobile})).await;
    let code = outbox_code_to(server, "register_sms", mobile);
    let name = "网上转接";
    post(
        "/api/v1/register",
        json!({"id_number": id_number, "name": name, "mobile": mobile, "sms_code": code,
               "password": password}),
    )
    .await;
    let b = Browser::start().await;
    b.goto(&server.url("/me/login")).await;
    b.wait_for("#member-login-form").await;
    b.fill("id_number", id_number).await;
    b.fill("password", password).await;
    b.click("#member-login-sms").await;
    b.wait_for("#member-login-notice").await;
    let code = outbox_code_to(server, "member_sign_in", mobile);
    b.fill("password", password).await;
    b.fill("code", &code).await;
    b.click("#member-login-form button.primary").await;
    b.wait_for("#my-record").await;
    b
}

#[tokio::test]
async fn an_approved_online_transfer_request_becomes_the_transfer_the_member_follows() {
    let server = Server::demo(150, None).await;
    let tier3 = server.account("admin", Some(3));
    // The committee's API session (the branch admin's code signs the browser in).
    let branch = server.sign_in(&server.account("admin", Some(2))).await;
    let id_number = dangjian_tests::synthetic_id_number(7411);
    let r = branch
        .post(
            "/api/v1/members",
            json!({"name": "网上转接", "id_number": id_number, "ethnicity": "01", "education": "21",
                   "category": "full", "branch_id": tier3.org_id, "joined_on": "2010-06-01",
                   "full_on": "2011-06-01", "job": "worker", "phone": "13800001234",
                   "address": "测试地址"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // A sibling branch is where the member moves to.
    let parent = branch.get(&format!("/api/v1/orgs/{}", tier3.org_id)).await;
    let parent_id = parent.body["parent_id"].as_str().unwrap().to_string();
    let children = branch
        .get(&format!("/api/v1/orgs/{parent_id}/children"))
        .await;
    assert_eq!(children.status, 200, "{:?}", children.body);
    let list = children.body["items"]
        .as_array()
        .or(children.body.as_array())
        .cloned()
        .unwrap();
    let sibling = list
        .iter()
        .find(|o| o["id"] != tier3.org_id.as_str() && o["category"] == "631")
        .expect("a sibling branch");
    let sibling_name = sibling["name"].as_str().unwrap().to_string();
    // The member asks on 个人专区.
    let member = member_browser(&server, &id_number, "13655557411", "Zhuanjie2026x").await;
    b_fill_transfer(&member, &sibling_name).await;
    // The branch approves it and starts the transfer from the application.
    let b = Browser::start().await;
    sign_in(&b, &server, &tier3).await;
    b.goto(&server.url("/approvals")).await;
    b.wait_for("#approvals").await;
    let id = b
        .client
        .find(fantoccini::Locator::Css("#approvals tbody tr:first-child"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    b.goto(&server.url(&format!("/applications/{id}"))).await;
    b.wait_for("#decide-form").await;
    assert!(
        !b.exists("#start-transfer").await,
        "not before the approval"
    );
    b.fill("opinion", "同意转出").await;
    b.click("#decide-form button[value=approve]").await;
    b.client.accept_alert().await.unwrap();
    b.wait_for("#start-transfer").await;
    b.screenshot("transfer-request-approved").await;
    b.click("#start-transfer").await;
    b.wait_for("#from-request").await;
    assert_eq!(b.value("reason").await, "工作调动");
    let chosen = b
        .client
        .find(fantoccini::Locator::Css(
            "#destinations input[name=to_org_id]:checked",
        ))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), sibling["id"].as_str());
    b.screenshot("transfer-from-request").await;
    b.fill("dues_paid_to", "2026-10").await;
    b.click("#transfer-form button[value=send]").await;
    b.wait_for("#transfer").await;
    // The application now leads to the transfer under way.
    b.goto(&server.url(&format!("/applications/{id}"))).await;
    b.wait_for("#open-transfer").await;
    b.close().await;
    // The member's page shows it.
    member.goto(&server.url("/me")).await;
    member.wait_for("#my-transfers").await;
    let row = member.text("#my-transfers").await;
    assert!(
        row.contains("办理中") && row.contains(&sibling_name),
        "{row}"
    );
    member.close().await;
}

/// 网上转接申请 on the member's page.
async fn b_fill_transfer(b: &Browser, destination: &str) {
    b.fill("destination", destination).await;
    b.fill("reason", "工作调动").await;
    b.click("#transfer-request-form button[type=submit]").await;
    b.wait_for("#my-applications").await;
    assert!(b.text("#my-applications").await.contains("网上转接申请"));
}

/// 忘记密码 from the member's sign-in page: the code to the registered phone, the new
/// password; the session of before ends, the new password signs in.
#[tokio::test]
async fn a_member_resets_a_forgotten_password_from_the_sign_in_page() {
    let server = Server::demo(120, None).await;
    let tier3 = server.account("admin", Some(3));
    let admin = server.sign_in(&server.account("admin", Some(2))).await;
    let id_number = dangjian_tests::synthetic_id_number(7421);
    let r = admin
        .post(
            "/api/v1/members",
            json!({"name": "网上转接", "id_number": id_number, "ethnicity": "01", "education": "21",
                   "category": "full", "branch_id": tier3.org_id, "joined_on": "2010-06-01",
                   "full_on": "2011-06-01", "job": "worker", "phone": "13800001234",
                   "address": "测试地址"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let mobile = "13655557421";
    let before = member_browser(&server, &id_number, mobile, "Jiumima2026x").await;
    let b = Browser::start().await;
    b.goto(&server.url("/me/login")).await;
    b.wait_for("#member-login-links").await;
    b.click("#member-login-links a[href='/me/login/reset']")
        .await;
    b.wait_for("#reset-form").await;
    b.fill("id_number", &id_number).await;
    b.click("#reset-sms").await;
    b.wait_for("#reset-notice").await;
    let code = outbox_code_to(&server, "member_password_reset", mobile);
    b.fill("sms_code", &code).await;
    b.fill("password", "Xinmima2026y").await;
    b.fill("password2", "Xinmima2026y").await;
    b.screenshot("member-password-reset").await;
    b.click("#reset-form button.primary").await;
    b.wait_for("#password-reset").await;
    assert!(b.text("#password-reset").await.contains("密码已重设"));
    // The session of before ended.
    before.goto(&server.url("/me")).await;
    before.wait_for("#member-login-form").await;
    before.close().await;
    // The new password signs in; 修改密码 is on 个人专区.
    b.click("a[href='/me/login']").await;
    b.wait_for("#member-login-form").await;
    b.fill("id_number", &id_number).await;
    b.fill("password", "Xinmima2026y").await;
    b.click("#member-login-sms").await;
    b.wait_for("#member-login-notice").await;
    let code = outbox_code_to(&server, "member_sign_in", mobile);
    b.fill("password", "Xinmima2026y").await;
    b.fill("code", &code).await;
    b.click("#member-login-form button.primary").await;
    b.wait_for("#password-form").await;
    b.fill("old_password", "Falsch2026xx").await;
    b.fill("new_password", "Dritte2026zz").await;
    b.fill("new_password_again", "Dritte2026zz").await;
    b.click("#password-form button[type=submit]").await;
    b.wait_for("#password-form").await;
    assert!(b.text("#change-password").await.contains("原密码不正确"));
    assert!(!b.text("#correction").await.contains("原密码"));
    b.fill("old_password", "Xinmima2026y").await;
    b.fill("new_password", "Dritte2026zz").await;
    b.fill("new_password_again", "Dritte2026zz").await;
    b.click("#password-form button[type=submit]").await;
    b.wait_for("#password-notice").await;
    assert!(b.text("#password-notice").await.contains("密码已修改"));
    b.client
        .execute(
            "document.getElementById('change-password').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    b.screenshot("member-password-change").await;
    b.close().await;
}

/// 身份验证器 on 个人专区: the QR code and the secret, confirmed with a code; then 党员登录
/// with the authenticator's code and no SMS.
#[tokio::test]
async fn a_member_enrols_an_authenticator_and_signs_in_with_it() {
    let server = Server::demo(120, None).await;
    let tier3 = server.account("admin", Some(3));
    let admin = server.sign_in(&server.account("admin", Some(2))).await;
    let id_number = dangjian_tests::synthetic_id_number(7431);
    let r = admin
        .post(
            "/api/v1/members",
            json!({"name": "网上转接", "id_number": id_number, "ethnicity": "01", "education": "21",
                   "category": "full", "branch_id": tier3.org_id, "joined_on": "2010-06-01",
                   "full_on": "2011-06-01", "job": "worker", "phone": "13800001234",
                   "address": "测试地址"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let password = "Yanzheng2026x";
    let b = member_browser(&server, &id_number, "13655557431", password).await;
    b.click("#totp-start button[type=submit]").await;
    b.wait_for("#totp-form").await;
    assert!(b.exists("#totp img.qr").await);
    let secret = b.text("#totp-secret").await.trim().to_string();
    b.client
        .execute("document.getElementById('totp').scrollIntoView()", vec![])
        .await
        .unwrap();
    b.screenshot("member-totp").await;
    b.fill("totp-code", &current_code(&secret)).await;
    b.click("#totp-form button[type=submit]").await;
    b.wait_for("#totp-notice").await;
    assert!(b.text("#totp-state").await.contains("已绑定"));
    b.click("#member-logout").await;
    b.wait_for("#member-login-form").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let next = dangjian_server::account::totp::code_at(&secret, now + 30).unwrap();
    b.fill("id_number", &id_number).await;
    b.fill("password", password).await;
    b.fill("code", &next).await;
    b.click("#member-login-form button.primary").await;
    b.wait_for("#my-record").await;
    b.close().await;
}
