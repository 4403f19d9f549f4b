//! The tunnel suite: `dangjian-agent connect` against a `dangjian-server demo`, the virtual card
//! in real pcscd + vpcd (reader 1; see `dangjian_tests::rig`), headless Chromium and a plain
//! HTTP client on the local endpoint, and a TCP relay between agent and server whose
//! connections the test can cut (a network drop).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dangjian_tests::browser::Browser as Chromium;
use dangjian_tests::rig::{self, AgentProcess, VirtualCard, PORT_1, READER_1};
use dangjian_tests::{current_code, Api, Server};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const REMOVED: &str = "请插入 USB Key 并重新输入 PIN 码";

/// A TCP relay standing for the network between agent and server: `cut` drops every
/// connection through it, `set_down` refuses new ones (an outage).
struct Relay {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    down: Arc<AtomicBool>,
    accept: AbortHandle,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (l, d) = (links.clone(), down.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            addr,
            links,
            down,
            accept,
        }
    }

    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// The local endpoint as a plain HTTP client sees it: the cookie from the first URL on each
/// request.
struct Local {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Local {
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

    /// Starts a POST whose body arrives in two parts: the first part now, the rest when the
    /// returned sender is fired. Answers the status line and body.
    async fn slow_post(
        &self,
        path: &str,
        body: &str,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<String>,
    ) {
        let addr = self.base.trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nCookie: {}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.cookie,
            body.len()
        );
        let (first, rest) = body.split_at(body.len() / 2);
        stream
            .write_all(format!("{head}{first}").as_bytes())
            .await
            .unwrap();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let rest = rest.to_string();
        let task = tokio::spawn(async move {
            let _ = wait.await;
            stream.write_all(rest.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            String::from_utf8_lossy(&answer).into_owned()
        });
        (go, task)
    }
}

fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Audit records of `action` by `account_id`, as the auditor sees them.
async fn audit_of(auditor: &Api, action: &str, account_id: &str) -> Vec<Value> {
    let r = auditor
        .get(&format!("/api/v1/audit?action={action}&per_page=200"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["actor_account_id"] == account_id)
        .collect()
}

/// Waits for a TOTP code of a later 30-second step than `used` (each code is accepted once).
async fn next_code(secret: &str, used: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let c = current_code(secret);
        if c != used {
            return c;
        }
        assert!(Instant::now() < deadline, "no new TOTP step");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The whole USB-key path, reader 1, the tier-2 admin's card: the card signs the handshake
/// once; Chromium works through the tunnel (the home page, a member record); a hundred requests
/// ride the one connection; a network drop and an outage are survived without the PIN; the
/// card pulled mid-request ends the server session and every answer is the Chinese "key
/// removed" page; card back + PIN + a fresh code resumes in the same browser.
#[tokio::test(flavor = "multi_thread")]
async fn the_browser_works_through_the_card_tunnel_and_pulling_the_card_ends_the_session() {
    rig::ensure_pcscd();
    let server = Server::demo(50, None).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let tier2 = server.account("admin", Some(2));
    let server_addr: SocketAddr = server.base.trim_start_matches("https://").parse().unwrap();
    let relay = Relay::start(server_addr).await;
    let (cert, key) = (tier2.cert.clone().unwrap(), tier2.key.clone().unwrap());
    let card = VirtualCard::start(
        server.data.path(),
        PORT_1,
        Some((Path::new(&cert), Path::new(&key))),
    );

    let first_code = current_code(&tier2.totp_secret);
    let mut agent = AgentProcess::spawn(
        &[
            "connect",
            "--server",
            &format!("https://{}", relay.addr),
            "--ca",
            server.ca_path().to_str().unwrap(),
            "--reader",
            READER_1,
            "--code",
            &first_code,
        ],
        server.data.path().join("agent-stderr.log"),
    );
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
    let local = Local {
        http: http.clone(),
        base: base.clone(),
        cookie: set.split(';').next().unwrap().to_string(),
    };
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 200, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["active_role"]["tier"], 2, "{session}");
    assert_eq!(session["active_role"]["org_id"], tier2.org_id.as_str());
    let account_id = session["account"]["id"].as_str().unwrap().to_string();

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
        .header("Cookie", &local.cookie)
        .header("Host", format!("rebound.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = http.get(format!("{base}/?k=wrong")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);

    // Chromium: the first URL, the organisation's page, a member record.
    let (status, body) = local
        .get(&format!(
            "/api/v1/orgs/{}/members?include_sub=1&per_page=1",
            tier2.org_id
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let members: Value = serde_json::from_str(&body).unwrap();
    let member = &members["items"][0];
    let (member_id, member_name) = (
        member["id"].as_str().expect("a member in scope"),
        member["name"].as_str().unwrap(),
    );
    // The first URL was used by the plain client above: Chromium takes the next one-time URL
    // the agent printed.
    let next = agent.next_line("the next one-time URL", Duration::from_secs(10), |l| {
        l.starts_with("http://127.0.0.1:")
    });
    let chromium = Chromium::start().await;
    chromium.goto(&next).await;
    assert_eq!(
        chromium.current_path().await,
        format!("/orgs/{}", tier2.org_id),
        "the home page is the admin's organisation"
    );
    let page = chromium.text(".main").await;
    assert!(page.contains(&tier2.org_name), "{page}");
    chromium.goto(&format!("{base}/members/{member_id}")).await;
    let heading = chromium.text(".main").await;
    assert!(heading.contains(member_name), "{heading}");
    chromium.screenshot("agent-member-record").await;
    assert_eq!(card.state().signature_counter, 1, "one card signature");

    // A hundred requests, twenty at a time: one connection, no further signature.
    for _ in 0..5 {
        let mut batch = Vec::new();
        for _ in 0..20 {
            let (http, base, cookie) = (http.clone(), base.clone(), local.cookie.clone());
            batch.push(tokio::spawn(async move {
                http.get(format!("{base}/api/v1/session"))
                    .header("Cookie", cookie)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        for t in batch {
            assert_eq!(t.await.unwrap(), 200);
        }
    }
    assert_eq!(
        card.state().signature_counter,
        1,
        "a hundred requests, one card signature"
    );

    // A network drop: the next request goes on a new connection that resumes the TLS session
    // — no PIN, no code, no signature.
    relay.cut();
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 200, "after a drop: {body}");
    // An outage: a Chinese page while the server cannot be reached, then on again.
    relay.set_down(true);
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("无法连接服务器"), "{body}");
    relay.set_down(false);
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 200, "after the outage: {body}");
    assert_eq!(
        card.state().signature_counter,
        1,
        "reconnections resume the TLS session"
    );
    assert!(
        !agent.stderr_text().contains("错误"),
        "{}",
        agent.stderr_text()
    );

    // Pulled mid-request: an upload is under way when the card leaves. The server session
    // ends, the upload is not forwarded, and every answer is the "key removed" page.
    let (finish_upload, upload) = local
        .slow_post(
            "/api/v1/members",
            &format!(
                r#"{{"org_id": "{}", "name": "测试上传中途拔卡", "note": "padding padding"}}"#,
                tier2.org_id
            ),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pulled = Instant::now();
    card.remove();
    let mut ended = Vec::new();
    while ended.is_empty() {
        assert!(
            pulled.elapsed() < Duration::from_secs(5),
            "the server session was not ended"
        );
        ended = audit_of(&auditor, "session.sign_out", &account_id).await;
    }
    let took = pulled.elapsed();
    eprintln!("card pulled → server session ended: {took:?}");
    assert_eq!(ended.len(), 1, "{ended:?}");
    let _ = finish_upload.send(());
    let answer = upload.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(REMOVED), "{answer}");
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 503);
    assert!(body.contains(REMOVED), "{body}");
    chromium.goto(&format!("{base}/members/{member_id}")).await;
    let page = chromium.text("body").await;
    assert!(page.contains("USB Key 已拔出"), "{page}");
    assert!(!page.contains(member_name), "{page}");
    chromium.screenshot("agent-key-removed").await;
    let created = audit_of(&auditor, "member.create", &account_id).await;
    assert!(created.is_empty(), "the upload was not forwarded");

    // Back in: PIN and a code of the next 30-second step resume the session.
    card.insert();
    let code = next_code(&tier2.totp_secret, &first_code).await;
    agent.type_line("123456");
    agent.type_line(&code);
    agent.next_line("resumption", Duration::from_secs(20), |l| {
        l.contains("已恢复会话")
    });
    chromium.goto(&format!("{base}/members/{member_id}")).await;
    let heading = chromium.text(".main").await;
    assert!(heading.contains(member_name), "{heading}");
    assert_eq!(
        card.state().signature_counter,
        2,
        "one signature per session"
    );
    chromium.close().await;

    // The card leaves the reader before the agent that holds it exclusively is killed: killed
    // the other way round, the next card in this reader was not seen within 10 s in our runs.
    drop(card);
    drop(agent);
}

/// A web page of its own on another loopback port (same site as the tunnel, since cookies
/// and SameSite ignore ports): every request gets `html`.
async fn serve_page(html: String) -> (SocketAddr, AbortHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task.abort_handle())
}

/// Waits until the browser's page is on `port`.
async fn wait_for_port(chromium: &Chromium, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = chromium.client.current_url().await.unwrap();
        if url.port() == Some(port) {
            return;
        }
        assert!(Instant::now() < deadline, "still on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A grant request for a synthetic person.
fn grant_for(name: &str, seq: u16, org_id: &str) -> Value {
    let person = dangjian_server::member::idcard::compose(
        "370102",
        chrono::NaiveDate::from_ymd_opt(1986, 6, 6).unwrap(),
        seq,
    );
    serde_json::json!({"name": name, "id_number": person, "mobile": format!("13800000{seq:03}"),
                       "role": "admin", "org_id": org_id})
}

/// Issue 11 §3: the security officer's tunnel, Chromium signed in through it. The one-time
/// URL works once (the agent prints the next); a hostile page on another loopback port tries a
/// text/plain form POST and a no-cors fetch that would issue a grant: both are refused by the
/// tunnel, nothing is written, and the audit log shows the refusals under the officer's name.
/// The tunnel's own page still issues a grant.
#[tokio::test(flavor = "multi_thread")]
async fn a_page_on_another_loopback_port_cannot_act_through_the_tunnel() {
    rig::ensure_pcscd();
    let server = Server::demo(50, None).await;
    let auditor = server.sign_in(&server.account("auditor", None)).await;
    let officer = server.account("security", None);
    let target_org = server.account("admin", Some(3)).org_id;
    let (cert, key) = (officer.cert.clone().unwrap(), officer.key.clone().unwrap());
    let card = VirtualCard::start(
        server.data.path(),
        PORT_1,
        Some((Path::new(&cert), Path::new(&key))),
    );
    let mut agent = AgentProcess::spawn(
        &[
            "connect",
            "--server",
            &server.base,
            "--ca",
            server.ca_path().to_str().unwrap(),
            "--reader",
            READER_1,
            "--code",
            &current_code(&officer.totp_secret),
        ],
        server.data.path().join("agent-stderr.log"),
    );
    agent.type_line("123456");
    let is_url = |l: &str| l.starts_with("http://127.0.0.1:");
    let url = agent.next_line("local URL", Duration::from_secs(30), is_url);
    let base = url.split("/?k=").next().unwrap().to_string();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let http = plain_http();

    // Chromium takes the one-time URL; it does not work a second time, and the agent has
    // printed the next one, which works once.
    let chromium = Chromium::start().await;
    chromium.goto(&url).await;
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("一次性"));
    let next = agent.next_line("the next one-time URL", Duration::from_secs(10), is_url);
    assert_ne!(next, url);
    let res = http.get(&next).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let local = Local {
        http: http.clone(),
        base: base.clone(),
        cookie: set.split(';').next().unwrap().to_string(),
    };
    assert_eq!(http.get(&next).send().await.unwrap().status().as_u16(), 403);
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 200, "{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["active_role"]["role"], "security", "{session}");
    let account_id = session["account"]["id"].as_str().unwrap().to_string();

    // A client with the cookie that names no origin is refused as well.
    let res = http
        .post(format!("{base}/api/v1/grants"))
        .header("Cookie", &local.cookie)
        .header("Content-Type", "application/json")
        .body(grant_for("无来源请求", 701, &target_org).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let refused: Value = res.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "cross_site_request", "{refused}");

    // The hostile page: a no-cors fetch with the cookie, then a text/plain form whose body is
    // the JSON of a grant (`name=value`: the name holds the JSON up to a dummy field).
    let form_json = grant_for("跨站表单", 702, &target_org).to_string();
    let form_name = format!("{},\"x\":\"", form_json.trim_end_matches('}'));
    let fetch_json = grant_for("跨站请求", 703, &target_org).to_string();
    let html = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>hostile</title></head><body>
<form id="f" method="POST" action="{base}/api/v1/grants" enctype="text/plain">
<input type="hidden" name='{form_name}' value='"}}'></form>
<script>
fetch("{base}/api/v1/grants", {{method: "POST", mode: "no-cors", credentials: "include",
  body: '{fetch_json}'}})
  .then(() => {{ document.title = "fetched"; }}, () => {{ document.title = "fetch failed"; }})
  .then(() => document.getElementById("f").submit());
</script></body></html>"#
    );
    let (hostile, page_task) = serve_page(html).await;
    let hostile_origin = format!("http://{hostile}");
    chromium.goto(&format!("{hostile_origin}/")).await;
    wait_for_port(&chromium, port).await;
    let shown = chromium.text("body").await;
    assert!(shown.contains("已拒绝跨站请求"), "{shown}");
    page_task.abort();

    // The tunnel's own page may still act: a same-origin fetch (its Origin is null under the
    // pages' no-referrer policy; the browser marks it same-origin).
    chromium.goto(&format!("{base}/")).await;
    let own = grant_for("同源授权", 704, &target_org).to_string();
    let status = chromium
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/grants', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: arguments[0]})
               .then(r => done(r.status), e => done(String(e)));",
            vec![Value::String(own)],
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{status}");

    // Nothing of the hostile page was written: the officer's grants hold the same-origin one
    // only, and so does the audit log.
    let (status, body) = local.get("/api/v1/grants?per_page=200").await;
    assert_eq!(status, 200, "{body}");
    let grants: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = grants["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"同源授权"), "{names:?}");
    for name in ["跨站表单", "跨站请求", "无来源请求"] {
        assert!(!names.contains(&name), "{name} was written: {names:?}");
    }
    let created = audit_of(&auditor, "grant.create", &account_id).await;
    assert_eq!(created.len(), 1, "{created:?}");

    // The audit log shows both refusals of the hostile page (and the one without an origin),
    // under the officer's name.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = audit_of(&auditor, "tunnel.cross_site_refused", &account_id).await;
        let counted = |from: &str| -> u64 {
            records
                .iter()
                .filter(|r| r["detail"].as_str().unwrap_or("").contains(from))
                .map(|r| {
                    let detail = r["detail"].as_str().unwrap();
                    detail.split(' ').next().unwrap().parse::<u64>().unwrap()
                })
                .sum()
        };
        let from_page = counted(&format!("Origin {hostile_origin}"));
        let without = counted("Origin -");
        if from_page >= 2 && without >= 1 {
            assert_eq!(from_page, 2, "{records:?}");
            assert!(records
                .iter()
                .all(|r| r["outcome"] == "refused" && r["target"] == "/api/v1/grants"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refusals not audited: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    chromium.close().await;
    drop(card);
    drop(agent);
}

/// Issue 12 §11: `connect` opens the browser itself — here the opener is a script named by
/// `--open-with` that records the link it is given — and the link it gets works once. Pressing
/// Enter while connected prints a fresh link that works, while the used link and the one
/// printed before the request are refused. The prompts come in order: the PIN's tries on a line
/// of their own, before the prompt.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_opens_the_browser_and_prints_a_fresh_link_on_request() {
    rig::ensure_pcscd();
    let server = Server::demo(10, None).await;
    let officer = server.account("security", None);
    let (cert, key) = (officer.cert.clone().unwrap(), officer.key.clone().unwrap());
    let _card = VirtualCard::start(
        server.data.path(),
        PORT_1,
        Some((Path::new(&cert), Path::new(&key))),
    );
    let opened = server.data.path().join("opened.txt");
    let opener = server.data.path().join("opener.sh");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
            opened.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut agent = AgentProcess::spawn(
        &[
            "connect",
            "--server",
            &server.base,
            "--ca",
            server.ca_path().to_str().unwrap(),
            "--reader",
            READER_1,
            "--code",
            &current_code(&officer.totp_secret),
            "--open-with",
            opener.to_str().unwrap(),
        ],
        server.data.path().join("agent-stderr.log"),
    );
    agent.type_line("123456");
    let is_url = |l: &str| l.starts_with("http://127.0.0.1:");
    let url = agent.next_line("local URL", Duration::from_secs(30), is_url);
    let base = url.split("/?k=").next().unwrap().to_string();

    // The opener was called with the printed link.
    rig::wait_until("the opener", Duration::from_secs(10), || {
        std::fs::read_to_string(&opened).is_ok_and(|t| t.contains('\n'))
    });
    let given = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(given.trim(), url, "the opener gets the one-time link");
    let stderr = agent.stderr_text();
    assert!(
        stderr.contains("PIN：剩余 3 次尝试机会\n"),
        "the tries on a line of their own: {stderr}"
    );
    assert!(stderr.contains("按回车键"), "{stderr}");

    // The link works (once).
    let http = plain_http();
    let res = http.get(given.trim()).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let local = Local {
        http: http.clone(),
        base: base.clone(),
        cookie: set.split(';').next().unwrap().to_string(),
    };
    let (status, body) = local.get("/api/v1/session").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 403);
    let printed = agent.next_line("the next one-time URL", Duration::from_secs(10), is_url);

    // Enter asks for a fresh link: it works; the used one and the one printed before do not.
    agent.type_line("");
    let fresh = agent.next_line("a fresh one-time URL", Duration::from_secs(10), is_url);
    assert_ne!(fresh, printed);
    assert_ne!(fresh, url);
    let res = http.get(&fresh).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 303, "the fresh link works");
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("dj_agent="));
    for old in [&url, &printed, &fresh] {
        let res = http.get(old).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403, "{old}");
        assert!(res.text().await.unwrap().contains("一次性"));
    }
    // `l` asks too.
    let after = agent.next_line(
        "the URL after the fresh one",
        Duration::from_secs(10),
        is_url,
    );
    agent.type_line("l");
    let again = agent.next_line("another fresh URL", Duration::from_secs(10), is_url);
    assert_ne!(again, after);
    assert_eq!(
        http.get(&again).send().await.unwrap().status().as_u16(),
        303
    );
    let stderr = agent.stderr_text();
    assert!(stderr.contains("新的一次性链接"), "{stderr}");
}
