//! Fuzz suite: schemathesis (`st`) against a demo server over HTTPS, driven by the served
//! OpenAPI document — once with a tier-3 admin's password session (bearer token) and once with
//! a tier-2 admin's card session (client certificate and token) — with every check but the ones
//! `docs/api.md` names, the coverage, fuzzing and stateful phases, and a failure on anything it
//! finds. Sign-out, the password and the activation routes are fuzzed with a throwaway session
//! of another account, after the main run, so the main session survives its run.
//!
//! The throttle stays on: the fuzzer's requests come from 127.0.0.1 (its own address), the
//! suite's own sign-ins from 127.0.0.2 and 127.0.0.3, so the failures the fuzzer provokes on the
//! public routes cannot lock the suite out.
//!
//! `scripts/test.sh` installs the pinned schemathesis and datamodel-code-generator into a
//! virtual environment and exports `DANGJIAN_SCHEMATHESIS` (its `bin/st`); without it these
//! tests fail. `DANGJIAN_FUZZ_EXAMPLES` (default 25) and `DANGJIAN_FUZZ_SEED` (default fixed,
//! so a run is reproducible) tune a run.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use dangjian_tests::{Api, DemoAccount, Server, TempDir};

/// The `st` executable of the virtual environment that scripts/test.sh made.
fn st_binary() -> PathBuf {
    let Some(st) = std::env::var_os("DANGJIAN_SCHEMATHESIS") else {
        panic!(
            "DANGJIAN_SCHEMATHESIS is not set: run the suites through scripts/test.sh, which \
             installs schemathesis into a virtual environment and names its `st` here"
        );
    };
    let st = PathBuf::from(st);
    assert!(
        st.is_file(),
        "DANGJIAN_SCHEMATHESIS names {}, which does not exist: run scripts/test.sh",
        st.display()
    );
    st
}

/// A program installed beside `st` in the same virtual environment (`python`,
/// `datamodel-codegen`).
fn venv_program(name: &str) -> PathBuf {
    let st = st_binary();
    let bin = st.parent().expect("the venv's bin directory").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/test.sh",
        bin.display()
    );
    bin
}

/// The routes fuzzed only with a throwaway session: signing out, signing in (with a password,
/// a card), changing and resetting the password, activation, switching the role.
const THROWAWAY_ROUTES: &str =
    "^/api/v1/(session(/.*)?|activation(/.*)?|password/.*|account/password|register(/sms)?|me(/.*)?)$";
/// Of those, the ones that keep the session alive: they run before the sign-out.
const THROWAWAY_FIRST: &str = "^/api/v1/(account/password|session/role)$";
/// The rest: sign-out, sign-in, activation and the forgotten password; the members' own
/// registration and sign-in (public), and `/api/v1/me` (a member's session only: the
/// throwaway admin session is answered 403, as the schema declares).
const THROWAWAY_LAST: &str =
    "^/api/v1/(session|session/card|activation(/.*)?|password/.*|register(/sms)?|me(/.*)?)$";

/// `positive_data_acceptance` (ST202: a schema-valid request must not be refused) runs in a
/// pass of its own over the main routes, less these operations, whose rules JSON Schema cannot
/// state (existing references, rules between fields, the search term's shape, control
/// characters; the reasons are in docs/api.md, "Fuzzing the API"). The throwaway routes do not
/// get it: the public ones refuse every code that was not issued, naming the field.
const ACCEPTANCE_SKIPPED: &[&str] = &[
    // Quality control (issue 16): the organisation filter must lie within the check's
    // organisation, rule ids must be known ones and the periods' dates real dates in order —
    // facts about stored data and the calendar that the schema cannot state; each refusal is a
    // 400 naming the field.
    "GET /api/v1/quality/checks/{id}/members",
    "GET /api/v1/quality/checks/{id}/report",
    "GET /api/v1/quality/checks/{id}/special",
    "POST /api/v1/quality/age-periods",
    "POST /api/v1/quality/checks",
    "GET /api/v1/orgs/{id}/members",
    "GET /api/v1/units/credit-code",
    "PATCH /api/v1/members/{id}",
    "PATCH /api/v1/orgs/{id}",
    "PATCH /api/v1/units/{id}",
    "POST /api/v1/agent/refusals",
    "POST /api/v1/enrolment",
    "POST /api/v1/enrolment/check",
    "POST /api/v1/grants",
    "POST /api/v1/members",
    "POST /api/v1/orgs",
    "POST /api/v1/orgs/{id}/category",
    "POST /api/v1/orgs/{id}/revoke",
    "POST /api/v1/units",
    "POST /api/v1/applications",
    "POST /api/v1/attachments",
    "POST /api/v1/members/{id}/correction-delete",
    "POST /api/v1/members/{id}/registered-phone",
    "POST /api/v1/members/{id}/registered-phone/code",
    "POST /api/v1/members/{id}/rename",
    "POST /api/v1/transfers",
    "POST /api/v1/transfers/inbound",
    "GET /api/v1/transfers",
    "GET /api/v1/transfers/export.xlsx",
    // 综合查询: a condition's field and mode depend on each other and on the kind, page sizes
    // are 10/20/50/100 only, a saved query's name is unique per account and kind.
    // 注册提醒 (issue 18): only a branch sends them (409 `not_a_branch` otherwise), a fact about
    // stored data.
    "POST /api/v1/orgs/{id}/registration-reminders",
    "POST /api/v1/query/members",
    "POST /api/v1/query/orgs",
    "POST /api/v1/query/units",
    "POST /api/v1/query/members/export.xlsx",
    "POST /api/v1/query/orgs/export.xlsx",
    "POST /api/v1/query/units/export.xlsx",
    "POST /api/v1/query/saved",
    // A multipart body whose file must be a workbook of the template: no schema states that.
    "POST /api/v1/import/members",
    // Multipart part names with control characters: the multipart parser refuses such headers
    // (400 naming the body) and the schema cannot exclude them from a part's name.
    "PUT /api/v1/members/{id}/photo",
];

