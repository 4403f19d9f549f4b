//! The authorization matrix: every route of the router — the JSON API from its OpenAPI
//! document and the pages from the page router's own table — called by an anonymous client,
//! a security officer, an auditor and admins of tier 1, 2 and 3, on targets inside and outside
//! their scopes. Only the allowed calls get through; a new route without an entry in `POLICY`
//! fails this test.

use std::collections::{BTreeSet, HashMap};

use dangjian_tests::{Api, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in account, whatever its role.
    SignedIn,
    /// Admins, on a target inside their scope (or with no target).
    Admin,
    /// Admins, on a target strictly below their own organisation.
    AdminBelow,
    /// Admins whose scope covers the organisation that keeps the unit: unit A is linked to a
    /// general branch directly below the tier-2 admin's committee, so tiers 1 and 2 may edit
    /// it and the tier-3 admin whose branch owns it may only read it (SPEC §3).
    UnitKeeper,
    /// Admins of exactly this tier, on a target inside their scope (SPEC §4's table: recovery
    /// and permanent deletion by tier 1, cancel phone by tier 2, correction delete by tier 3;
    /// the in-scope application's approver is the tier-2 committee).
    AdminTier(u8),
    /// Security officers, on a target inside their scope.
    Security,
    /// Auditors.
    Auditor,
    /// Only the account that started it (background jobs): the targets are stored jobs of
    /// another account here, so every signed-in caller is answered 404 (the owner's view is
    /// tested with the work that starts jobs, and across servers by the cluster suite).
    Owner,
    /// A member's own session 党员个人账号 (issue 18): only the member reaches it.
    Member,
    /// Ends the caller's session: checked separately at the end.
    EndsSession,
    /// The method is not served on this path.
    Absent,
}

use Rule::*;

