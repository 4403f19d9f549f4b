//! Shared helpers for the end-to-end suites: fresh databases on both engines, a real
//! `dangjian-server` process on a random port, signed-in HTTP clients with TOTP codes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// The PostgreSQL server the suites use: `DANGJIAN_TEST_PG` (an admin URL such as
/// `postgres://dangjian:dangjian@127.0.0.1:5432/postgres`), set by `scripts/test.sh`.
pub fn pg_admin_url() -> String {
    std::env::var("DANGJIAN_TEST_PG").expect(
        "DANGJIAN_TEST_PG is not set: run the suites through scripts/test.sh, which starts PostgreSQL",
    )
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub url: String,
    name: Option<String>,
    _dir: Option<tempdir::TempDir>,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A temporary directory removed on drop (unless it is another's, [`TempDir::shared`]).
    pub struct TempDir(PathBuf, bool);

    impl TempDir {
        pub fn new(prefix: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p, true)
        }
        /// A directory owned by something else (the data directory several servers share):
        /// not removed on drop.
        pub fn shared(path: &Path) -> TempDir {
            TempDir(path.to_path_buf(), false)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

pub use tempdir::TempDir;

/// The data directory holding this test process's field-encryption key file (`keys.json`),
/// made and installed once: storage functions seal with the process's keys, so every test of
/// a process shares them (a rotation adds versions and keeps the older ones readable). The
/// directory is a few hundred bytes in the temporary directory and outlives the process.
pub fn test_keys_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "dangjian-test-keys-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create key directory");
        dangjian_server::crypto::init_dir(&dir).expect("make test keys");
        dir
    })
}

