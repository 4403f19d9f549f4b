//! The agent suite: `dangjian-agent connect` and `enrol` against a `dangjian-server demo`, with
//! the virtual card in real pcscd + vpcd. Like the card suite, each test owns one vpcd reader:
//! `connect` uses `Virtual PCD 00 01` (35964), `enrol` uses `Virtual PCD 00 00` (35963);
//! `.config/nextest.toml` puts each reader's tests of both suites in one test group, so they
//! never share a card, and each test also waits until its reader is empty.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dangjian_tests::vcard::CardState;
use dangjian_tests::{current_code, Server};
use serde_json::{json, Value};

const READER_0: &str = "Virtual PCD 00 00";
const READER_1: &str = "Virtual PCD 00 01";
const REMOVED: &str = "请插入 USB Key 并重新输入 PIN 码";

fn ensure_pcscd() {
    let ready = || {
        dangjian_agent::list_readers()
            .map(|r| {
                r.iter()
                    .filter(|i| i.name.starts_with("Virtual PCD"))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    };
    if ready() {
        return;
    }
    let _ = Command::new("pcscd").status();
    wait_until(
        "pcscd with the vpcd readers",
        Duration::from_secs(10),
        ready,
    );
}

fn card_present(reader: &str) -> bool {
    dangjian_agent::list_readers()
        .map(|rs| rs.iter().any(|r| r.name == reader && r.card_present))
        .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `vcard`, killed on drop.
struct VirtualCard {
    child: Child,
    state: PathBuf,
    reader: &'static str,
}

impl VirtualCard {
    /// Starts a card on `port`, with slot 9A loaded from `init` (certificate, key PEM files)
    /// or blank.
    fn start(dir: &Path, port: u16, init: Option<(&str, &str)>) -> Self {
        let state = dir.join(format!("card-{port}.json"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vcard"));
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--state")
            .arg(&state);
        if let Some((cert, key)) = init {
            cmd.arg("--init-cert").arg(cert).arg("--init-key").arg(key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vcard");
        let reader = if port == 35963 { READER_0 } else { READER_1 };
        Self {
            child,
            state,
            reader,
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    fn state(&self) -> CardState {
        CardState::load(&self.state).unwrap()
    }
}

/// Leaves the reader empty for the next test: the card is removed (SIGUSR1 closes its socket
/// cleanly) and pcscd has seen it go before the process is killed.
impl Drop for VirtualCard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-USR1")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while card_present(self.reader) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_vcard")).parent().unwrap();
    let path = dir.join("dangjian-agent");
    assert!(
        path.exists(),
        "{} is missing: cargo build --workspace --bins",
        path.display()
    );
    path
}

/// Takes the reader for this test: waits until no other card is in it.
fn take_reader(reader: &str) {
    wait_until(
        &format!("{reader} to be free"),
        Duration::from_secs(120),
        || !card_present(reader),
    );
}

/// A running `dangjian-agent connect`, killed on drop.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Agent {
    fn next_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "agent: no {what}; its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    fn type_line(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local endpoint as the browser sees it: the cookie from the first URL on each request.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn get(&self, path: &str) -> (u16, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.text().await.unwrap())
    }
}

fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Audit records of `action` as the auditor sees them.
async fn audit(server: &Server, action: &str) -> Vec<Value> {
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let r = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

/// Reader 1: the tier-2 admin's card signs the handshake once; the browser works through the
/// tunnel; pulling the card ends the server session and locks the tunnel; card back + PIN +
/// a fresh code resumes.
#[tokio::test(flavor = "multi_thread")]
async fn connect_tunnels_the_browser_and_locks_when_the_card_is_pulled() {
    ensure_pcscd();
    let server = Server::demo(50, None).await;
    let tier2 = server.account("admin", Some(2));
    let (cert, key) = (tier2.cert.clone().unwrap(), tier2.key.clone().unwrap());
    take_reader(READER_1);
    let card = VirtualCard::start(server.data.path(), 35964, Some((&cert, &key)));
    wait_until("the card in reader 1", Duration::from_secs(10), || {
        card_present(READER_1)
    });

    let first_code = current_code(&tier2.totp_secret);
    let stderr = server.data.path().join("agent-stderr.log");
    let mut child = Command::new(agent_binary())
        .args(["connect", "--server", &server.base, "--ca"])
        .arg(server.ca_path())
        .args(["--reader", READER_1, "--code", &first_code])
        .env_remove("DANGJIAN_AGENT_PIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start dangjian-agent connect");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut agent = Agent {
        child,
        stdin,
        lines,
        stderr,
    };
    agent.type_line("123456");
    let url = agent.next_line("local URL", Duration::from_secs(30), |l| {
        l.starts_with("http://127.0.0.1:")
    });
    let base = url.split("/?k=").next().unwrap().to_string();
    let port = base.rsplit(':').next().unwrap().to_string();
    let http = plain_http();

    // The first URL sets the local cookie and redirects without the secret.
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(res.headers()["location"], "/");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let browser = Browser {
        http: http.clone(),
        base: base.clone(),
        cookie: set.split(';').next().unwrap().to_string(),
    };

    // The card session through the tunnel.
    let (status, body) = browser.get("/api/v1/session").await;
    assert_eq!(status, 200, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["active_role"]["tier"], 2, "{session}");
    assert_eq!(session["active_role"]["org_id"], tier2.org_id.as_str());
    let (status, page) = browser.get(&format!("/orgs/{}", tier2.org_id)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&tier2.org_name), "the org page renders");
    assert_eq!(card.state().signature_counter, 1, "one card signature");

    // Concurrent requests open more connections: they resume, the card does not sign again.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, base, cookie) = (http.clone(), base.clone(), browser.cookie.clone());
        tasks.push(tokio::spawn(async move {
            http.get(format!("{base}/api/v1/session"))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        card.state().signature_counter,
        1,
        "resumed connections need no new signature"
    );

    // Only its own browser, only its own host name.
    let res = http
        .get(format!("{base}/api/v1/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("访问被拒绝"));
    let res = http
        .get(format!("{base}/api/v1/session"))
        .header("Cookie", &browser.cookie)
        .header("Host", format!("rebound.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = http.get(format!("{base}/?k=wrong")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);

    // Pull the card: the tunnel answers 503 with the Chinese page at once, the server session
    // is ended over the still-open connection.
    let pulled = Instant::now();
    card.signal("USR1");
    let mut last = (0, String::new());
    wait_until("the removed-card page", Duration::from_secs(3), || {
        last = futures_block(browser.get("/api/v1/session"));
        last.0 == 503
    });
    assert!(pulled.elapsed() < Duration::from_secs(3));
    assert!(last.1.contains(REMOVED), "{}", last.1);
    let mut ended = Vec::new();
    for _ in 0..20 {
        ended = audit(&server, "session.sign_out").await;
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ended.len(), 1, "the server session was ended");

    // Back in: PIN and a code of the next 30-second step resume the session.
    card.signal("USR2");
    let deadline = Instant::now() + Duration::from_secs(40);
    let code = loop {
        let c = current_code(&tier2.totp_secret);
        if c != first_code {
            break c;
        }
        assert!(Instant::now() < deadline, "no new TOTP step");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    agent.type_line("123456");
    agent.type_line(&code);
    agent.next_line("resumption", Duration::from_secs(20), |l| {
        l.contains("已恢复会话")
    });
    let (status, body) = browser.get("/api/v1/session").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        card.state().signature_counter,
        2,
        "one signature per session"
    );

    // The card leaves the reader before the agent that holds it exclusively is killed: killed
    // the other way round, the next card in this reader was not seen within 10 s in our runs.
    drop(card);
    drop(agent);
}

/// Runs a future to completion from synchronous code inside the multi-threaded runtime.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// Reader 0: a security officer's enrolment code, `dangjian-agent enrol` on a blank card, and
/// the card then holds the grant holder's certificate.
#[tokio::test(flavor = "multi_thread")]
async fn enrol_writes_the_issued_certificate_to_a_blank_card() {
    ensure_pcscd();
    let server = Server::demo(50, None).await;
    let tier3 = server.account("admin", Some(3));
    let officer = server.sign_in(&server.account("security", None)).await;
    let grants = officer.get("/api/v1/grants?per_page=200").await;
    assert_eq!(grants.status, 200, "{:?}", grants.body);
    let grant = grants.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["org_id"] == tier3.org_id.as_str() && g["tier"] == 3)
        .cloned()
        .expect("the tier-3 grant");
    let r = officer
        .post(
            &format!(
                "/api/v1/grants/{}/enrolment-code",
                grant["grant_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let outbox = std::fs::read_to_string(server.data.path().join("outbox.jsonl")).unwrap();
    let code = outbox
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["kind"] == "enrolment_code")
        .and_then(|m| m["code"].as_str().map(str::to_string))
        .expect("an enrolment code in the outbox");

    take_reader(READER_0);
    let card = VirtualCard::start(server.data.path(), 35963, None);
    wait_until("the card in reader 0", Duration::from_secs(10), || {
        card_present(READER_0)
    });
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(agent_binary())
            .args(args)
            .env_remove("DANGJIAN_AGENT_PIN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let ca = server.ca_path();
    let (ok, said) = run(
        &[
            "enrol",
            "--server",
            &server.base,
            "--ca",
            ca.to_str().unwrap(),
            "--code",
            &code,
            "--reader",
            READER_0,
        ],
        "123456\n",
    );
    assert!(ok, "{said}");
    assert!(said.contains("证书已写入"), "{said}");
    assert_eq!(
        card.state().signature_counter,
        1,
        "the CSR was signed by the card"
    );

    let (ok, status) = run(&["status", "--reader", READER_0], "");
    assert!(ok, "{status}");
    for expected in [
        format!("持有人：{}", grant["name"].as_str().unwrap()),
        format!("身份证号：{}", tier3.id_number),
        format!("组织代码：{}", grant["org_code"].as_str().unwrap()),
    ] {
        assert!(status.contains(&expected), "missing {expected}:\n{status}");
    }
    drop(card);
}