/// The policy: (method, path) → rule. Page paths list GET and POST; API paths their methods.
const POLICY: &[(&str, &str, Rule)] = &[
    // JSON API: sign-in and accounts
    ("POST", "/api/v1/session", Public),
    ("GET", "/api/v1/session", SignedIn),
    ("DELETE", "/api/v1/session", EndsSession),
    ("POST", "/api/v1/session/role", SignedIn),
    ("POST", "/api/v1/account/password", SignedIn),
    ("POST", "/api/v1/activation/sms", Public),
    ("POST", "/api/v1/activation", Public),
    ("POST", "/api/v1/activation/totp", Public),
    ("POST", "/api/v1/password/sms", Public),
    ("POST", "/api/v1/password/reset", Public),
    ("GET", "/api/v1/grants", Security),
    ("POST", "/api/v1/grants", Security),
    ("DELETE", "/api/v1/grants/{id}", Security),
    ("POST", "/api/v1/accounts/{id}/unlock", Security),
    ("POST", "/api/v1/accounts/{id}/reset", Security),
    ("GET", "/api/v1/dictionaries", SignedIn),
    ("POST", "/api/v1/session/card", Public),
    ("POST", "/api/v1/agent/refusals", SignedIn),
    ("POST", "/api/v1/enrolment/check", Public),
    ("POST", "/api/v1/enrolment", Public),
    ("POST", "/api/v1/grants/{id}/enrolment-code", Security),
    ("GET", "/api/v1/certificates", Security),
    ("POST", "/api/v1/certificates/{serial}/revoke", Security),
    ("GET", "/api/v1/openapi.json", Public),
    ("GET", "/api/v1/health", Public),
    ("GET", "/crl/platform.crl", Public),
    ("GET", "/api/v1/jobs/{id}", Owner),
    // Members' own accounts: registration and sign-in are public, the rest the member's own.
    ("POST", "/api/v1/register/sms", Public),
    ("POST", "/api/v1/register", Public),
    ("POST", "/api/v1/me/session/sms", Public),
    ("POST", "/api/v1/me/session", Public),
    ("DELETE", "/api/v1/me/session", EndsSession),
    ("GET", "/api/v1/me", Member),
    ("POST", "/api/v1/me/corrections", Member),
    ("POST", "/api/v1/orgs/{id}/registration-reminders", Admin),
    ("GET", "/orgs/{id}/registration-reminders", Absent),
    ("POST", "/orgs/{id}/registration-reminders", Admin),
    ("GET", "/api/v1/me/applications", Member),
    ("POST", "/api/v1/me/password-reset/sms", Public),
    ("POST", "/api/v1/me/password-reset", Public),
    ("POST", "/api/v1/me/password", Member),
    ("POST", "/api/v1/me/totp", Member),
    ("POST", "/api/v1/me/totp/confirm", Member),
    ("GET", "/me/totp", Absent),
    ("POST", "/me/totp", Member),
    ("GET", "/me/totp/confirm", Absent),
    ("POST", "/me/totp/confirm", Member),
    ("GET", "/me/login/reset", Public),
    ("POST", "/me/login/reset", Public),
    ("GET", "/me/login/reset/sms", Absent),
    ("POST", "/me/login/reset/sms", Public),
    ("GET", "/me/password", Absent),
    ("POST", "/me/password", Member),
    ("GET", "/me/correction", Absent),
    ("POST", "/me/correction", Member),
    ("POST", "/api/v1/me/transfer-requests", Member),
    ("GET", "/api/v1/me/transfers", Member),
    ("GET", "/me/transfer-request", Absent),
    ("POST", "/me/transfer-request", Member),
    ("GET", "/register", Public),
    ("POST", "/register", Public),
    ("GET", "/register/sms", Absent),
    ("POST", "/register/sms", Public),
    ("GET", "/me/login", Public),
    ("POST", "/me/login", Public),
    ("GET", "/me/login/sms", Absent),
    ("POST", "/me/login/sms", Public),
    ("GET", "/me", Member),
    ("POST", "/me", Absent),
    ("GET", "/me/logout", Absent),
    ("POST", "/me/logout", EndsSession),
    // Transfer letters: public verification (anyone holding a letter may check it).
    ("GET", "/api/v1/letters/{number}/verify", Public),
    ("POST", "/api/v1/letters/verify", Public),
    // organisations
    ("GET", "/api/v1/orgs", Admin),
    ("POST", "/api/v1/orgs", Admin),
    ("GET", "/api/v1/orgs/{id}", Admin),
    ("PATCH", "/api/v1/orgs/{id}", Admin),
    ("DELETE", "/api/v1/orgs/{id}", AdminBelow),
    ("GET", "/api/v1/orgs/{id}/children", Admin),
    ("GET", "/api/v1/orgs/{id}/members", Admin),
    ("POST", "/api/v1/orgs/{id}/category", AdminBelow),
    ("POST", "/api/v1/orgs/{id}/revoke", AdminBelow),
    ("POST", "/api/v1/orgs/{id}/unlink-units", AdminBelow),
    // units and members
    ("GET", "/api/v1/units", Admin),
    ("POST", "/api/v1/units", Admin),
    ("GET", "/api/v1/units/credit-code", Admin),
    ("GET", "/api/v1/units/{id}", Admin),
    ("PATCH", "/api/v1/units/{id}", UnitKeeper),
    ("DELETE", "/api/v1/units/{id}", UnitKeeper),
    ("POST", "/api/v1/members", Admin),
    ("GET", "/api/v1/members/{id}", Admin),
    ("PATCH", "/api/v1/members/{id}", Admin),
    (
        "POST",
        "/api/v1/members/{id}/correction-delete",
        AdminTier(3),
    ),
    ("POST", "/api/v1/members/{id}/rename", Admin),
    ("POST", "/api/v1/members/{id}/registered-phone", Admin),
    ("POST", "/api/v1/members/{id}/registered-phone/code", Admin),
    // applications, approvals and history
    ("GET", "/api/v1/applications", Admin),
    ("POST", "/api/v1/applications", Admin),
    ("GET", "/api/v1/applications/{id}", Admin),
    ("POST", "/api/v1/applications/{id}/approve", AdminTier(2)),
    ("POST", "/api/v1/applications/{id}/reject", AdminTier(2)),
    ("POST", "/api/v1/applications/{id}/withdraw", Admin),
    ("GET", "/api/v1/approvals", Admin),
    // transfers (the transfer inside waits at the tier-2 committee; its source is branch A)
    ("POST", "/api/v1/transfers", Admin),
    ("POST", "/api/v1/transfers/inbound", Admin),
    ("GET", "/api/v1/applications/{id}/transfer-draft", Admin),
    ("GET", "/api/v1/transfers/contacts", Admin),
    ("GET", "/api/v1/transfers/{id}", Admin),
    ("POST", "/api/v1/transfers/{id}/decision", Admin),
    ("POST", "/api/v1/transfers/{id}/receive", AdminTier(2)),
    ("POST", "/api/v1/transfers/{id}/withdraw", Admin),
    ("POST", "/api/v1/transfers/{id}/void", Admin),
    ("POST", "/api/v1/transfers/{id}/resubmit", Admin),
    ("POST", "/api/v1/transfers/{id}/reroute", AdminTier(1)),
    (
        "POST",
        "/api/v1/transfers/{id}/complete-abnormal",
        AdminTier(1),
    ),
    ("POST", "/api/v1/transfers/{id}/reissue", Admin),
    ("GET", "/api/v1/transfers/{id}/letter", Admin),
    ("GET", "/api/v1/transfers/{id}/letter.pdf", Admin),
    ("GET", "/api/v1/orgs/{id}/transfer-settings", Admin),
    ("PUT", "/api/v1/orgs/{id}/transfer-settings", Admin),
    ("GET", "/api/v1/history", Admin),
    ("GET", "/api/v1/history/{id}", Admin),
    ("POST", "/api/v1/history/{id}/recover", AdminTier(1)),
    ("POST", "/api/v1/history/{id}/purge", AdminTier(1)),
    ("POST", "/api/v1/history/{id}/cancel-phone", AdminTier(2)),
    ("PUT", "/api/v1/members/{id}/photo", Admin),
    ("GET", "/api/v1/members/{id}/photo", Admin),
    ("DELETE", "/api/v1/members/{id}/photo", Admin),
    // attachments
    ("POST", "/api/v1/attachments", Admin),
    ("GET", "/api/v1/attachments/{id}", Admin),
    // audit
    ("GET", "/api/v1/audit", Auditor),
    ("GET", "/api/v1/audit/export", Auditor),
    ("GET", "/api/v1/audit/verify", Auditor),
    // pages
    ("GET", "/", SignedIn),
    ("POST", "/", Absent),
    ("GET", "/static/app.js", Public),
    ("POST", "/static/app.js", Absent),
    ("GET", "/static/app.css", Public),
    ("POST", "/static/app.css", Absent),
    ("GET", "/help/agent", Public),
    ("POST", "/help/agent", Absent),
    ("GET", "/help/agent/download", Public),
    ("POST", "/help/agent/download", Absent),
    ("GET", "/login", Public),
    ("POST", "/login", Public),
    ("GET", "/logout", Absent),
    ("POST", "/logout", EndsSession),
    ("GET", "/logout/all", Absent),
    ("POST", "/logout/all", EndsSession),
    ("GET", "/role", Absent),
    ("POST", "/role", SignedIn),
    ("GET", "/account/password", SignedIn),
    ("POST", "/account/password", SignedIn),
    ("GET", "/activate", Public),
    ("POST", "/activate", Public),
    ("GET", "/activate/sms", Absent),
    ("POST", "/activate/sms", Public),
    ("GET", "/activate/totp", Absent),
    ("POST", "/activate/totp", Public),
    ("GET", "/password/forgot", Public),
    ("POST", "/password/forgot", Public),
    ("GET", "/password/forgot/sms", Absent),
    ("POST", "/password/forgot/sms", Public),
    ("GET", "/orgs/{id}", Admin),
    ("POST", "/orgs/{id}", Absent),
    ("GET", "/orgs/{id}/new", Admin),
    ("POST", "/orgs/{id}/new", Admin),
    ("GET", "/orgs/{id}/edit", Admin),
    ("POST", "/orgs/{id}/edit", Admin),
    ("GET", "/orgs/{id}/category", Admin),
    ("POST", "/orgs/{id}/category", AdminBelow),
    ("GET", "/orgs/{id}/revoke", Admin),
    ("POST", "/orgs/{id}/revoke", AdminBelow),
    ("GET", "/orgs/{id}/delete", Admin),
    ("POST", "/orgs/{id}/delete", AdminBelow),
    ("GET", "/orgs/{id}/members/new", Admin),
    ("POST", "/orgs/{id}/members/new", Admin),
    ("GET", "/members/{id}", Admin),
    ("POST", "/members/{id}", Absent),
    ("GET", "/members/{id}/edit", Admin),
    ("POST", "/members/{id}/edit", Admin),
    ("GET", "/members/{id}/apply", Admin),
    ("POST", "/members/{id}/apply", Admin),
    ("GET", "/members/{id}/correction-delete", Admin),
    ("POST", "/members/{id}/correction-delete", AdminTier(3)),
    ("GET", "/members/{id}/rename", Admin),
    ("POST", "/members/{id}/rename", Admin),
    ("GET", "/members/{id}/registered-phone", Admin),
    ("POST", "/members/{id}/registered-phone", Admin),
    ("GET", "/approvals", Admin),
    ("GET", "/members/{id}/transfer", Admin),
    ("POST", "/members/{id}/transfer", Admin),
    ("GET", "/transfers/inbound", Admin),
    ("POST", "/transfers/inbound", Admin),
    ("GET", "/transfers/{id}", Admin),
    ("POST", "/transfers/{id}", Absent),
    ("GET", "/transfers/{id}/act", Admin),
    ("POST", "/transfers/{id}/act", Admin),
    ("GET", "/transfers/{id}/letter", Admin),
    ("GET", "/transfers/settings", Admin),
    ("POST", "/transfers/settings", Admin),
    ("POST", "/transfers/{id}/letter", Absent),
    ("POST", "/approvals", Absent),
    ("GET", "/applications/{id}", Admin),
    ("POST", "/applications/{id}", Absent),
    ("GET", "/applications/{id}/decide", Admin),
    ("POST", "/applications/{id}/decide", AdminTier(2)),
    ("GET", "/applications/{id}/withdraw", Admin),
    ("POST", "/applications/{id}/withdraw", Admin),
    ("GET", "/history", Admin),
    ("POST", "/history", Absent),
    ("GET", "/history/{id}", Admin),
    ("POST", "/history/{id}", Absent),
    ("GET", "/history/{id}/act", Admin),
    ("POST", "/history/{id}/act", Admin),
    ("GET", "/members/{id}/photo", Absent),
    ("POST", "/members/{id}/photo", Admin),
    ("GET", "/units/new", Admin),
    ("POST", "/units/new", Admin),
    ("GET", "/units/{id}/edit", UnitKeeper),
    ("POST", "/units/{id}/edit", UnitKeeper),
    ("GET", "/units/{id}/delete", UnitKeeper),
    ("POST", "/units/{id}/delete", UnitKeeper),
    ("GET", "/audit", Auditor),
    ("POST", "/audit", Absent),
    ("GET", "/audit/verify", Auditor),
    ("POST", "/audit/verify", Absent),
    ("GET", "/security/grants", Security),
    ("POST", "/security/grants", Absent),
    ("GET", "/security/grants/new", Security),
    ("POST", "/security/grants/new", Security),
    ("GET", "/security/certificates", Security),
    ("POST", "/security/certificates", Absent),
    ("GET", "/security/certificates/{serial}/revoke", Absent),
    ("POST", "/security/certificates/{serial}/revoke", Security),
    ("GET", "/security/grants/{id}/enrolment-code", Absent),
    ("POST", "/security/grants/{id}/enrolment-code", Security),
    ("GET", "/security/grants/{id}/revoke", Absent),
    ("POST", "/security/grants/{id}/revoke", Security),
    ("GET", "/security/accounts/{id}/unlock", Absent),
    ("POST", "/security/accounts/{id}/unlock", Security),
    ("GET", "/security/accounts/{id}/reset", Absent),
    ("POST", "/security/accounts/{id}/reset", Security),
    // transfer records 查看转接情况, export, lists and monitoring
    ("GET", "/api/v1/transfers", Admin),
    ("GET", "/api/v1/transfers/export.xlsx", Admin),
    ("GET", "/api/v1/transfer-lists", Admin),
    ("GET", "/transfers", Admin),
    ("POST", "/transfers", Absent),
    ("GET", "/transfers/lists", Admin),
    ("POST", "/transfers/lists", Absent),
    // quality control 信息质量管控 (issue 16)
    ("GET", "/api/v1/quality/rules", Admin),
    ("GET", "/api/v1/quality/age-periods", Admin),
    ("POST", "/api/v1/quality/age-periods", AdminTier(1)),
    ("GET", "/api/v1/members/{id}/quality", Admin),
    ("GET", "/api/v1/quality/checks", Admin),
    ("POST", "/api/v1/quality/checks", Admin),
    ("GET", "/api/v1/quality/checks/{id}", Admin),
    ("GET", "/api/v1/quality/checks/{id}/members", Admin),
    ("GET", "/api/v1/quality/checks/{id}/report", Admin),
    ("GET", "/api/v1/quality/checks/{id}/special", Admin),
    ("GET", "/quality", Admin),
    ("POST", "/quality", Admin),
    ("GET", "/quality/periods", Admin),
    ("POST", "/quality/periods", AdminTier(1)),
    ("GET", "/quality/checks/{id}", Admin),
    ("POST", "/quality/checks/{id}", Absent),
    ("GET", "/quality/checks/{id}/special", Admin),
    ("POST", "/quality/checks/{id}/special", Absent),
    ("GET", "/quality/checks/{id}/members", Admin),
    ("POST", "/quality/checks/{id}/members", Absent),
    ("GET", "/members/{id}/quality", Admin),
    ("POST", "/members/{id}/quality", Absent),
    // comprehensive query 综合查询 (issue 16); a saved query 固定查询 is its owner's alone: the
    // one inside is the tier-3 admin's, the one outside the county admin's
    ("POST", "/api/v1/query/members", Admin),
    ("POST", "/api/v1/query/orgs", Admin),
    ("POST", "/api/v1/query/units", Admin),
    ("POST", "/api/v1/query/members/export.xlsx", Admin),
    ("POST", "/api/v1/query/orgs/export.xlsx", Admin),
    ("POST", "/api/v1/query/units/export.xlsx", Admin),
    ("GET", "/api/v1/query/saved", Admin),
    ("POST", "/api/v1/query/saved", Admin),
    ("DELETE", "/api/v1/query/saved/{id}", AdminTier(3)),
    ("GET", "/query/members", Admin),
    ("POST", "/query/members", Absent),
    ("GET", "/query/orgs", Admin),
    ("POST", "/query/orgs", Absent),
    ("GET", "/query/units", Admin),
    ("POST", "/query/units", Absent),
    ("GET", "/query/{kind}/export", Absent),
    ("POST", "/query/{kind}/export", Admin),
    ("GET", "/query/{kind}/save", Absent),
    ("POST", "/query/{kind}/save", Admin),
    ("GET", "/query/saved/{id}/delete", Absent),
    ("POST", "/query/saved/{id}/delete", AdminTier(3)),
    // ---- member import and rosters (issue 16)
    ("GET", "/api/v1/import/members/template.xlsx", Admin),
    ("POST", "/api/v1/import/members", Admin),
    ("GET", "/api/v1/import/members/{id}", Admin),
    ("POST", "/api/v1/import/members/{id}/confirm", Admin),
    ("POST", "/api/v1/import/members/{id}/cancel", Admin),
    ("GET", "/api/v1/orgs/{id}/members/roster.xlsx", Admin),
    ("GET", "/api/v1/orgs/{id}/roster.xlsx", Admin),
    ("GET", "/import/members", Admin),
    ("POST", "/import/members", Admin),
    ("GET", "/import/members/{id}", Admin),
    ("POST", "/import/members/{id}", Absent),
    ("GET", "/import/members/{id}/confirm", Absent),
    ("POST", "/import/members/{id}/confirm", Admin),
    ("GET", "/import/members/{id}/cancel", Absent),
    ("POST", "/import/members/{id}/cancel", Admin),
    // ---- stats (issue 16): 党员统计, 注册统计, 党员增减, export; 采集表
    ("GET", "/api/v1/stats/members", Admin),
    ("GET", "/api/v1/stats/members/export.xlsx", Admin),
    ("GET", "/api/v1/stats/registration", Admin),
    ("GET", "/api/v1/stats/registration/unregistered", Admin),
    ("GET", "/api/v1/stats/registration/export.xlsx", Admin),
    ("GET", "/stats/unregistered", Admin),
    ("POST", "/stats/unregistered", Absent),
    ("GET", "/stats/registration/print", Admin),
    ("POST", "/stats/registration/print", Absent),
    ("GET", "/api/v1/stats/changes", Admin),
    ("GET", "/stats", Admin),
    ("POST", "/stats", Absent),
    ("GET", "/members/{id}/form", Admin),
    ("POST", "/members/{id}/form", Absent),
    ("GET", "/orgs/{id}/form", Admin),
    ("POST", "/orgs/{id}/form", Absent),
    ("GET", "/forms/member", Admin),
    ("POST", "/forms/member", Absent),
    ("GET", "/forms/org", Admin),
    ("POST", "/forms/org", Absent),
];