pub mod browser;
pub mod cluster;
pub mod rig;
pub mod sheet;
pub mod vcard;

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = TempDir::new("dangjian-store");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        TestDb {
            url,
            name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = pg_admin_url();
        let name = format!("dj_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        // Created with a Chinese ICU collation, not "C": the code columns must compare bytewise
        // (COLLATE "C") whatever the database's locale, or subtree ranges break.
        sqlx::query(&format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'zh-CN'"
        ))
        .execute(&mut conn)
        .await
        .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestDb {
            url: format!("{base}/{name}"),
            name: Some(name),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let admin = pg_admin_url();
            // Best effort, on a thread of its own: Drop may run inside a runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async move {
                    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                        .await
                        .ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// The `dangjian-server` binary next to the test executable (scripts/test.sh builds it first),
/// or the one `DANGJIAN_SERVER_BIN` names (benchmarks comparing two builds).
pub fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("DANGJIAN_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("dangjian-server");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p dangjian-server` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// One demo account from `demo-accounts.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct DemoAccount {
    pub role: String,
    pub tier: Option<u8>,
    pub org_id: String,
    pub org_name: String,
    pub id_number: String,
    pub password: String,
    pub totp_secret: String,
    /// The category of the scope organisation (`621`: the tier-3 admin of a general branch).
    #[serde(default)]
    pub org_category: Option<String>,
    /// USB-key certificate and key (PEM files) of accounts that sign in with a card.
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

/// A running server process with its data directory.
pub struct Server {
    pub base: String,
    pub data: TempDir,
    pub accounts: Vec<DemoAccount>,
    child: Option<Child>,
    _db: Option<TestDb>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Server {
    /// `dangjian-server demo --members N` on a random loopback port over HTTPS, on SQLite or
    /// (with `db`) PostgreSQL, without real-name verification (the suites enter synthetic
    /// people the registry does not know; [`Server::demo_realname`] keeps it).
    pub async fn demo(members: usize, db: Option<TestDb>) -> Server {
        Self::demo_with(members, db, "none").await
    }

    /// The demo as people run it: real-name verification against the local registry of every
    /// demo member and the people of `demo-realname.json`.
    pub async fn demo_realname(members: usize, db: Option<TestDb>) -> Server {
        Self::demo_with(members, db, "local").await
    }

    async fn demo_with(members: usize, db: Option<TestDb>, realname: &str) -> Server {
        let data = TempDir::new("dangjian-api");
        let mut cmd = Command::new(server_binary());
        cmd.arg("demo")
            .arg("--data")
            .arg(data.path())
            .arg("--members")
            .arg(members.to_string())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(["--realname", realname])
            .env("DANGJIAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(db) = &db {
            cmd.arg("--database").arg(&db.url);
        }
        let (child, base) = Self::listening(cmd);
        let accounts = Self::demo_accounts(data.path());
        Server {
            base,
            data,
            accounts,
            child: Some(child),
            _db: db,
        }
    }

    /// `dangjian-server demo --no-serve` (SQLite), then `configure` on its data directory
    /// (e.g. `edit_config`), then `serve`.
    pub async fn demo_configured(members: usize, configure: impl FnOnce(&Path)) -> Server {
        let data = TempDir::new("dangjian-api");
        let out = Command::new(server_binary())
            .arg("demo")
            .arg("--data")
            .arg(data.path())
            .arg("--members")
            .arg(members.to_string())
            .arg("--no-serve")
            .args(["--realname", "none"])
            .env("DANGJIAN_LOG", "warn")
            .output()
            .expect("run dangjian-server demo");
        assert!(
            out.status.success(),
            "demo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        configure(data.path());
        let accounts = Self::demo_accounts(data.path());
        Self::serve(data, accounts)
    }

    /// `dangjian-server serve` on a data directory made before (by `init` or `demo`), on a
    /// random loopback port over HTTPS.
    pub fn serve(data: TempDir, accounts: Vec<DemoAccount>) -> Server {
        Self::serve_on(data, accounts, None)
    }

    fn serve_on(data: TempDir, accounts: Vec<DemoAccount>, db: Option<TestDb>) -> Server {
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .arg("--data")
            .arg(data.path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("DANGJIAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(db) = &db {
            cmd.arg("--database").arg(&db.url);
        }
        let (child, base) = Self::listening(cmd);
        Server {
            base,
            data,
            accounts,
            child: Some(child),
            _db: db,
        }
    }

    fn demo_accounts(data: &Path) -> Vec<DemoAccount> {
        let text =
            std::fs::read_to_string(data.join("demo-accounts.json")).expect("demo-accounts.json");
        serde_json::from_str(&text).expect("parse demo accounts")
    }

    /// Spawns the server and waits for its "listening on" line.
    fn listening(mut cmd: Command) -> (Child, String) {
        let mut child = cmd.spawn().expect("spawn dangjian-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        // Two minutes, or what `DANGJIAN_START_TIMEOUT` says (seconds: benchmarks building a
        // province of a million members).
        let wait = std::env::var("DANGJIAN_START_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120);
        let base = match rx.recv_timeout(Duration::from_secs(wait)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not report its address");
            }
        };
        (child, base)
    }

    pub fn account(&self, role: &str, tier: Option<u8>) -> DemoAccount {
        self.accounts
            .iter()
            .find(|a| a.role == role && a.tier == tier)
            .cloned()
            .unwrap_or_else(|| panic!("no demo account {role} {tier:?}"))
    }

    /// The demo account of `role` and `tier` whose scope organisation has `category` (e.g.
    /// the tier-3 admin of a general branch: `("admin", Some(3), "621")`).
    pub fn account_in(&self, role: &str, tier: Option<u8>, category: &str) -> DemoAccount {
        self.accounts
            .iter()
            .find(|a| {
                a.role == role && a.tier == tier && a.org_category.as_deref() == Some(category)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no demo account {role} {tier:?} on a {category}"))
    }

    /// The tier-1 admin of the county above the tier-2 demo committee: the approver of what is
    /// reserved to county level for the members of the tier-2 and tier-3 demo scopes.
    pub fn county_admin(&self) -> DemoAccount {
        self.accounts
            .iter()
            .filter(|a| a.role == "admin" && a.tier == Some(1))
            .nth(1)
            .cloned()
            .expect("the county's tier-1 demo admin")
    }

    /// The URL of the server's database (its SQLite file, or its PostgreSQL database), for
    /// tests that compare answers with a direct query.
    pub fn db_url(&self) -> String {
        match &self._db {
            Some(db) if db.url.starts_with("postgres") => db.url.clone(),
            _ => format!(
                "sqlite://{}",
                self.data.path().join("dangjian.db").display()
            ),
        }
    }

    /// The platform CA certificate (PEM path) that clients trust.
    pub fn ca_path(&self) -> PathBuf {
        self.data.path().join("tls/ca.crt")
    }

    /// An HTTPS client that trusts the server's CA (and keeps cookies).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let ca = std::fs::read(self.ca_path()).expect("ca.crt");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
            .cookie_store(true)
    }

    /// An HTTPS client whose connections come from another loopback address (e.g.
    /// `127.0.0.2`): another client address for throttling.
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        self.client_builder()
            .local_address(local)
            .build()
            .expect("client")
    }

    /// An HTTPS client that presents a client certificate (PEM files) on every connection.
    pub fn client_with_cert(&self, cert: &str, key: &str) -> reqwest::Client {
        let mut pem = std::fs::read(cert).expect("read certificate");
        pem.extend_from_slice(b"\n");
        pem.extend(std::fs::read(key).expect("read key"));
        self.client_builder()
            .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
            .build()
            .expect("client")
    }

    /// A client presenting the account's USB-key certificate, when it has one.
    pub fn card_client(&self, account: &DemoAccount) -> Option<reqwest::Client> {
        self.card_client_from(account, None)
    }

    /// [`Server::card_client`] whose connections come from `local` when given.
    fn card_client_from(
        &self,
        account: &DemoAccount,
        local: Option<std::net::IpAddr>,
    ) -> Option<reqwest::Client> {
        let (Some(cert), Some(key)) = (&account.cert, &account.key) else {
            return None;
        };
        let mut pem = std::fs::read(cert).expect("read certificate");
        pem.extend_from_slice(b"\n");
        pem.extend(std::fs::read(key).expect("read key"));
        let builder = self
            .client_builder()
            .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
            .local_address(local);
        Some(builder.build().expect("client"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET path` without a session, its body as JSON (the OpenAPI document, the health check).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Signs in as a demo account; returns a client carrying its bearer token. Accounts with
    /// a USB-key certificate open a card session (`POST /api/v1/session/card` over a
    /// connection presenting the certificate, which the returned client keeps presenting);
    /// the others a password session.
    pub async fn sign_in(&self, account: &DemoAccount) -> Api {
        self.sign_in_via(account, None).await
    }

    /// [`Server::sign_in`] over connections from the loopback address `local` (e.g.
    /// `127.0.0.2`), so that another client's failures on `127.0.0.1` (a fuzzer's) do not
    /// throttle it.
    pub async fn sign_in_from(&self, account: &DemoAccount, local: std::net::IpAddr) -> Api {
        self.sign_in_via(account, Some(local)).await
    }

    async fn sign_in_via(&self, account: &DemoAccount, local: Option<std::net::IpAddr>) -> Api {
        let code = current_code(&account.totp_secret);
        let (client, res) = match self.card_client_from(account, local) {
            Some(client) => {
                let res = client
                    .post(self.url("/api/v1/session/card"))
                    .json(&serde_json::json!({ "code": code }))
                    .send()
                    .await
                    .expect("card sign in");
                (client, res)
            }
            None => {
                let client = self
                    .client_builder()
                    .local_address(local)
                    .build()
                    .expect("client");
                let res = client
                    .post(self.url("/api/v1/session"))
                    .json(&serde_json::json!({
                        "id_number": account.id_number, "password": account.password, "code": code
                    }))
                    .send()
                    .await
                    .expect("sign in");
                (client, res)
            }
        };
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 200, "sign in failed: {body}");
        Api {
            client,
            base: self.base.clone(),
            token: body["token"].as_str().expect("token").to_string(),
        }
    }
}

/// Changes `config.json` of a data directory (before the server starts).
pub fn edit_config(data: &Path, edit: impl FnOnce(&mut Value)) {
    let path = data.join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config.json")).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// The six-digit code of a base32 secret for now.
pub fn current_code(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    dangjian_server::account::totp::code_at(secret, now).expect("totp")
}

/// The code of the step before the current one (within the server's one step of skew).
pub fn previous_code(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    dangjian_server::account::totp::code_at(secret, now - 30).expect("totp")
}

/// A minimal PDF (magic bytes and structure enough for the attachment checks).
pub const TEST_PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// A signed-in API client.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// A response: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `field` of an error answer.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl Api {
    /// A session by its token against `server` (a token made on another server of a cluster).
    pub fn with_token(server: &Server, token: &str) -> Api {
        Api {
            client: server.client(),
            base: server.base.clone(),
            token: token.to_string(),
        }
    }

    /// The same session over another HTTP client (its own connections: through a balancer,
    /// another server).
    pub fn with_client(&self, client: reqwest::Client) -> Api {
        Api {
            client,
            base: self.base.clone(),
            token: self.token.clone(),
        }
    }

    /// `POST path` that reports a failed connection instead of panicking (a server killed
    /// under load).
    pub async fn try_post(&self, path: &str, body: Value) -> Result<Reply, String> {
        let res = self
            .client
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok(Reply { status, body })
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, body }
    }
    /// Uploads a small PDF as a document 相关资料 for the organisation `org_id`'s subtree
    /// (`POST /api/v1/attachments`); returns its id.
    pub async fn upload_document(&self, org_id: &str) -> String {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(TEST_PDF.to_vec()).file_name("证明材料.pdf"),
            )
            .text("kind", "document")
            .text("org_id", org_id.to_string());
        let res = self
            .client
            .post(format!("{}/api/v1/attachments", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = res.status().as_u16();
        let body: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "upload: {body}");
        body["id"].as_str().expect("attachment id").to_string()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// Rows of a shared vector file: (value, expected, note). Reads `../shared/vectors/` when it
/// is beside the repository (it may hold newer rows), else the copy in `tests/vectors/`.
pub fn vectors(file: &str) -> Vec<(String, String, String)> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = here.join("../../shared/vectors").join(file);
    let path = if shared.exists() {
        shared
    } else {
        here.join("vectors").join(file)
    };
    let text = std::fs::read_to_string(&path).expect("read vectors");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut c = l.split('\t');
            (
                c.next().unwrap_or("").to_string(),
                c.next().unwrap_or("").to_string(),
                c.next().unwrap_or("").to_string(),
            )
        })
        .collect()
}

impl Server {
    /// The code of the newest message of `kind` in `<data>/outbox.jsonl` (the built-in
    /// notifier's outbox).
    pub fn outbox_code(&self, kind: &str) -> String {
        let outbox =
            std::fs::read_to_string(self.data.path().join("outbox.jsonl")).expect("outbox.jsonl");
        outbox
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|m| m["kind"] == kind)
            .and_then(|m| m["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no {kind} in the outbox"))
    }

    /// Has the security officer `officer` issue a one-time enrolment code for the live tier-3
    /// grant on `org_id`, and returns the code as it arrived in the outbox.
    pub async fn enrolment_code(&self, officer: &Api, org_id: &str) -> String {
        let grants = officer.get("/api/v1/grants?per_page=200").await;
        assert_eq!(grants.status, 200, "{:?}", grants.body);
        let grant = grants.body["items"]
            .as_array()
            .expect("grants")
            .iter()
            .find(|g| g["org_id"] == org_id && g["tier"] == 3 && g["state"] == "active")
            .and_then(|g| g["grant_id"].as_str().map(str::to_string))
            .expect("the tier-3 grant");
        let r = officer
            .post(
                &format!("/api/v1/grants/{grant}/enrolment-code"),
                serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        self.outbox_code("enrolment_code")
    }
}

impl Server {
    /// Marks the admin accounts of `org_id` as holding a one-time password, as `init` leaves
    /// the first security officer (straight in the demo's SQLite database): their sessions may
    /// then only change the password.
    pub async fn require_password_change(&self, org_id: &str) {
        sqlx::any::install_default_drivers();
        let url = format!(
            "sqlite://{}",
            self.data.path().join("dangjian.db").display()
        );
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
            .await
            .expect("open the demo database");
        let n = sqlx::query(
            "UPDATE accounts SET must_change_password = 1 WHERE id IN \
             (SELECT account_id FROM grants WHERE org_id = $1 AND role = 'admin')",
        )
        .bind(org_id)
        .execute(&mut conn)
        .await
        .expect("flag the accounts")
        .rows_affected();
        assert!(n > 0, "no admin account on {org_id}");
    }
}

/// What the agent's tunnel does, for the browser suite without a card reader: a plain-HTTP
/// endpoint on a random loopback port that forwards every request of the browser to the
/// server over mutual TLS with a demo account's USB-key certificate (a PEM file instead of a
/// card) and the card session's bearer token. Redirects and pages pass through unchanged.
pub struct CardProxy {
    pub base: String,
    /// The card session itself, for API calls beside the browser.
    pub api: Api,
    task: tokio::task::AbortHandle,
}

impl Drop for CardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CardProxy {
    pub async fn start(server: &Server, account: &DemoAccount) -> CardProxy {
        let api = server.sign_in(account).await;
        let token = api.token.clone();
        let (cert, key) = (
            account.cert.as_ref().expect("a card account"),
            account.key.as_ref().expect("a card account"),
        );
        let mut pem = std::fs::read(cert).expect("read certificate");
        pem.extend_from_slice(b"\n");
        pem.extend(std::fs::read(key).expect("read key"));
        let ca = std::fs::read(server.ca_path()).expect("ca.crt");
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA pem"))
            .identity(reqwest::Identity::from_pem(&pem).expect("identity"))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let upstream = server.base.clone();
        let forward = move |req: axum::extract::Request| {
            let client = client.clone();
            let upstream = upstream.clone();
            let token = token.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
                    .await
                    .unwrap_or_default();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                let mut out = client
                    .request(parts.method, format!("{upstream}{path}"))
                    .bearer_auth(&token)
                    .body(body);
                if let Some(ct) = parts.headers.get("content-type") {
                    out = out.header("content-type", ct.clone());
                }
                let res = out.send().await.expect("forward to the server");
                let mut answer = axum::response::Response::builder().status(res.status().as_u16());
                for name in [
                    "content-type",
                    "location",
                    "content-security-policy",
                    "content-disposition",
                ] {
                    if let Some(v) = res.headers().get(name) {
                        answer = answer.header(name, v.as_bytes());
                    }
                }
                let bytes = res.bytes().await.unwrap_or_default();
                answer.body(axum::body::Body::from(bytes)).unwrap()
            }
        };
        let app = axum::Router::new().fallback(forward);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
        .abort_handle();
        CardProxy { base, api, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// A valid synthetic ID number (GB 11643 check character) of someone born in 1980, distinct per
/// `seq` (0..=99999).
pub fn synthetic_id_number(seq: u32) -> String {
    let day = 1 + (seq / 1000) % 28;
    let month = 1 + (seq / 28000) % 12;
    let body = format!("3701021980{month:02}{day:02}{:03}", seq % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

impl Server {
    /// A new admin of `org_id`, as people get one: the security officer `officer` grants it
    /// (the organisation's own tier), the person activates the account (SMS code, activation
    /// code, password, authenticator) and, for tiers 1 and 2, enrols a USB-key certificate
    /// (a software key here, its PEM files in the data directory). `seq` makes the person
    /// distinct (ID number, mobile). Sign in with [`Server::sign_in`] or [`CardProxy::start`].
    pub async fn new_admin(&self, officer: &Api, org_id: &str, seq: u32) -> DemoAccount {
        let id_number = synthetic_id_number(50_000 + seq);
        let mobile = format!("1375{seq:07}");
        let name = "新管理员";
        let r = officer
            .post(
                "/api/v1/grants",
                serde_json::json!({"name": name, "id_number": id_number, "mobile": mobile,
                                   "role": "admin", "org_id": org_id}),
            )
            .await;
        assert_eq!(r.status, 201, "grant: {:?}", r.body);
        let account_id = r.body["account_id"]
            .as_str()
            .expect("account_id")
            .to_string();
        let grant_id = r.body["grant_id"]
            .as_str()
            .or_else(|| r.body["id"].as_str())
            .expect("grant id")
            .to_string();
        let grants = officer.get("/api/v1/grants?per_page=200").await;
        let tier = grants.body["items"]
            .as_array()
            .expect("grants")
            .iter()
            .find(|g| g["grant_id"] == grant_id.as_str())
            .and_then(|g| g["tier"].as_u64())
            .map(|t| t as u8);
        let activation_code = self.outbox_code("activation_code");
        let anon = self.client();
        let post = |path: &str, body: Value| {
            let req = anon.post(self.url(path)).json(&body);
            async move {
                let res = req.send().await.expect("request");
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, body) = post(
            "/api/v1/activation/sms",
            serde_json::json!({"mobile": mobile}),
        )
        .await;
        assert_eq!(status, 200, "activation sms: {body}");
        let sms = self.outbox_code("activation_sms");
        let password = "Xinguanli2026a".to_string();
        let (status, activated) = post(
            "/api/v1/activation",
            serde_json::json!({"mobile": mobile, "sms_code": sms, "activation_code": activation_code,
                               "name": name, "id_number": id_number, "password": password}),
        )
        .await;
        assert_eq!(status, 200, "activation: {activated}");
        let secret = activated["totp"]["secret"]
            .as_str()
            .expect("totp")
            .to_string();
        let (status, body) = post(
            "/api/v1/activation/totp",
            // The previous step's code (accepted with one step of skew), so that the sign-in
            // that follows may use the current one without a replay.
            serde_json::json!({"account_id": account_id, "code": previous_code(&secret)}),
        )
        .await;
        assert_eq!(status, 200, "activation totp: {body}");
        let (mut cert, mut key) = (None, None);
        if matches!(tier, Some(1 | 2)) {
            let r = officer
                .post(
                    &format!("/api/v1/grants/{grant_id}/enrolment-code"),
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(r.status, 201, "enrolment code: {:?}", r.body);
            let code = self.outbox_code("enrolment_code");
            let pair = rcgen::KeyPair::generate().expect("key");
            let csr = rcgen::CertificateParams::new(Vec::<String>::new())
                .expect("params")
                .serialize_request(&pair)
                .expect("csr")
                .pem()
                .expect("pem");
            let (status, issued) = post(
                "/api/v1/enrolment",
                serde_json::json!({"code": code, "csr": csr}),
            )
            .await;
            assert_eq!(status, 200, "enrolment: {issued}");
            let dir = self.data.path().join("test-cards");
            std::fs::create_dir_all(&dir).expect("test-cards");
            let cert_path = dir.join(format!("{seq}.crt"));
            let key_path = dir.join(format!("{seq}.key"));
            std::fs::write(
                &cert_path,
                issued["certificate"].as_str().expect("certificate"),
            )
            .expect("write certificate");
            std::fs::write(&key_path, pair.serialize_pem()).expect("write key");
            cert = Some(cert_path.display().to_string());
            key = Some(key_path.display().to_string());
        }
        DemoAccount {
            role: "admin".into(),
            tier,
            org_id: org_id.to_string(),
            org_name: String::new(),
            id_number,
            password,
            totp_secret: secret,
            org_category: None,
            cert,
            key,
        }
    }
}

impl Server {
    /// A server process started by a rig (`cluster`): its address, the data directory it
    /// serves (shared, not removed by this value) and the process, killed on drop.
    /// The process behind this address (the server, or HAProxy for a balancer), when this
    /// harness started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn from_process(
        base: String,
        data: &Path,
        accounts: Vec<DemoAccount>,
        child: Option<Child>,
    ) -> Server {
        Server {
            base,
            data: TempDir::shared(data),
            accounts,
            child,
            _db: None,
        }
    }

    /// `dangjian-server serve` with extra arguments, on a random loopback port; answers the
    /// process and its address once it listens.
    pub fn spawn_serve(data: &Path, args: &[&str]) -> (Child, String) {
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env("DANGJIAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Self::listening(cmd)
    }

    /// The demo accounts of a data directory made by `demo`.
    pub fn accounts_of(data: &Path) -> Vec<DemoAccount> {
        Self::demo_accounts(data)
    }

    /// Kills the process at once (SIGKILL: no shutdown work), as a crash would.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server process (SIGKILL: no shutdown work) and serves the same data directory
    /// again on a new port; sessions live in the database and survive. Clients made before
    /// must be pointed at the new address ([`Api::at`]).
    pub fn kill_and_restart(mut self) -> Server {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let data = std::mem::replace(&mut self.data, TempDir::new("dangjian-spent"));
        let accounts = std::mem::take(&mut self.accounts);
        let db = self._db.take();
        drop(self);
        Server::serve_on(data, accounts, db)
    }
}

impl Api {
    /// The same session against a restarted server.
    pub fn at(&self, server: &Server) -> Api {
        Api {
            client: self.client.clone(),
            base: server.base.clone(),
            token: self.token.clone(),
        }
    }
}

impl Api {
    /// The organisation with unified code `code`, found by walking the tree down from `from`
    /// (an organisation in this session's scope above it).
    pub async fn org_by_code(&self, from: &str, code: &str) -> String {
        let mut id = from.to_string();
        loop {
            let r = self
                .get(&format!("/api/v1/orgs/{id}/children?per_page=100"))
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let next = r.body["items"]
                .as_array()
                .expect("children")
                .iter()
                .find(|o| code.starts_with(o["code"].as_str().unwrap_or("-")))
                .unwrap_or_else(|| panic!("no way down to {code}"))
                .clone();
            id = next["id"].as_str().expect("id").to_string();
            if next["code"] == code {
                return id;
            }
        }
    }
}
