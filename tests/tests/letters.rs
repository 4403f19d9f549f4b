//! Transfer letters 介绍信 (SPEC §6): numbers under concurrency on both engines, the public
//! verification (genuine, altered, unknown, withdrawn, superseded, received, expired), the
//! offline check by `dangjian-certs verify-letter` and by `openssl`, the PDF and the printed
//! page through Chromium.
//!
//! Letters are issued through the library (`letter::store`) against a demo server's data
//! directory and database: the transfer routes that issue them live in their own area.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use dangjian_server::access::{self, Actor, Role};
use dangjian_server::config::{Config, ConfigFile};
use dangjian_server::db::Db;
use dangjian_server::letter::{self, store, LetterFields, LetterRow};
use dangjian_server::state::AppState;
use dangjian_tests::{Server, TestDb};
use serde_json::{json, Value};

/// A demo server and, in this process, the same database, keys and data directory.
struct Fixture {
    server: Server,
    state: AppState,
}

impl Fixture {
    async fn new(db: Option<TestDb>) -> Fixture {
        let server = Server::demo(3, db).await;
        let data = server.data.path().to_path_buf();
        let file = ConfigFile::load(&data).unwrap();
        let url = file
            .database_url
            .clone()
            .unwrap_or_else(|| dangjian_server::db::sqlite_url(&data));
        dangjian_server::crypto::install_from_dir(&data).unwrap();
        let db = Db::connect(&url).await.unwrap();
        let state = AppState {
            db,
            config: Arc::new(Config {
                data_dir: data,
                file,
                secure_cookies: true,
            }),
            realname: None,
        };
        Fixture { server, state }
    }

    fn data(&self) -> &Path {
        self.server.data.path()
    }

    async fn issue(&self, transfer_id: &str, fields: &LetterFields) -> LetterRow {
        self.try_issue(transfer_id, fields).await.unwrap()
    }

    async fn try_issue(&self, transfer_id: &str, fields: &LetterFields) -> Result<LetterRow, u16> {
        let mut tx = self.state.db.begin().await.unwrap();
        let row = store::issue(
            &mut tx,
            &self.state,
            transfer_id,
            fields,
            &actor(),
            &access::platform(),
        )
        .await
        .map_err(|e| e.status.as_u16())?;
        tx.commit().await.unwrap();
        Ok(row)
    }