/// What one `st run` checks.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// every check but `positive_data_acceptance`, every phase
    Checks,
    /// `positive_data_acceptance` alone, outside [`ACCEPTANCE_SKIPPED`]
    Acceptance,
}

/// Which operations a run covers.
enum Routes {
    AllBut(&'static str),
    Only(&'static str),
}

/// Real identifiers in the main session's scope for the path parameters (schemathesis's
/// `[[operations]]` configuration), so that the fuzzer reaches the logic behind an existing
/// organisation, member and unit instead of only their 404s. Only reads and edits get them:
/// deleting or revoking the session's own organisation would end the run's scope.
async fn known_ids(api: &Api, org_id: &str) -> String {
    let mut config = String::new();
    // Within one entry schemathesis joins the include filters with "or" and takes away
    // what an exclude filter matches: the paths, less the methods that must not get the ID.
    let mut bind = |paths: &[&str], skip: &[&str], id: &str| {
        let quote = |v: &[&str]| {
            v.iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        config.push_str(&format!(
            "[[operations]]\ninclude-path = [{}]\nexclude-method = [{}]\n\
             parameters = {{ \"path.id\" = {id:?} }}\n\n",
            quote(paths),
            quote(skip)
        ));
    };
    bind(
        &[
            "/api/v1/orgs/{id}",
            "/api/v1/orgs/{id}/children",
            "/api/v1/orgs/{id}/members",
        ],
        &["DELETE", "POST"],
        org_id,
    );
    let first = |r: dangjian_tests::Reply| {
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["items"][0]["id"].as_str().map(str::to_string)
    };
    let members = api
        .get(&format!(
            "/api/v1/orgs/{org_id}/members?include_sub=1&per_page=1"
        ))
        .await;
    let member = first(members).expect("a member in scope");
    bind(&["/api/v1/members/{id}"], &["DELETE"], &member);
    if let Some(unit) = first(api.get("/api/v1/units?per_page=1").await) {
        bind(&["/api/v1/units/{id}"], &["DELETE"], &unit);
    }
    config
}

/// One `st run` against the server with `api`'s token (and `cert`, a card session's certificate
/// and key); panics with the report on any failure.
fn fuzz(
    server: &Server,
    label: &str,
    api: &Api,
    cert: Option<(&str, &str)>,
    routes: Routes,
    config: &str,
    pass: Pass,
) {
    let examples = std::env::var("DANGJIAN_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("DANGJIAN_FUZZ_SEED").unwrap_or_else(|_| "20261126".into());
    let work = TempDir::new("dangjian-fuzz");
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut cmd = Command::new(st_binary());
    cmd.current_dir(work.path())
        .arg("--config-file")
        .arg(&config_file)
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", api.token)])
        .arg("--tls-verify")
        .arg(server.ca_path())
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "1", "--request-timeout", "30", "--no-color"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false");
    match routes {
        Routes::AllBut(re) => cmd.args(["--exclude-path-regex", re]),
        Routes::Only(re) => cmd.args(["--include-path-regex", re]),
    };
    match pass {
        Pass::Checks => cmd
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args(["--phases", "examples,coverage,fuzzing,stateful"]),
        Pass::Acceptance => {
            for name in ACCEPTANCE_SKIPPED {
                cmd.args(["--exclude-name", name]);
            }
            cmd.args(["--checks", "positive_data_acceptance"])
                .args(["--phases", "coverage,fuzzing"])
        }
    };
    if let Some((cert, key)) = cert {
        cmd.args(["--request-cert", cert, "--request-cert-key", key]);
    }
    let out = cmd.output().expect("run st");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("== schemathesis, {label}\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "schemathesis found failures ({label}; seed {seed}, {examples} examples):\n{stdout}\n{stderr}"
    );
    if pass == Pass::Checks {
        assert!(
            stdout.contains("Stateful"),
            "the stateful phase did not run ({label}):\n{stdout}"
        );
    }
}

/// A card account's certificate and key (PEM paths).
fn cert(a: &DemoAccount) -> Option<(&str, &str)> {
    a.cert.as_deref().zip(a.key.as_deref())
}

fn local(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

/// The main run with `main`'s session, then the throwaway runs with `spare`'s.
async fn fuzz_server(server: &Server, label: &str, main: &DemoAccount, spare: &DemoAccount) {
    let api = server.sign_in_from(main, local("127.0.0.2")).await;
    let config = known_ids(&api, &main.org_id).await;
    fuzz(
        server,
        label,
        &api,
        cert(main),
        Routes::AllBut(THROWAWAY_ROUTES),
        &config,
        Pass::Checks,
    );
    fuzz(
        server,
        &format!("{label}, positive_data_acceptance"),
        &api,
        cert(main),
        Routes::AllBut(THROWAWAY_ROUTES),
        &config,
        Pass::Acceptance,
    );
    // The main session survived its run.
    let session = api.get("/api/v1/session").await;
    assert_eq!(session.status, 200, "{label}: {:?}", session.body);

    let throwaway = server.sign_in_from(spare, local("127.0.0.3")).await;
    let label = format!("{label}, throwaway session");
    fuzz(
        server,
        &label,
        &throwaway,
        cert(spare),
        Routes::Only(THROWAWAY_FIRST),
        "",
        Pass::Checks,
    );
    fuzz(
        server,
        &label,
        &throwaway,
        cert(spare),
        Routes::Only(THROWAWAY_LAST),
        "",
        Pass::Checks,
    );
}

#[tokio::test]
async fn schemathesis_finds_nothing_with_a_password_session() {
    st_binary();
    let server = Server::demo(300, None).await;
    let main = server.account_in("admin", Some(3), "631");
    let spare = server.account_in("admin", Some(3), "621");
    assert!(main.cert.is_none() && spare.cert.is_none());
    fuzz_server(&server, "tier-3 admin, password session", &main, &spare).await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_with_a_card_session() {
    st_binary();
    let server = Server::demo(300, None).await;
    let main = server.account("admin", Some(2));
    let spare = server.account("admin", Some(1));
    assert!(main.cert.is_some() && spare.cert.is_some());
    fuzz_server(&server, "tier-2 admin, card session", &main, &spare).await;
}

/// The typed client of docs/api.md ("Generating a typed client"): datamodel-code-generator
/// makes pydantic models from the served document, and the member model refuses a malformed ID
/// number before any request is sent; a valid (synthetic, checked) one passes.
#[tokio::test]
async fn a_generated_client_refuses_a_malformed_id_number() {
    let codegen = venv_program("datamodel-codegen");
    let python = venv_program("python");
    let server = Server::demo(10, None).await;
    let work = TempDir::new("dangjian-client");
    let doc = server.get_json("/api/v1/openapi.json").await;
    let doc_path = work.path().join("openapi.json");
    std::fs::write(&doc_path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(codegen)
        .current_dir(work.path())
        .args(CODEGEN_ARGS)
        .output()
        .expect("run datamodel-codegen");
    assert!(
        out.status.success(),
        "datamodel-codegen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let valid = valid_id_number();
    let script = work.path().join("check.py");
    std::fs::write(&script, CHECK_SCRIPT).unwrap();
    let out = Command::new(python)
        .current_dir(work.path())
        .arg(&script)
        .arg(&valid)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("refused before sending"), "{stdout}");
}

/// `datamodel-codegen`'s arguments, as docs/api.md shows them.
const CODEGEN_ARGS: &[&str] = &[
    "--input",
    "openapi.json",
    "--input-file-type",
    "openapi",
    "--output",
    "dangjian_models.py",
    "--output-model-type",
    "pydantic_v2.BaseModel",
    "--field-constraints",
    "--use-standard-collections",
    "--target-python-version",
    "3.11",
    "--formatters",
    "builtin",
];

/// Builds the member request model with a malformed and then with a valid ID number; the
/// malformed one must raise `ValidationError` on construction, before any HTTP request.
const CHECK_SCRIPT: &str = r#"
import sys
from pydantic import ValidationError
from dangjian_models import MemberInput

valid = sys.argv[1]
for bad in ["12345", valid[:-1] + "Z", valid + "0", "37010219850630 01X"]:
    try:
        MemberInput(name="张三", id_number=bad)
    except ValidationError as e:
        assert any(err["loc"] == ("id_number",) for err in e.errors()), e
    else:
        sys.exit(f"a malformed ID number was accepted: {bad!r}")
m = MemberInput(name="张三", id_number=valid)
assert m.id_number == valid
print("refused before sending; accepted", valid)
"#;

/// A checked synthetic ID number from the shared vectors (never a real person's).
fn valid_id_number() -> String {
    dangjian_tests::vectors("citizen_id.tsv")
        .into_iter()
        .find(|(_, expected, _)| expected == "valid")
        .map(|(v, _, _)| v)
        .expect("a valid ID number in the vectors")
}