/// Every route the server serves: the API from its OpenAPI document plus the routes added
/// outside it, and the pages from the page router's table (GET and POST for each path).
async fn all_routes(server: &Server) -> BTreeSet<(String, String)> {
    let doc: Value = server.get_json("/api/v1/openapi.json").await;
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    for path in dangjian_server::app::undocumented_api_paths() {
        routes.insert(("GET".to_string(), path.to_string()));
    }
    for path in dangjian_server::web::page_paths() {
        for method in ["GET", "POST"] {
            routes.insert((method.to_string(), path.to_string()));
        }
    }
    routes
}

/// A caller: a name, an optional signed-in client and, for admins, whether each target lies
/// in scope (`inside`) or strictly below (`below`).
struct Caller {
    name: &'static str,
    api: Option<Api>,
    csrf: String,
    role: &'static str,
    /// For admins: (target A inside, target A strictly below).
    admin_reach: (bool, bool),
    /// For security officers and auditors: scoped at the root (every target is inside).
    root: bool,
    /// For admins: the tier of the active grant.
    tier: Option<u8>,
}

/// Targets: objects inside every admin's scope (A: the tier-3 admin's branch) and objects
/// outside all of them (B: in another city).
struct Targets {
    ids: HashMap<(&'static str, bool), String>,
}

impl Targets {
    fn path_for(&self, template: &str, inside: bool) -> Option<String> {
        // Page routes that change grants and certificates get targets of their own, so that the
        // API's revocations do not leave them nothing to act on.
        let page = template.starts_with("/security/");
        if template.contains("{serial}") {
            let family = if page {
                "page certificate"
            } else {
                "certificate"
            };
            let serial = self.ids.get(&(family, inside))?;
            return Some(template.replace("{serial}", serial));
        }
        if !template.contains("{id}") {
            return Some(template.to_string());
        }
        let family = if template.contains("/quality/checks/") {
            "quality check"
        } else if template.contains("/query/saved/") {
            if template.starts_with("/query/") {
                "page saved query"
            } else {
                "saved query"
            }
        } else if template.contains("/import/") {
            "import"
        } else if template.contains("/transfers/") && template.contains("/letter") {
            "transfer letter"
        } else if template.contains("/transfers/") {
            "transfer"
        } else if template.contains("/orgs/") {
            "org"
        } else if template.contains("/applications/") {
            "application"
        } else if template.contains("/history/") {
            "history"
        } else if template.contains("/members/") {
            "member"
        } else if template.contains("/units/") {
            "unit"
        } else if template.contains("/grants/") {
            if page {
                "page grant"
            } else {
                "grant"
            }
        } else if template.contains("/accounts/") {
            if page {
                "page account"
            } else {
                "account"
            }
        } else if template.contains("/certificates/") {
            "certificate"
        } else if template.contains("/attachments/") {
            "attachment"
        } else if template.contains("/jobs/") {
            "job"
        } else {
            panic!("no target family for {template}")
        };
        let id = self.ids.get(&(family, inside))?;
        Some(template.replace("{id}", id))
    }
}

fn expected(rule: Rule, caller: &Caller, scoped: bool, inside: bool) -> bool {
    let signed_in = caller.api.is_some();
    match rule {
        Public => true,
        // A member's session is not an account's: it reaches only the member's own routes.
        SignedIn => signed_in && caller.role != "member",
        Member => caller.role == "member",
        Admin => caller.role == "admin" && (!scoped || (inside && caller.admin_reach.0)),
        AdminBelow | UnitKeeper => {
            caller.role == "admin" && (!scoped || (inside && caller.admin_reach.1))
        }
        AdminTier(t) => {
            caller.role == "admin"
                && caller.tier == Some(t)
                && (!scoped || (inside && caller.admin_reach.0))
        }
        // Grants, accounts and certificates outside: an account with a live grant beyond the
        // first city, which only the root's officer may manage.
        Security => caller.role == "security" && (!scoped || inside || caller.root),
        Auditor => caller.role == "auditor",
        Owner => false,
        EndsSession | Absent => unreachable!(),
    }
}

async fn call(server: &Server, caller: &Caller, method: &str, path: &str) -> (u16, String) {
    let page = !path.starts_with("/api/");
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (client, token) = match &caller.api {
        Some(api) => (api.client.clone(), Some(api.token.clone())),
        None => (server.client(), None),
    };
    let mut req = client.request(method.clone(), server.url(path));
    if let Some(t) = &token {
        req = req.bearer_auth(t);
    }
    if method == Method::POST || method == Method::PATCH {
        req = if page {
            req.form(&[("csrf", caller.csrf.as_str())])
        } else {
            req.json(&json!({}))
        };
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let final_path = res.url().path().to_string();
    (status, final_path)
}

#[tokio::test]
async fn every_route_admits_exactly_the_allowed_callers() {
    let server = Server::demo(300, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer_api = server.sign_in(&server.account("security", None)).await;
    let t2_api = server.sign_in(&server.account("admin", Some(2))).await;
    let t3_api = server.sign_in(&tier3).await;
    // Targets inside: the tier-3 branch, one of its members, a unit it owns (linked to a
    // general branch below the tier-2 committee, so it cannot be deleted and only tiers 1 and
    // 2 keep it), a pending grant on it and that grant's account.
    let members = t3_api
        .get(&format!("/api/v1/orgs/{}/members", tier3.org_id))
        .await;
    let member_a = members.body["items"][0]["id"].as_str().unwrap().to_string();
    let code = dangjian_server::unit::credit_code::compose("91", "370102", "AUTHX001");
    let unit = t3_api
        .post(
            "/api/v1/units",
            json!({"name": "矩阵测试单位", "credit_code": code, "category": "2",
                                      "has_party_group": false, "party_org_situation": 1}),
        )
        .await;
    assert_eq!(unit.status, 201, "{:?}", unit.body);
    let unit_a = unit.body["id"].as_str().unwrap().to_string();
    let t2 = server.account("admin", Some(2));
    let linked = t2_api
        .post("/api/v1/orgs", json!({"parent_id": t2.org_id, "name": "矩阵测试党总支", "category": "621",
                                     "secretary": "王书记", "contact_name": "联系人", "contact_phone": "13800000000",
                                     "unit_mode": "legal_entity", "unit_ids": [unit_a], "founded_on": "2020-01-01"}))
        .await;
    assert_eq!(linked.status, 201, "{:?}", linked.body);
    // A pending tier-3 admin grant for a synthetic person born on `born` (sequence `seq`).
    let new_grant = |name: &'static str, born: (i32, u32, u32), seq: u16, mobile: &'static str| {
        let person = dangjian_server::member::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap(),
            seq,
        );
        let body = json!({"name": name, "id_number": person, "mobile": mobile,
                          "role": "admin", "org_id": tier3.org_id});
        let officer_api = &officer_api;
        async move {
            let grant = officer_api.post("/api/v1/grants", body).await;
            assert_eq!(grant.status, 201, "{:?}", grant.body);
            grant
        }
    };
    let grant = new_grant("矩阵测试", (1980, 1, 2), 77, "13911112222").await;
    let grant_a = grant.body["grant_id"].as_str().unwrap().to_string();
    // Two card certificates for the tier-3 admin, through enrolment, as revocable targets
    // (one for the API route, one for the page), and a second pending grant likewise.
    let serial_a = enrol(&server, &officer_api, &tier3.org_id).await;
    let serial_page = enrol(&server, &officer_api, &tier3.org_id).await;
    let grant2 = new_grant("矩阵测试乙", (1981, 2, 3), 79, "13911113333").await;
    let grant_page = grant2.body["grant_id"].as_str().unwrap().to_string();
    let account_page = grant2.body["account_id"].as_str().unwrap().to_string();
    let account_a = grant.body["account_id"].as_str().unwrap().to_string();
    // Targets outside every admin's scope: straight from the database, in the second city.
    let tier1 = server.account("admin", Some(1));
    let t1_code: String = db_scalar(
        &server,
        "SELECT code FROM orgs WHERE id = $1",
        &tier1.org_id,
    )
    .await;
    let pattern = format!("{t1_code}%");
    let org_b: String = db_scalar(
        &server,
        "SELECT o.id FROM orgs o WHERE o.category = '631' AND o.code NOT LIKE $1 \
         AND EXISTS (SELECT 1 FROM members m WHERE m.branch_id = o.id) ORDER BY o.code LIMIT 1",
        &pattern,
    )
    .await;
    let member_b: String = db_scalar(
        &server,
        "SELECT id FROM members WHERE branch_id = $1 LIMIT 1",
        &org_b,
    )
    .await;
    let unit_b: String = db_scalar(
        &server,
        "SELECT id FROM units WHERE owner_code NOT LIKE $1 LIMIT 1",
        &pattern,
    )
    .await;
    // Outside the first city's security officer: two people (one for the API, one for the
    // pages) with a grant inside the city and another on org B; their accounts, their grant
    // inside the city and a card certificate of each.
    let mut outside = Vec::new();
    for (i, (name, seq, mobile)) in [
        ("矩阵外部甲", 81u16, "13911114444"),
        ("矩阵外部乙", 83, "13911115555"),
    ]
    .into_iter()
    .enumerate()
    {
        let person = dangjian_server::member::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(1982, 3, 4 + i as u32).unwrap(),
            seq,
        );
        let grant_in = officer_api
            .post(
                "/api/v1/grants",
                json!({"name": name, "id_number": person, "mobile": mobile,
                                           "role": "admin", "org_id": tier3.org_id}),
            )
            .await;
        assert_eq!(grant_in.status, 201, "{:?}", grant_in.body);
        let grant_out = officer_api
            .post(
                "/api/v1/grants",
                json!({"name": name, "id_number": person, "mobile": mobile,
                                           "role": "admin", "org_id": org_b}),
            )
            .await;
        assert_eq!(grant_out.status, 201, "{:?}", grant_out.body);
        let serial = enrol_grant(
            &server,
            &officer_api,
            grant_out.body["grant_id"].as_str().unwrap(),
        )
        .await;
        outside.push((
            grant_in.body["grant_id"].as_str().unwrap().to_string(),
            grant_in.body["account_id"].as_str().unwrap().to_string(),
            serial,
        ));
    }
    // An application inside (an exit of a new member of branch A: the tier-2 committee
    // approves it) and a history record inside (a death approved by the committee); outside,
    // the same written straight into the database for a member of org B.
    let fresh = |seq: u16, name: &'static str| {
        let person = dangjian_server::member::idcard::compose(
            "370102",
            chrono::NaiveDate::from_ymd_opt(1984, 5, 6).unwrap(),
            seq,
        );
        let body = json!({"name": name, "id_number": person, "ethnicity": "01", "education": "21",
            "category": "full", "branch_id": tier3.org_id, "joined_on": "2010-06-01",
            "full_on": "2011-06-01", "job": "worker", "phone": "13800001234", "address": "测试地址"});
        let t3_api = t3_api.clone();
        async move {
            let m = t3_api.post("/api/v1/members", body).await;
            assert_eq!(m.status, 201, "{:?}", m.body);
            m.body["id"].as_str().unwrap().to_string()
        }
    };
    let leaving = |member: String, kind: &'static str| {
        let t3_api = t3_api.clone();
        async move {
            let a = t3_api
                .post(
                    "/api/v1/applications",
                    json!({"kind": kind, "member_id": member, "date": "2026-10-01", "reason": "矩阵测试"}),
                )
                .await;
            assert_eq!(a.status, 201, "{:?}", a.body);
            a.body["id"].as_str().unwrap().to_string()
        }
    };
    let application_a = leaving(fresh(91, "矩阵出党").await, "exit").await;
    let dead = fresh(93, "矩阵去世").await;
    let death = leaving(dead.clone(), "death").await;
    let approved = t2_api
        .post(&format!("/api/v1/applications/{death}/approve"), json!({}))
        .await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    let history_a = db_scalar(
        &server,
        "SELECT history_id FROM member_history WHERE id = $1",
        &dead,
    )
    .await;
    let (application_b, history_b) = outside_application_and_history(&server, &member_b).await;
    // Transfers inside: of new members of branch A to a sibling branch under the committee
    // (one waits at the committee; the other, approved by it, has its letter); outside, one
    // in the second city written straight into the database.
    let sibling = db_scalar(
        &server,
        "SELECT s.id FROM orgs s JOIN orgs a ON a.parent_id = s.parent_id \
         WHERE a.id = $1 AND s.id <> a.id AND s.category = '631' ORDER BY s.code LIMIT 1",
        &tier3.org_id,
    )
    .await;
    let transfer_of = |member: String| {
        let t3_api = t3_api.clone();
        let sibling = sibling.clone();
        async move {
            let t = t3_api
                .post(
                    "/api/v1/transfers",
                    json!({"member_id": member, "kind": "county", "to_org_id": sibling,
                           "reason": "矩阵测试", "date": "2026-11-01", "dues_paid_to": "2026-10"}),
                )
                .await;
            assert_eq!(t.status, 201, "{:?}", t.body);
            t.body["id"].as_str().unwrap().to_string()
        }
    };
    let transfer_a = transfer_of(fresh(95, "矩阵转接").await).await;
    let transfer_letter = transfer_of(fresh(97, "矩阵介绍信").await).await;
    let approved = t2_api
        .post(
            &format!("/api/v1/transfers/{transfer_letter}/decision"),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    let transfer_b = outside_transfer(&server, &member_b).await;
    let mut ids = HashMap::new();
    ids.insert(("application", true), application_a);
    ids.insert(("application", false), application_b);
    ids.insert(("history", true), history_a);
    ids.insert(("history", false), history_b);
    ids.insert(("transfer", true), transfer_a);
    ids.insert(("transfer letter", true), transfer_letter);
    ids.insert(("transfer", false), transfer_b.clone());
    ids.insert(("transfer letter", false), transfer_b);
    let (grant_b, account_b, serial_b) = outside.remove(0);
    let (page_grant_b, page_account_b, page_serial_b) = outside.remove(0);
    ids.insert(("grant", false), grant_b);
    ids.insert(("account", false), account_b);
    ids.insert(("certificate", false), serial_b);
    ids.insert(("page grant", false), page_grant_b);
    ids.insert(("page account", false), page_account_b);
    ids.insert(("page certificate", false), page_serial_b);
    ids.insert(("org", true), tier3.org_id.clone());
    ids.insert(("member", true), member_a);
    ids.insert(("unit", true), unit_a);
    ids.insert(("grant", true), grant_a);
    ids.insert(("account", true), account_a);
    ids.insert(("certificate", true), serial_a);
    ids.insert(("page certificate", true), serial_page);
    ids.insert(("page grant", true), grant_page);
    ids.insert(("page account", true), account_page);
    ids.insert(("org", false), org_b);
    ids.insert(("member", false), member_b);
    ids.insert(("unit", false), unit_b);
    // An attachment inside (uploaded by the tier-3 admin to its branch) and one outside (a row
    // for org B straight into the database), and a photo of member A to read.
    let (attachment_a, attachment_b) = attachments(&server, &t3_api, &tier3.org_id, &ids).await;
    // Saved queries 固定查询: the tier-3 admin's inside; outside, one of an account that holds
    // no admin grant (written straight into the database: such accounts cannot save one).
    for (family, name) in [
        ("saved query", "矩阵固定查询"),
        ("page saved query", "矩阵固定查询页"),
    ] {
        let r = t3_api
            .post(
                "/api/v1/query/saved",
                json!({"kind": "members", "name": name, "conditions": []}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        ids.insert((family, true), r.body["id"].as_str().unwrap().to_string());
        ids.insert((family, false), foreign_saved_query(&server, name).await);
    }
    ids.insert(("attachment", true), attachment_a);
    ids.insert(("attachment", false), attachment_b);
    let org_b_id = ids[&("org", false)].clone();
    let (import_a, import_b) = imports(&server, &t3_api, &tier3.org_id, &org_b_id).await;
    ids.insert(("import", true), import_a);
    ids.insert(("import", false), import_b);
    // Background jobs are rows: one running and one finished, of an account none of the
    // callers is.
    let (job_a, job_b) = foreign_jobs(&server).await;
    ids.insert(("job", true), job_a);
    ids.insert(("job", false), job_b);
    // A batch check inside (of the tier-3 branch, by its admin) and one outside (a row for
    // org B straight into the database).
    let (check_a, check_b) = quality_checks(&server, &t3_api, &ids).await;
    ids.insert(("quality check", true), check_a);
    ids.insert(("quality check", false), check_b);
    let targets = Targets { ids };

    // A member with a personal account (a new member of branch A registers and signs in).
    let member_api = member_session(&server, &t3_api, &tier3.org_id).await;
    // The callers. Each six-digit code signs in once, so every account signs in once here.
    let csrf_of = |api: &Api| {
        let api = api.clone();
        async move {
            api.get("/api/v1/session").await.body["csrf_token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let auditor_api = server.sign_in(&server.account("auditor", None)).await;
    let root_id = server.account("security", None).org_id;
    let city = |role: &str| {
        server
            .accounts
            .iter()
            .find(|a| a.role == role && a.org_id != root_id)
            .cloned()
            .unwrap_or_else(|| panic!("no {role} of the first city in the demo"))
    };
    let t1_api = server.sign_in(&tier1).await;
    let mut callers = Vec::new();
    callers.push(Caller {
        name: "anonymous",
        api: None,
        csrf: String::new(),
        role: "none",
        admin_reach: (false, false),
        root: false,
        tier: None,
    });
    let city_officer_api = server.sign_in(&city("security")).await;
    let city_auditor_api = server.sign_in(&city("auditor")).await;
    for (name, role, api, reach, root, tier) in [
        (
            "security",
            "security",
            officer_api,
            (false, false),
            true,
            None,
        ),
        (
            "security (city)",
            "security",
            city_officer_api,
            (false, false),
            false,
            None,
        ),
        (
            "auditor",
            "auditor",
            auditor_api,
            (false, false),
            true,
            None,
        ),
        (
            "auditor (city)",
            "auditor",
            city_auditor_api,
            (false, false),
            false,
            None,
        ),
        (
            "admin tier 1",
            "admin",
            t1_api,
            (true, true),
            false,
            Some(1),
        ),
        (
            "admin tier 2",
            "admin",
            t2_api,
            (true, true),
            false,
            Some(2),
        ),
        (
            "admin tier 3",
            "admin",
            t3_api,
            (true, false),
            false,
            Some(3),
        ),
    ] {
        let csrf = csrf_of(&api).await;
        callers.push(Caller {
            name,
            api: Some(api),
            csrf,
            role,
            admin_reach: reach,
            root,
            tier,
        });
    }

    let member_csrf = member_api.get("/api/v1/me").await.body["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    callers.push(Caller {
        name: "member",
        api: Some(member_api),
        csrf: member_csrf,
        role: "member",
        admin_reach: (false, false),
        root: false,
        tier: None,
    });

    let routes = all_routes(&server).await;
    let policy: HashMap<(String, String), Rule> = POLICY
        .iter()
        .map(|(m, p, r)| ((m.to_string(), p.to_string()), *r))
        .collect();
    let missing: Vec<_> = routes.iter().filter(|r| !policy.contains_key(*r)).collect();
    assert!(
        missing.is_empty(),
        "routes without an entry in POLICY: {missing:?}"
    );
    let stale: Vec<_> = policy.keys().filter(|k| !routes.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "POLICY entries for routes that do not exist: {stale:?}"
    );

    // Revocations last: they end what the other routes act on (so does removing the photo).
    let mut ordered: Vec<&(String, String)> = routes.iter().collect();
    ordered.sort_by_key(|(m, p)| {
        (
            p.contains("revoke")
                || (m == "DELETE" && (p.contains("/grants/") || p.ends_with("/photo"))),
            m.clone(),
            p.clone(),
        )
    });
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, template) in ordered {
        let rule = policy[&(method.clone(), template.clone())];
        if rule == EndsSession {
            continue;
        }
        let scoped = template.contains("{id}") || template.contains("{serial}");
        for inside in if scoped {
            vec![false, true]
        } else {
            vec![true]
        } {
            let Some(path) = targets.path_for(template, inside) else {
                continue;
            };
            let path = if template == "/units/new" {
                format!("{path}?org={}", tier3.org_id)
            } else {
                path
            };
            // Denied callers first, so that an allowed call changing data comes last.
            let mut order: Vec<&Caller> = callers.iter().collect();
            if rule != Absent {
                order.sort_by_key(|c| expected(rule, c, scoped, inside));
            }
            for caller in order {
                let (status, final_path) = call(&server, caller, method, &path).await;
                checked += 1;
                let verdict = if rule == Absent {
                    status == 405
                } else if rule == Public {
                    // Public routes answer everyone; what they answer is their own business.
                    status < 500
                } else {
                    let page = !path.starts_with("/api/");
                    let denied = match (&caller.api, page) {
                        (None, false) => status == 401,
                        (None, true) => final_path == "/login" || final_path == "/me/login",
                        (Some(_), _) => status == 403 || (scoped && status == 404),
                    };
                    let allowed = !denied
                        && status != 401
                        && status != 403
                        && status != 405
                        && !(scoped && status == 404);
                    if expected(rule, caller, scoped, inside) {
                        allowed
                    } else {
                        denied
                    }
                };
                if !verdict {
                    failures.push(format!(
                        "{method} {path} ({}) by {}: {status} (rule {rule:?})",
                        if inside { "inside" } else { "outside" },
                        caller.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} calls broke the policy:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Finally the routes that end the caller's session: the member's own sign-out refuses
    // every other session, then ends the member's.
    for caller in callers
        .iter()
        .filter(|c| c.api.is_some() && c.role != "member")
    {
        let api = caller.api.as_ref().unwrap();
        assert_eq!(
            api.delete("/api/v1/me/session").await.status,
            403,
            "{}",
            caller.name
        );
    }
    let member = callers.iter().find(|c| c.role == "member").unwrap();
    let api = member.api.as_ref().unwrap();
    assert_eq!(api.delete("/api/v1/session").await.status, 403);
    assert_eq!(api.delete("/api/v1/me/session").await.status, 204);
    assert_eq!(api.get("/api/v1/me").await.status, 401);
    for caller in callers
        .iter()
        .filter(|c| c.api.is_some() && c.role != "member")
    {
        let api = caller.api.as_ref().unwrap();
        let r = api.delete("/api/v1/session").await;
        assert_eq!(r.status, 204, "{}", caller.name);
        assert_eq!(
            api.get("/api/v1/session").await.status,
            401,
            "{}",
            caller.name
        );
    }
}

/// Uploads a document for `org_id` and a photo for member A as the tier-3 admin; inserts the
/// row of an attachment of org B into the database. Returns the two attachments' ids.
async fn attachments(
    server: &Server,
    t3: &Api,
    org_id: &str,
    ids: &HashMap<(&'static str, bool), String>,
) -> (String, String) {
    use reqwest::multipart::{Form, Part};
    let pdf = b"%PDF-1.4\n%%EOF\n".to_vec();
    let form = Form::new()
        .part("file", Part::bytes(pdf).file_name("matrix.pdf"))
        .text("org_id", org_id.to_string());
    let res: Value = t3
        .client
        .post(server.url("/api/v1/attachments"))
        .bearer_auth(&t3.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inside = res["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{res}"))
        .to_string();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(12, 16))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let member = &ids[&("member", true)];
    let photo = t3
        .client
        .put(server.url(&format!("/api/v1/members/{member}/photo")))
        .bearer_auth(&t3.token)
        .multipart(Form::new().part("file", Part::bytes(png).file_name("p.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    let org_b_code = db_scalar(
        server,
        "SELECT code FROM orgs WHERE id = $1",
        &ids[&("org", false)],
    )
    .await;
    let outside = uuid::Uuid::new_v4().to_string();
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO attachments (id, kind, org_code, file_name, content_type, size, sha256, \
         uploaded_by, created_at) VALUES ($1, 'document', $2, 'b.pdf', 'application/pdf', 1, 'x', \
         'matrix', '2026-01-01T00:00:00Z')",
    )
    .bind(&outside)
    .bind(&org_b_code)
    .execute(&mut conn)
    .await
    .unwrap();
    (inside, outside)
}

/// A saved query of an account without an admin grant; returns its id.
async fn foreign_saved_query(server: &Server, name: &str) -> String {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let id = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO saved_queries (id, account_id, kind, name, body, created_at) \
         SELECT $1, a.id, 'members', $2, '{\"conditions\":[],\"sort\":null}', '2026-01-01T00:00:00Z' \
         FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM grants g WHERE g.account_id = a.id \
         AND g.role = 'admin') ORDER BY a.id LIMIT 1",
    )
    .bind(&id)
    .bind(name)
    .execute(&mut conn)
    .await
    .unwrap();
    id
}

async fn db_scalar(server: &Server, sql: &str, bind: &str) -> String {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=ro",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// An application and a history record about `member_b` (outside every admin's scope), written
/// straight into the database: no admin of the demo may make them.
async fn outside_application_and_history(server: &Server, member_b: &str) -> (String, String) {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=rw",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO applications (id, kind, state, member_id, member_name, subject_org_code, \
         subject_org_name, applicant_account_id, applicant_name, applicant_org_id, applicant_org_code, \
         applicant_org_name, approver_org_id, approver_org_code, approver_org_name, approver_tier, data, \
         attachments, submitted_at) SELECT 'application-b', 'exit', 'pending', m.id, m.name, m.org_code, \
         o.name, 'nobody', '外部', o.id, o.code, o.name, o.id, o.code, o.name, 2, 'x', '[]', m.created_at \
         FROM members m JOIN orgs o ON o.id = m.branch_id WHERE m.id = $1",
    )
    .bind(member_b)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO member_history (history_id, reason, left_on, remark, recorded_at, recorded_by, {cols}) \
         SELECT 'history-b', 'other', '2026-01-01', '矩阵', created_at, '外部', {cols} FROM members WHERE id = $1",
        cols = dangjian_server::approval::history::COPY_COLUMNS
    ))
    .bind(member_b)
    .execute(&mut conn)
    .await
    .unwrap();
    ("application-b".into(), "history-b".into())
}

/// A transfer of `member_b` (outside every admin's scope) between two branches of the second
/// city, written straight into the database, waiting at its committee.
async fn outside_transfer(server: &Server, member_b: &str) -> String {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}?mode=rw",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO transfers (id, direction, kind, state, member_id, member_name, id_number_idx, data, \
         from_org_id, from_org_code, from_name, to_org_id, to_org_code, to_name, reason, transfer_date, \
         current_step, current_org_code, source_end, path_len, step_since, version, created_by, \
         created_by_name, created_org_code, created_at, updated_at) \
         SELECT 'transfer-b', 'outbound', 'county', 'active', m.id, m.name, 'idx-b', 'x', o.id, o.code, \
         o.name, o.id, o.code, o.name, '矩阵', '2026-11-01', 1, p.code, 1, 3, m.created_at, 0, 'nobody', \
         '外部', o.code, m.created_at, m.created_at \
         FROM members m JOIN orgs o ON o.id = m.branch_id JOIN orgs p ON p.id = o.parent_id WHERE m.id = $1",
    )
    .bind(member_b)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO transfer_nodes (transfer_id, seq, org_id, org_code, org_name, auto, state) \
         SELECT 'transfer-b', 0, o.id, o.code, o.name, 0, 'source' FROM members m \
         JOIN orgs o ON o.id = m.branch_id WHERE m.id = $1",
    )
    .bind(member_b)
    .execute(&mut conn)
    .await
    .unwrap();
    "transfer-b".into()
}

/// Issues a card certificate for the grant `grant_id` through a one-time enrolment code issued
/// by `officer`; returns its serial.
async fn enrol_grant(server: &Server, officer: &Api, grant_id: &str) -> String {
    let r = officer
        .post(
            &format!("/api/v1/grants/{grant_id}/enrolment-code"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let code = server.outbox_code("enrolment_code");
    csr_enrol(server, &code).await
}

/// Enrols a fresh software key with `code`; returns the certificate's serial.
async fn csr_enrol(server: &Server, code: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let issued: Value = server
        .client()
        .post(server.url("/api/v1/enrolment"))
        .json(&json!({"code": code, "csr": csr}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    issued["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("serial: {issued}"))
        .to_string()
}

/// Issues a card certificate for the grant on `org_id` held by the tier-3 admin through a
/// one-time enrolment code, as a client would; returns its serial.
async fn enrol(server: &Server, officer: &Api, org_id: &str) -> String {
    let code = server.enrolment_code(officer, org_id).await;
    csr_enrol(server, &code).await
}

/// A password session cannot take up a card-only grant by switching roles: the tier-3 admin
/// (password + code) is given a tier-2 grant and tries to switch to it.
#[tokio::test]
async fn a_password_session_cannot_switch_to_a_card_only_grant() {
    let server = Server::demo(100, None).await;
    let officer = server.sign_in(&server.account("security", None)).await;
    let tier3 = server.account("admin", Some(3));
    let tier2 = server.account("admin", Some(2));
    let t3 = server.sign_in(&tier3).await;
    let me = t3.get("/api/v1/session").await;
    let name = me.body["account"]["name"].as_str().unwrap().to_string();
    let g = officer
        .post(
            "/api/v1/grants",
            json!({"name": name, "id_number": tier3.id_number, "mobile": "13911116666",
                   "role": "admin", "org_id": tier2.org_id}),
        )
        .await;
    assert_eq!(g.status, 201, "{:?}", g.body);
    let grant = g.body["grant_id"].as_str().unwrap();
    let r = t3
        .post("/api/v1/session/role", json!({"grant_id": grant}))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "card_required");
    // Still the tier-3 grant.
    let me = t3.get("/api/v1/session").await;
    assert_eq!(me.body["active_role"]["tier"], 3);
}

/// A batch check of the tier-3 branch started by its admin (run to its end) and the row of a
/// check of org B inserted into the database. Returns their ids.
async fn quality_checks(
    server: &Server,
    t3: &Api,
    ids: &HashMap<(&'static str, bool), String>,
) -> (String, String) {
    let r = t3.post("/api/v1/quality/checks", json!({})).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let inside = r.body["id"].as_str().unwrap().to_string();
    for _ in 0..300 {
        let c = t3.get(&format!("/api/v1/quality/checks/{inside}")).await;
        if c.body["state"] != "running" {
            assert_eq!(c.body["state"], "finished", "{:?}", c.body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let org_b = &ids[&("org", false)];
    let org_b_code = db_scalar(server, "SELECT code FROM orgs WHERE id = $1", org_b).await;
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO quality_checks (id, org_id, org_code, org_name, rules, account_id, \
         actor_name, state, started_at) VALUES ('check-b', $1, $2, '外部', 'sex_vs_id', 'nobody', \
         '外部', 'finished', '2026-01-01T00:00:00Z')",
    )
    .bind(org_b)
    .bind(&org_b_code)
    .execute(&mut conn)
    .await
    .unwrap();
    (inside, "check-b".into())
}

/// Two stored jobs of an account that is none of the callers: one running, one finished.
async fn foreign_jobs(server: &Server) -> (String, String) {
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (id, state) in [("job-a", "running"), ("job-b", "finished")] {
        sqlx::query(
            "INSERT INTO jobs (id, kind, account_id, label, state, started_at, heartbeat_at) \
             VALUES ($1, 'quality', 'nobody', '校验', $2, $3, $3)",
        )
        .bind(id)
        .bind(state)
        .bind(&now)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    ("job-a".into(), "job-b".into())
}

// ---- member import and rosters (issue 16)

/// An import into the tier-3 admin's branch (uploaded by it: inside every admin's scope) and
/// one into org B, written straight into the database (outside all of them).
async fn imports(server: &Server, t3: &Api, org_id: &str, org_b: &str) -> (String, String) {
    use reqwest::multipart::{Form, Part};
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, column) in dangjian_server::import::COLUMNS.iter().enumerate() {
        sheet.write_string(0, c as u16, column.label).unwrap();
    }
    sheet.write_string(1, 1, "矩阵导入").unwrap();
    let form = Form::new()
        .part(
            "file",
            Part::bytes(book.save_to_buffer().unwrap()).file_name("m.xlsx"),
        )
        .text("org_id", org_id.to_string());
    let res: Value = t3
        .client
        .post(server.url("/api/v1/import/members"))
        .bearer_auth(&t3.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let inside = res["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{res}"))
        .to_string();
    let org_b_code = db_scalar(server, "SELECT code FROM orgs WHERE id = $1", org_b).await;
    let outside = uuid::Uuid::new_v4().to_string();
    sqlx::any::install_default_drivers();
    let url = format!(
        "sqlite://{}",
        server.data.path().join("dangjian.db").display()
    );
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO member_imports (id, org_id, org_code, account_id, file_name, state, \
         created_at, updated_at) VALUES ($1, $2, $3, 'matrix', 'b.xlsx', 'pending', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    .bind(&outside)
    .bind(org_b)
    .bind(&org_b_code)
    .execute(&mut conn)
    .await
    .unwrap();
    (inside, outside)
}

/// Registers a new member of `branch` (entered by `admin`) with a code from the outbox and
/// signs the member in with the SMS code; returns the member's session.
async fn member_session(server: &Server, admin: &Api, branch: &str) -> Api {
    let id_number = dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1986, 7, 8).unwrap(),
        95,
    );
    let m = admin
        .post(
            "/api/v1/members",
            json!({"name": "矩阵党员", "id_number": id_number, "ethnicity": "01", "education": "21",
                   "category": "full", "branch_id": branch, "joined_on": "2010-06-01",
                   "full_on": "2011-06-01", "job": "worker", "phone": "13800001234",
                   "address": "测试地址"}),
        )
        .await;
    assert_eq!(m.status, 201, "{:?}", m.body);
    let client = server.client_from("127.0.0.4".parse().unwrap());
    let post = |path: &str, body: Value| {
        let req = client.post(server.url(path)).json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mobile = "13712349595";
    let (status, body) = post("/api/v1/register/sms", json!({"mobile": mobile})).await;
    assert_eq!(status, 200, "{body}");
    let code = server.outbox_code("register_sms");
    let password = "Juzhen2026x";
    let (status, body) = post(
        "/api/v1/register",
        json!({"id_number": id_number, "name": "矩阵党员", "mobile": mobile, "sms_code": code,
               "password": password}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        "/api/v1/me/session/sms",
        json!({"id_number": id_number, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = server.outbox_code("member_sign_in");
    let (status, body) = post(
        "/api/v1/me/session",
        json!({"id_number": id_number, "password": password, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    Api {
        client: server.client(),
        base: server.base.clone(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}