    async fn verify(&self, number: &str, d: Option<&str>) -> Value {
        let path = match d {
            Some(d) => format!("/api/v1/letters/{number}/verify?d={d}"),
            None => format!("/api/v1/letters/{number}/verify"),
        };
        // No session, no CSRF token: the route is public.
        let r = self
            .server
            .client()
            .get(self.server.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn verify_document(&self, doc: &Value) -> Value {
        let r = self
            .server
            .client()
            .post(self.server.url("/api/v1/letters/verify"))
            .json(doc)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn actor() -> Actor {
    Actor {
        account_id: "test-admin".to_string(),
        name: "测试管理员".to_string(),
        grant_id: "g".to_string(),
        role: Role::Admin,
        tier: Some(3),
        org_id: "o".to_string(),
        org_code: "037".to_string(),
        org_name: "组织".to_string(),
        client_addr: "127.0.0.1".to_string(),
        cert_serial: None,
        session_token_hash: String::new(),
        csrf_token: String::new(),
        must_change_password: false,
    }
}

/// A synthetic person (a valid check character, not a real one).
fn fields(n: u32) -> LetterFields {
    let birth = chrono::NaiveDate::from_ymd_opt(1985, 3, 1 + n % 28).unwrap();
    LetterFields {
        addressee: "中共泉山市委组织部".to_string(),
        name: format!("测试{}", ["甲", "乙", "丙", "丁"][n as usize % 4]),
        sex: "女".to_string(),
        age: 41,
        ethnicity: "汉族".to_string(),
        category: "正式".to_string(),
        id_number: dangjian_server::member::idcard::compose(
            "370102",
            birth,
            (100 + n % 800) as u16,
        ),
        from_org: "中共泉山省测试单位第一支部委员会".to_string(),
        to_org: "中共泉山省另一单位第二支部委员会".to_string(),
        dues_paid_to: "2026-10".to_string(),
        member_phone: "13800001234".to_string(),
        committee_address: "泉山市测试路1号".to_string(),
        committee_phone: "0531-80000000".to_string(),
        committee_fax: "80000001".to_string(),
        committee_postcode: "250000".to_string(),
    }
}

fn transfer_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The `d` of a row's verification URL.
fn d_of(row: &LetterRow) -> String {
    row.verify_url().rsplit_once("d=").unwrap().1.to_string()
}

async fn fifty_concurrent_issues(db: Option<TestDb>) {
    let fx = Arc::new(Fixture::new(db).await);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let fx = fx.clone();
        tasks.push(tokio::spawn(async move {
            fx.issue(&transfer_id(), &fields(i))
                .await
                .number()
                .to_string()
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    let month = (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y%m")
        .to_string();
    for n in &numbers {
        assert_eq!(n.len(), 18, "{n}");
        assert!(n.starts_with(&month), "{n}");
    }
    let distinct: std::collections::BTreeSet<&String> = numbers.iter().collect();
    assert_eq!(distinct.len(), 50, "{numbers:?}");
    // The sequence runs 1…50 without a gap.
    let last: u64 = distinct.iter().next_back().unwrap()[6..].parse().unwrap();
    assert_eq!(last, 50);

    // Ten concurrent issues for one transfer: one letter, nine refusals (409).
    let t = transfer_id();
    let mut tasks = Vec::new();
    for i in 0..10u32 {
        let (fx, t) = (fx.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            fx.try_issue(&t, &fields(i)).await.map(|_| ())
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(()) | Err(409))),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn fifty_concurrent_issues_get_distinct_numbers_sqlite() {
    fifty_concurrent_issues(None).await;
}

#[tokio::test]
async fn fifty_concurrent_issues_get_distinct_numbers_postgres() {
    fifty_concurrent_issues(Some(TestDb::postgres().await)).await;
}

async fn verification_answers(db: Option<TestDb>) {
    let fx = Fixture::new(db).await;
    let t = transfer_id();
    let row = fx.issue(&t, &fields(1)).await;
    let number = row.number().to_string();

    // A second issue for the same transfer is refused while a letter is live.
    let mut tx = fx.state.db.begin().await.unwrap();
    let e = store::issue(
        &mut tx,
        &fx.state,
        &t,
        &fields(1),
        &actor(),
        &access::platform(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status.as_u16(), 409);
    drop(tx);

    // Genuine, without d: status and dates only.
    let v = fx.verify(&number, None).await;
    assert_eq!(v["status"], "genuine", "{v}");
    assert_eq!(v["status_label"], "真实有效");
    assert_eq!(v["valid_until"], row.valid_until());
    assert!(v.get("fields").is_none(), "{v}");
    // With the QR code's d: the fields as printed, the ID number masked.
    let v = fx.verify(&number, Some(&d_of(&row))).await;
    assert_eq!(v["status"], "genuine", "{v}");
    let id = fields(1).id_number;
    assert_eq!(
        v["fields"]["id_number"],
        dangjian_server::member::idcard::mask(&id)
    );
    assert!(!v.to_string().contains(&id));
    assert_eq!(v["fields"]["name"], "测试乙");
    assert_eq!(v["fields"]["member_phone"], "138****1234");
    // A d that does not match: altered.
    let v = fx.verify(&number, Some("0123456789abcdef")).await;
    assert_eq!(v["status"], "altered", "{v}");
    assert_eq!(v["status_label"], "内容与存档不符");
    // Unknown numbers, and things that are no number.
    let v = fx.verify("209901999999999999", None).await;
    assert_eq!(v["status"], "unknown");
    assert_eq!(v["status_label"], "查无此介绍信");
    assert_eq!(fx.verify("abc", None).await["status"], "unknown");

    // The whole document: genuine; one character changed anywhere: altered.
    let doc = serde_json::to_value(store::document(&row).unwrap()).unwrap();
    assert_eq!(fx.verify_document(&doc).await["status"], "genuine");
    for (pointer, value) in [
        ("/fields/name", json!("测试丙")),
        ("/fields/to_org", json!("中共泉山省另一单位第三支部委员会")),
        ("/valid_until", json!("2099-12-31")),
        (
            "/canonical",
            json!(doc["canonical"]
                .as_str()
                .unwrap()
                .replace("age=41", "age=42")),
        ),
    ] {
        let mut altered = doc.clone();
        *altered.pointer_mut(pointer).unwrap() = value;
        let v = fx.verify_document(&altered).await;
        assert_eq!(v["status"], "altered", "{pointer}: {v}");
    }
    let mut altered = doc.clone();
    altered["fields"]["age"] = json!(42);
    assert_eq!(fx.verify_document(&altered).await["status"], "altered");

    // The public page for browsers.
    let r = fx
        .server
        .client()
        .get(
            fx.server
                .url(&format!("/api/v1/letters/{number}/verify?d={}", d_of(&row))),
        )
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("真实有效"), "{page}");
    assert!(page.contains(&dangjian_server::member::idcard::mask(&id)));
    assert!(!page.contains(&id));
    assert!(!page.contains("<script"));

    // Re-issue: the old number is superseded, the new one genuine with the same fields.
    let mut tx = fx.state.db.begin().await.unwrap();
    let new = store::reissue(&mut tx, &fx.state, &t, &actor(), &access::platform())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_ne!(new.number(), number);
    assert_eq!(new.fields().unwrap(), fields(1));
    assert_eq!(fx.verify(&number, None).await["status"], "superseded");
    assert_eq!(
        fx.verify(&number, Some(&d_of(&row))).await["status_label"],
        "已重新开具"
    );
    assert_eq!(fx.verify(new.number(), None).await["status"], "genuine");
    let current = store::current(fx.state.db.read(), &t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.number(), new.number());

    // Received.
    let mut tx = fx.state.db.begin().await.unwrap();
    store::mark_received(&mut tx, &t, &access::platform())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(fx.verify(new.number(), None).await["status"], "received");

    // Withdrawn (with its transfer); withdrawing again changes nothing.
    let t2 = transfer_id();
    let w = fx.issue(&t2, &fields(2)).await;
    for _ in 0..2 {
        let mut tx = fx.state.db.begin().await.unwrap();
        store::withdraw_current(&mut tx, &t2, &actor(), &access::platform())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let v = fx.verify(w.number(), None).await;
    assert_eq!(v["status"], "withdrawn");
    assert_eq!(v["status_label"], "已作废");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE target = $1 ORDER BY seq")
            .bind(&t2)
            .fetch_all(fx.state.db.read())
            .await
            .unwrap();
    assert_eq!(actions, ["letter.issue", "letter.withdraw"]);

    // Expired: past valid_until (moved back in the database).
    let t3 = transfer_id();
    let e = fx.issue(&t3, &fields(3)).await;
    assert!(!e.expired(dangjian_server::db::today()));
    sqlx::query("UPDATE letters SET valid_until = '2020-01-01' WHERE number = $1")
        .bind(e.number())
        .execute(fx.state.db.write())
        .await
        .unwrap();
    let v = fx.verify(e.number(), None).await;
    assert_eq!(v["status"], "expired");
    assert_eq!(v["status_label"], "已过期");
    let expired = store::current(fx.state.db.read(), &t3)
        .await
        .unwrap()
        .unwrap();
    assert!(expired.expired(dangjian_server::db::today()));
}

#[tokio::test]
async fn verification_answers_sqlite() {
    verification_answers(None).await;
}

#[tokio::test]
async fn verification_answers_postgres() {
    verification_answers(Some(TestDb::postgres().await)).await;
}

fn target_dir_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace --bins`",
        bin.display()
    );
    bin
}

/// The openssl one-liner of docs/api.md ("Verifying a letter"), run by bash.
const OPENSSL_ONE_LINER: &str = r#"jq -j .canonical letter.json > canonical.txt && jq -r .signature letter.json | base64 -d > letter.sig && jq -r .signer_certificate letter.json > signer.pem && openssl verify -CAfile ca.crt -purpose any signer.pem && openssl x509 -in signer.pem -noout -pubkey > pub.pem && openssl dgst -sha256 -verify pub.pem -signature letter.sig canonical.txt"#;

#[tokio::test]
async fn offline_checks_accept_the_letter_and_refuse_one_altered_character() {
    let fx = Fixture::new(None).await;
    let row = fx.issue(&transfer_id(), &fields(5)).await;
    let doc = serde_json::to_value(store::document(&row).unwrap()).unwrap();
    let dir = dangjian_tests::TempDir::new("dangjian-letter");
    let write = |doc: &Value| {
        std::fs::write(
            dir.path().join("letter.json"),
            serde_json::to_string_pretty(doc).unwrap(),
        )
        .unwrap();
    };
    std::fs::copy(fx.data().join("ca/ca.crt"), dir.path().join("ca.crt")).unwrap();
    // The signer's key is the server's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(fx.data().join("letter/signer.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let certs = target_dir_binary("dangjian-certs");
    let verify = || {
        Command::new(&certs)
            .current_dir(dir.path())
            .args(["verify-letter", "letter.json", "--ca", "ca.crt"])
            .output()
            .unwrap()
    };
    let openssl = || {
        Command::new("bash")
            .current_dir(dir.path())
            .args(["-c", OPENSSL_ONE_LINER])
            .output()
            .unwrap()
    };

    write(&doc);
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("真实有效"), "{stdout}");
    let out = openssl();
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    // The default --ca is ca/ca.crt under the current directory: the data directory.
    let out = Command::new(&certs)
        .current_dir(fx.data())
        .arg("verify-letter")
        .arg(dir.path().join("letter.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // One character changed in a field: verify-letter refuses it.
    let mut altered = doc.clone();
    let id = altered["fields"]["id_number"].as_str().unwrap().to_string();
    let last = if id.ends_with('1') { "2" } else { "1" };
    altered["fields"]["id_number"] = json!(format!("{}{last}", &id[..17]));
    write(&altered);
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("已被篡改"), "{stdout}");
    // ... and so does openssl once the signed text is changed to match.
    altered["canonical"] = json!(doc["canonical"]
        .as_str()
        .unwrap()
        .replace(&id, altered["fields"]["id_number"].as_str().unwrap()));
    write(&altered);
    assert_eq!(verify().status.code(), Some(1));
    let out = openssl();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification failure"));
}

/// Copies a generated file to `$DANGJIAN_LETTER_REVIEW_DIR` (when set) for a person to look at.
fn keep_for_review(path: &Path, name: &str) {
    if let Some(dir) = std::env::var_os("DANGJIAN_LETTER_REVIEW_DIR") {
        let _ = std::fs::copy(path, Path::new(&dir).join(name));
    }
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn pdf_carries_the_chinese_text_and_the_number() {
    let fx = Fixture::new(None).await;
    let row = fx.issue(&transfer_id(), &fields(6)).await;
    let bytes = letter::pdf::render(&row, &fx.state).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = dangjian_tests::TempDir::new("dangjian-letter-pdf");
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, &bytes).unwrap();
    keep_for_review(&path, "letter.pdf");
    let text = pdftotext(&path);
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for needle in [
        "中国共产党党员组织关系介绍信",
        &format!("第{}号", row.number()),
        "测试丙",
        "中共泉山市委组织部",
        "党费已交到2026年10月",
        "有效期45天",
        "第二联",
        "中国共产党党员组织关系介绍信回执联",
    ] {
        assert!(flat.contains(needle), "{needle} missing in:\n{text}");
    }
}

/// Serves the letter page and its stylesheet on a loopback port, as the transfer area will.
async fn serve_page(html: String, verify_html: String, css: String) -> String {
    use axum::response::{Html, IntoResponse};
    let app = axum::Router::new()
        .route(
            "/letter",
            axum::routing::get(move || {
                let html = html.clone();
                async move { Html(html) }
            }),
        )
        .route(
            "/verify",
            axum::routing::get(move || {
                let html = verify_html.clone();
                async move { Html(html) }
            }),
        )
        .route(
            letter::routes::STYLESHEET_PATH,
            axum::routing::get(move || {
                let css = css.clone();
                async move { ([("content-type", "text/css")], css).into_response() }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/letter")
}

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_letter_page_through_chromium() {
    let fx = Fixture::new(None).await;
    let row = fx.issue(&transfer_id(), &fields(7)).await;
    let page = letter::pages::letter_page(&row, &fx.state)
        .unwrap()
        .into_string();
    assert!(!page.contains("<script"));
    assert!(!page.contains("style=\""));
    assert!(page.contains("<svg"));
    // The stylesheet as the server serves it.
    let r = fx
        .server
        .client()
        .get(fx.server.url(letter::routes::STYLESHEET_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let css = r.text().await.unwrap();
    assert!(css.contains("size: A4"));
    if let Some(dir) = std::env::var_os("DANGJIAN_LETTER_REVIEW_DIR") {
        let _ = std::fs::write(Path::new(&dir).join("letter.html"), &page);
    }
    // The public verification page as a browser following the QR code gets it.
    let verify_html = fx
        .server
        .client()
        .get(row.verify_url().replace(
            row.verify_url().split("/api/").next().unwrap(),
            &fx.server.base,
        ))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(verify_html.contains("真实有效"), "{verify_html}");
    let url = serve_page(page, verify_html, css).await;

    let dir = dangjian_tests::TempDir::new("dangjian-letter-print");
    let pdf = dir.path().join("printed.pdf");
    let profile = dir.path().join("profile");
    let pdf_arg = format!("--print-to-pdf={}", pdf.display());
    let u = url.clone();
    let p = profile.clone();
    let out = tokio::task::spawn_blocking(move || {
        chromium(&[&pdf_arg, "--no-pdf-header-footer", &u], &p)
    })
    .await
    .unwrap();
    assert!(pdf.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    keep_for_review(&pdf, "printed.pdf");
    let text = pdftotext(&pdf);
    let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(flat.contains(&format!("第{}号", row.number())), "{text}");
    assert!(
        flat.contains("中国共产党党员组织关系介绍信回执联"),
        "{text}"
    );
    assert!(flat.contains("第二联"), "{text}");
    // One A4 page.
    let info = Command::new("pdfinfo").arg(&pdf).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Pages:           1"), "{info}");
    assert!(info.contains("(A4)"), "{info}");

    // The screenshot of the page at 1366×768 for docs/screenshots/letter.png.
    let shot = dir.path().join("letter.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let u = url.clone();
    let p = profile.clone();
    let out = tokio::task::spawn_blocking(move || {
        chromium(&[&shot_arg, "--window-size=1366,768", &u], &p)
    })
    .await
    .unwrap();
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify_shot = dir.path().join("letter-verify.png");
    let shot_arg = format!("--screenshot={}", verify_shot.display());
    let u = url.replace("/letter", "/verify");
    let p = profile.clone();
    let out = tokio::task::spawn_blocking(move || {
        chromium(&[&shot_arg, "--window-size=800,700", &u], &p)
    })
    .await
    .unwrap();
    assert!(
        verify_shot.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    if docs.is_dir() {
        std::fs::copy(&shot, docs.join("letter.png")).unwrap();
        std::fs::copy(&verify_shot, docs.join("letter-verify.png")).unwrap();
    }
}

#[tokio::test]
async fn key_rotation_covers_the_letters_fields() {
    let fx = Fixture::new(None).await;
    let t = transfer_id();
    let row = fx.issue(&t, &fields(8)).await;
    let sealed = || async {
        sqlx::query_scalar::<_, String>("SELECT fields FROM letters WHERE number = $1")
            .bind(row.number())
            .fetch_one(fx.state.db.read())
            .await
            .unwrap()
    };
    let before = sealed().await;
    let mut lines = Vec::new();
    dangjian_server::crypto::rotate::rotate(
        &fx.state.db,
        fx.data(),
        &dangjian_server::crypto::rotate::Options {
            batch: 100,
            grace: std::time::Duration::ZERO,
        },
        &mut |l| lines.push(l.to_string()),
    )
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("letters: ")),
        "{lines:?}"
    );
    assert_ne!(sealed().await, before);
    let after = store::current(fx.state.db.read(), &t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.fields().unwrap(), fields(8));
    // The running server reads the new key too.
    let mut status = Value::Null;
    for _ in 0..40 {
        let v = fx.verify(after.number(), Some(&d_of(&after))).await;
        status = v["status"].clone();
        if status == "genuine" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(status, "genuine");
}
